/* Two-thread stress of the SPSC core, meant to run under -fsanitize=thread.
 * The producer pushes records carrying a running sequence number in batches
 * of varying size; the consumer pops in batches of varying size and checks
 * that every record arrives once, in order, unchanged.  Exit 0 = pass. */
#include "spsc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define TOTAL 2000000ULL
#define WIDTH 3

static lk_spsc ring;

static void *producer(void *arg) {
    double batch[257 * WIDTH];
    uint64_t next = 0;
    (void)arg;
    while (next < TOTAL) {
        uint64_t n = 1 + (next % 257), i, k;
        if (n > TOTAL - next)
            n = TOTAL - next;
        for (i = 0; i < n; i++) {
            batch[i * WIDTH + 0] = (double)(next + i);
            batch[i * WIDTH + 1] = -(double)(next + i);
            batch[i * WIDTH + 2] = 0.5 * (double)(next + i);
        }
        k = lk_spsc_push(&ring, batch, n);
        next += k; /* the refused tail of the batch is rebuilt next round */
    }
    return NULL;
}

int main(void) {
    pthread_t th;
    double out[301 * WIDTH];
    uint64_t expect = 0, round = 0;
    if (lk_spsc_init(&ring, 1000, sizeof(double) * WIDTH) != 0 || ring.capacity != 1024) {
        fprintf(stderr, "init failed\n");
        return 1;
    }
    pthread_create(&th, NULL, producer, NULL);
    while (expect < TOTAL) {
        uint64_t want = 1 + (round++ % 301), k, i;
        k = lk_spsc_pop(&ring, out, want);
        for (i = 0; i < k; i++) {
            double s = (double)(expect + i);
            if (out[i * WIDTH] != s || out[i * WIDTH + 1] != -s || out[i * WIDTH + 2] != 0.5 * s) {
                fprintf(stderr, "mismatch at record %llu\n", (unsigned long long)(expect + i));
                return 2;
            }
        }
        expect += k;
    }
    pthread_join(th, NULL);
    if (lk_spsc_size(&ring) != 0 || lk_spsc_pushed(&ring) != TOTAL || lk_spsc_popped(&ring) != TOTAL) {
        fprintf(stderr, "counters wrong\n");
        return 3;
    }
    printf("spsc tsan stress: %llu records in order, dropped-on-full %llu: 1 passed, 0 failed\n",
           (unsigned long long)TOTAL, (unsigned long long)lk_spsc_dropped(&ring));
    lk_spsc_destroy(&ring);
    return 0;
}
