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
 * together (fp4); a lane fp4 does not vouch for is redone by the exact
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
    int32_t rows[16] __attribute__((aligned(32))) = {0};
    const char *tok = *pp, *blk = *pp;
    const lk_jv_fp_consts *c = lk_jv_consts();
    const lk_jv_vregs v = LK_JV_VREGS(c);
    unsigned all = fp_ok ? 0u : 0xFu;
    for (;;) {
        size_t n = 0, i;
        int closed = 0;
        double *out;
        /* pass 1: separators up to the batch size or the closing ']' (as in
         * jsonvec_array.h) */
        while (n < LK_JV_BATCH && !closed) {
            size_t left = (size_t)(end - blk), count, k;
            uint64_t close, mask;
            if (blk >= end)
                return LK_JV_UNHANDLED; /* no closing ']' */
            mask = left >= 64 ? LK_JV_FUSED_SEPS(blk, &close, &v) : sep_mask_tail(blk, left, &close);
            if (close != 0) {
                mask &= close ^ (close - 1);
                closed = 1;
            }
            count = (size_t)__builtin_popcountll(mask);
            for (k = 0; k < 4; k++) {
                seps[n + k] = blk + __builtin_ctzll(mask | (uint64_t)1 << 63);
                mask &= mask - 1;
            }
            for (k = n + 4; mask != 0; k++) {
                seps[k] = blk + __builtin_ctzll(mask);
                mask &= mask - 1;
            }
            n += count;
            blk += 64;
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
            size_t k = n - i < 4 ? n - i : 4, j;
            unsigned redo;
            const char *const *sp = seps + i;
            LK_JV_FUSED_PREP(tok + (*tok == ' '), sp[0], rows, &v);
            if (k == 4) { /* (the usual case, without the tests below) */
                LK_JV_FUSED_PREP(sp[0] + 1 + (sp[0][1] == ' '), sp[1], rows + 4, &v);
                LK_JV_FUSED_PREP(sp[1] + 1 + (sp[1][1] == ' '), sp[2], rows + 8, &v);
                LK_JV_FUSED_PREP(sp[2] + 1 + (sp[2][1] == ' '), sp[3], rows + 12, &v);
            } else { /* the array's last one to three elements */
                rows[4] = rows[8] = rows[12] = LK_JV_FP_BAD;
                if (k > 1)
                    LK_JV_FUSED_PREP(sp[0] + 1 + (sp[0][1] == ' '), sp[1], rows + 4, &v);
                if (k > 2)
                    LK_JV_FUSED_PREP(sp[1] + 1 + (sp[1][1] == ' '), sp[2], rows + 8, &v);
            }
            redo = (fp4(rows, out + i, c) | all) & ((1u << k) - 1);
            while (redo != 0) {
                const char *t, *e;
                j = (size_t)__builtin_ctz(redo);
                redo &= redo - 1;
                t = j == 0 ? tok : sp[j - 1] + 1;
                e = sp[j];
                if (!LK_JV_FUSED_PLAIN(t + (*t == ' '), e, out + i + j) && !element_slow(t, e, end, out + i + j))
                    return LK_JV_UNHANDLED;
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
