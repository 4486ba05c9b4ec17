// The response cache end to end, with the official SDKs against the stand-in (which records every call it gets):
// a repeated request within its TTL is a HIT with an identical body and no upstream call; skip-cache, another
// credential, another body or an error answer all miss; a custom key hits across bodies; a streamed answer is
// replayed as a stream the SDK reads as the same text; hits are logged as cached with cost 0; entries survive a
// restart; a purge through the management API empties a gateway's cache.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startStandin } from '../fakes/standin.mjs';
import { startGateway } from './harness.mjs';

let s, gw, dataDir;

function config() {
  return {
    data_dir: dataDir,
    providers: { openai: { base_url: `${s.url}/v1` }, anthropic: { base_url: s.url } },
    gateways: [
      { account: 'local', id: 'default' }, // caching off unless a request asks
      { account: 'local', id: 'cached', cache_ttl: 600 },
    ],
  };
}

const client = (gateway = 'cached', apiKey = 'sk-cache-1') =>
  new OpenAI({ apiKey, baseURL: `${gw.url}/v1/local/${gateway}/openai`, maxRetries: 0 });
const calls = () => s.requests.length;
const ask = (content) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

/** A raw POST through the gateway: status, headers and the body's exact bytes. */
async function raw(gateway, body, headers = {}) {
  const res = await fetch(`${gw.url}/v1/local/${gateway}/openai/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-cache-1', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'tollgate-cache-'));
  s = await startStandin();
  gw = await startGateway({ config: config() });
});

after(async () => {
  await gw?.stop();
  await s?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('hits and misses', () => {
  test('a repeated request is a HIT with the identical body and no upstream call', async () => {
    s.reset();
    const params = ask('cache me, please');
    const first = await client().chat.completions.create(params).withResponse();
    assert.equal(first.response.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 1);
    const second = await client().chat.completions.create(params).withResponse();
    assert.equal(second.response.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(calls(), 1, 'no upstream call for a hit');
    assert.deepEqual(second.data, first.data);
    assert.equal(second.data.choices[0].message.content, 'Hello from the stand-in.');
    // byte for byte, and the provider's own headers come back too
    const a = await raw('cached', ask('raw bytes'));
    const b = await raw('cached', ask('raw bytes'));
    assert.equal(a.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(b.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(b.text, a.text);
    assert.equal(b.headers.get('content-type'), a.headers.get('content-type'));
    assert.equal(b.headers.get('x-standin-request-id'), a.headers.get('x-standin-request-id'));
    assert.equal(calls(), 2);
  });

  test('caching is off unless the gateway or the request asks: no cache header, every call goes upstream', async () => {
    s.reset();
    const a = await raw('default', ask('not cached'));
    const b = await raw('default', ask('not cached'));
    assert.equal(a.headers.get('cf-aig-cache-status'), null);
    assert.equal(b.headers.get('cf-aig-cache-status'), null);
    assert.equal(calls(), 2);
    // a request TTL turns it on for that request
    const c = await raw('default', ask('ttl by header'), { 'cf-aig-cache-ttl': '60' });
    const d = await raw('default', ask('ttl by header'), { 'cf-aig-cache-ttl': '60' });
    assert.equal(c.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(d.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(calls(), 3);
  });

  test('skip-cache, another credential, another body and an error answer all miss', async () => {
    s.reset();
    await raw('cached', ask('base'));
    assert.equal(calls(), 1);
    const skipped = await raw('cached', ask('base'), { 'cf-aig-skip-cache': 'true' });
    assert.equal(skipped.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 2);
    const otherKey = await raw('cached', ask('base'), { authorization: 'Bearer sk-cache-2' });
    assert.equal(otherKey.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 3);
    const otherBody = await raw('cached', { ...ask('base'), temperature: 0.5 });
    assert.equal(otherBody.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 4);
    for (let i = 0; i < 2; i++) {
      const err = await raw('cached', ask('failing'), { 'x-standin-status': '500' });
      assert.equal(err.status, 500);
      assert.equal(err.headers.get('cf-aig-cache-status'), 'MISS');
    }
    assert.equal(calls(), 6, 'an error answer is never stored');
    // and the original is still a hit
    const again = await raw('cached', ask('base'));
    assert.equal(again.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(calls(), 6);
  });

  test('a custom cache key hits across bodies (and caches for 5 minutes on a gateway with caching off)', async () => {
    s.reset();
    const first = await raw('default', ask('question one'), { 'cf-aig-cache-key': 'faq-42' });
    const second = await raw('default', ask('a different question'), { 'cf-aig-cache-key': 'faq-42' });
    assert.equal(first.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(second.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(second.text, first.text);
    assert.equal(calls(), 1);
    const other = await raw('default', ask('question one'), { 'cf-aig-cache-key': 'faq-43' });
    assert.equal(other.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 2);
  });

  test('/metrics counts hits, misses and stores per gateway, and the tiers', async () => {
    const metric = (text, name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    const m0 = await (await fetch(`${gw.url}/metrics`)).text();
    await raw('cached', ask('metrics one'));
    await raw('cached', ask('metrics one'));
    const m1 = await (await fetch(`${gw.url}/metrics`)).text();
    const label = '\\{account="local",gateway="cached"\\}';
    for (const [name, delta] of [['hits', 1], ['misses', 1], ['stores', 1]])
      assert.equal(metric(m1, `tollgate_cache_${name}_total${label}`) - metric(m0, `tollgate_cache_${name}_total${label}`), delta, name);
    assert.ok(metric(m1, `tollgate_cache_stored_bytes_total${label}`) > metric(m0, `tollgate_cache_stored_bytes_total${label}`));
    assert.ok(metric(m1, 'tollgate_cache_entries\\{tier="memory"\\}') >= 1);
    assert.ok(metric(m1, 'tollgate_cache_bytes\\{tier="memory"\\}') > 0);
  });

  test('malformed cache headers are refused naming the header', async () => {
    for (const [name, value] of [['cf-aig-cache-ttl', '10'], ['cf-aig-cache-ttl', 'soon'], ['cf-aig-cache-ttl', '2592001'],
      ['cf-aig-skip-cache', 'maybe']]) {
      const r = await raw('cached', ask('bad header'), { [name]: value });
      assert.equal(r.status, 400, `${name}: ${value}`);
      assert.match(JSON.parse(r.text).error[0].message, new RegExp(name));
    }
  });
});

describe('streams', () => {
  test('a streamed answer is stored and replayed as a stream the SDK reads as the same text', async () => {
    s.reset();
    const params = { ...ask('stream me'), stream: true };
    const read = async () => {
      const { data, response } = await client().chat.completions.create(params).withResponse();
      let text = '';
      for await (const chunk of data) text += chunk.choices[0]?.delta?.content ?? '';
      return { text, status: response.headers.get('cf-aig-cache-status') };
    };
    const first = await read();
    const second = await read();
    assert.equal(first.status, 'MISS');
    assert.equal(second.status, 'HIT');
    assert.equal(second.text, 'Hello from the stand-in.');
    assert.equal(second.text, first.text);
    assert.equal(calls(), 1);
    // the same words without "stream" never receive the stored stream, even under one custom key
    const plainKeyed = await raw('cached', ask('stream me'), { 'cf-aig-cache-key': 'both' });
    const streamKeyed = await raw('cached', { ...ask('stream me'), stream: true }, { 'cf-aig-cache-key': 'both' });
    assert.equal(plainKeyed.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(streamKeyed.headers.get('cf-aig-cache-status'), 'MISS');
    assert.match(streamKeyed.text, /^data: /);
    assert.doesNotMatch(plainKeyed.text, /^data: /);
  });

  test('an Anthropic stream replays for @anthropic-ai/sdk', async () => {
    s.reset();
    const anthropic = new Anthropic({ apiKey: 'sk-ant-cache', baseURL: `${gw.url}/v1/local/cached/anthropic`, maxRetries: 0 });
    const params = { model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'stream from the cache' }] };
    const texts = [];
    for (let i = 0; i < 2; i++) {
      const stream = anthropic.messages.stream(params);
      const msg = await stream.finalMessage();
      texts.push(msg.content[0].text);
    }
    assert.equal(texts[1], texts[0]);
    assert.equal(calls(), 1);
  });
});

describe('coalescing', () => {
  test('N concurrent identical misses make one upstream call and all get its answer', async () => {
    s.reset();
    const body = ask('coalesce these');
    const results = await Promise.all(Array.from({ length: 8 }, () => raw('cached', body, { 'x-standin-delay-ms': '300' })));
    assert.equal(calls(), 1, 'one upstream call for eight requests');
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.text, results[0].text);
    }
    const statuses = results.map((r) => r.headers.get('cf-aig-cache-status')).sort();
    assert.deepEqual(statuses, ['HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'MISS']);
    const m = await (await fetch(`${gw.url}/metrics`)).text();
    assert.ok(Number(/^tollgate_cache_coalesced_total\{account="local",gateway="cached"\} (\d+)$/m.exec(m)[1]) >= 7);
    // and afterwards it is an ordinary hit
    const later = await raw('cached', body);
    assert.equal(later.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(calls(), 1);
  });

  test('a failure is handed to the waiters as a failure and not stored', async () => {
    s.reset();
    const body = ask('coalesce a failure');
    const results = await Promise.all(Array.from({ length: 4 }, () =>
      raw('cached', body, { 'x-standin-delay-ms': '300', 'x-standin-status': '503' })));
    assert.equal(calls(), 1);
    for (const r of results) {
      assert.equal(r.status, 503);
      assert.equal(r.text, results[0].text);
      assert.equal(r.headers.get('cf-aig-cache-status'), 'MISS');
    }
    const next = await raw('cached', body);
    assert.equal(next.status, 200);
    assert.equal(next.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 2, 'the failure was not stored');
  });

  test('concurrent identical streams share one upstream stream, events passed on as they arrive', async () => {
    s.reset();
    const params = { ...ask('coalesce a stream'), stream: true };
    const read = async () => {
      const stream = await client().chat.completions.create(params, { headers: { 'x-standin-pace-ms': '40' } });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      return text;
    };
    const texts = await Promise.all([read(), read(), read()]);
    assert.deepEqual(texts, ['Hello from the stand-in.', 'Hello from the stand-in.', 'Hello from the stand-in.']);
    assert.equal(calls(), 1);
  });
});

/** The logs API's record `id` of the cached gateway, once the writer has it. */
async function record(id) {
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`${gw.url}/client/v4/accounts/local/ai-gateway/gateways/cached/logs/${id}`);
    if (r.status === 200) return (await r.json()).result;
    await new Promise((res) => setTimeout(res, 25));
  }
  return undefined;
}

describe('logs, purge and restart', () => {
  test('a hit is logged as cached with cost 0 and the tokens of the answer it replays', async () => {
    s.reset();
    const a = await raw('cached', ask('logged hit'));
    const miss = await record(a.headers.get('cf-aig-log-id'));
    assert.ok(miss, 'the miss has a record');
    assert.equal(miss.cached, false);
    assert.ok(miss.tokens_in > 0 && miss.tokens_out > 0);
    // the first hit reads the tokens out of the stored answer, the next ones reuse what it read
    const ids = [];
    for (let k = 0; k < 3; k++) {
      const b = await raw('cached', ask('logged hit'));
      assert.equal(b.headers.get('cf-aig-cache-status'), 'HIT');
      ids.push(b.headers.get('cf-aig-log-id'));
    }
    assert.equal(calls(), 1);
    assert.equal(new Set([a.headers.get('cf-aig-log-id'), ...ids]).size, 4);
    for (const id of ids) {
      const rec = await record(id);
      assert.ok(rec, 'the hit has a record');
      assert.equal(rec.cached, true);
      assert.equal(rec.cost, 0);
      assert.equal(rec.status_code, 200);
      assert.equal(rec.tokens_in, miss.tokens_in, 'tokens of the replayed answer');
      assert.equal(rec.tokens_out, miss.tokens_out);
      assert.equal(rec.model, miss.model);
    }
  });

  test('a hit of a stream whose usage the gateway asked for has its tokens, after a restart too', async () => {
    s.reset();
    const body = { ...ask('stream usage hit'), stream: true }; // no stream_options: the gateway asks, and strips
    const a = await raw('cached', body);
    assert.equal(a.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(JSON.parse(s.requests.at(-1).body).stream_options?.include_usage, true, 'the gateway asked for usage');
    assert.ok(!/"prompt_tokens"/.test(a.text), 'the client sees no usage chunk');
    const miss = await record(a.headers.get('cf-aig-log-id'));
    assert.ok(miss.tokens_in > 0 && miss.tokens_out > 0, 'the miss counted the stripped usage');
    const check = async (what) => {
      const b = await raw('cached', body);
      assert.equal(b.headers.get('cf-aig-cache-status'), 'HIT', what);
      assert.equal(b.text, a.text, what);
      const hit = await record(b.headers.get('cf-aig-log-id'));
      assert.equal(hit.cached, true, what);
      assert.equal(hit.tokens_in, miss.tokens_in, what);
      assert.equal(hit.tokens_out, miss.tokens_out, what);
      assert.equal(hit.model, miss.model, what);
    };
    await check('a hit from memory');
    await gw.stop();
    gw = await startGateway({ config: config() });
    await check('a hit from disk, after a restart');
    assert.equal(calls(), 1);
  });

  test('entries survive a restart; a purge empties the gateway', async () => {
    s.reset();
    await raw('cached', ask('survive a restart'));
    assert.equal(calls(), 1);
    await gw.stop();
    gw = await startGateway({ config: config() });
    const again = await raw('cached', ask('survive a restart'));
    assert.equal(again.headers.get('cf-aig-cache-status'), 'HIT');
    assert.equal(calls(), 1, 'served from disk after the restart');

    const purge = await fetch(`${gw.url}/client/v4/accounts/local/ai-gateway/gateways/cached/cache`, { method: 'DELETE' });
    assert.equal(purge.status, 200);
    const body = await purge.json();
    assert.equal(body.success, true);
    assert.ok(body.result.deleted >= 1);
    const after = await raw('cached', ask('survive a restart'));
    assert.equal(after.headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 2);
  });

  test('a purge by custom key removes only that key', async () => {
    s.reset();
    await raw('cached', ask('keyed a'), { 'cf-aig-cache-key': 'purge-me' });
    await raw('cached', ask('keyed b'), { 'cf-aig-cache-key': 'keep-me' });
    const purge = await fetch(`${gw.url}/client/v4/accounts/local/ai-gateway/gateways/cached/cache?key=purge-me`, { method: 'DELETE' });
    assert.equal((await purge.json()).result.deleted, 1);
    assert.equal((await raw('cached', ask('keyed a'), { 'cf-aig-cache-key': 'purge-me' })).headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal((await raw('cached', ask('keyed b'), { 'cf-aig-cache-key': 'keep-me' })).headers.get('cf-aig-cache-status'), 'HIT');
    const wrongMethod = await fetch(`${gw.url}/client/v4/accounts/local/ai-gateway/gateways/cached/cache`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'DELETE');
  });

  test('cache_invalidate_on_update: a reload that changes the gateway purges its entries', async () => {
    s.reset();
    const cfg = config();
    cfg.gateways[1].cache_invalidate_on_update = true;
    await gw.reload(cfg); // the flag itself is a change: entries so far are purged
    await raw('cached', ask('invalidate me'));
    assert.equal((await raw('cached', ask('invalidate me'))).headers.get('cf-aig-cache-status'), 'HIT');
    await gw.reload(cfg); // no change: kept
    assert.equal((await raw('cached', ask('invalidate me'))).headers.get('cf-aig-cache-status'), 'HIT');
    cfg.gateways[1].cache_ttl = 900;
    await gw.reload(cfg);
    assert.equal((await raw('cached', ask('invalidate me'))).headers.get('cf-aig-cache-status'), 'MISS');
    assert.equal(calls(), 2);
  });
});
