"""lukhas_fast: native-accelerated, drop-in core of the LUKHAS consciousness SDK.

Families (each re-exported here):

* :mod:`lukhas_fast.ring` -- ``Ring``, ``DecimatingRing``, ``SpscRing``
* :mod:`lukhas_fast.drift` -- ``DriftMonitor``, ``DriftConfig``, ``LANE_CFG``, cosine kernels
* :mod:`lukhas_fast.clock` -- ``Ticker``, ``create_consciousness_ticker``
* :mod:`lukhas_fast.consciousness_ticker` -- ``ConsciousnessTicker``
* :mod:`lukhas_fast.ethics` -- the ethics DSL, rules engine and YAML loader
* :mod:`lukhas_fast.safety_tags` -- safety-tag enrichment of action plans

The backend (C, numba, pure Python) is chosen per family by
``LUKHAS_FAST_BACKEND``; :func:`backend_info` reports what is in use.
"""

from __future__ import annotations

import logging
import os as _os

from lukhas_fast._backend import backend_info
from lukhas_fast._dropin import install, uninstall

logging.getLogger("lukhas_fast").addHandler(logging.NullHandler())

from lukhas_fast.ring import DecimatingRing, Ring, SpscRing  # noqa: E402
from lukhas_fast.clock import Ticker, create_consciousness_ticker  # noqa: E402
from lukhas_fast.consciousness_ticker import ConsciousnessTicker  # noqa: E402
from lukhas_fast.ethics import (  # noqa: E402
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
from lukhas_fast.safety_tags import (  # noqa: E402
    SafetyTag,
    SafetyTagCategory,
    SafetyTagEnricher,
    TaggedPlan,
    create_safety_tag_enricher,
)
from lukhas_fast.drift import (  # noqa: E402
    LANE_CFG,
    DriftConfig,
    DriftMonitor,
    cosine_similarity,
    cosine_similarity_batch,
)

__version__ = "0.1.0"


def get_include() -> str:
    """Directory holding the C headers (``spsc.h``) for other C/Cython code."""
    return _os.path.join(_os.path.dirname(__file__), "include")


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
