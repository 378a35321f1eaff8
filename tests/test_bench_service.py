"""The service bench's same-core contest (``_bench.service.contest``).

The estimator is tested with scripted wrk results (no timing); one real run, with wrk
against two bare aiohttp servers on one core, checks the plumbing end to end."""

from __future__ import annotations

import shutil
import threading

import pytest

pytest.importorskip("aiohttp")
from lukhas_fast._bench import service as S  # noqa: E402


class _Fake:
    def __init__(self, port: int) -> None:
        self.port = port


def test_contest_is_the_median_round_of_paired_runs(monkeypatch):
    # rounds of (ours, floor) req/s: ratios 0.5, 0.9, 0.8, 1.2, 0.7 -> median 0.8 (round 3)
    script = {1: iter([100, 90, 80, 120, 70]), 2: iter([200, 100, 100, 100, 100])}
    lock = threading.Lock()

    def fake_wrk(port, req, seconds, cpu):
        with lock:
            return float(next(script[port])), 1.0, 2.0, port - 1, 1000

    monkeypatch.setattr(S, "run_wrk", fake_wrk)
    req = S.requests_()[0]
    ratio, ours, floor, errors, n = S.contest({"ours": _Fake(1), "floor": _Fake(2)}, req, 1.0, 5, None)
    assert (ratio, ours, floor, n) == (0.8, 80.0, 100.0, 5)
    assert errors == 5  # the floor's one error a round, summed


def test_contest_with_an_even_count_takes_a_real_round(monkeypatch):
    script = {1: iter([50, 100, 70, 90]), 2: iter([100, 100, 100, 100])}
    lock = threading.Lock()

    def fake_wrk(port, req, seconds, cpu):
        with lock:
            return float(next(script[port])), 1.0, 2.0, 0, 1000

    monkeypatch.setattr(S, "run_wrk", fake_wrk)
    ratio, ours, floor, errors, n = S.contest({"ours": _Fake(1), "floor": _Fake(2)}, S.requests_()[0], 1.0, 4, None)
    assert (ratio, ours, floor, errors) == (0.7, 70.0, 100.0, 0)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")
def test_contest_runs_two_servers_on_one_core_at_once():
    cpu = S._cpus()[0]
    servers = {"ours": S._Server("bare", (), cpu), "floor": S._Server("bare", (), cpu)}
    try:
        req = S.requests_()[0]  # GET /health: both answer it
        ratio, ours, floor, errors, n = S.contest(servers, req, 1.0, 1, None)
    finally:
        for s in servers.values():
            s.stop()
    assert errors == 0 and n == 1
    assert ours > 0 and floor > 0 and ratio == ours / floor
