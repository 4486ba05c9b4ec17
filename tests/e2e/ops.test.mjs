// Operations: health and readiness, Prometheus metrics, the access log, SIGHUP reload without dropping a
// connection, SIGTERM drain that lets streams finish, --check-config, the outgoing proxy variables, the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startStandin } from '../fakes/standin.mjs';
import { BIN, SLOW, rawConnect, readStream, sleep, startGateway } from './harness.mjs';

const run = promisify(execFile);
const chatBody = (stream = false) =>
  JSON.stringify({ model: 'gpt-4o', stream, messages: [{ role: 'user', content: 'hi' }] });

test('healthz, readyz and metrics', async () => {
  const s = await startStandin();
  const gw = await startGateway({ config: { providers: { openai: { base_url: `${s.url}/v1` } } } });
  try {
    let r = await fetch(`${gw.url}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok' });
    r = await fetch(`${gw.url}/readyz`);
    assert.equal(r.status, 200);
    r = await fetch(`${gw.url}/healthz`, { method: 'POST' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD');

    for (let i = 0; i < 3; i++)
      await (await fetch(gw.base('openai/chat/completions'), { method: 'POST', body: chatBody() })).text();
    await (await fetch(gw.base('openai/chat/completions'), { method: 'POST', body: chatBody(), headers: { 'x-standin-status': '500' } })).text();
    await (await fetch(gw.base('nope/x'))).text();

    r = await fetch(`${gw.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const m = await r.text();
    assert.match(m, /^tollgate_requests_total\{provider="openai",code="2xx"\} 3$/m);
    assert.match(m, /^tollgate_requests_total\{provider="openai",code="5xx"\} 1$/m);
    assert.match(m, /^tollgate_requests_total\{provider="none",code="4xx"\} 2$/m);
    assert.match(m, /^tollgate_request_duration_seconds_bucket\{provider="openai",le="\+Inf"\} 4$/m);
    assert.match(m, /^tollgate_request_duration_seconds_count\{provider="openai"\} 4$/m);
    assert.match(m, /^tollgate_response_bytes_total\{provider="openai"\} \d+$/m);
    assert.match(m, /^tollgate_connections_open \d+$/m);
    assert.match(m, /^tollgate_connections_total [1-9]\d*$/m);
    assert.match(m, /^tollgate_workers 2$/m);
    assert.match(m, /^# TYPE tollgate_request_duration_seconds histogram$/m);
  } finally {
    await gw.stop();
    await s.close();
  }
});

test('the access log: one line per request, off with --no-access-log', async (t) => {
  const s = await startStandin();
  t.after(() => s.close()); /* also when an assertion fails: an open server would keep the file from ending */
  const gw = await startGateway({ config: { providers: { openai: { base_url: `${s.url}/v1` } } } });
  await (await fetch(gw.base('openai/chat/completions?key=SECRET'), { method: 'POST', body: chatBody() })).text();
  await gw.waitLog(/"POST \/v1\/local\/default\/openai\/chat\/completions HTTP\/1\.1" 200 \d+ [\d.]+ms gateway=default provider=openai/, 5000 * SLOW, 0);
  const { stderr } = await gw.stop();
  assert.ok(!stderr.includes('SECRET'), 'the query string (which may hold a key) is not logged');

  const quiet = await startGateway({ config: { providers: { openai: { base_url: `${s.url}/v1` } } }, args: ['--no-access-log'] });
  await (await fetch(quiet.base('openai/chat/completions'), { method: 'POST', body: chatBody() })).text();
  const q = await quiet.stop();
  assert.ok(!q.stderr.includes('HTTP/1.1"'), q.stderr);
});

test('SIGHUP reloads the config without dropping a connection or a stream', async () => {
  const a = await startStandin();
  const b = await startStandin();
  const gw = await startGateway({ config: { providers: { openai: { base_url: `${a.url}/v1` } } } });
  try {
    /* a keep-alive connection, and a stream in flight across the reload */
    const c = await rawConnect(gw.port);
    c.send('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.responses(1);
    const streaming = fetch(gw.base('openai/chat/completions'), {
      method: 'POST', body: chatBody(true), headers: { 'x-standin-pace-ms': '150' },
    }).then((r) => readStream(r));
    await a.waitFor((r) => r.stream);

    await gw.reload({ providers: { openai: { base_url: `${b.url}/v1` } } });
    assert.match(gw.stderr(), /reloaded configuration/);

    /* new requests go to the new upstream, on the same old connection too */
    c.send(`POST /v1/local/default/openai/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${chatBody().length}\r\n\r\n${chatBody()}`);
    const rs = await c.responses(2);
    assert.equal(rs[1].status, 200);
    assert.ok(!c.closed);
    assert.equal(b.requests.length, 1);
    assert.ok((await streaming).endsWith('data: [DONE]\n\n'), 'the stream begun before the reload completed');
    c.close();

    /* an invalid file is refused and the running config stays */
    const from = gw.stderr().length;
    writeFileSync(gw.configPath, '{ "listen": "127.0.0.1:0", "bogus_key": 1 }');
    gw.proc.kill('SIGHUP');
    await gw.waitLog(/keeping the running configuration/, 5000 * SLOW, from);
    assert.match(gw.stderr().slice(from), /bogus_key/);
    const r = await fetch(gw.base('openai/chat/completions'), { method: 'POST', body: chatBody() });
    assert.equal(r.status, 200);
    await r.text();
    assert.equal(b.requests.length, 2);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(m, /^tollgate_config_reloads_total 1$/m);
    assert.match(m, /^tollgate_config_reload_failures_total 1$/m);
  } finally {
    await gw.stop();
    await a.close();
    await b.close();
  }
});

test('SIGTERM drains: a stream in flight finishes, then the process exits 0', async (t) => {
  const s = await startStandin();
  t.after(() => s.close()); /* also when an assertion fails: an open server would keep the file from ending */
  const gw = await startGateway({ config: { drain_timeout: 10, providers: { openai: { base_url: `${s.url}/v1` } } } });
  const streaming = fetch(gw.base('openai/chat/completions'), {
    method: 'POST', body: chatBody(true), headers: { 'x-standin-pace-ms': '200' },
  }).then((r) => readStream(r)).catch((e) => `failed: ${e.message}`);
  await s.waitFor((r) => r.stream);
  gw.proc.kill('SIGTERM');
  await gw.waitLog(/draining/);
  /* new connections are refused while it drains */
  await sleep(100);
  await assert.rejects(fetch(`${gw.url}/healthz`));
  const body = await streaming;
  assert.ok(body.endsWith('data: [DONE]\n\n'), `the stream was cut by the drain: ${body.slice(-80)}`);
  const e = await gw.stop();
  assert.match(e.stderr, /stopped/);
});

test('SIGTERM with a stream that outlives drain_timeout: cut at the timeout, exit 0', async (t) => {
  const s = await startStandin();
  t.after(() => s.close()); /* also when an assertion fails: an open server would keep the file from ending */
  const gw = await startGateway({ config: { drain_timeout: 0.5, providers: { openai: { base_url: `${s.url}/v1` } } } });
  const streaming = fetch(gw.base('openai/chat/completions'), {
    method: 'POST', body: chatBody(true), headers: { 'x-standin-pace-ms': '200', 'x-standin-chunks': '100' },
  }).then((r) => readStream(r)).catch(() => ''); /* fetch may or may not call a chunked body without its last chunk an error */
  await s.waitFor((r) => r.stream);
  const t0 = Date.now();
  const e = await gw.stop();
  assert.ok(Date.now() - t0 < 5000 * SLOW);
  assert.match(e.stderr, /drain timeout/);
  assert.ok(!(await streaming).includes('[DONE]'), 'cut, not completed');
  await s.waitFor((r) => r.aborted);
});

test('--check-config: OK for a good file, every error with line and column for a bad one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-cfg-'));
  const good = path.join(dir, 'good.json');
  writeFileSync(good, '// comment\n{ "listen": "127.0.0.1:9999", "gateways": [{"id": "a"}, {"id": "b"}] }\n');
  const r = await run(BIN, ['--check-config', good]);
  assert.match(r.stdout, /OK \(2 gateways, 0 custom providers\)/);

  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, '{\n  "listen": "127.0.0.1:1",\n  "workrs": 2,\n  "gateways": [{"id": "x", "cache_ttl": "long"}]\n}\n');
  await assert.rejects(run(BIN, ['--check-config', bad]), (e) => {
    assert.equal(e.code, 1);
    assert.match(e.stderr, /bad\.json:3:3: workrs: unknown key "workrs"/);
    assert.match(e.stderr, /bad\.json:4:41: gateways\[0\]\.cache_ttl: must be an integer/);
    return true;
  });
  await assert.rejects(run(BIN, ['--check-config', path.join(dir, 'missing.json')]), /cannot open/);
  /* starting with a bad file fails the same way */
  await assert.rejects(run(BIN, ['--config', bad]), (e) => e.code === 1 && /workrs/.test(e.stderr));
});

test('--version, --help, bad flags', async () => {
  assert.match((await run(BIN, ['--version'])).stdout, /^tollgate \d+\.\d+\.\d+ \(libuv/);
  assert.match((await run(BIN, ['--help'])).stdout, /--check-config FILE/);
  await assert.rejects(run(BIN, ['--workers', 'many']), (e) => e.code === 2);
  await assert.rejects(run(BIN, ['--bogus']), (e) => e.code === 2);
  await assert.rejects(run(BIN, ['--listen', 'not-an-address']), (e) => e.code === 1 && /host:port/.test(e.stderr));
});

test('outgoing requests honour http_proxy and NO_PROXY', async (t) => {
  const s = await startStandin();
  t.after(() => s.close()); /* also when an assertion fails: an open server would keep the file from ending */
  /* a minimal forward proxy that records what it relays */
  const seen = [];
  const proxy = http.createServer((req, res) => {
    seen.push(req.url);
    const up = http.request(req.url, { method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, { ...ur.headers, 'x-via-test-proxy': '1' });
      ur.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  t.after(() => proxy.close());
  const proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
  const upstream = `http://localhost:${s.port}/v1`; /* a host name, so NO_PROXY can name it */

  const gw = await startGateway({ config: { providers: { openai: { base_url: upstream } } }, env: { http_proxy: proxyUrl, NO_PROXY: '' } });
  let r = await fetch(gw.base('openai/chat/completions'), { method: 'POST', body: chatBody() });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-via-test-proxy'), '1');
  await r.text();
  assert.deepEqual(seen, [`http://localhost:${s.port}/v1/chat/completions`]);
  await gw.stop();

  const gw2 = await startGateway({ config: { providers: { openai: { base_url: upstream } } }, env: { http_proxy: proxyUrl, NO_PROXY: 'localhost' } });
  r = await fetch(gw2.base('openai/chat/completions'), { method: 'POST', body: chatBody() });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-via-test-proxy'), null);
  await r.text();
  assert.equal(seen.length, 1);
  await gw2.stop();
});
