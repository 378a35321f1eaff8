"""Ethics on hostile or unusual input (issue 13, item 5) and the rule-set program (issue 16):
every tier compiles and evaluates the same way, compile time is linear, and the C tier's
shared work (tag views, URL memo, shared sub-expressions) never changes a result."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lukhas_fast._ethics_dsl import MAX_RULE_DEPTH, DSLError, RuleEvaluationError

BIG_INT = "1" + "0" * 309  # does not fit a double


# --- issue 13, item 5: one row each --------------------------------------------------------

def test_overflowing_number_literal_is_a_dsl_error(ethics_impl):
    """Row: greater_than(params.x, 1e309 written out) was OverflowError on the C tier."""
    with pytest.raises(DSLError, match=r"^Failed to compile rule: Number too large for greater_than"):
        ethics_impl.compile_rule(f"greater_than(params.x, {BIG_INT})")
    with pytest.raises(DSLError, match="Number too large for less_than"):
        ethics_impl.compile_rule(f"less_than({BIG_INT}, params.x)")
    # the same literal where no float conversion happens compiles
    assert ethics_impl.compile_rule(f"equals(params.x, {BIG_INT})")({"params": {"x": 10**309}})


def test_overflowing_unit_limit_is_a_dsl_error(ethics_impl):
    """Row: a param_bytes_lte limit of "9"*400 was OverflowError on the C tier."""
    with pytest.raises(DSLError, match="Value too large for param_bytes_lte"):
        ethics_impl.compile_rule(f'param_bytes_lte(params.size, "{"9" * 400}")')
    with pytest.raises(DSLError, match="Value too large for param_seconds_lte"):
        ethics_impl.compile_rule(f"param_seconds_lte(params.t, {BIG_INT})")
    with pytest.raises(DSLError, match="Value too large for param_bytes_lte"):
        ethics_impl.compile_rule(f'param_bytes_lte("{"9" * 400}", "1KB")')


def test_overflow_rule_in_a_file_names_the_rule(ethics_impl, tmp_path):
    """load_ethics_rules reports the rule (strict) or skips it (non-strict) on every tier."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: ok_rule, description: d, rule_dsl: 'equals(action, \"x\")', action: block, priority: high}\n"
        f"  - {{name: huge_limit, description: d, rule_dsl: 'param_bytes_lte(params.size, \"{'9' * 400}\")',"
        " action: block, priority: high}\n"
    )
    with pytest.raises(ethics_impl.RuleLoadError, match="huge_limit"):
        ethics_impl.load_ethics_rules(str(path), metrics=False)
    rs = ethics_impl.load_ethics_rules(str(path), strict=False, metrics=False)
    assert [r.name for r in rs.rules] == ["ok_rule"]


def test_overflowing_value_fails_closed(ethics_impl, oracle):
    """Row: param_bytes_lte(params.size, "abc") with a 400-digit size returned False on the C
    tier (fail open); now every tier raises, so the engine BLOCKs."""
    plan = {"action": "x", "params": {"size": "9" * 400}}
    for mod in (ethics_impl, oracle("ethics")):
        rule = mod.compile_rule('param_bytes_lte(params.size, "abc")')
        with pytest.raises(RuleEvaluationError, match="OverflowError"):
            rule(plan)
        rs = mod.RuleSet([mod.EthicsRule("limit", "d", 'param_bytes_lte(params.size, "abc")',
                                         mod.EthicsAction.WARN, mod.Priority.LOW)], metrics=False)
        res = rs.evaluate(plan)
        assert res.action is mod.EthicsAction.BLOCK and res.reasons == ["block: limit (evaluation_error)"]
        # an unparsable limit with a normal value is simply not within the limit
        assert mod.compile_rule('param_bytes_lte(params.size, "abc")')({"params": {"size": 5}}) is False
        assert mod.compile_rule('param_bytes_lte(params.size, "abc")')({"params": {}}) is True  # missing passes


def test_many_arguments_same_on_every_tier(ethics_impl, oracle):
    """Row: requires_human_for_tags with more than 8 arguments was a DSLError on the C tier only."""
    names = ", ".join(f'"t{i}"' for i in range(20)) + ', "pii"'
    rule = f"requires_human_for_tags(safety_tags, {names})"
    fn, ref = ethics_impl.compile_rule(rule), oracle("ethics").compile_rule(rule)
    for tags in (["pii"], ["t3"], "x, pii", None, {"pii": {"confidence": 0.1}}):
        assert fn({"safety_tags": tags}) == ref({"safety_tags": tags})
    assert fn({"safety_tags": ["pii"]}) is True
    wide = "or(" + ", ".join(f'equals(action, "a{i}")' for i in range(300)) + ")"
    assert ethics_impl.compile_rule(wide)({"action": "a299"}) is True


def _nested(depth: int, pad: int = 0) -> str:
    inner = 'equals(params.x, "' + "y" * pad + '")'
    rule = inner
    for i in range(depth):
        rule = f"{'and' if i % 2 else 'or'}({rule}, is_present(params.z{i}))"
    return rule


def test_deep_rule_is_a_clear_dsl_error_fast(ethics_impl):
    """Row: a 202 KB rule nested 495 deep took 9.8 s to compile; now depth is limited (a
    clear DSLError) and parsing is linear, on every tier."""
    rule = _nested(495, pad=200_000)
    assert len(rule) > 200_000
    t0 = time.perf_counter()
    with pytest.raises(DSLError, match=f"nested too deeply \\(more than {MAX_RULE_DEPTH} levels"):
        ethics_impl.compile_rule(rule)
    assert time.perf_counter() - t0 < 2.0
    ok = _nested(MAX_RULE_DEPTH)
    full = {"params": {f"z{i}": 1 for i in range(MAX_RULE_DEPTH)}}
    assert ethics_impl.compile_rule(ok)(full) is True
    assert ethics_impl.compile_rule(ok)({"params": {"z0": 1}}) is False
    with pytest.raises(DSLError, match="nested too deeply"):
        ethics_impl.compile_rule(_nested(MAX_RULE_DEPTH + 1))


def test_compile_time_is_linear_in_rule_length(ethics_impl):
    """Doubling a wide, moderately deep rule about doubles its compile time (not x depth)."""
    def rule(width):
        leaf = ", ".join(f'contains(params.t, "{"w" * 50}{i}")' for i in range(width))
        r = f"or({leaf})"
        for _ in range(40):
            r = f"and(is_present(action), {r})"
        return r

    def best(text):
        out = []
        for _ in range(3):
            t0 = time.perf_counter()
            ethics_impl.compile_rule(text)
            out.append(time.perf_counter() - t0)
        return min(out)

    small, large = best(rule(400)), best(rule(1600))
    assert large < small * 4 * 2.5  # 4x the text: well under the 4 x 40 a depth x length parser needs


def test_long_paths_compile_and_resolve_in_linear_time(ethics_impl):
    """A path of 100k parts (a 200 KB rule): compiling and evaluating it, beside short paths
    sharing prefixes, stays linear on every tier (the C tier gives prefixes of paths up to
    16 parts slots of their own and steps through longer ones from the root: no quadratic
    prefix table, no deep recursion), with the oracle's answers."""
    def run(n):
        rule = f"and(is_present({'.'.join(['a'] * n)}), is_present(a.a.a), not(is_empty(context)))"
        plan = cur = {}
        for _ in range(n):
            cur["a"] = {}
            cur = cur["a"]
        cur["a"] = 1
        t0 = time.perf_counter()
        fn = ethics_impl.compile_rule(rule)
        got = (fn(plan, {"x": 1}), fn(plan, {}), fn({"a": {"a": {"a": 1}}}, {"x": 1}))
        return time.perf_counter() - t0, got

    small, got_small = min(run(10_000) for _ in range(3))
    large, got_large = min(run(100_000) for _ in range(3))
    assert got_small == got_large == (True, False, False)
    assert large < small * 10 * 3  # 10x the path: linear (a prefix table per part would be 100x)


# --- issue 16: shared work never changes a result ----------------------------------------

class _Cat:
    def __init__(self, value):
        self.value = value


class _Tag:
    def __init__(self, name, category=None, confidence=1.0):
        self.name, self.category, self.confidence = name, category, confidence


NAMES = ["pii", "financial", "external-call", "model-switch", "gdpr", "delete", "admin",
         "privilege-escalation", "health", "x"]
CATS = [None, "data_sensitivity", "security_risk", _Cat("system_operation"), _Cat("compliance")]
confs = st.one_of(st.none(), st.floats(0, 1), st.sampled_from([0, 1, True, 0.9, float("nan"), "high"]))


@st.composite
def tag_values(draw):
    """Every accepted tag shape, plus odd ones that must take the shared predicates."""
    names = draw(st.lists(st.sampled_from(NAMES), max_size=5))
    shape = draw(st.sampled_from(["names", "set", "tuple", "frozenset", "comma", "dict", "dict_bool", "objects",
                                  "dicts", "tagged", "tagged_odd", "none", "int", "odd_list", "str_sub"]))
    if shape == "names":
        return names
    if shape in ("set", "tuple", "frozenset"):
        return {"set": set, "tuple": tuple, "frozenset": frozenset}[shape](names)
    if shape == "comma":
        return draw(st.sampled_from([", ", ",", " ,"])).join(names)
    if shape == "dict":
        return {n: {"confidence": draw(confs), "category": draw(st.sampled_from([None, "security_risk", 5]))}
                if draw(st.booleans()) else {} for n in names}
    if shape == "dict_bool":
        return {n: draw(st.sampled_from([True, 1, "yes"])) for n in names}
    if shape == "objects":
        return [_Tag(n, draw(st.sampled_from(CATS)), draw(confs)) for n in names]
    if shape == "dicts":
        return [{"name": n, "category": draw(st.sampled_from(CATS)), "confidence": draw(confs)} for n in names] + \
            draw(st.sampled_from([[], [{"noname": 1}]]))
    if shape == "tagged":
        from lukhas_fast import _tags_py

        return _tags_py.TaggedPlan({}, [_tags_py.SafetyTag(n, _tags_py.SafetyTagCategory.DATA_SENSITIVITY, "d",
                                                          draw(st.floats(0, 1))) for n in names], 0.0, {})
    if shape == "tagged_odd":  # elements without .name: tag_names fails, so the reference reads no tags
        from lukhas_fast import _tags_py

        return _tags_py.TaggedPlan({}, names + [draw(st.sampled_from([_Tag("pii"), "pii", {"name": "pii"}, 5]))],
                                   0.0, {})
    if shape == "none":
        return None
    if shape == "int":
        return draw(st.sampled_from([0, 5, 1.5, True]))
    if shape == "str_sub":
        class S(str):
            pass
        return [S(n) for n in names]
    return names + [draw(st.sampled_from([None, 5, ["pii"], True]))]


TAG_RULES = [
    'has_tag(safety_tags, "pii")',
    'has_tag(safety_tags, "")',
    "has_tag(safety_tags, context.name)",
    'and(has_tag(safety_tags, "pii"), has_tag(safety_tags, "external-call"))',
    'has_category(safety_tags, "data_sensitivity")',
    'has_category(safety_tags, "security_risk")',
    'has_category(safety_tags, "system_operation")',
    "has_category(safety_tags, context.name)",
    'tag_confidence(safety_tags, "pii", 0.9)',
    'tag_confidence(safety_tags, "gdpr")',
    'tag_confidence(safety_tags, "pii", context.min)',
    'requires_human_for_tags(safety_tags, "pii", "financial", "external-call")',
    "requires_human_for_tags(safety_tags, context.name, 5)",
    "high_risk_tag_combination(safety_tags)",
    'or(high_risk_tag_combination(context.tags), has_tag(context.tags, "x"), has_category(safety_tags, "compliance"))',
]


def _outcome(fn, plan, ctx):
    try:
        return ("ok", fn(plan, ctx))
    except RuleEvaluationError as exc:
        return ("error", str(exc).split(":")[0])


@settings(max_examples=300)
@given(tags=tag_values(), ctx_tags=tag_values(),
       name=st.one_of(st.sampled_from(NAMES + ["data_sensitivity", "compliance"]), st.none(), st.just(3)),
       minimum=st.one_of(st.floats(0, 1), st.none(), st.sampled_from(["0.5", float("nan"), 1])))
def test_tag_predicates_match_oracle_on_every_shape(ethics_impl, oracle, tags, ctx_tags, name, minimum):
    ref = oracle("ethics")
    plan = {"safety_tags": tags}
    ctx = {"tags": ctx_tags, "name": name, "min": minimum}
    for text in TAG_RULES:
        assert _outcome(ethics_impl.compile_rule(text), plan, ctx) == _outcome(ref.compile_rule(text), plan, ctx), text
    # the same rules as one rule set (one tag view for all of them on the C tier)
    rules = [ethics_impl.EthicsRule(f"r{i}", "d", t, ethics_impl.EthicsAction.WARN, ethics_impl.Priority.LOW)
             for i, t in enumerate(TAG_RULES)]
    ref_rules = [ref.EthicsRule(f"r{i}", "d", t, ref.EthicsAction.WARN, ref.Priority.LOW)
                 for i, t in enumerate(TAG_RULES)]
    a = ethics_impl.RuleSet(rules, metrics=False).evaluate(plan, ctx)
    b = ref.RuleSet(ref_rules, metrics=False).evaluate(plan, ctx)
    assert (a.action, a.triggered_rule_ids, a.reasons) == (b.action, b.triggered_rule_ids, b.reasons)


URLS = ["https://api.openai.com/v1", "api.openai.com", "https://a.b.openai.com", "http://co.uk", "https://evil.com",
        "ftp://anthropic.com/x", "ws://openai.com", "https://münchen.de", "", "https://[::1]:80/", "mailto:a@openai.com"]


@settings(max_examples=200)
@given(cases=st.lists(st.tuples(st.one_of(st.sampled_from(URLS), st.none(), st.just(5)),
                                st.one_of(st.sampled_from(URLS), st.none())), min_size=1, max_size=8))
def test_domain_memo_matches_oracle(ethics_impl, oracle, cases):
    """Repeated URLs (memo hits) and targets from paths give the oracle's answers."""
    ref = oracle("ethics")
    rules = ['domain_is(params.url, "https://api.openai.com")', 'domain_etld1(params.url, "openai.com")',
             "domain_is(params.url, context.t)", "domain_etld1(params.url, context.t)",
             'domain_etld1(params.url, "co.uk")']
    for url, target in cases + cases:
        plan, ctx = {"params": {"url": url}}, {"t": target}
        for text in rules:
            assert _outcome(ethics_impl.compile_rule(text), plan, ctx) == _outcome(ref.compile_rule(text), plan, ctx)


def test_domain_memo_is_bounded():
    """The C tier's URL memo (the pure-Python tier is the reference algorithm, no memo)."""
    from lukhas_fast._backend import tier_modules

    ethics_impl = tier_modules("ethics").get("c")
    if ethics_impl is None:
        pytest.skip("C tier not installed")
    rule = ethics_impl.compile_rule('domain_is(params.url, "https://api.openai.com")')
    ethics_impl.clear_domain_cache()
    info = ethics_impl.domain_cache_info()
    for i in range(info["max_size"] + 50):
        rule({"params": {"url": f"https://h{i}.example.com/"}})
    assert ethics_impl.domain_cache_info()["size"] == info["max_size"]
    rule({"params": {"url": "https://x.example.com/" + "a" * (info["max_url"] + 1)}})  # too long: not kept
    assert ethics_impl.domain_cache_info()["size"] == info["max_size"]
    assert rule({"params": {"url": "https://api.openai.com/v1"}}) is True


def test_matches_pattern_compiled_once_same_results(ethics_impl, oracle):
    ref = oracle("ethics")
    for pat in [r"^[a-z]+@[a-z]+\.com$", r"\d{3}-\d{4}", "(?i)HACK", r"^a$", "é"]:
        text = f'matches(params.text, "{pat}")'
        fn, want = ethics_impl.compile_rule(text), ref.compile_rule(text)
        for value in ["bob@mail.com", "BOB@mail.com", "555-1234", "a hack", "a\n", "a", "café", None, 123, ["x"]]:
            plan = {"params": {"text": value}}
            assert fn(plan) == want(plan), (pat, value)


def test_shared_subexpressions_keep_rule_order_and_errors(ethics_impl, oracle):
    """The same predicate in many rules, errors among them: identical results, order and reasons."""
    texts = [
        'equals(action, "external_call")',
        'and(equals(action, "external_call"), contains(params, "hack"))',
        "not(contains(action, params.n))",  # raises when params.n is not a str
        'or(contains(params, "hack"), contains(params, "bypass"))',
        'and(contains(params, "hack"), greater_than(params.n, 3))',
        "contains(action, params.n)",
        'and(equals(action, "external_call"), not(domain_etld1(params.url, "openai.com")))',
    ]
    plans = [
        {"action": "external_call", "params": {"n": 5, "d": "HACK", "url": "https://evil.com"}},
        {"action": "external_call", "params": {"n": "ext", "d": "bypass", "url": "https://api.openai.com"}},
        {"action": "read", "params": {"n": "x"}},
        {"action": "read", "params": None},
        {"action": "external_call", "params": ["hack", "é"]},
    ]
    ref = oracle("ethics")
    for mod in (ethics_impl,):
        rules = [mod.EthicsRule(f"r{i}", "d", t, [mod.EthicsAction.WARN, mod.EthicsAction.BLOCK][i % 2],
                                mod.Priority.MEDIUM) for i, t in enumerate(texts)]
        ref_rules = [ref.EthicsRule(f"r{i}", "d", t, [ref.EthicsAction.WARN, ref.EthicsAction.BLOCK][i % 2],
                                    ref.Priority.MEDIUM) for i, t in enumerate(texts)]
        rs, rs_ref = mod.RuleSet(rules, metrics=False), ref.RuleSet(ref_rules, metrics=False)
        for plan in plans:
            a, b = rs.evaluate(plan, {}), rs_ref.evaluate(plan, {})
            assert (a.action.value, a.triggered_rule_ids, a.reasons, a.plan_hash, a.facts_hash) == \
                   (b.action.value, b.triggered_rule_ids, b.reasons, b.plan_hash, b.facts_hash), plan
        # a rule whose compiled function is replaced after the rule set was built is called as such
        rules[0]._compiled_fn = lambda plan, context=None: True
        assert "r0" in rs.evaluate({"action": "read"}, {}).triggered_rule_ids


def test_plan_hash_of_recursive_and_exotic_values(ethics_impl, oracle):
    """The C tier writes repr() itself: self-references, floats, big ints, escapes, non-ASCII."""
    ref = oracle("ethics")
    a = {"x": 1}
    a["self"] = a
    lst = [1]
    lst.append(lst)
    plans = [
        {"a": a, "b": lst},
        {"f": [1.0, 1e300, -0.0, float("inf"), float("nan"), 0.1 + 0.2], "i": [10**30, -5, 2**63]},
        {"s": ["it's", 'say "hi"', "both ' \"", "tab\there", "back\\slash", "\x7f\x00", "é", "\ud800"[:0] + "ok"]},
        {"t": (1,), "u": (), "v": (1, [2, {"k": None}]), "w": {}, "z": [], "b": True, "n": None},
        {"o": object.__new__(type("Odd", (), {"__repr__": lambda self: "<odd ü>"}))},
    ]
    rs, rs_ref = ethics_impl.load_ethics_rules(None, metrics=False), ref.load_ethics_rules(None, metrics=False)
    for plan in plans:
        ra, rb = rs.evaluate(plan, {"ctx": plan.get("s")}), rs_ref.evaluate(plan, {"ctx": plan.get("s")})
        assert (ra.plan_hash, ra.facts_hash) == (rb.plan_hash, rb.facts_hash), plan


def test_c_compiled_rule_and_program_pickle():
    """C-tier compiled rules and rule-set programs pickle by their source (recompiled on load)."""
    import pickle

    from lukhas_fast._backend import tier_modules

    c = tier_modules("ethics").get("c")
    if c is None:
        pytest.skip("C tier not installed")
    rule = c.compile_rule('and(equals(action, "x"), has_tag(safety_tags, "pii"))')
    back = pickle.loads(pickle.dumps(rule))
    assert back.source == rule.source and back({"action": "x", "safety_tags": ["pii"]}) is True
    prog = c.make_program(c.load_ethics_rules(None, metrics=False).rules)
    plan = {"action": "external_call", "params": {"url": "https://evil.example"}}
    assert pickle.loads(pickle.dumps(prog))(plan, {}) == prog(plan, {})


# --- issue 16, follow-up: hashing in C, float and unit predicates without exceptions ------

def test_sha256_in_c_matches_hashlib_on_both_code_paths():
    """csrc/sha256.c (SHA extensions where the CPU has them, and the scalar code, forced)
    gives hashlib's digest on every length around the block boundaries, and beyond."""
    import hashlib
    import random

    from lukhas_fast._backend import tier_modules

    c = tier_modules("ethics").get("c")
    if c is None:
        pytest.skip("C tier not installed")
    rng = random.Random(16)
    for n in list(range(0, 260)) + [1000, 4095, 4096, 65537] + [rng.randrange(20000) for _ in range(50)]:
        data = bytes(rng.getrandbits(8) for _ in range(n))
        want = hashlib.sha256(data).hexdigest()
        assert c._sha256_hex(data) == want, n
        assert c._sha256_hex(data, False) == want, n
    assert c.backend_details()["sha256"].startswith("C, ")


FLOATISH = ["1", " 2 ", "-3.5", "+4e2", "1_000", "1__0", "_1", "inf", "-Infinity", "nAn", "infinit", "1e", "e1",
            ".", "0x10", "5m", "250ms", "", " ", "\x1c1", "1\x1f", "\t7\n", "\x0b8\x0c", "\u0661\u0662", "\xa09",
            "9\u2003", "\x1cInfinity\u2003", "1.5.2", "--1", "١.٥", "12abc", "abc", "y", "a"]


@settings(max_examples=300)
@given(parts=st.lists(st.sampled_from(FLOATISH + [chr(i) for i in range(128)]), max_size=4))
def test_greater_less_than_on_strings_match_oracle(ethics_impl, oracle, parts):
    """The C tier answers False for ASCII strs float() cannot convert without calling it, and
    converts the rest exactly as Python's float() (Cython's own conversion accepted "\\x1c1")."""
    ref = oracle("ethics")
    text = "".join(parts)
    for rule in ("greater_than(params.x, 0)", "less_than(params.x, 5)", "less_than(params.y, params.x)",
                 "greater_than(params.x, params.y)"):
        plan = {"params": {"x": text, "y": "2"}}
        assert _outcome(ethics_impl.compile_rule(rule), plan, {}) == _outcome(ref.compile_rule(rule), plan, {}), \
            (rule, text)


def test_unit_predicates_remembered_results_match_oracle(ethics_impl, oracle):
    """Parsed str values are remembered per text; failures stay False and an overflow raises
    (fail closed) every time, not only the first."""
    ref = oracle("ethics")
    values = ["5m", "250ms", "1 GiB", "5", "abc", "", " 7 KB ", 3.5, "1e400", "400s", "inf", "-5", "10 MIB",
              "9" * 400, "x" * 100]
    for rule in ('param_seconds_lte(params.v, "300s")', 'param_bytes_lte(params.v, "1MB")',
                 'not(param_seconds_lte(params.v, "2m"))'):
        fast, want = ethics_impl.compile_rule(rule), ref.compile_rule(rule)
        for _ in range(3):  # the second and third round come from the memo
            for v in values:
                plan = {"params": {"v": v}}
                assert _outcome(fast, plan, {}) == _outcome(want, plan, {}), (rule, v)


def test_compiled_rule_call_forms_match_oracle(ethics_impl, oracle):
    """Rules are called through the vectorcall protocol on the C tier: positional and keyword
    forms give the oracle's results, bad calls are TypeErrors, and no reference leaks."""
    import sys

    ref = oracle("ethics")
    text = 'and(equals(action, "x"), is_empty(context.user))'
    fast, want = ethics_impl.compile_rule(text), ref.compile_rule(text)
    plan, ctx = {"action": "x"}, {"user": "u"}
    forms = [((plan,), {}), ((plan, ctx), {}), ((plan, None), {}), ((), {"plan": plan}),
             ((plan,), {"context": ctx}), ((), {"context": ctx, "plan": plan}), (({"action": "y"},), {})]
    for args, kwargs in forms:
        assert fast(*args, **kwargs) == want(*args, **kwargs), (args, kwargs)
    for args, kwargs in [((), {}), ((plan, ctx, 1), {}), ((plan,), {"other": 1}), ((plan,), {"plan": plan})]:
        with pytest.raises(TypeError):
            fast(*args, **kwargs)
        with pytest.raises(TypeError):
            want(*args, **kwargs)
    before = sys.getrefcount(plan), sys.getrefcount(ctx)
    for _ in range(1000):
        fast(plan, ctx)
        fast(plan, context=ctx)
    assert (sys.getrefcount(plan), sys.getrefcount(ctx)) == before
    with pytest.raises(RuleEvaluationError):
        ethics_impl.compile_rule("greater_than(params.x, 0)")({"params": {"x": 10**400}})


class _Peek:
    """A value whose repr() shows what CPython's recursion marks hide from Python code:
    the repr of the containers around it (``{...}``/``[...]`` when in progress)."""

    def __init__(self) -> None:
        self.around: list = []

    def __repr__(self) -> str:
        return "Peek(" + "|".join(repr(c) if not isinstance(c, _Peek) else "self" for c in self.around) + ")"


def test_plan_hash_when_python_code_sees_the_containers(ethics_impl, oracle):
    """The C writer marks the containers it is inside only when Python code can look;
    what that code sees is what CPython's repr shows it (same hashes as the oracle),
    also nested deeper than the writer's own stack, inside a repr already in progress,
    and with self-references among marked and unmarked containers."""
    ref = oracle("ethics")
    rs, rs_ref = ethics_impl.load_ethics_rules(None, metrics=False), ref.load_ethics_rules(None, metrics=False)
    peek = _Peek()
    inner = [1, peek, (2, peek)]
    params = {"k": inner, "hack": {"p": peek}}
    peek.around = [inner, params]
    deep: list = [peek]
    for _ in range(80):  # deeper than the writer's stack of containers
        deep = [{"d": (deep,)}]
    peek2 = _Peek()
    selfref: dict = {"q": peek2}
    selfref["me"] = selfref
    peek2.around = [selfref]
    plans = [
        {"action": "x", "params": params},
        {"action": "x", "params": {"deep": deep}},
        {"action": "x", "params": selfref, "more": [selfref, peek2]},
    ]
    for plan in plans:
        ctx = {"user_id": None, "tags": [peek, plan["params"]]}
        a, b = rs.evaluate(plan, ctx), rs_ref.evaluate(plan, ctx)
        assert (a.action.value, a.triggered_rule_ids, a.plan_hash, a.facts_hash) == \
               (b.action.value, b.triggered_rule_ids, b.plan_hash, b.facts_hash), plan

    # evaluated from inside a repr in progress on this thread: the plan's containers
    # that are being printed outside show as {...} to both tiers
    out = {}

    class Evaluating:
        def __repr__(self) -> str:
            out["c"] = rs.evaluate(holder["plan"], {})
            out["p"] = rs_ref.evaluate(holder["plan"], {})
            return "E"

    holder: dict = {"e": Evaluating()}
    holder["plan"] = {"action": "x", "params": {"h": holder, "l": [1]}}
    repr(holder)
    assert (out["c"].plan_hash, out["c"].facts_hash, out["c"].triggered_rule_ids) == \
           (out["p"].plan_hash, out["p"].facts_hash, out["p"].triggered_rule_ids)


def test_replaced_compiled_fn_is_honoured_every_way(ethics_impl):
    """A rule set's program notices a compiled function replaced by assignment, through
    the instance __dict__, or served by a subclass's property."""
    def rules():
        return [ethics_impl.EthicsRule(f"r{i}", "d", 'equals(action, "never")', ethics_impl.EthicsAction.WARN,
                                       ethics_impl.Priority.MEDIUM) for i in range(3)]

    always = lambda plan, context=None: True  # noqa: E731
    rs = ethics_impl.RuleSet(rules(), metrics=False)
    assert rs.evaluate({"action": "a"}, {}).triggered_rule_ids == []
    rs.rules[1]._compiled_fn = always
    assert rs.evaluate({"action": "a"}, {}).triggered_rule_ids == ["r1"]
    rs.rules[1].__dict__["_compiled_fn"] = rs.rules[0]._compiled_fn
    rs.rules[2].__dict__["_compiled_fn"] = always
    assert rs.evaluate({"action": "a"}, {}).triggered_rule_ids == ["r2"]

    class Served(ethics_impl.EthicsRule):
        serve_always = False

        @property
        def _compiled_fn(self):
            return always if self.serve_always else self.__dict__.get("_fn")

        @_compiled_fn.setter
        def _compiled_fn(self, fn):
            self.__dict__["_fn"] = fn

    served = [Served(f"s{i}", "d", 'equals(action, "never")', ethics_impl.EthicsAction.WARN,
                     ethics_impl.Priority.MEDIUM) for i in range(2)]
    rs2 = ethics_impl.RuleSet(served, metrics=False)
    assert rs2.evaluate({"action": "a"}, {}).triggered_rule_ids == []
    Served.serve_always = True
    assert rs2.evaluate({"action": "a"}, {}).triggered_rule_ids == ["s0", "s1"]
