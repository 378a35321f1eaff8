"""Benchmark rows of the ethics family (metrics off).

The corpus is 1,000 generated plans that exercise every bundled rule; before
anything is timed, every tier must give the oracle's result for every rule on
every plan (an AssertionError otherwise).
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Mapping

from lukhas_fast._bench.core import Row, case, measurement, time_thunk

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


case("compile_rule (per bundled rule)", "ethics", _compile_thunk, ops=15)
case("EthicsRule.evaluate (per rule, bundled rules x 200 plans)", "ethics", _rules_thunk, ops=15 * 200)
case("RuleSet.evaluate (default rules, per plan, 1000 plans)", "ethics", _ruleset_thunk, ops=1000)


@measurement("Bundled rules: per-rule evaluation time on the 1,000-plan corpus", "ethics")
def per_rule(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """One row per bundled rule: mean evaluation time per plan on each tier."""
    budget = 0.02 if quick else 0.1
    sets = {tier: _setup(m)[0] for tier, m in mods.items()}
    plans = corpus()[:200]
    rows = []
    names = [r.name for r in next(iter(sets.values())).rules]
    for idx, name in enumerate(names):
        vals = {}
        for tier, rs in sets.items():
            ev = rs.rules[idx].evaluate

            def run(ev=ev):
                for i, p in enumerate(plans):
                    try:
                        ev(p, _CTX[i % 3])
                    except Exception:
                        pass

            vals[tier] = time_thunk(run, len(plans), budget=budget) * 1e9
        note = f"python/c {vals['python'] / vals['c']:.1f}x" if "c" in vals and "python" in vals else ""
        rows.append(Row(name, vals, "ns", note))
    return rows
