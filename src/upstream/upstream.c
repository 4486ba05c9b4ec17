/*
 * libcurl multi + libuv glue, in the shape of curl's own multi-uv example: CURLMOPT_SOCKETFUNCTION maps each
 * curl socket to a uv_poll_t, CURLMOPT_TIMERFUNCTION to one uv_timer_t, and every entry into libcurl is followed
 * by a sweep of curl_multi_info_read for finished transfers.
 *
 * Per request, everything curl must keep (header list, URL, method) is built in the request's pool: the header
 * list nodes are plain struct curl_slist values in that pool, so starting a request makes no per-header
 * allocation. Easy handles are recycled through a small free list (curl_easy_reset keeps nothing request-specific;
 * connections and the DNS cache belong to the multi handle).
 *
 * Timeouts: connect is libcurl's. First byte and idle share one uv_timer per request, checked lazily: a body read
 * only stamps the time, and the timer, when it fires, re-arms itself for the remainder if there was activity, so a
 * busy stream costs no timer operation per chunk.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/error.h"
#include "tollgate/log.h"
#include "tollgate/mem.h"
#include "tollgate/tgtime.h"
#include "tollgate/upstream.h"

#define MAX_RESPONSE_HEAD (64 * 1024)
#define MAX_RESPONSE_HEADERS 200
#define EASY_POOL_MAX 64

struct st_tg_upstream_t {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    CURL *easy_pool[EASY_POOL_MAX];
    size_t easy_pool_len;
    size_t active;
};

typedef struct {
    uv_poll_t poll;
    curl_socket_t fd;
    tg_upstream_t *u;
} sock_ctx_t;

typedef enum { UR_RUNNING, UR_DONE } ur_state_t;

struct st_tg_upstream_req_t {
    tg_upstream_t *u;
    CURL *easy;
    uv_timer_t timer;
    tg_mem_pool_t pool;
    const tg_upstream_ops_t *ops;
    void *ctx;
    tg_buf_t head; /* raw response head being received */
    bool head_done;
    bool in_callback;
    bool canceled; /* by the user: no more callbacks */
    bool paused;
    bool timed_out;
    bool bad_head;
    bool in_multi;
    uint64_t first_byte_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t last_activity_ms; /* loop time of the last body read */
    char errbuf[CURL_ERROR_SIZE];
};

static void check_multi_info(tg_upstream_t *u);
static void on_req_timer(uv_timer_t *t);

/* ---- request lifetime ------------------------------------------------------------------------------------- */

static void on_req_timer_closed(uv_handle_t *h)
{
    tg_upstream_req_t *r = h->data;
    free(r);
}

/* Detaches the easy handle (back to the pool) and frees the request once its timer has closed. */
static void req_release(tg_upstream_req_t *r)
{
    tg_upstream_t *u = r->u;
    if (r->in_multi) {
        curl_multi_remove_handle(u->multi, r->easy);
        r->in_multi = false;
        --u->active;
    }
    if (u->easy_pool_len < EASY_POOL_MAX) {
        curl_easy_reset(r->easy);
        u->easy_pool[u->easy_pool_len++] = r->easy;
    } else {
        curl_easy_cleanup(r->easy);
    }
    r->easy = NULL;
    tg_buf_free(&r->head);
    tg_mem_clear_pool(&r->pool);
    uv_close((uv_handle_t *)&r->timer, on_req_timer_closed);
}

static void deliver_done(tg_upstream_req_t *r, int err, const char *detail)
{
    uv_timer_stop(&r->timer);
    if (!r->canceled) {
        r->canceled = true; /* nothing after on_done; a cancel from inside it is a no-op */
        r->in_callback = true;
        r->ops->on_done(r->ctx, err, detail);
        r->in_callback = false;
    }
}

/* ---- curl callbacks --------------------------------------------------------------------------------------- */

/* Parses the completed head in r->head and hands it to on_head. Returns false when it is unusable. */
static bool deliver_head(tg_upstream_req_t *r)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    tg_header_t hdrs[MAX_RESPONSE_HEADERS];
    size_t n = 0;
    int64_t content_length = -1;
    bool chunked = false;
    char *p = r->head.base, *end = r->head.base + r->head.len;
    /* skip the status line */
    char *nl = memchr(p, '\n', (size_t)(end - p));
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
        if (colon == NULL || colon == p)
            return false;
        if (n == MAX_RESPONSE_HEADERS)
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
    if (chunked)
        content_length = -1;
    r->head_done = true;
    r->last_activity_ms = uv_now(r->u->loop);
    uv_timer_start(&r->timer, on_req_timer, r->idle_timeout_ms, 0); /* from now on it watches for stalls */
    r->in_callback = true;
    r->ops->on_head(r->ctx, (int)status, hdrs, n, content_length);
    r->in_callback = false;
    return true;
}

static size_t on_curl_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    tg_upstream_req_t *r = userdata;
    size_t len = size * nitems;
    if (r->canceled)
        return 0;
    if (r->head_done)
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
    return r->canceled ? 0 : len;
}

static size_t on_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    tg_upstream_req_t *r = userdata;
    size_t len = size * nmemb;
    if (r->canceled)
        return 0; /* aborts the transfer: curl reports CURLE_WRITE_ERROR and we clean up */
    r->last_activity_ms = uv_now(r->u->loop);
    r->in_callback = true;
    int rc = r->ops->on_body(r->ctx, ptr, len);
    r->in_callback = false;
    if (r->canceled)
        return 0;
    if (rc == TG_E_AGAIN) {
        r->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    return len;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx_t *sc = h->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    tg_upstream_t *u = sc->u;
    curl_multi_socket_action(u->multi, sc->fd, flags, &running);
    check_multi_info(u);
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    tg_upstream_t *u = userp;
    sock_ctx_t *sc = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sc != NULL) {
            uv_poll_stop(&sc->poll);
            uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
            curl_multi_assign(u->multi, s, NULL);
        }
        return 0;
    }
    if (sc == NULL) {
        sc = tg_calloc(1, sizeof(*sc));
        sc->fd = s;
        sc->u = u;
        if (uv_poll_init_socket(u->loop, &sc->poll, s) != 0) {
            free(sc);
            return -1;
        }
        sc->poll.data = sc;
        curl_multi_assign(u->multi, s, sc);
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
    tg_upstream_t *u = t->data;
    int running;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(u);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    tg_upstream_t *u = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_multi_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- results ---------------------------------------------------------------------------------------------- */

static int map_curl_error(tg_upstream_req_t *r, CURLcode code, const char **detail)
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

static void check_multi_info(tg_upstream_t *u)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        tg_upstream_req_t *r;
        CURLcode code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(u->multi, r->easy);
        r->in_multi = false;
        --u->active;
        if (!r->canceled) {
            if (code == CURLE_OK && r->head_done) {
                deliver_done(r, 0, NULL);
            } else {
                const char *detail;
                int err = code == CURLE_OK ? TG_E_UPSTREAM_BAD_RESPONSE : map_curl_error(r, code, &detail);
                if (code == CURLE_OK)
                    detail = "the response had no head";
                deliver_done(r, err, detail);
            }
        }
        req_release(r);
    }
}

/* First-byte and idle timeouts (see the file comment). */
static void on_req_timer(uv_timer_t *t)
{
    tg_upstream_req_t *r = t->data;
    uint64_t now = uv_now(r->u->loop);
    char detail[128];
    if (!r->head_done) {
        snprintf(detail, sizeof(detail), "no response within %llu ms", (unsigned long long)r->first_byte_timeout_ms);
    } else {
        uint64_t due = r->last_activity_ms + r->idle_timeout_ms;
        if (r->paused || due > now) {
            /* activity since the timer was set, or paused on our side: look again later */
            uv_timer_start(&r->timer, on_req_timer, r->paused ? r->idle_timeout_ms : due - now, 0);
            return;
        }
        snprintf(detail, sizeof(detail), "the response stalled for %llu ms", (unsigned long long)r->idle_timeout_ms);
    }
    r->timed_out = true;
    deliver_done(r, TG_E_UPSTREAM_TIMEOUT, detail);
    req_release(r);
}

/* ---- API -------------------------------------------------------------------------------------------------- */

tg_upstream_t *tg_upstream_create(uv_loop_t *loop)
{
    tg_upstream_t *u = tg_calloc(1, sizeof(*u));
    u->loop = loop;
    u->multi = curl_multi_init();
    TG_BUG_ON(u->multi == NULL);
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return u;
}

static void on_multi_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void tg_upstream_destroy(tg_upstream_t *u)
{
    TG_BUG_ON(u->active != 0);
    for (size_t i = 0; i != u->easy_pool_len; ++i)
        curl_easy_cleanup(u->easy_pool[i]);
    curl_multi_cleanup(u->multi); /* closes cached connections, removing their polls through the socket callback */
    uv_close((uv_handle_t *)&u->timer, on_multi_timer_closed);
}

size_t tg_upstream_num_active(const tg_upstream_t *u)
{
    return u->active;
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

tg_upstream_req_t *tg_upstream_start(tg_upstream_t *u, const tg_upstream_spec_t *spec, const tg_upstream_ops_t *ops,
                                     void *ctx)
{
    tg_upstream_req_t *r = tg_calloc(1, sizeof(*r));
    r->u = u;
    r->ops = ops;
    r->ctx = ctx;
    tg_mem_init_pool(&r->pool);
    tg_buf_init(&r->head, MAX_RESPONSE_HEAD);
    uv_timer_init(u->loop, &r->timer);
    r->timer.data = r;
    r->easy = u->easy_pool_len != 0 ? u->easy_pool[--u->easy_pool_len] : curl_easy_init();
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

    uint64_t now = uv_now(u->loop);
    r->first_byte_timeout_ms = spec->first_byte_timeout_ms;
    r->idle_timeout_ms = spec->idle_timeout_ms;
    r->last_activity_ms = now;
    uv_timer_start(&r->timer, on_req_timer, spec->first_byte_timeout_ms, 0);

    CURLMcode mc = curl_multi_add_handle(u->multi, e);
    TG_BUG_ON(mc != CURLM_OK);
    r->in_multi = true;
    ++u->active;
    return r;
}

void tg_upstream_resume(tg_upstream_req_t *r)
{
    if (!r->paused || r->canceled)
        return;
    r->paused = false;
    r->last_activity_ms = uv_now(r->u->loop);
    /* may deliver the held bytes right away, from inside this call */
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    check_multi_info(r->u);
}

void tg_upstream_cancel(tg_upstream_req_t *r)
{
    if (r->canceled && !r->in_callback)
        return;
    r->canceled = true;
    uv_timer_stop(&r->timer);
    if (r->in_callback)
        return; /* the curl callback returns an error; check_multi_info releases it */
    req_release(r);
}
