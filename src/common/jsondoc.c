/*
 * Flat JSON documents over the original bytes (jsondoc.h).
 */
#include <stdlib.h>
#include "tollgate/error.h"
#include "tollgate/jsondoc.h"

/*
 * The parser: the whole text is in memory, so it is a plain loop over it with an explicit stack of open containers
 * (no recursion), strict JSON (RFC 8259: numbers, escapes, no control bytes in strings, nothing after the value).
 * It does not check UTF-8: bytes >= 0x80 inside strings are taken as they are, as the push scanner does.
 */

#define MAX_DEPTH TG_JSONSCAN_HARD_DEPTH

typedef struct {
    tg_jdoc_t *d;
    const char *p, *end;
    uint32_t stack[MAX_DEPTH]; /* open containers */
    uint32_t last[MAX_DEPTH];  /* their last child so far */
    unsigned depth;
} parse_t;

static __attribute__((noinline)) int grow(tg_jdoc_t *d)
{
    if (d->cap >= TG_JDOC_MAX_NODES)
        return -1;
    uint32_t cap = d->cap * 2;
    if (d->nodes == d->inline_nodes) {
        d->nodes = tg_malloc(sizeof(*d->nodes) * cap);
        memcpy(d->nodes, d->inline_nodes, sizeof(d->inline_nodes));
    } else {
        d->nodes = tg_realloc(d->nodes, sizeof(*d->nodes) * cap);
    }
    d->cap = cap;
    return 0;
}

static inline __attribute__((always_inline)) uint32_t new_node(parse_t *ps, tg_json_type_t type, const char *start,
                                                               uint32_t key, uint32_t key_len)
{
    tg_jdoc_t *d = ps->d;
    if (d->num == d->cap && grow(d) != 0)
        return TG_JDOC_NONE; /* the caller fails the parse */
    uint32_t i = d->num++;
    tg_jnode_t *n = &d->nodes[i];
    n->type = (uint8_t)type;
    n->start = (uint32_t)(start - d->text);
    n->end = 0;
    n->key = key;
    n->key_len = key_len;
    n->child = n->next = TG_JDOC_NONE;
    n->count = 0;
    if (ps->depth != 0) {
        unsigned top = ps->depth - 1;
        if (ps->last[top] == TG_JDOC_NONE)
            d->nodes[ps->stack[top]].child = i;
        else
            d->nodes[ps->last[top]].next = i;
        ps->last[top] = i;
        d->nodes[ps->stack[top]].count++;
    }
    return i;
}

static inline void skip_ws(parse_t *ps)
{
    if (ps->p < ps->end && (unsigned char)*ps->p > ' ')
        return; /* compact JSON: most calls */
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ++ps->p;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* At an opening quote: moves past the closing one. -1 when the string is not valid. */
static int scan_string(parse_t *ps)
{
    const char *p = ps->p + 1, *end = ps->end;
    for (;;) {
        p = tg_json_string_run(p, end);
        if (p == end || (unsigned char)*p < 0x20)
            return -1;
        if (*p == '"')
            break;
        if (end - p < 2)
            return -1;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u':
            if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
                return -1;
            p += 6;
            break;
        default:
            return -1;
        }
    }
    ps->p = p + 1;
    return 0;
}

static int scan_number(parse_t *ps)
{
    const char *p = ps->p, *end = ps->end;
    if (p < end && *p == '-')
        ++p;
    if (p == end || *p < '0' || *p > '9')
        return -1;
    if (*p == '0')
        ++p;
    else
        while (p < end && *p >= '0' && *p <= '9')
            ++p;
    if (p < end && *p == '.') {
        ++p;
        if (p == end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9')
            ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < end && (*p == '+' || *p == '-'))
            ++p;
        if (p == end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9')
            ++p;
    }
    ps->p = p;
    return 0;
}

static int scan_literal(parse_t *ps, const char *lit, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return -1;
    ps->p += n;
    return 0;
}

/* One value at ps->p (white space skipped before it), with its member key if any. Containers are opened (pushed)
 * and closed by the caller's loop. */
static int value(parse_t *ps, uint32_t key, uint32_t key_len)
{
    skip_ws(ps);
    if (ps->p == ps->end)
        return -1;
    const char *start = ps->p;
    tg_json_type_t type;
    switch (*start) {
    case '{':
    case '[':
        if (ps->depth == MAX_DEPTH)
            return -1;
        type = *start == '{' ? TG_JSON_OBJECT : TG_JSON_ARRAY;
        {
            uint32_t i = new_node(ps, type, start, key, key_len);
            if (i == TG_JDOC_NONE)
                return -1;
            ps->stack[ps->depth] = i;
            ps->last[ps->depth] = TG_JDOC_NONE;
            ps->depth++;
        }
        ps->p++;
        return 0;
    case '"':
        type = TG_JSON_STRING;
        if (scan_string(ps) != 0)
            return -1;
        break;
    case 't':
        type = TG_JSON_TRUE;
        if (scan_literal(ps, "true", 4) != 0)
            return -1;
        break;
    case 'f':
        type = TG_JSON_FALSE;
        if (scan_literal(ps, "false", 5) != 0)
            return -1;
        break;
    case 'n':
        type = TG_JSON_NULL;
        if (scan_literal(ps, "null", 4) != 0)
            return -1;
        break;
    default:
        type = TG_JSON_NUMBER;
        if (scan_number(ps) != 0)
            return -1;
        break;
    }
    uint32_t i = new_node(ps, type, start, key, key_len);
    if (i == TG_JDOC_NONE)
        return -1;
    ps->d->nodes[i].end = (uint32_t)(ps->p - ps->d->text);
    return 0;
}

static int parse(parse_t *ps)
{
    if (value(ps, UINT32_MAX, 0) != 0)
        return -1;
    while (ps->depth != 0) {
        unsigned top = ps->depth - 1;
        tg_jnode_t *c = &ps->d->nodes[ps->stack[top]];
        bool is_obj = c->type == TG_JSON_OBJECT;
        skip_ws(ps);
        if (ps->p == ps->end)
            return -1;
        char ch = *ps->p;
        if (ch == (is_obj ? '}' : ']')) { /* the end (after a value, or of an empty container) */
            ps->p++;
            c->end = (uint32_t)(ps->p - ps->d->text);
            ps->depth--;
            continue;
        }
        if (c->count != 0) {
            if (ch != ',')
                return -1;
            ps->p++;
            skip_ws(ps);
        }
        if (!is_obj) {
            if (value(ps, UINT32_MAX, 0) != 0)
                return -1;
            continue;
        }
        if (ps->p == ps->end || *ps->p != '"')
            return -1;
        const char *k = ps->p;
        if (scan_string(ps) != 0)
            return -1;
        uint32_t key = (uint32_t)(k + 1 - ps->d->text), key_len = (uint32_t)(ps->p - k - 2);
        skip_ws(ps);
        if (ps->p == ps->end || *ps->p != ':')
            return -1;
        ps->p++;
        if (value(ps, key, key_len) != 0)
            return -1;
    }
    skip_ws(ps);
    return ps->p == ps->end ? 0 : -1;
}

int tg_jdoc_parse(tg_jdoc_t *d, const char *text, size_t len)
{
    d->text = text;
    d->len = len;
    d->nodes = d->inline_nodes;
    d->num = 0;
    d->cap = TG_JDOC_INLINE_NODES;
    if (len == 0 || len >= UINT32_MAX) /* nothing is not one value */
        return -1;
    parse_t ps; /* 4 KiB of stack for the open containers */
    ps.d = d;
    ps.p = text;
    ps.end = text + len;
    ps.depth = 0;
    return parse(&ps);
}

void tg_jdoc_free(tg_jdoc_t *d)
{
    if (d->nodes != d->inline_nodes)
        free(d->nodes);
    d->nodes = d->inline_nodes;
    d->num = 0;
    d->cap = TG_JDOC_INLINE_NODES;
}

uint32_t tg_jdoc_get_n(const tg_jdoc_t *d, uint32_t obj, const char *key, size_t kl)
{
    if (obj == TG_JDOC_NONE || d->nodes[obj].type != TG_JSON_OBJECT)
        return TG_JDOC_NONE;
    for (uint32_t c = d->nodes[obj].child; c != TG_JDOC_NONE; c = d->nodes[c].next) {
        const tg_jnode_t *n = &d->nodes[c];
        /* the first byte before the call: most members differ there */
        if (n->key_len == kl && (kl == 0 || (d->text[n->key] == key[0] && memcmp(d->text + n->key, key, kl) == 0)))
            return c;
    }
    return TG_JDOC_NONE;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int tg_jdoc_unescape(tg_iovec_t raw, tg_buf_t *out)
{
    if (memchr(raw.base, '\\', raw.len) == NULL)
        return tg_buf_append(out, raw.base, raw.len);
    if (tg_buf_reserve(out, raw.len) != 0) /* unescaped is never longer */
        return TG_E_TOOBIG;
    char *o = out->base + out->len;
    const char *p = raw.base, *end = raw.base + raw.len;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char c = p[1];
        p += 2;
        switch (c) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp = hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = hex4(p + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000)
                cp = 0xFFFD; /* a lone surrogate */
            o += put_utf8(o, cp); /* at most 4 bytes from at least 6 read */
            break;
        }
        default: *o++ = c; break; /* " \ / */
        }
    }
    out->len = (size_t)(o - out->base);
    return 0;
}

int tg_jdoc_str(const tg_jdoc_t *d, uint32_t i, tg_buf_t *out)
{
    if (i == TG_JDOC_NONE || d->nodes[i].type != TG_JSON_STRING)
        return -1;
    return tg_jdoc_unescape(tg_jdoc_str_raw(d, i), out);
}

bool tg_jdoc_str_eq_n(const tg_jdoc_t *d, uint32_t i, const char *s, size_t sl)
{
    if (i == TG_JDOC_NONE || d->nodes[i].type != TG_JSON_STRING)
        return false;
    tg_iovec_t raw = tg_jdoc_str_raw(d, i);
    if (raw.len == sl && memcmp(raw.base, s, sl) == 0)
        return true; /* written without escapes (the usual case) */
    if (raw.len <= sl || memchr(raw.base, '\\', raw.len) == NULL)
        return false; /* escapes only make the raw text longer */
    if (raw.len > 4 * sl + 64)
        return false;
    tg_buf_t b;
    tg_buf_init(&b, raw.len + 1);
    bool eq = tg_jdoc_str(d, i, &b) == 0 && b.len == sl && memcmp(b.base, s, sl) == 0;
    tg_buf_free(&b);
    return eq;
}

int tg_jdoc_int(const tg_jdoc_t *d, uint32_t i, int64_t *v)
{
    if (i == TG_JDOC_NONE || d->nodes[i].type != TG_JSON_NUMBER)
        return -1;
    tg_iovec_t raw = tg_jdoc_raw(d, i);
    const char *p = raw.base, *end = p + raw.len;
    bool neg = p < end && *p == '-';
    p += neg;
    if (p == end || end - p > 18)
        return -1;
    int64_t x = 0;
    for (; p < end; ++p) {
        if (*p < '0' || *p > '9')
            return -1; /* a fraction or an exponent */
        x = x * 10 + (*p - '0');
    }
    *v = neg ? -x : x;
    return 0;
}

int tg_jdoc_number(const tg_jdoc_t *d, uint32_t i, double *v)
{
    if (i == TG_JDOC_NONE || d->nodes[i].type != TG_JSON_NUMBER)
        return -1;
    tg_iovec_t raw = tg_jdoc_raw(d, i);
    /* the common short form (-)digits(.digits), 15 digits at most: the digits as an integer over a power of ten,
     * both exact in a double, so the one division is correctly rounded, as strtod is */
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    const char *p = raw.base, *end = p + raw.len;
    bool neg = p < end && *p == '-';
    p += neg;
    uint64_t m = 0;
    unsigned digits = 0, frac = 0;
    bool dot = false, plain = true;
    for (; p < end && plain; ++p) {
        if (*p >= '0' && *p <= '9') {
            m = m * 10 + (uint64_t)(*p - '0');
            digits++;
            frac += dot;
        } else if (*p == '.' && !dot) {
            dot = true;
        } else {
            plain = false; /* an exponent */
        }
    }
    if (plain && digits != 0 && digits <= 15) {
        double x = (double)m / pow10[frac];
        *v = neg ? -x : x;
        return 0;
    }
    char tmp[64];
    if (raw.len >= sizeof(tmp))
        return -1;
    memcpy(tmp, raw.base, raw.len);
    tmp[raw.len] = '\0';
    *v = strtod(tmp, NULL);
    return 0;
}
