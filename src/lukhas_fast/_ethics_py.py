"""Pure-Python tier of the ethics family: rules compiled to tree-walking
closures, the reference's evaluation algorithm (the oracle and the
benchmark baseline), on the shared DSL and engine."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Optional

from lukhas_fast import _ethics_dsl as dsl
from lukhas_fast import _ethics_engine as eng
from lukhas_fast._ethics_dsl import (  # noqa: F401  (re-exported surface)
    PREDICATES,
    DSLError,
    RuleEvaluationError,
    canonical_domain,
    hash_rule,
    parse_bytes,
    parse_seconds,
)
from lukhas_fast._ethics_engine import (  # noqa: F401
    EthicsAction,
    EthicsEngine,
    EthicsResult,
    Priority,
    ReasonCode,
    RuleLoadError,
    RuleSet,
)

__all__ = [
    "DSLError",
    "RuleEvaluationError",
    "PREDICATES",
    "canonical_domain",
    "parse_bytes",
    "parse_seconds",
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
    "backend_details",
]


def backend_details() -> Dict[str, Any]:
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"evaluator": "tree-walking closures (reference algorithm)"}


def _build(node: Any) -> Callable[[Any, Any], Any]:
    kind = node[0]
    if kind in ("and", "or"):
        children = [_build(c) for c in node[1]]
        if kind == "and":
            return lambda p, c: all(ch(p, c) for ch in children)
        return lambda p, c: any(ch(p, c) for ch in children)
    if kind == "not":
        child = _build(node[1][0])
        return lambda p, c: not child(p, c)
    fn = dsl.PREDICATES[node[1]]
    getters = []
    for arg in node[2]:
        if arg[0] == "lit":
            getters.append((lambda v: lambda p, c: v)(arg[1]))
        else:
            getters.append((lambda in_ctx, parts: lambda p, c: dsl.resolve_path(in_ctx, parts, p, c))(arg[1], arg[2]))
    return lambda p, c: fn(*[g(p, c) for g in getters])


def compile_rule(rule_str: str) -> Callable[..., bool]:
    """Compile DSL text into ``evaluate(plan, context=None) -> bool``.

    Compile problems raise :class:`DSLError`.  Deviation (fail closed,
    correctly): an error while evaluating raises :class:`RuleEvaluationError`,
    which :meth:`RuleSet.evaluate` turns into a BLOCK with reason
    ``evaluation_error`` (the reference returned False for the whole rule,
    even under ``not``).
    """
    root = _build(dsl.parse_rule(rule_str))

    def evaluate(plan: Any, context: Optional[Dict[str, Any]] = None) -> bool:
        try:
            return bool(root(plan, context or {}))
        except Exception as exc:
            raise RuleEvaluationError(f"{type(exc).__name__}: {exc}") from exc

    evaluate.__doc__ = f"Compiled rule: {rule_str}"
    evaluate.source = rule_str  # type: ignore[attr-defined]  # (EthicsRule pickling recompiles from it)
    return evaluate


class EthicsRule(eng.EthicsRule):
    __doc__ = eng.EthicsRule.__doc__
    _compiler: "ClassVar[Callable[[str], Callable[..., bool]]]" = staticmethod(compile_rule)
    _dsl_tier = True  # (this class exactly: RuleSet._memo_token)


_engines = eng.EngineCache()


def load_ethics_rules(config_path: Optional[str] = None, *, strict: bool = True,
                      metrics: Optional[bool] = None) -> RuleSet:
    """Load a YAML rule file (default: the bundled ``defaults.yaml``) into a :class:`RuleSet`.

    Deviation (fail loud): with ``strict=True`` (default) every bad entry is
    reported at once in one :class:`RuleLoadError` and nothing is loaded; a
    missing file or a file without rules is an error too.  ``strict=False``
    keeps the reference's skip-and-log behaviour (and its fallback rules).
    """
    return eng.load_rules(config_path, EthicsRule, strict, metrics)


def get_ethics_engine(config_path: Optional[str] = None) -> EthicsEngine:
    """The engine for ``config_path`` (built once per path; default: bundled rules)."""
    return _engines.get(config_path, EthicsRule)
