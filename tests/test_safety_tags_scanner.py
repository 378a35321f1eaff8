"""Safety tags: the single-pass scanner and the structural cache keys against the
pure-Python oracle (reference algorithm: a regex per pattern per detector,
str()+sorted SHA-256 keys), on ASCII plans -- the ones the C scanner takes --
and on the awkward values that send a plan down the slower paths."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lukhas_fast._backend import tier_modules


@pytest.fixture(autouse=True)
def _no_metrics(monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")


def _tags(tp):
    return [(t.name, t.category, t.confidence, t.source, t.metadata) for t in tp.tags]


def _same(m, oracle, plan, ctx=None, advanced=False):
    want = oracle("tags").SafetyTagEnricher(enable_caching=False, advanced=advanced).enrich_plan(plan, ctx)
    got = m.SafetyTagEnricher(enable_caching=False, advanced=advanced).enrich_plan(plan, ctx)
    assert _tags(got) == _tags(want), plan
    assert got.enrichment_context == want.enrichment_context, plan


# ASCII noise around every kind of hit: terms split across values, digits
# next to letters/underscores/separators, emails with odd local parts and
# '|' TLDs, URLs ending at whitespace, quotes or angle brackets.
_ATOMS = [
    "pay", "payment", "admin", "administrator", "root", "chroot_jail", "sudo", "gdpr", "GDPR", "consent", "api",
    "capital", "rest", "restart", "profile", "personal_data", "data_subject", "model", "gpt-4", "GPT-4o", "claude",
    "tool", "call", "tool call", "chat", "completion", "third-party", "third-party api", "ai", "ml api", "rerank",
    "reranking", "embedding", "endpoint", "function calling", "text generation", "switch_model", "role_change",
    "admin_action", "x_role_change", "data_export", "555-123-4567", "5551234567", "123-45-6789", "123456789",
    "1234567890", "12345678901234567", "123456789012345678", "4111 1111 1111 1111", "4111-1111-1111-1111",
    "a1234567890", "1234567890_", "_123456789", "12-345-6789", "a@b.com", "A.B@C.CO", "x@y|z", "a@b.c|m", "a@b|c",
    "_@x.io", "..@x.io", "%+@x.io", "-a@b.c", "a@.com", "a@b.c", "a@b.cc", "a@b.cc1", "a@b.cc_", "a@b-.io",
    "http://x", "https://api.x.io/v1", "HTTPS://X.IO", "http:/x", "https//x", "http://", "http://<b>", 'http://"q"',
    "https://bit.ly/z", "(at)", "[dot]", " at ", " dot ", "at", "dot", "john", "example", "com", "-", "_", ".",
    "@", "|", "<", ">", '"', "\t", "\x1c", " ", "", "0", "9", "x",
]
ascii_text = st.lists(st.sampled_from(_ATOMS), max_size=8).map("".join) | st.lists(
    st.sampled_from(_ATOMS), max_size=6).map(" ".join)
ascii_keys = st.sampled_from(["email", "Email", "EMAIL", "amount", "Price", "fee", "url", "URL", "endpoint", "webhook",
                              "model", "Engine", "provider", "note", "content", "acct", "user_id", "balance", "x"])
ascii_values = st.one_of(ascii_text, st.integers(-5, 10**6), st.floats(allow_nan=True), st.booleans(), st.none(),
                         st.lists(ascii_text, max_size=2), st.dictionaries(st.sampled_from(["a", "u"]), ascii_text,
                                                                             max_size=2))
ascii_plans = st.fixed_dictionaries(
    {},
    optional={
        "action": st.one_of(ascii_text, st.none(), st.integers()),
        "description": st.one_of(ascii_text, st.none()),
        "params": st.one_of(st.dictionaries(ascii_keys, ascii_values, max_size=7), st.none(), ascii_text),
    },
)
contexts = st.one_of(st.none(), st.fixed_dictionaries({}, optional={"user_region": st.sampled_from(["EU", "EEA", "US"]),
                                                                    "lane": st.sampled_from(["prod", "x"])}))


@settings(max_examples=600)
@given(plan=ascii_plans, ctx=contexts, advanced=st.booleans())
def test_ascii_plans_match_oracle(tags_impl, oracle, plan, ctx, advanced):
    _same(tags_impl, oracle, plan, ctx, advanced)


# non-ASCII neighbours: letters and digits that are \w or \d, Unicode spaces,
# characters that lower to ASCII, zero-width characters, homoglyphs, fullwidth
_UNI = ["\u00e9", "caf\u00e9", "\u4e2d\u6587", "\u00b2", "\u03a3", "\u03c3", "\u2028", "\u3000", "\u00a0",
        "\u0085", "\u212a", "\u0130", "\u0131", "\u0661\u0662\u0663", "\u200b", "\u180e", "\u0430",
        "\u043e", "\u0440", "\uff41\uff54", "\uff08at\uff09", "\u2160", "\U0001f600", "\u00c9T", "\u1680"]
uni_text = st.lists(st.sampled_from(_ATOMS + _UNI), max_size=8).map("".join) | st.lists(
    st.sampled_from(_ATOMS + _UNI), max_size=6).map(" ".join)
uni_plans = st.fixed_dictionaries(
    {},
    optional={
        "action": uni_text,
        "description": uni_text,
        "params": st.dictionaries(ascii_keys, st.one_of(uni_text, st.integers(0, 9)), max_size=5),
    },
)


@settings(max_examples=500)
@given(plan=uni_plans, advanced=st.booleans())
def test_unicode_plans_match_oracle(tags_impl, oracle, plan, advanced):
    _same(tags_impl, oracle, plan, None, advanced)


@settings(max_examples=500)
@given(s=uni_text)
def test_unicode_normalisation_matches_oracle(tags_impl, oracle, s):
    a = tags_impl.SafetyTagEnricher(enable_caching=False)
    b = oracle("tags").SafetyTagEnricher(enable_caching=False)
    assert a.preprocess_text(s) == b.preprocess_text(s), s


@settings(max_examples=400)
@given(s=st.text(alphabet="0123456789- _a", max_size=40))
def test_digit_patterns_match_oracle(tags_impl, oracle, s):
    _same(tags_impl, oracle, {"params": {"v": s, "w": s + " x"}}, advanced=True)


@settings(max_examples=600)
@given(s=st.text(alphabet="ab@.|_%+-Z9 \t", max_size=24))
def test_email_pattern_matches_oracle(tags_impl, oracle, s):
    _same(tags_impl, oracle, {"params": {"v": s}})


@settings(max_examples=400)
@given(s=st.text(alphabet="htpsHTPS:/ x<>\"\t\x1f", max_size=40))
def test_url_count_matches_oracle(tags_impl, oracle, s):
    _same(tags_impl, oracle, {"action": "x", "description": s, "params": {"u": s}})


@settings(max_examples=300)
@given(a=ascii_text, b=ascii_text)
def test_keywords_across_values(tags_impl, oracle, a, b):
    """Model keywords are searched in the space-joined text, so they may span two values."""
    _same(tags_impl, oracle, {"action": a, "params": {"p": a, "q": b}})


def test_keyword_spanning_two_values(tags_impl):
    r = tags_impl.SafetyTagEnricher(enable_caching=False).enrich_plan({"params": {"p": "use the tool", "q": "call it"}})
    assert r.tags[0].metadata["detected_types"] == ["keyword:tool call"]


@pytest.mark.parametrize("plan", [
    {"action": "x\u00e9 sudo", "params": {"v": "caf\u00e9 a@b.com"}},          # non-ASCII text
    {"action": "x", "params": {1: "a@b.com", "email": "c@d.com"}},              # non-str key
    {"action": "x", "params": {f"k{i}": "root" for i in range(70)}},            # C arrays on the heap
    {"action": "x", "params": {"v": "\u0661\u0662\u0663-\u0664\u0665-\u0666\u0667\u0668\u0669"}},  # Arabic-Indic digits
    {"action": "x", "params": {"v": "\u212aey admin"}},                         # Kelvin sign (NFKC -> K)
])
def test_slow_paths_match_oracle(tags_impl, oracle, plan):
    _same(tags_impl, oracle, plan)
    _same(tags_impl, oracle, plan, advanced=True)


def test_str_subclasses_take_the_generic_path(tags_impl, oracle):
    class S(str):
        pass

    _same(tags_impl, oracle, {"action": S("call_api"), "description": S("gpt-4o"), "params": {"url": S("https://a.b")}})
    _same(tags_impl, oracle, {"action": "x", "params": {S("Email"): S("a@b.com")}})

    import enum

    class Cents(enum.IntEnum):
        TEN = 10

    class Money(float):
        pass

    class Fake:  # isinstance(Fake(), float) is True through __class__
        __class__ = float

    for v in (Cents.TEN, Money(2.5), Fake(), object()):
        _same(tags_impl, oracle, {"action": "x", "params": {"amount": v, "fee": v, "note": "a@b.com"}})


def test_c_scanner_takes_ascii_plans():
    """The C scanner (not the fallback) handles the ASCII plans the differential tests generate."""
    c = tier_modules("tags").get("c")
    if c is None:
        pytest.skip("the C tier is not installed")
    from lukhas_fast._bench.tags import corpus

    assert all(c._c_scan_available(p) for p in corpus(200))
    assert c._c_scan_available({"action": "caf\u00e9", "params": {"v": "\u4e2d\u6587 x\u2028y"}})
    # non-ASCII decimal digits and U+0130 (lowers to two characters) have stand-ins too
    assert c._c_scan_available({"action": "x", "params": {"v": "\u0661\u0662"}})
    assert c._c_scan_available({"action": "\u0130", "params": {"v": "\u0130" * 5000, "w": "\u00e9" * 5000}})
    # U+212A lowers to ASCII and U+017F matches 's' in the URL pattern: the Cython path
    # (normalised plans never hold them: NFKC maps both to ASCII)
    assert not c._c_scan_available({"action": "x", "params": {"v": "\u212a"}})
    assert not c._c_scan_available({"action": "x", "params": {"v": "http\u017f://x"}})
    email = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b")
    for s in ["a@b.c|m", "a@b|c", "x a@b.com y", "..@x.io", "_@x.io", "%@x.io", "a@b.cc1", "a@b.c", "@x.io", "a@",
              "a@b.co.uk", "a@b..c", "a@-b.cd", "a@b.c-d.ef", "a.@b.cd"]:
        assert c._c_has_email(s) == bool(email.search(s)), s


# --- cache keys ---------------------------------------------------------------------------

awkward = st.one_of(st.just(0.0), st.just(-0.0), st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")),
                    st.just(1), st.just(1.0), st.just(True), st.just("1"), st.just(None), st.just(()), st.just((1,)),
                    st.just([1]), st.just({"a": 1}), st.just({1: "a"}), st.just({True: "a"}), st.just(b"1"))
key_values = st.recursive(awkward | st.text(alphabet="ab (at)", max_size=6),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", 1]),
                                                                                      inner, max_size=3),
                          max_leaves=6)
key_plans = st.dictionaries(st.sampled_from(["a", "b", "params", 1, 2.5]), key_values, max_size=3)


@settings(max_examples=400)
@given(p1=key_plans, p2=key_plans, c1=contexts, c2=contexts)
def test_cache_keys_hit_exactly_when_the_reference_would(tags_impl, oracle, p1, p2, c1, c2):
    fast = tags_impl.SafetyTagEnricher()
    ref = oracle("tags").SafetyTagEnricher()
    n1, n2 = ref.preprocess_plan(p1), ref.preprocess_plan(p2)
    same_ref = ref._generate_cache_key(n1, c1 or {}) == ref._generate_cache_key(n2, c2 or {})
    k1, k2 = fast._generate_cache_key(n1, c1 or {}), fast._generate_cache_key(n2, c2 or {})
    assert (k1 == k2) == same_ref, (p1, p2)
    if k1 == k2:
        assert hash(k1) == hash(k2)
    d1, _ = fast._key_and_plan(p1, c1 or {})
    assert d1 == k1


def test_float_keys():
    """Equal floats share a key, -0.0/0.0 do not, nan matches nan (the reference compares reprs)."""
    c = tier_modules("tags")
    for m in c.values():
        e = m.SafetyTagEnricher()
        for v, again, hit in [(1.5, 1.5, True), (0.0, -0.0, False), (float("nan"), float("nan"), True),
                              (float("inf"), float("inf"), True), (2.0, 2, False)]:
            e.enrich_plan({"v": v})
            assert e.enrich_plan({"v": again}).enrichment_context["cache_hit"] is hit, (m.__name__, v, again)


def test_subclass_hooks_are_honoured(tags_impl):
    """A subclass overriding a hook gets it called on every tier (the C tier's
    compiled path steps aside)."""

    class Upper(tags_impl.SafetyTagEnricher):
        def preprocess_text(self, text):
            return super().preprocess_text(text).replace("secret", "root")

    r = Upper(enable_caching=False).enrich_plan({"action": "x", "params": {"v": "secret"}})
    assert [t.name for t in r.tags] == ["privilege-escalation"]
    r = Upper().enrich_plan({"action": "x", "params": {"v": "secret"}})
    assert [t.name for t in r.tags] == ["privilege-escalation"]


def test_cached_tags_of_custom_detectors_are_copied(tags_impl):
    e = tags_impl.SafetyTagEnricher()

    class Odd(tags_impl.SafetyTagDetector):
        def __init__(self):
            super().__init__("odd", "c", "d")

        def detect(self, plan, context):
            t = tags_impl.SafetyTag("odd", "c", "d", 0.5, metadata={"n": [1], "s": "x"})
            t.extra = "kept"
            return t

    e.add_detector(Odd())
    r1 = e.enrich_plan({"action": "x"})
    r1.tags[0].metadata["n"].append(2)
    r1.tags[0].extra = "changed"
    r2 = e.enrich_plan({"action": "x"})
    r3 = e.enrich_plan({"action": "x"})
    assert r2.enrichment_context["cache_hit"] and r2.tags[0].metadata == {"n": [1], "s": "x"}
    assert r2.tags[0].extra == "kept" and r2.tags[0] is not r3.tags[0]
    assert r2.tags[0].metadata["n"] is not r3.tags[0].metadata["n"]


def _nested(depth):
    plan = {"params": {"email": "a@b.com"}}
    for _ in range(depth):
        plan = {"x": [plan], "action": "x"}
    return plan


@pytest.mark.parametrize("caching", [True, False])
def test_deep_nesting(tags_impl, oracle, caching):
    """Moderate nesting agrees with the oracle; absurd nesting raises RecursionError
    before any state change (the compiled walkers carry their own depth guard)."""
    ref = oracle("tags").SafetyTagEnricher(enable_caching=caching)
    e = tags_impl.SafetyTagEnricher(enable_caching=caching)
    assert _tags(e.enrich_plan(_nested(100))) == _tags(ref.enrich_plan(_nested(100)))
    e = tags_impl.SafetyTagEnricher(enable_caching=caching)
    with pytest.raises(RecursionError):
        e.enrich_plan(_nested(20000))
    assert (e.cache_hits, e.cache_misses) == (0, 0)


class _NoRepr:
    def __repr__(self):
        raise ValueError("no repr")


def test_unkeyable_plan_is_served_uncached(tags_impl):
    """Caching never changes what a call returns or raises: a value whose repr
    raises (the reference's key step failed -> error result, with caching only)
    is tagged without the cache and counted as a miss."""
    plan = {"action": "x", "v": _NoRepr(), "params": {"email": "a@b.com"}}
    off = tags_impl.SafetyTagEnricher(enable_caching=False).enrich_plan(plan)
    e = tags_impl.SafetyTagEnricher()
    for _ in range(2):
        on = e.enrich_plan(plan)
        assert _tags(on) == _tags(off) and on.enrichment_context == off.enrichment_context
    assert (e.cache_hits, e.cache_misses, e.get_stats()["cache_size"]) == (0, 2, 0)
    e.enrich_plan({"action": "x"}, {"lane": _NoRepr()})
    assert e.get_stats()["cache_size"] == 0


def test_repr_that_mutates_the_plan(tags_impl):
    """Keying runs a value's __repr__; one that empties the caller's plan must not crash."""
    plan = {}

    class Evil:
        def __repr__(self):
            plan.clear()
            return "evil"

    plan.update({"a": Evil(), "b": [1, 2, 3], "c": "text", "d": {"x": 1}})
    r = tags_impl.SafetyTagEnricher().enrich_plan(plan)
    assert r.original_plan is plan


# --- the result cache object -------------------------------------------------------------

def test_tag_cache_has_the_ordered_dict_surface(tags_impl):
    """``tag_cache`` (an OrderedDict on the pure-Python tier, the C tier's LRU
    object) answers the same mapping calls with the same recency order."""
    e = tags_impl.SafetyTagEnricher(cache_size=3)
    c = e.tag_cache
    for i in range(3):
        e.enrich_plan({"i": i})
    k0, k1, k2 = list(c)
    assert len(c) == 3 and k0 in c and list(c.keys()) == [k0, k1, k2]
    assert e.enrich_plan({"i": 0}).enrichment_context["cache_hit"] is True  # a hit refreshes
    assert list(c) == [k1, k2, k0]
    c.move_to_end(k2)
    assert list(c) == [k1, k0, k2]
    c.move_to_end(k2, last=False)
    assert list(c) == [k2, k1, k0]
    assert c.get(b"nope") is None and c.get(b"nope", 7) == 7
    assert c.get(k1) is c[k1] and list(c) == [k2, k1, k0]  # get does not refresh
    v = c[k1]
    c[k1] = v  # an update keeps its place
    assert list(c) == [k2, k1, k0]
    assert [k for k, _ in c.items()] == [k2, k1, k0] and len(c.values()) == 3
    assert c.popitem(last=False)[0] == k2 and c.popitem()[0] == k0 and list(c) == [k1]
    del c[k1]
    assert len(c) == 0 and not c and list(c) == []
    with pytest.raises(KeyError):
        c.popitem()
    with pytest.raises(KeyError):
        c.move_to_end(b"nope")
    e.enrich_plan({"i": 5})
    c.clear()
    assert len(c) == 0 and e.enrich_plan({"i": 5}).enrichment_context["cache_hit"] is False
    assert (e.cache_hits, e.cache_misses) == (1, 5)


def test_a_replaced_tag_cache_mapping_still_works(tags_impl):
    """A caller may swap ``tag_cache`` for an OrderedDict: hits, LRU order and the bound hold."""
    from collections import OrderedDict

    e = tags_impl.SafetyTagEnricher(cache_size=2)
    e.tag_cache = OrderedDict()
    for i in (0, 1, 0, 2, 1):
        e.enrich_plan({"i": i})
    assert len(e.tag_cache) == 2 and (e.cache_hits, e.cache_misses) == (1, 4)
    assert e.enrich_plan({"i": 1}).enrichment_context["cache_hit"] is True


@pytest.mark.slow
def test_threads_share_a_small_cache(tags_impl):
    """Hits, misses and evictions from four threads on a cache far smaller than
    the working set (the C tier's hits skip the lock): every result has the
    sequential tags, counters add up, the bound holds, no result aliases another."""
    import threading

    from lukhas_fast._bench.tags import corpus

    plans = corpus(200)
    want = [_tags(tags_impl.SafetyTagEnricher(enable_caching=False).enrich_plan(p)) for p in plans]
    shared = tags_impl.SafetyTagEnricher(cache_size=16)
    errors = []
    seen = []

    def work(k):
        try:
            import random

            rng = random.Random(k)
            for _ in range(3000):
                i = rng.randrange(40) if rng.random() < 0.8 else rng.randrange(len(plans))
                r = shared.enrich_plan(plans[i])
                if _tags(r) != want[i]:
                    errors.append(("tags", i))
                seen.append(r.tags)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert shared.cache_hits + shared.cache_misses == 4 * 3000
    assert shared.cache_hits > 4 * 3000 // 4  # the hot set does hit
    assert len(shared.tag_cache) <= 16
    ids = [id(t) for tags in seen for t in tags]
    assert len(ids) == len(set(ids))  # every result got its own tag objects


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from("aé\u0430\u200b(at) .dot[]ＡＢ\u2160x@"), max_size=40))
def test_normalisation_is_the_same_when_repeated(tags_impl, oracle, s):
    """A repeated string (served from the C tier's memo the second time) normalises as the oracle does."""
    ref = oracle("tags").SafetyTagEnricher(enable_caching=False).preprocess_text(s)
    e = tags_impl.SafetyTagEnricher(enable_caching=False)
    assert e.preprocess_text(s) == ref
    assert e.preprocess_text(s) == ref
    assert e.preprocess_text("".join(list(s))) == ref  # an equal, distinct str object


def test_an_enricher_in_a_cycle_through_its_cache_is_collected(tags_impl):
    """A cached tag whose metadata points back at the enricher makes a cycle
    through the cache (the C tier's LRU nodes included): the GC frees it."""
    import gc
    import weakref

    e = tags_impl.SafetyTagEnricher()

    class Back(tags_impl.SafetyTagDetector):
        def __init__(self):
            super().__init__("back", "c", "d")

        def detect(self, plan, context):
            return tags_impl.SafetyTag("back", "c", "d", 0.5, metadata={"owner": e})

    e.add_detector(Back())
    for i in range(5):
        e.enrich_plan({"i": i})
    assert len(e.tag_cache) == 5
    ref = weakref.ref(e)
    del e
    gc.collect()
    assert ref() is None


# --- linear-time rewrites of the reference's patterns (issue 13) --------------------------
# The reference's patterns, verbatim: on short strings (where their quadratic
# backtracking costs nothing) the linear rewrites must give exactly their results.
_REF_AT = re.compile(r"\(at\)|\[at\]|\{at\}|<at>|\s+at\s+", re.IGNORECASE)
_REF_DOT = re.compile(r"\(dot\)|\[dot\]|\{dot\}|<dot>|\s+dot\s+", re.IGNORECASE)
_REF_ADV_DOT = re.compile(r"\s*[\(\[\{<]\s*dot\s*[\)\]\}>]\s*|\s+dot\s+", re.IGNORECASE)
_REF_ADV_AT = re.compile(r"\s*[\(\[\{<]\s*at\s*[\)\]\}>]\s*|\s+at\s+", re.IGNORECASE)
_REF_ADV_AT_SP = re.compile(r"\s*@\s*")
_REF_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b")
_REF_ADV_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_REF_ADV_API = re.compile(r"https?://[^\s]*api[^\s]*", re.IGNORECASE)

_HOSTILE_ATOMS = ["a", "A", "t", "T", "d", "o", "O", "at", "AT", "dot", "DoT", " ", "  ", "\t", "\n", "\u2003",
                  "\u3000", "\x85", "(", ")", "[", "]", "{", "}", "<", ">", "@", ".", "-", "_", "|", "%", "+", "1",
                  "\u00e9", "\u0130", "\u0661", "\u00b2", "x", "b", "cc", "http://", "HTTPS://", "api", "Api", "a@b.cc",
                  "(at)", "[dot]", " at ", " dot "]
hostile_text = st.lists(st.sampled_from(_HOSTILE_ATOMS), max_size=12).map("".join)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(hostile_text)
def test_linear_rewrites_equal_the_reference_patterns(oracle, s):
    """The oracle's linear normalisers and searches give the reference regexes' results."""
    py = oracle("tags")
    assert py._AT_RE.sub("@", s) == _REF_AT.sub("@", s)
    assert py._DOT_RE.sub(".", s) == _REF_DOT.sub(".", s)
    assert py._ADV_DOT_RE.sub(".", s) == _REF_ADV_DOT.sub(".", s)
    assert py._ADV_AT_RE.sub("@", s) == _REF_ADV_AT.sub("@", s)
    assert py._ADV_AT_SP.sub("@", s) == _REF_ADV_AT_SP.sub("@", s)
    assert py.email_search(s) == bool(_REF_EMAIL.search(s))
    assert py.email_search(s, py._ADV_EMAIL_DOMAIN) == bool(_REF_ADV_EMAIL.search(s))
    assert py._adv_api_url(s) == bool(_REF_ADV_API.search(s))


@settings(max_examples=600, deadline=None, derandomize=True)
@given(hostile_text)
def test_normaliser_on_hostile_text_matches_oracle(tags_impl, oracle, s):
    """Every tier's (at)/(dot) normaliser (the C tier's one-pass rewrite, on ASCII
    and on 1-, 2- and 4-byte strings) gives the oracle's text."""
    ref = oracle("tags").SafetyTagEnricher(enable_caching=False).preprocess_text
    e = tags_impl.SafetyTagEnricher(enable_caching=False)
    for t in (s, s + "\U0001f600", "  " + s + " at\u3000" + s):
        assert e.preprocess_text(t) == ref(t)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(hostile_text, st.booleans())
def test_long_non_ascii_values_match_oracle(tags_impl, oracle, s, advanced):
    """Values too long for the C scanner's stand-in buffer (over 4096 characters,
    non-ASCII) take the Cython path, whose email check is the C matcher on a
    transcoded copy: the oracle's tags.  The padding after a space changes no match."""
    pad = " \u0130" + " " * 4200
    _same(tags_impl, oracle, {"action": "x", "params": {"v": s + pad, "w": pad + s}}, advanced=advanced)


_WORST = {
    "at_run": " " * 3000 + "x at y",
    "dot_run": "\t " * 1500 + "x DOT y",
    "uni_run": "\u3000" * 3000 + "a\u2003at\u3000b",
    "bracket_run": "(at" * 1000 + "(at)",
    "email_dots": "a." * 1500 + "@" + "b" * 3000 + "\u0130",
    "email_ats": "a@" * 3000 + "b.cc",
    "email_tlds": "x@" + ".bb1" * 1000 + " y@z.io",
    "http_run": "http://" * 800 + "api",
    "adv_space_at": "a" + " " * 3000 + "@" + " " * 3000 + "b.cc",
}


@pytest.mark.parametrize("name", sorted(_WORST))
@pytest.mark.parametrize("advanced", [False, True])
def test_worst_case_values_match_oracle(tags_impl, oracle, name, advanced):
    """The hand-built worst cases of issue 13 (shortened) get the oracle's tags
    and normalised text on every tier, as ASCII and as non-ASCII text."""
    v = _WORST[name]
    for text in (v, v + "\u00e9"):
        plan = {"action": "x", "description": text, "params": {"v": text, "content": text, "script": text}}
        _same(tags_impl, oracle, plan, advanced=advanced)
        ref = oracle("tags").SafetyTagEnricher(enable_caching=False).preprocess_text(text)
        assert tags_impl.SafetyTagEnricher(enable_caching=False).preprocess_text(text) == ref


# --- mixed plans: ASCII and non-ASCII values side by side (issue 13, per-value scan) --------
# The C tier scans each value where it is: ASCII in place, other text transcoded
# to stand-in bytes (Unicode digits, U+0130 as 'i' + a word stand-in), long
# values on the heap, more than 64 params items in heap arrays.  These plans
# mix every kind across the detectors so that a wrong stand-in, a value
# credited to the wrong part or a key mixed up shows as a tag difference.
_MIX_UNI = ["\u0130", "\u0130\u0130", "x\u0130@b.cc", "a\u0130b@c.io", "a@b.c\u0130", "a@b.cc\u0130", "\u0130.a@b.cc",
            "\u0661\u0662\u0663", "\u0661\u0662\u0663-\u0664\u0665-\u0666\u0667\u0668\u0669", "12\u0663-45-6789",
            "\u0966" * 9, "555-123-456\u0967", "4111 1111 1111 111\u0661", "\u0661" * 12, "\u00e9", "\u00c9T",
            "caf\u00e9", "\u4e2d\u6587", "\u3000", "\u2003at\u3000", "\u00a0", "\u2028", "\u03a3", "\u0131",
            "\U0001f600", "\u00b2", "gpt-4\u00e9", "\u0130sudo", "sudo\u0130", "GDPR\u0130", "http://\u0130x",
            "\u0430dmin", "r\u043e\u043et", "\u200bsudo", "\uff41\uff44\uff4d\uff49\uff4e",
            # terms ending in 'i' match before U+0130's combining dot once lowered
            "ap\u0130", "ml ap\u0130", "gemin\u0130", "call_ap\u0130", "\u0130dentity"]
mix_text = st.lists(st.sampled_from(_ATOMS + _MIX_UNI), max_size=8).map("".join) | st.lists(
    st.sampled_from(_ATOMS + _MIX_UNI), max_size=6).map(" ".join)
# a value long enough for the heap scratch (over 4096 characters): padding after a space
mix_long = st.tuples(mix_text, st.sampled_from([" " * 2100 + "\u0130", "\u00e9 " * 2100, " \u3000" * 1100, ""]),
                     mix_text).map("".join)
mix_values = st.one_of(ascii_text, mix_text, mix_long, st.integers(0, 10**12), st.floats(allow_nan=False),
                       st.none())
mix_keys = st.one_of(ascii_keys, st.text(alphabet="abk_\u00e9\u0130", min_size=1, max_size=4))
mix_plans = st.fixed_dictionaries(
    {"params": st.one_of(st.dictionaries(mix_keys, mix_values, max_size=6),
                         st.dictionaries(mix_keys, mix_values, min_size=60, max_size=80))},
    optional={"action": st.one_of(ascii_text, mix_text), "description": st.one_of(ascii_text, mix_text, mix_long)},
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(plan=mix_plans, ctx=contexts, advanced=st.booleans())
def test_mixed_ascii_and_non_ascii_plans_match_oracle(tags_impl, oracle, plan, ctx, advanced):
    """Cache off and on (the cached path keys long values by a streamed digest and
    normalises them once): the oracle's tags either way."""
    _same(tags_impl, oracle, plan, ctx, advanced)
    want = oracle("tags").SafetyTagEnricher(enable_caching=False, advanced=advanced).enrich_plan(plan, ctx)
    e = tags_impl.SafetyTagEnricher(advanced=advanced)
    first, again = e.enrich_plan(plan, ctx), e.enrich_plan(plan, ctx)
    assert _tags(first) == _tags(want) == _tags(again), plan
    assert (first.enrichment_context["cache_hit"], again.enrichment_context["cache_hit"]) == (False, True)


@pytest.mark.parametrize("plan", [
    {"action": "call_ap\u0130", "params": {"v": "ml ap\u0130", "w": "gemin\u0130 \u0130dentity"}},
    {"action": "x", "params": {"v": "\u0661\u0662\u0663-\u0664\u0665-\u0666\u0667\u0668\u0669", "w": "a\u0130b@c.io"}},
    {"action": "x", "params": {"v": "\u0130" * 3000 + " a.b@c.io " + "\u0966" * 9, "w": "x\u0130 5551234567"}},
])
def test_mixed_examples_match_oracle(tags_impl, oracle, plan):
    _same(tags_impl, oracle, plan)
    _same(tags_impl, oracle, plan, advanced=True)


def test_mixed_plans_take_the_c_scanner():
    """Normalised plans of any text, and with any number of params items, take the C scanner."""
    c = tier_modules("tags").get("c")
    if c is None:
        pytest.skip("the C tier is not installed")
    e = c.SafetyTagEnricher(enable_caching=False)
    plans = [
        {"action": "\u0130x", "description": "\u0661" * 5000, "params": {"a": "a.b@c.io", "b": "\u0130" * 5000}},
        {"action": "x", "params": {f"k{i}": ("\u0130" if i % 2 else "a") * 100 for i in range(200)}},
        {"action": "x", "params": {"v": "\u212a \u017f"}},  # NFKC: "K s"
    ]
    for p in plans:
        assert c._c_scan_available(e.preprocess_plan(p)), p


long_key_text = st.tuples(st.text(alphabet="ab (at)\u00e9\u0130", max_size=8),
                          st.sampled_from([0, 300, 511, 1020, 3000]),
                          st.text(alphabet="ab (at)\u00e9", max_size=8)).map(lambda t: t[0] + "x" * t[1] + t[2])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(p1=st.dictionaries(st.sampled_from(["a", "b", "params"]), long_key_text, max_size=3),
       p2=st.dictionaries(st.sampled_from(["a", "b", "params"]), long_key_text, max_size=3))
def test_long_cache_keys_hit_exactly_when_the_reference_would(tags_impl, oracle, p1, p2):
    """Encodings around and past the inline limit (1 KiB; digests are streamed) still
    share a key exactly when the reference's keys are equal."""
    fast = tags_impl.SafetyTagEnricher()
    ref = oracle("tags").SafetyTagEnricher()
    n1, n2 = ref.preprocess_plan(p1), ref.preprocess_plan(p2)
    same_ref = ref._generate_cache_key(n1, {}) == ref._generate_cache_key(n2, {})
    k1, k2 = fast._generate_cache_key(n1, {}), fast._generate_cache_key(n2, {})
    assert (k1 == k2) == same_ref, (p1, p2)
    assert fast._key_and_plan(p1, {})[0] == k1
    assert fast._key_and_plan(p2, {})[0] == k2
