/*
 * Dialect translation against the golden vectors in tests/xlate/ (one JSON file per case; see tests/xlate/README.md):
 * requests, whole answers and errors compared field by field (json_equal), streams fed whole, one byte at a time
 * and in uneven pieces, which must all give the same bytes and the expected events.
 */
#include <dirent.h>
#include <jansson.h>
#include "tollgate/compat.h"
#include "tollgate/xlate.h"
#include "unit.h"

#define VECTORS "tests/xlate"
#define CREATED 1700000000

static char *dumps(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Field-by-field equality, with both sides printed when they differ. */
static void check_json_equal(const char *name, const json_t *got, const json_t *want)
{
    ++unit_checks;
    if (got != NULL && json_equal(got, want))
        return;
    ++unit_failures;
    char *g = got != NULL ? dumps(got) : NULL, *w = dumps(want);
    fprintf(stderr, "%s: %s:\n  got  %s\n  want %s\n", unit_current, name, g != NULL ? g : "(not JSON)", w);
    free(g);
    free(w);
}

/* A vector's direction, by the first letter of its file name: "m..." files are the Anthropic client's
 * (compat/v1/messages) with an OpenAI-shaped provider, "g..." the OpenAI client's with Google AI Studio, "a..." the
 * Anthropic client's with Google; the others the OpenAI client's with an Anthropic provider. */
typedef struct {
    char letter; /* of the file name; 0 for none */
    tg_dialect_t client, provider;
    const char *client_key, *provider_key; /* the vector's field of each side */
} dir_t;

static const dir_t DIRS[] = {
    {0, TG_DIALECT_OPENAI, TG_DIALECT_ANTHROPIC, "openai", "anthropic"},
    {'m', TG_DIALECT_ANTHROPIC, TG_DIALECT_OPENAI, "anthropic", "openai"},
    {'g', TG_DIALECT_OPENAI, TG_DIALECT_GOOGLE, "openai", "google"},
    {'a', TG_DIALECT_ANTHROPIC, TG_DIALECT_GOOGLE, "anthropic", "google"},
};

static void run_request(const char *name, json_t *c, const dir_t *dir)
{
    char *body = json_dumps(json_object_get(c, dir->client_key), JSON_COMPACT);
    const json_t *oj = json_object_get(c, "opts");
    tg_xlate_opts_t o = {
        .model = json_string_value(json_object_get(c, "model")),
        .max_completion_tokens = json_is_true(json_object_get(oj, "max_completion_tokens")),
        .ask_usage = json_is_true(json_object_get(oj, "ask_usage")),
    };
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    tg_xlate_req_info_t info;
    char err[512] = "";
    int r = tg_xlate_request(dir->client, dir->provider, body, strlen(body), &o, &out, &info, err, sizeof(err));
    const char *want_err = json_string_value(json_object_get(c, "error"));
    if (want_err != NULL) {
        T_EQ_INT(r, -1);
        ++unit_checks;
        if (strstr(err, want_err) == NULL) {
            ++unit_failures;
            fprintf(stderr, "%s: %s: error \"%s\" does not mention \"%s\"\n", unit_current, name, err, want_err);
        }
    } else {
        T_EQ_INT(r, 0);
        if (r != 0)
            fprintf(stderr, "%s: %s: refused: %s\n", unit_current, name, err);
        json_t *got = json_loadb(out.base != NULL ? out.base : "", out.len, 0, NULL);
        check_json_equal(name, got, json_object_get(c, dir->provider_key));
        json_decref(got);
        json_t *wi = json_object_get(c, "info");
        T_EQ_INT(info.stream, json_is_true(json_object_get(wi, "stream")));
        T_EQ_INT(info.include_usage, json_is_true(json_object_get(wi, "include_usage")));
        T_EQ_INT(info.json_tool, json_is_true(json_object_get(wi, "json_tool")));
    }
    tg_buf_free(&out);
    free(body);
}

/* "gembreq-": an OpenAI embeddings request (`openai`) -> batchEmbedContents (`google`), or `error`. */
static void run_embeddings_request(const char *name, json_t *c)
{
    char *body = json_dumps(json_object_get(c, "openai"), JSON_COMPACT);
    tg_xlate_opts_t o = {.model = json_string_value(json_object_get(c, "model"))};
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    tg_xlate_req_info_t info;
    char err[512] = "";
    int r = tg_xlate_embeddings_request(TG_DIALECT_GOOGLE, body, strlen(body), &o, &out, &info, err, sizeof(err));
    const char *want_err = json_string_value(json_object_get(c, "error"));
    if (want_err != NULL) {
        T_EQ_INT(r, -1);
        T_EQ_INT(out.len, 0);
        ++unit_checks;
        if (strstr(err, want_err) == NULL) {
            ++unit_failures;
            fprintf(stderr, "%s: %s: error \"%s\" does not mention \"%s\"\n", unit_current, name, err, want_err);
        }
    } else {
        T_EQ_INT(r, 0);
        json_t *got = json_loadb(out.base != NULL ? out.base : "", out.len, 0, NULL);
        check_json_equal(name, got, json_object_get(c, "google"));
        json_decref(got);
        T_OK(info.embeddings);
        T_EQ_INT(info.base64, json_is_true(json_object_get(c, "base64")));
        T_EQ_STR(info.model, o.model);
    }
    tg_buf_free(&out);
    free(body);
}

/* "gembresp-": a batchEmbedContents answer (`google`) -> OpenAI's (`openai`), as floats or base64 (`base64`). */
static void run_embeddings_response(const char *name, json_t *c)
{
    char *body = json_dumps(json_object_get(c, "google"), JSON_COMPACT);
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    tg_xlate_req_info_t info = {.embeddings = true,
                                .base64 = json_is_true(json_object_get(c, "base64")),
                                .model = json_string_value(json_object_get(c, "model"))};
    T_EQ_INT(tg_xlate_response(TG_DIALECT_OPENAI, TG_DIALECT_GOOGLE, &info, body, strlen(body), CREATED, &out), 0);
    json_t *got = json_loadb(out.base != NULL ? out.base : "", out.len, 0, NULL);
    check_json_equal(name, got, json_object_get(c, "openai"));
    json_decref(got);
    tg_buf_free(&out);
    free(body);
}

static void run_response(const char *name, json_t *c, const dir_t *dir)
{
    char *body = json_dumps(json_object_get(c, dir->provider_key), JSON_COMPACT);
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    tg_xlate_req_info_t info = {.json_tool = json_is_true(json_object_get(c, "json_tool"))};
    T_EQ_INT(tg_xlate_response(dir->client, dir->provider, &info, body, strlen(body), CREATED, &out), 0);
    json_t *got = json_loadb(out.base != NULL ? out.base : "", out.len, 0, NULL);
    check_json_equal(name, got, json_object_get(c, dir->client_key));
    json_decref(got);
    tg_buf_free(&out);
    free(body);
}

static void run_error(const char *name, json_t *c, const dir_t *dir)
{
    const json_t *b = json_object_get(c, "body");
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    tg_xlate_error(dir->client, dir->provider, (int)json_integer_value(json_object_get(c, "status")),
                   json_string_value(b), json_string_length(b), &out);
    json_t *got = json_loadb(out.base != NULL ? out.base : "", out.len, 0, NULL);
    check_json_equal(name, got, json_object_get(c, dir->client_key));
    json_decref(got);
    tg_buf_free(&out);
}

/* The stream translated with the input cut every `step` bytes (0: whole); the client's bytes into `out`. */
static void translate_stream(const dir_t *dir, const char *in, size_t len, size_t step, bool include_usage,
                             bool json_tool, tg_buf_t *out)
{
    tg_xlate_req_info_t info = {.stream = true, .include_usage = include_usage, .json_tool = json_tool};
    tg_xlate_stream_t s;
    tg_xlate_stream_init(&s, dir->client, dir->provider, &info, CREATED);
    size_t off = 0, i = 0;
    while (off < len) {
        size_t want = step == 0 ? len : step + (step > 1 ? i++ % 3 : 0); /* uneven when step > 1 */
        size_t n = TG_MIN(len - off, want);
        tg_xlate_stream_feed(&s, in + off, n, out);
        off += n;
    }
    tg_xlate_stream_finish(&s, out);
    tg_xlate_stream_dispose(&s);
}

static void run_stream(const char *name, json_t *c, const dir_t *dir)
{
    const json_t *in = json_object_get(c, dir->provider_key);
    bool usage = json_is_true(json_object_get(c, "include_usage"));
    bool json_tool = json_is_true(json_object_get(c, "json_tool"));
    tg_buf_t whole;
    tg_buf_init(&whole, 1u << 24);
    translate_stream(dir, json_string_value(in), json_string_length(in), 0, usage, json_tool, &whole);
    tg_buf_cstr(&whole);
    /* the same bytes whatever the pieces */
    static const size_t steps[] = {1, 2, 7, 64};
    for (size_t k = 0; k != TG_ARRAY_SIZE(steps); ++k) {
        tg_buf_t part;
        tg_buf_init(&part, 1u << 24);
        translate_stream(dir, json_string_value(in), json_string_length(in), steps[k], usage, json_tool, &part);
        tg_buf_cstr(&part);
        ++unit_checks;
        if (strcmp(part.base, whole.base) != 0) {
            ++unit_failures;
            fprintf(stderr, "%s: %s: pieces of %zu give other bytes:\n%s\n--- whole:\n%s\n", unit_current, name,
                    steps[k], part.base, whole.base);
        }
        tg_buf_free(&part);
    }
    /* the events: every one "data: ...\n\n" (after "event: {name}\n" for an Anthropic client, which the vector
     * gives as [name, data]), equal to the expected ones */
    const json_t *want = json_object_get(c, dir->client_key);
    size_t n = 0;
    char *p = whole.base;
    while (*p != '\0') {
        ++unit_checks;
        const json_t *w = json_array_get(want, n++);
        char label[320];
        snprintf(label, sizeof(label), "%s event %zu", name, n - 1);
        if (json_is_array(w)) {
            const char *ename = json_string_value(json_array_get(w, 0));
            char *nl = strchr(p, '\n');
            if (strncmp(p, "event: ", 7) != 0 || nl == NULL || (size_t)(nl - p - 7) != strlen(ename) ||
                strncmp(p + 7, ename, strlen(ename)) != 0) {
                ++unit_failures;
                fprintf(stderr, "%s: %s: expected \"event: %s\" at: %s\n", unit_current, label, ename, p);
                break;
            }
            p = nl + 1;
            w = json_array_get(w, 1);
        }
        char *end = strstr(p, "\n\n");
        if (strncmp(p, "data: ", 6) != 0 || end == NULL) {
            ++unit_failures;
            fprintf(stderr, "%s: %s: not an SSE data event at: %s\n", unit_current, name, p);
            break;
        }
        *end = '\0';
        if (json_is_string(w)) {
            T_EQ_STR(p + 6, json_string_value(w));
        } else if (w == NULL) {
            ++unit_checks;
            ++unit_failures;
            fprintf(stderr, "%s: %s: unexpected event %s\n", unit_current, label, p + 6);
        } else {
            json_t *got = json_loads(p + 6, 0, NULL);
            check_json_equal(label, got, w);
            json_decref(got);
        }
        p = end + 2;
    }
    T_EQ_INT(n, json_array_size(want));
    tg_buf_free(&whole);
}

static void test_vectors(void)
{
    DIR *d = opendir(VECTORS);
    T_OK(d != NULL);
    if (d == NULL)
        return;
    unsigned counts[18] = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", VECTORS, e->d_name);
        json_error_t jerr;
        json_t *c = json_load_file(path, 0, &jerr);
        T_OK(c != NULL);
        if (c == NULL) {
            fprintf(stderr, "%s: %s\n", path, jerr.text);
            continue;
        }
        size_t di = 0;
        for (size_t k = 1; k != TG_ARRAY_SIZE(DIRS); ++k)
            if (DIRS[k].letter == e->d_name[0])
                di = k;
        const dir_t *dir = &DIRS[di];
        const char *kind = e->d_name + (di != 0);
        unsigned base = 4 * (unsigned)di;
        if (strncmp(kind, "req-", 4) == 0)
            run_request(e->d_name, c, dir), counts[base]++;
        else if (strncmp(kind, "resp-", 5) == 0)
            run_response(e->d_name, c, dir), counts[base + 1]++;
        else if (strncmp(kind, "error-", 6) == 0)
            run_error(e->d_name, c, dir), counts[base + 2]++;
        else if (strncmp(kind, "stream-", 7) == 0)
            run_stream(e->d_name, c, dir), counts[base + 3]++;
        else if (strncmp(kind, "embreq-", 7) == 0)
            run_embeddings_request(e->d_name, c), counts[16]++;
        else if (strncmp(kind, "embresp-", 8) == 0)
            run_embeddings_response(e->d_name, c), counts[17]++;
        json_decref(c);
    }
    closedir(d);
    /* the vectors are there (a lost directory must not pass as zero failures) */
    static const unsigned at_least[18] = {20, 3, 3, 4, 10, 3, 2, 4, 15, 4, 1, 5, 2, 2, 1, 3, 5, 2};
    for (size_t i = 0; i != TG_ARRAY_SIZE(at_least); ++i) {
        T_OK(counts[i] >= at_least[i]);
        if (counts[i] < at_least[i])
            fprintf(stderr, "%s: only %u vectors of kind %zu\n", unit_current, counts[i], i);
    }
}

/* OpenAI -> Anthropic -> OpenAI keeps the messages, the tool calls, the tools and the tool choice of a request,
 * and the content, tool calls, finish reason and usage of an answer. */
static void test_round_trip(void)
{
    json_t *c = json_load_file(VECTORS "/req-tools.json", 0, NULL);
    T_OK(c != NULL);
    if (c == NULL)
        return;
    const json_t *orig = json_object_get(c, "openai");
    char *body = json_dumps(orig, JSON_COMPACT);
    tg_buf_t a, b;
    tg_buf_init(&a, 1u << 24);
    tg_buf_init(&b, 1u << 24);
    tg_xlate_req_info_t info;
    char err[512];
    tg_xlate_opts_t o = {.model = "m"};
    T_EQ_INT(tg_xlate_request(TG_DIALECT_OPENAI, TG_DIALECT_ANTHROPIC, body, strlen(body), &o, &a, &info, err,
                              sizeof(err)),
             0);
    T_EQ_INT(tg_xlate_request(TG_DIALECT_ANTHROPIC, TG_DIALECT_OPENAI, a.base, a.len, &o, &b, &info, err, sizeof(err)),
             0);
    json_t *back = json_loadb(b.base, b.len, 0, NULL);
    static const char *const kept[] = {"messages", "tools", "tool_choice", "parallel_tool_calls"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(kept); ++i) {
        const json_t *want = json_object_get(orig, kept[i]);
        json_t *w = json_deep_copy(want);
        if (strcmp(kept[i], "messages") == 0) /* a tool result's text parts come back as one string */
            json_object_set_new(json_array_get(w, 3), "content", json_string("21C"));
        if (strcmp(kept[i], "tools") == 0) /* no parameters (no arguments) comes back as the empty object schema */
            json_object_set_new(json_object_get(json_array_get(w, 1), "function"), "parameters",
                                json_pack("{s:s, s:{}}", "type", "object", "properties"));
        check_json_equal(kept[i], json_object_get(back, kept[i]), w);
        json_decref(w);
    }
    json_decref(back);
    free(body);
    json_decref(c);

    /* an answer: chat.completion -> message -> chat.completion */
    c = json_load_file(VECTORS "/mresp-tools.json", 0, NULL);
    orig = json_object_get(c, "openai");
    body = json_dumps(orig, JSON_COMPACT);
    a.len = b.len = 0;
    T_EQ_INT(tg_xlate_response(TG_DIALECT_ANTHROPIC, TG_DIALECT_OPENAI, &info, body, strlen(body), CREATED, &a), 0);
    T_EQ_INT(tg_xlate_response(TG_DIALECT_OPENAI, TG_DIALECT_ANTHROPIC, &info, a.base, a.len, CREATED, &b), 0);
    back = json_loadb(b.base, b.len, 0, NULL);
    const json_t *m0 = json_object_get(json_array_get(json_object_get(orig, "choices"), 0), "message");
    const json_t *m1 = json_object_get(json_array_get(json_object_get(back, "choices"), 0), "message");
    json_t *calls = json_deep_copy(json_object_get(m0, "tool_calls"));
    /* "" arguments come back as "{}": Anthropic's input is always an object */
    json_object_set_new(json_object_get(json_array_get(calls, 1), "function"), "arguments", json_string("{}"));
    check_json_equal("tool_calls", json_object_get(m1, "tool_calls"), calls);
    json_decref(calls);
    T_OK(json_is_null(json_object_get(m1, "content")));
    T_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(back, "choices"), 0), "finish_reason")),
             "tool_calls");
    const json_t *u0 = json_object_get(orig, "usage"), *u1 = json_object_get(back, "usage");
    T_EQ_INT(json_integer_value(json_object_get(u1, "prompt_tokens")),
             json_integer_value(json_object_get(u0, "prompt_tokens")));
    T_EQ_INT(json_integer_value(json_object_get(u1, "completion_tokens")),
             json_integer_value(json_object_get(u0, "completion_tokens")));
    json_decref(back);
    free(body);
    json_decref(c);
    tg_buf_free(&a);
    tg_buf_free(&b);
}

static void test_split_model(void)
{
    tg_iovec_t p, m;
    T_EQ_INT(tg_compat_split_model(tg_iov_str("openai/gpt-4o"), &p, &m), 0);
    T_EQ_IOV(p, "openai");
    T_EQ_IOV(m, "gpt-4o");
    T_EQ_INT(tg_compat_split_model(tg_iov_str("workers-ai/@cf/meta/llama"), &p, &m), 0);
    T_EQ_IOV(p, "workers-ai");
    T_EQ_IOV(m, "@cf/meta/llama");
    T_EQ_INT(tg_compat_split_model(tg_iov_str("gpt-4o"), &p, &m), -1);
    T_EQ_INT(tg_compat_split_model(tg_iov_str("/gpt-4o"), &p, &m), -1);
    T_EQ_INT(tg_compat_split_model(tg_iov_str("openai/"), &p, &m), -1);
}

/* Bodies that are not chat completion requests are refused with a reason, never translated. */
static void test_request_not_json(void)
{
    static const char *const bad[] = {"", "{", "[1]", "\"x\"", "{\"model\":\"m\",\"messages\":[],}",
                                      "{\"a\":1,\"a\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(bad); ++i) {
        tg_buf_t out;
        tg_buf_init(&out, 1u << 20);
        tg_xlate_req_info_t info;
        char err[256] = "";
        tg_xlate_opts_t o = {.model = "m"};
        T_EQ_INT(tg_xlate_request(TG_DIALECT_OPENAI, TG_DIALECT_ANTHROPIC, bad[i], strlen(bad[i]), &o, &out, &info, err,
                                  sizeof(err)),
                 -1);
        T_EQ_INT(tg_xlate_request(TG_DIALECT_ANTHROPIC, TG_DIALECT_OPENAI, bad[i], strlen(bad[i]), &o, &out, &info, err,
                                  sizeof(err)),
                 -1);
        T_OK(err[0] != '\0');
        tg_buf_free(&out);
    }
}

/* A whole answer that is not a message is reported, not turned into an empty completion. */
static void test_response_not_message(void)
{
    static const char *const bad[] = {"", "null", "{}", "{\"id\":\"x\"}", "{\"content\":[]}", "[]"};
    tg_xlate_req_info_t none = {0};
    for (size_t i = 0; i != TG_ARRAY_SIZE(bad); ++i) {
        tg_buf_t out;
        tg_buf_init(&out, 1u << 20);
        T_EQ_INT(tg_xlate_response(TG_DIALECT_OPENAI, TG_DIALECT_ANTHROPIC, &none, bad[i], strlen(bad[i]), CREATED, &out), -1);
        T_EQ_INT(tg_xlate_response(TG_DIALECT_ANTHROPIC, TG_DIALECT_OPENAI, &none, bad[i], strlen(bad[i]), CREATED, &out), -1);
        tg_buf_free(&out);
    }
}

/* An event larger than the limit ends the stream with an error event; nothing after it is sent. */
static void test_stream_oversized_event(void)
{
    tg_xlate_req_info_t info = {.stream = true};
    tg_xlate_stream_t s;
    tg_xlate_stream_init(&s, TG_DIALECT_OPENAI, TG_DIALECT_ANTHROPIC, &info, CREATED);
    tg_buf_t out;
    tg_buf_init(&out, 1u << 20);
    char chunk[4096];
    memset(chunk, 'a', sizeof(chunk));
    tg_xlate_stream_feed(&s, "data: {\"x\":\"", 12, &out);
    for (size_t i = 0; i <= TG_XLATE_MAX_EVENT / sizeof(chunk); ++i)
        tg_xlate_stream_feed(&s, chunk, sizeof(chunk), &out);
    tg_xlate_stream_feed(&s, "\"}\n\n", 4, &out);
    tg_xlate_stream_finish(&s, &out);
    tg_buf_cstr(&out);
    T_OK(strstr(out.base, "larger than the gateway translates") != NULL);
    T_OK(strstr(out.base, "[DONE]") == NULL);
    T_OK(out.len < 1024);
    tg_xlate_stream_dispose(&s);
    tg_buf_free(&out);
}

/* Google's thoughtSignature in tool call ids, with JSON escapes where the vectors (re-encoded by jansson) cannot put
 * them: a signature written with "\\/" still becomes base64url in the id; one that is not base64 stays out of it;
 * an id the client wrote with an escape still gives its signature back. */
static void test_google_signature_escapes(void)
{
    static const char resp[] =
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}},"
        "\"thoughtSignature\":\"AB\\/+\"},{\"functionCall\":{\"name\":\"f\",\"args\":{}},\"thoughtSignature\":"
        "\"a\\\\b\"}]},\"finishReason\":\"STOP\"}]}";
    tg_buf_t out;
    tg_buf_init(&out, 1u << 20);
    tg_xlate_req_info_t info = {0};
    T_EQ_INT(tg_xlate_response(TG_DIALECT_OPENAI, TG_DIALECT_GOOGLE, &info, resp, sizeof(resp) - 1, CREATED, &out), 0);
    json_t *j = json_loadb(out.base, out.len, 0, NULL);
    T_OK(j != NULL);
    const json_t *calls = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
                                          "tool_calls");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(calls, 0), "id")), "call_0__ts_AB_-");
    T_EQ_STR(json_string_value(json_object_get(json_array_get(calls, 1), "id")), "call_1");
    json_decref(j);

    static const char req[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"go\"},{\"role\":\"assistant\","
        "\"tool_calls\":[{\"id\":\"call_0\\u005f_ts_AB_-\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_0\\u005f_ts_AB_-\",\"content\":\"x\"}]}";
    tg_buf_reset(&out);
    tg_xlate_opts_t o = {.model = "m"};
    char err[256] = "";
    T_EQ_INT(tg_xlate_request(TG_DIALECT_OPENAI, TG_DIALECT_GOOGLE, req, sizeof(req) - 1, &o, &out, &info, err,
                              sizeof(err)),
             0);
    j = json_loadb(out.base, out.len, 0, NULL);
    const json_t *part = json_array_get(json_object_get(json_array_get(json_object_get(j, "contents"), 1), "parts"), 0);
    T_EQ_STR(json_string_value(json_object_get(part, "thoughtSignature")), "AB/+");
    json_decref(j);
    tg_buf_free(&out);
}

int main(void)
{
    T_RUN(test_vectors);
    T_RUN(test_round_trip);
    T_RUN(test_split_model);
    T_RUN(test_request_not_json);
    T_RUN(test_response_not_message);
    T_RUN(test_stream_oversized_event);
    T_RUN(test_google_signature_escapes);
    return unit_done("test_xlate");
}
