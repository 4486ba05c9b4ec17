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

static void run_request(const char *name, json_t *c)
{
    char *body = json_dumps(json_object_get(c, "openai"), JSON_COMPACT);
    const char *model = json_string_value(json_object_get(c, "model"));
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    tg_xlate_req_info_t info;
    char err[512] = "";
    int r = tg_xlate_request(TG_DIALECT_ANTHROPIC, body, strlen(body), model, &out, &info, err, sizeof(err));
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
        check_json_equal(name, got, json_object_get(c, "anthropic"));
        json_decref(got);
        json_t *wi = json_object_get(c, "info");
        T_EQ_INT(info.stream, json_is_true(json_object_get(wi, "stream")));
        T_EQ_INT(info.include_usage, json_is_true(json_object_get(wi, "include_usage")));
    }
    tg_buf_free(&out);
    free(body);
}

static void run_response(const char *name, json_t *c)
{
    char *body = json_dumps(json_object_get(c, "anthropic"), JSON_COMPACT);
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    T_EQ_INT(tg_xlate_response(TG_DIALECT_ANTHROPIC, body, strlen(body), CREATED, &out), 0);
    json_t *got = json_loadb(out.base != NULL ? out.base : "", out.len, 0, NULL);
    check_json_equal(name, got, json_object_get(c, "openai"));
    json_decref(got);
    tg_buf_free(&out);
    free(body);
}

static void run_error(const char *name, json_t *c)
{
    const json_t *b = json_object_get(c, "body");
    tg_buf_t out;
    tg_buf_init(&out, 1u << 24);
    tg_xlate_error(TG_DIALECT_ANTHROPIC, (int)json_integer_value(json_object_get(c, "status")), json_string_value(b),
                   json_string_length(b), &out);
    json_t *got = json_loadb(out.base != NULL ? out.base : "", out.len, 0, NULL);
    check_json_equal(name, got, json_object_get(c, "openai"));
    json_decref(got);
    tg_buf_free(&out);
}

/* The stream translated with the input cut every `step` bytes (0: whole); the client's bytes into `out`. */
static void translate_stream(const char *in, size_t len, size_t step, bool include_usage, tg_buf_t *out)
{
    tg_xlate_req_info_t info = {.stream = true, .include_usage = include_usage};
    tg_xlate_stream_t s;
    tg_xlate_stream_init(&s, TG_DIALECT_ANTHROPIC, &info, CREATED);
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

static void run_stream(const char *name, json_t *c)
{
    const json_t *in = json_object_get(c, "anthropic");
    bool usage = json_is_true(json_object_get(c, "include_usage"));
    tg_buf_t whole;
    tg_buf_init(&whole, 1u << 24);
    translate_stream(json_string_value(in), json_string_length(in), 0, usage, &whole);
    tg_buf_cstr(&whole);
    /* the same bytes whatever the pieces */
    static const size_t steps[] = {1, 2, 7, 64};
    for (size_t k = 0; k != TG_ARRAY_SIZE(steps); ++k) {
        tg_buf_t part;
        tg_buf_init(&part, 1u << 24);
        translate_stream(json_string_value(in), json_string_length(in), steps[k], usage, &part);
        tg_buf_cstr(&part);
        ++unit_checks;
        if (strcmp(part.base, whole.base) != 0) {
            ++unit_failures;
            fprintf(stderr, "%s: %s: pieces of %zu give other bytes:\n%s\n--- whole:\n%s\n", unit_current, name,
                    steps[k], part.base, whole.base);
        }
        tg_buf_free(&part);
    }
    /* the events: every one "data: ...\n\n", equal to the expected ones */
    const json_t *want = json_object_get(c, "openai");
    size_t n = 0;
    char *p = whole.base;
    while (*p != '\0') {
        ++unit_checks;
        char *end = strstr(p, "\n\n");
        if (strncmp(p, "data: ", 6) != 0 || end == NULL) {
            ++unit_failures;
            fprintf(stderr, "%s: %s: not an SSE data event at: %s\n", unit_current, name, p);
            break;
        }
        *end = '\0';
        const json_t *w = json_array_get(want, n++);
        char label[320];
        snprintf(label, sizeof(label), "%s event %zu", name, n - 1);
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
    unsigned counts[4] = {0};
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
        if (strncmp(e->d_name, "req-", 4) == 0)
            run_request(e->d_name, c), counts[0]++;
        else if (strncmp(e->d_name, "resp-", 5) == 0)
            run_response(e->d_name, c), counts[1]++;
        else if (strncmp(e->d_name, "error-", 6) == 0)
            run_error(e->d_name, c), counts[2]++;
        else if (strncmp(e->d_name, "stream-", 7) == 0)
            run_stream(e->d_name, c), counts[3]++;
        json_decref(c);
    }
    closedir(d);
    /* the vectors are there (a lost directory must not pass as zero failures) */
    T_OK(counts[0] >= 20);
    T_OK(counts[1] >= 3);
    T_OK(counts[2] >= 3);
    T_OK(counts[3] >= 4);
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
        T_EQ_INT(tg_xlate_request(TG_DIALECT_ANTHROPIC, bad[i], strlen(bad[i]), "m", &out, &info, err, sizeof(err)),
                 -1);
        T_OK(err[0] != '\0');
        tg_buf_free(&out);
    }
}

/* A whole answer that is not a message is reported, not turned into an empty completion. */
static void test_response_not_message(void)
{
    static const char *const bad[] = {"", "null", "{}", "{\"id\":\"x\"}", "{\"content\":[]}", "[]"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(bad); ++i) {
        tg_buf_t out;
        tg_buf_init(&out, 1u << 20);
        T_EQ_INT(tg_xlate_response(TG_DIALECT_ANTHROPIC, bad[i], strlen(bad[i]), CREATED, &out), -1);
        tg_buf_free(&out);
    }
}

/* An event larger than the limit ends the stream with an error event; nothing after it is sent. */
static void test_stream_oversized_event(void)
{
    tg_xlate_req_info_t info = {.stream = true};
    tg_xlate_stream_t s;
    tg_xlate_stream_init(&s, TG_DIALECT_ANTHROPIC, &info, CREATED);
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

int main(void)
{
    T_RUN(test_vectors);
    T_RUN(test_split_model);
    T_RUN(test_request_not_json);
    T_RUN(test_response_not_message);
    T_RUN(test_stream_oversized_event);
    return unit_done("test_xlate");
}
