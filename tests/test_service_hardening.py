"""Hostile HTTP input (issue 13, item 6): undecodable compressed bodies are 400 (415 for an encoding the
service does not accept), JSON nested deeper than ``max_depth`` is 400 before any library call, slow
clients are cut off by the header and body read timeouts, and ``GET /health`` stays fast while large
hostile enrichments are in flight."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import time
import zlib

import pytest

pytest.importorskip("aiohttp")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lukhas_fast.service import SERVICE_KEY, ServiceConfig, create_app, json_depth_exceeds, start_sites, bound_ports  # noqa: E402

POST_ROUTES = ["/drift/analyze", "/safety/enrich", "/ethics/evaluate", "/consciousness/analyze"]
GOOD = {
    "/drift/analyze": {"intent": [1.0, 0.0], "action": [0.0, 1.0]},
    "/safety/enrich": {"plan": {"action": "send_email", "params": {"to": "a@b.com"}}},
    "/ethics/evaluate": {"plan": {"action": "read"}},
    "/consciousness/analyze": {"frame": {"x": 1}},
}


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(create_app(ServiceConfig(fps=200)))


def _library_state(app):
    svc = app[SERVICE_KEY]
    st_ = svc.enricher.get_stats()
    return ({k: (m.ema, len(m._raw)) for k, m in svc.monitors.items()}, svc.frames_submitted,
            len(svc.engine.evaluation_history), st_["cache_hits"] + st_["cache_misses"])


# --- Content-Encoding --------------------------------------------------------------------------

@pytest.mark.parametrize("path", POST_ROUTES)
async def test_compressed_bodies_decode(client, path):
    raw = json.dumps(GOOD[path]).encode()
    for enc, data in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        r = await client.post(path, data=data, headers={"Content-Encoding": enc, "Content-Type": "application/json"})
        assert r.status == 200, (enc, await r.text())


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("enc,data", [
    ("gzip", b"\x1f\x8b\x08\x00garbage-not-a-gzip-stream" * 3),
    ("gzip", b"{\"plan\": {}}"),  # plain JSON labelled gzip
    ("deflate", b"\x78\x9cthis is not deflate data at all"),
    ("gzip", gzip.compress(b'{"plan": {"action": "x"}}')[:-9]),  # truncated stream
])
async def test_undecodable_compressed_body_is_400_not_500(client, path, enc, data):
    before = _library_state(client.app)
    r = await client.post(path, data=data, headers={"Content-Encoding": enc, "Content-Type": "application/json"})
    body = await r.json()
    assert r.status == 400, body
    assert body["field"] == "body" and body["request_id"]
    # a truncated gzip stream decodes to a truncated body (aiohttp does not check the gzip trailer):
    # malformed JSON, still 400
    assert enc in body["error"] or body["error"].startswith("malformed JSON")
    assert _library_state(client.app) == before


@pytest.mark.parametrize("enc", ["compress", "x-custom", "gzip, x-custom"])
async def test_unaccepted_encoding_is_415(client, enc):
    r = await client.post("/safety/enrich", data=json.dumps(GOOD["/safety/enrich"]).encode(),
                          headers={"Content-Encoding": enc, "Content-Type": "application/json"})
    body = await r.json()
    assert r.status == 415 and body["field"] == "Content-Encoding", body


async def test_compression_bomb_stops_at_max_body(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(fps=200, max_body=1 << 16)))
    bomb = gzip.compress(b'{"plan": {"v": "' + b"a" * (50 << 20) + b'"}}')  # 50 MB inflated, ~50 KB on the wire
    assert len(bomb) < (1 << 16)
    r = await client.post("/safety/enrich", data=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status == 413 and (await r.json())["field"] == "body"


# --- nesting depth -----------------------------------------------------------------------------

def _nested(depth: int, inner: str = "1") -> str:
    out = inner
    for i in range(depth):
        out = f'{{"k": {out}}}' if i % 2 else f"[{out}]"
    return out


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("depth", [65, 200, 995, 1023])
async def test_deep_json_is_400_before_any_library_call(client, path, depth):
    body = {"/drift/analyze": '{"intent": %s, "action": [1.0]}', "/safety/enrich": '{"plan": {"v": %s}}',
            "/ethics/evaluate": '{"plan": {"v": %s}, "enrich": true}',
            "/consciousness/analyze": '{"frame": {"v": %s}}'}[path] % _nested(depth - (1 if "drift" in path else 2))
    # one chain (plus drift's flat action list): the depth is the bracket count
    assert body.count("[") + body.count("{") - ("drift" in path) == depth
    before = _library_state(client.app)
    r = await client.post(path, data=body.encode(), headers={"Content-Type": "application/json"})
    data = await r.json()
    assert r.status == 400 and data["field"] == "body", data
    assert "nested deeper than 64" in data["error"] or "recursion" in data["error"].lower()
    assert _library_state(client.app) == before


async def test_depth_at_the_limit_is_accepted(client):
    body = '{"plan": {"action": "x", "params": {"v": %s}}}' % _nested(64 - 3)
    assert not json_depth_exceeds(body.encode(), 64) and json_depth_exceeds(body.encode(), 63)
    r = await client.post("/safety/enrich", data=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status == 200, await r.text()


async def test_oversized_frame_is_413_and_not_stored(client):
    """The ring keeps frames until overwritten: a frame over ``MAX_FRAME_BYTES``
    (estimated Python bytes) is refused naming the field, and nothing is pushed."""
    from lukhas_fast import _limits

    before = _library_state(client.server.app)
    big = {"values": [0.5] * (_limits.MAX_FRAME_BYTES // 8)}  # ~4x the limit as Python floats
    r = await client.post("/consciousness/analyze", json={"frame": big})
    body = await r.json()
    assert r.status == 413 and body["field"] == "frame" and "too large" in body["error"], body
    assert _library_state(client.server.app) == before
    small = {"values": [0.5] * 100}
    r = await client.post("/consciousness/analyze", json={"frame": small})
    assert r.status == 200 and (await r.json())["accepted"] is True


def _depth(obj) -> int:
    if isinstance(obj, dict):
        return 1 + max((_depth(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((_depth(v) for v in obj), default=0)
    return 0


def _json_extend(kids):  # a named function: hypothesis checks (from its source) that it uses `kids`
    return st.lists(kids, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\k'), kids, max_size=4)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n\u00e9'),
    _json_extend, max_leaves=40)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(_json_values, st.integers(0, 8))
def test_json_depth_exceeds_matches_a_recursive_count(value, limit):
    """Brackets inside strings (escaped quotes too) do not count; the answer equals a recursive walk."""
    raw = json.dumps(value, ensure_ascii=bool(limit % 2)).encode()
    assert json_depth_exceeds(raw, limit) == (_depth(value) > limit)


def test_json_depth_exceeds_at_the_shortest_bodies():
    """The length bound (a body of at most 2 * limit + 1 bytes cannot nest deeper than
    limit) holds at its edge: the shortest body one level too deep is still caught."""
    for limit in range(0, 12):
        for open_, close in ((b"[", b"]"), (b"{", b"}")):
            deep = open_ * (limit + 1) + close * (limit + 1)  # 2 * limit + 2 bytes
            assert json_depth_exceeds(deep, limit) is True
            assert json_depth_exceeds(open_ * limit + close * limit, limit) is False
        mixed = b'[{"a":' * (limit // 2) + b"[[]]" + b"}]" * (limit // 2)
        assert json_depth_exceeds(mixed, limit) == (2 * (limit // 2) + 2 > limit)


# --- slow clients ------------------------------------------------------------------------------

async def _started(config):
    app = create_app(config)
    runners = await start_sites(app)
    return runners, bound_ports(runners[0])[0]


async def _cleanup(runners):
    for r in runners:
        await r.cleanup()


async def _read_until_closed(reader, limit):
    """Everything the server sends until it closes the connection; None if still open after ``limit`` s.

    A reset counts as closed: a server that cuts off a client still sending closes a socket
    with unread data, which the kernel answers with RST (what was received before it is kept)."""
    async def drain():
        data = b""
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    try:
        return await asyncio.wait_for(drain(), limit)
    except asyncio.TimeoutError:
        return None


async def test_slow_request_heads_are_cut_off():
    """30 clients sending a request head one byte every 0.2 s: all closed (408) at the header timeout."""
    runners, port = await _started(ServiceConfig(port=0, fps=50, header_timeout=0.6))
    try:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"

        async def slow_client():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            closed = asyncio.ensure_future(_read_until_closed(reader, 5.0))
            for b in head:
                if closed.done():
                    break
                try:
                    writer.write(bytes([b]))
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.2)
            data = await closed
            writer.close()
            return data, time.monotonic() - t0

        results = await asyncio.gather(*(slow_client() for _ in range(30)))
        for data, took in results:
            assert data is not None and data.startswith(b"HTTP/1.1 408"), data
            assert took < 2.0
    finally:
        await _cleanup(runners)


async def test_slow_body_and_huge_chunk_are_cut_off():
    runners, port = await _started(ServiceConfig(port=0, fps=50, body_timeout=0.5, header_timeout=5))
    try:
        cases = [
            # a Content-Length body trickling in
            (b"POST /safety/enrich HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000"
             b"\r\n\r\n{\"plan\": ", b" "),
            # one chunk declared 2**64-1 bytes long
            (b"POST /safety/enrich HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"FFFFFFFFFFFFFFFF\r\n{\"plan\": ", b" "),
        ]
        for head, drip in cases:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head)
            t0 = time.monotonic()
            closed = asyncio.ensure_future(_read_until_closed(reader, 5.0))
            while not closed.done() and time.monotonic() - t0 < 5:
                try:
                    writer.write(drip)
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.1)
            data = await closed
            writer.close()
            took = time.monotonic() - t0
            assert data is not None, head
            assert data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400"), data
            assert took < 2.0
    finally:
        await _cleanup(runners)


async def test_idle_keepalive_and_normal_clients_are_not_cut_off():
    """The header timer runs only while a request head is arriving: an idle keep-alive connection
    survives past it, and the next request on it is answered."""
    runners, port = await _started(ServiceConfig(port=0, fps=50, header_timeout=0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        req = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(3):
            writer.write(req)
            line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert line.startswith(b"HTTP/1.1 200")
            length = int([h for h in line.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
            await reader.readexactly(length)
            await asyncio.sleep(0.6)  # idle for twice the header timeout
        writer.close()
    finally:
        await _cleanup(runners)


# --- /health latency while hostile enrichments are in flight ------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hostile_plans(size):
    """~``size``-byte JSON bodies from issue 13's worst cases (whitespace runs before " at ", an email-like
    run with a non-ASCII character, many short tokens)."""
    n = size - 200
    return [
        {"plan": {"action": "x", "params": {"v": " " * n + "x at y"}}},
        {"plan": {"action": "x", "params": {"v": "a." * (n // 4) + "@" + "b" * (n // 2 - 16) + "\u0130"}}},
        {"plan": {"action": "x", "params": {"v": "x dot " * (n // 6)}}},
        {"plan": {"action": "x", "params": {"v": "a@b.c " * (n // 6)}}},
    ]


@pytest.mark.slow
def test_health_p99_under_50ms_with_8_hostile_1mib_enrichments_in_flight():
    import http.client

    port = _free_port()
    env = dict(os.environ, LUKHAS_FAST_BACKEND=os.environ.get("LUKHAS_FAST_BACKEND", "c"))
    proc = subprocess.Popen([sys.executable, "-m", "lukhas_fast", "serve", "--port", str(port), "--log-level",
                             "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                try:
                    c.request("GET", "/livez")
                    c.getresponse().read()
                finally:
                    c.close()
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None
                time.sleep(0.1)
        while True:  # serve starts the offload workers in the background: wait for them
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request("GET", "/metrics")
                if json.loads(c.getresponse().read())["offloaded_enrichments"]["workers"] == 2:
                    break
            finally:
                c.close()
            assert time.time() < deadline + 60
            time.sleep(0.2)
        plans = _hostile_plans(1 << 20)
        bodies = [json.dumps(plans[i % len(plans)]).encode() for i in range(8)]
        assert all(len(b) <= 1 << 20 for b in bodies) and min(len(b) for b in bodies) > 900_000
        import threading

        stop = threading.Event()
        done = []

        def hostile(body):  # keeps one hostile request in flight on its own connection until stopped
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(60)
            f = s.makefile("rb")
            try:
                while not stop.is_set():
                    s.sendall(b"POST /safety/enrich HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body)
                    status = f.readline()
                    length = 0
                    while True:
                        line = f.readline()
                        if line in (b"\r\n", b""):
                            break
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    f.read(length)
                    done.append(status)
            except OSError:
                pass
            finally:
                f.close()
                s.close()

        threads = [threading.Thread(target=hostile, args=(b,), daemon=True) for b in bodies]
        for t in threads:
            t.start()
        time.sleep(0.5)  # let the bodies arrive and the enrichments start
        h = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        lat = []
        t_end = time.monotonic() + 4.0
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            h.request("GET", "/health")
            r = h.getresponse()
            r.read()
            lat.append(time.perf_counter() - t0)
            assert r.status == 200
            time.sleep(0.005)
        stop.set()
        h.close()
        lat.sort()
        p99 = lat[int(len(lat) * 0.99) - 1]
        print(f"health: {len(lat)} requests, p50 {lat[len(lat) // 2] * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
              f"max {lat[-1] * 1e3:.1f} ms; {len(done)} hostile enrichments done")
        assert len(lat) >= 50
        assert all(st_.startswith(b"HTTP/1.1 200") for st_ in done), done[:3]
        assert p99 < 0.050, f"p99 {p99 * 1e3:.1f} ms over {len(lat)} requests ({len(done)} enrichments done)"
    finally:
        proc.terminate()  # graceful: the server shuts its offload worker processes down
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- offloaded enrichment ----------------------------------------------------------------------

async def test_large_bodies_are_enriched_in_worker_processes_with_the_same_answer(aiohttp_client):
    inline = await aiohttp_client(create_app(ServiceConfig(fps=50, offload_bytes=1 << 20)))
    offload = await aiohttp_client(create_app(ServiceConfig(fps=50, offload_bytes=0)))
    plans = [{"plan": {"action": "send_email", "params": {"to": "a@b.com", "url": "https://api.x.io/v1"}},
              "context": {"lane": "prod"}},
             {"plan": {"action": "x", "params": {"email": "x@y.com", "note": "see x at y dot com " * 50}}}]
    for body in plans:
        a = await (await inline.post("/safety/enrich", json=body)).json()
        b = await (await offload.post("/safety/enrich", json=body)).json()
        for d in (a, b):
            d.pop("enrichment_time_ms")
            d["tagged_plan"].pop("enrichment_time_ms")
        assert a == b and a["tags"]
        a = await (await inline.post("/ethics/evaluate", json=dict(body, enrich=True))).json()
        b = await (await offload.post("/ethics/evaluate", json=dict(body, enrich=True))).json()
        assert a["safety_tags"] == b["safety_tags"] and a["action"] == b["action"]
    svc = offload.app[SERVICE_KEY]
    assert svc.offloaded == 4 and svc.enricher.get_stats()["cache_misses"] == 0  # none ran on the loop
    m = await (await offload.get("/metrics")).json()
    off = m["offloaded_enrichments"]
    assert off["done"] == 4 and off["failed"] == 0 and 1 <= off["workers"] <= 2  # workers start on demand


async def test_offloaded_enrichment_over_its_deadline_is_503_and_the_workers_restart(aiohttp_client):
    client = await aiohttp_client(create_app(ServiceConfig(fps=50, offload_bytes=0, enrich_timeout=0.001)))
    svc = client.app[SERVICE_KEY]
    body = {"plan": {"action": "send_email", "params": {"to": "a@b.com"}}}
    r = await client.post("/safety/enrich", json=body)  # a worker cannot even start in 1 ms
    data = await r.json()
    assert r.status == 503 and data["field"] == "plan" and "did not finish" in data["error"]
    assert svc.offload_failures == 1 and svc._pool is None
    svc.config.enrich_timeout = 60.0
    r = await client.post("/safety/enrich", json=body)
    assert r.status == 200 and (await r.json())["tag_names"] == ["pii"]
