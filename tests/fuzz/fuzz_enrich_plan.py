"""Fuzz target: ``SafetyTagEnricher.enrich_plan``, C tier against the pure-Python oracle.

The input is text.  A JSON object with a ``"plan"`` member is
``{"plan": ..., "context": ..., "advanced": ...}``; any other JSON object is
the plan itself; anything else (the usual case once mutated) becomes the plan
``{"action": <first line>, "params": {"v": <the rest>, "k": <the rest's words>}}``
so the mutations land in the detectors' text paths.  Both tiers must give the
same tags (name, category, confidence, source, metadata), the same
enrichment context and the same normalised text, or the same exception type;
the C tier's cache must answer a repeat with the same tags.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as harness  # noqa: E402

with harness.instrumented():
    from lukhas_fast._backend import tier_modules

_tiers = tier_modules("tags")
C, PY = _tiers["c"], _tiers["python"]
_NORM_C = C.SafetyTagEnricher(enable_caching=False, metrics=False)
_NORM_PY = PY.SafetyTagEnricher(enable_caching=False, metrics=False)


def _decode(data: bytes):
    text = data.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        if "plan" in obj:
            ctx = obj.get("context")
            return obj["plan"], ctx if isinstance(ctx, dict) else None, bool(obj.get("advanced"))
        return obj, None, False
    first, _, rest = text.partition("\n")
    words = rest.split()
    plan = {"action": first, "params": {"v": rest, "k": {w: w for w in words[:8]}, "n": len(words)}}
    return plan, {"user_region": "EU"} if "EU" in first else None, "adv" in first


def _tags(tp):
    return [(t.name, getattr(t.category, "value", t.category), t.confidence, t.source, t.metadata) for t in tp.tags]


def _run(mod, plan, ctx, advanced, caching=False):
    e = mod.SafetyTagEnricher(enable_caching=caching, advanced=advanced, metrics=False)
    try:
        tp = e.enrich_plan(plan, ctx)
    except RecursionError:
        return ("RecursionError",), e
    except Exception as exc:  # compared by type: the tiers must fail alike
        return (type(exc).__name__,), e
    ctx_out = {k: v for k, v in tp.enrichment_context.items()}
    return (_tags(tp), ctx_out), e


def one_input(data: bytes) -> None:
    plan, ctx, advanced = _decode(data)
    want, _ = _run(PY, plan, ctx, advanced)
    got, _ = _run(C, plan, ctx, advanced)
    assert got == want, ("enrich_plan differs", plan, ctx, advanced, got, want)
    cached_first, e = _run(C, plan, ctx, advanced, caching=True)
    if len(cached_first) == 2:
        again = e.enrich_plan(plan, ctx)
        assert _tags(again) == cached_first[0], ("cache hit differs from the miss", plan, ctx)
        assert again.enrichment_context == {"cache_hit": True}, again.enrichment_context
    if isinstance(plan, dict):
        for v in (plan.get("action"), (plan.get("params") or {}).get("v") if isinstance(plan.get("params"), dict) else None):
            if isinstance(v, str):
                a, b = _NORM_C.preprocess_text(v), _NORM_PY.preprocess_text(v)
                assert a == b, ("preprocess_text differs", v, a, b)


if __name__ == "__main__":
    harness.main("enrich_plan", one_input)
