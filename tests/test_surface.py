"""Same surface on every tier: names, public methods and docstrings.

For every family, each public name of the public module (``__all__``) must be
provided by every installed tier, public classes must expose the same public
methods/properties on every tier, and everything public has a docstring.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from lukhas_fast._backend import FAMILIES, tier_modules

PUBLIC_MODULE = {"ring": "lukhas_fast.ring", "clock": "lukhas_fast.clock", "tags": "lukhas_fast.safety_tags"}


def _public_module(family):
    return importlib.import_module(PUBLIC_MODULE.get(family, f"lukhas_fast.{family}"))


def _methods(cls):
    """Public methods (callables defined on the class)."""
    return {
        n for n in dir(cls)
        if not n.startswith("_") and callable(inspect.getattr_static(cls, n))
        and not inspect.isclass(inspect.getattr_static(cls, n))
    }


def _properties(cls):
    return {n for n in dir(cls) if not n.startswith("_") and isinstance(inspect.getattr_static(cls, n), property)}


def _members(cls):
    return {n for n in dir(cls) if not n.startswith("_")}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_tier_has_the_public_names(family):
    public = _public_module(family)
    names = [n for n in public.__all__ if not n.startswith("_")]
    tiers = tier_modules(family)
    for tier, mod in tiers.items():
        missing = [n for n in names if not hasattr(mod, n) and not hasattr(public, n)]
        assert not missing, f"{tier} tier of {family} lacks {missing}"
        assert callable(getattr(mod, "backend_details", None)), f"{tier} tier lacks backend_details()"
        assert isinstance(mod.backend_details(), dict)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_classes_have_same_members_on_every_tier(family):
    public = _public_module(family)
    tiers = tier_modules(family)
    oracle = tiers["python"]
    for name in public.__all__:
        ref = getattr(oracle, name, None)
        if not inspect.isclass(ref):
            continue
        for tier, mod in tiers.items():
            cls = getattr(mod, name, None)
            if cls is None or cls is ref:
                continue
            assert _methods(cls) == _methods(ref), (tier, name, _methods(cls) ^ _methods(ref))
            for prop in _properties(ref):
                assert inspect.isdatadescriptor(inspect.getattr_static(cls, prop, None)), (tier, name, prop)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_public_api_is_documented(family):
    public = _public_module(family)
    assert public.__doc__
    for tier, mod in tier_modules(family).items():
        for name in public.__all__:
            obj = getattr(mod, name, None)
            if obj is None or not (inspect.isclass(obj) or callable(obj)):
                continue
            assert inspect.getdoc(obj), f"{tier}:{name} has no docstring"
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for member in _members(obj):
                    attr = inspect.getattr_static(obj, member)
                    if callable(attr) or isinstance(attr, property):
                        doc = getattr(attr, "__doc__", None)
                        assert doc, f"{tier}:{name}.{member} has no docstring"
