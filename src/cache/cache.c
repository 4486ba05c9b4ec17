/*
 * The response cache store (cache.h).
 *
 * Keys are SHA-256 digests (sha256.h: the CPU's SHA instructions where it has them) over length-prefixed fields, so
 * no two different requests can be confused by where one field ends and the next begins. The memory tier is a
 * chained hash table plus an LRU list (memcached's layout) under one mutex; entries are reference counted so eviction never frees an entry that a
 * replay is still sending. The persistent tier is one SQLite table written by a writer thread in batches (as the
 * log store does) and read from the threadpool.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "tollgate/cache.h"
#include "tollgate/log.h"
#include "tollgate/sha256.h"
#include "tollgate/sqlitedb.h"
#include "tollgate/tgtime.h"

/* ---- keys ------------------------------------------------------------------------------------------------- */

_Static_assert(TG_CACHE_KEY_LEN == TG_SHA256_LEN, "a cache key is a SHA-256 digest");

static void put_field(tg_sha256_t *c, const void *p, size_t n)
{
    uint64_t len = n;
    tg_sha256_update(c, &len, sizeof(len));
    tg_sha256_update(c, p, n);
}

static void put_str(tg_sha256_t *c, const char *s)
{
    put_field(c, s, s != NULL ? strlen(s) : 0);
}

void tg_cache_key(const tg_cache_key_parts_t *parts, tg_iovec_t custom, tg_cache_key_t *out)
{
    tg_sha256_t c;
    tg_sha256_init(&c);
    uint8_t stream = parts->stream ? 1 : 0;
    if (custom.len != 0) {
        put_str(&c, "tollgate-cache-custom-v1");
        put_str(&c, parts->account);
        put_str(&c, parts->gateway);
        put_field(&c, custom.base, custom.len);
        put_field(&c, &stream, 1);
    } else {
        put_str(&c, "tollgate-cache-v1");
        put_str(&c, parts->account);
        put_str(&c, parts->gateway);
        put_str(&c, parts->provider);
        put_field(&c, parts->method.base, parts->method.len);
        put_field(&c, parts->path.base, parts->path.len);
        put_field(&c, parts->query.base, parts->query.len);
        put_field(&c, parts->credential.base, parts->credential.len);
        put_field(&c, parts->body.base, parts->body.len);
        put_field(&c, &stream, 1);
    }
    tg_sha256_final(&c, out->b);
}

void tg_cache_key_hex(const tg_cache_key_t *k, char out[2 * TG_CACHE_KEY_LEN + 1])
{
    tg_hex_lower(k->b, TG_CACHE_KEY_LEN, out);
}

/* ---- entries ---------------------------------------------------------------------------------------------- */

bool tg_cache_entry_get_usage(tg_cache_entry_t *e, tg_usage_t *u, const char **model)
{
    if (atomic_load_explicit(&e->_usage_state, memory_order_acquire) != 2)
        return false;
    *u = e->_usage;
    *model = e->_usage_model;
    return true;
}

void tg_cache_entry_set_usage(tg_cache_entry_t *e, const tg_usage_t *u, const char *model)
{
    unsigned expect = 0;
    if (!atomic_compare_exchange_strong_explicit(&e->_usage_state, &expect, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return; /* set, or being set by another thread: the same answer, so the same usage */
    e->_usage = *u;
    tg_usage_copy_model(e->_usage_model, model);
    atomic_store_explicit(&e->_usage_state, 2, memory_order_release);
}

tg_cache_entry_t *tg_cache_entry_new(const tg_cache_key_t *key, const char *account, const char *gateway,
                                     uint64_t created_ms, uint64_t expires_ms, int status, bool stream,
                                     tg_iovec_t head, tg_iovec_t body)
{
    size_t al = strlen(account) + 1, gl = strlen(gateway) + 1;
    size_t n = al + gl + head.len + 1 + body.len;
    tg_cache_entry_t *e = tg_malloc(sizeof(*e) + n);
    memset(e, 0, sizeof(*e));
    atomic_init(&e->refs, 1);
    e->key = *key;
    e->created_ms = created_ms;
    e->expires_ms = expires_ms;
    e->status = status;
    e->stream = stream;
    char *p = e->data;
    memcpy(p, account, al);
    e->account = p;
    p += al;
    memcpy(p, gateway, gl);
    e->gateway = p;
    p += gl;
    if (head.len != 0)
        memcpy(p, head.base, head.len);
    p[head.len] = '\0';
    e->head = p;
    e->head_len = head.len;
    p += head.len + 1;
    if (body.len != 0)
        memcpy(p, body.base, body.len);
    e->body = p;
    e->body_len = body.len;
    e->size = sizeof(*e) + n;
    return e;
}

void tg_cache_entry_retain(tg_cache_entry_t *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void tg_cache_entry_release(tg_cache_entry_t *e)
{
    if (e != NULL && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

/* ---- the store -------------------------------------------------------------------------------------------- */

#define PERSIST_QUEUE_BYTES (64u << 20)
#define SWEEP_EVERY_MS 60000u
#define NUM_READERS 4

typedef struct persist_item_t {
    struct persist_item_t *next;
    tg_cache_entry_t *e;
} persist_item_t;

#define MAX_GATEWAY_SERIES 256 /* per-gateway counters; later gateways count under "other" */

typedef struct {
    char account[65], gateway[65]; /* ids are at most 64 bytes (config.c) */
    uint64_t events[TG_CACHE__EVENTS];
    uint64_t stored_bytes;
} gw_series_t;

#define FLIGHT_BUCKETS 256

typedef struct flight_slot_t {
    struct flight_slot_t *next;
    tg_cache_key_t key;
    void *flight;
} flight_slot_t;

struct st_tg_cache_t {
    uv_mutex_t fmutex; /* in-flight misses (and the callers' flight objects) */
    flight_slot_t *flights[FLIGHT_BUCKETS];
    uv_mutex_t mutex; /* the memory tier, the stats and the per-gateway counters */
    gw_series_t *series;
    size_t num_series;
    tg_cache_entry_t **buckets;
    size_t num_buckets, count;
    tg_cache_entry_t *lru_head, *lru_tail; /* head: most recently used */
    uint64_t bytes, max_memory, max_disk;
    tg_cache_stats_t stats;

    atomic_uint_fast64_t purge_gen; /* bumped by every purge: a disk read that overlaps one is not promoted */
    /* persistent tier */
    uv_mutex_t wlock; /* held by the writer from taking a batch to its commit, and by purges: a purge never misses
                       * a batch in flight between the queue and the disk */
    char *path;
    sqlite3 *wdb; /* the writer's connection */
    uv_thread_t writer;
    bool has_writer;
    uv_mutex_t qmutex; /* the persist queue, the readers and the disk figures */
    uv_cond_t qwake, qdone;
    persist_item_t *qhead, **qtail;
    uint64_t qbytes, queued, persisted;
    bool stop;
    sqlite3 *readers[NUM_READERS];
    size_t num_readers;
    uint64_t disk_bytes, disk_entries, evictions_disk;
};

static size_t bucket_of(const tg_cache_t *c, const tg_cache_key_t *k)
{
    uint64_t h;
    memcpy(&h, k->b, sizeof(h)); /* the digest is uniform already */
    return (size_t)(h & (c->num_buckets - 1));
}

static void lru_unlink(tg_cache_t *c, tg_cache_entry_t *e)
{
    if (e->_prev != NULL)
        e->_prev->_next = e->_next;
    else
        c->lru_head = e->_next;
    if (e->_next != NULL)
        e->_next->_prev = e->_prev;
    else
        c->lru_tail = e->_prev;
    e->_prev = e->_next = NULL;
}

static void lru_push_front(tg_cache_t *c, tg_cache_entry_t *e)
{
    e->_prev = NULL;
    e->_next = c->lru_head;
    if (c->lru_head != NULL)
        c->lru_head->_prev = e;
    c->lru_head = e;
    if (c->lru_tail == NULL)
        c->lru_tail = e;
}

/* Takes `e` out of the memory tier and drops the tier's reference. Under the mutex. */
static void mem_remove(tg_cache_t *c, tg_cache_entry_t *e)
{
    tg_cache_entry_t **pp = &c->buckets[bucket_of(c, &e->key)];
    while (*pp != e)
        pp = &(*pp)->_hnext;
    *pp = e->_hnext;
    e->_hnext = NULL;
    lru_unlink(c, e);
    c->count--;
    c->bytes -= e->size;
    tg_cache_entry_release(e);
}

static tg_cache_entry_t *mem_find(tg_cache_t *c, const tg_cache_key_t *k)
{
    for (tg_cache_entry_t *e = c->buckets[bucket_of(c, k)]; e != NULL; e = e->_hnext)
        if (memcmp(e->key.b, k->b, TG_CACHE_KEY_LEN) == 0)
            return e;
    return NULL;
}

static void mem_grow(tg_cache_t *c)
{
    size_t n = c->num_buckets * 2;
    tg_cache_entry_t **b = tg_calloc(n, sizeof(*b));
    for (size_t i = 0; i != c->num_buckets; ++i) {
        for (tg_cache_entry_t *e = c->buckets[i], *next; e != NULL; e = next) {
            next = e->_hnext;
            uint64_t h;
            memcpy(&h, e->key.b, sizeof(h));
            size_t j = (size_t)(h & (n - 1));
            e->_hnext = b[j];
            b[j] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->num_buckets = n;
}

/* Evicts least recently used entries until `need` more bytes fit. Under the mutex. */
static void mem_make_room(tg_cache_t *c, uint64_t need)
{
    while (c->lru_tail != NULL && c->bytes + need > c->max_memory) {
        mem_remove(c, c->lru_tail);
        c->stats.evictions_memory++;
    }
}

/* Inserts `e` (a new reference for the tier), replacing an entry of the same key. Under the mutex. */
static void mem_insert(tg_cache_t *c, tg_cache_entry_t *e)
{
    tg_cache_entry_t *old = mem_find(c, &e->key);
    if (old != NULL)
        mem_remove(c, old);
    if (e->size > c->max_memory)
        return; /* larger than the whole tier: disk only */
    mem_make_room(c, e->size);
    if (c->count >= c->num_buckets)
        mem_grow(c);
    tg_cache_entry_retain(e);
    size_t b = bucket_of(c, &e->key);
    e->_hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push_front(c, e);
    c->count++;
    c->bytes += e->size;
}

tg_cache_entry_t *tg_cache_get_memory(tg_cache_t *c, const tg_cache_key_t *key, uint64_t now_ms)
{
    uv_mutex_lock(&c->mutex);
    tg_cache_entry_t *e = mem_find(c, key);
    if (e != NULL && e->expires_ms <= now_ms) {
        mem_remove(c, e);
        c->stats.expired++;
        e = NULL;
    }
    if (e != NULL) {
        lru_unlink(c, e);
        lru_push_front(c, e);
        tg_cache_entry_retain(e);
    }
    uv_mutex_unlock(&c->mutex);
    return e;
}

/* ---- persistent tier -------------------------------------------------------------------------------------- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS entries ("
    " key BLOB PRIMARY KEY, account TEXT NOT NULL, gateway TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
    " status INTEGER NOT NULL, stream INTEGER NOT NULL, head TEXT NOT NULL, body BLOB NOT NULL, size INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires_at);"
    "CREATE INDEX IF NOT EXISTS entries_created ON entries(created_at);"
    "CREATE INDEX IF NOT EXISTS entries_gateway ON entries(account, gateway);";

static sqlite3 *open_conn(const char *path, char *err, size_t errsz)
{
    return tg_sqlite_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err, errsz);
}

static bool exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        tg_log_error("cache store: %s: %s", sql, msg != NULL ? msg : "?");
        sqlite3_free(msg);
        return false;
    }
    return true;
}

/* The answer's usage (tg_cache_entry_set_usage), NULL when it was not known when the entry was written: added to a
 * store made before it kept them. */
static bool add_usage_columns(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool have = sqlite3_prepare_v2(db, "SELECT u_in FROM entries LIMIT 0", -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return have || exec(db, "ALTER TABLE entries ADD COLUMN u_in INTEGER; ALTER TABLE entries ADD COLUMN u_out INTEGER;"
                            "ALTER TABLE entries ADD COLUMN u_cached INTEGER;"
                            "ALTER TABLE entries ADD COLUMN u_write INTEGER;"
                            "ALTER TABLE entries ADD COLUMN u_model TEXT;");
}

static sqlite3 *reader_acquire(tg_cache_t *c)
{
    sqlite3 *db = NULL;
    uv_mutex_lock(&c->qmutex);
    if (c->num_readers != 0)
        db = c->readers[--c->num_readers];
    uv_mutex_unlock(&c->qmutex);
    if (db == NULL) {
        char err[256];
        db = open_conn(c->path, err, sizeof(err));
        if (db == NULL)
            tg_log_error("cache store: %s", err);
    }
    return db;
}

static void reader_release(tg_cache_t *c, sqlite3 *db)
{
    uv_mutex_lock(&c->qmutex);
    if (c->num_readers < NUM_READERS) {
        c->readers[c->num_readers++] = db;
        db = NULL;
    }
    uv_mutex_unlock(&c->qmutex);
    sqlite3_close(db);
}

bool tg_cache_has_disk(tg_cache_t *c)
{
    return c->path != NULL;
}

tg_cache_entry_t *tg_cache_get_disk(tg_cache_t *c, const tg_cache_key_t *key, uint64_t now_ms)
{
    if (c->path == NULL)
        return NULL;
    uint64_t gen = atomic_load(&c->purge_gen);
    sqlite3 *db = reader_acquire(c);
    if (db == NULL)
        return NULL;
    sqlite3_stmt *st = NULL;
    tg_cache_entry_t *e = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT account, gateway, created_at, expires_at, status, stream, head, body, u_in, u_out, "
                           "u_cached, u_write, u_model FROM entries WHERE key = ? AND expires_at > ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, key->b, TG_CACHE_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *head = (const char *)sqlite3_column_text(st, 6);
            size_t head_len = (size_t)sqlite3_column_bytes(st, 6);
            const char *body = sqlite3_column_blob(st, 7);
            size_t body_len = (size_t)sqlite3_column_bytes(st, 7);
            e = tg_cache_entry_new(key, (const char *)sqlite3_column_text(st, 0),
                                   (const char *)sqlite3_column_text(st, 1), (uint64_t)sqlite3_column_int64(st, 2),
                                   (uint64_t)sqlite3_column_int64(st, 3), sqlite3_column_int(st, 4),
                                   sqlite3_column_int(st, 5) != 0, tg_iov(head != NULL ? head : "", head_len),
                                   tg_iov(body != NULL ? body : "", body_len));
            if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
                tg_usage_t u = {sqlite3_column_int64(st, 8), sqlite3_column_int64(st, 9), sqlite3_column_int64(st, 10),
                                sqlite3_column_int64(st, 11)};
                tg_cache_entry_set_usage(e, &u, (const char *)sqlite3_column_text(st, 12));
            }
        }
    }
    sqlite3_finalize(st);
    reader_release(c, db);
    if (e != NULL) { /* promoted: the next hit is served from memory */
        uv_mutex_lock(&c->mutex);
        if (atomic_load(&c->purge_gen) != gen) { /* a purge ran meanwhile: what was read may be purged */
            tg_cache_entry_release(e);
            e = NULL;
        } else if (mem_find(c, key) == NULL) {
            mem_insert(c, e);
        }
        uv_mutex_unlock(&c->mutex);
    }
    return e;
}

/* The disk figures change under qmutex (the writer, purges and sweeps all move them). */
static void disk_adjust(tg_cache_t *c, int64_t bytes, int64_t entries, uint64_t evicted)
{
    uv_mutex_lock(&c->qmutex);
    c->disk_bytes = bytes < 0 ? c->disk_bytes - TG_MIN((uint64_t)-bytes, c->disk_bytes) : c->disk_bytes + (uint64_t)bytes;
    c->disk_entries = entries < 0 ? c->disk_entries - TG_MIN((uint64_t)-entries, c->disk_entries)
                                  : c->disk_entries + (uint64_t)entries;
    c->evictions_disk += evicted;
    uv_mutex_unlock(&c->qmutex);
}

static uint64_t disk_bytes_now(tg_cache_t *c, uint64_t *max)
{
    uv_mutex_lock(&c->qmutex);
    uint64_t b = c->disk_bytes;
    *max = c->max_disk;
    uv_mutex_unlock(&c->qmutex);
    return b;
}

/* Deletes the oldest entries until the tier is under 90% of max_disk. Writer connection, in a transaction. */
static void disk_evict(tg_cache_t *c)
{
    uint64_t max;
    if (disk_bytes_now(c, &max) <= max)
        return;
    sqlite3_stmt *sel = NULL, *del = NULL;
    if (sqlite3_prepare_v2(c->wdb, "SELECT key, size FROM entries ORDER BY created_at LIMIT 256", -1, &sel, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(c->wdb, "DELETE FROM entries WHERE key = ?", -1, &del, NULL) != SQLITE_OK) {
        sqlite3_finalize(sel);
        return;
    }
    uint64_t target = max - max / 10;
    while (disk_bytes_now(c, &max) > target) {
        int got = 0;
        while (disk_bytes_now(c, &max) > target && sqlite3_step(sel) == SQLITE_ROW) {
            ++got;
            sqlite3_bind_blob(del, 1, sqlite3_column_blob(sel, 0), sqlite3_column_bytes(sel, 0), SQLITE_TRANSIENT);
            if (sqlite3_step(del) == SQLITE_DONE && sqlite3_changes(c->wdb) == 1)
                disk_adjust(c, -sqlite3_column_int64(sel, 1), -1, 1);
            sqlite3_reset(del);
        }
        sqlite3_reset(sel);
        if (got == 0)
            break;
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(del);
}

static void disk_figures(tg_cache_t *c);

/* Inserts a batch in one transaction; the disk figures move only once it is committed (a failure recounts them). */
static void disk_write(tg_cache_t *c, persist_item_t *items)
{
    sqlite3_stmt *old = NULL, *ins = NULL;
    if (!exec(c->wdb, "BEGIN IMMEDIATE")) {
        tg_log_error("cache store: a batch of entries was not persisted (they stay in memory)");
        return;
    }
    sqlite3_prepare_v2(c->wdb, "SELECT size FROM entries WHERE key = ?", -1, &old, NULL);
    sqlite3_prepare_v2(c->wdb,
                       "INSERT OR REPLACE INTO entries (key, account, gateway, created_at, expires_at, status, stream, "
                       "head, body, size, u_in, u_out, u_cached, u_write, u_model) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       -1, &ins, NULL);
    int64_t dbytes = 0, dentries = 0;
    bool failed = old == NULL || ins == NULL;
    for (persist_item_t *it = items; it != NULL && !failed; it = it->next) {
        tg_cache_entry_t *e = it->e;
        sqlite3_bind_blob(old, 1, e->key.b, TG_CACHE_KEY_LEN, SQLITE_STATIC);
        int64_t replaced = sqlite3_step(old) == SQLITE_ROW ? sqlite3_column_int64(old, 0) : -1;
        sqlite3_reset(old);
        sqlite3_bind_blob(ins, 1, e->key.b, TG_CACHE_KEY_LEN, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, e->account, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, e->gateway, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 4, (sqlite3_int64)e->created_ms);
        sqlite3_bind_int64(ins, 5, (sqlite3_int64)e->expires_ms);
        sqlite3_bind_int(ins, 6, e->status);
        sqlite3_bind_int(ins, 7, e->stream);
        sqlite3_bind_text(ins, 8, e->head, (int)e->head_len, SQLITE_STATIC);
        sqlite3_bind_blob64(ins, 9, e->body, e->body_len, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 10, (sqlite3_int64)e->size);
        tg_usage_t u;
        const char *model;
        if (tg_cache_entry_get_usage(e, &u, &model)) {
            sqlite3_bind_int64(ins, 11, u.input);
            sqlite3_bind_int64(ins, 12, u.output);
            sqlite3_bind_int64(ins, 13, u.cached);
            sqlite3_bind_int64(ins, 14, u.cache_write);
            if (model != NULL && model[0] != '\0')
                sqlite3_bind_text(ins, 15, model, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(ins, 15);
        } else {
            for (int i = 11; i <= 15; ++i)
                sqlite3_bind_null(ins, i);
        }
        if (sqlite3_step(ins) == SQLITE_DONE) {
            dbytes += (int64_t)e->size - (replaced >= 0 ? replaced : 0);
            dentries += replaced >= 0 ? 0 : 1;
        } else {
            tg_log_error("cache store: cannot store an entry: %s", sqlite3_errmsg(c->wdb));
            failed = sqlite3_get_autocommit(c->wdb) != 0; /* SQLite rolled the transaction back */
        }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(old);
    sqlite3_finalize(ins);
    if (!failed) {
        disk_adjust(c, dbytes, dentries, 0);
        disk_evict(c);
    }
    if (failed || !exec(c->wdb, "COMMIT")) {
        if (!sqlite3_get_autocommit(c->wdb))
            exec(c->wdb, "ROLLBACK");
        disk_figures(c); /* whatever was counted, recount what is there */
    }
}

static void disk_figures(tg_cache_t *c)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->wdb, "SELECT count(*), coalesce(sum(size), 0) FROM entries", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        uv_mutex_lock(&c->qmutex);
        c->disk_entries = (uint64_t)sqlite3_column_int64(st, 0);
        c->disk_bytes = (uint64_t)sqlite3_column_int64(st, 1);
        uv_mutex_unlock(&c->qmutex);
    }
    sqlite3_finalize(st);
}

static void writer_main(void *arg)
{
    tg_cache_t *c = arg;
    pthread_setname_np(pthread_self(), "tg-cachewriter");
    uint64_t next_sweep = tg_now_unix_ms() + SWEEP_EVERY_MS;
    uv_mutex_lock(&c->qmutex);
    for (;;) {
        while (c->qhead == NULL && !c->stop) {
            uint64_t now = tg_now_unix_ms();
            if (now >= next_sweep) {
                uv_mutex_unlock(&c->qmutex);
                tg_cache_sweep(c, now);
                uv_mutex_lock(&c->qmutex);
                next_sweep = now + SWEEP_EVERY_MS;
                continue;
            }
            uv_cond_timedwait(&c->qwake, &c->qmutex, (next_sweep - now) * 1000000u);
        }
        if (c->qhead == NULL && c->stop)
            break;
        /* the batch lock before the queue's: a purge holding it sees every entry either queued or on disk */
        uv_mutex_unlock(&c->qmutex);
        uv_mutex_lock(&c->wlock);
        uv_mutex_lock(&c->qmutex);
        persist_item_t *items = c->qhead;
        size_t n = 0;
        for (persist_item_t *it = items; it != NULL; it = it->next)
            ++n;
        c->qhead = NULL;
        c->qtail = &c->qhead;
        c->qbytes = 0;
        uv_mutex_unlock(&c->qmutex);
        if (items != NULL) /* a purge may have emptied the queue meanwhile */
            disk_write(c, items);
        uv_mutex_unlock(&c->wlock);
        uint64_t now = tg_now_unix_ms();
        if (now >= next_sweep) { /* also under a steady stream of puts */
            tg_cache_sweep(c, now);
            next_sweep = now + SWEEP_EVERY_MS;
        }
        while (items != NULL) {
            persist_item_t *next = items->next;
            tg_cache_entry_release(items->e);
            free(items);
            items = next;
        }
        uv_mutex_lock(&c->qmutex);
        c->persisted += n;
        uv_cond_broadcast(&c->qdone);
    }
    uv_mutex_unlock(&c->qmutex);
}

void tg_cache_put(tg_cache_t *c, tg_cache_entry_t *e)
{
    uv_mutex_lock(&c->mutex);
    mem_insert(c, e);
    uv_mutex_unlock(&c->mutex);
    if (!c->has_writer) {
        tg_cache_entry_release(e);
        return;
    }
    uv_mutex_lock(&c->qmutex);
    if (c->stop || c->qbytes + e->size > PERSIST_QUEUE_BYTES || e->size > c->max_disk) {
        uv_mutex_unlock(&c->qmutex);
        uv_mutex_lock(&c->mutex);
        c->stats.persist_dropped++;
        uv_mutex_unlock(&c->mutex);
        tg_cache_entry_release(e);
        return;
    }
    persist_item_t *it = tg_malloc(sizeof(*it));
    it->next = NULL;
    it->e = e;
    *c->qtail = it;
    c->qtail = &it->next;
    c->qbytes += e->size;
    c->queued++;
    uv_cond_signal(&c->qwake);
    uv_mutex_unlock(&c->qmutex);
}

void tg_cache_flush(tg_cache_t *c)
{
    if (!c->has_writer)
        return;
    uv_mutex_lock(&c->qmutex);
    uint64_t want = c->queued;
    while (c->persisted < want)
        uv_cond_wait(&c->qdone, &c->qmutex);
    uv_mutex_unlock(&c->qmutex);
}

static bool entry_matches(const tg_cache_entry_t *e, const char *account, const char *gateway,
                          const tg_cache_key_t *key)
{
    return strcmp(e->account, account) == 0 && strcmp(e->gateway, gateway) == 0 &&
           (key == NULL || memcmp(e->key.b, key->b, TG_CACHE_KEY_LEN) == 0);
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, TG_CACHE_KEY_LEN);
}

int64_t tg_cache_purge(tg_cache_t *c, const char *account, const char *gateway, const tg_cache_key_t *key)
{
    /* the writer is between batches while the purge runs: every entry is in the queue, in memory or on disk */
    uv_mutex_lock(&c->wlock);
    atomic_fetch_add(&c->purge_gen, 1);
    /* entries still waiting to be persisted are dropped, so none is written after the purge */
    size_t cap = 64, n = 0;
    tg_cache_key_t *removed = tg_malloc(cap * sizeof(*removed)); /* distinct keys, to count each entry once */
    uv_mutex_lock(&c->qmutex);
    for (persist_item_t **pp = &c->qhead; *pp != NULL;) {
        persist_item_t *it = *pp;
        if (entry_matches(it->e, account, gateway, key)) {
            *pp = it->next;
            c->qbytes -= it->e->size;
            c->persisted++; /* it counts as handled for flushers */
            if (n == cap)
                removed = tg_realloc(removed, (cap *= 2) * sizeof(*removed));
            removed[n++] = it->e->key;
            tg_cache_entry_release(it->e);
            free(it);
        } else {
            pp = &it->next;
        }
    }
    c->qtail = &c->qhead;
    while (*c->qtail != NULL)
        c->qtail = &(*c->qtail)->next;
    uv_mutex_unlock(&c->qmutex);

    uv_mutex_lock(&c->mutex);
    for (tg_cache_entry_t *e = c->lru_head, *next; e != NULL; e = next) {
        next = e->_next;
        if (entry_matches(e, account, gateway, key)) {
            if (n == cap)
                removed = tg_realloc(removed, (cap *= 2) * sizeof(*removed));
            removed[n++] = e->key;
            mem_remove(c, e);
        }
    }
    uv_mutex_unlock(&c->mutex);
    qsort(removed, n, sizeof(*removed), key_cmp);
    size_t distinct = 0;
    for (size_t i = 0; i != n; ++i)
        if (i == 0 || key_cmp(removed + i, removed + i - 1) != 0)
            removed[distinct++] = removed[i];
    int64_t total = (int64_t)distinct;

    if (c->path != NULL) {
        sqlite3 *db = reader_acquire(c);
        sqlite3_stmt *st = NULL;
        const char *sql = key != NULL
                              ? "DELETE FROM entries WHERE account = ? AND gateway = ? AND key = ? RETURNING key, size"
                              : "DELETE FROM entries WHERE account = ? AND gateway = ? RETURNING key, size";
        if (db == NULL || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
            total = -1;
        } else {
            sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, gateway, -1, SQLITE_STATIC);
            if (key != NULL)
                sqlite3_bind_blob(st, 3, key->b, TG_CACHE_KEY_LEN, SQLITE_STATIC);
            int64_t bytes = 0, rows = 0;
            int rc;
            while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                bytes += sqlite3_column_int64(st, 1);
                ++rows;
                const void *k = sqlite3_column_blob(st, 0);
                if (sqlite3_column_bytes(st, 0) != TG_CACHE_KEY_LEN ||
                    bsearch(k, removed, distinct, sizeof(*removed), key_cmp) == NULL)
                    ++total; /* on disk only */
            }
            if (rc != SQLITE_DONE) {
                tg_log_error("cache store: purge failed: %s", sqlite3_errmsg(db));
                total = -1;
            }
            disk_adjust(c, -bytes, -rows, 0);
        }
        sqlite3_finalize(st);
        if (db != NULL)
            reader_release(c, db);
    }
    free(removed);
    uv_mutex_unlock(&c->wlock);
    return total;
}

void tg_cache_sweep(tg_cache_t *c, uint64_t now_ms)
{
    uv_mutex_lock(&c->mutex);
    for (tg_cache_entry_t *e = c->lru_head, *next; e != NULL; e = next) {
        next = e->_next;
        if (e->expires_ms <= now_ms) {
            mem_remove(c, e);
            c->stats.expired++;
        }
    }
    uv_mutex_unlock(&c->mutex);
    if (c->path == NULL)
        return;
    sqlite3 *db = reader_acquire(c);
    if (db == NULL)
        return;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "DELETE FROM entries WHERE expires_at <= ? RETURNING size", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)now_ms);
        uint64_t bytes = 0, n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            bytes += (uint64_t)sqlite3_column_int64(st, 0);
            ++n;
        }
        disk_adjust(c, -(int64_t)bytes, -(int64_t)n, 0);
    }
    sqlite3_finalize(st);
    reader_release(c, db);
}

/* The keys' layout: 1 (user_version 0) BLAKE2b-256, 2 SHA-256. Entries stored under another layout's keys can never
 * be found again, so they are deleted when the store opens. */
#define KEY_LAYOUT 2

static bool upgrade_keys(sqlite3 *db, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (v == KEY_LAYOUT)
        return true;
    if (v < 0 || v > KEY_LAYOUT) {
        snprintf(err, errsz, "its key layout (%d) is not one this version reads", v);
        return false;
    }
    return exec(db, "BEGIN; DELETE FROM entries; PRAGMA user_version = " TG_STR(KEY_LAYOUT) "; COMMIT;");
}

tg_cache_t *tg_cache_open(const char *data_dir, uint64_t max_memory, uint64_t max_disk, char *err, size_t errsz)
{
    tg_cache_t *c = tg_calloc(1, sizeof(*c));
    uv_mutex_init(&c->fmutex);
    uv_mutex_init(&c->wlock);
    uv_mutex_init(&c->mutex);
    uv_mutex_init(&c->qmutex);
    uv_cond_init(&c->qwake);
    uv_cond_init(&c->qdone);
    c->num_buckets = 1024;
    c->buckets = tg_calloc(c->num_buckets, sizeof(*c->buckets));
    c->max_memory = max_memory;
    c->max_disk = max_disk;
    c->qtail = &c->qhead;
    if (data_dir == NULL)
        return c;
    size_t n = strlen(data_dir) + sizeof("/cache.db");
    c->path = tg_malloc(n);
    snprintf(c->path, n, "%s/cache.db", data_dir);
    c->wdb = open_conn(c->path, err, errsz);
    if (c->wdb == NULL || !exec(c->wdb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") ||
        !exec(c->wdb, schema) || !add_usage_columns(c->wdb)) {
        if (c->wdb != NULL)
            snprintf(err, errsz, "cannot set up %s: %s", c->path, sqlite3_errmsg(c->wdb));
        tg_cache_close(c);
        return NULL;
    }
    char why[128] = "";
    if (!upgrade_keys(c->wdb, why, sizeof(why))) {
        snprintf(err, errsz, "cannot set up %s: %s", c->path, why[0] != '\0' ? why : sqlite3_errmsg(c->wdb));
        tg_cache_close(c);
        return NULL;
    }
    disk_figures(c);
    if (uv_thread_create(&c->writer, writer_main, c) != 0) {
        snprintf(err, errsz, "cannot start the cache writer thread");
        tg_cache_close(c);
        return NULL;
    }
    c->has_writer = true;
    return c;
}

void tg_cache_close(tg_cache_t *c)
{
    if (c == NULL)
        return;
    if (c->has_writer) {
        uv_mutex_lock(&c->qmutex);
        c->stop = true;
        uv_cond_signal(&c->qwake);
        uv_mutex_unlock(&c->qmutex);
        uv_thread_join(&c->writer);
    }
    while (c->qhead != NULL) { /* only when the writer never started */
        persist_item_t *next = c->qhead->next;
        tg_cache_entry_release(c->qhead->e);
        free(c->qhead);
        c->qhead = next;
    }
    while (c->lru_head != NULL)
        mem_remove(c, c->lru_head);
    for (size_t i = 0; i != c->num_readers; ++i)
        sqlite3_close(c->readers[i]);
    sqlite3_close(c->wdb);
    free(c->buckets);
    free(c->series);
    free(c->path);
    uv_cond_destroy(&c->qwake);
    uv_cond_destroy(&c->qdone);
    for (size_t i = 0; i != FLIGHT_BUCKETS; ++i) /* none is left once every worker has drained */
        while (c->flights[i] != NULL) {
            flight_slot_t *next = c->flights[i]->next;
            free(c->flights[i]);
            c->flights[i] = next;
        }
    uv_mutex_destroy(&c->fmutex);
    uv_mutex_destroy(&c->wlock);
    uv_mutex_destroy(&c->mutex);
    uv_mutex_destroy(&c->qmutex);
    free(c);
}

void tg_cache_set_limits(tg_cache_t *c, uint64_t max_memory, uint64_t max_disk)
{
    uv_mutex_lock(&c->mutex);
    c->max_memory = max_memory;
    mem_make_room(c, 0);
    uv_mutex_unlock(&c->mutex);
    uv_mutex_lock(&c->qmutex);
    c->max_disk = max_disk; /* the writer evicts down to it with its next batch */
    uv_mutex_unlock(&c->qmutex);
}

void tg_cache_stats(tg_cache_t *c, tg_cache_stats_t *out)
{
    uv_mutex_lock(&c->mutex);
    *out = c->stats;
    out->memory_entries = c->count;
    out->memory_bytes = c->bytes;
    uv_mutex_unlock(&c->mutex);
    uv_mutex_lock(&c->qmutex);
    out->disk_entries = c->disk_entries;
    out->disk_bytes = c->disk_bytes;
    out->evictions_disk = c->evictions_disk;
    uv_mutex_unlock(&c->qmutex);
}

/* ---- metrics ---------------------------------------------------------------------------------------------- */

void tg_cache_count(tg_cache_t *c, const char *account, const char *gateway, tg_cache_event_t ev, uint64_t bytes)
{
    uv_mutex_lock(&c->mutex);
    gw_series_t *g = NULL;
    for (size_t i = 0; i != c->num_series && g == NULL; ++i)
        if (strcmp(c->series[i].gateway, gateway) == 0 && strcmp(c->series[i].account, account) == 0)
            g = c->series + i;
    if (g == NULL) {
        if (c->series == NULL)
            c->series = tg_calloc(MAX_GATEWAY_SERIES + 1, sizeof(*c->series));
        size_t i = c->num_series < MAX_GATEWAY_SERIES ? c->num_series++ : MAX_GATEWAY_SERIES;
        g = c->series + i;
        if (g->gateway[0] == '\0') {
            snprintf(g->account, sizeof(g->account), "%s", i < MAX_GATEWAY_SERIES ? account : "other");
            snprintf(g->gateway, sizeof(g->gateway), "%s", i < MAX_GATEWAY_SERIES ? gateway : "other");
        }
    }
    g->events[ev]++;
    if (ev == TG_CACHE_STORED)
        g->stored_bytes += bytes;
    uv_mutex_unlock(&c->mutex);
}

void tg_cache_render_metrics(tg_cache_t *c, tg_buf_t *out)
{
    static const char *const names[TG_CACHE__EVENTS] = {"hits", "misses", "coalesced", "stores"};
    static const char *const help[TG_CACHE__EVENTS] = {
        "Requests answered from the response cache.", "Cacheable requests that went to the provider.",
        "Requests that waited for an identical request's provider call instead of making one.",
        "Answers stored in the response cache."};
    tg_cache_stats_t st;
    tg_cache_stats(c, &st);
    uv_mutex_lock(&c->mutex);
    size_t n = c->num_series + (c->num_series == MAX_GATEWAY_SERIES && c->series[MAX_GATEWAY_SERIES].gateway[0]);
    for (int ev = 0; ev != TG_CACHE__EVENTS; ++ev) {
        tg_buf_appendf(out, "# HELP tollgate_cache_%s_total %s\n# TYPE tollgate_cache_%s_total counter\n", names[ev],
                       help[ev], names[ev]);
        for (size_t i = 0; i != n; ++i)
            tg_buf_appendf(out, "tollgate_cache_%s_total{account=\"%s\",gateway=\"%s\"} %llu\n", names[ev],
                           c->series[i].account, c->series[i].gateway, (unsigned long long)c->series[i].events[ev]);
    }
    tg_buf_appendf(out, "# HELP tollgate_cache_stored_bytes_total Bytes of answers stored in the response cache.\n"
                        "# TYPE tollgate_cache_stored_bytes_total counter\n");
    for (size_t i = 0; i != n; ++i)
        tg_buf_appendf(out, "tollgate_cache_stored_bytes_total{account=\"%s\",gateway=\"%s\"} %llu\n",
                       c->series[i].account, c->series[i].gateway, (unsigned long long)c->series[i].stored_bytes);
    uv_mutex_unlock(&c->mutex);
    tg_buf_appendf(out,
                   "# HELP tollgate_cache_entries Entries in the response cache, by tier.\n"
                   "# TYPE tollgate_cache_entries gauge\n"
                   "tollgate_cache_entries{tier=\"memory\"} %llu\ntollgate_cache_entries{tier=\"disk\"} %llu\n"
                   "# HELP tollgate_cache_bytes Bytes held by the response cache, by tier.\n"
                   "# TYPE tollgate_cache_bytes gauge\n"
                   "tollgate_cache_bytes{tier=\"memory\"} %llu\ntollgate_cache_bytes{tier=\"disk\"} %llu\n"
                   "# HELP tollgate_cache_evictions_total Entries evicted to stay within a tier's bound.\n"
                   "# TYPE tollgate_cache_evictions_total counter\n"
                   "tollgate_cache_evictions_total{tier=\"memory\"} %llu\n"
                   "tollgate_cache_evictions_total{tier=\"disk\"} %llu\n"
                   "# HELP tollgate_cache_expired_total Expired entries removed.\n"
                   "# TYPE tollgate_cache_expired_total counter\n"
                   "tollgate_cache_expired_total %llu\n"
                   "# HELP tollgate_cache_persist_dropped_total Entries kept in memory only: the persist queue was "
                   "full.\n"
                   "# TYPE tollgate_cache_persist_dropped_total counter\n"
                   "tollgate_cache_persist_dropped_total %llu\n",
                   (unsigned long long)st.memory_entries, (unsigned long long)st.disk_entries,
                   (unsigned long long)st.memory_bytes, (unsigned long long)st.disk_bytes,
                   (unsigned long long)st.evictions_memory, (unsigned long long)st.evictions_disk,
                   (unsigned long long)st.expired, (unsigned long long)st.persist_dropped);
}

/* ---- in-flight misses ------------------------------------------------------------------------------------- */

void tg_cache_flights_lock(tg_cache_t *c)
{
    uv_mutex_lock(&c->fmutex);
}

void tg_cache_flights_unlock(tg_cache_t *c)
{
    uv_mutex_unlock(&c->fmutex);
}

static flight_slot_t **flight_bucket(tg_cache_t *c, const tg_cache_key_t *key)
{
    return &c->flights[key->b[0]]; /* FLIGHT_BUCKETS is 256: one byte of a uniform digest */
}

void *tg_cache_flight_get(tg_cache_t *c, const tg_cache_key_t *key)
{
    for (flight_slot_t *s = *flight_bucket(c, key); s != NULL; s = s->next)
        if (memcmp(s->key.b, key->b, TG_CACHE_KEY_LEN) == 0)
            return s->flight;
    return NULL;
}

void tg_cache_flight_add(tg_cache_t *c, const tg_cache_key_t *key, void *flight)
{
    flight_slot_t *s = tg_malloc(sizeof(*s));
    s->key = *key;
    s->flight = flight;
    flight_slot_t **b = flight_bucket(c, key);
    s->next = *b;
    *b = s;
}

void tg_cache_flight_del(tg_cache_t *c, const tg_cache_key_t *key, void *flight)
{
    for (flight_slot_t **pp = flight_bucket(c, key); *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->flight == flight && memcmp((*pp)->key.b, key->b, TG_CACHE_KEY_LEN) == 0) {
            flight_slot_t *s = *pp;
            *pp = s->next;
            free(s);
            return;
        }
    }
}
