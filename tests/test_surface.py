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

PUBLIC_MODULE = {"ring": "lukhas_fast.ring", "clock": "lukhas_fast.clock"}


def _public_module(family):
    return importlib.import_module(PUBLIC_MODULE.get(family, f"lukhas_fast.{family}"))


def _members(cls):
    """Public methods and properties (instance data attributes differ by
    construction between extension types and Python classes)."""
    out = set()
    for n in dir(cls):
        if n.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, n)
        if callable(attr) or isinstance(attr, (property, classmethod, staticmethod)) or inspect.ismethoddescriptor(attr):
            out.add(n)
    return out


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
            assert _members(cls) == _members(ref), (tier, name, _members(cls) ^ _members(ref))


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
