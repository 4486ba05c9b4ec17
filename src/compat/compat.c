/*
 * The unified API on the request path (compat.h).
 */
#include <stdio.h>
#include "tollgate/cacheserve.h"
#include "tollgate/compat.h"
#include "tollgate/error.h"
#include "tollgate/jsonscan.h"
#include "tollgate/pricing.h"
#include "tollgate/proxy.h"
#include "tollgate/recorder.h"
#include "tollgate/router.h"
#include "tollgate/streamusage.h"
#include "tollgate/xlate.h"

/* The providers the unified API reaches: their dialect and the native path of their chat completions endpoint. */
static const struct {
    const char *slug;
    tg_dialect_t dialect;
    const char *chat_path;
} routes[] = {
    {"openai", TG_DIALECT_OPENAI, "chat/completions"},
    {"anthropic", TG_DIALECT_ANTHROPIC, "v1/messages"},
    {"groq", TG_DIALECT_OPENAI, "chat/completions"},
    {"mistral", TG_DIALECT_OPENAI, "v1/chat/completions"},
    {"deepseek", TG_DIALECT_OPENAI, "chat/completions"},
    {"grok", TG_DIALECT_OPENAI, "v1/chat/completions"},
    {"perplexity-ai", TG_DIALECT_OPENAI, "chat/completions"},
    {"openrouter", TG_DIALECT_OPENAI, "v1/chat/completions"},
    {"cerebras", TG_DIALECT_OPENAI, "chat/completions"},
    {"fireworks", TG_DIALECT_OPENAI, "chat/completions"},
    {"workers-ai", TG_DIALECT_OPENAI, "v1/chat/completions"},
    {"baseten", TG_DIALECT_OPENAI, "v1/chat/completions"},
    {"google-ai-studio", TG_DIALECT_GOOGLE, "v1beta/models"}, /* + "/{model}:{method}" (google_path) */
};

#define ANTHROPIC_VERSION "2023-06-01"
#define MAX_MODEL 256

int tg_compat_split_model(tg_iovec_t model, tg_iovec_t *provider, tg_iovec_t *name)
{
    const char *slash = memchr(model.base, '/', model.len);
    if (slash == NULL || slash == model.base || slash == model.base + model.len - 1)
        return -1;
    *provider = tg_iov(model.base, (size_t)(slash - model.base));
    *name = tg_iov(slash + 1, model.len - (size_t)(slash - model.base) - 1);
    return 0;
}

/* ---- the model member of the body ------------------------------------------------------------------------ */

typedef struct {
    bool found, bad, truncated, twice;
    char model[MAX_MODEL + 1];
    size_t len;
    bool scan_all; /* the body names "model" more than once somewhere: look for a second top-level one */
    uint64_t start, end; /* of the string value, quotes included */
} model_find_t;

static void on_value(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    model_find_t *mf = data;
    if (tg_jsonscan_depth(s) != 1 || !tg_jsonscan_key_is(s, 0, "model"))
        return;
    if (mf->found || mf->bad) { /* a provider would read the last one: the prefix must be on the only one */
        mf->twice = true;
        s->stop = true;
        return;
    }
    if (v->type != TG_JSON_STRING || v->truncated || v->len > MAX_MODEL) {
        mf->bad = true;
        mf->truncated = v->truncated || v->len > MAX_MODEL;
    } else {
        memcpy(mf->model, v->text, v->len);
        mf->model[v->len] = '\0';
        mf->len = v->len;
        mf->start = v->start;
        mf->end = v->end;
        mf->found = true;
    }
    s->stop = !mf->scan_all;
}

/* Does the body name "model" more than once anywhere (so that a second top-level one must be looked for)? */
static bool mentions_model_twice(tg_iovec_t body)
{
    const char *first = memmem(body.base, body.len, "\"model\"", 7);
    return first != NULL && memmem(first + 7, (size_t)(body.base + body.len - first - 7), "\"model\"", 7) != NULL;
}

/* Finds "model" at the top level of `body`; 0, or -1 after answering the request. With `scan_all`, the whole body
 * is scanned for a second top-level "model" (and must be valid JSON); without, the scan stops at the first one (a
 * translation's parser refuses a second one itself). */
static int find_model(tg_req_t *req, model_find_t *mf, bool scan_all)
{
    static const tg_jsonscan_ops_t ops = {on_value, NULL};
    memset(mf, 0, sizeof(*mf));
    tg_iovec_t body = tg_iov_trim(req->body);
    if (body.len == 0 || body.base[0] != '{') {
        tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY,
                           "The body must be a JSON object: a chat completion request with \"model\": "
                           "\"{provider}/{model}\"");
        return -1;
    }
    mf->scan_all = scan_all;
    tg_jsonscan_t s;
    tg_jsonscan_init(&s, &ops, mf);
    int r = tg_jsonscan_feed(&s, req->body.base, req->body.len);
    if (mf->twice) {
        tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY, "The body has \"model\" more than once; send it once");
        return -1;
    }
    if (r != 0 || (mf->scan_all && !tg_jsonscan_complete(&s))) {
        tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY, "The body is not valid JSON");
        return -1;
    }
    for (size_t i = 0; i != mf->len; ++i) {
        unsigned char ch = (unsigned char)mf->model[i];
        if (ch < 0x20 || ch == 0x7F) { /* it goes into a response header and a URL's neighbourhood */
            tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY, "\"model\" must not contain control characters");
            return -1;
        }
    }
    if (mf->bad || !mf->found) {
        tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY,
                           mf->truncated ? "\"model\" is too long (at most 256 bytes)"
                           : mf->bad     ? "\"model\" must be a string of the form \"{provider}/{model}\", for "
                                           "example \"openai/gpt-4o-mini\""
                                         : "The body has no \"model\": the unified API needs \"model\": "
                                           "\"{provider}/{model}\", for example \"openai/gpt-4o-mini\"");
        return -1;
    }
    return 0;
}

/* ---- request headers ------------------------------------------------------------------------------------- */

/* The client's headers for Anthropic when the client speaks OpenAI's dialect: its "Authorization: Bearer KEY"
 * becomes "x-api-key: KEY" unless it sent x-api-key itself, and anthropic-version is added unless it sent one. */
static const tg_header_t *anthropic_headers(tg_req_t *req, size_t *num)
{
    tg_header_t *out = tg_mem_alloc_pool(&req->pool, sizeof(*out) * (req->num_headers + 2));
    bool has_key = tg_http_find_header(req, TG_LIT("x-api-key")) != NULL;
    bool has_version = tg_http_find_header(req, TG_LIT("anthropic-version")) != NULL;
    size_t n = 0;
    for (size_t i = 0; i != req->num_headers; ++i) {
        const tg_header_t *h = &req->headers[i];
        if (!has_key && tg_iov_eq_ci(h->name, TG_LIT("authorization"))) {
            tg_iovec_t v = tg_iov_trim(h->value);
            if (tg_iov_prefix_ci(v, TG_LIT("bearer ")))
                v = tg_iov_trim(tg_iov(v.base + 7, v.len - 7));
            out[n++] = (tg_header_t){tg_iov(TG_LIT("x-api-key")), v};
            has_key = true;
            continue;
        }
        out[n++] = *h;
    }
    if (!has_version)
        out[n++] = (tg_header_t){tg_iov(TG_LIT("anthropic-version")), tg_iov(TG_LIT(ANTHROPIC_VERSION))};
    *num = n;
    return out;
}

/* The client's headers for an OpenAI-shaped provider when the client speaks Anthropic's dialect: its
 * "x-api-key: KEY" becomes "Authorization: Bearer KEY" (unless it sent Authorization itself), and Anthropic's own
 * version and beta headers stay behind. */
static const tg_header_t *bearer_headers(tg_req_t *req, size_t *num)
{
    tg_header_t *out = tg_mem_alloc_pool(&req->pool, sizeof(*out) * (req->num_headers + 1));
    bool has_auth = tg_http_find_header(req, TG_LIT("authorization")) != NULL;
    size_t n = 0;
    for (size_t i = 0; i != req->num_headers; ++i) {
        const tg_header_t *h = &req->headers[i];
        if (tg_iov_eq_ci(h->name, TG_LIT("anthropic-version")) || tg_iov_eq_ci(h->name, TG_LIT("anthropic-beta")))
            continue;
        if (tg_iov_eq_ci(h->name, TG_LIT("x-api-key"))) {
            if (!has_auth) {
                tg_iovec_t key = tg_iov_trim(h->value);
                char *v = tg_mem_alloc_pool(&req->pool, key.len + 7);
                memcpy(v, "Bearer ", 7);
                memcpy(v + 7, key.base, key.len);
                out[n++] = (tg_header_t){tg_iov(TG_LIT("authorization")), tg_iov(v, key.len + 7)};
                has_auth = true;
            }
            continue;
        }
        out[n++] = *h;
    }
    *num = n;
    return out;
}

/* The client's headers for Google AI Studio: its key (OpenAI's "Authorization: Bearer KEY", or Anthropic's
 * "x-api-key: KEY") becomes "x-goog-api-key: KEY" unless it sent x-goog-api-key itself. Authorization never reaches
 * Google, which would take it for an OAuth token and refuse the call; Anthropic's version and beta headers stay
 * behind too. */
static const tg_header_t *google_headers(tg_req_t *req, size_t *num)
{
    tg_header_t *out = tg_mem_alloc_pool(&req->pool, sizeof(*out) * (req->num_headers + 1));
    bool has_key = tg_http_find_header(req, TG_LIT("x-goog-api-key")) != NULL;
    size_t n = 0;
    for (size_t i = 0; i != req->num_headers; ++i) {
        const tg_header_t *h = &req->headers[i];
        if (tg_iov_eq_ci(h->name, TG_LIT("anthropic-version")) || tg_iov_eq_ci(h->name, TG_LIT("anthropic-beta")))
            continue;
        bool bearer = tg_iov_eq_ci(h->name, TG_LIT("authorization"));
        if (bearer || tg_iov_eq_ci(h->name, TG_LIT("x-api-key"))) {
            tg_iovec_t v = tg_iov_trim(h->value);
            if (bearer && tg_iov_prefix_ci(v, TG_LIT("bearer ")))
                v = tg_iov_trim(tg_iov(v.base + 7, v.len - 7));
            if (!has_key && v.len != 0) {
                out[n++] = (tg_header_t){tg_iov(TG_LIT("x-goog-api-key")), v};
                has_key = true;
            }
            continue;
        }
        out[n++] = *h;
    }
    *num = n;
    return out;
}

/* Google's path for a model and method: "v1beta/models/{model}:{method}", the model percent-encoded where it is
 * not a plain path character (it is one segment). */
static const char *google_path(tg_req_t *req, tg_iovec_t model, const char *method)
{
    tg_buf_t p;
    tg_buf_init(&p, 4 * model.len + 64);
    tg_buf_append_str(&p, "v1beta/models/");
    for (size_t i = 0; i != model.len; ++i) {
        unsigned char c = (unsigned char)model.base[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~' || c == '@')
            tg_buf_append(&p, &model.base[i], 1);
        else
            tg_buf_appendf(&p, "%%%02X", c);
    }
    tg_buf_append_str(&p, ":");
    tg_buf_append_str(&p, method);
    char *s = tg_mem_strdup_pool(&req->pool, p.base, p.len);
    tg_buf_free(&p);
    return s;
}

/* ---- chat completions, messages and embeddings ------------------------------------------------------------ */

typedef enum { EP_CHAT, EP_MESSAGES, EP_EMBEDDINGS } endpoint_t;

/* The native path of `ep` for a provider whose chat path (chat completions, or messages) is `chat_path`. */
static const char *native_path(tg_req_t *req, const char *chat_path, endpoint_t ep)
{
    if (ep != EP_EMBEDDINGS)
        return chat_path;
    size_t base = strlen(chat_path) - (sizeof("chat/completions") - 1); /* "" or "v1/" */
    char *p = tg_mem_alloc_pool(&req->pool, base + sizeof("embeddings"));
    memcpy(p, chat_path, base);
    memcpy(p + base, "embeddings", sizeof("embeddings"));
    return p;
}

static void forward(tg_req_t *req, tg_worker_t *w, const tg_gateway_t *gw, tg_iovec_t endpoint, endpoint_t ep)
{
    const tg_config_t *cfg = req->config;
    if (!tg_iov_eq(req->method_name, TG_LIT("POST"))) {
        tg_http_add_resp_header(req, tg_iov(TG_LIT("allow")), tg_iov(TG_LIT("POST")));
        tg_http_send_error(req, TG_E_METHOD_NOT_ALLOWED, "compat/%.*s is for POST", (int)endpoint.len, endpoint.base);
        return;
    }
    model_find_t mf;
    if (find_model(req, &mf, false) != 0)
        return;
    tg_iovec_t pslug, name;
    if (tg_compat_split_model(tg_iov(mf.model, mf.len), &pslug, &name) != 0) {
        tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY,
                           "\"model\" must name the provider: \"{provider}/{model}\", for example "
                           "\"openai/gpt-4o-mini\" or \"anthropic/claude-sonnet-4-5\" (got \"%s\")",
                           mf.model);
        return;
    }
    if (tg_iov_eq(pslug, TG_LIT("perplexity")))
        pslug = tg_iov(TG_LIT("perplexity-ai")); /* the reference service's prefix for it */
    const tg_provider_t *prov;
    const char *base_url, *slug;
    if (tg_router_find_provider(cfg, pslug, &prov, &base_url, &slug) != 0) {
        tg_http_send_error(req, TG_E_INVALID_PROVIDER,
                           "Invalid provider \"%.*s\" in \"model\": expected \"{provider}/{model}\" with a provider "
                           "the unified API reaches (openai, anthropic, google-ai-studio, groq, mistral, deepseek, grok, "
                           "perplexity-ai, openrouter, cerebras, fireworks, workers-ai, baseten, or a configured "
                           "custom-{name})",
                           (int)pslug.len, pslug.base);
        return;
    }
    tg_dialect_t dialect = TG_DIALECT_OPENAI;
    const char *path = prov == NULL ? "chat/completions" : NULL; /* a custom provider: OpenAI-compatible */
    for (size_t i = 0; i != TG_ARRAY_SIZE(routes) && path == NULL; ++i)
        if (strcmp(routes[i].slug, slug) == 0) {
            dialect = routes[i].dialect;
            path = routes[i].chat_path;
        }
    if (path == NULL) {
        tg_http_send_error(req, TG_E_INVALID_PROVIDER,
                           "Provider \"%s\" cannot be reached through the unified API in this version; call it on "
                           "its native path /v1/%s/%s/%s/...",
                           slug, gw->account, gw->id, slug);
        return;
    }
    if (ep == EP_EMBEDDINGS && dialect == TG_DIALECT_ANTHROPIC) {
        tg_http_send_error(req, TG_E_INVALID_PROVIDER,
                           "Provider \"%s\" has no embeddings endpoint; use google-ai-studio or an OpenAI-shaped "
                           "provider (openai, mistral, workers-ai, a custom provider, ...)",
                           slug);
        return;
    }
    if (dialect == TG_DIALECT_GOOGLE && tg_iov_prefix_ci(name, TG_LIT("models/")))
        name = tg_iov(name.base + 7, name.len - 7); /* Google's resource name: the model is what follows */
    if (name.len == 0) {
        tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY, "\"model\" names no model after the provider");
        return;
    }
    if (dialect != TG_DIALECT_GOOGLE)
        path = native_path(req, path, ep);
    req->log_provider = slug;
    int64_t timeout = tg_router_request_timeout(req);
    if (timeout < 0) {
        tg_http_send_error(req, TG_E_BAD_HEADER,
                           "cf-aig-request-timeout must be a whole number of milliseconds from 1 to 86400000");
        return;
    }

    char *model = tg_mem_strdup_pool(&req->pool, name.base, name.len);
    tg_proxy_target_t target = {
        .gateway = gw,
        .provider = slug,
        .native_path = tg_iov_str(path),
        .first_byte_timeout_ms = (uint64_t)timeout,
        .cache_path = tg_iov(endpoint.base - (sizeof("compat/") - 1), endpoint.len + sizeof("compat/") - 1),
        .client = ep == EP_MESSAGES ? TG_DIALECT_ANTHROPIC : TG_DIALECT_OPENAI,
        .dialect = dialect,
    };
    tg_buf_t body;
    tg_buf_init(&body, (size_t)cfg->max_request_body + (1u << 20));
    tg_buf_reserve(&body, req->body.len + req->body.len / 4 + 512); /* one allocation in the common case */
    if (target.client == dialect && mentions_model_twice(req->body) && find_model(req, &mf, true) != 0) {
        tg_buf_free(&body); /* a second top-level "model": refused (a provider would read the other one) */
        return;
    }
    if (target.client == dialect) {
        /* the client's bytes, the model's value replaced */
        tg_buf_append(&body, req->body.base, (size_t)mf.start);
        tg_buf_append(&body, "\"", 1);
        tg_buf_append_json_escaped(&body, model, name.len);
        tg_buf_append(&body, "\"", 1);
        tg_buf_append(&body, req->body.base + mf.end, req->body.len - (size_t)mf.end);
    } else {
        char err[512];
        tg_xlate_opts_t o = {
            .model = model,
            .max_completion_tokens = strcmp(slug, "openai") == 0,
            .ask_usage = tg_streamusage_provider_ok(slug),
        };
        int r = ep == EP_EMBEDDINGS ? tg_xlate_embeddings_request(dialect, req->body.base, req->body.len, &o, &body,
                                                                  &target.xlate, err, sizeof(err))
                                    : tg_xlate_request(target.client, dialect, req->body.base, req->body.len, &o,
                                                       &body, &target.xlate, err, sizeof(err));
        if (r != 0) {
            tg_buf_free(&body);
            tg_http_send_error(req, TG_E_BAD_UNIFIED_BODY, "%s", err);
            return;
        }
        if (dialect == TG_DIALECT_ANTHROPIC)
            target.headers = anthropic_headers(req, &target.num_headers);
        else if (dialect == TG_DIALECT_GOOGLE)
            target.headers = google_headers(req, &target.num_headers);
        else
            target.headers = bearer_headers(req, &target.num_headers);
    }
    tg_iovec_t query = req->query;
    if (dialect == TG_DIALECT_GOOGLE) {
        target.native_path = tg_iov_str(google_path(req, name,
                                                    ep == EP_EMBEDDINGS    ? "batchEmbedContents"
                                                    : target.xlate.stream ? "streamGenerateContent"
                                                                          : "generateContent"));
        if (target.xlate.stream) { /* events, not a JSON array in pieces */
            char *q = tg_mem_alloc_pool(&req->pool, query.len + sizeof("alt=sse&"));
            memcpy(q, "alt=sse", 7);
            if (query.len != 0) {
                q[7] = '&';
                memcpy(q + 8, query.base, query.len);
            }
            query = tg_iov(q, query.len != 0 ? query.len + 8 : 7);
        }
    }
    target.body = tg_iov(tg_mem_strdup_pool(&req->pool, body.base, body.len), body.len);
    tg_buf_free(&body);

    tg_buf_t url;
    tg_buf_init(&url, (size_t)cfg->max_url_length + 4096);
    if (tg_provider_build_url(prov, base_url, tg_iov_str(gw->account), target.native_path, query, &url) != 0) {
        tg_buf_free(&url);
        tg_http_send_error(req, TG_E_BAD_PATH, "The upstream URL for %s could not be built from its base URL", slug);
        return;
    }
    target.url = tg_mem_strdup_pool(&req->pool, url.base, url.len);
    tg_buf_free(&url);

    tg_http_add_resp_header(req, tg_iov(TG_LIT("cf-aig-provider")), tg_iov_str(slug));
    tg_http_add_resp_header(req, tg_iov(TG_LIT("cf-aig-model")), tg_iov(model, name.len));
    if (req->recorder != NULL && target.client == dialect)
        tg_recorder_set_target(req->recorder, req, slug, target.native_path, target.body);
    else if (req->recorder != NULL) /* the translation knows what it wrote */
        tg_recorder_set_served(req->recorder, req, slug, target.native_path, model, target.xlate.stream);
    tg_cache_route(req, w, &target);
}

/* ---- models ---------------------------------------------------------------------------------------------- */

/* GET compat/models: the models the gateway knows (its price table, shipped and configured) for the providers the
 * unified API reaches, as OpenAI's model list with ids that the unified API takes. */
static void models(tg_req_t *req)
{
    if (!tg_iov_eq(req->method_name, TG_LIT("GET")) && !tg_iov_eq(req->method_name, TG_LIT("HEAD"))) {
        tg_http_add_resp_header(req, tg_iov(TG_LIT("allow")), tg_iov(TG_LIT("GET, HEAD")));
        tg_http_send_error(req, TG_E_METHOD_NOT_ALLOWED, "compat/models is for GET");
        return;
    }
    const tg_pricing_t *t = req->config->pricing;
    tg_buf_t out;
    tg_buf_init(&out, 64u << 20);
    tg_buf_append_str(&out, "{\"object\":\"list\",\"data\":[");
    size_t n = t != NULL ? tg_pricing_count(t) : 0, k = 0;
    for (size_t i = 0; i != n; ++i) {
        const char *provider, *model;
        tg_pricing_entry(t, i, &provider, &model);
        bool reached = strncmp(provider, "custom-", 7) == 0;
        for (size_t r = 0; r != TG_ARRAY_SIZE(routes) && !reached; ++r)
            reached = strcmp(routes[r].slug, provider) == 0;
        if (!reached)
            continue;
        tg_buf_append_str(&out, k++ != 0 ? ",{\"id\":\"" : "{\"id\":\"");
        tg_buf_append_json_escaped(&out, provider, strlen(provider));
        tg_buf_append_str(&out, "/");
        tg_buf_append_json_escaped(&out, model, strlen(model));
        tg_buf_append_str(&out, "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"");
        tg_buf_append_json_escaped(&out, provider, strlen(provider));
        tg_buf_append_str(&out, "\"}");
    }
    tg_buf_append_str(&out, "]}");
    tg_http_send_simple(req, 200, "application/json", out.base, out.len);
    tg_buf_free(&out);
}

void tg_compat_handle(tg_req_t *req, tg_worker_t *w, const tg_gateway_t *gw, tg_iovec_t endpoint)
{
    if (tg_iov_eq(endpoint, TG_LIT("chat/completions"))) {
        forward(req, w, gw, endpoint, EP_CHAT);
        return;
    }
    if (tg_iov_eq(endpoint, TG_LIT("embeddings"))) {
        forward(req, w, gw, endpoint, EP_EMBEDDINGS);
        return;
    }
    if (tg_iov_eq(endpoint, TG_LIT("v1/messages"))) {
        forward(req, w, gw, endpoint, EP_MESSAGES);
        return;
    }
    if (tg_iov_eq(endpoint, TG_LIT("models"))) {
        models(req);
        return;
    }
    tg_http_send_error(req, TG_E_NOT_FOUND,
                       "No such unified-API endpoint \"compat/%.*s\"; this version serves POST "
"/v1/%s/%s/compat/chat/completions, POST .../compat/v1/messages, POST .../compat/embeddings and GET "
                       ".../compat/models",
                       (int)TG_MIN(endpoint.len, 128), endpoint.base, gw->account, gw->id);
}
