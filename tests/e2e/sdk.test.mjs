// The official SDKs pointed at the gateway, with the provider stand-in behind it: plain and streamed calls come
// back as the SDK expects, the provider sees the client's own key and request, and never a cf-aig-* header.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startStandin, promptTokensFor } from '../fakes/standin.mjs';
import { startGateway, readStream } from './harness.mjs';

const TEXT = 'Hello from the stand-in.';
let s, gw, openai, anthropic;

before(async () => {
  s = await startStandin();
  gw = await startGateway({
    config: {
      providers: {
        openai: { base_url: `${s.url}/v1` },
        anthropic: { base_url: s.url },
        'google-ai-studio': { base_url: s.url },
        groq: { base_url: `${s.url}/openai/v1` },
        'custom-acme': { base_url: `${s.url}/acme/v1` },
      },
    },
  });
  openai = new OpenAI({
    apiKey: 'sk-test-openai',
    baseURL: gw.base('openai'),
    maxRetries: 0,
    defaultHeaders: { 'cf-aig-metadata': '{"user":"u1"}', 'cf-aig-event-id': 'ev-1', 'cf-aig-cache-ttl': '3600' },
  });
  anthropic = new Anthropic({ apiKey: 'sk-ant-test', baseURL: gw.base('anthropic'), maxRetries: 0 });
});

after(async () => {
  await gw.stop();
  await s.close();
});

function noGatewayHeaders(rec) {
  for (const name of Object.keys(rec.headers)) assert.ok(!name.startsWith('cf-aig-'), `${name} reached the provider`);
}

describe('openai SDK through the gateway', () => {
  test('plain chat completion', async () => {
    s.reset();
    const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello please' }], temperature: 0.2 };
    const r = await openai.chat.completions.create(params);
    assert.equal(r.choices[0].message.content, TEXT);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.usage.prompt_tokens, promptTokensFor('openai.chat', params));
    assert.equal(s.requests.length, 1);
    const rec = s.requests[0];
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, '/v1/chat/completions');
    assert.equal(rec.headers.authorization, 'Bearer sk-test-openai');
    assert.deepEqual(JSON.parse(rec.body), params); // the body went through untouched
    noGatewayHeaders(rec);
  });

  test('streamed chat completion', async () => {
    s.reset();
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream please' }],
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, TEXT);
    assert.equal(usage.completion_tokens, 5);
    assert.equal(s.requests[0].headers.authorization, 'Bearer sk-test-openai');
    assert.equal(s.requests[0].stream, true);
    noGatewayHeaders(s.requests[0]);
  });

  test('embeddings and models', async () => {
    s.reset();
    const e = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['one two', 'three'] });
    assert.equal(e.data.length, 2);
    assert.ok(e.data[0].embedding.length > 0);
    const models = await openai.models.list();
    assert.ok(models.data.length > 0);
    assert.equal(s.requests[1].method, 'GET');
    assert.equal(s.requests[1].url, '/v1/models');
  });

  test('a provider error reaches the SDK as its own error type, unchanged', async () => {
    s.reset();
    await assert.rejects(
      openai.chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-standin-status': '429' } },
      ),
      (err) => err instanceof OpenAI.RateLimitError && err.status === 429,
    );
    await assert.rejects(
      openai.chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-standin-status': '401' } },
      ),
      (err) => err instanceof OpenAI.AuthenticationError && err.status === 401,
    );
  });

  test('a custom provider and an OpenAI-shaped provider with its own base path', async () => {
    s.reset();
    const acme = new OpenAI({ apiKey: 'acme-key', baseURL: gw.base('custom-acme'), maxRetries: 0 });
    const r = await acme.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.choices[0].message.content, TEXT);
    assert.equal(s.requests[0].url, '/acme/v1/chat/completions');
    assert.equal(s.requests[0].headers.authorization, 'Bearer acme-key');
    const groq = new OpenAI({ apiKey: 'gsk', baseURL: gw.base('groq'), maxRetries: 0 });
    await groq.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(s.requests[1].url, '/openai/v1/chat/completions');
  });
});

describe('@anthropic-ai/sdk through the gateway', () => {
  test('plain message', async () => {
    s.reset();
    const m = await anthropic.messages.create({
      model: 'claude-test-model',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'hello there' }],
    });
    assert.equal(m.content[0].text, TEXT);
    assert.equal(m.stop_reason, 'end_turn');
    const rec = s.requests[0];
    assert.equal(rec.url, '/v1/messages');
    /* this SDK version sends its key as a bearer token; either way it must arrive as sent */
    assert.equal(rec.headers.authorization ?? rec.headers['x-api-key'], rec.headers.authorization ? 'Bearer sk-ant-test' : 'sk-ant-test');
    assert.ok(rec.headers['anthropic-version']);
    noGatewayHeaders(rec);
  });

  test('streamed message', async () => {
    s.reset();
    const stream = anthropic.messages.stream({
      model: 'claude-test-model',
      max_tokens: 64,
      messages: [{ role: 'user', content: 'stream it' }],
    });
    let text = '';
    stream.on('text', (t) => { text += t; });
    const final = await stream.finalMessage();
    assert.equal(text, TEXT);
    assert.equal(final.usage.output_tokens, 5);
  });

  test('the classic x-api-key header goes through', async () => {
    s.reset();
    const c = new Anthropic({ apiKey: null, baseURL: gw.base('anthropic'), maxRetries: 0, defaultHeaders: { 'X-Api-Key': 'sk-ant-classic' } });
    await c.messages.create({ model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(s.requests[0].headers['x-api-key'], 'sk-ant-classic');
  });

  test('a provider error becomes the SDK error with the status', async () => {
    await assert.rejects(
      anthropic.messages.create(
        { model: 'claude', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-standin-status': '529' } },
      ),
      (err) => err instanceof Anthropic.APIError && err.status === 529,
    );
  });
});

describe('Google AI Studio through the gateway', () => {
  test('generateContent and streamGenerateContent (alt=sse), key in the query', async () => {
    s.reset();
    const body = { contents: [{ role: 'user', parts: [{ text: 'hi google' }] }] };
    const r = await fetch(gw.base('google-ai-studio/v1beta/models/gemini-2.5-flash:generateContent?key=g-key'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.candidates[0].content.parts[0].text, TEXT);
    assert.equal(s.requests[0].url, '/v1beta/models/gemini-2.5-flash:generateContent?key=g-key');

    const rs = await fetch(gw.base('google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-goog-api-key': 'g-key-2' },
      body: JSON.stringify(body),
    });
    assert.equal(rs.headers.get('content-type'), 'text/event-stream');
    const all = await readStream(rs);
    const text = all.split('\n').filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)).candidates[0].content.parts[0].text).join('');
    assert.equal(text, TEXT);
    assert.equal(s.requests[1].headers['x-goog-api-key'], 'g-key-2');
  });
});
