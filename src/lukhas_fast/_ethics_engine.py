"""Rules engine and YAML loader shared by the ethics tiers.

``EthicsRule`` compiles its DSL with the ``_compiler`` of its tier (the tier
modules subclass it); everything else here is tier-independent.
"""

from __future__ import annotations

import collections
import functools
import logging
import operator
import os
import threading
import weakref
import time
from bisect import bisect_left as _bisect_left
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, ClassVar, Dict, List, Optional, Set, Tuple

from lukhas_fast import _metrics
from lukhas_fast._ethics_dsl import DSLError, hash_rule

__all__ = [
    "EthicsAction",
    "Priority",
    "ReasonCode",
    "EthicsRule",
    "EthicsResult",
    "RuleSet",
    "EthicsEngine",
    "RuleLoadError",
    "FALLBACK_RULES",
    "RULES_DIR",
]

logger = logging.getLogger("lukhas_fast.ethics")
#: The per-evaluation INFO line (``Ethics evaluation: ...``) has a logger of its
#: own, a child of ``lukhas_fast.ethics`` (so it reaches the same handlers), so
#: that an application can keep the family's other INFO lines and drop this
#: one, which costs more than the evaluation itself: the service does so
#: unless its per-request access log is on.
eval_logger = logging.getLogger("lukhas_fast.ethics.evaluation")

#: Directory of the bundled rule files (package data).
RULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rules")


class EthicsAction(Enum):
    """Outcome of a rule or an evaluation."""

    ALLOW = "allow"
    WARN = "warn"
    BLOCK = "block"


class Priority(Enum):
    """Rule priority (higher runs first)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class ReasonCode(Enum):
    """Stable reason codes of the bundled rules."""

    HARMFUL_ACTION = "ETH#1001"
    DATA_EXFILTRATION = "ETH#1002"
    MANIPULATION_ATTEMPT = "ETH#1003"
    UNTRUSTED_DOMAIN = "ETH#1004"
    PRIVILEGE_ESCALATION = "ETH#1005"
    USER_IMPERSONATION = "ETH#1006"
    EXCESSIVE_MEMORY = "ETH#2001"
    EXCESSIVE_TIME = "ETH#2002"
    EXCESSIVE_BATCH = "ETH#2003"
    EXTERNAL_API_CALL = "ETH#3001"
    USER_DATA_ACCESS = "ETH#3002"
    LARGE_BATCH_OPERATION = "ETH#3003"
    LONG_RUNNING_TASK = "ETH#3004"
    RECURSIVE_OPERATION = "ETH#3005"
    MISSING_USER_CONTEXT = "ETH#3006"
    DEBUG_ACTION = "ETH#3007"
    UNKNOWN = "ETH#9999"

    @classmethod
    def from_rule_name(cls, name: str) -> "ReasonCode":
        """The code of a bundled rule name (UNKNOWN for anything else)."""
        return _RULE_CODES.get(name, cls.UNKNOWN)


_RULE_CODES = {
    "block_harmful_actions": ReasonCode.HARMFUL_ACTION,
    "block_data_exfiltration": ReasonCode.DATA_EXFILTRATION,
    "block_manipulation_attempts": ReasonCode.MANIPULATION_ATTEMPT,
    "block_untrusted_domains": ReasonCode.UNTRUSTED_DOMAIN,
    "block_privilege_escalation": ReasonCode.PRIVILEGE_ESCALATION,
    "block_user_impersonation": ReasonCode.USER_IMPERSONATION,
    "block_excessive_resources": ReasonCode.EXCESSIVE_MEMORY,
    "warn_external_api_calls": ReasonCode.EXTERNAL_API_CALL,
    "warn_user_data_access": ReasonCode.USER_DATA_ACCESS,
    "warn_large_batch_operations": ReasonCode.LARGE_BATCH_OPERATION,
    "warn_long_running_tasks": ReasonCode.LONG_RUNNING_TASK,
    "warn_recursive_operations": ReasonCode.RECURSIVE_OPERATION,
    "warn_missing_user_context": ReasonCode.MISSING_USER_CONTEXT,
    "warn_debug_actions": ReasonCode.DEBUG_ACTION,
    "test_rule": ReasonCode.HARMFUL_ACTION,
}


@dataclass
class EthicsRule:
    """A named DSL rule with an action and a priority, compiled at construction.

    Deviation: a rule whose DSL does not compile raises :class:`DSLError`
    naming the rule (the reference logged it and installed an always-false
    rule, so a broken BLOCK rule silently never fired).
    """

    name: str
    description: str
    rule_dsl: str
    action: EthicsAction
    priority: Priority
    tags: Set[str] = field(default_factory=set)
    _compiled_fn: Optional[Callable[..., bool]] = None
    _rule_hash: Optional[str] = None
    _reason_code: Optional[ReasonCode] = None

    #: compile function of the tier (set by the tier modules)
    _compiler: ClassVar[Optional[Callable[[str], Callable[..., bool]]]] = None
    #: rules (in evaluation order) -> a callable ``(plan, context) -> (fired, errors)``: the
    #: indices of the rules that fired, as a tuple in rule order, and ``None`` or the
    #: ``[(index, exception)]`` of the rules that failed: the whole rule set as one program
    #: (a tier may share work between rules); None: each rule's ``evaluate`` in turn
    _make_program: ClassVar[Optional[Callable[[List[Any]], Callable[[Any, Any], Tuple[Any, Any]]]]] = None
    #: plan -> (token, plan_hash) and (context, token) -> facts_hash; same strings as
    #: :func:`plan_digest` / :func:`facts_digest` (a tier may compute them faster)
    _plan_digest: ClassVar[Optional[Callable[[Dict[Any, Any]], Tuple[Any, str]]]] = None
    _facts_digest: ClassVar[Optional[Callable[[Dict[Any, Any], Any], str]]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.rule_dsl, str):
            raise TypeError(f"rule_dsl of rule {self.name!r} must be a str, got {type(self.rule_dsl).__name__}")
        if not isinstance(self.action, EthicsAction):
            raise TypeError(f"action of rule {self.name!r} must be an EthicsAction, got {self.action!r}")
        if not isinstance(self.priority, Priority):
            raise TypeError(f"priority of rule {self.name!r} must be a Priority, got {self.priority!r}")
        self._rule_hash = hash_rule(self.rule_dsl)
        self._reason_code = ReasonCode.from_rule_name(self.name)
        if self._compiled_fn is None:
            compiler = type(self)._compiler
            if compiler is None:
                raise TypeError("EthicsRule has no compiler: use lukhas_fast.ethics.EthicsRule")
            try:
                self._compiled_fn = compiler(self.rule_dsl)
            except DSLError as exc:
                logger.error("Failed to compile rule %s: %s", self.name, exc)
                raise DSLError(f"Failed to compile rule {self.name}: {exc}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        # A rule set keeps what it needs of its rules (names, actions, compiled
        # functions) in tables made once by RuleSet._prepare.  The reference reads
        # them off the rules per evaluation, so a change to a rule in place must
        # reach every rule set holding it: each such rule set (weakly held in
        # ``_owners``) is told to prepare again at its next evaluation.
        object.__setattr__(self, name, value)
        owners = self.__dict__.get("_owners")
        if owners:
            for rule_set in list(owners):
                rule_set._snapshot = None

    def evaluate(self, plan: Any, context: Optional[Dict[str, Any]] = None) -> bool:
        """Whether the rule fires; an evaluation error raises RuleEvaluationError."""
        if self._compiled_fn is None:
            return False
        return self._compiled_fn(plan, context)

    # pickling: a rule compiled by its tier's compiler is stored without the
    # compiled function (a closure on the Python tier) and recompiled on load
    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_owners", None)  # (the rule sets holding it: not part of the rule)
        if getattr(state.get("_compiled_fn"), "source", None) == self.rule_dsl:
            state["_compiled_fn"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.__dict__.get("_compiled_fn") is None:
            compiler = type(self)._compiler
            if compiler is not None:
                self._compiled_fn = compiler(self.rule_dsl)

    @property
    def reason_code(self) -> ReasonCode:
        """The rule's :class:`ReasonCode` (UNKNOWN if none)."""
        return self._reason_code or ReasonCode.UNKNOWN

    def get_reason_string(self) -> str:
        """``"<code>: <name>"``, e.g. ``ETH#1001: block_harmful_actions``."""
        return f"{self.reason_code.value}: {self.name}"


@dataclass
class EthicsResult:
    """Outcome of :meth:`RuleSet.evaluate`."""

    action: EthicsAction
    triggered_rules: List[EthicsRule]
    evaluation_time_ms: float
    plan_hash: str
    reasons: List[str]
    facts_hash: str
    triggered_rule_ids: List[str]

    @property
    def reason_codes(self) -> List[str]:
        """Each triggered rule's reason code value."""
        rules = self.triggered_rules
        return list(map(_reason_value, rules)) if rules else []


#: a rule's reason code value (``_value_``: Enum's ``.value`` is a descriptor call, ~10x slower)
_reason_value = operator.attrgetter("reason_code._value_")

_ORDER = {EthicsAction.ALLOW: 0, EthicsAction.WARN: 1, EthicsAction.BLOCK: 2}

# looked up once here rather than per evaluation (RuleSet.evaluate is the hot path of both tiers)
_perf_counter = time.perf_counter
_ALLOW = EthicsAction.ALLOW
_BLOCK = EthicsAction.BLOCK
_INFO = logging.INFO
_info_enabled = eval_logger.isEnabledFor  # asked per evaluation: levels may change at run time
#: logging's own per-level memo of isEnabledFor (cleared in place when levels change); read
#: directly it answers without a Python call; a miss (None) asks isEnabledFor, which fills it
_info_memo: Dict[int, bool] = getattr(eval_logger, "_cache", None) if isinstance(getattr(eval_logger, "_cache", None), dict) else {}


def _info_on() -> bool:
    """``eval_logger.isEnabledFor(INFO)``; ``disabled`` is read first, as isEnabledFor does."""
    on = _info_memo.get(_INFO)
    if on is None:
        return _info_enabled(_INFO)
    return on and not eval_logger.disabled


def _hits(rules: List["EthicsRule"], plan: Any, context: Any) -> Tuple[Tuple[int, ...], Optional[List[Tuple[int, Exception]]]]:
    """``(fired, errors)``: the indices of the rules that fire, in order, and ``None`` or
    ``[(index, exception)]`` for the rules that fail (the program protocol of
    :attr:`EthicsRule._make_program`)."""
    fired: List[int] = []
    errors: Optional[List[Tuple[int, Exception]]] = None
    for i, rule in enumerate(rules):
        try:
            if rule.evaluate(plan, context):
                fired.append(i)
        except Exception as exc:
            if errors is None:
                errors = []
            errors.append((i, exc))
    return tuple(fired), errors


def _sorted_items(d: Dict[Any, Any]) -> List[Tuple[Any, Any]]:
    """Sorted ``(key, value)`` pairs as the reference hashes them.  Deviation:
    keys of mixed types (which the reference cannot sort: it raised) are
    ordered by type name, then repr."""
    try:
        return sorted(d.items())
    except TypeError:
        return sorted(d.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))


def plan_digest(plan: Dict[Any, Any]) -> Tuple[str, str]:
    """``(repr of the sorted plan pairs, plan_hash)``: the reference's plan hash."""
    plan_repr = repr(_sorted_items(plan))
    return plan_repr, hash_rule(plan_repr)


def facts_digest(context: Dict[Any, Any], plan_repr: str) -> str:
    """The reference's facts hash: ``hash_rule(str([("context", pairs), ("plan", pairs)]))``,
    reusing the plan's repr."""
    return hash_rule(f"[('context', {_sorted_items(context)!r}), ('plan', {plan_repr})]")


class _EngineMetrics:
    def __init__(self, enabled: bool) -> None:
        if enabled:
            self.evaluations = _metrics.counter("ethics_evaluations_total", "Ethics evaluations by result", ["result"])
            self.hits = _metrics.counter("ethics_rule_hits_total", "Ethics rule hits", ["rule_name", "action"])
            self.fires = _metrics.counter("ethics_rule_fires_total", "Ethics rule fires", ["rule_id", "action"])
            self.latency = _metrics.histogram("ethics_evaluation_ms", "Ethics evaluation time (ms)", (),
                                              buckets=(0.1, 0.5, 1.0, 2.0, 5.0, 10.0))
            self.ruleset = _metrics.counter("ethics_ruleset_hash", "Ethics rule sets by hash", ["hash"])
        else:
            self.evaluations = self.hits = self.fires = self.latency = self.ruleset = _metrics.NOOP
        self.enabled = enabled
        self._defer_users = 0
        self._pending_fires: "collections.deque[Tuple[Tuple[str, str], ...]]" = collections.deque()
        self._pending_evals: "collections.deque[Tuple[str, float]]" = collections.deque()
        self._children: Dict[Tuple[int, Tuple[str, ...]], Tuple[Any, Any]] = {}
        # Histogram.observe walks the bucket bounds in Python; the same update is one
        # bisect into prometheus_client's own bucket and sum values (when it has them)
        lat = self.latency
        self._lat = None
        if enabled and all(hasattr(lat, a) for a in ("_upper_bounds", "_buckets", "_sum")):
            self._lat = (list(lat._upper_bounds), lat._buckets, lat._sum)

    def _child(self, metric: Any, values: Tuple[str, ...]) -> Any:
        """What counts one into ``metric.labels(*values)``: an object with ``inc(amount)``.

        prometheus_client's ``labels`` costs more than the rest of an evaluation, so the
        child is remembered; and ``Counter.inc`` only checks its argument and forwards to
        the child's value store (``_value``: a locked float, or the multiprocess mmap
        value), so for a plain prometheus_client ``Counter`` child the store itself is
        returned (two Python calls fewer per count, the same update under the same
        lock).  A remembered child is used only while the metric still holds it
        (``remove``/``clear`` drop it)."""
        key = (id(metric), values)
        hit = self._children.get(key)
        if hit is not None and getattr(metric, "_metrics", _NO_CHILDREN).get(values) is hit[0]:
            return hit[1]
        child = metric.labels(*values)
        value = getattr(child, "_value", None)
        target = value if getattr(type(child), "inc", None) is _counter_inc() \
            and callable(getattr(value, "inc", None)) else child
        if len(self._children) >= 4096:  # rule names edited in place: stay bounded
            self._children.clear()
        self._children[key] = (child, target)
        return target

    def fired(self, name: str, action: str, n: int = 1) -> None:
        """One fired (or failed, ``action="block"``) rule: its hits and fires counters."""
        self._child(self.hits, (name, action)).inc(n)
        self._child(self.fires, (name, action)).inc(n)

    def fired_all(self, fires: Tuple[Tuple[str, str], ...]) -> None:
        """:meth:`fired` for each ``(name, action)`` of one evaluation."""
        for name, action in fires:
            self.fired(name, action)

    def evaluated(self, action: str, ms: float) -> None:
        """One evaluation: its result counter and its latency."""
        self._child(self.evaluations, (action,)).inc(1)
        lat = self._lat
        if lat is None:
            self.latency.observe(ms)
            return
        bounds, buckets, total = lat
        total.inc(ms)
        i = _bisect_left(bounds, ms)  # the first bucket with ms <= bound, as observe() picks
        if i < len(buckets) and ms <= bounds[i]:
            buckets[i].inc(1)

    # -- deferred counting (the service) ---------------------------------------------
    #: deferred evaluations kept before an evaluation flushes them itself (bounded memory)
    DEFER_MAX = 4096

    def defer(self, on: bool) -> None:
        """Count from now on into two deques (an append is atomic: any thread may
        evaluate) and move the counts into the metrics at :meth:`flush`, which the
        caller runs before each scrape and periodically, as the service does for its
        request metrics: a count then costs one append instead of three locked
        prometheus_client updates.  Nested: each ``defer(True)`` needs its
        ``defer(False)``; the last one flushes and counts directly again."""
        if not self.enabled:
            return
        if on:
            self._defer_users += 1
            if self._defer_users == 1:
                self.fired_all = self._fired_all_deferred  # type: ignore[method-assign]
                self.evaluated = self._evaluated_deferred  # type: ignore[method-assign]
            return
        if self._defer_users == 0:
            return
        self._defer_users -= 1
        if self._defer_users == 0:
            del self.fired_all, self.evaluated  # the class's direct methods again
            self.flush()

    def _fired_all_deferred(self, fires: Tuple[Tuple[str, str], ...]) -> None:
        self._pending_fires.append(fires)

    def _evaluated_deferred(self, action: str, ms: float) -> None:
        pending = self._pending_evals
        pending.append((action, ms))
        if len(pending) > self.DEFER_MAX:
            self.flush()

    def flush(self) -> None:
        """Move the deferred counts into the metrics (aggregated: one update per series).
        Safe from any thread, alongside evaluations (each item is popped once)."""
        fires: Dict[Tuple[str, str], int] = {}
        pop = self._pending_fires.popleft
        while True:
            try:
                batch = pop()
            except IndexError:
                break
            for key in batch:
                fires[key] = fires.get(key, 0) + 1
        for (name, action), n in fires.items():
            self.fired(name, action, n)
        results: Dict[str, int] = {}
        lat = self._lat
        bounds = lat[0] if lat is not None else ()
        counts = [0] * (len(bounds) + 1)
        total = 0.0
        pop = self._pending_evals.popleft
        while True:
            try:
                action, ms = pop()
            except IndexError:
                break
            results[action] = results.get(action, 0) + 1
            if lat is None:
                self.latency.observe(ms)
                continue
            total += ms
            i = _bisect_left(bounds, ms)
            counts[i if i < len(bounds) and ms <= bounds[i] else len(bounds)] += 1
        for action, n in results.items():
            self._child(self.evaluations, (action,)).inc(n)
        if lat is not None and results:
            _, buckets, total_value = lat
            total_value.inc(total)
            for i, k in enumerate(counts[:len(buckets)]):
                if k:
                    buckets[i].inc(k)


def _counter_inc() -> Any:
    """prometheus_client's ``Counter.inc`` (imported when a metric is first counted, not at import)."""
    try:
        from prometheus_client import Counter
    except ImportError:
        return None
    return Counter.inc


_NO_CHILDREN: Dict[Any, Any] = {}


class RuleSet:
    """RuleSet(rules, *, metrics=None)

    Rules in evaluation order (priority high to low, then name) and the rule
    set's ``ruleset_hash``.  Deviation: the caller's list is copied, not
    sorted in place.
    """

    def __init__(self, rules: List[EthicsRule], *, metrics: Optional[bool] = None) -> None:
        rules = list(rules)
        for r in rules:
            if not isinstance(r, EthicsRule):
                raise TypeError(f"rules must be EthicsRule objects, got {type(r).__name__}")
        self.rules = sorted(rules, key=lambda r: (-r.priority.value, r.name))
        self._prepare()
        key = sorted((r.name, r.rule_dsl, r.action.value, r.priority.value) for r in self.rules)
        self.ruleset_hash = hash_rule(str(key))
        self._metrics = _EngineMetrics(_metrics.resolve_metrics(metrics))
        self._metrics.ruleset.labels(hash=self.ruleset_hash).inc()
        logger.info("RuleSet initialized with %d rules, hash=%s", len(self.rules), self.ruleset_hash[:8])

    def __reduce__(self) -> Tuple[Any, ...]:
        # the prepared tables and metric handles are rebuilt, not pickled
        return (_restore_ruleset, (type(self), self.rules, self._metrics.enabled))

    def _prepare(self) -> None:
        """Per rule, once: (rule, severity, reason when fired, reason on error).
        Rebuilt if someone edits ``rules`` in place, or a rule in it (see
        :meth:`EthicsRule.__setattr__`)."""
        snapshot = list(self.rules)
        for r in snapshot:  # each rule tells this rule set when it changes
            owners = r.__dict__.get("_owners")
            if owners is None:
                owners = r.__dict__["_owners"] = weakref.WeakSet()
            owners.add(self)
        cls = type(self.rules[0]) if self.rules else EthicsRule
        self._digests = (cls._plan_digest or plan_digest, cls._facts_digest or facts_digest)
        make = cls._make_program
        rules = list(snapshot)  # the program's own list
        self._program = make(rules) if make is not None else functools.partial(_hits, rules)
        self._prepared = [(r, _ORDER[r.action], f"{r.action.value}: {r.name}", f"block: {r.name} (evaluation_error)")
                          for r in snapshot]
        self._outcomes: Dict[Tuple[int, ...], Tuple[Any, ...]] = {}
        # every rule a tier's own class, its evaluate and compiled function those of
        # its DSL text: evaluations are then pure (see _memo_token)
        self._pure = all(type(r).__dict__.get("_dsl_tier") is True and "evaluate" not in r.__dict__
                         and getattr(r.__dict__.get("_compiled_fn"), "source", None) == r.rule_dsl
                         for r in snapshot)
        self._snapshot: Optional[List[EthicsRule]] = snapshot  # compared with ``rules`` per evaluation

    #: most distinct sets of fired rules remembered (see :meth:`_outcome`)
    OUTCOMES_MAX = 1024

    def _outcome(self, fired: Tuple[int, ...]) -> Tuple[Any, ...]:
        """What a set of fired rules (no failures) makes of a result: ``(action,
        triggered, reasons, rule ids, (name, action) per fired rule)``, as tuples.
        Remembered per rule set (a plan stream fires few distinct sets), at most
        :attr:`OUTCOMES_MAX`; rebuilt with the rest of :meth:`_prepare`.  Called when
        ``_outcomes`` does not have it yet."""
        level, action = 0, _ALLOW
        prepared = self._prepared
        triggered = []
        for i in fired:
            rule, rule_level, _reason, _error = prepared[i]
            triggered.append(rule)
            if rule_level > level:
                level, action = rule_level, rule.action
        out = (action, tuple(triggered),
               tuple(prepared[i][2] for i in fired) or ("allow: no_rules_triggered",),
               tuple(r.name for r in triggered),
               tuple((r.name, r.action.value) for r in triggered))
        if len(self._outcomes) >= self.OUTCOMES_MAX:
            self._outcomes.clear()
        self._outcomes[fired] = out
        return out

    def get_rules_by_tag(self, tag: str) -> List[EthicsRule]:
        """Rules carrying ``tag``, in rule order."""
        return [r for r in self.rules if tag in r.tags]

    def get_rules_by_action(self, action: EthicsAction) -> List[EthicsRule]:
        """Rules with ``action``, in rule order."""
        return [r for r in self.rules if r.action == action]

    def get_rules_by_priority(self, priority: Priority) -> List[EthicsRule]:
        """Rules with ``priority``, in rule order."""
        return [r for r in self.rules if r.priority == priority]

    def _blocked(self, start: float, plan_hash: str, reason: str) -> EthicsResult:
        ms = (_perf_counter() - start) * 1000.0
        if self._metrics.enabled:
            self._metrics.evaluated("block", ms)
        return EthicsResult(EthicsAction.BLOCK, [], ms, plan_hash, [reason], "error", [])

    def evaluate(self, plan: Any, context: Optional[Dict[str, Any]] = None) -> EthicsResult:
        """Evaluate every rule (no short-circuit) and combine: BLOCK > WARN > ALLOW.

        Fail closed: a rule whose evaluation raises fires as BLOCK with reason
        ``"block: <name> (evaluation_error)"``.  Deviation: a plan that is not
        a dict, or a context that is not a dict, gives a BLOCK result with a
        reason instead of an exception.
        """
        start = _perf_counter()
        context = context or {}
        if not isinstance(plan, dict):
            return self._blocked(start, hash_rule(repr(plan)),
                                 f"block: invalid_plan (plan must be a dict, got {type(plan).__name__})")
        plan_digest, facts_digest = self._digests  # one pair per call, even if _prepare() runs below
        plan_token, plan_hash = plan_digest(plan)
        if not isinstance(context, dict):
            return self._blocked(start, plan_hash,
                                 f"block: invalid_context (context must be a dict, got {type(context).__name__})")
        m = self._metrics
        try:
            if self.rules != self._snapshot:
                self._prepare()
            fired, errors = self._program(plan, context)
            if errors is None:
                action, triggered, reasons, ids, fires = self._outcomes.get(fired) or self._outcome(fired)
                if fires and m.enabled:
                    m.fired_all(fires)
            else:
                action, triggered, reasons, ids = self._merge(fired, errors)
            facts_hash = facts_digest(context, plan_token)
        except Exception as exc:  # fail closed on anything unexpected
            logger.error("Ethics evaluation error: %s", exc)
            return self._blocked(start, plan_hash, f"block: evaluation_error ({exc})")
        ms = self._done(start, action, len(triggered))
        # EthicsResult(...) field by field: the same object as its __init__ makes (a
        # dataclass's generated __init__ only sets the fields in order), without a
        # type call and a Python frame (the result costs as much as a cheap rule)
        result = _new_result(EthicsResult)
        result.action = action
        result.triggered_rules = list(triggered)
        result.evaluation_time_ms = ms
        result.plan_hash = plan_hash
        result.reasons = list(reasons)
        result.facts_hash = facts_hash
        result.triggered_rule_ids = list(ids)
        return result

    def _done(self, start: float, action: EthicsAction, triggered: int) -> float:
        """The end of an evaluation that began at ``start``: its time (ms), counted in the
        metrics and logged (the per-evaluation INFO line)."""
        ms = (_perf_counter() - start) * 1000.0
        m = self._metrics
        if m.enabled:
            m.evaluated(action._value_, ms)
        if _info_memo.get(_INFO) is not False and _info_on():
            eval_logger.info("Ethics evaluation: %s (%.2fms, %d rules triggered)", action._value_, ms, triggered)
        return ms

    def _memo_token(self) -> Any:
        """An object that stands for this rule set's current tables when every rule is a
        plain DSL rule of a tier (see :meth:`_prepare`): its results are then a function
        of the plan and the context alone, and a caller may remember them (the service
        does, per request body) and replay them while the token stays the same
        (:meth:`EthicsEngine._replayer`).  None when some rule is not a plain DSL rule."""
        if self.rules != self._snapshot:
            self._prepare()
        return self._program if self._pure else None

    def _merge(self, fired: Tuple[int, ...], errors: List[Tuple[int, Exception]]) -> Tuple[Any, ...]:
        """:meth:`_outcome` when rules failed: each failed rule fires as BLOCK with its
        error reason, in rule order with the fired ones; the errors are logged."""
        m = self._metrics
        prepared = self._prepared
        level, action = 0, _ALLOW
        triggered: List[EthicsRule] = []
        reasons: List[str] = []
        fires: List[Tuple[str, str]] = []
        events: List[Tuple[int, Any]] = [(i, True) for i in fired]
        events.extend(errors)
        events.sort(key=_first)
        for i, outcome in events:
            rule, rule_level, fired_reason, error_reason = prepared[i]
            triggered.append(rule)
            if outcome is True:
                reasons.append(fired_reason)
                if rule_level > level:
                    level, action = rule_level, rule.action
                fires.append((rule.name, rule.action.value))
                continue
            logger.error("Error evaluating rule %s: %s", rule.name, outcome)
            reasons.append(error_reason)
            level, action = 2, _BLOCK
            fires.append((rule.name, "block"))
        if m.enabled:
            m.fired_all(tuple(fires))
        return action, triggered, reasons or ["allow: no_rules_triggered"], [r.name for r in triggered]


_first = operator.itemgetter(0)
_new_result = object.__new__


def _restore_ruleset(cls: type, rules: List[EthicsRule], metrics: bool) -> "RuleSet":
    """Unpickle a :class:`RuleSet` (metrics follow the default where prometheus_client is missing)."""
    return cls(rules, metrics=bool(metrics) if (not metrics or _metrics.PROMETHEUS_AVAILABLE) else None)


#: an audit entry's keys, in order (EthicsEngine._record)
_AUDIT_KEYS = ("timestamp", "plan_hash", "facts_hash", "action", "triggered_rules", "reason_codes",
               "evaluation_time_ms", "reasons", "ruleset_hash")


class EthicsEngine:
    """EthicsEngine(rule_set): evaluates plans and keeps an audit trail of the last 1000."""

    HISTORY = 1000

    def __init__(self, rule_set: RuleSet) -> None:
        if not isinstance(rule_set, RuleSet):
            raise TypeError(f"rule_set must be a RuleSet, got {type(rule_set).__name__}")
        self.rule_set = rule_set
        self.evaluation_history: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        logger.info("EthicsEngine initialized")

    def evaluate_plan(self, plan: Any, context: Optional[Dict[str, Any]] = None) -> EthicsResult:
        """Evaluate and record an audit entry (thread-safe)."""
        return self._evaluate_plan_entry(plan, context)[0]

    def _evaluate_plan_entry(self, plan: Any, context: Optional[Dict[str, Any]] = None) -> Tuple[EthicsResult, Dict[str, Any]]:
        """:meth:`evaluate_plan`, also returning the audit entry it recorded (the service
        answers from it: the reason codes are built once)."""
        result = self.rule_set.evaluate(plan, context)
        return result, self._record(result.plan_hash, result.facts_hash, result.action._value_,
                                    result.triggered_rule_ids, result.reason_codes, result.evaluation_time_ms,
                                    result.reasons)

    def _record(self, plan_hash: str, facts_hash: str, action: str, ids: List[str], codes: List[str], ms: float,
                reasons: List[str]) -> Dict[str, Any]:
        """Append the audit entry of an evaluation (thread-safe) and return it."""
        entry = {
            "timestamp": time.time(),
            "plan_hash": plan_hash,
            "facts_hash": facts_hash,
            "action": action,
            "triggered_rules": ids,
            "reason_codes": codes,
            "evaluation_time_ms": ms,
            "reasons": reasons,
            "ruleset_hash": self.rule_set.ruleset_hash,
        }
        with self._lock:
            hist = self.evaluation_history
            hist.append(entry)
            if len(hist) > self.HISTORY:
                del hist[: len(hist) - self.HISTORY]
        return entry

    @staticmethod
    def _replayer(token: Any, result: EthicsResult, codes: List[str]) -> Callable[["EthicsEngine"], Optional[float]]:
        """A function of an engine that counts and audits again, in that engine, the
        evaluation ``result`` (whose audit entry had the reason codes ``codes``) made
        under ``token`` (``rule_set._memo_token()``), as its :meth:`evaluate_plan` would:
        the metrics of its fired rules and of the evaluation, the INFO line, the audit
        entry (lists of its own) and the time all that took, which it returns (ms); None,
        recording nothing, when the engine's rule set is another or has changed since:
        the caller then evaluates.  The service's memo of ``/ethics/evaluate`` calls it
        per repeat.

        One closure over what the evaluation made, rather than methods taking it as
        arguments: a repeat then costs about half as much (measured: the remembered
        answer is mostly this)."""
        action = result.action
        value = action._value_
        n_triggered = len(result.triggered_rules)
        fires = tuple((r.name, r.action._value_) for r in result.triggered_rules)
        plan_hash, facts_hash = result.plan_hash, result.facts_hash
        ids, reasons, codes_t = tuple(result.triggered_rule_ids), tuple(result.reasons), tuple(codes)
        fixed = dict.fromkeys(_AUDIT_KEYS)
        fixed.update(plan_hash=plan_hash, facts_hash=facts_hash, action=value)

        def replay(engine: "EthicsEngine") -> Optional[float]:
            start = _perf_counter()
            rs = engine.rule_set
            if rs._program is not token or rs.rules != rs._snapshot:
                return None
            # RuleSet.evaluate's counting and _done, in their order
            m = rs._metrics
            if fires and m.enabled:
                m.fired_all(fires)
            ms = (_perf_counter() - start) * 1000.0
            if m.enabled:
                m.evaluated(value, ms)
            if _info_memo.get(_INFO) is not False and _info_on():
                eval_logger.info("Ethics evaluation: %s (%.2fms, %d rules triggered)", value, ms, n_triggered)
            # _record's entry, from a copy of one with the fixed values in place (the keys
            # in the same order; a copy of a dict is a block copy, its display is 9 inserts)
            entry = fixed.copy()
            entry["timestamp"] = time.time()
            entry["triggered_rules"] = list(ids)
            entry["reason_codes"] = list(codes_t)
            entry["evaluation_time_ms"] = ms
            entry["reasons"] = list(reasons)
            entry["ruleset_hash"] = rs.ruleset_hash
            with engine._lock:
                hist = engine.evaluation_history
                hist.append(entry)
                over = len(hist) - engine.HISTORY
                if over > 0:
                    if over == 1:
                        hist.pop(0)  # (the usual case: cheaper than a slice's deletion)
                    else:
                        del hist[:over]
            return ms

        return replay

    def is_plan_allowed(self, plan: Any, context: Optional[Dict[str, Any]] = None) -> bool:
        """True unless the evaluation blocks."""
        return self.evaluate_plan(plan, context).action != EthicsAction.BLOCK

    def get_stats(self) -> Dict[str, Any]:
        """Rule counts by action and priority, history size, the last 10 audit entries."""
        rules = self.rule_set.rules
        with self._lock:
            hist = list(self.evaluation_history[-10:])
            size = len(self.evaluation_history)
        return {
            "total_rules": len(rules),
            "rules_by_action": {a.value: sum(r.action == a for r in rules) for a in EthicsAction},
            "rules_by_priority": {p.name: sum(r.priority == p for r in rules) for p in Priority},
            "evaluation_history_size": size,
            "recent_evaluations": hist,
        }


# --- loader ----------------------------------------------------------------------------

class RuleLoadError(Exception):
    """A rule file could not be loaded (every bad entry is listed)."""


FALLBACK_RULES: Tuple[Tuple[str, str, str, str, str, Tuple[str, ...]], ...] = (
    ("fallback_block_harmful", "Fallback rule to block explicitly harmful actions",
     'or(equals(action, "delete_user_data"), equals(action, "access_private_info"))', "block", "critical",
     ("security", "fallback")),
    ("fallback_warn_external", "Fallback rule to warn on external calls",
     'equals(action, "external_call")', "warn", "medium", ("audit", "fallback")),
)

_REQUIRED = ("name", "description", "rule_dsl", "action", "priority")


def fallback_rules(rule_cls: type) -> List[EthicsRule]:
    """The two built-in fallback rules."""
    return [
        rule_cls(n, d, dsl, EthicsAction(a), Priority[p.upper()], set(t))
        for n, d, dsl, a, p, t in FALLBACK_RULES
    ]


def parse_rule_entry(entry: Any, rule_cls: type) -> EthicsRule:
    """One YAML entry -> rule.  Deviations: ``tags`` must be a list of strings
    (the reference turned ``"abc"`` into ``{"a","b","c"}``); non-str fields
    are reported instead of surfacing as AttributeError."""
    if not isinstance(entry, dict):
        raise ValueError(f"entry must be a mapping, got {type(entry).__name__}")
    for key in _REQUIRED:
        if key not in entry:
            raise ValueError(f"Missing required field: {key}")
    for key in ("name", "description", "rule_dsl", "action", "priority"):
        if not isinstance(entry[key], str):
            raise ValueError(f"{key} must be a string, got {type(entry[key]).__name__}")
    action = entry["action"].lower()
    if action not in ("allow", "warn", "block"):
        raise ValueError(f"Invalid action: {action}")
    priority = entry["priority"].lower()
    if priority not in ("low", "medium", "high", "critical"):
        raise ValueError(f"Invalid priority: {priority}")
    tags = entry.get("tags", [])
    if tags is None or isinstance(tags, str) or not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"tags must be a list of strings, got {tags!r}")
    return rule_cls(entry["name"], entry["description"], entry["rule_dsl"], EthicsAction(action),
                    Priority[priority.upper()], set(tags))


def load_rules(config_path: Optional[str], rule_cls: type, strict: bool = True,
               metrics: Optional[bool] = None) -> RuleSet:
    """Load a YAML rule file into a :class:`RuleSet` (see ``load_ethics_rules``)."""
    path = config_path if config_path is not None else os.path.join(RULES_DIR, "defaults.yaml")
    try:
        import yaml
    except ImportError as exc:
        raise RuleLoadError(f"Rule loading failed: PyYAML is needed (pip install 'lukhas_fast[yaml]'): {exc}") from None
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        if strict:
            raise RuleLoadError(f"Rule file not found: {path}") from None
        logger.error("Rule file not found: %s; using fallback rules", path)
        return RuleSet(fallback_rules(rule_cls), metrics=metrics)
    except Exception as exc:
        raise RuleLoadError(f"Rule loading failed: {exc}") from None
    if not data or not isinstance(data, dict) or "rules" not in data:
        raise RuleLoadError(f"Rule loading failed: Invalid config structure in {path}")
    entries = data["rules"]
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise RuleLoadError(f"Rule loading failed: 'rules' must be a list in {path}")
    rules: List[EthicsRule] = []
    errors: List[str] = []
    for i, entry in enumerate(entries):
        try:
            rules.append(parse_rule_entry(entry, rule_cls))
        except (ValueError, TypeError, DSLError) as exc:
            name = entry.get("name", "unknown") if isinstance(entry, dict) else "unknown"
            errors.append(f"entry {i} ({name}): {exc}")
            if not strict:
                logger.error("Failed to parse rule %s: %s", name, exc)
    if strict and errors:
        raise RuleLoadError(f"{len(errors)} invalid rule entr{'y' if len(errors) == 1 else 'ies'} in {path} "
                            f"(nothing loaded):\n  " + "\n  ".join(errors))
    if not rules:
        if strict:
            raise RuleLoadError(f"No rules in {path}")
        logger.warning("No valid rules in %s; using fallback rules", path)
        rules = fallback_rules(rule_cls)
    return RuleSet(rules, metrics=metrics)


class EngineCache:
    """Deviation: one engine per config path (the reference ignored the path
    of every call after the first)."""

    def __init__(self) -> None:
        self._engines: Dict[str, EthicsEngine] = {}
        self._lock = threading.Lock()

    def get(self, config_path: Optional[str], rule_cls: type) -> EthicsEngine:
        key = os.path.abspath(config_path) if config_path is not None else os.path.join(RULES_DIR, "defaults.yaml")
        with self._lock:
            eng = self._engines.get(key)
            if eng is None:
                eng = EthicsEngine(load_rules(config_path, rule_cls))
                self._engines[key] = eng
            return eng
