"""C tier of the drift family.

``DriftMonitor`` is an extension type: ``update`` is a ``METH_FASTCALL``
method that reads list items or buffers in place, runs the one-pass
dot/norm kernel of ``csrc/drift.c`` (SIMD variant chosen at run time), and
does the window/EMA/guardian update in C.  ``update_many`` and
``cosine_similarity_batch`` run the row kernel with the GIL released.
``loads_vectors`` parses the service's drift request bodies with the number
arrays read straight into float64 arrays (``csrc/jsonvec.c``; C tier only);
``loads_msgpack_fields`` splits msgpack drift bodies without copying their
``bin`` vectors (see :mod:`lukhas_fast._msgvec`).

Configuration, lane resolution, snapshot parsing and error wording come from
:mod:`lukhas_fast._drift_py` (the oracle) so the tiers cannot drift apart.
"""

cimport cython
from cpython.buffer cimport (PyObject_CheckBuffer, PyObject_GetBuffer, PyBuffer_Release, PyBUF_RECORDS_RO,
                             PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.float cimport PyFloat_AS_DOUBLE
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memcmp
from cpython.ref cimport PyObject

import numpy as np

from lukhas_fast import _drift_py as _py
from lukhas_fast._drift_py import (DriftConfig, LANE_CFG, GUARDIAN_NAMES, SUPPORTED_DTYPES,
                                   resolve_lane, parse_snapshot, check_finite_float, ema_gauge, monitor_reduce,
                                   check_cfg)
from lukhas_fast import _metrics

__all__ = ["DriftConfig", "LANE_CFG", "DriftMonitor", "_cosine", "cosine_similarity",
           "cosine_similarity_batch", "backend_details", "loads_vectors", "loads_msgpack_fields",
           "loads_msgpack_vectors", "json_depth_exceeds"]


cdef extern from "drift.h" nogil:
    ctypedef enum lk_dtype:
        LK_F64
        LK_F32
        LK_I64
        LK_I32
    ctypedef struct lk_vec:
        const char *ptr
        Py_ssize_t stride
        lk_dtype dtype
    ctypedef enum lk_isa:
        LK_ISA_SERIAL
        LK_ISA_HASWELL
        LK_ISA_SKYLAKE
    void lk_dot3(const lk_vec *a, const lk_vec *b, size_t n, double *out)
    int lk_cosine_from_sums(const double *s, double *cos_out)
    Py_ssize_t lk_cosine_rows(const lk_vec *a, Py_ssize_t a_row_stride,
                              const lk_vec *b, Py_ssize_t b_row_stride,
                              size_t rows, size_t n, double *out)
    lk_isa lk_drift_isa()
    int lk_drift_set_isa(lk_isa isa)
    const char *lk_drift_isa_name(lk_isa isa)
    unsigned lk_drift_cpu_mask()


_ISA_BY_NAME = {"serial": LK_ISA_SERIAL, "haswell": LK_ISA_HASWELL, "skylake": LK_ISA_SKYLAKE}


def backend_details():
    """Kernel ISA in use and the CPU features the kernels can use."""
    cdef unsigned m = lk_drift_cpu_mask()
    return {
        "kernel": lk_drift_isa_name(lk_drift_isa()).decode(),
        "json_kernel": lk_jv_isa_name(lk_jv_best_isa()).decode(),
        "cpu_features": {"avx2": bool(m & 1u), "fma": bool(m & 1u), "avx512f": bool(m & 2u)},
    }


def _set_isa(name):
    """Force the kernel ISA ("serial", "haswell", "skylake"); for tests and benchmarks.
    Raises ValueError if the CPU lacks it.  Returns the previous name."""
    prev = [k for k, v in _ISA_BY_NAME.items() if v == lk_drift_isa()][0]
    if name not in _ISA_BY_NAME or lk_drift_set_isa(_ISA_BY_NAME[name]) != 0:
        raise ValueError(f"kernel ISA {name!r} is not available on this CPU")
    return prev


def _available_isas():
    """ISA names this CPU can run."""
    cdef unsigned m = lk_drift_cpu_mask()
    out = ["serial"]
    if m & 1u:
        out.append("haswell")
    if m & 2u:
        out.append("skylake")
    return out


# --- element and container conversion (mirrors _drift_py exactly) -------------

cdef inline double _overflow(str name, Py_ssize_t i) except? -1.0:
    raise ValueError(f"{name}[{i}] is too large for a float: non-finite input")


cdef double _slow_as_double(object x, str name, Py_ssize_t i) except? -1.0:
    t = type(x)
    if t is bool:
        return 1.0 if x else 0.0
    if isinstance(x, (str, bytes, bytearray)) or not (hasattr(t, "__float__") or hasattr(t, "__index__")):
        raise TypeError(f"{name}[{i}] must be a number, got {t.__name__}")
    try:
        return float(x)
    except OverflowError:
        return _overflow(name, i)


cdef inline double _as_double(object x, str name, Py_ssize_t i) except? -1.0:
    cdef double v
    if type(x) is float:
        return PyFloat_AS_DOUBLE(x)
    if type(x) is int:
        v = PyLong_AsDouble(x)
        if v == -1.0 and PyErr_Occurred_():
            PyErr_Clear_()
            return _overflow(name, i)
        return v
    return _slow_as_double(x, name, i)


cdef extern from "Python.h":
    double PyLong_AsDouble(object o) noexcept  # error checked by the caller
    PyObject **PySequence_Fast_ITEMS(object o)
    Py_ssize_t PySequence_Fast_GET_SIZE(object o)
    void *PyErr_Occurred_ "PyErr_Occurred"()
    void PyErr_Clear_ "PyErr_Clear"()


cdef int _dtype_code(const char *fmt, Py_ssize_t itemsize) noexcept:
    """lk_dtype for a buffer format (native byte order), or -1."""
    cdef char c
    if fmt == NULL:
        return LK_F64 if itemsize == 8 else -1  # PyBUF_RECORDS always sets format
    if fmt[0] == b'=' or fmt[0] == b'@' or fmt[0] == b'<':
        fmt += 1
    c = fmt[0]
    if fmt[1] != 0:
        return -1
    if c == b'd' and itemsize == 8:
        return LK_F64
    if c == b'f' and itemsize == 4:
        return LK_F32
    if (c == b'l' or c == b'q') and itemsize == 8:
        return LK_I64
    if (c == b'i' or c == b'l') and itemsize == 4:
        return LK_I32
    return -1


cdef tuple _shape(Py_buffer *buf):
    """A buffer's shape as a tuple (for error messages).  A function of its own: a
    generator expression in a caller makes Cython allocate a closure scope on every
    call of that caller, error or not."""
    cdef Py_ssize_t i
    return tuple([buf.shape[i] for i in range(buf.ndim)])


@cython.final
@cython.freelist(4)  # two per update: no allocator round trip per request
cdef class _Vec:
    """One input vector viewed as (ptr, stride, dtype, n): a buffer read in
    place, or a list/tuple converted to a private float64 array."""
    cdef Py_buffer buf
    cdef bint has_buf
    cdef double *tmp
    cdef object seq          # list/tuple kept for deferred element conversion
    cdef lk_vec v
    cdef Py_ssize_t n
    cdef str name

    def __dealloc__(self):
        if self.has_buf:
            PyBuffer_Release(&self.buf)
        free(self.tmp)

    cdef int from_obj(self, object obj, str name) except -1:
        cdef int code
        self.name = name
        if type(obj) is list or type(obj) is tuple:
            self.seq = tuple(obj)  # immutable snapshot: element conversion may run user code
            self.n = len(self.seq)
            return 0
        if obj is None or isinstance(obj, (str, bytes, bytearray)):
            raise TypeError(f"{name} must be a sequence of numbers or a 1-D array, got {type(obj).__name__}")
        if not PyObject_CheckBuffer(obj):
            if isinstance(obj, (list, tuple)) or (hasattr(obj, "__len__") and hasattr(obj, "__getitem__")):
                self.seq = tuple(obj)
                self.n = len(self.seq)
                return 0
            raise TypeError(f"{name} must be a sequence of numbers or a 1-D array, got {type(obj).__name__}")
        PyObject_GetBuffer(obj, &self.buf, PyBUF_RECORDS_RO)
        self.has_buf = True
        code = _dtype_code(self.buf.format, self.buf.itemsize)
        if code < 0:
            raise TypeError(f"{name} dtype must be one of {', '.join(SUPPORTED_DTYPES)}, "
                            f"got {np.asarray(obj).dtype}")
        if self.buf.ndim != 1:
            shape = _shape(&self.buf)
            raise ValueError(f"{name} must be 1-D, got {self.buf.ndim}-D array of shape {shape}")
        self.v.ptr = <const char *>self.buf.buf
        self.v.stride = self.buf.strides[0] if self.buf.strides != NULL else self.buf.itemsize
        self.v.dtype = <lk_dtype>code
        self.n = self.buf.shape[0]
        return 0

    cdef int materialize(self) except -1:
        """Convert a list/tuple to float64 (after the length checks passed)."""
        cdef Py_ssize_t i
        if self.seq is None:
            return 0
        self.tmp = <double *>malloc((self.n if self.n > 0 else 1) * sizeof(double))
        if self.tmp == NULL:
            raise MemoryError()
        for i in range(self.n):
            self.tmp[i] = _as_double(self.seq[i], self.name, i)
        self.v.ptr = <const char *>self.tmp
        self.v.stride = sizeof(double)
        self.v.dtype = LK_F64
        return 0


cdef inline double _finish(double *s, str an, str bn) except? -2.0:
    cdef double c
    if lk_cosine_from_sums(s, &c) != 0:
        raise ValueError(f"non-finite {an}/{bn}: nan/inf values or an overflow in the norms")
    return c


cdef double _cos_lists(object a, object b, str an, str bn) except? -2.0:
    """Both inputs list/tuple: convert and accumulate in one pass, left to
    right (bit-identical to the oracle)."""
    cdef Py_ssize_t n = len(a), i
    cdef double x, y
    cdef double s[3]
    if n == 0 or len(b) == 0 or n != len(b):
        return 0.0
    s[0] = s[1] = s[2] = 0.0
    for i in range(n):
        # A __float__ of an exotic element could mutate the lists: re-read the
        # size and item pointers each step and hold the items while converting.
        if PySequence_Fast_GET_SIZE(a) != n or PySequence_Fast_GET_SIZE(b) != n:
            raise RuntimeError(f"{an}/{bn} changed size during the update")
        xa = <object>PySequence_Fast_ITEMS(a)[i]
        xb = <object>PySequence_Fast_ITEMS(b)[i]
        x = _as_double(xa, an, i)
        y = _as_double(xb, bn, i)
        s[0] += x * y
        s[1] += x * x
        s[2] += y * y
    return _finish(s, an, bn)


cdef double _cos(object a, object b, str an, str bn) except? -2.0:
    cdef _Vec va, vb
    cdef double s[3]
    cdef Py_ssize_t i
    cdef double x, y
    if (type(a) is list or type(a) is tuple) and (type(b) is list or type(b) is tuple):
        return _cos_lists(a, b, an, bn)
    va = _Vec.__new__(_Vec)
    vb = _Vec.__new__(_Vec)
    va.from_obj(a, an)
    vb.from_obj(b, bn)
    if va.n == 0 or vb.n == 0 or va.n != vb.n:
        return 0.0
    if va.seq is not None and vb.seq is not None:
        return _cos_lists(va.seq, vb.seq, an, bn)
    va.materialize()
    vb.materialize()
    lk_dot3(&va.v, &vb.v, <size_t>va.n, s)
    return _finish(s, an, bn)


def cosine_similarity(a, b):
    """Cosine similarity with the reference's rules.

    0.0 when either input is empty, the lengths differ or a norm is zero;
    otherwise ``dot / (|a| * |b|)`` clamped to ``[-1, 1]``.  Lists/tuples of
    numbers and 1-D buffers (float64, float32, int64, int32, any stride; read
    in place).  Non-finite input raises ``ValueError``; non-numeric elements
    raise ``TypeError``.
    """
    return _cos(a, b, "a", "b")


# the reference's private name for the same function
_cosine = cosine_similarity


cdef class _Mat:
    """A 2-D buffer viewed in place (rows x n, row stride, element stride)."""
    cdef Py_buffer buf
    cdef bint has_buf
    cdef lk_vec v
    cdef Py_ssize_t rows, n, row_stride

    def __dealloc__(self):
        if self.has_buf:
            PyBuffer_Release(&self.buf)

    cdef int from_obj(self, object obj, str name) except -1:
        cdef int code
        PyObject_GetBuffer(obj, &self.buf, PyBUF_RECORDS_RO)
        self.has_buf = True
        if self.buf.ndim != 2:
            shape = _shape(&self.buf)
            raise ValueError(f"{name} must be 2-D (n, d), got shape {shape}")
        code = _dtype_code(self.buf.format, self.buf.itemsize)
        if code < 0:
            raise TypeError(f"{name} dtype must be one of {', '.join(SUPPORTED_DTYPES)}, "
                            f"got {np.asarray(obj).dtype}")
        self.rows = self.buf.shape[0]
        self.n = self.buf.shape[1]
        self.row_stride = self.buf.strides[0]
        self.v.ptr = <const char *>self.buf.buf
        self.v.stride = self.buf.strides[1]
        self.v.dtype = <lk_dtype>code
        return 0


cdef object _cos_rows(object A, object B):
    """Row-wise cosine as a float64 ndarray; ValueError names the first bad row."""
    cdef _Mat ma, mb
    cdef double[::1] out
    cdef Py_ssize_t bad, i, rows
    if isinstance(A, np.ndarray) and isinstance(B, np.ndarray):
        ma = _Mat.__new__(_Mat)
        mb = _Mat.__new__(_Mat)
        ma.from_obj(A, "intents")
        mb.from_obj(B, "actions")
        if ma.rows != mb.rows:
            raise ValueError(f"intents and actions must have the same number of rows, got {ma.rows} and {mb.rows}")
        rows = ma.rows
        res = np.zeros(rows, dtype=np.float64)
        if ma.n != mb.n or ma.n == 0 or rows == 0:
            return res  # mismatched or empty rows: cosine 0.0 each (reference rule)
        out = res
        with nogil:
            bad = lk_cosine_rows(&ma.v, ma.row_stride, &mb.v, mb.row_stride, <size_t>rows, <size_t>ma.n, &out[0])
        if bad >= 0:
            raise ValueError(f"row {bad}: non-finite intents[{bad}]/actions[{bad}]: "
                             f"nan/inf values or an overflow in the norms")
        return res
    ra = _py.as_rows(A, "intents")
    rb = _py.as_rows(B, "actions")
    if len(ra) != len(rb):
        raise ValueError(f"intents and actions must have the same number of rows, got {len(ra)} and {len(rb)}")
    res = np.empty(len(ra), dtype=np.float64)
    out = res
    for i in range(len(ra)):
        try:
            out[i] = _cos(ra[i], rb[i], f"intents[{i}]", f"actions[{i}]")
        except ValueError as exc:
            raise ValueError(f"row {i}: {exc}") from None
    return res


def cosine_similarity_batch(A, B):
    """Row-wise :func:`_cosine` of two ``(n, d)`` arrays (or sequences of vectors), as float64.
    Same-shape 2-D arrays run in C with the GIL released."""
    return _cos_rows(A, B)


cdef str _ALLOW = "allow"
cdef str _WARN = "warn"
cdef str _BLOCK = "block"


cdef class DriftMonitor:
    """DriftMonitor(lane=None, *, metrics=None)

    Intent-vs-action drift monitor: ``update(intent, action)`` computes
    ``drift = 1 - cosine(intent, action)``, keeps the last ``cfg.window``
    drifts, updates ``ema = alpha * drift + (1 - alpha) * ema`` and decides
    ``allow``/``warn``/``block`` against the lane's thresholds.

    ``lane``: the argument, else env ``LUKHAS_LANE``, else ``experimental``
    (lowercased; unknown lanes use the experimental thresholds and warn once).
    ``metrics``: set the ``lukhas_drift_ema{lane}`` gauge on each update (None:
    on when prometheus_client imports and ``LUKHAS_FAST_METRICS`` != "0").
    """

    cdef str _lane
    cdef object _cfg
    cdef double _alpha, _beta, _warn_t, _block_t
    cdef double _ema
    cdef double *_win
    cdef Py_ssize_t _wcap, _whead, _wlen
    cdef object _gauge
    cdef bint _metrics
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        self._win = NULL
        self._wcap = 0

    def __dealloc__(self):
        free(self._win)

    def __init__(self, lane=None, *, metrics=None):
        name, cfg = resolve_lane(lane)
        check_cfg(cfg)
        use_metrics = _metrics.resolve_metrics(metrics)
        cdef double *win = <double *>malloc(<size_t>cfg.window * sizeof(double))
        if win == NULL:
            raise MemoryError()
        free(self._win)
        self._win = win
        self._wcap = cfg.window
        self._whead = 0
        self._wlen = 0
        self._lane = name
        self._cfg = cfg
        self._alpha = cfg.alpha
        self._beta = 1.0 - cfg.alpha
        self._warn_t = cfg.warn_threshold
        self._block_t = cfg.block_threshold
        self._ema = 0.0
        self._metrics = use_metrics
        self._gauge = ema_gauge(name) if use_metrics else None

    # -- attributes ---------------------------------------------------------------
    @property
    def lane(self):
        """The lane name (lowercased)."""
        return self._lane

    @property
    def cfg(self):
        """The lane's :class:`DriftConfig`."""
        return self._cfg

    @property
    def ema(self):
        """Exponential moving average of the drift (starts at 0.0)."""
        return self._ema

    @ema.setter
    def ema(self, value):
        self._ema = check_finite_float(value, "ema")

    @property
    def metrics(self):
        """Whether updates set the Prometheus gauge."""
        return self._metrics

    @property
    def _window_len(self):
        """How many values the window holds (``len(self._raw)`` without the copy)."""
        return self._wlen

    @property
    def _raw(self):
        """The window of raw drift values, oldest first (a snapshot list)."""
        cdef Py_ssize_t i, j = self._whead
        out = [None] * self._wlen
        for i in range(self._wlen):
            out[i] = self._win[j]
            j += 1
            if j == self._wcap:
                j = 0
        return out

    # -- C helpers -------------------------------------------------------------------
    cdef inline int _ready(self) except -1:
        if self._win == NULL:
            raise RuntimeError(f"{type(self).__name__}.__init__ was not called")
        return 0

    cdef inline void _push(self, double drift) noexcept nogil:
        cdef Py_ssize_t j
        if self._wlen < self._wcap:
            j = self._whead + self._wlen
            if j >= self._wcap:
                j -= self._wcap
            self._win[j] = drift
            self._wlen += 1
        else:
            self._win[self._whead] = drift
            self._whead += 1
            if self._whead == self._wcap:
                self._whead = 0

    cdef inline int _code(self, double ema) noexcept nogil:
        if ema >= self._block_t:
            return 2
        if ema >= self._warn_t:
            return 1
        return 0

    # -- updates ----------------------------------------------------------------------
    @cython.binding(False)
    def update(self, intent, action):
        """update(intent, action) -> dict: ``lane``, ``drift``, ``ema``, ``guardian``, ``n``."""
        cdef double sim, drift
        cdef int code
        self._ready()
        sim = _cos(intent, action, "intent", "action")
        drift = 1.0 - sim
        self._push(drift)
        self._ema = self._alpha * drift + self._beta * self._ema
        code = self._code(self._ema)
        if self._gauge is not None:
            self._gauge.set(self._ema)
        return {"lane": self._lane, "drift": drift, "ema": self._ema,
                "guardian": _ALLOW if code == 0 else (_WARN if code == 1 else _BLOCK),
                "n": self._wlen}

    def update_many(self, intents, actions):
        """update_many(intents, actions) -> dict

        Exactly ``update`` applied to each row in order; every row is
        validated before anything changes.  Returns ``lane``, ``drift`` and
        ``ema`` (float64 arrays), ``guardian_code`` (int8: 0 allow, 1 warn,
        2 block), ``guardian`` (last decision) and ``n`` (window length after).
        """
        cdef double[::1] sims, emas
        cdef signed char[::1] codes
        cdef Py_ssize_t i, n
        cdef double ema, d
        self._ready()
        res = _cos_rows(intents, actions)
        n = res.shape[0]
        drifts = 1.0 - res
        ema_arr = np.empty(n, dtype=np.float64)
        code_arr = np.empty(n, dtype=np.int8)
        if n:
            sims = drifts
            emas = ema_arr
            codes = code_arr
            ema = self._ema
            with nogil:
                for i in range(n):
                    d = sims[i]
                    self._push(d)
                    ema = self._alpha * d + self._beta * ema
                    emas[i] = ema
                    codes[i] = <signed char>self._code(ema)
            self._ema = ema
            if self._gauge is not None:
                self._gauge.set(ema)
            last = GUARDIAN_NAMES[codes[n - 1]]
        else:
            last = GUARDIAN_NAMES[self._code(self._ema)]
        return {"lane": self._lane, "drift": drifts, "ema": ema_arr, "guardian_code": code_arr,
                "guardian": last, "n": self._wlen}

    def reset(self):
        """EMA back to 0.0 and an empty window."""
        self._ema = 0.0
        self._whead = 0
        self._wlen = 0

    def snapshot(self):
        """Plain-dict state (``lane``, ``ema``, ``window``) for :meth:`from_snapshot`."""
        return {"lane": self._lane, "ema": self._ema, "window": self._raw}

    @classmethod
    def from_snapshot(cls, d, *, metrics=None):
        """Rebuild a monitor from :meth:`snapshot` output (the window keeps its last ``cfg.window`` values)."""
        cdef DriftMonitor m
        lane, ema, values = parse_snapshot(d)
        m = cls(lane, metrics=metrics)
        m._ema = ema
        for v in values[-m._wcap:]:
            m._push(v)
        return m

    def __reduce__(self):
        return monitor_reduce(self)

    def __repr__(self):
        return f"DriftMonitor(lane={self._lane!r}, ema={self._ema:.6g}, n={self._wlen})"


# --- request bodies: flat JSON objects with float vectors (csrc/jsonvec.c) ------------

cdef extern from "jsonvec.h" nogil:
    enum:
        LK_JV_OK
        LK_JV_UNHANDLED
        LK_JV_NOMEM
    ctypedef enum lk_jv_kind:
        LK_JV_STRING
        LK_JV_TRUE
        LK_JV_FALSE
        LK_JV_NULL
        LK_JV_ARRAY
    ctypedef struct lk_jv_member:
        size_t key_off, key_len
        lk_jv_kind kind
        size_t off, len
    ctypedef struct lk_jv_doc:
        lk_jv_member *members
        size_t n_members
        double *nums
        size_t n_nums
    ctypedef enum lk_jv_isa:
        LK_JV_ISA_SCALAR
        LK_JV_ISA_AVX2
        LK_JV_ISA_AVX512
    void lk_jv_init(lk_jv_doc *doc)
    void lk_jv_free(lk_jv_doc *doc)
    int lk_jv_parse_isa(const char *p, size_t n, lk_jv_doc *doc, lk_jv_isa isa)
    enum:
        LK_JV_NO_FP
    int lk_jv_parse_flags(const char *p, size_t n, lk_jv_doc *doc, lk_jv_isa isa, int flags)
    const double *lk_jv_p10_table(int k)
    lk_jv_isa lk_jv_best_isa()
    const char *lk_jv_isa_name(lk_jv_isa isa)
    const uint64_t *lk_jv_pow5_table(int q)

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    bint PyUnicode_IS_ASCII(object o)
    const void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)

cdef object _np_empty = np.empty
cdef object _f64 = np.dtype(np.float64)


cdef object _jv_str(const char *base, size_t off, size_t n):
    """The UTF-8 string at base[off:off+n], or None if it is not valid UTF-8."""
    try:
        return PyUnicode_DecodeUTF8(base + off, <Py_ssize_t>n, NULL)
    except UnicodeDecodeError:
        return None


# Recently seen short ASCII strings of bodies (keys, lane names), by a hash of
# their length and end bytes: a body that repeats them gets the same str
# objects (no decoding; their hashes are already computed).  Bounded (16
# entries); safe under the GIL (one list item read or written at a time).
cdef list _jv_strs = [None] * 16


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _jv_str_cached(const char *base, size_t off, size_t n):
    """_jv_str, reusing an equal recently seen ASCII string."""
    cdef const char *p = base + off
    cdef Py_ssize_t slot
    if n == 0 or n > 32:
        return _jv_str(base, off, n)
    slot = <Py_ssize_t>((n * 31 + <unsigned char>p[0] * 7 + <unsigned char>p[n - 1]) & 15)
    s = _jv_strs[slot]
    if s is not None and <size_t>PyUnicode_GET_LENGTH(s) == n and memcmp(PyUnicode_DATA(s), p, n) == 0:
        return s
    s = _jv_str(base, off, n)
    if s is not None and PyUnicode_IS_ASCII(s):
        _jv_strs[slot] = s
    return s


cdef object _jv_array(const double *src, size_t n):
    """A fresh 1-D float64 array holding src[0..n)."""
    cdef Py_buffer out
    arr = _np_empty(<Py_ssize_t>n, _f64)
    PyObject_GetBuffer(arr, &out, PyBUF_SIMPLE | PyBUF_WRITABLE)
    memcpy(out.buf, src, n * sizeof(double))
    PyBuffer_Release(&out)
    return arr


cdef object _jv_build(const char *base, lk_jv_doc *doc):
    cdef size_t i
    cdef lk_jv_member *mb
    out = {}
    for i in range(doc.n_members):
        mb = &doc.members[i]
        key = _jv_str_cached(base, mb.key_off, mb.key_len)
        if key is None:
            return None
        if mb.kind == LK_JV_ARRAY:
            value = _jv_array(doc.nums + mb.off, mb.len)
        elif mb.kind == LK_JV_STRING:
            value = _jv_str_cached(base, mb.off, mb.len)
            if value is None:
                return None
        elif mb.kind == LK_JV_TRUE:
            value = True
        elif mb.kind == LK_JV_FALSE:
            value = False
        else:
            value = None
        out[key] = value  # a duplicate key: the last one wins, as in orjson.loads
    return out


def _pow5_entry(int q):
    """The number parser's 128-bit power-of-five entry for 10^q as an int, or None (for tests)."""
    cdef const uint64_t *t = lk_jv_pow5_table(q)
    return None if t == NULL else (int(t[0]) << 64) | int(t[1])


def _p10_entry(int k):
    """The SIMD kernels' divisor for k fraction digits (10^k), or None (no such
    entry, or no SIMD kernels in this build; for tests)."""
    cdef const double *t = lk_jv_p10_table(k)
    return None if t == NULL else t[0]


def loads_vectors(data):
    """loads_vectors(data) -> dict | None

    Parse a JSON request body of the drift service's shape -- a flat object
    whose values are strings, ``true``/``false``/``null`` or non-empty arrays
    of non-integer numbers -- with the number arrays as fresh 1-D float64
    numpy arrays, parsed straight from the bytes (each value bit-identical to
    ``float(text)``).  ``data`` is ``bytes`` or any contiguous buffer.  The
    numbers are read by AVX-512 or AVX2 kernels where the CPU has them (see
    ``backend_details()["json_kernel"]``), else by portable C; all give the
    same result.

    Returns None for anything else (other shapes, escapes in strings,
    integers, numbers with more than 19 significant digits or an exponent outside +-27, malformed JSON,
    invalid UTF-8): the caller then uses a general JSON parser, which gives
    the same result where both apply.  Raises only MemoryError (TypeError or
    BufferError for an object that is not a contiguous buffer).  Linear time
    in ``len(data)``; thread-safe (no shared state).
    """
    return _loads_vectors(data, lk_jv_best_isa(), 0)


def _loads_vectors_isa(data, str kernel):
    """``loads_vectors`` with the number kernels forced to ``kernel`` (a name from
    ``_json_kernels()``; for tests and benchmarks).  ValueError if the CPU lacks it.
    A SIMD kernel's name with ``"+exact"`` appended redoes every number with the
    exact integer kernels instead of the four-at-a-time floating-point path (the
    results must be the same)."""
    cdef int flags = 0
    name = kernel
    if kernel.endswith("+exact") and kernel != "scalar+exact":
        name = kernel[:-6]
        flags = LK_JV_NO_FP
    if name not in _json_kernels():
        raise ValueError(f"kernel: {kernel!r} is not available on this CPU (have {_json_kernels()})")
    return _loads_vectors(data, _JV_ISA_BY_NAME[name], flags)


_JV_ISA_BY_NAME = {lk_jv_isa_name(i).decode(): i for i in (LK_JV_ISA_SCALAR, LK_JV_ISA_AVX2, LK_JV_ISA_AVX512)}


def _json_kernels():
    """Names of the number kernels this CPU runs, the default (best) last."""
    cdef lk_jv_isa best = lk_jv_best_isa()
    return [lk_jv_isa_name(i).decode() for i in (LK_JV_ISA_SCALAR, LK_JV_ISA_AVX2, LK_JV_ISA_AVX512) if i <= best]


cdef object _loads_vectors(data, lk_jv_isa isa, int flags):
    cdef Py_buffer view
    cdef bint has_view = False
    cdef const char *p
    cdef Py_ssize_t n
    cdef lk_jv_doc doc
    cdef int rc
    if type(data) is bytes:
        p = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        has_view = True
        p = <const char *>view.buf
        n = view.len
    lk_jv_init(&doc)
    try:
        rc = lk_jv_parse_flags(p, <size_t>n, &doc, isa, flags)
        if rc == LK_JV_NOMEM:
            raise MemoryError()
        if rc != LK_JV_OK:
            return None
        return _jv_build(p, &doc)
    finally:
        lk_jv_free(&doc)
        if has_view:
            PyBuffer_Release(&view)


# --- request bodies: JSON nesting depth (csrc/jsondepth.c) ---------------------------

cdef extern from "jsondepth.h" nogil:
    int lk_json_depth_exceeds(const char *p, size_t n, size_t limit)

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX


def json_depth_exceeds(raw, limit):
    """json_depth_exceeds(raw, limit) -> bool

    True if the *valid* JSON text ``raw`` (``bytes`` or any contiguous
    buffer) nests arrays/objects more than ``limit`` levels deep; brackets
    inside strings do not count.  The C tier of
    :func:`lukhas_fast.service.json_depth_exceeds` (the pure-Python oracle),
    with the same result on valid JSON; for other text the answer is
    unspecified.  One pass in C: linear time, constant memory, no recursion
    (bodies of 64 KiB and more are scanned with the GIL released).

    Raises TypeError if ``limit`` is not an int, ValueError if it is negative.
    """
    cdef Py_buffer view
    cdef const char *p
    cdef Py_ssize_t n
    cdef Py_ssize_t lim_s
    cdef size_t lim
    cdef int rc
    if type(limit) is not int and not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    try:
        lim_s = limit
    except OverflowError:  # beyond Py_ssize_t: as good as no limit (no text is that long)
        lim_s = -1 if limit < 0 else PY_SSIZE_T_MAX
    if lim_s < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    lim = <size_t>lim_s
    if type(raw) is bytes:  # immutable: no buffer export needed
        p = PyBytes_AS_STRING(raw)
        n = PyBytes_GET_SIZE(raw)
        if n < 65536:
            return lk_json_depth_exceeds(p, <size_t>n, lim) != 0
        with nogil:
            rc = lk_json_depth_exceeds(p, <size_t>n, lim)
        return rc != 0
    PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            rc = lk_json_depth_exceeds(<const char *>view.buf, <size_t>view.len, lim)
    finally:
        PyBuffer_Release(&view)
    return rc != 0


cdef inline Py_ssize_t _mp_str(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t *length) noexcept:
    """Start of the payload of the msgpack str at ``p[i]`` (its length in ``length``), or -1."""
    cdef unsigned char b
    if i >= n:
        return -1
    b = p[i]
    if 0xA0 <= b <= 0xBF:
        length[0] = b & 0x1F
        i += 1
    elif b == 0xD9 and i + 1 < n:
        length[0] = p[i + 1]
        i += 2
    elif b == 0xDA and i + 2 < n:
        length[0] = (<Py_ssize_t>p[i + 1] << 8) | p[i + 2]
        i += 3
    else:
        return -1
    return i if i + length[0] <= n else -1


cdef inline Py_ssize_t _mp_len(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, int width) noexcept:
    """The big-endian unsigned length of ``width`` (1, 2 or 4) bytes at p[i], or -1 past the end."""
    if i + width > n:
        return -1
    if width == 1:
        return p[i]
    if width == 2:
        return (<Py_ssize_t>p[i] << 8) | p[i + 1]
    return (<Py_ssize_t>p[i] << 24) | (<Py_ssize_t>p[i + 1] << 16) | (<Py_ssize_t>p[i + 2] << 8) | p[i + 3]


cdef inline Py_ssize_t _mp_bin(const unsigned char *p, Py_ssize_t *i, Py_ssize_t n) noexcept:
    """The payload length of the msgpack bin 8/16/32 whose type byte (checked by the caller)
    is ``p[i[0]]``, with ``i[0]`` moved to the payload; -1 when its header or payload runs
    past the end."""
    cdef int width = 1 if p[i[0]] == 0xC4 else 2 if p[i[0]] == 0xC5 else 4
    cdef Py_ssize_t length = _mp_len(p, i[0] + 1, n, width)
    if length < 0 or i[0] + 1 + width + length > n:
        return -1
    i[0] += 1 + width
    return length


cdef object _mp_str_value(const unsigned char *p, Py_ssize_t *i, Py_ssize_t n):
    """The msgpack str at ``p[i[0]]`` as a str (see ``_mp_text``), with ``i[0]`` moved past it;
    None when no whole str starts there (UnicodeDecodeError for invalid UTF-8)."""
    cdef Py_ssize_t length = 0
    cdef Py_ssize_t s = _mp_str(p, i[0], n, &length)
    if s < 0:
        return None
    i[0] = s + length
    return _mp_text(p + s, length)


cdef inline Py_ssize_t _mp_map_header(const unsigned char *p, Py_ssize_t n, Py_ssize_t *i) noexcept:
    """The entry count of the fixmap or map16 that starts the body, with ``i[0]`` set
    to the offset of its first key; -1 for any other start (the general decoder's case)."""
    if n == 0:
        return -1
    cdef unsigned char t = p[0]
    if 0x80 <= t <= 0x8F:
        i[0] = 1
        return t & 0x0F
    if t == 0xDE and n >= 3:
        i[0] = 3
        return (<Py_ssize_t>p[1] << 8) | p[2]
    return -1


def loads_msgpack_fields(data):
    """loads_msgpack_fields(data) -> dict | None

    The common shape of a msgpack drift request body -- a map (fixmap or
    map16) of str keys whose values are str or ``bin`` -- as a dict of str
    values and ``memoryview`` slices of ``data`` for the ``bin`` values (no
    copy).  ``data`` must be ``bytes``.  None for anything else (other value
    types, truncated input, trailing bytes, invalid UTF-8): the caller then
    uses the general msgpack decoder.  Linear in the body size.
    """
    if type(data) is not bytes:
        return None
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i = 0, count, k, length = 0
    cdef unsigned char t
    cdef object mv = None
    count = _mp_map_header(p, n, &i)
    if count < 0:
        return None
    out = {}
    try:
        for k in range(count):
            key = _mp_str_value(p, &i, n)
            if key is None or i >= n:
                return None
            t = p[i]
            if t == 0xC4 or t == 0xC5 or t == 0xC6:  # bin 8/16/32
                length = _mp_bin(p, &i, n)
                if length < 0:
                    return None
                if mv is None:
                    mv = memoryview(data)
                out[key] = mv[i:i + length]
                i += length
            else:
                value = _mp_str_value(p, &i, n)
                if value is None:
                    return None
                out[key] = value
    except UnicodeDecodeError:
        return None
    return out if i == n else None


_MP_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
cdef object _MP_F32 = _MP_DTYPES["float32"]
cdef object _MP_F64 = _MP_DTYPES["float64"]
cdef object _np_frombuffer = np.frombuffer


@cython.final
@cython.freelist(8)
cdef class BinVector:
    """A msgpack ``bin`` vector of little-endian float32/float64 values read in place
    (``loads_msgpack_vectors(data, arrays=False)``): a read-only 1-D buffer (format
    ``"f"``/``"d"``, element-aligned) over bytes of the body, or of an aligned copy,
    with ``len()`` and ``dtype``.  What ``np.frombuffer`` would make of it, without
    making an array: the drift kernels, ``np.asarray`` and ``memoryview`` read it
    through the buffer protocol.  Immutable; keeps its bytes alive."""

    cdef object _owner  # the bytes holding the payload
    cdef Py_ssize_t _off, _n, _itemsize
    cdef Py_ssize_t _shape[1]
    cdef Py_ssize_t _strides[1]

    def __cinit__(self):
        self._owner = None

    def __len__(self):
        return self._n

    @property
    def dtype(self):
        """``float32`` or ``float64`` (little-endian) as a numpy dtype."""
        return _MP_F32 if self._itemsize == 4 else _MP_F64

    def __getbuffer__(self, Py_buffer *buf, int flags):
        if self._owner is None:
            raise BufferError("an empty BinVector (made by the msgpack reader only)")
        if flags & PyBUF_WRITABLE:
            raise BufferError("BinVector is read-only")
        buf.buf = <void *>(PyBytes_AS_STRING(self._owner) + self._off)
        buf.obj = self
        buf.len = self._n * self._itemsize
        buf.readonly = 1
        buf.itemsize = self._itemsize
        if flags & PyBUF_FORMAT:
            buf.format = b"f" if self._itemsize == 4 else b"d"
        else:
            buf.format = NULL
        if flags & PyBUF_ND:
            buf.shape = self._shape
        else:
            buf.shape = NULL
        if (flags & PyBUF_STRIDES) == PyBUF_STRIDES:
            buf.strides = self._strides
        else:
            buf.strides = NULL
        buf.ndim = 1
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass

    def __repr__(self):
        return f"BinVector({self.dtype.name}, n={self._n})"


cdef BinVector _bin_vector(object owner, Py_ssize_t off, Py_ssize_t n, Py_ssize_t itemsize):
    cdef BinVector v = BinVector.__new__(BinVector)
    v._owner = owner
    v._off = off
    v._n = n
    v._itemsize = itemsize
    v._shape[0] = n
    v._strides[0] = itemsize
    return v


cdef object _mp_bin_vector(object data, const unsigned char *p, Py_ssize_t off, Py_ssize_t length, object dt,
                           Py_ssize_t itemsize, bint arrays=True):
    """The ``bin`` payload p[off:off+length] as a read-only 1-D array of ``dt``: a view into
    ``data`` when the payload is aligned to ``itemsize``, else an aligned copy.

    The drift kernels take their typed (SIMD) loop only for element-aligned data, and
    the last bits of a sum depend on the loop: with a copy for misaligned payloads the
    answer never depends on where the vector sits in the body, and the copy (a few KB,
    one memcpy) costs less than the strided loop it avoids.  The copy is a fresh
    ``bytes`` object (its payload is allocator-aligned, checked here) viewed by
    ``frombuffer``: read-only by construction, and about half the cost of
    ``np.empty`` + ``flags.writeable = False`` (the flag setter alone calls back
    into Python), which matters because most clients' bodies are misaligned.

    ``arrays`` False: a :class:`BinVector` over the same bytes instead of the array
    (the service's drift route: no array is made at all)."""
    cdef Py_buffer out
    if (<size_t>(p + off)) % <size_t>itemsize == 0:
        if not arrays:
            return _bin_vector(data, off, length // itemsize, itemsize)
        return _np_frombuffer(data, dt, length // itemsize, off)  # read-only: data is bytes
    copy = PyBytes_FromStringAndSize(<const char *>(p + off), length)
    if (<size_t>PyBytes_AS_STRING(copy)) % <size_t>itemsize == 0:
        if not arrays:
            return _bin_vector(copy, 0, length // itemsize, itemsize)
        return _np_frombuffer(copy, dt)
    arr = _np_empty(length // itemsize, dt)  # an allocator without 8-byte alignment (never seen)
    PyObject_GetBuffer(arr, &out, PyBUF_SIMPLE | PyBUF_WRITABLE)
    memcpy(out.buf, p + off, <size_t>length)
    PyBuffer_Release(&out)
    arr.flags.writeable = False
    return arr


# The usual keys and values of a drift body as the same (interned) str objects every
# time: no UTF-8 decoding, and dict lookups with them find their hash cached.
cdef str _K_LANE = "lane"
cdef str _K_DTYPE = "dtype"
cdef str _K_INTENT = "intent"
cdef str _K_ACTION = "action"
cdef str _V_F32 = "float32"
cdef str _V_F64 = "float64"


cdef inline bint _mp_eq(const unsigned char *p, Py_ssize_t n, const char *lit, Py_ssize_t litn) noexcept:
    return n == litn and memcmp(p, lit, <size_t>n) == 0


cdef object _mp_text(const unsigned char *p, Py_ssize_t n):
    """The UTF-8 text p[0:n] as str: one of the constants above when it is one
    (UnicodeDecodeError for invalid UTF-8)."""
    if n == 4 and memcmp(p, b"lane", 4) == 0:
        return _K_LANE
    if n == 5 and memcmp(p, b"dtype", 5) == 0:
        return _K_DTYPE
    if n == 6:
        if memcmp(p, b"intent", 6) == 0:
            return _K_INTENT
        if memcmp(p, b"action", 6) == 0:
            return _K_ACTION
    elif n == 7:
        if memcmp(p, b"float32", 7) == 0:
            return _V_F32
        if memcmp(p, b"float64", 7) == 0:
            return _V_F64
    return PyUnicode_DecodeUTF8(<const char *>p, n, NULL)


cdef extern from *:
    """
    #define lk_bswap64(x) __builtin_bswap64(x)
    """
    uint64_t _bswap64 "lk_bswap64" (uint64_t) nogil


cdef object _mp_float_array(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t count,
                            Py_ssize_t *end):
    """A msgpack array of ``count`` float64/float32 elements starting at p[i] as a fresh
    float64 array (each value exact: float32 widens exactly), the end offset in ``end``;
    None for any other element (ints, bools, nil ...: the general decoder's list)."""
    cdef Py_buffer out
    cdef double *dst
    cdef Py_ssize_t k
    cdef uint64_t u
    cdef unsigned int v
    cdef float f
    cdef unsigned char t
    arr = _np_empty(count, _f64)
    PyObject_GetBuffer(arr, &out, PyBUF_SIMPLE | PyBUF_WRITABLE)
    dst = <double *>out.buf
    k = 0
    try:
        if count <= (n - i) // 9:  # room for all-float64 elements (the usual array): one bound check
            while k < count and p[i] == 0xCB:
                memcpy(&u, p + i + 1, 8)
                u = _bswap64(u)
                memcpy(&dst[k], &u, 8)
                i += 9
                k += 1
        while k < count:  # the rest (float32 elements, or short of room): checked one by one
            if i >= n:
                return None
            t = p[i]
            if t == 0xCB and i + 9 <= n:  # float 64, big-endian
                u = ((<uint64_t>p[i + 1] << 56) | (<uint64_t>p[i + 2] << 48) | (<uint64_t>p[i + 3] << 40)
                     | (<uint64_t>p[i + 4] << 32) | (<uint64_t>p[i + 5] << 24) | (<uint64_t>p[i + 6] << 16)
                     | (<uint64_t>p[i + 7] << 8) | <uint64_t>p[i + 8])
                memcpy(&dst[k], &u, 8)
                i += 9
            elif t == 0xCA and i + 5 <= n:  # float 32, big-endian
                v = ((<unsigned int>p[i + 1] << 24) | (<unsigned int>p[i + 2] << 16)
                     | (<unsigned int>p[i + 3] << 8) | <unsigned int>p[i + 4])
                memcpy(&f, &v, 4)
                dst[k] = <double>f
                i += 5
            else:
                return None
            k += 1
    finally:
        PyBuffer_Release(&out)
    end[0] = i
    return arr


def loads_msgpack_vectors(data, bint arrays=True):
    """loads_msgpack_vectors(data, arrays=True) -> dict | None

    A msgpack drift body of the usual shape in one call: a map (fixmap or map16) of
    str keys whose values are str, ``bin``, or -- for ``intent``/``action`` -- arrays
    whose elements are all msgpack floats.  ``bin`` vectors (with ``"dtype"``
    ``"float32"``/``"float64"``) become read-only 1-D arrays: views into ``data`` when
    element-aligned, else aligned copies (see :func:`_mp_bin_vector`); float arrays
    become fresh float64 arrays; other ``bin`` values ``bytes``.  None whenever
    anything is off (no or another dtype for a ``bin`` vector, a length that is not a
    whole number of values, other value types, empty arrays, duplicate keys,
    truncated input, trailing bytes, invalid UTF-8): the caller's general path then
    decodes the body and reports the error.  Little-endian hosts only (None elsewhere).

    ``arrays`` False: ``bin`` vectors come as :class:`BinVector` buffers over the same
    bytes (no numpy array is made; read by the drift kernels in place).
    """
    if not _LITTLE_ENDIAN or type(data) is not bytes:
        return None
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i = 0, count, k, length = 0, end = 0, itemsize
    cdef unsigned char t
    # bin vectors, built once "dtype" is known: [0] intent, [1] action (offset -1: none)
    cdef Py_ssize_t vec_off[2]
    cdef Py_ssize_t vec_len[2]
    cdef int v
    vec_off[0] = vec_off[1] = -1
    vec_len[0] = vec_len[1] = 0
    count = _mp_map_header(p, n, &i)
    if count < 0:
        return None
    out = {}
    try:
        for k in range(count):
            key = _mp_str_value(p, &i, n)
            if key is None or key in out or i >= n:
                return None
            t = p[i]
            if t == 0xC4 or t == 0xC5 or t == 0xC6:  # bin 8/16/32
                length = _mp_bin(p, &i, n)
                if length < 0:
                    return None
                v = 0 if key is _K_INTENT else 1 if key is _K_ACTION else -1
                if v >= 0:
                    vec_off[v] = i
                    vec_len[v] = length
                    out[key] = None  # (the key's place in the dict)
                else:
                    out[key] = data[i:i + length]
                i += length
            elif (0x90 <= t <= 0x9F or t == 0xDC or t == 0xDD) and (key is _K_INTENT or key is _K_ACTION):
                if t <= 0x9F:
                    length = t & 0x0F
                    i += 1
                else:
                    length = _mp_len(p, i + 1, n, 2 if t == 0xDC else 4)
                    i += 3 if t == 0xDC else 5
                if length <= 0:
                    return None
                arr = _mp_float_array(p, i, n, length, &end)
                if arr is None:
                    return None
                out[key] = arr
                i = end
            else:
                value = _mp_str_value(p, &i, n)
                if value is None:
                    return None
                out[key] = value
    except UnicodeDecodeError:
        return None
    if i != n:
        return None
    if vec_off[0] >= 0 or vec_off[1] >= 0:
        dtype = out.get(_K_DTYPE)
        if dtype is _V_F32:
            dt, itemsize = _MP_F32, 4
        elif dtype is _V_F64:
            dt, itemsize = _MP_F64, 8
        else:
            return None
        for v in range(2):
            if vec_off[v] >= 0:
                if vec_len[v] % itemsize:
                    return None
                out[_K_INTENT if v == 0 else _K_ACTION] = _mp_bin_vector(data, p, vec_off[v], vec_len[v], dt,
                                                                         itemsize, arrays)
    return out


cdef bint _LITTLE_ENDIAN = __import__("sys").byteorder == "little"  # the wire format is little-endian


# --- msgpack answers -----------------------------------------------------------------------
cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    bint PyDict_Next(object d, Py_ssize_t *pos, PyObject **key, PyObject **value)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

DEF _FLAT_MAX = 512  # bytes of a flat answer built on the stack (longer: None)


cdef inline Py_ssize_t _put_str(unsigned char *buf, Py_ssize_t o, object s) except -2:
    """msgpack str ``s`` (exact str) into buf[o:] (fixstr/str8, as msgpack-python packs it); the
    new offset, or -1 when it does not fit or is not valid UTF-8 (the packer then decides)."""
    cdef Py_ssize_t size
    cdef const char *u
    try:
        u = PyUnicode_AsUTF8AndSize(s, &size)
    except UnicodeEncodeError:  # lone surrogates: msgpack's packer raises its own error
        return -1
    if size <= 31:
        if o + 1 + size > _FLAT_MAX:
            return -1
        buf[o] = 0xA0 | <unsigned char>size
        o += 1
    elif size <= 0xFF:
        if o + 2 + size > _FLAT_MAX:
            return -1
        buf[o] = 0xD9
        buf[o + 1] = <unsigned char>size
        o += 2
    else:
        return -1
    memcpy(buf + o, u, <size_t>size)
    return o + size


def dumps_msgpack_flat(obj):
    """dumps_msgpack_flat(obj) -> bytes | None

    ``msgpack.packb(obj, use_bin_type=True)`` -- byte for byte -- of a flat answer
    such as ``DriftMonitor.update``'s: a dict of at most 15 entries whose keys are
    str and whose values are str, float, bool, None or int in ``[0, 2**32)`` (exact
    types), at most 512 bytes encoded, in one call without a ``Packer``.  None for
    anything else: the caller's packer then encodes it (and raises its errors).
    """
    cdef unsigned char buf[_FLAT_MAX]
    cdef Py_ssize_t o = 1, pos = 0
    cdef PyObject *pk
    cdef PyObject *pv
    cdef double d
    cdef uint64_t u
    cdef long long iv
    cdef int overflow = 0
    cdef int j
    if type(obj) is not dict or len(<dict>obj) > 15:
        return None
    buf[0] = 0x80 | <unsigned char>len(<dict>obj)
    while PyDict_Next(obj, &pos, &pk, &pv):
        key = <object>pk
        value = <object>pv
        if type(key) is not str:
            return None
        o = _put_str(buf, o, key)
        if o < 0:
            return None
        if type(value) is float:
            if o + 9 > _FLAT_MAX:
                return None
            d = PyFloat_AS_DOUBLE(value)
            memcpy(&u, &d, 8)
            buf[o] = 0xCB
            for j in range(8):  # big-endian
                buf[o + 1 + j] = <unsigned char>(u >> (56 - 8 * j))
            o += 9
        elif type(value) is str:
            o = _put_str(buf, o, value)
            if o < 0:
                return None
        elif value is None or type(value) is bool:
            if o + 1 > _FLAT_MAX:
                return None
            buf[o] = 0xC0 if value is None else (0xC3 if value is True else 0xC2)
            o += 1
        elif type(value) is int:
            iv = PyLong_AsLongLongAndOverflow(value, &overflow)
            if overflow or iv < 0 or iv > 0xFFFFFFFF or o + 5 > _FLAT_MAX:
                return None
            if iv < 0x80:  # positive fixint
                buf[o] = <unsigned char>iv
                o += 1
            elif iv <= 0xFF:  # uint 8
                buf[o] = 0xCC
                buf[o + 1] = <unsigned char>iv
                o += 2
            elif iv <= 0xFFFF:  # uint 16
                buf[o] = 0xCD
                buf[o + 1] = <unsigned char>(iv >> 8)
                buf[o + 2] = <unsigned char>iv
                o += 3
            else:  # uint 32
                buf[o] = 0xCE
                buf[o + 1] = <unsigned char>(iv >> 24)
                buf[o + 2] = <unsigned char>(iv >> 16)
                buf[o + 3] = <unsigned char>(iv >> 8)
                buf[o + 4] = <unsigned char>iv
                o += 5
        else:
            return None
    return PyBytes_FromStringAndSize(<const char *>buf, o)
