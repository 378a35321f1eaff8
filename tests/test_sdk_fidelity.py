"""Code and tests written for the pure-Python SDK run unchanged, on every tier
(issue 12): module-level patches of the consciousness ticker, a Mock ticker,
attributes and per-instance patches on rings, patched detectors, the restored
reference behaviours, pickling.  Written the way SDK users write their tests:
``unittest.mock.patch``, ``patch.object``, ``patch.dict(os.environ)``."""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import threading
import time
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lukhas_fast.consciousness_ticker as ct_mod

CT = "lukhas_fast.consciousness_ticker"


# --- 2. ConsciousnessTicker as the SDK writes it -------------------------------------------

def _run_ticks(ct, n):
    ct.ticker.mode = "catchup"
    ct.ticker.fps = 1e9
    ct.ticker.subscribe(lambda i: ct.stop() if i == n - 1 else None)
    ct.start(seconds=5)
    assert ct.ticker.tick_count == n


def test_module_names_like_the_sdk():
    for name in ("PROM", "TICK", "TICKS_DROPPED", "SUB_EXC", "LANE"):
        assert hasattr(ct_mod, name), name
    assert ct_mod.LANE == os.environ.get("LUKHAS_LANE", "experimental")
    assert isinstance(ct_mod.PROM, bool)


def test_patched_tick_metric_is_used(clock_impl):
    with mock.patch(f"{CT}.TICK") as tick, mock.patch(f"{CT}.PROM", True):
        ct = clock_impl.ConsciousnessTicker(fps=1000)
        _run_ticks(ct, 5)
    tick.labels.assert_called_with(lane=ct_mod.LANE)
    assert tick.labels.return_value.observe.call_count == 5
    assert all(c.args[0] >= 0 for c in tick.labels.return_value.observe.call_args_list)


def test_patched_tick_metric_after_construction(clock_impl):
    """The names are read when the ticker ticks, not when it is built."""
    ct = clock_impl.ConsciousnessTicker(fps=1000)
    with mock.patch(f"{CT}.TICK") as tick, mock.patch(f"{CT}.PROM", True), mock.patch(f"{CT}.LANE", "canary"):
        _run_ticks(ct, 3)
    tick.labels.assert_called_with(lane="canary")
    assert tick.labels.return_value.observe.call_count == 3


def test_prom_false_switches_metrics_off(clock_impl):
    with mock.patch(f"{CT}.TICK") as tick, mock.patch(f"{CT}.TICKS_DROPPED") as drops, \
            mock.patch(f"{CT}.PROM", False):
        ct = clock_impl.ConsciousnessTicker(fps=1000, cap=4)
        assert ct.metrics_enabled is False
        _run_ticks(ct, 10)
    assert ct.frames_dropped > 0
    tick.labels.assert_not_called()
    drops.labels.assert_not_called()


def test_metrics_false_instance_ignores_prom(clock_impl):
    with mock.patch(f"{CT}.TICK") as tick, mock.patch(f"{CT}.PROM", True):
        ct = clock_impl.ConsciousnessTicker(fps=1000, metrics=False)
        _run_ticks(ct, 3)
    tick.labels.assert_not_called()


def test_patched_drop_and_exception_counters(clock_impl):
    with mock.patch(f"{CT}.TICKS_DROPPED") as drops, mock.patch(f"{CT}.SUB_EXC") as exc, \
            mock.patch(f"{CT}.TICK"), mock.patch(f"{CT}.PROM", True), mock.patch(f"{CT}.LANE", "prod"):
        ct = clock_impl.ConsciousnessTicker(fps=1000, cap=4)
        _run_ticks(ct, 10)
        assert drops.labels.return_value.inc.call_count == ct.frames_dropped > 0
        drops.labels.assert_called_with(lane="prod")
        exc.labels.assert_not_called()
        bad = clock_impl.ConsciousnessTicker(fps=1000)
        bad.buffer = None  # the handler now raises
        logging.getLogger("lukhas_fast.clock").disabled = True
        try:
            _run_ticks(bad, 3)
        finally:
            logging.getLogger("lukhas_fast.clock").disabled = False
        assert exc.labels.return_value.inc.call_count == 3
        exc.labels.assert_called_with(lane="prod")


def test_lane_env_and_reload(clock_impl):
    """patch.dict(os.environ) + reload of the module changes LANE, as in the SDK;
    a ticker built before the reload follows it too (it reads LANE per tick)."""
    before = clock_impl.ConsciousnessTicker(fps=1000)
    try:
        with mock.patch.dict(os.environ, {"LUKHAS_LANE": "canary"}):
            mod = importlib.reload(ct_mod)
            assert mod is ct_mod and mod.LANE == "canary"
            with mock.patch(f"{CT}.TICK") as tick, mock.patch(f"{CT}.PROM", True):
                after = clock_impl.ConsciousnessTicker(fps=1000)
                _run_ticks(after, 2)
                tick.labels.assert_called_with(lane="canary")
                tick.reset_mock()
                _run_ticks(before, 2)
                tick.labels.assert_called_with(lane="canary")
            assert after.lane == "canary"
    finally:
        importlib.reload(ct_mod)
    assert ct_mod.LANE == os.environ.get("LUKHAS_LANE", "experimental")


def test_mock_ticker_sees_the_sdk_calls(clock_impl):
    ct = clock_impl.ConsciousnessTicker(fps=30)
    ct.ticker = mock.Mock()
    ct.start(seconds=2)
    ct.ticker.run.assert_called_once_with(seconds=2)
    ct.start()
    ct.ticker.run.assert_called_with(seconds=0)
    ct.stop()
    assert ct.ticker.running is False
    ct.ticker.stop.assert_not_called()


def test_stop_from_another_thread_ends_the_loop(clock_impl):
    ct = clock_impl.ConsciousnessTicker(fps=20)
    th = threading.Thread(target=ct.start, kwargs={"seconds": 30})
    th.start()
    time.sleep(0.15)
    t0 = time.perf_counter()
    ct.stop()
    th.join(5)
    assert not th.is_alive() and time.perf_counter() - t0 < 1.0
    assert ct.ticker.running is False and ct.ticker.tick_count >= 1


def test_patched_ring_push_is_what_the_ticker_calls(clock_impl):
    ct = clock_impl.ConsciousnessTicker(fps=1000)
    with mock.patch.object(ct.buffer, "push") as push:
        _run_ticks(ct, 4)
    assert [c.args[0] for c in push.call_args_list] == [{"id": i} for i in range(4)]


# --- 5. ticker: fps as given, realtime re-anchoring ------------------------------------

def test_fps_target_as_given(clock_impl):
    t = clock_impl.Ticker(fps=50)
    m = t.get_metrics()
    assert m["fps_target"] == 50 and type(m["fps_target"]) is int and t.fps == 50
    assert clock_impl.Ticker(fps=2.5).get_metrics()["fps_target"] == 2.5
    t.fps = 25
    assert t.get_metrics()["fps_target"] == 25 and t.period == 0.04
    assert "fps=25 " in t.summary()


def test_next_slot_reanchors_to_the_next_future_slot():
    from lukhas_fast._clock_py import next_slot

    # 50 fps: tick 5 (due at 100 ms) runs until 170 ms -> the next tick is at 180 ms
    k, due = next_slot(0.0, 5, 0.02, "realtime", 0.170)
    assert k == 9 and due == pytest.approx(0.18)
    assert next_slot(0.0, 5, 0.02, "catchup", 0.170) == (6, pytest.approx(0.12))
    assert next_slot(0.0, 5, 0.02, "realtime", 0.110) == (6, pytest.approx(0.12))  # on time
    for now in (0.1201, 0.13, 0.1399, 0.5):
        k, due = next_slot(0.0, 5, 0.02, "realtime", now)
        assert now - 1e-12 <= due <= now + 0.02 + 1e-12  # on the grid, the next slot not yet begun
        assert abs(due / 0.02 - round(due / 0.02)) < 1e-9


def test_realtime_overrun_stays_on_the_grid(clock_impl):
    """10 fps; tick 1 (due at 100 ms) runs until ~270 ms: tick 2 runs at the
    300 ms slot (the old behaviour ran it at once, 30 ms off the grid)."""
    t = clock_impl.Ticker(fps=10)
    stamps = []

    def sub(i):
        stamps.append(time.perf_counter())
        if i == 1:
            time.sleep(0.17)
        if i == 3:
            t.stop()

    t.subscribe(sub)
    t.run(5)
    base = stamps[0]
    offs = [s - base for s in stamps]
    assert len(offs) == 4
    assert offs[2] == pytest.approx(0.3, abs=0.02), offs
    assert offs[3] == pytest.approx(0.4, abs=0.02), offs


# --- 3. rings take attributes and per-instance patches ------------------------------------

def test_ring_attributes(ring_impl):
    for r in (ring_impl.Ring(3), ring_impl.DecimatingRing(3)):
        r.note = 1
        r.owner = "me"
        assert r.note == 1 and vars(r) == {"note": 1, "owner": "me"}
        del r.note
        assert not hasattr(r, "note")
        with pytest.raises(AttributeError):
            r.capacity = 5  # read-only stays read-only


def test_ring_push_patch_object(ring_impl):
    for r in (ring_impl.Ring(3), ring_impl.DecimatingRing(3)):
        with mock.patch.object(r, "push", side_effect=ValueError("nope")) as push:
            with pytest.raises(ValueError, match="nope"):
                r.push(1)
            push.assert_called_once_with(1)
        assert "push" not in vars(r)
        r.push(2)
        assert list(r) == [2]


def test_decimating_ring_instance_overrides(ring_impl, oracle):
    """Per-instance patches of the two policy hooks are called, on every tier, like the oracle."""
    results = []
    for m in (ring_impl, oracle("ring")):
        d = m.DecimatingRing(10, 0.5, 2)
        with mock.patch.object(d, "_should_drop_item", return_value=False) as drop, \
                mock.patch.object(d, "_apply_decimation") as dec:
            for i in range(30):
                d.push(i)
        results.append((list(d), d.drops_total, drop.call_count, dec.call_count,
                        [c.args for c in drop.call_args_list][:3]))
        # unpatched again: the built-in policy
        d.push(99)
        results.append((list(d), d.drops_total, d.decimation_events))
    assert results[0] == results[2] and results[1] == results[3]
    assert results[0][2] > 0 and results[0][3] > 0 and results[0][1] == 0


# --- 4. patched detectors are called on every tier -------------------------------------------

PLAN = {"action": "send_payment", "params": {"email": "a@b.com", "url": "https://x.io", "amount": 5}}


def _names(tp):
    return [t.name for t in tp.tags]


def test_instance_detector_patch(tags_impl, oracle):
    out = []
    for m in (tags_impl, oracle("tags")):
        e = m.SafetyTagEnricher(enable_caching=False)
        base = _names(e.enrich_plan(PLAN))
        seen = []
        pii = e.detectors[0]
        pii.detect = lambda plan, ctx: seen.append(plan) or m.SafetyTag("custom", m.SafetyTagCategory.COMPLIANCE, "d")
        got = _names(e.enrich_plan(PLAN))
        assert len(seen) == 1 and seen[0]["params"]["email"] == "a@b.com"
        del pii.detect
        again = _names(e.enrich_plan(PLAN))
        out.append((base, got, again))
    assert out[0] == out[1]
    base, got, again = out[0]
    assert got[0] == "custom" and got[1:] == base[1:] and again == base


def test_class_detector_patch_and_error(tags_impl, oracle, caplog):
    out = []
    for m in (tags_impl, oracle("tags")):
        e = m.SafetyTagEnricher(enable_caching=False)
        # the classes the enricher instantiated (m.PIIDetector unless a test reloaded _tags_py)
        pii_cls, gdpr_cls = type(e.detectors[0]), type(e.detectors[5])
        assert pii_cls.__name__ == "PIIDetector" and gdpr_cls.__name__ == "GDPRDetector"
        with mock.patch.object(pii_cls, "detect", side_effect=RuntimeError("boom")) as det:
            with caplog.at_level(logging.ERROR, logger="lukhas_fast.safety_tags"):
                caplog.clear()
                got = _names(e.enrich_plan(PLAN))
            assert det.call_count == 1
            assert any("boom" in r.getMessage() for r in caplog.records)
        with mock.patch.object(gdpr_cls, "detect", return_value=None):
            no_gdpr = _names(e.enrich_plan({"action": "data_export_gdpr"}))
        out.append((got, no_gdpr, _names(e.enrich_plan(PLAN))))
    assert out[0] == out[1]
    got, no_gdpr, after = out[0]
    assert "pii" not in got and "pii" in after and "financial" in got and no_gdpr == []


def test_class_patch_with_a_plain_function(tags_impl, oracle):
    """Replacing ``detect`` on the class with a function (not a Mock) is seen too."""
    out = []
    for m in (tags_impl, oracle("tags")):
        e = m.SafetyTagEnricher(enable_caching=False)
        cls = type(e.detectors[1])
        calls = []

        def detect(self, plan, context):
            calls.append(self.tag_name)
            return None

        with mock.patch.object(cls, "detect", detect):
            got = _names(e.enrich_plan(PLAN))
        out.append((got, calls, _names(e.enrich_plan(PLAN))))
    assert out[0] == out[1] and out[0][1] == ["financial"] and "financial" not in out[0][0]
    assert "financial" in out[0][2]


def test_detector_patch_through_a_hook_subclass(tags_impl):
    """The generic (hook-calling) path honours patches too."""

    class Sub(tags_impl.SafetyTagEnricher):
        def preprocess_text(self, text):
            return super().preprocess_text(text)

    e = Sub(enable_caching=False)
    with mock.patch.object(type(e.detectors[0]), "detect", return_value=None) as det:
        assert "pii" not in _names(e.enrich_plan(PLAN))
    assert det.called and "pii" in _names(e.enrich_plan(PLAN))


# --- 5. drift lane "" ------------------------------------------------------------------------

def test_empty_lane_falls_back_like_none(drift_impl):
    with mock.patch.dict(os.environ, {"LUKHAS_LANE": "prod"}):
        assert drift_impl.DriftMonitor(lane="").lane == "prod" == drift_impl.DriftMonitor(lane=None).lane
    with mock.patch.dict(os.environ, {}, clear=False):
        os.environ.pop("LUKHAS_LANE", None)
        assert drift_impl.DriftMonitor(lane="").lane == "experimental"
        assert drift_impl.DriftMonitor("").cfg == drift_impl.LANE_CFG["experimental"]
    with pytest.raises(TypeError, match="lane"):
        drift_impl.DriftMonitor(lane=0)


# --- 6. pickling -------------------------------------------------------------------------------

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def _ring_state(r):
    st = {"items": list(r), "capacity": r.capacity, "attrs": dict(vars(r))}
    if hasattr(r, "get_backpressure_stats"):
        st["stats"] = r.get_backpressure_stats()
        st["protect"] = r.protect_priority
    return st


@given(ops=st.lists(st.integers(0, 50), max_size=60), strategy=st.sampled_from(["skip_nth", "adaptive", "keep_recent"]),
       cap=st.integers(1, 12), proto=st.sampled_from(list(PROTOCOLS)))
def test_rings_pickle_round_trip(ring_impl, ops, strategy, cap, proto):
    rings = [ring_impl.Ring(cap), ring_impl.DecimatingRing(cap, 0.6, 3, strategy, protect_priority=7)]
    for r in rings:
        for x in ops:
            r.push(x)
        r.label = "x"
        copy = pickle.loads(pickle.dumps(r, proto))
        assert type(copy) is type(r) and _ring_state(copy) == _ring_state(r)
        for x in range(25):  # the copy goes on exactly like the original
            r.push(x)
            copy.push(x)
        assert _ring_state(copy) == _ring_state(r)


def test_ring_subclass_pickles(ring_impl):
    global _SubRing

    class _SubRing(ring_impl.DecimatingRing):
        pass

    _SubRing.__qualname__ = "_SubRing"
    r = _SubRing(5, decimation_strategy="keep_recent")
    for i in range(9):
        r.push(i)
    copy = pickle.loads(pickle.dumps(r))
    assert type(copy) is _SubRing and _ring_state(copy) == _ring_state(r)


def test_ring_bad_state_is_refused(ring_impl):
    r = ring_impl.Ring.__new__(ring_impl.Ring)
    with pytest.raises(TypeError, match="state"):
        r.__setstate__([1, 2])
    with pytest.raises(ValueError, match="capacity"):
        r.__setstate__({"capacity": 0, "items": []})
    d = ring_impl.DecimatingRing(4)
    st = d.__reduce__()[2]
    with pytest.raises(ValueError, match="decimation_strategy"):
        d.__setstate__(dict(st, decimation_strategy="nope"))
    with pytest.raises(ValueError, match="push_count"):
        d.__setstate__(dict(st, push_count=-1))


def test_spsc_and_tickers_refuse_pickling(ring_impl, clock_impl):
    with pytest.raises(TypeError, match="cannot pickle 'SpscRing'"):
        pickle.dumps(ring_impl.SpscRing(8))
    with pytest.raises(TypeError, match="cannot pickle 'Ticker'"):
        pickle.dumps(clock_impl.Ticker(10))
    with pytest.raises(TypeError, match="cannot pickle 'ConsciousnessTicker'"):
        pickle.dumps(clock_impl.ConsciousnessTicker(10))


@pytest.mark.parametrize("proto", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_drift_monitor_pickles(drift_impl, proto):
    m = drift_impl.DriftMonitor("prod", metrics=False)
    for i in range(30):
        m.update([1.0, float(i % 3)], [1.0, 0.5])
    copy = pickle.loads(pickle.dumps(m, proto))
    assert type(copy) is type(m) and copy.snapshot() == m.snapshot() and copy.metrics is False
    assert copy.cfg == m.cfg
    assert copy.update([0.2, 1.0], [1.0, 0.1]) == m.update([0.2, 1.0], [1.0, 0.1])


def test_tags_pickle(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    for ctx in (None, {"user_region": "EU"}):
        tp = e.enrich_plan(PLAN, ctx)
        for proto in PROTOCOLS:
            copy = pickle.loads(pickle.dumps(tp, proto))
            assert copy == tp and copy.tag_names == tp.tag_names and copy.tags[0] == tp.tags[0]
            assert copy.enrichment_context == tp.enrichment_context


def _rule_fields(r):
    return (r.name, r.description, r.rule_dsl, r.action, r.priority, r.tags, r._rule_hash, r.reason_code)


def test_ethics_objects_pickle(ethics_impl):
    m = ethics_impl
    rs = m.load_ethics_rules()
    plans = [{"action": "read_file", "params": {"path": "a.txt"}}, {"action": "delete_user_data"},
             {"action": "external_call", "params": {"url": "https://evil.example.com", "estimated_memory_mb": "x"}}]
    for proto in PROTOCOLS:
        copy = pickle.loads(pickle.dumps(rs, proto))
        assert type(copy) is type(rs) and copy.ruleset_hash == rs.ruleset_hash
        assert [_rule_fields(r) for r in copy.rules] == [_rule_fields(r) for r in rs.rules]
        for plan in plans:
            a, b = rs.evaluate(plan, {"user_id": "u"}), copy.evaluate(plan, {"user_id": "u"})
            assert (a.action, a.reasons, a.triggered_rule_ids, a.plan_hash) == \
                   (b.action, b.reasons, b.triggered_rule_ids, b.plan_hash)
            res = pickle.loads(pickle.dumps(a, proto))
            assert (res.action, res.reasons, res.triggered_rule_ids, res.plan_hash, res.facts_hash,
                    res.evaluation_time_ms, res.reason_codes) == \
                   (a.action, a.reasons, a.triggered_rule_ids, a.plan_hash, a.facts_hash, a.evaluation_time_ms,
                    a.reason_codes)
            assert [_rule_fields(r) for r in res.triggered_rules] == [_rule_fields(r) for r in a.triggered_rules]
        for r in rs.rules:
            rc = pickle.loads(pickle.dumps(r, proto))
            assert type(rc) is type(r) and _rule_fields(rc) == _rule_fields(r)
            for plan in plans:
                assert rc.evaluate(plan, {}) == r.evaluate(plan, {})


def test_ethics_rule_with_a_custom_function_keeps_it(ethics_impl):
    m = ethics_impl
    r = m.EthicsRule("custom", "d", 'equals(action, "x")', m.EthicsAction.WARN, m.Priority.LOW,
                     _compiled_fn=_always_true)
    copy = pickle.loads(pickle.dumps(r))
    assert copy._compiled_fn is _always_true and copy.evaluate({"action": "y"}) is True


def _always_true(plan, context=None):
    return True
