"""Ethics engine and loader: ordering, hashes, fail-closed evaluation, audit, loader strictness; every tier."""

from __future__ import annotations

import logging
import textwrap

import pytest

import lukhas_fast
from lukhas_fast.ethics import DEFAULT_RULES_PATH, SAFETY_TAG_RULES_PATH


@pytest.fixture(autouse=True)
def _no_metrics(monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")


def _rule(m, name, dsl, action="block", prio="HIGH", tags=()):
    return m.EthicsRule(name, f"desc {name}", dsl, m.EthicsAction(action), m.Priority[prio], set(tags))


def test_enums_and_reason_codes(ethics_impl):
    m = ethics_impl
    assert [a.value for a in m.EthicsAction] == ["allow", "warn", "block"]
    assert [p.value for p in m.Priority] == [1, 2, 3, 4]
    R = m.ReasonCode
    names = ["block_harmful_actions", "block_data_exfiltration", "block_manipulation_attempts",
             "block_untrusted_domains", "block_privilege_escalation", "block_user_impersonation"]
    assert [R.from_rule_name(n).value for n in names] == [f"ETH#100{i}" for i in range(1, 7)]
    assert R.from_rule_name("block_excessive_resources") is R.EXCESSIVE_MEMORY
    warns = ["warn_external_api_calls", "warn_user_data_access", "warn_large_batch_operations",
             "warn_long_running_tasks", "warn_recursive_operations", "warn_missing_user_context", "warn_debug_actions"]
    assert [R.from_rule_name(n).value for n in warns] == [f"ETH#300{i}" for i in range(1, 8)]
    assert R.from_rule_name("test_rule") is R.HARMFUL_ACTION and R.from_rule_name("nope") is R.UNKNOWN
    assert R.EXCESSIVE_TIME.value == "ETH#2002" and R.EXCESSIVE_BATCH.value == "ETH#2003"


def test_rule_basics(ethics_impl):
    m = ethics_impl
    r = _rule(m, "block_harmful_actions", 'equals(action, "rm")')
    assert r.evaluate({"action": "rm"}) and not r.evaluate({"action": "ls"})
    assert r.get_reason_string() == "ETH#1001: block_harmful_actions"
    assert r._rule_hash == m.hash_rule('equals(action, "rm")') and r.tags == set()
    assert _rule(m, "x", "is_empty(a)").reason_code is m.ReasonCode.UNKNOWN


def test_bad_rule_fails_loud(ethics_impl, caplog):
    m = ethics_impl
    with caplog.at_level(logging.ERROR, logger="lukhas_fast.ethics"):
        with pytest.raises(m.DSLError, match="Failed to compile rule guard: .*Unknown predicate: foo"):
            _rule(m, "guard", "foo(action)")
    assert any("guard" in r.getMessage() for r in caplog.records)
    with pytest.raises(TypeError, match="rule_dsl"):
        _rule(m, "guard", None)
    with pytest.raises(TypeError, match="action"):
        m.EthicsRule("x", "d", "is_empty(a)", "block", m.Priority.LOW)


def test_ruleset_order_hash_and_getters(ethics_impl):
    m = ethics_impl
    rules = [_rule(m, "b", "is_empty(a)", "warn", "LOW", ["t1"]), _rule(m, "a", "is_empty(a)", "block", "LOW"),
             _rule(m, "z", "is_empty(a)", "allow", "CRITICAL", ["t1", "t2"])]
    original = list(rules)
    rs = m.RuleSet(rules)
    assert [r.name for r in rs.rules] == ["z", "a", "b"]
    assert rules == original and rs.rules is not rules  # deviation: caller's list untouched
    key = sorted((r.name, r.rule_dsl, r.action.value, r.priority.value) for r in rules)
    assert rs.ruleset_hash == m.hash_rule(str(key))
    assert [r.name for r in rs.get_rules_by_tag("t1")] == ["z", "b"]
    assert [r.name for r in rs.get_rules_by_action(m.EthicsAction.BLOCK)] == ["a"]
    assert [r.name for r in rs.get_rules_by_priority(m.Priority.LOW)] == ["a", "b"]
    with pytest.raises(TypeError, match="EthicsRule"):
        m.RuleSet(["not a rule"])


def test_bundled_files_and_hashes(ethics_impl):
    m = ethics_impl
    rs = m.load_ethics_rules()
    assert rs.ruleset_hash == "5f47dfe036e0ca18" and len(rs.rules) == 15
    assert m.load_ethics_rules(DEFAULT_RULES_PATH).ruleset_hash == "5f47dfe036e0ca18"
    tags = m.load_ethics_rules(SAFETY_TAG_RULES_PATH)
    assert tags.ruleset_hash == "cd5cb97a607947a9" and len(tags.rules) == 13
    assert rs.rules[0].priority is m.Priority.CRITICAL
    assert {r.name for r in rs.get_rules_by_tag("security")} >= {"block_harmful_actions", "block_privilege_escalation"}


def test_evaluate_combination_and_reasons(ethics_impl):
    m = ethics_impl
    rs = m.RuleSet([
        _rule(m, "allow_reads", 'contains(action, "read")', "allow", "CRITICAL"),
        _rule(m, "warn_user", 'contains(action, "user")', "warn", "MEDIUM"),
        _rule(m, "block_delete", 'contains(action, "delete")', "block", "HIGH"),
    ])
    r = rs.evaluate({"action": "read_user"})
    assert r.action is m.EthicsAction.WARN
    assert r.triggered_rule_ids == ["allow_reads", "warn_user"]
    assert r.reasons == ["allow: allow_reads", "warn: warn_user"]
    assert r.reason_codes == ["ETH#9999", "ETH#9999"]
    r = rs.evaluate({"action": "read"})
    assert r.action is m.EthicsAction.ALLOW and r.reasons == ["allow: allow_reads"]
    r = rs.evaluate({"action": "delete_user"})
    assert r.action is m.EthicsAction.BLOCK and r.triggered_rule_ids == ["block_delete", "warn_user"]
    assert [t.name for t in r.triggered_rules] == ["block_delete", "warn_user"]
    r = rs.evaluate({"action": "noop"}, {"user_id": 1})
    assert r.action is m.EthicsAction.ALLOW and r.reasons == ["allow: no_rules_triggered"]
    assert r.plan_hash == m.hash_rule(repr(sorted({"action": "noop"}.items())))
    assert r.facts_hash == m.hash_rule(str([("context", [("user_id", 1)]), ("plan", [("action", "noop")])]))
    assert r.evaluation_time_ms > 0


def test_evaluation_error_fires_as_block(ethics_impl, caplog):
    m = ethics_impl
    # the reference returned False for this rule for every plan: a BLOCK guard that never fired
    rs = m.RuleSet([_rule(m, "guard", "not(contains(action, limit))", "block", "CRITICAL"),
                    _rule(m, "w", "is_present(action)", "warn", "LOW")])
    with caplog.at_level(logging.ERROR, logger="lukhas_fast.ethics"):
        r = rs.evaluate({"action": "x", "limit": 5})
    assert r.action is m.EthicsAction.BLOCK
    assert r.reasons == ["block: guard (evaluation_error)", "warn: w"]
    assert r.triggered_rule_ids == ["guard", "w"]
    assert any("Error evaluating rule guard" in rec.getMessage() for rec in caplog.records)
    assert rs.evaluate({"action": "x", "limit": "x"}).action is m.EthicsAction.WARN


def test_outcomes_remembered_per_fired_set_match_rule_by_rule(ethics_impl, monkeypatch, caplog):
    """RuleSet.evaluate remembers what each set of fired rules makes of a result (bounded by
    OUTCOMES_MAX); on random plans firing random sets, with a rule that fails on some, every
    result equals the combination of evaluating each rule alone, and results share no list."""
    import random

    m = ethics_impl
    actions = ["allow", "warn", "block"]
    rules = [_rule(m, f"r{k}", f"equals(params.k{k}, 1)", actions[k % 3], ["LOW", "MEDIUM", "HIGH"][k % 3])
             for k in range(7)]
    rules.append(_rule(m, "failing", "contains(action, limit)", "allow", "MEDIUM"))
    rs = m.RuleSet(rules)
    monkeypatch.setattr(rs, "OUTCOMES_MAX", 8)
    rng = random.Random(16)
    rank = {"allow": 0, "warn": 1, "block": 2}
    previous = None
    for _ in range(400):
        plan = {"action": "act", "params": {f"k{k}": rng.choice([0, 1]) for k in range(7)},
                "limit": rng.choice(["ct", 5])}
        want_ids, want_reasons, level = [], [], 0
        for rule in rs.rules:
            try:
                fired, reason = rule.evaluate(plan), f"{rule.action.value}: {rule.name}"
                rule_level = rank[rule.action.value]
            except Exception:
                fired, reason, rule_level = True, f"block: {rule.name} (evaluation_error)", 2
            if fired:
                want_ids.append(rule.name)
                want_reasons.append(reason)
                level = max(level, rule_level)
        with caplog.at_level(logging.CRITICAL, logger="lukhas_fast.ethics"):
            got = rs.evaluate(plan)
        assert got.triggered_rule_ids == want_ids
        assert [r.name for r in got.triggered_rules] == want_ids
        assert got.reasons == (want_reasons or ["allow: no_rules_triggered"])
        assert got.action.value == actions[level]
        assert len(rs._outcomes) <= 8
        if previous is not None:
            assert previous.triggered_rules is not got.triggered_rules and previous.reasons is not got.reasons
            assert previous.triggered_rule_ids is not got.triggered_rule_ids
        got.triggered_rules.append("mutated")  # a caller editing its result changes no later result
        got.reasons.append("mutated")
        got.triggered_rule_ids.append("mutated")
        previous = got
    assert type(got) is m.EthicsResult and got == m.EthicsResult(**vars(got))


def test_rule_edited_in_place_is_read_at_next_evaluation(ethics_impl):
    """The reference reads a rule's name, action and compiled function per evaluation: a rule
    changed in place (not the ``rules`` list) is seen by every rule set holding it, at its
    next evaluation; rule sets hold their rules weakly and a pickled rule carries none."""
    import gc
    import pickle
    import weakref

    m = ethics_impl
    rule = _rule(m, "w", "equals(action, 'x')", "warn", "LOW")
    other = _rule(m, "b", "equals(action, 'y')", "block", "HIGH")
    a, b = m.RuleSet([rule, other]), m.RuleSet([rule])
    plan = {"action": "x"}
    assert a.evaluate(plan).triggered_rule_ids == ["w"] and b.evaluate(plan).reasons == ["warn: w"]
    rule.name = "renamed"
    assert a.evaluate(plan).triggered_rule_ids == ["renamed"] and b.evaluate(plan).reasons == ["warn: renamed"]
    rule.action = m.EthicsAction.BLOCK
    got = a.evaluate(plan)
    assert got.action is m.EthicsAction.BLOCK and got.reasons == ["block: renamed"]
    rule._compiled_fn = _rule(m, "t", "equals(action, 'z')")._compiled_fn  # what the rule evaluates
    assert a.evaluate(plan).triggered_rule_ids == [] and a.evaluate({"action": "z"}).triggered_rule_ids == ["renamed"]
    assert b.evaluate({"action": "z"}).action is m.EthicsAction.BLOCK
    assert "_owners" in vars(other) and "_owners" not in other.__getstate__()
    copy = pickle.loads(pickle.dumps(other))
    assert "_owners" not in vars(copy) and copy.name == "b" and copy.evaluate({"action": "y"})
    ref = weakref.ref(b)
    del b
    gc.collect()
    assert ref() is None and len(rule._owners) == 1  # (only ``a``)


def test_bad_plans_and_contexts_block(ethics_impl):
    m = ethics_impl
    rs = m.RuleSet([_rule(m, "w", "is_present(action)", "warn", "LOW")])
    for plan in (None, ["action"], "plan"):
        r = rs.evaluate(plan)
        assert r.action is m.EthicsAction.BLOCK and r.facts_hash == "error"
        assert r.reasons[0].startswith("block: invalid_plan") and r.triggered_rules == []
    r = rs.evaluate({"action": "a", 1: "mixed keys"})  # the reference raised TypeError
    assert r.action is m.EthicsAction.WARN and r.facts_hash != "error"
    r = rs.evaluate({"action": "a"}, {"b": 1, 2: "mixed"})  # the reference blocked with facts_hash "error"
    assert r.action is m.EthicsAction.WARN and r.triggered_rule_ids == ["w"]
    r = rs.evaluate({"action": "a"}, ["not", "a", "dict"])
    assert r.action is m.EthicsAction.BLOCK and r.reasons[0].startswith("block: invalid_context")


def test_engine_history_and_stats(ethics_impl):
    m = ethics_impl
    eng = m.EthicsEngine(m.load_ethics_rules())
    ok = {"action": "read_file", "params": {"estimated_memory_mb": 10, "estimated_time_seconds": 5}}
    assert eng.is_plan_allowed(ok)
    assert not eng.is_plan_allowed({"action": "delete_user_data"})
    for i in range(1005):
        eng.evaluate_plan(dict(ok, i=i))
    assert len(eng.evaluation_history) == 1000
    last = eng.evaluation_history[-1]
    assert set(last) == {"timestamp", "plan_hash", "facts_hash", "action", "triggered_rules", "reason_codes",
                         "evaluation_time_ms", "reasons", "ruleset_hash"}
    assert last["ruleset_hash"] == "5f47dfe036e0ca18" and last["action"] == "allow"
    st = eng.get_stats()
    assert st["total_rules"] == 15 and st["evaluation_history_size"] == 1000
    assert st["rules_by_action"] == {"allow": 0, "warn": 7, "block": 8}
    assert st["rules_by_priority"] == {"LOW": 3, "MEDIUM": 4, "HIGH": 3, "CRITICAL": 5}
    assert len(st["recent_evaluations"]) == 10
    with pytest.raises(TypeError):
        m.EthicsEngine([])


def test_default_rules_allow_an_ordinary_plan(ethics_impl):
    """As in the SDK, param_*_lte passes a missing value: the bundled
    block_excessive_resources does not block plans that declare no estimates."""
    m = ethics_impl
    rs = m.load_ethics_rules()
    plan = {"action": "read_file", "params": {"path": "a.txt"}}
    r = rs.evaluate(plan, {"user_id": "u1"})
    assert r.action is m.EthicsAction.ALLOW and r.triggered_rule_ids == [], r.reasons
    assert m.get_ethics_engine().is_plan_allowed(plan, {"user_id": "u1"})
    assert rs.evaluate({"action": "read_file"}, {"user_id": "u1"}).action is m.EthicsAction.ALLOW
    # a declared estimate is still checked, and an unparsable one fails closed
    r = rs.evaluate({"action": "read_file", "params": {"estimated_time_seconds": 301}}, {"user_id": "u1"})
    assert r.action is m.EthicsAction.BLOCK and r.triggered_rule_ids == ["block_excessive_resources"]
    r = rs.evaluate({"action": "read_file", "params": {"estimated_memory_mb": "lots"}}, {"user_id": "u1"})
    assert r.action is m.EthicsAction.BLOCK and r.triggered_rule_ids == ["block_excessive_resources"]
    r = rs.evaluate({"action": "read_file", "params": {"estimated_memory_mb": 2048, "estimated_time_seconds": 10}})
    assert r.action is m.EthicsAction.ALLOW  # defect 16 kept: the bundled rule reads MB as bytes


@pytest.mark.parametrize("rule", ['param_bytes_lte(params.m, "1KB")', 'param_seconds_lte(params.t, "1s")',
                                  'param_bytes_lte(params.m, params.limit)'])
def test_param_limits_missing_value_in_rules(ethics_impl, oracle, rule):
    """Compiled rules agree with the predicates (and the oracle) on missing values."""
    for plan, want in [({"params": {}}, True), ({}, True), ({"params": {"m": "x", "t": "x"}}, False),
                       ({"params": {"m": None, "t": None, "limit": "junk"}}, True)]:
        got = ethics_impl.compile_rule(rule)(plan)
        assert got is want and oracle("ethics").compile_rule(rule)(plan) is want, (rule, plan)


def test_bundled_rules_end_to_end(ethics_impl):
    m = ethics_impl
    rs = m.load_ethics_rules()
    res = {"estimated_memory_mb": 10, "estimated_time_seconds": 5}
    cases = [
        ({"action": "external_call", "params": dict(res, url="https://api.openai.com/v1")}, "warn", ["warn_external_api_calls"]),
        ({"action": "external_call", "params": dict(res, url="https://evil.example.com")}, "block",
         ["block_untrusted_domains", "warn_external_api_calls"]),
        ({"action": "external_call", "params": dict(res, url="https://api.openai.com", data="sensitive stuff")}, "block",
         ["block_data_exfiltration", "warn_external_api_calls"]),
        ({"action": "send", "params": dict(res, target_user_id="u2")}, "block", ["block_user_impersonation"]),
        ({"action": "send", "params": dict(res, target_user_id="u1")}, "allow", []),
        ({"action": "run", "params": dict(res, batch_size=500)}, "warn", ["warn_large_batch_operations"]),
        ({"action": "run", "params": dict(res, user_consent="no")}, "block", ["block_no_consent"]),
        ({"action": "get_user_profile", "params": res}, "warn", ["warn_user_data_access"]),
    ]
    for plan, action, ids in cases:
        r = rs.evaluate(plan, {"user_id": "u1"})
        assert r.action.value == action, (plan, r.reasons)
        assert sorted(r.triggered_rule_ids) == sorted(ids), (plan, r.triggered_rule_ids)
    r = rs.evaluate({"action": "get_user_profile", "params": res}, {})
    assert "warn_missing_user_context" in r.triggered_rule_ids
    assert "ETH#3006" in r.reason_codes


def test_safety_tag_rules_end_to_end(ethics_impl):
    m = ethics_impl
    rs = m.load_ethics_rules(SAFETY_TAG_RULES_PATH)
    A = m.EthicsAction
    for tags in (["pii", "external-call"], {"pii", "external-call"}, "pii, external-call",
                 [{"name": "pii"}, {"name": "external-call"}]):
        r = rs.evaluate({"action": "send", "safety_tags": tags})
        assert r.action is A.BLOCK and "block_pii_external_calls" in r.triggered_rule_ids, tags
    r = rs.evaluate({"action": "pay", "safety_tags": ["financial"]})
    assert r.action is A.WARN and set(r.triggered_rule_ids) == {"require_human_financial_ops", "warn_data_sensitivity_category"}
    r = rs.evaluate({"action": "delete_records", "safety_tags": ["gdpr"], "params": {"user_consent": "no"}})
    assert r.action is A.BLOCK and "block_gdpr_deletion_without_consent" in r.triggered_rule_ids
    r = rs.evaluate({"action": "noop", "safety_tags": []})
    assert r.action is A.ALLOW


def test_enricher_output_feeds_rules(ethics_impl):
    st = pytest.importorskip("lukhas_fast.safety_tags")
    rs = ethics_impl.load_ethics_rules(SAFETY_TAG_RULES_PATH)
    enricher = st.SafetyTagEnricher(enable_caching=False)
    plan = {"action": "call_api", "params": {"email": "alice@example.com", "url": "https://api.example.com/v1"}}
    tagged = enricher.enrich_plan(plan)
    assert {"pii", "external-call"} <= tagged.tag_names
    for tags in (tagged.tags, tagged.tag_names, tagged):
        r = rs.evaluate(dict(plan, safety_tags=tags))
        assert r.action is ethics_impl.EthicsAction.BLOCK and "block_pii_external_calls" in r.triggered_rule_ids


# --- loader ------------------------------------------------------------------------------------

def _write(tmp_path, text, name="rules.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


GOOD = """
rules:
  - name: r1
    description: d
    rule_dsl: 'equals(action, "x")'
    action: BLOCK
    priority: High
    tags: [a, b]
"""


def test_loader_good_file(ethics_impl, tmp_path):
    rs = ethics_impl.load_ethics_rules(_write(tmp_path, GOOD))
    (r,) = rs.rules
    assert r.action is ethics_impl.EthicsAction.BLOCK and r.priority is ethics_impl.Priority.HIGH
    assert r.tags == {"a", "b"}


def test_loader_strict_reports_every_bad_entry(ethics_impl, tmp_path):
    text = GOOD + """
  - name: broken_dsl
    description: d
    rule_dsl: 'foo(action)'
    action: block
    priority: high
  - "just a string"
  - name: bad_priority
    description: d
    rule_dsl: 'is_empty(a)'
    action: block
    priority: 4
  - name: missing_action
    description: d
    rule_dsl: 'is_empty(a)'
    priority: low
  - name: bad_tags
    description: d
    rule_dsl: 'is_empty(a)'
    action: warn
    priority: low
    tags: abc
"""
    path = _write(tmp_path, text)
    with pytest.raises(ethics_impl.RuleLoadError) as ei:
        ethics_impl.load_ethics_rules(path)
    msg = str(ei.value)
    assert "5 invalid rule entries" in msg and "nothing loaded" in msg
    for part in ("broken_dsl", "Unknown predicate: foo", "entry 2 (unknown)", "priority must be a string",
                 "Missing required field: action", "tags must be a list of strings"):
        assert part in msg, part
    rs = ethics_impl.load_ethics_rules(path, strict=False)  # the reference's skip-and-log
    assert [r.name for r in rs.rules] == ["r1"]


@pytest.mark.parametrize(
    "text,msg",
    [
        ("", "Invalid config structure"),
        ("other: 1\n", "Invalid config structure"),
        ("- a\n- b\n", "Invalid config structure"),
        ("rules: 5\n", "must be a list"),
        ("rules: [\n", "Rule loading failed"),
        ("rules: []\n", "No rules"),
        ("rules:\n", "No rules"),
    ],
)
def test_loader_structure_errors(ethics_impl, tmp_path, text, msg):
    with pytest.raises(ethics_impl.RuleLoadError, match=msg):
        ethics_impl.load_ethics_rules(_write(tmp_path, text))


def test_loader_missing_file_and_fallback(ethics_impl, tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ethics_impl.RuleLoadError, match="not found"):
        ethics_impl.load_ethics_rules(missing)
    rs = ethics_impl.load_ethics_rules(missing, strict=False)
    assert [r.name for r in rs.rules] == ["fallback_block_harmful", "fallback_warn_external"]
    rs = ethics_impl.load_ethics_rules(_write(tmp_path, "rules: []\n"), strict=False)
    assert len(rs.rules) == 2
    with pytest.raises(ethics_impl.RuleLoadError):
        ethics_impl.load_ethics_rules(str(tmp_path))  # a directory


def test_loader_duplicate_names_kept(ethics_impl, tmp_path):
    rs = ethics_impl.load_ethics_rules(_write(tmp_path, GOOD + GOOD.replace("rules:\n", "")))
    assert [r.name for r in rs.rules] == ["r1", "r1"]


def test_get_ethics_engine_per_path(ethics_impl, tmp_path):
    e1 = ethics_impl.get_ethics_engine()
    assert e1 is ethics_impl.get_ethics_engine()
    assert e1.rule_set.ruleset_hash == "5f47dfe036e0ca18"
    other = ethics_impl.get_ethics_engine(SAFETY_TAG_RULES_PATH)  # deviation: not ignored
    assert other is not e1 and other.rule_set.ruleset_hash == "cd5cb97a607947a9"
    assert ethics_impl.get_ethics_engine(SAFETY_TAG_RULES_PATH) is other


def test_engine_metrics(ethics_impl, monkeypatch):
    prom = pytest.importorskip("prometheus_client")
    m = ethics_impl
    rs = m.RuleSet([_rule(m, "metric_rule", "is_present(action)", "warn", "LOW")], metrics=True)
    get = prom.REGISTRY.get_sample_value
    before = get("ethics_evaluations_total", {"result": "warn"}) or 0.0
    hits = get("ethics_rule_hits_total", {"rule_name": "metric_rule", "action": "warn"}) or 0.0
    rs.evaluate({"action": "x"})
    assert get("ethics_evaluations_total", {"result": "warn"}) == before + 1
    assert get("ethics_rule_hits_total", {"rule_name": "metric_rule", "action": "warn"}) == hits + 1
    assert get("ethics_rule_fires_total", {"rule_id": "metric_rule", "action": "warn"}) >= 1
    assert get("ethics_ruleset_hash_total", {"hash": rs.ruleset_hash}) >= 1
    assert get("ethics_evaluation_ms_count") >= 1
    m.RuleSet([], metrics=True)  # duplicate registration tolerated


def test_engine_metrics_after_clear_and_remove(ethics_impl):
    """The labelled children are remembered per rule set; a child the metric no
    longer holds (``remove``/``clear``) is not: counts keep reaching the exposition."""
    prom = pytest.importorskip("prometheus_client")
    m = ethics_impl
    rs = m.RuleSet([_rule(m, "metric_rule2", "is_present(action)", "block", "LOW")], metrics=True)
    get = prom.REGISTRY.get_sample_value
    for _ in range(3):
        rs.evaluate({"action": "x"})
    assert get("ethics_rule_hits_total", {"rule_name": "metric_rule2", "action": "block"}) >= 3
    rs._metrics.hits.remove("metric_rule2", "block")
    rs._metrics.evaluations.clear()
    rs.evaluate({"action": "x"})
    rs.evaluate({"action": "x"})
    assert get("ethics_rule_hits_total", {"rule_name": "metric_rule2", "action": "block"}) == 2
    assert get("ethics_evaluations_total", {"result": "block"}) == 2
    rs.evaluate([])  # not a dict: the blocked path counts too
    assert get("ethics_evaluations_total", {"result": "block"}) == 3


def test_engine_counts_into_the_childs_value_store_under_threads(ethics_impl):
    """A plain prometheus_client Counter child is counted through its value store (what
    Counter.inc forwards to); a Counter subclass with its own ``inc`` keeps its ``inc``.
    Counts from several threads at once are all kept (the store's own lock)."""
    import threading

    prom = pytest.importorskip("prometheus_client")
    m = ethics_impl
    rs = m.RuleSet([_rule(m, "metric_rule3", "is_present(action)", "warn", "LOW")], metrics=True)
    em = rs._metrics
    rs.evaluate({"action": "x"})
    child = em.evaluations.labels("warn")
    assert em._child(em.evaluations, ("warn",)) is child._value

    class Own(prom.Counter):
        def inc(self, amount=1, exemplar=None):
            super().inc(amount * 2, exemplar)

    own = Own("lukhas_test_engine_own_total", "test", ["result"], registry=prom.CollectorRegistry())
    assert em._child(own, ("warn",)) is own.labels("warn")
    get = prom.REGISTRY.get_sample_value
    before = get("ethics_evaluations_total", {"result": "warn"})
    threads = [threading.Thread(target=lambda: [rs.evaluate({"action": "x"}) for _ in range(300)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert get("ethics_evaluations_total", {"result": "warn"}) == before + 1200


def _series(prom, names):
    """Every sample of the ``names`` metric families in the default registry: {(name, labels): value}."""
    out = {}
    for fam in prom.REGISTRY.collect():
        if fam.name in names:
            for smp in fam.samples:
                if not smp.name.endswith("_created"):
                    out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def test_engine_metrics_deferred_then_flushed_equal_direct_counts(ethics_impl, caplog, monkeypatch):
    """``defer(True)`` (the service, while it runs): evaluations count into deques, nothing
    reaches the metrics until ``flush()``, which then adds exactly what direct counting adds
    for the same evaluations (fired, failed and blocked ones, every histogram bucket)."""
    prom = pytest.importorskip("prometheus_client")
    from lukhas_fast import _ethics_engine as eng

    m = ethics_impl
    rs = m.RuleSet([_rule(m, "d_warn", "is_present(action)", "warn", "LOW"),
                    _rule(m, "d_fail", "contains(action, limit)", "allow", "MEDIUM"),
                    _rule(m, "d_block", 'equals(action, "rm")', "block", "HIGH")], metrics=True)
    names = {"ethics_evaluations", "ethics_rule_hits", "ethics_rule_fires", "ethics_evaluation_ms"}
    plans = [{"action": "x"}, {"action": "rm"}, {"action": "x", "limit": 5}, {}, ["not a dict"]] * 7
    # evaluation times spread over every bucket: 0.05, 0.3, 0.7, 1.5, 3, 7, 20 ms
    spans = [0.05, 0.3, 0.7, 1.5, 3.0, 7.0, 20.0, 0.1, 10.0]
    state = {"t": 0.0, "k": 0}

    def fake_clock():
        state["k"] += 1
        if state["k"] % 2:  # start of an evaluation
            state["t"] += 1.0
        else:
            state["t"] += spans[(state["k"] // 2) % len(spans)] / 1000.0
        return state["t"]

    monkeypatch.setattr(eng, "_perf_counter", fake_clock)

    def run():  # the same clock readings each run (the same float rounding of each latency)
        state["k"], state["t"] = 0, 0.0
        with caplog.at_level(logging.CRITICAL, logger="lukhas_fast.ethics"):
            for plan in plans:
                rs.evaluate(plan)

    def delta(before, after):
        return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}

    s0 = _series(prom, names)
    run()
    direct = delta(s0, _series(prom, names))
    assert direct
    em = rs._metrics
    em.defer(True)
    em.defer(True)  # nested: two users
    s1 = _series(prom, names)
    run()
    assert delta(s1, _series(prom, names)) == {}  # all pending
    em.defer(False)  # one user left: still deferred
    assert delta(s1, _series(prom, names)) == {}
    em.flush()
    flushed = delta(s1, _series(prom, names))
    assert flushed.keys() == direct.keys()
    for k in direct:
        assert flushed[k] == pytest.approx(direct[k], rel=1e-12, abs=1e-9), k
    em.defer(False)  # the last user: direct counting again
    s2 = _series(prom, names)
    rs.evaluate({"action": "x"})
    assert delta(s2, _series(prom, names))


def test_engine_metrics_deferred_bounded_and_thread_safe(ethics_impl):
    """Deferred counts never exceed DEFER_MAX pending (an evaluation then flushes), and
    evaluations from several threads racing with flushes lose no count."""
    import threading

    prom = pytest.importorskip("prometheus_client")
    m = ethics_impl
    rs = m.RuleSet([_rule(m, "d_thread", "is_present(action)", "warn", "LOW")], metrics=True)
    em = rs._metrics
    em.DEFER_MAX = 50
    get = prom.REGISTRY.get_sample_value
    before = get("ethics_rule_hits_total", {"rule_name": "d_thread", "action": "warn"}) or 0.0
    em.defer(True)
    try:
        stop = threading.Event()

        def flusher():
            while not stop.is_set():
                em.flush()

        f = threading.Thread(target=flusher)
        f.start()
        workers = [threading.Thread(target=lambda: [rs.evaluate({"action": "x"}) for _ in range(400)]) for _ in range(3)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        stop.set()
        f.join()
        assert len(em._pending_evals) <= 51
    finally:
        em.defer(False)
    assert get("ethics_rule_hits_total", {"rule_name": "d_thread", "action": "warn"}) == before + 1200
    assert not em._pending_evals and not em._pending_fires


def test_engine_latency_histogram_buckets_match_observe(ethics_impl):
    """The engine's one-bisect histogram update lands every value in the bucket
    Histogram.observe would pick (bounds included, past the last finite bound)."""
    prom = pytest.importorskip("prometheus_client")
    from lukhas_fast import _ethics_engine as eng

    reg = prom.CollectorRegistry()
    ref = prom.Histogram("ref_ms", "reference", buckets=(0.1, 0.5, 1.0, 2.0, 5.0, 10.0), registry=reg)
    m = eng._EngineMetrics(True)
    assert m._lat is not None  # the fast path is the one under test
    mine = m.latency
    before = {s.labels.get("le"): s.value for s in next(iter(mine.collect())).samples if s.name.endswith("_bucket")}
    values = [0.0, 0.05, 0.1, 0.10000001, 0.5, 0.7, 1.0, 2.0, 4.99, 5.0, 9.0, 10.0, 10.5, 1e9]
    for v in values:
        ref.observe(v)
        m.evaluated("allow", v)
    got = {s.labels.get("le"): s.value - before[s.labels.get("le")]
           for s in next(iter(mine.collect())).samples if s.name.endswith("_bucket")}
    want = {s.labels.get("le"): s.value for s in next(iter(ref.collect())).samples if s.name.endswith("_bucket")}
    assert got == want


def test_per_evaluation_log_line_has_its_own_logger(ethics_impl, caplog):
    """``Ethics evaluation: ...`` at INFO, on a child of ``lukhas_fast.ethics`` (the service
    drops it unless its access log is on)."""
    rs = ethics_impl.RuleSet([_rule(ethics_impl, "r", "is_present(action)", "warn", "LOW")], metrics=False)
    with caplog.at_level(logging.INFO, logger="lukhas_fast.ethics"):
        rs.evaluate({"action": "x"})
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("Ethics evaluation")]
    assert len(lines) == 1 and lines[0][:2] == ("lukhas_fast.ethics.evaluation", logging.INFO)
    assert lines[0][2].startswith("Ethics evaluation: warn (") and lines[0][2].endswith("ms, 1 rules triggered)")


def test_per_evaluation_log_line_follows_level_changes_and_disabled(ethics_impl, caplog):
    """The line is asked for per evaluation (the engine reads logging's own per-level memo):
    a level changed at run time, ``logging.disable`` and a logger ``disabled`` by dictConfig
    all take effect at the next evaluation, exactly as ``isEnabledFor`` says."""
    rs = ethics_impl.RuleSet([_rule(ethics_impl, "r", "is_present(action)", "warn", "LOW")], metrics=False)
    lg = logging.getLogger("lukhas_fast.ethics.evaluation")

    def logged():
        caplog.clear()
        rs.evaluate({"action": "x"})
        return sum(r.getMessage().startswith("Ethics evaluation") for r in caplog.records)

    with caplog.at_level(logging.INFO, logger="lukhas_fast.ethics"):
        assert logged() == 1 and lg.isEnabledFor(logging.INFO)  # the memo now says True
        lg.disabled = True  # what dictConfig(disable_existing_loggers=True) does: no cache clear
        try:
            assert logged() == 0
        finally:
            lg.disabled = False
        assert logged() == 1
        logging.disable(logging.INFO)
        try:
            assert logged() == 0
        finally:
            logging.disable(logging.NOTSET)
        assert logged() == 1
        logging.getLogger("lukhas_fast.ethics").setLevel(logging.WARNING)
        assert logged() == 0 and not lg.isEnabledFor(logging.INFO)  # the memo now says False
    assert logged() == 0


def test_public_reexports():
    assert lukhas_fast.compile_rule is lukhas_fast.ethics.compile_rule
    assert lukhas_fast.get_ethics_engine().rule_set.ruleset_hash == "5f47dfe036e0ca18"
