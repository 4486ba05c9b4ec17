/*
 * The client-facing HTTP/1.1 server: one instance per worker thread, on that worker's libuv loop.
 *
 * Connections are parsed with llhttp. A request is handed to the handler only when its head and whole body are in
 * (bodies are bounded by max_request_body), so handlers never deal with partial input. The response goes out
 * through a small API that frames it (Content-Length, chunked, or close-delimited for HTTP/1.0), coalesces
 * everything produced in one loop iteration into one writev at the end of the iteration, and reports back-pressure
 * so a streaming handler can pause its source (h2o's generator rule): tg_http_send never blocks and never drops
 * bytes, but the handler must stop producing while tg_http_want_pause() is true and resume from on_drain.
 *
 * Ownership and lifetime:
 *  - A tg_req_t is created by the server and stays valid until the handler ends it (tg_http_end_response,
 *    tg_http_send_error, tg_http_send_simple or tg_http_abort_response) or the server calls the generator's
 *    on_abort. Exactly one of those ends the handler's relationship with the request; after it the handler must
 *    not touch the request. The server frees it once its output is written and the done hook has run.
 *  - on_abort (client gone, write failed, send timeout, forced shutdown) is always called from the event loop,
 *    never from inside a tg_http_* call, so a handler need not guard against re-entry there.
 *  - All functions are for the worker thread that owns the server.
 */
#ifndef TOLLGATE_HTTP_H
#define TOLLGATE_HTTP_H

#include <uv.h>
#include "tollgate/buf.h"
#include "tollgate/common.h"
#include "tollgate/config.h"
#include "tollgate/mem.h"

typedef struct st_tg_http_server_t tg_http_server_t;
typedef struct st_tg_http_conn_t tg_http_conn_t;
typedef struct st_tg_req_t tg_req_t;

typedef struct st_tg_header_t {
    tg_iovec_t name;
    tg_iovec_t value;
} tg_header_t;

/* What a handler that streams a response provides (h2o generator). */
typedef struct st_tg_http_generator_ops_t {
    /* Output queued for the client fell to the low-water mark after tg_http_want_pause() had been true. */
    void (*on_drain)(tg_req_t *req);
    /* The response cannot be delivered any more; release everything and forget `req`. */
    void (*on_abort)(tg_req_t *req);
} tg_http_generator_ops_t;

/* Request-level hooks of the server: dispatch and completion. */
typedef struct st_tg_http_handler_t {
    /* A complete request (head and body). The handler must eventually end it (see above). */
    void (*on_request)(tg_req_t *req, void *data);
    /* The request is over (response written, failed or aborted), just before it is freed: for access logs and
     * metrics. `req->status` is the status sent (0 when none was), `req->aborted` tells whether it was cut. */
    void (*on_done)(tg_req_t *req, void *data);
    /* A connection was accepted (opened = true) or closed; `num_conns` is the count after the change. */
    void (*on_conn_change)(tg_http_server_t *server, bool opened, size_t num_conns, void *data);
    /* The server finished draining (tg_http_server_drain): no connection is left. */
    void (*on_drained)(tg_http_server_t *server, void *data);
    void *data;
} tg_http_handler_t;

#define TG_HTTP_MAX_RESP_EXTRA 6

struct st_tg_req_t {
    tg_mem_pool_t pool;  /* freed with the request */
    tg_config_t *config; /* the snapshot current when the request arrived; retained for its life */

    /* the request, all pointing into memory owned by the request */
    int method; /* llhttp_method_t */
    tg_iovec_t method_name;
    tg_iovec_t target; /* as received */
    tg_iovec_t path;   /* target up to '?', scheme and authority removed */
    tg_iovec_t query;  /* after '?', empty when none */
    unsigned version_minor; /* HTTP/1.x */
    tg_header_t *headers;
    size_t num_headers;
    uint64_t header_mask; /* a bit per name's tg_http_header_bit, so most lookups of an absent header stop at once */
    tg_iovec_t body;
    char client_addr[64]; /* "127.0.0.1" */

    uint64_t start_ns;      /* monotonic, when the request head was complete */
    uint64_t start_unix_ms; /* wall clock, same instant */

    /* the response, as sent so far (read-only for handlers) */
    int status;
    uint64_t bytes_sent; /* body bytes */
    uint64_t first_byte_ns; /* monotonic time the head was queued, 0 before */
    bool aborted;

    /* the handler's slot: set with tg_http_set_generator */
    const tg_http_generator_ops_t *_gen;
    void *gen_data;

    /* free-form annotations for the access log, owned by whoever sets them (pool or static) */
    const char *log_gateway;
    const char *log_provider;
    const char *log_note;
    const char *error_message; /* the message of the gateway's own error answer (tg_http_send_error), pool */
    /* headers every response to this request carries, whoever answers it, errors included (the recorder's
     * cf-aig-log-id and cf-aig-event-id, the unified API's cf-aig-provider and cf-aig-model): added with
     * tg_http_add_resp_header before the response starts; the values' memory is the request's */
    tg_header_t resp_extra[TG_HTTP_MAX_RESP_EXTRA];
    size_t num_resp_extra;
    /* the request's log recorder (recorder.h), owned by the router, finished in its on_done hook */
    struct st_tg_recorder_t *recorder;

    tg_buf_t _body; /* owns body.base */
    tg_http_conn_t *_conn;
};

/*
 * Creates a server on `loop` that accepts on `listen_fd` (a bound socket, already listening or not; the server
 * calls listen). `config` is retained; replace it with tg_http_server_set_config. Returns NULL and logs on error.
 */
tg_http_server_t *tg_http_server_create(uv_loop_t *loop, int listen_fd, tg_config_t *config, unsigned max_conns,
                                        const tg_http_handler_t *handler);
/* Installs a new config snapshot for requests that arrive from now on (the server retains it). */
void tg_http_server_set_config(tg_http_server_t *server, tg_config_t *config);
/* Stops accepting, closes idle connections, lets in-flight requests finish (connections close after their
 * response) and force-closes what is left after drain_timeout. Calls handler->on_drained when none is left. */
void tg_http_server_drain(tg_http_server_t *server);
/* Frees the server (NULL is a no-op); only after on_drained. Handles are closed; run the loop once more. */
void tg_http_server_destroy(tg_http_server_t *server);
/* Open connections right now. */
size_t tg_http_server_num_conns(const tg_http_server_t *server);

/* The handler's `data` (tg_http_handler_t.data) of the server the request arrived on. */
void *tg_http_req_data(const tg_req_t *req);

/* Looks a request header up by name (case-insensitive); the first one wins. NULL when absent. */
const tg_header_t *tg_http_find_header(const tg_req_t *req, const char *name, size_t namelen);
/* The bit of header_mask a name sets: from its length and last two bytes, case folded (a filter, not an identity;
 * chosen so that the headers SDKs send share no bit with the cf-aig-* and credential names the gateway looks for). */
static inline uint64_t tg_http_header_bit(const char *name, size_t len)
{
    if (len < 2)
        return len != 0 ? UINT64_C(1) << ((unsigned char)(name[0] | 0x20) & 63) : 1;
    unsigned last = (unsigned char)(name[len - 1] | 0x20), before = (unsigned char)(name[len - 2] | 0x20);
    return UINT64_C(1) << ((len * 3u + last * 7u + before * 2u) & 63);
}

/* Adds a header every response to `req` carries (resp_extra above); the gateway's own handlers add at most
 * TG_HTTP_MAX_RESP_EXTRA (one past that is left out). */
static inline void tg_http_add_resp_header(tg_req_t *req, tg_iovec_t name, tg_iovec_t value)
{
    if (req->num_resp_extra < TG_HTTP_MAX_RESP_EXTRA)
        req->resp_extra[req->num_resp_extra++] = (tg_header_t){name, value};
}

/* Sets the generator for a streamed response. */
static inline void tg_http_set_generator(tg_req_t *req, const tg_http_generator_ops_t *ops, void *data)
{
    req->_gen = ops;
    req->gen_data = data;
}

/*
 * Queues the response head. `headers` are copied; hop-by-hop headers among them are the caller's business (the
 * server adds its own framing headers and drops any Content-Length/Transfer-Encoding/Connection passed in).
 * `content_length` is the body size, or -1 when unknown (chunked for HTTP/1.1, close-delimited for HTTP/1.0).
 */
void tg_http_start_response(tg_req_t *req, int status, const tg_header_t *headers, size_t num_headers,
                            int64_t content_length);
/* Queues body bytes (copied). Returns 0, or TG_E_CLOSED when the client is gone (on_abort follows). */
int tg_http_send(tg_req_t *req, const char *p, size_t n);
/* True while the queued output is at or above max_response_buffer: stop producing until on_drain. */
bool tg_http_want_pause(const tg_req_t *req);
/* Completes the response. The request is the server's from here on. */
void tg_http_end_response(tg_req_t *req);
/* Cuts the response (the connection is closed without completing the framing, so the client sees a truncated
 * answer). The request is the server's from here on; on_abort is not called. */
void tg_http_abort_response(tg_req_t *req);

/* A whole response at once (head, body, end). */
void tg_http_send_simple(tg_req_t *req, int status, const char *content_type, const char *body, size_t len);
/*
 * The gateway's error envelope (SPEC.md section 6) with the status and code of `err` (error.h) and a message; a
 * NULL fmt uses the code's default message. Ends the response.
 */
void tg_http_send_error(tg_req_t *req, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Builds the error envelope into `out`. */
void tg_http_error_body(tg_buf_t *out, int err, const char *message);

/* Reason phrase of a status ("Not Found"); "Unknown" for codes without one. */
const char *tg_http_reason(int status);

#endif
