/* Drift kernels: dot product and both squared norms in one pass, float64
 * accumulation, for float64/float32/int64/int32 vectors of any stride.
 *
 * Three instruction-set variants of the contiguous float kernels (serial,
 * AVX2+FMA "haswell", AVX-512F "skylake"), chosen once at run time from a
 * cached CPU mask; strided and integer inputs use the serial loop.  The
 * serial loop sums left to right exactly like the pure-Python oracle; the
 * SIMD variants reorder the sums (differences are rounding only).  Views may
 * be misaligned: those take the serial loop, which loads through memcpy.
 */
#ifndef LUKHAS_DRIFT_H
#define LUKHAS_DRIFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LK_F64 = 0, LK_F32 = 1, LK_I64 = 2, LK_I32 = 3 } lk_dtype;

/* A 1-D vector viewed in place: element i is at ptr + i * stride bytes. */
typedef struct {
    const char *ptr;
    ptrdiff_t stride;
    lk_dtype dtype;
} lk_vec;

typedef enum { LK_ISA_SERIAL = 0, LK_ISA_HASWELL = 1, LK_ISA_SKYLAKE = 2 } lk_isa;

/* out[0] = sum a*b, out[1] = sum a*a, out[2] = sum b*b over n elements. */
void lk_dot3(const lk_vec *a, const lk_vec *b, size_t n, double out[3]);

/* Cosine with the reference's rules from the three sums: 0.0 for a zero
 * norm, else dot / (sqrt(na) * sqrt(nb)) clamped to [-1, 1].  Returns 0 if
 * the sums are finite, -1 if any is not (nan/inf input or overflow). */
int lk_cosine_from_sums(const double s[3], double *cos_out);

/* Row-wise cosine of two (rows x n) matrices given as row vectors plus a row
 * stride in bytes.  Writes rows values; returns -1 if all rows are finite,
 * else the index of the first non-finite row (out is then partial).  Needs
 * no Python: call it with the GIL released. */
ptrdiff_t lk_cosine_rows(const lk_vec *a, ptrdiff_t a_row_stride,
                         const lk_vec *b, ptrdiff_t b_row_stride,
                         size_t rows, size_t n, double *out);

/* Instruction set of the contiguous kernels: the best the CPU supports,
 * detected once.  lk_drift_set_isa forces one (for tests); it returns -1
 * and changes nothing if the CPU lacks it. */
lk_isa lk_drift_isa(void);
int lk_drift_set_isa(lk_isa isa);
const char *lk_drift_isa_name(lk_isa isa);
/* Bit 0: avx2+fma, bit 1: avx512f (what the CPU offers, not what is used). */
unsigned lk_drift_cpu_mask(void);

#ifdef __cplusplus
}
#endif
#endif /* LUKHAS_DRIFT_H */
