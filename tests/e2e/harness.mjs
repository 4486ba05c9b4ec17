// End-to-end harness: starts build/tollgate (or $TOLLGATE_BIN) on a free loopback port with a config written to
// a temporary directory, and gives tests what they need to talk to it and to check how it ended.
//
//   const gw = await startGateway({ config: { providers: { openai: { base_url: s.url + '/v1' } } } });
//   gw.url          "http://127.0.0.1:PORT"
//   gw.base(p)      "http://127.0.0.1:PORT/v1/local/default/" + p
//   gw.stderr()     everything the process wrote to stderr so far
//   await gw.reload(newConfig)   rewrites the config file and sends SIGHUP, waits for the log line
//   await gw.stop() SIGTERM, waits for exit; asserts exit code 0 and (under sanitizers) a clean report
//
// Every config gets "listen": "127.0.0.1:0" and a temporary data_dir unless the test sets them.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

export const BIN = process.env.TOLLGATE_BIN ?? new URL('../../build/tollgate', import.meta.url).pathname;
export const SANITIZED = process.env.TOLLGATE_SANITIZED === '1';
/* generous waits under ASan, which is several times slower */
export const SLOW = SANITIZED ? 4 : 1;
/* TOLLGATE_TEST_CURL=1 runs the suites with libcurl for every upstream request (no HTTP/1.1 fast path) */
const CURL_ONLY = process.env.TOLLGATE_TEST_CURL === '1';

const SANITIZER_MARKERS = ['AddressSanitizer', 'LeakSanitizer', 'UndefinedBehaviorSanitizer', 'runtime error:'];

export async function startGateway({ config = {}, args = [], env = {}, waitListening = true } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-'));
  const configPath = path.join(dir, 'tollgate.json');
  const write = (c) =>
    writeFileSync(configPath, JSON.stringify({ listen: '127.0.0.1:0', workers: 2, data_dir: path.join(dir, 'data'),
      ...(CURL_ONLY ? { upstream_fast_http1: false } : {}), ...c }, null, 2));
  write(config);
  const proc = spawn(BIN, ['--config', configPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', ...env },
  });
  let err = '';
  let out = '';
  const waiters = [];
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => {
    err += d;
    for (const w of waiters.slice()) {
      if (w.re.test(err.slice(w.from))) { waiters.splice(waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(); }
    }
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));

  /** Resolves when stderr (from now on, or from `from`) matches re. */
  const waitLog = (re, timeoutMs = 5000 * SLOW, from = err.length) =>
    new Promise((resolve, reject) => {
      if (re.test(err.slice(from))) return resolve();
      const w = { re, from, resolve, timer: null };
      waiters.push(w);
      w.timer = setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) { waiters.splice(i, 1); reject(new Error(`timed out waiting for ${re} in stderr:\n${err}`)); }
      }, timeoutMs);
    });

  let port = 0;
  if (waitListening) {
    await Promise.race([
      waitLog(/listening on 127\.0\.0\.1:\d+/, 10000 * SLOW, 0),
      exited.then((e) => { throw new Error(`tollgate exited early (${JSON.stringify(e)}):\n${err}`); }),
    ]);
    port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(err)[1]);
  }

  const gw = {
    proc, dir, configPath, port,
    url: `http://127.0.0.1:${port}`,
    base: (p = '') => `http://127.0.0.1:${port}/v1/local/default/${p}`,
    stderr: () => err,
    stdout: () => out,
    waitLog,
    exited,
    async reload(newConfig) {
      const from = err.length;
      write(newConfig);
      proc.kill('SIGHUP');
      await waitLog(/reloaded configuration|keeping the running configuration/, 5000 * SLOW, from);
    },
    /** SIGTERM (or `signal`), wait for the exit, check it was clean. Returns { code, signal, stderr }. */
    async stop({ signal = 'SIGTERM', expectCode = 0 } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 60000 * SLOW);
      const e = await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      assertCleanExit(e, err, expectCode);
      return { ...e, stderr: err };
    },
  };
  return gw;
}

export function assertCleanExit(e, stderr, expectCode = 0) {
  for (const m of SANITIZER_MARKERS) assert.ok(!stderr.includes(m), `sanitizer report in stderr:\n${stderr}`);
  assert.equal(e.signal, null, `tollgate died by ${e.signal}:\n${stderr}`);
  assert.equal(e.code, expectCode, `tollgate exit code ${e.code}:\n${stderr}`);
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Raw HTTP over one TCP connection, for wire-level tests. send() writes bytes; read helpers wait for what
 * the server sends. The whole received text is in `received`.
 */
export async function rawConnect(port) {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const c = {
    sock,
    received: '',
    closed: false,
    waiters: [],
    send(data) { sock.write(data); },
    /** Resolves when pred(received) is true; rejects on timeout. */
    until(pred, timeoutMs = 5000 * SLOW) {
      return new Promise((resolve, reject) => {
        if (pred(c)) return resolve(c.received);
        const w = { pred, resolve };
        c.waiters.push(w);
        setTimeout(() => {
          const i = c.waiters.indexOf(w);
          if (i >= 0) { c.waiters.splice(i, 1); reject(new Error(`timeout; received so far:\n${c.received}`)); }
        }, timeoutMs);
      });
    },
    untilClosed(timeoutMs) { return c.until((x) => x.closed, timeoutMs); },
    untilText(s, timeoutMs) { return c.until((x) => x.received.includes(s), timeoutMs); },
    /** Waits for `n` complete responses (by Content-Length or chunked end); returns them parsed. */
    async responses(n, timeoutMs) {
      await c.until((x) => parseResponses(x.received).length >= n || x.closed, timeoutMs);
      return parseResponses(c.received);
    },
    close() { sock.destroy(); },
  };
  const check = () => {
    for (const w of c.waiters.slice()) if (w.pred(c)) { c.waiters.splice(c.waiters.indexOf(w), 1); w.resolve(c.received); }
  };
  sock.setEncoding('latin1');
  sock.on('data', (d) => { c.received += d; check(); });
  sock.on('close', () => { c.closed = true; check(); });
  sock.on('error', () => {});
  return c;
}

/** Parses complete HTTP/1.1 responses from text: [{ status, headers (lower-case keys), body, raw }]. */
export function parseResponses(text) {
  const out = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end).split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    let body = rest.slice(end + 4);
    let used;
    if (status === 100) { rest = body; continue; }
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (body.length < n) break;
      used = end + 4 + n;
      body = body.slice(0, n);
    } else if (headers['transfer-encoding'] === 'chunked') {
      let p = 0;
      let decoded = '';
      let complete = false;
      for (;;) {
        const le = body.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(body.slice(p, le), 16);
        if (size === 0) { if (body.indexOf('\r\n', le + 2) >= 0) { p = body.indexOf('\r\n', le + 2) + 2; complete = true; } break; }
        if (body.length < le + 2 + size + 2) break;
        decoded += body.slice(le + 2, le + 2 + size);
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      used = end + 4 + p;
      body = decoded;
    } else {
      used = rest.length; // close-delimited: whatever came
    }
    out.push({ status, headers, body, raw: rest.slice(0, used) });
    rest = rest.slice(used);
  }
  return out;
}

/** Reads an SSE / chunked fetch body, calling onChunk(text, msSinceStart) for each chunk. */
export async function readStream(res, onChunk) {
  const t0 = Date.now();
  const dec = new TextDecoder();
  let all = '';
  for await (const chunk of res.body) {
    const s = dec.decode(chunk, { stream: true });
    all += s;
    if (onChunk) onChunk(s, Date.now() - t0);
  }
  return all;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Parses the gateway's error envelope and checks its shape. */
export function assertEnvelope(body, status, code) {
  const j = typeof body === 'string' ? JSON.parse(body) : body;
  assert.equal(j.success, false);
  assert.deepEqual(j.result, []);
  assert.deepEqual(j.messages, []);
  assert.equal(j.error.length, 1);
  assert.equal(j.error[0].code, code);
  assert.equal(j.httpCode, status);
  assert.equal(j.internalCode, code);
  assert.equal(typeof j.error[0].message, 'string');
  return j.error[0].message;
}
