/*
 * Changing records that are in blocks (log layout 5: rows of log_rows holding many records, logrow.h).
 *
 * A block is written once and read whole; what changes one of its records (a PATCH of feedback, score or metadata, a
 * payload found lost) first gives that record a row of its own (tg_logblock_unblock), after which the usual UPDATE
 * of log_rows applies. Deletes take records out of their blocks directly (tg_logblock_delete), each block rewritten
 * once for all its records deleted. A block keeps the key of its last record: one that loses it is keyed again by the
 * last one it keeps.
 *
 * Each function runs inside the caller's write transaction on db and answers SQLITE_OK or an SQLite error code (the
 * caller rolls back).
 */
#ifndef TOLLGATE_LOGBLOCK_H
#define TOLLGATE_LOGBLOCK_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* Gives the record with key `key` a row of its own when it is in a block (*moved set; else it has one already, or
 * no record has that key). */
int tg_logblock_unblock(sqlite3 *db, int64_t key, int *moved);

typedef struct {
    int64_t seq, ref; /* a deleted record's key and payload reference (-1: none) */
} tg_logdeleted_t;

/* Deletes the records with keys keys[0..n) (ascending; keys no record has are passed over), appending each one
 * deleted to *out (*nout of them, *cap its size: an array the caller frees). */
int tg_logblock_delete(sqlite3 *db, const int64_t *keys, size_t n, tg_logdeleted_t **out, size_t *nout, size_t *cap);

/* The keys of the oldest `count` records with keys in [lo, hi] (in the order of the rows: the oldest first, to the
 * few milliseconds a late record's row is off), ascending, into *keys (*nkeys of them; an array the caller frees). */
int tg_logblock_oldest(sqlite3 *db, int64_t lo, int64_t hi, int64_t count, int64_t **keys, size_t *nkeys);

#endif
