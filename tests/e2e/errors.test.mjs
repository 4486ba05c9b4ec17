// The gateway's own errors: a provider that is down, stalls, resets or answers garbage; unknown gateways and
// providers; malformed cf-aig-* headers. Each answer is the SPEC.md section 6 envelope with the right status
// and code, and the gateway keeps serving afterwards.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStandin } from '../fakes/standin.mjs';
import { SLOW, assertEnvelope, closedPort, rawConnect, startGateway } from './harness.mjs';

let s, gw, downPort;

before(async () => {
  s = await startStandin();
  downPort = await closedPort();
  gw = await startGateway({
    config: {
      upstream_first_byte_timeout: 1.5 * SLOW,
      upstream_idle_timeout: 1 * SLOW,
      providers: {
        openai: { base_url: `${s.url}/v1` },
        mistral: { base_url: `http://127.0.0.1:${downPort}` },
        'custom-acme': { base_url: `${s.url}/acme` },
      },
      gateways: [{ id: 'default' }, { id: 'other', account: 'team' }],
    },
  });
});

after(async () => {
  await gw.stop();
  await s.close();
});

const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
const post = (p, headers = {}) =>
  fetch(gw.base(p), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

test('a provider that is down: 502, code 2005, the message names the provider', async () => {
  const r = await post('mistral/v1/chat/completions');
  assert.equal(r.status, 502);
  const msg = assertEnvelope(await r.text(), 502, 2005);
  assert.match(msg, /mistral/);
  assert.match(msg, /Failed to get response from provider/);
});

test('a provider that stalls before answering: 504 after the first-byte timeout', async () => {
  const t0 = Date.now();
  const r = await post('openai/chat/completions', { 'x-standin-stall': 'before-headers' });
  const took = Date.now() - t0;
  assert.equal(r.status, 504);
  const msg = assertEnvelope(await r.text(), 504, 2005);
  assert.match(msg, /openai/);
  assert.ok(took >= 1400 * SLOW && took < 5000 * SLOW, `answered after ${took} ms`);
  /* the stalled upstream request was abandoned, not left running */
  await s.waitFor((rec) => rec.aborted && rec.headers['x-standin-stall'] === 'before-headers', 3000 * SLOW);
});

test('cf-aig-request-timeout shortens the first-byte timeout for one request', async () => {
  const t0 = Date.now();
  const r = await post('openai/chat/completions', { 'x-standin-stall': 'before-headers', 'cf-aig-request-timeout': '200' });
  const took = Date.now() - t0;
  assert.equal(r.status, 504);
  assertEnvelope(await r.text(), 504, 2005);
  assert.ok(took < 1200 * SLOW, `answered after ${took} ms`);
});

test('a stream that stalls after its head is cut after the idle timeout', async () => {
  const r = await post('openai/chat/completions', { 'x-standin-stall': 'after-headers' });
  assert.equal(r.status, 200);
  const t0 = Date.now();
  await assert.rejects(r.text()); /* content-length was promised, the body never came: a cut, not an end */
  const took = Date.now() - t0;
  assert.ok(took >= 800 * SLOW && took < 5000 * SLOW, `cut after ${took} ms`);
});

test('a provider that resets the connection before answering: 502, 2005', async () => {
  const r = await post('openai/chat/completions', { 'x-standin-reset': 'before-headers' });
  assert.equal(r.status, 502);
  assertEnvelope(await r.text(), 502, 2005);
});

test('a provider that answers garbage: 502, 2005, "invalid response"', async () => {
  const r = await post('openai/chat/completions', { 'x-standin-garbage': '1' });
  assert.equal(r.status, 502);
  const msg = assertEnvelope(await r.text(), 502, 2005);
  assert.match(msg, /invalid response/);
});

test('the SDK sees the gateway errors as API errors with their status', async () => {
  const c = new OpenAI({ apiKey: 'k', baseURL: gw.base('mistral/v1'), maxRetries: 0 });
  await assert.rejects(c.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.APIError && e.status === 502);
});

test('unknown gateway: 404, 2001', async () => {
  const r = await fetch(`${gw.url}/v1/local/nope/openai/chat/completions`, { method: 'POST', body });
  assert.equal(r.status, 404);
  assert.match(assertEnvelope(await r.text(), 404, 2001), /nope/);
  /* a gateway of another account is not found under this one */
  const r2 = await fetch(`${gw.url}/v1/local/other/openai/models`);
  assert.equal(r2.status, 404);
  assertEnvelope(await r2.text(), 404, 2001);
  const r3 = await fetch(`${gw.url}/v1/team/other/openai/models`);
  assert.equal(r3.status, 200);
});

test('unknown provider: 400, 2008; an unconfigured custom provider too', async () => {
  const r = await post('openia/chat/completions');
  assert.equal(r.status, 400);
  const msg = assertEnvelope(await r.text(), 400, 2008);
  assert.match(msg, /openia/);
  assert.match(msg, /openai/); /* lists what exists */
  const r2 = await post('custom-nope/chat/completions');
  assert.equal(r2.status, 400);
  assert.match(assertEnvelope(await r2.text(), 400, 2008), /custom-nope/);
  const r3 = await post('custom-acme/chat/completions');
  assert.equal(r3.status, 200);
});

test('a malformed cf-aig-request-timeout: 400 naming the header', async () => {
  for (const v of ['soon', '-5', '0', '1e3', '99999999999']) {
    const r = await post('openai/chat/completions', { 'cf-aig-request-timeout': v });
    assert.equal(r.status, 400, `value ${v}`);
    assert.match(assertEnvelope(await r.text(), 400, 2109), /cf-aig-request-timeout/);
  }
});

test('paths that would leave the provider base or miss a mapping segment: 400', async () => {
  /* fetch() would normalise the dots away itself: say it raw */
  for (const p of ['openai/../admin', 'openai/%2e%2e/admin', 'openai/v1/./x']) {
    const c = await rawConnect(gw.port);
    c.send(`GET /v1/local/default/${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const [res] = await c.responses(1);
    c.close();
    assert.equal(res.status, 400, p);
    assertEnvelope(res.body, 400, 2110);
  }
  const r2 = await fetch(`${gw.url}/v1/local/default/azure-openai/only-resource`);
  assert.equal(r2.status, 400);
  assert.match(assertEnvelope(await r2.text(), 400, 2110), /resource/);
  const r3 = await fetch(`${gw.url}/nothing-here`);
  assert.equal(r3.status, 404);
  assertEnvelope(await r3.text(), 404, 2106);
  const r4 = await fetch(`${gw.url}/v1/local/default/compat/no-such-endpoint`, { method: 'POST', body });
  assert.equal(r4.status, 404);
  assert.match(assertEnvelope(await r4.text(), 404, 2106), /compat\/chat\/completions/);
});

test('after all that, the gateway still serves', async () => {
  const r = await post('openai/chat/completions');
  assert.equal(r.status, 200);
  assert.equal((await r.json()).choices[0].message.content, 'Hello from the stand-in.');
  const m = await (await fetch(`${gw.url}/metrics`)).text();
  assert.match(m, /tollgate_upstream_errors_total\{provider="mistral",kind="unreachable"\} [1-9]/);
  assert.match(m, /tollgate_upstream_errors_total\{provider="openai",kind="timeout"\} [1-9]/);
  assert.match(m, /tollgate_upstream_errors_total\{provider="openai",kind="bad_response"\} [1-9]/);
  assert.match(m, /tollgate_upstream_errors_total\{provider="openai",kind="truncated"\} [1-9]/);
});
