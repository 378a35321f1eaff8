/* Case-insensitive substring search in ASCII text, for the ethics
 * `contains(haystack, needle)` predicate (`needle.lower() in str(haystack).lower()`).
 *
 * Why: over a dict or list, the predicate's cost is printing the container
 * and lowering the text.  The ethics C tier instead walks the container and
 * searches each printed atom (string body, number, None/True/False) on its
 * own, when the needle is made only of characters the container's own
 * punctuation never uses (quotes, brackets, braces, parentheses, colon,
 * comma, space, backslash): such a needle can only ever match inside one
 * atom.  These helpers fold one atom to lower case a chunk at a time into a
 * stack buffer and search it with memmem: linear time (chunks overlap by
 * m - 1 bytes, and glibc's memmem is linear), no allocation.
 */
#ifndef LUKHAS_ASCIIFOLD_H
#define LUKHAS_ASCIIFOLD_H

#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* the fold buffer; needles are at most LK_FOLD_MAX_NEEDLE bytes so that
 * every chunk advances by at least LK_FOLD_CHUNK - LK_FOLD_MAX_NEEDLE */
#define LK_FOLD_CHUNK 1024
#define LK_FOLD_MAX_NEEDLE 256
/* atoms up to this long are searched in place (for needles up to
 * LK_FOLD_SHORT_NEEDLE bytes), longer ones folded into a buffer for memmem */
#define LK_FOLD_SHORT 64
#define LK_FOLD_SHORT_NEEDLE 16

static inline unsigned char lk_fold1(unsigned char c)
{
    return (unsigned char)(c + ((unsigned)((c - 'A') < 26u) << 5));
}

/* Lower-case ASCII s[0..n) into out (A-Z to a-z, every other byte as is).
 * Returns nonzero when s holds a byte that str.__repr__ escapes (C0 controls
 * and DEL), i.e. when the atom's printed body is not s itself.  Branch-free
 * so that the compiler vectorises it. */
static inline int lk_fold_ascii(const unsigned char *s, size_t n, unsigned char *out)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        bad |= (c < 0x20u) | (c == 0x7fu);
        out[i] = lk_fold1((unsigned char)c);
    }
    return bad != 0;
}

/* What str.__repr__ must know of ASCII s[0..n): LK_REPR_ESCAPE when it holds a
 * byte it escapes (C0 controls, DEL, backslash), LK_REPR_SQUOTE / _DQUOTE when
 * it holds a ' / ".  Branch-free so that the compiler vectorises it: the
 * ethics plan hash prints every string of a plan through here. */
#define LK_REPR_ESCAPE 1
#define LK_REPR_SQUOTE 2
#define LK_REPR_DQUOTE 4

static inline int lk_repr_scan(const unsigned char *s, size_t n)
{
    unsigned esc = 0, sq = 0, dq = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        esc |= (c < 0x20u) | (c == 0x7fu) | (c == '\\');
        sq |= c == '\'';
        dq |= c == '"';
    }
    return (esc ? LK_REPR_ESCAPE : 0) | (sq ? LK_REPR_SQUOTE : 0) | (dq ? LK_REPR_DQUOTE : 0);
}

/* lk_fold_find for atoms longer than LK_FOLD_SHORT (or long needles): fold a
 * chunk into a stack buffer, memmem it, move on by all but m - 1 bytes */
static int lk_fold_find_long(const unsigned char *s, size_t n, const unsigned char *needle, size_t m, int *esc)
{
    unsigned char buf[LK_FOLD_CHUNK];
    size_t pos = 0;
    int bad = 0;
    while (pos < n) {
        size_t k = n - pos < LK_FOLD_CHUNK ? n - pos : LK_FOLD_CHUNK;
        bad |= lk_fold_ascii(s + pos, k, buf);
        if (k >= m && memmem(buf, k, needle, m) != NULL)
            return 1;
        if (pos + k >= n)
            break;
        pos += k - (m - 1); /* overlap: a match across the boundary is seen whole */
    }
    *esc = bad;
    return 0;
}

/* 1 when needle[0..m) (lower case, 1 <= m <= LK_FOLD_MAX_NEEDLE) occurs in the
 * lower-cased s[0..n), 0 otherwise.  *esc is set nonzero when the search
 * ended without a match and s holds a byte that repr escapes (the caller
 * cannot decide from s alone then: the escape's letters may match). */
static inline int lk_fold_find(const unsigned char *s, size_t n, const unsigned char *needle, size_t m, int *esc)
{
    unsigned bad = 0;
    *esc = 0;
    if (n > LK_FOLD_SHORT || m > LK_FOLD_SHORT_NEEDLE)
        return lk_fold_find_long(s, n, needle, m, esc);
    /* most atoms: fold while comparing, no copy (memmem's setup would cost
     * more here); each start compares at most m bytes */
    for (size_t i = 0; i + m <= n; i++) {
        if (lk_fold1(s[i]) != needle[0])
            continue;
        size_t j = 1;
        while (j < m && lk_fold1(s[i + j]) == needle[j])
            j++;
        if (j == m)
            return 1;
    }
    for (size_t i = 0; i < n; i++)
        bad |= (s[i] < 0x20u) | (s[i] == 0x7fu);
    *esc = bad != 0;
    return 0;
}

/* memmem(h, n, nd, m) != NULL for the short texts of a plan: a first-byte
 * memchr and one memcmp per candidate, because glibc's memmem sets up a
 * two-way search first, which costs more than the whole search here.  At
 * most LK_FIND_SHORT * LK_FOLD_SHORT_NEEDLE byte compares; memmem beyond. */
#define LK_FIND_SHORT 512

static inline int lk_find(const unsigned char *h, size_t n, const unsigned char *nd, size_t m)
{
    if (m == 0)
        return 1;
    if (n < m)
        return 0;
    if (n > LK_FIND_SHORT || m > LK_FOLD_SHORT_NEEDLE)
        return memmem(h, n, nd, m) != NULL;
    const unsigned char *p = h, *last = h + (n - m);
    while (p <= last && (p = memchr(p, nd[0], (size_t)(last - p) + 1)) != NULL) {
        if (memcmp(p + 1, nd + 1, m - 1) == 0)
            return 1;
        p++;
    }
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* LUKHAS_ASCIIFOLD_H */
