/*
 * Workers: one thread, one libuv loop, one HTTP server on its own SO_REUSEPORT listener, one upstream client and
 * one metrics shard each (h2o's h2o_context_t). Nothing mutable is shared between workers; the main thread talks
 * to a worker only through its mailbox (an atomic slot per message kind plus a uv_async wakeup), as h2o's
 * multithread queues do.
 *
 * tg_process_t is the read-mostly view of the whole process that a worker needs to answer /metrics and /readyz:
 * it lists every worker's shard and counters, all of which are safe to read from any thread.
 */
#ifndef TOLLGATE_WORKER_H
#define TOLLGATE_WORKER_H

#include <stdatomic.h>
#include <uv.h>
#include "tollgate/cache.h"
#include "tollgate/config.h"
#include "tollgate/http.h"
#include "tollgate/logstore.h"
#include "tollgate/metrics.h"
#include "tollgate/upstream.h"

typedef struct st_tg_process_t tg_process_t;

typedef struct st_tg_worker_t {
    unsigned id;
    tg_process_t *process;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t mailbox;
    int listen_fd; /* owned until the server takes it */
    tg_http_server_t *http;
    tg_upstream_t *upstream;
    tg_metrics_t *metrics;
    tg_config_t *config; /* current snapshot (worker thread) */
    /* requests waiting on another request's upstream call (cacheserve.h): woken through cache_wake */
    uv_async_t cache_wake;
    struct st_tg_cache_waiter_t *cache_waiters; /* worker thread only */

    /* mailbox slots, written by the main thread */
    _Atomic(tg_config_t *) new_config;
    atomic_bool stop;
    /* read by any thread */
    atomic_size_t connections_open;
    atomic_size_t upstream_in_flight;
    atomic_bool drained;
} tg_worker_t;

struct st_tg_process_t {
    tg_worker_t *workers;
    unsigned num_workers;
    uint64_t start_unix_ms;
    atomic_bool draining;
    atomic_uint_fast64_t config_reloads;
    atomic_uint_fast64_t config_reload_failures;
    tg_logstore_t *logs; /* the request log store (any thread may submit) */
    tg_cache_t *cache;   /* the response cache (cache.h; any thread) */
    /* Called on the main thread's loop when a worker finished draining (set by main). */
    uv_async_t *on_worker_drained;
};

/* Prepares worker `id` with its listening socket and the initial config (retained). Main thread. */
void tg_worker_init(tg_worker_t *w, tg_process_t *process, unsigned id, int listen_fd, tg_config_t *config);
/* Starts the thread. Returns 0 or a libuv error. */
int tg_worker_start(tg_worker_t *w);
/* Hands a new config snapshot to the worker (retained for it). Main thread. */
void tg_worker_post_config(tg_worker_t *w, tg_config_t *config);
/* Asks the worker to drain and stop. Main thread. */
void tg_worker_post_stop(tg_worker_t *w);
/* Waits for the thread to end and frees what it owns. Main thread. */
void tg_worker_join(tg_worker_t *w);

/* The worker a request belongs to (its server's handler data). */
tg_worker_t *tg_worker_of(const tg_req_t *req);

#endif
