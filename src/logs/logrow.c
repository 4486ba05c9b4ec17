/* The packed row of a log record: include/tollgate/logrow.h. */
#include "tollgate/logrow.h"
#include "tollgate/error.h"

enum { K_INT, K_TEXT, K_REAL };

static const uint8_t kinds[TG_LR_NUM] = {
    [TG_LR_ID] = K_TEXT,
    [TG_LR_CREATED_AT] = K_INT,
    [TG_LR_PROVIDER] = K_TEXT,
    [TG_LR_MODEL] = K_TEXT,
    [TG_LR_PATH] = K_TEXT,
    [TG_LR_REQUEST_TYPE] = K_TEXT,
    [TG_LR_SUCCESS] = K_INT,
    [TG_LR_STATUS_CODE] = K_INT,
    [TG_LR_CACHED] = K_INT,
    [TG_LR_DURATION] = K_INT,
    [TG_LR_TTFB] = K_INT,
    [TG_LR_TOKENS_IN] = K_INT,
    [TG_LR_TOKENS_OUT] = K_INT,
    [TG_LR_CACHED_TOKENS] = K_INT,
    [TG_LR_CACHE_WRITE_TOKENS] = K_INT,
    [TG_LR_COST] = K_REAL,
    [TG_LR_STEP] = K_INT,
    [TG_LR_REQUEST_SIZE] = K_INT,
    [TG_LR_RESPONSE_SIZE] = K_INT,
    [TG_LR_REQUEST_CONTENT_TYPE] = K_TEXT,
    [TG_LR_RESPONSE_CONTENT_TYPE] = K_TEXT,
    [TG_LR_USER_AGENT] = K_TEXT,
    [TG_LR_ERROR] = K_TEXT,
};

const char *const tg_logrow_names[TG_LR_NUM] = {
    [TG_LR_ID] = "id",
    [TG_LR_CREATED_AT] = "created_at",
    [TG_LR_PROVIDER] = "provider",
    [TG_LR_MODEL] = "model",
    [TG_LR_PATH] = "path",
    [TG_LR_REQUEST_TYPE] = "request_type",
    [TG_LR_SUCCESS] = "success",
    [TG_LR_STATUS_CODE] = "status_code",
    [TG_LR_CACHED] = "cached",
    [TG_LR_DURATION] = "duration",
    [TG_LR_TTFB] = "time_to_first_byte",
    [TG_LR_TOKENS_IN] = "tokens_in",
    [TG_LR_TOKENS_OUT] = "tokens_out",
    [TG_LR_CACHED_TOKENS] = "cached_tokens",
    [TG_LR_CACHE_WRITE_TOKENS] = "cache_write_tokens",
    [TG_LR_COST] = "cost",
    [TG_LR_STEP] = "step",
    [TG_LR_REQUEST_SIZE] = "request_size",
    [TG_LR_RESPONSE_SIZE] = "response_size",
    [TG_LR_REQUEST_CONTENT_TYPE] = "request_content_type",
    [TG_LR_RESPONSE_CONTENT_TYPE] = "response_content_type",
    [TG_LR_USER_AGENT] = "user_agent",
    [TG_LR_ERROR] = "error",
};

#define VARINT_MAX 10

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* integer field: v + 1, 0 for NULL (any v < 0) */
static inline uint8_t *put_int(uint8_t *p, int64_t v)
{
    return put_varint(p, v < 0 ? 0 : (uint64_t)v + 1);
}

static inline uint8_t *put_text(uint8_t *p, const char *s, size_t n)
{
    if (s == NULL)
        return put_varint(p, 0);
    p = put_varint(p, (uint64_t)n + 1);
    memcpy(p, s, n);
    return p + n;
}

int tg_logrow_pack(tg_buf_t *b, const tg_logrow_t *r)
{
    const char *texts[] = {r->id,
                           r->provider,
                           r->model,
                           r->path,
                           r->request_type,
                           r->request_content_type,
                           r->response_content_type,
                           r->user_agent,
                           r->error};
    size_t lens[TG_ARRAY_SIZE(texts)], need = 1 + TG_LR_NUM * VARINT_MAX + 8;
    for (size_t i = 0; i != TG_ARRAY_SIZE(texts); ++i)
        need += lens[i] = texts[i] != NULL ? strlen(texts[i]) : 0;
    if (tg_buf_reserve(b, need) != 0)
        return TG_E_TOOBIG;
    uint8_t *p = (uint8_t *)b->base + b->len;
    *p++ = TG_LOGROW_VERSION;
    p = put_text(p, r->id, lens[0]);
    p = put_int(p, r->created_at);
    p = put_text(p, r->provider, lens[1]);
    p = put_text(p, r->model, lens[2]);
    p = put_text(p, r->path, lens[3]);
    p = put_text(p, r->request_type, lens[4]);
    p = put_int(p, r->success);
    p = put_int(p, r->status_code);
    p = put_int(p, r->cached);
    p = put_int(p, r->duration);
    p = put_int(p, r->ttfb);
    p = put_int(p, r->tokens_in);
    p = put_int(p, r->tokens_out);
    p = put_int(p, r->cached_tokens);
    p = put_int(p, r->cache_write_tokens);
    if (r->cost >= 0) { /* false for NaN too */
        uint64_t bits;
        memcpy(&bits, &r->cost, 8);
        *p++ = 1;
        for (int i = 0; i != 8; ++i)
            *p++ = (uint8_t)(bits >> (8 * i));
    } else {
        *p++ = 0;
    }
    p = put_int(p, r->step);
    p = put_int(p, r->request_size);
    p = put_int(p, r->response_size);
    p = put_text(p, r->request_content_type, lens[5]);
    p = put_text(p, r->response_content_type, lens[6]);
    p = put_text(p, r->user_agent, lens[7]);
    p = put_text(p, r->error, lens[8]);
    b->len = (size_t)((char *)p - b->base);
    return 0;
}

/* Reads a varint at *pp (before end); false when it runs past end or past VARINT_MAX bytes. */
static inline bool get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 7 * VARINT_MAX; shift += 7) {
        if (p == end)
            return false;
        uint8_t c = *p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            *pp = p;
            *v = x;
            return true;
        }
    }
    return false;
}

/* Decodes the field that starts at *pp, of kind k, into *out and moves *pp past it; false when it runs past end. */
static inline bool get_field(const uint8_t **pp, const uint8_t *end, unsigned k, tg_logrow_value_t *out)
{
    uint64_t v;
    if (!get_varint(pp, end, &v))
        return false;
    const uint8_t *p = *pp;
    *out = (tg_logrow_value_t){.type = TG_LRV_NULL};
    switch (k) {
    case K_INT:
        if (v != 0 && v - 1 <= (uint64_t)INT64_MAX)
            *out = (tg_logrow_value_t){.type = TG_LRV_INT, .i = (int64_t)(v - 1)};
        return true;
    case K_TEXT:
        if (v != 0 && v - 1 > (uint64_t)(end - p))
            return false;
        if (v != 0) {
            *out = (tg_logrow_value_t){.type = TG_LRV_TEXT, .s = (const char *)p, .len = (size_t)(v - 1)};
            *pp = p + (v - 1);
        }
        return true;
    default: /* K_REAL */
        if (v > 1 || (v == 1 && end - p < 8))
            return false;
        if (v == 1) {
            uint64_t bits = 0;
            for (int i = 0; i != 8; ++i)
                bits |= (uint64_t)p[i] << (8 * i);
            double d;
            memcpy(&d, &bits, 8);
            *out = (tg_logrow_value_t){.type = TG_LRV_REAL, .d = d};
            *pp = p + 8;
        }
        return true;
    }
}

int tg_logrow_get(const void *row, size_t n, unsigned f, tg_logrow_value_t *out)
{
    const uint8_t *p = row, *end = p + n;
    *out = (tg_logrow_value_t){.type = TG_LRV_NULL};
    if (f >= TG_LR_NUM || n == 0 || *p++ != TG_LOGROW_VERSION)
        return -1;
    for (unsigned i = 0; i <= f; ++i) {
        if (!get_field(&p, end, kinds[i], out)) {
            *out = (tg_logrow_value_t){.type = TG_LRV_NULL};
            return -1;
        }
    }
    return 0;
}

int tg_logblock_begin(tg_buf_t *b)
{
    if (tg_buf_reserve(b, 1) != 0)
        return TG_E_TOOBIG;
    b->base[b->len++] = (char)TG_LOGBLOCK_VERSION;
    return 0;
}

int tg_logblock_add(tg_buf_t *b, int64_t row_key, const tg_logblock_entry_t *e)
{
    size_t need = 5 * VARINT_MAX + (e->metadata != NULL ? e->metadata_len : 0) + e->rec_len;
    if (row_key < e->key || tg_buf_reserve(b, need) != 0)
        return TG_E_TOOBIG;
    uint8_t *p = (uint8_t *)b->base + b->len;
    p = put_varint(p, (uint64_t)row_key - (uint64_t)e->key);
    p = put_varint(p, (uint64_t)e->flags);
    p = put_int(p, e->payload);
    p = put_text(p, e->metadata, e->metadata_len);
    p = put_varint(p, e->rec_len);
    memcpy(p, e->rec, e->rec_len);
    b->len = (size_t)((char *)p + e->rec_len - b->base);
    return 0;
}

int tg_logblock_next(const void *blk, size_t n, int64_t row_key, size_t *off, tg_logblock_entry_t *e)
{
    const uint8_t *p = blk, *end = p + n;
    if (*off == 0) {
        if (n == 0 || *p != TG_LOGBLOCK_VERSION || row_key < 0)
            return -1;
        *off = 1;
    }
    if (*off > n)
        return -1;
    p += *off;
    if (p == end)
        return 0;
    uint64_t delta, flags, payload, mlen, rlen;
    if (!get_varint(&p, end, &delta) || delta > (uint64_t)row_key || !get_varint(&p, end, &flags) ||
        flags > INT64_MAX || !get_varint(&p, end, &payload) || payload > INT64_MAX ||
        !get_varint(&p, end, &mlen) || (mlen != 0 && mlen - 1 > (size_t)(end - p)))
        return -1;
    e->key = row_key - (int64_t)delta;
    e->flags = (int64_t)flags;
    e->payload = (int64_t)payload - 1;
    e->metadata = mlen != 0 ? (const char *)p : NULL;
    e->metadata_len = mlen != 0 ? (size_t)(mlen - 1) : 0;
    p += e->metadata_len;
    if (!get_varint(&p, end, &rlen) || rlen > (size_t)(end - p))
        return -1;
    e->rec = p;
    e->rec_len = (size_t)rlen;
    *off = (size_t)(p + rlen - (const uint8_t *)blk);
    return 1;
}

int tg_logrow_split(const void *row, size_t n, tg_logrow_value_t out[TG_LR_NUM])
{
    const uint8_t *p = row, *end = p + n;
    unsigned i = 0;
    if (n != 0 && *p++ == TG_LOGROW_VERSION)
        for (; i != TG_LR_NUM && get_field(&p, end, kinds[i], &out[i]); ++i)
            ;
    int rc = i == TG_LR_NUM ? 0 : -1;
    for (; i != TG_LR_NUM; ++i)
        out[i] = (tg_logrow_value_t){.type = TG_LRV_NULL};
    return rc;
}
