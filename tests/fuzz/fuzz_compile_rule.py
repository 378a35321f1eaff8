"""Fuzz target: ethics ``compile_rule`` + evaluation, C tier against the pure-Python oracle.

The input is text: the first line is the rule; each following line that is
JSON is a case, ``[plan, context]`` or a bare plan (without any, a fixed set of
plans and contexts is used).  Both tiers must reject the rule with the same
``DSLError`` message, or both compile it and give the same outcome on every
case (the same bool, or both ``RuleEvaluationError``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

with harness.instrumented():
    from lukhas_fast._backend import tier_modules
    from lukhas_fast._ethics_dsl import DSLError, RuleEvaluationError

_tiers = tier_modules("ethics")
C, PY = _tiers["c"], _tiers["python"]

DEFAULT_CASES = [
    ({}, {}),
    ({"action": "read", "params": {"x": "hack", "data": "sensitive", "url": "https://api.openai.com/x", "n": 500}}, {}),
    ({"action": "delete", "params": {"x": 3, "size": "2KB", "timeout": "10s"}, "safety_tags": ["pii", "gdpr"]},
     {"user_id": "u1"}),
    ({"params": {"x": "9" * 400, "size": "9" * 400, "url": "http://co.uk"}, "safety_tags": {"pii": {"confidence": 0.9}}},
     {"x": None}),
    ({"action": None, "params": None, "safety_tags": "pii, financial"}, {"user_id": ""}),
]


def _cases(lines):
    out = []
    for line in lines:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, list) and len(obj) == 2:
            out.append((obj[0], obj[1]))
        else:
            out.append((obj, {}))
    return out or DEFAULT_CASES


def _compile(mod, text):
    try:
        return ("ok", mod.compile_rule(text))
    except DSLError as exc:
        return ("DSLError", str(exc))
    except RecursionError:
        return ("RecursionError", None)
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def _outcome(fn, plan, ctx):
    try:
        return ("ok", fn(plan, ctx))
    except RuleEvaluationError:
        return ("error",)
    except Exception as exc:
        return (type(exc).__name__,)


def one_input(data: bytes) -> None:
    text, *rest = data.decode("utf-8", "replace").split("\n")
    want = _compile(PY, text)
    got = _compile(C, text)
    if got[0] != "ok" or want[0] != "ok":
        if got[0] == "OverflowError" and want[0] in ("ok", "DSLError"):
            # issue 13 table: compile_rule("greater_than(params.x, 1"+"0"*309+")") -> OverflowError (h16)
            return harness.known("compile-overflow", (text, got, want[0]))
        if (got[0] == "DSLError" and want[0] == "ok" and "requires_human_for_tags" in text
                and "argument" in got[1]):
            # issue 13 table: requires_human_for_tags with more than 8 arguments -> DSLError on C only (h16)
            return harness.known("requires-human-arity", (text, got))
        assert (got[0], got[1] if got[0] == "DSLError" else None) == (want[0], want[1] if want[0] == "DSLError" else None), \
            ("compile differs", text, got, want)
        return
    for plan, ctx in _cases(rest):
        a, b = _outcome(got[1], plan, ctx), _outcome(want[1], plan, ctx)
        if a != b and a == ("ok", False) and b == ("error",) and "param_bytes_lte" in text:
            # issue 13 table: param_bytes_lte(params.size, "abc") with size "9"*400: C False, Python raises (h16)
            harness.known("param-bytes-fail-open", (text, plan, ctx))
            continue
        if a != b and "OverflowError" in a[0]:
            harness.known("eval-overflow", (text, plan, ctx, a, b))
            continue
        assert a == b, ("evaluation differs", text, plan, ctx, a, b)


if __name__ == "__main__":
    harness.main("compile_rule", one_input)
