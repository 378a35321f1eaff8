"""Drift: ``DriftMonitor``, ``DriftConfig``, ``LANE_CFG``, cosine kernels.

Drop-in for ``lukhas.core.drift``.  The names come from the tier chosen by
``LUKHAS_FAST_BACKEND``; on the C tier ``DriftMonitor`` is an extension type
whose ``update`` reads lists or buffers in place and runs a SIMD kernel
selected at run time (see ``lukhas_fast.backend_info()``).

Shared lane state (several processes or machines, one monitor per lane):
:class:`RedisLaneState` and :class:`SharedDriftMonitor` (needs the ``redis``
extra); see :mod:`lukhas_fast._drift_state`.
"""

from __future__ import annotations

from lukhas_fast._backend import load as _load
from lukhas_fast._drift_state import LaneStateUnavailable, RedisLaneState, SharedDriftMonitor

_impl = _load("drift")

DriftConfig = _impl.DriftConfig
LANE_CFG = _impl.LANE_CFG
DriftMonitor = _impl.DriftMonitor
_cosine = _impl._cosine
cosine_similarity = _impl.cosine_similarity
cosine_similarity_batch = _impl.cosine_similarity_batch

__all__ = [
    "DriftConfig",
    "LANE_CFG",
    "DriftMonitor",
    "_cosine",
    "cosine_similarity",
    "cosine_similarity_batch",
    "RedisLaneState",
    "SharedDriftMonitor",
    "LaneStateUnavailable",
]
