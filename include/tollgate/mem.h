/*
 * Per-request memory pool (nginx ngx_palloc, h2o h2o_mem_pool_t).
 *
 * Everything that lives exactly as long as one request (header copies, the upstream URL, small structures) is
 * carved from the pool and released at once by tg_mem_clear_pool. Cleanup callbacks registered on the pool run
 * first, newest first, for resources that are not memory. Streamed bytes never go here: a stream can run for
 * minutes, so its buffers are bounded and recycled instead (see http.h).
 *
 * A pool belongs to one thread. Its chunks are allocated on first use, from the thread's recycled blocks (below).
 */
#ifndef TOLLGATE_MEM_H
#define TOLLGATE_MEM_H

#include "tollgate/common.h"

#define TG_MEM_POOL_CHUNK 4096

typedef struct st_tg_mem_chunk_t tg_mem_chunk_t;
typedef struct st_tg_mem_cleanup_t tg_mem_cleanup_t;

typedef struct st_tg_mem_pool_t {
    tg_mem_chunk_t *_chunks;     /* chunks allocated beyond the first, newest first */
    tg_mem_cleanup_t *_cleanups; /* newest first */
    char *_cur;                  /* free space in the current chunk */
    size_t _left;
    size_t _direct_bytes; /* bytes in large direct allocations, for accounting */
} tg_mem_pool_t;

void tg_mem_init_pool(tg_mem_pool_t *pool);
/* Returns `sz` bytes aligned to 16, valid until the pool is cleared. Never NULL. */
void *tg_mem_alloc_pool(tg_mem_pool_t *pool, size_t sz);
/* Copies (p, n) into the pool and NUL-terminates it. */
char *tg_mem_strdup_pool(tg_mem_pool_t *pool, const char *p, size_t n);
/* Registers cb(data) to run when the pool is cleared. */
void tg_mem_add_cleanup(tg_mem_pool_t *pool, void (*cb)(void *data), void *data);
/* Runs the cleanups and releases every allocation; the pool is empty and may be reused. */
void tg_mem_clear_pool(tg_mem_pool_t *pool);

/*
 * Blocks of TG_MEM_BLOCK_SIZE bytes (aligned to 16) recycled per thread (h2o's recycling allocator): what every
 * request allocates and frees again (its pool's chunk, the upstream answer's header index) is taken from the freed
 * blocks of the same thread, up to TG_MEM_BLOCK_KEEP of them, instead of going through malloc's bins, which are past
 * its per-thread cache at this size and slower the more long-lived blocks (log records) share the heap. A block may
 * be freed on another thread (it then goes to that thread's list). A thread's list is freed when the thread exits.
 */
#define TG_MEM_BLOCK_SIZE (TG_MEM_POOL_CHUNK + 64)
#define TG_MEM_BLOCK_KEEP 64
void *tg_mem_block_alloc(void);
void tg_mem_block_free(void *p);

#endif
