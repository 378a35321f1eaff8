"""SpscRing: single-thread semantics, bad input, differential vs oracle, two-thread stress."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_basic_width1(ring_impl, dtype):
    r = ring_impl.SpscRing(5, 1, dtype)
    assert r.capacity == 8 and r.width == 1 and r.dtype == np.dtype(dtype)
    assert len(r) == 0 and r.pop() is None
    assert r.pop_many().shape == (0,)
    for i in range(8):
        assert r.push(i) is True
    assert r.push(99) is False
    assert (r.pushed, r.popped, r.dropped, len(r)) == (8, 0, 1, 8)
    assert r.pop() == 0
    out = r.pop_many(3)
    assert out.dtype == np.dtype(dtype) and out.tolist() == [1, 2, 3]
    assert r.push_many(np.arange(10, 20, dtype=dtype)) == 4
    assert r.dropped == 7
    assert r.pop_many().tolist() == [4, 5, 6, 7, 10, 11, 12, 13]
    assert (r.pushed, r.popped, len(r)) == (12, 12, 0)


def test_width3_records(ring_impl):
    r = ring_impl.SpscRing(4, width=3, dtype="float32")
    assert r.push([1, 2, 3]) and r.push(np.array([4.0, 5.0, 6.0]))
    assert r.push((7, 8, 9))
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert r.push_many(rows) == 1
    out = r.pop_many(2)
    assert out.shape == (2, 3) and out.tolist() == [[1, 2, 3], [4, 5, 6]]
    rec = r.pop()
    assert isinstance(rec, np.ndarray) and rec.tolist() == [7, 8, 9]
    assert r.pop_many().tolist() == [[0, 1, 2]]
    assert r.pop() is None


def test_wraparound_preserves_order(ring_impl):
    r = ring_impl.SpscRing(16, width=2, dtype="int64")
    nxt = 0
    expect = 0
    for step in range(200):
        n = (step * 7) % 13 + 1
        batch = np.arange(nxt, nxt + 2 * n, dtype=np.int64).reshape(n, 2)
        k = r.push_many(batch)
        nxt += 2 * k
        out = r.pop_many((step * 5) % 11 + 1)
        flat = out.reshape(-1).tolist()
        assert flat == list(range(expect, expect + len(flat)))
        expect += len(flat)
    assert r.pushed - r.popped == len(r)


def test_scalar_conversions(ring_impl, oracle):
    ref = oracle("ring")
    for dtype, value in [
        ("float64", 1.5), ("float64", 3), ("float32", 1e300), ("float32", 2**70),
        ("int64", 7), ("int64", 7.0), ("int64", -(2**63)), ("float64", np.float32(0.1)),
    ]:
        a, b = ring_impl.SpscRing(4, 1, dtype), ref.SpscRing(4, 1, dtype)
        a.push(value)
        b.push(value)
        va, vb = a.pop(), b.pop()
        assert va == vb and type(va) is type(vb), (dtype, value, va, vb)


@pytest.mark.parametrize(
    "dtype,value,exc",
    [
        ("int64", 2**63, ValueError),
        ("int64", 1.5, ValueError),
        ("int64", float("nan"), ValueError),
        ("int64", 1e19, ValueError),
        ("float64", 10**400, ValueError),
        ("float64", "1.0", TypeError),
        ("float64", None, TypeError),
        ("float64", True, TypeError),
        ("float64", [1.0, 2.0], ValueError),
    ],
)
def test_bad_push_leaves_ring_unchanged(ring_impl, dtype, value, exc):
    r = ring_impl.SpscRing(4, 1, dtype)
    r.push(1)
    with pytest.raises(exc, match="record"):
        r.push(value)
    assert (len(r), r.pushed, r.dropped) == (1, 1, 0)
    assert r.pop() == 1


def test_bad_push_many_leaves_ring_unchanged(ring_impl):
    r = ring_impl.SpscRing(8, 2, "float64")
    r.push([1, 2])
    good = np.zeros((3, 2))
    cases = [
        ([[1.0, 2.0]], TypeError),  # a list, not an array/buffer
        (np.zeros((3, 2), dtype=np.float32), TypeError),
        (np.zeros((3, 2), dtype=">f8"), TypeError),
        (np.zeros((3, 4))[:, ::2], ValueError),  # non-contiguous
        (np.zeros((3, 3)), ValueError),
        (np.zeros(6), ValueError),
        (np.zeros((2, 3, 2)), ValueError),
        ("abc", TypeError),
    ]
    for bad, exc in cases:
        with pytest.raises(exc, match="array"):
            r.push_many(bad)
    assert (len(r), r.pushed, r.dropped) == (1, 1, 0)
    assert r.push_many(good) == 3


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"capacity": 0}, ValueError),
        ({"capacity": 1.5}, TypeError),
        ({"capacity": 4, "width": 0}, ValueError),
        ({"capacity": 4, "width": "2"}, TypeError),
        ({"capacity": 4, "dtype": "int32"}, ValueError),
        ({"capacity": 4, "dtype": "nope"}, TypeError),
    ],
)
def test_bad_constructor(ring_impl, kwargs, exc):
    with pytest.raises(exc):
        ring_impl.SpscRing(**kwargs)


def test_bad_pop_many(ring_impl):
    r = ring_impl.SpscRing(4)
    r.push(1.0)
    with pytest.raises(ValueError, match="max_rows"):
        r.pop_many(-1)
    with pytest.raises(TypeError, match="max_rows"):
        r.pop_many(1.0)
    assert r.pop_many(0).shape == (0,)
    assert len(r) == 1


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.floats(-1e6, 1e6, allow_nan=False)),
        st.tuples(st.just("push_many"), st.integers(0, 40)),
        st.tuples(st.just("pop")),
        st.tuples(st.just("pop_many"), st.one_of(st.none(), st.integers(0, 40))),
    ),
    max_size=60,
)


@settings(max_examples=150)
@given(cap=st.integers(1, 64), width=st.sampled_from([1, 2, 5]), dtype=st.sampled_from(["float64", "float32", "int64"]), ops=ops)
def test_spsc_matches_oracle(ring_impl, oracle, cap, width, dtype, ops):
    a = ring_impl.SpscRing(cap, width, dtype)
    b = oracle("ring").SpscRing(cap, width, dtype)
    counter = 0
    for o in ops:
        if o[0] == "push":
            v = round(o[1]) if dtype == "int64" else o[1]
            rec = v if width == 1 else [v + j for j in range(width)]
            assert a.push(rec) == b.push(rec)
        elif o[0] == "push_many":
            arr = np.arange(counter, counter + o[1] * width, dtype=dtype)
            arr = arr if width == 1 else arr.reshape(o[1], width)
            counter += o[1] * width
            assert a.push_many(arr) == b.push_many(arr)
        elif o[0] == "pop":
            x, y = a.pop(), b.pop()
            if isinstance(x, np.ndarray):
                assert x.tolist() == y.tolist()
            else:
                assert x == y
        else:
            x, y = a.pop_many(o[1]), b.pop_many(o[1])
            assert x.shape == y.shape and x.dtype == y.dtype and x.tolist() == y.tolist()
        assert (len(a), a.pushed, a.popped, a.dropped) == (len(b), b.pushed, b.popped, b.dropped)


@pytest.mark.slow
def test_two_thread_stress(ring_impl):
    """2,000,000 records through a small ring: every record once, in order, unchanged."""
    total = 2_000_000
    width = 2
    r = ring_impl.SpscRing(4096, width, "int64")
    batch_rows = 1024
    errors = []

    def producer():
        sent = 0
        while sent < total:
            n = min(batch_rows - (sent % 7), total - sent)
            base = np.arange(sent, sent + n, dtype=np.int64)
            rows = np.stack([base, -base], axis=1)
            off = 0
            while off < n:
                off += r.push_many(rows[off:])
            sent += n

    got = [0]

    def consumer():
        expect = 0
        while expect < total:
            out = r.pop_many(777)
            k = out.shape[0]
            if k:
                want = np.arange(expect, expect + k, dtype=np.int64)
                if not (np.array_equal(out[:, 0], want) and np.array_equal(out[:, 1], -want)):
                    errors.append(expect)
                    return
                expect += k
        got[0] = expect

    tc = threading.Thread(target=consumer)
    tp = threading.Thread(target=producer)
    tc.start()
    tp.start()
    tp.join(120)
    tc.join(120)
    assert not errors, f"out-of-order or corrupted record near {errors}"
    assert got[0] == total
    assert r.pushed == total and r.popped == total and len(r) == 0
