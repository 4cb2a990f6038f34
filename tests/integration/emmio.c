/*
 * emmio.c - a small I/O client for the integration tests: writes and checks a
 * deterministic pattern through read/write or a MAP_SHARED mapping, punches holes,
 * probes SEEK_DATA/SEEK_HOLE, reports errno names. The pattern depends only on
 * (seed, absolute byte offset), so any range can be checked on its own and a
 * failure reproduces exactly.
 *
 * Usage (exit 0 on success, 1 on a mismatch or error, 2 on bad usage):
 *   emmio fill  [-m] [-y] PATH OFF LEN SEED   write the pattern (-m: via mmap; -y: fsync/msync)
 *   emmio check [-m] PATH OFF LEN SEED        verify the pattern
 *   emmio zero  [-m] PATH OFF LEN             verify zeros
 *   emmio punch PATH OFF LEN                  fallocate(PUNCH_HOLE|KEEP_SIZE)
 *   emmio seek  PATH OFF data|hole            print the offset, or the errno name
 *   emmio stat  PATH                          print "size blocks"
 *   emmio truncate PATH SIZE                  ftruncate (creates PATH)
 *   emmio readerr PATH OFF LEN                pread; print OK or the errno name
 *   emmio writeerr [-y] PATH OFF LEN          pwrite (and fsync); print OK or the errno name
 *   emmio rename OLD NEW                      rename(2); print OK or the errno name
 *   emmio fsync PATH                          open + fsync; print OK or the errno name
 * Numbers take K, M, G, T suffixes (1024-based).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static unsigned char pat_byte(uint64_t seed, uint64_t off)
{
    uint64_t w = splitmix64(seed * 0x100000001b3ull ^ (off >> 3));
    return (unsigned char)(w >> (8 * (off & 7)));
}

static void pat_fill(unsigned char *buf, uint64_t seed, uint64_t off, size_t len)
{
    size_t i = 0;
    while (i < len && ((off + i) & 7))
        buf[i] = pat_byte(seed, off + i), i++;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = splitmix64(seed * 0x100000001b3ull ^ ((off + i) >> 3));
        memcpy(buf + i, &w, 8); /* little-endian: byte k is w >> 8k */
    }
    for (; i < len; i++)
        buf[i] = pat_byte(seed, off + i);
}

static uint64_t parse_num(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s) {
        fprintf(stderr, "emmio: bad number '%s'\n", s);
        exit(2);
    }
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    case 't': case 'T': v <<= 40; end++; break;
    default: break;
    }
    if (*end) {
        fprintf(stderr, "emmio: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

static const char *ename(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static int open_or_die(const char *path, int flags)
{
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        fprintf(stderr, "emmio: open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return fd;
}

/* Maps [off, off+len) of fd; returns the address of off. */
static unsigned char *map_range(int fd, uint64_t off, uint64_t len, int prot, void **base,
                                size_t *maplen)
{
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t start = off & ~(uint64_t)(pg - 1);
    *maplen = (size_t)(off + len - start);
    *base = mmap(NULL, *maplen, prot, MAP_SHARED, fd, (off_t)start);
    if (*base == MAP_FAILED) {
        fprintf(stderr, "emmio: mmap: %s\n", strerror(errno));
        exit(1);
    }
    return (unsigned char *)*base + (off - start);
}

static int do_fill(int use_mmap, int sync, const char *path, uint64_t off, uint64_t len,
                   uint64_t seed)
{
    int fd = open_or_die(path, O_RDWR | O_CREAT);
    if (use_mmap) {
        struct stat st;
        if (fstat(fd, &st) < 0 || ((uint64_t)st.st_size < off + len &&
                                   ftruncate(fd, (off_t)(off + len)) < 0)) {
            fprintf(stderr, "emmio: size %s: %s\n", path, strerror(errno));
            return 1;
        }
        void *base;
        size_t maplen;
        unsigned char *p = map_range(fd, off, len, PROT_READ | PROT_WRITE, &base, &maplen);
        for (uint64_t done = 0; done < len; done += CHUNK) {
            size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
            pat_fill(p + done, seed, off + done, n);
        }
        if (sync && msync(base, maplen, MS_SYNC) < 0) {
            fprintf(stderr, "emmio: msync: %s\n", strerror(errno));
            return 1;
        }
        munmap(base, maplen);
    } else {
        unsigned char *buf = malloc(CHUNK);
        if (!buf)
            return 1;
        for (uint64_t done = 0; done < len;) {
            size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
            pat_fill(buf, seed, off + done, n);
            ssize_t w = pwrite(fd, buf, n, (off_t)(off + done));
            if (w <= 0) {
                fprintf(stderr, "emmio: pwrite %s at %" PRIu64 ": %s\n", path, off + done,
                        w < 0 ? strerror(errno) : "short write");
                return 1;
            }
            done += (uint64_t)w;
        }
        free(buf);
        if (sync && fsync(fd) < 0) {
            fprintf(stderr, "emmio: fsync: %s\n", strerror(errno));
            return 1;
        }
    }
    if (close(fd) < 0) {
        fprintf(stderr, "emmio: close %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* Compares got with the expected bytes; reports the first difference. */
static int compare(const unsigned char *got, const unsigned char *want, size_t n, uint64_t off,
                   const char *path)
{
    if (memcmp(got, want, n) == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "emmio: %s: mismatch at offset %" PRIu64 " (page %" PRIu64
                            "): got 0x%02x, want 0x%02x\n",
                    path, off + i, (off + i) / 4096, got[i], want[i]);
            break;
        }
    return 1;
}

static int do_check(int use_mmap, int zero, const char *path, uint64_t off, uint64_t len,
                    uint64_t seed)
{
    int fd = open_or_die(path, O_RDONLY);
    unsigned char *want = malloc(CHUNK), *buf = NULL, *p = NULL;
    void *base = NULL;
    size_t maplen = 0;
    if (!want)
        return 1;
    if (use_mmap)
        p = map_range(fd, off, len, PROT_READ, &base, &maplen);
    else if (!(buf = malloc(CHUNK)))
        return 1;
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
        if (zero)
            memset(want, 0, n);
        else
            pat_fill(want, seed, off + done, n);
        const unsigned char *got;
        if (use_mmap) {
            got = p + done;
        } else {
            size_t have = 0;
            while (have < n) {
                ssize_t r = pread(fd, buf + have, n - have, (off_t)(off + done + have));
                if (r < 0) {
                    fprintf(stderr, "emmio: pread %s at %" PRIu64 ": %s\n", path,
                            off + done + have, strerror(errno));
                    return 1;
                }
                if (r == 0) {
                    fprintf(stderr, "emmio: %s: unexpected end of file at %" PRIu64 "\n",
                            path, off + done + have);
                    return 1;
                }
                have += (size_t)r;
            }
            got = buf;
        }
        if (compare(got, want, n, off + done, path))
            return 1;
        done += n;
    }
    if (base)
        munmap(base, maplen);
    free(buf);
    free(want);
    close(fd);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: emmio fill|check|zero|punch|seek|stat|truncate|readerr|writeerr|"
                    "rename|fsync ... (see emmio.c)\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    int use_mmap = 0, sync = 0, a = 2;
    while (a < argc && argv[a][0] == '-' && argv[a][1] && !argv[a][2]) {
        if (argv[a][1] == 'm')
            use_mmap = 1;
        else if (argv[a][1] == 'y')
            sync = 1;
        else
            return usage();
        a++;
    }
    int n = argc - a;
    char **v = argv + a;

    if (!strcmp(cmd, "fill") && n == 4)
        return do_fill(use_mmap, sync, v[0], parse_num(v[1]), parse_num(v[2]), parse_num(v[3]));
    if (!strcmp(cmd, "check") && n == 4)
        return do_check(use_mmap, 0, v[0], parse_num(v[1]), parse_num(v[2]), parse_num(v[3]));
    if (!strcmp(cmd, "zero") && n == 3)
        return do_check(use_mmap, 1, v[0], parse_num(v[1]), parse_num(v[2]), 0);
    if (!strcmp(cmd, "punch") && n == 3) {
        int fd = open_or_die(v[0], O_RDWR);
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)parse_num(v[1]),
                      (off_t)parse_num(v[2])) < 0) {
            fprintf(stderr, "emmio: punch %s: %s\n", v[0], strerror(errno));
            return 1;
        }
        return close(fd) < 0;
    }
    if (!strcmp(cmd, "seek") && n == 3) {
        int whence;
        if (!strcmp(v[2], "data"))
            whence = SEEK_DATA;
        else if (!strcmp(v[2], "hole"))
            whence = SEEK_HOLE;
        else
            return usage();
        int fd = open_or_die(v[0], O_RDONLY);
        off_t r = lseek(fd, (off_t)parse_num(v[1]), whence);
        if (r < 0)
            printf("%s\n", ename(errno));
        else
            printf("%lld\n", (long long)r);
        close(fd);
        return 0;
    }
    if (!strcmp(cmd, "stat") && n == 1) {
        struct stat st;
        if (stat(v[0], &st) < 0) {
            fprintf(stderr, "emmio: stat %s: %s\n", v[0], strerror(errno));
            return 1;
        }
        printf("%lld %lld\n", (long long)st.st_size, (long long)st.st_blocks);
        return 0;
    }
    if (!strcmp(cmd, "truncate") && n == 2) {
        int fd = open_or_die(v[0], O_RDWR | O_CREAT);
        if (ftruncate(fd, (off_t)parse_num(v[1])) < 0) {
            fprintf(stderr, "emmio: ftruncate %s: %s\n", v[0], strerror(errno));
            return 1;
        }
        return close(fd) < 0;
    }
    if (!strcmp(cmd, "readerr") && n == 3) {
        int fd = open(v[0], O_RDONLY);
        if (fd < 0) {
            printf("%s\n", ename(errno));
            return 0;
        }
        size_t len = (size_t)parse_num(v[2]);
        char *buf = malloc(len ? len : 1);
        ssize_t r = buf ? pread(fd, buf, len, (off_t)parse_num(v[1])) : -1;
        printf("%s\n", r < 0 ? ename(errno) : "OK");
        free(buf);
        close(fd);
        return 0;
    }
    if (!strcmp(cmd, "writeerr") && n == 3) {
        int fd = open(v[0], O_RDWR | O_CREAT, 0644);
        if (fd < 0) {
            printf("%s\n", ename(errno));
            return 0;
        }
        size_t len = (size_t)parse_num(v[2]);
        char *buf = calloc(1, len ? len : 1);
        ssize_t r = buf ? pwrite(fd, buf, len, (off_t)parse_num(v[1])) : -1;
        if (r >= 0 && sync && fsync(fd) < 0)
            r = -1;
        printf("%s\n", r < 0 ? ename(errno) : "OK");
        free(buf);
        close(fd);
        return 0;
    }
    if (!strcmp(cmd, "rename") && n == 2) {
        printf("%s\n", rename(v[0], v[1]) < 0 ? ename(errno) : "OK");
        return 0;
    }
    if (!strcmp(cmd, "fsync") && n == 1) {
        int fd = open(v[0], O_RDWR);
        if (fd < 0 || fsync(fd) < 0)
            printf("%s\n", ename(errno));
        else
            printf("OK\n");
        if (fd >= 0)
            close(fd);
        return 0;
    }
    return usage();
}
