// Streaming: chunks reach the client as they arrive, a slow client pauses the upstream instead of filling memory,
// and a client that leaves cancels the upstream request at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import { startStandin } from '../fakes/standin.mjs';
import { SLOW, rawConnect, readStream, sleep, startGateway } from './harness.mjs';

let s, gw;

before(async () => {
  s = await startStandin();
  gw = await startGateway({
    config: {
      max_response_buffer: 16384,
      providers: { openai: { base_url: `${s.url}/v1` }, anthropic: { base_url: s.url } },
    },
  });
});

after(async () => {
  await gw.stop();
  await s.close();
});

const chat = (extra = {}) => JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }], ...extra });

test('a paced stream: the first chunk arrives long before the stream ends', async () => {
  const res = await fetch(gw.base('openai/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'x-standin-pace-ms': '150' },
    body: chat(),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const times = [];
  const all = await readStream(res, (chunk, ms) => { if (chunk.includes('"content":"')) times.push(ms); });
  assert.ok(all.endsWith('data: [DONE]\n\n'));
  /* 5 pieces, 150 ms apart: the first content chunk must not wait for the rest */
  const total = times[times.length - 1];
  assert.ok(times.length >= 4, `content arrived in ${times.length} chunk(s): buffered`);
  assert.ok(total >= 500, `stream lasted ${total} ms`);
  assert.ok(times[0] < total - 400, `first chunk at ${times[0]} ms, last at ${total} ms`);
});

test('the SDK reads a paced stream chunk by chunk', async () => {
  const openai = new OpenAI({ apiKey: 'k', baseURL: gw.base('openai'), maxRetries: 0 });
  const stream = await openai.chat.completions.create(
    { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] },
    { headers: { 'x-standin-pace-ms': '100' } },
  );
  const t0 = Date.now();
  const arrivals = [];
  for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) arrivals.push(Date.now() - t0);
  assert.equal(arrivals.length, 5);
  assert.ok(arrivals[4] - arrivals[0] >= 300, `pieces arrived at ${arrivals}`);
});

test('a client that disconnects mid-stream cancels the upstream request', async () => {
  s.reset();
  const ac = new AbortController();
  const res = await fetch(gw.base('openai/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-standin-pace-ms': '100', 'x-standin-chunks': '1000' },
    body: chat(),
    signal: ac.signal,
  });
  const reader = res.body.getReader();
  await reader.read(); /* the stream has started */
  const t0 = Date.now();
  ac.abort();
  const rec = await s.waitFor((r) => r.aborted, 3000 * SLOW);
  assert.ok(rec.abortedAt - t0 < 1000 * SLOW, `upstream cancelled ${rec.abortedAt - t0} ms after the client left`);
  assert.equal(rec.outcome, 'client-aborted');
});

test('a client that stops reading pauses the upstream; the stream completes when it reads again', async () => {
  s.reset();
  /* about 2.5 MB of SSE, sent as fast as the stand-in can */
  const chunks = 20000;
  const body = chat();
  const received = await new Promise((resolve, reject) => {
    const req = http.request(gw.base('openai/chat/completions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-standin-chunks': String(chunks) },
    }, (res) => {
      let n = 0;
      res.pause(); /* read nothing for a while */
      setTimeout(() => {
        res.on('data', (d) => { n += d.length; });
        res.on('end', () => resolve(n));
        res.resume();
      }, 1500 * SLOW);
    });
    req.on('error', reject);
    req.end(body);
  });
  assert.ok(received > 2_000_000, `received ${received} bytes`);
  const rec = s.requests[0];
  assert.equal(rec.outcome, 'completed');
  /* the stand-in had to wait for the gateway: the gateway stopped reading instead of buffering it all */
  assert.ok(rec.drainWaits > 0, 'the upstream was never paused');
});

test('chunked framing to the client ends with the terminal chunk; a reset upstream truncates it', async () => {
  const c = await rawConnect(gw.port);
  const body = chat();
  c.send(`POST /v1/local/default/openai/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  const [r] = await c.responses(1);
  assert.equal(r.status, 200);
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.ok(r.raw.endsWith('0\r\n\r\n'));
  assert.ok(r.body.includes('[DONE]'));
  c.close();

  const c2 = await rawConnect(gw.port);
  c2.send(`POST /v1/local/default/openai/chat/completions HTTP/1.1\r\nHost: x\r\nx-standin-reset: mid-stream\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  await c2.untilClosed();
  assert.ok(c2.received.startsWith('HTTP/1.1 200'));
  assert.ok(c2.received.includes('Hello'));
  assert.ok(!c2.received.endsWith('0\r\n\r\n'), 'a cut stream must not look complete');
});

test('HTTP/1.0 client: the stream is delimited by the close', async () => {
  const c = await rawConnect(gw.port);
  const body = chat();
  c.send(`POST /v1/local/default/openai/chat/completions HTTP/1.0\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  await c.untilClosed();
  assert.ok(c.received.startsWith('HTTP/1.1 200'));
  assert.ok(!/transfer-encoding/i.test(c.received));
  assert.ok(c.received.includes('connection: close'));
  assert.ok(c.received.endsWith('data: [DONE]\n\n'));
});

test('many concurrent streams on one gateway all complete', async () => {
  const n = 50;
  const runs = [];
  for (let i = 0; i < n; i++) {
    runs.push(fetch(gw.base('openai/chat/completions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-standin-pace-ms': '20' },
      body: chat(),
    }).then((r) => readStream(r)));
  }
  const bodies = await Promise.all(runs);
  for (const b of bodies) assert.ok(b.endsWith('data: [DONE]\n\n'));
  await sleep(10);
});
