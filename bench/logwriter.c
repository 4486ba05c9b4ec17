/*
 * Log writer throughput: how many records per second the store's writer thread keeps up with.
 *
 *   build/rel/bench/logwriter [RATE [SECONDS]]
 *
 * Offers RATE records per second (default 25000) for SECONDS (default 5) from two submitting threads, paced in
 * 1 ms steps, with the gateway's default queue bounds, then flushes and prints what was written and dropped; then
 * the same unpaced ("as fast as submitters can go") for the ceiling. Records look like a real chat completion's:
 * metadata, heads, and ~700-byte request and ~520-byte response bodies. Bounded in count and time; prints figures,
 * passes or fails nothing. With LOGWRITER_KEEP set in the environment, the store is kept (its path is printed), to
 * time queries (`tollgate stats`, `tollgate logs`) on it. Each run also prints the writer thread's time on a CPU per
 * record written (from /proc/self/task/TID/schedstat, in ns): the figure to compare builds of the writer by.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "tollgate/logstore.h"
#include "tollgate/sqlitedb.h"
#include "tollgate/tgtime.h"

static const char req_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a concise assistant for a "
    "weather app. Answer in one sentence, mention the time of day and whether to take an umbrella.\"},{\"role\":"
    "\"user\",\"content\":\"What will the weather be like tomorrow morning in Lisbon, and should I bring an umbrella "
    "on my walk to work? I leave at eight.\"}],\"temperature\":0.3,\"max_tokens\":120,\"user\":\"user-4711\"}";
static const char resp_body[] =
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1795425520,\"model\":\"gpt-4o-mini-2024-"
    "07-18\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Tomorrow morning will be "
    "cloudy with a chance of light rain around nine; take a compact umbrella.\",\"refusal\":null},\"finish_reason\":"
    "\"stop\"}],\"usage\":{\"prompt_tokens\":74,\"completion_tokens\":19,\"total_tokens\":93}}";

static tg_logrec_t *make_record(unsigned i)
{
    tg_logrec_t *r = tg_logrec_new(tg_now_unix_ms(), 2048);
    r->account = tg_logrec_strdup(r, "local");
    r->gateway = tg_logrec_strdup(r, "default");
    r->provider = tg_logrec_strdup(r, "openai");
    r->model = tg_logrec_strdup(r, "gpt-4o-mini");
    r->path = tg_logrec_strdup(r, "chat/completions");
    r->request_type = tg_logrec_strdup(r, "native");
    r->user_agent = tg_logrec_strdup(r, "OpenAI/JS 6.49.0");
    r->request_content_type = tg_logrec_strdup(r, "application/json");
    r->response_content_type = tg_logrec_strdup(r, "application/json");
    r->request_head = tg_logrec_strdup(r, "{\"content-type\":\"application/json\",\"user-agent\":\"OpenAI/JS 6.49.0\"}");
    r->response_head = tg_logrec_strdup(r, "{\"content-type\":\"application/json\"}");
    char meta[96];
    snprintf(meta, sizeof(meta), "{\"user\":\"u%u\",\"feature\":\"weather\"}", i % 1000);
    const char *why;
    tg_logrec_set_metadata(r, meta, strlen(meta), &why);
    r->status_code = 200;
    r->success = true;
    r->duration_ms = 350;
    r->ttfb_ms = 340;
    r->usage = (tg_usage_t){74, 19, 0, 0};
    r->cost = 74 * 0.15e-6 + 19 * 0.6e-6;
    r->request_size = sizeof(req_body) - 1;
    r->response_size = sizeof(resp_body) - 1;
    r->payload = true;
    r->request_body = tg_iov(tg_logrec_strndup(r, req_body, sizeof(req_body) - 1), sizeof(req_body) - 1);
    tg_logrec_body_init(r, 1 << 20);
    tg_buf_append(&r->response_body, resp_body, sizeof(resp_body) - 1);
    return r;
}

typedef struct {
    tg_logstore_t *store;
    double rate; /* per thread; 0 = unpaced */
    uint64_t count;
} submitter_t;

static void submit_main(void *arg)
{
    submitter_t *s = arg;
    uint64_t start = tg_now_mono_ns();
    for (uint64_t i = 0; i != s->count; ++i) {
        if (s->rate > 0) {
            uint64_t due = start + (uint64_t)((double)i / s->rate * 1e9);
            uint64_t now = tg_now_mono_ns();
            if (due > now + 1000000)
                usleep((useconds_t)((due - now) / 1000));
        }
        tg_logstore_submit(s->store, make_record((unsigned)i));
    }
}

/* The store's writer thread (named tg-logwriter once it runs), 0 when not found within a second. */
static long writer_tid(void)
{
    for (int tries = 0; tries != 1000; ++tries) {
        DIR *d = opendir("/proc/self/task");
        struct dirent *e;
        long found = 0;
        while (d != NULL && found == 0 && (e = readdir(d)) != NULL) {
            char path[64], comm[32] = "";
            snprintf(path, sizeof(path), "/proc/self/task/%.20s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (f != NULL && fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, "tg-logwriter\n") == 0)
                found = atol(e->d_name);
            if (f != NULL)
                fclose(f);
        }
        if (d != NULL)
            closedir(d);
        if (found != 0)
            return found;
        usleep(1000);
    }
    return 0;
}

/* A thread's time on a CPU so far, in ns (the first field of its schedstat); 0 when it cannot be read. */
static uint64_t cpu_ns(long tid)
{
    char path[64];
    unsigned long long ns = 0;
    snprintf(path, sizeof(path), "/proc/self/task/%ld/schedstat", tid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%llu", &ns) != 1)
            ns = 0;
        fclose(f);
    }
    return ns;
}

static void run(const char *dir, double rate, double seconds, uint64_t unpaced_count)
{
    char err[512];
    tg_logstore_t *store = tg_logstore_open(dir, 65536, 256u << 20, err, sizeof(err));
    if (store == NULL) {
        fprintf(stderr, "logwriter: %s\n", err);
        exit(1);
    }
    long tid = writer_tid();
    uint64_t cpu0 = tid != 0 ? cpu_ns(tid) : 0;
    tg_logstore_stats_t before;
    tg_logstore_stats(store, &before);
    submitter_t sub[2];
    uv_thread_t th[2];
    uint64_t per_thread = rate > 0 ? (uint64_t)(rate * seconds / 2) : unpaced_count / 2;
    uint64_t t0 = tg_now_mono_ns();
    for (int i = 0; i != 2; ++i) {
        sub[i] = (submitter_t){store, rate / 2, per_thread};
        uv_thread_create(&th[i], submit_main, &sub[i]);
    }
    for (int i = 0; i != 2; ++i)
        uv_thread_join(&th[i]);
    uint64_t t_sub = tg_now_mono_ns();
    tg_logstore_flush(store);
    uint64_t t1 = tg_now_mono_ns();
    tg_logstore_stats_t st;
    tg_logstore_stats(store, &st);
    uint64_t written = st.written - before.written, dropped = st.dropped_full - before.dropped_full;
    double writer_us = tid != 0 && written != 0 ? (double)(cpu_ns(tid) - cpu0) / 1e3 / (double)written : 0;
    double secs = (double)(t1 - t0) / 1e9;
    if (rate > 0)
        printf("offered %6.0f records/s for %.1f s: %llu written, %llu dropped; %.0f records/s written; flushed "
               "%.0f ms after the last submit; %llu batches, longest %.1f ms; writer %.2f us a record\n",
               rate, seconds, (unsigned long long)written, (unsigned long long)dropped, (double)written / secs,
               (double)(t1 - t_sub) / 1e6, (unsigned long long)(st.batches - before.batches),
               (double)st.batch_ns_max / 1e6, writer_us);
    else
        printf("unpaced, %llu records: %llu written, %llu dropped (queue full); %.0f records/s written; writer %.2f "
               "us a record\n",
               (unsigned long long)(2 * per_thread), (unsigned long long)written, (unsigned long long)dropped,
               (double)written / secs, writer_us);
    tg_logstore_close(store);
}

int main(int argc, char **argv)
{
    double rate = argc > 1 ? atof(argv[1]) : 25000, seconds = argc > 2 ? atof(argv[2]) : 5;
    if (rate <= 0 || rate > 1e6 || seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: logwriter [RATE (1..1000000)] [SECONDS (1..60)]\n");
        return 2;
    }
    tg_sqlite_configure();
    char dir[] = "/tmp/tollgate-logwriter.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    run(dir, rate, seconds, 0);
    run(dir, 0, 0, 200000);
    if (getenv("LOGWRITER_KEEP") != NULL) { /* to time queries on a filled store */
        printf("kept %s/logs.db\n", dir);
        return 0;
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
