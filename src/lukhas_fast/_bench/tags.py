"""Benchmark rows of the safety-tags family (metrics off).

A realistic generated corpus of distinct plans; before anything is timed the
fast tier must give the oracle's tags on every plan (AssertionError otherwise).
"""

from __future__ import annotations

import random
from typing import Any, Dict, List

from lukhas_fast._bench.core import case

_ACTIONS = ["process_payment", "send_email", "call_api", "summarize_document", "switch_model", "read_file",
            "update_profile", "admin_override", "data_export", "transfer_funds", "search_web", "run_report"]
_UNICODE_WORDS = ["caf\u00e9", "M\u00fcller", "na\u00efve", "\u6771\u4eac", "\u00a1hola!", "\u2013", "S\u00e3o Paulo",
                  "\u00e9t\u00e9", "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435"]
_WORDS = ["please", "summarize", "the", "quarterly", "report", "for", "team", "meeting", "customer", "ticket",
          "update", "status", "draft", "reply", "schedule", "review", "notes", "project", "budget", "analysis"]


def corpus(n: int = 1000, seed: int = 11) -> List[Dict[str, Any]]:
    """Distinct plans: mostly ordinary text, with emails, phones, cards, URLs, model names and
    escalation/GDPR terms embedded in noise at realistic rates; about one plan in ten
    carries non-ASCII text (accented names, CJK, Cyrillic, typographic dashes)."""
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        words = rng.sample(_WORDS, 6)
        r = rng.random()
        if r < 0.15:
            words.insert(rng.randrange(6), f"user{i}@example.com")
        elif r < 0.25:
            words.insert(rng.randrange(6), f"555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}")
        elif r < 0.3:
            words.insert(rng.randrange(6), "https://api.partner.io/v2/items")
        elif r < 0.35:
            words.insert(rng.randrange(6), rng.choice(["gpt-4o", "claude", "tool call", "reranking"]))
        elif r < 0.4:
            words.insert(rng.randrange(6), rng.choice(["sudo", "root", "admin", "consent", "GDPR"]))
        if rng.random() < 0.1:
            words.insert(rng.randrange(len(words)), rng.choice(_UNICODE_WORDS))
        params: Dict[str, Any] = {"text": " ".join(words), "request_id": f"req-{i}", "priority": rng.randint(1, 5)}
        if rng.random() < 0.2:
            params["amount"] = round(rng.uniform(1, 500), 2)
        if rng.random() < 0.1:
            params["url"] = rng.choice(["https://api.openai.com/v1/chat", "http://internal.svc/health"])
        if rng.random() < 0.1:
            params["email"] = f"c{i}@corp.example"
        if rng.random() < 0.05:
            params["model"] = "gpt-4o"
        plan = {"action": rng.choice(_ACTIONS), "params": params}
        if rng.random() < 0.3:
            plan["description"] = " ".join(rng.sample(_WORDS, 5))
        plans.append(plan)
    return plans


_checked = set()


def _check(m, plans=None):
    """Every plan a row times must get the oracle's tags (names, categories,
    confidences, sources, metadata) on tier ``m``; AssertionError otherwise."""
    plans = corpus() if plans is None else plans
    token = (m.__name__, id(plans))
    if token in _checked:
        return
    from lukhas_fast._backend import tier_modules

    ref = tier_modules("tags")["python"].SafetyTagEnricher(enable_caching=False, advanced=False, metrics=False)
    fast = m.SafetyTagEnricher(enable_caching=False, advanced=False, metrics=False)
    for i, p in enumerate(plans):
        a = [(t.name, t.category, t.confidence, t.source, t.metadata) for t in fast.enrich_plan(p).tags]
        b = [(t.name, t.category, t.confidence, t.source, t.metadata) for t in ref.enrich_plan(p).tags]
        assert a == b, f"{m.__name__}: tags differ from the oracle on corpus plan {i}: {p!r}"
    _checked.add(token)


def _no_cache(m):
    _check(m)
    e = m.SafetyTagEnricher(enable_caching=False, advanced=False, metrics=False)
    plans = corpus()
    enrich = e.enrich_plan

    def run():
        for p in plans:
            enrich(p)

    return run


_POOL: List[Dict[str, Any]] = []
_SEQ: List[Dict[str, Any]] = []


def _repeat_sequence() -> List[Dict[str, Any]]:
    """1,000 calls: 80 % repeat one of the 200 most recent plans (hits), 20 % are new (misses)."""
    if not _SEQ:
        rng = random.Random(3)
        pool = corpus(5000, seed=5)
        fresh = 0
        for _ in range(1000):
            if rng.random() < 0.8 and fresh:
                _SEQ.append(pool[rng.randrange(max(0, fresh - 200), fresh)])
            else:
                _SEQ.append(pool[fresh])
                fresh += 1
        _POOL.extend(pool[:fresh])
    return _SEQ


def _cache_80(m):
    """80 % of calls repeat one of 200 recent plans (hits); 20 % are new (misses)."""
    seq = _repeat_sequence()
    _check(m)
    _check(m, _POOL)

    def run():
        e = m.SafetyTagEnricher(enable_caching=True, advanced=False, metrics=False)
        enrich = e.enrich_plan
        for p in seq:
            enrich(p)

    return run


def _hit(m):
    _check(m)
    e = m.SafetyTagEnricher(enable_caching=True, advanced=False, metrics=False)
    plans = corpus()[:100]
    for p in plans:
        e.enrich_plan(p)
    enrich = e.enrich_plan

    def run():
        for p in plans:
            enrich(p)

    return run


case("SafetyTagEnricher.enrich_plan, cache off (per plan, 1000 distinct plans)", "tags", _no_cache, ops=1000)
case("SafetyTagEnricher.enrich_plan, cache on, 80% repeats (per plan)", "tags", _cache_80, ops=1000)
def _reference_hit():
    """The reference's hit path on the same 100 plans, for the ``ref-hit``
    column: normalise the plan (the reference's normaliser, from our
    pure-Python tier), take a plain ``threading.Lock``, SHA-256 key of
    str(sorted pairs), dict lookup, ``TaggedPlan`` around the cached list
    object itself (the reference aliases it)."""
    import threading
    import time

    from lukhas_fast._backend import tier_modules

    py = tier_modules("tags")["python"]
    e = py.SafetyTagEnricher(enable_caching=False, advanced=False, metrics=False)
    preprocess, key_of, tagged = e.preprocess_plan, e._generate_cache_key, py.TaggedPlan
    plans = corpus()[:100]
    cache = {key_of(preprocess(p), {}): e.enrich_plan(p).tags for p in plans}
    lock = threading.Lock()
    state = {"hits": 0}

    def enrich(plan, context=None):
        start = time.perf_counter()
        context = context or {}
        normalized = preprocess(plan)
        with lock:
            key = key_of(normalized, context)
            if key in cache:
                state["hits"] += 1
                return tagged(plan, cache[key], (time.perf_counter() - start) * 1000.0, {"cache_hit": True})
            raise AssertionError("reference hit path missed")

    def run():
        for p in plans:
            enrich(p)

    return run


case("SafetyTagEnricher.enrich_plan, cache hit (per plan)", "tags", _hit, ops=100,
     peers={"ref-hit": _reference_hit})


# --- hostile input (issue 13): the worst cases beside an ordinary plan -----------------------

def worst_case_plan(size: int = 1 << 20) -> Dict[str, Any]:
    """A plan of about ``size`` characters made of the hand-built worst cases of
    issue 13: a whitespace run before ``x at y`` (and before ``x dot y``), the
    email pattern's long local part / long domain with a non-ASCII character
    (the C tier's non-ASCII path), many ``@`` and many ``http://``."""
    q = max(size // 6, 16)
    return {"action": "x", "params": {
        "at": " " * q + "x at y",
        "dot": "\t" * q + "x dot y",
        "email": "a." * (q // 6) + "@" + "b" * (q // 3) + "\u0130",
        "ats": "a@" * (q // 2),
        "urls": "http://" * (q // 7),
        "mixed": "\u3000" * (q // 2) + " at " + "a." * (q // 4),
    }}


def _ordinary_plan() -> Dict[str, Any]:
    return corpus(1)[0]


def _oracle_tags():
    from lukhas_fast._backend import tier_modules

    return tier_modules("tags")["python"]


def _single(plan_fn, advanced=False, caching=False):
    """One plan per call (cache off; with ``caching``, a fresh enricher per call,
    so that every call is a miss that keys the plan); the tier must give the
    oracle's tags first."""

    def tier(m):
        plan = plan_fn()
        ref = _oracle_tags().SafetyTagEnricher(enable_caching=False, advanced=advanced, metrics=False)
        e = m.SafetyTagEnricher(enable_caching=False, advanced=advanced, metrics=False)
        a = [(t.name, t.confidence, t.metadata) for t in e.enrich_plan(plan).tags]
        b = [(t.name, t.confidence, t.metadata) for t in ref.enrich_plan(plan).tags]
        assert a == b, f"{m.__name__}: tags differ from the oracle on a worst-case plan"
        enrich = e.enrich_plan
        if caching:
            make = m.SafetyTagEnricher

            def run_miss():
                make(enable_caching=True, advanced=advanced, metrics=False).enrich_plan(plan)

            return run_miss

        def run():
            enrich(plan)

        return run

    return tier


case("SafetyTagEnricher.enrich_plan, cache off, one ordinary plan (per plan)", "tags", _single(_ordinary_plan),
     ops=1)
case("SafetyTagEnricher.enrich_plan, cache off, worst-case plan 60 KB (per plan)", "tags",
     _single(lambda: worst_case_plan(60_000)), ops=1)
case("SafetyTagEnricher.enrich_plan, cache off, worst case: whitespace run before 'x at y', 60 KB (per plan)",
     "tags", _single(lambda: {"action": "x", "params": {"v": " " * 60000 + "x at y"}}), ops=1)
case("SafetyTagEnricher.enrich_plan, cache off, worst case: email local part/domain + U+0130, 120 KB (per plan)",
     "tags", _single(lambda: {"action": "x", "params": {"v": "a." * 30000 + "@" + "b" * 60000 + "\u0130"}}), ops=1)
case("SafetyTagEnricher.enrich_plan, cache off, worst-case plan 1 MiB (per plan)", "tags",
     _single(lambda: worst_case_plan(1 << 20)), ops=1)
case("SafetyTagEnricher.enrich_plan, cache on (miss), worst-case plan 1 MiB (per plan)", "tags",
     _single(lambda: worst_case_plan(1 << 20), caching=True), ops=1)
case("SafetyTagEnricher.enrich_plan, cache off, advanced, worst-case plan 60 KB (per plan)", "tags",
     _single(lambda: {"action": "x", "description": worst_case_plan(60_000)["params"]["at"],
                      "params": dict(worst_case_plan(60_000)["params"], content="a" + " " * 20000 + "@ b.cc")},
             advanced=True), ops=1)
