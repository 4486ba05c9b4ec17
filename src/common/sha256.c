/*
 * SHA-256 (sha256.h): a portable compression function and one on the x86 SHA extensions, the same chaining value
 * (H0..H7 in order) in both so either can continue what the other started.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include "tollgate/sha256.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TG_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static _Alignas(16) const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Compresses `blocks` 64-byte blocks into h. */
static void compress_portable(uint32_t h[8], const uint8_t *p, size_t blocks)
{
    for (; blocks != 0; --blocks, p += 64) {
        uint32_t w[64];
        for (int t = 0; t < 16; ++t)
            w[t] = load_be32(p + 4 * t);
        for (int t = 16; t < 64; ++t) {
            uint32_t s0 = ror(w[t - 15], 7) ^ ror(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ror(w[t - 2], 17) ^ ror(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int t = 0; t < 64; ++t) {
            uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
            uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
    }
}

#ifdef TG_SHA_NI
/*
 * The SHA extensions keep the state as two vectors, ABEF and CDGH; sha256rnds2 does two rounds, sha256msg1/msg2 the
 * two halves of the message schedule. Group g (rounds 4g .. 4g+3) takes the vector V[g] of schedule words
 * W[4g .. 4g+3]; for g >= 4 it is msg2(msg1(V[g-4], V[g-3]) + (V[g-2], V[g-1]) shifted by one word, V[g-1]), the
 * last four vectors kept in a ring.
 */
__attribute__((target("sha,sse4.1"))) static void compress_shani(uint32_t h[8], const uint8_t *p, size_t blocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]), hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1), efgh = _mm_shuffle_epi32(hgfe, 0x1b);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8), cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);
    for (; blocks != 0; --blocks, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh, w[4];
#pragma GCC unroll 16
        for (int g = 0; g < 16; ++g) {
            if (g < 4)
                w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
            else
                w[g & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]),
                                                              _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4)),
                                                w[(g + 3) & 3]);
            __m128i wk = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
            /* two rounds: the new ABEF goes to `cdgh`, as the old ABEF is the CDGH of the next two, which put the
             * ABEF after four back in `abef`, the CDGH after four being the ABEF after two */
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0e));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1b), dchg = _mm_shuffle_epi32(cdgh, 0xb1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xf0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

static bool cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
        return false;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA) != 0;
}
#endif

typedef void compress_fn_t(uint32_t h[8], const uint8_t *p, size_t blocks);
/* Set under choose_once before any digest starts; atomic (relaxed) only because tests may switch it later. */
static _Atomic(compress_fn_t *) compress_fn = compress_portable;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static compress_fn_t *best(void)
{
#ifdef TG_SHA_NI
    if (cpu_has_sha())
        return compress_shani;
#endif
    return compress_portable;
}

static void choose(void)
{
    atomic_store_explicit(&compress_fn, best(), memory_order_relaxed);
}

static void compress_blocks(uint32_t h[8], const uint8_t *p, size_t blocks)
{
    atomic_load_explicit(&compress_fn, memory_order_relaxed)(h, p, blocks);
}

const char *tg_sha256_impl(void)
{
    pthread_once(&choose_once, choose);
    return atomic_load_explicit(&compress_fn, memory_order_relaxed) == compress_portable ? "portable" : "sha-ni";
}

void tg_sha256_set_portable(bool portable)
{
    pthread_once(&choose_once, choose);
    atomic_store_explicit(&compress_fn, portable ? compress_portable : best(), memory_order_relaxed);
}

void tg_sha256_init(tg_sha256_t *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    pthread_once(&choose_once, choose);
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->buflen = 0;
}

void tg_sha256_update(tg_sha256_t *c, const void *data, size_t n)
{
    const uint8_t *p = data;
    if (n == 0)
        return; /* `data` may be NULL then */
    c->total += n;
    if (c->buflen != 0) {
        size_t take = 64 - c->buflen < n ? 64 - c->buflen : n;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take, p += take, n -= take;
        if (c->buflen < 64)
            return;
        compress_blocks(c->h, c->buf, 1);
        c->buflen = 0;
    }
    if (n >= 64) {
        compress_blocks(c->h, p, n / 64);
        p += n & ~(size_t)63;
        n &= 63;
    }
    if (n != 0)
        memcpy(c->buf, p, n);
    c->buflen = n;
}

void tg_sha256_final(tg_sha256_t *c, uint8_t out[TG_SHA256_LEN])
{
    uint64_t bits = c->total * 8;
    c->buf[c->buflen++] = 0x80;
    if (c->buflen > 56) {
        memset(c->buf + c->buflen, 0, 64 - c->buflen);
        compress_blocks(c->h, c->buf, 1);
        c->buflen = 0;
    }
    memset(c->buf + c->buflen, 0, 56 - c->buflen);
    for (int i = 0; i < 8; ++i)
        c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress_blocks(c->h, c->buf, 1);
    for (int i = 0; i < 8; ++i) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}
