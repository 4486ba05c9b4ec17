/*
 * A push JSON scanner: bytes go in as they arrive (one at a time or all at once, with the same result) and a
 * callback sees every value with its path, without the document ever being held in memory.
 *
 * It is what lets the gateway read token usage out of a response while relaying it (SSE events, a JSON body, the
 * JSON inside Bedrock's event stream) with no second buffering, and find where a member sits in a request body
 * so it can be edited in place. jansson stays the choice for documents that are parsed whole (config, API bodies).
 *
 * Paths: the scanner keeps the key (or array index) of every enclosing level up to TG_JSONSCAN_MAX_DEPTH; deeper
 * levels are still scanned, but their values are not reported; beyond TG_JSONSCAN_HARD_DEPTH it is an error. Keys longer than TG_JSONSCAN_MAX_KEY are
 * reported as truncated (they never equal a shorter key). Scalars are reported with their text: strings
 * unescaped (UTF-8) and cut to TG_JSONSCAN_MAX_SCALAR bytes (`truncated` set), numbers and literals as written.
 * Long strings can be followed piece by piece through on_string_part.
 *
 * Several top-level values may follow each other (NDJSON, concatenated JSON). After a syntax error the scanner
 * reports nothing more until tg_jsonscan_reset. Offsets are counted in bytes from the last reset.
 */
#ifndef TOLLGATE_JSONSCAN_H
#define TOLLGATE_JSONSCAN_H

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "tollgate/common.h"

#define TG_JSONSCAN_MAX_DEPTH 24
#define TG_JSONSCAN_MAX_KEY 40
#define TG_JSONSCAN_MAX_SCALAR 256
#define TG_JSONSCAN_HARD_DEPTH 512 /* deeper nesting is treated as an error */

/* The first byte at or after p that ends a run of plain JSON string content: a quote, a backslash or a control
 * byte (end when there is none). Strings are most of a body's bytes, so this looks at 16 at a time where it can;
 * the scanner and the document parser (jsondoc.h) both use it. */
static inline const char *tg_json_string_run(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl)); /* v <= 0x1F, unsigned */
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        ++p;
    return p;
}

typedef enum {
    TG_JSON_NULL,
    TG_JSON_FALSE,
    TG_JSON_TRUE,
    TG_JSON_NUMBER,
    TG_JSON_STRING,
    TG_JSON_OBJECT, /* reported at '{'; the matching '}' is reported as TG_JSON_END */
    TG_JSON_ARRAY,  /* reported at '['; the matching ']' is reported as TG_JSON_END */
    TG_JSON_END,
} tg_json_type_t;

typedef struct st_tg_jsonscan_t tg_jsonscan_t;

typedef struct st_tg_jsonscan_value_t {
    tg_json_type_t type;
    const char *text; /* scalars: the value (see above); NULL for containers */
    size_t len;
    bool truncated;
    /* where the value sits: [start, end) in bytes; for TG_JSON_OBJECT/ARRAY end is not known yet (0); for END,
     * start is the container's '{' or '[' and end is just after its closing byte */
    uint64_t start, end;
    /* for an object member: the offset of its key's opening quote, and of the ',' before the member (UINT64_MAX
     * when it is the first member) */
    uint64_t member_start, comma_before;
} tg_jsonscan_value_t;

typedef struct st_tg_jsonscan_ops_t {
    void (*on_value)(tg_jsonscan_t *s, const tg_jsonscan_value_t *v, void *data);
    /* Optional: pieces of a string value's unescaped content, in order, before its on_value. */
    void (*on_string_part)(tg_jsonscan_t *s, const char *p, size_t n, void *data);
} tg_jsonscan_ops_t;

typedef struct st_tg_jsonscan_level_t {
    char key[TG_JSONSCAN_MAX_KEY]; /* object member key (NUL-terminated); "" in an array */
    uint8_t key_len;
    bool key_truncated;
    bool is_array;
    bool has_items;
    uint32_t index; /* array: index of the current element */
    uint64_t start; /* offset of '{' or '[' */
    uint64_t member_start, comma_before;
} tg_jsonscan_level_t;

struct st_tg_jsonscan_t {
    const tg_jsonscan_ops_t *ops;
    void *data;
    uint64_t offset;
    bool stop; /* a callback sets it to end the scan: tg_jsonscan_feed returns at once (until a reset) */
    unsigned depth;   /* open containers, including those beyond MAX_DEPTH */
    uint8_t state;
    uint8_t lit_pos;  /* within true/false/null */
    uint8_t esc_left; /* \uXXXX digits still to read */
    uint8_t in_key;
    uint32_t esc_code, hi_surrogate;
    uint64_t value_start;
    uint64_t kinds[TG_JSONSCAN_HARD_DEPTH / 64]; /* bit per open level: array (1) or object (0) */
    char scalar[TG_JSONSCAN_MAX_SCALAR];
    size_t scalar_len;
    bool scalar_truncated;
    tg_jsonscan_level_t levels[TG_JSONSCAN_MAX_DEPTH];
};

void tg_jsonscan_init(tg_jsonscan_t *s, const tg_jsonscan_ops_t *ops, void *data);
/* Back to the start of a document (offsets from 0, errors forgotten). */
void tg_jsonscan_reset(tg_jsonscan_t *s);
/* Scans n bytes. Returns 0, or -1 once the input is not JSON (then everything is ignored until a reset). After a
 * callback set s->stop it returns 0 and scans nothing more. */
int tg_jsonscan_feed(tg_jsonscan_t *s, const char *p, size_t n);
/* True when the input so far ends between top-level values (a complete document, or nothing). */
bool tg_jsonscan_complete(const tg_jsonscan_t *s);
bool tg_jsonscan_failed(const tg_jsonscan_t *s);

/* Does `text` contain the quoted key `"key"` anywhere (a cheap test before a scan that only matters if it does)? */
bool tg_json_mentions(tg_iovec_t text, const char *key);

/* During a callback: how many enclosing levels the value has (0 at the top level). */
static inline unsigned tg_jsonscan_depth(const tg_jsonscan_t *s)
{
    return s->depth;
}
/* During a callback: does the key of the enclosing level `up` steps out (0 = the value's own key) equal `key`?
 * False in an array element, beyond MAX_DEPTH, or for a truncated key. */
bool tg_jsonscan_key_is(const tg_jsonscan_t *s, unsigned up, const char *key);

#endif
