"""Fuzz target: drift kernels (C tier) against the pure-Python oracle.

The input is binary, read by ``_harness.Data``: a lane, then up to 8
operations (``cosine_similarity``, ``cosine_similarity_batch``,
``DriftMonitor.update``/``update_many``) on vectors of any supported or
unsupported dtype, length 0-70, given as lists, tuples, arrays, strided,
reversed, read-only or misaligned views (a field of a packed structured
array, or a buffer at an odd byte offset).  Both tiers must raise the same
exception type or agree within the differential tests' 1e-12, and the
monitors' state must stay equal.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

with harness.instrumented():
    import numpy as np

    from lukhas_fast._backend import tier_modules

_tiers = tier_modules("drift")
C, PY = _tiers["c"], _tiers["python"]
TOL = 1e-12
DTYPES = ["float64", "float32", "int64", "int32", "float16", "uint8", ">f8", "complex128"]
LANES = ["experimental", "candidate", "prod", "labs", "production", None]
SPECIALS = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e-300, 5e-324, 1e100, 2.0**53 + 1]


def _value(d: harness.Data, dtype: str) -> float:
    mode = d.take_int(0, 7)
    if mode == 0:
        return d.pick(SPECIALS)
    if mode <= 3 or dtype[-1] in "0123456789" and dtype.startswith(("int", "uint")):
        return float(d.take_int(-1000, 1000))
    x = d.take_f64()
    # keep raw doubles where the sums neither overflow nor underflow (FMA vs
    # plain rounding may then legitimately differ): |x| in [1e-100, 1e100]
    if not math.isfinite(x) or x == 0.0:
        return x
    e = math.frexp(x)[1]
    return math.ldexp(math.frexp(x)[0], max(-330, min(330, e)))


def _array(d: harness.Data, n: int, dtype: str):
    vals = [_value(d, dtype) for _ in range(n)]
    with np.errstate(all="ignore"):
        dt = np.dtype(dtype)
        if dt.kind in "iu":
            vals = [0 if not math.isfinite(v) else max(np.iinfo(dt).min, min(np.iinfo(dt).max, int(v))) for v in vals]
        return np.array(vals, dtype=dt)


def _vector(d: harness.Data, n: int):
    dtype = d.pick(DTYPES[:4] * 3 + DTYPES[4:])
    a = _array(d, n, dtype)
    form = d.take_int(0, 8)
    if form == 0:
        return a.tolist()
    if form == 1:
        return tuple(a.tolist())
    if form == 2:  # strided
        step = d.take_int(2, 3)
        big = np.repeat(a, step)
        return big[::step]
    if form == 3:
        return a[::-1].copy()[::-1]
    if form == 4:  # misaligned: a packed structured field
        s = np.zeros(n, dtype=[("f", "u1"), ("v", a.dtype)])
        s["v"] = a
        return s["v"]
    if form == 5:  # misaligned: a buffer at an odd byte offset
        off = d.take_int(1, 7)
        buf = bytearray(off + a.nbytes)
        buf[off:] = a.tobytes()
        return np.frombuffer(bytes(buf), dtype=a.dtype, offset=off)
    if form == 6:
        a.flags.writeable = False
        return a
    if form == 7:  # a mixed list
        return [float(x) if i % 2 and type(x) is int else x for i, x in enumerate(a.tolist())]
    return a


def _matrix(d: harness.Data, rows: int, cols: int):
    dtype = d.pick(DTYPES[:4])
    m = _array(d, rows * cols, dtype).reshape(rows, cols)
    form = d.take_int(0, 3)
    if form == 1:
        return np.asfortranarray(m)
    if form == 2:
        s = np.zeros((rows, cols), dtype=[("f", "u1"), ("v", m.dtype)])
        s["v"] = m
        return s["v"]
    if form == 3:
        return [list(r) for r in m.tolist()]
    return m


def _call(fn, *args):
    try:
        return "ok", fn(*args)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc).split(":")[0]


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= TOL))


def _same_update(r, w, cfg) -> None:
    assert r["lane"] == w["lane"] and r["n"] == w["n"], (r, w)
    assert _close(r["drift"], w["drift"]) and _close(r["ema"], w["ema"]), (r, w)
    g, gw = np.atleast_1d(r.get("guardian_code", 0)), np.atleast_1d(w.get("guardian_code", 0))
    ema = np.atleast_1d(w["ema"])
    near = np.minimum(np.abs(ema - cfg.warn_threshold), np.abs(ema - cfg.block_threshold)) <= TOL
    assert np.all((g == gw) | near), (r, w)
    if r["guardian"] != w["guardian"]:
        assert near[-1], (r, w)


def one_input(data: bytes) -> None:
    d = harness.Data(data)
    lane = d.pick(LANES)
    mc, mp = C.DriftMonitor(lane, metrics=False), PY.DriftMonitor(lane, metrics=False)
    for _ in range(d.take_int(1, 8)):
        if not d.left():
            break
        op = d.take_int(0, 3)
        n = d.take_int(0, 70)
        m = n if d.take_int(0, 7) else d.take_int(0, 70)
        if op in (0, 2):
            a, b = _vector(d, n), _vector(d, m)
            if op == 0:
                got, want = _call(C.cosine_similarity, a, b), _call(PY.cosine_similarity, a, b)
                assert got[0] == want[0], ("cosine", a, b, got, want)
                if got[0] == "ok":
                    assert abs(got[1] - want[1]) <= TOL, ("cosine", a, b, got, want)
            else:
                got, want = _call(mc.update, a, b), _call(mp.update, a, b)
                assert got[0] == want[0], ("update", a, b, got, want)
                if got[0] == "ok":
                    _same_update(got[1], want[1], mp.cfg)
        else:
            rows = d.take_int(0, 6)
            A, B = _matrix(d, rows, n), _matrix(d, rows if d.take_int(0, 7) else d.take_int(0, 6), m)
            if op == 1:
                got, want = _call(C.cosine_similarity_batch, A, B), _call(PY.cosine_similarity_batch, A, B)
                assert got[0] == want[0], ("batch", A, B, got, want)
                if got[0] == "ok":
                    assert _close(got[1], want[1]), ("batch", A, B, got, want)
            else:
                got, want = _call(mc.update_many, A, B), _call(mp.update_many, A, B)
                assert got[0] == want[0], ("update_many", A, B, got, want)
                if got[0] == "ok":
                    _same_update(got[1], want[1], mp.cfg)
        assert abs(mc.ema - mp.ema) <= TOL and _close(mc._raw, mp._raw), ("state", mc.snapshot(), mp.snapshot())


if __name__ == "__main__":
    harness.main("drift", one_input)
