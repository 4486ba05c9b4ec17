/*
 * Outgoing HTTP: libcurl's multi interface driven by the worker's libuv loop (one multi handle per worker).
 *
 * libcurl brings what an upstream client needs and what we would not want to write: TLS, HTTP/2 with multiplexing
 * (ALPN), connection reuse per host, DNS caching, HTTPS_PROXY/NO_PROXY from the environment. This module adds the
 * event-loop glue, a first-byte timeout (libcurl has none for HTTP), an idle timeout that does not count time the
 * transfer spends paused because our client reads slowly, and a callback interface shaped like the HTTP server's,
 * so the proxy can connect the two with back-pressure: on_body may refuse bytes (TG_E_AGAIN), which pauses the
 * transfer until tg_upstream_resume; libcurl then holds the refused bytes and stops reading the socket.
 *
 * Lifetime: a request lives from tg_upstream_start until on_done has returned or tg_upstream_cancel was called;
 * either is the end, and no callback follows cancel. cancel may be called from inside any of the callbacks.
 * Worker thread only.
 */
#ifndef TOLLGATE_UPSTREAM_H
#define TOLLGATE_UPSTREAM_H

#include <uv.h>
#include "tollgate/common.h"
#include "tollgate/http.h"

typedef struct st_tg_upstream_t tg_upstream_t;
typedef struct st_tg_upstream_req_t tg_upstream_req_t;

typedef struct st_tg_upstream_spec_t {
    const char *url;    /* absolute http:// or https:// URL; copied */
    tg_iovec_t method;  /* "POST", "GET", ...; copied */
    const tg_header_t *headers; /* sent as given (the caller filters hop-by-hop ones); copied */
    size_t num_headers;
    tg_iovec_t body;    /* borrowed: must stay valid until on_done or cancel */
    uint64_t connect_timeout_ms;
    uint64_t first_byte_timeout_ms; /* from start until the response head is in */
    uint64_t idle_timeout_ms;       /* between body reads once the head is in (time paused does not count) */
    bool fast_http1;     /* a cleartext URL may use the lean HTTP/1.1 client (see src/upstream/internal.h) */
    const char *ca_file; /* PEM bundle for TLS verification, NULL for the system's; copied */
} tg_upstream_spec_t;

typedef struct st_tg_upstream_ops_t {
    /* The response head. `headers` are valid during the call only. content_length is -1 when unknown. */
    void (*on_head)(void *ctx, int status, const tg_header_t *headers, size_t num_headers, int64_t content_length);
    /* Body bytes (valid during the call only). Return 0 when consumed, or TG_E_AGAIN to refuse them: the transfer
     * pauses and the same bytes come again after tg_upstream_resume. */
    int (*on_body)(void *ctx, const char *p, size_t n);
    /* The end: err is 0 for a complete response, else TG_E_UPSTREAM_UNREACHABLE / _TIMEOUT / _BAD_RESPONSE, with a
     * human-readable detail (static or valid during the call). Called once, last. */
    void (*on_done)(void *ctx, int err, const char *detail);
} tg_upstream_ops_t;

/* Creates the client for `loop`. curl_global_init must have run. */
tg_upstream_t *tg_upstream_create(uv_loop_t *loop);
/* Frees the client (NULL is a no-op); every request must have ended. Closes handles: run the loop once more. */
void tg_upstream_destroy(tg_upstream_t *u);

/*
 * Starts a request. Returns the request handle; the callbacks start from the event loop, never from inside this
 * call. A URL libcurl refuses (bad scheme or syntax) is reported through on_done on the next loop iteration too,
 * so callers have one error path.
 */
tg_upstream_req_t *tg_upstream_start(tg_upstream_t *u, const tg_upstream_spec_t *spec, const tg_upstream_ops_t *ops,
                                     void *ctx);
/* Continues a transfer paused by on_body returning TG_E_AGAIN. */
void tg_upstream_resume(tg_upstream_req_t *r);
/* Stops the request (closing its upstream connection if the response was not complete). No callback follows. */
void tg_upstream_cancel(tg_upstream_req_t *r);

/* libcurl's version string (loading it if needed; libcurl is opened on first use), or why it cannot be loaded. */
const char *tg_upstream_curl_version(void);

#endif
