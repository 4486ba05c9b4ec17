/*
 * HTTP/1.1 server connections: accept, parse with llhttp, dispatch complete requests, frame and write responses.
 *
 * Design:
 *  - Reads land in one 64 KiB buffer per server (libuv calls alloc and read back to back, so it is never shared by
 *    two reads in flight). Whatever must outlive the read is copied out: the request head into a capped per
 *    connection buffer, the body into the request's capped body buffer, and pipelined bytes that arrive while a
 *    request is being handled into a capped hold buffer. An idle keep-alive connection therefore holds no buffer.
 *  - Parsing is http1.c's (llhttp with limits, no I/O). It stops at the end of each message; the request is
 *    dispatched after the parser returns, never from inside a parser callback, and the next pipelined request is
 *    parsed only once the response has been ended.
 *  - Output is queued per connection and written at the end of the loop iteration (a uv_check handle): whatever a
 *    handler produced in one iteration -- head and first body bytes, several stream chunks -- goes out in one
 *    write. uv_try_write first; only a remainder is handed to uv_write, so the common case makes one syscall and
 *    no extra copy of the remainder.
 *  - Each connection has one timer, whose meaning follows the state: header timeout while reading a head, body
 *    timeout between body reads, send timeout while output is stuck, keep-alive timeout when idle, a short linger
 *    before closing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "tollgate/error.h"
#include "tollgate/http.h"
#include "tollgate/http1.h"
#include "tollgate/log.h"
#include "tollgate/tgtime.h"

#define READ_BUF_SIZE (64 * 1024)
#define HOLD_MAX (64 * 1024)        /* pipelined input held while a request is handled */
#define LINGER_MS 2000              /* how long a closing connection drains unread input before the close */
#define OUT_HARD_SLACK (256 * 1024) /* output beyond max_response_buffer that means a handler ignored back-pressure */

typedef enum {
    CS_IDLE,     /* between requests */
    CS_HEAD,     /* reading a request head */
    CS_BODY,     /* reading a request body */
    CS_HANDLING, /* a complete request is with the handler (or its error answer is being written) */
    CS_DONE,     /* the last response is queued; close once it is written */
    CS_LINGER,   /* write side shut; discarding input until EOF or the linger timer */
} conn_state_t;

struct st_tg_http_server_t {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_check_t flusher;  /* flushes right after the I/O callbacks of an iteration */
    uv_idle_t flush_idle; /* active while flushes are pending, so the loop does not block before the check */
    uv_timer_t drain_timer;
    tg_config_t *config;
    tg_http_handler_t handler;
    unsigned max_conns;
    size_t num_conns;
    tg_http_conn_t *conns; /* all open connections (doubly linked) */
    tg_http_conn_t *flush_head, **flush_tail;
    bool draining;
    bool drained_reported;
    unsigned handles_closing; /* own handles whose close callback is pending */
    bool destroyed;           /* free when handles_closing reaches 0 */
    char date[40];
    time_t date_sec;
    char rbuf[READ_BUF_SIZE];
};

struct st_tg_http_conn_t {
    uv_tcp_t tcp;
    uv_timer_t timer;
    tg_http_server_t *server;
    tg_http_conn_t *prev, *next;
    tg_http_conn_t *flush_next;
    bool in_flush_list;
    unsigned handles_open;
    tg_http1_t reader;
    conn_state_t state;
    bool closing;
    bool reading;
    bool served_one; /* at least one request finished: idle waits use the keep-alive timeout */
    char peer[64];

    tg_req_t *req;  /* the request being read or handled */
    tg_buf_t held;  /* input received while handling */

    /* response */
    bool keepalive;
    bool resp_started, resp_ended, resp_chunked, resp_no_body, resp_truncate;
    int64_t resp_content_length;
    bool pause_reported;
    tg_buf_t out;      /* queued, not yet given to the kernel */
    tg_buf_t inflight; /* owned by the outstanding uv_write */
    uv_write_t wreq;
    bool writing;
    uv_shutdown_t sreq;
};

static void conn_close(tg_http_conn_t *conn);
static void conn_abort(tg_http_conn_t *conn);
static void schedule_flush(tg_http_conn_t *conn);
static void feed(tg_http_conn_t *conn, const char *data, size_t len);
static void req_finish(tg_http_conn_t *conn);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_flush_idle(uv_idle_t *h);
static void on_server_handle_closed(uv_handle_t *h);
static void reply_read_error(tg_http_conn_t *conn, int err);

/* ---- small helpers ---------------------------------------------------------------------------------------- */

const char *tg_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 424: return "Failed Dependency";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Site Overloaded";
    default: return "Unknown";
    }
}

static const char *server_date(tg_http_server_t *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        s->date_sec = now;
        tg_format_http_date((uint64_t)now, s->date, sizeof(s->date));
    }
    return s->date;
}

static size_t out_pending(const tg_http_conn_t *conn)
{
    return conn->out.len + conn->inflight.len;
}

static void timer_set(tg_http_conn_t *conn, uint64_t ms, uv_timer_cb cb)
{
    uv_timer_start(&conn->timer, cb, ms, 0);
}

/* ---- request objects -------------------------------------------------------------------------------------- */

static tg_req_t *req_new(tg_http_conn_t *conn)
{
    /* (not calloc: glibc's calloc skips the per-thread cache malloc takes a block this size from) */
    tg_req_t *req = tg_malloc(sizeof(*req));
    memset(req, 0, sizeof(*req));
    tg_mem_init_pool(&req->pool);
    req->config = tg_config_retain(conn->server->config);
    req->_conn = conn;
    req->method = -1;
    req->method_name = tg_iov(TG_LIT("-"));
    req->path = tg_iov(TG_LIT("-"));
    req->version_minor = 1;
    memcpy(req->client_addr, conn->peer, sizeof(req->client_addr));
    req->start_ns = tg_now_mono_ns();
    req->start_unix_ms = tg_now_unix_ms();
    return req;
}

static void req_free(tg_req_t *req)
{
    tg_mem_clear_pool(&req->pool);
    tg_buf_free(&req->_body);
    tg_config_release(req->config);
    free(req);
}

/* Resets the per-response state of the connection. */
static void reset_response_state(tg_http_conn_t *conn)
{
    conn->resp_started = conn->resp_ended = conn->resp_chunked = conn->resp_no_body = conn->resp_truncate = false;
    conn->resp_content_length = -1;
    conn->pause_reported = false;
}

/* ---- the request head --------------------------------------------------------------------------------- */

static void split_target(tg_req_t *req)
{
    tg_iovec_t t = req->target;
    /* absolute-form (a client that believes it talks to a proxy): drop scheme and authority */
    if (tg_iov_prefix_ci(t, TG_LIT("http://")) || tg_iov_prefix_ci(t, TG_LIT("https://"))) {
        const char *auth = (const char *)memchr(t.base, ':', t.len) + 3;
        const char *end = t.base + t.len;
        const char *slash = memchr(auth, '/', (size_t)(end - auth));
        t = slash != NULL ? tg_iov(slash, (size_t)(end - slash)) : tg_iov("/", 1);
    }
    const char *hash = memchr(t.base, '#', t.len);
    if (hash != NULL)
        t.len = (size_t)(hash - t.base);
    const char *q = memchr(t.base, '?', t.len);
    if (q != NULL) {
        req->path = tg_iov(t.base, (size_t)(q - t.base));
        req->query = tg_iov(q + 1, t.len - req->path.len - 1);
    } else {
        req->path = t;
        req->query = tg_iov("", 0);
    }
}

/* The head is in: build the request (its own copy of the head, in its pool) and answer Expect. */
static int on_reader_head(tg_http1_t *r, void *data)
{
    tg_http_conn_t *conn = data;
    tg_req_t *req = req_new(conn);
    conn->req = req;

    char *head = tg_mem_alloc_pool(&req->pool, r->head.len + 1);
    if (r->head.len != 0)
        memcpy(head, r->head.base, r->head.len);
    req->method = r->method;
    req->method_name = tg_iov_str(llhttp_method_name((llhttp_method_t)r->method));
    req->version_minor = r->version_major == 1 ? r->version_minor : 0;
    req->target = tg_iov(head, r->url_len);
    split_target(req);
    req->headers = tg_mem_alloc_pool(&req->pool, sizeof(tg_header_t) * (r->num_hdrs + 1));
    req->num_headers = r->num_hdrs;
    for (size_t i = 0; i != r->num_hdrs; ++i) {
        req->headers[i].name = tg_iov(head + r->hdrs[i].name_off, r->hdrs[i].name_len);
        req->headers[i].value = tg_iov_trim(tg_iov(head + r->hdrs[i].value_off, r->hdrs[i].value_len));
        req->header_mask |= tg_http_header_bit(req->headers[i].name.base, req->headers[i].name.len);
    }

    const tg_header_t *expect = tg_http_find_header(req, TG_LIT("expect"));
    if (expect != NULL) {
        if (!tg_iov_eq_ci(expect->value, TG_LIT("100-continue")))
            return TG_E_EXPECTATION_FAILED;
        bool refused = r->content_length > 0 && (uint64_t)r->content_length > r->limits.max_request_body;
        if (r->has_body && req->version_minor >= 1 && !refused) {
            tg_buf_append(&conn->out, TG_LIT("HTTP/1.1 100 Continue\r\n\r\n"));
            schedule_flush(conn);
        }
    }
    conn->state = r->has_body ? CS_BODY : CS_HEAD; /* feed() arms the body timer once this read is parsed */
    return 0;
}

/* ---- timers ----------------------------------------------------------------------------------------------- */

static void on_read_timeout(uv_timer_t *t)
{
    tg_http_conn_t *conn = t->data;
    if (conn->state == CS_IDLE || (conn->state == CS_HEAD && !conn->reader.started)) {
        conn_close(conn); /* nothing was asked: just go */
        return;
    }
    if (conn->state == CS_HEAD || conn->state == CS_BODY)
        reply_read_error(conn, TG_E_CLIENT_TIMEOUT);
}

static void on_send_timeout(uv_timer_t *t)
{
    tg_http_conn_t *conn = t->data;
    tg_log_warn("closing connection from %s: it did not read its response for %llu ms", conn->peer,
                (unsigned long long)conn->server->config->send_timeout);
    conn_abort(conn);
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

/* Arms the timer that fits the state (a state change calls this). */
static void arm_timer(tg_http_conn_t *conn)
{
    const tg_config_t *cfg = conn->server->config;
    switch (conn->state) {
    case CS_IDLE:
        timer_set(conn, conn->served_one ? cfg->keepalive_timeout : cfg->client_header_timeout, on_read_timeout);
        break;
    case CS_HEAD:
        break; /* armed once when the head starts; not extended by further reads */
    case CS_BODY:
        timer_set(conn, cfg->client_body_timeout, on_read_timeout);
        break;
    case CS_HANDLING:
    case CS_DONE:
        if (conn->writing)
            timer_set(conn, cfg->send_timeout, on_send_timeout);
        else
            uv_timer_stop(&conn->timer);
        break;
    case CS_LINGER:
        timer_set(conn, LINGER_MS, on_linger_timeout);
        break;
    }
}

/* ---- closing ---------------------------------------------------------------------------------------------- */

static void maybe_report_drained(tg_http_server_t *s)
{
    if (s->draining && s->num_conns == 0 && !s->drained_reported) {
        s->drained_reported = true;
        uv_timer_stop(&s->drain_timer);
        if (s->handler.on_drained != NULL)
            s->handler.on_drained(s, s->handler.data);
    }
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    tg_http_conn_t *conn = h->data;
    if (--conn->handles_open != 0)
        return;
    tg_http_server_t *s = conn->server;
    tg_http1_dispose(&conn->reader);
    tg_buf_free(&conn->held);
    tg_buf_free(&conn->out);
    tg_buf_free(&conn->inflight);
    free(conn);
    --s->num_conns;
    if (s->handler.on_conn_change != NULL)
        s->handler.on_conn_change(s, false, s->num_conns, s->handler.data);
    maybe_report_drained(s);
}

/* Closes now. The request, if any, must already be finished (conn_abort does that). */
static void conn_close(tg_http_conn_t *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    if (conn->req != NULL) {
        /* a request that never reached a handler (partial head or body) */
        conn->req->aborted = true;
        req_finish(conn);
    }
    tg_http_server_t *s = conn->server;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        s->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->handles_open = 2;
    uv_close((uv_handle_t *)&conn->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&conn->tcp, on_conn_handle_closed);
}

/* The client is gone or must go: stop the handler (if it still owns a request) and close. Loop context only. */
static void conn_abort(tg_http_conn_t *conn)
{
    if (conn->closing)
        return;
    tg_req_t *req = conn->req;
    if (req != NULL && conn->state == CS_HANDLING && !conn->resp_ended) {
        req->aborted = true;
        conn->resp_ended = true;
        if (req->_gen != NULL && req->_gen->on_abort != NULL)
            req->_gen->on_abort(req);
        req_finish(conn);
    }
    conn_close(conn);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    tg_http_conn_t *conn = sr->data;
    if (conn->closing)
        return;
    if (status < 0) {
        conn_close(conn);
        return;
    }
    conn->state = CS_LINGER;
    arm_timer(conn);
    tg_buf_free(&conn->held);
    if (!conn->reading) {
        conn->reading = true;
        uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    }
}

/* After the last response of a connection is written: shut the write side, then linger for the peer's EOF so
 * that unread input does not turn our close into a reset that destroys the response in flight. */
static void begin_close(tg_http_conn_t *conn)
{
    conn->state = CS_DONE;
    conn->sreq.data = conn;
    if (uv_shutdown(&conn->sreq, (uv_stream_t *)&conn->tcp, on_shutdown) != 0)
        conn_close(conn);
}

/* ---- output ----------------------------------------------------------------------------------------------- */

static void schedule_flush(tg_http_conn_t *conn)
{
    if (conn->in_flush_list || conn->closing)
        return;
    tg_http_server_t *s = conn->server;
    if (s->flush_head == NULL)
        uv_idle_start(&s->flush_idle, on_flush_idle);
    conn->in_flush_list = true;
    conn->flush_next = NULL;
    *s->flush_tail = conn;
    s->flush_tail = &conn->flush_next;
}

static void flush(tg_http_conn_t *conn);

/* Nothing is queued any more: tell a paused generator, start what waits for the output to be gone. */
static void after_flush(tg_http_conn_t *conn)
{
    if (conn->closing)
        return;
    arm_timer(conn);
    if (conn->pause_reported && conn->req != NULL && conn->state == CS_HANDLING && !conn->resp_ended) {
        conn->pause_reported = false;
        tg_req_t *req = conn->req;
        if (req->_gen != NULL && req->_gen->on_drain != NULL)
            req->_gen->on_drain(req);
        return;
    }
    if (conn->state == CS_DONE && out_pending(conn) == 0 && !conn->writing) {
        if (conn->resp_truncate)
            conn_close(conn);
        else
            begin_close(conn);
        return;
    }
    if (conn->state == CS_IDLE && conn->held.len != 0) {
        /* the next pipelined request: parse from a detached copy, new leftovers go to a fresh hold buffer */
        tg_buf_t held = conn->held;
        tg_buf_init(&conn->held, HOLD_MAX);
        if (!conn->reading) {
            conn->reading = true;
            uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
        }
        feed(conn, held.base, held.len);
        tg_buf_free(&held);
    }
}

static void on_write(uv_write_t *wr, int status)
{
    tg_http_conn_t *conn = wr->data;
    conn->writing = false;
    tg_buf_reset(&conn->inflight);
    if (conn->inflight.cap > 64 * 1024)
        tg_buf_free(&conn->inflight);
    if (conn->closing)
        return;
    if (status < 0) {
        conn_abort(conn);
        return;
    }
    if (conn->out.len != 0)
        flush(conn);
    else
        after_flush(conn);
}

static void flush(tg_http_conn_t *conn)
{
    if (conn->closing || conn->writing)
        return;
    if (conn->out.len == 0) {
        after_flush(conn);
        return;
    }
    uv_buf_t b = uv_buf_init(conn->out.base, (unsigned)conn->out.len);
    int r = uv_try_write((uv_stream_t *)&conn->tcp, &b, 1);
    if (r == UV_EAGAIN || r == UV_ENOSYS)
        r = 0;
    if (r < 0) {
        conn_abort(conn);
        return;
    }
    if ((size_t)r == conn->out.len) {
        tg_buf_reset(&conn->out);
        after_flush(conn);
        return;
    }
    /* hand the remainder to libuv: swap buffers so that `out` keeps accepting while the write is in flight */
    tg_buf_t tmp = conn->inflight;
    conn->inflight = conn->out;
    conn->out = tmp;
    tg_buf_consume(&conn->inflight, (size_t)r);
    b = uv_buf_init(conn->inflight.base, (unsigned)conn->inflight.len);
    conn->wreq.data = conn;
    if (uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, &b, 1, on_write) != 0) {
        conn_abort(conn);
        return;
    }
    conn->writing = true;
    arm_timer(conn);
}

static void flush_all(tg_http_server_t *s)
{
    while (s->flush_head != NULL) {
        tg_http_conn_t *conn = s->flush_head;
        s->flush_head = conn->flush_next;
        if (s->flush_head == NULL)
            s->flush_tail = &s->flush_head;
        conn->in_flush_list = false;
        flush(conn);
    }
    uv_idle_stop(&s->flush_idle);
}

static void on_check(uv_check_t *h)
{
    flush_all(h->data);
}

static void on_flush_idle(uv_idle_t *h)
{
    flush_all(h->data);
}

static void queue_out(tg_http_conn_t *conn, const char *p, size_t n)
{
    if (tg_buf_append(&conn->out, p, n) != 0) {
        /* only a handler that ignores tg_http_want_pause can get here */
        tg_log_error("response to %s exceeded the output cap; closing the connection", conn->peer);
        conn->resp_truncate = true;
        conn->keepalive = false;
        return;
    }
    schedule_flush(conn);
}

/* ---- response API ----------------------------------------------------------------------------------------- */

static bool is_framing_header(tg_iovec_t name)
{
    return tg_iov_eq_ci(name, TG_LIT("content-length")) || tg_iov_eq_ci(name, TG_LIT("transfer-encoding")) ||
           tg_iov_eq_ci(name, TG_LIT("connection")) || tg_iov_eq_ci(name, TG_LIT("keep-alive")) ||
           tg_iov_eq_ci(name, TG_LIT("proxy-connection")) || tg_iov_eq_ci(name, TG_LIT("upgrade")) ||
           tg_iov_eq_ci(name, TG_LIT("te")) || tg_iov_eq_ci(name, TG_LIT("trailer"));
}

void tg_http_start_response(tg_req_t *req, int status, const tg_header_t *headers, size_t num_headers,
                            int64_t content_length)
{
    tg_http_conn_t *conn = req->_conn;
    TG_BUG_ON(conn->resp_started);
    conn->resp_started = true;
    if (status < 100 || status > 999)
        status = 502; /* not an HTTP status: nothing a client could read */
    req->status = status;
    req->first_byte_ns = tg_now_mono_ns();
    if (conn->server->draining)
        conn->keepalive = false;

    bool head_only = req->method == HTTP_HEAD;
    bool bodiless_status = status < 200 || status == 204 || status == 304;
    conn->resp_no_body = head_only || bodiless_status;
    conn->resp_content_length = bodiless_status ? -1 : content_length;

    char line[64]; /* "HTTP/1.1 NNN reason\r\n" without printf: this is every response */
    const char *reason = tg_http_reason(status);
    size_t rl = strlen(reason), n = 9;
    memcpy(line, "HTTP/1.1 ", 9);
    unsigned st = (unsigned)status;
    line[n++] = (char)('0' + st / 100);
    line[n++] = (char)('0' + st / 10 % 10);
    line[n++] = (char)('0' + st % 10);
    line[n++] = ' ';
    rl = TG_MIN(rl, sizeof(line) - n - 2);
    memcpy(line + n, reason, rl);
    n += rl;
    line[n++] = '\r';
    line[n++] = '\n';
    tg_buf_t *o = &conn->out;
    size_t mark = o->len;
    int r = tg_buf_append(o, line, n);
    for (size_t i = 0; i != num_headers && r == 0; ++i) {
        if (is_framing_header(headers[i].name))
            continue;
        r = tg_buf_append(o, headers[i].name.base, headers[i].name.len);
        r = r != 0 ? r : tg_buf_append(o, ": ", 2);
        r = r != 0 ? r : tg_buf_append(o, headers[i].value.base, headers[i].value.len);
        r = r != 0 ? r : tg_buf_append(o, "\r\n", 2);
    }
    for (size_t i = 0; i != req->num_resp_extra && r == 0; ++i) {
        tg_iovec_t v = req->resp_extra[i].value;
        if (memchr(v.base, '\r', v.len) != NULL || memchr(v.base, '\n', v.len) != NULL ||
            memchr(v.base, '\0', v.len) != NULL)
            continue; /* never a header split, whatever a handler put there */
        r = tg_buf_append(o, req->resp_extra[i].name.base, req->resp_extra[i].name.len);
        r = r != 0 ? r : tg_buf_append(o, ": ", 2);
        r = r != 0 ? r : tg_buf_append(o, req->resp_extra[i].value.base, req->resp_extra[i].value.len);
        r = r != 0 ? r : tg_buf_append(o, "\r\n", 2);
    }
    if (r == 0 && !bodiless_status) {
        if (content_length >= 0) {
            r = tg_buf_append(o, TG_LIT("content-length: "));
            r = r != 0 ? r : tg_buf_append_int(o, content_length);
            r = r != 0 ? r : tg_buf_append(o, "\r\n", 2);
        } else if (!head_only) {
            if (req->version_minor >= 1) {
                conn->resp_chunked = true;
                r = tg_buf_append(o, TG_LIT("transfer-encoding: chunked\r\n"));
            } else {
                conn->keepalive = false; /* HTTP/1.0: the close delimits the body */
            }
        }
    }
    if (r == 0) {
        if (!conn->keepalive)
            r = tg_buf_append(o, TG_LIT("connection: close\r\n"));
        else if (req->version_minor == 0)
            r = tg_buf_append(o, TG_LIT("connection: keep-alive\r\n"));
    }
    r = r != 0 ? r : tg_buf_append(o, "\r\n", 2);
    if (r != 0) {
        /* a head larger than the output cap: answer 502 instead of a torn head */
        o->len = mark;
        conn->resp_truncate = true;
        conn->keepalive = false;
        return;
    }
    schedule_flush(conn);
}

int tg_http_send(tg_req_t *req, const char *p, size_t n)
{
    tg_http_conn_t *conn = req->_conn;
    if (conn->closing || conn->resp_truncate)
        return TG_E_CLOSED;
    TG_BUG_ON(!conn->resp_started || conn->resp_ended);
    if (conn->resp_no_body || n == 0)
        return 0;
    if (conn->resp_content_length >= 0 && req->bytes_sent + n > (uint64_t)conn->resp_content_length) {
        n = (size_t)((uint64_t)conn->resp_content_length - req->bytes_sent); /* never more than announced */
        conn->keepalive = false;
        if (n == 0)
            return 0;
    }
    if (conn->resp_chunked) {
        char hdr[24];
        int hn = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
        queue_out(conn, hdr, (size_t)hn);
        queue_out(conn, p, n);
        queue_out(conn, "\r\n", 2);
    } else {
        queue_out(conn, p, n);
    }
    req->bytes_sent += n;
    return 0;
}

bool tg_http_want_pause(const tg_req_t *req)
{
    tg_http_conn_t *conn = req->_conn;
    if (out_pending(conn) < req->config->max_response_buffer)
        return false;
    conn->pause_reported = true;
    return true;
}

/* The request is over: report it, free it, and move the connection on. */
static void req_finish(tg_http_conn_t *conn)
{
    tg_req_t *req = conn->req;
    tg_http_server_t *s = conn->server;
    conn->req = NULL;
    if (s->handler.on_done != NULL)
        s->handler.on_done(req, s->handler.data);
    req_free(req);
    if (conn->closing)
        return;
    conn->served_one = true;
    if (conn->keepalive && !conn->resp_truncate && !s->draining) {
        reset_response_state(conn);
        tg_http1_next(&conn->reader);
        conn->state = CS_IDLE;
    } else {
        conn->state = CS_DONE;
    }
    arm_timer(conn);
    schedule_flush(conn); /* after_flush moves on: next pipelined request, or close */
}

void tg_http_end_response(tg_req_t *req)
{
    tg_http_conn_t *conn = req->_conn;
    TG_BUG_ON(!conn->resp_started || conn->resp_ended);
    conn->resp_ended = true;
    if (conn->resp_chunked && !conn->resp_truncate)
        queue_out(conn, TG_LIT("0\r\n\r\n"));
    if (!conn->resp_no_body && conn->resp_content_length >= 0 &&
        req->bytes_sent < (uint64_t)conn->resp_content_length)
        conn->resp_truncate = true; /* fewer bytes than announced: the close tells the client */
    req_finish(conn);
}

void tg_http_abort_response(tg_req_t *req)
{
    tg_http_conn_t *conn = req->_conn;
    conn->resp_ended = true;
    conn->resp_truncate = true;
    conn->keepalive = false;
    req->aborted = true;
    req_finish(conn);
}

void tg_http_send_simple(tg_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    tg_http_conn_t *conn = req->_conn;
    tg_header_t h[2] = {{tg_iov(TG_LIT("date")), tg_iov_str(server_date(conn->server))},
                        {tg_iov(TG_LIT("content-type")), tg_iov_str(content_type)}};
    tg_http_start_response(req, status, h, content_type != NULL ? 2 : 1, (int64_t)len);
    tg_http_send(req, body, len);
    tg_http_end_response(req);
}

void tg_http_error_body(tg_buf_t *out, int err, const char *message)
{
    int code = tg_err_gateway_code(err);
    tg_buf_appendf(out, "{\"success\":false,\"result\":[],\"messages\":[],\"error\":[{\"code\":%d,\"message\":\"", code);
    tg_buf_append_json_escaped(out, message, strlen(message));
    tg_buf_appendf(out, "\"}],\"name\":\"AiGatewayError\",\"httpCode\":%d,\"internalCode\":%d,\"message\":\"",
                   tg_err_http_status(err), code);
    tg_buf_append_json_escaped(out, message, strlen(message));
    tg_buf_append(out, "\"}", 2);
}

void tg_http_send_error(tg_req_t *req, int err, const char *fmt, ...)
{
    char msg[1024];
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    } else {
        snprintf(msg, sizeof(msg), "%s", tg_strerror(err));
    }
    tg_buf_t body;
    tg_buf_init(&body, 16 * 1024);
    tg_http_error_body(&body, err, msg);
    if (req->log_note == NULL)
        req->log_note = tg_err_name(err);
    req->error_message = tg_mem_strdup_pool(&req->pool, msg, strlen(msg));
    tg_http_send_simple(req, tg_err_http_status(err), "application/json", body.base, body.len);
    tg_buf_free(&body);
}

void *tg_http_req_data(const tg_req_t *req)
{
    return req->_conn->server->handler.data;
}

const tg_header_t *tg_http_find_header(const tg_req_t *req, const char *name, size_t namelen)
{
    if ((req->header_mask & tg_http_header_bit(name, namelen)) == 0)
        return NULL;
    for (size_t i = 0; i != req->num_headers; ++i)
        if (tg_iov_eq_ci(req->headers[i].name, name, namelen))
            return req->headers + i;
    return NULL;
}

/* ---- input ------------------------------------------------------------------------------------------------ */

/* Answers a request that failed while being read, and closes after. */
static void reply_read_error(tg_http_conn_t *conn, int err)
{
    if (conn->req == NULL)
        conn->req = req_new(conn);
    conn->state = CS_HANDLING;
    conn->keepalive = false;
    tg_http_send_error(conn->req, err, NULL);
}

static void dispatch(tg_http_conn_t *conn)
{
    tg_req_t *req = conn->req;
    tg_http_server_t *s = conn->server;
    conn->keepalive = conn->reader.keepalive && !s->draining;
    /* the body moves to the request */
    req->_body = conn->reader.body;
    tg_buf_init(&conn->reader.body, 0);
    req->body = tg_iov(req->_body.base != NULL ? req->_body.base : "", req->_body.len);
    conn->state = CS_HANDLING;
    arm_timer(conn);
    s->handler.on_request(req, s->handler.data);
}

static void feed(tg_http_conn_t *conn, const char *data, size_t len)
{
    const tg_config_t *cfg = conn->server->config;
    if (conn->state == CS_IDLE) {
        conn->state = CS_HEAD;
        timer_set(conn, cfg->client_header_timeout, on_read_timeout);
    }
    size_t used;
    int r = tg_http1_feed(&conn->reader, data, len, &used);
    if (r == 1) {
        if (used < len)
            tg_buf_append(&conn->held, data + used, len - used); /* fits: at most one read buffer */
        dispatch(conn);
    } else if (r < 0) {
        reply_read_error(conn, r);
    } else if (conn->state == CS_BODY) {
        timer_set(conn, cfg->client_body_timeout, on_read_timeout);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    tg_http_conn_t *conn = h->data;
    (void)suggested;
    *buf = uv_buf_init(conn->server->rbuf, sizeof(conn->server->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    tg_http_conn_t *conn = stream->data;
    if (nread == 0 || conn->closing)
        return;
    if (nread < 0) {
        /* EOF or error. A half-close while a request is in flight counts as leaving (as nginx does). */
        conn_abort(conn);
        return;
    }
    switch (conn->state) {
    case CS_LINGER:
        return;
    case CS_HANDLING:
    case CS_DONE:
        if (conn->state == CS_HANDLING && tg_buf_append(&conn->held, buf->base, (size_t)nread) == 0)
            return;
        /* more input than we hold while busy: stop reading until the response is done (TCP pushes back) */
        if (conn->state == CS_HANDLING)
            tg_buf_append(&conn->held, buf->base, TG_MIN((size_t)nread, HOLD_MAX - conn->held.len));
        uv_read_stop(stream);
        conn->reading = false;
        return;
    default:
        feed(conn, buf->base, (size_t)nread);
        return;
    }
}

/* ---- accept ----------------------------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    tg_http_server_t *s = listener->data;
    if (status < 0) {
        tg_log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    tg_http_conn_t *conn = tg_calloc(1, sizeof(*conn));
    conn->server = s;
    uv_tcp_init(s->loop, &conn->tcp);
    uv_timer_init(s->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = conn;
    s->conns = conn;
    ++s->num_conns;
    if (s->handler.on_conn_change != NULL)
        s->handler.on_conn_change(s, true, s->num_conns, s->handler.data);
    tg_http1_limits_t limits = {s->config->max_url_length, s->config->max_header_size, s->config->max_headers,
                                s->config->max_request_body};
    tg_http1_init(&conn->reader, &limits);
    conn->reader.on_head = on_reader_head;
    conn->reader.data = conn;
    tg_buf_init(&conn->held, HOLD_MAX);
    tg_buf_init(&conn->out, s->config->max_response_buffer + OUT_HARD_SLACK);
    tg_buf_init(&conn->inflight, SIZE_MAX);
    conn->resp_content_length = -1;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        conn_close(conn);
        return;
    }
    if (s->num_conns > s->max_conns || s->draining) {
        conn_close(conn); /* over the limit: the client may retry; nothing was read */
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    strcpy(conn->peer, "-");
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, conn->peer, sizeof(conn->peer));
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, conn->peer, sizeof(conn->peer));
    }
    conn->state = CS_IDLE;
    conn->reading = true;
    uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    arm_timer(conn);
}

/* ---- server ----------------------------------------------------------------------------------------------- */

tg_http_server_t *tg_http_server_create(uv_loop_t *loop, int listen_fd, tg_config_t *config, unsigned max_conns,
                                        const tg_http_handler_t *handler)
{
    tg_http_server_t *s = tg_calloc(1, sizeof(*s));
    s->loop = loop;
    s->config = tg_config_retain(config);
    s->handler = *handler;
    s->max_conns = max_conns;
    s->flush_tail = &s->flush_head;

    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int r = uv_tcp_open(&s->listener, listen_fd);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection);
    if (r != 0) {
        tg_log_error("cannot listen: %s", uv_strerror(r));
        s->handles_closing = 1;
        s->destroyed = true;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
        tg_config_release(s->config);
        return NULL;
    }
    uv_check_init(loop, &s->flusher);
    s->flusher.data = s;
    uv_check_start(&s->flusher, on_check);
    uv_idle_init(loop, &s->flush_idle);
    s->flush_idle.data = s;
    uv_timer_init(loop, &s->drain_timer);
    s->drain_timer.data = s;
    return s;
}

void tg_http_server_set_config(tg_http_server_t *s, tg_config_t *config)
{
    tg_config_t *old = s->config;
    s->config = tg_config_retain(config);
    tg_config_release(old);
}

size_t tg_http_server_num_conns(const tg_http_server_t *s)
{
    return s->num_conns;
}

static void on_drain_timeout(uv_timer_t *t)
{
    tg_http_server_t *s = t->data;
    if (s->num_conns != 0)
        tg_log_warn("drain timeout: closing %zu connection(s) still open", s->num_conns);
    for (tg_http_conn_t *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_abort(c);
    }
}

void tg_http_server_drain(tg_http_server_t *s)
{
    if (s->draining)
        return;
    s->draining = true;
    ++s->handles_closing;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    for (tg_http_conn_t *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == CS_IDLE && out_pending(c) == 0 && !c->writing)
            conn_close(c);
        else if (c->state == CS_LINGER)
            conn_close(c);
    }
    uv_timer_start(&s->drain_timer, on_drain_timeout, s->config->drain_timeout, 0);
    maybe_report_drained(s);
}

/* Frees the server when the last of its own handles has closed. */
static void on_server_handle_closed(uv_handle_t *h)
{
    tg_http_server_t *s = h->data;
    if (--s->handles_closing == 0 && s->destroyed)
        free(s);
}

void tg_http_server_destroy(tg_http_server_t *s)
{
    if (s == NULL)
        return;
    TG_BUG_ON(s->num_conns != 0);
    s->destroyed = true;
    s->handles_closing += 3;
    if (!s->draining) {
        ++s->handles_closing;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    }
    uv_close((uv_handle_t *)&s->flusher, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->flush_idle, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
    tg_config_release(s->config);
    s->config = NULL;
}
