/*
 * policysim.c - trace-driven simulator for the pageout policies (emm/vm/vm_policy.c,
 * linked from emm-vm so the numbers come from the daemon's own code). Replays
 * synthetic page traces against a cache of a fixed number of pages and prints
 * the hit ratio of each policy side by side. Built and run by bench/policy.sh;
 * not a test. Single-threaded: no locking.
 *
 * Traces (fixed seeds, so every run prints the same table):
 *   zipf-A     N requests over P pages, Zipf(A) popularity, ranks shuffled over
 *              the page numbers.
 *   scan-mix   the first P/5 pages are a Zipf(1.0) hot set; the other 4P/5 are
 *              cold. Every 2P/5 hot requests, a sequential scan reads the next
 *              P/5 cold pages (wrapping): each scan is larger than every cache
 *              size simulated and one request in three is a scan read.
 * Cache sizes: 1%, 5%, 10% of the P pages. A miss evicts the policy's victim
 * when the cache is full, then inserts; a hit touches. Every request counts
 * (cold misses included).
 *
 * Usage: policysim [-n requests] [-p pages] [-s seed] [-c pcts] [-z alphas]
 *   -c  cache sizes in % of the footprint, comma-separated (default 1,5,10)
 *   -z  Zipf exponents of the zipf traces, comma-separated (default 0.8,1.0);
 *       the scan-mix trace always follows them
 */
#include "vm_policy.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct spage {
    struct vm_pnode node;
    uint8_t resident;
};

static uint64_t
rnd(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double
unif(uint64_t *s)
{
    return (double)(rnd(s) >> 11) * 0x1.0p-53;
}

struct zipf {
    double *cdf;
    uint32_t *perm; /* rank -> page */
    uint32_t n;
};

static int
zipf_init(struct zipf *z, uint32_t n, double alpha, uint64_t seed)
{
    z->n = n;
    z->cdf = malloc(n * sizeof(*z->cdf));
    z->perm = malloc(n * sizeof(*z->perm));
    if (z->cdf == NULL || z->perm == NULL)
        return -ENOMEM;
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), alpha);
        z->cdf[i] = sum;
    }
    for (uint32_t i = 0; i < n; i++) {
        z->cdf[i] /= sum;
        z->perm[i] = i;
    }
    for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)(rnd(&seed) % (i + 1));
        uint32_t t = z->perm[i];
        z->perm[i] = z->perm[j];
        z->perm[j] = t;
    }
    return 0;
}

static uint32_t
zipf_next(const struct zipf *z, uint64_t *s)
{
    double u = unif(s);
    uint32_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return z->perm[lo];
}

static void
zipf_fini(struct zipf *z)
{
    free(z->cdf);
    free(z->perm);
}

static int
gen_zipf(uint32_t *trace, uint64_t nreq, uint32_t pages, double alpha, uint64_t seed)
{
    struct zipf z;
    int rc = zipf_init(&z, pages, alpha, seed);
    if (rc == 0)
        for (uint64_t i = 0; i < nreq; i++)
            trace[i] = zipf_next(&z, &seed);
    zipf_fini(&z);
    return rc;
}

static int
gen_scan_mix(uint32_t *trace, uint64_t nreq, uint32_t pages, uint64_t seed)
{
    uint32_t hot = pages / 5, cold = pages - hot;
    uint32_t scan_len = pages / 5, burst = 2 * pages / 5, cursor = 0;
    struct zipf z;
    int rc = zipf_init(&z, hot, 1.0, seed);
    uint64_t i = 0;
    while (rc == 0 && i < nreq) {
        for (uint32_t k = 0; k < burst && i < nreq; k++)
            trace[i++] = zipf_next(&z, &seed);
        for (uint32_t k = 0; k < scan_len && i < nreq; k++) {
            trace[i++] = hot + cursor;
            cursor = (cursor + 1) % cold;
        }
    }
    zipf_fini(&z);
    return rc;
}

/* A second-chance variant: the simulator's extra column, not a policy. */
static int
sc13_create(uint64_t capacity, void **st)
{
    int rc = vm_policy_lookup("second-chance")->create(capacity, st);
    if (rc == 0)
        vm_policy_sc_set_inactive(*st, 1, 3);
    return rc;
}

static struct vm_policy_ops sc13_ops;

#define NPOL 5
static const struct vm_policy_ops *pols[NPOL];
static const char *const heads[NPOL] = {"second-chance", "fifo", "s3-fifo", "lru", "sc-inact-1/3"};
static double pol_secs[NPOL];
static uint64_t pol_reqs[NPOL];

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
simulate(int pi, const uint32_t *trace, uint64_t nreq, struct spage *pg, uint32_t pages,
         uint64_t capacity, double *hit_ratio)
{
    const struct vm_policy_ops *ops = pols[pi];
    memset(pg, 0, pages * sizeof(*pg));
    for (uint32_t i = 0; i < pages; i++)
        pg[i].node.key = i;
    void *st;
    int rc = ops->create(capacity, &st);
    if (rc < 0)
        return rc;
    uint64_t hits = 0, resident = 0;
    double t0 = now_s();
    for (uint64_t i = 0; i < nreq; i++) {
        struct spage *p = &pg[trace[i]];
        if (p->resident) {
            hits++;
            ops->touch(st, &p->node);
            continue;
        }
        if (resident == capacity) {
            struct vm_pnode *v = ops->victim(st);
            if (v == NULL) {
                ops->destroy(st);
                return -EFAULT;
            }
            ((struct spage *)((char *)v - offsetof(struct spage, node)))->resident = 0;
            resident--;
        }
        ops->insert(st, &p->node);
        p->resident = 1;
        resident++;
    }
    pol_secs[pi] += now_s() - t0;
    pol_reqs[pi] += nreq;
    ops->destroy(st);
    *hit_ratio = (double)hits / (double)nreq;
    return 0;
}

#define MAXLIST 8

/* A comma-separated list of numbers in (lo, hi]; its length, or -1. */
static int
parse_list(const char *arg, double *out, double lo, double hi)
{
    int n = 0;
    const char *p = arg;
    for (;;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v > lo && v <= hi) || n == MAXLIST)
            return -1;
        out[n++] = v;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

int
main(int argc, char **argv)
{
    uint64_t nreq = 1000000, seed = 42;
    uint32_t pages = 100000;
    double pct[MAXLIST] = {1, 5, 10}, alphas[MAXLIST] = {0.8, 1.0};
    int npct = 3, nalpha = 2;
    int opt;
    while ((opt = getopt(argc, argv, "n:p:s:c:z:")) != -1) {
        switch (opt) {
        case 'n': nreq = strtoull(optarg, NULL, 0); break;
        case 'p': pages = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'c': npct = parse_list(optarg, pct, 0, 100); break;
        case 'z': nalpha = parse_list(optarg, alphas, 0, 10); break;
        default:
            fprintf(stderr, "usage: policysim [-n requests] [-p pages] [-s seed] [-c pcts] "
                            "[-z alphas]\n");
            return 2;
        }
    }
    if (nreq == 0 || pages < 100 || npct < 0 || nalpha < 0) {
        fprintf(stderr, "policysim: need requests > 0, pages >= 100, cache %% in (0,100] and "
                        "Zipf exponents in (0,10] (at most %d of each)\n", MAXLIST);
        return 2;
    }
    sc13_ops = *vm_policy_lookup("second-chance");
    sc13_ops.name = "sc-inact-1/3";
    sc13_ops.create = sc13_create;
    pols[0] = vm_policy_lookup("second-chance");
    pols[1] = vm_policy_lookup("fifo");
    pols[2] = vm_policy_lookup("s3-fifo");
    pols[3] = vm_policy_lookup("lru");
    pols[4] = &sc13_ops;

    uint32_t *trace = malloc(nreq * sizeof(*trace));
    struct spage *pg = malloc(pages * sizeof(*pg));
    if (trace == NULL || pg == NULL) {
        fprintf(stderr, "policysim: out of memory\n");
        return 1;
    }
    struct {
        char name[16];
        double alpha; /* 0: scan-mix */
    } traces[MAXLIST + 1];
    size_t ntraces = 0;
    for (int a = 0; a < nalpha; a++) {
        snprintf(traces[ntraces].name, sizeof(traces[ntraces].name), "zipf-%.1f", alphas[a]);
        traces[ntraces++].alpha = alphas[a];
    }
    snprintf(traces[ntraces].name, sizeof(traces[ntraces].name), "scan-mix");
    traces[ntraces++].alpha = 0;

    printf("requests %llu, footprint %u pages, seed %llu; hit ratio %%\n",
           (unsigned long long)nreq, pages, (unsigned long long)seed);
    printf("%-9s %5s %7s", "trace", "cache", "pages");
    for (int p = 0; p < NPOL; p++)
        printf(" %13s", heads[p]);
    printf("   sc-fifo  sc/lru\n");

    double worst_sc_lru = 0, worst_sc_fifo = 100, worst_s3_lru = 100;
    for (size_t t = 0; t < ntraces; t++) {
        int rc = traces[t].alpha > 0
                     ? gen_zipf(trace, nreq, pages, traces[t].alpha, seed + t)
                     : gen_scan_mix(trace, nreq, pages, seed + t);
        if (rc < 0) {
            fprintf(stderr, "policysim: trace: %s\n", strerror(-rc));
            return 1;
        }
        for (int c = 0; c < npct; c++) {
            uint64_t cap = (uint64_t)((double)pages * pct[c] / 100 + 0.5);
            if (cap == 0)
                cap = 1;
            double h[NPOL];
            for (int p = 0; p < NPOL; p++) {
                rc = simulate(p, trace, nreq, pg, pages, cap, &h[p]);
                if (rc < 0) {
                    fprintf(stderr, "policysim: %s: %s\n", heads[p], strerror(-rc));
                    return 1;
                }
            }
            printf("%-9s %4g%% %7llu", traces[t].name, pct[c], (unsigned long long)cap);
            for (int p = 0; p < NPOL; p++)
                printf(" %13.2f", 100 * h[p]);
            /* second-chance minus fifo (points); second-chance relative to lru. */
            double rel = h[0] / h[3];
            printf("   %+6.2f  %5.1f%%\n", 100 * (h[0] - h[1]), 100 * rel);
            if (traces[t].alpha > 0) {
                if (1 - rel > worst_sc_lru)
                    worst_sc_lru = 1 - rel;
                if (100 * (h[0] - h[1]) < worst_sc_fifo)
                    worst_sc_fifo = 100 * (h[0] - h[1]);
            } else if (100 * (h[2] - h[3]) < worst_s3_lru) {
                worst_s3_lru = 100 * (h[2] - h[3]);
            }
        }
    }
    printf("\nspeed (Mreq/s, whole replay):");
    for (int p = 0; p < NPOL; p++)
        printf(" %s %.1f", heads[p], (double)pol_reqs[p] / pol_secs[p] / 1e6);
    printf("\ntargets: zipf: second-chance - fifo >= %.2f points, second-chance >= %.1f%% of lru"
           " (target: clearly above fifo, within 5%%)\n",
           worst_sc_fifo, 100 * (1 - worst_sc_lru));
    printf("         scan-mix: s3-fifo - lru >= %+.2f points (target: > 0)\n", worst_s3_lru);
    free(trace);
    free(pg);
    return 0;
}
