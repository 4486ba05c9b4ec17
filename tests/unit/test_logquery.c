/*
 * The log store and its queries on a real SQLite file: the writer stores what is submitted, retention trims,
 * filters select what they say (and refuse what they cannot parse, naming the parameter), dates and query strings
 * parse, and analytics adds up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tollgate/logquery.h"
#include "tollgate/logstore.h"
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

/* Parses `query` and lists gateway "g"; returns the total count, or -1 - rc on an error (message in err). */
static int64_t count(sqlite3 *db, const char *query, char *err, size_t errsz)
{
    tg_qparams_t q;
    if (tg_qparams_parse(&q, tg_iov_str(query), err, errsz) != 0) {
        tg_qparams_free(&q);
        return -100;
    }
    json_t *result = NULL, *info = NULL;
    int rc = tg_logs_list(db, "local", "g", &q, &result, &info, err, errsz);
    tg_qparams_free(&q);
    if (rc != TG_LQ_OK)
        return -1 - rc;
    int64_t n = json_integer_value(json_object_get(info, "total_count"));
    json_decref(result);
    json_decref(info);
    return n;
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

static void test_store_and_filters(void)
{
    char err[512];
    tg_logstore_t *s = open_store();
    if (s == NULL)
        return;
    uint64_t t0 = 1795000000000ull; /* 2026-11-18 */
    tg_logstore_submit(s, rec("g", "openai", "gpt-4o", 200, 10, 0.5, t0, "{\"user\":\"a\",\"n\":1}"));
    tg_logstore_submit(s, rec("g", "openai", "gpt-4o-mini", 200, 20, 0.25, t0 + 1000, "{\"user\":\"b\"}"));
    tg_logstore_submit(s, rec("g", "anthropic", "claude-haiku-4-5", 500, 30, -1, t0 + 2000, "{\"user\":\"a\"}"));
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
    T_EQ_INT(count(db,
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
               {"min_cost=cheap", "min_cost"}};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        err[0] = '\0';
        T_EQ_INT(count(db, bad[i].q, err, sizeof(err)), -1 - TG_LQ_BAD);
        T_OK(strstr(err, bad[i].name) != NULL);
    }
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
    static const char *const bad[] = {"", "2026", "2026-13-01", "2026-11-23T25:00", "2026-11-23X", "yesterday",
                                      "2026-11-23T10:00:00+2"};
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
    static const char *const bad[] = {"[]", "{\"a\":{}}", "{\"a\":[1]}", "{\"a\":null}", "nope",
                                      "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6}", "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        why = NULL;
        T_EQ_INT(tg_logrec_set_metadata(r, bad[i], strlen(bad[i]), &why), -1);
        T_OK(why != NULL);
    }
    T_EQ_INT(r->num_metadata, 4); /* a refused value leaves what was there */
    tg_logrec_free(r);

    char a[TG_ULID_LEN + 1], b[TG_ULID_LEN + 1];
    tg_ulid(1795392000000, a);
    tg_ulid(1795392000001, b);
    T_EQ_INT(strlen(a), 26);
    T_OK(strcmp(a, b) < 0); /* time-ordered */
    T_OK(strspn(a, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 26);
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

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    T_RUN(test_store_and_filters);
    T_RUN(test_dates_and_params);
    T_RUN(test_metadata_rules);
    T_RUN(test_heads);
    if (unit_rmtree(dir) != 0)
        return 1;
    return unit_done("test_logquery");
}
