/*
 * The request log store: one record per request (SPEC.md section 8), kept in SQLite (WAL mode) under data_dir.
 *
 * Writing: workers hand finished records to tg_logstore_submit, which never blocks on the disk: records go on a
 * bounded queue (log_queue_size records, log_queue_memory bytes) and a writer thread stores them in batched
 * transactions. When the queue is full the record is dropped and counted (/metrics), never waited for. On close
 * the queue is flushed. Retention per gateway (log_management, log_management_strategy) is applied by the writer
 * as it inserts.
 *
 * Reading: the logs API and the CLI open their own connections (tg_logstore_reader) and query through
 * logquery.h; WAL lets them read while the writer writes.
 *
 * Records are heap objects created with tg_logrec_new, filled in by the worker, then owned by the store. A record
 * carries its own arena: its strings, heads and request body are bump-allocated in the record's own allocation
 * (more chunks only when they do not fit), so a record costs the worker two allocations (the record and a response
 * body) and the writer two frees, instead of one per field: most of what logging cost a worker was malloc traffic
 * between the worker's and the writer's heaps (bench/RESULTS.md).
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

typedef struct st_tg_logmeta_t {
    const char *key;
    const char *value; /* as text: strings as they are, numbers as written, true/false */
} tg_logmeta_t;

struct st_tg_logrec_t {
    tg_logrec_t *_next;
    char id[TG_ULID_LEN + 1];
    uint64_t created_at_ms; /* unix ms when the request arrived */
    /* strings: NUL-terminated, in the record's arena (tg_logrec_strndup) or static; never freed one by one */
    const char *account, *gateway, *provider, *model, *path, *request_type;
    const char *event_id;      /* NULL when none */
    const char *metadata_json; /* the flat object as stored, NULL when none */
    tg_logmeta_t metadata[TG_METADATA_MAX_ENTRIES];
    size_t num_metadata;
    const char *user_agent, *request_content_type, *response_content_type;
    const char *request_head, *response_head; /* JSON objects of headers, credentials removed */
    const char *error;                        /* what went wrong, when the gateway knows (NULL otherwise) */
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
    tg_iovec_t request_body; /* in the arena */
    tg_buf_t response_body;  /* grows as the answer arrives */
    /* retention of the gateway, as configured when the request arrived */
    int64_t log_management;
    tg_log_strategy_t log_management_strategy;
    /* the arena: `arena_left` bytes free at `arena_cur`, in the inline space or the newest chunk */
    char *arena_cur;
    size_t arena_left, arena_size;
    tg_logrec_chunk_t *chunks;
    char arena[];
};

/* A record with every field empty (strings NULL, sizes 0, cost unknown, step -1), a fresh ULID, and `arena` bytes
 * of space for its strings in the same allocation (more is added on demand). */
tg_logrec_t *tg_logrec_new(uint64_t created_at_ms, size_t arena);
void tg_logrec_free(tg_logrec_t *r);
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
    uint64_t dropped_retention; /* not stored: STOP_INSERTING and the gateway at its log_management */
    uint64_t deleted_retention; /* deleted by DELETE_OLDEST */
    uint64_t write_errors;     /* records lost to a database error */
    uint64_t batches;
    uint64_t batch_ns_sum;     /* time spent in batch transactions */
    uint64_t batch_ns_max;
    size_t queue_depth;        /* records waiting now */
    size_t queue_bytes;
} tg_logstore_stats_t;

typedef struct st_tg_logstore_t tg_logstore_t;

/* Opens (creating if needed) data_dir/logs.db and starts the writer. NULL with a message in errbuf on failure. */
tg_logstore_t *tg_logstore_open(const char *data_dir, uint32_t queue_size, uint64_t queue_memory, char *errbuf,
                                size_t errbufsz);
/* Takes `r` (always: stored, or dropped and counted). Any thread; never waits for the disk. */
void tg_logstore_submit(tg_logstore_t *s, tg_logrec_t *r);
/* New queue bounds (config reload). */
void tg_logstore_set_limits(tg_logstore_t *s, uint32_t queue_size, uint64_t queue_memory);
/* Waits until everything submitted so far is written (tests, CLI, shutdown). */
void tg_logstore_flush(tg_logstore_t *s);
/* Tells the writer that rows were deleted behind its back (the logs API), so it recounts for retention. */
void tg_logstore_rows_deleted(tg_logstore_t *s);
void tg_logstore_stats(tg_logstore_t *s, tg_logstore_stats_t *out);
/* Flushes the queue, stops the writer and closes the database. */
void tg_logstore_close(tg_logstore_t *s);

/* A query connection from the store's pool (opened on demand; at most a few kept idle). Any thread. NULL with a
 * message on failure. Give it back with tg_logstore_release. */
sqlite3 *tg_logstore_acquire(tg_logstore_t *s, char *errbuf, size_t errbufsz);
void tg_logstore_release(tg_logstore_t *s, sqlite3 *db);

/* A connection for queries (read-write, so the API can PATCH and DELETE; busy timeout set). Any thread; one thread
 * at a time per connection. `path` is data_dir/logs.db. NULL with a message on failure. */
sqlite3 *tg_logstore_reader(const char *data_dir, bool readonly, char *errbuf, size_t errbufsz);

#endif
