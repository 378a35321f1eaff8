"""Fuzz target: ``loads_vectors`` (C, ``csrc/jsonvec.c``) against ``orjson.loads`` and ``float()``.

The input is a request body.  ``loads_vectors`` must never raise, and
whenever it answers (not None) the answer must equal ``orjson.loads`` of the
same bytes: same keys in the same order, same strings/bools/None, and every
number array a fresh 1-D float64 array whose values are bit-identical to
``float(text)`` of the number's text.  Every number kernel the CPU runs
(scalar, AVX2, AVX-512BW; forced with ``_loads_vectors_isa``), and each SIMD
kernel with its four-at-a-time floating-point conversion off (``+exact``),
must give the same answer.  See ``_harness.py`` for how to run it.

The same body also goes through the service's other decode step, the JSON
nesting-depth scan: ``json_depth_exceeds`` (C, ``csrc/jsondepth.c``) must
never raise on any bytes, and whenever ``orjson`` accepts the body it must
equal the pure-Python oracle (``lukhas_fast.service.json_depth_exceeds``), at
limits around the parsed value's depth, and report at least that depth.
"""

from __future__ import annotations

import re
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

with harness.instrumented():
    import numpy as np
    import orjson

    from lukhas_fast import _drift_c
    from lukhas_fast.service import json_depth_exceeds as depth_oracle

loads_vectors = _drift_c.loads_vectors
KERNELS = _drift_c._json_kernels()
KERNELS += [k + "+exact" for k in KERNELS[1:]]
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _bits(xs):
    return [struct.pack("<d", float(x)) for x in xs]


def _depth(obj) -> int:
    best, stack = 0, [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            d += 1
            best = max(best, d)
            stack.extend((x, d) for x in (v.values() if isinstance(v, dict) else v))
    return best


def check_depth(data: bytes) -> None:
    """The depth scan: total on any bytes; on valid JSON equal to the oracle and the parsed depth."""
    limits = (0, 1, 2, 3, 64)
    got = [_drift_c.json_depth_exceeds(data, lim) for lim in limits]
    assert all(type(g) is bool for g in got), got
    assert [_drift_c.json_depth_exceeds(bytearray(data), lim) for lim in limits] == got, "bytes and bytearray disagree"
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    # (the text's depth: a duplicate key's earlier value still counts, though the parsed
    # value has dropped it, so the parsed depth is only a lower bound)
    d = _depth(value)
    for lim in sorted(set(limits) | {max(0, d - 1), d}):
        c = _drift_c.json_depth_exceeds(data, lim)
        assert c is depth_oracle(data, lim), ("depth: C vs oracle", lim, c)
        assert c or d <= lim, ("depth: C vs the parsed value", lim, d)


def one_input(data: bytes) -> None:
    check_depth(data)
    got = loads_vectors(data)
    assert (loads_vectors(bytearray(data)) is None) == (got is None), "bytes and bytearray disagree"
    for kernel in KERNELS:
        other = _drift_c._loads_vectors_isa(data, kernel)
        assert (other is None) == (got is None), ("kernels disagree", kernel)
        if got is not None:
            assert list(other) == list(got), ("kernels disagree", kernel)
            for k, v in got.items():
                w = other[k]
                if isinstance(v, np.ndarray):
                    assert _bits(v.tolist()) == _bits(w.tolist()), ("kernels disagree", kernel, k)
                else:
                    assert type(w) is type(v) and w == v, ("kernels disagree", kernel, k)
    if got is None:
        return
    try:
        want = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise AssertionError(f"loads_vectors accepted what orjson rejects ({exc}): {got!r}") from None
    assert type(got) is dict and type(want) is dict, (got, want)
    assert list(got) == list(want), ("keys", list(got), list(want))
    for k, w in want.items():
        g = got[k]
        if isinstance(g, np.ndarray):
            assert g.dtype == np.float64 and g.ndim == 1 and g.flags.c_contiguous, (k, g.dtype, g.shape)
            assert isinstance(w, list) and w and all(type(x) is float for x in w), (k, w)
            assert _bits(g.tolist()) == _bits(w), (k, g.tolist(), w)
        else:
            assert type(g) is type(w) and g == w, (k, g, w)
    # Every number that made it into an array is float(text) of its own text (orjson is
    # checked against float() too, so a shared mistake cannot hide).
    arrays = [v for v in got.values() if isinstance(v, np.ndarray)]
    if arrays:
        texts = _NUMBER.findall(data)
        values = [x for a in arrays for x in a.tolist()]
        floats = [float(t) for t in texts]
        assert set(_bits(values)) <= set(_bits(floats)), ("a value is no float() of any number in the body", values)


if __name__ == "__main__":
    harness.main("loads_vectors", one_input)
