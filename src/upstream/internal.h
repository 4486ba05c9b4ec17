/*
 * Inside the upstream module: the request base shared by the two backends, and the backends' entry points.
 *
 * Two backends serve tg_upstream_start:
 *   - h1.c:   a lean HTTP/1.1 keep-alive client on libuv + llhttp, for cleartext http:// upstreams when no proxy
 *             variable is set. It exists because the hot path measurably needs it: libcurl 7.88 spends about 90K
 *             instructions per request on loopback (a third of them formatting the request head one byte at a
 *             time), which capped passthrough at half of nginx's throughput (bench/RESULTS.md).
 *   - curl.c: libcurl's multi interface, for everything else: https:// (TLS, HTTP/2 with ALPN), and any request an
 *             http_proxy/HTTPS_PROXY/ALL_PROXY setting may route.
 * Both report through the same base (this file), so timeouts, back-pressure and the callback contract of
 * upstream.h are implemented once.
 */
#ifndef TOLLGATE_UPSTREAM_INTERNAL_H
#define TOLLGATE_UPSTREAM_INTERNAL_H

#include "tollgate/upstream.h"

typedef struct st_upstream_curl_t upstream_curl_t;
typedef struct st_upstream_h1_t upstream_h1_t;

struct st_tg_upstream_t {
    uv_loop_t *loop;
    size_t active;
    upstream_curl_t *curl;
    upstream_h1_t *h1;
    bool h1_enabled; /* no proxy variable applies to http:// */
};

typedef struct st_upstream_backend_t {
    /* continue a transfer paused by on_body returning TG_E_AGAIN */
    void (*resume)(tg_upstream_req_t *r);
    /* stop all I/O for the request and release it; no callback follows. Never called from inside a callback of
     * the same backend (the base defers that case). */
    void (*cancel)(tg_upstream_req_t *r);
} upstream_backend_t;

/* The base of a request; each backend's request embeds it as its first member. */
struct st_tg_upstream_req_t {
    const upstream_backend_t *backend;
    tg_upstream_t *u;
    const tg_upstream_ops_t *ops;
    void *ctx;
    uv_timer_t timer; /* first-byte, then idle timeout */
    uint64_t first_byte_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t last_activity_ms;
    bool head_done;
    bool paused;
    bool finished;    /* on_done delivered or cancelled by the user: no more callbacks */
    bool in_callback; /* inside one of the user's callbacks */
    bool cancel_pending; /* the user cancelled from inside a callback */
    bool released;
    int deferred_err; /* an error found while starting, delivered from the loop */
    char deferred_detail[160];
};

/* Sets up the base (the backend's struct is calloc'ed, with `r` its first member) and starts the first-byte timer. */
void upstream_req_init(tg_upstream_req_t *r, tg_upstream_t *u, const upstream_backend_t *backend,
                       const tg_upstream_spec_t *spec, const tg_upstream_ops_t *ops, void *ctx);
/* Delivers the response head; the timer then watches for stalls. */
void upstream_req_head(tg_upstream_req_t *r, int status, const tg_header_t *headers, size_t n, int64_t content_length);
/* Delivers body bytes: 0 when consumed, TG_E_AGAIN when refused (r->paused is set; the same bytes come again). */
int upstream_req_body(tg_upstream_req_t *r, const char *p, size_t n);
/* Delivers the end (once; nothing after it). */
void upstream_req_done(tg_upstream_req_t *r, int err, const char *detail);
/* Delivers `err` from the next loop iteration, then cancels through the backend: for failures found inside
 * tg_upstream_start, where no callback may run. */
void upstream_req_fail_deferred(tg_upstream_req_t *r, int err, const char *detail);
/* True when the user cancelled or the end was delivered: the backend must stop and release. */
static inline bool upstream_req_over(const tg_upstream_req_t *r)
{
    return r->finished;
}
/* Frees the request memory once its timer has closed. The backend has stopped all I/O for it. */
void upstream_req_release(tg_upstream_req_t *r);

/* Backends. */
upstream_curl_t *upstream_curl_create(tg_upstream_t *u);
void upstream_curl_destroy(upstream_curl_t *c);
tg_upstream_req_t *upstream_curl_start(upstream_curl_t *c, const tg_upstream_spec_t *spec,
                                       const tg_upstream_ops_t *ops, void *ctx);

upstream_h1_t *upstream_h1_create(tg_upstream_t *u);
void upstream_h1_destroy(upstream_h1_t *h);
/* Returns NULL when the URL is not one the h1 backend takes (the caller then uses curl). */
tg_upstream_req_t *upstream_h1_start(upstream_h1_t *h, const tg_upstream_spec_t *spec, const tg_upstream_ops_t *ops,
                                     void *ctx);

#endif
