/* The array loop of csrc/jsonvec.c's SIMD kernel sets, a template:
 * jsonvec.c includes this file once per instruction set, with
 *
 *   LK_JV_FUSED_FN     the function's name,
 *   LK_JV_FUSED_ATTR   its target attribute,
 *   LK_JV_FUSED_PREP   the token check and fold for fp4 (prep_*),
 *   LK_JV_FUSED_PLAIN  the exact common-shape kernel, (t, e, out) -> 1/0,
 *
 * so that the kernels inline into the loop.  Not a header of its own
 * module: nothing else includes it.
 *
 * p is just after '['.  Elements cannot contain ',' or ']', so an element
 * ends at the first of them after its start: find_sep2_avx2 finds two
 * elements' ends in the 64 bytes from the first one's start (a shuffle, a
 * compare and a movemask per 32 bytes, a tzcnt per element), and one byte
 * compare each says whether it is a ',' (else ']').
 * Four elements are found, checked and folded (LK_JV_FUSED_PREP) one after
 * the other, then converted together (fp4); a group whose inline digit
 * check fails (prep's *acc) and a lane fp4 does not vouch for are redone by
 * the exact kernel, else by element_slow (whitespace other than one space
 * after the separator, exponents, other shapes), which rejects what is not
 * exactly one float token between optional whitespace.
 *
 * Groups run while the 64-byte windows stay inside the body (at least
 * LK_JV_REACH bytes left; prep reads 32 bytes before each separator, so the
 * array's elements in the body's first 32 bytes are read one at a time
 * too) and doc->nums has room for four more; the rest -- an array's first
 * and last elements near the body's ends, two elements that do not end in
 * one window (long whitespace, long tokens) -- goes one element at a time
 * through a byte scan for the separator and the exact kernels.  Linear:
 * each element's bytes are read a bounded number of times (its window, the
 * kernels' windows, at most one scan); memory is doc->nums (at most 4 slots
 * past the numbers read).  fp_ok == 0 (the rounding mode is not
 * round-to-nearest): every lane is redone exactly. */

/* A group reads two 64-byte windows (two elements and their separators
 * each) and prep one byte past the last separator: 129 bytes. */
#ifndef LK_JV_REACH
#define LK_JV_REACH (4 * 33)
#endif

/* Redo the lanes in r of the group at tok (separators tok - 1, e0..e3)
 * exactly, or return LK_JV_UNHANDLED. */
#define LK_JV_REDO(r)                                                                                       \
    do {                                                                                                    \
        const char *sep_[5];                                                                                \
        unsigned r_ = (r);                                                                                  \
        sep_[0] = tok - 1, sep_[1] = e0, sep_[2] = e1, sep_[3] = e2, sep_[4] = e3;                          \
        while (r_ != 0) {                                                                                   \
            unsigned j_ = (unsigned)__builtin_ctz(r_);                                                      \
            const char *t_ = sep_[j_] + 1;                                                                  \
            r_ &= r_ - 1;                                                                                   \
            if (!LK_JV_FUSED_PLAIN(t_ + (*t_ == ' '), sep_[j_ + 1], out + j_) &&                            \
                !element_slow(t_, sep_[j_ + 1], end, out + j_))                                             \
                return LK_JV_UNHANDLED;                                                                     \
        }                                                                                                   \
    } while (0)

LK_JV_FUSED_ATTR static int LK_JV_FUSED_FN(const char **pp, const char *end, const char *base, lk_jv_doc *doc,
                                           int fp_ok) {
    const char *tok = *pp;
    /* groups start at or before tlim (LK_JV_REACH bytes left) */
    const char *const tlim = end - base > LK_JV_REACH ? end - LK_JV_REACH : base;
    const lk_jv_fp_consts *c = lk_jv_consts();
    const lk_jv_vregs v = LK_JV_VREGS(c);
    unsigned all = fp_ok ? 0u : 0xFu, singles = 0;
    for (;;) {
        double *out, *lim;
        const char *e, *t;
        if (reserve_nums(doc, 8) != LK_JV_OK)
            return LK_JV_NOMEM;
        out = doc->nums + doc->n_nums;
        lim = doc->nums + doc->cap_nums - 4; /* (fp4 writes four slots) */
        if (singles == 0 && tok - base >= 32) {
            while (out <= lim && tok <= tlim) {
                /* the fraction bytes' maximum over the group (above 9: the
                 * group is redone exactly) and the tokens' divisors */
                __m256i acc, q0, q1, q01, q23;
                __m128d w0, w1;
                __m128d p01, p23;
                const char *e0, *e1, *e2, *e3;
                unsigned redo;
                if (!find_sep2_avx2(tok, &v, &e0, &e1))
                    goto short_group;
                q0 = LK_JV_FUSED_PREP(tok - 1, e0, &v, c, &acc, &w0, 1);
                if (*e0 != ',')
                    goto short_group;
                q1 = LK_JV_FUSED_PREP(e0, e1, &v, c, &acc, &w1, 0);
                if (*e1 != ',')
                    goto short_group;
                q01 = pack2q(q0, q1), p01 = pack2w(w0, w1);
                if (!find_sep2_avx2(e1 + 1, &v, &e2, &e3))
                    goto short_group;
                q0 = LK_JV_FUSED_PREP(e1, e2, &v, c, &acc, &w0, 0);
                if (*e2 != ',')
                    goto short_group;
                q1 = LK_JV_FUSED_PREP(e2, e3, &v, c, &acc, &w1, 0);
                q23 = pack2q(q0, q1), p23 = pack2w(w0, w1);
                acc = _mm256_subs_epu8(acc, LK_JV_LOAD(c->nines));
                redo = fp4(q01, q23, p01, p23, out, c) | all;
                if (!_mm256_testz_si256(acc, acc))
                    redo = 0xFu;
                if (redo != 0)
                    LK_JV_REDO(redo);
                out += 4;
                if (*e3 != ',') { /* ']' */
                    doc->n_nums = (size_t)(out - doc->nums);
                    *pp = e3 + 1;
                    return LK_JV_OK;
                }
                tok = e3 + 1;
                continue;
            short_group: /* the array's last one to three elements, or two that do not end in one window */
                singles = 3;
                break;
            }
        }
        doc->n_nums = (size_t)(out - doc->nums);
        if (out > lim)
            continue; /* (reserve_nums grows the buffer) */
        /* one element, its separator by a byte scan unless the window has it */
        singles -= singles != 0;
        e = end - tok > 32 ? find_sep_avx2(tok, &v) : end;
        if (e >= end || (*e != ',' && *e != ']'))
            for (e = tok; e < end && *e != ',' && *e != ']'; e++) {
            }
        if (e >= end)
            return LK_JV_UNHANDLED; /* no closing ']' */
        t = tok;
        if (!(e - base >= 32 && LK_JV_FUSED_PLAIN(t + (*t == ' '), e, out)) && !element_slow(t, e, end, out))
            return LK_JV_UNHANDLED;
        doc->n_nums++;
        tok = e + 1;
        if (*e == ']') {
            *pp = tok;
            return LK_JV_OK;
        }
    }
}

#undef LK_JV_REDO
#undef LK_JV_FUSED_FN
#undef LK_JV_FUSED_ATTR
#undef LK_JV_FUSED_PREP
#undef LK_JV_FUSED_PLAIN
