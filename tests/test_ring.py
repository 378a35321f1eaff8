"""Ring and DecimatingRing: spec examples, traces, hooks, validation, GC, on every tier."""

from __future__ import annotations

import gc
import sys
import threading
import tracemalloc
import weakref

import pytest

STATS_KEYS = [
    "capacity",
    "current_size",
    "utilization",
    "pressure_threshold",
    "total_pushes",
    "total_drops",
    "drop_rate",
    "decimation_events",
    "decimation_factor",
    "decimation_strategy",
    "last_decimation_utilization",
]


class Obj:
    """A weak-referenceable item."""

    def __init__(self, i):
        self.i = i

    def __repr__(self):
        return f"Obj({self.i})"


# --- Ring ----------------------------------------------------------------------

def test_ring_reference_example(ring_impl):
    r = ring_impl.Ring(3)
    for i in range(5):
        assert r.push(f"item_{i}") is None
    assert len(r) == 3
    assert r.pop_all() == ["item_2", "item_3", "item_4"]
    assert len(r) == 0 and r.capacity == 3
    r5 = ring_impl.Ring(5)
    assert r5.utilization == 0.0
    for i in range(3):
        r5.push(i)
    assert r5.utilization == 0.6


def test_ring_extras(ring_impl):
    r = ring_impl.Ring(4)
    for i in range(6):
        r.push(i)
    assert list(r) == [2, 3, 4, 5]
    assert list(r) == [2, 3, 4, 5]  # iteration does not consume
    assert repr(r) == "Ring(size=4, capacity=4)"
    r.clear()
    assert len(r) == 0 and list(r) == [] and r.pop_all() == []
    r.push("x")
    assert r.pop_all() == ["x"]


def test_ring_capacity_read_only(ring_impl):
    r = ring_impl.Ring(2)
    with pytest.raises(AttributeError):
        r.capacity = 5
    assert r.capacity == 2


@pytest.mark.parametrize(
    "bad,exc",
    [(0, ValueError), (-1, ValueError), (None, TypeError), (2.0, TypeError), (True, TypeError), ("3", TypeError)],
)
def test_ring_bad_capacity(ring_impl, bad, exc):
    with pytest.raises(exc, match="capacity"):
        ring_impl.Ring(bad)
    with pytest.raises(exc, match="capacity"):
        ring_impl.DecimatingRing(bad)


def test_huge_capacity_is_lazy(ring_impl):
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rings = [ring_impl.Ring(10**12) for _ in range(50)]
        drs = [ring_impl.DecimatingRing(10**12) for _ in range(50)]
        for r in rings + drs:
            r.push(1)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used < 2_000_000, used
    assert all(len(r) == 1 and r.capacity == 10**12 for r in rings + drs)


def test_ring_grows_and_wraps(ring_impl, oracle):
    ref = oracle("ring").Ring(37)
    r = ring_impl.Ring(37)
    for i in range(500):
        r.push(i)
        ref.push(i)
        if i % 53 == 0:
            assert r.pop_all() == ref.pop_all()
        assert list(r) == list(ref)
    assert len(r) == len(ref)


def test_ring_is_subclassable(ring_impl):
    class Mine(ring_impl.Ring):
        def push(self, x):
            super().push(x * 2)

    m = Mine(2)
    m.push(1)
    m.push(2)
    m.push(3)
    assert m.pop_all() == [4, 6]
    assert isinstance(m, ring_impl.Ring)


def test_subclass_without_super_init_fails_cleanly(ring_impl):
    class Broken(ring_impl.Ring):
        def __init__(self):
            pass

    b = Broken()
    try:
        b.push(1)
    except (RuntimeError, AttributeError) as exc:  # C: RuntimeError; Python: missing attribute
        assert "init" in str(exc).lower() or "_buf" in str(exc)
    else:  # pragma: no cover
        pytest.fail("push on an uninitialised ring must raise")


# --- DecimatingRing: worked traces -----------------------------------------------

def test_trace_skip_nth(ring_impl):
    dr = ring_impl.DecimatingRing(5, pressure_threshold=0.6, decimation_factor=2, decimation_strategy="skip_nth")
    seen = {}
    for i in range(10):
        dr.push(i)
        seen[i] = list(dr)
    assert seen[3] == [0, 1, 2, 3]
    assert seen[4] == [0, 1, 2, 3]
    assert seen[5] == [0, 2, 5]
    assert seen[6] == [0, 2, 5]
    assert seen[7] == [0, 2, 5, 7]
    assert seen[8] == [0, 2, 5, 7]
    assert seen[9] == [0, 5, 9]
    st = dr.get_backpressure_stats()
    assert list(st) == STATS_KEYS
    assert st["total_drops"] == 3 and dr.drops_total == 3
    assert st["decimation_events"] == 2
    assert st["utilization"] == 0.6
    assert st["last_decimation_utilization"] == 0.6
    assert st["total_pushes"] == 10 and st["drop_rate"] == 0.3 and dr.drop_rate == 0.3
    assert st["capacity"] == 5 and st["current_size"] == 3
    assert st["pressure_threshold"] == 0.6 and st["decimation_factor"] == 2
    assert st["decimation_strategy"] == "skip_nth"


def test_trace_keep_recent(ring_impl):
    dr = ring_impl.DecimatingRing(4, pressure_threshold=0.7, decimation_strategy="keep_recent")
    seen = {}
    for i in range(8):
        dr.push(i)
        seen[i] = list(dr)
    assert seen[3] == [2, 3] and seen[5] == [4, 5] and seen[7] == [6, 7]
    assert dr.drops_total == 0 and dr.decimation_events == 3
    assert dr.last_decimation_utilization == 0.5


def test_trace_adaptive(ring_impl):
    dr = ring_impl.DecimatingRing(6, pressure_threshold=0.5, decimation_factor=2, decimation_strategy="adaptive")
    for i in range(12):
        dr.push(i)
    assert list(dr) == [0, 2, 5, 9, 11]
    assert dr.drops_total == 4 and dr.decimation_events == 1


def test_adaptive_threshold_one_does_not_divide_by_zero(ring_impl, oracle):
    ref = oracle("ring").DecimatingRing(4, 1.0, 2, "adaptive")
    dr = ring_impl.DecimatingRing(4, 1.0, 2, "adaptive")
    for i in range(40):
        dr.push(i)
        ref.push(i)
        assert list(dr) == list(ref)
    assert dr.get_backpressure_stats() == ref.get_backpressure_stats()


def test_decimating_ring_is_a_ring(ring_impl):
    dr = ring_impl.DecimatingRing(10)
    assert isinstance(dr, ring_impl.Ring)
    dr.push(1)
    assert dr.utilization == 0.1 and dr.capacity == 10 and len(dr) == 1
    assert dr.pop_all() == [1]
    assert dr.pressure_threshold == 0.8 and dr.decimation_factor == 2
    assert dr.decimation_strategy == "skip_nth" and dr.last_decimation_utilization == 0.0
    assert dr.push_count == 1 and dr.drops_total == 0 and dr.decimation_events == 0


def test_reset_stats_keeps_contents(ring_impl):
    dr = ring_impl.DecimatingRing(5, 0.6)
    for i in range(10):
        dr.push(i)
    contents = list(dr)
    dr.reset_stats()
    assert list(dr) == contents
    st = dr.get_backpressure_stats()
    assert (st["total_pushes"], st["total_drops"], st["decimation_events"]) == (0, 0, 0)
    assert st["last_decimation_utilization"] == 0.0 and st["drop_rate"] == 0.0 and dr.drop_rate == 0.0


def test_decimation_needs_two_items(ring_impl):
    dr = ring_impl.DecimatingRing(1, 1.0, 2, "skip_nth")
    for i in range(5):
        dr.push(i)
    assert dr.decimation_events == 0
    assert len(dr) == 1


def test_factor_one_keeps_everything_but_counts(ring_impl):
    dr = ring_impl.DecimatingRing(3, 1.0, 1, "skip_nth")
    for i in range(6):
        dr.push(i)
    assert list(dr) == [3, 4, 5]
    assert dr.decimation_events == 4  # every push from the third on fills the ring


def test_attributes_assignable_and_validated(ring_impl):
    dr = ring_impl.DecimatingRing(10)
    dr.pressure_threshold = 0.5
    dr.decimation_factor = 3
    dr.decimation_strategy = "adaptive"
    dr.push_count = 7
    dr.drops_total = 2
    assert (dr.pressure_threshold, dr.decimation_factor, dr.decimation_strategy) == (0.5, 3, "adaptive")
    st = dr.get_backpressure_stats()
    assert st["total_pushes"] == 7 and st["total_drops"] == 2
    for name, value, exc in [
        ("pressure_threshold", 0.0, ValueError),
        ("pressure_threshold", 1.5, ValueError),
        ("pressure_threshold", float("nan"), ValueError),
        ("pressure_threshold", "0.5", TypeError),
        ("decimation_factor", 0, ValueError),
        ("decimation_factor", 2.0, TypeError),
        ("decimation_strategy", "random", ValueError),
        ("decimation_strategy", None, TypeError),
    ]:
        with pytest.raises(exc, match=name):
            setattr(dr, name, value)
    assert (dr.pressure_threshold, dr.decimation_factor, dr.decimation_strategy) == (0.5, 3, "adaptive")


@pytest.mark.parametrize(
    "kwargs,exc,name",
    [
        ({"pressure_threshold": 0}, ValueError, "pressure_threshold"),
        ({"pressure_threshold": -0.1}, ValueError, "pressure_threshold"),
        ({"pressure_threshold": 1.01}, ValueError, "pressure_threshold"),
        ({"pressure_threshold": None}, TypeError, "pressure_threshold"),
        ({"pressure_threshold": True}, TypeError, "pressure_threshold"),
        ({"decimation_factor": 0}, ValueError, "decimation_factor"),
        ({"decimation_factor": 1.5}, TypeError, "decimation_factor"),
        ({"decimation_strategy": "drop_all"}, ValueError, "decimation_strategy"),
        ({"decimation_strategy": 3}, TypeError, "decimation_strategy"),
        ({"protect_priority": "high"}, TypeError, "protect_priority"),
        ({"protect_priority": float("inf")}, TypeError, "protect_priority"),
    ],
)
def test_bad_constructor_arguments(ring_impl, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        ring_impl.DecimatingRing(10, **kwargs)


def test_threshold_accepts_ints_and_one(ring_impl):
    dr = ring_impl.DecimatingRing(10, pressure_threshold=1)
    assert dr.pressure_threshold == 1.0


# --- hooks ------------------------------------------------------------------------

def _priority_ring(base):
    class PriorityRing(base):
        calls = 0

        def _should_drop_item(self, item, priority, utilization):
            type(self).calls += 1
            if priority is not None and priority >= 5:
                return False
            return super()._should_drop_item(item, priority, utilization)

    return PriorityRing


def test_drop_hook_is_called(ring_impl, oracle):
    Fast = _priority_ring(ring_impl.DecimatingRing)
    Ref = _priority_ring(oracle("ring").DecimatingRing)
    a, b = Fast(10, 0.5, 2), Ref(10, 0.5, 2)
    for i in range(200):
        prio = 9 if i % 7 == 0 else None
        a.push(i, priority=prio)
        b.push(i, priority=prio)
        assert list(a) == list(b)
    assert a.get_backpressure_stats() == b.get_backpressure_stats()
    assert Fast.calls == Ref.calls > 0


def test_decimation_hook_is_called(ring_impl):
    class KeepNewest(ring_impl.DecimatingRing):
        def _apply_decimation(self):
            items = self.pop_all()
            for x in items[-2:]:
                self.push(x)  # re-push through the normal path
            self.decimation_events += 1

    k = KeepNewest(5, 1.0, 2, "keep_recent")
    for i in range(5):
        k.push(i)
    assert list(k) == [3, 4]
    assert k.decimation_events == 1


def test_super_apply_decimation_is_builtin(ring_impl, oracle):
    class Counting(ring_impl.DecimatingRing):
        n = 0

        def _apply_decimation(self):
            type(self).n += 1
            super()._apply_decimation()

    c = Counting(5, 0.6, 2, "skip_nth")
    ref = oracle("ring").DecimatingRing(5, 0.6, 2, "skip_nth")
    for i in range(10):
        c.push(i)
        ref.push(i)
    assert list(c) == list(ref) == [0, 5, 9]
    assert Counting.n == 2
    assert c.get_backpressure_stats() == ref.get_backpressure_stats()


def test_builtin_should_drop_item_callable(ring_impl):
    dr = ring_impl.DecimatingRing(10, 0.5, 3, "skip_nth")
    dr.push_count = 4
    assert dr._should_drop_item("x", None, 0.9) is True
    dr.push_count = 6
    assert dr._should_drop_item("x", None, 0.9) is False


# --- protect_priority (extra) -----------------------------------------------------

def test_protect_priority(ring_impl):
    dr = ring_impl.DecimatingRing(10, 0.5, 2, "skip_nth", protect_priority=5)
    for i in range(5):
        dr.push(i)
    # now under pressure: odd push counts drop, unless protected
    dr.push("low", priority=1)  # push_count 6 -> kept (6 % 2 == 0)
    dr.push("high", priority=5)  # push_count 7 -> would drop, protected
    dr.push("none")  # push_count 8 -> kept
    dr.push("low2", priority=4.9)  # push_count 9 -> dropped
    assert "high" in list(dr) and "low2" not in list(dr)
    assert dr.drops_total == 1


def test_protect_priority_rejects_bad_priority_without_state_change(ring_impl):
    dr = ring_impl.DecimatingRing(10, 0.5, protect_priority=5)
    dr.push(1)
    before = (list(dr), dr.get_backpressure_stats())
    with pytest.raises(TypeError, match="priority"):
        dr.push(2, priority="urgent")
    assert (list(dr), dr.get_backpressure_stats()) == before


def test_priority_ignored_by_default(ring_impl):
    a = ring_impl.DecimatingRing(6, 0.5)
    b = ring_impl.DecimatingRing(6, 0.5)
    for i in range(30):
        a.push(i, priority=100)
        b.push(i)
    assert list(a) == list(b)
    a.push(1, priority="anything goes when protection is off")


# --- GC and references -------------------------------------------------------------

@pytest.mark.parametrize("cls_name", ["Ring", "DecimatingRing"])
def test_ring_cycle_is_collectable(ring_impl, cls_name):
    r = getattr(ring_impl, cls_name)(8)
    r.push(r)
    holder = Obj(0)
    holder.ring = r
    r.push(holder)
    ref = weakref.ref(r)
    del r, holder
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("cls_name", ["Ring", "DecimatingRing"])
def test_evicted_and_popped_items_are_released(ring_impl, cls_name):
    r = getattr(ring_impl, cls_name)(3)
    objs = [Obj(i) for i in range(10)]
    refs = [weakref.ref(o) for o in objs]
    for o in objs:
        r.push(o)
    del objs, o
    kept = list(r)
    alive = [w for w in refs if w() is not None]
    assert len(alive) == len(kept)
    del kept
    out = r.pop_all()
    del out
    assert all(w() is None for w in refs)


def test_decimated_items_are_released(ring_impl):
    dr = ring_impl.DecimatingRing(10, 0.8, 3, "skip_nth")
    objs = [Obj(i) for i in range(200)]
    refs = [weakref.ref(o) for o in objs]
    for o in objs:
        dr.push(o)
    del objs, o
    held = {id(x) for x in dr}
    alive = [w() for w in refs if w() is not None]
    assert {id(x) for x in alive} == held
    del alive
    dr.clear()
    assert all(w() is None for w in refs)


def test_refcounts_stable_over_many_cycles(ring_impl):
    item = Obj("x")
    base = sys.getrefcount(item)
    r = ring_impl.Ring(64)
    dr = ring_impl.DecimatingRing(64, 0.5, 2, "adaptive")
    for i in range(100_000):
        r.push(item)
        dr.push(item)
        if i % 1000 == 999:
            r.pop_all()
            dr.pop_all()
    r.clear()
    dr.clear()
    assert sys.getrefcount(item) == base


def test_memory_stable_over_many_cycles(ring_impl):
    r = ring_impl.DecimatingRing(256, 0.5, 2, "skip_nth")
    for i in range(10_000):
        r.push(i)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):
            r.push(i)
            if i % 5000 == 0:
                r.pop_all()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 200_000, grown


def test_reentrant_del_during_eviction(ring_impl):
    r = ring_impl.Ring(2)

    class Pusher:
        def __del__(self):
            r.push("from-del")

    r.push(Pusher())
    r.push(1)
    r.push(2)  # evicts the Pusher, whose __del__ pushes again
    assert list(r) == [2, "from-del"]


def test_concurrent_pushes_are_consistent(ring_impl):
    r = ring_impl.DecimatingRing(1000, 0.9, 2, "skip_nth")

    def work():
        for i in range(20_000):
            r.push(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = r.get_backpressure_stats()
    assert st["total_pushes"] == 80_000
    assert 0 < st["current_size"] <= 1000


def test_reinit_starts_empty(ring_impl):
    for r in (ring_impl.Ring(10), ring_impl.DecimatingRing(10)):
        for i in range(10):
            r.push(i)
        r.__init__(3)
        assert len(r) == 0 and r.capacity == 3
        for i in range(5):
            r.push(i)
        assert len(r) <= 3
