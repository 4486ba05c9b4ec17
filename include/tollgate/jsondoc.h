/*
 * A read-only JSON document as a flat array of nodes over the original bytes, built in one strict pass over the
 * whole text: no copy of the text; the nodes are held in the document (TG_JDOC_INLINE_NODES) and past that in one
 * growing allocation. Each node knows the raw bytes of its value
 * (and of its member key), so a rewrite can copy whole values verbatim — escapes and numbers as written — and only
 * reads what it must decide on. It is what the dialect translators (xlate.h) use on the request path, where
 * building a jansson tree and dumping another cost several times the rest of the request, and where the push
 * scanner (jsonscan.h, for input that arrives in pieces) spends more per byte than a parser that has it all.
 *
 * Limits: nesting deeper than TG_JSONSCAN_HARD_DEPTH (512) is refused, and so are more than TG_JDOC_MAX_NODES
 * values and text of 4 GiB or more. UTF-8 is not
 * checked. Keys are compared as written: a key spelled with escapes matches no plain name. Any thread; a document
 * is not shared.
 */
#ifndef TOLLGATE_JSONDOC_H
#define TOLLGATE_JSONDOC_H

#include "tollgate/buf.h"
#include "tollgate/jsonscan.h"

#define TG_JDOC_NONE UINT32_MAX /* "no node"; node 0 is the root */
/* Values a document may have: a text of many tiny values ("[0,0,0,...]") would otherwise cost 16 times its size
 * in nodes. 2^20 nodes are 32 MiB. */
#define TG_JDOC_MAX_NODES (1u << 20)

typedef struct st_tg_jnode_t {
    uint8_t type;      /* tg_json_type_t, never TG_JSON_END */
    uint32_t start;    /* raw value: [start, end) (strings with their quotes, containers with their brackets) */
    uint32_t end;
    uint32_t key;      /* offset of the member key's content (after its opening quote), UINT32_MAX in an array or
                          at the top */
    uint32_t key_len;  /* raw length of the key's content */
    uint32_t child;    /* first child, or TG_JDOC_NONE */
    uint32_t next;     /* next sibling, or TG_JDOC_NONE */
    uint32_t count;    /* children */
} tg_jnode_t;

/* Nodes a document holds in itself before it allocates: a chat request or answer of a few turns fits. */
#define TG_JDOC_INLINE_NODES 64

/* Not to be copied (nodes may point into it). */
typedef struct st_tg_jdoc_t {
    const char *text;
    size_t len;
    tg_jnode_t *nodes;
    uint32_t num, cap;
    tg_jnode_t inline_nodes[TG_JDOC_INLINE_NODES];
} tg_jdoc_t;

/* Parses one JSON value (surrounding white space allowed). Returns 0, or -1 when the text is not exactly one JSON
 * value or is 4 GiB or more; tg_jdoc_free is needed either way. */
int tg_jdoc_parse(tg_jdoc_t *d, const char *text, size_t len);
void tg_jdoc_free(tg_jdoc_t *d);

static inline const tg_jnode_t *tg_jdoc_node(const tg_jdoc_t *d, uint32_t i)
{
    return &d->nodes[i];
}
static inline tg_json_type_t tg_jdoc_type(const tg_jdoc_t *d, uint32_t i)
{
    return (tg_json_type_t)d->nodes[i].type;
}
/* The raw bytes of a value. */
static inline tg_iovec_t tg_jdoc_raw(const tg_jdoc_t *d, uint32_t i)
{
    return tg_iov(d->text + d->nodes[i].start, d->nodes[i].end - d->nodes[i].start);
}
/* A string's raw content between its quotes (escapes as written: valid inside any JSON string literal). */
static inline tg_iovec_t tg_jdoc_str_raw(const tg_jdoc_t *d, uint32_t i)
{
    return tg_iov(d->text + d->nodes[i].start + 1, d->nodes[i].end - d->nodes[i].start - 2);
}
/* The raw content of a member's key (between its quotes); empty for a node that is not a member. */
static inline tg_iovec_t tg_jdoc_key(const tg_jdoc_t *d, uint32_t i)
{
    return d->nodes[i].key != UINT32_MAX ? tg_iov(d->text + d->nodes[i].key, d->nodes[i].key_len) : tg_iov("", 0);
}
/* The member `key` of object `obj` (the first one of that name), or TG_JDOC_NONE (also when obj is TG_JDOC_NONE
 * or not an object, so lookups chain: get(get(0, "function"), "name")). */
uint32_t tg_jdoc_get_n(const tg_jdoc_t *d, uint32_t obj, const char *key, size_t key_len);
static inline uint32_t tg_jdoc_get(const tg_jdoc_t *d, uint32_t obj, const char *key)
{
    return tg_jdoc_get_n(d, obj, key, strlen(key)); /* a literal's length is known when compiling */
}
/* Is value i a string equal to `s` (after unescaping; `s` holds no backslash)? False for TG_JDOC_NONE. */
bool tg_jdoc_str_eq_n(const tg_jdoc_t *d, uint32_t i, const char *s, size_t len);
static inline bool tg_jdoc_str_eq(const tg_jdoc_t *d, uint32_t i, const char *s)
{
    return tg_jdoc_str_eq_n(d, i, s, strlen(s));
}
/* Appends string i's unescaped content to `out` (0, or TG_E_TOOBIG); -1 when i is not a string. */
int tg_jdoc_str(const tg_jdoc_t *d, uint32_t i, tg_buf_t *out);
/* The same for raw string content of a document that parsed (a value's between its quotes, or a key: tg_jdoc_key);
 * its escapes are not checked again, so other bytes must not be given. */
int tg_jdoc_unescape(tg_iovec_t raw, tg_buf_t *out);
/* Integer value of a number written without fraction or exponent; 0, or -1 (also for TG_JDOC_NONE). */
int tg_jdoc_int(const tg_jdoc_t *d, uint32_t i, int64_t *v);
/* Any number's value; 0, or -1. */
int tg_jdoc_number(const tg_jdoc_t *d, uint32_t i, double *v);
/* Is node i (TG_JDOC_NONE allowed) of type t? */
static inline bool tg_jdoc_is(const tg_jdoc_t *d, uint32_t i, tg_json_type_t t)
{
    return i != TG_JDOC_NONE && d->nodes[i].type == t;
}
/* A whole number's value, or `dflt` when i is absent or not one. */
static inline int64_t tg_jdoc_int_or(const tg_jdoc_t *d, uint32_t i, int64_t dflt)
{
    int64_t v;
    return tg_jdoc_int(d, i, &v) == 0 ? v : dflt;
}
/* The children of container `parent`, in order: for (TG_JDOC_EACH(d, parent, c)) ... */
#define TG_JDOC_EACH(d, parent, c) for (uint32_t c = (d)->nodes[parent].child; c != TG_JDOC_NONE; c = (d)->nodes[c].next)

/* Null, or no node at all. */
static inline bool tg_jdoc_is_null(const tg_jdoc_t *d, uint32_t i)
{
    return i == TG_JDOC_NONE || d->nodes[i].type == TG_JSON_NULL;
}

#endif
