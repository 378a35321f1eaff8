"""C tier of the safety-tags family (Cython-compiled).

Same results as :mod:`lukhas_fast._tags_py`, computed differently:

* normalisation: ASCII strings skip NFKC, zero-width removal and homoglyph
  folding (all identities on ASCII) and run the ``(at)``/``(dot)`` rewrites
  only when the text can contain them;
* detection: one pass over the plan's params collects keys, lowered keys and
  string values once; each value is lowered once and screened with a single
  combined pattern per term table before any per-term or per-pattern work;
  model keywords and URLs are only searched for when a cheap screen hits;
* cache key: a tuple built from the sorted top-level pairs (no ``str()`` of
  the whole plan, no SHA-256), equal exactly when the reference's key text is.
"""

import re
import unicodedata

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
    return {"scanner": "Cython single-pass scanner, ASCII fast path, tuple cache keys"}


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
    """Same as ``EMAIL_RE.search(v)``, but only around each '@': a match has
    exactly one '@' and no whitespace, so it lies inside the whitespace-
    delimited token of its '@' (and \\b behaves the same at the token's ends,
    where the neighbours are whitespace or the string's ends)."""
    cdef Py_ssize_t n = len(v), at = v.find("@"), a, b
    while at >= 0:
        a = at
        while a > 0 and not v[a - 1].isspace():
            a -= 1
        b = at + 1
        while b < n and not v[b].isspace():
            b += 1
        if _EMAIL.search(v, a, b) is not None:
            return True
        at = v.find("@", b)
    return False


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
cdef object _EMAIL = _py.EMAIL_RE
cdef object _SSN = _py.SSN_RE
cdef object _PHONE = _py.PHONE_RE
cdef object _CARD = _py.CARD_RE
cdef object _ACCOUNT = _py.ACCOUNT_RE
cdef object _ROUTING = _py.ROUTING_RE
cdef object _URL = _py.URL_RE
cdef object _AT = _py._AT_RE
cdef object _DOT = _py._DOT_RE
cdef object _ZW = _py._ZERO_WIDTH
cdef object _HG = _py._HOMOGLYPHS
cdef object _Tag = SafetyTag


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


cpdef object fast_normalize_text(object text):
    """``preprocess_text`` with the ASCII fast path (same result)."""
    cdef str s
    if type(text) is not str:
        if not isinstance(text, str):
            return str(text)
        text = str(text)
    s = <str>text
    if s.isascii():
        low = s.lower()
        if _maybe(low, "at"):
            s = _AT.sub("@", s)
            low = s.lower()
        if _maybe(low, "dot"):
            s = _DOT.sub(".", s)
        return s
    s = unicodedata.normalize("NFKC", s).translate(_ZW)
    s = _AT.sub("@", s)
    s = _DOT.sub(".", s)
    return s.translate(_HG)


cdef object _norm_value(object v):
    t = type(v)
    if t is str:
        return fast_normalize_text(v)
    if t is int or t is float or t is bool or v is None:
        return v
    if isinstance(v, str):
        return fast_normalize_text(v)
    if isinstance(v, dict):
        return _norm_dict(v)
    if isinstance(v, list):
        return [fast_normalize_text(x) if isinstance(x, str) else _norm_dict(x) if isinstance(x, dict) else x for x in v]
    return v


cdef dict _norm_dict(object d):
    cdef dict out = {}
    for k, v in d.items():
        out[k] = _norm_value(v)
    return out


cdef object _vkey(object v):
    """A hashable stand-in for ``v``, equal exactly when the values' reprs are
    (the reference key renders reprs); containers are walked instead of
    stringified.  Exact types only: subclasses fall back to their repr."""
    t = type(v)
    if t is str:
        return v
    if t is int or t is bool or v is None:
        return (t, v)
    if t is dict:
        return ("d", tuple([(_vkey(k), _vkey(x)) for k, x in (<dict>v).items()]))
    if t is list:
        return ("l", tuple([_vkey(x) for x in <list>v]))
    if t is tuple:
        return ("t", tuple([_vkey(x) for x in <tuple>v]))
    return ("r", repr(v))


cdef object _vkey_norm(object v):
    """``_vkey(normalised v)`` without building the normalised copy (mirrors
    ``preprocess_plan``: str -> normalised, dict -> recursed, list -> str and
    dict items normalised, everything else as is)."""
    t = type(v)
    if t is str:
        return fast_normalize_text(v)
    if t is int or t is bool or v is None:
        return (t, v)
    if isinstance(v, str):
        return fast_normalize_text(v)
    if isinstance(v, dict):
        return ("d", tuple([(_vkey(k), _vkey_norm(x)) for k, x in v.items()]))
    if isinstance(v, list):
        return ("l", tuple([fast_normalize_text(x) if isinstance(x, str) else
                            _vkey_norm(x) if isinstance(x, dict) else _vkey(x) for x in v]))
    return _vkey(v)


cdef tuple _pairs_key_norm(dict d):
    try:
        items = sorted(d.items())
    except TypeError:
        items = sorted(d.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
    return tuple([(k if type(k) is str else ("k", repr(k)), _vkey_norm(v)) for k, v in items])


cdef tuple _pairs_key(dict d):
    try:
        items = sorted(d.items())
    except TypeError:
        items = sorted(d.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
    return tuple([(k if type(k) is str else ("k", repr(k)), _vkey(v)) for k, v in items])


cdef object _new_tag(str name, object det, double conf, list types):
    t = _Tag.__new__(_Tag)
    t.__dict__.update({"name": name, "category": det.category, "description": det.description, "confidence": conf,
                       "source": "detection", "metadata": {"detected_types": types}})
    return t


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
            if lk in _CURRENCY and isinstance(v, (int, float)):
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
    if advanced and has_params and region in ("EU", "EEA"):
        for k, lk in keys:
            if lk in _PII_FIELDS:
                gdpr = max(gdpr, 0.65)
                gdpr_t.append("eu_user")
                break
    out = []
    # (tags are built without the dataclass __init__: the confidences are
    # constants in [0, 1], so its validation cannot fail)
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


cpdef object copy_tag(object t):
    """A copy of a tag whose metadata the caller may mutate freely."""
    if type(t) is not _Tag:
        return _py.copy_tag(t)
    new = _Tag.__new__(_Tag)
    d = (<object>t).__dict__
    nd = new.__dict__
    nd.update(d)
    md = d["metadata"]
    if type(md) is dict:
        nd["metadata"] = {k: (list(v) if type(v) is list else v) for k, v in (<dict>md).items()}
    return new


class SafetyTagEnricher(_py.SafetyTagEnricher):
    __doc__ = _py.SafetyTagEnricher.__doc__
    _copy_tag = staticmethod(copy_tag)

    def preprocess_text(self, text):
        """The reference's normaliser (NFKC, zero-width removal, (at)/(dot), homoglyphs); ASCII fast path."""
        return fast_normalize_text(text)

    def preprocess_plan(self, plan):
        """Normalised copy of the plan (keys and order kept)."""
        return _norm_dict(plan)

    def _generate_cache_key(self, plan, context):
        """A tuple key, equal exactly when the reference's key text is."""
        return (_pairs_key(plan), _pairs_key(context))

    def _key_and_plan(self, plan, context):
        """With caching on, the key is built straight from the plan (normalising
        strings on the way) and the normalised copy is only made on a miss."""
        if self.tag_cache is not None:
            return (_pairs_key_norm(plan), _pairs_key(context)), None
        return None, _norm_dict(plan)

    def _scan_builtin(self, normalized, context):
        """The six built-in detectors fused into one pass."""
        return _scan(self._builtin, normalized, context, self.advanced)


def create_safety_tag_enricher(enable_caching=True):
    """``SafetyTagEnricher(enable_caching)`` of this tier."""
    return SafetyTagEnricher(enable_caching)
