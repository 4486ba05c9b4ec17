// Request logs end to end: the official SDKs through the gateway against the stand-in, then the logs API says what
// happened — tokens (the stand-in's usage), cost (from data/pricing.json), status, duration, metadata, event id;
// filters, pagination, payload collection, custom costs, feedback, deletion, analytics, retention, and records
// that survive a restart. Streams whose client did not ask for usage are still counted, and the client's stream
// is byte-identical to the one it asked for.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startStandin, promptTokensFor } from '../fakes/standin.mjs';
import { spawnSync } from 'node:child_process';
import { BIN, SLOW, startGateway } from './harness.mjs';

const PRICES = JSON.parse(readFileSync(new URL('../../data/pricing.json', import.meta.url), 'utf8'));
const price = (provider, model) => {
  const p = PRICES[provider][model];
  const m = 1e6;
  return { in: p.input / m, out: p.output / m, cached: (p.cached_input ?? p.input) / m, write: (p.cache_write ?? p.input) / m };
};
const near = (a, b, what) => assert.ok(Math.abs(a - b) <= 1e-12 + Math.abs(b) * 1e-9, `${what}: ${a} != ${b}`);

let s, gw, dataDir, openai, anthropic;

function providers(url) {
  return {
    openai: { base_url: `${url}/v1` },
    anthropic: { base_url: url },
    'google-ai-studio': { base_url: url },
    'workers-ai': { base_url: `${url}/client/v4/accounts/standin/ai` },
  };
}

function config() {
  return {
    data_dir: dataDir,
    log_max_body: 4096,
    providers: providers(s.url),
    gateways: [
      { account: 'local', id: 'default' },
      { account: 'local', id: 'nolog', collect_logs: false },
      { account: 'local', id: 'keep3', log_management: 3, log_management_strategy: 'DELETE_OLDEST' },
      { account: 'local', id: 'first3', log_management: 3, log_management_strategy: 'STOP_INSERTING' },
      { account: 'local', id: 'burst4', log_management: 4, log_management_strategy: 'STOP_INSERTING' },
    ],
  };
}

const api = (p, init) => fetch(`${gw.url}/client/v4/accounts/local/ai-gateway/gateways/${p}`, init);
async function apiJson(p, init) {
  const res = await api(p, init);
  const body = await res.json();
  return { status: res.status, body };
}

/** Waits until the gateway's list (with `query`) has `count` records, then returns them (newest first). */
async function waitLogs(gateway, count, query = '') {
  const deadline = Date.now() + 10000;
  for (;;) {
    const { body } = await apiJson(`${gateway}/logs?per_page=50${query}`);
    if (body.result_info?.total_count >= count || Date.now() > deadline) {
      assert.equal(body.result_info.total_count, count, `records in ${gateway}${query}`);
      return body.result;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'tollgate-logs-'));
  s = await startStandin();
  gw = await startGateway({ config: config() });
  openai = new OpenAI({ apiKey: 'sk-logs', baseURL: gw.base('openai'), maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'sk-ant-logs', baseURL: gw.base('anthropic'), maxRetries: 0 });
});

after(async () => {
  await gw?.stop();
  await s?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('records', () => {
  test('openai plain call: tokens, cost, metadata, event id, log id header, bodies', async () => {
    const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count my tokens please' }] };
    const { data, response } = await openai.chat.completions
      .create(params, {
        headers: { 'cf-aig-metadata': '{"user":"alice","team":"search","n":3,"beta":true}', 'cf-aig-event-id': 'ev-plain',
          'x-standin-cached-tokens': '4' },
      })
      .withResponse();
    const logId = response.headers.get('cf-aig-log-id');
    assert.match(logId, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.equal(response.headers.get('cf-aig-event-id'), 'ev-plain');
    const [rec] = await waitLogs('default', 1, '&event_id=ev-plain');
    assert.equal(rec.id, logId);
    const prompt = promptTokensFor('openai.chat', params);
    assert.equal(rec.tokens_in, prompt);
    assert.equal(rec.tokens_in, data.usage.prompt_tokens);
    assert.equal(rec.tokens_out, 5);
    assert.equal(rec.cached_tokens, 4);
    const p = price('openai', 'gpt-4o-mini');
    near(rec.cost, (prompt - 4) * p.in + 4 * p.cached + 5 * p.out, 'cost');
    assert.equal(rec.custom_cost, false);
    assert.equal(rec.provider, 'openai');
    assert.equal(rec.model, 'gpt-4o-mini');
    assert.equal(rec.path, 'chat/completions');
    assert.equal(rec.status_code, 200);
    assert.equal(rec.success, true);
    assert.equal(rec.stream, false);
    assert.equal(rec.cached, false);
    assert.ok(rec.duration >= 0 && rec.duration < 10000);
    assert.deepEqual(JSON.parse(rec.metadata), { user: 'alice', team: 'search', n: 3, beta: true });
    assert.match(rec.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const one = await apiJson(`default/logs/${logId}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.result.id, logId);
    const head = JSON.parse(one.body.result.request_head);
    assert.equal(head.authorization, undefined, 'credentials are never stored');
    assert.equal(head['cf-aig-event-id'], 'ev-plain');
    const reqBody = await api(`default/logs/${logId}/request`);
    assert.deepEqual(await reqBody.json(), params);
    const respBody = await api(`default/logs/${logId}/response`);
    assert.equal((await respBody.json()).choices[0].message.content, 'Hello from the stand-in.');
  });

  test('a gzip answer is relayed as it came and still logged with its tokens and readable body', async () => {
    s.reset();
    const params = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'squeeze this' }] };
    const res = await fetch(`${gw.base('openai')}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'accept-encoding': 'br, gzip;q=0.8, zstd',
        'x-standin-gzip': '1', 'cf-aig-event-id': 'ev-gzip' },
      body: JSON.stringify(params),
    });
    assert.equal(res.headers.get('content-encoding'), 'gzip');
    assert.equal((await res.json()).choices[0].message.content, 'Hello from the stand-in.'); // fetch inflates
    assert.equal(s.requests[0].headers['accept-encoding'], 'gzip', 'narrowed to what the gateway can read');
    const [rec] = await waitLogs('default', 1, '&event_id=ev-gzip');
    assert.equal(rec.tokens_in, promptTokensFor('openai.chat', params));
    assert.equal(rec.tokens_out, 5);
    const body = await api(`default/logs/${rec.id}/response`);
    assert.equal((await body.json()).usage.completion_tokens, 5); // stored inflated
  });

  test('openai stream without include_usage: tokens logged, client stream byte-identical', async () => {
    const body = { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'one two three' }] };
    const raw = async (b, eventId) => {
      const res = await fetch(`${gw.base('openai')}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-logs', 'cf-aig-event-id': eventId },
        body: JSON.stringify(b),
      });
      assert.equal(res.status, 200);
      return res.text();
    };
    s.reset();
    const got = await raw(body, 'ev-nousage');
    // what the stand-in sends when nobody adds the option: the same request straight to it
    const direct = await (await fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    })).text();
    const norm = (t) => t.replace(/"created":\d+/g, '"created":0').replace(/chatcmpl-standin-\d+/g, 'chatcmpl-standin-N');
    assert.equal(norm(got), norm(direct));
    assert.ok(!got.includes('"usage"'));
    // the gateway did ask the provider for usage
    assert.equal(JSON.parse(s.requests[0].body).stream_options.include_usage, true);
    const [rec] = await waitLogs('default', 1, '&event_id=ev-nousage');
    assert.equal(rec.stream, true);
    assert.equal(rec.tokens_in, promptTokensFor('openai.chat', body));
    assert.equal(rec.tokens_out, 5);
    const p = price('openai', 'gpt-4o');
    near(rec.cost, rec.tokens_in * p.in + 5 * p.out, 'cost');

    // a client that asks for usage itself gets it, untouched
    const withUsage = await raw({ ...body, stream_options: { include_usage: true } }, 'ev-withusage');
    assert.ok(withUsage.includes('"usage":{"prompt_tokens"'));
    const [rec2] = await waitLogs('default', 1, '&event_id=ev-withusage');
    assert.equal(rec2.tokens_out, 5);
  });

  test('openai SDK stream reads the same text with the gateway adding usage', async () => {
    const stream = await openai.chat.completions.create(
      { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] },
      { headers: { 'cf-aig-event-id': 'ev-sdkstream' } },
    );
    let text = '';
    let sawUsage = false;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) sawUsage = true;
    }
    assert.equal(text, 'Hello from the stand-in.');
    assert.equal(sawUsage, false);
    const [rec] = await waitLogs('default', 1, '&event_id=ev-sdkstream');
    assert.equal(rec.tokens_out, 5);
  });

  test('anthropic plain and streamed: input, output and cache-read tokens priced', async () => {
    const params = { model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hello there' }] };
    await anthropic.messages.create(params, { headers: { 'cf-aig-event-id': 'ev-ant', 'x-standin-cached-tokens': '100' } });
    const stream = anthropic.messages.stream({ ...params }, { headers: { 'cf-aig-event-id': 'ev-ant-s' } });
    assert.equal(await stream.finalText(), 'Hello from the stand-in.');
    const input = promptTokensFor('anthropic.messages', params);
    const p = price('anthropic', 'claude-haiku-4-5');
    const [plain] = await waitLogs('default', 1, '&event_id=ev-ant');
    assert.equal(plain.tokens_in, input + 100); // Anthropic counts cache reads beside input_tokens
    assert.equal(plain.cached_tokens, 100);
    near(plain.cost, input * p.in + 100 * p.cached + 5 * p.out, 'anthropic cost');
    const [streamed] = await waitLogs('default', 1, '&event_id=ev-ant-s');
    assert.equal(streamed.stream, true);
    assert.equal(streamed.tokens_in, input);
    assert.equal(streamed.tokens_out, 5);
  });

  test('google plain, streamed JSON array and SSE: usageMetadata', async () => {
    const body = { contents: [{ role: 'user', parts: [{ text: 'what is up' }] }] };
    const call = async (suffix, eventId) => {
      const res = await fetch(`${gw.base('google-ai-studio')}/v1beta/models/gemini-2.5-flash:${suffix}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': 'g-key', 'cf-aig-event-id': eventId },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200);
      await res.text();
    };
    await call('generateContent', 'ev-g1');
    await call('streamGenerateContent', 'ev-g2');
    await call('streamGenerateContent?alt=sse', 'ev-g3');
    const prompt = promptTokensFor('google.generate', body);
    const p = price('google-ai-studio', 'gemini-2.5-flash');
    for (const ev of ['ev-g1', 'ev-g2', 'ev-g3']) {
      const [rec] = await waitLogs('default', 1, `&event_id=${ev}`);
      assert.equal(rec.model, 'gemini-2.5-flash', ev);
      assert.equal(rec.tokens_in, prompt, ev);
      assert.equal(rec.tokens_out, 5, ev);
      near(rec.cost, prompt * p.in + 5 * p.out, ev);
    }
  });

  test('bodies over log_max_body are not stored, and the record says so', async () => {
    const big = 'word '.repeat(1000); // a request body over 4096 bytes
    const r1 = await openai.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: big }] }, { headers: { 'cf-aig-event-id': 'ev-bigreq' } })
      .withResponse();
    assert.equal(r1.data.usage.prompt_tokens, promptTokensFor('openai.chat', { messages: [{ role: 'user', content: big }] }));
    const [a] = await waitLogs('default', 1, '&event_id=ev-bigreq');
    assert.equal(a.request_body_dropped, true);
    assert.equal(a.response_body_dropped, false);
    assert.ok(a.tokens_in > 1000, 'the figures are kept');
    const reqBody = await apiJson(`default/logs/${a.id}/request`);
    assert.equal(reqBody.status, 404);
    assert.match(reqBody.body.errors[0].message, /larger than log_max_body/);
    assert.equal((await api(`default/logs/${a.id}/response`)).status, 200);

    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'pad' }] },
      { headers: { 'cf-aig-event-id': 'ev-bigresp', 'x-standin-body-bytes': '6000' } });
    const [b] = await waitLogs('default', 1, '&event_id=ev-bigresp');
    assert.equal(b.request_body_dropped, false);
    assert.equal(b.response_body_dropped, true);
    assert.equal(b.tokens_out, 5, 'usage is still read from the whole answer');
    assert.ok(b.response_size >= 6000);
  });

  test('errors, unknown models, custom costs', async () => {
    const post = (headers, body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }) =>
      fetch(`${gw.base('openai')}/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k', ...headers },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, text: await r.text(), headers: r.headers }));
    assert.equal((await post({ 'x-standin-status': '500', 'cf-aig-event-id': 'ev-err' })).status, 500);
    const [err] = await waitLogs('default', 1, '&event_id=ev-err');
    assert.equal(err.success, false);
    assert.equal(err.status_code, 500);
    assert.equal(err.tokens_in, null);
    assert.equal(err.cost, null);

    await post({ 'cf-aig-event-id': 'ev-unknown' }, { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
    const [unk] = await waitLogs('default', 1, '&event_id=ev-unknown');
    assert.ok(unk.tokens_in > 0);
    assert.equal(unk.cost, null, 'an unknown price is null, not 0');

    await post({ 'cf-aig-event-id': 'ev-custom', 'cf-aig-custom-cost': '{"per_token_in":0.001,"per_token_out":0.01}' });
    const [cus] = await waitLogs('default', 1, '&event_id=ev-custom');
    assert.equal(cus.custom_cost, true);
    near(cus.cost, cus.tokens_in * 0.001 + cus.tokens_out * 0.01, 'custom cost');

    // malformed logging headers: 400 naming the header, nothing forwarded; the refusal is logged with its route
    // and event id, and the answer names the record (cf-aig-log-id) and echoes the event id
    s.reset();
    const refused = [];
    for (const [h, v] of [['cf-aig-metadata', '{"a":{"b":1}}'], ['cf-aig-metadata', 'not json'],
      ['cf-aig-metadata', '{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}'], ['cf-aig-custom-cost', '{"per_token_in":1}'],
      ['cf-aig-collect-log', 'maybe']]) {
      const ev = `ev-refused-${refused.length}`;
      const r = await post({ [h]: v, 'cf-aig-event-id': ev });
      assert.equal(r.status, 400, `${h}: ${v}`);
      assert.match(JSON.parse(r.text).error[0].message, new RegExp(h), `${h}: ${v}`);
      assert.equal(r.headers.get('cf-aig-event-id'), ev);
      assert.match(r.headers.get('cf-aig-log-id') ?? '', /^[0-9A-HJKMNP-TV-Z]{26}$/, `${h}: ${v}`);
      refused.push([ev, r.headers.get('cf-aig-log-id'), h]);
    }
    assert.equal(s.requests.length, 0);
    for (const [ev, id, h] of refused) {
      const [rec] = await waitLogs('default', 1, `&event_id=${ev}`);
      assert.equal(rec.id, id);
      assert.equal(rec.status_code, 400);
      assert.equal(rec.provider, 'openai');
      assert.equal(rec.path, 'chat/completions');
      assert.equal(rec.model, null, 'nothing of the body was read');
      assert.match(rec.error, new RegExp(h));
    }
    // a gateway error after the recorder started (here an unknown provider) carries the log id too
    const unknown = await fetch(`${gw.url}/v1/local/default/no-such-provider/x`, { headers: { 'cf-aig-event-id': 'ev-noprov' } });
    assert.equal(unknown.status, 400);
    await unknown.text();
    const [np] = await waitLogs('default', 1, '&event_id=ev-noprov');
    assert.equal(unknown.headers.get('cf-aig-log-id'), np.id);
    assert.equal(np.provider, null);
  });

  test('collect_logs off, cf-aig-collect-log and payload collection', async () => {
    const call = (gwId, headers) =>
      fetch(`${gw.url}/v1/local/${gwId}/openai/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k', ...headers },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      }).then(async (r) => { await r.text(); return r; });
    const r1 = await call('nolog', {});
    assert.equal(r1.headers.get('cf-aig-log-id'), null);
    await call('nolog', { 'cf-aig-collect-log': 'true', 'cf-aig-event-id': 'ev-forced' }); // the request overrides
    await waitLogs('nolog', 1);
    const r3 = await call('default', { 'cf-aig-collect-log': 'false', 'cf-aig-event-id': 'ev-skipped' });
    assert.equal(r3.headers.get('cf-aig-log-id'), null);
    const r4 = await call('default', { 'cf-aig-collect-log-payload': 'false', 'cf-aig-event-id': 'ev-nopayload' });
    const id = r4.headers.get('cf-aig-log-id');
    const [rec] = await waitLogs('default', 1, '&event_id=ev-nopayload');
    assert.equal(rec.id, id);
    assert.equal(rec.payload, false);
    assert.ok(rec.tokens_in > 0, 'the record keeps its figures');
    for (const part of ['request', 'response']) {
      const r = await apiJson(`default/logs/${id}/${part}`);
      assert.equal(r.status, 404);
      assert.match(r.body.errors[0].message, /payload collection was off/);
    }
    await waitLogs('default', 0, '&event_id=ev-skipped');
  });
});

describe('logs API', () => {
  test('filters, pagination, ordering and bad parameters', async () => {
    s.reset();
    for (let i = 0; i < 4; i++) {
      await openai.chat.completions.create(
        { model: i % 2 ? 'gpt-4o' : 'gpt-4o-mini', messages: [{ role: 'user', content: `n ${i}` }] },
        { headers: { 'cf-aig-metadata': JSON.stringify({ batch: 'pg', i }), 'cf-aig-event-id': `ev-pg-${i}` } },
      );
    }
    const all = await waitLogs('default', 4, '&metadata.batch=pg');
    assert.deepEqual(all.map((r) => r.event_id), ['ev-pg-3', 'ev-pg-2', 'ev-pg-1', 'ev-pg-0']); // newest first
    const asc = await apiJson('default/logs?metadata.batch=pg&order_by_direction=asc&per_page=2&page=2');
    assert.deepEqual(asc.body.result.map((r) => r.event_id), ['ev-pg-2', 'ev-pg-3']);
    assert.equal(asc.body.result_info.total_count, 4);
    assert.equal(asc.body.result_info.total_pages, 2);
    const byModel = await apiJson('default/logs?metadata.batch=pg&model=gpt-4o');
    assert.equal(byModel.body.result_info.total_count, 2);
    const filters = encodeURIComponent(JSON.stringify([
      { key: 'metadata.batch', operator: 'eq', value: ['pg'] },
      { key: 'model', operator: 'neq', value: ['gpt-4o'] },
      { key: 'tokens_in', operator: 'gt', value: [0] },
    ]));
    const viaFilters = await apiJson(`default/logs?filters=${filters}`);
    assert.equal(viaFilters.status, 200, JSON.stringify(viaFilters.body));
    assert.deepEqual(viaFilters.body.result.map((r) => r.event_id), ['ev-pg-2', 'ev-pg-0']);
    const failed = await apiJson('default/logs?success=false&metadata.batch=pg');
    assert.equal(failed.body.result_info.total_count, 0);
    const future = await apiJson('default/logs?start_date=2999-01-01');
    assert.equal(future.body.result_info.total_count, 0);
    const searched = await apiJson('default/logs?search=ev-pg-1');
    assert.equal(searched.body.result_info.total_count, 1);

    for (const [q, name] of [['per_page=51', 'per_page'], ['page=0', 'page'], ['success=maybe', 'success'],
      ['start_date=yesterday', 'start_date'], ['order_by=secret', 'order_by'], ['bogus=1', 'bogus'],
      ['filters=%5B%7B%22key%22%3A%22x%22%7D%5D', 'filters'], ['per_page=2&per_page=3', 'per_page is given more']]) {
      const r = await apiJson(`default/logs?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.success, false);
      assert.match(r.body.errors[0].message, new RegExp(name), q);
    }
    assert.equal((await apiJson('nope/logs')).status, 404);
    assert.equal((await apiJson('default/logs/01NOSUCHLOG00000000000000')).status, 404);
    const post405 = await api('default/logs', { method: 'POST' });
    assert.equal(post405.status, 405);
    assert.equal(post405.headers.get('allow'), 'GET, DELETE');
    await post405.text();
  });

  test('feedback, score and metadata by PATCH; delete by filter', async () => {
    const [rec] = await waitLogs('default', 1, '&event_id=ev-pg-0');
    const patched = await apiJson(`default/logs/${rec.id}`, {
      method: 'PATCH', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ feedback: 1, score: 87, metadata: { batch: 'pg', reviewed: true } }),
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.result.feedback, 1);
    assert.equal(patched.body.result.score, 87);
    await waitLogs('default', 1, '&metadata.reviewed=true');
    const bad = await apiJson(`default/logs/${rec.id}`, { method: 'PATCH', body: JSON.stringify({ feedback: 7 }) });
    assert.equal(bad.status, 400);
    assert.match(bad.body.errors[0].message, /feedback/);

    const del = await apiJson('default/logs?metadata.batch=pg&model=gpt-4o', { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal(del.body.result.deleted, 2);
    await waitLogs('default', 2, '&metadata.batch=pg');
  });

  test('analytics: totals and groups with latency percentiles', async () => {
    const { status, body } = await apiJson('default/analytics?group_by=provider');
    assert.equal(status, 200);
    const t = body.result.totals;
    const list = await apiJson('default/logs?per_page=1');
    assert.equal(t.requests, list.body.result_info.total_count);
    assert.ok(t.errors >= 1);
    assert.ok(t.tokens_in > 0 && t.tokens_out > 0 && t.cost > 0);
    assert.ok(t.latency_ms.p50 <= t.latency_ms.p95 && t.latency_ms.p95 <= t.latency_ms.p99);
    const keys = body.result.groups.map((g) => g.key ?? 'null').sort();
    assert.deepEqual(keys, ['anthropic', 'google-ai-studio', 'null', 'openai']); // null: refused before a provider was chosen
    const sum = body.result.groups.reduce((a, g) => a + g.totals.requests, 0);
    assert.equal(sum, t.requests);
    const now = new Date();
    const start = new Date(now.getTime() - 3600e3).toISOString(), end = new Date(now.getTime() + 60e3).toISOString();
    const bucketed = await apiJson(`default/analytics?group_by=model&interval=1h&start_date=${start}&end_date=${end}`);
    assert.equal(bucketed.status, 200);
    for (const g of bucketed.body.result.groups) {
      assert.equal(g.buckets.reduce((a, b) => a + b.requests, 0), g.totals.requests);
    }
    const bad = await apiJson('default/analytics?group_by=colour');
    assert.equal(bad.status, 400);
    assert.match(bad.body.errors[0].message, /group_by/);
    const tooMany = await apiJson(`default/analytics?interval=1s&start_date=2020-01-01&end_date=2026-01-01`);
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body.errors[0].message, /interval/);
  });

  test('metrics count tokens, cost and the writer', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(text, /tollgate_tokens_input_total\{gateway="default",provider="openai",model="gpt-4o-mini"\} \d+/);
    assert.match(text, /tollgate_cost_usd_total\{gateway="default",provider="anthropic",model="claude-haiku-4-5"\} 0\.\d+/);
    const written = Number(/tollgate_log_records_written_total (\d+)/.exec(text)[1]);
    assert.ok(written >= 20, `written ${written}`);
    assert.match(text, /tollgate_log_records_dropped_total\{reason="queue_full"\} 0/);
    assert.match(text, /tollgate_log_queue_depth \d+/);
  });
});

describe('management API authentication', () => {
  test('with admin_token set, the API wants Authorization: Bearer {admin_token}', async () => {
    const g = await startGateway({ config: { admin_token: 'env:TG_TEST_ADMIN', providers: providers(s.url) },
      env: { TG_TEST_ADMIN: 's3cret-token' } });
    try {
      const url = `${g.url}/client/v4/accounts/local/ai-gateway/gateways/default/logs`;
      for (const auth of [undefined, 'Bearer wrong', 'Bearer s3cret-toke', 'Basic s3cret-token']) {
        const r = await fetch(url, { headers: auth ? { authorization: auth } : {} });
        assert.equal(r.status, 401, String(auth));
        const body = await r.json();
        assert.equal(body.success, false);
        assert.equal(body.errors[0].code, 10000);
      }
      const ok = await fetch(url, { headers: { authorization: 'Bearer s3cret-token' } });
      assert.equal(ok.status, 200);
      assert.equal((await ok.json()).success, true);
    } finally {
      await g.stop();
    }
  });
});

describe('queue places', () => {
  test('a request the log queue has no place for names no log id; one that got a place keeps its record', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-places-'));
    const g = await startGateway({ config: { data_dir: dir, log_queue_size: 16, providers: providers(s.url) } });
    try {
      const call = (delay) => fetch(`${g.url}/v1/local/default/openai/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'x-standin-delay-ms': String(delay) },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      });
      // sixteen slow requests hold the sixteen places while the stand-in waits to answer them (long enough for what
      // follows to happen while they wait: seeing them in flight takes a few ms, 2 s at most is allowed)
      const slow = Array.from({ length: 16 }, () => call(4000 * SLOW));
      const metric = async (name) => Number(new RegExp(`${name} (\\d+)`).exec(await (await fetch(`${g.url}/metrics`)).text())[1]);
      const deadline = Date.now() + 2000 * SLOW;
      while (await metric('tollgate_log_records_in_flight') < 16 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(await metric('tollgate_log_records_in_flight'), 16);
      const refused = await call(0);
      assert.equal(refused.status, 200); // the request itself is served
      await refused.text();
      assert.equal(refused.headers.get('cf-aig-log-id'), null);
      assert.equal(await metric('tollgate_log_records_dropped_total\\{reason="queue_full"\\}'), 1);
      const ids = [];
      for (const r of await Promise.all(slow)) {
        await r.text();
        ids.push(r.headers.get('cf-aig-log-id'));
      }
      assert.ok(ids.every((id) => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id ?? '')), String(ids));
      // the places come back as the writer takes the records (within its group-commit wait)
      const until = Date.now() + 5000 * SLOW;
      while ((await metric('tollgate_log_records_in_flight')) + (await metric('tollgate_log_queue_depth')) > 0 &&
             Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      const after = await call(0);
      await after.text();
      assert.match(after.headers.get('cf-aig-log-id') ?? '', /^[0-9A-HJKMNP-TV-Z]{26}$/);
      ids.push(after.headers.get('cf-aig-log-id'));
      // every id an answer named is a stored record
      for (const id of ids) {
        let r;
        const until = Date.now() + 5000 * SLOW;
        do {
          r = await fetch(`${g.url}/client/v4/accounts/local/ai-gateway/gateways/default/logs/${id}`);
          if (r.status === 200) break;
          await new Promise((res) => setTimeout(res, 20));
        } while (Date.now() < until);
        assert.equal(r.status, 200, id);
      }
      assert.equal(await metric('tollgate_log_records_dropped_total\\{reason="queue_full"\\}'), 1);
    } finally {
      await g.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('log queue memory', () => {
  test('a record past log_queue_memory is stored without its payload, and its log id stays good', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-shed-'));
    const g = await startGateway({ config: { data_dir: dir, log_queue_memory: 1 << 20, providers: providers(s.url) } });
    try {
      const client = new OpenAI({ apiKey: 'sk-shed', baseURL: g.base('openai'), maxRetries: 0 });
      const logs = `${g.url}/client/v4/accounts/local/ai-gateway/gateways/default/logs`;
      const call = (content, ev) => client.chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content }] },
        { headers: { 'cf-aig-event-id': ev, 'cf-aig-metadata': '{"user":"u7"}' } }).withResponse();
      // a 1.5 MB request: its record alone is over the 1 MiB queue bound
      const big = await call('x'.repeat(1_500_000), 'big');
      assert.equal(big.response.status, 200);
      const small = await call('hello', 'small');
      const bigId = big.response.headers.get('cf-aig-log-id'), smallId = small.response.headers.get('cf-aig-log-id');
      assert.match(bigId ?? '', /^[0-9A-HJKMNP-TV-Z]{26}$/);
      const get = async (id) => {
        const until = Date.now() + 5000 * SLOW;
        for (;;) {
          const r = await fetch(`${logs}/${id}`);
          if (r.status === 200 || Date.now() > until) return r;
          await new Promise((res) => setTimeout(res, 20));
        }
      };
      const rb = await get(bigId);
      assert.equal(rb.status, 200);
      const b = (await rb.json()).result;
      assert.equal(b.payload_shed, true);
      assert.equal(b.event_id, 'big');
      assert.equal(b.tokens_in, big.data.usage.prompt_tokens);
      assert.equal(b.tokens_out, big.data.usage.completion_tokens);
      assert.ok(b.request_size > 1_500_000, String(b.request_size));
      assert.equal(b.request_head, null);
      const body = await fetch(`${logs}/${bigId}/request`);
      assert.equal(body.status, 404);
      assert.match(JSON.stringify(await body.json()), /log_queue_memory/);
      // a record that fits keeps its payload
      const sm = (await (await get(smallId)).json()).result;
      assert.equal(sm.payload_shed, false);
      assert.equal(JSON.parse(await (await fetch(`${logs}/${smallId}/request`)).text()).messages[0].content, 'hello');
      const metrics = await (await fetch(`${g.url}/metrics`)).text();
      assert.match(metrics, /tollgate_log_payloads_shed_total 1\n/);
      assert.match(metrics, /tollgate_log_records_dropped_total\{reason="queue_full"\} 0\n/);
    } finally {
      await g.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('retention and restarts', () => {
  test('DELETE_OLDEST keeps the newest, STOP_INSERTING the first', async () => {
    const firstIds = [];
    for (let i = 0; i < 5; i++) {
      for (const g of ['keep3', 'first3']) {
        const r = await fetch(`${gw.url}/v1/local/${g}/openai/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'cf-aig-event-id': `r${i}` },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
        });
        await r.text();
        if (g === 'first3') firstIds.push(r.headers.get('cf-aig-log-id'));
      }
    }
    // first3's places are held from admission, before the writer has written a record: the fourth and fifth
    // answers name no log id at once, however fast they follow
    assert.ok(firstIds.slice(0, 3).every((id) => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id ?? '')), String(firstIds));
    assert.deepEqual(firstIds.slice(3), [null, null]);
    // all ten are done with once the retention counters say so: first3's two refused, keep3's two oldest deleted
    const deadline = Date.now() + 10000;
    for (;;) {
      const m = await (await fetch(`${gw.url}/metrics`)).text();
      if ((/tollgate_log_records_dropped_total\{reason="retention"\} 2\b/.test(m) &&
        /tollgate_log_records_deleted_total 2\b/.test(m)) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const keep = await waitLogs('keep3', 3);
    assert.deepEqual(keep.map((r) => r.event_id), ['r4', 'r3', 'r2']);
    const first = await waitLogs('first3', 3);
    assert.deepEqual(first.map((r) => r.event_id), ['r2', 'r1', 'r0']);
    assert.deepEqual(first.map((r) => r.id), firstIds.slice(0, 3).reverse());
    // the refused requests gave back the queue places they had taken: none is held with nothing running
    assert.match(await (await fetch(`${gw.url}/metrics`)).text(), /tollgate_log_records_in_flight 0\n/);

    // once the writer has counted first3 full, a request keeps no record and its answer names none
    const call = (ev) => fetch(`${gw.url}/v1/local/first3/openai/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'cf-aig-event-id': ev },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    }).then(async (r) => { await r.text(); return r; });
    const full = await call('r-full');
    assert.equal(full.status, 200);
    assert.equal(full.headers.get('cf-aig-log-id'), null);
    assert.equal(full.headers.get('cf-aig-event-id'), 'r-full');
    assert.match(await (await fetch(`${gw.url}/metrics`)).text(),
      /tollgate_log_records_dropped_total\{reason="retention"\} 3\b/);
    // after a delete the gateway logs again
    const del = await apiJson('first3/logs?event_id=r0', { method: 'DELETE' });
    assert.equal(del.status, 200);
    const again = await call('r-again');
    const id = again.headers.get('cf-aig-log-id');
    assert.match(id ?? '', /^[0-9A-HJKMNP-TV-Z]{26}$/);
    const [rec] = await waitLogs('first3', 1, '&event_id=r-again');
    assert.equal(rec.id, id);
  });

  test('STOP_INSERTING under a concurrent burst: a log id exactly for the records kept', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) =>
      fetch(`${gw.url}/v1/local/burst4/openai/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'cf-aig-event-id': `b${i}` },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      }).then(async (r) => { await r.text(); return r; })));
    assert.ok(answers.every((r) => r.status === 200));
    const ids = answers.map((r) => r.headers.get('cf-aig-log-id')).filter((id) => id !== null);
    assert.equal(ids.length, 4);
    const kept = await waitLogs('burst4', 4);
    assert.deepEqual(kept.map((r) => r.id).sort(), [...ids].sort());
  });

  test('records survive a restart (SIGTERM flushes the queue)', async () => {
    const before = (await apiJson('default/logs?per_page=1')).body.result_info.total_count;
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'last' }] },
      { headers: { 'cf-aig-event-id': 'ev-last' } });
    await gw.stop();
    gw = await startGateway({ config: config() });
    const after = await apiJson('default/logs?per_page=1');
    assert.equal(after.body.result_info.total_count, before + 1);
    await waitLogs('default', 1, '&event_id=ev-last');
    openai = new OpenAI({ apiKey: 'sk-logs', baseURL: gw.base('openai'), maxRetries: 0 });
  });

  test('tollgate logs and tollgate stats read the store from a terminal', () => {
    const run = (args) => spawnSync(BIN, args, { encoding: 'utf8', timeout: 20000 });
    const json = run(['logs', '--data-dir', dataDir, '--json', 'event_id=ev-last']);
    assert.equal(json.status, 0, json.stderr);
    const lines = json.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const rec = JSON.parse(lines[0]);
    assert.equal(rec.event_id, 'ev-last');
    assert.equal(rec.model, 'gpt-4o-mini');
    const table = run(['logs', '--data-dir', dataDir, '--limit', '3', 'provider=openai']);
    assert.equal(table.status, 0, table.stderr);
    const rows = table.stdout.trim().split('\n');
    assert.match(rows[0], /^created_at\s+provider\s+model/);
    assert.equal(rows.length, 4);
    assert.ok(rows.slice(1).every((r) => /\sopenai\s/.test(r)));
    const stats = run(['stats', '--data-dir', dataDir, '--json', 'group_by=provider']);
    assert.equal(stats.status, 0, stats.stderr);
    const st = JSON.parse(stats.stdout);
    assert.ok(st.totals.requests > 10);
    assert.ok(st.groups.some((g) => g.key === 'anthropic'));
    const bad = run(['logs', '--data-dir', dataDir, 'success=maybe']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /success/);
    const missing = run(['stats', '--data-dir', path.join(dataDir, 'nope')]);
    assert.equal(missing.status, 1);
    const unknown = run(['logs', '--data-dir', dataDir, '--gateway', 'nosuch/gw']);
    assert.equal(unknown.status, 1);
    assert.equal(unknown.stdout, '');
    assert.match(unknown.stderr, /no records of gateway nosuch\/gw .*local\/default/);
  });
});

describe('more providers', () => {
  test('Workers AI\'s native route: the model is the path, the tokens its result.usage, the cost the table\'s', async () => {
    const model = '@cf/meta/llama-3.1-8b-instruct';
    const body = { prompt: 'tell me about gateways' };
    const r = await fetch(`${gw.url}/v1/local/default/workers-ai/${model}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'cf-aig-event-id': 'ev-workers' },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).result.response, 'Hello from the stand-in.');
    const [rec] = await waitLogs('default', 1, '&event_id=ev-workers');
    assert.equal(rec.provider, 'workers-ai');
    assert.equal(rec.model, model);
    assert.equal(rec.path, model);
    assert.equal(rec.tokens_in, promptTokensFor('workers.run', body));
    assert.equal(rec.tokens_out, 5);
    const p = price('workers-ai', model);
    near(rec.cost, rec.tokens_in * p.in + rec.tokens_out * p.out, 'Workers AI cost');
  });
});
