/* Monotonic clock, absolute sleep and p95: see clock.h. */
#define _GNU_SOURCE
#include "clock.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t lk_clock_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int lk_clock_sleep_until_ns(int64_t deadline_ns) {
    struct timespec ts;
    int rc;
    if (deadline_ns <= lk_clock_now_ns())
        return 0;
    ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
    ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
    rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    return rc == EINTR ? EINTR : 0;
}

void lk_clock_yield(void) {}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double lk_clock_p95(const double *samples, size_t n, double *scratch) {
    size_t idx;
    memcpy(scratch, samples, n * sizeof(double));
    qsort(scratch, n, sizeof(double), cmp_double);
    idx = (size_t)ceil(0.95 * (double)n);
    return scratch[idx > 0 ? idx - 1 : 0];
}
