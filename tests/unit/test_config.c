/*
 * Config loading: defaults, a full good file (comments, env: values, providers, gateways), and bad files whose
 * errors must name the right line, column and key.
 */
#include <stdlib.h>
#include "tollgate/config.h"
#include "tollgate/error.h"
#include "unit.h"

static tg_config_t *load(const char *text, tg_buf_t *errs)
{
    tg_buf_init(errs, 1 << 16);
    return tg_config_load_text(text, strlen(text), "t.json", errs);
}

/* Loads text that must fail; returns the error text (static). */
static const char *load_err(const char *text)
{
    static char out[4096];
    tg_buf_t errs;
    tg_config_t *c = load(text, &errs);
    T_OK(c == NULL);
    if (c != NULL)
        tg_config_release(c);
    snprintf(out, sizeof(out), "%.*s", (int)errs.len, errs.base != NULL ? errs.base : "");
    tg_buf_free(&errs);
    return out;
}

static void test_defaults(void)
{
    tg_config_t *c = tg_config_defaults();
    T_EQ_STR(c->listen_host, "127.0.0.1");
    T_EQ_INT(c->listen_port, 8787);
    T_EQ_STR(c->data_dir, "tollgate-data");
    T_EQ_INT(c->max_request_body, 32 << 20);
    T_EQ_INT(c->cache_max_memory, 64 << 20);
    T_EQ_INT(c->cache_max_disk, 1 << 30);
    T_EQ_INT(c->cache_max_entry, 10 << 20);
    T_EQ_INT(c->num_gateways, 1);
    T_OK(tg_config_find_gateway(c, tg_iov_str("local"), tg_iov_str("default")) != NULL);
    T_OK(tg_config_find_gateway(c, tg_iov_str("local"), tg_iov_str("other")) == NULL);
    T_OK(c->admin_token == NULL);
    T_OK(c->access_log);
    tg_config_release(c);
}

static void test_good_file(void)
{
    setenv("TG_TEST_TOKEN", "s3cret-token", 1);
    const char *text = "// a comment with \"quotes\" and /* stars */\n"
                       "{\n"
                       "  \"listen\": \"[::1]:9000\", /* block\n comment */\n"
                       "  \"workers\": 3,\n"
                       "  \"data_dir\": \"/var/lib/tg\",\n"
                       "  \"admin_token\": \"env:TG_TEST_TOKEN\",\n"
                       "  \"access_log\": false,\n"
                       "  \"max_request_body\": 1048576,\n"
                       "  \"upstream_first_byte_timeout\": 2.5,\n"
                       "  \"cache_max_memory\": 1048576, \"cache_max_disk\": 0, \"cache_max_entry\": 65536,\n"
                       "  \"providers\": {\n"
                       "    \"openai\": {\"base_url\": \"http://127.0.0.1:1234/v1/\"},\n"
                       "    \"custom-acme\": {\"base_url\": \"https://llm.acme.internal/v1\"},\n"
                       "    \"custom-zed\": {\"base_url\": \"http://zed:80\"}\n"
                       "  },\n"
                       "  \"gateways\": [\n"
                       "    {\"id\": \"prod\", \"account\": \"acme\", \"cache_ttl\": 300, \"collect_logs\": false,\n"
                       "     \"cache_invalidate_on_update\": true,\n"
                       "     \"rate_limiting_limit\": null, \"log_management\": 1000,\n"
                       "     \"log_management_strategy\": \"STOP_INSERTING\", \"url\": \"// not a comment\"},\n"
                       "    {\"id\": \"default\"}\n"
                       "  ]\n"
                       "}\n";
    /* "url" is not a gateway key: take it out, the rest must load */
    char *fixed = strdup(text);
    char *u = strstr(fixed, ", \"url\": \"// not a comment\"");
    memmove(u, u + strlen(", \"url\": \"// not a comment\""), strlen(u + strlen(", \"url\": \"// not a comment\"")) + 1);
    tg_buf_t errs;
    tg_config_t *c = load(fixed, &errs);
    T_OK(c != NULL);
    if (c == NULL) {
        fprintf(stderr, "%.*s", (int)errs.len, errs.base);
        tg_buf_free(&errs);
        free(fixed);
        return;
    }
    T_EQ_STR(c->listen_host, "::1");
    T_EQ_INT(c->listen_port, 9000);
    T_EQ_INT(c->workers, 3);
    T_EQ_STR(c->data_dir, "/var/lib/tg");
    T_EQ_STR(c->admin_token, "s3cret-token");
    T_OK(!c->access_log);
    T_EQ_INT(c->max_request_body, 1048576);
    T_EQ_INT(c->upstream_first_byte_timeout, 2500);
    T_EQ_INT(c->cache_max_memory, 1048576);
    T_EQ_INT(c->cache_max_disk, 0);
    T_EQ_INT(c->cache_max_entry, 65536);
    int oi = tg_provider_find(tg_iov_str("openai"));
    T_EQ_STR(c->builtin_base_urls[oi], "http://127.0.0.1:1234/v1"); /* trailing slash dropped */
    int ai = tg_provider_find(tg_iov_str("anthropic"));
    T_EQ_STR(c->builtin_base_urls[ai], "https://api.anthropic.com");
    T_EQ_INT(c->num_customs, 2);
    const tg_provider_conf_t *pc = tg_config_find_custom(c, tg_iov_str("custom-acme"));
    T_OK(pc != NULL && strcmp(pc->base_url, "https://llm.acme.internal/v1") == 0);
    T_OK(tg_config_find_custom(c, tg_iov_str("custom-zed")) != NULL);
    T_OK(tg_config_find_custom(c, tg_iov_str("custom-nope")) == NULL);
    T_EQ_INT(c->num_gateways, 2);
    const tg_gateway_t *g = tg_config_find_gateway(c, tg_iov_str("acme"), tg_iov_str("prod"));
    T_OK(g != NULL);
    if (g != NULL) {
        T_EQ_INT(g->cache_ttl, 300);
        T_OK(g->cache_invalidate_on_update);
        T_OK(!g->collect_logs);
        T_EQ_INT(g->rate_limiting_limit, -1);
        T_EQ_INT(g->log_management, 1000);
        T_EQ_INT(g->log_management_strategy, TG_LOGS_STOP_INSERTING);
    }
    /* account defaults to "local" */
    T_OK(tg_config_find_gateway(c, tg_iov_str("local"), tg_iov_str("default")) != NULL);
    T_OK(tg_config_find_gateway(c, tg_iov_str("acme"), tg_iov_str("default")) == NULL);
    tg_config_release(c);
    tg_buf_free(&errs);
    free(fixed);
}

static void test_string_with_comment_chars(void)
{
    tg_buf_t errs;
    tg_config_t *c = load("{\"data_dir\": \"/tmp/a//b/*c*/\"}", &errs);
    T_OK(c != NULL);
    if (c != NULL)
        T_EQ_STR(c->data_dir, "/tmp/a//b/*c*/");
    tg_config_release(c);
    tg_buf_free(&errs);
}

static void test_errors_positions(void)
{
    /* unknown root key: line 3, column 3 (the key) */
    T_EQ_STR(load_err("{\n  \"listen\": \"127.0.0.1:1\",\n  \"colect_logs\": true\n}"),
             "t.json:3:3: colect_logs: unknown key \"colect_logs\" (see doc/config.md for the keys Tollgate reads)\n");
    /* a bad value points at the value */
    T_EQ_STR(load_err("{\n  \"workers\": \"two\"\n}"), "t.json:2:14: workers: must be an integer from 0 to 256\n");
    /* in a gateway: the path names the index */
    T_EQ_STR(load_err("{\"gateways\": [\n  {\"id\": \"a\"},\n  {\"id\": \"b\", \"cache_ttl\": -5}\n]}"),
             "t.json:3:28: gateways[1].cache_ttl: must be an integer from 0 to 2592000\n");
    /* a syntax error: jansson's position */
    const char *e = load_err("{\n  \"listen\": \"x\",,\n}");
    T_OK(strncmp(e, "t.json:2:", 9) == 0);
    /* comments keep positions right */
    T_EQ_STR(load_err("/* one\n two */ {\n// three\n  \"nope\": 1}"),
             "t.json:4:3: nope: unknown key \"nope\" (see doc/config.md for the keys Tollgate reads)\n");
    T_EQ_STR(load_err("{ /* never closed\n}"), "t.json:1:3: unterminated /* comment\n");
}

static void test_errors_values(void)
{
    unsetenv("TG_TEST_MISSING");
    T_EQ_STR(load_err("{\"admin_token\": \"env:TG_TEST_MISSING\"}"),
             "t.json:1:17: admin_token: environment variable TG_TEST_MISSING is not set\n");
    T_OK(strstr(load_err("{\"listen\": \"nowhere\"}"), "listen must be \"host:port\"") != NULL);
    T_OK(strstr(load_err("{\"listen\": \"example.com:80\"}"), "IPv4 or IPv6 address") != NULL);
    T_OK(strstr(load_err("{\"listen\": \"127.0.0.1:99999\"}"), "port must be a number") != NULL);
    T_OK(strstr(load_err("{\"providers\": {\"opena1\": {\"base_url\": \"http://x\"}}}"), "unknown provider \"opena1\"") !=
         NULL);
    T_OK(strstr(load_err("{\"providers\": {\"openai\": {\"base_url\": \"ftp://x\"}}}"), "http:// or https://") != NULL);
    T_OK(strstr(load_err("{\"providers\": {\"openai\": {\"base_url\": \"http://x/{bogus}\"}}}"),
                "unknown placeholder") != NULL);
    T_OK(strstr(load_err("{\"providers\": {\"custom-a\": {}}}"), "needs a \"base_url\"") != NULL);
    T_OK(strstr(load_err("{\"providers\": {\"openai\": {\"base_url\": \"http://x\", \"key\": 1}}}"),
                "unknown key \"key\" in a provider") != NULL);
    T_OK(strstr(load_err("{\"gateways\": [{\"account\": \"a\"}]}"), "needs an \"id\"") != NULL);
    T_OK(strstr(load_err("{\"gateways\": [{\"id\": \"a b\"}]}"), "letters, digits") != NULL);
    T_OK(strstr(load_err("{\"gateways\": [{\"id\": \"a\"}, {\"id\": \"a\"}]}"), "duplicate gateway \"a\"") != NULL);
    T_OK(strstr(load_err("{\"gateways\": [{\"id\": \"a\", \"authentication\": true}]}"), "not available") != NULL);
    T_OK(strstr(load_err("{\"gateways\": [{\"id\": \"a\", \"rate_limiting_limit\": 10}]}"), "not available") != NULL);
    T_OK(strstr(load_err("{\"gateways\": [{\"id\": \"a\", \"rate_limiting_technique\": \"leaky\"}]}"),
                "\"fixed\" or \"sliding\"") != NULL);
    T_OK(strstr(load_err("{\"gateways\": {}}"), "must be an array") != NULL);
    T_OK(strstr(load_err("[1, 2]"), "must be a JSON object") != NULL);
    T_OK(strstr(load_err("{\"a\": 1, \"a\": 2}"), "duplicate") != NULL);
    T_OK(strstr(load_err("{\"max_request_body\": 0}"), "from 1 to") != NULL);
    T_OK(strstr(load_err("{\"keepalive_timeout\": \"5s\"}"), "number of seconds") != NULL);
    T_OK(strstr(load_err(""), "t.json:") != NULL);
}

static void test_all_errors_reported(void)
{
    const char *e = load_err("{\n \"a\": 1,\n \"workers\": -1,\n \"gateways\": [{\"id\": \"x\", \"cache_ttl\": true}]\n}");
    int lines = 0;
    for (const char *p = e; *p != '\0'; ++p)
        lines += *p == '\n';
    T_EQ_INT(lines, 3);
    T_OK(strstr(e, "t.json:2:2:") != NULL);
    T_OK(strstr(e, "t.json:3:13:") != NULL);
    T_OK(strstr(e, "gateways[0].cache_ttl") != NULL);
}

static void test_refcount(void)
{
    tg_config_t *c = tg_config_defaults();
    tg_config_retain(c);
    tg_config_release(c);
    T_EQ_STR(c->listen, "127.0.0.1:8787"); /* still alive: one reference left */
    tg_config_release(c);
}

static void test_load_file_missing(void)
{
    tg_buf_t errs;
    tg_buf_init(&errs, 4096);
    T_OK(tg_config_load_file("/nonexistent/tollgate.json", &errs) == NULL);
    T_OK(errs.len != 0 && strstr(tg_buf_cstr(&errs), "cannot open") != NULL);
    tg_buf_free(&errs);
}

int main(void)
{
    T_RUN(test_defaults);
    T_RUN(test_good_file);
    T_RUN(test_string_with_comment_chars);
    T_RUN(test_errors_positions);
    T_RUN(test_errors_values);
    T_RUN(test_all_errors_reported);
    T_RUN(test_refcount);
    T_RUN(test_load_file_missing);
    return unit_done("test_config");
}
