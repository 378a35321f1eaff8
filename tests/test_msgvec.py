"""msgpack drift bodies: bin vectors are zero-copy views into the body when aligned (else
aligned copies, so answers never depend on a vector's offset), arrays decode like JSON
lists (float arrays into float64 arrays on the C tier), and bad bodies raise
MsgpackError naming the field."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

msgpack = pytest.importorskip("msgpack")
from lukhas_fast import _msgvec  # noqa: E402
from lukhas_fast._msgvec import MsgpackError, loads_drift  # noqa: E402
from lukhas_fast.drift import DriftMonitor  # noqa: E402


def _body(dtype="float32", n=5, lane="prod", **extra):
    rng = np.random.default_rng(n)
    a = rng.uniform(-1, 1, n).astype(dtype)
    b = rng.uniform(-1, 1, n).astype(dtype)
    obj = {"lane": lane, "dtype": dtype, "intent": a.astype("<" + a.dtype.str[1:]).tobytes(),
           "action": b.astype("<" + b.dtype.str[1:]).tobytes(), **extra}
    return msgpack.packb(obj), a, b


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 768, 20000])  # bin8, bin16, bin32 headers
@pytest.mark.parametrize("pad", range(8))  # the lane string's length moves the vectors' offsets
def test_bin_vectors_are_views_when_aligned_else_aligned_copies(dtype, n, pad):
    raw, a, b = _body(dtype, n, lane="p" * pad)
    d = loads_drift(raw)
    assert d["lane"] == "p" * pad and d["dtype"] == dtype
    body = np.frombuffer(raw, np.uint8)
    size = np.dtype(dtype).itemsize
    for name, want in (("intent", a), ("action", b)):
        v = d[name]
        assert v.dtype == np.dtype(dtype) and v.ndim == 1 and not v.flags.writeable
        np.testing.assert_array_equal(v, want)
        aligned_in_body = (body.ctypes.data + raw.index(want.astype("<" + want.dtype.str[1:]).tobytes())) % size == 0
        assert np.shares_memory(v, body) == aligned_in_body  # no copy when aligned
        assert v.ctypes.data % size == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_drift_does_not_depend_on_the_vectors_offset_in_the_body(dtype):
    # the kernels' typed (SIMD) loop runs only on aligned data: misaligned payloads are
    # copied, so every offset gives the drift of aligned arrays, to the last bit
    for pad, n in ((pad, n) for pad in range(8) for n in (768, 1001, 4096)):
        raw, a, b = _body(dtype, n, lane="p" * pad)
        d = loads_drift(raw)
        m1, m2 = DriftMonitor("prod", metrics=False), DriftMonitor("prod", metrics=False)
        assert m1.update(d["intent"], d["action"]) == m2.update(a.copy(), b.copy())


def test_arrays_and_other_shapes_use_msgpack():
    d = loads_drift(msgpack.packb({"lane": "prod", "intent": [1, 2.5, True], "action": [0.0, 1.0, 2.0]}))
    assert d == {"lane": "prod", "intent": [1, 2.5, True], "action": [0.0, 1.0, 2.0]}
    # bins still become views (of msgpack's bytes) when the fast path does not apply
    raw = msgpack.packb({"lane": "prod", "dtype": "float64", "n": 1,
                         "intent": np.ones(3).tobytes(), "action": np.arange(3.0).tobytes()})
    d = loads_drift(raw)
    np.testing.assert_array_equal(d["action"], [0.0, 1.0, 2.0])
    assert d["n"] == 1
    assert loads_drift(msgpack.packb([1, 2])) == [1, 2]  # the caller reports "expected an object"
    big = {f"k{i}": "v" for i in range(20)}  # map16 header
    big.update(intent=np.ones(2, "<f4").tobytes(), action=np.ones(2, "<f4").tobytes(), dtype="float32")
    d = loads_drift(msgpack.packb(big))
    assert d["k19"] == "v" and d["intent"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("obj, field, match", [
    ({"intent": b"\0" * 8, "action": b"\0" * 8}, "dtype", "dtype"),
    ({"dtype": "int8", "intent": b"\0" * 8, "action": b"\0" * 8}, "dtype", "dtype"),
    ({"dtype": 4, "intent": b"\0" * 8, "action": b"\0" * 8}, "dtype", "dtype"),
    ({"dtype": "float32", "intent": b"\0" * 6, "action": b"\0" * 8}, "intent", "whole number"),
    ({"dtype": "float64", "intent": b"\0" * 8, "action": b"\0" * 12}, "action", "whole number"),
    ({"dtype": "float64", "x": [1], "intent": b"\0" * 8, "action": b"\0" * 12}, "action", "whole number"),
])
def test_bad_bins_name_the_field(obj, field, match):
    with pytest.raises(MsgpackError, match=match) as ei:
        loads_drift(msgpack.packb(obj))
    assert ei.value.field == field


@pytest.mark.parametrize("raw", [b"\xc1", b"\x82\xa1a", msgpack.packb({"a": 1}) + b"\x00", b"\x81\x01\x02",
                                 b"\x81\xa1a\xc6\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff"])
def test_malformed_bodies(raw):
    with pytest.raises(MsgpackError, match="malformed msgpack") as ei:
        loads_drift(raw)
    assert ei.value.field == "body"


values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["lane", "dtype", "intent", "action", "x", ""]) | st.text(max_size=40),
                       values, max_size=6))
def test_fast_path_agrees_with_msgpack(obj):
    raw = msgpack.packb(obj, use_bin_type=True)
    want = msgpack.unpackb(raw, raw=False)
    try:
        got = loads_drift(raw)
    except MsgpackError as exc:  # only the vector conversion may refuse a valid body
        assert exc.field in ("dtype", "intent", "action")
        return
    assert set(got) == set(want)
    for k, v in want.items():
        if k in ("intent", "action") and isinstance(v, bytes):
            assert got[k].tobytes() == v
        elif isinstance(got[k], np.ndarray):  # the C tier: an array of msgpack floats
            assert isinstance(v, list) and v and all(type(x) is float for x in v)
            assert got[k].dtype == np.float64 and got[k].tobytes() == np.array(v, np.float64).tobytes()
        else:
            assert got[k] == v


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(st.floats(width=32), min_size=0, max_size=40), st.lists(st.floats(), max_size=8),
       st.lists(st.floats(allow_nan=False, width=32) | st.integers(-5, 5) | st.booleans(), min_size=1, max_size=20),
       st.booleans())
def test_float_arrays_are_read_exactly(xs, xs64, ys, single):
    # single: msgpack float 32 elements (widened exactly), else float 64
    raw = msgpack.packb({"lane": "prod", "intent": xs + ([] if single else xs64), "action": ys},
                        use_single_float=single)
    got = loads_drift(raw)
    want = msgpack.unpackb(raw, raw=False)
    floats = [v and all(type(x) is float for x in v) for v in (want["intent"], want["action"])]
    fast = _msgvec._vectors is not None and all(floats)  # the C tier reads the body in one call
    for k in ("intent", "action"):
        if fast:
            assert got[k].dtype == np.float64 and got[k].tobytes() == np.array(want[k], np.float64).tobytes()
        else:  # an empty array, ints/bools or another tier: msgpack's lists
            assert type(got[k]) is list and repr(got[k]) == repr(want[k])  # (repr: NaN and -0.0 too)


def test_dumps_answers():
    out = msgpack.unpackb(_msgvec.dumps({"ema": np.float64(0.5), "a": np.arange(2.0), "n": 3}))
    assert out == {"ema": 0.5, "a": [0.0, 1.0], "n": 3}


@settings(derandomize=True, max_examples=600, deadline=None)
@given(st.one_of(
    st.binary(max_size=64),
    st.dictionaries(st.text(max_size=40), st.text(max_size=40) | st.binary(max_size=300), max_size=18).map(
        lambda d: msgpack.packb(d, use_bin_type=True)),
).flatmap(lambda raw: st.tuples(st.just(raw), st.integers(0, max(0, len(raw))), st.binary(max_size=3))))
def test_c_splitter_agrees_with_the_python_one(case):
    raw, cut, tail = case
    c_fields = pytest.importorskip("lukhas_fast._drift_c").loads_msgpack_fields
    for body in (raw, raw[:cut], raw + tail):
        want = _msgvec.fields_py(body)
        got = c_fields(body)
        if want is None:
            assert got is None
        else:
            assert got is not None and set(got) == set(want)
            for k, v in want.items():
                assert type(got[k]) is type(v) and (got[k] == v if isinstance(v, str) else got[k].tobytes() == v.tobytes())


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["lane", "dtype", "intent", "action", "x"]),
                       st.sampled_from(["prod", "float32", "float64", "float16", ""]) | st.binary(max_size=40),
                       max_size=5))
def test_c_vector_views_agree_with_the_general_path(obj):
    c_vectors = pytest.importorskip("lukhas_fast._drift_c").loads_msgpack_vectors
    raw = msgpack.packb(obj, use_bin_type=True)
    got = c_vectors(raw)
    try:
        want = _msgvec._general(raw)
    except MsgpackError:
        assert got is None  # the error comes from the general path
        return
    if got is None:
        return  # allowed: the general path handles it
    assert set(got) == set(want)
    for k, v in want.items():
        if isinstance(v, np.ndarray):
            assert got[k].dtype == v.dtype and got[k].tobytes() == v.tobytes() and not got[k].flags.writeable
            assert got[k].ctypes.data % v.dtype.itemsize == 0  # aligned: a view, or a copy
            assert np.shares_memory(got[k], v) == np.shares_memory(v, np.frombuffer(raw, np.uint8))
        else:
            assert got[k] == v


# --- the one-call encoder of flat answers (C tier) and the reader's array contract ----------------

flat_values = (st.floats() | st.text(max_size=40) | st.booleans() | st.none() | st.integers(-2**64, 2**64)
               | st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -1, -32, -33, 1e-300, -0.0,
                                  "x" * 31, "x" * 32, "x" * 255, "x" * 256, "\ud800", "\u00e9" * 20])
               | st.binary(max_size=4) | st.lists(st.integers(), max_size=2))


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(st.dictionaries(st.text(max_size=20) | st.integers(0, 3) | st.just("\udfff"), flat_values, max_size=17))
def test_flat_answers_pack_as_msgpack_does(obj):
    flat = pytest.importorskip("lukhas_fast._drift_c").dumps_msgpack_flat
    got = flat(obj)
    try:
        want = _msgvec.dumps(obj)
    except Exception:  # msgpack refuses it (a lone surrogate ...): so does the flat encoder
        assert got is None
        return
    if got is not None:
        assert got == want == msgpack.packb(obj, use_bin_type=True)
    else:  # not flat: a value or key outside the documented shape, or too long
        simple = all(type(k) is str for k in obj) and len(obj) <= 15 and all(
            type(v) in (float, bool, str, type(None)) or (type(v) is int and 0 <= v < 2**32) for v in obj.values())
        assert not simple or len(want) > 400 or any(
            len(s.encode("utf-8", "surrogatepass")) > 255 for s in [*obj, *(v for v in obj.values() if type(v) is str)])


def test_flat_answers_are_the_drift_results():
    flat = pytest.importorskip("lukhas_fast._drift_c").dumps_msgpack_flat
    m = DriftMonitor("prod", metrics=False)
    for i in range(300):  # n through fixint and uint 8/16
        r = m.update([1.0, float(i)], [float(i % 7), 1.0])
        assert flat(r) == msgpack.packb(r, use_bin_type=True)
    assert flat({"n": 2**32 - 1}) == msgpack.packb({"n": 2**32 - 1})
    assert flat([1]) is None and flat({"x": 1.5, **{str(i): 1 for i in range(15)}}) is None


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["lane", "dtype", "intent", "action", "x"]),
                       st.sampled_from(["prod", "float32", "float64", ""]) | st.binary(max_size=48)
                       | st.lists(st.floats(), max_size=5), max_size=5))
def test_reader_arrays_are_plain_vectors_up_to_their_length(obj):
    """The service checks only the lengths of the msgpack reader's arrays: they are always
    1-D float32/float64 arrays, so _plain_vector is exactly that length check."""
    c_vectors = pytest.importorskip("lukhas_fast._drift_c").loads_msgpack_vectors
    from lukhas_fast.service import MAX_VECTOR_DIM, _plain_vector

    got = c_vectors(msgpack.packb(obj, use_bin_type=True))
    for v in (got or {}).values():
        if isinstance(v, np.ndarray):
            assert type(v) is np.ndarray and v.ndim == 1 and v.dtype in (np.float32, np.float64)
            assert _plain_vector(v) == (0 < len(v) <= MAX_VECTOR_DIM)


async def test_drift_msgpack_answers_are_msgpacks_own_bytes(aiohttp_client):
    from lukhas_fast.service import ServiceConfig, create_app

    client = await aiohttp_client(create_app(ServiceConfig(fps=50)))
    raw, a, b = _body("float32", 768, lane="prod")
    for accept in ("application/msgpack", "application/json, application/msgpack"):
        for ctype in ("application/msgpack", "application/msgpack; charset=binary"):
            r = await client.post("/drift/analyze", data=raw, headers={"Content-Type": ctype, "Accept": accept})
            out = await r.read()
            assert r.status == 200 and r.headers["Content-Type"] == "application/msgpack"
            assert out == msgpack.packb(msgpack.unpackb(out), use_bin_type=True)
            assert set(msgpack.unpackb(out)) == {"lane", "drift", "ema", "guardian", "n"}
    # an empty bin vector takes the long way (the same 400 as before)
    bad = msgpack.packb({"lane": "prod", "dtype": "float32", "intent": b"", "action": b""})
    r = await client.post("/drift/analyze", data=bad, headers={"Content-Type": "application/msgpack"})
    assert r.status == 400 and (await r.json())["field"] == "intent"


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.sampled_from(["float32", "float64"]), st.integers(1, 40), st.text(max_size=9),
       st.dictionaries(st.sampled_from(["x", "y"]), st.text(max_size=3) | st.binary(max_size=9), max_size=2))
def test_bin_vector_buffers_read_what_the_arrays_hold(dtype, n, lane, extra):
    """loads_msgpack_vectors(raw, arrays=False): the same dict with BinVector buffers in place
    of the bin arrays -- same bytes, dtype, alignment and memory (the body or a copy),
    read-only -- and the drift kernel's answers bit-identical."""
    c = pytest.importorskip("lukhas_fast._drift_c")
    raw, a, b = _body(dtype, n, lane=lane, **extra)
    arrays = c.loads_msgpack_vectors(raw)
    views = c.loads_msgpack_vectors(raw, False)
    assert arrays is not None and views is not None and list(arrays) == list(views)
    body = np.frombuffer(raw, np.uint8)
    for k, v in arrays.items():
        w = views[k]
        if not isinstance(v, np.ndarray):
            assert w == v
            continue
        assert type(w) is c.BinVector and len(w) == len(v) == n and w.dtype == v.dtype
        mv = memoryview(w)
        assert mv.readonly and mv.ndim == 1 and mv.shape == (n,) and mv.format == ("f" if dtype == "float32" else "d")
        u = np.asarray(w)
        assert u.dtype == v.dtype and u.tobytes() == v.tobytes() and not u.flags.writeable
        assert u.ctypes.data % v.dtype.itemsize == 0
        assert np.shares_memory(u, body) == np.shares_memory(v, body)
        assert not np.frombuffer(w, np.uint8).flags.writeable
    r1 = DriftMonitor("prod", metrics=False).update(arrays["intent"], arrays["action"])
    r2 = DriftMonitor("prod", metrics=False).update(views["intent"], views["action"])
    assert r1 == r2


def test_bin_vector_is_read_only_and_made_by_the_reader_only():
    c = pytest.importorskip("lukhas_fast._drift_c")
    raw, a, b = _body("float64", 4)
    v = c.loads_msgpack_vectors(raw, False)["intent"]
    import ctypes

    with pytest.raises((BufferError, TypeError)):  # (ctypes reports a read-only buffer as a TypeError)
        (ctypes.c_char * 32).from_buffer(v)
    with pytest.raises((BufferError, TypeError)):
        import struct

        struct.pack_into("d", v, 0, 1.0)  # a writable buffer request
    assert "float64" in repr(v) and "n=4" in repr(v)
    empty = c.BinVector()
    assert len(empty) == 0
    with pytest.raises(BufferError):
        memoryview(empty)


async def test_drift_route_bin_vector_errors_are_unchanged(aiohttp_client):
    """Bodies the reader hands over as BinVectors and the general path's arrays give the same
    answers and errors (too long, different lengths, non-finite)."""
    from lukhas_fast import service
    from lukhas_fast.service import ServiceConfig, create_app

    client = await aiohttp_client(create_app(ServiceConfig(fps=50, max_body=1 << 20)))
    big = np.zeros(service.MAX_VECTOR_DIM + 1, "<f4").tobytes()
    cases = [({"intent": big, "action": big}, "intent", "at most"),
             ({"intent": np.ones(3, "<f4").tobytes(), "action": np.ones(4, "<f4").tobytes()}, "action", "same length"),
             ({"intent": np.array([1, np.nan], "<f4").tobytes(), "action": np.ones(2, "<f4").tobytes()}, "intent",
              "non-finite")]
    for obj, field, match in cases:
        raw = msgpack.packb({"lane": "prod", "dtype": "float32", **obj})
        assert type(service._loads_msgpack_vectors(raw, False)["intent"]) is service._BinVector
        r = await client.post("/drift/analyze", data=raw, headers={"Content-Type": "application/msgpack"})
        body = await r.json()
        assert r.status == 400 and body["field"] == field and match in body["error"], body


def test_float_arrays_mixing_widths_and_cut_anywhere_are_read_exactly():
    """The C reader's all-float64 run (one bound check for the array) hands over to the
    element-by-element loop at the first float32 element or near the end of the body:
    mixed arrays read exactly, and every truncation is refused (None), never misread."""
    import random
    import struct

    c = pytest.importorskip("lukhas_fast._drift_c")
    rng = random.Random(5)
    for trial in range(60):
        n = rng.randint(1, 40)
        xs, items = [], []
        for _ in range(n):
            x = rng.uniform(-1e3, 1e3)
            if rng.random() < (0.0 if trial % 3 == 0 else 0.2):
                x = struct.unpack(">f", struct.pack(">f", x))[0]
                items.append(b"\xca" + struct.pack(">f", x))
            else:
                items.append(b"\xcb" + struct.pack(">d", x))
            xs.append(x)
        arr = (bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)) + b"".join(items)
        raw = b"\x82\xa6intent" + arr + b"\xa6action" + arr
        got = c.loads_msgpack_vectors(raw)
        for k in ("intent", "action"):
            assert got[k].dtype == np.float64 and got[k].tolist() == xs
        for cut in range(len(raw)):
            assert c.loads_msgpack_vectors(raw[:cut]) is None
