"""Safety tags on every tier: spec tables, enricher behaviour, deviations, cache, threads, metrics,
and hypothesis differential tests against the pure-Python oracle."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(autouse=True)
def _no_metrics(monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")


def _tags(tp):
    return [(t.name, t.category, t.confidence, t.source, t.metadata) for t in tp.tags]


def _enrich(m, plan, context=None, advanced=False, caching=False):
    return m.SafetyTagEnricher(enable_caching=caching, advanced=advanced).enrich_plan(plan, context)


# --- data types --------------------------------------------------------------------------

def test_safety_tag_validation(tags_impl):
    T = tags_impl.SafetyTag
    t = T("x", tags_impl.SafetyTagCategory.COMPLIANCE, "d")
    assert (t.confidence, t.source, t.metadata) == (1.0, "detection", {})
    assert T("x", "any", "d", True).confidence is True
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=f"Confidence must be between 0.0 and 1.0, got {bad}"):
            T("x", "c", "d", bad)
    with pytest.raises(TypeError):
        T("x", "c", "d", "0.5")
    assert [c.value for c in tags_impl.SafetyTagCategory] == [
        "data_sensitivity", "system_operation", "user_interaction", "security_risk", "compliance", "resource_impact"]


def test_tagged_plan(tags_impl):
    C = tags_impl.SafetyTagCategory
    a = tags_impl.SafetyTag("pii", C.DATA_SENSITIVITY, "d")
    b = tags_impl.SafetyTag("financial", C.DATA_SENSITIVITY, "d")
    c = tags_impl.SafetyTag("gdpr", C.COMPLIANCE, "d")
    tp = tags_impl.TaggedPlan({"a": 1}, [a, b, c], 1.0)
    assert tp.tag_names == {"pii", "financial", "gdpr"} and tp.enrichment_context == {}
    assert list(tp.tags_by_category) == [C.DATA_SENSITIVITY, C.COMPLIANCE]
    assert tp.get_tags_by_category(C.DATA_SENSITIVITY) == [a, b] and tp.get_tags_by_category(C.SECURITY_RISK) == []
    assert tp.has_tag("pii") and not tp.has_tag("x") and tp.has_category(C.COMPLIANCE)
    with pytest.raises(AttributeError):
        tp.tag_names = set()
    for name in ("add_tag", "add", "tag"):
        assert not hasattr(tp, name)
    with pytest.raises(NotImplementedError):
        tags_impl.SafetyTagDetector("x", "c", "d").detect({}, {})


# --- detectors (spec tables) ------------------------------------------------------------------

def _one(m, plan, name, context=None, advanced=False):
    tp = _enrich(m, plan, context, advanced)
    found = [t for t in tp.tags if t.name == name]
    return found[0] if found else None


def test_pii(tags_impl):
    t = _one(tags_impl, {"action": "x", "params": {"Email": "a@b.com", "note": "a@b.com"}}, "pii")
    assert t.confidence == 0.95 and t.metadata == {"detected_types": ["field:Email", "email", "email"]}
    assert t.category is tags_impl.SafetyTagCategory.DATA_SENSITIVITY
    assert t.description == "Personally identifiable information detected"
    t = _one(tags_impl, {"params": {"n": "1234567890"}}, "pii")
    assert t.confidence == 0.8 and t.metadata["detected_types"] == ["phone"]
    assert _one(tags_impl, {"params": {"n": "123456789"}}, "pii").metadata["detected_types"] == ["ssn"]
    assert _one(tags_impl, {"params": {"c": "4111 1111 1111 1111"}}, "pii").confidence == 0.95
    assert _one(tags_impl, {"params": {"e": "a@b.c|m"}}, "pii") is not None
    assert _one(tags_impl, {"params": {"e": "a@b|c"}}, "pii") is None
    t = _one(tags_impl, {"action": "update_profile"}, "pii")
    assert t.confidence == 0.6 and t.metadata["detected_types"] == ["action"]
    assert _one(tags_impl, {"params": {"nested": {"email": "a@b.com"}}}, "pii") is None  # top-level only


def test_financial(tags_impl):
    t = _one(tags_impl, {"action": "process_payment", "params": {"amount": 5, "Balance": 1, "fee": True}}, "financial")
    assert t.confidence == 0.9 and t.metadata["detected_types"] == ["action", "field:amount", "field:Balance", "currency", "currency"]
    assert _one(tags_impl, {"params": {"price": 3.5}}, "financial").confidence == 0.7
    assert _one(tags_impl, {"params": {"price": "3.5"}}, "financial") is None
    assert _one(tags_impl, {"params": {"acct": "1234567890123"}}, "financial") is None  # dead patterns, flag off


def test_model_switch(tags_impl):
    t = _one(tags_impl, {"action": "switch_model", "params": {"Model": "x"}}, "model-switch")
    assert t.confidence == 0.95 and t.metadata["detected_types"] == ["action", "param:Model"]
    t = _one(tags_impl, {"action": "run", "description": "use GPT-4o for reranking"}, "model-switch")
    assert t.confidence == 0.85
    # deviation: keyword entries in sorted order (the reference followed set order)
    assert t.metadata["detected_types"] == ["keyword:gpt-4", "keyword:gpt-4o", "keyword:rerank", "keyword:reranking"]


def test_external_call(tags_impl):
    t = _one(tags_impl, {"action": "call_api", "params": {"URL": "https://x.io/a", "w": "see http://a.b and https://c.d"}},
             "external-call")
    assert t.confidence == 0.95
    assert t.metadata["detected_types"] == ["action", "url_param:URL", "url_in_text:3_found"]
    assert _one(tags_impl, {"params": {"url": "HTTP://X"}}, "external-call").metadata["detected_types"] == ["url_in_text:1_found"]
    assert _one(tags_impl, {"action": "restart"}, "external-call").metadata["detected_types"] == ["action"]  # 'rest'


def test_privilege_escalation(tags_impl):
    assert _one(tags_impl, {"action": "admin_override"}, "privilege-escalation").confidence == 0.9
    assert _one(tags_impl, {"action": "x_role_change"}, "privilege-escalation") is None
    t = _one(tags_impl, {"action": "role_change", "params": {1: "run as ROOT"}}, "privilege-escalation")
    assert t.confidence == 0.95 and t.metadata["detected_types"] == ["dangerous_action", "param:1"]
    assert _one(tags_impl, {"action": "x", "description": "sudo"}, "privilege-escalation") is None


def test_gdpr(tags_impl):
    t = _one(tags_impl, {"action": "data_export_gdpr", "params": {"why": "Consent withdrawn"}}, "gdpr")
    assert t.confidence == 0.9 and t.metadata["detected_types"] == ["gdpr_action", "gdpr_term", "param:why"]
    # as in the SDK (flag off): an EU/EEA user labels the tag with eu_user, never makes it fire
    for region in ("EU", "EEA"):
        t = _one(tags_impl, {"action": "personal_data"}, "gdpr", {"user_region": region})
        assert t.confidence == 0.9 and t.metadata["detected_types"] == ["gdpr_action", "gdpr_term", "eu_user"]
        assert _one(tags_impl, {"action": "x", "params": {"email": "a@b.com"}}, "gdpr", {"user_region": region}) is None
    t = _one(tags_impl, {"action": "personal_data"}, "gdpr", {"user_region": "US"})
    assert t.metadata["detected_types"] == ["gdpr_action", "gdpr_term"]
    t = tags_impl.GDPRDetector().detect({"action": "data_export_gdpr", "params": {"n": "consent"}},
                                        {"user_region": "EU"})
    assert t.metadata["detected_types"] == ["gdpr_action", "gdpr_term", "param:n", "eu_user"]
    # the advanced flag keeps its own EU rule (no bare relabel)
    t = _one(tags_impl, {"action": "personal_data"}, "gdpr", {"user_region": "EU"}, advanced=True)
    assert t.metadata["detected_types"] == ["gdpr_action", "gdpr_term"]


def test_detect_with_none_context_raises(tags_impl):
    with pytest.raises(AttributeError):
        tags_impl.GDPRDetector().detect({"action": "x"}, None)


# --- normalisation -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text,want",
    [
        ("john (at) example (dot) com", "john @ example . com"),
        ("john(at)example(dot)com", "john@example.com"),
        ("john<at>example<dot>com", "john@example.com"),
        ("john at example dot com", "john@example.com"),
        ("meet at noon dot", "meet@noon dot"),
        ("a dot at b", "a dot@b"),
        ("at home", "at home"),
        ("x\tat\ty", "x@y"),
        ("x\nat\ny", "x@y"),
        ("x \u0430t y", "x at y"),
        ("\uff46\uff55\uff4c\uff4c", "full"),
        ("\ufb01", "fi"),
        ("a\u00a0b", "a b"),
        ("a\u200bb\u180ec", "abc"),
        ("\u0440\u0430y\u0440\u0430l", "paypal"),
        (5, "5"),
        (None, "None"),
    ],
)
def test_preprocess_text(tags_impl, text, want):
    assert tags_impl.SafetyTagEnricher(enable_caching=False).preprocess_text(text) == want


def test_preprocess_plan(tags_impl):
    e = tags_impl.SafetyTagEnricher(enable_caching=False)
    inner = [1, 2]
    plan = {"B": "x (at) y", "a": {"k": "\uff41"}, "l": ["\uff41", {"z": "\uff41"}, inner, 3, None], 7: 7.5}
    out = e.preprocess_plan(plan)
    assert list(out) == ["B", "a", "l", 7]
    assert out == {"B": "x @ y", "a": {"k": "a"}, "l": ["a", {"z": "a"}, [1, 2], 3, None], 7: 7.5}
    assert out["l"][2] is inner and out is not plan and plan["B"] == "x (at) y"


def test_advanced_preprocess_text(tags_impl):
    p = tags_impl.preprocess_text
    assert p("john (at) example (dot) com") == "john@example.com"
    assert p("data") == "data" and p("Doting on data") == "Doting on data"  # deviation
    assert p("") == "" and p(None) is None and p(5) == 5
    assert p("j\u043ehn [at] ex\u0430mple [dot] org") == "john@example.org"


# --- enricher ---------------------------------------------------------------------------------

def test_enrichment_context_and_order(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    plan = {"action": "process_payment", "params": {"email": "a@b.com"}}
    r = e.enrich_plan(plan)
    assert r.original_plan is plan and r.enrichment_time_ms > 0
    assert r.enrichment_context == {"cache_hit": False, "detector_count": 6, "tags_detected": 2}
    assert [t.name for t in r.tags] == ["pii", "financial"]
    r2 = e.enrich_plan({"action": "process_payment", "params": {"email": "a@b.com"}})
    assert r2.enrichment_context == {"cache_hit": True} and _tags(r2) == _tags(r)
    st_ = e.get_stats()
    assert st_ == {"detector_count": 6, "cache_enabled": True, "cache_size": 1, "cache_hits": 1, "cache_misses": 1,
                   "cache_hit_rate": 0.5, "available_tags": ["pii", "financial", "model-switch", "external-call",
                                                             "privilege-escalation", "gdpr"]}
    assert tags_impl.SafetyTagEnricher(enable_caching=False).get_stats()["cache_size"] == 0
    assert tags_impl.create_safety_tag_enricher().enable_caching is True


def test_cache_never_aliases(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    plan = {"params": {"email": "a@b.com"}}
    r1 = e.enrich_plan(plan)
    r1.tags.append("junk")
    r1.tags[0].confidence = 0.1
    r1.tags[0].metadata["detected_types"].append("junk")
    r2 = e.enrich_plan(plan)
    r3 = e.enrich_plan(plan)
    assert r2.tags is not r3.tags and r2.tags[0] is not r3.tags[0]
    assert len(r2.tags) == 1 and r2.tags[0].confidence == 0.95
    assert r2.tags[0].metadata == {"detected_types": ["field:email", "email"]}


def test_cache_shares_normalised_plans_and_context(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    e.enrich_plan({"params": {"to": "a at b"}})
    assert e.enrich_plan({"params": {"to": "a@b"}}).enrichment_context["cache_hit"] is True
    assert e.enrich_plan({"params": {"to": "a@b"}}, {"lane": "x"}).enrichment_context["cache_hit"] is False
    e.enrich_plan({"action": "y"}, None)
    assert e.enrich_plan({"action": "y"}, {}).enrichment_context["cache_hit"] is True
    e.enrich_plan({"p": {"a": 1, "b": 2}})
    assert e.enrich_plan({"p": {"b": 2, "a": 1}}).enrichment_context["cache_hit"] is False  # nested order matters
    e.enrich_plan({"v": 1})
    assert e.enrich_plan({"v": 1.0}).enrichment_context["cache_hit"] is False  # reprs differ
    assert e.enrich_plan({"v": True}).enrichment_context["cache_hit"] is False
    assert e.enrich_plan({"v": "1"}).enrichment_context["cache_hit"] is False


def test_lru_bound_and_refresh(tags_impl):
    e = tags_impl.SafetyTagEnricher(cache_size=3)
    for i in range(3):
        e.enrich_plan({"i": i})
    e.enrich_plan({"i": 0})  # hit refreshes 0
    e.enrich_plan({"i": 3})  # evicts 1 (least recently used)
    assert e.get_stats()["cache_size"] == 3
    assert e.enrich_plan({"i": 0}).enrichment_context["cache_hit"] is True
    assert e.enrich_plan({"i": 1}).enrichment_context["cache_hit"] is False
    with pytest.raises(ValueError, match="cache_size"):
        tags_impl.SafetyTagEnricher(cache_size=0)


def test_default_lru_size(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    for i in range(1005):
        e.enrich_plan({"i": i})
    assert e.get_stats()["cache_size"] == 1000


def test_bad_input_raises_before_state_changes(tags_impl):
    for caching in (True, False):
        e = tags_impl.SafetyTagEnricher(enable_caching=caching)
        for plan in (None, ["action"], "plan"):
            with pytest.raises(TypeError, match="plan"):
                e.enrich_plan(plan)
        with pytest.raises(TypeError, match="context"):
            e.enrich_plan({"action": "x"}, ["not", "a", "dict"])
        assert (e.cache_hits, e.cache_misses) == (0, 0)


def test_broken_inputs_keep_other_tags(tags_impl):
    # deviation: the reference lost every tag here
    for caching in (True, False):
        r = _enrich(tags_impl, {"action": None, "params": {"email": "a@b.com"}}, caching=caching)
        assert [t.name for t in r.tags] == ["pii"]
        r = _enrich(tags_impl, {"action": "x", "params": {1: "a@b.com", "email": "c@d.com"}}, caching=caching)
        assert r.tags[0].metadata["detected_types"] == ["field:email", "email", "email"]
        r = _enrich(tags_impl, {"action": "x", 1: "y", "params": {"email": "a@b.com"}}, {"b": 1, 2: 3}, caching=caching)
        assert [t.name for t in r.tags] == ["pii"]
        r = _enrich(tags_impl, {"action": "call", "description": 5, "params": {"url": "https://a.b"}}, caching=caching)
        assert [t.name for t in r.tags] == ["external-call"]


def test_add_detector(tags_impl, caplog):
    e = tags_impl.SafetyTagEnricher()
    e.enrich_plan({"action": "x"})

    class Nameless:
        def detect(self, plan, context):
            return None

    with pytest.raises(TypeError, match="tag_name"):
        e.add_detector(Nameless())
    assert len(e.detectors) == 6 and e.get_stats()["cache_size"] == 1

    class Custom(tags_impl.SafetyTagDetector):
        def __init__(self):
            super().__init__("custom", tags_impl.SafetyTagCategory.RESOURCE_IMPACT, "custom")

        def detect(self, plan, context):
            if plan.get("action") == "x":
                return tags_impl.SafetyTag("custom", self.category, "c", 0.5)
            return None

    with caplog.at_level("INFO", logger="lukhas_fast.safety_tags"):
        e.add_detector(Custom())
    assert "Added custom detector: custom" in caplog.text
    assert e.get_stats()["cache_size"] == 0 and e.get_stats()["available_tags"][-1] == "custom"
    assert [t.name for t in e.enrich_plan({"action": "x"}).tags] == ["custom"]


def test_raising_detector_is_isolated(tags_impl, caplog):
    e = tags_impl.SafetyTagEnricher(enable_caching=False)

    class Boom(tags_impl.SafetyTagDetector):
        def __init__(self):
            super().__init__("boom", "c", "d")

        def detect(self, plan, context):
            raise RuntimeError("kaput")

    e.add_detector(Boom())
    r = e.enrich_plan({"params": {"email": "a@b.com"}})
    assert [t.name for t in r.tags] == ["pii"] and "kaput" in caplog.text


def test_reentrant_detector_does_not_deadlock(tags_impl):
    e = tags_impl.SafetyTagEnricher()

    class Reentrant(tags_impl.SafetyTagDetector):
        def __init__(self):
            super().__init__("inner", "c", "d")

        def detect(self, plan, context):
            if plan.get("depth", 0) < 1:
                inner = e.enrich_plan({"depth": 1, "params": {"email": "a@b.com"}})
                return tags_impl.SafetyTag("inner", "c", "d", 1.0, metadata={"n": len(inner.tags)})
            return None

    e.add_detector(Reentrant())
    done = []
    t = threading.Thread(target=lambda: done.append(e.enrich_plan({"action": "x"})))
    t.start()
    t.join(10)
    assert done and done[0].tags[-1].metadata == {"n": 1}


def test_threads_share_one_enricher(tags_impl):
    from lukhas_fast._bench.tags import corpus

    plans = corpus(300)
    seq = tags_impl.SafetyTagEnricher()
    want = [_tags(seq.enrich_plan(p)) for p in plans]
    shared = tags_impl.SafetyTagEnricher()
    results = {}
    errors = []

    def work(k):
        try:
            for i in range(k, len(plans), 4):
                results[i] = _tags(shared.enrich_plan(plans[i]))
            for i in range(len(plans)):
                shared.enrich_plan(plans[i])
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [results[i] for i in range(len(plans))] == want
    s = shared.get_stats()
    assert s["cache_hits"] + s["cache_misses"] == len(plans) * 5


def test_metrics(tags_impl, monkeypatch):
    prom = pytest.importorskip("prometheus_client")
    get = prom.REGISTRY.get_sample_value
    lbl = {"category": "data_sensitivity", "tag": "pii"}
    before = get("safety_tags_detection_total", lbl) or 0.0
    e = tags_impl.SafetyTagEnricher(metrics=True)
    e.enrich_plan({"params": {"email": "a@b.com"}}, {"lane": "prod"})
    e.enrich_plan({"params": {"email": "a@b.com"}}, {"lane": "prod"})  # a hit records nothing
    assert get("safety_tags_detection_total", lbl) == before + 1
    assert get("safety_tags_confidence_bucket_count", {"tag": "pii", "lane": "prod"}) >= 1
    assert get("safety_tags_enrichment_total", {"tag_count_range": "1-3"}) >= 1
    off = tags_impl.SafetyTagEnricher(metrics=False)
    off.enrich_plan({"params": {"email": "x@y.com"}})
    assert get("safety_tags_detection_total", lbl) == before + 1
    assert tags_impl.METRICS_AVAILABLE is True
    import importlib.util

    # a second execution of the module (run on a fresh module object, so the classes
    # other tests use stay the imported ones) registers nothing at import; its lazy
    # handles reuse the collectors already registered under the SDK's names
    spec = importlib.util.find_spec("lukhas_fast._tags_py")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert not fresh.SAFETY_TAGS_DETECTION.created
    fresh.SAFETY_TAGS_DETECTION.labels(**lbl).inc(0)
    assert fresh.SAFETY_TAGS_DETECTION._get() is tags_impl.SAFETY_TAGS_DETECTION._get()
    assert get("safety_tags_detection_total", lbl) == before + 1


# --- the advanced block (deviation: it works) ----------------------------------------------------

ADVANCED_CORPUS = [
    ({"action": "send", "description": "write to john (at) example (dot) com"}, "pii"),
    ({"action": "send", "params": {"content": "mail j\u043ehn [at] example [dot] org now"}}, "pii"),
    ({"action": "call", "params": {"content": "llama al +34 612 34 56 78"}}, "pii"),
    ({"action": "call", "params": {"script": "ligue (11) 91234 5678"}}, "pii"),
    ({"action": "run", "description": "use gpt4v via tool-use"}, "model-switch"),
    ({"action": "run", "params": {"config": {"u": "https://myapi.example.com/v1"}}}, "external-call"),
    ({"action": "run", "params": {"config": {"cmd": "curl https://bit.ly/abc"}}}, "external-call"),
]


@pytest.mark.parametrize("plan,name", ADVANCED_CORPUS)
def test_advanced_block_adds_tags(tags_impl, plan, name):
    off = _enrich(tags_impl, plan, advanced=False)
    on = _enrich(tags_impl, plan, advanced=True)
    assert name not in off.tag_names and name in on.tag_names
    tag = [t for t in on.tags if t.name == name][0]
    assert tag.source == "advanced" and tag.confidence > 0.5
    assert "error" not in on.enrichment_context


def test_advanced_never_errors(tags_impl):
    plans = [{"action": "process_payment", "params": {"amount": 5, "content": 7}},
             {"action": "x", "params": ["a", "b"]}, {"action": "x", "params": "str"}, {"description": 5}]
    for plan in plans:
        for caching in (True, False):
            r = _enrich(tags_impl, plan, advanced=True, caching=caching)
            assert "error" not in r.enrichment_context
    assert [t.name for t in _enrich(tags_impl, plans[0], advanced=True).tags] == ["financial"]


def test_advanced_financial_and_eu(tags_impl):
    r = _enrich(tags_impl, {"action": "x", "params": {"acct": "1234567890123"}}, advanced=True)
    assert r.tags[0].name == "financial" and r.tags[0].metadata["detected_types"] == ["account_number"]
    r = _enrich(tags_impl, {"action": "x", "params": {"email": "a@b.com"}}, {"user_region": "EU"}, advanced=True)
    assert "gdpr" in r.tag_names and r.tags[-1].metadata["detected_types"] == ["eu_user"]
    r = _enrich(tags_impl, {"action": "x", "params": {"email": "a@b.com"}}, {"user_region": "US"}, advanced=True)
    assert "gdpr" not in r.tag_names


def test_advanced_flag_from_env(tmp_path):
    import os
    import subprocess
    import sys

    code = "from lukhas_fast.safety_tags import SafetyTagEnricher as E, ADVANCED_TAGS_ENABLED as A; print(A, E().advanced)"
    for var, value, want in [("LUKHAS_ADVANCED_TAGS", "1", "True True"), ("LUKHAS_EXPERIMENTAL", "1", "True True"),
                             ("LUKHAS_ADVANCED_TAGS", "true", "False False")]:
        env = {k: v for k, v in os.environ.items() if k not in ("LUKHAS_ADVANCED_TAGS", "LUKHAS_EXPERIMENTAL")}
        env[var] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == want, out.stderr


# --- differential -----------------------------------------------------------------------------------

words = st.sampled_from(["pay", "payment", "admin", "root", "gdpr", "consent", "api", "rest", "profile", "model",
                         "gpt-4o", "claude", "tool call", "sudo", "data", "dot", "at", "(at)", "[dot]", "\u0430",
                         "\uff21", "\u200b", "john", "example", "com", "555-123-4567", "123-45-6789",
                         "4111 1111 1111 1111", "a@b.com", "https://api.x.io/v1", "http://bit.ly/z", "+34 612 345 678",
                         "(11) 91234-5678", "1234567890123", "123456789", "personal_data", "EU", " ", "\n"])
text = st.lists(words, max_size=6).map(" ".join)
keys = st.sampled_from(["email", "Email", "amount", "price", "url", "endpoint", "model", "engine", "note", "content",
                        "script", "config", "acct", "balance", "user_id", "webhook", "fee", 1, "x"])
values = st.one_of(text, st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                   st.none(), st.lists(text, max_size=2), st.dictionaries(st.sampled_from(["a", "u"]), text, max_size=2))
plans = st.fixed_dictionaries(
    {},
    optional={
        "action": st.one_of(text, st.none(), st.integers()),
        "description": st.one_of(text, st.none()),
        "params": st.one_of(st.dictionaries(keys, values, max_size=6), st.lists(text, max_size=2), text, st.none()),
        "safety": text,
    },
)
contexts = st.one_of(st.none(), st.fixed_dictionaries({}, optional={"user_region": st.sampled_from(["EU", "EEA", "US"]),
                                                                    "lane": st.sampled_from(["prod", "x"])}))


@settings(max_examples=300)
@given(plan=plans, ctx=contexts, advanced=st.booleans())
def test_tags_match_oracle(tags_impl, oracle, plan, ctx, advanced):
    want = _enrich(oracle("tags"), plan, ctx, advanced)
    got = _enrich(tags_impl, plan, ctx, advanced)
    assert _tags(got) == _tags(want)
    assert got.enrichment_context == want.enrichment_context


@settings(max_examples=300)
@given(s=st.one_of(text, st.text(max_size=30)))
def test_normalisation_matches_oracle(tags_impl, oracle, s):
    a = tags_impl.SafetyTagEnricher(enable_caching=False)
    b = oracle("tags").SafetyTagEnricher(enable_caching=False)
    assert a.preprocess_text(s) == b.preprocess_text(s)


@settings(max_examples=200)
@given(p1=plans, p2=plans, c1=contexts, c2=contexts)
def test_cache_key_equivalence(tags_impl, oracle, p1, p2, c1, c2):
    """The fast key is equal exactly when the reference's key is (same hits and misses)."""
    fast = tags_impl.SafetyTagEnricher()
    ref = oracle("tags").SafetyTagEnricher()
    n1, n2 = ref.preprocess_plan(p1), ref.preprocess_plan(p2)
    same_ref = ref._generate_cache_key(n1, c1 or {}) == ref._generate_cache_key(n2, c2 or {})
    same_fast = fast._generate_cache_key(n1, c1 or {}) == fast._generate_cache_key(n2, c2 or {})
    assert same_ref == same_fast
    assert fast._generate_cache_key(n1, c1 or {}) == fast._generate_cache_key(dict(n1), dict(c1 or {}))


@settings(max_examples=500)
@given(s=st.text(alphabet="ab@. \t.-_%+Z9\u00e9|", max_size=30))
def test_email_screen_matches_regex(tags_impl, oracle, s):
    plan = {"params": {"x": s}}
    want = _enrich(oracle("tags"), plan)
    got = _enrich(tags_impl, plan)
    assert _tags(got) == _tags(want)


@settings(max_examples=200)
@given(p=plans, c=contexts)
def test_direct_key_equals_key_of_normalised_plan(tags_impl, p, c):
    e = tags_impl.SafetyTagEnricher()
    key, deferred = e._key_and_plan(p, c or {})
    assert key == e._generate_cache_key(e.preprocess_plan(p), c or {})
