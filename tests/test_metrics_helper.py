"""The shared Prometheus helper: reuse on duplicate names, no-op without the package."""

from __future__ import annotations

import pytest

from lukhas_fast import _metrics

prom = pytest.importorskip("prometheus_client")


def test_duplicate_registration_reuses_collector():
    a = _metrics.counter("lukhas_fast_test_dup_total", "doc", ["x"])
    b = _metrics.counter("lukhas_fast_test_dup_total", "doc", ["x"])
    assert a is b
    a.labels("1").inc()
    assert prom.REGISTRY.get_sample_value("lukhas_fast_test_dup_total", {"x": "1"}) == 1.0


def test_reuses_collector_registered_by_someone_else():
    g = prom.Gauge("lukhas_fast_test_foreign", "registered outside lukhas_fast", ["lane"])
    assert _metrics.gauge("lukhas_fast_test_foreign", "doc", ["lane"]) is g


def test_resolve_metrics_switch(monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")
    assert _metrics.resolve_metrics(None) is False
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "1")
    assert _metrics.resolve_metrics(None) is True
    assert _metrics.resolve_metrics(False) is False
    with pytest.raises(TypeError, match="metrics"):
        _metrics.resolve_metrics("yes")


def test_noop_has_metric_methods():
    n = _metrics.NOOP
    assert n.labels("a", b="c") is n
    n.inc()
    n.set(1.0)
    n.observe(2.0)
