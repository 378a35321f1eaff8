"""Tutorial 1: consciousness coordination with a DecimatingRing state buffer.

A 100 Hz ticker produces state frames; a consumer drains the buffer every few
ticks; when the producer outpaces it, the ring sheds load (skip_nth) and the
backpressure stats show it.  Written against the SDK's import names:
``lukhas_fast.install()`` makes them resolve to lukhas_fast.

    python examples/consciousness_coordination.py --seconds 2
"""

import argparse
from typing import Any, List, Optional, Sequence
import logging

import lukhas_fast

lukhas_fast.install()

from lukhas.core.clock import Ticker  # noqa: E402  (the SDK's names)
from lukhas.core.ring import DecimatingRing  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--fps", type=float, default=100.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    buffer = DecimatingRing(capacity=64, pressure_threshold=0.75, decimation_factor=2, decimation_strategy="skip_nth")
    ticker = Ticker(fps=args.fps)
    processed: List[Any] = []

    def produce(tick: int) -> None:
        for k in range(3):  # three sensors report per tick
            buffer.push({"tick": tick, "sensor": k, "awareness": (tick % 10) / 10})

    def consume(tick: int) -> None:
        if tick % 30 == 0:  # the consumer only keeps up with a fraction of the load
            processed.extend(buffer.pop_all()[:8])

    ticker.subscribe(produce)
    ticker.subscribe(consume)
    ticker.run(args.seconds)

    stats = buffer.get_backpressure_stats()
    print(f"ticks: {ticker.tick_count}, frames processed: {len(processed)}")
    print(f"backpressure: utilization={stats['utilization']:.2f} drop_rate={stats['drop_rate']:.2f} "
          f"decimation_events={stats['decimation_events']} total_pushes={stats['total_pushes']}")
    print(ticker.summary())
    return 0 if int(ticker.tick_count) > 0 and stats["total_pushes"] > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
