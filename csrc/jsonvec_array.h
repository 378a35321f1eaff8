/* The array loop of csrc/jsonvec.c, a template: jsonvec.c includes this
 * file once per instruction set, with
 *
 *   LK_JV_ARRAY_FN     the function's name,
 *   LK_JV_ARRAY_ATTR   its target attribute (empty for the scalar code),
 *   LK_JV_ARRAY_SEPS   sep_mask64's variant (64 readable bytes),
 *   LK_JV_ARRAY_PLAIN  the common-shape kernel, (t, e, out) -> 1/0 (32 bytes
 *                      readable before e),
 *
 * so that the kernels inline into the loop (a function cannot inline code
 * compiled for a wider instruction set than its own).  Not a header of its
 * own module: nothing else includes it.
 *
 * p is just after '['.  Elements cannot contain ',' or ']', so the
 * separators are found first, 64 bytes at a time, and their addresses
 * collected in batches (pass 1); then every element of the batch has a
 * known start and end, which the kernels need (they read the digits
 * backwards from the end), and the conversion loop (pass 2) runs a known
 * number of rounds without a data-dependent branch, so the CPU overlaps
 * consecutive numbers.  Each element must be exactly one float token
 * between optional whitespace (", " is handled inline, anything else by
 * element_slow).  Linear: every byte is scanned once for separators and at
 * most twice as a token; memory is doc->nums (at most a batch ahead of the
 * numbers read) and the batch on the stack. */
LK_JV_ARRAY_ATTR static int LK_JV_ARRAY_FN(const char **pp, const char *end, const char *base, lk_jv_doc *doc) {
    const char *seps[LK_JV_BATCH + 64];
    const char *tok = *pp, *blk = *pp;
    for (;;) {
        size_t n = 0, i;
        int closed = 0;
        double *out;
        /* pass 1: separators up to the batch size or the closing ']' */
        while (n < LK_JV_BATCH && !closed) {
            size_t left = (size_t)(end - blk), count, k;
            uint64_t close, mask;
            if (blk >= end)
                return LK_JV_UNHANDLED; /* no closing ']' */
            mask = left >= 64 ? LK_JV_ARRAY_SEPS(blk, &close) : sep_mask_tail(blk, left, &close);
            if (close != 0) { /* the separators up to the first ']' */
                mask &= close ^ (close - 1);
                closed = 1;
            }
            /* A block of a vector holds 2 to 4 numbers: four addresses are
             * written unconditionally (the slots past the count are
             * scratch), so only denser blocks take the loop. */
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
        /* pass 2: the elements [tok, seps[i]) */
        if (reserve_nums(doc, n) != LK_JV_OK)
            return LK_JV_NOMEM;
        out = doc->nums + doc->n_nums;
        for (i = 0; i < n && seps[i] - base < 32; i++) { /* too close to the start for the kernel's window */
            if (!element_slow(tok, seps[i], end, out + i))
                return LK_JV_UNHANDLED;
            tok = seps[i] + 1;
        }
        for (; i < n; i++) {
            const char *sep = seps[i];
            if (!LK_JV_ARRAY_PLAIN(tok + (*tok == ' '), sep, out + i) && !element_slow(tok, sep, end, out + i))
                return LK_JV_UNHANDLED;
            tok = sep + 1;
        }
        doc->n_nums += n;
        if (closed) {
            *pp = tok;
            return LK_JV_OK;
        }
    }
}

#undef LK_JV_ARRAY_FN
#undef LK_JV_ARRAY_ATTR
#undef LK_JV_ARRAY_SEPS
#undef LK_JV_ARRAY_PLAIN
