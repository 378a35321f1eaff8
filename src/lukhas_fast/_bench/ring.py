"""Benchmark rows of the ring family."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import List, Mapping

import numpy as np

from lukhas_fast._bench.core import Row, case, measurement

N = 1000  # pushes per thunk


def _push_thunk(ring):
    push = ring.push
    items = list(range(N))

    def run():
        for x in items:
            push(x)

    return run


def _deque_append():
    d = deque(maxlen=1000)
    append = d.append
    items = list(range(N))

    def run():
        for x in items:
            append(x)

    return run


def _loop_floor():
    """An empty Python loop over the same items (what every row pays)."""
    items = list(range(N))

    def run():
        for x in items:
            pass

    return run


case(
    "Ring.push (cap 1000, full)",
    "ring",
    lambda m: _push_thunk(_filled(m.Ring(1000))),
    ops=N,
    peers={"deque": _deque_append},
)


def _filled(r):
    for i in range(r.capacity):
        r.push(i)
    return r


def _pop_all_thunk(m):
    r = m.Ring(1000)
    push = r.push
    items = list(range(1000))

    def run():
        for x in items:
            push(x)
        r.pop_all()

    return run


def _deque_pop_all():
    d = deque(maxlen=1000)
    append = d.append
    items = list(range(1000))

    def run():
        for x in items:
            append(x)
        list(d)
        d.clear()

    return run


case(
    "Ring 1000 x push + pop_all",
    "ring",
    _pop_all_thunk,
    ops=1,
    peers={"deque": _deque_pop_all},
)

for _strategy in ("skip_nth", "adaptive", "keep_recent"):
    case(
        f"DecimatingRing.push ({_strategy}, cap 1000, thr 0.8)",
        "ring",
        (lambda s: lambda m: _push_thunk(_filled_dec(m.DecimatingRing(1000, 0.8, 2, s))))(_strategy),
        ops=N,
        peers={"deque": _deque_append},
    )


def _filled_dec(r):
    for i in range(5 * r.capacity):
        r.push(i)
    return r


@measurement("SpscRing two-thread throughput (batches of 1024 float64 records, width 1)", "ring")
def spsc_throughput(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """Producer thread push_many(1024-row batch) / consumer thread pop_many(1024)."""
    total = 2_000_000 if quick else 20_000_000
    values = {}
    for tier, m in mods.items():
        n = total if tier == "c" else total // 20
        values[tier] = _spsc_run(m, n) / 1e6
    return [Row("records/s (millions)", values, "M rec/s", "memcpy in and out, GIL released in C tier")]


def _spsc_run(m, total: int) -> float:
    ring = m.SpscRing(1 << 16, 1, "float64")
    batch = np.arange(1024, dtype=np.float64)
    batches = total // 1024
    got = [0]

    def producer():
        push_many = ring.push_many
        need = batches * 1024
        sent = off = 0
        while sent < need:
            k = push_many(batch[off:])
            sent += k
            off = (off + k) % 1024
            if k == 0:
                time.sleep(0)  # full: let the consumer run (refused rows count as dropped)

    def consumer():
        pop_many = ring.pop_many
        need = batches * 1024
        n = 0
        while n < need:
            k = len(pop_many(1024))
            if k == 0:
                time.sleep(0)
            n += k
        got[0] = n

    t0 = time.perf_counter()
    tc = threading.Thread(target=consumer)
    tp = threading.Thread(target=producer)
    tc.start()
    tp.start()
    tp.join()
    tc.join()
    dt = time.perf_counter() - t0
    return got[0] / dt


@measurement("Ring.pop_all of 1000 items (each call timed alone, refill untimed; median of many)", "ring")
def pop_all_cost(mods: Mapping[str, object], quick: bool) -> List[Row]:
    """pop_all empties the ring, so it cannot run in a timing loop: refill
    outside the clock and time each drain alone.  Peer: ``list(d); d.clear()``."""
    import gc as _gc

    rounds = 200 if quick else 2000
    items = list(range(1000))
    values = {}

    def cost(store, push, drain):
        samples = []
        clock = time.perf_counter
        _gc.disable()
        try:
            for _ in range(rounds):
                for x in items:
                    push(x)
                t0 = clock()
                drain(store)
                samples.append(clock() - t0)
        finally:
            _gc.enable()
        samples.sort()
        return samples[len(samples) // 2] * 1e6

    for tier, m in mods.items():
        r = m.Ring(1000)
        values[tier] = cost(r, r.push, lambda r: r.pop_all())

    def deque_drain(d):
        list(d)
        d.clear()

    d = deque(maxlen=1000)
    values["deque"] = cost(d, d.append, deque_drain)
    return [Row("pop_all(1000) vs list(d)+clear", values, "us", "acceptance: c within 1.5x of deque")]
