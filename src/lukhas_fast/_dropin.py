"""Drop-in import aliases: make the pure-Python SDK's module names resolve to lukhas_fast.

``install()`` registers every name of :data:`ALIASES` (and the parent
packages they need) in ``sys.modules``; ``uninstall()`` removes exactly what
``install()`` added.  ``python -m lukhas_fast run script.py`` runs an
unmodified script with the aliases installed.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Dict, List

__all__ = ["ALIASES", "install", "uninstall", "installed"]

#: SDK module name -> lukhas_fast module.
ALIASES: Dict[str, str] = {
    "lukhas.core.ring": "lukhas_fast.ring",
    "lukhas.core.drift": "lukhas_fast.drift",
    "lukhas.core.clock": "lukhas_fast.clock",
    "lukhas.core.consciousness_ticker": "lukhas_fast.consciousness_ticker",
    "core.clock": "lukhas_fast.clock",
    "core.ring": "lukhas_fast.ring",
    "candidate.core.ethics.safety_tags": "lukhas_fast.safety_tags",
    # the ethics DSL, rules engine and loader (one lukhas_fast module serves all three)
    "candidate.core.ethics.dsl": "lukhas_fast.ethics",
    "candidate.core.ethics.engine": "lukhas_fast.ethics",
    "candidate.core.ethics.rules_engine": "lukhas_fast.ethics",
    "candidate.core.ethics.loader": "lukhas_fast.ethics",
    "candidate.core.ethics.rule_loader": "lukhas_fast.ethics",
}

_lock = threading.Lock()
_added: List[str] = []
_MARK = "__lukhas_fast_alias__"


def _parents(name: str) -> List[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def installed() -> bool:
    """Whether the aliases are currently installed."""
    return bool(_added)


def install() -> None:
    """Register the SDK's import names (idempotent).

    Raises ``ImportError`` naming the modules, and changes nothing, if a real
    (non-lukhas_fast) module of one of those names is already imported.
    """
    with _lock:
        if _added:
            return
        wanted: Dict[str, object] = {}
        for alias, target in ALIASES.items():
            for parent in _parents(alias):
                if parent not in wanted:
                    wanted[parent] = None
            wanted[alias] = target
        clashes = [n for n in wanted if n in sys.modules and not getattr(sys.modules[n], _MARK, False)
                   and not (isinstance(wanted[n], str) and sys.modules[n] is sys.modules.get(wanted[n]))]
        if clashes:
            raise ImportError(
                "lukhas_fast.install(): these SDK modules are already imported from elsewhere, "
                f"refusing to shadow them: {', '.join(sorted(clashes))}"
            )
        targets = {a: importlib.import_module(t) for a, t in ALIASES.items()}
        for name, target in wanted.items():
            if target is None:
                mod = types.ModuleType(name, f"lukhas_fast drop-in package alias for {name!r}")
                mod.__path__ = []  # a package, so submodules resolve
                setattr(mod, _MARK, True)
                sys.modules[name] = mod
            else:
                sys.modules[name] = targets[name]
            _added.append(name)
        for name in wanted:  # link children as attributes of their parents
            if "." in name:
                parent, _, child = name.rpartition(".")
                setattr(sys.modules[parent], child, sys.modules[name])


def uninstall() -> None:
    """Remove what :func:`install` added (no-op if not installed)."""
    with _lock:
        for name in reversed(_added):
            sys.modules.pop(name, None)
        _added.clear()
