/*
 * Growable byte buffer with a hard cap (curl docs/internals/DYNBUF.md).
 *
 * Every buffer that input can grow carries the cap that input may reach; an append past it fails with TG_E_TOOBIG
 * and leaves the buffer as it was, so the caller can answer with the right 4xx or 5xx instead of growing without
 * bound. The buffer owns `base`; tg_buf_free releases it and makes the buffer empty and reusable.
 */
#ifndef TOLLGATE_BUF_H
#define TOLLGATE_BUF_H

#include "tollgate/common.h"

typedef struct st_tg_buf_t {
    char *base;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
    bool overflowed; /* an append or reserve was refused since init, reset or free (sticky: a writer of many
                        pieces checks once at the end that nothing was lost) */
} tg_buf_t;

/* An empty buffer that may grow to `max` bytes. Allocates nothing. */
static inline void tg_buf_init(tg_buf_t *b, size_t max)
{
    b->base = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->overflowed = false;
}

/* Ensures room for `n` more bytes; returns 0 or TG_E_TOOBIG (len + n > max). */
int tg_buf_reserve(tg_buf_t *b, size_t n);
/* Appends; 0 or TG_E_TOOBIG (nothing appended). Inline while the bytes fit the allocation: translators append many
 * short pieces, and the call was a fifth of what a translated request cost. */
int tg_buf_append_grow(tg_buf_t *b, const void *p, size_t n);
static inline int tg_buf_append(tg_buf_t *b, const void *p, size_t n)
{
    if (n <= b->cap - b->len && n <= b->max - b->len) {
        if (n != 0)
            memcpy(b->base + b->len, p, n);
        b->len += n;
        return 0;
    }
    return tg_buf_append_grow(b, p, n);
}
static inline int tg_buf_append_str(tg_buf_t *b, const char *s)
{
    return tg_buf_append(b, s, strlen(s));
}
/* A whole number in decimal, without printf; 0 or TG_E_TOOBIG. */
int tg_buf_append_int(tg_buf_t *b, int64_t v);
/* printf-style append; 0 or TG_E_TOOBIG. */
int tg_buf_appendf(tg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` as the body of a JSON string literal (without the quotes). */
int tg_buf_append_json_escaped(tg_buf_t *b, const char *s, size_t n);
/* The length of s[0..n) escaped for a JSON string literal, and the escaping itself into `out` (which has room for
 * that length); returns the end of what was written. Bytes >= 0x80 are copied as they are. */
size_t tg_json_escaped_len(const char *s, size_t n);
char *tg_json_escape_into(char *out, const char *s, size_t n);
/* Drops the first `n` bytes. */
void tg_buf_consume(tg_buf_t *b, size_t n);
/* Empties the buffer but keeps its allocation. */
static inline void tg_buf_reset(tg_buf_t *b)
{
    b->len = 0;
    b->overflowed = false;
}
/* Releases the allocation; the buffer is empty and usable again with the same cap. */
void tg_buf_free(tg_buf_t *b);
/* NUL-terminates without counting the NUL in len; returns base. 0-length buffers get an allocation too. */
char *tg_buf_cstr(tg_buf_t *b);

#endif
