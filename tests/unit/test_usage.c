/*
 * The push JSON scanner and the usage parsers: every input is fed whole, one byte at a time, and in uneven
 * pieces, and must give the same result each way.
 */
#include "tollgate/jsonscan.h"
#include "tollgate/usage.h"
#include "unit.h"

/* ---- jsonscan ------------------------------------------------------------------------------------------------ */

typedef struct {
    char log[4096];
    size_t len;
} trace_t;

static void trace_value(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    trace_t *t = data;
    static const char *const names[] = {"null", "false", "true", "num", "str", "{", "[", "end"};
    char path[256] = "";
    size_t pl = 0;
    for (unsigned i = 0; i < tg_jsonscan_depth(s) && i < TG_JSONSCAN_MAX_DEPTH; ++i) {
        const tg_jsonscan_level_t *l = &s->levels[i];
        pl += (size_t)(l->is_array ? snprintf(path + pl, sizeof(path) - pl, "[%u]", l->index)
                                   : snprintf(path + pl, sizeof(path) - pl, ".%s", l->key));
    }
    t->len += (size_t)snprintf(t->log + t->len, sizeof(t->log) - t->len, "%s=%s", path[0] ? path : "$",
                               names[v->type]);
    if (v->text != NULL)
        t->len += (size_t)snprintf(t->log + t->len, sizeof(t->log) - t->len, ":%.*s%s", (int)v->len, v->text,
                                   v->truncated ? "..." : "");
    t->len += (size_t)snprintf(t->log + t->len, sizeof(t->log) - t->len, "@%llu-%llu;", (unsigned long long)v->start,
                               (unsigned long long)v->end);
}

static const tg_jsonscan_ops_t trace_ops = {trace_value, NULL};

/* Scans `in` with pieces of `step` bytes (0 = whole) and returns the trace; *rc gets the last feed's result. */
static const char *scan_trace(const char *in, size_t step, int *rc)
{
    static trace_t t;
    static tg_jsonscan_t s;
    t.len = 0;
    t.log[0] = '\0';
    tg_jsonscan_init(&s, &trace_ops, &t);
    size_t n = strlen(in);
    *rc = 0;
    if (step == 0)
        step = n == 0 ? 1 : n;
    for (size_t i = 0; i < n && *rc == 0; i += step)
        *rc = tg_jsonscan_feed(&s, in + i, n - i < step ? n - i : step);
    return t.log;
}

static void check_scan(const char *in, const char *expect, int expect_rc)
{
    static const size_t steps[] = {0, 1, 2, 3, 7};
    for (size_t i = 0; i != sizeof(steps) / sizeof(steps[0]); ++i) {
        int rc;
        const char *got = scan_trace(in, steps[i], &rc);
        T_EQ_STR(got, expect);
        T_EQ_INT(rc, expect_rc);
    }
}

static void test_scan_basic(void)
{
    check_scan("{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{}}",
               "$={@0-0;.a=num:1@5-6;.b=[@11-0;.b[0]=true:true@12-16;.b[1]=null:null@17-21;.b[2]=str:x@22-25;"
               ".b=end@11-26;.c={@31-0;.c=end@31-33;$=end@0-34;",
               0);
    /* escapes, unicode and surrogate pairs decoded; whitespace anywhere */
    check_scan(" { \"k\\\"ey\" : \"a\\n\\u00e9\\ud83d\\ude00\" } ",
               "$={@1-0;.k\"ey=str:a\n\xc3\xa9\xf0\x9f\x98\x80@13-36;$=end@1-38;", 0);
    /* numbers end at what follows them, several top-level values */
    check_scan("[-1.5e3,0]\n{\"n\":2}", "$=[@0-0;[0]=num:-1.5e3@1-7;[1]=num:0@8-9;$=end@0-10;$={@11-0;.n=num:2@16-17;$=end@11-18;",
               0);
    /* errors stop the scan */
    int rc;
    scan_trace("{\"a\":tru}", 1, &rc);
    T_EQ_INT(rc, -1);
    scan_trace("{\"a\" 1}", 0, &rc);
    T_EQ_INT(rc, -1);
    scan_trace("[1,]x", 0, &rc);
    T_EQ_INT(rc, -1);
    scan_trace("{\"a\":\"\x01\"}", 0, &rc);
    T_EQ_INT(rc, -1);
    scan_trace("[}", 0, &rc);
    T_EQ_INT(rc, -1);
}

static void test_scan_limits(void)
{
    /* a long string is reported truncated; a long key never matches */
    char in[1024];
    memset(in, 0, sizeof(in));
    strcpy(in, "{\"");
    memset(in + 2, 'k', 60);
    strcat(in, "\":\"");
    memset(in + strlen(in), 'v', 300);
    strcat(in, "\"}");
    tg_jsonscan_t s;
    trace_t t = {.len = 0};
    tg_jsonscan_init(&s, &trace_ops, &t);
    T_EQ_INT(tg_jsonscan_feed(&s, in, strlen(in)), 0);
    T_OK(strstr(t.log, "...@") != NULL);
    T_OK(tg_jsonscan_complete(&s));

    /* nesting deeper than MAX_DEPTH is scanned but not reported; deeper than HARD_DEPTH is an error */
    char deep[2 * TG_JSONSCAN_HARD_DEPTH + 16];
    size_t n = 0;
    for (int i = 0; i < 30; ++i)
        deep[n++] = '[';
    deep[n++] = '1';
    for (int i = 0; i < 30; ++i)
        deep[n++] = ']';
    deep[n] = '\0';
    t.len = 0;
    t.log[0] = '\0';
    tg_jsonscan_reset(&s);
    T_EQ_INT(tg_jsonscan_feed(&s, deep, n), 0);
    T_OK(tg_jsonscan_complete(&s));
    T_OK(strstr(t.log, "num") == NULL);
    n = 0;
    for (int i = 0; i < TG_JSONSCAN_HARD_DEPTH + 1; ++i)
        deep[n++] = '[';
    tg_jsonscan_reset(&s);
    T_EQ_INT(tg_jsonscan_feed(&s, deep, n), -1);
    T_OK(tg_jsonscan_failed(&s));
}

static int stop_calls;

static void stop_at_second(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    (void)v, (void)data;
    if (++stop_calls == 2)
        s->stop = true;
}

static void test_mentions(void)
{
    T_OK(tg_json_mentions(tg_iov_str("{\"model\":\"m\",\"stream\":true}"), "stream"));
    T_OK(tg_json_mentions(tg_iov_str("\"stream\""), "stream"));
    T_OK(!tg_json_mentions(tg_iov_str("{\"streams\":1,\"upstream\":2}"), "stream"));
    T_OK(!tg_json_mentions(tg_iov_str("{\"stream"), "stream"));
    T_OK(!tg_json_mentions(tg_iov_str(""), "stream"));
    T_OK(!tg_json_mentions(tg_iov_str("\""), "stream"));
    /* a key too long for the one-search path takes the quote-by-quote one: same answers */
    static const char lk[] = "a_key_longer_than_sixty_two_bytes_so_that_it_does_not_fit_the_needle";
    T_OK(tg_json_mentions(tg_iov_str("{\"x\":1,\"a_key_longer_than_sixty_two_bytes_so_that_it_does_not_fit_the_needle\":2}"), lk));
    T_OK(!tg_json_mentions(tg_iov_str("{\"a_key_longer_than_sixty_two_bytes_so_that_it_does_not_fit_the_needl\":2}"), lk));
    T_OK(tg_json_mentions(tg_iov_str("\"\""), ""));
    T_OK(!tg_json_mentions(tg_iov_str("\"x\""), ""));
    /* against the plain definition, on random texts of a few bytes (quotes, key letters, others) at every length
     * and alignment the 16-at-a-time search handles in pieces */
    static const char alphabet[] = "\"\"sstrm:ea{";
    static const char *const keys[] = {"stream", "s", "ss", "model", "a_rather_longer_key_than_sixteen"};
    uint64_t seed = 12345;
    unsigned found = 0;
    char text[160];
    for (int round = 0; round != 20000; ++round) {
        size_t len = (size_t)(round % 150);
        const char *key = keys[round % 5];
        size_t n = strlen(key);
        for (size_t i = 0; i != len; ++i) {
            text[i] = alphabet[unit_rand(&seed) % (sizeof(alphabet) - 1)];
        }
        if (len > n + 2 && (round / 5) % 3 == 0) { /* plant one somewhere */
            size_t at = unit_rand(&seed) % (len - n - 1);
            text[at] = '"';
            memcpy(text + at + 1, key, n);
            text[at + n + 1] = '"';
        }
        bool want = false;
        for (size_t i = 0; i + n + 2 <= len && !want; ++i)
            want = text[i] == '"' && memcmp(text + i + 1, key, n) == 0 && text[i + n + 1] == '"';
        found += want;
        if (tg_json_mentions(tg_iov(text, len), key) != want) {
            T_OK(!"tg_json_mentions differs from the plain search");
            break;
        }
    }
    T_OK(found > 1000);
}

static void test_scan_stop(void)
{
    static const tg_jsonscan_ops_t ops = {stop_at_second, NULL};
    tg_jsonscan_t s;
    tg_jsonscan_init(&s, &ops, NULL);
    stop_calls = 0;
    T_EQ_INT(tg_jsonscan_feed(&s, "{\"a\":1,\"b\":2,\"c\":3}", 19), 0);
    T_EQ_INT(stop_calls, 2); /* the object start and "a"; nothing after the stop */
    T_EQ_INT(tg_jsonscan_feed(&s, "garbage", 7), 0);
    T_EQ_INT(stop_calls, 2);
    tg_jsonscan_reset(&s); /* a reset starts over */
    T_EQ_INT(tg_jsonscan_feed(&s, "[1]", 3), 0);
    T_EQ_INT(stop_calls, 5); /* [, 1, ] */
}

/* ---- usage --------------------------------------------------------------------------------------------------- */

static tg_usage_t usage_of(tg_body_kind_t kind, const char *in, size_t n, size_t step, char *model, size_t msize)
{
    tg_usage_parser_t u;
    tg_usage_parser_init(&u, kind);
    if (step == 0)
        step = n == 0 ? 1 : n;
    for (size_t i = 0; i < n; i += step)
        tg_usage_parser_feed(&u, in + i, n - i < step ? n - i : step);
    tg_usage_t r = tg_usage_parser_result(&u);
    snprintf(model, msize, "%s", u.model);
    tg_usage_parser_dispose(&u);
    return r;
}

static void check_usage_n(const char *name, tg_body_kind_t kind, const char *in, size_t n, int64_t input,
                          int64_t output, int64_t cached, int64_t cache_write, const char *model)
{
    static const size_t steps[] = {0, 1, 2, 5, 13};
    unit_current = name;
    for (size_t i = 0; i != sizeof(steps) / sizeof(steps[0]); ++i) {
        char m[128];
        tg_usage_t r = usage_of(kind, in, n, steps[i], m, sizeof(m));
        T_EQ_INT(r.input, input);
        T_EQ_INT(r.output, output);
        T_EQ_INT(r.cached, cached);
        T_EQ_INT(r.cache_write, cache_write);
        T_EQ_STR(m, model);
    }
    tg_jdoc_t d; /* a body parsed whole (the unified API's translations) reads the same */
    if (kind != TG_BODY_JSON)
        return;
    if (tg_jdoc_parse(&d, in, n) == 0) {
        tg_usage_parser_t u;
        tg_usage_parser_init(&u, kind);
        tg_usage_parser_take_doc(&u, &d);
        tg_usage_t r = tg_usage_parser_result(&u);
        T_EQ_INT(r.input, input);
        T_EQ_INT(r.output, output);
        T_EQ_INT(r.cached, cached);
        T_EQ_INT(r.cache_write, cache_write);
        T_EQ_STR(u.model, model);
        tg_usage_parser_dispose(&u);
    }
    tg_jdoc_free(&d);
}

/* take_doc against feeding the same bytes, for bodies at the edges of the rules (escaped and long keys, depth,
 * arrays, repeated fields, models that cannot be kept) */
static void test_usage_doc_same_as_scan(void)
{
    static const char *const bodies[] = {
        "{\"us\\u0061ge\":{\"input_tokens\":7,\"output_\\u0074okens\":3},\"m\\u006fdel\":\"cl\\u00e9\"}",
        "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2},\"usage\":{\"prompt_tokens\":5}}",
        "[{\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}},{\"model\":\"m1\"}]",
        "{\"a\":[{\"usage\":{\"input_tokens\":9,\"output_tokens\":8}}],\"model\":\"\",\"modelVersion\":\"g\"}",
        "{\"response\":{\"model\":\"r1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4}},\"model\":\"x\"}",
        "{\"message\":{\"message\":{\"model\":\"deep\"}},\"usage\":{\"input_tokens\":1.5,\"output_tokens\":-2}}",
        "{\"usage\":[1,2],\"x\":{\"usage\":{\"cache_read_input_tokens\":6,\"input_tokens\":1,\"output_tokens\":0}}}",
        "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":{\"prompt_tokens\":3},\"usage\":{\"prompt_tokens\":2}}",
        "{\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":2},\"model\":"
        "\"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567\"}",
        "{\"m\\u0065ssage\":{\"model\":\"esc\"},\"\\u0075sage\":{\"input_tokens\":2,\"output_tokens\":1}}",
        "{\"billed_units\":{\"input_tokens\":99999999999999999999,\"output_tokens\":5}}",
    };
    unit_current = "take_doc";
    for (size_t i = 0; i != sizeof(bodies) / sizeof(bodies[0]); ++i) {
        char m[128];
        tg_usage_t want = usage_of(TG_BODY_JSON, bodies[i], strlen(bodies[i]), 0, m, sizeof(m));
        if (i == 0) { /* escaped keys are read unescaped */
            T_EQ_INT(want.input, 7);
            T_EQ_INT(want.output, 3);
            T_EQ_STR(m, "cl\xc3\xa9");
        }
        tg_jdoc_t d;
        T_EQ_INT(tg_jdoc_parse(&d, bodies[i], strlen(bodies[i])), 0);
        tg_usage_parser_t u;
        tg_usage_parser_init(&u, TG_BODY_JSON);
        tg_usage_parser_take_doc(&u, &d);
        tg_usage_t got = tg_usage_parser_result(&u);
        T_EQ_INT(got.input, want.input);
        T_EQ_INT(got.output, want.output);
        T_EQ_INT(got.cached, want.cached);
        T_EQ_INT(got.cache_write, want.cache_write);
        T_EQ_STR(u.model, m);
        tg_jdoc_free(&d);
    }
    /* nesting: a count at depth 24 is reported, one at depth 25 is not (TG_JSONSCAN_MAX_DEPTH), by both */
    static const int depths[] = {20, 22, 23, 30};
    for (size_t di = 0; di != sizeof(depths) / sizeof(depths[0]); ++di) {
        int depth = depths[di];
        char b[512];
        size_t o = 0;
        for (int k = 0; k < depth; ++k)
            o += (size_t)snprintf(b + o, sizeof(b) - o, "{\"k\":");
        o += (size_t)snprintf(b + o, sizeof(b) - o, "{\"usage\":{\"prompt_tokens\":3}}");
        for (int k = 0; k < depth; ++k)
            b[o++] = '}';
        b[o] = '\0';
        char m[128];
        tg_usage_t want = usage_of(TG_BODY_JSON, b, o, 0, m, sizeof(m));
        T_EQ_INT(want.input, depth + 2 <= TG_JSONSCAN_MAX_DEPTH ? 3 : -1);
        tg_jdoc_t d;
        T_EQ_INT(tg_jdoc_parse(&d, b, o), 0);
        tg_usage_parser_t u;
        tg_usage_parser_init(&u, TG_BODY_JSON);
        tg_usage_parser_take_doc(&u, &d);
        T_EQ_INT(tg_usage_parser_result(&u).input, want.input);
        tg_jdoc_free(&d);
    }
}

/* The usage of a JSON answer with these response headers. */
static tg_usage_t with_headers(const char *const headers[][2], size_t n, const char *body)
{
    tg_usage_parser_t u;
    tg_usage_parser_init(&u, TG_BODY_JSON);
    for (size_t i = 0; i != n; ++i)
        tg_usage_parser_header(&u, tg_iov_str(headers[i][0]), tg_iov_str(headers[i][1]));
    tg_usage_parser_feed(&u, body, strlen(body));
    tg_usage_t r = tg_usage_parser_result(&u);
    tg_usage_parser_dispose(&u);
    return r;
}

static void check_usage(const char *name, tg_body_kind_t kind, const char *in, int64_t input, int64_t output,
                        int64_t cached, int64_t cache_write, const char *model)
{
    check_usage_n(name, kind, in, strlen(in), input, output, cached, cache_write, model);
}

static void test_usage_openai(void)
{
    check_usage("openai chat", TG_BODY_JSON,
                "{\"id\":\"c1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,"
                "\"message\":{\"role\":\"assistant\",\"content\":\"usage: {\\\"prompt_tokens\\\": 999}\"}}],"
                "\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":7,\"total_tokens\":127,"
                "\"prompt_tokens_details\":{\"cached_tokens\":100,\"audio_tokens\":0},"
                "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}",
                120, 7, 100, 0, "gpt-4o-mini-2024-07-18");
    check_usage("openai chat stream", TG_BODY_SSE,
                "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
                "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,"
                "\"completion_tokens\":3,\"total_tokens\":14}}\r\n\r\n"
                "data: [DONE]\n\n",
                11, 3, 0, 0, "gpt-4o");
    /* DeepSeek names the cached part prompt_cache_hit_tokens; prompt_tokens_details, when also sent, wins */
    check_usage("deepseek chat", TG_BODY_JSON,
                "{\"model\":\"deepseek-chat\",\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":100,"
                "\"prompt_cache_hit_tokens\":900,\"prompt_cache_miss_tokens\":100}}",
                1000, 100, 900, 0, "deepseek-chat");
    check_usage("deepseek chat with details", TG_BODY_JSON,
                "{\"model\":\"deepseek-chat\",\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":100,"
                "\"prompt_cache_hit_tokens\":900,\"prompt_tokens_details\":{\"cached_tokens\":800}}}",
                1000, 100, 800, 0, "deepseek-chat");
    check_usage("openai embeddings", TG_BODY_JSON,
                "{\"object\":\"list\",\"data\":[{\"embedding\":[0.1,-0.2]}],\"model\":\"text-embedding-3-small\","
                "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}",
                8, 0, 0, 0, "text-embedding-3-small");
    check_usage("openai responses stream", TG_BODY_SSE,
                "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-4.1\","
                "\"usage\":null}}\n\n"
                "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-4.1\","
                "\"usage\":{\"input_tokens\":50,\"input_tokens_details\":{\"cached_tokens\":20},\"output_tokens\":9}}}\n\n",
                50, 9, 20, 0, "gpt-4.1");
    check_usage("workers ai native", TG_BODY_JSON,
                "{\"result\":{\"response\":\"hi\",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}},\"success\":true}",
                4, 2, 0, 0, "");
    check_usage("no usage", TG_BODY_JSON, "{\"error\":{\"message\":\"bad\"}}", -1, -1, 0, 0, "");
    check_usage("not json", TG_BODY_JSON, "<html>oops</html>", -1, -1, 0, 0, "");
}

static void test_usage_anthropic(void)
{
    check_usage("anthropic", TG_BODY_JSON,
                "{\"id\":\"msg_1\",\"type\":\"message\",\"model\":\"claude-sonnet-4-5\",\"content\":[{\"type\":\"text\","
                "\"text\":\"Hi\"}],\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":200,"
                "\"cache_read_input_tokens\":1000,\"output_tokens\":25}}",
                1210, 25, 1000, 200, "claude-sonnet-4-5");
    check_usage("anthropic stream", TG_BODY_SSE,
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":"
                "\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":30,\"cache_creation_input_tokens\":0,"
                "\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n"
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                "\"text_delta\",\"text\":\"Hello\"}}\n\n"
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
                "\"usage\":{\"output_tokens\":42}}\n\n"
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                35, 42, 5, 0, "claude-haiku-4-5");
}

static void test_usage_google_cohere(void)
{
    check_usage("google", TG_BODY_JSON,
                "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}],\"usageMetadata\":{\"promptTokenCount\":"
                "100,\"candidatesTokenCount\":20,\"thoughtsTokenCount\":5,\"cachedContentTokenCount\":60,"
                "\"totalTokenCount\":125},\"modelVersion\":\"gemini-2.5-flash\"}",
                100, 25, 60, 0, "gemini-2.5-flash");
    check_usage("google streamed array", TG_BODY_JSON,
                "[{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":1}}\r\n,"
                "{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":4}}]",
                9, 4, 0, 0, "");
    check_usage("google sse", TG_BODY_SSE,
                "data: {\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":1},\"modelVersion\":\"g\"}\r\n\r\n"
                "data: {\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":3}}\r\n\r\n",
                9, 3, 0, 0, "g");
    check_usage("cohere v2", TG_BODY_JSON,
                "{\"id\":\"x\",\"message\":{\"content\":[]},\"usage\":{\"billed_units\":{\"input_tokens\":5,"
                "\"output_tokens\":7},\"tokens\":{\"input_tokens\":70,\"output_tokens\":7}}}",
                5, 7, 0, 0, "");
    check_usage("cohere v1", TG_BODY_JSON,
                "{\"text\":\"x\",\"meta\":{\"billed_units\":{\"input_tokens\":3,\"output_tokens\":2}}}", 3, 2, 0, 0, "");
    /* an SSE data field split over two lines joins with a newline, and comments are skipped */
    check_usage("sse multi-line data", TG_BODY_SSE,
                ": keep-alive\ndata: {\"usage\":\ndata: {\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n", 2, 1, 0, 0,
                "");
}

/* Builds one AWS event-stream frame around `payload` (CRCs are not checked by the parser; zeros here). */
static size_t es_frame(char *out, const char *payload)
{
    static const char hdr[] = "\x0b:event-type\x07\x00\x08metadata";
    size_t hl = sizeof(hdr) - 1, pl = strlen(payload), total = 12 + hl + pl + 4;
    unsigned char *o = (unsigned char *)out;
    o[0] = (unsigned char)(total >> 24), o[1] = (unsigned char)(total >> 16), o[2] = (unsigned char)(total >> 8),
    o[3] = (unsigned char)total;
    o[4] = 0, o[5] = 0, o[6] = 0, o[7] = (unsigned char)hl;
    memset(o + 8, 0, 4);
    memcpy(o + 12, hdr, hl);
    memcpy(o + 12 + hl, payload, pl);
    memset(o + 12 + hl + pl, 0, 4);
    return total;
}

static void test_usage_bedrock(void)
{
    check_usage("bedrock converse", TG_BODY_JSON,
                "{\"output\":{\"message\":{\"content\":[{\"text\":\"hi\"}]}},\"stopReason\":\"end_turn\",\"usage\":"
                "{\"inputTokens\":12,\"outputTokens\":4,\"totalTokens\":16,\"cacheReadInputTokens\":8,"
                "\"cacheWriteInputTokens\":2}}",
                22, 4, 8, 2, "");
    char buf[2048];
    size_t n = es_frame(buf, "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hello\"}}");
    n += es_frame(buf + n, "{\"metrics\":{\"latencyMs\":300},\"usage\":{\"inputTokens\":15,\"outputTokens\":6,"
                           "\"totalTokens\":21}}");
    check_usage_n("bedrock converse-stream", TG_BODY_EVENTSTREAM, buf, n, 15, 6, 0, 0, "");

    /* InvokeModelWithResponseStream: {"bytes":"<base64 of an Anthropic event>"} */
    n = es_frame(buf, "{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdGFydCIsIm1lc3NhZ2UiOnsibW9kZWwiOiJjbGF1ZGUtMyIsInVzYWdlIjp7"
                      "ImlucHV0X3Rva2VucyI6MTMsIm91dHB1dF90b2tlbnMiOjF9fX0=\"}");
    n += es_frame(buf + n, "{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIiwiYW1hem9uLWJlZHJvY2staW52b2NhdGlvbk1ldHJpY3MiOnsi"
                           "aW5wdXRUb2tlbkNvdW50IjoxMywib3V0cHV0VG9rZW5Db3VudCI6OX19\"}");
    check_usage_n("bedrock invoke-stream", TG_BODY_EVENTSTREAM, buf, n, 13, 9, 0, 0, "claude-3");

    /* a frame whose length is absurd stops the parser, without reading past it */
    memcpy(buf, "\xff\xff\xff\xff\0\0\0\0\0\0\0\0", 12);
    check_usage_n("bedrock bad frame", TG_BODY_EVENTSTREAM, buf, 12, -1, -1, 0, 0, "");

    unit_current = "bedrock headers";
    static const char *const counts[][2] = {{"X-Amzn-Bedrock-Input-Token-Count", " 31 "},
                                            {"X-Amzn-Bedrock-Output-Token-Count", "12"},
                                            {"X-Other", "5"}};
    tg_usage_t r = with_headers(counts, 3, "{\"usage\":{\"input_tokens\":1}}");
    T_EQ_INT(r.input, 31);
    T_EQ_INT(r.output, 12);
    /* the headers count input beside the prompt cache: the cache parts come from the body (an Anthropic model) */
    unit_current = "bedrock headers and an Anthropic body with cache tokens";
    static const char *const plain[][2] = {{"x-amzn-bedrock-input-token-count", "100"},
                                           {"x-amzn-bedrock-output-token-count", "50"}};
    r = with_headers(plain, 2,
                     "{\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":1000,"
                     "\"cache_creation_input_tokens\":500,\"output_tokens\":50}}");
    T_EQ_INT(r.input, 1600);
    T_EQ_INT(r.cached, 1000);
    T_EQ_INT(r.cache_write, 500);
    T_EQ_INT(r.output, 50);
    unit_current = "bedrock cache headers";
    static const char *const cache[][2] = {{"x-amzn-bedrock-input-token-count", "10"},
                                           {"x-amzn-bedrock-output-token-count", "5"},
                                           {"X-Amzn-Bedrock-Cache-Read-Input-Token-Count", "20"},
                                           {"x-amzn-bedrock-cache-write-input-token-count", "30"}};
    r = with_headers(cache, 4, "{}");
    T_EQ_INT(r.input, 60);
    T_EQ_INT(r.cached, 20);
    T_EQ_INT(r.cache_write, 30);
    T_EQ_INT(r.output, 5);

    unit_current = "content types";
    T_EQ_INT(tg_usage_kind_for(tg_iov_str("text/event-stream; charset=utf-8")), TG_BODY_SSE);
    T_EQ_INT(tg_usage_kind_for(tg_iov_str("Application/VND.amazon.eventstream")), TG_BODY_EVENTSTREAM);
    T_EQ_INT(tg_usage_kind_for(tg_iov_str("application/json")), TG_BODY_JSON);
    T_EQ_INT(tg_usage_kind_for(tg_iov_str("")), TG_BODY_JSON);
}

int main(void)
{
    T_RUN(test_scan_basic);
    T_RUN(test_scan_limits);
    T_RUN(test_scan_stop);
    T_RUN(test_mentions);
    T_RUN(test_usage_openai);
    T_RUN(test_usage_anthropic);
    T_RUN(test_usage_google_cohere);
    T_RUN(test_usage_bedrock);
    T_RUN(test_usage_doc_same_as_scan);
    return unit_done("test_usage");
}
