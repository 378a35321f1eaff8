"""``DecimatingRing._backpressure_json``: the ring's statistics written as compact JSON
by the ring itself (``POST /consciousness/analyze`` answers a frame with them).  On every
tier, after any sequence of operations and counter overrides, the bytes must equal
``head + orjson.dumps(get_backpressure_stats()) + tail``; the remembered float and
strategy encodings must follow every change (value, encoder); an overridden
``get_backpressure_stats`` (subclass or instance) gives None; bad arguments raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

orjson = pytest.importorskip("orjson")

STRATS = ("skip_nth", "adaptive", "keep_recent")

# values the counters can be set to: signed 64-bit extremes included (the C tier's fields are Py_ssize_t)
counts = st.one_of(st.integers(-10, 10**6), st.sampled_from([-(2**63), 2**63 - 1, -1, 0, 1, 10**18]))
any_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from([0.0, -0.0, 1e-7, 1e16, 1e-5, 0.1, 1.0 / 3.0, 5e-324, 1.7976931348623157e308]))

op = st.one_of(
    st.tuples(st.just("push"), st.integers(1, 40)),
    st.tuples(st.just("push_prio"), st.one_of(st.none(), st.integers(0, 9), st.floats(0, 9))),
    st.tuples(st.just("pop_all")),
    st.tuples(st.just("reset_stats")),
    st.tuples(st.just("set_threshold"), st.floats(min_value=1e-6, max_value=1.0, exclude_min=True)),
    st.tuples(st.just("set_factor"), st.integers(1, 6)),
    st.tuples(st.just("set_strategy"), st.sampled_from(STRATS)),
    st.tuples(st.just("set_push_count"), counts),
    st.tuples(st.just("set_drops"), counts),
    st.tuples(st.just("set_events"), counts),
    st.tuples(st.just("set_last_util"), any_float),
)


def _apply(r, o) -> None:
    kind = o[0]
    if kind == "push":
        for i in range(o[1]):
            r.push(i)
    elif kind == "push_prio":
        r.push(0, priority=o[1])
    elif kind == "pop_all":
        r.pop_all()
    elif kind == "reset_stats":
        r.reset_stats()
    elif kind == "set_threshold":
        r.pressure_threshold = o[1]
    elif kind == "set_factor":
        r.decimation_factor = o[1]
    elif kind == "set_strategy":
        r.decimation_strategy = o[1]
    elif kind == "set_push_count":
        r.push_count = o[1]
    elif kind == "set_drops":
        r.drops_total = o[1]
    elif kind == "set_events":
        r.decimation_events = o[1]
    elif kind == "set_last_util":
        r.last_decimation_utilization = o[1]
    else:
        raise AssertionError(kind)


def _want(r, head: bytes = b"", tail: bytes = b"") -> bytes:
    return head + orjson.dumps(r.get_backpressure_stats()) + tail


@settings(max_examples=300)
@given(capacity=st.integers(1, 64), threshold=st.floats(min_value=1e-6, max_value=1.0, exclude_min=True),
       factor=st.integers(1, 6), strategy=st.sampled_from(STRATS), protect=st.one_of(st.none(), st.integers(0, 9)),
       head=st.binary(max_size=12), tail=st.binary(max_size=12), ops=st.lists(op, max_size=60))
def test_equals_orjson_of_the_stats_after_any_operations(ring_impl, capacity, threshold, factor, strategy, protect,
                                                        head, tail, ops):
    r = ring_impl.DecimatingRing(capacity, threshold, factor, strategy, protect_priority=protect)
    assert r._backpressure_json(orjson.dumps, head, tail) == _want(r, head, tail)
    for i, o in enumerate(ops):
        _apply(r, o)
        # twice: the second answer comes from the remembered encodings
        for _ in range(2):
            assert r._backpressure_json(orjson.dumps, head, tail) == _want(r, head, tail), (i, o, ops[: i + 1])


def test_remembered_encodings_follow_the_encoder(ring_impl):
    r = ring_impl.DecimatingRing(10, 0.8, 2, "skip_nth")
    for i in range(9):
        r.push(i)
    base = r._backpressure_json(orjson.dumps, b"", b"")
    assert base == _want(r)

    def tagged(v):  # another encoder: its own bytes for the floats and the name
        return b"<" + orjson.dumps(v) + b">" if isinstance(v, (float, str)) else orjson.dumps(v)

    other = r._backpressure_json(tagged, b"", b"")
    st_ = r.get_backpressure_stats()
    assert other == b"{" + b",".join(b'"%s":%s' % (k.encode(), b"%d" % v if type(v) is int else tagged(v))
                                     for k, v in st_.items()) + b"}"
    assert b'"pressure_threshold":<0.8>' in other and b'"decimation_strategy":<"skip_nth">' in other
    assert r._backpressure_json(orjson.dumps, b"", b"") == base  # and back
    # a new name object with the same text, a new threshold: re-encoded
    r.decimation_strategy = "".join(["adapt", "ive"])
    r.pressure_threshold = 0.25
    assert r._backpressure_json(orjson.dumps, b"", b"") == _want(r)
    assert b'"decimation_strategy":"adaptive"' in _want(r)
    # -0.0 and 0.0 are different values to JSON encoders
    r.last_decimation_utilization = 0.0
    assert r._backpressure_json(orjson.dumps, b"", b"") == _want(r)
    r.last_decimation_utilization = -0.0
    assert b'"last_decimation_utilization":-0.0}' in r._backpressure_json(orjson.dumps, b"", b"")
    r.last_decimation_utilization = math.nan
    assert b'"last_decimation_utilization":null}' in r._backpressure_json(orjson.dumps, b"", b"")


def test_overridden_stats_give_none(ring_impl):
    class Mine(ring_impl.DecimatingRing):
        def get_backpressure_stats(self):
            return {"mine": True}

    class Plain(ring_impl.DecimatingRing):
        pass

    assert Mine(4)._backpressure_json(orjson.dumps, b"", b"") is None
    p = Plain(4)
    p.push(1)
    assert p._backpressure_json(orjson.dumps, b"", b"") == _want(p)
    r = ring_impl.DecimatingRing(4)
    r.get_backpressure_stats = lambda: {"patched": 1}
    assert r._backpressure_json(orjson.dumps, b"", b"") is None
    del r.get_backpressure_stats
    assert r._backpressure_json(orjson.dumps, b"", b"") == _want(r)


def test_bad_arguments(ring_impl):
    r = ring_impl.DecimatingRing(4)
    r.push(1)
    with pytest.raises(TypeError, match="encode must return bytes"):
        r._backpressure_json(lambda v: "0.25", b"", b"")
    with pytest.raises(TypeError):
        r._backpressure_json(orjson.dumps, None, b"")
    with pytest.raises(TypeError):
        r._backpressure_json(orjson.dumps, b"", "}")
    with pytest.raises(ZeroDivisionError):  # the encoder's own error comes through
        r._backpressure_json(lambda v: 1 / 0, b"", b"")
    assert r._backpressure_json(orjson.dumps, b"", b"") == _want(r)  # nothing half-remembered


@pytest.mark.parametrize("capacity", [1, 7, 4096, 4097, 10000])
def test_every_size_and_a_changed_capacity(ring_impl, capacity):
    """The utilization of every size (remembered per size up to capacity 4096 on the C
    tier, one value at a time above), and after ``__setstate__`` changed the capacity."""
    r = ring_impl.DecimatingRing(capacity, 1.0, 2, "keep_recent")
    for i in range(capacity + 3):  # every size up to full, then a decimation
        assert r._backpressure_json(orjson.dumps, b"", b"") == _want(r), i
        r.push(i)
    assert r._backpressure_json(orjson.dumps, b"", b"") == _want(r)
    other = ring_impl.DecimatingRing(capacity * 2 + 1, 1.0, 2, "keep_recent")
    for i in range(capacity):
        other.push(i)
    r.__setstate__(other.__reduce__()[2])
    assert r.capacity == capacity * 2 + 1
    for i in range(3):
        assert r._backpressure_json(orjson.dumps, b"", b"") == _want(r), i
        r.push(i)
