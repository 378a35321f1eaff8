/* Drift kernels: see drift.h. */
#include "drift.h"

#include <math.h>
#include <string.h>

/* CPU detection and per-function target attributes are GCC/Clang builtins
 * (any OS); other compilers or ISAs get the serial kernels only. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define LK_X86 1
#else
#define LK_X86 0
#endif

/* --- serial -------------------------------------------------------------- */

/* Element loads through memcpy: a view may be misaligned (a field of a packed
 * structured array, a byte-offset slice), and a typed load from a misaligned
 * address is undefined behaviour.  Compilers turn each memcpy into one plain
 * (unaligned-tolerant) load instruction. */
static inline double load_as_double(const char *p, lk_dtype dt) {
    switch (dt) {
    case LK_F64: { double v; memcpy(&v, p, sizeof v); return v; }
    case LK_F32: { float v; memcpy(&v, p, sizeof v); return (double)v; }
    case LK_I64: { int64_t v; memcpy(&v, p, sizeof v); return (double)v; }
    default: { int32_t v; memcpy(&v, p, sizeof v); return (double)v; }
    }
}

/* The typed contiguous kernels below index `const double *` / `const float *`
 * arrays: only for views whose addresses are aligned to the element type. */
static inline int lk_aligned(const char *p, size_t align) { return ((uintptr_t)p & (align - 1)) == 0; }

/* Left to right, one accumulator each: bit-identical to the Python oracle
 * (the project compiles with -ffp-contract=off, so no fused multiply-add). */
static void dot3_generic(const lk_vec *a, const lk_vec *b, size_t n, double out[3]) {
    double d = 0.0, na = 0.0, nb = 0.0;
    const char *pa = a->ptr, *pb = b->ptr;
    size_t i;
    for (i = 0; i < n; i++) {
        double x = load_as_double(pa, a->dtype), y = load_as_double(pb, b->dtype);
        d += x * y;
        na += x * x;
        nb += y * y;
        pa += a->stride;
        pb += b->stride;
    }
    out[0] = d; out[1] = na; out[2] = nb;
}

static void dot3_f64_serial(const double *a, const double *b, size_t n, double out[3]) {
    double d = 0.0, na = 0.0, nb = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        d += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    out[0] = d; out[1] = na; out[2] = nb;
}

static void dot3_f32_serial(const float *a, const float *b, size_t n, double out[3]) {
    double d = 0.0, na = 0.0, nb = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    out[0] = d; out[1] = na; out[2] = nb;
}

#if LK_X86
/* --- AVX2 + FMA ------------------------------------------------------------ */

__attribute__((target("avx2,fma"))) static inline double hsum256(__m256d v) {
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

/* Two independent accumulators per sum hide the FMA latency. */
__attribute__((target("avx2,fma")))
static void dot3_f64_haswell(const double *a, const double *b, size_t n, double out[3]) {
    __m256d d0 = _mm256_setzero_pd(), d1 = d0, a0 = d0, a1 = d0, b0 = d0, b1 = d0;
    size_t i = 0;
    double d, na, nb;
    for (; i + 8 <= n; i += 8) {
        __m256d x0 = _mm256_loadu_pd(a + i), x1 = _mm256_loadu_pd(a + i + 4);
        __m256d y0 = _mm256_loadu_pd(b + i), y1 = _mm256_loadu_pd(b + i + 4);
        d0 = _mm256_fmadd_pd(x0, y0, d0); d1 = _mm256_fmadd_pd(x1, y1, d1);
        a0 = _mm256_fmadd_pd(x0, x0, a0); a1 = _mm256_fmadd_pd(x1, x1, a1);
        b0 = _mm256_fmadd_pd(y0, y0, b0); b1 = _mm256_fmadd_pd(y1, y1, b1);
    }
    if (i + 4 <= n) {
        __m256d x0 = _mm256_loadu_pd(a + i), y0 = _mm256_loadu_pd(b + i);
        d0 = _mm256_fmadd_pd(x0, y0, d0);
        a0 = _mm256_fmadd_pd(x0, x0, a0);
        b0 = _mm256_fmadd_pd(y0, y0, b0);
        i += 4;
    }
    d = hsum256(_mm256_add_pd(d0, d1));
    na = hsum256(_mm256_add_pd(a0, a1));
    nb = hsum256(_mm256_add_pd(b0, b1));
    for (; i < n; i++) {
        d += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    out[0] = d; out[1] = na; out[2] = nb;
}

/* float32 in, float64 accumulation: widen 4 floats at a time. */
__attribute__((target("avx2,fma")))
static void dot3_f32_haswell(const float *a, const float *b, size_t n, double out[3]) {
    __m256d d0 = _mm256_setzero_pd(), d1 = d0, a0 = d0, a1 = d0, b0 = d0, b1 = d0;
    size_t i = 0;
    double d, na, nb;
    for (; i + 8 <= n; i += 8) {
        __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(a + i)), x1 = _mm256_cvtps_pd(_mm_loadu_ps(a + i + 4));
        __m256d y0 = _mm256_cvtps_pd(_mm_loadu_ps(b + i)), y1 = _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4));
        d0 = _mm256_fmadd_pd(x0, y0, d0); d1 = _mm256_fmadd_pd(x1, y1, d1);
        a0 = _mm256_fmadd_pd(x0, x0, a0); a1 = _mm256_fmadd_pd(x1, x1, a1);
        b0 = _mm256_fmadd_pd(y0, y0, b0); b1 = _mm256_fmadd_pd(y1, y1, b1);
    }
    d = hsum256(_mm256_add_pd(d0, d1));
    na = hsum256(_mm256_add_pd(a0, a1));
    nb = hsum256(_mm256_add_pd(b0, b1));
    for (; i < n; i++) {
        double x = a[i], y = b[i];
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    out[0] = d; out[1] = na; out[2] = nb;
}

/* --- AVX-512F -------------------------------------------------------------- */

__attribute__((target("avx512f")))
static void dot3_f64_skylake(const double *a, const double *b, size_t n, double out[3]) {
    __m512d d0 = _mm512_setzero_pd(), d1 = d0, a0 = d0, a1 = d0, b0 = d0, b1 = d0;
    size_t i = 0;
    double d, na, nb;
    for (; i + 16 <= n; i += 16) {
        __m512d x0 = _mm512_loadu_pd(a + i), x1 = _mm512_loadu_pd(a + i + 8);
        __m512d y0 = _mm512_loadu_pd(b + i), y1 = _mm512_loadu_pd(b + i + 8);
        d0 = _mm512_fmadd_pd(x0, y0, d0); d1 = _mm512_fmadd_pd(x1, y1, d1);
        a0 = _mm512_fmadd_pd(x0, x0, a0); a1 = _mm512_fmadd_pd(x1, x1, a1);
        b0 = _mm512_fmadd_pd(y0, y0, b0); b1 = _mm512_fmadd_pd(y1, y1, b1);
    }
    if (i < n) { /* masked tail: at most two partial loads */
        size_t rem = n - i;
        __mmask8 m0 = (__mmask8)(rem >= 8 ? 0xFF : ((1u << rem) - 1u));
        __mmask8 m1 = (__mmask8)(rem > 8 ? ((1u << (rem - 8)) - 1u) : 0u);
        __m512d x0 = _mm512_maskz_loadu_pd(m0, a + i), y0 = _mm512_maskz_loadu_pd(m0, b + i);
        __m512d x1 = _mm512_maskz_loadu_pd(m1, a + i + 8), y1 = _mm512_maskz_loadu_pd(m1, b + i + 8);
        d0 = _mm512_fmadd_pd(x0, y0, d0); d1 = _mm512_fmadd_pd(x1, y1, d1);
        a0 = _mm512_fmadd_pd(x0, x0, a0); a1 = _mm512_fmadd_pd(x1, x1, a1);
        b0 = _mm512_fmadd_pd(y0, y0, b0); b1 = _mm512_fmadd_pd(y1, y1, b1);
    }
    d = _mm512_reduce_add_pd(_mm512_add_pd(d0, d1));
    na = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    nb = _mm512_reduce_add_pd(_mm512_add_pd(b0, b1));
    out[0] = d; out[1] = na; out[2] = nb;
}

__attribute__((target("avx512f")))
static void dot3_f32_skylake(const float *a, const float *b, size_t n, double out[3]) {
    __m512d d0 = _mm512_setzero_pd(), d1 = d0, a0 = d0, a1 = d0, b0 = d0, b1 = d0;
    size_t i = 0;
    double d, na, nb;
    for (; i + 16 <= n; i += 16) {
        __m512d x0 = _mm512_cvtps_pd(_mm256_loadu_ps(a + i)), x1 = _mm512_cvtps_pd(_mm256_loadu_ps(a + i + 8));
        __m512d y0 = _mm512_cvtps_pd(_mm256_loadu_ps(b + i)), y1 = _mm512_cvtps_pd(_mm256_loadu_ps(b + i + 8));
        d0 = _mm512_fmadd_pd(x0, y0, d0); d1 = _mm512_fmadd_pd(x1, y1, d1);
        a0 = _mm512_fmadd_pd(x0, x0, a0); a1 = _mm512_fmadd_pd(x1, x1, a1);
        b0 = _mm512_fmadd_pd(y0, y0, b0); b1 = _mm512_fmadd_pd(y1, y1, b1);
    }
    d = _mm512_reduce_add_pd(_mm512_add_pd(d0, d1));
    na = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    nb = _mm512_reduce_add_pd(_mm512_add_pd(b0, b1));
    for (; i < n; i++) {
        double x = a[i], y = b[i];
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    out[0] = d; out[1] = na; out[2] = nb;
}
#endif /* LK_X86 */

/* --- run-time dispatch ------------------------------------------------------ */

typedef void (*dot3_f64_fn)(const double *, const double *, size_t, double *);
typedef void (*dot3_f32_fn)(const float *, const float *, size_t, double *);

/* The only global mutable state: the detected CPU mask and the chosen ISA.
 * Benign if two threads race on first use: both compute the same values. */
static int g_mask = -1;
static int g_isa = -1;

unsigned lk_drift_cpu_mask(void) {
    if (g_mask < 0) {
        unsigned m = 0;
#if LK_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            m |= 1u;
        if (__builtin_cpu_supports("avx512f"))
            m |= 2u;
#endif
        g_mask = (int)m;
    }
    return (unsigned)g_mask;
}

lk_isa lk_drift_isa(void) {
    if (g_isa < 0) {
        unsigned m = lk_drift_cpu_mask();
        g_isa = (m & 2u) ? LK_ISA_SKYLAKE : (m & 1u) ? LK_ISA_HASWELL : LK_ISA_SERIAL;
    }
    return (lk_isa)g_isa;
}

int lk_drift_set_isa(lk_isa isa) {
    unsigned m = lk_drift_cpu_mask();
    if ((isa == LK_ISA_HASWELL && !(m & 1u)) || (isa == LK_ISA_SKYLAKE && !(m & 2u)) ||
        (isa != LK_ISA_SERIAL && isa != LK_ISA_HASWELL && isa != LK_ISA_SKYLAKE))
        return -1;
    g_isa = (int)isa;
    return 0;
}

const char *lk_drift_isa_name(lk_isa isa) {
    switch (isa) {
    case LK_ISA_HASWELL: return "haswell (AVX2+FMA)";
    case LK_ISA_SKYLAKE: return "skylake (AVX-512F)";
    default: return "serial";
    }
}

void lk_dot3(const lk_vec *a, const lk_vec *b, size_t n, double out[3]) {
    lk_isa isa = lk_drift_isa();
    if (a->dtype == b->dtype && a->stride == b->stride) {
        if (a->dtype == LK_F64 && a->stride == (ptrdiff_t)sizeof(double) && lk_aligned(a->ptr, _Alignof(double)) &&
            lk_aligned(b->ptr, _Alignof(double))) {
#if LK_X86
            if (isa == LK_ISA_SKYLAKE) { dot3_f64_skylake((const double *)a->ptr, (const double *)b->ptr, n, out); return; }
            if (isa == LK_ISA_HASWELL) { dot3_f64_haswell((const double *)a->ptr, (const double *)b->ptr, n, out); return; }
#endif
            dot3_f64_serial((const double *)a->ptr, (const double *)b->ptr, n, out);
            return;
        }
        if (a->dtype == LK_F32 && a->stride == (ptrdiff_t)sizeof(float) && lk_aligned(a->ptr, _Alignof(float)) &&
            lk_aligned(b->ptr, _Alignof(float))) {
#if LK_X86
            if (isa == LK_ISA_SKYLAKE) { dot3_f32_skylake((const float *)a->ptr, (const float *)b->ptr, n, out); return; }
            if (isa == LK_ISA_HASWELL) { dot3_f32_haswell((const float *)a->ptr, (const float *)b->ptr, n, out); return; }
#endif
            dot3_f32_serial((const float *)a->ptr, (const float *)b->ptr, n, out);
            return;
        }
    }
    dot3_generic(a, b, n, out); /* strided, integer, mixed or misaligned views */
}

int lk_cosine_from_sums(const double s[3], double *cos_out) {
    double c;
    if (!isfinite(s[0]) || !isfinite(s[1]) || !isfinite(s[2]))
        return -1;
    if (s[1] == 0.0 || s[2] == 0.0) {
        *cos_out = 0.0;
        return 0;
    }
    c = s[0] / (sqrt(s[1]) * sqrt(s[2]));
    *cos_out = c > 1.0 ? 1.0 : (c < -1.0 ? -1.0 : c);
    return 0;
}

ptrdiff_t lk_cosine_rows(const lk_vec *a, ptrdiff_t a_row_stride,
                         const lk_vec *b, ptrdiff_t b_row_stride,
                         size_t rows, size_t n, double *out) {
    size_t r;
    lk_vec ra = *a, rb = *b;
    double s[3];
    for (r = 0; r < rows; r++) {
        ra.ptr = a->ptr + (ptrdiff_t)r * a_row_stride;
        rb.ptr = b->ptr + (ptrdiff_t)r * b_row_stride;
        if (n == 0) {
            out[r] = 0.0;
            continue;
        }
        lk_dot3(&ra, &rb, n, s);
        if (lk_cosine_from_sums(s, &out[r]) != 0)
            return (ptrdiff_t)r;
    }
    return -1;
}
