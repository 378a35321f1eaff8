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
    assert sys.modules["candidate.core.ethics.dsl"] is lukhas_fast.ethics
    assert _dropin.installed()
    lukhas_fast.uninstall()
    assert "lukhas.core.drift" not in sys.modules and "lukhas" not in sys.modules
    assert not _dropin.installed()
    with pytest.raises(ImportError):
        import lukhas.core.drift  # noqa: F401,F811


def test_refuses_to_shadow_a_real_module(clean_aliases):
    real = types.ModuleType("core")
    sys.modules["core"] = real
    try:
        with pytest.raises(ImportError, match="core"):
            lukhas_fast.install()
        assert "lukhas.core.drift" not in sys.modules  # nothing was installed
    finally:
        del sys.modules["core"]


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
