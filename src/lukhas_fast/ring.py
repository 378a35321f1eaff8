"""Rings: ``Ring``, ``DecimatingRing`` (drop-in for ``lukhas.core.ring``) and ``SpscRing``.

The classes are those of the tier chosen by ``LUKHAS_FAST_BACKEND`` (see
:mod:`lukhas_fast._backend`); on the C tier they are the Cython extension
types themselves, so ``ring.push(x)`` is a direct C method call.
"""

from __future__ import annotations

from lukhas_fast._backend import load as _load

_impl = _load("ring")

Ring = _impl.Ring
DecimatingRing = _impl.DecimatingRing
SpscRing = _impl.SpscRing
STRATEGIES = _impl.STRATEGIES

__all__ = ["Ring", "DecimatingRing", "SpscRing", "STRATEGIES"]
