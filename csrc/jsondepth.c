/* Nesting depth of a JSON text (see jsondepth.h). */
#include "jsondepth.h"

#include <stdint.h>
#include <string.h>

enum { JD_OTHER = 0, JD_OPEN, JD_CLOSE, JD_QUOTE };

/* What the scan does with each byte. */
static const unsigned char jd_class[256] = {
    ['['] = JD_OPEN, ['{'] = JD_OPEN, [']'] = JD_CLOSE, ['}'] = JD_CLOSE, ['"'] = JD_QUOTE,
};

/* The number of '[' and '{' in p[0..n), string contents included; counting
 * stops at the end of the first 4 KiB block that takes it past `stop`.
 * '[' (0x5B) and '{' (0x7B) differ only in bit 0x20, so one compare finds
 * both, and the inner loop has no branch: the compiler vectorises it. */
static size_t jd_count_openers(const unsigned char *p, size_t n, size_t stop)
{
    size_t total = 0;
    while (n) {
        size_t m = n < 4096 ? n : 4096;
        uint32_t c = 0;
        for (size_t i = 0; i < m; i++)
            c += (uint32_t)((p[i] | 0x20) == '{');
        total += c;
        if (total > stop)
            break;
        p += m;
        n -= m;
    }
    return total;
}

/* p is just past an opening quote: returns the position just past the
 * closing quote (end if the string is not terminated).  A quote is escaped
 * when an odd run of backslashes precedes it; that run cannot reach back
 * before p (p[-1] is a quote), so each byte is looked at at most twice. */
static const unsigned char *jd_skip_string(const unsigned char *p, const unsigned char *end)
{
    for (;;) {
        const unsigned char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL)
            return end;
        const unsigned char *b = q;
        while (b > p && b[-1] == '\\')
            b--;
        if (((size_t)(q - b) & 1) == 0)
            return q + 1;
        p = q + 1;
    }
}

int lk_json_depth_exceeds(const char *text, size_t n, size_t limit)
{
    const unsigned char *p = (const unsigned char *)text;
    const unsigned char *end = p + n;
    size_t depth = 0;

    /* each level takes an opening and a closing byte: n <= 2 * limit + 1,
     * that is n / 2 <= limit, cannot nest deeper (no overflow this way) */
    if (n / 2 <= limit)
        return 0;
    /* nor can a text with at most `limit` opening brackets (the usual case;
     * brackets inside strings only make this count larger) */
    if (jd_count_openers(p, n, limit) <= limit)
        return 0;
    while (p < end) {
        switch (jd_class[*p++]) {
        case JD_OPEN:
            if (++depth > limit)
                return 1;
            break;
        case JD_CLOSE:
            if (depth)  /* (valid JSON never closes more than it opened) */
                depth--;
            break;
        case JD_QUOTE:
            p = jd_skip_string(p, end);
            break;
        default:
            break;
        }
    }
    return 0;
}
