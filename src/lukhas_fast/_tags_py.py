"""Pure-Python tier of the safety-tags family: the reference's algorithm (a
regex per pattern per detector, ``str()``+sort+SHA-256 cache keys), with the
documented deviations.  It is the oracle of the C tier and the baseline of
the benchmarks.

Shared with the C tier: the data types, the six detectors (public classes),
text normalisation, the advanced block and :class:`SafetyTagEnricher`'s
orchestration (lock, LRU cache, counters, metrics).  The C tier replaces only
the normalisation, the six-detector scan and the cache key with faster
equivalents.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from lukhas_fast import _metrics

__all__ = [
    "SafetyTagCategory",
    "SafetyTag",
    "TaggedPlan",
    "SafetyTagDetector",
    "PIIDetector",
    "FinancialDetector",
    "ModelSwitchDetector",
    "ExternalCallDetector",
    "PrivilegeEscalationDetector",
    "GDPRDetector",
    "SafetyTagEnricher",
    "create_safety_tag_enricher",
    "preprocess_text",
    "canonical_domain",
    "METRICS_AVAILABLE",
    "ADVANCED_TAGS_ENABLED",
    "backend_details",
]

logger = logging.getLogger("lukhas_fast.safety_tags")

#: The env-flagged advanced block (``LUKHAS_ADVANCED_TAGS=1`` or ``LUKHAS_EXPERIMENTAL=1`` at import).
ADVANCED_TAGS_ENABLED = os.environ.get("LUKHAS_ADVANCED_TAGS") == "1" or os.environ.get("LUKHAS_EXPERIMENTAL") == "1"
METRICS_AVAILABLE = _metrics.PROMETHEUS_AVAILABLE
CACHE_SIZE = 1000
#: Default byte budget of the result cache (``cache_bytes``): 64 MiB of estimated entry cost.
CACHE_BYTES = 64 * 1024 * 1024


def backend_details() -> Dict[str, Any]:
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"scanner": "reference algorithm (regex per pattern per detector)"}


# --- data types -------------------------------------------------------------------

class SafetyTagCategory(Enum):
    """Category of a safety tag."""

    DATA_SENSITIVITY = "data_sensitivity"
    SYSTEM_OPERATION = "system_operation"
    USER_INTERACTION = "user_interaction"
    SECURITY_RISK = "security_risk"
    COMPLIANCE = "compliance"
    RESOURCE_IMPACT = "resource_impact"


@dataclass
class SafetyTag:
    """A detected tag: ``name``, ``category``, ``description``, ``confidence`` (0..1), ``source``, ``metadata``."""

    name: str
    category: Any
    description: str
    confidence: float = 1.0
    source: str = "detection"
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Confidence must be between 0.0 and 1.0, got {self.confidence}")


@dataclass
class TaggedPlan:
    """The original plan with its tags and enrichment details."""

    original_plan: Dict[str, Any]
    tags: List[SafetyTag]
    enrichment_time_ms: float
    enrichment_context: Dict[str, Any] = field(default_factory=dict)

    @property
    def tag_names(self) -> Set[str]:
        """New set of the tag names."""
        return {t.name for t in self.tags}

    @property
    def tags_by_category(self) -> Dict[Any, List[SafetyTag]]:
        """New dict: category -> tags, in first-appearance order."""
        out: Dict[Any, List[SafetyTag]] = {}
        for t in self.tags:
            out.setdefault(t.category, []).append(t)
        return out

    def has_tag(self, name: str) -> bool:
        """Whether a tag of that name is present."""
        return name in self.tag_names

    def has_category(self, category: Any) -> bool:
        """Whether a tag of that category is present."""
        return category in self.tags_by_category

    def get_tags_by_category(self, category: Any) -> List[SafetyTag]:
        """The tags of a category (a new empty list if none)."""
        return self.tags_by_category.get(category, [])


def copy_tag(t: Any) -> Any:
    """A copy of a tag whose metadata the caller may mutate freely (cache results never alias)."""
    if type(t) is SafetyTag:
        new = object.__new__(SafetyTag)
        d = dict(t.__dict__)
        md = d["metadata"]
        if isinstance(md, dict):
            d["metadata"] = {k: (list(v) if isinstance(v, list) else v) for k, v in md.items()}
        new.__dict__.update(d)
        return new
    return copy.copy(t)


# --- term tables and patterns -------------------------------------------------------------

PII_FIELDS = frozenset(["email", "ssn", "social_security", "phone", "telephone", "credit_card", "passport", "license",
                        "address", "full_name", "first_name", "last_name", "date_of_birth", "dob", "personal_id",
                        "user_id", "customer_id"])
PII_ACTION_TERMS = ("personal", "identity", "profile", "contact")
EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b")
SSN_RE = re.compile(r"\b\d{3}-?\d{2}-?\d{4}\b")
PHONE_RE = re.compile(r"\b\d{3}-?\d{3}-?\d{4}\b")
CARD_RE = re.compile(r"\b\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b")

# EMAIL_RE.search in linear time.  The regex itself restarts at every \b of a
# long local part and rescans the domain from each start (120 KB took 7 s).
# A match has exactly one '@' (neither class holds it), so it exists iff some
# '@' has (1) a \b inside the maximal run of local characters just before it
# and (2) a domain match right after it.  (1): each run is found once (the
# lookbehind only lets a run be tried from its first character) and searched
# for a \b once; (2): one anchored match whose backtracking stays inside that
# '@''s domain run and the TLD runs after its dots -- disjoint for different
# '@'s.  The differential tests compare it with EMAIL_RE.search.
_EMAIL_LOCAL_RUN = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+(?=@)")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b")
_WORD_EDGE = re.compile(r"\b")


def email_search(value: str, domain: Any = _EMAIL_DOMAIN) -> bool:
    """``bool(EMAIL_RE.search(value))`` in time linear in ``len(value)``
    (``domain``: the pattern after the '@'; the advanced block passes its own)."""
    if "@" not in value:
        return False
    for m in _EMAIL_LOCAL_RUN.finditer(value):
        start, at = m.span()
        # endpos=at: a \b found at `at` itself (the slice's end) is no local-part start
        edge = _WORD_EDGE.search(value, start, at)
        if edge is not None and edge.start() < at and domain.match(value, at + 1) is not None:
            return True
    return False

FINANCIAL_FIELDS = frozenset(["account_number", "routing_number", "bank_account", "credit_card", "debit_card",
                              "payment_method", "transaction_id", "amount", "balance", "salary", "income", "payment",
                              "billing", "invoice", "tax_id", "ein", "financial_data"])
FINANCIAL_ACTIONS = ("payment", "transfer", "withdraw", "deposit", "charge", "refund", "billing", "invoice",
                     "transaction", "financial")
CURRENCY_KEYS = frozenset(["amount", "price", "cost", "fee"])
ACCOUNT_RE = re.compile(r"\b\d{10,17}\b")
ROUTING_RE = re.compile(r"\b\d{9}\b")

MODEL_ACTIONS = ("switch_model", "change_model", "update_model", "load_model", "model_selection", "model_config", "ai_model")
MODEL_PARAMS = frozenset(["model", "model_name", "model_id", "model_version", "ai_model", "llm_model", "engine", "provider"])
#: Deviation: iterated in sorted order (the reference iterated a str set: order varied with PYTHONHASHSEED).
MODEL_KEYWORDS = tuple(sorted([
    "gpt-4", "gpt-4o", "claude", "gemini", "llama", "mistral", "vision endpoint", "text endpoint", "embedding endpoint",
    "rerank", "reranking", "embedding api", "external inference", "third-party api", "tool call", "function calling",
    "inference api", "ml api", "ai api", "model api", "completion", "chat completion", "text generation",
]))

API_TERMS = ("api", "endpoint", "service", "rest", "graphql", "webhook", "third-party", "external", "remote", "upstream")
URL_KEYS = frozenset(["url", "endpoint", "api_url", "service_url", "webhook"])
URL_RE = re.compile(r'https?://[^\s<>"]+', re.IGNORECASE)

ESCALATION_TERMS = ("admin", "root", "sudo", "elevate", "escalate", "privilege", "superuser", "administrator", "system",
                    "override")
DANGEROUS_PREFIXES = ("admin_action", "system_command", "privilege_change", "user_promote", "role_change",
                      "permission_grant", "access_override")

GDPR_ACTIONS = ("data_export", "data_deletion", "data_rectification", "data_portability", "consent_withdraw",
                "personal_data", "data_subject_request")
GDPR_TERMS = ("gdpr", "data_subject", "personal_data", "data_controller", "data_processor", "consent",
              "legitimate_interest")


# --- detectors -------------------------------------------------------------------------------

def _str_or_empty(value: Any) -> str:
    """Deviation: a missing or non-str action/description counts as "" for that
    detector step only (the reference raised, and lost every tag)."""
    return value if isinstance(value, str) else ""


def _params(plan: Dict[str, Any]) -> Optional[Dict[Any, Any]]:
    p = plan.get("params", {})
    return p if isinstance(p, dict) else None


def _low_key(key: Any) -> Optional[str]:
    """Lowercased key; deviation: a non-str key is skipped (the reference raised)."""
    return key.lower() if isinstance(key, str) else None


class SafetyTagDetector:
    """Base detector: ``tag_name``, ``category``, ``description``; ``detect(plan, context)`` -> SafetyTag or None."""

    threshold = 0.0

    def __init__(self, tag_name: str, category: Any, description: str) -> None:
        self.tag_name = tag_name
        self.category = category
        self.description = description

    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]:
        """Return a tag for the plan, or None."""
        raise NotImplementedError()

    def _tag(self, confidence: float, types: List[str]) -> Optional[SafetyTag]:
        if confidence > self.threshold:
            return SafetyTag(self.tag_name, self.category, self.description, confidence, "detection",
                             {"detected_types": types})
        return None


class PIIDetector(SafetyTagDetector):
    """``pii``: PII fields, emails, SSNs, phones, card numbers, personal actions (threshold > 0.5)."""

    threshold = 0.5
    pii_fields = PII_FIELDS
    email_pattern, ssn_pattern, phone_pattern, credit_card_pattern = EMAIL_RE, SSN_RE, PHONE_RE, CARD_RE

    def __init__(self) -> None:
        super().__init__("pii", SafetyTagCategory.DATA_SENSITIVITY, "Personally identifiable information detected")

    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]:
        """Return a tag for the plan, or None."""
        conf, types = 0.0, []
        params = _params(plan)
        if params is not None:
            for key in params:
                if _low_key(key) in PII_FIELDS:
                    conf = max(conf, 0.9)
                    types.append(f"field:{key}")
            for value in params.values():
                if isinstance(value, str):
                    if email_search(value):
                        conf = max(conf, 0.95)
                        types.append("email")
                    if SSN_RE.search(value):
                        conf = max(conf, 0.95)
                        types.append("ssn")
                    if PHONE_RE.search(value):
                        conf = max(conf, 0.8)
                        types.append("phone")
                    if CARD_RE.search(value):
                        conf = max(conf, 0.95)
                        types.append("credit_card")
        action = _str_or_empty(plan.get("action", "")).lower()
        if any(t in action for t in PII_ACTION_TERMS):
            conf = max(conf, 0.6)
            types.append("action")
        return self._tag(conf, types)


class FinancialDetector(SafetyTagDetector):
    """``financial``: payment actions, financial fields, currency amounts (threshold > 0.6).

    With the advanced flag, the account/routing number patterns really run
    (deviation: the reference defined them and never used them)."""

    threshold = 0.6
    financial_fields = FINANCIAL_FIELDS
    account_pattern, routing_pattern = ACCOUNT_RE, ROUTING_RE

    def __init__(self, advanced: bool = False) -> None:
        super().__init__("financial", SafetyTagCategory.DATA_SENSITIVITY, "Financial data or operations detected")
        self.advanced = advanced

    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]:
        """Return a tag for the plan, or None."""
        conf, types = 0.0, []
        action = _str_or_empty(plan.get("action", "")).lower()
        if any(t in action for t in FINANCIAL_ACTIONS):
            conf = max(conf, 0.9)
            types.append("action")
        params = _params(plan)
        if params is not None:
            for key in params:
                if _low_key(key) in FINANCIAL_FIELDS:
                    conf = max(conf, 0.8)
                    types.append(f"field:{key}")
            for key, value in params.items():
                if isinstance(value, (int, float)) and _low_key(key) in CURRENCY_KEYS:
                    conf = max(conf, 0.7)
                    types.append("currency")
            if self.advanced:
                for value in params.values():
                    if isinstance(value, str):
                        if ACCOUNT_RE.search(value):
                            conf = max(conf, 0.7)
                            types.append("account_number")
                        if ROUTING_RE.search(value):
                            conf = max(conf, 0.7)
                            types.append("routing_number")
        return self._tag(conf, types)


def _joined(plan: Dict[str, Any], params: Optional[Dict[Any, Any]]) -> str:
    parts = [_str_or_empty(plan.get("action", "")), _str_or_empty(plan.get("description", ""))]
    if params is not None:
        parts.extend(v for v in params.values() if isinstance(v, str))
    return " ".join(parts)


class ModelSwitchDetector(SafetyTagDetector):
    """``model-switch``: model actions, model params, model keywords in the text (threshold > 0.7)."""

    threshold = 0.7
    model_keywords = MODEL_KEYWORDS

    def __init__(self) -> None:
        super().__init__("model-switch", SafetyTagCategory.SYSTEM_OPERATION, "Model switching operation detected")

    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]:
        """Return a tag for the plan, or None."""
        conf, types = 0.0, []
        action = _str_or_empty(plan.get("action", "")).lower()
        if any(t in action for t in MODEL_ACTIONS):
            conf = max(conf, 0.95)
            types.append("action")
        params = _params(plan)
        if params is not None:
            for key in params:
                if _low_key(key) in MODEL_PARAMS:
                    conf = max(conf, 0.9)
                    types.append(f"param:{key}")
        text = _joined(plan, params).lower()
        for kw in MODEL_KEYWORDS:
            if kw in text:
                conf = max(conf, 0.85)
                types.append(f"keyword:{kw}")
        return self._tag(conf, types)


class ExternalCallDetector(SafetyTagDetector):
    """``external-call``: API actions, URL params, URLs in the text (threshold > 0.7)."""

    threshold = 0.7
    url_pattern = URL_RE

    def __init__(self) -> None:
        super().__init__("external-call", SafetyTagCategory.SYSTEM_OPERATION, "External API call detected")

    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]:
        """Return a tag for the plan, or None."""
        conf, types = 0.0, []
        action = _str_or_empty(plan.get("action", "")).lower()
        if any(t in action for t in API_TERMS):
            conf = max(conf, 0.9)
            types.append("action")
        params = _params(plan)
        if params is not None:
            for key, value in params.items():
                if _low_key(key) in URL_KEYS and isinstance(value, str) and ("http" in value or "api" in value):
                    conf = max(conf, 0.95)
                    types.append(f"url_param:{key}")
        n = len(URL_RE.findall(_joined(plan, params)))
        if n:
            conf = max(conf, 0.9)
            types.append(f"url_in_text:{n}_found")
        return self._tag(conf, types)


class PrivilegeEscalationDetector(SafetyTagDetector):
    """``privilege-escalation``: escalation terms in the action or string params (threshold > 0.7)."""

    threshold = 0.7

    def __init__(self) -> None:
        super().__init__("privilege-escalation", SafetyTagCategory.SECURITY_RISK, "Privilege escalation detected")

    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]:
        """Return a tag for the plan, or None."""
        conf, types = 0.0, []
        action = _str_or_empty(plan.get("action", "")).lower()
        if any(t in action for t in ESCALATION_TERMS):
            conf = max(conf, 0.9)
            types.append("action_keyword")
        if action.startswith(DANGEROUS_PREFIXES):
            conf = max(conf, 0.95)
            types.append("dangerous_action")
        params = _params(plan)
        if params is not None:
            for key, value in params.items():
                if isinstance(value, str):
                    low = value.lower()
                    if any(t in low for t in ESCALATION_TERMS):
                        conf = max(conf, 0.8)
                        types.append(f"param:{key}")
        return self._tag(conf, types)


class GDPRDetector(SafetyTagDetector):
    """``gdpr``: GDPR actions and terms (threshold > 0.6).

    For an EU/EEA user (``context["user_region"]``) ``eu_user`` is appended
    to ``detected_types``, as in the SDK (it labels a tag that fires anyway,
    never makes one fire).  With the advanced flag the EU rule really works
    instead: an EU/EEA user whose plan carries PII fields gets the ``gdpr``
    tag (0.65, ``eu_user``)."""

    threshold = 0.6

    def __init__(self, advanced: bool = False) -> None:
        super().__init__("gdpr", SafetyTagCategory.COMPLIANCE, "GDPR compliance relevant operation detected")
        self.advanced = advanced

    def detect(self, plan: Dict[str, Any], context: Dict[str, Any]) -> Optional[SafetyTag]:
        """Return a tag for the plan, or None."""
        conf, types = 0.0, []
        action = _str_or_empty(plan.get("action", "")).lower()
        if any(t in action for t in GDPR_ACTIONS):
            conf = max(conf, 0.9)
            types.append("gdpr_action")
        if any(t in action for t in GDPR_TERMS):
            conf = max(conf, 0.8)
            types.append("gdpr_term")
        params = _params(plan)
        if params is not None:
            for key, value in params.items():
                if isinstance(value, str):
                    low = value.lower()
                    if any(t in low for t in GDPR_TERMS):
                        conf = max(conf, 0.7)
                        types.append(f"param:{key}")
        region = context.get("user_region")  # context needs .get, as in the reference
        if region in ("EU", "EEA"):
            if not self.advanced:
                types.append("eu_user")  # the SDK's label
            elif params is not None and any(_low_key(k) in PII_FIELDS for k in params):
                conf = max(conf, 0.65)
                types.append("eu_user")
        return self._tag(conf, types)


# --- normalisation --------------------------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u180e"))
# The reference's `\s+at\s+` tried every position of a whitespace run and
# rescanned the rest of the run from each: quadratic (60 KB of spaces took
# 19 s).  Here the whitespace alternative is `\s(?<!\s\s)\s*at\s+`, i.e.
# `(?<!\s)\s+at\s+`: it starts only where a run starts (written so that the
# engine still skips ahead to the next whitespace character).  The same
# substitutions result: a match starting inside a run would also start at the
# run's first character (the greedy `\s+` reaches the same end), and no match
# ends inside a run (the trailing `\s+` takes all of it).  Each run is then
# scanned a bounded number of times.  The C tier does the same in csrc/tags.c.
_AT_RE = re.compile(r"\(at\)|\[at\]|\{at\}|<at>|\s(?<!\s\s)\s*at\s+", re.IGNORECASE)
_DOT_RE = re.compile(r"\(dot\)|\[dot\]|\{dot\}|<dot>|\s(?<!\s\s)\s*dot\s+", re.IGNORECASE)
_HOMOGLYPHS = str.maketrans({"\u0430": "a", "\u043e": "o", "\u0435": "e", "\u0440": "p", "\u0441": "c", "\u0445": "x",
                             "\u0443": "y", "\u03bf": "o", "\u03b1": "a", "\u217c": "l", "\u2160": "I"})


def normalize_text(text: Any) -> Any:
    """``SafetyTagEnricher.preprocess_text``: the reference's normaliser."""
    if not isinstance(text, str):
        return str(text)
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_ZERO_WIDTH)
    text = _AT_RE.sub("@", text)
    text = _DOT_RE.sub(".", text)
    return text.translate(_HOMOGLYPHS)


def normalize_plan(plan: Any, text_fn: Any = normalize_text) -> Dict[Any, Any]:
    """New dict, same keys and order; str values normalised, dicts recursed,
    lists rebuilt with str items normalised and dict items recursed."""
    out = {}
    for k, v in plan.items():
        out[k] = _norm_value(v, text_fn)
    return out


def _norm_value(v: Any, text_fn: Any) -> Any:
    if isinstance(v, str):
        return text_fn(v)
    if isinstance(v, dict):
        return normalize_plan(v, text_fn)
    if isinstance(v, list):
        return [text_fn(x) if isinstance(x, str) else normalize_plan(x, text_fn) if isinstance(x, dict) else x for x in v]
    return v


# --- the advanced block (deviation: it works) --------------------------------------------------------

_ADV_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_ADV_FOLD = str.maketrans({
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "s", "\u0445": "x", "\u0456": "i",
    "\u0458": "j", "\u0501": "d", "\u04ba": "H", "\u04bb": "h", "\u03bf": "o", "\u039f": "O", "\u0399": "I",
    "\u039c": "M", "\u039d": "N", "\u039a": "K", "\u0395": "E", "\u03a4": "T", "\u03a1": "P", "\u03a7": "X",
    "\u2170": "i", "\u2171": "ii", "\u2160": "I", "\u2161": "II", "\u217c": "l",
})
# bracketed (at)/(dot) with optional spaces, or a bare at/dot between spaces -- never inside a word.
# `(?:(?!\s)|(?<!\s))`: no match starts inside a whitespace run (after its first
# character); same results as without it (see _AT_RE), linear time.
_ADV_DOT_RE = re.compile(r"(?:(?!\s)|(?<!\s))(?:\s*[\(\[\{<]\s*dot\s*[\)\]\}>]\s*|\s+dot\s+)", re.IGNORECASE)
_ADV_AT_RE = re.compile(r"(?:(?!\s)|(?<!\s))(?:\s*[\(\[\{<]\s*at\s*[\)\]\}>]\s*|\s+at\s+)", re.IGNORECASE)
_ADV_AT_SP = re.compile(r"(?:(?!\s)|(?<!\s))\s*@\s*")
_ADV_DOT_SP = re.compile(r"(?<=\w)\s*\.\s*(?=\w)")
ADV_EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
ADV_PHONE_ES_RE = re.compile(r"\+34\s*[67]\d{2}\s*\d{2}\s*\d{2}\s*\d{2}")
ADV_PHONE_PT_RE = re.compile(r"\(\d{2}\)\s*9?\d{4}[-\s]?\d{4}")
ADV_MODEL_RE = re.compile(r"(?i)\b(gpt[-\s]?4(?:o|v)?|vision endpoint|external inference api|third[-\s]?party api|"
                          r"tool[-\s]?call|tool[-\s]?use|rerank|embedding api)\b")
ADV_API_URL_RE = re.compile(r"https?://[^\s]*api[^\s]*", re.IGNORECASE)
ADV_SHORT_RE = re.compile(r"https?://(bit\.ly|t\.co|tinyurl\.com|goo\.gl)/[^\s]+", re.IGNORECASE)
_ADV_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_ADV_HTTP = re.compile(r"https?://", re.IGNORECASE)
_ADV_API = re.compile(r"api", re.IGNORECASE)
_SPACE = re.compile(r"\s")


def _adv_api_url(text: str) -> bool:
    """``bool(ADV_API_URL_RE.search(text))`` in linear time: the regex rescans a
    whitespace-free run from every ``http://`` in it; here each run is searched
    for ``api`` once, from its first ``http(s)://`` (later ones see a suffix)."""
    pos = 0
    while True:
        m = _ADV_HTTP.search(text, pos)
        if m is None:
            return False
        sp = _SPACE.search(text, m.end())
        end = len(text) if sp is None else sp.start()
        if _ADV_API.search(text, m.end(), end) is not None:
            return True
        pos = end


def preprocess_text(text: Any) -> Any:
    """The advanced normaliser (module level, as in the reference).

    Deviations: non-str input is returned unchanged (the reference raised
    TypeError from NFKC); ``at``/``dot`` are replaced only when bracketed or
    standing alone between spaces, so ``data`` stays ``data``."""
    if not text or not isinstance(text, str):
        return text
    text = unicodedata.normalize("NFKC", text).translate(_ADV_ZERO_WIDTH).translate(_ADV_FOLD)
    text = _ADV_DOT_RE.sub(".", text)
    text = _ADV_AT_RE.sub("@", text)
    text = _ADV_AT_SP.sub("@", text)
    return _ADV_DOT_SP.sub(".", text)


def canonical_domain(url: Any) -> Any:
    """Fallback kept for parity with the reference module: ``url.lower()`` (unused)."""
    return url.lower()


def _advanced_sources(plan: Dict[str, Any]) -> List[str]:
    out = []
    desc = plan.get("description")
    if isinstance(desc, str) and desc:
        out.append(desc)
    params = plan.get("params")
    if isinstance(params, dict):
        content = params.get("content")
        if isinstance(content, str) and content:
            out.append(content)
        for key in ("script", "run", "command", "exec"):
            v = params.get(key)
            if isinstance(v, str) and v:
                out.append(v)
        cfg = params.get("config")
        if isinstance(cfg, dict):
            out.extend(v for v in cfg.values() if isinstance(v, str) and v)
    return out


def advanced_tags(plan: Dict[str, Any], present: Set[str]) -> List[SafetyTag]:
    """Tags of the advanced block for one (normalised) plan, skipping names already present."""
    pii = model = ext = 0.0
    pii_t, model_t, ext_t = [], [], []
    for src in _advanced_sources(plan):
        text = preprocess_text(src)
        if email_search(text, _ADV_EMAIL_DOMAIN):
            pii = max(pii, 0.70)
            pii_t.append("advanced:email")
        if ADV_PHONE_ES_RE.search(text) or ADV_PHONE_PT_RE.search(text):
            pii = max(pii, 0.65)
            pii_t.append("advanced:phone")
        hits = len(ADV_MODEL_RE.findall(text))
        if hits:
            model = max(model, 0.75 if hits >= 2 else 0.55)
            model_t.append(f"advanced:model_hints:{hits}")
        if _adv_api_url(text):
            ext = max(ext, 0.65)
            ext_t.append("advanced:api_url")
        if ADV_SHORT_RE.search(text):
            ext = max(ext, 0.70)
            ext_t.append("advanced:short_link")
    out = []
    for name, conf, cat, desc, types in (
        ("pii", pii, SafetyTagCategory.DATA_SENSITIVITY, "Personally identifiable information detected", pii_t),
        ("model-switch", model, SafetyTagCategory.SYSTEM_OPERATION, "Model switching operation detected", model_t),
        ("external-call", ext, SafetyTagCategory.SYSTEM_OPERATION, "External API call detected", ext_t),
    ):
        if conf > 0.5 and name not in present:
            out.append(SafetyTag(name, cat, desc, conf, "advanced", {"detected_types": types}))
    return out


# --- metrics -------------------------------------------------------------------------------------------

# the SDK's module-level metrics: they exist at import, register on first use
SAFETY_TAGS_ENRICHMENT = _metrics.lazy_counter("safety_tags_enrichment_total", "Plan enrichments", ["tag_count_range"])
SAFETY_TAGS_DETECTION = _metrics.lazy_counter("safety_tags_detection_total", "Safety tags detected", ["category", "tag"])
SAFETY_TAGS_EVALUATION_TIME = _metrics.lazy_histogram("safety_tags_evaluation_ms", "Enrichment time (ms)", (),
                                                      buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0))
SAFETY_TAGS_CONFIDENCE = _metrics.lazy_histogram("safety_tags_confidence_bucket", "Safety tag confidence",
                                                 ["tag", "lane"], buckets=tuple(i / 10 for i in range(11)))
GUARDIAN_ACTIONS_EXEMPLARS = _metrics.lazy_counter("guardian_actions_count",
                                                   "Guardian actions (not recorded by this module)", ["action", "lane"])


def _tag_count_range(n: int) -> str:
    if n == 0:
        return "0"
    if n <= 3:
        return "1-3"
    if n <= 6:
        return "4-6"
    return "7+"


# --- the enricher ----------------------------------------------------------------------------------------

def _sort_pairs(d: Dict[Any, Any]) -> List[Tuple[Any, Any]]:
    try:
        return sorted(d.items())
    except TypeError:  # deviation: mixed key types no longer make caching raise
        return sorted(d.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))


BUILTIN_DETECTORS = (PIIDetector, FinancialDetector, ModelSwitchDetector, ExternalCallDetector,
                     PrivilegeEscalationDetector, GDPRDetector)
#: each built-in detector class's own ``detect``, in detector order (taken when this
#: module runs, before anything can patch them): the C tier's fused scan stands in
#: for the detectors only while these are what ``detector.detect`` resolves to
BUILTIN_DETECT = tuple(cls.__dict__["detect"] for cls in BUILTIN_DETECTORS)


# --- the result cache ------------------------------------------------------------------------------------

def _text_cost(s: Any) -> int:
    if isinstance(s, str):
        return 64 + len(s) * (1 if s.isascii() else 4)
    return 64


def entry_cost(key: Any, tags: List[Any]) -> int:
    """Estimated bytes a cache entry holds: 128 + the key's length + per tag
    256 + per detected type 64 + its length x character width (4 for non-ASCII
    text; a custom tag object counts 1024).  The same estimate on both tiers
    (their keys differ in length: 16 hex digits here, at most 1 KiB of bytes there)."""
    n = 128 + (len(key) if isinstance(key, (str, bytes)) else 64)
    for t in tags:
        if type(t) is SafetyTag:
            md = t.metadata
            types = md.get("detected_types") if isinstance(md, dict) else None
            n += 256
            if isinstance(types, list):
                for x in types:
                    n += _text_cost(x)
        else:
            n += 1024
    return n


class TagCache(OrderedDict):
    """The enricher's result cache: an ``OrderedDict`` (LRU order, oldest first)
    that also keeps the estimated bytes of the entries the enricher stored
    (``nbytes``; items assigned directly count 0)."""

    def __init__(self) -> None:
        super().__init__()
        self._costs: Dict[Any, int] = {}
        self.nbytes = 0

    def put(self, key: Any, value: Any, cost: int, maxsize: int, maxbytes: int) -> None:
        """Store ``value`` as the most recent entry, then drop the oldest until
        at most ``maxsize`` entries and ``maxbytes`` bytes remain (an entry
        costing more than ``maxbytes`` on its own is not stored)."""
        if key in self:
            del self[key]
        if cost > maxbytes:
            return
        self[key] = value
        self._costs[key] = cost
        self.nbytes += cost
        while len(self) > maxsize or self.nbytes > maxbytes:
            self.popitem(last=False)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self.nbytes -= self._costs.pop(key, 0)

    def popitem(self, last: bool = True) -> Tuple[Any, Any]:
        """Remove and return the most recent (``last=False``: the oldest) ``(key, value)``."""
        key, value = super().popitem(last)
        self.nbytes -= self._costs.pop(key, 0)
        return key, value

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``)."""
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def clear(self) -> None:
        """Drop every entry."""
        super().clear()
        self._costs.clear()
        self.nbytes = 0


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


class SafetyTagEnricher:
    """SafetyTagEnricher(enable_caching=True, *, advanced=None, cache_size=1000, cache_bytes=64 MiB, metrics=None)

    Tags action plans: each detector sees a normalised copy of the plan;
    results are cached (LRU, at most ``cache_size`` entries and ``cache_bytes``
    bytes of estimated entry cost, see :func:`entry_cost`) by the normalised plan
    and context.  Thread-safe (a reentrant lock); every result has its own
    ``tags`` list and tag objects.  ``advanced`` (default: the
    ``LUKHAS_ADVANCED_TAGS``/``LUKHAS_EXPERIMENTAL`` flag) turns on the
    advanced block, the financial account/routing patterns and the EU GDPR rule.
    """

    def __init__(self, enable_caching: bool = True, *, advanced: Optional[bool] = None,
                 cache_size: int = CACHE_SIZE, cache_bytes: int = CACHE_BYTES,
                 metrics: Optional[bool] = None) -> None:
        _check_positive("cache_size", cache_size)
        _check_positive("cache_bytes", cache_bytes)
        self.enable_caching = bool(enable_caching)
        self.advanced = ADVANCED_TAGS_ENABLED if advanced is None else bool(advanced)
        self.cache_size = cache_size
        self.cache_bytes = cache_bytes
        self.tag_cache: Optional["OrderedDict[Any, List[Any]]"] = self._cache_type() if self.enable_caching else None
        self.cache_hits = 0
        self.cache_misses = 0
        self.detectors: List[Any] = [PIIDetector(), FinancialDetector(self.advanced), ModelSwitchDetector(),
                                     ExternalCallDetector(), PrivilegeEscalationDetector(), GDPRDetector(self.advanced)]
        self._builtin = tuple(self.detectors)
        self._lock = threading.RLock()
        self._metrics = _metrics.resolve_metrics(metrics)
        logger.info("SafetyTagEnricher initialized with %d detectors, caching=%s", len(self.detectors),
                    "enabled" if self.enable_caching else "disabled")

    _copy_tag: "Callable[[Any], Any]" = staticmethod(copy_tag)
    _cache_type = TagCache  # the C tier's LRU has the same methods

    # -- hooks the C tier replaces ------------------------------------------------------------
    def preprocess_text(self, text: Any) -> Any:
        """The reference's normaliser (NFKC, zero-width removal, (at)/(dot), homoglyphs)."""
        return normalize_text(text)

    def preprocess_plan(self, plan: Any) -> Dict[Any, Any]:
        """Normalised copy of the plan (keys and order kept)."""
        return normalize_plan(plan, self.preprocess_text)

    def _generate_cache_key(self, plan: Dict[Any, Any], context: Dict[Any, Any]) -> Any:
        """The reference's key: SHA-256 of str(sorted plan pairs) + "_" + str(sorted context pairs)."""
        text = f"{str(_sort_pairs(plan))}_{str(_sort_pairs(context))}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def _key_and_plan(self, plan: Dict[Any, Any], context: Dict[Any, Any]) -> Tuple[Any, Optional[Dict[Any, Any]]]:
        """(cache key or None, normalised plan or None if the tier defers it to a miss)."""
        normalized = self.preprocess_plan(plan)
        key = self._generate_cache_key(normalized, context) if self.tag_cache is not None else None
        return key, normalized

    def _scan_builtin(self, normalized: Dict[Any, Any], context: Dict[Any, Any]) -> List[Any]:
        """Run the six built-in detectors (the C tier fuses them into one pass)."""
        return self._run_detectors(list(self._builtin), normalized, context)

    # ---------------------------------------------------------------------------------------------
    def _run_detectors(self, detectors: List[Any], normalized: Dict[Any, Any], context: Dict[Any, Any]) -> List[Any]:
        tags = []
        for det in detectors:
            try:
                tag = det.detect(normalized, context)
            except Exception as exc:
                logger.error("Error in detector %s: %s", getattr(det, "tag_name", det), exc)
                continue
            if tag:
                tags.append(tag)
        return tags

    def _detect(self, normalized: Dict[Any, Any], context: Dict[Any, Any]) -> List[Any]:
        dets = self.detectors
        builtin = self._builtin
        nb = len(builtin)
        # `detectors` is a public list users may edit: the fused scan stands in
        # for the built-ins only while they are still the first six entries
        if tuple(dets[:nb]) == builtin:  # identity compares first: cheap
            tags = self._scan_builtin(normalized, context)
            if len(dets) > nb:
                tags += self._run_detectors(dets[nb:], normalized, context)
        else:
            tags = self._run_detectors(dets, normalized, context)
        if self.advanced:
            try:
                tags += advanced_tags(normalized, {getattr(t, "name", None) for t in tags})
            except Exception as exc:  # never turns a good plan into an error result
                logger.error("Error in advanced tag detection: %s", exc)
        return tags

    def _record(self, tags: List[Any], context: Dict[Any, Any], ms: float) -> None:
        if not self._metrics:
            return
        lane = _metrics.lane_label(context.get("lane", "unknown"))  # bounded: unknown lanes -> "other"
        for t in tags:
            try:
                cat = getattr(t.category, "value", t.category)
                SAFETY_TAGS_DETECTION.labels(category=cat, tag=t.name).inc()
                SAFETY_TAGS_CONFIDENCE.labels(tag=t.name, lane=lane).observe(t.confidence)
            except Exception as exc:
                logger.error("Error recording metrics for tag %r: %s", t, exc)
        SAFETY_TAGS_ENRICHMENT.labels(tag_count_range=_tag_count_range(len(tags))).inc()
        SAFETY_TAGS_EVALUATION_TIME.observe(ms)

    def enrich_plan(self, plan: Dict[str, Any], context: Optional[Dict[str, Any]] = None) -> TaggedPlan:
        """Tag a plan.  Returns a :class:`TaggedPlan` whose ``original_plan`` is the caller's object.

        Deviations: a plan that is not a dict, or a context that is neither a
        dict nor falsy, raises ``TypeError`` before anything changes (the
        reference raised AttributeError, or returned an error result only when
        caching was on); a plan that cannot be keyed (a value whose ``repr``
        raises) is tagged without the cache and counted as a miss.
        """
        start = time.perf_counter()
        if not isinstance(plan, dict):
            raise TypeError(f"plan must be a dict, got {type(plan).__name__}")
        context = context or {}
        if not isinstance(context, dict):
            raise TypeError(f"context must be a dict or None, got {type(context).__name__}")
        try:
            key, normalized = self._key_and_plan(plan, context)
        except RecursionError:
            raise
        except Exception as exc:  # deviation: a value whose repr raises is served uncached
            logger.debug("plan served uncached, no cache key: %s", exc)
            key, normalized = None, self.preprocess_plan(plan)  # re-raises if normalising failed
        with self._lock:
            cache = self.tag_cache
            if cache is not None:
                cached = cache.get(key) if key is not None else None
                if cached is not None:
                    cache.move_to_end(key)
                    self.cache_hits += 1
                    ms = (time.perf_counter() - start) * 1000.0
                    cp = self._copy_tag
                    return TaggedPlan(plan, [cp(t) for t in cached], ms, {"cache_hit": True})
                self.cache_misses += 1
            if normalized is None:
                normalized = self.preprocess_plan(plan)
            tags = self._detect(normalized, context)
            if cache is not None and key is not None:
                cp = self._copy_tag
                rec = [cp(t) for t in tags]
                if isinstance(cache, TagCache):
                    cache.put(key, rec, entry_cost(key, rec), self.cache_size, self.cache_bytes)
                else:  # a mapping the caller put there: the entry bound only
                    cache[key] = rec
                    while len(cache) > self.cache_size:
                        cache.popitem(last=False)
            ms = (time.perf_counter() - start) * 1000.0
            self._record(tags, context, ms)
            logger.debug("enriched plan: %d tags in %.3f ms", len(tags), ms)
            return TaggedPlan(plan, tags, ms, {"cache_hit": False, "detector_count": len(self.detectors),
                                               "tags_detected": len(tags)})

    def enrich_rendered(self, plan: Dict[str, Any], context: Optional[Dict[str, Any]],
                        render: Callable[[List[Any]], Any]) -> Tuple[Any, float, Dict[str, Any]]:
        """``(render(tags), enrichment_time_ms, enrichment_context)`` of ``enrich_plan(plan, context)``.

        For callers that only want the tags in some rendered form (the service's
        JSON answer): the same enrichment, the same counters and the same errors as
        :meth:`enrich_plan`.  ``render`` must be a pure function of the tags' field
        values (it may not keep or mutate them).  The C tier may then skip it on a
        cache hit: the rendering of an entry's built-in tags (``bytes`` or a tuple
        of ``bytes``) is kept with the cache entry, per ``render`` object, and
        returned by later hits of that entry.  It goes when the entry goes or
        changes; it is not counted in ``cache_bytes`` (so it never changes which
        entries stay), and one estimated at more than twice its entry's cost is
        not kept (the cache's ``view_bytes``).  This tier renders every time.
        """
        tp = self.enrich_plan(plan, context)
        return render(tp.tags), tp.enrichment_time_ms, tp.enrichment_context

    def add_detector(self, detector: Any) -> None:
        """Append a custom detector (needs a str ``tag_name`` and a callable ``detect``); clears the cache."""
        if not isinstance(getattr(detector, "tag_name", None), str) or not callable(getattr(detector, "detect", None)):
            raise TypeError("detector needs a str tag_name and a callable detect(plan, context)")
        with self._lock:
            self.detectors.append(detector)
            if self.tag_cache:
                self.tag_cache.clear()
        logger.info("Added custom detector: %s", detector.tag_name)

    def get_stats(self) -> Dict[str, Any]:
        """Detector count, cache state and hit rate, and the detectors' tag names."""
        with self._lock:
            hits, misses = self.cache_hits, self.cache_misses
            return {
                "detector_count": len(self.detectors),
                "cache_enabled": self.enable_caching,
                "cache_size": len(self.tag_cache) if self.tag_cache else 0,
                "cache_hits": hits,
                "cache_misses": misses,
                "cache_hit_rate": hits / max(hits + misses, 1),
                "available_tags": [d.tag_name for d in self.detectors],
            }

    @staticmethod
    def _get_tag_count_range(n: int) -> str:
        """``"0"``, ``"1-3"``, ``"4-6"`` or ``"7+"``."""
        return _tag_count_range(n)


def create_safety_tag_enricher(enable_caching: bool = True) -> SafetyTagEnricher:
    """``SafetyTagEnricher(enable_caching)`` of this tier."""
    return SafetyTagEnricher(enable_caching)
