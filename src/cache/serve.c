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

/* The provider credential headers, concatenated in the request pool (they enter the key's digest only). */
static tg_iovec_t credential_of(tg_req_t *req)
{
    static const char *const names[] = {"authorization", "x-api-key", "api-key", "x-goog-api-key"};
    const tg_header_t *found[TG_ARRAY_SIZE(names)];
    size_t len = 0;
    for (size_t i = 0; i != TG_ARRAY_SIZE(names); ++i)
        if ((found[i] = tg_http_find_header(req, names[i], strlen(names[i]))) != NULL)
            len += strlen(names[i]) + 1 + found[i]->value.len + 1;
    if (len == 0)
        return tg_iov("", 0);
    char *out = tg_mem_alloc_pool(&req->pool, len), *p = out;
    for (size_t i = 0; i != TG_ARRAY_SIZE(names); ++i) {
        if (found[i] == NULL)
            continue;
        size_t nl = strlen(names[i]) + 1; /* with its NUL: name and value cannot run into each other */
        memcpy(p, names[i], nl);
        memcpy(p + nl, found[i]->value.base, found[i]->value.len);
        p += nl + found[i]->value.len;
        *p++ = '\n';
    }
    return tg_iov(out, len);
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
    tg_usage_t u;
    const char *model;
    if (req->recorder != NULL && tg_recorder_usage_read(req->recorder, &u, &model))
        tg_cache_entry_set_usage(rp->e, &u, model); /* the next logged hit reads it from here */
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
    tg_header_t *h = tg_mem_alloc_pool(&req->pool, sizeof(*h) * (lines + 1 + extra)); /* a last line without '\n' */
    size_t n = 0;
    const char *end = p + len;
    while (tg_headtext_next(&p, end, &h[n].name, &h[n].value))
        ++n;
    *out = h;
    return n;
}

/* The head of an answer this request did not fetch itself (a hit, or a wait on an identical request): the stored
 * headers, the cache status, the log and event ids; the recorder learns that it costs nothing. */
static void start_answer(tg_req_t *req, tg_cache_entry_t *e, int status, const char *head, size_t head_len, bool hit,
                         int64_t content_length)
{
    tg_header_t *h;
    size_t n = parse_head(req, head, head_len, &h, 1);
    tg_recorder_t *rc = req->recorder;
    if (rc != NULL) {
        tg_recorder_set_cached(rc);
        if (rc->rec != NULL) { /* tokens for the record; without one there is nothing to count (no tokens spent) */
            tg_usage_t u;
            const char *model;
            if (e != NULL && tg_cache_entry_get_usage(e, &u, &model))
                tg_recorder_response_head_given(rc, h, n, &u, model);
            else
                tg_recorder_response_head(rc, h, n);
        }
    }
    h[n++] = (tg_header_t){tg_iov(TG_LIT("cf-aig-cache-status")), hit ? tg_iov(TG_LIT("HIT")) : tg_iov(TG_LIT("MISS"))};
    tg_http_start_response(req, status, h, n, content_length);
}

static void serve_hit(tg_req_t *req, tg_worker_t *w, tg_cache_entry_t *e)
{
    tg_cache_count(w->process->cache, e->account, e->gateway, TG_CACHE_HIT, 0);
    replay_t *rp = tg_mem_alloc_pool(&req->pool, sizeof(*rp));
    *rp = (replay_t){req, e, 0};
    tg_http_set_generator(req, &replay_ops, rp);
    start_answer(req, e, e->status, e->head, e->head_len, true, e->stream ? -1 : (int64_t)e->body_len);
    replay_pump(rp);
}

/* ---- coalescing: a flight is one upstream call and the requests waiting on it -------------------------------- */

enum { F_PENDING, F_HEAD, F_DONE, F_FAILED };

typedef struct st_tg_cache_waiter_t tg_cache_waiter_t;

/* Everything in a flight is guarded by the cache's flight lock. */
struct st_tg_cache_flight_t {
    tg_cache_t *cache;
    tg_cache_key_t key;
    unsigned refs; /* the leader's fill, and each waiter */
    int state;
    bool in_table, storable, stream;
    int status;
    tg_buf_t head, body;
    tg_cache_waiter_t *waiters;
};

struct st_tg_cache_waiter_t {
    tg_cache_waiter_t *next;       /* in the flight's list */
    tg_cache_waiter_t *next_local; /* in the worker's list */
    tg_req_t *req;
    tg_worker_t *w;
    tg_cache_flight_t *f;
    size_t sent;
    bool started;
};

static void flight_unref(tg_cache_flight_t *f) /* under the lock */
{
    if (--f->refs != 0)
        return;
    tg_buf_free(&f->head);
    tg_buf_free(&f->body);
    free(f);
}

static void flight_wake(tg_cache_flight_t *f) /* under the lock */
{
    for (tg_cache_waiter_t *wt = f->waiters; wt != NULL; wt = wt->next)
        uv_async_send(&wt->w->cache_wake); /* several sends before the wakeup runs make one */
}

/* Takes `wt` out of its flight and its worker's list. Worker thread; takes the lock. */
static void waiter_leave(tg_cache_waiter_t *wt)
{
    tg_cache_t *c = wt->f->cache;
    tg_cache_flights_lock(c);
    for (tg_cache_waiter_t **pp = &wt->f->waiters; *pp != NULL; pp = &(*pp)->next)
        if (*pp == wt) {
            *pp = wt->next;
            break;
        }
    flight_unref(wt->f);
    tg_cache_flights_unlock(c);
    for (tg_cache_waiter_t **pp = &wt->w->cache_waiters; *pp != NULL; pp = &(*pp)->next_local)
        if (*pp == wt) {
            *pp = wt->next_local;
            break;
        }
    wt->f = NULL;
}

/* Sends a waiter what its flight has that it has not sent yet, and ends it when the flight has ended. The flight's
 * lock is held only to look at its state and copy a slice out (its body may move as the leader appends): sending
 * happens outside it, so one slow waiter never holds up the leaders on other workers. */
static void waiter_pump(tg_cache_waiter_t *wt)
{
    tg_req_t *req = wt->req;
    tg_cache_flight_t *f = wt->f;
    tg_cache_t *c = f->cache;
    enum { GO_ON, END, CUT, FAIL } outcome = GO_ON;
    tg_cache_flights_lock(c);
    int state = f->state, status = f->status;
    bool has_head = f->head.base != NULL;
    size_t body_len = f->body.len;
    tg_cache_flights_unlock(c);
    if (!wt->started && state != F_PENDING && has_head) {
        /* the head is complete and never changes once the state left F_PENDING; the waiter's reference keeps it */
        start_answer(req, NULL, status, f->head.base, f->head.len, status >= 200 && status <= 299,
                     state == F_DONE ? (int64_t)body_len : -1);
        wt->started = true;
    }
    if (!wt->started) {
        if (state == F_FAILED || state == F_DONE)
            outcome = FAIL; /* the call failed before any answer came */
    } else {
        char chunk[16384];
        bool gone = false;
        while (wt->sent < body_len && !tg_http_want_pause(req) && !gone) {
            size_t n = TG_MIN(body_len - wt->sent, sizeof(chunk));
            tg_cache_flights_lock(c);
            memcpy(chunk, f->body.base + wt->sent, n);
            tg_cache_flights_unlock(c);
            wt->sent += n;
            if (req->recorder != NULL)
                tg_recorder_response_body(req->recorder, chunk, n);
            gone = tg_http_send(req, chunk, n) != 0; /* on_abort follows */
        }
        if (!gone && wt->sent == body_len && state == F_DONE)
            outcome = END;
        else if (!gone && wt->sent == body_len && state == F_FAILED)
            outcome = CUT;
    }
    if (outcome == GO_ON)
        return; /* more comes with the next wakeup, or on_drain */
    waiter_leave(wt);
    tg_http_set_generator(req, NULL, NULL);
    if (outcome == END) {
        tg_http_end_response(req);
    } else if (outcome == CUT) {
        req->log_note = "coalesced-truncated";
        tg_http_abort_response(req);
    } else {
        tg_http_send_error(req, TG_E_UPSTREAM_UNREACHABLE,
                           "The identical request this one waited for failed before the provider answered");
    }
}

static void waiter_drain(tg_req_t *req)
{
    waiter_pump(req->gen_data);
}

static void waiter_abort(tg_req_t *req)
{
    waiter_leave(req->gen_data);
}

static const tg_http_generator_ops_t waiter_ops = {waiter_drain, waiter_abort};

void tg_cache_on_wake(uv_async_t *a)
{
    tg_worker_t *w = a->data;
    for (tg_cache_waiter_t *wt = w->cache_waiters, *next; wt != NULL; wt = next) {
        next = wt->next_local; /* the pump may end it */
        waiter_pump(wt);
    }
}

/*
 * A miss: joins the identical request already calling the provider (when `coalesce`), or calls the provider with
 * a fresh flight that later identical requests can join.
 */
static void go_upstream(tg_req_t *req, tg_worker_t *w, const tg_proxy_target_t *target, tg_cache_fill_t *fill,
                        bool coalesce)
{
    tg_cache_t *c = fill->cache;
    tg_cache_flights_lock(c);
    tg_cache_flight_t *f = coalesce ? tg_cache_flight_get(c, &fill->key) : NULL;
    if (f == NULL && coalesce) {
        /* an identical request may have completed (and stored) while this one looked on disk: a flight leaves the
         * table only after its entry is in memory, so under the lock one of the two is found */
        tg_cache_entry_t *e = tg_cache_get_memory(c, &fill->key, tg_now_unix_ms());
        if (e != NULL) {
            tg_cache_flights_unlock(c);
            serve_hit(req, w, e);
            return;
        }
    }
    if (f != NULL) {
        tg_cache_waiter_t *wt = tg_mem_alloc_pool(&req->pool, sizeof(*wt));
        *wt = (tg_cache_waiter_t){.next = f->waiters, .req = req, .w = w, .f = f};
        f->waiters = wt;
        f->refs++;
        tg_cache_flights_unlock(c);
        wt->next_local = w->cache_waiters;
        w->cache_waiters = wt;
        tg_cache_count(c, fill->account, fill->gateway, TG_CACHE_COALESCED, 0);
        tg_http_set_generator(req, &waiter_ops, wt);
        waiter_pump(wt);
        return;
    }
    f = tg_calloc(1, sizeof(*f));
    f->cache = c;
    f->key = fill->key;
    f->refs = 1;
    f->state = F_PENDING;
    tg_buf_init(&f->head, 64u << 10);
    tg_buf_init(&f->body, fill->max_entry);
    if (coalesce) {
        tg_cache_flight_add(c, &fill->key, f);
        f->in_table = true;
    }
    tg_cache_flights_unlock(c);
    fill->flight = f;
    tg_cache_count(c, fill->account, fill->gateway, TG_CACHE_MISS, 0);
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
        go_upstream(req, lk->w, &lk->target, lk->fill, true);
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
    tg_cache_key_parts_t parts = {
        .account = gw->account,
        .gateway = gw->id,
        .provider = target->provider,
        .method = req->method_name,
        .path = target->cache_path.base != NULL ? target->cache_path : target->native_path,
        .query = req->query,
        .credential = custom.len == 0 ? credential_of(req) : tg_iov("", 0),
        .body = req->body,
        .stream = req->recorder != NULL && req->recorder->stream,
    };
    tg_cache_key(&parts, custom, &fill->key);
    if (skip) {
        go_upstream(req, w, target, fill, false); /* fetched afresh, and the fresh answer stored */
        return;
    }
    uint64_t now = tg_now_unix_ms();
    tg_cache_entry_t *e = tg_cache_get_memory(cache, &fill->key, now);
    if (e != NULL) {
        serve_hit(req, w, e);
        return;
    }
    if (!tg_cache_has_disk(cache)) {
        go_upstream(req, w, target, fill, true);
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
        go_upstream(req, w, target, fill, true);
    }
}

/* ---- misses: collecting the answer ------------------------------------------------------------------------ */

/* What a hit replays: the provider's headers except the hop-by-hop ones the proxy never relays, framing, cookies,
 * the date, and the gateway's own cf-aig-* headers. */
static bool stored_header(tg_iovec_t name)
{
    return !tg_proxy_is_response_header_dropped(name) && !tg_iov_eq_ci(name, TG_LIT("set-cookie")) &&
           !tg_iov_eq_ci(name, TG_LIT("date")) && !tg_iov_prefix_ci(name, TG_LIT("cf-aig-"));
}

void tg_cache_fill_head(tg_cache_fill_t *f, int status, const tg_header_t *headers, size_t n)
{
    tg_cache_flight_t *fl = f->flight;
    tg_cache_flights_lock(f->cache);
    fl->status = status;
    fl->storable = status >= 200 && status <= 299; /* errors are never stored, only handed to waiters */
    for (size_t i = 0; i != n; ++i) {
        tg_iovec_t name = headers[i].name, value = tg_iov_trim(headers[i].value);
        if (tg_iov_eq_ci(name, TG_LIT("content-encoding")) && value.len != 0 &&
            !tg_iov_eq_ci(value, TG_LIT("identity")))
            fl->storable = false; /* asked for identity; a provider that compresses anyway is not cached */
        else if (tg_iov_eq_ci(name, TG_LIT("content-type")) && tg_iov_prefix_ci(value, TG_LIT("text/event-stream")))
            fl->stream = true;
        if (!stored_header(name))
            continue;
        if (tg_buf_append(&fl->head, name.base, name.len) != 0 || tg_buf_append(&fl->head, ": ", 2) != 0 ||
            tg_buf_append(&fl->head, headers[i].value.base, headers[i].value.len) != 0 ||
            tg_buf_append(&fl->head, "\n", 1) != 0)
            fl->storable = false;
    }
    if (fl->head.base == NULL)
        tg_buf_reserve(&fl->head, 1); /* a head with no stored header is still a head */
    fl->state = F_HEAD;
    flight_wake(fl);
    tg_cache_flights_unlock(f->cache);
}

/* The flight cannot keep the whole answer: no one else joins, waiters get what there is and then a cut. */
static void flight_overflow(tg_cache_flight_t *fl) /* under the lock */
{
    fl->storable = false;
    fl->state = F_FAILED;
    if (fl->in_table) {
        tg_cache_flight_del(fl->cache, &fl->key, fl);
        fl->in_table = false;
    }
}

void tg_cache_fill_body(tg_cache_fill_t *f, const char *p, size_t n)
{
    tg_cache_flight_t *fl = f->flight;
    tg_cache_flights_lock(f->cache);
    if (fl->state == F_HEAD) {
        if (tg_buf_append(&fl->body, p, n) != 0)
            flight_overflow(fl); /* over cache_max_entry: relayed to the leader's client, not stored */
        flight_wake(fl);
    }
    tg_cache_flights_unlock(f->cache);
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
    tg_cache_flight_t *fl = f->flight;
    if (fl == NULL)
        return;
    f->flight = NULL;
    tg_cache_flights_lock(f->cache);
    bool ok = complete && fl->state == F_HEAD;
    fl->state = ok ? F_DONE : F_FAILED;
    if (ok && fl->storable && !(fl->stream && tg_cache_stream_has_error(fl->body.base, fl->body.len))) {
        uint64_t now = tg_now_unix_ms();
        tg_cache_entry_t *e =
            tg_cache_entry_new(&f->key, f->account, f->gateway, now, now + f->ttl_ms, fl->status, fl->stream,
                               tg_iov(fl->head.base, fl->head.len), tg_iov(fl->body.base, fl->body.len));
        if (f->has_usage)
            tg_cache_entry_set_usage(e, &f->usage, f->usage_model);
        tg_cache_count(f->cache, f->account, f->gateway, TG_CACHE_STORED, e->size);
        tg_cache_put(f->cache, e); /* in memory before the flight leaves the table (go_upstream relies on it) */
    }
    if (fl->in_table) { /* from now on an identical request finds the entry, or calls the provider itself */
        tg_cache_flight_del(f->cache, &f->key, fl);
        fl->in_table = false;
    }
    flight_wake(fl);
    flight_unref(fl);
    tg_cache_flights_unlock(f->cache);
}
