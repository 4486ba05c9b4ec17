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

typedef struct st_tg_cache_flight_t tg_cache_flight_t;

/* What a miss collects (proxy.c feeds it): the answer as it arrives, in a flight that identical requests arriving
 * meanwhile wait on instead of calling the provider themselves. Lives in the request pool. */
typedef struct st_tg_cache_fill_t {
    tg_cache_t *cache;
    tg_cache_key_t key;
    const char *account, *gateway;
    uint64_t ttl_ms;
    uint64_t max_entry;
    tg_cache_flight_t *flight;
    /* the answer's usage as the miss's recorder read it (tg_cache_fill_usage), kept with the entry */
    bool has_usage;
    tg_usage_t usage;
    const char *usage_model; /* the recorder's (lives as long as the request); NULL when none */
} tg_cache_fill_t;

/* Routes a request for `target`: from the cache, or to the proxy (with a fill when the answer may be stored).
 * Answers 400 naming the header when a cache header is malformed. Takes over `req`. */
void tg_cache_route(tg_req_t *req, tg_worker_t *w, const tg_proxy_target_t *target);

/* The worker's wakeup for requests waiting on another request's answer (worker.c installs it; any thread sends). */
void tg_cache_on_wake(uv_async_t *a);

/* The answer's head (stored if it is a plain 2xx; relayed to waiters whatever it is). */
void tg_cache_fill_head(tg_cache_fill_t *f, int status, const tg_header_t *headers, size_t n);
/* Body bytes as they go to the client. */
void tg_cache_fill_body(tg_cache_fill_t *f, const char *p, size_t n);
/* The usage the miss's recorder read from the provider's answer, before tg_cache_fill_end: the entry keeps it, so
 * a logged hit has the tokens even when what is stored does not show them (a stream whose usage chunk, asked for
 * on the client's behalf, was taken out). `model` is not copied before tg_cache_fill_end. */
static inline void tg_cache_fill_usage(tg_cache_fill_t *f, const tg_usage_t *u, const char *model)
{
    f->has_usage = true;
    f->usage = *u;
    f->usage_model = model;
}
/* The answer is over: `complete` stores a 2xx (unless it is a stream that carried an error event); waiters get
 * the end, or a cut answer when it is not complete. Call once. */
void tg_cache_fill_end(tg_cache_fill_t *f, bool complete);

/* True when a stored event stream reports an error (an "error" event, or a data line holding an error object). */
bool tg_cache_stream_has_error(const char *body, size_t len);

#endif
