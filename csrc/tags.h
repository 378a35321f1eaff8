/* Single-pass scanner for the safety-tag detectors (ASCII text only).
 *
 * The caller hands over the parts of one plan -- action, description and
 * every str params value, all ASCII -- and gets back, from one pass over
 * their lowercase space-join:
 *   - which term tables have a term in the action (substring semantics),
 *   - which model keywords occur in the joined text (they may span parts),
 *   - how many `https?://[^\s<>"]+` matches the joined text holds,
 *   - whether the action starts with a dangerous prefix,
 *   - per part: escalation / GDPR terms, and the exact outcome of the PII and
 *     account/routing digit patterns (written out as automata below: their
 *     regexes never need backtracking on ASCII, see tags.c).
 * Text is bytes: ASCII as is, and the binding maps every other character to
 * one of four stand-ins (LK_UWORD, LK_UDIGIT, LK_USPACE, LK_UOTHER) that no
 * term contains, so \b, \d and \s keep their Unicode meaning.  U+0130,
 * whose lowercase is "i" + U+0307, becomes the two bytes 'i' LK_UWORD (see
 * _set_part in _tags_c.pyx for why that is exact); the few characters that
 * would change the result otherwise (U+212A lowers to ASCII 'k', U+017F
 * matches 's' under IGNORECASE; NFKC removes both) send the plan to the
 * Cython/regex path.
 * No Python objects and no global state here.
 */
#ifndef LUKHAS_TAGS_H
#define LUKHAS_TAGS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* stand-ins for non-ASCII characters */
#define LK_UOTHER 0x80u /* neither word nor space */
#define LK_UWORD 0x81u  /* Unicode alphanumeric: a \w character */
#define LK_USPACE 0x82u /* Unicode whitespace: a \s character */
#define LK_UDIGIT 0x83u /* Unicode decimal digit: \d and \w, in no ASCII class */

/* term tables (bit per table) */
#define LK_T_PII_ACTION 0x01u
#define LK_T_FIN_ACTION 0x02u
#define LK_T_MODEL_ACTION 0x04u
#define LK_T_API 0x08u
#define LK_T_ESC 0x10u
#define LK_T_GDPR_ACTION 0x20u
#define LK_T_GDPR_TERM 0x40u

/* per-part flags */
#define LK_P_ESC 0x001u     /* an escalation term occurs in the part */
#define LK_P_GDPR 0x002u    /* a GDPR term occurs in the part */
#define LK_P_EMAIL 0x004u   /* PII email pattern */
#define LK_P_SSN 0x008u
#define LK_P_PHONE 0x010u
#define LK_P_CARD 0x020u
#define LK_P_ACCOUNT 0x040u /* \b\d{10,17}\b */
#define LK_P_ROUTING 0x080u /* \b\d{9}\b */

#define LK_MAX_TERMS 128
#define LK_MAX_TERM_LEN 24
#define LK_MAX_PREFIXES 16
#define LK_HASH_BITS 12
#define LK_GROUP_SIZE 16

/* Terms indexed by their (hashed) first trigram; built once by the binding. */
typedef struct {
    uint8_t bucket[1u << LK_HASH_BITS];            /* trigram hash -> group (0: none) */
    uint8_t group[256][LK_GROUP_SIZE];             /* term ids, 0xFF-terminated */
    int ngroups;
    int nterms;
    char term[LK_MAX_TERMS][LK_MAX_TERM_LEN];
    uint8_t term_len[LK_MAX_TERMS];
    uint32_t term_tables[LK_MAX_TERMS];            /* LK_T_* bits */
    int8_t term_kw[LK_MAX_TERMS];                  /* keyword index, or -1 */
    int nprefixes;
    char prefix[LK_MAX_PREFIXES][LK_MAX_TERM_LEN];
    uint8_t prefix_len[LK_MAX_PREFIXES];
} lk_terms;

typedef struct {
    const char *p; /* ASCII bytes (any case) */
    size_t n;
} lk_part;

typedef struct {
    uint32_t action_tables; /* LK_T_* bits found in part 0 */
    uint32_t keywords;      /* bit k: keyword k occurs in the joined text */
    uint32_t urls;          /* url pattern matches in the joined text */
    int dangerous;          /* part 0 starts with a dangerous prefix */
} lk_scan_result;

void lk_terms_init(lk_terms *t);
/* Add a term of `tables` (LK_T_* bits, may be 0) and keyword index `kw`
 * (-1: not a keyword).  A term added twice merges.  Returns 0, or -1 when a
 * limit is exceeded or the term is shorter than 3 or not lowercase ASCII. */
int lk_terms_add(lk_terms *t, const char *s, size_t n, uint32_t tables, int kw);
int lk_terms_add_prefix(lk_terms *t, const char *s, size_t n);

/* Scan parts[0..nparts) (part 0 = action, 1 = description, then values).
 * Digit/email flags are computed for parts >= `first_value`; the account and
 * routing patterns only when `want_accounts`.  `flags` receives one word per
 * part.  Returns 0, or -1 if memory for a long text cannot be allocated. */
int lk_scan(const lk_terms *t, const lk_part *parts, int nparts, int first_value, int want_accounts,
            lk_scan_result *res, uint32_t *flags);

/* Bit 1: the (at) rewrite may apply to this ASCII text; bit 2: the (dot) one. */
int lk_maybe_obfuscated(const char *s, size_t n);

/* Exposed for tests: the email pattern's outcome on one ASCII string.
 * Linear time (also on stand-in text, see LK_UWORD). */
int lk_has_email(const char *s, size_t n);

/* The reference normaliser's (at)/(dot) rewrite in one linear pass:
 * re.sub(r"(?i)\(w\)|\[w\]|\{w\}|<w>|\s+w\s+", repl, text) for the word
 * w = "at" (which 0) or "dot" (which 1), repl '@' or '.'.  `src` holds n
 * code units of `kind` bytes (1, 2 or 4: a CPython str's storage); `dst`
 * receives the result in the same kind (at most n units).  Returns the
 * result's length: n exactly when nothing matched (every match shrinks). */
size_t lk_obf_rewrite(const void *src, int kind, size_t n, void *dst, int which);

/* re's \s on str patterns (str.isspace()) for any code point. */
int lk_uni_space(uint32_t c);

#ifdef __cplusplus
}
#endif
#endif /* LUKHAS_TAGS_H */
