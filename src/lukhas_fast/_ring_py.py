"""Pure-Python tier of the rings: the last fallback and the test oracle.

Semantics follow ``shared/spec/rings.md`` exactly; the C tier
(:mod:`lukhas_fast._ring_c`) must agree with this module on every sequence of
operations.
"""

from __future__ import annotations

import sys
import copyreg
import math
import threading
from collections import deque
from numbers import Real
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional

import numpy as np

__all__ = ["Ring", "DecimatingRing", "SpscRing", "STRATEGIES", "backend_details"]

#: The built-in decimation strategies.
STRATEGIES = ("skip_nth", "adaptive", "keep_recent")


def backend_details() -> Dict[str, Any]:
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"impl": "collections.deque + numpy (pure Python)"}


# --- validation shared with the C tier (which imports these helpers) ---------

def check_capacity(capacity: Any, name: str = "capacity") -> int:
    """Validate a ring capacity: an ``int`` (not ``bool``) ``>= 1``."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"{name} must be an int, got {type(capacity).__name__}")
    if capacity < 1:
        raise ValueError(f"{name} must be >= 1, got {capacity}")
    return int(capacity)


def check_threshold(value: Any) -> float:
    """Validate ``pressure_threshold``: a real number with ``0 < t <= 1``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"pressure_threshold must be a real number, got {type(value).__name__}")
    t = float(value)
    if not (0.0 < t <= 1.0):
        raise ValueError(f"pressure_threshold must satisfy 0 < t <= 1, got {value!r}")
    return t


def check_factor(value: Any) -> int:
    """Validate ``decimation_factor``: an ``int >= 1``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"decimation_factor must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"decimation_factor must be >= 1, got {value}")
    return int(value)


def check_strategy(value: Any) -> str:
    """Validate ``decimation_strategy``: one of :data:`STRATEGIES`."""
    if not isinstance(value, str):
        raise TypeError(f"decimation_strategy must be a str, got {type(value).__name__}")
    if value not in STRATEGIES:
        raise ValueError(
            f"decimation_strategy must be one of {', '.join(STRATEGIES)}, got {value!r}"
        )
    return value


def check_protect_priority(value: Any) -> Optional[float]:
    """Validate ``protect_priority``: None or a finite real number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise TypeError(f"protect_priority must be None or a finite real number, got {value!r}")
    return value


def check_priority(priority: Any) -> None:
    """``priority`` must be None or a real number when protection is on."""
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, Real)):
        raise TypeError(f"priority must be None or a real number, got {type(priority).__name__}")


# --- pickling (shared by the tiers) ----------------------------------------------

_DEC_CONFIG = ("pressure_threshold", "decimation_factor", "decimation_strategy", "protect_priority")
_DEC_COUNTERS = ("drops_total", "decimation_events", "push_count", "last_decimation_utilization")


def ring_state(ring: Any, decimating: bool) -> Dict[str, Any]:
    """The pickled state of a ring: ``capacity``, ``items`` (oldest first), for a
    DecimatingRing its configuration and counters, and ``attrs`` (the instance
    ``__dict__``, when not empty)."""
    state: Dict[str, Any] = {"capacity": ring.capacity, "items": list(ring)}
    if decimating:
        for key in _DEC_CONFIG + _DEC_COUNTERS:
            state[key] = getattr(ring, key)
    attrs = getattr(ring, "__dict__", None)
    if attrs:
        state["attrs"] = dict(attrs)
    return state


def parse_ring_state(state: Any, decimating: bool) -> Dict[str, Any]:
    """Validate a :func:`ring_state` dict (TypeError/ValueError naming the key)."""
    if not isinstance(state, dict):
        raise TypeError(f"ring state must be a dict, got {type(state).__name__}")
    keys = ("capacity", "items") + ((_DEC_CONFIG + _DEC_COUNTERS) if decimating else ())
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"ring state is missing {', '.join(map(repr, missing))}")
    out = dict(state)
    out["capacity"] = check_capacity(state["capacity"], "state['capacity']")
    if not isinstance(state["items"], (list, tuple)):
        raise TypeError(f"state['items'] must be a list, got {type(state['items']).__name__}")
    out["items"] = list(state["items"])[-out["capacity"]:]
    attrs = state.get("attrs", {})
    if not isinstance(attrs, dict):
        raise TypeError(f"state['attrs'] must be a dict, got {type(attrs).__name__}")
    out["attrs"] = attrs
    if decimating:
        out["pressure_threshold"] = check_threshold(state["pressure_threshold"])
        out["decimation_factor"] = check_factor(state["decimation_factor"])
        out["decimation_strategy"] = check_strategy(state["decimation_strategy"])
        out["protect_priority"] = check_protect_priority(state["protect_priority"])
        for key in _DEC_COUNTERS[:3]:
            v = state[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"state[{key!r}] must be an int >= 0, got {v!r}")
        v = state["last_decimation_utilization"]
        if isinstance(v, bool) or not isinstance(v, Real):
            raise TypeError(f"state['last_decimation_utilization'] must be a real number, got {type(v).__name__}")
        out["last_decimation_utilization"] = float(v)
    return out


def restore_attrs(ring: Any, attrs: Dict[str, Any]) -> None:
    """Put a pickled instance ``__dict__`` back."""
    for key, value in attrs.items():
        setattr(ring, key, value)


class Ring:
    """Bounded FIFO that evicts the oldest item when full (like ``deque(maxlen=capacity)``).

    Instances take attributes like a plain object (``__dict__``), so
    ``mock.patch.object(ring, "push", ...)`` works; they pickle with their items.
    """

    __slots__ = ("_buf", "_capacity", "__weakref__", "__dict__")

    def __init__(self, capacity: int) -> None:
        self._capacity = check_capacity(capacity)
        self._buf: Deque[Any] = deque(maxlen=self._capacity)

    def push(self, x: Any) -> None:
        """Append ``x``, evicting the oldest item if the ring is full."""
        self._buf.append(x)

    def pop_all(self) -> List[Any]:
        """Return every held item, oldest first, and empty the ring."""
        out = list(self._buf)
        self._buf.clear()
        return out

    def clear(self) -> None:
        """Drop every held item (counters of subclasses are untouched)."""
        self._buf.clear()

    def __len__(self) -> int:
        return len(self._buf)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._buf))

    @property
    def capacity(self) -> int:
        """Maximum number of held items (read-only)."""
        return self._capacity

    @property
    def utilization(self) -> float:
        """``len(ring) / capacity`` as a float."""
        return len(self._buf) / self._capacity

    def __reduce__(self) -> Any:
        return (copyreg.__newobj__, (type(self),), ring_state(self, False))

    def __setstate__(self, state: Any) -> None:
        st = parse_ring_state(state, False)
        self._capacity = st["capacity"]
        self._buf = deque(st["items"], maxlen=st["capacity"])
        restore_attrs(self, st["attrs"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={len(self._buf)}, capacity={self._capacity})"


class DecimatingRing(Ring):
    """A :class:`Ring` that sheds load under pressure (drop on push + decimation when full)."""

    __slots__ = (
        "_threshold",
        "_factor",
        "_strategy",
        "_protect",
        "drops_total",
        "decimation_events",
        "push_count",
        "last_decimation_utilization",
    )

    def __init__(
        self,
        capacity: int,
        pressure_threshold: float = 0.8,
        decimation_factor: int = 2,
        decimation_strategy: str = "skip_nth",
        *,
        protect_priority: Optional[float] = None,
    ) -> None:
        cap = check_capacity(capacity)
        thr = check_threshold(pressure_threshold)
        fac = check_factor(decimation_factor)
        strat = check_strategy(decimation_strategy)
        prot = check_protect_priority(protect_priority)
        super().__init__(cap)
        self._threshold = thr
        self._factor = fac
        self._strategy = strat
        self._protect = prot
        self.drops_total = 0
        self.decimation_events = 0
        self.push_count = 0
        self.last_decimation_utilization = 0.0

    # -- validated, assignable configuration ---------------------------------
    @property
    def pressure_threshold(self) -> float:
        """Utilization at or above which the drop rule applies (``0 < t <= 1``)."""
        return self._threshold

    @pressure_threshold.setter
    def pressure_threshold(self, value: float) -> None:
        self._threshold = check_threshold(value)

    @property
    def decimation_factor(self) -> int:
        """Stride of the skip_nth/adaptive rules (``int >= 1``)."""
        return self._factor

    @decimation_factor.setter
    def decimation_factor(self, value: int) -> None:
        self._factor = check_factor(value)

    @property
    def decimation_strategy(self) -> str:
        """``"skip_nth"``, ``"adaptive"`` or ``"keep_recent"``."""
        return self._strategy

    @decimation_strategy.setter
    def decimation_strategy(self, value: str) -> None:
        self._strategy = check_strategy(value)

    @property
    def protect_priority(self) -> Optional[float]:
        """Pushes with ``priority >= protect_priority`` are never dropped (None: off)."""
        return self._protect

    @protect_priority.setter
    def protect_priority(self, value: Optional[float]) -> None:
        self._protect = check_protect_priority(value)

    # -- the reference algorithm ---------------------------------------------
    def push(self, x: Any, priority: Any = None) -> None:  # type: ignore[override]
        """Push ``x`` under the backpressure policy (see the class docs)."""
        protect = self._protect
        if protect is not None:
            check_priority(priority)
        self.push_count += 1
        buf = self._buf
        u = len(buf) / self._capacity
        if (
            u >= self._threshold
            and not (protect is not None and priority is not None and priority >= protect)
            and self._should_drop_item(x, priority, u)
        ):
            self.drops_total += 1
            return
        buf.append(x)
        if len(buf) >= self._capacity:
            self._apply_decimation()

    def _should_drop_item(self, item: Any, priority: Any, utilization: float) -> bool:
        """Drop rule of the built-in strategies (override to change the policy)."""
        strategy = self._strategy
        n = self.push_count
        if strategy == "skip_nth":
            return n % self._factor != 0
        if strategy == "adaptive":
            t = self._threshold
            ratio = (utilization - t) / (1.0 - t) if t != 1.0 else 1.0
            k = max(2, int(self._factor * (1 + ratio * 2)))
            return n % k != 0
        return False  # keep_recent never drops on push

    def _apply_decimation(self) -> None:
        """Thin the held items (override to change the policy)."""
        buf = self._buf
        size = len(buf)
        if size < 2:
            return
        if self._strategy == "keep_recent":
            kept = list(buf)[size - size // 2:]
        else:
            kept = list(buf)[:: self._factor]
        buf.clear()
        buf.extend(kept)
        self.decimation_events += 1
        self.last_decimation_utilization = len(buf) / self._capacity

    def get_backpressure_stats(self) -> Dict[str, Any]:
        """The reference's 11-key statistics dict."""
        return {
            "capacity": self._capacity,
            "current_size": len(self._buf),
            "utilization": len(self._buf) / self._capacity,
            "pressure_threshold": self._threshold,
            "total_pushes": self.push_count,
            "total_drops": self.drops_total,
            "drop_rate": self.drops_total / max(1, self.push_count),
            "decimation_events": self.decimation_events,
            "decimation_factor": self._factor,
            "decimation_strategy": self._strategy,
            "last_decimation_utilization": self.last_decimation_utilization,
        }

    def _backpressure_json(self, encode: Callable[[Any], bytes], head: bytes, tail: bytes) -> Optional[bytes]:
        """``head + J + tail`` where ``J`` is :meth:`get_backpressure_stats` as a compact
        JSON object (no spaces), each float and the strategy name written as
        ``encode(value)`` (bytes; the caller's JSON encoder of scalars), the integers in
        decimal: the bytes a compact encoder such as orjson writes for the dict, built
        without it.  None when ``get_backpressure_stats`` is overridden (by a subclass or
        on the instance): the caller then encodes that method's dict."""
        if type(self).get_backpressure_stats is not DecimatingRing.get_backpressure_stats \
                or "get_backpressure_stats" in vars(self):
            return None
        if type(head) is not bytes or type(tail) is not bytes:
            raise TypeError("head and tail must be bytes")
        parts = [head]
        sep = b"{"
        for k, v in self.get_backpressure_stats().items():
            if type(v) is int:
                e = b"%d" % v
            else:
                e = encode(v)
                if type(e) is not bytes:
                    raise TypeError(f"encode must return bytes, got {type(e).__name__}")
            parts.append(b'%s"%s":%s' % (sep, k.encode(), e))
            sep = b","
        parts.append(b"}")
        parts.append(tail)
        return b"".join(parts)

    @property
    def drop_rate(self) -> float:
        """Pushes dropped so far as a share of all pushes: ``drops_total / max(1, push_count)``
        (``get_backpressure_stats()["drop_rate"]`` without building the dict)."""
        return self.drops_total / max(1, self.push_count)

    def reset_stats(self) -> None:
        """Zero the counters; the contents are untouched."""
        self.drops_total = 0
        self.decimation_events = 0
        self.push_count = 0
        self.last_decimation_utilization = 0.0

    def __reduce__(self) -> Any:
        return (copyreg.__newobj__, (type(self),), ring_state(self, True))

    def __setstate__(self, state: Any) -> None:
        st = parse_ring_state(state, True)
        self._capacity = st["capacity"]
        self._buf = deque(st["items"], maxlen=st["capacity"])
        self._threshold = st["pressure_threshold"]
        self._factor = st["decimation_factor"]
        self._strategy = st["decimation_strategy"]
        self._protect = st["protect_priority"]
        for key in _DEC_COUNTERS:
            setattr(self, key, st[key])
        restore_attrs(self, st["attrs"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={len(self._buf)}, capacity={self._capacity}, "
            f"strategy={self._strategy!r}, drops={self.drops_total})"
        )


# --- SpscRing ------------------------------------------------------------------

_DTYPES = ("float64", "float32", "int64")


def check_spsc_args(capacity: Any, width: Any, dtype: Any) -> tuple:
    """Validate SpscRing arguments; returns ``(capacity_pow2, width, numpy dtype)``."""
    cap = check_capacity(capacity)
    if cap > 1 << 40:
        raise ValueError(f"capacity must be <= 2**40, got {cap}")
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an int, got {type(width).__name__}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}") from exc
    if dt.name not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    pow2 = 1
    while pow2 < cap:
        pow2 <<= 1
    # before any product can wrap in C (or numpy refuse the array with its own message)
    if pow2 * width * dt.itemsize > sys.maxsize:
        raise ValueError(f"SpscRing of {pow2} x {width} {dt.name} is too big: capacity x width x itemsize = "
                         f"{pow2 * width * dt.itemsize} bytes does not fit in Py_ssize_t")
    return pow2, int(width), dt.newbyteorder("=")


def as_records(ring: Any, array: Any, name: str = "array") -> np.ndarray:
    """Validate a ``push_many`` argument: C-contiguous ``(n, width)`` (or ``(n,)``) of the ring's dtype."""
    if not isinstance(array, np.ndarray):
        try:
            memoryview(array)
        except TypeError:
            raise TypeError(f"{name} must be a numpy array or buffer, got {type(array).__name__}") from None
        array = np.asarray(array)
    if array.dtype != ring.dtype:
        raise TypeError(f"{name} dtype must be {ring.dtype.name}, got {array.dtype}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    w = ring.width
    if array.ndim == 1 and w == 1:
        return array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != w:
        want = f"(n, {w})" + (" or (n,)" if w == 1 else "")
        raise ValueError(f"{name} must have shape {want}, got {array.shape}")
    return array


def _scalar_record(ring: Any, record: Any) -> np.ndarray:
    if ring.dtype.kind == "i":
        if isinstance(record, float):
            if not math.isfinite(record) or math.floor(record) != record:
                raise ValueError("record for an int64 ring must hold integral values")
        value = int(record)
        if not -(1 << 63) <= value < (1 << 63):
            raise ValueError("record out of int64 range")
        return np.array([value], dtype=ring.dtype)
    try:
        value = float(record)
    except OverflowError:
        raise ValueError("record out of float range") from None
    with np.errstate(over="ignore"):  # float32 overflow saturates to inf, as a C cast does
        return np.array([value], dtype=ring.dtype)


def as_record(ring: Any, record: Any) -> np.ndarray:
    """Validate a ``push`` argument: a number (width 1) or a length-``width`` sequence."""
    w = ring.width
    if w == 1 and isinstance(record, (int, float)) and not isinstance(record, bool):
        return _scalar_record(ring, record)
    if w == 1 and isinstance(record, np.number) and not isinstance(record, np.bool_):
        arr = np.asarray([record])
    else:
        if isinstance(record, (str, bytes)) or not hasattr(record, "__len__"):
            raise TypeError(
                f"record must be a number (width 1) or a sequence of {w} numbers, got {type(record).__name__}"
            )
        arr = np.asarray(record)
        if arr.ndim != 1 or arr.shape[0] != w:
            raise ValueError(f"record must have length {w}, got shape {arr.shape}")
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"record must hold numbers, got dtype {arr.dtype}")
    if ring.dtype.kind == "i":
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
                raise ValueError("record for an int64 ring must hold integral values")
            if not np.all((arr >= -(2.0**63)) & (arr < 2.0**63)):
                raise ValueError("record out of int64 range")
        elif arr.dtype.kind == "u" and np.any(arr > np.iinfo(np.int64).max):
            raise ValueError("record out of int64 range")
        return arr.astype(ring.dtype)
    with np.errstate(over="ignore"):
        return arr.astype(ring.dtype)


SPSC_PICKLE_ERROR = ("cannot pickle 'SpscRing' object: it is a shared-memory channel between two threads; "
                     "pickle pop_many() output instead")


class SpscRing:
    """Single-producer / single-consumer ring of fixed-width numeric records.

    The pure-Python tier is a numpy array indexed by two monotonically growing
    counters; the GIL serialises the two sides.  Same API and semantics as the
    lock-free C tier.
    """

    def __init__(self, capacity: int, width: int = 1, dtype: str = "float64") -> None:
        cap, w, dt = check_spsc_args(capacity, width, dtype)
        self._cap = cap
        self._mask = cap - 1
        self._width = w
        self._dtype = dt
        self._data = np.zeros((cap, w), dtype=dt)
        self._head = 0  # records written (pushed)
        self._tail = 0  # records read (popped)
        self._dropped = 0
        self._plock = threading.Lock()  # detects (not serialises) misuse by two producers
        self._clock = threading.Lock()

    @property
    def capacity(self) -> int:
        """Capacity in records (a power of two)."""
        return self._cap

    @property
    def width(self) -> int:
        """Values per record."""
        return self._width

    @property
    def dtype(self) -> Any:
        """numpy dtype of the values."""
        return self._dtype

    @property
    def dropped(self) -> int:
        """Records refused because the ring was full."""
        return self._dropped

    @property
    def pushed(self) -> int:
        """Records accepted so far."""
        return self._head

    @property
    def popped(self) -> int:
        """Records delivered so far."""
        return self._tail

    def __len__(self) -> int:
        return self._head - self._tail

    def _copy_in(self, rows: np.ndarray) -> int:
        n = rows.shape[0]
        free = self._cap - (self._head - self._tail)
        k = min(n, free)
        if k:
            start = self._head & self._mask
            first = min(k, self._cap - start)
            self._data[start:start + first] = rows[:first]
            if k > first:
                self._data[: k - first] = rows[first:k]
            self._head += k
        self._dropped += n - k
        return k

    def push(self, record: Any) -> bool:
        """Copy one record in; False (and ``dropped += 1``) when full."""
        row = as_record(self, record)
        return self._copy_in(row.reshape(1, -1)) == 1

    def push_many(self, array: Any) -> int:
        """Copy as many rows as fit; returns how many; the rest count as dropped."""
        rows = as_records(self, array)
        return self._copy_in(rows)

    def pop_many(self, max_rows: Optional[int] = None) -> np.ndarray:
        """Up to ``max_rows`` records (all available if None), oldest first."""
        if max_rows is not None:
            if isinstance(max_rows, bool) or not isinstance(max_rows, int):
                raise TypeError(f"max_rows must be None or an int, got {type(max_rows).__name__}")
            if max_rows < 0:
                raise ValueError(f"max_rows must be >= 0, got {max_rows}")
        avail = self._head - self._tail
        k = avail if max_rows is None else min(avail, max_rows)
        out = np.empty((k, self._width), dtype=self._dtype)
        if k:
            start = self._tail & self._mask
            first = min(k, self._cap - start)
            out[:first] = self._data[start:start + first]
            if k > first:
                out[first:] = self._data[: k - first]
            self._tail += k
        return out.reshape(k) if self._width == 1 else out

    def pop(self) -> Any:
        """One record (a scalar when width is 1, else a 1-D array), or None when empty."""
        if self._head == self._tail:
            return None
        row = self.pop_many(1)
        return row[0].item() if self._width == 1 else row[0]

    def __reduce__(self) -> Any:
        raise TypeError(SPSC_PICKLE_ERROR)

    def __repr__(self) -> str:
        return (
            f"SpscRing(size={len(self)}, capacity={self._cap}, width={self._width}, "
            f"dtype={self._dtype.name!r})"
        )
