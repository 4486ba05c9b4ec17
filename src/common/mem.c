/*
 * Request pool: bump allocation in 4 KiB chunks, the first chunk allocated on first use, large requests (over a
 * quarter chunk) served by their own allocation so they do not waste the rest of a chunk. The chunks are recycled
 * blocks (tg_mem_block_alloc).
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#include "tollgate/mem.h"

struct st_tg_mem_chunk_t {
    tg_mem_chunk_t *next;
    size_t size;
    bool block; /* a recycled block (the pool's own chunks), else a direct allocation */
    _Alignas(16) char bytes[];
};

static_assert(sizeof(tg_mem_chunk_t) + TG_MEM_POOL_CHUNK <= TG_MEM_BLOCK_SIZE, "a pool chunk is one block");

/* ---- recycled blocks -------------------------------------------------------------------------------------- */

typedef struct st_block_t {
    struct st_block_t *next;
} block_t;

typedef struct {
    block_t *head;
    size_t n;
} block_list_t;

/* In the ASan build a kept block is poisoned past its link, so that a use after tg_mem_block_free (a pool chunk used
 * after the pool was cleared) is still reported, as it was when the blocks went back to malloc. */
#if defined(__SANITIZE_ADDRESS__)
#define KEPT(b) ASAN_POISON_MEMORY_REGION((char *)(b) + sizeof(block_t), TG_MEM_BLOCK_SIZE - sizeof(block_t))
#define TAKEN(b) ASAN_UNPOISON_MEMORY_REGION((b), TG_MEM_BLOCK_SIZE)
#else
#define KEPT(b) ((void)(b))
#define TAKEN(b) ((void)(b))
#endif

static _Thread_local block_list_t blocks;
static pthread_key_t blocks_key; /* set (to the list) once a thread frees a block: its destructor frees the list */
static pthread_once_t blocks_once = PTHREAD_ONCE_INIT;

static void blocks_release(void *arg)
{
    block_list_t *l = arg;
    while (l->head != NULL) {
        block_t *b = l->head;
        l->head = b->next;
        TAKEN(b);
        free(b);
    }
    l->n = 0;
}

static void blocks_key_init(void)
{
    pthread_key_create(&blocks_key, blocks_release);
}

void *tg_mem_block_alloc(void)
{
    block_t *b = blocks.head;
    if (b == NULL)
        return tg_malloc(TG_MEM_BLOCK_SIZE);
    blocks.head = b->next;
    blocks.n--;
    TAKEN(b);
    return b;
}

void tg_mem_block_free(void *p)
{
    if (p == NULL)
        return;
    if (blocks.n == TG_MEM_BLOCK_KEEP) {
        free(p);
        return;
    }
    if (blocks.head == NULL) { /* (the first of a run: make sure the thread's exit frees the list) */
        pthread_once(&blocks_once, blocks_key_init);
        if (pthread_getspecific(blocks_key) == NULL)
            pthread_setspecific(blocks_key, &blocks);
    }
    block_t *b = p;
    b->next = blocks.head;
    blocks.head = b;
    blocks.n++;
    KEPT(b);
}

/* ---- pools ------------------------------------------------------------------------------------------------ */

struct st_tg_mem_cleanup_t {
    tg_mem_cleanup_t *next;
    void (*cb)(void *);
    void *data;
};

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

void tg_mem_init_pool(tg_mem_pool_t *pool)
{
    pool->_chunks = NULL;
    pool->_cleanups = NULL;
    pool->_cur = NULL;
    pool->_left = 0;
    pool->_direct_bytes = 0;
}

static tg_mem_chunk_t *new_chunk(tg_mem_pool_t *pool, size_t size)
{
    tg_mem_chunk_t *c = tg_mem_block_alloc();
    c->block = true;
    c->size = size;
    c->next = pool->_chunks;
    pool->_chunks = c;
    return c;
}

void *tg_mem_alloc_pool(tg_mem_pool_t *pool, size_t sz)
{
    sz = ALIGN16(sz != 0 ? sz : 1);
    if (sz > TG_MEM_POOL_CHUNK / 4) {
        /* a direct chunk is linked behind the head so the current bump chunk stays current */
        bool block = sizeof(tg_mem_chunk_t) + sz <= TG_MEM_BLOCK_SIZE; /* (a request's recorder: every time) */
        tg_mem_chunk_t *c = block ? tg_mem_block_alloc() : tg_malloc(sizeof(*c) + sz);
        c->block = block;
        c->size = sz;
        if (pool->_chunks != NULL) {
            c->next = pool->_chunks->next;
            pool->_chunks->next = c;
        } else {
            c->next = NULL;
            pool->_chunks = c;
        }
        pool->_direct_bytes += sz;
        return c->bytes;
    }
    if (sz > pool->_left) {
        tg_mem_chunk_t *c = new_chunk(pool, TG_MEM_POOL_CHUNK);
        pool->_cur = c->bytes;
        pool->_left = c->size;
    }
    void *p = pool->_cur;
    pool->_cur += sz;
    pool->_left -= sz;
    return p;
}

char *tg_mem_strdup_pool(tg_mem_pool_t *pool, const char *p, size_t n)
{
    char *s = tg_mem_alloc_pool(pool, n + 1);
    if (n != 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void tg_mem_add_cleanup(tg_mem_pool_t *pool, void (*cb)(void *data), void *data)
{
    tg_mem_cleanup_t *c = tg_mem_alloc_pool(pool, sizeof(*c));
    c->cb = cb;
    c->data = data;
    c->next = pool->_cleanups;
    pool->_cleanups = c;
}

void tg_mem_clear_pool(tg_mem_pool_t *pool)
{
    /* cleanups live in the pool, so run them all before freeing any chunk */
    while (pool->_cleanups != NULL) {
        tg_mem_cleanup_t *c = pool->_cleanups;
        pool->_cleanups = c->next;
        c->cb(c->data);
    }
    while (pool->_chunks != NULL) {
        tg_mem_chunk_t *c = pool->_chunks;
        pool->_chunks = c->next;
        if (c->block)
            tg_mem_block_free(c);
        else
            free(c);
    }
    tg_mem_init_pool(pool);
}
