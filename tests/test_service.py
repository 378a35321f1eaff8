"""The aiohttp service: routes, validation (4xx with a JSON error naming the field, state unchanged),
graceful shutdown, and a fuzz run of >= 10,000 random and malformed bodies."""

from __future__ import annotations

import json
import math
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("aiohttp")
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402


@pytest.fixture
async def client(aiohttp_client):
    app = create_app(ServiceConfig(fps=200, max_body=16384))
    return await aiohttp_client(app)


def _state(app):
    svc = app[SERVICE_KEY]
    return (
        {lane: (m.ema, m._raw) for lane, m in svc.monitors.items()},
        svc.frames_submitted,  # frames pushed by requests (the ticker pushes too)
        len(svc.engine.evaluation_history),
        svc.enricher.get_stats()["cache_hits"] + svc.enricher.get_stats()["cache_misses"],
    )


async def test_routes(client):
    r = await client.get("/health")
    assert r.status == 200 and (await r.json())["status"] == "healthy"
    r = await client.post("/consciousness/analyze", json={"frame": {"x": 1}, "priority": 2})
    body = await r.json()
    assert r.status == 200 and body["accepted"] and body["buffer"]["total_pushes"] >= 1
    r = await client.post("/safety/enrich", json={"plan": {"action": "x", "params": {"email": "a@b.com"}}})
    body = await r.json()
    assert r.status == 200 and body["tag_names"] == ["pii"] and body["tags"][0]["category"] == "data_sensitivity"
    vec = [float(i % 7) for i in range(768)]
    r = await client.post("/drift/analyze", json={"lane": "prod", "intent": vec, "action": vec})
    body = await r.json()
    assert r.status == 200 and body["drift"] == pytest.approx(0.0, abs=1e-12) and body["lane"] == "prod"
    r = await client.post("/ethics/evaluate", json={"plan": {"action": "delete_user_data"}})
    body = await r.json()
    assert r.status == 200 and body["action"] == "block" and "ETH#1001" in body["reason_codes"]
    r = await client.post("/ethics/evaluate", json={"plan": {"action": "call", "params": {
        "email": "a@b.com", "url": "https://x.io", "estimated_memory_mb": 1, "estimated_time_seconds": 1}}, "enrich": True})
    body = await r.json()
    assert body["safety_tags"] == ["external-call", "pii"]
    r = await client.get("/metrics")
    m = await r.json()
    assert set(m) >= {"ticker", "ring", "drift", "enricher", "engine"} and m["drift"]["prod"]["n"] == 1
    r = await client.get("/metrics/prometheus")
    text = await r.text()
    assert r.status == 200 and "lukhas_service_requests_total" in text and "lukhas_drift_ema" in text


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/drift/analyze", b"{not json", "body"),
        ("/drift/analyze", b"", "body"),
        ("/drift/analyze", b"[1, 2]", "body"),
        ("/drift/analyze", {"intent": [1.0]}, "action"),
        ("/drift/analyze", {"intent": [], "action": []}, "intent"),
        ("/drift/analyze", {"intent": [1.0, 2.0], "action": [1.0]}, "action"),
        ("/drift/analyze", {"intent": [1.0, "x"], "action": [1.0, 2.0]}, "intent"),
        ("/drift/analyze", {"intent": [1.0, None], "action": [1.0, 2.0]}, "intent"),
        ("/drift/analyze", {"intent": [1.0, 2.0], "action": [1.0, [2.0]]}, "action"),
        ("/drift/analyze", {"intent": [1.0, 1e200], "action": [1.0, 2.0]}, "intent"),
        ("/drift/analyze", {"intent": [1e200, 1.0], "action": [1.0, 2.0]}, "intent"),
        ("/drift/analyze", {"intent": [1.0], "action": [1.0], "lane": "mars"}, "lane"),
        ("/drift/analyze", {"intent": [1.0], "action": [1.0], "lane": 5}, "lane"),
        ("/safety/enrich", {"plan": [1]}, "plan"),
        ("/safety/enrich", {"plan": {"a": 1}, "context": "eu"}, "context"),
        ("/ethics/evaluate", {}, "plan"),
        ("/ethics/evaluate", {"plan": {}, "enrich": "yes"}, "enrich"),
        ("/consciousness/analyze", {"frame": 3}, "frame"),
        ("/consciousness/analyze", {"frame": {}, "priority": "high"}, "priority"),
    ],
)
async def test_bad_input_is_400_naming_the_field(client, path, body, field):
    before = _state(client.app)
    if isinstance(body, bytes):
        r = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    else:
        r = await client.post(path, json=body)
    assert r.status == 400
    data = await r.json()
    assert data["field"] == field and data["error"]
    assert _state(client.app) == before


async def test_body_limit_and_unknown_routes(client):
    r = await client.post("/drift/analyze", data=b"x" * 20000, headers={"Content-Type": "application/json"})
    assert r.status == 413 and (await r.json())["field"] == "body"
    r = await client.get("/nope")
    assert r.status == 404 and "error" in await r.json()
    r = await client.get("/drift/analyze")
    assert r.status == 405


def _fuzz_bodies(n, seed=1234):
    rng = random.Random(seed)
    atoms = [None, True, False, 0, -1, 1.5, 1e308, -1e308, "", "x", "a@b.com", "https://api.x.io", [], {}, [1.0, 2.0],
             "NaN", "Infinity", 10**30, "\u0000", "\ud7ff", "gpt-4o", "sudo"]

    def value(depth=0):
        r = rng.random()
        if depth > 2 or r < 0.5:
            return rng.choice(atoms)
        if r < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(["plan", "context", "intent", "action", "lane", "frame", "priority", "enrich", "params",
                            "email", "k"]): value(depth + 1) for _ in range(rng.randint(0, 4))}

    for i in range(n):
        kind = rng.random()
        if kind < 0.15:
            raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        elif kind < 0.3:
            text = json.dumps(value())
            cut = rng.randint(0, len(text))
            raw = text[:cut].encode()
        else:
            body = {k: value() for k in rng.sample(["plan", "context", "intent", "action", "lane", "frame", "priority",
                                                    "enrich"], rng.randint(0, 4))}
            if rng.random() < 0.3:
                d = rng.choice([1, 2, 768])
                body["intent"] = [rng.uniform(-1, 1) for _ in range(d)]
                body["action"] = [rng.uniform(-1, 1) for _ in range(d if rng.random() < 0.8 else d + 1)]
                body["lane"] = rng.choice(["prod", "candidate", "nope", "PROD"])
            raw = json.dumps(body).encode()
        yield raw


async def test_fuzz_never_5xx_and_rejections_leave_state(client, scaled):
    routes = ["/drift/analyze", "/safety/enrich", "/ethics/evaluate", "/consciousness/analyze"]
    count = 0
    statuses = {}
    n = scaled(10_000)
    for i, raw in enumerate(_fuzz_bodies(n)):
        path = routes[i % len(routes)]
        before = _state(client.app)
        r = await client.post(path, data=raw, headers={"Content-Type": "application/json"})
        statuses[r.status] = statuses.get(r.status, 0) + 1
        assert r.status < 500, (path, raw[:200], await r.text())
        if r.status >= 400:
            assert "error" in await r.json()
            assert _state(client.app) == before, (path, raw[:200])
        else:
            await r.read()
        count += 1
    assert count >= n
    assert statuses.get(200, 0) > n // 100 and statuses.get(400, 0) > n // 10


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_graceful_shutdown_on_sigterm():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lukhas_fast", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import urllib.request

        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_shutdown_lets_in_flight_requests_finish_and_stops_the_ticker():
    """What ``serve`` does on SIGINT/SIGTERM (``AppRunner.cleanup``): a request already being handled completes
    with 200, and the ticker task ends."""
    import asyncio

    import aiohttp
    from aiohttp import web

    app = create_app(ServiceConfig(fps=200))
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(0.3)
        return web.json_response({"done": True})

    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    svc = app[SERVICE_KEY]
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(session.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.wait_for(started.wait(), 10)
        assert svc.ticker.running
        await runner.cleanup()
        resp = await pending
        assert resp.status == 200 and (await resp.json()) == {"done": True}
        resp.release()
    assert not svc.ticker.running and svc._ticker_task is None


# --- drift bodies through the fast float-array parser (C tier) and the fallback -----------------

def _drift_body(intent, action, fmt):
    return ('{"lane": "prod", "intent": [' + ", ".join(fmt(x) for x in intent) + '], "action": ['
            + ", ".join(fmt(x) for x in action) + "]}").encode()


@pytest.mark.parametrize("fmt", [repr, lambda x: "%.17g" % x, lambda x: "%.6f" % x], ids=["repr", "17g", "6f"])
async def test_drift_fast_parser_matches_direct_monitor(aiohttp_client, fmt):
    from lukhas_fast import service
    from lukhas_fast.drift import DriftMonitor

    client = await aiohttp_client(create_app(ServiceConfig(fps=200, max_body=1 << 20)))
    rng = random.Random(5)
    ref = DriftMonitor("prod", metrics=False)
    for _ in range(3):
        a = [rng.uniform(-1, 1) for _ in range(768)]
        b = [x + rng.uniform(-0.2, 0.2) for x in a]
        body = _drift_body(a, b, fmt)
        if service._loads_vectors is not None:
            assert service._loads_vectors(body) is not None  # this body takes the fast path
        want = ref.update([float(fmt(x)) for x in a], [float(fmt(x)) for x in b])
        r = await client.post("/drift/analyze", data=body, headers={"Content-Type": "application/json"})
        got = await r.json()
        assert r.status == 200, got
        assert got["drift"] == pytest.approx(want["drift"], abs=1e-12)
        assert got["ema"] == pytest.approx(want["ema"], abs=1e-12)
        assert got["guardian"] == want["guardian"] and got["n"] == want["n"] and got["lane"] == "prod"


async def test_drift_bodies_the_fast_parser_leaves_to_orjson(client):
    from lukhas_fast import service
    from lukhas_fast.drift import DriftMonitor

    bodies = [
        b'{"lane": "prod", "intent": [1, 2, 3.5], "action": [1.0, 2.0, 3.0]}',  # ints in a vector
        b'{"lane": "prod", "intent": [1.5e400, 2.0], "action": [1.0, 2.0]}',  # overflow: 400 via the fallback
        b'{"lane": "pr\\u006fd", "intent": [0.5, 0.25], "action": [0.25, 0.5]}',  # an escape
        b'{"lane": "prod", "intent": [0.12345678901234567890123, 1.5], "action": [1.0, 2.0]}',  # 23 digits
    ]
    ref = DriftMonitor("prod", metrics=False)
    for body in bodies:
        if service._loads_vectors is not None:
            assert service._loads_vectors(body) is None
        data = json.loads(body)
        before = _state(client.app)
        r = await client.post("/drift/analyze", data=body, headers={"Content-Type": "application/json"})
        got = await r.json()
        if any(math.isinf(x) for x in data["intent"]):
            # orjson rejects the literal itself ("body"); json would give inf ("intent")
            assert r.status == 400 and got["field"] in ("body", "intent") and _state(client.app) == before
            continue
        want = ref.update(data["intent"], data["action"])
        assert r.status == 200 and got["drift"] == pytest.approx(want["drift"], abs=1e-12)


async def test_drift_fast_parser_rejections_leave_state_unchanged(client):
    await client.post("/drift/analyze", json={"lane": "prod", "intent": [1.0, 2.0], "action": [2.0, 1.0]})
    cases = [
        (b'{"lane": "prod", "intent": [1.5, 2.5], "action": [1.5]}', "action"),
        (b'{"lane": "prod", "intent": "x", "action": [1.5]}', "intent"),
        (b'{"lane": "prod", "action": [1.5]}', "intent"),
        (b'{"lane": "mars", "intent": [1.5], "action": [1.5]}', "lane"),
        (b'{"lane": true, "intent": [1.5], "action": [1.5]}', "lane"),
        (b'{"lane": "prod", "intent": [1e200, 1.5], "action": [1.5, 2.5]}', "intent"),
        (b'{"lane": "prod", "intent": [1.5e300, 1.5], "action": [1.5, 2.5]}', "intent"),
    ]
    for body, field in cases:
        before = _state(client.app)
        r = await client.post("/drift/analyze", data=body, headers={"Content-Type": "application/json"})
        data = await r.json()
        assert r.status == 400 and data["field"] == field, (body, data)
        assert _state(client.app) == before
