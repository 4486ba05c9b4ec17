/*
 * SHA-256 (FIPS 180-4), for cache keys.
 *
 * Written here rather than taken from a library because the cache computes one digest per request on its hot path:
 * on x86-64 CPUs with the SHA extensions the compression runs on those instructions (the choice is made once, by
 * the first call of any function here); elsewhere it is plain C. libsodium's SHA-256 is plain C only, and OpenSSL's,
 * no faster, costs the process ~2.8 MiB of resident library pages for one function (bench/RESULTS.md, session 15).
 * Any thread; a context belongs to one caller at a time.
 */
#ifndef TOLLGATE_SHA256_H
#define TOLLGATE_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_SHA256_LEN 32

typedef struct {
    uint32_t h[8];   /* the chaining value, H0..H7 */
    uint64_t total;  /* bytes hashed so far */
    uint8_t buf[64]; /* a partial block */
    size_t buflen;
} tg_sha256_t;

void tg_sha256_init(tg_sha256_t *c);
void tg_sha256_update(tg_sha256_t *c, const void *p, size_t n);
/* Writes the digest; the context must be initialised again before it is reused. */
void tg_sha256_final(tg_sha256_t *c, uint8_t out[TG_SHA256_LEN]);

/* The compression in use: "sha-ni" or "portable" (for tests). */
const char *tg_sha256_impl(void);
/* For tests, with no digest in progress on any thread: `true` makes later digests use the portable compression,
 * `false` the one the CPU is best at again. */
void tg_sha256_set_portable(bool portable);

#endif
