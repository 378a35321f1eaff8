"""Per-request Prometheus accounting for the service at the cost of a dict update.

prometheus_client costs about 1 us per ``Counter.inc`` and 2 us per
``Histogram.observe`` (a lock, a Python loop over the buckets; an mmap write
per value in multiprocess mode): with a request counter and a latency
histogram or two, the metrics alone cost more than everything the service
itself does per request.  :class:`RequestMetrics` instead counts each request
in plain dicts (one ``bisect`` for the latency bucket) and *flushes* the
accumulated deltas into the real prometheus_client metrics -- before every
scrape of this process, and every ``interval`` seconds from the event loop
(so that, with ``serve --workers N``, a scrape served by one worker sees every
worker's requests at most ``interval`` seconds late).  The exposed series,
names, labels and buckets are exactly those of the direct calls.

Not thread-safe: one instance belongs to one event loop (the service's).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left as _bisect
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["RequestMetrics"]

logger = logging.getLogger("lukhas_fast.service")


class RequestMetrics:
    """RequestMetrics(counters, histograms, buckets, *, interval=1.0)

    ``counters``: ``[(counter, labels_fn)]`` where ``labels_fn(key)`` gives the
    counter's label values for a request key; ``histograms``: the same for
    histograms (all with ``buckets``, the upper bounds without ``+Inf``).
    ``observe(key, seconds)`` records one request; ``key`` is any hashable
    tuple the label functions understand (e.g. ``(route, method, status)``).
    """

    def __init__(self, counters: Sequence[Tuple[Any, Callable[[Any], Sequence[str]]]],
                 histograms: Sequence[Tuple[Any, Callable[[Any], Sequence[str]]]],
                 buckets: Sequence[float], *, interval: float = 1.0) -> None:
        self.counters = list(counters)
        self.histograms = list(histograms)
        self.bounds = list(buckets)
        self.interval = interval
        # key -> [sum of seconds, count in bucket 0, ..., count in +Inf]: one list per key, so
        # observe() is one dict lookup, one bisect and two list updates
        self._acc: Dict[Any, List[Any]] = {}
        self._blank = [0.0] + [0] * (len(self.bounds) + 1)
        self._children: Dict[Any, Tuple[List[Any], List[Any]]] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        #: called before each flush (e.g. to publish gauges read from live state)
        self.before_flush: List[Callable[[], None]] = []

    def observe(self, key: Any, seconds: float) -> None:
        """Count one request with latency ``seconds`` (the hot path: a dict lookup and a bisect)."""
        acc = self._acc.get(key)
        if acc is None:
            acc = self._acc[key] = self._blank.copy()
        acc[0] += seconds
        acc[_bisect(self.bounds, seconds) + 1] += 1

    def slot(self, key: Any) -> List[Any]:
        """The accumulator of ``key``, for a caller that records one key often and wants
        to skip even the dict lookup of :meth:`observe`.

        A list ``[sum of seconds, count in bucket 0, ..., count in +Inf]``; recording a
        request with latency ``x`` is ``acc[0] += x; acc[bisect_left(bounds, x) + 1] += 1``
        (exactly what :meth:`observe` does).  The list lives as long as this object
        (:meth:`flush` zeroes it in place), and a key with no requests since the last
        flush adds nothing to the metrics (no labelled series appears for it)."""
        acc = self._acc.get(key)
        if acc is None:
            acc = self._acc[key] = self._blank.copy()
        return acc

    def _labelled(self, key: Any) -> Tuple[List[Any], List[Any]]:
        ch = self._children.get(key)
        if ch is None:
            ch = self._children[key] = (
                [c.labels(*fn(key)) for c, fn in self.counters],
                [h.labels(*fn(key)) for h, fn in self.histograms],
            )
        return ch

    def flush(self) -> None:
        """Move the accumulated deltas into the prometheus_client metrics (and zero them)."""
        for hook in self.before_flush:
            hook()
        blank = self._blank
        for key, acc in self._acc.items():
            buckets = acc[1:]
            n = sum(buckets)
            if not n:
                continue
            total = acc[0]
            acc[:] = blank  # in place: slot() holders keep counting into the same list
            counters, hists = self._labelled(key)
            for child in counters:
                child.inc(n)
            for child in hists:
                _add_histogram(child, buckets, total)

    # -- periodic flush on the event loop --------------------------------------------
    def start(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        """Flush every ``interval`` seconds on ``loop`` (the running loop by default)."""
        loop = loop or asyncio.get_running_loop()

        def tick() -> None:
            try:
                self.flush()
            except Exception:  # pragma: no cover - never let metrics take the service down
                logger.exception("flushing request metrics failed")
            self._timer = loop.call_later(self.interval, tick)

        self._timer = loop.call_later(self.interval, tick)

    def stop(self) -> None:
        """Stop the periodic flush and flush what is left."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()


def _add_histogram(child: Any, counts: List[int], total: float) -> None:
    """Add per-bucket counts and a sum to a prometheus_client Histogram child.

    prometheus_client has no bulk ``observe``; its children keep one value per
    bucket (``_buckets``, non-cumulative) and ``_sum``, which is what
    ``observe`` increments.  Without them (a no-op metric, or another
    implementation) nothing is added.
    """
    buckets = getattr(child, "_buckets", None)
    ssum = getattr(child, "_sum", None)
    if buckets is not None and ssum is not None and len(buckets) == len(counts):
        for value, n in zip(buckets, counts):
            if n:
                value.inc(n)
        ssum.inc(total)
        return
    # a no-op metric (prometheus_client not installed) or an unknown implementation: nothing to add
