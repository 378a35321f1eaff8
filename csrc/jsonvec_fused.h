/* The array loop of csrc/jsonvec.c's SIMD kernel sets, a template:
 * jsonvec.c includes this file once per instruction set, with
 *
 *   LK_JV_FUSED_FN     the function's name,
 *   LK_JV_FUSED_ATTR   its target attribute,
 *   LK_JV_FUSED_SEPS   sep_mask64's variant (64 readable bytes),
 *   LK_JV_FUSED_PREP   the token check and fold for fp4 (prep_*),
 *   LK_JV_FUSED_PLAIN  the exact common-shape kernel, (t, e, out) -> 1/0,
 *
 * so that the kernels inline into the loop.  Not a header of its own
 * module: nothing else includes it.
 *
 * p is just after '['.  Pass 1 collects the separators (',' and ']') in
 * batches, as jsonvec_array.h does (elements cannot contain them), so that
 * no element's conversion waits for the previous element's end.  Pass 2
 * checks and folds four elements (LK_JV_FUSED_PREP), then converts them
 * together (fp4); a group whose inline digit check fails (prep's *acc) and
 * a lane fp4 does not vouch for are redone by the exact
 * kernel, else by element_slow (whitespace other than one space after the
 * separator, exponents, other shapes), which rejects what is not exactly
 * one float token between optional whitespace.  Linear: every byte is
 * scanned once for separators and at most three times as a token; memory
 * is doc->nums (at most a batch and 4 slots ahead of the numbers read) and
 * the batch on the stack.  fp_ok == 0 (the rounding mode is not
 * round-to-nearest): every lane is redone exactly. */
LK_JV_FUSED_ATTR static int LK_JV_FUSED_FN(const char **pp, const char *end, const char *base, lk_jv_doc *doc,
                                           int fp_ok) {
    const char *seps[LK_JV_BATCH + 64];
    const char *tok = *pp, *blk = *pp;
    const lk_jv_fp_consts *c = lk_jv_consts();
    const lk_jv_vregs v = LK_JV_VREGS(c);
    unsigned all = fp_ok ? 0u : 0xFu;
    /* blk <= lim: 64 bytes readable at blk */
    const uintptr_t lim = (uintptr_t)end >= 64 ? (uintptr_t)end - 64 : 0;
    for (;;) {
        size_t n = 0, i;
        int closed = 0;
        double *out;
        /* pass 1: separators up to the batch size or the closing ']' (as in
         * jsonvec_array.h).  Four slots are written per block whatever the
         * count (tzcnt of 0 is 64: a slot past the count is never read),
         * the rare fifth and later in a loop. */
        while (n < LK_JV_BATCH) {
            uint64_t close, mask, m;
            size_t count, k;
            if ((uintptr_t)blk <= lim) {
                mask = LK_JV_FUSED_SEPS(blk, &close, &v);
            } else {
                if (blk >= end)
                    return LK_JV_UNHANDLED; /* no closing ']' */
                mask = sep_mask_tail(blk, (size_t)(end - blk), &close);
            }
            if (close != 0) {
                mask &= close ^ (close - 1);
                closed = 1;
            }
            count = (size_t)__builtin_popcountll(mask);
            seps[n] = blk + _tzcnt_u64(mask);
            m = _blsr_u64(mask);
            seps[n + 1] = blk + _tzcnt_u64(m);
            m = _blsr_u64(m);
            seps[n + 2] = blk + _tzcnt_u64(m);
            m = _blsr_u64(m);
            seps[n + 3] = blk + _tzcnt_u64(m);
            m = _blsr_u64(m);
            for (k = n + 4; m != 0; k++) {
                seps[k] = blk + _tzcnt_u64(m);
                m = _blsr_u64(m);
            }
            n += count;
            blk += 64;
            if (closed)
                break;
        }
        /* pass 2: the elements [tok, seps[i]), four at a time (fp4 writes
         * four slots: room for the last group's padding) */
        if (reserve_nums(doc, n + 4) != LK_JV_OK)
            return LK_JV_NOMEM;
        out = doc->nums + doc->n_nums;
        for (i = 0; i < n && seps[i] - base < 32; i++) { /* too close to the start for the kernel's window */
            if (!element_slow(tok, seps[i], end, out + i))
                return LK_JV_UNHANDLED;
            tok = seps[i] + 1;
        }
        while (i < n) {
            const char *const *sp = seps + i;
            size_t k = 4, j;
            unsigned redo;
            /* the fraction bytes' maximum over the group (above 9: the group
             * is redone exactly) and the tokens' 10^-k table entries */
            __m256i acc = _mm256_setzero_si256(), q0, q1, q2, q3;
            __m128d w0, w1, w2, w3;
            q0 = LK_JV_FUSED_PREP(tok - 1, sp[0], &v, c, &acc, &w0);
            if (n - i >= 4) { /* (the usual case, without the tests below) */
                q1 = LK_JV_FUSED_PREP(sp[0], sp[1], &v, c, &acc, &w1);
                q2 = LK_JV_FUSED_PREP(sp[1], sp[2], &v, c, &acc, &w2);
                q3 = LK_JV_FUSED_PREP(sp[2], sp[3], &v, c, &acc, &w3);
            } else { /* the array's last one to three elements (the others: copies, ignored) */
                k = n - i;
                q1 = q2 = q3 = q0;
                w1 = w2 = w3 = w0;
                if (k > 1)
                    q1 = LK_JV_FUSED_PREP(sp[0], sp[1], &v, c, &acc, &w1);
                if (k > 2)
                    q2 = LK_JV_FUSED_PREP(sp[1], sp[2], &v, c, &acc, &w2);
            }
            acc = _mm256_subs_epu8(acc, v.nines);
            redo = fp4(q0, q1, q2, q3, w0, w1, w2, w3, out + i, c) | all;
            if (!_mm256_testz_si256(acc, acc))
                redo = 0xFu;
            if (redo != 0) {
                redo &= (1u << k) - 1;
                while (redo != 0) {
                    const char *t, *e;
                    j = (size_t)__builtin_ctz(redo);
                    redo &= redo - 1;
                    t = j == 0 ? tok : sp[j - 1] + 1;
                    e = sp[j];
                    if (!LK_JV_FUSED_PLAIN(t + (*t == ' '), e, out + i + j) && !element_slow(t, e, end, out + i + j))
                        return LK_JV_UNHANDLED;
                }
            }
            i += k;
            tok = sp[k - 1] + 1;
        }
        doc->n_nums += n;
        if (closed) {
            *pp = tok;
            return LK_JV_OK;
        }
    }
}

#undef LK_JV_FUSED_FN
#undef LK_JV_FUSED_ATTR
#undef LK_JV_FUSED_SEPS
#undef LK_JV_FUSED_PREP
#undef LK_JV_FUSED_PLAIN
