"""Optional Prometheus metrics, shared by every family.

* Nothing is registered at import.  A metric is created (and registered) the
  first time something records on it: the factories below are called by the
  families when an object with metrics on is constructed, and the module-level
  metric objects the SDK exposes (``SAFETY_TAGS_ENRICHMENT``, ...) are
  :class:`LazyMetric` handles that create their collector on first use.
* ``LUKHAS_FAST_METRICS=0`` turns the default of every ``metrics=None`` switch
  off, so with it nothing ever touches Prometheus unless a caller passes
  ``metrics=True`` explicitly.
* prometheus_client is optional and imported on first use only: without it
  every factory returns a no-op object with the same methods (``labels``,
  ``inc``, ``dec``, ``set``, ``observe``).
* Metric names are the reference SDK's.  A collector that is already
  registered under the same name in the target registry (the pure-Python SDK
  imported in the same process, a second instance) is *reused* instead of
  failing with "Duplicated timeseries".
* :func:`use_registry` sends metrics created from then on to another
  ``CollectorRegistry`` (public as :func:`lukhas_fast.metrics.use_registry`).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import weakref
from typing import Any, Dict, Optional, Sequence

__all__ = [
    "PROMETHEUS_AVAILABLE",
    "metrics_default",
    "resolve_metrics",
    "counter",
    "gauge",
    "histogram",
    "lazy_counter",
    "lazy_gauge",
    "lazy_histogram",
    "LazyMetric",
    "use_registry",
    "get_registry",
    "NOOP",
]

#: Whether prometheus_client is installed (found, not imported: importing it
#: costs time and it is only needed once a metric is used).
PROMETHEUS_AVAILABLE = importlib.util.find_spec("prometheus_client") is not None

_lock = threading.RLock()
_registry: Any = None  # None: prometheus_client.REGISTRY
_lazies: "weakref.WeakSet[LazyMetric]" = weakref.WeakSet()


class _Noop:
    """Stands in for a metric (or a labelled child) when metrics are off."""

    __slots__ = ()

    def labels(self, *args: Any, **kwargs: Any) -> "_Noop":
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float, *args: Any, **kwargs: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "<no-op metric>"


#: The shared no-op metric.
NOOP = _Noop()


def _prom() -> Any:
    import prometheus_client

    return prometheus_client


def metrics_default() -> bool:
    """True when prometheus_client is installed and ``LUKHAS_FAST_METRICS`` != ``"0"``."""
    return PROMETHEUS_AVAILABLE and os.environ.get("LUKHAS_FAST_METRICS", "1") != "0"


def resolve_metrics(metrics: Optional[bool], name: str = "metrics") -> bool:
    """Resolve a ``metrics: bool | None`` switch; True without the package raises."""
    if metrics is None:
        return metrics_default()
    if not isinstance(metrics, bool):
        raise TypeError(f"{name} must be a bool or None, got {type(metrics).__name__}")
    if metrics and not PROMETHEUS_AVAILABLE:
        raise ImportError(f"{name}=True needs prometheus_client (pip install 'lukhas_fast[metrics]')")
    return metrics


def get_registry() -> Any:
    """The registry new metrics go to (prometheus_client's default unless
    :func:`use_registry` chose another); None without prometheus_client."""
    if not PROMETHEUS_AVAILABLE:
        return None
    return _prom().REGISTRY if _registry is None else _registry


def use_registry(registry: Any) -> None:
    """Send lukhas_fast's metrics to *registry* (a ``prometheus_client.CollectorRegistry``;
    None: back to the default ``prometheus_client.REGISTRY``).

    Affects metrics created from now on: call it before constructing objects
    with metrics on.  The module-level metric handles (:class:`LazyMetric`)
    are re-bound, so their next use creates them in the new registry.
    """
    if registry is not None:
        if not PROMETHEUS_AVAILABLE:
            raise ImportError("use_registry needs prometheus_client (pip install 'lukhas_fast[metrics]')")
        if not isinstance(registry, _prom().CollectorRegistry):
            raise TypeError(f"registry must be a prometheus_client.CollectorRegistry or None, "
                            f"got {type(registry).__name__}")
    global _registry
    with _lock:
        _registry = registry
        for lazy in list(_lazies):
            lazy._reset()


def _existing(reg: Any, name: str) -> Any:
    names: Dict[str, Any] = getattr(reg, "_names_to_collectors", {})
    for candidate in (name, name + "_total", name.removesuffix("_total")):
        col = names.get(candidate)
        if col is not None:
            return col
    return None


def _get_or_create(kind: str, name: str, doc: str, labels: Sequence[str], **kw: Any) -> Any:
    if not PROMETHEUS_AVAILABLE:
        return NOOP
    prom = _prom()
    with _lock:
        reg = prom.REGISTRY if _registry is None else _registry
        col = _existing(reg, name)
        if col is not None:
            return col
        cls = getattr(prom, kind)
        try:
            return cls(name, doc, list(labels), registry=reg, **kw)
        except ValueError:
            # registered concurrently by someone not using this lock
            col = _existing(reg, name)
            if col is None:
                raise
            return col


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Any:
    """Get or create a Counter in the current registry (no-op without prometheus_client)."""
    return _get_or_create("Counter", name, doc, labels)


def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Any:
    """Get or create a Gauge in the current registry (no-op without prometheus_client)."""
    return _get_or_create("Gauge", name, doc, labels)


def histogram(name: str, doc: str, labels: Sequence[str] = (), buckets: Optional[Sequence[float]] = None) -> Any:
    """Get or create a Histogram in the current registry (no-op without prometheus_client)."""
    kw = {} if buckets is None else {"buckets": list(buckets)}
    return _get_or_create("Histogram", name, doc, labels, **kw)


# --- label policy ---------------------------------------------------------------------
#: Lane label values reported as themselves (the drift lanes, and ``unknown``:
#: the safety-tag metrics' value for a context without a lane).  Any other
#: lane -- client input -- is reported as ``other``, so the number of series
#: stays bounded.  Extend this set (before the metrics are recorded) to report
#: a further lane under its own name.
KNOWN_LANES = {"experimental", "candidate", "prod", "labs", "production", "unknown"}
OTHER_LANE = "other"
__all__ += ["KNOWN_LANES", "OTHER_LANE", "lane_label"]


def lane_label(lane: Any) -> str:
    """The ``lane`` label value for ``lane``: itself (lowercased) if it is a
    known lane (:data:`KNOWN_LANES`), else ``"other"``."""
    if type(lane) is str:
        if lane in KNOWN_LANES:
            return lane
        low = lane.lower()
        if low in KNOWN_LANES:
            return low
    return OTHER_LANE
class LazyMetric:
    """A module-level metric that exists at import and registers on first use.

    ``LazyMetric("Counter", name, doc, labels)`` behaves like the collector it
    stands for: ``labels``, ``inc``, ``dec``, ``set``, ``observe`` (and any
    other attribute) create the real collector in the current registry on the
    first call and forward to it.  Nothing touches Prometheus before that, so a
    process that never records (``LUKHAS_FAST_METRICS=0``, or no object with
    metrics on) registers nothing.  Tests may replace the module attribute
    holding it with a mock, as with a real collector.  Thread-safe.
    """

    __slots__ = ("kind", "name", "documentation", "labelnames", "_kw", "_real", "__weakref__")

    def __init__(self, kind: str, name: str, documentation: str, labelnames: Sequence[str] = (),
                 buckets: Optional[Sequence[float]] = None) -> None:
        if kind not in ("Counter", "Gauge", "Histogram"):
            raise ValueError(f"kind must be 'Counter', 'Gauge' or 'Histogram', got {kind!r}")
        self.kind = kind
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._kw: Dict[str, Any] = {} if buckets is None else {"buckets": list(buckets)}
        self._real: Any = None
        _lazies.add(self)

    def _get(self) -> Any:
        real = self._real
        if real is None:
            with _lock:
                real = self._real
                if real is None:
                    real = self._real = _get_or_create(self.kind, self.name, self.documentation,
                                                       self.labelnames, **self._kw)
        return real

    def _reset(self) -> None:
        self._real = None

    @property
    def created(self) -> bool:
        """Whether the real collector exists (this handle has been used)."""
        return self._real is not None

    def labels(self, *args: Any, **kwargs: Any) -> Any:
        return self._get().labels(*args, **kwargs)

    def inc(self, amount: float = 1) -> None:
        self._get().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._get().dec(amount)

    def set(self, value: float) -> None:
        self._get().set(value)

    def observe(self, value: float, *args: Any, **kwargs: Any) -> None:
        self._get().observe(value, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):  # private and dunder names are never forwarded
            raise AttributeError(attr)
        return getattr(self._get(), attr)

    def __repr__(self) -> str:
        state = "created" if self._real is not None else "not yet created"
        return f"<lazy {self.kind} {self.name!r} ({state})>"


def lazy_counter(name: str, doc: str, labels: Sequence[str] = ()) -> LazyMetric:
    """A :class:`LazyMetric` Counter: exists now, registers on first use."""
    return LazyMetric("Counter", name, doc, labels)


def lazy_gauge(name: str, doc: str, labels: Sequence[str] = ()) -> LazyMetric:
    """A :class:`LazyMetric` Gauge: exists now, registers on first use."""
    return LazyMetric("Gauge", name, doc, labels)


def lazy_histogram(name: str, doc: str, labels: Sequence[str] = (),
                   buckets: Optional[Sequence[float]] = None) -> LazyMetric:
    """A :class:`LazyMetric` Histogram: exists now, registers on first use."""
    return LazyMetric("Histogram", name, doc, labels, buckets)
