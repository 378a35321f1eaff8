"""``json_depth_exceeds``: the C tier's one-pass scanner (``csrc/jsondepth.c``, in
the drift family's C module) against the pure-Python oracle
(:func:`lukhas_fast.service.json_depth_exceeds`) and a recursive count of the
parsed value; the edges (the exact limit, the length bound, escaped quotes and
backslash runs, brackets in keys); hostile inputs of megabytes in linear time;
bad arguments; and the service's decode step using the C scanner."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("aiohttp")
from lukhas_fast import drift, service  # noqa: E402
from lukhas_fast.service import json_depth_exceeds as oracle  # noqa: E402

_drift_c = pytest.importorskip("lukhas_fast._drift_c")
fast = _drift_c.json_depth_exceeds


def _depth(obj) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    best, stack = 0, [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            d += 1
            best = max(best, d)
            stack.extend((x, d) for x in (v.values() if isinstance(v, dict) else v))
    return best


def _both(raw: bytes, limit: int) -> bool:
    """The C answer (for bytes, bytearray and memoryview alike), checked against the oracle."""
    got = fast(raw, limit)
    assert type(got) is bool
    assert fast(bytearray(raw), limit) is got and fast(memoryview(raw), limit) is got
    assert oracle(raw, limit) is got, (raw[:80], limit)
    return got


def _json_extend(kids):  # a named function: hypothesis checks (from its source) that it uses `kids`
    return st.lists(kids, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\k/'), kids, max_size=4)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(alphabet='[]{}"\\ab\n\u00e9\U0001f600'),
    _json_extend, max_leaves=60)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(_values, st.integers(0, 10), st.booleans(), st.booleans())
def test_c_equals_the_oracle_and_a_recursive_count(value, limit, ascii_only, indent):
    """Random values with hostile strings (brackets, escaped quotes, backslashes, non-ASCII):
    C == oracle == the parsed value's depth > limit, at every limit around the depth."""
    raw = json.dumps(value, ensure_ascii=ascii_only, indent=2 if indent else None).encode()
    d = _depth(value)
    for lim in {limit, max(0, d - 1), d, d + 1}:
        assert _both(raw, lim) == (d > lim), (raw, lim, d)


@pytest.mark.parametrize("text, depth", [
    (b'"[[[[[["', 0),
    (b'["\\"[[[[", "]"]', 1),                  # an escaped quote does not end the string
    (b'["\\\\", [[[]]]]', 4),                  # ... an escaped backslash before a quote does
    (b'["\\\\\\"[[[[[["]', 1),                 # three backslashes: the quote is escaped
    (b'["\\\\\\\\", [[]]]', 3),                # four: it is not
    (b'{"[{[{": {"]}]}": [{"a\\"": [[]]}]}}', 6),   # brackets and escapes in keys
    (b'{"a":{"b":{"c":{}}}}', 4),
    (b' \n [ [ ] , [ [ ] ] ] \t', 3),
    (b'"\\u005b\\u007b"', 0),                  # escaped brackets are text
    (b'"\xc3\xa9[\xf0\x9f\x98\x80{"', 0),      # UTF-8 inside strings
    (b'{"k": [[1]], "k": 1}', 3),             # the text's depth: a duplicate key's dropped value counts
    (b'123', 0), (b'', 0),
])
def test_edge_texts(text, depth):
    for lim in range(0, depth + 3):
        assert _both(text, lim) == (depth > lim), (text, lim)


def test_the_exact_limit_and_the_length_bound():
    """At the limit: accepted; one deeper: caught, including the shortest such body
    (2 * limit + 2 bytes, just past the length bound) and when the extra level is last."""
    for limit in (0, 1, 2, 7, 63, 64, 65, 300):
        for o, c in ((b"[", b"]"), (b"{", b"}")):
            assert _both(o * limit + c * limit, limit) is False
            assert _both(o * (limit + 1) + c * (limit + 1), limit) is True
        # many shallow brackets (more than `limit` of them) but never deeper than 2
        wide = b"[" + b",".join([b"[]"] * (limit + 2)) + b"]"
        assert _both(wide, max(limit, 2)) is False and _both(wide, 1) is True
        # the deepest point at the very end of a long, otherwise flat body
        tail = b'["' + b"x" * (4 * limit) + b'",' + b"[" * limit + b"]" * (limit + 1)
        assert _both(tail, limit) is True and _both(tail, limit + 1) is False


def test_counts_past_a_4k_block():
    """The opening-bracket pre-count works in 4 KiB blocks: brackets split across them count."""
    for n in (4095, 4096, 4097, 9000):
        body = b'{"k":"' + b"[" * n + b'", "v": ' + b"[" * 70 + b"]" * 70 + b"}"
        assert _both(body, 64) is True and _both(body, 71) is False


@pytest.mark.parametrize("shape", ["open", "valid", "backslashes", "escaped_quotes", "strings", "unterminated"])
def test_hostile_megabytes_in_linear_time(shape):
    """3-5 MiB of the worst shapes for a scanner (valid or not): one pass each.  A
    quadratic scan would take hours here; the C takes milliseconds."""
    mib = 1 << 19  # half a MiB: the bodies below are 3-5 MiB
    body = {
        "open": b"[" * (8 * mib),
        "valid": b"[" * (4 * mib) + b"]" * (4 * mib),
        "backslashes": b'["' + b"\\\\" * (4 * mib) + b'"' + b"[" * 100 + b"]" * 101,
        "escaped_quotes": b'["' + b'\\"[' * (2 * mib) + b'"]',
        "strings": b"[" + b'"[{",' * (2 * mib) + b"1]",
        "unterminated": b'[[[["' + b"\\" * (8 * mib),
    }[shape]
    t = time.perf_counter()
    got = fast(body, 64)
    took = time.perf_counter() - t
    assert took < 1.0, took
    want = {"open": True, "valid": True, "backslashes": True, "escaped_quotes": False, "strings": False,
            "unterminated": False}[shape]
    assert got is want
    if shape in ("valid", "escaped_quotes", "strings"):
        assert fast(body, 4 * mib - 1 if shape == "valid" else 1) is (shape == "valid")
        assert fast(body, 4 * mib) is False if shape == "valid" else True


@pytest.mark.parametrize("fn", [fast, oracle], ids=["c", "python"])
def test_bad_arguments(fn):
    with pytest.raises(TypeError, match="limit"):
        fn(b"[]", 1.0)
    with pytest.raises(TypeError, match="limit"):
        fn(b"[]", None)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        fn(b"[]", -1)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        fn(b"[]", -(2 ** 80))
    if fn is fast:
        with pytest.raises(TypeError):
            fn("[[[]]]", 1)
    assert fn(b"[[]]", 2 ** 80) is False and fn(b"[[]]", True) is True


def test_the_service_decodes_with_the_c_scanner():
    """``decode_json`` checks depth with the drift family's scanner: the C one on the C tier."""
    want = fast if drift._impl is _drift_c else oracle
    assert service._depth_exceeds is want
    cfg = service.ServiceConfig(max_depth=3)
    assert service.decode_json(b'{"a": [[1]], "s": "[[[[[["}', cfg) == {"a": [[1]], "s": "[[[[[["}
    with pytest.raises(service.BadRequest, match="nested deeper than 3"):
        service.decode_json(b'{"a": [[[1]]]}', cfg)
    with pytest.raises(service.BadRequest, match="malformed JSON"):
        service.decode_json(b'{"a": [[[1]]]', cfg)
