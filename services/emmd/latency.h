/*
 * latency.h - fault latency histograms: log2 buckets of nanoseconds with
 * lock-free counters. Bucket i (1..EMMD_HIST_BUCKETS-2) counts latencies in
 * [2^i, 2^(i+1)) ns; bucket 0 everything below 2 ns, the last one everything
 * from 2^(EMMD_HIST_BUCKETS-1) ns (~550 s) up. Recording is one relaxed
 * atomic add per counter, from any thread; readers take a snapshot (the
 * counters are read one by one, so a snapshot taken while faults complete may
 * be off by the faults of that instant, never torn within a counter).
 */
#ifndef EMMD_LATENCY_H
#define EMMD_LATENCY_H

#include <stdatomic.h>
#include <stdint.h>

#define EMMD_HIST_BUCKETS 40

struct emmd_hist {
    atomic_uint_fast64_t bucket[EMMD_HIST_BUCKETS];
    atomic_uint_fast64_t count, sum_ns;
};

struct emmd_hist_snap {
    uint64_t bucket[EMMD_HIST_BUCKETS];
    uint64_t count, sum_ns;
};

/* Monotonic nanoseconds, for start and end stamps. */
uint64_t emmd_now_ns(void);
void emmd_hist_record(struct emmd_hist *h, uint64_t ns);
void emmd_hist_snap(struct emmd_hist *h, struct emmd_hist_snap *s);
/* The same from bare counters of this layout (the kernel's pager latency,
 * vm_object.h's struct vm_lat_hist). */
void emmd_hist_snap_counters(atomic_uint_fast64_t *bucket, atomic_uint_fast64_t *sum_ns,
                             struct emmd_hist_snap *s);
/* The q-quantile (0 < q <= 1) in nanoseconds, interpolated linearly inside
 * its bucket; 0 for an empty histogram. */
double emmd_hist_quantile(const struct emmd_hist_snap *s, double q);
/* The upper bound of bucket i in nanoseconds (2^(i+1)); the last is +Inf. */
double emmd_hist_upper_ns(int i);

#endif
