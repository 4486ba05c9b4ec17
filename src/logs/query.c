/*
 * Log queries (logquery.h). SQL is only ever assembled from the fixed column names below; every value the caller
 * sent is bound, never formatted into the statement.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "tollgate/logblock.h"
#include "tollgate/logquery.h"
#include "tollgate/logseg.h"
#include "tollgate/logstore.h"
#include "tollgate/tgtime.h"

#define ERR(...) (snprintf(err, errsz, __VA_ARGS__), TG_LQ_BAD)

/* ---- query parameters ------------------------------------------------------------------------------------- */

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static char *decode(const char *p, size_t n, bool *ok)
{
    char *out = tg_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; ++i) {
        if (p[i] == '%') {
            if (i + 2 >= n) {
                *ok = false;
                break;
            }
            int a = hexv(p[i + 1]), b = hexv(p[i + 2]);
            if (a < 0 || b < 0) {
                *ok = false;
                break;
            }
            out[o++] = (char)(a * 16 + b);
            i += 2;
        } else {
            out[o++] = p[i] == '+' ? ' ' : p[i];
        }
    }
    out[o] = '\0';
    if (strlen(out) != o) /* an encoded NUL */
        *ok = false;
    return out;
}

int tg_qparams_parse(tg_qparams_t *q, tg_iovec_t query, char *err, size_t errsz)
{
    memset(q, 0, sizeof(*q));
    while (query.len != 0) {
        tg_iovec_t pair = tg_iov_split(&query, '&', NULL);
        if (pair.len == 0)
            continue;
        if (q->n == TG_LQ_MAX_PARAMS) {
            snprintf(err, errsz, "too many query parameters (at most %d)", TG_LQ_MAX_PARAMS);
            return -1;
        }
        bool has_eq;
        tg_iovec_t key = tg_iov_split(&pair, '=', &has_eq);
        bool ok = true;
        q->keys[q->n] = decode(key.base, key.len, &ok);
        q->values[q->n] = decode(pair.base, pair.len, &ok);
        q->n++;
        if (!ok) {
            snprintf(err, errsz, "query parameter \"%.64s\" is not correctly percent-encoded", q->keys[q->n - 1]);
            return -1;
        }
    }
    return 0;
}

void tg_qparams_free(tg_qparams_t *q)
{
    for (size_t i = 0; i != q->n; ++i) {
        free(q->keys[i]);
        free(q->values[i]);
    }
    q->n = 0;
}

const char *tg_qparams_get(const tg_qparams_t *q, const char *key)
{
    for (size_t i = 0; i != q->n; ++i)
        if (strcmp(q->keys[i], key) == 0)
            return q->values[i];
    return NULL;
}

/* ---- dates ------------------------------------------------------------------------------------------------ */

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int tg_parse_date_ms(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n >= 9 && n <= 12 && strspn(s, "0123456789") == n) { /* unix seconds (1973 onwards) */
        *out = (int64_t)strtoll(s, NULL, 10) * 1000;
        return 0;
    }
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d))
        return -1;
    const char *p = s + 10;
    int64_t offset_s = 0;
    if (*p == 'T' || *p == ' ') {
        if (strlen(p) < 6 || !digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi))
            return -1;
        p += 6;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec))
                return -1;
            p += 3;
            if (*p == '.') {
                int k = 0, frac = 0;
                for (++p; *p >= '0' && *p <= '9'; ++p, ++k)
                    if (k < 3)
                        frac = frac * 10 + (*p - '0');
                for (; k < 3; ++k)
                    frac *= 10;
                ms = frac;
            }
        }
        if (*p == 'Z') {
            ++p;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om))
                return -1;
            offset_s = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
            p += 6;
        }
    }
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -1;
    if (mo == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400 != 0)))
        return -1; /* not a leap year */
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = ((int64_t)t - offset_s) * 1000 + ms;
    return 0;
}

/* ---- filters ---------------------------------------------------------------------------------------------- */

/* The next bind slot, or NULL (and f->overflow set, so tg_logfilter_build refuses the filter) when binds[] is full. */
static tg_logbind_t *bind_slot(tg_logfilter_t *f, int type)
{
    if (f->num_binds == TG_ARRAY_SIZE(f->binds)) {
        f->overflow = true;
        return NULL;
    }
    tg_logbind_t *b = &f->binds[f->num_binds++];
    memset(b, 0, sizeof(*b));
    b->type = type;
    return b;
}

static void bind_add_text(tg_logfilter_t *f, const char *s)
{
    tg_logbind_t *b = bind_slot(f, SQLITE_TEXT);
    if (b != NULL)
        b->text = tg_strdup(s);
}

static void bind_add_int(tg_logfilter_t *f, int64_t v)
{
    tg_logbind_t *b = bind_slot(f, SQLITE_INTEGER);
    if (b != NULL)
        b->i = v;
}

static void bind_add_double(tg_logfilter_t *f, double v)
{
    tg_logbind_t *b = bind_slot(f, SQLITE_FLOAT);
    if (b != NULL)
        b->d = v;
}

void tg_logfilter_free(tg_logfilter_t *f)
{
    for (size_t i = 0; i != f->num_binds; ++i)
        free(f->binds[i].text);
    f->num_binds = 0;
    tg_buf_free(&f->sql);
}

typedef enum { K_TEXT, K_INT, K_REAL, K_BOOL, K_DATE } kind_t;

typedef struct {
    const char *name;
    const char *column;
    kind_t kind;
} filter_key_t;

/* The fields of the table `logs` (logtab.h) have no type affinity: a number compares equal only to a number, so every
 * value is bound as its kind says (bind_value), never as the text it came in. */
static const filter_key_t filter_keys[] = {
    {"id", "l.id", K_TEXT},
    {"created_at", "l.created_at", K_DATE},
    {"provider", "l.provider", K_TEXT},
    {"model", "l.model", K_TEXT},
    {"path", "l.path", K_TEXT},
    {"request_type", "l.request_type", K_TEXT},
    {"request_content_type", "l.request_content_type", K_TEXT},
    {"response_content_type", "l.response_content_type", K_TEXT},
    {"user_agent", "l.user_agent", K_TEXT},
    {"event_id", "l.event_id", K_TEXT},
    {"success", "l.success", K_BOOL},
    {"cached", "l.cached", K_BOOL},
    {"status_code", "l.status_code", K_INT},
    {"cost", "l.cost", K_REAL},
    {"tokens", "(coalesce(l.tokens_in,0) + coalesce(l.tokens_out,0))", K_INT},
    {"tokens_in", "l.tokens_in", K_INT},
    {"tokens_out", "l.tokens_out", K_INT},
    {"duration", "l.duration", K_INT},
    {"feedback", "l.feedback", K_INT},
};

static const filter_key_t *find_key(const char *name)
{
    for (size_t i = 0; i != TG_ARRAY_SIZE(filter_keys); ++i)
        if (strcmp(filter_keys[i].name, name) == 0)
            return &filter_keys[i];
    return NULL;
}

/* Binds one value of `kind` given as text (query parameters) or JSON (filters). Returns 0 or -1. */
static int bind_value(tg_logfilter_t *f, kind_t kind, const char *text, const json_t *j)
{
    if (f->num_binds == TG_ARRAY_SIZE(f->binds))
        return -1;
    char buf[64];
    if (j != NULL && (text = tg_logmeta_text(j, buf)) == NULL)
        return -1; /* not a scalar */
    char *end;
    switch (kind) {
    case K_TEXT:
        bind_add_text(f, text);
        return 0;
    case K_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
            bind_add_int(f, 1);
        else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
            bind_add_int(f, 0);
        else
            return -1;
        return 0;
    case K_INT: {
        long long v = strtoll(text, &end, 10);
        if (*text == '\0' || *end != '\0')
            return -1;
        bind_add_int(f, v);
        return 0;
    }
    case K_REAL: {
        double v = strtod(text, &end);
        if (*text == '\0' || *end != '\0' || !isfinite(v))
            return -1;
        bind_add_double(f, v);
        return 0;
    }
    case K_DATE: {
        int64_t ms;
        if (tg_parse_date_ms(text, &ms) != 0)
            return -1;
        bind_add_int(f, ms);
        return 0;
    }
    }
    return -1;
}

static const char *const own_params[] = {"provider", "model", "success", "cached", "start_date", "end_date",
                                         "event_id", "search", "min_cost", "max_cost", "filters", NULL};

static bool listed(const char *key, const char *const *list)
{
    for (; list != NULL && *list != NULL; ++list)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

/* "%s%" with the LIKE wildcards of s escaped (used with ESCAPE '\'), so a user's % or _ is matched literally. */
static char *like_pattern(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *p = tg_malloc(2 * n + 3);
    p[o++] = '%';
    for (size_t i = 0; i != n; ++i) {
        if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
            p[o++] = '\\';
        p[o++] = s[i];
    }
    p[o++] = '%';
    p[o] = '\0';
    return p;
}

/* One entry of `filters`: {key, operator, value}. */
static int add_json_filter(tg_logfilter_t *f, const json_t *e, size_t idx, char *err, size_t errsz)
{
    const char *key = json_string_value(json_object_get(e, "key"));
    const char *op = json_string_value(json_object_get(e, "operator"));
    const json_t *value = json_object_get(e, "value");
    if (!json_is_object(e) || key == NULL || op == NULL || value == NULL)
        return ERR("filters[%zu] must be an object {\"key\", \"operator\", \"value\"}", idx);
    static const char *const ops[] = {"eq", "neq", "contains", "lt", "gt", "lte", "gte"};
    static const char *const sql_ops[] = {"=", "<>", "LIKE", "<", ">", "<=", ">="};
    size_t o = 0;
    while (o != TG_ARRAY_SIZE(ops) && strcmp(op, ops[o]) != 0)
        ++o;
    if (o == TG_ARRAY_SIZE(ops))
        return ERR("filters[%zu].operator must be one of eq, neq, contains, lt, gt, lte, gte", idx);
    json_t *one = NULL;
    if (!json_is_array(value)) {
        one = json_array();
        json_array_append(one, (json_t *)value);
        value = one;
    }
    size_t nv = json_array_size(value);
    int rc = TG_LQ_OK;
    if (nv == 0 || nv > 20) {
        rc = ERR("filters[%zu].value must hold 1 to 20 values", idx);
        goto out;
    }
    /* metadata.{key}: a match in the metadata table */
    const char *column;
    kind_t kind;
    const filter_key_t *fk = find_key(key);
    bool meta = strncmp(key, "metadata.", 9) == 0 && key[9] != '\0';
    if (fk != NULL) {
        column = fk->column;
        kind = fk->kind;
    } else if (meta) {
        column = "tg_meta(l.metadata, ?)";
        kind = K_TEXT;
    } else {
        rc = ERR("filters[%zu].key \"%.64s\" is not a filterable field", idx, key);
        goto out;
    }
    if (o == 2 && kind != K_TEXT) {
        rc = ERR("filters[%zu]: contains applies to text fields only", idx);
        goto out;
    }
    /* a record without the metadata key matches no value (and so every neq) */
    tg_buf_appendf(&f->sql, "%s", o == 1 ? " AND NOT coalesce((" : " AND coalesce((");
    for (size_t i = 0; i != nv; ++i) {
        const json_t *v = json_array_get(value, i);
        /* a number is compared with a metadata number as a number (9 < 10, 1e5 = 100000), not as text */
        bool meta_num = meta && o != 2 && json_is_number(v);
        tg_buf_appendf(&f->sql, "%s%s %s ?%s", i != 0 ? " OR " : "", meta_num ? "tg_meta_num(l.metadata, ?)" : column,
                       o == 1 ? "=" : sql_ops[o], o == 2 ? " ESCAPE '\\'" : "");
        if (meta)
            bind_add_text(f, key + 9); /* the key of this comparison's tg_meta(), then its value */
        if (meta_num) {
            bind_add_double(f, json_number_value(v));
        } else if (o == 2) {
            const char *s = json_string_value(v);
            if (s == NULL) {
                rc = ERR("filters[%zu].value: contains needs strings", idx);
                goto out;
            }
            char *pat = like_pattern(s);
            bind_add_text(f, pat);
            free(pat);
        } else if (bind_value(f, kind, NULL, v) != 0) {
            rc = ERR("filters[%zu].value[%zu] is not a valid %s", idx, i,
                     kind == K_BOOL ? "boolean" : kind == K_DATE ? "date" : kind == K_TEXT ? "string" : "number");
            goto out;
        }
    }
    tg_buf_appendf(&f->sql, "), 0)");
out:
    json_decref(one);
    return rc;
}

int tg_logfilter_build(tg_logfilter_t *f, const tg_qparams_t *q, const char *const *ignore, char *err, size_t errsz)
{
    memset(f, 0, sizeof(*f));
    f->min_ms = INT64_MIN;
    f->max_ms = INT64_MAX;
    tg_buf_init(&f->sql, 64 << 10);
    for (size_t i = 0; i != q->n; ++i) {
        const char *k = q->keys[i], *v = q->values[i];
        if (listed(k, ignore)) { /* the caller's options take one value (filters all apply, repeated or not) */
            for (size_t j = 0; j != i; ++j)
                if (strcmp(q->keys[j], k) == 0)
                    return ERR("query parameter %s is given more than once", k);
            continue;
        }
        if (strncmp(k, "metadata.", 9) == 0 && k[9] != '\0') {
            tg_buf_append(&f->sql, TG_LIT(" AND tg_meta(l.metadata, ?) = ?"));
            if (f->num_binds + 2 > TG_ARRAY_SIZE(f->binds))
                return ERR("too many filters");
            bind_add_text(f, k + 9);
            bind_add_text(f, v);
            continue;
        }
        if (!listed(k, own_params))
            return ERR("unknown query parameter \"%.64s\"", k);
        if (strcmp(k, "filters") == 0) {
            json_error_t jerr;
            json_t *arr = json_loads(v, JSON_REJECT_DUPLICATES, &jerr);
            if (!json_is_array(arr)) {
                json_decref(arr);
                return ERR("filters must be a JSON array of {\"key\", \"operator\", \"value\"}");
            }
            int rc = TG_LQ_OK;
            for (size_t j = 0; j != json_array_size(arr) && rc == TG_LQ_OK; ++j)
                rc = add_json_filter(f, json_array_get(arr, j), j, err, errsz);
            json_decref(arr);
            if (rc != TG_LQ_OK)
                return rc;
            continue;
        }
        if (strcmp(k, "search") == 0) {
            tg_buf_append(&f->sql, TG_LIT(" AND (l.provider LIKE ? ESCAPE '\\' OR l.model LIKE ? ESCAPE '\\' OR l.path LIKE ? ESCAPE '\\' OR "
                                          "l.event_id LIKE ? ESCAPE '\\' OR l.metadata LIKE ? ESCAPE '\\' OR l.id = ?)"));
            char *pat = like_pattern(v);
            for (int r = 0; r != 5; ++r)
                bind_add_text(f, pat);
            free(pat);
            bind_add_text(f, v);
            continue;
        }
        const char *column;
        const char *op = "=";
        kind_t kind;
        if (strcmp(k, "start_date") == 0 || strcmp(k, "end_date") == 0) {
            column = "l.created_at";
            kind = K_DATE;
            op = k[0] == 's' ? ">=" : "<=";
            int64_t ms;
            if (tg_parse_date_ms(v, &ms) == 0) { /* (a bad date is refused below) */
                if (k[0] == 's')
                    f->min_ms = TG_MAX(f->min_ms, ms);
                else
                    f->max_ms = TG_MIN(f->max_ms, ms);
            }
        } else if (strcmp(k, "min_cost") == 0 || strcmp(k, "max_cost") == 0) {
            column = "l.cost";
            kind = K_REAL;
            op = k[1] == 'i' ? ">=" : "<=";
        } else {
            const filter_key_t *fk = find_key(k);
            column = fk->column;
            kind = fk->kind;
        }
        tg_buf_appendf(&f->sql, " AND %s %s ?", column, op);
        if (bind_value(f, kind, v, NULL) != 0)
            return ERR("query parameter %s: \"%.64s\" is not a valid %s", k, v,
                       kind == K_BOOL   ? "boolean (true or false)"
                       : kind == K_DATE ? "date (ISO 8601, such as 2026-11-23T10:00:00Z)"
                                        : "value");
    }
    if (f->min_ms != INT64_MIN && f->max_ms != INT64_MAX && f->min_ms > f->max_ms)
        return ERR("start_date is after end_date");
    if (f->overflow)
        return ERR("too many filter values (at most %zu in all)", TG_ARRAY_SIZE(f->binds));
    return TG_LQ_OK;
}

static void bind_filter(sqlite3_stmt *st, int first, const tg_logfilter_t *f)
{
    for (size_t i = 0; i != f->num_binds; ++i) {
        int idx = first + (int)i;
        switch (f->binds[i].type) {
        case SQLITE_TEXT:
            sqlite3_bind_text(st, idx, f->binds[i].text, -1, SQLITE_STATIC);
            break;
        case SQLITE_INTEGER:
            sqlite3_bind_int64(st, idx, f->binds[i].i);
            break;
        default:
            sqlite3_bind_double(st, idx, f->binds[i].d);
            break;
        }
    }
}

/* ---- records as JSON -------------------------------------------------------------------------------------- */

#define COLUMNS                                                                                                        \
    "l.id, l.created_at, l.provider, l.model, l.path, l.request_type, l.success, l.status_code, l.cached, l.flags, "   \
    "l.duration, l.time_to_first_byte, l.tokens_in, l.tokens_out, l.cached_tokens, l.cache_write_tokens, l.cost, "    \
    "l.metadata, l.event_id, l.step, l.request_size, l.response_size, l.request_content_type, "                       \
    "l.response_content_type, l.user_agent, l.feedback, l.score, l.error, l.seq, l.payload"
enum { C_ID, C_CREATED, C_FLAGS = 9, C_SEQ = 28, C_PAYLOAD = 29 };

json_t *tg_json_text(const char *p, size_t n)
{
    json_t *j = json_stringn(p, n);
    if (j != NULL)
        return j;
    /* replace what is not UTF-8, one byte at a time, keeping the valid sequences */
    tg_buf_t b;
    tg_buf_init(&b, 3 * n + 1);
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        size_t len = s[i] < 0x80 ? 1 : (s[i] >> 5) == 6 ? 2 : (s[i] >> 4) == 14 ? 3 : (s[i] >> 3) == 30 ? 4 : 0;
        bool ok = len != 0 && i + len <= n && (len != 1 || s[i] != 0);
        for (size_t k = 1; ok && k < len; ++k)
            ok = (s[i + k] & 0xC0) == 0x80;
        if (ok && len > 1) {
            json_t *probe = json_stringn(p + i, len); /* overlong forms and surrogates are refused here */
            ok = probe != NULL;
            json_decref(probe);
        }
        if (ok) {
            tg_buf_append(&b, p + i, len);
            i += len;
        } else {
            tg_buf_append(&b, "\xEF\xBF\xBD", 3);
            i += 1;
        }
    }
    j = json_stringn(b.base != NULL ? b.base : "", b.len);
    tg_buf_free(&b);
    return j != NULL ? j : json_string("");
}

static json_t *column_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        return json_null();
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    default:
        return tg_json_text((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
    }
}

/*
 * A stored head as the API shows it: the text of a JSON object of the headers. Heads are stored as "name: value"
 * lines (recorder.c); records written before that hold the JSON text itself, which starts with '{' (a character
 * no header name can begin with) and is passed on as it is.
 */
static json_t *head_json(const char *text, size_t len)
{
    if (len != 0 && text[0] == '{')
        return tg_json_text(text, len);
    tg_buf_t b;
    tg_buf_init(&b, 8 * len + 16); /* escaping makes a byte 6 at most */
    tg_buf_reserve(&b, len + len / 4 + 16);
    tg_buf_append(&b, "{", 1);
    const char *p = text, *end = text + len;
    tg_iovec_t name, value;
    while (tg_headtext_next(&p, end, &name, &value)) {
        tg_buf_append(&b, b.len == 1 ? "\"" : ",\"", b.len == 1 ? 1 : 2);
        tg_buf_append_json_escaped(&b, name.base, name.len);
        tg_buf_append(&b, "\":\"", 3);
        tg_buf_append_json_escaped(&b, value.base, value.len);
        tg_buf_append(&b, "\"", 1);
    }
    tg_buf_append(&b, "}", 1);
    json_t *j = tg_json_text(b.base, b.len);
    tg_buf_free(&b);
    return j;
}

/* A head read from the record's payload segment; null when it was not kept, or cannot be read (*ok false). */
static json_t *payload_head(sqlite3 *db, sqlite3_stmt *st, int part, bool *ok)
{
    int absent = part == TG_LOGSEG_REQ_HEAD ? TG_LOGFLAG_NO_REQUEST_HEAD : TG_LOGFLAG_NO_RESPONSE_HEAD;
    int flags = sqlite3_column_int(st, C_FLAGS);
    /* (a shed head was not kept, so what is shown of it is not complete) */
    *ok = sqlite3_column_type(st, C_PAYLOAD) != SQLITE_NULL && !(flags & TG_LOGFLAG_PAYLOAD_SHED);
    if (!*ok || (flags & absent))
        return json_null();
    char dir[4096], err[256];
    int64_t seq = sqlite3_column_int64(st, C_SEQ);
    tg_buf_t b;
    tg_buf_init(&b, 1 << 20);
    *ok = tg_logstore_payload_dir(db, dir, sizeof(dir)) != NULL &&
          tg_logseg_read(dir, tg_logseq_gw(seq), sqlite3_column_int64(st, C_PAYLOAD), (uint64_t)seq, part, &b, err,
                         sizeof(err)) == 0;
    json_t *j = *ok ? head_json(b.base != NULL ? b.base : "", b.len) : json_null();
    tg_buf_free(&b);
    return j;
}

/* A row of COLUMNS as the API shows a record; `db` given: with its heads (from the payload segment). */
static json_t *row_json(sqlite3_stmt *st, const char *gateway, sqlite3 *db)
{
    static const char *const names[] = {
        "id", "created_at", "provider", "model", "path", "request_type", "success", "status_code", "cached", NULL,
        "duration", "time_to_first_byte", "tokens_in", "tokens_out", "cached_tokens", "cache_write_tokens", "cost",
        "metadata", "event_id", "step", "request_size", "response_size", "request_content_type",
        "response_content_type", "user_agent", "feedback", "score", "error"};
    int flags = sqlite3_column_int(st, C_FLAGS);
    json_t *o = json_object();
    for (int i = 0; i < (int)TG_ARRAY_SIZE(names); ++i) {
        if (i == C_CREATED) {
            char ts[40];
            tg_format_iso8601_ms((uint64_t)sqlite3_column_int64(st, i), ts, sizeof(ts));
            json_object_set_new(o, names[i], json_string(ts));
        } else if (i == 6 || i == 8) { /* success, cached */
            json_object_set_new(o, names[i], json_boolean(sqlite3_column_int(st, i) != 0));
        } else if (i == C_FLAGS) {
            json_object_set_new(o, "stream", json_boolean(flags & TG_LOGFLAG_STREAM));
        } else {
            json_object_set_new(o, names[i], column_json(st, i));
        }
    }
    json_object_set_new(o, "custom_cost", json_boolean(flags & TG_LOGFLAG_CUSTOM_COST));
    json_object_set_new(o, "payload", json_boolean(flags & TG_LOGFLAG_PAYLOAD));
    json_object_set_new(o, "request_body_dropped", json_boolean(flags & TG_LOGFLAG_REQUEST_DROPPED));
    json_object_set_new(o, "response_body_dropped", json_boolean(flags & TG_LOGFLAG_RESPONSE_DROPPED));
    json_object_set_new(o, "payload_shed", json_boolean(flags & TG_LOGFLAG_PAYLOAD_SHED));
    json_object_set_new(o, "gateway_id", json_string(gateway));
    if (db != NULL) {
        bool req_ok, resp_ok;
        json_t *req = payload_head(db, st, TG_LOGSEG_REQ_HEAD, &req_ok);
        json_t *resp = payload_head(db, st, TG_LOGSEG_RESP_HEAD, &resp_ok);
        json_object_set_new(o, "request_head_complete", json_boolean(req_ok));
        json_object_set_new(o, "response_head_complete", json_boolean(resp_ok));
        json_object_set_new(o, "request_head", req);
        json_object_set_new(o, "response_head", resp);
    }
    return o;
}

static int db_error(sqlite3 *db, char *err, size_t errsz)
{
    snprintf(err, errsz, "log database error: %s", sqlite3_errmsg(db));
    return TG_LQ_DB;
}

/* The gateway's number in the store, 0 when it has no records (or on an error). */
static int64_t gateway_number(sqlite3 *db, const char *account, const char *gateway)
{
    sqlite3_stmt *st = NULL;
    int64_t gw = 0;
    if (sqlite3_prepare_v2(db, "SELECT gw FROM log_gateways WHERE account = ?1 AND gateway = ?2", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, gateway, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            gw = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return gw;
}

/* A displaced record of gateway gw (store.c: a key far from its time) with this id, or any when id is NULL: its key,
 * or 0. */
static int64_t displaced(sqlite3 *db, int64_t gw, const char *id)
{
    sqlite3_stmt *st = NULL;
    int64_t seq = 0;
    if (sqlite3_prepare_v2(db,
                           id != NULL ? "SELECT seq FROM log_displaced WHERE id = ?3 AND seq BETWEEN ?1 AND ?2"
                                      : "SELECT seq FROM log_displaced WHERE seq BETWEEN ?1 AND ?2 LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, tg_logseq_first(gw));
        sqlite3_bind_int64(st, 2, tg_logseq_last(gw));
        if (id != NULL)
            sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            seq = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return seq;
}

/* Binds the key range of the gateway's records at placeholders `i` and `i + 1`, narrowed by the filter's dates (a
 * gateway with no records gets a range that holds nothing). A record's key is never before its time, and after it
 * by TG_LOGSEQ_SPAN ms at most unless it is displaced: an end date narrows the range only when none is. */
static void bind_scope(sqlite3 *db, sqlite3_stmt *st, int i, int64_t gw, const tg_logfilter_t *f)
{
    int64_t lo = 1, hi = 0;
    if (gw != 0) {
        lo = tg_logseq_first(gw);
        hi = tg_logseq_last(gw);
        if (f != NULL && f->min_ms != INT64_MIN)
            lo = TG_MAX(lo, tg_logseq_at(gw, f->min_ms));
        if (f != NULL && f->max_ms != INT64_MAX && f->max_ms < (int64_t)TG_LOGSEQ_MAX_MS - TG_LOGSEQ_SPAN &&
            displaced(db, gw, NULL) == 0)
            hi = TG_MIN(hi, tg_logseq_at(gw, f->max_ms + TG_LOGSEQ_SPAN) - 1);
    }
    sqlite3_bind_int64(st, i, lo);
    sqlite3_bind_int64(st, i + 1, hi);
}

#define SCOPE "l.seq BETWEEN ? AND ?"

/* Prepares `sql` (whose first placeholders are the scope's two, then the filter's) and binds them. Returns the index
 * of the next placeholder, or 0 when the statement does not prepare. */
static int prepare_scoped(sqlite3 *db, const tg_buf_t *sql, int64_t gw, const tg_logfilter_t *f, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(db, sql->base, (int)sql->len, st, NULL) != SQLITE_OK)
        return 0;
    bind_scope(db, *st, 1, gw, f);
    bind_filter(*st, 3, f);
    return 3 + (int)f->num_binds;
}

static const char *const list_params[] = {"page", "per_page", "order_by", "order_by_direction", "meta_info", NULL};

/* ORDER BY from order_by and order_by_direction; created_at is the order of the keys themselves. */
static int order_clause(const tg_qparams_t *q, char *out, size_t outsz, char *err, size_t errsz)
{
    static const char *const orderable[] = {"created_at", "provider", "model", "model_type", "success", "cached",
                                            "cost", "duration", "tokens_in", "tokens_out", "status_code"};
    const char *by = tg_qparams_get(q, "order_by"), *dir = tg_qparams_get(q, "order_by_direction");
    if (by == NULL)
        by = "created_at";
    size_t i = 0;
    while (i != TG_ARRAY_SIZE(orderable) && strcmp(by, orderable[i]) != 0)
        ++i;
    if (i == TG_ARRAY_SIZE(orderable))
        return ERR("order_by must be one of created_at, provider, model, model_type, success, cached, cost, duration, "
                   "tokens_in, tokens_out, status_code");
    if (strcmp(by, "model_type") == 0)
        by = "request_type";
    if (dir != NULL && strcmp(dir, "asc") != 0 && strcmp(dir, "desc") != 0)
        return ERR("order_by_direction must be asc or desc");
    const char *d = dir != NULL && strcmp(dir, "asc") == 0 ? "ASC" : "DESC";
    if (strcmp(by, "created_at") == 0)
        snprintf(out, outsz, " ORDER BY l.seq %s", d);
    else
        snprintf(out, outsz, " ORDER BY l.%s %s, l.seq %s", by, d, d);
    return TG_LQ_OK;
}

/* The ORDER BY and the filter of a list or delete request; `own` are the request's other parameters. */
static int order_and_filter(const tg_qparams_t *q, const char *const *own, char *order, size_t ordersz,
                            tg_logfilter_t *f, char *err, size_t errsz)
{
    int rc = order_clause(q, order, ordersz, err, errsz);
    if (rc != TG_LQ_OK)
        return rc;
    if ((rc = tg_logfilter_build(f, q, own, err, errsz)) != TG_LQ_OK)
        tg_logfilter_free(f);
    return rc;
}

static int get_int_param(const tg_qparams_t *q, const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                         char *err, size_t errsz)
{
    const char *v = tg_qparams_get(q, name);
    if (v == NULL) {
        *out = def;
        return TG_LQ_OK;
    }
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < min || x > max)
        return ERR("%s must be a whole number from %lld to %lld", name, (long long)min, (long long)max);
    *out = x;
    return TG_LQ_OK;
}

static int logs_list(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, json_t **result,
                     json_t **info, char *err, size_t errsz);

/* One read transaction: the count and the page see the same records. */
int tg_logs_list(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, json_t **result,
                 json_t **info, char *err, size_t errsz)
{
    bool txn = sqlite3_get_autocommit(db) && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int rc = logs_list(db, account, gateway, q, result, info, err, errsz);
    if (txn)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

static int logs_list(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, json_t **result,
                     json_t **info, char *err, size_t errsz)
{
    int64_t page, per_page;
    int rc;
    if ((rc = get_int_param(q, "page", 1, 1, 1000000, &page, err, errsz)) != TG_LQ_OK ||
        (rc = get_int_param(q, "per_page", 20, 1, 50, &per_page, err, errsz)) != TG_LQ_OK)
        return rc;
    char order[128];
    tg_logfilter_t f;
    if ((rc = order_and_filter(q, list_params, order, sizeof(order), &f, err, errsz)) != TG_LQ_OK)
        return rc;
    int64_t gw = gateway_number(db, account, gateway);
    tg_buf_t sql;
    tg_buf_init(&sql, 128 << 10);
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int64_t total = 0;
    /* the count and the aggregates of result_info */
    tg_buf_appendf(&sql,
                   "SELECT count(*), min(l.cost), max(l.cost), min(l.duration), max(l.duration), min(l.tokens_in), "
                   "max(l.tokens_in), min(l.tokens_out), max(l.tokens_out) FROM logs l WHERE " SCOPE "%s",
                   tg_buf_cstr(&f.sql));
    if (prepare_scoped(db, &sql, gw, &f, &st) == 0 || sqlite3_step(st) != SQLITE_ROW)
        goto db_fail;
    total = sqlite3_column_int64(st, 0);
    *info = json_object();
    json_object_set_new(*info, "page", json_integer(page));
    json_object_set_new(*info, "per_page", json_integer(per_page));
    json_object_set_new(*info, "total_count", json_integer(total));
    json_object_set_new(*info, "total_pages", json_integer((total + per_page - 1) / per_page));
    static const char *const agg[] = {"min_cost",      "max_cost",      "min_duration",   "max_duration",
                                      "min_tokens_in", "max_tokens_in", "min_tokens_out", "max_tokens_out"};
    for (int i = 0; i != 8; ++i)
        json_object_set_new(*info, agg[i], column_json(st, i + 1));
    sqlite3_finalize(st);
    st = NULL;

    sql.len = 0;
    tg_buf_appendf(&sql, "SELECT " COLUMNS " FROM logs l WHERE " SCOPE "%s%s LIMIT ? OFFSET ?", tg_buf_cstr(&f.sql),
                   order);
    int next = prepare_scoped(db, &sql, gw, &f, &st);
    if (next == 0)
        goto db_fail;
    sqlite3_bind_int64(st, next, per_page);
    sqlite3_bind_int64(st, next + 1, (page - 1) * per_page);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, row_json(st, gateway, NULL));
    if (rc != SQLITE_DONE)
        goto db_fail;
    json_object_set_new(*info, "count", json_integer((json_int_t)json_array_size(arr)));
    sqlite3_finalize(st);
    tg_buf_free(&sql);
    tg_logfilter_free(&f);
    *result = arr;
    return TG_LQ_OK;
db_fail:
    rc = db_error(db, err, errsz);
    sqlite3_finalize(st);
    tg_buf_free(&sql);
    tg_logfilter_free(&f);
    json_decref(arr);
    if (*info != NULL) {
        json_decref(*info);
        *info = NULL;
    }
    return rc;
}

/* A record is found by id through the time its ULID carries: a few keys of the gateway's range. */
#define BY_ID "l.seq BETWEEN ? AND ? AND l.id = ?"

/* Runs `sql` (ending in BY_ID) for one record. TG_LQ_OK with *st on its row (finalize it), or the error. */
static int step_by_id(sqlite3 *db, const char *sql, const char *account, const char *gateway, const char *id,
                      sqlite3_stmt **st, char *err, size_t errsz)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return db_error(db, err, errsz);
    uint64_t ms;
    int64_t gw = tg_ulid_time(id, &ms) == 0 ? gateway_number(db, account, gateway) : 0; /* not a ULID: no record */
    int64_t lo = 1, hi = 0;
    if (gw != 0 && ms <= TG_LOGSEQ_MAX_MS - TG_LOGSEQ_SPAN) {
        lo = tg_logseq_at(gw, (int64_t)ms);
        hi = tg_logseq_at(gw, (int64_t)ms + TG_LOGSEQ_SPAN) - 1;
    }
    sqlite3_bind_int64(*st, 1, lo);
    sqlite3_bind_int64(*st, 2, hi);
    sqlite3_bind_text(*st, 3, id, -1, SQLITE_STATIC);
    int s = sqlite3_step(*st), rc = TG_LQ_OK;
    int64_t moved = s == SQLITE_DONE && gw != 0 ? displaced(db, gw, id) : 0;
    if (moved != 0) { /* not near its time: where log_displaced says */
        sqlite3_reset(*st);
        sqlite3_bind_int64(*st, 1, moved);
        sqlite3_bind_int64(*st, 2, moved);
        s = sqlite3_step(*st);
    }
    if (s == SQLITE_DONE) {
        snprintf(err, errsz, "no log with id \"%.64s\" in this gateway", id);
        rc = TG_LQ_NOT_FOUND;
    } else if (s != SQLITE_ROW) {
        rc = db_error(db, err, errsz);
    }
    if (rc != TG_LQ_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
    }
    return rc;
}

int tg_logs_get(sqlite3 *db, const char *account, const char *gateway, const char *id, json_t **result, char *err,
                size_t errsz)
{
    sqlite3_stmt *st;
    int rc = step_by_id(db, "SELECT " COLUMNS " FROM logs l WHERE " BY_ID, account, gateway, id, &st, err, errsz);
    if (rc == TG_LQ_OK) {
        *result = row_json(st, gateway, db);
        sqlite3_finalize(st);
    }
    return rc;
}

int tg_logs_body(sqlite3 *db, const char *account, const char *gateway, const char *id, bool response,
                 tg_buf_t *body, char **content_type, char *err, size_t errsz)
{
    sqlite3_stmt *st;
    const char *sql = response ? "SELECT l.seq, l.payload, l.flags, l.response_content_type, l.response_size FROM logs l "
                                 "WHERE " BY_ID
                               : "SELECT l.seq, l.payload, l.flags, l.request_content_type, l.request_size FROM logs l "
                                 "WHERE " BY_ID;
    int rc = step_by_id(db, sql, account, gateway, id, &st, err, errsz);
    if (rc != TG_LQ_OK)
        return rc;
    int64_t seq = sqlite3_column_int64(st, 0);
    int flags = sqlite3_column_int(st, 2);
    const char *what = response ? "response" : "request";
    int dropped = response ? TG_LOGFLAG_RESPONSE_DROPPED : TG_LOGFLAG_REQUEST_DROPPED;
    char dir[4096], why[512] = "";
    if (!(flags & TG_LOGFLAG_PAYLOAD))
        snprintf(why, sizeof(why), "payload collection was off for this request");
    else if (flags & dropped)
        snprintf(why, sizeof(why), "it was larger than log_max_body");
    else if (flags & TG_LOGFLAG_PAYLOAD_SHED)
        snprintf(why, sizeof(why), "the log queue was at log_queue_memory when the record was finished, so it was "
                                   "kept without its heads and bodies");
    else if ((flags & TG_LOGFLAG_PAYLOAD_LOST) || sqlite3_column_type(st, 1) == SQLITE_NULL)
        snprintf(why, sizeof(why), "the log store could not write it (the gateway's log says why)");
    else if (tg_logstore_payload_dir(db, dir, sizeof(dir)) == NULL)
        snprintf(why, sizeof(why), "the payload directory's path is too long");
    else if (tg_logseg_read(dir, tg_logseq_gw(seq), sqlite3_column_int64(st, 1), (uint64_t)seq,
                            response ? TG_LOGSEG_RESP_BODY : TG_LOGSEG_REQ_BODY, body, why, sizeof(why)) != 0)
        ; /* why says it */
    else if (body->len == 0)
        snprintf(why, sizeof(why), "it was empty");
    if (why[0] != '\0') {
        snprintf(err, errsz, "the %s body of log %.64s was not stored: %s", what, id, why);
        rc = TG_LQ_NOT_FOUND;
    } else {
        const char *ct = (const char *)sqlite3_column_text(st, 3);
        *content_type = ct != NULL ? tg_strdup(ct) : NULL;
    }
    sqlite3_finalize(st);
    return rc;
}

int tg_logs_patch(sqlite3 *db, const char *account, const char *gateway, const char *id, const json_t *patch,
                  json_t **result, char *err, size_t errsz)
{
    if (!json_is_object(patch))
        return ERR("the body must be a JSON object with feedback, score and/or metadata");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v)
    {
        if (strcmp(key, "feedback") == 0) {
            if (!json_is_null(v) && !(json_is_integer(v) && (json_integer_value(v) == -1 || json_integer_value(v) == 0 ||
                                                             json_integer_value(v) == 1)))
                return ERR("feedback must be -1, 0, 1 or null");
        } else if (strcmp(key, "score") == 0) {
            if (!json_is_null(v) && !(json_is_number(v) && isfinite(json_number_value(v))))
                return ERR("score must be a number or null");
        } else if (strcmp(key, "metadata") != 0) {
            return ERR("unknown field \"%.64s\" (allowed: feedback, score, metadata)", key);
        }
    }
    tg_logrec_t *meta = NULL;
    json_t *m = json_object_get(patch, "metadata");
    if (m != NULL && !json_is_null(m)) {
        char *text = json_dumps(m, JSON_COMPACT);
        const char *why = NULL;
        meta = tg_logrec_new(0, 0);
        int mr = text != NULL ? tg_logrec_set_metadata(meta, text, strlen(text), &why) : -1;
        free(text);
        if (mr != 0) {
            tg_logrec_free(meta);
            return ERR("metadata %s", why != NULL ? why : "is not valid");
        }
    }
    int rc = TG_LQ_OK;
    sqlite3_stmt *st = NULL;
    sqlite3_int64 seq = 0;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        tg_logrec_free(meta);
        return db_error(db, err, errsz);
    }
    if ((rc = step_by_id(db, "SELECT l.seq FROM logs l WHERE " BY_ID, account, gateway, id, &st, err, errsz)) !=
        TG_LQ_OK)
        goto out;
    seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    int moved; /* a record in a block gets a row of its own, which the UPDATEs change */
    if (tg_logblock_unblock(db, seq, &moved) != SQLITE_OK)
        goto db_fail;
    static const char *const fields[] = {"feedback", "score", "metadata"};
    for (int i = 0; i != 3; ++i) {
        json_t *x = json_object_get(patch, fields[i]);
        if (x == NULL)
            continue;
        char sql[96];
        snprintf(sql, sizeof(sql), "UPDATE log_rows SET %s = ? WHERE seq = ?", fields[i]);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            goto db_fail;
        if (i == 2 && meta != NULL)
            sqlite3_bind_text(st, 1, meta->metadata_json, -1, SQLITE_STATIC); /* NULL: nothing left to keep */
        else if (json_is_null(x) || i == 2)
            sqlite3_bind_null(st, 1);
        else if (json_is_integer(x))
            sqlite3_bind_int64(st, 1, json_integer_value(x));
        else
            sqlite3_bind_double(st, 1, json_number_value(x));
        sqlite3_bind_int64(st, 2, seq);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto db_fail;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto db_fail;
    tg_logrec_free(meta);
    return tg_logs_get(db, account, gateway, id, result, err, errsz);
db_fail:
    rc = db_error(db, err, errsz);
out:
    sqlite3_finalize(st);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    tg_logrec_free(meta);
    return rc;
}

static int cmp_deleted(const void *a, const void *b)
{
    const tg_logdeleted_t *x = a, *y = b;
    return x->ref < y->ref ? -1 : x->ref > y->ref;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/*
 * Deletes the records whose keys `sel` selects (its placeholders bound by the caller; records in blocks as well as
 * rows of their own, tg_logblock_delete) in one transaction that also moves the gateway's record count and its
 * segments' live counts, then frees the deleted payloads' bytes (a deleted log's bodies do not stay on disk). The
 * writer unlinks segments left with no records once it is told (tg_logstore_rows_deleted).
 */
static int delete_rows(sqlite3 *db, sqlite3_stmt *sel, int64_t gw, int64_t *deleted, char *err, size_t errsz)
{
    tg_logdeleted_t *rows = NULL;
    int64_t *keys = NULL;
    size_t n = 0, cap = 0, nkeys = 0, kcap = 0;
    sqlite3_stmt *st = NULL;
    int s;
    while ((s = sqlite3_step(sel)) == SQLITE_ROW) {
        if (nkeys == kcap)
            keys = tg_realloc(keys, (kcap = kcap != 0 ? kcap * 2 : 256) * sizeof(*keys));
        keys[nkeys++] = sqlite3_column_int64(sel, 0);
    }
    if (s != SQLITE_DONE)
        goto db_fail;
    qsort(keys, nkeys, sizeof(*keys), cmp_i64);
    if (tg_logblock_delete(db, keys, nkeys, &rows, &n, &cap) != SQLITE_OK)
        goto db_fail;
    free(keys);
    keys = NULL;
    qsort(rows, n, sizeof(*rows), cmp_deleted);
    if (sqlite3_prepare_v2(db, "UPDATE log_gateways SET rows = max(rows - ?2, 0) WHERE gw = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        goto db_fail;
    sqlite3_bind_int64(st, 1, gw);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto db_fail;
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db, "UPDATE log_segments SET live = live - ?3 WHERE gw = ?1 AND n = ?2", -1, &st, NULL) !=
        SQLITE_OK)
        goto db_fail;
    for (size_t i = 0; i != n;) {
        size_t j = i;
        if (rows[i].ref < 0) {
            ++i;
            continue;
        }
        while (j != n && tg_logseg_ref_n(rows[j].ref) == tg_logseg_ref_n(rows[i].ref))
            ++j;
        sqlite3_bind_int64(st, 1, gw);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)tg_logseg_ref_n(rows[i].ref));
        sqlite3_bind_int64(st, 3, (sqlite3_int64)(j - i));
        if (sqlite3_step(st) != SQLITE_DONE)
            goto db_fail;
        sqlite3_reset(st);
        i = j;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_exec(db, TG_LOGSTORE_UNDISPLACE_SQL "; COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto db_fail;
    char dir[4096];
    tg_logseg_punch_t punch = {.fd = -1};
    if (tg_logstore_payload_dir(db, dir, sizeof(dir)) != NULL)
        for (size_t i = 0; i != n; ++i) /* (in reference order: a segment's payloads one after another) */
            if (rows[i].ref >= 0)
                tg_logseg_punch(&punch, dir, (unsigned)gw, rows[i].ref, (uint64_t)rows[i].seq);
    tg_logseg_punch_done(&punch);
    *deleted = (int64_t)n;
    free(rows);
    return TG_LQ_OK;
db_fail:;
    int rc = db_error(db, err, errsz);
    sqlite3_finalize(st);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    free(rows);
    free(keys);
    return rc;
}

int tg_logs_delete(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, int64_t *deleted,
                   char *err, size_t errsz)
{
    static const char *const own[] = {"limit", "order_by", "order_by_direction", NULL};
    int64_t limit;
    int rc;
    *deleted = 0;
    if ((rc = get_int_param(q, "limit", -1, 1, INT64_MAX / 2, &limit, err, errsz)) != TG_LQ_OK)
        return rc;
    char order[128];
    tg_logfilter_t f;
    if ((rc = order_and_filter(q, own, order, sizeof(order), &f, err, errsz)) != TG_LQ_OK)
        return rc;
    tg_buf_t sql;
    tg_buf_init(&sql, 128 << 10);
    tg_buf_appendf(&sql,
                   "SELECT l.seq FROM logs l WHERE " SCOPE "%s%s LIMIT ?",
                   tg_buf_cstr(&f.sql), order);
    sqlite3_stmt *st = NULL;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_error(db, err, errsz);
    } else {
        int64_t gw = gateway_number(db, account, gateway);
        int next = prepare_scoped(db, &sql, gw, &f, &st);
        if (next == 0) {
            rc = db_error(db, err, errsz);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        } else {
            sqlite3_bind_int64(st, next, limit);
            rc = delete_rows(db, st, gw, deleted, err, errsz);
        }
    }
    sqlite3_finalize(st);
    tg_buf_free(&sql);
    tg_logfilter_free(&f);
    return rc;
}

/* ---- analytics -------------------------------------------------------------------------------------------- */

#define MAX_BUCKETS 1000
#define MAX_GROUPS 200

typedef struct {
    int64_t requests, errors, cached, tokens_in, tokens_out;
    double cost;
    bool has_cost;
    int64_t *durations;
    size_t nd, capd;
} agg_t;

static void agg_add(agg_t *a, sqlite3_stmt *st)
{
    /* columns: 2 duration, 3 success, 4 cached, 5 tokens_in, 6 tokens_out, 7 cost */
    a->requests++;
    a->errors += sqlite3_column_int(st, 3) == 0;
    a->cached += sqlite3_column_int(st, 4) != 0;
    a->tokens_in += sqlite3_column_int64(st, 5);
    a->tokens_out += sqlite3_column_int64(st, 6);
    if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
        a->cost += sqlite3_column_double(st, 7);
        a->has_cost = true;
    }
    if (a->nd == a->capd) {
        a->capd = a->capd != 0 ? a->capd * 2 : 64;
        a->durations = tg_realloc(a->durations, a->capd * sizeof(*a->durations));
    }
    a->durations[a->nd++] = sqlite3_column_int64(st, 2);
}


/* Nearest-rank percentile of sorted values. */
static int64_t percentile(const int64_t *v, size_t n, double p)
{
    size_t rank = (size_t)ceil(p * (double)n);
    return v[rank == 0 ? 0 : rank - 1];
}

static json_t *agg_json(agg_t *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "requests", json_integer(a->requests));
    json_object_set_new(o, "errors", json_integer(a->errors));
    json_object_set_new(o, "cache_hits", json_integer(a->cached));
    json_object_set_new(o, "tokens_in", json_integer(a->tokens_in));
    json_object_set_new(o, "tokens_out", json_integer(a->tokens_out));
    json_object_set_new(o, "cost", a->has_cost ? json_real(a->cost) : json_null());
    json_t *lat = json_object();
    if (a->nd != 0) {
        qsort(a->durations, a->nd, sizeof(*a->durations), cmp_i64);
        json_object_set_new(lat, "p50", json_integer(percentile(a->durations, a->nd, 0.50)));
        json_object_set_new(lat, "p95", json_integer(percentile(a->durations, a->nd, 0.95)));
        json_object_set_new(lat, "p99", json_integer(percentile(a->durations, a->nd, 0.99)));
    } else {
        json_object_set_new(lat, "p50", json_null());
        json_object_set_new(lat, "p95", json_null());
        json_object_set_new(lat, "p99", json_null());
    }
    json_object_set_new(o, "latency_ms", lat);
    free(a->durations);
    memset(a, 0, sizeof(*a));
    return o;
}

static int parse_interval(const char *s, int64_t *ms)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    if (end == s || n <= 0)
        return -1;
    int64_t unit = strcmp(end, "s") == 0 || *end == '\0' ? 1000
                   : strcmp(end, "m") == 0                ? 60000
                   : strcmp(end, "h") == 0                ? 3600000
                   : strcmp(end, "d") == 0                ? 86400000
                                                          : -1;
    if (unit < 0 || n > 366LL * 86400)
        return -1;
    *ms = n * unit;
    return 0;
}

int tg_logs_analytics(sqlite3 *db, const char *account, const char *gateway, const tg_qparams_t *q, json_t **result,
                      char *err, size_t errsz)
{
    static const char *const own[] = {"group_by", "interval", NULL};
    const char *group_by = tg_qparams_get(q, "group_by"), *interval = tg_qparams_get(q, "interval");
    const char *group_expr = "NULL";
    const char *meta_key = NULL;
    if (group_by != NULL) {
        if (strcmp(group_by, "provider") == 0)
            group_expr = "l.provider";
        else if (strcmp(group_by, "model") == 0)
            group_expr = "l.model";
        else if (strncmp(group_by, "metadata.", 9) == 0 && group_by[9] != '\0')
            group_expr = "tg_meta(l.metadata, ?)", meta_key = group_by + 9;
        else
            return ERR("group_by must be provider, model or metadata.{key}");
    }
    int64_t start_ms = INT64_MIN, end_ms = INT64_MAX, step_ms = 0;
    const char *sd = tg_qparams_get(q, "start_date"), *ed = tg_qparams_get(q, "end_date");
    if (sd != NULL && tg_parse_date_ms(sd, &start_ms) != 0)
        return ERR("start_date: \"%.64s\" is not a valid date (ISO 8601, such as 2026-11-23T10:00:00Z)", sd);
    if (ed != NULL && tg_parse_date_ms(ed, &end_ms) != 0)
        return ERR("end_date: \"%.64s\" is not a valid date (ISO 8601, such as 2026-11-23T10:00:00Z)", ed);
    if (interval != NULL) {
        if (parse_interval(interval, &step_ms) != 0)
            return ERR("interval must be a duration such as 60s, 5m, 1h or 1d");
        if (sd == NULL || ed == NULL)
            return ERR("interval needs start_date and end_date");
        if ((end_ms - start_ms) / step_ms >= MAX_BUCKETS) /* (a start after the end: the filter refuses it) */
            return ERR("interval: %s over that range makes more than %d buckets", interval, MAX_BUCKETS);
    }
    tg_logfilter_t f;
    int rc = tg_logfilter_build(&f, q, own, err, errsz);
    if (rc != TG_LQ_OK) {
        tg_logfilter_free(&f);
        return rc;
    }
    tg_buf_t sql;
    tg_buf_init(&sql, 128 << 10);
    char bucket[96];
    if (step_ms != 0)
        snprintf(bucket, sizeof(bucket), "((l.created_at - %lld) / %lld)", (long long)start_ms, (long long)step_ms);
    else
        snprintf(bucket, sizeof(bucket), "0");
    /* groups come largest first (then by key), so the MAX_GROUPS an answer holds are those with the most requests */
    tg_buf_appendf(&sql,
                   "SELECT g, b, d, s, c, ti, tu, cost FROM (SELECT %s AS g, %s AS b, l.duration AS d, l.success AS s, "
                   "l.cached AS c, coalesce(l.tokens_in, 0) AS ti, coalesce(l.tokens_out, 0) AS tu, l.cost AS cost "
                   "FROM logs l WHERE " SCOPE "%s) ORDER BY %s g, b",
                   group_expr, bucket, tg_buf_cstr(&f.sql),
                   group_by != NULL ? "count(*) OVER (PARTITION BY g) DESC," : "");
    sqlite3_stmt *st = NULL;
    json_t *out = NULL;
    if (sqlite3_prepare_v2(db, sql.base, (int)sql.len, &st, NULL) != SQLITE_OK) {
        rc = db_error(db, err, errsz);
        goto done;
    }
    int bi = 1;
    if (meta_key != NULL)
        sqlite3_bind_text(st, bi++, meta_key, -1, SQLITE_STATIC);
    bind_scope(db, st, bi, gateway_number(db, account, gateway), &f);
    bind_filter(st, bi + 2, &f);

    out = json_object();
    json_t *groups = json_array();
    agg_t total = {0}, group = {0}, bk = {0};
    json_t *cur_group = NULL, *cur_buckets = NULL;
    char *cur_key = NULL;
    bool have_group = false, have_bucket = false, truncated = false;
    int64_t cur_b = 0;
    size_t ngroups = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (truncated) { /* past MAX_GROUPS: the rows still count in the totals */
            agg_add(&total, st);
            continue;
        }
        const char *g = (const char *)sqlite3_column_text(st, 0);
        int64_t b = sqlite3_column_int64(st, 1);
        bool new_group = !have_group || (g == NULL) != (cur_key == NULL) || (g != NULL && strcmp(g, cur_key) != 0);
        if (new_group || (have_bucket && b != cur_b)) {
            if (have_bucket && step_ms != 0) {
                json_t *bj = agg_json(&bk);
                char ts[40];
                tg_format_iso8601_ms((uint64_t)(start_ms + cur_b * step_ms), ts, sizeof(ts));
                json_object_set_new(bj, "start", json_string(ts));
                json_array_append_new(cur_buckets, bj);
            } else if (have_bucket) {
                free(bk.durations);
                memset(&bk, 0, sizeof(bk));
            }
            have_bucket = false;
        }
        if (new_group) {
            if (have_group) {
                json_object_set_new(cur_group, "totals", agg_json(&group));
                json_array_append_new(groups, cur_group);
            }
            free(cur_key);
            cur_key = g != NULL ? tg_strdup(g) : NULL;
            if (++ngroups > MAX_GROUPS) {
                truncated = true;
                have_group = false;
                have_bucket = false;
                cur_group = NULL;
                agg_add(&total, st);
                continue;
            }
            cur_group = json_object();
            json_object_set_new(cur_group, "key", g != NULL ? tg_json_text(g, strlen(g)) : json_null());
            cur_buckets = json_array();
            if (step_ms != 0)
                json_object_set_new(cur_group, "buckets", cur_buckets);
            else
                json_decref(cur_buckets);
            have_group = true;
        }
        if (!have_bucket) {
            cur_b = b;
            have_bucket = true;
        }
        agg_add(&total, st);
        agg_add(&group, st);
        if (step_ms != 0)
            agg_add(&bk, st);
    }
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = db_error(db, err, errsz);
        free(total.durations);
        free(group.durations);
        free(bk.durations);
        free(cur_key);
        json_decref(cur_group);
        json_decref(groups);
        json_decref(out);
        out = NULL;
        goto done;
    }
    if (have_bucket && step_ms != 0 && have_group) {
        json_t *bj = agg_json(&bk);
        char ts[40];
        tg_format_iso8601_ms((uint64_t)(start_ms + cur_b * step_ms), ts, sizeof(ts));
        json_object_set_new(bj, "start", json_string(ts));
        json_array_append_new(cur_buckets, bj);
    }
    free(bk.durations);
    if (have_group) {
        json_object_set_new(cur_group, "totals", agg_json(&group));
        json_array_append_new(groups, cur_group);
    } else {
        free(group.durations);
    }
    free(cur_key);
    json_object_set_new(out, "totals", agg_json(&total));
    json_object_set_new(out, "group_by", group_by != NULL ? json_string(group_by) : json_null());
    json_object_set_new(out, "interval_seconds", step_ms != 0 ? json_integer(step_ms / 1000) : json_null());
    if (group_by != NULL) {
        json_object_set_new(out, "groups", groups);
    } else {
        /* no grouping: the one group's buckets are the answer's */
        json_t *only = json_array_get(groups, 0);
        json_t *b = only != NULL ? json_object_get(only, "buckets") : NULL;
        if (step_ms != 0 && b != NULL)
            json_object_set(out, "buckets", b);
        else if (step_ms != 0)
            json_object_set_new(out, "buckets", json_array());
        json_decref(groups);
    }
    if (truncated)
        json_object_set_new(out, "groups_truncated", json_true());
    rc = TG_LQ_OK;
done:
    sqlite3_finalize(st);
    tg_buf_free(&sql);
    tg_logfilter_free(&f);
    *result = out;
    return rc;
}
