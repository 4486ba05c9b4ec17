/*
 * Fuzz driver for the dialect translators (xlate.h): whatever the bytes, a translator must not crash, leak, read
 * out of bounds or grow without bound, and a stream must give the same bytes however its input is cut.
 *
 * The first byte picks the entry point: '0' a request (the rest is the body), '1' a whole answer, '2' an error
 * answer, '3' a stream (the rest is the provider's SSE text, fed whole and then in pieces whose sizes come from
 * the text itself), for an OpenAI client and an Anthropic provider; '4' to '7' the same for an Anthropic client
 * and an OpenAI-shaped provider; '8' to ';' for an OpenAI client and Google AI Studio; '<' to '?' for an Anthropic
 * client and Google; '@' an embeddings request for Google and 'A' its answer. Built with libFuzzer by `make fuzz`;
 * `make test` replays fuzz/corpus/xlate through fuzz/replay.c under ASan+UBSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include "tollgate/xlate.h"
#include "fuzz.h"

static tg_dialect_t client, provider;

static void stream(const char *p, size_t n)
{
    tg_xlate_req_info_t info = {.stream = true, .include_usage = n % 2 == 0, .json_tool = n % 3 == 0};
    tg_buf_t a, b;
    tg_buf_init(&a, 64u << 20);
    tg_buf_init(&b, 64u << 20);
    tg_xlate_stream_t s;
    tg_xlate_stream_init(&s, client, provider, &info, 1700000000);
    tg_xlate_stream_feed(&s, p, n, &a);
    tg_xlate_stream_finish(&s, &a);
    tg_xlate_stream_dispose(&s);
    tg_xlate_stream_init(&s, client, provider, &info, 1700000000);
    for (size_t off = 0, i = 0; off < n; ++i) {
        size_t step = 1 + (unsigned char)p[i % n] % 17;
        step = step < n - off ? step : n - off;
        tg_xlate_stream_feed(&s, p + off, step, &b);
        off += step;
    }
    tg_xlate_stream_finish(&s, &b);
    tg_xlate_stream_dispose(&s);
    CHECK(a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0)); /* the cut changes nothing */
    tg_buf_free(&a);
    tg_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    tg_buf_t out;
    tg_buf_init(&out, 64u << 20);
    static const tg_dialect_t pairs[][2] = {{TG_DIALECT_OPENAI, TG_DIALECT_ANTHROPIC},
                                            {TG_DIALECT_ANTHROPIC, TG_DIALECT_OPENAI},
                                            {TG_DIALECT_OPENAI, TG_DIALECT_GOOGLE},
                                            {TG_DIALECT_ANTHROPIC, TG_DIALECT_GOOGLE}};
    unsigned op = (unsigned)(data[0] - '0');
    if (op < 16) {
        client = pairs[op / 4][0];
        provider = pairs[op / 4][1];
    }
    switch (op < 16 ? op % 4 : op) {
    case 0: {
        tg_xlate_req_info_t info;
        char err[256];
        tg_xlate_opts_t o = {.model = "m", .max_completion_tokens = n % 2 == 0, .ask_usage = n % 3 == 0};
        tg_xlate_request(client, provider, p, n, &o, &out, &info, err, sizeof(err));
        break;
    }
    case 1: {
        tg_xlate_req_info_t info = {.json_tool = n % 2 == 0};
        tg_xlate_response(client, provider, &info, p, n, 1700000000, &out);
        break;
    }
    case 2:
        tg_xlate_error(client, provider, 400 + (int)(n % 200), p, n, &out);
        break;
    case 3:
        stream(p, n);
        break;
    case 16: { /* '@' */
        tg_xlate_req_info_t info;
        char err[256];
        tg_xlate_opts_t o = {.model = "gemini-embedding-001"};
        tg_xlate_embeddings_request(TG_DIALECT_GOOGLE, p, n, &o, &out, &info, err, sizeof(err));
        break;
    }
    case 17: { /* 'A' */
        tg_xlate_req_info_t info = {.embeddings = true, .base64 = n % 2 == 0, .model = "m"};
        tg_xlate_response(TG_DIALECT_OPENAI, TG_DIALECT_GOOGLE, &info, p, n, 1700000000, &out);
        break;
    }
    }
    tg_buf_free(&out);
    return 0;
}
