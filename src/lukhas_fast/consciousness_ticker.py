"""``ConsciousnessTicker`` (drop-in for ``lukhas.core.consciousness_ticker``):
a :class:`~lukhas_fast.clock.Ticker` that pushes a frame per tick into a
:class:`~lukhas_fast.ring.Ring` and decimates it under pressure, with the
reference's Prometheus metrics."""

from __future__ import annotations

from lukhas_fast._backend import load as _load

ConsciousnessTicker = _load("clock").ConsciousnessTicker

__all__ = ["ConsciousnessTicker"]
