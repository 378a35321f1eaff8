"""Drop-in aliases and ``python -m lukhas_fast run``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import pytest

import lukhas_fast
from lukhas_fast import _dropin


@pytest.fixture
def clean_aliases():
    lukhas_fast.uninstall()
    yield
    lukhas_fast.uninstall()


def test_install_and_uninstall(clean_aliases):
    lukhas_fast.install()
    lukhas_fast.install()  # idempotent
    import lukhas.core.drift as d
    from candidate.core.ethics.safety_tags import SafetyTagEnricher
    from core.clock import Ticker
    from lukhas.core.consciousness_ticker import ConsciousnessTicker
    from lukhas.core.ring import DecimatingRing

    assert d is lukhas_fast.drift and DecimatingRing is lukhas_fast.DecimatingRing
    assert Ticker is lukhas_fast.Ticker and ConsciousnessTicker is lukhas_fast.ConsciousnessTicker
    assert SafetyTagEnricher is lukhas_fast.SafetyTagEnricher
    import candidate.core.ethics.dsl  # noqa: F401

    assert sys.modules["candidate.core.ethics.dsl"] is lukhas_fast.ethics
    assert _dropin.installed() and any(isinstance(f, _dropin.AliasFinder) for f in sys.meta_path)
    # the alias did not rename the lukhas_fast module
    assert lukhas_fast.drift.__name__ == "lukhas_fast.drift"
    assert lukhas_fast.drift.__spec__.name == "lukhas_fast.drift"
    lukhas_fast.uninstall()
    assert "lukhas.core.drift" not in sys.modules and "lukhas" not in sys.modules
    assert not any(isinstance(f, _dropin.AliasFinder) for f in sys.meta_path)
    assert not _dropin.installed()
    with pytest.raises(ImportError):
        import lukhas.core.drift  # noqa: F401,F811


SDK_PATHS = {
    # the guide's paths and the SDK's own, for each module
    **{f"{p}{m}": f"lukhas_fast.{m}" for m in ("ring", "drift", "clock", "consciousness_ticker")
       for p in ("lukhas.core.", "core.", "lukhas_website.lukhas.core.")},
    **{f"{p}safety_tags": "lukhas_fast.safety_tags"
       for p in ("candidate.core.ethics.", "core.ethics.", "labs.core.ethics.")},
    **{f"{p}{m}": "lukhas_fast.ethics" for m in ("dsl_lite", "ethics_engine", "rule_loader")
       for p in ("core.ethics.logic.", "labs.core.ethics.logic.", "candidate.core.ethics.logic.")},
    # earlier aliases still work
    **{f"candidate.core.ethics.{m}": "lukhas_fast.ethics"
       for m in ("dsl", "engine", "rules_engine", "loader", "rule_loader")},
}

#: public names of the SDK modules, which the aliased module must expose
SDK_NAMES = {
    "ring": ["Ring", "DecimatingRing"],
    "drift": ["DriftMonitor", "DriftConfig", "LANE_CFG", "_cosine"],
    "clock": ["Ticker", "create_consciousness_ticker"],
    "consciousness_ticker": ["ConsciousnessTicker", "PROM", "TICK", "TICKS_DROPPED", "SUB_EXC", "LANE"],
    "safety_tags": ["SafetyTagEnricher", "SafetyTag", "TaggedPlan", "SafetyTagCategory", "PIIDetector",
                    "GDPRDetector", "create_safety_tag_enricher"],
    "dsl_lite": ["compile_rule", "PREDICATES", "parse_bytes", "parse_seconds", "hash_rule", "DSLError",
                 "canonical_domain", "contains", "equals", "param_bytes_lte", "param_seconds_lte",
                 "has_tag", "domain_etld1", "and_op", "or_op", "not_op"],
    "ethics_engine": ["EthicsEngine", "RuleSet", "EthicsRule", "EthicsResult", "EthicsAction", "Priority"],
    "rule_loader": ["load_ethics_rules", "get_ethics_engine", "RuleLoadError", "EthicsRule", "RuleSet"],
}


def test_every_sdk_path_resolves(clean_aliases):
    import importlib

    assert set(SDK_PATHS) == set(_dropin.ALIASES) == set(_dropin.resolved_paths())
    lukhas_fast.install()
    for alias, target in SDK_PATHS.items():
        mod = importlib.import_module(alias)
        assert mod is sys.modules[target], alias
        names = SDK_NAMES[alias.rsplit(".", 1)[1]] if alias.rsplit(".", 1)[1] in SDK_NAMES else []
        missing = [n for n in names if not hasattr(mod, n)]
        assert not missing, (alias, missing)
    from core.ethics.logic.dsl_lite import compile_rule
    from labs.core.ethics.logic.ethics_engine import EthicsAction
    from candidate.core.ethics.logic.rule_loader import load_ethics_rules

    assert compile_rule('equals(action, "x")')({"action": "x"}) is True
    assert load_ethics_rules().evaluate({"action": "read_file"}, {"user_id": "u1"}).action is EthicsAction.ALLOW


def test_refuses_to_shadow_a_real_module(clean_aliases):
    real = types.ModuleType("core.ring")
    sys.modules["core.ring"] = real
    try:
        with pytest.raises(ImportError, match="core.ring"):
            lukhas_fast.install()
        assert not _dropin.installed()  # nothing was installed
        assert not any(isinstance(f, _dropin.AliasFinder) for f in sys.meta_path)
    finally:
        del sys.modules["core.ring"]


def _forget(prefixes):
    for name in list(sys.modules):
        if name.split(".")[0] in prefixes:
            del sys.modules[name]


@pytest.fixture
def real_core(tmp_path, monkeypatch, clean_aliases):
    """A real ``core`` package (with ``core.metrics`` and ``core.ethics.policy``)
    and a real ``lukhas`` package on sys.path, as a user's project has."""
    (tmp_path / "core" / "ethics").mkdir(parents=True)
    (tmp_path / "core" / "__init__.py").write_text("REAL = 'core'\n")
    (tmp_path / "core" / "metrics.py").write_text("def count():\n    return 42\n")
    (tmp_path / "core" / "ethics" / "__init__.py").write_text("")
    (tmp_path / "core" / "ethics" / "policy.py").write_text("POLICY = 'strict'\n")
    (tmp_path / "lukhas").mkdir()
    (tmp_path / "lukhas" / "__init__.py").write_text("REAL = 'lukhas'\n")
    (tmp_path / "lukhas" / "api.py").write_text("VERSION = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget({"core", "lukhas"})
    yield tmp_path
    lukhas_fast.uninstall()
    _forget({"core", "lukhas"})


def test_real_packages_are_never_hidden(real_core):
    lukhas_fast.install()
    import core
    import core.metrics
    from core.ethics.policy import POLICY
    from core.ring import Ring
    from core.ethics.safety_tags import SafetyTagEnricher
    from core.ethics.logic.dsl_lite import compile_rule
    import lukhas.api
    from lukhas.core.drift import DriftMonitor

    # the real packages are the user's, with every module they have
    assert core.REAL == "core" and core.__file__.startswith(str(real_core))
    assert core.metrics.count() == 42 and POLICY == "strict"
    assert lukhas.api.VERSION == 3 and sys.modules["lukhas"].REAL == "lukhas"
    # only the aliased names are lukhas_fast's
    assert Ring is lukhas_fast.Ring and core.ring is lukhas_fast.ring
    assert SafetyTagEnricher is lukhas_fast.SafetyTagEnricher and compile_rule is lukhas_fast.compile_rule
    assert DriftMonitor is lukhas_fast.DriftMonitor
    # the stand-in for a missing sub-package (core.ethics.logic) is empty and hides nothing
    assert sys.modules["core.ethics.logic"].__path__ == []
    with pytest.raises(ModuleNotFoundError):
        import core.nonexistent  # noqa: F401
    lukhas_fast.uninstall()
    # the real packages stay, the aliases and the link on the real parent go
    assert "core.ring" not in sys.modules and "core.ethics.logic" not in sys.modules
    assert sys.modules["core"] is core and not hasattr(core, "ring")
    assert sys.modules["core.metrics"].count() == 42


def test_a_finder_that_reenters_the_import_system(real_core):
    """A finder consulted for a parent that itself calls importlib.util.find_spec
    (as some plugin loaders do) does not recurse through the hook."""
    import importlib.abc
    import importlib.util

    class Reentrant(importlib.abc.MetaPathFinder):
        calls = 0
        active = False

        def find_spec(self, name, path=None, target=None):
            if name == "labs" and not Reentrant.active:  # guards itself, as such finders do
                Reentrant.calls += 1
                Reentrant.active = True
                try:
                    assert importlib.util.find_spec(name) is None  # the hook does not answer re-entrantly
                finally:
                    Reentrant.active = False
            return None

    hook = Reentrant()
    sys.meta_path.append(hook)
    try:
        lukhas_fast.install()
        from labs.core.ethics.safety_tags import SafetyTagEnricher
    finally:
        sys.meta_path.remove(hook)
        lukhas_fast.uninstall()
    assert SafetyTagEnricher is lukhas_fast.SafetyTagEnricher and Reentrant.calls >= 1


def test_real_package_imported_before_install(real_core):
    import core.metrics

    lukhas_fast.install()  # a real parent already imported is no clash
    import core.clock

    assert core.clock is lukhas_fast.clock and core.metrics.count() == 42


def test_sdk_style_tests_run_unchanged(tmp_path):
    """A test module written for the SDK (its import paths, mock.patch targets,
    a reload under patch.dict(os.environ)) passes under ``lukhas_fast run``."""
    test_file = tmp_path / "sdk_tests.py"
    test_file.write_text(SDK_TESTS)
    res = subprocess.run([sys.executable, "-m", "lukhas_fast", "run", str(test_file)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stderr and "Ran 4 tests" in res.stderr


SDK_TESTS = textwrap.dedent(
    """
    import importlib
    import os
    import unittest
    from unittest import mock

    import lukhas.core.consciousness_ticker as ct_mod
    from core.ring import Ring
    from core.ethics.safety_tags import PIIDetector, SafetyTagEnricher
    from labs.core.ethics.logic.rule_loader import load_ethics_rules


    class SDKTests(unittest.TestCase):
        @mock.patch("lukhas.core.consciousness_ticker.TICK")
        def test_tick_metric(self, tick):
            with mock.patch("lukhas.core.consciousness_ticker.PROM", True):
                ct = ct_mod.ConsciousnessTicker(fps=1000)
                ct.ticker.subscribe(lambda i: ct.stop() if i == 2 else None)
                ct.start(seconds=1)
            tick.labels.assert_called_with(lane=ct_mod.LANE)
            self.assertEqual(tick.labels.return_value.observe.call_count, 3)

        def test_lane_reload(self):
            with mock.patch.dict(os.environ, {"LUKHAS_LANE": "canary"}):
                mod = importlib.reload(ct_mod)
                self.assertEqual(mod.LANE, "canary")
            importlib.reload(ct_mod)

        def test_ring_patch(self):
            r = Ring(capacity=2)
            with mock.patch.object(r, "push", side_effect=RuntimeError("full")):
                with self.assertRaises(RuntimeError):
                    r.push(1)
            r.push(1)
            self.assertEqual(r.pop_all(), [1])

        def test_detector_patch(self):
            with mock.patch.object(PIIDetector, "detect", return_value=None) as det:
                tp = SafetyTagEnricher(enable_caching=False).enrich_plan({"params": {"email": "a@b.com"}})
            self.assertTrue(det.called)
            self.assertNotIn("pii", tp.tag_names)
            self.assertEqual(load_ethics_rules().evaluate(
                {"action": "read_file", "params": {"path": "a.txt"}}, {"user_id": "u1"}).action.value, "allow")


    if __name__ == "__main__":
        unittest.main()
    """
)


SCRIPT = textwrap.dedent(
    """
    import sys
    from lukhas.core.ring import Ring, DecimatingRing
    from lukhas.core.drift import DriftMonitor, LANE_CFG
    from core.clock import Ticker, create_consciousness_ticker
    from candidate.core.ethics.safety_tags import SafetyTagEnricher

    r = Ring(capacity=3)
    for i in range(5):
        r.push(f"item_{i}")
    assert r.pop_all() == ["item_2", "item_3", "item_4"]
    m = DriftMonitor("prod")
    assert m.update([1.0, 0.0], [1.0, 0.0])["guardian"] == "allow"
    t = create_consciousness_ticker()
    assert t.fps == 30
    tags = SafetyTagEnricher().enrich_plan({"params": {"email": "a@b.com"}}).tag_names
    assert tags == {"pii"}, tags
    print("SDK script OK", Ring.__module__, sys.argv[1:])
    """
)


def test_run_unmodified_sdk_script(tmp_path):
    script = tmp_path / "sdk_script.py"
    script.write_text(SCRIPT)
    res = subprocess.run([sys.executable, "-m", "lukhas_fast", "run", str(script), "--flag", "x"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "SDK script OK" in res.stdout and "['--flag', 'x']" in res.stdout
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "ModuleNotFoundError" in plain.stderr


def test_run_propagates_exit_code(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("raise SystemExit(3)\n")
    res = subprocess.run([sys.executable, "-m", "lukhas_fast", "run", str(script)], capture_output=True, timeout=60)
    assert res.returncode == 3


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.parametrize("name", ["consciousness_coordination.py", "drift_detection.py", "safety_and_ethics.py",
                                  "production_service.py"])
def test_examples_run(name):
    res = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), "--seconds", "1"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip()
