/*
 * Passthrough proxy: one client request, one upstream request, bytes relayed as they arrive.
 *
 * The proxy state lives in the request pool. Which side ends it decides the path out:
 *  - upstream done (complete or failed) -> the response is ended, or answered with the gateway's 502/504 if no
 *    head went out yet, or cut (the client sees a truncated body) if it failed mid-stream;
 *  - client gone (on_abort) -> the upstream request is cancelled, which closes its connection, so the provider
 *    stops generating (and billing) at once.
 * Back-pressure: on_body refuses bytes while the client has max_response_buffer bytes unread, which pauses the
 * curl transfer; on_drain resumes it.
 *
 * Bytes the gateway makes rather than relays — the usage filter's output, a translated stream (the unified API,
 * xlate.h) — are held in `scratch` and go out in pieces as the client reads; the upstream stays paused until they
 * are all out, so a slow client never makes the gateway hold more than one read's worth. A translated answer that
 * is not a 2xx event stream is collected whole (bounded), translated once complete, and sent the same way.
 */
#include <stdio.h>
#include "tollgate/cacheserve.h"
#include "tollgate/error.h"
#include "tollgate/log.h"
#include "tollgate/proxy.h"
#include "tollgate/recorder.h"
#include "tollgate/streamusage.h"

typedef struct {
    tg_req_t *req;
    tg_worker_t *w;
    tg_upstream_req_t *up;
    const char *provider;
    bool head_sent;
    /* usage asked for on the client's behalf (streamusage.h): the filter, active once a 2xx event stream starts */
    tg_streamusage_strip_t *strip;
    bool strip_active;
    /* what the strip filter or a stream translation made of the provider's bytes, going out as the client reads:
     * while it is not all out, the upstream stays paused */
    tg_buf_t scratch;
    size_t scratch_off; /* sent so far */
    bool ending;        /* the upstream is done: the response ends once scratch is out */
    tg_cache_fill_t *fill; /* caching applies: the answer is collected for the store (cacheserve.h) */
    /* the unified API: the answer is translated from the provider's dialect to the client's (xlate.h) */
    tg_dialect_t client, dialect;
    tg_xlate_req_info_t xinfo;
    enum { XLATE_NONE, XLATE_STREAM, XLATE_WHOLE } xmode;
    tg_xlate_stream_t *xs;  /* XLATE_STREAM */
    tg_buf_t whole;         /* XLATE_WHOLE: the answer, translated once it is all in */
    int whole_status;
    tg_header_t *whole_headers; /* XLATE_WHOLE: the head to send with it (request pool) */
    size_t num_whole_headers;
    tg_buf_t sending;           /* XLATE_WHOLE: the translated answer, going out as the client reads */
    size_t sent;
} proxy_t;

/* A provider's whole answer (an error, or a plain JSON answer) is read this far for translation. */
#define MAX_XLATE_WHOLE (32u << 20)
/* Output made by the gateway goes out in pieces of at most this, each only while the client is not paused, so the
 * connection's queue stays within its cap (max_response_buffer + the server's slack) however much was made. */
#define SEND_PIECE (64u << 10)

static void release(proxy_t *px)
{
    if (px->fill != NULL) {
        tg_cache_fill_end(px->fill, false); /* not stored unless on_up_done ended it complete first */
        px->fill = NULL;
    }
    if (px->strip != NULL) {
        tg_streamusage_strip_dispose(px->strip);
        px->strip = NULL;
    }
    if (px->xs != NULL) {
        tg_xlate_stream_dispose(px->xs);
        px->xs = NULL;
    }
    /* an answer cut short, too large, or left by the client: what came is read (if the usage was deferred) */
    if (px->xmode == XLATE_WHOLE && px->req->recorder != NULL)
        tg_recorder_usage_bytes(px->req->recorder, px->whole.base, px->whole.len);
    tg_buf_free(&px->scratch);
    tg_buf_free(&px->whole);
    tg_buf_free(&px->sending);
}

/* Sends what is left of a translated whole answer, as far as the client's buffer allows; ends the response when
 * all of it is out. */
static void send_translated(proxy_t *px)
{
    tg_req_t *req = px->req;
    while (px->sent < px->sending.len && !tg_http_want_pause(req)) {
        size_t n = TG_MIN(SEND_PIECE, px->sending.len - px->sent);
        if (tg_http_send(req, px->sending.base + px->sent, n) != 0)
            return; /* the client is gone: on_abort follows */
        px->sent += n;
    }
    if (px->sent == px->sending.len) {
        release(px);
        tg_http_end_response(req);
    }
}

#define NAME(x) {TG_LIT(x)}

/* Is `name` (any case) one of `list`? */
static bool in_names(tg_iovec_t name, const tg_iovec_t *list, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (tg_iov_eq_ci(name, list[i].base, list[i].len))
            return true;
    return false;
}

/* Hop-by-hop (RFC 9110 section 7.6.1) plus what the gateway itself decides on either leg. */
static const tg_iovec_t hop_by_hop[] = {NAME("connection"),          NAME("keep-alive"),          NAME("proxy-connection"),
                                    NAME("proxy-authenticate"),  NAME("proxy-authorization"), NAME("te"),
                                    NAME("trailer"),             NAME("transfer-encoding"),   NAME("upgrade")};

/* Does the comma-separated token list `list` contain `name`? */
static bool token_listed(tg_iovec_t list, tg_iovec_t name)
{
    const char *p = list.base, *end = list.base + list.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *te = comma != NULL ? comma : end;
        tg_iovec_t tok = tg_iov_trim(tg_iov(p, (size_t)(te - p)));
        if (tok.len != 0 && tg_iov_eq_ci(name, tok.base, tok.len))
            return true;
        p = te + 1;
    }
    return false;
}

bool tg_proxy_is_request_header_dropped(tg_iovec_t name, tg_iovec_t connection)
{
    static const tg_iovec_t own[] = {NAME("host"), NAME("content-length"), NAME("expect"), NAME("cf-cache-ttl"),
                                 NAME("cf-skip-cache")};
    return in_names(name, hop_by_hop, TG_ARRAY_SIZE(hop_by_hop)) || in_names(name, own, TG_ARRAY_SIZE(own)) ||
           tg_iov_prefix_ci(name, TG_LIT("cf-aig-")) ||
           (connection.len != 0 && token_listed(connection, name));
}

bool tg_proxy_is_response_header_dropped(tg_iovec_t name)
{
    return in_names(name, hop_by_hop, TG_ARRAY_SIZE(hop_by_hop)) || tg_iov_eq_ci(name, TG_LIT("content-length"));
}

/* ---- upstream side ---------------------------------------------------------------------------------------- */

/* Sends what scratch holds, as far as the client's buffer allows. Returns 0, or -1 when the client is gone (on_abort
 * follows). */
static int flush_scratch(proxy_t *px)
{
    while (px->scratch_off < px->scratch.len && !tg_http_want_pause(px->req)) {
        size_t n = TG_MIN(SEND_PIECE, px->scratch.len - px->scratch_off);
        if (tg_http_send(px->req, px->scratch.base + px->scratch_off, n) != 0)
            return -1;
        px->scratch_off += n;
    }
    if (px->scratch_off == px->scratch.len)
        px->scratch.len = px->scratch_off = 0;
    return 0;
}

/* A complete answer goes to the cache, with the usage the recorder read from what the provider sent. */
static void fill_complete(proxy_t *px)
{
    tg_usage_t u;
    const char *model;
    if (px->req->recorder != NULL && tg_recorder_usage_read(px->req->recorder, &u, &model))
        tg_cache_fill_usage(px->fill, &u, model);
    tg_cache_fill_end(px->fill, true);
    px->fill = NULL;
}

/* The filtered or translated stream is all out and the upstream is done: the end. */
static void end_filtered(proxy_t *px)
{
    tg_req_t *req = px->req;
    if (px->fill != NULL)
        fill_complete(px);
    release(px);
    tg_http_end_response(req);
}

/* The gateway's own response headers after the m in `out` (the cache status; the log and event ids are the
 * recorder's, in every answer: resp_extra); returns the new m. */
static size_t own_headers(proxy_t *px, tg_header_t *out, size_t m)
{
    if (px->fill != NULL)
        out[m++] = (tg_header_t){tg_iov(TG_LIT("cf-aig-cache-status")), tg_iov(TG_LIT("MISS"))};
    return m;
}

/* The head of a translated answer: the provider's headers but those that describe the body it sent. */
static void xlate_head(proxy_t *px, int status, const tg_header_t *headers, size_t n, int64_t content_length)
{
    tg_mem_pool_t *pool = &px->req->pool;
    tg_header_t *out = tg_mem_alloc_pool(pool, sizeof(*out) * (n + 4));
    size_t m = 0;
    bool sse = false, encoded = false;
    for (size_t i = 0; i != n; ++i) {
        tg_iovec_t name = headers[i].name, value = tg_iov_trim(headers[i].value);
        if (tg_iov_eq_ci(name, TG_LIT("content-type"))) {
            sse = tg_iov_prefix_ci(value, TG_LIT("text/event-stream"));
            continue;
        }
        if (tg_iov_eq_ci(name, TG_LIT("content-encoding"))) {
            encoded = value.len != 0 && !tg_iov_eq_ci(value, TG_LIT("identity"));
            continue;
        }
        if (tg_proxy_is_response_header_dropped(name))
            continue;
        /* copied: the head is sent after this call when the answer is translated whole */
        out[m++] = (tg_header_t){tg_iov(tg_mem_strdup_pool(pool, name.base, name.len), name.len),
                                 tg_iov(tg_mem_strdup_pool(pool, headers[i].value.base, headers[i].value.len),
                                        headers[i].value.len)};
    }
    if (px->req->recorder != NULL)
        tg_recorder_response_head(px->req->recorder, headers, n);
    if (encoded)
        status = -status; /* asked for identity and got something else: nothing to translate (on_up_done) */
    if (sse && status >= 200 && status < 300) {
        px->xmode = XLATE_STREAM;
        px->xs = tg_mem_alloc_pool(pool, sizeof(*px->xs));
        tg_xlate_stream_init(px->xs, px->client, px->dialect, &px->xinfo, (int64_t)(px->req->start_unix_ms / 1000));
        tg_buf_init(&px->scratch, 4 * TG_XLATE_MAX_EVENT + px->req->config->max_response_buffer + (256u << 10));
        out[m++] = (tg_header_t){tg_iov(TG_LIT("content-type")), tg_iov(TG_LIT("text/event-stream; charset=utf-8"))};
        if (px->fill != NULL)
            tg_cache_fill_head(px->fill, status, out, m);
        m = own_headers(px, out, m);
        px->head_sent = true;
        tg_http_start_response(px->req, status, out, m, -1);
        return;
    }
    px->xmode = XLATE_WHOLE;
    px->whole_status = status;
    /* a 2xx answer is parsed once, for the translation and the usage */
    if (status >= 200 && status < 300 && px->req->recorder != NULL)
        tg_recorder_defer_usage(px->req->recorder);
    out[m++] = (tg_header_t){tg_iov(TG_LIT("content-type")), tg_iov(TG_LIT("application/json"))};
    px->whole_headers = out;
    px->num_whole_headers = m;
    tg_buf_init(&px->whole, MAX_XLATE_WHOLE);
    /* one allocation when the provider says how much comes (a plain answer usually does) */
    tg_buf_reserve(&px->whole, content_length > 0 && content_length <= MAX_XLATE_WHOLE ? (size_t)content_length : 4096);
}

static void on_up_head(void *ctx, int status, const tg_header_t *headers, size_t n, int64_t content_length)
{
    proxy_t *px = ctx;
    if (px->client != px->dialect) {
        xlate_head(px, status, headers, n, content_length);
        return;
    }
    tg_header_t *out = tg_mem_alloc_pool(&px->req->pool, sizeof(*out) * (n + 3));
    size_t m = 0;
    for (size_t i = 0; i != n; ++i)
        if (!tg_proxy_is_response_header_dropped(headers[i].name))
            out[m++] = headers[i];
    px->head_sent = true;
    if (px->strip != NULL && status >= 200 && status < 300) {
        for (size_t i = 0; i != n; ++i)
            if (tg_iov_eq_ci(headers[i].name, TG_LIT("content-type")) &&
                tg_iov_prefix_ci(tg_iov_trim(headers[i].value), TG_LIT("text/event-stream")))
                px->strip_active = true;
        if (px->strip_active)
            content_length = -1; /* the body changes length */
    }
    if (px->fill != NULL)
        tg_cache_fill_head(px->fill, status, headers, n);
    if (px->req->recorder != NULL)
        tg_recorder_response_head(px->req->recorder, headers, n);
    m = own_headers(px, out, m);
    tg_http_start_response(px->req, status, out, m, content_length);
}

static int on_up_body(void *ctx, const char *p, size_t n)
{
    proxy_t *px = ctx;
    if (px->xmode == XLATE_WHOLE) {
        if (tg_buf_append(&px->whole, p, n) != 0) {
            tg_req_t *req = px->req;
            tg_upstream_cancel(px->up);
            px->up = NULL;
            atomic_fetch_sub_explicit(&px->w->upstream_in_flight, 1, memory_order_relaxed);
            release(px);
            tg_http_send_error(req, TG_E_UPSTREAM_BAD_RESPONSE,
                               "Provider %s sent an answer larger than the gateway translates (%u MiB)", px->provider,
                               MAX_XLATE_WHOLE >> 20);
            return 0;
        }
        if (px->req->recorder != NULL)
            tg_recorder_response_body(px->req->recorder, p, n);
        return 0;
    }
    if (tg_http_want_pause(px->req) || px->scratch.len != 0)
        return TG_E_AGAIN; /* resumed from on_drain */
    if (px->xmode == XLATE_STREAM || px->strip_active) {
        if (px->xmode == XLATE_STREAM)
            tg_xlate_stream_feed(px->xs, p, n, &px->scratch);
        else
            tg_streamusage_strip_feed(px->strip, p, n, &px->scratch);
        if (px->scratch.overflowed) { /* not a stream any more: cut it rather than send a broken one */
            tg_req_t *req = px->req;
            tg_upstream_cancel(px->up);
            px->up = NULL;
            atomic_fetch_sub_explicit(&px->w->upstream_in_flight, 1, memory_order_relaxed);
            release(px);
            req->log_note = "stream-output-overflow";
            tg_http_abort_response(req);
            return 0;
        }
        if (px->fill != NULL) /* what the client receives is what a hit replays */
            tg_cache_fill_body(px->fill, px->scratch.base, px->scratch.len);
        if (flush_scratch(px) != 0)
            return TG_E_AGAIN; /* the client is gone */
    } else if (tg_http_send(px->req, p, n) != 0) {
        return TG_E_AGAIN; /* the client is gone; on_abort follows and cancels */
    } else if (px->fill != NULL) {
        tg_cache_fill_body(px->fill, p, n);
    }
    if (px->req->recorder != NULL)
        tg_recorder_response_body(px->req->recorder, p, n);
    return 0;
}

/* A whole answer is in: translated (a 2xx to a chat.completion, an error to OpenAI's error shape) and sent. */
static void xlate_whole_done(proxy_t *px)
{
    tg_req_t *req = px->req;
    int status = px->whole_status;
    tg_buf_t *body = &px->sending;
    tg_buf_init(body, 2 * MAX_XLATE_WHOLE);
    tg_buf_reserve(body, px->whole.len + px->whole.len / 2 + 512);
    int r = 0;
    if (status < 0) {
        r = -1; /* a compressed answer (xlate_head) */
    } else if (status >= 200 && status < 300) {
        tg_jdoc_t d;
        r = tg_jdoc_parse(&d, px->whole.base, px->whole.len);
        if (req->recorder != NULL && r == 0) /* both do nothing unless the usage was deferred */
            tg_recorder_usage_doc(req->recorder, &d);
        else if (req->recorder != NULL)
            tg_recorder_usage_bytes(req->recorder, px->whole.base, px->whole.len);
        if (r == 0)
            r = tg_xlate_response_doc(px->client, px->dialect, &px->xinfo, &d, (int64_t)(req->start_unix_ms / 1000),
                                      body);
        tg_jdoc_free(&d);
    } else {
        tg_xlate_error(px->client, px->dialect, status, px->whole.base, px->whole.len, body);
    }
    if (r != 0) {
        size_t len = px->whole.len;
        release(px);
        tg_metrics_upstream_error(px->w->metrics, px->provider, TG_UPSTREAM_ERR_BAD_RESPONSE);
        tg_http_send_error(req, TG_E_UPSTREAM_BAD_RESPONSE,
                           "Provider %s sent an answer the gateway cannot translate (status %d, %zu bytes%s)",
                           px->provider, status < 0 ? -status : status, len, status < 0 ? ", compressed" : "");
        return;
    }
    tg_header_t *out = tg_mem_alloc_pool(&req->pool, sizeof(*out) * (px->num_whole_headers + 3));
    memcpy(out, px->whole_headers, sizeof(*out) * px->num_whole_headers);
    size_t m = px->num_whole_headers;
    size_t stored = m;
    m = own_headers(px, out, m);
    if (px->fill != NULL) {
        tg_cache_fill_head(px->fill, status, out, stored);
        tg_cache_fill_body(px->fill, body->base, body->len);
        fill_complete(px);
    }
    px->head_sent = true;
    tg_buf_free(&px->whole);
    tg_http_start_response(req, status, out, m, (int64_t)body->len);
    send_translated(px);
}

static void on_up_done(void *ctx, int err, const char *detail)
{
    proxy_t *px = ctx;
    tg_req_t *req = px->req;
    px->up = NULL;
    atomic_fetch_sub_explicit(&px->w->upstream_in_flight, 1, memory_order_relaxed);
    if (err == 0 && px->xmode == XLATE_WHOLE) {
        xlate_whole_done(px);
        return;
    }
    if (err == 0 && (px->xmode == XLATE_STREAM || px->strip_active)) {
        size_t from = px->scratch.len; /* after what is still going out */
        if (px->xmode == XLATE_STREAM)
            tg_xlate_stream_finish(px->xs, &px->scratch);
        else
            tg_streamusage_strip_finish(px->strip, &px->scratch);
        if (px->scratch.overflowed) {
            release(px);
            req->log_note = "stream-output-overflow";
            tg_http_abort_response(req);
            return;
        }
        if (px->fill != NULL)
            tg_cache_fill_body(px->fill, px->scratch.base + from, px->scratch.len - from);
        if (flush_scratch(px) != 0)
            return; /* the client is gone: on_abort follows */
        if (px->scratch.len != 0) {
            px->ending = true; /* on_drain sends the rest, then ends */
            return;
        }
        end_filtered(px);
        return;
    }
    if (err == 0) {
        if (px->fill != NULL)
            fill_complete(px);
        release(px);
        tg_http_end_response(req);
        return;
    }
    release(px);
    tg_upstream_err_kind_t kind = !px->head_sent                        ? TG_UPSTREAM_ERR_UNREACHABLE
                                  : TG_UPSTREAM_ERR_TRUNCATED;
    if (!px->head_sent && err == TG_E_UPSTREAM_TIMEOUT)
        kind = TG_UPSTREAM_ERR_TIMEOUT;
    else if (!px->head_sent && err == TG_E_UPSTREAM_BAD_RESPONSE)
        kind = TG_UPSTREAM_ERR_BAD_RESPONSE;
    tg_metrics_upstream_error(px->w->metrics, px->provider, kind);
    if (px->head_sent) {
        req->log_note = "upstream-truncated";
        tg_http_abort_response(req);
        return;
    }
    if (err == TG_E_UPSTREAM_TIMEOUT)
        tg_http_send_error(req, err, "Provider %s did not respond in time: %s", px->provider, detail);
    else if (err == TG_E_UPSTREAM_BAD_RESPONSE)
        tg_http_send_error(req, err, "Provider %s sent an invalid response: %s", px->provider, detail);
    else
        tg_http_send_error(req, err, "Failed to get response from provider %s: %s", px->provider, detail);
}

static const tg_upstream_ops_t upstream_ops = {on_up_head, on_up_body, on_up_done};

/* ---- client side ------------------------------------------------------------------------------------------ */

static void on_client_drain(tg_req_t *req)
{
    proxy_t *px = req->gen_data;
    if (px->xmode == XLATE_WHOLE && px->head_sent) {
        send_translated(px);
        return;
    }
    if (px->scratch.len != 0) {
        if (flush_scratch(px) != 0 || px->scratch.len != 0)
            return; /* gone, or still more than the client takes */
        if (px->ending) {
            end_filtered(px);
            return;
        }
    }
    if (px->up != NULL)
        tg_upstream_resume(px->up);
}

static void on_client_abort(tg_req_t *req)
{
    proxy_t *px = req->gen_data;
    if (px->up != NULL) {
        tg_upstream_cancel(px->up);
        px->up = NULL;
        atomic_fetch_sub_explicit(&px->w->upstream_in_flight, 1, memory_order_relaxed);
    }
    release(px);
}

static const tg_http_generator_ops_t generator_ops = {on_client_drain, on_client_abort};

void tg_proxy_handle(tg_req_t *req, tg_worker_t *w, const tg_proxy_target_t *target, tg_cache_fill_t *fill)
{
    const tg_config_t *cfg = req->config;
    proxy_t *px = tg_mem_alloc_pool(&req->pool, sizeof(*px));
    memset(px, 0, sizeof(*px));
    px->req = req;
    px->w = w;
    px->provider = target->provider;
    px->fill = fill;
    px->client = target->client;
    px->dialect = target->dialect;
    px->xinfo = target->xlate;

    const tg_header_t *conn_hdr = tg_http_find_header(req, TG_LIT("connection"));
    tg_iovec_t connection = conn_hdr != NULL ? conn_hdr->value : tg_iov("", 0);
    tg_iovec_t body = target->body.base != NULL ? target->body : req->body;
    const tg_header_t *in_headers = target->headers != NULL ? target->headers : req->headers;
    size_t num_in = target->headers != NULL ? target->num_headers : req->num_headers;
    if (target->client == TG_DIALECT_OPENAI && target->dialect == TG_DIALECT_OPENAI &&
        tg_streamusage_provider_ok(target->provider) && tg_iov_suffix(target->native_path, TG_LIT("chat/completions")) &&
        tg_streamusage_inject(&req->pool, body, &body)) {
        px->strip = tg_mem_alloc_pool(&req->pool, sizeof(*px->strip));
        tg_streamusage_strip_init(px->strip);
        /* what one upstream read can turn into: a held event plus the read */
        tg_buf_init(&px->scratch, 2 * TG_STREAMUSAGE_MAX_EVENT + cfg->max_response_buffer + (256u << 10));
    }

    /* The answer must stay readable for the recorder: Accept-Encoding is narrowed to what it can inflate (gzip,
     * deflate), and to identity when the stream is edited on its way or may be cached (a stored answer is plain,
     * so any client can be served from it). */
    const tg_header_t *ae = tg_http_find_header(req, TG_LIT("accept-encoding"));
    bool identity = px->strip != NULL || fill != NULL || px->client != px->dialect;
    bool own_ae = (req->recorder != NULL && (ae != NULL || px->strip != NULL)) || identity;
    tg_header_t *hdrs = tg_mem_alloc_pool(&req->pool, sizeof(*hdrs) * (num_in + 1));
    size_t n = 0;
    for (size_t i = 0; i != num_in; ++i)
        if (!tg_proxy_is_request_header_dropped(in_headers[i].name, connection) &&
            !(own_ae && tg_iov_eq_ci(in_headers[i].name, TG_LIT("accept-encoding"))))
            hdrs[n++] = in_headers[i];
    if (own_ae)
        hdrs[n++] = (tg_header_t){tg_iov(TG_LIT("accept-encoding")),
                                  tg_iov_str(tg_recorder_accept_encoding(ae != NULL ? ae->value : tg_iov("", 0),
                                                                         identity))};

    tg_upstream_spec_t spec = {
        .url = target->url,
        .method = req->method_name,
        .headers = hdrs,
        .num_headers = n,
        .body = body,
        .connect_timeout_ms = cfg->upstream_connect_timeout,
        .first_byte_timeout_ms = target->first_byte_timeout_ms,
        .idle_timeout_ms = cfg->upstream_idle_timeout,
        .fast_http1 = cfg->upstream_fast_http1,
        .ca_file = cfg->upstream_ca_file,
    };
    tg_http_set_generator(req, &generator_ops, px);
    atomic_fetch_add_explicit(&w->upstream_in_flight, 1, memory_order_relaxed);
    px->up = tg_upstream_start(w->upstream, &spec, &upstream_ops, px);
}
