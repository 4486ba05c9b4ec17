// HTTPS upstreams: the gateway verifies the provider's certificate (here against upstream_ca_file, the test
// stand-in's self-signed certificate), speaks HTTP/2 when the provider offers it by ALPN, streams through it, and
// refuses a certificate it cannot verify with the documented 502.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { startStandin } from '../fakes/standin.mjs';
import { startGateway } from './harness.mjs';

const TLS_DIR = new URL('../fakes/tls/', import.meta.url);
const CERT = new URL('cert.pem', TLS_DIR);
const tls = { key: readFileSync(new URL('key.pem', TLS_DIR)), cert: readFileSync(CERT) };
const TEXT = 'Hello from the stand-in.';

let s, gw, untrusted;

before(async () => {
  s = await startStandin({ tls });
  gw = await startGateway({
    config: { workers: 1, upstream_ca_file: CERT.pathname, providers: { openai: { base_url: `${s.url}/v1` } } },
  });
  // the same stand-in, but verified against the system's trust store, where its certificate is not
  untrusted = await startGateway({ config: { providers: { openai: { base_url: `${s.url}/v1` } } } });
});

after(async () => {
  await gw?.stop();
  await untrusted?.stop();
  await s?.close();
});

describe('HTTPS upstream', () => {
  test('plain and streamed calls go over HTTP/2, reusing the connection', async () => {
    s.reset();
    const openai = new OpenAI({ apiKey: 'sk-tls', baseURL: gw.base('openai'), maxRetries: 0 });
    const r = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.choices[0].message.content, TEXT);

    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, TEXT);

    assert.equal(s.requests.length, 2);
    for (const rec of s.requests) {
      assert.equal(rec.httpVersion, '2.0');
      assert.equal(rec.headers.authorization, 'Bearer sk-tls');
      for (const name of Object.keys(rec.headers)) assert.ok(!name.startsWith('cf-aig-'), name);
    }
    assert.equal(s.requests[0].remotePort, s.requests[1].remotePort, 'the second call reused the connection');
  });

  test('a provider whose certificate does not verify: 502 with code 2005 naming the provider', async () => {
    s.reset();
    const res = await fetch(`${untrusted.base('openai')}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-tls' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] }),
    });
    assert.equal(res.status, 502);
    const body = await res.json();
    assert.equal(body.success, false);
    assert.deepEqual(body.result, []);
    assert.equal(body.error[0].code, 2005);
    assert.match(body.error[0].message, /openai/);
    assert.equal(s.requests.length, 0, 'no request may reach a provider that failed verification');
  });
});
