"""C tier of the ethics family: rules compiled once into a flat program run by
a small Cython evaluator.

A rule's syntax tree (parsed by :mod:`lukhas_fast._ethics_dsl`, never
``eval``/``exec``) becomes nodes of a :class:`_Program`.  Identical
sub-expressions are one node (hash-consing) and every path is one slot, so
when a whole rule set is compiled as one program (:func:`make_program`, used
by ``RuleSet``) a predicate that several rules share -- ``equals(action,
"external_call")``, ``contains(params, ...)`` on the same ``params`` -- is
evaluated at most once per plan, and each path is resolved at most once.
Nodes are evaluated lazily in the rules' own order with ``and``/``or``
short-circuiting, so which rules fire, which fail, and their order are those
of evaluating the rules one by one.

Every predicate runs inline on pre-processed literals:

* numeric and string predicates: needles lowered, numbers converted, unit
  limits parsed at compile time; ``contains`` over a dict, list or tuple never
  prints it when the needle cannot span two printed atoms (no quote, bracket,
  brace, parenthesis, colon, comma, space or backslash): each atom (string
  body, number, None/True/False) is searched on its own, in place for one
  needle, and through one folded NUL-separated copy of the atoms per plan
  when several rules search the same path (csrc/asciifold.h); otherwise,
  and for text the walk cannot read as printed (escapes, non-ASCII), the
  lowered ``str()`` is built once per plan and shared by every rule;
* tag predicates: the tags of a plan are normalised once per evaluation into
  a :class:`_TagView` (names, categories, best confidence per name) shared by
  every tag predicate of every rule; ``requires_human_for_tags`` and
  ``high_risk_tag_combination`` are set operations on it.  Tag shapes the
  view does not cover exactly (names that are not str, odd confidences) take
  the shared Python predicate, so results never differ;
* domain predicates: a bounded LRU memo (:data:`DOMAIN_CACHE_SIZE` URLs of
  at most :data:`DOMAIN_CACHE_MAX_URL` characters) from URL to its canonical
  host and registrable domain, shared by ``domain_is``/``domain_etld1`` and by
  every rule; a repeated URL costs one dict lookup;
* ``matches``: the pattern is compiled once, at rule compile time.

Results equal the pure-Python tier's (the oracle), including the fail-closed
error behaviour.  Plans are not expected to change while they are evaluated.
"""

cimport cython
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdlib cimport malloc, free, realloc
from libc.string cimport memset, memcpy, memcmp, strlen
from cpython.mem cimport PyMem_Free
from cpython.number cimport PyNumber_Float
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsDouble

cdef extern from "sha256.h":
    ctypedef struct lk_sha256:
        pass
    void lk_sha256_init(lk_sha256 *s) nogil
    void lk_sha256_update(lk_sha256 *s, const void *data, size_t n) nogil
    void lk_sha256_final(lk_sha256 *s, unsigned char *out) nogil
    int lk_sha256_uses_ni() nogil
    void lk_sha256_hex(const void *data, size_t len, char *hex, size_t n, int allow_ni) nogil

cdef extern from "asciifold.h" nogil:
    int LK_FOLD_MAX_NEEDLE
    int lk_fold_find(const unsigned char *s, size_t n, const unsigned char *needle, size_t m, int *esc)
    int lk_fold_ascii(const unsigned char *s, size_t n, unsigned char *out)
    int lk_repr_scan(const unsigned char *s, size_t n)
    int lk_find(const unsigned char *h, size_t n, const unsigned char *nd, size_t m)
    int LK_REPR_ESCAPE, LK_REPR_SQUOTE, LK_REPR_DQUOTE

cdef extern from "string.h":
    void *memmem(const void *, size_t, const void *, size_t)  # GNU: Python.h defines _GNU_SOURCE

cdef extern from "Python.h":
    ctypedef PyObject *(*vectorcallfunc)(PyObject *, PyObject *const *, size_t, PyObject *)
    ctypedef PyObject *(*ternaryfunc)(PyObject *, PyObject *, PyObject *) except NULL
    ctypedef PyObject *(*getattrofunc)(PyObject *, PyObject *)
    ctypedef int (*descrsetfunc)(PyObject *, PyObject *, PyObject *)
    ctypedef struct PyTypeObject:
        Py_ssize_t tp_vectorcall_offset
        unsigned long tp_flags
        ternaryfunc tp_call
        getattrofunc tp_getattro
        descrsetfunc tp_descr_set
    PyObject *PyObject_GenericGetAttr(PyObject *, PyObject *)
    object PyObject_GenericGetDict(object, void *)
    PyObject *_PyType_Lookup(object, object)
    PyTypeObject *Py_TYPE(object)
    unsigned long Py_TPFLAGS_HAVE_VECTORCALL
    Py_ssize_t PyVectorcall_NARGS(size_t)
    void PyType_Modified(PyTypeObject *)
    str PyUnicode_Substring(object, Py_ssize_t, Py_ssize_t)
    char *PyBytes_AS_STRING(object)
    Py_ssize_t PyBytes_GET_SIZE(object)
    bint PyUnicode_IS_ASCII(object)
    const char *PyUnicode_AsUTF8AndSize(object, Py_ssize_t *) except NULL
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    void *PyUnicode_DATA(object)
    long long PyLong_AsLongLongAndOverflow(object, int *) except? -1
    char *PyOS_double_to_string(double, char, int, int, int *) except NULL
    int Py_DTSF_ADD_DOT_0
    int Py_ReprEnter(object) except -1
    void Py_ReprLeave(object)
    PyObject *PyThreadState_GetDict()
    PyObject *PyDict_GetItemWithError(object, object) except? NULL
    bint PyDict_Next(object, Py_ssize_t *, PyObject **, PyObject **)
    PyObject *PyList_GET_ITEM(object, Py_ssize_t)
    PyObject *PyTuple_GET_ITEM(object, Py_ssize_t)
    Py_ssize_t PyList_GET_SIZE(object)
    object PyBytes_FromStringAndSize(const char *, Py_ssize_t)

import math as _math
from sys import intern as _intern
import re as _re
from collections import OrderedDict as _OrderedDict

from lukhas_fast import _ethics_dsl as dsl
from lukhas_fast import _ethics_engine as eng
from lukhas_fast._ethics_dsl import (PREDICATES, DSLError, RuleEvaluationError, canonical_domain,
                                     hash_rule, parse_bytes, parse_seconds)
from lukhas_fast._ethics_engine import (EthicsAction, EthicsEngine, EthicsResult, Priority, ReasonCode,
                                        RuleLoadError, RuleSet)

__all__ = [
    "DSLError", "RuleEvaluationError", "PREDICATES", "canonical_domain", "parse_bytes", "parse_seconds",
    "compile_rule", "hash_rule", "EthicsAction", "Priority", "ReasonCode", "EthicsRule", "EthicsResult",
    "RuleSet", "EthicsEngine", "RuleLoadError", "load_ethics_rules", "get_ethics_engine", "backend_details",
]

#: Entries of the URL -> (canonical host, registrable domain) memo (LRU).
DOMAIN_CACHE_SIZE = 4096
#: URLs longer than this are not memoised (bounds the memo's memory).
DOMAIN_CACHE_MAX_URL = 2048
#: Per ``matches`` pattern: texts remembered with their result (cleared when full), and
#: the longest text remembered.  At most 256 x 512 characters per pattern.
cdef Py_ssize_t _MATCH_MEMO_SIZE = 256
cdef Py_ssize_t _MATCH_MEMO_MAX_TEXT = 512


def backend_details():
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"evaluator": "Cython rule-set program (shared sub-expressions, per-plan tag view, "
                         "URL memo, precompiled patterns)",
            "sha256": "C, x86 SHA extensions" if lk_sha256_uses_ni() else "C, scalar"}


cdef enum:
    OP_AND = 0
    OP_OR = 1
    OP_NOT = 2
    OP_PRED = 3

cdef enum:
    P_GENERIC = 0
    P_EQUALS = 1
    P_CONTAINS = 2
    P_GT = 3
    P_LT = 4
    P_IS_EMPTY = 5
    P_IS_PRESENT = 6
    P_BYTES_LTE = 7
    P_SECONDS_LTE = 8
    P_CONSENT = 9
    P_DOMAIN_IS = 10
    P_DOMAIN_ETLD1 = 11
    P_MATCHES = 12
    P_HAS_TAG = 13
    P_HAS_CATEGORY = 14
    P_TAG_CONF = 15
    P_HUMAN = 16
    P_HIGH_RISK = 17

cdef dict _PRED_CODES = {
    "equals": P_EQUALS, "contains": P_CONTAINS, "greater_than": P_GT, "less_than": P_LT,
    "is_empty": P_IS_EMPTY, "is_present": P_IS_PRESENT, "param_bytes_lte": P_BYTES_LTE,
    "param_seconds_lte": P_SECONDS_LTE, "not_has_consent": P_CONSENT, "domain_is": P_DOMAIN_IS,
    "domain_etld1": P_DOMAIN_ETLD1, "matches": P_MATCHES, "has_tag": P_HAS_TAG,
    "has_category": P_HAS_CATEGORY, "tag_confidence": P_TAG_CONF, "requires_human_for_tags": P_HUMAN,
    "high_risk_tag_combination": P_HIGH_RISK,
}
cdef dict _OPS = {"and": OP_AND, "or": OP_OR, "not": OP_NOT}
cdef dict _EMPTY = {}
cdef object _UNSET = object()
cdef frozenset _NO_CONSENT = dsl._NO_CONSENT
cdef frozenset _HUMAN_TAGS = dsl._HUMAN_TAGS
cdef tuple _HIGH_RISK = dsl._HIGH_RISK
cdef dict _CATEGORY_NAMES = dsl._CATEGORY_NAMES


#: paths of up to this many parts resolve from their prefix's slot (every prefix gets one);
#: longer ones step from the root on their own, so that a hostile rule with a path of
#: 10^5 parts costs linear time and no deep recursion
cdef int _PREFIX_PARTS = 16


cdef inline object _step(object part, object cur):
    """One part of a path: ``cur[part]`` (``cur.get(part)`` for a dict subclass), None when
    missing or when ``cur`` is not a dict (so a path through a non-dict is None)."""
    cdef PyObject *v
    if type(cur) is dict:
        v = PyDict_GetItemWithError(cur, part)
        return None if v == NULL else <object>v
    if isinstance(cur, dict):
        return cur.get(part)
    return None


cdef inline bint _is_empty(object v) except -1:
    if v is None:
        return True
    t = type(v)
    if t is str or t is list or t is dict or t is tuple or t is set or isinstance(v, (str, list, dict, tuple, set)):
        return len(v) == 0
    return False


# not_has_consent on an ASCII str: its lowercase compared with the (ASCII)
# refusal words in a stack buffer, without building the lowered str
cdef tuple _NO_CONSENT_ASCII = tuple(sorted(w.encode("ascii") for w in _NO_CONSENT))
cdef Py_ssize_t _NO_CONSENT_MAX = max(len(w) for w in _NO_CONSENT_ASCII)
assert _NO_CONSENT_MAX < 16


cdef bint _ascii_no_consent(str s):
    cdef char low[16]
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(s)
    cdef const unsigned char *d = <const unsigned char *>PyUnicode_DATA(s)
    cdef unsigned char c
    if n > _NO_CONSENT_MAX:
        return False
    for i in range(n):
        c = d[i]
        low[i] = <char>(c + 32 if 65 <= c <= 90 else c)
    for w in _NO_CONSENT_ASCII:
        if PyBytes_GET_SIZE(w) == n and memcmp(PyBytes_AS_STRING(w), low, n) == 0:
            return True
    return False


# --- domains: a bounded LRU memo shared by every rule ------------------------------------
# URL (exact str) -> [canonical host, registrable domain or _UNSET].  All memo
# operations are single C calls on exact-str keys under the GIL, so the memo
# is thread-safe without a lock (no Python code runs between lookup and update).

_domains = _OrderedDict()


cdef object _domains_get = _domains.get
cdef object _domains_touch = _domains.move_to_end


cdef list _domain_entry(str url):
    hit = _domains_get(url)
    if hit is not None:
        _domains_touch(url)
        return <list>hit
    entry = [canonical_domain(url), _UNSET]
    if len(url) <= DOMAIN_CACHE_MAX_URL:
        _domains[url] = entry
        if len(_domains) > DOMAIN_CACHE_SIZE:
            _domains.popitem(False)
    return entry


cdef inline list _domain_of(object s):
    """The memo entry of ``s`` (an exact str) or a fresh one (anything else)."""
    if type(s) is str:
        return _domain_entry(<str>s)
    return [canonical_domain(s), _UNSET]


cdef inline object _registrable(list entry):
    reg = entry[1]
    if reg is _UNSET:
        reg = dsl.registrable_domain(entry[0])
        entry[1] = reg
    return reg


def clear_domain_cache():
    """Empty the URL memo (tests, or after changing ``DOMAIN_CACHE_SIZE``)."""
    _domains.clear()


def domain_cache_info():
    """``{"size": entries, "max_size": DOMAIN_CACHE_SIZE, "max_url": DOMAIN_CACHE_MAX_URL}``."""
    return {"size": len(_domains), "max_size": DOMAIN_CACHE_SIZE, "max_url": DOMAIN_CACHE_MAX_URL}


# --- tags: one normalised view per tags object per evaluation ------------------------------

cdef inline bint _plain_conf(object c):
    """A confidence whose comparisons are a total order (so 'some >= m' is 'max >= m')."""
    t = type(c)
    if t is float:
        return c == c  # not NaN
    return t is int or t is bool


cdef class _TagView:
    """The entries of one tags value as the shared ``_entries`` reads them, in
    parallel C arrays of strong references: names (exact str), categories
    (exact str or None) and confidences (None: no confidence, which satisfies
    any minimum).  Plans carry a handful of tags, so a linear scan beats
    hashing, and arrays (reused by the frame from one evaluation to the next)
    cost no allocation per plan.  ``ok`` is False when some entry is outside
    what the view answers exactly (then the tag predicates call the shared
    Python predicates)."""
    cdef bint ok
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef PyObject **names
    cdef PyObject **cats
    cdef PyObject **confs

    def __cinit__(self):
        self.ok = True
        self.n = self.cap = 0
        self.names = self.cats = self.confs = NULL

    def __dealloc__(self):
        self.reset()
        free(self.names)
        free(self.cats)
        free(self.confs)

    cdef void reset(self):
        """Drop every entry (the arrays are kept for the next plan)."""
        cdef Py_ssize_t i, n = self.n
        self.n = 0
        self.ok = True
        for i in range(n):
            Py_DECREF(<object>self.names[i])
            Py_DECREF(<object>self.cats[i])
            Py_DECREF(<object>self.confs[i])

    cdef int add(self, object name, object cat, object conf) except -1:
        cdef Py_ssize_t cap
        if type(name) is not str or (cat is not None and type(cat) is not str) or \
                (conf is not None and not _plain_conf(conf)):
            self.ok = False
            return 0
        if self.n == self.cap:
            cap = self.cap * 2 if self.cap else 8
            if not _grow(&self.names, cap) or not _grow(&self.cats, cap) or not _grow(&self.confs, cap):
                raise MemoryError()
            self.cap = cap
        Py_INCREF(name)
        Py_INCREF(cat)
        Py_INCREF(conf)
        self.names[self.n] = <PyObject *>name
        self.cats[self.n] = <PyObject *>cat
        self.confs[self.n] = <PyObject *>conf
        self.n += 1
        return 0

    cdef inline bint has(self, object name):
        cdef Py_ssize_t i
        for i in range(self.n):
            if self.names[i] == <PyObject *>name or (<str><object>self.names[i]) == <str>name:  # exact strs
                return True
        return False


cdef inline bint _grow(PyObject ***arr, Py_ssize_t cap):
    cdef PyObject **q = <PyObject **>realloc(arr[0], cap * sizeof(PyObject *))
    if q == NULL:
        return False
    arr[0] = q
    return True


# getattr(category, "value", category) of an Enum member is a Python-level
# property call (the costliest part of reading a SafetyTag); members are
# singletons with constant values, so their value is remembered by identity
# in a small table of strong references (the member is held, so its address
# cannot be reused): a pointer scan, no hashing.  Bounded: 16 members, the
# oldest replaced when full (a category enum has a handful of members).
cdef enum:
    _ENUM_SLOTS = 16
cdef PyObject *_enum_keys[_ENUM_SLOTS]
cdef PyObject *_enum_vals[_ENUM_SLOTS]
cdef int _enum_used = 0
cdef int _enum_next = 0
from lukhas_fast._tags_py import SafetyTag as _SafetyTag, TaggedPlan as _TaggedPlan
cdef object _Enum = __import__("enum").Enum


cdef int _remember_enum(object member, object value) except -1:
    global _enum_used, _enum_next
    cdef int slot
    cdef PyObject *old_k = NULL
    cdef PyObject *old_v = NULL
    if _enum_used < _ENUM_SLOTS:
        slot = _enum_used
        _enum_used += 1
    else:
        slot = _enum_next
        _enum_next = (_enum_next + 1) % _ENUM_SLOTS
        old_k, old_v = _enum_keys[slot], _enum_vals[slot]
    Py_INCREF(member)
    Py_INCREF(value)
    _enum_keys[slot] = <PyObject *>member
    _enum_vals[slot] = <PyObject *>value
    if old_k != NULL:  # released only once the slot is consistent again
        Py_DECREF(<object>old_k)
        Py_DECREF(<object>old_v)
    return 0


cdef inline object _cat_value(object cat):
    cdef int i
    if cat is None or type(cat) is str:
        return cat
    for i in range(_enum_used):
        if _enum_keys[i] == <PyObject *>cat:
            return <object>_enum_vals[i]
    if isinstance(cat, _Enum):
        value = getattr(cat, "value", cat)
        _remember_enum(cat, value)
        return value
    return getattr(cat, "value", cat)


cdef inline bint _plain_tagged(object tags, list inner):
    if type(tags) is not _TaggedPlan:
        return False
    for el in inner:
        if isinstance(el, (str, dict)):
            return False
    return True


cdef _TagView _new_view():
    return _TagView.__new__(_TagView)


cdef inline bint _ascii_space(unsigned char c):
    """str.isspace() of an ASCII character (what str.strip() removes)."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


cdef int _fill_comma_ascii(_TagView v, str tags) except -1:
    """``[p.strip() for p in tags.split(",")]`` of an ASCII str, without the
    list and the unstripped pieces."""
    cdef const unsigned char *d = <const unsigned char *>PyUnicode_DATA(tags)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(tags)
    cdef Py_ssize_t a = 0, b, e
    while True:
        b = a
        while b < n and d[b] != 44:  # ','
            b += 1
        e = b
        while a < e and _ascii_space(d[a]):
            a += 1
        while e > a and _ascii_space(d[e - 1]):
            e -= 1
        v.add(PyUnicode_Substring(tags, a, e), None, None)
        if b >= n:
            return 0
        a = b + 1


cdef object _K_NAME = _intern("name")
cdef object _K_CATEGORY = _intern("category")
cdef object _K_CONFIDENCE = _intern("confidence")


cdef int _fill_view(_TagView v, object tags) except -1:
    """Read ``tags`` into the (empty) view ``v``."""
    cdef PyObject *pn
    cdef PyObject *pc
    cdef PyObject *pf
    t = type(tags)
    if t is str:
        if PyUnicode_IS_ASCII(tags):
            return _fill_comma_ascii(v, <str>tags)
        for p in (<str>tags).split(","):
            v.add(p.strip(), None, None)
        return 0
    if t is dict:
        for k, val in (<dict>tags).items():
            if type(val) is dict:
                if not v.ok:
                    break
                c = (<dict>val).get("confidence", 1.0)
                if not _plain_conf(c):
                    v.ok = False
                    break
                v.add(k, (<dict>val).get("category"), c)
            elif isinstance(val, dict):
                v.ok = False  # a dict subclass: its .get is the shared predicate's business
                break
            else:
                v.add(k, None, None)
        return 0
    if t is list or t is tuple or t is set or t is frozenset:
        for el in tags:
            if not v.ok:
                break
            te = type(el)
            if te is str:
                v.add(el, None, None)
            elif te is dict:
                if "name" in el:
                    cat = (<dict>el).get("category")
                    v.add((<dict>el)["name"], _cat_value(cat), (<dict>el).get("confidence"))
            elif isinstance(el, (str, dict)):
                v.ok = False
            elif te is _SafetyTag:
                # our dataclass: plain instance attributes, read from its __dict__
                # (borrowed lookups: no Python-level .get call per attribute)
                d = PyObject_GenericGetDict(el, NULL)
                pn = PyDict_GetItemWithError(<dict>d, _K_NAME)
                pc = PyDict_GetItemWithError(<dict>d, _K_CATEGORY)
                pf = PyDict_GetItemWithError(<dict>d, _K_CONFIDENCE)
                if pn != NULL and pc != NULL and pf != NULL:
                    name, cat, conf = <object>pn, <object>pc, <object>pf
                else:  # an attribute deleted: getattr
                    name = getattr(el, "name", None)
                    cat = getattr(el, "category", None)
                    conf = getattr(el, "confidence", None)
                if name is None:
                    v.ok = False
                else:
                    v.add(name, _cat_value(cat), conf)
            else:
                name = getattr(el, "name", None)
                if name is None:
                    v.ok = False  # a bare non-str element: compared with == by the predicates
                else:
                    cat = getattr(el, "category", None)
                    v.add(name, _cat_value(cat), getattr(el, "confidence", None))
        return 0
    if t is int or t is float or t is bool:
        return v  # no entries
    inner = getattr(tags, "tags", None)
    # a TaggedPlan.  Ours: its tag_names property ({t.name for t in tags}) only fails
    # for elements without .name; str and dict elements are the ones the view would
    # read anyway, so only then is the property evaluated; any other element without
    # .name makes the view not ok (the shared predicate decides)
    if type(inner) is list and (_plain_tagged(tags, inner) or hasattr(tags, "tag_names")):
        return _fill_view(v, inner)
    v.ok = False
    return 0


# --- per-evaluation state ---------------------------------------------------------------

# --- repr as UTF-8, written straight into a buffer -----------------------------------------
# ``repr()`` of the JSON-like values plans are made of (exact str, int, float,
# bool, None, dict, list, tuple), byte for byte what Python writes, without
# building the intermediate str objects; anything else is ``repr()``-ed by
# Python.  Self-references print ``{...}``/``[...]`` at the same places as in
# CPython.  CPython marks every container with Py_ReprEnter/Py_ReprLeave (two
# lookups in the thread state's dict and a list edit each); the writer instead
# keeps the containers it is inside on its own stack and registers them with
# Py_ReprEnter only when Python code could look (just before it calls repr() of
# an object it does not write itself), so a plan of plain values costs none of
# that.  When a repr is already in progress on this thread (the writer was
# reached from inside some __repr__) or the nesting is deeper than _STACK, it
# marks each container as CPython does.

DEF _STACK = 32

cdef struct _Buf:
    char *p
    Py_ssize_t n
    Py_ssize_t cap
    bint ascii
    bint slow          # mark every container with Py_ReprEnter (see above)
    int depth          # containers on ``stack`` (outermost first)
    int entered        # how many of them (from the outermost) were offered to Py_ReprEnter
    unsigned int marked  # bit k: stack[k] was marked by us (Py_ReprLeave it when done)
    PyObject *stack[_STACK]


cdef object _PY_REPR_KEY = _intern("Py_Repr")  # CPython's key of the in-progress list (Objects/object.c)


cdef bint _repr_in_progress() except -1:
    """True when a repr is in progress on this thread (CPython's Py_ReprEnter
    list is not empty): containers it marked print as ``{...}``/``[...]``."""
    cdef PyObject *d = PyThreadState_GetDict()
    cdef PyObject *lst
    if d != NULL:
        lst = PyDict_GetItemWithError(<object>d, _PY_REPR_KEY)
        if lst != NULL:
            return type(<object>lst) is not list or PyList_GET_SIZE(<object>lst) != 0
    return False


cdef int _buf_init(_Buf *b) except -1:
    """An empty buffer; ``slow`` when a repr is in progress on this thread."""
    b.p = NULL
    b.n = b.cap = 0
    b.ascii = True
    b.depth = b.entered = 0
    b.marked = 0
    b.slow = _repr_in_progress()
    return 0


cdef int _enter(_Buf *b, object o) except -1:
    """Start writing container ``o``: 1 when it is already being written (print
    ``{...}``), 2 when marked with Py_ReprEnter, 0 when pushed on the stack."""
    cdef int k
    if b.slow or b.depth >= _STACK:
        return 1 if Py_ReprEnter(o) else 2
    for k in range(b.depth):
        if b.stack[k] == <PyObject *>o:
            return 1
    b.stack[b.depth] = <PyObject *>o
    b.depth += 1
    return 0


cdef void _leave(_Buf *b, object o, int how):
    """Done writing container ``o`` (``how``: what _enter returned)."""
    if how == 2:
        Py_ReprLeave(o)
        return
    b.depth -= 1
    if b.entered > b.depth:
        if b.marked & (1u << b.depth):
            Py_ReprLeave(o)
            b.marked &= ~(1u << b.depth)
        b.entered = b.depth


cdef int _mark_stack(_Buf *b) except -1:
    """Before Python code runs: mark the stacked containers not yet marked, as
    CPython would have (one already in progress stays unmarked by us, as when
    Py_ReprEnter answers 1 in CPython; that cannot happen unless a __repr__
    left its mark behind)."""
    while b.entered < b.depth:
        if Py_ReprEnter(<object>b.stack[b.entered]) == 0:
            b.marked |= 1u << b.entered
        b.entered += 1
    return 0


cdef int _buf_grow(_Buf *b, Py_ssize_t k) except -1:
    """Room for ``k`` more bytes (the buffer doubles; most plans fit the first 1 KiB)."""
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else 1024
    cdef char *q
    while cap < b.n + k:
        cap *= 2
    q = <char *>realloc(b.p, cap)
    if q == NULL:
        raise MemoryError()
    b.p = q
    b.cap = cap
    return 0


cdef inline int _put(_Buf *b, const char *s, Py_ssize_t k) except -1:
    if b.n + k > b.cap:
        _buf_grow(b, k)
    memcpy(b.p + b.n, s, k)
    b.n += k
    return 0


cdef inline int _fmt_int(long long v, char *num):
    """Decimal digits of ``v`` (what int.__repr__ writes) at the end of
    ``num[24]``, without printf; returns where they start."""
    cdef int i = 24
    cdef unsigned long long u = <unsigned long long>(-(v + 1)) + 1 if v < 0 else <unsigned long long>v
    while True:
        i -= 1
        num[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if v < 0:
        i -= 1
        num[i] = 45  # '-'
    return i


cdef int _put_int(_Buf *b, long long v) except -1:
    cdef char num[24]
    cdef int i = _fmt_int(v, num)
    return _put(b, num + i, 24 - i)


cdef int _put_pyrepr(_Buf *b, object o) except -1:
    cdef Py_ssize_t k
    if b.entered < b.depth and type(o) is not str and type(o) is not int:
        _mark_stack(b)  # repr() may run Python code (str and int reprs do not)
    r = repr(o)
    cdef const char *u = PyUnicode_AsUTF8AndSize(r, &k)
    if not PyUnicode_IS_ASCII(r):
        b.ascii = False
    return _put(b, u, k)


cdef int _put_repr(_Buf *b, object o) except -1:
    cdef Py_ssize_t k, i, n
    cdef const unsigned char *d
    cdef bint sq, dq, special
    cdef unsigned char c
    cdef int overflow
    cdef long long iv
    cdef char *fs
    cdef PyObject *key
    cdef PyObject *val
    cdef int how
    t = type(o)
    if t is str:
        if PyUnicode_IS_ASCII(o):
            d = <const unsigned char *>PyUnicode_DATA(o)
            k = PyUnicode_GET_LENGTH(o)
            how = lk_repr_scan(d, k)  # control characters and backslashes are escaped
            special = (how & LK_REPR_ESCAPE) != 0
            sq = (how & LK_REPR_SQUOTE) != 0
            dq = (how & LK_REPR_DQUOTE) != 0
            if not special and not (sq and dq):
                _put(b, '"' if sq else "'", 1)
                _put(b, <const char *>d, k)
                return _put(b, '"' if sq else "'", 1)
        return _put_pyrepr(b, o)
    if o is None:
        return _put(b, "None", 4)
    if o is True:
        return _put(b, "True", 4)
    if o is False:
        return _put(b, "False", 5)
    if t is int:
        iv = PyLong_AsLongLongAndOverflow(o, &overflow)
        if overflow:
            return _put_pyrepr(b, o)
        return _put_int(b, iv)
    if t is float:
        fs = PyOS_double_to_string(<double>o, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            _put(b, fs, strlen(fs))
        finally:
            PyMem_Free(fs)
        return 0
    if t is dict:
        if len(<dict>o) == 0:
            return _put(b, "{}", 2)
        how = _enter(b, o)
        if how == 1:
            return _put(b, "{...}", 5)
        try:
            _put(b, "{", 1)
            i = 0
            n = 0
            while PyDict_Next(o, &i, &key, &val):
                ko = <object>key  # strong references while the values' repr runs
                vo = <object>val
                if n:
                    _put(b, ", ", 2)
                n += 1
                _put_repr(b, ko)
                _put(b, ": ", 2)
                _put_repr(b, vo)
            _put(b, "}", 1)
        finally:
            _leave(b, o, how)
        return 0
    if t is list:
        if PyList_GET_SIZE(o) == 0:
            return _put(b, "[]", 2)
        how = _enter(b, o)
        if how == 1:
            return _put(b, "[...]", 5)
        try:
            _put(b, "[", 1)
            i = 0
            while i < PyList_GET_SIZE(o):  # re-read: a value's repr may change the list
                if i:
                    _put(b, ", ", 2)
                _put_repr(b, <object>PyList_GET_ITEM(o, i))
                i += 1
            _put(b, "]", 1)
        finally:
            _leave(b, o, how)
        return 0
    if t is tuple:
        n = len(<tuple>o)
        if n == 0:
            return _put(b, "()", 2)
        how = _enter(b, o)
        if how == 1:
            return _put(b, "(...)", 5)
        try:
            _put(b, "(", 1)
            for i in range(n):
                if i:
                    _put(b, ", ", 2)
                _put_repr(b, <object>PyTuple_GET_ITEM(o, i))
            _put(b, ",)" if n == 1 else ")", 2 if n == 1 else 1)
        finally:
            _leave(b, o, how)
        return 0
    return _put_pyrepr(b, o)


cdef inline bint _bytes_find(bytes hay, bytes needle):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(needle)
    if n == 0:
        return True
    return lk_find(<const unsigned char *>PyBytes_AS_STRING(hay), PyBytes_GET_SIZE(hay),
                   <const unsigned char *>PyBytes_AS_STRING(needle), n)


cdef object _lowered_ascii_repr(object o):
    """``str(o).lower()`` of an exact dict or list as ASCII bytes, or None when
    the text is not ASCII (the caller then lowers it with Python)."""
    cdef _Buf b
    cdef Py_ssize_t i
    cdef char c
    _buf_init(&b)
    try:
        _put_repr(&b, o)
        if not b.ascii:
            return None
        for i in range(b.n):
            c = b.p[i]
            if 65 <= c <= 90:
                b.p[i] = c + 32
        return PyBytes_FromStringAndSize(b.p, b.n)
    finally:
        free(b.p)


cdef object _lowered(object hay):
    """``str(hay).lower()``: ASCII bytes for dicts and lists that print as
    ASCII, a str otherwise."""
    text = None
    if type(hay) is dict or type(hay) is list:
        text = _lowered_ascii_repr(hay)
    if text is None:
        text = str(hay).lower()
    return text


# --- contains() over a container without printing it -----------------------------------
#
# ``contains(params, "hack")`` is ``"hack" in str(params).lower()``.  When the
# needle uses none of the characters that a dict/list/tuple repr puts between
# its atoms (quotes, brackets, braces, parentheses, ``:``, ``,``, space,
# backslash), a match can only lie inside one atom's printed body, so each
# atom is searched on its own (csrc/asciifold.h) and the text is never built.
# The walk answers -1 whenever it cannot tell (a non-ASCII or escaped string
# without a match, a type whose repr it does not know, deep nesting, a repr in
# progress on this thread); the caller then prints the container as before.

cdef unsigned char _WALK_OK[128]     # needle characters the walk accepts
cdef unsigned char _NUM_CHARS[128]   # characters of int/float reprs ("inf", "nan", "1e+16")
for _c in range(0x21, 0x7f):
    if chr(_c) not in "'\"{}[](),: \\":
        _WALK_OK[_c] = 1
for _c in "0123456789.-+einfa":
    _NUM_CHARS[ord(_c)] = 1
DEF _WALK_DEPTH = 16


cdef object _walk_needle(str needle):
    """The lowered needle as ASCII bytes when the walk can search for it, else None."""
    if not needle.isascii() or not 1 <= len(needle) <= LK_FOLD_MAX_NEEDLE:
        return None
    for ch in needle:
        if not _WALK_OK[ord(ch)]:
            return None
    return needle.encode("ascii")


cdef bint _numeric_needle(bytes needle):
    """Whether ``needle`` can occur in the repr of an int or a float."""
    for c in needle:
        if not _NUM_CHARS[c]:
            return False
    return True


cdef extern from "Python.h":
    # borrowed-pointer forms for the walk below, which must not touch reference counts
    PyTypeObject *_type_of "Py_TYPE"(PyObject *)
    bint _p_is_ascii "PyUnicode_IS_ASCII"(PyObject *)
    void *_p_udata "PyUnicode_DATA"(PyObject *)
    Py_ssize_t _p_ulen "PyUnicode_GET_LENGTH"(PyObject *)
    bint _p_dict_next "PyDict_Next"(PyObject *, Py_ssize_t *, PyObject **, PyObject **)
    Py_ssize_t _p_size "Py_SIZE"(PyObject *)
    PyObject *_p_list_item "PyList_GET_ITEM"(PyObject *, Py_ssize_t)
    PyObject *_p_tuple_item "PyTuple_GET_ITEM"(PyObject *, Py_ssize_t)
    long long _p_as_ll "PyLong_AsLongLongAndOverflow"(PyObject *, int *) except? -1
    double _p_float_value "PyFloat_AS_DOUBLE"(PyObject *)
    PyTypeObject PyUnicode_Type, PyDict_Type, PyList_Type, PyTuple_Type, PyLong_Type, PyFloat_Type
    PyObject *_p_none "Py_None"
    PyObject *_p_true "Py_True"
    PyObject *_p_false "Py_False"


DEF _ATOMS_KEEP = 65536  # a frame frees a larger atoms buffer after the evaluation


cdef struct _Walk:
    const unsigned char *nd  # search for this needle (m bytes, from _walk_needle); NULL: fill ``out``
    Py_ssize_t m
    bint numbers             # visit int and float atoms (a search skips them when the needle cannot occur in one)
    _Buf *out                # fill: the folded atoms, NUL-separated


cdef int _atoms_put(_Buf *b, const char *s, Py_ssize_t n, bint fold) except -1:
    """Append ``s[0:n]`` (folded to lower case when ``fold``) and a NUL to
    ``b``; 1 when ``s`` holds a byte that repr escapes."""
    cdef int bad = 0
    if b.n + n + 1 > b.cap:
        _buf_grow(b, n + 1)
    if fold:
        bad = lk_fold_ascii(<const unsigned char *>s, n, <unsigned char *>b.p + b.n)
    else:
        memcpy(b.p + b.n, s, n)
    b.n += n
    b.p[b.n] = 0  # no walk needle holds a NUL: a match never spans two atoms
    b.n += 1
    return bad


cdef inline int _walk_atom(_Walk *w, const char *s, Py_ssize_t n, bint fold) except -2:
    """One printed atom: a search answers 1 (found), 0 (not in it) or -1
    (cannot tell: an escaped byte, whose escape letters could match); a fill
    answers 0, or -1 for an escaped byte."""
    cdef int esc = 0
    if w.nd == NULL:
        return -1 if _atoms_put(w.out, s, n, fold) else 0
    if lk_fold_find(<const unsigned char *>s, n, w.nd, w.m, &esc):
        return 1
    return -1 if esc else 0


cdef int _walk(PyObject *o, _Walk *w, int depth) except -2:
    """Walk container ``o``'s printed atoms in ``str(o)`` order: a search
    answers 1 when the needle occurs in ``str(o).lower()``, 0 when it does
    not, -1 when the walk cannot tell (the caller then prints ``o``); a fill
    answers 0, or -1 likewise.  Runs no Python code (exact built-in types
    only), so borrowed items stay valid and no reference count is touched."""
    cdef Py_ssize_t i
    cdef PyObject *key
    cdef PyObject *val
    cdef int r, overflow
    cdef long long iv
    cdef char num[24]
    cdef char *fs
    cdef PyTypeObject *t = _type_of(o)
    if t == &PyUnicode_Type:
        if not _p_is_ascii(o):
            return -1  # lower() of non-ASCII text may give ASCII letters (K -> k): print it
        return _walk_atom(w, <const char *>_p_udata(o), _p_ulen(o), True)
    if t == &PyDict_Type:
        if depth >= _WALK_DEPTH:
            return -1
        i = 0
        while _p_dict_next(o, &i, &key, &val):
            r = _walk(key, w, depth + 1)
            if r == 0:
                r = _walk(val, w, depth + 1)
            if r != 0:
                return r
        return 0
    if t == &PyList_Type or t == &PyTuple_Type:
        if depth >= _WALK_DEPTH:
            return -1
        for i in range(_p_size(o)):
            r = _walk(_p_list_item(o, i) if t == &PyList_Type else _p_tuple_item(o, i), w, depth + 1)
            if r != 0:
                return r
        return 0
    if o == _p_none:
        return _walk_atom(w, "none", 4, False)
    if o == _p_true:
        return _walk_atom(w, "true", 4, False)
    if o == _p_false:
        return _walk_atom(w, "false", 5, False)
    if t == &PyLong_Type:
        if not w.numbers:
            return 0
        iv = _p_as_ll(o, &overflow)
        if overflow:
            return -1
        i = _fmt_int(iv, num)
        return _walk_atom(w, num + i, 24 - i, False)
    if t == &PyFloat_Type:
        if not w.numbers:
            return 0
        fs = PyOS_double_to_string(_p_float_value(o), b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            return _walk_atom(w, fs, strlen(fs), False)
        finally:
            PyMem_Free(fs)
    return -1


cdef inline int _walk_contains(object hay, bytes needle, bint numeric) except -2:
    """The search walk of ``hay`` for ``needle`` (from _walk_needle)."""
    cdef _Walk w
    w.nd = <const unsigned char *>PyBytes_AS_STRING(needle)
    w.m = PyBytes_GET_SIZE(needle)
    w.numbers = numeric
    w.out = NULL
    return _walk(<PyObject *>hay, &w, 0)


cdef inline int _fill_atoms(_Frame f, object hay) except -2:
    """The fill walk of ``hay`` into the frame's atoms buffer (the text that
    several ``contains`` on the same path search, one lk_find each)."""
    cdef _Walk w
    w.nd = NULL
    w.m = 0
    w.numbers = True
    w.out = &f.atoms
    f.atoms.n = 0
    return _walk(<PyObject *>hay, &w, 0)


def _walk_probe(hay, str needle):
    """What the container walk of ``contains`` answers for ``hay`` and the
    (unlowered) ``needle``: 1, 0, or -1 when it cannot tell (the predicate then
    prints ``hay``), None when the needle is not one the walk searches.  For
    tests: a plain plan must be decided by the walk."""
    w = _walk_needle(needle.lower())
    if w is None:
        return None
    if _repr_in_progress():
        return -1
    return _walk_contains(hay, <bytes>w, _numeric_needle(<bytes>w))


# float() accepts, in an ASCII str, only these characters: digits, signs, the
# decimal point, exponent marks, underscores, whitespace (str.isspace) and the
# letters of "inf", "infinity", "nan" (any case).  An ASCII str with any other
# character cannot convert, so greater_than/less_than answer False without
# letting float() build and raise a ValueError (the costly part).
cdef unsigned char _FLOAT_CHARS[128]
for _c in "0123456789+-._eEiInNfFtTyYaA \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f":
    _FLOAT_CHARS[ord(_c)] = 1


cdef inline double _as_float(object v) except? -1.0:
    """``float(v)`` as a C double: exact floats and ints read directly (an int
    too large raises OverflowError, as float() does), anything else through
    PyNumber_Float, which is Python's float() (Cython's own conversion of a
    str parses differently: it accepted "\x1c1", which Python rejects)."""
    t = type(v)
    if t is float:
        return PyFloat_AS_DOUBLE(v)
    if t is int:
        return PyLong_AsDouble(v)
    return PyFloat_AS_DOUBLE(PyNumber_Float(v))


cdef inline bint _may_be_float(str s):
    cdef const unsigned char *d
    cdef Py_ssize_t i
    if not PyUnicode_IS_ASCII(s):
        return True  # non-ASCII digits and spaces convert: let float() decide
    d = <const unsigned char *>PyUnicode_DATA(s)
    for i in range(PyUnicode_GET_LENGTH(s)):
        if not _FLOAT_CHARS[d[i]]:
            return False
    return True


# parse_bytes/parse_seconds of a str are pure functions of the text: the
# results are remembered (None for "does not parse", i.e. ValueError or
# TypeError), per unit kind, for texts of at most 64 characters; cleared when
# 256 are held.  Other exceptions (an overflow) are raised again every time.
cdef dict _unit_memo = {}
cdef dict _seconds_memo = {}


cdef object _parse_unit(bint is_bytes, object text):
    cdef dict memo = _unit_memo if is_bytes else _seconds_memo
    cdef PyObject *hit
    cdef bint keep = type(text) is str and len(<str>text) <= 64
    if keep:
        hit = PyDict_GetItemWithError(memo, text)
        if hit != NULL:
            return <object>hit
    try:
        parsed = (parse_bytes if is_bytes else parse_seconds)(text)
    except (ValueError, TypeError):
        parsed = None
    if keep:
        if len(memo) >= 256:
            memo.clear()
        memo[text] = parsed
    return parsed


# --- per-evaluation state ---------------------------------------------------------------

cdef class _Frame:
    """State of one evaluation of a program on one plan: resolved paths, node
    results, lowered haystacks and tag views (keyed by identity; the objects
    are held, so ids cannot be reused).  A program keeps one spare frame and
    reuses it (cleared after each evaluation); a concurrent or reentrant
    evaluation gets a fresh one."""
    cdef object plan
    cdef object ctx
    cdef list pvals
    cdef list plower     # per path slot: its lowered text (contains), None until needed
    cdef int npaths
    cdef unsigned char *memo
    cdef int nmemo
    cdef dict texts
    cdef object view_obj
    cdef _TagView view
    cdef dict views
    cdef _TagView view0  # the first tags view of every evaluation, reused (see _TagView)
    cdef _Buf atoms      # folded atoms of one path's container (see _fill_atoms), kept between evaluations
    cdef int atoms_slot  # the path slot whose atoms are in ``atoms``; -1: none
    cdef const int *parent           # per path slot: the slot of its path minus the last part, or -1
    cdef const unsigned char *sctx   # ... whether it starts at the context (for parent -1)
    cdef list last                   # ... the parts to step through from there (a tuple)

    def __cinit__(self):
        self.atoms.p = NULL
        self.atoms.n = self.atoms.cap = 0
        self.atoms_slot = -1

    def __dealloc__(self):
        free(self.memo)
        free(self.atoms.p)

    cdef int clear(self) except -1:
        cdef int i
        self.plan = self.ctx = None
        for i in range(self.npaths):
            self.pvals[i] = _UNSET
            self.plower[i] = None
        self.texts = None
        self.atoms_slot = -1
        if self.atoms.cap > _ATOMS_KEEP:  # do not hold a hostile plan's worth of memory
            free(self.atoms.p)
            self.atoms.p = NULL
            self.atoms.cap = 0
        self.views = None
        self.view_obj = None
        self.view = None
        if self.view0 is not None:
            self.view0.reset()
        return 0

    cdef object path(self, int slot):
        """The value of path ``slot``, resolved once per evaluation; a path resolves from
        its prefix's value (``params.url`` from ``params``), so a prefix several paths
        share is looked up once (each step as :func:`_step`)."""
        cdef int par
        v = <object>PyList_GET_ITEM(self.pvals, slot)
        if v is _UNSET:
            par = self.parent[slot]
            if par >= 0:  # (chains are at most _PREFIX_PARTS deep: bounded recursion)
                v = self.path(par)
            else:
                v = self.ctx if self.sctx[slot] else self.plan
            for part in <tuple>PyList_GET_ITEM(self.last, slot):
                v = _step(part, v)
            self.pvals[slot] = v
        return v

    cdef object lowered(self, object hay):
        """``str(hay).lower()`` once per object per evaluation: ASCII bytes
        for dicts and lists that print as ASCII, a str otherwise."""
        cdef PyObject *hit
        if self.texts is None:
            self.texts = {}
        hit = PyDict_GetItemWithError(self.texts, id(hay))
        if hit != NULL and (<tuple>hit)[0] is hay:
            return (<tuple>hit)[1]
        text = _lowered(hay)
        self.texts[id(hay)] = (hay, text)
        return text

    cdef _TagView tag_view(self, object tags):
        cdef PyObject *hit
        if tags is self.view_obj and self.view is not None:
            return self.view
        if self.view is not None:  # a second tags object in this evaluation: keep both
            if self.views is None:
                self.views = {}
            self.views[id(self.view_obj)] = (self.view_obj, self.view)
        v = None
        if self.views is not None:
            hit = PyDict_GetItemWithError(self.views, id(tags))
            if hit != NULL and (<tuple>hit)[0] is tags:
                v = <_TagView>(<tuple>hit)[1]
        if v is None:
            if self.view is None and self.views is None:  # the first view: the reused one
                if self.view0 is None:
                    self.view0 = _new_view()
                v = self.view0
            else:
                v = _new_view()
            try:
                _fill_view(v, tags)
            except Exception:  # e.g. a tag object whose attribute raises: the
                v.reset()      # shared predicates raise (or not) as the oracle does
                v.ok = False
        self.view_obj = tags
        self.view = v
        return v


# --- predicates ----------------------------------------------------------------------------

cdef class _Pred:
    """One predicate node: code, shared function, arguments (literal values or
    path slots) and what the compiler worked out from the literals."""
    cdef int code
    cdef object fn
    cdef int nargs
    cdef tuple lit       # per argument: True for a literal
    cdef tuple vals      # per argument: the literal, or the path's parts
    cdef int *slot       # per argument: the path slot (-1 for a literal)
    cdef unsigned char *inctx  # per argument: path starts at the context
    cdef object pre      # literal-derived data (see _make_pred)
    cdef bint has_pre
    cdef double num
    cdef object pre2
    cdef bint has_pre2
    cdef object walk     # contains: the needle as bytes when _walk_contains can search for it
    cdef bint walk_num   # ... and whether it can occur in an int or float repr
    cdef bint walk_shared  # other walkable contains() of the program search the same path: share _fill_atoms

    def __cinit__(self):
        self.slot = NULL
        self.inctx = NULL

    def __dealloc__(self):
        free(self.slot)
        free(self.inctx)

    cdef inline object arg(self, int j, _Frame f):
        cdef int s = self.slot[j]
        if s < 0:
            return self.vals[j]
        return f.path(s)

    cdef object call(self, _Frame f):
        return self.fn(*[self.arg(j, f) for j in range(self.nargs)])

    cdef int run(self, _Frame f) except -1:
        cdef int code = self.code
        cdef double x, y
        cdef _TagView v
        cdef int r
        if code == P_EQUALS:
            return 1 if (self.arg(0, f) == self.arg(1, f)) else 0
        if code == P_CONTAINS:
            hay = self.arg(0, f)
            if hay is None:
                return 0
            needle = self.pre if self.has_pre else self.arg(1, f).lower()
            s0 = self.slot[0]
            if s0 >= 0:  # a path: its lowered text once per evaluation, shared by every rule
                text = f.plower[s0]
                if text is None:
                    t = type(hay)
                    if self.walk is not None and (t is dict or t is list or t is tuple):
                        if self.walk_shared:  # one folded copy of the atoms, one memmem per needle
                            if f.atoms_slot != s0 and not _repr_in_progress() and _fill_atoms(f, hay) == 0:
                                f.atoms_slot = s0
                            if f.atoms_slot == s0:
                                return lk_find(<const unsigned char *>f.atoms.p, f.atoms.n,
                                               <const unsigned char *>PyBytes_AS_STRING(self.walk),
                                               PyBytes_GET_SIZE(self.walk))
                        elif not _repr_in_progress():  # one needle: search in place, stop at a match
                            r = _walk_contains(hay, <bytes>self.walk, self.walk_num)
                            if r >= 0:
                                return r
                    text = (<str>hay).lower() if type(hay) is str else _lowered(hay)
                    f.plower[s0] = text
            elif type(hay) is str:
                return 1 if needle in (<str>hay).lower() else 0
            else:
                text = f.lowered(hay)
            if type(text) is str:
                if PyUnicode_IS_ASCII(text) and type(needle) is str and PyUnicode_IS_ASCII(needle):
                    # ASCII in ASCII (an action name): memchr/memcmp, not str.__contains__
                    return lk_find(<const unsigned char *>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text),
                                   <const unsigned char *>PyUnicode_DATA(needle), PyUnicode_GET_LENGTH(needle))
                return 1 if needle in <str>text else 0
            if type(text) is bytes and type(needle) is not str:
                return 1 if needle in str(hay).lower() else 0  # whatever that does, as the predicate
            if type(text) is bytes:  # ASCII text: only an ASCII needle can occur in it
                if self.has_pre:
                    nb = self.pre2
                elif (<str>needle).isascii():
                    nb = (<str>needle).encode("ascii")
                else:
                    nb = None
                if nb is None:
                    return 0
                # memmem, not ``in``: bytes.__contains__ first tries the needle as an int
                # and raises/clears a TypeError each time
                return 1 if _bytes_find(<bytes>text, <bytes>nb) else 0
            return 1 if needle in text else 0  # a str that lowers to a non-str: as the predicate
        if code == P_GT or code == P_LT:
            left = self.arg(0, f)
            if left is None:
                return 0
            if type(left) is str and not _may_be_float(<str>left):
                return 0  # float() would raise ValueError: skip building the exception
            try:
                x = _as_float(left)
                y = self.num if self.has_pre else _as_float(self.arg(1, f))
            except (TypeError, ValueError):
                return 0
            if code == P_GT:
                return 1 if x > y else 0
            return 1 if x < y else 0
        if code == P_IS_EMPTY:
            return 1 if _is_empty(self.arg(0, f)) else 0
        if code == P_IS_PRESENT:
            return 0 if _is_empty(self.arg(0, f)) else 1
        if code == P_CONSENT:
            value = self.arg(0, f)
            if value is None:
                return 1
            if type(value) is bool:
                return 0 if value else 1
            if type(value) is str and PyUnicode_IS_ASCII(value):
                return 1 if _ascii_no_consent(<str>value) else 0
            if isinstance(value, str):
                return 1 if value.lower() in _NO_CONSENT else 0
            return 0
        if (code == P_BYTES_LTE or code == P_SECONDS_LTE) and self.has_pre:
            # same order as the predicate: a missing value passes, the value is
            # parsed (an overflow raises: fail closed), then the limit counts
            value = self.arg(0, f)
            if value is None:
                return 1
            if type(value) is int and 0 <= value < 9007199254740992:
                parsed = value  # str(int) parses to the same number (exact below 2**53)
            else:
                parsed = _parse_unit(code == P_BYTES_LTE, str(value))
                if parsed is None:
                    return 0
            if self.pre is None:
                return 0  # the literal limit does not parse
            return 1 if parsed <= self.pre else 0
        if code == P_DOMAIN_IS:
            a = self.arg(0, f)
            target = self.arg(1, f)
            if a is None or target is None:
                return 0
            ca = _domain_of(str(a))[0]
            if not ca:
                return 0
            ct = (<list>self.pre)[0] if self.has_pre else _domain_of(target)[0]
            return 1 if ca == ct else 0
        if code == P_DOMAIN_ETLD1:
            a = self.arg(0, f)
            target = self.arg(1, f)
            if a is None or target is None:
                return 0
            ea = _domain_of(str(a))
            et = <list>self.pre if self.has_pre else _domain_of(target)
            if not ea[0] or not et[0]:
                return 0
            ra = _registrable(ea)
            rt = _registrable(et)
            return 1 if (ra is not None and ra == rt) else 0
        if code == P_MATCHES and self.has_pre:
            text = self.arg(0, f)
            if text is None:
                return 0
            text = str(text)
            if type(text) is str and len(<str>text) <= _MATCH_MEMO_MAX_TEXT:
                # search is a pure function of (pattern, text): a bounded per-pattern memo
                hit = (<dict>self.pre2).get(text)
                if hit is not None:
                    return <int>hit
                r = 0 if self.pre.search(text) is None else 1
                if len(<dict>self.pre2) >= _MATCH_MEMO_SIZE:
                    (<dict>self.pre2).clear()
                (<dict>self.pre2)[text] = r
                return r
            return 0 if self.pre.search(text) is None else 1
        if code >= P_HAS_TAG:
            return self.run_tags(f)
        return 1 if self.call(f) else 0

    cdef int run_tags(self, _Frame f) except -1:
        cdef int code = self.code
        cdef _TagView v
        cdef Py_ssize_t k
        tags = self.arg(0, f)
        if tags is None:
            return 0  # every tag predicate: None tags -> False
        if code == P_TAG_CONF and type(tags) is dict:
            # the predicate reads a dict directly (no entries): so does this
            name = self.arg(1, f)
            m = self.arg(2, f) if self.nargs > 2 else 0.8
            if type(name) is str and _plain_conf(m):
                val = (<dict>tags).get(name, _UNSET)
                if val is _UNSET:
                    return 0
                if type(val) is dict:
                    c = (<dict>val).get("confidence", 1.0)
                    if _plain_conf(c):
                        return 1 if c >= m else 0
                elif not isinstance(val, dict):
                    return 1
            return 1 if self.call(f) else 0
        v = f.tag_view(tags)
        if not v.ok:  # a shape the view does not answer exactly: the shared predicate
            return 1 if self.call(f) else 0
        if code == P_HAS_TAG:
            name = self.arg(1, f)
            if type(name) is not str:
                return 1 if self.call(f) else 0
            return 1 if v.has(name) else 0
        if code == P_HAS_CATEGORY:
            cat = self.arg(1, f)
            if type(cat) is not str:
                return 1 if self.call(f) else 0
            members = _CATEGORY_NAMES.get(cat)
            if members is None:
                return 0
            for k in range(v.n):
                if v.cats[k] != <PyObject *>None and (<str><object>v.cats[k]) == <str>cat:
                    return 1
            for k in range(v.n):
                if <object>v.names[k] in <frozenset>members:
                    return 1
            return 0
        if code == P_TAG_CONF:
            name = self.arg(1, f)
            m = self.arg(2, f) if self.nargs > 2 else 0.8
            if type(name) is not str or not _plain_conf(m):
                return 1 if self.call(f) else 0
            for k in range(v.n):
                if (<str><object>v.names[k]) == <str>name:
                    c = <object>v.confs[k]
                    if c is None or c >= m:
                        return 1
            return 0
        if code == P_HUMAN:
            if self.has_pre:  # every name a literal: the human-oversight ones, precomputed
                for k in range(v.n):
                    if <object>v.names[k] in <frozenset>self.pre:
                        return 1
                return 0
            for j in range(1, self.nargs):
                n = self.arg(j, f)
                if isinstance(n, str) and type(n) is not str:
                    return 1 if self.call(f) else 0
            for j in range(1, self.nargs):
                n = self.arg(j, f)
                if type(n) is str and n in _HUMAN_TAGS and v.has(n):
                    return 1
            return 0
        if code == P_HIGH_RISK:
            if v.n < 2:
                return 0
            for pair in _HIGH_RISK:
                if v.has((<tuple>pair)[0]) and v.has((<tuple>pair)[1]):
                    return 1
            return 0
        return 1 if self.call(f) else 0


cdef _Pred _make_pred(str name, list args, dict path_slots):
    cdef _Pred p = _Pred.__new__(_Pred)
    cdef int j
    p.code = _PRED_CODES.get(name, P_GENERIC)
    p.fn = PREDICATES[name]
    p.nargs = len(args)
    lit, vals, slots, inctx = [], [], [], []
    for a in args:
        if a[0] == "lit":
            lit.append(True)
            vals.append(a[1])
            slots.append(-1)
            inctx.append(False)
        else:
            key = (a[1], a[2])
            if key not in path_slots:
                path_slots[key] = len(path_slots)
            lit.append(False)
            # interned: plan dicts' keys are usually interned literals, so the
            # lookups then match by pointer instead of comparing the text
            vals.append(tuple(_intern(x) if type(x) is str else x for x in a[2]))
            slots.append(path_slots[key])
            inctx.append(a[1])
    p.lit, p.vals = tuple(lit), tuple(vals)
    p.slot = <int *>malloc(max(p.nargs, 1) * sizeof(int))
    p.inctx = <unsigned char *>malloc(max(p.nargs, 1))
    if p.slot == NULL or p.inctx == NULL:
        raise MemoryError()
    for j in range(p.nargs):
        p.slot[j] = slots[j]
        p.inctx[j] = 1 if inctx[j] else 0
    code = p.code
    if code == P_CONTAINS and p.lit[1]:
        p.pre = p.vals[1].lower()  # the parser guarantees a str
        p.pre2 = p.pre.encode("ascii") if p.pre.isascii() else None
        p.walk = _walk_needle(p.pre)
        p.walk_num = p.walk is not None and _numeric_needle(<bytes>p.walk)
        p.has_pre = True
    elif (code == P_GT or code == P_LT) and p.lit[1] and type(p.vals[1]) in (int, float):
        p.num = float(p.vals[1])  # the parser rejects literals that overflow
        p.has_pre = True
    elif (code == P_BYTES_LTE or code == P_SECONDS_LTE) and p.lit[1]:
        try:
            p.pre = (parse_bytes if code == P_BYTES_LTE else parse_seconds)(p.vals[1])
        except (ValueError, TypeError):
            p.pre = None  # never within the limit
        p.has_pre = True
    elif (code == P_DOMAIN_IS or code == P_DOMAIN_ETLD1) and p.lit[1]:
        if p.vals[1] is not None:
            p.pre = _domain_of(p.vals[1]) if type(p.vals[1]) is str else [canonical_domain(p.vals[1]), _UNSET]
            p.pre = list(p.pre)  # our own copy: not evicted with the memo
            p.has_pre = True
    elif code == P_MATCHES and p.lit[1]:
        p.pre = _re.compile(p.vals[1])  # valid: checked by the parser
        p.pre2 = {}  # text -> 0/1 (see _MATCH_MEMO_SIZE)
        p.has_pre = True
    elif code == P_HUMAN and all(p.lit[1:]):
        p.pre = frozenset(n for n in p.vals[1:] if isinstance(n, str) and n in _HUMAN_TAGS)
        p.has_pre = True
    return p


def _lit_key(v):
    """Literals are shared only when they are the same value of the same type."""
    return (type(v).__name__, repr(v))


# --- programs ------------------------------------------------------------------------------

def _layout(trees):
    """Nodes of ``trees`` in post-order, identical sub-trees once (hash-consing):
    ``(ops, first, count, kids, payload, roots, paths)``; ``paths[slot]`` is ``(parent slot
    or -1, in_ctx, the parts to step through from it)`` (see :meth:`_Frame.path`)."""
    ops, first, count, kids, payload = [], [], [], [], []
    keys = {}
    path_slots = {}

    def add(node):  # recursion is bounded by the parser's MAX_RULE_DEPTH
        kind = node[0]
        if kind == "pred":
            key = ("pred", node[1], tuple(("lit",) + _lit_key(a[1]) if a[0] == "lit" else a for a in node[2]))
        else:
            key = (kind,) + tuple(add(c) for c in node[1])
        idx = keys.get(key)
        if idx is not None:
            return idx
        idx = len(ops)
        keys[key] = idx
        if kind == "pred":
            ops.append(OP_PRED)
            first.append(0)
            count.append(0)
            payload.append(_make_pred(node[1], node[2], path_slots))
        else:
            ops.append(_OPS[kind])
            first.append(len(kids))
            count.append(len(key) - 1)
            kids.extend(key[1:])
            payload.append(None)
        return idx

    roots = [add(t) for t in trees]
    todo = [key for key in path_slots if 2 <= len(key[1]) <= _PREFIX_PARTS]
    while todo:  # the prefixes of a path of at most _PREFIX_PARTS parts get slots of their own
        in_ctx, parts = todo.pop()
        k = len(parts)  # (no negative indices: the module is compiled with wraparound=False)
        if (in_ctx, parts[:k - 1]) not in path_slots:
            path_slots[(in_ctx, parts[:k - 1])] = len(path_slots)
            if k - 1 >= 2:
                todo.append((in_ctx, parts[:k - 1]))
    paths = [None] * len(path_slots)
    for (in_ctx, parts), slot in path_slots.items():
        k = len(parts)
        parts = tuple(_intern(x) if type(x) is str else x for x in parts)
        if 2 <= k <= _PREFIX_PARTS:  # one step from its prefix's slot
            paths[slot] = (path_slots[(in_ctx, parts[:k - 1])], in_ctx, parts[k - 1:])
        else:  # from the root: a one-part path, the bare context, or a long path (linear, no chain)
            paths[slot] = (-1, in_ctx, parts)
    return ops, first, count, kids, payload, roots, paths


cdef class _Program:
    """Nodes of one or more rule trees, identical sub-trees shared.

    ``kids`` holds the children of every logical node contiguously
    (``first[i]`` .. ``first[i] + count[i]``); ``roots`` the root node of each
    compiled tree."""
    cdef int n
    cdef int *ops
    cdef int *first
    cdef int *count
    cdef int *kids
    cdef list payload
    cdef int npaths
    cdef int *parent           # per path slot (see _Frame.path)
    cdef unsigned char *sctx
    cdef list last
    cdef list roots
    cdef _Frame spare

    def __cinit__(self):
        self.ops = self.first = self.count = self.kids = self.parent = NULL
        self.sctx = NULL

    def __dealloc__(self):
        free(self.ops)
        free(self.first)
        free(self.count)
        free(self.kids)
        free(self.parent)
        free(self.sctx)

    cdef int build(self, list trees) except -1:
        cdef int i
        ops, first, count, kids, payload, roots, paths = _layout(trees)
        self.roots = roots
        self.n = len(ops)
        self.npaths = npaths = len(paths)
        self.parent = <int *>malloc(max(npaths, 1) * sizeof(int))
        self.sctx = <unsigned char *>malloc(max(npaths, 1))
        if self.parent == NULL or self.sctx == NULL:
            raise MemoryError()
        self.last = []
        for i in range(npaths):
            par, in_ctx, part = paths[i]
            self.parent[i] = par
            self.sctx[i] = 1 if in_ctx else 0
            self.last.append(part)
        self.ops = <int *>malloc(max(self.n, 1) * sizeof(int))
        self.first = <int *>malloc(max(self.n, 1) * sizeof(int))
        self.count = <int *>malloc(max(self.n, 1) * sizeof(int))
        self.kids = <int *>malloc(max(len(kids), 1) * sizeof(int))
        if self.ops == NULL or self.first == NULL or self.count == NULL or self.kids == NULL:
            raise MemoryError()
        for i in range(self.n):
            self.ops[i] = ops[i]
            self.first[i] = first[i]
            self.count[i] = count[i]
        for i in range(len(kids)):
            self.kids[i] = kids[i]
        self.payload = payload
        per_slot = {}
        for p in payload:
            if isinstance(p, _Pred) and (<_Pred>p).code == P_CONTAINS and (<_Pred>p).walk is not None \
                    and (<_Pred>p).slot[0] >= 0:
                per_slot.setdefault((<_Pred>p).slot[0], []).append(p)
        for preds in per_slot.values():
            if len(preds) > 1:
                for p in preds:
                    (<_Pred>p).walk_shared = True
        return 0

    cdef int ev(self, int i, _Frame f) except -1:
        cdef unsigned char m = f.memo[i]
        cdef int op, j, end, r
        if m:
            return m - 1
        op = self.ops[i]
        if op == OP_PRED:
            r = (<_Pred>self.payload[i]).run(f)
        elif op == OP_NOT:
            r = 0 if self.ev(self.kids[self.first[i]], f) else 1
        else:
            j = self.first[i]
            end = j + self.count[i]
            if op == OP_AND:
                r = 1
                while j < end:
                    if not self.ev(self.kids[j], f):
                        r = 0
                        break
                    j += 1
            else:
                r = 0
                while j < end:
                    if self.ev(self.kids[j], f):
                        r = 1
                        break
                    j += 1
        f.memo[i] = <unsigned char>(r + 1)
        return r

    cdef _Frame acquire(self, object plan, object ctx):
        """The spare frame (or a new one) set up for one evaluation."""
        cdef _Frame f = self.spare
        if f is not None:
            self.spare = None  # no Python code runs between the read and this: GIL-atomic
        else:
            f = _Frame.__new__(_Frame)
            f.pvals = [_UNSET] * self.npaths
            f.plower = [None] * self.npaths
            f.npaths = self.npaths
            f.parent = self.parent  # the program outlives its frames' use: run() holds it
            f.sctx = self.sctx
            f.last = self.last
            f.memo = <unsigned char *>malloc(max(self.n, 1))
            if f.memo == NULL:
                raise MemoryError()
        memset(f.memo, 0, self.n)
        f.plan = plan
        f.ctx = ctx
        return f

    cdef int release(self, _Frame f) except -1:
        f.clear()  # drop every reference into the plan before keeping the frame
        self.spare = f
        return 0


cdef class CompiledRule:
    """A compiled rule: ``rule(plan, context=None) -> bool``.

    Evaluation errors raise :class:`RuleEvaluationError` (the engine turns
    them into a BLOCK with reason ``evaluation_error``)."""

    cdef _Program prog
    cdef int root
    cdef readonly object tree
    cdef readonly str source
    cdef vectorcallfunc vc  # see _rule_vectorcall

    cdef object _call(self, object plan, object context):
        cdef _Program p = self.prog
        cdef _Frame f = p.acquire(plan, context if context else _EMPTY)
        try:
            try:
                return p.ev(self.root, f) == 1
            except Exception as exc:
                raise RuleEvaluationError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            p.release(f)

    def __call__(self, plan, context=None):
        return self._call(plan, context)

    def __reduce__(self):
        return (compile_rule, (self.source,))

    def __repr__(self):
        return f"CompiledRule({self.source!r}, nodes={self.prog.n})"


def compile_rule(rule_str):
    """Compile DSL text into a callable ``rule(plan, context=None) -> bool``.

    Compile problems raise :class:`DSLError`; evaluation errors raise
    :class:`RuleEvaluationError` (fail closed in the engine)."""
    cdef CompiledRule r = CompiledRule.__new__(CompiledRule)
    tree = dsl.parse_rule(rule_str)
    r.prog = _Program.__new__(_Program)
    r.prog.build([tree])
    r.root = r.prog.roots[0]
    r.tree = tree
    r.source = rule_str
    r.vc = <vectorcallfunc>_rule_vectorcall
    return r


# Calling a rule is the whole cost of a cheap rule, and a type's tp_call gets
# its arguments as a new tuple.  CompiledRule objects take the vectorcall
# protocol instead (the arguments in place): the type gets the flag and the
# offset of ``vc`` once, here; a rule whose ``vc`` is unset (made without
# compile_rule) falls back to tp_call.  Keywords and odd argument counts go
# through tp_call too, which parses and reports them.
cdef PyObject *_rule_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames) except NULL:
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    if kwnames == NULL and (n == 1 or n == 2):
        r = (<CompiledRule><object>callable)._call(<object>args[0], <object>args[1] if n == 2 else None)
    else:
        r = _rule_call_slow(<object>callable, args, n, kwnames)
    Py_INCREF(r)
    return <PyObject *>r


cdef object _rule_call_slow(object rule, PyObject *const *args, Py_ssize_t n, PyObject *kwnames):
    return _tp_call_slow(_RULE_TP_CALL, rule, args, n, kwnames)


cdef object _tp_call_slow(object tp_call, object obj, PyObject *const *args, Py_ssize_t n, PyObject *kwnames):
    # keywords, or a count a vectorcall fast path does not take: the type's __call__
    # (tp_call) parses the arguments and raises its own TypeError
    cdef Py_ssize_t i, nkw = 0 if kwnames == NULL else len(<tuple>kwnames)
    pos = tuple([<object>args[i] for i in range(n)])
    kw = {(<tuple>kwnames)[i]: <object>args[n + i] for i in range(nkw)}
    return tp_call(obj, *pos, **kw)


cdef int _enable_vectorcall(object cls, object probe, void *vc_field) except -1:
    """Give ``cls`` the vectorcall flag and the offset of its ``vc`` field (the address
    ``vc_field`` in the instance ``probe``), once, at import."""
    cdef PyTypeObject *t = <PyTypeObject *>cls
    t.tp_vectorcall_offset = <Py_ssize_t>(<char *>vc_field - <char *><PyObject *>probe)
    t.tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL
    PyType_Modified(t)
    return 0


cdef CompiledRule _rule_probe = CompiledRule.__new__(CompiledRule)
_enable_vectorcall(CompiledRule, _rule_probe, &_rule_probe.vc)
_RULE_TP_CALL = CompiledRule.__call__  # the slot wrapper of tp_call, for _rule_call_slow


_BASE_EVALUATE = eng.EthicsRule.evaluate


def _rule_evaluate(self, plan, context=None):
    """Whether the rule fires; an evaluation error raises RuleEvaluationError."""
    fn = self._compiled_fn
    if fn is None:
        return False
    if type(fn) is CompiledRule:
        return (<CompiledRule>fn)._call(plan, context)
    return fn(plan, context)


cdef class RuleSetProgram:
    """Every rule of a rule set in one :class:`_Program` (shared sub-expressions
    evaluated once per plan).  ``prog(plan, context)`` returns ``(fired, errors)``:
    the indices of the rules that fired (a tuple, in rule order) and ``None`` or
    ``[(index, exception)]`` for the rules that failed: the same as evaluating
    each rule on its own.  A rule whose class overrides
    ``evaluate`` or whose compiled function was replaced is called as such."""

    cdef _Program prog
    cdef list rules
    cdef list fns        # per rule: the CompiledRule compiled in, or None
    cdef int *root       # per rule: its root node, or -1
    cdef vectorcallfunc vc  # see _program_vectorcall

    def __cinit__(self):
        self.root = NULL

    def __dealloc__(self):
        free(self.root)

    def __init__(self, rules):
        cdef int i
        self.vc = <vectorcallfunc>_program_vectorcall
        self.rules = list(rules)
        self.fns = []
        trees = []
        for rule in self.rules:
            fn = getattr(rule, "_compiled_fn", None)
            if type(fn) is CompiledRule and _plain_evaluate(type(rule)):
                self.fns.append(fn)
                trees.append((<CompiledRule>fn).tree)
            else:
                self.fns.append(None)
        self.prog = _Program.__new__(_Program)
        self.prog.build(trees)
        self.root = <int *>malloc(max(len(self.rules), 1) * sizeof(int))
        if self.root == NULL:
            raise MemoryError()
        k = 0
        for i in range(len(self.rules)):
            if self.fns[i] is None:
                self.root[i] = -1
            else:
                self.root[i] = self.prog.roots[k]
                k += 1

    def __reduce__(self):
        return (make_program, (self.rules,))

    def __call__(self, plan, context):
        return self.run(plan, context)

    cdef tuple run(self, object plan, object context):
        cdef _Program p = self.prog
        cdef list rules = self.rules
        cdef list fns = self.fns
        cdef Py_ssize_t i, n
        cdef _Frame f
        cdef bint plain, bydict, in_ev, fired
        if p is None:
            raise TypeError("RuleSetProgram() was not initialised: use make_program(rules)")
        n = PyList_GET_SIZE(rules)
        f = p.acquire(plan, context if context else _EMPTY)
        cdef PyObject *cur
        cdef int nfired = 0
        cdef int stack[64]  # the fired indices; a larger rule set collects them in a list
        cdef list more = None
        cdef list errors = None
        cls0 = type(<object>PyList_GET_ITEM(rules, 0)) if n else None
        plain0 = _plain_evaluate(cls0) if n else False
        bydict = plain0 and _fn_in_dict(cls0)
        try:
            for i in range(n):
                rule = <object>PyList_GET_ITEM(rules, i)
                fn = <object>PyList_GET_ITEM(fns, i)
                in_ev = False
                try:  # (one try per rule: entering one costs more than a simple rule)
                    t = type(rule)
                    plain = plain0 if t is cls0 else _plain_evaluate(t)
                    if fn is not None and plain:
                        # the rule's current compiled function: read from its __dict__ when
                        # that is where getattr would find it (the lookup rule._compiled_fn
                        # costs more: the type's MRO is asked first)
                        cur = NULL
                        if bydict and t is cls0:
                            d = PyObject_GenericGetDict(rule, NULL)
                            cur = PyDict_GetItemWithError(d, _CFN_KEY)
                        plain = (<object>cur is fn) if cur != NULL else (rule._compiled_fn is fn)
                    if fn is not None and plain:
                        in_ev = True
                        fired = p.ev(self.root[i], f) == 1
                        in_ev = False
                    else:
                        fired = bool(rule.evaluate(plan, context))
                    if fired:
                        if nfired < 64:
                            stack[nfired] = i
                        else:
                            if more is None:
                                more = []
                            more.append(i)
                        nfired += 1
                except Exception as exc:
                    if errors is None:
                        errors = []
                    if in_ev:  # as CompiledRule: the program's own error, wrapped
                        try:
                            raise RuleEvaluationError(f"{type(exc).__name__}: {exc}") from exc
                        except RuleEvaluationError as wrapped:
                            errors.append((i, wrapped))
                    else:
                        errors.append((i, exc))
        finally:
            p.release(f)
        return _fired_tuple(stack, nfired, more), errors


cdef object _CFN_KEY = _intern("_compiled_fn")


cdef PyObject *_program_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) except NULL:
    # RuleSet.evaluate calls the program once per plan: the arguments in place,
    # as for CompiledRule (see _rule_vectorcall); anything else goes to tp_call
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    if kwnames == NULL and n == 2:
        r = (<RuleSetProgram><object>callable).run(<object>args[0], <object>args[1])
    else:
        r = _tp_call_slow(_PROGRAM_TP_CALL, <object>callable, args, n, kwnames)
    Py_INCREF(r)
    return <PyObject *>r


cdef RuleSetProgram _program_probe = RuleSetProgram.__new__(RuleSetProgram)
_enable_vectorcall(RuleSetProgram, _program_probe, &_program_probe.vc)
_PROGRAM_TP_CALL = RuleSetProgram.__call__


cdef tuple _fired_tuple(int *stack, int n, list more):
    """The fired indices as a tuple: the first 64 from ``stack``, the rest from ``more``."""
    cdef int i
    out = PyTuple_New(n)
    for i in range(n):
        v = stack[i] if i < 64 else more[i - 64]
        Py_INCREF(v)
        PyTuple_SET_ITEM(out, i, v)
    return <tuple>out


cdef bint _fn_in_dict(object cls) except -1:
    """Whether ``rule._compiled_fn`` of a ``cls`` instance is the value in the
    instance's __dict__ when there is one: plain attribute access (no
    __getattribute__/__getattr__ of its own) and no data descriptor (property,
    slot) named ``_compiled_fn`` on the class.  EthicsRule subclasses all have
    a __dict__ (EthicsRule has no __slots__)."""
    if not issubclass(cls, eng.EthicsRule):
        return False
    if (<PyTypeObject *>cls).tp_getattro != &PyObject_GenericGetAttr:
        return False
    cdef PyObject *a = _PyType_Lookup(cls, _CFN_KEY)
    if a != NULL and (<PyTypeObject *>Py_TYPE(<object>a)).tp_descr_set != NULL:
        return False
    return True


cdef inline bint _plain_evaluate(object cls):
    ev = cls.evaluate
    return ev is _rule_evaluate or ev is _BASE_EVALUATE


def make_program(rules):
    """The :class:`RuleSetProgram` of ``rules`` (in evaluation order)."""
    return RuleSetProgram(rules)


# --- plan and facts hashes -----------------------------------------------------------------

cdef int _put_items(_Buf *b, object d) except -1:
    """Write ``repr(sorted(d.items()))`` as UTF-8.  Exact dicts with str keys
    (where sorting the keys alone gives the same order) are written directly,
    from a copy, as ``sorted(d.items())`` works on one in case a value's
    ``__repr__`` edits ``d``; anything else takes the engine's path."""
    cdef Py_ssize_t k, i
    cdef const char *u
    if type(d) is dict:
        d = (<dict>d).copy()
        keys = list(<dict>d)
        for key in keys:
            if type(key) is not str:
                break
        else:
            keys.sort()
            _put(b, "[", 1)
            for i in range(len(keys)):
                key = keys[i]
                _put(b, ", (" if i else "(", 3 if i else 1)
                _put_repr(b, key)
                _put(b, ", ", 2)
                _put_repr(b, (<dict>d)[key])
                _put(b, ")", 1)
            return _put(b, "]", 1)
    text = repr(eng._sorted_items(d))
    u = PyUnicode_AsUTF8AndSize(text, &k)
    return _put(b, u, k)


cdef str _hex16(lk_sha256 *s):
    """The first 16 hex digits of the digest (``hexdigest()[:16]``)."""
    cdef unsigned char d[32]
    cdef char hx[16]
    cdef int i
    cdef const char *digits = b"0123456789abcdef"
    lk_sha256_final(s, d)
    for i in range(16):
        hx[i] = digits[(d[i >> 1] >> (0 if i & 1 else 4)) & 15]
    return hx[:16].decode("ascii")


def _sha256_hex(bytes data not None, bint ni=True):
    """``hashlib.sha256(data).hexdigest()`` from csrc/sha256.c (tests: ``ni=False``
    forces the scalar code on CPUs with the SHA extensions)."""
    cdef char hx[64]
    lk_sha256_hex(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), hx, 64, ni)
    return hx[:64].decode("ascii")


def plan_digest(plan):
    """``(UTF-8 repr of the sorted plan pairs, plan_hash)``; same hash as
    :func:`lukhas_fast._ethics_engine.plan_digest` (SHA-256 in C: csrc/sha256.c)."""
    cdef _Buf b
    cdef lk_sha256 s
    _buf_init(&b)
    try:
        _put_items(&b, plan)
        data = PyBytes_FromStringAndSize(b.p, b.n)
        lk_sha256_init(&s)
        lk_sha256_update(&s, b.p, b.n)
    finally:
        free(b.p)
    return data, _hex16(&s)


def facts_digest(context, bytes plan_data not None):
    """The facts hash from the context and :func:`plan_digest`'s bytes; same
    hash as :func:`lukhas_fast._ethics_engine.facts_digest`."""
    cdef _Buf b
    cdef lk_sha256 s
    _buf_init(&b)
    try:
        _put(&b, "[('context', ", 13)
        _put_items(&b, context)
        _put(&b, "), ('plan', ", 12)
        lk_sha256_init(&s)
        lk_sha256_update(&s, b.p, b.n)
    finally:
        free(b.p)
    lk_sha256_update(&s, PyBytes_AS_STRING(plan_data), PyBytes_GET_SIZE(plan_data))
    lk_sha256_update(&s, b")]", 2)
    return _hex16(&s)


class EthicsRule(eng.EthicsRule):
    __doc__ = eng.EthicsRule.__doc__
    _compiler = staticmethod(compile_rule)
    _make_program = staticmethod(make_program)
    _plan_digest = staticmethod(plan_digest)
    _facts_digest = staticmethod(facts_digest)
    evaluate = _rule_evaluate
    _dsl_tier = True  # (this class exactly: RuleSet._memo_token)


_engines = eng.EngineCache()


def load_ethics_rules(config_path=None, *, strict=True, metrics=None):
    """Load a YAML rule file (default: the bundled ``defaults.yaml``) into a :class:`RuleSet`.

    Deviation (fail loud): with ``strict=True`` (default) every bad entry is
    reported at once in one :class:`RuleLoadError` and nothing is loaded; a
    missing file or a file without rules is an error too.  ``strict=False``
    keeps the reference's skip-and-log behaviour (and its fallback rules).
    """
    return eng.load_rules(config_path, EthicsRule, strict, metrics)


def get_ethics_engine(config_path=None):
    """The engine for ``config_path`` (built once per path; default: bundled rules)."""
    return _engines.get(config_path, EthicsRule)
