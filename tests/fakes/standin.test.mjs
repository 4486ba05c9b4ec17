// Tests for the provider stand-in (standin.mjs), driven by the official OpenAI and
// Anthropic SDKs pointed straight at it (no gateway in between), plus plain fetch for
// the Google AI Studio shapes and raw node:http / node:net for the misbehaviour controls.
// Run: cd tests && node --test fakes/
//
// Expected numbers follow standin.mjs's token rule: prompt tokens = 7 + words of the
// prompt text, completion tokens = number of pieces (5 by default).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startStandin, promptTokensFor, piecesFor, toolInputFor, toolArgsPieces } from './standin.mjs';

const TEXT = 'Hello from the stand-in.';
let s;
let openai;
let anthropic;

before(async () => {
  s = await startStandin();
  openai = new OpenAI({ apiKey: 'sk-test', baseURL: s.url + '/v1', maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'sk-ant-test', baseURL: s.url, maxRetries: 0 });
});

after(async () => {
  await s.close();
});

/** A unique tag header so a test can find its own record among concurrent ones. */
let tagNo = 0;
const tag = () => `t${++tagNo}`;
const byTag = (t) => (r) => r.headers['x-test-tag'] === t;

/** Parse an SSE body into [{ event, data }]. */
function parseSse(text) {
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) => {
      const ev = { event: null, data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) ev.event = line.slice(7);
        else if (line.startsWith('data: ')) ev.data += line.slice(6);
      }
      return ev;
    });
}

/** One raw HTTP exchange over a fresh socket; resolves { status, headers, body } or rejects. */
function rawRequest(path, { headers = {}, body = '{}', method = 'POST' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${s.url}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('openai: plain chat completion, usage by the token rule, headers recorded', async () => {
  const t = tag();
  const body = { model: 'gpt-test', messages: [{ role: 'user', content: 'say hello to me' }] };
  const { data, response } = await openai.chat.completions.create(body, { headers: { 'x-test-tag': t } }).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'gpt-test');
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(data.choices[0].message.content, TEXT);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.deepEqual(data.usage, {
    prompt_tokens: 11, completion_tokens: 5, total_tokens: 16, prompt_tokens_details: { cached_tokens: 0 },
  });
  assert.equal(promptTokensFor('openai.chat', body), 11);

  const rec = s.requests.find(byTag(t));
  assert.ok(rec, 'request recorded');
  assert.equal(response.headers.get('x-standin-request-id'), String(rec.id));
  assert.equal(data.id, `chatcmpl-standin-${rec.id}`);
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, '/v1/chat/completions');
  assert.equal(rec.headers.authorization, 'Bearer sk-test');
  assert.ok(rec.rawHeaders.includes('x-test-tag'));
  assert.deepEqual(JSON.parse(rec.body), body);
  assert.equal(rec.route, 'openai.chat');
  const done = await s.waitFor((r) => r.id === rec.id && r.finishedAt !== null, 1000);
  assert.equal(done.aborted, false);
  assert.equal(done.outcome, 'completed');
});

test('openai: streamed chat parses back to the text; include_usage gives usage', async () => {
  const stream = await openai.chat.completions.create({
    model: 'gpt-test', stream: true, messages: [{ role: 'user', content: 'hi' }],
  });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, TEXT);
  assert.equal(finish, 'stop');

  const withUsage = await openai.chat.completions.create({
    model: 'gpt-test', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi there' }],
  });
  let usage = null;
  let last = null;
  for await (const chunk of withUsage) {
    last = chunk;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.deepEqual(last.choices, []);
  assert.deepEqual(usage, { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14, prompt_tokens_details: { cached_tokens: 0 } });
});

test('openai: any base-path prefix hits the handler; chunks control; embeddings; models', async () => {
  const prefixed = new OpenAI({ apiKey: 'sk-test', baseURL: s.url + '/openai/v1', maxRetries: 0 });
  const r = await prefixed.chat.completions.create(
    { model: 'm', messages: [{ role: 'user', content: 'x' }] },
    { headers: { 'x-standin-chunks': '7' } },
  );
  assert.equal(r.choices[0].message.content, piecesFor(7).join(''));
  assert.equal(r.choices[0].message.content, 'Hello from the stand-in.Hello from');
  assert.equal(r.usage.completion_tokens, 7);

  // The SDK asks for base64 by default and decodes it to floats.
  const emb = await openai.embeddings.create({ model: 'emb', input: ['one two', 'three'] });
  assert.equal(emb.data.length, 2);
  assert.equal(emb.data[0].embedding.length, 8);
  assert.ok(emb.data[0].embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
  assert.deepEqual(emb.usage, { prompt_tokens: 10, total_tokens: 10 });

  const models = await openai.models.list();
  assert.ok(models.data.some((m) => m.id === 'standin-model'));
});

test('anthropic: plain and streamed messages parse back to the text', async () => {
  const t = tag();
  const msg = await anthropic.messages.create(
    { model: 'claude-test', max_tokens: 64, system: 'be brief', messages: [{ role: 'user', content: 'say hello' }] },
    { headers: { 'x-test-tag': t } },
  );
  assert.equal(msg.type, 'message');
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.model, 'claude-test');
  assert.equal(msg.content[0].type, 'text');
  assert.equal(msg.content[0].text, TEXT);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.usage.input_tokens, 11);
  assert.equal(msg.usage.output_tokens, 5);
  // @anthropic-ai/sdk 1.x sends `apiKey` as `Authorization: Bearer …`, not `x-api-key`.
  const rec = s.requests.find(byTag(t));
  assert.equal(rec.headers.authorization, 'Bearer sk-ant-test');
  assert.ok(rec.headers['anthropic-version']);

  // The classic `x-api-key` header (older SDKs, curl): set by hand with apiKey: null.
  const t2 = tag();
  const classic = new Anthropic({ apiKey: null, baseURL: s.url, maxRetries: 0, defaultHeaders: { 'X-Api-Key': 'sk-ant-test' } });
  await classic.messages.create({ model: 'c', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-test-tag': t2 } });
  const rec2 = s.requests.find(byTag(t2));
  assert.equal(rec2.headers['x-api-key'], 'sk-ant-test');
  assert.equal(rec2.headers.authorization, undefined);

  const stream = anthropic.messages.stream({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
  const types = [];
  stream.on('streamEvent', (ev) => types.push(ev.type));
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, TEXT);
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.input_tokens, 8);
  assert.equal(final.usage.output_tokens, 5);
  assert.deepEqual(types, [
    'message_start', 'content_block_start', ...Array(5).fill('content_block_delta'),
    'content_block_stop', 'message_delta', 'message_stop',
  ]);
});

test('google: generateContent and streamGenerateContent (alt=sse and JSON array)', async () => {
  const req = { contents: [{ role: 'user', parts: [{ text: 'hello there gemini' }] }] };
  const res = await fetch(`${s.url}/v1beta/models/gemini-test:generateContent`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': 'g-test' }, body: JSON.stringify(req),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-length'), /^\d+$/);
  const j = await res.json();
  assert.equal(j.candidates[0].content.role, 'model');
  assert.equal(j.candidates[0].content.parts[0].text, TEXT);
  assert.equal(j.candidates[0].finishReason, 'STOP');
  assert.deepEqual(j.usageMetadata, { promptTokenCount: 10, candidatesTokenCount: 5, totalTokenCount: 15 });
  assert.equal(j.modelVersion, 'gemini-test');

  const sres = await fetch(`${s.url}/v1beta/models/gemini-test:streamGenerateContent?alt=sse`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req),
  });
  assert.match(sres.headers.get('content-type'), /^text\/event-stream/);
  const events = parseSse(await sres.text()).map((e) => JSON.parse(e.data));
  assert.equal(events.length, 5);
  assert.equal(events.map((e) => e.candidates[0].content.parts[0].text).join(''), TEXT);
  assert.ok(events.every((e) => e.usageMetadata.promptTokenCount === 10));
  assert.equal(events.at(-1).candidates[0].finishReason, 'STOP');
  assert.equal(events.at(-1).usageMetadata.totalTokenCount, 15);
  assert.ok(events.slice(0, -1).every((e) => e.candidates[0].finishReason === undefined));

  const ares = await fetch(`${s.url}/v1beta/models/gemini-test:streamGenerateContent`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req),
  });
  const arr = JSON.parse(await ares.text());
  assert.equal(arr.map((e) => e.candidates[0].content.parts[0].text).join(''), TEXT);

  const eres = await fetch(`${s.url}/v1beta/models/gemini-test:generateContent`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-standin-status': '429' }, body: JSON.stringify(req),
  });
  assert.equal(eres.status, 429);
  assert.deepEqual((await eres.json()).error.status, 'RESOURCE_EXHAUSTED');
});

test('x-standin-status: 429 surfaces as each SDK\'s RateLimitError', async () => {
  const opts = { headers: { 'x-standin-status': '429' } };
  await assert.rejects(
    openai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, opts),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, 429);
      assert.equal(err.code, 'rate_limit_exceeded');
      return true;
    },
  );
  await assert.rejects(
    anthropic.messages.create({ model: 'c', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }, opts),
    (err) => {
      assert.ok(err instanceof Anthropic.RateLimitError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, 429);
      assert.equal(err.error.error.type, 'rate_limit_error');
      return true;
    },
  );
  // A streamed request gets the JSON error too.
  await assert.rejects(
    openai.chat.completions.create({ model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-standin-status': '503' } }),
    (err) => err instanceof OpenAI.InternalServerError && err.status === 503,
  );
});

const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, n: { type: 'integer' } }, required: ['city'] } },
};

test('x-standin-tool-calls: OpenAI tool calls, plain and streamed (per-index deltas), and text without tools', async () => {
  assert.deepEqual(toolInputFor(3), { city: 'Paris', n: 3 });
  for (const i of [0, 1, 7]) {
    const pieces = toolArgsPieces(i);
    assert.equal(pieces.length, 3);
    assert.ok(pieces.every((p) => p.length > 0));
    assert.equal(pieces.join(''), JSON.stringify(toolInputFor(i)));
  }

  const t = tag();
  const body = { model: 'gpt-test', messages: [{ role: 'user', content: 'weather in paris' }],
    tools: [WEATHER_TOOL, { type: 'function', function: { name: 'other' } }] };
  const r = await openai.chat.completions.create(body, { headers: { 'x-standin-tool-calls': '2', 'x-test-tag': t } });
  const rec = s.requests.find(byTag(t));
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.content, null);
  assert.deepEqual(r.choices[0].message.tool_calls, [0, 1].map((i) => ({
    id: `call_standin_${rec.id}_${i}`, type: 'function',
    function: { name: 'get_weather', arguments: JSON.stringify(toolInputFor(i)) },
  })));
  assert.deepEqual(r.usage, { prompt_tokens: promptTokensFor('openai.chat', body), completion_tokens: 5,
    total_tokens: promptTokensFor('openai.chat', body) + 5, prompt_tokens_details: { cached_tokens: 0 } });

  // streamed: raw SSE, so the shape of each delta can be checked
  const t2 = tag();
  const res = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-standin-tool-calls': '2', 'x-test-tag': t2 },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  const events = parseSse(await res.text());
  assert.equal(events.at(-1).data, '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
  const id2 = s.requests.find(byTag(t2)).id;
  const deltas = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta);
  assert.deepEqual(deltas[0], { role: 'assistant', content: null, refusal: null,
    tool_calls: [{ index: 0, id: `call_standin_${id2}_0`, type: 'function', function: { name: 'get_weather', arguments: '' } }] });
  assert.deepEqual(deltas.slice(1, 4), toolArgsPieces(0).map((p) => ({ tool_calls: [{ index: 0, function: { arguments: p } }] })));
  assert.deepEqual(deltas[4], {
    tool_calls: [{ index: 1, id: `call_standin_${id2}_1`, type: 'function', function: { name: 'get_weather', arguments: '' } }] });
  assert.deepEqual(deltas.slice(5, 8), toolArgsPieces(1).map((p) => ({ tool_calls: [{ index: 1, function: { arguments: p } }] })));
  assert.deepEqual(deltas[8], {});
  assert.equal(deltas.length, 9);
  const finishes = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].finish_reason);
  assert.deepEqual(finishes, [...Array(8).fill(null), 'tool_calls']);
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage.completion_tokens, 5);

  // streamed through the SDK: arguments reassembled per index
  const stream = await openai.chat.completions.create({ ...body, stream: true }, { headers: { 'x-standin-tool-calls': '3' } });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { id: '', name: '', args: '' };
      if (tc.id) calls[tc.index].id = tc.id;
      if (tc.function?.name) calls[tc.index].name = tc.function.name;
      calls[tc.index].args += tc.function?.arguments ?? '';
    }
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.length, 3);
  calls.forEach((c, i) => {
    assert.equal(c.name, 'get_weather');
    assert.match(c.id, new RegExp(`^call_standin_\\d+_${i}$`));
    assert.deepEqual(JSON.parse(c.args), toolInputFor(i));
  });

  // more than 8 counts as 8; no tools in the request: the usual text answer; 0 is ignored
  const many = await openai.chat.completions.create(body, { headers: { 'x-standin-tool-calls': '50' } });
  assert.equal(many.choices[0].message.tool_calls.length, 8);
  const noTools = await openai.chat.completions.create(
    { model: 'gpt-test', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-standin-tool-calls': '2' } });
  assert.equal(noTools.choices[0].message.content, TEXT);
  assert.equal(noTools.choices[0].finish_reason, 'stop');
  assert.equal(noTools.choices[0].message.tool_calls, undefined);
  const zero = await openai.chat.completions.create(body, { headers: { 'x-standin-tool-calls': '0' } });
  assert.equal(zero.choices[0].message.content, TEXT);
});

test('x-standin-tool-calls: Anthropic tool_use blocks, plain and streamed (input_json_delta pieces)', async () => {
  const tools = [{ name: 'get_weather', description: 'weather for a city', input_schema: WEATHER_TOOL.function.parameters }];
  const body = { model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'weather in paris' }], tools };
  const t = tag();
  const msg = await anthropic.messages.create(body, { headers: { 'x-standin-tool-calls': '2', 'x-test-tag': t } });
  const rec = s.requests.find(byTag(t));
  assert.equal(msg.stop_reason, 'tool_use');
  assert.deepEqual(msg.content, [0, 1].map((i) => ({
    type: 'tool_use', id: `toolu_standin_${rec.id}_${i}`, name: 'get_weather', input: toolInputFor(i) })));
  assert.equal(msg.usage.input_tokens, promptTokensFor('anthropic.messages', body));
  assert.equal(msg.usage.output_tokens, 5);

  // raw events
  const t2 = tag();
  const res = await fetch(`${s.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-standin-tool-calls': '2', 'x-test-tag': t2 },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const events = parseSse(await res.text());
  const id2 = s.requests.find(byTag(t2)).id;
  const perCall = (i) => [
    { event: 'content_block_start', data: { type: 'content_block_start', index: i,
      content_block: { type: 'tool_use', id: `toolu_standin_${id2}_${i}`, name: 'get_weather', input: {} } } },
    ...toolArgsPieces(i).map((p) => ({ event: 'content_block_delta',
      data: { type: 'content_block_delta', index: i, delta: { type: 'input_json_delta', partial_json: p } } })),
    { event: 'content_block_stop', data: { type: 'content_block_stop', index: i } },
  ];
  const parsed = events.map((e) => ({ event: e.event, data: JSON.parse(e.data) }));
  assert.equal(parsed[0].event, 'message_start');
  assert.deepEqual(parsed.slice(1, -2), [...perCall(0), ...perCall(1)]);
  assert.deepEqual(parsed.at(-2), { event: 'message_delta', data: { type: 'message_delta',
    delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 5 } } });
  assert.deepEqual(parsed.at(-1), { event: 'message_stop', data: { type: 'message_stop' } });

  // the SDK's stream accumulates the input JSON into the same objects
  const stream = anthropic.messages.stream(body, { headers: { 'x-standin-tool-calls': '3' } });
  const final = await stream.finalMessage();
  assert.equal(final.stop_reason, 'tool_use');
  assert.deepEqual(final.content.map((b) => [b.type, b.name, b.input]),
    [0, 1, 2].map((i) => ['tool_use', 'get_weather', toolInputFor(i)]));

  // no tools: text
  const text = await anthropic.messages.create({ ...body, tools: undefined }, { headers: { 'x-standin-tool-calls': '2' } });
  assert.equal(text.content[0].text, TEXT);
  assert.equal(text.stop_reason, 'end_turn');
});

test('pacing spaces the chunks over time', async () => {
  const t0 = Date.now();
  const stream = await openai.chat.completions.create(
    { model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] },
    { headers: { 'x-standin-pace-ms': '100' } },
  );
  const arrivals = [];
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) arrivals.push(Date.now() - t0);
  }
  const end = Date.now() - t0;
  assert.equal(arrivals.length, 5);
  assert.ok(arrivals[0] < 200, `first piece at ${arrivals[0]} ms`);
  assert.ok(end >= 450, `stream ended at ${end} ms`);
  assert.ok(end - arrivals[0] >= 400, `first piece ${arrivals[0]} ms, end ${end} ms`);
  for (let i = 1; i < arrivals.length; i++) assert.ok(arrivals[i] - arrivals[i - 1] >= 60, `gaps ${arrivals}`);
});

test('a client abort mid-stream marks the record aborted', async () => {
  const t = tag();
  const stream = await openai.chat.completions.create(
    { model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] },
    { headers: { 'x-standin-pace-ms': '100', 'x-test-tag': t } },
  );
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) break; // leaving the loop aborts the request
  }
  const rec = await s.waitFor((r) => byTag(t)(r) && r.aborted, 2000);
  assert.equal(rec.aborted, true);
  assert.equal(rec.outcome, 'client-aborted');
  assert.equal(typeof rec.abortedAt, 'number');
  assert.equal(rec.finishedAt, null);
});

test('delay, stall, reset, garbage and body-bytes controls', async () => {
  // delay
  let t0 = Date.now();
  const delayed = await rawRequest('/v1/chat/completions', { headers: { 'x-standin-delay-ms': '150' } });
  assert.equal(delayed.status, 200);
  assert.ok(Date.now() - t0 >= 140);

  // body-bytes: content-length set, body exactly N bytes, still valid
  const big = await rawRequest('/v1/chat/completions', { headers: { 'x-standin-body-bytes': '100000' } });
  assert.equal(big.headers['content-length'], '100000');
  assert.equal(Buffer.byteLength(big.body), 100000);
  assert.ok(JSON.parse(big.body).choices[0].message.content.startsWith(TEXT));

  // reset before headers and garbage: the client sees a broken exchange
  await assert.rejects(rawRequest('/v1/chat/completions', { headers: { 'x-standin-reset': 'before-headers' } }));
  await assert.rejects(rawRequest('/v1/chat/completions', { headers: { 'x-standin-garbage': '1' } }));
  const garbage = await new Promise((resolve) => {
    const sock = net.connect(s.port, '127.0.0.1', () => {
      sock.end('POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-standin-garbage: 1\r\ncontent-length: 2\r\n\r\n{}');
    });
    let got = '';
    sock.on('data', (d) => { got += d; });
    sock.on('close', () => resolve(got));
  });
  assert.equal(garbage, 'garbage\r\n\r\n');

  // reset mid-stream: headers and two pieces, then the connection breaks
  const t = tag();
  const stream = await openai.chat.completions.create(
    { model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] },
    { headers: { 'x-standin-reset': 'mid-stream', 'x-test-tag': t } },
  );
  let text = '';
  await assert.rejects(async () => {
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  });
  assert.equal(text, 'Hello from');
  assert.equal((await s.waitFor((r) => byTag(t)(r) && r.outcome !== 'pending', 1000)).outcome, 'standin-reset');

  // stall before headers: nothing until the client gives up
  t0 = Date.now();
  await assert.rejects(
    fetch(`${s.url}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'x-standin-stall': 'before-headers' }, signal: AbortSignal.timeout(150) }),
    (err) => err.name === 'TimeoutError',
  );
  assert.ok(Date.now() - t0 >= 140);

  // stall after headers: status and the first event arrive, then nothing
  const res = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST', body: JSON.stringify({ model: 'm', stream: true, messages: [] }), headers: { 'x-standin-stall': 'after-headers' },
  });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /"role":"assistant"/);
  const next = await Promise.race([reader.read(), new Promise((r) => setTimeout(() => r('timeout'), 150))]);
  assert.equal(next, 'timeout');
  await reader.cancel();
});

test('unknown paths: 404 in OpenAI shape; control endpoints work out of process', async () => {
  const r = await rawRequest('/v1/nothing-here', { method: 'GET', body: '' });
  assert.equal(r.status, 404);
  assert.equal(JSON.parse(r.body).error.type, 'invalid_request_error');
  assert.ok(r.headers['x-standin-request-id']);

  const list = await (await fetch(`${s.url}/__standin/requests`)).json();
  assert.equal(list.length, s.requests.length);
  assert.ok(list.length > 0);
  assert.ok(!list.some((rec) => rec.path.startsWith('/__standin/')));

  const reset = await fetch(`${s.url}/__standin/reset`, { method: 'POST' });
  assert.equal(reset.status, 200);
  assert.equal(s.requests.length, 0);
  assert.deepEqual(await (await fetch(`${s.url}/__standin/requests`)).json(), []);
});

test('1,000 concurrent paced streams', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const N = 1000;
  const one = () => new Promise((resolve, reject) => {
    const req = http.request(`${s.url}/v1/chat/completions`, {
      method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-standin-pace-ms': '50' },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end('{"model":"m","stream":true,"messages":[]}');
  });
  const t0 = Date.now();
  const bodies = await Promise.all(Array.from({ length: N }, one));
  const elapsed = Date.now() - t0;
  agent.destroy();
  for (const b of bodies) {
    const text = parseSse(b).filter((e) => e.data !== '[DONE]')
      .map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, TEXT);
  }
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);
  s.reset();
});
