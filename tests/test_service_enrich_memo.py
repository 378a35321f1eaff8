"""``POST /safety/enrich`` remembers, per request body, the enricher's cache key and the
plan's JSON (``Service.safety``): a repeat asks the enricher for that key, with the same
answer and the same counting as the hit it would have been; an entry the enricher no
longer has (evicted, cleared) takes the whole path."""

from __future__ import annotations

import json
import random

import msgpack
import pytest

pytest.importorskip("aiohttp")
from lukhas_fast.safety_tags import SafetyTag, SafetyTagCategory, SafetyTagDetector, SafetyTagEnricher  # noqa: E402
from lukhas_fast import service as svcmod  # noqa: E402
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402


def _bodies(n, seed=3):
    rng = random.Random(seed)
    pool = []
    for _ in range(12):
        plan = {"action": rng.choice(["send_email", "call_api", "pay", "read", "sudo rm"]),
                "params": {k: v for k, v in (("to", "a@b.com"), ("url", "https://api.x.io/v1"), ("amount", 12.5),
                                             ("card", "4111 1111 1111 1111"), ("model", "gpt-4o"))
                           if rng.random() < 0.5}}
        body = {"plan": plan}
        if rng.random() < 0.3:
            body["context"] = {"user_id": "u1", "region": rng.choice(["eu", "us"])}
        pool.append(json.dumps(body).encode())
    return [rng.choice(pool) for _ in range(n)]


def _no_ms(answer):
    a = json.loads(answer)
    a.pop("enrichment_time_ms")
    a["tagged_plan"].pop("enrichment_time_ms")
    return a


async def _service(aiohttp_client, cache_size, memo):
    client = await aiohttp_client(create_app(ServiceConfig(fps=200)))
    svc = client.app[SERVICE_KEY]
    svc.enricher = SafetyTagEnricher(enable_caching=True, cache_size=cache_size, metrics=False)
    if not memo:
        svc._enrich_memo.max_body = -1  # (admits nothing)
    return client, svc


async def _post(client, raw, ctype="application/json"):
    r = await client.post("/safety/enrich", data=raw, headers={"Content-Type": ctype})
    assert r.status == 200
    return await r.read()


@pytest.mark.parametrize("cache_size", [3, 1000])
async def test_remembered_bodies_answer_and_count_as_the_whole_path(aiohttp_client, cache_size, scaled):
    """The same random stream of repeated bodies through a service with the memo and one
    without: the same answers (but the times) and the same enricher counters after every
    request; with a 3-entry cache, remembered keys are evicted and re-enriched."""
    a, sa = await _service(aiohttp_client, cache_size, True)
    b, sb = await _service(aiohttp_client, cache_size, False)
    calls = []
    whole = sa.enricher.enrich_rendered
    sa.enricher.enrich_rendered = lambda *args: calls.append(1) or whole(*args)
    bodies = _bodies(scaled(300))
    for raw in bodies:
        got, want = await _post(a, raw), await _post(b, raw)
        assert _no_ms(got) == _no_ms(want)
        assert sa.enricher.get_stats() == sb.enricher.get_stats()
    remembered = [v for v in sa._enrich_memo.entries.values() if v]
    assert remembered and sb._enrich_memo.entries == {}
    assert all(type(key) is bytes and json.loads(plan) for key, plan, *_ in remembered)
    if cache_size == 1000:  # (12 distinct bodies: all but their first three sightings answered from the memo)
        assert len(calls) <= 3 * 12 < len(bodies)


async def test_a_cleared_cache_is_seen_at_once(aiohttp_client):
    client, svc = await _service(aiohttp_client, 1000, True)
    raw = b'{"plan": {"action": "x", "params": {"to": "a@b.com"}}}'
    for _ in range(4):
        first = json.loads(await _post(client, raw))
    assert len(svc._enrich_memo.entries[raw]) == 4 and first["tag_names"] == ["pii"]

    class Custom(SafetyTagDetector):
        def __init__(self):
            super().__init__("custom", SafetyTagCategory.RESOURCE_IMPACT, "custom")

        def detect(self, plan, context):
            return SafetyTag("custom", self.category, "c", 0.5) if plan.get("action") == "x" else None

    svc.enricher.add_detector(Custom())  # clears the enricher's cache
    misses = svc.enricher.get_stats()["cache_misses"]
    got = json.loads(await _post(client, raw))
    assert got["tag_names"] == ["custom", "pii"] and got["enrichment_context"] != {"cache_hit": True}
    assert svc.enricher.get_stats()["cache_misses"] == misses + 1


async def test_only_json_bodies_are_remembered(aiohttp_client):
    client, svc = await _service(aiohttp_client, 1000, True)
    raw = msgpack.packb({"plan": {"action": "x"}})
    for _ in range(4):
        await _post(client, raw, "application/msgpack")
    assert svc._enrich_memo.entries == {}
    svc.enricher = type("Other", (), {"enrich_rendered": SafetyTagEnricher().enrich_rendered})()
    for _ in range(3):  # an enricher without the memo's hooks: nothing remembered, nothing asked
        body = json.loads(await _post(client, b'{"plan": {"action": "y"}}'))
        assert body["tag_names"] == []
    assert not any(svc._enrich_memo.entries.values())


async def test_a_repeat_checks_its_media_type(aiohttp_client, monkeypatch):
    client, svc = await _service(aiohttp_client, 1000, True)
    raw = b'{"plan": {"action": "x", "params": {"to": "a@b.com"}}}'
    for _ in range(3):
        want = _no_ms(await _post(client, raw))
    key, plan_json, ctype, media = svc._enrich_memo.entries[raw]
    assert (ctype, media) == ("application/json", "application/json")
    asked = []
    hit = svc.enricher._rendered_hit
    monkeypatch.setattr(svc.enricher, "_rendered_hit", lambda *a: asked.append(1) or hit(*a), raising=False)
    # another spelling of the same media type: answered from the memo
    assert _no_ms(await _post(client, raw, "Application/JSON; charset=utf-8")) == want
    assert asked == [1]
    # a decoder registered since for the remembered media type: that decoder reads the body
    monkeypatch.setitem(svcmod.DECODERS, "application/json", lambda raw, cfg: {"plan": {"action": "y"}})
    got = json.loads(await _post(client, raw))
    assert asked == [1] and got["tag_names"] == []
