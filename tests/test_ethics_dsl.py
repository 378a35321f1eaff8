"""Ethics DSL: predicates, helpers and the rule language (spec tables + deviations), every tier."""

from __future__ import annotations

import pytest

from lukhas_fast import _ethics_dsl as d
from lukhas_fast._ethics_dsl import DSLError, RuleEvaluationError


class Tag:
    def __init__(self, name, category=None, confidence=1.0):
        self.name, self.category, self.confidence = name, category, confidence


class Cat:
    def __init__(self, value):
        self.value = value


# --- basic predicates (reference results) ---------------------------------------------

def test_contains():
    assert d.contains("Hello World", "WORLD") is True
    assert d.contains(None, "x") is False
    assert d.contains({"a": "hack"}, "HACK") is True  # str() form, keys included
    assert d.contains(["ab", "c"], "b', 'c") is True
    with pytest.raises(AttributeError):
        d.contains("abc", 5)


def test_equals_and_comparisons():
    assert d.equals(1, 1.0) and d.equals(True, 1) and d.equals(None, None)
    assert d.greater_than(" 5 ", 4) and d.greater_than("1e2", 99) and d.greater_than("inf", 1e308)
    assert not d.greater_than("nan", 0) and not d.less_than("nan", 0)
    assert not d.greater_than(None, 1) and not d.greater_than("abc", 1) and not d.less_than([1], 2)
    assert d.greater_than(True, 0.5) and d.less_than(False, 0.5)


def test_matches():
    assert d.matches("abc123", r"\d+") and not d.matches(None, ".")
    assert d.matches(123, "^12") and not d.matches("x", "(")
    with pytest.raises(TypeError):
        d.matches("x", 5)


def test_emptiness_and_consent():
    for v in (None, "", [], {}, (), set()):
        assert d.is_empty(v) and not d.is_present(v)
    for v in (0, False, " ", frozenset(), 0.0):
        assert not d.is_empty(v) and d.is_present(v)
    assert d.not_has_consent(None) and d.not_has_consent(False) and not d.not_has_consent(True)
    for s in ("false", "No", "DENY", "reject", ""):
        assert d.not_has_consent(s)
    assert not d.not_has_consent(" no") and not d.not_has_consent("yes")
    assert not d.not_has_consent(0) and not d.not_has_consent(1) and not d.not_has_consent([])


# --- domains --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "url,host",
    [
        ("HTTPS://API.OpenAI.com:443/v1", "api.openai.com"),
        ("openai.com.", "openai.com"),
        ("..example.com..", "example.com"),
        ("http://user:pw@Example.com/x", "example.com"),
        ("mailto:a@b.com", "b.com"),
        ("localhost:8080", "localhost"),
        ("http://a.com:99999", "a.com"),
        ("http://[::1]:80/", "::1"),
        ("https://exa mple.com", "exa mple.com"),
        ("ws://x.org", ""),
        ("file:///etc/passwd", ""),
        ("//example.com", ""),
        ("a.com/?r=http://b.com", ""),
        ("https://", ""),
        ("http://[::1", ""),
        ("", ""),
        (None, ""),
        (5, ""),
        ("https://münchen.de", "xn--mnchen-3ya.de"),
        ("https://☃.com", "☃.com"),
        ("https://ＡＢＣ.com", "ａｂｃ.com"),
    ],
)
def test_canonical_domain(url, host):
    assert d.canonical_domain(url) == host


def test_domain_is():
    assert d.domain_is("https://API.openai.com/x", "api.openai.com")
    assert not d.domain_is(None, "a.com") and not d.domain_is("a.com", None)
    assert not d.domain_is("a.com", 5)
    assert d.domain_is(5, "5")


@pytest.mark.parametrize(
    "src,target,want",
    [
        ("https://api.openai.com/v1", "openai.com", True),
        ("https://openai.com", "openai.com", True),
        ("https://a.openai.com", "https://openai.com/path", True),
        ("https://evilopenai.com", "openai.com", False),
        ("https://evil-openai.com", "openai.com", False),
        ("https://openai.com.evil.com", "openai.com", False),
        ("https://bbc.co.uk", "co.uk", False),  # deviation: a public suffix matches nothing
        ("https://x.bbc.co.uk", "bbc.co.uk", True),
        ("https://münchen.de/x", "xn--mnchen-3ya.de", True),
        ("http://127.0.0.1/", "127.0.0.1", False),
        (None, "openai.com", False),
        ("https://openai.com", None, False),
        ("ws://openai.com", "openai.com", False),
    ],
)
def test_domain_etld1(src, target, want):
    assert d.domain_etld1(src, target) is want


# --- units ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value,want",
    [(1024, 1024), (1.9, 1), (True, 1), ("1KB", 1000), ("1 kib", 1024), ("1.5MB", 1_500_000),
     ("2GiB", 2 * 1024**3), ("1T", 1024**4), ("1TB", 1000**4), ("0.9", 0), ("512", 512), ("1e3", 1000), ("10B", 10)],
)
def test_parse_bytes(value, want):
    assert d.parse_bytes(value) == want


@pytest.mark.parametrize(
    "value,msg",
    [("1I", "Unknown byte unit: I"), ("1KI", "Unknown byte unit: KI"), ("abc", "Invalid byte value: ABC"),
     ("nan", "Invalid byte value: NAN"), ("inf", "Invalid byte value: INF"), ("-5", "negative")],
)
def test_parse_bytes_errors(value, msg):
    with pytest.raises(ValueError, match=msg):
        d.parse_bytes(value)
    with pytest.raises(TypeError):
        d.parse_bytes(None)


@pytest.mark.parametrize(
    "value,want",
    [(5, 5.0), ("300s", 300.0), ("5 min", 300.0), ("250ms", 0.25), ("2h", 7200.0), ("1 day", 86400.0),
     ("5us", 5e-6), ("5μs", 5e-6), ("5µs", 5e-6), ("1.5", 1.5), ("3 SECONDS", 3.0)],
)
def test_parse_seconds(value, want):
    assert d.parse_seconds(value) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("value,msg", [("-5", "Invalid time value"), ("1e3", "Invalid time value"),
                                       ("5 fortnights", "Unknown time unit: fortnights"), ("inf", "Invalid time value")])
def test_parse_seconds_errors(value, msg):
    with pytest.raises(ValueError, match=msg):
        d.parse_seconds(value)


@pytest.mark.parametrize(
    "fn,value,limit,want",
    [
        (d.param_bytes_lte, 1024, "1KB", False),
        (d.param_bytes_lte, 1024, "1K", True),
        (d.param_bytes_lte, True, "1KB", False),
        (d.param_bytes_lte, 1.5, "2", True),
        (d.param_bytes_lte, 5, 10, True),
        (d.param_bytes_lte, 5, None, False),
        (d.param_bytes_lte, None, "1KB", True),  # a missing value passes, as in the SDK
        (d.param_bytes_lte, None, "junk", True),
        (d.param_bytes_lte, "junk", "1KB", False),  # an unparsable value fails closed
        (d.param_bytes_lte, -5, "1KB", False),  # deviation: negative is invalid
        (d.param_bytes_lte, "inf", "1KB", False),  # deviation: was OverflowError
        (d.param_seconds_lte, -5, "1s", False),
        (d.param_seconds_lte, 1e-05, "1s", False),
        (d.param_seconds_lte, "5m", "300s", True),
        (d.param_seconds_lte, None, "1s", True),  # a missing value passes, as in the SDK
        (d.param_seconds_lte, "soon", "1s", False),  # an unparsable value fails closed
        (d.param_seconds_lte, "5μs", "1s", True),  # deviation: μs parses
    ],
)
def test_param_limits(fn, value, limit, want):
    assert fn(value, limit) is want


# --- tag predicates ------------------------------------------------------------------------

def test_has_tag_reference_shapes():
    assert d.has_tag(["pii", "gdpr"], "pii") and not d.has_tag(None, "pii")
    assert d.has_tag({"pii": {"confidence": 0.2}}, "pii")
    assert d.has_tag("pii,financial", "financial")
    assert d.has_tag([Tag("pii")], "pii") and not d.has_tag([Tag("pii")], "gdpr")


def test_tag_predicate_deviations():
    # sets (TaggedPlan.tag_names), comma strings with spaces, dict elements
    assert d.has_tag({"pii", "external-call"}, "pii")
    assert d.high_risk_tag_combination({"pii", "external-call"})
    assert d.has_tag("pii, financial", "financial")
    assert d.has_tag([{"name": "gdpr", "confidence": 0.7}], "gdpr")
    assert d.has_tag(("a", "b"), "b") and d.has_tag(frozenset(["x"]), "x")
    # categories from tag objects
    tags = [Tag("pii", Cat("data_sensitivity"), 0.95)]
    assert d.has_category(tags, "data_sensitivity") and not d.has_category(tags, "compliance")
    assert d.has_category([Tag("custom", "security_risk")], "security_risk")
    assert d.has_category(["gdpr"], "compliance") and d.has_category("x, sox", "compliance")
    assert not d.has_category(["pii"], "unknown_category")
    # confidences of tag objects count
    assert not d.tag_confidence([Tag("pii", confidence=0.3)], "pii", 0.99)
    assert d.tag_confidence([Tag("pii", confidence=0.995)], "pii", 0.99)
    assert d.tag_confidence(["pii"], "pii", 0.99)  # a bare name carries no confidence: 1.0
    assert d.tag_confidence({"pii": {"confidence": 0.9}}, "pii", 0.8)
    assert not d.tag_confidence({"pii": {"confidence": 0.5}}, "pii")
    assert d.tag_confidence({"pii": True}, "pii", 0.99)
    with pytest.raises(TypeError):
        d.tag_confidence({"pii": {"confidence": "high"}}, "pii")


def test_tagged_plan_shape():
    class TaggedPlan:
        def __init__(self, tags):
            self.tags = tags

        @property
        def tag_names(self):
            return {t.name for t in self.tags}

    tp = TaggedPlan([Tag("financial", Cat("data_sensitivity")), Tag("model-switch", Cat("system_operation"))])
    assert d.has_tag(tp, "financial") and d.high_risk_tag_combination(tp)
    assert d.requires_human_for_tags(tp, "financial") and not d.requires_human_for_tags(tp, "external-call")
    assert d.has_category(tp, "system_operation")


def test_requires_human_and_high_risk():
    assert not d.requires_human_for_tags(["pii"])
    assert not d.requires_human_for_tags(["external-call"], "external-call")
    assert d.requires_human_for_tags("gdpr,delete", "delete")
    assert not d.requires_human_for_tags(None, "pii")
    for a, b in [("pii", "external-call"), ("financial", "model-switch"), ("privilege-escalation", "admin"), ("gdpr", "delete")]:
        assert d.high_risk_tag_combination([a, b]) and not d.high_risk_tag_combination([a])
    assert not d.high_risk_tag_combination(None)


def test_hash_rule():
    assert d.hash_rule("abc") == "ba7816bf8f01cfea"
    with pytest.raises(AttributeError):
        d.hash_rule(5)


# --- the rule language ------------------------------------------------------------------------

def test_compile_and_paths(ethics_impl):
    c = ethics_impl.compile_rule
    plan = {"action": "read", "params": {"user": {"id": 7}}, "plan": {"action": "nested"}}
    ctx = {"user_id": 7, "deep": {"x": [1]}}
    assert c('equals(action, "read")')(plan)
    assert c("equals(params.user.id, context.user_id)")(plan, ctx)
    assert c('equals(plan.action, "nested")')(plan)
    assert c("is_empty(params.user.id.deeper)")(plan)
    assert c("is_present(context)")(plan, ctx) and not c("is_present(context)")(plan)
    assert c("is_empty(context.deep.x.0)")(plan, ctx)  # no list indexing
    assert c("is_empty(action)")(None)  # None plan: every plan path is None
    assert c("equals(count, 5)")({"count": 5}) and c("equals(ratio, 0.5)")({"ratio": 0.5})
    assert c("equals(flag, true)")({"flag": True}) and c("equals(flag, false)")({"flag": False})
    assert c("equals(x, True)")({"x": 1, "True": 1})  # True is a path
    assert c("equals(x, -3)")({"x": -3}) and c("equals(x, +5)")({"x": 1, "+5": 1})
    assert c("equals(, action)")({"": "v", "action": "v"})
    assert c("equals(s, 'it''s')")({"s": "it''s"})  # no escapes: the literal keeps both quotes
    assert c('equals(s, "a,b(c)")')({"s": "a,b(c)"})
    assert c("and(\n  equals(a, 1),\n  equals(b, 2)\n)")({"a": 1, "b": 2})
    assert c("and(equals(a, 1),)")({"a": 1})
    assert c.__doc__


@pytest.mark.parametrize(
    "rule,msg",
    [
        ("foo(action)", "Unknown predicate: foo"),
        ("AND(equals(a, 1))", "Unknown predicate: AND"),
        ("and (equals(a, 1))", "Invalid expression"),
        ("equals action", "Invalid expression: equals action"),
        ("and(equals(a, 1)) x", "Invalid and expression"),
        ("and(equals(a, 1)", "Unbalanced parentheses"),
        ("and(equals(a, 1), )", "Invalid expression: "),
        ("equals(a,\n 1)", "Invalid expression"),
        ("and()", "and needs at least one expression"),  # deviation (was always True)
        ("or()", "or needs at least one expression"),  # deviation (was always False)
        ("not()", "not takes exactly one expression"),  # deviation
        ("not(equals(a, 1), equals(b, 2))", "not takes exactly one expression"),  # deviation
        ('equals(action, "x") or equals(x, 1)', "Unbalanced parentheses"),  # deviation
        ('equals(action, "x"))', "Unbalanced parentheses"),  # deviation
        ('equals(action, "x)', "Unterminated string"),
        ("equals(action)", "Wrong number of arguments"),  # deviation: checked at load
        ("is_empty()", "Wrong number of arguments"),
        ("contains(action, 5)", "contains needs a string needle"),
        ("matches(action, 5)", "matches needs a string pattern"),
        ('matches(action, "(")', "Invalid regular expression"),
        ("equals(lower(action), 1)", "Nested calls are not supported"),
        (None, "rule must be a str"),
        (5, "rule must be a str"),
    ],
)
def test_compile_errors(ethics_impl, rule, msg):
    with pytest.raises(DSLError, match=r"^Failed to compile rule: .*" + __import__("re").escape(msg)):
        ethics_impl.compile_rule(rule)


def test_short_circuit_and_fail_closed(ethics_impl):
    c = ethics_impl.compile_rule
    plan = {"action": "abc", "n": 5}
    # a child skipped by short-circuiting has no effect
    assert c('or(equals(action, "abc"), contains(n, "x"), contains(action, n))')(plan)
    assert not c('and(equals(action, "zzz"), contains(action, n))')(plan)
    # an evaluation error is an error, also under not (the reference returned False for the rule)
    rule = c("not(contains(action, n))")
    with pytest.raises(RuleEvaluationError, match="AttributeError"):
        rule(plan)
    with pytest.raises(RuleEvaluationError):
        c("greater_than(n, big)")({"n": 1, "big": 10**400})  # OverflowError is not swallowed
    assert c("greater_than(n, 4)")(plan) and not c("greater_than(missing, 4)")(plan)
    assert c("less_than(n, 5.5)")(plan) and not c('less_than(n, "abc")')(plan)


def test_predicates_table_is_complete(ethics_impl):
    assert set(ethics_impl.PREDICATES) == {
        "contains", "equals", "greater_than", "less_than", "matches", "is_empty", "is_present",
        "not_has_consent", "domain_is", "domain_etld1", "param_bytes_lte", "param_seconds_lte", "has_tag",
        "has_category", "tag_confidence", "requires_human_for_tags", "high_risk_tag_combination",
        "and", "or", "not",
    }
    assert d.and_op(1, 1) and not d.or_op(0, 0) and d.not_op(0)
    assert d._resolve_path_in_dict("a.b", {"a": {"b": 3}}) == 3
