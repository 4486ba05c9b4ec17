/*
 * Fuzz driver for blocks of log records (logrow.h, layout 5): any bytes read as a block give entries whose metadata
 * and packed rows lie inside the bytes and whose keys are at or below the row's key; the entries read whole write
 * again (tg_logblock_add) into a block that reads the same; each entry's packed row splits without reading past it.
 * The row key is the input's first 8 bytes. Replayed over fuzz/corpus/logblock by `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tollgate/logrow.h"
#include "fuzz.h"

#define MAX_ENTRIES 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t k = 0;
    for (int i = 0; i != 8; ++i)
        k = k << 8 | data[i];
    int64_t row_key = (int64_t)(k >> 1);
    size -= 8;
    uint8_t *p = malloc(size != 0 ? size : 1); /* the block's bytes alone, so ASan sees a read past them */
    CHECK(p != NULL);
    memcpy(p, data + 8, size);
    tg_logblock_entry_t *e = malloc(MAX_ENTRIES * sizeof(*e));
    CHECK(e != NULL);
    size_t n = 0, off = 0;
    int rc;
    while (n != MAX_ENTRIES && (rc = tg_logblock_next(p, size, row_key, &off, &e[n])) == 1) {
        CHECK(e[n].key <= row_key && e[n].key >= 0);
        CHECK(e[n].payload >= -1 && e[n].flags >= 0);
        CHECK((const uint8_t *)e[n].rec >= p && (const uint8_t *)e[n].rec + e[n].rec_len <= p + size);
        if (e[n].metadata != NULL)
            CHECK((const uint8_t *)e[n].metadata >= p &&
                  (const uint8_t *)e[n].metadata + e[n].metadata_len <= p + size);
        CHECK(off <= size);
        tg_logrow_value_t v[TG_LR_NUM];
        tg_logrow_split(e[n].rec, e[n].rec_len, v);
        for (unsigned f = 0; f != TG_LR_NUM; ++f)
            if (v[f].type == TG_LRV_TEXT)
                CHECK((const uint8_t *)v[f].s >= (const uint8_t *)e[n].rec &&
                      (const uint8_t *)v[f].s + v[f].len <= (const uint8_t *)e[n].rec + e[n].rec_len);
        n++;
    }
    /* what was read writes again into a block that reads the same */
    tg_buf_t b;
    tg_buf_init(&b, 64 << 20);
    CHECK(tg_logblock_begin(&b) == 0);
    for (size_t i = 0; i != n; ++i)
        CHECK(tg_logblock_add(&b, row_key, &e[i]) == 0);
    size_t off2 = 0;
    tg_logblock_entry_t x;
    for (size_t i = 0; i != n; ++i) {
        CHECK(tg_logblock_next(b.base, b.len, row_key, &off2, &x) == 1);
        CHECK(x.key == e[i].key && x.flags == e[i].flags && x.payload == e[i].payload);
        CHECK(x.rec_len == e[i].rec_len && memcmp(x.rec, e[i].rec, x.rec_len) == 0);
        CHECK((x.metadata == NULL) == (e[i].metadata == NULL) && x.metadata_len == e[i].metadata_len);
        if (x.metadata != NULL)
            CHECK(memcmp(x.metadata, e[i].metadata, x.metadata_len) == 0);
    }
    CHECK(tg_logblock_next(b.base, b.len, row_key, &off2, &x) == 0);
    tg_buf_free(&b);
    free(e);
    free(p);
    return 0;
}
