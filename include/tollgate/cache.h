/*
 * The response cache store (SPEC.md section 7): entries keyed by a 32-byte digest of the request, in a bounded
 * in-memory tier (LRU, cache_max_memory) in front of a persistent tier under data_dir (SQLite, cache.db, bounded by
 * cache_max_disk), so entries survive a restart.
 *
 * An entry is immutable once built: the stored status, the head as "name: value" lines, the body, and whether the
 * body is an event stream. Entries are reference counted; a lookup returns a reference that the caller releases
 * when it has sent the body (a replay may pause on a slow client meanwhile, eviction does not free under it).
 *
 * Time is always passed in (now_ms), so expiry is tested with injected time: an expired entry is never returned
 * and is reclaimed by the next lookup or by the background sweep.
 *
 * Threads: the memory tier is shared by all workers (one mutex; every operation under it is O(1) or a bounded
 * walk). tg_cache_get_disk and tg_cache_purge read and write the database and so block: call them from the libuv
 * threadpool, never from a worker's loop. A writer thread persists new entries in batches (records never wait for
 * the disk: the persist queue is bounded and what overflows stays in memory only, counted).
 */
#ifndef TOLLGATE_CACHE_H
#define TOLLGATE_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tollgate/buf.h"
#include "tollgate/common.h"
#include "tollgate/usage.h"

#define TG_CACHE_KEY_LEN 32
#define TG_CACHE_TTL_MIN 60u           /* seconds, cf-aig-cache-ttl */
#define TG_CACHE_TTL_MAX 2592000u      /* 30 days */
#define TG_CACHE_TTL_CUSTOM_KEY 300u   /* a cf-aig-cache-key on a gateway with caching off */

typedef struct st_tg_cache_key_t {
    uint8_t b[TG_CACHE_KEY_LEN];
} tg_cache_key_t;

/* What the default key covers (SPEC.md section 7); the credential enters only as part of the digest. */
typedef struct st_tg_cache_key_parts_t {
    const char *account, *gateway, *provider;
    tg_iovec_t method, path, query; /* path: the provider-native path; query without '?' */
    tg_iovec_t credential;          /* the provider credential header values, concatenated; empty when none */
    tg_iovec_t body;
    bool stream; /* the client asked for an event stream: a stream never answers a plain request, nor the reverse */
} tg_cache_key_parts_t;

/* The default key, or with `custom` (cf-aig-cache-key, non-empty) the key of (account, gateway, custom, stream). */
void tg_cache_key(const tg_cache_key_parts_t *parts, tg_iovec_t custom, tg_cache_key_t *out);
/* 64 lowercase hex digits plus NUL. */
void tg_cache_key_hex(const tg_cache_key_t *k, char out[2 * TG_CACHE_KEY_LEN + 1]);

typedef struct st_tg_cache_entry_t tg_cache_entry_t;
struct st_tg_cache_entry_t {
    atomic_uint refs;
    tg_cache_key_t key;
    uint64_t created_ms, expires_ms;
    int status;
    bool stream;
    const char *account, *gateway; /* for purges, in `data` */
    const char *head;              /* "name: value\n" lines, in `data` */
    size_t head_len;
    const char *body; /* in `data` */
    size_t body_len;
    size_t size; /* bytes the entry holds */
    /* the answer's token usage: what the miss's recorder read from the provider's answer (cacheserve.h), or else
     * read out of the body by the first logged hit, kept for the next ones and on disk (tg_cache_entry_get_usage) */
    atomic_uint _usage_state; /* 0 not read yet, 1 being set, 2 set */
    tg_usage_t _usage;
    char _usage_model[TG_USAGE_MODEL_MAX];
    /* memory tier (under the cache's mutex) */
    tg_cache_entry_t *_hnext, *_prev, *_next;
    char data[];
};

/* A new entry (one reference) holding copies of everything given. */
tg_cache_entry_t *tg_cache_entry_new(const tg_cache_key_t *key, const char *account, const char *gateway,
                                     uint64_t created_ms, uint64_t expires_ms, int status, bool stream,
                                     tg_iovec_t head, tg_iovec_t body);
void tg_cache_entry_retain(tg_cache_entry_t *e);
/* The usage (and the model the answer names, "" when none) a hit read from this entry's body before: true and
 * filled in, or false. tg_cache_entry_set_usage keeps the first one given. Any thread. */
bool tg_cache_entry_get_usage(tg_cache_entry_t *e, tg_usage_t *u, const char **model);
void tg_cache_entry_set_usage(tg_cache_entry_t *e, const tg_usage_t *u, const char *model);
void tg_cache_entry_release(tg_cache_entry_t *e);

typedef struct st_tg_cache_stats_t {
    uint64_t memory_entries, memory_bytes;
    uint64_t disk_entries, disk_bytes;
    uint64_t evictions_memory, evictions_disk, expired;
    uint64_t persist_dropped; /* entries that stayed in memory only: the persist queue was full */
} tg_cache_stats_t;

typedef struct st_tg_cache_t tg_cache_t;

/* Opens (creating if needed) data_dir/cache.db and starts the writer; NULL data_dir: memory tier only. NULL with a
 * message on failure. */
tg_cache_t *tg_cache_open(const char *data_dir, uint64_t max_memory, uint64_t max_disk, char *err, size_t errsz);
/* Persists what is queued, stops the writer, frees everything. */
void tg_cache_close(tg_cache_t *c);
/* New bounds (config reload); the memory tier shrinks at once if needed. */
void tg_cache_set_limits(tg_cache_t *c, uint64_t max_memory, uint64_t max_disk);

/* The memory tier's entry for `key` (a reference) or NULL. Any thread; never blocks on the disk. */
tg_cache_entry_t *tg_cache_get_memory(tg_cache_t *c, const tg_cache_key_t *key, uint64_t now_ms);
/* The persistent tier's entry (a reference, now also in memory) or NULL. Blocks: threadpool only. */
tg_cache_entry_t *tg_cache_get_disk(tg_cache_t *c, const tg_cache_key_t *key, uint64_t now_ms);
/* True when the persistent tier may hold entries (lookups there are worth a threadpool trip). */
bool tg_cache_has_disk(tg_cache_t *c);
/* Stores `e` (takes the caller's reference): in memory at once, on disk by the writer. Replaces an entry of the
 * same key. An entry larger than the memory tier goes to disk only. */
void tg_cache_put(tg_cache_t *c, tg_cache_entry_t *e);
/* Removes a gateway's entries, or only the one of `key` when not NULL, from both tiers. Returns how many were
 * removed, or -1 on a database error. Blocks: threadpool or main thread. */
int64_t tg_cache_purge(tg_cache_t *c, const char *account, const char *gateway, const tg_cache_key_t *key);
/* Removes expired entries from both tiers (the writer calls it every minute; tests call it). Blocks. */
void tg_cache_sweep(tg_cache_t *c, uint64_t now_ms);
/* Waits until every put so far is on disk (tests, shutdown). */
void tg_cache_flush(tg_cache_t *c);
void tg_cache_stats(tg_cache_t *c, tg_cache_stats_t *out);

/*
 * In-flight misses, for coalescing (cacheserve.h): a table from key to the caller's flight object, guarded by its
 * own lock, which also guards everything the caller keeps in its flights. The functions below the lock call are
 * for when it is held.
 */
void tg_cache_flights_lock(tg_cache_t *c);
void tg_cache_flights_unlock(tg_cache_t *c);
void *tg_cache_flight_get(tg_cache_t *c, const tg_cache_key_t *key);
void tg_cache_flight_add(tg_cache_t *c, const tg_cache_key_t *key, void *flight);
/* Removes the key's slot if it holds `flight`. */
void tg_cache_flight_del(tg_cache_t *c, const tg_cache_key_t *key, void *flight);

/* What happened to one request, counted per gateway for /metrics. */
typedef enum {
    TG_CACHE_HIT,
    TG_CACHE_MISS,
    TG_CACHE_COALESCED, /* waited for an identical request's upstream call instead of making one */
    TG_CACHE_STORED,    /* an answer was stored (`bytes`: its size) */
    TG_CACHE__EVENTS
} tg_cache_event_t;
void tg_cache_count(tg_cache_t *c, const char *account, const char *gateway, tg_cache_event_t ev, uint64_t bytes);
/* The cache's series in the Prometheus text format (appended to `out`). Any thread. */
void tg_cache_render_metrics(tg_cache_t *c, tg_buf_t *out);

#endif
