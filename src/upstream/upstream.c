/*
 * The upstream client's front: picks a backend for each request (see internal.h) and implements what both share,
 * once: the callback discipline of upstream.h (nothing after on_done or cancel; cancel allowed from inside a
 * callback) and the first-byte and idle timeouts.
 *
 * Timeouts share one uv_timer per request, checked lazily: a body read only stamps the time, and the timer, when
 * it fires, re-arms itself for the remainder if there was activity, so a busy stream costs no timer operation per
 * chunk. Time spent paused (our client not reading) does not count as upstream idleness.
 */
#include <stdio.h>
#include <stdlib.h>
#include "curlapi.h"
#include "internal.h"
#include "tollgate/error.h"

/* ---- the request base ------------------------------------------------------------------------------------- */

static void on_req_timer(uv_timer_t *t)
{
    tg_upstream_req_t *r = t->data;
    uint64_t now = uv_now(r->u->loop);
    char detail[128];
    if (r->deferred_err != 0) {
        upstream_req_done(r, r->deferred_err, r->deferred_detail);
        r->backend->cancel(r);
        return;
    }
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
    upstream_req_done(r, TG_E_UPSTREAM_TIMEOUT, detail);
    r->backend->cancel(r);
}

void upstream_req_init(tg_upstream_req_t *r, tg_upstream_t *u, const upstream_backend_t *backend,
                       const tg_upstream_spec_t *spec, const tg_upstream_ops_t *ops, void *ctx)
{
    r->backend = backend;
    r->u = u;
    r->ops = ops;
    r->ctx = ctx;
    r->first_byte_timeout_ms = spec->first_byte_timeout_ms;
    r->idle_timeout_ms = spec->idle_timeout_ms;
    r->last_activity_ms = uv_now(u->loop);
    uv_timer_init(u->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_req_timer, spec->first_byte_timeout_ms, 0);
    ++u->active;
}

void upstream_req_head(tg_upstream_req_t *r, int status, const tg_header_t *headers, size_t n, int64_t content_length)
{
    if (r->finished)
        return;
    r->head_done = true;
    r->last_activity_ms = uv_now(r->u->loop);
    uv_timer_start(&r->timer, on_req_timer, r->idle_timeout_ms, 0);
    r->in_callback = true;
    r->ops->on_head(r->ctx, status, headers, n, content_length);
    r->in_callback = false;
}

int upstream_req_body(tg_upstream_req_t *r, const char *p, size_t n)
{
    if (r->finished)
        return 0;
    r->last_activity_ms = uv_now(r->u->loop);
    r->in_callback = true;
    int rc = r->ops->on_body(r->ctx, p, n);
    r->in_callback = false;
    if (r->finished)
        return 0;
    if (rc == TG_E_AGAIN) {
        r->paused = true;
        return TG_E_AGAIN;
    }
    return 0;
}

void upstream_req_done(tg_upstream_req_t *r, int err, const char *detail)
{
    uv_timer_stop(&r->timer);
    if (r->finished)
        return;
    r->finished = true;
    r->in_callback = true;
    r->ops->on_done(r->ctx, err, detail);
    r->in_callback = false;
}

void upstream_req_fail_deferred(tg_upstream_req_t *r, int err, const char *detail)
{
    r->deferred_err = err;
    snprintf(r->deferred_detail, sizeof(r->deferred_detail), "%s", detail);
    uv_timer_start(&r->timer, on_req_timer, 0, 0);
}

static void on_req_timer_closed(uv_handle_t *h)
{
    free(h->data); /* the base is the first member of the backend's allocation */
}

void upstream_req_release(tg_upstream_req_t *r)
{
    TG_BUG_ON(r->released);
    r->released = true;
    --r->u->active;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_req_timer_closed);
}

/* ---- API -------------------------------------------------------------------------------------------------- */

/* Is any proxy variable set that libcurl would apply to an http:// URL? Then http:// goes through curl too. */
static bool proxy_env_for_http(void)
{
    static const char *const vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(vars); ++i) {
        const char *v = getenv(vars[i]);
        if (v != NULL && *v != '\0')
            return true;
    }
    return false;
}

tg_upstream_t *tg_upstream_create(uv_loop_t *loop)
{
    tg_upstream_t *u = tg_calloc(1, sizeof(*u));
    u->loop = loop;
    u->curl = upstream_curl_create(u);
    u->h1 = upstream_h1_create(u);
    u->h1_enabled = !proxy_env_for_http();
    return u;
}

void tg_upstream_destroy(tg_upstream_t *u)
{
    if (u == NULL)
        return;
    TG_BUG_ON(u->active != 0);
    upstream_curl_destroy(u->curl);
    upstream_h1_destroy(u->h1);
    free(u);
}

const char *tg_upstream_curl_version(void)
{
    const char *why;
    return tg_curl_load(&why) == 0 ? curl_version() : why;
}

/* A request that can only fail (libcurl could not be loaded): it reports the error from the loop. */
static void failed_release(tg_upstream_req_t *r)
{
    upstream_req_release(r);
}

static void failed_resume(tg_upstream_req_t *r)
{
    (void)r;
}

static const upstream_backend_t failed_backend = {failed_resume, failed_release};

tg_upstream_req_t *tg_upstream_start(tg_upstream_t *u, const tg_upstream_spec_t *spec, const tg_upstream_ops_t *ops,
                                     void *ctx)
{
    tg_upstream_req_t *r = NULL;
    if (u->h1_enabled && spec->fast_http1)
        r = upstream_h1_start(u->h1, spec, ops, ctx);
    if (r != NULL)
        return r;
    const char *why;
    if (tg_curl_load(&why) != 0) {
        r = tg_calloc(1, sizeof(*r));
        upstream_req_init(r, u, &failed_backend, spec, ops, ctx);
        upstream_req_fail_deferred(r, TG_E_UPSTREAM_UNREACHABLE, why);
        return r;
    }
    return upstream_curl_start(u->curl, spec, ops, ctx);
}

void tg_upstream_resume(tg_upstream_req_t *r)
{
    if (!r->paused || r->finished)
        return;
    r->paused = false;
    r->last_activity_ms = uv_now(r->u->loop);
    r->backend->resume(r);
}

void tg_upstream_cancel(tg_upstream_req_t *r)
{
    if (r->finished)
        return; /* after on_done, or a second cancel */
    r->finished = true;
    uv_timer_stop(&r->timer);
    if (r->in_callback) {
        r->cancel_pending = true; /* the backend sees upstream_req_over() when the callback returns */
        return;
    }
    r->backend->cancel(r);
}
