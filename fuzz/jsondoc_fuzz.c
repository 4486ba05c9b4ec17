/*
 * Fuzz driver for flat JSON documents (jsondoc.h): any bytes either fail to parse or give a document whose every
 * node is consistent — its raw bytes inside the text and inside its parent's, containers opening with their
 * bracket, children in order and counted, keys inside the text before their value — and whose strings unescape and
 * numbers read without fault. Replayed over fuzz/corpus/jsondoc by `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include "tollgate/jsondoc.h"
#include "fuzz.h"

static void check_node(const tg_jdoc_t *d, uint32_t i, uint32_t lo, uint32_t hi)
{
    const tg_jnode_t *n = tg_jdoc_node(d, i);
    CHECK(n->start >= lo && n->end <= hi && n->start < n->end);
    const char *raw = d->text + n->start;
    switch ((tg_json_type_t)n->type) {
    case TG_JSON_OBJECT:
    case TG_JSON_ARRAY: {
        CHECK(*raw == (n->type == TG_JSON_OBJECT ? '{' : '['));
        CHECK(d->text[n->end - 1] == (n->type == TG_JSON_OBJECT ? '}' : ']'));
        uint32_t count = 0, prev_end = n->start + 1;
        for (uint32_t c = n->child; c != TG_JDOC_NONE; c = d->nodes[c].next) {
            CHECK(c > i && c < d->num);
            check_node(d, c, prev_end, n->end - 1);
            const tg_jnode_t *cn = tg_jdoc_node(d, c);
            if (n->type == TG_JSON_OBJECT) {
                CHECK(cn->key != UINT32_MAX && cn->key >= prev_end && cn->key + cn->key_len < cn->start);
                CHECK(d->text[cn->key - 1] == '"' && d->text[cn->key + cn->key_len] == '"');
            } else {
                CHECK(cn->key == UINT32_MAX);
            }
            prev_end = cn->end;
            ++count;
        }
        CHECK(count == n->count);
        break;
    }
    case TG_JSON_STRING: {
        CHECK(*raw == '"' && d->text[n->end - 1] == '"');
        tg_buf_t b;
        tg_buf_init(&b, n->end - n->start);
        CHECK(tg_jdoc_str(d, i, &b) == 0 && b.len <= n->end - n->start - 2);
        tg_buf_free(&b);
        break;
    }
    case TG_JSON_NUMBER: {
        double x;
        int64_t v;
        CHECK(tg_jdoc_number(d, i, &x) == 0 || n->end - n->start >= 64);
        (void)tg_jdoc_int(d, i, &v);
        break;
    }
    default:
        CHECK(n->child == TG_JDOC_NONE);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_jdoc_t d;
    if (tg_jdoc_parse(&d, (const char *)data, size) == 0) {
        CHECK(d.num >= 1);
        check_node(&d, 0, 0, (uint32_t)size);
        (void)tg_jdoc_get(&d, 0, "model");
    }
    tg_jdoc_free(&d);
    return 0;
}
