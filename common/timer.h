/* Monotonic wall-clock seconds, for deadlines, rates and benchmarks. */
#ifndef PSREC_COMMON_TIMER_H
#define PSREC_COMMON_TIMER_H

#include <time.h>

/* Seconds on CLOCK_MONOTONIC (never jumps with the wall clock); only differences mean
 * anything. */
static inline double timer_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
