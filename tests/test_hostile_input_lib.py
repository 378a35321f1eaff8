"""Issue 13, library side: one regression test per row of the table of hostile
inputs that the library itself handles (linear-time tag patterns, the tag
cache's byte budget, bounded lane labels, the SPSC core's alignment and size
checks, misaligned drift views).  Service rows live in test_service.py.

Time bounds here are deliberately loose (a loaded CI machine must pass): they
catch the quadratic blow-ups (tens of seconds), not a slowdown; the figures
are measured by ``python -m lukhas_fast bench`` (tags rows ``worst-case``)."""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest

from lukhas_fast import _metrics
from lukhas_fast._backend import tier_modules


# Under AddressSanitizer (tests/sanitize/run.sh preloads libasan) freed memory sits in
# ASan's quarantine and every allocation carries shadow memory and redzones, so RSS
# measures the sanitizer, not the cache: the RSS bounds are checked in the ordinary runs.
_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
_under_asan = pytest.mark.skipif(_ASAN, reason="RSS is not meaningful under AddressSanitizer")


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")  # pragma: no cover


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# --- row 1: 60 KB of whitespace before "x at y" (19.1 s before, both tiers) -----------------

def test_whitespace_run_before_at_is_linear(tags_impl, oracle):
    plan = {"action": "x", "params": {"v": " " * 60000 + "x at y"}}
    e = tags_impl.SafetyTagEnricher(enable_caching=False, metrics=False)
    r, dt = _timed(lambda: e.enrich_plan(plan))
    assert dt < 2.0, f"{dt:.2f} s for 60 KB"
    assert e.preprocess_text(plan["params"]["v"]).endswith("x@y")
    ref = oracle("tags").SafetyTagEnricher(enable_caching=False, metrics=False).enrich_plan(plan)
    assert [t.name for t in r.tags] == [t.name for t in ref.tags]


# --- row 2: 120 KB email worst case with a non-ASCII character (7.4 s before, C tier) --------

def test_email_worst_case_on_the_non_ascii_path_is_linear(tags_impl):
    plan = {"action": "x", "params": {"v": "a." * 30000 + "@" + "b" * 60000 + "\u0130"}}
    e = tags_impl.SafetyTagEnricher(enable_caching=False, metrics=False)
    r, dt = _timed(lambda: e.enrich_plan(plan))
    assert dt < 2.0, f"{dt:.2f} s for 120 KB"
    assert r.tags == []  # no TLD after the domain: no email


def test_one_mib_of_worst_cases_on_the_c_tier():
    """The target of issue 13 item 1 (< 100 ms on an idle machine), checked
    loosely; the bench rows measure it."""
    from lukhas_fast._bench.tags import worst_case_plan

    tags_c = pytest.importorskip("lukhas_fast._tags_c")
    e = tags_c.SafetyTagEnricher(enable_caching=False, metrics=False)
    plan = worst_case_plan(1 << 20)
    _, dt = _timed(lambda: e.enrich_plan(plan))
    assert dt < 2.0, f"{dt:.2f} s for 1 MiB"


# --- row 3: distinct large plans with an emoji (+226 MB RSS for 60 before, C tier) ----------

@_under_asan
def test_large_plans_do_not_grow_the_cache_keys(tags_impl, oracle):
    """The issue's 60 plans on the C tier (its 16-hex-digit keys never held the
    plan on the pure-Python tier, which runs 10: its normaliser is 10x slower)."""
    count = 60 if tags_impl is not oracle("tags") else 10
    e = tags_impl.SafetyTagEnricher(metrics=False)
    e.enrich_plan({"action": "warm", "params": {"v": "y" * 900000 + "\U0001f600"}})
    gc.collect()
    before = _rss_mib()
    for i in range(count):
        e.enrich_plan({"action": "x", "params": {"v": str(i) + "y" * 900000 + "\U0001f600"}})
    gc.collect()
    grown = _rss_mib() - before
    assert len(e.tag_cache) == count + 1
    assert all(len(k) <= 1025 for k in e.tag_cache)  # bytes (C tier, 33 for a digest) or 16 hex digits
    assert grown < 64, f"RSS grew {grown:.0f} MiB for {count} cached 900 KB plans"


def test_cache_byte_budget_evicts_oldest(tags_impl):
    """Entries are evicted by estimated bytes as well as by count; hits and
    misses are those of an unbounded cache while the budget is not reached."""
    e = tags_impl.SafetyTagEnricher(metrics=False, cache_bytes=200_000)
    big = lambda i: {"action": "x", "params": {f"k{i}" + "r" * 50000: "root"}}  # noqa: E731
    for i in range(10):
        e.enrich_plan(big(i))
    cache = e.tag_cache
    assert 0 < cache.nbytes <= 200_000 and len(cache) < 10
    assert e.enrich_plan(big(9)).enrichment_context["cache_hit"] is True
    assert e.enrich_plan(big(0)).enrichment_context["cache_hit"] is False
    # an entry bigger than the whole budget is served but not stored
    small = tags_impl.SafetyTagEnricher(metrics=False, cache_bytes=1000)
    small.enrich_plan(big(1))
    assert len(small.tag_cache) == 0 and small.tag_cache.nbytes == 0
    with pytest.raises(ValueError, match="cache_bytes"):
        tags_impl.SafetyTagEnricher(cache_bytes=0)
    cache.clear()
    assert cache.nbytes == 0


def test_ordinary_plans_hit_and_miss_as_without_a_budget(tags_impl):
    from lukhas_fast._bench.tags import corpus

    plans = corpus(300)
    seq = plans + plans[::3] + plans[:50]
    stats = []
    for kw in ({}, {"cache_bytes": 1 << 40}):
        e = tags_impl.SafetyTagEnricher(metrics=False, **kw)
        hits = [e.enrich_plan(p).enrichment_context["cache_hit"] for p in seq]
        stats.append((hits, e.cache_hits, e.cache_misses))
    assert stats[0] == stats[1]
    assert stats[0][1] == 150


_RSS_SCRIPT = r"""
import ctypes, gc, sys
from lukhas_fast._backend import tier_modules

try:  # glibc keeps freed blocks in its arenas; hand them back so RSS shows what is live
    _trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    _trim = lambda pad: 0

def rss_mib():
    gc.collect()
    _trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0

m = tier_modules("tags")[sys.argv[1]]
budget, count = int(sys.argv[2]), int(sys.argv[3])
e = m.SafetyTagEnricher(metrics=False, cache_bytes=budget)
pad = "y" * (1 << 20)
e.enrich_plan({"action": "warm", "params": {"v": pad + "\U0001f600"}})
gc.collect()
before = rss_mib()
for i in range(count):
    if i % 10:
        plan = {"action": "x", "params": {f"{i}" + pad: "root"}}  # tag metadata ~1 MB
    else:
        plan = {"action": "x", "params": {"v": f"{i}" + pad + "\U0001f600"}}
    e.enrich_plan(plan)
    del plan
gc.collect()
print(e.tag_cache.nbytes, rss_mib() - before)
"""


@pytest.mark.slow
@_under_asan
def test_thousand_distinct_one_mb_plans_stay_under_the_budget(tags_impl, oracle):
    """1000 distinct 1 MB plans, most with tags that quote a 1 MB key (~1 MB of
    detected types per entry), one in ten a 4-byte-per-character text (the
    issue's emoji plans, slow to normalise): RSS grows less than the default
    budget (64 MiB) plus 10 %.  The pure-Python tier (10x slower per plan)
    runs 100 such plans against a 16 MiB budget.  Measured in a fresh
    interpreter: after the rest of the suite has freed large blocks, glibc's
    raised mmap threshold and heap fragmentation would be measured instead;
    and glibc's arenas are trimmed before each reading (malloc_trim), so
    freed-but-kept blocks are not counted as the cache's."""
    import subprocess
    import sys

    tier = next(name for name, mod in tier_modules("tags").items() if mod is tags_impl)
    full = tags_impl is not oracle("tags")
    budget = oracle("tags").CACHE_BYTES if full else 16 << 20
    count = 1000 if full else 100
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, tier, str(budget), str(count)],
                         capture_output=True, text=True, check=True, timeout=900).stdout.split()
    nbytes, grown = int(out[0]), float(out[1])
    assert nbytes <= budget
    assert grown < budget / (1 << 20) * 1.1, f"RSS grew {grown:.0f} MiB"


# --- row 4: made-up lanes made new Prometheus series (75 for 5 requests before) -------------

def test_lane_labels_are_bounded(tags_impl):
    prom = pytest.importorskip("prometheus_client")
    e = tags_impl.SafetyTagEnricher(enable_caching=False, metrics=True)
    plan = {"action": "process_payment", "params": {"email": "a@b.com"}}
    for i in range(5):
        e.enrich_plan(plan, {"lane": f"made-up-{i}-{tags_impl.__name__}"})
    e.enrich_plan(plan, {"lane": "PROD"})
    e.enrich_plan(plan, {"lane": 7})
    lanes = {s.labels["lane"] for m in prom.REGISTRY.collect() if m.name == "safety_tags_confidence_bucket"
             for s in m.samples if "lane" in s.labels}
    assert lanes <= _metrics.KNOWN_LANES | {"other"}
    assert "other" in lanes and "prod" in lanes


def test_lane_label_policy():
    assert _metrics.lane_label("prod") == "prod" and _metrics.lane_label("Candidate") == "candidate"
    assert _metrics.lane_label("unknown") == "unknown"
    assert _metrics.lane_label("x" * 1000) == "other" and _metrics.lane_label(None) == "other"


def test_drift_gauge_lane_is_bounded(drift_impl):
    prom = pytest.importorskip("prometheus_client")
    with pytest.warns(UserWarning, match="unknown drift lane"):
        m = drift_impl.DriftMonitor(f"zz-made-up-{drift_impl.__name__}", metrics=True)
    m.update([1.0, 0.0], [1.0, 0.0])
    lanes = {s.labels["lane"] for mm in prom.REGISTRY.collect() if mm.name == "lukhas_drift_ema" for s in mm.samples}
    assert lanes <= _metrics.KNOWN_LANES | {"other"} and "other" in lanes


# --- row 5: SpscRing under clang + LUKHAS_NATIVE (segfault in lk_spsc_init before) -----------

def test_many_spsc_rings_work(ring_impl):
    """The C core lives in its own 64-byte-aligned allocation; rings of every
    shape can be made, used and freed (a misaligned core crashed with clang)."""
    rings = [ring_impl.SpscRing(8, w, dt) for w in (1, 3) for dt in ("float64", "float32", "int64") for _ in range(20)]
    for r in rings:
        row = np.arange(r.width, dtype=r.dtype)
        assert r.push(row if r.width > 1 else 1) is True
        out = r.pop_many()
        assert out.shape[0] == 1 and len(r) == 0
    del rings
    gc.collect()


# --- row 6: drift kernels on misaligned views (UBSan misaligned loads before) ----------------

@pytest.mark.parametrize("dtype", ["<f8", "<f4", "<i8", "<i4"])
@pytest.mark.parametrize("n", [1, 3, 8, 17, 64])
def test_drift_on_misaligned_views_matches_oracle(drift_impl, oracle, dtype, n):
    rng = np.random.default_rng(n)
    a = np.zeros(n, dtype=[("f", "u1"), ("v", dtype)])["v"]
    b = np.frombuffer(bytearray(n * np.dtype(dtype).itemsize + 1), dtype="u1")[1:].view(dtype)
    vals_a = rng.integers(-50, 50, n)
    vals_b = rng.integers(-50, 50, n)
    a[:] = vals_a
    b[:] = vals_b
    assert a.ctypes.data % 2 == 1 and b.ctypes.data % 2 == 1
    got = drift_impl._cosine(a, b)
    want = oracle("drift")._cosine([float(x) for x in vals_a], [float(x) for x in vals_b])
    assert abs(got - want) <= 1e-12  # the spec's tolerance


# --- last row: SpscRing(4, 2**61+1), pop_many(2**64) -------------------------------------------

def test_spsc_sizes_are_validated_like_the_python_tier(ring_impl):
    with pytest.raises(ValueError):
        ring_impl.SpscRing(4, 2**61 + 1)
    with pytest.raises(ValueError):
        ring_impl.SpscRing(2**40, 2**30)
    # a width beyond Py_ssize_t (found by the spsc fuzzer: OverflowError on the C tier)
    with pytest.raises(ValueError, match="does not fit in Py_ssize_t"):
        ring_impl.SpscRing(10, 2**70)
    with pytest.raises(ValueError, match="does not fit in Py_ssize_t"):
        ring_impl.SpscRing(2**31, 2**31, "int64")
    r = ring_impl.SpscRing(4)
    assert r.pop_many(2**64).shape == (0,)
    r.push(2.0)
    assert r.pop_many(2**64).tolist() == [2.0]
    assert r.pop_many(2**100).shape == (0,)


# --- frames held for /consciousness/analyze: per-frame limit, ring ceiling ---------------------

def test_frame_limit_and_ring_ceiling():
    from lukhas_fast import _limits
    from lukhas_fast.ring import DecimatingRing

    ok = {"tick": 1, "values": [0.5] * 100, "meta": {"lane": "prod"}}
    n = _limits.check_frame(ok)
    assert 0 < n <= _limits.MAX_FRAME_BYTES
    big = {"values": [float(i) for i in range(20000)]}  # ~100 KB of JSON, ~800 KB as objects
    with pytest.raises(ValueError, match="'frame' is too large"):
        _limits.check_frame(big)
    deep = []
    for _ in range(100000):  # nesting deeper than any recursion limit
        deep = [deep]
    with pytest.raises(ValueError, match="too large"):
        _limits.check_frame(deep)
    assert _limits.check_frame(big, max_bytes=10 << 20) > 20000 * 24
    with pytest.raises(ValueError, match="max_bytes"):
        _limits.check_frame(ok, max_bytes=0)
    # the ceiling holds for a full ring of frames at the limit
    ring = DecimatingRing(50, 0.8, 2, "skip_nth")
    frame = {"v": [float(i) for i in range(1500)]}
    size = _limits.check_frame(frame)
    gc.collect()
    before = _rss_mib()
    for i in range(2000):
        ring.push({"v": [float(j + i) for j in range(1500)]})
    gc.collect()
    if not _ASAN:  # RSS measures the sanitizer's quarantine under ASan
        assert (_rss_mib() - before) * (1 << 20) < _limits.ring_memory_ceiling(50) + (8 << 20)
    assert size * 50 <= _limits.ring_memory_ceiling(50)
