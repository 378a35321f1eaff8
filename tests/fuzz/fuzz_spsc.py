"""Fuzz target: ``SpscRing`` (C tier, ``csrc/spsc.c``) against the pure-Python tier as the model.

The input is binary, read by ``_harness.Data``: constructor arguments
(capacity, width, dtype -- sometimes out of range or of the wrong type),
then up to 64 operations: ``push`` (scalars, sequences, arrays, NaN, huge or
non-integral values), ``push_many`` (arrays of any shape, dtype, order or
contiguity), ``pop``, ``pop_many`` (None, 0, small, huge, negative, wrong
type).  Both rings must raise the same exception type or return equal
results, and agree on ``len``, ``pushed``, ``popped`` and ``dropped`` after
every step.
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

_tiers = tier_modules("ring")
C, PY = _tiers["c"], _tiers["python"]
DTYPES = ["float64", "float32", "int64", "int32", "uint8", "float16", "f8", np.float64, "bogus", 3]
BIG = [0, -1, 2**31, 2**40, 2**40 + 1, 2**61 + 1, 2**63, 2**64, 2**70]
SCALARS = [0.0, -0.0, 1.5, -2.0, math.nan, math.inf, -math.inf, 2**62, 2**63, -(2**63), 2**64, 1e300, True, 7]


def _ctor(d: harness.Data):
    capacity = d.take_int(0, 70) if d.take_int(0, 7) else d.pick(BIG + [1.5, "4", None])
    width = d.take_int(1, 5) if d.take_int(0, 7) else d.pick(BIG + [1.0, None])
    dtype = d.pick(DTYPES[:4] * 4 + DTYPES[4:])
    return capacity, width, dtype


def _records(d: harness.Data, n: int, width: int, dtype):
    n = min(n, 4096 // width)  # a huge width (it may be valid) must not hang the harness
    kind = d.take_int(0, 3)
    if kind == 0:
        vals = [d.take_int(-(2**20), 2**20) for _ in range(n * width)]
    elif kind == 1:
        vals = [d.pick(SCALARS[:7]) for _ in range(n * width)]
    else:
        vals = [float(d.take_int(-1000, 1000)) / 4 for _ in range(n * width)]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = np.dtype("float64")
    with np.errstate(all="ignore"):
        if dt.kind in "iu":
            vals = [0 if isinstance(v, float) and not math.isfinite(v) else int(v) for v in vals]
        want = dt if d.take_int(0, 7) else np.dtype(d.pick(["float64", "int64", "float32"]))
        try:
            arr = np.array(vals, dtype=want)
        except (OverflowError, ValueError):  # NaN/inf or > 2**63 into an int array: keep them as floats
            arr = np.array([float(v) for v in vals], dtype=np.float64)
    shape = d.take_int(0, 4)
    if shape == 0 and width == 1:
        return arr
    arr = arr.reshape(n, width)
    if shape == 1:
        return np.asfortranarray(arr) if n > 1 and width > 1 else arr
    if shape == 2:
        return arr[::-1]  # negative stride, not C-contiguous for n > 1
    if shape == 3:
        return arr.reshape(-1) if width > 1 else arr  # wrong shape
    return arr


def _push_arg(d: harness.Data, width: int, dtype):
    kind = d.take_int(0, 5)
    if kind == 0:
        return d.pick(SCALARS)
    if kind == 1:
        return d.take_int(-(2**20), 2**20)
    if kind == 2 and width <= 4096:
        return [d.pick(SCALARS[:8]) for _ in range(d.take_int(0, width + 1) if d.take_int(0, 3) == 0 else width)]
    if kind == 3 and width <= 4096:
        return _records(d, 1, width, dtype)[0] if width > 1 else np.float32(1.5)
    if kind == 4:
        return d.pick(["x", b"ab", None, [[1.0]], np.array([1.0, 2.0])])
    return float(d.take_int(-(2**20), 2**20))


def _outcome(fn, *args):
    try:
        out = fn(*args)
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        return ("raise", type(exc).__name__)
    if isinstance(out, np.ndarray):
        return ("array", out.dtype.str, out.shape, out.tobytes())
    if type(out).__name__ == "SpscRing":
        return ("ring", repr(out))
    if isinstance(out, float) and math.isnan(out):
        return ("nan",)
    return ("value", type(out).__name__, out)


def _state(r):
    return len(r), r.pushed, r.popped, r.dropped


def one_input(data: bytes) -> None:
    d = harness.Data(data)
    capacity, width, dtype = _ctor(d)
    a, b = _outcome(C.SpscRing, capacity, width, dtype), _outcome(PY.SpscRing, capacity, width, dtype)
    if a != b:
        raise AssertionError(("constructor", capacity, width, dtype, a, b))
    if a[0] == "raise":
        return
    rc, rp = C.SpscRing(capacity, width, dtype), PY.SpscRing(capacity, width, dtype)
    assert (rc.capacity, rc.width, rc.dtype) == (rp.capacity, rp.width, rp.dtype)
    for _ in range(d.take_int(1, 64)):
        if not d.left():
            break
        op = d.take_int(0, 4)
        if op == 0:
            x = _push_arg(d, rc.width, rc.dtype)
            args, name = (x,), "push"
        elif op == 1:
            x = _records(d, d.take_int(0, 2 * rc.capacity + 1), rc.width, rc.dtype)
            args, name = (x,), "push_many"
        elif op == 2:
            args, name = (), "pop"
        else:
            k = d.take_int(0, 2 * rc.capacity + 1) if d.take_int(0, 5) else d.pick(BIG + [None, 1.0, True])
            args, name = (k,), "pop_many"
        got, want = _outcome(getattr(rc, name), *args), _outcome(getattr(rp, name), *args)
        assert got == want, (name, args, got, want)
        assert _state(rc) == _state(rp), (name, args, _state(rc), _state(rp))


if __name__ == "__main__":
    harness.main("spsc", one_input)
