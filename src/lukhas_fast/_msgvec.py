"""msgpack request bodies for ``POST /drift/analyze`` (``Content-Type: application/msgpack``).

The body is the same object as the JSON one.  Each vector is either a msgpack
array of numbers, or a ``bin`` of little-endian IEEE floats whose type is named
by the object's ``"dtype"`` field (``"float32"`` or ``"float64"``)::

    import msgpack, numpy as np
    body = msgpack.packb({"lane": "prod", "dtype": "float32",
                          "intent": np.asarray(intent, "<f4").tobytes(),
                          "action": np.asarray(action, "<f4").tobytes()})
    requests.post(url + "/drift/analyze", data=body,
                  headers={"Content-Type": "application/msgpack",
                           "Accept": "application/msgpack"})

:func:`loads_drift` reads the usual shape -- a map of string keys whose values
are strings and ``bin`` vectors -- itself, and returns each vector as a
read-only numpy array: a view *into the request body* when the payload is
aligned to its element size (no copy; the drift kernel reads float32 or float64
in place), else an aligned copy (a few KB; the kernels' typed loop needs
aligned data, so answers never depend on a vector's offset in the body).  On
the C tier, ``intent``/``action`` arrays whose elements are all msgpack floats
are read straight into float64 arrays (as the JSON fast path does).  Any other
body goes through ``msgpack.unpackb`` (arrays of numbers stay lists, as in
JSON).  The result is a plain dict checked by the service exactly as a JSON
body is.
"""

from __future__ import annotations

import struct
import sys
import threading
from typing import Any, Dict, Optional

import numpy as np

__all__ = ["MSGPACK_TYPE", "DTYPES", "MsgpackError", "loads_drift", "loads", "dumps", "new_packer", "vector_from_bin", "fields_py"]

MSGPACK_TYPE = "application/msgpack"

#: "dtype" values accepted for ``bin`` vectors (always little-endian on the wire).
DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}

_LITTLE = sys.byteorder == "little"
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from

try:
    import msgpack as _msgpack

    AVAILABLE = True
except ImportError:  # pragma: no cover - the service extra installs it
    _msgpack = None
    AVAILABLE = False


class MsgpackError(ValueError):
    """A body that is not valid msgpack, or a vector ``bin`` that cannot be read (``field`` names it)."""

    def __init__(self, message: str, field: Optional[str] = "body") -> None:
        super().__init__(message)
        self.field = field


def _need() -> Any:
    if _msgpack is None:  # pragma: no cover
        raise MsgpackError("msgpack bodies need the 'msgpack' package on the server", "body")
    return _msgpack


def loads(raw: bytes) -> Any:
    """``msgpack.unpackb`` with the errors as :class:`MsgpackError`."""
    mp = _need()
    try:
        return mp.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, TypeError, mp.exceptions.UnpackException) as exc:  # ExtraData, FormatError, StackError...
        raise MsgpackError(f"malformed msgpack: {exc}") from None


def new_packer() -> Any:
    """A ``msgpack.Packer`` encoding as :func:`dumps` does (``.pack(obj) -> bytes``); not
    thread-safe: for one thread (or one event loop) at a time."""
    return _need().Packer(default=_default, use_bin_type=True, autoreset=True)


def dumps(obj: Any) -> bytes:
    """msgpack encoding of an answer (numpy scalars/arrays as floats/lists)."""
    packer = getattr(_local, "packer", None)
    if packer is None:  # one Packer per thread: building one per answer costs more than packing
        packer = _local.packer = new_packer()
    try:
        return packer.pack(obj)
    except BaseException:
        _local.packer = None  # a Packer may hold a half-written buffer after an error
        raise


_local = threading.local()


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def vector_from_bin(buf: Any, offset: int, length: int, dtype: Any, field: str) -> np.ndarray:
    """The float vector stored in ``buf[offset:offset+length]`` as a read-only array: a view
    (no copy) when it is element-aligned, else an aligned copy, as the C tier does (the
    kernels' typed loop needs aligned data; with the copy, answers never depend on where
    a vector sits in the body)."""
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise MsgpackError(
            f"field 'dtype' must be one of {', '.join(DTYPES)} when {field!r} is a bin, got {dtype!r}", "dtype")
    dt = DTYPES[dtype]
    if length % dt.itemsize:
        raise MsgpackError(f"field {field!r}: {length} bytes is not a whole number of {dtype} values", field)
    arr = np.frombuffer(buf, dtype=dt, count=length // dt.itemsize, offset=offset)
    if arr.ctypes.data % dt.itemsize:
        arr = arr.copy()
        arr.flags.writeable = False
    if not _LITTLE:  # pragma: no cover - big-endian hosts: the kernels read native floats
        arr = arr.astype(dt.newbyteorder("="))
    return arr


def _str_at(raw: bytes, i: int) -> Optional[tuple]:
    """(str, next offset) for a msgpack str at ``i``, else None."""
    b = raw[i]
    if 0xA0 <= b <= 0xBF:
        n, i = b & 0x1F, i + 1
    elif b == 0xD9:
        n, i = raw[i + 1], i + 2
    elif b == 0xDA:
        n, i = _U16(raw, i + 1)[0], i + 3
    else:
        return None
    if i + n > len(raw):
        return None
    return raw[i:i + n].decode("utf-8"), i + n


def loads_drift(raw: bytes) -> Dict[str, Any]:
    """A drift request body: dict with ``bin`` vectors as read-only numpy arrays (views
    into ``raw`` when element-aligned, else aligned copies).

    The C tier reads the usual body in one call (``loads_msgpack_vectors``: str and
    ``bin`` values, and float arrays for the vectors, read into float64 arrays);
    otherwise a top-level map whose keys are strings and whose values are strings
    or ``bin`` is split by ``loads_msgpack_fields`` or :func:`fields_py`; anything
    else (arrays of numbers on other tiers, nested objects, malformed input) is
    decoded by ``msgpack.unpackb`` and its ``bin`` vectors converted afterwards.  A non-map body is returned as
    decoded, for the caller's "expected an object" error.
    """
    if _vectors is not None:
        fast = _vectors(raw)  # the C tier: the usual body in one call
        if fast is not None:
            return fast
    return _general(raw)


def _general(raw: bytes) -> Dict[str, Any]:
    """:func:`loads_drift` without the C tier's one-call path (all the error reporting is here)."""
    fields = _fields(raw)
    if fields is None:
        data = loads(raw)
        if not isinstance(data, dict):
            return data
        dtype = data.get("dtype")
        for name in ("intent", "action"):
            v = data.get(name)
            if isinstance(v, (bytes, bytearray)):
                data[name] = vector_from_bin(v, 0, len(v), dtype, name)
        return data
    dtype = fields.get("dtype")
    for key, v in fields.items():
        if type(v) is memoryview:
            fields[key] = vector_from_bin(v, 0, len(v), dtype, key) if key in _VECTORS else v.tobytes()
    return fields


_VECTORS = ("intent", "action")


def fields_py(raw: bytes) -> Optional[Dict[str, Any]]:
    """Pure-Python ``loads_msgpack_fields``: a map of str keys to str or ``bin`` values as a dict
    (``bin`` values as memoryview slices of ``raw``), else None."""
    try:
        return _fields_py(raw)
    except (IndexError, UnicodeDecodeError, struct.error):
        return None


def _fields_py(raw: bytes) -> Optional[Dict[str, Any]]:
    if type(raw) is not bytes or not raw:
        return None
    b = raw[0]
    if 0x80 <= b <= 0x8F:
        count, i = b & 0x0F, 1
    elif b == 0xDE:
        count, i = _U16(raw, 1)[0], 3
    else:
        return None
    data: Dict[str, Any] = {}
    end = len(raw)
    mv = memoryview(raw)
    for _ in range(count):
        k = _str_at(raw, i)
        if k is None:
            return None
        key, i = k
        t = raw[i]
        if t in (0xC4, 0xC5, 0xC6):  # bin 8/16/32
            if t == 0xC4:
                n, i = raw[i + 1], i + 2
            elif t == 0xC5:
                n, i = _U16(raw, i + 1)[0], i + 3
            else:
                n, i = _U32(raw, i + 1)[0], i + 5
            if i + n > end:
                return None
            data[key] = mv[i:i + n]
            i += n
        else:
            s = _str_at(raw, i)
            if s is None:
                return None
            data[key], i = s
    return data if i == end else None


def _tier(name: str, default: Any) -> Any:
    from lukhas_fast import drift

    return getattr(drift._impl, name, default)


#: the active drift tier's splitter (C: ``loads_msgpack_fields``), else :func:`fields_py`
_fields = _tier("loads_msgpack_fields", fields_py)
#: the C tier's splitter + vector views for well-formed bodies in one call (None: not available)
_vectors = _tier("loads_msgpack_vectors", None)
