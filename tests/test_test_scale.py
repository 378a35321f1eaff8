"""LUKHAS_TEST_SCALE (tests/conftest.py): CI's secondary runs scale randomized test sizes down."""

from __future__ import annotations

import os


def test_scale_reaches_explicit_hypothesis_settings(request, scaled):
    """Every collected hypothesis test runs ``scaled(max_examples)`` examples, its own
    ``@settings(max_examples=...)`` included (checked on one that sets 1500)."""
    scale = float(os.environ.get("LUKHAS_TEST_SCALE", "1"))
    assert scaled(10_000) == round(10_000 * scale) and scaled(1) == 1
    found = 0
    for item in request.session.items:
        fn = getattr(item, "obj", None)
        if getattr(fn, "__name__", "") == "test_flat_answers_pack_as_msgpack_does":
            assert fn._hypothesis_internal_use_settings.max_examples == max(10, round(1500 * scale))
            found += 1
    assert found == 1 or (found == 0 and len(request.session.items) < 100)  # (only this file collected)
