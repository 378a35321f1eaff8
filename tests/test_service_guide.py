"""The integration guide's ProductionConsciousnessService contract (tutorial 4), route by route:
a client that sends only the guide's bodies and reads only the guide's fields and metric names
works against the service, and the numbers come from the live state."""

from __future__ import annotations

import asyncio
import logging
import math
import re

import pytest

pytest.importorskip("aiohttp")
from lukhas_fast.drift import LANE_CFG, DriftMonitor  # noqa: E402
from lukhas_fast.safety_tags import SafetyTagEnricher  # noqa: E402
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(create_app(ServiceConfig(fps=200)))


def _delta(before: str, after: str):
    """``delta(name, labels)``: how much a Prometheus sample grew from ``before`` to ``after``."""
    return lambda name, labels="": _sample(after, name, labels) - _sample(before, name, labels)


def _sample(text: str, name: str, labels: str = "") -> float:
    """Value of one Prometheus sample (0 if absent)."""
    m = re.search(r"^" + re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)$",
                  text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_drift_guide_body_default_lane_is_production(client):
    ref = DriftMonitor("production", metrics=False)
    bodies = [([1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]), ([1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]),
              ([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0])]
    for intent, action in bodies:
        r = await client.post("/drift/analyze", json={"intent_vector": intent, "action_vector": action})
        got = await r.json()
        want = ref.update(intent, action)
        assert r.status == 200, got
        assert set(got) == {"lane", "drift", "ema", "guardian", "n"}
        assert got["lane"] == "production" and got["guardian"] == want["guardian"] and got["n"] == want["n"]
        assert got["drift"] == pytest.approx(want["drift"], abs=1e-12)
        assert got["ema"] == pytest.approx(want["ema"], abs=1e-12)
    # production has prod's strict thresholds (the guide's intent), not experimental's
    assert LANE_CFG["production"].block_threshold == LANE_CFG["prod"].block_threshold
    # our names still work, and a configured default lane applies
    r = await client.post("/drift/analyze", json={"intent": [1.0, 0.0], "action": [1.0, 0.0], "lane": "candidate"})
    assert (await r.json())["lane"] == "candidate"


async def test_configured_default_lane(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(fps=200, default_lane="experimental")))
    r = await client.post("/drift/analyze", json={"intent_vector": [1.0, 0.0], "action_vector": [0.0, 1.0]})
    assert (await r.json())["lane"] == "experimental"


async def test_drift_guide_body_errors_name_the_field(client):
    r = await client.post("/drift/analyze", json={"intent_vector": [1.0, 2.0], "action_vector": [1.0]})
    body = await r.json()
    assert r.status == 400 and body["field"] == "action" and body["request_id"]
    r = await client.post("/drift/analyze", json={"intent_vector": [1.0, 2.0]})
    assert r.status == 400 and (await r.json())["field"] == "action"


async def test_consciousness_guide_types(client):
    for kind, keys in [
        ("state_analysis", {"consciousness_state", "awareness_level", "coherence_score", "system_health", "timestamp"}),
        ("coherence_check", {"coherence_status", "coherence_score", "components_synchronized", "drift_within_limits",
                             "timestamp"}),
        ("anything_else", {"analysis", "timestamp"}),
    ]:
        r = await client.post("/consciousness/analyze", json={"type": kind})
        body = await r.json()
        assert r.status == 200 and keys <= set(body), (kind, body)
    r = await client.post("/consciousness/analyze", json={})  # no type: general, as in the guide
    body = await r.json()
    assert r.status == 200 and body["analysis"] == "general_consciousness_ok"
    # frame submission keeps working
    r = await client.post("/consciousness/analyze", json={"frame": {"awareness": 0.7}, "priority": 3})
    assert r.status == 200 and (await r.json())["accepted"] is True
    r = await client.post("/consciousness/analyze", json={"type": 5})
    assert r.status == 400 and (await r.json())["field"] == "type"


async def test_consciousness_numbers_follow_the_live_state(aiohttp_client):
    """No placeholders: awareness = rate ratio x (1 - drop rate); coherence = (1 - min(1, ema / block)) x
    (1 - subscriber error fraction); drift_within_limits = ema < warn."""
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False, ring_capacity=10)))
    svc = client.app[SERVICE_KEY]
    r = await client.post("/consciousness/analyze", json={"type": "state_analysis"})
    body = await r.json()
    assert body["awareness_level"] == 1.0 and body["coherence_score"] == 1.0 and body["consciousness_state"] == "active"
    # drops in the ring lower the awareness level
    for i in range(40):
        await client.post("/consciousness/analyze", json={"frame": {"i": i}})
    stats = svc.ring.get_backpressure_stats()
    assert stats["total_drops"] > 0
    body = await (await client.post("/consciousness/analyze", json={"type": "state_analysis"})).json()
    assert body["awareness_level"] == pytest.approx(1.0 - stats["drop_rate"], abs=1e-12)
    assert body["awareness_level"] < 1.0
    # drift in the default (production) lane lowers coherence and leaves the limits
    cfg = LANE_CFG["production"]
    for _ in range(3):
        await client.post("/drift/analyze", json={"intent_vector": [1.0, 0.0], "action_vector": [0.0, 1.0]})
    ema = svc.monitors["production"].ema
    body = await (await client.post("/consciousness/analyze", json={"type": "coherence_check"})).json()
    assert body["coherence_score"] == pytest.approx(1.0 - min(1.0, ema / cfg.block_threshold), abs=1e-12)
    assert body["drift_within_limits"] is (ema < cfg.warn_threshold) is False
    assert body["coherence_status"] == ("drifting" if ema < cfg.block_threshold else "unstable")
    stats = svc.ring.get_backpressure_stats()
    assert body["components_synchronized"] is (stats["utilization"] < stats["pressure_threshold"])
    m = await (await client.get("/metrics")).json()
    assert m["drift_monitor"] == {"current_ema": ema, "lane": "production", "total_analyses": 3, "window": 3}


@pytest.mark.parametrize("body", [{}, {"plan": None}, {"context": {"lane": "production"}}])
async def test_safety_without_a_plan_enriches_the_empty_plan(client, body):
    # the guide's service reads data.get("plan", {})
    r = await client.post("/safety/enrich", json=body)
    got = await r.json()
    assert r.status == 200
    assert got["tagged_plan"]["original_plan"] == {}
    want = SafetyTagEnricher(enable_caching=False).enrich_plan({}, body.get("context"))
    assert got["tag_names"] == sorted(t.name for t in want.tags)


async def test_safety_guide_tagged_plan(client):
    plan = {"action": "export_data", "params": {"email": "user@example.com", "data_type": "personal_information"},
            "description": "Export user personal data for GDPR request"}
    context = {"user_id": "user456", "source": "user_request"}
    r = await client.post("/safety/enrich", json={"plan": plan, "context": context})
    body = await r.json()
    assert r.status == 200
    tp = body["tagged_plan"]
    assert tp["original_plan"] == plan and isinstance(tp["enrichment_time_ms"], float)
    want = SafetyTagEnricher(enable_caching=False).enrich_plan(plan, context)
    assert [(t["name"], t["category"], t["confidence"], t["description"]) for t in tp["tags"]] == [
        (t.name, t.category.value, t.confidence, t.description) for t in want.tags]
    assert tp["tags"] and set(tp["tags"][0]) == {"name", "category", "confidence", "description"}
    assert sorted(body["tag_names"]) == sorted(t.name for t in want.tags)  # ours beside the guide's


async def test_health_guide_fields_and_503_when_the_ticker_stops(client):
    r = await client.get("/health")
    body = await r.json()
    assert r.status == 200 and body["status"] == "healthy" and body["uptime_seconds"] >= 0
    assert set(body["components"]) >= {"consciousness_ticker", "drift_monitor", "safety_enricher"}
    f = body["metrics"]["health_factors"]
    assert body["metrics"]["consciousness_health"] == pytest.approx((f["service"] + f["ticker"] + f["drift"] + f["ring"]) / 4)
    svc = client.app[SERVICE_KEY]
    svc.ticker.stop()
    await asyncio.wait_for(svc._ticker_task, 5)
    r = await client.get("/health")
    body = await r.json()
    assert r.status == 503 and body["status"] == "unhealthy"
    assert body["components"]["consciousness_ticker"] == "stopped"
    assert body["metrics"]["health_factors"]["ticker"] == 0.0
    body = await (await client.post("/consciousness/analyze", json={"type": "state_analysis"})).json()
    assert body["consciousness_state"] == "stopped" and body["awareness_level"] == 0.0
    r = await client.get("/livez")
    assert r.status == 200 and (await r.json()) == {"status": "alive"}


async def test_health_503_when_the_ticker_stalls(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(fps=100, stall_seconds=0.2)))
    svc = client.app[SERVICE_KEY]
    assert (await client.get("/health")).status == 200
    # a subscriber that blocks the ticker's loop for 0.4 s: while it runs nothing answers, and the
    # first health check after it sees no tick for > 0.2 s only if the ticker does not recover
    svc.ticker.unsubscribe(svc._on_tick)  # ticks still run but are no longer recorded: the service sees none
    await asyncio.sleep(0.4)
    r = await client.get("/health")
    body = await r.json()
    assert r.status == 503 and body["components"]["consciousness_ticker"] == "stalled"
    svc.ticker.subscribe(svc._on_tick)
    await asyncio.sleep(0.1)
    assert (await client.get("/health")).status == 200


async def test_readyz_and_health_during_shutdown(client):
    assert (await client.get("/readyz")).status == 200
    svc = client.app[SERVICE_KEY]
    await svc.on_shutdown(client.app)  # what serve() runs on SIGTERM
    r = await client.get("/readyz")
    assert r.status == 503 and (await r.json())["status"] == "not_ready"
    r = await client.get("/health")
    assert r.status == 503 and (await r.json())["components"]["service"] == "not_ready"
    assert (await client.get("/livez")).status == 200


async def test_metrics_guide_keys(client):
    await client.post("/safety/enrich", json={"plan": {"action": "x", "params": {"email": "a@b.com"}}})
    await asyncio.sleep(0.05)
    m = await (await client.get("/metrics")).json()
    assert set(m["consciousness_ticker"]) >= {"fps", "buffer_utilization", "frames_processed"}
    assert m["consciousness_ticker"]["fps"] == 200 and m["consciousness_ticker"]["frames_processed"] > 0
    assert m["drift_monitor"] == {"current_ema": 0.0, "lane": "production", "total_analyses": 0, "window": 0}
    svc = client.app[SERVICE_KEY]
    stats = svc.enricher.get_stats()
    assert m["safety_enricher"]["cache_misses"] == stats["cache_misses"] == 1
    assert set(m) >= {"ticker", "ring", "drift", "enricher", "engine", "backend"}  # ours too


async def test_prometheus_guide_metrics(client):
    before = await (await client.get("/metrics/prometheus")).text()
    await client.post("/drift/analyze", json={"intent_vector": [1.0, 0.0], "action_vector": [1.0, 0.0]})
    await client.post("/drift/analyze", json={"intent_vector": [1.0, 0.0], "action_vector": [1.0]})
    await client.post("/safety/enrich", json={"plan": {"action": "read"}})
    await client.get("/health")
    text = await (await client.get("/metrics/prometheus")).text()

    delta = _delta(before, text)

    assert delta("consciousness_requests_total", 'endpoint="analyze_drift",status="success"') == 1
    assert delta("consciousness_requests_total", 'endpoint="analyze_drift",status="error"') == 1
    assert delta("consciousness_requests_total", 'endpoint="enrich_safety",status="success"') == 1
    assert delta("consciousness_request_duration_seconds_count", 'endpoint="analyze_drift"') == 2
    assert 0.0 < _sample(text, "consciousness_system_health") <= 1.0
    assert "lukhas_service_requests_total" in text  # ours beside the guide's


async def test_prometheus_ethics_metrics_counted_while_serving(aiohttp_client, monkeypatch):
    """While the app runs the ethics engine counts into deques (one append per evaluation)
    flushed with the request metrics: a scrape right after the requests sees every count;
    after the app stops, the engine counts directly again."""
    pytest.importorskip("prometheus_client")
    from lukhas_fast import service as svcmod
    from lukhas_fast.ethics import EthicsEngine, load_ethics_rules

    engine = EthicsEngine(load_ethics_rules(None, metrics=True))  # (the shared one may have metrics off)
    monkeypatch.setattr(svcmod, "get_ethics_engine", lambda: engine)
    client = await aiohttp_client(create_app(ServiceConfig(fps=200)))
    svc = client.app[SERVICE_KEY]
    em = svc.engine.rule_set._metrics
    assert svc.engine is engine and em.enabled
    assert "evaluated" in vars(em)  # deferred while the app runs
    before = await (await client.get("/metrics/prometheus")).text()
    for plan in ({"action": "delete_user_data"}, {"action": "send_email"}, {"action": "send_email"}):
        assert (await client.post("/ethics/evaluate", json={"plan": plan})).status == 200
    assert len(em._pending_evals) == 3  # not counted yet ...
    text = await (await client.get("/metrics/prometheus")).text()  # ... but flushed before the scrape

    delta = _delta(before, text)

    assert delta("ethics_evaluations_total", 'result="block"') == 1
    assert delta("ethics_evaluations_total", 'result="allow"') == 2
    assert delta("ethics_rule_hits_total", 'action="block",rule_name="block_harmful_actions"') == 1
    assert delta("ethics_evaluation_ms_count", "") == 3
    await client.close()
    assert "evaluated" not in vars(em) and not em._pending_evals


async def test_request_id_echoed_generated_and_in_error_bodies_and_access_log(aiohttp_client, caplog):
    client = await aiohttp_client(create_app(ServiceConfig(fps=200, access_log=True)))
    r = await client.get("/health", headers={"X-Request-ID": "req-123"})
    assert r.headers["X-Request-ID"] == "req-123"
    a = (await client.get("/livez")).headers["X-Request-ID"]
    b = (await client.get("/livez")).headers["X-Request-ID"]
    assert a and b and a != b
    with caplog.at_level(logging.INFO, logger="lukhas_fast.service.access"):
        r = await client.post("/drift/analyze", data=b"{", headers={"X-Request-ID": "bad-body-1"})
        body = await r.json()
    assert r.status == 400 and body["request_id"] == "bad-body-1" and r.headers["X-Request-ID"] == "bad-body-1"
    rec = [x for x in caplog.records if getattr(x, "request_id", None) == "bad-body-1"]
    assert len(rec) == 1 and rec[0].status == 400 and rec[0].path == "/drift/analyze"
    # an invalid id (spaces, too long) is replaced, not echoed
    r = await client.get("/livez", headers={"X-Request-ID": "has space"})
    assert r.headers["X-Request-ID"] != "has space"
    r = await client.get("/nope")
    assert r.status == 404 and (await r.json())["request_id"] == r.headers["X-Request-ID"]


async def test_guide_client_end_to_end(client):
    """The guide's calls, in order, reading only the guide's fields."""
    h = await (await client.get("/health")).json()
    assert h["status"] == "healthy" and h["components"]["drift_monitor"] == "active"
    d = await (await client.post("/drift/analyze", json={"intent_vector": [1.0, 0.0, 0.0, 0.0],
                                                         "action_vector": [1.0, 1.0, 0.0, 0.0]})).json()
    assert d["guardian"] in ("allow", "warn", "block") and math.isfinite(d["ema"])
    s = await (await client.post("/safety/enrich", json={"plan": {"action": "send_email",
                                                                  "params": {"to": "a@b.com"}}})).json()
    assert [t["name"] for t in s["tagged_plan"]["tags"]] == ["pii"]
    c = await (await client.post("/consciousness/analyze", json={"type": "coherence_check"})).json()
    assert c["drift_within_limits"] is (d["ema"] < 0.15)
    m = await (await client.get("/metrics")).json()
    assert m["drift_monitor"]["current_ema"] == d["ema"] and m["drift_monitor"]["lane"] == "production"


async def test_ethics_answer_reason_codes_and_an_engine_with_its_own_evaluate_plan(aiohttp_client, monkeypatch):
    """The answer's reason codes are the audit entry's; an engine whose ``evaluate_plan``
    was replaced on the instance is still asked through it."""
    from lukhas_fast import service as svcmod
    from lukhas_fast.ethics import EthicsEngine, load_ethics_rules

    engine = EthicsEngine(load_ethics_rules(None, metrics=False))
    monkeypatch.setattr(svcmod, "get_ethics_engine", lambda: engine)
    client = await aiohttp_client(create_app(ServiceConfig(fps=200)))
    plan = {"action": "delete_user_data", "params": {"batch_size": 500}}
    body = await (await client.post("/ethics/evaluate", json={"plan": plan})).json()
    want = engine.rule_set.evaluate(plan, None)
    assert body["reason_codes"] == want.reason_codes == engine.evaluation_history[-1]["reason_codes"]
    assert body["reason_codes"] == ["ETH#1001", "ETH#3003", "ETH#3006"] and body["action"] == "block"
    calls = []
    original = engine.evaluate_plan

    def spy(p, c=None):
        calls.append(p)
        return original(p, c)

    engine.evaluate_plan = spy
    body = await (await client.post("/ethics/evaluate", json={"plan": plan})).json()
    assert calls == [plan] and body["reason_codes"] == ["ETH#1001", "ETH#3003", "ETH#3006"]
