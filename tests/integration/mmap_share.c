/*
 * mmap_share.c - two real processes share one file through their own MAP_SHARED
 * mappings and check that read(2), write(2) and mmap agree, that MAP_PRIVATE is
 * copy-on-write and does not leak into the file, and that msync succeeds.
 *
 * Usage: mmap_share PATH NPAGES
 * PATH is created or resized to NPAGES pages. The parent (A) and the child (B)
 * each open PATH and map it after the fork, so they share nothing but the file.
 * They take turns over two pipes; every page written carries a pattern made of
 * (writer, round, page), so a stale or misplaced page is named in the message.
 * Exit 0 when everything agreed; 1 with a message naming the step otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096

static const char *who = "?";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mmap_share[%s]: ", who);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* The 64-bit word i of a page written by `w` in round r to page p. */
static uint64_t word(int w, int r, long p, int i)
{
    return ((uint64_t)w << 56) ^ ((uint64_t)r << 40) ^ ((uint64_t)p << 12) ^ (uint64_t)i ^
           0x5555000000000000ull;
}

static void put(unsigned char *page, int w, int r, long p)
{
    for (int i = 0; i < PG / 8; i++) {
        uint64_t v = word(w, r, p, i);
        memcpy(page + 8 * i, &v, 8);
    }
}

static void expect(const unsigned char *page, int w, int r, long p, const char *how)
{
    for (int i = 0; i < PG / 8; i++) {
        uint64_t v;
        memcpy(&v, page + 8 * i, 8);
        if (v != word(w, r, p, i))
            die("page %ld via %s: word %d is %#llx, expected writer %c round %d (%#llx)", p,
                how, i, (unsigned long long)v, w, r, (unsigned long long)word(w, r, p, i));
    }
}

static void expect_pread(int fd, int w, int r, long p)
{
    unsigned char buf[PG];
    ssize_t n = pread(fd, buf, PG, (off_t)p * PG);
    if (n != PG)
        die("pread page %ld: %s", p, n < 0 ? strerror(errno) : "short read");
    expect(buf, w, r, p, "pread");
}

static void send1(int fd, char c)
{
    if (write(fd, &c, 1) != 1)
        die("pipe write: %s", strerror(errno));
}

static void recv1(int fd, char want)
{
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n != 1)
        die("peer went away (pipe read %zd)", n);
    if (c != want)
        die("protocol: got '%c', expected '%c' (peer failed)", c, want);
}

static unsigned char *map_file(int fd, long npages, int flags)
{
    void *m = mmap(NULL, (size_t)npages * PG, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (m == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    return m;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mmap_share PATH NPAGES\n");
        return 2;
    }
    const char *path = argv[1];
    long npages = atol(argv[2]);
    if (npages < 8) {
        fprintf(stderr, "mmap_share: NPAGES must be >= 8\n");
        return 2;
    }
    int fd0 = open(path, O_RDWR | O_CREAT, 0644);
    if (fd0 < 0 || ftruncate(fd0, (off_t)npages * PG) < 0) {
        fprintf(stderr, "mmap_share: %s: %s\n", path, strerror(errno));
        return 1;
    }
    close(fd0);

    int ab[2], ba[2]; /* A -> B, B -> A */
    if (pipe(ab) < 0 || pipe(ba) < 0)
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    int is_a = pid != 0;
    who = is_a ? "A" : "B";
    int in = is_a ? ba[0] : ab[0], out = is_a ? ab[1] : ba[1];
    close(is_a ? ab[0] : ba[0]);
    close(is_a ? ba[1] : ab[1]);
    if (!is_a)
        alarm(120);

    int fd = open(path, O_RDWR);
    if (fd < 0)
        die("open: %s", strerror(errno));
    unsigned char *m = map_file(fd, npages, MAP_SHARED);
    long half = npages / 2;

    /* Round 1..: A writes pages [0, half) through its mapping, page by page;
     * B sees each through its own mapping and through pread, then answers with a
     * write to the mirror page (half + p): through mmap on even pages, pwrite on
     * odd ones. A checks the answer through its mapping and pread. */
    for (long p = 0; p < half; p++) {
        int r = (int)(p % 7) + 1;
        if (is_a) {
            put(m + p * PG, 'A', r, p);
            send1(out, 'w');
            recv1(in, 'w');
            expect(m + (half + p) * PG, 'B', r, half + p, "A's mapping after B wrote");
            expect_pread(fd, 'B', r, half + p);
        } else {
            recv1(in, 'w');
            expect(m + p * PG, 'A', r, p, "B's mapping after A wrote via mmap");
            expect_pread(fd, 'A', r, p);
            if (p % 2 == 0) {
                put(m + (half + p) * PG, 'B', r, half + p);
            } else {
                unsigned char buf[PG];
                put(buf, 'B', r, half + p);
                if (pwrite(fd, buf, PG, (off_t)(half + p) * PG) != PG)
                    die("pwrite page %ld: %s", half + p, strerror(errno));
            }
            send1(out, 'w');
        }
    }

    /* write(2) over a page both have mapped and touched: both mappings see it. */
    if (is_a) {
        unsigned char buf[PG];
        put(buf, 'W', 9, 0);
        if (pwrite(fd, buf, PG, 0) != PG)
            die("pwrite page 0: %s", strerror(errno));
        expect(m, 'W', 9, 0, "A's mapping after A's pwrite");
        send1(out, 'p');
        recv1(in, 'p');
    } else {
        recv1(in, 'p');
        expect(m, 'W', 9, 0, "B's mapping after A's pwrite");
        send1(out, 'p');
    }

    /* MAP_PRIVATE in B: sees the file, then its own writes; nobody else does. */
    if (is_a) {
        recv1(in, 'c');
        expect(m + PG, 'A', 2, 1, "A's shared mapping after B's private write");
        expect_pread(fd, 'A', 2, 1);
        /* and a later shared write does not undo B's private copy (B checks) */
        put(m + 2 * PG, 'A', 11, 2);
        send1(out, 'c');
        recv1(in, 'c');
    } else {
        unsigned char *pm = map_file(fd, npages, MAP_PRIVATE);
        expect(pm + PG, 'A', 2, 1, "B's private mapping before writing");
        put(pm + PG, 'P', 10, 1);
        put(pm + 2 * PG, 'P', 10, 2);
        expect(pm + PG, 'P', 10, 1, "B's private mapping after its own write");
        expect(m + PG, 'A', 2, 1, "B's shared mapping after its private write");
        expect_pread(fd, 'A', 2, 1);
        send1(out, 'c');
        recv1(in, 'c');
        expect(pm + 2 * PG, 'P', 10, 2, "B's private copy after A's shared write");
        expect(m + 2 * PG, 'A', 11, 2, "B's shared mapping after A's shared write");
        munmap(pm, (size_t)npages * PG);
        expect_pread(fd, 'A', 2, 1);
        send1(out, 'c');
    }

    /* msync: A rewrites every page and msyncs; B checks everything by pread. */
    if (is_a) {
        for (long p = 0; p < npages; p++)
            put(m + p * PG, 'S', 12, p);
        if (msync(m, (size_t)npages * PG, MS_SYNC) < 0)
            die("msync: %s", strerror(errno));
        if (fsync(fd) < 0)
            die("fsync: %s", strerror(errno));
        send1(out, 's');
        recv1(in, 's');
    } else {
        recv1(in, 's');
        for (long p = 0; p < npages; p++) {
            expect_pread(fd, 'S', 12, p);
            expect(m + p * PG, 'S', 12, p, "B's mapping after A's msync");
        }
        send1(out, 's');
    }

    munmap(m, (size_t)npages * PG);
    close(fd);
    if (!is_a)
        _exit(0);
    int st;
    if (waitpid(pid, &st, 0) < 0)
        die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("B failed (status %#x)", st);
    printf("mmap_share: %ld pages: shared, read/write/mmap, private COW, msync all agree\n",
           npages);
    return 0;
}
