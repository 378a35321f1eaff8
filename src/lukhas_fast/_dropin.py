"""Drop-in import aliases: make the pure-Python SDK's module names resolve to lukhas_fast.

``install()`` puts an import hook (:class:`AliasFinder`) at the front of
``sys.meta_path``.  It serves exactly the module names of :data:`ALIASES`
(each import of one of them returns the lukhas_fast module itself, so
``mock.patch("core.ring.Ring")`` patches what lukhas_fast code sees).  A
parent package such as ``core`` or ``lukhas.core`` is left to the other
finders: a real package of that name on ``sys.path`` is imported as usual,
with all its other modules (``import core.metrics`` still works); only when
no finder knows the parent does the hook create an empty stand-in package
for it, whose ``__path__`` is empty so it never hides anything.

``uninstall()`` removes the hook, the ``sys.modules`` entries it served and
the attributes it caused on parent packages.  ``python -m lukhas_fast run
script.py`` runs an unmodified script with the hook installed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["ALIASES", "AliasFinder", "install", "uninstall", "installed"]


def _build_aliases() -> Dict[str, str]:
    out: Dict[str, str] = {}
    # rings, drift, clock, consciousness ticker: the guide's paths and the SDK's own
    for mod in ("ring", "drift", "clock", "consciousness_ticker"):
        for prefix in ("lukhas.core.", "core.", "lukhas_website.lukhas.core."):
            out[prefix + mod] = f"lukhas_fast.{mod}"
    for prefix in ("candidate.core.ethics.", "core.ethics.", "labs.core.ethics."):
        out[prefix + "safety_tags"] = "lukhas_fast.safety_tags"
    # the ethics layer under the SDK's module names (dsl_lite: the DSL; ethics_engine:
    # engine, rule set, rule, result, enums; rule_loader: the loaders).  lukhas_fast.ethics
    # holds the public names of all three.
    for prefix in ("core.ethics.logic.", "labs.core.ethics.logic.", "candidate.core.ethics.logic."):
        for mod in ("dsl_lite", "ethics_engine", "rule_loader"):
            out[prefix + mod] = "lukhas_fast.ethics"
    # earlier lukhas_fast aliases, kept working
    for mod in ("dsl", "engine", "rules_engine", "loader", "rule_loader"):
        out["candidate.core.ethics." + mod] = "lukhas_fast.ethics"
    return out


#: SDK module name -> lukhas_fast module (every name :func:`install` resolves).
ALIASES: Dict[str, str] = _build_aliases()

_MARK = "__lukhas_fast_alias__"
_lock = threading.Lock()
_finder: Optional["AliasFinder"] = None


def _parents(name: str) -> List[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``sys.meta_path`` hook serving :data:`ALIASES` (and, when nothing else
    provides them, empty stand-ins for their parent packages)."""

    def __init__(self, aliases: Dict[str, str]) -> None:
        self.aliases = dict(aliases)
        self.parents = {p for name in self.aliases for p in _parents(name)}
        self.served: List[str] = []  # sys.modules names this finder created, in order
        self._specs: Dict[str, Any] = {}  # alias -> the target module's own __spec__
        self._lock = threading.Lock()
        self._busy = threading.local()  # parent names being looked up on this thread

    # -- finder -----------------------------------------------------------------
    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname in self.aliases:
            return importlib.machinery.ModuleSpec(fullname, self, origin=f"alias of {self.aliases[fullname]}")
        if fullname in self.parents:
            # a real package of that name wins: ask the other finders first (a
            # finder that calls back into the import system for the same name
            # reaches this hook again: it then answers None, no recursion)
            busy = self._busy.__dict__.setdefault("names", set())
            if fullname in busy:
                return None
            busy.add(fullname)
            try:
                for finder in list(sys.meta_path):
                    if finder is self or not hasattr(finder, "find_spec"):
                        continue
                    spec = finder.find_spec(fullname, path, target)
                    if spec is not None:
                        return spec
            finally:
                busy.discard(fullname)
            spec = importlib.machinery.ModuleSpec(fullname, self, origin="lukhas_fast drop-in stand-in",
                                                  is_package=True)
            spec.submodule_search_locations = []
            return spec
        return None

    # -- loader -----------------------------------------------------------------
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        target = self.aliases.get(spec.name)
        if target is not None:
            mod = importlib.import_module(target)
            with self._lock:
                self._specs[spec.name] = mod.__spec__
        else:
            mod = types.ModuleType(spec.name, f"lukhas_fast drop-in stand-in package for {spec.name!r}")
            setattr(mod, _MARK, True)
        with self._lock:
            self.served.append(spec.name)
        return mod

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the alias target is already imported.  The import
        system has just set the target's ``__spec__`` to the alias spec: put
        its own back, so ``importlib.reload`` of it re-executes lukhas_fast's
        module (as reloading the SDK module would)."""
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            with self._lock:
                orig = self._specs.pop(spec.name, None)
            if orig is not None:
                module.__spec__ = orig

    def __repr__(self) -> str:
        return f"<lukhas_fast AliasFinder: {len(self.aliases)} aliases>"


def installed() -> bool:
    """Whether the import hook is installed."""
    return _finder is not None


def _clashes() -> List[str]:
    out = []
    for name, target in ALIASES.items():
        mod = sys.modules.get(name)
        if mod is not None and mod is not sys.modules.get(target) and not getattr(mod, _MARK, False):
            out.append(name)
    return out


def install() -> None:
    """Install the import hook (idempotent).

    Raises ``ImportError`` naming the modules, and changes nothing, if a real
    (non-lukhas_fast) module of one of the aliased names is already imported.
    Parent packages (``core``, ``lukhas``, ...) may be real: they are never
    replaced.
    """
    global _finder
    with _lock:
        if _finder is not None:
            if _finder not in sys.meta_path:  # someone reset meta_path: put it back
                sys.meta_path.insert(0, _finder)
            return
        clashes = _clashes()
        if clashes:
            raise ImportError(
                "lukhas_fast.install(): these SDK modules are already imported from elsewhere, "
                f"refusing to shadow them: {', '.join(sorted(clashes))}"
            )
        _finder = AliasFinder(ALIASES)
        sys.meta_path.insert(0, _finder)


def _unlink(name: str, mod: Any) -> None:
    """Remove ``parent.child`` if it is the module this hook served."""
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is not None and getattr(parent, child, None) is mod:
        try:
            delattr(parent, child)
        except AttributeError:  # pragma: no cover - a read-only parent
            pass


def uninstall() -> None:
    """Remove the hook and what it served (no-op if not installed)."""
    global _finder
    with _lock:
        finder, _finder = _finder, None
        if finder is None:
            return
        try:
            sys.meta_path.remove(finder)
        except ValueError:
            pass
        with finder._lock:
            served, finder.served = list(finder.served), []
        for name in reversed(served):
            mod = sys.modules.get(name)
            if mod is None:
                continue
            target = finder.aliases.get(name)
            ours = (target is not None and mod is sys.modules.get(target)) or getattr(mod, _MARK, False)
            if ours:
                _unlink(name, mod)
                del sys.modules[name]


def resolved_paths() -> Tuple[str, ...]:
    """Every module name :func:`install` resolves, sorted (for docs and tests)."""
    return tuple(sorted(ALIASES))
