/*
 * latency.c - log2 latency histograms (latency.h). No locks: relaxed atomic
 * counters, snapshots read them one by one.
 */
#include "latency.h"

#include <math.h>
#include <time.h>

uint64_t
emmd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
emmd_hist_record(struct emmd_hist *h, uint64_t ns)
{
    int i = ns < 2 ? 0 : 63 - __builtin_clzll(ns);
    if (i >= EMMD_HIST_BUCKETS)
        i = EMMD_HIST_BUCKETS - 1;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void
emmd_hist_snap_counters(atomic_uint_fast64_t *bucket, atomic_uint_fast64_t *sum_ns,
                        struct emmd_hist_snap *s)
{
    s->count = 0;
    for (int i = 0; i < EMMD_HIST_BUCKETS; i++) {
        s->bucket[i] = atomic_load_explicit(&bucket[i], memory_order_relaxed);
        s->count += s->bucket[i]; /* the buckets' sum: consistent with them */
    }
    s->sum_ns = atomic_load_explicit(sum_ns, memory_order_relaxed);
}

void
emmd_hist_snap(struct emmd_hist *h, struct emmd_hist_snap *s)
{
    emmd_hist_snap_counters(h->bucket, &h->sum_ns, s);
}

double
emmd_hist_upper_ns(int i)
{
    return i >= EMMD_HIST_BUCKETS - 1 ? INFINITY : ldexp(1.0, i + 1);
}

double
emmd_hist_quantile(const struct emmd_hist_snap *s, double q)
{
    if (s->count == 0)
        return 0;
    double rank = q * (double)s->count, cum = 0;
    for (int i = 0; i < EMMD_HIST_BUCKETS; i++) {
        if (s->bucket[i] == 0)
            continue;
        if (cum + (double)s->bucket[i] >= rank) {
            double lo = i == 0 ? 0 : ldexp(1.0, i), hi = ldexp(1.0, i + 1);
            return lo + (hi - lo) * (rank - cum) / (double)s->bucket[i];
        }
        cum += (double)s->bucket[i];
    }
    return ldexp(1.0, EMMD_HIST_BUCKETS);
}
