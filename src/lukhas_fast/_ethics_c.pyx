"""C tier of the ethics family: rules compiled once into a flat program run by
a small Cython evaluator.

A rule's syntax tree (parsed by :mod:`lukhas_fast._ethics_dsl`, never
``eval``/``exec``) becomes an array of nodes in prefix order; each node
records where its subtree ends, so ``and``/``or`` short-circuit by jumping
over the remaining children (no temporary lists).  Paths are pre-split;
literal arguments are pre-processed (``contains`` needles lowered, numeric
comparison operands converted to float); the hot predicates (``equals``,
``contains``, ``greater_than``, ``less_than``, ``is_empty``, ``is_present``)
run inline, the others call the shared Python predicate.  Results equal the
pure-Python tier's, including the fail-closed error behaviour.
"""

cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject
from libc.stdlib cimport malloc, free

from hashlib import sha256 as _sha256

from lukhas_fast import _ethics_dsl as dsl
from lukhas_fast import _ethics_engine as eng
from lukhas_fast._ethics_dsl import (PREDICATES, DSLError, RuleEvaluationError, canonical_domain,
                                     hash_rule, parse_bytes, parse_seconds)
from lukhas_fast._ethics_engine import (EthicsAction, EthicsEngine, EthicsResult, Priority, ReasonCode,
                                        RuleLoadError, RuleSet)

__all__ = [
    "DSLError", "RuleEvaluationError", "PREDICATES", "canonical_domain", "parse_bytes", "parse_seconds",
    "compile_rule", "hash_rule", "EthicsAction", "Priority", "ReasonCode", "EthicsRule", "EthicsResult",
    "RuleSet", "EthicsEngine", "RuleLoadError", "load_ethics_rules", "get_ethics_engine", "backend_details",
]


def backend_details():
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"evaluator": "Cython flat-program evaluator (pre-split paths, inline hot predicates)"}


cdef enum:
    OP_AND = 0
    OP_OR = 1
    OP_NOT = 2
    OP_PRED = 3

cdef enum:
    P_GENERIC = 0
    P_EQUALS = 1
    P_CONTAINS = 2
    P_GT = 3
    P_LT = 4
    P_IS_EMPTY = 5
    P_IS_PRESENT = 6
    P_BYTES_LTE = 7
    P_SECONDS_LTE = 8

cdef enum:
    A_LIT = 0
    A_PLAN = 1
    A_CTX = 2

cdef dict _PRED_CODES = {"equals": P_EQUALS, "contains": P_CONTAINS, "greater_than": P_GT,
                         "less_than": P_LT, "is_empty": P_IS_EMPTY, "is_present": P_IS_PRESENT,
                         "param_bytes_lte": P_BYTES_LTE, "param_seconds_lte": P_SECONDS_LTE}
cdef dict _EMPTY = {}


cdef inline object _resolve(tuple parts, object cur):
    cdef PyObject *v
    for part in parts:
        if type(cur) is dict:
            v = PyDict_GetItem(cur, part)
            if v == NULL:
                return None
            cur = <object>v
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


cdef inline bint _is_empty(object v) except -1:
    if v is None:
        return True
    t = type(v)
    if t is str or t is list or t is dict or t is tuple or t is set or isinstance(v, (str, list, dict, tuple, set)):
        return len(v) == 0
    return False


cdef class _Memo:
    """Per-evaluation cache of ``str(haystack).lower()`` for non-str haystacks,
    keyed by identity (the object is held, so its id cannot be reused).  It
    lives for one call only: plans are not mutated while rules evaluate."""
    cdef dict texts

    def __cinit__(self):
        self.texts = {}

    cdef object lowered(self, object hay):
        cdef PyObject *hit = PyDict_GetItem(self.texts, id(hay))
        if hit != NULL and (<tuple>hit)[0] is hay:
            return (<tuple>hit)[1]
        text = str(hay).lower()
        self.texts[id(hay)] = (hay, text)
        return text


cdef class _Pred:
    """One predicate node: code, shared function, argument kinds and values."""
    cdef int code
    cdef object fn
    cdef int nargs
    cdef int kinds[8]
    cdef tuple vals
    cdef object lowered      # contains: the literal needle, lowered
    cdef bint has_lowered
    cdef double num          # greater_than/less_than: the literal right operand as float
    cdef bint has_num
    cdef object limit        # param_*_lte: the literal limit, parsed (None: unparsable)
    cdef bint has_limit

    cdef inline object arg(self, int j, object plan, object ctx):
        cdef int k = self.kinds[j]
        if k == A_LIT:
            return self.vals[j]
        if k == A_PLAN:
            return _resolve(<tuple>self.vals[j], plan)
        return _resolve(<tuple>self.vals[j], ctx)

    cdef int run(self, object plan, object ctx, _Memo memo) except -1:
        cdef int code = self.code
        cdef double x, y
        if code == P_EQUALS:
            return 1 if (self.arg(0, plan, ctx) == self.arg(1, plan, ctx)) else 0
        if code == P_CONTAINS:
            hay = self.arg(0, plan, ctx)
            if hay is None:
                return 0
            needle = self.lowered if self.has_lowered else self.arg(1, plan, ctx).lower()
            if type(hay) is str:
                text = (<str>hay).lower()
            elif memo is not None:
                text = memo.lowered(hay)
            else:
                text = str(hay).lower()
            return 1 if needle in text else 0
        if code == P_GT or code == P_LT:
            left = self.arg(0, plan, ctx)
            if left is None:
                return 0
            try:
                x = float(left)
                y = self.num if self.has_num else float(self.arg(1, plan, ctx))
            except (TypeError, ValueError):
                return 0
            if code == P_GT:
                return 1 if x > y else 0
            return 1 if x < y else 0
        if code == P_IS_EMPTY:
            return 1 if _is_empty(self.arg(0, plan, ctx)) else 0
        if code == P_IS_PRESENT:
            return 0 if _is_empty(self.arg(0, plan, ctx)) else 1
        if (code == P_BYTES_LTE or code == P_SECONDS_LTE) and self.has_limit:
            value = self.arg(0, plan, ctx)
            if value is None:
                return 1  # a missing value passes, as in the SDK
            if self.limit is None:
                return 0  # unparsable limit: fails closed
            if type(value) is int and 0 <= value < 9007199254740992:
                # str(int) parses to the same number (exact below 2**53)
                return 1 if value <= self.limit else 0
            try:
                parsed = (dsl.parse_bytes if code == P_BYTES_LTE else dsl.parse_seconds)(str(value))
            except (ValueError, TypeError):
                return 0
            return 1 if parsed <= self.limit else 0
        args = [self.arg(j, plan, ctx) for j in range(self.nargs)]
        return 1 if self.fn(*args) else 0


cdef _Pred _make_pred(str name, list args):
    cdef _Pred p = _Pred.__new__(_Pred)
    cdef int j
    if len(args) > 8:
        raise DSLError(f"Failed to compile rule: too many arguments for {name} (at most 8)")
    p.code = _PRED_CODES.get(name, P_GENERIC)
    p.fn = PREDICATES[name]
    p.nargs = len(args)
    vals = []
    for j, a in enumerate(args):
        if a[0] == "lit":
            p.kinds[j] = A_LIT
            vals.append(a[1])
        else:
            p.kinds[j] = A_CTX if a[1] else A_PLAN
            vals.append(a[2])
    p.vals = tuple(vals)
    if p.code == P_CONTAINS and args[1][0] == "lit":
        p.lowered = args[1][1].lower()  # the parser guarantees a str
        p.has_lowered = True
    if (p.code == P_GT or p.code == P_LT) and args[1][0] == "lit" and type(args[1][1]) in (int, float):
        p.num = float(args[1][1])
        p.has_num = True
    if (p.code == P_BYTES_LTE or p.code == P_SECONDS_LTE) and args[1][0] == "lit":
        try:
            p.limit = (dsl.parse_bytes if p.code == P_BYTES_LTE else dsl.parse_seconds)(args[1][1])
        except (ValueError, TypeError):
            p.limit = None
        p.has_limit = True
    return p


cdef class CompiledRule:
    """A compiled rule: ``rule(plan, context=None) -> bool``.

    Evaluation errors raise :class:`RuleEvaluationError` (the engine turns
    them into a BLOCK with reason ``evaluation_error``)."""

    cdef int n
    cdef int *ops
    cdef int *ends
    cdef list payload
    cdef bint memoize          # several contains() on non-literal haystacks: share str() work
    cdef readonly str source

    def __cinit__(self):
        self.ops = NULL
        self.ends = NULL

    def __dealloc__(self):
        free(self.ops)
        free(self.ends)

    cdef int _load(self, object tree) except -1:
        ops, ends, payload = [], [], []
        _flatten(tree, ops, ends, payload)
        self.n = len(ops)
        self.ops = <int *>malloc(self.n * sizeof(int))
        self.ends = <int *>malloc(self.n * sizeof(int))
        if self.ops == NULL or self.ends == NULL:
            raise MemoryError()
        for i in range(self.n):
            self.ops[i] = ops[i]
            self.ends[i] = ends[i]
        self.payload = payload
        self.memoize = sum(1 for p in payload if p is not None and (<_Pred>p).code == P_CONTAINS
                           and (<_Pred>p).kinds[0] != A_LIT) >= 2
        return 0

    cdef int _ev(self, int i, object plan, object ctx, _Memo memo) except -1:
        cdef int op = self.ops[i]
        cdef int j, end
        if op == OP_PRED:
            return (<_Pred>self.payload[i]).run(plan, ctx, memo)
        if op == OP_NOT:
            return 0 if self._ev(i + 1, plan, ctx, memo) else 1
        j = i + 1
        end = self.ends[i]
        if op == OP_AND:
            while j < end:
                if not self._ev(j, plan, ctx, memo):
                    return 0
                j = self.ends[j]
            return 1
        while j < end:  # OP_OR
            if self._ev(j, plan, ctx, memo):
                return 1
            j = self.ends[j]
        return 0

    cdef object _call(self, object plan, object context):
        ctx = context if context else _EMPTY
        memo = _Memo.__new__(_Memo) if self.memoize else None
        try:
            return self._ev(0, plan, ctx, memo) == 1
        except Exception as exc:
            raise RuleEvaluationError(f"{type(exc).__name__}: {exc}") from exc

    def __call__(self, plan, context=None):
        return self._call(plan, context)

    def __reduce__(self):
        return (compile_rule, (self.source,))

    def __repr__(self):
        return f"CompiledRule({self.source!r}, nodes={self.n})"


def _flatten(node, list ops, list ends, list payload):
    idx = len(ops)
    kind = node[0]
    ops.append({"and": OP_AND, "or": OP_OR, "not": OP_NOT}.get(kind, OP_PRED))
    ends.append(0)
    if kind == "pred":
        payload.append(_make_pred(node[1], node[2]))
    else:
        payload.append(None)
        for child in node[1]:
            _flatten(child, ops, ends, payload)
    ends[idx] = len(ops)


def compile_rule(rule_str):
    """Compile DSL text into a callable ``rule(plan, context=None) -> bool``.

    Compile problems raise :class:`DSLError`; evaluation errors raise
    :class:`RuleEvaluationError` (fail closed in the engine)."""
    cdef CompiledRule r = CompiledRule.__new__(CompiledRule)
    r._load(dsl.parse_rule(rule_str))
    r.source = rule_str
    return r


_BASE_EVALUATE = eng.EthicsRule.evaluate


def _rule_evaluate(self, plan, context=None):
    """Whether the rule fires; an evaluation error raises RuleEvaluationError."""
    fn = self._compiled_fn
    if fn is None:
        return False
    if type(fn) is CompiledRule:
        return (<CompiledRule>fn)._call(plan, context)
    return fn(plan, context)


def evaluate_many(list rules, plan, context):
    """Evaluate rules in order on one plan: ``[(index, True | exception)]`` for
    the rules that fired or raised.  Compiled rules share one :class:`_Memo`,
    so a haystack such as ``params`` is stringified once per plan, not once
    per ``contains``.  Rules that override ``evaluate`` are called as such."""
    cdef _Memo memo = _Memo.__new__(_Memo)
    cdef CompiledRule cr
    cdef Py_ssize_t i
    ctx = context if context else _EMPTY
    out = []
    for i in range(len(rules)):
        rule = rules[i]
        fn = rule._compiled_fn
        try:
            ev = type(rule).evaluate
            if type(fn) is CompiledRule and (ev is _rule_evaluate or ev is _BASE_EVALUATE):
                cr = <CompiledRule>fn
                try:
                    fired = cr._ev(0, plan, ctx, memo) == 1
                except Exception as exc:
                    raise RuleEvaluationError(f"{type(exc).__name__}: {exc}") from exc
            else:
                fired = bool(rule.evaluate(plan, context))
            if fired:
                out.append((i, True))
        except Exception as exc:
            out.append((i, exc))
    return out


cdef str _items_repr(object d):
    """``repr(sorted(d.items()))`` built directly: keys sorted alone, one join.
    Only for exact dicts with str keys (where the two orders are the same);
    anything else takes the engine's path.  Works on a copy, as
    ``sorted(d.items())`` does, in case a value's ``__repr__`` edits ``d``."""
    cdef PyObject *v
    if type(d) is not dict:
        return repr(eng._sorted_items(d))
    d = (<dict>d).copy()
    keys = list(<dict>d)
    for k in keys:
        if type(k) is not str:
            return repr(eng._sorted_items(d))
    if not keys:
        return "[]"
    keys.sort()
    pieces = []
    for k in keys:
        v = PyDict_GetItem(d, k)
        if v == NULL:  # cannot happen: d is our private copy and the keys are exact str
            raise RuntimeError("plan changed while hashing")
        pieces.append(f"({k!r}, {<object>v!r})")
    return "[" + ", ".join(pieces) + "]"


def plan_digest(plan):
    """``(UTF-8 repr of the sorted plan pairs, plan_hash)``; same hash as
    :func:`lukhas_fast._ethics_engine.plan_digest`."""
    data = _items_repr(plan).encode("utf-8")
    return data, _sha256(data).hexdigest()[:16]


def facts_digest(context, bytes plan_data):
    """The facts hash from the context and :func:`plan_digest`'s bytes; same
    hash as :func:`lukhas_fast._ethics_engine.facts_digest`."""
    data = b"[('context', " + _items_repr(context).encode("utf-8") + b"), ('plan', " + plan_data + b")]"
    return _sha256(data).hexdigest()[:16]


class EthicsRule(eng.EthicsRule):
    __doc__ = eng.EthicsRule.__doc__
    _compiler = staticmethod(compile_rule)
    _evaluate_many = staticmethod(evaluate_many)
    _plan_digest = staticmethod(plan_digest)
    _facts_digest = staticmethod(facts_digest)
    evaluate = _rule_evaluate


_engines = eng.EngineCache()


def load_ethics_rules(config_path=None, *, strict=True, metrics=None):
    """Load a YAML rule file (default: the bundled ``defaults.yaml``) into a :class:`RuleSet`.

    Deviation (fail loud): with ``strict=True`` (default) every bad entry is
    reported at once in one :class:`RuleLoadError` and nothing is loaded; a
    missing file or a file without rules is an error too.  ``strict=False``
    keeps the reference's skip-and-log behaviour (and its fallback rules).
    """
    return eng.load_rules(config_path, EthicsRule, strict, metrics)


def get_ethics_engine(config_path=None):
    """The engine for ``config_path`` (built once per path; default: bundled rules)."""
    return _engines.get(config_path, EthicsRule)
