"""Shared test machinery.

* ``<family>_impl`` fixtures: any test that asks for e.g. ``ring_impl`` runs
  once per installed tier of that family (``c``, ``numba``, ``python``), with
  the tier module as the fixture value.  Nothing installed is skipped.
* ``oracle(family)``: the pure-Python tier module, for differential tests.
* Hypothesis runs derandomized (seeded) so failures reproduce.
* ``LUKHAS_TEST_SCALE`` (a float in (0, 1], default 1) multiplies every
  hypothesis test's ``max_examples``, its own ``@settings`` included (at least
  10 examples stay), and the sizes of the randomized loops that ask for the
  ``scaled`` fixture.  CI's secondary runs (other Pythons, the sanitizer build)
  use a fraction: the primary run keeps the full counts, and the others still
  run every test, on their own interpreter or build.
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


_SCALE = float(os.environ.get("LUKHAS_TEST_SCALE", "1"))
if not 0 < _SCALE <= 1:
    raise ValueError(f"LUKHAS_TEST_SCALE must be in (0, 1], got {_SCALE}")


def _serve_test_servers_as_serve_does() -> None:
    """aiohttp's test servers (the ``aiohttp_client`` fixture) run an application of
    ``service.create_app`` under the runner ``serve`` uses (``service._ServiceRunner``,
    whose direct dispatch is what production requests take); other applications, and
    tests that make a ``web.AppRunner`` themselves, keep aiohttp's.  That both give the
    same answers is tested in ``test_service_direct.py``."""
    try:
        from aiohttp import test_utils

        from lukhas_fast import service
    except ImportError:  # the service's extra is not installed
        return
    plain = test_utils.TestServer._make_runner

    async def make_runner(self, **kwargs):
        if service._DIRECT_KEY in self.app:
            return service._ServiceRunner(self.app, **kwargs)
        return await plain(self, **kwargs)

    test_utils.TestServer._make_runner = make_runner


_serve_test_servers_as_serve_does()


def pytest_report_header(config):
    extra = [f"randomized test sizes scaled by {_SCALE} (LUKHAS_TEST_SCALE)"] if _SCALE != 1 else []
    return format_backend_info().splitlines() + [f"lukhas_fast imported from {os.path.dirname(lukhas_fast.__file__)}"] + extra


def pytest_collection_modifyitems(config, items):
    """Apply ``LUKHAS_TEST_SCALE`` to each hypothesis test once.

    ``@given`` reads ``_hypothesis_internal_use_settings`` off the wrapped
    test at call time, so replacing it here scales explicit ``@settings`` too.
    """
    if _SCALE == 1:
        return
    seen = set()
    for item in items:
        fn = getattr(item, "obj", None)
        fn = getattr(fn, "__func__", fn)  # (a bound method: its function)
        current = getattr(fn, "_hypothesis_internal_use_settings", None)
        if current is None or not hasattr(fn, "hypothesis") or id(fn) in seen:
            continue
        seen.add(id(fn))
        fn._hypothesis_internal_use_settings = settings(current, max_examples=_scaled(current.max_examples, 10))


def _scaled(n: int, least: int = 1) -> int:
    return max(min(n, least), round(n * _SCALE))


@pytest.fixture(scope="session")
def scaled():
    """``scaled(n)``: the size ``n`` of a randomized loop under ``LUKHAS_TEST_SCALE`` (at least 1)."""
    return _scaled


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
