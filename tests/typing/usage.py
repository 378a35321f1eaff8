"""The public API used the way user code uses it, type-checked with
``mypy --strict`` by .ci/run (and run there too, so every line is real).

Not a pytest module (no ``test_`` prefix): its point is the static check.
"""

from __future__ import annotations

from typing import Any, Dict, List, Set

import numpy as np

import lukhas_fast
import lukhas_fast.metrics
from lukhas_fast import (
    DecimatingRing,
    DriftMonitor,
    EthicsAction,
    EthicsResult,
    Priority,
    ReasonCode,
    Ring,
    SafetyTag,
    SafetyTagCategory,
    SpscRing,
    TaggedPlan,
    Ticker,
    cosine_similarity,
    cosine_similarity_batch,
    create_safety_tag_enricher,
    get_ethics_engine,
)
from lukhas_fast.consciousness_ticker import ConsciousnessTicker


def rings() -> int:
    r = Ring(8)
    r.push({"frame": 1})
    frames: List[Any] = r.pop_all()
    d = DecimatingRing(16, 0.8, 2, "skip_nth")
    for i in range(32):
        d.push({"i": i}, priority=0.5)
    stats: Dict[str, Any] = d.get_backpressure_stats()
    s = SpscRing(16, width=2, dtype="float64")
    accepted: bool = s.push([1.0, 2.0])
    rows = s.pop_many()
    return len(frames) + len(stats) + int(accepted) + int(rows.shape[0])


def drift() -> float:
    m = DriftMonitor("prod")
    result: Dict[str, Any] = m.update([1.0, 0.0], [0.9, 0.1])
    c: float = cosine_similarity(np.ones(3), [1.0, 2.0, 3.0])
    batch = cosine_similarity_batch(np.ones((2, 3)), np.ones((2, 3)))
    return m.ema + c + float(batch.sum()) + len(result)


def ethics() -> bool:
    engine = get_ethics_engine()
    res: EthicsResult = engine.evaluate_plan({"action": "delete_user_data"}, {"user_id": "u1"})
    blocked = res.action is EthicsAction.BLOCK
    codes: List[str] = res.reason_codes
    unknown: ReasonCode = ReasonCode.from_rule_name("no such rule")
    level: int = Priority.HIGH.value
    word: str = EthicsAction.ALLOW.value
    return blocked or bool(codes) or unknown is ReasonCode.UNKNOWN or level > 0 or word == ""


def tags() -> Set[str]:
    enricher = create_safety_tag_enricher()
    tagged: TaggedPlan = enricher.enrich_plan({"action": "send_email", "params": {"to": "a@b.com"}})
    for tag in tagged.tags:
        if tag.category is SafetyTagCategory.DATA_SENSITIVITY:
            assert 0.0 <= tag.confidence <= 1.0
    own = TaggedPlan({"action": "noop"}, [SafetyTag("pii", SafetyTagCategory.DATA_SENSITIVITY, "made here", 0.9)], 0.0)
    return tagged.tag_names | own.tag_names


def clock() -> int:
    ticks: List[int] = []
    t = Ticker(200)
    t.subscribe(ticks.append)
    t.run(0.02)
    ct = ConsciousnessTicker(fps=200, cap=10, metrics=False)
    ct.start(0.02)
    return len(ticks) + ct.frames_dropped


def main() -> None:
    lukhas_fast.metrics.use_registry(None)
    print(rings(), drift(), ethics(), sorted(tags()), clock(), lukhas_fast.__version__)


if __name__ == "__main__":
    main()
