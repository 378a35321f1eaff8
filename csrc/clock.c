/* Monotonic clock, absolute sleep and p95: see clock.h. */
#define _GNU_SOURCE /* clock_nanosleep, TIMER_ABSTIME on glibc */
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

/* Absolute sleeps need clock_nanosleep(TIMER_ABSTIME), which Linux and the
 * BSDs have and macOS does not.  Elsewhere a relative nanosleep of the time
 * left stands in: the deadline is still absolute (recomputed per call), so
 * only a single wake-up can be late, never the schedule. */
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
#define LK_HAVE_ABS_SLEEP 1
#else
#define LK_HAVE_ABS_SLEEP 0
#endif

int lk_clock_sleep_until_ns(int64_t deadline_ns) {
    struct timespec ts;
    int64_t now = lk_clock_now_ns();
    if (deadline_ns <= now)
        return 0;
#if LK_HAVE_ABS_SLEEP
    ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
    ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
    return clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR ? EINTR : 0;
#else
    /* portable loop: sleep the remainder until the monotonic clock says the
     * deadline passed (nanosleep may wake early or be measured on another clock) */
    while (deadline_ns > now) {
        int64_t left = deadline_ns - now;
        ts.tv_sec = (time_t)(left / 1000000000LL);
        ts.tv_nsec = (long)(left % 1000000000LL);
        if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
            return EINTR;
        now = lk_clock_now_ns();
    }
    return 0;
#endif
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
