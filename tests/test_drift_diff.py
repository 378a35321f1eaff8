"""Differential tests: every drift tier against the pure-Python oracle (tolerance 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

TOL = 1e-12
DTYPES = ["float64", "float32", "int64", "int32"]


@pytest.fixture(autouse=True)
def _no_metrics(monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")


dims = st.one_of(st.integers(0, 64), st.sampled_from([384, 768, 1536]))
values = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def vector_pair(draw):
    n = draw(dims)
    dtype = draw(st.sampled_from(DTYPES))
    if dtype.startswith("int"):
        elems = st.integers(-1000, 1000)
    else:
        elems = values
    a = draw(hnp.arrays(dtype, n, elements=elems))
    b = draw(hnp.arrays(dtype, n, elements=elems))
    if draw(st.booleans()) and n:
        # make them correlated so cosines are not all near 0
        b = (a * draw(st.sampled_from([1, -1, 2])) + b // 7 if dtype.startswith("int") else a * 0.9 + b * 0.1).astype(dtype)
    form = draw(st.sampled_from(["list", "tuple", "array", "strided", "mixed"]))
    if form == "list":
        return a.tolist(), b.tolist()
    if form == "tuple":
        return tuple(a.tolist()), tuple(b.tolist())
    if form == "strided":
        big_a = np.repeat(a, 2)
        big_b = np.repeat(b, 3)
        return big_a[::2], big_b[::3]
    if form == "mixed":
        return a.tolist(), b
    return a, b


def _same_error_or_close(fn_fast, fn_ref):
    try:
        want = fn_ref()
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            fn_fast()
        return None
    got = fn_fast()
    return got, want


@settings(max_examples=200)
@given(pair=vector_pair())
def test_cosine_matches_oracle(drift_impl, oracle, pair):
    a, b = pair
    res = _same_error_or_close(lambda: drift_impl._cosine(a, b), lambda: oracle("drift")._cosine(a, b))
    if res is not None:
        got, want = res
        assert abs(got - want) <= TOL, (got, want)


@settings(max_examples=60)
@given(
    lane=st.sampled_from(["experimental", "candidate", "prod", "labs", "production"]),
    seq=st.lists(vector_pair(), min_size=1, max_size=90),
)
def test_update_sequence_matches_oracle(drift_impl, oracle, lane, seq):
    fast = drift_impl.DriftMonitor(lane)
    ref = oracle("drift").DriftMonitor(lane)
    for a, b in seq:
        r_ref = ref.update(a, b)
        r = fast.update(a, b)
        assert r["lane"] == r_ref["lane"] and r["n"] == r_ref["n"]
        assert abs(r["drift"] - r_ref["drift"]) <= TOL
        assert abs(r["ema"] - r_ref["ema"]) <= TOL
        if r["guardian"] != r_ref["guardian"]:
            cfg = ref.cfg
            near = min(abs(r_ref["ema"] - cfg.warn_threshold), abs(r_ref["ema"] - cfg.block_threshold))
            assert near <= TOL, (r, r_ref)
    assert len(fast._raw) == len(ref._raw)
    assert max((abs(x - y) for x, y in zip(fast._raw, ref._raw)), default=0.0) <= TOL


@settings(max_examples=40)
@given(
    n=st.integers(0, 40),
    d=st.sampled_from([1, 3, 8, 17, 64, 384]),
    dtype=st.sampled_from(DTYPES),
    bad=st.one_of(st.none(), st.tuples(st.integers(0, 39), st.sampled_from([np.nan, np.inf, -np.inf]))),
    seed=st.integers(0, 2**32 - 1),
)
def test_update_many_matches_oracle(drift_impl, oracle, n, d, dtype, bad, seed):
    rng = np.random.default_rng(seed)
    A = rng.uniform(-1e3, 1e3, (n, d))
    B = A * 0.5 + rng.uniform(-1e3, 1e3, (n, d))
    if bad is not None and bad[0] < n and not dtype.startswith("int"):
        B[bad[0], d // 2] = bad[1]
    A, B = A.astype(dtype), B.astype(dtype)
    fast = drift_impl.DriftMonitor("prod")
    ref = oracle("drift").DriftMonitor("prod")
    try:
        r_ref = ref.update_many(A, B)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc).split(":")[0]):
            fast.update_many(A, B)
        assert fast.ema == 0.0 and fast._raw == []
        return
    r = fast.update_many(A, B)
    assert np.all(np.abs(r["drift"] - r_ref["drift"]) <= TOL)
    assert np.all(np.abs(r["ema"] - r_ref["ema"]) <= TOL)
    assert r["n"] == r_ref["n"] and r["lane"] == r_ref["lane"]
    near = np.minimum(np.abs(r_ref["ema"] - 0.15), np.abs(r_ref["ema"] - 0.25))
    mism = r["guardian_code"] != r_ref["guardian_code"]
    assert np.all(near[mism] <= TOL)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 1)])
def test_arrays_of_other_dimensions_are_named_like_the_oracle(drift_impl, oracle, shape):
    def message(mod):
        with pytest.raises(ValueError) as info:
            mod.cosine_similarity(np.zeros(shape), np.zeros(3))
        return str(info.value)

    assert message(drift_impl) == message(oracle("drift")) == f"a must be 1-D, got {len(shape)}-D array of shape {shape}"
