/* Flat JSON objects with float vectors: see jsonvec.h. */
#include "jsonvec.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* --- exact decimal -> double ---------------------------------------------
 *
 * A number is read as sign, a decimal mantissa m (all its digits as one
 * integer, at most 19 significant digits so it fits in a uint64) and a
 * decimal exponent e, value = m * 10^e.  Two paths convert it with a single
 * correctly rounded IEEE operation on exact operands, so the result is the
 * correctly rounded double, bit-identical to float(text):
 *
 * 1. double (Clinger's fast path): m <= 2^53 and 10^|e| <= 10^22 are both
 *    exact doubles, so m * 10^e (or m / 10^-e) is one rounding of the exact
 *    value.  Needs arithmetic in plain double (FLT_EVAL_METHOD == 0; on
 *    x87-only i386 every double operation would round twice).
 *
 * 2. x87 long double (64-bit significand), for the 17-digit mantissas that
 *    repr / json.dumps write: m < 2^64 and 10^|e| <= 10^27 (= 2^27 * 5^27,
 *    5^27 < 2^63) are exact long doubles, so x = m * 10^e is the exact value
 *    v rounded once to 64 bits.  Rounding x again to 53 bits gives RN53(v)
 *    unless x is exactly a midpoint between two doubles: every double
 *    midpoint has 54 significant bits, so it is a long double; RN64 is
 *    monotone and fixes long doubles, so if v lies strictly between two
 *    neighbouring midpoints, x lies between them too (inclusive), and if x
 *    is not one of them RN53(x) = RN53(v).  A midpoint x is the one case
 *    where v may sit on either side of it (or on it), so we give up there.
 *    x is a midpoint iff the 11 significand bits below the double's last
 *    bit are 0b10000000000.  The values here (1e-27 .. 1.9e46) are far from
 *    the double's subnormal and overflow ranges, checked anyway.
 *
 * Anything else (more digits, a larger exponent, a midpoint) is -1: the
 * caller falls back to a general parser.  No strtod: it is locale dependent
 * and a full correctly rounded conversion is not this module's job. */

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define LK_JV_DOUBLE_PATH 1
#else
#define LK_JV_DOUBLE_PATH 0
#endif

/* The midpoint test reads the x87 extended format's explicit 64-bit
 * significand from the low 8 bytes.  Assumes the x87 precision control is
 * the Linux/glibc default (64-bit significand). */
#if LDBL_MANT_DIG == 64 && (defined(__x86_64__) || defined(__i386__))
#define LK_JV_LDBL_PATH 1
#else
#define LK_JV_LDBL_PATH 0
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#define LK_JV_SSE2 1
#else
#define LK_JV_SSE2 0
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LK_JV_SWAR 1
#else
#define LK_JV_SWAR 0
#endif

static const double pow10_d[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#if LK_JV_LDBL_PATH
static const long double pow10_ld[28] = {
    1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
};

static inline int ld_is_double_midpoint(long double x) {
    uint64_t sig;
    memcpy(&sig, &x, sizeof sig);
    return (sig & 0x7FFu) == 0x400u;
}
#endif

static inline int is_digit(char c) { return (unsigned)((unsigned char)c - '0') < 10u; }

static const uint64_t pow10_u[20] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u,
    1000000000u, 10000000000u, 100000000000u, 1000000000000u, 10000000000000u,
    100000000000000u, 1000000000000000u, 10000000000000000u, 100000000000000000u,
    1000000000000000000u, 10000000000000000000u,
};

#if LK_JV_SWAR
/* The leading ASCII digits of the 8 bytes v (first byte lowest): returns
 * how many there are (0..8) and stores their value.  Branch-free, so runs of
 * numbers with varying lengths cost no mispredictions.
 *
 * A byte is a digit iff its high nibble is 3 and stays 3 after adding 6
 * (0x30..0x39).  Adding 6 to all lanes can carry out of a byte >= 0xFA, but
 * only into later bytes and only from a byte that is not a digit, so the
 * first non-digit is still found exactly.  Likewise subtracting '0' borrows
 * only out of non-digit bytes. */
static inline unsigned swar_digits(uint64_t v, uint64_t *val) {
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0u, threes = 0x3030303030303030u;
    uint64_t bad = ((v & hi) ^ threes) | (((v + 0x0606060606060606u) & hi) ^ threes);
    unsigned k = bad ? (unsigned)__builtin_ctzll(bad) >> 3 : 8u;
    unsigned sh = 32u - 4u * k; /* two half shifts: k == 0 shifts out everything */
    uint64_t t = ((v - threes) << sh) << sh;
    /* The k digits now fill the top bytes behind leading zero digits; fold
     * neighbours into 2-, 4- and 8-digit groups (lanes hold at most 99,
     * 9999, 99999999: no overflow). */
    t = (t * 10 + (t >> 8)) & 0x00FF00FF00FF00FFu;
    t = (t * 100 + (t >> 16)) & 0x0000FFFF0000FFFFu;
    t = (t * 10000 + (t >> 32)) & 0xFFFFFFFFu;
    *val = t;
    return k;
}
#endif

/* Append the digits at *pp to *mp (as decimal digits of one integer).
 * Returns how many were read, or -1 once the mantissa would reach 10^19:
 * a digit string has at most 19 significant digits exactly when its value
 * is below 10^19, so the bound is also the digit limit (m * 10^k + v <
 * 10^19 iff m < 10^(19-k), for a k-digit v). */
static inline ptrdiff_t read_digits(const char **pp, const char *end, uint64_t *mp) {
    const char *p = *pp, *start = p;
    uint64_t m = *mp;
#if LK_JV_SWAR
    while (end - p >= 8) {
        uint64_t w, v;
        unsigned k;
        memcpy(&w, p, 8);
        k = swar_digits(w, &v);
        if (m >= pow10_u[19 - k])
            return -1;
        m = m * pow10_u[k] + v;
        p += k;
        if (k < 8)
            goto done;
    }
#endif
    while (p < end && is_digit(*p)) { /* the last few bytes of the input */
        if (m >= pow10_u[18])
            return -1;
        m = m * 10 + (uint64_t)(*p - '0');
        p++;
    }
#if LK_JV_SWAR
done:
#endif
    *pp = p;
    *mp = m;
    return p - start;
}

/* Exponents are saturated here: anything this large is out of both paths'
 * range and is rejected anyway. */
#define LK_JV_EXP_SAT 100000

/* m * 10^e (m > 0) by the double path: 1 if it applies. */
static inline int via_double(uint64_t m, int64_t e, double *out) {
#if LK_JV_DOUBLE_PATH
    if (m <= (UINT64_C(1) << 53) && e >= -22 && e <= 22) {
        double d = (double)m;
        *out = e < 0 ? d / pow10_d[-e] : d * pow10_d[e];
        return 1;
    }
#endif
    return 0;
}

/* m * 10^e (m > 0) by the long double path: 1 if it applies and x is not a
 * double midpoint. */
static inline int via_ldouble(uint64_t m, int64_t e, double *out) {
#if LK_JV_LDBL_PATH
    if (e >= -27 && e <= 27) {
        long double x = (long double)m;
        x = e < 0 ? x / pow10_ld[-e] : x * pow10_ld[e];
        if (ld_is_double_midpoint(x) || x < (long double)DBL_MIN || x > (long double)DBL_MAX)
            return 0;
        *out = (double)x;
        return 1;
    }
#endif
    return 0;
}

/* The correctly rounded m * 10^e (m > 0), or 0 if neither path applies.
 * Double first: it is much cheaper than the x87 one (measured: 4 vs 10 us
 * for 1536 6-decimal numbers) and trying x87 first did not speed up the
 * 17-digit mix either. */
static inline int to_double(uint64_t m, int64_t e, double *out) {
    return via_double(m, e, out) || via_ldouble(m, e, out);
}

/* Inlined into the array loop so p and the result stay in registers. */
#if defined(__GNUC__)
#define LK_JV_INLINE static inline __attribute__((always_inline))
#else
#define LK_JV_INLINE static inline
#endif

LK_JV_INLINE int parse_number(const char **pp, const char *end, double *out) {
    const char *p = *pp;
    int neg = 0, is_float = 0;
    uint64_t m = 0;
    ptrdiff_t nfrac = 0;
    int64_t e = 0;
    double d;

    neg = p < end && *p == '-'; /* no branch: signs are random in real data */
    p += neg;
    if (p >= end)
        return -1;
    if (*p == '0') {
        p++; /* JSON: no leading zeros; a digit after it ends the token here
              * and the caller rejects what follows */
    } else if (is_digit(*p)) {
        if (read_digits(&p, end, &m) < 0)
            return -1;
    } else {
        return -1; /* no '+', no '.5', no 'inf' */
    }
    if (p < end && *p == '.') {
        p++;
        nfrac = read_digits(&p, end, &m);
        if (nfrac <= 0) /* too many digits, or none after '.' */
            return -1;
        is_float = 1;
    }
    if (p < end && (*p | 0x20) == 'e') {
        int64_t x = 0;
        int eneg = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || !is_digit(*p))
            return -1;
        while (p < end && is_digit(*p)) {
            if (x < LK_JV_EXP_SAT)
                x = x * 10 + (*p - '0');
            p++;
        }
        e = eneg ? -x : x;
        is_float = 1;
    }
    e -= nfrac;

    if (m == 0) {
        d = 0.0; /* any exponent: 0e999 is 0.0, -0.0 keeps its sign */
    } else if (!to_double(m, e, &d)) {
        return -1;
    }
    {
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        bits ^= (uint64_t)neg << 63;
        memcpy(out, &bits, sizeof bits);
    }
    *pp = p;
    return is_float;
}

int lk_jv_number(const char **pp, const char *end, double *out) {
    return parse_number(pp, end, out);
}

/* --- the flat object ------------------------------------------------------ */

void lk_jv_init(lk_jv_doc *doc) {
    memset(doc, 0, sizeof *doc);
}

void lk_jv_free(lk_jv_doc *doc) {
    free(doc->members);
    free(doc->nums);
    lk_jv_init(doc);
}

/* Grow a buffer to at least double its capacity (min_cap at first). */
static int grow(void **buf, size_t *cap, size_t elem, size_t min_cap) {
    size_t n = *cap ? *cap * 2 : min_cap;
    void *q;
    if (n < *cap || n > SIZE_MAX / elem)
        return LK_JV_NOMEM;
    q = realloc(*buf, n * elem);
    if (q == NULL)
        return LK_JV_NOMEM;
    *buf = q;
    *cap = n;
    return LK_JV_OK;
}

/* RFC 8259 whitespace: space, tab, line feed, carriage return. */
static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* p is just after an opening quote: the closing quote, or NULL for an
 * escape, a control character (invalid JSON) or the end of input. */
static inline const char *scan_string(const char *p, const char *end) {
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c == '\\' || c < 0x20)
            return NULL;
    }
    return NULL;
}

/* Bit i set iff p[i] is ',' or ']', for the 64 bytes at p (64 readable). */
static inline uint64_t sep_mask64(const char *p) {
    uint64_t mask = 0;
#if LK_JV_SSE2
    const __m128i comma = _mm_set1_epi8(','), close = _mm_set1_epi8(']');
    int i;
    for (i = 0; i < 4; i++) {
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
        unsigned bits = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(b, comma), _mm_cmpeq_epi8(b, close)));
        mask |= (uint64_t)bits << (16 * i);
    }
#else
    int i;
    for (i = 0; i < 64; i++)
        mask |= (uint64_t)(p[i] == ',' || p[i] == ']') << i;
#endif
    return mask;
}

/* The same for the n < 64 bytes left at p. */
static inline uint64_t sep_mask_tail(const char *p, size_t n) {
    uint64_t mask = 0;
    size_t i;
    for (i = 0; i < n; i++)
        mask |= (uint64_t)(p[i] == ',' || p[i] == ']') << i;
    return mask;
}

/* p is just after '[': read float tokens into doc->nums up to and past ']'.
 *
 * Elements cannot contain ',' or ']', so the separators are found first, 64
 * bytes at a time, and every element has a known start that does not depend
 * on parsing the previous one.  (Meant to let consecutive parses overlap; on
 * the development VM it measured no faster than the plain token-by-token
 * loop -- the per-number conversion dominates -- so it is a candidate for
 * simplification.)  Each element must be exactly one float token between
 * optional whitespace; the number parser may look past the separator (it
 * stops at it) but never past end. */
static int parse_array(const char **pp, const char *end, lk_jv_doc *doc) {
    const char *tok = *pp, *blk = *pp, *sep, *q;
    uint64_t mask;
    size_t left = (size_t)(end - blk);

    mask = left >= 64 ? sep_mask64(blk) : sep_mask_tail(blk, left);
    for (;;) {
        double v;
        while (mask == 0) {
            blk += 64;
            if (blk >= end)
                return LK_JV_UNHANDLED; /* no closing ']' */
            left = (size_t)(end - blk);
            mask = left >= 64 ? sep_mask64(blk) : sep_mask_tail(blk, left);
        }
        sep = blk + __builtin_ctzll(mask);
        mask &= mask - 1;
        if (doc->n_nums == doc->cap_nums &&
            grow((void **)&doc->nums, &doc->cap_nums, sizeof(double), 1024) != LK_JV_OK)
            return LK_JV_NOMEM;
        q = skip_ws(tok, sep);
        /* not a number, not exact, an int, or an empty element ("[]", "[1.5,]") */
        if (parse_number(&q, end, &v) != 1 || skip_ws(q, sep) != sep)
            return LK_JV_UNHANDLED;
        doc->nums[doc->n_nums++] = v;
        if (*sep == ']') {
            *pp = sep + 1;
            return LK_JV_OK;
        }
        tok = sep + 1;
    }
}

static inline int literal(const char **pp, const char *end, const char *word, size_t len) {
    if ((size_t)(end - *pp) < len || memcmp(*pp, word, len) != 0)
        return 0;
    *pp += len;
    return 1;
}

int lk_jv_parse(const char *p, size_t n, lk_jv_doc *doc) {
    const char *const base = p, *const end = p + n, *q;
    lk_jv_member mb;
    int rc;

    doc->n_members = 0;
    doc->n_nums = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return LK_JV_UNHANDLED;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
        goto trailer;
    }
    for (;;) {
        if (p >= end || *p != '"' || (q = scan_string(p + 1, end)) == NULL)
            return LK_JV_UNHANDLED;
        mb.key_off = (size_t)(p + 1 - base);
        mb.key_len = (size_t)(q - (p + 1));
        p = skip_ws(q + 1, end);
        if (p >= end || *p != ':')
            return LK_JV_UNHANDLED;
        p = skip_ws(p + 1, end);
        if (p >= end)
            return LK_JV_UNHANDLED;
        mb.off = mb.len = 0;
        switch (*p) {
        case '"':
            if ((q = scan_string(p + 1, end)) == NULL)
                return LK_JV_UNHANDLED;
            mb.kind = LK_JV_STRING;
            mb.off = (size_t)(p + 1 - base);
            mb.len = (size_t)(q - (p + 1));
            p = q + 1;
            break;
        case '[':
            p++;
            mb.kind = LK_JV_ARRAY;
            mb.off = doc->n_nums;
            if ((rc = parse_array(&p, end, doc)) != LK_JV_OK)
                return rc;
            mb.len = doc->n_nums - mb.off;
            break;
        case 't':
            if (!literal(&p, end, "true", 4))
                return LK_JV_UNHANDLED;
            mb.kind = LK_JV_TRUE;
            break;
        case 'f':
            if (!literal(&p, end, "false", 5))
                return LK_JV_UNHANDLED;
            mb.kind = LK_JV_FALSE;
            break;
        case 'n':
            if (!literal(&p, end, "null", 4))
                return LK_JV_UNHANDLED;
            mb.kind = LK_JV_NULL;
            break;
        default: /* numbers, objects, ...: not this shape */
            return LK_JV_UNHANDLED;
        }
        if (doc->n_members == doc->cap_members &&
            grow((void **)&doc->members, &doc->cap_members, sizeof(lk_jv_member), 8) != LK_JV_OK)
            return LK_JV_NOMEM;
        doc->members[doc->n_members++] = mb;
        p = skip_ws(p, end);
        if (p >= end)
            return LK_JV_UNHANDLED;
        if (*p == ',') {
            p = skip_ws(p + 1, end);
        } else if (*p == '}') {
            p++;
            break;
        } else {
            return LK_JV_UNHANDLED;
        }
    }
trailer:
    p = skip_ws(p, end);
    return p == end ? LK_JV_OK : LK_JV_UNHANDLED;
}
