// Provider stand-in: a fake LLM provider HTTP server for Tollgate's end-to-end
// tests and benchmarks. It speaks just enough of the OpenAI, Anthropic and
// Google AI Studio wire formats for the official SDKs (and the gateway) to
// accept its answers, records every request it receives, and misbehaves on
// demand through request headers. Only `node:` built-ins are used, so it runs
// without `npm install`.
//
// In-process use:
//   import { startStandin } from './fakes/standin.mjs';
//   const s = await startStandin();            // { port = 0, host = '127.0.0.1', maxRecords }
//   s.url                                      // "http://127.0.0.1:PORT"
//   s.requests                                 // array of records (same array object for life)
//   await s.waitFor((r) => r.aborted, 2000)    // first record for which pred(record) is true,
//                                              // re-checked whenever a record is pushed or
//                                              // updated; rejects after timeoutMs (default 5000)
//   s.reset(); await s.close();                // reset() empties s.requests in place
//   s.server                                   // the node:http Server, if a test needs it
//
// Out-of-process use:
//   node tests/fakes/standin.mjs [--port N] [--max-records N]
//   prints exactly one line "standin listening on 127.0.0.1:PORT" and exits on SIGTERM/SIGINT.
//   GET  /__standin/requests[?since=ID]  -> JSON array of records (ids > ID)
//   POST /__standin/reset                -> clears the records
//   (these two paths are never recorded)
//
// Routes (matched by path suffix, so any base-path prefix works:
// /v1/chat/completions, /openai/v1/chat/completions, /chat/completions ...):
//   POST …/chat/completions                   OpenAI chat (plain or "stream": true)
//   POST …/embeddings                         OpenAI embeddings (float or base64)
//   GET  …/models                             OpenAI model list
//   POST …/messages                           Anthropic Messages (plain or "stream": true)
//   POST …/messages/count_tokens              Anthropic token count
//   POST …/models/{model}:generateContent     Google AI Studio
//   POST …/models/{model}:streamGenerateContent[?alt=sse]
//                                             Google stream: SSE with alt=sse, else a
//                                             JSON array streamed piece by piece
//   POST …/models/{model}:batchEmbedContents  Google embeddings ({embeddings:[{values}]}, one per
//                                             request, outputDimensionality honoured; the
//                                             values are OpenAI embeddings' for the same texts)
//   POST …/models/{model}:embedContent        Google embedding ({embedding:{values}})
//   POST …/run/@cf/{model}                    Workers AI native ({result:{response,usage},success}; the
//                                             prompt is body.prompt or body.messages, plain only)
//   anything else                             404, OpenAI error shape
//
// Control headers (set per request, e.g. through an SDK's `headers` option):
//   x-standin-status: CODE        400-599: answer CODE with an error body in the route's
//                                 provider shape (streamed requests get the JSON error too);
//                                 other values are ignored
//   x-standin-delay-ms: N         wait N ms before doing anything else (before headers)
//   x-standin-stall: before-headers
//                                 never answer; the socket stays open until the client leaves
//   x-standin-stall: after-headers
//                                 send status + headers (and, for streams, the first event)
//                                 then nothing more; a plain answer advertises its full
//                                 content-length and sends no body
//   x-standin-pace-ms: N          streams only: wait N ms before every content piece after
//                                 the first and before the closing events, so a stream of P
//                                 pieces lasts about N*P ms
//   x-standin-chunks: N           answer N text pieces (1..100000) instead of the default 5,
//                                 cycling through the default pieces; plain answers too
//   x-standin-reset: before-headers
//                                 destroy the socket (TCP RST) without answering
//   x-standin-reset: mid-stream   send headers and 2 pieces, wait 50 ms (so the client has
//                                 read them), then destroy the socket (RST); for a plain
//                                 JSON answer: headers and half the body, then the same
//   x-standin-garbage: 1          write "garbage\r\n\r\n" (no status line) to the raw socket
//                                 and close it
//   x-standin-cached-tokens: N    report N prompt tokens as read from the provider's prompt
//                                 cache: OpenAI prompt_tokens_details.cached_tokens and Google
//                                 cachedContentTokenCount (both part of the prompt count, so
//                                 capped at it), Anthropic cache_read_input_tokens (beside
//                                 input_tokens, as Anthropic counts them)
//   x-standin-gzip: 1             plain JSON answers are gzip-compressed (content-encoding: gzip)
//                                 when the request's accept-encoding allows gzip
//   x-standin-body-bytes: N       plain (non-streamed) answers: pad the text with "x" so the
//                                 JSON body is at least N bytes (exactly N when padding is
//                                 needed); usage is not changed by the padding
//   x-standin-piece-bytes: N      pad every text piece with "x" to N bytes (at most 4 MiB): in
//                                 a stream one event is then larger than a proxy's buffers
//                                 (plain answers join the pieces); usage is not changed
//   x-standin-tool-calls: N       OpenAI chat, Anthropic messages and Google generateContent, when the request has at
//                                 least one tool: answer N tool calls (1..8; more counts as 8,
//                                 other values are ignored) to the first tool, by its name,
//                                 instead of text; call i (0-based) has the input
//                                 toolInputFor(i) = {"city":"Paris","n":i}. Anthropic: content
//                                 = tool_use blocks with ids toolu_standin_{record}_{i},
//                                 stop_reason "tool_use"; streamed per call as content_block_start
//                                 (tool_use, input {}), the input's JSON text in
//                                 toolArgsPieces(i) (3 input_json_delta pieces),
//                                 content_block_stop; then message_delta with stop_reason
//                                 "tool_use". OpenAI: message.tool_calls (ids
//                                 call_standin_{record}_{i}, arguments = that JSON text),
//                                 content null, finish_reason "tool_calls"; streamed per index
//                                 as a first delta with index, id, type, function.name and
//                                 arguments "" (call 0's in the role chunk, as OpenAI does),
//                                 then one delta per piece of toolArgsPieces(i). Usage follows
//                                 the token rule below (completion tokens = the number of
//                                 pieces, though no text is sent, so x-standin-chunks changes
//                                 only that count); x-standin-body-bytes does not apply; pace
//                                 and reset mid-stream count the argument pieces as pieces.
//                                 Google (tools[0].functionDeclarations[0].name): the answer's
//                                 parts are N functionCall parts {name, args: toolInputFor(i)},
//                                 the first with thoughtSignature GOOGLE_THOUGHT_SIGNATURE, finishReason
//                                 "STOP"; streamed one call per chunk (the last with the finish
//                                 reason), usage as for text.
//                                 Without a tool in the request: the usual text answer
// Order: delay first, then garbage, reset before-headers, stall before-headers, status,
// then the normal answer (which honours stall after-headers and reset mid-stream).
//
// Deterministic content and token rule (tests can compute it):
//   pieces   = DEFAULT_PIECES cycled to the requested count, default
//              ["Hello", " from", " the", " stand-in", "."] -> "Hello from the stand-in."
//   prompt tokens     = 7 + number of whitespace-separated words in the request's prompt
//                       text (see promptText(): OpenAI messages[].content, Anthropic system +
//                       messages[].content, Google systemInstruction + contents[].parts[].text,
//                       embeddings input; only text parts count)
//   completion tokens = number of pieces
//   total             = prompt + completion
//   Google stream chunks carry cumulative usage (candidatesTokenCount = pieces so far).
//
// Credentials are only recorded, never checked. Note: @anthropic-ai/sdk 1.x sends its
// apiKey as `authorization: Bearer …`, not `x-api-key`.
//
// Every recorded response carries `x-standin-request-id: N` (the record id). Ids keep
// increasing across reset().
//
// Record fields: { id, method, url, path, query, headers (lowercased object), rawHeaders,
//   body (string), receivedAt (ms), route, stream, status (null until headers are sent),
//   aborted (client went away before the response ended), abortedAt, finishedAt,
//   outcome ('pending' | 'completed' | 'client-aborted' | 'standin-reset' | 'standin-garbage') }
// A record is pushed as soon as headers + body are in; the later fields are updated in place.

import http from 'node:http';
import http2 from 'node:http2';
import { realpathSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { EventEmitter } from 'node:events';
import { pathToFileURL } from 'node:url';

export const GOOGLE_THOUGHT_SIGNATURE = 'c3RhbmRpbi9zaWduYXR1cmU+Pz8=';
export const DEFAULT_PIECES = Object.freeze(['Hello', ' from', ' the', ' stand-in', '.']);
export const MAX_CHUNKS = 100000;
export const MAX_TOOL_CALLS = 8;
const BASE_PROMPT_TOKENS = 7;
const EMBEDDING_DIMS = 8;
const RESET_GRACE_MS = 50; // pause between the last bytes sent and a mid-stream reset

/** The text pieces for a given count (cycles DEFAULT_PIECES). */
function padPieces(pieces, bytes) {
  return bytes > 0 ? pieces.map((p) => p + 'x'.repeat(Math.max(0, bytes - p.length))) : pieces;
}

export function piecesFor(count = DEFAULT_PIECES.length) {
  const out = new Array(count);
  for (let i = 0; i < count; i++) out[i] = DEFAULT_PIECES[i % DEFAULT_PIECES.length];
  return out;
}

/** The prompt text the token rule counts, for a parsed request body of a given route. */
export function promptText(route, body) {
  if (!body || typeof body !== 'object') return '';
  const texts = [];
  const addContent = (c) => {
    if (typeof c === 'string') texts.push(c);
    else if (Array.isArray(c)) {
      for (const part of c) {
        if (typeof part === 'string') texts.push(part);
        else if (part && typeof part.text === 'string') texts.push(part.text);
      }
    }
  };
  if (route === 'openai.chat' || route === 'workers.run') {
    if (typeof body.prompt === 'string') addContent(body.prompt);
    for (const m of asArray(body.messages)) addContent(m?.content);
  } else if (route === 'anthropic.messages' || route === 'anthropic.count_tokens') {
    addContent(body.system);
    for (const m of asArray(body.messages)) addContent(m?.content);
  } else if (route.startsWith('google.')) {
    addContent(body.systemInstruction?.parts);
    for (const c of asArray(body.contents)) addContent(c?.parts);
  } else if (route === 'openai.embeddings') {
    addContent(typeof body.input === 'string' ? body.input : asArray(body.input).filter((x) => typeof x === 'string'));
  }
  return texts.join(' ');
}

/** Prompt tokens by the documented rule: 7 + words of promptText(). */
export function promptTokensFor(route, body) {
  const words = promptText(route, body).split(/\s+/).filter(Boolean).length;
  return BASE_PROMPT_TOKENS + words;
}

function asArray(x) {
  return Array.isArray(x) ? x : [];
}

// ---------------------------------------------------------------------------
// Routing

function matchRoute(method, path) {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  let m;
  if (method === 'POST' && p.endsWith('/chat/completions')) return { route: 'openai.chat' };
  if (method === 'POST' && p.endsWith('/embeddings')) return { route: 'openai.embeddings' };
  if (method === 'POST' && p.endsWith('/messages/count_tokens')) return { route: 'anthropic.count_tokens' };
  if (method === 'POST' && p.endsWith('/messages')) return { route: 'anthropic.messages' };
  if (method === 'POST' && (m = /\/models\/([^/]+):(generateContent|streamGenerateContent|batchEmbedContents|embedContent)$/.exec(p))) {
    let model = m[1];
    try { model = decodeURIComponent(model); } catch { /* keep raw */ }
    const routes = { generateContent: 'google.generate', streamGenerateContent: 'google.stream',
      batchEmbedContents: 'google.batchEmbed', embedContent: 'google.embed' };
    return { route: routes[m[2]], model };
  }
  if (method === 'POST' && (m = /\/run\/(@(?:cf|hf)\/.+)$/.exec(p))) return { route: 'workers.run', model: m[1] };
  if (method === 'GET' && p.endsWith('/models')) return { route: 'openai.models' };
  return { route: 'none' };
}

function shapeOf(route) {
  if (route.startsWith('anthropic.')) return 'anthropic';
  if (route.startsWith('google.')) return 'google';
  return 'openai';
}

// ---------------------------------------------------------------------------
// Provider-shaped errors

const OPENAI_ERR = {
  400: ['invalid_request_error', null], 401: ['invalid_request_error', 'invalid_api_key'],
  403: ['permission_error', null], 404: ['invalid_request_error', 'not_found'],
  409: ['invalid_request_error', 'conflict'], 413: ['invalid_request_error', 'request_too_large'],
  422: ['invalid_request_error', null], 429: ['requests', 'rate_limit_exceeded'],
  500: ['server_error', null], 502: ['server_error', null], 503: ['server_error', null],
  504: ['server_error', null],
};
const ANTHROPIC_ERR = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error',
  403: 'permission_error', 404: 'not_found_error', 413: 'request_too_large',
  429: 'rate_limit_error', 500: 'api_error', 504: 'timeout_error', 529: 'overloaded_error',
};
const GOOGLE_STATUS = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  409: 'ABORTED', 429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 500: 'INTERNAL',
  501: 'UNIMPLEMENTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};

function errorBody(shape, status, message, id) {
  if (shape === 'anthropic') {
    const type = ANTHROPIC_ERR[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
    return { type: 'error', error: { type, message }, request_id: `req_standin_${id}` };
  }
  if (shape === 'google') {
    const st = GOOGLE_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION');
    return { error: { code: status, message, status: st } };
  }
  const [type, code] = OPENAI_ERR[status] ?? [status >= 500 ? 'server_error' : 'invalid_request_error', null];
  return { error: { message, type, param: null, code } };
}

// ---------------------------------------------------------------------------
// Per-request context: timers and waits that end when the response closes.

class Ctx {
  constructor(req, res, record, controls) {
    this.req = req;
    this.res = res;
    this.record = record;
    this.c = controls;
    this.gone = false; // response closed (finished, aborted or destroyed)
    this.killed = null; // set when the stand-in itself destroys the socket
    this.waits = new Set();
  }

  /** Resolves after ms, or early (with gone = true) when the response closes. */
  sleep(ms) {
    if (this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { resolve, timer: setTimeout(() => { this.waits.delete(w); resolve(); }, ms) };
      this.waits.add(w);
    });
  }

  /** Resolves on 'drain' or when the response closes. */
  drain() {
    if (this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { resolve, timer: null };
      const done = () => { this.waits.delete(w); this.res.off('drain', done); resolve(); };
      w.resolve = done;
      this.waits.add(w);
      this.res.once('drain', done);
    });
  }

  onClose() {
    this.gone = true;
    for (const w of this.waits) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve();
    }
    this.waits.clear();
  }

  /** Destroy the socket: TCP RST when possible. */
  resetSocket() {
    this.killed = 'standin-reset';
    const s = this.req.socket;
    if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
    else s.destroy();
  }

  /**
   * Reset after what was written so far had time to reach the client: an RST that
   * overtakes unread data makes the peer drop it, and the test would see no pieces.
   */
  async resetAfterGrace() {
    await this.sleep(RESET_GRACE_MS);
    if (!this.gone) this.resetSocket();
  }

  head(status, headers) {
    this.record.status = status;
    this.res.writeHead(status, { 'x-standin-request-id': String(this.record.id), ...headers });
  }

  /** A complete JSON answer with content-length; honours stall after-headers / reset mid-stream. */
  json(status, obj) {
    let buf = Buffer.from(JSON.stringify(obj));
    const headers = { 'content-type': 'application/json' };
    if (this.c.gzip && /\bgzip\b/.test(this.req.headers['accept-encoding'] ?? '')) {
      buf = gzipSync(buf);
      headers['content-encoding'] = 'gzip';
    }
    headers['content-length'] = String(buf.length);
    this.head(status, headers);
    if (this.c.stall === 'after-headers') { this.res.flushHeaders(); return; }
    if (this.c.reset === 'mid-stream') {
      this.res.write(buf.subarray(0, buf.length >> 1));
      this.resetAfterGrace();
      return;
    }
    this.res.end(buf);
  }

  error(status, message) {
    this.json(status, errorBody(shapeOf(this.record.route), status, message, this.record.id));
  }

  /**
   * Stream frames from a generator of { data, piece?, closing? }. Pace goes before each
   * piece after the first and before the first closing frame; mid-stream reset fires
   * after 2 pieces; stall after-headers stops after the first frame.
   */
  async stream(contentType, frames) {
    const { res, c } = this;
    this.head(200, { 'content-type': contentType, 'cache-control': 'no-cache' });
    res.flushHeaders();
    let pieces = 0;
    let frameNo = 0;
    let paceClosing = true;
    for (const f of frames) {
      if (this.gone) return;
      if (f.piece) {
        if (c.reset === 'mid-stream' && pieces === 2) return this.resetAfterGrace();
        if (pieces > 0 && c.paceMs > 0) { await this.sleep(c.paceMs); if (this.gone) return; }
        pieces++;
      } else if (f.closing && paceClosing) {
        paceClosing = false;
        if (c.reset === 'mid-stream') return this.resetAfterGrace(); // fewer than 2 pieces
        if (c.paceMs > 0 && pieces > 0) { await this.sleep(c.paceMs); if (this.gone) return; }
      }
      const ok = res.write(f.data);
      frameNo++;
      if (c.stall === 'after-headers' && frameNo === 1) return;
      if (!ok) { this.record.drainWaits++; await this.drain(); }
      else if (c.paceMs === 0 && frameNo % 256 === 0) await new Promise(setImmediate); // be fair
    }
    if (this.gone) return;
    if (c.reset === 'mid-stream') await this.resetAfterGrace(); // stream had fewer than 2 pieces
    else res.end();
  }
}

const sse = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const sseEvent = (name, obj) => `event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`;

function readControls(h) {
  const int = (v, dflt) => {
    const n = Number.parseInt(v ?? '', 10);
    return Number.isFinite(n) && n >= 0 ? n : dflt;
  };
  const status = int(h['x-standin-status'], 0);
  return {
    status: status >= 400 && status <= 599 ? status : 0,
    delayMs: int(h['x-standin-delay-ms'], 0),
    stall: (h['x-standin-stall'] ?? '').trim().toLowerCase(),
    paceMs: int(h['x-standin-pace-ms'], 0),
    chunks: Math.min(Math.max(int(h['x-standin-chunks'], DEFAULT_PIECES.length), 1), MAX_CHUNKS),
    reset: (h['x-standin-reset'] ?? '').trim().toLowerCase(),
    garbage: ['1', 'true', 'yes'].includes((h['x-standin-garbage'] ?? '').trim().toLowerCase()),
    bodyBytes: int(h['x-standin-body-bytes'], 0),
    pieceBytes: Math.min(int(h['x-standin-piece-bytes'], 0), 4 << 20),
    cachedTokens: int(h['x-standin-cached-tokens'], 0),
    gzip: ['1', 'true', 'yes'].includes((h['x-standin-gzip'] ?? '').trim().toLowerCase()),
    toolCalls: Math.min(int(h['x-standin-tool-calls'], 0), MAX_TOOL_CALLS),
  };
}

// ---------------------------------------------------------------------------
// Tool calls (x-standin-tool-calls)

/** The input of tool call i (0-based) in a tool-call answer. */
export function toolInputFor(i) {
  return { city: 'Paris', n: i };
}

/** The streamed pieces of tool call i's arguments: its JSON text cut in 3 (mid-token, as providers do). */
export function toolArgsPieces(i) {
  const json = JSON.stringify(toolInputFor(i));
  const a = Math.floor(json.length / 3);
  const b = Math.floor((2 * json.length) / 3);
  return [json.slice(0, a), json.slice(a, b), json.slice(b)];
}

/** The name of the first tool of a request, or null: OpenAI tools[0].function.name, Anthropic tools[0].name. */
function firstToolName(shape, body) {
  const t = asArray(body.tools)[0];
  const name = shape === 'anthropic' ? t?.name : shape === 'google' ? t?.functionDeclarations?.[0]?.name : t?.function?.name;
  return typeof name === 'string' ? name : null;
}

// ---------------------------------------------------------------------------
// Handlers

/** Plain JSON answer built from text, padded to c.bodyBytes when asked. */
function padded(ctx, build, text) {
  let obj = build(text);
  const want = ctx.c.bodyBytes;
  if (want > 0) {
    const len = Buffer.byteLength(JSON.stringify(obj));
    if (len < want) obj = build(text + 'x'.repeat(want - len));
  }
  return obj;
}

function openaiChat(ctx, body) {
  const id = `chatcmpl-standin-${ctx.record.id}`;
  const model = typeof body.model === 'string' ? body.model : 'standin-model';
  const created = Math.floor(Date.now() / 1000);
  const pieces = padPieces(piecesFor(ctx.c.chunks), ctx.c.pieceBytes);
  const prompt = promptTokensFor('openai.chat', body);
  const usage = {
    prompt_tokens: prompt,
    completion_tokens: pieces.length,
    total_tokens: prompt + pieces.length,
    prompt_tokens_details: { cached_tokens: Math.min(ctx.c.cachedTokens, prompt) },
  };
  const tool = ctx.c.toolCalls > 0 ? firstToolName('openai', body) : null;
  if (tool !== null) return openaiToolCalls(ctx, body, { id, model, created, usage, tool });
  if (!body.stream) {
    const build = (text) => ({
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage, system_fingerprint: null,
    });
    return ctx.json(200, padded(ctx, build, pieces.join('')));
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = chunker({ id, created, model, includeUsage });
  function* frames() {
    yield { data: sse(chunk({ role: 'assistant', content: '', refusal: null }, null)) };
    for (const p of pieces) yield { piece: true, data: sse(chunk({ content: p }, null)) };
    yield { closing: true, data: sse(chunk({}, 'stop')) };
    if (includeUsage) {
      yield { data: sse({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: null, choices: [], usage }) };
    }
    yield { data: 'data: [DONE]\n\n' };
  }
  return ctx.stream('text/event-stream; charset=utf-8', frames());
}

/** A chat.completion.chunk builder: (delta, finish_reason) -> chunk; with include_usage every chunk has usage: null. */
function chunker({ id, created, model, includeUsage }) {
  return (delta, finish) => {
    const o = { id, object: 'chat.completion.chunk', created, model, system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
    if (includeUsage) o.usage = null;
    return o;
  };
}

/** An OpenAI chat answer of ctx.c.toolCalls calls to `tool`, plain or streamed. */
function openaiToolCalls(ctx, body, { id, model, created, usage, tool }) {
  const n = ctx.c.toolCalls;
  const callId = (i) => `call_standin_${ctx.record.id}_${i}`;
  if (!body.stream) {
    const calls = [];
    for (let i = 0; i < n; i++) {
      calls.push({ id: callId(i), type: 'function', function: { name: tool, arguments: JSON.stringify(toolInputFor(i)) } });
    }
    return ctx.json(200, {
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: null, tool_calls: calls },
        logprobs: null, finish_reason: 'tool_calls' }],
      usage, system_fingerprint: null,
    });
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = chunker({ id, created, model, includeUsage });
  const start = (i) => ({ index: i, id: callId(i), type: 'function', function: { name: tool, arguments: '' } });
  function* frames() {
    yield { data: sse(chunk({ role: 'assistant', content: null, tool_calls: [start(0)], refusal: null }, null)) };
    for (let i = 0; i < n; i++) {
      if (i > 0) yield { data: sse(chunk({ tool_calls: [start(i)] }, null)) };
      for (const p of toolArgsPieces(i)) {
        yield { piece: true, data: sse(chunk({ tool_calls: [{ index: i, function: { arguments: p } }] }, null)) };
      }
    }
    yield { closing: true, data: sse(chunk({}, 'tool_calls')) };
    if (includeUsage) {
      yield { data: sse({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: null, choices: [], usage }) };
    }
    yield { data: 'data: [DONE]\n\n' };
  }
  return ctx.stream('text/event-stream; charset=utf-8', frames());
}

/** The stand-in's embedding of input `index` (a string, or an array of tokens): a deterministic small vector
 * derived from the index and the input's length, as float32 values. */
export function embeddingFor(input, index, dims = EMBEDDING_DIMS) {
  const seed = (typeof input === 'string' ? input.length : asArray(input).length) + index + 1;
  const v = new Float32Array(dims);
  for (let i = 0; i < dims; i++) v[i] = Math.round(Math.sin(seed * (i + 1)) * 1000) / 1000;
  return v;
}

const dimsOf = (d) => (Number.isInteger(d) && d > 0 && d <= 4096 ? d : EMBEDDING_DIMS);

function openaiEmbeddings(ctx, body) {
  const inputs = typeof body.input === 'string' ? [body.input] : asArray(body.input);
  if (inputs.length === 0) return ctx.error(400, "'input' must be a non-empty string or array");
  const dims = dimsOf(body.dimensions);
  const base64 = body.encoding_format === 'base64';
  const data = inputs.map((input, index) => {
    const v = embeddingFor(input, index, dims);
    const embedding = base64 ? Buffer.from(v.buffer).toString('base64') : Array.from(v);
    return { object: 'embedding', index, embedding };
  });
  const prompt = promptTokensFor('openai.embeddings', body);
  ctx.json(200, {
    object: 'list', data,
    model: typeof body.model === 'string' ? body.model : 'standin-embedding',
    usage: { prompt_tokens: prompt, total_tokens: prompt },
  });
}

function workersRun(ctx, body) {
  const pieces = piecesFor(ctx.c.chunks);
  const prompt = promptTokensFor('workers.run', body);
  ctx.json(200, {
    result: { response: pieces.join(''), usage: { prompt_tokens: prompt, completion_tokens: pieces.length, total_tokens: prompt + pieces.length } },
    success: true, errors: [], messages: [],
  });
}

function openaiModels(ctx) {
  const created = 1700000000;
  const ids = ['standin-model', 'gpt-4o-mini', 'standin-embedding'];
  ctx.json(200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'standin' })) });
}

function anthropicMessages(ctx, body) {
  const id = `msg_standin_${ctx.record.id}`;
  const model = typeof body.model === 'string' ? body.model : 'standin-model';
  const pieces = padPieces(piecesFor(ctx.c.chunks), ctx.c.pieceBytes);
  const input = promptTokensFor('anthropic.messages', body);
  const tool = ctx.c.toolCalls > 0 ? firstToolName('anthropic', body) : null;
  if (tool !== null) return anthropicToolCalls(ctx, body, { id, model, pieces, input, tool });
  if (!body.stream) {
    const build = (text) => ({
      id, type: 'message', role: 'assistant', model,
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn', stop_sequence: null,
      usage: { input_tokens: input, output_tokens: pieces.length, cache_read_input_tokens: ctx.c.cachedTokens, cache_creation_input_tokens: 0 },
    });
    return ctx.json(200, padded(ctx, build, pieces.join('')));
  }
  function* frames() {
    yield { data: sseEvent('message_start', { type: 'message_start', message: {
      id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
      usage: { input_tokens: input, output_tokens: 1, cache_read_input_tokens: ctx.c.cachedTokens, cache_creation_input_tokens: 0 },
    } }) };
    yield { data: sseEvent('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }) };
    for (const p of pieces) {
      yield { piece: true, data: sseEvent('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } }) };
    }
    yield { closing: true, data: sseEvent('content_block_stop', { type: 'content_block_stop', index: 0 }) };
    yield { data: sseEvent('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: pieces.length } }) };
    yield { data: sseEvent('message_stop', { type: 'message_stop' }) };
  }
  return ctx.stream('text/event-stream; charset=utf-8', frames());
}

/** An Anthropic message of ctx.c.toolCalls tool_use blocks calling `tool`, plain or streamed. */
function anthropicToolCalls(ctx, body, { id, model, pieces, input, tool }) {
  const n = ctx.c.toolCalls;
  const useId = (i) => `toolu_standin_${ctx.record.id}_${i}`;
  const usage = (output) => ({ input_tokens: input, output_tokens: output, cache_read_input_tokens: ctx.c.cachedTokens,
    cache_creation_input_tokens: 0 });
  if (!body.stream) {
    const content = [];
    for (let i = 0; i < n; i++) content.push({ type: 'tool_use', id: useId(i), name: tool, input: toolInputFor(i) });
    return ctx.json(200, {
      id, type: 'message', role: 'assistant', model, content,
      stop_reason: 'tool_use', stop_sequence: null, usage: usage(pieces.length),
    });
  }
  function* frames() {
    yield { data: sseEvent('message_start', { type: 'message_start', message: {
      id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: usage(1),
    } }) };
    for (let i = 0; i < n; i++) {
      yield { data: sseEvent('content_block_start', { type: 'content_block_start', index: i,
        content_block: { type: 'tool_use', id: useId(i), name: tool, input: {} } }) };
      for (const p of toolArgsPieces(i)) {
        yield { piece: true, data: sseEvent('content_block_delta', { type: 'content_block_delta', index: i,
          delta: { type: 'input_json_delta', partial_json: p } }) };
      }
      yield { data: sseEvent('content_block_stop', { type: 'content_block_stop', index: i }) };
    }
    yield { closing: true, data: sseEvent('message_delta', { type: 'message_delta',
      delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: pieces.length } }) };
    yield { data: sseEvent('message_stop', { type: 'message_stop' }) };
  }
  return ctx.stream('text/event-stream; charset=utf-8', frames());
}

function anthropicCountTokens(ctx, body) {
  ctx.json(200, { input_tokens: promptTokensFor('anthropic.count_tokens', body) });
}

function googleEmbed(ctx, body, model, batch) {
  const reqs = batch ? asArray(body.requests) : [body];
  if (reqs.length === 0) return ctx.error(400, '* BatchEmbedContentsRequest.requests: contents is not specified');
  const embs = [];
  for (const [index, r] of reqs.entries()) {
    const text = asArray(r?.content?.parts).map((p) => p?.text ?? '').join('');
    if (batch && r?.model !== `models/${model}`) {
      return ctx.error(400, `requests[${index}].model "${r?.model}" is not the model of the URL, models/${model}`);
    }
    embs.push({ values: Array.from(embeddingFor(text, index, dimsOf(r?.outputDimensionality))) });
  }
  return ctx.json(200, batch ? { embeddings: embs } : { embedding: embs[0] });
}

function google(ctx, body, model, streamed) {
  const pieces = padPieces(piecesFor(ctx.c.chunks), ctx.c.pieceBytes);
  const prompt = promptTokensFor('google.generate', body);
  const tool = ctx.c.toolCalls > 0 ? firstToolName('google', body) : null;
  const call = (i) => ({ functionCall: { name: tool, args: toolInputFor(i) },
    ...(i === 0 ? { thoughtSignature: GOOGLE_THOUGHT_SIGNATURE } : {}) });
  if (tool !== null) {
    const n = ctx.c.toolCalls;
    const usage = { promptTokenCount: prompt, candidatesTokenCount: pieces.length, totalTokenCount: prompt + pieces.length };
    const one = (parts, done) => ({ candidates: [{ content: { role: 'model', parts }, index: 0, ...(done ? { finishReason: 'STOP' } : {}) }],
      usageMetadata: usage, modelVersion: model, responseId: `standin-${ctx.record.id}` });
    if (!streamed) return ctx.json(200, one(Array.from({ length: n }, (_, i) => call(i)), true));
    const frames = function* () {
      for (let i = 0; i < n; i++) yield { piece: true, data: sse(one([call(i)], i === n - 1)) };
    };
    return ctx.stream('text/event-stream', frames());
  }
  const obj = (text, done, completion) => {
    const cand = { content: { role: 'model', parts: [{ text }] }, index: 0 };
    if (done) cand.finishReason = 'STOP';
    return {
      candidates: [cand],
      usageMetadata: { promptTokenCount: prompt, candidatesTokenCount: completion, totalTokenCount: prompt + completion,
        ...(ctx.c.cachedTokens > 0 ? { cachedContentTokenCount: Math.min(ctx.c.cachedTokens, prompt) } : {}) },
      modelVersion: model,
    };
  };
  if (!streamed) {
    return ctx.json(200, padded(ctx, (text) => obj(text, true, pieces.length), pieces.join('')));
  }
  const asSse = ctx.record.query.alt === 'sse';
  function* frames() {
    for (let i = 0; i < pieces.length; i++) {
      const o = obj(pieces[i], i === pieces.length - 1, i + 1);
      if (asSse) yield { piece: true, data: sse(o) };
      else yield { piece: true, data: (i === 0 ? '[' : ',\r\n') + JSON.stringify(o) };
    }
    if (!asSse) yield { closing: true, data: ']' };
  }
  return ctx.stream(asSse ? 'text/event-stream' : 'application/json; charset=UTF-8', frames());
}

async function handle(ctx, matched, body) {
  const { c, record } = ctx;
  if (c.delayMs > 0) { await ctx.sleep(c.delayMs); if (ctx.gone) return; }
  if (c.garbage) {
    ctx.killed = 'standin-garbage';
    const s = ctx.req.socket;
    s.end('garbage\r\n\r\n', () => s.destroy());
    return;
  }
  if (c.reset === 'before-headers') return ctx.resetSocket();
  if (c.stall === 'before-headers') return; // the socket stays open until the client leaves
  if (matched.route === 'none') return ctx.error(404, `Unknown request URL: ${ctx.req.method} ${record.path}`);
  if (c.status) return ctx.error(c.status, `x-standin-status asked for ${c.status}`);

  if (!body && matched.route !== 'openai.models') return ctx.error(400, 'request body is not a JSON object');
  switch (matched.route) {
    case 'openai.chat': return openaiChat(ctx, body);
    case 'openai.embeddings': return openaiEmbeddings(ctx, body);
    case 'openai.models': return openaiModels(ctx);
    case 'workers.run': return workersRun(ctx, body);
    case 'anthropic.messages': return anthropicMessages(ctx, body);
    case 'anthropic.count_tokens': return anthropicCountTokens(ctx, body);
    case 'google.generate': return google(ctx, body, matched.model, false);
    case 'google.stream': return google(ctx, body, matched.model, true);
    case 'google.batchEmbed': return googleEmbed(ctx, body, matched.model, true);
    case 'google.embed': return googleEmbed(ctx, body, matched.model, false);
  }
}

// ---------------------------------------------------------------------------
// Server

/**
 * Start the stand-in. Resolves to
 * { port, url, requests, reset(), waitFor(pred, timeoutMs = 5000), close() }.
 * maxRecords (default unlimited) trims the oldest records in batches for long benchmarks.
 * tls ({ key, cert } in PEM) serves HTTPS and offers HTTP/2; each record's httpVersion says which was used.
 */
export async function startStandin({ port = 0, host = '127.0.0.1', maxRecords = Infinity, tls = null } = {}) {
  const requests = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let nextId = 1;
  let resetBelow = 0; // records with id <= this were cleared by reset()
  const trimAt = Number.isFinite(maxRecords) ? maxRecords + Math.max(1, Math.floor(maxRecords / 10)) : Infinity;

  const changed = (record) => { if (record.id > resetBelow) events.emit('change', record); };

  // tls: { key, cert } serves HTTPS with HTTP/2 offered by ALPN (HTTP/1.1 still accepted), as real providers do
  const create = tls
    ? (handler) => http2.createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: true }, handler)
    : (handler) => http.createServer({ noDelay: true }, handler);
  const server = create((req, res) => {
    const url = new URL(req.url, 'http://standin.invalid');
    const path = url.pathname;

    // Out-of-process control endpoints (not recorded).
    if (path === '/__standin/requests' && req.method === 'GET') {
      req.resume();
      const since = Number.parseInt(url.searchParams.get('since') ?? '0', 10) || 0;
      const buf = Buffer.from(JSON.stringify(since ? requests.filter((r) => r.id > since) : requests));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(buf.length) });
      return res.end(buf);
    }
    if (path === '/__standin/reset' && req.method === 'POST') {
      req.resume();
      reset();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' });
      return res.end('{"ok":true}');
    }

    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('error', () => {}); // client went away while sending; nothing recorded
    req.on('end', () => {
      const matched = matchRoute(req.method, path);
      const record = {
        id: nextId++,
        method: req.method,
        httpVersion: req.httpVersion,
        remotePort: req.socket?.remotePort ?? null, // the same port twice: the connection was reused
        url: req.url,
        path,
        query: Object.fromEntries(url.searchParams),
        headers: { ...req.headers },
        rawHeaders: req.rawHeaders.slice(),
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Date.now(),
        route: matched.route,
        stream: false,
        status: null,
        aborted: false,
        drainWaits: 0, // times a streamed write had to wait for the client (the gateway) to drain
        abortedAt: null,
        finishedAt: null,
        outcome: 'pending',
      };
      let body = null; // parsed JSON object, or null when the body is not a JSON object
      try {
        const parsed = record.body ? JSON.parse(record.body) : null;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed;
      } catch { /* answered with a 400 by handle() */ }
      record.stream = matched.route === 'google.stream' || body?.stream === true;
      requests.push(record);
      if (requests.length >= trimAt) requests.splice(0, requests.length - maxRecords);

      const ctx = new Ctx(req, res, record, readControls(req.headers));
      res.on('finish', () => {
        record.finishedAt = Date.now();
        record.outcome = 'completed';
        changed(record);
      });
      res.on('close', () => {
        ctx.onClose();
        if (!res.writableFinished) {
          if (ctx.killed) record.outcome = ctx.killed;
          else {
            record.aborted = true;
            record.abortedAt = Date.now();
            record.outcome = 'client-aborted';
          }
          changed(record);
        }
      });
      changed(record);
      Promise.resolve()
        .then(() => handle(ctx, matched, body))
        .catch((err) => {
          process.stderr.write(`standin: handler error: ${err?.stack ?? err}\n`);
          if (!res.headersSent && !ctx.gone) ctx.error(500, 'stand-in internal error');
          else if (!ctx.gone) res.destroy();
        });
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0; // stalls and long streams are deliberate
  server.timeout = 0;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 4096 }, () => { server.off('error', reject); resolve(); });
  });
  const actualPort = server.address().port;

  function reset() {
    requests.length = 0;
    resetBelow = nextId - 1;
  }

  function waitFor(pred, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const found = requests.find((r) => pred(r));
      if (found) return resolve(found);
      const onChange = (r) => {
        let ok = false;
        try { ok = pred(r); } catch (err) { cleanup(); return reject(err); }
        if (ok) { cleanup(); resolve(r); }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`standin.waitFor: no matching request within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => { clearTimeout(timer); events.off('change', onChange); };
      events.on('change', onChange);
    });
  }

  const sockets = new Set(); // the TLS server has no closeAllConnections()
  if (tls) server.on('secureConnection', (sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });

  let closing = null;
  function close() {
    closing ??= new Promise((resolve) => {
      server.close(() => resolve());
      if (tls) for (const sock of sockets) sock.destroy();
      else server.closeAllConnections();
    });
    return closing;
  }

  return { port: actualPort, url: `${tls ? 'https' : 'http'}://127.0.0.1:${actualPort}`, requests, reset, waitFor, close, server };
}

// ---------------------------------------------------------------------------
// CLI

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    for (let i = 0; i < args.length; i++) {
      if (args[i] === `--${name}`) return args[i + 1];
      if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
    }
    return undefined;
  };
  const port = Number.parseInt(opt('port') ?? '0', 10);
  const maxRecords = Number.parseInt(opt('max-records') ?? '100000', 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || !(maxRecords > 0)) {
    process.stderr.write('usage: node standin.mjs [--port N] [--max-records N]\n');
    process.exit(2);
  }
  const s = await startStandin({ port, maxRecords });
  process.stdout.write(`standin listening on 127.0.0.1:${s.port}\n`);
  const stop = () => { s.close().then(() => process.exit(0)); };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
