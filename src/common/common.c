/*
 * Allocation wrappers, small string helpers and the error table. Out-of-memory aborts: input-controlled sizes are
 * capped long before the allocator could fail, so reaching the abort is a bug, never an input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/common.h"
#include "tollgate/error.h"

_Noreturn void tg_fatal(const char *file, int line, const char *msg)
{
    fprintf(stderr, "tollgate: fatal: %s:%d: %s\n", file, line, msg);
    fflush(stderr);
    abort();
}

void *tg__malloc(size_t sz, const char *file, int line)
{
    void *p = malloc(sz != 0 ? sz : 1);
    if (p == NULL)
        tg_fatal(file, line, "out of memory");
    return p;
}

void *tg__calloc(size_t n, size_t sz, const char *file, int line)
{
    void *p = calloc(n != 0 ? n : 1, sz != 0 ? sz : 1);
    if (p == NULL)
        tg_fatal(file, line, "out of memory");
    return p;
}

void *tg__realloc(void *p, size_t sz, const char *file, int line)
{
    void *q = realloc(p, sz != 0 ? sz : 1);
    if (q == NULL)
        tg_fatal(file, line, "out of memory");
    return q;
}

char *tg__strndup(const char *s, size_t n, const char *file, int line)
{
    char *p = tg__malloc(n + 1, file, line);
    if (n != 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Eight bytes with ASCII A-Z turned to a-z, the others as they are: per byte, bit 7 of h + 0x3f is set from 'A'
 * (0x41) up and bit 7 of h + 0x25 from '[' (0x5b) up, h being the byte's low seven bits (so no sum carries into the
 * next byte); a byte with bit 7 set is no letter. The upper-case bytes' 0x80, shifted to 0x20, is the case bit. */
static inline uint64_t lower8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u;
    uint64_t h = w & 0x7f * ones;
    uint64_t upper = (h + 0x3f * ones) & ~(h + 0x25 * ones) & ~w & 0x80 * ones;
    return w | upper >> 2;
}

static inline uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A word at a time: header names are compared for every header of every request (callgrind, session 29: the byte
 * loop was ~1,700 instructions of a logged request's ~41,500). A length that is not a multiple of 8 ends with the
 * last eight bytes, overlapping what was compared. */
bool tg_mem_eq_ci(const char *a, const char *b, size_t n)
{
    if (n < 8) {
        for (size_t i = 0; i != n; ++i)
            if (tg_tolower(a[i]) != tg_tolower(b[i]))
                return false;
        return true;
    }
    for (size_t i = 0;; i += 8) {
        if (i > n - 8)
            i = n - 8;
        uint64_t x = load8(a + i), y = load8(b + i);
        if (x != y && lower8(x) != lower8(y))
            return false;
        if (i == n - 8)
            return true;
    }
}

bool tg_iov_prefix_ci(tg_iovec_t a, const char *p, size_t plen)
{
    return a.len >= plen && tg_iov_eq_ci(tg_iov(a.base, plen), p, plen);
}

int tg_parse_u64(const char *p, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

tg_iovec_t tg_iov_trim(tg_iovec_t v)
{
    while (v.len != 0 && (v.base[0] == ' ' || v.base[0] == '\t')) {
        ++v.base;
        --v.len;
    }
    while (v.len != 0 && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        --v.len;
    return v;
}

void tg_hex_lower(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i != n; ++i) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static const struct {
    const char *name;
    int status;
    int code;
    const char *msg;
} errtab[] = {
#define TG_ERR_ROW(name, status, code, msg) {#name, status, code, msg},
    TG_ERRNO_MAP(TG_ERR_ROW)
#undef TG_ERR_ROW
};

static int errindex(int err)
{
    int i = err - TG_E__FIRST - 1;
    return (i >= 0 && i < (int)TG_ARRAY_SIZE(errtab)) ? i : -1;
}

const char *tg_strerror(int err)
{
    int i = errindex(err);
    return i >= 0 ? errtab[i].msg : "unknown error";
}

const char *tg_err_name(int err)
{
    int i = errindex(err);
    return i >= 0 ? errtab[i].name : "UNKNOWN";
}

int tg_err_http_status(int err)
{
    int i = errindex(err);
    return (i >= 0 && errtab[i].status != 0) ? errtab[i].status : 500;
}

int tg_err_gateway_code(int err)
{
    int i = errindex(err);
    return (i >= 0 && errtab[i].code != 0) ? errtab[i].code : 2000;
}

bool tg_headtext_next(const char **p, const char *end, tg_iovec_t *name, tg_iovec_t *value)
{
    while (*p < end) {
        const char *line = *p;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        *p = eol < end ? eol + 1 : end;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon == NULL)
            continue;
        const char *v = colon + 1 < eol && colon[1] == ' ' ? colon + 2 : colon + 1;
        *name = tg_iov(line, (size_t)(colon - line));
        *value = tg_iov(v, (size_t)(eol - v));
        return true;
    }
    return false;
}
