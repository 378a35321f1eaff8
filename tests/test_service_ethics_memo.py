"""``POST /ethics/evaluate`` remembers evaluations per request body (``Service.ethics``): a
remembered answer is the one a new evaluation gives, recorded the same way (audit entry,
metrics), bounded, and forgotten when the rules change; impure rule sets, ``enrich`` and
non-JSON bodies are never remembered."""

from __future__ import annotations

import json
import random

import msgpack
import pytest

pytest.importorskip("aiohttp")
from lukhas_fast import service as svcmod  # noqa: E402
from lukhas_fast.ethics import EthicsAction, EthicsEngine, EthicsRule, Priority, RuleSet, load_ethics_rules  # noqa: E402
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402


class _Recorder:
    """Stands in for a rule set's metrics: records what an evaluation counts."""

    enabled = True

    def __init__(self):
        self.calls = []

    def fired_all(self, fires):
        self.calls.append(("fired", tuple(fires)))

    def evaluated(self, action, ms):
        self.calls.append(("evaluated", action))


async def _client(aiohttp_client, monkeypatch, rule_set=None):
    engine = EthicsEngine(rule_set or load_ethics_rules(None, metrics=False))
    monkeypatch.setattr(svcmod, "get_ethics_engine", lambda: engine)
    client = await aiohttp_client(create_app(ServiceConfig(fps=200)))
    return client, engine, client.app[SERVICE_KEY]


def _plans(n, seed=17):
    rng = random.Random(seed)
    actions = ["delete_user_data", "read", "external_call", "send_email", "debug", "rm -rf", "impersonate_user"]
    for _ in range(n):
        params = {}
        for key, values in (("email", ["a@b.com", "nobody"]), ("url", ["https://api.x.io", "http://evil.tk/a"]),
                            ("batch_size", [1, 500, 5000]), ("estimated_time_seconds", [1, 120, 900]),
                            ("estimated_memory_mb", [1, 4096]), ("body", ["quarterly", "hack the planet"])):
            if rng.random() < 0.4:
                params[key] = rng.choice(values)
        plan = {"action": rng.choice(actions), "params": params}
        context = {"user_id": "u1"} if rng.random() < 0.5 else None
        yield {"plan": plan, **({"context": context} if context else {})}


def _without_ms(d):
    return {k: v for k, v in d.items() if k != "evaluation_time_ms"}


async def _post(client, raw, ctype="application/json"):
    r = await client.post("/ethics/evaluate", data=raw, headers={"Content-Type": ctype})
    assert r.status == 200
    return await r.read()


async def test_remembered_answers_equal_new_evaluations_and_are_recorded_alike(aiohttp_client, monkeypatch, scaled):
    client, engine, svc = await _client(aiohttp_client, monkeypatch)
    rs = engine.rule_set
    fresh = load_ethics_rules(None, metrics=False)  # evaluates every plan anew
    rec = _Recorder()
    monkeypatch.setattr(rs, "_metrics", rec)
    evaluations = []
    full = engine._evaluate_plan_entry
    monkeypatch.setattr(engine, "_evaluate_plan_entry", lambda p, c=None: evaluations.append(p) or full(p, c))
    seen = set()
    for body in _plans(scaled(60)):
        raw = json.dumps(body).encode()
        if raw in seen:
            continue
        seen.add(raw)
        want = fresh.evaluate(body["plan"], body.get("context"))
        answers = []
        for i in range(3):
            before, calls = len(engine.evaluation_history), len(rec.calls)
            answers.append(await _post(client, raw))
            assert len(engine.evaluation_history) == before + 1
            entry = engine.evaluation_history[-1]
            assert list(entry) == ["timestamp", "plan_hash", "facts_hash", "action", "triggered_rules",
                                   "reason_codes", "evaluation_time_ms", "reasons", "ruleset_hash"]
            assert entry["plan_hash"] == want.plan_hash and entry["facts_hash"] == want.facts_hash
            assert entry["triggered_rules"] == want.triggered_rule_ids and entry["reasons"] == want.reasons
            assert entry["reason_codes"] == want.reason_codes and entry["action"] == want.action.value
            assert entry["ruleset_hash"] == rs.ruleset_hash
            fires = tuple((r.name, r.action.value) for r in want.triggered_rules)
            assert rec.calls[calls:] == ([("fired", fires)] if fires else []) + [("evaluated", want.action.value)]
            # seen once: marked; twice: remembered; the third time answered from it
            assert svc._ethics_memo.entries[raw] == () if i == 0 else len(svc._ethics_memo.entries[raw]) == 5
            assert len(evaluations) == (1, 2, 2)[i]
            if i:
                assert entry["triggered_rules"] is not engine.evaluation_history[-2]["triggered_rules"]
        evaluations.clear()
        got = [json.loads(a) for a in answers]
        assert _without_ms(got[0]) == _without_ms(got[1]) == _without_ms(got[2])
        assert _without_ms(got[0]) == {"action": want.action.value, "reasons": want.reasons,
                                       "reason_codes": want.reason_codes, "triggered_rules": want.triggered_rule_ids,
                                       "plan_hash": want.plan_hash, "facts_hash": want.facts_hash, "safety_tags": None}
        assert all(isinstance(g["evaluation_time_ms"], float) for g in got)
        # the remembered answer's bytes are those of encoding it whole
        assert answers[2] == svcmod._dumps(got[2])
    assert set(svc._ethics_memo.entries) == seen


async def test_rule_changes_are_seen_at_once(aiohttp_client, monkeypatch):
    rule = EthicsRule("warn_x", "d", 'equals(action, "x")', EthicsAction.WARN, Priority.LOW)
    client, engine, svc = await _client(aiohttp_client, monkeypatch, RuleSet([rule], metrics=False))
    raw = b'{"plan": {"action": "x"}}'
    assert json.loads(await _post(client, raw))["triggered_rules"] == ["warn_x"]
    assert json.loads(await _post(client, raw))["triggered_rules"] == ["warn_x"]
    rule.name = "renamed"  # a rule changed in place
    assert json.loads(await _post(client, raw))["reasons"] == ["warn: renamed"]
    engine.rule_set.rules.append(EthicsRule("b", "d", 'equals(action, "x")', EthicsAction.BLOCK, Priority.HIGH))
    assert json.loads(await _post(client, raw))["action"] == "block"  # the list edited in place
    engine.rule_set = RuleSet([EthicsRule("a", "d", "is_present(action)", EthicsAction.ALLOW, Priority.LOW)],
                              metrics=False)  # another rule set
    body = json.loads(await _post(client, raw))
    assert body["triggered_rules"] == ["a"] and engine.evaluation_history[-1]["ruleset_hash"] == engine.rule_set.ruleset_hash


async def test_what_is_never_remembered(aiohttp_client, monkeypatch):
    class Custom(EthicsRule):
        def evaluate(self, plan, context=None):
            return True

    plain = EthicsRule("w", "d", 'equals(action, "x")', EthicsAction.WARN, Priority.LOW)
    custom = Custom("c", "d", 'equals(action, "y")', EthicsAction.WARN, Priority.LOW)
    client, engine, svc = await _client(aiohttp_client, monkeypatch, RuleSet([plain, custom], metrics=False))
    assert engine.rule_set._memo_token() is None
    await _post(client, b'{"plan": {"action": "x"}}')
    assert svc._ethics_memo.entries == {}
    engine.rule_set = RuleSet([plain], metrics=False)
    await _post(client, b'{"plan": {"action": "x"}, "enrich": true}')  # enriched: the tags come from the enricher
    await _post(client, msgpack.packb({"plan": {"action": "x"}}), "application/msgpack")
    big = json.dumps({"plan": {"action": "x", "pad": "p" * svc._ethics_memo.max_body}}).encode()
    await _post(client, big)
    assert svc._ethics_memo.entries == {}
    raw = b'{"plan": {"action": "x"}}'
    await _post(client, raw)
    assert list(svc._ethics_memo.entries) == [raw]
    # the same bytes sent as msgpack's media type are not a JSON body: decoded as such (400 here)
    r = await client.post("/ethics/evaluate", data=raw, headers={"Content-Type": "application/msgpack"})
    assert r.status == 400


async def test_the_memo_is_bounded(aiohttp_client, monkeypatch):
    client, engine, svc = await _client(aiohttp_client, monkeypatch)
    svc._ethics_memo.limit = 4
    for i in range(11):
        await _post(client, json.dumps({"plan": {"action": "read", "n": i}}).encode())
        assert 1 <= len(svc._ethics_memo.entries) <= 4


async def test_a_repeat_checks_its_media_type_and_records_in_the_current_engine(aiohttp_client, monkeypatch):
    client, engine, svc = await _client(aiohttp_client, monkeypatch)
    raw = b'{"plan": {"action": "external_call"}}'
    for _ in range(2):
        await _post(client, raw)
    assert len(svc._ethics_memo.entries[raw]) == 5
    replays = []
    monkeypatch.setattr(svcmod.Service, "_remember_ethics", lambda *a: None)  # keep the entry as it is
    entry = svc._ethics_memo.entries[raw]
    svc._ethics_memo.entries[raw] = (lambda e: replays.append(e) or entry[0](e),) + entry[1:]
    # another spelling of the same media type: answered from the memo
    want = _without_ms(json.loads(await _post(client, raw)))
    assert _without_ms(json.loads(await _post(client, raw, "Application/JSON; charset=utf-8"))) == want
    assert replays == [engine, engine]
    # a decoder registered since for the remembered media type: that decoder reads the body
    monkeypatch.setitem(svcmod.DECODERS, "application/json", lambda raw, cfg: {"plan": {"action": "read"}})
    got = json.loads(await _post(client, raw))
    assert len(replays) == 2 and got["action"] == "allow" and got["reasons"] == ["allow: no_rules_triggered"]
    monkeypatch.undo()
    # another engine on the same rule set: the repeat is recorded there, not in the first one
    other = EthicsEngine(engine.rule_set)
    svc.engine = other
    before = len(engine.evaluation_history)
    assert _without_ms(json.loads(await _post(client, raw))) == want
    assert len(engine.evaluation_history) == before and len(other.evaluation_history) == 1
    assert other.evaluation_history[0]["plan_hash"] == want["plan_hash"]


async def test_repeats_keep_the_history_bound(aiohttp_client, monkeypatch):
    client, engine, svc = await _client(aiohttp_client, monkeypatch)
    monkeypatch.setattr(engine, "HISTORY", 3)
    raw = b'{"plan": {"action": "read"}}'
    for n in range(1, 7):
        await _post(client, raw)
        assert len(engine.evaluation_history) == min(n, 3)
    kept = list(engine.evaluation_history)
    monkeypatch.setattr(engine, "HISTORY", 1)  # lowered: a repeat trims all that is over at once
    await _post(client, raw)
    assert len(engine.evaluation_history) == 1 and all(engine.evaluation_history[0] is not e for e in kept)
