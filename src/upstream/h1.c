/*
 * The HTTP/1.1 backend: cleartext keep-alive connections to http:// upstreams, on libuv with llhttp.
 *
 * Why it exists is in internal.h. What it does:
 *  - One pool of idle connections per upstream host:port, most recently used first. An idle connection keeps
 *    reading, so a close by the server takes it out of the pool at once; one that closes in the race between
 *    pooling and reuse (nothing received on it yet) is retried once on a fresh connection, as HTTP clients do.
 *  - The request head is formatted once into a buffer and written with the borrowed body in one writev.
 *  - The response is parsed as it arrives; body bytes go to the caller as they come. When the caller refuses
 *    bytes (its client reads slowly), the rest of the current read is held and the socket stops being read, so
 *    TCP pushes back on the upstream; at most one read (64 KiB) is ever held.
 *  - Host names are resolved with uv_getaddrinfo (the libuv threadpool) and cached for a minute.
 * Reads use one 64 KiB buffer per worker, as the server does.
 */
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <llhttp.h>
#include <arpa/inet.h>
#include "internal.h"
#include "tollgate/error.h"
#include "tollgate/mem.h"

#define READ_BUF_SIZE (64 * 1024)
#define MAX_RESPONSE_HEAD (64 * 1024)
#define MAX_RESPONSE_HEADERS 200
#define POOL_IDLE_MS 55000    /* an idle connection older than this is closed rather than reused */
#define POOL_MAX_PER_HOST 512 /* idle connections kept per host */
#define MAX_HOSTS 1024        /* distinct upstream hosts remembered; past this, requests go to curl */
#define DNS_TTL_MS 60000
#define SWEEP_MS 10000

typedef struct st_h1_host_t h1_host_t;
typedef struct st_h1_conn_t h1_conn_t;
typedef struct st_h1_req_t h1_req_t;

struct st_upstream_h1_t {
    tg_upstream_t *u;
    uv_loop_t *loop;
    h1_host_t *hosts;
    size_t num_hosts;
    uv_timer_t sweep;
    char rbuf[READ_BUF_SIZE];
};

struct st_h1_host_t {
    h1_host_t *next;
    char *name;     /* without brackets */
    char *hostport; /* the Host header value */
    uint16_t port;
    bool numeric;
    struct sockaddr_storage addr;
    uint64_t addr_expiry_ms; /* 0: not resolved */
    h1_conn_t *idle;         /* most recently used first */
    size_t num_idle;
    size_t num_active;
};

struct st_h1_conn_t {
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout */
    upstream_h1_t *h;
    h1_host_t *host;
    h1_conn_t *prev, *next; /* the host's idle list */
    bool in_pool;
    bool closing;
    bool writing;
    bool reused;
    bool dirty; /* bytes beyond the response: not reusable */
    unsigned handles_open;
    uint64_t idle_since;
    llhttp_t parser;
    h1_req_t *req;
    uv_connect_t creq;
    uv_write_t wreq;
};

typedef struct {
    uv_getaddrinfo_t gai;
    h1_req_t *req; /* NULL once the request went away */
    h1_host_t *host;
} resolve_t;

typedef struct {
    uint32_t name_off, name_len, value_off, value_len;
} hdr_ref_t;
static_assert(sizeof(hdr_ref_t) * MAX_RESPONSE_HEADERS <= TG_MEM_BLOCK_SIZE, "the header index is one block");

struct st_h1_req_t {
    tg_upstream_req_t super;
    upstream_h1_t *h;
    h1_host_t *host;
    h1_conn_t *conn;
    resolve_t *resolving;
    tg_buf_t out; /* the request head */
    tg_iovec_t body;
    bool is_head;
    bool retried;
    bool starting;   /* inside upstream_h1_start */
    bool got_bytes;  /* on this connection */
    bool complete;   /* the whole response has been parsed */
    bool bad_head;
    bool in_value;
    uint64_t connect_timeout_ms;
    tg_buf_t rhead; /* response header names and values */
    hdr_ref_t *hdrs;
    size_t num_hdrs;
    tg_buf_t held; /* body bytes the caller refused, in order */
};

static void acquire(h1_req_t *r);
static void conn_close(h1_conn_t *conn);
static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* ---- request lifetime ------------------------------------------------------------------------------------- */

static void req_free_bufs(h1_req_t *r)
{
    tg_buf_free(&r->out);
    tg_buf_free(&r->rhead);
    tg_buf_free(&r->held);
    tg_mem_block_free(r->hdrs);
    r->hdrs = NULL;
}

/* Stops everything the request has under way (the connection is closed: its response is unfinished) and frees. */
static void req_abandon(h1_req_t *r)
{
    if (r->resolving != NULL) {
        r->resolving->req = NULL;
        r->resolving = NULL;
    }
    if (r->conn != NULL) {
        h1_conn_t *conn = r->conn;
        r->conn = NULL;
        conn->req = NULL;
        conn_close(conn);
    }
    --r->host->num_active;
    req_free_bufs(r);
    upstream_req_release(&r->super);
}

static void req_fail(h1_req_t *r, int err, const char *detail)
{
    if (r->starting) {
        /* inside tg_upstream_start: no callback may run yet */
        if (r->conn != NULL) {
            r->conn->req = NULL;
            conn_close(r->conn);
            r->conn = NULL;
        }
        upstream_req_fail_deferred(&r->super, err, detail);
        return;
    }
    upstream_req_done(&r->super, err, detail);
    req_abandon(r);
}

/* ---- the pool --------------------------------------------------------------------------------------------- */

static void pool_remove(h1_conn_t *conn)
{
    if (!conn->in_pool)
        return;
    h1_host_t *host = conn->host;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        host->idle = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
    conn->in_pool = false;
    --host->num_idle;
}

static void pool_put(h1_conn_t *conn)
{
    h1_host_t *host = conn->host;
    if (host->num_idle >= POOL_MAX_PER_HOST || conn->closing) {
        conn_close(conn);
        return;
    }
    conn->req = NULL;
    conn->idle_since = uv_now(conn->h->loop);
    conn->in_pool = true;
    conn->prev = NULL;
    conn->next = host->idle;
    if (host->idle != NULL)
        host->idle->prev = conn;
    host->idle = conn;
    ++host->num_idle;
}

static h1_conn_t *pool_get(h1_host_t *host, uint64_t now)
{
    while (host->idle != NULL) {
        h1_conn_t *conn = host->idle;
        pool_remove(conn);
        if (conn->idle_since + POOL_IDLE_MS > now)
            return conn;
        conn_close(conn);
    }
    return NULL;
}

static void on_conn_closed(uv_handle_t *h)
{
    h1_conn_t *conn = h->data;
    if (--conn->handles_open == 0)
        free(conn);
}

static void conn_close(h1_conn_t *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    pool_remove(conn);
    conn->handles_open = 2;
    uv_close((uv_handle_t *)&conn->timer, on_conn_closed);
    uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
}

static void on_sweep(uv_timer_t *t)
{
    upstream_h1_t *h = t->data;
    uint64_t now = uv_now(h->loop);
    h1_host_t **pp = &h->hosts;
    while (*pp != NULL) {
        h1_host_t *host = *pp;
        for (h1_conn_t *c = host->idle, *next; c != NULL; c = next) {
            next = c->next;
            if (c->idle_since + POOL_IDLE_MS <= now)
                conn_close(c);
        }
        if (host->num_idle == 0 && host->num_active == 0) {
            /* forget hosts nobody uses, so that their number stays bounded */
            *pp = host->next;
            free(host->name);
            free(host->hostport);
            free(host);
            --h->num_hosts;
            continue;
        }
        pp = &host->next;
    }
}

/* ---- response parsing ------------------------------------------------------------------------------------- */

#define CONN_REQ(p) (((h1_conn_t *)(p)->data)->req)

static int on_message_begin(llhttp_t *p)
{
    h1_req_t *r = CONN_REQ(p);
    tg_buf_reset(&r->rhead);
    r->num_hdrs = 0;
    r->in_value = false;
    return 0;
}

static int append_rhead(h1_req_t *r, const char *at, size_t len)
{
    if (tg_buf_append(&r->rhead, at, len) != 0) {
        r->bad_head = true;
        return -1;
    }
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    h1_req_t *r = CONN_REQ(p);
    if (r->num_hdrs == 0 || r->in_value) {
        if (r->num_hdrs == MAX_RESPONSE_HEADERS) {
            r->bad_head = true;
            return -1;
        }
        if (r->hdrs == NULL)
            r->hdrs = tg_mem_block_alloc(); /* (every answer has a head: a recycled block, not malloc's bins) */
        hdr_ref_t *hr = r->hdrs + r->num_hdrs++;
        hr->name_off = hr->value_off = (uint32_t)r->rhead.len;
        hr->name_len = hr->value_len = 0;
        r->in_value = false;
    }
    r->hdrs[r->num_hdrs - 1].name_len += (uint32_t)len;
    return append_rhead(r, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    h1_req_t *r = CONN_REQ(p);
    if (r->num_hdrs == 0)
        return -1;
    hdr_ref_t *hr = r->hdrs + r->num_hdrs - 1;
    if (!r->in_value) {
        r->in_value = true;
        hr->value_off = (uint32_t)r->rhead.len;
        hr->value_len = 0;
    }
    hr->value_len += (uint32_t)len;
    return append_rhead(r, at, len);
}

static int on_headers_complete(llhttp_t *p)
{
    h1_req_t *r = CONN_REQ(p);
    int status = llhttp_get_status_code(p);
    if (status >= 100 && status < 200 && status != 101)
        return 0; /* an interim answer: the final one follows */
    tg_header_t hdrs[MAX_RESPONSE_HEADERS];
    for (size_t i = 0; i != r->num_hdrs; ++i) {
        hdrs[i].name = tg_iov(r->rhead.base + r->hdrs[i].name_off, r->hdrs[i].name_len);
        hdrs[i].value = tg_iov_trim(tg_iov(r->rhead.base + r->hdrs[i].value_off, r->hdrs[i].value_len));
    }
    int64_t cl = (p->flags & F_CONTENT_LENGTH) != 0 && (p->flags & F_CHUNKED) == 0 ? (int64_t)p->content_length : -1;
    upstream_req_head(&r->super, status, hdrs, r->num_hdrs, cl);
    if (upstream_req_over(&r->super))
        return -1;
    return r->is_head ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    h1_req_t *r = CONN_REQ(p);
    if (r->held.len == 0 && !r->super.paused) {
        int rc = upstream_req_body(&r->super, at, len);
        if (upstream_req_over(&r->super))
            return -1;
        if (rc == 0)
            return 0;
    }
    /* refused (now or earlier in this read): keep it, in order, for resume; reading stops after this read */
    return tg_buf_append(&r->held, at, len) == 0 ? 0 : -1;
}

static int on_message_complete(llhttp_t *p)
{
    h1_req_t *r = CONN_REQ(p);
    int status = llhttp_get_status_code(p);
    if (status >= 100 && status < 200 && status != 101)
        return 0;
    r->complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The response is complete and delivered: give the connection back (or close it) and end. */
static void req_finish(h1_req_t *r)
{
    h1_conn_t *conn = r->conn;
    r->conn = NULL;
    conn->req = NULL;
    if (llhttp_should_keep_alive(&conn->parser) && !conn->dirty && !conn->writing)
        pool_put(conn);
    else
        conn_close(conn);
    upstream_req_done(&r->super, 0, NULL);
    --r->host->num_active;
    req_free_bufs(r);
    upstream_req_release(&r->super);
}

/* After parsing: finish, wait for the caller, or stop reading. */
static void after_parse(h1_req_t *r)
{
    if (upstream_req_over(&r->super)) {
        req_abandon(r); /* cancelled from inside a callback */
        return;
    }
    if (r->held.len != 0) {
        uv_read_stop((uv_stream_t *)&r->conn->tcp);
        return;
    }
    if (r->complete)
        req_finish(r);
}

static void feed(h1_conn_t *conn, const char *data, size_t len)
{
    h1_req_t *r = conn->req;
    r->got_bytes = true;
    llhttp_errno_t e = llhttp_execute(&conn->parser, data, len);
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&conn->parser);
        if (pos != NULL && pos < data + len)
            conn->dirty = true; /* bytes after the response: the connection is out of step */
    } else if (e != HPE_OK && !upstream_req_over(&r->super)) {
        char detail[160];
        snprintf(detail, sizeof(detail), "%s (%s)",
                 r->bad_head ? "the response head was malformed or too large" : "malformed response",
                 llhttp_errno_name(e));
        req_fail(r, TG_E_UPSTREAM_BAD_RESPONSE, detail);
        return;
    }
    after_parse(r);
}

/* ---- connections ------------------------------------------------------------------------------------------ */

static void on_write_done(uv_write_t *w, int status)
{
    h1_conn_t *conn = w->data;
    conn->writing = false;
    if (conn->closing || status == 0 || conn->req == NULL)
        return;
    /* a write error surfaces as a read error or EOF too; let the read side decide (retry or fail) */
}

static void send_request(h1_conn_t *conn)
{
    h1_req_t *r = conn->req;
    llhttp_init(&conn->parser, HTTP_RESPONSE, &settings);
    conn->parser.data = conn;
    r->got_bytes = false;
    r->complete = false;
    uv_read_start((uv_stream_t *)&conn->tcp, on_conn_alloc, on_conn_read);
    uv_buf_t bufs[2] = {uv_buf_init(r->out.base, (unsigned)r->out.len),
                        uv_buf_init((char *)r->body.base, (unsigned)r->body.len)};
    unsigned nbufs = r->body.len != 0 ? 2 : 1;
    int n = uv_try_write((uv_stream_t *)&conn->tcp, bufs, nbufs);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0)
        return; /* the read side sees the failure */
    size_t done = (size_t)n;
    if (done == r->out.len + r->body.len)
        return;
    unsigned i = 0;
    while (done >= bufs[i].len) {
        done -= bufs[i].len;
        ++i;
    }
    bufs[i].base += done;
    bufs[i].len -= done;
    conn->wreq.data = conn;
    if (uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, bufs + i, nbufs - i, on_write_done) == 0)
        conn->writing = true;
}

static void on_connect_timeout(uv_timer_t *t)
{
    h1_conn_t *conn = t->data;
    h1_req_t *r = conn->req;
    if (r == NULL)
        return;
    char detail[96];
    snprintf(detail, sizeof(detail), "connecting to %s timed out after %llu ms", r->host->hostport,
             (unsigned long long)r->connect_timeout_ms);
    req_fail(r, TG_E_UPSTREAM_TIMEOUT, detail);
}

static void on_connect(uv_connect_t *cr, int status)
{
    h1_conn_t *conn = cr->data;
    if (conn->closing)
        return;
    uv_timer_stop(&conn->timer);
    h1_req_t *r = conn->req;
    if (status < 0) {
        char detail[160];
        snprintf(detail, sizeof(detail), "cannot connect to %s: %s", conn->host->hostport, uv_strerror(status));
        req_fail(r, TG_E_UPSTREAM_UNREACHABLE, detail);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    uv_tcp_keepalive(&conn->tcp, 1, 60);
    send_request(conn);
}

static void new_conn(h1_req_t *r)
{
    upstream_h1_t *h = r->h;
    h1_conn_t *conn = tg_calloc(1, sizeof(*conn));
    conn->h = h;
    conn->host = r->host;
    uv_tcp_init(h->loop, &conn->tcp);
    uv_timer_init(h->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->req = r;
    r->conn = conn;
    conn->creq.data = conn;
    int rc = uv_tcp_connect(&conn->creq, &conn->tcp, (const struct sockaddr *)&r->host->addr, on_connect);
    if (rc != 0) {
        char detail[160];
        snprintf(detail, sizeof(detail), "cannot connect to %s: %s", r->host->hostport, uv_strerror(rc));
        req_fail(r, TG_E_UPSTREAM_UNREACHABLE, detail);
        return;
    }
    uv_timer_start(&conn->timer, on_connect_timeout, r->connect_timeout_ms, 0);
}

/* EOF or a read error on a connection in use. */
static void conn_read_end(h1_conn_t *conn, ssize_t nread)
{
    h1_req_t *r = conn->req;
    if (nread == UV_EOF && r->super.head_done && !r->complete) {
        /* a body delimited by the close ends here */
        llhttp_finish(&conn->parser);
        if (r->complete) {
            conn->dirty = true;
            after_parse(r);
            return;
        }
    }
    if (!r->got_bytes && conn->reused && !r->retried) {
        /* the server closed a pooled connection as we reused it: once more, on a fresh connection */
        r->retried = true;
        r->conn = NULL;
        conn->req = NULL;
        conn_close(conn);
        new_conn(r);
        return;
    }
    char detail[160];
    if (!r->super.head_done)
        snprintf(detail, sizeof(detail), "%s closed the connection before answering (%s)", r->host->hostport,
                 nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
    else
        snprintf(detail, sizeof(detail), "%s closed the connection in the middle of the response (%s)",
                 r->host->hostport, nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
    req_fail(r, TG_E_UPSTREAM_UNREACHABLE, detail);
}

static void on_conn_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    h1_conn_t *conn = hd->data;
    (void)suggested;
    *buf = uv_buf_init(conn->h->rbuf, READ_BUF_SIZE);
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1_conn_t *conn = s->data;
    if (nread == 0 || conn->closing)
        return;
    if (conn->req == NULL) {
        conn_close(conn); /* idle in the pool: a close, or bytes nobody asked for */
        return;
    }
    if (nread < 0) {
        conn_read_end(conn, nread);
        return;
    }
    feed(conn, buf->base, (size_t)nread);
}

/* ---- hosts and resolution --------------------------------------------------------------------------------- */

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    resolve_t *rs = gai->data;
    h1_req_t *r = rs->req;
    if (r != NULL)
        r->resolving = NULL;
    if (status == 0 && res != NULL && res->ai_addrlen <= sizeof(rs->host->addr)) {
        memcpy(&rs->host->addr, res->ai_addr, res->ai_addrlen);
        rs->host->addr_expiry_ms = uv_now(gai->loop) + DNS_TTL_MS;
    }
    uv_freeaddrinfo(res);
    free(rs);
    if (r == NULL)
        return;
    if (status != 0) {
        char detail[160];
        snprintf(detail, sizeof(detail), "cannot resolve %s: %s", r->host->name, uv_strerror(status));
        req_fail(r, TG_E_UPSTREAM_UNREACHABLE, detail);
        return;
    }
    new_conn(r);
}

static void acquire(h1_req_t *r)
{
    h1_host_t *host = r->host;
    uint64_t now = uv_now(r->h->loop);
    h1_conn_t *conn = pool_get(host, now);
    if (conn != NULL) {
        conn->reused = true;
        conn->req = r;
        r->conn = conn;
        send_request(conn);
        return;
    }
    if (host->numeric || host->addr_expiry_ms > now) {
        new_conn(r);
        return;
    }
    resolve_t *rs = tg_calloc(1, sizeof(*rs));
    rs->req = r;
    rs->host = host;
    rs->gai.data = rs;
    char port[8];
    snprintf(port, sizeof(port), "%u", host->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->resolving = rs;
    int rc = uv_getaddrinfo(r->h->loop, &rs->gai, on_resolved, host->name, port, &hints);
    if (rc != 0) {
        r->resolving = NULL;
        free(rs);
        char detail[160];
        snprintf(detail, sizeof(detail), "cannot resolve %s: %s", host->name, uv_strerror(rc));
        req_fail(r, TG_E_UPSTREAM_UNREACHABLE, detail);
    }
}

/* Splits "http://host[:port]/path?q" into host, port and target. Returns false for anything else. */
static bool parse_url(const char *url, tg_iovec_t *host, uint16_t *port, tg_iovec_t *target)
{
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *a = url + 7, *end = a + strcspn(a, "/?#");
    if (memchr(a, '@', (size_t)(end - a)) != NULL || a == end)
        return false; /* user info: leave it to curl */
    const char *hend = end, *colon = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', (size_t)(end - a));
        if (rb == NULL)
            return false;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        *host = tg_iov(a + 1, (size_t)(rb - a - 1));
    } else {
        colon = memchr(a, ':', (size_t)(end - a));
        hend = colon != NULL ? colon : end;
        *host = tg_iov(a, (size_t)(hend - a));
    }
    uint64_t p = 80;
    if (colon != NULL && (tg_parse_u64(colon + 1, (size_t)(end - colon - 1), 65535, &p) != 0 || p == 0))
        return false;
    *port = (uint16_t)p;
    if (host->len == 0 || host->len > 253)
        return false;
    *target = *end == '/' ? tg_iov_str(end) : tg_iov_str("/");
    if (*end == '?') {
        /* "http://host?q" has the target "/?q"; rare enough to leave to curl */
        return false;
    }
    return strchr(end, '#') == NULL;
}

static h1_host_t *find_host(upstream_h1_t *h, tg_iovec_t name, uint16_t port)
{
    for (h1_host_t *host = h->hosts; host != NULL; host = host->next)
        if (host->port == port && tg_iov_eq(name, host->name, strlen(host->name)))
            return host;
    if (h->num_hosts >= MAX_HOSTS)
        return NULL;
    h1_host_t *host = tg_calloc(1, sizeof(*host));
    host->name = tg_strndup(name.base, name.len);
    host->port = port;
    bool v6 = memchr(name.base, ':', name.len) != NULL;
    char buf[300];
    if (port == 80)
        snprintf(buf, sizeof(buf), v6 ? "[%s]" : "%s", host->name);
    else
        snprintf(buf, sizeof(buf), v6 ? "[%s]:%u" : "%s:%u", host->name, port);
    host->hostport = tg_strdup(buf);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&host->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&host->addr;
    if (inet_pton(AF_INET, host->name, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        host->numeric = true;
    } else if (inet_pton(AF_INET6, host->name, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        host->numeric = true;
    }
    host->next = h->hosts;
    h->hosts = host;
    ++h->num_hosts;
    return host;
}

/* ---- backend API ------------------------------------------------------------------------------------------ */

static void backend_resume(tg_upstream_req_t *base)
{
    h1_req_t *r = (h1_req_t *)base;
    if (r->held.len != 0) {
        int rc = upstream_req_body(&r->super, r->held.base, r->held.len);
        if (upstream_req_over(&r->super)) {
            req_abandon(r);
            return;
        }
        if (rc != 0)
            return; /* refused again: stay paused */
        tg_buf_reset(&r->held);
    }
    if (r->complete) {
        req_finish(r);
        return;
    }
    uv_read_start((uv_stream_t *)&r->conn->tcp, on_conn_alloc, on_conn_read);
}

static void backend_cancel(tg_upstream_req_t *base)
{
    req_abandon((h1_req_t *)base);
}

static const upstream_backend_t backend = {backend_resume, backend_cancel};

upstream_h1_t *upstream_h1_create(tg_upstream_t *u)
{
    upstream_h1_t *h = tg_calloc(1, sizeof(*h));
    h->u = u;
    h->loop = u->loop;
    uv_timer_init(h->loop, &h->sweep);
    h->sweep.data = h;
    uv_timer_start(&h->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&h->sweep);
    return h;
}

static void on_sweep_closed(uv_handle_t *hd)
{
    free(hd->data);
}

void upstream_h1_destroy(upstream_h1_t *h)
{
    while (h->hosts != NULL) {
        h1_host_t *host = h->hosts;
        h->hosts = host->next;
        while (host->idle != NULL)
            conn_close(host->idle);
        TG_BUG_ON(host->num_active != 0);
        free(host->name);
        free(host->hostport);
        free(host);
    }
    uv_close((uv_handle_t *)&h->sweep, on_sweep_closed);
}

tg_upstream_req_t *upstream_h1_start(upstream_h1_t *h, const tg_upstream_spec_t *spec, const tg_upstream_ops_t *ops,
                                     void *ctx)
{
    tg_iovec_t hostname, target;
    uint16_t port;
    if (!parse_url(spec->url, &hostname, &port, &target))
        return NULL;
    h1_host_t *host = find_host(h, hostname, port);
    if (host == NULL)
        return NULL;

    h1_req_t *r = tg_calloc(1, sizeof(*r));
    r->h = h;
    r->host = host;
    ++host->num_active;
    r->body = spec->body;
    r->is_head = tg_iov_eq(spec->method, TG_LIT("HEAD"));
    r->connect_timeout_ms = spec->connect_timeout_ms;
    tg_buf_init(&r->rhead, MAX_RESPONSE_HEAD);
    tg_buf_init(&r->held, SIZE_MAX); /* bounded by one read: reading stops once anything is held */

    /* the request head, formatted once */
    size_t need = spec->method.len + target.len + strlen(host->hostport) + 64;
    for (size_t i = 0; i != spec->num_headers; ++i)
        need += spec->headers[i].name.len + spec->headers[i].value.len + 4;
    tg_buf_init(&r->out, SIZE_MAX);
    tg_buf_reserve(&r->out, need);
    tg_buf_append(&r->out, spec->method.base, spec->method.len);
    tg_buf_append(&r->out, " ", 1);
    tg_buf_append(&r->out, target.base, target.len);
    tg_buf_append(&r->out, TG_LIT(" HTTP/1.1\r\nHost: "));
    tg_buf_append_str(&r->out, host->hostport);
    tg_buf_append(&r->out, "\r\n", 2);
    for (size_t i = 0; i != spec->num_headers; ++i) {
        const tg_header_t *hd = spec->headers + i;
        tg_buf_append(&r->out, hd->name.base, hd->name.len);
        tg_buf_append(&r->out, ": ", 2);
        tg_buf_append(&r->out, hd->value.base, hd->value.len);
        tg_buf_append(&r->out, "\r\n", 2);
    }
    bool body_method = tg_iov_eq(spec->method, TG_LIT("POST")) || tg_iov_eq(spec->method, TG_LIT("PUT")) ||
                       tg_iov_eq(spec->method, TG_LIT("PATCH"));
    if (spec->body.len != 0 || body_method)
        tg_buf_appendf(&r->out, "Content-Length: %zu\r\n", spec->body.len);
    tg_buf_append(&r->out, "\r\n", 2);

    upstream_req_init(&r->super, h->u, &backend, spec, ops, ctx);
    r->starting = true;
    acquire(r);
    r->starting = false;
    return &r->super;
}
