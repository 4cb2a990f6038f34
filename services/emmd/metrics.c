/*
 * metrics.c - emmd's counters and gauges in the Prometheus text exposition
 * format (version 0.0.4): `emmctl metrics` prints them (for node_exporter's
 * textfile collector) and, with metrics-listen, GET /metrics serves them
 * (metrics_http.c). Names follow Prometheus conventions: an emm_ prefix, base
 * units (bytes, seconds), counters end in _total, one label fs="NAME" per
 * filesystem, the fault latency and the pager latency as histograms in seconds.
 *
 * Locking: reads atomics and walks each filesystem's nodes under fs->lock
 * (emmd_fs_totals), like `emmctl info`; writes to a caller's FILE only.
 */
#include "emmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LD(x) ((unsigned long long)atomic_load(&(x)))

/* The finite histogram buckets exported: 2^10 ns (~1 us) .. 2^35 ns (~34 s). */
#define FIRST_BUCKET 9
#define LAST_BUCKET 34

static void
family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* fs names are [A-Za-z0-9_-]: nothing to escape in a label value */
static void
per_fs(FILE *out, struct emmd *d, const char *name, const char *type, const char *help,
       uint64_t (*get)(struct emmd_fs *))
{
    family(out, name, type, help);
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        fprintf(out, "%s{fs=\"%s\"} %llu\n", name, d->fs[i].cfg->name,
                (unsigned long long)get(&d->fs[i]));
}

static uint64_t g_faults(struct emmd_fs *fs) { return LD(fs->reads); }
static uint64_t g_read_bytes(struct emmd_fs *fs) { return LD(fs->read_bytes); }
static uint64_t g_writes(struct emmd_fs *fs) { return LD(fs->writes); }
static uint64_t g_write_bytes(struct emmd_fs *fs) { return LD(fs->write_bytes); }
static uint64_t g_pageouts(struct emmd_fs *fs) { return LD(fs->pstats.pageouts); }
static uint64_t g_double_paged(struct emmd_fs *fs) { return LD(fs->pstats.double_paged); }
static uint64_t g_overdue(struct emmd_fs *fs) { return LD(fs->pstats.overdue); }
static uint64_t g_replayed(struct emmd_fs *fs) { return LD(fs->pstats.replayed); }
static uint64_t g_swap_in(struct emmd_fs *fs) { return LD(fs->pstats.swap_faults); }
static uint64_t g_killed(struct emmd_fs *fs) { return LD(fs->pstats.killed); }
static uint64_t g_reinits(struct emmd_fs *fs) { return LD(fs->pstats.reinits); }
static uint64_t g_lost_now(struct emmd_fs *fs) { return LD(fs->pstats.lost_now); }
static uint64_t g_lost(struct emmd_fs *fs) { return LD(fs->pstats.lost); }
static uint64_t g_lost_eio(struct emmd_fs *fs) { return LD(fs->pstats.lost_eio); }
static uint64_t g_stale(struct emmd_fs *fs) { return LD(fs->pstats.stale_answers); }

/* Pages that went to swap: a temporary filesystem's pageouts all do; for the
 * others, the pages their pager failed to take (double paging). */
static uint64_t
g_swap_out(struct emmd_fs *fs)
{
    return fs->pager == NULL ? LD(fs->pstats.pageouts) : LD(fs->pstats.double_paged);
}

static uint64_t
process_rss_bytes(void)
{
    unsigned long long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    long psz = sysconf(_SC_PAGESIZE);
    return rss * (unsigned long long)(psz > 0 ? psz : 4096);
}

static void hist_family(FILE *out, struct emmd *d, const char *fam, const char *help,
                        int pager);

_Static_assert(VM_LAT_BUCKETS == EMMD_HIST_BUCKETS, "the kernel's pager latency buckets are emmd's");

int
emmd_metrics_write(struct emmd *d, FILE *out)
{
    struct vm_pool *pool = vm_kernel_pool(d->kernel);
    struct vm_stats *s = vm_kernel_stats(d->kernel);
    struct vm_pool_counts c;
    vm_pool_counts(pool, &c);
    struct emmd_totals all = {0}, *ft = calloc(d->nfs ? d->nfs : 1, sizeof(*ft));
    if (ft == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
        emmd_fs_totals(&d->fs[i], &ft[i]);
        all.dirty += ft[i].dirty;
    }
    long psz = sysconf(_SC_PAGESIZE);
    unsigned long long page = (unsigned long long)(psz > 0 ? psz : 4096);

    family(out, "emm_build_info", "gauge", "Always 1; the version is a label.");
    fprintf(out, "emm_build_info{version=\"%s\"} 1\n", EMM_VERSION);
    family(out, "emm_uptime_seconds", "gauge", "Seconds since emmd started.");
    fprintf(out, "emm_uptime_seconds %lld\n", (long long)(time(NULL) - d->start_time));
    family(out, "emm_filesystems", "gauge", "Filesystems served.");
    fprintf(out, "emm_filesystems %zu\n", emmd_live_fs(d));
    family(out, "emm_resident_limit_bytes", "gauge", "The resident page pool's size (resident-limit).");
    fprintf(out, "emm_resident_limit_bytes %llu\n", (unsigned long long)d->cfg->resident_limit);
    family(out, "emm_pool_resident_bytes", "gauge", "Pool frames holding pages.");
    fprintf(out, "emm_pool_resident_bytes %llu\n", (unsigned long long)(c.pages - c.free) * page);
    family(out, "emm_pool_dirty_bytes", "gauge", "Resident pages not yet returned to their pager.");
    fprintf(out, "emm_pool_dirty_bytes %llu\n", (unsigned long long)all.dirty * page);
    family(out, "emm_process_resident_bytes", "gauge", "emmd's resident set size.");
    fprintf(out, "emm_process_resident_bytes %llu\n", (unsigned long long)process_rss_bytes());
    family(out, "emm_evictions_total", "counter", "Pages the pageout daemon took out of the pool.");
    fprintf(out, "emm_evictions_total %llu\n", LD(s->evictions));
    family(out, "emm_data_requests_total", "counter", "data_request messages sent to pagers.");
    fprintf(out, "emm_data_requests_total %llu\n", LD(s->data_requests));
    family(out, "emm_data_returns_total", "counter", "data_return messages sent to pagers.");
    fprintf(out, "emm_data_returns_total %llu\n", LD(s->data_returns));
    struct swp_dp_stats ds = {0};
    if (d->dpager != NULL)
        swp_dp_stats(d->dpager, &ds);
    family(out, "emm_swap_size_bytes", "gauge", "Swap areas' data slots.");
    fprintf(out, "emm_swap_size_bytes %llu\n", (unsigned long long)ds.slots_total * 4096);
    family(out, "emm_swap_used_bytes", "gauge", "Swap slots in use.");
    fprintf(out, "emm_swap_used_bytes %llu\n", (unsigned long long)ds.slots_used * 4096);

    family(out, "emm_objects", "gauge", "Memory objects (regular files) of a filesystem.");
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        fprintf(out, "emm_objects{fs=\"%s\"} %llu\n", d->fs[i].cfg->name,
                (unsigned long long)ft[i].objects);
    family(out, "emm_resident_pages", "gauge", "A filesystem's pages in the pool.");
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        fprintf(out, "emm_resident_pages{fs=\"%s\"} %llu\n", d->fs[i].cfg->name,
                (unsigned long long)ft[i].resident);
    family(out, "emm_dirty_pages", "gauge", "A filesystem's dirty pages in the pool.");
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        fprintf(out, "emm_dirty_pages{fs=\"%s\"} %llu\n", d->fs[i].cfg->name,
                (unsigned long long)ft[i].dirty);
    free(ft);
    per_fs(out, d, "emm_faults_total", "counter", "FUSE READs answered (page faults and read(2)).",
           g_faults);
    per_fs(out, d, "emm_read_bytes_total", "counter", "Bytes answered to FUSE READs.", g_read_bytes);
    per_fs(out, d, "emm_writes_total", "counter", "FUSE WRITEs completed.", g_writes);
    per_fs(out, d, "emm_write_bytes_total", "counter", "Bytes of completed FUSE WRITEs.",
           g_write_bytes);
    per_fs(out, d, "emm_pageouts_total", "counter", "Pages laundered to the filesystem's pager.",
           g_pageouts);
    per_fs(out, d, "emm_double_paged_total", "counter",
           "Pages the pager failed to take in time, sent to swap.", g_double_paged);
    per_fs(out, d, "emm_overdue_returns_total", "counter",
           "data_returns not acknowledged within the deadline.", g_overdue);
    per_fs(out, d, "emm_replayed_pages_total", "counter", "Pages replayed from swap to the pager.",
           g_replayed);
    per_fs(out, d, "emm_swap_in_pages_total", "counter", "Page-ins served from swap.", g_swap_in);
    per_fs(out, d, "emm_swap_out_pages_total", "counter", "Pages written to swap.", g_swap_out);
    per_fs(out, d, "emm_objects_killed_total", "counter", "Objects killed by a failed pageout.",
           g_killed);
    /* A pager that dies or goes silent (vm_lost.c; emmctl info pagers). Its
     * round trip is emm_pager_latency_seconds below. */
    per_fs(out, d, "emm_pager_reinits_total", "counter",
           "Objects re-initialised on a new pager connection.", g_reinits);
    per_fs(out, d, "emm_pager_objects_waiting", "gauge",
           "Objects whose pager is gone, waiting for the next one.", g_lost_now);
    per_fs(out, d, "emm_pager_objects_lost_total", "counter",
           "Objects that learned their pager was gone.", g_lost);
    per_fs(out, d, "emm_pager_lost_eio_total", "counter",
           "Faults and fsyncs failed with EIO: the pager gone or silent past the deadline.",
           g_lost_eio);
    per_fs(out, d, "emm_pager_stale_answers_total", "counter",
           "Late pager answers dropped: from a replaced pager connection, or to a failed fsync.",
           g_stale);

    hist_family(out, d, "emm_fault_latency_seconds",
                "FUSE READ latency, from its arrival in emmd to the reply.", 0);
    hist_family(out, d, "emm_pager_latency_seconds",
                "Pager latency: a data_request's first page, from the request to the pager's "
                "first answer (supply, unavailable or error).", 1);
    return ferror(out) ? -EIO : 0;
}

static void
hist_family(FILE *out, struct emmd *d, const char *fam, const char *help, int pager)
{
    family(out, fam, "histogram", help);
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
        struct emmd_hist_snap h;
        if (pager)
            emmd_hist_snap_counters(d->fs[i].pstats.request_lat.bucket,
                                    &d->fs[i].pstats.request_lat.sum_ns, &h);
        else
            emmd_hist_snap(&d->fs[i].read_lat, &h);
        const char *name = d->fs[i].cfg->name;
        uint64_t cum = 0;
        for (int b = 0; b <= LAST_BUCKET; b++) {
            cum += h.bucket[b];
            if (b >= FIRST_BUCKET)
                fprintf(out, "%s_bucket{fs=\"%s\",le=\"%.9g\"} %llu\n", fam, name,
                        emmd_hist_upper_ns(b) / 1e9, (unsigned long long)cum);
        }
        fprintf(out, "%s_bucket{fs=\"%s\",le=\"+Inf\"} %llu\n", fam, name,
                (unsigned long long)h.count);
        fprintf(out, "%s_sum{fs=\"%s\"} %.9f\n", fam, name, (double)h.sum_ns / 1e9);
        fprintf(out, "%s_count{fs=\"%s\"} %llu\n", fam, name, (unsigned long long)h.count);
    }
}
