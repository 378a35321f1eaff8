"""``ConsciousnessTicker`` (drop-in for ``lukhas.core.consciousness_ticker``):
a :class:`~lukhas_fast.clock.Ticker` that pushes a frame per tick into a
:class:`~lukhas_fast.ring.Ring` and decimates it under pressure, with the
reference's Prometheus metrics.

The module globals are the SDK's and are read by every ConsciousnessTicker
when it ticks (so ``mock.patch("...consciousness_ticker.TICK")``,
``mock.patch("...consciousness_ticker.PROM", False)`` and
``patch.dict(os.environ, {"LUKHAS_LANE": ...})`` + ``importlib.reload`` of
this module work as with the SDK):

* ``LANE`` -- env ``LUKHAS_LANE`` at import, default ``"experimental"``;
* ``PROM`` -- whether ticks record metrics (prometheus_client importable and
  ``LUKHAS_FAST_METRICS`` != ``"0"``);
* ``TICK`` (Histogram ``lukhas_tick_duration_seconds``), ``TICKS_DROPPED``
  (Counter ``lukhas_ticks_dropped_total``), ``SUB_EXC`` (Counter
  ``lukhas_subscriber_exceptions_total``), each labelled ``lane`` (no-op
  objects without prometheus_client).
"""

from __future__ import annotations

import os

from lukhas_fast import _metrics
from lukhas_fast._backend import load as _load
from lukhas_fast._clock_py import consciousness_metrics as _consciousness_metrics

LANE = os.environ.get("LUKHAS_LANE", "experimental")
PROM = _metrics.metrics_default()
TICK, TICKS_DROPPED, SUB_EXC = _consciousness_metrics()

ConsciousnessTicker = _load("clock").ConsciousnessTicker

__all__ = ["ConsciousnessTicker", "PROM", "TICK", "TICKS_DROPPED", "SUB_EXC", "LANE"]
