/*
 * Records in blocks, changed (include/tollgate/logblock.h).
 *
 * Finding a record's block: a block's row key is its last record's and its records' keys are within
 * TG_LOGBLOCK_SPAN below it, and the blocks of a gateway never overlap (their records took keys in order); so the
 * block that holds key k, if one does, is the first block row at or after k, no further than TG_LOGBLOCK_SPAN on.
 */
#include "tollgate/logblock.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/buf.h"
#include "tollgate/common.h"
#include "tollgate/logrow.h"
#include "tollgate/logstore.h"
#include "tollgate/mem.h"

#define BLOCK_FLAG_SQL TG_STR(TG_LOGFLAG_BLOCK)

/* A block read into memory: its bytes copied (the statement that read them moves on), its records decoded. */
typedef struct {
    int64_t seq; /* its row's key; 0: none */
    unsigned char *bytes;
    size_t len, n;
    tg_logblock_entry_t ents[TG_LOGBLOCK_MAX * 4]; /* (a block holds TG_LOGBLOCK_MAX; more is read as damage) */
    bool drop[TG_LOGBLOCK_MAX * 4];
} block_t;

static void block_free(block_t *b)
{
    free(b->bytes);
    b->bytes = NULL;
    b->seq = 0;
    b->n = 0;
}

/* Where the record with key `key` is in b, -1 when b holds none (or it is marked to go already). */
static ptrdiff_t block_index(const block_t *b, int64_t key)
{
    for (size_t i = 0; i != b->n; ++i)
        if (b->ents[i].key == key && !b->drop[i])
            return (ptrdiff_t)i;
    return -1;
}

/* Reads the block that holds key (b->seq 0 when none does). */
static int block_find(sqlite3 *db, int64_t key, block_t *b)
{
    sqlite3_stmt *st = NULL;
    block_free(b);
    int rc =
        sqlite3_prepare_v2(db,
                           "SELECT seq, rec FROM main.log_rows WHERE seq BETWEEN ?1 AND ?2 AND (flags & " BLOCK_FLAG_SQL
                           ") != 0 ORDER BY seq LIMIT 1",
                           -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, key);
    sqlite3_bind_int64(st, 2, key > INT64_MAX - TG_LOGBLOCK_SPAN ? INT64_MAX : key + TG_LOGBLOCK_SPAN);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        b->seq = sqlite3_column_int64(st, 0);
        b->len = (size_t)sqlite3_column_bytes(st, 1);
        b->bytes = tg_malloc(b->len != 0 ? b->len : 1);
        if (b->len != 0)
            memcpy(b->bytes, sqlite3_column_blob(st, 1), b->len);
        size_t off = 0;
        while (b->n != TG_ARRAY_SIZE(b->ents) && tg_logblock_next(b->bytes, b->len, b->seq, &off, &b->ents[b->n]) == 1)
            b->drop[b->n++] = false;
        if (block_index(b, key) < 0)
            block_free(b);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int exec_key(sqlite3 *db, const char *sql, int64_t key)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, key);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Writes b back without the records marked to go: deleted when none is left, else rewritten (keyed again by its
 * last record when that one went). */
static int block_write(sqlite3 *db, block_t *b)
{
    size_t last = b->n;
    for (size_t i = 0; i != b->n; ++i)
        if (!b->drop[i])
            last = i;
    int rc;
    if (last == b->n) {
        rc = exec_key(db, "DELETE FROM main.log_rows WHERE seq = ?1", b->seq);
        block_free(b);
        return rc;
    }
    int64_t key = b->ents[last].key;
    tg_buf_t blob;
    tg_buf_init(&blob, 64u << 20); /* (a bound: it takes what the kept records need) */
    rc = tg_logblock_begin(&blob) == 0 ? SQLITE_OK : SQLITE_TOOBIG;
    for (size_t i = 0; i != b->n && rc == SQLITE_OK; ++i)
        if (!b->drop[i] && tg_logblock_add(&blob, key, &b->ents[i]) != 0)
            rc = SQLITE_TOOBIG; /* (not seen: the block gets smaller) */
    if (rc == SQLITE_OK && key != b->seq)
        rc = exec_key(db, "DELETE FROM main.log_rows WHERE seq = ?1", b->seq);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db, "INSERT OR REPLACE INTO main.log_rows (seq, rec, flags) VALUES (?1, ?2, " BLOCK_FLAG_SQL ")", -1, &st,
            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, key);
        sqlite3_bind_blob(st, 2, blob.base, (int)blob.len, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    tg_buf_free(&blob);
    block_free(b);
    return rc;
}

int tg_logblock_unblock(sqlite3 *db, int64_t key, int *moved)
{
    block_t *b = tg_calloc(1, sizeof(*b));
    *moved = 0;
    int rc = block_find(db, key, b);
    if (rc != SQLITE_OK || b->seq == 0) {
        block_free(b);
        free(b);
        return rc;
    }
    ptrdiff_t at = block_index(b, key); /* (>= 0: block_find found it) */
    tg_logblock_entry_t e = b->ents[at];
    b->drop[at] = true;
    /* the record's bytes, before the block's are freed */
    unsigned char *rec = tg_malloc(e.rec_len + e.metadata_len + 1);
    memcpy(rec, e.rec, e.rec_len);
    if (e.metadata != NULL)
        memcpy(rec + e.rec_len, e.metadata, e.metadata_len);
    bool has_meta = e.metadata != NULL;
    rc = block_write(db, b);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db, "INSERT INTO main.log_rows (seq, rec, metadata, flags, payload) VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st,
            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, key);
        sqlite3_bind_blob(st, 2, rec, (int)e.rec_len, SQLITE_STATIC);
        if (has_meta)
            sqlite3_bind_text(st, 3, (const char *)rec + e.rec_len, (int)e.metadata_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, e.flags & ~(int64_t)TG_LOGFLAG_BLOCK);
        if (e.payload >= 0)
            sqlite3_bind_int64(st, 5, e.payload);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        *moved = rc == SQLITE_OK;
    }
    sqlite3_finalize(st);
    free(rec);
    free(b);
    return rc;
}

static void add_deleted(tg_logdeleted_t **out, size_t *nout, size_t *cap, int64_t seq, int64_t ref)
{
    if (*nout == *cap) {
        *cap = *cap != 0 ? *cap * 2 : 256;
        *out = tg_realloc(*out, *cap * sizeof(**out));
    }
    (*out)[(*nout)++] = (tg_logdeleted_t){seq, ref};
}

int tg_logblock_delete(sqlite3 *db, const int64_t *keys, size_t n, tg_logdeleted_t **out, size_t *nout, size_t *cap)
{
    block_t *b = tg_calloc(1, sizeof(*b));
    sqlite3_stmt *single = NULL;
    int rc = sqlite3_prepare_v2(
        db, "DELETE FROM main.log_rows WHERE seq = ?1 AND (flags & " BLOCK_FLAG_SQL ") = 0 RETURNING payload", -1,
        &single, NULL);
    for (size_t i = 0; i != n && rc == SQLITE_OK; ++i) {
        int64_t key = keys[i];
        /* in the block read last (the usual case: a run of keys in one block) */
        ptrdiff_t at = b->seq != 0 && key <= b->seq ? block_index(b, key) : -1;
        if (at >= 0) {
            b->drop[at] = true;
            add_deleted(out, nout, cap, key, b->ents[at].payload);
            continue;
        }
        /* a row of its own */
        sqlite3_bind_int64(single, 1, key);
        int s = sqlite3_step(single);
        bool gone = s == SQLITE_ROW;
        if (gone) {
            add_deleted(out, nout, cap, key,
                        sqlite3_column_type(single, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(single, 0));
            s = sqlite3_step(single);
        }
        sqlite3_reset(single);
        if (s != SQLITE_DONE) {
            rc = sqlite3_errcode(db);
            break;
        }
        if (gone || (b->seq != 0 && key <= b->seq))
            continue; /* (in the block read last's range but not in it: no record has the key) */
        /* another block */
        if (b->seq != 0 && (rc = block_write(db, b)) != SQLITE_OK)
            break;
        if ((rc = block_find(db, key, b)) != SQLITE_OK)
            break;
        if (b->seq != 0 && (at = block_index(b, key)) >= 0) {
            b->drop[at] = true;
            add_deleted(out, nout, cap, key, b->ents[at].payload);
        }
    }
    if (rc == SQLITE_OK && b->seq != 0)
        rc = block_write(db, b);
    block_free(b);
    free(b);
    sqlite3_finalize(single);
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int tg_logblock_oldest(sqlite3 *db, int64_t lo, int64_t hi, int64_t count, int64_t **keys, size_t *nkeys)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    *keys = NULL;
    *nkeys = 0;
    int rc = sqlite3_prepare_v2(
        db, "SELECT seq, rec, flags FROM main.log_rows WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi > INT64_MAX - TG_LOGBLOCK_SPAN ? INT64_MAX : hi + TG_LOGBLOCK_SPAN);
    while ((int64_t)*nkeys < count && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if ((sqlite3_column_int64(st, 2) & TG_LOGFLAG_BLOCK) == 0) {
            if (seq >= lo && seq <= hi) {
                if (*nkeys == cap)
                    *keys = tg_realloc(*keys, (cap = cap != 0 ? cap * 2 : 256) * sizeof(**keys));
                (*keys)[(*nkeys)++] = seq;
            }
        } else {
            const void *p = sqlite3_column_blob(st, 1);
            size_t len = (size_t)sqlite3_column_bytes(st, 1), off = 0;
            tg_logblock_entry_t e;
            while ((int64_t)*nkeys < count && p != NULL && tg_logblock_next(p, len, seq, &off, &e) == 1) {
                if (e.key < lo || e.key > hi)
                    continue;
                if (*nkeys == cap)
                    *keys = tg_realloc(*keys, (cap = cap != 0 ? cap * 2 : 256) * sizeof(**keys));
                (*keys)[(*nkeys)++] = e.key;
            }
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        free(*keys);
        *keys = NULL;
        *nkeys = 0;
        return rc;
    }
    qsort(*keys, *nkeys, sizeof(**keys), cmp_key); /* (a late record's row comes after a block with later keys) */
    return SQLITE_OK;
}
