/*
 * The management API's logs and analytics endpoints (SPEC.md section 8), under
 * /client/v4/accounts/{account}/ai-gateway/gateways/{gateway}/:
 *
 *   GET    logs                      list (filters, pagination, ordering)
 *   DELETE logs                      delete by the same filters (+ limit)
 *   GET    logs/{id}                 one record with its heads
 *   PATCH  logs/{id}                 {feedback, score, metadata}
 *   GET    logs/{id}/request|response  the stored body
 *   GET    analytics                 requests, errors, cache hits, tokens, cost, latency percentiles
 *   DELETE cache[?key=K]             purge the gateway's response cache, or the entries of custom key K
 *
 * Requests are checked on the worker's loop (path, auth, method); the database work runs on libuv's thread pool
 * with a pooled connection, and the answer is sent back from the loop. A client that leaves meanwhile is simply
 * not answered: the job notices through its generator's on_abort.
 */
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/admin.h"
#include "tollgate/cache.h"
#include "tollgate/error.h"
#include "tollgate/logquery.h"
#include "tollgate/logstore.h"

#define MAX_PATCH_BODY (64u << 10)

typedef enum { OP_LIST, OP_DELETE, OP_GET, OP_PATCH, OP_BODY_REQ, OP_BODY_RESP, OP_ANALYTICS, OP_CACHE_PURGE } op_t;

typedef struct {
    uv_work_t work;
    tg_req_t *req; /* NULL once the client left */
    tg_logstore_t *store;
    tg_cache_t *cache;
    op_t op;
    char *account, *gateway, *id;
    tg_qparams_t params;
    json_t *patch;
    /* the answer */
    int status;
    int code;
    char err[512];
    json_t *result, *info;
    tg_buf_t raw; /* a body (OP_BODY_*) */
    char *content_type;
} job_t;

static void send_envelope(tg_req_t *req, int status, json_t *result, json_t *info, int code, const char *message)
{
    json_t *o = json_object();
    json_object_set_new(o, "success", json_boolean(status < 300));
    json_t *errors = json_array();
    if (status >= 300) {
        json_t *e = json_object();
        json_object_set_new(e, "code", json_integer(code));
        json_object_set_new(e, "message", tg_json_text(message, strlen(message)));
        json_array_append_new(errors, e);
    }
    json_object_set_new(o, "errors", errors);
    json_object_set_new(o, "messages", json_array());
    json_object_set_new(o, "result", result != NULL ? json_incref(result) : json_null());
    if (info != NULL)
        json_object_set(o, "result_info", info);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    tg_http_send_simple(req, status, "application/json", text, strlen(text));
    free(text);
}

static void send_api_error(tg_req_t *req, int status, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void send_api_error(tg_req_t *req, int status, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    req->log_note = "api-error";
    send_envelope(req, status, NULL, NULL, code, msg);
}

static void job_free(job_t *j)
{
    free(j->account);
    free(j->gateway);
    free(j->id);
    tg_qparams_free(&j->params);
    json_decref(j->patch);
    json_decref(j->result);
    json_decref(j->info);
    tg_buf_free(&j->raw);
    free(j->content_type);
    free(j);
}

static void on_job_abort(tg_req_t *req)
{
    job_t *j = req->gen_data;
    j->req = NULL; /* the work still runs; its answer is dropped */
}

static const tg_http_generator_ops_t job_gen = {NULL, on_job_abort};

/* DELETE cache[?key=K]: a custom key's entries are those of its plain and its streamed requests. */
static void run_purge(job_t *j)
{
    const char *custom = tg_qparams_get(&j->params, "key");
    tg_iovec_t ck = tg_iov_trim(tg_iov_str(custom != NULL ? custom : "")); /* as the header is read */
    int64_t n;
    if (ck.len == 0) {
        n = tg_cache_purge(j->cache, j->account, j->gateway, NULL);
    } else {
        n = 0;
        for (int stream = 0; stream != 2 && n >= 0; ++stream) {
            tg_cache_key_parts_t parts = {.account = j->account, .gateway = j->gateway, .stream = stream != 0};
            tg_cache_key_t k;
            tg_cache_key(&parts, ck, &k);
            int64_t one = tg_cache_purge(j->cache, j->account, j->gateway, &k);
            n = one < 0 ? one : n + one;
        }
    }
    if (n < 0) {
        j->status = 500;
        j->code = 1005;
        snprintf(j->err, sizeof(j->err), "the cache database could not be purged (see the gateway's log)");
        return;
    }
    j->status = 200;
    j->result = json_pack("{sI}", "deleted", (json_int_t)n);
}

static void run_job(uv_work_t *w)
{
    job_t *j = w->data;
    if (j->op == OP_CACHE_PURGE) {
        run_purge(j);
        return;
    }
    sqlite3 *db = tg_logstore_acquire(j->store, j->err, sizeof(j->err));
    if (db == NULL) {
        j->status = 500;
        j->code = 1005;
        return;
    }
    int rc = TG_LQ_OK;
    int64_t deleted = 0;
    switch (j->op) {
    case OP_LIST:
        rc = tg_logs_list(db, j->account, j->gateway, &j->params, &j->result, &j->info, j->err, sizeof(j->err));
        break;
    case OP_DELETE:
        rc = tg_logs_delete(db, j->account, j->gateway, &j->params, &deleted, j->err, sizeof(j->err));
        if (rc == TG_LQ_OK) {
            j->result = json_pack("{sI}", "deleted", (json_int_t)deleted);
            if (deleted != 0)
                tg_logstore_rows_deleted(j->store);
        }
        break;
    case OP_GET:
        rc = tg_logs_get(db, j->account, j->gateway, j->id, &j->result, j->err, sizeof(j->err));
        break;
    case OP_PATCH:
        rc = tg_logs_patch(db, j->account, j->gateway, j->id, j->patch, &j->result, j->err, sizeof(j->err));
        break;
    case OP_BODY_REQ:
    case OP_BODY_RESP:
        rc = tg_logs_body(db, j->account, j->gateway, j->id, j->op == OP_BODY_RESP, &j->raw, &j->content_type, j->err,
                          sizeof(j->err));
        break;
    case OP_ANALYTICS:
        rc = tg_logs_analytics(db, j->account, j->gateway, &j->params, &j->result, j->err, sizeof(j->err));
        break;
    case OP_CACHE_PURGE: /* run_purge, above */
        break;
    }
    tg_logstore_release(j->store, db);
    static const int status[] = {[TG_LQ_OK] = 200, [TG_LQ_BAD] = 400, [TG_LQ_NOT_FOUND] = 404, [TG_LQ_DB] = 500};
    static const int code[] = {[TG_LQ_OK] = 0, [TG_LQ_BAD] = 1002, [TG_LQ_NOT_FOUND] = 1004, [TG_LQ_DB] = 1005};
    j->status = status[rc];
    j->code = code[rc];
}

static void after_job(uv_work_t *w, int status)
{
    job_t *j = w->data;
    tg_req_t *req = j->req;
    if (req != NULL) {
        tg_http_set_generator(req, NULL, NULL);
        if (status != 0)
            send_api_error(req, 500, 1005, "the query was cancelled");
        else if (j->status != 200)
            send_api_error(req, j->status, j->code, "%s", j->err);
        else if (j->op == OP_BODY_REQ || j->op == OP_BODY_RESP)
            tg_http_send_simple(req, 200, j->content_type != NULL ? j->content_type : "application/octet-stream",
                                j->raw.base != NULL ? j->raw.base : "", j->raw.len);
        else
            send_envelope(req, 200, j->result, j->info, 0, NULL);
    }
    job_free(j);
}

/* ---- routing and checks on the loop ----------------------------------------------------------------------- */

static bool is_loopback_host(const char *h)
{
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 || strcmp(h, "localhost") == 0;
}

/* Constant-time comparison of the bearer token. */
static bool token_ok(tg_req_t *req, const char *token)
{
    const tg_header_t *h = tg_http_find_header(req, TG_LIT("authorization"));
    if (h == NULL || h->value.len < 7 || strncasecmp(h->value.base, "Bearer ", 7) != 0)
        return false;
    tg_iovec_t got = tg_iov_trim(tg_iov(h->value.base + 7, h->value.len - 7));
    size_t n = strlen(token);
    unsigned char diff = got.len != n;
    for (size_t i = 0; i != n; ++i)
        diff |= (unsigned char)(token[i] ^ (i < got.len ? got.base[i] : 0));
    return diff == 0;
}

static bool method_is(tg_req_t *req, const char *m)
{
    return tg_iov_eq(req->method_name, m, strlen(m));
}

int tg_admin_handle_api(tg_req_t *req, tg_worker_t *w)
{
    static const char prefix[] = "/client/v4/";
    if (req->path.len < sizeof(prefix) - 1 || memcmp(req->path.base, prefix, sizeof(prefix) - 1) != 0)
        return TG_E_DECLINED;
    const tg_config_t *cfg = req->config;
    if (cfg->admin_token != NULL) {
        if (!token_ok(req, cfg->admin_token)) {
            send_api_error(req, 401, 10000, "Authentication error: send Authorization: Bearer {admin_token}");
            return 0;
        }
    } else if (!is_loopback_host(cfg->listen_host)) {
        send_api_error(req, 403, 10001,
                       "The management API needs an admin_token in the config when Tollgate listens on a "
                       "non-loopback address");
        return 0;
    }

    /* accounts/{account}/ai-gateway/gateways/{gateway}/{what}[/{id}[/{part}]] */
    tg_iovec_t p = tg_iov(req->path.base + sizeof(prefix) - 1, req->path.len - (sizeof(prefix) - 1));
    tg_iovec_t seg[8];
    size_t n = 0;
    bool more = true;
    while (more && n != TG_ARRAY_SIZE(seg))
        seg[n++] = tg_iov_split(&p, '/', &more);
    if (more || n < 6 || !tg_iov_eq(seg[0], TG_LIT("accounts")) || !tg_iov_eq(seg[2], TG_LIT("ai-gateway")) ||
        !tg_iov_eq(seg[3], TG_LIT("gateways"))) {
        send_api_error(req, 404, 1004,
                       "No such management endpoint; this version serves "
                       "/client/v4/accounts/{account}/ai-gateway/gateways/{gateway}/logs[...], .../analytics and .../cache");
        return 0;
    }
    const tg_gateway_t *gw = tg_config_find_gateway(cfg, seg[1], seg[4]);
    if (gw == NULL) {
        send_api_error(req, 404, 2001, "Gateway \"%.*s\" not found in account \"%.*s\"", (int)TG_MIN(seg[4].len, 64),
                       seg[4].base, (int)TG_MIN(seg[1].len, 64), seg[1].base);
        return 0;
    }
    req->log_gateway = gw->id;

    op_t op;
    tg_iovec_t id = tg_iov("", 0);
    const char *allowed;
    if (n == 6 && tg_iov_eq(seg[5], TG_LIT("logs"))) {
        allowed = "GET, DELETE";
        op = method_is(req, "GET") ? OP_LIST : OP_DELETE;
        if (!method_is(req, "GET") && !method_is(req, "DELETE"))
            goto bad_method;
    } else if (n == 7 && tg_iov_eq(seg[5], TG_LIT("logs")) && seg[6].len != 0) {
        allowed = "GET, PATCH";
        id = seg[6];
        op = method_is(req, "GET") ? OP_GET : OP_PATCH;
        if (!method_is(req, "GET") && !method_is(req, "PATCH"))
            goto bad_method;
    } else if (n == 8 && tg_iov_eq(seg[5], TG_LIT("logs")) && seg[6].len != 0 &&
               (tg_iov_eq(seg[7], TG_LIT("request")) || tg_iov_eq(seg[7], TG_LIT("response")))) {
        allowed = "GET";
        id = seg[6];
        op = tg_iov_eq(seg[7], TG_LIT("request")) ? OP_BODY_REQ : OP_BODY_RESP;
        if (!method_is(req, "GET"))
            goto bad_method;
    } else if (n == 6 && tg_iov_eq(seg[5], TG_LIT("cache"))) {
        allowed = "DELETE";
        op = OP_CACHE_PURGE;
        if (!method_is(req, "DELETE"))
            goto bad_method;
    } else if (n == 6 && tg_iov_eq(seg[5], TG_LIT("analytics"))) {
        allowed = "GET";
        op = OP_ANALYTICS;
        if (!method_is(req, "GET"))
            goto bad_method;
    } else {
        send_api_error(req, 404, 1004, "No such management endpoint under gateway %s (logs, logs/{id}, "
                                       "logs/{id}/request, logs/{id}/response, analytics, cache)", gw->id);
        return 0;
    }
    if (op != OP_CACHE_PURGE && w->process->logs == NULL) {
        send_api_error(req, 503, 1005, "the log store is not open");
        return 0;
    }
    if (op == OP_CACHE_PURGE && w->process->cache == NULL) {
        send_api_error(req, 503, 1005, "the response cache is not open");
        return 0;
    }

    job_t *j = tg_calloc(1, sizeof(*j));
    j->op = op;
    j->store = w->process->logs;
    j->cache = w->process->cache;
    j->account = tg_strdup(gw->account);
    j->gateway = tg_strdup(gw->id);
    j->id = id.len != 0 ? tg_strndup(id.base, TG_MIN(id.len, 64)) : NULL;
    tg_buf_init(&j->raw, 1u << 30);
    char err[256];
    if (tg_qparams_parse(&j->params, req->query, err, sizeof(err)) != 0) {
        send_api_error(req, 400, 1002, "%s", err);
        job_free(j);
        return 0;
    }
    if (op == OP_PATCH) {
        json_error_t jerr;
        if (req->body.len > MAX_PATCH_BODY ||
            (j->patch = json_loadb(req->body.base, req->body.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
            send_api_error(req, 400, 1002, "the body must be JSON such as {\"feedback\": 1, \"score\": 90}");
            job_free(j);
            return 0;
        }
    }
    j->req = req;
    j->work.data = j;
    tg_http_set_generator(req, &job_gen, j);
    int r = uv_queue_work(&w->loop, &j->work, run_job, after_job);
    if (r != 0) {
        tg_http_set_generator(req, NULL, NULL);
        send_api_error(req, 500, 1005, "cannot queue the query: %s", uv_strerror(r));
        job_free(j);
    }
    return 0;

bad_method:
    tg_http_add_resp_header(req, tg_iov(TG_LIT("allow")), tg_iov_str(allowed));
    send_api_error(req, 405, 1006, "%.*s is not allowed here (allowed: %s)", (int)TG_MIN(req->method_name.len, 16),
                   req->method_name.base, allowed);
    return 0;
}
