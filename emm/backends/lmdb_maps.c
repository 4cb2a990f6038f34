/*
 * lmdb_maps.c - keeps the LMDB maps of this process within the resident-set
 * bound (issue 10; the contract is in lmdb_shared.h). LMDB reads through a
 * read-only MAP_SHARED map of data.mdb; each page a transaction touches, and
 * with the kernel's fault-around up to 64 KiB of cached pages around it, stays
 * mapped and counts in VmRSS (as RssFile) until unmapped. Counting only the
 * bytes the data path reads was not enough: a catalog's freelist churn
 * (mkdir/rmdir after large deletes) mapped a 200 MiB data.mdb whole, and on
 * kernels that fault in whole large folios one touched page maps up to 2 MiB
 * (measured: 1-2 MiB per touch of a file written 1 MiB at a time, whatever
 * madvise(MADV_RANDOM)).
 *
 * So the bound is closed-loop: every user notes its transactions (and long
 * ones every EMM_LMDB_NOTE_EVERY pages); every EMM_LMDB_CHECK_PAGES noted, the
 * process's shared resident pages (file and shared memory: the third field of
 * /proc/self/statm, one pread of a file kept open, about 1 us) are compared
 * with `base` (what they were right after the last trim: code, libraries,
 * shared regions; never above those mappings' size) plus EMM_LMDB_MAP_BUDGET
 * per registered map. Above it, every registered map's pages are dropped from
 * the process with madvise(MADV_DONTNEED). On a shared file mapping that only removes the page
 * table entries: the pages stay in the page cache, unchanged, and a reader
 * (even one inside a transaction at that moment) faults them back in.
 *
 * Locking: `lock` guards the list, the counters and each entry's map_addr and
 * map_len (written also under that entry's resize held exclusively). The trim
 * holds `lock` and takes each entry's resize shared by trylock (skipping a map
 * being moved), so it never waits for an environment's users, and a map is
 * never advised while LMDB replaces it. Lock order: resize before `lock`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lmdb_shared.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct emm_lmdb_shared *head;
static _Atomic uint64_t nmaps;
static uint64_t other_total;     /* mapped size of the other shared mappings (code, regions) */
static _Atomic uint64_t base;    /* their resident size, as last measured */
static _Atomic int statm_fd = -1;
static _Atomic uint64_t pending; /* pages noted since the last check */
static _Atomic uint64_t checks, trims;

/* The process's shared resident set (RssFile + RssShmem) in bytes, or 0. */
static uint64_t
shared_rss(void)
{
    char buf[128];
    int fd = atomic_load(&statm_fd);
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
    unsigned long long size, resident, shared;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3)
        return 0;
    return (uint64_t)shared * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int
is_registered_locked(unsigned long start)
{
    for (struct emm_lmdb_shared *s = head; s; s = s->maps_next)
        if ((unsigned long)s->map_addr == start)
            return 1;
    return 0;
}

/* Sums the sizes of the file and shared-memory mappings that are not
 * registered maps. Called with `lock` held. */
static void
measure_code_locked(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return;
    char line[PATH_MAX + 128];
    uint64_t total = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long start, end, ino;
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %*s %*x %*x:%*x %lu %n", &start, &end, &ino, &path_at) < 3 ||
            ino == 0)
            continue;
        (void)path_at;
        if (is_registered_locked(start))
            continue;
        total += end - start;
    }
    fclose(f);
    other_total = total;
    if (atomic_load(&base) > other_total)
        atomic_store(&base, other_total);
}

/* Finds data.mdb's map of env in /proc/self/maps (LMDB tells its address only
 * with MDB_FIXEDMAP): the largest mapping of its device and inode. */
static void
locate(struct emm_lmdb_shared *sh, void **addr, size_t *len)
{
    *addr = NULL;
    *len = 0;
    mdb_filehandle_t fd;
    struct stat st;
    if (sh->maps_env == NULL || mdb_env_get_fd(sh->maps_env, &fd) != 0 || fstat(fd, &st) != 0)
        return;
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return;
    char line[PATH_MAX + 128];
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long start, end, ino;
        unsigned int maj, min;
        if (sscanf(line, "%lx-%lx %*s %*x %x:%x %lu", &start, &end, &maj, &min, &ino) == 5 &&
            ino == (unsigned long)st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev) && end - start > *len) {
            *addr = (void *)start;
            *len = end - start;
        }
    }
    fclose(f);
}

void
emm_lmdb_maps_add(struct emm_lmdb_shared *sh, struct MDB_env *env)
{
    void *addr;
    size_t len;

    sh->maps_env = env;
    locate(sh, &addr, &len);
    pthread_mutex_lock(&lock);
    for (struct emm_lmdb_shared *s = head; s; s = s->maps_next)
        if (s == sh) { /* added twice: only the map is refreshed */
            sh->map_addr = addr;
            sh->map_len = len;
            pthread_mutex_unlock(&lock);
            return;
        }
    sh->map_addr = addr;
    sh->map_len = len;
    sh->maps_next = head;
    head = sh;
    if (atomic_fetch_add(&nmaps, 1) == 0) {
        if (atomic_load(&statm_fd) < 0)
            atomic_store(&statm_fd, open("/proc/self/statm", O_RDONLY | O_CLOEXEC));
        atomic_store(&base, shared_rss());
    }
    measure_code_locked();
    pthread_mutex_unlock(&lock);
}

void
emm_lmdb_maps_moved(struct emm_lmdb_shared *sh)
{
    void *addr;
    size_t len;

    locate(sh, &addr, &len);
    pthread_mutex_lock(&lock);
    sh->map_addr = addr;
    sh->map_len = len;
    pthread_mutex_unlock(&lock);
}

void
emm_lmdb_maps_del(struct emm_lmdb_shared *sh)
{
    pthread_mutex_lock(&lock);
    for (struct emm_lmdb_shared **pp = &head; *pp; pp = &(*pp)->maps_next)
        if (*pp == sh) {
            *pp = sh->maps_next;
            atomic_fetch_sub(&nmaps, 1);
            break;
        }
    sh->maps_next = NULL;
    sh->map_addr = NULL;
    sh->map_len = 0;
    sh->maps_env = NULL;
    pthread_mutex_unlock(&lock); /* statm_fd stays open: a reader may be using it */
}

/* Called with `lock` held. */
static void
trim_locked(void)
{
    for (struct emm_lmdb_shared *s = head; s; s = s->maps_next) {
        if (s->map_addr == NULL || pthread_rwlock_tryrdlock(&s->resize) != 0)
            continue;
        (void)madvise(s->map_addr, s->map_len, MADV_DONTNEED); /* EINVAL/ENOMEM: nothing mapped */
        pthread_rwlock_unlock(&s->resize);
    }
    atomic_fetch_add(&trims, 1);
    /* What is left is the code and the shared regions (and what other threads
     * faulted in meanwhile: capped by those mappings' size). */
    uint64_t now = shared_rss();
    atomic_store(&base, now < other_total ? now : other_total);
}

static uint64_t
limit_bytes(void)
{
    return atomic_load(&base) + atomic_load(&nmaps) * EMM_LMDB_MAP_BUDGET;
}

void
emm_lmdb_maps_trim(void)
{
    pthread_mutex_lock(&lock);
    trim_locked();
    pthread_mutex_unlock(&lock);
}

void
emm_lmdb_maps_note(size_t pages)
{
    if (pages == 0)
        pages = 1;
    if (atomic_fetch_add(&pending, pages) + pages < EMM_LMDB_CHECK_PAGES)
        return;
    if (atomic_exchange(&pending, 0) < EMM_LMDB_CHECK_PAGES || atomic_load(&nmaps) == 0)
        return; /* another thread took this check */
    atomic_fetch_add(&checks, 1);
    if (shared_rss() <= limit_bytes())
        return;
    pthread_mutex_lock(&lock);
    if (shared_rss() > limit_bytes()) /* not trimmed meanwhile */
        trim_locked();
    pthread_mutex_unlock(&lock);
}

void
emm_lmdb_maps_stats(struct emm_lmdb_maps_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&lock);
    out->maps = atomic_load(&nmaps);
    out->limit_bytes = out->maps ? limit_bytes() : 0;
    out->checks = atomic_load(&checks);
    out->trims = atomic_load(&trims);
    FILE *f = out->maps ? fopen("/proc/self/smaps", "re") : NULL;
    if (f != NULL) {
        char line[PATH_MAX + 128];
        int in_map = 0;
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long start, end, kib;
            if (sscanf(line, "%lx-%lx ", &start, &end) == 2) /* a mapping's first line */
                in_map = is_registered_locked(start);
            else if (in_map && sscanf(line, "Rss: %lu kB", &kib) == 1)
                out->mapped_bytes += (uint64_t)kib * 1024;
        }
        fclose(f);
    }
    pthread_mutex_unlock(&lock);
}
