"""pytest-benchmark view of every registered bench case.

Each case of ``lukhas_fast._bench`` becomes one benchmark group holding every
installed tier and every peer (``deque``, ``numpy``, ``simsimd`` ...), so
``pytest benchmarks/ --benchmark-group-by=group`` shows them side by side.
Times are per thunk call; a thunk performs ``case.ops`` operations.

Run: ``python -m pytest benchmarks/ --benchmark-only``
"""

from __future__ import annotations

import pytest

from lukhas_fast._backend import FAMILIES, TIERS, tier_modules
from lukhas_fast._bench.core import cases

_PARAMS = []
for _c in cases():
    for _tier in TIERS:
        if _tier in _c.tiers and _tier in FAMILIES[_c.family]:
            _PARAMS.append(pytest.param(_c, "tier", _tier, id=f"{_c.op}-{_tier}"))
    for _peer in _c.peers:
        _PARAMS.append(pytest.param(_c, "peer", _peer, id=f"{_c.op}-{_peer}"))


@pytest.mark.parametrize("case,kind,name", _PARAMS)
def test_bench(benchmark, case, kind, name):
    if kind == "tier":
        mods = tier_modules(case.family)
        if name not in mods:
            pytest.skip(f"{name} tier of {case.family} is not installed")
        thunk = case.tier(mods[name])
    else:
        thunk = case.peers[name]()
    if thunk is None:
        pytest.skip(f"{name} not available")
    benchmark.group = f"{case.op} (x{case.ops} per call)"
    benchmark.extra_info["ops_per_call"] = case.ops
    benchmark(thunk)
