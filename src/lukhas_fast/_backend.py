"""Backend dispatcher: one table says which tiers each family has.

Every family (ring, drift, clock, tags, ethics) is implemented by up to three
interchangeable *tier* modules with the same public names:

* ``c``      -- Cython extension types over the C kernels in ``csrc/``;
* ``numba``  -- numba kernels under the shared pure-Python classes;
* ``python`` -- plain Python: the last fallback and the test oracle.

The environment variable ``LUKHAS_FAST_BACKEND`` picks the tier, once per
process (read at the first import of a family):

* ``auto`` (default) -- C, else numba, else python.  Falling back from C is
  logged once per family at WARNING with the import error.
* ``c`` / ``numba`` / ``python`` -- that tier, or :class:`ImportError` naming
  what is missing.  A family without numba kernels runs its pure-Python tier
  under ``numba`` (numba itself must still be importable).

Adding a family means adding one row to :data:`FAMILIES`; nothing else here
changes.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from types import ModuleType
from typing import Any, Dict, Mapping, Optional

__all__ = [
    "TIERS",
    "FAMILIES",
    "requested_backend",
    "load",
    "tier_modules",
    "backend_info",
]

logger = logging.getLogger("lukhas_fast")

#: Tier names, fastest first (the ``auto`` preference order).
TIERS = ("c", "numba", "python")

#: family -> {tier -> module}.  The one table of the dispatcher.
FAMILIES: Dict[str, Dict[str, str]] = {
    "ring": {
        "c": "lukhas_fast._ring_c",
        "python": "lukhas_fast._ring_py",
    },
    "drift": {
        "c": "lukhas_fast._drift_c",
        "numba": "lukhas_fast._drift_nb",
        "python": "lukhas_fast._drift_py",
    },
    "clock": {
        "c": "lukhas_fast._clock_c",
        "python": "lukhas_fast._clock_py",
    },
    "ethics": {
        "c": "lukhas_fast._ethics_c",
        "python": "lukhas_fast._ethics_py",
    },
    "tags": {
        "c": "lukhas_fast._tags_c",
        "python": "lukhas_fast._tags_py",
    },
}

_ENV = "LUKHAS_FAST_BACKEND"
_VALID = ("auto",) + TIERS

_lock = threading.RLock()
_chosen: Dict[str, ModuleType] = {}
_chosen_tier: Dict[str, str] = {}
_skipped: Dict[str, Dict[str, str]] = {}


def requested_backend() -> str:
    """Return the normalised value of ``LUKHAS_FAST_BACKEND`` (default ``auto``).

    Raises :class:`ValueError` for a value that is not a tier name.
    """
    value = os.environ.get(_ENV, "auto").strip().lower() or "auto"
    if value not in _VALID:
        raise ValueError(
            f"{_ENV}={value!r} is not one of {', '.join(_VALID)}"
        )
    return value


def _import_tier(family: str, tier: str) -> ModuleType:
    """Import one tier module of *family*; ImportError says why it is missing."""
    table = FAMILIES[family]
    if tier == "numba":
        try:
            importlib.import_module("numba")
        except ImportError as exc:
            raise ImportError(
                f"numba tier of lukhas_fast.{family}: numba is not installed "
                f"(pip install 'lukhas_fast[numba]'): {exc}"
            ) from exc
        name = table.get("numba", table["python"])
    else:
        name = table.get(tier)
        if name is None:
            raise ImportError(f"lukhas_fast.{family} has no {tier} tier")
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"{tier} tier of lukhas_fast.{family} ({name}) failed to import: {exc}"
        ) from exc


def load(family: str) -> ModuleType:
    """Return the tier module selected for *family* (cached per process)."""
    if family not in FAMILIES:
        raise KeyError(f"unknown lukhas_fast family {family!r}")
    with _lock:
        mod = _chosen.get(family)
        if mod is not None:
            return mod
        want = requested_backend()
        skipped: Dict[str, str] = {}
        if want != "auto":
            try:
                mod = _import_tier(family, want)
            except ImportError as exc:
                raise ImportError(
                    f"{_ENV}={want} forces the {want} tier, but it is unavailable "
                    f"for lukhas_fast.{family}: {exc}"
                ) from exc
            tier = want
        else:
            mod = None
            tier = "python"
            for tier in TIERS:
                if tier == "numba" and "numba" not in FAMILIES[family]:
                    skipped[tier] = "no numba kernels for this family"
                    continue
                try:
                    mod = _import_tier(family, tier)
                    break
                except ImportError as exc:
                    skipped[tier] = str(exc)
                    if tier == "c":
                        logger.warning(
                            "lukhas_fast.%s: C extension unavailable, falling back: %s",
                            family,
                            exc,
                        )
            if mod is None:  # pragma: no cover - python tier always imports
                raise ImportError(f"no tier of lukhas_fast.{family} imports: {skipped}")
        _chosen[family] = mod
        _chosen_tier[family] = tier
        _skipped[family] = skipped
        return mod


def tier_modules(family: str) -> Dict[str, ModuleType]:
    """Every installed tier of *family*, fastest first, as ``{tier: module}``.

    Used by the test suite (each test runs on every installed tier) and the
    benchmark CLI.  A tier appears only if it really has its own module (a
    family without numba kernels has no ``numba`` entry).
    """
    out: Dict[str, ModuleType] = {}
    for tier in TIERS:
        if tier not in FAMILIES[family]:
            continue
        try:
            out[tier] = _import_tier(family, tier)
        except ImportError:
            continue
    return out


def _details(mod: ModuleType) -> Mapping[str, Any]:
    fn = getattr(mod, "backend_details", None)
    if fn is None:
        return {}
    try:
        return dict(fn())
    except Exception as exc:  # reporting must never break the caller
        return {"error": repr(exc)}


def backend_info() -> Dict[str, Any]:
    """Describe the backend in use for every family.

    Returns a dict: ``requested`` (the env value), ``families`` (per family:
    ``tier`` in use, ``module``, ``available`` tiers, ``skipped`` tier ->
    reason, and ``details`` the tier reports, e.g. the CPU features and kernel
    ISA used by the C kernels), and ``cpu_features`` (the union reported by
    the C tiers).
    """
    info: Dict[str, Any] = {"requested": requested_backend(), "families": {}}
    cpu: Dict[str, Any] = {}
    for family in FAMILIES:
        try:
            mod = load(family)
            tier: Optional[str] = _chosen_tier[family]
            error = None
        except ImportError as exc:
            mod, tier, error = None, None, str(exc)
        available = list(tier_modules(family))
        entry: Dict[str, Any] = {
            "tier": tier,
            "module": mod.__name__ if mod is not None else None,
            "available": available,
            "skipped": dict(_skipped.get(family, {})),
        }
        if error is not None:
            entry["error"] = error
        if mod is not None:
            details = _details(mod)
            entry["details"] = details
            cpu.update(details.get("cpu_features", {}))
        info["families"][family] = entry
    info["cpu_features"] = cpu
    return info


def format_backend_info(info: Optional[Mapping[str, Any]] = None) -> str:
    """One line per family, for pytest's header and the bench CLI."""
    info = backend_info() if info is None else info
    lines = [f"lukhas_fast backend: requested={info['requested']}"]
    for family, entry in info["families"].items():
        extra = ""
        details = entry.get("details") or {}
        shown = {k: v for k, v in details.items() if k != "cpu_features"}
        if shown:
            extra = " " + " ".join(f"{k}={v}" for k, v in shown.items())
        skipped = entry.get("skipped") or {}
        skip = ""
        if skipped:
            skip = " skipped: " + "; ".join(f"{t}: {r}" for t, r in skipped.items())
        lines.append(
            f"  {family:<6} tier={entry['tier']} available={','.join(entry['available'])}"
            f"{extra}{skip}"
        )
    if info.get("cpu_features"):
        feats = ",".join(k for k, v in info["cpu_features"].items() if v)
        lines.append(f"  cpu features used: {feats or 'none'}")
    return "\n".join(lines)
