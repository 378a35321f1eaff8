"""The service past one process: msgpack drift bodies, shared drift state on a
real redis-server (results identical to one in-process monitor; 503 +
Retry-After while the store is down, recovery by itself), and ``serve
--workers N`` (real processes: one port, crashed workers restarted and logged,
one Prometheus scrape for all, graceful SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("aiohttp")
msgpack = pytest.importorskip("msgpack")
pytest.importorskip("redis")
from lukhas_fast import _msgvec  # noqa: E402
from lukhas_fast._bench.procs import RedisServer, ServiceProcess  # noqa: E402
from lukhas_fast.drift import DriftMonitor  # noqa: E402
from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app  # noqa: E402

MP = "application/msgpack"


@pytest.fixture(scope="module")
def store():
    with RedisServer() as srv:
        yield srv


def _mp(obj):
    return msgpack.packb(obj, use_bin_type=True)


def _pair(rng, d=64):
    a = rng.uniform(-1, 1, d)
    return a, a + rng.normal(0, 0.7, d)


def _as_in_body(obj):
    """The vectors of ``obj`` as the service reads them: ``bin`` vectors as aligned arrays (views
    into the body when aligned, else aligned copies: the drift kernels take their SIMD path
    only for aligned data, and the copy makes the answer independent of the offset); on the
    C tier, arrays of floats as float64 arrays (the one-call msgpack reader)."""
    out = []
    for k in ("intent", "action"):
        v = obj[k]
        if isinstance(v, bytes):
            out.append(np.frombuffer(v, "<f4" if obj.get("dtype") == "float32" else "<f8").copy())
        elif _msgvec._vectors is not None and v and all(type(x) is float for x in v):
            out.append(np.array(v, np.float64))
        else:
            out.append(v)
    return tuple(out)


async def _post_mp(client, obj, accept=MP):
    headers = {"Content-Type": MP}
    if accept:
        headers["Accept"] = accept
    r = await client.post("/drift/analyze", data=_mp(obj), headers=headers)
    raw = await r.read()
    body = msgpack.unpackb(raw) if r.content_type == MP else json.loads(raw)
    return r, body


# -- msgpack bodies -----------------------------------------------------------------------------

async def test_msgpack_bodies_match_an_in_process_monitor(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False)))
    local = DriftMonitor("prod", metrics=False)
    rng = np.random.default_rng(1)
    for i in range(30):
        a, b = _pair(rng)
        kind = i % 3
        if kind == 0:
            obj, va, vb = {"lane": "prod", "intent": a.tolist(), "action": b.tolist()}, a.tolist(), b.tolist()
        elif kind == 1:
            a32, b32 = a.astype("<f4"), b.astype("<f4")
            obj, va, vb = {"lane": "prod", "dtype": "float32", "intent": a32.tobytes(), "action": b32.tobytes()}, a32, b32
        else:
            obj, va, vb = {"lane": "prod", "dtype": "float64", "intent": a.tobytes(), "action": b.tobytes()}, a, b
        va, vb = _as_in_body(obj)  # the service's vectors
        r, body = await _post_mp(client, obj, accept=MP if i % 2 else None)
        assert r.status == 200 and r.content_type == (MP if i % 2 else "application/json")
        assert body == local.update(va, vb)


@pytest.mark.parametrize("obj, field", [
    ({"lane": "prod", "action": [1.0]}, "intent"),
    ({"lane": "prod", "intent": b"\0" * 8, "action": b"\0" * 8}, "dtype"),
    ({"lane": "prod", "dtype": "float16", "intent": b"\0" * 8, "action": b"\0" * 8}, "dtype"),
    ({"lane": "prod", "dtype": "float32", "intent": b"\0" * 7, "action": b"\0" * 8}, "intent"),
    ({"lane": "prod", "dtype": "float32", "intent": b"\0" * 8, "action": b"\0" * 4}, "action"),
    ({"lane": "prod", "dtype": "float32", "intent": b"", "action": b""}, "intent"),
    ({"lane": "prod", "dtype": "float64", "intent": np.array([1.0, np.nan]).tobytes(),
      "action": np.ones(2).tobytes()}, "intent"),
    ({"lane": "prod", "dtype": "float32", "intent": np.ones(2, "<f4").tobytes(),
      "action": np.array([1, np.inf], "<f4").tobytes()}, "intent"),  # the kernel's message names both: as JSON
    ({"lane": "nope", "intent": [1.0], "action": [1.0]}, "lane"),
    ({"lane": "prod", "intent": [1.0, "x"], "action": [1.0, 2.0]}, "intent"),
    ({"lane": "prod", "intent": {"a": 1}, "action": [1.0]}, "intent"),
])
async def test_msgpack_errors_are_the_json_errors(aiohttp_client, obj, field):
    app = create_app(ServiceConfig(run_ticker=False))
    client = await aiohttp_client(app)
    r, body = await _post_mp(client, obj)
    assert r.status == 400 and body["field"] == field and body["error"]
    assert app[SERVICE_KEY].monitors == {}  # nothing changed


@pytest.mark.parametrize("raw", [b"\xc1", b"\x93\x01\x02\x03", b"\x81\xa1a"])
async def test_malformed_msgpack_is_400(aiohttp_client, raw):
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False)))
    r = await client.post("/drift/analyze", data=raw, headers={"Content-Type": MP})
    body = await r.json()
    assert r.status == 400 and body["field"] == "body"


# -- shared state on a real redis-server ------------------------------------------------------------

async def test_redis_state_in_the_app_matches_an_in_process_monitor(aiohttp_client, store):
    app = create_app(ServiceConfig(run_ticker=False, state=store.url))
    client = await aiohttp_client(app)
    local = DriftMonitor("candidate", metrics=False)
    rng = np.random.default_rng(2)
    for _ in range(80):
        a, b = _pair(rng, 32)
        obj = {"lane": "candidate", "dtype": "float64", "intent": a.tobytes(), "action": b.tobytes()}
        r, body = await _post_mp(client, obj)
        assert r.status == 200 and body == local.update(*_as_in_body(obj))
    r = await client.post("/drift/analyze", json={"lane": "candidate", "intent": [1.0, float("nan")] and [1.0, "x"],
                                                   "action": [1.0, 2.0]})
    assert r.status == 400
    m = await (await client.get("/metrics")).json()
    assert m["state"]["shared"] is True and m["state"]["backend"] == "redis"
    assert m["drift"]["candidate"]["ema"] == local.ema and m["drift"]["candidate"]["n"] == 64


async def test_store_down_is_503_with_retry_after_then_recovers(aiohttp_client):
    with RedisServer() as srv:
        client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False, state=srv.url)))
        body = {"lane": "prod", "intent": [1.0, 0.0], "action": [0.0, 1.0]}
        r = await client.post("/drift/analyze", json=body)
        assert r.status == 200 and (await r.json())["n"] == 1
        srv.stop()
        for _ in range(3):
            r = await client.post("/drift/analyze", json=body)
            assert r.status == 503 and r.headers["Retry-After"] == "1"
            err = await r.json()
            assert "unavailable" in err["error"]
        srv.start()  # same port; the store comes back empty (no persistence)
        r = await client.post("/drift/analyze", json=body)
        assert r.status == 200 and (await r.json()) == {"lane": "prod", "drift": 1.0, "ema": 0.2,
                                                        "guardian": "warn", "n": 1}


# -- workers: real processes -----------------------------------------------------------------------

def _get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return r.read()


def _post(base, body, headers):
    req = urllib.request.Request(base + "/drift/analyze", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def _workers_seen(base, want, deadline=20.0):
    seen = {}
    end = time.monotonic() + deadline
    with ThreadPoolExecutor(8) as pool:
        while len(seen) < want and time.monotonic() < end:
            for raw in pool.map(lambda _: _get(base, "/metrics"), range(16)):
                w = json.loads(raw)["worker"]
                seen[w["id"]] = w["pid"]
    return seen


def test_workers_share_redis_state_and_match_one_monitor(store, tmp_path):
    log = str(tmp_path / "serve.log")
    with ServiceProcess(["--workers", "2", "--state", store.url, "--fps", "10"], log=log) as svc:
        seen = _workers_seen(svc.base, 2)
        assert set(seen) == {0, 1} and len(set(seen.values())) == 2
        m = json.loads(_get(svc.base, "/metrics"))
        assert m["state"]["shared"] is True and m["worker"]["workers"] == 2
        rng = np.random.default_rng(7)
        pairs = [_pair(rng, 48) for _ in range(60)]  # <= the prod window: each answer's n is its position

        def send(p):
            a, b = p
            raw = _post(svc.base, _mp({"lane": "prod", "dtype": "float64", "intent": a.tobytes(), "action": b.tobytes()}),
                        {"Content-Type": MP, "Accept": MP})
            return p, msgpack.unpackb(raw)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, pairs))
        answers.sort(key=lambda x: x[1]["n"])
        assert [x[1]["n"] for x in answers] == list(range(1, 61))
        local = DriftMonitor("prod", metrics=False)
        for (a, b), got in answers:
            assert got == local.update(*_as_in_body({"lane": "prod", "dtype": "float64", "intent": a.tobytes(),
                                                     "action": b.tobytes()}))
        # one scrape covers both workers (each flushes its request counts at least once a second)
        end = time.monotonic() + 10
        while True:
            text = _get(svc.base, "/metrics/prometheus").decode()
            total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("lukhas_service_requests_total{") and 'route="/drift/analyze"' in line)
            if total == 60 or time.monotonic() > end:
                break
            time.sleep(0.2)
        assert total == 60
        assert svc.stop() == 0
    with open(log) as fh:
        assert "each worker keeps its own" not in fh.read()


def _children(pid):
    """The pids of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_restart_crashed_ones_and_stop_gracefully(tmp_path):
    log = str(tmp_path / "serve.log")
    svc = ServiceProcess(["--workers", "2", "--fps", "10"], log=log).start()
    try:
        seen = _workers_seen(svc.base, 2)
        assert set(seen) == {0, 1}
        # the worker's offload processes (started in the background) must not outlive it
        end = time.monotonic() + 60
        while not _children(seen[0]):
            assert time.monotonic() < end, "worker 0 started no offload processes"
            time.sleep(0.2)
        orphans = _children(seen[0])
        os.kill(seen[0], signal.SIGKILL)
        end = time.monotonic() + 60  # (a restart imports everything anew: slow under ASan on a busy machine)
        while True:
            now = _workers_seen(svc.base, 2, deadline=2.0)
            if now.get(0) not in (None, seen[0]):
                break
            assert time.monotonic() < end, "worker 0 was not restarted"
        pids = set(now.values())
        end = time.monotonic() + 30
        while any(_alive(pid) for pid in orphans):
            assert time.monotonic() < end, f"offload processes of the killed worker outlived it: {orphans}"
            time.sleep(0.2)
    finally:
        rc = svc.stop()
    assert rc == 0
    for pid in pids:  # every worker is gone after the supervisor returned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with open(log) as fh:
        text = fh.read()
    assert "each worker keeps its own drift lane state" in text
    assert f"worker 0 (pid {seen[0]}) exited with signal SIGKILL; restarting" in text


def test_bad_serve_flags():
    import subprocess
    import sys

    for args, match in ((["--workers", "0"], "--workers"), (["--state", "http://x"], "--state")):
        p = subprocess.run([sys.executable, "-m", "lukhas_fast", "serve", *args], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and match in p.stderr


async def test_unmatched_routes_answer_json_and_are_counted(aiohttp_client):
    prom = pytest.importorskip("prometheus_client")
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False)))
    r = await client.get("/nope")
    assert r.status == 404 and (await r.json())["error"] == "Not Found"
    r = await client.delete("/health")
    assert r.status == 405 and set(r.headers["Allow"].split(",")) == {"GET", "HEAD"}
    r = await client.head("/health")
    assert r.status == 200
    text = await (await client.get("/metrics/prometheus")).text()
    assert 'lukhas_service_requests_total{method="DELETE",route="unmatched",status="405"}' in text
    assert 'lukhas_service_requests_total{method="HEAD",route="/health",status="200"}' in text
    assert prom is not None


async def test_made_up_methods_do_not_grow_the_metric_labels(aiohttp_client):
    """Methods beyond the usual nine (the HTTP parser also takes WebDAV's and others) are counted
    under method="OTHER", so a client cannot spread the request metrics over dozens of label series."""
    pytest.importorskip("prometheus_client")
    client = await aiohttp_client(create_app(ServiceConfig(run_ticker=False)))
    odd = ("PROPFIND", "MKCOL", "PURGE", "SEARCH", "LOCK", "REPORT")
    for i, method in enumerate(odd * 2):
        r = await client.request(method, "/health" if i % 2 else "/nope")
        assert r.status in (404, 405), (method, r.status)
    text = await (await client.get("/metrics/prometheus")).text()
    methods = {line.split('method="')[1].split('"')[0] for line in text.splitlines()
               if line.startswith("lukhas_service_requests_total{")}
    assert "OTHER" in methods and not methods & set(odd), methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"}
