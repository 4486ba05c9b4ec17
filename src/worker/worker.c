/*
 * A worker thread: builds its server and upstream client on its own loop, serves until told to stop, drains, and
 * tears everything down so that the loop ends with no handle left (which LeakSanitizer then confirms).
 *
 * Messages from the main thread arrive through atomic slots and one uv_async wakeup: a new config snapshot
 * (exchanged, so a burst of reloads leaves only the newest), and the stop flag.
 */
#include "tollgate/cacheserve.h"
#include "tollgate/log.h"
#include "tollgate/router.h"
#include "tollgate/worker.h"

static void on_conn_change(tg_http_server_t *server, bool opened, size_t num_conns, void *data)
{
    tg_worker_t *w = data;
    (void)server;
    atomic_store_explicit(&w->connections_open, num_conns, memory_order_relaxed);
    if (opened)
        tg_metrics_connection(w->metrics);
}

/* Releases what the worker's loop holds and tells the process this worker is done. */
static void finish(tg_worker_t *w)
{
    tg_http_server_destroy(w->http); /* NULL-safe */
    w->http = NULL;
    tg_upstream_destroy(w->upstream);
    w->upstream = NULL;
    uv_close((uv_handle_t *)&w->mailbox, NULL);
    uv_close((uv_handle_t *)&w->cache_wake, NULL); /* no request waits any more: nothing sends to it */
    atomic_store(&w->drained, true);
    if (w->process->on_worker_drained != NULL)
        uv_async_send(w->process->on_worker_drained);
}

static void on_drained(tg_http_server_t *server, void *data)
{
    (void)server;
    finish(data); /* every request has ended, so no upstream request is left either */
}

static void on_mailbox(uv_async_t *a)
{
    tg_worker_t *w = a->data;
    tg_config_t *c = atomic_exchange(&w->new_config, NULL);
    if (c != NULL) {
        tg_config_release(w->config);
        w->config = c;
        if (w->http != NULL)
            tg_http_server_set_config(w->http, c);
    }
    if (atomic_load(&w->stop) && w->http != NULL)
        tg_http_server_drain(w->http);
}

static void worker_main(void *arg)
{
    tg_worker_t *w = arg;
    tg_http_handler_t handler = {
        .on_request = tg_router_on_request,
        .on_done = tg_router_on_done,
        .on_conn_change = on_conn_change,
        .on_drained = on_drained,
        .data = w,
    };
    unsigned n = w->process->num_workers;
    unsigned max_conns = (w->config->max_connections + n - 1) / n;
    w->upstream = tg_upstream_create(&w->loop);
    w->http = tg_http_server_create(&w->loop, w->listen_fd, w->config, max_conns, &handler);
    w->listen_fd = -1;
    if (w->http == NULL) {
        tg_log_error("worker %u could not start its server", w->id);
        finish(w);
    } else {
        on_mailbox(&w->mailbox); /* a stop or reload that came before the server existed */
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

void tg_worker_init(tg_worker_t *w, tg_process_t *process, unsigned id, int listen_fd, tg_config_t *config)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->process = process;
    w->listen_fd = listen_fd;
    w->config = tg_config_retain(config);
    w->metrics = tg_metrics_create();
    atomic_init(&w->new_config, NULL);
    atomic_init(&w->stop, false);
    atomic_init(&w->connections_open, 0);
    atomic_init(&w->upstream_in_flight, 0);
    atomic_init(&w->drained, false);
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->mailbox, on_mailbox);
    w->mailbox.data = w;
    uv_async_init(&w->loop, &w->cache_wake, tg_cache_on_wake);
    w->cache_wake.data = w;
}

int tg_worker_start(tg_worker_t *w)
{
    return uv_thread_create(&w->thread, worker_main, w);
}

void tg_worker_post_config(tg_worker_t *w, tg_config_t *config)
{
    tg_config_t *old = atomic_exchange(&w->new_config, tg_config_retain(config));
    if (old != NULL)
        tg_config_release(old);
    uv_async_send(&w->mailbox);
}

void tg_worker_post_stop(tg_worker_t *w)
{
    atomic_store(&w->stop, true);
    uv_async_send(&w->mailbox);
}

void tg_worker_join(tg_worker_t *w)
{
    uv_thread_join(&w->thread);
    tg_config_t *c = atomic_exchange(&w->new_config, NULL);
    if (c != NULL)
        tg_config_release(c);
    uv_loop_close(&w->loop);
    tg_config_release(w->config);
    tg_metrics_destroy(w->metrics);
}

tg_worker_t *tg_worker_of(const tg_req_t *req)
{
    return tg_http_req_data(req);
}
