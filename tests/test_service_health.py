"""``GET /health`` built from pieces: the answer is cut once per state (around the uptime,
twice) and rejoined per request.  Its bytes and status must equal the whole answer
encoded the way the handler did before (the reference below), in every state the
score reads: ticker running/stopped/stalled/disabled, drift below warn, between warn and
block and above block, ring drops, ready or not; the kept pieces must follow every
change of that state; and the health gauge must be set on every answer."""

from __future__ import annotations

import asyncio
import time
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("aiohttp")
from lukhas_fast import service  # noqa: E402
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402


def _reference(svc, now: float):
    """The whole answer, as the handler built it before the pieces (bytes, status)."""
    ticker_state, measured = svc.ticker_status()
    lane = svc._lane_state_now(svc.default_lane)
    score = svc._factors(ticker_state, measured, lane["ema"], svc.ring.get_backpressure_stats()["drop_rate"])
    healthy = svc.ready and (ticker_state == "running" or ticker_state == "disabled")
    body = service._dumps({
        "status": "healthy" if healthy else "unhealthy",
        "uptime_seconds": now - svc.started,
        "components": {"consciousness_ticker": ticker_state, "drift_monitor": "active",
                       "safety_enricher": "operational", "ethics_engine": "operational",
                       "service": "ready" if svc.ready else "not_ready"},
        "metrics": {"consciousness_health": score["score"], "health_factors": score},
        "uptime_s": now - svc.started,
        "ticker_running": svc.ticker.running,
        "tick_count": svc.ticker.tick_count,
    })
    return body, 200 if healthy else 503, score["score"]


async def _check(svc, monkeypatch, now: float) -> bytes:
    """One answer at the (patched) time ``now`` against the reference at the same time."""
    monkeypatch.setattr(service.time, "time", lambda: now)
    try:
        want, status, score = _reference(svc, now)
        svc._health_score = None
        got = await svc.health(None)
        assert svc._health_score == score  # the gauge's value, set on every answer
    finally:
        monkeypatch.undo()
    assert got == (want, status, service.JSON_TYPE)
    return got[0]


def _drift_to(svc, level: str) -> None:
    """Feed the default lane until its EMA is below warn / between warn and block / above block."""
    warn, block = svc._warn, svc._block
    rng = np.random.default_rng(0)
    for _ in range(400):
        ema = svc._ema_now(svc.default_lane)
        if (level == "low" and ema < warn) or (level == "mid" and warn <= ema < block) or (level == "high" and ema >= block):
            return
        a = rng.standard_normal(8)
        b = a if level == "low" else (a + rng.standard_normal(8) * (0.5 if level == "mid" else 50.0))
        svc.drift_store.update_now(svc.default_lane, a.tolist(), b.tolist())
    pytest.fail(f"could not bring the EMA to {level}")


async def test_answers_equal_the_whole_encoding_in_every_state(aiohttp_client, monkeypatch):
    client = await aiohttp_client(create_app(ServiceConfig(fps=200, ring_capacity=8)))
    svc = client.app[SERVICE_KEY]
    await asyncio.sleep(0.05)
    t = time.time()
    seen = set()
    for i in range(3):  # kept pieces between ticks, new ones after: the same bytes either way
        seen.add(await _check(svc, monkeypatch, t + i))
        seen.add(await _check(svc, monkeypatch, t + i + 0.5))
        await asyncio.sleep(0.02)
    # drift: the factor follows the EMA across both thresholds (and back down)
    for level in ("mid", "high"):
        _drift_to(svc, level)
        seen.add(await _check(svc, monkeypatch, t + 7.25))
    svc.drift_store.monitors.clear()
    seen.add(await _check(svc, monkeypatch, t + 7.25))
    # ring drops change the ring factor
    svc.ring.drops_total = svc.ring.push_count // 3 + 1
    assert svc.ring.drop_rate > 0
    seen.add(await _check(svc, monkeypatch, t + 8))
    # not ready: 503
    svc.ready = False
    assert (await _check(svc, monkeypatch, t + 9)).startswith(b'{"status":"unhealthy"')
    svc.ready = True
    seen.add(await _check(svc, monkeypatch, t + 10))
    # the ticker stopped: 503, and the tick count stays
    svc.ticker.stop()
    await asyncio.wait_for(svc._ticker_task, 5)
    stopped = await _check(svc, monkeypatch, t + 11)
    assert b'"consciousness_ticker":"stopped"' in stopped and b'"ticker_running":false' in stopped
    assert len(seen) >= 8  # the states above really gave different answers


async def test_stalled_and_disabled_tickers(aiohttp_client, monkeypatch):
    client = await aiohttp_client(create_app(ServiceConfig(fps=100, stall_seconds=0.1)))
    svc = client.app[SERVICE_KEY]
    await asyncio.sleep(0.05)
    await _check(svc, monkeypatch, time.time())
    svc.ticker.unsubscribe(svc._on_tick)  # the service sees no more ticks: stalled after 0.1 s
    await asyncio.sleep(0.2)
    assert b'"consciousness_ticker":"stalled"' in await _check(svc, monkeypatch, time.time())
    svc.ticker.subscribe(svc._on_tick)

    client = await aiohttp_client(create_app(ServiceConfig(fps=100, run_ticker=False)))
    svc = client.app[SERVICE_KEY]
    for dt in (0.0, 1e-9, 12345.678):
        body = await _check(svc, monkeypatch, svc.started + dt)
        assert b'"consciousness_ticker":"disabled"' in body and b'"status":"healthy"' in body


async def test_uncut_pieces_fall_back_to_the_whole_answer(aiohttp_client, monkeypatch):
    """If the marker encoding does not cut (a marker in a value, another key order), every
    answer is encoded whole: the same bytes."""
    client = await aiohttp_client(create_app(ServiceConfig(fps=200, run_ticker=False)))
    svc = client.app[SERVICE_KEY]
    with monkeypatch.context() as m:
        m.setattr(service._HEALTH_HOLES, "cut", lambda whole: None)
        svc._health_last = None
        await _check(svc, monkeypatch, svc.started + 3.5)
        assert svc._health_last[2] is None
        await _check(svc, monkeypatch, svc.started + 4.5)


async def test_over_http(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(fps=200)))
    for _ in range(3):
        r = await client.get("/health")
        body = await r.json()
        assert r.status == 200 and body["status"] == "healthy"
        assert body["uptime_seconds"] == body["uptime_s"] >= 0 and body["tick_count"] >= 0
        await asyncio.sleep(0.01)


def test_ema_now_is_the_lane_states_ema():
    store = service.LocalDriftStore()
    assert store.ema_now("labs") == store.lane_state_now("labs")["ema"] == 0.0
    store.update_now("labs", [1.0, 0.0], [0.0, 1.0])
    assert store.ema_now("labs") == store.lane_state_now("labs")["ema"] > 0.0
    assert service.DriftStore.ema_now is None  # optional: stores with I/O have none


def _ticker_status_reference(svc, now):
    """``Service.ticker_status`` as written before it was made cheaper (max(), fps first)."""
    if not svc.config.run_ticker:
        return "disabled", 0.0
    ticks = svc._ticks
    fps = 0.0
    if len(ticks) >= 2 and ticks[-1] > ticks[0]:
        fps = (len(ticks) - 1) / (ticks[-1] - ticks[0])
    if not svc.ticker.running:
        return "stopped", 0.0
    last = ticks[-1] if ticks else svc._ticker_started
    if now - last > max(svc.config.stall_seconds, 3.0 / svc.config.fps):
        return "stalled", 0.0
    return "running", fps


@settings(max_examples=300)
@given(run_ticker=st.booleans(), running=st.booleans(), fps=st.sampled_from([0.5, 1.0, 3.0, 30.0, 1000.0]),
       stall=st.sampled_from([0.0, 0.1, 1.0, 3.0, 6.0]), started=st.floats(0, 100),
       ticks=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 100.0]), max_size=5),
       dt=st.one_of(st.sampled_from([0.0, 0.1, 1.0, 3.0, 6.0, 100.0]), st.floats(-1, 200)))
def test_ticker_status_equals_the_previous_formula(run_ticker, running, fps, stall, started, ticks, dt):
    """Every branch and the stall limit's boundary (now - last exactly at max(stall, 3 / fps))."""
    svc = service.Service(ServiceConfig(fps=fps, stall_seconds=stall, run_ticker=run_ticker))
    svc.ticker = types.SimpleNamespace(running=running)
    svc._ticker_started = started
    ticks = sorted(ticks)
    svc._ticks.extend(ticks)
    last = ticks[-1] if ticks else started
    for now in (last + dt, last + max(stall, 3.0 / fps), last + 3.0 / fps, last + stall):
        with pytest.MonkeyPatch.context() as m:
            m.setattr(service.time, "monotonic", lambda: now)
            assert svc.ticker_status() == _ticker_status_reference(svc, now)
