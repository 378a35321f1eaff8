"""Benchmark rows of the drift family (metrics off)."""

from __future__ import annotations

import os
import time
from typing import List, Mapping

import numpy as np

from lukhas_fast._bench.core import Row, case, measurement, time_thunk

N = 100  # updates per thunk


def _monitor(m):
    os.environ["LUKHAS_FAST_METRICS"] = "0"  # benchmarks run with metrics off
    return m.DriftMonitor("experimental", metrics=False)


def _vectors(d, kind, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(d)
    b = a * 0.8 + rng.standard_normal(d) * 0.2
    if kind == "list":
        return a.tolist(), b.tolist()
    return a.astype(kind), b.astype(kind)


def _update_thunk(m, d, kind):
    mon = _monitor(m)
    a, b = _vectors(d, kind)
    update = mon.update

    def run():
        for _ in range(N):
            update(a, b)

    return run


def _numpy_cosine(d, kind):
    def factory():
        a, b = _vectors(d, kind)
        dot, norm = np.dot, np.linalg.norm

        def run():
            for _ in range(N):
                dot(a, b) / (norm(a) * norm(b))

        return run

    return factory


def _simsimd_cosine(d, kind):
    def factory():
        try:
            import simsimd
        except ImportError:
            return None
        a, b = _vectors(d, kind)
        cos = simsimd.cosine

        def run():
            for _ in range(N):
                cos(a, b)

        return run

    return factory


for _d, _kind in [(4, "list"), (768, "list"), (768, "float32"), (768, "float64"), (1536, "float32")]:
    _peers = {}
    if _kind != "list":
        _peers = {"numpy": _numpy_cosine(_d, _kind), "simsimd": _simsimd_cosine(_d, _kind)}
    case(
        f"DriftMonitor.update ({_d}-d {_kind})",
        "drift",
        (lambda d, k: lambda m: _update_thunk(m, d, k))(_d, _kind),
        ops=N,
        peers=_peers,
    )


@measurement("DriftMonitor.update_many, 100,000 x 768 float32 (two arrays, 307 MB read)", "drift")
def update_many_bandwidth(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """update_many vs numpy reading both arrays once (``a.sum(); b.sum()``)."""
    rows = 20_000 if quick else 100_000
    rng = np.random.default_rng(0)
    A = rng.standard_normal((rows, 768), dtype=np.float32)
    B = rng.standard_normal((rows, 768), dtype=np.float32)
    values = {}
    reps = 1 if quick else 3

    def best(fn):
        fn()  # warm-up (numba JIT, page faults)
        t = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            t = min(t, time.perf_counter() - t0)
        return t

    for tier, m in mods.items():
        if tier == "python" and not quick:
            # ~100 s for the full batch: time 2,000 rows and scale
            mon = _monitor(m)
            t = best(lambda: mon.update_many(A[:2000], B[:2000])) * (rows / 2000)
        else:
            mon = _monitor(m)
            t = best(lambda: mon.update_many(A, B))
        values[tier] = t * 1e3
    values["numpy a.sum(); b.sum()"] = best(lambda: (A.sum(), B.sum())) * 1e3
    gbps = (A.nbytes + B.nbytes) / (values.get("c", values.get("numba", values["python"])) / 1e3) / 1e9
    return [Row(f"{rows:,} rows", values, "ms", f"fast tier reads {gbps:.1f} GB/s")]


@measurement("loads_vectors: the service's 32 KB JSON drift body (2 x 768 17-digit doubles)", "drift")
def loads_vectors_body(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """``loads_vectors`` (C tier only) with each number kernel the CPU runs, against
    ``json.loads`` and ``orjson.loads`` of the same body, in ns per number (the whole
    call: parse, two float64 arrays, the dict)."""
    import json

    from lukhas_fast._bench.service import requests_

    c = mods.get("c")
    if c is None or not hasattr(c, "_loads_vectors_isa"):
        return []
    body = next(r.body for r in requests_() if "JSON" in r.label)
    count = sum(len(v) for v in json.loads(body).values() if isinstance(v, list))
    budget = 0.05 if quick else 0.3
    values = {}
    for kernel in c._json_kernels():
        values[f"C {kernel}"] = time_thunk(lambda k=kernel: c._loads_vectors_isa(body, k), 1, budget) * 1e9 / count
    values["json.loads"] = time_thunk(lambda: json.loads(body), 1, budget) * 1e9 / count
    try:
        import orjson
    except ImportError:
        pass
    else:
        values["orjson.loads"] = time_thunk(lambda: orjson.loads(body), 1, budget) * 1e9 / count
    best = values[f"C {c._json_kernels()[-1]}"]
    return [Row(f"{len(body):,} B, {count} numbers", values, "ns/number",
                f"default kernel {c._json_kernels()[-1]}: {values['json.loads'] / best:.0f}x json.loads")]
