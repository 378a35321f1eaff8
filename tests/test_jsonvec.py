"""``loads_vectors`` (C tier of the drift family, ``csrc/jsonvec.c``): numbers
bit-identical to ``float(text)``, results equal to ``orjson.loads`` whenever
it answers, None (never an exception) for everything else.

Every body goes through each number kernel this CPU runs (the scalar code,
and AVX2 / AVX-512BW where present, forced with ``_loads_vectors_isa``), and
the kernels must agree exactly: same None-ness, same keys, same bits."""

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
KERNELS = _drift_c._json_kernels()  # "scalar" first, the default (best) last


def _agree(results):
    """The kernels' results for one body must be identical; returns the first."""
    first = results[0]
    for kernel, r in zip(range(1, len(results)), results[1:]):
        assert (r is None) == (first is None), (kernel, r, first)
        if r is not None:
            assert list(r) == list(first), kernel
            for k, v in first.items():
                if isinstance(v, np.ndarray):
                    w = r[k]
                    assert isinstance(w, np.ndarray) and np.array_equal(v.view(np.uint64), w.view(np.uint64)), (kernel, k)
                else:
                    assert type(r[k]) is type(v) and r[k] == v, (kernel, k)
    return first


# the SIMD kernels also with every number redone by their exact integer code
# (the four-at-a-time floating-point conversion off): same results
ALL_KERNELS = KERNELS + [k + "+exact" for k in KERNELS[1:]]


def loads_vectors(data):
    """``_drift_c.loads_vectors`` after checking every kernel gives the same answer."""
    got = _drift_c.loads_vectors(data)
    _agree([got] + [_drift_c._loads_vectors_isa(data, k) for k in ALL_KERNELS if k != KERNELS[-1]])
    return got


def _parse(strs, pad=0):
    """The array parsed from '{"v":[strs...]}' (after `pad` spaces, which moves the
    numbers in or out of the first 32 bytes), or None if not handled."""
    r = loads_vectors((" " * pad + '{"v":[' + ",".join(strs) + "]}").encode())
    return None if r is None else r["v"]


def _check_exact(strs, pad=32):
    """Not handled, or every element bit-identical to float(s).  Returns handled."""
    got = _parse(strs, pad)
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
    """Check each string alone (a body falls back as a whole), both as the first
    number of a body and past the first 32 bytes; returns how many were handled."""
    n = 0
    for s in strs:
        handled = _check_exact([s], 32)
        assert _check_exact([s], 0) == handled, s
        n += handled
    return n


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


def test_floating_point_table():
    """The SIMD kernels' divisors: 10^k exactly for up to 19 fraction digits, a NaN
    above (a lane that would use one is redone exactly)."""
    if _drift_c._p10_entry(1) is None:
        assert KERNELS == ["scalar"]  # (a build without the SIMD kernels)
        return
    for k in range(64):
        if k <= 19:
            assert _drift_c._p10_entry(k) == 10 ** k and int(_drift_c._p10_entry(k)) == 10 ** k, k
        else:
            assert math.isnan(_drift_c._p10_entry(k)), k
    assert _drift_c._p10_entry(-1) is None and _drift_c._p10_entry(64) is None


def _fp_cases():
    """Tokens at the floating-point conversion's edges: results that are powers of
    two (a narrower rounding interval below), exact ties and decimals within a
    hair of one (the lane must be redone exactly), zeros, 19 vs 20 significant
    digits, the longest tokens it takes (25 bytes after the sign) and longer."""
    rng = random.Random(7)
    out = []
    for e in range(-60, 64):  # powers of two with a short enough decimal form
        d = Decimal(2) ** e
        for x in (d, -d):
            t = format(x, "f")
            if "." not in t:
                t += ".0"
            if len(t.lstrip("-").replace(".", "").lstrip("0")) <= 19:
                out.append(t)
    for _ in range(300):  # exact ties between neighbouring doubles that print in <= 19 digits
        m = (1 << 53) | rng.getrandbits(53) | 1  # 54 bits, odd: halfway between two doubles
        x = Decimal(m) * Decimal(2) ** rng.randrange(-2, 7)
        for y in (x, x.next_plus(Context(prec=19)), x.next_minus(Context(prec=19))):
            t = format(y, "f")
            if "." not in t:
                t += ".0"
            out.append(t)
    for _ in range(300):  # the midpoint between a random double and the next, then off it by 1e-19 relative
        x = rng.uniform(0.001, 1000)
        y = math.nextafter(x, math.inf)
        mid = (Decimal(x) + Decimal(y)) / 2
        for prec in (17, 18, 19):
            for rnd in (ROUND_UP, ROUND_DOWN):
                out.append(format(Context(prec=prec, rounding=rnd).plus(mid), "f"))
    out += ["0.0", "-0.0", "0.00000000000000000000", "9007199254740993.0", "9007199254740992.5",
            "4503599627370496.5", "0.1", "0.5", "1.5", "2.0", "-0.25", "0.125",
            "9999999999999999999.0", "0.9999999999999999999", "1.0000000000000000001",
            "0.00000000000000000000123", "0.000000000000000000001234", "1234567890123456789.0"]
    return [t for t in out if len(t.lstrip("-")) <= 29] + ["0." + "0" * 22 + "1", "0." + "0" * 23 + "1",
                                                          "1." + "2" * 22, "-0." + "3" * 23]


def test_floating_point_conversion_edges():
    """Every edge token through every kernel (alone, in short arrays of 1 to 9, and in
    one long array) bit-identical to float(); the kernels agree with their exact-only
    variants."""
    strs = _fp_cases()
    _one_by_one(strs[:200])
    for n in range(1, 10):
        for i in range(0, len(strs) - n, 37):
            _check_exact(strs[i:i + n], 40)
    simple = [t for t in strs if len(t.lstrip("-").replace(".", "").lstrip("0")) <= 19]
    assert len(simple) > len(strs) // 2
    assert _check_exact(simple, 40)  # (a body is handled as a whole, or not at all)
    # the same with the service's separator, and past various offsets
    for pad in (0, 1, 7, 33):
        assert _check_against_json(simple, pad)
        _check_against_json(strs, pad)


@pytest.mark.parametrize("seed", range(6))
def test_many_random_decimals_are_exact(seed, scaled):
    """200,000 random decimal strings per seed (1-19 significant digits, every
    handled exponent, numbers next to exact halfway points of doubles),
    converted in bulk: every handled one bit-identical to float()."""
    rng = random.Random(seed)
    strs = []
    for _ in range(scaled(200_000)):
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
            handled += sum(_check_exact([s]) for s in chunk)  # (one body each; the first-32-bytes case is above)
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
    for pad in (0, 40):
        assert _parse([tok], pad) is None
        assert _parse(["1.5", tok, "2.5"], pad) is None


def test_too_many_digits_is_not_handled_but_19_are():
    assert _check_exact(["0.1234567890123456789", "1234567890123456789e-19", "0.9999999999999999999"])
    for pad in (0, 40):
        assert _parse(["1234567890123456789.0e-19"], pad) is None  # 20 digits, the trailing zero counts
        assert _parse(["0.12345678901234567891"], pad) is None
        assert _parse(["12345678901234567.891"], pad) is None
        assert _parse(["0.000000001234567890123456789"], pad) is not None  # leading zeros do not count
        assert _parse(["0.0000000001234567890123456789"], pad) is None  # 10^-28: beyond the exponent range


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


# --- the kernels: every shape near their limits, against json.loads ------------------------

def _bits_of(xs):
    return [struct.pack("<d", x) for x in xs]


def _check_against_json(strs, pad=40, sep=", "):
    """Parse one body of the tokens with every kernel (they must agree); when handled,
    the values must be json.loads's bit for bit.  Returns handled."""
    body = (" " * pad + '{"lane": "prod", "v": [' + sep.join(strs) + "]}").encode()
    got = loads_vectors(body)
    want = json.loads(body)["v"]
    if got is None:
        return False
    assert all(type(x) is float for x in want), "a body with an integer element was handled"
    assert _bits_of(got["v"].tolist()) == _bits_of(want), [
        (t, repr(g), repr(w)) for t, g, w in zip(strs, got["v"].tolist(), want) if _bits_of([g]) != _bits_of([w])][:5]
    return True


def _token(x, style):
    """A JSON number token for x in one of several spellings (some are ints, which are not handled)."""
    kind, prec = style
    if kind == "repr":
        return json.dumps(x)
    if kind == "e":
        return ("%." + str(prec) + "e") % x
    if kind == "E+":  # capital E, explicit '+' on positive exponents
        return ("%." + str(prec) + "E") % x
    if kind == "e-nopad":  # exponent without leading zeros, explicit '+'
        m, e = (("%." + str(prec) + "e") % x).split("e")
        return f"{m}e{'+' if int(e) >= 0 else '-'}{abs(int(e))}"
    if kind == "f":
        return ("%." + str(prec) + "f") % x
    if kind == "g":
        return ("%." + str(prec) + "g") % x  # may be an int ("12") or have an exponent
    return str(int(x)) if math.isfinite(x) and abs(x) < 1e30 else json.dumps(x)  # "int"


doubles = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),                      # every exponent
    st.floats(min_value=-1.0, max_value=1.0),                              # the vectors' range
    st.floats(min_value=0.0, max_value=2.3e-308).map(lambda x: x or 5e-324),  # subnormals
    st.integers(-2**53, 2**53).map(float),
    st.sampled_from([0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e-27, 1e27,
                     9.999999999999999e18, 1e19, 0.1, 0.5, 1e-5, 1.2345e-05]),
)
styles = st.tuples(st.sampled_from(["repr", "e", "E+", "e-nopad", "f", "g", "int"]), st.integers(0, 18))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(doubles, styles), min_size=1, max_size=48), st.sampled_from([0, 5, 40]),
       st.sampled_from([", ", ",", " , ", ",\n    ", "\t,"]))
def test_random_doubles_match_json_loads(items, pad, sep):
    strs = [_token(x, style) for x, style in items]
    strs = [t for t in strs if "inf" not in t and "nan" not in t]
    if not strs:
        return
    handled = _check_against_json(strs, pad, sep)
    # a body without ints, of 1-19 significant digits and exponents within +-27, must be handled
    simple = [t for t in strs if "e" not in t.lower() and "." in t]
    if simple and len(simple) == len(strs) and all(len(t.lstrip("-").replace(".", "").lstrip("0")) <= 19 for t in strs):
        nf = [len(t.split(".")[1]) for t in strs]
        if max(nf) <= 27:
            assert handled, strs


@pytest.mark.parametrize("ndig", range(1, 31))
def test_every_token_length_and_dot_position(ndig):
    """Tokens of 1-30 digits with the '.' at every place (and leading zeros, signs):
    the SIMD window is 32 bytes, the shape limit 29 bytes and 19 significant digits."""
    rng = random.Random(ndig)
    strs = []
    for dot in range(1, ndig):
        for _ in range(6):
            digits = "".join(rng.choice("0123456789") for _ in range(ndig))
            ip = digits[:dot]
            if len(ip) > 1:
                ip = ip.lstrip("0") or "0"
            tok = ("-" if rng.random() < 0.5 else "") + ip + "." + digits[dot:]
            strs.append(tok)
        strs.append("0." + "0" * (ndig - dot - 1) + "7")
        strs.append("9" * dot + "." + "9" * (ndig - dot))
    for i in range(0, len(strs), 64):
        _check_against_json(strs[i:i + 64])
    _one_by_one(strs[:40])


def test_kernels_are_all_exercised():
    """The scalar code is always there and forceable; the SIMD kernels the CPU has
    are listed (so the agreement checks above ran them), the best is the default."""
    details = _drift_c.backend_details()
    assert KERNELS[0] == "scalar" and details["json_kernel"] == KERNELS[-1]
    if details["cpu_features"].get("avx2"):
        assert "avx2" in KERNELS
    body = b'{"lane": "prod", "intent": [0.6888437030500962, -0.15885683833831, 1.2345e-05, -0.0]}'
    for k in ALL_KERNELS:
        assert _drift_c._loads_vectors_isa(body, k)["intent"].tolist() == [0.6888437030500962, -0.15885683833831,
                                                                           1.2345e-05, -0.0]
    for bad in ("quantum", "scalar+exact", "+exact"):
        with pytest.raises(ValueError, match="kernel"):
            _drift_c._loads_vectors_isa(body, bad)


def test_groups_mix_the_inline_shape_with_the_others():
    """The SIMD kernels take [-]0.FFF tokens inline and every other token out of line,
    four to a group, with the digits folded as signed groups and the digit check of
    the inline ones made once per group: each other shape, and each malformed token,
    at every lane of groups of one to nine elements (the last group short), with
    both separators; kernels agree (their exact-only variants too) and match
    json.loads, and a malformed token makes the whole body fall back."""
    fill = ["0.6888437030500962", "-0.15885683833831", "0.02254944273721704", "-0.19013172509917142"]
    others = ["-1.5", "12.25", "-123456.789", "0.0", "-0.0", "-0.000", "1e5", "-2.5E-3", "0." + "0" * 23 + "1",
              "-0." + "0" * 22 + "12", "-9.999999999999999999", "-99.99999999999999999", "0.99999999999999999999",
              "-0.12345678901234567890123", "-" + "9" * 19 + ".0", "0.5", "-0.5", "-0.9999999999999999999"]
    bad = ["0.12a4", "0.1-2", "0.1.2", "-0.", "0.", "--0.5", "-+0.5", "0.5x", "00.5", "-", ".5", "0..5", "0.1 2"]
    for tok in others + bad:
        for n in range(1, 10):
            for lane in range(n):
                strs = [fill[(i + lane) % 4] for i in range(n)]
                strs[lane] = tok
                for sep in (", ", ","):
                    if tok in others:
                        handled = _check_against_json(strs, 40, sep)
                        simple = "e" not in tok.lower() and len(tok.lstrip("-").replace(".", "").lstrip("0")) <= 19
                        assert handled or not simple, (tok, n, lane)
                    else:
                        body = ('{"lane": "prod", "v": [' + sep.join(strs) + "]}").encode()
                        assert loads_vectors(body) is None, (tok, n, lane)


def test_groups_inside_long_arrays():
    """The SIMD kernels read groups of four elements only where every element's
    32-byte window lies inside the body (not in its first 32 bytes, not within
    132 bytes of its end) and one element at a time elsewhere; an element ends at
    the first ',' or ']' in its window.  Each shape below at every lane of the
    groups of arrays of 8 to 12 elements, the array followed by a long member (so
    that the array's end, at every lane too, is read by the group loop) or not:
    long whitespace (no separator in the window), the inline shape's length limit
    (19 fraction digits; 20 go out of line), out-of-line tokens of 20 and 21
    bytes (the longer ones always redone exactly), malformed tokens.  Kernels agree
    (their exact-only variants too) and match json.loads; malformed bodies fall
    back."""
    fill = ["0.6888437030500962", "-0.15885683833831", "0.02254944273721704", "-0.19013172509917142"]
    good = [" " * 40 + "0.5", "-0.25" + " " * 40, "\t0.25", " -0.75 ", "\n-0.125\n", " " * 27 + "-0.5",
            "0.1234567890123456789", "-0.1234567890123456789", "0." + "0" * 18 + "1", "-0." + "9" * 19,
            "0.12345678901234567891", "-0.00123456789012345678", "0.00000000000000000000123",
            "1.2345678901234567891", "12.345678901234567", "-1234567890123456.5", "9.999999999999999999",
            "-99.99999999999999999", "0.0", "-0.0", "-0.000", "1e5", "-2.5E-3", "1.5", "-7.25"]
    bad = ["0.12a4", "0.1-2", "-0.", "0.", "--0.5", "00.5", "0..5", "0.1 2", "", " ", "x" * 40, "0.5" + "x" * 40]
    for tok in good + bad:
        for n in range(8, 13):
            for lane in range(n):
                strs = [fill[(i + lane) % 4] for i in range(n)]
                strs[lane] = tok
                for tail in ("", ', "note": "' + "x" * 200 + '"'):
                    body = ('{"lane": "prod", "v": [' + ", ".join(strs) + "]" + tail + "}").encode()
                    got = loads_vectors(body)
                    if tok in bad:
                        assert got is None, (tok, n, lane)
                        continue
                    want = json.loads(body)["v"]
                    simple = "e" not in tok.lower() and len(tok.strip().lstrip("-").replace(".", "").lstrip("0")) <= 19
                    assert got is not None or not simple, (tok, n, lane)
                    if got is not None:
                        assert _bits_of(got["v"].tolist()) == _bits_of(want), (tok, n, lane)


def test_group_loop_rounding_edges_and_truncations():
    """The conversion's edge tokens (powers of two, ties and near-ties, zeros, 19
    digits) read by the group loop at each of the four lane offsets, with both
    separators, bit-identical to json.loads; and a long-array body cut at every
    byte (the group loop's reach and the one-at-a-time tail at every distance from
    the end) is never handled."""
    fill = ["0.6888437030500962", "-0.15885683833831", "0.02254944273721704"]
    strs = [t for t in _fp_cases() if len(t.lstrip("-").replace(".", "").lstrip("0")) <= 19]
    tail = ', "note": "' + "x" * 200 + '"'
    for off in range(4):
        for sep in (", ", ","):
            body = ('{"lane": "prod", "v": [' + sep.join(fill[:off] + strs) + "]" + tail + "}").encode()
            got = loads_vectors(body)
            assert got is not None, (off, sep)
            assert _bits_of(got["v"].tolist()) == _bits_of(json.loads(body)["v"]), (off, sep)
    rng = random.Random(3)
    body = json.dumps({"lane": "prod", "v": [rng.uniform(-1, 1) for _ in range(40)]}).encode()
    assert loads_vectors(body) is not None
    for cut in range(len(body)):
        assert loads_vectors(body[:cut]) is None, cut
        assert loads_vectors(bytearray(body[:cut])) is None, cut


def test_repeated_strings_are_reused_but_never_confused():
    """Short ASCII keys and string values seen before come back as the same str
    objects; strings of the same length and end bytes (the cache's slot), other
    lengths, non-ASCII and invalid UTF-8 are each decoded for what they are."""
    body = b'{"lane": "prod", "intent": [0.5], "action": [-0.25]}'
    a, b = _drift_c.loads_vectors(body), _drift_c.loads_vectors(body)
    assert a["lane"] == b["lane"] == "prod" and [k for k in a] == [k for k in b] == ["lane", "intent", "action"]
    assert all(x is y for x, y in zip(a, b)) and a["lane"] is b["lane"]
    for word in ("axb", "ayb", "axxb", "ab", "a\u00e9b", "x" * 32, "x" * 33, "", "a", "axb"):
        for other in ("axb", "ayb", "a\u00e9b"):
            got = loads_vectors(json.dumps({word: other, other: [0.5], "k": word}, ensure_ascii=False).encode())
            assert list(got) == list(dict.fromkeys([word, other, "k"])), (word, other)
            assert got["k"] == word and (word == other or got[word] == other), (word, other)
    assert _drift_c.loads_vectors(b'{"a\xffb": "prod"}') is None
    assert _drift_c.loads_vectors(b'{"ayb": "a\xffb"}') is None


@pytest.mark.parametrize("seed", range(3))
def test_service_shaped_bodies(seed):
    """The service's own shape: 768-d vectors of json.dumps doubles (17 digits, a few
    with exponents, some small), every kernel against json.loads."""
    rng = random.Random(seed)
    a = [rng.uniform(-1, 1) * 10 ** -rng.choice([0, 0, 0, 1, 2, 4, 5, 6]) for _ in range(768)]
    b = [x + rng.uniform(-0.1, 0.1) for x in a]
    body = json.dumps({"lane": "prod", "intent": a, "action": b}).encode()
    got = loads_vectors(body)
    assert got is not None
    assert _bits_of(got["intent"].tolist()) == _bits_of(a) and _bits_of(got["action"].tolist()) == _bits_of(b)


def test_long_bodies_stay_linear_and_bounded():
    """Hostile shapes: a huge array of empty elements or of one-byte tokens is refused
    or read in one pass; no body makes the parser quadratic."""
    import time

    for body in (b'{"v":[' + b"," * 400_000 + b"]}", b'{"v":[' + b"1.5," * 200_000 + b"1.5]}",
                 b'{"v":[' + b" " * 800_000 + b"1.5]}", b'{"v":[' + b"1.5" + b"0" * 800_000 + b"]}"):
        t = time.perf_counter()
        r = loads_vectors(body)
        assert time.perf_counter() - t < 2.0
        assert r is None or r["v"].shape[0] in (1, 200_001)
