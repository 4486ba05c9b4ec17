/*
 * Metric shards and the Prometheus text renderer. See metrics.h for the threading rule: one writer per shard,
 * relaxed atomics, names published before the count that makes them visible.
 */
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/metrics.h"

/* Latency buckets in seconds: LLM calls range from a cache hit (sub-millisecond) to long generations. */
static const double buckets[TG_METRICS_NUM_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1,     2.5,  5,     10,   30,  120};
static const char *const err_kinds[TG_UPSTREAM_ERR__COUNT] = {"unreachable", "timeout", "bad_response", "truncated"};

typedef struct {
    char name[72];
    atomic_uint_fast64_t requests[6]; /* by status class: [0] no status (aborted before an answer), [1..5] 1xx..5xx */
    atomic_uint_fast64_t hist[TG_METRICS_NUM_BUCKETS + 1];
    atomic_uint_fast64_t duration_sum_us;
    atomic_uint_fast64_t bytes_in, bytes_out;
    atomic_uint_fast64_t upstream_errors[TG_UPSTREAM_ERR__COUNT];
} series_t;

typedef struct {
    char gateway[64], provider[72], model[128];
    atomic_uint_fast64_t tokens_in, tokens_out, cached_tokens, cost_nusd; /* cost in nano-dollars */
} usage_series_t;

struct st_tg_metrics_t {
    atomic_size_t num_usage;
    usage_series_t usage[TG_METRICS_MAX_USAGE + 1]; /* last = "other" */
    atomic_size_t num_series;
    atomic_uint_fast64_t connections;
    series_t series[TG_METRICS_MAX_PROVIDERS + 2]; /* [0] = "none", last = "other" */
};

#define INC(x, n) atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + (n), memory_order_relaxed)
#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

tg_metrics_t *tg_metrics_create(void)
{
    tg_metrics_t *m = tg_calloc(1, sizeof(*m));
    strcpy(m->series[0].name, "none");
    strcpy(m->series[TG_METRICS_MAX_PROVIDERS + 1].name, "other");
    usage_series_t *o = &m->usage[TG_METRICS_MAX_USAGE];
    strcpy(o->gateway, "other"), strcpy(o->provider, "other"), strcpy(o->model, "other");
    atomic_store(&m->num_series, 1);
    return m;
}

void tg_metrics_destroy(tg_metrics_t *m)
{
    free(m);
}

static series_t *find_series(tg_metrics_t *m, const char *provider)
{
    if (provider == NULL || *provider == '\0')
        return m->series;
    size_t n = atomic_load_explicit(&m->num_series, memory_order_relaxed);
    for (size_t i = 1; i < n; ++i)
        if (strcmp(m->series[i].name, provider) == 0)
            return m->series + i;
    if (n == TG_METRICS_MAX_PROVIDERS + 1 || strlen(provider) >= sizeof(m->series[0].name))
        return m->series + TG_METRICS_MAX_PROVIDERS + 1;
    strcpy(m->series[n].name, provider);
    atomic_store_explicit(&m->num_series, n + 1, memory_order_release);
    return m->series + n;
}

void tg_metrics_request(tg_metrics_t *m, const char *provider, int status, uint64_t duration_ns, uint64_t bytes_in,
                        uint64_t bytes_out)
{
    series_t *s = find_series(m, provider);
    int cls = (status >= 100 && status < 600) ? status / 100 : 0;
    INC(s->requests[cls], 1);
    double secs = (double)duration_ns / 1e9;
    size_t b = 0;
    while (b < TG_METRICS_NUM_BUCKETS && secs > buckets[b])
        ++b;
    INC(s->hist[b], 1);
    INC(s->duration_sum_us, duration_ns / 1000);
    INC(s->bytes_in, bytes_in);
    INC(s->bytes_out, bytes_out);
}

void tg_metrics_upstream_error(tg_metrics_t *m, const char *provider, tg_upstream_err_kind_t kind)
{
    INC(find_series(m, provider)->upstream_errors[kind], 1);
}

static void copy_name(char *dst, size_t dstsz, const char *src)
{
    if (src == NULL || *src == '\0')
        src = "none";
    size_t n = strnlen(src, dstsz - 1); /* cut to fit */
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void tg_metrics_usage(tg_metrics_t *m, const char *gateway, const char *provider, const char *model, int64_t tokens_in,
                      int64_t tokens_out, int64_t cached_tokens, double cost_usd)
{
    char g[64], p[72], mo[128];
    copy_name(g, sizeof(g), gateway);
    copy_name(p, sizeof(p), provider);
    copy_name(mo, sizeof(mo), model);
    size_t n = atomic_load_explicit(&m->num_usage, memory_order_relaxed), i = 0;
    while (i != n && !(strcmp(m->usage[i].model, mo) == 0 && strcmp(m->usage[i].provider, p) == 0 &&
                       strcmp(m->usage[i].gateway, g) == 0))
        ++i;
    usage_series_t *s;
    if (i != n) {
        s = &m->usage[i];
    } else if (n == TG_METRICS_MAX_USAGE) {
        s = &m->usage[TG_METRICS_MAX_USAGE];
    } else {
        s = &m->usage[n];
        strcpy(s->gateway, g), strcpy(s->provider, p), strcpy(s->model, mo);
        atomic_store_explicit(&m->num_usage, n + 1, memory_order_release);
    }
    if (tokens_in > 0)
        INC(s->tokens_in, (uint64_t)tokens_in);
    if (tokens_out > 0)
        INC(s->tokens_out, (uint64_t)tokens_out);
    if (cached_tokens > 0)
        INC(s->cached_tokens, (uint64_t)cached_tokens);
    if (cost_usd > 0) /* in nano-USD; a request's part is capped at a billion USD (a custom cost can say anything),
                       * which keeps the conversion defined and the counter from wrapping for a long while */
        INC(s->cost_nusd, cost_usd < 1e9 ? (uint64_t)(cost_usd * 1e9 + 0.5) : (uint64_t)1e18);
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void append_label(tg_buf_t *out, const char *s)
{
    for (; *s != '\0'; ++s) {
        if (*s == '\\' || *s == '"')
            tg_buf_append(out, "\\", 1), tg_buf_append(out, s, 1);
        else if (*s == '\n')
            tg_buf_append(out, "\\n", 2);
        else
            tg_buf_append(out, s, 1);
    }
}

static int cmp_usage(const void *a, const void *b)
{
    const usage_series_t *x = *(const usage_series_t *const *)a, *y = *(const usage_series_t *const *)b;
    int c = strcmp(x->gateway, y->gateway);
    if (c == 0)
        c = strcmp(x->provider, y->provider);
    return c != 0 ? c : strcmp(x->model, y->model);
}

static void render_usage(tg_metrics_t *const *shards, size_t num_shards, tg_buf_t *out)
{
    static const struct {
        const char *name, *help;
    } fams[] = {{"tollgate_tokens_input_total", "Prompt tokens reported by providers (cached ones included)."},
                {"tollgate_tokens_output_total", "Completion tokens reported by providers."},
                {"tollgate_tokens_cached_total", "Prompt tokens read from the providers' prompt caches."},
                {"tollgate_cost_usd_total", "Estimated cost in US dollars (requests with a known price)."}};
    /* every series of every shard, sorted by labels so equal ones are adjacent */
    const usage_series_t **all = tg_malloc((TG_METRICS_MAX_USAGE + 1) * (num_shards != 0 ? num_shards : 1) *
                                           sizeof(*all));
    size_t n = 0;
    for (size_t w = 0; w != num_shards; ++w) {
        const tg_metrics_t *m = shards[w];
        size_t k = atomic_load_explicit(&m->num_usage, memory_order_acquire);
        for (size_t i = 0; i != k; ++i)
            all[n++] = &m->usage[i];
        all[n++] = &m->usage[TG_METRICS_MAX_USAGE];
    }
    qsort(all, n, sizeof(*all), cmp_usage);
    for (size_t f = 0; f != TG_ARRAY_SIZE(fams); ++f) {
        tg_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", fams[f].name, fams[f].help, fams[f].name);
        for (size_t i = 0; i != n;) {
            size_t j = i;
            uint64_t sum = 0;
            for (; j != n && cmp_usage(&all[i], &all[j]) == 0; ++j) {
                const usage_series_t *t = all[j];
                sum += f == 0 ? GET(t->tokens_in) : f == 1 ? GET(t->tokens_out) : f == 2 ? GET(t->cached_tokens)
                                                                                          : GET(t->cost_nusd);
            }
            if (sum != 0) {
                tg_buf_appendf(out, "%s{gateway=\"", fams[f].name);
                append_label(out, all[i]->gateway);
                tg_buf_append(out, TG_LIT("\",provider=\""));
                append_label(out, all[i]->provider);
                tg_buf_append(out, TG_LIT("\",model=\""));
                append_label(out, all[i]->model);
                if (f == 3)
                    tg_buf_appendf(out, "\"} %.9f\n", (double)sum / 1e9);
                else
                    tg_buf_appendf(out, "\"} %llu\n", (unsigned long long)sum);
            }
            i = j;
        }
    }
    free(all);
}

static void render_logs(const tg_metrics_gauges_t *g, tg_buf_t *out)
{
    if (!g->has_logs)
        return;
    tg_buf_appendf(out,
                   "# HELP tollgate_log_records_written_total Log records stored.\n"
                   "# TYPE tollgate_log_records_written_total counter\n"
                   "tollgate_log_records_written_total %llu\n"
                   "# HELP tollgate_log_records_dropped_total Log records not stored, by reason (queue_full: every "
                   "log_queue_size place held by running requests and queued records; "
                   "retention: STOP_INSERTING at log_management; error: database error).\n"
                   "# TYPE tollgate_log_records_dropped_total counter\n"
                   "tollgate_log_records_dropped_total{reason=\"queue_full\"} %llu\n"
                   "tollgate_log_records_dropped_total{reason=\"retention\"} %llu\n"
                   "tollgate_log_records_dropped_total{reason=\"error\"} %llu\n"
                   "# HELP tollgate_log_payloads_shed_total Log records stored without their heads and bodies: "
                   "log_queue_memory was reached when they were finished.\n"
                   "# TYPE tollgate_log_payloads_shed_total counter\n"
                   "tollgate_log_payloads_shed_total %llu\n"
                   "# HELP tollgate_log_records_deleted_total Log records deleted by DELETE_OLDEST retention.\n"
                   "# TYPE tollgate_log_records_deleted_total counter\n"
                   "tollgate_log_records_deleted_total %llu\n"
                   "# HELP tollgate_log_queue_depth Log records waiting for the writer.\n"
                   "# TYPE tollgate_log_queue_depth gauge\n"
                   "tollgate_log_queue_depth %llu\n"
                   "# HELP tollgate_log_queue_bytes Bytes of log records waiting for the writer.\n"
                   "# TYPE tollgate_log_queue_bytes gauge\n"
                   "tollgate_log_queue_bytes %llu\n"
                   "# HELP tollgate_log_records_in_flight Log records being made, each holding one of log_queue_size "
                   "places.\n"
                   "# TYPE tollgate_log_records_in_flight gauge\n"
                   "tollgate_log_records_in_flight %llu\n"
                   "# HELP tollgate_log_batch_seconds Time the writer spent in batch transactions.\n"
                   "# TYPE tollgate_log_batch_seconds summary\n"
                   "tollgate_log_batch_seconds_sum %.6f\n"
                   "tollgate_log_batch_seconds_count %llu\n"
                   "# HELP tollgate_log_batch_seconds_max The longest batch transaction so far.\n"
                   "# TYPE tollgate_log_batch_seconds_max gauge\n"
                   "tollgate_log_batch_seconds_max %.6f\n",
                   (unsigned long long)g->log_written, (unsigned long long)g->log_dropped_full,
                   (unsigned long long)g->log_dropped_retention, (unsigned long long)g->log_write_errors,
                   (unsigned long long)g->log_payloads_shed, (unsigned long long)g->log_deleted_retention, (unsigned long long)g->log_queue_depth,
                   (unsigned long long)g->log_queue_bytes, (unsigned long long)g->log_in_flight,
                   (double)g->log_batch_ns_sum / 1e9,
                   (unsigned long long)g->log_batches, (double)g->log_batch_ns_max / 1e9);
}

void tg_metrics_connection(tg_metrics_t *m)
{
    INC(m->connections, 1);
}

/* Sum of one series (by name) across shards. */
typedef struct {
    const char *name;
    uint64_t requests[6];
    uint64_t hist[TG_METRICS_NUM_BUCKETS + 1];
    uint64_t duration_sum_us, bytes_in, bytes_out;
    uint64_t upstream_errors[TG_UPSTREAM_ERR__COUNT];
} total_t;

static void add_series(total_t *t, const series_t *s)
{
    for (size_t i = 0; i != 6; ++i)
        t->requests[i] += GET(s->requests[i]);
    for (size_t i = 0; i != TG_METRICS_NUM_BUCKETS + 1; ++i)
        t->hist[i] += GET(s->hist[i]);
    t->duration_sum_us += GET(s->duration_sum_us);
    t->bytes_in += GET(s->bytes_in);
    t->bytes_out += GET(s->bytes_out);
    for (size_t i = 0; i != TG_UPSTREAM_ERR__COUNT; ++i)
        t->upstream_errors[i] += GET(s->upstream_errors[i]);
}

void tg_metrics_render(tg_metrics_t *const *shards, size_t num_shards, const tg_metrics_gauges_t *g, tg_buf_t *out)
{
    /* merge by name: at most (MAX_PROVIDERS + 2) distinct names in all */
    total_t *totals = tg_calloc(TG_METRICS_MAX_PROVIDERS + 2, sizeof(*totals));
    size_t num_totals = 0;
    uint64_t connections = 0;
    for (size_t w = 0; w != num_shards; ++w) {
        const tg_metrics_t *m = shards[w];
        connections += GET(m->connections);
        size_t n = atomic_load_explicit(&m->num_series, memory_order_acquire);
        for (size_t i = 0; i <= n && i < TG_METRICS_MAX_PROVIDERS + 2; ++i) {
            const series_t *s = i < n ? m->series + i : m->series + TG_METRICS_MAX_PROVIDERS + 1;
            size_t t = 0;
            while (t != num_totals && strcmp(totals[t].name, s->name) != 0)
                ++t;
            if (t == num_totals) {
                if (num_totals == TG_METRICS_MAX_PROVIDERS + 2)
                    continue;
                totals[num_totals++].name = s->name;
            }
            add_series(totals + t, s);
        }
    }

    tg_buf_appendf(out, "# HELP tollgate_requests_total Requests answered, by provider and status class.\n"
                        "# TYPE tollgate_requests_total counter\n");
    static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t t = 0; t != num_totals; ++t)
        for (size_t c = 0; c != 6; ++c)
            if (totals[t].requests[c] != 0 || (c == 2 && t == 0))
                tg_buf_appendf(out, "tollgate_requests_total{provider=\"%s\",code=\"%s\"} %llu\n", totals[t].name,
                               cls[c], (unsigned long long)totals[t].requests[c]);

    tg_buf_appendf(out, "# HELP tollgate_request_duration_seconds Time from request head to the end of the response.\n"
                        "# TYPE tollgate_request_duration_seconds histogram\n");
    for (size_t t = 0; t != num_totals; ++t) {
        uint64_t cum = 0, count = 0;
        for (size_t b = 0; b != TG_METRICS_NUM_BUCKETS + 1; ++b)
            count += totals[t].hist[b];
        if (count == 0)
            continue;
        for (size_t b = 0; b != TG_METRICS_NUM_BUCKETS; ++b) {
            cum += totals[t].hist[b];
            tg_buf_appendf(out, "tollgate_request_duration_seconds_bucket{provider=\"%s\",le=\"%g\"} %llu\n",
                           totals[t].name, buckets[b], (unsigned long long)cum);
        }
        tg_buf_appendf(out, "tollgate_request_duration_seconds_bucket{provider=\"%s\",le=\"+Inf\"} %llu\n",
                       totals[t].name, (unsigned long long)count);
        tg_buf_appendf(out, "tollgate_request_duration_seconds_sum{provider=\"%s\"} %.6f\n", totals[t].name,
                       (double)totals[t].duration_sum_us / 1e6);
        tg_buf_appendf(out, "tollgate_request_duration_seconds_count{provider=\"%s\"} %llu\n", totals[t].name,
                       (unsigned long long)count);
    }

    tg_buf_appendf(out, "# HELP tollgate_request_bytes_total Request body bytes received, by provider.\n"
                        "# TYPE tollgate_request_bytes_total counter\n");
    for (size_t t = 0; t != num_totals; ++t)
        if (totals[t].bytes_in != 0)
            tg_buf_appendf(out, "tollgate_request_bytes_total{provider=\"%s\"} %llu\n", totals[t].name,
                           (unsigned long long)totals[t].bytes_in);
    tg_buf_appendf(out, "# HELP tollgate_response_bytes_total Response body bytes sent, by provider.\n"
                        "# TYPE tollgate_response_bytes_total counter\n");
    for (size_t t = 0; t != num_totals; ++t)
        if (totals[t].bytes_out != 0)
            tg_buf_appendf(out, "tollgate_response_bytes_total{provider=\"%s\"} %llu\n", totals[t].name,
                           (unsigned long long)totals[t].bytes_out);

    tg_buf_appendf(out, "# HELP tollgate_upstream_errors_total Failed upstream requests, by provider and kind.\n"
                        "# TYPE tollgate_upstream_errors_total counter\n");
    for (size_t t = 0; t != num_totals; ++t)
        for (size_t k = 0; k != TG_UPSTREAM_ERR__COUNT; ++k)
            if (totals[t].upstream_errors[k] != 0)
                tg_buf_appendf(out, "tollgate_upstream_errors_total{provider=\"%s\",kind=\"%s\"} %llu\n",
                               totals[t].name, err_kinds[k], (unsigned long long)totals[t].upstream_errors[k]);

    tg_buf_appendf(out,
                   "# HELP tollgate_connections_open Client connections open now.\n"
                   "# TYPE tollgate_connections_open gauge\n"
                   "tollgate_connections_open %llu\n"
                   "# HELP tollgate_connections_total Client connections accepted.\n"
                   "# TYPE tollgate_connections_total counter\n"
                   "tollgate_connections_total %llu\n"
                   "# HELP tollgate_upstream_requests_in_flight Upstream requests under way now.\n"
                   "# TYPE tollgate_upstream_requests_in_flight gauge\n"
                   "tollgate_upstream_requests_in_flight %llu\n"
                   "# HELP tollgate_workers Worker threads.\n"
                   "# TYPE tollgate_workers gauge\n"
                   "tollgate_workers %u\n"
                   "# HELP tollgate_start_time_seconds Start time of the process since the Unix epoch.\n"
                   "# TYPE tollgate_start_time_seconds gauge\n"
                   "tollgate_start_time_seconds %.3f\n"
                   "# HELP tollgate_config_reloads_total Successful configuration reloads (SIGHUP).\n"
                   "# TYPE tollgate_config_reloads_total counter\n"
                   "tollgate_config_reloads_total %llu\n"
                   "# HELP tollgate_config_reload_failures_total Reloads refused because the file was invalid.\n"
                   "# TYPE tollgate_config_reload_failures_total counter\n"
                   "tollgate_config_reload_failures_total %llu\n",
                   (unsigned long long)g->connections_open, (unsigned long long)connections,
                   (unsigned long long)g->upstream_in_flight, g->workers, (double)g->start_unix_ms / 1000.0,
                   (unsigned long long)g->config_reloads, (unsigned long long)g->config_reload_failures);
    render_usage(shards, num_shards, out);
    render_logs(g, out);
    free(totals);
}
