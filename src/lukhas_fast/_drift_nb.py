"""numba tier of the drift family: the pure-Python classes with numba kernels.

Used when the C extension is unavailable.  ndarray inputs and batches run in
``@njit(cache=True)`` kernels (no fastmath; four interleaved partial sums,
so results differ from the oracle's left-to-right sums by rounding only);
lists go through the pure-Python kernel, which is already
the cheapest way to read Python floats without the C extension.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import numpy as np
from numba import njit, prange

from lukhas_fast import _drift_py as _py
from lukhas_fast._drift_py import DriftConfig, LANE_CFG, SUPPORTED_DTYPES

__all__ = [
    "DriftConfig",
    "LANE_CFG",
    "DriftMonitor",
    "_cosine",
    "cosine_similarity",
    "cosine_similarity_batch",
    "backend_details",
]


def backend_details() -> Dict[str, Any]:
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    import numba

    return {"kernel": f"numba {numba.__version__} @njit(cache=True), no fastmath; batches parallel over "
                      f"{numba.get_num_threads()} threads"}


@njit(cache=True, fastmath=False, nogil=True)
def _sums(a, b):
    """dot, |a|^2, |b|^2 with four interleaved partial sums per quantity.

    Without fastmath LLVM may not reorder a reduction, so the lanes are
    written out; they let it vectorise the loop (same idea as the C SIMD
    kernels; the result differs from left-to-right sums by rounding only).
    """
    n = a.shape[0]
    d0 = d1 = d2 = d3 = 0.0
    p0 = p1 = p2 = p3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    i = 0
    while i + 4 <= n:
        x0 = np.float64(a[i])
        x1 = np.float64(a[i + 1])
        x2 = np.float64(a[i + 2])
        x3 = np.float64(a[i + 3])
        y0 = np.float64(b[i])
        y1 = np.float64(b[i + 1])
        y2 = np.float64(b[i + 2])
        y3 = np.float64(b[i + 3])
        d0 += x0 * y0
        d1 += x1 * y1
        d2 += x2 * y2
        d3 += x3 * y3
        p0 += x0 * x0
        p1 += x1 * x1
        p2 += x2 * x2
        p3 += x3 * x3
        q0 += y0 * y0
        q1 += y1 * y1
        q2 += y2 * y2
        q3 += y3 * y3
        i += 4
    dot = (d0 + d1) + (d2 + d3)
    na = (p0 + p1) + (p2 + p3)
    nb = (q0 + q1) + (q2 + q3)
    while i < n:
        x = np.float64(a[i])
        y = np.float64(b[i])
        dot += x * y
        na += x * x
        nb += y * y
        i += 1
    return dot, na, nb


@njit(cache=True, fastmath=False, nogil=True)
def _cos_from_sums(dot, na, nb):
    if not (np.isfinite(dot) and np.isfinite(na) and np.isfinite(nb)):
        return np.nan, False
    if na == 0.0 or nb == 0.0:
        return 0.0, True
    c = dot / (np.sqrt(na) * np.sqrt(nb))
    if c > 1.0:
        c = 1.0
    elif c < -1.0:
        c = -1.0
    return c, True


@njit(cache=True, fastmath=False, nogil=True, parallel=True)
def _cosine_rows(A, B, out):
    """Row-wise cosine over all cores (rows are independent); returns -1 or
    the first non-finite row index (found after the parallel pass, so the
    answer does not depend on the thread schedule)."""
    n = A.shape[1]
    rows = A.shape[0]
    ok = np.ones(rows, dtype=np.bool_)
    for r in prange(rows):
        if n == 0:
            out[r] = 0.0
        else:
            dot, na, nb = _sums(A[r], B[r])
            c, good = _cos_from_sums(dot, na, nb)
            ok[r] = good
            out[r] = c
    for r in range(rows):
        if not ok[r]:
            return r
    return -1


def _array_1d(v: Any) -> Any:
    """v as a supported 1-D ndarray, or None to use the pure-Python path."""
    if isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.name in SUPPORTED_DTYPES and v.dtype.byteorder != ">":
        return v
    return None


def cosine_nb(a: Any, b: Any, names: Tuple[str, str] = ("a", "b")) -> float:
    """Reference cosine with a numba kernel for ndarray pairs."""
    x, y = _array_1d(a), _array_1d(b)
    if x is None or y is None:
        return _py.cosine_py(a, b, names)
    if x.shape[0] == 0 or y.shape[0] == 0 or x.shape[0] != y.shape[0]:
        return 0.0
    dot, na, nb = _sums(x, y)
    return _py.cosine_from_sums(dot, na, nb, what=f"{names[0]}/{names[1]}")


def _matrix(m: Any, name: str) -> np.ndarray:
    if isinstance(m, np.ndarray):
        if m.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n, d), got shape {m.shape}")
        if m.dtype.name not in SUPPORTED_DTYPES or m.dtype.byteorder == ">":
            raise TypeError(f"{name} dtype must be one of {', '.join(SUPPORTED_DTYPES)}, got {m.dtype}")
        return m
    return None


def cosine_rows_nb(A: Any, B: Any) -> np.ndarray:
    """Row-wise cosine; numba for two same-shape 2-D arrays, else the pure-Python rows."""
    x, y = _matrix(A, "intents"), _matrix(B, "actions")
    if x is None or y is None or x.shape != y.shape:
        return _py.cosine_rows_py(A, B)
    out = np.empty(x.shape[0], dtype=np.float64)
    bad = _cosine_rows(x, y, out)
    if bad >= 0:
        raise ValueError(
            f"row {bad}: non-finite intents[{bad}]/actions[{bad}]: nan/inf values or an overflow in the norms"
        )
    return out


class NumbaKernels(_py.PyKernels):
    """Kernel table of the numba tier."""

    name = "numba"
    cosine: "Callable[..., float]" = staticmethod(cosine_nb)
    cosine_rows: "Callable[..., np.ndarray]" = staticmethod(cosine_rows_nb)


class DriftMonitor(_py.DriftMonitor):
    __doc__ = _py.DriftMonitor.__doc__
    _kernels = NumbaKernels


def cosine_similarity(a: Any, b: Any) -> float:
    """Cosine similarity with the reference's rules (numba kernel for ndarrays)."""
    return cosine_nb(a, b)


# the reference's private name for the same function
_cosine = cosine_similarity


def cosine_similarity_batch(A: Any, B: Any) -> np.ndarray:
    """Row-wise :func:`_cosine` of two ``(n, d)`` arrays, as float64."""
    return cosine_rows_nb(A, B)
