"""Differential tests: every tier against the pure-Python oracle on random operation sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

STRATS = ("skip_nth", "adaptive", "keep_recent")

thresholds = st.one_of(
    st.sampled_from([0.05, 0.1, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0]),
    st.floats(min_value=1e-6, max_value=1.0, exclude_min=True),
)

op = st.one_of(
    st.tuples(st.just("push"), st.integers(-5, 10**6)),
    st.tuples(st.just("push_prio"), st.integers(0, 10**6), st.one_of(st.none(), st.integers(0, 9), st.floats(0, 9))),
    st.tuples(st.just("push_many"), st.integers(1, 60)),
    st.tuples(st.just("pop_all")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("reset_stats")),
    st.tuples(st.just("set_threshold"), thresholds),
    st.tuples(st.just("set_factor"), st.integers(1, 6)),
    st.tuples(st.just("set_strategy"), st.sampled_from(STRATS)),
    st.tuples(st.just("set_push_count"), st.integers(-10, 10**9)),
)


def _state(r):
    stats = r.get_backpressure_stats()
    assert r.drop_rate == stats["drop_rate"]  # the accessor is the stats' value, on every tier
    return list(r), len(r), r.utilization, stats, r.drop_rate


def _apply(r, o, counter):
    kind = o[0]
    if kind == "push":
        return r.push(o[1])
    if kind == "push_prio":
        return r.push(o[1], priority=o[2])
    if kind == "push_many":
        for _ in range(o[1]):
            counter[0] += 1
            r.push(counter[0])
        return None
    if kind == "pop_all":
        return r.pop_all()
    if kind == "clear":
        return r.clear()
    if kind == "reset_stats":
        return r.reset_stats()
    if kind == "set_threshold":
        r.pressure_threshold = o[1]
        return None
    if kind == "set_factor":
        r.decimation_factor = o[1]
        return None
    if kind == "set_strategy":
        r.decimation_strategy = o[1]
        return None
    if kind == "set_push_count":
        r.push_count = o[1]
        return None
    raise AssertionError(kind)


@settings(max_examples=300)
@given(
    capacity=st.integers(1, 64),
    threshold=thresholds,
    factor=st.integers(1, 6),
    strategy=st.sampled_from(STRATS),
    protect=st.one_of(st.none(), st.integers(0, 9)),
    ops=st.lists(op, max_size=80),
)
def test_decimating_ring_matches_oracle(ring_impl, oracle, capacity, threshold, factor, strategy, protect, ops):
    ref_mod = oracle("ring")
    a = ring_impl.DecimatingRing(capacity, threshold, factor, strategy, protect_priority=protect)
    b = ref_mod.DecimatingRing(capacity, threshold, factor, strategy, protect_priority=protect)
    ca, cb = [0], [0]
    assert _state(a) == _state(b)
    for i, o in enumerate(ops):
        ra = _apply(a, o, ca)
        rb = _apply(b, o, cb)
        assert ra == rb, (i, o)
        assert _state(a) == _state(b), (i, o, ops[: i + 1])


@settings(max_examples=200)
@given(capacity=st.integers(1, 40), ops=st.lists(st.one_of(st.integers(0, 100), st.just("pop"), st.just("clear")), max_size=200))
def test_ring_matches_oracle(ring_impl, oracle, capacity, ops):
    a = ring_impl.Ring(capacity)
    b = oracle("ring").Ring(capacity)
    for o in ops:
        if o == "pop":
            assert a.pop_all() == b.pop_all()
        elif o == "clear":
            a.clear()
            b.clear()
        else:
            a.push(o)
            b.push(o)
        assert list(a) == list(b)
        assert len(a) == len(b) and a.utilization == b.utilization
