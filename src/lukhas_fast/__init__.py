"""lukhas_fast: native-accelerated, drop-in core of the LUKHAS consciousness SDK.

Families (each re-exported here):

* :mod:`lukhas_fast.ring` -- ``Ring``, ``DecimatingRing``, ``SpscRing``
* :mod:`lukhas_fast.drift` -- ``DriftMonitor``, ``DriftConfig``, ``LANE_CFG``, cosine kernels
* :mod:`lukhas_fast.clock` -- ``Ticker``, ``create_consciousness_ticker``
* :mod:`lukhas_fast.consciousness_ticker` -- ``ConsciousnessTicker``
* :mod:`lukhas_fast.ethics` -- the ethics DSL, rules engine and YAML loader
* :mod:`lukhas_fast.safety_tags` -- safety-tag enrichment of action plans

The families load lazily (PEP 562): ``import lukhas_fast`` imports none of
them, ``lukhas_fast.Ring`` imports the ring family on first access, and
``import lukhas_fast.ring`` imports that family only.  The backend (C, numba,
pure Python) is chosen per family by ``LUKHAS_FAST_BACKEND``;
:func:`backend_info` reports what is in use.
"""

from __future__ import annotations

import importlib as _importlib
import logging as _logging
import os as _os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, Dict, List

# The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

# A library adds a NullHandler to its logger and configures nothing else.
_logging.getLogger("lukhas_fast").addHandler(_logging.NullHandler())

from lukhas_fast._backend import backend_info, requested_backend as _requested_backend  # noqa: E402

_requested_backend()  # a bad LUKHAS_FAST_BACKEND fails here, not at the first family used

#: public name -> the submodule that defines it (loaded on first access)
_LAZY: Dict[str, str] = {
    "install": "_dropin",
    "uninstall": "_dropin",
    "Ring": "ring",
    "DecimatingRing": "ring",
    "SpscRing": "ring",
    "DriftConfig": "drift",
    "DriftMonitor": "drift",
    "LANE_CFG": "drift",
    "cosine_similarity": "drift",
    "cosine_similarity_batch": "drift",
    "Ticker": "clock",
    "create_consciousness_ticker": "clock",
    "ConsciousnessTicker": "consciousness_ticker",
    "DSLError": "ethics",
    "PREDICATES": "ethics",
    "compile_rule": "ethics",
    "hash_rule": "ethics",
    "EthicsAction": "ethics",
    "Priority": "ethics",
    "ReasonCode": "ethics",
    "EthicsRule": "ethics",
    "EthicsResult": "ethics",
    "RuleSet": "ethics",
    "EthicsEngine": "ethics",
    "RuleLoadError": "ethics",
    "load_ethics_rules": "ethics",
    "get_ethics_engine": "ethics",
    "SafetyTag": "safety_tags",
    "SafetyTagCategory": "safety_tags",
    "SafetyTagEnricher": "safety_tags",
    "TaggedPlan": "safety_tags",
    "create_safety_tag_enricher": "safety_tags",
}

#: submodules reachable as attributes (``lukhas_fast.ring``) before an import
_SUBMODULES = ("ring", "drift", "clock", "consciousness_ticker", "ethics", "safety_tags", "metrics")


def __getattr__(name: str) -> Any:
    """PEP 562: import the family that defines *name* on first access."""
    mod = _LAZY.get(name)
    if mod is not None:
        value = getattr(_importlib.import_module(f"{__name__}.{mod}"), name)
        globals()[name] = value  # later accesses skip this function
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


def get_include() -> str:
    """Directory holding the C headers (``spsc.h``) for other C/Cython code."""
    return _os.path.join(_os.path.dirname(__file__), "include")


if TYPE_CHECKING:  # static checkers see the eager imports
    from lukhas_fast._dropin import install, uninstall
    from lukhas_fast.clock import Ticker, create_consciousness_ticker
    from lukhas_fast.consciousness_ticker import ConsciousnessTicker
    from lukhas_fast.drift import LANE_CFG, DriftConfig, DriftMonitor, cosine_similarity, cosine_similarity_batch
    from lukhas_fast.ethics import (
        PREDICATES,
        DSLError,
        EthicsAction,
        EthicsEngine,
        EthicsResult,
        EthicsRule,
        Priority,
        ReasonCode,
        RuleLoadError,
        RuleSet,
        compile_rule,
        get_ethics_engine,
        hash_rule,
        load_ethics_rules,
    )
    from lukhas_fast.ring import DecimatingRing, Ring, SpscRing
    from lukhas_fast.safety_tags import (
        SafetyTag,
        SafetyTagCategory,
        SafetyTagEnricher,
        TaggedPlan,
        create_safety_tag_enricher,
    )

__all__ = [
    "backend_info",
    "install",
    "uninstall",
    "get_include",
    "Ring",
    "DecimatingRing",
    "SpscRing",
    "DriftConfig",
    "DriftMonitor",
    "LANE_CFG",
    "cosine_similarity",
    "cosine_similarity_batch",
    "Ticker",
    "create_consciousness_ticker",
    "ConsciousnessTicker",
    "DSLError",
    "PREDICATES",
    "compile_rule",
    "hash_rule",
    "EthicsAction",
    "Priority",
    "ReasonCode",
    "EthicsRule",
    "EthicsResult",
    "RuleSet",
    "EthicsEngine",
    "RuleLoadError",
    "load_ethics_rules",
    "get_ethics_engine",
    "SafetyTag",
    "SafetyTagCategory",
    "SafetyTagEnricher",
    "TaggedPlan",
    "create_safety_tag_enricher",
]
