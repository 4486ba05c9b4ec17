/*
 * The response cache store: keys, the memory tier (LRU by bytes), expiry with injected time, the persistent tier
 * (survives a reopen), purges, and the stream error check. Time is passed in; nothing sleeps.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tollgate/cache.h"
#include "tollgate/cacheserve.h"
#include "unit.h"

static char dir[] = "/tmp/tollgate-unit-cache.XXXXXX";

static tg_cache_key_parts_t base_parts(void)
{
    return (tg_cache_key_parts_t){
        .account = "local",
        .gateway = "g",
        .provider = "openai",
        .method = tg_iov_str("POST"),
        .path = tg_iov_str("chat/completions"),
        .query = tg_iov_str(""),
        .credential = tg_iov_str("authorization: Bearer sk-1\n"),
        .body = tg_iov_str("{\"model\":\"gpt-4o\"}"),
        .stream = false,
    };
}

static bool same(const tg_cache_key_t *a, const tg_cache_key_t *b)
{
    return memcmp(a->b, b->b, TG_CACHE_KEY_LEN) == 0;
}

static void test_keys(void)
{
    tg_cache_key_parts_t p = base_parts();
    tg_cache_key_t k0, k;
    tg_cache_key(&p, tg_iov("", 0), &k0);
    tg_cache_key(&p, tg_iov("", 0), &k);
    T_OK(same(&k0, &k)); /* deterministic */

    /* every part of the default key matters */
    tg_cache_key_parts_t v;
#define DIFFERS(field, value)                                                                                          \
    v = base_parts();                                                                                                  \
    v.field = value;                                                                                                   \
    tg_cache_key(&v, tg_iov("", 0), &k);                                                                               \
    T_OK(!same(&k0, &k))
    DIFFERS(account, "other");
    DIFFERS(gateway, "h");
    DIFFERS(provider, "groq");
    DIFFERS(method, tg_iov_str("GET"));
    DIFFERS(path, tg_iov_str("embeddings"));
    DIFFERS(query, tg_iov_str("api-version=1"));
    DIFFERS(credential, tg_iov_str("authorization: Bearer sk-2\n"));
    DIFFERS(body, tg_iov_str("{\"model\":\"gpt-4o\" }"));
    DIFFERS(stream, true);
#undef DIFFERS
    /* fields are length-prefixed: moving a byte from one field to the next changes the key */
    v = base_parts();
    v.path = tg_iov_str("chat/completions?");
    v.query = tg_iov_str("");
    tg_cache_key_parts_t w = base_parts();
    w.path = tg_iov_str("chat/completions");
    w.query = tg_iov_str("?");
    tg_cache_key_t kv, kw;
    tg_cache_key(&v, tg_iov("", 0), &kv);
    tg_cache_key(&w, tg_iov("", 0), &kw);
    T_OK(!same(&kv, &kw));

    /* a custom key replaces the rest: bodies and credentials no longer matter, gateway and stream still do */
    tg_cache_key_t c0, c;
    tg_cache_key(&p, tg_iov_str("faq-1"), &c0);
    T_OK(!same(&c0, &k0));
    v = base_parts();
    v.body = tg_iov_str("{}");
    v.credential = tg_iov_str("");
    tg_cache_key(&v, tg_iov_str("faq-1"), &c);
    T_OK(same(&c0, &c));
    v.gateway = "h";
    tg_cache_key(&v, tg_iov_str("faq-1"), &c);
    T_OK(!same(&c0, &c));
    v = base_parts();
    v.stream = true;
    tg_cache_key(&v, tg_iov_str("faq-1"), &c);
    T_OK(!same(&c0, &c));
    tg_cache_key(&p, tg_iov_str("faq-2"), &c);
    T_OK(!same(&c0, &c));

    char hex[2 * TG_CACHE_KEY_LEN + 1];
    tg_cache_key_hex(&k0, hex);
    T_EQ_INT(strlen(hex), 64);
    T_EQ_INT(strspn(hex, "0123456789abcdef"), 64);

    /* Pinned: keys are what cache.db is looked up by, so a build that computed them otherwise would find none of a
     * store's entries (that takes a new KEY_LAYOUT). SHA-256 of each field as a 64-bit little-endian length and its
     * bytes, as computed by a separate implementation (Python's hashlib) for these parts. */
    T_EQ_STR(hex, "7f32fab6cec12aa4a013a978dd37269c9c1cec0bf449d1a0158c046ac1013bfa");
    tg_cache_key_hex(&c0, hex);
    T_EQ_STR(hex, "8b0087be3377adee6ba0dc01dd5c64a43d4e3ad38ce5d9dacf546ee7df36a1a6");
}

static tg_cache_key_t key_n(unsigned n)
{
    tg_cache_key_t k;
    memset(&k, 0, sizeof(k));
    memcpy(k.b, &n, sizeof(n));
    k.b[31] = (uint8_t)n;
    return k;
}

static tg_cache_entry_t *entry(unsigned n, const char *gateway, uint64_t now, uint64_t ttl_ms, size_t body_len)
{
    tg_cache_key_t k = key_n(n);
    char *body = malloc(body_len + 1);
    memset(body, 'a' + (int)(n % 26), body_len);
    tg_cache_entry_t *e = tg_cache_entry_new(&k, "local", gateway, now, now + ttl_ms, 200, false,
                                             tg_iov_str("content-type: application/json\n"), tg_iov(body, body_len));
    free(body);
    return e;
}

static void test_memory_tier(void)
{
    char err[256];
    /* about three 1 KiB entries fit */
    tg_cache_t *c = tg_cache_open(NULL, 3 * (sizeof(tg_cache_entry_t) + 1100), 0, err, sizeof(err));
    T_OK(c != NULL);
    uint64_t now = 1795000000000ull;
    for (unsigned i = 1; i <= 3; ++i)
        tg_cache_put(c, entry(i, "g", now, 60000, 1000));
    tg_cache_key_t k1 = key_n(1), k2 = key_n(2), k4 = key_n(4);
    tg_cache_entry_t *e = tg_cache_get_memory(c, &k1, now); /* 1 becomes the most recently used */
    T_OK(e != NULL);
    T_EQ_INT(e->body_len, 1000);
    T_EQ_INT(e->status, 200);
    T_EQ_STR(e->head, "content-type: application/json\n");
    tg_cache_put(c, entry(4, "g", now, 60000, 1000)); /* evicts 2, the least recently used */
    T_OK(tg_cache_get_memory(c, &k2, now) == NULL);
    tg_cache_entry_t *e4 = tg_cache_get_memory(c, &k4, now);
    T_OK(e4 != NULL);
    tg_cache_stats_t st;
    tg_cache_stats(c, &st);
    T_EQ_INT(st.memory_entries, 3);
    T_EQ_INT(st.evictions_memory, 1);
    /* the evicted-but-referenced rule: e is still readable after being pushed out */
    for (unsigned i = 5; i <= 8; ++i)
        tg_cache_put(c, entry(i, "g", now, 60000, 1000));
    T_OK(tg_cache_get_memory(c, &k1, now) == NULL);
    T_EQ_INT(e->body[999], 'a' + 1);
    tg_cache_entry_release(e);
    tg_cache_entry_release(e4);

    /* expiry with injected time: served until expires_ms, never at or after it */
    tg_cache_key_t k8 = key_n(8);
    e = tg_cache_get_memory(c, &k8, now + 59999);
    T_OK(e != NULL);
    tg_cache_entry_release(e);
    T_OK(tg_cache_get_memory(c, &k8, now + 60000) == NULL);
    tg_cache_stats(c, &st);
    T_EQ_INT(st.expired, 1);
    tg_cache_sweep(c, now + 60000); /* the others expire with the sweep */
    tg_cache_stats(c, &st);
    T_EQ_INT(st.memory_entries, 0);
    T_EQ_INT(st.memory_bytes, 0);

    /* an entry larger than the whole tier is not kept in memory */
    tg_cache_put(c, entry(9, "g", now, 60000, 100000));
    tg_cache_key_t k9 = key_n(9);
    T_OK(tg_cache_get_memory(c, &k9, now) == NULL);
    /* a shrunk limit evicts at once */
    for (unsigned i = 10; i <= 12; ++i)
        tg_cache_put(c, entry(i, "g", now, 60000, 1000));
    tg_cache_set_limits(c, sizeof(tg_cache_entry_t) + 1100, 0);
    tg_cache_stats(c, &st);
    T_EQ_INT(st.memory_entries, 1);
    tg_cache_close(c);
}

static tg_cache_t *open_on_disk(void)
{
    char err[256];
    tg_cache_t *c = tg_cache_open(dir, 1 << 20, 1 << 30, err, sizeof(err));
    T_OK(c != NULL);
    return c;
}

static void test_persistent_tier(void)
{
    uint64_t now = 1795000000000ull;
    tg_cache_t *c = open_on_disk();
    if (c == NULL)
        return;
    tg_cache_entry_t *with_usage = entry(1, "g", now, 60000, 500);
    tg_usage_t kept = {120, 7, 100, 3};
    tg_cache_entry_set_usage(with_usage, &kept, "gpt-4o-mini"); /* (what the miss's recorder read) */
    tg_cache_put(c, with_usage);
    tg_cache_put(c, entry(2, "g", now, 60000, 500));
    tg_cache_put(c, entry(3, "h", now, 60000, 500));
    tg_cache_put(c, entry(4, "g", now, 1000, 500)); /* expires first */
    tg_cache_flush(c);
    tg_cache_stats_t st;
    tg_cache_stats(c, &st);
    T_EQ_INT(st.disk_entries, 4);
    tg_cache_close(c);

    /* a restart: memory is empty, the disk has them, a disk hit is promoted to memory */
    c = open_on_disk();
    if (c == NULL)
        return;
    tg_cache_stats(c, &st);
    T_EQ_INT(st.disk_entries, 4);
    tg_cache_key_t k1 = key_n(1), k3 = key_n(3), k4 = key_n(4), k2 = key_n(2);
    T_OK(tg_cache_get_memory(c, &k1, now) == NULL);
    tg_cache_entry_t *e = tg_cache_get_disk(c, &k1, now);
    T_OK(e != NULL);
    if (e != NULL) {
        T_EQ_INT(e->body_len, 500);
        T_EQ_INT(e->body[0], 'b');
        T_EQ_STR(e->gateway, "g");
        T_EQ_INT(e->expires_ms, now + 60000);
        tg_usage_t u;
        const char *model = NULL;
        T_OK(tg_cache_entry_get_usage(e, &u, &model)); /* the usage came back from the disk */
        T_EQ_INT(u.input, 120);
        T_EQ_INT(u.output, 7);
        T_EQ_INT(u.cached, 100);
        T_EQ_INT(u.cache_write, 3);
        T_EQ_STR(model, "gpt-4o-mini");
        tg_cache_entry_release(e);
    }
    e = tg_cache_get_memory(c, &k1, now);
    T_OK(e != NULL);
    tg_cache_entry_release(e);
    /* expired on disk: not served, and the sweep deletes it */
    T_OK(tg_cache_get_disk(c, &k4, now + 1000) == NULL);
    tg_cache_sweep(c, now + 1000);
    tg_cache_stats(c, &st);
    T_EQ_INT(st.disk_entries, 3);

    /* purge one key, then a whole gateway; the other gateway keeps its entry */
    T_EQ_INT(tg_cache_purge(c, "local", "g", &k2), 1);
    T_OK(tg_cache_get_disk(c, &k2, now) == NULL);
    T_EQ_INT(tg_cache_purge(c, "local", "g", NULL), 1); /* k1, in memory and on disk: counted once */
    T_OK(tg_cache_get_memory(c, &k1, now) == NULL);
    T_OK(tg_cache_get_disk(c, &k1, now) == NULL);
    e = tg_cache_get_disk(c, &k3, now);
    T_OK(e != NULL);
    if (e != NULL) { /* written with no usage known: none is made up */
        tg_usage_t u;
        const char *model = NULL;
        T_OK(!tg_cache_entry_get_usage(e, &u, &model));
    }
    tg_cache_entry_release(e);
    tg_cache_stats(c, &st);
    T_EQ_INT(st.disk_entries, 1);

    /* the disk bound: oldest entries go first */
    tg_cache_set_limits(c, 1 << 20, 4 * (sizeof(tg_cache_entry_t) + 600));
    for (unsigned i = 20; i < 30; ++i)
        tg_cache_put(c, entry(i, "g", now + i, 60000, 500));
    tg_cache_flush(c);
    tg_cache_stats(c, &st);
    T_OK(st.disk_entries <= 4);
    T_OK(st.evictions_disk >= 6);
    tg_cache_key_t k29 = key_n(29), k20 = key_n(20);
    tg_cache_purge(c, "local", "nobody", NULL); /* no-op */
    e = tg_cache_get_disk(c, &k29, now);
    T_OK(e != NULL);
    tg_cache_entry_release(e);
    tg_cache_set_limits(c, 0, 4 * (sizeof(tg_cache_entry_t) + 600)); /* memory off: only the disk answers */
    T_OK(tg_cache_get_disk(c, &k20, now) == NULL);
    tg_cache_close(c);
}

/* A store written with the older key layout (BLAKE2b, user_version 0) loses its entries when it opens: none could
 * be found again. The current layout's entries stay across a restart (test_persistent_tier). */
static void test_old_key_layout(void)
{
    uint64_t now = 1795000000000ull;
    tg_cache_t *c = open_on_disk();
    if (c == NULL)
        return;
    tg_cache_purge(c, "local", "g", NULL);
    tg_cache_purge(c, "local", "h", NULL);
    tg_cache_put(c, entry(40, "g", now, 60000, 500));
    tg_cache_flush(c);
    tg_cache_close(c);
    char path[256];
    snprintf(path, sizeof(path), "%s/cache.db", dir);
    sqlite3 *db = NULL;
    T_OK(sqlite3_open(path, &db) == SQLITE_OK);
    T_OK(sqlite3_exec(db, "PRAGMA user_version = 0", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    c = open_on_disk();
    if (c == NULL)
        return;
    tg_cache_stats_t st;
    tg_cache_stats(c, &st);
    T_EQ_INT(st.disk_entries, 0);
    tg_cache_key_t k = key_n(40);
    T_OK(tg_cache_get_disk(c, &k, now) == NULL);
    tg_cache_close(c);
    /* a layout from a later version is refused rather than emptied */
    T_OK(sqlite3_open(path, &db) == SQLITE_OK);
    T_OK(sqlite3_exec(db, "PRAGMA user_version = 9", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    char err[256];
    c = tg_cache_open(dir, 1 << 20, 1 << 30, err, sizeof(err));
    T_OK(c == NULL);
    T_OK(strstr(err, "key layout (9)") != NULL);
    T_OK(sqlite3_open(path, &db) == SQLITE_OK);
    T_OK(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
}

/* A purge right after puts: whether an entry is still queued, being written or on disk, it is gone afterwards and
 * counted once. */
static void test_purge_races_the_writer(void)
{
    uint64_t now = 1795000000000ull;
    tg_cache_t *c = open_on_disk();
    if (c == NULL)
        return;
    for (int round = 0; round != 20; ++round) {
        for (unsigned i = 0; i != 50; ++i)
            tg_cache_put(c, entry(1000 + i, "q", now, 60000, 200));
        T_EQ_INT(tg_cache_purge(c, "local", "q", NULL), 50);
        tg_cache_flush(c);
        int found = 0;
        for (unsigned i = 0; i != 50; ++i) {
            tg_cache_key_t k = key_n(1000 + i);
            tg_cache_entry_t *e = tg_cache_get_disk(c, &k, now);
            found += e != NULL;
            tg_cache_entry_release(e);
        }
        T_EQ_INT(found, 0);
    }
    tg_cache_stats_t st;
    tg_cache_stats(c, &st);
    T_EQ_INT(st.memory_entries, 0);
    tg_cache_close(c);
}

/* The usage a hit read is kept with the entry: absent at first, the first one given kept, a model too long for it
 * kept as none. */
static void test_entry_usage(void)
{
    uint64_t now = 1795000000000ull;
    tg_cache_entry_t *e = entry(7, "g", now, 60000, 10);
    tg_usage_t u;
    const char *model = NULL;
    T_OK(!tg_cache_entry_get_usage(e, &u, &model));
    tg_usage_t a = {120, 7, 100, 3}, b = {1, 1, 0, 0};
    tg_cache_entry_set_usage(e, &a, "gpt-4o-mini");
    tg_cache_entry_set_usage(e, &b, "other");
    T_OK(tg_cache_entry_get_usage(e, &u, &model));
    T_EQ_INT(u.input, 120);
    T_EQ_INT(u.output, 7);
    T_EQ_INT(u.cached, 100);
    T_EQ_INT(u.cache_write, 3);
    T_EQ_STR(model, "gpt-4o-mini");
    tg_cache_entry_release(e);
    e = entry(8, "g", now, 60000, 10);
    char longname[300];
    memset(longname, 'm', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    tg_usage_t none = {-1, -1, 0, 0};
    tg_cache_entry_set_usage(e, &none, longname);
    T_OK(tg_cache_entry_get_usage(e, &u, &model));
    T_EQ_INT(u.input, -1);
    T_EQ_STR(model, "");
    tg_cache_entry_release(e);
}

static void test_stream_errors(void)
{
    const char *ok = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
    const char *openai_err = "data: {\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n";
    const char *anthropic_err = "event: message_start\ndata: {}\n\nevent: error\ndata: {\"type\":\"error\"}\n\n";
    T_OK(!tg_cache_stream_has_error(ok, strlen(ok)));
    T_OK(tg_cache_stream_has_error(openai_err, strlen(openai_err)));
    T_OK(tg_cache_stream_has_error(anthropic_err, strlen(anthropic_err)));
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    T_RUN(test_keys);
    T_RUN(test_memory_tier);
    T_RUN(test_persistent_tier);
    T_RUN(test_purge_races_the_writer);
    T_RUN(test_old_key_layout);
    T_RUN(test_stream_errors);
    T_RUN(test_entry_usage);
    if (unit_rmtree(dir) != 0)
        return 1;
    return unit_done("test_cache");
}
