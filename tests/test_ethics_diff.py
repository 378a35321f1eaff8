"""Differential tests: random rule texts either fail to compile (DSLError, same message on every
tier) or evaluate identically to the tree-walking oracle over random plans and contexts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lukhas_fast._ethics_dsl import DSLError, RuleEvaluationError

PATHS = ["action", "params", "params.x", "params.data", "params.url", "params.n", "safety_tags", "context",
         "context.user_id", "context.x", "plan.action", "missing", "params.x.y", ""]
STRINGS = ["", "x", "ab", "hack", "read", "pii", "external-call", "openai.com", "1KB", "5m", "no", "a,b", "data_sensitivity"]


@st.composite
def literal(draw):
    kind = draw(st.sampled_from(["str", "int", "float", "bool"]))
    if kind == "str":
        q = draw(st.sampled_from(['"', "'"]))
        return q + draw(st.sampled_from(STRINGS)) + q
    if kind == "int":
        return str(draw(st.integers(-5, 2000)))
    if kind == "float":
        return f"{draw(st.floats(-100, 100, allow_nan=False)):.2f}"
    return draw(st.sampled_from(["true", "false"]))


arg = st.one_of(st.sampled_from(PATHS), literal())

PRED_ARITY = {
    "contains": 2, "equals": 2, "greater_than": 2, "less_than": 2, "matches": 2, "is_empty": 1, "is_present": 1,
    "not_has_consent": 1, "domain_is": 2, "domain_etld1": 2, "param_bytes_lte": 2, "param_seconds_lte": 2,
    "has_tag": 2, "has_category": 2, "tag_confidence": 3, "requires_human_for_tags": 2,
    "high_risk_tag_combination": 1,
}


@st.composite
def predicate(draw):
    name = draw(st.sampled_from(sorted(PRED_ARITY)))
    n = PRED_ARITY[name] + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))  # sometimes a wrong arity
    return f"{name}({', '.join(draw(arg) for _ in range(max(n, 0)))})"


def expr(depth=0):
    if depth >= 2:
        return predicate()
    return st.one_of(
        predicate(),
        st.builds(lambda ch: f"and({', '.join(ch)})", st.lists(st.deferred(lambda: expr(depth + 1)), min_size=0, max_size=3)),
        st.builds(lambda ch: f"or({', '.join(ch)})", st.lists(st.deferred(lambda: expr(depth + 1)), min_size=0, max_size=3)),
        st.builds(lambda ch: f"not({', '.join(ch)})", st.lists(st.deferred(lambda: expr(depth + 1)), min_size=0, max_size=2)),
    )


@st.composite
def rule_text(draw):
    text = draw(expr())
    mutation = draw(st.sampled_from(["none"] * 6 + ["drop_char", "dup_char", "insert", "newline"]))
    if mutation != "none" and text:
        i = draw(st.integers(0, len(text) - 1))
        if mutation == "drop_char":
            text = text[:i] + text[i + 1:]
        elif mutation == "dup_char":
            text = text[:i] + text[i] + text[i:]
        elif mutation == "insert":
            text = text[:i] + draw(st.sampled_from(["(", ")", ",", '"', " ", "x"])) + text[i:]
        else:
            text = text[:i] + "\n" + text[i:]
    return text


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 3000), st.floats(-1e3, 1e3, allow_nan=False),
                    st.sampled_from(STRINGS + ["https://api.openai.com/x", "https://co.uk", "sensitive", "500", "2KB", "10s"]))
tagvals = st.one_of(st.lists(st.sampled_from(["pii", "gdpr", "external-call", "financial", "model-switch", "admin", "delete"]), max_size=4),
                    st.sampled_from(["pii, financial", "gdpr,delete", ""]),
                    st.dictionaries(st.sampled_from(["pii", "gdpr"]), st.one_of(st.booleans(), st.fixed_dictionaries({"confidence": st.floats(0, 1)}))))
plans = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "action": scalars,
            "params": st.one_of(scalars, st.dictionaries(st.sampled_from(["x", "data", "url", "n"]),
                                                         st.one_of(scalars, st.dictionaries(st.just("y"), scalars)))),
            "safety_tags": tagvals,
            "plan": st.dictionaries(st.just("action"), scalars),
            "missing": scalars,
            "": scalars,
        },
    ),
)
contexts = st.one_of(st.none(), st.dictionaries(st.sampled_from(["user_id", "x"]), scalars))


def _outcome(fn, plan, ctx):
    try:
        return ("ok", fn(plan, ctx))
    except RuleEvaluationError:
        return ("error",)


@settings(max_examples=200)
@given(text=rule_text(), cases=st.lists(st.tuples(plans, contexts), min_size=1, max_size=6))
def test_random_rules_match_oracle(ethics_impl, oracle, text, cases):
    ref = oracle("ethics")
    try:
        want_fn = ref.compile_rule(text)
    except DSLError as exc:
        with pytest.raises(DSLError) as got:
            ethics_impl.compile_rule(text)
        assert str(got.value) == str(exc)
        return
    fn = ethics_impl.compile_rule(text)
    for plan, ctx in cases:
        assert _outcome(fn, plan, ctx) == _outcome(want_fn, plan, ctx), (text, plan, ctx)


_RULESETS = {}


def _ruleset(mod, path):
    key = (mod.__name__, path)
    if key not in _RULESETS:
        _RULESETS[key] = mod.load_ethics_rules(path, metrics=False)
    return _RULESETS[key]


@settings(max_examples=150)
@given(plan=plans, ctx=contexts)
def test_bundled_rules_match_oracle(ethics_impl, oracle, plan, ctx):
    from lukhas_fast.ethics import SAFETY_TAG_RULES_PATH

    for path in (None, SAFETY_TAG_RULES_PATH):
        a = _ruleset(ethics_impl, path)
        b = _ruleset(oracle("ethics"), path)
        ra, rb = a.evaluate(plan, ctx), b.evaluate(plan, ctx)
        assert (ra.action, ra.triggered_rule_ids, ra.reasons, ra.plan_hash, ra.facts_hash) == \
               (rb.action, rb.triggered_rule_ids, rb.reasons, rb.plan_hash, rb.facts_hash)


class _Mutating:
    """A value whose repr removes a key from the plan while the plan is hashed."""

    def __init__(self, plan):
        self.plan = plan

    def __repr__(self):
        self.plan.pop("zz", None)
        return "M"


class _SubDict(dict):
    def __repr__(self):
        return "SubDict!"


@st.composite
def awkward_dicts(draw):
    keys = st.one_of(st.text(max_size=4), st.integers(-3, 3), st.sampled_from([None, (1, 2), 1.5, True]))
    values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                                    st.text(max_size=6)),
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                          max_leaves=6)
    d = draw(st.dictionaries(keys, values, max_size=5))
    if draw(st.booleans()):
        d = _SubDict(d)
    return d


@settings(max_examples=150)
@given(plan=awkward_dicts(), ctx=awkward_dicts())
def test_plan_and_facts_hashes_match_oracle_on_awkward_dicts(ethics_impl, oracle, plan, ctx):
    """The C tier builds the hashed strings itself; they must be the oracle's, byte for byte
    (str keys, mixed keys, dict subclasses, nested values, non-ASCII text)."""
    a = _ruleset(ethics_impl, None)
    b = _ruleset(oracle("ethics"), None)
    ra, rb = a.evaluate(plan, ctx), b.evaluate(plan, ctx)
    assert (ra.action, ra.reasons, ra.plan_hash, ra.facts_hash) == (rb.action, rb.reasons, rb.plan_hash, rb.facts_hash)
    if plan and all(type(k) is str for k in plan) and type(plan) is dict:
        assert rb.plan_hash == __import__("hashlib").sha256(repr(sorted(plan.items())).encode()).hexdigest()[:16]


def test_plan_hash_when_a_value_mutates_the_plan(ethics_impl, oracle):
    """A value whose __repr__ edits the plan while it is hashed: same hash as the oracle."""
    hashes = []
    for mod in (ethics_impl, oracle("ethics")):
        plan = {"a": 1, "m": None, "zz": 2}
        plan["m"] = _Mutating(plan)
        hashes.append(_ruleset(mod, None).evaluate(plan, {}).plan_hash)
    assert hashes[0] == hashes[1]


class _LoggingDict(dict):
    """A dict subclass whose ``get`` is its own (paths through it use ``get``)."""

    def get(self, key, default=None):
        return "via-get" if key == "y" else dict.get(self, key, default)


@settings(max_examples=120)
@given(plan=plans, ctx=contexts, wrap=st.sampled_from(["none", "params", "x", "context"]),
       texts=st.lists(st.sampled_from([
           'equals(params.x.y, "via-get")', "is_present(params.x.y)", "is_present(params.x)", "is_empty(params)",
           'contains(params, "x")', "equals(params.x.y, context.x)", "is_present(context)", "is_empty(context.x.y)",
           "greater_than(params.n, 5)", 'equals(plan.action, "x")', "is_present(params.x.y.z)"]),
           min_size=1, max_size=8, unique=True))
def test_rule_set_paths_sharing_prefixes_match_oracle(ethics_impl, oracle, plan, ctx, wrap, texts):
    """A rule set compiled as one program resolves each path from its prefix's value
    (``params.x.y`` from ``params.x``): same results as the oracle rule by rule, with paths
    through dict subclasses (their ``get``), non-dicts, missing keys and the bare context."""
    if isinstance(plan, dict) and wrap == "params" and isinstance(plan.get("params"), dict):
        plan = dict(plan, params=_LoggingDict(plan["params"]))
    if isinstance(plan, dict) and wrap == "x" and isinstance(plan.get("params"), dict) \
            and isinstance(plan["params"].get("x"), dict):
        plan = dict(plan, params=dict(plan["params"], x=_LoggingDict(plan["params"]["x"])))
    if wrap == "context" and isinstance(ctx, dict):
        ctx = _LoggingDict(ctx, x=_LoggingDict(y=1))
    sets = []
    for mod in (ethics_impl, oracle("ethics")):
        rules = [mod.EthicsRule(f"r{i}", "", t, mod.EthicsAction.WARN, mod.Priority.LOW) for i, t in enumerate(texts)]
        sets.append(mod.RuleSet(rules, metrics=False))
    got, want = (rs.evaluate(plan, ctx) for rs in sets)
    assert (got.action, got.triggered_rule_ids, got.reasons) == (want.action, want.triggered_rule_ids, want.reasons)
