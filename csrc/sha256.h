/* SHA-256 (FIPS 180-4), streaming, for the ethics plan and facts hashes.
 *
 * Why not hashlib: with OpenSSL 3 every hashlib.sha256() call fetches and
 * sets up an EVP context, which costs several times the hashing of the few
 * hundred bytes a plan prints to.  The ethics C tier hashes twice per
 * evaluation, so it hashes here, straight from its repr buffer, and writes
 * the hex prefix itself; with the x86 SHA extensions (SHA-NI, checked once
 * at run time) where the CPU has them, scalar C otherwise.  No Python
 * objects; the only global state is that CPU check.
 */
#ifndef LUKHAS_SHA256_H
#define LUKHAS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char blk[64]; /* pending partial block */
    size_t nblk;
    int ni; /* compress with the SHA extensions */
} lk_sha256;

void lk_sha256_init(lk_sha256 *s);
/* 1 when the x86 SHA extensions are used (checked once, with cpuid) */
int lk_sha256_uses_ni(void);
/* init without the SHA extensions (tests compare both paths) */
void lk_sha256_init_scalar(lk_sha256 *s);
void lk_sha256_update(lk_sha256 *s, const void *data, size_t n);
/* the 32-byte digest; the state must be re-initialised before reuse */
void lk_sha256_final(lk_sha256 *s, unsigned char out[32]);
/* the first n (<= 64) lowercase hex digits of the digest of data, what
 * hashlib.sha256(data).hexdigest()[:n] gives; allow_ni 0: scalar code only */
void lk_sha256_hex(const void *data, size_t len, char *hex, size_t n, int allow_ni);

#ifdef __cplusplus
}
#endif

#endif
