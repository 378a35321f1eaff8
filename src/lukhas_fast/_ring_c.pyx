"""C tier of the rings: Cython extension types.

``Ring`` and ``DecimatingRing`` keep their items in a private Python list used
as a circular buffer (so the cyclic GC sees every held object through the
list), grown by doubling up to ``capacity`` (memory follows the number of
items held, not the capacity).  Item pointers are moved with C-level list
access; every reference an operation drops is released only after the ring's
state is consistent again, so a ``__del__`` that touches the ring is safe.

``SpscRing`` wraps the lock-free C core in ``csrc/spsc.{h,c}``.

Semantics are those of :mod:`lukhas_fast._ring_py` (the oracle); validation
helpers are shared with it.
"""

cimport cython
from cpython.ref cimport PyObject
from cpython.dict cimport PyDict_Size, PyDict_Contains
from cpython.buffer cimport (PyObject_CheckBuffer, PyObject_GetBuffer, PyBuffer_Release,
                             PyBuffer_IsContiguous, PyBUF_RECORDS_RO, PyBUF_WRITABLE, PyBUF_SIMPLE)
from libc.stdint cimport uint64_t, int64_t
from libc.math cimport isfinite, floor
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE

from lukhas_fast._spsc cimport (lk_spsc, lk_spsc_new, lk_spsc_free, lk_spsc_push, lk_spsc_pop,
                                lk_spsc_size, lk_spsc_pushed, lk_spsc_popped, lk_spsc_dropped,
                                lk_spsc_enter, lk_spsc_leave)

import numpy as np

from lukhas_fast._ring_py import (STRATEGIES, check_capacity, check_threshold, check_factor,
                                  check_strategy, check_protect_priority, check_priority,
                                  check_spsc_args, as_record, ring_state, parse_ring_state,
                                  restore_attrs, SPSC_PICKLE_ERROR)
import copyreg as _copyreg

__all__ = ["Ring", "DecimatingRing", "SpscRing", "STRATEGIES", "backend_details"]


def backend_details():
    """What this tier reports in :func:`lukhas_fast.backend_info`."""
    return {"impl": "Cython extension types; SPSC core in C11 atomics"}


cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item
    void _incref "Py_INCREF"(PyObject *o)
    void _decref "Py_DECREF"(PyObject *o)
    PyObject *PyList_New(Py_ssize_t n)   # new reference; slots NULL
    PyObject *Py_None
    Py_ssize_t PY_SSIZE_T_MAX


cdef inline PyObject **_slots(list items):
    return (<PyListObject *>items).ob_item


cdef class Ring:
    """Ring(capacity)

    Bounded FIFO that evicts the oldest item when a push would exceed
    ``capacity`` (like ``collections.deque(maxlen=capacity)``).

    * ``push(x)`` -- append, evicting the oldest item if full;
    * ``pop_all()`` -- every item, oldest first, as a new list; empties the ring;
    * ``len(ring)``, ``capacity`` (read-only), ``utilization`` (``len/capacity``);
    * extras: iteration (oldest first, non-destructive), ``clear()``, ``repr``.

    ``capacity`` must be an ``int >= 1``.  Memory grows with the number of
    items held, not with ``capacity``.  Safe to share between threads under
    the GIL (each call is atomic with respect to other Python threads).
    Instances take attributes like a plain object (``__dict__``), so
    ``mock.patch.object(ring, "push", ...)`` works; they pickle with their items.
    """

    cdef list _items            # circular storage; free slots hold None
    cdef Py_ssize_t _head       # physical index of the oldest item
    cdef Py_ssize_t _size       # items held
    cdef Py_ssize_t _alloc      # len(_items)
    cdef Py_ssize_t _cap        # capacity (0 until __init__ ran)
    cdef object __weakref__
    # attributes and per-instance patches, as on the SDK's plain class; the
    # generic attribute lookup checks it, calls through a bound `push` do not
    cdef dict __dict__

    def __cinit__(self, *args, **kwargs):
        self._items = []
        self._head = 0
        self._size = 0
        self._alloc = 0
        self._cap = 0

    def __init__(self, capacity):
        cap = check_capacity(capacity)
        self._reset_storage()
        self._cap = cap

    cdef void _reset_storage(self):
        """Start empty (a second __init__ call must not leave items beyond the new capacity)."""
        old = self._items
        self._items = []
        self._head = 0
        self._size = 0
        self._alloc = 0
        del old  # the previous items are released after the ring is consistent

    # -- C-level primitives (used by DecimatingRing too) ----------------------
    cdef int _grow(self) except -1:
        """Double the storage (up to capacity), unwrapping it to start at 0."""
        cdef Py_ssize_t new_alloc = self._alloc * 2
        cdef Py_ssize_t i, j
        cdef PyObject **old_slots
        cdef PyObject **new_slots
        cdef PyObject *raw
        cdef list fresh
        if self._cap == 0:
            raise RuntimeError(f"{type(self).__name__}.__init__ was not called")
        if new_alloc < 16:
            new_alloc = 16
        if new_alloc > self._cap:
            new_alloc = self._cap
        raw = PyList_New(new_alloc)
        if raw == NULL:
            raise MemoryError()
        fresh = <list>raw
        _decref(raw)  # `fresh` holds the reference now
        new_slots = _slots(fresh)
        old_slots = _slots(self._items)
        j = self._head
        for i in range(self._size):
            new_slots[i] = old_slots[j]   # move the reference
            old_slots[j] = NULL           # list dealloc uses XDECREF
            j += 1
            if j == self._alloc:
                j = 0
        for i in range(self._size, new_alloc):
            _incref(Py_None)
            new_slots[i] = Py_None
        self._items = fresh
        self._head = 0
        self._alloc = new_alloc
        return 0

    cdef inline int _append(self, object x) except -1:
        cdef Py_ssize_t idx
        cdef PyObject **slots
        cdef PyObject *old
        if self._size < self._alloc:
            idx = self._head + self._size
            if idx >= self._alloc:
                idx -= self._alloc
            self._size += 1
        elif self._size < self._cap:
            self._grow()
            idx = self._size
            self._size += 1
        elif self._cap == 0:
            raise RuntimeError(f"{type(self).__name__}.__init__ was not called")
        else:  # full: the new item takes the oldest item's slot
            idx = self._head
            self._head += 1
            if self._head == self._alloc:
                self._head = 0
        slots = _slots(self._items)
        old = slots[idx]
        _incref(<PyObject *>x)
        slots[idx] = <PyObject *>x
        _decref(old)  # last: state is consistent if this runs a __del__
        return 0

    cdef list _take_all(self):
        """Move every item (oldest first) into a new list; leaves the ring empty."""
        cdef Py_ssize_t n = self._size
        cdef Py_ssize_t i, j = self._head
        cdef PyObject **slots = _slots(self._items)
        cdef PyObject **dst
        cdef PyObject *raw = PyList_New(n)
        cdef list out
        if raw == NULL:
            raise MemoryError()
        out = <list>raw
        _decref(raw)
        dst = _slots(out)
        for i in range(n):
            dst[i] = slots[j]
            _incref(Py_None)
            slots[j] = Py_None
            j += 1
            if j == self._alloc:
                j = 0
        self._head = 0
        self._size = 0
        return out

    # -- public API -----------------------------------------------------------
    @cython.binding(False)
    def push(self, x):
        """push(x) -> None: append ``x``, evicting the oldest item if full."""
        self._append(x)

    def pop_all(self):
        """pop_all() -> list: every held item, oldest first; the ring is left empty."""
        return self._take_all()

    def clear(self):
        """clear() -> None: drop every held item."""
        self._take_all()  # released when the temporary list goes

    def __len__(self):
        return self._size

    def __iter__(self):
        cdef Py_ssize_t i, j = self._head
        cdef PyObject **slots = _slots(self._items)
        snapshot = [None] * self._size
        for i in range(self._size):
            snapshot[i] = <object>slots[j]
            j += 1
            if j == self._alloc:
                j = 0
        return iter(snapshot)

    @property
    def capacity(self):
        """Maximum number of held items (read-only)."""
        return self._cap

    @property
    def utilization(self):
        """``len(ring) / capacity`` as a float."""
        if self._cap == 0:
            return 0.0
        return <double>self._size / <double>self._cap

    def __reduce__(self):
        return (_copyreg.__newobj__, (type(self),), ring_state(self, False))

    def __setstate__(self, state):
        st = parse_ring_state(state, False)
        self._reset_storage()
        self._cap = st["capacity"]
        for x in st["items"]:
            self._append(x)
        restore_attrs(self, st["attrs"])

    def __repr__(self):
        return f"{type(self).__name__}(size={self._size}, capacity={self._cap})"


cdef enum:
    SKIP_NTH = 0
    ADAPTIVE = 1
    KEEP_RECENT = 2

cdef dict _STRATEGY_CODE = {"skip_nth": SKIP_NTH, "adaptive": ADAPTIVE, "keep_recent": KEEP_RECENT}


cdef extern from *:
    """
    /* The instance __dict__ of a ring, borrowed, or NULL if none was made yet.
       Ring declares `cdef dict __dict__`, so the type (and every subclass)
       has a fixed positive tp_dictoffset; the dict is created lazily by the
       generic setattr, so reading the slot never allocates. */
    static inline PyObject *lk_ring_inst_dict(PyObject *o) {
        Py_ssize_t off = Py_TYPE(o)->tp_dictoffset;
        return off > 0 ? *(PyObject **)((char *)o + off) : NULL;
    }
    """
    PyObject *lk_ring_inst_dict(object o)


cdef inline bint _patched(object ring, str name) except -1:
    """Whether the instance ``__dict__`` holds ``name`` (a per-instance override,
    e.g. ``mock.patch.object``); without instance attributes this is one test."""
    cdef PyObject *d = lk_ring_inst_dict(ring)
    if d == NULL or PyDict_Size(<object>d) == 0:
        return False
    return PyDict_Contains(<object>d, name) == 1


cdef struct _Stats:
    Py_ssize_t capacity, size, pushes, drops, events, factor
    double utilization, threshold, drop_rate, last_utilization


# The keys and punctuation of DecimatingRing._backpressure_json (their total length is
# _STATS_KEYS_LEN: every literal the method writes, '{' ... '}')
_STATS_LITERALS = (b'{"capacity":', b',"current_size":', b',"utilization":', b',"pressure_threshold":',
                   b',"total_pushes":', b',"total_drops":', b',"drop_rate":', b',"decimation_events":',
                   b',"decimation_factor":', b',"decimation_strategy":', b',"last_decimation_utilization":', b'}')
cdef Py_ssize_t _STATS_KEYS_LEN = sum(len(x) for x in _STATS_LITERALS)
# the largest capacity whose utilization encodings are remembered per size (up to
# 4097 entries: ~37 KiB of list and at most ~200 KiB of encodings, made only by
# _backpressure_json)
cdef Py_ssize_t _JSON_UTIL_MAX = 4096


cdef inline char *_put_raw(char *p, const char *s, Py_ssize_t n) noexcept:
    memcpy(p, s, n)
    return p + n


cdef inline char *_put_bytes(char *p, bytes s) noexcept:
    return _put_raw(p, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


cdef inline Py_ssize_t _put_ssize(char *out, Py_ssize_t v) noexcept:
    """``v`` in decimal into ``out`` (at least 21 bytes); returns the length."""
    cdef char tmp[24]
    cdef Py_ssize_t n = 0, i
    # the magnitude as unsigned, so that PY_SSIZE_T_MIN has one too
    cdef unsigned long long u = <unsigned long long>v
    if v < 0:
        u = 0ULL - u
    while True:
        tmp[n] = <char>(48 + <int>(u % 10))
        n += 1
        u //= 10
        if u == 0:
            break
    i = 0
    if v < 0:
        out[0] = 45  # '-'
        i = 1
    while n > 0:
        n -= 1
        out[i] = tmp[n]
        i += 1
    return i


cdef class DecimatingRing(Ring):
    """DecimatingRing(capacity, pressure_threshold=0.8, decimation_factor=2, decimation_strategy="skip_nth", *, protect_priority=None)

    A :class:`Ring` that sheds load under pressure.  ``push(x, priority=None)``:

    1. ``push_count += 1``; ``u = len / capacity`` (before adding);
    2. if ``u >= pressure_threshold`` and the drop rule says so:
       ``drops_total += 1`` and ``x`` is not stored;
    3. otherwise append (evicting the oldest if full); if now full, decimate.

    Drop rules (``n = push_count``): ``skip_nth`` drops when
    ``n % decimation_factor != 0``; ``adaptive`` when ``n % k != 0`` with
    ``k = max(2, int(factor * (1 + 2 * (u - t) / (1 - t))))``; ``keep_recent``
    never drops.  Decimation (when ``len >= 2``) keeps positions
    ``0, f, 2f, ...`` (skip_nth, adaptive) or the newest ``len // 2`` items
    (keep_recent), then counts ``decimation_events`` and records
    ``last_decimation_utilization``.

    Subclasses may override ``_should_drop_item(item, priority, utilization)``
    and ``_apply_decimation()``; ``push`` then calls the overrides (checked
    when the instance is created).  ``protect_priority`` (opt-in): pushes with
    ``priority >= protect_priority`` are never dropped by the drop rule.
    """

    cdef double _threshold
    cdef Py_ssize_t _thr_size       # smallest size with size/capacity >= threshold
    cdef Py_ssize_t _factor
    cdef Py_ssize_t _factor_mask    # factor - 1 when factor is a power of two, else -1
    cdef int _strategy
    cdef str _strategy_name
    cdef object _protect
    cdef bint _custom_drop
    cdef bint _custom_decimation
    cdef public Py_ssize_t drops_total
    cdef public Py_ssize_t decimation_events
    cdef public Py_ssize_t push_count
    cdef public double last_decimation_utilization
    # _backpressure_json: the encoder last used, and per float field the last value's
    # bits and its encoding (a one-entry cache: the threshold never changes, the last
    # decimation utilization seldom); the strategy name's encoding (per name object)
    cdef object _json_encode
    cdef uint64_t _json_bits[4]
    cdef list _json_floats
    cdef object _json_strategy_of
    cdef object _json_strategy
    # ... and the utilization's encoding per size (size / capacity: one value per size) for
    # capacities up to _JSON_UTIL_MAX, made on first use (None: not made, or another capacity)
    cdef list _json_util
    cdef Py_ssize_t _json_util_cap
    cdef bint _custom_stats

    def __cinit__(self, *args, **kwargs):
        cls = type(self)
        self._custom_drop = cls._should_drop_item is not _BASE_SHOULD_DROP
        self._custom_decimation = cls._apply_decimation is not _BASE_APPLY_DECIMATION
        self._custom_stats = cls.get_backpressure_stats is not _BASE_GET_STATS
        self._json_floats = [None, None, None, None]
        self._threshold = 0.8
        self._factor = 2
        self._strategy = SKIP_NTH
        self._strategy_name = "skip_nth"
        self._protect = None

    cdef void _derive(self):
        """Recompute the integer forms of threshold and factor used by push.

        ``size/capacity >= threshold`` is monotone in size (IEEE division is
        correctly rounded), so it equals ``size >= _thr_size`` exactly; that
        saves a division per push.  A power-of-two factor turns the modulo of
        the drop rule into a mask (same zero test for negative counts too).
        """
        cdef Py_ssize_t s
        cdef double cap = <double>self._cap
        if self._cap > 0:
            s = <Py_ssize_t>(self._threshold * cap)
            if s > self._cap:
                s = self._cap
            if s < 0:
                s = 0
            while s > 0 and <double>(s - 1) / cap >= self._threshold:
                s -= 1
            while s < self._cap and not (<double>s / cap >= self._threshold):
                s += 1
            self._thr_size = s
        if self._factor > 0 and (self._factor & (self._factor - 1)) == 0:
            self._factor_mask = self._factor - 1
        else:
            self._factor_mask = -1

    def __init__(self, capacity, pressure_threshold=0.8, decimation_factor=2,
                 decimation_strategy="skip_nth", *, protect_priority=None):
        cap = check_capacity(capacity)
        thr = check_threshold(pressure_threshold)
        fac = check_factor(decimation_factor)
        strat = check_strategy(decimation_strategy)
        prot = check_protect_priority(protect_priority)
        self._reset_storage()
        self._cap = cap
        self._threshold = thr
        self._factor = fac
        self._strategy = _STRATEGY_CODE[strat]
        self._strategy_name = strat
        self._protect = prot
        self.drops_total = 0
        self.decimation_events = 0
        self.push_count = 0
        self.last_decimation_utilization = 0.0
        self._derive()

    # -- validated, assignable configuration ---------------------------------
    @property
    def pressure_threshold(self):
        """Utilization at or above which the drop rule applies (``0 < t <= 1``)."""
        return self._threshold

    @pressure_threshold.setter
    def pressure_threshold(self, value):
        self._threshold = check_threshold(value)
        self._derive()

    @property
    def decimation_factor(self):
        """Stride of the skip_nth/adaptive rules (``int >= 1``)."""
        return self._factor

    @decimation_factor.setter
    def decimation_factor(self, value):
        self._factor = check_factor(value)
        self._derive()

    @property
    def decimation_strategy(self):
        """``"skip_nth"``, ``"adaptive"`` or ``"keep_recent"``."""
        return self._strategy_name

    @decimation_strategy.setter
    def decimation_strategy(self, value):
        name = check_strategy(value)
        self._strategy = _STRATEGY_CODE[name]
        self._strategy_name = name

    @property
    def protect_priority(self):
        """Pushes with ``priority >= protect_priority`` are never dropped (None: off)."""
        return self._protect

    @protect_priority.setter
    def protect_priority(self, value):
        self._protect = check_protect_priority(value)

    # -- the algorithm ----------------------------------------------------------
    cdef inline bint _drop_rule(self, double u):
        cdef double ratio
        cdef Py_ssize_t k
        if self._strategy == SKIP_NTH:
            if self._factor_mask >= 0:
                return (self.push_count & self._factor_mask) != 0
            return self.push_count % self._factor != 0
        if self._strategy == ADAPTIVE:
            if self._threshold != 1.0:
                ratio = (u - self._threshold) / (1.0 - self._threshold)
            else:
                ratio = 1.0
            k = <Py_ssize_t>(<double>self._factor * (1.0 + ratio * 2.0))
            if k < 2:
                k = 2
            return self.push_count % k != 0
        return False

    cdef int _decimate(self) except -1:
        """Built-in decimation.  Dropped references are parked in a scratch
        array and released only after the ring's state is updated."""
        cdef Py_ssize_t size = self._size
        cdef Py_ssize_t alloc = self._alloc
        cdef Py_ssize_t f = self._factor
        cdef Py_ssize_t ndrop, i, d, c, rj, wj
        cdef PyObject **slots
        cdef PyObject **scratch
        if size < 2:
            return 0
        if self._strategy == KEEP_RECENT:
            ndrop = size - size // 2
        else:
            ndrop = size - (size + f - 1) // f
        scratch = NULL
        if ndrop:
            scratch = <PyObject **>malloc(ndrop * sizeof(PyObject *))
            if scratch == NULL:
                raise MemoryError()
        slots = _slots(self._items)
        if self._strategy == KEEP_RECENT:
            # the oldest ndrop items leave; head moves past them
            rj = self._head
            for i in range(ndrop):
                scratch[i] = slots[rj]
                _incref(Py_None)
                slots[rj] = Py_None
                rj += 1
                if rj == alloc:
                    rj = 0
            self._head = rj
        else:
            # keep positions 0, f, 2f, ...: slide them forward (write index
            # never passes the read index), park the others in scratch
            rj = wj = self._head
            d = 0
            c = 0
            for i in range(size):
                if c == 0:
                    slots[wj] = slots[rj]
                    wj += 1
                    if wj == alloc:
                        wj = 0
                else:
                    scratch[d] = slots[rj]
                    d += 1
                c += 1
                if c == f:
                    c = 0
                rj += 1
                if rj == alloc:
                    rj = 0
            for i in range(ndrop):
                _incref(Py_None)
                slots[wj] = Py_None
                wj += 1
                if wj == alloc:
                    wj = 0
        self._size = size - ndrop
        self.decimation_events += 1
        self.last_decimation_utilization = <double>self._size / <double>self._cap
        for i in range(ndrop):
            _decref(scratch[i])
        free(scratch)
        return 0

    @cython.binding(False)
    def push(self, x, priority=None):
        """push(x, priority=None) -> None: push under the backpressure policy."""
        cdef double u
        cdef bint drop
        if self._protect is not None and priority is not None:
            check_priority(priority)
        if self._cap == 0:
            raise RuntimeError(f"{type(self).__name__}.__init__ was not called")
        self.push_count += 1
        if self._size >= self._thr_size:
            u = <double>self._size / <double>self._cap
            if self._protect is not None and priority is not None and priority >= self._protect:
                drop = False
            elif self._custom_drop or _patched(self, "_should_drop_item"):
                drop = bool(self._should_drop_item(x, priority, u))
            else:
                drop = self._drop_rule(u)
            if drop:
                self.drops_total += 1
                return
        self._append(x)
        if self._size >= self._cap:
            if self._custom_decimation or _patched(self, "_apply_decimation"):
                self._apply_decimation()
            else:
                self._decimate()

    def _should_drop_item(self, item, priority, utilization):
        """Built-in drop rule (override in a subclass to change the policy)."""
        return self._drop_rule(float(utilization))

    def _apply_decimation(self):
        """Built-in decimation (override in a subclass to change the policy)."""
        self._decimate()

    def get_backpressure_stats(self):
        """The reference's 11-key statistics dict."""
        cdef _Stats st = self._stats()
        return {
            "capacity": st.capacity,
            "current_size": st.size,
            "utilization": st.utilization,
            "pressure_threshold": st.threshold,
            "total_pushes": st.pushes,
            "total_drops": st.drops,
            "drop_rate": st.drop_rate,
            "decimation_events": st.events,
            "decimation_factor": st.factor,
            "decimation_strategy": self._strategy_name,
            "last_decimation_utilization": st.last_utilization,
        }

    cdef inline _Stats _stats(self):
        """The numbers of :meth:`get_backpressure_stats`, read at once."""
        cdef _Stats st
        cdef Py_ssize_t pushes = self.push_count
        st.capacity = self._cap
        st.size = self._size
        st.utilization = <double>self._size / <double>self._cap if self._cap else 0.0
        st.threshold = self._threshold
        st.pushes = pushes
        st.drops = self.drops_total
        st.drop_rate = <double>self.drops_total / <double>(pushes if pushes > 1 else 1)
        st.events = self.decimation_events
        st.factor = self._factor
        st.last_utilization = self.last_decimation_utilization
        return st

    cdef bytes _json_float(self, int i, double v, object encode):
        """``encode(v)``, remembered for field ``i`` while its value keeps the same bits."""
        cdef uint64_t bits
        memcpy(&bits, &v, sizeof(double))
        cached = self._json_floats[i]
        if cached is not None and self._json_bits[i] == bits:
            return <bytes>cached
        out = encode(v)
        if type(out) is not bytes:
            raise TypeError(f"encode must return bytes, got {type(out).__name__}")
        self._json_floats[i] = out
        self._json_bits[i] = bits
        return <bytes>out

    def _backpressure_json(self, encode, bytes head not None, bytes tail not None):
        """_backpressure_json(encode, head, tail) -> bytes or None

        ``head + J + tail`` where ``J`` is :meth:`get_backpressure_stats` as a compact
        JSON object (no spaces), each float and the strategy name written as
        ``encode(value)`` (bytes; the caller's JSON encoder of scalars), the integers in
        decimal: the bytes a compact encoder such as orjson writes for the dict, built
        without it.  None when ``get_backpressure_stats`` is overridden (by a subclass or
        on the instance): the caller then encodes that method's dict.  The numbers are
        read at once, before ``encode`` runs."""
        cdef _Stats st
        cdef char ints[6][24]
        cdef Py_ssize_t nint[6]
        cdef Py_ssize_t total, k
        cdef char *p
        if self._custom_stats or _patched(self, "get_backpressure_stats"):
            return None
        st = self._stats()
        name = self._strategy_name
        if encode is not self._json_encode:  # another encoder: forget the other's encodings
            self._json_floats = [None, None, None, None]
            self._json_strategy_of = None
            self._json_util = None
            self._json_encode = encode
        if 0 < st.capacity <= _JSON_UTIL_MAX and 0 <= st.size <= st.capacity:
            # (the utilization changes with every push that is kept: remembered per size)
            if self._json_util is None or self._json_util_cap != st.capacity:
                self._json_util = [None] * (st.capacity + 1)
                self._json_util_cap = st.capacity
            fu = self._json_util[st.size]
            if fu is None:
                fu = encode(st.utilization)
                if type(fu) is not bytes:
                    raise TypeError(f"encode must return bytes, got {type(fu).__name__}")
                self._json_util[st.size] = fu
        else:
            fu = self._json_float(0, st.utilization, encode)
        ft = self._json_float(1, st.threshold, encode)
        fr = self._json_float(2, st.drop_rate, encode)
        fl = self._json_float(3, st.last_utilization, encode)
        if self._json_strategy_of is not name:
            sj = encode(name)
            if type(sj) is not bytes:
                raise TypeError(f"encode must return bytes, got {type(sj).__name__}")
            self._json_strategy = sj
            self._json_strategy_of = name
        sj = self._json_strategy
        nint[0] = _put_ssize(ints[0], st.capacity)
        nint[1] = _put_ssize(ints[1], st.size)
        nint[2] = _put_ssize(ints[2], st.pushes)
        nint[3] = _put_ssize(ints[3], st.drops)
        nint[4] = _put_ssize(ints[4], st.events)
        nint[5] = _put_ssize(ints[5], st.factor)
        total = (len(head) + len(tail) + _STATS_KEYS_LEN + len(<bytes>fu) + len(<bytes>ft) + len(<bytes>fr)
                 + len(<bytes>fl) + len(<bytes>sj))
        for k in range(6):
            total += nint[k]
        out = PyBytes_FromStringAndSize(NULL, total)
        p = PyBytes_AS_STRING(out)
        p = _put_bytes(p, head)
        p = _put_bytes(p, b'{"capacity":')
        p = _put_raw(p, ints[0], nint[0])
        p = _put_bytes(p, b',"current_size":')
        p = _put_raw(p, ints[1], nint[1])
        p = _put_bytes(p, b',"utilization":')
        p = _put_bytes(p, fu)
        p = _put_bytes(p, b',"pressure_threshold":')
        p = _put_bytes(p, ft)
        p = _put_bytes(p, b',"total_pushes":')
        p = _put_raw(p, ints[2], nint[2])
        p = _put_bytes(p, b',"total_drops":')
        p = _put_raw(p, ints[3], nint[3])
        p = _put_bytes(p, b',"drop_rate":')
        p = _put_bytes(p, fr)
        p = _put_bytes(p, b',"decimation_events":')
        p = _put_raw(p, ints[4], nint[4])
        p = _put_bytes(p, b',"decimation_factor":')
        p = _put_raw(p, ints[5], nint[5])
        p = _put_bytes(p, b',"decimation_strategy":')
        p = _put_bytes(p, sj)
        p = _put_bytes(p, b',"last_decimation_utilization":')
        p = _put_bytes(p, fl)
        p = _put_bytes(p, b'}')
        p = _put_bytes(p, tail)
        return out

    @property
    def drop_rate(self):
        """Pushes dropped so far as a share of all pushes: ``drops_total / max(1, push_count)``
        (``get_backpressure_stats()["drop_rate"]`` without building the dict)."""
        cdef Py_ssize_t pushes = self.push_count
        return <double>self.drops_total / <double>(pushes if pushes > 1 else 1)

    def reset_stats(self):
        """Zero the counters; the contents are untouched."""
        self.drops_total = 0
        self.decimation_events = 0
        self.push_count = 0
        self.last_decimation_utilization = 0.0

    def __reduce__(self):
        return (_copyreg.__newobj__, (type(self),), ring_state(self, True))

    def __setstate__(self, state):
        st = parse_ring_state(state, True)
        self._reset_storage()
        self._cap = st["capacity"]
        self._threshold = st["pressure_threshold"]
        self._factor = st["decimation_factor"]
        name = st["decimation_strategy"]
        self._strategy = _STRATEGY_CODE[name]
        self._strategy_name = name
        self._protect = st["protect_priority"]
        self._derive()
        for x in st["items"]:
            self._append(x)
        self.drops_total = st["drops_total"]
        self.decimation_events = st["decimation_events"]
        self.push_count = st["push_count"]
        self.last_decimation_utilization = st["last_decimation_utilization"]
        restore_attrs(self, st["attrs"])

    def __repr__(self):
        return (f"{type(self).__name__}(size={self._size}, capacity={self._cap}, "
                f"strategy={self._strategy_name!r}, drops={self.drops_total})")


_BASE_SHOULD_DROP = DecimatingRing._should_drop_item
_BASE_APPLY_DECIMATION = DecimatingRing._apply_decimation
_BASE_GET_STATS = DecimatingRing.get_backpressure_stats


# --- SpscRing ------------------------------------------------------------------

cdef enum:
    K_F64 = 0
    K_F32 = 1
    K_I64 = 2


cdef bint _format_is(const char *fmt, int kind):
    """True if a buffer format string is the native-order type of ``kind``."""
    cdef char c
    if fmt == NULL:
        return False
    if fmt[0] == b'=' or fmt[0] == b'@' or fmt[0] == b'<':  # x86-64/aarch64: little endian
        fmt += 1
    c = fmt[0]
    if fmt[1] != 0:
        return False
    if kind == K_F64:
        return c == b'd'
    if kind == K_F32:
        return c == b'f'
    return c == b'l' or c == b'q'


cdef class SpscRing:
    """SpscRing(capacity, width=1, dtype="float64")

    Lock-free single-producer / single-consumer ring of fixed-width numeric
    records (``dtype`` float64, float32 or int64; ``capacity`` rounded up to a
    power of two).  One thread pushes, one thread pops, no locks; batch copies
    run with the GIL released.  Every accepted record is delivered once, in
    order, unchanged.  A second concurrent producer (or consumer) is detected
    and refused with :class:`RuntimeError`.
    """

    cdef lk_spsc *_r  # own allocation: the struct wants 64-byte alignment, this object has 16
    cdef bint _ready
    cdef Py_ssize_t _width
    cdef int _kind
    cdef size_t _itemsize
    cdef object _dtype
    cdef object _empty

    def __cinit__(self, *args, **kwargs):
        self._ready = False

    def __init__(self, capacity, width=1, dtype="float64"):
        cap, w, dt = check_spsc_args(capacity, width, dtype)
        if self._ready:
            raise RuntimeError("SpscRing is already initialised")
        self._width = w
        self._dtype = dt
        self._kind = {"float64": K_F64, "float32": K_F32, "int64": K_I64}[dt.name]
        self._itemsize = dt.itemsize
        self._empty = np.empty
        # check_spsc_args refused any capacity x width x itemsize beyond Py_ssize_t
        self._r = lk_spsc_new(<uint64_t>cap, self._itemsize * <size_t>w)
        if self._r == NULL:
            raise MemoryError(f"cannot allocate an SpscRing of {cap} x {w} {dt.name}")
        self._ready = True

    def __dealloc__(self):
        if self._r != NULL:
            lk_spsc_free(self._r)
            self._r = NULL

    cdef inline int _check(self) except -1:
        if not self._ready:
            raise RuntimeError("SpscRing.__init__ was not called")
        return 0

    @property
    def capacity(self):
        """Capacity in records (a power of two)."""
        self._check()
        return self._r.capacity

    @property
    def width(self):
        """Values per record."""
        return self._width

    @property
    def dtype(self):
        """numpy dtype of the values."""
        return self._dtype

    @property
    def dropped(self):
        """Records refused because the ring was full."""
        self._check()
        return lk_spsc_dropped(self._r)

    @property
    def pushed(self):
        """Records accepted so far."""
        self._check()
        return lk_spsc_pushed(self._r)

    @property
    def popped(self):
        """Records delivered so far."""
        self._check()
        return lk_spsc_popped(self._r)

    def __len__(self):
        self._check()
        return lk_spsc_size(self._r)

    cdef uint64_t _push_raw(self, const void *src, uint64_t n, bint release) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t k
        if not lk_spsc_enter(self._r, 0):
            raise RuntimeError("SpscRing: another producer is pushing concurrently (single producer only)")
        if release:
            with nogil:
                k = lk_spsc_push(self._r, src, n)
        else:
            k = lk_spsc_push(self._r, src, n)
        lk_spsc_leave(self._r, 0)
        return k

    @cython.binding(False)
    def push(self, record):
        """push(record) -> bool: copy one record in; False (counted in ``dropped``) when full."""
        cdef double d
        cdef float f
        cdef int64_t q
        cdef bytes raw
        self._check()
        if self._width == 1 and (type(record) is float or type(record) is int):
            if self._kind == K_I64:
                if type(record) is float:
                    d = record
                    if not isfinite(d) or floor(d) != d:
                        raise ValueError("record for an int64 ring must hold integral values")
                    if not (-9.223372036854775808e18 <= d < 9.223372036854775808e18):
                        raise ValueError("record out of int64 range")
                    q = <int64_t>d
                else:
                    try:
                        q = record
                    except OverflowError:
                        raise ValueError("record out of int64 range") from None
                return self._push_raw(&q, 1, False) == 1
            try:
                d = record
            except OverflowError:
                raise ValueError("record out of float range") from None
            if self._kind == K_F64:
                return self._push_raw(&d, 1, False) == 1
            f = <float>d
            return self._push_raw(&f, 1, False) == 1
        raw = as_record(self, record).tobytes()
        return self._push_raw(<const char *>raw, 1, False) == 1

    def push_many(self, array):
        """push_many(array) -> int: copy as many rows of a C-contiguous ``(n, width)``
        (or ``(n,)`` when width is 1) array as fit, GIL released; the rest count as dropped."""
        cdef Py_buffer view
        cdef uint64_t n, k
        self._check()
        if not PyObject_CheckBuffer(array):
            raise TypeError(f"array must be a numpy array or buffer, got {type(array).__name__}")
        PyObject_GetBuffer(array, &view, PyBUF_RECORDS_RO)
        try:
            if not _format_is(view.format, self._kind) or <size_t>view.itemsize != self._itemsize:
                got = np.asarray(array).dtype
                raise TypeError(f"array dtype must be {self._dtype.name}, got {got}")
            if not PyBuffer_IsContiguous(&view, b'C'):
                raise ValueError("array must be C-contiguous")
            if view.ndim == 1 and self._width == 1:
                n = view.shape[0]
            elif view.ndim == 2 and view.shape[1] == self._width:
                n = view.shape[0]
            else:
                shape = tuple(view.shape[i] for i in range(view.ndim))
                want = f"(n, {self._width})" + (" or (n,)" if self._width == 1 else "")
                raise ValueError(f"array must have shape {want}, got {shape}")
            k = self._push_raw(view.buf, n, n > 0)
        finally:
            PyBuffer_Release(&view)
        return k

    def pop_many(self, max_rows=None):
        """pop_many(max_rows=None) -> numpy.ndarray: up to ``max_rows`` records
        (all available if None), oldest first, shape ``(k, width)`` or ``(k,)``."""
        cdef uint64_t avail, k
        cdef Py_buffer view
        self._check()
        if max_rows is not None:
            if type(max_rows) is bool or not isinstance(max_rows, int):
                raise TypeError(f"max_rows must be None or an int, got {type(max_rows).__name__}")
            if max_rows < 0:
                raise ValueError(f"max_rows must be >= 0, got {max_rows}")
        if not lk_spsc_enter(self._r, 1):
            raise RuntimeError("SpscRing: another consumer is popping concurrently (single consumer only)")
        try:
            avail = lk_spsc_size(self._r)  # only grows until we pop: we are the consumer
            if max_rows is not None and max_rows < avail:  # compared as Python ints: any size
                avail = <uint64_t>max_rows
            shape = <object>(avail,) if self._width == 1 else <object>(avail, self._width)
            out = self._empty(shape, self._dtype)
            if avail:
                PyObject_GetBuffer(out, &view, PyBUF_SIMPLE | PyBUF_WRITABLE)
                with nogil:
                    k = lk_spsc_pop(self._r, view.buf, avail)
                PyBuffer_Release(&view)
        finally:
            lk_spsc_leave(self._r, 1)
        return out

    @cython.binding(False)
    def pop(self):
        """pop() -> record or None: one record (a Python scalar when width is 1,
        else a 1-D array), or None when empty."""
        cdef double d
        cdef float f
        cdef int64_t q
        cdef uint64_t k
        self._check()
        if self._width != 1:
            if lk_spsc_size(self._r) == 0:
                return None
            rows = self.pop_many(1)
            return rows[0] if len(rows) else None
        if not lk_spsc_enter(self._r, 1):
            raise RuntimeError("SpscRing: another consumer is popping concurrently (single consumer only)")
        if self._kind == K_F64:
            k = lk_spsc_pop(self._r, &d, 1)
        elif self._kind == K_F32:
            k = lk_spsc_pop(self._r, &f, 1)
            d = f
        else:
            k = lk_spsc_pop(self._r, &q, 1)
        lk_spsc_leave(self._r, 1)
        if k == 0:
            return None
        if self._kind == K_I64:
            return q
        return d

    def __reduce__(self):
        raise TypeError(SPSC_PICKLE_ERROR)

    def __repr__(self):
        if not self._ready:
            return "SpscRing(<uninitialised>)"
        return (f"SpscRing(size={lk_spsc_size(self._r)}, capacity={self._r.capacity}, "
                f"width={self._width}, dtype={self._dtype.name!r})")
