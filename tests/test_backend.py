"""The dispatcher: env switch, forced tiers, backend_info, installed-package testing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import lukhas_fast
from lukhas_fast import _backend
from lukhas_fast._backend import FAMILIES, TIERS, backend_info, tier_modules

REPO_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def _run(code: str, backend: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("LUKHAS_FAST_BACKEND", None)
    if backend is not None:
        env["LUKHAS_FAST_BACKEND"] = backend
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_tests_run_against_installed_package():
    assert not os.path.abspath(lukhas_fast.__file__).startswith(REPO_SRC + os.sep)


def test_python_tier_always_available():
    for family in FAMILIES:
        assert "python" in tier_modules(family)


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI requires the compiled extension")
def test_ci_built_every_c_extension():
    for family in FAMILIES:
        assert "c" in tier_modules(family), f"C extension for {family} did not build"


def test_backend_info_shape():
    info = backend_info()
    assert info["requested"] in ("auto",) + TIERS
    assert set(info["families"]) == set(FAMILIES)
    for family, entry in info["families"].items():
        assert entry["tier"] in TIERS
        assert entry["tier"] in entry["available"] or entry["tier"] == "python" or FAMILIES[family].get("numba") is None
        assert isinstance(entry["skipped"], dict)
        assert isinstance(entry.get("details", {}), dict)


@pytest.mark.parametrize("tier", TIERS)
def test_forced_tier(tier):
    # families load lazily: using every public name imports every family, so
    # a forced tier that is missing fails there with ImportError
    code = (
        "import json, lukhas_fast; [getattr(lukhas_fast, n) for n in lukhas_fast.__all__];"
        "i = lukhas_fast.backend_info();"
        "print(json.dumps({f: e['tier'] for f, e in i['families'].items()}))"
    )
    have_numba = True
    try:
        import numba  # noqa: F401
    except ImportError:
        have_numba = False
    res = _run(code, tier)
    if tier == "numba" and not have_numba:
        assert res.returncode != 0 and "ImportError" in res.stderr and "numba" in res.stderr
        return
    if tier == "c" and any("c" not in tier_modules(f) for f in FAMILIES):
        assert res.returncode != 0 and "ImportError" in res.stderr
        return
    assert res.returncode == 0, res.stderr
    tiers = json.loads(res.stdout)
    assert set(tiers.values()) == {tier}


def test_invalid_backend_value_is_a_clear_error():
    res = _run("import lukhas_fast", "fortran")
    assert res.returncode != 0
    assert "LUKHAS_FAST_BACKEND" in res.stderr and "fortran" in res.stderr


def test_forcing_missing_tier_names_it(monkeypatch):
    monkeypatch.setitem(FAMILIES, "phantom", {"c": "lukhas_fast._no_such_module", "python": "lukhas_fast._ring_py"})
    monkeypatch.setenv("LUKHAS_FAST_BACKEND", "c")
    try:
        with pytest.raises(ImportError, match="phantom"):
            _backend.load("phantom")
    finally:
        _backend._chosen.pop("phantom", None)


def test_auto_fallback_logs_warning_once(monkeypatch, caplog):
    monkeypatch.setitem(FAMILIES, "phantom", {"c": "lukhas_fast._no_such_module", "python": "lukhas_fast._ring_py"})
    monkeypatch.setenv("LUKHAS_FAST_BACKEND", "auto")
    try:
        with caplog.at_level("WARNING", logger="lukhas_fast"):
            mod = _backend.load("phantom")
            _backend.load("phantom")
        assert mod.__name__ == "lukhas_fast._ring_py"
        warnings = [r for r in caplog.records if "phantom" in r.getMessage()]
        assert len(warnings) == 1
        assert "_no_such_module" in warnings[0].getMessage()
    finally:
        _backend._chosen.pop("phantom", None)
        _backend._chosen_tier.pop("phantom", None)
        _backend._skipped.pop("phantom", None)


def test_bench_cli_smoke(tmp_path):
    out = tmp_path / "b.json"
    res = subprocess.run(
        [sys.executable, "-m", "lukhas_fast", "bench", "--quick", "--filter", "Ring.push", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "lukhas_fast backend" in res.stdout
    data = json.loads(out.read_text())
    assert data["cases"], "no bench rows"
    row = data["cases"][0]
    assert row["seconds_per_op"]["python"] > 0
