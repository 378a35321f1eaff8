/* Lock-free single-producer / single-consumer ring of fixed-size records.
 *
 * One thread pushes, one thread pops; neither takes a lock.  `head` counts
 * records ever written and `tail` records ever read; both only grow, so
 * `head - tail` is the fill level and the slot of counter c is c & mask.
 * The producer publishes data with a release store of head; the consumer
 * reads head with acquire before copying, and publishes freed space with a
 * release store of tail that the producer reads with acquire.
 *
 * Plain C11 (<stdatomic.h>), no Python: usable from other C code and, via
 * lukhas_fast/_spsc.pxd, from Cython.
 */
#ifndef LUKHAS_SPSC_H
#define LUKHAS_SPSC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LK_SPSC_CACHELINE 64

typedef struct lk_spsc {
    /* producer-owned line */
    _Alignas(LK_SPSC_CACHELINE) _Atomic uint64_t head;   /* records written */
    _Atomic uint64_t dropped;                             /* refused by push (written by producer only) */
    uint64_t cached_tail;                                 /* producer's last view of tail */
    _Atomic int producer_busy;                            /* see lk_spsc_enter */
    /* consumer-owned line */
    _Alignas(LK_SPSC_CACHELINE) _Atomic uint64_t tail;   /* records read */
    uint64_t cached_head;                                 /* consumer's last view of head */
    _Atomic int consumer_busy;
    /* read-only after init */
    _Alignas(LK_SPSC_CACHELINE) uint64_t capacity;       /* records, a power of two */
    uint64_t mask;
    size_t record_size;                                   /* bytes per record */
    unsigned char *data;
} lk_spsc;

/* Capacity is rounded up to a power of two (>= 1).  Returns 0 on success,
 * -1 on allocation failure or overflow.  `r` must have the struct's real
 * alignment (LK_SPSC_CACHELINE): a static or automatic lk_spsc has it, one
 * embedded in a heap object (e.g. a Python object, 16-byte aligned) need
 * not -- use lk_spsc_new there. */
int lk_spsc_init(lk_spsc *r, uint64_t capacity, size_t record_size);
void lk_spsc_destroy(lk_spsc *r);

/* A ring in its own allocation with the struct's alignment (aligned_alloc),
 * initialised as by lk_spsc_init; NULL on failure.  Free with lk_spsc_free. */
lk_spsc *lk_spsc_new(uint64_t capacity, size_t record_size);
void lk_spsc_free(lk_spsc *r);

/* Producer: copy up to n records from src; returns how many were taken.
 * Records that did not fit are added to `dropped`.  Never blocks, never
 * overwrites unread data. */
uint64_t lk_spsc_push(lk_spsc *r, const void *src, uint64_t n);

/* Consumer: copy up to max records into dst, oldest first; returns count. */
uint64_t lk_spsc_pop(lk_spsc *r, void *dst, uint64_t max);

/* Either side: records currently held (a snapshot). */
static inline uint64_t lk_spsc_size(lk_spsc *r) {
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    return h - t;
}

static inline uint64_t lk_spsc_pushed(lk_spsc *r) {
    return atomic_load_explicit(&r->head, memory_order_acquire);
}

static inline uint64_t lk_spsc_popped(lk_spsc *r) {
    return atomic_load_explicit(&r->tail, memory_order_acquire);
}

static inline uint64_t lk_spsc_dropped(lk_spsc *r) {
    return atomic_load_explicit(&r->dropped, memory_order_relaxed);
}

/* Misuse detector for bindings that let any thread call either side: each
 * side is "entered" for the duration of a push/pop.  Returns 0 if that side
 * is already busy (a second concurrent producer or consumer). */
static inline int lk_spsc_enter(lk_spsc *r, int consumer) {
    _Atomic int *flag = consumer ? &r->consumer_busy : &r->producer_busy;
    return atomic_exchange_explicit(flag, 1, memory_order_acquire) == 0;
}

static inline void lk_spsc_leave(lk_spsc *r, int consumer) {
    atomic_store_explicit(consumer ? &r->consumer_busy : &r->producer_busy, 0, memory_order_release);
}

#ifdef __cplusplus
}
#endif
#endif /* LUKHAS_SPSC_H */
