"""RequestMetrics: accumulated per-request counts flushed into prometheus_client give
exactly the exposition of direct Counter.inc / Histogram.observe calls."""

from __future__ import annotations

import asyncio
import random

import pytest

prom = pytest.importorskip("prometheus_client")
from lukhas_fast._reqmetrics import RequestMetrics  # noqa: E402

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _metrics(registry):
    c = prom.Counter("t_requests_total", "r", ["route", "method", "status"], registry=registry)
    h = prom.Histogram("t_request_seconds", "s", ["route"], buckets=BUCKETS, registry=registry)
    return c, h


def test_flush_equals_direct_calls():
    direct_reg, acc_reg = prom.CollectorRegistry(), prom.CollectorRegistry()
    dc, dh = _metrics(direct_reg)
    ac, ah = _metrics(acc_reg)
    rm = RequestMetrics([(ac, lambda k: (k[0], k[1], str(k[2])))], [(ah, lambda k: (k[0],))], BUCKETS)
    rng = random.Random(4)
    keys = [("/a", "GET", 200), ("/a", "GET", 404), ("/b", "POST", 200), ("unmatched", "PUT", 405)]
    for i in range(5000):
        k = rng.choice(keys)
        x = rng.choice(BUCKETS) if i % 7 == 0 else rng.expovariate(200)  # exact bounds too
        dc.labels(k[0], k[1], str(k[2])).inc()
        dh.labels(k[0]).observe(x)
        rm.observe(k, x)
        if i % 1000 == 999:
            rm.flush()
    rm.flush()
    direct = prom.generate_latest(direct_reg).decode().splitlines()
    acc = prom.generate_latest(acc_reg).decode().splitlines()
    strip = lambda lines: [ln for ln in lines if "_created" not in ln]
    # sums may differ in the last bits (added in another order)
    num = lambda lines: [(ln.rsplit(" ", 1)[0], float(ln.rsplit(" ", 1)[1])) for ln in strip(lines) if not ln.startswith("#")]
    d, a = num(direct), num(acc)
    assert [n for n, _ in d] == [n for n, _ in a]
    for (name, x), (_, y) in zip(d, a):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-12) if name.startswith("t_request_seconds_sum") else x == y


async def test_periodic_flush_and_hooks():
    reg = prom.CollectorRegistry()
    c, h = _metrics(reg)
    rm = RequestMetrics([(c, lambda k: k)], [(h, lambda k: (k[0],))], BUCKETS, interval=0.05)
    seen = []
    rm.before_flush.append(lambda: seen.append(1))
    rm.start()
    rm.observe(("/x", "GET", "200"), 0.002)
    await asyncio.sleep(0.2)
    assert reg.get_sample_value("t_requests_total", {"route": "/x", "method": "GET", "status": "200"}) == 1
    assert reg.get_sample_value("t_request_seconds_bucket", {"route": "/x", "le": "0.0025"}) == 1
    assert reg.get_sample_value("t_request_seconds_bucket", {"route": "/x", "le": "0.001"}) == 0
    rm.observe(("/x", "GET", "200"), 5.0)
    rm.stop()
    assert reg.get_sample_value("t_request_seconds_bucket", {"route": "/x", "le": "+Inf"}) == 2
    assert len(seen) >= 2


def test_slots_count_like_observe_and_flush_zeroes_them_in_place():
    from bisect import bisect_left

    regs = prom.CollectorRegistry(), prom.CollectorRegistry()
    (c1, h1), (c2, h2) = _metrics(regs[0]), _metrics(regs[1])
    by_observe = RequestMetrics([(c1, lambda k: (k[0], k[1], str(k[2])))], [(h1, lambda k: (k[0],))], BUCKETS)
    by_slot = RequestMetrics([(c2, lambda k: (k[0], k[1], str(k[2])))], [(h2, lambda k: (k[0],))], BUCKETS)
    acc = by_slot.slot(("/a", "GET", 200))
    unused = by_slot.slot(("/never", "GET", 200))
    assert by_slot.slot(("/a", "GET", 200)) is acc
    rng = random.Random(7)
    for i in range(3000):
        x = rng.choice(BUCKETS) if i % 5 == 0 else rng.expovariate(300)
        by_observe.observe(("/a", "GET", 200), x)
        acc[0] += x
        acc[bisect_left(by_slot.bounds, x) + 1] += 1
        if i % 1000 == 999:
            by_observe.flush()
            by_slot.flush()
            assert acc == [0.0] + [0] * (len(BUCKETS) + 1) and unused == acc  # zeroed in place
    strip = lambda reg: [ln for ln in prom.generate_latest(reg).decode().splitlines() if "_created" not in ln]
    assert strip(regs[0]) == strip(regs[1])
    assert "/never" not in "\n".join(strip(regs[1]))  # no series for a slot without requests
