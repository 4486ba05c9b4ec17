/*
 * The response cache on the request path (SPEC.md section 7): decides whether caching applies to a request (the
 * cf-aig-cache-ttl, cf-aig-skip-cache and cf-aig-cache-key headers and the gateway's cache_ttl), answers hits from
 * the cache store (cache.h), and on a miss hands the request to the proxy with a fill that collects a complete 2xx
 * answer as it is relayed and stores it at the end.
 *
 * A hit replays the stored status, headers and body with cf-aig-cache-status: HIT (a stored event stream goes out
 * as the same event stream), is logged with cached: true and cost 0, and makes no upstream call. Worker thread.
 */
#ifndef TOLLGATE_CACHESERVE_H
#define TOLLGATE_CACHESERVE_H

#include "tollgate/buf.h"
#include "tollgate/cache.h"
#include "tollgate/http.h"
#include "tollgate/proxy.h"
#include "tollgate/worker.h"

/* What a miss collects for the store (proxy.c feeds it). Lives in the request pool; its buffers are heap. */
typedef struct st_tg_cache_fill_t {
    tg_cache_t *cache;
    tg_cache_key_t key;
    const char *account, *gateway;
    uint64_t ttl_ms;
    uint64_t max_entry;
    bool active; /* still worth collecting: a 2xx head, plain encoding, under max_entry so far */
    bool stream; /* the answer is an event stream */
    int status;
    tg_buf_t head, body;
} tg_cache_fill_t;

/* Routes a request for `target`: from the cache, or to the proxy (with a fill when the answer may be stored).
 * Answers 400 naming the header when a cache header is malformed. Takes over `req`. */
void tg_cache_route(tg_req_t *req, tg_worker_t *w, const tg_proxy_target_t *target);

/* The answer's head: starts collecting when it is a plain 2xx. */
void tg_cache_fill_head(tg_cache_fill_t *f, int status, const tg_header_t *headers, size_t n);
/* Body bytes as they go to the client. */
void tg_cache_fill_body(tg_cache_fill_t *f, const char *p, size_t n);
/* The answer is over: `complete` stores it (unless it is a stream that carried an error event); always frees. */
void tg_cache_fill_end(tg_cache_fill_t *f, bool complete);

/* True when a stored event stream reports an error (an "error" event, or a data line holding an error object). */
bool tg_cache_stream_has_error(const char *body, size_t len);

#endif
