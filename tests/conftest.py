"""Shared test machinery.

* ``<family>_impl`` fixtures: any test that asks for e.g. ``ring_impl`` runs
  once per installed tier of that family (``c``, ``numba``, ``python``), with
  the tier module as the fixture value.  Nothing installed is skipped.
* ``oracle(family)``: the pure-Python tier module, for differential tests.
* Hypothesis runs derandomized (seeded) so failures reproduce.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import lukhas_fast
from lukhas_fast._backend import FAMILIES, format_backend_info, tier_modules

settings.register_profile(
    "lukhas",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("LUKHAS_HYPOTHESIS_PROFILE", "lukhas"))


def pytest_report_header(config):
    return format_backend_info().splitlines() + [f"lukhas_fast imported from {os.path.dirname(lukhas_fast.__file__)}"]


def pytest_generate_tests(metafunc):
    for family in FAMILIES:
        name = f"{family}_impl"
        if name in metafunc.fixturenames:
            mods = tier_modules(family)
            metafunc.parametrize(name, list(mods.values()), ids=list(mods), scope="module")


@pytest.fixture(scope="session")
def oracle():
    """``oracle(family)`` -> the pure-Python tier module of that family."""

    def get(family: str):
        return tier_modules(family)["python"]

    return get
