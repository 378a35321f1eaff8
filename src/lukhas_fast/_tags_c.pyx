"""C tier of the safety-tags family (Cython-compiled, C scanner in csrc/tags.c).

Same results as :mod:`lukhas_fast._tags_py` (the reference's algorithm),
computed differently:

* normalisation: ASCII strings skip NFKC, zero-width removal and homoglyph
  folding (identities on ASCII) and run the ``(at)``/``(dot)`` rewrites only
  when a C screen says they can apply; non-ASCII strings skip the passes
  that cannot apply;
* detection: one C pass over the plan's space-joined text finds every term
  of every table (trigram-indexed), the digit/email patterns and the URL
  count; the six detectors' tags are assembled from that (plans the C
  scanner cannot represent exactly take a Cython fallback scanner);
* cache key: one bytes serialisation of the normalised plan and context,
  equal exactly when the reference's key text is (no ``str()``, no SHA-256),
  built without the normalised copy, which is only made on a miss;
* ``enrich_plan`` compiled, tags and results built without dataclass
  ``__init__`` calls.
"""

import builtins
import logging
from hashlib import blake2b as _blake2b
import re
import sys
import unicodedata

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyBUF_READ
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.method cimport PyMethod_Check, PyMethod_GET_FUNCTION
from libc.stdint cimport uint32_t, int8_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    void *PyUnicode_DATA(object)
    int PyUnicode_KIND(object)
    Py_UCS4 Py_UNICODE_TOLOWER(Py_UCS4)
    int PyUnicode_Compare(object, object) except? -1
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    Py_ssize_t PY_SSIZE_T_MAX
    str PyUnicode_FromKindAndData(int kind, const void *buffer, Py_ssize_t size)

cdef extern from *:
    """
    /* object.__new__(tp) without the call machinery of tp_new_wrapper (an
       argument tuple, the "is it safe" checks): what object() does itself. */
    static PyObject *lk_empty_args = NULL;
    static PyObject *lk_object_new(PyObject *tp) {
        if (lk_empty_args == NULL && (lk_empty_args = PyTuple_New(0)) == NULL)
            return NULL;
        return PyBaseObject_Type.tp_new((PyTypeObject *)tp, lk_empty_args, NULL);
    }
    """
    object lk_object_new(object tp)

cdef extern from "tags.h":
    enum:
        LK_T_PII_ACTION
        LK_T_FIN_ACTION
        LK_T_MODEL_ACTION
        LK_T_API
        LK_T_ESC
        LK_T_GDPR_ACTION
        LK_T_GDPR_TERM
        LK_P_ESC
        LK_P_GDPR
        LK_P_EMAIL
        LK_P_SSN
        LK_P_PHONE
        LK_P_CARD
        LK_P_ACCOUNT
        LK_P_ROUTING
        LK_UOTHER
        LK_UWORD
        LK_USPACE
        LK_UDIGIT
    ctypedef struct lk_terms:
        pass
    ctypedef struct lk_part:
        const char *p
        size_t n
    ctypedef struct lk_scan_result:
        uint32_t action_tables
        uint32_t keywords
        uint32_t urls
        int dangerous
    void lk_terms_init(lk_terms *t)
    int lk_terms_add(lk_terms *t, const char *s, size_t n, uint32_t tables, int kw)
    int lk_terms_add_prefix(lk_terms *t, const char *s, size_t n)
    int lk_scan(const lk_terms *t, const lk_part *parts, int nparts, int first_value, int want_accounts,
                lk_scan_result *res, uint32_t *flags) nogil
    int lk_has_email(const char *s, size_t n) nogil
    size_t lk_obf_rewrite(const void *src, int kind, size_t n, void *dst, int which) nogil
    int lk_maybe_obfuscated(const char *s, size_t n) nogil

from lukhas_fast import _tags_py as _py
from lukhas_fast._tags_py import (  # noqa: F401  (re-exported surface)
    ADVANCED_TAGS_ENABLED, METRICS_AVAILABLE, SAFETY_TAGS_CONFIDENCE, SAFETY_TAGS_DETECTION,
    SAFETY_TAGS_ENRICHMENT, SAFETY_TAGS_EVALUATION_TIME, GUARDIAN_ACTIONS_EXEMPLARS,
    SafetyTagCategory, SafetyTag, TaggedPlan, SafetyTagDetector, PIIDetector, FinancialDetector,
    ModelSwitchDetector, ExternalCallDetector, PrivilegeEscalationDetector, GDPRDetector,
    preprocess_text, canonical_domain,
)

__all__ = list(_py.__all__)


def backend_details():
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"scanner": "C single-pass term/pattern scanner (csrc/tags.c; non-ASCII values transcoded to stand-in "
                       "bytes), Cython fused detectors for the rare plans it cannot represent; ASCII normalisation "
                       "fast path; structural cache keys"}


# --- term screening ---------------------------------------------------------------
# Every term of every table is ASCII and at least three characters long, so a
# term can only occur where its first trigram occurs.  One pass over a
# lowered string ORs together the tables whose (hashed) first trigrams it
# contains; only the tables that hit get the exact substring checks the
# reference does.  A hash collision only costs a needless exact check.
# (Regex alternations were 5-10x slower; bigrams hit too often on English.)

cdef enum:
    T_PII = 1
    T_FIN = 2
    T_MODA = 4
    T_API = 8
    T_ESC = 16
    T_GDPRA = 32
    T_GDPRT = 64
    T_KW = 128

cdef enum:
    TRI_BITS = 16
    TRI_MASK = 65535

cdef unsigned char _TRI[65536]


cdef inline unsigned int _tri(Py_UCS4 a, Py_UCS4 b, Py_UCS4 c) noexcept nogil:
    cdef unsigned int h = <unsigned int>a * 40503 + <unsigned int>b * 131 + <unsigned int>c
    return (h ^ (h >> 9)) & TRI_MASK


cdef tuple _PII_ACTION = _py.PII_ACTION_TERMS
cdef tuple _FIN_ACTION = _py.FINANCIAL_ACTIONS
cdef tuple _MODEL_ACTION = _py.MODEL_ACTIONS
cdef tuple _API_ACTION = _py.API_TERMS
cdef tuple _ESC = _py.ESCALATION_TERMS
cdef tuple _GDPR_ACTION = _py.GDPR_ACTIONS
cdef tuple _GDPR_TERM = _py.GDPR_TERMS


def _build_screen():
    cdef int i
    for i in range(65536):
        _TRI[i] = 0
    for table, bit in ((_PII_ACTION, T_PII), (_FIN_ACTION, T_FIN), (_MODEL_ACTION, T_MODA), (_API_ACTION, T_API),
                       (_ESC, T_ESC), (_GDPR_ACTION, T_GDPRA), (_GDPR_TERM, T_GDPRT), (_py.MODEL_KEYWORDS, T_KW)):
        for term in table:
            assert term.isascii() and len(term) >= 3, term
            _TRI[_tri(ord(term[0]), ord(term[1]), ord(term[2]))] |= bit


_build_screen()


cdef unsigned int _screen(str s):
    """Tables whose terms may occur in the (lowered) string."""
    cdef Py_ssize_t i, n = len(s)
    cdef Py_UCS4 a, b, c
    cdef unsigned int mask = 0
    if n < 3:
        return 0
    a = s[0]
    b = s[1]
    for i in range(2, n):
        c = s[i]
        mask |= _TRI[_tri(a, b, c)]
        a = b
        b = c
    return mask


cdef inline bint _any_in(tuple terms, str s):
    for t in terms:
        if t in s:
            return True
    return False


cdef bint _has_email(str v):
    """Same as ``EMAIL_RE.search(v)``, in linear time: the C matcher of the
    fast path (csrc/tags.c), on the text with every non-ASCII character
    replaced by a stand-in byte (\\w or not: all the pattern can tell apart,
    as its classes are ASCII)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(v), i
    cdef unsigned char *buf
    cdef Py_UCS4 ch
    cdef bint found
    if PyUnicode_IS_ASCII(v):
        return lk_has_email(<const char *>PyUnicode_DATA(v), n)
    buf = <unsigned char *>malloc(n if n > 0 else 1)
    if buf == NULL:
        raise MemoryError()
    i = 0
    for ch in v:
        buf[i] = <unsigned char>ch if ch < 128 else (LK_UWORD if ch.isalnum() else LK_UOTHER)
        i += 1
    with nogil:
        found = lk_has_email(<const char *>buf, n)
    free(buf)
    return found


cdef str _obf_sub(str s, int which):
    """``_AT_RE.sub("@", s)`` (which 0) or ``_DOT_RE.sub(".", s)`` (which 1) in
    one linear C pass; ``s`` itself when nothing matches."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s), m
    cdef int kind = PyUnicode_KIND(s)
    cdef const void *src = PyUnicode_DATA(s)
    cdef void *buf = malloc(n * kind if n > 0 else 1)
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            m = lk_obf_rewrite(src, kind, n, buf, which)
        if m == n:
            return s
        return PyUnicode_FromKindAndData(kind, buf, m)
    finally:
        free(buf)


cdef Py_ssize_t _digits(str s):
    """How many characters re's \\d matches (Unicode decimal digits).  The
    digit patterns need at least 9 (SSN, routing), 10 (phone, account) or
    16 (card) of them, so most values skip the regexes entirely."""
    cdef Py_UCS4 ch
    cdef Py_ssize_t n = 0
    for ch in s:
        if ch < 128:
            if 48 <= ch <= 57:
                n += 1
        elif ch.isdecimal():
            n += 1
    return n
cdef tuple _KEYWORDS = _py.MODEL_KEYWORDS
cdef tuple _PREFIXES = _py.DANGEROUS_PREFIXES
cdef frozenset _PII_FIELDS = _py.PII_FIELDS
cdef frozenset _FIN_FIELDS = _py.FINANCIAL_FIELDS
cdef frozenset _CURRENCY = _py.CURRENCY_KEYS
cdef frozenset _MODEL_PARAMS = _py.MODEL_PARAMS
cdef frozenset _URL_KEYS = _py.URL_KEYS
cdef object _SSN = _py.SSN_RE
cdef object _PHONE = _py.PHONE_RE
cdef object _CARD = _py.CARD_RE
cdef object _ACCOUNT = _py.ACCOUNT_RE
cdef object _ROUTING = _py.ROUTING_RE
cdef object _URL = _py.URL_RE
cdef object _ZW = _py._ZERO_WIDTH
cdef object _HG = _py._HOMOGLYPHS
cdef object _Tag = SafetyTag
cdef object _isinstance = builtins.isinstance
cdef tuple _NUMBER = (int, float)
DEF _KEY_STACK = 512
DEF _KEY_INLINE = 1024  # longer key encodings are replaced by a digest (see _cache_key)
DEF _MAX_DEPTH = 1000


cdef bint _maybe(str low, str w):
    """Could the (at)/(dot) rewrite apply?  It needs ``w`` bracketed or between
    whitespace: a cheap screen before the regex (a superset of its matches)."""
    cdef Py_ssize_t i = low.find(w), n = len(low), m = len(w)
    cdef Py_UCS4 p, q
    while i >= 0:
        if i > 0 and i + m < n:
            p = low[i - 1]
            q = low[i + m]
            if (p == u'(' or p == u'[' or p == u'{' or p == u'<') or (p.isspace() and q.isspace()):
                return True
        i = low.find(w, i + 1)
    return False


# NFKC and the folding passes cost about a microsecond per non-ASCII string,
# and plans repeat their strings (a cache hit re-keys the same texts): a
# bounded memo of short non-ASCII strings (at most _MEMO_ENTRIES x
# _MEMO_MAX_LEN characters), dropped whole when full.  Normalising is a pure
# function of the text, so the memo never changes a result; dict operations
# are atomic under the GIL, so threads may share it.
DEF _MEMO_ENTRIES = 4096
DEF _MEMO_MAX_LEN = 256
cdef dict _NORM_MEMO = {}


cpdef object fast_normalize_text(object text):
    """``preprocess_text`` with the ASCII fast path (same result)."""
    cdef str s
    if type(text) is not str:
        if not isinstance(text, str):
            return str(text)
        text = str(text)
    s = <str>text
    cdef int m
    cdef PyObject *hit
    if PyUnicode_IS_ASCII(s):
        # NFKC, zero-width removal and homoglyph folding are identities on
        # ASCII; the (at)/(dot) rewrites run only if a cheap screen says so
        m = lk_maybe_obfuscated(<const char *>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s))
        if m == 0:
            return s
        if m & 1:
            s = _obf_sub(s, 0)
            m = lk_maybe_obfuscated(<const char *>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s))
        if m & 2:
            s = _obf_sub(s, 1)
        return s
    hit = PyDict_GetItemWithError(_NORM_MEMO, s)
    if hit != NULL:
        return <object>hit
    out = _normalize_unicode(s)
    if PyUnicode_GET_LENGTH(s) <= _MEMO_MAX_LEN:
        if len(_NORM_MEMO) >= _MEMO_ENTRIES:
            _NORM_MEMO.clear()
        _NORM_MEMO[s] = out
    return out


cdef str _normalize_unicode(str s):
    s = _nfkc(s)
    if PyUnicode_IS_ASCII(s):  # e.g. fullwidth letters: the ASCII path, from here
        return fast_normalize_text(s)
    # zero-width removal and homoglyph folding only if the text holds such
    # characters, the (at)/(dot) rewrites only where a screen says they may hit
    m = _unicode_marks(s)
    if m & 4:
        s = s.translate(_ZW)
        m = _unicode_marks(s) | (m & 8)
    if m & 1:
        s = _obf_sub(s, 0)
        m = (_unicode_marks(s) & ~8) | (m & 8)
    if m & 2:
        s = _obf_sub(s, 1)
    if m & 8:
        s = s.translate(_HG)
    return s


cdef inline str _nfkc(str s):
    return unicodedata.normalize("NFKC", s)


cdef inline bint _at_dot_opener(Py_UCS4 c):
    return c == u'(' or c == u'[' or c == u'{' or c == u'<' or c.isspace()


cdef int _unicode_marks(str s):
    """Bit 1/2: the (at)/(dot) regex may match (a superset: the word after an
    opening bracket or whitespace); 4: a zero-width character to delete;
    8: a homoglyph to fold."""
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(s)
    cdef Py_UCS4 c, c0, c1
    cdef int out = 0
    for i in range(n):
        c = s[i]
        if c >= 0x3b1:
            if (c == 0x200b or c == 0x200c or c == 0x200d or c == 0x2060 or c == 0xfeff or c == 0x180e):
                out |= 4
            elif (c == 0x430 or c == 0x43e or c == 0x435 or c == 0x440 or c == 0x441 or c == 0x445 or c == 0x443
                  or c == 0x3bf or c == 0x3b1 or c == 0x217c or c == 0x2160):
                out |= 8
        if i + 2 < n and _at_dot_opener(c):
            c0 = Py_UNICODE_TOLOWER(s[i + 1])
            c1 = Py_UNICODE_TOLOWER(s[i + 2])
            if c0 == u'a' and c1 == u't':
                out |= 1
            elif c0 == u'd' and c1 == u'o':
                out |= 2
    return out


cdef inline object _norm_str(object v, dict memo):
    """``fast_normalize_text(v)``, or its result already found by the cache key (see _Buf.memo)."""
    cdef PyObject *hit
    if memo is not None:
        hit = PyDict_GetItemWithError(memo, id(v))
        if hit != NULL and (<tuple>hit)[0] is v:
            return (<tuple>hit)[1]
    return fast_normalize_text(v)


cdef object _norm_value(object v, int depth, dict memo):
    t = type(v)
    if t is str:
        return _norm_str(v, memo)
    if t is int or t is float or t is bool or v is None:
        return v
    if isinstance(v, str):
        return _norm_str(v, memo)
    if isinstance(v, dict):
        return _norm_dict(v, depth + 1, memo)
    if isinstance(v, list):
        return [_norm_str(x, memo) if isinstance(x, str) else _norm_dict(x, depth + 1, memo) if isinstance(x, dict)
                else x for x in v]
    return v


cdef dict _norm_dict(object d, int depth=0, dict memo=None):
    cdef dict out = {}
    if depth > _MAX_DEPTH:  # C recursion has no interpreter guard
        raise RecursionError("maximum nesting depth exceeded while normalising the plan")
    for k, v in d.items():
        out[k] = _norm_value(v, depth, memo)
    return out


# --- cache keys ---------------------------------------------------------------------
# The reference keys its cache by SHA-256 of str(sorted(plan pairs)) + "_" +
# str(sorted(context pairs)): two calls share an entry exactly when those
# texts are equal.  Here the same structure is serialised into one bytes
# object (bytes cache their hash; equality is a memcmp): every value is a
# tag byte plus a self-delimiting body, so the encoding is injective, and
# values that render the same repr encode the same:
#   's' kind len data   str (CPython strings are canonical in kind)
#   'i' int64           int that fits; larger ints use 'r' + repr
#   'f' double          finite non-zero float (equal exactly when the
#                       shortest round-trip reprs are); 0.0, -0.0, inf, nan
#                       use 'r' + repr
#   'b' byte, 'n'       bool, None
#   'd' count k v ...   dict in insertion order (keys never normalised)
#   'l'/'t' count ...   list / tuple
#   'r' str             repr of anything else (subclasses included)
# The top level is 'P' + the sorted plan pairs + 'C' + the sorted context
# pairs (a non-str top-level key is 'k' + its repr).  With `norm`, a value
# is encoded as its normalised form would be (str -> preprocess_text, dicts
# recursed, lists rebuilt), without building the normalised copy.



cdef struct _Buf:
    char *p
    Py_ssize_t n
    Py_ssize_t cap
    char *stack
    # Once the encoding outgrows _KEY_INLINE it can only end as a digest, so
    # from then on it is streamed into a BLAKE2b hasher (owned reference)
    # instead of being kept whole: large strings are hashed in place, and the
    # buffer never grows past a few KiB (the key of a 1 MB emoji plan no
    # longer builds a 4 MB copy first).  The digest is the same.
    PyObject *hasher
    # With `memo` set, normalised forms of long strings (a dict {id(s): (s,
    # normalised)}, owned reference, created on first use), so that the
    # normalised copy made on a miss does not normalise them again.
    bint want_memo
    PyObject *memo


cdef int _spill(_Buf *b) except -1:
    """Feed the buffered bytes to the hasher (created on the first call) and empty the buffer."""
    if b.hasher == NULL:
        h = _blake2b(digest_size=32)
        Py_INCREF(h)
        b.hasher = <PyObject *>h
    if b.n:
        (<object>b.hasher).update(PyMemoryView_FromMemory(b.p, b.n, PyBUF_READ))
        b.n = 0
    return 0


cdef int _grow(_Buf *b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    cdef char *q
    while cap < b.n + need:
        cap *= 2
    if b.p == b.stack:
        q = <char *>malloc(cap)
        if q == NULL:
            raise MemoryError()
        memcpy(q, b.p, b.n)
    else:
        q = <char *>realloc(b.p, cap)
        if q == NULL:
            raise MemoryError()
    b.p = q
    b.cap = cap
    return 0


cdef inline int _put(_Buf *b, const void *src, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        if b.hasher == NULL and b.n + n <= _KEY_INLINE:
            _grow(b, n)
        else:  # a digest key: stream it
            _spill(b)
            if n > b.cap:  # hashed in place (`src` is a live str's data or a local)
                (<object>b.hasher).update(PyMemoryView_FromMemory(<char *>src, n, PyBUF_READ))
                return 0
    memcpy(b.p + b.n, src, n)
    b.n += n
    return 0


cdef str _memo_norm(_Buf *b, object v):
    """``fast_normalize_text(v)``, remembered for the normalised copy when asked to."""
    out = fast_normalize_text(v)
    if b.want_memo and PyUnicode_GET_LENGTH(v) > _MEMO_MAX_LEN:  # (unchanged text too: its checks cost)
        if b.memo == NULL:
            m = {}
            Py_INCREF(m)
            b.memo = <PyObject *>m
        (<dict>b.memo)[id(v)] = (v, out)
    return out


cdef inline int _put_hdr(_Buf *b, char tag, int64_t n) except -1:
    cdef char hdr[9]
    hdr[0] = tag
    memcpy(hdr + 1, &n, 8)
    return _put(b, hdr, 9)


cdef int _put_str(_Buf *b, char tag, str s) except -1:
    cdef int kind = PyUnicode_KIND(s)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    cdef char hdr[10]
    cdef int64_t n64 = n
    hdr[0] = tag
    hdr[1] = <char>kind
    memcpy(hdr + 2, &n64, 8)
    _put(b, hdr, 10)
    return _put(b, PyUnicode_DATA(s), n * kind)


cdef int _enc(_Buf *b, object v, bint norm, int depth) except -1:
    cdef int overflow = 0
    cdef long long iv
    cdef double fv
    cdef char c
    if depth > _MAX_DEPTH:
        raise RecursionError("maximum nesting depth exceeded while keying the plan")
    t = type(v)
    if t is str:
        return _put_str(b, b"s"[0], _memo_norm(b, v) if norm else v)
    if t is int:
        iv = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow == 0:
            return _put_hdr(b, b"i"[0], iv)
        return _put_str(b, b"r"[0], repr(v))
    if v is None:
        c = b"n"[0]
        return _put(b, &c, 1)
    if t is float:
        fv = v
        if fv == fv and fv != 0.0 and fv - fv == 0.0:
            _put(b, b"f", 1)
            return _put(b, &fv, 8)
        return _put_str(b, b"r"[0], repr(v))
    if t is bool:
        return _put(b, b"b1" if v else b"b0", 2)
    if t is dict:
        return _enc_dict(b, <dict>v, norm, depth)
    if norm:
        if isinstance(v, str):
            return _put_str(b, b"s"[0], _memo_norm(b, v))
        if isinstance(v, dict):
            return _enc_dict(b, _norm_dict(v), False, depth)
        if isinstance(v, list):
            _put_hdr(b, b"l"[0], len(v))
            for x in v:
                if isinstance(x, str):
                    _put_str(b, b"s"[0], _memo_norm(b, x))
                elif isinstance(x, dict):
                    _enc(b, _norm_dict(x) if type(x) is not dict else x, type(x) is dict, depth + 1)
                else:
                    _enc(b, x, False, depth + 1)
            return 0
    if t is list:
        _put_hdr(b, b"l"[0], len(<list>v))
        for x in <list>v:
            _enc(b, x, False, depth + 1)
        return 0
    if t is tuple:
        _put_hdr(b, b"t"[0], len(<tuple>v))
        for x in <tuple>v:
            _enc(b, x, False, depth + 1)
        return 0
    return _put_str(b, b"r"[0], repr(v))


cdef int _enc_dict(_Buf *b, dict d, bint norm, int depth) except -1:
    cdef Py_ssize_t pos = 0
    cdef PyObject *pk
    cdef PyObject *pv
    _put_hdr(b, b"d"[0], len(d))
    while PyDict_Next(d, &pos, &pk, &pv):
        k = <object>pk  # owned before any __repr__ below can change `d`
        v = <object>pv
        _enc(b, k, False, depth + 1)
        _enc(b, v, norm, depth + 1)
    return 0


cdef list _sorted_keys(dict d):
    keys = list(d)
    if len(keys) > 1:
        try:
            keys.sort()
        except TypeError:  # mixed key types: any fixed order will do
            keys.sort(key=lambda k: (type(k).__name__, repr(k)))
    return keys


DEF _SMALL = 16


cdef int _enc_top(_Buf *b, char tag, dict d, bint norm) except -1:
    cdef PyObject *ks[_SMALL]
    cdef PyObject *vs[_SMALL]
    cdef PyObject *pk
    cdef PyObject *pv
    cdef Py_ssize_t pos = 0, n = 0, i, j
    _put_hdr(b, tag, len(d))
    if not d:
        return 0
    if len(d) <= _SMALL:
        # the usual plan: a few str keys, insertion-sorted (code-point order,
        # as str comparison) without building a list
        while PyDict_Next(d, &pos, &pk, &pv):
            if type(<object>pk) is not str:
                n = -1
                break
            i = n
            while i > 0 and PyUnicode_Compare(<object>ks[i - 1], <object>pk) > 0:
                ks[i] = ks[i - 1]
                vs[i] = vs[i - 1]
                i -= 1
            ks[i] = pk
            vs[i] = pv
            n += 1
        if n >= 0:
            # own the pairs: encoding a value may run its __repr__, which
            # could change the caller's dict
            for j in range(n):
                Py_INCREF(<object>ks[j])
                Py_INCREF(<object>vs[j])
            try:
                for j in range(n):
                    _put_str(b, b"s"[0], <str>ks[j])
                    _enc(b, <object>vs[j], norm, 1)
            finally:
                for j in range(n):
                    Py_DECREF(<object>ks[j])
                    Py_DECREF(<object>vs[j])
            return 0
    for k in _sorted_keys(d):
        if type(k) is str:
            _put_str(b, b"s"[0], <str>k)
        else:
            _put_str(b, b"k"[0], repr(k))
        _enc(b, d[k], norm, 1)
    return 0


cdef bytes _cache_key(dict plan, dict context, bint norm, PyObject **memo=NULL):
    """The cache key of (plan, context); with `norm`, of the plan's normalised form.

    Encodings up to _KEY_INLINE bytes are the key itself; a longer one is
    replaced by b"#" + its 256-bit BLAKE2b digest (the encodings start with
    'P', so the two kinds never meet), so that an entry never holds a copy
    of a large plan (the key of a 1 MB plan with one emoji was 4 MB).

    With `memo` (and `norm`), ``*memo`` receives a new reference to the
    normalisation memo for ``_norm_dict``, or NULL when no long string
    needed one."""
    cdef char stack[_KEY_STACK]
    cdef _Buf b
    b.p = stack
    b.stack = stack
    b.n = 0
    b.cap = _KEY_STACK
    b.hasher = NULL
    b.want_memo = memo != NULL and norm
    b.memo = NULL
    try:
        _enc_top(&b, b"P"[0], plan, norm)
        _enc_top(&b, b"C"[0], context, False)
        if b.hasher == NULL:
            key = PyBytes_FromStringAndSize(b.p, b.n)
        else:
            _spill(&b)
            key = b"#" + (<object>b.hasher).digest()
        if memo != NULL:
            memo[0] = b.memo  # the reference moves to the caller
            b.memo = NULL
        return key
    finally:
        if b.p != stack:
            free(b.p)
        Py_XDECREF(b.hasher)
        Py_XDECREF(b.memo)


cdef object _new_tag(str name, object det, double conf, list types):
    # attribute stores (inline values) are cheaper than building __dict__;
    # the dataclass __init__ would only add a range check that cannot fail
    # here (the confidences are constants in [0, 1])
    t = lk_object_new(_Tag)
    t.name = name
    t.category = det.category
    t.description = det.description
    t.confidence = conf
    t.source = "detection"
    t.metadata = {"detected_types": types}
    return t


cdef object _freeze(object t):
    """What the cache stores for a tag: a plain SafetyTag as a tuple of its
    fields (thawed into a fresh tag per hit), anything else as a private copy."""
    if type(t) is _Tag:
        d = t.__dict__
        if len(<dict>d) == 6:
            md = (<dict>d).get("metadata")
            if type(md) is dict and len(<dict>md) == 1:
                types = (<dict>md).get("detected_types")
                if type(types) is list:
                    try:
                        return (d["name"], d["category"], d["description"], d["confidence"], d["source"],
                                tuple(<list>types))
                    except KeyError:
                        pass
    return [copy_tag(t)]


cdef object _thaw(object rec):
    """A fresh tag (own metadata dict and list) from a cache record."""
    cdef tuple r
    if type(rec) is tuple:
        r = <tuple>rec
        t = lk_object_new(_Tag)
        t.name = r[0]
        t.category = r[1]
        t.description = r[2]
        t.confidence = r[3]
        t.source = r[4]
        t.metadata = {"detected_types": list(<tuple>r[5])}
        return t
    return copy_tag((<list>rec)[0])


cdef Py_ssize_t _text_cost(object s):
    if type(s) is str:
        return 64 + PyUnicode_GET_LENGTH(s) * (1 if PyUnicode_IS_ASCII(s) else 4)
    return 64


cdef Py_ssize_t _frozen_cost(bytes key, list recs):
    """``_py.entry_cost`` of the entry (key, frozen records): the same estimate."""
    cdef Py_ssize_t n = 128 + len(key)
    for rec in recs:
        if type(rec) is tuple:
            n += 256
            for x in <tuple>(<tuple>rec)[5]:
                n += _text_cost(x)
        else:
            n += _py.entry_cost(b"", [(<list>rec)[0]]) - 128
    return n


cdef list _thaw_all(list recs):
    cdef Py_ssize_t i, n = len(recs)
    out = [None] * n
    for i in range(n):
        out[i] = _thaw(recs[i])
    return out


# Hits skip the enricher's lock only where the GIL makes a cache operation
# atomic (not on a free-threaded build).
cdef bint _ATOMIC_HITS = getattr(sys, "_is_gil_enabled", lambda: True)()


# --- the result cache ----------------------------------------------------------------
# An LRU map from cache key (bytes) to a frozen tag record.  A dict finds the
# node, an intrusive doubly linked list (borrowed pointers: the dict owns the
# nodes) keeps the recency order, so a hit is one dict probe and four pointer
# stores, with no Python-level call.  Every mutation below runs no Python code
# between its first and last store (keys are bytes; nodes are allocated
# before and evicted values released after the structure is consistent), so
# under the GIL each operation is atomic: that is what lets the hit path of
# ``enrich_plan`` skip the enricher's lock.


@cython.final
@cython.freelist(64)
cdef class _Node:
    cdef object key
    cdef object value
    cdef PyObject *prev
    cdef PyObject *next
    cdef Py_ssize_t cost  # estimated bytes (0 for an item assigned directly)
    # a rendering of the value kept for ``enrich_rendered`` (None: none yet): what
    # ``view_of`` (the caller's render function) made of the value's tags
    cdef object view
    cdef object view_of
    cdef Py_ssize_t view_cost


@cython.final
cdef class _TagCache:
    """The enricher's result cache: an LRU mapping with the ``OrderedDict``
    methods the enricher uses (``get``, ``move_to_end``, ``popitem``, item
    assignment, ``len``, ``clear``, iteration oldest first)."""

    cdef dict _map
    cdef _Node _head  # sentinel of the circular recency list (next = oldest)
    cdef readonly Py_ssize_t nbytes  # estimated bytes of the entries (see _py.entry_cost)
    # estimated bytes of the renderings kept with entries (``enrich_rendered``); not in
    # ``nbytes``, so that they never change which entries stay (the eviction order is the
    # Python tier's), and bounded by 2 * nbytes instead: see ``attach``
    cdef readonly Py_ssize_t view_bytes

    def __cinit__(self):
        self._map = {}
        self.nbytes = 0
        self.view_bytes = 0
        self._head = _Node()
        self._head.prev = self._head.next = <PyObject *>self._head

    cdef inline void _unlink(self, _Node n) noexcept:
        (<_Node>n.prev).next = n.next
        (<_Node>n.next).prev = n.prev

    cdef inline void _append(self, _Node n) noexcept:
        n.prev = self._head.prev
        n.next = <PyObject *>self._head
        (<_Node>self._head.prev).next = <PyObject *>n
        self._head.prev = <PyObject *>n

    cdef object lookup(self, object key):
        """The record under ``key`` (made most recent), or None."""
        n = self.node(key)
        return None if n is None else (<_Node>n).value

    cdef object node(self, object key):
        """The node under ``key`` (made most recent), or None."""
        cdef PyObject *p = PyDict_GetItemWithError(self._map, key)
        if p == NULL:
            return None
        n = <_Node>p
        if n.next != <PyObject *>self._head:
            self._unlink(n)
            self._append(n)
        return n

    cdef int attach(self, _Node n, object rec, object view, object view_of, Py_ssize_t cost) except -1:
        """Keep ``view`` (``cost`` bytes), ``view_of``'s rendering of ``rec``, with the
        node, if the node is still in the cache holding ``rec``, has no view yet and the
        view costs at most twice the entry (so kept views add at most 2 * ``nbytes``)."""
        cdef PyObject *p = PyDict_GetItemWithError(self._map, n.key)
        if p != <PyObject *>n or n.value is not rec or n.view is not None or cost > 2 * n.cost:
            return 0
        n.view = view
        n.view_of = view_of
        n.view_cost = cost
        self.view_bytes += cost
        return 0

    cdef int _trim(self, Py_ssize_t maxsize, Py_ssize_t maxbytes) except -1:
        """Drop the oldest entries until at most ``maxsize`` entries and ``maxbytes`` bytes remain."""
        cdef list evicted = []
        while len(self._map) > maxsize or (self.nbytes > maxbytes and len(self._map) > 0):
            n = <_Node>self._head.next
            self._unlink(n)
            self.nbytes -= n.cost
            self.view_bytes -= n.view_cost
            evicted.append(n)
            del self._map[n.key]
        return 0  # `evicted` is released here, after the fact

    cdef inline void _drop_view(self, _Node n, list keep) noexcept:
        # (the old view goes into `keep`, released by the caller after the fact)
        if n.view is not None:
            keep.append(n.view)
            n.view = n.view_of = None
            self.view_bytes -= n.view_cost
            n.view_cost = 0

    cdef int put(self, object key, object value, Py_ssize_t maxsize, Py_ssize_t cost=0,
                 Py_ssize_t maxbytes=PY_SSIZE_T_MAX) except -1:
        """Store ``value`` (``cost`` bytes) as the most recent entry; drop the
        oldest until at most ``maxsize`` entries and ``maxbytes`` bytes remain
        (an entry costing more than ``maxbytes`` on its own is not stored)."""
        cdef _Node fresh = _Node()  # allocated (may run a GC) before anything changes
        cdef list evicted = []
        cdef PyObject *p = PyDict_GetItemWithError(self._map, key)
        if p != NULL:
            n = <_Node>p
            evicted.append(n.value)
            self._drop_view(n, evicted)
            self.nbytes += cost - n.cost
            n.value = value
            n.cost = cost
            self._unlink(n)
            self._append(n)
        else:
            if cost > maxbytes:
                return 0
            fresh.key = key
            fresh.value = value
            fresh.cost = cost
            self._map[key] = fresh
            self._append(fresh)
            self.nbytes += cost
        self._trim(maxsize, maxbytes)
        return 0  # `evicted` (the old value and view) is released here, after the fact

    # -- the OrderedDict surface -----------------------------------------------------------
    def __len__(self):
        return len(self._map)

    def __contains__(self, key):
        return key in self._map

    def __getitem__(self, key):
        return (<_Node>self._map[key]).value

    def get(self, key, default=None):
        """The value under ``key`` (recency unchanged), or ``default``."""
        n = self._map.get(key)
        return default if n is None else (<_Node>n).value

    def __setitem__(self, key, value):
        n = self._map.get(key)
        cdef list old
        if n is not None:  # like OrderedDict: an update keeps the entry's place
            old = [(<_Node>n).value]  # (the old value and view are released after the stores)
            self._drop_view(<_Node>n, old)
            (<_Node>n).value = value
            return
        self.put(key, value, PY_SSIZE_T_MAX)

    def __delitem__(self, key):
        n = <_Node>self._map[key]
        self._unlink(n)
        self.nbytes -= n.cost
        self.view_bytes -= n.view_cost
        del self._map[key]

    def move_to_end(self, key, last=True):
        """Make ``key`` the most recent entry (``last=False``: the oldest)."""
        n = <_Node>self._map[key]
        self._unlink(n)
        if last:
            self._append(n)
        else:
            n.next = self._head.next
            n.prev = <PyObject *>self._head
            (<_Node>self._head.next).prev = <PyObject *>n
            self._head.next = <PyObject *>n

    def popitem(self, last=True):
        """Remove and return the most recent (``last=False``: the oldest) ``(key, value)``."""
        if not self._map:
            raise KeyError("popitem(): cache is empty")
        n = <_Node>(self._head.prev if last else self._head.next)
        self._unlink(n)
        self.nbytes -= n.cost
        self.view_bytes -= n.view_cost
        del self._map[n.key]
        return n.key, n.value

    def clear(self):
        """Drop every entry."""
        old = self._map
        self._map = {}
        self.nbytes = 0
        self.view_bytes = 0
        self._head.prev = self._head.next = <PyObject *>self._head
        del old  # entries released once the cache is already empty

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        """Keys, oldest first (a list)."""
        cdef list out = []
        cdef PyObject *p = self._head.next
        while p != <PyObject *>self._head:
            out.append((<_Node>p).key)
            p = (<_Node>p).next
        return out

    def values(self):
        """Values, oldest first (a list)."""
        return [(<_Node>self._map[k]).value for k in self.keys()]

    def items(self):
        """``(key, value)`` pairs, oldest first (a list)."""
        return [(k, (<_Node>self._map[k]).value) for k in self.keys()]

    def __repr__(self):
        return f"<lukhas_fast tag cache: {len(self._map)} entries>"


cdef list _detector_tags(tuple dets, double pii, list pii_t, double fin, list fin_t, double mod, list mod_t,
                         double ext, list ext_t, double esc, list esc_t, double gdpr, list gdpr_t):
    """The six detectors' thresholds applied to their final confidences, in
    detector order.  (Tags are built without the dataclass __init__: the
    confidences are constants in [0, 1], so its validation cannot fail.)"""
    out = []
    if pii > 0.5:
        out.append(_new_tag("pii", dets[0], pii, pii_t))
    if fin > 0.6:
        out.append(_new_tag("financial", dets[1], fin, fin_t))
    if mod > 0.7:
        out.append(_new_tag("model-switch", dets[2], mod, mod_t))
    if ext > 0.7:
        out.append(_new_tag("external-call", dets[3], ext, ext_t))
    if esc > 0.7:
        out.append(_new_tag("privilege-escalation", dets[4], esc, esc_t))
    if gdpr > 0.6:
        out.append(_new_tag("gdpr", dets[5], gdpr, gdpr_t))
    return out


cdef list _scan(tuple dets, dict plan, dict context, bint advanced):
    """The six built-in detectors in one pass; same tags, order and metadata as running them."""
    cdef double pii = 0.0, fin = 0.0, mod = 0.0, ext = 0.0, esc = 0.0, gdpr = 0.0
    cdef list pii_t = [], fin_t = [], mod_t = [], ext_t = [], esc_t = [], gdpr_t = []
    cdef list str_vals = []      # (key, value, lowered value, table mask) of str params values, in order
    cdef list keys = []          # (key, lowered key or None)
    cdef bint has_params
    cdef unsigned int amask = 0, vmask
    cdef Py_ssize_t nd
    cdef str action
    a = plan.get("action", "")
    action = (<str>a).lower() if type(a) is str else (str.lower(a) if isinstance(a, str) else "")
    if action:
        amask = _screen(action)
    d = plan.get("description", "")
    desc = d if isinstance(d, str) else ""
    params = plan.get("params", {})
    has_params = isinstance(params, dict)
    if has_params:
        for k, v in params.items():
            keys.append((k, (<str>k).lower() if type(k) is str else (str.lower(k) if isinstance(k, str) else None)))
            if isinstance(v, str):
                lv = str.lower(v)
                str_vals.append((k, v, lv, _screen(lv)))
    # --- pii
    if has_params:
        for k, lk in keys:
            if lk in _PII_FIELDS:
                pii = 0.9
                pii_t.append(f"field:{k}")
        for k, v, lv, vmask in str_vals:
            if "@" in v and _has_email(v):
                pii = 0.95
                pii_t.append("email")
            nd = _digits(v)
            if nd >= 9:
                if _SSN.search(v):
                    pii = 0.95
                    pii_t.append("ssn")
                if nd >= 10 and _PHONE.search(v):
                    pii = max(pii, 0.8)
                    pii_t.append("phone")
                if nd >= 16 and _CARD.search(v):
                    pii = 0.95
                    pii_t.append("credit_card")
    if amask & T_PII and _any_in(_PII_ACTION, action):
        pii = max(pii, 0.6)
        pii_t.append("action")
    # --- financial
    if amask & T_FIN and _any_in(_FIN_ACTION, action):
        fin = 0.9
        fin_t.append("action")
    if has_params:
        for k, lk in keys:
            if lk in _FIN_FIELDS:
                fin = max(fin, 0.8)
                fin_t.append(f"field:{k}")
        for (k, lk), v in zip(keys, params.values()):
            # the builtin isinstance, as the oracle: Cython would compile it
            # to a type check that ignores a __class__ override
            if lk in _CURRENCY and _isinstance(v, _NUMBER):
                fin = max(fin, 0.7)
                fin_t.append("currency")
        if advanced:
            for k, v, lv, vmask in str_vals:
                nd = _digits(v)
                if nd >= 9:
                    if nd >= 10 and _ACCOUNT.search(v):
                        fin = max(fin, 0.7)
                        fin_t.append("account_number")
                    if _ROUTING.search(v):
                        fin = max(fin, 0.7)
                        fin_t.append("routing_number")
    # --- model switch
    if amask & T_MODA and _any_in(_MODEL_ACTION, action):
        mod = 0.95
        mod_t.append("action")
    if has_params:
        for k, lk in keys:
            if lk in _MODEL_PARAMS:
                mod = max(mod, 0.9)
                mod_t.append(f"param:{k}")
    parts = [a if isinstance(a, str) else "", desc]
    parts.extend([sv[1] for sv in str_vals])
    text = " ".join(parts)
    low_text = text.lower()
    if _screen(low_text) & T_KW:
        for kw in _KEYWORDS:
            if kw in low_text:
                mod = max(mod, 0.85)
                mod_t.append(f"keyword:{kw}")
    # --- external call
    if amask & T_API and _any_in(_API_ACTION, action):
        ext = 0.9
        ext_t.append("action")
    for k, lk in keys:
        if lk in _URL_KEYS:
            v = params[k]
            if isinstance(v, str) and ("http" in v or "api" in v):
                ext = 0.95
                ext_t.append(f"url_param:{k}")
    if "://" in text:
        n = len(_URL.findall(text))
        if n:
            ext = max(ext, 0.9)
            ext_t.append(f"url_in_text:{n}_found")
    # --- privilege escalation
    if amask & T_ESC and _any_in(_ESC, action):
        esc = 0.9
        esc_t.append("action_keyword")
    if action.startswith(_PREFIXES):
        esc = 0.95
        esc_t.append("dangerous_action")
    for k, v, lv, vmask in str_vals:
        if vmask & T_ESC and _any_in(_ESC, lv):
            esc = max(esc, 0.8)
            esc_t.append(f"param:{k}")
    # --- gdpr
    if amask & T_GDPRA and _any_in(_GDPR_ACTION, action):
        gdpr = 0.9
        gdpr_t.append("gdpr_action")
    if amask & T_GDPRT and _any_in(_GDPR_TERM, action):
        gdpr = max(gdpr, 0.8)
        gdpr_t.append("gdpr_term")
    for k, v, lv, vmask in str_vals:
        if vmask & T_GDPRT and _any_in(_GDPR_TERM, lv):
            gdpr = max(gdpr, 0.7)
            gdpr_t.append(f"param:{k}")
    region = context.get("user_region")
    if not advanced:
        if region in ("EU", "EEA"):
            gdpr_t.append("eu_user")  # the SDK's label (GDPRDetector.detect)
    elif has_params and region in ("EU", "EEA"):
        for k, lk in keys:
            if lk in _PII_FIELDS:
                gdpr = max(gdpr, 0.65)
                gdpr_t.append("eu_user")
                break
    return _detector_tags(dets, pii, pii_t, fin, fin_t, mod, mod_t, ext, ext_t, esc, esc_t, gdpr, gdpr_t)


# --- the C scanner (csrc/tags.c) --------------------------------------------------------
# The term tables are indexed once into a struct owned by this module; the
# scan itself touches no Python object.  ASCII text is read in place; other
# text is transcoded to stand-in bytes value by value (_set_part), so one
# non-ASCII value costs a linear pass over that value only.  The per-item
# arrays live on the stack up to _MAXP params items, on the heap beyond.
# Plans with str subclasses, non-str params keys, params values of other
# types or one of the characters _set_part cannot represent take the Cython
# path above (same results, linear, just slower; JSON input never needs it).

DEF _MAXP = 64

cdef lk_terms _TERMS
cdef tuple _KW_TYPES = tuple(["keyword:" + k for k in _py.MODEL_KEYWORDS])
cdef dict _KEYCLASS = {}

cdef enum:
    K_PII = 1
    K_FIN = 2
    K_CUR = 4
    K_MODEL = 8
    K_URL = 16


def _build_terms():
    lk_terms_init(&_TERMS)
    for table, bit in ((_PII_ACTION, LK_T_PII_ACTION), (_FIN_ACTION, LK_T_FIN_ACTION),
                       (_MODEL_ACTION, LK_T_MODEL_ACTION), (_API_ACTION, LK_T_API), (_ESC, LK_T_ESC),
                       (_GDPR_ACTION, LK_T_GDPR_ACTION), (_GDPR_TERM, LK_T_GDPR_TERM)):
        for term in table:
            # a spaceless term never spans two parts of the space-joined text,
            # so its hits can be credited to the part they start in
            assert " " not in term
            b = term.encode("ascii")
            if lk_terms_add(&_TERMS, b, len(b), bit, -1) != 0:
                raise RuntimeError(f"term table full at {term!r}")
    for i, term in enumerate(_py.MODEL_KEYWORDS):
        b = term.encode("ascii")
        if lk_terms_add(&_TERMS, b, len(b), 0, i) != 0:
            raise RuntimeError(f"term table full at {term!r}")
    for term in _py.DANGEROUS_PREFIXES:
        b = term.encode("ascii")
        if lk_terms_add_prefix(&_TERMS, b, len(b)) != 0:
            raise RuntimeError(f"prefix table full at {term!r}")
    for table, bit in ((_py.PII_FIELDS, K_PII), (_py.FINANCIAL_FIELDS, K_FIN), (_py.CURRENCY_KEYS, K_CUR),
                       (_py.MODEL_PARAMS, K_MODEL), (_py.URL_KEYS, K_URL)):
        for k in table:
            _KEYCLASS[k] = _KEYCLASS.get(k, 0) | bit


_build_terms()


cdef inline bint _ascii_lower(str s):
    """ASCII with no uppercase letter: ``s.lower()`` would equal ``s``."""
    cdef const unsigned char *p
    cdef Py_ssize_t i, n
    if not PyUnicode_IS_ASCII(s):
        return False
    p = <const unsigned char *>PyUnicode_DATA(s)
    n = PyUnicode_GET_LENGTH(s)
    for i in range(n):
        if 65 <= p[i] <= 90:
            return False
    return True


cdef inline unsigned int _key_class(str k):
    lk = k if _ascii_lower(k) else k.lower()
    m = _KEYCLASS.get(lk)
    return 0 if m is None else <unsigned int>m


cdef inline list _add(list lst, str item):
    if lst is None:
        return [item]
    lst.append(item)
    return lst


DEF _USCRATCH = 4096


cdef struct _Scratch:
    # the per-item arrays of one scan (on _scan_fast's stack up to _MAXP
    # params items, else on the heap) ...
    int cap  # params items they hold
    lk_part *parts  # cap + 2 (action, description, values)
    uint32_t *flags  # cap + 2
    unsigned int *kmask
    int *vpart
    bint *isnum
    PyObject **kobj
    PyObject **vobj
    bint heap
    # ... and where non-ASCII values are transcoded: a stack block for the
    # usual short text, one heap block per value that does not fit (all
    # freed by _scan_fast after the scan)
    unsigned char *stack
    Py_ssize_t used
    int nowned
    void **owned  # cap + 2


cdef int _set_part(lk_part *part, object v, _Scratch *sc) except -2:
    """Point ``part`` at the bytes the C scanner reads for str ``v``: ASCII data
    as is; other text transcoded with one stand-in byte per character (see
    tags.h).  -1: the plan needs the Cython path.

    U+0130 is the one character whose lowercase is longer ("i" + U+0307):
    it becomes the two bytes 'i' LK_UWORD.  That is exact for both kinds of
    checks.  The term and keyword searches run on the lowered text, where the
    character is an ASCII 'i' followed by a character no term contains, as in
    ``v.lower()``.  The patterns run on ``v`` itself, where U+0130 is one word
    character in none of their classes: the pair is two word characters (the
    same \\b on either side, none between), and the 'i' can be part of no
    match: in the email pattern (the only one whose classes hold 'i') a
    class character is always followed by another class character, '@',
    '.' or a \\b, and the LK_UWORD after the 'i' is none of these."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(v), i
    cdef Py_UCS4 ch
    cdef unsigned char *out
    cdef bint on_stack
    if PyUnicode_IS_ASCII(v):
        part.p = <const char *>PyUnicode_DATA(v)
        part.n = n
        return 0
    # room for 2n bytes: each U+0130 takes two
    on_stack = sc.used + 2 * n <= _USCRATCH
    if on_stack:
        out = sc.stack + sc.used
    else:
        out = <unsigned char *>malloc(2 * n)
        if out == NULL:
            raise MemoryError()
        sc.owned[sc.nowned] = out
        sc.nowned += 1
    i = 0
    for ch in <str>v:
        if ch < 128:
            out[i] = <unsigned char>ch
        elif ch == 0x130:
            out[i] = 105  # 'i'
            i += 1
            out[i] = LK_UWORD
        elif ch == 0x17F or Py_UNICODE_TOLOWER(ch) < 128:
            # U+017F matches 's' in the IGNORECASE URL pattern; U+212A lowers
            # to 'k' (NFKC turns both into ASCII, so normalised plans never
            # get here)
            return -1
        elif ch.isdecimal():
            out[i] = LK_UDIGIT
        elif ch.isspace():
            out[i] = LK_USPACE
        elif ch.isalnum():
            out[i] = LK_UWORD
        else:
            out[i] = LK_UOTHER
        i += 1
    part.p = <const char *>out
    part.n = i
    if on_stack:
        sc.used += i
    return 0


cdef object _scan_fast(tuple dets, dict plan, dict context, bint advanced):
    """The fused detectors over the C scan; None when the plan needs the Cython path."""
    cdef unsigned char stack[_USCRATCH]
    cdef lk_part parts[_MAXP + 2]
    cdef uint32_t flags[_MAXP + 2]
    cdef unsigned int kmask[_MAXP]
    cdef int vpart[_MAXP]
    cdef bint isnum[_MAXP]
    cdef PyObject *kobj[_MAXP]
    cdef PyObject *vobj[_MAXP]
    cdef void *owned[_MAXP + 2]
    cdef _Scratch sc
    cdef Py_ssize_t n = 0
    cdef int k
    params = plan.get("params", _NO_PARAMS)
    if type(params) is dict:
        n = len(<dict>params)
    sc.stack = stack
    sc.used = 0
    sc.nowned = 0
    sc.heap = n > _MAXP
    if not sc.heap:
        sc.cap = _MAXP
        sc.parts, sc.flags, sc.kmask, sc.vpart, sc.isnum = parts, flags, kmask, vpart, isnum
        sc.kobj, sc.vobj, sc.owned = kobj, vobj, owned
    else:
        if n > 1 << 24:  # (int counters below) far beyond any plan a service takes
            return None
        sc.cap = <int>n
        sc.parts = <lk_part *>malloc((n + 2) * sizeof(lk_part))
        sc.flags = <uint32_t *>malloc((n + 2) * sizeof(uint32_t))
        sc.kmask = <unsigned int *>malloc(n * sizeof(unsigned int))
        sc.vpart = <int *>malloc(n * sizeof(int))
        sc.isnum = <bint *>malloc(n * sizeof(bint))
        sc.kobj = <PyObject **>malloc(n * sizeof(PyObject *))
        sc.vobj = <PyObject **>malloc(n * sizeof(PyObject *))
        sc.owned = <void **>malloc((n + 2) * sizeof(void *))
    try:
        if sc.heap and (sc.parts == NULL or sc.flags == NULL or sc.kmask == NULL or sc.vpart == NULL
                        or sc.isnum == NULL or sc.kobj == NULL or sc.vobj == NULL or sc.owned == NULL):
            raise MemoryError()
        return _scan_fast_in(dets, plan, params, context, advanced, &sc)
    finally:
        if sc.owned != NULL:
            for k in range(sc.nowned):
                free(sc.owned[k])
        if sc.heap:
            free(sc.parts)
            free(sc.flags)
            free(sc.kmask)
            free(sc.vpart)
            free(sc.isnum)
            free(sc.kobj)
            free(sc.vobj)
            free(sc.owned)


cdef dict _NO_PARAMS = {}  # plan.get's default, never written


cdef object _scan_fast_in(tuple dets, dict plan, object params, dict context, bint advanced, _Scratch *sc):
    cdef lk_part *parts = sc.parts
    cdef uint32_t *flags = sc.flags
    cdef unsigned int *kmask = sc.kmask
    cdef int *vpart = sc.vpart
    cdef bint *isnum = sc.isnum
    cdef PyObject **kobj = sc.kobj
    cdef PyObject **vobj = sc.vobj
    cdef int nparts = 2, nitems = 0, i, f
    cdef Py_ssize_t pos = 0
    cdef PyObject *pk
    cdef PyObject *pv
    cdef lk_scan_result res
    cdef bint has_params = False
    cdef double pii = 0.0, fin = 0.0, mod = 0.0, ext = 0.0, esc = 0.0, gdpr = 0.0
    cdef list pii_t = None, fin_t = None, mod_t = None, ext_t = None, esc_t = None, gdpr_t = None
    cdef unsigned int kw

    a = plan.get("action", "")
    if type(a) is str:
        if _set_part(&parts[0], a, sc):
            return None
    elif isinstance(a, str):
        return None
    else:
        parts[0].p = ""
        parts[0].n = 0
    d = plan.get("description", "")
    if type(d) is str:
        if _set_part(&parts[1], d, sc):
            return None
    elif isinstance(d, str):
        return None
    else:
        parts[1].p = ""
        parts[1].n = 0
    if type(params) is dict:
        has_params = True
        # borrowed references: `plan` is the enricher's private normalised
        # copy and nothing below runs code that could mutate it
        while PyDict_Next(params, &pos, &pk, &pv):
            if nitems == sc.cap or type(<object>pk) is not str:
                return None
            kmask[nitems] = _key_class(<str>pk)
            kobj[nitems] = pk
            vobj[nitems] = pv
            tv = type(<object>pv)
            isnum[nitems] = tv is int or tv is float or tv is bool
            if tv is str:
                if _set_part(&parts[nparts], <object>pv, sc):
                    return None
                vpart[nitems] = nparts
                nparts += 1
            elif isnum[nitems] or <object>pv is None or tv is list or tv is dict or tv is tuple:
                vpart[nitems] = -1
            else:
                # other types go the Cython path: isinstance() there may run
                # their code (a __class__ property), never while this loop
                # holds borrowed references
                return None
            nitems += 1
    elif isinstance(params, dict):
        return None
    if lk_scan(&_TERMS, parts, nparts, 2, advanced, &res, flags) != 0:
        raise MemoryError()

    # --- pii
    for i in range(nitems):
        if kmask[i] & K_PII:
            pii = 0.9
            pii_t = _add(pii_t, "field:" + <str>kobj[i])
    for i in range(nitems):
        if vpart[i] >= 0:
            f = flags[vpart[i]]
            if f & (LK_P_EMAIL | LK_P_SSN | LK_P_PHONE | LK_P_CARD):
                if f & LK_P_EMAIL:
                    pii = 0.95
                    pii_t = _add(pii_t, "email")
                if f & LK_P_SSN:
                    pii = 0.95
                    pii_t = _add(pii_t, "ssn")
                if f & LK_P_PHONE:
                    pii = max(pii, 0.8)
                    pii_t = _add(pii_t, "phone")
                if f & LK_P_CARD:
                    pii = 0.95
                    pii_t = _add(pii_t, "credit_card")
    if res.action_tables & LK_T_PII_ACTION:
        pii = max(pii, 0.6)
        pii_t = _add(pii_t, "action")
    # --- financial
    if res.action_tables & LK_T_FIN_ACTION:
        fin = 0.9
        fin_t = _add(fin_t, "action")
    for i in range(nitems):
        if kmask[i] & K_FIN:
            fin = max(fin, 0.8)
            fin_t = _add(fin_t, "field:" + <str>kobj[i])
    for i in range(nitems):
        if kmask[i] & K_CUR and isnum[i]:
            fin = max(fin, 0.7)
            fin_t = _add(fin_t, "currency")
    if advanced:
        for i in range(nitems):
            if vpart[i] >= 0:
                f = flags[vpart[i]]
                if f & LK_P_ACCOUNT:
                    fin = max(fin, 0.7)
                    fin_t = _add(fin_t, "account_number")
                if f & LK_P_ROUTING:
                    fin = max(fin, 0.7)
                    fin_t = _add(fin_t, "routing_number")
    # --- model switch
    if res.action_tables & LK_T_MODEL_ACTION:
        mod = 0.95
        mod_t = _add(mod_t, "action")
    for i in range(nitems):
        if kmask[i] & K_MODEL:
            mod = max(mod, 0.9)
            mod_t = _add(mod_t, "param:" + <str>kobj[i])
    if res.keywords:
        mod = max(mod, 0.85)
        for kw in range(len(_KW_TYPES)):
            if res.keywords & (1u << kw):
                mod_t = _add(mod_t, <str>_KW_TYPES[kw])
    # --- external call
    if res.action_tables & LK_T_API:
        ext = 0.9
        ext_t = _add(ext_t, "action")
    for i in range(nitems):
        if kmask[i] & K_URL and vpart[i] >= 0 and ("http" in <str>vobj[i] or "api" in <str>vobj[i]):
            ext = 0.95
            ext_t = _add(ext_t, "url_param:" + <str>kobj[i])
    if res.urls:
        ext = max(ext, 0.9)
        ext_t = _add(ext_t, f"url_in_text:{res.urls}_found")
    # --- privilege escalation
    if res.action_tables & LK_T_ESC:
        esc = 0.9
        esc_t = _add(esc_t, "action_keyword")
    if res.dangerous:
        esc = 0.95
        esc_t = _add(esc_t, "dangerous_action")
    for i in range(nitems):
        if vpart[i] >= 0 and flags[vpart[i]] & LK_P_ESC:
            esc = max(esc, 0.8)
            esc_t = _add(esc_t, "param:" + <str>kobj[i])
    # --- gdpr
    if res.action_tables & LK_T_GDPR_ACTION:
        gdpr = 0.9
        gdpr_t = _add(gdpr_t, "gdpr_action")
    if res.action_tables & LK_T_GDPR_TERM:
        gdpr = max(gdpr, 0.8)
        gdpr_t = _add(gdpr_t, "gdpr_term")
    for i in range(nitems):
        if vpart[i] >= 0 and flags[vpart[i]] & LK_P_GDPR:
            gdpr = max(gdpr, 0.7)
            gdpr_t = _add(gdpr_t, "param:" + <str>kobj[i])
    region = context.get("user_region")
    if not advanced:
        if region in ("EU", "EEA"):
            gdpr_t = _add(gdpr_t, "eu_user")  # the SDK's label (GDPRDetector.detect)
    elif has_params and region in ("EU", "EEA"):
        for i in range(nitems):
            if kmask[i] & K_PII:
                gdpr = max(gdpr, 0.65)
                gdpr_t = _add(gdpr_t, "eu_user")
                break
    return _detector_tags(dets, pii, pii_t, fin, fin_t, mod, mod_t, ext, ext_t, esc, esc_t, gdpr, gdpr_t)


def _c_has_email(str s):
    """The C email matcher on one ASCII string (for tests)."""
    b = s.encode("ascii")
    return bool(lk_has_email(b, len(b)))


def _c_scan_available(plan):
    """Whether the C scanner handles this (normalised) plan (for tests)."""
    return _scan_fast(_BUILTIN_PROTOS, plan, {}, False) is not None


cdef tuple _BUILTIN_PROTOS = tuple([cls() for cls in _py.BUILTIN_DETECTORS])


cpdef object copy_tag(object t):
    """A copy of a tag whose metadata the caller may mutate freely."""
    if type(t) is not _Tag:
        return _py.copy_tag(t)
    new = lk_object_new(_Tag)
    d = (<object>t).__dict__
    nd = dict(d)
    md = d["metadata"]
    if type(md) is dict:
        nd["metadata"] = {k: (list(v) if type(v) is list else v) for k, v in (<dict>md).items()}
    new.__dict__ = nd
    return new


cdef object _TaggedPlan = TaggedPlan
cdef object _logger = logging.getLogger("lukhas_fast.safety_tags")
cdef tuple _HOOKS = ("preprocess_text", "preprocess_plan", "_generate_cache_key", "_key_and_plan", "_scan_builtin",
                     "_detect", "_run_detectors", "_record", "_copy_tag")


cdef inline double _now_ms() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000.0 + ts.tv_nsec * 1e-6


cdef object _hit(object self, object plan, list cached, double start, object render):
    """A cache hit's result: the counter, fresh tags from the record, ``{"cache_hit": True}``
    (with ``render``: ``(render(tags), ms, context)``)."""
    self.cache_hits += 1
    tags = _thaw_all(cached)
    if render is None:
        return _tagged(plan, tags, _now_ms() - start, {"cache_hit": True})
    ms = _now_ms() - start
    return render(tags), ms, {"cache_hit": True}


cdef Py_ssize_t _view_cost(object view):
    """Estimated bytes of a rendering ``enrich_rendered`` may keep (bytes or a
    tuple of bytes), or -1 for anything else (not kept)."""
    cdef Py_ssize_t n
    if type(view) is bytes:
        return 64 + len(<bytes>view)
    if type(view) is not tuple:
        return -1
    n = 64 + 8 * len(<tuple>view)
    for b in <tuple>view:
        if type(b) is not bytes:
            return -1
        n += 64 + len(<bytes>b)
    return n


cdef object _hit_view(object self, _TagCache cache, _Node node, double start, object render):
    """A cache hit of ``enrich_rendered``: the counter, and the entry's kept view
    when ``render`` made it; otherwise ``render`` of fresh tags from the record,
    kept with the entry when every record is a plain tag's (its fields are
    immutable there: a tuple of strings, floats and an enum member, so the
    rendering is what ``render`` would make of any later hit's tags)."""
    cdef list rec
    self.cache_hits += 1
    if node.view_of is render:
        view = node.view
        return view, _now_ms() - start, {"cache_hit": True}
    rec = <list>node.value
    tags = _thaw_all(rec)
    ms = _now_ms() - start
    view = render(tags)
    cdef Py_ssize_t cost = _view_cost(view)
    if cost >= 0 and node.view is None:
        for r in rec:
            if type(r) is not tuple:
                break
        else:
            cache.attach(node, rec, view, render, cost)
    return view, ms, {"cache_hit": True}


cdef object _tagged(object plan, list tags, double ms, dict ctx):
    """``TaggedPlan(plan, tags, ms, ctx)`` without the dataclass __init__ (it only assigns)."""
    # plain attribute stores (PyObject_SetAttr): supported on every CPython;
    # PyObject_GenericSetDict on a fresh object loses the dict on 3.13, whose
    # instances keep their attributes as inline values
    tp = lk_object_new(_TaggedPlan)
    tp.original_plan = plan
    tp.tags = tags
    tp.enrichment_time_ms = ms
    tp.enrichment_context = ctx
    return tp


cdef bint _detectors_intact(tuple builtin) except -1:
    """Whether every built-in detector still runs its own ``detect``: not
    replaced on the instance (``enricher.detectors[i].detect = f``) nor on the
    class (``mock.patch.object(PIIDetector, "detect", ...)``).  The fused scan
    stands in for the detectors only then; otherwise they are called, as in
    the SDK.  One attribute lookup per detector, once per enrichment.  (The
    originals are read from the Python tier each time, so a reload of it is
    followed.)"""
    cdef Py_ssize_t i
    cdef tuple orig = _py.BUILTIN_DETECT
    if len(builtin) != len(orig):
        return False
    for i in range(len(builtin)):
        m = getattr(builtin[i], "detect", None)
        if not PyMethod_Check(m) or <object>PyMethod_GET_FUNCTION(m) is not orig[i]:
            return False
    return True


cdef list _detect_fast(object self, dict normalized, dict context):
    """``_detect`` with the fused C scan standing in for the six built-ins."""
    cdef list dets = self.detectors
    cdef tuple builtin = self._builtin
    cdef Py_ssize_t nb = len(builtin), i
    cdef bint advanced = self.advanced
    cdef bint same = len(dets) >= nb
    if same:
        for i in range(nb):
            if dets[i] is not builtin[i]:
                same = False
                break
    if same and not _detectors_intact(builtin):
        same = False  # a patched detect(): run the detectors themselves
    if same:
        tags = _scan_fast(builtin, normalized, context, advanced)
        if tags is None:
            tags = _scan(builtin, normalized, context, advanced)
        if len(dets) > nb:
            tags += self._run_detectors(dets[nb:], normalized, context)
    else:
        tags = self._run_detectors(list(dets), normalized, context)
    if advanced:
        try:
            tags += _py.advanced_tags(normalized, {getattr(t, "name", None) for t in tags})
        except Exception as exc:  # never turns a good plan into an error result
            _logger.error("Error in advanced tag detection: %s", exc)
    return tags


cdef object _enrich(object self, object plan, object context, object render):
    """``enrich_plan`` (``render`` None) or ``enrich_rendered`` of the fast path."""
    cdef double start = _now_ms(), ms
    cdef PyObject *memo_ref = NULL
    if not isinstance(plan, dict):
        raise TypeError(f"plan must be a dict, got {type(plan).__name__}")
    if not context:
        context = {}
    elif not isinstance(context, dict):
        raise TypeError(f"context must be a dict or None, got {type(context).__name__}")
    cache = self.tag_cache
    key = normalized = memo = None
    if cache is not None:
        try:
            key = _cache_key(plan, context, True, &memo_ref)
            if memo_ref != NULL:
                memo = <object>memo_ref
                Py_DECREF(memo)  # the reference _cache_key handed over (`memo` holds one)
                memo_ref = NULL
        except RecursionError:
            raise
        except Exception as exc:  # a value whose repr raises: served uncached
            _logger.debug("plan served uncached, no cache key: %s", exc)
        if key is not None and _ATOMIC_HITS and type(cache) is _TagCache:
            # the hit path without the lock: the lookup, the recency update
            # and the counter run no Python code, so under the GIL they are
            # one atomic step, as under the lock (a miss takes the lock and
            # looks again)
            if render is not None:
                node = (<_TagCache>cache).node(key)
                if node is not None:
                    return _hit_view(self, <_TagCache>cache, <_Node>node, start, render)
            else:
                cached = (<_TagCache>cache).lookup(key)
                if cached is not None:
                    return _hit(self, plan, <list>cached, start, None)
    if key is None:
        normalized = _norm_dict(plan)
    lock = self._lock
    lock.acquire()
    try:
        cache = self.tag_cache
        if cache is not None:
            if key is None:
                cached = None
            elif type(cache) is _TagCache:
                cached = (<_TagCache>cache).lookup(key)
            else:  # a mapping the caller put there
                cached = cache.get(key)
                if cached is not None:
                    cache.move_to_end(key)
            if cached is not None:
                return _hit(self, plan, <list>cached, start, render)
            self.cache_misses += 1
        if normalized is None:
            normalized = _norm_dict(plan, 0, memo)
        memo = None
        tags = _detect_fast(self, normalized, context)
        if cache is not None and key is not None:
            frozen = [_freeze(t) for t in tags]
            if type(cache) is _TagCache:
                (<_TagCache>cache).put(key, frozen, self.cache_size, _frozen_cost(key, frozen),
                                       self.cache_bytes)
            else:
                cache[key] = frozen
                while len(cache) > self.cache_size:
                    cache.popitem(last=False)
        ms = _now_ms() - start
        if self._metrics:
            self._record(tags, context, ms)
        if _logger.isEnabledFor(10):
            _logger.debug("enriched plan: %d tags in %.3f ms", len(tags), ms)
        ctx = {"cache_hit": False, "detector_count": len(self.detectors), "tags_detected": len(tags)}
        if render is None:
            return _tagged(plan, tags, ms, ctx)
    finally:
        lock.release()
    return render(tags), ms, ctx


class SafetyTagEnricher(_py.SafetyTagEnricher):
    __doc__ = _py.SafetyTagEnricher.__doc__
    _copy_tag = staticmethod(copy_tag)
    _cache_type = _TagCache

    def __init__(self, enable_caching=True, *, advanced=None, cache_size=_py.CACHE_SIZE,
                 cache_bytes=_py.CACHE_BYTES, metrics=None):
        _py.SafetyTagEnricher.__init__(self, enable_caching, advanced=advanced, cache_size=cache_size,
                                       cache_bytes=cache_bytes, metrics=metrics)
        # a subclass overriding a hook gets the generic (hook-calling) path
        cls = type(self)
        self._fast = all([getattr(cls, n) is getattr(SafetyTagEnricher, n) for n in _HOOKS])
        # ... and enrich_rendered goes through a subclass's own enrich_plan
        self._fast_rendered = self._fast and cls.enrich_plan is SafetyTagEnricher.enrich_plan

    def enrich_plan(self, plan, context=None):
        if not self._fast:
            return _py.SafetyTagEnricher.enrich_plan(self, plan, context)
        return _enrich(self, plan, context, None)

    enrich_plan.__doc__ = _py.SafetyTagEnricher.enrich_plan.__doc__

    def enrich_rendered(self, plan, context, render):
        if not self._fast_rendered:
            return _py.SafetyTagEnricher.enrich_rendered(self, plan, context, render)
        return _enrich(self, plan, context, render)

    enrich_rendered.__doc__ = _py.SafetyTagEnricher.enrich_rendered.__doc__

    def _rendered_key(self, plan, context):
        """The cache key :meth:`enrich_rendered` looks ``(plan, context)`` up by (None
        off the fast path, or without a cache): a caller that remembers it for the same
        plan and context (the service, per request body) can ask :meth:`_rendered_hit`."""
        if not self._fast_rendered or self.tag_cache is None or not isinstance(plan, dict):
            return None
        if not context:
            context = {}
        elif not isinstance(context, dict):
            return None
        return _cache_key(plan, context, True)

    def _rendered_hit(self, key, render):
        """:meth:`enrich_rendered` of the plan and context whose :meth:`_rendered_key`
        is ``key``, when that is a cache hit: the same answer and the same counting as
        the hit (``cache_hits``); None, with nothing counted, when the key is not cached
        now (or this enricher is off its fast path): the caller then enriches."""
        cdef double start = _now_ms()
        cache = self.tag_cache
        if not self._fast_rendered or not _ATOMIC_HITS or type(cache) is not _TagCache or type(key) is not bytes:
            return None
        node = (<_TagCache>cache).node(key)
        if node is None:
            return None
        return _hit_view(self, <_TagCache>cache, <_Node>node, start, render)


    def preprocess_text(self, text):
        """The reference's normaliser (NFKC, zero-width removal, (at)/(dot), homoglyphs); ASCII fast path."""
        return fast_normalize_text(text)

    def preprocess_plan(self, plan):
        """Normalised copy of the plan (keys and order kept)."""
        if type(self).preprocess_text is not SafetyTagEnricher.preprocess_text:
            return _py.normalize_plan(plan, self.preprocess_text)  # a subclass's normaliser
        return _norm_dict(plan)

    def _generate_cache_key(self, plan, context):
        """A bytes key (structural encoding), equal exactly when the reference's key text is."""
        return _cache_key(plan, context, False)

    def _key_and_plan(self, plan, context):
        """With caching on, the key is built straight from the plan (normalising
        strings on the way) and the normalised copy is only made on a miss."""
        if not self._fast:  # a subclass hook is in play: let it run
            return _py.SafetyTagEnricher._key_and_plan(self, plan, context)
        if self.tag_cache is not None:
            return _cache_key(plan, context, True), None
        return None, _norm_dict(plan)

    def _scan_builtin(self, normalized, context):
        """The six built-in detectors fused into one pass (or called one by
        one while a ``detect`` of theirs is patched)."""
        if not _detectors_intact(self._builtin):
            return self._run_detectors(list(self._builtin), normalized, context)
        tags = _scan_fast(self._builtin, normalized, context, self.advanced)
        if tags is None:
            tags = _scan(self._builtin, normalized, context, self.advanced)
        return tags


def create_safety_tag_enricher(enable_caching=True):
    """``SafetyTagEnricher(enable_caching)`` of this tier."""
    return SafetyTagEnricher(enable_caching)
