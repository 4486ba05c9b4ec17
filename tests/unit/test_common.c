/*
 * The toolkit: capped buffers, JSON escaping, the request pool, number parsing, the error table, the metrics
 * renderer, SHA-256 (against libsodium's).
 */
#include <math.h>
#include <pthread.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#include <sodium.h>
#include "tollgate/buf.h"
#include "tollgate/error.h"
#include "tollgate/http.h"
#include "tollgate/mem.h"
#include "tollgate/metrics.h"
#include "tollgate/sha256.h"
#include "tollgate/tgtime.h"
#include "unit.h"

static void test_buf_cap(void)
{
    tg_buf_t b;
    tg_buf_init(&b, 10);
    T_EQ_INT(tg_buf_append(&b, "12345", 5), 0);
    T_EQ_INT(tg_buf_append(&b, "67890", 5), 0);
    T_EQ_INT(tg_buf_append(&b, "x", 1), TG_E_TOOBIG);
    T_EQ_INT(b.len, 10); /* unchanged by the refused append */
    T_OK(b.cap <= 11);
    T_EQ_STR(tg_buf_cstr(&b), "1234567890");
    tg_buf_consume(&b, 4);
    T_EQ_STR(tg_buf_cstr(&b), "567890");
    T_EQ_INT(tg_buf_appendf(&b, "%d", 1234), 0);
    T_EQ_INT(tg_buf_appendf(&b, "%d", 5), TG_E_TOOBIG);
    tg_buf_free(&b);
    T_OK(b.base == NULL && b.len == 0);
    /* a big cap does not mean a big allocation */
    tg_buf_init(&b, 1u << 30);
    tg_buf_append(&b, "a", 1);
    T_OK(b.cap < 1024);
    tg_buf_free(&b);
}

/* Decimal integers without printf: the same text as printf, the extremes too, and the cap respected. */
static void test_buf_append_int(void)
{
    static const int64_t vals[] = {0, 7, -7, 10, 1234567890, -1000000, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i != sizeof(vals) / sizeof(vals[0]); ++i) {
        tg_buf_t a, b;
        tg_buf_init(&a, 64);
        tg_buf_init(&b, 64);
        T_EQ_INT(tg_buf_append_int(&a, vals[i]), 0);
        tg_buf_appendf(&b, "%lld", (long long)vals[i]);
        T_EQ_INT(a.len, b.len);
        T_OK(a.len == b.len && memcmp(a.base, b.base, a.len) == 0);
        tg_buf_free(&a);
        tg_buf_free(&b);
    }
    tg_buf_t c;
    tg_buf_init(&c, 3);
    T_EQ_INT(tg_buf_append_int(&c, 1234), TG_E_TOOBIG);
    tg_buf_free(&c);
}

static void test_json_escape(void)
{
    tg_buf_t b;
    tg_buf_init(&b, 1024);
    tg_buf_append_json_escaped(&b, "a\"b\\c\nd\x01\te", 10);
    T_EQ_STR(tg_buf_cstr(&b), "a\\\"b\\\\c\\nd\\u0001\\te");
    tg_buf_free(&b);
}

static int cleanup_order[4], cleanup_n;
static void on_cleanup(void *p)
{
    cleanup_order[cleanup_n++] = *(int *)p;
}

/* Heads kept as "name: value" lines: empty values, lines with no colon skipped, a last line with no newline. */
static void test_headtext(void)
{
    static const char text[] = "content-type: application/json\nx-empty: \nno colon here\nx-tight:v\nlast: one";
    const char *p = text, *end = text + sizeof(text) - 1;
    tg_iovec_t name, value;
    const char *want[][2] = {{"content-type", "application/json"}, {"x-empty", ""}, {"x-tight", "v"}, {"last", "one"}};
    for (size_t i = 0; i != 4; ++i) {
        T_OK(tg_headtext_next(&p, end, &name, &value));
        T_EQ_IOV(name, want[i][0]);
        T_EQ_IOV(value, want[i][1]);
    }
    T_OK(!tg_headtext_next(&p, end, &name, &value));
    p = text;
    T_OK(!tg_headtext_next(&p, text, &name, &value)); /* nothing */
}

static void test_pool(void)
{
    tg_mem_pool_t pool;
    tg_mem_init_pool(&pool);
    char *a = tg_mem_alloc_pool(&pool, 10);
    char *b = tg_mem_alloc_pool(&pool, 10);
    T_OK(((uintptr_t)a & 15) == 0 && ((uintptr_t)b & 15) == 0);
    T_OK(b - a >= 10);
    char *big = tg_mem_alloc_pool(&pool, 100000); /* a direct allocation */
    memset(big, 1, 100000);
    for (int i = 0; i != 1000; ++i)
        memset(tg_mem_alloc_pool(&pool, 100), 2, 100); /* several chunks */
    char *s = tg_mem_strdup_pool(&pool, "hello", 5);
    T_EQ_STR(s, "hello");
    static int one = 1, two = 2;
    tg_mem_add_cleanup(&pool, on_cleanup, &one);
    tg_mem_add_cleanup(&pool, on_cleanup, &two);
    tg_mem_clear_pool(&pool);
    T_EQ_INT(cleanup_n, 2);
    T_EQ_INT(cleanup_order[0], 2); /* newest first */
    T_EQ_INT(cleanup_order[1], 1);
    /* reusable after clear */
    T_OK(tg_mem_alloc_pool(&pool, 8) != NULL);
    tg_mem_clear_pool(&pool);
}

/* Blocks come back to the thread that freed them, newest first, up to TG_MEM_BLOCK_KEEP; a pool's chunks and its
 * allocations up to a block are blocks; a thread's list is freed when it exits (the ASan build's leak check). */
static void *block_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i != TG_MEM_BLOCK_KEEP + 4; ++i) /* more than it keeps */
        tg_mem_block_free(tg_mem_block_alloc());
    void *a[8];
    for (int i = 0; i != 8; ++i)
        a[i] = tg_mem_block_alloc();
    for (int i = 0; i != 8; ++i)
        tg_mem_block_free(a[i]);
    return NULL;
}

static void test_blocks(void)
{
    void *a = tg_mem_block_alloc(), *b = tg_mem_block_alloc();
    T_OK(a != NULL && b != NULL && a != b && ((uintptr_t)a & 15) == 0);
    memset(a, 7, TG_MEM_BLOCK_SIZE);
    tg_mem_block_free(a);
    tg_mem_block_free(b);
#if defined(__SANITIZE_ADDRESS__)
    /* a kept block is poisoned past its link: a use after free is still reported */
    T_OK(__asan_address_is_poisoned((char *)b + 64) && __asan_address_is_poisoned((char *)a + TG_MEM_BLOCK_SIZE - 1));
#endif
    T_OK(tg_mem_block_alloc() == b); /* newest first */
#if defined(__SANITIZE_ADDRESS__)
    T_OK(!__asan_address_is_poisoned((char *)b + 64) && !__asan_address_is_poisoned((char *)b + TG_MEM_BLOCK_SIZE - 1));
#endif
    T_OK(tg_mem_block_alloc() == a);
    tg_mem_block_free(b);
    tg_mem_block_free(a);
    tg_mem_block_free(NULL);

    /* more than TG_MEM_BLOCK_KEEP freed: the list stops growing (the rest are free()d; ASan sees no leak) */
    void *many[TG_MEM_BLOCK_KEEP + 8];
    for (int i = 0; i != TG_MEM_BLOCK_KEEP + 8; ++i)
        many[i] = tg_mem_block_alloc();
    for (int i = 0; i != TG_MEM_BLOCK_KEEP + 8; ++i)
        tg_mem_block_free(many[i]);
    int same = 0;
    for (int i = 0; i != TG_MEM_BLOCK_KEEP + 8; ++i) {
        many[i] = tg_mem_block_alloc();
        for (int j = 0; j != i; ++j)
            same += many[j] == many[i];
    }
    T_EQ_INT(same, 0);
    for (int i = 0; i != TG_MEM_BLOCK_KEEP + 8; ++i)
        tg_mem_block_free(many[i]);

    /* a pool's chunk, and an allocation of more than a quarter chunk that fits a block, are recycled blocks */
    void *top = tg_mem_block_alloc();
    tg_mem_block_free(top);
    tg_mem_pool_t pool;
    tg_mem_init_pool(&pool);
    char *rec = tg_mem_alloc_pool(&pool, 2640);
    T_OK(rec != NULL && rec > (char *)top && rec < (char *)top + TG_MEM_BLOCK_SIZE);
    memset(rec, 1, 2640);
    char *small = tg_mem_alloc_pool(&pool, 100); /* a chunk: the next block */
    memset(small, 2, 100);
    char *large = tg_mem_alloc_pool(&pool, TG_MEM_BLOCK_SIZE); /* larger than a block: malloc's own */
    memset(large, 3, TG_MEM_BLOCK_SIZE);
    tg_mem_clear_pool(&pool);
    void *back = tg_mem_block_alloc(); /* the pool's two blocks are back on the list, newest first */
    T_OK((rec > (char *)back && rec < (char *)back + TG_MEM_BLOCK_SIZE) ||
         (small > (char *)back && small < (char *)back + TG_MEM_BLOCK_SIZE));
    tg_mem_block_free(back);

    /* another thread's blocks are its own, and freed when it exits */
    pthread_t t;
    T_EQ_INT(pthread_create(&t, NULL, block_thread, NULL), 0);
    T_EQ_INT(pthread_join(t, NULL), 0);
}

static void test_parse_u64(void)
{
    uint64_t v;
    T_EQ_INT(tg_parse_u64("123", 3, 1000, &v), 0);
    T_EQ_INT(v, 123);
    T_EQ_INT(tg_parse_u64("1001", 4, 1000, &v), -1);
    T_EQ_INT(tg_parse_u64("", 0, 1000, &v), -1);
    T_EQ_INT(tg_parse_u64("-1", 2, 1000, &v), -1);
    T_EQ_INT(tg_parse_u64("1 ", 2, 1000, &v), -1);
    T_EQ_INT(tg_parse_u64("18446744073709551615", 20, UINT64_MAX, &v), 0);
    T_EQ_INT(tg_parse_u64("18446744073709551616", 20, UINT64_MAX, &v), -1);
}

static void test_errors(void)
{
    T_EQ_INT(tg_err_http_status(TG_E_GATEWAY_NOT_FOUND), 404);
    T_EQ_INT(tg_err_gateway_code(TG_E_GATEWAY_NOT_FOUND), 2001);
    T_EQ_INT(tg_err_http_status(TG_E_UPSTREAM_TIMEOUT), 504);
    T_EQ_INT(tg_err_gateway_code(TG_E_UPSTREAM_TIMEOUT), 2005);
    T_EQ_INT(tg_err_http_status(TG_E_UPSTREAM_UNREACHABLE), 502);
    T_EQ_INT(tg_err_http_status(TG_E_INVALID_PROVIDER), 400);
    T_EQ_INT(tg_err_gateway_code(TG_E_INVALID_PROVIDER), 2008);
    T_EQ_INT(tg_err_http_status(TG_E_HEADERS_TOO_LARGE), 431);
    T_EQ_INT(tg_err_http_status(TG_E_BODY_TOO_LARGE), 413);
    T_EQ_INT(tg_err_http_status(TG_E_URL_TOO_LONG), 414);
    T_EQ_INT(tg_err_http_status(TG_E_AGAIN), 500); /* internal codes never reach a client as such */
    T_EQ_STR(tg_err_name(TG_E_BAD_PATH), "BAD_PATH");
    T_EQ_STR(tg_strerror(12345), "unknown error");
    tg_buf_t b;
    tg_buf_init(&b, 4096);
    tg_http_error_body(&b, TG_E_GATEWAY_NOT_FOUND, "no \"gw\"");
    T_EQ_STR(tg_buf_cstr(&b), "{\"success\":false,\"result\":[],\"messages\":[],\"error\":[{\"code\":2001,\"message\":"
                              "\"no \\\"gw\\\"\"}],\"name\":\"AiGatewayError\",\"httpCode\":404,\"internalCode\":2001,"
                              "\"message\":\"no \\\"gw\\\"\"}");
    tg_buf_free(&b);
}

static void test_metrics(void)
{
    tg_metrics_t *a = tg_metrics_create(), *b = tg_metrics_create();
    tg_metrics_request(a, "openai", 200, 3000000, 10, 100);    /* 3 ms */
    tg_metrics_request(b, "openai", 200, 200000000, 20, 200);  /* 200 ms */
    tg_metrics_request(b, "openai", 502, 1000000, 0, 0);
    tg_metrics_request(a, NULL, 404, 1000, 0, 0);
    tg_metrics_upstream_error(b, "openai", TG_UPSTREAM_ERR_TIMEOUT);
    tg_metrics_connection(a);
    tg_metrics_t *shards[] = {a, b};
    tg_metrics_gauges_t g = {.connections_open = 7, .workers = 2};
    tg_buf_t out;
    tg_buf_init(&out, 1 << 20);
    tg_metrics_render(shards, 2, &g, &out);
    const char *s = tg_buf_cstr(&out);
    T_OK(strstr(s, "tollgate_requests_total{provider=\"openai\",code=\"2xx\"} 2\n") != NULL);
    T_OK(strstr(s, "tollgate_requests_total{provider=\"openai\",code=\"5xx\"} 1\n") != NULL);
    T_OK(strstr(s, "tollgate_requests_total{provider=\"none\",code=\"4xx\"} 1\n") != NULL);
    T_OK(strstr(s, "tollgate_request_duration_seconds_bucket{provider=\"openai\",le=\"0.005\"} 2\n") != NULL);
    T_OK(strstr(s, "tollgate_request_duration_seconds_bucket{provider=\"openai\",le=\"0.1\"} 2\n") != NULL);
    T_OK(strstr(s, "tollgate_request_duration_seconds_bucket{provider=\"openai\",le=\"0.25\"} 3\n") != NULL);
    T_OK(strstr(s, "tollgate_request_duration_seconds_count{provider=\"openai\"} 3\n") != NULL);
    T_OK(strstr(s, "tollgate_request_bytes_total{provider=\"openai\"} 30\n") != NULL);
    T_OK(strstr(s, "tollgate_response_bytes_total{provider=\"openai\"} 300\n") != NULL);
    T_OK(strstr(s, "tollgate_upstream_errors_total{provider=\"openai\",kind=\"timeout\"} 1\n") != NULL);
    T_OK(strstr(s, "tollgate_connections_open 7\n") != NULL);
    T_OK(strstr(s, "tollgate_connections_total 1\n") != NULL);
    /* more providers than slots: the rest is "other", nothing is lost */
    for (int i = 0; i != TG_METRICS_MAX_PROVIDERS + 10; ++i) {
        char name[32];
        snprintf(name, sizeof(name), "custom-p%d", i);
        tg_metrics_request(a, name, 200, 1000, 0, 0);
    }
    tg_buf_reset(&out);
    tg_metrics_render(shards, 2, &g, &out);
    T_OK(strstr(tg_buf_cstr(&out), "tollgate_requests_total{provider=\"other\",code=\"2xx\"} 11\n") != NULL);
    /* cost: nano-USD sums; an absurd custom cost (or an infinite one) is capped, not undefined */
    tg_metrics_usage(a, "g", "openai", "gpt-4o", 10, 5, 0, 0.25);
    tg_metrics_usage(b, "g", "openai", "gpt-4o", 10, 5, 0, 0.5);
    tg_metrics_usage(a, "g", "custom", "huge", 1000, 0, 0, 1e13);
    tg_metrics_usage(a, "g", "custom", "huge", 1000, 0, 0, INFINITY);
    tg_buf_reset(&out);
    tg_metrics_render(shards, 2, &g, &out);
    T_OK(strstr(tg_buf_cstr(&out), "tollgate_cost_usd_total{gateway=\"g\",provider=\"openai\",model=\"gpt-4o\"} 0.750000000\n") !=
         NULL);
    T_OK(strstr(tg_buf_cstr(&out), "tollgate_cost_usd_total{gateway=\"g\",provider=\"custom\",model=\"huge\"} 2000000000.000000000\n") !=
         NULL);
    tg_buf_free(&out);
    tg_metrics_destroy(a);
    tg_metrics_destroy(b);
}

static void test_time_format(void)
{
    char buf[64];
    tg_format_iso8601_ms(1795425520123ull, buf, sizeof(buf));
    T_EQ_STR(buf, "2026-11-23T09:18:40.123Z");
    tg_format_http_date(784111777, buf, sizeof(buf));
    T_EQ_STR(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
}

/* A header name's mask bit is the same whatever its case, so a lookup never misses a header sent as Content-Type. */
static void test_header_bit(void)
{
    static const char *const names[][2] = {{"content-type", "Content-Type"}, {"cf-aig-cache-ttl", "CF-AIG-Cache-TTL"},
                                           {"x-api-key", "X-API-KEY"}, {"authorization", "AUTHORIZATION"},
                                           {"cf-aig-metadata", "Cf-Aig-Metadata"}, {"a", "A"}};
    for (size_t i = 0; i != TG_ARRAY_SIZE(names); ++i)
        T_OK(tg_http_header_bit(names[i][0], strlen(names[i][0])) ==
             tg_http_header_bit(names[i][1], strlen(names[i][1])));
    /* and names tell apart often enough to be worth it: the usual request headers take few of the 64 bits */
    static const char *const common[] = {"content-type", "authorization", "user-agent", "accept", "content-length",
                                         "host", "accept-encoding", "connection", "x-stainless-lang",
                                         "x-stainless-package-version", "x-stainless-os", "x-stainless-arch",
                                         "x-stainless-runtime", "x-stainless-runtime-version",
                                         "x-stainless-retry-count", "x-stainless-timeout", "anthropic-version",
                                         "x-api-key", "accept-language"};
    static const char *const looked_up[] = {"cf-aig-cache-key", "cf-aig-cache-ttl", "cf-aig-collect-log",
                                            "cf-aig-collect-log-payload", "cf-aig-custom-cost", "cf-aig-event-id",
                                            "cf-aig-metadata", "cf-aig-request-timeout", "cf-aig-skip-cache",
                                            "cf-cache-ttl", "cf-skip-cache", "expect", "api-key", "x-goog-api-key"};
    uint64_t mask = 0;
    for (size_t i = 0; i != TG_ARRAY_SIZE(common); ++i)
        mask |= tg_http_header_bit(common[i], strlen(common[i]));
    for (size_t i = 0; i != TG_ARRAY_SIZE(looked_up); ++i)
        T_OK((mask & tg_http_header_bit(looked_up[i], strlen(looked_up[i]))) == 0);
}

/* The FIPS 180-4 examples, and agreement with libsodium's SHA-256 on random texts fed in random pieces (every
 * length up to four blocks and past, so the padding takes one block or two), with each compression this CPU has. */
static void test_sha256(void)
{
    static const struct { const char *text; const char *digest; } known[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    T_OK(sodium_init() >= 0);
    bool sha_ni = strcmp(tg_sha256_impl(), "sha-ni") == 0;
    for (int portable = 0; portable <= 1; ++portable) {
        if (!portable && !sha_ni)
            continue;
        tg_sha256_set_portable(portable);
        T_EQ_STR(tg_sha256_impl(), portable ? "portable" : "sha-ni");
        uint8_t d[32];
        char hex[65];
        tg_sha256_t c;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); ++i) {
            tg_sha256_init(&c);
            tg_sha256_update(&c, known[i].text, strlen(known[i].text));
            tg_sha256_final(&c, d);
            tg_hex_lower(d, 32, hex);
            T_EQ_STR(hex, known[i].digest);
        }
        /* a million times "a", 1,000 bytes at a time */
        char a[1000];
        memset(a, 'a', sizeof(a));
        tg_sha256_init(&c);
        for (int i = 0; i < 1000; ++i)
            tg_sha256_update(&c, a, sizeof(a));
        tg_sha256_final(&c, d);
        tg_hex_lower(d, 32, hex);
        T_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        uint64_t seed = 0x9e3779b97f4a7c15ULL;
        uint8_t text[1200], want[32];
        unsigned mismatches = 0;
        for (size_t len = 0; len <= sizeof(text); ++len) {
            for (size_t i = 0; i < len; ++i)
                text[i] = (uint8_t)(unit_rand(&seed) >> 24);
            crypto_hash_sha256(want, text, len);
            tg_sha256_init(&c);
            for (size_t off = 0; off < len;) {
                size_t piece = unit_rand(&seed) % 150 + 1;
                piece = piece < len - off ? piece : len - off;
                tg_sha256_update(&c, text + off, piece);
                off += piece;
            }
            tg_sha256_final(&c, d);
            mismatches += memcmp(d, want, 32) != 0;
        }
        T_EQ_INT((int)mismatches, 0);
    }
    /* the two compressions share their chaining value: a digest begun with one ends right with the other */
    if (sha_ni) {
        static const char text[] = "a text of more than one block, so that each compression has whole blocks to do: "
                                   "the first part with the one, the rest with the other, and the padding after";
        uint8_t d[32], want[32];
        crypto_hash_sha256(want, (const uint8_t *)text, sizeof(text) - 1);
        for (int first_portable = 0; first_portable <= 1; ++first_portable) {
            tg_sha256_t c;
            tg_sha256_set_portable(first_portable);
            tg_sha256_init(&c);
            tg_sha256_update(&c, text, 100);
            tg_sha256_set_portable(!first_portable);
            tg_sha256_update(&c, text + 100, sizeof(text) - 1 - 100);
            tg_sha256_final(&c, d);
            T_OK(memcmp(d, want, 32) == 0);
        }
    }
    tg_sha256_set_portable(false);
    if (!sha_ni)
        fprintf(stderr, "  (this CPU has no SHA extensions: only the portable SHA-256 was tested)\n");
}

/* tg_mem_eq_ci against the byte-at-a-time definition: every length to 40, bytes from the whole range (letters of
 * both cases often), one byte changed at each position */
static bool eq_ci_ref(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (tg_tolower(a[i]) != tg_tolower(b[i]))
            return false;
    return true;
}

/* tg_mem_eq_ci on copies of exactly n bytes */
static bool eq_ci_exact(const char *a, const char *b, size_t n)
{
    char *x = malloc(n + (n == 0)), *y = malloc(n + (n == 0));
    memcpy(x, a, n);
    memcpy(y, b, n);
    bool eq = tg_mem_eq_ci(x, y, n);
    free(x);
    free(y);
    return eq;
}

static void test_mem_eq_ci(void)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    char a[48], b[48];
    size_t mismatches = 0;
    for (size_t n = 0; n <= 40; ++n) {
        for (int round = 0; round != 200; ++round) {
            for (size_t i = 0; i != n; ++i) {
                seed = seed * 6364136223846793005u + 1442695040888963407u;
                unsigned v = (unsigned)(seed >> 33);
                char c = (v & 3) != 0 ? (char)('a' + (v >> 2) % 26) : (char)(v >> 8);
                a[i] = c;
                b[i] = (v & 0x30000) != 0 && c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; /* case flipped */
            }
            int ok = eq_ci_exact(a, b, n) == eq_ci_ref(a, b, n);
            T_OK(ok);
            T_OK(eq_ci_exact(a, b, n)); /* (only case differs) */
            for (size_t at = 0; at != n; ++at) {
                char keep = b[at];
                seed = seed * 6364136223846793005u + 1442695040888963407u;
                b[at] = (char)(seed >> 40);
                bool want = eq_ci_ref(a, b, n);
                mismatches += !want;
                ok = eq_ci_exact(a, b, n) == want;
                T_OK(ok);
                b[at] = keep;
            }
        }
    }
    T_OK(mismatches > 1000); /* the changed bytes did make unequal strings */
    /* the bytes next to a letter's range, and bit 7 with a letter's low bits */
    const char *pairs[][2] = {{"@@@@@@@@[", "````````{"}, {"\xc1\xc1\xc1\xc1\xc1\xc1\xc1\xc1", "\xe1\xe1\xe1\xe1\xe1\xe1\xe1\xe1"},
                              {"AUTHORIZATION", "authorization"}, {"Content-Length", "content-length"}};
    T_OK(!tg_mem_eq_ci(pairs[0][0], pairs[0][1], 9));
    T_OK(!tg_mem_eq_ci(pairs[1][0], pairs[1][1], 8));
    T_OK(tg_mem_eq_ci(pairs[2][0], pairs[2][1], 13));
    T_OK(tg_mem_eq_ci(pairs[3][0], pairs[3][1], 14));
    T_OK(!tg_mem_eq_ci("Content-Length", "content-lengtH\x01", 15));
}

int main(void)
{
    T_RUN(test_mem_eq_ci);
    T_RUN(test_header_bit);
    T_RUN(test_buf_cap);
    T_RUN(test_buf_append_int);
    T_RUN(test_json_escape);
    T_RUN(test_headtext);
    T_RUN(test_pool);
    T_RUN(test_blocks);
    T_RUN(test_parse_u64);
    T_RUN(test_errors);
    T_RUN(test_metrics);
    T_RUN(test_time_format);
    T_RUN(test_sha256);
    return unit_done("test_common");
}
