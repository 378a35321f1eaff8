/* Flat JSON objects with float vectors, parsed straight into doubles.
 *
 * The drift service receives bodies like {"lane": "prod", "intent": [768
 * floats], "action": [768 floats]}.  A general JSON parser spends most of
 * its time creating one Python float per element; this one handles just
 * that shape and writes the numbers into one double buffer, which the
 * Cython side copies into numpy arrays.
 *
 * Everything outside the shape is "not handled" (LK_JV_UNHANDLED) and the
 * caller falls back to a general parser for the whole body, so the parser
 * only has to be exact on what it accepts, never complete:
 *
 *   - a top-level object (RFC 8259 whitespace anywhere between tokens) and
 *     nothing but whitespace after it;
 *   - keys: strings without backslash escapes or control characters;
 *   - values: such strings, true, false, null, or non-empty arrays whose
 *     elements are all numbers with a '.' or an exponent (an integer token
 *     would be a Python int in the general parser);
 *   - numbers are converted exactly like Python's float(text) (correctly
 *     rounded, no locale), or the body is not handled.
 *
 * The parser reads only p[0..n): no NUL terminator needed, any bytes safe.
 * UTF-8 validity of strings is left to the caller's decoder.  Time is linear
 * in n; memory is the two buffers below, linear in what the body holds.
 *
 * Number arrays are read by one of several kernel sets, chosen at run time
 * (AVX-512BW, AVX2, or the portable scalar code); all give the same result
 * for every input, and lk_jv_parse_isa lets tests force each one.
 */
#ifndef LUKHAS_JSONVEC_H
#define LUKHAS_JSONVEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { LK_JV_OK = 0, LK_JV_UNHANDLED = 1, LK_JV_NOMEM = -1 };

typedef enum {
    LK_JV_STRING = 0, /* off/len: the string's bytes in the input (no quotes) */
    LK_JV_TRUE = 1,
    LK_JV_FALSE = 2,
    LK_JV_NULL = 3,
    LK_JV_ARRAY = 4   /* off/len: first index and count in doc->nums */
} lk_jv_kind;

/* One "key": value member, in body order (duplicates kept; last wins is
 * the caller's dict semantics). */
typedef struct {
    size_t key_off, key_len; /* the key's bytes in the input (no quotes) */
    lk_jv_kind kind;
    size_t off, len;
} lk_jv_member;

/* Parse result; buffers grow as needed and are reused across parses. */
typedef struct {
    lk_jv_member *members;
    size_t n_members, cap_members;
    double *nums;
    size_t n_nums, cap_nums;
} lk_jv_doc;

void lk_jv_init(lk_jv_doc *doc);
void lk_jv_free(lk_jv_doc *doc);

/* Parse p[0..n) into doc (its previous contents are discarded).  Returns
 * LK_JV_OK, LK_JV_UNHANDLED (not this shape, malformed, or a number that
 * the exact conversion does not handle), or LK_JV_NOMEM. */
int lk_jv_parse(const char *p, size_t n, lk_jv_doc *doc);

typedef enum {
    LK_JV_ISA_SCALAR = 0, /* portable C (SWAR where little endian) */
    LK_JV_ISA_AVX2 = 1,
    LK_JV_ISA_AVX512 = 2  /* AVX-512F + BW + VL */
} lk_jv_isa;

/* The best kernel set this CPU runs (detected on first use; thread-safe:
 * racing first calls store the same value). */
lk_jv_isa lk_jv_best_isa(void);
const char *lk_jv_isa_name(lk_jv_isa isa);

/* lk_jv_parse with the given kernel set, which must be one the CPU runs
 * (lk_jv_best_isa() or below; for tests and benchmarks). */
int lk_jv_parse_isa(const char *p, size_t n, lk_jv_doc *doc, lk_jv_isa isa);

/* The SIMD kernel sets convert four numbers at a time in floating point
 * and redo exactly, with integer arithmetic, each number whose rounding
 * that cannot prove (and every number when the rounding mode is not
 * round-to-nearest).  LK_JV_NO_FP redoes every number (for tests: the
 * results must not change). */
enum { LK_JV_NO_FP = 1 };
int lk_jv_parse_flags(const char *p, size_t n, lk_jv_doc *doc, lk_jv_isa isa, int flags);

/* Convert one JSON number token starting at *pp (reading no further than
 * end) to a double exactly as float(text) would.  On success stores the
 * value, advances *pp past the token and returns 1 if the token has a
 * fraction or an exponent, 0 if it is an integer.  Returns -1 if there is no
 * valid JSON number at *pp or its exponent is out of the handled range;
 * *pp is then unspecified.  The token ends at the first byte that cannot
 * continue it; the caller checks what follows. */
int lk_jv_number(const char **pp, const char *end, double *out);

/* The conversion's 128-bit power-of-five table entry {high, low} for 10^q,
 * or NULL outside the handled exponents (for tests). */
const uint64_t *lk_jv_pow5_table(int q);

/* The floating-point conversion's divisor for k fraction digits (10^k,
 * exact, for k <= 19; a quiet NaN for 19 < k <= 63), or NULL (for tests). */
const double *lk_jv_p10_table(int k);

#ifdef __cplusplus
}
#endif
#endif /* LUKHAS_JSONVEC_H */
