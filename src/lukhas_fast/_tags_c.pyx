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


def _alternation(terms):
    return re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)))


cdef object _PII_ACTION = _alternation(_py.PII_ACTION_TERMS)
cdef object _FIN_ACTION = _alternation(_py.FINANCIAL_ACTIONS)
cdef object _MODEL_ACTION = _alternation(_py.MODEL_ACTIONS)
cdef object _API_ACTION = _alternation(_py.API_TERMS)
cdef object _ESC = _alternation(_py.ESCALATION_TERMS)
cdef object _GDPR_ACTION = _alternation(_py.GDPR_ACTIONS)
cdef object _GDPR_TERM = _alternation(_py.GDPR_TERMS)
cdef object _MODEL_KW = _alternation(_py.MODEL_KEYWORDS)
cdef object _DIGIT = re.compile(r"\d")
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
        if "at" in low:
            s = _AT.sub("@", s)
            low = s.lower()
        if "dot" in low:
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
    """Equal exactly when the values' reprs are (the reference key renders reprs)."""
    t = type(v)
    if t is str:
        return v
    if t is int or t is bool or v is None:
        return (t, v)
    return ("r", repr(v))


cdef tuple _pairs_key(dict d):
    try:
        items = sorted(d.items())
    except TypeError:
        items = sorted(d.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
    return tuple([(k if type(k) is str else ("k", repr(k)), _vkey(v)) for k, v in items])


cdef inline object _mk(object det, double conf, list types):
    if conf > det.threshold:
        return _Tag(det.tag_name, det.category, det.description, conf, "detection", {"detected_types": types})
    return None


cdef list _scan(list dets, dict plan, dict context, bint advanced):
    """The six built-in detectors in one pass; same tags, order and metadata as running them."""
    cdef double pii = 0.0, fin = 0.0, mod = 0.0, ext = 0.0, esc = 0.0, gdpr = 0.0
    cdef list pii_t = [], fin_t = [], mod_t = [], ext_t = [], esc_t = [], gdpr_t = []
    cdef list str_vals = []      # (key, value, lowered value) of str params values, in order
    cdef list keys = []          # (key, lowered key or None)
    cdef bint has_params
    a = plan.get("action", "")
    action = (<str>a).lower() if type(a) is str else (a.lower() if isinstance(a, str) else "")
    d = plan.get("description", "")
    desc = d if isinstance(d, str) else ""
    params = plan.get("params", {})
    has_params = isinstance(params, dict)
    if has_params:
        for k, v in params.items():
            keys.append((k, (<str>k).lower() if type(k) is str else (k.lower() if isinstance(k, str) else None)))
            if isinstance(v, str):
                str_vals.append((k, v, v.lower()))
    # --- pii
    if has_params:
        for k, lk in keys:
            if lk in _PII_FIELDS:
                pii = 0.9
                pii_t.append(f"field:{k}")
        for k, v, lv in str_vals:
            has_digit = _DIGIT.search(v) is not None
            if "@" in v and _EMAIL.search(v):
                pii = 0.95
                pii_t.append("email")
            if has_digit:
                if _SSN.search(v):
                    pii = 0.95
                    pii_t.append("ssn")
                if _PHONE.search(v):
                    pii = max(pii, 0.8)
                    pii_t.append("phone")
                if _CARD.search(v):
                    pii = 0.95
                    pii_t.append("credit_card")
    if action and _PII_ACTION.search(action):
        pii = max(pii, 0.6)
        pii_t.append("action")
    # --- financial
    if action and _FIN_ACTION.search(action):
        fin = 0.9
        fin_t.append("action")
    if has_params:
        for k, lk in keys:
            if lk in _FIN_FIELDS:
                fin = max(fin, 0.8)
                fin_t.append(f"field:{k}")
        for (k, lk), v in zip(keys, params.values()):
            if isinstance(v, (int, float)) and lk in _CURRENCY:
                fin = max(fin, 0.7)
                fin_t.append("currency")
        if advanced:
            for k, v, lv in str_vals:
                if _DIGIT.search(v) is not None:
                    if _ACCOUNT.search(v):
                        fin = max(fin, 0.7)
                        fin_t.append("account_number")
                    if _ROUTING.search(v):
                        fin = max(fin, 0.7)
                        fin_t.append("routing_number")
    # --- model switch
    if action and _MODEL_ACTION.search(action):
        mod = 0.95
        mod_t.append("action")
    if has_params:
        for k, lk in keys:
            if lk in _MODEL_PARAMS:
                mod = max(mod, 0.9)
                mod_t.append(f"param:{k}")
    parts = [a if isinstance(a, str) else "", desc]
    parts.extend([v for k, v, lv in str_vals])
    text = " ".join(parts)
    low_text = text.lower()
    if _MODEL_KW.search(low_text):
        for kw in _KEYWORDS:
            if kw in low_text:
                mod = max(mod, 0.85)
                mod_t.append(f"keyword:{kw}")
    # --- external call
    if action and _API_ACTION.search(action):
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
    if action and _ESC.search(action):
        esc = 0.9
        esc_t.append("action_keyword")
    if action.startswith(_PREFIXES):
        esc = 0.95
        esc_t.append("dangerous_action")
    for k, v, lv in str_vals:
        if _ESC.search(lv):
            esc = max(esc, 0.8)
            esc_t.append(f"param:{k}")
    # --- gdpr
    if action:
        if _GDPR_ACTION.search(action):
            gdpr = 0.9
            gdpr_t.append("gdpr_action")
        if _GDPR_TERM.search(action):
            gdpr = max(gdpr, 0.8)
            gdpr_t.append("gdpr_term")
    for k, v, lv in str_vals:
        if _GDPR_TERM.search(lv):
            gdpr = max(gdpr, 0.7)
            gdpr_t.append(f"param:{k}")
    if advanced and has_params and context.get("user_region") in ("EU", "EEA"):
        for k, lk in keys:
            if lk in _PII_FIELDS:
                gdpr = max(gdpr, 0.65)
                gdpr_t.append("eu_user")
                break
    out = []
    for det, conf, types in zip(dets, (pii, fin, mod, ext, esc, gdpr), (pii_t, fin_t, mod_t, ext_t, esc_t, gdpr_t)):
        t = _mk(det, conf, types)
        if t is not None:
            out.append(t)
    return out


class SafetyTagEnricher(_py.SafetyTagEnricher):
    __doc__ = _py.SafetyTagEnricher.__doc__

    def preprocess_text(self, text):
        """The reference's normaliser (NFKC, zero-width removal, (at)/(dot), homoglyphs); ASCII fast path."""
        return fast_normalize_text(text)

    def preprocess_plan(self, plan):
        """Normalised copy of the plan (keys and order kept)."""
        return _norm_dict(plan)

    def _generate_cache_key(self, plan, context):
        """A tuple key, equal exactly when the reference's key text is."""
        return (_pairs_key(plan), _pairs_key(context))

    def _scan_builtin(self, normalized, context):
        """The six built-in detectors fused into one pass."""
        return _scan(self._builtin, normalized, context, self.advanced)


def create_safety_tag_enricher(enable_caching=True):
    """``SafetyTagEnricher(enable_caching)`` of this tier."""
    return SafetyTagEnricher(enable_caching)
