"""Packaging promises: lazy families, nothing registered at import, metrics to a
registry the user chooses, public names in help(), signatures on the C tier,
one version, no logger configuration by library code."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import subprocess
import sys

import pytest

import lukhas_fast
from lukhas_fast import _metrics
from lukhas_fast._backend import tier_modules

PUBLIC_MODULES = ("lukhas_fast", "lukhas_fast.ring", "lukhas_fast.drift", "lukhas_fast.clock",
                  "lukhas_fast.consciousness_ticker", "lukhas_fast.ethics", "lukhas_fast.safety_tags",
                  "lukhas_fast.metrics")


def _py(code: str, **env: str) -> str:
    full_env = dict(os.environ, **env)
    res = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _modules_after(stmt: str) -> set:
    out = _py(f"import json, sys; {stmt}; print(json.dumps(sorted(sys.modules)))")
    return set(json.loads(out))


def test_import_package_loads_no_family_and_no_numpy():
    mods = _modules_after("import lukhas_fast")
    loaded = {m for m in mods if m.startswith("lukhas_fast.")}
    assert loaded <= {"lukhas_fast._backend"}, loaded
    assert "numpy" not in mods and "asyncio" not in mods and "prometheus_client" not in mods


def test_import_ring_loads_neither_ethics_tags_nor_asyncio():
    mods = _modules_after("import lukhas_fast.ring")
    bad = {m for m in mods if m.startswith(("lukhas_fast._ethics", "lukhas_fast.ethics", "lukhas_fast._tags",
                                            "lukhas_fast.safety_tags", "asyncio", "yaml", "prometheus_client"))}
    assert not bad, bad
    assert "lukhas_fast.ring" in mods


def test_lazy_attributes_resolve_and_cache():
    assert lukhas_fast.Ring is lukhas_fast.ring.Ring
    assert "Ring" in vars(lukhas_fast)  # cached after the first access
    assert set(lukhas_fast.__all__) <= set(dir(lukhas_fast))
    with pytest.raises(AttributeError, match="no_such_name"):
        lukhas_fast.no_such_name  # noqa: B018


def test_version_has_one_source():
    assert lukhas_fast.__version__ == importlib.metadata.version("lukhas_fast")


_NO_REGISTRATION = """
import json, prometheus_client
before = set(prometheus_client.REGISTRY._names_to_collectors)
import lukhas_fast, lukhas_fast.ring, lukhas_fast.drift, lukhas_fast.clock, lukhas_fast.consciousness_ticker
import lukhas_fast.ethics, lukhas_fast.safety_tags
from lukhas_fast import safety_tags
assert not safety_tags.SAFETY_TAGS_ENRICHMENT.created
imported = set(prometheus_client.REGISTRY._names_to_collectors) - before
# with LUKHAS_FAST_METRICS=0, using everything registers nothing either
e = lukhas_fast.SafetyTagEnricher()
e.enrich_plan({"action": "send_email", "params": {"to": "a@b.com"}}, {"lane": "prod"})
lukhas_fast.DriftMonitor("prod").update([1.0, 0.0], [0.5, 0.5])
lukhas_fast.get_ethics_engine().evaluate_plan({"action": "x"})
lukhas_fast.ConsciousnessTicker(fps=1000, cap=4).start(0.01)
used = set(prometheus_client.REGISTRY._names_to_collectors) - before
print(json.dumps({"imported": sorted(imported), "used": sorted(used)}))
"""


def test_nothing_registered_at_import_nor_with_metrics_off():
    pytest.importorskip("prometheus_client")
    out = json.loads(_py(_NO_REGISTRATION, LUKHAS_FAST_METRICS="0"))
    assert out == {"imported": [], "used": []}


_USE_REGISTRY = """
import json, prometheus_client
import lukhas_fast.metrics
from prometheus_client import CollectorRegistry
reg = CollectorRegistry()
lukhas_fast.metrics.use_registry(reg)
assert lukhas_fast.metrics.get_registry() is reg
e = lukhas_fast.SafetyTagEnricher(metrics=True)
e.enrich_plan({"action": "send_email", "params": {"to": "a@b.com"}}, {"lane": "prod"})
lukhas_fast.DriftMonitor("prod", metrics=True).update([1.0, 0.0], [0.5, 0.5])
print(json.dumps({
    "mine": reg.get_sample_value("safety_tags_enrichment_total", {"tag_count_range": "1-3"}),
    "ema": reg.get_sample_value("lukhas_drift_ema", {"lane": "prod"}),
    "default": prometheus_client.REGISTRY.get_sample_value("safety_tags_enrichment_total",
                                                          {"tag_count_range": "1-3"}),
}))
"""


def test_use_registry_sends_metrics_there():
    pytest.importorskip("prometheus_client")
    out = json.loads(_py(_USE_REGISTRY, LUKHAS_FAST_METRICS="1"))
    assert out["mine"] == 1.0
    assert out["ema"] is not None
    assert out["default"] is None


def test_use_registry_rejects_non_registries():
    pytest.importorskip("prometheus_client")
    with pytest.raises(TypeError, match="registry"):
        lukhas_fast.metrics.use_registry("default")


def test_lazy_metric_registers_on_first_use_only():
    prom = pytest.importorskip("prometheus_client")
    reg = prom.CollectorRegistry()
    lazy = _metrics.lazy_counter("lukhas_fast_test_lazy_total", "doc", ["x"])
    _metrics.use_registry(reg)
    try:
        assert not lazy.created
        assert reg.get_sample_value("lukhas_fast_test_lazy_total", {"x": "a"}) is None
        lazy.labels(x="a").inc()
        assert lazy.created
        assert reg.get_sample_value("lukhas_fast_test_lazy_total", {"x": "a"}) == 1.0
        assert prom.REGISTRY.get_sample_value("lukhas_fast_test_lazy_total", {"x": "a"}) is None
    finally:
        _metrics.use_registry(None)
    assert not lazy.created  # re-bound to the default registry, created again on next use


def test_lazy_metric_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        _metrics.LazyMetric("Summary", "x", "doc")


def _public_callables():
    for modname in PUBLIC_MODULES:
        mod = __import__(modname, fromlist=["_"])
        for name in getattr(mod, "__all__", ()):
            if name.startswith("_"):  # private aliases (drift's _cosine) keep the public name
                continue
            obj = getattr(mod, name)
            if callable(obj) and hasattr(obj, "__name__"):
                yield modname, name, obj


@pytest.mark.parametrize("modname,name,obj", list(_public_callables()), ids=lambda v: str(v)[:40])
def test_public_callables_show_their_public_name(modname, name, obj):
    assert obj.__name__ == name, f"help({modname}.{name}) would show {obj.__name__}"


def test_c_tier_methods_have_signatures():
    checked = 0
    for family, classes in (("ring", ("Ring", "DecimatingRing", "SpscRing")), ("drift", ("DriftMonitor",)),
                            ("clock", ("Ticker",))):
        mod = tier_modules(family).get("c")
        if mod is None:
            continue
        for cname in classes:
            cls = getattr(mod, cname)
            for attr, value in vars(cls).items():
                if attr.startswith("_") or not callable(value):
                    continue
                sig = inspect.signature(getattr(cls, attr))  # raises ValueError without one
                assert "self" in sig.parameters, (cname, attr, sig)
                checked += 1
    if tier_modules("ring").get("c") is not None:
        assert checked >= 10


def test_library_code_never_configures_logging():
    root = os.path.dirname(lukhas_fast.__file__)
    offenders = []
    for dirpath, _, files in os.walk(root):
        for fn in files:
            if not fn.endswith((".py", ".pyx")) or fn == "__main__.py":  # the CLI is an application
                continue
            path = os.path.join(dirpath, fn)
            with open(path, encoding="utf-8") as fh:
                for i, line in enumerate(fh, 1):
                    code = line.split("#", 1)[0]
                    if ".setLevel(" in code or "basicConfig(" in code or (
                            ".addHandler(" in code and "NullHandler" not in code):
                        offenders.append(f"{os.path.relpath(path, root)}:{i}: {line.strip()}")
    assert not offenders, offenders
