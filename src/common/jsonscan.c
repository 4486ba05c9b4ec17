/*
 * The push JSON scanner (jsonscan.h): a byte-at-a-time state machine with a fast path through string contents,
 * which are most of what an LLM answer is made of.
 */
#include "tollgate/jsonscan.h"

enum {
    S_VALUE,     /* a value is expected (top level, after ':' or after ',' in an array) */
    S_ARR_FIRST, /* after '[': a value or ']' */
    S_OBJ_FIRST, /* after '{': a key or '}' */
    S_OBJ_KEY,   /* after ',' in an object: a key */
    S_KEY,       /* inside a key string */
    S_COLON,     /* after a key */
    S_AFTER,     /* after a value: ',' or the closing byte, or (top level) the next value */
    S_STRING,    /* inside a string value */
    S_ESC,       /* after a backslash (key or value) */
    S_UHEX,      /* reading \uXXXX digits */
    S_NUMBER,
    S_LITERAL,
    S_ERROR,
};

static const char *const literals[] = {"null", "false", "true"};

void tg_jsonscan_init(tg_jsonscan_t *s, const tg_jsonscan_ops_t *ops, void *data)
{
    s->ops = ops;
    s->data = data;
    tg_jsonscan_reset(s);
}

void tg_jsonscan_reset(tg_jsonscan_t *s)
{
    s->offset = 0;
    s->stop = false;
    s->depth = 0;
    s->state = S_VALUE;
    s->lit_pos = 0;
    s->esc_left = 0;
    s->in_key = 0;
    s->scalar_len = 0;
    s->scalar_truncated = false;
    s->hi_surrogate = 0;
}

bool tg_jsonscan_complete(const tg_jsonscan_t *s)
{
    return s->depth == 0 && (s->state == S_VALUE || s->state == S_AFTER);
}

bool tg_jsonscan_failed(const tg_jsonscan_t *s)
{
    return s->state == S_ERROR;
}

bool tg_json_mentions(tg_iovec_t text, const char *key)
{
    size_t n = strlen(key), len = text.len;
    const char *p = text.base;
    if (len < n + 2)
        return false;
    size_t last = len - n - 2, i = 0; /* the last place "key" can start */
#ifdef __SSE2__
    /* 16 places at a time: those where the key's first and last bytes are (quotes are too common in JSON to look
     * for), then the whole of each candidate */
    if (n != 0) {
        const __m128i first = _mm_set1_epi8(key[0]), final = _mm_set1_epi8(key[n - 1]);
        for (; i + 16 <= last + 1; i += 16) { /* (the loads end at p + i + n + 15 < len) */
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 1));
            __m128i z = _mm_loadu_si128((const __m128i *)(const void *)(p + i + n));
            unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(z, final)));
            for (; m != 0; m &= m - 1) {
                size_t at = i + (size_t)__builtin_ctz(m);
                if (p[at] == '"' && p[at + n + 1] == '"' && memcmp(p + at + 1, key, n) == 0)
                    return true;
            }
        }
    }
#endif
    for (; i <= last; ++i)
        if (p[i] == '"' && p[i + n + 1] == '"' && memcmp(p + i + 1, key, n) == 0)
            return true;
    return false;
}

bool tg_jsonscan_key_is(const tg_jsonscan_t *s, unsigned up, const char *key)
{
    if (up >= s->depth || s->depth > TG_JSONSCAN_MAX_DEPTH)
        return false;
    const tg_jsonscan_level_t *l = &s->levels[s->depth - 1 - up];
    if (l->is_array || l->key_truncated)
        return false;
    size_t n = strlen(key);
    return n == l->key_len && memcmp(l->key, key, n) == 0;
}

/* The level the current value belongs to, or NULL at the top level or beyond MAX_DEPTH. */
static tg_jsonscan_level_t *cur_level(tg_jsonscan_t *s)
{
    return s->depth != 0 && s->depth <= TG_JSONSCAN_MAX_DEPTH ? &s->levels[s->depth - 1] : NULL;
}

static bool reportable(const tg_jsonscan_t *s)
{
    return s->depth <= TG_JSONSCAN_MAX_DEPTH && s->ops->on_value != NULL;
}

static void report(tg_jsonscan_t *s, tg_json_type_t type, uint64_t start, uint64_t end)
{
    if (!reportable(s))
        return;
    tg_jsonscan_level_t *l = cur_level(s);
    tg_jsonscan_value_t v = {
        .type = type,
        .text = type <= TG_JSON_STRING ? s->scalar : NULL,
        .len = type <= TG_JSON_STRING ? s->scalar_len : 0,
        .truncated = type <= TG_JSON_STRING && s->scalar_truncated,
        .start = start,
        .end = end,
        .member_start = l != NULL && !l->is_array ? l->member_start : UINT64_MAX,
        .comma_before = l != NULL && !l->is_array ? l->comma_before : UINT64_MAX,
    };
    s->ops->on_value(s, &v, s->data);
}

static void scalar_add(tg_jsonscan_t *s, const char *p, size_t n)
{
    size_t room = sizeof(s->scalar) - s->scalar_len;
    if (n > room) {
        s->scalar_truncated = true;
        n = room;
    }
    memcpy(s->scalar + s->scalar_len, p, n);
    s->scalar_len += n;
}

/* Appends decoded string bytes to the key being read or the string value. */
static void str_add(tg_jsonscan_t *s, const char *p, size_t n)
{
    if (s->in_key) {
        tg_jsonscan_level_t *l = cur_level(s);
        if (l == NULL)
            return;
        size_t room = sizeof(l->key) - 1 - l->key_len;
        if (n > room) {
            l->key_truncated = true;
            n = room;
        }
        memcpy(l->key + l->key_len, p, n);
        l->key_len = (uint8_t)(l->key_len + n);
        l->key[l->key_len] = '\0';
        return;
    }
    if (!reportable(s))
        return;
    scalar_add(s, p, n);
    if (s->ops->on_string_part != NULL)
        s->ops->on_string_part(s, p, n, s->data);
}

static void add_codepoint(tg_jsonscan_t *s, uint32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (c >> 18));
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    str_add(s, u, n);
}

/* A value (or, for containers, its opening byte) starts at the current offset. */
static void value_begins(tg_jsonscan_t *s)
{
    s->value_start = s->offset;
    s->scalar_len = 0;
    s->scalar_truncated = false;
}

/* Called after a complete value: what the enclosing level expects next. */
static void value_done(tg_jsonscan_t *s)
{
    s->state = S_AFTER;
}

static int fail(tg_jsonscan_t *s)
{
    s->state = S_ERROR;
    return -1;
}

static int open_container(tg_jsonscan_t *s, bool is_array)
{
    if (s->depth == TG_JSONSCAN_HARD_DEPTH)
        return -1;
    /* containers whose own level cannot be recorded are not reported, nor is anything inside them */
    if (s->depth < TG_JSONSCAN_MAX_DEPTH)
        report(s, is_array ? TG_JSON_ARRAY : TG_JSON_OBJECT, s->offset, 0);
    if (is_array)
        s->kinds[s->depth / 64] |= UINT64_C(1) << (s->depth % 64);
    else
        s->kinds[s->depth / 64] &= ~(UINT64_C(1) << (s->depth % 64));
    s->depth++;
    tg_jsonscan_level_t *l = cur_level(s);
    if (l != NULL) {
        l->key[0] = '\0';
        l->key_len = 0;
        l->key_truncated = false;
        l->is_array = is_array;
        l->has_items = false;
        l->index = 0;
        l->start = s->offset;
        l->member_start = UINT64_MAX;
        l->comma_before = UINT64_MAX;
    }
    s->state = is_array ? S_ARR_FIRST : S_OBJ_FIRST;
    return 0;
}

static void close_container(tg_jsonscan_t *s)
{
    tg_jsonscan_level_t *l = cur_level(s);
    uint64_t start = l != NULL ? l->start : 0;
    s->depth--;
    if (l != NULL)
        report(s, TG_JSON_END, start, s->offset + 1);
    value_done(s);
}

static bool in_array(const tg_jsonscan_t *s)
{
    unsigned d = s->depth - 1;
    return (s->kinds[d / 64] >> (d % 64)) & 1;
}

/* Starts a value at byte c. Returns 0, or -1 when c cannot start a value. */
static int start_value(tg_jsonscan_t *s, char c)
{
    value_begins(s);
    switch (c) {
    case '{':
        return open_container(s, false);
    case '[':
        return open_container(s, true);
    case '"':
        s->in_key = 0;
        s->hi_surrogate = 0;
        s->state = S_STRING;
        return 0;
    case 'n':
    case 'f':
    case 't':
        s->lit_pos = 1;
        s->scalar[0] = c;
        s->scalar_len = 1;
        s->state = S_LITERAL;
        return 0;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            s->scalar[0] = c;
            s->scalar_len = 1;
            s->state = S_NUMBER;
            return 0;
        }
        return -1;
    }
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tg_jsonscan_feed(tg_jsonscan_t *s, const char *p, size_t n)
{
    if (n == 0) /* p may be NULL then, and NULL + 0 is undefined */
        return s->state == S_ERROR ? -1 : 0;
    const char *end = p + n;
    while (p < end && !s->stop) {
        char c = *p;
        switch (s->state) {
        case S_ERROR:
            return -1;

        case S_STRING:
        case S_KEY: {
            /* fast path: the run up to a quote, a backslash or a control byte */
            const char *q = tg_json_string_run(p, end);
            if (s->hi_surrogate != 0 && (q != p || c == '"')) { /* a lone high surrogate */
                s->hi_surrogate = 0;
                add_codepoint(s, 0xFFFD);
            }
            if (q != p) {
                str_add(s, p, (size_t)(q - p));
                s->offset += (uint64_t)(q - p);
                p = q;
                continue;
            }
            if (c == '"') {
                if (s->state == S_KEY) {
                    s->state = S_COLON;
                } else {
                    report(s, TG_JSON_STRING, s->value_start, s->offset + 1);
                    value_done(s);
                }
            } else if (c == '\\') {
                s->state = S_ESC;
            } else {
                return fail(s); /* a raw control byte */
            }
            break;
        }

        case S_ESC: {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *f = c != '\0' ? strchr(from, c) : NULL;
            if (f != NULL) {
                if (s->hi_surrogate != 0) {
                    s->hi_surrogate = 0;
                    add_codepoint(s, 0xFFFD);
                }
                str_add(s, &to[f - from], 1);
                s->state = s->in_key ? S_KEY : S_STRING;
            } else if (c == 'u') {
                s->esc_left = 4;
                s->esc_code = 0;
                s->state = S_UHEX;
            } else {
                return fail(s);
            }
            break;
        }

        case S_UHEX: {
            int h = hexval(c);
            if (h < 0)
                return fail(s);
            s->esc_code = (s->esc_code << 4) | (uint32_t)h;
            if (--s->esc_left == 0) {
                uint32_t code = s->esc_code;
                if (code >= 0xD800 && code <= 0xDBFF) {
                    if (s->hi_surrogate != 0)
                        add_codepoint(s, 0xFFFD);
                    s->hi_surrogate = code; /* wait for the low half */
                } else if (code >= 0xDC00 && code <= 0xDFFF) {
                    if (s->hi_surrogate != 0)
                        add_codepoint(s, 0x10000 + ((s->hi_surrogate - 0xD800) << 10) + (code - 0xDC00));
                    else
                        add_codepoint(s, 0xFFFD);
                    s->hi_surrogate = 0;
                } else {
                    if (s->hi_surrogate != 0)
                        add_codepoint(s, 0xFFFD);
                    s->hi_surrogate = 0;
                    add_codepoint(s, code);
                }
                s->state = s->in_key ? S_KEY : S_STRING;
            }
            break;
        }

        case S_NUMBER: {
            /* the run of number bytes in one go */
            const char *q = p;
            while (q < end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-'))
                ++q;
            if (q != p) {
                scalar_add(s, p, (size_t)(q - p));
                s->offset += (uint64_t)(q - p);
                p = q;
                continue;
            }
            report(s, TG_JSON_NUMBER, s->value_start, s->offset);
            value_done(s);
            continue; /* this byte belongs to what follows the number */
        }

        case S_LITERAL: {
            const char *lit = literals[s->scalar[0] == 'n' ? 0 : s->scalar[0] == 'f' ? 1 : 2];
            if (c != lit[s->lit_pos])
                return fail(s);
            s->scalar[s->lit_pos++] = c;
            s->scalar_len = s->lit_pos;
            if (lit[s->lit_pos] == '\0') {
                report(s, lit[0] == 'n' ? TG_JSON_NULL : lit[0] == 'f' ? TG_JSON_FALSE : TG_JSON_TRUE, s->value_start,
                       s->offset + 1);
                value_done(s);
            }
            break;
        }

        case S_VALUE:
            if (is_ws(c))
                break;
            if (start_value(s, c) != 0)
                return fail(s);
            break;

        case S_ARR_FIRST:
            if (is_ws(c))
                break;
            if (c == ']') {
                close_container(s);
                break;
            }
            if (start_value(s, c) != 0)
                return fail(s);
            break;

        case S_OBJ_FIRST:
        case S_OBJ_KEY:
            if (is_ws(c))
                break;
            if (c == '}' && s->state == S_OBJ_FIRST) {
                close_container(s);
                break;
            }
            if (c != '"')
                return fail(s);
            {
                tg_jsonscan_level_t *l = cur_level(s);
                if (l != NULL) {
                    l->key_len = 0;
                    l->key[0] = '\0';
                    l->key_truncated = false;
                    l->member_start = s->offset;
                }
            }
            s->in_key = 1;
            s->hi_surrogate = 0;
            s->state = S_KEY;
            break;

        case S_COLON:
            if (is_ws(c))
                break;
            if (c != ':')
                return fail(s);
            s->in_key = 0;
            s->state = S_VALUE;
            break;

        case S_AFTER:
            if (is_ws(c))
                break;
            if (s->depth == 0) { /* the next top-level value */
                if (start_value(s, c) != 0)
                    return fail(s);
                break;
            }
            if (c == ',') {
                tg_jsonscan_level_t *l = cur_level(s);
                if (in_array(s)) {
                    if (l != NULL)
                        l->index++;
                    s->state = S_VALUE;
                } else {
                    if (l != NULL)
                        l->comma_before = s->offset;
                    s->state = S_OBJ_KEY;
                }
                break;
            }
            if (c == (in_array(s) ? ']' : '}')) {
                close_container(s);
                break;
            }
            return fail(s);
        }
        ++p;
        ++s->offset;
    }
    return 0;
}
