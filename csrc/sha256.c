/* SHA-256 (FIPS 180-4); see sha256.h for why the ethics tier has its own. */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define LK_SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define LK_SHA_X86 0
#endif

static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

/* one 64-byte block into the state */
static void compress(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; k = h[7];
    for (i = 0; i < 64; i++) {
        t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

#if LK_SHA_X86
/* The same compression with the x86 SHA extensions (SHA-NI): about 8x the
 * scalar code.  The state is kept as the instructions want it, ABEF / CDGH;
 * W[i] holds the message words of rounds 4i .. 4i+3. */
__attribute__((target("sha,sse4.1,ssse3")))
static void compress_ni(uint32_t h[8], const unsigned char *p, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_loadu_si128((const __m128i *)&h[0]); /* lanes A B C D */
    __m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]); /* lanes E F G H */
    __m128i s0, save0, save1, w[16], m;
    int i;
    t = _mm_shuffle_epi32(t, 0xB1);       /* C D A B -> B A D C as 32-bit lanes */
    s1 = _mm_shuffle_epi32(s1, 0x1B);     /* H G F E */
    s0 = _mm_alignr_epi8(t, s1, 8);       /* ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xF0);    /* CDGH */
    for (; nblocks; nblocks--, p += 64) {
        save0 = s0;
        save1 = s1;
        for (i = 0; i < 16; i++) {
            if (i < 4)
                w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
            else /* w[t] = s1(w[t-2]) + w[t-7] + s0(w[t-15]) + w[t-16], four at a time */
                w[i] = _mm_sha256msg2_epu32(
                    _mm_add_epi32(_mm_sha256msg1_epu32(w[i - 4], w[i - 3]), _mm_alignr_epi8(w[i - 1], w[i - 2], 4)),
                    w[i - 1]);
            m = _mm_add_epi32(w[i], _mm_loadu_si128((const __m128i *)&K[4 * i]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, m); /* rounds 4i, 4i+1 */
            m = _mm_shuffle_epi32(m, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, m); /* rounds 4i+2, 4i+3 */
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);      /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);     /* DCHG */
    s0 = _mm_blend_epi16(t, s1, 0xF0);    /* DCBA */
    s1 = _mm_alignr_epi8(s1, t, 8);       /* HGFE */
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

/* 1: SHA-NI (with SSSE3 and SSE4.1), 0: scalar, -1: not checked yet.  A race
 * between threads only repeats the same cpuid check. */
static int have_ni = -1;

static int check_ni(void)
{
    unsigned a, b, c, d;
    int ok = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 9)) && (c & (1u << 19)) &&
        __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)))
        ok = 1;
    have_ni = ok;
    return ok;
}
#endif

/* nblocks consecutive 64-byte blocks into the state */
static void compress_blocks(lk_sha256 *s, const unsigned char *p, size_t nblocks)
{
#if LK_SHA_X86
    if (s->ni) {
        compress_ni(s->h, p, nblocks);
        return;
    }
#endif
    for (; nblocks; nblocks--, p += 64)
        compress(s->h, p);
}

int lk_sha256_uses_ni(void)
{
#if LK_SHA_X86
    return have_ni >= 0 ? have_ni : check_ni();
#else
    return 0;
#endif
}

void lk_sha256_init(lk_sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->nblk = 0;
    s->ni = lk_sha256_uses_ni();
}

void lk_sha256_init_scalar(lk_sha256 *s)
{
    lk_sha256_init(s);
    s->ni = 0;
}

void lk_sha256_update(lk_sha256 *s, const void *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    s->len += n;
    if (s->nblk) { /* top up the pending block first */
        size_t k = 64 - s->nblk < n ? 64 - s->nblk : n;
        memcpy(s->blk + s->nblk, p, k);
        s->nblk += k;
        p += k;
        n -= k;
        if (s->nblk < 64)
            return;
        compress_blocks(s, s->blk, 1);
        s->nblk = 0;
    }
    if (n >= 64) {
        compress_blocks(s, p, n / 64);
        p += n - n % 64;
        n %= 64;
    }
    memcpy(s->blk, p, n);
    s->nblk = n;
}

void lk_sha256_final(lk_sha256 *s, unsigned char out[32])
{
    uint64_t bits = s->len * 8;
    int i;
    s->blk[s->nblk++] = 0x80;
    if (s->nblk > 56) { /* no room for the length: one more block */
        memset(s->blk + s->nblk, 0, 64 - s->nblk);
        compress_blocks(s, s->blk, 1);
        s->nblk = 0;
    }
    memset(s->blk + s->nblk, 0, 56 - s->nblk);
    for (i = 0; i < 8; i++)
        s->blk[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    compress_blocks(s, s->blk, 1);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

void lk_sha256_hex(const void *data, size_t len, char *hex, size_t n, int allow_ni)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[32];
    lk_sha256 s;
    size_t i;
    if (allow_ni)
        lk_sha256_init(&s);
    else
        lk_sha256_init_scalar(&s);
    lk_sha256_update(&s, data, len);
    lk_sha256_final(&s, d);
    for (i = 0; i < n && i < 64; i++)
        hex[i] = digits[(d[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
}
