/*
 * Usage for OpenAI-shaped streams: the request edit is byte-exact, and the strip filter gives the client exactly
 * the stream it would have had without include_usage, whatever the piece sizes.
 */
#include "tollgate/streamusage.h"
#include "unit.h"

static void check_inject(const char *in, const char *expect)
{
    tg_mem_pool_t pool;
    tg_mem_init_pool(&pool);
    tg_iovec_t out = tg_iov("unchanged", 9);
    bool did = tg_streamusage_inject(&pool, tg_iov_str(in), &out);
    if (expect == NULL) {
        T_OK(!did);
        T_EQ_IOV(out, "unchanged");
    } else {
        T_OK(did);
        T_EQ_IOV(out, expect);
    }
    tg_mem_clear_pool(&pool);
}

static void test_inject(void)
{
    check_inject("{\"model\":\"m\",\"stream\":true,\"temperature\":0.7}",
                 "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true,\"temperature\":0.7}");
    check_inject("{\"stream\":true,\"stream_options\":{}}", "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    check_inject("{\"stream\":true,\"stream_options\":{\"include_obfuscation\":false}}",
                 "{\"stream\":true,\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":false}}");
    check_inject("{\"stream\":true,\"stream_options\":{\"include_usage\": false }}",
                 "{\"stream\":true,\"stream_options\":{\"include_usage\": true }}");
    check_inject("{\"stream\":true,\"stream_options\":null}", "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    /* nothing to do */
    check_inject("{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", NULL);
    check_inject("{\"stream\":false}", NULL);
    check_inject("{\"model\":\"m\"}", NULL);
    check_inject("{\"stream\":true", NULL); /* not complete JSON */
    check_inject("[{\"stream\":true}]", NULL);
    check_inject("{\"nested\":{\"stream\":true}}", NULL);
}

/* Feeds `in` to a fresh filter in pieces of `step` and returns what the client gets. */
static const char *strip(const char *in, size_t step)
{
    static tg_buf_t out;
    tg_buf_free(&out);
    tg_buf_init(&out, 1 << 24);
    tg_streamusage_strip_t f;
    tg_streamusage_strip_init(&f);
    size_t n = strlen(in);
    if (step == 0)
        step = n;
    for (size_t i = 0; i < n; i += step)
        tg_streamusage_strip_feed(&f, in + i, n - i < step ? n - i : step, &out);
    tg_streamusage_strip_finish(&f, &out);
    tg_streamusage_strip_dispose(&f);
    return tg_buf_cstr(&out);
}

static void test_strip(void)
{
    const char *with =
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
        "data: {\"usage\":null,\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{}}]}\r\n\r\n"
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
        "data: [DONE]\n\n";
    const char *without = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
                          "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{}}]}\r\n\r\n"
                          "data: [DONE]\n\n";
    static const size_t steps[] = {0, 1, 2, 3, 7, 64};
    for (size_t i = 0; i != sizeof(steps) / sizeof(steps[0]); ++i)
        T_EQ_STR(strip(with, steps[i]), without);
    /* a usage object inside a chunk that has choices stays (the provider's own, not ours) */
    const char *keep = "data: {\"choices\":[{\"index\":0}],\"usage\":{\"prompt_tokens\":1}}\n\n";
    T_EQ_STR(strip(keep, 1), keep);
    /* comments, other fields and an unterminated tail pass through */
    const char *other = ": ping\n\nevent: x\ndata: {\"a\":1}\n\ndata: {\"choices\":[";
    T_EQ_STR(strip(other, 3), other);
    /* pretty-printed usage member */
    T_EQ_STR(strip("data: { \"usage\" : null , \"id\": 1 }\n\n", 0), "data: { \"id\": 1 }\n\n");
    /* an event over the cap: everything passes unchanged from there on */
    size_t big = TG_STREAMUSAGE_MAX_EVENT + 10;
    char *huge = malloc(big + 64);
    memcpy(huge, "data: {\"x\":\"", 12);
    memset(huge + 12, 'a', big);
    strcpy(huge + 12 + big, "\",\"usage\":null}\n\n");
    const char *got = strip(huge, 4096);
    T_OK(strcmp(got, huge) == 0);
    free(huge);
    strip("", 0); /* frees the last result */
}

int main(void)
{
    T_RUN(test_inject);
    T_RUN(test_strip);
    return unit_done("test_streamusage");
}
