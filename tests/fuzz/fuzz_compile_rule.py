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
        assert (got[0], got[1] if got[0] == "DSLError" else None) == (want[0], want[1] if want[0] == "DSLError" else None), \
            ("compile differs", text, got, want)
        return
    for plan, ctx in _cases(rest):
        a, b = _outcome(got[1], plan, ctx), _outcome(want[1], plan, ctx)
        assert a == b, ("evaluation differs", text, plan, ctx, a, b)


if __name__ == "__main__":
    harness.main("compile_rule", one_input)
