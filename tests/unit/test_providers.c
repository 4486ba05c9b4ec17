/*
 * Upstream URL mapping for every kind of provider path, the refusals that keep a client inside the base URL, and
 * the header filters of the passthrough proxy.
 */
#include "tollgate/error.h"
#include "tollgate/provider.h"
#include "tollgate/proxy.h"
#include "unit.h"

static const tg_provider_t *prov(const char *slug)
{
    size_t n;
    int i = tg_provider_find(tg_iov_str(slug));
    return i >= 0 ? tg_provider_builtins(&n) + i : NULL;
}

/* Builds the URL for (slug, rest, query) with the default base (or `base`), into a static string; "ERR" on error. */
static const char *url(const char *slug, const char *base, const char *rest, const char *query)
{
    static char out[2048];
    const tg_provider_t *p = slug != NULL ? prov(slug) : NULL;
    tg_buf_t b;
    tg_buf_init(&b, 4096);
    int r = tg_provider_build_url(p, base != NULL ? base : p->base_url, tg_iov_str("acct1"), tg_iov_str(rest),
                                  tg_iov_str(query), &b);
    snprintf(out, sizeof(out), "%.*s", r == 0 ? (int)b.len : 3, r == 0 ? b.base : "ERR");
    tg_buf_free(&b);
    return out;
}

static void test_registry(void)
{
    static const char *const slugs[] = {"openai", "anthropic", "google-ai-studio", "google-vertex-ai", "aws-bedrock",
                                        "azure-openai", "workers-ai", "groq", "mistral", "cohere", "deepseek", "grok",
                                        "perplexity-ai", "openrouter", "huggingface", "replicate", "cerebras",
                                        "fireworks", "elevenlabs", "fal"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(slugs); ++i) {
        const tg_provider_t *p = prov(slugs[i]);
        T_OK(p != NULL);
        if (p != NULL)
            T_OK(tg_provider_check_base_url(p->base_url) == NULL);
    }
    T_OK(prov("OpenAI") == NULL);
    T_OK(prov("nope") == NULL);
    T_OK(tg_provider_is_custom_slug(tg_iov_str("custom-acme")));
    T_OK(tg_provider_is_custom_slug(tg_iov_str("custom-a_b-9")));
    T_OK(!tg_provider_is_custom_slug(tg_iov_str("custom-")));
    T_OK(!tg_provider_is_custom_slug(tg_iov_str("custom-ACME")));
    T_OK(!tg_provider_is_custom_slug(tg_iov_str("custom-a.b")));
    T_OK(!tg_provider_is_custom_slug(tg_iov_str("acme")));
}

static void test_plain(void)
{
    T_EQ_STR(url("openai", NULL, "chat/completions", ""), "https://api.openai.com/v1/chat/completions");
    /* the v1 the client table also sends is not doubled */
    T_EQ_STR(url("openai", NULL, "v1/chat/completions", ""), "https://api.openai.com/v1/chat/completions");
    T_EQ_STR(url("openai", NULL, "v1", ""), "https://api.openai.com/v1/");
    /* but v1beta or v10 are different segments */
    T_EQ_STR(url("openai", NULL, "v10/x", ""), "https://api.openai.com/v1/v10/x");
    T_EQ_STR(url("anthropic", NULL, "v1/messages", ""), "https://api.anthropic.com/v1/messages");
    T_EQ_STR(url("google-ai-studio", NULL, "v1beta/models/gemini-2.5-flash:generateContent", "alt=sse&key=k"),
             "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent?alt=sse&key=k");
    T_EQ_STR(url("groq", NULL, "chat/completions", ""), "https://api.groq.com/openai/v1/chat/completions");
    T_EQ_STR(url("mistral", NULL, "v1/chat/completions", ""), "https://api.mistral.ai/v1/chat/completions");
    T_EQ_STR(url("cerebras", NULL, "chat/completions", ""), "https://api.cerebras.ai/v1/chat/completions");
    T_EQ_STR(url("cerebras", NULL, "v1/chat/completions", ""), "https://api.cerebras.ai/v1/chat/completions");
    T_EQ_STR(url("huggingface", NULL, "org/model", ""), "https://api-inference.huggingface.co/models/org/model");
    /* encoded characters go through untouched */
    T_EQ_STR(url("openai", NULL, "files/a%2Fb", "x=%20"), "https://api.openai.com/v1/files/a%2Fb?x=%20");
}

static void test_host_mapping(void)
{
    T_EQ_STR(url("azure-openai", NULL, "myres/gpt4o/chat/completions", "api-version=2024-10-21"),
             "https://myres.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21");
    T_EQ_STR(url("azure-openai", NULL, "myres", ""), "ERR");
    T_EQ_STR(url("azure-openai", NULL, "evil.com%2F/x/chat", ""), "ERR");
    T_EQ_STR(url("azure-openai", NULL, "a@b/x/chat", ""), "ERR");
    T_EQ_STR(url("aws-bedrock", NULL, "bedrock-runtime/us-east-1/model/m/converse", ""),
             "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse");
    T_EQ_STR(url("aws-bedrock", NULL, "s3/us-east-1/bucket", ""), "ERR");
    T_EQ_STR(url("aws-bedrock", NULL, "bedrock-runtime/us.east/x", ""), "ERR");
    T_EQ_STR(url("google-vertex-ai", NULL,
                 "v1/projects/p1/locations/europe-west4/publishers/google/models/gemini:generateContent", ""),
             "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4/publishers/google/"
             "models/gemini:generateContent");
    T_EQ_STR(url("google-vertex-ai", NULL, "v1/projects/p1/locations/global/publishers/google/models/g:x", ""),
             "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/google/models/g:x");
    T_EQ_STR(url("google-vertex-ai", NULL, "v1/projects/p1/models", ""), "ERR");
    T_EQ_STR(url("workers-ai", NULL, "@cf/meta/llama-3.1-8b-instruct", ""),
             "https://api.cloudflare.com/client/v4/accounts/acct1/ai/run/@cf/meta/llama-3.1-8b-instruct");
    T_EQ_STR(url("workers-ai", NULL, "v1/chat/completions", ""),
             "https://api.cloudflare.com/client/v4/accounts/acct1/ai/v1/chat/completions");
}

static void test_overrides(void)
{
    /* a stand-in in place of a host-mapping provider keeps the variables visible in the path */
    T_EQ_STR(url("azure-openai", "http://127.0.0.1:9/{resource}/openai/deployments/{deployment}",
                 "res/dep/chat/completions", "api-version=1"),
             "http://127.0.0.1:9/res/openai/deployments/dep/chat/completions?api-version=1");
    T_EQ_STR(url("openai", "http://127.0.0.1:9/v1", "chat/completions", ""), "http://127.0.0.1:9/v1/chat/completions");
    T_EQ_STR(url("openai", "http://127.0.0.1:9", "v1/chat/completions", ""), "http://127.0.0.1:9/v1/chat/completions");
    /* the global-vertex special case is for the default host only */
    T_EQ_STR(url("google-vertex-ai", "http://127.0.0.1:9/{region}", "v1/projects/p/locations/global/x", ""),
             "http://127.0.0.1:9/global/v1/projects/p/locations/global/x");
    /* custom providers: no variables */
    T_EQ_STR(url(NULL, "https://llm.acme.internal/v1", "chat/completions", "a=b"),
             "https://llm.acme.internal/v1/chat/completions?a=b");
}

static void test_dot_segments(void)
{
    static const char *const bad[] = {"../admin", "v1/../../x", "a/./b", ".", "..", "a/%2e%2e/b", "a/%2E./b",
                                      "a/.%2e", "%2e"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(bad); ++i)
        T_EQ_STR(url("openai", NULL, bad[i], ""), "ERR");
    /* dots inside a segment are fine */
    T_EQ_STR(url("openai", NULL, "a.b/..c/c../.d", ""), "https://api.openai.com/v1/a.b/..c/c../.d");
    T_EQ_STR(url("openai", NULL, "models/gpt-4.1", ""), "https://api.openai.com/v1/models/gpt-4.1");
}

static void test_base_url_check(void)
{
    T_OK(tg_provider_check_base_url("http://127.0.0.1:8080") == NULL);
    T_OK(tg_provider_check_base_url("https://x.y/{account}/z") == NULL);
    T_OK(tg_provider_check_base_url("ftp://x") != NULL);
    T_OK(tg_provider_check_base_url("http://") != NULL);
    T_OK(tg_provider_check_base_url("http:///path") != NULL);
    T_OK(tg_provider_check_base_url("http://x/a b") != NULL);
    T_OK(tg_provider_check_base_url("http://x/?q=1") != NULL);
    T_OK(tg_provider_check_base_url("http://x/{nope}") != NULL);
    T_OK(tg_provider_check_base_url("http://x/{region") != NULL);
}

static void test_header_filters(void)
{
    tg_iovec_t none = tg_iov("", 0);
    static const char *const dropped[] = {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                                          "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect",
                                          "cf-aig-cache-ttl", "CF-AIG-Authorization", "cf-aig-metadata",
                                          "cf-skip-cache", "cf-cache-ttl", "Proxy-Authorization"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(dropped); ++i)
        T_OK(tg_proxy_is_request_header_dropped(tg_iov_str(dropped[i]), none));
    static const char *const kept[] = {"Authorization", "x-api-key", "x-goog-api-key", "api-key", "anthropic-version",
                                       "Content-Type", "Accept", "Accept-Encoding", "User-Agent", "OpenAI-Organization",
                                       "cf-aig", "x-cf-aig-foo"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(kept); ++i)
        T_OK(!tg_proxy_is_request_header_dropped(tg_iov_str(kept[i]), none));
    /* headers the client's Connection header names are hop-by-hop too */
    tg_iovec_t conn = tg_iov_str("keep-alive, X-Secret-Hop ,close");
    T_OK(tg_proxy_is_request_header_dropped(tg_iov_str("x-secret-hop"), conn));
    T_OK(!tg_proxy_is_request_header_dropped(tg_iov_str("x-secret"), conn));
    T_OK(tg_proxy_is_response_header_dropped(tg_iov_str("Transfer-Encoding")));
    T_OK(tg_proxy_is_response_header_dropped(tg_iov_str("connection")));
    T_OK(!tg_proxy_is_response_header_dropped(tg_iov_str("content-type")));
    T_OK(!tg_proxy_is_response_header_dropped(tg_iov_str("x-request-id")));
    T_OK(!tg_proxy_is_response_header_dropped(tg_iov_str("openai-processing-ms")));
}

int main(void)
{
    T_RUN(test_registry);
    T_RUN(test_plain);
    T_RUN(test_host_mapping);
    T_RUN(test_overrides);
    T_RUN(test_dot_segments);
    T_RUN(test_base_url_check);
    T_RUN(test_header_filters);
    return unit_done("test_providers");
}
