/*
 * Flat JSON documents: structure, member lookup, raw bytes, unescaping, numbers, and what is not one JSON value.
 */
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/jsondoc.h"
#include "unit.h"

static void test_structure(void)
{
    const char *t = " {\"a\": [1, {\"b\": \"x\"}, null], \"c\": {\"d\": true}, \"a\": 2} ";
    tg_jdoc_t d;
    T_EQ_INT(tg_jdoc_parse(&d, t, strlen(t)), 0);
    T_EQ_INT(tg_jdoc_type(&d, 0), TG_JSON_OBJECT);
    T_EQ_INT(tg_jdoc_node(&d, 0)->count, 3);
    T_EQ_IOV(tg_jdoc_raw(&d, 0), "{\"a\": [1, {\"b\": \"x\"}, null], \"c\": {\"d\": true}, \"a\": 2}");
    uint32_t a = tg_jdoc_get(&d, 0, "a"); /* the first of two */
    T_EQ_INT(tg_jdoc_type(&d, a), TG_JSON_ARRAY);
    T_EQ_INT(tg_jdoc_node(&d, a)->count, 3);
    T_EQ_IOV(tg_jdoc_key(&d, a), "a");
    uint32_t one = tg_jdoc_node(&d, a)->child;
    T_EQ_IOV(tg_jdoc_raw(&d, one), "1");
    T_EQ_IOV(tg_jdoc_key(&d, one), ""); /* an array element has no key */
    uint32_t obj = tg_jdoc_node(&d, one)->next;
    T_OK(tg_jdoc_str_eq(&d, tg_jdoc_get(&d, obj, "b"), "x"));
    uint32_t nul = tg_jdoc_node(&d, obj)->next;
    T_OK(tg_jdoc_is_null(&d, nul));
    T_EQ_INT(tg_jdoc_node(&d, nul)->next, TG_JDOC_NONE);
    /* lookups chain through absent members */
    T_EQ_INT(tg_jdoc_get(&d, tg_jdoc_get(&d, 0, "nope"), "d"), TG_JDOC_NONE);
    T_EQ_INT(tg_jdoc_get(&d, a, "b"), TG_JDOC_NONE); /* not an object */
    T_EQ_INT(tg_jdoc_type(&d, tg_jdoc_get(&d, tg_jdoc_get(&d, 0, "c"), "d")), TG_JSON_TRUE);
    T_OK(tg_jdoc_is_null(&d, TG_JDOC_NONE));
    tg_jdoc_free(&d);
}

static void test_strings(void)
{
    const char *t = "{\"k\\\"q\": \"a\\\"b\\\\c\\/d\\n\\u00e9\\u2603\\ud83d\\ude00\\ud800x\", \"plain\": \"p\"}";
    tg_jdoc_t d;
    T_EQ_INT(tg_jdoc_parse(&d, t, strlen(t)), 0);
    uint32_t v = tg_jdoc_node(&d, 0)->child;
    T_EQ_IOV(tg_jdoc_key(&d, v), "k\\\"q"); /* keys as written */
    T_EQ_INT(tg_jdoc_get(&d, 0, "k\"q"), TG_JDOC_NONE);
    tg_buf_t b;
    tg_buf_init(&b, 1024);
    T_EQ_INT(tg_jdoc_str(&d, v, &b), 0);
    tg_buf_cstr(&b);
    T_EQ_STR(b.base, "a\"b\\c/d\n\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80\xef\xbf\xbdx");
    T_OK(tg_jdoc_str_eq(&d, v, "a\"b\\c/d\n\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80\xef\xbf\xbdx"));
    T_OK(!tg_jdoc_str_eq(&d, v, "a\"b"));
    T_EQ_IOV(tg_jdoc_str_raw(&d, tg_jdoc_get(&d, 0, "plain")), "p");
    T_EQ_INT(tg_jdoc_str(&d, 0, &b), -1); /* not a string */
    tg_buf_free(&b);
    tg_jdoc_free(&d);
}

static void test_numbers(void)
{
    const char *t = "[0, -42, 1.5, 2e3, 123456789012345678, 1234567890123456789]";
    tg_jdoc_t d;
    T_EQ_INT(tg_jdoc_parse(&d, t, strlen(t)), 0);
    uint32_t i = tg_jdoc_node(&d, 0)->child;
    int64_t v = 7;
    double x;
    T_EQ_INT(tg_jdoc_int(&d, i, &v), 0);
    T_EQ_INT(v, 0);
    i = tg_jdoc_node(&d, i)->next;
    T_EQ_INT(tg_jdoc_int(&d, i, &v), 0);
    T_EQ_INT(v, -42);
    i = tg_jdoc_node(&d, i)->next;
    T_EQ_INT(tg_jdoc_int(&d, i, &v), -1);
    T_EQ_INT(tg_jdoc_number(&d, i, &x), 0);
    T_OK(x == 1.5);
    i = tg_jdoc_node(&d, i)->next;
    T_EQ_INT(tg_jdoc_int(&d, i, &v), -1);
    T_EQ_INT(tg_jdoc_number(&d, i, &x), 0);
    T_OK(x == 2000);
    i = tg_jdoc_node(&d, i)->next;
    T_EQ_INT(tg_jdoc_int(&d, i, &v), 0);
    T_EQ_INT(v, 123456789012345678LL);
    i = tg_jdoc_node(&d, i)->next;
    T_EQ_INT(tg_jdoc_int(&d, i, &v), -1); /* 19 digits: refused rather than overflowed */
    T_EQ_INT(tg_jdoc_int(&d, TG_JDOC_NONE, &v), -1);
    tg_jdoc_free(&d);
}

static void test_not_one_value(void)
{
    static const char *const bad[] = {"", "  ", "{", "{}{}", "[1] 2", "{\"a\":}", "nul", "{\"a\":1,}", "\"\\x\""};
    for (size_t i = 0; i != TG_ARRAY_SIZE(bad); ++i) {
        tg_jdoc_t d;
        T_EQ_INT(tg_jdoc_parse(&d, bad[i], strlen(bad[i])), -1);
        tg_jdoc_free(&d);
    }
    tg_jdoc_t d;
    T_EQ_INT(tg_jdoc_parse(&d, NULL, 0), -1);
    tg_jdoc_free(&d);
}

/* Nesting: every level has its node up to the limit; one more level is refused. */
static void nested(size_t levels, char *t, size_t *n)
{
    *n = 0;
    memcpy(t, "{\"x\":", 5);
    *n = 5;
    for (size_t i = 0; i != levels; ++i)
        t[(*n)++] = '[';
    for (size_t i = 0; i != levels; ++i)
        t[(*n)++] = ']';
    t[(*n)++] = '}';
}

static void test_deep(void)
{
    static char t[2 * TG_JSONSCAN_HARD_DEPTH + 16];
    size_t n;
    tg_jdoc_t d;
    nested(TG_JSONSCAN_HARD_DEPTH - 1, t, &n);
    T_EQ_INT(tg_jdoc_parse(&d, t, n), 0);
    T_EQ_INT(d.num, TG_JSONSCAN_HARD_DEPTH);
    uint32_t x = tg_jdoc_get(&d, 0, "x");
    T_EQ_INT(tg_jdoc_raw(&d, x).len, 2 * (TG_JSONSCAN_HARD_DEPTH - 1));
    T_EQ_INT(tg_jdoc_node(&d, x)->count, 1);
    tg_jdoc_free(&d);
    nested(TG_JSONSCAN_HARD_DEPTH, t, &n);
    T_EQ_INT(tg_jdoc_parse(&d, t, n), -1);
    tg_jdoc_free(&d);
}

/* Numbers read by the short path (digits over a power of ten) are exactly what strtod makes of them. */
static void test_numbers_as_strtod(void)
{
    static const char *const nums[] = {"0", "-0", "0.2", "0.1", "0.3", "1", "1.0", "0.7", "2", "0.123456789012345",
                                       "123456789012345", "-98765.4321", "0.000000000000001", "3.14159265358979",
                                       "1234567890123456", "0.1e1", "1E-7", "-2.5e+3", "0.30000000000000004"};
    unsigned bad = 0;
    for (size_t i = 0; i != sizeof(nums) / sizeof(nums[0]); ++i) {
        tg_jdoc_t d;
        T_EQ_INT(tg_jdoc_parse(&d, nums[i], strlen(nums[i])), 0);
        double x = -1;
        T_EQ_INT(tg_jdoc_number(&d, 0, &x), 0);
        double want = strtod(nums[i], NULL);
        bad += memcmp(&x, &want, sizeof(x)) != 0; /* bit for bit, the sign of zero too */
        tg_jdoc_free(&d);
    }
    /* and a sweep of two- to six-place decimals */
    char b[32];
    for (unsigned k = 0; k < 200000; k += 7) {
        snprintf(b, sizeof(b), "%u.%06u", k / 1000, k % 1000000);
        tg_jdoc_t d;
        double x = -1;
        if (tg_jdoc_parse(&d, b, strlen(b)) != 0 || tg_jdoc_number(&d, 0, &x) != 0)
            bad++;
        double want = strtod(b, NULL);
        bad += memcmp(&x, &want, sizeof(x)) != 0;
        tg_jdoc_free(&d);
    }
    T_EQ_INT(bad, 0);
}

/* Documents past the nodes held inline: moved to the heap, grown again, every node still where it was. */
static void test_growth(void)
{
    char t[4096];
    size_t o = 0;
    t[o++] = '[';
    for (int i = 0; i < 300; ++i)
        o += (size_t)snprintf(t + o, sizeof(t) - o, i == 0 ? "%d" : ",%d", i);
    t[o++] = ']';
    tg_jdoc_t d;
    T_EQ_INT(tg_jdoc_parse(&d, t, o), 0);
    T_EQ_INT(d.num, 301);
    T_EQ_INT(tg_jdoc_node(&d, 0)->count, 300);
    int64_t want = 0, bad = 0;
    TG_JDOC_EACH(&d, 0, c)
    bad += tg_jdoc_int_or(&d, c, -1) != want++;
    T_EQ_INT(bad, 0);
    T_EQ_INT(want, 300);
    tg_jdoc_free(&d);
    /* the same struct parses a small one after a large one, and a failed parse after that frees what it took */
    T_EQ_INT(tg_jdoc_parse(&d, "[1]", 3), 0);
    T_EQ_INT(d.num, 2);
    tg_jdoc_free(&d);
    t[o - 1] = ',';
    T_EQ_INT(tg_jdoc_parse(&d, t, o), -1);
    tg_jdoc_free(&d);
}

/* Strict grammar: what the push scanner lets through for speed, a document does not. */
static void test_strict(void)
{
    static const char *const bad[] = {"[01]", "[1.]", "[.5]", "[1e]", "[-]", "[1-2]", "[+1]", "[\"\\u12\"]",
                                      "[\"a\tb\"]", "{\"a\" 1}", "{1:2}", "[true false]", "[nulll]", "{\"a\":1 \"b\":2}"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(bad); ++i) {
        tg_jdoc_t d;
        int r = tg_jdoc_parse(&d, bad[i], strlen(bad[i]));
        T_EQ_INT(r, -1);
        if (r != -1)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        tg_jdoc_free(&d);
    }
    static const char *const good[] = {"[0, -0.5e+3, 1E2, 10]", "{\"\":{}}", "[[], {}, \"\\u00e9\\n\"]", "\t\r\n [] \n"};
    for (size_t i = 0; i != TG_ARRAY_SIZE(good); ++i) {
        tg_jdoc_t d;
        T_EQ_INT(tg_jdoc_parse(&d, good[i], strlen(good[i])), 0);
        tg_jdoc_free(&d);
    }
}

int main(void)
{
    T_RUN(test_structure);
    T_RUN(test_strings);
    T_RUN(test_numbers);
    T_RUN(test_not_one_value);
    T_RUN(test_deep);
    T_RUN(test_strict);
    T_RUN(test_growth);
    T_RUN(test_numbers_as_strtod);
    return unit_done("test_jsondoc");
}
