/*
 * The per-request log recorder (recorder.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
#include "tollgate/error.h"
#include "tollgate/jsonscan.h"
#include "tollgate/recorder.h"
#include "tollgate/tgtime.h"

#define MAX_EVENT_ID 256
#define MAX_HEAD_TEXT (64u << 10)
/* arena room beyond the request's part: provider, path, model, the answer's head and content type */
#define ARENA_SLACK 1536

/* Header values that are credentials: never stored. Most names are told apart by their length and first letter. */
static bool is_secret_header(tg_iovec_t name)
{
    if (name.len < 6 || name.len > 20)
        return false;
    char c = (char)(name.base[0] | 0x20);
    switch (name.len) {
    case 6:
        return c == 'c' && tg_iov_eq_ci(name, TG_LIT("cookie"));
    case 7:
        return c == 'a' && tg_iov_eq_ci(name, TG_LIT("api-key"));
    case 9:
        return c == 'x' && tg_iov_eq_ci(name, TG_LIT("x-api-key"));
    case 10:
        return c == 's' && tg_iov_eq_ci(name, TG_LIT("set-cookie"));
    case 13:
        return c == 'a' && tg_iov_eq_ci(name, TG_LIT("authorization"));
    case 14:
        return c == 'x' && tg_iov_eq_ci(name, TG_LIT("x-goog-api-key"));
    case 19:
        return c == 'p' && tg_iov_eq_ci(name, TG_LIT("proxy-authorization"));
    case 20:
        return (c == 'c' && tg_iov_eq_ci(name, TG_LIT("cf-aig-authorization"))) ||
               (c == 'x' && tg_iov_eq_ci(name, TG_LIT("x-amz-security-token")));
    default:
        return false;
    }
}

#define HEAD_VALUE_MAX 4096 /* a longer header value is stored cut to this */

/*
 * Heads are stored as they came, one "name: value" line per header, credentials left out: a copy, not an encoding
 * (JSON-escaping both heads was a fifth of what logging cost a worker). The logs API turns them into JSON when a
 * record is read (logquery.h). head_bound is the room the text can take (credentials counted, so one pass over the
 * headers sizes it); head_text writes it, leaving out what does not fit MAX_HEAD_TEXT.
 */
static size_t head_bound(const tg_header_t *h, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i != n && len <= MAX_HEAD_TEXT; ++i)
        len += h[i].name.len + 3 + TG_MIN(h[i].value.len, HEAD_VALUE_MAX);
    return TG_MIN(len, (size_t)MAX_HEAD_TEXT);
}

/* The head text in the record's arena, in `bound` bytes (head_bound) and a NUL. */
static const char *head_text(tg_logrec_t *rec, const tg_header_t *h, size_t n, size_t bound)
{
    char *out = tg_logrec_alloc(rec, bound + 1), *p = out, *end = out + bound;
    for (size_t i = 0; i != n; ++i) {
        if (is_secret_header(h[i].name))
            continue;
        size_t vlen = TG_MIN(h[i].value.len, HEAD_VALUE_MAX);
        if (h[i].name.len + 3 + vlen > (size_t)(end - p))
            break; /* what does not fit is left out */
        memcpy(p, h[i].name.base, h[i].name.len);
        p += h[i].name.len;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, h[i].value.base, vlen);
        p += vlen;
        *p++ = '\n';
    }
    *p = '\0';
    return out;
}

static const char *iov_dup(tg_logrec_t *rec, tg_iovec_t v, size_t max)
{
    return v.base != NULL ? tg_logrec_strndup(rec, v.base, TG_MIN(v.len, max)) : NULL;
}

/* "true"/"false" header value: 1, 0, or -1 when malformed; `def` when absent. */
static int bool_header(tg_req_t *req, const char *name, int def)
{
    const tg_header_t *h = tg_http_find_header(req, name, strlen(name));
    if (h == NULL)
        return def;
    tg_iovec_t v = tg_iov_trim(h->value);
    if (tg_iov_eq_ci(v, TG_LIT("true")) || tg_iov_eq(v, TG_LIT("1")))
        return 1;
    if (tg_iov_eq_ci(v, TG_LIT("false")) || tg_iov_eq(v, TG_LIT("0")))
        return 0;
    return -1;
}

/* STOP_INSERTING and the gateway at its limit, its stored rows and the records on their way counted: the record
 * would be refused. Else *admitted says whether the record holds a place the store reserved (tg_logstore_admit). */
static bool gateway_full(tg_logstore_t *store, const tg_gateway_t *gw, bool *admitted)
{
    *admitted = false;
    if (store == NULL || gw->log_management < 0 || gw->log_management_strategy != TG_LOGS_STOP_INSERTING)
        return false;
    *admitted = tg_logstore_admit(store, gw->account, gw->id, gw->log_management);
    return !*admitted;
}

tg_recorder_t *tg_recorder_begin(tg_req_t *req, const tg_gateway_t *gw, tg_logstore_t *store, const char *provider,
                                 tg_iovec_t native_path)
{
    tg_recorder_t *rc = tg_mem_alloc_pool(&req->pool, sizeof(*rc));
    memset(rc, 0, offsetof(tg_recorder_t, usage)); /* the parser is set up by the response head */
    req->recorder = rc;
    rc->provider = provider;
    const tg_config_t *cfg = req->config;

    int collect = bool_header(req, "cf-aig-collect-log", gw->collect_logs);
    int payload = bool_header(req, "cf-aig-collect-log-payload", 1);
    rc->max_body = cfg->log_max_body;
    rc->payload = payload == 1;
    /* no record when collection is off (usage still counts in the metrics) or retention would refuse it; a
     * malformed collect header is logged */
    tg_logrec_t *rec = NULL;
    size_t head_len = 0;
    bool admitted = false, placed = false, keep = collect != 0;
    /* a queue place first (a request the queue has no room for names no log id), then retention's */
    if (keep && store != NULL) {
        placed = tg_logstore_reserve(store);
        if (placed && gateway_full(store, gw, &admitted)) {
            tg_logstore_unreserve(store);
            placed = false;
        }
        keep = placed;
    }
    if (keep) {
        /* one allocation for the record, its request head and body, and room for what the answer adds */
        head_len = head_bound(req->headers, req->num_headers);
        bool keep_body = rc->payload && req->body.len != 0 && req->body.len <= rc->max_body;
        size_t account_len = strlen(gw->account), id_len = strlen(gw->id);
        size_t arena = account_len + id_len + head_len + 2 + (keep_body ? req->body.len : 0) + ARENA_SLACK;
        rec = tg_logrec_new(req->start_unix_ms, arena);
        rec->account = tg_logrec_strndup(rec, gw->account, account_len);
        rec->gateway = tg_logrec_strndup(rec, gw->id, id_len);
        rec->request_type = "native";
        rec->log_management = gw->log_management;
        rec->log_management_strategy = gw->log_management_strategy;
        rec->admitted = admitted; /* (submitted by tg_recorder_finish, whatever the answer) */
        rec->queue_place = placed;
        rec->request_size = req->body.len;
        rec->payload = rc->payload;
        if (provider != NULL) {
            rec->provider = tg_logrec_strdup(rec, provider);
            rec->path = iov_dup(rec, native_path, 2048);
        }
        rc->rec = rec; /* set before the headers are checked, so a refused request is logged too */
        /* SPEC.md section 5: the log id in every answer to a request that is logged, errors included */
        tg_http_add_resp_header(req, tg_iov(TG_LIT("cf-aig-log-id")), tg_iov(rec->id, TG_ULID_LEN));
    }

    /* the event id first, so that a request refused for another header is logged and answered with it */
    const tg_header_t *h;
    if ((h = tg_http_find_header(req, TG_LIT("cf-aig-event-id"))) != NULL) {
        tg_iovec_t v = tg_iov_trim(h->value);
        if (v.len == 0 || v.len > MAX_EVENT_ID) {
            tg_http_send_error(req, TG_E_BAD_HEADER, "cf-aig-event-id must be 1 to %d bytes long", MAX_EVENT_ID);
            return NULL;
        }
        if (rec != NULL)
            rec->event_id = iov_dup(rec, v, MAX_EVENT_ID);
        rc->event_id = tg_mem_strdup_pool(&req->pool, v.base, v.len);
        tg_http_add_resp_header(req, tg_iov(TG_LIT("cf-aig-event-id")), tg_iov(rc->event_id, v.len));
    }
    if (collect < 0) {
        tg_http_send_error(req, TG_E_BAD_HEADER, "cf-aig-collect-log must be true or false");
        return NULL;
    }
    if (payload < 0) {
        tg_http_send_error(req, TG_E_BAD_HEADER, "cf-aig-collect-log-payload must be true or false");
        return NULL;
    }
    if ((h = tg_http_find_header(req, TG_LIT("cf-aig-metadata"))) != NULL) {
        const char *why = NULL;
        tg_logrec_t *into = rec != NULL ? rec : tg_logrec_new(0, 0); /* checked even when nothing is kept */
        int bad = tg_logrec_set_metadata(into, h->value.base, h->value.len, &why);
        if (into != rec)
            tg_logrec_free(into);
        if (bad != 0) {
            tg_http_send_error(req, TG_E_BAD_HEADER, "cf-aig-metadata %s", why);
            return NULL;
        }
    }
    if ((h = tg_http_find_header(req, TG_LIT("cf-aig-custom-cost"))) != NULL) {
        const char *why = NULL;
        if (tg_pricing_parse_custom(h->value, &rc->custom_price, &why) != 0) {
            tg_http_send_error(req, TG_E_BAD_HEADER, "cf-aig-custom-cost %s", why);
            return NULL;
        }
        rc->has_custom_price = true;
    }
    if (rec == NULL)
        return rc;
    if ((h = tg_http_find_header(req, TG_LIT("user-agent"))) != NULL)
        rec->user_agent = iov_dup(rec, h->value, 512);
    if ((h = tg_http_find_header(req, TG_LIT("content-type"))) != NULL)
        rec->request_content_type = iov_dup(rec, h->value, 256);
    rec->request_head = head_text(rec, req->headers, req->num_headers, head_len);
    if (rc->payload && req->body.len != 0) {
        if (req->body.len > rc->max_body) {
            rec->request_body_dropped = true;
        } else {
            char *body = tg_logrec_alloc(rec, req->body.len);
            memcpy(body, req->body.base, req->body.len);
            rec->request_body = tg_iov(body, req->body.len);
        }
    }
    return rc;
}

/* ---- the model a request names ---------------------------------------------------------------------------- */

typedef struct {
    char model[129];
    bool stream;
    bool need_stream; /* the body mentions "stream": scan on after the model */
} body_info_t;

static void on_body_value(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    body_info_t *bi = data;
    if (tg_jsonscan_depth(s) != 1)
        return;
    if (v->type == TG_JSON_STRING && tg_jsonscan_key_is(s, 0, "model") && !v->truncated && v->len < sizeof(bi->model) &&
        bi->model[0] == '\0') {
        memcpy(bi->model, v->text, v->len);
        bi->model[v->len] = '\0';
        s->stop = !bi->need_stream; /* nothing else to learn from the rest of the body */
    } else if (v->type == TG_JSON_TRUE && tg_jsonscan_key_is(s, 0, "stream")) {
        bi->stream = true;
    }
}

static void scan_body(tg_iovec_t body, body_info_t *bi)
{
    static const tg_jsonscan_ops_t ops = {on_body_value, NULL};
    memset(bi, 0, sizeof(*bi));
    size_t i = 0; /* a body that is not a JSON object names no model */
    while (i < body.len && (body.base[i] == ' ' || body.base[i] == '\n' || body.base[i] == '\r' || body.base[i] == '\t'))
        ++i;
    if (i == body.len || body.base[i] != '{')
        return;
    bi->need_stream = tg_json_mentions(body, "stream");
    tg_jsonscan_t s;
    tg_jsonscan_init(&s, &ops, bi);
    tg_jsonscan_feed(&s, body.base, body.len);
}

/* The segment after `marker` in `path`, up to `stop` (or '/' or the end), %3A decoded. */
static char *path_model(tg_req_t *req, tg_iovec_t path, const char *marker, char stop)
{
    size_t ml = strlen(marker);
    for (size_t i = 0; i + ml <= path.len; ++i) {
        if (memcmp(path.base + i, marker, ml) != 0 || (i != 0 && path.base[i - 1] != '/'))
            continue;
        const char *p = path.base + i + ml, *end = path.base + path.len;
        char out[129];
        size_t o = 0;
        while (p < end && *p != '/' && *p != stop && o < sizeof(out) - 1) {
            if (*p == '%' && end - p >= 3 && p[1] == '3' && (p[2] == 'A' || p[2] == 'a')) {
                out[o++] = ':';
                p += 3;
            } else {
                out[o++] = *p++;
            }
        }
        return o != 0 ? tg_mem_strdup_pool(&req->pool, out, o) : NULL;
    }
    return NULL;
}

static char *model_of(tg_req_t *req, tg_iovec_t native_path, const body_info_t *bi)
{
    if (bi->model[0] != '\0')
        return tg_mem_strdup_pool(&req->pool, bi->model, strlen(bi->model));
    /* Workers AI's native route names the model as the whole path: @cf/meta/llama-3.1-8b-instruct */
    if (native_path.len > 4 && native_path.len <= 128 &&
        (memcmp(native_path.base, "@cf/", 4) == 0 || memcmp(native_path.base, "@hf/", 4) == 0))
        return tg_mem_strdup_pool(&req->pool, native_path.base, native_path.len);
    char *m = path_model(req, native_path, "models/", ':');
    return m != NULL ? m : path_model(req, native_path, "model/", '/');
}

void tg_recorder_set_target(tg_recorder_t *rc, tg_req_t *req, const char *provider, tg_iovec_t native_path,
                            tg_iovec_t body)
{
    body_info_t bi;
    scan_body(body, &bi);
    /* "stream": true, or Google's ...:streamGenerateContent */
    bool stream = bi.stream || memmem(native_path.base, native_path.len, TG_LIT("streamGenerateContent")) != NULL;
    tg_recorder_set_served(rc, req, provider, native_path, model_of(req, native_path, &bi), stream);
}

void tg_recorder_set_served(tg_recorder_t *rc, tg_req_t *req, const char *provider, tg_iovec_t native_path,
                            char *model, bool stream)
{
    (void)req;
    rc->request_model = model;
    rc->stream = stream;
    if (rc->rec != NULL) {
        tg_logrec_t *rec = rc->rec;
        if (rec->provider == NULL || rc->provider != provider) { /* (else tg_recorder_begin had the same) */
            rec->provider = tg_logrec_strdup(rec, provider);
            rec->path = iov_dup(rec, native_path, 2048);
        }
        rec->stream = rc->stream;
    }
    rc->provider = provider;
}

#define MAX_INFLATED (256u << 20) /* a compressed answer is read this far at most */

const char *tg_recorder_accept_encoding(tg_iovec_t v, bool identity_only)
{
    if (identity_only || v.len == 0)
        return "identity";
    bool gzip = false, deflate = false;
    while (v.len != 0) {
        tg_iovec_t tok = tg_iov_trim(tg_iov_split(&v, ',', NULL));
        tg_iovec_t name = tg_iov_trim(tg_iov_split(&tok, ';', NULL));
        tg_iovec_t params = tg_iov_trim(tok);
        if (tg_iov_eq_ci(params, TG_LIT("q=0")) || tg_iov_eq_ci(params, TG_LIT("q=0.0")))
            continue;
        gzip |= tg_iov_eq_ci(name, TG_LIT("gzip")) || tg_iov_eq_ci(name, TG_LIT("x-gzip"));
        deflate |= tg_iov_eq_ci(name, TG_LIT("deflate"));
    }
    return gzip && deflate ? "gzip, deflate" : gzip ? "gzip" : deflate ? "deflate" : "identity";
}

/* Feeds decoded body bytes to the usage parser and the stored body. */
static void take_plain(tg_recorder_t *rc, const char *p, size_t n);

static void response_head(tg_recorder_t *rc, const tg_header_t *headers, size_t n, const tg_usage_t *given,
                          const char *given_model)
{
    tg_iovec_t ct = tg_iov("", 0), ce = tg_iov("", 0);
    for (size_t i = 0; i != n; ++i) {
        if (tg_iov_eq_ci(headers[i].name, TG_LIT("content-type")))
            ct = headers[i].value;
        else if (tg_iov_eq_ci(headers[i].name, TG_LIT("content-encoding")))
            ce = tg_iov_trim(headers[i].value);
        else if (tg_iov_eq_ci(headers[i].name, TG_LIT("content-length")))
            tg_parse_u64(headers[i].value.base, headers[i].value.len, UINT64_MAX, &rc->expected_len);
    }
    if (tg_iov_eq_ci(ce, TG_LIT("gzip")) || tg_iov_eq_ci(ce, TG_LIT("x-gzip")) || tg_iov_eq_ci(ce, TG_LIT("deflate"))) {
        rc->inflate = tg_calloc(1, sizeof(*rc->inflate));
        if (inflateInit2(rc->inflate, 15 + 32) != Z_OK) { /* 15 + 32: zlib or gzip, detected from the header */
            free(rc->inflate);
            rc->inflate = NULL;
            rc->undecodable = true;
        }
    } else if (ce.len != 0 && !tg_iov_eq_ci(ce, TG_LIT("identity"))) {
        rc->undecodable = true;
    }
    if (given == NULL) {
        tg_usage_parser_init(&rc->usage, tg_usage_kind_for(ct));
        for (size_t i = 0; i != n; ++i)
            tg_usage_parser_header(&rc->usage, headers[i].name, headers[i].value);
    } else { /* only what tg_recorder_finish and tg_usage_parser_dispose read */
        rc->usage.inner = NULL;
        rc->usage_mode = TG_RECORDER_USAGE_GIVEN;
        rc->given = *given;
        tg_usage_copy_model(rc->usage.model, given_model);
    }
    rc->usage_started = true;
    if (rc->rec != NULL) {
        rc->rec->response_head = head_text(rc->rec, headers, n, head_bound(headers, n));
        if (ct.len != 0)
            rc->rec->response_content_type = iov_dup(rc->rec, ct, 256);
    }
}

void tg_recorder_response_head(tg_recorder_t *rc, const tg_header_t *headers, size_t n)
{
    response_head(rc, headers, n, NULL, NULL);
}

void tg_recorder_response_head_given(tg_recorder_t *rc, const tg_header_t *headers, size_t n, const tg_usage_t *u,
                                     const char *model)
{
    response_head(rc, headers, n, u, model);
}

static void end_inflate(tg_recorder_t *rc)
{
    if (rc->inflate != NULL) {
        inflateEnd(rc->inflate);
        free(rc->inflate);
        rc->inflate = NULL;
    }
}

void tg_recorder_response_body(tg_recorder_t *rc, const char *p, size_t n)
{
    if (rc->inflate == NULL) {
        take_plain(rc, p, n);
        return;
    }
    char out[16384];
    rc->inflate->next_in = (Bytef *)(uintptr_t)p;
    rc->inflate->avail_in = (uInt)n;
    while (rc->inflate->avail_in != 0) {
        rc->inflate->next_out = (Bytef *)out;
        rc->inflate->avail_out = sizeof(out);
        int r = inflate(rc->inflate, Z_NO_FLUSH);
        size_t got = sizeof(out) - rc->inflate->avail_out;
        rc->inflated += got;
        if (got != 0)
            take_plain(rc, out, got);
        if (r == Z_STREAM_END || (r != Z_OK && r != Z_BUF_ERROR) || rc->inflated > MAX_INFLATED) {
            end_inflate(rc); /* done, corrupt, or too large: what was read so far counts */
            return;
        }
        if (got == 0 && r == Z_BUF_ERROR)
            break;
    }
}

bool tg_recorder_defer_usage(tg_recorder_t *rc)
{
    if (!rc->usage_started || rc->usage_mode != TG_RECORDER_USAGE_SCAN || rc->inflate != NULL || rc->undecodable ||
        rc->usage.kind != TG_BODY_JSON)
        return false;
    rc->usage_mode = TG_RECORDER_USAGE_DEFERRED;
    return true;
}

bool tg_recorder_usage_read(tg_recorder_t *rc, tg_usage_t *u, const char **model)
{
    if (!rc->usage_started || rc->usage_mode != TG_RECORDER_USAGE_SCAN)
        return false;
    *u = tg_usage_parser_result(&rc->usage);
    *model = rc->usage.model[0] != '\0' ? rc->usage.model : NULL;
    return true;
}

void tg_recorder_usage_doc(tg_recorder_t *rc, const tg_jdoc_t *d)
{
    if (rc->usage_mode != TG_RECORDER_USAGE_DEFERRED)
        return;
    rc->usage_mode = TG_RECORDER_USAGE_SCAN;
    tg_usage_parser_take_doc(&rc->usage, d);
}

void tg_recorder_usage_bytes(tg_recorder_t *rc, const char *p, size_t n)
{
    if (rc->usage_mode != TG_RECORDER_USAGE_DEFERRED)
        return;
    rc->usage_mode = TG_RECORDER_USAGE_SCAN;
    if (n != 0)
        tg_usage_parser_feed(&rc->usage, p, n);
}

static void take_plain(tg_recorder_t *rc, const char *p, size_t n)
{
    if (rc->usage_started && !rc->undecodable && rc->usage_mode == TG_RECORDER_USAGE_SCAN)
        tg_usage_parser_feed(&rc->usage, p, n);
    tg_logrec_t *rec = rc->rec;
    if (rec == NULL || !rc->payload || rec->response_body_dropped)
        return;
    if (rec->response_body.len + n > rc->max_body) {
        rec->response_body_dropped = true; /* over the limit: none of it is kept */
        tg_buf_free(&rec->response_body);
        tg_buf_init(&rec->response_body, 0);
        return;
    }
    if (rec->response_body.max == 0) {
        tg_logrec_body_init(rec, rc->max_body);
        /* one allocation when the size is announced (and not inflated), else a first 4 KiB */
        uint64_t want = rc->expected_len != 0 && rc->inflate == NULL ? rc->expected_len : 4096;
        tg_buf_reserve(&rec->response_body, (size_t)TG_MIN(TG_MAX(want, n), rc->max_body));
    }
    tg_buf_append(&rec->response_body, p, n);
}

void tg_recorder_finish(tg_recorder_t *rc, tg_req_t *req, tg_logstore_t *store, tg_metrics_t *m)
{
    tg_usage_t usage = {-1, -1, 0, 0};
    const char *resp_model = NULL;
    if (rc->usage_started) {
        usage = rc->usage_mode == TG_RECORDER_USAGE_GIVEN ? rc->given : tg_usage_parser_result(&rc->usage);
        resp_model = rc->usage.model[0] != '\0' ? rc->usage.model : NULL;
    }
    const char *model = rc->request_model != NULL ? rc->request_model : resp_model;
    double cost = -1;
    if (rc->cached) {
        cost = 0; /* a cache hit costs nothing */
    } else if (rc->has_custom_price) {
        cost = tg_cost(&rc->custom_price, &usage);
    } else if (rc->provider != NULL) {
        tg_price_t price;
        if ((model != NULL && tg_pricing_find(req->config->pricing, rc->provider, model, &price)) ||
            (resp_model != NULL && tg_pricing_find(req->config->pricing, rc->provider, resp_model, &price)))
            cost = tg_cost(&price, &usage);
    }
    if (rc->provider != NULL && usage.input >= 0 && !rc->cached)
        tg_metrics_usage(m, req->log_gateway, rc->provider, model, usage.input, usage.output, usage.cached, cost);

    tg_logrec_t *rec = rc->rec;
    end_inflate(rc);
    if (rc->usage_started)
        tg_usage_parser_dispose(&rc->usage);
    rc->usage_started = false;
    if (rec == NULL)
        return;
    rc->rec = NULL;
    uint64_t now = tg_now_mono_ns();
    rec->status_code = req->status;
    rec->duration_ms = (now - req->start_ns) / 1000000;
    rec->ttfb_ms = req->first_byte_ns != 0 ? (req->first_byte_ns - req->start_ns) / 1000000 : 0;
    rec->response_size = req->bytes_sent;
    rec->success = req->status >= 200 && req->status < 400 && !req->aborted;
    rec->usage = usage;
    rec->cost = cost;
    rec->custom_cost = rc->has_custom_price && !rc->cached && cost >= 0;
    rec->cached = rc->cached;
    rec->model = tg_logrec_strdup(rec, model);
    if (req->error_message != NULL)
        rec->error = tg_logrec_strdup(rec, req->error_message);
    else if (req->aborted)
        rec->error = req->log_note != NULL && strcmp(req->log_note, "upstream-truncated") == 0
                         ? "the provider's answer was cut off"
                     : req->log_note != NULL && strcmp(req->log_note, "coalesced-truncated") == 0
                         ? "the identical request this one waited for was cut off"
                         : "the client went away before the answer was complete";
    if (store == NULL) {
        tg_logrec_free(rec);
        return;
    }
    tg_logstore_submit(store, rec);
}
