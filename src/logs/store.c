/*
 * The log store (logstore.h): a bounded queue in front of one writer thread that owns the write connection.
 *
 * The queue is a singly linked list under a mutex; workers append and signal, the writer takes the whole list at
 * once and writes it in one transaction (Redis's AOF rewrite buffer and SQLite's own advice: a transaction per
 * batch, not per row). Retention counts per gateway are kept by the writer; a delete through the API bumps a
 * generation number that makes it count again.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <jansson.h>
#include <uv.h>
#include "tollgate/log.h"
#include "tollgate/logstore.h"
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
    for (int i = 9; i >= 0; --i) {
        out[i] = alphabet[ms & 31];
        ms >>= 5;
    }
    uint64_t a = rng_next(), b = rng_next();
    for (int i = 10; i < 26; ++i) {
        uint64_t *src = i < 23 ? &a : &b;
        out[i] = alphabet[*src & 31];
        *src >>= 5;
    }
    out[TG_ULID_LEN] = '\0';
}

/* ---- records ---------------------------------------------------------------------------------------------- */

struct st_tg_logrec_chunk_t {
    tg_logrec_chunk_t *next;
    char data[];
};

#define ARENA_CHUNK_MIN 1024

tg_logrec_t *tg_logrec_new(uint64_t created_at_ms, size_t arena)
{
    tg_logrec_t *r = tg_malloc(sizeof(*r) + arena);
    memset(r, 0, sizeof(*r)); /* not the arena: it is handed out as it is written */
    r->created_at_ms = created_at_ms;
    tg_ulid(created_at_ms, r->id);
    r->usage = (tg_usage_t){-1, -1, 0, 0};
    r->cost = -1;
    r->step = -1;
    r->log_management = -1;
    tg_buf_init(&r->response_body, 0);
    r->arena_cur = r->arena;
    r->arena_left = arena;
    r->arena_size = arena;
    return r;
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
    for (tg_logrec_chunk_t *c = r->chunks, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    tg_buf_free(&r->response_body);
    free(r);
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
    if (json_object_size(o) > TG_METADATA_MAX_ENTRIES) {
        *why = "has more than 5 entries";
        goto out;
    }
    const char *key;
    json_t *v;
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
    return sizeof(*r) + r->arena_size + r->response_body.cap;
}

/* ---- schema ----------------------------------------------------------------------------------------------- */

#define SCHEMA_VERSION 2
#define TG_STR_(x) #x
#define TG_STR(x) TG_STR_(x)

/* The layout version of an existing database (0 for a new one). */
static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS logs ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL,"
    " account TEXT NOT NULL, gateway TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " provider TEXT, model TEXT, path TEXT, request_type TEXT,"
    " success INTEGER NOT NULL, status_code INTEGER, cached INTEGER NOT NULL, stream INTEGER NOT NULL,"
    " duration INTEGER NOT NULL, time_to_first_byte INTEGER,"
    " tokens_in INTEGER, tokens_out INTEGER, cached_tokens INTEGER, cache_write_tokens INTEGER,"
    " cost REAL, custom_cost INTEGER NOT NULL,"
    " metadata TEXT, event_id TEXT, step INTEGER,"
    " request_size INTEGER, response_size INTEGER,"
    " request_content_type TEXT, response_content_type TEXT, user_agent TEXT,"
    " request_head TEXT, response_head TEXT, error TEXT,"
    " payload INTEGER NOT NULL, request_body_dropped INTEGER NOT NULL, response_body_dropped INTEGER NOT NULL,"
    " feedback INTEGER, score REAL,"
    " request_body BLOB, response_body BLOB);"
    "CREATE INDEX IF NOT EXISTS logs_gw_time ON logs(account, gateway, created_at);"
    "CREATE INDEX IF NOT EXISTS logs_gw_event ON logs(account, gateway, event_id) WHERE event_id IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS log_metadata (seq INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS log_metadata_kv ON log_metadata(key, value);"
    "CREATE INDEX IF NOT EXISTS log_metadata_seq ON log_metadata(seq);"
    "CREATE TRIGGER IF NOT EXISTS logs_cleanup AFTER DELETE ON logs BEGIN"
    " DELETE FROM log_metadata WHERE seq = old.seq; END;"
    "PRAGMA user_version = " TG_STR(SCHEMA_VERSION) ";";

static sqlite3 *open_db(const char *data_dir, bool readonly, bool create, char *errbuf, size_t errbufsz)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/logs.db", data_dir) >= sizeof(path)) {
        snprintf(errbuf, errbufsz, "data_dir is too long");
        return NULL;
    }
    sqlite3 *db = NULL;
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)) |
                SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errbuf, errbufsz, "cannot open %s: %s", path, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_extended_result_codes(db, 1);
    return db;
}

sqlite3 *tg_logstore_reader(const char *data_dir, bool readonly, char *errbuf, size_t errbufsz)
{
    return open_db(data_dir, readonly, false, errbuf, errbufsz);
}

/* ---- the store -------------------------------------------------------------------------------------------- */

typedef struct {
    char *account, *gateway;
    int64_t count; /* rows stored for the gateway, -1 = not counted yet */
} gw_count_t;

enum { ST_INSERT, ST_META, ST_COUNT, ST_TRIM, ST_NUM };

struct st_tg_logstore_t {
    char *data_dir;
    sqlite3 *db;
    sqlite3_stmt *st[ST_NUM];
    uv_thread_t thread;
    uv_mutex_t mutex;
    uv_cond_t wake;    /* the writer: work or stop */
    uv_cond_t flushed; /* flushers: a batch was written */
    tg_logrec_t *head, **tail;
    size_t depth, bytes;
    size_t max_depth;
    uint64_t max_bytes;
    uint64_t submitted, done; /* records taken by submit (queued) and finished by the writer */
    bool stop;
    atomic_uint_fast64_t deleted_gen;
    uint64_t seen_deleted_gen;
    gw_count_t *counts;
    size_t num_counts;
    sqlite3 *idle[8]; /* query connections not in use (under mutex) */
    size_t num_idle;
    tg_logstore_stats_t stats; /* under mutex */
};

static const char *const statements[ST_NUM] = {
    [ST_INSERT] = "INSERT INTO logs (id, account, gateway, created_at, provider, model, path, request_type, success,"
                  " status_code, cached, stream, duration, time_to_first_byte, tokens_in, tokens_out, cached_tokens,"
                  " cache_write_tokens, cost, custom_cost, metadata, event_id, step, request_size, response_size,"
                  " request_content_type, response_content_type, user_agent, request_head, response_head, error,"
                  " payload, request_body_dropped, response_body_dropped, request_body, response_body)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
                  " ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36)",
    [ST_META] = "INSERT INTO log_metadata (seq, key, value) VALUES (?1, ?2, ?3)",
    [ST_COUNT] = "SELECT count(*) FROM logs WHERE account = ?1 AND gateway = ?2",
    [ST_TRIM] = "DELETE FROM logs WHERE seq IN (SELECT seq FROM logs WHERE account = ?1 AND gateway = ?2"
                " ORDER BY created_at, seq LIMIT ?3)",
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

static gw_count_t *gw_count(tg_logstore_t *s, const char *account, const char *gateway)
{
    for (size_t i = 0; i != s->num_counts; ++i)
        if (strcmp(s->counts[i].account, account) == 0 && strcmp(s->counts[i].gateway, gateway) == 0)
            return &s->counts[i];
    s->counts = tg_realloc(s->counts, (s->num_counts + 1) * sizeof(*s->counts));
    gw_count_t *c = &s->counts[s->num_counts++];
    *c = (gw_count_t){tg_strdup(account), tg_strdup(gateway), -1};
    return c;
}

/* The gateway's stored row count, counted on first need (and after a delete made by someone else). */
static int64_t count_rows(tg_logstore_t *s, gw_count_t *c)
{
    if (c->count >= 0)
        return c->count;
    sqlite3_stmt *st = s->st[ST_COUNT];
    sqlite3_bind_text(st, 1, c->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->gateway, -1, SQLITE_STATIC);
    c->count = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return c->count;
}

/* Inserts one record. Returns 1 when stored, 0 when retention refused it, -1 on a database error. */
static int insert_one(tg_logstore_t *s, tg_logrec_t *r)
{
    gw_count_t *c = NULL;
    if (r->log_management >= 0) {
        c = gw_count(s, r->account, r->gateway);
        if (r->log_management_strategy == TG_LOGS_STOP_INSERTING && count_rows(s, c) >= r->log_management)
            return 0;
    }
    sqlite3_stmt *st = s->st[ST_INSERT];
    int i = 1;
    bind_text(st, i++, r->id);
    bind_text(st, i++, r->account);
    bind_text(st, i++, r->gateway);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->created_at_ms);
    bind_text(st, i++, r->provider);
    bind_text(st, i++, r->model);
    bind_text(st, i++, r->path);
    bind_text(st, i++, r->request_type);
    sqlite3_bind_int(st, i++, r->success);
    if (r->status_code != 0)
        sqlite3_bind_int(st, i++, r->status_code);
    else
        sqlite3_bind_null(st, i++);
    sqlite3_bind_int(st, i++, r->cached);
    sqlite3_bind_int(st, i++, r->stream);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->duration_ms);
    bind_count(st, i++, r->status_code != 0 ? (int64_t)r->ttfb_ms : -1);
    bind_count(st, i++, r->usage.input);
    bind_count(st, i++, r->usage.output);
    bind_count(st, i++, r->usage.input >= 0 ? r->usage.cached : -1);
    bind_count(st, i++, r->usage.input >= 0 ? r->usage.cache_write : -1);
    if (r->cost >= 0)
        sqlite3_bind_double(st, i++, r->cost);
    else
        sqlite3_bind_null(st, i++);
    sqlite3_bind_int(st, i++, r->custom_cost);
    bind_text(st, i++, r->metadata_json);
    bind_text(st, i++, r->event_id);
    bind_count(st, i++, r->step);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->request_size);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->response_size);
    bind_text(st, i++, r->request_content_type);
    bind_text(st, i++, r->response_content_type);
    bind_text(st, i++, r->user_agent);
    bind_text(st, i++, r->request_head);
    bind_text(st, i++, r->response_head);
    bind_text(st, i++, r->error);
    sqlite3_bind_int(st, i++, r->payload);
    sqlite3_bind_int(st, i++, r->request_body_dropped);
    sqlite3_bind_int(st, i++, r->response_body_dropped);
    /* the bodies last in the row, so listing records never reads them */
    bool req_body = r->payload && !r->request_body_dropped && r->request_body.len != 0;
    bool resp_body = r->payload && !r->response_body_dropped && r->response_body.len != 0;
    if (req_body)
        sqlite3_bind_blob64(st, i++, r->request_body.base, r->request_body.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i++);
    if (resp_body)
        sqlite3_bind_blob64(st, i++, r->response_body.base, r->response_body.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i++);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        tg_log_error("log store: cannot insert a record: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    sqlite3_int64 seq = sqlite3_last_insert_rowid(s->db);
    for (size_t m = 0; m != r->num_metadata; ++m) {
        st = s->st[ST_META];
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_text(st, 2, r->metadata[m].key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->metadata[m].value, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    if (c != NULL && c->count >= 0)
        c->count++;
    return 1;
}

/* DELETE_OLDEST: trims every gateway of the batch that went over its limit. Returns the rows deleted. */
static uint64_t apply_retention(tg_logstore_t *s, tg_logrec_t *batch)
{
    uint64_t deleted = 0;
    for (tg_logrec_t *r = batch; r != NULL; r = r->_next) {
        if (r->log_management < 0 || r->log_management_strategy != TG_LOGS_DELETE_OLDEST)
            continue;
        gw_count_t *c = gw_count(s, r->account, r->gateway);
        int64_t n = count_rows(s, c);
        if (n <= r->log_management)
            continue;
        sqlite3_stmt *st = s->st[ST_TRIM];
        sqlite3_bind_text(st, 1, c->account, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->gateway, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, n - r->log_management);
        if (sqlite3_step(st) == SQLITE_DONE) {
            int changes = sqlite3_changes(s->db);
            deleted += (uint64_t)changes;
            c->count -= changes;
        } else {
            tg_log_error("log store: retention delete failed: %s", sqlite3_errmsg(s->db));
            c->count = -1;
        }
        sqlite3_reset(st);
    }
    return deleted;
}

static void write_batch(tg_logstore_t *s, tg_logrec_t *batch, size_t n)
{
    uint64_t t0 = tg_now_mono_ns();
    uint64_t gen = atomic_load(&s->deleted_gen);
    if (gen != s->seen_deleted_gen) { /* someone deleted rows: count again */
        for (size_t i = 0; i != s->num_counts; ++i)
            s->counts[i].count = -1;
        s->seen_deleted_gen = gen;
    }
    uint64_t written = 0, refused = 0, errors = 0, deleted = 0;
    char *err = NULL;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK) {
        tg_log_error("log store: cannot begin a transaction: %s", err != NULL ? err : "?");
        sqlite3_free(err);
        errors = n;
    } else {
        for (tg_logrec_t *r = batch; r != NULL; r = r->_next) {
            int rc = insert_one(s, r);
            if (rc > 0)
                ++written;
            else if (rc == 0)
                ++refused;
            else
                ++errors;
            if (rc < 0 && sqlite3_get_autocommit(s->db)) { /* SQLite rolled the whole batch back (full disk, I/O) */
                errors = n;
                written = refused = 0;
                break;
            }
        }
        if (!sqlite3_get_autocommit(s->db))
            deleted = apply_retention(s, batch);
        if (sqlite3_get_autocommit(s->db)) {
            for (size_t i = 0; i != s->num_counts; ++i)
                s->counts[i].count = -1;
        } else if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
            tg_log_error("log store: commit failed: %s", err != NULL ? err : "?");
            sqlite3_free(err);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            errors = n;
            written = refused = deleted = 0;
            for (size_t i = 0; i != s->num_counts; ++i)
                s->counts[i].count = -1;
        }
    }
    uint64_t dt = tg_now_mono_ns() - t0;
    while (batch != NULL) {
        tg_logrec_t *next = batch->_next;
        tg_logrec_free(batch);
        batch = next;
    }
    uv_mutex_lock(&s->mutex);
    s->stats.written += written;
    s->stats.dropped_retention += refused;
    s->stats.write_errors += errors;
    s->stats.deleted_retention += deleted;
    s->stats.batches++;
    s->stats.batch_ns_sum += dt;
    if (dt > s->stats.batch_ns_max)
        s->stats.batch_ns_max = dt;
    s->done += n;
    uv_cond_broadcast(&s->flushed);
    uv_mutex_unlock(&s->mutex);
}

#define GROUP_TARGET 512
#define GROUP_WAIT_NS 5000000u /* 5 ms */
#define IDLE_TRIM_NS 1000000000u /* 1 s */

static void writer_main(void *arg)
{
    tg_logstore_t *s = arg;
    pthread_setname_np(pthread_self(), "tg-logwriter");
    bool idle_trimmed = true;
    uv_mutex_lock(&s->mutex);
    for (;;) {
        while (s->head == NULL && !s->stop) {
            if (idle_trimmed) {
                uv_cond_wait(&s->wake, &s->mutex);
                continue;
            }
            /* a second with nothing to write: give back the page cache and the freed heap, so an idle gateway
             * holds little memory whatever its last burst was */
            if (uv_cond_timedwait(&s->wake, &s->mutex, IDLE_TRIM_NS) == UV_ETIMEDOUT && s->head == NULL) {
                uv_mutex_unlock(&s->mutex);
                sqlite3_db_release_memory(s->db);
                malloc_trim(0);
                uv_mutex_lock(&s->mutex);
                idle_trimmed = true;
            }
        }
        if (s->head == NULL && s->stop)
            break;
        /* group commit: a commit costs about the same for 1 record as for 500 (the pages it rewrites), so a small
         * batch waits a moment for company; records reach the disk GROUP_WAIT_NS later at most */
        if (!s->stop && s->depth < GROUP_TARGET)
            uv_cond_timedwait(&s->wake, &s->mutex, GROUP_WAIT_NS);
        tg_logrec_t *batch = s->head;
        size_t n = s->depth;
        s->head = NULL;
        s->tail = &s->head;
        s->depth = 0;
        s->bytes = 0;
        uv_mutex_unlock(&s->mutex);
        write_batch(s, batch, n);
        idle_trimmed = false;
        uv_mutex_lock(&s->mutex);
    }
    uv_mutex_unlock(&s->mutex);
}

tg_logstore_t *tg_logstore_open(const char *data_dir, uint32_t queue_size, uint64_t queue_memory, char *errbuf,
                                size_t errbufsz)
{
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errbufsz, "cannot create data_dir %s: %s", data_dir, strerror(errno));
        return NULL;
    }
    sqlite3 *db = open_db(data_dir, false, true, errbuf, errbufsz);
    if (db == NULL)
        return NULL;
    char *err = NULL;
    int version = user_version(db);
    if (version != 0 && version != SCHEMA_VERSION) {
        snprintf(errbuf, errbufsz,
                 "%s/logs.db has log layout %d and this Tollgate writes layout %d; move the file away (it is an "
                 "ordinary SQLite database) and start again",
                 data_dir, version, SCHEMA_VERSION);
        sqlite3_close(db);
        return NULL;
    }
    /* 32 KiB pages (a new database only): a batch is written with an eighth of the system calls of 4 KiB pages,
     * which measured 20% more logged requests/s on the benchmark machine (bench/RESULTS.md); a checkpoint every
     * 1024 pages keeps the WAL near 32 MiB and one checkpoint under ~0.1 s */
    if (sqlite3_exec(db, "PRAGMA page_size=32768; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=1024; "
                         "PRAGMA cache_size=-1024;", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(db, schema, NULL, NULL, &err) != SQLITE_OK) {
        snprintf(errbuf, errbufsz, "cannot set up %s/logs.db: %s", data_dir, err != NULL ? err : "?");
        sqlite3_free(err);
        sqlite3_close(db);
        return NULL;
    }
    tg_logstore_t *s = tg_calloc(1, sizeof(*s));
    s->data_dir = tg_strdup(data_dir);
    s->db = db;
    for (int i = 0; i != ST_NUM; ++i) {
        if (sqlite3_prepare_v3(db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            snprintf(errbuf, errbufsz, "cannot prepare a log statement: %s", sqlite3_errmsg(db));
            for (int j = 0; j < i; ++j)
                sqlite3_finalize(s->st[j]);
            sqlite3_close(db);
            free(s->data_dir);
            free(s);
            return NULL;
        }
    }
    s->tail = &s->head;
    s->max_depth = queue_size;
    s->max_bytes = queue_memory;
    atomic_init(&s->deleted_gen, 0);
    uv_mutex_init(&s->mutex);
    uv_cond_init(&s->wake);
    uv_cond_init(&s->flushed);
    if (uv_thread_create(&s->thread, writer_main, s) != 0) {
        snprintf(errbuf, errbufsz, "cannot start the log writer thread");
        for (int j = 0; j != ST_NUM; ++j)
            sqlite3_finalize(s->st[j]);
        sqlite3_close(db);
        uv_mutex_destroy(&s->mutex);
        uv_cond_destroy(&s->wake);
        uv_cond_destroy(&s->flushed);
        free(s->data_dir);
        free(s);
        return NULL;
    }
    return s;
}

void tg_logstore_submit(tg_logstore_t *s, tg_logrec_t *r)
{
    size_t size = tg_logrec_size(r);
    uv_mutex_lock(&s->mutex);
    if (s->stop || s->depth >= s->max_depth || s->bytes + size > s->max_bytes) {
        s->stats.dropped_full++;
        uv_mutex_unlock(&s->mutex);
        tg_logrec_free(r);
        return;
    }
    r->_next = NULL;
    *s->tail = r;
    s->tail = &r->_next;
    s->depth++;
    s->bytes += size;
    s->submitted++;
    if (s->depth == 1 || s->depth == GROUP_TARGET) /* the writer sleeps on an empty queue, or waits for company */
        uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->mutex);
}

void tg_logstore_set_limits(tg_logstore_t *s, uint32_t queue_size, uint64_t queue_memory)
{
    uv_mutex_lock(&s->mutex);
    s->max_depth = queue_size;
    s->max_bytes = queue_memory;
    uv_mutex_unlock(&s->mutex);
}

void tg_logstore_flush(tg_logstore_t *s)
{
    uv_mutex_lock(&s->mutex);
    uint64_t target = s->submitted;
    while (s->done < target)
        uv_cond_wait(&s->flushed, &s->mutex);
    uv_mutex_unlock(&s->mutex);
}

void tg_logstore_rows_deleted(tg_logstore_t *s)
{
    atomic_fetch_add(&s->deleted_gen, 1);
}

void tg_logstore_stats(tg_logstore_t *s, tg_logstore_stats_t *out)
{
    uv_mutex_lock(&s->mutex);
    *out = s->stats;
    out->queue_depth = s->depth;
    out->queue_bytes = s->bytes;
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
    for (size_t i = 0; i != s->num_idle; ++i)
        sqlite3_close(s->idle[i]);
    uv_mutex_lock(&s->mutex);
    s->stop = true;
    uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->mutex);
    uv_thread_join(&s->thread);
    for (int i = 0; i != ST_NUM; ++i)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    for (size_t i = 0; i != s->num_counts; ++i) {
        free(s->counts[i].account);
        free(s->counts[i].gateway);
    }
    free(s->counts);
    uv_mutex_destroy(&s->mutex);
    uv_cond_destroy(&s->wake);
    uv_cond_destroy(&s->flushed);
    free(s->data_dir);
    free(s);
}
