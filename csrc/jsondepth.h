/* Nesting depth of a JSON text, without parsing it: the request body check
 * the service runs after its JSON parser has accepted a body (so that a body
 * nested deeper than the configured limit is refused before any library
 * call sees it).  No Python here. */
#ifndef LUKHAS_JSONDEPTH_H
#define LUKHAS_JSONDEPTH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the valid JSON text p[0..n) nests arrays/objects more than `limit`
 * levels deep, else 0.  Brackets inside string literals do not count (escaped
 * quotes are honoured).  For text that is not valid JSON the answer is
 * unspecified, but the scan still ends: one pass, O(n) time, O(1) memory, no
 * recursion, never reads outside p[0..n). */
int lk_json_depth_exceeds(const char *p, size_t n, size_t limit);

#ifdef __cplusplus
}
#endif
#endif /* LUKHAS_JSONDEPTH_H */
