/*
 * Prometheus metrics. Each worker owns one shard and is its only writer; a scrape (from any worker) sums the
 * shards. Counters are relaxed atomics, which on the writer's side compile to plain stores: the hot path takes no
 * lock and shares no cache line with another worker.
 *
 * Series are kept per provider slug. A shard registers a slug the first time it sees it (at most
 * TG_METRICS_MAX_PROVIDERS; later ones are counted under "other"), publishing the name before the count so a
 * concurrent reader never sees a half-written entry.
 */
#ifndef TOLLGATE_METRICS_H
#define TOLLGATE_METRICS_H

#include <stdatomic.h>
#include "tollgate/buf.h"
#include "tollgate/common.h"

#define TG_METRICS_MAX_PROVIDERS 128
#define TG_METRICS_NUM_BUCKETS 14
#define TG_METRICS_MAX_USAGE 256 /* (gateway, provider, model) series per shard; later ones count as "other" */

/* Kinds of upstream failure, for tollgate_upstream_errors_total{kind}. */
typedef enum {
    TG_UPSTREAM_ERR_UNREACHABLE,
    TG_UPSTREAM_ERR_TIMEOUT,
    TG_UPSTREAM_ERR_BAD_RESPONSE,
    TG_UPSTREAM_ERR_TRUNCATED, /* failed after the head had gone to the client */
    TG_UPSTREAM_ERR__COUNT
} tg_upstream_err_kind_t;

typedef struct st_tg_metrics_t tg_metrics_t;

/* Process-wide figures the renderer cannot find in the shards. */
typedef struct st_tg_metrics_gauges_t {
    uint64_t connections_open;
    uint64_t upstream_in_flight;
    unsigned workers;
    uint64_t start_unix_ms;
    uint64_t config_reloads;
    uint64_t config_reload_failures;
    /* the log writer (logstore.h) */
    bool has_logs;
    uint64_t log_written, log_dropped_full, log_payloads_shed, log_dropped_retention, log_deleted_retention, log_write_errors;
    uint64_t log_batches, log_batch_ns_sum, log_batch_ns_max;
    uint64_t log_queue_depth, log_queue_bytes, log_in_flight;
} tg_metrics_gauges_t;

tg_metrics_t *tg_metrics_create(void);
void tg_metrics_destroy(tg_metrics_t *m);

/* A finished request. `provider` NULL or "" for requests the gateway answered itself. Owner thread only. */
void tg_metrics_request(tg_metrics_t *m, const char *provider, int status, uint64_t duration_ns, uint64_t bytes_in,
                        uint64_t bytes_out);
/* An upstream failure. Owner thread only. */
void tg_metrics_upstream_error(tg_metrics_t *m, const char *provider, tg_upstream_err_kind_t kind);
/* Tokens and cost of a finished request (cost < 0: unknown, not added). Names are cut to fit. Owner thread only. */
void tg_metrics_usage(tg_metrics_t *m, const char *gateway, const char *provider, const char *model, int64_t tokens_in,
                      int64_t tokens_out, int64_t cached_tokens, double cost_usd);
/* A connection accepted. Owner thread only. */
void tg_metrics_connection(tg_metrics_t *m);

/* Renders the sum of `shards` in the Prometheus text format into `out`. Any thread. */
void tg_metrics_render(tg_metrics_t *const *shards, size_t num_shards, const tg_metrics_gauges_t *gauges,
                       tg_buf_t *out);

#endif
