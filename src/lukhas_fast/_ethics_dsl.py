"""Ethics DSL, shared by every tier: predicates, unit and domain helpers, the
rule parser (text -> syntax tree, with the load-time checks) and ``hash_rule``.

Tiers differ only in how a parsed rule is evaluated: the pure-Python tier
walks the tree with closures (the oracle), the C tier runs a flat program in
Cython.  Deviations from the reference (see README) are marked "deviation".
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
import threading
import urllib.parse
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

__all__ = [
    "DSLError",
    "RuleEvaluationError",
    "PREDICATES",
    "canonical_domain",
    "registrable_domain",
    "parse_bytes",
    "parse_seconds",
    "hash_rule",
    "parse_rule",
    "MAX_RULE_DEPTH",
]


class DSLError(Exception):
    """A rule that does not compile (raised at load time, naming the problem)."""


class RuleEvaluationError(Exception):
    """A compiled rule failed while evaluating a plan (the engine turns this
    into a BLOCK with reason ``evaluation_error``: fail closed)."""


def hash_rule(s: str) -> str:
    """First 16 lowercase hex digits of SHA-256 of ``s`` (UTF-8)."""
    return hashlib.sha256(s.encode("utf-8")).hexdigest()[:16]


# --- basic predicates -------------------------------------------------------------

def contains(haystack: Any, needle: Any) -> bool:
    """``needle.lower()`` is a substring of ``str(haystack).lower()`` (None haystack: False)."""
    if haystack is None:
        return False
    return needle.lower() in str(haystack).lower()


def equals(left: Any, right: Any) -> Any:
    """``left == right``."""
    return left == right


def greater_than(left: Any, right: Any) -> bool:
    """``float(left) > float(right)``; False if either does not convert."""
    try:
        return float(left) > float(right)
    except (TypeError, ValueError):
        return False


def less_than(left: Any, right: Any) -> bool:
    """``float(left) < float(right)``; False if either does not convert."""
    try:
        return float(left) < float(right)
    except (TypeError, ValueError):
        return False


def matches(text: Any, pattern: str) -> bool:
    """``re.search(pattern, str(text))`` found (None text or invalid regex: False)."""
    if text is None:
        return False
    try:
        return re.search(pattern, str(text)) is not None
    except re.error:
        return False


def is_empty(value: Any) -> bool:
    """None, or a str/list/dict/tuple/set of length 0."""
    if value is None:
        return True
    if isinstance(value, (str, list, dict, tuple, set)):
        return len(value) == 0
    return False


def is_present(value: Any) -> bool:
    """``not is_empty(value)``."""
    return not is_empty(value)


_NO_CONSENT = frozenset(["false", "no", "deny", "reject", ""])


def not_has_consent(value: Any) -> bool:
    """None -> True; bool -> ``not value``; str -> lowercased in false/no/deny/reject/"" ; else False."""
    if value is None:
        return True
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value.lower() in _NO_CONSENT
    return False


# --- domains ------------------------------------------------------------------------

_ALLOWED_SCHEMES = frozenset(["http", "https", "ftp", "ftps"])

try:  # the idna package (IDNA 2008); Python's own codec (IDNA 2003) otherwise
    import idna as _idna
except ImportError:  # pragma: no cover - idna is a dependency
    _idna = None


def _to_ascii_host(host: str) -> str:
    if host.isascii():
        return host
    if _idna is not None:
        try:
            return _idna.encode(host).decode("ascii")
        except _idna.IDNAError:
            return host
    # deviation: the reference returns "" for every non-ASCII host without idna
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def canonical_domain(url: Any) -> str:
    """Lowercased host of ``url`` (http/https/ftp/ftps only; IDNA-encoded), or ``""``; never raises."""
    try:
        if not isinstance(url, str):
            return ""
        if "://" not in url:
            url = "https://" + url
        parsed = urllib.parse.urlparse(url)
        host = parsed.hostname
        if not host or parsed.scheme not in _ALLOWED_SCHEMES:
            return ""
        host = host.strip(".").lower()
        return _to_ascii_host(host) if host else ""
    except Exception:
        return ""


def domain_is(a: Any, target: Any) -> bool:
    """Same canonical host (non-empty)."""
    if a is None or target is None:
        return False
    ca = canonical_domain(str(a))
    return bool(ca) and ca == canonical_domain(target)


_psl = None
_psl_lock = threading.Lock()


def _public_suffix_list() -> Any:
    global _psl
    if _psl is None:
        with _psl_lock:
            if _psl is None:
                from publicsuffixlist import PublicSuffixList  # ships the list: no download

                _psl = PublicSuffixList()
    return _psl


def registrable_domain(host: str) -> Optional[str]:
    """eTLD+1 of a canonical host by the Public Suffix List (None for a public suffix or IP)."""
    if not host or ":" in host or host.replace(".", "").isdigit():
        return None
    return _public_suffix_list().privatesuffix(host)


def domain_etld1(a: Any, target: Any) -> bool:
    """Deviation: True when both hosts have the same registrable domain (eTLD+1
    from the Public Suffix List), compared on label boundaries.  The reference
    was a plain suffix test, so a target such as ``co.uk`` matched every host
    under it; a public suffix has no registrable domain and matches nothing."""
    if a is None or target is None:
        return False
    ca, ct = canonical_domain(str(a)), canonical_domain(target)
    if not ca or not ct:
        return False
    ra, rt = registrable_domain(ca), registrable_domain(ct)
    return ra is not None and ra == rt


# --- units ---------------------------------------------------------------------------

_BYTE_UNITS = {
    "": 1, "B": 1,
    "KB": 1000, "KIB": 1024, "MB": 1000**2, "MIB": 1024**2,
    "GB": 1000**3, "GIB": 1024**3, "TB": 1000**4, "TIB": 1024**4,
    "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4,
}
_BYTES_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)$")

_SECOND_UNITS = {}
for _names, _mult in [
    (("", "s", "sec", "second", "seconds"), 1.0),
    (("ms", "msec", "millisecond", "milliseconds"), 0.001),
    (("us", "\u03bcs", "\u00b5s", "microsecond", "microseconds"), 0.000001),
    (("m", "min", "minute", "minutes"), 60.0),
    (("h", "hr", "hour", "hours"), 3600.0),
    (("d", "day", "days"), 86400.0),
]:
    for _n in _names:
        _SECOND_UNITS[_n] = _mult
# deviation: the unit may use the micro sign (the reference's [a-z]* never matched it)
_SECONDS_RE = re.compile("^(\\d+(?:\\.\\d+)?)\\s*([a-z\u03bc\u00b5]*)$")


def parse_bytes(value: Any) -> int:
    """Bytes from ``1024``, ``"1.5 GiB"``, ``"512KB"`` ... (see the unit table).

    Deviations: negative and non-finite values (``"-5"``, ``"inf"``) raise a
    clear ``ValueError`` (the reference returned -5 / raised OverflowError).
    """
    if not isinstance(value, str):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"Invalid byte value: {value}")
        n = int(value)
        if n < 0:
            raise ValueError(f"Invalid byte value: {value} (negative)")
        return n
    s = value.strip().upper()
    m = _BYTES_RE.match(s)
    if m:
        unit = m.group(2)
        if unit not in _BYTE_UNITS:
            raise ValueError(f"Unknown byte unit: {unit}")
        return int(float(m.group(1)) * _BYTE_UNITS[unit])
    try:
        f = float(s)
    except ValueError:
        raise ValueError(f"Invalid byte value: {s}") from None
    if not math.isfinite(f):
        raise ValueError(f"Invalid byte value: {s}")
    if f < 0:
        raise ValueError(f"Invalid byte value: {s} (negative)")
    return int(f)


def parse_seconds(value: Any) -> float:
    """Seconds from ``5``, ``"300s"``, ``"5 min"``, ``"250ms"``, ``"5μs"`` ...

    Deviations: ``μs``/``µs`` parse; non-finite numbers raise ``ValueError``.
    """
    if not isinstance(value, str):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"Invalid time value: {value}")
        if f < 0:
            raise ValueError(f"Invalid time value: {value} (negative)")
        return f
    s = value.strip().lower()
    m = _SECONDS_RE.match(s)
    if not m:
        raise ValueError(f"Invalid time value: {s}")
    unit = m.group(2)
    if unit not in _SECOND_UNITS:
        raise ValueError(f"Unknown time unit: {unit}")
    return float(m.group(1)) * _SECOND_UNITS[unit]


def param_bytes_lte(value: Any, limit: Any) -> bool:
    """``parse_bytes(value) <= parse_bytes(limit)``; a missing (None) value
    passes (True, as in the reference); an unparsable one is not within the
    limit (False)."""
    if value is None:
        return True
    try:
        return parse_bytes(str(value)) <= parse_bytes(limit)
    except (ValueError, TypeError):
        return False


def param_seconds_lte(value: Any, limit: Any) -> bool:
    """``parse_seconds(value) <= parse_seconds(limit)``; a missing (None) value
    passes (True, as in the reference); an unparsable one is not within the
    limit (False)."""
    if value is None:
        return True
    try:
        return parse_seconds(str(value)) <= parse_seconds(limit)
    except (ValueError, TypeError):
        return False


# --- tag predicates ---------------------------------------------------------------------

_CATEGORY_NAMES = {
    "data_sensitivity": frozenset(["pii", "financial", "health", "sensitive"]),
    "system_operation": frozenset(["model-switch", "external-call", "admin", "system"]),
    "security_risk": frozenset(["privilege-escalation", "injection", "exploit"]),
    "compliance": frozenset(["gdpr", "hipaa", "sox", "compliance"]),
}
_HUMAN_TAGS = frozenset(["pii", "financial", "privilege-escalation", "gdpr", "model-switch", "admin", "delete", "sensitive"])
_HIGH_RISK = (("pii", "external-call"), ("financial", "model-switch"), ("privilege-escalation", "admin"), ("gdpr", "delete"))


def _entries(tags: Any) -> Optional[List[Tuple[str, Any, Any]]]:
    """Deviation: every tag shape the enricher produces, as (name, category, confidence).

    Accepts a TaggedPlan (``.tags``), lists/tuples/sets of SafetyTag objects,
    names or ``{"name": ...}`` dicts, a ``{name: ...}`` dict, and comma
    strings (pieces stripped).  None -> None.
    """
    if tags is None:
        return None
    inner = getattr(tags, "tags", None)
    if isinstance(inner, list) and hasattr(tags, "tag_names"):
        tags = inner
    out: List[Tuple[str, Any, Any]] = []
    if isinstance(tags, str):
        return [(p.strip(), None, None) for p in tags.split(",")]
    if isinstance(tags, dict):
        for k, v in tags.items():
            conf = v.get("confidence", 1.0) if isinstance(v, dict) else None
            cat = v.get("category") if isinstance(v, dict) else None
            out.append((k, cat, conf))
        return out
    if isinstance(tags, (list, tuple, set, frozenset)):
        for el in tags:
            name = getattr(el, "name", None)
            if name is not None and not isinstance(el, (str, dict)):
                cat = getattr(el, "category", None)
                out.append((name, getattr(cat, "value", cat), getattr(el, "confidence", None)))
            elif isinstance(el, dict):
                if "name" in el:
                    cat = el.get("category")
                    out.append((el["name"], getattr(cat, "value", cat), el.get("confidence")))
            else:
                out.append((el, None, None))
        return out
    return []


def has_tag(tags: Any, name: Any) -> bool:
    """``name`` is among the tags (any supported shape)."""
    entries = _entries(tags)
    if not entries:
        return False
    return any(e[0] == name for e in entries)


def has_category(tags: Any, category: Any) -> bool:
    """Some tag belongs to ``category`` (``data_sensitivity``, ``system_operation``,
    ``security_risk`` or ``compliance``): by its name, or by a tag object's own category."""
    names = _CATEGORY_NAMES.get(category) if isinstance(category, str) else None
    if names is None:
        return False
    entries = _entries(tags)
    if not entries:
        return False
    for name, cat, _conf in entries:
        if cat == category:
            return True
        try:
            if name in names:
                return True
        except TypeError:  # unhashable name
            continue
    return False


def tag_confidence(tags: Any, name: Any, min_confidence: Any = 0.8) -> bool:
    """Tag ``name`` present with confidence >= ``min_confidence`` (deviation: tag
    objects' confidences count; names without a confidence count as 1.0)."""
    if tags is None:
        return False
    if isinstance(tags, dict):
        if name not in tags:
            return False
        v = tags[name]
        if isinstance(v, dict):
            return v.get("confidence", 1.0) >= min_confidence
        return True
    entries = _entries(tags) or []
    for n, _cat, conf in entries:
        if n == name:
            if conf is None or conf >= min_confidence:
                return True
    return False


def requires_human_for_tags(tags: Any, *names: Any) -> bool:
    """Some given name is a human-oversight tag and is present."""
    if tags is None:
        return False
    return any(n in _HUMAN_TAGS and has_tag(tags, n) for n in names if isinstance(n, str))


def high_risk_tag_combination(tags: Any) -> bool:
    """Both tags of a high-risk pair are present (pii+external-call, financial+model-switch, ...)."""
    if tags is None:
        return False
    entries = _entries(tags)
    if not entries:
        return False
    present = {e[0] for e in entries if isinstance(e[0], str)}
    return any(a in present and b in present for a, b in _HIGH_RISK)


def and_op(*children: Any) -> bool:
    """``all(children)``."""
    return all(children)


def or_op(*children: Any) -> bool:
    """``any(children)``."""
    return any(children)


def not_op(child: Any) -> bool:
    """``not child``."""
    return not child


PREDICATES: Dict[str, Callable[..., Any]] = {
    "contains": contains,
    "equals": equals,
    "greater_than": greater_than,
    "less_than": less_than,
    "matches": matches,
    "is_empty": is_empty,
    "is_present": is_present,
    "not_has_consent": not_has_consent,
    "domain_is": domain_is,
    "domain_etld1": domain_etld1,
    "param_bytes_lte": param_bytes_lte,
    "param_seconds_lte": param_seconds_lte,
    "has_tag": has_tag,
    "has_category": has_category,
    "tag_confidence": tag_confidence,
    "requires_human_for_tags": requires_human_for_tags,
    "high_risk_tag_combination": high_risk_tag_combination,
    "and": and_op,
    "or": or_op,
    "not": not_op,
}

_LOGICAL = ("and", "or", "not")


# --- parser ----------------------------------------------------------------------------
# Syntax tree: ("and"|"or", [children]) / ("not", [child]) /
# ("pred", name, [args]); an arg is ("lit", value) or ("path", in_context, parts).
#
# Linear time: the reference re-scanned the whole text of every nested
# expression (time ~ nesting depth x length: 9.8 s for a 202 KB rule nested
# 495 deep).  Here one pass over the rule (_Scan) pairs every parenthesis and
# quote outside string literals, so splitting an and/or/not jumps over nested
# groups instead of re-reading them: each character is looked at a bounded
# number of times.  The pieces, the errors and their order are the reference
# algorithm's (split each level, then parse the pieces left to right).

#: Deepest nesting of ``and``/``or``/``not`` a rule may have (a deeper rule is a
#: DSLError): bounds the evaluators' recursion on every tier.
MAX_RULE_DEPTH = 64

_CALL_RE = re.compile(r"^(\w+)\((.*)\)$")
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")
_STRUCT_RE = re.compile(r"""["'(),]""")
_QUOTE_RE = re.compile(r"""["']""")
_LEAD_WS_RE = re.compile(r"\s*")  # \s is str.isspace(), the set str.strip() removes


class _Scan:
    """One pass over the rule text: for each ``(`` outside string literals the
    index of its matching ``)`` (-1: none), for each opening quote the index of
    its closing quote (-1: none).  A scan that starts anywhere outside a string
    literal sees the same literals and the same pairs, so every level of the
    parser can use these tables."""

    __slots__ = ("text", "close", "qend")

    def __init__(self, text: str) -> None:
        self.text = text
        close: Dict[int, int] = {}
        qend: Dict[int, int] = {}
        stack: List[int] = []
        i, n = 0, len(text)
        search = _STRUCT_RE.search
        while True:
            m = search(text, i)
            if m is None:
                break
            j = m.start()
            ch = text[j]
            if ch == '"' or ch == "'":
                k = text.find(ch, j + 1)
                qend[j] = k
                if k < 0:
                    break
                i = k + 1
                continue
            if ch == "(":
                stack.append(j)
                close[j] = -1
            elif ch == ")" and stack:
                close[stack.pop()] = j
            i = j + 1
        self.close = close
        self.qend = qend

    def quote_open_at(self, start: int, end: int) -> bool:
        """Whether a literal opened in ``[start, end)`` is still open at ``end``
        (``start`` outside any literal)."""
        text, i = self.text, start
        while True:
            m = _QUOTE_RE.search(text, i, end)
            if m is None:
                return False
            k = self.qend[m.start()]
            if k < 0 or k >= end:
                return True
            i = k + 1

    def strip(self, a: int, b: int) -> Tuple[int, int]:
        """Offsets of ``text[a:b].strip()``."""
        text = self.text
        a = _LEAD_WS_RE.match(text, a, b).end()
        while b > a and text[b - 1].isspace():
            b -= 1
        return a, b

    def split(self, a: int, b: int, whole: str) -> List[Tuple[int, int]]:
        """``_split(text[a:b])`` as offset pairs of the stripped pieces."""
        text = self.text
        pieces: List[Tuple[int, int]] = []
        piece_start = a
        i = a
        search = _STRUCT_RE.search
        while True:
            m = search(text, i, b)
            if m is None:
                break
            j = m.start()
            ch = text[j]
            if ch == '"' or ch == "'":
                k = self.qend[j]
                if k < 0 or k >= b:
                    raise DSLError(f"Unterminated string literal: {whole}")
                i = k + 1
            elif ch == "(":
                k = self.close[j]
                if k < 0 or k >= b:  # never closes inside this piece of text
                    if self.quote_open_at(j, b):
                        raise DSLError(f"Unterminated string literal: {whole}")
                    raise DSLError(f"Unbalanced parentheses: {whole}")
                i = k + 1
            elif ch == ")":
                raise DSLError(f"Unbalanced parentheses: {whole}")
            else:  # a comma at depth 0
                pieces.append(self.strip(piece_start, j))
                piece_start = i = j + 1
        if piece_start < b:  # a last piece is dropped only when nothing at all follows the final comma
            pieces.append(self.strip(piece_start, b))
        return pieces


def _split(text: str, whole: str) -> List[str]:
    """Split at top-level commas (quotes and parentheses respected).

    Deviation: parentheses must balance and quotes must close (the reference
    never checked, so ``equals(a, "x") or equals(b, 1)`` compiled to a
    3-argument call that was always False).
    """
    return [text[a:b] for a, b in _Scan(text).split(0, len(text), whole)]


def _arg(text: str, whole: str) -> Tuple[Any, ...]:
    if len(text) >= 1 and text[0] in ("'", '"') and text.endswith(text[0]):
        return ("lit", text[1:-1])
    if _NUMBER_RE.match(text):
        return ("lit", float(text) if "." in text else int(text))
    if text == "true":
        return ("lit", True)
    if text == "false":
        return ("lit", False)
    if "(" in text or ")" in text:
        # deviation: predicates cannot be nested; the reference read this as a path
        raise DSLError(f"Nested calls are not supported: {text}")
    parts = text.split(".")
    if parts[0] == "context":
        return ("path", True, tuple(parts[1:]))
    return ("path", False, tuple(parts))


_SIGNATURES: Dict[str, inspect.Signature] = {}


def _check_call(name: str, args: List[Tuple[Any, ...]], whole: str) -> None:
    """Deviation: arity and literal argument types are checked at load time;
    literal numbers that the predicate could not convert without overflow
    (``greater_than(x, 1e309 written out)``, a ``param_bytes_lte`` limit of 400
    digits) are compile errors, on every tier."""
    sig = _SIGNATURES.get(name)
    if sig is None:
        sig = _SIGNATURES[name] = inspect.signature(PREDICATES[name])
    try:
        sig.bind(*args)
    except TypeError:
        raise DSLError(f"Wrong number of arguments for {name}: {len(args)} given in {whole}") from None
    if name == "contains" and args[1][0] == "lit" and not isinstance(args[1][1], str):
        raise DSLError(f"contains needs a string needle, got {args[1][1]!r}")
    if name == "matches" and args[1][0] == "lit":
        pat = args[1][1]
        if not isinstance(pat, str):
            raise DSLError(f"matches needs a string pattern, got {pat!r}")
        try:
            re.compile(pat)
        except re.error as exc:
            raise DSLError(f"Invalid regular expression {pat!r}: {exc}") from None
    if name in ("greater_than", "less_than"):
        for a in args:
            if a[0] == "lit" and isinstance(a[1], int):
                try:
                    float(a[1])
                except OverflowError:
                    raise DSLError(f"Number too large for {name}: {len(str(a[1]))} digits") from None
    if name in ("param_bytes_lte", "param_seconds_lte"):
        parse = parse_bytes if name == "param_bytes_lte" else parse_seconds
        for j, a in enumerate(args):
            if a[0] == "lit":
                try:  # the value is parsed as str(value), the limit as given
                    parse(str(a[1]) if j == 0 else a[1])
                except OverflowError:
                    raise DSLError(f"Value too large for {name}: {str(a[1])[:40]!r}...") from None
                except (ValueError, TypeError):
                    pass  # an unparsable literal is never within the limit (False at run time)


def _parse(sc: _Scan, a: int, b: int, whole: str, depth: int) -> Tuple[Any, ...]:
    text = sc.text
    a, b = sc.strip(a, b)
    for op in _LOGICAL:
        if text.startswith(op + "(", a, b):
            if text[b - 1] != ")" or b - a < len(op) + 2:
                raise DSLError(f"Invalid {op} expression: {text[a:b]}")
            if depth >= MAX_RULE_DEPTH:
                raise DSLError(f"Rule nested too deeply (more than {MAX_RULE_DEPTH} levels of and/or/not)")
            pieces = sc.split(a + len(op) + 1, b - 1, whole)
            # deviation: degenerate forms are errors (and() was always True,
            # or()/not() always False, not(a, b) ignored b)
            if op == "not" and len(pieces) != 1:
                raise DSLError(f"not takes exactly one expression, got {len(pieces)}: {text[a:b]}")
            if op != "not" and not pieces:
                raise DSLError(f"{op} needs at least one expression: {text[a:b]}")
            return (op, [_parse(sc, pa, pb, whole, depth + 1) for pa, pb in pieces])
    expr = text[a:b]  # a leaf: leaves do not overlap, so copying them is linear in total
    m = _CALL_RE.match(expr)
    if not m:
        raise DSLError(f"Invalid expression: {expr}")
    name = m.group(1)
    if name not in PREDICATES or name in _LOGICAL:
        raise DSLError(f"Unknown predicate: {name}")
    args = [_arg(x, whole) for x in _split(m.group(2), whole)]
    _check_call(name, args, whole)
    return ("pred", name, args)


def parse_rule(rule_str: Any) -> Tuple[Any, ...]:
    """Parse rule text into a syntax tree; every problem is a :class:`DSLError`
    ``"Failed to compile rule: <message>"`` (the reference's wording).
    Time is linear in the length of the rule; nesting deeper than
    :data:`MAX_RULE_DEPTH` is an error."""
    try:
        if not isinstance(rule_str, str):
            raise DSLError(f"rule must be a str, got {type(rule_str).__name__}")
        sc = _Scan(rule_str)
        a, b = sc.strip(0, len(rule_str))
        return _parse(sc, a, b, rule_str[a:b], 0)
    except DSLError as exc:
        raise DSLError(f"Failed to compile rule: {exc}") from None
    except Exception as exc:  # anything else the parser trips on is still a compile error
        raise DSLError(f"Failed to compile rule: {exc}") from None


def resolve_path(in_context: bool, parts: Tuple[str, ...], plan: Any, context: Any) -> Any:
    """Dotted lookup: ``context.*`` starts at the context, anything else at the plan;
    each step is a dict ``.get``; a non-dict on the way gives None."""
    cur = context if in_context else plan
    for p in parts:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _resolve_path_in_dict(path: str, data: Any) -> Any:
    """Dotted lookup in ``data`` (kept for parity with the reference's helper)."""
    return resolve_path(False, tuple(path.split(".")), data, None)
