/*
 * Usage extraction (usage.h): framing (SSE, AWS event stream, base64) in front of one jsonscan callback that
 * matches (parent key, key) pairs against the fields every provider uses.
 */
#include <stdlib.h>
#include "tollgate/usage.h"

typedef struct {
    const char *parent, *key; /* at most 32 rules (doc_key_t.rules) */
    int field;
    size_t parent_len, key_len;
} field_rule_t;

#define RULE(parent, key, field) {parent, key, field, sizeof(parent) - 1, sizeof(key) - 1}

/* The key of level `i` when it is a plain object key (not an array element, not truncated), else NULL. */
static inline const tg_jsonscan_level_t *plain_key(const tg_jsonscan_t *s, unsigned i)
{
    const tg_jsonscan_level_t *l = &s->levels[i];
    return l->is_array || l->key_truncated ? NULL : l;
}

static inline bool key_eq(const tg_jsonscan_level_t *l, const char *k, size_t n)
{
    return l->key_len == n && memcmp(l->key, k, n) == 0;
}

static const field_rule_t rules[] = {
    RULE("usage", "prompt_tokens", TG_U_PROMPT),
    RULE("usage", "completion_tokens", TG_U_COMPLETION),
    RULE("prompt_tokens_details", "cached_tokens", TG_U_DETAILS_CACHED),
    RULE("input_tokens_details", "cached_tokens", TG_U_DETAILS_CACHED),
    RULE("usage", "prompt_cache_hit_tokens", TG_U_DS_CACHE_HIT), /* DeepSeek's name for the cached part */
    RULE("usage", "input_tokens", TG_U_INPUT),
    RULE("usage", "output_tokens", TG_U_OUTPUT),
    RULE("usage", "cache_read_input_tokens", TG_U_CACHE_READ),
    RULE("usage", "cache_creation_input_tokens", TG_U_CACHE_CREATION),
    RULE("usageMetadata", "promptTokenCount", TG_U_G_PROMPT),
    RULE("usageMetadata", "candidatesTokenCount", TG_U_G_CANDIDATES),
    RULE("usageMetadata", "thoughtsTokenCount", TG_U_G_THOUGHTS),
    RULE("usageMetadata", "cachedContentTokenCount", TG_U_G_CACHED),
    RULE("billed_units", "input_tokens", TG_U_CO_INPUT),
    RULE("billed_units", "output_tokens", TG_U_CO_OUTPUT),
    RULE("usage", "inputTokens", TG_U_BR_INPUT),
    RULE("usage", "outputTokens", TG_U_BR_OUTPUT),
    RULE("usage", "cacheReadInputTokens", TG_U_BR_CACHE_READ),
    RULE("usage", "cacheWriteInputTokens", TG_U_BR_CACHE_WRITE),
    RULE("amazon-bedrock-invocationMetrics", "inputTokenCount", TG_U_BR_INPUT),
    RULE("amazon-bedrock-invocationMetrics", "outputTokenCount", TG_U_BR_OUTPUT),
    RULE("amazon-bedrock-invocationMetrics", "cacheReadInputTokenCount", TG_U_BR_CACHE_READ),
    RULE("amazon-bedrock-invocationMetrics", "cacheWriteInputTokenCount", TG_U_BR_CACHE_WRITE),
};

_Static_assert(TG_ARRAY_SIZE(rules) <= 32, "doc_key_t.rules holds a bit per rule");

/* A token count: a non-negative integer (a fraction or exponent is refused rather than guessed at). */
static bool parse_count(const char *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i != n; ++i) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

static void take_model(tg_usage_parser_t *u, const tg_jsonscan_value_t *v)
{
    if (u->model[0] != '\0' || v->truncated || v->len == 0 || v->len >= sizeof(u->model))
        return;
    memcpy(u->model, v->text, v->len);
    u->model[v->len] = '\0';
}

/* Called for every value of every answer, so the common case (a value that is none of ours) leaves early: only
 * numbers under one of the few parent keys, and strings named model, go further. */
static void on_value(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data)
{
    tg_usage_parser_t *u = data;
    unsigned depth = tg_jsonscan_depth(s);
    if (depth == 0 || depth > TG_JSONSCAN_MAX_DEPTH)
        return;
    if (v->type == TG_JSON_STRING) {
        const tg_jsonscan_level_t *k = plain_key(s, depth - 1);
        if (u->model[0] != '\0' || k == NULL || depth > 2 || (k->key[0] != 'm'))
            return;
        if (depth == 1 && (key_eq(k, TG_LIT("model")) || key_eq(k, TG_LIT("modelVersion"))))
            take_model(u, v);
        else if (depth == 2 && key_eq(k, TG_LIT("model")) &&
                 (tg_jsonscan_key_is(s, 1, "message") || tg_jsonscan_key_is(s, 1, "response")))
            take_model(u, v);
        return;
    }
    if (v->type != TG_JSON_NUMBER || depth < 2)
        return;
    const tg_jsonscan_level_t *parent = plain_key(s, depth - 2), *leaf = plain_key(s, depth - 1);
    if (parent == NULL || leaf == NULL)
        return;
    /* every parent key in the rules is at least 5 bytes and starts with one of u, p, i, b, a */
    char c = parent->key[0];
    if (parent->key_len < 5 || (c != 'u' && c != 'p' && c != 'i' && c != 'b' && c != 'a'))
        return;
    for (size_t i = 0; i != TG_ARRAY_SIZE(rules); ++i) {
        if (key_eq(parent, rules[i].parent, rules[i].parent_len) && key_eq(leaf, rules[i].key, rules[i].key_len)) {
            int64_t n;
            if (parse_count(v->text, v->len, &n))
                u->fields[rules[i].field] = n;
            return;
        }
    }
}

/* ---- a whole parsed document: the same rules, walked in document order ------------------------------------- */

/* A member key as the scanner holds it: unescaped, "not plain" in an array or when longer than the scanner keeps. */
typedef struct {
    char buf[TG_JSONSCAN_MAX_KEY];
    const char *key;
    size_t len;
    bool plain;
    uint32_t rules; /* for a container's key: the rules whose parent it is (bit i: rules[i]) */
} doc_key_t;

static void doc_key(const tg_jdoc_t *d, uint32_t container, uint32_t i, doc_key_t *k)
{
    k->plain = false;
    if (d->nodes[container].type != TG_JSON_OBJECT)
        return;
    tg_iovec_t raw = tg_jdoc_key(d, i);
    if (memchr(raw.base, '\\', raw.len) == NULL) {
        k->key = raw.base;
        k->len = raw.len;
    } else {
        if (raw.len >= 6 * TG_JSONSCAN_MAX_KEY)
            return; /* unescaped it is still 40 bytes or more: the scanner keeps such a key truncated */
        tg_buf_t b;
        tg_buf_init(&b, raw.len);
        if (tg_jdoc_unescape(raw, &b) != 0 || b.len >= sizeof(k->buf)) {
            tg_buf_free(&b);
            return;
        }
        memcpy(k->buf, b.base, b.len);
        k->key = k->buf;
        k->len = b.len;
        tg_buf_free(&b);
    }
    k->plain = k->len < TG_JSONSCAN_MAX_KEY;
}

static bool doc_key_eq(const doc_key_t *k, const char *s, size_t n)
{
    return k->plain && k->len == n && memcmp(k->key, s, n) == 0;
}

static void doc_take_model(tg_usage_parser_t *u, const tg_jdoc_t *d, uint32_t i)
{
    tg_buf_t b;
    tg_buf_init(&b, 6 * sizeof(u->model)); /* escapes take up to 6 bytes for 1 */
    if (tg_jdoc_str(d, i, &b) == 0 && b.len != 0 && b.len < sizeof(u->model)) {
        memcpy(u->model, b.base, b.len);
        u->model[b.len] = '\0';
    }
    tg_buf_free(&b);
}

/* Could a member with this raw key be the parent of one of the rules' fields? Every parent key in the rules is at
 * least 5 bytes and starts with one of u, p, i, b, a (as in on_value); an escaped key is unescaped to be sure. */
static bool maybe_parent(tg_iovec_t raw)
{
    char c = raw.len != 0 ? raw.base[0] : '\0';
    return c == '\\' || (raw.len >= 5 && (c == 'u' || c == 'p' || c == 'i' || c == 'b' || c == 'a'));
}

/* The children of `c` (at `depth`, whose own key is `parent`), as on_value sees them. */
static void doc_walk(tg_usage_parser_t *u, const tg_jdoc_t *d, uint32_t c, unsigned depth, const doc_key_t *parent)
{
    TG_JDOC_EACH(d, c, x) {
        tg_json_type_t t = tg_jdoc_type(d, x);
        doc_key_t leaf;
        if (t == TG_JSON_STRING) {
            tg_iovec_t raw = tg_jdoc_key(d, x);
            if (u->model[0] != '\0' || depth > 2 || raw.len < 5 || (raw.base[0] != 'm' && raw.base[0] != '\\'))
                continue;
            doc_key(d, c, x, &leaf);
            if ((depth == 1 && (doc_key_eq(&leaf, TG_LIT("model")) || doc_key_eq(&leaf, TG_LIT("modelVersion")))) ||
                (depth == 2 && doc_key_eq(&leaf, TG_LIT("model")) &&
                 (doc_key_eq(parent, TG_LIT("message")) || doc_key_eq(parent, TG_LIT("response")))))
                doc_take_model(u, d, x);
        } else if (t == TG_JSON_NUMBER) {
            if (depth < 2 || parent->rules == 0)
                continue;
            doc_key(d, c, x, &leaf);
            for (uint32_t m = parent->rules; m != 0 && leaf.plain; m &= m - 1) {
                unsigned i = (unsigned)__builtin_ctz(m);
                if (doc_key_eq(&leaf, rules[i].key, rules[i].key_len)) {
                    tg_iovec_t raw = tg_jdoc_raw(d, x);
                    int64_t n;
                    if (parse_count(raw.base, raw.len, &n))
                        u->fields[rules[i].field] = n;
                    break;
                }
            }
        } else if ((t == TG_JSON_OBJECT || t == TG_JSON_ARRAY) && depth < TG_JSONSCAN_MAX_DEPTH) {
            tg_iovec_t raw = tg_jdoc_key(d, x);
            char k0 = raw.len != 0 ? raw.base[0] : '\0';
            bool rule_parent = maybe_parent(raw);
            leaf.plain = false;
            leaf.rules = 0;
            if (rule_parent || (depth == 1 && (k0 == 'm' || k0 == 'r'))) { /* or a model's "message", "response" */
                doc_key(d, c, x, &leaf);
                for (size_t i = 0; i != TG_ARRAY_SIZE(rules) && rule_parent; ++i)
                    if (doc_key_eq(&leaf, rules[i].parent, rules[i].parent_len))
                        leaf.rules |= 1u << i;
            } /* else its key is not read (no rule's parent, nor a model's); its children are still walked */
            doc_walk(u, d, x, depth + 1, &leaf);
        }
    }
}

void tg_usage_parser_take_doc(tg_usage_parser_t *u, const tg_jdoc_t *d)
{
    doc_key_t none = {.plain = false, .rules = 0};
    tg_json_type_t t = tg_jdoc_type(d, 0);
    if (t == TG_JSON_OBJECT || t == TG_JSON_ARRAY)
        doc_walk(u, d, 0, 1, &none);
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static const tg_jsonscan_ops_t inner_ops = {on_value, NULL};

/* The outer JSON of an event-stream frame: {"bytes":"<base64 of a provider event>"}. */
static void on_string_part(tg_jsonscan_t *s, const char *p, size_t n, void *data)
{
    tg_usage_parser_t *u = data;
    if (tg_jsonscan_depth(s) != 1 || !tg_jsonscan_key_is(s, 0, "bytes"))
        return;
    if (u->inner == NULL) {
        u->inner = tg_malloc(sizeof(*u->inner));
        tg_jsonscan_init(u->inner, &inner_ops, u);
    }
    char out[192];
    size_t o = 0;
    for (size_t i = 0; i != n; ++i) {
        int b = b64val(p[i]);
        if (b < 0)
            continue; /* padding */
        u->b64_acc = (u->b64_acc << 6) | (uint32_t)b;
        u->b64_bits += 6;
        if (u->b64_bits >= 8) {
            u->b64_bits -= 8;
            out[o++] = (char)((u->b64_acc >> u->b64_bits) & 0xFF);
            if (o == sizeof(out)) {
                tg_jsonscan_feed(u->inner, out, o);
                o = 0;
            }
        }
    }
    if (o != 0)
        tg_jsonscan_feed(u->inner, out, o);
}

static const tg_jsonscan_ops_t outer_ops = {on_value, on_string_part};

void tg_usage_parser_init(tg_usage_parser_t *u, tg_body_kind_t kind)
{
    memset(u, 0, sizeof(*u));
    u->kind = kind;
    for (size_t i = 0; i != TG_U_NUM_FIELDS; ++i)
        u->fields[i] = -1;
    /* the base64 "bytes" member only means something inside an AWS event stream frame */
    tg_jsonscan_init(&u->scan, kind == TG_BODY_EVENTSTREAM ? &outer_ops : &inner_ops, u);
}

void tg_usage_parser_dispose(tg_usage_parser_t *u)
{
    free(u->inner);
    u->inner = NULL;
}

tg_body_kind_t tg_usage_kind_for(tg_iovec_t ct)
{
    tg_iovec_t mime = tg_iov_trim(tg_iov_split(&ct, ';', NULL));
    if (tg_iov_eq_ci(mime, TG_LIT("text/event-stream")))
        return TG_BODY_SSE;
    if (tg_iov_eq_ci(mime, TG_LIT("application/vnd.amazon.eventstream")))
        return TG_BODY_EVENTSTREAM;
    return TG_BODY_JSON;
}

void tg_usage_parser_header(tg_usage_parser_t *u, tg_iovec_t name, tg_iovec_t value)
{
    int field;
    if (tg_iov_eq_ci(name, TG_LIT("x-amzn-bedrock-input-token-count")))
        field = TG_U_HDR_INPUT;
    else if (tg_iov_eq_ci(name, TG_LIT("x-amzn-bedrock-output-token-count")))
        field = TG_U_HDR_OUTPUT;
    else if (tg_iov_eq_ci(name, TG_LIT("x-amzn-bedrock-cache-read-input-token-count")))
        field = TG_U_HDR_CACHE_READ;
    else if (tg_iov_eq_ci(name, TG_LIT("x-amzn-bedrock-cache-write-input-token-count")))
        field = TG_U_HDR_CACHE_WRITE;
    else
        return;
    value = tg_iov_trim(value);
    int64_t n;
    if (parse_count(value.base, value.len, &n))
        u->fields[field] = n;
}

/* ---- SSE: the data lines of each event go to the scanner, which is reset between events --------------------- */

enum { SSE_FIELD, SSE_SPACE, SSE_VALUE };

static void sse_line_end(tg_usage_parser_t *u)
{
    if (u->sse_state == SSE_FIELD && u->sse_field_len == 0) { /* a blank line: the event ends */
        tg_jsonscan_reset(&u->scan);
        u->sse_data_seen = false;
    }
    u->sse_state = SSE_FIELD;
    u->sse_field_len = 0;
}

static bool sse_is_data(const tg_usage_parser_t *u)
{
    return u->sse_field_len == 4 && memcmp(u->sse_field, "data", 4) == 0;
}

static void sse_feed(tg_usage_parser_t *u, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        char c = *p;
        if (c == '\n' && u->sse_prev_cr) { /* the \n of a \r\n */
            u->sse_prev_cr = false;
            ++p;
            continue;
        }
        u->sse_prev_cr = false;
        if (c == '\r' || c == '\n') {
            u->sse_prev_cr = c == '\r';
            sse_line_end(u);
            ++p;
            continue;
        }
        switch (u->sse_state) {
        case SSE_FIELD:
            if (c == ':') {
                u->sse_state = SSE_SPACE;
                if (sse_is_data(u)) {
                    if (u->sse_data_seen)
                        tg_jsonscan_feed(&u->scan, "\n", 1); /* data lines join with a newline */
                    u->sse_data_seen = true;
                }
            } else if (u->sse_field_len < sizeof(u->sse_field)) {
                u->sse_field[u->sse_field_len++] = c;
            } else {
                u->sse_field[0] = '\0'; /* too long to be "data" */
            }
            ++p;
            break;
        case SSE_SPACE:
            u->sse_state = SSE_VALUE;
            if (c == ' ') {
                ++p;
                break;
            }
            /* fall through */
        case SSE_VALUE: {
            const char *q = p;
            while (q < end && *q != '\r' && *q != '\n')
                ++q;
            if (sse_is_data(u))
                tg_jsonscan_feed(&u->scan, p, (size_t)(q - p));
            p = q;
            break;
        }
        }
    }
}

/* ---- AWS event stream: [total u32][headers u32][prelude crc][headers][payload][crc], payloads are JSON -------- */

#define ES_MAX_FRAME (16u << 20)

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void es_feed(tg_usage_parser_t *u, const char *p, size_t n)
{
    while (n != 0 && !u->failed) {
        if (u->es_have < 12) {
            size_t k = TG_MIN(n, (size_t)(12 - u->es_have));
            memcpy(u->es_prelude + u->es_have, p, k);
            u->es_have += (uint32_t)k;
            p += k;
            n -= k;
            if (u->es_have == 12) {
                u->es_total = be32(u->es_prelude);
                u->es_headers = be32(u->es_prelude + 4);
                if (u->es_total < 16 || u->es_total > ES_MAX_FRAME || u->es_headers > u->es_total - 16) {
                    u->failed = true;
                    return;
                }
                tg_jsonscan_reset(&u->scan);
                if (u->inner != NULL)
                    tg_jsonscan_reset(u->inner);
                u->b64_acc = 0;
                u->b64_bits = 0;
            }
            continue;
        }
        uint32_t payload_start = 12 + u->es_headers, payload_end = u->es_total - 4;
        size_t k = TG_MIN(n, (size_t)(u->es_total - u->es_have));
        /* the part of [es_have, es_have + k) that is payload */
        uint32_t from = TG_MAX(u->es_have, payload_start), to = TG_MIN(u->es_have + (uint32_t)k, payload_end);
        if (from < to)
            tg_jsonscan_feed(&u->scan, p + (from - u->es_have), to - from);
        u->es_have += (uint32_t)k;
        p += k;
        n -= k;
        if (u->es_have == u->es_total)
            u->es_have = 0;
    }
}

void tg_usage_parser_feed(tg_usage_parser_t *u, const char *p, size_t n)
{
    switch (u->kind) {
    case TG_BODY_JSON:
        if (!u->failed && tg_jsonscan_feed(&u->scan, p, n) != 0)
            u->failed = true;
        break;
    case TG_BODY_SSE:
        sse_feed(u, p, n);
        break;
    case TG_BODY_EVENTSTREAM:
        es_feed(u, p, n);
        break;
    }
}

static int64_t f0(const tg_usage_parser_t *u, int f)
{
    return u->fields[f] > 0 ? u->fields[f] : 0;
}

static bool seen(const tg_usage_parser_t *u, int f)
{
    return u->fields[f] >= 0;
}

tg_usage_t tg_usage_parser_result(const tg_usage_parser_t *u)
{
    tg_usage_t r = {-1, -1, 0, 0};
    if (seen(u, TG_U_HDR_INPUT) || seen(u, TG_U_HDR_OUTPUT)) {
        /* Bedrock's headers count input beside the prompt cache, like its bodies; the cache parts come from their own
         * headers, else from the body's usage (an Anthropic model's cache_read/cache_creation_input_tokens) */
        r.cached = seen(u, TG_U_HDR_CACHE_READ)  ? f0(u, TG_U_HDR_CACHE_READ)
                   : seen(u, TG_U_CACHE_READ)    ? f0(u, TG_U_CACHE_READ)
                                                 : f0(u, TG_U_BR_CACHE_READ);
        r.cache_write = seen(u, TG_U_HDR_CACHE_WRITE) ? f0(u, TG_U_HDR_CACHE_WRITE)
                        : seen(u, TG_U_CACHE_CREATION) ? f0(u, TG_U_CACHE_CREATION)
                                                       : f0(u, TG_U_BR_CACHE_WRITE);
        r.input = f0(u, TG_U_HDR_INPUT) + r.cached + r.cache_write;
        r.output = f0(u, TG_U_HDR_OUTPUT);
    } else if (seen(u, TG_U_G_PROMPT) || seen(u, TG_U_G_CANDIDATES)) {
        r.input = f0(u, TG_U_G_PROMPT);
        r.output = f0(u, TG_U_G_CANDIDATES) + f0(u, TG_U_G_THOUGHTS);
        r.cached = f0(u, TG_U_G_CACHED);
    } else if (seen(u, TG_U_BR_INPUT) || seen(u, TG_U_BR_OUTPUT)) {
        r.cached = f0(u, TG_U_BR_CACHE_READ);
        r.cache_write = f0(u, TG_U_BR_CACHE_WRITE);
        r.input = f0(u, TG_U_BR_INPUT) + r.cached + r.cache_write;
        r.output = f0(u, TG_U_BR_OUTPUT);
    } else if (seen(u, TG_U_CO_INPUT) || seen(u, TG_U_CO_OUTPUT)) {
        r.input = f0(u, TG_U_CO_INPUT);
        r.output = f0(u, TG_U_CO_OUTPUT);
    } else if (seen(u, TG_U_PROMPT)) {
        r.input = f0(u, TG_U_PROMPT);
        r.output = f0(u, TG_U_COMPLETION);
        r.cached = seen(u, TG_U_DETAILS_CACHED) ? f0(u, TG_U_DETAILS_CACHED) : f0(u, TG_U_DS_CACHE_HIT);
    } else if (seen(u, TG_U_INPUT) || seen(u, TG_U_OUTPUT)) {
        r.cached = f0(u, TG_U_CACHE_READ) + f0(u, TG_U_DETAILS_CACHED);
        r.cache_write = f0(u, TG_U_CACHE_CREATION);
        r.input = f0(u, TG_U_INPUT) + f0(u, TG_U_CACHE_READ) + r.cache_write;
        r.output = f0(u, TG_U_OUTPUT);
    }
    if (r.input >= 0 && r.cached + r.cache_write > r.input) /* inconsistent report: never price below zero */
        r.cached = r.input - r.cache_write > 0 ? r.input - r.cache_write : 0;
    return r;
}
