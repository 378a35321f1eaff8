"""numba tier of the drift family: the pure-Python classes with numba kernels.

Used when the C extension is unavailable.  ndarray inputs and batches run in
``@njit(cache=True)`` kernels (no fastmath, so sums are left to right exactly
like the oracle); lists go through the pure-Python kernel, which is already
the cheapest way to read Python floats without the C extension.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
from numba import njit

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

    return {"kernel": f"numba {numba.__version__} @njit(cache=True), no fastmath"}


@njit(cache=True, fastmath=False, nogil=True)
def _sums(a, b):
    dot = 0.0
    na = 0.0
    nb = 0.0
    for i in range(a.shape[0]):
        x = np.float64(a[i])
        y = np.float64(b[i])
        dot += x * y
        na += x * x
        nb += y * y
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


@njit(cache=True, fastmath=False, nogil=True)
def _cosine_rows(A, B, out):
    """Row-wise cosine; returns -1 or the first non-finite row index."""
    n = A.shape[1]
    for r in range(A.shape[0]):
        if n == 0:
            out[r] = 0.0
            continue
        dot, na, nb = _sums(A[r], B[r])
        c, ok = _cos_from_sums(dot, na, nb)
        if not ok:
            return r
        out[r] = c
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
    cosine = staticmethod(cosine_nb)
    cosine_rows = staticmethod(cosine_rows_nb)


class DriftMonitor(_py.DriftMonitor):
    __doc__ = _py.DriftMonitor.__doc__
    _kernels = NumbaKernels


def _cosine(a: Any, b: Any) -> float:
    """Cosine similarity with the reference's rules (numba kernel for ndarrays)."""
    return cosine_nb(a, b)


cosine_similarity = _cosine


def cosine_similarity_batch(A: Any, B: Any) -> np.ndarray:
    """Row-wise :func:`_cosine` of two ``(n, d)`` arrays, as float64."""
    return cosine_rows_nb(A, B)
