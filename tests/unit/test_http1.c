/*
 * The HTTP/1 request reader, fed every input one byte at a time, in small uneven pieces and all at once: each way
 * must give the same messages (and the same error), and that result must be the expected one.
 */
#include "tollgate/error.h"
#include "tollgate/http1.h"
#include "unit.h"

typedef struct {
    char text[16384]; /* one line per message: "METHOD url ka=0|1 [name=value]... body=<...>" */
    size_t len;
    int err;           /* 0, or the TG_E_* the input ended with */
    int messages;
    int heads;         /* on_head calls */
    bool partial;      /* a message was started and not finished */
} result_t;

static const tg_http1_limits_t default_limits = {8192, 65536, 100, 1 << 20};

static void add(result_t *res, const char *p, size_t n)
{
    if (res->len + n < sizeof(res->text)) {
        memcpy(res->text + res->len, p, n);
        res->len += n;
        res->text[res->len] = '\0';
    }
}

static void describe(const tg_http1_t *r, result_t *res)
{
    char line[256];
    snprintf(line, sizeof(line), "%s ", llhttp_method_name((llhttp_method_t)r->method));
    add(res, line, strlen(line));
    tg_iovec_t url = tg_http1_url(r);
    add(res, url.base, url.len);
    snprintf(line, sizeof(line), " 1.%u ka=%d", r->version_minor, r->keepalive ? 1 : 0);
    add(res, line, strlen(line));
    for (size_t i = 0; i != r->num_hdrs; ++i) {
        tg_iovec_t n = tg_http1_name(r, i), v = tg_http1_value(r, i);
        add(res, " [", 2);
        add(res, n.base, n.len);
        add(res, "=", 1);
        add(res, v.base, v.len);
        add(res, "]", 1);
    }
    add(res, " body=<", 7);
    add(res, r->body.base != NULL ? r->body.base : "", r->body.len);
    add(res, ">\n", 2);
}

static int count_head(tg_http1_t *r, void *data)
{
    (void)r;
    ++((result_t *)data)->heads;
    return 0;
}

/* Parses `input` handing the reader pieces of `step` bytes (0 = all at once). */
static void run(const char *input, size_t len, size_t step, const tg_http1_limits_t *lim, result_t *res)
{
    memset(res, 0, sizeof(*res));
    tg_http1_t r;
    tg_http1_init(&r, lim);
    r.on_head = count_head;
    r.data = res;
    if (step == 0)
        step = len;
    for (size_t off = 0; off < len && res->err == 0; off += step) {
        const char *p = input + off;
        size_t n = TG_MIN(step, len - off);
        while (n != 0) {
            size_t used;
            int rc = tg_http1_feed(&r, p, n, &used);
            if (rc < 0) {
                res->err = rc;
                break;
            }
            if (rc == 1) {
                describe(&r, res);
                ++res->messages;
                tg_http1_next(&r);
            }
            p += used;
            n -= used;
        }
    }
    res->partial = r.started;
    tg_http1_dispose(&r);
}

/* Checks that every way of cutting the input agrees, and returns the whole-input result in *out. */
static void run_all_ways(const char *input, const tg_http1_limits_t *lim, result_t *out)
{
    static result_t other;
    size_t len = strlen(input);
    static const size_t steps[] = {1, 2, 3, 7, 64};
    run(input, len, 0, lim, out);
    for (size_t i = 0; i != TG_ARRAY_SIZE(steps); ++i) {
        run(input, len, steps[i], lim, &other);
        T_EQ_STR(other.text, out->text);
        T_EQ_INT(other.err, out->err);
        T_EQ_INT(other.messages, out->messages);
        T_EQ_INT(other.heads, out->heads);
    }
}

static void test_simple_get(void)
{
    result_t r;
    run_all_ways("GET /v1/local/default/openai/models?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer sk-1\r\n\r\n",
                 &default_limits, &r);
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.messages, 1);
    T_EQ_STR(r.text, "GET /v1/local/default/openai/models?x=1 1.1 ka=1 [Host=gw] [Authorization=Bearer sk-1] body=<>\n");
    T_OK(!r.partial);
}

static void test_post_content_length(void)
{
    result_t r;
    run_all_ways("POST /a HTTP/1.1\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{\"a\":12345}",
                 &default_limits, &r);
    T_EQ_INT(r.err, 0);
    T_EQ_STR(r.text, "POST /a 1.1 ka=1 [Content-Length=11] [Content-Type=application/json] body=<{\"a\":12345}>\n");
}

static void test_chunked_body(void)
{
    result_t r;
    run_all_ways("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                 &default_limits, &r);
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.messages, 1);
    T_EQ_STR(r.text, "POST /c 1.1 ka=1 [Transfer-Encoding=chunked] [X-Trailer=t] body=<hello world>\n");
}

static void test_pipelined(void)
{
    result_t r;
    run_all_ways("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                 "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n",
                 &default_limits, &r);
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.messages, 3);
    T_EQ_INT(r.heads, 3);
    T_EQ_STR(r.text, "GET /1 1.1 ka=1 [Host=a] body=<>\n"
                     "POST /2 1.1 ka=1 [Content-Length=3] body=<abc>\n"
                     "GET /3 1.1 ka=0 [Connection=close] body=<>\n");
}

static void test_http10_keepalive(void)
{
    result_t r;
    run_all_ways("GET /a HTTP/1.0\r\n\r\n", &default_limits, &r);
    T_EQ_STR(r.text, "GET /a 1.0 ka=0 body=<>\n");
    run_all_ways("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &default_limits, &r);
    T_EQ_STR(r.text, "GET /a 1.0 ka=1 [Connection=keep-alive] body=<>\n");
}

static void test_partial(void)
{
    result_t r;
    run_all_ways("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", &default_limits, &r);
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.messages, 0);
    T_EQ_INT(r.heads, 1);
    T_OK(r.partial);
}

static void test_limits(void)
{
    result_t r;
    tg_http1_limits_t lim = {32, 256, 4, 16};
    char buf[2048];

    run_all_ways("GET /this/url/is/longer/than/thirty-two/bytes HTTP/1.1\r\n\r\n", &lim, &r);
    T_EQ_INT(r.err, TG_E_URL_TOO_LONG);

    run_all_ways("GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n", &lim, &r);
    T_EQ_INT(r.err, TG_E_TOO_MANY_HEADERS);
    run_all_ways("GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n", &lim, &r);
    T_EQ_INT(r.err, 0);

    snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX-Big: %0300d\r\n\r\n", 7);
    run_all_ways(buf, &lim, &r);
    T_EQ_INT(r.err, TG_E_HEADERS_TOO_LARGE);

    run_all_ways("POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n", &lim, &r);
    T_EQ_INT(r.err, TG_E_BODY_TOO_LARGE);
    T_EQ_INT(r.heads, 1); /* the head is reported before the refusal */
    run_all_ways("POST / HTTP/1.1\r\nContent-Length: 16\r\n\r\n0123456789abcdef", &lim, &r);
    T_EQ_INT(r.err, 0);
    T_EQ_INT(r.messages, 1);
    run_all_ways("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n9\r\n012345678\r\n0\r\n\r\n",
                 &lim, &r);
    T_EQ_INT(r.err, TG_E_BODY_TOO_LARGE);
}

static void test_raw_head_limit(void)
{
    /* whitespace that never reaches a callback still counts against the head */
    static char buf[200000];
    tg_http1_limits_t lim = {8192, 1024, 100, 1 << 20};
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
    memset(buf + n, ' ', 80000);
    buf[n + 80000] = '\0';
    result_t r;
    run(buf, strlen(buf), 0, &lim, &r);
    T_EQ_INT(r.err, TG_E_HEADERS_TOO_LARGE);
    run(buf, strlen(buf), 4096, &lim, &r);
    T_EQ_INT(r.err, TG_E_HEADERS_TOO_LARGE);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost x\r\n\r\n",                                    /* no colon */
        "G@T / HTTP/1.1\r\n\r\n",                                              /* bad method */
        "GET / HTTP/9.9\r\n\r\n",                                              /* bad version */
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", /* smuggling */
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", /* duplicate length */
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",         /* bad chunk size */
        "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",                                   /* NUL (cut by strlen: partial) */
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",                         /* TLS hello */
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                                    /* HTTP/2 preface */
    };
    for (size_t i = 0; i != TG_ARRAY_SIZE(bad); ++i) {
        result_t r;
        run_all_ways(bad[i], &default_limits, &r);
        if (i == 6) {
            T_EQ_INT(r.messages, 0); /* strlen stops at the NUL: an incomplete head, not a message */
            continue;
        }
        T_EQ_INT(r.err, TG_E_BAD_REQUEST);
        T_EQ_INT(r.messages, 0);
    }
}

static int refuse_head(tg_http1_t *r, void *data)
{
    (void)r, (void)data;
    return TG_E_EXPECTATION_FAILED;
}

static void test_on_head_refusal(void)
{
    tg_http1_t r;
    tg_http1_init(&r, &default_limits);
    r.on_head = refuse_head;
    const char *in = "POST / HTTP/1.1\r\nExpect: nope\r\nContent-Length: 3\r\n\r\nabc";
    size_t used;
    T_EQ_INT(tg_http1_feed(&r, in, strlen(in), &used), TG_E_EXPECTATION_FAILED);
    /* the error sticks */
    T_EQ_INT(tg_http1_feed(&r, "x", 1, &used), TG_E_EXPECTATION_FAILED);
    tg_http1_dispose(&r);
}

static void test_head_fields(void)
{
    tg_http1_t r;
    tg_http1_init(&r, &default_limits);
    const char *in = "PUT /x HTTP/1.1\r\nContent-Length: 4\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nabcd";
    size_t used;
    T_EQ_INT(tg_http1_feed(&r, in, strlen(in), &used), 1);
    T_EQ_INT(used, strlen(in));
    T_EQ_INT(r.method, HTTP_PUT);
    T_EQ_INT(r.content_length, 4);
    T_OK(r.has_body);
    T_OK(r.upgrade);
    T_OK(!r.keepalive); /* after an upgrade request the stream is not HTTP/1 any more */
    tg_http1_dispose(&r);
}

int main(void)
{
    T_RUN(test_simple_get);
    T_RUN(test_post_content_length);
    T_RUN(test_chunked_body);
    T_RUN(test_pipelined);
    T_RUN(test_http10_keepalive);
    T_RUN(test_partial);
    T_RUN(test_limits);
    T_RUN(test_raw_head_limit);
    T_RUN(test_malformed);
    T_RUN(test_on_head_refusal);
    T_RUN(test_head_fields);
    return unit_done("test_http1");
}
