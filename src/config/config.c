/*
 * Config loading: comments are blanked out in place (keeping every byte offset, so line and column stay true),
 * jansson parses the result, and validation walks the tree against tables of known keys.
 *
 * jansson reports positions only for syntax errors, so for semantic errors (an unknown key, a value out of range)
 * a small scanner walks the already-valid text along the JSON path of the offending element to find its line and
 * column. That runs only when there is an error to report, so the common path pays nothing for it.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include "tollgate/config.h"
#include "tollgate/error.h"

#define MAX_DEPTH 8
#define MAX_CONFIG_SIZE (4u << 20)

typedef struct {
    const char *name;
    const char *text; /* comment-free copy, same offsets as the file */
    size_t len;
    tg_buf_t *errs;
    unsigned nerrs;
    const char *path[MAX_DEPTH];
    char idx[MAX_DEPTH][16];
    int depth;
} ctx_t;

/* ---- locating an element in the text --------------------------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        ++p;
    return p;
}

static const char *skip_string(const char *p, const char *end)
{
    for (++p; p < end && *p != '"'; ++p)
        if (*p == '\\')
            ++p;
    return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end)
{
    p = skip_ws(p, end);
    if (p >= end)
        return end;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int level = 0;
        for (; p < end; ++p) {
            if (*p == '"') {
                p = skip_string(p, end) - 1;
            } else if (*p == '{' || *p == '[') {
                ++level;
            } else if (*p == '}' || *p == ']') {
                if (--level == 0)
                    return p + 1;
            }
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
        ++p;
    return p;
}

/* Returns where path[0..n) leads from the value at p: the key itself when want_key, else the value. On a miss,
 * the deepest element found. */
static const char *find_path(const char *p, const char *end, const char *const *path, int n, bool want_key)
{
    p = skip_ws(p, end);
    if (n == 0 || p >= end)
        return p;
    if (*p == '{') {
        size_t klen = strlen(path[0]);
        for (p = skip_ws(p + 1, end); p < end && *p == '"';) {
            const char *key = p, *kend = skip_string(p, end);
            bool match = (size_t)(kend - key - 2) == klen && memcmp(key + 1, path[0], klen) == 0;
            p = skip_ws(kend, end);
            if (p < end && *p == ':')
                p = skip_ws(p + 1, end);
            if (match)
                return (n == 1 && want_key) ? key : find_path(p, end, path + 1, n - 1, want_key);
            p = skip_ws(skip_value(p, end), end);
            if (p < end && *p == ',')
                p = skip_ws(p + 1, end);
        }
    } else if (*p == '[') {
        long want = strtol(path[0], NULL, 10), i = 0;
        for (p = skip_ws(p + 1, end); p < end && *p != ']'; ++i) {
            if (i == want)
                return find_path(p, end, path + 1, n - 1, want_key);
            p = skip_ws(skip_value(p, end), end);
            if (p < end && *p == ',')
                p = skip_ws(p + 1, end);
        }
    }
    return p;
}

static void line_col(const ctx_t *ctx, const char *at, int *line, int *col)
{
    *line = 1;
    const char *bol = ctx->text;
    for (const char *p = ctx->text; p < at; ++p)
        if (*p == '\n')
            ++*line, bol = p + 1;
    *col = (int)(at - bol) + 1;
}

/* "gateways[0].cache_ttl" for the current path (plus `last` when non-NULL). */
static void path_string(const ctx_t *ctx, const char *last, char *buf, size_t bufsz)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i <= ctx->depth && n < bufsz; ++i) {
        const char *el = i < ctx->depth ? ctx->path[i] : last;
        if (el == NULL)
            break;
        bool index = i < ctx->depth && el == ctx->idx[i];
        n += (size_t)snprintf(buf + n, bufsz - n, index ? "[%s]" : (n == 0 ? "%s" : ".%s"), el);
    }
}

/* Reports an error at the current path's key (at_key) or value. */
__attribute__((format(printf, 3, 4))) static void cerr(ctx_t *ctx, bool at_key, const char *fmt, ...)
{
    char msg[512], where[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    path_string(ctx, NULL, where, sizeof(where));
    int line, col;
    line_col(ctx, find_path(ctx->text, ctx->text + ctx->len, ctx->path, ctx->depth, at_key), &line, &col);
    if (where[0] != '\0')
        tg_buf_appendf(ctx->errs, "%s:%d:%d: %s: %s\n", ctx->name, line, col, where, msg);
    else
        tg_buf_appendf(ctx->errs, "%s:%d:%d: %s\n", ctx->name, line, col, msg);
    ++ctx->nerrs;
}

static void push_key(ctx_t *ctx, const char *key)
{
    TG_BUG_ON(ctx->depth >= MAX_DEPTH);
    ctx->path[ctx->depth++] = key;
}

static void push_index(ctx_t *ctx, size_t i)
{
    TG_BUG_ON(ctx->depth >= MAX_DEPTH);
    snprintf(ctx->idx[ctx->depth], sizeof(ctx->idx[0]), "%zu", i);
    ctx->path[ctx->depth] = ctx->idx[ctx->depth];
    ++ctx->depth;
}

static void pop(ctx_t *ctx)
{
    --ctx->depth;
}

/* ---- comments ------------------------------------------------------------------------------------------- */

/* Blanks // and block comments (newlines kept). Returns 0, or -1 after reporting an unterminated comment. */
static int strip_comments(char *s, size_t len, ctx_t *ctx)
{
    size_t i = 0;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 byte order mark */
        s[0] = s[1] = s[2] = ' ', i = 3;
    while (i < len) {
        if (s[i] == '"') {
            for (++i; i < len && s[i] != '"' && s[i] != '\n'; ++i)
                if (s[i] == '\\')
                    ++i;
            ++i;
        } else if (s[i] == '/' && i + 1 < len && s[i + 1] == '/') {
            while (i < len && s[i] != '\n')
                s[i++] = ' ';
        } else if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
            size_t start = i;
            s[i++] = ' ';
            s[i++] = ' ';
            while (i < len && !(s[i] == '*' && i + 1 < len && s[i + 1] == '/')) {
                if (s[i] != '\n')
                    s[i] = ' ';
                ++i;
            }
            if (i >= len) {
                int line, col;
                line_col(ctx, s + start, &line, &col);
                tg_buf_appendf(ctx->errs, "%s:%d:%d: unterminated /* comment\n", ctx->name, line, col);
                ++ctx->nerrs;
                return -1;
            }
            s[i++] = ' ';
            s[i++] = ' ';
        } else {
            ++i;
        }
    }
    return 0;
}

/* ---- typed values --------------------------------------------------------------------------------------- */

static bool valid_env_name(const char *n)
{
    if (!((*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z') || *n == '_'))
        return false;
    for (++n; *n != '\0'; ++n)
        if (!((*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
            return false;
    return true;
}

/* A string value, with "env:NAME" resolved. Returns a malloc'd copy, or NULL after reporting. */
static char *get_string(ctx_t *ctx, json_t *v, bool allow_empty)
{
    if (!json_is_string(v)) {
        cerr(ctx, false, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n) {
        cerr(ctx, false, "must not contain a NUL character");
        return NULL;
    }
    if (strncmp(s, "env:", 4) == 0) {
        if (!valid_env_name(s + 4)) {
            cerr(ctx, false, "\"%s\" is not a valid environment variable reference (env:NAME)", s);
            return NULL;
        }
        const char *e = getenv(s + 4);
        if (e == NULL) {
            cerr(ctx, false, "environment variable %s is not set", s + 4);
            return NULL;
        }
        s = e;
    }
    if (!allow_empty && *s == '\0') {
        cerr(ctx, false, "must not be empty");
        return NULL;
    }
    return tg_strdup(s);
}

static int get_bool(ctx_t *ctx, json_t *v, bool *out)
{
    if (!json_is_boolean(v)) {
        cerr(ctx, false, "must be true or false");
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int get_uint(ctx_t *ctx, json_t *v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max) {
        cerr(ctx, false, "must be an integer from %llu to %llu", (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* A duration in seconds (integer or fraction), stored as milliseconds. */
static int get_seconds(ctx_t *ctx, json_t *v, double min, double max, uint64_t *out_ms)
{
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(d >= min && d <= max)) {
        cerr(ctx, false, "must be a number of seconds from %g to %g", min, max);
        return -1;
    }
    *out_ms = (uint64_t)llround(d * 1000.0);
    return 0;
}

/* null, or an integer in [min, max]; null stores -1. */
static int get_nullable_int(ctx_t *ctx, json_t *v, int64_t min, int64_t max, int64_t *out)
{
    if (json_is_null(v)) {
        *out = -1;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        cerr(ctx, false, "must be null or an integer from %lld to %lld", (long long)min, (long long)max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

bool tg_gateway_same_settings(const tg_gateway_t *a, const tg_gateway_t *b)
{
    return a->collect_logs == b->collect_logs && a->cache_ttl == b->cache_ttl &&
           a->cache_invalidate_on_update == b->cache_invalidate_on_update &&
           a->rate_limiting_limit == b->rate_limiting_limit && a->rate_limiting_interval == b->rate_limiting_interval &&
           a->rate_limiting_technique == b->rate_limiting_technique && a->authentication == b->authentication &&
           a->log_management == b->log_management && a->log_management_strategy == b->log_management_strategy;
}

/* ---- the schema ----------------------------------------------------------------------------------------- */

enum { T_STRING, T_STRING_OR_NULL, T_LISTEN, T_BOOL, T_U32, T_U64, T_SECONDS };

typedef struct {
    const char *key;
    int type;
    size_t offset;
    double min, max;
} field_t;

#define F(key, type, min, max) {#key, type, offsetof(tg_config_t, key), min, max}
static const field_t root_fields[] = {
    F(listen, T_LISTEN, 0, 0),
    F(workers, T_U32, 0, 256),
    F(data_dir, T_STRING, 0, 0),
    F(admin_token, T_STRING_OR_NULL, 0, 0),
    F(access_log, T_BOOL, 0, 0),
    F(upstream_fast_http1, T_BOOL, 0, 0),
    F(upstream_ca_file, T_STRING_OR_NULL, 0, 0),
    F(max_request_body, T_U64, 1, 1 << 30),
    F(log_queue_size, T_U32, 16, 10000000),
    F(log_queue_memory, T_U64, 1 << 20, UINT64_C(1) << 40),
    F(log_max_body, T_U64, 0, 1 << 30),
    F(cache_max_memory, T_U64, 0, UINT64_C(1) << 40),
    F(cache_max_disk, T_U64, 0, UINT64_C(1) << 44),
    F(cache_max_entry, T_U64, 1024, 1 << 30),
    F(max_header_size, T_U32, 1024, 1 << 20),
    F(max_headers, T_U32, 8, 1000),
    F(max_url_length, T_U32, 256, 1 << 16),
    F(max_connections, T_U32, 1, 1000000),
    F(max_response_buffer, T_U32, 4096, 64 << 20),
    F(client_header_timeout, T_SECONDS, 0.1, 3600),
    F(client_body_timeout, T_SECONDS, 0.1, 3600),
    F(keepalive_timeout, T_SECONDS, 0.1, 3600),
    F(send_timeout, T_SECONDS, 0.1, 3600),
    F(upstream_connect_timeout, T_SECONDS, 0.1, 600),
    F(upstream_first_byte_timeout, T_SECONDS, 0.1, 86400),
    F(upstream_idle_timeout, T_SECONDS, 0.1, 86400),
    F(drain_timeout, T_SECONDS, 0, 3600),
};
#undef F

static void apply_field(ctx_t *ctx, tg_config_t *c, const field_t *f, json_t *v)
{
    char *base = (char *)c + f->offset;
    uint64_t u;
    switch (f->type) {
    case T_STRING:
    case T_STRING_OR_NULL: {
        if (f->type == T_STRING_OR_NULL && json_is_null(v)) {
            free(*(char **)base);
            *(char **)base = NULL;
            break;
        }
        char *s = get_string(ctx, v, false);
        if (s != NULL) {
            free(*(char **)base);
            *(char **)base = s;
        }
    } break;
    case T_LISTEN: {
        char *s = get_string(ctx, v, false);
        if (s != NULL) {
            const char *err = tg_config_set_listen(c, s);
            if (err != NULL)
                cerr(ctx, false, "%s", err);
            free(s);
        }
    } break;
    case T_BOOL:
        get_bool(ctx, v, (bool *)base);
        break;
    case T_U32:
        if (get_uint(ctx, v, (uint64_t)f->min, (uint64_t)f->max, &u) == 0)
            *(uint32_t *)base = (uint32_t)u;
        break;
    case T_U64:
        if (get_uint(ctx, v, (uint64_t)f->min, (uint64_t)f->max, &u) == 0)
            *(uint64_t *)base = u;
        break;
    case T_SECONDS:
        get_seconds(ctx, v, f->min, f->max, (uint64_t *)base);
        break;
    }
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return false;
    return true;
}

static void parse_gateway(ctx_t *ctx, json_t *obj, tg_gateway_t *gw)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj)) {
        cerr(ctx, false, "must be an object");
        return;
    }
    json_object_foreach(obj, key, v)
    {
        push_key(ctx, key);
        if (strcmp(key, "account") == 0 || strcmp(key, "id") == 0) {
            char *s = get_string(ctx, v, false);
            if (s != NULL && !valid_id(s)) {
                cerr(ctx, false, "must be 1 to 64 letters, digits, '-' or '_'");
                free(s);
                s = NULL;
            }
            if (s != NULL) {
                char **dst = key[0] == 'a' ? &gw->account : &gw->id;
                free(*dst);
                *dst = s;
            }
        } else if (strcmp(key, "collect_logs") == 0) {
            get_bool(ctx, v, &gw->collect_logs);
        } else if (strcmp(key, "cache_ttl") == 0) {
            uint64_t u;
            if (json_is_null(v))
                gw->cache_ttl = 0;
            else if (get_uint(ctx, v, 0, 2592000, &u) == 0)
                gw->cache_ttl = (uint32_t)u;
        } else if (strcmp(key, "cache_invalidate_on_update") == 0) {
            get_bool(ctx, v, &gw->cache_invalidate_on_update);
        } else if (strcmp(key, "rate_limiting_limit") == 0) {
            if (get_nullable_int(ctx, v, 1, INT32_MAX, &gw->rate_limiting_limit) == 0 && gw->rate_limiting_limit != -1)
                cerr(ctx, false, "rate limiting is not available in this version of Tollgate; set it to null");
        } else if (strcmp(key, "rate_limiting_interval") == 0) {
            get_nullable_int(ctx, v, 1, 86400 * 366, &gw->rate_limiting_interval);
        } else if (strcmp(key, "rate_limiting_technique") == 0) {
            if (json_is_string(v) && strcmp(json_string_value(v), "fixed") == 0)
                gw->rate_limiting_technique = TG_RL_FIXED;
            else if (json_is_string(v) && strcmp(json_string_value(v), "sliding") == 0)
                gw->rate_limiting_technique = TG_RL_SLIDING;
            else
                cerr(ctx, false, "must be \"fixed\" or \"sliding\"");
        } else if (strcmp(key, "authentication") == 0) {
            if (get_bool(ctx, v, &gw->authentication) == 0 && gw->authentication)
                cerr(ctx, false, "authenticated gateways are not available in this version of Tollgate; set it to "
                                 "false");
        } else if (strcmp(key, "log_management") == 0) {
            get_nullable_int(ctx, v, 1, 1000000000, &gw->log_management);
        } else if (strcmp(key, "log_management_strategy") == 0) {
            if (json_is_null(v) || (json_is_string(v) && strcmp(json_string_value(v), "DELETE_OLDEST") == 0))
                gw->log_management_strategy = TG_LOGS_DELETE_OLDEST;
            else if (json_is_string(v) && strcmp(json_string_value(v), "STOP_INSERTING") == 0)
                gw->log_management_strategy = TG_LOGS_STOP_INSERTING;
            else
                cerr(ctx, false, "must be \"DELETE_OLDEST\", \"STOP_INSERTING\" or null");
        } else {
            cerr(ctx, true, "unknown key \"%s\" in a gateway (known: account, id, collect_logs, cache_ttl, "
                            "cache_invalidate_on_update, rate_limiting_limit, rate_limiting_interval, "
                            "rate_limiting_technique, authentication, log_management, log_management_strategy)",
                 key);
        }
        pop(ctx);
    }
    if (gw->id == NULL)
        cerr(ctx, false, "a gateway needs an \"id\"");
}

static void init_gateway(tg_gateway_t *gw)
{
    memset(gw, 0, sizeof(*gw));
    gw->collect_logs = true;
    gw->rate_limiting_limit = -1;
    gw->rate_limiting_interval = -1;
    gw->rate_limiting_technique = TG_RL_FIXED;
    gw->log_management = -1;
    gw->log_management_strategy = TG_LOGS_DELETE_OLDEST;
}

static int cmp_gateway(const void *a, const void *b)
{
    const tg_gateway_t *x = a, *y = b;
    int r = strcmp(x->account, y->account);
    return r != 0 ? r : strcmp(x->id, y->id);
}

static void parse_gateways(ctx_t *ctx, tg_config_t *c, json_t *arr)
{
    if (!json_is_array(arr)) {
        cerr(ctx, false, "must be an array of gateway objects");
        return;
    }
    size_t n = json_array_size(arr);
    if (n > 10000) {
        cerr(ctx, false, "at most 10000 gateways");
        return;
    }
    c->gateways = tg_calloc(n, sizeof(*c->gateways));
    for (size_t i = 0; i != n; ++i) {
        tg_gateway_t *gw = c->gateways + c->num_gateways++;
        init_gateway(gw);
        push_index(ctx, i);
        parse_gateway(ctx, json_array_get(arr, i), gw);
        if (gw->account == NULL)
            gw->account = tg_strdup("local");
        if (gw->id == NULL)
            gw->id = tg_strdup("");
        for (size_t j = 0; j != i && gw->id[0] != '\0'; ++j) {
            if (strcmp(c->gateways[j].account, gw->account) == 0 && strcmp(c->gateways[j].id, gw->id) == 0) {
                cerr(ctx, false, "duplicate gateway \"%s\" in account \"%s\" (also at gateways[%zu])", gw->id,
                     gw->account, j);
                break;
            }
        }
        pop(ctx);
    }
    qsort(c->gateways, c->num_gateways, sizeof(*c->gateways), cmp_gateway);
}

static int cmp_custom(const void *a, const void *b)
{
    return strcmp(((const tg_provider_conf_t *)a)->slug, ((const tg_provider_conf_t *)b)->slug);
}

static void parse_providers(ctx_t *ctx, tg_config_t *c, json_t *obj)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj)) {
        cerr(ctx, false, "must be an object keyed by provider slug");
        return;
    }
    if (json_object_size(obj) > 1000) {
        cerr(ctx, false, "at most 1000 providers");
        return;
    }
    c->customs = tg_calloc(json_object_size(obj), sizeof(*c->customs));
    json_object_foreach(obj, key, v)
    {
        push_key(ctx, key);
        int bi = tg_provider_find(tg_iov_str(key));
        if (bi < 0 && !tg_provider_is_custom_slug(tg_iov_str(key))) {
            cerr(ctx, true, "unknown provider \"%s\" (a built-in slug such as \"openai\", or \"custom-{name}\" with "
                            "lower-case letters, digits, '-' and '_')",
                 key);
            pop(ctx);
            continue;
        }
        if (!json_is_object(v)) {
            cerr(ctx, false, "must be an object such as {\"base_url\": \"https://...\"}");
            pop(ctx);
            continue;
        }
        char *base_url = NULL;
        const char *k2;
        json_t *v2;
        json_object_foreach(v, k2, v2)
        {
            push_key(ctx, k2);
            if (strcmp(k2, "base_url") == 0) {
                char *s = get_string(ctx, v2, false);
                const char *err = s != NULL ? tg_provider_check_base_url(s) : NULL;
                if (err != NULL) {
                    cerr(ctx, false, "%s", err);
                    free(s);
                    s = NULL;
                }
                if (s != NULL) {
                    size_t n = strlen(s);
                    while (n > 0 && s[n - 1] == '/')
                        s[--n] = '\0';
                    free(base_url);
                    base_url = s;
                }
            } else {
                cerr(ctx, true, "unknown key \"%s\" in a provider (known: base_url)", k2);
            }
            pop(ctx);
        }
        if (bi >= 0) {
            if (base_url != NULL) {
                free(c->builtin_base_urls[bi]);
                c->builtin_base_urls[bi] = base_url;
            }
        } else if (base_url == NULL) {
            cerr(ctx, false, "a custom provider needs a \"base_url\"");
        } else {
            tg_provider_conf_t *pc = c->customs + c->num_customs++;
            pc->slug = tg_strdup(key);
            pc->base_url = base_url;
            pc->builtin_index = -1;
        }
        pop(ctx);
    }
    qsort(c->customs, c->num_customs, sizeof(*c->customs), cmp_custom);
}

/* "pricing": {"openai": {"gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25}}, "azure-openai": "openai"}
 * in USD per million tokens, merged over the shipped table. */
static void parse_pricing(ctx_t *ctx, tg_config_t *c, json_t *v)
{
    static const char *const fields[] = {"input", "output", "cached_input", "cache_write"};
    const char *provider, *model, *field;
    json_t *models, *p, *x;
    if (!json_is_object(v)) {
        cerr(ctx, false, "must be an object of providers, each an object of models with their prices");
        return;
    }
    json_object_foreach(v, provider, models)
    {
        push_key(ctx, provider);
        if (json_is_string(models) && json_string_length(models) != 0) {
            tg_pricing_alias(c->pricing, provider, json_string_value(models));
        } else if (!json_is_object(models)) {
            cerr(ctx, false, "must be an object of models (or the name of a provider whose prices apply)");
        } else {
            json_object_foreach(models, model, p)
            {
                push_key(ctx, model);
                double got[4] = {-1, -1, -1, -1};
                bool ok = json_is_object(p);
                if (!ok)
                    cerr(ctx, false, "must be an object such as {\"input\": 2.5, \"output\": 10} (USD per million "
                                     "tokens)");
                json_object_foreach(p, field, x)
                {
                    push_key(ctx, field);
                    size_t k = 0;
                    while (k != 4 && strcmp(field, fields[k]) != 0)
                        ++k;
                    if (k == 4) {
                        cerr(ctx, true, "unknown key \"%s\" (allowed: input, output, cached_input, cache_write)",
                             field);
                        ok = false;
                    } else if (!json_is_number(x) || json_number_value(x) < 0 || json_number_value(x) > 1e6) {
                        cerr(ctx, false, "must be a number of US dollars per million tokens, from 0 to 1000000");
                        ok = false;
                    } else {
                        got[k] = json_number_value(x);
                    }
                    pop(ctx);
                }
                if (ok && (got[0] < 0 || got[1] < 0)) {
                    cerr(ctx, false, "needs both \"input\" and \"output\"");
                    ok = false;
                }
                if (ok) {
                    tg_price_t price = {got[0] / 1e6, got[1] / 1e6, (got[2] >= 0 ? got[2] : got[0]) / 1e6,
                                        (got[3] >= 0 ? got[3] : got[0]) / 1e6};
                    tg_pricing_set(c->pricing, provider, model, &price);
                }
                pop(ctx);
            }
        }
        pop(ctx);
    }
}

static void parse_root(ctx_t *ctx, tg_config_t *c, json_t *root)
{
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        cerr(ctx, false, "the configuration must be a JSON object");
        return;
    }
    json_object_foreach(root, key, v)
    {
        push_key(ctx, key);
        const field_t *f = NULL;
        for (size_t i = 0; i != TG_ARRAY_SIZE(root_fields); ++i)
            if (strcmp(root_fields[i].key, key) == 0)
                f = root_fields + i;
        if (f != NULL) {
            apply_field(ctx, c, f, v);
        } else if (strcmp(key, "providers") == 0) {
            parse_providers(ctx, c, v);
        } else if (strcmp(key, "gateways") == 0) {
            parse_gateways(ctx, c, v);
        } else if (strcmp(key, "pricing") == 0) {
            parse_pricing(ctx, c, v);
        } else {
            cerr(ctx, true, "unknown key \"%s\" (see doc/config.md for the keys Tollgate reads)", key);
        }
        pop(ctx);
    }
    if (json_object_get(root, "gateways") == NULL) {
        /* no gateways listed: the one the reference service creates by itself */
        c->gateways = tg_calloc(1, sizeof(*c->gateways));
        init_gateway(c->gateways);
        c->gateways[0].account = tg_strdup("local");
        c->gateways[0].id = tg_strdup("default");
        c->num_gateways = 1;
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------------------ */

static tg_config_t *new_defaults(void)
{
    tg_config_t *c = tg_calloc(1, sizeof(*c));
    atomic_init(&c->_refcnt, 1);
    c->source = tg_strdup("(built-in defaults)");
    tg_config_set_listen(c, "127.0.0.1:8787");
    c->workers = 0;
    c->data_dir = tg_strdup("tollgate-data");
    c->access_log = true;
    c->upstream_fast_http1 = true;
    c->max_request_body = 32u << 20;
    c->max_header_size = 64u << 10;
    c->max_headers = 100;
    c->max_url_length = 8192;
    c->max_connections = 10000;
    c->max_response_buffer = 64u << 10;
    c->client_header_timeout = 30000;
    c->client_body_timeout = 60000;
    c->keepalive_timeout = 75000;
    c->send_timeout = 60000;
    c->upstream_connect_timeout = 10000;
    c->upstream_first_byte_timeout = 300000;
    c->upstream_idle_timeout = 300000;
    c->drain_timeout = 30000;
    const tg_provider_t *b = tg_provider_builtins(&c->num_builtins);
    c->builtin_base_urls = tg_calloc(c->num_builtins, sizeof(char *));
    for (size_t i = 0; i != c->num_builtins; ++i)
        c->builtin_base_urls[i] = tg_strdup(b[i].base_url);
    tg_buf_t errs;
    tg_buf_init(&errs, 4096);
    c->pricing = tg_pricing_builtin(&errs);
    if (c->pricing == NULL)
        tg_fatal(__FILE__, __LINE__, "the built-in price table (data/pricing.json) does not parse");
    tg_buf_free(&errs);
    c->log_queue_size = 65536;
    c->log_queue_memory = 256u << 20;
    c->log_max_body = 10u << 20;
    c->cache_max_memory = 64u << 20;
    c->cache_max_disk = UINT64_C(1) << 30;
    c->cache_max_entry = 10u << 20;
    return c;
}

static void free_config(tg_config_t *c)
{
    free(c->source);
    free(c->listen);
    free(c->listen_host);
    free(c->data_dir);
    free(c->admin_token);
    free(c->upstream_ca_file);
    for (size_t i = 0; i != c->num_builtins; ++i)
        free(c->builtin_base_urls[i]);
    free(c->builtin_base_urls);
    for (size_t i = 0; i != c->num_customs; ++i) {
        free(c->customs[i].slug);
        free(c->customs[i].base_url);
    }
    free(c->customs);
    for (size_t i = 0; i != c->num_gateways; ++i) {
        free(c->gateways[i].account);
        free(c->gateways[i].id);
    }
    free(c->gateways);
    tg_pricing_free(c->pricing);
    free(c);
}

tg_config_t *tg_config_defaults(void)
{
    tg_config_t *c = new_defaults();
    c->gateways = tg_calloc(1, sizeof(*c->gateways));
    init_gateway(c->gateways);
    c->gateways[0].account = tg_strdup("local");
    c->gateways[0].id = tg_strdup("default");
    c->num_gateways = 1;
    return c;
}

tg_config_t *tg_config_load_text(const char *text, size_t len, const char *name, tg_buf_t *errs)
{
    ctx_t ctx = {.name = name, .len = len, .errs = errs};
    char *copy = tg_strndup(text, len);
    ctx.text = copy;
    tg_config_t *c = NULL;
    json_t *root = NULL;

    if (strlen(copy) != len) {
        tg_buf_appendf(errs, "%s: the file contains a NUL byte\n", name);
        goto Exit;
    }
    if (strip_comments(copy, len, &ctx) != 0)
        goto Exit;
    json_error_t jerr;
    root = json_loadb(copy, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        tg_buf_appendf(errs, "%s:%d:%d: %s\n", name, jerr.line, jerr.column, jerr.text);
        goto Exit;
    }
    c = new_defaults();
    free(c->source);
    c->source = tg_strdup(name);
    parse_root(&ctx, c, root);
    if (ctx.nerrs != 0) {
        free_config(c);
        c = NULL;
    }

Exit:
    json_decref(root);
    free(copy);
    return c;
}

tg_config_t *tg_config_load_file(const char *path, tg_buf_t *errs)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        tg_buf_appendf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    tg_buf_t text;
    tg_buf_init(&text, MAX_CONFIG_SIZE);
    char chunk[8192];
    size_t n;
    int toobig = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0) {
        if (tg_buf_append(&text, chunk, n) != 0) {
            toobig = 1;
            break;
        }
    }
    int rerr = ferror(fp);
    fclose(fp);
    tg_config_t *c = NULL;
    if (toobig)
        tg_buf_appendf(errs, "%s: larger than %u bytes\n", path, MAX_CONFIG_SIZE);
    else if (rerr)
        tg_buf_appendf(errs, "%s: read error\n", path);
    else
        c = tg_config_load_text(text.base != NULL ? text.base : "", text.len, path, errs);
    tg_buf_free(&text);
    return c;
}

tg_config_t *tg_config_retain(tg_config_t *c)
{
    atomic_fetch_add_explicit(&c->_refcnt, 1, memory_order_relaxed);
    return c;
}

void tg_config_release(tg_config_t *c)
{
    if (c != NULL && atomic_fetch_sub_explicit(&c->_refcnt, 1, memory_order_acq_rel) == 1)
        free_config(c);
}

static int cmp_iov_str(tg_iovec_t a, const char *s)
{
    size_t n = strlen(s);
    int r = memcmp(a.base, s, TG_MIN(a.len, n));
    return r != 0 ? r : (a.len < n ? -1 : a.len > n ? 1 : 0);
}

const tg_gateway_t *tg_config_find_gateway(const tg_config_t *c, tg_iovec_t account, tg_iovec_t id)
{
    size_t lo = 0, hi = c->num_gateways;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const tg_gateway_t *g = c->gateways + mid;
        int r = cmp_iov_str(account, g->account);
        if (r == 0)
            r = cmp_iov_str(id, g->id);
        if (r == 0)
            return g;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const tg_provider_conf_t *tg_config_find_custom(const tg_config_t *c, tg_iovec_t slug)
{
    size_t lo = 0, hi = c->num_customs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = cmp_iov_str(slug, c->customs[mid].slug);
        if (r == 0)
            return c->customs + mid;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *tg_config_set_listen(tg_config_t *c, const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL)
        return "listen must be \"host:port\" (for example \"127.0.0.1:8787\" or \"[::1]:8787\")";
    const char *h = listen, *he = colon;
    if (*h == '[') {
        if (he == h || he[-1] != ']')
            return "an IPv6 listen address must be written \"[addr]:port\"";
        ++h, --he;
    }
    uint64_t port;
    if (tg_parse_u64(colon + 1, strlen(colon + 1), 65535, &port) != 0)
        return "listen port must be a number from 0 to 65535";
    char host[64];
    if ((size_t)(he - h) >= sizeof(host))
        return "listen host is not an IP address";
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1)
        return "listen host must be an IPv4 or IPv6 address (or localhost)";
    free(c->listen);
    free(c->listen_host);
    c->listen = tg_strdup(listen);
    c->listen_host = tg_strdup(host);
    c->listen_port = (uint16_t)port;
    return NULL;
}
