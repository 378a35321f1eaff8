/* Lock-free SPSC ring: see spsc.h for the protocol. */
#include "spsc.h"

#include <stdlib.h>
#include <string.h>

int lk_spsc_init(lk_spsc *r, uint64_t capacity, size_t record_size) {
    uint64_t cap = 1;
    memset(r, 0, sizeof(*r));
    if (capacity == 0 || record_size == 0 || capacity > ((uint64_t)1 << 40))
        return -1;
    while (cap < capacity)
        cap <<= 1;
    if (cap > SIZE_MAX / record_size)
        return -1;
    /* Lazily committed by the OS: untouched pages cost nothing. */
    r->data = (unsigned char *)calloc((size_t)cap, record_size);
    if (r->data == NULL)
        return -1;
    r->capacity = cap;
    r->mask = cap - 1;
    r->record_size = record_size;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->dropped, 0);
    atomic_init(&r->producer_busy, 0);
    atomic_init(&r->consumer_busy, 0);
    return 0;
}

void lk_spsc_destroy(lk_spsc *r) {
    free(r->data);
    r->data = NULL;
}

lk_spsc *lk_spsc_new(uint64_t capacity, size_t record_size) {
    /* aligned_alloc wants a size that is a multiple of the alignment */
    size_t size = (sizeof(lk_spsc) + LK_SPSC_CACHELINE - 1) & ~(size_t)(LK_SPSC_CACHELINE - 1);
    lk_spsc *r = (lk_spsc *)aligned_alloc(_Alignof(lk_spsc), size);
    if (r == NULL)
        return NULL;
    if (lk_spsc_init(r, capacity, record_size) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void lk_spsc_free(lk_spsc *r) {
    if (r == NULL)
        return;
    lk_spsc_destroy(r);
    free(r);
}

/* Copy n records between the ring slot of counter `pos` and a flat buffer,
 * splitting at the wrap point: at most two memcpy calls. */
static inline void copy_in(lk_spsc *r, uint64_t pos, const unsigned char *src, uint64_t n) {
    uint64_t start = pos & r->mask;
    uint64_t first = r->capacity - start;
    if (first > n)
        first = n;
    memcpy(r->data + start * r->record_size, src, (size_t)(first * r->record_size));
    if (n > first)
        memcpy(r->data, src + first * r->record_size, (size_t)((n - first) * r->record_size));
}

static inline void copy_out(lk_spsc *r, uint64_t pos, unsigned char *dst, uint64_t n) {
    uint64_t start = pos & r->mask;
    uint64_t first = r->capacity - start;
    if (first > n)
        first = n;
    memcpy(dst, r->data + start * r->record_size, (size_t)(first * r->record_size));
    if (n > first)
        memcpy(dst + first * r->record_size, r->data, (size_t)((n - first) * r->record_size));
}

uint64_t lk_spsc_push(lk_spsc *r, const void *src, uint64_t n) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed); /* we own it */
    uint64_t free_slots = r->capacity - (head - r->cached_tail);
    uint64_t k;
    if (free_slots < n) {
        /* Only re-read the consumer's counter when the cached view says full:
         * keeps the shared cache line out of the fast path. */
        r->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        free_slots = r->capacity - (head - r->cached_tail);
    }
    k = n < free_slots ? n : free_slots;
    if (k)
        copy_in(r, head, (const unsigned char *)src, k);
    atomic_store_explicit(&r->head, head + k, memory_order_release);
    if (k < n)
        atomic_store_explicit(&r->dropped,
                              atomic_load_explicit(&r->dropped, memory_order_relaxed) + (n - k),
                              memory_order_relaxed);
    return k;
}

uint64_t lk_spsc_pop(lk_spsc *r, void *dst, uint64_t max) {
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed); /* we own it */
    uint64_t avail = r->cached_head - tail;
    uint64_t k;
    if (avail < max) {
        r->cached_head = atomic_load_explicit(&r->head, memory_order_acquire);
        avail = r->cached_head - tail;
    }
    k = max < avail ? max : avail;
    if (k)
        copy_out(r, tail, (unsigned char *)dst, k);
    atomic_store_explicit(&r->tail, tail + k, memory_order_release);
    return k;
}
