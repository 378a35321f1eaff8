# Cython declarations of the lock-free SPSC core (csrc/spsc.h), so other
# Cython modules can `from lukhas_fast._spsc cimport lk_spsc, lk_spsc_push, ...`
# (add lukhas_fast.get_include() to the C include path).
from libc.stdint cimport uint64_t

cdef extern from "spsc.h" nogil:
    ctypedef struct lk_spsc:
        uint64_t capacity
        uint64_t mask
        size_t record_size
        unsigned char *data
    int lk_spsc_init(lk_spsc *r, uint64_t capacity, size_t record_size)
    void lk_spsc_destroy(lk_spsc *r)
    lk_spsc *lk_spsc_new(uint64_t capacity, size_t record_size)
    void lk_spsc_free(lk_spsc *r)
    uint64_t lk_spsc_push(lk_spsc *r, const void *src, uint64_t n)
    uint64_t lk_spsc_pop(lk_spsc *r, void *dst, uint64_t max)
    uint64_t lk_spsc_size(lk_spsc *r)
    uint64_t lk_spsc_pushed(lk_spsc *r)
    uint64_t lk_spsc_popped(lk_spsc *r)
    uint64_t lk_spsc_dropped(lk_spsc *r)
    int lk_spsc_enter(lk_spsc *r, int consumer)
    void lk_spsc_leave(lk_spsc *r, int consumer)
