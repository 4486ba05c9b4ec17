/*
 * Capped growable buffer. Growth doubles from 256 bytes but never past the cap, so a buffer allowed 32 MiB that
 * receives 40 KiB holds at most 64 KiB.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "tollgate/buf.h"
#include "tollgate/error.h"

int tg_buf_reserve(tg_buf_t *b, size_t n)
{
    if (n > b->max - b->len) {
        b->overflowed = true;
        return TG_E_TOOBIG;
    }
    size_t need = b->len + n;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap != 0 ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    /* one byte beyond max is allowed so that tg_buf_cstr never needs to grow past it */
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    if (ncap < need)
        ncap = need;
    b->base = tg_realloc(b->base, ncap);
    b->cap = ncap;
    return 0;
}

int tg_buf_append_grow(tg_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int r = tg_buf_reserve(b, n);
    if (r != 0)
        return r;
    memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

int tg_buf_append_int(tg_buf_t *b, int64_t v)
{
    char d[24], *p = d + sizeof(d);
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    return tg_buf_append(b, p, (size_t)(d + sizeof(d) - p));
}

int tg_buf_appendf(tg_buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return TG_E_IO;
    if ((size_t)n < sizeof(small))
        return tg_buf_append(b, small, (size_t)n);
    int r = tg_buf_reserve(b, (size_t)n + 1);
    if (r != 0)
        return r;
    va_start(ap, fmt);
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Bytes each byte takes inside a JSON string literal: 1, 2 for \" \\ \n \r \t, 6 for other control bytes (\u00XX). */
static const unsigned char json_esc_len[256] = {
    6, 6, 6, 6, 6, 6, 6, 6, 6, 2, 2, 6, 6, 2, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

size_t tg_json_escaped_len(const char *s, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i != n; ++i)
        len += json_esc_len[(unsigned char)s[i]];
    return len;
}

char *tg_json_escape_into(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i != n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (json_esc_len[c] == 1) {
            *out++ = (char)c;
        } else if (json_esc_len[c] == 2) {
            *out++ = '\\';
            *out++ = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : (char)c;
        } else {
            memcpy(out, "\\u00", 4);
            out[4] = hex[c >> 4];
            out[5] = hex[c & 15];
            out += 6;
        }
    }
    return out;
}

int tg_buf_append_json_escaped(tg_buf_t *b, const char *s, size_t n)
{
    size_t len = tg_json_escaped_len(s, n);
    int r = tg_buf_reserve(b, len);
    if (r != 0)
        return r;
    tg_json_escape_into(b->base + b->len, s, n);
    b->len += len;
    return 0;
}

void tg_buf_consume(tg_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}

void tg_buf_free(tg_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
    b->overflowed = false;
}

char *tg_buf_cstr(tg_buf_t *b)
{
    if (b->len + 1 > b->cap) {
        size_t ncap = b->len + 1;
        b->base = tg_realloc(b->base, ncap);
        b->cap = ncap;
    }
    b->base[b->len] = '\0';
    return b->base;
}
