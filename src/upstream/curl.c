/*
 * The libcurl backend: curl's multi interface driven by the worker's libuv loop, in the shape of curl's own
 * multi-uv example. CURLMOPT_SOCKETFUNCTION maps each curl socket to a uv_poll_t, CURLMOPT_TIMERFUNCTION to one
 * uv_timer_t, and every entry into libcurl is followed by a sweep of curl_multi_info_read for finished transfers.
 *
 * It serves https:// (TLS, HTTP/2 with ALPN and multiplexing, connection reuse per host) and anything a proxy
 * variable may route (libcurl reads HTTPS_PROXY, http_proxy, ALL_PROXY and NO_PROXY itself).
 *
 * Per request, everything curl must keep (header list, URL, method) is built in the request's pool: the header
 * list nodes are plain struct curl_slist values in that pool, so starting a request makes no per-header
 * allocation. Easy handles are recycled through a small free list (curl_easy_reset keeps nothing
 * request-specific; connections and the DNS cache belong to the multi handle).
 */
#include "curlapi.h" /* libcurl through dlopen, under its own names */
#include <stdio.h>
#include <stdlib.h>
#include "internal.h"
#include "tollgate/error.h"
#include "tollgate/mem.h"

#define MAX_RESPONSE_HEAD (64 * 1024)
#define MAX_RESPONSE_HEADERS 200
#define EASY_POOL_MAX 64

struct st_upstream_curl_t {
    tg_upstream_t *u;
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    CURL *easy_pool[EASY_POOL_MAX];
    size_t easy_pool_len;
    bool global_init;
};

typedef struct {
    uv_poll_t poll;
    curl_socket_t fd;
    upstream_curl_t *c;
} sock_ctx_t;

typedef struct {
    tg_upstream_req_t super;
    upstream_curl_t *c;
    CURL *easy;
    tg_mem_pool_t pool;
    tg_buf_t head; /* raw response head being received */
    bool bad_head;
    bool in_multi;
    char errbuf[CURL_ERROR_SIZE];
} curl_req_t;

static void check_multi_info(upstream_curl_t *c);

/* ---- request lifetime ------------------------------------------------------------------------------------- */

/* Detaches the easy handle (back to the pool) and releases the request. */
static void req_release(curl_req_t *r)
{
    upstream_curl_t *c = r->c;
    if (r->in_multi) {
        curl_multi_remove_handle(c->multi, r->easy);
        r->in_multi = false;
    }
    if (c->easy_pool_len < EASY_POOL_MAX) {
        curl_easy_reset(r->easy);
        c->easy_pool[c->easy_pool_len++] = r->easy;
    } else {
        curl_easy_cleanup(r->easy);
    }
    r->easy = NULL;
    tg_buf_free(&r->head);
    tg_mem_clear_pool(&r->pool);
    upstream_req_release(&r->super);
}

static void backend_resume(tg_upstream_req_t *base)
{
    curl_req_t *r = (curl_req_t *)base;
    /* may deliver the held bytes right away, from inside this call */
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    check_multi_info(r->c);
}

static void backend_cancel(tg_upstream_req_t *base)
{
    req_release((curl_req_t *)base);
}

static const upstream_backend_t backend = {backend_resume, backend_cancel};

/* ---- curl callbacks --------------------------------------------------------------------------------------- */

/* Parses the completed head in r->head and hands it over. Returns false when it is unusable. */
static bool deliver_head(curl_req_t *r)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    tg_header_t hdrs[MAX_RESPONSE_HEADERS];
    size_t n = 0;
    int64_t content_length = -1;
    bool chunked = false;
    char *p = r->head.base, *end = r->head.base + r->head.len;
    char *nl = memchr(p, '\n', (size_t)(end - p)); /* skip the status line */
    p = nl != NULL ? nl + 1 : end;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl != NULL ? nl : end;
        char *next = nl != NULL ? nl + 1 : end;
        if (le > p && le[-1] == '\r')
            --le;
        if (le == p)
            break; /* the blank line */
        if ((*p == ' ' || *p == '\t') && n != 0) {
            /* obsolete line folding: append to the previous value */
            hdrs[n - 1].value.len = (size_t)(le - hdrs[n - 1].value.base);
            p = next;
            continue;
        }
        char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon == NULL || colon == p || n == MAX_RESPONSE_HEADERS)
            return false;
        hdrs[n].name = tg_iov(p, (size_t)(colon - p));
        hdrs[n].value = tg_iov_trim(tg_iov(colon + 1, (size_t)(le - colon - 1)));
        if (tg_iov_eq_ci(hdrs[n].name, TG_LIT("content-length"))) {
            uint64_t v;
            if (tg_parse_u64(hdrs[n].value.base, hdrs[n].value.len, INT64_MAX, &v) == 0)
                content_length = (int64_t)v;
        } else if (tg_iov_eq_ci(hdrs[n].name, TG_LIT("transfer-encoding"))) {
            chunked = true;
        }
        ++n;
        p = next;
    }
    upstream_req_head(&r->super, (int)status, hdrs, n, chunked ? -1 : content_length);
    return true;
}

static size_t on_curl_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    curl_req_t *r = userdata;
    size_t len = size * nitems;
    if (upstream_req_over(&r->super))
        return 0;
    if (r->super.head_done)
        return len; /* trailers: not forwarded */
    if (tg_buf_append(&r->head, buf, len) != 0) {
        r->bad_head = true;
        return 0;
    }
    if (!(len == 2 && buf[0] == '\r' && buf[1] == '\n') && !(len == 1 && buf[0] == '\n'))
        return len;
    /* end of a header block: an interim 1xx block is dropped, a final one delivered */
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 100 && status < 200) {
        tg_buf_reset(&r->head);
        return len;
    }
    if (!deliver_head(r)) {
        r->bad_head = true;
        return 0;
    }
    return upstream_req_over(&r->super) ? 0 : len;
}

static size_t on_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    curl_req_t *r = userdata;
    size_t len = size * nmemb;
    if (upstream_req_over(&r->super))
        return 0; /* aborts the transfer: curl reports CURLE_WRITE_ERROR and check_multi_info releases it */
    int rc = upstream_req_body(&r->super, ptr, len);
    if (upstream_req_over(&r->super))
        return 0;
    return rc == TG_E_AGAIN ? CURL_WRITEFUNC_PAUSE : len;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx_t *sc = h->data;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    upstream_curl_t *c = sc->c;
    curl_multi_socket_action(c->multi, sc->fd, flags, &running);
    check_multi_info(c);
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    upstream_curl_t *c = userp;
    sock_ctx_t *sc = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sc != NULL) {
            uv_poll_stop(&sc->poll);
            uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    if (sc == NULL) {
        sc = tg_calloc(1, sizeof(*sc));
        sc->fd = s;
        sc->c = c;
        if (uv_poll_init_socket(c->loop, &sc->poll, s) != 0) {
            free(sc);
            return -1;
        }
        sc->poll.data = sc;
        curl_multi_assign(c->multi, s, sc);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

static void on_multi_timer(uv_timer_t *t)
{
    upstream_curl_t *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    upstream_curl_t *c = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_multi_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- results ---------------------------------------------------------------------------------------------- */

static int map_curl_error(curl_req_t *r, CURLcode code, const char **detail)
{
    *detail = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(code);
    if (r->bad_head) {
        *detail = "the response head was malformed or too large";
        return TG_E_UPSTREAM_BAD_RESPONSE;
    }
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return TG_E_UPSTREAM_TIMEOUT;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
        return TG_E_UPSTREAM_BAD_RESPONSE;
    default:
        return TG_E_UPSTREAM_UNREACHABLE;
    }
}

static void check_multi_info(upstream_curl_t *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_req_t *r;
        CURLcode code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(c->multi, r->easy);
        r->in_multi = false;
        if (!upstream_req_over(&r->super)) {
            if (code == CURLE_OK && r->super.head_done) {
                upstream_req_done(&r->super, 0, NULL);
            } else if (code == CURLE_OK) {
                upstream_req_done(&r->super, TG_E_UPSTREAM_BAD_RESPONSE, "the response had no head");
            } else {
                const char *detail;
                int err = map_curl_error(r, code, &detail);
                upstream_req_done(&r->super, err, detail);
            }
        }
        req_release(r);
    }
}

/* ---- backend API ------------------------------------------------------------------------------------------ */

upstream_curl_t *upstream_curl_create(tg_upstream_t *u)
{
    upstream_curl_t *c = tg_calloc(1, sizeof(*c));
    c->u = u;
    c->loop = u->loop;
    uv_timer_init(c->loop, &c->timer);
    c->timer.data = c;
    return c;
}

/*
 * libcurl (and with it OpenSSL, about 4 MiB of touched pages) is loaded (curlapi.h; tg_upstream_start has checked
 * that it could be) and initialised on the first request that needs it, so a gateway whose upstreams are all
 * cleartext never pays for it. curl_global_init is thread-safe in this
 * libcurl (the "threadsafe" feature, 7.84+) and reference-counted: each worker balances its own call.
 */
static void ensure_multi(upstream_curl_t *c)
{
    if (c->multi != NULL)
        return;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        tg_fatal(__FILE__, __LINE__, "libcurl initialisation failed");
    c->global_init = true;
    c->multi = curl_multi_init();
    TG_BUG_ON(c->multi == NULL);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 1024L);
}

static void on_multi_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void upstream_curl_destroy(upstream_curl_t *c)
{
    for (size_t i = 0; i != c->easy_pool_len; ++i)
        curl_easy_cleanup(c->easy_pool[i]);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi); /* closes cached connections, removing their polls through the socket callback */
    if (c->global_init)
        curl_global_cleanup();
    uv_close((uv_handle_t *)&c->timer, on_multi_timer_closed);
}

/*
 * Appends a header line to a curl_slist built in the pool: "Name: value"; "Name;" for an empty value (curl's way
 * of sending one); or, with `suppress`, "Name:", which stops curl from sending a header it would add by itself.
 */
static struct curl_slist *slist_add(tg_mem_pool_t *pool, struct curl_slist *tail, tg_iovec_t name, tg_iovec_t value,
                                    bool suppress, struct curl_slist **head)
{
    struct curl_slist *node = tg_mem_alloc_pool(pool, sizeof(*node));
    char *s = tg_mem_alloc_pool(pool, name.len + value.len + 3);
    memcpy(s, name.base, name.len);
    size_t n = name.len;
    if (suppress) {
        s[n++] = ':';
    } else if (value.len == 0) {
        s[n++] = ';';
    } else {
        s[n++] = ':';
        s[n++] = ' ';
        memcpy(s + n, value.base, value.len);
        n += value.len;
    }
    s[n] = '\0';
    node->data = s;
    node->next = NULL;
    if (tail != NULL)
        tail->next = node;
    else
        *head = node;
    return node;
}

tg_upstream_req_t *upstream_curl_start(upstream_curl_t *c, const tg_upstream_spec_t *spec,
                                       const tg_upstream_ops_t *ops, void *ctx)
{
    ensure_multi(c);
    curl_req_t *r = tg_calloc(1, sizeof(*r));
    r->c = c;
    tg_mem_init_pool(&r->pool);
    tg_buf_init(&r->head, MAX_RESPONSE_HEAD);
    r->easy = c->easy_pool_len != 0 ? c->easy_pool[--c->easy_pool_len] : curl_easy_init();
    TG_BUG_ON(r->easy == NULL);
    CURL *e = r->easy;

    /* headers: the caller's, plus entries that stop curl from adding its own defaults */
    struct curl_slist *head = NULL, *tail = NULL;
    bool has_accept = false, has_ctype = false;
    for (size_t i = 0; i != spec->num_headers; ++i) {
        const tg_header_t *h = spec->headers + i;
        has_accept |= tg_iov_eq_ci(h->name, TG_LIT("accept"));
        has_ctype |= tg_iov_eq_ci(h->name, TG_LIT("content-type"));
        tail = slist_add(&r->pool, tail, h->name, h->value, false, &head);
    }
    static const tg_iovec_t none = {"", 0};
    tail = slist_add(&r->pool, tail, tg_iov(TG_LIT("Expect")), none, true, &head);
    if (!has_accept)
        tail = slist_add(&r->pool, tail, tg_iov(TG_LIT("Accept")), none, true, &head);
    if (!has_ctype)
        tail = slist_add(&r->pool, tail, tg_iov(TG_LIT("Content-Type")), none, true, &head);

    char *url = tg_mem_strdup_pool(&r->pool, spec->url, strlen(spec->url));
    char *method = tg_mem_strdup_pool(&r->pool, spec->method.base, spec->method.len);

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)spec->connect_timeout_ms);
    if (spec->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, tg_mem_strdup_pool(&r->pool, spec->ca_file, strlen(spec->ca_file)));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, head);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);

    bool is_post = tg_iov_eq(spec->method, TG_LIT("POST"));
    if (tg_iov_eq(spec->method, TG_LIT("HEAD"))) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (spec->body.len == 0 && !is_post) {
        /* GET, DELETE, ... without a body: no Content-Length */
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        if (!tg_iov_eq(spec->method, TG_LIT("GET")))
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, spec->body.len != 0 ? spec->body.base : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body.len);
        if (!is_post)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }

    upstream_req_init(&r->super, c->u, &backend, spec, ops, ctx);
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    TG_BUG_ON(mc != CURLM_OK);
    r->in_multi = true;
    return &r->super;
}
