/*
 * Queries over the log store, shared by the logs API (src/admin/logs_api.c) and the command line (tollgate logs,
 * tollgate stats): filters parsed from query parameters into SQL with bound values, and results as jansson values
 * in the shapes of the reference service's Logs API.
 *
 * Every function takes a connection from tg_logstore_reader and is safe on any thread that owns that connection.
 * Errors in what the caller asked (a bad parameter) come back as TG_LQ_BAD with a message naming the parameter;
 * database errors as TG_LQ_DB.
 */
#ifndef TOLLGATE_LOGQUERY_H
#define TOLLGATE_LOGQUERY_H

#include <jansson.h>
#include <sqlite3.h>
#include "tollgate/buf.h"
#include "tollgate/common.h"

enum { TG_LQ_OK = 0, TG_LQ_BAD = 1, TG_LQ_NOT_FOUND = 2, TG_LQ_DB = 3 };

#define TG_LQ_MAX_PARAMS 64

/* Decoded query parameters (percent-decoding and '+' as space). */
typedef struct st_tg_qparams_t {
    char *keys[TG_LQ_MAX_PARAMS], *values[TG_LQ_MAX_PARAMS];
    size_t n;
} tg_qparams_t;

/* Parses "a=1&b=x%20y". Returns 0, or -1 (message in err) when there are too many parameters or bad escapes;
 * free with tg_qparams_free either way. */
int tg_qparams_parse(tg_qparams_t *q, tg_iovec_t query, char *err, size_t errsz);
void tg_qparams_free(tg_qparams_t *q);
const char *tg_qparams_get(const tg_qparams_t *q, const char *key);

/* A value to bind. */
typedef struct st_tg_logbind_t {
    int type; /* SQLITE_TEXT, SQLITE_INTEGER, SQLITE_FLOAT */
    char *text;
    int64_t i;
    double d;
} tg_logbind_t;

/* A compiled filter: " AND ..." SQL over the logs table (aliased l) and the values to bind, in order. The caller
 * scopes it to a gateway's range of keys (tg_logseq_first .. tg_logseq_last). */
typedef struct st_tg_logfilter_t {
    tg_buf_t sql;
    tg_logbind_t binds[128];
    size_t num_binds;
    bool overflow; /* more values than binds[] holds: the filter is refused */
    int64_t min_ms, max_ms; /* start_date and end_date (INT64_MIN, INT64_MAX when absent): they narrow the key range */
} tg_logfilter_t;

/*
 * Builds the filter of a list, delete or analytics request: provider, model, success, cached, start_date,
 * end_date, event_id, metadata.{key}, search, min_cost/max_cost, and `filters` (a JSON array of
 * {key, operator: eq|neq|contains|lt|gt|lte|gte, value: [...]}). Parameters in `ignore` (NULL-terminated) are
 * the caller's own; any other unknown parameter is an error. Returns TG_LQ_OK or TG_LQ_BAD (message in err).
 */
int tg_logfilter_build(tg_logfilter_t *f, const tg_qparams_t *q, const char *const *ignore, char *err, size_t errsz);
void tg_logfilter_free(tg_logfilter_t *f);

/* GET .../logs: sets *result (array) and *info (result_info). */
int tg_logs_list(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, json_t **result,
                 json_t **info, char *err, size_t errsz);
/* GET .../logs/{id}: the record with its heads. */
int tg_logs_get(sqlite3 *db, const char *account, const char *gateway, const char *id, json_t **result, char *err,
                size_t errsz);
/* GET .../logs/{id}/request or /response: the stored body (a copy in *body). TG_LQ_NOT_FOUND when not stored. */
int tg_logs_body(sqlite3 *db, const char *account, const char *gateway, const char *id, bool response,
                 tg_buf_t *body, char **content_type, char *err, size_t errsz);
/* PATCH .../logs/{id} with {feedback, score, metadata}. */
int tg_logs_patch(sqlite3 *db, const char *account, const char *gateway, const char *id, const json_t *patch,
                  json_t **result, char *err, size_t errsz);
/* DELETE .../logs with the list filters plus limit and order_by. Sets *deleted. */
int tg_logs_delete(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, int64_t *deleted,
                   char *err, size_t errsz);
/* GET .../analytics: start_date, end_date, group_by (provider|model|metadata.{key}), interval (60s, 5m, 1h, 1d).*/
int tg_logs_analytics(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, json_t **result,
                      char *err, size_t errsz);

/* A JSON string of p[0, n); bytes that are not valid UTF-8 become U+FFFD (jansson refuses them otherwise). */
json_t *tg_json_text(const char *p, size_t n);

/* Parses an ISO 8601 date ("2026-11-23", "2026-11-23T10:00:00Z", "...T10:00:00.123+02:00") or unix seconds (9 to 12 digits) into
 * unix ms. Returns 0 or -1. */
int tg_parse_date_ms(const char *s, int64_t *out);

#endif
