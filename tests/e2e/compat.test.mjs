// The unified API end to end: the official OpenAI SDK pointed at {gateway}/compat with "model":
// "{provider}/{model}", the provider stand-in behind the gateway as an Anthropic-shaped provider (the request is
// translated to the Messages API and the answer back to a chat completion, whole or streamed, tool calls and
// errors included) and as OpenAI-shaped providers (the client's bytes with only the model's value replaced).
// The same SDK against a Google-AI-Studio-shaped stand-in (generateContent / streamGenerateContent /
// batchEmbedContents), and @anthropic-ai/sdk against OpenAI-shaped and Google-shaped providers.
// Also: the gateway's own 400s, cf-aig-provider / cf-aig-model, caching of compat answers, log records,
// compat/embeddings and compat/models.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { GOOGLE_THOUGHT_SIGNATURE, embeddingFor, startStandin, promptTokensFor, toolInputFor } from '../fakes/standin.mjs';
import { SLOW, assertEnvelope, startGateway } from './harness.mjs';

const TEXT = 'Hello from the stand-in.';
const PIECES = 5; // the stand-in's default piece count = its completion tokens
const KEY = 'sk-compat-test';

const WEATHER_PARAMS = {
  type: 'object',
  properties: { city: { type: 'string', description: 'the city' }, n: { type: 'integer' } },
  required: ['city'],
  additionalProperties: false,
};
const WEATHER_TOOL = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: WEATHER_PARAMS } };

let s;

before(async () => {
  s = await startStandin();
});

after(async () => {
  await s?.close();
});

function providers() {
  return {
    anthropic: { base_url: s.url },
    openai: { base_url: `${s.url}/v1` },
    groq: { base_url: `${s.url}/openai/v1` },
    'custom-acme': { base_url: `${s.url}/acme/v1` },
    'google-ai-studio': { base_url: s.url },
  };
}

/** A gateway on the stand-in's providers (config `extra` added), started before the enclosing describe block's
 * tests and handed to `set`, stopped after them. */
function useGateway(set, extra = {}) {
  let started;
  before(async () => {
    started = await startGateway({ config: { providers: providers(), ...extra } });
    set(started);
  });
  after(async () => {
    await started?.stop();
  });
}

const clientFor = (gw, opts = {}) => new OpenAI({ apiKey: KEY, baseURL: gw.base('compat'), maxRetries: 0, ...opts });

/** The only request the stand-in got since its last reset, and its parsed body. */
function only() {
  assert.equal(s.requests.length, 1, `stand-in calls: ${s.requests.map((r) => r.url).join(', ')}`);
  const rec = s.requests[0];
  return { rec, body: JSON.parse(rec.body) };
}

/** Reads an SDK chat stream: text, finish reason, usage, tool calls reassembled per index, every chunk. */
async function drain(stream) {
  const out = { text: '', finish: null, usage: null, calls: [], chunks: [] };
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    if (chunk.usage) out.usage = chunk.usage;
    const ch = chunk.choices[0];
    if (!ch) continue;
    out.text += ch.delta?.content ?? '';
    if (ch.finish_reason) out.finish = ch.finish_reason;
    for (const tc of ch.delta?.tool_calls ?? []) {
      out.calls[tc.index] ??= { id: null, type: null, name: '', args: '' };
      const c = out.calls[tc.index];
      if (tc.id) c.id = tc.id;
      if (tc.type) c.type = tc.type;
      if (tc.function?.name) c.name += tc.function.name;
      c.args += tc.function?.arguments ?? '';
    }
  }
  return out;
}

/** A raw POST to the unified endpoint. */
async function rawCompat(gw, body, headers = {}) {
  const res = await fetch(gw.base('compat/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('anthropic through the unified API', () => {
  let gw, client;
  useGateway((g) => {
    gw = g;
    client = clientFor(gw);
  });

  test('plain text answer: content, finish_reason, usage by the token rule, cf-aig-provider / cf-aig-model', async () => {
    s.reset();
    const params = { model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'say hello to me' }] };
    const { data, response } = await client.chat.completions.create(params).withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cf-aig-provider'), 'anthropic');
    assert.equal(response.headers.get('cf-aig-model'), 'claude-x');
    assert.match(response.headers.get('content-type'), /^application\/json/);
    const { rec, body } = only();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.id, `msg_standin_${rec.id}`);
    assert.equal(data.model, 'claude-x');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].index, 0);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(data.choices[0].message.content, TEXT);
    assert.equal(data.choices[0].message.tool_calls, undefined);
    assert.equal(data.choices[0].finish_reason, 'stop');
    const prompt = promptTokensFor('anthropic.messages', body);
    assert.equal(prompt, 7 + 4);
    assert.equal(data.usage.prompt_tokens, prompt);
    assert.equal(data.usage.completion_tokens, PIECES);
    assert.equal(data.usage.total_tokens, prompt + PIECES);
  });

  test('prompt-cache reads are part of prompt_tokens and reported as cached_tokens', async () => {
    s.reset();
    const r = await client.chat.completions.create(
      { model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'one two three' }] },
      { headers: { 'x-standin-cached-tokens': '3' } },
    );
    const input = promptTokensFor('anthropic.messages', only().body); // the stand-in's input_tokens
    assert.equal(r.usage.prompt_tokens, input + 3);
    assert.equal(r.usage.prompt_tokens_details.cached_tokens, 3);
    assert.equal(r.usage.completion_tokens, PIECES);
    assert.equal(r.usage.total_tokens, input + 3 + PIECES);
  });

  test('a large plain answer (1 MB) is translated and delivered whole', async () => {
    s.reset();
    // (the body is over max_response_buffer + 256 KiB, which a whole translated answer must not be limited to)
    const { data, response } = await client.chat.completions.create(
      { model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'a long answer please' }] },
      { headers: { 'x-standin-body-bytes': '1000000' } },
    ).withResponse().catch((err) => assert.fail(`the 1 MB answer did not arrive whole: ${err?.constructor?.name}: ${err?.message}`));
    assert.equal(response.status, 200);
    const content = data.choices[0].message.content;
    assert.match(content, /^Hello from the stand-in\.x+$/);
    assert.ok(content.length > 999000 && content.length < 1000000, `content length ${content.length}`);
    assert.equal(data.usage.completion_tokens, PIECES);
    assert.equal(only().rec.outcome, 'completed');
  });

  test('what the provider receives: /v1/messages, x-api-key, anthropic-version, model, system, max_tokens, stop', async () => {
    s.reset();
    await client.chat.completions.create({
      model: 'anthropic/claude-x',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'user', content: 'second question' },
      ],
    });
    let { rec, body } = only();
    assert.equal(rec.method, 'POST');
    assert.equal(rec.url, '/v1/messages');
    assert.equal(rec.route, 'anthropic.messages');
    assert.equal(rec.headers['x-api-key'], KEY);
    assert.equal(rec.headers.authorization, undefined, 'the bearer token became x-api-key');
    assert.equal(rec.headers['anthropic-version'], '2023-06-01');
    for (const name of Object.keys(rec.headers)) assert.ok(!name.startsWith('cf-aig-'), `${name} reached the provider`);
    assert.deepEqual(body, {
      model: 'claude-x',
      max_tokens: 4096,
      system: 'You are terse.',
      messages: [
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: [{ type: 'text', text: 'first answer' }] },
        { role: 'user', content: 'second question' },
      ],
    });

    // max_tokens given; stop as a string and as an array; temperature and top_p in range
    s.reset();
    await client.chat.completions.create({
      model: 'anthropic/claude-x', max_tokens: 77, stop: 'END', temperature: 0.5, top_p: 0.9,
      messages: [{ role: 'user', content: 'hi' }],
    });
    ({ body } = only());
    assert.equal(body.max_tokens, 77);
    assert.deepEqual(body.stop_sequences, ['END']);
    assert.equal(body.temperature, 0.5);
    assert.equal(body.top_p, 0.9);
    assert.equal(body.stop, undefined);
    assert.equal(body.system, undefined, 'no system message, no system member');

    s.reset();
    await client.chat.completions.create({
      model: 'anthropic/claude-x', max_completion_tokens: 33, stop: ['one', 'two'],
      messages: [{ role: 'user', content: 'hi' }],
    });
    ({ body } = only());
    assert.equal(body.max_tokens, 33);
    assert.equal(body.max_completion_tokens, undefined);
    assert.deepEqual(body.stop_sequences, ['one', 'two']);
  });

  test('the classic x-api-key header sent by the client is kept as sent', async () => {
    s.reset();
    const c = clientFor(gw, { apiKey: 'unused-bearer', defaultHeaders: { 'x-api-key': 'sk-ant-own' } });
    await c.chat.completions.create({ model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'hi' }] });
    const { rec } = only();
    assert.equal(rec.headers['x-api-key'], 'sk-ant-own');
  });

  test('streamed text: the SDK iterator reads the text; include_usage gives a last chunk with usage only', async () => {
    s.reset();
    const params = {
      model: 'anthropic/claude-x', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream it to me please' }],
    };
    const { data: stream, response } = await client.chat.completions.create(params).withResponse();
    assert.equal(response.headers.get('cf-aig-provider'), 'anthropic');
    assert.equal(response.headers.get('cf-aig-model'), 'claude-x');
    assert.match(response.headers.get('content-type'), /^text\/event-stream/);
    const got = await drain(stream);
    const { rec, body } = only();
    assert.equal(body.stream, true);
    assert.equal(body.stream_options, undefined);
    assert.equal(got.text, TEXT);
    assert.equal(got.finish, 'stop');
    for (const c of got.chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.id, `msg_standin_${rec.id}`);
      assert.equal(c.model, 'claude-x');
    }
    assert.equal(got.chunks[0].choices[0].delta.role, 'assistant');
    const last = got.chunks.at(-1);
    assert.deepEqual(last.choices, []);
    const prompt = promptTokensFor('anthropic.messages', body);
    assert.equal(last.usage.prompt_tokens, prompt);
    assert.equal(last.usage.completion_tokens, PIECES);
    assert.equal(last.usage.total_tokens, prompt + PIECES);
    assert.equal(got.chunks.filter((c) => c.usage).length, 1, 'usage only on the last chunk');
    assert.equal(got.chunks.filter((c) => c.choices[0]?.finish_reason).length, 1);
  });

  test('streamed without include_usage: no usage chunk; the SSE ends with data: [DONE]', async () => {
    s.reset();
    const stream = await client.chat.completions.create({
      model: 'anthropic/claude-x', stream: true, messages: [{ role: 'user', content: 'x' }],
    });
    const got = await drain(stream);
    assert.equal(got.text, TEXT);
    assert.equal(got.usage, null);
    assert.ok(got.chunks.every((c) => c.choices.length === 1));

    const raw = await rawCompat(gw, { model: 'anthropic/claude-x', stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(raw.status, 200);
    const events = raw.text.split('\n\n').filter(Boolean);
    assert.equal(events.at(-1), 'data: [DONE]');
    assert.ok(events.every((e) => e.startsWith('data: ')), raw.text);
    assert.equal(events.slice(0, -1).map((e) => JSON.parse(e.slice(6)).choices[0].delta.content ?? '').join(''), TEXT);
  });

  test('a translated stream is relayed piece by piece, and a client that leaves cancels the provider request', async () => {
    s.reset();
    const t0 = Date.now();
    const arrivals = [];
    const stream = await client.chat.completions.create(
      { model: 'anthropic/claude-x', stream: true, messages: [{ role: 'user', content: 'slowly' }] },
      { headers: { 'x-standin-pace-ms': '100' } },
    );
    let text = '';
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) { arrivals.push(Date.now() - t0); text += piece; }
    }
    const end = Date.now() - t0;
    assert.equal(text, TEXT);
    assert.equal(arrivals.length, PIECES);
    assert.ok(end - arrivals[0] >= 350, `first piece at ${arrivals[0]} ms, end at ${end} ms: buffered?`);
    for (let i = 1; i < arrivals.length; i++) assert.ok(arrivals[i] - arrivals[i - 1] >= 50, `arrivals ${arrivals}`);

    s.reset();
    const leaving = await client.chat.completions.create(
      { model: 'anthropic/claude-x', stream: true, messages: [{ role: 'user', content: 'slowly' }] },
      { headers: { 'x-standin-pace-ms': '200', 'x-standin-chunks': '50' } },
    );
    for await (const chunk of leaving) {
      if (chunk.choices[0]?.delta?.content) break; // leaving the loop aborts the request
    }
    const rec = await s.waitFor((r) => r.aborted, 3000 * SLOW);
    assert.equal(rec.outcome, 'client-aborted');
  });

  test('a provider stream cut mid-way fails the client\'s stream instead of ending it as a whole answer', async () => {
    s.reset();
    const stream = await client.chat.completions.create(
      { model: 'anthropic/claude-x', stream: true, messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'x-standin-reset': 'mid-stream' } },
    );
    let text = '';
    let finish = null;
    await assert.rejects(async () => {
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
    });
    assert.equal(text, 'Hello from');
    assert.equal(finish, null);
  });

  test('a tool call, not streamed: tools -> input_schema, tool_choice; tool_calls, finish_reason tool_calls', async () => {
    s.reset();
    const params = {
      model: 'anthropic/claude-x',
      messages: [{ role: 'user', content: 'weather in Paris?' }],
      tools: [WEATHER_TOOL, { type: 'function', function: { name: 'no_params' } }],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    };
    const r = await client.chat.completions.create(params, { headers: { 'x-standin-tool-calls': '1' } });
    const { rec, body } = only();
    assert.deepEqual(body.tools, [
      { name: 'get_weather', description: 'Weather for a city', input_schema: WEATHER_PARAMS },
      { name: 'no_params', input_schema: { type: 'object', properties: {} } },
    ]);
    assert.deepEqual(body.tool_choice, { type: 'tool', name: 'get_weather' });
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.role, 'assistant');
    assert.equal(m.content, null);
    assert.equal(m.tool_calls.length, 1);
    assert.equal(m.tool_calls[0].id, `toolu_standin_${rec.id}_0`);
    assert.equal(m.tool_calls[0].type, 'function');
    assert.equal(m.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), toolInputFor(0));
    assert.equal(r.usage.completion_tokens, PIECES);
    assert.equal(r.usage.prompt_tokens, promptTokensFor('anthropic.messages', body));

    // "required" -> any; parallel_tool_calls false -> disable_parallel_tool_use
    s.reset();
    await client.chat.completions.create({ ...params, tool_choice: 'required', parallel_tool_calls: false });
    assert.deepEqual(only().body.tool_choice, { type: 'any', disable_parallel_tool_use: true });
  });

  test('a streamed answer with 2 parallel tool calls: arguments reassembled per index', async () => {
    s.reset();
    const stream = await client.chat.completions.create(
      { model: 'anthropic/claude-x', stream: true, stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'weather in Paris twice' }], tools: [WEATHER_TOOL] },
      { headers: { 'x-standin-tool-calls': '2' } },
    );
    const got = await drain(stream);
    const { rec, body } = only();
    assert.equal(body.stream, true);
    assert.equal(got.finish, 'tool_calls');
    assert.equal(got.text, '');
    assert.equal(got.calls.length, 2);
    got.calls.forEach((c, i) => {
      assert.equal(c.id, `toolu_standin_${rec.id}_${i}`);
      assert.equal(c.type, 'function');
      assert.equal(c.name, 'get_weather');
      assert.deepEqual(JSON.parse(c.args), toolInputFor(i));
    });
    // the arguments came in pieces (the stand-in cuts each input in 3), not in one delta
    const argDeltas = got.chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []).filter((tc) => tc.function?.arguments);
    assert.equal(argDeltas.length, 6);
    assert.equal(got.usage.completion_tokens, PIECES);
    assert.equal(got.usage.prompt_tokens, promptTokensFor('anthropic.messages', body));
  });

  test('a multi-turn history: assistant tool_calls -> tool_use blocks, tool messages -> one user turn of tool_result', async () => {
    s.reset();
    const r = await client.chat.completions.create({
      model: 'anthropic/claude-x',
      tools: [WEATHER_TOOL],
      messages: [
        { role: 'system', content: 'Use the tools.' },
        { role: 'user', content: 'weather in Paris and Lyon?' },
        {
          role: 'assistant',
          content: 'Checking both.',
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon","n":2}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: 'sunny, 21C' },
        { role: 'tool', tool_call_id: 'call_b', content: [{ type: 'text', text: 'rain, 14C' }] },
        { role: 'user', content: 'so which is nicer?' },
      ],
    });
    assert.equal(r.choices[0].message.content, TEXT);
    const { body } = only();
    assert.equal(body.system, 'Use the tools.');
    assert.deepEqual(body.messages, [
      { role: 'user', content: 'weather in Paris and Lyon?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking both.' },
          { type: 'tool_use', id: 'call_a', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_b', name: 'get_weather', input: { city: 'Lyon', n: 2 } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_a', content: 'sunny, 21C' },
          { type: 'tool_result', tool_use_id: 'call_b', content: [{ type: 'text', text: 'rain, 14C' }] },
        ],
      },
      { role: 'user', content: 'so which is nicer?' },
    ]);

    // an assistant turn with only tool calls (content null)
    s.reset();
    await client.chat.completions.create({
      model: 'anthropic/claude-x',
      tools: [WEATHER_TOOL],
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_c', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_c', content: 'fog' },
      ],
    });
    assert.deepEqual(only().body.messages.slice(1), [
      { role: 'assistant', content: [{ type: 'tool_use', id: 'call_c', name: 'get_weather', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_c', content: 'fog' }] },
    ]);
  });

  test('image parts: a base64 data URL -> source base64 with media_type; an https URL -> source url', async () => {
    s.reset();
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
    await client.chat.completions.create({
      model: 'anthropic/claude-x',
      messages: [{
        role: 'user',
        content: [
          { type: 'text', text: 'what are these?' },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'low' } },
        ],
      }],
    });
    const { body } = only();
    assert.deepEqual(body.messages, [{
      role: 'user',
      content: [
        { type: 'text', text: 'what are these?' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
      ],
    }]);
  });

  test('an upstream 429 reaches the SDK as RateLimitError with the provider message, in OpenAI error shape', async () => {
    s.reset();
    await assert.rejects(
      client.chat.completions.create(
        { model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-standin-status': '429' } },
      ),
      (err) => {
        assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 429);
        assert.equal(err.error.message, 'x-standin-status asked for 429');
        assert.equal(err.error.type, 'rate_limit_error');
        assert.equal(err.error.param, null);
        assert.equal(err.error.code, null);
        assert.match(err.message, /x-standin-status asked for 429/);
        assert.equal(err.headers.get('cf-aig-provider'), 'anthropic');
        assert.equal(err.headers.get('cf-aig-model'), 'claude-x');
        return true;
      },
    );
    assert.equal(s.requests.length, 1, 'no retry');

    // another status, and a streamed request: the same status, OpenAI's error shape
    s.reset();
    const raw = await rawCompat(gw, { model: 'anthropic/claude-x', stream: true, messages: [{ role: 'user', content: 'x' }] },
      { 'x-standin-status': '529' });
    assert.equal(raw.status, 529);
    assert.deepEqual(JSON.parse(raw.text), {
      error: { message: 'x-standin-status asked for 529', type: 'overloaded_error', param: null, code: null },
    });
  });
});

describe('OpenAI-shaped providers through the unified API', () => {
  let gw;
  useGateway((g) => { gw = g; });

  test('the provider receives the client\'s exact bytes with only the model value replaced', async () => {
    s.reset();
    let sentBody = null;
    const client = clientFor(gw, {
      fetch: (url, init) => { sentBody = init.body; return fetch(url, init); },
    });
    const params = {
      model: 'openai/gpt-4o-mini',
      messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'héllo "quoted" \u2603' }],
      temperature: 1.7, // fine for OpenAI: no translation, no check
      seed: 42,
      n: 2,
      response_format: { type: 'json_object' },
      logit_bias: { 50256: -100 },
    };
    const { data, response } = await client.chat.completions.create(params).withResponse();
    assert.equal(response.headers.get('cf-aig-provider'), 'openai');
    assert.equal(response.headers.get('cf-aig-model'), 'gpt-4o-mini');
    assert.equal(data.choices[0].message.content, TEXT);
    assert.equal(data.model, 'gpt-4o-mini');
    const { rec } = only();
    assert.equal(rec.url, '/v1/chat/completions');
    assert.equal(rec.headers.authorization, `Bearer ${KEY}`);
    assert.equal(rec.headers['x-api-key'], undefined);
    assert.equal(rec.headers['anthropic-version'], undefined);
    assert.equal(typeof sentBody, 'string');
    assert.equal(sentBody, JSON.stringify(params), 'the SDK sends JSON.stringify of the params');
    assert.equal(rec.body, JSON.stringify({ ...params, model: 'gpt-4o-mini' }));
    assert.equal(data.usage.prompt_tokens, promptTokensFor('openai.chat', JSON.parse(rec.body)));

    // hand-written bytes: whitespace, member order, escapes and unknown members survive as sent
    s.reset();
    const text = '{\n  "messages" : [ {"role":"user","content":"caf\\u00e9 \\/ tab\\t"} ],\r\n'
      + '  "model":   "openai/gpt-4o-mini" ,"temperature":1.50, "x_extra":{"a":[1,2.0e0,null]}  }';
    const raw = await rawCompat(gw, text);
    assert.equal(raw.status, 200);
    assert.equal(only().rec.body, text.replace('"openai/gpt-4o-mini"', '"gpt-4o-mini"'));
  });

  test('other OpenAI-shaped providers: groq and a custom provider at their own chat completions paths', async () => {
    const client = clientFor(gw);
    s.reset();
    const r = await client.chat.completions.create({ model: 'groq/llama-3.1-8b-instant', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(r.response.headers.get('cf-aig-provider'), 'groq');
    assert.equal(r.response.headers.get('cf-aig-model'), 'llama-3.1-8b-instant');
    let { rec, body } = only();
    assert.equal(rec.url, '/openai/v1/chat/completions');
    assert.equal(body.model, 'llama-3.1-8b-instant');

    s.reset();
    // everything after the first "/" is the model
    const acme = await client.chat.completions.create({ model: 'custom-acme/org/model-7', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(acme.response.headers.get('cf-aig-provider'), 'custom-acme');
    assert.equal(acme.response.headers.get('cf-aig-model'), 'org/model-7');
    ({ rec, body } = only());
    assert.equal(rec.url, '/acme/v1/chat/completions');
    assert.equal(rec.headers.authorization, `Bearer ${KEY}`);
    assert.equal(body.model, 'org/model-7');
  });

  test('a streamed OpenAI-shaped call works with the SDK iterator, tool calls included', async () => {
    const client = clientFor(gw);
    s.reset();
    const { data: stream, response } = await client.chat.completions.create({
      model: 'openai/gpt-4o-mini', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream please' }],
    }).withResponse();
    assert.equal(response.headers.get('cf-aig-provider'), 'openai');
    assert.equal(response.headers.get('cf-aig-model'), 'gpt-4o-mini');
    const got = await drain(stream);
    const { body } = only();
    assert.equal(body.model, 'gpt-4o-mini');
    assert.equal(got.text, TEXT);
    assert.equal(got.finish, 'stop');
    assert.equal(got.usage.prompt_tokens, promptTokensFor('openai.chat', body));
    assert.equal(got.usage.completion_tokens, PIECES);

    s.reset();
    const tools = await drain(await client.chat.completions.create(
      { model: 'openai/gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'weather' }], tools: [WEATHER_TOOL] },
      { headers: { 'x-standin-tool-calls': '2' } },
    ));
    const { rec } = only();
    assert.equal(tools.finish, 'tool_calls');
    assert.equal(tools.calls.length, 2);
    tools.calls.forEach((c, i) => {
      assert.equal(c.id, `call_standin_${rec.id}_${i}`);
      assert.equal(c.name, 'get_weather');
      assert.deepEqual(JSON.parse(c.args), toolInputFor(i));
    });
  });
});

describe('the gateway\'s own errors on the unified API', () => {
  let gw;
  useGateway((g) => { gw = g; });

  const user = [{ role: 'user', content: 'x' }];

  test('a model without a provider prefix: 400, code 2019; through the SDK: BadRequestError', async () => {
    s.reset();
    const r = await rawCompat(gw, { model: 'claude-x', messages: user });
    assert.equal(r.status, 400);
    assert.match(assertEnvelope(r.text, 400, 2019), /claude-x/);
    await assert.rejects(
      clientFor(gw).chat.completions.create({ model: 'claude-x', messages: user }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}`);
        assert.equal(err.status, 400);
        assert.equal(err.error[0].code, 2019);
        return true;
      },
    );
    assert.equal(s.requests.length, 0);
  });

  test('an unknown provider prefix: 400, code 2008', async () => {
    s.reset();
    const r = await rawCompat(gw, { model: 'nope/x', messages: user });
    assert.equal(r.status, 400);
    assert.match(assertEnvelope(r.text, 400, 2008), /nope/);
    assert.equal(s.requests.length, 0);
  });

  test('parameters anthropic cannot honour: 400, code 2019, the message names the parameter', async () => {
    s.reset();
    const cases = [
      [{ temperature: 1.5 }, /temperature/],
      [{ n: 2 }, /\bn\b/],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'l', schema: { type: 'array' } } } }, /response_format/],
      [{ response_format: { type: 'json_object' }, tools: [WEATHER_TOOL] }, /response_format/],
      [{ seed: 1 }, /seed/],
    ];
    for (const [extra, re] of cases) {
      const r = await rawCompat(gw, { model: 'anthropic/claude-x', messages: user, ...extra });
      assert.equal(r.status, 400, `${JSON.stringify(extra)}: ${r.text}`);
      assert.match(assertEnvelope(r.text, 400, 2019), re, JSON.stringify(extra));
    }
    // OpenAI's defaults for members anthropic lacks are fine, and so are n: 1 and response_format text
    const ok = await rawCompat(gw, {
      model: 'anthropic/claude-x', messages: user, n: 1, response_format: { type: 'text' }, presence_penalty: 0,
      frequency_penalty: 0, logprobs: false, seed: null,
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(s.requests.length, 1, 'only the acceptable request reached the provider');
  });
});

describe('caching compat answers', () => {
  let gw;
  useGateway((g) => { gw = g; });

  test('the same anthropic compat request twice with cf-aig-cache-ttl: a HIT with the identical body, one provider call', async () => {
    s.reset();
    const client = clientFor(gw, { defaultHeaders: { 'cf-aig-cache-ttl': '60' } });
    const params = { model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'cache this compat answer' }] };
    const first = await client.chat.completions.create(params).asResponse();
    const firstText = await first.text();
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('cf-aig-cache-status'), 'MISS');
    const second = await client.chat.completions.create(params).asResponse();
    const secondText = await second.text();
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(second.headers.get('cf-aig-provider'), 'anthropic');
    assert.equal(second.headers.get('cf-aig-model'), 'claude-x');
    assert.equal(secondText, firstText);
    assert.equal(JSON.parse(secondText).choices[0].message.content, TEXT);
    assert.equal(s.requests.length, 1, 'the hit made no provider call');
  });

  test('a streamed anthropic compat answer is replayed as the same chat.completion.chunk stream', async () => {
    s.reset();
    const client = clientFor(gw, { defaultHeaders: { 'cf-aig-cache-ttl': '60' } });
    const params = { model: 'anthropic/claude-x', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'cache this stream' }] };
    const a = await client.chat.completions.create(params).withResponse();
    const first = await drain(a.data);
    const b = await client.chat.completions.create(params).withResponse();
    const second = await drain(b.data);
    assert.equal(a.response.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(b.response.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(second.text, TEXT);
    assert.deepEqual(second.chunks, first.chunks);
    assert.equal(s.requests.length, 1);
  });

  test('a native request is not answered from a compat entry', async () => {
    s.reset();
    const headers = { 'cf-aig-cache-ttl': '60' };
    const compat = await rawCompat(gw, { model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'shared?' }] }, headers);
    assert.equal(compat.headers.get('cf-aig-cache-status'), 'MISS');
    const native = await fetch(gw.base('openai/chat/completions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'shared?' }] }),
    });
    await native.text();
    assert.equal(native.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(s.requests.length, 2);
  });
});

describe('log records of compat calls', () => {
  let gw;
  useGateway((g) => { gw = g; });

  const apiJson = async (p) => (await fetch(`${gw.url}/client/v4/accounts/local/ai-gateway/gateways/${p}`)).json();
  async function waitLog(eventId) {
    const deadline = Date.now() + 10000;
    for (;;) {
      const body = await apiJson(`default/logs?per_page=50&event_id=${eventId}`);
      if (body.result_info?.total_count >= 1 || Date.now() > deadline) {
        assert.equal(body.result_info.total_count, 1, `records with event id ${eventId}`);
        return body.result[0];
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  test('an anthropic compat call is logged with provider anthropic, the model without prefix, the provider\'s tokens', async () => {
    const client = clientFor(gw);
    s.reset();
    const { data, response } = await client.chat.completions.create(
      { model: 'anthropic/claude-x', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'log this call please' }] },
      { headers: { 'cf-aig-event-id': 'ev-compat-plain' } },
    ).withResponse();
    const { body } = only();
    const rec = await waitLog('ev-compat-plain');
    assert.equal(rec.id, response.headers.get('cf-aig-log-id'));
    assert.equal(rec.provider, 'anthropic');
    assert.equal(rec.model, 'claude-x');
    assert.equal(rec.tokens_in, promptTokensFor('anthropic.messages', body));
    assert.equal(rec.tokens_in, data.usage.prompt_tokens);
    assert.equal(rec.tokens_out, PIECES);
    assert.equal(rec.status_code, 200);
    assert.equal(rec.success, true);
    assert.equal(rec.stream, false);
    assert.equal(rec.cached, false);

    // streamed, and the client did not ask for usage: still counted from the provider's events
    s.reset();
    await drain(await client.chat.completions.create(
      { model: 'anthropic/claude-sonnet-4-5', stream: true, messages: [{ role: 'user', content: 'stream and log' }] },
      { headers: { 'cf-aig-event-id': 'ev-compat-stream' } },
    ));
    const sent = only().body;
    const srec = await waitLog('ev-compat-stream');
    assert.equal(srec.provider, 'anthropic');
    assert.equal(srec.model, 'claude-sonnet-4-5');
    assert.equal(srec.stream, true);
    assert.equal(srec.tokens_in, promptTokensFor('anthropic.messages', sent));
    assert.equal(srec.tokens_out, PIECES);
  });

  test('an OpenAI-shaped compat call is logged with its provider and model; an upstream error as unsuccessful', async () => {
    const client = clientFor(gw);
    s.reset();
    await client.chat.completions.create({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'one two' }] },
      { headers: { 'cf-aig-event-id': 'ev-compat-openai' } });
    const { body } = only();
    const rec = await waitLog('ev-compat-openai');
    assert.equal(rec.provider, 'openai');
    assert.equal(rec.model, 'gpt-4o-mini');
    assert.equal(rec.tokens_in, promptTokensFor('openai.chat', body));
    assert.equal(rec.tokens_out, PIECES);

    await assert.rejects(client.chat.completions.create({ model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'cf-aig-event-id': 'ev-compat-429', 'x-standin-status': '429' } }), OpenAI.RateLimitError);
    const erec = await waitLog('ev-compat-429');
    assert.equal(erec.provider, 'anthropic');
    assert.equal(erec.model, 'claude-x');
    assert.equal(erec.status_code, 429);
    assert.equal(erec.success, false);
  });
});

describe('compat/embeddings and compat/models', () => {
  let gw;
  useGateway((g) => { gw = g; }, { pricing: { 'custom-acme': { 'acme-embed': { input: 0.01, output: 0 } } } });

  test('embeddings reach the OpenAI-shaped provider\'s embeddings path with the prefix removed', async () => {
    s.reset();
    const client = clientFor(gw);
    const { data: res, response } = await client.embeddings
      .create({ model: 'openai/text-embedding-3-small', input: ['one two', 'three'] })
      .withResponse();
    assert.equal(res.data.length, 2);
    assert.equal(res.data[0].embedding.length, 8);
    assert.equal(response.headers.get('cf-aig-provider'), 'openai');
    assert.equal(response.headers.get('cf-aig-model'), 'text-embedding-3-small');
    const { rec, body } = only();
    assert.equal(rec.path, '/v1/embeddings');
    assert.equal(body.model, 'text-embedding-3-small');
    assert.deepEqual(body.input, ['one two', 'three']);
    assert.equal(rec.headers.authorization, `Bearer ${KEY}`);

    s.reset();
    await client.embeddings.create({ model: 'custom-acme/acme-embed', input: 'x' });
    assert.equal(only().rec.path, '/acme/v1/embeddings');
  });

  test('embeddings for anthropic (no embeddings API): 400, code 2008, saying so', async () => {
    s.reset();
    const res = await fetch(gw.base('compat/embeddings'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'anthropic/claude-x', input: 'x' }),
    });
    assert.equal(res.status, 400);
    assert.match(assertEnvelope(await res.text(), 400, 2008), /no embeddings endpoint/);
    assert.equal(s.requests.length, 0);
  });

  test('models: the price table\'s models of the providers the unified API reaches, as "{provider}/{model}"', async () => {
    const client = clientFor(gw);
    const ids = [];
    for await (const m of client.models.list()) {
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, m.id.split('/')[0]);
      ids.push(m.id);
    }
    assert.ok(ids.includes('openai/gpt-5-mini'), 'a shipped OpenAI model');
    assert.ok(ids.some((id) => id.startsWith('anthropic/claude')), 'an Anthropic model');
    assert.ok(ids.includes('custom-acme/acme-embed'), 'a model priced in the config');
    assert.ok(!ids.some((id) => id.startsWith('aws-bedrock/') || id.startsWith('google-vertex-ai/')),
      'no provider the unified API does not reach');
    assert.equal(new Set(ids).size, ids.length);
    const bad = await fetch(gw.base('compat/models'), { method: 'POST', body: '{}' });
    assert.equal(bad.status, 405);
    assert.equal(bad.headers.get('allow'), 'GET, HEAD');
    assert.match(bad.headers.get('cf-aig-log-id') ?? '', /^[0-9A-HJKMNP-TV-Z]{26}$/, 'a logged refusal names its record');
  });
});

describe('the Anthropic dialect: @anthropic-ai/sdk on compat/v1/messages', () => {
  let gw, ant;
  useGateway((g) => {
    gw = g;
    ant = new Anthropic({ apiKey: KEY, baseURL: gw.base('compat'), maxRetries: 0 });
  });

  const WEATHER = { name: 'get_weather', description: 'Weather for a city', input_schema: WEATHER_PARAMS };

  test('text from an OpenAI-shaped provider: the message, usage, headers; what the provider receives', async () => {
    s.reset();
    const { data: m, response } = await ant.messages
      .create({
        model: 'openai/gpt-4o-mini',
        max_tokens: 64,
        system: 'Be brief.',
        messages: [{ role: 'user', content: 'hello there' }],
        stop_sequences: ['END'],
      })
      .withResponse();
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.deepEqual(m.content, [{ type: 'text', text: TEXT }]);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(response.headers.get('cf-aig-provider'), 'openai');
    assert.equal(response.headers.get('cf-aig-model'), 'gpt-4o-mini');
    const { rec, body } = only();
    assert.equal(rec.path, '/v1/chat/completions');
    assert.equal(body.model, 'gpt-4o-mini');
    assert.deepEqual(body.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }]);
    assert.equal(body.max_completion_tokens, 64); /* OpenAI's own API takes the new name */
    assert.equal(body.max_tokens, undefined);
    assert.deepEqual(body.stop, ['END']);
    assert.equal(rec.headers.authorization, `Bearer ${KEY}`);
    assert.equal(rec.headers['x-api-key'], undefined);
    assert.equal(rec.headers['anthropic-version'], undefined);
    assert.equal(m.usage.input_tokens, promptTokensFor('openai.chat', body));
    assert.equal(m.usage.output_tokens, PIECES);

    s.reset(); /* another OpenAI-shaped provider gets max_tokens */
    await ant.messages.create({ model: 'groq/llama', max_tokens: 9, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(only().body.max_tokens, 9);
  });

  test('a streamed answer: the SDK\'s text events and final message, usage at the end', async () => {
    s.reset();
    const stream = ant.messages.stream({ model: 'openai/gpt-4o-mini', max_tokens: 64, messages: [{ role: 'user', content: 'stream it' }] });
    let text = '';
    stream.on('text', (t) => { text += t; });
    const final = await stream.finalMessage();
    assert.equal(text, TEXT);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.output_tokens, PIECES);
    const { body } = only();
    assert.equal(body.stream, true);
    assert.deepEqual(body.stream_options, { include_usage: true });
    assert.equal(final.usage.input_tokens, promptTokensFor('openai.chat', body));
  });

  test('tool calls, whole and streamed: tool_use blocks with the provider\'s arguments as input', async () => {
    s.reset();
    const req = {
      model: 'openai/gpt-4o-mini',
      max_tokens: 64,
      tools: [WEATHER],
      tool_choice: { type: 'any', disable_parallel_tool_use: false },
      messages: [{ role: 'user', content: 'weather?' }],
    };
    const m = await ant.messages.create(req, { headers: { 'x-standin-tool-calls': '2' } });
    assert.equal(m.stop_reason, 'tool_use');
    assert.deepEqual(m.content.map((b) => b.type), ['tool_use', 'tool_use']);
    assert.deepEqual(m.content.map((b) => b.input), [toolInputFor(0), toolInputFor(1)]);
    assert.ok(m.content.every((b) => b.name === 'get_weather' && typeof b.id === 'string' && b.id.length > 0));
    const { body } = only();
    assert.deepEqual(body.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: WEATHER_PARAMS } }]);
    assert.equal(body.tool_choice, 'required');

    s.reset();
    const stream = ant.messages.stream(req, { headers: { 'x-standin-tool-calls': '2' } });
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    assert.deepEqual(final.content.filter((b) => b.type === 'tool_use').map((b) => b.input), [toolInputFor(0), toolInputFor(1)]);
  });

  test('a history with tool_use and tool_result blocks becomes tool_calls and tool messages', async () => {
    s.reset();
    await ant.messages.create({
      model: 'openai/gpt-4o-mini',
      max_tokens: 16,
      tools: [WEATHER],
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: '18C' }, { type: 'text', text: 'and?' }] },
      ],
    });
    const { body } = only();
    assert.deepEqual(body.messages, [
      { role: 'user', content: 'weather in Paris?' },
      { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'toolu_9', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'toolu_9', content: '18C' },
      { role: 'user', content: [{ type: 'text', text: 'and?' }] },
    ]);
  });

  test('a provider error is the SDK\'s own error class with the status and message', async () => {
    await assert.rejects(
      ant.messages.create({ model: 'openai/gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-standin-status': '429' } }),
      (err) => err instanceof Anthropic.RateLimitError && err.status === 429 && /x-standin-status asked for 429/.test(err.message),
    );
  });

  test('anthropic/... goes to Anthropic as sent, only the model replaced', async () => {
    s.reset();
    const m = await ant.messages.create({ model: 'anthropic/claude-x', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.content[0].text, TEXT);
    const { rec, body } = only();
    assert.equal(rec.path, '/v1/messages');
    assert.equal(body.model, 'claude-x');
    assert.deepEqual(body.messages, [{ role: 'user', content: 'hi' }]);
  });

  test('a member an OpenAI-shaped provider cannot honour: 400, code 2019, naming it', async () => {
    s.reset();
    const res = await fetch(gw.base('compat/v1/messages'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEY },
      body: JSON.stringify({ model: 'openai/gpt-4o-mini', max_tokens: 8, top_k: 5, messages: [{ role: 'user', content: 'x' }] }),
    });
    assert.equal(res.status, 400);
    assert.match(assertEnvelope(await res.text(), 400, 2019), /"top_k"/);
    assert.equal(s.requests.length, 0);
  });
});

describe('model strings that must not pass', () => {
  let gw;
  useGateway((g) => { gw = g; });

  test('control characters in the model (a header split) and a second "model" member: 400, code 2019', async () => {
    s.reset();
    const user = [{ role: 'user', content: 'x' }];
    const split = await rawCompat(gw, { model: 'openai/gpt-4o\r\nset-cookie: a=b', messages: user });
    assert.equal(split.status, 400);
    assert.equal(split.headers.get('set-cookie'), null);
    assert.match(assertEnvelope(split.text, 400, 2019), /control characters/);
    const twice = await rawCompat(gw, '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"x"}],"model":"o1"}');
    assert.equal(twice.status, 400);
    assert.match(assertEnvelope(twice.text, 400, 2019), /more than once/);
    for (const m of ['anthropic/claude-x', 'google-ai-studio/gemini-2.5-flash']) { /* translated: the translator refuses it */
      const t = await rawCompat(gw, `{"model":"${m}","messages":[{"role":"user","content":"x"}],"model":"o1"}`);
      assert.equal(t.status, 400, m);
      assert.match(assertEnvelope(t.text, 400, 2019), /more than once/);
    }
    const tm = await fetch(gw.base('compat/v1/messages'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEY },
      body: '{"model":"openai/gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"x"}],"model":"o1"}',
    });
    assert.equal(tm.status, 400);
    assert.match(assertEnvelope(await tm.text(), 400, 2019), /more than once/);
    assert.equal(s.requests.length, 0);
    /* "model" inside a message is not a second member */
    const inner = await rawCompat(gw, { model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: '"model"' }], metadata: { model: 'x' } });
    assert.equal(inner.status, 200);
    assert.equal(s.requests.length, 1);
  });
});

describe('translated streams larger than the connection\'s buffers', () => {
  let gw;
  useGateway((g) => { gw = g; });

  test('events of 700 KB each, both directions, arrive whole through a reader that takes its time', { timeout: 30000 * SLOW }, async () => {
    const BIG = 700 * 1024;
    const client = clientFor(gw);
    const stream = await client.chat.completions.create(
      { model: 'anthropic/claude-x', stream: true, messages: [{ role: 'user', content: 'big' }] },
      { headers: { 'x-standin-piece-bytes': String(BIG), 'x-standin-chunks': '3' } },
    );
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      await new Promise((r) => setTimeout(r, 20)); /* a slow reader: the gateway must hold, not drop */
    }
    assert.equal(text.length, 3 * BIG);
    assert.ok(text.startsWith('Hello') && text.includes(' from'));

    const ant = new Anthropic({ apiKey: KEY, baseURL: gw.base('compat'), maxRetries: 0 });
    const ms = ant.messages.stream({ model: 'openai/gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'big' }] },
      { headers: { 'x-standin-piece-bytes': String(BIG), 'x-standin-chunks': '3' } });
    const final = await ms.finalMessage();
    assert.equal(final.content[0].text.length, 3 * BIG);
    assert.equal(final.stop_reason, 'end_turn');
  });
});

describe('JSON output from anthropic: response_format as a forced tool', () => {
  let gw;
  useGateway((g) => { gw = g; });

  const FORMAT = { type: 'json_schema', json_schema: { name: 'weather_report', strict: true, schema: WEATHER_PARAMS } };

  test('json_schema: the provider is made to call one tool with the schema; its input is the content', async () => {
    s.reset();
    const client = clientFor(gw);
    const req = { model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'weather?' }], response_format: FORMAT };
    const res = await client.chat.completions.create(req, { headers: { 'x-standin-tool-calls': '1' } });
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.equal(res.choices[0].message.tool_calls, undefined);
    assert.deepEqual(JSON.parse(res.choices[0].message.content), toolInputFor(0));
    const { body } = only();
    assert.deepEqual(body.tools, [{ name: 'weather_report', description: 'Respond with JSON that follows this schema.', input_schema: WEATHER_PARAMS }]);
    assert.deepEqual(body.tool_choice, { type: 'tool', name: 'weather_report' });

    s.reset(); /* streamed: the input's pieces are the content's */
    const stream = await client.chat.completions.create({ ...req, stream: true }, { headers: { 'x-standin-tool-calls': '1' } });
    const got = await drain(stream);
    assert.deepEqual(JSON.parse(got.text), toolInputFor(0));
    assert.equal(got.finish, 'stop');
    assert.equal(got.calls.length, 0);
  });

  test('json_object: a forced tool with an open object schema', async () => {
    s.reset();
    const res = await clientFor(gw).chat.completions.create(
      { model: 'anthropic/claude-x', messages: [{ role: 'user', content: 'json please' }], response_format: { type: 'json_object' } },
      { headers: { 'x-standin-tool-calls': '1' } });
    assert.deepEqual(JSON.parse(res.choices[0].message.content), toolInputFor(0));
    assert.deepEqual(only().body.tools[0].input_schema, { type: 'object' });
  });
});

describe('google-ai-studio through the unified API', () => {
  let gw, client, ant;
  useGateway((g) => {
    gw = g;
    client = clientFor(gw);
    ant = new Anthropic({ apiKey: KEY, baseURL: gw.base('compat'), maxRetries: 0 });
  });

  test('plain text: generateContent with the key as x-goog-api-key; content, finish_reason, usage, headers', async () => {
    s.reset();
    const { data, response } = await client.chat.completions.create({
      model: 'google-ai-studio/gemini-2.5-flash',
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'say hello to me' }],
      max_tokens: 64,
      temperature: 1.5,
      stop: 'END',
    }).withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cf-aig-provider'), 'google-ai-studio');
    assert.equal(response.headers.get('cf-aig-model'), 'gemini-2.5-flash');
    const { rec, body } = only();
    assert.equal(rec.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assert.equal(rec.headers['x-goog-api-key'], KEY);
    assert.equal(rec.headers.authorization, undefined, 'no Authorization reaches Google (it would be taken for OAuth)');
    assert.deepEqual(body, {
      contents: [{ role: 'user', parts: [{ text: 'say hello to me' }] }],
      systemInstruction: { parts: [{ text: 'Be brief.' }] },
      generationConfig: { maxOutputTokens: 64, temperature: 1.5, stopSequences: ['END'] },
    });
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, 'gemini-2.5-flash');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.content, TEXT);
    assert.equal(data.choices[0].finish_reason, 'stop');
    const prompt = promptTokensFor('google.generate', body);
    assert.deepEqual(
      [data.usage.prompt_tokens, data.usage.completion_tokens, data.usage.total_tokens],
      [prompt, PIECES, prompt + PIECES],
    );
  });

  test('streamed: streamGenerateContent?alt=sse; the SDK iterator reads the text; include_usage gives the usage chunk', async () => {
    s.reset();
    const out = await drain(await client.chat.completions.create({
      model: 'google-ai-studio/gemini-2.5-flash',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream it please' }],
    }, { headers: { 'x-standin-cached-tokens': '3' } }));
    const { rec, body } = only();
    assert.equal(rec.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent');
    assert.equal(rec.query.alt, 'sse');
    assert.equal(out.text, TEXT);
    assert.equal(out.finish, 'stop');
    const prompt = promptTokensFor('google.generate', body);
    assert.equal(out.usage.prompt_tokens, prompt);
    assert.equal(out.usage.completion_tokens, PIECES);
    assert.equal(out.usage.prompt_tokens_details.cached_tokens, 3);
    const last = out.chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.ok(out.chunks.slice(0, -1).every((c) => c.object === 'chat.completion.chunk' && c.model === 'gemini-2.5-flash' && !c.usage));

    s.reset(); // no include_usage: no usage chunk, the SSE still ends with [DONE]
    const raw = await rawCompat(gw, { model: 'google-ai-studio/gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(raw.status, 200);
    assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
    assert.ok(raw.text.endsWith('data: [DONE]\n\n'));
    assert.ok(!raw.text.includes('"usage"'));
  });

  test('tool calls, whole: functionDeclarations with the JSON Schema as sent; calls come back with ids that keep the signature', async () => {
    s.reset();
    const req = {
      model: 'google-ai-studio/gemini-3-pro-preview',
      messages: [{ role: 'user', content: 'weather in Paris and Rome?' }],
      tools: [WEATHER_TOOL],
      tool_choice: 'required',
    };
    const data = await client.chat.completions.create(req, { headers: { 'x-standin-tool-calls': '2' } });
    const { body } = only();
    assert.deepEqual(body.tools, [{ functionDeclarations: [{ name: 'get_weather', description: 'Weather for a city', parametersJsonSchema: WEATHER_PARAMS }] }]);
    assert.deepEqual(body.toolConfig, { functionCallingConfig: { mode: 'ANY' } });
    const msg = data.choices[0].message;
    assert.equal(data.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, 2);
    assert.deepEqual(msg.tool_calls.map((c) => JSON.parse(c.function.arguments)), [toolInputFor(0), toolInputFor(1)]);
    assert.ok(msg.tool_calls.every((c) => c.type === 'function' && c.function.name === 'get_weather'));
    assert.notEqual(msg.tool_calls[0].id, msg.tool_calls[1].id);
    assert.match(msg.tool_calls[0].id, /^[A-Za-z0-9_-]+$/);

    // the history goes back: functionCall parts (the signature restored on the first), functionResponse parts by name
    s.reset();
    await client.chat.completions.create({
      ...req,
      tool_choice: 'auto',
      messages: [
        ...req.messages,
        msg,
        { role: 'tool', tool_call_id: msg.tool_calls[1].id, content: 'Rome: 25C' },
        { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: 'Paris: 18C' },
      ],
    });
    const back = only().body;
    assert.deepEqual(back.contents.slice(1), [
      { role: 'model', parts: [
        { functionCall: { name: 'get_weather', args: toolInputFor(0) }, thoughtSignature: GOOGLE_THOUGHT_SIGNATURE },
        { functionCall: { name: 'get_weather', args: toolInputFor(1) } },
      ] },
      { role: 'user', parts: [ // in the order of the calls (Google matches them by position), not of the messages
        { functionResponse: { name: 'get_weather', response: { output: 'Paris: 18C' } } },
        { functionResponse: { name: 'get_weather', response: { output: 'Rome: 25C' } } },
      ] },
    ]);
    assert.deepEqual(back.toolConfig, { functionCallingConfig: { mode: 'AUTO' } });
  });

  test('tool calls, streamed: each call whole in its own delta, reassembled per index by the SDK', async () => {
    s.reset();
    const out = await drain(await client.chat.completions.create({
      model: 'google-ai-studio/gemini-2.5-flash',
      stream: true,
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [WEATHER_TOOL],
    }, { headers: { 'x-standin-tool-calls': '3' } }));
    assert.equal(out.finish, 'tool_calls');
    assert.equal(out.calls.length, 3);
    assert.deepEqual(out.calls.map((c) => JSON.parse(c.args)), [toolInputFor(0), toolInputFor(1), toolInputFor(2)]);
    assert.ok(out.calls.every((c) => c.name === 'get_weather' && c.type === 'function' && c.id));
  });

  test('images and JSON schema output: inlineData and fileData parts, responseJsonSchema', async () => {
    s.reset();
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
    await client.chat.completions.create({
      model: 'google-ai-studio/gemini-2.5-flash',
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'what is in these?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
        { type: 'image_url', image_url: { url: 'https://example.com/a/cat.webp' } },
      ] }],
      response_format: { type: 'json_schema', json_schema: { name: 'a', schema } },
    });
    const { body } = only();
    assert.deepEqual(body.contents[0].parts, [
      { text: 'what is in these?' },
      { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
      { fileData: { mimeType: 'image/webp', fileUri: 'https://example.com/a/cat.webp' } },
    ]);
    assert.deepEqual(body.generationConfig, { responseMimeType: 'application/json', responseJsonSchema: schema });
  });

  test('an upstream 429 reaches the SDK as RateLimitError with Google\'s message; a refused member is a 400 naming it', async () => {
    s.reset();
    await assert.rejects(
      client.chat.completions.create({ model: 'google-ai-studio/gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'x-standin-status': '429' } }),
      (err) => {
        assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 429);
        assert.equal(err.error.message, 'x-standin-status asked for 429');
        assert.equal(err.error.type, 'RESOURCE_EXHAUSTED');
        return true;
      },
    );
    s.reset();
    const raw = await rawCompat(gw, { model: 'google-ai-studio/gemini-2.5-flash', user: 'u1', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(raw.status, 400);
    assert.match(assertEnvelope(raw.text, 400, 2019), /"user" cannot be sent to google-ai-studio/);
    assert.equal(s.requests.length, 0);
  });

  test('embeddings: batchEmbedContents; the SDK\'s default base64 and plain floats both carry Google\'s values', async () => {
    s.reset();
    const texts = ['one two', 'three'];
    const res = await client.embeddings.create({ model: 'google-ai-studio/text-embedding-004', input: texts, dimensions: 8 });
    const { rec, body } = only();
    assert.equal(rec.path, '/v1beta/models/text-embedding-004:batchEmbedContents');
    assert.equal(rec.headers['x-goog-api-key'], KEY);
    assert.deepEqual(body, { requests: texts.map((t) => ({ model: 'models/text-embedding-004', content: { parts: [{ text: t }] }, outputDimensionality: 8 })) });
    assert.equal(res.object, 'list');
    assert.equal(res.model, 'text-embedding-004');
    assert.deepEqual(res.data.map((d) => d.index), [0, 1]);
    assert.deepEqual(res.data.map((d) => d.embedding), texts.map((t, i) => Array.from(embeddingFor(t, i, 8))));

    s.reset();
    const plain = await client.embeddings.create({ model: 'google-ai-studio/gemini-embedding-001', input: 'four', encoding_format: 'float' });
    assert.deepEqual(plain.data[0].embedding, Array.from(embeddingFor('four', 0)));
  });

  test('@anthropic-ai/sdk on compat/v1/messages served by Google: text, stream, tool use', async () => {
    s.reset();
    const { data: m, response } = await ant.messages.create({
      model: 'google-ai-studio/gemini-2.5-flash',
      max_tokens: 32,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'hello there' }],
    }).withResponse();
    assert.equal(response.headers.get('cf-aig-provider'), 'google-ai-studio');
    assert.deepEqual(m.content, [{ type: 'text', text: TEXT }]);
    assert.equal(m.stop_reason, 'end_turn');
    const { rec, body } = only();
    assert.equal(rec.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assert.equal(rec.headers['x-goog-api-key'], KEY);
    assert.equal(rec.headers['anthropic-version'], undefined);
    assert.deepEqual(body.systemInstruction, { parts: [{ text: 'Be brief.' }] });
    assert.equal(body.generationConfig.maxOutputTokens, 32);
    assert.equal(m.usage.input_tokens, promptTokensFor('google.generate', body));
    assert.equal(m.usage.output_tokens, PIECES);

    s.reset();
    const stream = ant.messages.stream({ model: 'google-ai-studio/gemini-2.5-flash', max_tokens: 32, messages: [{ role: 'user', content: 'stream it' }] });
    let text = '';
    stream.on('text', (t) => { text += t; });
    const final = await stream.finalMessage();
    assert.equal(text, TEXT);
    assert.equal(final.usage.output_tokens, PIECES);
    assert.equal(final.usage.input_tokens, promptTokensFor('google.generate', only().body));

    s.reset();
    const tools = await ant.messages.create({
      model: 'google-ai-studio/gemini-2.5-flash',
      max_tokens: 32,
      tools: [{ name: 'get_weather', description: 'Weather for a city', input_schema: WEATHER_PARAMS }],
      messages: [{ role: 'user', content: 'weather?' }],
    }, { headers: { 'x-standin-tool-calls': '2' } });
    assert.equal(tools.stop_reason, 'tool_use');
    assert.deepEqual(tools.content.map((b) => [b.type, b.name, b.input]), [['tool_use', 'get_weather', toolInputFor(0)], ['tool_use', 'get_weather', toolInputFor(1)]]);
  });

  test('logged with provider google-ai-studio, the model without prefix, and usageMetadata\'s tokens', async () => {
    s.reset();
    await client.chat.completions.create({ model: 'google-ai-studio/gemini-2.5-flash', messages: [{ role: 'user', content: 'log me' }] },
      { headers: { 'cf-aig-event-id': 'ev-compat-google' } });
    const { body } = only();
    const deadline = Date.now() + 10000;
    let rec;
    for (;;) {
      const r = await (await fetch(`${gw.url}/client/v4/accounts/local/ai-gateway/gateways/default/logs?event_id=ev-compat-google`)).json();
      rec = r.result?.[0];
      if (rec || Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    assert.ok(rec, 'a log record');
    assert.equal(rec.provider, 'google-ai-studio');
    assert.equal(rec.model, 'gemini-2.5-flash');
    assert.equal(rec.tokens_in, promptTokensFor('google.generate', body));
    assert.equal(rec.tokens_out, PIECES);
    assert.equal(rec.success, true);
  });
});
