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


# -- the paired rows (runs one after the other) ------------------------------------------------

def _run(rps, errors=0, cpu=50.0):
    return (float(rps), 1.0, 2.0, errors, 1000, cpu)


def test_paired_is_the_median_rounds_ratio_with_that_rounds_runs():
    # ratios 0.5, 0.9, 0.8, 1.2, 0.7 -> median 0.8: round 2's runs, not the best of each (120 / 200)
    first = [_run(100), _run(90), _run(80, 1), _run(120), _run(70)]
    second = [_run(200), _run(100), _run(100), _run(100, 2), _run(100)]
    ratio, a, b, ea, eb = S.paired(first, second)
    assert ratio == 0.8 and a is first[2] and b is second[2]
    assert (ea, eb) == (1, 2)  # errors summed over every run of each


def test_paired_with_an_even_count_takes_a_real_round():
    first, second = [_run(50), _run(100), _run(70), _run(90)], [_run(100)] * 4
    ratio, a, b, _, _ = S.paired(first, second)
    assert ratio == 0.7 and a is first[2]


def test_paired_needs_runs_of_both():
    with pytest.raises(ValueError):
        S.paired([], [])
    with pytest.raises(ValueError):
        S.paired([_run(1)], [_run(1), _run(2)])


def test_the_paired_rows_alternate_who_runs_first(monkeypatch):
    # service_load's rows come from paired(); its runs go ABBA so that a drift within a round cancels
    who = {}  # port -> which server
    calls = []

    class _Srv:
        def __init__(self, kind, args=(), cpu=None):
            self.port = len(who) + 1
            who[self.port] = "floor" if kind == "bare" else ("ours" if list(args[:1]) == ["--fps"] else "other")
            self.proc = type("P", (), {"pid": 0})()

        def check(self, req):
            pass

        def stop(self):
            pass

    def fake_run(port, req, seconds, cpu):
        calls.append((who[port], req.label))
        return _run(100 if who[port] == "ours" else 125)

    monkeypatch.setattr(S, "_Server", _Srv)
    monkeypatch.setattr(S, "run_wrk", fake_run)
    monkeypatch.setattr(S.shutil, "which", lambda name: "/usr/bin/wrk" if name == "wrk" else None)
    monkeypatch.setattr(S, "_cpus", lambda: [0])  # one core: no same-core rows
    monkeypatch.setattr(S, "ROUNDS", 4)
    rows = S.service_load.run({}, False)
    health = S.requests_()[0].label
    timed = [w for w, label in calls if label == health][2:]  # (after the two warm-ups)
    assert timed == ["ours", "floor", "floor", "ours"] * 2
    row = next(r for r in rows if r.label == health)
    assert row.values["ours/floor"] == 0.8 and "median of 4 paired 1 s runs" in row.note
