/*
 * The terminal commands (cli.h): `tollgate logs` and `tollgate stats`, reading the log store directly with the
 * same queries as the logs API. They open the database read-only, so they are safe next to a running gateway.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/cli.h"
#include "tollgate/config.h"
#include "tollgate/logquery.h"
#include "tollgate/logstore.h"

typedef struct {
    const char *data_dir, *config, *account, *gateway;
    bool json;
    long limit;
    tg_qparams_t params;
} cli_opts_t;

static void usage(FILE *f, const char *cmd)
{
    fprintf(f,
            "usage: tollgate %s [--data-dir DIR | --config FILE] [--gateway ACCOUNT/ID] %s[KEY=VALUE ...]\n"
            "  KEY=VALUE are the logs API's filters: provider=openai model=gpt-4o-mini success=false\n"
            "  start_date=2026-11-23T00:00:00Z end_date=... event_id=... metadata.user=alice search=...%s\n"
            "  Reads DIR/logs.db (default: the config's data_dir, else ./tollgate-data), gateway local/default.\n",
            cmd, strcmp(cmd, "logs") == 0 ? "[--json] [--limit N] " : "",
            strcmp(cmd, "stats") == 0 ? "\n  group_by=provider|model|metadata.KEY interval=1h (needs both dates)" : "");
}

/* Parses options; returns 0, -1 after --help, or the exit code for bad usage. */
static int parse(int argc, char **argv, const char *cmd, cli_opts_t *o)
{
    enum { O_DATA = 256, O_CONFIG, O_GATEWAY, O_JSON, O_LIMIT, O_HELP };
    static const struct option opts[] = {{"data-dir", required_argument, NULL, O_DATA},
                                         {"config", required_argument, NULL, O_CONFIG},
                                         {"gateway", required_argument, NULL, O_GATEWAY},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"limit", required_argument, NULL, O_LIMIT},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof(*o));
    o->account = "local";
    o->gateway = "default";
    o->limit = 20;
    static char gwbuf[256];
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_DATA:
            o->data_dir = optarg;
            break;
        case O_CONFIG:
            o->config = optarg;
            break;
        case O_GATEWAY: {
            const char *slash = strchr(optarg, '/');
            if (slash == NULL || slash == optarg || slash[1] == '\0' || strlen(optarg) >= sizeof(gwbuf)) {
                fprintf(stderr, "tollgate %s: --gateway must be ACCOUNT/ID, such as local/default\n", cmd);
                return 2;
            }
            strcpy(gwbuf, optarg);
            gwbuf[slash - optarg] = '\0';
            o->account = gwbuf;
            o->gateway = gwbuf + (slash - optarg) + 1;
        } break;
        case O_JSON:
            o->json = true;
            break;
        case O_LIMIT: {
            char *end;
            o->limit = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || o->limit < 1 || o->limit > 100000) {
                fprintf(stderr, "tollgate %s: --limit must be a number from 1 to 100000\n", cmd);
                return 2;
            }
        } break;
        case O_HELP:
            usage(stdout, cmd);
            return -1;
        default:
            usage(stderr, cmd);
            return 2;
        }
    }
    for (int i = optind; i < argc; ++i) {
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i] || o->params.n == TG_LQ_MAX_PARAMS) {
            fprintf(stderr, "tollgate %s: \"%s\" is not a KEY=VALUE filter\n", cmd, argv[i]);
            return 2;
        }
        o->params.keys[o->params.n] = tg_strndup(argv[i], (size_t)(eq - argv[i]));
        o->params.values[o->params.n] = tg_strdup(eq + 1);
        o->params.n++;
    }
    return 0;
}

static sqlite3 *open_store(const cli_opts_t *o, const char *cmd)
{
    const char *dir = o->data_dir;
    tg_config_t *c = NULL;
    if (dir == NULL && o->config != NULL) {
        tg_buf_t errs;
        tg_buf_init(&errs, 1 << 16);
        c = tg_config_load_file(o->config, &errs);
        if (c == NULL) {
            fprintf(stderr, "%s", tg_buf_cstr(&errs));
            tg_buf_free(&errs);
            return NULL;
        }
        tg_buf_free(&errs);
        dir = c->data_dir;
    }
    if (dir == NULL)
        dir = "tollgate-data";
    char err[512];
    sqlite3 *db = tg_logstore_reader(dir, true, err, sizeof(err));
    if (db == NULL)
        fprintf(stderr, "tollgate %s: %s (is --data-dir right?)\n", cmd, err);
    if (c != NULL)
        tg_config_release(c);
    return db;
}

/* Whether the store has records of the gateway; when not, says so and names those it has. */
static bool gateway_known(sqlite3 *db, const cli_opts_t *o, const char *cmd)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT account, gateway, account = ?1 AND gateway = ?2 FROM log_gateways ORDER BY 1, 2",
                           -1, &st, NULL) != SQLITE_OK)
        return true; /* the query that follows reports what is wrong with the store */
    sqlite3_bind_text(st, 1, o->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, o->gateway, -1, SQLITE_STATIC);
    tg_buf_t names;
    tg_buf_init(&names, 4096);
    while (sqlite3_step(st) == SQLITE_ROW) {
        found |= sqlite3_column_int(st, 2) != 0;
        if (names.len < 1024)
            tg_buf_appendf(&names, "%s%s/%s", names.len != 0 ? ", " : "", (const char *)sqlite3_column_text(st, 0),
                           (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (!found)
        fprintf(stderr, "tollgate %s: the store has no records of gateway %s/%s (%s%s)\n", cmd, o->account, o->gateway,
                names.len != 0 ? "it has records of " : "it has no records yet", tg_buf_cstr(&names));
    tg_buf_free(&names);
    return found;
}

/* Options and the store for `cmd`. Sets *db, or leaves it NULL (everything released) and returns the exit code:
 * 0 after --help, 2 for bad usage, 1 when the store cannot be opened or has no records of the gateway. */
static int start(int argc, char **argv, const char *cmd, cli_opts_t *o, sqlite3 **db)
{
    *db = NULL;
    int rc = parse(argc, argv, cmd, o);
    if (rc == 0 && (*db = open_store(o, cmd)) == NULL)
        rc = 1;
    if (*db != NULL && !gateway_known(*db, o, cmd)) {
        sqlite3_close(*db);
        *db = NULL;
        rc = 1;
    }
    if (*db == NULL)
        tg_qparams_free(&o->params);
    return rc < 0 ? 0 : rc;
}

static const char *str_or(json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : def;
}

static void print_count(json_t *v, int width)
{
    if (json_is_integer(v))
        printf(" %*lld", width, (long long)json_integer_value(v));
    else
        printf(" %*s", width, "-");
}

static void print_cost(json_t *v, int width)
{
    if (json_is_number(v))
        printf(" %*.6f", width, json_number_value(v));
    else
        printf(" %*s", width, "-");
}

int tg_cli_logs(int argc, char **argv)
{
    cli_opts_t o;
    sqlite3 *db;
    int rc = start(argc, argv, "logs", &o, &db);
    if (db == NULL)
        return rc;
    long shown = 0;
    char err[512];
    for (long page = 1; shown < o.limit; ++page) {
        tg_qparams_t q = o.params; /* borrowed strings plus page and per_page */
        char pbuf[32], ppbuf[32];
        long per_page = o.limit - shown < 50 ? o.limit - shown : 50;
        snprintf(pbuf, sizeof(pbuf), "%ld", page);
        snprintf(ppbuf, sizeof(ppbuf), "%ld", per_page);
        if (q.n + 2 > TG_LQ_MAX_PARAMS) {
            fprintf(stderr, "tollgate logs: too many filters\n");
            rc = 2;
            break;
        }
        q.keys[q.n] = "page", q.values[q.n++] = pbuf;
        q.keys[q.n] = "per_page", q.values[q.n++] = ppbuf;
        json_t *result = NULL, *info = NULL;
        int r = tg_logs_list(db, o.account, o.gateway, &q, &result, &info, err, sizeof(err));
        if (r != TG_LQ_OK) {
            fprintf(stderr, "tollgate logs: %s\n", err);
            rc = r == TG_LQ_BAD ? 2 : 1;
            break;
        }
        if (page == 1 && !o.json)
            printf("%-24s %-16s %-28s %6s %8s %8s %8s %10s  %s\n", "created_at", "provider", "model", "status", "ms",
                   "in", "out", "cost_usd", "id / event_id");
        size_t i;
        json_t *rec;
        json_array_foreach(result, i, rec)
        {
            if (o.json) {
                char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
                puts(line);
                free(line);
            } else {
                printf("%-24s %-16.16s %-28.28s", str_or(rec, "created_at", "-"), str_or(rec, "provider", "-"),
                       str_or(rec, "model", "-"));
                print_count(json_object_get(rec, "status_code"), 6);
                print_count(json_object_get(rec, "duration"), 8);
                print_count(json_object_get(rec, "tokens_in"), 8);
                print_count(json_object_get(rec, "tokens_out"), 8);
                print_cost(json_object_get(rec, "cost"), 10);
                printf("  %s%s%s\n", str_or(rec, "id", "-"), json_object_get(rec, "event_id") != NULL &&
                                                                     !json_is_null(json_object_get(rec, "event_id"))
                                                                 ? " "
                                                                 : "",
                       str_or(rec, "event_id", ""));
            }
            ++shown;
        }
        size_t got = json_array_size(result);
        json_decref(result);
        json_decref(info);
        if ((long)got < per_page)
            break;
    }
    sqlite3_close(db);
    tg_qparams_free(&o.params);
    return rc;
}

static void print_totals(const char *label, json_t *t)
{
    json_t *lat = json_object_get(t, "latency_ms");
    printf("%-32.32s", label);
    print_count(json_object_get(t, "requests"), 9);
    print_count(json_object_get(t, "errors"), 7);
    print_count(json_object_get(t, "cache_hits"), 7);
    print_count(json_object_get(t, "tokens_in"), 11);
    print_count(json_object_get(t, "tokens_out"), 11);
    print_cost(json_object_get(t, "cost"), 12);
    print_count(json_object_get(lat, "p50"), 7);
    print_count(json_object_get(lat, "p95"), 7);
    print_count(json_object_get(lat, "p99"), 7);
    printf("\n");
}

int tg_cli_stats(int argc, char **argv)
{
    cli_opts_t o;
    sqlite3 *db;
    int rc = start(argc, argv, "stats", &o, &db);
    if (db == NULL)
        return rc;
    char err[512];
    json_t *result = NULL;
    int r = tg_logs_analytics(db, o.account, o.gateway, &o.params, &result, err, sizeof(err));
    if (r != TG_LQ_OK) {
        fprintf(stderr, "tollgate stats: %s\n", err);
        rc = r == TG_LQ_BAD ? 2 : 1;
    } else if (o.json) {
        char *s = json_dumps(result, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
    } else {
        printf("%-32s %9s %7s %7s %11s %11s %12s %7s %7s %7s\n", "group", "requests", "errors", "cached", "tokens_in",
               "tokens_out", "cost_usd", "p50_ms", "p95_ms", "p99_ms");
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(result, "groups"), i, g)
        {
            const char *key = json_string_value(json_object_get(g, "key"));
            print_totals(key != NULL ? key : "(none)", json_object_get(g, "totals"));
        }
        print_totals("total", json_object_get(result, "totals"));
    }
    json_decref(result);
    sqlite3_close(db);
    tg_qparams_free(&o.params);
    return rc;
}
