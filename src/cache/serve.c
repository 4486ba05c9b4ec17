/*
 * The response cache on the request path (cacheserve.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/cacheserve.h"
#include "tollgate/error.h"
#include "tollgate/log.h"
#include "tollgate/recorder.h"
#include "tollgate/tgtime.h"

#define MAX_CUSTOM_KEY 1024
#define REPLAY_CHUNK (64u << 10)

/* The header under its current name or its deprecated one (cf-skip-cache, cf-cache-ttl). */
static const tg_header_t *find2(tg_req_t *req, const char *name, const char *old)
{
    const tg_header_t *h = tg_http_find_header(req, name, strlen(name));
    return h != NULL ? h : tg_http_find_header(req, old, strlen(old));
}

/* The provider credential headers, concatenated (they enter the key's digest only). */
static tg_iovec_t credential_of(tg_req_t *req)
{
    static const char *const names[] = {"authorization", "x-api-key", "api-key", "x-goog-api-key"};
    tg_buf_t b;
    tg_buf_init(&b, 1u << 20);
    for (size_t i = 0; i != TG_ARRAY_SIZE(names); ++i) {
        const tg_header_t *h = tg_http_find_header(req, names[i], strlen(names[i]));
        if (h != NULL) {
            tg_buf_append(&b, names[i], strlen(names[i]) + 1);
            tg_buf_append(&b, h->value.base, h->value.len);
            tg_buf_append(&b, "\n", 1);
        }
    }
    if (b.len == 0)
        return tg_iov("", 0);
    char *p = tg_mem_alloc_pool(&req->pool, b.len);
    memcpy(p, b.base, b.len);
    tg_iovec_t v = tg_iov(p, b.len);
    tg_buf_free(&b);
    return v;
}

/* ---- hits ------------------------------------------------------------------------------------------------- */

typedef struct {
    tg_req_t *req;
    tg_cache_entry_t *e;
    size_t off;
} replay_t;

static void replay_pump(replay_t *rp)
{
    tg_req_t *req = rp->req;
    while (rp->off < rp->e->body_len) {
        if (tg_http_want_pause(req))
            return; /* on_drain continues */
        size_t n = TG_MIN(rp->e->body_len - rp->off, (size_t)REPLAY_CHUNK);
        const char *p = rp->e->body + rp->off;
        rp->off += n;
        if (req->recorder != NULL)
            tg_recorder_response_body(req->recorder, p, n);
        if (tg_http_send(req, p, n) != 0)
            return; /* on_abort follows */
    }
    tg_cache_entry_release(rp->e);
    rp->e = NULL;
    tg_http_end_response(req);
}

static void replay_drain(tg_req_t *req)
{
    replay_pump(req->gen_data);
}

static void replay_abort(tg_req_t *req)
{
    replay_t *rp = req->gen_data;
    tg_cache_entry_release(rp->e);
    rp->e = NULL;
}

static const tg_http_generator_ops_t replay_ops = {replay_drain, replay_abort};

/* "name: value\n" lines back into headers (pool). */
static size_t parse_head(tg_req_t *req, const char *p, size_t len, tg_header_t **out, size_t extra)
{
    size_t lines = 0;
    for (size_t i = 0; i != len; ++i)
        lines += p[i] == '\n';
    tg_header_t *h = tg_mem_alloc_pool(&req->pool, sizeof(*h) * (lines + extra));
    size_t n = 0;
    const char *end = p + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon != NULL) {
            const char *v = colon + 1 < eol && colon[1] == ' ' ? colon + 2 : colon + 1;
            h[n++] = (tg_header_t){tg_iov(p, (size_t)(colon - p)), tg_iov(v, (size_t)(eol - v))};
        }
        p = eol + 1;
    }
    *out = h;
    return n;
}

static void serve_hit(tg_req_t *req, tg_worker_t *w, tg_cache_entry_t *e)
{
    tg_cache_count(w->process->cache, e->account, e->gateway, TG_CACHE_HIT, 0);
    tg_header_t *h;
    size_t n = parse_head(req, e->head, e->head_len, &h, 3);
    tg_recorder_t *rc = req->recorder;
    if (rc != NULL) {
        tg_recorder_set_cached(rc);
        tg_recorder_response_head(rc, h, n);
    }
    h[n++] = (tg_header_t){tg_iov(TG_LIT("cf-aig-cache-status")), tg_iov(TG_LIT("HIT"))};
    if (rc != NULL && rc->rec != NULL)
        h[n++] = (tg_header_t){tg_iov(TG_LIT("cf-aig-log-id")), tg_iov(rc->rec->id, TG_ULID_LEN)};
    if (rc != NULL && rc->event_id != NULL)
        h[n++] = (tg_header_t){tg_iov(TG_LIT("cf-aig-event-id")), tg_iov_str(rc->event_id)};
    replay_t *rp = tg_mem_alloc_pool(&req->pool, sizeof(*rp));
    *rp = (replay_t){req, e, 0};
    tg_http_set_generator(req, &replay_ops, rp);
    tg_http_start_response(req, e->status, h, n, e->stream ? -1 : (int64_t)e->body_len);
    replay_pump(rp);
}

/* A miss: the provider is asked, and the answer collected for the store. */
static void go_upstream(tg_req_t *req, tg_worker_t *w, const tg_proxy_target_t *target, tg_cache_fill_t *fill)
{
    tg_cache_count(fill->cache, fill->account, fill->gateway, TG_CACHE_MISS, 0);
    tg_proxy_handle(req, w, target, fill);
}

/* ---- lookups on disk (threadpool) ------------------------------------------------------------------------- */

typedef struct {
    uv_work_t work;
    tg_cache_t *cache;
    tg_cache_key_t key;
    uint64_t now_ms;
    tg_cache_entry_t *found;
    /* the request side; `req` is NULL once the client left */
    tg_req_t *req;
    tg_worker_t *w;
    tg_proxy_target_t target;
    tg_cache_fill_t *fill;
} lookup_t;

static void lookup_abort(tg_req_t *req)
{
    lookup_t *lk = req->gen_data;
    lk->req = NULL; /* the lookup finishes on its own and frees itself */
}

static const tg_http_generator_ops_t lookup_ops = {NULL, lookup_abort};

static void lookup_run(uv_work_t *wk)
{
    lookup_t *lk = wk->data;
    lk->found = tg_cache_get_disk(lk->cache, &lk->key, lk->now_ms);
}

static void lookup_done(uv_work_t *wk, int status)
{
    (void)status;
    lookup_t *lk = wk->data;
    tg_req_t *req = lk->req;
    if (req == NULL) {
        tg_cache_entry_release(lk->found);
        free(lk);
        return;
    }
    tg_http_set_generator(req, NULL, NULL);
    if (lk->found != NULL)
        serve_hit(req, lk->w, lk->found);
    else
        go_upstream(req, lk->w, &lk->target, lk->fill);
    free(lk);
}

/* ---- routing ---------------------------------------------------------------------------------------------- */

static int bad_header(tg_req_t *req, const char *what)
{
    tg_http_send_error(req, TG_E_BAD_HEADER, "%s", what);
    return -1;
}

void tg_cache_route(tg_req_t *req, tg_worker_t *w, const tg_proxy_target_t *target)
{
    const tg_gateway_t *gw = target->gateway;
    const tg_header_t *h;
    bool skip = false;
    if ((h = find2(req, "cf-aig-skip-cache", "cf-skip-cache")) != NULL) {
        tg_iovec_t v = tg_iov_trim(h->value);
        if (tg_iov_eq_ci(v, TG_LIT("true")) || tg_iov_eq(v, TG_LIT("1")))
            skip = true;
        else if (!tg_iov_eq_ci(v, TG_LIT("false")) && !tg_iov_eq(v, TG_LIT("0"))) {
            bad_header(req, "cf-aig-skip-cache must be true or false");
            return;
        }
    }
    uint64_t ttl = gw->cache_ttl;
    if ((h = find2(req, "cf-aig-cache-ttl", "cf-cache-ttl")) != NULL) {
        tg_iovec_t v = tg_iov_trim(h->value);
        if (tg_parse_u64(v.base, v.len, TG_CACHE_TTL_MAX, &ttl) != 0 || ttl < TG_CACHE_TTL_MIN) {
            bad_header(req, "cf-aig-cache-ttl must be a whole number of seconds from 60 to 2592000 (30 days)");
            return;
        }
    }
    tg_iovec_t custom = tg_iov("", 0);
    if ((h = tg_http_find_header(req, TG_LIT("cf-aig-cache-key"))) != NULL) {
        custom = tg_iov_trim(h->value);
        if (custom.len == 0 || custom.len > MAX_CUSTOM_KEY) {
            bad_header(req, "cf-aig-cache-key must be 1 to 1024 bytes long");
            return;
        }
        if (ttl == 0)
            ttl = TG_CACHE_TTL_CUSTOM_KEY;
    }
    bool cacheable_method = tg_iov_eq(req->method_name, TG_LIT("POST")) || tg_iov_eq(req->method_name, TG_LIT("GET"));
    tg_cache_t *cache = w->process->cache;
    if (ttl == 0 || !cacheable_method || cache == NULL) {
        tg_proxy_handle(req, w, target, NULL);
        return;
    }

    tg_cache_fill_t *fill = tg_mem_alloc_pool(&req->pool, sizeof(*fill));
    memset(fill, 0, sizeof(*fill));
    fill->cache = cache;
    fill->account = gw->account;
    fill->gateway = gw->id;
    fill->ttl_ms = ttl * 1000;
    fill->max_entry = req->config->cache_max_entry;
    tg_buf_init(&fill->head, 64u << 10);
    tg_buf_init(&fill->body, fill->max_entry);
    tg_cache_key_parts_t parts = {
        .account = gw->account,
        .gateway = gw->id,
        .provider = target->provider,
        .method = req->method_name,
        .path = target->native_path,
        .query = req->query,
        .credential = custom.len == 0 ? credential_of(req) : tg_iov("", 0),
        .body = req->body,
        .stream = req->recorder != NULL && req->recorder->stream,
    };
    tg_cache_key(&parts, custom, &fill->key);
    if (skip) {
        go_upstream(req, w, target, fill); /* fetched afresh, and the fresh answer stored */
        return;
    }
    uint64_t now = tg_now_unix_ms();
    tg_cache_entry_t *e = tg_cache_get_memory(cache, &fill->key, now);
    if (e != NULL) {
        serve_hit(req, w, e);
        return;
    }
    if (!tg_cache_has_disk(cache)) {
        go_upstream(req, w, target, fill);
        return;
    }
    lookup_t *lk = tg_malloc(sizeof(*lk));
    memset(lk, 0, sizeof(*lk));
    lk->work.data = lk;
    lk->cache = cache;
    lk->key = fill->key;
    lk->now_ms = now;
    lk->req = req;
    lk->w = w;
    lk->target = *target;
    lk->fill = fill;
    tg_http_set_generator(req, &lookup_ops, lk);
    if (uv_queue_work(&w->loop, &lk->work, lookup_run, lookup_done) != 0) {
        tg_http_set_generator(req, NULL, NULL);
        free(lk);
        go_upstream(req, w, target, fill);
    }
}

/* ---- misses: collecting the answer ------------------------------------------------------------------------ */

static bool stored_header(tg_iovec_t name)
{
    static const char *const dropped[] = {"content-length", "transfer-encoding", "connection", "keep-alive",
                                          "set-cookie", "date", "trailer", "upgrade", NULL};
    for (const char *const *d = dropped; *d != NULL; ++d)
        if (tg_iov_eq_ci(name, *d, strlen(*d)))
            return false;
    return !tg_iov_prefix_ci(name, TG_LIT("cf-aig-"));
}

static void fill_free(tg_cache_fill_t *f)
{
    f->active = false;
    tg_buf_free(&f->head);
    tg_buf_free(&f->body);
}

void tg_cache_fill_head(tg_cache_fill_t *f, int status, const tg_header_t *headers, size_t n)
{
    if (status < 200 || status > 299)
        return; /* errors are never stored */
    f->status = status;
    f->active = true;
    for (size_t i = 0; i != n && f->active; ++i) {
        tg_iovec_t name = headers[i].name, value = tg_iov_trim(headers[i].value);
        if (tg_iov_eq_ci(name, TG_LIT("content-encoding")) && value.len != 0 &&
            !tg_iov_eq_ci(value, TG_LIT("identity")))
            f->active = false; /* asked for identity; a provider that compresses anyway is not cached */
        else if (tg_iov_eq_ci(name, TG_LIT("content-type")) && tg_iov_prefix_ci(value, TG_LIT("text/event-stream")))
            f->stream = true;
        if (!stored_header(name))
            continue;
        if (tg_buf_append(&f->head, name.base, name.len) != 0 || tg_buf_append(&f->head, ": ", 2) != 0 ||
            tg_buf_append(&f->head, headers[i].value.base, headers[i].value.len) != 0 ||
            tg_buf_append(&f->head, "\n", 1) != 0)
            f->active = false;
    }
    if (!f->active)
        fill_free(f);
}

void tg_cache_fill_body(tg_cache_fill_t *f, const char *p, size_t n)
{
    if (f->active && tg_buf_append(&f->body, p, n) != 0)
        fill_free(f); /* over cache_max_entry: relayed, not stored */
}

bool tg_cache_stream_has_error(const char *body, size_t len)
{
    static const char *const marks[] = {"event: error", "event:error", "data: {\"error\"", "data:{\"error\"",
                                        "\"type\":\"error\"", "\"type\": \"error\""};
    for (size_t i = 0; i != TG_ARRAY_SIZE(marks); ++i)
        if (memmem(body, len, marks[i], strlen(marks[i])) != NULL)
            return true;
    return false;
}

void tg_cache_fill_end(tg_cache_fill_t *f, bool complete)
{
    if (f->active && complete && !(f->stream && tg_cache_stream_has_error(f->body.base, f->body.len))) {
        uint64_t now = tg_now_unix_ms();
        tg_cache_entry_t *e =
            tg_cache_entry_new(&f->key, f->account, f->gateway, now, now + f->ttl_ms, f->status, f->stream,
                               tg_iov(f->head.base, f->head.len), tg_iov(f->body.base, f->body.len));
        tg_cache_count(f->cache, f->account, f->gateway, TG_CACHE_STORED, e->size);
        tg_cache_put(f->cache, e);
    }
    fill_free(f);
}
