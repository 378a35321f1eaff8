/* Single-pass safety-tag scanner; see tags.h.
 *
 * Why the regexes can be written as straight-line checks: in the digit
 * patterns every optional separator (`-?`, `[- ]?`) is followed by a digit,
 * and no separator is a digit, so taking the separator when present is the
 * only choice that can succeed -- the regex engine's backtracking never
 * finds a different match.  Word characters for \b are [A-Za-z0-9_] plus
 * the stand-ins LK_UWORD/LK_UDIGIT (Unicode's definition, with every other
 * character folded into a stand-in); the string's ends count as non-word. */
#include "tags.h"

#include <stdlib.h>
#include <string.h>

#define LK_STACK_TEXT 2048

static inline int lk_is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int lk_is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static inline int lk_is_aword(unsigned char c) { return lk_is_digit(c) || lk_is_lower(c) || (c >= 'A' && c <= 'Z') || c == '_'; }
/* \b's word characters: ASCII [A-Za-z0-9_] plus the stand-ins for any other
 * Unicode alphanumeric (see LK_UWORD and LK_UDIGIT in tags.h) */
static inline int lk_is_word(unsigned char c) { return lk_is_aword(c) || c == LK_UWORD || c == LK_UDIGIT; }
/* re's \d on str patterns: ASCII digits plus the stand-in for other decimal
 * digits (the email classes' [0-9] stays ASCII: lk_is_digit) */
static inline int lk_is_rdigit(unsigned char c) { return lk_is_digit(c) || c == LK_UDIGIT; }
static inline unsigned char lk_lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* re's \s on str patterns: ASCII \t \n \v \f \r, 0x1C-0x1F and space, plus
 * the stand-in for non-ASCII whitespace */
static inline int lk_is_space(unsigned char c) { return (c >= 9 && c <= 13) || (c >= 28 && c <= 32) || c == LK_USPACE; }

static inline int lk_url_stop(unsigned char c) { return lk_is_space(c) || c == '<' || c == '>' || c == '"'; }

static inline unsigned lk_hash3(unsigned char a, unsigned char b, unsigned char c)
{
    unsigned h = (unsigned)a * 0x9E5u + (unsigned)b * 0x3Bu + (unsigned)c;
    return (h ^ (h >> LK_HASH_BITS)) & ((1u << LK_HASH_BITS) - 1u);
}

void lk_terms_init(lk_terms *t)
{
    memset(t, 0, sizeof(*t));
    memset(t->group, 0xFF, sizeof(t->group));
    t->ngroups = 1; /* group 0 means "no terms" */
}

int lk_terms_add(lk_terms *t, const char *s, size_t n, uint32_t tables, int kw)
{
    size_t i;
    int id, g, k;
    if (n < 3 || n >= LK_MAX_TERM_LEN)
        return -1;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 128 || ((unsigned char)s[i] >= 'A' && (unsigned char)s[i] <= 'Z'))
            return -1;
    for (id = 0; id < t->nterms; id++) {
        if (t->term_len[id] == n && memcmp(t->term[id], s, n) == 0) {
            t->term_tables[id] |= tables;
            if (kw >= 0)
                t->term_kw[id] = (int8_t)kw;
            return 0;
        }
    }
    if (t->nterms >= LK_MAX_TERMS || kw >= 32)
        return -1;
    id = t->nterms++;
    memcpy(t->term[id], s, n);
    t->term_len[id] = (uint8_t)n;
    t->term_tables[id] = tables;
    t->term_kw[id] = (int8_t)kw;
    unsigned h = lk_hash3((unsigned char)s[0], (unsigned char)s[1], (unsigned char)s[2]);
    g = t->bucket[h];
    if (g == 0) {
        if (t->ngroups >= 256)
            return -1;
        g = t->ngroups++;
        t->bucket[h] = (uint8_t)g;
    }
    for (k = 0; k < LK_GROUP_SIZE - 1; k++) {
        if (t->group[g][k] == 0xFF) {
            t->group[g][k] = (uint8_t)id;
            return 0;
        }
    }
    return -1;
}

int lk_terms_add_prefix(lk_terms *t, const char *s, size_t n)
{
    if (t->nprefixes >= LK_MAX_PREFIXES || n == 0 || n >= LK_MAX_TERM_LEN)
        return -1;
    memcpy(t->prefix[t->nprefixes], s, n);
    t->prefix_len[t->nprefixes++] = (uint8_t)n;
    return 0;
}

/* --- the PII / account digit patterns on [s, e) of a lowercase buffer --- */

static inline int lk_word_at(const unsigned char *b, size_t s, size_t e, size_t i)
{
    return i >= s && i < e && lk_is_word(b[i]);
}

/* `\b(\d{g0})(sep?\d{g1})...\b` starting at i (i is a digit preceded by a non-word). */
static int lk_digit_groups(const unsigned char *b, size_t i, size_t e, const int *g, int ng, const char *seps)
{
    int k, d;
    for (k = 0; k < ng; k++) {
        if (k > 0 && i < e && strchr(seps, b[i]) != NULL && b[i] != 0)
            i++;
        for (d = 0; d < g[k]; d++, i++)
            if (i >= e || !lk_is_rdigit(b[i]))
                return 0;
    }
    return i >= e || !lk_is_word(b[i]);
}

static const int LK_SSN[] = {3, 2, 4};
static const int LK_PHONE[] = {3, 3, 4};
static const int LK_CARD[] = {4, 4, 4, 4};

static uint32_t lk_digit_flags(const unsigned char *b, size_t s, size_t e, int want_accounts)
{
    uint32_t f = 0;
    size_t i, j;
    for (i = s; i < e; i++) {
        if (!lk_is_rdigit(b[i]) || lk_word_at(b, s, e, i - 1))
            continue; /* a match starts at a digit after a \b */
        if (!(f & LK_P_SSN) && lk_digit_groups(b, i, e, LK_SSN, 3, "-"))
            f |= LK_P_SSN;
        if (!(f & LK_P_PHONE) && lk_digit_groups(b, i, e, LK_PHONE, 3, "-"))
            f |= LK_P_PHONE;
        if (!(f & LK_P_CARD) && lk_digit_groups(b, i, e, LK_CARD, 4, "- "))
            f |= LK_P_CARD;
        if (want_accounts) {
            /* \b\d{10,17}\b and \b\d{9}\b: a whole run of digits ending in a non-word */
            for (j = i; j < e && lk_is_rdigit(b[j]); j++)
                ;
            if (j >= e || !lk_is_word(b[j])) { /* (j < e here is never a digit) */
                if (j - i >= 10 && j - i <= 17)
                    f |= LK_P_ACCOUNT;
                if (j - i == 9)
                    f |= LK_P_ROUTING;
            }
        }
    }
    return f;
}

static inline int lk_in_local(unsigned char c)
{
    return lk_is_aword(c) || c == '.' || c == '%' || c == '+' || c == '-';
}
static inline int lk_in_domain(unsigned char c) { return lk_is_digit(c) || lk_is_lower(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-'; }
static inline int lk_in_tld(unsigned char c) { return lk_is_lower(c) || (c >= 'A' && c <= 'Z') || c == '|'; }

/* `\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b` anywhere in [s, e).
 * Local part: a start inside the run of local chars that ends just before
 * '@', where \b holds.  Domain: some '.' inside the domain run, followed by
 * >= 2 TLD chars and a \b (the TLD class holds '|', the domain class not). */
static int lk_email_in(const unsigned char *b, size_t s, size_t e)
{
    size_t at, r, w, d, j, k, t;
    for (at = s; at < e; at++) {
        if (b[at] != '@')
            continue;
        r = at;
        while (r > s && lk_in_local(b[r - 1]))
            r--;
        for (w = r; w < at && lk_word_at(b, s, e, w - 1) == lk_word_at(b, s, e, w); w++)
            ;
        if (w >= at)
            continue;
        for (d = at + 1; d < e && lk_in_domain(b[d]); d++)
            ;
        for (j = at + 2; j < d; j++) {
            if (b[j] != '.')
                continue;
            for (t = j + 1; t < e && lk_in_tld(b[t]); t++)
                ;
            for (k = j + 3; k <= t; k++)
                if (lk_word_at(b, s, e, k - 1) != lk_word_at(b, s, e, k))
                    return 1;
        }
    }
    return 0;
}

int lk_has_email(const char *s, size_t n) { return lk_email_in((const unsigned char *)s, 0, n); }

/* findall count of `https?://[^\s<>"]+` (case-insensitive) on lowercase text */
static uint32_t lk_count_urls(const unsigned char *b, size_t n)
{
    uint32_t count = 0;
    size_t i = 0, q;
    while (i + 8 <= n) { /* the shortest match is "http://x" */
        if (b[i] == 'h' && b[i + 1] == 't' && b[i + 2] == 't' && b[i + 3] == 'p') {
            q = i + 4;
            if (b[q] == 's')
                q++; /* `s?` then "://": skipping a present 's' cannot match */
            if (q + 3 < n && b[q] == ':' && b[q + 1] == '/' && b[q + 2] == '/' && !lk_url_stop(b[q + 3])) {
                for (q += 3; q < n && !lk_url_stop(b[q]); q++)
                    ;
                count++;
                i = q; /* findall resumes after the match */
                continue;
            }
        }
        i++;
    }
    return count;
}

int lk_scan(const lk_terms *t, const lk_part *parts, int nparts, int first_value, int want_accounts,
            lk_scan_result *res, uint32_t *flags)
{
    unsigned char stack[LK_STACK_TEXT];
    unsigned char *buf = stack;
    size_t total = 0, pos = 0, i, n, next_start;
    int p, cur, k, has_at = 0, has_colon = 0;

    for (p = 0; p < nparts; p++)
        total += parts[p].n + 1;
    if (total > sizeof(stack)) {
        buf = (unsigned char *)malloc(total);
        if (buf == NULL)
            return -1;
    }
    /* lowercase space-join (str.lower() on ASCII), one trailing space dropped */
    for (p = 0; p < nparts; p++) {
        const unsigned char *src = (const unsigned char *)parts[p].p;
        for (i = 0; i < parts[p].n; i++)
            buf[pos++] = lk_lower(src[i]);
        if (p + 1 < nparts)
            buf[pos++] = ' ';
        flags[p] = 0;
    }
    n = pos;
    res->action_tables = 0;
    res->keywords = 0;
    res->urls = 0;
    res->dangerous = 0;

    /* one pass: trigram index -> exact term checks; part bookkeeping */
    cur = 0;
    next_start = nparts > 1 ? parts[0].n + 1 : (size_t)-1;
    for (i = 0; i + 2 < n; i++) {
        while (i >= next_start) {
            cur++;
            next_start = cur + 1 < nparts ? next_start + parts[cur].n + 1 : (size_t)-1;
        }
        unsigned char c = buf[i];
        has_at |= c == '@';
        has_colon |= c == ':';
        int g = t->bucket[lk_hash3(c, buf[i + 1], buf[i + 2])];
        if (!g)
            continue;
        for (k = 0; k < LK_GROUP_SIZE && t->group[g][k] != 0xFF; k++) {
            int id = t->group[g][k];
            size_t len = t->term_len[id];
            if (i + len > n || memcmp(buf + i, t->term[id], len) != 0)
                continue;
            uint32_t tb = t->term_tables[id];
            if (cur == 0)
                res->action_tables |= tb;
            if (tb & LK_T_ESC)
                flags[cur] |= LK_P_ESC;
            if (tb & LK_T_GDPR_TERM)
                flags[cur] |= LK_P_GDPR;
            if (t->term_kw[id] >= 0)
                res->keywords |= 1u << t->term_kw[id];
        }
    }
    for (; i < n; i++) {
        has_at |= buf[i] == '@';
        has_colon |= buf[i] == ':';
    }

    if (nparts > 0) {
        for (k = 0; k < t->nprefixes; k++) {
            if (parts[0].n >= t->prefix_len[k] && memcmp(buf, t->prefix[k], t->prefix_len[k]) == 0) {
                res->dangerous = 1;
                break;
            }
        }
    }
    if (has_colon)
        res->urls = lk_count_urls(buf, n);

    /* per value: the digit and email patterns, only where they can match */
    pos = 0;
    for (p = 0; p < nparts; p++) {
        size_t s = pos, e = pos + parts[p].n, digits = 0;
        pos = e + 1;
        if (p < first_value)
            continue;
        for (i = s; i < e; i++)
            digits += lk_is_rdigit(buf[i]);
        if (digits >= 9)
            flags[p] |= lk_digit_flags(buf, s, e, want_accounts);
        if (has_at && memchr(buf + s, '@', e - s) != NULL && lk_email_in(buf, s, e))
            flags[p] |= LK_P_EMAIL;
    }
    if (buf != stack)
        free(buf);
    return 0;
}

/* Could `\(at\)|\[at\]|\{at\}|<at>|\s+at\s+` (bit 1) or the same with `dot`
 * (bit 2) match this ASCII text, case-insensitively?  A cheap superset test
 * (the word bracketed on its left, or between whitespace) so that the usual
 * text skips both regex substitutions and keeps its own object. */
/* bytes after which a rewrite can start: ( [ { < and re's ASCII \s */
static const uint8_t lk_opener[256] = {
    ['('] = 1, ['['] = 1, ['{'] = 1, ['<'] = 1, ['\t'] = 2, ['\n'] = 2, [11] = 2, [12] = 2, ['\r'] = 2,
    [28] = 2, [29] = 2, [30] = 2, [31] = 2, [' '] = 2,
};

int lk_maybe_obfuscated(const char *s, size_t n)
{
    const unsigned char *b = (const unsigned char *)s;
    int out = 0;
    size_t i, m;
    for (i = 1; i + 2 <= n; i++) {
        uint8_t o = lk_opener[b[i - 1]];
        if (!o) /* the common case: inside a word */
            continue;
        unsigned char c0 = lk_lower(b[i]), c1 = lk_lower(b[i + 1]);
        if (c0 == 'a' && c1 == 't') {
            m = i + 2;
        } else if (c0 == 'd' && c1 == 'o' && i + 2 < n && lk_lower(b[i + 2]) == 't') {
            m = i + 3;
        } else {
            continue;
        }
        if (m >= n)
            continue;
        if (o == 1 || lk_is_space(b[m]))
            out |= (m == i + 2) ? 1 : 2;
        if (out == 3)
            break;
    }
    return out;
}

/* --- the (at)/(dot) rewrite ------------------------------------------------------
 * The regex's whitespace alternative `\s+w\s+` restarts at every character
 * of a whitespace run and rescans the rest of the run each time: quadratic
 * on long runs.  Only a run's first character can start a match (from
 * inside the run the greedy `\s+` reaches the same end and sees the same
 * continuation), so each run is scanned once: either it is followed by the
 * word and more whitespace (one match, through the end of that next run) or
 * it is copied as is.  Bracketed forms start with a non-space character, so
 * the alternatives never compete for a position. */

/* inline in the rewrite loops below (a call per character through the PLT
 * was a tenth of a 1 MiB plan's enrichment); lk_uni_space exports it */
static inline int lk_uni_space_inl(uint32_t c)
{
    if (c < 128)
        return (c >= 9 && c <= 13) || (c >= 28 && c <= 32);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int lk_uni_space(uint32_t c) { return lk_uni_space_inl(c); }

static inline uint32_t lk_lower32(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32u : c; }

/* (?i) on the ASCII letters of "at"/"dot" matches only their two ASCII cases */
#define LK_DEFINE_OBF(NAME, T)                                                                          \
    static size_t NAME(const T *s, size_t n, T *out, const char *w, size_t m, T repl)                   \
    {                                                                                                   \
        size_t i = 0, o = 0, j, k, t;                                                                   \
        while (i < n) {                                                                                 \
            uint32_t c = s[i], close;                                                                   \
            close = c == '(' ? ')' : c == '[' ? ']' : c == '{' ? '}' : c == '<' ? '>' : 0;              \
            if (close && i + m + 1 < n && s[i + m + 1] == close) {                                      \
                for (t = 0; t < m && lk_lower32(s[i + 1 + t]) == (unsigned char)w[t]; t++)             \
                    ;                                                                                   \
                if (t == m) {                                                                           \
                    out[o++] = repl;                                                                    \
                    i += m + 2;                                                                         \
                    continue;                                                                           \
                }                                                                                       \
            }                                                                                           \
            if (!lk_uni_space_inl(c)) {                                                                     \
                out[o++] = s[i++];                                                                      \
                continue;                                                                               \
            }                                                                                           \
            for (j = i + 1; j < n && lk_uni_space_inl(s[j]); j++)                                           \
                ;                                                                                       \
            if (j + m < n && lk_uni_space_inl(s[j + m])) {                                                  \
                for (t = 0; t < m && lk_lower32(s[j + t]) == (unsigned char)w[t]; t++)                 \
                    ;                                                                                   \
                if (t == m) {                                                                           \
                    for (k = j + m + 1; k < n && lk_uni_space_inl(s[k]); k++)                               \
                        ;                                                                               \
                    out[o++] = repl;                                                                    \
                    i = k;                                                                              \
                    continue;                                                                           \
                }                                                                                       \
            }                                                                                           \
            while (i < j) /* no match starts in this run: copy it, go on after it */                   \
                out[o++] = s[i++];                                                                      \
        }                                                                                               \
        return o;                                                                                       \
    }

LK_DEFINE_OBF(lk_obf_u8, uint8_t)
LK_DEFINE_OBF(lk_obf_u16, uint16_t)
LK_DEFINE_OBF(lk_obf_u32, uint32_t)

size_t lk_obf_rewrite(const void *src, int kind, size_t n, void *dst, int which)
{
    const char *w = which ? "dot" : "at";
    size_t m = which ? 3 : 2;
    char repl = which ? '.' : '@';
    if (kind == 1)
        return lk_obf_u8((const uint8_t *)src, n, (uint8_t *)dst, w, m, (uint8_t)repl);
    if (kind == 2)
        return lk_obf_u16((const uint16_t *)src, n, (uint16_t *)dst, w, m, (uint16_t)repl);
    return lk_obf_u32((const uint32_t *)src, n, (uint32_t *)dst, w, m, (uint32_t)repl);
}
