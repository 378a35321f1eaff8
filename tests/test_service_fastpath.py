"""The service's per-request shortcuts give the answers of the long way.

* ``/consciousness/analyze`` skips the frame-size walk (``_limits.check_frame``) for bodies
  of at most ``MAX_FRAME_BYTES / FRAME_BYTES_PER_BODY_BYTE`` bytes: the bound must hold
  for the densest JSON and msgpack encodings, with its documented margin.
* Responses are made without ``web.Response.__init__`` (``service._Response``) only when
  the result equals a documented ``web.Response`` on the installed aiohttp.
"""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lukhas_fast import _limits
from lukhas_fast.service import FRAME_BYTES_PER_BODY_BYTE

#: the densest encodings measured must stay this far under the bound (its documented
#: margin).  Estimated bytes follow sys.getsizeof: a one-entry dict is 232 bytes on 3.10
#: and 184 on 3.11+, so the densest body (nested one-entry maps) reads ~139 B per body
#: byte on 3.10 (a 3.7x margin) and ~110 on 3.11+ (over 4x).
MARGIN = 3.5


def _dense_values():
    """Values whose encodings pack the most Python bytes into the fewest body bytes."""
    keys = [chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\']
    for n in (1, 7, 40, 200):
        yield [{} for _ in range(n)]
        yield [[] for _ in range(n)]
        yield ["" for _ in range(n)]
        yield [0 for _ in range(n)]
        yield [0.5 for _ in range(n)]
        yield [[[]] for _ in range(n)]
        yield {k: {} for k in keys[:n]}
        yield {k: 0 for k in keys[:n]}
        yield {k: [] for k in keys[:n]}
        yield {a + b: {} for a in keys[:n // 10 + 1] for b in keys[:10]}
    yield {}
    for depth in (1, 2, 10, 60):  # the densest: nested one-entry maps with empty keys
        v: dict = {}
        for _ in range(depth):
            v = {"": v}
        yield v


def _ratio(value, body: bytes) -> float:
    decoded = json.loads(body) if body[:1] in b"[{" else msgpack.unpackb(body, raw=False, strict_map_key=False)
    return _limits.frame_bytes(decoded) / len(body)


@pytest.mark.parametrize("value", list(_dense_values()), ids=lambda v: f"{type(v).__name__}{len(v)}")
def test_dense_bodies_stay_under_the_bound_with_margin(value):
    frame = {"f": value}
    for body in (json.dumps(frame, separators=(",", ":")).encode(), msgpack.packb(frame)):
        assert _ratio(frame, body) * MARGIN <= FRAME_BYTES_PER_BODY_BYTE, (body[:60], _ratio(frame, body))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=2), inner, max_size=6),
    max_leaves=60)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.dictionaries(st.text(max_size=2), _json_values, max_size=6))
def test_random_frames_stay_under_the_bound(frame):
    for body in (json.dumps(frame, separators=(",", ":")).encode(), msgpack.packb(frame)):
        assert _ratio(frame, body) * MARGIN <= FRAME_BYTES_PER_BODY_BYTE, (body[:60], _ratio(frame, body))


def test_the_bound_can_fail():
    # the bound is tight enough to matter: the densest body uses over a fifth of it
    frame: dict = {}
    for _ in range(60):
        frame = {"": frame}
    body = msgpack.packb(frame)
    assert _ratio(frame, body) * 5 > FRAME_BYTES_PER_BODY_BYTE


@pytest.mark.parametrize("status", [200, 400, 404, 405, 413, 415, 500, 503])
@pytest.mark.parametrize("ctype", ["application/json", "application/msgpack", "text/plain; version=0.0.4; charset=utf-8"])
def test_fast_responses_equal_documented_ones(status, ctype):
    from multidict import CIMultiDict
    from aiohttp import web

    from lukhas_fast import service

    # on the aiohttp the tests run with, the fast class is in use (else this checks nothing)
    assert service._new_response is service._Response
    headers = CIMultiDict((("Content-Type", ctype), ("X-Request-ID", "abc-1")))
    fast = service._new_response(b'{"a":1}', status, headers.copy())
    slow = web.Response(body=b'{"a":1}', status=status, headers=headers)
    assert type(fast).__mro__[1:] == type(slow).__mro__
    fv, sv = dict(vars(fast)), dict(vars(slow))
    assert list(fv.pop("_headers").items()) == list(sv.pop("_headers").items())
    assert fv == sv
    assert (fast.status, fast.reason, fast.body, fast.content_type) == (slow.status, slow.reason, slow.body,
                                                                        slow.content_type)


def test_media_type_memo_equals_aiohttp_and_stays_bounded(monkeypatch):
    """The media type is remembered per Content-Type text: always what aiohttp's
    ``request.content_type`` says for that text (odd casing, parameters, junk, none),
    and at most _MEDIA_TYPES_MAX texts are remembered (a client sending a new text per
    request gets them parsed, not stored)."""
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from lukhas_fast import service as svcmod

    monkeypatch.setattr(svcmod, "_MEDIA_TYPES", {})
    texts = [None, "application/json", "Application/JSON; charset=utf-8", "application/msgpack",
             " application/msgpack ;q=1", "text/plain", "", ";;;", "a/b; c=\"d;e\"", "APPLICATION/X-MSGPACK",
             "multipart/form-data; boundary=x"] + [f"x/y{i}" for i in range(100)]
    for _ in range(2):
        for text in texts:
            headers = CIMultiDict() if text is None else CIMultiDict({"Content-Type": text})
            fresh = make_mocked_request("POST", "/drift/analyze", headers=headers)
            want = make_mocked_request("POST", "/drift/analyze", headers=headers).content_type
            assert svcmod._media_type(fresh) == want, text
    assert len(svcmod._MEDIA_TYPES) == svcmod._MEDIA_TYPES_MAX


class _FakeTransport:
    def __init__(self):
        self.written = []
        self.closed = False

    def write(self, data):
        self.written.append(data)

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed


class _PlainHandler:
    """A handler with the two internals as ordinary attributes (no slots): the generic path."""

    def __init__(self):
        self._request_count = 0
        self._current_request = None
        self.buf = b""

    def connection_made(self, transport):
        pass

    def connection_lost(self, exc):
        pass

    def data_received(self, data):
        self.buf += data
        if self.buf.endswith(b"\r\n\r\n"):  # a whole head: parsed, and being handled
            self.buf = b""
            self._request_count += 1
            self._current_request = object()


class _SlottedHandler(_PlainHandler):
    __slots__ = ("_request_count", "_current_request")


class _BareHandler:
    """No internals at all (another server): only the first request's head is timed."""

    def connection_made(self, transport):
        pass

    def connection_lost(self, exc):
        pass

    def data_received(self, data):
        pass


async def test_header_timeout_reads_slots_directly_with_the_same_timer_behaviour():
    import asyncio

    from aiohttp import web

    from lukhas_fast import service

    loop = asyncio.get_running_loop()
    runner = web.AppRunner(web.Application(), handle_signals=False)
    await runner.setup()
    try:
        assert service._HeaderTimeout(runner.server(), 5.0, loop)._direct is True  # aiohttp's RequestHandler
    finally:
        await runner.cleanup()
    assert service._HeaderTimeout(_PlainHandler(), 5.0, loop)._direct is False
    assert service._HeaderTimeout(_BareHandler(), 5.0, loop)._direct is False
    unset = _SlottedHandler.__new__(_SlottedHandler)  # slots declared but not set: not direct
    assert service._HeaderTimeout(unset, 5.0, loop)._direct is False

    for handler in (_SlottedHandler(), _PlainHandler()):
        p = service._HeaderTimeout(handler, 5.0, loop)
        assert p._direct is isinstance(handler, _SlottedHandler)
        p.connection_made(_FakeTransport())
        assert p._timer is not None  # armed at the connection
        p.data_received(b"GET / HTTP/1.1\r\n")
        assert p._timer is not None  # a partial head: still armed
        p.data_received(b"\r\n")
        assert p._timer is None and handler._request_count == 1  # head parsed: stopped
        p.data_received(b"x")
        assert p._timer is None  # a request in flight: not re-armed
        handler._current_request = None  # answered; the next request's first bytes re-arm it
        p.data_received(b"G")
        assert p._timer is not None
        p.connection_lost(None)
        assert p._timer is None
    p = service._HeaderTimeout(_BareHandler(), 5.0, loop)
    p.connection_made(_FakeTransport())
    p.data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert p._timer is not None  # no internals: the first head's timer runs on
    p.connection_lost(None)
