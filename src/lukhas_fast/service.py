"""The integration guide's production service on aiohttp.

The guide's ``ProductionConsciousnessService`` (tutorial 4) contract, as a
superset: every route accepts the guide's request bodies and answers the
guide's response fields, plus this package's own.

Routes: ``GET /health`` (200 healthy / 503 unhealthy), ``GET /livez``,
``GET /readyz``, ``GET /metrics`` (JSON), ``GET /metrics/prometheus`` (text
exposition), ``GET /openapi.json``, ``POST /consciousness/analyze``,
``POST /safety/enrich``, ``POST /drift/analyze``, ``POST /ethics/evaluate``.

Structure (the seams other modules build on):

* :class:`ServiceConfig` -- every setting, validated by
  :meth:`ServiceConfig.validate` (``ValueError`` naming the setting).
* :class:`DriftStore` -- where the drift monitors live;
  :class:`LocalDriftStore` keeps them in this process.
* :class:`BodyReader` -- reads a request body (size limit, read timeout,
  ``Content-Encoding``) and decodes it by media type (:data:`DECODERS`), with
  the JSON nesting-depth limit applied before any library call.
* :func:`create_app` -- the aiohttp application for one config;
  :func:`start_sites` binds it (with the header-read timeout);
  :func:`serve` runs it until SIGINT/SIGTERM.

The consciousness ticker ticks on the service's own event loop
(``Ticker.run_async``), pushing frames into a ``DecimatingRing``.  Bad input
is a 4xx with a JSON body ``{"error": ..., "field": ..., "request_id": ...}``,
checked before any state changes.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import platform
import re
import socket
import sys
import time
import types
import multiprocessing
from bisect import bisect_left
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from typing import Any, Awaitable, Callable, Deque, Dict, List, Optional, Tuple, Union

import numpy as np
from aiohttp import web
from multidict import CIMultiDict, istr

from lukhas_fast import _limits, _metrics, _msgvec, _scaleout
from lukhas_fast import drift as _drift
from lukhas_fast._backend import backend_info
from lukhas_fast._drift_py import ema_gauge as _drift_ema_gauge
from lukhas_fast._reqmetrics import RequestMetrics
from lukhas_fast._workers import _die_with_parent, worker_info
from lukhas_fast.clock import Ticker
from lukhas_fast.drift import LANE_CFG, DriftMonitor
from lukhas_fast.ethics import EthicsEngine, get_ethics_engine
from lukhas_fast.ring import DecimatingRing
from lukhas_fast.safety_tags import SafetyTagCategory, SafetyTagEnricher

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=str)

    #: a float or an int (``_dumps`` without its options: the same bytes for these)
    _dumps_scalar: Callable[[Any], bytes] = orjson.dumps
    _loads = orjson.loads
    _DecodeError: Tuple[type, ...] = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover - orjson is in the service extra
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, default=str).encode()

    _dumps_scalar = _dumps
    _loads = json.loads
    _DecodeError = (ValueError, RecursionError)

__all__ = [
    "ServiceConfig",
    "SERVICE_KEY",
    "DriftStore",
    "LocalDriftStore",
    "BodyReader",
    "DECODERS",
    "BadRequest",
    "create_app",
    "start_sites",
    "serve",
    "json_depth_exceeds",
    "JsonLogFormatter",
]

logger = logging.getLogger("lukhas_fast.service")
access_logger = logging.getLogger("lukhas_fast.service.access")

MAX_VECTOR_DIM = 65536
#: A bound on the Python bytes (``_limits.frame_bytes``) per byte of a decoded JSON or
#: msgpack body.  The densest encoding costs under 120 on 3.11+ (under 140 on 3.10,
#: whose dicts are larger): msgpack nested one-entry maps with empty keys, 2 bytes per
#: level for a 184-byte dict (232 on 3.10) and a 49-byte key (JSON's densest is under
#: 100); 512 leaves a margin of over 3.5x (tests/test_service_fastpath.py).
FRAME_BYTES_PER_BODY_BYTE = 512
_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
_FLOATS = (_F64, _F32)  # parsed JSON / msgpack bin vectors

# The C drift tier parses drift bodies with the float arrays read straight
# into float64 arrays (None for any body it does not handle); other tiers
# have no such parser and always use _loads.
_loads_vectors = getattr(_drift._impl, "loads_vectors", None)
# ... and msgpack drift bodies of the usual shape in one call (see _msgvec.loads_drift)
_loads_msgpack_vectors = getattr(_drift._impl, "loads_msgpack_vectors", None)
# (its bin vectors, with arrays=False: BinVector buffers, read in place by the drift kernels)
_BinVector: Optional[type] = getattr(_drift._impl, "BinVector", None)
_READER_VECTORS = (np.ndarray,) if _BinVector is None else (np.ndarray, _BinVector)
# ... and encodes flat msgpack answers (the drift result) in one call (None: not flat)
_dumps_msgpack_flat: Optional[Callable[[Any], Optional[bytes]]] = getattr(_drift._impl, "dumps_msgpack_flat", None)

#: Content-Encoding values accepted on request bodies (aiohttp decodes them
#: while reading; anything else is 415).
ACCEPTED_ENCODINGS = ("identity", "gzip", "deflate")


# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------

@dataclass
class ServiceConfig:
    """Every service setting (``serve`` flags / ``LUKHAS_SERVICE_*`` variables).

    Timeouts are in seconds.  :meth:`validate` checks every value and raises
    ``ValueError("<name>: ...")`` for the first bad one.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    #: largest request body in bytes, after Content-Encoding decoding (413 above)
    max_body: int = 1 << 20
    #: deepest JSON nesting of a request body (arrays + objects; 400 above)
    max_depth: int = 64
    fps: float = 30.0
    ring_capacity: int = 1000
    #: lane of ``/drift/analyze`` requests that name none (the guide's "production")
    default_lane: str = "production"
    #: a request head must arrive within this long (from the connection's first byte,
    #: or from the first byte after an idle keep-alive period); else 408 and close
    header_timeout: float = 10.0
    #: a request body must arrive within this long of its handler starting; else 408 and close
    body_timeout: float = 30.0
    #: idle keep-alive connections are closed after this long
    keepalive_timeout: float = 75.0
    #: on SIGINT/SIGTERM, in-flight requests get this long to finish
    shutdown_grace: float = 10.0
    #: bodies larger than this are enriched in a worker process, not on the event loop
    offload_bytes: int = 64 * 1024
    #: worker processes for offloaded enrichment (also the number run at once)
    offload_workers: int = 2
    #: an offloaded enrichment running longer than this is abandoned (503) and its worker killed
    enrich_timeout: float = 30.0
    #: the ticker counts as stalled when no tick came for this long (and 3 tick periods)
    stall_seconds: float = 2.0
    #: serve the Prometheus exposition on this extra port too (None: off)
    metrics_port: Optional[int] = None
    access_log: bool = False
    run_ticker: bool = True
    #: drift lane state: None (in this process) or ``redis://host:port/db`` (shared by every worker/replica)
    state: Optional[str] = None
    #: worker processes of ``serve`` (a supervisor starts them; informational inside a worker)
    workers: int = 1

    def validate(self) -> "ServiceConfig":
        """Check every value; ``ValueError("name: reason")`` for the first bad one."""

        def bad(name: str, why: str) -> None:
            raise ValueError(f"{name}: {why}, got {getattr(self, name)!r}")

        if not isinstance(self.host, str) or not self.host:
            bad("host", "must be a non-empty host name or address")
        for name in ("port", "metrics_port"):
            v = getattr(self, name)
            if v is None and name == "metrics_port":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
                bad(name, "must be an integer in 0..65535")
        for name, lo in (("max_body", 1), ("max_depth", 1), ("ring_capacity", 1), ("offload_workers", 1),
                         ("offload_bytes", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                bad(name, f"must be an integer >= {lo}")
        for name, strict in (("fps", True), ("header_timeout", True), ("body_timeout", True),
                             ("keepalive_timeout", True), ("shutdown_grace", False), ("stall_seconds", True),
                             ("enrich_timeout", True)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or (
                    v <= 0 if strict else v < 0):
                bad(name, "must be a finite number " + ("> 0" if strict else ">= 0"))
        if self.fps > 10000:
            bad("fps", "must be at most 10000")
        if not isinstance(self.default_lane, str) or self.default_lane.lower() not in LANE_CFG:
            bad("default_lane", f"must be one of {', '.join(LANE_CFG)}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            bad("workers", "must be an integer >= 1")
        if self.state is not None and (not isinstance(self.state, str)
                                       or not self.state.startswith(("redis://", "rediss://", "unix://"))):
            bad("state", "must be None or a redis://host:port/db URL")
        return self


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``message``, and the access
    fields when present (``request_id``, ``method``, ``path``, ``status``, ``duration_ms``,
    ``remote``); ``exc`` holds a formatted traceback."""

    _EXTRA = ("request_id", "method", "path", "status", "duration_ms", "remote")

    def format(self, record: logging.LogRecord) -> str:
        out: Dict[str, Any] = {"ts": round(record.created, 6), "level": record.levelname.lower(),
                               "logger": record.name, "message": record.getMessage()}
        for k in self._EXTRA:
            if k in record.__dict__:
                out[k] = record.__dict__[k]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _dumps(out).decode()


class BadRequest(Exception):
    """A rejected request: ``status`` (400 unless said) with ``{"error": message, "field": field}``."""

    def __init__(self, message: str, field: Optional[str] = None, status: int = 400, close: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
        self.close = close  # answer with "Connection: close" (the rest of the body is not read)


JSON_TYPE = "application/json"
_CONTENT_TYPE = istr("Content-Type")
_CONTENT_ENCODING = istr("Content-Encoding")
_ACCEPT = istr("Accept")
_X_REQUEST_ID = istr("X-Request-ID")
_MSGPACK = _scaleout.MSGPACK_TYPE
#: request-metric ``method`` labels: any other method token a client sends counts as
#: ``OTHER``, so that made-up methods cannot grow the label series without bound
_METHOD_LABELS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"))

#: What a route handler returns: a ``web.StreamResponse``, or -- the usual case -- an
#: answer ``(body bytes, status, content type)`` that the guard of :func:`create_app`
#: turns into the response, with the ``X-Request-ID`` header, in one step.
Answer = Tuple[bytes, int, str]


def _ok(data: Any, status: int = 200) -> Answer:
    """``data`` as a JSON answer (see :data:`Answer`)."""
    return _dumps(data), status, JSON_TYPE


class _Response(web.Response):
    """A ``web.Response`` with a bytes body, made without ``Response.__init__``'s
    argument handling, which costs more than everything else the service does for
    a small answer: it copies the headers into a new ``CIMultiDict``, checks the
    content type and charset, and sets the status and body through properties.
    Here the caller passes a ``CIMultiDict`` that becomes the response's headers
    (with ``X-Request-ID`` already in it), and the fields are set directly.

    The fields are aiohttp internals, so :func:`_new_response` uses this class only
    when, at import, an instance equals a ``web.Response`` made the documented way
    (same instance fields and values); otherwise the documented way is used."""

    def __init__(self, body: bytes, status: int, headers: CIMultiDict) -> None:  # noqa: super() not called: see above
        self._state = {}
        self._headers = headers
        self._status = status
        reason = _REASONS.get(status)
        if reason is None:
            reason = _REASONS[status] = web.Response(status=status).reason
        self._reason = reason
        self._body = body
        self._compressed_body = None
        self._zlib_executor_size = _ZLIB_EXECUTOR_SIZE
        self._zlib_executor = None

    # Sending.  aiohttp sends a response through a chain of six coroutines (prepare ->
    # Response._start -> StreamResponse._start -> _prepare_headers, _prepare_hook,
    # _write_headers; then write_eof -> StreamResponse.write_eof): ~2-3 us a request.
    # For the usual answer the two methods below do the same in one coroutine each:
    # the same headers in the same order, written through the same StreamWriter.  They
    # are aiohttp internals too: _FAST_SEND is what _check_fast_send() found at import
    # (both ways give the same writer calls and the same response state); anything
    # else takes web.Response's own methods.
    async def prepare(self, request: web.BaseRequest) -> Any:
        headers = self._headers
        body = self._body
        if (not _FAST_SEND or self._eof_sent or self._payload_writer is not None or request.version != _HTTP11
                or type(body) is not bytes or self._cookies or self._compression or self._chunked
                or not self._length_check or _CONTENT_LENGTH_H in headers
                or _must_be_empty_body(request.method, self._status)):
            return await super().prepare(request)
        self._must_be_empty_body = False
        self._req = request
        writer = self._payload_writer = request._payload_writer
        n = len(body)
        headers[_CONTENT_LENGTH_H] = str(n)  # (Response._start)
        keep_alive = self._keep_alive  # (StreamResponse._prepare_headers, HTTP/1.1, a body)
        if keep_alive is None:
            keep_alive = self._keep_alive = request.keep_alive
        writer.length = n
        if n:
            headers.setdefault(_CONTENT_TYPE, "application/octet-stream")
        if _DATE_H not in headers:
            headers[_DATE_H] = _rfc822_time()
        headers.setdefault(_SERVER_H, _SERVER_SOFTWARE)
        if not keep_alive and _CONNECTION_H not in headers:
            headers[_CONNECTION_H] = "close"
        await request._prepare_hook(self)
        await writer.write_headers(f"HTTP/1.1 {self._status} {self._reason}", headers)
        if self._send_headers_immediately:
            writer.send_headers()
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        writer = self._payload_writer
        if (not _FAST_SEND or self._eof_sent or data or writer is None or self._must_be_empty_body
                or self._compressed_body is not None or type(self._body) is not bytes):
            return await super().write_eof(data)
        await writer.write_eof(self._body)  # (Response.write_eof -> StreamResponse.write_eof)
        self._eof_sent = True
        self._req = None
        self._body_length = writer.output_size
        self._payload_writer = None


try:  # what _Response's sending methods use (aiohttp internals; see _check_fast_send)
    from aiohttp.helpers import must_be_empty_body as _must_be_empty_body
    from aiohttp.helpers import rfc822_formatted_time as _rfc822_time
    from aiohttp.http import SERVER_SOFTWARE as _SERVER_SOFTWARE
    from aiohttp.http import HttpVersion11 as _HTTP11

    _FAST_SEND = True
except ImportError:  # pragma: no cover - another aiohttp
    _FAST_SEND = False
_CONTENT_LENGTH_H, _DATE_H, _SERVER_H, _CONNECTION_H = istr("Content-Length"), istr("Date"), istr("Server"), istr("Connection")


class _CheckWriter:
    """Records what a response asks of its ``StreamWriter`` (see :func:`_check_fast_send`)."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.length: Optional[int] = None
        self.output_size = 0

    async def write_headers(self, status_line: str, headers: Any) -> None:
        self.calls.append(("headers", status_line, list(headers.items())))

    def send_headers(self) -> None:
        self.calls.append(("send",))

    def enable_chunking(self) -> None:
        self.calls.append(("chunking",))

    async def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    async def write_eof(self, data: bytes = b"") -> None:
        self.calls.append(("eof", bytes(data)))
        self.output_size += len(data)


class _CheckRequest:
    """The parts of a request that sending a response reads (see :func:`_check_fast_send`)."""

    def __init__(self, method: str, keep_alive: bool) -> None:
        self.method, self.keep_alive, self.version = method, keep_alive, _HTTP11
        self._payload_writer = _CheckWriter()

    async def _prepare_hook(self, response: Any) -> None:
        pass


def _run_now(coro: Any) -> Any:
    """Run a coroutine that never waits (here: sending to a :class:`_CheckWriter`)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine waited")


def _check_fast_send() -> bool:
    """True when :class:`_Response`'s ``prepare``/``write_eof`` ask the writer for the same
    calls, in the same order, and leave the response in the same state, as
    ``web.Response``'s on this aiohttp, for answers of each kind the service sends."""
    global _FAST_SEND
    if not _FAST_SEND:  # pragma: no cover
        return False
    try:
        for method, status, body, keep_alive in (("POST", 200, b'{"a":1}', True), ("GET", 404, b"{}", False),
                                                 ("POST", 503, b"", True), ("GET", 200, b"x" * 70000, True)):
            seen = []
            for cls in (_Response, web.Response):
                headers = CIMultiDict(((_CONTENT_TYPE, JSON_TYPE), (_X_REQUEST_ID, "x-1")))
                resp = _Response(body, status, headers) if cls is _Response else web.Response(
                    body=body, status=status, headers=headers)
                request = _CheckRequest(method, keep_alive)
                writer = request._payload_writer
                _run_now(resp.prepare(request))
                _run_now(resp.write_eof())
                state = {k: v for k, v in vars(resp).items() if k != "_headers"}
                calls = [c if c[0] != "headers" else c[:2] + ([(k, v) for k, v in c[2] if k != _DATE_H],)
                         for c in writer.calls]  # (the Date of two different seconds)
                seen.append((calls, writer.length, state, [k for k in resp.headers]))
            if seen[0] != seen[1]:
                _FAST_SEND = False
    except Exception:  # pragma: no cover - another aiohttp
        _FAST_SEND = False
    if not _FAST_SEND:  # pragma: no cover
        logger.debug("aiohttp %s: responses are sent by web.Response's own methods", getattr(web, "__version__", "?"))
    return _FAST_SEND


_REASONS: Dict[int, str] = {}
_ZLIB_EXECUTOR_SIZE = getattr(web.Response(body=b""), "_zlib_executor_size", None)


def _documented_response(body: bytes, status: int, headers: CIMultiDict) -> web.Response:
    return web.Response(body=body, status=status, headers=headers)


def _pick_response_class() -> Callable[[bytes, int, CIMultiDict], web.Response]:
    """:class:`_Response` when it builds exactly what ``web.Response`` builds on this aiohttp."""
    try:
        headers = CIMultiDict(((_CONTENT_TYPE, JSON_TYPE), (_X_REQUEST_ID, "x-1")))
        fast = vars(_Response(b"{}", 404, headers.copy())).copy()
        slow = vars(web.Response(body=b"{}", status=404, headers=headers)).copy()
        same = list(fast.pop("_headers").items()) == list(slow.pop("_headers").items()) and fast == slow
    except Exception:  # pragma: no cover - another aiohttp: the documented way
        same = False
    if not same:  # pragma: no cover
        logger.debug("aiohttp %s: responses are made through web.Response()", getattr(web, "__version__", "?"))
    return _Response if same else _documented_response


#: ``(body, status, headers CIMultiDict) -> web.Response`` (see :class:`_Response`)
_new_response = _pick_response_class()
_check_fast_send()


# --------------------------------------------------------------------------------------
# request bodies: reading, Content-Encoding, decoding, nesting depth
# --------------------------------------------------------------------------------------

# A JSON string literal (valid JSON only: every string is terminated).  The
# unrolled form has no nested quantifier, so it is linear in the input.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """True if the *valid* JSON text ``raw`` nests arrays/objects deeper than ``limit``.

    Linear time, no recursion: brackets are counted first (a body with at
    most ``limit`` of them cannot be deeper, the usual case, two ``memchr``
    passes); otherwise string literals are removed, the brackets kept, and the
    running depth is a cumulative sum in numpy.  The pure-Python oracle of the
    C tier's scanner (``csrc/jsondepth.c``), which :func:`decode_json` uses when
    the drift family runs on its C tier.  TypeError if ``limit`` is not an int,
    ValueError if it is negative.
    """
    if not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if len(raw) <= 2 * limit + 1:  # each level takes an opening and a closing byte
        return False
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    a = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((a == 0x5B) | (a == 0x7B), 1, -1).astype(np.int32)
    return bool(a.size) and int(np.cumsum(steps).max()) > limit


# the C tier's one-pass scanner (the same answer on valid JSON, tests/test_jsondepth.py)
_depth_exceeds: Callable[[bytes, int], bool] = getattr(_drift._impl, "json_depth_exceeds", json_depth_exceeds)


def decode_json(raw: bytes, config: ServiceConfig) -> Any:
    """JSON body -> object; malformed or nested deeper than ``config.max_depth``: :class:`BadRequest`."""
    try:
        data = _loads(raw)
    except _DecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}", "body") from None
    if _depth_exceeds(raw, config.max_depth):
        raise BadRequest(f"JSON nested deeper than {config.max_depth} levels", "body")
    return data


#: Body decoders by media type (``Content-Type`` without parameters); a type
#: not listed here (or none) is decoded as JSON.  Each takes the raw body and
#: the config and returns the decoded object or raises :class:`BadRequest`.
DECODERS: Dict[str, Callable[[bytes, ServiceConfig], Any]] = {"application/json": decode_json,
                                                               _scaleout.MSGPACK_TYPE: _scaleout.decode_msgpack}


#: ``Content-Type`` header text -> aiohttp's ``request.content_type`` for it (a pure function
#: of the text, which aiohttp parses anew for each request: ~2-5 us, as much as a route's
#: own work).  Bounded: once full, other texts are parsed as before, not remembered.
_MEDIA_TYPES: Dict[Optional[str], str] = {}
_MEDIA_TYPES_MAX = 64


def _media_type(request: web.Request) -> str:
    """``request.content_type`` (the media type, lowercased, without parameters), remembered
    per header text."""
    raw = request.headers.get(_CONTENT_TYPE)
    mt = _MEDIA_TYPES.get(raw)
    if mt is None:
        mt = request.content_type
        if len(_MEDIA_TYPES) < _MEDIA_TYPES_MAX:
            _MEDIA_TYPES[raw] = mt
    return mt


def _json_again(request: web.Request, ctype: Optional[str], media: str) -> bool:
    """Whether ``request``'s body is read as JSON (:data:`DECODERS`), for a body that a
    route remembered from a request with the ``Content-Type`` text ``ctype``, of media
    type ``media`` (the routes' memos): the same text is the same media type, so only
    its decoder is looked up again (a decoder may be registered since); another text
    takes the whole lookup."""
    if request.headers.get(_CONTENT_TYPE) == ctype:
        return DECODERS.get(media, decode_json) is decode_json
    return DECODERS.get(_media_type(request), decode_json) is decode_json


class BodyTimeout(Exception):
    """The body did not arrive within ``body_timeout``."""


class BodyReader:
    """Reads and decodes request bodies for one config.

    * ``Content-Encoding``: identity, gzip and deflate (decoded by aiohttp as the
      body streams in); any other is 415; undecodable data is 400.
    * Size: more than ``max_body`` bytes (after decoding) is 413, checked as the
      bytes arrive, so a compressed bomb stops at the limit.
    * Time: the whole body must arrive within ``body_timeout`` of the handler
      starting, else 408 and the connection closes (a client trickling bytes, or
      a chunk declared 2^64-1 bytes long, is cut off).
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config

    async def read(self, request: web.Request) -> bytes:
        """The whole body as bytes (see the class docs for the limits)."""
        limit = self.config.max_body
        enc = request.headers.get(_CONTENT_ENCODING)
        if enc is not None and enc.strip().lower() not in ACCEPTED_ENCODINGS:
            raise BadRequest(f"unsupported Content-Encoding {enc[:40]!r}: use one of "
                             f"{', '.join(ACCEPTED_ENCODINGS)}", "Content-Encoding", status=415)
        content = request.content
        # the whole body already buffered (the usual case: it came with the head) is taken
        # without a coroutine, a timer or the Content-Length pre-check (its length is checked below)
        buffered = content.is_eof()
        timer = None
        if not buffered:
            length = request.content_length
            if length is not None and length > limit and enc is None:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
            # the body is still arriving: bound the wait
            timer = asyncio.get_running_loop().call_later(self.config.body_timeout, content.set_exception,
                                                          BodyTimeout())
        try:
            # ``request.read()`` copies every body twice (into a bytearray, then into
            # bytes); a body that arrived as one chunk, the usual case, is used as is.
            raw = content.read_nowait() if buffered else await content.readany()
            if raw and not content.at_eof():
                parts = [raw]
                size = len(raw)
                while True:
                    chunk = await content.readany()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
                    parts.append(chunk)
                raw = b"".join(parts)
        except web.HTTPException:
            raise
        except BodyTimeout:
            raise BadRequest(f"request body not received within {self.config.body_timeout:g} s", "body",
                             status=408, close=True) from None
        except Exception as exc:  # aiohttp: ContentEncodingError / RequestPayloadError (bad gzip...)
            # the parser stopped on this body: mark it finished so that aiohttp does not try to
            # drain it after the answer (which would raise the same error again), and close
            content.feed_eof()
            if enc is not None:
                raise BadRequest(f"request body is not valid {enc.strip().lower()} data", "body", close=True) from None
            raise BadRequest(f"request body could not be read: {exc}", "body", close=True) from None
        finally:
            if timer is not None:
                timer.cancel()
        if len(raw) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
        if not raw:
            raise BadRequest("request body is empty: expected a JSON object", "body")
        return raw

    def decode(self, raw: bytes, request: web.Request) -> Any:
        """Decode ``raw`` by the request's media type (:data:`DECODERS`)."""
        decoder = DECODERS.get(_media_type(request), decode_json)
        return decoder(raw, self.config)

    async def object(self, request: web.Request) -> Dict[str, Any]:
        """Read and decode a body that must be a JSON object."""
        data = self.decode(await self.read(request), request)
        if not isinstance(data, dict):
            raise BadRequest(f"expected a JSON object, got {type(data).__name__}", "body")
        return data


def _object(data: Dict[str, Any], name: str, required: bool = True) -> Optional[Dict[str, Any]]:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field {name!r} (a JSON object)", name)
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"field {name!r} must be a JSON object, got {type(value).__name__}", name)
    return value


def _plain_vector(v: Any) -> bool:
    """True for what :func:`_vector` passes unchanged without a lookup: a non-empty 1-D
    float64/float32 array of at most ``MAX_VECTOR_DIM`` elements (the fast parsers' output)."""
    if type(v) is not np.ndarray or v.ndim != 1:
        return False
    dt = v.dtype
    return (dt is _F64 or dt is _F32 or dt in _FLOATS) and 0 < len(v) <= MAX_VECTOR_DIM


def _vector(data: Dict[str, Any], name: str, alias: str) -> Union[List[float], np.ndarray]:
    """``data[name]`` (or the guide's ``data[alias]``).  The container checks;
    element types and finiteness are checked by the drift kernel itself (before
    the monitor changes), which is far cheaper than a Python loop over 768
    numbers.  JSON true/false count as 1/0, as bools do in the reference.  A 1-D
    float64 array (from the fast body parser) passes the same checks as a list."""
    v = data.get(name)
    if v is None:
        v = data.get(alias)
        if v is None:
            raise BadRequest(f"missing field {name!r} (or {alias!r}): a list of numbers", name)
    if (type(v) is np.ndarray and v.ndim == 1 and v.dtype in _FLOATS) or type(v) is _BinVector:
        pass
    elif not isinstance(v, list):
        raise BadRequest(f"field {name!r} must be a list of numbers, got {type(v).__name__}", name)
    if len(v) == 0:  # (not `not v`: ambiguous for arrays)
        raise BadRequest(f"field {name!r} must not be empty", name)
    if len(v) > MAX_VECTOR_DIM:
        raise BadRequest(f"field {name!r} has {len(v)} elements; at most {MAX_VECTOR_DIM}", name)
    return v


# --------------------------------------------------------------------------------------
# drift state
# --------------------------------------------------------------------------------------

class DriftStore:
    """Where the service's drift monitors live (one per lane).

    The service only calls these three coroutines, so a store shared between
    processes can replace :class:`LocalDriftStore`.  ``update`` must leave the
    lane unchanged when it raises ``TypeError``/``ValueError`` (bad vectors).

    A store whose operations never wait (no I/O) may also offer them as plain
    functions, ``update_now`` and ``lane_state_now`` (same arguments, results and
    errors), and ``ema_now(lane)`` (``lane_state_now(lane)["ema"]`` alone); the
    service then calls those, saving a coroutine per request.
    """

    #: ``update`` without the coroutine (None: the store has none)
    update_now: Optional[Callable[[str, Any, Any], Dict[str, Any]]] = None
    #: ``lane_state`` without the coroutine (None: the store has none)
    lane_state_now: Optional[Callable[[str], Dict[str, Any]]] = None
    #: the lane's EMA (``lane_state_now(lane)["ema"]``) without the coroutine or the dict
    #: (None: the store has none)
    ema_now: Optional[Callable[[str], float]] = None

    async def update(self, lane: str, intent: Any, action: Any) -> Dict[str, Any]:
        """``DriftMonitor(lane).update(intent, action)`` on the lane's monitor."""
        raise NotImplementedError

    async def lane_state(self, lane: str) -> Dict[str, Any]:
        """``{"lane", "ema", "n", "total_analyses"}`` of one lane (zeros if never updated)."""
        raise NotImplementedError

    async def snapshot(self) -> Dict[str, Dict[str, Any]]:
        """``lane_state`` of every lane that has been updated."""
        raise NotImplementedError


class LocalDriftStore(DriftStore):
    """Drift monitors in this process (a dict lane -> ``DriftMonitor``)."""

    def __init__(self) -> None:
        self.monitors: Dict[str, DriftMonitor] = {}
        self.totals: Dict[str, int] = {}

    def update_now(self, lane: str, intent: Any, action: Any) -> Dict[str, Any]:  # type: ignore[override]
        monitor = self.monitors.get(lane)
        if monitor is None:
            # metrics=False: the service publishes the EMA gauges when it flushes its metrics
            # (before each scrape and every second) instead of writing one per update
            monitor = DriftMonitor(lane, metrics=False)
            result = monitor.update(intent, action)  # raises before registering: bad input leaves no lane
            self.monitors[lane] = monitor
            self.totals[lane] = 1
            return result
        result = monitor.update(intent, action)
        self.totals[lane] += 1
        return result

    def lane_state_now(self, lane: str) -> Dict[str, Any]:  # type: ignore[override]
        m = self.monitors.get(lane)
        if m is None:
            return {"lane": lane, "ema": 0.0, "n": 0, "total_analyses": 0}
        return {"lane": lane, "ema": m.ema, "n": m._window_len, "total_analyses": self.totals[lane]}

    def ema_now(self, lane: str) -> float:  # type: ignore[override]
        """``lane_state_now(lane)["ema"]``: the lane's EMA (0.0 if never updated)."""
        m = self.monitors.get(lane)
        return 0.0 if m is None else m.ema

    async def update(self, lane: str, intent: Any, action: Any) -> Dict[str, Any]:
        return self.update_now(lane, intent, action)

    async def lane_state(self, lane: str) -> Dict[str, Any]:
        return self.lane_state_now(lane)

    async def snapshot(self) -> Dict[str, Dict[str, Any]]:
        return {lane: self.lane_state_now(lane) for lane in self.monitors}


# --------------------------------------------------------------------------------------
# the service
# --------------------------------------------------------------------------------------

# SafetyTagCategory member (by id: an Enum's hash runs Python code) -> its value.  The
# members live as long as their class, so their ids are never reused.
_CATEGORY_VALUES = {id(m): m.value for m in SafetyTagCategory}


def _rows(tags: List[Any]) -> List[Dict[str, Any]]:
    """Tags as plain data (one dict per tag)."""
    values = _CATEGORY_VALUES
    return [{"name": t.name, "category": values.get(id(t.category)) or getattr(t.category, "value", t.category),
             "confidence": t.confidence, "description": t.description, "source": t.source, "metadata": t.metadata}
            for t in tags]


def _tag_rows(tagged: Any) -> Tuple[List[Dict[str, Any]], float, Dict[str, Any]]:
    """A ``TaggedPlan`` as plain data: ``(rows, enrichment_time_ms, enrichment_context)``."""
    return _rows(tagged.tags), tagged.enrichment_time_ms, tagged.enrichment_context


def _enrich_answer(plan: Any, rows: List[Dict[str, Any]], ms: Any, ctx: Any) -> Dict[str, Any]:
    """The ``/safety/enrich`` answer object."""
    return {
        # the guide's object
        "tagged_plan": {"original_plan": plan, "tags": [
            {"name": t["name"], "category": t["category"], "confidence": t["confidence"],
             "description": t["description"]} for t in rows], "enrichment_time_ms": ms},
        # ours
        "tags": [{"name": t["name"], "category": t["category"], "confidence": t["confidence"],
                  "source": t["source"], "metadata": t["metadata"]} for t in rows],
        "tag_names": sorted({t["name"] for t in rows}),
        "enrichment_time_ms": ms,
        "enrichment_context": ctx,
    }


class _Holes:
    """An answer's JSON with holes: the answer object built with a marker string in
    each variable place (a hole), encoded once, and cut at the markers into the
    constant pieces between them.  Joining the pieces with each hole's value encoded
    on its own gives the same bytes as encoding the whole answer (JSON encoders are
    compositional), by construction.  The markers hold a per-process random nonce,
    and an encoding whose markers do not occur exactly in the expected order (a value
    containing a marker, a builder that changed its key order) is not cut (None):
    the caller then encodes the whole answer."""

    _nonce = f"\x00lukhas-{os.urandom(8).hex()}-"

    def __init__(self, *holes: str) -> None:
        #: hole name -> the marker to build the answer with
        self.mark = {h: self._nonce + h for h in holes}
        self._want = [_dumps(self.mark[h]) for h in holes]
        self._split = re.compile(b"|".join(re.escape(e) for e in dict.fromkeys(self._want)))

    def cut(self, whole: bytes) -> Optional[Tuple[bytes, ...]]:
        """The ``len(holes) + 1`` pieces of ``whole`` around its holes (None: see the class)."""
        if self._split.findall(whole) != self._want:
            return None
        return tuple(self._split.split(whole))


# The /safety/enrich answer is mostly a function of the tags alone, and a cache hit's tags
# are those of the enricher's cache entry: _render_enrich_tags cuts that part once per
# entry (SafetyTagEnricher.enrich_rendered keeps it with the entry), with holes for the
# plan, the time (twice) and the context.
_ENRICH_HOLES = _Holes("plan", "ms", "ms", "ctx")


def _render_enrich_tags(tags: List[Any]) -> Union[Tuple[bytes, ...], List[Dict[str, Any]]]:
    """The five pieces (a tuple) of the ``/safety/enrich`` answer around its plan, time
    (twice) and context, for these tags; if they do not cut exactly, the tags' rows (a
    list; the answer is then encoded whole)."""
    rows = _rows(tags)
    m = _ENRICH_HOLES.mark
    parts = _ENRICH_HOLES.cut(_dumps(_enrich_answer(m["plan"], rows, m["ms"], m["ctx"])))
    return rows if parts is None else parts


def _enrich_body(parts: Tuple[bytes, ...], plan_json: bytes, ms: float, ctx: Any) -> bytes:
    """``_dumps(_enrich_answer(plan, rows, ms, ctx))`` from the pieces :func:`_render_enrich_tags`
    cut and ``plan_json`` = ``_dumps(plan)``."""
    t = _dumps_scalar(ms)  # (a float: the same bytes as _dumps, without its Python frame)
    c = _HIT_CTX_JSON if len(ctx) == 1 and ctx.get("cache_hit") is True else _dumps(ctx)  # (a hit's context)
    return b"".join((parts[0], plan_json, parts[1], t, parts[2], t, parts[3], c, parts[4]))


_HIT_CTX_JSON = _dumps({"cache_hit": True})


def _no_key(plan: Any, context: Any) -> None:
    """An enricher without ``_rendered_key`` (another tier): nothing is remembered."""
    return None


def _no_hit(key: Any, render: Any) -> None:
    """An enricher without ``_rendered_hit`` (replaced by another tier's): no hit."""
    return None


def _health_answer(key: Tuple[Any, ...], score: Dict[str, float], uptime: Any) -> Dict[str, Any]:
    """The ``GET /health`` answer object (``key`` as in :meth:`Service.health`)."""
    ticker_state, ready, running, tick_count = key[0], key[5], key[6], key[7]
    healthy = ready and (ticker_state == "running" or ticker_state == "disabled")
    return {
        # the guide's fields
        "status": "healthy" if healthy else "unhealthy",
        "uptime_seconds": uptime,
        "components": {"consciousness_ticker": ticker_state, "drift_monitor": "active",
                       "safety_enricher": "operational", "ethics_engine": "operational",
                       "service": "ready" if ready else "not_ready"},
        "metrics": {"consciousness_health": score["score"], "health_factors": score},
        # ours
        "uptime_s": uptime,
        "ticker_running": running,
        "tick_count": tick_count,
    }


# The GET /health answer with holes for the uptime (twice).
_HEALTH_HOLES = _Holes("up", "up")


# The POST /consciousness/analyze answer to a frame, {"accepted": true, "tick": T, "buffer": S}:
# the pieces around the tick and the ring's statistics.  The ring writes S itself
# (DecimatingRing._backpressure_json: its floats and strategy name encoded by _dumps_scalar),
# which gives the bytes of _dumps(S) when the encoder is compact like orjson's; checked
# once here (_ACCEPTED_PARTS is None otherwise, and the answer is encoded whole).
def _accepted_parts() -> Optional[Tuple[bytes, ...]]:
    holes = _Holes("tick", "buffer")
    m = holes.mark
    parts = holes.cut(_dumps({"accepted": True, "tick": m["tick"], "buffer": m["buffer"]}))
    if parts is None:  # pragma: no cover - the pieces always cut with orjson and json
        return None
    ring = DecimatingRing(10, 0.75, 3, "adaptive")
    for i in range(23):
        ring.push(i)
        # (the ring's own, tier-independent encoding of its statistics must equal _dumps of them)
        fast = ring._backpressure_json(_dumps_scalar, b"", b"")
        if fast != _dumps(ring.get_backpressure_stats()):
            logger.debug("the ring's statistics are encoded whole in /consciousness/analyze answers")
            return None
    return parts


_ACCEPTED_PARTS = _accepted_parts()


_MISSING = object()


class _BodyMemo:
    """Request body -> what a route remembers of it (``/ethics/evaluate``,
    ``/safety/enrich``: see their handlers).  A body is remembered the second time it
    is seen; a first sighting only marks it (an empty tuple), so that a stream of
    distinct bodies costs one dict entry each and never the remembering.  At most
    ``limit`` bodies of up to ``max_body`` bytes; all are forgotten when full (a
    bounded memo with no per-request bookkeeping).  Event-loop use only."""

    __slots__ = ("entries", "limit", "max_body")

    def __init__(self, limit: int = 512, max_body: int = 4096) -> None:
        self.entries: Dict[bytes, Tuple[Any, ...]] = {}
        self.limit = limit
        self.max_body = max_body

    def admit(self, raw: bytes, seen: bool) -> bool:
        """Whether to remember ``raw`` now (``seen``: it had an entry): only on a second
        sighting; a first is marked.  False for a body over ``max_body``."""
        if len(raw) > self.max_body:
            return False
        entries = self.entries
        if len(entries) >= self.limit:
            entries.clear()
        if not seen:
            entries[raw] = ()
            return False
        return True


# A remembered /ethics/evaluate answer is cut after its time's key (Service._remember_ethics)
_ETHICS_MS_KEY = b',"evaluation_time_ms":'
_ETHICS_TAIL = b',"safety_tags":null}'


_worker_enricher: Optional[SafetyTagEnricher] = None


def _worker_init(parent: Optional[int] = None) -> None:
    """Offload workers run at a lower CPU priority (nice +10) than the event loop, so on a busy
    machine the loop keeps answering while large plans are being enriched; on Linux they
    exit with the service process ``parent`` that started them, even one that was killed."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # pragma: no cover - no nice() (Windows) or not permitted
        pass
    if parent is not None and sys.platform.startswith("linux"):
        _die_with_parent(parent)


def _worker_ready() -> bool:
    """A no-op task: makes the pool start its workers."""
    time.sleep(0.05)  # long enough that each of the warm-up tasks lands on its own worker
    return True


def _offloaded_enrich(plan: Dict[str, Any], context: Optional[Dict[str, Any]]) -> Any:
    """Runs in an offload worker process: :func:`_tag_rows` of the enrichment."""
    global _worker_enricher
    if _worker_enricher is None:
        _worker_enricher = SafetyTagEnricher(enable_caching=True)
    return _tag_rows(_worker_enricher.enrich_plan(plan, context))


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a worker pool now: its processes are killed, pending work is cancelled."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(5)


#: guide endpoint label of each route (``consciousness_requests_total{endpoint}``)
_ENDPOINTS = {
    "/health": "health_check", "/livez": "livez", "/readyz": "readyz", "/metrics": "metrics",
    "/metrics/prometheus": "prometheus", "/openapi.json": "openapi",
    "/consciousness/analyze": "analyze_consciousness", "/safety/enrich": "enrich_safety",
    "/drift/analyze": "analyze_drift", "/ethics/evaluate": "evaluate_ethics",
}

_REQUEST_ID_OK = re.compile(r"[!-~]{1,128}\Z")  # printable ASCII, no spaces, <= 128 characters


class Service:
    """State of one service instance (drift store, ring, ticker, enricher, engine, metrics)."""

    def __init__(self, config: ServiceConfig, drift_store: Optional[DriftStore] = None) -> None:
        self.config = config
        self.started = time.time()
        self.ready = False  # set once started, cleared when shutting down
        self.body = BodyReader(config)
        if drift_store is None:
            drift_store = _scaleout.RedisDriftStore(config.state) if config.state else LocalDriftStore()
        self.drift_store = drift_store
        # a store that never waits offers its operations as plain functions (see DriftStore)
        self._update_now = getattr(drift_store, "update_now", None)
        self._lane_state_now = getattr(drift_store, "lane_state_now", None)
        self._ema_now = getattr(drift_store, "ema_now", None)
        self.default_lane = config.default_lane.lower()
        # msgpack answers; one packer serves the service's event loop (not thread-safe)
        self._pack: Callable[[Any], bytes] = _msgvec.new_packer().pack if _msgvec.AVAILABLE else _msgvec.dumps
        # ... the C tier's one-call encoder of flat answers (the drift result) first: the same bytes
        self._pack_flat = _dumps_msgpack_flat if _msgvec.AVAILABLE else None
        self.ring = DecimatingRing(config.ring_capacity, 0.8, 2, "skip_nth")
        self.ticker = Ticker(config.fps)
        self.ticker.subscribe(self._on_tick)
        # tick times of the last ~2 s (for the measured rate and the stall check)
        self._ticks: Deque[float] = collections.deque(maxlen=max(8, min(4096, int(config.fps * 2) + 1)))
        self.enricher = SafetyTagEnricher(enable_caching=True)
        self.engine = get_ethics_engine()
        #: /ethics/evaluate: request body -> its remembered evaluation (see Service.ethics)
        self._ethics_memo = _BodyMemo()
        #: /safety/enrich: request body -> (the enricher's cache key, the plan's JSON) (see Service.safety)
        self._enrich_memo = _BodyMemo()
        self.frames_submitted = 0
        # POST /consciousness/analyze: (tick, the frame answer's bytes up to its ring statistics)
        self._accepted_head: Tuple[Any, bytes] = (None, b"")
        self._ticker_task: Optional[asyncio.Task] = None
        self._pool: Optional[ProcessPoolExecutor] = None
        self._offload_slots = asyncio.Semaphore(config.offload_workers)
        self.offloaded = 0  # enrichments run in worker processes
        self.offload_failures = 0  # ... that timed out or lost their worker
        self._rid_prefix = os.urandom(4).hex()
        self._rid_counter = itertools.count(1)
        buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
        self.requests = _metrics.counter("lukhas_service_requests_total", "HTTP requests", ["route", "method", "status"])
        self.latency = _metrics.histogram("lukhas_service_request_seconds", "HTTP request latency", ["route"],
                                          buckets=buckets)
        # the guide's three metrics
        self.guide_requests = _metrics.counter("consciousness_requests_total", "Total consciousness requests",
                                               ["endpoint", "status"])
        self.guide_latency = _metrics.histogram("consciousness_request_duration_seconds", "Request duration",
                                                ["endpoint"], buckets=buckets)
        self.guide_health = _metrics.gauge("consciousness_system_health",
                                           "Overall consciousness system health score")
        # per request: a dict update; flushed into the metrics above before each scrape and every second
        self.reqmetrics = RequestMetrics(
            [(self.requests, lambda k: (k[0], k[1], str(k[2]))),
             (self.guide_requests, lambda k: (_ENDPOINTS.get(k[0], "unmatched"), "success" if k[2] < 400 else "error"))],
            [(self.latency, lambda k: (k[0],)), (self.guide_latency, lambda k: (_ENDPOINTS.get(k[0], "unmatched"),))],
            buckets)
        self.reqmetrics.before_flush.append(self._publish_drift_gauges)
        self.reqmetrics.before_flush.append(self._publish_health_gauge)
        # while the app runs, the ethics engine's metrics are counted the same way (on_startup)
        self._engine_metrics = self.engine.rule_set._metrics
        self.reqmetrics.before_flush.append(self._engine_metrics.flush)
        self._metrics_on = _metrics.metrics_default()
        cfg = LANE_CFG[self.default_lane]
        self._warn, self._block = cfg.warn_threshold, cfg.block_threshold
        self._health_score: Optional[float] = None  # the last computed score (published at flush)
        # GET /health: (key, score, pieces, status) of the last answer (see health())
        self._health_last: Optional[Tuple[Any, float, Optional[Tuple[bytes, ...]], int]] = None

    # -- metrics helpers ----------------------------------------------------------------
    def _publish_drift_gauges(self) -> None:
        # the local store's monitors run with metrics=False (a gauge write per update
        # costs ~1 us); their EMA gauges are set here, before every scrape and every second
        if self._metrics_on:
            for lane, m in self.monitors.items():
                _drift_ema_gauge(lane).set(m.ema)

    def _publish_health_gauge(self) -> None:
        # consciousness_system_health: the last score computed (by /health, /metrics, the
        # analyses or a scrape, which computes a fresh one first), set at flush, not per request
        if self._health_score is not None:
            self.guide_health.set(self._health_score)

    def next_request_id(self) -> str:
        return f"{self._rid_prefix}-{next(self._rid_counter):x}"

    # -- live state ---------------------------------------------------------------------
    def _on_tick(self, tick: int) -> None:
        t = time.monotonic()
        self._ticks.append(t)
        self.ring.push({"tick": tick, "t": time.time()})

    def ticker_status(self) -> Tuple[str, float]:
        """``(state, measured_fps)``: state is ``running``, ``stalled``, ``stopped`` or ``disabled``.

        ``measured_fps`` = (ticks in the last ~2 s window - 1) / their time span;
        ``stalled`` = running but no tick for ``max(stall_seconds, 3 / fps)``.
        """
        config = self.config
        if not config.run_ticker:
            return "disabled", 0.0
        # (GET /health calls this per request: one read of each input, no max() call)
        now = time.monotonic()
        if not self.ticker.running:
            return "stopped", 0.0
        ticks = self._ticks
        n = len(ticks)
        last = ticks[-1] if n else self._ticker_started
        stall, limit = config.stall_seconds, 3.0 / config.fps
        if now - last > (limit if limit > stall else stall):  # (max(stall, limit))
            return "stalled", 0.0
        if n >= 2:
            first = ticks[0]
            if last > first:
                return "running", (n - 1) / (last - first)
        return "running", 0.0

    _ticker_started = 0.0

    async def live_state(self) -> Dict[str, Any]:
        """Everything the health score and the analyses are computed from."""
        state, measured = self.ticker_status()
        tm = self.ticker.get_metrics()
        ring = self.ring.get_backpressure_stats()
        lane = await self._lane_state(self.default_lane)
        return {"ticker_state": state, "measured_fps": measured, "ticker": tm, "ring": ring, "drift": lane,
                "warn": self._warn, "block": self._block}

    async def _lane_state(self, lane: str) -> Dict[str, Any]:
        now = self._lane_state_now
        return now(lane) if now is not None else await self.drift_store.lane_state(lane)

    def health_score(self, s: Dict[str, Any]) -> Dict[str, float]:
        """The four factors of ``consciousness_health`` and their mean (each in [0, 1]):

        * ``service``: 1 when ready (started, not shutting down), else 0;
        * ``ticker``: ``min(1, measured_fps / fps)`` when running (1 when the ticker is
          disabled), 0 when stopped or stalled;
        * ``drift``: default lane's EMA below its warn threshold 1, below block 0.5, else 0;
        * ``ring``: ``1 - drop_rate`` of the consciousness ring.
        """
        return self._factors(s["ticker_state"], s["measured_fps"], s["drift"]["ema"], s["ring"]["drop_rate"])

    def _factors(self, st: str, measured: float, ema: float, drop_rate: float) -> Dict[str, float]:
        if st == "disabled":
            ticker = 1.0
        elif st == "running":
            ticker = min(1.0, measured / self.config.fps) if measured else 1.0
        else:
            ticker = 0.0
        drift = 1.0 if ema < self._warn else 0.5 if ema < self._block else 0.0
        service = 1.0 if self.ready else 0.0
        ring = 1.0 - min(1.0, drop_rate)
        score = (service + ticker + drift + ring) / 4.0
        self._health_score = score  # the consciousness_system_health gauge (set at the next flush)
        return {"service": service, "ticker": ticker, "drift": drift, "ring": ring, "score": score}

    # -- routes -------------------------------------------------------------------------
    async def health(self, request: web.Request) -> Answer:
        # only what the score needs (live_state also collects the ticker's and ring's full statistics)
        ticker_state, measured = self.ticker_status()
        ema_now = self._ema_now  # (the in-process store: no coroutine, no dict)
        if ema_now is not None:
            ema = ema_now(self.default_lane)
        else:
            ema = (await self._lane_state(self.default_lane))["ema"]
        ticker = self.ticker
        # Everything in the answer but the uptime (twice) is a function of this key, which
        # changes only with a tick, a drift threshold crossing, a drop or a change of state:
        # between those, the answer is the pieces cut from the last whole encoding, joined
        # with the uptime.
        key = (ticker_state, measured, ema < self._warn, ema < self._block, self.ring.drop_rate, self.ready,
               ticker.running, ticker.tick_count)
        last = self._health_last
        if last is None or last[0] != key:
            last = self._health_last = self._health_render(key, ema)
        self._health_score = last[1]  # (as _factors sets it)
        up = time.time() - self.started
        parts = last[2]
        if parts is None:  # the pieces did not cut: the whole answer
            return _ok(_health_answer(key, self._factors(ticker_state, measured, ema, key[4]), up), status=last[3])
        u = _dumps_scalar(up)
        return b"".join((parts[0], u, parts[1], u, parts[2])), last[3], JSON_TYPE

    def _health_render(self, key: Tuple[Any, ...], ema: float) -> Tuple[Any, float, Optional[Tuple[bytes, ...]], int]:
        """``(key, score, pieces, status)`` of the ``GET /health`` answer for ``key`` (see
        :meth:`health`): the pieces around the uptime (twice), or None if they do not cut
        (the answer is then encoded whole each time)."""
        ticker_state, measured = key[0], key[1]
        score = self._factors(ticker_state, measured, ema, key[4])
        m = _HEALTH_HOLES.mark
        parts = _HEALTH_HOLES.cut(_dumps(_health_answer(key, score, m["up"])))
        healthy = key[5] and (ticker_state == "running" or ticker_state == "disabled")
        return key, score["score"], parts, 200 if healthy else 503

    async def livez(self, request: web.Request) -> Answer:
        return _ok({"status": "alive"})

    async def readyz(self, request: web.Request) -> Answer:
        if self.ready:
            return _ok({"status": "ready"})
        return _ok({"status": "not_ready"}, status=503)

    async def metrics(self, request: web.Request) -> Answer:
        s = await self.live_state()
        score = self.health_score(s)
        stats = self.enricher.get_stats()
        return _ok({
            # the guide's keys
            "consciousness_ticker": {"fps": self.config.fps, "measured_fps": s["measured_fps"],
                                     "buffer_utilization": s["ring"]["utilization"],
                                     "frames_processed": s["ticker"]["ticks_processed"],
                                     "state": s["ticker_state"]},
            "drift_monitor": {"current_ema": s["drift"]["ema"], "lane": self.default_lane,
                              "total_analyses": s["drift"]["total_analyses"], "window": s["drift"]["n"]},
            "safety_enricher": stats,
            "consciousness_health": score["score"],
            # ours
            "ticker": s["ticker"],
            "ring": s["ring"],
            "drift": await self.drift_store.snapshot(),
            "enricher": stats,
            "offloaded_enrichments": {"done": self.offloaded, "failed": self.offload_failures,
                                      "workers": self.offload_workers_alive()},
            "engine": {k: v for k, v in self.engine.get_stats().items() if k != "recent_evaluations"},
            "backend": {f: e["tier"] for f, e in backend_info()["families"].items()},
            **_scaleout.worker_section(self.drift_store),  # which worker answered; whether drift state is shared
        })

    async def prometheus(self, request: web.Request) -> Answer:
        if not _metrics.PROMETHEUS_AVAILABLE:
            raise BadRequest("prometheus_client is not installed", None, status=501)
        self.health_score(await self.live_state())  # consciousness_system_health is current at each scrape
        self.reqmetrics.flush()
        body, ctype = _scaleout.prometheus_exposition()  # every worker's metrics under serve --workers
        return body, 200, ctype

    async def openapi(self, request: web.Request) -> Answer:
        from lukhas_fast._openapi import openapi_document

        return _ok(openapi_document())

    async def consciousness(self, request: web.Request) -> Answer:
        body = self.body
        raw = await body.read(request)
        data = DECODERS.get(_media_type(request), decode_json)(raw, body.config)  # (body.decode, inlined)
        if not isinstance(data, dict):
            raise BadRequest(f"expected a JSON object, got {type(data).__name__}", "body")
        frame = data.get("frame", _MISSING)
        if frame is not _MISSING:  # frame submission (ours)
            if type(frame) is not dict:  # (a dict: what _object returns for it, without the call)
                frame = _object(data, "frame")
            # the ring holds frames until overwritten: one frame's memory is bounded.  A body
            # of n bytes decodes to at most FRAME_BYTES_PER_BODY_BYTE * n bytes of Python
            # objects, so a small body needs no walk over the frame
            if len(raw) * FRAME_BYTES_PER_BODY_BYTE > _limits.MAX_FRAME_BYTES:
                try:
                    _limits.check_frame(frame)
                except ValueError as exc:
                    raise BadRequest(str(exc), "frame", status=413) from None
            priority = data.get("priority")
            # (a float, the usual priority, passes without the isinstance calls)
            if priority is not None and type(priority) is not float \
                    and (isinstance(priority, bool) or not isinstance(priority, (int, float))):
                raise BadRequest("field 'priority' must be a number", "priority")
            ring = self.ring
            ring.push(frame, priority)
            self.frames_submitted += 1
            tick = self.ticker.tick_count
            parts = _ACCEPTED_PARTS
            if parts is not None and type(tick) is int:
                # the answer's bytes without the dicts: the head (per tick) and the ring's
                # statistics written by the ring (None: its get_backpressure_stats is overridden)
                head = self._accepted_head
                if head[0] != tick:
                    head = self._accepted_head = (tick, parts[0] + _dumps_scalar(tick) + parts[1])
                body = ring._backpressure_json(_dumps_scalar, head[1], parts[2])
                if body is not None:
                    return body, 200, JSON_TYPE
            return _ok({"accepted": True, "tick": tick, "buffer": ring.get_backpressure_stats()})
        kind = data.get("type", "general")
        if not isinstance(kind, str):
            raise BadRequest(f"field 'type' must be a string, got {type(kind).__name__}", "type")
        return _ok(self.analyse(kind, await self.live_state()))

    def analyse(self, kind: str, s: Dict[str, Any]) -> Dict[str, Any]:
        """The guide's analyses, computed from the live state (see the README for the formulas)."""
        score = self.health_score(s)
        ring, tm, drift = s["ring"], s["ticker"], s["drift"]
        st = s["ticker_state"]
        rate = 1.0 if st == "disabled" else (min(1.0, s["measured_fps"] / self.config.fps) if st == "running" else 0.0)
        awareness = rate * (1.0 - min(1.0, ring["drop_rate"]))
        sub_err = tm["subscriber_exceptions"] / max(1, tm["ticks_processed"])
        coherence = (1.0 - min(1.0, drift["ema"] / s["block"])) * (1.0 - min(1.0, sub_err))
        within = drift["ema"] < s["warn"]
        base = {"timestamp": time.time(), "type": kind, "lane": self.default_lane, "drift_ema": drift["ema"],
                "measured_fps": s["measured_fps"], "target_fps": self.config.fps,
                "buffer_utilization": ring["utilization"], "drop_rate": ring["drop_rate"],
                "subscriber_errors": tm["subscriber_exceptions"]}
        if kind == "state_analysis":
            if st in ("stopped", "stalled"):
                state = st
            elif rate < 0.9 or ring["utilization"] >= ring["pressure_threshold"]:
                state = "degraded"
            else:
                state = "active"
            base.update({"consciousness_state": state, "awareness_level": awareness, "coherence_score": coherence,
                         "system_health": score["score"]})
        elif kind == "coherence_check":
            status = "stable" if within else "drifting" if drift["ema"] < s["block"] else "unstable"
            base.update({"coherence_status": status, "coherence_score": coherence,
                         "components_synchronized": st in ("running", "disabled") and rate >= 0.9
                         and ring["utilization"] < ring["pressure_threshold"] and tm["subscriber_exceptions"] == 0,
                         "drift_within_limits": within})
        else:
            ok = score["score"] >= 0.75
            base.update({"analysis": "general_consciousness_ok" if ok else "general_consciousness_degraded",
                         "system_health": score["score"]})
        return base

    async def _enrich(self, plan: Dict[str, Any], context: Optional[Dict[str, Any]],
                      size: int) -> Tuple[List[Dict[str, Any]], float, Dict[str, Any]]:
        """``(tag rows, enrichment_time_ms, enrichment_context)`` of a plan.

        A body of at most ``offload_bytes`` is enriched on the event loop (the fast,
        usual case).  A larger one is enriched in a worker process (at most
        ``offload_workers`` at once; others wait without blocking the loop): a large
        plan holds the GIL for as long as its enrichment takes, which on a thread
        would stall every other request, ``GET /health`` included.  An offloaded
        enrichment still running after ``enrich_timeout`` seconds is abandoned: the
        workers are killed (a new pool starts on the next large body) and the request
        is 503.  Worker processes keep their own tag cache and statistics
        (``/metrics``: ``offloaded_enrichments``).
        """
        if size <= self.config.offload_bytes:
            return _tag_rows(self.enricher.enrich_plan(plan, context))
        async with self._offload_slots:
            pool = self._offload_pool()
            fut = asyncio.get_running_loop().run_in_executor(pool, _offloaded_enrich, plan, context)
            try:
                result = await asyncio.wait_for(fut, self.config.enrich_timeout)
            except (asyncio.TimeoutError, BrokenProcessPool):
                self.offload_failures += 1
                if self._pool is pool:
                    self._pool = None
                    _kill_pool(pool)
                raise BadRequest(f"enrichment did not finish within {self.config.enrich_timeout:g} s", "plan",
                                 status=503) from None
            self.offloaded += 1
            return result

    def _offload_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.config.offload_workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_init, initargs=(os.getpid(),))
        return self._pool

    def offload_workers_alive(self) -> int:
        """How many offload worker processes are running now."""
        procs = getattr(self._pool, "_processes", None) or {}
        return sum(1 for p in list(procs.values()) if p.is_alive())

    async def warm_up(self) -> None:
        """Start the offload workers now (``serve`` does, before logging that it listens), so
        the first large body does not wait for processes to start."""
        pool = self._offload_pool()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, _worker_ready) for _ in range(self.config.offload_workers)))

    async def safety(self, request: web.Request) -> Answer:
        """``POST /safety/enrich``.

        A JSON body of at most ``offload_bytes`` whose enrichment was a cache hit of the
        enricher's fast path is remembered when seen twice (:class:`_BodyMemo`) as the
        enricher's cache key and the plan's JSON: a repeat then asks the enricher for that
        key (``_rendered_hit``: the same answer and the same counting as the hit) without
        decoding the body or building the key again.  When the key is no longer cached
        (evicted, cleared by ``add_detector`` ...), the request takes the whole path."""
        raw = await self.body.read(request)
        enricher = self.enricher
        hit = self._enrich_memo.entries.get(raw)
        if hit and _json_again(request, hit[2], hit[3]):
            key, plan_json, _ctype, _media = hit
            got = getattr(enricher, "_rendered_hit", _no_hit)(key, _render_enrich_tags)
            if got is not None:
                parts, ms, ctx = got
                if type(parts) is tuple:
                    return _enrich_body(parts, plan_json, ms, ctx), 200, JSON_TYPE
                return _ok(_enrich_answer(_loads(plan_json), parts, ms, ctx))  # (tags that do not cut: never in practice)
        data = self.body.decode(raw, request)
        if not isinstance(data, dict):
            raise BadRequest(f"expected a JSON object, got {type(data).__name__}", "body")
        # as in the guide's service, a body without a plan enriches the empty plan
        plan = data.get("plan")
        if type(plan) is not dict:  # (a dict: what _object returns for it, without the call)
            plan = _object(data, "plan", required=False) or {}
        context = data.get("context")
        if context is not None and type(context) is not dict:
            context = _object(data, "context", required=False)
        if len(raw) <= self.config.offload_bytes:  # (_enrich's usual case, without its coroutine)
            # the answer's tag part comes pre-encoded (kept with a cache hit's entry)
            parts, ms, ctx = enricher.enrich_rendered(plan, context, _render_enrich_tags)
            if type(parts) is tuple:
                plan_json = _dumps(plan)
                if (ctx.get("cache_hit") is True and DECODERS.get(_media_type(request), decode_json) is decode_json
                        and self._enrich_memo.admit(raw, hit is not None)):
                    key = getattr(enricher, "_rendered_key", _no_key)(plan, context)
                    if key is not None:
                        self._enrich_memo.entries[raw] = (key, plan_json, request.headers.get(_CONTENT_TYPE),
                                                          _media_type(request))
                return _enrich_body(parts, plan_json, ms, ctx), 200, JSON_TYPE
            rows = parts  # (tags that do not cut at the markers: never in practice)
        else:
            rows, ms, ctx = await self._enrich(plan, context, len(raw))
        return _ok(_enrich_answer(plan, rows, ms, ctx))

    async def drift(self, request: web.Request) -> Answer:
        raw = await self.body.read(request)
        headers = request.headers
        ctype = headers.get(_CONTENT_TYPE)
        reader = False  # data from a one-call reader (msgpack, or JSON's loads_vectors: 1-D float arrays)
        if ctype is not None and ctype != JSON_TYPE and (ctype == _MSGPACK or _scaleout.is_msgpack_type(ctype)):
            # bin vectors come back as views into the body
            data = _loads_msgpack_vectors(raw, False) if _loads_msgpack_vectors is not None else None
            reader = data is not None
            if data is None:  # not the one-call reader's shape (or a non-C tier): the general decoder, same errors
                data = _scaleout.decode_msgpack(raw)
                if not isinstance(data, dict):
                    raise BadRequest(f"expected a msgpack map, got {type(data).__name__}", "body")
        else:
            data = _loads_vectors(raw) if _loads_vectors is not None else None
            reader = data is not None
            if data is None:  # not the fast parser's shape (or a non-C tier): the general decoder, same errors
                data = self.body.decode(raw, request)
                if not isinstance(data, dict):
                    raise BadRequest(f"expected a JSON object, got {type(data).__name__}", "body")
        lane = data.get("lane")
        if lane is None:
            lane = self.default_lane
        elif not isinstance(lane, str) or (lane := lane.lower()) not in LANE_CFG:
            raise BadRequest(f"field 'lane' must be one of {', '.join(LANE_CFG)}", "lane")
        intent = data.get("intent")
        action = data.get("action")
        # the fast parsers' arrays pass _vector's checks unchanged (the readers' arrays and
        # BinVectors are 1-D float vectors: only their lengths need a look); lists, aliases and
        # errors go through _vector
        if not ((type(intent) in _READER_VECTORS and type(action) in _READER_VECTORS
                 and 0 < len(intent) <= MAX_VECTOR_DIM and 0 < len(action) <= MAX_VECTOR_DIM) if reader
                else (type(intent) is np.ndarray and type(action) is np.ndarray and _plain_vector(intent)
                      and _plain_vector(action))):
            intent = _vector(data, "intent", "intent_vector")
            action = _vector(data, "action", "action_vector")
        if len(intent) != len(action):
            raise BadRequest(f"intent and action must have the same length, got {len(intent)} and {len(action)}",
                             "action")
        update_now = self._update_now
        try:
            # float64 arrays from the fast parser are read in place by the C kernel,
            # which may sum in SIMD order: the drift can then differ from the list
            # path in the last bits (rounding only; see the drift family's docs).
            if update_now is not None:
                result = update_now(lane, intent, action)
            else:
                result = await self.drift_store.update(lane, intent, action)
        except (TypeError, ValueError) as exc:  # a non-number, an overflow...: the monitor is unchanged
            msg = str(exc)
            raise BadRequest(msg, "action" if msg.startswith("action") else "intent") from None
        accept = headers.get(_ACCEPT)
        if accept == _MSGPACK or _scaleout.accepts_msgpack(accept):
            flat = self._pack_flat
            body = flat(result) if flat is not None else None  # (None: not a flat answer)
            return (self._pack(result) if body is None else body), 200, _MSGPACK
        return _dumps(result), 200, JSON_TYPE

    async def ethics(self, request: web.Request) -> Answer:
        """``POST /ethics/evaluate``.

        The evaluation of a body seen twice is remembered (:class:`_BodyMemo`: at most
        512 bodies of up to 4 KB, all forgotten when full) when it is a
        JSON body without ``enrich``, the engine is a plain :class:`EthicsEngine` and its
        rule set is made of plain DSL rules: the result is then a function of the bytes
        alone (``RuleSet._memo_token``).  The same bytes again are answered from it,
        while the rule set is unchanged, with what an evaluation records: the audit entry,
        the metrics, the log line and the time it took.  Other bodies, or after any
        change to the rules, take the whole evaluation."""
        raw = await self.body.read(request)
        engine = self.engine
        plain = type(engine) is EthicsEngine and "evaluate_plan" not in engine.__dict__  # (else its own evaluate_plan)
        hit = None
        if plain:
            hit = self._ethics_memo.entries.get(raw)
            if hit:
                replay, ctype, media, head, tail = hit
                if _json_again(request, ctype, media):
                    ms = replay(engine)
                    if ms is not None:
                        return b"".join((head, _dumps_scalar(ms), tail)), 200, JSON_TYPE
        data = self.body.decode(raw, request)
        if not isinstance(data, dict):
            raise BadRequest(f"expected a JSON object, got {type(data).__name__}", "body")
        plan = data.get("plan")
        if type(plan) is not dict:  # (a dict: what _object returns for it, without the call)
            plan = _object(data, "plan")
        context = data.get("context")
        if context is not None and type(context) is not dict:
            context = _object(data, "context", required=False)
        enrich = data.get("enrich", False)
        if not isinstance(enrich, bool):
            raise BadRequest("field 'enrich' must be a boolean", "enrich")
        if enrich:
            rows, _ms, _ctx = await self._enrich(plan, context, len(raw))
            plan = dict(plan, safety_tags=sorted({t["name"] for t in rows}))
        if plain:
            token = engine.rule_set._memo_token()  # (before the evaluation: what it will be made with)
            result, entry = engine._evaluate_plan_entry(plan, context)
            codes = entry["reason_codes"]  # the audit entry's list: built once
        else:
            token = None
            result = engine.evaluate_plan(plan, context)
            codes = result.reason_codes
        body = _dumps({
            "action": result.action._value_,  # (.value is a descriptor call: ~10x slower)
            "reasons": result.reasons,
            "reason_codes": codes,
            "triggered_rules": result.triggered_rule_ids,
            "plan_hash": result.plan_hash,
            "facts_hash": result.facts_hash,
            "evaluation_time_ms": result.evaluation_time_ms,
            "safety_tags": plan.get("safety_tags") if enrich else None,
        })
        if (token is not None and not enrich and result.facts_hash != "error"
                and engine.rule_set._memo_token() is token
                and DECODERS.get(_media_type(request), decode_json) is decode_json
                and self._ethics_memo.admit(raw, hit is not None)):
            self._remember_ethics(raw, request, token, result, codes, body)
        return body, 200, JSON_TYPE

    def _remember_ethics(self, raw: bytes, request: web.Request, token: Any, result: Any, codes: List[str],
                         body: bytes) -> None:
        """Remember the evaluation of the request body ``raw`` (see :meth:`ethics`), with its
        answer ``body`` cut around the time and the request's Content-Type (its text and
        media type).  The answer's keys are fixed and every string in it is JSON-encoded
        (its quotes escaped), so ``,"evaluation_time_ms":`` occurs once, as the key; the
        cut is checked to give ``body`` back all the same."""
        at = body.rfind(_ETHICS_MS_KEY) + len(_ETHICS_MS_KEY)
        head, tail = body[:at], _ETHICS_TAIL
        if head + _dumps(result.evaluation_time_ms) + tail != body:  # pragma: no cover - (see above)
            return
        self._ethics_memo.entries[raw] = (EthicsEngine._replayer(token, result, codes),
                                          request.headers.get(_CONTENT_TYPE), _media_type(request), head, tail)

    # -- lifecycle -----------------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        self.reqmetrics.start()
        self._engine_metrics.defer(True)  # flushed with the request metrics; undone in on_cleanup
        if self.config.run_ticker:
            self._ticker_started = time.monotonic()
            self._ticker_task = asyncio.get_running_loop().create_task(self.ticker.run_async(0))
        self.ready = True

    async def on_shutdown(self, app: web.Application) -> None:
        self.ready = False
        self.ticker.stop()
        if self._ticker_task is not None:
            try:
                await asyncio.wait_for(self._ticker_task, timeout=5)
            except asyncio.TimeoutError:  # pragma: no cover
                self._ticker_task.cancel()
            self._ticker_task = None

    async def on_cleanup(self, app: web.Application) -> None:
        self._engine_metrics.defer(False)
        self.reqmetrics.stop()
        aclose = getattr(self.drift_store, "aclose", None)
        if aclose is not None:
            await aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            _kill_pool(pool)

    # backwards-compatible names
    start_ticker = on_startup
    stop_ticker = on_shutdown

    @property
    def monitors(self) -> Dict[str, DriftMonitor]:
        """The local store's monitors (lane -> ``DriftMonitor``); empty for other stores."""
        return getattr(self.drift_store, "monitors", {})


#: ``app[SERVICE_KEY]`` is the :class:`Service` state of an application.
SERVICE_KEY: "web.AppKey[Service]" = web.AppKey("lukhas_service", Service)
#: the service's own routes by exact path and method, and how many resources the router had
#: when they were made (see :class:`_ServiceRunner`)
_DIRECT_KEY: "web.AppKey[Tuple[Dict[str, Dict[str, Any]], int]]" = web.AppKey("lukhas_direct_routes", tuple)


def create_app(config: Optional[ServiceConfig] = None, *, drift_store: Optional[DriftStore] = None) -> web.Application:
    """Build the aiohttp application for ``config`` (validated here; used by ``serve`` and by tests).

    ``drift_store``: where the drift monitors live (default: a new :class:`LocalDriftStore`).
    """
    config = (config or ServiceConfig()).validate()
    svc = Service(config, drift_store)
    access = config.access_log
    # the per-request path below reads these once, not as attribute lookups per request
    perf_counter = time.perf_counter
    rid_ok = _REQUEST_ID_OK.match
    rid_prefix, rid_counter = svc._rid_prefix, svc._rid_counter  # (svc.next_request_id, inlined)
    slot = svc.reqmetrics.slot
    bounds = svc.reqmetrics.bounds
    new_response = _new_response
    XRID, CT = _X_REQUEST_ID, _CONTENT_TYPE
    # the headers of an answer start as a copy of its content type's template (cheaper than a new CIMultiDict)
    templates = {ctype: CIMultiDict(((CT, ctype),)) for ctype in (JSON_TYPE, _scaleout.MSGPACK_TYPE)}

    def guarded(route: str, handler: Any, method: Optional[str]) -> Any:
        """``handler`` with request ids, JSON error answers, request metrics and the access log.

        Applied to each route's handler instead of an aiohttp middleware: any
        middleware makes aiohttp also run its own extra middleware layer on every
        request, and the route label is known here without a lookup per request.
        The handler returns an :data:`Answer` (or a ``web.StreamResponse``); the
        response is made here once, with its ``X-Request-ID``.  The usual request
        (``method``, 200) is counted into its metrics slot without a lookup."""
        ok = slot((route, method, 200))

        async def run(request: web.Request) -> web.StreamResponse:
            t0 = perf_counter()
            rid = request.headers.get(XRID)
            if rid is None or not rid_ok(rid):
                rid = f"{rid_prefix}-{next(rid_counter):x}"
            extra: Optional[Tuple[str, str]] = None
            close = False
            try:
                out = await handler(request)
            except BadRequest as exc:
                out = _ok({"error": str(exc), "field": exc.field, "request_id": rid}, exc.status)
                close = exc.close  # the rest of the body is not read (timeout, bad gzip ...)
            except _scaleout.LaneStateUnavailable as exc:  # never a silent fall back to local state
                logger.warning("%s (request %s)", exc, rid)
                out = _ok({"error": str(exc), "field": None, "request_id": rid}, 503)
                extra = ("Retry-After", str(exc.retry_after))
            except web.HTTPException as exc:  # 404, 405, 413 ...: JSON bodies too
                out = _ok({"error": exc.reason, "field": "body" if exc.status == 413 else None, "request_id": rid},
                          exc.status)
                if exc.status == 405:
                    extra = ("Allow", exc.headers.get("Allow", ""))
                close = exc.status == 413  # do not read the rest of an oversized body
            except Exception as exc:  # a bug: log it, never leak a traceback
                logger.exception("unhandled error on %s (request %s)", route, rid)
                out = _ok({"error": f"internal error: {type(exc).__name__}", "field": None, "request_id": rid}, 500)
            if type(out) is tuple:
                body, status, ctype = out
                headers = templates.get(ctype)
                headers = CIMultiDict(((CT, ctype),)) if headers is None else headers.copy()
                if extra is not None:
                    headers.add(*extra)
                headers.add(XRID, rid)
                resp = new_response(body, status, headers)
                if close:
                    resp.force_close()
            else:  # a handler's own web.StreamResponse
                resp = out
                status = resp.status
                resp.headers[XRID] = rid
            dt = perf_counter() - t0
            m = request.method
            acc = ok if status == 200 and m == method else slot((route, m if m in _METHOD_LABELS else "OTHER", status))
            acc[0] += dt
            acc[bisect_left(bounds, dt) + 1] += 1  # (RequestMetrics.observe, inlined)
            if access:
                access_logger.info('%s "%s %s" %d %.3f ms', request.remote, request.method, request.path_qs, status,
                                   dt * 1e3, extra={"request_id": rid, "method": request.method, "path": request.path,
                                                    "status": status, "duration_ms": round(dt * 1e3, 3),
                                                    "remote": request.remote})
            return resp

        return run

    routes = [("GET", "/health", svc.health), ("GET", "/livez", svc.livez), ("GET", "/readyz", svc.readyz),
              ("GET", "/metrics", svc.metrics), ("GET", "/metrics/prometheus", svc.prometheus),
              ("GET", "/openapi.json", svc.openapi), ("POST", "/consciousness/analyze", svc.consciousness),
              ("POST", "/safety/enrich", svc.safety), ("POST", "/drift/analyze", svc.drift),
              ("POST", "/ethics/evaluate", svc.ethics)]
    allowed = {path: (["GET", "HEAD"] if method == "GET" else [method]) for method, path, _ in routes}

    async def unmatched(request: web.Request) -> web.Response:
        methods = allowed.get(request.path)
        if methods is None:
            raise web.HTTPNotFound()
        raise web.HTTPMethodNotAllowed(request.method, methods)

    app = web.Application(client_max_size=config.max_body)
    app[SERVICE_KEY] = svc
    direct: Dict[str, Dict[str, Any]] = {}
    for method, path, handler in routes:
        run = guarded(path, handler, method)
        direct[path] = {method: run}
        if method == "GET":
            app.router.add_get(path, run)  # and HEAD
        else:
            app.router.add_route(method, path, run)
    # everything else (unknown paths, wrong methods): JSON 404 / 405 through the same guard
    app.router.add_route("*", "/{tail:.*}", guarded("unmatched", unmatched, None))
    app[_DIRECT_KEY] = (direct, len(app.router.resources()))
    app.on_startup.append(svc.on_startup)
    app.on_shutdown.append(svc.on_shutdown)
    app.on_cleanup.append(svc.on_cleanup)
    return app


# --------------------------------------------------------------------------------------
# sockets: the header-read timeout, the metrics port, serve()
# --------------------------------------------------------------------------------------

_TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: 59\r\n\r\n"
                b'{"error": "request head not received in time", "field": ""}')


_HANDLER_SLOTS = ("_request_count", "_current_request")
_SLOTTED: Dict[type, bool] = {}  # class -> whether it has _HANDLER_SLOTS as slots


def _has_slots(obj: Any, names: Tuple[str, ...]) -> bool:
    """Whether ``obj``'s class declares ``names`` as slots (looked up once per class) and
    ``obj`` has them set: reading them is then a plain attribute read that cannot fail."""
    cls = type(obj)
    slotted = _SLOTTED.get(cls)
    if slotted is None:
        slotted = _SLOTTED[cls] = all(isinstance(getattr(cls, n, None), types.MemberDescriptorType) for n in names)
    return slotted and all(hasattr(obj, n) for n in names)


class _HeaderTimeout(asyncio.Protocol):
    """Sits in front of aiohttp's ``RequestHandler`` and closes a connection whose
    request head does not arrive within ``timeout`` (aiohttp itself has no such
    limit: a client sending one byte a second holds the connection forever).

    The timer runs from the connection opening, and from the first byte that
    arrives while no request is in flight (a keep-alive connection's next
    request); it stops when aiohttp has parsed a request head.
    """

    __slots__ = ("_h", "_timeout", "_loop", "_timer", "_transport", "_direct")

    def __init__(self, handler: Any, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        self._h = handler
        self._timeout = timeout
        self._loop = loop
        self._timer: Optional[asyncio.TimerHandle] = None
        self._transport: Optional[asyncio.Transport] = None
        # the handler's two internals read per request (see data_received) as plain attributes
        # when its class has them as slots and they are set (aiohttp's RequestHandler)
        self._direct = _has_slots(handler, _HANDLER_SLOTS)

    def _arm(self) -> None:
        self._timer = self._loop.call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        t = self._transport
        if t is not None and getattr(self._h, "_current_request", 0) is None and not t.is_closing():
            logger.debug("closing a connection: no request head within %g s", self._timeout)
            t.write(_TIMEOUT_408)
            t.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._h.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        # (``_request_count``: heads parsed so far; ``_current_request``: the request being
        # handled.  Both are aiohttp internals, read defensively: without them the timer
        # still covers the first request of each connection.)
        h = self._h
        if self._direct:  # (the same as below, without getattr's defaults)
            before = h._request_count
            h.data_received(data)
            if h._request_count != before:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            elif self._timer is None and h._current_request is None:
                self._arm()
            return
        before = getattr(h, "_request_count", None)
        h.data_received(data)
        if getattr(h, "_request_count", before) != before:  # a head was parsed
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif self._timer is None and before is not None and getattr(h, "_current_request", 0) is None:
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def eof_received(self) -> Optional[bool]:
        return self._h.eof_received()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._h.connection_lost(exc)

    def pause_writing(self) -> None:
        self._h.pause_writing()

    def resume_writing(self) -> None:
        self._h.resume_writing()


class _BoundSite(web.BaseSite):
    """A site on an already bound (not yet serving) ``asyncio.Server``: the sockets are
    bound before the application starts, so a busy port fails before anything runs."""

    def __init__(self, runner: web.BaseRunner, server: asyncio.AbstractServer, name: str) -> None:
        super().__init__(runner)
        self._bound = server
        self._name_str = name

    @property
    def name(self) -> str:
        return self._name_str

    async def start(self) -> None:
        await super().start()
        self._server = self._bound
        await self._bound.start_serving()


class _ServiceRunner(web.AppRunner):
    """``web.AppRunner`` for an application of :func:`create_app`: a request for one of the
    service's routes by its exact path (``GET /health``, ``POST /drift/analyze`` ...) goes
    straight to that route's handler; every other request goes through the application
    as usual (``Application._handle``: the router, ``Expect: 100-continue``, 404 / 405).

    Why: the router's resolve, its match info and the application's dispatch cost about
    7% of a small request (callgrind: ~15k instructions of ~225k for ``GET /health``)
    and do nothing for these requests: the path is one of a few literals.  The answers
    are the same bytes either way (the same handler makes them), and the fast path is
    taken only while the application is as :func:`create_app` made it: no middleware,
    no ``on_response_prepare`` callback, no route added since (a user who adds any of
    these gets the usual dispatch for every request).  A raw path with a query string,
    percent escapes or another spelling never matches a literal, so it is routed as usual.
    Handlers reached directly see ``request.match_info`` unset; the service's own do not
    use it."""

    async def _make_server(self) -> Any:
        server = await super()._make_server()
        app = self.app
        direct = app.get(_DIRECT_KEY)
        if (direct is None or len(app.router.resources()) != direct[1] or app.middlewares
                or len(app.on_response_prepare)):
            return server
        server.request_handler = _direct_dispatch(direct[0], app._handle)
        return server


def _direct_dispatch(table: Dict[str, Dict[str, Any]], handle: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The request handler of :class:`_ServiceRunner`: ``table[path][method]``, else ``handle``."""
    expect = istr("Expect")

    def dispatch(request: web.Request) -> Awaitable[web.StreamResponse]:
        # a plain function returning the handler's coroutine: no coroutine of its own per request
        methods = table.get(request.raw_path)
        if methods is not None:
            run = methods.get(request.method)
            # (Expect: 100-continue is the application's to answer, as it does for any route)
            if run is not None and not request.headers.get(expect):
                return run(request)  # type: ignore[no-any-return]
        return handle(request)

    return dispatch


def _metrics_app(flush: Optional[Callable[[], None]] = None) -> web.Application:
    """The ``--metrics-port`` application: the Prometheus exposition on ``/metrics`` (and ``/``).

    ``flush``: called before each scrape (the service's ``reqmetrics.flush``, so that the
    request counts are current, as on ``/metrics/prometheus``)."""

    async def exposition(request: web.Request) -> web.Response:
        if flush is not None:
            flush()
        body, ctype = _scaleout.prometheus_exposition()
        return web.Response(body=body, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_get("/metrics", exposition)
    app.router.add_get("/", exposition)
    return app


async def _bind(host: str, port: int, header_timeout: float, runner: List[web.BaseRunner], *,
                sock: Optional[socket.socket] = None, reuse_port: Optional[bool] = None) -> asyncio.AbstractServer:
    """Listening sockets (not serving yet); each connection gets the header timeout.  The
    runner (``runner[0]``) is looked up per connection, so it may be made after this.

    ``sock``: an already bound, listening socket to accept on instead of binding
    ``host:port`` (a worker of ``serve --workers N`` inherits the supervisor's)."""
    loop = asyncio.get_running_loop()
    factory = lambda: _HeaderTimeout(runner[0].server(), header_timeout, loop)  # type: ignore  # noqa: E731
    if sock is not None:  # keep the supervisor's backlog (_workers.bind_socket)
        return await loop.create_server(factory, sock=sock, start_serving=False, backlog=1024)
    return await loop.create_server(factory, host, port, start_serving=False, reuse_address=True,
                                    reuse_port=reuse_port, backlog=128)


async def start_sites(app: Union[web.Application, Callable[[], web.Application]],
                      config: Optional[ServiceConfig] = None) -> List[web.BaseRunner]:
    """Bind the config's host/port (and the metrics port), then start the application on
    them: the runners, to clean up in order (``runners[0].app`` is the application).

    ``app`` is an application made by :func:`create_app`, or (with ``config``) a function
    making one, called only once the sockets are bound.  A bind failure raises ``OSError``
    before the application is made or started (nothing to clean up)."""
    if config is None:
        assert isinstance(app, web.Application), "start_sites(factory) needs config"
        config = app[SERVICE_KEY].config
    main_ref: List[web.BaseRunner] = []
    metrics_ref: List[web.BaseRunner] = []
    worker = worker_info()
    # serve --workers N: the supervisor bound the port; each worker accepts on that socket
    inherited = socket.socket(fileno=worker.fd) if worker.supervised else None
    try:
        servers = [await _bind(config.host, config.port, config.header_timeout, main_ref, sock=inherited)]
    except BaseException:
        if inherited is not None:
            inherited.close()
        raise
    try:
        if config.metrics_port is not None:
            # every worker serves the (multiprocess) exposition on the metrics port too
            servers.append(await _bind(config.host, config.metrics_port, config.header_timeout, metrics_ref,
                                       reuse_port=True if worker.supervised else None))
        if not isinstance(app, web.Application):
            app = app()
    except BaseException:
        for server in servers:
            server.close()
        raise
    main_ref.append(_ServiceRunner(app, handle_signals=False, access_log=None,
                                   keepalive_timeout=config.keepalive_timeout, shutdown_timeout=config.shutdown_grace))
    if config.metrics_port is not None:
        svc = app.get(SERVICE_KEY)
        metrics_ref.append(web.AppRunner(_metrics_app(svc.reqmetrics.flush if svc is not None else None),
                                         access_log=None, shutdown_timeout=1.0))
    runners: List[web.BaseRunner] = []
    try:
        for ref, server in zip((main_ref, metrics_ref), servers):
            await ref[0].setup()
            runners.append(ref[0])
            await _BoundSite(ref[0], server, f"http://{config.host}:{bound_ports_of(server)[0]}").start()
    except BaseException:
        for r in reversed(runners):
            await r.cleanup()
        for server in servers:
            server.close()
        raise
    return runners


def bound_ports_of(server: asyncio.AbstractServer) -> List[int]:
    return [sock.getsockname()[1] for sock in getattr(server, "sockets", None) or ()]


def bound_ports(runner: web.BaseRunner) -> List[int]:
    """The TCP ports ``runner``'s sites listen on (useful with port 0)."""
    ports = []
    for site in runner.sites:
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or ():
            ports.append(sock.getsockname()[1])
    return ports


def serve(config: Optional[ServiceConfig] = None, seconds: float = 0.0,
          on_started: Optional[Callable[[List[web.BaseRunner]], Awaitable[None]]] = None) -> int:
    """Run the service until SIGINT/SIGTERM (or ``seconds``); graceful shutdown; returns 0.

    Shutdown: the listening sockets close, ``/readyz`` turns 503, in-flight requests get
    ``shutdown_grace`` seconds to finish, the ticker stops.  Raises ``OSError`` when the
    address cannot be bound.
    """
    config = (config or ServiceConfig()).validate()

    async def _main() -> None:
        import signal

        import aiohttp

        from lukhas_fast import __version__ as version

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def _stop(signame: str) -> None:
            logger.info("%s received", signame)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):  # before anything starts: a signal during startup is graceful too
            try:
                loop.add_signal_handler(sig, _stop, sig.name)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
                pass
        runners = await start_sites(lambda: create_app(config), config)  # type: ignore[arg-type]
        app = runners[0].app
        svc = app[SERVICE_KEY]
        info = backend_info()
        tiers = ", ".join(f"{f}={e['tier']}" for f, e in info["families"].items())
        ports = bound_ports(runners[0])
        logger.info("lukhas_fast %s service listening on http://%s:%d (backends: %s; python %s, aiohttp %s)%s",
                    version, config.host, ports[0] if ports else config.port, tiers, platform.python_version(),
                    aiohttp.__version__, "" if len(runners) < 2 else
                    f"; Prometheus exposition on http://{config.host}:{bound_ports(runners[1])[0]}/metrics")
        w = worker_info()
        logger.info("worker %d of %d (pid %d); drift lane state: %s", w.id, w.count, w.pid,
                    _scaleout.redact(config.state) if config.state else "in-process")

        async def warm() -> None:
            try:
                await svc.warm_up()
                logger.debug("%d offload workers started", config.offload_workers)
            except Exception as exc:  # pragma: no cover - the pool restarts on demand anyway
                logger.warning("offload workers did not start: %r", exc)

        warming = loop.create_task(warm())
        try:
            if on_started is not None:
                await on_started(runners)
            if seconds and seconds > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=seconds)
                except asyncio.TimeoutError:
                    pass
            else:
                await stop.wait()
        finally:
            logger.info("shutting down (grace %g s)", config.shutdown_grace)
            warming.cancel()
            svc.ready = False
            for r in runners:
                await r.cleanup()  # stops accepting, lets in-flight requests finish, runs on_shutdown
            logger.info("stopped")

    asyncio.run(_main())
    return 0
