"""Drift family: reference facts, awkward inputs, batch == sequential, snapshots, metrics; every tier."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

prom = pytest.importorskip("prometheus_client")

RESULT_KEYS = ["lane", "drift", "ema", "guardian", "n"]


@pytest.fixture(autouse=True)
def _no_metrics(monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")
    monkeypatch.delenv("LUKHAS_LANE", raising=False)


# --- configuration ------------------------------------------------------------------

def test_lane_cfg_table(drift_impl):
    cfg = drift_impl.LANE_CFG
    D = drift_impl.DriftConfig
    assert cfg["experimental"] == D(0.30, 0.50, 0.2, 64)
    assert cfg["candidate"] == D(0.20, 0.35, 0.2, 64)
    assert cfg["prod"] == D(0.15, 0.25, 0.2, 64)
    assert cfg["labs"] == cfg["candidate"]
    assert cfg["production"] == cfg["prod"]
    assert D(0.1, 0.2) == D(0.1, 0.2, 0.2, 64)
    assert repr(D(0.1, 0.2)) == "DriftConfig(warn_threshold=0.1, block_threshold=0.2, alpha=0.2, window=64)"
    with pytest.raises(Exception):
        cfg["prod"].alpha = 0.5  # frozen


def test_lane_resolution(drift_impl, monkeypatch):
    assert drift_impl.DriftMonitor().lane == "experimental"
    monkeypatch.setenv("LUKHAS_LANE", "Candidate")
    m = drift_impl.DriftMonitor()
    assert m.lane == "candidate" and m.cfg == drift_impl.LANE_CFG["candidate"]
    assert drift_impl.DriftMonitor("PROD").lane == "prod"
    assert drift_impl.DriftMonitor("production").cfg.block_threshold == 0.25


def test_unknown_lane_warns_once(drift_impl):
    name = f"mystery-lane-{drift_impl.__name__}"
    with pytest.warns(UserWarning, match="mystery-lane"):
        m = drift_impl.DriftMonitor(name)
    assert m.lane == name and m.cfg == drift_impl.LANE_CFG["experimental"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drift_impl.DriftMonitor(name.upper())  # same lane after lowercasing: no second warning


def test_bad_lane_type(drift_impl):
    with pytest.raises(TypeError, match="lane"):
        drift_impl.DriftMonitor(5)


# --- reference facts ------------------------------------------------------------------

def test_reference_facts(drift_impl):
    m = drift_impl.DriftMonitor("experimental")
    r = m.update([0.0, 0.0], [0.0, 0.0])
    assert list(r) == RESULT_KEYS
    assert r["drift"] == 1.0 and r["guardian"] == "allow" and r["n"] == 1
    m = drift_impl.DriftMonitor()
    r = m.update([1, 0], [1, 0])
    assert r["drift"] == 0.0 and r["ema"] == 0.0
    m = drift_impl.DriftMonitor()
    r = m.update([1.0, 0.0], [0.0, 1.0])
    assert r["ema"] == m.cfg.alpha * 1.0 == m.ema
    m = drift_impl.DriftMonitor()
    assert m._window_len == 0
    for i in range(m.cfg.window + 10):
        m.update([1.0, 0.0], [0.0, 1.0])
        assert m._window_len == min(i + 1, m.cfg.window)
    assert len(m._raw) == m.cfg.window == m._window_len and m._raw[-1] == 1.0
    m = drift_impl.DriftMonitor("experimental")
    seen = [m.update([1.0, 0.0], [0.0, 1.0])["guardian"] for _ in range(10)]
    assert seen[0] == "allow" and "warn" in seen and seen[-1] == "block"
    assert seen.index("warn") < seen.index("block")


def test_cosine_rules(drift_impl):
    c = drift_impl._cosine
    assert drift_impl.cosine_similarity is c
    assert c([1.0, 0.0], [1.0, 0.0]) == 1.0
    assert c([1.0, 0.0], [-1.0, 0.0]) == -1.0
    assert c([], [1.0]) == 0.0 and c([1.0], []) == 0.0
    assert c([1.0, 2.0], [1.0]) == 0.0
    assert c([0.0, 0.0], [1.0, 1.0]) == 0.0
    assert c([True, False], [1, 0]) == 1.0
    assert c((1, 2, 3), [1, 2, 3]) == pytest.approx(1.0, abs=1e-15)
    assert c(np.array([3.0, 4.0]), np.array([4.0, 3.0], dtype=np.float32)) == pytest.approx(0.96, abs=1e-15)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32"])
def test_buffers_of_each_dtype_and_stride(drift_impl, oracle, dtype):
    rng = np.random.default_rng(3)
    base_a = (rng.standard_normal(301) * 100).astype(dtype)
    base_b = (rng.standard_normal(301) * 100).astype(dtype)
    ref = oracle("drift")._cosine
    for a, b in [(base_a, base_b), (base_a[::3], base_b[::3]), (base_a[::-2], base_b[1::2]), (base_a[:0], base_b[:0])]:
        want = ref(a.tolist(), b.tolist())
        assert abs(drift_impl._cosine(a, b) - want) <= 1e-12
        assert abs(drift_impl._cosine(a, b.tolist()) - want) <= 1e-12


@pytest.mark.parametrize(
    "a,b,exc",
    [
        ([1.0, float("nan")], [1.0, 1.0], ValueError),
        ([1.0, 1.0], [float("inf"), 1.0], ValueError),
        ([1e200, 1.0], [1.0, 1.0], ValueError),  # |a|^2 overflows
        ([10**400, 1], [1, 1], ValueError),
        ([1.0, "x"], [1.0, 1.0], TypeError),
        ([1.0, None], [1.0, 1.0], TypeError),
        ([1.0, 2.0], [1.0, [2.0]], TypeError),
        ([1.0, 1j], [1.0, 1.0], TypeError),
        ("ab", "ab", TypeError),
        (None, [1.0], TypeError),
        (5, [1.0], TypeError),
        (np.zeros((2, 2)), np.zeros((2, 2)), ValueError),
        (np.float64(1.0), [1.0], ValueError),  # numpy scalars are 0-d buffers
        (np.array(1.0), np.array(1.0), ValueError),
        (np.array([1, 2], dtype=np.float16), [1.0, 2.0], TypeError),
        (np.array([1, 2], dtype=np.uint8), [1.0, 2.0], TypeError),
        (np.array([True, False]), [1.0, 2.0], TypeError),
        (np.array([1.0, np.nan]), np.array([1.0, 1.0]), ValueError),
    ],
)
def test_bad_input_raises_before_state_changes(drift_impl, oracle, a, b, exc):
    with pytest.raises(exc):
        oracle("drift")._cosine(a, b)  # the oracle agrees on the error type
    m = drift_impl.DriftMonitor()
    m.update([1.0, 0.0], [0.0, 1.0])
    before = (m.ema, m._raw)
    with pytest.raises(exc):
        m.update(a, b)
    with pytest.raises(exc):
        drift_impl._cosine(a, b)
    assert (m.ema, m._raw) == before


def test_mismatched_lengths_skip_validation_like_reference(drift_impl):
    # the reference returns 0.0 before looking at elements
    assert drift_impl._cosine([1.0, "x"], [1.0]) == 0.0
    assert drift_impl._cosine([float("nan")], []) == 0.0


def test_exotic_numbers(drift_impl, oracle):
    from decimal import Decimal
    from fractions import Fraction

    a = [Decimal("1.5"), Fraction(1, 3), np.float32(2.0), np.int64(3), True]
    b = [1, 2.0, 3, 4, 5]
    assert drift_impl._cosine(a, b) == oracle("drift")._cosine(a, b)


def test_list_mutated_by_float_is_safe(drift_impl):
    victim = [1.0, 2.0, 3.0, 4.0]

    class Evil:
        def __float__(self):
            victim.clear()
            return 1.0

    victim.insert(1, Evil())
    try:
        r = drift_impl._cosine(victim, [1.0] * 5)
    except (RuntimeError, IndexError):
        pass  # C tier detects the size change; Python raises IndexError
    else:
        assert -1.0 <= r <= 1.0


def test_ema_assignment_validated(drift_impl):
    m = drift_impl.DriftMonitor()
    m.ema = 0.4
    assert m.ema == 0.4
    with pytest.raises(ValueError, match="ema"):
        m.ema = float("nan")
    with pytest.raises(TypeError, match="ema"):
        m.ema = "0.1"
    assert m.ema == 0.4


# --- batch, reset, snapshot -----------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32", "int32"])
def test_update_many_equals_sequential(drift_impl, dtype):
    rng = np.random.default_rng(11)
    A = (rng.standard_normal((150, 33)) * 10).astype(dtype)
    B = (A + rng.standard_normal((150, 33)) * 10).astype(dtype)
    A[5] = 0
    seq = drift_impl.DriftMonitor("candidate")
    bat = drift_impl.DriftMonitor("candidate")
    seq.update([1.0], [1.0])
    bat.update([1.0], [1.0])
    rows = [seq.update(A[i], B[i]) for i in range(len(A))]
    res = bat.update_many(A, B)
    assert set(res) == {"lane", "drift", "ema", "guardian_code", "guardian", "n"}
    assert res["drift"].dtype == np.float64 and res["ema"].dtype == np.float64
    assert res["guardian_code"].dtype == np.int8
    np.testing.assert_array_equal(res["drift"], [r["drift"] for r in rows])
    np.testing.assert_array_equal(res["ema"], [r["ema"] for r in rows])
    codes = {"allow": 0, "warn": 1, "block": 2}
    assert res["guardian_code"].tolist() == [codes[r["guardian"]] for r in rows]
    assert res["guardian"] == rows[-1]["guardian"] and res["n"] == rows[-1]["n"] == 64
    assert bat.ema == seq.ema and bat._raw == seq._raw


def test_update_many_lists_and_strided(drift_impl):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((20, 16))
    B = rng.standard_normal((20, 32))[:, ::2]
    m1, m2, m3 = drift_impl.DriftMonitor(), drift_impl.DriftMonitor(), drift_impl.DriftMonitor()
    r1 = m1.update_many(A, B)
    r2 = m2.update_many(A.tolist(), B.tolist())
    for i in range(20):
        m3.update(A[i].tolist(), B[i].tolist())
    assert np.allclose(r1["ema"], r2["ema"], rtol=0, atol=1e-12)
    assert abs(m1.ema - m3.ema) <= 1e-12 and m2.ema == m3.ema


def test_update_many_validates_before_mutating(drift_impl):
    A = np.ones((10, 4))
    B = np.ones((10, 4))
    B[7, 2] = np.inf
    m = drift_impl.DriftMonitor()
    m.update([1.0, 0.0], [0.0, 1.0])
    before = (m.ema, m._raw)
    with pytest.raises(ValueError, match="row 7"):
        m.update_many(A, B)
    with pytest.raises(ValueError, match="row 7"):
        m.update_many(A.tolist(), B.tolist())
    with pytest.raises(ValueError, match="rows"):
        m.update_many(A, B[:5])
    with pytest.raises(ValueError, match="2-D"):
        m.update_many(A[0], B[0])
    with pytest.raises(TypeError):
        m.update_many(A.astype(np.float16), B)
    with pytest.raises(TypeError):
        m.update_many("rows", "rows")
    assert (m.ema, m._raw) == before


def test_update_many_empty_and_mismatched_rows(drift_impl):
    m = drift_impl.DriftMonitor()
    r = m.update_many(np.zeros((0, 4)), np.zeros((0, 4)))
    assert r["n"] == 0 and r["guardian"] == "allow" and r["drift"].shape == (0,)
    r = m.update_many(np.ones((3, 4)), np.ones((3, 5)))  # every row mismatched: cosine 0
    assert r["drift"].tolist() == [1.0, 1.0, 1.0]


def test_cosine_similarity_batch(drift_impl, oracle):
    rng = np.random.default_rng(9)
    A = rng.standard_normal((30, 24)).astype(np.float32)
    B = rng.standard_normal((30, 24)).astype(np.float32)
    got = drift_impl.cosine_similarity_batch(A, B)
    want = oracle("drift").cosine_similarity_batch(A, B)
    assert got.dtype == np.float64 and np.allclose(got, want, rtol=0, atol=1e-12)


def test_reset_and_snapshot_roundtrip(drift_impl):
    m = drift_impl.DriftMonitor("prod")
    for i in range(100):
        m.update([1.0, i % 3], [i % 5, 1.0])
    snap = m.snapshot()
    assert set(snap) == {"lane", "ema", "window"} and len(snap["window"]) == 64
    m2 = drift_impl.DriftMonitor.from_snapshot(snap)
    assert (m2.lane, m2.ema, m2._raw) == (m.lane, m.ema, m._raw)
    assert m2.update([1.0, 0.0], [1.0, 1.0]) == m.update([1.0, 0.0], [1.0, 1.0])
    import json

    m3 = drift_impl.DriftMonitor.from_snapshot(json.loads(json.dumps(m.snapshot())))
    assert m3._raw == m._raw and m3.ema == m.ema
    big = dict(snap, window=list(range(200)))
    assert drift_impl.DriftMonitor.from_snapshot(big)._raw == [float(x) for x in range(136, 200)]
    m.reset()
    assert m.ema == 0.0 and m._raw == []


@pytest.mark.parametrize(
    "snap,exc",
    [
        (None, TypeError),
        ({"lane": "prod", "ema": 0.1}, ValueError),
        ({"lane": 3, "ema": 0.1, "window": []}, TypeError),
        ({"lane": "prod", "ema": float("nan"), "window": []}, ValueError),
        ({"lane": "prod", "ema": 0.1, "window": [0.1, "x"]}, TypeError),
        ({"lane": "prod", "ema": 0.1, "window": "0.1"}, TypeError),
    ],
)
def test_bad_snapshots(drift_impl, snap, exc):
    with pytest.raises(exc):
        drift_impl.DriftMonitor.from_snapshot(snap)


# --- metrics ---------------------------------------------------------------------------

def _gauge_value(lane):
    return prom.REGISTRY.get_sample_value("lukhas_drift_ema", {"lane": lane})


def test_metrics_on_sets_gauge(drift_impl):
    lane = "prod"
    m = drift_impl.DriftMonitor(lane, metrics=True)
    assert m.metrics is True
    m.update([1.0, 0.0], [0.0, 1.0])
    assert _gauge_value(lane) == m.ema
    m.update_many(np.ones((3, 2)), np.array([[1.0, 0.0]] * 3))
    assert _gauge_value(lane) == m.ema


def test_metrics_off_leaves_gauge(drift_impl):
    m_on = drift_impl.DriftMonitor("candidate", metrics=True)
    m_on.update([1.0, 0.0], [1.0, 0.0])
    before = _gauge_value("candidate")
    m = drift_impl.DriftMonitor("candidate", metrics=False)
    m.update([1.0, 0.0], [0.0, 1.0])
    assert m.metrics is False and _gauge_value("candidate") == before


def test_metrics_default_from_env(drift_impl, monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "1")
    assert drift_impl.DriftMonitor().metrics is True
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")
    assert drift_impl.DriftMonitor().metrics is False
    with pytest.raises(TypeError, match="metrics"):
        drift_impl.DriftMonitor(metrics="on")


def test_duplicate_registration_tolerated(drift_impl):
    # a gauge of the same name registered elsewhere (e.g. the pure-Python SDK) is reused
    for _ in range(3):
        drift_impl.DriftMonitor("experimental", metrics=True).update([1.0], [1.0])
    assert "lukhas_drift_ema" in prom.REGISTRY._names_to_collectors


def test_repr(drift_impl):
    m = drift_impl.DriftMonitor("prod")
    assert repr(m).startswith("DriftMonitor(lane='prod'")


def test_kernel_isas_agree(oracle):
    from lukhas_fast._backend import tier_modules

    c = tier_modules("drift").get("c")
    if c is None:
        pytest.skip("C tier not built")  # CI requires it (test_backend)
    rng = np.random.default_rng(1)
    prev = c._set_isa("serial")
    try:
        for isa in c._available_isas():
            c._set_isa(isa)
            for n in (1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 768, 1536):
                for dt in (np.float64, np.float32):
                    a = (rng.uniform(-1e3, 1e3, n)).astype(dt)
                    b = (rng.uniform(-1e3, 1e3, n)).astype(dt)
                    want = oracle("drift")._cosine(a.tolist(), b.tolist())
                    assert abs(c._cosine(a, b) - want) <= 1e-12, (isa, n, dt)
        with pytest.raises(ValueError):
            c._set_isa("quantum")
    finally:
        c._set_isa(prev)


def test_c_list_path_is_bit_identical(oracle):
    from lukhas_fast._backend import tier_modules

    c = tier_modules("drift").get("c")
    if c is None:
        pytest.skip("C tier not built")
    rng = np.random.default_rng(2)
    for n in (1, 5, 64, 777):
        a = rng.uniform(-1e3, 1e3, n).tolist()
        b = rng.uniform(-1e3, 1e3, n).tolist()
        assert c._cosine(a, b) == oracle("drift")._cosine(a, b)
    assert math.isfinite(c._cosine(a, b))
