"""Tutorial 3: safety-tag enrichment followed by the ethics rules.

Each plan is tagged by the enricher, then judged by the bundled rules (the
default rule set and the safety-tag rule set), giving allow / warn / block
with reason codes.

    python examples/safety_and_ethics.py --seconds 1

One verbose pass over the plans, then (``--seconds``) the same pipeline is
repeated until the time is spent and its throughput printed.
"""

import argparse
from typing import Any, Dict, Optional, Sequence, Set, Tuple
import time

import lukhas_fast

lukhas_fast.install()

from candidate.core.ethics.safety_tags import SafetyTagEnricher  # noqa: E402
from candidate.core.ethics.loader import load_ethics_rules  # noqa: E402
from candidate.core.ethics.engine import EthicsEngine  # noqa: E402

from lukhas_fast.ethics import SAFETY_TAG_RULES_PATH  # noqa: E402

RESOURCES = {"estimated_memory_mb": 64, "estimated_time_seconds": 5}
PLANS = [
    {"action": "summarize_document", "params": dict(RESOURCES, text="quarterly report")},
    {"action": "send_email", "params": dict(RESOURCES, to="alice@example.com", body="hello")},
    {"action": "call_api", "params": dict(RESOURCES, url="https://api.example.com/v1", email="bob@example.com")},
    {"action": "process_payment", "params": dict(RESOURCES, amount=120.0, model="gpt-4o")},
    {"action": "admin_override", "params": dict(RESOURCES, reason="sudo access")},
    {"action": "delete_user_data", "params": RESOURCES},
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.0, help="after the verbose pass, repeat it this long")
    args = ap.parse_args(argv)
    enricher = SafetyTagEnricher()
    defaults = EthicsEngine(load_ethics_rules())
    tag_rules = EthicsEngine(load_ethics_rules(SAFETY_TAG_RULES_PATH))
    order = {"allow": 0, "warn": 1, "block": 2}

    def judge(plan: Dict[str, Any]) -> Tuple[Any, Any, Any, str]:
        tagged = enricher.enrich_plan(plan, {"user_id": "u1", "lane": "prod"})
        facts = dict(plan, safety_tags=tagged.tags)
        a = defaults.evaluate_plan(facts, {"user_id": "u1"})
        b = tag_rules.evaluate_plan(facts, {"user_id": "u1"})
        final: str = max(a.action.value, b.action.value, key=order.__getitem__)
        return tagged, a, b, final

    seen: Set[str] = set()
    for plan in PLANS:
        tagged, a, b, final = judge(plan)
        seen.add(final)
        print(f"{plan['action']:<20} tags={sorted(tagged.tag_names)} -> {final} "
              f"codes={a.reason_codes + b.reason_codes} rules={a.triggered_rule_ids + b.triggered_rule_ids}")
    if args.seconds > 0:
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            for plan in PLANS:
                seen.add(judge(plan)[3])
            n += len(PLANS)
        print(f"repeated for {args.seconds:g} s: {n} plans, {n / (time.monotonic() - t0):,.0f} plans/s")
    return 0 if seen == {"allow", "warn", "block"} else 1


if __name__ == "__main__":
    raise SystemExit(main())
