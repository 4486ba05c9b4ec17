/*
 * The log store and its queries on a real SQLite file: the writer stores what is submitted, retention trims,
 * filters select what they say (and refuse what they cannot parse, naming the parameter), dates and query strings
 * parse, and analytics adds up.
 */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tollgate/error.h"
#include "tollgate/logblock.h"
#include "tollgate/logquery.h"
#include "tollgate/logrow.h"
#include "tollgate/logseg.h"
#include "tollgate/logstore.h"
#include "tollgate/sqlitedb.h"
#include "tollgate/tgtime.h"
#include "unit.h"

static char dir[] = "/tmp/tollgate-unit-logs.XXXXXX";

static tg_logrec_t *rec(const char *gateway, const char *provider, const char *model, int status, int64_t in,
                        double cost, uint64_t ms, const char *meta)
{
    tg_logrec_t *r = tg_logrec_new(ms, 64);
    r->account = tg_logrec_strdup(r, "local");
    r->gateway = tg_logrec_strdup(r, gateway);
    r->provider = tg_logrec_strdup(r, provider);
    r->model = tg_logrec_strdup(r, model);
    r->path = tg_logrec_strdup(r, "chat/completions");
    r->status_code = status;
    r->success = status < 400;
    r->duration_ms = (uint64_t)in; /* distinct durations for the percentiles */
    r->usage = (tg_usage_t){in, in / 2, 0, 0};
    r->cost = cost;
    if (meta != NULL) {
        const char *why;
        T_EQ_INT(tg_logrec_set_metadata(r, meta, strlen(meta), &why), 0);
    }
    return r;
}

/* Parses `query` and lists `gateway`; returns the total count, or -1 - rc on an error (message in err). */
static int64_t count_of(sqlite3 *db, const char *gateway, const char *query, char *err, size_t errsz)
{
    tg_qparams_t q;
    if (tg_qparams_parse(&q, tg_iov_str(query), err, errsz) != 0) {
        tg_qparams_free(&q);
        return -100;
    }
    json_t *result = NULL, *info = NULL;
    int rc = tg_logs_list(db, "local", gateway, &q, &result, &info, err, errsz);
    tg_qparams_free(&q);
    if (rc != TG_LQ_OK)
        return -1 - rc;
    int64_t n = json_integer_value(json_object_get(info, "total_count"));
    json_decref(result);
    json_decref(info);
    return n;
}

/* count_of gateway "g" */
static int64_t count(sqlite3 *db, const char *query, char *err, size_t errsz)
{
    return count_of(db, "g", query, err, errsz);
}

/* The store under the scratch directory, with room for every test's records; NULL (a failed check) if it fails. */
static tg_logstore_t *open_store(void)
{
    char err[512];
    tg_logstore_t *s = tg_logstore_open(dir, 1000, 1 << 26, err, sizeof(err));
    T_OK(s != NULL);
    if (s == NULL)
        fprintf(stderr, "  cannot open the store: %s\n", err);
    return s;
}

/* A STOP_INSERTING record of gateway `gw` (at most `limit` rows) of `model` made at t, holding a place if
 * `admitted`. */
static tg_logrec_t *stop_rec_of(const char *gw, const char *model, int64_t limit, uint64_t t, bool admitted)
{
    tg_logrec_t *r = rec(gw, "openai", model, 200, 10, 0.1, t, NULL);
    r->log_management = limit;
    r->log_management_strategy = TG_LOGS_STOP_INSERTING;
    r->admitted = admitted;
    return r;
}

static tg_logrec_t *stop_rec(const char *gw, uint64_t t, bool admitted)
{
    return stop_rec_of(gw, "gpt-4o", 3, t, admitted);
}

/* Queue places: taken when a request starts (tg_logstore_reserve), held by records being made and by queued ones,
 * never more than log_queue_size; a record holding one is not dropped for the count, even after a reload lowers it,
 * nor for the bytes bound (test_payload_shed); every drop gives its place back. */
static void test_queue_places(void)
{
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t0 = 1796100000000ull;
    tg_logstore_set_limits(s, 2, 1 << 26);
    T_OK(tg_logstore_reserve(s));
    T_OK(tg_logstore_reserve(s));
    T_OK(!tg_logstore_reserve(s)); /* two records being made hold both places */
    tg_logstore_stats_t st;
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.in_flight, 2);
    T_EQ_INT(st.queue_depth, 0);
    T_EQ_INT(st.dropped_full, 1);
    /* a record made without a place finds none at submit */
    tg_logstore_submit(s, rec("qp", "openai", "gpt-4o", 200, 10, 0.1, t0, NULL));
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.dropped_full, 2);
    /* a reload to no room at all: the records holding places are still queued and written */
    tg_logstore_set_limits(s, 0, 1 << 26);
    for (int i = 0; i != 2; ++i) {
        tg_logrec_t *r = rec("qp", "openai", "gpt-4o", 200, 10, 0.1, t0 + 1 + (uint64_t)i, NULL);
        r->queue_place = true;
        tg_logstore_submit(s, r);
    }
    tg_logstore_flush(s);
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.written, 2);
    T_EQ_INT(st.dropped_full, 2);
    T_EQ_INT(st.in_flight, 0);
    T_OK(!tg_logstore_reserve(s)); /* (log_queue_size 0: a request refused, counted) */
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.dropped_full, 3);
    /* the writer gave the places back when it took the records */
    tg_logstore_set_limits(s, 2, 1 << 26);
    T_OK(tg_logstore_reserve(s));
    T_OK(tg_logstore_reserve(s));
    tg_logstore_unreserve(s); /* (a request that made no record after all) */
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.in_flight, 1);
    /* past the bytes bound a record holding a place (the one still held) is kept without its payload, and its place
     * comes back when the writer takes it */
    tg_logstore_set_limits(s, 2, 16);
    tg_logrec_t *big = rec("qp", "openai", "gpt-4o", 200, 10, 0.1, t0 + 3, NULL);
    big->queue_place = true;
    tg_logstore_submit(s, big);
    tg_logstore_flush(s);
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.dropped_full, 3);
    T_EQ_INT(st.payloads_shed, 1);
    T_EQ_INT(st.written, 3);
    T_EQ_INT(st.in_flight, 0);
    T_OK(tg_logstore_reserve(s));
    T_OK(tg_logstore_reserve(s));
    tg_logstore_unreserve(s);
    tg_logstore_unreserve(s);
    tg_logstore_close(s);
}

/* A record that would take the queue past log_queue_memory is stored without its heads and bodies, every other
 * field as it was, and says so (the row, the body's answer, the count); one that fits keeps them. */
static void test_payload_shed(void)
{
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    char err[512];
    tg_logstore_stats_t before, st;
    tg_logstore_stats(s, &before);
    tg_logstore_set_limits(s, 1000, 64 << 10);
    char ids[3][TG_ULID_LEN + 1];
    for (int i = 0; i != 3; ++i) {
        tg_logrec_t *r = rec("shed", "openai", "gpt-4o", 200, 30 + i, 0.25, 1797000000000ull + (uint64_t)i,
                             "{\"user\":\"u1\",\"n\":7}");
        r->payload = true;
        r->event_id = tg_logrec_strdup(r, i == 2 ? "ev-small" : "ev-big");
        r->user_agent = tg_logrec_strdup(r, "unit/1");
        r->request_content_type = "application/json"; /* (static: the copy makes its own) */
        r->error = tg_logrec_strdup(r, "upstream said no");
        r->request_head = tg_logrec_strdup(r, "content-type: application/json\n");
        r->response_head = tg_logrec_strdup(r, "x-up: 1\n");
        size_t n = i == 2 ? 100 : 48 << 10; /* two of 96 KiB each (the first alone is over), one small */
        char *b = tg_logrec_alloc(r, n);
        memset(b, 'q', n);
        r->request_body = tg_iov(b, n);
        r->request_size = r->response_size = n;
        tg_logrec_body_init(r, 1 << 20);
        tg_buf_append(&r->response_body, b, n);
        r->queue_place = i != 1 && tg_logstore_reserve(s); /* (the second takes its place at submit) */
        memcpy(ids[i], r->id, sizeof(ids[i]));
        tg_logstore_submit(s, r);
        tg_logstore_flush(s);
    }
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.written - before.written, 3);
    T_EQ_INT(st.payloads_shed - before.payloads_shed, 2);
    T_EQ_INT(st.dropped_full, before.dropped_full);
    T_EQ_INT(st.in_flight, 0);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    for (int i = 0; i != 3; ++i) {
        json_t *one = NULL;
        T_EQ_INT(tg_logs_get(db, "local", "shed", ids[i], &one, err, sizeof(err)), TG_LQ_OK);
        bool shed = i != 2;
        T_OK(json_is_boolean(json_object_get(one, "payload_shed")) &&
             json_is_true(json_object_get(one, "payload_shed")) == shed);
        T_EQ_STR(json_string_value(json_object_get(one, "model")), "gpt-4o");
        T_EQ_STR(json_string_value(json_object_get(one, "event_id")), shed ? "ev-big" : "ev-small");
        T_EQ_STR(json_string_value(json_object_get(one, "user_agent")), "unit/1");
        T_EQ_STR(json_string_value(json_object_get(one, "error")), "upstream said no");
        T_EQ_STR(json_string_value(json_object_get(one, "request_content_type")), "application/json");
        T_EQ_INT(json_integer_value(json_object_get(one, "tokens_in")), 30 + i);
        T_OK(fabs(json_real_value(json_object_get(one, "cost")) - 0.25) < 1e-12);
        T_EQ_INT(json_integer_value(json_object_get(one, "request_size")), shed ? 48 << 10 : 100);
        T_EQ_STR(json_string_value(json_object_get(one, "metadata")), "{\"user\":\"u1\",\"n\":7}");
        T_OK(json_is_true(json_object_get(one, "payload")));
        T_OK(json_is_true(json_object_get(one, "request_head_complete")) == !shed);
        if (shed)
            T_OK(json_is_null(json_object_get(one, "request_head")));
        else
            T_EQ_STR(json_string_value(json_object_get(one, "request_head")),
                     "{\"content-type\":\"application/json\"}");
        json_decref(one);
        for (int resp = 0; resp != 2; ++resp) {
            tg_buf_t b;
            tg_buf_init(&b, 1 << 20);
            char *ct = NULL;
            int rc = tg_logs_body(db, "local", "shed", ids[i], resp, &b, &ct, err, sizeof(err));
            if (shed) {
                T_EQ_INT(rc, TG_LQ_NOT_FOUND);
                T_OK(strstr(err, "log_queue_memory") != NULL);
            } else {
                T_EQ_INT(rc, TG_LQ_OK);
                T_EQ_INT(b.len, 100);
            }
            free(ct);
            tg_buf_free(&b);
        }
    }
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* STOP_INSERTING seen from a worker: tg_logstore_admit reserves places against the writer's counts (after each
 * batch, at open, again after a delete) and the records on their way, and a full gateway's writer notices a delete
 * made by another connection. */
static void test_admit(void)
{
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t0 = 1796000000000ull;
    /* places are held from admission, before any record is written: the fourth is refused at once */
    for (int i = 0; i != 3; ++i)
        T_OK(tg_logstore_admit(s, "local", "stop3", 3));
    T_OK(!tg_logstore_admit(s, "local", "stop3", 3));
    T_OK(tg_logstore_admit(s, "other", "stop3", 3)); /* another account's gateway of that name */
    tg_logstore_submit(s, stop_rec("stop3", t0, true));
    tg_logstore_submit(s, stop_rec("stop3", t0 + 1, true));
    /* a record dropped (the queue full) gives its place back */
    tg_logstore_set_limits(s, 0, 1 << 26);
    tg_logstore_submit(s, stop_rec("stop3", t0 + 2, true));
    tg_logstore_set_limits(s, 1000, 1 << 26);
    T_OK(tg_logstore_admit(s, "local", "stop3", 3));
    tg_logstore_submit(s, stop_rec("stop3", t0 + 3, true));
    tg_logrec_t *o = rec("stop3", "openai", "gpt-4o", 200, 10, 0.1, t0, NULL);
    o->account = tg_logrec_strdup(o, "other");
    o->log_management = 3;
    o->log_management_strategy = TG_LOGS_STOP_INSERTING;
    o->admitted = true;
    tg_logstore_submit(s, o);
    tg_logstore_flush(s);
    tg_logstore_stats_t st;
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.written, 4);
    T_EQ_INT(st.dropped_full, 1);
    T_EQ_INT(st.dropped_retention, 1); /* the refusal at admission only: the writer refused none */
    T_OK(!tg_logstore_admit(s, "local", "stop3", 3));
    T_OK(tg_logstore_admit(s, "local", "stop3", 4)); /* the limit is the caller's (a reload may raise it) */
    tg_logstore_submit(s, stop_rec("stop3", t0 + 4, true)); /* (stored: the writer keeps the record's limit, 3) */
    tg_logstore_flush(s);
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.dropped_retention, 3); /* two refusals at admission, and the writer's of the record past its limit */
    T_OK(tg_logstore_admit(s, "local", "stop3", 4)); /* 3 rows, and the refused record's place was given back */
    tg_logstore_submit(s, stop_rec_of("stop3", "gpt-4o", 4, t0 + 5, true));
    tg_logstore_flush(s);
    T_OK(!tg_logstore_admit(s, "local", "stop3", 4));

    /* a delete through the store: admitted once tg_logstore_rows_deleted returns (it waits for the new count) */
    char err[256];
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    if (db == NULL) {
        tg_logstore_close(s);
        return;
    }
    tg_qparams_t q;
    tg_qparams_parse(&q, tg_iov_str(""), err, sizeof(err));
    int64_t deleted = 0;
    T_EQ_INT(tg_logs_delete(db, "local", "stop3", &q, &deleted, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&q);
    T_EQ_INT(deleted, 4);
    tg_logstore_release(s, db);
    tg_logstore_rows_deleted(s);
    for (int i = 0; i != 2; ++i) {
        T_OK(tg_logstore_admit(s, "local", "stop3", 3));
        tg_logstore_submit(s, stop_rec("stop3", t0 + 10 + (uint64_t)i, true));
    }
    tg_logstore_flush(s);
    T_OK(!tg_logstore_admit(s, "local", "stop3", 2));
    T_OK(tg_logstore_admit(s, "local", "stop3", 3));
    tg_logstore_close(s); /* (the place that admission holds goes with the store) */

    /* at open the counts are known before any batch: 2 rows */
    s = open_store();
    if (s == NULL)
        return;
    T_OK(!tg_logstore_admit(s, "local", "stop3", 2));
    T_OK(tg_logstore_admit(s, "local", "stop3", 3));
    tg_logstore_submit(s, stop_rec("stop3", t0 + 20, true));
    tg_logstore_flush(s);
    tg_logstore_close(s);
    s = open_store(); /* full, and the writer has seen no record of it since it opened */
    if (s == NULL)
        return;
    T_OK(!tg_logstore_admit(s, "local", "stop3", 3));
    /* another process deletes (no tg_logstore_rows_deleted): the idle writer of a full gateway looks again */
    sqlite3 *other = tg_logstore_reader(dir, false, err, sizeof(err));
    T_OK(other != NULL);
    if (other != NULL) {
        tg_qparams_parse(&q, tg_iov_str(""), err, sizeof(err));
        T_EQ_INT(tg_logs_delete(other, "local", "stop3", &q, &deleted, err, sizeof(err)), TG_LQ_OK);
        tg_qparams_free(&q);
        T_EQ_INT(deleted, 3);
        sqlite3_close(other);
        bool admitted = false;
        for (int i = 0; i != 300 && !admitted; ++i) { /* FULL_RECHECK_NS is 1 s; 3 s at most */
            admitted = tg_logstore_admit(s, "local", "stop3", 3);
            if (!admitted)
                usleep(10000);
        }
        T_OK(admitted);
        if (admitted)
            tg_logstore_submit(s, stop_rec("stop3", t0 + 30, true));
    }
    tg_logstore_close(s);
}

/* Runs first: tg_sqlite_configure before any database is opened turns SQLite's allocation statistics off (the store
 * works the same; sqlite3_memory_used, which only those statistics feed, stays 0 though opening it allocates). */
static void test_sqlite_configure(void)
{
    tg_sqlite_configure();
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    T_EQ_INT((int)sqlite3_memory_used(), 0);
    tg_logstore_close(s);
}

static void test_store_and_filters(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t0 = 1795000000000ull; /* 2026-11-18 */
    tg_logstore_submit(s, rec("g", "openai", "gpt-4o", 200, 10, 0.5, t0, "{\"user\":\"a\",\"n\":1}"));
    tg_logstore_submit(s, rec("g", "openai", "gpt-4o-mini", 200, 20, 0.25, t0 + 1000, "{\"user\":\"b\",\"n\":10}"));
    tg_logstore_submit(s, rec("g", "anthropic", "claude-haiku-4-5", 500, 30, -1, t0 + 2000, "{\"user\":\"a\",\"n\":9.5}"));
    tg_logstore_submit(s, rec("g", "google-ai-studio", "gemini-2.5-flash", 200, 40, 1.0, t0 + 3000, NULL));
    tg_logstore_submit(s, rec("other", "openai", "gpt-4o", 200, 50, 0.1, t0, NULL));
    tg_logstore_flush(s);
    tg_logstore_stats_t st;
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.written, 5);
    T_EQ_INT(st.dropped_full, 0);

    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    T_EQ_INT(count(db, "", err, sizeof(err)), 4);
    T_EQ_INT(count(db, "provider=openai", err, sizeof(err)), 2);
    T_EQ_INT(count(db, "provider=openai&model=gpt-4o", err, sizeof(err)), 1);
    T_EQ_INT(count(db, "success=false", err, sizeof(err)), 1);
    T_EQ_INT(count(db, "metadata.user=a", err, sizeof(err)), 2);
    T_EQ_INT(count(db, "metadata.n=1", err, sizeof(err)), 1);
    T_EQ_INT(count(db, "min_cost=0.3", err, sizeof(err)), 2);
    T_EQ_INT(count(db, "start_date=2026-11-18T11:06:42Z&end_date=1795000003", err, sizeof(err)), 2);
    T_EQ_INT(count(db, "search=haiku", err, sizeof(err)), 1);
    T_EQ_INT(count(db, "search=%25", err, sizeof(err)), 0); /* a % is matched literally, not as a wildcard */
    T_EQ_INT(count(db, "search=gpt-4o_mini", err, sizeof(err)), 0);
    /* filters: values of one entry are alternatives, entries all apply */
    T_EQ_INT(
        count(db,
              "filters=%5B%7B%22key%22%3A%22provider%22%2C%22operator%22%3A%22eq%22%2C%22value%22%3A%5B%22openai%22"
              "%2C%22anthropic%22%5D%7D%2C%7B%22key%22%3A%22tokens_in%22%2C%22operator%22%3A%22gte%22%2C%22value"
              "%22%3A%5B20%5D%7D%5D",
              err, sizeof(err)),
        2);
    T_EQ_INT(count(db, "filters=[{\"key\":\"model\",\"operator\":\"contains\",\"value\":[\"4o\"]}]", err, sizeof(err)),
             2);
    T_EQ_INT(count(db, "filters=[{\"key\":\"metadata.user\",\"operator\":\"neq\",\"value\":\"a\"}]", err, sizeof(err)),
             2);
    T_EQ_INT(count(db, "filters=[{\"key\":\"cost\",\"operator\":\"lt\",\"value\":[0.3]}]", err, sizeof(err)), 1);
    /* metadata numbers compare as numbers (as text, "10" < "9.5" and "10" < "5") */
    T_EQ_INT(count(db, "filters=[{\"key\":\"metadata.n\",\"operator\":\"gt\",\"value\":[5]}]", err, sizeof(err)), 2);
    T_EQ_INT(count(db, "filters=[{\"key\":\"metadata.n\",\"operator\":\"lt\",\"value\":[10]}]", err, sizeof(err)), 2);
    T_EQ_INT(count(db, "filters=[{\"key\":\"metadata.n\",\"operator\":\"gte\",\"value\":[1e1]}]", err, sizeof(err)), 1);
    T_EQ_INT(count(db, "filters=[{\"key\":\"metadata.n\",\"operator\":\"eq\",\"value\":[9.50]}]", err, sizeof(err)), 1);
    T_EQ_INT(count(db, "filters=[{\"key\":\"metadata.n\",\"operator\":\"neq\",\"value\":[10]}]", err, sizeof(err)), 3);
    T_EQ_INT(count(db, "filters=[{\"key\":\"metadata.user\",\"operator\":\"lt\",\"value\":[\"b\"]}]", err, sizeof(err)),
             2); /* strings still compare as text */
    /* bad input names the parameter */
    static const struct {
        const char *q, *name;
    } bad[] = {{"success=maybe", "success"},
               {"start_date=tomorrow", "start_date"},
               {"per_page=0", "per_page"},
               {"page=x", "page"},
               {"order_by=password", "order_by"},
               {"order_by_direction=up", "order_by_direction"},
               {"colour=red", "colour"},
               {"filters=nope", "filters"},
               {"filters=[{\"key\":\"secret\",\"operator\":\"eq\",\"value\":[1]}]", "filters[0].key"},
               {"filters=[{\"key\":\"model\",\"operator\":\"like\",\"value\":[1]}]", "filters[0].operator"},
               {"filters=[{\"key\":\"tokens_in\",\"operator\":\"eq\",\"value\":[\"ten\"]}]", "filters[0].value[0]"},
               {"filters=[{\"key\":\"cost\",\"operator\":\"contains\",\"value\":[\"1\"]}]", "contains"},
               {"min_cost=cheap", "min_cost"},
               {"per_page=2&page=1&per_page=3", "per_page is given more than once"},
               {"order_by=cost&order_by=model", "order_by is given more than once"},
               {"start_date=2026-02-30", "start_date"},
               {"end_date=2026-04-31T10:00:00Z", "end_date"},
               {"start_date=2026-11-19&end_date=2026-11-18T23:59:59Z", "start_date is after end_date"}};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        err[0] = '\0';
        T_EQ_INT(count(db, bad[i].q, err, sizeof(err)), -1 - TG_LQ_BAD);
        T_OK(strstr(err, bad[i].name) != NULL);
    }
    T_EQ_INT(count(db, "order_by=password", err, sizeof(err)), -1 - TG_LQ_BAD);
    T_OK(strstr(err, "model_type") != NULL); /* the message lists every orderable field */
    T_EQ_INT(count(db, "order_by=model_type&order_by_direction=asc", err, sizeof(err)), 4);
    T_EQ_INT(count(db, "provider=openai&provider=anthropic", err, sizeof(err)), 0); /* filters all apply */
    T_EQ_INT(count(db, "provider=%zz", err, sizeof(err)), -100);

    /* ordering and pagination */
    tg_qparams_t q;
    tg_qparams_parse(&q, tg_iov_str("order_by=tokens_in&order_by_direction=asc&per_page=2&page=2"), err, sizeof(err));
    json_t *result = NULL, *info = NULL;
    T_EQ_INT(tg_logs_list(db, "local", "g", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_array_size(result), 2);
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(result, 0), "tokens_in")), 30);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_pages")), 2);
    T_OK(json_is_null(json_object_get(json_array_get(result, 0), "cost"))); /* unknown stays null */
    json_decref(result);
    json_decref(info);
    tg_qparams_free(&q);

    /* analytics: totals, groups and nearest-rank percentiles */
    tg_qparams_parse(&q, tg_iov_str("group_by=provider"), err, sizeof(err));
    T_EQ_INT(tg_logs_analytics(db, "local", "g", &q, &result, err, sizeof(err)), TG_LQ_OK);
    json_t *t = json_object_get(result, "totals");
    T_EQ_INT(json_integer_value(json_object_get(t, "requests")), 4);
    T_EQ_INT(json_integer_value(json_object_get(t, "errors")), 1);
    T_EQ_INT(json_integer_value(json_object_get(t, "tokens_in")), 100);
    T_OK(json_real_value(json_object_get(t, "cost")) == 1.75);
    T_EQ_INT(json_integer_value(json_object_get(json_object_get(t, "latency_ms"), "p50")), 20);
    T_EQ_INT(json_integer_value(json_object_get(json_object_get(t, "latency_ms"), "p99")), 40);
    T_EQ_INT(json_array_size(json_object_get(result, "groups")), 3);
    json_decref(result);
    tg_qparams_free(&q);

    /* delete by filter, then retention on the writer's side */
    tg_qparams_parse(&q, tg_iov_str("provider=openai"), err, sizeof(err));
    int64_t deleted = 0;
    T_EQ_INT(tg_logs_delete(db, "local", "g", &q, &deleted, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(deleted, 2);
    tg_qparams_free(&q);
    tg_logstore_rows_deleted(s);
    T_EQ_INT(count(db, "", err, sizeof(err)), 2);
    for (int i = 0; i != 5; ++i) {
        tg_logrec_t *r = rec("g", "openai", "gpt-4o", 200, 100 + i, 0.1, t0 + 10000 + (uint64_t)i, NULL);
        r->log_management = 3;
        r->log_management_strategy = TG_LOGS_DELETE_OLDEST;
        tg_logstore_submit(s, r);
    }
    tg_logstore_flush(s);
    T_EQ_INT(count(db, "", err, sizeof(err)), 3); /* counted again after the delete, then trimmed */
    T_EQ_INT(count(db, "min_cost=0.1&max_cost=0.1", err, sizeof(err)), 3);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

static void test_dates_and_params(void)
{
    int64_t ms;
    T_EQ_INT(tg_parse_date_ms("2026-11-23", &ms), 0);
    T_EQ_INT(ms, 1795392000000);
    T_EQ_INT(tg_parse_date_ms("2026-11-23T10:00:00Z", &ms), 0);
    T_EQ_INT(ms, 1795392000000 + 36000000);
    T_EQ_INT(tg_parse_date_ms("2026-11-23T10:00:00.25+02:00", &ms), 0);
    T_EQ_INT(ms, 1795392000000 + 28800000 + 250);
    T_EQ_INT(tg_parse_date_ms("1795392000", &ms), 0);
    T_EQ_INT(ms, 1795392000000);
    T_EQ_INT(tg_parse_date_ms("2028-02-29", &ms), 0); /* leap years */
    T_EQ_INT(tg_parse_date_ms("2000-02-29", &ms), 0);
    T_EQ_INT(tg_parse_date_ms("2026-01-31", &ms), 0);
    static const char *const bad[] = {
        "", "2026", "2026-13-01", "2026-11-23T25:00", "2026-11-23X", "yesterday", "2026-11-23T10:00:00+2",
        "2026-02-29", "2026-02-30", "2026-04-31", "2100-02-29", "2026-06-31T10:00:00Z"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        T_EQ_INT(tg_parse_date_ms(bad[i], &ms), -1);

    tg_qparams_t q;
    char err[128];
    T_EQ_INT(tg_qparams_parse(&q, tg_iov_str("a=1&b=x+y%21&&c&metadata.k%3D=v%3D"), err, sizeof(err)), 0);
    T_EQ_INT(q.n, 4);
    T_EQ_STR(tg_qparams_get(&q, "b"), "x y!");
    T_EQ_STR(tg_qparams_get(&q, "c"), "");
    T_EQ_STR(tg_qparams_get(&q, "metadata.k="), "v=");
    T_OK(tg_qparams_get(&q, "d") == NULL);
    tg_qparams_free(&q);
    T_EQ_INT(tg_qparams_parse(&q, tg_iov_str("a=%4"), err, sizeof(err)), -1);
    tg_qparams_free(&q);
    T_EQ_INT(tg_qparams_parse(&q, tg_iov_str("a=%00"), err, sizeof(err)), -1);
    tg_qparams_free(&q);
    char many[1024] = "";
    for (int i = 0; i != TG_LQ_MAX_PARAMS + 1; ++i)
        strcat(many, "x=1&");
    T_EQ_INT(tg_qparams_parse(&q, tg_iov_str(many), err, sizeof(err)), -1);
    tg_qparams_free(&q);
}

static void test_metadata_rules(void)
{
    tg_logrec_t *r = tg_logrec_new(0, 0);
    const char *why = NULL;
    T_EQ_INT(tg_logrec_set_metadata(r, TG_LIT("{\"a\":\"x\",\"b\":2,\"c\":true,\"d\":1.5,\"cf.secret\":1}"), &why), 0);
    T_EQ_INT(r->num_metadata, 4); /* cf.* is reserved and not kept */
    T_EQ_STR(r->metadata_json, "{\"a\":\"x\",\"b\":2,\"c\":true,\"d\":1.5}");
    T_EQ_STR(r->metadata[2].value, "true");
    static const char *const bad[] = {"[]",
                                      "{\"a\":{}}",
                                      "{\"a\":[1]}",
                                      "{\"a\":null}",
                                      "nope",
                                      "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6}",
                                      "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        why = NULL;
        T_EQ_INT(tg_logrec_set_metadata(r, bad[i], strlen(bad[i]), &why), -1);
        T_OK(why != NULL);
    }
    T_EQ_INT(r->num_metadata, 4); /* a refused value leaves what was there */
    T_EQ_INT(tg_logrec_set_metadata(r, TG_LIT("{\"cf.x\":1,\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}"), &why), 0);
    T_EQ_INT(r->num_metadata, 5); /* a reserved key does not count toward the five */
    tg_logrec_free(r);

    char a[TG_ULID_LEN + 1], b[TG_ULID_LEN + 1];
    tg_ulid(1795392000000, a);
    tg_ulid(1795392000001, b);
    T_EQ_INT(strlen(a), 26);
    T_OK(strcmp(a, b) < 0); /* time-ordered */
    T_OK(strspn(a, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 26);
    T_OK(memcmp(a, "01M82V7M00", 10) == 0); /* 48 bits of milliseconds, Crockford's base 32, most significant first */
    T_OK(strcmp(a + 10, b + 10) != 0);  /* and 80 random bits */
    T_OK(strchr("01234567", a[0]) != NULL);
}

/* Analytics keeps at most 200 groups: those with the most requests, largest first, the rest still in the totals. */
static void test_analytics_groups(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t0 = 1795000000000ull;
    char meta[64];
    for (int i = 0; i != 230; ++i) { /* uid u000..u229 once each; "zz" 3 times, "zy" twice: they sort last by key */
        snprintf(meta, sizeof(meta), "{\"uid\":\"u%03d\"}", i);
        tg_logstore_submit(s, rec("many", "openai", "gpt-4o", 200, 10, 0.5, t0 + (uint64_t)i, meta));
    }
    for (int i = 0; i != 5; ++i)
        tg_logstore_submit(s, rec("many", "openai", "gpt-4o", 200, 10, 0.5, t0 + 1000 + (uint64_t)i,
                                  i < 3 ? "{\"uid\":\"zz\"}" : "{\"uid\":\"zy\"}"));
    tg_logstore_flush(s);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    tg_qparams_t q;
    json_t *result = NULL;
    tg_qparams_parse(&q, tg_iov_str("group_by=metadata.uid"), err, sizeof(err));
    T_EQ_INT(tg_logs_analytics(db, "local", "many", &q, &result, err, sizeof(err)), TG_LQ_OK);
    json_t *groups = json_object_get(result, "groups");
    T_EQ_INT(json_array_size(groups), 200);
    T_OK(json_is_true(json_object_get(result, "groups_truncated")));
    T_EQ_INT(json_integer_value(json_object_get(json_object_get(result, "totals"), "requests")), 235);
    T_EQ_STR(json_string_value(json_object_get(json_array_get(groups, 0), "key")), "zz");
    T_EQ_INT(json_integer_value(json_object_get(json_object_get(json_array_get(groups, 0), "totals"), "requests")), 3);
    T_EQ_STR(json_string_value(json_object_get(json_array_get(groups, 1), "key")), "zy");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(groups, 2), "key")), "u000"); /* then by key */
    json_decref(result);
    tg_qparams_free(&q);
    tg_qparams_parse(&q, tg_iov_str("interval=60s&start_date=2026-11-19&end_date=2026-11-18"), err, sizeof(err));
    result = NULL;
    T_EQ_INT(tg_logs_analytics(db, "local", "many", &q, &result, err, sizeof(err)), TG_LQ_BAD);
    T_OK(strstr(err, "start_date is after end_date") != NULL);
    json_decref(result);
    tg_qparams_free(&q);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* Heads are stored as "name: value" lines and read back as the text of a JSON object; older databases hold the
 * JSON text itself, which is passed on. */
static void test_heads(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    tg_logrec_t *a = rec("heads", "openai", "gpt-4o", 200, 1, 0, 1795000000000ull, NULL);
    a->request_head = "content-type: application/json\nx-quote: say \"hi\"\\now\nx-empty: \nx-ctl: a\tb\n";
    a->response_head = "";
    char id_a[TG_ULID_LEN + 1];
    memcpy(id_a, a->id, sizeof(id_a));
    tg_logrec_t *b = rec("heads", "openai", "gpt-4o", 200, 1, 0, 1795000000001ull, NULL);
    b->request_head = "{\"legacy\":\"json\"}";
    char id_b[TG_ULID_LEN + 1];
    memcpy(id_b, b->id, sizeof(id_b));
    tg_logstore_submit(s, a);
    tg_logstore_submit(s, b);
    tg_logstore_flush(s);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    json_t *one = NULL;
    T_EQ_INT(tg_logs_get(db, "local", "heads", id_a, &one, err, sizeof(err)), 0);
    T_EQ_STR(json_string_value(json_object_get(one, "request_head")),
             "{\"content-type\":\"application/json\",\"x-quote\":\"say \\\"hi\\\"\\\\now\",\"x-empty\":\"\","
             "\"x-ctl\":\"a\\tb\"}");
    T_EQ_STR(json_string_value(json_object_get(one, "response_head")), "{}");
    json_t *parsed = json_loads(json_string_value(json_object_get(one, "request_head")), 0, NULL);
    T_EQ_STR(json_string_value(json_object_get(parsed, "x-quote")), "say \"hi\"\\now");
    json_decref(parsed);
    json_decref(one);
    one = NULL;
    T_EQ_INT(tg_logs_get(db, "local", "heads", id_b, &one, err, sizeof(err)), 0);
    T_EQ_STR(json_string_value(json_object_get(one, "request_head")), "{\"legacy\":\"json\"}");
    T_OK(json_is_null(json_object_get(one, "response_head")));
    json_decref(one);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* The segment files of gateway number gw (0: all) in the payload directory. */
static int count_segments_of(int gw)
{
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%d-", gw);
    char path[512];
    snprintf(path, sizeof(path), "%s/" TG_LOGSEG_DIR, dir);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".seg") != NULL && (gw == 0 || strncmp(e->d_name, prefix, strlen(prefix)) == 0);
    if (d != NULL)
        closedir(d);
    return n;
}

static int count_segments(void)
{
    return count_segments_of(0);
}

/* The number of a gateway in the store. */
static int gateway_no(sqlite3 *db, const char *gateway)
{
    sqlite3_stmt *st = NULL;
    int gw = -1;
    sqlite3_prepare_v2(db, "SELECT gw FROM log_gateways WHERE gateway = ?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, gateway, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        gw = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return gw;
}

/* 1 when the file holds `text`, 0 when it does not, -1 when it cannot be read. */
static int file_holds(const char *path, const char *text)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    static char data[1 << 16];
    size_t n = fread(data, 1, sizeof(data), f);
    fclose(f);
    return memmem(data, n, text, strlen(text)) != NULL;
}

/* One record's body through the API; "" when it is not stored. */
static const char *body_of(sqlite3 *db, const char *gateway, const char *id, bool response, char *out, size_t outsz)
{
    tg_buf_t b;
    tg_buf_init(&b, 1 << 20);
    char *ct = NULL, err[256];
    out[0] = '\0';
    if (tg_logs_body(db, "local", gateway, id, response, &b, &ct, err, sizeof(err)) == TG_LQ_OK)
        snprintf(out, outsz, "%.*s", (int)b.len, b.base);
    free(ct);
    tg_buf_free(&b);
    return out;
}

/* Heads and bodies live in payload segments: they read back, a deleted record's bytes are freed, segments rotate and
 * one whose records are all gone is unlinked, and files no row refers to are swept at the next start. */
static void test_payloads(void)
{
    char err[512], got[1024];
    tg_logseg_max = 4096; /* a segment per few records */
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    static const char req[] = "{\"model\":\"gpt-4o\",\"messages\":[]}", resp[] = "{\"id\":\"chatcmpl-1\"}";
    char ids[40][TG_ULID_LEN + 1];
    for (int i = 0; i != 40; ++i) {
        tg_logrec_t *r = rec("pay", "openai", "gpt-4o", 200, 10, 0.1, 1795000000000ull + (uint64_t)i * 10, NULL);
        r->payload = true;
        r->request_head = "content-type: application/json\n";
        char *b = tg_logrec_alloc(r, 400);
        memset(b, 'x', 400);
        memcpy(b, req, sizeof(req) - 1);
        r->request_body = tg_iov(b, i == 0 ? sizeof(req) - 1 : 400);
        tg_logrec_body_init(r, 1 << 20);
        if (i == 0)
            tg_buf_append(&r->response_body, resp, sizeof(resp) - 1);
        else
            tg_buf_append(&r->response_body, TG_LIT("{\"id\":\"chatcmpl-other\"}"));
        r->log_management = 40;
        r->log_management_strategy = TG_LOGS_DELETE_OLDEST;
        memcpy(ids[i], r->id, sizeof(ids[i]));
        tg_logstore_submit(s, r);
        if (i % 8 == 7)
            tg_logstore_flush(s); /* five batches */
    }
    tg_logstore_flush(s);
    int segs = count_segments();
    T_OK(segs >= 4); /* ~40 records of ~500 bytes in segments of 4 KiB */
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_EQ_STR(body_of(db, "pay", ids[0], false, got, sizeof(got)), req);
    T_EQ_STR(body_of(db, "pay", ids[0], true, got, sizeof(got)), resp);
    T_EQ_INT(strlen(body_of(db, "pay", ids[39], false, got, sizeof(got))), 400);
    json_t *one = NULL;
    T_EQ_INT(tg_logs_get(db, "local", "pay", ids[5], &one, err, sizeof(err)), TG_LQ_OK);
    T_EQ_STR(json_string_value(json_object_get(one, "request_head")), "{\"content-type\":\"application/json\"}");
    T_OK(json_is_true(json_object_get(one, "payload")));
    json_decref(one);

    /* a delete through the API frees the record's bytes: its body is gone from the file too */
    tg_qparams_t q;
    tg_qparams_parse(&q, tg_iov_str("limit=1&order_by_direction=asc"), err, sizeof(err));
    int64_t deleted = 0;
    T_EQ_INT(tg_logs_delete(db, "local", "pay", &q, &deleted, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&q);
    T_EQ_INT(deleted, 1);
    T_EQ_STR(body_of(db, "pay", ids[0], false, got, sizeof(got)), "");
    char path[512];
    snprintf(path, sizeof(path), "%s/" TG_LOGSEG_DIR "/%d-1.seg", dir, gateway_no(db, "pay"));
    T_EQ_INT(file_holds(path, "chatcmpl-other"), 1); /* the first segment is there, the neighbours' answers in it */
    T_EQ_INT(file_holds(path, "chatcmpl-1\""), 0);   /* and the first record's answer is not */
    T_EQ_STR(body_of(db, "pay", ids[1], true, got, sizeof(got)), "{\"id\":\"chatcmpl-other\"}"); /* untouched */

    /* retention: the oldest go, and the segments they filled are unlinked */
    for (int i = 0; i != 24; ++i) {
        tg_logrec_t *r = rec("pay", "openai", "gpt-4o", 200, 10, 0.1, 1795000001000ull + (uint64_t)i, NULL);
        r->log_management = 10;
        r->log_management_strategy = TG_LOGS_DELETE_OLDEST;
        tg_logstore_submit(s, r);
    }
    tg_logstore_rows_deleted(s); /* (the API's delete, noticed with this batch) */
    tg_logstore_flush(s);
    tg_qparams_parse(&q, tg_iov_str(""), err, sizeof(err));
    json_t *result = NULL, *info = NULL;
    T_EQ_INT(tg_logs_list(db, "local", "pay", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_count")), 10);
    json_decref(result);
    json_decref(info);
    tg_qparams_free(&q);
    T_OK(count_segments() < segs); /* the early segments went with their records */
    T_EQ_STR(body_of(db, "pay", ids[39], false, got, sizeof(got)), "");
    /* deleting every record through the API: the writer, idle, is woken to unlink the segments (bounded wait) */
    static char head[2048];
    memset(head, 'h', sizeof(head) - 1);
    for (int b = 0; b != 3; ++b) { /* three more segments (each batch fills one past its 4 KiB) */
        for (int i = 0; i != 4; ++i) {
            tg_logrec_t *r =
                rec("pay", "openai", "gpt-4o", 200, 10, 0.1, 1795000002000ull + (uint64_t)(b * 4 + i), NULL);
            r->request_head = head;
            tg_logstore_submit(s, r);
        }
        tg_logstore_flush(s);
    }
    int gw = gateway_no(db, "pay");
    segs = count_segments_of(gw);
    tg_qparams_parse(&q, tg_iov_str(""), err, sizeof(err));
    T_EQ_INT(tg_logs_delete(db, "local", "pay", &q, &deleted, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&q);
    T_EQ_INT(deleted, 22); /* the 10 retention kept and the 12 since */
    tg_logstore_rows_deleted(s);
    for (int i = 0; i != 200 && count_segments_of(gw) > 1; ++i)
        usleep(10000);
    T_OK(segs > 1 && count_segments_of(gw) <= 1); /* the open one may stay */
    tg_logstore_release(s, db);
    tg_logstore_close(s);

    /* a file no row refers to (a batch that never committed) is swept at the next start */
    snprintf(path, sizeof(path), "%s/" TG_LOGSEG_DIR "/4000-7.seg", dir);
    FILE *f = fopen(path, "w");
    T_OK(f != NULL);
    if (f != NULL)
        fclose(f);
    s = open_store();
    if (s != NULL)
        tg_logstore_close(s);
    struct stat stt;
    T_OK(stat(path, &stt) != 0);
    tg_logseg_max = TG_LOGSEG_MAX;
}

/* Large groups of payloads are written around the page cache (O_DIRECT, whole blocks) and small ones buffered, in the
 * same segment: every body reads back, one larger than the staging buffer too. */
static void test_large_payloads(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    static const size_t sizes[] = {100, 70000, 300, 1500000, 5, 4096, 123457};
    char ids[20][TG_ULID_LEN + 1];
    size_t n = 0;
    for (int round = 0; round != 2; ++round) { /* a direct group, then a small buffered one after it */
        for (size_t i = 0; i != TG_ARRAY_SIZE(sizes); ++i) {
            if (round == 1 && sizes[i] > 500)
                continue;
            tg_logrec_t *r = rec("big", "openai", "gpt-4o", 200, (int64_t)sizes[i], 0, 1798000000000ull + n, NULL);
            r->payload = true;
            char *b = tg_logrec_alloc(r, sizes[i]);
            for (size_t j = 0; j != sizes[i]; ++j)
                b[j] = (char)('a' + (j * 7 + n) % 26);
            r->request_body = tg_iov(b, sizes[i]);
            memcpy(ids[n++], r->id, TG_ULID_LEN + 1);
            tg_logstore_submit(s, r);
        }
        tg_logstore_flush(s);
    }
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    size_t k = 0;
    for (int round = 0; round != 2; ++round) {
        for (size_t i = 0; i != TG_ARRAY_SIZE(sizes); ++i) {
            if (round == 1 && sizes[i] > 500)
                continue;
            tg_buf_t b;
            tg_buf_init(&b, 4 << 20);
            char *ct = NULL;
            T_EQ_INT(tg_logs_body(db, "local", "big", ids[k], false, &b, &ct, err, sizeof(err)), TG_LQ_OK);
            T_EQ_INT(b.len, sizes[i]);
            bool same = b.len == sizes[i];
            for (size_t j = 0; same && j != sizes[i]; ++j)
                same = b.base[j] == (char)('a' + (j * 7 + k) % 26);
            T_OK(same);
            free(ct);
            tg_buf_free(&b);
            ++k;
        }
    }
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* The live count of one segment of a gateway, -1 when it has no row. */
static int64_t segment_live(sqlite3 *db, int gw, int n)
{
    sqlite3_stmt *st = NULL;
    int64_t live = -1;
    sqlite3_prepare_v2(db, "SELECT live FROM log_segments WHERE gw = ? AND n = ?", -1, &st, NULL);
    sqlite3_bind_int(st, 1, gw);
    sqlite3_bind_int(st, 2, n);
    if (sqlite3_step(st) == SQLITE_ROW)
        live = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return live;
}

/* Failures inside a batch: a batch rolled back keeps the gateway it numbered (another gateway never shares its keys),
 * and retention that trims rows of its own batch leaves its segment's count right. */
static void test_batch_failures(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    char trigger[256];
    snprintf(trigger, sizeof(trigger),
             "CREATE TRIGGER boom BEFORE INSERT ON log_rows WHEN tg_rec(new.rec, %d) = 'boom' BEGIN SELECT "
             "RAISE(ROLLBACK, 'refused by the test'); END",
             (int)TG_LR_MODEL);
    T_EQ_INT(sqlite3_exec(db, trigger, NULL, NULL, NULL), SQLITE_OK);
    tg_logstore_submit(s, rec("fa", "openai", "boom", 200, 1, 0, 1799000000000ull, NULL));
    /* an admitted record lost with its batch gives its place back */
    T_OK(tg_logstore_admit(s, "local", "fs", 1));
    tg_logstore_submit(s, stop_rec_of("fs", "boom", 1, 1799000000000ull, true));
    tg_logstore_flush(s);
    tg_logstore_stats_t st;
    tg_logstore_stats(s, &st);
    T_OK(st.write_errors >= 1);
    T_EQ_INT(sqlite3_exec(db, "DROP TRIGGER boom", NULL, NULL, NULL), SQLITE_OK);
    T_OK(tg_logstore_admit(s, "local", "fs", 1));
    tg_logstore_submit(s, stop_rec_of("fs", "gpt-4o", 1, 1799000000000ull, true));
    tg_logstore_flush(s);
    T_OK(!tg_logstore_admit(s, "local", "fs", 1));
    /* a delete whose recount fails (the writer cannot drop the emptied segment, for the next 1.5 s): the full count
     * stays, and the writer counts again once it can, while nothing is submitted and no one else commits */
    char boom2[256];
    snprintf(boom2, sizeof(boom2),
             "CREATE TRIGGER boom2 BEFORE DELETE ON log_segments WHEN julianday('now') < %.9f BEGIN SELECT "
             "RAISE(ROLLBACK, 'refused by the test'); END",
             (double)(tg_now_unix_ms() + 1500) / 86400000.0 + 2440587.5);
    T_EQ_INT(sqlite3_exec(db, boom2, NULL, NULL, NULL), SQLITE_OK);
    tg_qparams_t dq;
    tg_qparams_parse(&dq, tg_iov_str(""), err, sizeof(err));
    int64_t gone = 0;
    T_EQ_INT(tg_logs_delete(db, "local", "fs", &dq, &gone, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&dq);
    T_EQ_INT(gone, 1);
    tg_logstore_rows_deleted(s);
    T_OK(!tg_logstore_admit(s, "local", "fs", 1));
    bool again = false;
    for (int i = 0; i != 600 && !again; ++i) { /* an idle writer's upkeep comes every ~2 s; 6 s at most */
        again = tg_logstore_admit(s, "local", "fs", 1);
        if (!again)
            usleep(10000);
    }
    T_OK(again);
    T_EQ_INT(sqlite3_exec(db, "DROP TRIGGER boom2", NULL, NULL, NULL), SQLITE_OK);
    tg_logstore_submit(s, rec("fa", "openai", "gpt-4o", 200, 2, 0, 1799000000001ull, NULL));
    tg_logstore_submit(s, rec("fb", "openai", "gpt-4o", 200, 3, 0, 1799000000002ull, NULL));
    tg_logstore_flush(s);
    tg_qparams_t q;
    json_t *result = NULL, *info = NULL;
    tg_qparams_parse(&q, tg_iov_str(""), err, sizeof(err));
    T_EQ_INT(tg_logs_list(db, "local", "fa", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_count")), 1);
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(result, 0), "duration")), 2);
    json_decref(result);
    json_decref(info);
    T_EQ_INT(tg_logs_list(db, "local", "fb", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_count")), 1);
    json_decref(result);
    json_decref(info);
    T_OK(gateway_no(db, "fa") > 0 && gateway_no(db, "fa") != gateway_no(db, "fb"));

    /* 50 records of a new gateway in one batch, retention keeping 5: the segment counts the 5 left */
    for (int i = 0; i != 50; ++i) {
        tg_logrec_t *r = rec("fc", "openai", "gpt-4o", 200, i, 0, 1799000001000ull + (uint64_t)i, NULL);
        r->log_management = 5;
        r->log_management_strategy = TG_LOGS_DELETE_OLDEST;
        tg_logstore_submit(s, r);
    }
    tg_logstore_flush(s);
    int gw = gateway_no(db, "fc");
    T_EQ_INT(segment_live(db, gw, 1), 5);
    T_EQ_INT(tg_logs_list(db, "local", "fc", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_count")), 5);
    json_decref(result);
    json_decref(info);
    tg_qparams_free(&q);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* Keys: many records in one millisecond (past the 512 a millisecond's keys tell apart), and records that finish after
 * newer ones, are all stored and listed newest first. */
static void test_keys(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t = 1796000000000ull;
    for (int i = 0; i != 600; ++i)
        tg_logstore_submit(s, rec("keys", "openai", "gpt-4o", 200, i, 0, t, NULL));
    tg_logstore_submit(s, rec("keys", "openai", "gpt-4o", 200, 1000, 0, t + 5, NULL));
    for (int i = 0; i != 50; ++i) /* late: created before the newest one stored */
        tg_logstore_submit(s, rec("keys", "openai", "gpt-4o", 200, 2000 + i, 0, t + 2, NULL));
    tg_logstore_flush(s);
    tg_logstore_stats_t st;
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.write_errors, 0);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    tg_qparams_t q;
    tg_qparams_parse(&q, tg_iov_str("per_page=50&page=1"), err, sizeof(err));
    json_t *result = NULL, *info = NULL;
    T_EQ_INT(tg_logs_list(db, "local", "keys", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&q);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_count")), 651);
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(result, 0), "duration")), 1000); /* the newest */
    T_EQ_INT(json_integer_value(json_object_get(json_array_get(result, 1), "duration")) >= 2000, 1);
    json_decref(result);
    json_decref(info);
    /* each is found by its id */
    tg_logrec_t *r = rec("keys", "openai", "gpt-4o", 200, 7, 0, t, NULL);
    char id[TG_ULID_LEN + 1];
    memcpy(id, r->id, sizeof(id));
    tg_logstore_submit(s, r);
    tg_logstore_flush(s);
    json_t *one = NULL;
    T_EQ_INT(tg_logs_get(db, "local", "keys", id, &one, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_integer_value(json_object_get(one, "duration")), 7);
    json_decref(one);
    T_EQ_INT(tg_logs_get(db, "local", "nokeys", id, &one, err, sizeof(err)), TG_LQ_NOT_FOUND);
    T_EQ_INT(tg_logs_get(db, "local", "keys", "not-a-ulid", &one, err, sizeof(err)), TG_LQ_NOT_FOUND);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* A record of gateway gw made at ms with response body "r<i>" (kept), and its id in id. */
static tg_logrec_t *keyed_rec(const char *gw, int i, uint64_t ms, char id[TG_ULID_LEN + 1])
{
    tg_logrec_t *r = rec(gw, "openai", "gpt-4o", 200, i, 0, ms, NULL);
    r->payload = true;
    tg_logrec_body_init(r, 1 << 10);
    char body[16];
    snprintf(body, sizeof(body), "r%d", i);
    tg_buf_append(&r->response_body, body, strlen(body));
    memcpy(id, r->id, TG_ULID_LEN + 1);
    return r;
}

/* Two gateways interleaved in each batch, late records between, and the newest rows deleted by another connection
 * between batches: every record is stored under the key it was given, found by its id with its own body, its key
 * never before its time nor more than TG_LOGSEQ_SPAN ms after. */
static void test_keys_two_gateways(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    enum { N = 300 };
    static char ids[3 * N][TG_ULID_LEN + 1];
    const char *gws[2] = {"two-a", "two-b"};
    uint64_t t = 1797000000000ull;
    int k = 0;
    for (int batch = 0; batch != 3; ++batch) {
        for (int i = 0; i != N; ++i, ++k) {
            uint64_t ms = t + (uint64_t)(batch * 100 + i / 20);
            if (i % 17 == 16)
                ms -= 2; /* late */
            tg_logstore_submit(s, keyed_rec(gws[i % 2], k, ms, ids[k]));
        }
        tg_logstore_flush(s);
        if (batch == 0) { /* the newest rows, of the newer gateway, deleted by another connection */
            sqlite3 *other = tg_logstore_acquire(s, err, sizeof(err));
            tg_qparams_t q;
            tg_qparams_parse(&q, tg_iov_str("limit=40"), err, sizeof(err));
            int64_t deleted = 0;
            T_EQ_INT(tg_logs_delete(other, "local", "two-b", &q, &deleted, err, sizeof(err)), TG_LQ_OK);
            T_EQ_INT(deleted, 40);
            tg_qparams_free(&q);
            tg_logstore_release(s, other);
            tg_logstore_rows_deleted(s);
        }
    }
    tg_logstore_stats_t st;
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.write_errors, 0);
    T_EQ_INT(st.written, 3 * N);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_EQ_INT(count_of(db, "two-a", "per_page=1", err, sizeof(err)), 3 * N / 2);
    T_EQ_INT(count_of(db, "two-b", "per_page=1", err, sizeof(err)), 3 * N / 2 - 40);
    int found = 0, bodies = 0, gone = 0;
    for (int i = 0; i != 3 * N; ++i) {
        json_t *one = NULL;
        char got[32], want[16];
        if (tg_logs_get(db, "local", gws[i % 2], ids[i], &one, err, sizeof(err)) != TG_LQ_OK) {
            gone++;
            continue;
        }
        found += json_integer_value(json_object_get(one, "duration")) == i;
        json_decref(one);
        snprintf(want, sizeof(want), "r%d", i);
        bodies += strcmp(body_of(db, gws[i % 2], ids[i], true, got, sizeof(got)), want) == 0;
    }
    T_EQ_INT(gone, 40);
    T_EQ_INT(found, 3 * N - 40);
    T_EQ_INT(bodies, 3 * N - 40);
    char sql[256]; /* (every record of the store so far: none is displaced before test_displaced) */
    snprintf(sql, sizeof(sql),
             "SELECT count(*), sum((seq >> %d) & %" PRIu64 " BETWEEN created_at AND created_at + %d) FROM logs",
             TG_LOGSEQ_MS_SHIFT, (uint64_t)TG_LOGSEQ_MAX_MS, TG_LOGSEQ_SPAN - 1);
    sqlite3_stmt *q = NULL;
    T_EQ_INT(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    T_EQ_INT(sqlite3_step(q), SQLITE_ROW);
    T_OK(sqlite3_column_int64(q, 0) >= 3 * N - 40);
    T_EQ_INT(sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 0));
    sqlite3_finalize(q);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* Late records whose keys are taken half the time, in the same statements as ones whose keys are free: a statement
 * stops at a taken key with the rows before it kept (INSERT OR FAIL), and the rest go in one by one: each record is
 * stored once, none lost and none twice. */
static void test_keys_taken_mid_statement(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t = 1796500000000ull;
    for (int i = 0; i != 600; ++i) /* every key of millisecond t taken, and some of t + 1 */
        tg_logstore_submit(s, rec("taken", "openai", "gpt-4o", 200, i, 0, t, NULL));
    tg_logstore_submit(s, rec("taken", "openai", "gpt-4o", 200, 1000, 0, t + 20, NULL)); /* the newest */
    tg_logstore_flush(s);
    enum { LATE = 48 };
    char ids[LATE][TG_ULID_LEN + 1];
    for (int i = 0; i != LATE; ++i) { /* in one batch: three statements of 16 rows */
        tg_logrec_t *r = rec("taken", "openai", "gpt-4o", 200, 2000 + i, 0, i % 2 ? t : t + 10, NULL);
        memcpy(ids[i], r->id, sizeof(ids[i]));
        tg_logstore_submit(s, r);
    }
    tg_logstore_flush(s);
    tg_logstore_stats_t st;
    tg_logstore_stats(s, &st);
    T_EQ_INT(st.write_errors, 0);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_EQ_INT(count_of(db, "taken", "per_page=1", err, sizeof(err)), 601 + LATE);
    for (int i = 0; i != LATE; ++i) {
        json_t *one = NULL;
        T_EQ_INT(tg_logs_get(db, "local", "taken", ids[i], &one, err, sizeof(err)), TG_LQ_OK);
        T_EQ_INT(json_integer_value(json_object_get(one, "duration")), 2000 + i);
        json_decref(one);
    }
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* A flood of one millisecond past what the keys near it hold: the overflow is displaced (listed apart) and still found
 * by id and by an end date; deleting it forgets the listing. */
static void test_displaced(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t = 1797000000000ull;
    char last[TG_ULID_LEN + 1];
    for (int i = 0; i != 2600; ++i) {
        tg_logrec_t *r = rec("flood", "openai", "gpt-4o", 200, i, 0, t, NULL);
        memcpy(last, r->id, sizeof(last));
        tg_logstore_submit(s, r);
        if (i % 500 == 499)
            tg_logstore_flush(s); /* (the queue holds 1000) */
    }
    tg_logstore_submit(s, rec("flood", "openai", "gpt-4o", 200, 9999, 0, t + 60000, NULL)); /* a minute later */
    tg_logstore_flush(s);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM log_displaced", -1, &st, NULL);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    int64_t moved = sqlite3_column_int64(st, 0);
    T_OK(moved > 0 && moved < 2600);
    sqlite3_reset(st);
    json_t *one = NULL;
    T_EQ_INT(tg_logs_get(db, "local", "flood", last, &one, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_integer_value(json_object_get(one, "duration")), 2599);
    json_decref(one);
    char q[256], ts[40];
    tg_format_iso8601_ms(t, ts, sizeof(ts));
    snprintf(q, sizeof(q), "end_date=%s", ts);
    tg_qparams_t qp;
    tg_qparams_parse(&qp, tg_iov_str(q), err, sizeof(err));
    json_t *result = NULL, *info = NULL;
    T_EQ_INT(tg_logs_list(db, "local", "flood", &qp, &result, &info, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&qp);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_count")), 2600); /* the displaced ones too */
    json_decref(result);
    json_decref(info);
    tg_qparams_parse(&qp, tg_iov_str("max_cost=1"), err, sizeof(err));
    int64_t deleted = 0;
    T_EQ_INT(tg_logs_delete(db, "local", "flood", &qp, &deleted, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&qp);
    T_EQ_INT(deleted, 2601);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int64(st, 0), 0);
    sqlite3_finalize(st);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* Runs `sql` (one or more statements) on {dir}/{name}/logs.db, made for it. */
static void make_db(const char *name, const char *sql, char *sub, size_t subsz)
{
    char path[600];
    snprintf(sub, subsz, "%s/%s", dir, name);
    mkdir(sub, 0700);
    snprintf(path, sizeof(path), "%s/logs.db", sub);
    sqlite3 *db = NULL;
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    T_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK);
    if (err != NULL)
        fprintf(stderr, "  %s\n", err);
    sqlite3_free(err);
    sqlite3_close(db);
}

/* A logs.db of layout 2 (two records of gateway local/old; %s, %s: their ids), as that version made it. */
static const char v2_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE logs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, account TEXT NOT NULL, gateway TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, provider TEXT, model TEXT, path TEXT, request_type TEXT,"
    " success INTEGER NOT NULL, status_code INTEGER, cached INTEGER NOT NULL, stream INTEGER NOT NULL,"
    " duration INTEGER NOT NULL, time_to_first_byte INTEGER, tokens_in INTEGER, tokens_out INTEGER,"
    " cached_tokens INTEGER, cache_write_tokens INTEGER, cost REAL, custom_cost INTEGER NOT NULL,"
    " metadata TEXT, event_id TEXT, step INTEGER, request_size INTEGER, response_size INTEGER,"
    " request_content_type TEXT, response_content_type TEXT, user_agent TEXT, request_head TEXT,"
    " response_head TEXT, error TEXT, payload INTEGER NOT NULL, request_body_dropped INTEGER NOT NULL,"
    " response_body_dropped INTEGER NOT NULL, feedback INTEGER, score REAL, request_body BLOB, response_body BLOB);"
    "CREATE INDEX logs_gw_time ON logs(account, gateway, created_at);"
    "CREATE INDEX logs_gw_event ON logs(account, gateway, event_id) WHERE event_id IS NOT NULL;"
    "CREATE TABLE log_metadata (seq INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);"
    "CREATE TRIGGER logs_cleanup AFTER DELETE ON logs BEGIN DELETE FROM log_metadata WHERE seq = old.seq; END;"
    "INSERT INTO logs VALUES (1, '%s', 'local', 'old', 1795000000000, 'openai', 'gpt-4o',"
    " 'chat/completions', 'native', 1, 200, 0, 1, 350, 120, 74, 19, 5, 0, 0.0001, 0, '{\"user\":\"ann\"}', 'ev-1',"
    " NULL, 20, 30, 'application/json', 'text/event-stream', 'curl/8', 'content-type: application/json\n',"
    " '{\"legacy\":\"json\"}', NULL, 1, 0, 0, 1, 0.5, CAST('{\"q\":1}' AS BLOB), CAST('data: x' AS BLOB));"
    "INSERT INTO logs VALUES (2, '%s', 'local', 'old', 1795000000001, 'anthropic', NULL,"
    " 'v1/messages', 'native', 0, 500, 0, 0, 10, 5, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, 2, 3,"
    " NULL, NULL, NULL, '', NULL, 'boom', 0, 0, 0, -1, NULL, NULL, NULL);"
    "INSERT INTO log_metadata VALUES (1, 'user', 'ann');"
    "PRAGMA user_version = 2;";

/* A logs.db of layout 3 (two records of gateway local/three; %lld, %s: key and id of each), as that version made it. */
static const char v3_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE log_gateways (gw INTEGER PRIMARY KEY, account TEXT NOT NULL, gateway TEXT NOT NULL,"
    " rows INTEGER NOT NULL DEFAULT 0, UNIQUE (account, gateway));"
    "CREATE TABLE log_segments (gw INTEGER NOT NULL, n INTEGER NOT NULL, live INTEGER NOT NULL,"
    " PRIMARY KEY (gw, n)) WITHOUT ROWID;"
    "CREATE TABLE logs ("
    " seq INTEGER PRIMARY KEY, id TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " provider TEXT, model TEXT, path TEXT, request_type TEXT,"
    " success INTEGER NOT NULL, status_code INTEGER, cached INTEGER NOT NULL,"
    " duration INTEGER NOT NULL, time_to_first_byte INTEGER,"
    " tokens_in INTEGER, tokens_out INTEGER, cached_tokens INTEGER, cache_write_tokens INTEGER, cost REAL,"
    " metadata TEXT, event_id TEXT, step INTEGER, request_size INTEGER, response_size INTEGER,"
    " request_content_type TEXT, response_content_type TEXT, user_agent TEXT, error TEXT,"
    " flags INTEGER NOT NULL, feedback INTEGER, score REAL, payload INTEGER);"
    "CREATE INDEX logs_event ON logs(event_id) WHERE event_id IS NOT NULL;"
    "CREATE TABLE log_displaced (seq INTEGER PRIMARY KEY, id TEXT NOT NULL);"
    "CREATE INDEX log_displaced_id ON log_displaced(id);"
    "INSERT INTO log_gateways VALUES (1, 'local', 'three', 2);"
    "INSERT INTO logs VALUES (%lld, '%s', 1795000000000, 'openai', 'gpt-4o', 'chat/completions', 'native',"
    " 1, 200, 0, 350, 120, 74, 19, 5, 0, 0.0001, '{\"user\":\"ann\"}', 'ev-3', 2, 20, 30,"
    " 'application/json', 'text/event-stream', 'curl/8', NULL, 1, 1, 0.5, NULL);"
    "INSERT INTO logs VALUES (%lld, '%s', 1795000000001, 'anthropic', NULL, 'v1/messages', 'native',"
    " 0, NULL, 1, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2, 3,"
    " NULL, NULL, NULL, 'boom', 0, NULL, NULL, NULL);"
    "PRAGMA user_version = 3;";

/* Opens the store a conversion test made in `sub` and lists gateway local/`gw` filtered by metadata.user=ann, which
 * matches one record: returns it (NULL when the store does not open), with the store, a connection and the list to
 * free in *s, *db and *result. */
static json_t *list_converted(const char *sub, const char *gw, tg_logstore_t **s, sqlite3 **db, json_t **result)
{
    char err[512];
    *db = NULL;
    *result = NULL;
    *s = tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err));
    T_OK(*s != NULL);
    if (*s == NULL) {
        fprintf(stderr, "  %s\n", err);
        return NULL;
    }
    *db = tg_logstore_acquire(*s, err, sizeof(err));
    tg_qparams_t q;
    tg_qparams_parse(&q, tg_iov_str("metadata.user=ann"), err, sizeof(err));
    json_t *info = NULL;
    T_EQ_INT(tg_logs_list(*db, "local", gw, &q, result, &info, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&q);
    json_decref(info);
    T_EQ_INT(json_array_size(*result), 1);
    return json_array_get(*result, 0);
}

/* A database of layout 2 (heads and bodies in the row, metadata in a table) is converted at open: its records keep
 * their ids, fields, bodies, heads, metadata and feedback. */
static void test_convert_v2(void)
{
    char sub[512], err[512], got[256];
    char id1[TG_ULID_LEN + 1], id2[TG_ULID_LEN + 1];
    tg_ulid(1795000000000, id1);
    tg_ulid(1795000000001, id2);
    char *sql = sqlite3_mprintf(v2_sql, id1, id2);
    make_db("v2", sql, sub, sizeof(sub));
    sqlite3_free(sql);
    tg_logstore_t *s;
    sqlite3 *db;
    json_t *result;
    json_t *a = list_converted(sub, "old", &s, &db, &result);
    if (s == NULL)
        return;
    T_EQ_STR(json_string_value(json_object_get(a, "id")), id1);
    T_EQ_INT(json_integer_value(json_object_get(a, "tokens_in")), 74);
    T_EQ_INT(json_integer_value(json_object_get(a, "cached_tokens")), 5);
    T_EQ_INT(json_integer_value(json_object_get(a, "feedback")), 1);
    T_OK(json_real_value(json_object_get(a, "score")) == 0.5);
    T_OK(json_is_true(json_object_get(a, "stream")));
    T_EQ_STR(json_string_value(json_object_get(a, "event_id")), "ev-1");
    json_decref(result);
    T_EQ_STR(body_of(db, "old", id1, false, got, sizeof(got)), "{\"q\":1}");
    T_EQ_STR(body_of(db, "old", id1, true, got, sizeof(got)), "data: x");
    json_t *one = NULL;
    T_EQ_INT(tg_logs_get(db, "local", "old", id1, &one, err, sizeof(err)), TG_LQ_OK);
    T_EQ_STR(json_string_value(json_object_get(one, "request_head")), "{\"content-type\":\"application/json\"}");
    T_EQ_STR(json_string_value(json_object_get(one, "response_head")), "{\"legacy\":\"json\"}");
    json_decref(one);
    T_EQ_INT(tg_logs_get(db, "local", "old", id2, &one, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_integer_value(json_object_get(one, "feedback")), -1);
    T_EQ_STR(json_string_value(json_object_get(one, "error")), "boom");
    T_OK(json_is_null(json_object_get(one, "response_head")));
    T_OK(json_is_false(json_object_get(one, "payload")));
    json_decref(one);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
    /* converted once: the reader opens it as this layout, and a second start finds nothing left to convert */
    db = tg_logstore_reader(sub, true, err, sizeof(err));
    T_OK(db != NULL);
    sqlite3_stmt *st = NULL;
    T_EQ_INT(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('logs_v2', 'log_metadata')", -1,
                                &st, NULL),
             SQLITE_OK);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* a conversion whose payloads cannot be written stops, and the old records stay where they were */
    sql = sqlite3_mprintf(v2_sql, id1, id2);
    make_db("v2bad", sql, sub, sizeof(sub));
    sqlite3_free(sql);
    char path[600];
    snprintf(path, sizeof(path), "%s/" TG_LOGSEG_DIR, sub);
    FILE *f = fopen(path, "w"); /* a file where the payload directory should be */
    if (f != NULL)
        fclose(f);
    s = tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err));
    T_OK(s == NULL);
    tg_logstore_close(s);
    snprintf(path, sizeof(path), "%s/logs.db", sub);
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_prepare_v2(db, "SELECT count(*) FROM logs_v2", -1, &st, NULL), SQLITE_OK);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int(st, 0), 2); /* the layout-2 records, all still there */
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* once the payload directory can be made, the next start finishes the conversion */
    snprintf(path, sizeof(path), "%s/" TG_LOGSEG_DIR, sub);
    unlink(path);
    s = tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err));
    T_OK(s != NULL);
    if (s != NULL) {
        db = tg_logstore_acquire(s, err, sizeof(err));
        T_EQ_STR(body_of(db, "old", id1, true, got, sizeof(got)), "data: x");
        tg_logstore_release(s, db);
        tg_logstore_close(s);
    }
}

/* Whether tg_logrow_split of p[0..n) has, for every field, what tg_logrow_get reads of it; returns split's result. */
static int split_agrees(const void *p, size_t n)
{
    tg_logrow_value_t all[TG_LR_NUM], v;
    int rc = tg_logrow_split(p, n, all);
    bool every = true;
    for (unsigned f = 0; f != TG_LR_NUM; ++f) {
        every = every && tg_logrow_get(p, n, f, &v) == 0;
        T_OK(all[f].type == v.type);
        if (all[f].type != v.type)
            continue;
        if (v.type == TG_LRV_INT)
            T_OK(all[f].i == v.i);
        else if (v.type == TG_LRV_REAL)
            T_OK(all[f].d == v.d);
        else if (v.type == TG_LRV_TEXT)
            T_OK(all[f].s == v.s && all[f].len == v.len);
    }
    T_EQ_INT(rc, every ? 0 : -1);
    return rc;
}

/* The packed row: every field reads back as packed, NULLs as NULL; a damaged row (cut short anywhere, another
 * version, random bytes) reads as an error or a value inside the row, never past its end (ASan watches). */
static void test_logrow(void)
{
    tg_logrow_t full = {
        .id = "01JD000000000000000000ABCD",
        .provider = "openai",
        .model = "gpt-4o",
        .path = "chat/completions",
        .request_type = "native",
        .request_content_type = "application/json",
        .response_content_type = "text/event-stream",
        .user_agent = "curl/8",
        .error = "",
        .created_at = 1799000000123,
        .success = 1,
        .status_code = 200,
        .cached = 0,
        .duration = 350,
        .ttfb = 0,
        .tokens_in = 74,
        .tokens_out = INT64_MAX - 1,
        .cached_tokens = 5,
        .cache_write_tokens = 0,
        .step = 127,
        .request_size = 128,
        .response_size = UINT64_C(1) << 40,
        .cost = 0.000125,
    };
    tg_buf_t b;
    tg_buf_init(&b, 1 << 16);
    T_EQ_INT(tg_logrow_pack(&b, &full), 0);
    tg_logrow_value_t v;
    const char *texts[TG_LR_NUM] = {[TG_LR_ID] = full.id,
                                    [TG_LR_PROVIDER] = full.provider,
                                    [TG_LR_MODEL] = full.model,
                                    [TG_LR_PATH] = full.path,
                                    [TG_LR_REQUEST_TYPE] = full.request_type,
                                    [TG_LR_REQUEST_CONTENT_TYPE] = full.request_content_type,
                                    [TG_LR_RESPONSE_CONTENT_TYPE] = full.response_content_type,
                                    [TG_LR_USER_AGENT] = full.user_agent,
                                    [TG_LR_ERROR] = full.error};
    int64_t ints[TG_LR_NUM] = {[TG_LR_CREATED_AT] = full.created_at,
                               [TG_LR_SUCCESS] = 1,
                               [TG_LR_STATUS_CODE] = 200,
                               [TG_LR_CACHED] = 0,
                               [TG_LR_DURATION] = 350,
                               [TG_LR_TTFB] = 0,
                               [TG_LR_TOKENS_IN] = 74,
                               [TG_LR_TOKENS_OUT] = INT64_MAX - 1,
                               [TG_LR_CACHED_TOKENS] = 5,
                               [TG_LR_CACHE_WRITE_TOKENS] = 0,
                               [TG_LR_STEP] = 127,
                               [TG_LR_REQUEST_SIZE] = 128,
                               [TG_LR_RESPONSE_SIZE] = INT64_C(1) << 40};
    for (unsigned f = 0; f != TG_LR_NUM; ++f) {
        T_EQ_INT(tg_logrow_get(b.base, b.len, f, &v), 0);
        if (f == TG_LR_COST) {
            T_OK(v.type == TG_LRV_REAL && v.d == 0.000125);
        } else if (texts[f] != NULL) {
            T_OK(v.type == TG_LRV_TEXT && v.len == strlen(texts[f]) && memcmp(v.s, texts[f], v.len) == 0);
        } else {
            T_OK(v.type == TG_LRV_INT);
            T_OK(v.i == ints[f]);
        }
    }
    T_EQ_INT(tg_logrow_get(b.base, b.len, TG_LR_NUM, &v), -1);
    T_EQ_INT(split_agrees(b.base, b.len), 0);
    /* cut short anywhere: the fields before the cut read, the one it falls in and those after are errors */
    for (size_t n = 0; n != b.len; ++n) {
        char *cut = malloc(n + 1); /* exactly n bytes readable to ASan (n + 1: malloc(0) may be NULL) */
        memcpy(cut, b.base, n);
        bool failed = false;
        for (unsigned f = 0; f != TG_LR_NUM; ++f) {
            int rc = tg_logrow_get(cut, n, f, &v);
            if (rc != 0) {
                failed = true;
                T_OK(v.type == TG_LRV_NULL);
            }
            if (rc == 0 && v.type == TG_LRV_TEXT)
                T_OK(v.s >= cut && v.s + v.len <= cut + n);
        }
        T_OK(failed); /* the last field always ends at the row's end */
        T_EQ_INT(split_agrees(cut, n), -1);
        free(cut);
    }
    b.base[0] = TG_LOGROW_VERSION + 1;
    T_EQ_INT(tg_logrow_get(b.base, b.len, TG_LR_ID, &v), -1);
    T_EQ_INT(split_agrees(b.base, b.len), -1);
    /* every field NULL; a cost that is NaN or negative is NULL too */
    tg_logrow_t empty = {.created_at = -1,
                         .success = -1,
                         .status_code = -1,
                         .cached = -1,
                         .duration = -1,
                         .ttfb = -1,
                         .tokens_in = -1,
                         .tokens_out = -1,
                         .cached_tokens = -1,
                         .cache_write_tokens = -1,
                         .step = -1,
                         .request_size = -1,
                         .response_size = -1,
                         .cost = NAN};
    tg_buf_reset(&b);
    T_EQ_INT(tg_logrow_pack(&b, &empty), 0);
    T_EQ_INT((int)b.len, 1 + TG_LR_NUM);
    for (unsigned f = 0; f != TG_LR_NUM; ++f) {
        T_EQ_INT(tg_logrow_get(b.base, b.len, f, &v), 0);
        T_OK(v.type == TG_LRV_NULL);
    }
    /* a buffer without room refuses and keeps what it had */
    tg_buf_t small;
    tg_buf_init(&small, 16);
    T_EQ_INT(tg_logrow_pack(&small, &full), TG_E_TOOBIG);
    T_EQ_INT((int)small.len, 0);
    tg_buf_free(&small);
    /* random bytes after a good version byte */
    uint64_t seed = 42;
    unsigned ok = 0;
    for (int round = 0; round != 20000; ++round) {
        size_t n = 1 + unit_rand(&seed) % 48;
        uint8_t *p = malloc(n);
        p[0] = TG_LOGROW_VERSION;
        for (size_t i = 1; i != n; ++i)
            p[i] = (uint8_t)unit_rand(&seed);
        unsigned f = unit_rand(&seed) % TG_LR_NUM;
        split_agrees(p, n);
        if (tg_logrow_get(p, n, f, &v) == 0) {
            ok++;
            if (v.type == TG_LRV_TEXT)
                T_OK(v.s >= (const char *)p && v.s + v.len <= (const char *)p + n);
        }
        free(p);
    }
    T_OK(ok != 0); /* the early fields of many random rows are valid */
    tg_buf_free(&b);
}

/* tg_rec keeps the last row it split: rows that look alike, and rows too large to keep (a long user agent), each
 * read as their own. */
static void test_rec_cache(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    static char ua[6001];
    memset(ua, 'u', sizeof(ua) - 1);
    uint64_t t0 = 1796000000000ull;
    for (int i = 0; i != 12; ++i) {
        char model[32];
        snprintf(model, sizeof(model), "m-%d", i % 2 != 0 ? 1 : i); /* odd ones alike but for their id and time */
        tg_logrec_t *r = rec("cache", "openai", model, 200, 10 + i % 2, 0.5, t0 + (uint64_t)i, NULL);
        r->user_agent = tg_logrec_strdup(r, i % 3 == 0 ? ua : "short/1");
        tg_logstore_submit(s, r);
    }
    tg_logstore_flush(s);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    tg_qparams_t q;
    tg_qparams_parse(&q, tg_iov_str("order_by_direction=asc&per_page=50"), err, sizeof(err));
    json_t *result = NULL, *info = NULL;
    T_EQ_INT(tg_logs_list(db, "local", "cache", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    T_EQ_INT(json_array_size(result), 12);
    for (int i = 0; i != 12 && i < (int)json_array_size(result); ++i) {
        json_t *a = json_array_get(result, (size_t)i);
        char model[32];
        snprintf(model, sizeof(model), "m-%d", i % 2 != 0 ? 1 : i);
        T_EQ_STR(json_string_value(json_object_get(a, "model")), model);
        T_EQ_INT(json_integer_value(json_object_get(a, "tokens_in")), 10 + i % 2);
        const char *got = json_string_value(json_object_get(a, "user_agent"));
        T_OK(got != NULL && strcmp(got, i % 3 == 0 ? ua : "short/1") == 0);
    }
    T_EQ_INT(json_integer_value(json_object_get(info, "max_tokens_in")), 11);
    json_decref(result);
    json_decref(info);
    tg_qparams_free(&q);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* A database of layout 3 (the fields as columns of `logs`) is converted at open: keys, fields, metadata, event id,
 * feedback, score and payload references stay as they were. */
static void test_convert_v3(void)
{
    char sub[512], err[512];
    char id1[TG_ULID_LEN + 1], id2[TG_ULID_LEN + 1];
    tg_ulid(1795000000000, id1);
    tg_ulid(1795000000001, id2);
    char *sql = sqlite3_mprintf(v3_sql, (long long)tg_logseq_at(1, 1795000000000), id1,
                                (long long)tg_logseq_at(1, 1795000000001), id2);
    make_db("v3", sql, sub, sizeof(sub));
    sqlite3_free(sql);
    sqlite3 *db = NULL;
    /* a reader refuses the old layout until the gateway has converted it */
    T_OK(tg_logstore_reader(sub, true, err, sizeof(err)) == NULL);
    T_OK(strstr(err, "layout 3") != NULL && strstr(err, "reads layout 5;") != NULL);
    /* and a database no gateway made yet says so */
    char none[512];
    make_db("none", "CREATE TABLE other (a);", none, sizeof(none));
    T_OK(tg_logstore_reader(none, true, err, sizeof(err)) == NULL);
    T_OK(strstr(err, "logs.db holds no logs yet") != NULL);
    tg_logstore_t *s;
    json_t *result, *info = NULL;
    json_t *a = list_converted(sub, "three", &s, &db, &result);
    if (s == NULL)
        return;
    T_EQ_STR(json_string_value(json_object_get(a, "id")), id1);
    T_EQ_STR(json_string_value(json_object_get(a, "model")), "gpt-4o");
    T_EQ_INT(json_integer_value(json_object_get(a, "tokens_in")), 74);
    T_EQ_INT(json_integer_value(json_object_get(a, "tokens_out")), 19);
    T_EQ_INT(json_integer_value(json_object_get(a, "cached_tokens")), 5);
    T_EQ_INT(json_integer_value(json_object_get(a, "duration")), 350);
    T_EQ_INT(json_integer_value(json_object_get(a, "status_code")), 200);
    T_EQ_INT(json_integer_value(json_object_get(a, "step")), 2);
    T_EQ_INT(json_integer_value(json_object_get(a, "feedback")), 1);
    T_OK(json_real_value(json_object_get(a, "score")) == 0.5);
    T_OK(json_real_value(json_object_get(a, "cost")) == 0.0001);
    T_OK(json_is_true(json_object_get(a, "stream")));
    T_EQ_STR(json_string_value(json_object_get(a, "event_id")), "ev-3");
    T_EQ_STR(json_string_value(json_object_get(a, "user_agent")), "curl/8");
    json_decref(result);
    json_t *one = NULL;
    T_EQ_INT(tg_logs_get(db, "local", "three", id2, &one, err, sizeof(err)), TG_LQ_OK);
    T_EQ_STR(json_string_value(json_object_get(one, "error")), "boom");
    T_OK(json_is_null(json_object_get(one, "model")));
    T_OK(json_is_null(json_object_get(one, "tokens_in")));
    T_OK(json_is_null(json_object_get(one, "cost")));
    T_OK(json_is_true(json_object_get(one, "cached")));
    T_OK(json_is_false(json_object_get(one, "success")));
    json_decref(one);
    tg_logstore_release(s, db);
    /* new records go on after the converted ones, in the same gateway */
    tg_logstore_submit(s, rec("three", "openai", "gpt-4o-mini", 200, 9, 0, 1795000000005ull, NULL));
    tg_logstore_flush(s);
    db = tg_logstore_acquire(s, err, sizeof(err));
    tg_qparams_t q;
    tg_qparams_parse(&q, tg_iov_str(""), err, sizeof(err));
    T_EQ_INT(tg_logs_list(db, "local", "three", &q, &result, &info, err, sizeof(err)), TG_LQ_OK);
    tg_qparams_free(&q);
    T_EQ_INT(json_integer_value(json_object_get(info, "total_count")), 3);
    T_EQ_STR(json_string_value(json_object_get(json_array_get(result, 0), "model")), "gpt-4o-mini");
    json_decref(result);
    json_decref(info);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
    db = tg_logstore_reader(sub, true, err, sizeof(err));
    T_OK(db != NULL);
    sqlite3_stmt *st = NULL;
    T_EQ_INT(sqlite3_prepare_v2(db,
                                "SELECT (SELECT count(*) FROM sqlite_schema WHERE name IN ('logs_v3', 'logs_event')),"
                                " (SELECT count(*) FROM log_rows)",
                                -1, &st, NULL),
             SQLITE_OK);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int(st, 0), 0);
    T_EQ_INT(sqlite3_column_int(st, 1), 3);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The records of gateway local/`gw` in the store at sub, counted through the view: all of them, and distinct ids. */
static void count_ids(const char *sub, const char *gw, int64_t *all, int64_t *distinct)
{
    char err[512];
    *all = *distinct = -1;
    sqlite3 *db = tg_logstore_reader(sub, true, err, sizeof(err));
    T_OK(db != NULL);
    if (db == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    sqlite3_stmt *st = NULL;
    T_EQ_INT(sqlite3_prepare_v2(db,
                                "SELECT count(*), count(DISTINCT l.id) FROM logs l JOIN log_gateways g"
                                " ON l.seq >> 51 = g.gw WHERE g.account = 'local' AND g.gateway = ?1",
                                -1, &st, NULL),
             SQLITE_OK);
    sqlite3_bind_text(st, 1, gw, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *all = sqlite3_column_int64(st, 0);
        *distinct = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Conversions cut short go on where they stopped: one from layout 3 stopped after its first chunk, and one from
 * layout 2 that a Tollgate of layout 3 began (its converted records in layout 3's table, the rest in logs_v2). */
static void test_convert_resume(void)
{
    char sub[512], err[512];
    char id1[TG_ULID_LEN + 1], id2[TG_ULID_LEN + 1];
    tg_ulid(1795000000000, id1);
    tg_ulid(1795000000001, id2);
    int64_t all, distinct;

    /* layout 3, 1,502 records (one a millisecond); a trigger stops the delete of the second chunk (past the 1000th)
     * from the old table */
    char *v3 = sqlite3_mprintf(v3_sql, (long long)tg_logseq_at(1, 1795000000000), id1,
                               (long long)tg_logseq_at(1, 1795000000001), id2);
    char *sql = sqlite3_mprintf(
        "%s WITH RECURSIVE c(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM c WHERE i < 1501)"
        " INSERT INTO logs (seq, id, created_at, success, cached, duration, flags)"
        " SELECT %lld + ((1795000000000 + i) << %d), printf('id-%%d', i), 1795000000000 + i, 1, 0, i, 0 FROM c;"
        " UPDATE log_gateways SET rows = 1502;"
        " CREATE TRIGGER stop BEFORE DELETE ON logs WHEN old.seq > %lld"
        " BEGIN SELECT RAISE(ABORT, 'stopped by the test'); END;",
        v3, (long long)tg_logseq_first(1), TG_LOGSEQ_MS_SHIFT, (long long)tg_logseq_at(1, 1795000000999));
    make_db("v3cut", sql, sub, sizeof(sub));
    sqlite3_free(sql);
    T_OK(tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err)) == NULL);
    T_OK(strstr(err, "stopped by the test") != NULL && strstr(err, "logs_v3") != NULL);
    char path[600];
    snprintf(path, sizeof(path), "%s/logs.db", sub);
    sqlite3 *db = NULL;
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    T_EQ_INT(
        sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM log_rows), (SELECT count(*) FROM logs_v3)", -1, &st, NULL),
        SQLITE_OK);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int(st, 0), 1000); /* the first chunk is in */
    T_EQ_INT(sqlite3_column_int(st, 1), 502);
    sqlite3_finalize(st);
    T_EQ_INT(sqlite3_exec(db, "DROP TRIGGER stop", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    tg_logstore_t *s = tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err));
    T_OK(s != NULL);
    tg_logstore_close(s);
    count_ids(sub, "three", &all, &distinct);
    T_EQ_INT(all, 1502);
    T_EQ_INT(distinct, 1502);

    /* layout 2 half converted by layout 3: old's first record is in `logs` (here, as two records of "three"), its
     * second still in logs_v2 */
    char *v2 = sqlite3_mprintf(v2_sql, id1, id2);
    sql = sqlite3_mprintf("%s ALTER TABLE logs RENAME TO logs_v2; DROP TRIGGER logs_cleanup; DROP INDEX logs_gw_time;"
                          " DROP INDEX logs_gw_event; DROP TABLE log_metadata; DELETE FROM logs_v2 WHERE seq = 1;"
                          " %s PRAGMA user_version = 2;",
                          v2, v3);
    make_db("v2by3", sql, sub, sizeof(sub));
    sqlite3_free(sql);
    sqlite3_free(v2);
    sqlite3_free(v3);
    s = tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err));
    T_OK(s != NULL);
    if (s == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    tg_logstore_close(s);
    count_ids(sub, "three", &all, &distinct);
    T_EQ_INT(all, 2);
    count_ids(sub, "old", &all, &distinct);
    T_EQ_INT(all, 1);
    db = tg_logstore_reader(sub, true, err, sizeof(err));
    T_OK(db != NULL);
    if (db == NULL)
        return;
    T_EQ_INT(sqlite3_prepare_v2(db,
                                "SELECT (SELECT count(*) FROM sqlite_schema WHERE name IN ('logs_v2', 'logs_v3')),"
                                " (SELECT model FROM logs WHERE id = ?1), (SELECT error FROM logs WHERE id = ?2)",
                                -1, &st, NULL),
             SQLITE_OK);
    sqlite3_bind_text(st, 1, id1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id2, -1, SQLITE_STATIC);
    T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int(st, 0), 0);
    T_EQ_STR((const char *)sqlite3_column_text(st, 1), "gpt-4o");
    T_EQ_STR((const char *)sqlite3_column_text(st, 2), "boom");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A flush does not wait for the group commit's company: fifty one-record flushes take well under half of what fifty
 * of its 20 ms waits would (1 s; each is one small transaction, ~1 ms, a few under ASan), and each stores its
 * record. */
static void test_flush_prompt(void)
{
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    tg_logstore_stats_t before, after;
    tg_logstore_stats(s, &before);
    uint64_t t0 = tg_now_mono_ns();
    for (int i = 0; i != 50; ++i) {
        tg_logstore_submit(s, rec("flush", "openai", "gpt-4o", 200, i, 0.1, 1795000000000ull + (uint64_t)i, NULL));
        tg_logstore_flush(s);
        tg_logstore_stats(s, &after);
        T_EQ_INT((int)(after.written - before.written), i + 1);
    }
    uint64_t took_ms = (tg_now_mono_ns() - t0) / 1000000;
    T_OK(took_ms < 500);
    if (took_ms >= 500 || getenv("UNIT_VERBOSE") != NULL)
        fprintf(stderr, "  50 flushes took %llu ms\n", (unsigned long long)took_ms);
    tg_logstore_close(s);
}

/* A written record comes back to the thread that made it and is made again from the same block, with its response
 * buffer; once the writer has been idle a second, every thread's kept records are freed. */
static void test_record_reuse(void)
{
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    tg_logrec_t *r = rec("reuse", "openai", "gpt-4o", 200, 1, 0.1, 1795000000000ull, NULL);
    r->payload = true;
    tg_logrec_body_init(r, 1 << 20);
    char body[600];
    memset(body, 'b', sizeof(body));
    tg_buf_append(&r->response_body, body, sizeof(body));
    (void)tg_logrec_alloc(r, 4096); /* past the inline arena: a chunk, which is not kept */
    const tg_logrec_t *block = r;
    char first[TG_ULID_LEN + 1], second[TG_ULID_LEN + 1];
    memcpy(first, r->id, sizeof(first));
    const char *buf = r->response_body.base;
    size_t cap = r->response_body.cap;
    tg_logstore_submit(s, r);
    tg_logstore_flush(s);

    tg_logrec_t *again = rec("reuse", "openai", "gpt-4o", 200, 2, 0.1, 1795000000001ull, NULL);
    T_OK(again == block);
    T_OK(again->response_body.len == 0 && again->response_body.base == NULL && again->response_body.max == 0);
    T_OK(again->chunks == NULL && again->arena_left < again->arena_size);
    T_EQ_INT((int)again->step, -1);
    T_OK(again->cost == 0.1 && !again->response_body_dropped && again->error == NULL);
    again->payload = true;
    tg_logrec_body_init(again, 1 << 20);
    T_OK(again->response_body.base == buf && again->response_body.cap == cap && again->response_body.len == 0);
    T_EQ_INT(tg_buf_append(&again->response_body, TG_LIT("{}")), 0);
    T_OK(again->response_body.base == buf);
    memcpy(second, again->id, sizeof(second));
    tg_logstore_submit(s, again);
    tg_logstore_flush(s);

    /* a block for a much larger request is a new one; the kept one stays for the next small record */
    tg_logrec_t *big = tg_logrec_new(1795000000002ull, 64 << 10);
    T_OK(big != block && big->_body_spare == NULL);
    tg_logrec_free(big);

    /* the writer's idle second frees what was kept: the next record has no buffer to take (polling by making records
     * would take the spare itself, so a wait with room for a slow writer) */
    usleep(2500 * 1000);
    tg_logrec_t *late = rec("reuse", "openai", "gpt-4o", 200, 3, 0.1, 1795000000003ull, NULL);
    T_OK(late->_body_spare == NULL);
    tg_logrec_body_init(late, 1 << 20);
    T_OK(late->response_body.cap == 0);
    tg_logrec_free(late);

    /* each stored what it was given, the reused one nothing of the first */
    char err[256], got[1024];
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_EQ_INT(strlen(body_of(db, "reuse", first, true, got, sizeof(got))), sizeof(body));
    T_EQ_STR(body_of(db, "reuse", second, true, got, sizeof(got)), "{}");
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* A store of its own in the scratch directory's `name` (so its first gateway is number 1), its path in sub; NULL (a
 * failed check) if it fails. */
static tg_logstore_t *open_store_in(const char *name, char *sub, size_t subsz)
{
    char err[512];
    snprintf(sub, subsz, "%s/%s", dir, name);
    T_EQ_INT(mkdir(sub, 0700), 0);
    tg_logstore_t *s = tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err));
    T_OK(s != NULL);
    if (s == NULL)
        fprintf(stderr, "  cannot open the store: %s\n", err);
    return s;
}

/* One count of `sql` with ?1 bound to v (a copy of its value; NULL: nothing bound); -1 on an error. */
static int64_t count_bound(sqlite3 *db, const char *sql, sqlite3_value *v)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (v != NULL)
            sqlite3_bind_value(st, 1, v);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* The keys `sql` lists (at most cap) into keys; how many, -1 on an error. */
static int list_keys(sqlite3 *db, const char *sql, int64_t *keys, int cap)
{
    sqlite3_stmt *st = NULL;
    int n = 0, rc = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK)
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && n != cap)
            keys[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : -1;
}

static int cmp_i64_keys(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*
 * temp.logs (logtab.h) over blocks (logrow.h) and rows of their own: every record once; the constraints on seq it
 * narrows its scan by answer what the same constraint answers on a plain table of the records' keys, for bounds of
 * every type (an integer, a REAL between two keys and on one, a numeric and a non-numeric TEXT, NULL); newest first
 * is exact, late records (rows of their own with keys inside a block's) among the block's records; event_id = ? reads
 * the index.
 */
static void test_logtab(void)
{
    char err[512], sub[600];
    tg_logstore_t *s = open_store_in("tab", sub, sizeof(sub));
    if (s == NULL)
        return;
    uint64_t t = 1797000000000ull;
    for (int i = 0; i != 300; ++i) {
        const char *meta = i % 9 == 0 ? "{\"u\":\"x\"}" : NULL;
        tg_logrec_t *r = rec("tab", "openai", "gpt-4o", 200, i, 0, t + (uint64_t)i / 7, meta);
        if (i % 50 == 3)
            r->event_id = tg_logrec_strdup(r, i < 150 ? "ev-a" : "ev-b");
        tg_logstore_submit(s, r);
    }
    tg_logstore_flush(s); /* (a batch's records take keys in the order they were made: late ones come after) */
    for (int i = 0; i != 20; ++i) /* late */
        tg_logstore_submit(s, rec("tab", "openai", "gpt-4o", 200, 1000 + i, 0, t + 3 + (uint64_t)i, NULL));
    tg_logstore_flush(s);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    if (db == NULL) {
        tg_logstore_close(s);
        return;
    }
    /* blocks, and late rows with keys inside a block's */
    T_OK(count_bound(db, "SELECT count(*) FROM log_rows WHERE flags & " TG_STR(TG_LOGFLAG_BLOCK), NULL) >= 5);
    T_OK(count_bound(db, "SELECT count(*) FROM log_rows", NULL) < 100);
    T_OK(count_bound(db,
                     "SELECT count(*) FROM log_rows a WHERE (a.flags & " TG_STR(TG_LOGFLAG_BLOCK) ") = 0 AND EXISTS"
                     " (SELECT 1 FROM log_rows b WHERE b.flags & " TG_STR(TG_LOGFLAG_BLOCK) " AND b.seq > a.seq AND"
                     " (SELECT min(seq) FROM logs WHERE seq BETWEEN b.seq - " TG_STR(TG_LOGBLOCK_SPAN_MS) " * 512 AND"
                     " b.seq AND seq > (SELECT max(c.seq) FROM log_rows c WHERE c.seq < b.seq AND c.flags & "
                     TG_STR(TG_LOGFLAG_BLOCK) ")) < a.seq)",
                     NULL) >= 5);
    /* every record once */
    int64_t all[400], got[400];
    int n = list_keys(db, "SELECT seq FROM logs", all, 400);
    T_EQ_INT(n, 320);
    if (n != 320) {
        tg_logstore_release(s, db);
        tg_logstore_close(s);
        return;
    }
    qsort(all, 320, sizeof(*all), cmp_i64_keys);
    int distinct = 1;
    for (int i = 1; i != 320; ++i)
        distinct += all[i] != all[i - 1];
    T_EQ_INT(distinct, 320);
    T_EQ_INT(sqlite3_exec(db, "CREATE TEMP TABLE k (seq INTEGER PRIMARY KEY); INSERT INTO k SELECT seq FROM logs", NULL,
                          NULL, NULL),
             SQLITE_OK);
    /* a key with keys either side of it (gateway 1's keys are below 2^52, where a double holds every half: the REAL
     * bounds below fall between two keys) */
    int64_t pivot = count_bound(db,
                                "SELECT a.seq FROM temp.k a WHERE a.seq < 4503599627370496 AND"
                                " a.seq + 1 IN (SELECT seq FROM temp.k) AND a.seq - 1 IN (SELECT seq FROM temp.k)"
                                " ORDER BY a.seq LIMIT 1 OFFSET 40",
                                NULL);
    T_OK(pivot > 0);
    char text[32];
    snprintf(text, sizeof(text), "%" PRId64, pivot);
    sqlite3_stmt *vals = NULL;
    T_EQ_INT(sqlite3_prepare_v2(db, "VALUES (?1), (?1 + 0.5), (CAST(?1 AS REAL)), (?1 - 0.5), (?2), ('abc'), (NULL)",
                                -1, &vals, NULL),
             SQLITE_OK);
    sqlite3_bind_int64(vals, 1, pivot);
    sqlite3_bind_text(vals, 2, text, -1, SQLITE_STATIC);
    static const char *const ops[] = {"seq = ?1",   "seq > ?1",      "seq >= ?1",    "seq < ?1",
                                      "seq <= ?1",  "rowid > ?1",    "rowid <= ?1",  "?1 < seq",
                                      "seq > ?1 AND seq < ?1 + 40", "seq BETWEEN ?1 - 9 AND ?1 + 9"};
    int compared = 0;
    while (sqlite3_step(vals) == SQLITE_ROW) {
        sqlite3_value *v = sqlite3_value_dup(sqlite3_column_value(vals, 0));
        for (size_t i = 0; i != sizeof(ops) / sizeof(*ops); ++i) {
            char a[160], b[160];
            snprintf(a, sizeof(a), "SELECT count(*) FROM logs WHERE %s", ops[i]);
            snprintf(b, sizeof(b), "SELECT count(*) FROM temp.k WHERE %s", ops[i]);
            int64_t want = count_bound(db, b, v), got_n = count_bound(db, a, v);
            T_OK(want >= 0);
            T_EQ_INT(got_n, want);
            if (got_n != want)
                fprintf(stderr, "  %s with %s\n", ops[i], (const char *)sqlite3_value_text(v));
            compared++;
        }
        sqlite3_value_free(v);
    }
    sqlite3_finalize(vals);
    T_EQ_INT(compared, 70);
    /* newest first, whole and paged; oldest first (sorted by SQLite) */
    T_EQ_INT(list_keys(db, "SELECT seq FROM logs ORDER BY seq DESC", got, 400), 320);
    int in_order = 0;
    for (int i = 0; i != 320; ++i)
        in_order += got[i] == all[319 - i];
    T_EQ_INT(in_order, 320);
    T_EQ_INT(list_keys(db, "SELECT seq FROM logs ORDER BY seq DESC LIMIT 20 OFFSET 7", got, 400), 20);
    T_OK(got[0] == all[319 - 7] && got[19] == all[319 - 26]);
    T_EQ_INT(list_keys(db, "SELECT seq FROM logs ORDER BY seq LIMIT 64 OFFSET 100", got, 400), 64);
    T_OK(memcmp(got, all + 100, 64 * sizeof(*got)) == 0);
    /* newest first inside a range that cuts blocks */
    char q[400];
    snprintf(q, sizeof(q), "SELECT seq FROM logs WHERE seq BETWEEN %" PRId64 " AND %" PRId64 " ORDER BY seq DESC",
             all[33], all[250]);
    T_EQ_INT(list_keys(db, q, got, 400), 218);
    T_OK(got[0] == all[250] && got[217] == all[33]);
    int64_t want[8];
    T_EQ_INT(list_keys(db, "SELECT l.seq FROM logs l WHERE l.event_id = 'ev-a' ORDER BY l.seq DESC", got, 400), 3);
    T_EQ_INT(list_keys(db, "SELECT seq FROM log_rows WHERE event_id = 'ev-a' ORDER BY seq DESC", want, 8), 3);
    T_OK(memcmp(got, want, sizeof(*got) * 3) == 0);
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs WHERE event_id = ?1 AND duration >= 150", NULL), 0);
    /* the fields and metadata read back as the writer packed them */
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs WHERE model = 'gpt-4o' AND duration = tokens_in", NULL), 320);
    T_EQ_INT(count_bound(db, "SELECT sum(duration) FROM logs", NULL), 299 * 300 / 2 + 20 * 1000 + 190);
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs WHERE metadata = '{\"u\":\"x\"}' AND duration % 9 = 0", NULL),
             34);
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs WHERE metadata IS NOT NULL", NULL), 34);
    /* a record taken out of its block keeps its fields, once (one in a block: no row has its key) */
    int64_t inblock = count_bound(db,
                                  "SELECT min(k.seq) FROM temp.k k WHERE k.seq > (SELECT seq FROM temp.k LIMIT 1 OFFSET"
                                  " 100) AND NOT EXISTS (SELECT 1 FROM log_rows r WHERE r.seq = k.seq)",
                                  NULL);
    T_OK(inblock > 0);
    snprintf(q, sizeof(q), "SELECT duration FROM logs WHERE seq = %" PRId64, inblock);
    int64_t dur = count_bound(db, q, NULL);
    int moved = -1;
    T_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    T_EQ_INT(tg_logblock_unblock(db, inblock, &moved), SQLITE_OK);
    T_EQ_INT(moved, 1);
    T_EQ_INT(tg_logblock_unblock(db, inblock, &moved), SQLITE_OK);
    T_EQ_INT(moved, 0);
    T_EQ_INT(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    snprintf(q, sizeof(q), "SELECT count(*) FROM log_rows WHERE seq = %" PRId64 " AND (flags & %d) = 0", inblock,
             TG_LOGFLAG_BLOCK);
    T_EQ_INT(count_bound(db, q, NULL), 1);
    snprintf(q, sizeof(q), "SELECT duration FROM logs WHERE seq = %" PRId64, inblock);
    T_EQ_INT(count_bound(db, q, NULL), dur);
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs", NULL), 320);
    /* deletes: three of a block, the one taken out, a late row, the last of a block (which is keyed again), and a key
     * no record has */
    int64_t last_of_block = count_bound(db, "SELECT max(seq) FROM log_rows WHERE flags & " TG_STR(TG_LOGFLAG_BLOCK),
                                        NULL);
    int64_t late = count_bound(db,
                               "SELECT min(seq) FROM log_rows WHERE (flags & " TG_STR(TG_LOGFLAG_BLOCK)
                               ") = 0 AND event_id IS NULL AND (seq & 511) >= " TG_STR(TG_LOGSEQ_LATE_N),
                               NULL);
    int64_t gone[8] = {all[40], all[41], all[45], inblock, late, last_of_block, all[319] + 1};
    qsort(gone, 7, sizeof(*gone), cmp_i64_keys);
    tg_logdeleted_t *del = NULL;
    size_t ndel = 0, cap = 0;
    T_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    T_EQ_INT(tg_logblock_delete(db, gone, 7, &del, &ndel, &cap), SQLITE_OK);
    T_EQ_INT(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    T_EQ_INT(ndel, 6);
    free(del);
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs", NULL), 314);
    for (int i = 0; i != 7; ++i) {
        snprintf(q, sizeof(q), "SELECT count(*) FROM logs WHERE seq = %" PRId64, gone[i]);
        T_EQ_INT(count_bound(db, q, NULL), 0);
    }
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs l JOIN temp.k USING (seq)", NULL), 314);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
    /* a layout-4 store (rows of their own only) is a layout-5 one: a reader asks for a start of the gateway, which
     * changes its number and keeps every record */
    char path[700];
    snprintf(path, sizeof(path), "%s/logs.db", sub);
    sqlite3 *raw = NULL;
    T_EQ_INT(sqlite3_open(path, &raw), SQLITE_OK);
    T_EQ_INT(sqlite3_exec(raw, "PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    T_OK(tg_logstore_reader(sub, true, err, sizeof(err)) == NULL);
    T_OK(strstr(err, "layout 4") != NULL && strstr(err, "start the gateway once") != NULL);
    s = tg_logstore_open(sub, 1000, 1 << 26, err, sizeof(err));
    T_OK(s != NULL);
    if (s == NULL)
        return;
    tg_logstore_close(s);
    db = tg_logstore_reader(sub, true, err, sizeof(err));
    T_OK(db != NULL);
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM logs", NULL), 314);
    sqlite3_close(db);
}

/* A batch's records take keys in the order they were made, not the order they finished: 64 records queued newest
 * first, a millisecond apart, go into blocks whole (none late, TG_LOGBLOCK_SPAN_MS to a block), and newest first
 * lists them by their time. */
static void test_batch_order(void)
{
    char err[512], sub[600];
    tg_logstore_t *s = open_store_in("order", sub, sizeof(sub));
    if (s == NULL)
        return;
    uint64_t t = 1798000000000ull;
    for (int i = 63; i >= 0; --i)
        tg_logstore_submit(s, rec("order", "openai", "gpt-4o", 200, i, 0, t + (uint64_t)i, NULL));
    tg_logstore_flush(s);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    if (db == NULL) {
        tg_logstore_close(s);
        return;
    }
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM log_rows WHERE (flags & " TG_STR(TG_LOGFLAG_BLOCK) ") = 0", NULL),
             0);
    T_EQ_INT(count_bound(db, "SELECT count(*) FROM log_rows", NULL), 64 / TG_LOGBLOCK_SPAN_MS); /* a ms each */
    int64_t d[64];
    T_EQ_INT(list_keys(db, "SELECT duration FROM logs ORDER BY seq DESC", d, 64), 64);
    int in_order = 0;
    for (int i = 0; i != 64; ++i)
        in_order += d[i] == 63 - i;
    T_EQ_INT(in_order, 64);
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

/* Blocks and rows of their own of two gateways in one batch: each gateway's segment counts every record with a
 * payload, and every body reads back (the batch's bookkeeping after insert_rows sees each record once). */
static void test_blocks_two_gateways(void)
{
    char err[512], sub[600];
    tg_logstore_t *s = open_store_in("blk2", sub, sizeof(sub));
    if (s == NULL)
        return;
    uint64_t t = 1799000000000ull;
    char ida[40][TG_ULID_LEN + 1], idb[3][TG_ULID_LEN + 1];
    for (int i = 0; i != 40; ++i) /* blocks */
        tg_logstore_submit(s, keyed_rec("blk-a", i, t + (uint64_t)i / 8, ida[i]));
    for (int i = 0; i != 3; ++i) { /* rows of their own (event ids) */
        tg_logrec_t *r = keyed_rec("blk-b", 100 + i, t, idb[i]);
        r->event_id = tg_logrec_strdup(r, "ev");
        tg_logstore_submit(s, r);
    }
    tg_logstore_flush(s);
    sqlite3 *db = tg_logstore_acquire(s, err, sizeof(err));
    T_OK(db != NULL);
    if (db == NULL) {
        tg_logstore_close(s);
        return;
    }
    T_OK(count_bound(db, "SELECT count(*) FROM log_rows WHERE flags & " TG_STR(TG_LOGFLAG_BLOCK), NULL) >= 2);
    int ga = gateway_no(db, "blk-a"), gb = gateway_no(db, "blk-b");
    T_EQ_INT(segment_live(db, ga, 1), 40);
    T_EQ_INT(segment_live(db, gb, 1), 3);
    char body[64];
    int good = 0;
    for (int i = 0; i != 40; ++i) {
        char want[16];
        snprintf(want, sizeof(want), "r%d", i);
        good += strcmp(body_of(db, "blk-a", ida[i], true, body, sizeof(body)), want) == 0;
    }
    T_EQ_INT(good, 40);
    T_EQ_STR(body_of(db, "blk-b", idb[1], true, body, sizeof(body)), "r101");
    tg_logstore_release(s, db);
    tg_logstore_close(s);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    T_RUN(test_sqlite_configure);
    T_RUN(test_store_and_filters);
    T_RUN(test_dates_and_params);
    T_RUN(test_metadata_rules);
    T_RUN(test_analytics_groups);
    T_RUN(test_heads);
    T_RUN(test_payloads);
    T_RUN(test_large_payloads);
    T_RUN(test_keys);
    T_RUN(test_logtab);
    T_RUN(test_batch_order);
    T_RUN(test_blocks_two_gateways);
    T_RUN(test_batch_failures);
    T_RUN(test_keys_taken_mid_statement);
    T_RUN(test_keys_two_gateways);
    T_RUN(test_displaced);
    T_RUN(test_convert_v2);
    T_RUN(test_convert_v3);
    T_RUN(test_logrow);
    T_RUN(test_rec_cache);
    T_RUN(test_convert_resume);
    T_RUN(test_flush_prompt);
    T_RUN(test_record_reuse);
    T_RUN(test_admit);
    T_RUN(test_queue_places);
    T_RUN(test_payload_shed);
    if (unit_rmtree(dir) != 0)
        return 1;
    return unit_done("test_logquery");
}
