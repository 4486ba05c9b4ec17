/*
 * The log recorder of one request: reads the cf-aig-* logging headers, watches the response go by (head, body
 * bytes as they are relayed: usage parsed incrementally, body copied up to log_max_body) and, when the request is
 * over, prices it and hands the finished record to the log store.
 *
 * Life: tg_recorder_begin when the request is known to be for a gateway (the router), response hooks from the
 * proxy, tg_recorder_finish from the router's on_done hook (whatever ended the request: success, a gateway
 * error, a client that left). The recorder lives in the request pool; its record is heap memory that goes to
 * the store. Worker thread only.
 */
#ifndef TOLLGATE_RECORDER_H
#define TOLLGATE_RECORDER_H

#include "tollgate/http.h"
#include "tollgate/logstore.h"
#include "tollgate/metrics.h"
#include "tollgate/pricing.h"
#include "tollgate/usage.h"

typedef struct z_stream_s z_stream;

typedef struct st_tg_recorder_t {
    tg_logrec_t *rec; /* NULL when no record is kept (collect_logs off); usage is still parsed for metrics */
    bool usage_started; /* `usage` below is set up (it is not zeroed before: only from the response head on) */
    /* how the usage is read: scanned as the body arrives; deferred (tg_recorder_defer_usage: the body is kept, not
     * scanned, until tg_recorder_usage_doc or _bytes); or given (tg_recorder_response_head_given: `given` is it) */
    enum { TG_RECORDER_USAGE_SCAN, TG_RECORDER_USAGE_DEFERRED, TG_RECORDER_USAGE_GIVEN } usage_mode;
    tg_usage_t given;
    z_stream *inflate;      /* a gzip/deflate answer is inflated for the parser and the stored body (heap) */
    uint64_t inflated;      /* bytes inflated so far (bounded) */
    bool undecodable;       /* an encoding we cannot read (br, zstd): no usage, body kept as it came */
    uint64_t expected_len;  /* the answer's Content-Length (0 when unknown): the stored body's first allocation */
    bool payload;
    uint64_t max_body;
    bool has_custom_price;
    tg_price_t custom_price;
    const char *provider;
    char *request_model; /* from the request body or path (pool) */
    const char *event_id; /* cf-aig-event-id, echoed in the response (pool), NULL when none */
    bool stream;          /* the request asks for an event stream ("stream": true, or Google's stream path) */
    bool cached;          /* answered from the response cache: cost 0, no usage counted in the metrics */
    tg_usage_parser_t usage; /* last: tg_recorder_begin clears what comes before it (the parser is ~2 KB) */
} tg_recorder_t;

/*
 * Starts the recorder for `req` on gateway `gw`: reads cf-aig-event-id, cf-aig-collect-log,
 * cf-aig-collect-log-payload, cf-aig-metadata and cf-aig-custom-cost, and adds cf-aig-log-id (when a record is
 * kept) and cf-aig-event-id to every answer the request gets (tg_http_add_resp_header). `provider` and
 * `native_path` are the route's when the router knows them already (else NULL: tg_recorder_set_target), so a
 * request refused here is logged with them. No record is kept when the log queue has no place for it
 * (tg_logstore_reserve: places are held from here to the writer) or for a STOP_INSERTING gateway the store counts
 * full (tg_logstore_admit); tg_recorder_finish must follow every begun recorder, or its places are never given
 * back. Returns NULL after answering the request with a 400 naming the header when one is malformed
 * (the request is then over; a record of it is still finished).
 */
tg_recorder_t *tg_recorder_begin(tg_req_t *req, const tg_gateway_t *gw, tg_logstore_t *store, const char *provider,
                                 tg_iovec_t native_path);
/* The provider and native path the request goes to (once known), and the body sent there (the client's, or the
 * unified API's rewrite of it): the model is read from it. */
void tg_recorder_set_target(tg_recorder_t *rc, tg_req_t *req, const char *provider, tg_iovec_t native_path,
                            tg_iovec_t body);
/* The same when the caller already knows the model (kept, not copied: allocated from req's pool or living as
 * long) and whether the answer streams (the unified API's translations, which wrote the body themselves): nothing
 * is scanned. */
void tg_recorder_set_served(tg_recorder_t *rc, tg_req_t *req, const char *provider, tg_iovec_t native_path,
                            char *model, bool stream);
/* The answer comes from the response cache. */
static inline void tg_recorder_set_cached(tg_recorder_t *rc)
{
    rc->cached = true;
}
/* The response head from the provider. */
void tg_recorder_response_head(tg_recorder_t *rc, const tg_header_t *headers, size_t n);
/* The same for an answer whose usage is known already (a cache hit whose entry kept it): the body is kept, nothing
 * of it is scanned; `u` is the usage and `model` (copied; "" or NULL: none) the model the answer names. */
void tg_recorder_response_head_given(tg_recorder_t *rc, const tg_header_t *headers, size_t n, const tg_usage_t *u,
                                     const char *model);
/* The Accept-Encoding to send upstream in place of the client's: only encodings the recorder can read (gzip,
 * deflate), or identity when `identity_only`. Static string. */
const char *tg_recorder_accept_encoding(tg_iovec_t client_value, bool identity_only);
/* Response body bytes as they go to the client. */
void tg_recorder_response_body(tg_recorder_t *rc, const char *p, size_t n);
/*
 * The proxy keeps the whole answer to translate it, and parses it once for that: the body is still kept as it
 * arrives but not scanned for usage, and tg_recorder_usage_doc (the parsed answer) or tg_recorder_usage_bytes (the
 * answer's bytes, when it was not parsed) ends that. Returns false, deferring nothing, for a compressed answer
 * (scanned as it is inflated), one in an encoding it cannot read, one that is not JSON (an event stream), or
 * before tg_recorder_response_head.
 */
bool tg_recorder_defer_usage(tg_recorder_t *rc);
void tg_recorder_usage_doc(tg_recorder_t *rc, const tg_jdoc_t *d);
void tg_recorder_usage_bytes(tg_recorder_t *rc, const char *p, size_t n);
/* The usage read so far and the model the answer names (NULL when none): false when nothing was scanned (no
 * response head yet, the usage given, or deferred and not resolved yet). */
bool tg_recorder_usage_read(tg_recorder_t *rc, tg_usage_t *u, const char **model);
/* The request is over: completes the record and submits it (or drops it), and counts tokens and cost in `m`. */
void tg_recorder_finish(tg_recorder_t *rc, tg_req_t *req, tg_logstore_t *store, tg_metrics_t *m);

#endif
