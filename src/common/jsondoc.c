/*
 * Flat JSON documents over the original bytes (jsondoc.h).
 */
#include <stdlib.h>
#include "tollgate/error.h"
#include "tollgate/jsondoc.h"

typedef struct {
    tg_jdoc_t *d;
    uint32_t stack[TG_JSONSCAN_MAX_DEPTH + 1]; /* open containers */
    uint32_t last[TG_JSONSCAN_MAX_DEPTH + 1];  /* their last child so far, to link the next one */
    unsigned depth;
    bool failed;
} build_t;

static uint32_t add_node(build_t *b, const tg_jsonscan_value_t *v)
{
    tg_jdoc_t *d = b->d;
    if (d->num == d->cap) {
        uint32_t cap = d->cap == 0 ? 32 : d->cap * 2;
        d->nodes = tg_realloc(d->nodes, sizeof(*d->nodes) * cap);
        d->cap = cap;
    }
    uint32_t i = d->num++;
    tg_jnode_t *n = &d->nodes[i];
    n->type = (uint8_t)v->type;
    n->start = (uint32_t)v->start;
    n->end = (uint32_t)v->end;
    n->key = UINT32_MAX;
    n->key_len = 0;
    if (v->member_start != UINT64_MAX) {
        const char *p = d->text + v->member_start + 1, *q = p;
        while (*q != '"')
            q += *q == '\\' ? 2 : 1; /* the scanner checked the key: its closing quote is there */
        n->key = (uint32_t)(v->member_start + 1);
        n->key_len = (uint32_t)(q - p);
    }
    n->child = n->next = TG_JDOC_NONE;
    n->count = 0;
    if (b->depth != 0) {
        uint32_t parent = b->stack[b->depth - 1];
        uint32_t prev = b->last[b->depth - 1];
        if (prev == TG_JDOC_NONE)
            d->nodes[parent].child = i;
        else
            d->nodes[prev].next = i;
        b->last[b->depth - 1] = i;
        d->nodes[parent].count++;
    } else if (i != 0) {
        b->failed = true; /* a second top-level value */
    }
    return i;
}

static void on_value(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    build_t *b = data;
    if (v->type == TG_JSON_END) {
        if (b->depth == 0)
            return;
        uint32_t i = b->stack[--b->depth];
        b->d->nodes[i].end = (uint32_t)v->end;
        return;
    }
    uint32_t i = add_node(b, v);
    if (v->type == TG_JSON_OBJECT || v->type == TG_JSON_ARRAY) {
        /* the scanner reports containers only below MAX_DEPTH, so the stack always has room */
        b->stack[b->depth] = i;
        b->last[b->depth] = TG_JDOC_NONE;
        b->depth++;
    }
    (void)s;
}

int tg_jdoc_parse(tg_jdoc_t *d, const char *text, size_t len)
{
    static const tg_jsonscan_ops_t ops = {on_value, NULL};
    memset(d, 0, sizeof(*d));
    d->text = text;
    d->len = len;
    if (len == 0 || len >= UINT32_MAX) /* nothing is not one value */
        return -1;
    build_t b = {.d = d};
    tg_jsonscan_t s;
    tg_jsonscan_init(&s, &ops, &b);
    if (tg_jsonscan_feed(&s, text, len) != 0 || !tg_jsonscan_complete(&s) || b.failed || d->num == 0)
        return -1;
    return 0;
}

void tg_jdoc_free(tg_jdoc_t *d)
{
    free(d->nodes);
    d->nodes = NULL;
    d->num = d->cap = 0;
}

uint32_t tg_jdoc_get(const tg_jdoc_t *d, uint32_t obj, const char *key)
{
    if (obj == TG_JDOC_NONE || d->nodes[obj].type != TG_JSON_OBJECT)
        return TG_JDOC_NONE;
    size_t kl = strlen(key);
    for (uint32_t c = d->nodes[obj].child; c != TG_JDOC_NONE; c = d->nodes[c].next)
        if (d->nodes[c].key_len == kl && memcmp(d->text + d->nodes[c].key, key, kl) == 0)
            return c;
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

int tg_jdoc_str(const tg_jdoc_t *d, uint32_t i, tg_buf_t *out)
{
    if (i == TG_JDOC_NONE || d->nodes[i].type != TG_JSON_STRING)
        return -1;
    tg_iovec_t raw = tg_jdoc_str_raw(d, i);
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

bool tg_jdoc_str_eq(const tg_jdoc_t *d, uint32_t i, const char *s)
{
    if (i == TG_JDOC_NONE || d->nodes[i].type != TG_JSON_STRING)
        return false;
    tg_iovec_t raw = tg_jdoc_str_raw(d, i);
    size_t sl = strlen(s);
    if (memchr(raw.base, '\\', raw.len) == NULL)
        return tg_iov_eq(raw, s, sl);
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
    char tmp[64];
    if (raw.len >= sizeof(tmp))
        return -1;
    memcpy(tmp, raw.base, raw.len);
    tmp[raw.len] = '\0';
    *v = strtod(tmp, NULL);
    return 0;
}
