/*
 * Tollgate common toolkit: allocation that aborts on exhaustion, pointer+length strings, invariant checks.
 *
 * Nothing here knows about HTTP or providers. Allocation failure is not an error path: every size that input can
 * influence is capped well before the allocator could fail, so running out of memory is a bug and aborts with the
 * file and line (as h2o_mem_alloc and Redis zmalloc do).
 */
#ifndef TOLLGATE_COMMON_H
#define TOLLGATE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TG_VERSION "0.1.0"

#define TG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal (TG_STR(2) is "2"). */
#define TG_STR_(x) #x
#define TG_STR(x) TG_STR_(x)
#define TG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TG_MAX(a, b) ((a) > (b) ? (a) : (b))
/* A string literal as the (pointer, length) argument pair. */
#define TG_LIT(s) ("" s), (sizeof(s) - 1) /* "" s: only a string literal compiles */

#define TG_LIKELY(x) __builtin_expect(!!(x), 1)
#define TG_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Stays compiled in production (HAProxy BUG_ON): an invariant that does not hold is a bug, never an input error. */
#define TG_BUG_ON(cond)                                                                                               \
    do {                                                                                                               \
        if (TG_UNLIKELY(cond))                                                                                         \
            tg_fatal(__FILE__, __LINE__, "BUG_ON(" #cond ")");                                                        \
    } while (0)

/* Prints "file:line: msg" to stderr and aborts. */
_Noreturn void tg_fatal(const char *file, int line, const char *msg);

void *tg__malloc(size_t sz, const char *file, int line);
void *tg__calloc(size_t n, size_t sz, const char *file, int line);
void *tg__realloc(void *p, size_t sz, const char *file, int line);
char *tg__strndup(const char *s, size_t n, const char *file, int line);

/* malloc/calloc/realloc/strdup that abort with file and line instead of returning NULL. Free with free(). */
#define tg_malloc(sz) tg__malloc((sz), __FILE__, __LINE__)
#define tg_calloc(n, sz) tg__calloc((n), (sz), __FILE__, __LINE__)
#define tg_realloc(p, sz) tg__realloc((p), (sz), __FILE__, __LINE__)
#define tg_strndup(s, n) tg__strndup((s), (n), __FILE__, __LINE__)
#define tg_strdup(s) tg__strndup((s), strlen(s), __FILE__, __LINE__)

/* A borrowed byte range (h2o_iovec_t). The owner of `base` is always stated by whoever hands one out. */
typedef struct st_tg_iovec_t {
    const char *base;
    size_t len;
} tg_iovec_t;

static inline tg_iovec_t tg_iov(const char *base, size_t len)
{
    tg_iovec_t v = {base, len};
    return v;
}

static inline tg_iovec_t tg_iov_str(const char *s)
{
    return tg_iov(s, s != NULL ? strlen(s) : 0);
}

/* Case-sensitive equality of an iovec and a (pointer, length) pair. */
static inline bool tg_iov_eq(tg_iovec_t a, const char *b, size_t blen)
{
    return a.len == blen && (blen == 0 || memcmp(a.base, b, blen) == 0);
}

/* ASCII case-insensitive equality (header names, tokens). */
bool tg_mem_eq_ci(const char *a, const char *b, size_t n);
static inline bool tg_iov_eq_ci(tg_iovec_t a, const char *b, size_t blen)
{
    return a.len == blen && tg_mem_eq_ci(a.base, b, blen); /* the length inline: most names differ there */
}

/* True when `a` starts with (pointer, length) `p`, ASCII case-insensitively. */
bool tg_iov_prefix_ci(tg_iovec_t a, const char *p, size_t plen);

/* Splits *rest at the first `sep`: returns what comes before it and leaves *rest after it (or empty when there is
 * no `sep`, then *found is false). `found` may be NULL. */
static inline tg_iovec_t tg_iov_split(tg_iovec_t *rest, char sep, bool *found)
{
    const char *at = memchr(rest->base, sep, rest->len);
    tg_iovec_t head = tg_iov(rest->base, at != NULL ? (size_t)(at - rest->base) : rest->len);
    size_t skip = head.len + (at != NULL ? 1 : 0);
    rest->base += skip;
    rest->len -= skip;
    if (found != NULL)
        *found = at != NULL;
    return head;
}

/* Does `a` end with s[0, n)? */
static inline bool tg_iov_suffix(tg_iovec_t a, const char *s, size_t n)
{
    return a.len >= n && memcmp(a.base + a.len - n, s, n) == 0;
}

static inline char tg_tolower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * Parses a decimal unsigned integer filling all of [p, p+len) (no sign, no spaces). Returns 0 and sets *out, or -1
 * when the text is empty, has another character, or exceeds `max`.
 */
int tg_parse_u64(const char *p, size_t len, uint64_t max, uint64_t *out);

/* Trims ASCII spaces and tabs from both ends. */
tg_iovec_t tg_iov_trim(tg_iovec_t v);

/* Writes the `n` bytes at `p` as 2n lowercase hex digits and a NUL into `out` (2n + 1 bytes). */
void tg_hex_lower(const uint8_t *p, size_t n, char *out);

/*
 * Heads kept as text, one "name: value\n" line per header (the log recorder and the response cache store them so):
 * the next header from *p, which moves past its line; false at `end`. Lines without a colon are skipped.
 */
bool tg_headtext_next(const char **p, const char *end, tg_iovec_t *name, tg_iovec_t *value);

#endif
