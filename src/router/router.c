/*
 * Request routing, and the end-of-request bookkeeping (access log, metrics).
 *
 * Paths: /healthz, /readyz, /metrics -> admin; /v1/{account}/{gateway}/{provider}/{rest} -> passthrough. The
 * account, gateway and provider segments are compared as they arrive (not percent-decoded); the rest of the path
 * and the query go upstream verbatim.
 */
#include <stdio.h>
#include "tollgate/admin.h"
#include "tollgate/error.h"
#include "tollgate/log.h"
#include "tollgate/cacheserve.h"
#include "tollgate/compat.h"
#include "tollgate/proxy.h"
#include "tollgate/recorder.h"
#include "tollgate/router.h"
#include "tollgate/tgtime.h"
#include "tollgate/worker.h"


int64_t tg_router_request_timeout(const tg_req_t *req)
{
    const tg_header_t *h = tg_http_find_header(req, TG_LIT("cf-aig-request-timeout"));
    if (h == NULL)
        return (int64_t)req->config->upstream_first_byte_timeout;
    uint64_t v;
    if (tg_parse_u64(h->value.base, h->value.len, 86400000, &v) != 0 || v == 0)
        return -1;
    return (int64_t)v;
}

int tg_router_find_provider(const tg_config_t *cfg, tg_iovec_t slug, const tg_provider_t **prov, const char **base_url,
                            const char **slug_out)
{
    int bi = tg_provider_find(slug);
    if (bi >= 0) {
        size_t nb;
        *prov = tg_provider_builtins(&nb) + bi;
        *base_url = cfg->builtin_base_urls[bi];
        *slug_out = (*prov)->slug;
        return 0;
    }
    const tg_provider_conf_t *pc = tg_provider_is_custom_slug(slug) ? tg_config_find_custom(cfg, slug) : NULL;
    if (pc == NULL)
        return -1;
    *prov = NULL;
    *base_url = pc->base_url;
    *slug_out = pc->slug;
    return 0;
}

static void list_providers(char *buf, size_t bufsz)
{
    size_t n, len = 0;
    const tg_provider_t *p = tg_provider_builtins(&n);
    buf[0] = '\0';
    for (size_t i = 0; i != n && len < bufsz; ++i)
        len += (size_t)snprintf(buf + len, bufsz - len, "%s%s", i != 0 ? ", " : "", p[i].slug);
}

static void handle_gateway_path(tg_req_t *req, tg_worker_t *w)
{
    const tg_config_t *cfg = req->config;
    tg_iovec_t p = tg_iov(req->path.base + 4, req->path.len - 4); /* after "/v1/" */
    bool slash;
    tg_iovec_t account = tg_iov_split(&p, '/', &slash);
    tg_iovec_t gateway = slash ? tg_iov_split(&p, '/', &slash) : tg_iov("", 0);
    if (account.len == 0 || gateway.len == 0) {
        tg_http_send_error(req, TG_E_NOT_FOUND,
                           "Expected /v1/{account}/{gateway}/{provider}/... (for example "
                           "/v1/local/default/openai/chat/completions)");
        return;
    }
    const tg_gateway_t *gw = tg_config_find_gateway(cfg, account, gateway);
    if (gw == NULL) {
        tg_http_send_error(req, TG_E_GATEWAY_NOT_FOUND,
                           "Gateway \"%.*s\" not found in account \"%.*s\"; the gateways are those listed in the "
                           "config file (with no config file, local/default)",
                           (int)TG_MIN(gateway.len, 64), gateway.base, (int)TG_MIN(account.len, 64), account.base);
        return;
    }
    req->log_gateway = gw->id;
    tg_iovec_t slug = slash ? tg_iov_split(&p, '/', &slash) : tg_iov("", 0);
    tg_iovec_t rest = p;
    bool compat = tg_iov_eq(slug, TG_LIT("compat"));
    const tg_provider_t *prov = NULL;
    const char *base_url = NULL;
    int found = slug.len != 0 && !compat ? tg_router_find_provider(cfg, slug, &prov, &base_url, &req->log_provider) : -1;
    /* (the unified API's provider is known once the body is read: tg_compat_handle tells the recorder) */
    tg_recorder_t *rc = tg_recorder_begin(req, gw, w->process->logs, found == 0 ? req->log_provider : NULL, rest);
    if (rc == NULL)
        return; /* a malformed cf-aig-* logging header, answered */
    if (slug.len == 0) {
        tg_http_send_error(req, TG_E_NOT_FOUND,
                           "The universal endpoint (POST /v1/{account}/{gateway}) is not available in this version; "
                           "send provider requests to /v1/%s/%s/{provider}/...",
                           gw->account, gw->id);
        return;
    }
    if (compat) {
        tg_compat_handle(req, w, gw, rest);
        return;
    }
    if (found != 0) {
        char known[1024];
        list_providers(known, sizeof(known));
        if (tg_provider_is_custom_slug(slug))
            tg_http_send_error(req, TG_E_INVALID_PROVIDER,
                               "Invalid provider \"%.*s\": no custom provider of that name is configured (add it "
                               "under \"providers\" with a base_url)",
                               (int)TG_MIN(slug.len, 64), slug.base);
        else
            tg_http_send_error(req, TG_E_INVALID_PROVIDER,
                               "Invalid provider \"%.*s\". Known providers: %s, and custom-{name} for providers "
                               "configured under \"providers\"",
                               (int)TG_MIN(slug.len, 64), slug.base, known);
        return;
    }

    int64_t timeout = tg_router_request_timeout(req);
    if (timeout < 0) {
        tg_http_send_error(req, TG_E_BAD_HEADER,
                           "cf-aig-request-timeout must be a whole number of milliseconds from 1 to 86400000");
        return;
    }

    tg_buf_t url;
    tg_buf_init(&url, (size_t)cfg->max_url_length + 4096);
    int r = tg_provider_build_url(prov, base_url, tg_iov_str(gw->account), rest, req->query, &url);
    if (r != 0) {
        tg_buf_free(&url);
        if (prov != NULL && prov->num_path_vars == 2)
            tg_http_send_error(req, TG_E_BAD_PATH,
                               "Malformed path for %s: expected /%s/{%s}/{%s}/... with plain names, and no . or .. "
                               "segments",
                               prov->slug, prov->slug, prov->path_vars[0] == TG_PVAR_RESOURCE ? "resource" : "service",
                               prov->path_vars[0] == TG_PVAR_RESOURCE ? "deployment" : "region");
        else if (prov != NULL && prov->map != NULL && strcmp(prov->slug, "google-vertex-ai") == 0)
            tg_http_send_error(req, TG_E_BAD_PATH,
                               "Malformed path for google-vertex-ai: expected "
                               "/google-vertex-ai/v1/projects/{project}/locations/{region}/...");
        else
            tg_http_send_error(req, TG_E_BAD_PATH, "Malformed request path: . and .. segments are not allowed");
        return;
    }
    tg_recorder_set_target(rc, req, req->log_provider, rest, req->body);
    tg_proxy_target_t target = {
        .gateway = gw,
        .provider = req->log_provider,
        .url = tg_mem_strdup_pool(&req->pool, url.base, url.len),
        .native_path = rest,
        .first_byte_timeout_ms = (uint64_t)timeout,
    };
    tg_buf_free(&url);
    tg_cache_route(req, w, &target);
}

void tg_router_on_request(tg_req_t *req, void *data)
{
    tg_worker_t *w = data;
    if (tg_admin_handle_ops(req, w) == 0)
        return;
    if (tg_admin_handle_api(req, w) == 0)
        return;
    if (req->path.len > 4 && memcmp(req->path.base, "/v1/", 4) == 0) {
        handle_gateway_path(req, w);
        return;
    }
    tg_http_send_error(req, TG_E_NOT_FOUND,
                       "No such endpoint. Provider requests go to /v1/{account}/{gateway}/{provider}/...; operations "
                       "endpoints are /healthz, /readyz and /metrics");
}

void tg_router_on_done(tg_req_t *req, void *data)
{
    tg_worker_t *w = data;
    uint64_t dur = tg_now_mono_ns() - req->start_ns;
    if (req->status == 0 && req->method < 0)
        return; /* a connection that closed in the middle of a request head: nothing was asked */
    tg_metrics_request(w->metrics, req->log_provider, req->status, dur, req->body.len, req->bytes_sent);
    if (req->recorder != NULL)
        tg_recorder_finish(req->recorder, req, w->process->logs, w->metrics);
    if (!req->config->access_log)
        return;
    char ts[32], line[1024];
    tg_format_iso8601_ms(req->start_unix_ms, ts, sizeof(ts));
    /* the path only: a query may carry a credential (?key=...) */
    int n = snprintf(line, sizeof(line), "%s %s \"%.*s %.*s HTTP/1.%u\" %d %llu %.3fms gateway=%s provider=%s%s%s\n",
                     ts, req->client_addr, (int)req->method_name.len, req->method_name.base,
                     (int)TG_MIN(req->path.len, 512), req->path.base, req->version_minor, req->status,
                     (unsigned long long)req->bytes_sent, (double)dur / 1e6,
                     req->log_gateway != NULL ? req->log_gateway : "-",
                     req->log_provider != NULL ? req->log_provider : "-", req->aborted ? " aborted" : "",
                     req->log_note != NULL ? " " : "");
    if (n < 0)
        return;
    size_t len = TG_MIN((size_t)n, sizeof(line) - 1);
    if (req->log_note != NULL && len < sizeof(line) - 1) {
        len -= 1; /* before the newline */
        len += (size_t)snprintf(line + len, sizeof(line) - len, "%s\n", req->log_note);
        len = TG_MIN(len, sizeof(line) - 1);
    }
    tg_log_write_raw(line, len);
}
