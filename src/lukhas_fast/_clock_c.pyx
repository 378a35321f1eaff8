"""C tier of the clock family: ``Ticker`` as an extension type whose loop runs
in C (monotonic clock, absolute-deadline ``clock_nanosleep`` with the GIL
released, metrics in C fields, p95 computed only when read).

Shared pieces (validation, the live metrics dict, the asyncio and
background runners, ``summary``, ``ConsciousnessTicker``) come from
:mod:`lukhas_fast._clock_py`.
"""

cimport cython
import logging
import sys
from libc.stdint cimport int64_t
from libc.math cimport floor
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_GetSlice

from lukhas_fast import _clock_py as _shared
from lukhas_fast._clock_py import (check_fps, check_seconds, check_mode, check_callable, default_lane,
                                   TickerMetrics, BackgroundHandle, log_subscriber_error, logger,
                                   make_consciousness_ticker, P95_WINDOW, P95_MIN_SAMPLES)

__all__ = ["Ticker", "create_consciousness_ticker", "ConsciousnessTicker", "backend_details"]


cdef extern from "clock.h" nogil:
    int64_t lk_clock_now_ns()
    int lk_clock_sleep_until_ns(int64_t deadline_ns)
    double lk_clock_p95(const double *samples, size_t n, double *scratch)
    void lk_clock_yield()


def backend_details():
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"loop": "C: CLOCK_MONOTONIC, clock_nanosleep(TIMER_ABSTIME) with the GIL released"}


cdef enum:
    NSAMPLES = 1000                  # p95 window (P95_WINDOW)
    MAX_SLEEP_CHUNK_NS = 100000000   # a sleeping loop notices stop() at least every 0.1 s


cdef class Ticker:
    """Ticker(fps=30)

    Frame ticker: ``run(seconds)`` calls every subscriber with the tick number
    ``fps`` times a second, on absolute deadlines ``t0 + k / fps`` (no drift).
    Attributes: ``fps``, ``period``, ``subscribers``, ``tick_count``,
    ``running``, ``lane``, ``mode`` (``"realtime"`` skips missed slots after an
    overrun, ``"catchup"`` runs them back to back), ``metrics`` (live dict).
    """

    cdef double _fps
    cdef object _fps_given          # fps as given (get_metrics()["fps_target"], as in the SDK)
    cdef public double period
    cdef public list subscribers
    cdef public object lane
    cdef public bint running
    cdef public object metrics
    cdef int64_t _tick
    cdef bint _catchup
    # metrics
    cdef int64_t _processed, _dropped, _exceptions
    cdef double _total, _max, _max_sub
    cdef double _samples[NSAMPLES]
    cdef double _scratch[NSAMPLES]
    cdef Py_ssize_t _nsamples, _shead
    cdef double _p95_cache
    cdef bint _p95_dirty
    cdef object __weakref__
    cdef dict __dict__   # other attributes may be set, as on the reference's plain class

    def __init__(self, fps=30):
        self._fps = check_fps(fps)
        self._fps_given = fps
        self.period = 1.0 / self._fps
        self.subscribers = []
        self.lane = default_lane()
        self.running = False
        self._tick = 0
        self._catchup = False
        self._processed = self._dropped = self._exceptions = 0
        self._total = self._max = self._max_sub = 0.0
        self._nsamples = 0
        self._shead = 0
        self._p95_cache = 0.0
        self._p95_dirty = True
        self.metrics = TickerMetrics(self._metric_values, self._metric_value, self._set_metric)

    # -- configuration ------------------------------------------------------------
    @property
    def fps(self):
        """Target ticks per second (finite, > 0), the value as given (``50``
        stays an int, as in the SDK); setting it updates ``period``."""
        return self._fps_given

    @fps.setter
    def fps(self, value):
        self._fps = check_fps(value)
        self._fps_given = value
        self.period = 1.0 / self._fps

    @property
    def mode(self):
        """``"realtime"`` (default) or ``"catchup"``."""
        return "catchup" if self._catchup else "realtime"

    @mode.setter
    def mode(self, value):
        self._catchup = check_mode(value) == "catchup"

    @property
    def tick_count(self):
        """Number of the next tick (ticks are numbered from 0, across runs)."""
        return self._tick

    @tick_count.setter
    def tick_count(self, value):
        self._tick = value

    # -- subscribers ---------------------------------------------------------------
    def subscribe(self, cb):
        """Call ``cb(tick_number)`` on every tick (in subscription order)."""
        self.subscribers.append(check_callable(cb))

    def unsubscribe(self, cb):
        """Stop calling ``cb`` (no error if it is not subscribed)."""
        try:
            self.subscribers.remove(cb)
        except ValueError:
            pass

    # -- metrics -------------------------------------------------------------------
    cdef double _p95(self):
        cdef Py_ssize_t n = self._nsamples
        if n < P95_MIN_SAMPLES:
            return 0.0
        if self._p95_dirty:
            self._p95_cache = lk_clock_p95(self._samples, <size_t>n, self._scratch)
            self._p95_dirty = False
        return self._p95_cache

    def _metric_values(self):
        return {
            "ticks_processed": self._processed,
            "ticks_dropped": self._dropped,
            "total_processing_time": self._total,
            "max_processing_time": self._max,
            "p95_processing_time": self._p95(),
            "subscriber_exceptions": self._exceptions,
            "max_subscriber_time": self._max_sub,
        }

    def _metric_value(self, key):
        if key == "ticks_processed":
            return self._processed
        if key == "ticks_dropped":
            return self._dropped
        if key == "total_processing_time":
            return self._total
        if key == "max_processing_time":
            return self._max
        if key == "p95_processing_time":
            return self._p95()
        if key == "subscriber_exceptions":
            return self._exceptions
        if key == "max_subscriber_time":
            return self._max_sub
        raise KeyError(key)

    def _set_metric(self, key, value):
        if key == "ticks_processed":
            self._processed = value
        elif key == "ticks_dropped":
            self._dropped = value
        elif key == "total_processing_time":
            self._total = value
        elif key == "max_processing_time":
            self._max = value
        elif key == "subscriber_exceptions":
            self._exceptions = value
        elif key == "max_subscriber_time":
            self._max_sub = value

    def get_metrics(self):
        """New dict: ``fps_target``, ``tick_count``, ``running``, then every metric."""
        return _shared.get_metrics(self)

    def summary(self):
        """Human-readable summary of the metrics (the reference printed this)."""
        return _shared.summary(self)

    # -- the loop -------------------------------------------------------------------
    cdef int64_t _tick_c(self) except -1:
        """One tick: subscribers (snapshot of the list), then the metrics.
        Returns the monotonic time at its end (each callback's end stamp is
        the next one's start: one clock read per callback)."""
        cdef int64_t start, t, end
        cdef double dt
        cdef Py_ssize_t i, n
        cdef list subs = <list>PyList_GetSlice(self.subscribers, 0, len(self.subscribers))
        tick = self._tick
        n = len(subs)
        start = t = lk_clock_now_ns()
        for i in range(n):
            cb = subs[i]
            try:
                cb(tick)
            except Exception as exc:
                self._exceptions += 1
                log_subscriber_error(cb, tick, exc)
            end = lk_clock_now_ns()
            dt = <double>(end - t) * 1e-9
            if dt > self._max_sub:
                self._max_sub = dt
            t = end
        self._book(<double>(t - start) * 1e-9)
        return t

    cdef void _book(self, double proc) noexcept:
        self._processed += 1
        self._total += proc
        if proc > self._max:
            self._max = proc
        self._samples[self._shead] = proc
        self._shead += 1
        if self._shead == NSAMPLES:
            self._shead = 0
        if self._nsamples < NSAMPLES:
            self._nsamples += 1
        self._p95_dirty = True
        if proc > self.period:
            self._dropped += 1

    def _record(self, proc):
        """Book one tick's processing time (used by tests to inject samples)."""
        self._book(proc)

    def _tick_once(self):
        """Run one tick (used by the asyncio runner)."""
        self._tick_c()

    cdef int _sleep_until(self, int64_t due) except -1:
        """Sleep to the absolute deadline with the GIL released, in chunks so a
        stop() from another thread (or a signal it handled) is seen; Ctrl-C
        raises KeyboardInterrupt."""
        cdef int64_t now, until
        while self.running:
            now = lk_clock_now_ns()
            if now >= due:
                return 0
            until = due if due - now <= MAX_SLEEP_CHUNK_NS else now + MAX_SLEEP_CHUNK_NS
            with nogil:
                lk_clock_sleep_until_ns(until)
            # after every wake-up, not only on EINTR: a SIGINT handled by another
            # thread does not interrupt this sleep, it only sets Python's flag
            PyErr_CheckSignals()
        return 0

    def run(self, seconds=0):
        """run(seconds=0): tick until ``seconds`` have elapsed (``<= 0``: until
        :meth:`stop`); blocking.  Numbering continues from ``tick_count``;
        ``KeyboardInterrupt`` ends the loop cleanly; ``running`` is False on exit."""
        self._run(seconds, True)

    def _run(self, seconds, bint arm):
        """The loop.  ``arm=False`` (background thread): ``running`` was set by
        the caller, and a ``stop()`` that came first means no tick at all."""
        cdef double limit = check_seconds(seconds)
        cdef int64_t t0, start, due, now, k = 0, limit_ns, yield_at, switch_ns
        cdef double period_ns
        switch_ns = <int64_t>(max(2.0 * sys.getswitchinterval(), 1e-3) * 1e9)
        period_ns = self.period * 1e9
        # seconds beyond ~290 years cannot be counted in int64 ns: run until stop()
        limit_ns = <int64_t>(limit * 1e9) if 0 < limit < 9e9 else 0
        if arm:
            self.running = True
        elif not self.running:
            return
        logger.info("ticker starting: %.6g fps, mode=%s, lane=%s", self._fps, self.mode, self.lane)
        start = t0 = lk_clock_now_ns()
        yield_at = t0 + switch_ns
        try:
            while True:
                now = self._tick_c()
                if not self.running:
                    self._tick += 1
                    break
                k += 1
                due = t0 + <int64_t>(<double>k * period_ns)
                if now > due and not self._catchup:
                    # realtime: re-anchor to the next slot still in the future
                    # (the slots overrun get no tick; no tick runs off the grid)
                    k = <int64_t>floor(<double>(now - t0) / period_ns) + 1
                    due = t0 + <int64_t>(<double>k * period_ns)
                if now < due:
                    self._sleep_until(due)
                    now = lk_clock_now_ns()
                elif now >= yield_at:
                    # Not sleeping (catchup / overrun).  Built-in subscribers never
                    # enter the eval loop, which is where CPython hands the GIL to
                    # waiting threads and runs signal handlers: do both here.  A
                    # waiter asks for the GIL only after a whole switch interval
                    # with no release, and each release restarts its wait, so we
                    # release every *two* intervals: the request is then pending
                    # and the release hands over (without waiters it costs ~0.1 us).
                    with nogil:
                        lk_clock_yield()
                    PyErr_CheckSignals()
                    yield_at = now + switch_ns
                self._tick += 1
                if limit_ns > 0 and now - start >= limit_ns:
                    break
                if not self.running:
                    break
        except KeyboardInterrupt:
            logger.info("ticker interrupted")
        finally:
            self.running = False
            if logger.isEnabledFor(logging.INFO):
                logger.info("%s", _shared.summary(self))

    def stop(self):
        """End the loop after the current tick."""
        self.running = False

    def start_background(self, seconds=0):
        """Run the loop on a daemon thread; returns a handle with ``stop()`` and ``join(timeout)``."""
        return _shared.start_background(self, seconds)

    def run_async(self, seconds=0):
        """Tick on the running asyncio event loop without blocking it (a coroutine)."""
        return _shared.run_async(self, seconds)

    def __reduce__(self):
        raise TypeError("cannot pickle 'Ticker' object (it owns a loop and its subscribers); "
                        "build a new Ticker(fps) instead")

    def __repr__(self):
        return f"Ticker(fps={self._fps:.6g}, tick_count={self._tick}, running={bool(self.running)})"


def create_consciousness_ticker():
    """``Ticker(fps=30)`` (of this tier)."""
    return Ticker(fps=30)


def _c_ring():
    try:
        from lukhas_fast._ring_c import Ring
    except ImportError:  # pragma: no cover - both extensions build together
        from lukhas_fast._ring_py import Ring
    return Ring


ConsciousnessTicker = make_consciousness_ticker(Ticker, _c_ring())
