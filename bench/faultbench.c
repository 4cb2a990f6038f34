/*
 * faultbench.c - the measuring program behind bench/run.sh. It times the three
 * fault paths a memory object serves through a MAP_SHARED mapping of one file:
 *
 *   seq    sequential cold read: touch one byte per page, in order (GB/s of the
 *          mapping covered per second)
 *   rand   random 4 KiB read faults: MADV_RANDOM (no readahead), N distinct
 *          random pages, each touch timed on its own (mean, p50, p99 in µs)
 *   write  write + msync: fill every page of the mapping, then msync(MS_SYNC)
 *          (GB/s for the whole, and the part msync took)
 *
 * "Cold" means the kernel's page cache holds none of the file: before each
 * phase the program drops it (posix_fadvise DONTNEED on the file, then
 * /proc/sys/vm/drop_caches = 1 when writable) and measures, with mincore, how
 * much of the file was still cached; that fraction is printed so a run where the
 * drop did not work is visible. For a FUSE file the next touch is then a FUSE
 * READ to the daemon (which may answer from its own resident pool). For a tmpfs
 * file nothing can be dropped: its "cold" touch is a minor fault.
 *
 * Usage:
 *   faultbench populate PATH SIZE      write SIZE bytes of non-zero data, fsync
 *   faultbench sparse PATH SIZE        create PATH with ftruncate(SIZE) only
 *   faultbench seq PATH
 *   faultbench rand PATH NPAGES SEED
 *   faultbench write PATH
 * Results are printed as "key=value" pairs on one line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PG 4096

static void die(const char *what)
{
    fprintf(stderr, "faultbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t parse_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 0);
    switch (*end) {
    case 'K': case 'k': v <<= 10; break;
    case 'M': case 'm': v <<= 20; break;
    case 'G': case 'g': v <<= 30; break;
    default: break;
    }
    return v;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Drops the file's clean pages from the page cache; returns the percentage of
 * its pages still cached afterwards (measured with mincore). */
static double drop_cache(int fd, size_t len)
{
    if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
        die("fsync");
    posix_fadvise(fd, 0, (off_t)len, POSIX_FADV_DONTNEED);
    int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (dc >= 0) {
        if (write(dc, "1", 1) < 0) { /* not fatal: fadvise did most of it */
        }
        close(dc);
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        die("mmap (mincore)");
    size_t n = len / PG, cached = 0;
    unsigned char *vec = malloc(n);
    if (!vec || mincore(m, len, vec) < 0)
        die("mincore");
    for (size_t i = 0; i < n; i++)
        cached += vec[i] & 1;
    free(vec);
    munmap(m, len);
    return 100.0 * (double)cached / (double)(n ? n : 1);
}

static size_t file_size(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat");
    return (size_t)st.st_size & ~(size_t)(PG - 1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: faultbench populate|sparse|seq|rand|write PATH ...\n");
        return 2;
    }
    const char *cmd = argv[1], *path = argv[2];

    if (!strcmp(cmd, "populate") || !strcmp(cmd, "sparse")) {
        if (argc != 4)
            return 2;
        uint64_t size = parse_size(argv[3]);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
            die(path);
        if (!strcmp(cmd, "populate")) {
            size_t chunk = 1 << 20;
            unsigned char *buf = malloc(chunk);
            uint64_t s = 88172645463325252ull;
            if (!buf)
                die("malloc");
            for (uint64_t off = 0; off < size; off += chunk) {
                for (size_t i = 0; i < chunk; i += 8) {
                    uint64_t v = xorshift(&s) | 1;
                    memcpy(buf + i, &v, 8);
                }
                size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
                if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
                    die("pwrite");
            }
            if (fsync(fd) < 0)
                die("fsync");
            free(buf);
        }
        close(fd);
        return 0;
    }

    if (!strcmp(cmd, "seq")) {
        int fd = open(path, O_RDWR);
        if (fd < 0)
            die(path);
        size_t len = file_size(fd);
        double cached = drop_cache(fd, len);
        volatile unsigned char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            die("mmap");
        unsigned sum = 0;
        double t0 = now();
        for (size_t off = 0; off < len; off += PG)
            sum += m[off];
        double t = now() - t0;
        printf("seq_gbps=%.3f seq_s=%.3f bytes=%zu cached_pct=%.1f sum=%u\n",
               (double)len / t / 1e9, t, len, cached, sum);
        return 0;
    }

    if (!strcmp(cmd, "rand")) {
        if (argc != 5)
            return 2;
        int fd = open(path, O_RDWR);
        if (fd < 0)
            die(path);
        size_t len = file_size(fd), npages = len / PG;
        size_t n = (size_t)parse_size(argv[3]);
        uint64_t seed = parse_size(argv[4]) | 1;
        if (n > npages)
            n = npages;
        /* n distinct pages: a partial Fisher-Yates shuffle of all page numbers */
        uint32_t *idx = malloc(npages * sizeof(*idx));
        double *lat = malloc(n * sizeof(*lat));
        if (!idx || !lat)
            die("malloc");
        for (size_t i = 0; i < npages; i++)
            idx[i] = (uint32_t)i;
        for (size_t i = 0; i < n; i++) {
            size_t j = i + (size_t)(xorshift(&seed) % (npages - i));
            uint32_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        double cached = drop_cache(fd, len);
        volatile unsigned char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            die("mmap");
        if (madvise((void *)m, len, MADV_RANDOM) < 0)
            die("madvise");
        unsigned sum = 0;
        double total0 = now();
        for (size_t i = 0; i < n; i++) {
            double t0 = now();
            sum += m[(size_t)idx[i] * PG];
            lat[i] = (now() - t0) * 1e6;
        }
        double total = now() - total0;
        qsort(lat, n, sizeof(*lat), cmp_double);
        double mean = 0;
        for (size_t i = 0; i < n; i++)
            mean += lat[i];
        mean /= (double)n;
        printf("rand_mean_us=%.2f rand_p50_us=%.2f rand_p99_us=%.2f rand_max_us=%.1f "
               "rand_pages=%zu rand_s=%.3f cached_pct=%.1f sum=%u\n",
               mean, lat[n / 2], lat[(size_t)((double)n * 0.99)], lat[n - 1], n, total, cached,
               sum);
        return 0;
    }

    if (!strcmp(cmd, "write")) {
        int fd = open(path, O_RDWR);
        if (fd < 0)
            die(path);
        size_t len = file_size(fd);
        double cached = drop_cache(fd, len);
        unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            die("mmap");
        double t0 = now();
        for (size_t off = 0; off < len; off += PG)
            memset(m + off, (int)((off / PG) & 0xff) | 1, PG);
        double t1 = now();
        if (msync(m, len, MS_SYNC) < 0)
            die("msync");
        double t2 = now();
        printf("write_gbps=%.3f write_s=%.3f touch_s=%.3f msync_s=%.3f cached_pct=%.1f\n",
               (double)len / (t2 - t0) / 1e9, t2 - t0, t1 - t0, t2 - t1, cached);
        munmap(m, len);
        return 0;
    }
    fprintf(stderr, "faultbench: unknown command %s\n", cmd);
    return 2;
}
