"""``serve``'s runner (``service._ServiceRunner``) answers exactly like aiohttp's own.

The runner sends a request for one of the service's routes, by its exact path and
method, straight to the route's handler, past the application's router.  These tests
send the same raw requests, over real sockets, to one application served by
``web.AppRunner`` and to another served by ``_ServiceRunner`` (same config, the same
sequence of requests, so the same state), and compare the bytes that come back: the
status lines, the headers but ``Date``, the bodies with their clock readings masked,
and whether the connection stays open for a second request.  They also check that
the direct dispatch is really installed, and that an application changed after
``create_app`` (a middleware, an ``on_response_prepare`` callback, a route of its own)
gets aiohttp's dispatch for every request.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import List, Tuple

import msgpack
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from lukhas_fast import service
from lukhas_fast.service import ServiceConfig, create_app

PATHS = ["/health", "/livez", "/readyz", "/metrics", "/openapi.json", "/consciousness/analyze", "/safety/enrich",
         "/drift/analyze", "/ethics/evaluate",
         # spellings that are not a route's literal: routed by the application either way
         "/health?verbose=1", "/health/", "//health", "/HEALTH", "/drift/analyze?x=1", "/drift%2Fanalyze",
         "/ethics/evaluate#frag", "/nope", "/", "http://127.0.0.1/health"]
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
PLAN = {"action": "send_email", "params": {"to": "alice@example.com", "url": "https://api.partner.io/v1"}}
BODIES = [
    None,
    json.dumps({"plan": PLAN}).encode(),
    json.dumps({"plan": {"action": "delete_file", "params": {"path": "/etc/passwd"}}}).encode(),
    json.dumps({"frame": {"kind": "percept", "value": 0.5}, "priority": 0.7}).encode(),
    json.dumps({"lane": "a", "intent": [1.0, 0.5, 0.25], "action": [0.9, 0.6, 0.2]}).encode(),
    json.dumps({"lane": "a", "intent": [1.0, 0.0], "action": [0.0, 1.0]}).encode(),
    msgpack.packb({"lane": "b", "dtype": "float32", "intent": b"\x00\x00\x80?" * 4, "action": b"\x00\x00\x00?" * 4}),
    b"{not json",
    b"[]",
    b"x" * 5000,  # over the configured max_body
]
CTYPES = ["application/json", "application/msgpack", "text/plain", None]
#: answer fields that read a clock (masked before comparing)
CLOCKS = re.compile(rb'"([a-z_]*(?:time|_ms)[a-z_]*)":-?[0-9.e+-]+')


def _config() -> ServiceConfig:
    return ServiceConfig(run_ticker=False, max_body=4096)


async def _serve(runner: web.BaseRunner) -> Tuple[web.BaseRunner, int]:
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, service.bound_ports(runner)[0]


def _raw(method: str, path: str, body, ctype, accept, expect: bool, rid: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: {rid}\r\n"
    if accept:
        head += f"Accept: {accept}\r\n"
    if expect:
        head += "Expect: 100-continue\r\n"
    if body is not None:
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


async def _exchange(port: int, raw: bytes) -> bytes:
    """``raw`` then a ``GET /livez`` with ``Connection: close`` on one connection: all that comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw + b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: after\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()


def _normal(raw: bytes, head: bool = False) -> bytes:
    """``raw`` without its ``Date`` headers, clock readings masked (and so their ``Content-Length``,
    as for an answer to ``HEAD`` (``head``), whose length is that of a body not sent)."""
    raw = re.sub(rb"\r\nDate: [^\r]*", b"", raw)
    masked = CLOCKS.sub(lambda m: b'"' + m.group(1) + b'":T', raw)
    if masked != raw or head:
        masked = re.sub(rb"\r\nContent-Length: \d+", b"\r\nContent-Length: N", masked)
    return masked


@pytest.fixture
def pair():
    """(loop, [(name, port)] for aiohttp's runner and serve's), both over a fresh application."""
    loop = asyncio.new_event_loop()
    runners: List[web.BaseRunner] = []
    try:
        plain, p1 = loop.run_until_complete(_serve(web.AppRunner(create_app(_config()), handle_signals=False)))
        runners.append(plain)
        ours, p2 = loop.run_until_complete(_serve(service._ServiceRunner(create_app(_config()), handle_signals=False)))
        runners.append(ours)
        assert plain.server.request_handler == plain.app._handle
        assert ours.server.request_handler != ours.app._handle  # the direct dispatch is installed
        yield loop, [("aiohttp", p1), ("serve", p2)]
    finally:
        for r in runners:
            loop.run_until_complete(r.cleanup())
        loop.close()


def test_direct_dispatch_answers_every_request_like_the_application(pair, scaled):
    loop, ports = pair
    seen = {"direct": 0}

    n = scaled(400)

    @settings(max_examples=n)
    @given(method=st.sampled_from(METHODS), path=st.sampled_from(PATHS), body=st.sampled_from(BODIES),
           ctype=st.sampled_from(CTYPES), accept=st.sampled_from([None, "application/msgpack", "*/*"]),
           expect=st.booleans())
    def check(method, path, body, ctype, accept, expect):
        raw = _raw(method, path, body, ctype, accept, expect, "r1")
        got = [_normal(loop.run_until_complete(_exchange(port, raw)), raw.startswith(b"HEAD")) for _, port in ports]
        assert got[0] == got[1], (raw[:300], got[0][:600], got[1][:600])
        assert got[0].startswith(b"HTTP/1.1 ")
        if method in ("GET", "POST") and "?" not in path and path in PATHS[:9] and not expect:
            seen["direct"] += 1

    check()
    assert seen["direct"] >= max(2, n // 40)  # (~7% of the cases) the direct path was exercised, not only the fall backs


@pytest.mark.parametrize("case", ["ok", "expect", "oversize", "bad", "head", "wrong-method", "query"])
def test_the_usual_requests_are_the_same_bytes(pair, case):
    """Named cases of the randomized test above (each also checks the connection after it)."""
    loop, ports = pair
    body = json.dumps({"plan": PLAN}).encode()
    raw = {
        "ok": _raw("POST", "/ethics/evaluate", body, "application/json", None, False, "r2"),
        "expect": _raw("POST", "/ethics/evaluate", body, "application/json", None, True, "r2"),
        "oversize": _raw("POST", "/safety/enrich", b"x" * 5000, "application/json", None, False, "r2"),
        "bad": _raw("POST", "/drift/analyze", b"{", "application/json", None, False, "r2"),
        "head": _raw("HEAD", "/health", None, None, None, False, "r2"),
        "wrong-method": _raw("GET", "/drift/analyze", None, None, None, False, "r2"),
        "query": _raw("GET", "/readyz?x=1", None, None, None, False, "r2"),
    }[case]
    for _ in range(2):  # twice: the memos remember a body on its second sight
        got = [_normal(loop.run_until_complete(_exchange(port, raw)), raw.startswith(b"HEAD")) for _, port in ports]
        assert got[0] == got[1]
    if case == "expect":
        assert got[1].startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")
    if case == "oversize":
        assert got[1].count(b"HTTP/1.1 ") == 1  # 413, and the connection closes
    else:
        assert got[1].count(b"HTTP/1.1 ") == 2 + (case == "expect")


CALLS = web.AppKey("calls", list)


def _changed(change: str) -> web.Application:
    app = create_app(_config())
    calls = app[CALLS] = []
    if change == "middleware":
        @web.middleware
        async def mw(request, handler):
            calls.append(request.path)
            return await handler(request)
        app.middlewares.append(mw)
    elif change == "prepare":
        async def on_prepare(request, response):
            calls.append(request.path)
            response.headers["X-Seen"] = "1"
        app.on_response_prepare.append(on_prepare)
    else:
        async def extra(request):
            return web.Response(text="x")
        app.router.add_get("/extra", extra)
    return app


@pytest.mark.parametrize("change", ["middleware", "prepare", "route"])
def test_an_application_changed_after_create_app_is_dispatched_by_aiohttp(change):
    loop = asyncio.new_event_loop()
    try:
        runner, port = loop.run_until_complete(_serve(service._ServiceRunner(_changed(change), handle_signals=False)))
        try:
            assert runner.server.request_handler == runner.app._handle
            got = loop.run_until_complete(_exchange(port, _raw("GET", "/health", None, None, None, False, "r3")))
            assert got.startswith(b"HTTP/1.1 200 ")
            if change != "route":
                assert runner.app[CALLS] == ["/health", "/livez"]
            if change == "prepare":
                assert got.count(b"X-Seen: 1") == 2
        finally:
            loop.run_until_complete(runner.cleanup())
    finally:
        loop.close()


# -- sending: _Response's own prepare/write_eof against web.Response's ---------------------------

@pytest.fixture
def two_apps():
    """(loop, port A, port B): two fresh applications behind serve's runner."""
    loop = asyncio.new_event_loop()
    runners: List[web.BaseRunner] = []
    try:
        ports = []
        for _ in range(2):
            runner, port = loop.run_until_complete(_serve(service._ServiceRunner(create_app(_config()),
                                                                                 handle_signals=False)))
            runners.append(runner)
            ports.append(port)
        yield loop, ports[0], ports[1]
    finally:
        for r in runners:
            loop.run_until_complete(r.cleanup())
        loop.close()


def _variant(raw: bytes, version: str, connection) -> bytes:
    head, sep, rest = raw.partition(b"\r\n")
    head = head.replace(b"HTTP/1.1", version.encode())
    extra = f"Connection: {connection}\r\n".encode() if connection else b""
    return head + sep + extra + rest


def test_the_service_sends_its_answers_like_web_response(two_apps, monkeypatch, scaled):
    """The same requests to two applications, one sending with aiohttp's own
    ``web.Response.prepare``/``write_eof`` (``_FAST_SEND`` off), the other with
    ``_Response``'s: the same bytes, HTTP/1.0 and ``Connection`` variants and HEAD included."""
    loop, port_a, port_b = two_apps
    assert service._FAST_SEND  # (on this aiohttp: else nothing here would test the fast way)

    @settings(max_examples=scaled(300))
    @given(method=st.sampled_from(METHODS), path=st.sampled_from(PATHS), body=st.sampled_from(BODIES),
           ctype=st.sampled_from(CTYPES), accept=st.sampled_from([None, "application/msgpack"]),
           version=st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
           connection=st.sampled_from([None, "close", "keep-alive"]))
    def check(method, path, body, ctype, accept, version, connection):
        raw = _variant(_raw(method, path, body, ctype, accept, False, "r4"), version, connection)
        got = []
        for fast, port in ((False, port_a), (True, port_b)):
            monkeypatch.setattr(service, "_FAST_SEND", fast)
            got.append(_normal(loop.run_until_complete(_exchange(port, raw)), raw.startswith(b"HEAD")))
        assert got[0] == got[1], (raw[:300], got[0][:600], got[1][:600])

    check()


def test_the_usual_answer_takes_the_fast_way_and_others_aiohttps(two_apps, monkeypatch):
    loop, port, _ = two_apps
    calls = []
    real = web.Response.prepare

    async def counted(self, request):
        calls.append(request.method)
        return await real(self, request)

    monkeypatch.setattr(web.Response, "prepare", counted)
    body = json.dumps({"plan": PLAN}).encode()
    got = loop.run_until_complete(_exchange(port, _raw("POST", "/ethics/evaluate", body, "application/json",
                                                       None, False, "r5")))
    assert got.count(b"HTTP/1.1 200 ") == 2 and calls == []  # the answer and GET /livez: both the fast way
    got = loop.run_until_complete(_exchange(port, _raw("HEAD", "/health", None, None, None, False, "r5")))
    assert calls == ["HEAD"]  # a HEAD answer has no body: aiohttp's own way
    monkeypatch.setattr(service, "_FAST_SEND", False)
    loop.run_until_complete(_exchange(port, _raw("GET", "/health", None, None, None, False, "r5")))
    assert calls == ["HEAD", "GET", "GET"]


def test_the_import_check_refuses_a_send_that_differs(monkeypatch):
    """_check_fast_send() compares the writer calls and the response state of both ways: an
    _Response.prepare that set one header less (or in another order) is not used."""
    monkeypatch.setattr(service, "_FAST_SEND", True)
    assert service._check_fast_send() is True
    real = service._Response.prepare

    async def no_server_header(self, request):
        self._headers["Server"] = "other"
        return await real(self, request)

    monkeypatch.setattr(service._Response, "prepare", no_server_header)
    assert service._check_fast_send() is False and service._FAST_SEND is False
