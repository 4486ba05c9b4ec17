/*
 * Fuzz driver for packed log rows (logrow.h): any bytes read field by field (tg_logrow_get) and in one pass
 * (tg_logrow_split) give the same values, every text inside the bytes; a row that reads whole and holds no NUL in
 * its texts packs again (tg_logrow_pack) into a row that reads the same. Replayed over fuzz/corpus/logrow by
 * `make test`.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/logrow.h"
#include "fuzz.h"

static bool same(const tg_logrow_value_t *a, const tg_logrow_value_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case TG_LRV_INT:
        return a->i == b->i;
    case TG_LRV_REAL:
        return memcmp(&a->d, &b->d, sizeof(a->d)) == 0;
    case TG_LRV_TEXT:
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    default:
        return true;
    }
}

/* text field f as a NUL-terminated copy (NULL for NULL); false when it holds a NUL (pack could not say it) */
static bool text_of(const tg_logrow_value_t *v, char **out)
{
    *out = NULL;
    if (v->type != TG_LRV_TEXT)
        return true;
    if (memchr(v->s, '\0', v->len) != NULL)
        return false;
    *out = malloc(v->len + 1);
    CHECK(*out != NULL);
    memcpy(*out, v->s, v->len);
    (*out)[v->len] = '\0';
    return true;
}

static int64_t int_of(const tg_logrow_value_t *v)
{
    return v->type == TG_LRV_INT ? v->i : -1;
}

static void repack(const tg_logrow_value_t v[TG_LR_NUM])
{
    static const unsigned text_fields[] = {TG_LR_ID,
                                           TG_LR_PROVIDER,
                                           TG_LR_MODEL,
                                           TG_LR_PATH,
                                           TG_LR_REQUEST_TYPE,
                                           TG_LR_REQUEST_CONTENT_TYPE,
                                           TG_LR_RESPONSE_CONTENT_TYPE,
                                           TG_LR_USER_AGENT,
                                           TG_LR_ERROR};
    char *t[TG_LR_NUM] = {0};
    bool ok = true;
    for (size_t i = 0; i != sizeof(text_fields) / sizeof(text_fields[0]); ++i)
        ok = text_of(&v[text_fields[i]], &t[text_fields[i]]) && ok;
    /* a negative cost reads back as NULL: pack keeps only costs >= 0 */
    bool cost_kept = v[TG_LR_COST].type != TG_LRV_REAL || v[TG_LR_COST].d >= 0;
    if (ok && cost_kept) {
        tg_logrow_t r = {
            .id = t[TG_LR_ID],
            .provider = t[TG_LR_PROVIDER],
            .model = t[TG_LR_MODEL],
            .path = t[TG_LR_PATH],
            .request_type = t[TG_LR_REQUEST_TYPE],
            .request_content_type = t[TG_LR_REQUEST_CONTENT_TYPE],
            .response_content_type = t[TG_LR_RESPONSE_CONTENT_TYPE],
            .user_agent = t[TG_LR_USER_AGENT],
            .error = t[TG_LR_ERROR],
            .created_at = int_of(&v[TG_LR_CREATED_AT]),
            .success = int_of(&v[TG_LR_SUCCESS]),
            .status_code = int_of(&v[TG_LR_STATUS_CODE]),
            .cached = int_of(&v[TG_LR_CACHED]),
            .duration = int_of(&v[TG_LR_DURATION]),
            .ttfb = int_of(&v[TG_LR_TTFB]),
            .tokens_in = int_of(&v[TG_LR_TOKENS_IN]),
            .tokens_out = int_of(&v[TG_LR_TOKENS_OUT]),
            .cached_tokens = int_of(&v[TG_LR_CACHED_TOKENS]),
            .cache_write_tokens = int_of(&v[TG_LR_CACHE_WRITE_TOKENS]),
            .step = int_of(&v[TG_LR_STEP]),
            .request_size = int_of(&v[TG_LR_REQUEST_SIZE]),
            .response_size = int_of(&v[TG_LR_RESPONSE_SIZE]),
            .cost = v[TG_LR_COST].type == TG_LRV_REAL ? v[TG_LR_COST].d : NAN,
        };
        tg_buf_t b;
        tg_buf_init(&b, 1 << 20);
        CHECK(tg_logrow_pack(&b, &r) == 0);
        tg_logrow_value_t w[TG_LR_NUM];
        CHECK(tg_logrow_split(b.base, b.len, w) == 0);
        for (unsigned f = 0; f != TG_LR_NUM; ++f)
            CHECK(same(&v[f], &w[f]));
        tg_buf_free(&b);
    }
    for (unsigned f = 0; f != TG_LR_NUM; ++f)
        free(t[f]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size != 0 ? size : 1); /* the input's bytes alone, so ASan sees a read past the row */
    CHECK(p != NULL);
    memcpy(p, data, size);
    tg_logrow_value_t all[TG_LR_NUM], one;
    int rc = tg_logrow_split(p, size, all);
    bool whole = true;
    for (unsigned f = 0; f != TG_LR_NUM; ++f) {
        bool got = tg_logrow_get(p, size, f, &one) == 0;
        whole = whole && got;
        CHECK(same(&one, &all[f]));
        CHECK(got || one.type == TG_LRV_NULL);
        if (one.type == TG_LRV_TEXT)
            CHECK(one.s >= (const char *)p && one.s + one.len <= (const char *)p + size);
    }
    CHECK(rc == (whole ? 0 : -1));
    CHECK(tg_logrow_get(p, size, TG_LR_NUM, &one) == -1 && one.type == TG_LRV_NULL);
    if (rc == 0)
        repack(all);
    free(p);
    return 0;
}
