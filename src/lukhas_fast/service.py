"""The integration guide's production service on aiohttp.

Routes: ``GET /health``, ``GET /metrics`` (JSON: ticker, ring, drift,
enricher and engine stats), ``GET /metrics/prometheus`` (text exposition),
``POST /consciousness/analyze``, ``POST /safety/enrich``,
``POST /drift/analyze``, ``POST /ethics/evaluate``.

The consciousness ticker ticks on the service's own event loop
(``Ticker.run_async``), pushing frames into a ``DecimatingRing``.  Bad input
is a 4xx with a JSON body ``{"error": ..., "field": ...}``, checked before
any state changes; bodies over ``max_body`` bytes are refused with 413.
``serve()`` shuts down gracefully on SIGINT/SIGTERM (in-flight requests
finish, the ticker stops) and returns 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from aiohttp import web

from lukhas_fast import _metrics, _scaleout
from lukhas_fast import drift as _drift
from lukhas_fast._backend import backend_info
from lukhas_fast._drift_py import ema_gauge as _drift_ema_gauge
from lukhas_fast._reqmetrics import RequestMetrics
from lukhas_fast._workers import worker_info
from lukhas_fast.clock import Ticker
from lukhas_fast.drift import LANE_CFG, DriftMonitor
from lukhas_fast.ethics import get_ethics_engine
from lukhas_fast.ring import DecimatingRing
from lukhas_fast.safety_tags import SafetyTagEnricher

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=str)

    _loads = orjson.loads
    _DecodeError: Tuple[type, ...] = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover - orjson is in the service extra
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, default=str).encode()

    _loads = json.loads
    _DecodeError = (ValueError,)

__all__ = ["ServiceConfig", "SERVICE_KEY", "create_app", "serve"]

logger = logging.getLogger("lukhas_fast.service")

MAX_VECTOR_DIM = 65536
_F64 = np.dtype(np.float64)
_FLOATS = (_F64, np.dtype(np.float32))  # parsed JSON / msgpack bin vectors

# The C drift tier parses drift bodies with the float arrays read straight
# into float64 arrays (None for any body it does not handle); other tiers
# have no such parser and always use _loads.
_loads_vectors = getattr(_drift._impl, "loads_vectors", None)


@dataclass
class ServiceConfig:
    """Service settings (``python -m lukhas_fast serve`` flags)."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body: int = 1 << 20
    fps: float = 30.0
    ring_capacity: int = 1000
    run_ticker: bool = True
    #: drift lane state: None (each process its own) or ``redis://host:port/db`` (shared)
    state: Optional[str] = None
    #: worker processes (``serve --workers``; informational inside a worker)
    workers: int = 1


class BadRequest(Exception):
    """A rejected request: 400 with ``{"error": message, "field": field}``."""

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field


_JSON_HEADERS = {"Content-Type": "application/json"}


def _json(data: Any, status: int = 200) -> web.Response:
    # headers= is cheaper than content_type= (no parsing of the type on every response)
    return web.Response(body=_dumps(data), status=status, headers=_JSON_HEADERS)


async def _raw_body(request: web.Request, limit: int) -> bytes:
    """The whole body.  ``request.read()`` copies every body twice (into a
    bytearray, then into bytes); a body that arrived as one chunk, the usual
    case, is returned here as it is.  Over ``limit`` bytes: 413."""
    length = request.content_length
    if limit and length is not None and length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
    content = request.content
    raw = await content.readany()
    if raw and not content.at_eof():
        parts = [raw]
        size = len(raw)
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            size += len(chunk)
            if limit and size > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
            parts.append(chunk)
        raw = b"".join(parts)
    if limit and len(raw) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
    if not raw:
        raise BadRequest("request body is empty: expected a JSON object", "body")
    return raw


async def _body(request: web.Request, limit: int) -> Dict[str, Any]:
    return _decode(await _raw_body(request, limit))


def _decode(raw: bytes) -> Dict[str, Any]:
    try:
        data = _loads(raw)
    except _DecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}", "body") from None
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


def _vector(data: Dict[str, Any], name: str) -> Union[List[float], np.ndarray]:
    """The container checks; element types and finiteness are checked by the
    drift kernel itself (before the monitor changes), which is far cheaper
    than a Python loop over 768 numbers.  JSON true/false count as 1/0, as
    bools do in the reference.  A 1-D float64 array (from the fast body
    parser) passes the same checks as a list."""
    v = data.get(name)
    if v is None:
        raise BadRequest(f"missing field {name!r} (a list of numbers)", name)
    if type(v) is np.ndarray and v.ndim == 1 and v.dtype in _FLOATS:
        pass
    elif not isinstance(v, list):
        raise BadRequest(f"field {name!r} must be a list of numbers, got {type(v).__name__}", name)
    if len(v) == 0:  # (not `not v`: ambiguous for arrays)
        raise BadRequest(f"field {name!r} must not be empty", name)
    if len(v) > MAX_VECTOR_DIM:
        raise BadRequest(f"field {name!r} has {len(v)} elements; at most {MAX_VECTOR_DIM}", name)
    return v


class Service:
    """State of one service instance (monitors, ring, ticker, enricher, engine)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.started = time.time()
        self.ring = DecimatingRing(config.ring_capacity, 0.8, 2, "skip_nth")
        self.ticker = Ticker(config.fps)
        self.ticker.subscribe(self._on_tick)
        self.monitors: Dict[str, DriftMonitor] = {}
        self.store = _scaleout.RedisDriftStore(config.state) if config.state else None
        self.enricher = SafetyTagEnricher(enable_caching=True)
        self.engine = get_ethics_engine()
        self.frames_submitted = 0
        self._ticker_task: Optional[asyncio.Task] = None
        buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
        self.requests = _metrics.counter("lukhas_service_requests_total", "HTTP requests", ["route", "method", "status"])
        self.latency = _metrics.histogram("lukhas_service_request_seconds", "HTTP request latency", ["route"],
                                          buckets=buckets)
        # per request: a dict update; flushed into the metrics above before each scrape and every second
        self.reqmetrics = RequestMetrics([(self.requests, lambda k: (k[0], k[1], str(k[2])))],
                                         [(self.latency, lambda k: (k[0],))], buckets)
        self.reqmetrics.before_flush.append(self._publish_drift_gauges)
        self._metrics_on = _metrics.metrics_default()

    def _publish_drift_gauges(self) -> None:
        # the service's monitors run with metrics=False (a gauge write per update costs
        # ~1 us); their EMA gauges are set here, before every scrape and every second
        if self._metrics_on:
            for lane, m in self.monitors.items():
                _drift_ema_gauge(lane).set(m.ema)

    def _on_tick(self, tick: int) -> None:
        self.ring.push({"tick": tick, "t": time.time()})

    # -- routes -------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "uptime_s": time.time() - self.started, "ticker_running": self.ticker.running,
                      "tick_count": self.ticker.tick_count})

    async def metrics(self, request: web.Request) -> web.Response:
        return _json({
            "ticker": self.ticker.get_metrics(),
            "ring": self.ring.get_backpressure_stats(),
            "drift": ({lane: {"ema": m.ema, "n": len(m._raw), "lane": m.lane} for lane, m in self.monitors.items()}
                      if self.store is None else await self.store.snapshot()),
            "enricher": self.enricher.get_stats(),
            "engine": {k: v for k, v in self.engine.get_stats().items() if k != "recent_evaluations"},
            "backend": {f: e["tier"] for f, e in backend_info()["families"].items()},
            **_scaleout.worker_section(self.store),
        })

    async def prometheus(self, request: web.Request) -> web.Response:
        self.reqmetrics.flush()
        try:
            body, ctype = _scaleout.prometheus_exposition()
        except ImportError:
            return _json({"error": "prometheus_client is not installed", "field": None}, status=501)
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def consciousness(self, request: web.Request) -> web.Response:
        data = await _body(request, self.config.max_body)
        frame = _object(data, "frame")
        priority = data.get("priority")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, (int, float))):
            raise BadRequest("field 'priority' must be a number", "priority")
        self.ring.push(frame, priority)
        self.frames_submitted += 1
        return _json({"accepted": True, "tick": self.ticker.tick_count, "buffer": self.ring.get_backpressure_stats()})

    async def safety(self, request: web.Request) -> web.Response:
        data = await _body(request, self.config.max_body)
        plan = _object(data, "plan")
        context = _object(data, "context", required=False)
        tagged = self.enricher.enrich_plan(plan, context)
        return _json({
            "tags": [{"name": t.name, "category": getattr(t.category, "value", t.category), "confidence": t.confidence,
                      "source": t.source, "metadata": t.metadata} for t in tagged.tags],
            "tag_names": sorted(tagged.tag_names),
            "enrichment_time_ms": tagged.enrichment_time_ms,
            "enrichment_context": tagged.enrichment_context,
        })

    async def drift(self, request: web.Request) -> web.Response:
        raw = await _raw_body(request, self.config.max_body)
        if _scaleout.is_msgpack(request):
            data = _scaleout.decode_msgpack(raw)
            if not isinstance(data, dict):
                raise BadRequest(f"expected a msgpack map, got {type(data).__name__}", "body")
        else:
            data = _loads_vectors(raw) if _loads_vectors is not None else None
            if data is None:  # not the fast parser's shape (or a non-C tier): the general parser, same errors
                data = _decode(raw)
        lane = data.get("lane", "experimental")
        if not isinstance(lane, str) or lane.lower() not in LANE_CFG:
            raise BadRequest(f"field 'lane' must be one of {', '.join(LANE_CFG)}", "lane")
        intent = _vector(data, "intent")
        action = _vector(data, "action")
        if len(intent) != len(action):
            raise BadRequest(f"intent and action must have the same length, got {len(intent)} and {len(action)}",
                             "action")
        lane = lane.lower()
        if self.store is not None:
            try:
                result = await self.store.update(lane, intent, action)
            except (TypeError, ValueError) as exc:  # checked in-process, before the store is touched
                msg = str(exc)
                raise BadRequest(msg, "action" if msg.startswith("action") else "intent") from None
            return _scaleout.msgpack_response(result) if _scaleout.wants_msgpack(request) else _json(result)
        monitor = self.monitors.get(lane)
        fresh = monitor is None
        if fresh:
            monitor = DriftMonitor(lane, metrics=False)
        try:
            # float64 arrays from the fast parser are read in place by the C kernel,
            # which may sum in SIMD order: the drift can then differ from the list
            # path in the last bits (rounding only; see the drift family's docs).
            result = monitor.update(intent, action)
        except (TypeError, ValueError) as exc:  # a non-number, an overflow...: the monitor is unchanged
            msg = str(exc)
            raise BadRequest(msg, "action" if msg.startswith("action") else "intent") from None
        if fresh:
            self.monitors[lane] = monitor  # registered only once it has accepted an update
        return _scaleout.msgpack_response(result) if _scaleout.wants_msgpack(request) else _json(result)

    async def ethics(self, request: web.Request) -> web.Response:
        data = await _body(request, self.config.max_body)
        plan = _object(data, "plan")
        context = _object(data, "context", required=False)
        enrich = data.get("enrich", False)
        if not isinstance(enrich, bool):
            raise BadRequest("field 'enrich' must be a boolean", "enrich")
        if enrich:
            tagged = self.enricher.enrich_plan(plan, context)
            plan = dict(plan, safety_tags=sorted(tagged.tag_names))
        result = self.engine.evaluate_plan(plan, context)
        return _json({
            "action": result.action.value,
            "reasons": result.reasons,
            "reason_codes": result.reason_codes,
            "triggered_rules": result.triggered_rule_ids,
            "plan_hash": result.plan_hash,
            "facts_hash": result.facts_hash,
            "evaluation_time_ms": result.evaluation_time_ms,
            "safety_tags": plan.get("safety_tags") if enrich else None,
        })

    # -- lifecycle -----------------------------------------------------------------------
    async def start_ticker(self, app: web.Application) -> None:
        self.reqmetrics.start()
        if self.config.run_ticker:
            self._ticker_task = asyncio.get_running_loop().create_task(self.ticker.run_async(0))

    async def stop_ticker(self, app: web.Application) -> None:
        self.reqmetrics.stop()
        if self.store is not None:
            await self.store.aclose()
        self.ticker.stop()
        if self._ticker_task is not None:
            try:
                await asyncio.wait_for(self._ticker_task, timeout=5)
            except asyncio.TimeoutError:  # pragma: no cover
                self._ticker_task.cancel()
            self._ticker_task = None


#: ``app[SERVICE_KEY]`` is the :class:`Service` state of an application.
SERVICE_KEY: "web.AppKey[Service]" = web.AppKey("lukhas_service", Service)


def create_app(config: Optional[ServiceConfig] = None) -> web.Application:
    """Build the aiohttp application (used by ``serve`` and by tests)."""
    config = config or ServiceConfig()
    svc = Service(config)

    def guarded(route: str, handler: Any) -> Any:
        """``handler`` with the JSON error answers and the request metrics.

        Applied to each route's handler instead of an aiohttp middleware: any
        middleware makes aiohttp run its own extra middleware layer on every
        request as well, and the route label is then known without looking the
        resource up per request."""

        async def run(request: web.Request) -> web.StreamResponse:
            t0 = time.perf_counter()
            try:
                resp = await handler(request)
            except BadRequest as exc:
                resp = _json({"error": str(exc), "field": exc.field}, status=400)
            except _scaleout.LaneStateUnavailable as exc:  # never a silent fall back to local state
                logger.warning("%s", exc)
                resp = _json({"error": str(exc), "field": None}, status=503)
                resp.headers["Retry-After"] = str(exc.retry_after)
            except web.HTTPException as exc:  # 413 ...: JSON bodies too
                field = "body" if exc.status == 413 else None
                resp = _json({"error": exc.reason, "field": field}, status=exc.status)
                if exc.status == 405:
                    resp.headers["Allow"] = exc.headers.get("Allow", "")
            except Exception as exc:  # a bug: log it, never leak a traceback
                logger.exception("unhandled error on %s", route)
                resp = _json({"error": f"internal error: {type(exc).__name__}", "field": None}, status=500)
            svc.reqmetrics.observe((route, request.method, resp.status), time.perf_counter() - t0)
            return resp

        return run

    routes = [("GET", "/health", svc.health), ("GET", "/metrics", svc.metrics),
              ("GET", "/metrics/prometheus", svc.prometheus), ("POST", "/consciousness/analyze", svc.consciousness),
              ("POST", "/safety/enrich", svc.safety), ("POST", "/drift/analyze", svc.drift),
              ("POST", "/ethics/evaluate", svc.ethics)]
    allowed = {path: ("GET, HEAD" if method == "GET" else method) for method, path, _ in routes}

    async def unmatched(request: web.Request) -> web.Response:
        methods = allowed.get(request.path)
        if methods is None:
            raise web.HTTPNotFound()
        raise web.HTTPMethodNotAllowed(request.method, methods.split(", "))

    app = web.Application(client_max_size=config.max_body)
    app[SERVICE_KEY] = svc
    for method, path, handler in routes:
        if method == "GET":
            app.router.add_get(path, guarded(path, handler))  # and HEAD
        else:
            app.router.add_route(method, path, guarded(path, handler))
    # everything else (unknown paths, wrong methods): JSON 404 / 405 through the same guard
    app.router.add_route("*", "/{tail:.*}", guarded("unmatched", unmatched))
    app.on_startup.append(svc.start_ticker)
    app.on_shutdown.append(svc.stop_ticker)
    return app


def serve(config: Optional[ServiceConfig] = None, seconds: float = 0.0) -> int:
    """Run the service until SIGINT/SIGTERM (or ``seconds``); graceful shutdown; returns 0."""
    config = config or ServiceConfig()
    app = create_app(config)

    async def _main() -> None:
        runner = web.AppRunner(app, handle_signals=True)
        await runner.setup()
        worker = worker_info()
        if worker.supervised:  # a worker of serve --workers N: accept on the supervisor's socket
            import socket as _socket

            site: web.BaseSite = web.SockSite(runner, _socket.socket(fileno=worker.fd))
        else:
            site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        logger.info("lukhas_fast service on http://%s:%d (worker %d of %d, pid %d; drift state: %s)", config.host,
                    config.port, worker.id, worker.count, worker.pid,
                    _scaleout.redact(config.state) if config.state else "in-process")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
                pass
        try:
            if seconds and seconds > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=seconds)
                except asyncio.TimeoutError:
                    pass
            else:
                await stop.wait()
        finally:
            await runner.cleanup()  # stops accepting, lets in-flight requests finish, runs on_shutdown

    asyncio.run(_main())
    return 0
