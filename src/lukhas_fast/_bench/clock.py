"""Benchmark rows of the clock family: tick rate, per-tick overhead, cadence, idle CPU."""

from __future__ import annotations

import time
from typing import List, Mapping

from lukhas_fast._bench.core import Row, measurement


def _max_rate(m, seconds):
    t = m.Ticker(1e9)
    t.mode = "catchup"
    t.subscribe(lambda i: None)
    t0 = time.perf_counter()
    t.run(seconds)
    return t.tick_count / (time.perf_counter() - t0)


@measurement("Ticker max rate, one no-op subscriber (catchup, fps=1e9)", "clock")
def max_rate(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """Ticks per second and per-tick overhead of the loop itself."""
    secs = 0.3 if quick else 2.0
    rates = {tier: _max_rate(m, secs) for tier, m in mods.items()}
    return [
        Row("ticks/s", {k: v / 1e6 for k, v in rates.items()}, "M ticks/s", "reference: ~0.02 M ticks/s"),
        Row("per-tick overhead", {k: 1e9 / v for k, v in rates.items()}, "ns", "loop + one Python call"),
    ]


def _ct_rate(m, seconds, metrics):
    ct = m.ConsciousnessTicker(1e9, metrics=metrics)
    ct.ticker.mode = "catchup"
    t0 = time.perf_counter()
    ct.start(seconds)
    return ct.ticker.tick_count / (time.perf_counter() - t0)


@measurement("ConsciousnessTicker max rate (catchup, fps=1e9, cap 120)", "clock")
def ct_max_rate(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """Ticks per second of the SDK-shaped ticker: push + decimation per tick,
    the module's PROM/TICK/LANE read per tick, the tick histogram observed
    when metrics are on (prometheus_client's observe dominates that row)."""
    secs = 0.3 if quick else 1.0
    off = {tier: _ct_rate(m, secs, False) / 1e6 for tier, m in mods.items()}
    rows = [Row("metrics off", off, "M ticks/s", "handler: push + len + decimation")]
    from lukhas_fast import _metrics

    if _metrics.PROMETHEUS_AVAILABLE:
        on = {tier: _ct_rate(m, secs, True) / 1e6 for tier, m in mods.items()}
        rows.append(Row("metrics on", on, "M ticks/s", "+ Histogram.observe per tick"))
    return rows


def _cadence(m, fps, seconds, mode="realtime"):
    t = m.Ticker(fps)
    t.mode = mode
    stamps = []
    t.subscribe(lambda i, s=stamps.append, c=time.perf_counter: s(c()))
    t.run(seconds)
    n = len(stamps)
    span = stamps[-1] - stamps[0]
    achieved = (n - 1) / span if span > 0 else 0.0
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    p99 = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
    return abs(achieved - fps) / fps * 100.0, p99 * 1e3


@measurement("Ticker cadence (one timestamping subscriber)", "clock")
def cadence(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """Long-run rate error and p99 inter-tick gap at 100 Hz and 1 kHz, both modes.

    On a shared VM an occasional multi-millisecond scheduling hiccup costs
    ``realtime`` one slot (by design it does not catch up); ``catchup`` keeps
    the long-run rate exact.
    """
    secs = 0.5 if quick else 2.0
    rows = []
    for fps in (100, 1000):
        for mode in ("realtime", "catchup"):
            errs, p99s = {}, {}
            for tier, m in mods.items():
                errs[tier], p99s[tier] = _cadence(m, fps, secs, mode)
            rows.append(Row(f"{fps} Hz {mode}: rate error over {secs:g} s", errs, "%",
                            "reference: 1.8 % at 100 Hz, 8.8 % at 1 kHz; bar 0.1 %"))
            rows.append(Row(f"{fps} Hz {mode}: p99 inter-tick gap", p99s, "ms",
                            f"period {1e3 / fps:g} ms; bar: period + 0.3 ms"))
    return rows


@measurement("Idle ticker at 30 fps (process CPU time / wall time)", "clock")
def idle_cpu(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """A sleeping loop should cost well under 1 % of a core."""
    secs = 0.5 if quick else 2.0
    vals = {}
    for tier, m in mods.items():
        t = m.Ticker(30)
        t.subscribe(lambda i: None)
        c0, w0 = time.process_time(), time.perf_counter()
        t.run(secs)
        vals[tier] = (time.process_time() - c0) / (time.perf_counter() - w0) * 100.0
    return [Row("CPU use", vals, "% of a core", "bar: < 1 %")]
