/*
 * clock.h - the two clocks emm reads: monotonic for deadlines and spins,
 * realtime for file times. Stateless, so no locking.
 */
#ifndef EMM_CLOCK_H
#define EMM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
emm_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t
emm_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
