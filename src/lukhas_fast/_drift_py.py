"""Pure-Python tier of the drift family: the oracle and the last fallback.

Everything here follows ``shared/spec/drift.md``: sums are accumulated left to
right in plain Python floats, exactly as the reference does.  The numba tier
(:mod:`lukhas_fast._drift_nb`) reuses :class:`DriftMonitor` with its own
kernels; the C tier (:mod:`lukhas_fast._drift_c`) reuses the configuration,
lane and snapshot helpers defined here.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from lukhas_fast import _metrics

__all__ = [
    "DriftConfig",
    "LANE_CFG",
    "DriftMonitor",
    "_cosine",
    "cosine_similarity",
    "cosine_similarity_batch",
    "GUARDIAN_NAMES",
    "backend_details",
]

GUARDIAN_NAMES = ("allow", "warn", "block")
SUPPORTED_DTYPES = ("float64", "float32", "int64", "int32")


def backend_details() -> Dict[str, Any]:
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"kernel": "pure Python (left-to-right sums)"}


@dataclass(frozen=True)
class DriftConfig:
    """Per-lane drift thresholds: warn/block limits on the EMA, its ``alpha`` and the window size."""

    warn_threshold: float
    block_threshold: float
    alpha: float = 0.2
    window: int = 64


#: Lane -> thresholds.  ``labs`` and ``production`` are additions (see README).
LANE_CFG: Dict[str, DriftConfig] = {
    "experimental": DriftConfig(0.30, 0.50, 0.2, 64),
    "candidate": DriftConfig(0.20, 0.35, 0.2, 64),
    "prod": DriftConfig(0.15, 0.25, 0.2, 64),
    "labs": DriftConfig(0.20, 0.35, 0.2, 64),
    "production": DriftConfig(0.15, 0.25, 0.2, 64),
}

_warned_lanes: set = set()
_warn_lock = threading.Lock()


def resolve_lane(lane: Optional[str]) -> Tuple[str, DriftConfig]:
    """Lane name (argument, else env ``LUKHAS_LANE``, else ``experimental``; lowercased) and its config.

    ``None`` and ``""`` both mean "not given" (the SDK's ``lane or env``).

    Unknown lanes use the experimental thresholds, keep their name, and warn
    once per name per process.
    """
    if lane is None or (type(lane) is str and lane == ""):
        # the SDK's `lane or env`: an empty name falls back like None
        lane = os.environ.get("LUKHAS_LANE", "experimental")
    if not isinstance(lane, str):
        raise TypeError(f"lane must be a str or None, got {type(lane).__name__}")
    lane = lane.lower()
    cfg = LANE_CFG.get(lane)
    if cfg is None:
        cfg = LANE_CFG["experimental"]
        with _warn_lock:
            first = lane not in _warned_lanes
            _warned_lanes.add(lane)
        if first:
            warnings.warn(
                f"unknown drift lane {lane!r}: using the experimental thresholds "
                f"(known lanes: {', '.join(LANE_CFG)})",
                UserWarning,
                stacklevel=3,
            )
    return lane, cfg


def check_cfg(cfg: Any) -> DriftConfig:
    """A usable :class:`DriftConfig` (``LANE_CFG`` is a plain dict users may extend)."""
    if not isinstance(cfg, DriftConfig):
        raise TypeError(f"LANE_CFG values must be DriftConfig, got {type(cfg).__name__}")
    if isinstance(cfg.window, bool) or not isinstance(cfg.window, int) or cfg.window < 1:
        raise ValueError(f"DriftConfig.window must be an int >= 1, got {cfg.window!r}")
    for name in ("warn_threshold", "block_threshold", "alpha"):
        check_finite_float(getattr(cfg, name), f"DriftConfig.{name}")
    if not 0.0 <= cfg.alpha <= 1.0:
        raise ValueError(f"DriftConfig.alpha must be in [0, 1], got {cfg.alpha!r}")
    return cfg


def guardian_code(ema: float, cfg: DriftConfig) -> int:
    """0 allow, 1 warn, 2 block."""
    if ema >= cfg.block_threshold:
        return 2
    if ema >= cfg.warn_threshold:
        return 1
    return 0


# --- element conversion and the oracle kernel -------------------------------

def _as_float(x: Any, name: str, i: int) -> float:
    t = type(x)
    if t is float:
        return x
    if t is int or t is bool:
        try:
            return float(x)
        except OverflowError:
            raise ValueError(f"{name}[{i}] is too large for a float: non-finite input") from None
    if isinstance(x, (str, bytes, bytearray)) or not (
        hasattr(t, "__float__") or hasattr(t, "__index__")
    ):
        raise TypeError(f"{name}[{i}] must be a number, got {t.__name__}")
    try:
        return float(x)
    except OverflowError:
        raise ValueError(f"{name}[{i}] is too large for a float: non-finite input") from None


def as_vector(v: Any, name: str) -> Sequence[Any]:
    """Validate the container of a vector: a list/tuple, or a 1-D buffer of a supported dtype.

    Returns a sequence whose items are then converted element by element.
    """
    if isinstance(v, (list, tuple)):
        return v
    if isinstance(v, (str, bytes, bytearray)) or v is None:
        raise TypeError(f"{name} must be a sequence of numbers or a 1-D array, got {type(v).__name__}")
    try:
        mv = memoryview(v)
    except TypeError:
        if hasattr(v, "__len__") and hasattr(v, "__getitem__"):
            return list(v)
        raise TypeError(f"{name} must be a sequence of numbers or a 1-D array, got {type(v).__name__}") from None
    arr = np.asarray(v) if not isinstance(v, np.ndarray) else v
    del mv
    if arr.dtype.name not in SUPPORTED_DTYPES or arr.dtype.byteorder == ">":
        raise TypeError(f"{name} dtype must be one of {', '.join(SUPPORTED_DTYPES)}, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got {arr.ndim}-D array of shape {arr.shape}")
    return arr.tolist()


def sums3(a: Sequence[Any], b: Sequence[Any], names: Tuple[str, str] = ("a", "b")) -> Tuple[float, float, float]:
    """dot, |a|^2, |b|^2 summed left to right (converting and type-checking each element)."""
    dot = na = nb = 0.0
    an, bn = names
    for i in range(len(a)):
        x = _as_float(a[i], an, i)
        y = _as_float(b[i], bn, i)
        dot += x * y
        na += x * x
        nb += y * y
    return dot, na, nb


def cosine_from_sums(dot: float, na: float, nb: float, what: str = "input") -> float:
    """The reference's cosine rules from the sums; non-finite sums raise ValueError."""
    if not (math.isfinite(dot) and math.isfinite(na) and math.isfinite(nb)):
        raise ValueError(f"non-finite {what}: nan/inf values or an overflow in the norms")
    if na == 0.0 or nb == 0.0:
        return 0.0
    c = dot / (math.sqrt(na) * math.sqrt(nb))
    return max(-1.0, min(1.0, c))


def cosine_py(a: Any, b: Any, names: Tuple[str, str] = ("a", "b")) -> float:
    """Reference cosine: 0.0 for empty or mismatched inputs or a zero norm; else clamped dot/(|a||b|)."""
    va = as_vector(a, names[0])
    vb = as_vector(b, names[1])
    if len(va) == 0 or len(vb) == 0 or len(va) != len(vb):
        return 0.0
    return cosine_from_sums(*sums3(va, vb, names), what=f"{names[0]}/{names[1]}")


def as_rows(m: Any, name: str) -> List[Sequence[Any]]:
    """Rows of a batch argument: a 2-D array or a sequence of vectors."""
    if isinstance(m, np.ndarray):
        if m.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n, d), got shape {m.shape}")
        if m.dtype.name not in SUPPORTED_DTYPES or m.dtype.byteorder == ">":
            raise TypeError(f"{name} dtype must be one of {', '.join(SUPPORTED_DTYPES)}, got {m.dtype}")
        return list(m)
    if isinstance(m, (list, tuple)):
        return list(m)
    raise TypeError(f"{name} must be a 2-D array or a sequence of vectors, got {type(m).__name__}")


def cosine_rows_py(A: Any, B: Any) -> np.ndarray:
    """Row-wise reference cosine; ValueError names the first non-finite row."""
    ra, rb = as_rows(A, "intents"), as_rows(B, "actions")
    if len(ra) != len(rb):
        raise ValueError(f"intents and actions must have the same number of rows, got {len(ra)} and {len(rb)}")
    out = np.empty(len(ra), dtype=np.float64)
    for i, (x, y) in enumerate(zip(ra, rb)):
        try:
            out[i] = cosine_py(x, y, (f"intents[{i}]", f"actions[{i}]"))
        except ValueError as exc:
            raise ValueError(f"row {i}: {exc}") from None
    return out


class PyKernels:
    """Kernel table of the pure-Python tier (the numba tier swaps these)."""

    name = "python"
    cosine: "Callable[..., float]" = staticmethod(cosine_py)
    cosine_rows: "Callable[..., np.ndarray]" = staticmethod(cosine_rows_py)


def cosine_similarity(a: Any, b: Any) -> float:
    """Cosine similarity with the reference's rules.

    0.0 when either input is empty, the lengths differ or a norm is zero;
    otherwise ``dot / (|a| * |b|)`` clamped to ``[-1, 1]``.  Non-finite input
    raises ``ValueError``; non-numeric elements raise ``TypeError``.
    """
    return PyKernels.cosine(a, b)


# the reference's private name for the same function
_cosine = cosine_similarity


def cosine_similarity_batch(A: Any, B: Any) -> np.ndarray:
    """Row-wise :func:`_cosine` of two ``(n, d)`` arrays (or sequences of vectors), as float64."""
    return PyKernels.cosine_rows(A, B)


# --- snapshot helpers shared with the C tier ----------------------------------

def check_finite_float(value: Any, name: str) -> float:
    """A finite real number (not bool) as float, else TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def parse_snapshot(d: Any) -> Tuple[str, float, List[float]]:
    """Validate a :meth:`DriftMonitor.snapshot` dict: (lane, ema, window values)."""
    if not isinstance(d, Mapping):
        raise TypeError(f"snapshot must be a dict, got {type(d).__name__}")
    for key in ("lane", "ema", "window"):
        if key not in d:
            raise ValueError(f"snapshot is missing {key!r}")
    lane = d["lane"]
    if not isinstance(lane, str):
        raise TypeError(f"snapshot['lane'] must be a str, got {type(lane).__name__}")
    ema = check_finite_float(d["ema"], "snapshot['ema']")
    window = d["window"]
    if not isinstance(window, (list, tuple)):
        raise TypeError(f"snapshot['window'] must be a list, got {type(window).__name__}")
    values = [check_finite_float(x, f"snapshot['window'][{i}]") for i, x in enumerate(window)]
    return lane, ema, values


class DriftMonitor:
    """DriftMonitor(lane=None, *, metrics=None)

    Intent-vs-action drift monitor: ``update(intent, action)`` computes
    ``drift = 1 - cosine(intent, action)``, keeps the last ``cfg.window``
    drifts, updates ``ema = alpha * drift + (1 - alpha) * ema`` and decides
    ``allow``/``warn``/``block`` against the lane's thresholds.

    ``lane``: the argument, else env ``LUKHAS_LANE``, else ``experimental``
    (lowercased; unknown lanes use the experimental thresholds and warn once).
    ``metrics``: set the ``lukhas_drift_ema{lane}`` gauge on each update (None:
    on when prometheus_client imports and ``LUKHAS_FAST_METRICS`` != "0").
    """

    _kernels = PyKernels

    def __init__(self, lane: Optional[str] = None, *, metrics: Optional[bool] = None) -> None:
        self._lane, self._cfg = resolve_lane(lane)
        check_cfg(self._cfg)
        self._metrics = _metrics.resolve_metrics(metrics)
        self._gauge = ema_gauge(self._lane) if self._metrics else None
        self._ema = 0.0
        self._window: List[float] = []

    # -- attributes -----------------------------------------------------------
    @property
    def lane(self) -> str:
        """The lane name (lowercased)."""
        return self._lane

    @property
    def cfg(self) -> DriftConfig:
        """The lane's :class:`DriftConfig`."""
        return self._cfg

    @property
    def ema(self) -> float:
        """Exponential moving average of the drift (starts at 0.0)."""
        return self._ema

    @ema.setter
    def ema(self, value: float) -> None:
        self._ema = check_finite_float(value, "ema")

    @property
    def metrics(self) -> bool:
        """Whether updates set the Prometheus gauge."""
        return self._metrics

    @property
    def _raw(self) -> List[float]:
        """The window of raw drift values, oldest first (a snapshot list)."""
        return list(self._window)

    @property
    def _window_len(self) -> int:
        """How many values the window holds (``len(self._raw)`` without the copy)."""
        return len(self._window)

    # -- updates ----------------------------------------------------------------
    def update(self, intent: Any, action: Any) -> Dict[str, Any]:
        """Update with one intent/action pair; returns ``lane``, ``drift``, ``ema``, ``guardian``, ``n``."""
        sim = self._kernels.cosine(intent, action, ("intent", "action"))
        drift = 1.0 - sim
        window = self._window
        window.append(drift)
        if len(window) > self._cfg.window:
            del window[0]
        cfg = self._cfg
        self._ema = cfg.alpha * drift + (1.0 - cfg.alpha) * self._ema
        code = guardian_code(self._ema, cfg)
        if self._gauge is not None:
            self._gauge.set(self._ema)
        return {"lane": self._lane, "drift": drift, "ema": self._ema, "guardian": GUARDIAN_NAMES[code], "n": len(window)}

    def update_many(self, intents: Any, actions: Any) -> Dict[str, Any]:
        """Exactly ``update`` applied to each row in order (all rows validated first).

        Returns ``lane``, ``drift`` and ``ema`` (float64 arrays), ``guardian_code``
        (int8 array: 0 allow, 1 warn, 2 block), ``guardian`` (last decision) and
        ``n`` (window length after).
        """
        sims = self._kernels.cosine_rows(intents, actions)
        n = sims.shape[0]
        drifts = 1.0 - sims
        emas = np.empty(n, dtype=np.float64)
        codes = np.empty(n, dtype=np.int8)
        cfg = self._cfg
        alpha, beta = cfg.alpha, 1.0 - cfg.alpha
        ema = self._ema
        for i in range(n):
            ema = alpha * float(drifts[i]) + beta * ema
            emas[i] = ema
            codes[i] = guardian_code(ema, cfg)
        self._ema = ema
        window = self._window
        window.extend(drifts[-cfg.window:].tolist() if n else [])
        if len(window) > cfg.window:
            del window[: len(window) - cfg.window]
        if self._gauge is not None and n:
            self._gauge.set(ema)
        last = GUARDIAN_NAMES[int(codes[-1])] if n else GUARDIAN_NAMES[guardian_code(ema, cfg)]
        return {"lane": self._lane, "drift": drifts, "ema": emas, "guardian_code": codes, "guardian": last, "n": len(window)}

    def reset(self) -> None:
        """EMA back to 0.0 and an empty window."""
        self._ema = 0.0
        self._window.clear()

    def snapshot(self) -> Dict[str, Any]:
        """Plain-dict state (``lane``, ``ema``, ``window``) for :meth:`from_snapshot`."""
        return {"lane": self._lane, "ema": self._ema, "window": list(self._window)}

    @classmethod
    def from_snapshot(cls, d: Mapping[str, Any], *, metrics: Optional[bool] = None) -> "DriftMonitor":
        """Rebuild a monitor from :meth:`snapshot` output (the window keeps its last ``cfg.window`` values)."""
        lane, ema, values = parse_snapshot(d)
        m = cls(lane, metrics=metrics)
        m._ema = ema
        m._window = values[-m._cfg.window:] if values else []
        return m

    def __reduce__(self) -> Tuple[Any, ...]:
        return monitor_reduce(self)

    def __repr__(self) -> str:
        return f"DriftMonitor(lane={self._lane!r}, ema={self._ema:.6g}, n={len(self._window)})"


def monitor_reduce(m: Any) -> Tuple[Any, ...]:
    """``__reduce__`` of every tier's DriftMonitor: its snapshot and metrics switch."""
    state = m.snapshot()
    state["metrics"] = m.metrics
    return (restore_monitor, (type(m), state))


def restore_monitor(cls: Any, state: Any) -> Any:
    """Unpickle a DriftMonitor (``from_snapshot``; metrics stay off if they were
    off, and follow the default where prometheus_client is missing)."""
    metrics = state.get("metrics") if isinstance(state, Mapping) else None
    if metrics and not _metrics.PROMETHEUS_AVAILABLE:
        metrics = None
    return cls.from_snapshot(state, metrics=bool(metrics) if metrics is not None else None)


def ema_gauge(lane: str) -> Any:
    """The labelled child of ``lukhas_drift_ema`` for a lane (looked up once per monitor)."""
    g = _metrics.gauge("lukhas_drift_ema", "EMA of intent/action drift", ["lane"])
    return g.labels(lane=_metrics.lane_label(lane))  # lanes outside the known set: "other"
