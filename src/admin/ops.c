/*
 * /healthz, /readyz and /metrics. The metrics handler sums every worker's shard; the shards are written by their
 * own workers with relaxed atomics, so a scrape from any worker reads consistent-enough counters without a lock.
 */
#include "tollgate/admin.h"
#include "tollgate/error.h"

static bool method_ok(tg_req_t *req)
{
    if (tg_iov_eq(req->method_name, TG_LIT("GET")) || tg_iov_eq(req->method_name, TG_LIT("HEAD")))
        return true;
    tg_http_add_resp_header(req, tg_iov(TG_LIT("allow")), tg_iov(TG_LIT("GET, HEAD")));
    tg_http_send_error(req, TG_E_METHOD_NOT_ALLOWED, "%.*s is for GET and HEAD", (int)req->path.len, req->path.base);
    return false;
}

static void send_metrics(tg_req_t *req, tg_worker_t *w)
{
    tg_process_t *p = w->process;
    tg_metrics_t *shards[256];
    tg_metrics_gauges_t g = {0};
    size_t n = 0;
    for (unsigned i = 0; i != p->num_workers && n != TG_ARRAY_SIZE(shards); ++i) {
        shards[n++] = p->workers[i].metrics;
        g.connections_open += atomic_load_explicit(&p->workers[i].connections_open, memory_order_relaxed);
        g.upstream_in_flight += atomic_load_explicit(&p->workers[i].upstream_in_flight, memory_order_relaxed);
    }
    g.workers = p->num_workers;
    g.start_unix_ms = p->start_unix_ms;
    g.config_reloads = atomic_load(&p->config_reloads);
    g.config_reload_failures = atomic_load(&p->config_reload_failures);
    if (p->logs != NULL) {
        tg_logstore_stats_t ls;
        tg_logstore_stats(p->logs, &ls);
        g.has_logs = true;
        g.log_written = ls.written;
        g.log_dropped_full = ls.dropped_full;
        g.log_payloads_shed = ls.payloads_shed;
        g.log_dropped_retention = ls.dropped_retention;
        g.log_deleted_retention = ls.deleted_retention;
        g.log_write_errors = ls.write_errors;
        g.log_batches = ls.batches;
        g.log_batch_ns_sum = ls.batch_ns_sum;
        g.log_batch_ns_max = ls.batch_ns_max;
        g.log_queue_depth = ls.queue_depth;
        g.log_queue_bytes = ls.queue_bytes;
        g.log_in_flight = ls.in_flight;
    }
    tg_buf_t out;
    tg_buf_init(&out, 16u << 20);
    tg_metrics_render(shards, n, &g, &out);
    if (p->cache != NULL)
        tg_cache_render_metrics(p->cache, &out);
    tg_http_send_simple(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.base, out.len);
    tg_buf_free(&out);
}

int tg_admin_handle_ops(tg_req_t *req, tg_worker_t *w)
{
    if (tg_iov_eq(req->path, TG_LIT("/healthz"))) {
        if (method_ok(req))
            tg_http_send_simple(req, 200, "application/json", TG_LIT("{\"status\":\"ok\"}"));
        return 0;
    }
    if (tg_iov_eq(req->path, TG_LIT("/readyz"))) {
        if (!method_ok(req))
            return 0;
        if (atomic_load(&w->process->draining))
            tg_http_send_simple(req, 503, "application/json", TG_LIT("{\"status\":\"draining\"}"));
        else
            tg_http_send_simple(req, 200, "application/json", TG_LIT("{\"status\":\"ready\"}"));
        return 0;
    }
    if (tg_iov_eq(req->path, TG_LIT("/metrics"))) {
        if (method_ok(req))
            send_metrics(req, w);
        return 0;
    }
    return TG_E_DECLINED;
}
