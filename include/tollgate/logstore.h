/*
 * The request log store: one record per request (SPEC.md section 8), kept in SQLite (WAL mode) under data_dir.
 *
 * Writing: workers hand finished records to tg_logstore_submit, which never blocks on the disk: records go on a
 * bounded queue (log_queue_size records, log_queue_memory bytes) and a writer thread stores them in batched
 * transactions, with their heads and bodies in payload segments beside the database (logseg.h). The queue's
 * log_queue_size places are taken when a request starts (tg_logstore_reserve), so that a request the queue has no
 * room for keeps no record and names none; a record that holds a place is dropped only when the store is closing,
 * and one finished while the queue's bytes are at log_queue_memory is kept without its heads and bodies. Whatever is
 * dropped or shed is counted (/metrics), never waited for. On close
 * the queue is flushed. Retention per gateway (log_management, log_management_strategy) is applied by the writer
 * as it inserts.
 *
 * Reading: the logs API and the CLI open their own connections (tg_logstore_reader) and query through
 * logquery.h; WAL lets them read while the writer writes.
 *
 * Records are heap objects created with tg_logrec_new, filled in by the worker, then owned by the store. A record
 * carries its own arena: its strings, heads and request body are bump-allocated in the record's own allocation
 * (more chunks only when they do not fit), so a record costs the worker two allocations (the record and a response
 * body) instead of one per field. A record is freed by the thread that made it: tg_logrec_free on another thread
 * hands it back (freeing across threads took the worker's malloc arena lock and stalled it; bench/RESULTS.md).
 */
#ifndef TOLLGATE_LOGSTORE_H
#define TOLLGATE_LOGSTORE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include "tollgate/buf.h"
#include "tollgate/common.h"
#include "tollgate/config.h"
#include "tollgate/usage.h"

#define TG_ULID_LEN 26
#define TG_METADATA_MAX_ENTRIES 5

typedef struct st_tg_logrec_t tg_logrec_t;
typedef struct st_tg_logrec_chunk_t tg_logrec_chunk_t;
typedef struct st_tg_logrec_pool_t tg_logrec_pool_t;

typedef struct st_tg_logmeta_t {
    const char *key;
    const char *value; /* as text: strings as they are, numbers as written, true/false */
} tg_logmeta_t;

struct st_tg_logrec_t {
    tg_logrec_t *_next;
    tg_logrec_pool_t *_pool; /* of the thread that made it, which takes it back for reuse (store.c) */
    size_t _inline;          /* bytes of arena[] in this block */
    char *_body_spare;       /* a response body buffer kept for reuse (tg_logrec_body_init takes it), or NULL */
    size_t _body_spare_cap;
    char id[TG_ULID_LEN + 1];
    uint64_t created_at_ms; /* unix ms when the request arrived */
    /* strings: NUL-terminated, in the record's arena (tg_logrec_strndup) or static; never freed one by one */
    const char *account, *gateway, *provider, *model, *path, *request_type;
    const char *event_id;      /* NULL when none */
    const char *metadata_json; /* the flat object as stored, NULL when none */
    tg_logmeta_t metadata[TG_METADATA_MAX_ENTRIES];
    size_t num_metadata;
    const char *user_agent, *request_content_type, *response_content_type;
    const char *request_head, *response_head; /* one "name: value" line a header, credentials left out */
    const char *error;                        /* what went wrong, when the gateway knows (NULL otherwise) */
    /* (a string field added here is added to LEAN_STRINGS in store.c, which copies a record without its payload) */
    int status_code;                    /* 0 when nothing was sent */
    bool success, cached, stream, custom_cost;
    uint64_t duration_ms, ttfb_ms;
    tg_usage_t usage;
    double cost; /* USD; < 0 = unknown (null) */
    int step;    /* universal endpoint step, -1 when none */
    uint64_t request_size, response_size;
    /* bodies: kept unless payload collection is off or the body is over log_max_body */
    bool payload;                            /* payload collection was on */
    bool request_body_dropped, response_body_dropped; /* over the limit: not stored */
    bool payload_shed; /* heads and bodies left out: the queue was at log_queue_memory (tg_logstore_submit) */
    tg_iovec_t request_body; /* in the arena */
    tg_buf_t response_body;  /* grows as the answer arrives */
    /* retention of the gateway, as configured when the request arrived */
    int64_t log_management;
    tg_log_strategy_t log_management_strategy;
    bool admitted; /* holds a place tg_logstore_admit reserved: given back when the writer has taken it, or dropped */
    bool queue_place; /* holds a queue place tg_logstore_reserve took: given back when the writer takes it, or dropped */
    /* feedback and score: set by PATCH on stored rows; in a record only when it is read back from an older layout */
    bool reviewed;
    int feedback; /* -1, 0, 1; < -1 = none */
    double score; /* NAN = none */
    /* the arena: `arena_left` bytes free at `arena_cur`, in the inline space or the newest chunk. (These and the
     * fields before `id` belong to the block, not to the record: one added is restored by shed_payload in store.c,
     * which copies a record whole into a smaller block.) */
    char *arena_cur;
    size_t arena_left, arena_size;
    tg_logrec_chunk_t *chunks;
    char arena[];
};

/* A record with every field empty (strings NULL, sizes 0, cost unknown, step -1), a fresh ULID, and `arena` bytes
 * of space for its strings in the same allocation (more is added on demand). */
tg_logrec_t *tg_logrec_new(uint64_t created_at_ms, size_t arena);
/* Any thread: frees the record, or gives it back to the thread that made it, which takes it back (to reuse or free)
 * when it next makes one; the store's writer frees what is given back and kept once it is idle. */
void tg_logrec_free(tg_logrec_t *r);
/* Readies response_body for up to `max` bytes, with the buffer an earlier record left if there is one (a record
 * comes with response_body empty, max 0). */
void tg_logrec_body_init(tg_logrec_t *r, size_t max);
/* `n` bytes (unaligned: for text) from the record's arena; they live as long as the record. */
char *tg_logrec_alloc(tg_logrec_t *r, size_t n);
/* A NUL-terminated copy of s[0..n) in the record's arena; NULL when s is NULL. */
const char *tg_logrec_strndup(tg_logrec_t *r, const char *s, size_t n);
static inline const char *tg_logrec_strdup(tg_logrec_t *r, const char *s)
{
    return s != NULL ? tg_logrec_strndup(r, s, strlen(s)) : NULL;
}
/*
 * Sets the record's metadata from a cf-aig-metadata value (or a PATCH body): a flat JSON object of at most
 * TG_METADATA_MAX_ENTRIES entries whose values are strings, numbers or booleans; keys beginning "cf." are reserved
 * and not kept. Returns 0, or -1 with *why saying what is wrong (the caller names the header).
 */
int tg_logrec_set_metadata(tg_logrec_t *r, const char *json, size_t len, const char **why);
/* A JSON scalar as metadata keeps it (and as filters compare it): strings as they are, integers and reals as
 * written, true/false; NULL for anything else. `buf` holds the number's text. */
const char *tg_logmeta_text(const json_t *v, char buf[64]);
/* Bytes the record holds (for the queue's memory bound). */
size_t tg_logrec_size(const tg_logrec_t *r);

/* The time part of a ULID (unix ms); -1 when `id` is not one. Records are found by id through it. */
int tg_ulid_time(const char *id, uint64_t *ms);
/* A ULID for `ms` (26 characters of Crockford base32 plus NUL): time-ordered, 80 random bits. Any thread. */
void tg_ulid(uint64_t ms, char out[TG_ULID_LEN + 1]);

typedef struct st_tg_logstore_stats_t {
    uint64_t written;          /* records stored */
    uint64_t dropped_full;     /* dropped because the queue was full */
    uint64_t payloads_shed;    /* records queued without their heads and bodies, at log_queue_memory */
    uint64_t dropped_retention; /* not stored: STOP_INSERTING and the gateway at its log_management */
    uint64_t deleted_retention; /* deleted by DELETE_OLDEST */
    uint64_t write_errors;     /* records lost to a database error */
    uint64_t batches;
    uint64_t batch_ns_sum;     /* time spent in batch transactions */
    uint64_t batch_ns_max;
    size_t queue_depth;        /* records waiting now */
    size_t queue_bytes;
    size_t in_flight;          /* records being made that hold a queue place (tg_logstore_reserve) */
} tg_logstore_stats_t;

typedef struct st_tg_logstore_t tg_logstore_t;

/* Opens (creating if needed) data_dir/logs.db and starts the writer. NULL with a message in errbuf on failure. */
tg_logstore_t *tg_logstore_open(const char *data_dir, uint32_t queue_size, uint64_t queue_memory, char *errbuf,
                                size_t errbufsz);
/*
 * A queue place for a record about to be made: true takes it, and the caller sets the record's `queue_place` and
 * submits it (or calls tg_logstore_unreserve if it makes none); false when log_queue_size places are held, by records
 * being made and records queued, counted in dropped_full. A place is held from the request's start to the moment the
 * writer takes the record, so the log id an answer names is not lost to a full queue later. Any thread; lock-free.
 */
bool tg_logstore_reserve(tg_logstore_t *s);
/* Gives back a place tg_logstore_reserve took for a record that will not be submitted. */
void tg_logstore_unreserve(tg_logstore_t *s);
/*
 * Takes `r` (always: queued, or dropped and counted). A record without a queue place takes one here if one is free.
 * Dropped: no place, or the store closing. A record that would take the queued bytes past log_queue_memory is queued
 * without its heads and bodies (a copy of its fields, `payload_shed`, counted in payloads_shed), so a record that holds
 * a place is stored whatever its size: the queue's bytes are then over the bound by at most that many such copies
 * (each its fields and strings, bounded by the request's header limits). Any thread; never waits for the disk.
 */
void tg_logstore_submit(tg_logstore_t *s, tg_logrec_t *r);
/* New queue bounds (config reload). */
void tg_logstore_set_limits(tg_logstore_t *s, uint32_t queue_size, uint64_t queue_memory);
/*
 * STOP_INSERTING at `limit` rows, for a record of account/gateway: true reserves a place for it, and the caller
 * submits the record with `admitted` set (every admitted record must be submitted: the place is given back when the
 * writer has taken it, or when it is dropped); false when the gateway's rows (as the writer last counted them,
 * after each batch and at open) and the places held by records not yet written reach the limit. The refusal is
 * counted in dropped_retention. So a worker keeps no record, and answers with no cf-aig-log-id, for what would not
 * be stored, and a record it keeps is not refused by the writer (unless a reload changes the retention meanwhile).
 * After a delete the count before it holds until the writer counts again (its next batch; an idle writer wakes for
 * it). Any thread.
 */
bool tg_logstore_admit(tg_logstore_t *s, const char *account, const char *gateway, int64_t limit);
/* Waits until everything submitted so far is written (tests, CLI, shutdown). */
void tg_logstore_flush(tg_logstore_t *s);
/* Tells the writer that rows were deleted behind its back (the logs API), so it recounts for retention. */
void tg_logstore_rows_deleted(tg_logstore_t *s);
void tg_logstore_stats(tg_logstore_t *s, tg_logstore_stats_t *out);
/* Flushes the queue, stops the writer and closes the database. */
void tg_logstore_close(tg_logstore_t *s);

/*
 * Row keys (logs.seq): gw << 51 | created_at << 9 | n, where gw (1 to 4095) numbers the gateway in the store, created_at
 * is unix ms (to the year 2109) and n tells apart the records of one millisecond. A gateway's records are the keys
 * tg_logseq_first(gw) .. tg_logseq_last(gw), in time order.
 */
#define TG_LOGSEQ_GW_SHIFT 51
#define TG_LOGSEQ_MS_SHIFT 9
#define TG_LOGSEQ_MAX_GW 4095
#define TG_LOGSEQ_MAX_MS ((UINT64_C(1) << 42) - 1)
static inline int64_t tg_logseq_first(int64_t gw)
{
    return gw << TG_LOGSEQ_GW_SHIFT;
}
static inline int64_t tg_logseq_last(int64_t gw)
{
    return tg_logseq_first(gw) | ((INT64_C(1) << TG_LOGSEQ_GW_SHIFT) - 1);
}
/* The first key of millisecond `ms` (clamped to the range keys can hold) of gateway gw. */
static inline int64_t tg_logseq_at(int64_t gw, int64_t ms)
{
    uint64_t m = ms < 0 ? 0 : (uint64_t)ms > TG_LOGSEQ_MAX_MS ? TG_LOGSEQ_MAX_MS : (uint64_t)ms;
    return tg_logseq_first(gw) | (int64_t)(m << TG_LOGSEQ_MS_SHIFT);
}
/* A record's key is within TG_LOGSEQ_SPAN milliseconds of its created_at, or listed in log_displaced (store.c). */
#define TG_LOGSEQ_SPAN 4
/* The keys of a block's records (logrow.h) are within TG_LOGBLOCK_SPAN below its row's key; a record whose key comes
 * from its own millisecond, not the next in order, takes n >= TG_LOGSEQ_LATE_N, so it is never a key in a block. */
#define TG_LOGBLOCK_SPAN_MS 8
#define TG_LOGBLOCK_SPAN ((int64_t)TG_LOGBLOCK_SPAN_MS << TG_LOGSEQ_MS_SHIFT)
#define TG_LOGSEQ_LATE_N 448 /* (448k in-order records a second a gateway; 64 keys a ms for late ones, ~5% of them) */
/* Forgets displaced records whose row is gone (after deletes). */
#define TG_LOGSTORE_UNDISPLACE_SQL                                                                                     \
    "DELETE FROM log_displaced WHERE NOT EXISTS (SELECT 1 FROM log_rows r WHERE r.seq = log_displaced.seq)"
static inline uint64_t tg_logseq_ms(int64_t seq)
{
    return ((uint64_t)seq >> TG_LOGSEQ_MS_SHIFT) & TG_LOGSEQ_MAX_MS;
}
static inline unsigned tg_logseq_gw(int64_t seq)
{
    return (unsigned)((uint64_t)seq >> TG_LOGSEQ_GW_SHIFT);
}

/* logs.flags */
#define TG_LOGFLAG_STREAM 1
#define TG_LOGFLAG_CUSTOM_COST 2
#define TG_LOGFLAG_PAYLOAD 4           /* payload collection was on */
#define TG_LOGFLAG_REQUEST_DROPPED 8   /* the request body was over log_max_body */
#define TG_LOGFLAG_RESPONSE_DROPPED 16 /* the response body was */
#define TG_LOGFLAG_PAYLOAD_LOST 32     /* heads and bodies could not be written (see the gateway's log) */
#define TG_LOGFLAG_NO_REQUEST_HEAD 64  /* no head was kept (an empty one is a head with no lines) */
#define TG_LOGFLAG_NO_RESPONSE_HEAD 128
#define TG_LOGFLAG_PAYLOAD_SHED 256    /* heads and bodies left out: the log queue was at log_queue_memory */
#define TG_LOGFLAG_BLOCK 512           /* (a row's, not a record's) the row is a block of records (logrow.h) */

/* The payload directory (data_dir/log-payloads) of a connection to data_dir/logs.db, in out; NULL when it does not
 * fit. */
const char *tg_logstore_payload_dir(sqlite3 *db, char *out, size_t outsz);

/* A query connection from the store's pool (opened on demand; at most a few kept idle). Any thread. NULL with a
 * message on failure. Give it back with tg_logstore_release. */
sqlite3 *tg_logstore_acquire(tg_logstore_t *s, char *errbuf, size_t errbufsz);
void tg_logstore_release(tg_logstore_t *s, sqlite3 *db);

/* A connection for queries (read-write, so the API can PATCH and DELETE; busy timeout set) to data_dir/logs.db, which
 * must hold this layout (a store opened once converts older ones). Any thread; one thread at a time per connection.
 * NULL with a message on failure. */
sqlite3 *tg_logstore_reader(const char *data_dir, bool readonly, char *errbuf, size_t errbufsz);

#endif
