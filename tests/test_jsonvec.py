"""``loads_vectors`` (C tier of the drift family, ``csrc/jsonvec.c``): numbers
bit-identical to ``float(text)``, results equal to ``orjson.loads`` whenever
it answers, None (never an exception) for everything else."""

from __future__ import annotations

import json
import math
import random
import struct
from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

orjson = pytest.importorskip("orjson")
_drift_c = pytest.importorskip("lukhas_fast._drift_c")
loads_vectors = _drift_c.loads_vectors


def _parse(strs):
    """The array parsed from '{"v":[strs...]}', or None if not handled."""
    r = loads_vectors(('{"v":[' + ",".join(strs) + "]}").encode())
    return None if r is None else r["v"]


def _check_exact(strs):
    """Not handled, or every element bit-identical to float(s).  Returns handled."""
    got = _parse(strs)
    if got is None:
        return False
    want = np.array([float(s) for s in strs], dtype=np.float64)
    assert got.dtype == np.float64 and got.shape == want.shape
    bad = [(s, repr(g), repr(w)) for s, g, w in zip(strs, got.tolist(), want.tolist())
           if struct.pack("<d", g) != struct.pack("<d", w)]
    assert not bad, bad[:5]
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
    return True


def _one_by_one(strs):
    """Check each string alone (a body falls back as a whole); returns how many were handled."""
    return sum(_check_exact([s]) for s in strs)


# --- the number parser ------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(st.lists(finite, min_size=1, max_size=40))
def test_printed_doubles_are_exact(xs):
    forms = [repr, json.dumps, lambda x: "%.17g" % x, lambda x: "%.6f" % x, lambda x: "%.9e" % x]
    for f in forms:
        strs = [f(x) for x in xs]
        strs = [s if ("." in s or "e" in s or "E" in s) else s + ".0" for s in strs]
        _one_by_one(strs)


def _number(digits, dot, exp, neg, ekind):
    """A JSON float token from a digit string, the decimal point's position and an exponent."""
    dot = min(dot, len(digits))
    ip = digits[:dot].lstrip("0") or "0"
    fp = digits[dot:]
    s = ("-" if neg else "") + ip + ("." + fp if fp else "")
    if ekind:
        s += ekind + str(abs(exp) if ekind[-1] in "+-" else exp)
    elif not fp:
        s += ".0"
    return s


@settings(max_examples=300)
@given(st.lists(st.tuples(st.text("0123456789", min_size=1, max_size=25), st.integers(0, 25),
                          st.integers(-40, 40), st.booleans(), st.sampled_from(["e", "E", "e+", "E-", "e-", ""])),
                min_size=1, max_size=20))
def test_random_digit_strings(parts):
    _one_by_one([_number(*p) for p in parts])


def test_special_forms():
    strs = ["-0.0", "0.0", "0e0", "-0e5", "0.000123", "0.0000000000000000000000123", "1e-22", "1e22", "1e23",
            "9007199254740993.0", "9007199254740992.0", "123456789012345678.9", "1.7976931348623157e308",
            "2.2250738585072014e-308", "5e-324", "1e-400", "1e400", "0.1", "0.5", "1.5E+3", "1.5e-003"]
    for s in strs:
        _check_exact([s])
    assert math.copysign(1.0, _parse(["-0.0"])[0]) == -1.0
    assert _parse(["1e400"]) is None  # overflow: orjson's business


def test_near_powers_of_two_and_midpoints():
    rng = random.Random(7)
    strs = []
    for _ in range(3000):
        k = rng.randint(-80, 80)
        x = math.ldexp(1.0, k) * rng.choice([1.0, math.nextafter(1.0, 2.0), math.nextafter(1.0, 0.0)])
        if rng.random() < 0.5:
            x = math.ldexp(rng.random() + 0.5, rng.randint(-90, 70))
        y = math.nextafter(x, math.inf)
        mid = (Decimal(x) + Decimal(y)) / 2  # exact: the decimal midpoint of two neighbours
        for d in (mid, mid.next_plus(), mid.next_minus()):
            strs.append(format(d, "e"))
        # Just off the midpoint by less than a 64-bit ulp: a conversion through
        # any wider intermediate format followed by a second rounding goes wrong
        # on these (ties-to-even and the carry out of the truncated tail).
        for prec in (17, 18, 19):
            for rnd in (ROUND_UP, ROUND_DOWN):
                strs.append(format(Context(prec=prec, rounding=rnd).plus(mid), "e"))
        strs += [repr(x), repr(y), "%.17g" % x, "%.19e" % x]
    handled = _one_by_one(strs)
    assert handled > len(strs) // 4  # the exact conversion must carry a good share of these


def test_power_of_five_table():
    """The conversion's table, recomputed from its definition (5^q scaled to
    [2^127, 2^128): truncated for q >= 0, floor(2^b / 5^-q) + 1 for q < 0)."""
    for q in range(-27, 28):
        if q < 0:
            p5 = 5 ** -q
            want = 2 ** ((p5 - 1).bit_length() + 127) // p5 + 1
        else:
            want = 5 ** q
            while want < 2 ** 127:
                want *= 2
            while want >= 2 ** 128:
                want //= 2
        assert _drift_c._pow5_entry(q) == want, q
    assert _drift_c._pow5_entry(-28) is None and _drift_c._pow5_entry(28) is None


@pytest.mark.parametrize("seed", range(6))
def test_many_random_decimals_are_exact(seed):
    """200,000 random decimal strings per seed (1-19 significant digits, every
    handled exponent, numbers next to exact halfway points of doubles),
    converted in bulk: every handled one bit-identical to float()."""
    rng = random.Random(seed)
    strs = []
    for _ in range(200_000):
        r = rng.random()
        if r < 0.5:
            nd = rng.randint(1, 19)
            digits = str(rng.randrange(10 ** (nd - 1), 10 ** nd))
            strs.append(f"{'-' if rng.random() < 0.5 else ''}{digits[0]}.{digits[1:] or '0'}e{rng.randint(-26, 8)}")
        elif r < 0.8:
            x = rng.uniform(-1, 1) * 10 ** rng.randint(-6, 6)
            strs.append(repr(x) if "e" in repr(x) or "." in repr(x) else repr(x) + ".0")
        else:  # a halfway point of two doubles, rounded to 17-19 digits
            x = math.ldexp(rng.random() + 0.5, rng.randint(-60, 60))
            mid = (Decimal(x) + Decimal(math.nextafter(x, math.inf))) / 2
            strs.append(format(Context(prec=rng.randint(17, 19)).plus(mid), "e"))
    strs = [s if ("." in s or "e" in s) else s + ".0" for s in strs]
    handled = 0
    for i in range(0, len(strs), 5000):
        chunk = strs[i:i + 5000]
        if _check_exact(chunk):
            handled += len(chunk)
        else:
            handled += _one_by_one(chunk)
    assert handled > len(strs) * 0.75  # the rest: exponents beyond +-27


@settings(max_examples=50)
@given(st.integers(0, 2**32))
def test_the_common_cases_are_handled(seed):
    rng = random.Random(seed)
    xs = [rng.uniform(-1, 1) for _ in range(64)]
    assert _check_exact([repr(x) for x in xs])
    assert _check_exact([json.dumps(round(x, 6)) for x in xs])
    assert _check_exact(["%.6f" % x for x in xs])


@pytest.mark.parametrize("tok", ["1", "-0", "01.5", "+1.5", ".5", "1.", "1.e5", "1e", "1e+", "-", "--1.0", "1.5.2",
                                 "0x1p3", "inf", "NaN", "1.5f", "1_000.0", "\u0661.0", "1.5e5.0", "00.5"])
def test_not_json_floats_are_not_handled(tok):
    assert _parse([tok]) is None
    assert _parse(["1.5", tok, "2.5"]) is None


def test_too_many_digits_is_not_handled_but_19_are():
    assert _check_exact(["0.1234567890123456789", "1234567890123456789e-19", "0.9999999999999999999"])
    assert _parse(["1234567890123456789.0e-19"]) is None  # 20 digits, the trailing zero counts
    assert _parse(["0.12345678901234567891"]) is None


# --- whole bodies against orjson ------------------------------------------------------

def _same(a, b):
    if isinstance(a, np.ndarray):
        return (isinstance(b, list) and a.dtype == np.float64 and a.ndim == 1 and list(a) == b
                and all(type(x) is float for x in b)
                and np.array_equal(a.view(np.uint64), np.array(b, dtype=np.float64).view(np.uint64)))
    return type(a) is type(b) and a == b


def _check_body(body):
    got = loads_vectors(body)
    if got is None:
        return False
    want = orjson.loads(body)
    assert type(got) is dict and list(got) == list(want), (body[:200], got, want)
    for k in want:
        assert _same(got[k], want[k]), (k, got[k], want[k])
    return True


text = st.text(st.characters(codec="utf-8"), max_size=12)
value = st.one_of(
    text, st.booleans(), st.none(), st.integers(-10**20, 10**20), finite,
    st.lists(finite, min_size=1, max_size=20), st.lists(st.integers(-5, 5), min_size=1, max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just([]),
    st.lists(st.floats(-1, 1), min_size=1, max_size=20),
)
dump_opts = st.sampled_from([
    {}, {"separators": (",", ":")}, {"indent": 2}, {"indent": "\t"}, {"ensure_ascii": False},
    {"ensure_ascii": False, "separators": (" ,", " : ")},
])


@settings(max_examples=400)
@given(st.dictionaries(text, value, max_size=6), dump_opts, st.booleans())
def test_bodies_match_orjson(obj, opts, pad):
    body = json.dumps(obj, **opts)
    if pad:
        body = " \r\n\t" + body + "\n "
    _check_body(body.encode())


@settings(max_examples=400)
@given(st.dictionaries(st.text(max_size=4), st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8), max_size=4),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4), st.integers(0, 10**6),
       st.booleans())
def test_mutated_bodies_never_raise(obj, edits, cut, truncate):
    raw = bytearray(json.dumps(obj).encode())
    for pos, byte in edits:
        if raw:
            raw[pos % len(raw)] = byte
    if truncate and raw:
        raw = raw[: cut % len(raw)]
    body = bytes(raw)
    handled = _check_body(body)
    assert (loads_vectors(bytearray(body)) is not None) == handled  # any contiguous buffer, same answer


def test_handled_shapes_and_results():
    body = b'{"lane": "prod", "a": [1.5, -0.0, 2e-3], "t": true, "f": false, "n": null, "s": "\xc3\xa9t\xc3\xa9"}'
    r = loads_vectors(body)
    assert list(r) == ["lane", "a", "t", "f", "n", "s"] and r["s"] == "\u00e9t\u00e9"
    assert r["a"].tolist() == [1.5, -0.0, 0.002] and r["a"].flags.writeable and r["a"].flags.owndata is not None
    assert r["t"] is True and r["f"] is False and r["n"] is None
    assert loads_vectors(b"{}") == {} == orjson.loads(b"{}")
    dup = b'{"k": [1.5], "x": "y", "k": "last"}'
    assert loads_vectors(dup) == orjson.loads(dup) and list(loads_vectors(dup)) == ["k", "x"]
    assert loads_vectors(memoryview(body)).keys() == r.keys()


@pytest.mark.parametrize("body", [
    b"", b" ", b"[1.5]", b"1.5", b'"x"', b"{", b"{}}", b"{} x", b'{"a":1.5}', b'{"a":[1.5]', b'{"a":[1.5,]}',
    b'{"a":[]}', b'{"a":[1]}', b'{"a":[1.5, 2]}', b'{"a":{"b":1.5}}', b'{"a":"\\u0041"}', b'{"a\\n":"x"}',
    b'{"a":"x\ny"}', b'{"a":"\xff"}', b'{"\xed\xa0\x80":"x"}', b'{"a":tru}', b'{"a":nul}', b'{"a":[1.5]x}',
    b'{"a" "b"}', b'{a:1.5}', b"\xef\xbb\xbf{}", b'{"a":[1.5 2.5]}', b'{"a":[[1.5]]}', b'{"a":["1.5"]}',
    b'{"a":[1.5],}', b'{,"a":[1.5]}', b'{"a":[1.5]}\x00', b'{"a":true false}',
])
def test_not_handled_bodies(body):
    assert loads_vectors(body) is None


def test_bounds_are_respected():
    # The parser must stop at the buffer's end even when valid-looking bytes follow in memory.
    full = b'{"a":[0.1234567890123456, 0.25]}'
    for n in range(len(full)):
        assert loads_vectors(memoryview(full)[:n]) is None
    assert loads_vectors(full)["a"].tolist() == [0.1234567890123456, 0.25]


def test_large_arrays_and_many_members():
    rng = random.Random(3)
    obj = {f"k{i}": [rng.uniform(-1, 1) for _ in range(rng.randint(1, 3000))] for i in range(30)}
    obj["lane"] = "prod"
    assert _check_body(json.dumps(obj).encode())


@pytest.mark.parametrize("seed", range(3))
def test_plain_decimals_take_the_fixed_shape_path_exactly(seed):
    """Tokens of the shape -?D.DDD (1-18 fraction digits, the shape most
    vectors are written in, parsed without a digit loop), including 17-19
    significant digit strings next to exact halfway points of doubles."""
    rng = random.Random(100 + seed)
    strs = []
    for _ in range(100_000):
        r = rng.random()
        if r < 0.4:
            nf = rng.randint(1, 18)
            strs.append(f"{'-' if rng.random() < 0.5 else ''}{rng.randint(0, 9)}.{rng.randrange(10 ** nf):0{nf}d}")
        elif r < 0.7:
            strs.append(repr(rng.uniform(-9.99, 9.99)))
        else:
            x = rng.uniform(0.001, 9.99)
            mid = (Decimal(x) + Decimal(math.nextafter(x, math.inf))) / 2
            nf = rng.randint(15, 18)
            q = Decimal(1).scaleb(-nf)
            strs.append(str(mid.quantize(q, rounding=rng.choice([ROUND_UP, ROUND_DOWN]))))
    strs = [s for s in strs if "e" not in s and "E" not in s]
    for i in range(0, len(strs), 5000):
        assert _check_exact(strs[i:i + 5000]), "a plain decimal fell back"
