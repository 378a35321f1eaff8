"""``SafetyTagEnricher.enrich_rendered`` on every tier: the same results, counters and cache
as ``enrich_plan`` followed by the rendering, and the C tier's rendering kept with a cache
entry only while it is that entry's (eviction, replacement, clearing, other render
functions, tags that are not plain).  The service's pre-encoded ``/safety/enrich`` answer
is byte-identical to encoding the answer object whole."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lukhas_fast._backend import tier_modules


@pytest.fixture(autouse=True)
def _no_metrics(monkeypatch):
    monkeypatch.setenv("LUKHAS_FAST_METRICS", "0")


def _fields(tags):
    return [(t.name, getattr(t.category, "value", t.category), t.confidence, t.description, t.source,
             json.dumps(t.metadata, sort_keys=True, default=repr)) for t in tags]


class Render:
    """A pure rendering of the tags (a tuple of bytes) that counts its calls."""

    def __init__(self, kind=tuple):
        self.calls = 0
        self.kind = kind

    def __call__(self, tags):
        self.calls += 1
        out = tuple(repr(f).encode() for f in _fields(tags)) + (b"end",)
        if self.kind is bytes:
            return b"|".join(out)
        return self.kind(out)


def _state(e):
    return e.cache_hits, e.cache_misses, list(e.tag_cache.keys()) if e.tag_cache is not None else None


plans = st.sampled_from([
    {"action": "send_email", "params": {"to": "alice@example.com", "url": "https://api.partner.io/v1"}},
    {"action": "process_payment", "params": {"amount": 5, "email": "a@b.com"}},
    {"action": "read"},
    {"action": "sudo rm", "params": {"note": "root access"}},
    {"action": "switch model", "params": {"model": "gpt-4o"}},
    {"action": "x", "params": {"email": "x at y dot com"}},
    {"action": "x", "params": {"email": "x@y.com"}},
    {"params": {"v": 1}},
    {"params": {"v": 1.0}},
    {},
])
contexts = st.sampled_from([None, {}, {"lane": "prod"}, {"user_region": "EU"}])


@settings(max_examples=60)
@given(seq=st.lists(st.tuples(plans, contexts, st.booleans()), min_size=1, max_size=25),
       size=st.integers(1, 4), budget=st.sampled_from([800, 3000, 1 << 26]), caching=st.booleans())
def test_same_as_enrich_plan_then_render(tags_impl, seq, size, budget, caching):
    """Interleaved enrich_rendered / enrich_plan calls on one enricher give what the
    same calls on a twin enricher give with enrich_plan only (renderings, contexts,
    counters, cache keys in LRU order), under entry and byte bounds that evict."""
    a = tags_impl.SafetyTagEnricher(enable_caching=caching, cache_size=size, cache_bytes=budget)
    b = tags_impl.SafetyTagEnricher(enable_caching=caching, cache_size=size, cache_bytes=budget)
    render = Render()
    for plan, ctx, rendered in seq:
        want = b.enrich_plan(plan, ctx)
        if rendered:
            view, ms, got_ctx = a.enrich_rendered(plan, ctx, render)
            assert view == Render()(want.tags)
            assert ms >= 0.0 and type(ms) is float
        else:
            got = a.enrich_plan(plan, ctx)
            assert _fields(got.tags) == _fields(want.tags)
            got_ctx = got.enrichment_context
        assert got_ctx == want.enrichment_context
        assert _state(a) == _state(b)


def test_c_tier_keeps_the_rendering_with_the_entry(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    plan = {"action": "send_email", "params": {"to": "a@b.com", "url": "https://x.io/v"}}
    render = Render()
    first = e.enrich_rendered(plan, None, render)  # miss: rendered
    assert first[2]["cache_hit"] is False
    views = [e.enrich_rendered(dict(plan), None, render) for _ in range(4)]
    assert all(v[0] == first[0] and v[2] == {"cache_hit": True} for v in views)
    kept = tags_impl.__name__.endswith("_c")
    # the C tier renders on the first hit and keeps it; the Python tier renders every time
    assert render.calls == (2 if kept else 5)
    assert e.cache_hits == 4 and e.cache_misses == 1
    if kept:
        assert views[1][0] is views[2][0]
        # ... counted apart from the entries' bytes
        plain = tags_impl.SafetyTagEnricher()
        plain.enrich_plan(plan)
        assert e.tag_cache.nbytes == plain.tag_cache.nbytes
        assert e.tag_cache.view_bytes == 64 + 8 * len(first[0]) + sum(64 + len(b) for b in first[0])


def test_invalidation(tags_impl):
    kept = tags_impl.__name__.endswith("_c")
    plan = {"action": "x", "params": {"email": "a@b.com"}}
    e = tags_impl.SafetyTagEnricher(cache_size=2)
    render = Render()

    def calls_for(n_hits):
        before = render.calls
        for _ in range(n_hits):
            e.enrich_rendered(plan, None, render)
        return render.calls - before

    assert calls_for(3) == (2 if kept else 3)  # miss + first hit (kept), then the kept view
    # another render function: its own rendering, never the other's
    other = Render(list)
    v, _, ctx = e.enrich_rendered(plan, None, other)
    assert ctx == {"cache_hit": True} and type(v) is list and other.calls == 1
    e.enrich_rendered(plan, None, other)
    assert other.calls == 2  # (a list is never kept)
    assert calls_for(1) == (0 if kept else 1)  # the first rendering is still there
    # eviction: two other plans push the entry out; it comes back as a miss and renders again
    e.enrich_plan({"action": "a"})
    e.enrich_plan({"action": "b"})
    assert calls_for(1) == 1
    assert calls_for(2) == (1 if kept else 2)
    # add_detector clears the cache
    e.add_detector(_custom(tags_impl, "c1"))
    v, _, ctx = e.enrich_rendered(plan, None, render)
    assert ctx["cache_hit"] is False and b"c1" in b"".join(v)
    # replacing the entry's value (the mapping surface) drops its rendering
    e.enrich_rendered(plan, None, render)
    e.enrich_rendered(plan, None, render)
    key = list(e.tag_cache.keys())[-1]
    old = e.tag_cache[key]
    e.tag_cache[key] = old[:1]
    v, _, _ = e.enrich_rendered(plan, None, render)
    assert v == render([t for t in e.enrich_plan(plan).tags])
    assert b"c1" not in b"".join(v) or len(old) == 1
    # clear()
    e.tag_cache.clear()
    assert e.tag_cache.nbytes == 0
    assert e.enrich_rendered(plan, None, render)[2]["cache_hit"] is False


def test_view_bytes():
    """(C tier: the one that keeps renderings.)  Kept renderings never change which
    entries stay (nbytes and the eviction order are enrich_plan's), are bounded by twice
    their entry's cost, and their estimate returns to zero once the entries go."""
    tags_impl = tier_modules("tags").get("c")
    if tags_impl is None:  # pragma: no cover - a build without the compiled tiers
        pytest.skip("the C tier is not installed")
    e = tags_impl.SafetyTagEnricher(cache_bytes=5000)
    ref = tags_impl.SafetyTagEnricher(cache_bytes=5000)
    small = lambda tags: (b"x" * 300,)  # noqa: E731
    big = lambda tags: (b"x" * 5000,)  # noqa: E731
    for i in range(8):
        p = {"action": "x", "params": {"email": f"a{i}@b.com"}}
        for _ in range(2):
            e.enrich_rendered(p, None, small)
            ref.enrich_plan(p)
        assert (e.tag_cache.nbytes, e.tag_cache.keys()) == (ref.tag_cache.nbytes, ref.tag_cache.keys())
    assert e.tag_cache.view_bytes == len(e.tag_cache) * (64 + 8 + 64 + 300)
    before = e.tag_cache.view_bytes
    e.enrich_rendered({"action": "x", "params": {"email": "a7@b.com"}}, None, big)  # too big to keep
    assert e.tag_cache.view_bytes == before
    e.tag_cache.popitem(last=False)
    del e.tag_cache[e.tag_cache.keys()[0]]
    assert e.tag_cache.view_bytes == len(e.tag_cache) * (64 + 8 + 64 + 300)
    e.tag_cache.clear()
    assert e.tag_cache.view_bytes == 0 == e.tag_cache.nbytes


def _custom(tags_impl, name, metadata=None):
    class Custom(tags_impl.SafetyTagDetector):
        def __init__(self):
            super().__init__(name, tags_impl.SafetyTagCategory.RESOURCE_IMPACT, "custom")

        def detect(self, plan, context):
            return tags_impl.SafetyTag(name, self.category, "c", 0.5, metadata=metadata if metadata is not None
                                       else {"n": [1]})

    return Custom()


def test_custom_tags_are_rendered_every_time(tags_impl):
    """Tags that are not plain built-in ones are thawed and rendered per hit, as
    enrich_plan would give them (their nested metadata may be shared and mutated)."""
    shared = {"deep": {"k": 1}}
    e = tags_impl.SafetyTagEnricher()
    e.add_detector(_custom(tags_impl, "cust", shared))
    plan = {"action": "x", "params": {"email": "a@b.com"}}
    render = Render()
    for _ in range(3):
        v, _, _ = e.enrich_rendered(plan, None, render)
    assert render.calls == 3
    tp = e.enrich_plan(plan)
    tp.tags[-1].metadata["deep"]["k"] = 2  # the record's nested dict is shared with hits
    v, _, _ = e.enrich_rendered(plan, None, render)
    assert v == Render()(e.enrich_plan(plan).tags) and b"2" in v[-2]


def test_subclass_enrich_plan_is_followed(tags_impl):
    class Sub(tags_impl.SafetyTagEnricher):
        def enrich_plan(self, plan, context=None):
            tp = super().enrich_plan(plan, context)
            tp.tags = tp.tags[:1]
            return tp

    e = Sub()
    plan = {"action": "send_email", "params": {"to": "a@b.com", "url": "https://x.io/v"}}
    for _ in range(3):
        v, _, _ = e.enrich_rendered(plan, None, Render())
        assert v == Render()(e.enrich_plan(plan).tags) and len(v) == 2


def test_bad_input_raises_before_state_changes(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    render = Render()
    with pytest.raises(TypeError, match="plan"):
        e.enrich_rendered(["x"], None, render)
    with pytest.raises(TypeError, match="context"):
        e.enrich_rendered({"a": 1}, [1], render)
    assert (e.cache_hits, e.cache_misses, render.calls) == (0, 0, 0)


def test_threads(tags_impl):
    """Threads mixing both calls on a small cache (constant eviction) always get the
    rendering of the plan's own tags."""
    e = tags_impl.SafetyTagEnricher(cache_size=3)
    ps = [{"action": "x", "params": {"email": f"u{i}@b.com", "url": "https://x.io/" + "v" * i}} for i in range(5)]
    want = [Render()(tags_impl.SafetyTagEnricher(enable_caching=False).enrich_plan(p).tags) for p in ps]
    render = Render()
    errors = []

    def work(k):
        try:
            for j in range(300):
                i = (j * (k + 1)) % len(ps)
                if j % 3:
                    got = e.enrich_rendered(ps[i], None, render)[0]
                else:
                    got = Render()(e.enrich_plan(ps[i]).tags)
                if got != want[i]:
                    errors.append((i, got))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert e.cache_hits + e.cache_misses == 1200


# --- the service's pre-encoded answer ----------------------------------------------------------

service = pytest.importorskip("lukhas_fast.service")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["a@b.com", "https://api.x.io/v1", "sudo", "gpt-4o", "\u0000lukhas-"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)
json_plans = st.dictionaries(st.sampled_from(["action", "params", "description", "x", "url"]), json_values, max_size=4)


@settings(max_examples=150)
@given(plan=json_plans, ctx=st.sampled_from([None, {"lane": "prod"}, {"user_region": "EU"}]))
def test_enrich_answer_bytes_match_the_whole_encoding(tags_impl, oracle, plan, ctx):
    """The spliced answer (miss, first hit, kept hit) equals the answer object encoded
    whole, with the oracle's tags for the plan."""
    e = tags_impl.SafetyTagEnricher()
    ref = oracle("tags").SafetyTagEnricher(enable_caching=False)
    rows = service._rows(ref.enrich_plan(plan, ctx).tags)
    for i in range(3):
        parts, ms, got_ctx = e.enrich_rendered(plan, ctx, service._render_enrich_tags)
        assert type(parts) is tuple and len(parts) == 5
        assert got_ctx["cache_hit"] is (i > 0)
        assert service._enrich_body(parts, service._dumps(plan), ms, got_ctx) == service._dumps(
            service._enrich_answer(plan, rows, ms, got_ctx))


def test_marker_in_a_tag_falls_back_to_rows(tags_impl):
    e = tags_impl.SafetyTagEnricher()
    e.add_detector(_custom(tags_impl, "m", {"x": service._ENRICH_HOLES.mark["plan"]}))
    out, _, _ = e.enrich_rendered({"action": "x"}, None, service._render_enrich_tags)
    assert type(out) is list and out[-1]["metadata"] == {"x": service._ENRICH_HOLES.mark["plan"]}


async def test_enrich_route_answers_canonical_bytes(aiohttp_client):
    """Through the route: miss, hits, a large (offloaded path not taken) and a
    different context: each answer is the whole encoding of its own content."""
    orjson = pytest.importorskip("orjson")
    client = await aiohttp_client(service.create_app(service.ServiceConfig(fps=50)))
    bodies = [{"plan": {"action": "send_email", "params": {"to": "alice@example.com", "url": "https://a.io/v1"}}},
              {"plan": {"action": "send_email", "params": {"to": "alice@example.com", "url": "https://a.io/v1"}},
               "context": {"lane": "prod"}},
              {"plan": {"action": "x \u00e9", "params": {"n": [1, 2.5, None, True]}}},
              {}]
    ref = service.SafetyTagEnricher(enable_caching=False)
    for body in bodies:
        for i in range(3):
            r = await client.post("/safety/enrich", json=body)
            raw = await r.read()
            assert r.status == 200
            got = orjson.loads(raw)
            assert raw == orjson.dumps(got)
            assert got["enrichment_context"]["cache_hit"] is (i > 0)
            rows = service._rows(ref.enrich_plan(body.get("plan") or {}, body.get("context")).tags)
            assert raw == service._dumps(service._enrich_answer(body.get("plan") or {}, rows,
                                                                got["enrichment_time_ms"], got["enrichment_context"]))
