"""Benchmark rows of the ethics family (metrics off).

Two corpora, both checked before anything is timed (every tier must give the
oracle's result for every rule on every plan, an AssertionError otherwise):

* ``corpus()``: 1,000 generated plans that exercise every bundled rule;
* ``mixed_corpus()``: 1,000 plans whose tags come in every accepted shape
  (lists of names, lists of ``SafetyTag``, dicts of name -> ``{"confidence":
  ...}``, comma strings, sets, ``TaggedPlan``, None), whose URLs are drawn
  from a small set with realistic repetition (a few hosts most of the time),
  with e-mail-like text, consent values and numbers.  The predicate-family
  rows time rules of one family on it (per rule, per plan).
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Mapping, Tuple

from lukhas_fast._bench.core import Row, case, measurement, time_thunks

_ACTIONS = ["read_file", "external_call", "delete_user_data", "get_user_profile", "debug_run", "admin_panel",
            "send_email", "access_private_info", "train_model", "read_user_data", "test_suite", "summarize"]


def corpus(n: int = 1000, seed: int = 7) -> List[Dict[str, Any]]:
    """Deterministic plans touching every bundled rule."""
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        params: Dict[str, Any] = {}
        if rng.random() < 0.8:
            params["estimated_memory_mb"] = rng.choice([10, 100, 900, 2048])
            params["estimated_time_seconds"] = rng.choice([1, 30, 120, 400, "5m", "250ms"])
        if rng.random() < 0.4:
            params["url"] = rng.choice(["https://api.openai.com/v1", "https://evil.example.com", "https://anthropic.com/x",
                                        "http://co.uk", "api.openai.com"])
        if rng.random() < 0.3:
            params["batch_size"] = rng.choice([5, 150, 999, 5000])
        if rng.random() < 0.2:
            params["data"] = rng.choice(["sensitive records", "public", "hack the planet"])
        if rng.random() < 0.2:
            params["target_user_id"] = rng.choice(["u1", "u2"])
        if rng.random() < 0.2:
            params["user_consent"] = rng.choice([True, False, "no", "yes"])
        if rng.random() < 0.1:
            params["recursion_depth"] = rng.randint(0, 10)
        plan: Dict[str, Any] = {"action": rng.choice(_ACTIONS), "params": params, "id": i}
        if rng.random() < 0.5:
            plan["safety_tags"] = rng.sample(["pii", "financial", "external-call", "model-switch", "gdpr"], rng.randint(0, 3))
        plans.append(plan)
    return plans


_TAG_NAMES = ["pii", "financial", "external-call", "model-switch", "gdpr", "delete", "admin", "privilege-escalation",
              "health", "injection"]
# a few hosts most of the time, a long tail now and then (URLs repeat as in real traffic)
_HOT_URLS = ["https://api.openai.com/v1/chat/completions", "https://api.anthropic.com/v1/messages",
             "https://evil.example.com/upload", "http://internal.svc.local/health", "api.openai.com",
             "https://docs.python.org/3/library/re.html"]
_SHAPES = ("names", "objects", "dict", "comma", "set", "tagged", "none")


def _tags_in_shape(rng: random.Random, shape: str, tags_mod: Any) -> Any:
    names = rng.sample(_TAG_NAMES, rng.randint(0, 4))
    confs = [round(rng.uniform(0.3, 1.0), 2) for _ in names]
    if shape == "names":
        return names
    if shape == "set":
        return set(names)
    if shape == "comma":
        return ", ".join(names)
    if shape == "dict":
        return {n: {"confidence": c} for n, c in zip(names, confs)}
    if shape == "none":
        return None
    cat = tags_mod.SafetyTagCategory
    objs = [tags_mod.SafetyTag(n, rng.choice([cat.DATA_SENSITIVITY, cat.SECURITY_RISK, cat.SYSTEM_OPERATION]),
                               "generated", c) for n, c in zip(names, confs)]
    if shape == "objects":
        return objs
    return tags_mod.TaggedPlan({"action": "x"}, objs, 0.1, {})


def mixed_corpus(n: int = 1000, seed: int = 16) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """``(plan, context)`` pairs mixing every tag shape (in ``safety_tags`` and
    ``context.tags``), repeated URLs, e-mail-like text, consent values and numbers."""
    from lukhas_fast import _tags_py as tags_mod

    rng = random.Random(seed)
    out = []
    for i in range(n):
        shape = _SHAPES[i % len(_SHAPES)]
        r = rng.random()
        url = rng.choice(_HOT_URLS) if r < 0.9 else f"https://host{rng.randrange(200)}.example.org/p/{i}"
        params: Dict[str, Any] = {
            "url": url,
            "text": rng.choice([f"user{i % 50}@example.com", "alice@corp.com", "Not An Email", f"ticket {i}",
                                "bob@mail.com", "x" * 40]),
            "user_consent": rng.choice([True, False, "no", "yes", "deny", None, "Reject", 1]),
            "batch_size": rng.choice([1, 50, 150, 999, 5000, "200", None]),
            "estimated_time_seconds": rng.choice([1, 30, 120, 400, "5m", "250ms"]),
            "data": rng.choice(["public report", "sensitive records", "customer list", "hack the planet"]),
        }
        plan = {"action": rng.choice(_ACTIONS), "params": params, "id": i,
                "safety_tags": _tags_in_shape(rng, shape, tags_mod)}
        ctx = {"user_id": rng.choice(["u1", "u2", None]),
               "tags": _tags_in_shape(rng, _SHAPES[(i + 3) % len(_SHAPES)], tags_mod)}
        out.append((plan, ctx))
    return out


#: (family, rule) pairs timed one rule at a time; the first rows are the issue's table.
FAMILY_RULES: List[Tuple[str, str]] = [
    ("tag", 'requires_human_for_tags(context.tags, "pii", "financial", "external-call")'),
    ("tag", 'and(has_tag(safety_tags, "pii"), has_tag(safety_tags, "external-call"))'),
    ("tag", "high_risk_tag_combination(safety_tags)"),
    ("tag", 'has_category(safety_tags, "data_sensitivity")'),
    ("tag", 'tag_confidence(safety_tags, "pii", 0.9)'),
    ("domain", 'domain_is(params.url, "https://api.openai.com")'),
    ("domain", 'and(equals(action, "external_call"), not(or(domain_etld1(params.url, "openai.com"), '
               'domain_etld1(params.url, "anthropic.com"))))'),
    ("regex", r'matches(params.text, "^[a-z]+@[a-z]+\.com$")'),
    ("consent", "not_has_consent(params.user_consent)"),
    ("consent", "and(is_present(params.user_consent), not_has_consent(params.user_consent))"),
    ("numeric/string", 'contains(params, "hack")'),
    ("numeric/string", 'and(greater_than(params.batch_size, 100), less_than(params.batch_size, 1000), '
                       'is_present(params.data))'),
    ("numeric/string", 'or(equals(action, "delete_user_data"), equals(action, "external_call"), '
                       'param_seconds_lte(params.estimated_time_seconds, "300s"))'),
]
FAMILIES = ("tag", "domain", "regex", "consent", "numeric/string")

_CTX = [{"user_id": "u1"}, {}, {"user_id": None}]
_cache: Dict[str, Any] = {}


def _setup(m):
    key = m.__name__
    if key not in _cache:
        rs = m.load_ethics_rules(None, metrics=False)
        plans = corpus()
        _check_against_oracle(m, rs, plans)
        _cache[key] = (rs, plans)
    return _cache[key]


def _check_against_oracle(m, rs, plans):
    from lukhas_fast._backend import tier_modules

    ref = tier_modules("ethics")["python"].load_ethics_rules(None, metrics=False)
    for i, plan in enumerate(plans):
        ctx = _CTX[i % 3]
        for r_fast, r_ref in zip(rs.rules, ref.rules):
            try:
                a = r_fast.evaluate(plan, ctx)
            except Exception as exc:  # evaluation errors must match too
                a = type(exc).__name__
            try:
                b = r_ref.evaluate(plan, ctx)
            except Exception as exc:
                b = type(exc).__name__
            assert a == b, f"{m.__name__}: rule {r_fast.name} differs from the oracle on plan {i}: {a} != {b}"
        fa, fb = rs.evaluate(plan, ctx), ref.evaluate(plan, ctx)
        assert (fa.action, fa.triggered_rule_ids, fa.plan_hash, fa.facts_hash) == \
               (fb.action, fb.triggered_rule_ids, fb.plan_hash, fb.facts_hash), f"plan {i}"


def _compile_thunk(m):
    rs, _ = _setup(m)
    texts = [r.rule_dsl for r in rs.rules]
    compile_rule = m.compile_rule

    def run():
        for t in texts:
            compile_rule(t)

    return run


def _rules_thunk(m):
    rs, plans = _setup(m)
    evals = [r.evaluate for r in rs.rules]
    pairs = [(p, _CTX[i % 3]) for i, p in enumerate(plans[:200])]

    def run():
        for p, c in pairs:
            for ev in evals:
                try:
                    ev(p, c)
                except Exception:
                    pass

    return run


def _ruleset_thunk(m):
    rs, plans = _setup(m)
    pairs = [(p, _CTX[i % 3]) for i, p in enumerate(plans)]
    evaluate = rs.evaluate

    def run():
        for p, c in pairs:
            evaluate(p, c)

    return run


def _tier_name(m) -> str:
    from lukhas_fast._backend import tier_modules

    return next(t for t, mod in tier_modules("ethics").items() if mod is m)


def _outcome(fn, plan, ctx):
    try:
        return bool(fn(plan, ctx))
    except Exception as exc:  # evaluation errors must match too
        return type(exc).__name__


_mixed_cache: Dict[str, Any] = {}


def _mixed_setup(m):
    """The family rules compiled on tier ``m`` and the mixed corpus, checked against the oracle."""
    key = m.__name__
    if key not in _mixed_cache:
        from lukhas_fast._backend import tier_modules

        ref = tier_modules("ethics")["python"]
        pairs = mixed_corpus()
        rules = [(fam, text, m.compile_rule(text)) for fam, text in FAMILY_RULES]
        for fam, text, fn in rules:
            want = ref.compile_rule(text)
            for i, (plan, ctx) in enumerate(pairs):
                a, b = _outcome(fn, plan, ctx), _outcome(want, plan, ctx)
                assert a == b, f"{m.__name__}: {text} differs from the oracle on mixed plan {i}: {a} != {b}"
        for path in (None, _safety_rules_path()):
            rs, rs_ref = m.load_ethics_rules(path, metrics=False), ref.load_ethics_rules(path, metrics=False)
            for i, (plan, ctx) in enumerate(pairs):
                fa, fb = rs.evaluate(plan, ctx), rs_ref.evaluate(plan, ctx)
                assert (fa.action, fa.triggered_rule_ids, fa.reasons, fa.plan_hash, fa.facts_hash) == \
                       (fb.action, fb.triggered_rule_ids, fb.reasons, fb.plan_hash, fb.facts_hash), f"mixed plan {i}"
        _mixed_cache[key] = (rules, pairs)
    return _mixed_cache[key]


def _safety_rules_path():
    from lukhas_fast.ethics import SAFETY_TAG_RULES_PATH

    return SAFETY_TAG_RULES_PATH


def _family_thunk(family):
    def make(m):
        rules, pairs = _mixed_setup(m)
        fns = [fn for fam, _t, fn in rules if fam == family]
        sample = pairs[:210]

        def run():
            for p, c in sample:
                for fn in fns:
                    try:
                        fn(p, c)
                    except Exception:
                        pass

        return run

    return make


def _pipeline_thunk(m):
    """enrich_plan (cache off) + evaluate_plan on the defaults and the safety-tag rules together."""
    from lukhas_fast._backend import tier_modules
    from lukhas_fast._bench.tags import corpus as tag_corpus

    tier = _tier_name(m)
    tags_mod = tier_modules("tags").get(tier)
    if tags_mod is None:
        return None
    rules = m.load_ethics_rules(None, metrics=False).rules + m.load_ethics_rules(_safety_rules_path(), metrics=False).rules
    engine = m.EthicsEngine(m.RuleSet(rules, metrics=False))
    enricher = tags_mod.SafetyTagEnricher(enable_caching=False)
    plans = tag_corpus()[:200]

    def run():
        for plan in plans:
            tagged = enricher.enrich_plan(plan, None)
            engine.evaluate_plan(dict(plan, safety_tags=tagged.tags), {"user_id": "u1"})

    return run


case("compile_rule (per bundled rule)", "ethics", _compile_thunk, ops=15)
case("EthicsRule.evaluate (per rule, bundled rules x 200 plans)", "ethics", _rules_thunk, ops=15 * 200)
case("RuleSet.evaluate (default rules, per plan, 1000 plans)", "ethics", _ruleset_thunk, ops=1000)
for _fam in FAMILIES:
    case(f"ethics {_fam} predicates (per rule, mixed tag shapes and URLs)", "ethics", _family_thunk(_fam),
         ops=210 * sum(1 for f, _t in FAMILY_RULES if f == _fam))
case("enrich_plan + evaluate_plan (defaults + tag rules, per plan)", "ethics", _pipeline_thunk, ops=200)


@measurement("Ethics rules per predicate family on the mixed corpus (every tag shape, repeated URLs)", "ethics")
def per_family_rule(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """One row per rule of :data:`FAMILY_RULES`: mean evaluation time per plan on each tier."""
    budget = 0.02 if quick else 0.1
    compiled = {tier: _mixed_setup(m)[0] for tier, m in mods.items()}
    pairs = _mixed_setup(next(iter(mods.values())))[1][:210]
    rows = []
    for idx, (fam, text) in enumerate(FAMILY_RULES):
        runs = {}
        for tier, rules in compiled.items():
            fn = rules[idx][2]

            def run(fn=fn):
                for p, c in pairs:
                    try:
                        fn(p, c)
                    except Exception:
                        pass

            runs[tier] = run
        vals = {t: v * 1e9 for t, v in time_thunks(runs, len(pairs), budget=budget).items()}  # tiers interleaved
        note = f"python/c {vals['python'] / vals['c']:.1f}x" if "c" in vals and "python" in vals else ""
        label = text if len(text) <= 70 else text[:67] + "..."
        rows.append(Row(f"[{fam}] {label}", vals, "ns", note))
    return rows


@measurement("Bundled rules: per-rule evaluation time on the 1,000-plan corpus", "ethics")
def per_rule(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """One row per bundled rule: mean evaluation time per plan on each tier."""
    budget = 0.02 if quick else 0.1
    sets = {tier: _setup(m)[0] for tier, m in mods.items()}
    plans = corpus()[:200]
    rows = []
    names = [r.name for r in next(iter(sets.values())).rules]
    for idx, name in enumerate(names):
        runs = {}
        for tier, rs in sets.items():
            ev = rs.rules[idx].evaluate

            def run(ev=ev):
                for i, p in enumerate(plans):
                    try:
                        ev(p, _CTX[i % 3])
                    except Exception:
                        pass

            runs[tier] = run
        vals = {t: v * 1e9 for t, v in time_thunks(runs, len(plans), budget=budget).items()}  # tiers interleaved
        note = f"python/c {vals['python'] / vals['c']:.1f}x" if "c" in vals and "python" in vals else ""
        rows.append(Row(name, vals, "ns", note))
    return rows
