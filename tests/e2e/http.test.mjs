// Wire-level behaviour of the client-facing server: the exact request the provider receives and the exact answer
// the client gets, request framing (chunked, Expect), keep-alive and pipelining, every limit with its 4xx, and the
// timeouts for clients that are too slow. After each abuse the gateway must go on serving.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStandin } from '../fakes/standin.mjs';
import { SLOW, assertEnvelope, parseResponses, rawConnect, sleep, startGateway } from './harness.mjs';

let s, gw;
const LIMITS = { max_request_body: 65536, max_header_size: 8192, max_headers: 20, max_url_length: 1024 };

before(async () => {
  s = await startStandin();
  gw = await startGateway({
    config: {
      ...LIMITS,
      client_header_timeout: 0.6 * SLOW,
      client_body_timeout: 0.6 * SLOW,
      keepalive_timeout: 0.8 * SLOW,
      providers: { openai: { base_url: `${s.url}/v1` } },
    },
  });
});

after(async () => {
  await gw.stop();
  await s.close();
});

const CHAT = '/v1/local/default/openai/chat/completions';
const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });

async function exchange(raw, n = 1) {
  const c = await rawConnect(gw.port);
  c.send(raw);
  const rs = await c.responses(n);
  return { c, rs };
}

async function stillServes() {
  const r = await fetch(`${gw.url}/healthz`);
  assert.equal(r.status, 200);
}

describe('what the provider receives, what the client gets', () => {
  test('method, path, query, headers and body go through; hop-by-hop and cf-aig-* do not', async () => {
    s.reset();
    const { c, rs } = await exchange(
      `POST ${CHAT}?trace=1&x=a%20b HTTP/1.1\r\n` +
        'Host: gateway.example\r\n' +
        'Authorization: Bearer sk-wire\r\n' +
        'Content-Type: application/json\r\n' +
        'X-Custom: Some Value\r\n' +
        'X-Empty:\r\n' +
        'Connection: keep-alive, X-Hop\r\n' +
        'X-Hop: secret\r\n' +
        'Keep-Alive: timeout=5\r\n' +
        'TE: trailers\r\n' +
        'cf-aig-metadata: {"a":1}\r\n' +
        'CF-AIG-Cache-TTL: 600\r\n' +
        'cf-skip-cache: true\r\n' +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    c.close();
    assert.equal(rs[0].status, 200);
    const rec = s.requests[0];
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, '/v1/chat/completions?trace=1&x=a%20b');
    assert.equal(rec.body, body);
    /* exactly these headers, in this order, with the gateway's Host and Content-Length; the cache TTL makes the
     * answer cacheable, so the gateway asks for it uncompressed (doc/cache.md) */
    const names = [];
    for (let i = 0; i < rec.rawHeaders.length; i += 2) names.push(rec.rawHeaders[i].toLowerCase());
    assert.deepEqual(names, ['host', 'authorization', 'content-type', 'x-custom', 'x-empty', 'accept-encoding', 'content-length']);
    assert.equal(rec.headers['accept-encoding'], 'identity');
    assert.equal(rec.headers.host, new URL(s.url).host);
    assert.equal(rec.headers.authorization, 'Bearer sk-wire');
    assert.equal(rec.headers['x-custom'], 'Some Value');
    assert.equal(rec.headers['x-empty'], '');
    assert.equal(rec.headers['content-length'], String(body.length));
  });

  test('the answer: the provider status, headers and body, framed by the gateway', async () => {
    const { c, rs } = await exchange(
      `POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nx-standin-status: 418\r\n\r\n${body}`,
    );
    c.close();
    const r = rs[0];
    assert.equal(r.status, 418);
    assert.match(r.headers['x-standin-request-id'], /^\d+$/);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(Number(r.headers['content-length']), r.body.length);
    const j = JSON.parse(r.body);
    assert.equal(j.error.code, null === j.error.code ? null : j.error.code); /* the provider's own error shape */
    assert.ok(j.error.message);
    assert.ok(!('connection' in r.headers) || r.headers.connection !== 'close');
  });

  test('no Accept or Content-Type is invented for the provider', async () => {
    s.reset();
    const { c } = await exchange(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    c.close();
    assert.equal(s.requests[0].headers.accept, undefined);
    assert.equal(s.requests[0].headers['content-type'], undefined);
    assert.equal(s.requests[0].headers.expect, undefined);
  });

  test('GET and DELETE without a body carry no Content-Length upstream; HEAD gets no body', async () => {
    s.reset();
    const { c, rs } = await exchange(
      'GET /v1/local/default/openai/models HTTP/1.1\r\nHost: x\r\n\r\n' +
        'HEAD /v1/local/default/openai/models HTTP/1.1\r\nHost: x\r\n\r\n',
      1,
    );
    await sleep(100);
    c.close();
    assert.equal(rs[0].status, 200);
    assert.equal(s.requests[0].headers['content-length'], undefined);
    assert.equal(s.requests[1].method, 'HEAD');
    /* after the GET's body, the HEAD answer: headers only */
    const rest = c.received.slice(rs[0].raw.length);
    assert.match(rest, /^HTTP\/1\.1 \d{3} /);
    assert.ok(rest.endsWith('\r\n\r\n'));
  });
});

describe('the status line and the framing of answers', () => {
  test('each status relayed goes out as "HTTP/1.1 NNN Reason" with the body\'s exact Content-Length', async () => {
    const reasons = { 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' };
    for (const [code, reason] of Object.entries(reasons)) {
      s.reset();
      const extra = code === '200' ? '' : `x-standin-status: ${code}\r\n`;
      const { c, rs } = await exchange(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\n${extra}Content-Length: ${body.length}\r\n\r\n${body}`);
      c.close();
      assert.ok(c.received.startsWith(`HTTP/1.1 ${code} ${reason}\r\n`), `status line for ${code}: ${c.received.slice(0, 40)}`);
      assert.equal(rs[0].status, Number(code));
      assert.equal(Number(rs[0].headers['content-length']), Buffer.byteLength(rs[0].body), `content-length for ${code}`);
      assert.ok(rs[0].body.length > 0);
    }
  });
});

describe('request framing', () => {
  test('a chunked request body is forwarded whole, with a Content-Length', async () => {
    s.reset();
    const half = body.length >> 1;
    const chunked = `${half.toString(16)}\r\n${body.slice(0, half)}\r\n${(body.length - half).toString(16)}\r\n${body.slice(half)}\r\n0\r\n\r\n`;
    const { c, rs } = await exchange(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`);
    c.close();
    assert.equal(rs[0].status, 200);
    assert.equal(s.requests[0].body, body);
    assert.equal(s.requests[0].headers['content-length'], String(body.length));
    assert.equal(s.requests[0].headers['transfer-encoding'], undefined);
  });

  test('Expect: 100-continue gets 100 Continue, then the answer', async () => {
    const c = await rawConnect(gw.port);
    c.send(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`);
    await c.untilText('HTTP/1.1 100 Continue\r\n\r\n');
    c.send(body);
    const rs = await c.responses(1);
    c.close();
    assert.equal(rs[0].status, 200);
  });

  test('Expect with a body that is too large: 413 at once, no 100 Continue', async () => {
    const c = await rawConnect(gw.port);
    c.send(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10000000\r\n\r\n`);
    const rs = await c.responses(1);
    assert.equal(rs[0].status, 413);
    assertEnvelope(rs[0].body, 413, 2104);
    assert.ok(!c.received.includes('100 Continue'));
    await c.untilClosed();
  });

  test('an unknown expectation: 417', async () => {
    const { rs } = await exchange(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 2\r\n\r\n{}`);
    assert.equal(rs[0].status, 417);
  });
});

describe('keep-alive and pipelining', () => {
  test('several requests on one connection, one after the other', async () => {
    const c = await rawConnect(gw.port);
    for (let i = 1; i <= 3; i++) {
      c.send(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      const rs = await c.responses(i);
      assert.equal(rs.length, i);
      assert.equal(rs[i - 1].status, 200);
    }
    assert.ok(!c.closed);
    c.close();
  });

  test('pipelined requests are answered in order', async () => {
    const one = `POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const { c, rs } = await exchange(one + 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' + one + 'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n', 4);
    c.close();
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 404]);
    assert.match(rs[0].body, /chat\.completion/);
    assert.equal(rs[1].body, '{"status":"ok"}');
  });

  test('Connection: close ends the connection after the answer', async () => {
    const c = await rawConnect(gw.port);
    c.send('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await c.untilClosed();
    const rs = parseResponses(c.received);
    assert.equal(rs[0].status, 200);
    assert.equal(rs[0].headers.connection, 'close');
  });

  test('an idle keep-alive connection is closed after keepalive_timeout', async () => {
    const c = await rawConnect(gw.port);
    c.send('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.responses(1);
    const t0 = Date.now();
    await c.untilClosed(5000 * SLOW);
    const idle = Date.now() - t0;
    assert.ok(idle >= 600 * SLOW, `closed after ${idle} ms`);
  });
});

describe('limits answer 4xx and the server keeps serving', () => {
  test('body over max_request_body (Content-Length): 413', async () => {
    const { c, rs } = await exchange(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n` + 'x'.repeat(1000));
    assert.equal(rs[0].status, 413);
    assert.match(assertEnvelope(rs[0].body, 413, 2104), /too large/);
    assert.equal(rs[0].headers.connection, 'close');
    await c.untilClosed();
    await stillServes();
  });

  test('chunked body growing over max_request_body: 413', async () => {
    const c = await rawConnect(gw.port);
    c.send(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const chunk = `4000\r\n${'y'.repeat(0x4000)}\r\n`;
    for (let i = 0; i < 6 && !c.closed; i++) { c.send(chunk); await sleep(5); }
    const rs = await c.responses(1);
    assert.equal(rs[0].status, 413);
    await stillServes();
  });

  test('too many headers: 431', async () => {
    let h = '';
    for (let i = 0; i < 25; i++) h += `X-H${i}: v\r\n`;
    const { rs } = await exchange(`GET /healthz HTTP/1.1\r\n${h}\r\n`);
    assert.equal(rs[0].status, 431);
    assertEnvelope(rs[0].body, 431, 2103);
    await stillServes();
  });

  test('headers over max_header_size: 431', async () => {
    const { rs } = await exchange(`GET /healthz HTTP/1.1\r\nX-Big: ${'b'.repeat(9000)}\r\n\r\n`);
    assert.equal(rs[0].status, 431);
    assertEnvelope(rs[0].body, 431, 2102);
    await stillServes();
  });

  test('URL over max_url_length: 414', async () => {
    const { rs } = await exchange(`GET /${'u'.repeat(2000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(rs[0].status, 414);
    assertEnvelope(rs[0].body, 414, 2101);
    await stillServes();
  });

  test('malformed requests: 400 and the connection is closed', async () => {
    for (const raw of [
      'GET / HTTP/1.1\r\nHost x\r\n\r\n',
      'BLAH\r\n\r\n',
      'POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      'GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n',
      '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    ]) {
      const c = await rawConnect(gw.port);
      c.send(raw);
      await c.untilClosed();
      assert.match(c.received, /^HTTP\/1\.1 400 /, JSON.stringify(raw));
    }
    await stillServes();
  });

  test('a client that sends its head too slowly: 408, closed', async () => {
    const c = await rawConnect(gw.port);
    c.send('GET /healthz HTTP/1.1\r\n');
    const t0 = Date.now();
    const timer = setInterval(() => { if (!c.closed) c.send('X-Drip: 1\r\n'); }, 250 * SLOW); /* slowloris */
    await c.untilClosed(5000 * SLOW);
    clearInterval(timer);
    assert.match(c.received, /^HTTP\/1\.1 408 /);
    assert.ok(Date.now() - t0 < 3000 * SLOW);
  });

  test('a client that stops sending its body: 408, closed', async () => {
    const c = await rawConnect(gw.port);
    c.send(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model"`);
    await c.untilClosed(5000 * SLOW);
    assert.match(c.received, /^HTTP\/1\.1 408 /);
    await stillServes();
  });

  test('a connection that never sends anything is closed', async () => {
    const c = await rawConnect(gw.port);
    await c.untilClosed(5000 * SLOW);
    assert.equal(c.received, '');
  });
});
