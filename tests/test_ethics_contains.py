"""``contains(haystack, needle)`` over containers: ``needle.lower() in str(haystack).lower()``.

The C tier decides most dict/list/tuple haystacks without printing them (it
searches each printed atom on its own when the needle cannot span two atoms);
these tests compare it with the oracle on containers built to break that walk
(quotes, escapes, non-ASCII letters that lower to ASCII, long strings across
the fold buffer's chunk boundary, numbers, nesting, cycles, subclasses) and
check that plain plans really are decided by the walk.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lukhas_fast._backend import tier_modules

_C = tier_modules("ethics").get("c")

# characters that stress the walk: its delimiters, escapes, letters whose lower() is ASCII
_ALPHABET = "abkhcKK\u212aİΣσςxX019.-+e'\"{}[](),: \\\n\t\x00\x7fé"
_NEEDLES = ["hack", "HACK", "k", "ck", "a", "x0", "x00", "\\x00", "n", "\\n", "none", "true", "false", "1", "-1",
            "1.5", "e+16", "inf", "nan", "0.0", "'", "', '", ": ", "k'", "[...]", "...", "{", "set(", "k" * 17,
            "ab" * 9, "i̇", "σ", "ς", "é", "x" * 257]


def _text():
    return st.text(alphabet=_ALPHABET, max_size=12) | st.sampled_from(["hack the planet", "x" * 70, "Hack" * 30])


_atoms = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**30, 10**30),
                   st.floats(allow_nan=True, allow_infinity=True), _text())
_containers = st.recursive(
    _atoms,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner), st.tuples(inner, inner),
                            st.dictionaries(st.one_of(_text(), st.integers(-3, 3), st.none()), inner, max_size=4),
                            st.frozensets(st.integers(0, 3), max_size=2)),
    max_leaves=10,
)


def _outcome(fn, plan, ctx):
    try:
        return ("ok", fn(plan, ctx))
    except Exception as exc:  # evaluation errors must match too
        return ("error", type(exc).__name__)


@settings(max_examples=400)
@given(hay=_containers, needle=st.sampled_from(_NEEDLES) | _text().filter(lambda s: '"' not in s and "\n" not in s))
def test_contains_over_containers_matches_oracle(ethics_impl, oracle, hay, needle):
    one = f'contains(params, "{needle}")' if '"' not in needle else f"contains(params, '{needle}')"
    # alone (the in-place walk), and beside other needles on the same path (the shared folded atoms)
    for rule in (one, f'or(contains(params, "zq"), {one})', f'and(contains(params, "a"), {one})',
                 f'or(contains(params, "none"), contains(params, "1"), {one})'):
        want = oracle("ethics").compile_rule(rule)
        got = ethics_impl.compile_rule(rule)
        for plan in ({"params": hay}, {"params": [hay, "tail"]}, {"params": {"k": hay}}):
            assert _outcome(got, plan, {}) == _outcome(want, plan, {}), (rule, plan)


@pytest.mark.skipif(_C is None, reason="the C tier is not built")
def test_plain_plans_are_decided_by_the_walk():
    """Ordinary params (ASCII str, int, float, bool, None, nested) never fall back to printing."""
    from lukhas_fast._bench.ethics import mixed_corpus

    hits = 0
    for plan, _ctx in mixed_corpus(300):
        for needle in ("hack", "escalate", "user_data", "debug", "500", "true"):
            got = _C._walk_probe(plan["params"], needle)
            assert got in (0, 1), (plan["params"], needle)
            assert got == (needle in str(plan["params"]).lower())
            hits += got
    assert hits > 0
    nested = {"a": [1, 2.5, (True, None)], "b": {"c": -7, "d": 1e16, "e": float("inf")}, "f": ()}
    for needle, want in (("e+16", 1), ("-7", 1), ("none", 1), ("inf", 1), ("2.5", 1), ("hack", 0)):
        assert _C._walk_probe(nested, needle) == want
    # what the walk leaves to the printer: a needle that may span atoms, text it cannot read as is
    assert _C._walk_probe(nested, "1, 2") is None
    assert _C._walk_probe({"a": "x\ny"}, "zz") == -1
    assert _C._walk_probe({"a": "x\ny"}, "x") == 1
    assert _C._walk_probe({"a": "\u212a"}, "k") == -1
    assert _C._walk_probe({"a": {1, 2}}, "set") == -1
    assert _C._walk_probe({"a": 10**40}, "1") == -1


@pytest.mark.parametrize("at", [0, 60, 63, 64, 65, 1000, 1020, 1021, 1022, 1023, 1024, 1025, 2040, 3000])
@pytest.mark.parametrize("needle", ["hack", "k" * 16, "q" * 17, "ab" * 100])
def test_long_strings_across_chunk_boundaries(ethics_impl, oracle, at, needle):
    body = "y" * at + needle.upper() + "z" * 50
    for text in (body, body[: at + len(needle) - 1] + "z" * 60, "\x01" + body):
        plan = {"params": {"k": text, "n": 1}}
        for rule in (f'contains(params, "{needle}")', f'or(contains(params, "zq"), contains(params, "{needle}"))'):
            assert ethics_impl.compile_rule(rule)(plan, {}) == oracle("ethics").compile_rule(rule)(plan, {})
            assert ethics_impl.compile_rule(rule)(plan, {}) == (needle in str(plan["params"]).lower())


def test_cycles_and_subclasses(ethics_impl, oracle):
    loop: list = ["hack"]
    loop.append(loop)

    class Shout(dict):
        def __repr__(self):
            return "{'HACK'}"

    for params in (loop, {"a": loop}, Shout(x=1), [Shout()], {"a": Shout()}):
        for needle in ("hack", "...", "x"):
            for rule in (f'contains(params, "{needle}")', f'or(contains(params, "zq"), contains(params, "{needle}"))'):
                plan = {"params": params}
                assert ethics_impl.compile_rule(rule)(plan, {}) == oracle("ethics").compile_rule(rule)(plan, {}), \
                    (params, needle)


def test_inside_a_repr_of_the_same_params(ethics_impl, oracle):
    """Evaluated from inside ``str(params)``: the oracle sees ``params`` printed as ``{...}``."""
    seen = []

    for mod in (ethics_impl, oracle("ethics")) * 2:
        rule = mod.compile_rule('contains(params, "hack")' if len(seen) < 2 else
                                'or(contains(params, "zq"), contains(params, "hack"))')

        class Probe:
            def __repr__(self):
                seen.append((mod.__name__, rule(plan, {})))
                return "P"

        params = {"a": "hack", "b": Probe()}
        plan = {"params": params}
        str(params)
    assert seen[0][1] == seen[1][1] and seen[2][1] == seen[3][1]


@pytest.mark.parametrize(("text", "needle"), [
    ("x\ny", "ny"), ("x\ny", "xy"), ("\x01", "x01"), ("a\tb", "tb"), ("\x7f", "x7f"), ("q\\z", "qz"),
    ("\u212a", "k"), ("İ", "i"), ("AΣ", "σ"), ("AΣ", "ς"), ("it's", "t's"), ("say \"hi\"", "hi"), ("\x00", "x00"),
])
def test_text_the_walk_must_not_read_as_is(ethics_impl, oracle, text, needle):
    """Escapes and non-ASCII letters: the walk must hand these to the printer, alone and shared."""
    for params in ({"a": text}, [1, text], (text,), {"k": {"n": [text]}}):
        plan = {"params": params}
        for rule in (f'contains(params, "{needle}")', f'or(contains(params, "zq"), contains(params, "{needle}"))'):
            want = oracle("ethics").compile_rule(rule)(plan, {})
            assert want == (needle in str(params).lower())
            assert ethics_impl.compile_rule(rule)(plan, {}) == want, (params, rule)
