/*
 * Prices and cost: the shipped table, name normalisation, the cost arithmetic (cached tokens at their own rate and
 * never counted twice, unknown usage is not zero), cf-aig-custom-cost parsing and the config's "pricing" key.
 */
#include <math.h>
#include "tollgate/config.h"
#include "tollgate/pricing.h"
#include "unit.h"

#define T_NEAR(a, b) T_OK(fabs((double)(a) - (double)(b)) < 1e-12)

static void test_lookup(void)
{
    tg_buf_t errs;
    tg_buf_init(&errs, 4096);
    tg_pricing_t *t = tg_pricing_builtin(&errs);
    T_OK(t != NULL);
    tg_price_t p;
    T_OK(tg_pricing_find(t, "openai", "gpt-4o-mini", &p));
    T_NEAR(p.input, 0.15e-6);
    T_NEAR(p.output, 0.6e-6);
    T_NEAR(p.cached_input, 0.075e-6);
    T_NEAR(p.cache_write, 0.15e-6); /* not listed: the input price */
    /* dated names, -latest, models/ prefixes, aliases, Bedrock region prefixes, openrouter vendors */
    T_OK(tg_pricing_find(t, "openai", "gpt-4o-mini-2024-07-18", &p) && fabs(p.input - 0.15e-6) < 1e-15);
    T_OK(tg_pricing_find(t, "anthropic", "claude-sonnet-4-5-20250929", &p) && fabs(p.cache_write - 3.75e-6) < 1e-15);
    T_OK(tg_pricing_find(t, "google-ai-studio", "models/gemini-2.5-flash", &p) && fabs(p.output - 2.5e-6) < 1e-15);
    T_OK(tg_pricing_find(t, "azure-openai", "gpt-4o-2024-08-06", &p) && fabs(p.input - 2.5e-6) < 1e-15);
    T_OK(tg_pricing_find(t, "google-vertex-ai", "gemini-2.0-flash", &p));
    T_OK(tg_pricing_find(t, "aws-bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", &p) &&
         fabs(p.output - 4e-6) < 1e-15);
    T_OK(tg_pricing_find(t, "openrouter", "anthropic/claude-haiku-4-5", &p) && fabs(p.input - 1e-6) < 1e-15);
    /* a dated snapshot with a price of its own is not priced as its family */
    T_OK(tg_pricing_find(t, "openai", "gpt-4o-2024-05-13", &p) && fabs(p.input - 5e-6) < 1e-15 &&
         fabs(p.output - 15e-6) < 1e-15);
    /* openrouter's dotted versions and -latest families */
    T_OK(tg_pricing_find(t, "openrouter", "anthropic/claude-sonnet-4.5", &p) && fabs(p.input - 3e-6) < 1e-15);
    T_OK(tg_pricing_find(t, "openrouter", "anthropic/claude-3.5-haiku", &p) && fabs(p.output - 4e-6) < 1e-15);
    T_OK(tg_pricing_find(t, "openrouter", "mistralai/mistral-large", &p));
    T_OK(tg_pricing_find(t, "openrouter", "openai/gpt-4.1-mini", &p) && fabs(p.input - 0.4e-6) < 1e-15);
    /* unknown stays unknown: no guessing by prefix */
    T_OK(!tg_pricing_find(t, "openai", "gpt-4o-audio-preview", &p));
    T_OK(!tg_pricing_find(t, "openai", "", &p));
    T_OK(!tg_pricing_find(t, "custom-acme", "gpt-4o", &p));
    T_OK(!tg_pricing_find(t, "openrouter", "unknownvendor/gpt-4o", &p));
    /* set replaces, alias redirects */
    tg_price_t mine = {1e-6, 2e-6, 0.5e-6, 1e-6};
    tg_pricing_set(t, "custom-acme", "m1", &mine);
    tg_pricing_set(t, "openai", "gpt-4o", &mine);
    T_OK(tg_pricing_find(t, "custom-acme", "m1", &p) && p.output == 2e-6);
    T_OK(tg_pricing_find(t, "openai", "gpt-4o", &p) && p.input == 1e-6);
    tg_pricing_alias(t, "custom-proxy", "openai");
    T_OK(tg_pricing_find(t, "custom-proxy", "gpt-4o-mini", &p));
    /* an aliased provider's own entries (a config's azure-openai deployment names) come before its target's */
    tg_price_t deploy = {7e-6, 9e-6, 7e-6, 7e-6};
    tg_pricing_set(t, "azure-openai", "my-deploy", &deploy);
    tg_pricing_set(t, "azure-openai", "gpt-4o-mini", &deploy);
    T_OK(tg_pricing_find(t, "azure-openai", "my-deploy", &p) && p.input == 7e-6);
    T_OK(tg_pricing_find(t, "azure-openai", "gpt-4o-mini-2024-07-18", &p) && p.output == 9e-6);
    T_OK(tg_pricing_find(t, "openai", "gpt-4o-mini", &p) && fabs(p.input - 0.15e-6) < 1e-15); /* openai's own */
    T_OK(tg_pricing_find(t, "azure-openai", "gpt-4.1", &p) && fabs(p.input - 2e-6) < 1e-15); /* the rest: openai's */
    tg_pricing_free(t);
    tg_buf_free(&errs);
}

static void test_cost(void)
{
    tg_price_t p = {2e-6, 8e-6, 0.5e-6, 3e-6};
    /* OpenAI-style: 1000 prompt tokens of which 600 cached; 100 out */
    tg_usage_t u = {1000, 100, 600, 0};
    T_NEAR(tg_cost(&p, &u), 400 * 2e-6 + 600 * 0.5e-6 + 100 * 8e-6);
    /* Anthropic-style after normalisation: 10 plain + 1000 read + 200 written = 1210 input */
    tg_usage_t a = {1210, 25, 1000, 200};
    T_NEAR(tg_cost(&p, &a), 10 * 2e-6 + 1000 * 0.5e-6 + 200 * 3e-6 + 25 * 8e-6);
    /* no usage: unknown, not free */
    tg_usage_t none = {-1, -1, 0, 0};
    T_OK(tg_cost(&p, &none) < 0);
    /* output unknown counts as none; an inconsistent report never goes negative */
    tg_usage_t in_only = {10, -1, 0, 0};
    T_NEAR(tg_cost(&p, &in_only), 10 * 2e-6);
    tg_usage_t odd = {5, 0, 10, 0};
    T_OK(tg_cost(&p, &odd) >= 0);
}

static void test_custom_header(void)
{
    tg_price_t p;
    const char *why = NULL;
    T_EQ_INT(tg_pricing_parse_custom(tg_iov_str("{\"per_token_in\":0.000001,\"per_token_out\":0.000002}"), &p, &why), 0);
    T_NEAR(p.input, 1e-6);
    T_NEAR(p.output, 2e-6);
    T_NEAR(p.cached_input, 1e-6); /* a missing cache rate is the input rate */
    T_NEAR(p.cache_write, 1e-6);
    T_EQ_INT(tg_pricing_parse_custom(tg_iov_str("{\"per_token_in\":1e-6,\"per_token_out\":2e-6,"
                                                "\"per_cache_read_token\":1e-7,\"per_cache_write_token\":3e-6}"),
                                     &p, &why),
             0);
    T_NEAR(p.cached_input, 1e-7);
    T_NEAR(p.cache_write, 3e-6);
    static const char *const bad[] = {"",
                                      "nope",
                                      "[1]",
                                      "{\"per_token_in\":1}",
                                      "{\"per_token_in\":-1,\"per_token_out\":1}",
                                      "{\"per_token_in\":\"1\",\"per_token_out\":1}",
                                      "{\"per_token_in\":1,\"per_token_out\":1,\"x\":1}",
                                      "{\"per_token_in\":1,\"per_token_in\":1,\"per_token_out\":1}"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        why = NULL;
        T_EQ_INT(tg_pricing_parse_custom(tg_iov_str(bad[i]), &p, &why), -1);
        T_OK(why != NULL);
    }
}

static void test_config_pricing(void)
{
    tg_buf_t errs;
    tg_buf_init(&errs, 1 << 16);
    const char *good = "{\"pricing\": {\"custom-acme\": {\"m1\": {\"input\": 1, \"output\": 3}},\n"
                       "  \"openai\": {\"gpt-4o\": {\"input\": 2, \"output\": 4, \"cached_input\": 0.5}},\n"
                       "  \"custom-proxy\": \"anthropic\"}}";
    tg_config_t *c = tg_config_load_text(good, strlen(good), "t.json", &errs);
    T_OK(c != NULL);
    if (c != NULL) {
        tg_price_t p;
        T_OK(tg_pricing_find(c->pricing, "custom-acme", "m1", &p) && fabs(p.output - 3e-6) < 1e-15);
        T_OK(tg_pricing_find(c->pricing, "openai", "gpt-4o", &p) && fabs(p.cached_input - 0.5e-6) < 1e-15);
        T_OK(tg_pricing_find(c->pricing, "openai", "gpt-4o-mini", &p)); /* the rest of the table stays */
        T_OK(tg_pricing_find(c->pricing, "custom-proxy", "claude-haiku-4-5", &p));
        tg_config_release(c);
    }
    const char *bad = "{\"pricing\": {\"openai\": {\"gpt-4o\": {\"input\": 2, \"outptu\": 4},\n"
                      "  \"m2\": {\"input\": -1, \"output\": 1}, \"m3\": {\"input\": 1}}, \"x\": 5}}";
    c = tg_config_load_text(bad, strlen(bad), "t.json", &errs);
    T_OK(c == NULL);
    const char *e = tg_buf_cstr(&errs);
    T_OK(strstr(e, "t.json:1:48: pricing.openai.gpt-4o.outptu: unknown key") != NULL);
    T_OK(strstr(e, "t.json:2:19: pricing.openai.m2.input: must be a number") != NULL);
    T_OK(strstr(e, "pricing.openai.m3: needs both") != NULL);
    T_OK(strstr(e, "pricing.x: must be an object of models") != NULL);
    if (c != NULL)
        tg_config_release(c);
    tg_buf_free(&errs);
}

int main(void)
{
    T_RUN(test_lookup);
    T_RUN(test_cost);
    T_RUN(test_custom_header);
    T_RUN(test_config_pricing);
    return unit_done("test_pricing");
}
