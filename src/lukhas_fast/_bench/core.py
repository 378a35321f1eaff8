"""Benchmark registry and timer shared by ``python -m lukhas_fast bench`` and
``benchmarks/`` (pytest-benchmark).

A family adds rows by putting a module in :mod:`lukhas_fast._bench` that calls
:func:`case` (a timed operation) or :func:`measurement` (anything else:
throughputs, cadence errors, request rates).  The CLI imports every module of
the package and never needs editing.

A *thunk* is a zero-argument callable performing ``ops`` operations; the
reported time is per operation.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "Case",
    "Measurement",
    "Row",
    "case",
    "measurement",
    "cases",
    "measurements",
    "time_thunk",
]

Thunk = Callable[[], Any]


@dataclass(frozen=True)
class Case:
    """One timed operation, run on every installed tier and on each peer.

    ``tier(module)`` builds a thunk for one tier module of ``family`` (return
    None to skip that tier).  ``peers`` maps a column name (``deque``,
    ``numpy``, ``simsimd`` ...) to a factory returning a thunk, or None when
    the peer is not installed.  ``tiers`` restricts which tiers run.
    """

    op: str
    family: str
    tier: Callable[[ModuleType], Optional[Thunk]]
    ops: int = 1
    peers: Mapping[str, Callable[[], Optional[Thunk]]] = field(default_factory=dict)
    tiers: Sequence[str] = ("python", "numba", "c")
    quick_ops: Optional[int] = None  # unused hint for slow cases


@dataclass(frozen=True)
class Row:
    """One line of a measurement table: ``label``, per-column values, unit."""

    label: str
    values: Mapping[str, float]
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Measurement:
    """A non-timing benchmark: ``run(tier_modules, quick)`` returns rows."""

    name: str
    family: str
    run: Callable[[Mapping[str, ModuleType], bool], List[Row]]


_CASES: List[Case] = []
_MEASUREMENTS: List[Measurement] = []


def case(op: str, family: str, tier: Callable[[ModuleType], Optional[Thunk]], **kw: Any) -> Case:
    """Register and return a :class:`Case`."""
    c = Case(op=op, family=family, tier=tier, **kw)
    _CASES.append(c)
    return c


def measurement(
    name: str, family: str
) -> Callable[[Callable[[Mapping[str, ModuleType], bool], List[Row]]], Measurement]:
    """Decorator registering a :class:`Measurement`."""

    def deco(fn: Callable[[Mapping[str, ModuleType], bool], List[Row]]) -> Measurement:
        m = Measurement(name=name, family=family, run=fn)
        _MEASUREMENTS.append(m)
        return m

    return deco


def _load_all() -> None:
    import importlib
    import pkgutil

    from lukhas_fast import _bench

    for info in pkgutil.iter_modules(_bench.__path__):
        if info.name != "core" and not info.name.startswith("_"):
            importlib.import_module(f"lukhas_fast._bench.{info.name}")


def cases() -> List[Case]:
    """All registered cases (importing every bench module first)."""
    _load_all()
    return list(_CASES)


def measurements() -> List[Measurement]:
    """All registered measurements (importing every bench module first)."""
    _load_all()
    return list(_MEASUREMENTS)


def time_thunk(thunk: Thunk, ops: int, budget: float = 0.2, repeats: int = 5) -> float:
    """Seconds per operation: best of ``repeats`` runs of an auto-ranged loop.

    The loop count is grown until one repeat takes about ``budget/repeats``
    seconds; the minimum over repeats is the least disturbed estimate on a
    shared machine.  GC is disabled while timing (as timeit does).
    """
    return time_thunks({"": thunk}, ops, budget, repeats)[""]


def _loops_for(thunk: Thunk, target: float) -> Tuple[int, float]:
    """The loop count at which ``thunk`` runs about ``target`` seconds, and that run's time."""
    loops = 1
    thunk()  # warm-up (JIT, caches)
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            thunk()
        dt = time.perf_counter() - t0
        if dt >= target or loops >= 1 << 30:
            return loops, dt
        loops = max(loops * 2, int(loops * target / max(dt, 1e-9)))


def time_thunks(thunks: Mapping[str, Thunk], ops: int, budget: float = 0.2, repeats: int = 5) -> Dict[str, float]:
    """:func:`time_thunk` of several thunks (the tiers and peers of one case), with
    their repeats interleaved: a slow spell of a shared machine (its speed can move
    by 2x within minutes) then hits every column of a row alike instead of one."""
    target = max(budget / max(repeats, 1), 1e-4)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        loops: Dict[str, int] = {}
        best: Dict[str, float] = {}
        for name, thunk in thunks.items():
            loops[name], best[name] = _loops_for(thunk, target)
        for _ in range(repeats - 1):
            for name, thunk in thunks.items():
                n = loops[name]
                t0 = time.perf_counter()
                for _ in range(n):
                    thunk()
                best[name] = min(best[name], time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return {name: best[name] / (loops[name] * ops) for name in thunks}
