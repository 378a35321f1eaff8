"""Clock: ``Ticker`` and ``create_consciousness_ticker`` (drop-in for
``lukhas.core.clock`` / ``core.clock``).

The ticker schedules against absolute deadlines on a monotonic clock (no
accumulated drift); on the C tier the loop, the sleep (GIL released) and the
metrics bookkeeping run in C.  ``start_background`` and ``run_async`` run the
same loop on a thread or on the asyncio event loop.
"""

from __future__ import annotations

from lukhas_fast._backend import load as _load

_impl = _load("clock")

Ticker = _impl.Ticker
create_consciousness_ticker = _impl.create_consciousness_ticker

__all__ = ["Ticker", "create_consciousness_ticker"]
