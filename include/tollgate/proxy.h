/*
 * Provider-native passthrough: forwards a request to the provider's upstream URL and streams the answer back with
 * back-pressure (the upstream transfer pauses while the client has max_response_buffer bytes unread; a client
 * that leaves cancels the upstream request at once).
 *
 * Request headers go through untouched except hop-by-hop ones and every cf-aig-* header, which the gateway
 * consumes. Response headers go back except hop-by-hop ones. For the unified API (compat.h) the target may carry
 * another body and header set, and a dialect pair whose answer is translated on its way (xlate.h). Worker thread
 * only.
 */
#ifndef TOLLGATE_PROXY_H
#define TOLLGATE_PROXY_H

#include "tollgate/config.h"
#include "tollgate/http.h"
#include "tollgate/worker.h"
#include "tollgate/xlate.h"

typedef struct st_tg_proxy_target_t {
    const tg_gateway_t *gateway;
    const char *provider;     /* slug, for logs and metrics (static or request pool) */
    const char *url;          /* upstream URL, NUL-terminated (request pool) */
    tg_iovec_t native_path;   /* the provider-native path after the slug ("chat/completions") */
    uint64_t first_byte_timeout_ms;
    /* The unified API (compat.h) sends something else than what the client sent; all zero for passthrough. */
    tg_iovec_t body;            /* the upstream body, when not the client's (.base NULL: the client's) */
    const tg_header_t *headers; /* the request headers to send, when not the client's (still filtered) */
    size_t num_headers;
    tg_iovec_t cache_path;      /* the path the cache key names, when not native_path (the client's endpoint) */
    tg_dialect_t client;        /* the client's dialect and the provider's: the answer is translated when they */
    tg_dialect_t dialect;       /* differ (xlate.h) */
    tg_xlate_req_info_t xlate;
} tg_proxy_target_t;

typedef struct st_tg_cache_fill_t tg_cache_fill_t;

/* Takes over `req` (see http.h for the ownership rule) and forwards it to `target`. With `fill` (cacheserve.h) the
 * answer is collected for the response cache and the client is told cf-aig-cache-status: MISS. */
void tg_proxy_handle(tg_req_t *req, tg_worker_t *w, const tg_proxy_target_t *target, tg_cache_fill_t *fill);

/* True for a request header that must not be forwarded upstream (hop-by-hop, cf-aig-*, Host, framing). `connection`
 * is the value of the request's Connection header (its tokens name more hop-by-hop headers), or an empty iovec. */
bool tg_proxy_is_request_header_dropped(tg_iovec_t name, tg_iovec_t connection);
/* True for a response header that must not be returned to the client (hop-by-hop). */
bool tg_proxy_is_response_header_dropped(tg_iovec_t name);

#endif
