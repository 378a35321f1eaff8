"""Tutorial 2: intent-action drift detection with guardian handling.

An agent's actions slowly drift away from its intent; the monitor's EMA
crosses the lane's warn and block thresholds and the guardian reacts.

    python examples/drift_detection.py --seconds 1
"""

import argparse
from typing import Dict, Optional, Sequence
import random
import time

import lukhas_fast

lukhas_fast.install()

from lukhas.core.drift import DriftMonitor  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--lane", default="production")
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args(argv)

    rng = random.Random(1)
    intent = [rng.gauss(0, 1) for _ in range(args.dim)]
    monitor = DriftMonitor(lane=args.lane)
    decisions = {"allow": 0, "warn": 0, "block": 0}
    first: Dict[str, int] = {}
    end = time.monotonic() + args.seconds
    step = 0
    while time.monotonic() < end and step < 5000:
        noise = min(1.0, step / 400)  # the action drifts further from the intent over time
        action = [x * (1 - noise) + rng.gauss(0, 1) * noise for x in intent]
        result = monitor.update(intent, action)
        g = result["guardian"]
        decisions[g] += 1
        first.setdefault(g, step)
        if g == "block":
            break  # the guardian stops the agent
        step += 1
    print(f"lane={monitor.lane} thresholds warn={monitor.cfg.warn_threshold} block={monitor.cfg.block_threshold}")
    print(f"steps={step} ema={monitor.ema:.3f} decisions={decisions} first_seen={first}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
