/*
 * trunc_race.c - a client for t_truncate_race.sh: truncations racing
 * read-ahead. Reader threads keep dropping the file's page cache and reading it
 * (each cold read makes the kernel send asynchronous read-ahead READs on other
 * FUSE threads) while the main thread writes a fresh pattern, sometimes
 * fsyncs it (so the pager holds the old data too), shrinks the file to a random
 * cut, grows it back and checks that every byte past the cut reads zero, by
 * read(2) and through a mapping.
 *
 * Usage: trunc_race PATH ITERATIONS [PAGES] [READERS] [SEED]
 * Exit 0: every check passed; 1: a byte past a cut came back non-zero (the
 * first bad offset is printed) or an I/O call failed; 2: bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS 4096u

static const char *path;
static size_t file_len;
static atomic_int stop;

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *
reader(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror("reader open");
        return NULL;
    }
    char *buf = malloc(file_len);
    while (!atomic_load(&stop)) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        off_t off = (off_t)(rnd(&seed) % (file_len / PS)) * PS;
        /* Small reads at a random place: the kernel reads ahead past them. */
        for (int i = 0; i < 8 && !atomic_load(&stop); i++)
            if (pread(fd, buf, PS, off + (off_t)i * PS) < 0 && errno != EINTR)
                break;
    }
    free(buf);
    close(fd);
    return NULL;
}

static int
check_zero(int fd, size_t cut, unsigned long iter)
{
    size_t n = file_len - cut;
    char *buf = malloc(n);
    ssize_t got = pread(fd, buf, n, (off_t)cut);
    if (got != (ssize_t)n) {
        fprintf(stderr, "iteration %lu: pread(%zu, %zu) = %zd: %s\n", iter, cut, n, got,
                strerror(errno));
        free(buf);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] != 0) {
            fprintf(stderr,
                    "iteration %lu: byte %zu (past the cut at %zu) reads 0x%02x after "
                    "truncate down and up; expected 0 (read)\n",
                    iter, cut + i, cut, (unsigned char)buf[i]);
            free(buf);
            return 1;
        }
    free(buf);
    return 0;
}

static int
check_zero_map(int fd, size_t cut, unsigned long iter)
{
    char *m = mmap(NULL, file_len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    int rc = 0;
    for (size_t i = cut; i < file_len; i++)
        if (m[i] != 0) {
            fprintf(stderr,
                    "iteration %lu: byte %zu (past the cut at %zu) reads 0x%02x after "
                    "truncate down and up; expected 0 (mmap)\n",
                    iter, i, cut, (unsigned char)m[i]);
            rc = 1;
            break;
        }
    munmap(m, file_len);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: trunc_race PATH ITERATIONS [PAGES] [READERS] [SEED]\n");
        return 2;
    }
    path = argv[1];
    unsigned long iters = strtoul(argv[2], NULL, 0);
    unsigned pages = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 0) : 64;
    unsigned nreaders = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 0) : 2;
    uint64_t seed = argc > 5 ? strtoull(argv[5], NULL, 0) : 12345;
    if (pages < 2 || nreaders > 16 || seed == 0) {
        fprintf(stderr, "trunc_race: bad arguments\n");
        return 2;
    }
    file_len = (size_t)pages * PS;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char *pat = malloc(file_len);
    if (ftruncate(fd, (off_t)file_len) < 0) {
        perror("ftruncate");
        return 1;
    }
    pthread_t th[16];
    for (unsigned i = 0; i < nreaders; i++)
        pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)(i + 1));
    int rc = 0;
    for (unsigned long it = 0; it < iters && rc == 0; it++) {
        memset(pat, (int)(it % 255) + 1, file_len);
        if (pwrite(fd, pat, file_len, 0) != (ssize_t)file_len) {
            perror("pwrite");
            rc = 1;
            break;
        }
        if (rnd(&seed) % 2 == 0 && fsync(fd) < 0) {
            perror("fsync");
            rc = 1;
            break;
        }
        /* Let the readers pull the pages through read-ahead. */
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        size_t cut = (size_t)(rnd(&seed) % (file_len - 1));
        if (ftruncate(fd, (off_t)cut) < 0 || ftruncate(fd, (off_t)file_len) < 0) {
            perror("ftruncate");
            rc = 1;
            break;
        }
        rc = check_zero(fd, cut, it);
        if (rc == 0 && it % 4 == 0)
            rc = check_zero_map(fd, cut, it);
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < nreaders; i++)
        pthread_join(th[i], NULL);
    close(fd);
    free(pat);
    if (rc == 0)
        printf("trunc_race: %lu iterations, every byte past each cut read zero\n", iters);
    return rc;
}
