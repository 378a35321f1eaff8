/* The array loop of csrc/jsonvec.c's SIMD kernel sets, a template:
 * jsonvec.c includes this file once per instruction set, with
 *
 *   LK_JV_FUSED_FN     the function's name,
 *   LK_JV_FUSED_ATTR   its target attribute,
 *   LK_JV_FUSED_SEPS   sep_mask32's variant (32 readable bytes),
 *   LK_JV_FUSED_PREP   the token check and fold for fp4 (prep_*),
 *   LK_JV_FUSED_PLAIN  the exact common-shape kernel, (t, e, out) -> 1/0,
 *
 * so that the kernels inline into the loop.  Not a header of its own
 * module: nothing else includes it.
 *
 * p is just after '['.  Elements cannot contain ',' or ']', so each
 * element's end is the first of them in the 32 bytes from its start (one
 * compare; a longer element, or one near the end of the input, is scanned
 * byte by byte).  Four elements are checked and folded (LK_JV_FUSED_PREP),
 * then converted together (fp4); a lane fp4 does not vouch for is redone
 * by the exact kernel, else by element_slow (whitespace other than one
 * space after the separator, exponents, other shapes), which rejects what
 * is not exactly one float token between optional whitespace.  Linear:
 * every byte is scanned at most once for the separator and at most three
 * times as a token; memory is doc->nums (at most 4 slots past the numbers
 * read) and a few slots on the stack.  fp_ok == 0 (the rounding mode is
 * not round-to-nearest): every lane is redone exactly. */
LK_JV_FUSED_ATTR static int LK_JV_FUSED_FN(const char **pp, const char *end, const char *base, lk_jv_doc *doc,
                                           int fp_ok) {
    int32_t rows[16] __attribute__((aligned(32))) = {LK_JV_FP_BAD, 0, 0, 0, LK_JV_FP_BAD, 0, 0, 0,
                                                     LK_JV_FP_BAD, 0, 0, 0, LK_JV_FP_BAD, 0, 0, 0};
    const char *toks[4], *ends[4];
    const char *tok = *pp;
    const lk_jv_fp_consts *c = lk_jv_consts();
    unsigned all = fp_ok ? 0u : 0xFu;
    for (;;) {
        unsigned k = 0, redo;
        int closed = 0;
        double *out;
        do {
            const char *t = tok, *e;
            uint32_t m;
            if (end - t >= 32 && (m = LK_JV_FUSED_SEPS(t)) != 0) {
                e = t + __builtin_ctz(m);
            } else { /* a long element, or the last bytes of the input */
                for (e = t; e < end && *e != ',' && *e != ']'; e++)
                    ;
                if (e >= end)
                    return LK_JV_UNHANDLED; /* no closing ']' */
            }
            toks[k] = t;
            ends[k] = e;
            if (e - base >= 32) /* (the window before e is inside the input) */
                LK_JV_FUSED_PREP(t + (*t == ' '), e, rows + 4 * k);
            else
                rows[4 * k] = LK_JV_FP_BAD;
            closed = *e == ']';
            tok = e + 1;
            k++;
        } while (k < 4 && !closed);
        if (doc->cap_nums - doc->n_nums < 4 && reserve_nums(doc, 4) != LK_JV_OK)
            return LK_JV_NOMEM;
        out = doc->nums + doc->n_nums;
        redo = (fp4(rows, out, c) | all) & ((1u << k) - 1); /* (a short last group: stale lanes ignored) */
        while (redo != 0) {
            unsigned j = (unsigned)__builtin_ctz(redo);
            const char *t = toks[j], *e = ends[j];
            redo &= redo - 1;
            if (!(e - base >= 32 && LK_JV_FUSED_PLAIN(t + (*t == ' '), e, out + j)) &&
                !element_slow(t, e, end, out + j))
                return LK_JV_UNHANDLED;
        }
        doc->n_nums += k;
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
