/*
 * The log store (logstore.h): a bounded queue in front of one writer thread that owns the write connection and the
 * payload segments (logseg.h).
 *
 * The queue is an array of records under a mutex; workers append and signal, the writer takes the whole array at
 * once (swapping in the one it took the last batch in) and writes it in one transaction (Redis's AOF rewrite
 * buffer and SQLite's own advice: a transaction per batch, not per row), the batch's payloads appended to the
 * segments in large writes before the commit. Row counts per gateway (for retention and the logs API's totals) are
 * kept in log_gateways; a delete through the API bumps a generation number that makes the writer read them again
 * and look for segments left with no records.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <uv.h>
#include "tollgate/log.h"
#include "tollgate/logblock.h"
#include "tollgate/logrow.h"
#include "tollgate/logseg.h"
#include "tollgate/logstore.h"
#include "tollgate/logtab.h"
#include "tollgate/sqlitedb.h"
#include "tollgate/tgtime.h"

/* ---- ULID ------------------------------------------------------------------------------------------------- */

static _Thread_local uint64_t rng_state[2];

static uint64_t rng_next(void)
{
    if (rng_state[0] == 0 && rng_state[1] == 0) {
        if (getrandom(rng_state, sizeof(rng_state), 0) != (ssize_t)sizeof(rng_state) ||
            (rng_state[0] == 0 && rng_state[1] == 0)) {
            rng_state[0] = tg_now_mono_ns() ^ (uint64_t)(uintptr_t)&rng_state;
            rng_state[1] = 0x9E3779B97F4A7C15u;
        }
    }
    /* xorshift128+ */
    uint64_t s1 = rng_state[0];
    const uint64_t s0 = rng_state[1];
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_state[1] + s0;
}

int tg_ulid_time(const char *id, uint64_t *ms)
{
    if (strlen(id) != TG_ULID_LEN)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i != 10; ++i) {
        char c = id[i] >= 'a' && id[i] <= 'z' ? (char)(id[i] - 32) : id[i];
        const char *at = strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c);
        if (c == '\0' || at == NULL)
            return -1;
        v = v << 5 | (uint64_t)(at - "0123456789ABCDEFGHJKMNPQRSTVWXYZ");
    }
    *ms = v;
    return 0;
}

void tg_ulid(uint64_t ms, char out[TG_ULID_LEN + 1])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    /* (loops of fixed counts, which the compiler unrolls: ~240 instructions a call under callgrind, against ~320 for
     * one loop shifting whichever word it was at) */
    for (int i = 0; i != 10; ++i)
        out[9 - i] = alphabet[(ms >> (5 * i)) & 31];
    uint64_t a = rng_next(), b = rng_next();
    for (int i = 0; i != 13; ++i) /* (the 13th holds a's top 4 bits) */
        out[10 + i] = alphabet[(a >> (5 * i)) & 31];
    for (int i = 0; i != 3; ++i)
        out[23 + i] = alphabet[(b >> (5 * i)) & 31];
    out[TG_ULID_LEN] = '\0';
}

/* ---- records ---------------------------------------------------------------------------------------------- */

struct st_tg_logrec_chunk_t {
    tg_logrec_chunk_t *next;
    char data[];
};

#define ARENA_CHUNK_MIN 1024

/*
 * Records go back to the thread that allocated them to be freed. A record is made by a worker and freed by the log
 * writer; freed there, each free() took the lock of the worker's malloc arena, and a writer preempted while holding
 * it stalled the worker (measured: ~60 such waits a second at 50k records/s, and the worker idle a fifth of the
 * time). So the writer gives a written batch back to the thread that made it, whose next records are made from the
 * same blocks, each with its response body buffer: a batch's worth of them (SPARE_MAX, SPARE_BYTES_MAX at most), so
 * that a steady stream of records is not a steady stream of malloc()s (with 64 kept and a 1 MiB trim threshold, the
 * ~450 others a batch gave back shrank the worker's heap and the next batch's records grew it again).
 *
 * What is kept is an array of pointers, not a list through the records: a record given back was last touched by the
 * writer's core, and walking a list of them was one cache miss after another, each waiting for the one before (perf:
 * the worker's walk of a returned batch was most of tg_logrec_new, the writer's of the queue and of the batch it gave
 * back a tenth of its time). The writer decides which records are kept and puts their pointers in the thread's
 * array in one step under the pool's lock; the thread frees what a kept record still holds (arena chunks, a second
 * buffer) when it takes it, so that every free() runs on the thread that allocated. What the array has no room for
 * goes on the `returned` list, which the thread frees when it next makes a record. The writer frees every thread's
 * kept and returned records once it has been idle a second (frees then contend with nothing), so an idle gateway
 * keeps none, and when the store closes.
 */
#define SPARE_MAX 640               /* records a thread keeps for reuse: a batch (GROUP_TARGET) and some */
#define SPARE_BLOCK_MAX (16u << 10) /* and only blocks and response buffers this small (larger ones are freed) */
#define SPARE_BYTES_MAX (4u << 20)  /* and this much in all */
#define SPARE_LOOK 8                /* spares looked at for one that fits before a new block is made */

struct st_tg_logrec_pool_t {
    _Atomic(tg_logrec_t *) returned; /* linked by _next: records to free (no room among the spares) */
    tg_logrec_pool_t *next;          /* every thread's, for the writer to empty */
    /* records kept for reuse, the newest last: filled by the writer, taken by the owner, emptied by the idle writer;
     * `lock` is taken once per record by the owner and once per batch by the writer */
    pthread_mutex_t lock;
    size_t num_spare, spare_bytes;
    tg_logrec_t *spare[SPARE_MAX];
};

static _Thread_local tg_logrec_pool_t *thread_pool;
static tg_logrec_pool_t *all_pools;
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;

static tg_logrec_pool_t *my_pool(void)
{
    if (thread_pool == NULL) {
        tg_logrec_pool_t *p = tg_calloc(1, sizeof(*p));
        atomic_init(&p->returned, NULL);
        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_lock(&pools_lock);
        p->next = all_pools;
        all_pools = p;
        pthread_mutex_unlock(&pools_lock);
        thread_pool = p;
    }
    return thread_pool;
}

/* Frees the arena's extra chunks. */
static void free_chunks(tg_logrec_t *r)
{
    for (tg_logrec_chunk_t *c = r->chunks, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    r->chunks = NULL;
}

static void free_now(tg_logrec_t *r)
{
    free_chunks(r);
    tg_buf_free(&r->response_body);
    free(r->_body_spare);
    free(r);
}

static void free_chain(tg_logrec_t *r)
{
    while (r != NULL) {
        tg_logrec_t *next = r->_next;
        free_now(r);
        r = next;
    }
}

/* The bytes a kept record holds (its chunks, until its owner frees them when it takes the record). */
static size_t kept_bytes(const tg_logrec_t *r)
{
    return sizeof(*r) + r->arena_size + r->response_body.cap + r->_body_spare_cap;
}

/* Frees what other threads gave back to every thread, and what every thread keeps for reuse (the writer when idle,
 * and at close). */
static void free_returned(void)
{
    tg_logrec_t **spare = tg_malloc(SPARE_MAX * sizeof(*spare));
    pthread_mutex_lock(&pools_lock);
    for (tg_logrec_pool_t *p = all_pools; p != NULL; p = p->next) {
        free_chain(atomic_exchange(&p->returned, NULL));
        pthread_mutex_lock(&p->lock);
        size_t n = p->num_spare;
        memcpy(spare, p->spare, n * sizeof(*spare));
        p->num_spare = p->spare_bytes = 0;
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i != n; ++i)
            free_now(spare[i]);
    }
    pthread_mutex_unlock(&pools_lock);
    free(spare);
}

/* Asks for the lines of a record that making it writes: its fields and the start of its arena. */
static inline void prefetch_for_write(const tg_logrec_t *r)
{
    for (size_t off = 0; off < offsetof(tg_logrec_t, arena) + 256; off += 64)
        __builtin_prefetch((const char *)r + off, 1);
}

/* A block for a record with `arena` bytes inline: a spare one that is large enough (and not far too large), with
 * the response buffer it keeps, else a new one. */
static tg_logrec_t *record_block(tg_logrec_pool_t *pool, size_t arena)
{
    tg_logrec_t *found = NULL, *next = NULL, *freed = NULL;
    pthread_mutex_lock(&pool->lock);
    if (atomic_load_explicit(&pool->returned, memory_order_relaxed) != NULL)
        freed = atomic_exchange(&pool->returned, NULL);
    /* (a record with no arena is a scratch one, a header checked and nothing kept: not worth a spare) */
    for (size_t i = pool->num_spare, looked = 0; arena != 0 && i != 0 && looked != SPARE_LOOK; ++looked) {
        tg_logrec_t *r = pool->spare[--i];
        if (r->_inline >= arena && r->_inline <= 4 * arena + 4096) {
            found = r;
            pool->spare[i] = pool->spare[--pool->num_spare];
            pool->spare_bytes -= kept_bytes(r);
            break;
        }
    }
    if (pool->num_spare != 0)
        next = pool->spare[pool->num_spare - 1];
    pthread_mutex_unlock(&pool->lock);
    if (next != NULL) /* the next record's block, wherever the writer's core left it, is here when it is made */
        prefetch_for_write(next);
    free_chain(freed);
    if (found != NULL) {
        free_chunks(found); /* (its response buffer, if any, is in _body_spare: keepable) */
        return found;
    }
    tg_logrec_t *r = tg_malloc(sizeof(*r) + arena);
    r->_inline = arena;
    r->_body_spare = NULL;
    r->_body_spare_cap = 0;
    return r;
}

/* Whether the thread that made `r` keeps it for reuse (and then its response buffer with it, moved to _body_spare). */
static bool keepable(tg_logrec_t *r)
{
    if (r->_inline > SPARE_BLOCK_MAX || r->response_body.cap > SPARE_BLOCK_MAX ||
        (r->_body_spare != NULL && r->response_body.cap != 0))
        return false;
    if (r->response_body.cap != 0) {
        r->_body_spare = r->response_body.base;
        r->_body_spare_cap = r->response_body.cap;
        tg_buf_init(&r->response_body, 0);
    }
    return true;
}

/* Gives recs[0..n), all made by the thread of `pool`, back to it: as many as it may keep among its spares, the rest
 * on its returned list. The array is reordered. The records are looked at outside the pool's lock, which is taken
 * twice, briefly: its owner only takes spares away meanwhile (another store's writer could add some: checked). */
static void give_back(tg_logrec_pool_t *pool, tg_logrec_t **recs, size_t n)
{
    pthread_mutex_lock(&pool->lock);
    size_t room = SPARE_MAX - pool->num_spare, bytes = pool->spare_bytes;
    pthread_mutex_unlock(&pool->lock);
    size_t kept = 0, add = 0;
    for (size_t i = 0; i != n; ++i) {
        tg_logrec_t *r = recs[i];
        if (kept == room || !keepable(r) || bytes + add + kept_bytes(r) + SPARE_BLOCK_MAX > SPARE_BYTES_MAX)
            continue;
        add += kept_bytes(r);
        recs[i] = recs[kept];
        recs[kept++] = r;
    }
    pthread_mutex_lock(&pool->lock);
    if (pool->num_spare + kept > SPARE_MAX || pool->spare_bytes + add > SPARE_BYTES_MAX)
        kept = add = 0; /* (another writer was quicker: all go back to be freed) */
    memcpy(pool->spare + pool->num_spare, recs, kept * sizeof(*recs));
    pool->num_spare += kept;
    pool->spare_bytes += add;
    pthread_mutex_unlock(&pool->lock);
    if (kept == n)
        return;
    for (size_t j = kept; j + 1 != n; ++j)
        recs[j]->_next = recs[j + 1];
    tg_logrec_t *head = atomic_load_explicit(&pool->returned, memory_order_relaxed);
    do
        recs[n - 1]->_next = head;
    while (!atomic_compare_exchange_weak_explicit(&pool->returned, &head, recs[kept], memory_order_release,
                                                  memory_order_relaxed));
}

/* Makes room in *recs (*cap entries) for an entry at index n. */
static void reserve_recs(tg_logrec_t ***recs, size_t *cap, size_t n)
{
    if (n < *cap)
        return;
    *cap = TG_MAX(*cap * 2, (size_t)256);
    *recs = tg_realloc(*recs, *cap * sizeof(**recs));
}

/* Gives a written batch back: each run of records made by one thread in one step. */
static void return_batch(tg_logrec_t **recs, size_t n)
{
    for (size_t i = 0; i != n;) {
        tg_logrec_pool_t *pool = recs[i]->_pool;
        size_t j = i + 1;
        while (j != n && recs[j]->_pool == pool)
            ++j;
        if (pool == thread_pool) { /* (made by the writer itself: a record of an older layout) */
            for (size_t k = i; k != j; ++k)
                free_now(recs[k]);
        } else {
            give_back(pool, recs + i, j - i);
        }
        i = j;
    }
}

tg_logrec_t *tg_logrec_new(uint64_t created_at_ms, size_t arena)
{
    tg_logrec_pool_t *pool = my_pool();
    tg_logrec_t *r = record_block(pool, arena);
    size_t cap = r->_inline;
    char *body = r->_body_spare;
    size_t body_cap = r->_body_spare_cap;
    memset(r, 0, sizeof(*r)); /* not the arena: it is handed out as it is written */
    r->_inline = arena = cap;
    r->_pool = pool;
    r->created_at_ms = created_at_ms;
    tg_ulid(created_at_ms, r->id);
    r->usage = (tg_usage_t){-1, -1, 0, 0};
    r->cost = -1;
    r->step = -1;
    r->log_management = -1;
    r->feedback = -2;
    r->score = NAN;
    tg_buf_init(&r->response_body, 0);
    r->_body_spare = body;
    r->_body_spare_cap = body_cap;
    r->arena_cur = r->arena;
    r->arena_left = arena;
    r->arena_size = arena;
    return r;
}

void tg_logrec_body_init(tg_logrec_t *r, size_t max)
{
    tg_buf_free(&r->response_body);
    tg_buf_init(&r->response_body, max);
    if (r->_body_spare != NULL) {
        r->response_body.base = r->_body_spare;
        r->response_body.cap = r->_body_spare_cap;
        r->_body_spare = NULL;
        r->_body_spare_cap = 0;
    }
}

char *tg_logrec_alloc(tg_logrec_t *r, size_t n)
{
    if (n > r->arena_left) {
        size_t cap = TG_MAX(n, (size_t)ARENA_CHUNK_MIN);
        tg_logrec_chunk_t *c = tg_malloc(sizeof(*c) + cap);
        c->next = r->chunks;
        r->chunks = c;
        r->arena_cur = c->data;
        r->arena_left = cap;
        r->arena_size += cap;
    }
    char *p = r->arena_cur;
    r->arena_cur += n;
    r->arena_left -= n;
    return p;
}

const char *tg_logrec_strndup(tg_logrec_t *r, const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *p = tg_logrec_alloc(r, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void tg_logrec_free(tg_logrec_t *r)
{
    if (r == NULL)
        return;
    tg_logrec_pool_t *pool = r->_pool;
    if (pool == thread_pool) {
        free_now(r);
        return;
    }
    tg_logrec_t *head = atomic_load_explicit(&pool->returned, memory_order_relaxed);
    do
        r->_next = head;
    while (
        !atomic_compare_exchange_weak_explicit(&pool->returned, &head, r, memory_order_release, memory_order_relaxed));
}

const char *tg_logmeta_text(const json_t *v, char buf[64])
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    if (json_is_integer(v)) {
        snprintf(buf, 64, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, 64, "%.17g", json_real_value(v));
        return buf;
    }
    return NULL;
}

int tg_logrec_set_metadata(tg_logrec_t *r, const char *json, size_t len, const char **why)
{
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    if (!json_is_object(o)) {
        *why = "must be a flat JSON object, such as {\"user\":\"u1\",\"feature\":\"chat\"}";
        goto out;
    }
    const char *key;
    json_t *v;
    size_t entries = 0; /* reserved cf.* keys are not kept, so they do not count; they are bounded with the rest */
    json_object_foreach(o, key, v)
        entries += strncmp(key, "cf.", 3) != 0;
    if (entries > TG_METADATA_MAX_ENTRIES || json_object_size(o) > 4 * TG_METADATA_MAX_ENTRIES) {
        *why = "has more than 5 entries";
        goto out;
    }
    json_object_foreach(o, key, v)
    {
        if (strlen(key) == 0 || strlen(key) > 256) {
            *why = "keys must be 1 to 256 bytes long";
            goto out;
        }
        if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
            *why = "values must be strings, numbers or booleans (no objects, arrays or null)";
            goto out;
        }
        if (json_is_string(v) && json_string_length(v) > 1024) {
            *why = "string values must be at most 1024 bytes long";
            goto out;
        }
    }
    r->num_metadata = 0; /* a second call leaves the first's strings in the arena, unused */
    json_t *kept = json_object();
    json_object_foreach(o, key, v)
    {
        if (strncmp(key, "cf.", 3) == 0)
            continue;
        char num[64];
        const char *text = tg_logmeta_text(v, num); /* a scalar: checked above */
        r->metadata[r->num_metadata].key = tg_logrec_strdup(r, key);
        r->metadata[r->num_metadata].value = tg_logrec_strdup(r, text);
        r->num_metadata++;
        json_object_set(kept, key, v);
    }
    r->metadata_json = NULL;
    if (r->num_metadata != 0) {
        char *dumped = json_dumps(kept, JSON_COMPACT | JSON_PRESERVE_ORDER);
        r->metadata_json = tg_logrec_strdup(r, dumped);
        free(dumped);
    }
    json_decref(kept);
    rc = 0;
out:
    json_decref(o);
    return rc;
}

size_t tg_logrec_size(const tg_logrec_t *r)
{
    return sizeof(*r) + r->arena_size + r->response_body.cap + r->_body_spare_cap;
}

/* ---- schema ----------------------------------------------------------------------------------------------- */

/*
 * Layout 4. A row (log_rows) holds what is filtered, sorted and added up; heads and bodies are in payload segments
 * (logseg.h), `payload` saying where. The fields a stored row never changes are packed into `rec` (logrow.h: one
 * value to bind and store instead of 23), read by queries through the TEMP virtual table `logs` that each query
 * connection makes (logtab.h), under the column names they had as columns in layout 3; metadata (which PATCH
 * changes), event_id (indexed), flags and payload (which a lost payload changes), feedback and score (PATCH) are
 * columns of their own. The key `seq` is gw << 51 | created_at << 9 | n (tg_logseq_*): a gateway's records are one
 * range of keys, in time order, so listing, time filters, lookups by id (whose ULID carries the time) and retention
 * are range scans of the table itself and no index has to be kept up to date on every insert (that index was a fifth
 * of what a record cost the writer). log_gateways numbers the gateways and keeps their record counts; log_segments
 * counts the live records of each payload segment, so a segment whose records are all deleted can be unlinked;
 * log_displaced lists the rare records whose key is not near their time (first_key). Metadata is the JSON object in
 * `metadata`, read by the tg_meta() SQL function.
 *
 * Layout 5 is layout 4 with blocks: a row flagged TG_LOGFLAG_BLOCK holds up to TG_LOGBLOCK_MAX in-order records of a
 * gateway, each with its metadata, flags and payload reference (logrow.h); changes to one take it out first
 * (logblock.h). A layout-4 database is a layout-5 one with no blocks yet: opening it for writing changes its number.
 */
#define SCHEMA_VERSION 5

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS log_gateways (gw INTEGER PRIMARY KEY, account TEXT NOT NULL, gateway TEXT NOT NULL,"
    " rows INTEGER NOT NULL DEFAULT 0, UNIQUE (account, gateway));"
    "CREATE TABLE IF NOT EXISTS log_segments (gw INTEGER NOT NULL, n INTEGER NOT NULL, live INTEGER NOT NULL,"
    " PRIMARY KEY (gw, n)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS log_rows (seq INTEGER PRIMARY KEY, rec BLOB NOT NULL, metadata TEXT, event_id TEXT,"
    " flags INTEGER NOT NULL, payload INTEGER, feedback INTEGER, score REAL);"
    "CREATE INDEX IF NOT EXISTS log_rows_event ON log_rows(event_id) WHERE event_id IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS log_displaced (seq INTEGER PRIMARY KEY, id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS log_displaced_id ON log_displaced(id);";

/* The integer a pragma answers, -1 when it cannot be read. */
static int pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The layout version of a database (0 for a new one), -1 when it cannot be read. */
static int user_version(sqlite3 *db)
{
    return pragma_int(db, "PRAGMA user_version");
}

static bool has_table(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

/* tg_meta(metadata, key): the value of `key` in a record's metadata as text (as filters compare it: strings as they
 * are, numbers as written, true/false), NULL when the record has no such key. tg_meta_num(metadata, key), the same
 * function with user data: the value as a number when it is a JSON number, else NULL (what a filter compares a number
 * with: 9 < 10, where the text would put "10" first). */
static void sql_meta(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *text = (const char *)sqlite3_value_text(argv[0]), *key = (const char *)sqlite3_value_text(argv[1]);
    if (text == NULL || key == NULL)
        return;
    json_t *o = json_loadb(text, (size_t)sqlite3_value_bytes(argv[0]), 0, NULL);
    const json_t *v = json_object_get(o, key);
    char num[64];
    const char *t;
    if (sqlite3_user_data(ctx) != NULL) {
        if (json_is_number(v))
            sqlite3_result_double(ctx, json_number_value(v));
    } else if ((t = tg_logmeta_text(v, num)) != NULL) {
        sqlite3_result_text(ctx, t, -1, SQLITE_TRANSIENT);
    }
    json_decref(o);
}

/*
 * tg_rec(rec, field): field `field` (tg_logrow_field_t) of a packed row, as the layout-3 column had it.
 *
 * A query reads several fields of each row (the list's count and aggregates read four, a listed record all of them),
 * each a call of its own; walking the row from its start at each call made a view over log_rows twice as slow as
 * layout 3's columns. So each connection keeps the last row it split, and a call for the same bytes reads from that.
 * (The logs API reads `logs`, logtab.h, which splits a row once; tg_rec stays for SQL written by hand.)
 */
#define REC_CACHE_MAX 4096

typedef struct {
    size_t len; /* 0: nothing cached */
    tg_logrow_value_t v[TG_LR_NUM];
    unsigned char copy[REC_CACHE_MAX];
} rec_cache_t;

static void sql_rec(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    rec_cache_t *c = sqlite3_user_data(ctx);
    const void *p = sqlite3_value_blob(argv[0]);
    size_t n = (size_t)sqlite3_value_bytes(argv[0]);
    int f = sqlite3_value_int(argv[1]);
    tg_logrow_value_t one;
    const tg_logrow_value_t *v = &one;
    if (p == NULL || f < 0 || f >= TG_LR_NUM)
        return; /* NULL (also a rec that is not a BLOB and could not be made one) */
    if (n != 0 && n <= sizeof(c->copy)) {
        if (n != c->len || memcmp(p, c->copy, n) != 0) {
            memcpy(c->copy, p, n);
            c->len = n;
            tg_logrow_split(c->copy, n, c->v);
        }
        v = &c->v[f];
    } else {
        tg_logrow_get(p, n, (unsigned)f, &one);
    }
    tg_logtab_result(ctx, v);
}

static sqlite3 *open_db(const char *data_dir, bool readonly, bool create, char *errbuf, size_t errbufsz)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/logs.db", data_dir) >= sizeof(path)) {
        snprintf(errbuf, errbufsz, "data_dir is too long");
        return NULL;
    }
    sqlite3 *db = tg_sqlite_open(
        path, readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), errbuf,
        errbufsz);
    if (db == NULL)
        return NULL;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_create_function(db, "tg_meta", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_meta, NULL, NULL);
    static char as_number;
    sqlite3_create_function(db, "tg_meta_num", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, &as_number, sql_meta, NULL, NULL);
    rec_cache_t *cache = tg_malloc(sizeof(*cache));
    cache->len = 0;
    sqlite3_create_function_v2(db, "tg_rec", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, cache, sql_rec,
                               NULL, NULL, free); /* frees the cache, also when this fails */
    if (!create) {
        if (tg_logtab_create(db) != SQLITE_OK) {
            snprintf(errbuf, errbufsz, "cannot open %s: %s", path, sqlite3_errmsg(db));
            sqlite3_close(db);
            return NULL;
        }
        /* the writer alone checkpoints and syncs (on_wal_commit makes the payload segments durable first): a query
         * connection's PATCH or DELETE must not make the writer's rows durable before their payloads */
        sqlite3_wal_autocheckpoint(db, 0);
        sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    }
    return db;
}

sqlite3 *tg_logstore_reader(const char *data_dir, bool readonly, char *errbuf, size_t errbufsz)
{
    sqlite3 *db = open_db(data_dir, readonly, false, errbuf, errbufsz);
    if (db == NULL)
        return NULL;
    int v = user_version(db);
    if (v != SCHEMA_VERSION) {
        if (v == 0)
            snprintf(errbuf, errbufsz, "%s/logs.db holds no logs yet", data_dir);
        else
            snprintf(errbuf, errbufsz,
                     "%s/logs.db has log layout %d and this Tollgate reads layout %d;"
                     " start the gateway once on it to convert it",
                     data_dir, v, SCHEMA_VERSION);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

const char *tg_logstore_payload_dir(sqlite3 *db, char *out, size_t outsz)
{
    const char *file = sqlite3_db_filename(db, "main");
    const char *slash = file != NULL ? strrchr(file, '/') : NULL;
    if (slash == NULL || (size_t)snprintf(out, outsz, "%.*s/" TG_LOGSEG_DIR, (int)(slash - file), file) >= outsz)
        return NULL;
    return out;
}

/* ---- the store -------------------------------------------------------------------------------------------- */

/* What the writer knows of a gateway with records. */
typedef struct {
    char *account, *gateway;
    unsigned gw;      /* its number in log_gateways */
    int64_t rows;     /* rows stored, -1 = to be read again from log_gateways */
    int64_t next_key; /* past every key handed out in order */
    int64_t stop_at;  /* the STOP_INSERTING limit of its latest record, -1 when it has none */
    uint64_t last_ms; /* the newest created_at among those records */
    tg_logseg_writer_t seg;
    size_t counted_ix; /* its entry in the store's `counted` (SIZE_MAX: none yet) */
    /* this batch */
    int64_t released; /* admitted records taken (their places are given back when the counts are published) */
    size_t batch_pos; /* (group_by_gateway) */
    int64_t inserted, seg_live;
    uint64_t seg_n;
} gw_state_t;

/* A gateway's count for tg_logstore_admit: its rows as the writer last counted them, and the places its admitted
 * records not yet taken by the writer hold. */
typedef struct {
    char *account, *gateway;
    int64_t rows, pending;
} counted_t;

enum {
    ST_INSERT,
    ST_GW_FIND,
    ST_GW_ADD,
    ST_GW_ROWS,
    ST_GW_MAXSEQ,
    ST_SEG_ADD,
    ST_SEG_SUB,
    ST_SEG_NEXT,
    ST_LOST,
    ST_DEAD,
    ST_REVIEW,
    ST_DISPLACED,
    ST_UNDISPLACE,
    ST_DATA_VERSION,
    ST_INSERT_MANY,
    ST_NUM
};

struct st_tg_logstore_t {
    char *data_dir;
    char *payload_dir;
    sqlite3 *db;
    int checkpoint_pages; /* WAL_CHECKPOINT_BYTES in this database's pages */
    sqlite3_stmt *st[ST_NUM];
    sqlite3_stmt *st_migrated; /* while an older layout is converted */
    uv_thread_t thread;
    uv_mutex_t mutex;
    uv_cond_t wake;    /* the writer: work or stop */
    uv_cond_t flushed; /* flushers: a batch was written */
    tg_logrec_t **queue; /* depth records, in the order submitted (an array: see the pools above) */
    size_t queue_cap;
    tg_logrec_t **taken; /* the writer's: the array it took the last batch in, the next queue */
    size_t taken_cap;
    size_t depth, bytes;
    atomic_size_t max_depth;
    atomic_size_t places; /* queue places held: reserved by records still being made, and queued (tg_logstore_reserve) */
    uint64_t max_bytes;
    uint64_t submitted, done; /* records taken by submit (queued) and finished by the writer */
    bool stop;
    bool maintain;     /* rows were deleted behind the writer's back (under mutex) */
    unsigned flushers; /* threads in tg_logstore_flush: the writer does not wait for company */
    atomic_uint_fast64_t deleted_gen;
    uint64_t seen_deleted_gen;
    bool must_recount; /* the last batch failed: its counts are not known, the next one reads them again */
    gw_state_t **gws; /* each allocated on its own: items point at them while the array grows */
    size_t num_gws;
    tg_logseg_stage_t stage; /* payload staging, shared by the gateways' segment writers */
    tg_buf_t rows;           /* the packed rows of the statement being bound, or a block (insert_rows) */
    tg_buf_t one;            /* one packed row, on its way into a block */
    bool bad;                /* the batch being written met an error: it is rolled back (run) */
    int64_t data_version;    /* PRAGMA data_version at the last batch: another connection's commits change it */
    sqlite3 *idle[8];        /* query connections not in use (under mutex) */
    size_t num_idle;
    tg_logstore_stats_t stats; /* under mutex */
    /* for tg_logstore_admit, a gateway at a time (under mutex) */
    counted_t *counted;
    size_t num_counted;
    uint64_t counted_gen; /* the deleted_gen the published counts have seen (under mutex) */
    bool any_full; /* a STOP_INSERTING gateway is at its limit: the idle writer looks for deletes (under mutex) */
};

static const char *const statements[ST_NUM] = {
    [ST_INSERT] = "INSERT INTO log_rows (seq, rec, metadata, event_id, flags, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_GW_FIND] = "SELECT gw, rows FROM log_gateways WHERE account = ?1 AND gateway = ?2",
    [ST_GW_ADD] = "INSERT INTO log_gateways (account, gateway) VALUES (?1, ?2)",
    [ST_GW_ROWS] = "UPDATE log_gateways SET rows = rows + ?2 WHERE gw = ?1",
    [ST_GW_MAXSEQ] = "SELECT max(seq) FROM log_rows WHERE seq BETWEEN ?1 AND ?2",
    [ST_SEG_ADD] = "INSERT INTO log_segments (gw, n, live) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (gw, n) DO UPDATE SET live = live + excluded.live",
    [ST_SEG_SUB] = "UPDATE log_segments SET live = live - ?3 WHERE gw = ?1 AND n = ?2",
    [ST_SEG_NEXT] = "SELECT coalesce(max(n), 0) + 1 FROM log_segments WHERE gw = ?1",
    [ST_LOST] =
        "UPDATE log_rows SET payload = NULL, flags = flags | " TG_STR(TG_LOGFLAG_PAYLOAD_LOST) " WHERE seq = ?1",
    [ST_DEAD] = "DELETE FROM log_segments WHERE live <= 0 RETURNING gw, n",
    [ST_REVIEW] = "UPDATE log_rows SET feedback = ?1, score = ?2 WHERE seq = ?3",
    [ST_DISPLACED] = "INSERT OR REPLACE INTO log_displaced (seq, id) VALUES (?1, ?2)",
    [ST_UNDISPLACE] = TG_LOGSTORE_UNDISPLACE_SQL,
    [ST_DATA_VERSION] = "PRAGMA data_version",
    [ST_INSERT_MANY] = NULL, /* ST_INSERT with INSERT_ROWS rows, made at open */
};

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_count(sqlite3_stmt *st, int i, int64_t v)
{
    if (v >= 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a statement that returns nothing; false on an error (logged). In a batch, an error sets s->bad: the batch's
 * bookkeeping would no longer match its rows, so it is rolled back whole. */
static bool run(tg_logstore_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        tg_log_error("log store: %s: %s", what, sqlite3_errmsg(s->db));
        s->bad = true;
        return false;
    }
    return true;
}

/* The gateway's state, numbered in log_gateways on first use; NULL on a database error or past TG_LOGSEQ_MAX_GW. */
static gw_state_t *gw_state(tg_logstore_t *s, const char *account, const char *gateway)
{
    for (size_t i = 0; i != s->num_gws; ++i)
        if (strcmp(s->gws[i]->gateway, gateway) == 0 && strcmp(s->gws[i]->account, account) == 0)
            return s->gws[i];
    sqlite3_stmt *st = s->st[ST_GW_FIND];
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, gateway, -1, SQLITE_STATIC);
    int64_t gw = -1, rows = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        gw = sqlite3_column_int64(st, 0);
        rows = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (gw < 0) {
        st = s->st[ST_GW_ADD];
        sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, gateway, -1, SQLITE_STATIC);
        if (!run(s, st, "cannot number a gateway"))
            return NULL;
        gw = sqlite3_last_insert_rowid(s->db);
    }
    if (gw < 1 || gw > TG_LOGSEQ_MAX_GW) {
        tg_log_error("log store: more than %d gateways have logs in %s/logs.db; the records of %s/%s are not kept",
                     TG_LOGSEQ_MAX_GW, s->data_dir, account, gateway);
        return NULL;
    }
    /* where its keys and segments go on from */
    st = s->st[ST_GW_MAXSEQ];
    sqlite3_bind_int64(st, 1, tg_logseq_first(gw));
    sqlite3_bind_int64(st, 2, tg_logseq_last(gw));
    int64_t maxseq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    st = s->st[ST_SEG_NEXT];
    sqlite3_bind_int64(st, 1, gw);
    int64_t next_n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
    sqlite3_reset(st);

    s->gws = tg_realloc(s->gws, (s->num_gws + 1) * sizeof(*s->gws));
    gw_state_t *g = s->gws[s->num_gws++] = tg_calloc(1, sizeof(*g));
    g->account = tg_strdup(account);
    g->gateway = tg_strdup(gateway);
    g->gw = (unsigned)gw;
    g->rows = rows;
    g->counted_ix = SIZE_MAX;
    g->stop_at = -1;
    g->next_key = maxseq > 0 ? maxseq + 1 : tg_logseq_first(gw);
    g->last_ms = maxseq > 0 ? tg_logseq_ms(maxseq) : 0;
    tg_logseg_writer_init(&g->seg, s->payload_dir, (unsigned)gw, (uint64_t)next_n);
    return g;
}

/* Rows counts again from log_gateways (after a delete made by someone else). */
static void reload_counts(tg_logstore_t *s)
{
    for (size_t i = 0; i != s->num_gws; ++i) {
        sqlite3_stmt *st = s->st[ST_GW_FIND];
        sqlite3_bind_text(st, 1, s->gws[i]->account, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->gws[i]->gateway, -1, SQLITE_STATIC);
        s->gws[i]->rows = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
        sqlite3_reset(st);
    }
}

/*
 * Keys. A record created no earlier than the newest one stored takes the first key of its millisecond, or the next
 * key after those handed out when that one is taken, among the first TG_LOGSEQ_LATE_N (448) of each millisecond (so
 * a burst of more than 448 records in one millisecond runs on into the next millisecond's keys, in order). A record
 * that finishes after newer ones (a long stream) is late: it takes a free key among the other 64 of its own
 * millisecond or the next three (TG_LOGSEQ_SPAN), probing a few in each from a point picked from its ULID's random
 * part; so it never takes a key a block holds (a block's records are in-order ones, and no PRIMARY KEY sees the keys
 * inside a block). Lookups by id search those milliseconds. Only when all those probes find keys taken (not seen
 * outside a synthetic flood) does it take the next key in order and is listed in log_displaced, where lookups by id
 * look next.
 */
#define LATE_TRIES 16 /* per millisecond */

typedef struct {
    int64_t base; /* a late record's millisecond */
    uint64_t ms;  /* the record's */
    uint32_t start, tries;
    bool late, displaced;
} keypick_t;

#define LATE_SLOTS ((1 << TG_LOGSEQ_MS_SHIFT) - TG_LOGSEQ_LATE_N) /* a millisecond's keys for late records */

/* The next key in order, at least `from`: the n of a millisecond below TG_LOGSEQ_LATE_N (the rest are late records',
 * so a late record never takes a key in a block, where no PRIMARY KEY would see it taken). */
static int64_t in_order_key(gw_state_t *g, int64_t from)
{
    int64_t key = TG_MAX(from, g->next_key);
    if ((key & ((1 << TG_LOGSEQ_MS_SHIFT) - 1)) >= TG_LOGSEQ_LATE_N)
        key = (key | ((1 << TG_LOGSEQ_MS_SHIFT) - 1)) + 1;
    g->next_key = key + 1;
    return key;
}

static int64_t first_key(gw_state_t *g, const tg_logrec_t *r, keypick_t *kp)
{
    uint64_t ms = TG_MIN(r->created_at_ms, TG_LOGSEQ_MAX_MS - TG_LOGSEQ_SPAN);
    int64_t k0 = tg_logseq_at(g->gw, (int64_t)ms);
    *kp = (keypick_t){.ms = ms};
    if (ms >= g->last_ms) {
        int64_t key = in_order_key(g, k0);
        g->last_ms = ms;
        kp->displaced = key >= tg_logseq_at(g->gw, (int64_t)ms + TG_LOGSEQ_SPAN);
        return key;
    }
    uint32_t h = 2166136261u; /* FNV-1a of the ULID's random part */
    for (int i = 10; i != TG_ULID_LEN; ++i)
        h = (h ^ (unsigned char)r->id[i]) * 16777619u;
    *kp = (keypick_t){.base = k0 + TG_LOGSEQ_LATE_N, .ms = ms, .start = h % LATE_SLOTS, .late = true};
    return kp->base + kp->start;
}

/* The key to try after `first_key`'s (or this one's) was taken. */
static int64_t next_key(gw_state_t *g, keypick_t *kp)
{
    if (kp->late && ++kp->tries != LATE_TRIES * TG_LOGSEQ_SPAN)
        return kp->base + (int64_t)(kp->tries / LATE_TRIES << TG_LOGSEQ_MS_SHIFT) +
               (kp->start + kp->tries) % LATE_SLOTS;
    kp->late = false;
    int64_t key = in_order_key(g, 0);
    kp->displaced = key >= tg_logseq_at(g->gw, (int64_t)kp->ms + TG_LOGSEQ_SPAN);
    return key;
}

#define FLAGS_OF(r)                                                                                                    \
    ((r)->stream * TG_LOGFLAG_STREAM | (r)->custom_cost * TG_LOGFLAG_CUSTOM_COST | (r)->payload * TG_LOGFLAG_PAYLOAD | \
     (r)->request_body_dropped * TG_LOGFLAG_REQUEST_DROPPED |                                                          \
     (r)->response_body_dropped * TG_LOGFLAG_RESPONSE_DROPPED |                                                        \
     ((r)->request_head == NULL) * TG_LOGFLAG_NO_REQUEST_HEAD |                                                        \
     ((r)->response_head == NULL) * TG_LOGFLAG_NO_RESPONSE_HEAD | (r)->payload_shed * TG_LOGFLAG_PAYLOAD_SHED)

/* The four parts of a record's payload: heads always, bodies when kept. */
static void payload_parts(const tg_logrec_t *r, tg_iovec_t parts[TG_LOGSEG_PARTS])
{
    parts[TG_LOGSEG_REQ_HEAD] =
        tg_iov(r->request_head != NULL ? r->request_head : "", r->request_head != NULL ? strlen(r->request_head) : 0);
    parts[TG_LOGSEG_RESP_HEAD] = tg_iov(r->response_head != NULL ? r->response_head : "",
                                        r->response_head != NULL ? strlen(r->response_head) : 0);
    bool req = r->payload && !r->request_body_dropped && !r->payload_shed,
         resp = r->payload && !r->response_body_dropped && !r->payload_shed;
    parts[TG_LOGSEG_REQ_BODY] = req ? r->request_body : tg_iov("", 0);
    parts[TG_LOGSEG_RESP_BODY] = resp ? tg_iov(r->response_body.base, r->response_body.len) : tg_iov("", 0);
}

/* What the writer does with one record of a batch. */
typedef struct {
    tg_logrec_t *r;
    gw_state_t *g;
    tg_iovec_t parts[TG_LOGSEG_PARTS]; /* its payload (payload_parts), for the reservation and the staging */
    int64_t seq, ref;                  /* ref -1: no payload stored */
    keypick_t kp;
    int state;     /* 1 stored, 0 refused by retention, -1 lost to an error */
    bool in_block; /* stored in a block (logrow.h) */
} item_t;

#define INSERT_COLUMNS 6
#define INSERT_ROWS 16 /* rows per multi-row INSERT: one statement, one cursor kept at the table's end, per 16 */

/* The packed row of a record (what bind_row binds as `rec`) appended to b; 0 or TG_E_TOOBIG. */
static int pack_row(tg_buf_t *b, const tg_logrec_t *r)
{
    bool answered = r->status_code != 0, counted = r->usage.input >= 0;
    tg_logrow_t row = {
        .id = r->id,
        .provider = r->provider,
        .model = r->model,
        .path = r->path,
        .request_type = r->request_type,
        .request_content_type = r->request_content_type,
        .response_content_type = r->response_content_type,
        .user_agent = r->user_agent,
        .error = r->error,
        .created_at = (int64_t)TG_MIN(r->created_at_ms, (uint64_t)INT64_MAX),
        .success = r->success,
        .status_code = answered ? r->status_code : -1,
        .cached = r->cached,
        .duration = (int64_t)TG_MIN(r->duration_ms, (uint64_t)INT64_MAX),
        .ttfb = answered ? (int64_t)TG_MIN(r->ttfb_ms, (uint64_t)INT64_MAX) : -1,
        .tokens_in = r->usage.input,
        .tokens_out = r->usage.output,
        .cached_tokens = counted ? r->usage.cached : -1,
        .cache_write_tokens = counted ? r->usage.cache_write : -1,
        .step = r->step,
        .request_size = (int64_t)TG_MIN(r->request_size, (uint64_t)INT64_MAX),
        .response_size = (int64_t)TG_MIN(r->response_size, (uint64_t)INT64_MAX),
        .cost = r->cost,
    };
    return tg_logrow_pack(b, &row);
}

/* Binds a record's row at placeholders base + 1 .. base + INSERT_COLUMNS, rec[0..len) its packed row. */
static void bind_row(sqlite3_stmt *st, int base, const item_t *it, const char *rec, size_t len)
{
    const tg_logrec_t *r = it->r;
    sqlite3_bind_int64(st, base + 1, it->seq);
    sqlite3_bind_blob(st, base + 2, rec, (int)len, SQLITE_STATIC);
    bind_text(st, base + 3, r->metadata_json);
    bind_text(st, base + 4, r->event_id);
    sqlite3_bind_int(st, base + 5, FLAGS_OF(r) | (it->ref < 0 ? TG_LOGFLAG_PAYLOAD_LOST : 0));
    bind_count(st, base + 6, it->ref);
}

/* What follows a stored row: its count, and the rare extras (a displaced key, feedback read from an older layout). */
static void stored(tg_logstore_t *s, item_t *it)
{
    it->state = 1;
    it->g->rows++;
    it->g->inserted++;
    if (it->kp.displaced) {
        sqlite3_stmt *d = s->st[ST_DISPLACED];
        sqlite3_bind_int64(d, 1, it->seq);
        sqlite3_bind_text(d, 2, it->r->id, -1, SQLITE_STATIC);
        run(s, d, "cannot list a displaced record");
    }
    if (it->r->reviewed) {
        sqlite3_stmt *up = s->st[ST_REVIEW];
        if (it->r->feedback < -1)
            sqlite3_bind_null(up, 1);
        else
            sqlite3_bind_int(up, 1, it->r->feedback);
        if (isnan(it->r->score))
            sqlite3_bind_null(up, 2);
        else
            sqlite3_bind_double(up, 2, it->r->score);
        sqlite3_bind_int64(up, 3, it->seq);
        run(s, up, "cannot keep a record's feedback");
    }
}

/* Inserts one row; on a key taken (by a record of the same millisecond) another, LATE_TRIES * TG_LOGSEQ_SPAN + 1
 * tries at most. */
static void insert_one(tg_logstore_t *s, item_t *it, const char *rec, size_t len)
{
    sqlite3_stmt *st = s->st[ST_INSERT];
    bind_row(st, 0, it, rec, len);
    for (int tries = 0; tries != 1024; ++tries) {
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            stored(s, it);
            return;
        }
        if (rc != SQLITE_CONSTRAINT_PRIMARYKEY)
            break;
        it->seq = next_key(it->g, &it->kp);
        sqlite3_bind_int64(st, 1, it->seq);
    }
    tg_log_error("log store: cannot insert a record: %s", sqlite3_errmsg(s->db));
    it->state = -1;
}

/*
 * A record was written by a worker on another core, so binding its row starts with cache misses (perf put a tenth of
 * the writer's time in SQLite's strlen of the first strings it reads). Asking for the record and the start of its
 * arena (where its strings are) two rows ahead took the writer from 5.2 to 4.7 us per record (thread CPU time, three
 * A/B pairs of 5 s at 64 connections).
 */
#define PREFETCH_AHEAD 2
#define PREFETCH_ARENA 512
#define PREFETCH_AHEAD_FIRST 8 /* the batch's first pass (gateway lookups) does little a record: asks further ahead */

static inline void prefetch_row(const tg_logrec_t *r)
{
    for (size_t off = 0; off < offsetof(tg_logrec_t, arena) + PREFETCH_ARENA; off += 64)
        __builtin_prefetch((const char *)r + off);
}

/* Whether a record goes into a block (logrow.h): an in-order one (its key after every other of its gateway's, so the
 * blocks of a gateway never overlap), with no event id (the index on its row finds it) and nothing to write beside
 * its row (a displaced key, feedback from an older layout). */
static bool blockable(const item_t *it)
{
    return !it->kp.late && !it->kp.displaced && it->r->event_id == NULL && !it->r->reviewed;
}

/* Inserts its[0..m) (blockable, of one gateway, keys ascending within TG_LOGBLOCK_SPAN) as one block row, keyed by
 * the last; false when one would not pack or the key is taken (they go in as rows of their own instead). */
static bool insert_block(tg_logstore_t *s, item_t **its, size_t m)
{
    int64_t key = its[m - 1]->seq;
    tg_buf_reset(&s->rows);
    if (tg_logblock_begin(&s->rows) != 0)
        return false;
    for (size_t j = 0; j != m; ++j) {
        if (j + PREFETCH_AHEAD < m)
            prefetch_row(its[j + PREFETCH_AHEAD]->r);
        const tg_logrec_t *r = its[j]->r;
        tg_buf_reset(&s->one);
        if (pack_row(&s->one, r) != 0)
            return false;
        tg_logblock_entry_t e = {
            .key = its[j]->seq,
            .flags = FLAGS_OF(r) | (its[j]->ref < 0 ? TG_LOGFLAG_PAYLOAD_LOST : 0),
            .payload = its[j]->ref,
            .metadata = r->metadata_json,
            .metadata_len = r->metadata_json != NULL ? strlen(r->metadata_json) : 0,
            .rec = s->one.base,
            .rec_len = s->one.len,
        };
        if (tg_logblock_add(&s->rows, key, &e) != 0)
            return false;
    }
    sqlite3_stmt *st = s->st[ST_INSERT];
    sqlite3_bind_int64(st, 1, key);
    sqlite3_bind_blob(st, 2, s->rows.base, (int)s->rows.len, SQLITE_STATIC);
    sqlite3_bind_null(st, 3);
    sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, TG_LOGFLAG_BLOCK);
    sqlite3_bind_null(st, 6);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        for (size_t j = 0; j != m; ++j) {
            its[j]->in_block = true;
            stored(s, its[j]);
        }
        return true;
    }
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY && !sqlite3_get_autocommit(s->db))
        return false; /* (not seen: in-order keys are past every other) */
    tg_log_error("log store: cannot insert records: %s", sqlite3_errmsg(s->db));
    return true; /* (they stay unstored: the batch fails) */
}

/*
 * Inserts the rows of items[0..n) (keys picked). First the blocks: each run of up to TG_LOGBLOCK_MAX blockable
 * records of a gateway within TG_LOGBLOCK_SPAN is one row. The others (and a run of one) go in as rows of their own,
 * INSERT_ROWS to a statement; a statement that meets a taken key stops there (OR FAIL: the rows before it stay) and
 * the rest of its rows go in one by one.
 */
static void insert_rows(tg_logstore_t *s, item_t **all, size_t n)
{
    size_t k = 0, at[INSERT_ROWS + 1];
    bool packed[INSERT_ROWS];
    item_t *run[TG_LOGBLOCK_MAX];
    /* the rows of their own, in a list of their own: the caller goes on to read all[0..n) */
    item_t **items = tg_malloc((n != 0 ? n : 1) * sizeof(*items));
    size_t nrun = 0, alone = 0;
    for (size_t i = 0; i <= n && !sqlite3_get_autocommit(s->db); ++i) {
        item_t *it = i != n ? all[i] : NULL;
        bool block = it != NULL && blockable(it);
        if (nrun != 0 && (!block || it->g != run[0]->g || nrun == TG_LOGBLOCK_MAX ||
                          it->seq - run[0]->seq >= TG_LOGBLOCK_SPAN || it->seq <= run[nrun - 1]->seq)) {
            if (nrun == 1 || !insert_block(s, run, nrun))
                for (size_t j = 0; j != nrun; ++j)
                    items[alone++] = run[j];
            nrun = 0;
        }
        if (block)
            run[nrun++] = it;
        else if (it != NULL)
            items[alone++] = it;
    }
    n = alone;
    while (k != n && !sqlite3_get_autocommit(s->db)) {
        /* pack a statement's rows first: binding them must wait until s->rows no longer moves */
        size_t m = TG_MIN(n - k, (size_t)INSERT_ROWS), num_packed = 0;
        tg_buf_reset(&s->rows);
        for (size_t j = 0; j != m; ++j) {
            if (k + j + PREFETCH_AHEAD < n)
                prefetch_row(items[k + j + PREFETCH_AHEAD]->r);
            at[j] = s->rows.len;
            packed[j] = pack_row(&s->rows, items[k + j]->r) == 0;
            if (!packed[j]) /* never seen: the fields come from bounded headers; counted as an error */
                tg_log_error("log store: a record's fields are over %zu bytes: not stored", s->rows.max);
            num_packed += packed[j];
        }
        at[m] = s->rows.len;
        if (num_packed == INSERT_ROWS) {
            sqlite3_stmt *st = s->st[ST_INSERT_MANY];
            for (size_t j = 0; j != m; ++j)
                bind_row(st, (int)j * INSERT_COLUMNS, items[k + j], s->rows.base + at[j], at[j + 1] - at[j]);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc == SQLITE_DONE) {
                for (size_t j = 0; j != m; ++j)
                    stored(s, items[k + j]);
                k += m;
                continue;
            }
            if (sqlite3_get_autocommit(s->db)) { /* a full disk, an I/O error: SQLite rolled the batch back */
                tg_log_error("log store: cannot insert records: %s", sqlite3_errmsg(s->db));
                free(items);
                return;
            }
            if (rc != SQLITE_CONSTRAINT_PRIMARYKEY)
                tg_log_error("log store: cannot insert records: %s", sqlite3_errmsg(s->db));
            /* the rows before the one that failed went in, in order (OR FAIL), and they are the statement's change
             * count; the others go in one by one (insert_one picks another key for a taken one) */
            size_t kept = TG_MIN((size_t)sqlite3_changes(s->db), m);
            for (size_t j = 0; j != kept; ++j)
                stored(s, items[k + j]);
            for (size_t j = kept; j != m && !sqlite3_get_autocommit(s->db); ++j)
                insert_one(s, items[k + j], s->rows.base + at[j], at[j + 1] - at[j]);
            k += m;
            continue;
        }
        /* fewer than a statement's rows: one by one */
        for (size_t j = 0; j != m && !sqlite3_get_autocommit(s->db); ++j)
            if (packed[j])
                insert_one(s, items[k + j], s->rows.base + at[j], at[j + 1] - at[j]);
        k += m;
    }
    free(items);
}

/* Decrements the live counts of the segments holding `refs` (deleted rows' payloads) of gateway gw; a run of refs
 * into the same segment (the usual case: oldest rows first) is one statement. */
static void segments_released(tg_logstore_t *s, unsigned gw, const int64_t *refs, size_t n)
{
    for (size_t i = 0; i != n;) {
        uint64_t seg = tg_logseg_ref_n(refs[i]);
        size_t j = i;
        while (j != n && tg_logseg_ref_n(refs[j]) == seg)
            ++j;
        sqlite3_stmt *st = s->st[ST_SEG_SUB];
        sqlite3_bind_int64(st, 1, gw);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seg);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)(j - i));
        run(s, st, "cannot count a segment's records");
        i = j;
    }
}

/* DELETE_OLDEST: trims every gateway of the batch that went over its limit (after the batch's own rows are counted,
 * so that trimming one of them finds its segment's count). Returns the rows deleted. */
static uint64_t apply_retention(tg_logstore_t *s, item_t *items, size_t n)
{
    uint64_t deleted = 0;
    int64_t *refs = NULL;
    size_t cap = 0, del_cap = 0;
    tg_logdeleted_t *del = NULL;
    for (size_t k = 0; k != n; ++k) {
        tg_logrec_t *r = items[k].r;
        gw_state_t *g = items[k].g;
        if (g == NULL || r->log_management < 0 || r->log_management_strategy != TG_LOGS_DELETE_OLDEST ||
            g->rows <= r->log_management)
            continue;
        int64_t *keys = NULL;
        size_t nkeys = 0, nrefs = 0, ndel = 0;
        int rc = tg_logblock_oldest(s->db, tg_logseq_first(g->gw), tg_logseq_last(g->gw), g->rows - r->log_management,
                                    &keys, &nkeys);
        if (rc == SQLITE_OK)
            rc = tg_logblock_delete(s->db, keys, nkeys, &del, &ndel, &del_cap);
        free(keys);
        if (rc != SQLITE_OK) {
            tg_log_error("log store: retention delete failed: %s", sqlite3_errmsg(s->db));
            s->bad = true;
            break;
        }
        int64_t gone = (int64_t)ndel;
        if ((size_t)ndel > cap)
            refs = tg_realloc(refs, (cap = ndel) * sizeof(*refs));
        for (size_t i = 0; i != ndel; ++i)
            if (del[i].ref >= 0)
                refs[nrefs++] = del[i].ref;
        g->rows -= gone;
        deleted += (uint64_t)gone;
        sqlite3_stmt *st = s->st[ST_GW_ROWS];
        sqlite3_bind_int64(st, 1, g->gw);
        sqlite3_bind_int64(st, 2, -gone);
        run(s, st, "cannot count a gateway's records");
        segments_released(s, g->gw, refs, nrefs);
        if (s->bad)
            break;
    }
    free(refs);
    free(del);
    return deleted;
}

/* Puts items[0..n) in gateway order, and a gateway's in the order they were made (created_at; as they came for the
 * same millisecond): a batch's records finish out of the order they started in, and one that started before the
 * newest one given a key is late (first_key: a row of its own, not in a block); taken in the order they started,
 * only those that started before the batch's first are. A counting sort (a batch has few gateways), then a sort of
 * each gateway's; items without a gateway go last. */
typedef struct {
    uint64_t ms;
    uint32_t at;
} made_t;

static int by_made(const void *a, const void *b)
{
    const made_t *x = a, *y = b;
    return x->ms != y->ms ? (x->ms > y->ms) - (x->ms < y->ms) : (x->at > y->at) - (x->at < y->at);
}

static void group_by_gateway(tg_logstore_t *s, item_t *items, size_t n)
{
    for (size_t i = 0; i != s->num_gws; ++i)
        s->gws[i]->batch_pos = 0;
    size_t nulls = 0;
    for (size_t k = 0; k != n; ++k) {
        if (items[k].g != NULL)
            items[k].g->batch_pos++;
        else
            ++nulls;
    }
    size_t pos = 0;
    for (size_t i = 0; i != s->num_gws; ++i) {
        size_t count = s->gws[i]->batch_pos;
        s->gws[i]->batch_pos = pos;
        pos += count;
    }
    item_t *sorted = tg_malloc((n != 0 ? n : 1) * sizeof(*sorted));
    for (size_t k = 0; k != n; ++k)
        sorted[items[k].g != NULL ? items[k].g->batch_pos++ : pos++] = items[k];
    made_t *made = tg_malloc((n != 0 ? n : 1) * sizeof(*made));
    for (size_t k = 0; k != n; ++k)
        made[k] = (made_t){sorted[k].r->created_at_ms, (uint32_t)k};
    for (size_t a = 0; a != n;) { /* each gateway's run */
        size_t b = a + 1;
        while (b != n && sorted[b].g == sorted[a].g)
            ++b;
        if (sorted[a].g != NULL)
            qsort(made + a, b - a, sizeof(*made), by_made);
        a = b;
    }
    for (size_t k = 0; k != n; ++k)
        items[k] = sorted[made[k].at];
    free(made);
    free(sorted);
}

static size_t group_end(const item_t *items, size_t n, size_t k)
{
    size_t end = k;
    while (end != n && items[end].g == items[k].g)
        ++end;
    return end;
}

/* Segments to unlink once the batch has committed. */
typedef struct {
    unsigned gw;
    uint64_t n;
} dead_seg_t;

/* The entry of account/gateway in `counted`, added (with no rows) if it has none (under mutex). */
static size_t counted_entry(tg_logstore_t *s, const char *account, const char *gateway)
{
    for (size_t i = 0; i != s->num_counted; ++i)
        if (strcmp(s->counted[i].gateway, gateway) == 0 && strcmp(s->counted[i].account, account) == 0)
            return i;
    s->counted = tg_realloc(s->counted, (s->num_counted + 1) * sizeof(*s->counted));
    s->counted[s->num_counted].account = tg_strdup(account);
    s->counted[s->num_counted].gateway = tg_strdup(gateway);
    s->counted[s->num_counted].rows = 0;
    s->counted[s->num_counted].pending = 0;
    return s->num_counted++;
}

/* Gives back the place an admitted record held (under mutex). */
static void give_back_place(tg_logstore_t *s, const tg_logrec_t *r)
{
    size_t i = counted_entry(s, r->account, r->gateway);
    if (s->counted[i].pending > 0)
        s->counted[i].pending--;
}

/* The gateways' counts for tg_logstore_admit after a batch, whose admitted records give their places back (under
 * mutex). A count the writer does not know (a batch rolled back) leaves the last one published. */
static void publish_counts(tg_logstore_t *s, uint64_t gen)
{
    s->any_full = false;
    for (size_t i = 0; i != s->num_gws; ++i) {
        gw_state_t *g = s->gws[i];
        if (g->counted_ix == SIZE_MAX)
            g->counted_ix = counted_entry(s, g->account, g->gateway);
        counted_t *c = &s->counted[g->counted_ix];
        if (g->rows >= 0)
            c->rows = g->rows;
        c->pending = TG_MAX(c->pending - g->released, 0);
        g->released = 0;
        s->any_full |= g->stop_at >= 0 && c->rows >= g->stop_at;
    }
    s->counted_gen = gen;
}

/* At open: every gateway with records, so that tg_logstore_admit knows their counts before the first batch. */
static void know_gateways(tg_logstore_t *s)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT account, gateway FROM log_gateways ORDER BY gw", -1, &st, NULL) != SQLITE_OK)
        return; /* (they are learnt as their records come) */
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *account = (const char *)sqlite3_column_text(st, 0);
        const char *gateway = (const char *)sqlite3_column_text(st, 1);
        if (account == NULL || gateway == NULL || gw_state(s, account, gateway) == NULL)
            break;
    }
    sqlite3_finalize(st);
    uv_mutex_lock(&s->mutex);
    publish_counts(s, atomic_load(&s->deleted_gen));
    uv_mutex_unlock(&s->mutex);
}

/*
 * Writes one batch in one transaction: keys and payload space first, then the rows, retention, the counts, and the
 * payloads themselves (before the commit, so a committed row's payload is at least in the page cache), then unlinks
 * the segments left with no records. `migrated_upto` >= 0: the batch was read from the older layout's table, whose
 * rows up to that key are deleted in the same transaction.
 */
static void write_batch(tg_logstore_t *s, tg_logrec_t **batch, size_t n, int64_t migrated_upto)
{
    uint64_t t0 = tg_now_mono_ns();
    uint64_t gen = atomic_load(&s->deleted_gen);
    /* someone deleted rows (count again, look for dead segments), or the last batch failed */
    bool recount = gen != s->seen_deleted_gen || s->must_recount, counts_known = true;
    s->seen_deleted_gen = gen;
    s->must_recount = false;
    uint64_t written = 0, refused = 0, errors = 0, deleted = 0;
    item_t *items = tg_malloc((n != 0 ? n : 1) * sizeof(*items));
    item_t **rows = tg_malloc((n != 0 ? n : 1) * sizeof(*rows)); /* those that get a row */
    size_t nrows = 0;
    size_t k;
    for (k = 0; k != n; ++k)
        items[k] = (item_t){.r = batch[k], .ref = -1, .state = -1};
    dead_seg_t *dead = NULL;
    size_t num_dead = 0;
    bool lost_any = false;
    char *err = NULL;
    /* gateways are numbered before the batch's transaction, each in its own: a number is never lost with a batch
     * rolled back (and then handed to another gateway) */
    for (k = 0; k != n; ++k) {
        if (k + PREFETCH_AHEAD_FIRST < n)
            prefetch_row(batch[k + PREFETCH_AHEAD_FIRST]);
        items[k].g = gw_state(s, items[k].r->account, items[k].r->gateway);
        if (items[k].r->admitted) {
            if (items[k].g != NULL) {
                items[k].g->released++;
            } else { /* (not stored: no gateway number) */
                uv_mutex_lock(&s->mutex);
                give_back_place(s, items[k].r);
                uv_mutex_unlock(&s->mutex);
            }
        }
    }
    s->bad = false;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK) {
        tg_log_error("log store: cannot begin a transaction: %s", err != NULL ? err : "?");
        sqlite3_free(err);
        errors = n;
        counts_known = false;
        goto done;
    }
    /* another connection committed (a delete, a PATCH) since the last batch: the counts are read again, inside this
     * transaction, so retention never decides on counts from before a delete */
    sqlite3_stmt *dv = s->st[ST_DATA_VERSION];
    int64_t version = sqlite3_step(dv) == SQLITE_ROW ? sqlite3_column_int64(dv, 0) : -1;
    sqlite3_reset(dv);
    if (version != s->data_version)
        recount = true;
    s->data_version = version;
    if (recount)
        reload_counts(s);
    for (size_t i = 0; i != s->num_gws; ++i)
        s->gws[i]->inserted = s->gws[i]->seg_live = 0;
    /* grouped by gateway, so each gateway's payloads are staged together */
    group_by_gateway(s, items, n);
    for (k = 0; k != n;) {
        gw_state_t *g = items[k].g;
        size_t end = group_end(items, n, k);
        if (g == NULL) {
            k = end;
            continue;
        }
        if (g->rows < 0)
            reload_counts(s);
        /* STOP_INSERTING refuses what would go past the gateway's limit: no row, and no payload written */
        uint64_t total = 0;
        int64_t accepted = 0;
        for (size_t i = k; i != end; ++i) {
            tg_logrec_t *r = items[i].r;
            g->stop_at = r->log_management_strategy == TG_LOGS_STOP_INSERTING ? r->log_management : -1;
            if (r->log_management >= 0 && r->log_management_strategy == TG_LOGS_STOP_INSERTING &&
                g->rows + accepted >= r->log_management) {
                items[i].state = 0;
                continue;
            }
            payload_parts(r, items[i].parts);
            total += tg_logseg_size(items[i].parts);
            accepted++;
        }
        bool seg = accepted != 0 && tg_logseg_begin(&g->seg, total) == 0;
        for (size_t i = k; i != end; ++i) {
            item_t *it = &items[i];
            if (it->state == 0)
                continue;
            it->ref = seg ? tg_logseg_reserve(&g->seg, tg_logseg_size(it->parts)) : -1;
            it->seq = first_key(g, it->r, &it->kp);
            rows[nrows++] = it;
        }
        k = end;
    }
    insert_rows(s, rows, nrows);
    for (k = 0; k != nrows; ++k) {
        item_t *it = rows[k];
        if (it->ref >= 0 && it->state > 0) {
            it->g->seg_live++;
            it->g->seg_n = tg_logseg_ref_n(it->ref);
        }
        lost_any |= it->state > 0 && it->ref < 0;
    }
    /* the batch's counts, then retention (whose deletes may take rows of this very batch) */
    for (size_t i = 0; i != s->num_gws && !s->bad; ++i) {
        gw_state_t *g = s->gws[i];
        sqlite3_stmt *st;
        if (g->seg_live != 0) {
            st = s->st[ST_SEG_ADD];
            sqlite3_bind_int64(st, 1, g->gw);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)g->seg_n);
            sqlite3_bind_int64(st, 3, g->seg_live);
            run(s, st, "cannot count a segment's records");
        }
        if (g->inserted != 0) {
            st = s->st[ST_GW_ROWS];
            sqlite3_bind_int64(st, 1, g->gw);
            sqlite3_bind_int64(st, 2, g->inserted);
            run(s, st, "cannot count a gateway's records");
        }
    }
    if (!s->bad && !sqlite3_get_autocommit(s->db))
        deleted = apply_retention(s, items, n);
    /* the payloads, a gateway at a time; a gateway whose segment could not be written keeps its rows, marked, and
     * its segment's count loses them */
    bool have_stage = tg_logseg_stage_init(&s->stage) == 0;
    for (k = 0; k != n && !s->bad && !sqlite3_get_autocommit(s->db);) {
        gw_state_t *g = items[k].g;
        size_t end = group_end(items, n, k);
        if (g != NULL && g->seg_live != 0) {
            for (size_t i = k; i != end && have_stage; ++i) {
                if (items[i].ref >= 0)
                    tg_logseg_stage(&g->seg, &s->stage, (uint64_t)items[i].seq, items[i].parts);
            }
            if (!have_stage)
                tg_logseg_abandon(&g->seg);
            if (!have_stage || tg_logseg_flush(&g->seg, &s->stage) != 0) {
                int64_t lost = 0;
                for (size_t i = k; i != end && !s->bad; ++i) {
                    if (items[i].ref < 0 || items[i].state <= 0)
                        continue;
                    int moved;
                    if (items[i].in_block && tg_logblock_unblock(s->db, items[i].seq, &moved) != SQLITE_OK) {
                        tg_log_error("log store: cannot mark a payload lost: %s", sqlite3_errmsg(s->db));
                        s->bad = true;
                        break;
                    }
                    sqlite3_bind_int64(s->st[ST_LOST], 1, items[i].seq);
                    if (run(s, s->st[ST_LOST], "cannot mark a payload lost"))
                        lost += sqlite3_changes(s->db); /* (0 for a row retention took already) */
                }
                if (lost != 0 && !s->bad) { /* (a group's payloads are all in one segment) */
                    sqlite3_stmt *st = s->st[ST_SEG_SUB];
                    sqlite3_bind_int64(st, 1, g->gw);
                    sqlite3_bind_int64(st, 2, (sqlite3_int64)g->seg_n);
                    sqlite3_bind_int64(st, 3, lost);
                    run(s, st, "cannot count a segment's records");
                }
                lost_any = true;
            }
        } else if (g != NULL) {
            tg_logseg_abandon(&g->seg); /* (nothing stored: a refused or failed group) */
        }
        k = end;
    }
    if (deleted != 0 && !s->bad && !sqlite3_get_autocommit(s->db))
        run(s, s->st[ST_UNDISPLACE], "cannot forget deleted displaced records");
    /* segments with no records left, unless a writer still appends to one */
    if ((deleted != 0 || recount) && !s->bad && !sqlite3_get_autocommit(s->db)) {
        sqlite3_stmt *st = s->st[ST_DEAD];
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            dead_seg_t d = {(unsigned)sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1)};
            bool open = false;
            for (size_t i = 0; i != s->num_gws; ++i)
                open |= s->gws[i]->gw == d.gw && s->gws[i]->seg.fd >= 0 && s->gws[i]->seg.n == d.n;
            if (open)
                continue; /* its row is gone; the next batch's upsert adds it back */
            dead = tg_realloc(dead, (num_dead + 1) * sizeof(*dead));
            dead[num_dead++] = d;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            s->bad = true;
    }
    for (k = 0; k != n; ++k) {
        written += items[k].state > 0;
        refused += items[k].state == 0;
        errors += items[k].state < 0;
    }
    /* converting: the old rows go only with every one of them stored whole */
    if (migrated_upto >= 0 && !s->bad && !sqlite3_get_autocommit(s->db)) {
        if (errors != 0 || lost_any) {
            tg_log_error("log store: a record of the older layout could not be stored whole; nothing of this chunk "
                         "is converted");
            s->bad = true;
        } else {
            sqlite3_bind_int64(s->st_migrated, 1, migrated_upto);
            run(s, s->st_migrated, "cannot convert the older layout");
        }
    }
    if (s->bad || sqlite3_get_autocommit(s->db) || sqlite3_exec(s->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
        if (err != NULL) {
            tg_log_error("log store: commit failed: %s", err);
            sqlite3_free(err);
        }
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        errors = n;
        written = refused = deleted = 0;
        for (size_t i = 0; i != s->num_gws; ++i)
            s->gws[i]->rows = -1;
        counts_known = false;
        num_dead = 0;
    }
    for (size_t i = 0; i != num_dead; ++i) {
        char path[4096];
        if (tg_logseg_path(path, sizeof(path), s->payload_dir, dead[i].gw, dead[i].n) == 0 && unlink(path) != 0 &&
            errno != ENOENT)
            tg_log_warn("log store: cannot remove %s: %s", path, strerror(errno));
    }
    /* reservations whose payloads were never written (the batch stopped before them) are given back, so the next
     * reference is where the next byte will be */
    for (size_t i = 0; i != s->num_gws; ++i)
        tg_logseg_abandon(&s->gws[i]->seg);
done:
    free(dead);
    free(rows);
    free(items);
    uint64_t dt = tg_now_mono_ns() - t0;
    return_batch(batch, n);
    uv_mutex_lock(&s->mutex);
    s->stats.written += written;
    s->stats.dropped_retention += refused;
    s->stats.write_errors += errors;
    s->stats.deleted_retention += deleted;
    if (n != 0) { /* (an empty batch is the writer's upkeep after a delete) */
        s->stats.batches++;
        s->stats.batch_ns_sum += dt;
        if (dt > s->stats.batch_ns_max)
            s->stats.batch_ns_max = dt;
    }
    s->done += n;
    /* a failed batch leaves the counts published before it (a delete not yet seen stays unseen: its waiter waits
     * on), and the next batch (an idle writer's upkeep within FULL_RECHECK_NS while a gateway is full) recounts */
    s->must_recount |= !counts_known;
    publish_counts(s, counts_known ? gen : s->counted_gen);
    uv_cond_broadcast(&s->flushed);
    uv_mutex_unlock(&s->mutex);
}

/*
 * After each commit (sqlite3_wal_hook): a checkpoint once the WAL holds WAL_CHECKPOINT_BYTES of pages, with the
 * open payload segments made durable first, so that a row the checkpoint makes durable never points at payload bytes
 * that were still only in the page cache. (This replaces SQLite's own automatic checkpoint, which is run by the same
 * hook.)
 */
#define WAL_CHECKPOINT_BYTES (16 << 20)

static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    tg_logstore_t *s = arg;
    if (pages < s->checkpoint_pages)
        return SQLITE_OK;
    for (size_t i = 0; i != s->num_gws; ++i)
        tg_logseg_sync(&s->gws[i]->seg);
    /* (a checkpoint commits nothing: the hook does not run again inside it) */
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* A batch of ~500 records costs the writer the least per record: 512 records or 20 ms took its CPU per record from
 * 3.1 to 2.6 us against 512 or 5 ms (~240 records a batch at 64 connections), and 1024 records or 40 ms up to
 * 3.6 us, a batch outgrowing the caches (bench/RESULTS.md, session 20). */
#define GROUP_TARGET 512
#define GROUP_WAIT_NS 20000000u  /* 20 ms */
#define IDLE_TRIM_NS 1000000000u /* 1 s */
#define FULL_RECHECK_NS 1000000000u /* 1 s */

static void writer_main(void *arg)
{
    tg_logstore_t *s = arg;
    pthread_setname_np(pthread_self(), "tg-logwriter");
    /* SCHED_BATCH: the writer's waking (its group-commit timer, a full group) does not preempt the worker running on
     * its core; it runs when that core next has room, or on the other one. It keeps its fair share of the CPU. */
    struct sched_param sp = {0};
    int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    if (rc != 0)
        tg_log_warn("log store: the writer keeps the default scheduling policy (SCHED_BATCH: %s)", strerror(rc));
    bool idle_trimmed = true;
    uv_mutex_lock(&s->mutex);
    for (;;) {
        while (s->depth == 0 && !s->stop && !s->maintain) {
            if (idle_trimmed && s->any_full) {
                /* workers submit nothing for a full STOP_INSERTING gateway (tg_logstore_admit), so deletes made
                 * by another process (data_version) would go unseen: an empty batch looks every FULL_RECHECK_NS */
                if (uv_cond_timedwait(&s->wake, &s->mutex, FULL_RECHECK_NS) == UV_ETIMEDOUT && s->depth == 0)
                    s->maintain = true;
                continue;
            }
            if (idle_trimmed) {
                uv_cond_wait(&s->wake, &s->mutex);
                continue;
            }
            /* a second with nothing to write: give back the page cache and the freed heap, so an idle gateway
             * holds little memory whatever its last burst was */
            if (uv_cond_timedwait(&s->wake, &s->mutex, IDLE_TRIM_NS) == UV_ETIMEDOUT && s->depth == 0) {
                free(s->queue); /* (a burst's arrays go too) */
                s->queue = NULL;
                s->queue_cap = 0;
                uv_mutex_unlock(&s->mutex);
                free(s->taken);
                s->taken = NULL;
                s->taken_cap = 0;
                sqlite3_db_release_memory(s->db);
                tg_logseg_stage_free(&s->stage);
                free_returned();
                malloc_trim(0);
                uv_mutex_lock(&s->mutex);
                idle_trimmed = true;
            }
        }
        if (s->depth == 0 && s->stop)
            break;
        if (s->depth == 0) { /* maintain: an empty batch recounts and unlinks (write_batch) */
            s->maintain = false;
            uv_mutex_unlock(&s->mutex);
            write_batch(s, NULL, 0, -1);
            idle_trimmed = false;
            uv_mutex_lock(&s->mutex);
            continue;
        }
        s->maintain = false;
        /* group commit: a commit costs about the same for 1 record as for 500 (the pages it rewrites), so a small
         * batch waits a moment for company; records reach the disk GROUP_WAIT_NS later at most, or at once when
         * someone waits for them (tg_logstore_flush) */
        if (!s->stop && s->flushers == 0 && s->depth < GROUP_TARGET)
            uv_cond_timedwait(&s->wake, &s->mutex, GROUP_WAIT_NS);
        tg_logrec_t **batch = s->queue;
        size_t n = s->depth, cap = s->queue_cap;
        s->queue = s->taken;
        s->queue_cap = s->taken_cap;
        s->taken = batch;
        s->taken_cap = cap;
        s->depth = 0;
        s->bytes = 0;
        atomic_fetch_sub_explicit(&s->places, n, memory_order_relaxed); /* (every queued record held one) */
        uv_mutex_unlock(&s->mutex);
        write_batch(s, batch, n, -1);
        idle_trimmed = false;
        uv_mutex_lock(&s->mutex);
    }
    uv_mutex_unlock(&s->mutex);
}

/* Removes payload segments that no row refers to: written by a batch that never committed (a crash, a database
 * error). Runs before the writer starts. */
static void sweep_orphans(tg_logstore_t *s)
{
    DIR *d = opendir(s->payload_dir);
    if (d == NULL)
        return;
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(s->db, "SELECT 1 FROM log_segments WHERE gw = ?1 AND n = ?2", -1, &st, NULL);
    struct dirent *e;
    while (st != NULL && (e = readdir(d)) != NULL) {
        unsigned gw;
        unsigned long long n;
        char tail[8];
        if (sscanf(e->d_name, "%u-%llu.%7s", &gw, &n, tail) != 3 || strcmp(tail, "seg") != 0)
            continue;
        sqlite3_bind_int64(st, 1, gw);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
        bool known = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        char path[4096];
        if (!known && tg_logseg_path(path, sizeof(path), s->payload_dir, gw, n) == 0)
            unlink(path);
    }
    sqlite3_finalize(st);
    closedir(d);
}

/* ---- converting layout 2 ---------------------------------------------------------------------------------- */

/* Layout 2 kept heads and bodies in the row and metadata in a table of its own. Its rows are read in key order, a
 * thousand at a time, and written through the same path as new records, each chunk in one transaction that also
 * deletes it from the old table, so a conversion cut short goes on where it stopped at the next start. */
static const char v2_columns[] =
    "SELECT seq, id, account, gateway, created_at, provider, model, path, request_type, success, status_code, cached,"
    " stream, duration, time_to_first_byte, tokens_in, tokens_out, cached_tokens, cache_write_tokens, cost,"
    " custom_cost, metadata, event_id, step, request_size, response_size, request_content_type,"
    " response_content_type, user_agent, request_head, response_head, error, payload, request_body_dropped,"
    " response_body_dropped, feedback, score, request_body, response_body FROM logs_v2 ORDER BY seq LIMIT 1000";

static const char *col_text(tg_logrec_t *r, sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t != NULL ? tg_logrec_strndup(r, t, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

static int64_t col_count(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static tg_logrec_t *v2_record(sqlite3_stmt *st)
{
    tg_logrec_t *r = tg_logrec_new((uint64_t)sqlite3_column_int64(st, 4), 2048);
    const char *id = (const char *)sqlite3_column_text(st, 1);
    if (id != NULL && strlen(id) == TG_ULID_LEN)
        memcpy(r->id, id, TG_ULID_LEN + 1);
    r->account = col_text(r, st, 2);
    r->gateway = col_text(r, st, 3);
    r->provider = col_text(r, st, 5);
    r->model = col_text(r, st, 6);
    r->path = col_text(r, st, 7);
    r->request_type = col_text(r, st, 8);
    r->success = sqlite3_column_int(st, 9) != 0;
    r->status_code = sqlite3_column_int(st, 10);
    r->cached = sqlite3_column_int(st, 11) != 0;
    r->stream = sqlite3_column_int(st, 12) != 0;
    r->duration_ms = (uint64_t)sqlite3_column_int64(st, 13);
    r->ttfb_ms = (uint64_t)sqlite3_column_int64(st, 14);
    r->usage =
        (tg_usage_t){col_count(st, 15), col_count(st, 16), TG_MAX(col_count(st, 17), 0), TG_MAX(col_count(st, 18), 0)};
    r->cost = sqlite3_column_type(st, 19) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 19);
    r->custom_cost = sqlite3_column_int(st, 20) != 0;
    r->metadata_json = col_text(r, st, 21);
    r->event_id = col_text(r, st, 22);
    r->step = (int)col_count(st, 23);
    r->request_size = (uint64_t)sqlite3_column_int64(st, 24);
    r->response_size = (uint64_t)sqlite3_column_int64(st, 25);
    r->request_content_type = col_text(r, st, 26);
    r->response_content_type = col_text(r, st, 27);
    r->user_agent = col_text(r, st, 28);
    r->request_head = col_text(r, st, 29);
    r->response_head = col_text(r, st, 30);
    r->error = col_text(r, st, 31);
    r->payload = sqlite3_column_int(st, 32) != 0;
    r->request_body_dropped = sqlite3_column_int(st, 33) != 0;
    r->response_body_dropped = sqlite3_column_int(st, 34) != 0;
    r->reviewed = sqlite3_column_type(st, 35) != SQLITE_NULL || sqlite3_column_type(st, 36) != SQLITE_NULL;
    r->feedback = sqlite3_column_type(st, 35) == SQLITE_NULL ? -2 : sqlite3_column_int(st, 35);
    r->score = sqlite3_column_type(st, 36) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 36);
    size_t n = (size_t)sqlite3_column_bytes(st, 37);
    if (n != 0) {
        char *b = tg_logrec_alloc(r, n);
        memcpy(b, sqlite3_column_blob(st, 37), n);
        r->request_body = tg_iov(b, n);
    }
    n = (size_t)sqlite3_column_bytes(st, 38);
    tg_buf_init(&r->response_body, n);
    if (n != 0)
        tg_buf_append(&r->response_body, sqlite3_column_blob(st, 38), n);
    if (r->account == NULL || r->gateway == NULL) { /* NOT NULL in layout 2: never seen */
        r->account = "local";
        r->gateway = "default";
    }
    return r;
}

static int convert_v3(tg_logstore_t *s, bool finish, char *errbuf, size_t errbufsz);

/* Moves layout 2's table aside (logs_v2) and creates this layout's tables, unless an earlier start did. A conversion
 * from layout 2 that a Tollgate of layout 3 began and did not finish left the records it converted in layout 3's
 * table: they are packed first. Returns 0, or -1 with a message. */
static int start_v2(tg_logstore_t *s, char *errbuf, size_t errbufsz)
{
    static const char begin[] = "BEGIN IMMEDIATE; ALTER TABLE logs RENAME TO logs_v2;"
                                " DROP TRIGGER IF EXISTS logs_cleanup; DROP INDEX IF EXISTS logs_gw_time;"
                                " DROP INDEX IF EXISTS logs_gw_event; DROP TABLE IF EXISTS log_metadata;";
    char *err = NULL;
    if (has_table(s->db, "logs_v2"))
        return has_table(s->db, "logs_v3") || !has_table(s->db, "log_rows") ? convert_v3(s, false, errbuf, errbufsz)
                                                                            : 0;
    if (sqlite3_exec(s->db, begin, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
        snprintf(errbuf, errbufsz, "cannot convert %s/logs.db from layout 2: %s", s->data_dir, err != NULL ? err : "?");
        sqlite3_free(err);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

#define CONVERT_CHUNK_BYTES (64u << 20) /* a chunk holds at most a thousand records, and about this much */

/* Converts the rows of logs_v2 (start_v2 done, statements prepared). Returns 0, or -1 with a message. */
static int convert_v2(tg_logstore_t *s, char *errbuf, size_t errbufsz)
{
    char *err = NULL;
    sqlite3_stmt *count = NULL, *read = NULL;
    int64_t total = 0, done = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM logs_v2", -1, &count, NULL) == SQLITE_OK &&
        sqlite3_step(count) == SQLITE_ROW)
        total = sqlite3_column_int64(count, 0);
    sqlite3_finalize(count);
    tg_log_info("log store: converting %lld records of %s/logs.db to layout %d (heads and bodies move to %s)",
                (long long)total, s->data_dir, SCHEMA_VERSION, s->payload_dir);
    if (sqlite3_prepare_v2(s->db, v2_columns, -1, &read, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "DELETE FROM logs_v2 WHERE seq <= ?1", -1, &s->st_migrated, NULL) != SQLITE_OK) {
        snprintf(errbuf, errbufsz, "cannot read %s/logs.db's layout-2 records: %s", s->data_dir, sqlite3_errmsg(s->db));
        sqlite3_finalize(read);
        return -1;
    }
    for (;;) {
        tg_logrec_t **recs = NULL;
        size_t n = 0, cap = 0;
        int64_t last = -1;
        int rc = SQLITE_DONE;
        size_t bytes = 0;
        while (bytes < CONVERT_CHUNK_BYTES && (rc = sqlite3_step(read)) == SQLITE_ROW) {
            last = sqlite3_column_int64(read, 0);
            reserve_recs(&recs, &cap, n);
            recs[n] = v2_record(read);
            bytes += tg_logrec_size(recs[n++]);
        }
        if (bytes >= CONVERT_CHUNK_BYTES)
            rc = SQLITE_DONE; /* a full chunk: the next read starts after it */
        sqlite3_reset(read);
        if (rc != SQLITE_DONE || n == 0) {
            for (size_t i = 0; i != n; ++i)
                tg_logrec_free(recs[i]);
            free(recs);
            if (rc != SQLITE_DONE) {
                snprintf(errbuf, errbufsz, "cannot read %s/logs.db's layout-2 records: %s", s->data_dir,
                         sqlite3_errmsg(s->db));
                sqlite3_finalize(read);
                return -1;
            }
            break;
        }
        uint64_t errors = s->stats.write_errors;
        write_batch(s, recs, n, last);
        free(recs);
        if (s->stats.write_errors != errors) {
            snprintf(errbuf, errbufsz,
                     "cannot convert %s/logs.db to layout %d (see the messages above); the records "
                     "not yet converted are still in its table logs_v2",
                     s->data_dir, SCHEMA_VERSION);
            sqlite3_finalize(read);
            return -1;
        }
        done += (int64_t)n;
    }
    sqlite3_finalize(read);
    sqlite3_finalize(s->st_migrated);
    s->st_migrated = NULL;
    memset(&s->stats, 0, sizeof(s->stats)); /* what the conversion wrote is not what this run logged */
    /* one transaction: a stop between the two would leave layout 3's tables under version 2 */
    if (sqlite3_exec(s->db,
                     "BEGIN IMMEDIATE; DROP TABLE logs_v2; PRAGMA user_version = " TG_STR(SCHEMA_VERSION) "; COMMIT",
                     NULL, NULL, &err) != SQLITE_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        snprintf(errbuf, errbufsz, "cannot finish converting %s/logs.db: %s", s->data_dir, err != NULL ? err : "?");
        sqlite3_free(err);
        return -1;
    }
    tg_log_info("log store: converted %lld records; the space they held in logs.db is reused by new records",
                (long long)done);
    return 0;
}

/* ---- converting layout 3 ---------------------------------------------------------------------------------- */

/* Layout 3 had the fields of rec as columns of `logs`. Its rows are packed a thousand at a time, each chunk in one
 * transaction that also deletes it from the old table (renamed logs_v3), so a conversion cut short goes on where it
 * stopped at the next start. Keys, payload references and the other tables stay as they are. */
static const char v3_columns[] =
    "SELECT seq, id, created_at, provider, model, path, request_type, success, status_code, cached, duration,"
    " time_to_first_byte, tokens_in, tokens_out, cached_tokens, cache_write_tokens, cost, step,"
    " request_size, response_size, request_content_type, response_content_type, user_agent, error,"
    " metadata, event_id, flags, payload, feedback, score FROM logs_v3 ORDER BY seq LIMIT 1000";

static int64_t col_int(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

/* Packs the row `read` is on (v3_columns) into b. */
static int v3_pack(tg_buf_t *b, sqlite3_stmt *read)
{
#define T(i) ((const char *)sqlite3_column_text(read, i))
    tg_logrow_t row = {
        .id = T(1),
        .created_at = col_int(read, 2),
        .provider = T(3),
        .model = T(4),
        .path = T(5),
        .request_type = T(6),
        .success = col_int(read, 7),
        .status_code = col_int(read, 8),
        .cached = col_int(read, 9),
        .duration = col_int(read, 10),
        .ttfb = col_int(read, 11),
        .tokens_in = col_int(read, 12),
        .tokens_out = col_int(read, 13),
        .cached_tokens = col_int(read, 14),
        .cache_write_tokens = col_int(read, 15),
        .cost = sqlite3_column_type(read, 16) == SQLITE_NULL ? -1 : sqlite3_column_double(read, 16),
        .step = col_int(read, 17),
        .request_size = col_int(read, 18),
        .response_size = col_int(read, 19),
        .request_content_type = T(20),
        .response_content_type = T(21),
        .user_agent = T(22),
        .error = T(23),
    };
#undef T
    return tg_logrow_pack(b, &row);
}

/* Moves layout 3's table aside (logs_v3) and creates this layout's, unless an earlier start did; then converts its
 * rows and, if `finish`, sets the layout version (not when a conversion from layout 2 is still to finish: start_v2).
 * Returns 0, or -1 with a message. */
static int convert_v3(tg_logstore_t *s, bool finish, char *errbuf, size_t errbufsz)
{
    char *err = NULL;
    sqlite3_stmt *read = NULL, *ins = NULL, *del = NULL, *count = NULL;
    int64_t total = 0, done = 0;
    int rc = -1;
    if (!has_table(s->db, "logs_v3") &&
        (sqlite3_exec(s->db, "BEGIN IMMEDIATE; ALTER TABLE logs RENAME TO logs_v3; DROP INDEX IF EXISTS logs_event;",
                      NULL, NULL, &err) != SQLITE_OK ||
         sqlite3_exec(s->db, schema, NULL, NULL, &err) != SQLITE_OK ||
         sqlite3_exec(s->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK)) {
        snprintf(errbuf, errbufsz, "cannot convert %s/logs.db from layout 3: %s; nothing was changed", s->data_dir,
                 err != NULL ? err : sqlite3_errmsg(s->db));
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_free(err);
        return -1;
    }
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM logs_v3", -1, &count, NULL) == SQLITE_OK &&
        sqlite3_step(count) == SQLITE_ROW)
        total = sqlite3_column_int64(count, 0);
    sqlite3_finalize(count); /* (a statement left on a row would keep the old table from being dropped) */
    count = NULL;
    tg_log_info("log store: converting %lld records of %s/logs.db to layout %d (their fields packed in one value)",
                (long long)total, s->data_dir, SCHEMA_VERSION);
    if (sqlite3_prepare_v2(s->db, v3_columns, -1, &read, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO log_rows (seq, rec, metadata, event_id, flags, payload, feedback, score)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "DELETE FROM logs_v3 WHERE seq <= ?1", -1, &del, NULL) != SQLITE_OK)
        goto fail;
    for (;;) {
        if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK)
            goto fail;
        int64_t last = -1, n = 0;
        int step;
        while ((step = sqlite3_step(read)) == SQLITE_ROW) {
            tg_buf_reset(&s->rows);
            if (v3_pack(&s->rows, read) != 0) {
                err = sqlite3_mprintf("a record's fields are too large");
                goto fail;
            }
            last = sqlite3_column_int64(read, 0);
            sqlite3_bind_int64(ins, 1, last);
            sqlite3_bind_blob(ins, 2, s->rows.base, (int)s->rows.len, SQLITE_STATIC);
            for (int c = 3; c <= 8; ++c) /* metadata .. score */
                sqlite3_bind_value(ins, c, sqlite3_column_value(read, 21 + c));
            if (sqlite3_step(ins) != SQLITE_DONE)
                goto fail;
            sqlite3_reset(ins);
            ++n;
        }
        sqlite3_reset(read);
        if (step != SQLITE_DONE)
            goto fail;
        if (n == 0) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            break;
        }
        sqlite3_bind_int64(del, 1, last);
        if (sqlite3_step(del) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(del);
        if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK)
            goto fail;
        done += n;
    }
    /* one transaction: a stop between the two would leave this layout's tables under version 3 */
    if (sqlite3_exec(
            s->db,
            finish ? "BEGIN IMMEDIATE; DROP TABLE logs_v3; PRAGMA user_version = " TG_STR(SCHEMA_VERSION) "; COMMIT"
                   : "DROP TABLE logs_v3",
            NULL, NULL, &err) != SQLITE_OK)
        goto fail;
    tg_log_info("log store: converted %lld records", (long long)done);
    rc = 0;
    goto out;
fail:
    snprintf(errbuf, errbufsz,
             "cannot convert %s/logs.db from layout 3: %s; the records not yet converted are still "
             "in its table logs_v3",
             s->data_dir, err != NULL ? err : sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_free(err);
    sqlite3_finalize(count);
    sqlite3_finalize(read);
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    return rc;
}

/* ---- opening and closing ---------------------------------------------------------------------------------- */

static void store_free(tg_logstore_t *s)
{
    for (size_t i = 0; i != s->num_gws; ++i) { /* before the last checkpoint, which closing the database runs */
        tg_logseg_sync(&s->gws[i]->seg);
        tg_logseg_close(&s->gws[i]->seg);
    }
    for (int i = 0; i != ST_NUM; ++i)
        sqlite3_finalize(s->st[i]);
    sqlite3_finalize(s->st_migrated);
    sqlite3_close(s->db);
    for (size_t i = 0; i != s->num_gws; ++i) {
        free(s->gws[i]->account);
        free(s->gws[i]->gateway);
        free(s->gws[i]);
    }
    free(s->gws);
    for (size_t i = 0; i != s->num_counted; ++i) {
        free(s->counted[i].account);
        free(s->counted[i].gateway);
    }
    free(s->counted);
    tg_logseg_stage_free(&s->stage);
    tg_buf_free(&s->rows);
    tg_buf_free(&s->one);
    free(s->queue);
    free(s->taken);
    free(s->payload_dir);
    free(s->data_dir);
    free(s);
}

tg_logstore_t *tg_logstore_open(const char *data_dir, uint32_t queue_size, uint64_t queue_memory, char *errbuf,
                                size_t errbufsz)
{
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errbufsz, "cannot create data_dir %s: %s", data_dir, strerror(errno));
        return NULL;
    }
    tg_logstore_t *s = tg_calloc(1, sizeof(*s));
    tg_buf_init(&s->rows, 64u << 20);
    tg_buf_init(&s->one, 64u << 20);
    s->data_dir = tg_strdup(data_dir);
    size_t plen = strlen(data_dir) + sizeof("/" TG_LOGSEG_DIR);
    s->payload_dir = tg_malloc(plen);
    snprintf(s->payload_dir, plen, "%s/" TG_LOGSEG_DIR, data_dir);
    if (mkdir(s->payload_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errbufsz, "cannot create %s: %s", s->payload_dir, strerror(errno));
        store_free(s);
        return NULL;
    }
    s->db = open_db(data_dir, false, true, errbuf, errbufsz);
    if (s->db == NULL) {
        store_free(s);
        return NULL;
    }
    char *err = NULL;
    int version = user_version(s->db);
    if (version != 0 && version != 2 && version != 3 && version != 4 && version != SCHEMA_VERSION) {
        snprintf(errbuf, errbufsz,
                 "%s/logs.db has log layout %d and this Tollgate writes layout %d; move the file away (it is an "
                 "ordinary SQLite database) and start again",
                 data_dir, version, SCHEMA_VERSION);
        store_free(s);
        return NULL;
    }
    /* A new database gets 16 KiB pages: a row is ~250 bytes now that payloads are in segments, and 16 KiB halved
     * the writer's system calls against 4 KiB (fewer WAL frames and page splits; 32 KiB was as slow as 4 KiB again:
     * bench/RESULTS.md, session 31). An existing database keeps its pages (the size of a WAL database's pages is
     * fixed). The checkpoint is run by on_wal_commit. */
    if ((version == 0 && sqlite3_exec(s->db, "PRAGMA page_size=16384", NULL, NULL, &err) != SQLITE_OK) ||
        sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-2048;", NULL, NULL,
                     &err) != SQLITE_OK ||
        (version == 0 && sqlite3_exec(s->db, schema, NULL, NULL, &err) != SQLITE_OK) ||
        ((version == 0 || version == 4) &&
         sqlite3_exec(s->db, "PRAGMA user_version = " TG_STR(SCHEMA_VERSION), NULL, NULL, &err) != SQLITE_OK)) {
        snprintf(errbuf, errbufsz, "cannot set up %s/logs.db: %s", data_dir, err != NULL ? err : "?");
        sqlite3_free(err);
        store_free(s);
        return NULL;
    }
    int page_size = pragma_int(s->db, "PRAGMA page_size");
    s->checkpoint_pages = WAL_CHECKPOINT_BYTES / (page_size > 0 ? page_size : 4096);
    sqlite3_wal_hook(s->db, on_wal_commit, s);
    /* before the statements: they name the new tables */
    if ((version == 2 && start_v2(s, errbuf, errbufsz) != 0) ||
        (version == 3 && convert_v3(s, true, errbuf, errbufsz) != 0)) {
        store_free(s);
        return NULL;
    }
    tg_buf_t many; /* ST_INSERT's column list with INSERT_ROWS rows of placeholders */
    tg_buf_init(&many, 64 << 10);
    /* OR FAIL: a taken key stops the statement with the rows before it kept, so SQLite keeps no statement journal
     * (a copy of every page the statement changes, to undo it as a whole) for a statement that will not need one */
    const char *into = statements[ST_INSERT] + strlen("INSERT"), *values = strstr(into, " VALUES");
    tg_buf_append_str(&many, "INSERT OR FAIL");
    tg_buf_append(&many, into, (size_t)(values - into));
    for (int r = 0; r != INSERT_ROWS; ++r) {
        tg_buf_append_str(&many, r == 0 ? " VALUES (" : ", (");
        for (int c = 0; c != INSERT_COLUMNS; ++c)
            tg_buf_append_str(&many, c == 0 ? "?" : ", ?");
        tg_buf_append_str(&many, ")");
    }
    for (int i = 0; i != ST_NUM; ++i) {
        const char *sql = i == ST_INSERT_MANY ? tg_buf_cstr(&many) : statements[i];
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            tg_buf_free(&many);
            snprintf(errbuf, errbufsz, "cannot prepare a log statement: %s", sqlite3_errmsg(s->db));
            store_free(s);
            return NULL;
        }
    }
    tg_buf_free(&many);
    atomic_init(&s->max_depth, queue_size);
    atomic_init(&s->places, 0);
    s->max_bytes = queue_memory;
    atomic_init(&s->deleted_gen, 0);
    uv_mutex_init(&s->mutex); /* (the conversion's batches count under it) */
    uv_cond_init(&s->wake);
    uv_cond_init(&s->flushed);
    if (version == 2 && convert_v2(s, errbuf, errbufsz) != 0) {
        uv_mutex_destroy(&s->mutex);
        uv_cond_destroy(&s->wake);
        uv_cond_destroy(&s->flushed);
        store_free(s);
        return NULL;
    }
    sweep_orphans(s);
    know_gateways(s);
    if (uv_thread_create(&s->thread, writer_main, s) != 0) {
        snprintf(errbuf, errbufsz, "cannot start the log writer thread");
        uv_mutex_destroy(&s->mutex);
        uv_cond_destroy(&s->wake);
        uv_cond_destroy(&s->flushed);
        store_free(s);
        return NULL;
    }
    return s;
}

/* Takes a queue place if one is free (never more than max_depth are held). */
static bool take_place(tg_logstore_t *s)
{
    size_t limit = atomic_load_explicit(&s->max_depth, memory_order_relaxed);
    size_t held = atomic_load_explicit(&s->places, memory_order_relaxed);
    do { /* (not an add undone on failure: that would refuse another thread a place while it is briefly over) */
        if (held >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&s->places, &held, held + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

bool tg_logstore_reserve(tg_logstore_t *s)
{
    if (take_place(s))
        return true;
    uv_mutex_lock(&s->mutex);
    s->stats.dropped_full++;
    uv_mutex_unlock(&s->mutex);
    return false;
}

void tg_logstore_unreserve(tg_logstore_t *s)
{
    atomic_fetch_sub_explicit(&s->places, 1, memory_order_relaxed);
}

/* A copy of `r` without its heads and bodies (its strings in the copy's own arena), which replaces it: `r` is freed.
 * The copy holds r's queue and retention places. */
#define LEAN_STRINGS(X)                                                                                                \
    X(account) X(gateway) X(provider) X(model) X(path) X(request_type) X(event_id) X(metadata_json) X(user_agent)      \
    X(request_content_type) X(response_content_type) X(error)

static tg_logrec_t *shed_payload(tg_logrec_t *r)
{
    size_t need = 0;
#define X(f) need += r->f != NULL ? strlen(r->f) + 1 : 0;
    LEAN_STRINGS(X)
#undef X
    for (size_t i = 0; i != r->num_metadata; ++i)
        need += strlen(r->metadata[i].key) + strlen(r->metadata[i].value) + 2;
    tg_logrec_t *n = tg_logrec_new(r->created_at_ms, need);
    tg_logrec_t own = *n;
    *n = *r;
    /* the block's own bookkeeping, not r's */
    n->_next = NULL;
    n->_pool = own._pool;
    n->_inline = own._inline;
    n->arena_cur = own.arena_cur;
    n->arena_left = own.arena_left;
    n->arena_size = own.arena_size;
    n->chunks = own.chunks;
    n->response_body = own.response_body;
    n->_body_spare = NULL; /* (a lean record keeps no spare buffer) */
    n->_body_spare_cap = 0;
    free(own._body_spare);
    n->request_body = tg_iov("", 0);
    n->request_head = n->response_head = NULL;
    n->payload_shed = true;
#define X(f) n->f = tg_logrec_strdup(n, r->f);
    LEAN_STRINGS(X)
#undef X
    for (size_t i = 0; i != n->num_metadata; ++i) {
        n->metadata[i].key = tg_logrec_strdup(n, r->metadata[i].key);
        n->metadata[i].value = tg_logrec_strdup(n, r->metadata[i].value);
    }
    tg_logrec_free(r); /* (its places are the copy's now: freeing a record gives back none) */
    return n;
}

void tg_logstore_submit(tg_logstore_t *s, tg_logrec_t *r)
{
    size_t size = tg_logrec_size(r);
    /* a record that holds a place keeps it whatever a reload did to log_queue_size meanwhile */
    bool placed = r->queue_place || take_place(s);
    uv_mutex_lock(&s->mutex);
    if (placed && !s->stop && s->bytes + size > s->max_bytes) {
        /* its log id may be named already: it is kept, without what makes it large (copied outside the lock) */
        uv_mutex_unlock(&s->mutex);
        r = shed_payload(r);
        size = tg_logrec_size(r);
        uv_mutex_lock(&s->mutex);
        s->stats.payloads_shed++;
    }
    if (!placed || s->stop) {
        s->stats.dropped_full++;
        if (r->admitted)
            give_back_place(s, r);
        uv_mutex_unlock(&s->mutex);
        if (placed)
            tg_logstore_unreserve(s);
        tg_logrec_free(r);
        return;
    }
    reserve_recs(&s->queue, &s->queue_cap, s->depth);
    s->queue[s->depth++] = r;
    s->bytes += size;
    s->submitted++;
    if (s->depth == 1 || s->depth == GROUP_TARGET) /* the writer sleeps on an empty queue, or waits for company */
        uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->mutex);
}

void tg_logstore_set_limits(tg_logstore_t *s, uint32_t queue_size, uint64_t queue_memory)
{
    uv_mutex_lock(&s->mutex);
    atomic_store_explicit(&s->max_depth, queue_size, memory_order_relaxed);
    s->max_bytes = queue_memory;
    uv_mutex_unlock(&s->mutex);
}

void tg_logstore_flush(tg_logstore_t *s)
{
    uv_mutex_lock(&s->mutex);
    uint64_t target = s->submitted;
    s->flushers++;
    uv_cond_signal(&s->wake); /* a writer waiting for company goes now */
    while (s->done < target)
        uv_cond_wait(&s->flushed, &s->mutex);
    s->flushers--;
    uv_mutex_unlock(&s->mutex);
}

bool tg_logstore_admit(tg_logstore_t *s, const char *account, const char *gateway, int64_t limit)
{
    uv_mutex_lock(&s->mutex);
    size_t i = counted_entry(s, account, gateway);
    bool admit = s->counted[i].rows + s->counted[i].pending < limit;
    if (admit) {
        s->counted[i].pending++;
    } else {
        s->stats.dropped_retention++;
        if (!s->any_full) { /* (a full gateway the writer has seen no record of since it opened) */
            s->any_full = true;
            uv_cond_signal(&s->wake);
        }
    }
    uv_mutex_unlock(&s->mutex);
    return admit;
}

/* tg_logstore_rows_deleted waits this long at most for the writer's count (a batch in progress and the next, a few
 * ms to tens of ms; the wait holds one of libuv's threadpool threads) */
#define RECOUNT_WAIT_NS 500000000ull

void tg_logstore_rows_deleted(tg_logstore_t *s)
{
    uint64_t gen = atomic_fetch_add(&s->deleted_gen, 1) + 1;
    uv_mutex_lock(&s->mutex);
    s->maintain = true; /* an idle writer wakes to recount and unlink the segments left empty */
    uv_cond_signal(&s->wake);
    /* the counts from before the delete stay (refusing, never admitting, too many) until the writer has counted
     * again, which this waits for: records sent once a delete has answered are admitted by the new count */
    uint64_t until = tg_now_mono_ns() + RECOUNT_WAIT_NS;
    while (s->counted_gen < gen && !s->stop) {
        uint64_t now = tg_now_mono_ns();
        if (now >= until || uv_cond_timedwait(&s->flushed, &s->mutex, until - now) != 0)
            break;
    }
    uv_mutex_unlock(&s->mutex);
}

void tg_logstore_stats(tg_logstore_t *s, tg_logstore_stats_t *out)
{
    uv_mutex_lock(&s->mutex);
    *out = s->stats;
    out->queue_depth = s->depth;
    out->queue_bytes = s->bytes;
    size_t places = atomic_load_explicit(&s->places, memory_order_relaxed);
    out->in_flight = places > s->depth ? places - s->depth : 0;
    uv_mutex_unlock(&s->mutex);
}

sqlite3 *tg_logstore_acquire(tg_logstore_t *s, char *errbuf, size_t errbufsz)
{
    uv_mutex_lock(&s->mutex);
    sqlite3 *db = s->num_idle != 0 ? s->idle[--s->num_idle] : NULL;
    uv_mutex_unlock(&s->mutex);
    return db != NULL ? db : open_db(s->data_dir, false, false, errbuf, errbufsz);
}

void tg_logstore_release(tg_logstore_t *s, sqlite3 *db)
{
    uv_mutex_lock(&s->mutex);
    if (s->num_idle != TG_ARRAY_SIZE(s->idle)) {
        s->idle[s->num_idle++] = db;
        db = NULL;
    }
    uv_mutex_unlock(&s->mutex);
    sqlite3_close(db);
}

void tg_logstore_close(tg_logstore_t *s)
{
    if (s == NULL)
        return;
    /* (the writer may be in its group-commit wait: the signal below ends it) */
    uv_mutex_lock(&s->mutex);
    for (size_t i = 0; i != s->num_idle; ++i)
        sqlite3_close(s->idle[i]);
    s->num_idle = 0;
    s->stop = true;
    uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->mutex);
    uv_thread_join(&s->thread);
    uv_mutex_destroy(&s->mutex);
    uv_cond_destroy(&s->wake);
    uv_cond_destroy(&s->flushed);
    store_free(s); /* syncs the open segments */
    free_returned();
}
