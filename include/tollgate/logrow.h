/*
 * The packed row of a log record (log store layout 4): the fields the API shows and filters on, but those a stored
 * record can still change (metadata, by PATCH) or that have an index, packed into one BLOB.
 *
 * Why: SQLite's cost of a row grows with its columns. Binding 28 values and building a record of 28 columns made
 * ~13k of the ~14k instructions the log writer spent on a row (callgrind); a BLOB built here and six columns beside
 * it took the writer's CPU per record from 3.4-3.7 to 2.7-3.0 us at 64 connections (bench/RESULTS.md), and
 * bench/logwriter's unpaced ceiling from 103k to 142k records/s. Queries read the fields through the SQL function
 * the table `logs` (logtab.h), under the column names of layout 3, so the SQL of the logs API is the same
 * as when they were columns; they pay for it (doc/logs.md, "The store").
 *
 * Format: a byte TG_LOGROW_VERSION, then the fields in the order of tg_logrow_field_t, each one
 *
 *     integer: varint(v + 1)            0 = NULL (a count of -1, "unknown")
 *     text:    varint(len + 1), bytes   0 = NULL
 *     real:    0 (NULL), or 1 and the 8 bytes of the IEEE double, little-endian
 *
 * with varints of 7 bits a byte, low bits first, the high bit saying another byte follows (at most 10). A reader
 * checks every length against the blob: a damaged row reads as NULL fields, never past its end.
 */
#ifndef TOLLGATE_LOGROW_H
#define TOLLGATE_LOGROW_H

#include "tollgate/buf.h"
#include "tollgate/common.h"

#define TG_LOGROW_VERSION 1

typedef enum {
    TG_LR_ID,
    TG_LR_CREATED_AT,
    TG_LR_PROVIDER,
    TG_LR_MODEL,
    TG_LR_PATH,
    TG_LR_REQUEST_TYPE,
    TG_LR_SUCCESS,
    TG_LR_STATUS_CODE,
    TG_LR_CACHED,
    TG_LR_DURATION,
    TG_LR_TTFB,
    TG_LR_TOKENS_IN,
    TG_LR_TOKENS_OUT,
    TG_LR_CACHED_TOKENS,
    TG_LR_CACHE_WRITE_TOKENS,
    TG_LR_COST,
    TG_LR_STEP,
    TG_LR_REQUEST_SIZE,
    TG_LR_RESPONSE_SIZE,
    TG_LR_REQUEST_CONTENT_TYPE,
    TG_LR_RESPONSE_CONTENT_TYPE,
    TG_LR_USER_AGENT,
    TG_LR_ERROR,
    TG_LR_NUM
} tg_logrow_field_t;

typedef enum { TG_LRV_NULL, TG_LRV_INT, TG_LRV_REAL, TG_LRV_TEXT } tg_logrow_type_t;

/* A field's value: for text, `s` points into the row (not NUL-terminated), `len` bytes. */
typedef struct {
    tg_logrow_type_t type;
    int64_t i;
    double d;
    const char *s;
    size_t len;
} tg_logrow_value_t;

/* The fields of a row, as the writer has them (strings NUL-terminated or NULL; counts < 0 = NULL; cost < 0 or NaN =
 * NULL). */
typedef struct {
    const char *id, *provider, *model, *path, *request_type, *request_content_type, *response_content_type, *user_agent,
        *error;
    int64_t created_at, success, status_code, cached, duration, ttfb, tokens_in, tokens_out, cached_tokens,
        cache_write_tokens, step, request_size, response_size;
    double cost;
} tg_logrow_t;

/* The column name of each field in the table `logs` (the layout-3 column it replaces). */
extern const char *const tg_logrow_names[TG_LR_NUM];

/* Appends the packed row of `r` to b; 0, or TG_E_TOOBIG (b's cap: nothing is appended). */
int tg_logrow_pack(tg_buf_t *b, const tg_logrow_t *r);
/* Field f of the packed row p[0..n): 0, or -1 (and a NULL value) when the row is not one this version reads or
 * ends before the field. */
int tg_logrow_get(const void *p, size_t n, unsigned f, tg_logrow_value_t *out);
/* All the fields of p[0..n) in one pass: 0, or -1 when the row is not one this version reads or is cut short (the
 * fields from where it stops on are NULL). Text values point into p. */
int tg_logrow_split(const void *p, size_t n, tg_logrow_value_t out[TG_LR_NUM]);

/*
 * Blocks (log layout 5). A row of log_rows whose flags hold TG_LOGFLAG_BLOCK (logstore.h) is a block of records: up to
 * TG_LOGBLOCK_MAX records of one gateway, written in key order, none with an event id, their keys within
 * TG_LOGBLOCK_SPAN (logstore.h) below the row's key, which is the last record's. Its `rec` is
 *
 *     a byte TG_LOGBLOCK_VERSION, then for each record:
 *     varint(row key - record key), varint(flags), varint(payload + 1)  (0 = NULL),
 *     varint(metadata length + 1) (0 = NULL), the metadata, varint(packed row length), the packed row
 *
 * Why: an SQLite row costs the writer more than the bytes in it (its insert searches the table from its root and
 * builds a cell); a block costs that once for many records (bench/RESULTS.md). A reader checks every length against
 * the blob: a damaged block reads as the records before the damage.
 */
#define TG_LOGBLOCK_VERSION 0xB1
#define TG_LOGBLOCK_MAX 32

typedef struct {
    int64_t key, flags, payload; /* payload -1: NULL */
    const char *metadata;        /* NULL: none (not NUL-terminated: metadata_len bytes) */
    size_t metadata_len;
    const void *rec; /* the packed row */
    size_t rec_len;
} tg_logblock_entry_t;

/* Appends a block's first byte to b; 0 or TG_E_TOOBIG. */
int tg_logblock_begin(tg_buf_t *b);
/* Appends entry e of the block whose row key is row_key (>= e->key) to b; 0 or TG_E_TOOBIG (nothing appended). */
int tg_logblock_add(tg_buf_t *b, int64_t row_key, const tg_logblock_entry_t *e);
/* Reads the entry at *off of the block p[0..n) with row key row_key into e (its pointers into p) and moves *off past
 * it: 1, 0 at the block's end, -1 when it is not a block or is damaged there (nothing further can be read). Start with
 * *off = 0. */
int tg_logblock_next(const void *p, size_t n, int64_t row_key, size_t *off, tg_logblock_entry_t *e);

#endif
