/* Monotonic time and absolute-deadline sleep for the compiled tick loop,
 * plus the p95 helper.  No Python here: the loop sleeps with the GIL
 * released. */
#ifndef LUKHAS_CLOCK_H
#define LUKHAS_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t lk_clock_now_ns(void);

/* Sleep until the absolute CLOCK_MONOTONIC time `deadline_ns` (clock_nanosleep
 * with TIMER_ABSTIME on Linux/BSD, a nanosleep loop on the time left on other
 * POSIX systems; either way a late wake-up never shifts later deadlines).
 * Returns 0 when the deadline has passed, or EINTR if a signal arrived
 * first (the caller checks for KeyboardInterrupt and sleeps again). */
int lk_clock_sleep_until_ns(int64_t deadline_ns);

/* Called with the GIL released by a loop that is not sleeping, so that
 * threads waiting for the GIL get it: nothing to do in C, the release itself
 * is the point (an out-of-line call keeps the compiler from eliding it). */
void lk_clock_yield(void);

/* The p95 rule of the reference over n samples (n >= 1): the value at sorted
 * index ceil(0.95 * n) - 1.  `scratch` must hold n doubles. */
double lk_clock_p95(const double *samples, size_t n, double *scratch);

#ifdef __cplusplus
}
#endif
#endif /* LUKHAS_CLOCK_H */
