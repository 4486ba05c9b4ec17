/*
 * A minimal unit-test harness: checks count and report failures with file and line, and a test binary exits
 * non-zero when any check failed. A test file may include the .c it tests to reach its statics.
 */
#ifndef TOLLGATE_UNIT_H
#define TOLLGATE_UNIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_checks, unit_failures;
static const char *unit_current = "";

#define T_OK(cond)                                                                                                     \
    do {                                                                                                               \
        ++unit_checks;                                                                                                 \
        if (!(cond)) {                                                                                                 \
            ++unit_failures;                                                                                           \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, unit_current, #cond);                \
        }                                                                                                              \
    } while (0)

#define T_EQ_INT(a, b)                                                                                                 \
    do {                                                                                                               \
        long long unit_a = (long long)(a), unit_b = (long long)(b);                                                    \
        ++unit_checks;                                                                                                 \
        if (unit_a != unit_b) {                                                                                        \
            ++unit_failures;                                                                                           \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, unit_current, #a,     \
                    unit_a, #b, unit_b);                                                                               \
        }                                                                                                              \
    } while (0)

#define T_EQ_STR(a, b)                                                                                                 \
    do {                                                                                                               \
        const char *unit_a = (a), *unit_b = (b);                                                                       \
        ++unit_checks;                                                                                                 \
        if (unit_a == NULL || unit_b == NULL || strcmp(unit_a, unit_b) != 0) {                                         \
            ++unit_failures;                                                                                           \
            fprintf(stderr, "%s:%d: %s: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, unit_current, #a,       \
                    unit_a != NULL ? unit_a : "(null)", unit_b != NULL ? unit_b : "(null)");                           \
        }                                                                                                              \
    } while (0)

/* Equality of an iovec with a C string. */
#define T_EQ_IOV(v, s)                                                                                                 \
    do {                                                                                                               \
        tg_iovec_t unit_v = (v);                                                                                       \
        const char *unit_s = (s);                                                                                      \
        ++unit_checks;                                                                                                 \
        if (unit_v.len != strlen(unit_s) || memcmp(unit_v.base, unit_s, unit_v.len) != 0) {                            \
            ++unit_failures;                                                                                           \
            fprintf(stderr, "%s:%d: %s: %s is \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, unit_current, #v,     \
                    (int)unit_v.len, unit_v.base, unit_s);                                                             \
        }                                                                                                              \
    } while (0)

#define T_RUN(fn)                                                                                                      \
    do {                                                                                                               \
        unit_current = #fn;                                                                                            \
        fn();                                                                                                          \
    } while (0)

/* A deterministic pseudo-random sequence for property tests (a 64-bit LCG; the high bits are the good ones). */
static inline uint32_t unit_rand(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*state >> 32);
}

/* Removes a test's scratch directory (made with mkdtemp) and all it holds. Returns 0 on success. */
static inline int unit_rmtree(const char *dir)
{
    char cmd[512];
    if ((size_t)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) >= sizeof(cmd))
        return -1;
    return system(cmd) != 0 ? -1 : 0;
}

static inline int unit_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
    return unit_failures != 0 ? 1 : 0;
}

#endif
