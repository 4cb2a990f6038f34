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

/* The time ms milliseconds from now on clock, for pthread_cond_timedwait (whose
 * condition must use that clock). */
static inline struct timespec
emm_deadline_after_ms(clockid_t clock, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static inline int64_t
emm_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
