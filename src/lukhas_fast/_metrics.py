"""Optional Prometheus metrics, shared by every family.

* prometheus_client is optional: without it every factory returns a no-op
  object with the same methods (``labels``, ``inc``, ``set``, ``observe``).
* Metric names are the reference SDK's.  A collector that is already
  registered under the same name (the pure-Python SDK imported in the same
  process, a re-import, a second instance) is *reused* instead of failing
  with "Duplicated timeseries".
* ``metrics_default()`` is the default of every ``metrics=None`` switch:
  on when prometheus_client imports and env ``LUKHAS_FAST_METRICS`` is not
  ``"0"``.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional, Sequence

__all__ = [
    "PROMETHEUS_AVAILABLE",
    "metrics_default",
    "resolve_metrics",
    "counter",
    "gauge",
    "histogram",
    "NOOP",
]

try:  # pragma: no branch
    import prometheus_client as _prom

    PROMETHEUS_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised in envs without the extra
    _prom = None
    PROMETHEUS_AVAILABLE = False

_lock = threading.Lock()


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


def metrics_default() -> bool:
    """True when prometheus_client imports and ``LUKHAS_FAST_METRICS`` != ``"0"``."""
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


def _existing(name: str) -> Any:
    reg = _prom.REGISTRY
    names = getattr(reg, "_names_to_collectors", {})
    for candidate in (name, name + "_total", name.removesuffix("_total")):
        col = names.get(candidate)
        if col is not None:
            return col
    return None


def _get_or_create(kind: str, name: str, doc: str, labels: Sequence[str], **kw: Any) -> Any:
    if not PROMETHEUS_AVAILABLE:
        return NOOP
    with _lock:
        col = _existing(name)
        if col is not None:
            return col
        cls = getattr(_prom, kind)
        try:
            return cls(name, doc, list(labels), **kw)
        except ValueError:
            # registered concurrently by someone not using this lock
            col = _existing(name)
            if col is None:
                raise
            return col


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Any:
    """Get or create a Counter in the default registry (no-op without prometheus_client)."""
    return _get_or_create("Counter", name, doc, labels)


def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Any:
    """Get or create a Gauge in the default registry (no-op without prometheus_client)."""
    return _get_or_create("Gauge", name, doc, labels)


def histogram(name: str, doc: str, labels: Sequence[str] = (), buckets: Optional[Sequence[float]] = None) -> Any:
    """Get or create a Histogram in the default registry (no-op without prometheus_client)."""
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
