"""Pure-Python tier of the clock family (``Ticker``, ``ConsciousnessTicker``),
and the pieces every tier shares: validation, the live metrics mapping, the
deadline schedule, the asyncio and background-thread runners, ``summary``.

Scheduling (both tiers): tick ``k`` is due at ``t0 + k * period`` on a
monotonic clock.  After an overrun, ``"realtime"`` re-anchors to the next
grid slot that is still in the future (the slots overrun get no tick; no tick
runs off the grid), and ``"catchup"`` runs every late tick back to back until
on schedule.  The p95 of the last 1000 per-tick times is
computed only when it is read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections import deque
from numbers import Real
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from lukhas_fast import _metrics

__all__ = [
    "Ticker",
    "create_consciousness_ticker",
    "ConsciousnessTicker",
    "TickerMetrics",
    "BackgroundHandle",
    "backend_details",
]

logger = logging.getLogger("lukhas_fast.clock")

MODES = ("realtime", "catchup")
METRIC_KEYS = (
    "ticks_processed",
    "ticks_dropped",
    "total_processing_time",
    "max_processing_time",
    "p95_processing_time",
    "subscriber_exceptions",
    "max_subscriber_time",
)
P95_WINDOW = 1000
P95_MIN_SAMPLES = 20
MAX_SLEEP_CHUNK = 0.1  # s: a sleeping loop notices stop() at least this often


def backend_details() -> Dict[str, Any]:
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"loop": "Python (time.sleep to absolute deadlines)"}


# --- validation ---------------------------------------------------------------

def check_fps(fps: Any) -> float:
    """``fps`` must be a finite real number > 0."""
    if isinstance(fps, bool) or not isinstance(fps, Real):
        raise TypeError(f"fps must be a real number, got {type(fps).__name__}")
    value = float(fps)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
    return value


def check_seconds(seconds: Any) -> float:
    """``seconds`` <= 0 (or inf) means until stop(); nan and non-numbers are errors."""
    if isinstance(seconds, bool) or not isinstance(seconds, Real):
        raise TypeError(f"seconds must be a real number, got {type(seconds).__name__}")
    value = float(seconds)
    if math.isnan(value):
        raise ValueError("seconds must not be nan")
    return 0.0 if math.isinf(value) else value


def check_mode(mode: Any) -> str:
    """``"realtime"`` or ``"catchup"``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_callable(cb: Any) -> Any:
    """Subscribers must be callable."""
    if not callable(cb):
        raise TypeError(f"subscriber must be callable, got {type(cb).__name__}")
    return cb


def default_lane() -> str:
    """``LUKHAS_LANE`` or ``experimental``."""
    return os.environ.get("LUKHAS_LANE", "experimental")


def p95(samples: List[float]) -> float:
    """The reference's p95 rule: 0.0 below 20 samples, else sorted[ceil(0.95 n) - 1]."""
    n = len(samples)
    if n < P95_MIN_SAMPLES:
        return 0.0
    return sorted(samples)[math.ceil(0.95 * n) - 1]


def next_slot(t0: float, k: int, period: float, mode: str, now: float) -> Tuple[int, float]:
    """The next tick's index and due time after tick ``k`` finished at ``now``."""
    k += 1
    due = t0 + k * period
    if now > due and mode == "realtime":
        # re-anchor to the next slot still in the future: the ticks of the
        # slots overrun are skipped and no tick runs off the grid
        k = int((now - t0) // period) + 1
        due = t0 + k * period
    return k, due


# --- live metrics mapping -------------------------------------------------------

class TickerMetrics(dict):
    """The ticker's ``metrics``: a real ``dict`` whose values are refreshed from
    the running loop whenever it is read (so ``p95_processing_time`` is
    computed lazily, never per tick).  Reading one key fetches only that value
    (``metrics["ticks_dropped"]`` never sorts the p95 window); whole-dict reads
    refresh every key.  Assigning a metric writes it back to the ticker (e.g.
    ``ticker.metrics["ticks_dropped"] = 0``); other keys are stored as in a
    plain dict."""

    __slots__ = ("_source", "_one", "_sink")

    def __init__(
        self,
        source: Callable[[], Dict[str, Any]],
        one: Callable[[str], Any],
        sink: Callable[[str, Any], None],
    ) -> None:
        super().__init__(source())
        self._source = source
        self._one = one
        self._sink = sink

    def _sync(self) -> None:
        dict.update(self, self._source())

    def __getitem__(self, key: str) -> Any:
        try:
            value = self._one(key)
        except KeyError:  # not a metric: a key the user stored
            return dict.__getitem__(self, key)
        dict.__setitem__(self, key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Live value of ``key`` (or ``default``)."""
        try:
            return self[key]
        except KeyError:
            return default

    def items(self):  # type: ignore[override]
        """Live items."""
        self._sync()
        return dict.items(self)

    def values(self):  # type: ignore[override]
        """Live values."""
        self._sync()
        return dict.values(self)

    def keys(self):  # type: ignore[override]
        """The metric names."""
        self._sync()
        return dict.keys(self)

    def __iter__(self) -> Iterator[str]:
        self._sync()
        return dict.__iter__(self)

    def copy(self) -> Dict[str, Any]:  # type: ignore[override]
        """A plain-dict snapshot."""
        self._sync()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self._sync()
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._sync()
        return dict.__repr__(self)

    def __setitem__(self, key: str, value: Any) -> None:
        self._sink(key, value)
        dict.__setitem__(self, key, value)

    def __reduce__(self):
        return (dict, (self.copy(),))


# --- runners shared by the tiers -------------------------------------------------

class BackgroundHandle:
    """Handle of :meth:`Ticker.start_background`: ``stop()``, ``join(timeout)``, ``is_alive()``.

    ``join`` re-raises an exception that ended the loop.
    """

    def __init__(self, ticker: Any, seconds: float) -> None:
        self.ticker = ticker
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._main, args=(seconds,), name="lukhas-ticker", daemon=True)
        self._started = threading.Event()

    def _main(self, seconds: float) -> None:
        try:
            # not run(): start_background already set running, and a stop()
            # issued before this thread got going must not be overwritten
            self.ticker._run(seconds, False)
        except BaseException as exc:  # surfaced by join()
            self._error = exc

    def start(self) -> "BackgroundHandle":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to end after the current tick."""
        self.ticker.stop()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the loop thread; True if it ended.  Re-raises its exception."""
        self._thread.join(timeout)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        """Whether the loop thread is still running."""
        return self._thread.is_alive()


def start_background(ticker: Any, seconds: float = 0) -> BackgroundHandle:
    """Run ``ticker.run(seconds)`` on a daemon thread; returns a :class:`BackgroundHandle`."""
    check_seconds(seconds)
    ticker.running = True  # so a stop() right after start is not lost (see _run)
    return BackgroundHandle(ticker, seconds).start()


async def run_async(ticker: Any, seconds: float = 0) -> None:
    """Tick on the running asyncio loop, awaiting between ticks (never blocks the loop)."""
    seconds = check_seconds(seconds)
    mode = check_mode(ticker.mode)
    ticker.running = True
    clock = time.perf_counter
    start = t0 = clock()
    k = 0
    logger.info("ticker starting (asyncio): %.6g fps, mode=%s, lane=%s", ticker.fps, mode, ticker.lane)
    try:
        while True:
            ticker._tick_once()
            if not ticker.running:
                ticker.tick_count += 1
                break
            k, due = next_slot(t0, k, ticker.period, mode, clock())
            await asyncio.sleep(max(0.0, due - clock()))
            ticker.tick_count += 1
            if seconds > 0 and clock() - start >= seconds:
                break
            if not ticker.running:
                break
    finally:
        ticker.running = False
        if logger.isEnabledFor(logging.INFO):
            logger.info("%s", summary(ticker))


def get_metrics(ticker: Any) -> Dict[str, Any]:
    """New dict: ``fps_target``, ``tick_count``, ``running``, then every metric."""
    out: Dict[str, Any] = {"fps_target": ticker.fps, "tick_count": ticker.tick_count, "running": ticker.running}
    out.update(ticker._metric_values())
    return out


def summary(ticker: Any) -> str:
    """Human-readable one-line summary of a ticker's metrics."""
    m = get_metrics(ticker)
    n = m["ticks_processed"]
    avg = m["total_processing_time"] / n if n else 0.0
    return (
        f"Ticker lane={ticker.lane} fps={float(m['fps_target']):.6g} mode={ticker.mode}: "
        f"{n} ticks processed, {m['ticks_dropped']} over budget, "
        f"{m['subscriber_exceptions']} subscriber exceptions; per tick avg {avg * 1e3:.3f} ms, "
        f"p95 {m['p95_processing_time'] * 1e3:.3f} ms, max {m['max_processing_time'] * 1e3:.3f} ms; "
        f"slowest subscriber {m['max_subscriber_time'] * 1e3:.3f} ms"
    )


def log_subscriber_error(cb: Any, tick: int, exc: BaseException) -> None:
    """Warning for a subscriber that raised (the loop goes on)."""
    logger.warning("subscriber %r raised at tick %d: %r", cb, tick, exc)


# --- the pure-Python Ticker -------------------------------------------------------

#: metric name -> attribute of the pure-Python Ticker (p95 is computed on read)
_METRIC_ATTR = {
    "ticks_processed": "_processed",
    "ticks_dropped": "_dropped",
    "total_processing_time": "_total",
    "max_processing_time": "_max",
    "subscriber_exceptions": "_exceptions",
    "max_subscriber_time": "_max_sub",
}


class Ticker:
    """Ticker(fps=30)

    Frame ticker: ``run(seconds)`` calls every subscriber with the tick number
    ``fps`` times a second, on absolute deadlines ``t0 + k / fps`` (no drift).
    Attributes: ``fps``, ``period``, ``subscribers``, ``tick_count``,
    ``running``, ``lane``, ``mode`` (``"realtime"`` skips missed slots after an
    overrun, ``"catchup"`` runs them back to back), ``metrics`` (live dict).
    """

    def __init__(self, fps: float = 30) -> None:
        self._fps = check_fps(fps)
        self._fps_given = fps
        self.period = 1.0 / self._fps
        self.subscribers: List[Callable[[int], Any]] = []
        self.tick_count = 0
        self.running = False
        self.lane = default_lane()
        self._mode = "realtime"
        self._processed = 0
        self._dropped = 0
        self._total = 0.0
        self._max = 0.0
        self._exceptions = 0
        self._max_sub = 0.0
        self._samples: Deque[float] = deque(maxlen=P95_WINDOW)
        self.metrics = TickerMetrics(self._metric_values, self._metric_value, self._set_metric)

    # -- configuration ----------------------------------------------------------
    @property
    def fps(self) -> float:
        """Target ticks per second (finite, > 0), the value as given (``50``
        stays an int, as in the SDK); setting it updates ``period``."""
        return self._fps_given

    @fps.setter
    def fps(self, value: float) -> None:
        self._fps = check_fps(value)
        self._fps_given = value
        self.period = 1.0 / self._fps

    @property
    def mode(self) -> str:
        """``"realtime"`` (default) or ``"catchup"``."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_mode(value)

    # -- subscribers ----------------------------------------------------------------
    def subscribe(self, cb: Callable[[int], Any]) -> None:
        """Call ``cb(tick_number)`` on every tick (in subscription order)."""
        self.subscribers.append(check_callable(cb))

    def unsubscribe(self, cb: Callable[[int], Any]) -> None:
        """Stop calling ``cb`` (no error if it is not subscribed)."""
        try:
            self.subscribers.remove(cb)
        except ValueError:
            pass

    # -- metrics --------------------------------------------------------------------
    def _metric_values(self) -> Dict[str, Any]:
        return {
            "ticks_processed": self._processed,
            "ticks_dropped": self._dropped,
            "total_processing_time": self._total,
            "max_processing_time": self._max,
            "p95_processing_time": p95(list(self._samples)),
            "subscriber_exceptions": self._exceptions,
            "max_subscriber_time": self._max_sub,
        }

    def _metric_value(self, key: str) -> Any:
        if key == "p95_processing_time":
            return p95(list(self._samples))
        return getattr(self, _METRIC_ATTR[key])  # KeyError: not a metric

    def _set_metric(self, key: str, value: Any) -> None:
        attr = _METRIC_ATTR.get(key)
        if attr is not None:
            setattr(self, attr, value)

    def get_metrics(self) -> Dict[str, Any]:
        """New dict: ``fps_target``, ``tick_count``, ``running``, then every metric."""
        return get_metrics(self)

    def summary(self) -> str:
        """Human-readable summary of the metrics (the reference printed this)."""
        return summary(self)

    # -- the loop ---------------------------------------------------------------------
    def _tick_once(self) -> None:
        """Run one tick: every subscriber (snapshot of the list), then the metrics."""
        clock = time.perf_counter
        tick = self.tick_count
        start = clock()
        for cb in list(self.subscribers):
            t = clock()
            try:
                cb(tick)
            except Exception as exc:
                self._exceptions += 1
                log_subscriber_error(cb, tick, exc)
            dt = clock() - t
            if dt > self._max_sub:
                self._max_sub = dt
        self._record(clock() - start)

    def _record(self, proc: float) -> None:
        """Book one tick's processing time (also used by tests to inject samples)."""
        self._processed += 1
        self._total += proc
        if proc > self._max:
            self._max = proc
        self._samples.append(proc)
        if proc > self.period:
            self._dropped += 1

    def run(self, seconds: float = 0) -> None:
        """Tick until ``seconds`` have elapsed (``<= 0``: until :meth:`stop`); blocking.

        Numbering continues from ``tick_count``; ``KeyboardInterrupt`` ends the
        loop cleanly; ``running`` is False on exit.
        """
        self._run(seconds, True)

    def _run(self, seconds: float, arm: bool) -> None:
        """The loop.  ``arm=False`` (background thread): ``running`` was set by
        the caller, and a ``stop()`` that came first means no tick at all."""
        seconds = check_seconds(seconds)
        mode = check_mode(self._mode)
        if arm:
            self.running = True
        elif not self.running:
            return
        clock = time.perf_counter
        start = t0 = clock()
        k = 0
        logger.info("ticker starting: %.6g fps, mode=%s, lane=%s", self._fps, mode, self.lane)
        try:
            while True:
                self._tick_once()
                if not self.running:
                    self.tick_count += 1
                    break
                k, due = next_slot(t0, k, self.period, mode, clock())
                while self.running:
                    left = due - clock()
                    if left <= 0:
                        break
                    time.sleep(min(left, MAX_SLEEP_CHUNK))
                self.tick_count += 1
                if seconds > 0 and clock() - start >= seconds:
                    break
                if not self.running:
                    break
        except KeyboardInterrupt:
            logger.info("ticker interrupted")
        finally:
            self.running = False
            if logger.isEnabledFor(logging.INFO):
                logger.info("%s", summary(self))

    def stop(self) -> None:
        """End the loop after the current tick."""
        self.running = False

    def start_background(self, seconds: float = 0) -> BackgroundHandle:
        """Run the loop on a daemon thread; returns a handle with ``stop()`` and ``join(timeout)``."""
        return start_background(self, seconds)

    async def run_async(self, seconds: float = 0) -> None:
        """Tick on the running asyncio event loop without blocking it."""
        await run_async(self, seconds)

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle 'Ticker' object (it owns a loop and its subscribers); "
                        "build a new Ticker(fps) instead")

    def __repr__(self) -> str:
        return f"Ticker(fps={self._fps:.6g}, tick_count={self.tick_count}, running={self.running})"


def create_consciousness_ticker() -> Any:
    """``Ticker(fps=30)`` (of this tier)."""
    return Ticker(fps=30)


# --- ConsciousnessTicker (shared: built on each tier's Ticker and Ring) -------------

def _module_lane() -> str:
    return os.environ.get("LUKHAS_LANE", "experimental")


def consciousness_metrics() -> Tuple[Any, Any, Any]:
    """The three reference metrics as :class:`~lukhas_fast._metrics.LazyMetric`
    handles: they exist now (the SDK's module-level objects, patchable) and
    register in the current registry only when a tick first records (never with
    ``LUKHAS_FAST_METRICS=0``); no-ops without prometheus_client."""
    return (
        _metrics.lazy_histogram("lukhas_tick_duration_seconds", "Consciousness tick handler duration", ["lane"]),
        _metrics.lazy_counter("lukhas_ticks_dropped_total", "Frames decimated from the consciousness buffer", ["lane"]),
        _metrics.lazy_counter("lukhas_subscriber_exceptions_total", "Consciousness tick handler exceptions", ["lane"]),
    )


def _ticker_namespace() -> Dict[str, Any]:
    """The globals of :mod:`lukhas_fast.consciousness_ticker` (``PROM``, ``TICK``,
    ``TICKS_DROPPED``, ``SUB_EXC``, ``LANE``), which every ConsciousnessTicker
    reads when it ticks, so patching them (or reloading the module) works as
    with the SDK's module."""
    import importlib

    return importlib.import_module("lukhas_fast.consciousness_ticker").__dict__


def make_consciousness_ticker(ticker_cls: Any, ring_cls: Any) -> Any:
    """Build the ``ConsciousnessTicker`` class of one tier."""

    class ConsciousnessTicker:
        """ConsciousnessTicker(fps=30, cap=120, *, metrics=None)

        A :class:`Ticker` (``ticker``) whose own handler pushes the frame
        ``{"id": tick}`` into a :class:`Ring` (``buffer``, capacity ``cap``) on
        every tick; when the buffer holds more than ``int(cap * 0.8)`` frames
        it keeps only the newest ``cap // 2`` and counts one drop on
        ``lukhas_ticks_dropped_total``.  Handler time goes to
        ``lukhas_tick_duration_seconds``; a raising handler counts on
        ``lukhas_subscriber_exceptions_total`` and re-raises.

        As in the SDK, the metrics and the lane label are the module globals
        ``TICK``, ``TICKS_DROPPED``, ``SUB_EXC``, ``LANE`` of
        :mod:`lukhas_fast.consciousness_ticker`, switched by its ``PROM``,
        and are read when the ticker ticks (``mock.patch`` of them works).
        ``metrics``: None follows ``PROM``; False turns this instance's
        metrics off; True turns them on even if ``PROM`` is False.
        """

        def __init__(self, fps: float = 30, cap: int = 120, *, metrics: Optional[bool] = None) -> None:
            if isinstance(cap, bool) or not isinstance(cap, int):
                raise TypeError(f"cap must be an int, got {type(cap).__name__}")
            if cap < 2:
                raise ValueError(f"cap must be >= 2, got {cap}")
            if metrics is not None:
                _metrics.resolve_metrics(metrics)  # True without prometheus_client: ImportError
            self._ns = _ticker_namespace()
            self.ticker = ticker_cls(fps)
            self.buffer = ring_cls(capacity=cap)
            self.cap = cap
            self._limit = int(cap * 0.8)
            self._keep = cap // 2
            self.lane = self._ns.get("LANE", _module_lane())
            self._metrics_opt = metrics
            # the labelled TICK child, re-derived only when TICK or LANE is rebound
            self._tick_src: Any = None
            self._tick_lane: Any = None
            self._tick_child: Any = None
            self.frames_dropped = 0
            self.ticker.subscribe(self._on_tick)

        @property
        def metrics_enabled(self) -> bool:
            """Whether ticks record metrics now (``metrics`` argument, else the module's ``PROM``)."""
            opt = self._metrics_opt
            return bool(self._ns["PROM"]) if opt is None else opt

        def _count(self, name: str) -> None:
            ns = self._ns
            ns[name].labels(lane=ns["LANE"]).inc()

        def _on_tick(self, tick: int) -> None:
            t = time.perf_counter()
            try:
                buf = self.buffer
                buf.push({"id": tick})
                if len(buf) > self._limit:
                    for frame in buf.pop_all()[-self._keep:]:
                        buf.push(frame)
                    self.frames_dropped += 1
                    if self.metrics_enabled:
                        self._count("TICKS_DROPPED")
            except Exception:
                if self.metrics_enabled:
                    self._count("SUB_EXC")
                raise
            finally:
                # the per-tick path: a few dict reads, no Python call but observe()
                opt = self._metrics_opt
                if opt is not False:
                    ns = self._ns
                    if opt or ns["PROM"]:
                        src = ns["TICK"]
                        lane = ns["LANE"]
                        if src is not self._tick_src or lane is not self._tick_lane:
                            self._tick_child = src.labels(lane=lane)
                            self._tick_src = src
                            self._tick_lane = lane
                        self._tick_child.observe(time.perf_counter() - t)

        def start(self, seconds: float = 0) -> None:
            """Run the ticker (blocking; ``seconds <= 0``: until :meth:`stop`):
            ``self.ticker.run(seconds=seconds)``, as the SDK."""
            self.ticker.run(seconds=seconds)

        def stop(self) -> None:
            """``self.ticker.running = False``, as the SDK: the loop (Python or
            compiled) ends after the current tick."""
            self.ticker.running = False

        def __reduce__(self) -> Any:
            raise TypeError(f"cannot pickle {type(self).__name__!r} object (it owns a running ticker)")

        def __repr__(self) -> str:
            return f"ConsciousnessTicker(fps={float(self.ticker.fps):.6g}, cap={self.cap}, frames={len(self.buffer)})"

    return ConsciousnessTicker


def _python_ring() -> Any:
    from lukhas_fast._ring_py import Ring

    return Ring


ConsciousnessTicker = make_consciousness_ticker(Ticker, _python_ring())
