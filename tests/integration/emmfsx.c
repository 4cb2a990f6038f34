/*
 * emmfsx.c - a randomized model-checking file tester (after xfstests' fsx).
 *
 * It owns one file: a seeded random sequence of read, write, mmap read, mmap
 * write, msync, truncate (down and up), punch hole, fallocate (plain and
 * KEEP_SIZE), fsync, close/reopen, page-cache invalidation and
 * SEEK_DATA/SEEK_HOLE is applied to it, and every result is checked against an
 * in-memory model of the file's contents and size: every read and mmap read
 * (also the bytes past EOF in the last page of a mapping, which must be zero),
 * st_size after every op that changes or keeps the size, and the SEEK answers.
 *
 * SEEK checks follow POSIX, not one filesystem's habits: a filesystem may
 * report data where the model holds zeros (a hole may be stored as data), but
 * never a hole where the model holds a non-zero byte; SEEK_HOLE answers at most
 * st_size; either whence at or past EOF gives ENXIO.
 *
 * Data written by op #n is recognisable: a byte at an offset = 0 mod 4 is
 * n % 255 + 1, at 2 mod 4 it is n / 255 % 255 + 1, odd offsets hold a hash of
 * (seed, n, offset) in 1..255. A bad range is decoded back to the op that wrote
 * it (mod 65025), which names stale data at a glance.
 *
 * On a mismatch it prints the seed and a replay command, the first bad range
 * (expected vs actual bytes), and the log of the last ops; exit 1. The same
 * seed and options always give the same op sequence (own PRNG, splitmix64).
 *
 * Single-threaded; one process per file (several processes may each run their
 * own file on one mount). Usage: emmfsx -h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

enum op_kind {
    K_READ,
    K_WRITE,
    K_MAPREAD,
    K_MAPWRITE,
    K_MSYNC,
    K_TRUNCATE,
    K_PUNCH,
    K_FALLOC,
    K_FALLOC_KEEP,
    K_FSYNC,
    K_REOPEN,
    K_SEEK,
    K_INVALIDATE,
    K_OTRUNC,
    K_NKINDS
};

static const char *const kind_name[K_NKINDS] = {
    "read",   "write",       "mapread", "mapwrite", "msync", "truncate",  "punch",
    "falloc", "falloc_keep", "fsync",   "reopen",   "seek",  "invalidate", "otrunc"};

/* Relative frequencies of the op kinds (a disabled kind weighs 0). */
static const unsigned kind_weight[K_NKINDS] = {10, 10, 8, 8, 3, 6, 5, 2, 2, 2, 2, 5, 2, 1};

/* log entry flags */
enum {
    F_SKIP = 1 << 0,      /* nothing to do (empty file) */
    F_EXTEND = 1 << 1,    /* mapwrite: ftruncate up first */
    F_SYNC = 1 << 2,      /* mapwrite: msync(MS_SYNC) before munmap; fsync: fsync (not fdatasync) */
    F_WALK = 1 << 3,      /* seek: a full SEEK_DATA/SEEK_HOLE walk of the file */
    F_VERIFY = 1 << 4,    /* reopen: full read-back of the file after the open */
    F_INVAL = 1 << 5,     /* msync: MS_INVALIDATE */
    F_ASYNC = 1 << 6,     /* msync: MS_ASYNC */
    F_FAULT = 1 << 7,     /* the model was corrupted on purpose after this op (-X) */
};

struct logent {
    uint64_t n;
    int kind;
    unsigned flags;
    uint64_t off, len;
    uint64_t size0, size1; /* size before and after */
    int64_t r1, r2;        /* seek answers (-errno on error) */
};

/* ---- options and state ---- */
static uint64_t opt_seed = 1, opt_nops = 10000, opt_maxlen = 256 << 10, opt_maxop = 64 << 10;
static uint64_t opt_fault = 0; /* -X: flip a model byte after this op (0 = never) */
static unsigned opt_logn = 64, opt_quiet, opt_verbose;
static uint64_t opt_progress;
static int enabled[K_NKINDS];
static char opt_cmdline[1024]; /* the options given, for the replay line */

static const char *path;
static int fd = -1;
static long pagesize;
static unsigned char *model, *buf, *zeros;
static uint64_t size; /* the model's size */
static uint64_t opno; /* the op being run, from 1 */
static uint64_t rng;
static uint64_t counts[K_NKINDS], skipped[K_NKINDS], bytes_checked;
static struct logent *oplog;
static struct logent *cur;

/* SIGBUS inside a mapping is a finding, not a crash. */
static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A uniform number in [0, n) (n > 0); the modulo bias is negligible here. */
static uint64_t rnd(uint64_t n)
{
    return n ? splitmix64(&rng) % n : 0;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t page_down(uint64_t x)
{
    return x & ~(uint64_t)(pagesize - 1);
}

static uint64_t page_up(uint64_t x)
{
    return page_down(x + (uint64_t)pagesize - 1);
}

/* ---- the data pattern ---- */

static unsigned char data_byte(uint64_t n, uint64_t off)
{
    switch (off & 3) {
    case 0:
        return (unsigned char)(n % 255 + 1);
    case 2:
        return (unsigned char)(n / 255 % 255 + 1);
    default: {
        uint64_t s = opt_seed ^ (n * 0x100000001b3ull) ^ (off * 0x9e3779b97f4a7c15ull);
        return (unsigned char)(splitmix64(&s) % 255 + 1);
    }
    }
}

static void gen_data(unsigned char *dst, uint64_t n, uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        dst[i] = data_byte(n, off + i);
}

/* The op (mod 65025) whose data p (at file offset off, len bytes) looks like, or -1. */
static int64_t decode_op(const unsigned char *p, uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i + 2 < len; i++) {
        if (((off + i) & 3) != 0)
            continue;
        if (p[i] == 0 || p[i + 2] == 0)
            continue;
        uint64_t n = (uint64_t)(p[i] - 1) + 255u * (uint64_t)(p[i + 2] - 1);
        /* confirm on the odd bytes in between */
        if (data_byte(n, off + i + 1) == p[i + 1])
            return (int64_t)n;
        /* the op number may be larger than 65025: try a few wraps */
        for (uint64_t w = 1; w < 64; w++)
            if (data_byte(n + w * 65025u, off + i + 1) == p[i + 1])
                return (int64_t)(n + w * 65025u);
        return (int64_t)n;
    }
    return -1;
}

/* ---- output ---- */

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    if (opt_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void fmt_entry(const struct logent *e, char *s, size_t n)
{
    const char *k = kind_name[e->kind];
    int w = 0;
    if (e->flags & F_SKIP) {
        snprintf(s, n, "%7" PRIu64 " %-11s skipped (size 0x%" PRIx64 ")", e->n, k, e->size0);
        return;
    }
    switch (e->kind) {
    case K_READ:
    case K_WRITE:
    case K_MAPREAD:
    case K_MAPWRITE:
    case K_MSYNC:
    case K_PUNCH:
    case K_FALLOC:
    case K_FALLOC_KEEP:
        w = snprintf(s, n, "%7" PRIu64 " %-11s 0x%06" PRIx64 " .. 0x%06" PRIx64 " (0x%" PRIx64
                           " bytes)",
                     e->n, k, e->off, e->off + e->len - 1, e->len);
        break;
    case K_TRUNCATE:
        w = snprintf(s, n, "%7" PRIu64 " %-11s %s to 0x%" PRIx64, e->n, k,
                     e->size1 < e->size0 ? "down" : "up", e->size1);
        break;
    case K_SEEK:
        if (e->flags & F_WALK)
            w = snprintf(s, n, "%7" PRIu64 " %-11s walk of the file", e->n, k);
        else
            w = snprintf(s, n, "%7" PRIu64 " %-11s at 0x%" PRIx64 ": data %s%" PRIx64 ", hole %s%" PRIx64,
                         e->n, k, e->off, e->r1 < 0 ? "-errno " : "0x",
                         (uint64_t)(e->r1 < 0 ? -e->r1 : e->r1), e->r2 < 0 ? "-errno " : "0x",
                         (uint64_t)(e->r2 < 0 ? -e->r2 : e->r2));
        break;
    default:
        w = snprintf(s, n, "%7" PRIu64 " %-11s", e->n, k);
        break;
    }
    if (w < 0 || (size_t)w >= n)
        return;
    s += w, n -= (size_t)w;
    w = snprintf(s, n, "  size 0x%" PRIx64, e->size0);
    if (e->size1 != e->size0 && w > 0 && (size_t)w < n)
        w += snprintf(s + w, n - (size_t)w, " -> 0x%" PRIx64, e->size1);
    if (w < 0 || (size_t)w >= n)
        return;
    s += w, n -= (size_t)w;
    snprintf(s, n, "%s%s%s%s%s%s", (e->flags & F_EXTEND) ? " [extend]" : "",
             (e->flags & F_SYNC) ? (e->kind == K_FSYNC ? " [fsync]" : " [msync]") : "",
             (e->flags & F_INVAL) ? " [invalidate]" : "", (e->flags & F_ASYNC) ? " [async]" : "",
             (e->flags & F_VERIFY) ? " [verify]" : "", (e->flags & F_FAULT) ? " [FAULT -X]" : "");
}

static const struct logent *log_find(uint64_t n)
{
    if (n == 0 || n > opno || opno - n >= opt_logn)
        return NULL;
    const struct logent *e = &oplog[n % opt_logn];
    return e->n == n ? e : NULL;
}

static void print_log(void)
{
    uint64_t first = opno > opt_logn ? opno - opt_logn + 1 : 1;
    char line[256];
    printf("LOG: the last %" PRIu64 " ops (of %" PRIu64 "):\n", opno - first + 1, opno);
    for (uint64_t n = first; n <= opno; n++) {
        const struct logent *e = log_find(n);
        if (!e)
            continue;
        fmt_entry(e, line, sizeof(line));
        printf("%s\n", line);
    }
}

static void print_replay(void)
{
    printf("seed %" PRIu64 "; replay: emmfsx%s -S %" PRIu64 " -N %" PRIu64 " %s\n", opt_seed,
           opt_cmdline, opt_seed, opno, path);
}

static void hexrow(const char *label, const unsigned char *p, uint64_t n, const unsigned char *other)
{
    printf("    %-8s", label);
    for (uint64_t i = 0; i < n; i++)
        printf("%s%02x", other && other[i] != p[i] ? "*" : " ", p[i]);
    printf("\n");
}

static void describe_origin(const char *what, const unsigned char *p, uint64_t off, uint64_t len)
{
    uint64_t nz = 0;
    for (uint64_t i = 0; i < len; i++)
        nz += p[i] != 0;
    if (nz == 0) {
        printf("  %s: all zeros\n", what);
        return;
    }
    int64_t n = decode_op(p, off, len);
    if (n < 0) {
        printf("  %s: %" PRIu64 " non-zero bytes, not recognisable as any op's data\n", what, nz);
        return;
    }
    char line[256];
    const struct logent *e = log_find((uint64_t)n);
    if (e) {
        fmt_entry(e, line, sizeof(line));
        printf("  %s: data written by op %" PRId64 ":\n  %s\n", what, n, line);
    } else {
        printf("  %s: data written by op %" PRId64 " (mod 65025; not in the log)\n", what, n);
    }
}

/* Prints the first run of differing bytes of got vs want (file offset off). */
static void print_bad_range_as(const char *actual, const unsigned char *got,
                               const unsigned char *want, uint64_t off, uint64_t len)
{
    uint64_t i = 0, j;
    while (i < len && got[i] == want[i])
        i++;
    if (i == len)
        return;
    /* the bad range runs to the last differing byte before a 64-byte agreeing stretch */
    uint64_t last = i;
    for (j = i; j < len && j - last <= 64; j++)
        if (got[j] != want[j])
            last = j;
    uint64_t bad = off + i, blen = last - i + 1;
    printf("first bad range: 0x%" PRIx64 " .. 0x%" PRIx64 " (0x%" PRIx64 " bytes; page %" PRIu64
           " + 0x%" PRIx64 ")\n",
           bad, bad + blen - 1, blen, bad / (uint64_t)pagesize, bad % (uint64_t)pagesize);
    uint64_t show0 = i > 8 ? i - 8 : 0;
    for (uint64_t r = show0; r < min64(len, min64(last + 17, i + 64)); r += 16) {
        uint64_t n = min64(16, len - r);
        printf("  0x%06" PRIx64 ":\n", off + r);
        hexrow("expected", want + r, n, NULL);
        hexrow(actual, got + r, n, want + r);
    }
    /* decode the writer from the bad range, or from a little around it when it is tiny */
    uint64_t ws = i, we = last + 1;
    if (we - ws < 8) {
        ws = i >= 4 ? i - 4 : 0;
        we = min64(len, last + 5);
    }
    describe_origin("expected", want + ws, off + ws, we - ws);
    describe_origin(actual, got + ws, off + ws, we - ws);
}

/* got: what the file holds (a read); want: the model */
static void print_bad_range(const unsigned char *got, const unsigned char *want, uint64_t off,
                            uint64_t len)
{
    print_bad_range_as("actual", got, want, off, len);
}

/* a SEEK answer put a hole (zeros) over the model's data at off */
static void print_seek_range(const unsigned char *want, uint64_t off, uint64_t len)
{
    print_bad_range_as("hole", zeros, want, off, len);
}

__attribute__((noreturn)) static void die(void)
{
    print_replay();
    print_log();
    fflush(stdout);
    exit(1);
}

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    printf("emmfsx: FAIL: op %" PRIu64 " (%s) on %s: ", opno, cur ? kind_name[cur->kind] : "-",
           path);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    die();
}

/* A failed syscall: the errno name and the op. */
static void sysfail(const char *call)
{
    int e = errno;
    const char *n = strerrorname_np(e);
    fail("%s: %s (%s)", call, n ? n : "?", strerror(e));
}

/* ---- checks ---- */

static void check_bytes(const char *what, const unsigned char *got, uint64_t off, uint64_t len)
{
    bytes_checked += len;
    if (memcmp(got, model + off, len) == 0)
        return;
    printf("emmfsx: FAIL: op %" PRIu64 " (%s) on %s: %s BAD DATA at 0x%" PRIx64 " .. 0x%" PRIx64
           " (file size 0x%" PRIx64 ")\n",
           opno, kind_name[cur->kind], path, what, off, off + len - 1, size);
    print_bad_range(got, model + off, off, len);
    die();
}

static void check_size(const char *after)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        sysfail("fstat");
    if ((uint64_t)st.st_size != size)
        fail("SIZE MISMATCH after %s: st_size 0x%" PRIx64 ", model 0x%" PRIx64, after,
             (uint64_t)st.st_size, size);
}

/* The first non-zero model byte in [from, size), or size. */
static uint64_t model_next_nonzero(uint64_t from)
{
    for (uint64_t i = from; i < size; i++)
        if (model[i])
            return i;
    return size;
}

static void bus_handler(int sig)
{
    (void)sig;
    if (bus_armed)
        siglongjmp(bus_jmp, 1);
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
}

/* ---- I/O helpers ---- */

static void do_open(void)
{
    fd = open(path, O_RDWR);
    if (fd < 0)
        sysfail("open");
}

/* pread until len bytes or EOF; returns the bytes read. */
static uint64_t read_all(unsigned char *dst, uint64_t off, uint64_t len)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, dst + done, (size_t)(len - done), (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sysfail("pread");
        }
        if (r == 0)
            break;
        done += (uint64_t)r;
    }
    return done;
}

static void write_all(const unsigned char *src, uint64_t off, uint64_t len)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(fd, src + done, (size_t)(len - done), (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sysfail("pwrite");
        }
        if (r == 0)
            fail("pwrite of 0x%" PRIx64 " bytes at 0x%" PRIx64 " wrote nothing", len - done,
                 off + done);
        done += (uint64_t)r;
    }
}

static void disable(int k, const char *why)
{
    enabled[k] = 0;
    say("emmfsx: %s: %s; %s disabled from op %" PRIu64 " on\n", path, why, kind_name[k], opno);
}

/* Reads the whole file back and checks it. */
static void verify_file(const char *what)
{
    for (uint64_t off = 0; off < size; off += opt_maxop) {
        uint64_t len = min64(opt_maxop, size - off);
        uint64_t got = read_all(buf, off, len);
        if (got != len)
            fail("%s: short read: 0x%" PRIx64 " of 0x%" PRIx64 " bytes at 0x%" PRIx64
                 " (size 0x%" PRIx64 ")",
                 what, got, len, off, size);
        check_bytes(what, buf, off, len);
    }
    unsigned char c;
    if (read_all(&c, size, 1) != 0)
        fail("%s: a read at EOF (0x%" PRIx64 ") returned data", what, size);
}

/* ---- choosing offsets and lengths ---- */

/* An offset in [0, limit): often page-aligned, near a page boundary or near EOF. */
static uint64_t pick_off(uint64_t limit)
{
    if (limit == 0)
        return 0;
    uint64_t o;
    switch (rnd(8)) {
    case 0:
        o = page_down(rnd(limit));
        break;
    case 1: {
        uint64_t b = page_down(rnd(limit + (uint64_t)pagesize));
        o = b + rnd(33);
        o = o >= 16 ? o - 16 : 0;
        break;
    }
    case 2:
        o = size + rnd(65);
        o = o >= 32 ? o - 32 : 0;
        break;
    default:
        o = rnd(limit);
        break;
    }
    return o < limit ? o : limit - 1;
}

/* A length in [1, maxl]: often tiny, a page multiple or a page multiple +- a little. */
static uint64_t pick_len(uint64_t maxl)
{
    uint64_t l, pages = maxl / (uint64_t)pagesize;
    if (maxl == 0)
        return 0;
    switch (rnd(8)) {
    case 0:
        l = 1 + rnd(16);
        break;
    case 1:
        l = pages ? (1 + rnd(pages)) * (uint64_t)pagesize : 1 + rnd(maxl);
        break;
    case 2:
        l = (pages ? (1 + rnd(pages)) * (uint64_t)pagesize : maxl) + rnd(17);
        l = l > 8 ? l - 8 : 1;
        break;
    default:
        l = 1 + rnd(maxl);
        break;
    }
    return l < 1 ? 1 : l > maxl ? maxl : l;
}

/* ---- the ops ---- */

static void op_read(void)
{
    uint64_t off = rnd(16) == 0 ? size + rnd(2 * (uint64_t)pagesize) : pick_off(size ? size : 1);
    uint64_t len = pick_len(opt_maxop);
    cur->off = off, cur->len = len;
    uint64_t want = off >= size ? 0 : min64(len, size - off);
    uint64_t got = read_all(buf, off, len);
    if (got != want)
        fail("READ SHORT/LONG: 0x%" PRIx64 " bytes at 0x%" PRIx64 ": got 0x%" PRIx64
             ", expected 0x%" PRIx64 " (size 0x%" PRIx64 ")",
             len, off, got, want, size);
    if (got)
        check_bytes("READ", buf, off, got);
}

static void op_write(void)
{
    uint64_t off = pick_off(opt_maxlen);
    uint64_t len = min64(pick_len(opt_maxop), opt_maxlen - off);
    cur->off = off, cur->len = len;
    gen_data(model + off, opno, off, len);
    write_all(model + off, off, len);
    if (off + len > size) {
        size = off + len;
        cur->size1 = size;
        check_size("write past EOF");
    }
}

/* Maps [off, off+len) of the file; returns the address of off. */
static unsigned char *map_range(uint64_t off, uint64_t len, int prot, void **base, size_t *mlen)
{
    uint64_t start = page_down(off);
    *mlen = (size_t)(off + len - start);
    *base = mmap(NULL, *mlen, prot, MAP_SHARED, fd, (off_t)start);
    if (*base == MAP_FAILED)
        return NULL;
    return (unsigned char *)*base + (off - start);
}

static void map_failed(int k)
{
    if (errno == ENODEV || errno == EOPNOTSUPP || errno == EACCES) {
        int e = errno;
        char why[96];
        snprintf(why, sizeof(why), "mmap: %s", strerror(e));
        disable(K_MAPREAD, why);
        disable(K_MAPWRITE, why);
        disable(K_MSYNC, why);
        (void)k;
        return;
    }
    sysfail("mmap");
}

/* The bytes past EOF in the last page of a mapping must read zero (POSIX). */
static void check_eof_page(const unsigned char *mapbase, uint64_t mapstart, uint64_t mapend)
{
    if (size % (uint64_t)pagesize == 0 || page_up(mapend) != page_up(size) || mapend > size)
        return;
    uint64_t tail = page_up(size) - size;
    const unsigned char *p = mapbase + (size - mapstart);
    bytes_checked += tail;
    if (memcmp(p, zeros, tail) == 0)
        return;
    printf("emmfsx: FAIL: op %" PRIu64 " (%s) on %s: MAPPED DATA PAST EOF at 0x%" PRIx64
           " .. 0x%" PRIx64 " is not zero (file size 0x%" PRIx64 ")\n",
           opno, kind_name[cur->kind], path, size, page_up(size) - 1, size);
    print_bad_range(p, zeros, size, tail);
    die();
}

/* A range inside the file for an op on existing bytes (logged in cur); 0 and the
 * op is marked skipped when the file is empty. */
static int pick_range_in_file(uint64_t *off, uint64_t *len)
{
    if (size == 0) {
        cur->flags |= F_SKIP;
        return 0;
    }
    *off = pick_off(size);
    *len = min64(pick_len(opt_maxop), size - *off);
    cur->off = *off, cur->len = *len;
    return 1;
}

static void op_mapread(void)
{
    uint64_t off, len;
    if (!pick_range_in_file(&off, &len))
        return;
    void *base;
    size_t mlen;
    unsigned char *p = map_range(off, len, PROT_READ, &base, &mlen);
    if (!p) {
        map_failed(K_MAPREAD);
        return;
    }
    if (sigsetjmp(bus_jmp, 1)) {
        bus_armed = 0;
        fail("SIGBUS reading the mapping at 0x%" PRIx64 " .. 0x%" PRIx64, off, off + len - 1);
    }
    bus_armed = 1;
    memcpy(buf, p, len);
    check_eof_page(base, page_down(off), off + len);
    bus_armed = 0;
    check_bytes("MAPREAD", buf, off, len);
    if (munmap(base, mlen) < 0)
        sysfail("munmap");
}

static void op_mapwrite(void)
{
    uint64_t off = pick_off(opt_maxlen);
    uint64_t len = min64(pick_len(opt_maxop), opt_maxlen - off);
    cur->off = off, cur->len = len;
    if (off + len > size) {
        cur->flags |= F_EXTEND;
        if (ftruncate(fd, (off_t)(off + len)) < 0)
            sysfail("ftruncate (mapwrite past EOF)");
        size = off + len;
        cur->size1 = size;
        check_size("ftruncate up for a mapwrite");
    }
    void *base;
    size_t mlen;
    unsigned char *p = map_range(off, len, PROT_READ | PROT_WRITE, &base, &mlen);
    if (!p) {
        map_failed(K_MAPWRITE);
        return;
    }
    /* msync only while the msync kind is enabled (-x msync: a stalled pager) */
    int sync = rnd(2) == 0 && enabled[K_MSYNC];
    if (sync)
        cur->flags |= F_SYNC;
    gen_data(model + off, opno, off, len);
    if (sigsetjmp(bus_jmp, 1)) {
        bus_armed = 0;
        fail("SIGBUS writing the mapping at 0x%" PRIx64 " .. 0x%" PRIx64, off, off + len - 1);
    }
    bus_armed = 1;
    memcpy(p, model + off, len);
    bus_armed = 0;
    if (sync && msync(base, mlen, MS_SYNC) < 0)
        sysfail("msync(MS_SYNC) after a mapwrite");
    if (munmap(base, mlen) < 0)
        sysfail("munmap");
}

static void op_msync(void)
{
    uint64_t off, len;
    if (!pick_range_in_file(&off, &len))
        return;
    void *base;
    size_t mlen;
    unsigned char *p = map_range(off, len, PROT_READ | PROT_WRITE, &base, &mlen);
    if (!p) {
        map_failed(K_MSYNC);
        return;
    }
    int flags;
    switch (rnd(3)) {
    case 0:
        flags = MS_SYNC;
        break;
    case 1:
        flags = MS_SYNC | MS_INVALIDATE;
        cur->flags |= F_INVAL;
        break;
    default:
        flags = MS_ASYNC;
        cur->flags |= F_ASYNC;
        break;
    }
    if (sigsetjmp(bus_jmp, 1)) {
        bus_armed = 0;
        fail("SIGBUS in the msync'd mapping at 0x%" PRIx64 " .. 0x%" PRIx64, off, off + len - 1);
    }
    bus_armed = 1;
    /* dirty one byte of the range with the value it holds, so there is something to sync */
    uint64_t at = off + rnd(len);
    volatile unsigned char *vp = p + (at - off);
    *vp = *vp;
    bus_armed = 0;
    if (msync(base, mlen, flags) < 0)
        sysfail("msync");
    bus_armed = 1;
    memcpy(buf, p, len);
    check_eof_page(base, page_down(off), off + len);
    bus_armed = 0;
    check_bytes("MSYNC'D MAPREAD", buf, off, len);
    if (munmap(base, mlen) < 0)
        sysfail("munmap");
}

static void op_truncate(void)
{
    uint64_t ns;
    if (size > 0 && rnd(2) == 0) {
        /* down */
        switch (rnd(6)) {
        case 0:
            ns = 0;
            break;
        case 1:
            ns = page_down(rnd(size));
            break;
        case 2:
            ns = size > 64 ? size - 1 - rnd(64) : rnd(size);
            break;
        default:
            ns = rnd(size);
            break;
        }
    } else {
        /* up (or to the same size when already at the maximum) */
        if (size >= opt_maxlen) {
            ns = opt_maxlen;
        } else {
            uint64_t room = opt_maxlen - size;
            switch (rnd(4)) {
            case 0:
                ns = size + 1 + rnd(min64(room, 64));
                break;
            case 1:
                ns = page_up(size + 1 + rnd(room));
                ns = ns > opt_maxlen ? opt_maxlen : ns;
                break;
            default:
                ns = size + 1 + rnd(room);
                break;
            }
        }
    }
    cur->off = ns;
    if (ftruncate(fd, (off_t)ns) < 0)
        sysfail("ftruncate");
    if (ns < size)
        memset(model + ns, 0, size - ns);
    size = ns;
    cur->size1 = size;
    check_size("ftruncate");
}

/* fallocate; 1 if done, 0 if the filesystem does not support it (kind disabled). */
static int falloc(int k, int mode, uint64_t off, uint64_t len)
{
    if (fallocate(fd, mode, (off_t)off, (off_t)len) == 0)
        return 1;
    if (errno == EOPNOTSUPP) {
        char why[64];
        snprintf(why, sizeof(why), "fallocate mode 0x%x: EOPNOTSUPP", (unsigned)mode);
        disable(k, why);
        return 0;
    }
    sysfail("fallocate");
    return 0;
}

static void op_punch(void)
{
    if (size == 0) {
        cur->flags |= F_SKIP;
        return;
    }
    uint64_t off = pick_off(size);
    uint64_t len = pick_len(opt_maxop);
    cur->off = off, cur->len = len;
    if (!falloc(K_PUNCH, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len))
        return;
    if (off < size)
        memset(model + off, 0, min64(len, size - off));
    check_size("punch hole (KEEP_SIZE)");
}

static void op_falloc(int keep)
{
    uint64_t off = pick_off(opt_maxlen);
    uint64_t len = min64(pick_len(opt_maxop), opt_maxlen - off);
    cur->off = off, cur->len = len;
    if (!falloc(keep ? K_FALLOC_KEEP : K_FALLOC, keep ? FALLOC_FL_KEEP_SIZE : 0, off, len))
        return;
    if (!keep && off + len > size) {
        size = off + len;
        cur->size1 = size;
    }
    check_size(keep ? "fallocate KEEP_SIZE" : "fallocate");
}

static void op_fsync(void)
{
    if (rnd(2)) {
        cur->flags |= F_SYNC;
        if (fsync(fd) < 0)
            sysfail("fsync");
    } else if (fdatasync(fd) < 0) {
        sysfail("fdatasync");
    }
}

static void op_reopen(void)
{
    if (close(fd) < 0)
        sysfail("close");
    do_open();
    check_size("close and reopen");
    if (rnd(2)) {
        cur->flags |= F_VERIFY;
        verify_file("READ AFTER REOPEN");
    }
}

/* close, and open again with O_TRUNC: the file is empty */
static void op_otrunc(void)
{
    if (close(fd) < 0)
        sysfail("close");
    fd = open(path, O_RDWR | O_TRUNC);
    if (fd < 0)
        sysfail("open(O_TRUNC)");
    memset(model, 0, size);
    size = 0;
    cur->size1 = 0;
    check_size("open(O_TRUNC)");
}

static void op_invalidate(void)
{
    int r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (r) {
        errno = r;
        sysfail("posix_fadvise(DONTNEED)");
    }
}

/* lseek(whence) at off: the answer, or -errno. */
static int64_t seek(uint64_t off, int whence)
{
    off_t r = lseek(fd, (off_t)off, whence);
    return r < 0 ? -(int64_t)errno : (int64_t)r;
}

static void seek_fail_errno(const char *w, uint64_t off, int64_t r)
{
    const char *n = strerrorname_np((int)-r);
    fail("%s(0x%" PRIx64 "): %s (size 0x%" PRIx64 ")", w, off, n ? n : "?", size);
}

/* Checks SEEK_DATA(off) = d (or -errno) against the model. */
static void check_seek_data(uint64_t off, int64_t d)
{
    if (off >= size) {
        if (d != -ENXIO) {
            if (d < 0)
                seek_fail_errno("SEEK_DATA past EOF", off, d);
            fail("SEEK_DATA(0x%" PRIx64 ") past EOF (size 0x%" PRIx64 ") = 0x%" PRIx64
                 ", expected ENXIO",
                 off, size, (uint64_t)d);
        }
        return;
    }
    uint64_t nz = model_next_nonzero(off);
    if (d == -ENXIO) {
        if (nz < size) {
            printf("emmfsx: FAIL: op %" PRIu64 " (%s) on %s: SEEK_DATA(0x%" PRIx64
                   ") = ENXIO, but the model has data at 0x%" PRIx64 " (size 0x%" PRIx64 ")\n",
                   opno, kind_name[cur->kind], path, off, nz, size);
            print_seek_range(model + nz, nz, min64(size - nz, (uint64_t)pagesize));
            die();
        }
        return;
    }
    if (d < 0)
        seek_fail_errno("SEEK_DATA", off, d);
    if ((uint64_t)d < off || (uint64_t)d >= size)
        fail("SEEK_DATA(0x%" PRIx64 ") = 0x%" PRIx64 ": outside [0x%" PRIx64 ", size 0x%" PRIx64
             ")",
             off, (uint64_t)d, off, size);
    if ((uint64_t)d > nz) {
        printf("emmfsx: FAIL: op %" PRIu64 " (%s) on %s: SEEK_DATA(0x%" PRIx64 ") = 0x%" PRIx64
               ", skipping data at 0x%" PRIx64 " (the model has non-zero bytes there)\n",
               opno, kind_name[cur->kind], path, off, (uint64_t)d, nz);
        print_seek_range(model + nz, nz, min64((uint64_t)d - nz, (uint64_t)pagesize));
        die();
    }
}

/* Checks SEEK_HOLE(off) = h (or -errno) against the model. */
static void check_seek_hole(uint64_t off, int64_t h)
{
    if (off >= size) {
        if (h != -ENXIO) {
            if (h < 0)
                seek_fail_errno("SEEK_HOLE past EOF", off, h);
            fail("SEEK_HOLE(0x%" PRIx64 ") past EOF (size 0x%" PRIx64 ") = 0x%" PRIx64
                 ", expected ENXIO",
                 off, size, (uint64_t)h);
        }
        return;
    }
    if (h < 0)
        seek_fail_errno("SEEK_HOLE", off, h);
    if ((uint64_t)h < off || (uint64_t)h > size)
        fail("SEEK_HOLE(0x%" PRIx64 ") = 0x%" PRIx64 ": outside [0x%" PRIx64 ", size 0x%" PRIx64
             "]",
             off, (uint64_t)h, off, size);
    if ((uint64_t)h < size && model[h] != 0) {
        printf("emmfsx: FAIL: op %" PRIu64 " (%s) on %s: SEEK_HOLE(0x%" PRIx64 ") = 0x%" PRIx64
               ", a hole where the model has data (size 0x%" PRIx64 ")\n",
               opno, kind_name[cur->kind], path, off, (uint64_t)h, size);
        uint64_t n = 0;
        while ((uint64_t)h + n < size && n < (uint64_t)pagesize && model[(uint64_t)h + n])
            n++;
        print_seek_range(model + h, (uint64_t)h, n);
        die();
    }
}

/* Walks the file as cp does: data, hole, data, ... every hole must be zeros in the model. */
static void seek_walk(void)
{
    uint64_t pos = 0, steps = 0;
    cur->flags |= F_WALK;
    while (pos < size) {
        if (++steps > 4 * (size / (uint64_t)pagesize) + 64)
            fail("SEEK walk does not end (at 0x%" PRIx64 ", size 0x%" PRIx64 ")", pos, size);
        int64_t d = seek(pos, SEEK_DATA);
        check_seek_data(pos, d);
        if (d == -ENXIO)
            break;
        int64_t h = seek((uint64_t)d, SEEK_HOLE);
        check_seek_hole((uint64_t)d, h);
        /* SEEK_HOLE(d) == d: d was data, now a hole (a page that left the
         * cache between the calls, say). Both answers are legal as long as the
         * model holds zero at d (checked); go on from the next page, as the
         * bytes up to it are data, which constrains nothing. */
        pos = (uint64_t)h > (uint64_t)d ? (uint64_t)h : page_up((uint64_t)d + 1);
    }
}

static void op_seek(void)
{
    if (rnd(4) == 0) {
        seek_walk();
        return;
    }
    uint64_t off = rnd(8) == 0 ? size + rnd(2 * (uint64_t)pagesize) : pick_off(size ? size : 1);
    cur->off = off;
    int64_t d = seek(off, SEEK_DATA);
    cur->r1 = d;
    check_seek_data(off, d);
    int64_t h = seek(off, SEEK_HOLE);
    cur->r2 = h;
    check_seek_hole(off, h);
    /* the hole found must be zeros up to the next data */
    if (h >= 0 && (uint64_t)h < size)
        check_seek_data((uint64_t)h, seek((uint64_t)h, SEEK_DATA));
}

/*
 * -X: corrupt the model on purpose, to show that the checks bite. One model
 * byte inside the file is flipped after op -X, and flipped again whenever a
 * later op rewrites it (a stuck byte), so the fault cannot be overwritten by
 * chance; a truncate below it clears it until the file grows past it again.
 */
static uint64_t fault_at = UINT64_MAX;
static unsigned char fault_val;
static int fault_on;

static void inject_fault(void)
{
    if (fault_at == UINT64_MAX) {
        if (size == 0)
            return; /* wait for a non-empty file */
        uint64_t s = opt_seed ^ 0x5eed5eed5eedull;
        fault_at = splitmix64(&s) % size;
        say("emmfsx: -X: model byte at 0x%" PRIx64 " corrupted from op %" PRIu64 " on\n",
            fault_at, opno);
    }
    if (fault_at >= size) {
        fault_on = 0; /* truncated away: the model holds a zero beyond EOF */
        return;
    }
    if (fault_on && model[fault_at] == fault_val)
        return;
    model[fault_at] ^= 0x5a;
    fault_val = model[fault_at];
    fault_on = 1;
    cur->flags |= F_FAULT;
}

static int pick_kind(void)
{
    uint64_t total = 0;
    for (int k = 0; k < K_NKINDS; k++)
        total += enabled[k] ? kind_weight[k] : 0;
    if (total == 0)
        return -1;
    uint64_t r = rnd(total);
    for (int k = 0; k < K_NKINDS; k++) {
        if (!enabled[k])
            continue;
        if (r < kind_weight[k])
            return k;
        r -= kind_weight[k];
    }
    return -1;
}

static void run_op(int k)
{
    switch (k) {
    case K_READ: op_read(); break;
    case K_WRITE: op_write(); break;
    case K_MAPREAD: op_mapread(); break;
    case K_MAPWRITE: op_mapwrite(); break;
    case K_MSYNC: op_msync(); break;
    case K_TRUNCATE: op_truncate(); break;
    case K_PUNCH: op_punch(); break;
    case K_FALLOC: op_falloc(0); break;
    case K_FALLOC_KEEP: op_falloc(1); break;
    case K_FSYNC: op_fsync(); break;
    case K_REOPEN: op_reopen(); break;
    case K_SEEK: op_seek(); break;
    case K_INVALIDATE: op_invalidate(); break;
    case K_OTRUNC: op_otrunc(); break;
    default: break;
    }
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: emmfsx [-q] [-v] [-S SEED] [-N OPS] [-l MAXLEN] [-o MAXOP] [-x KIND[,KIND]]\n"
            "              [-X OP] [-L LOGN] [-P N] FILE\n"
            "  -S SEED    the PRNG seed (default: from the clock, printed)\n"
            "  -N OPS     number of ops (default 10000)\n"
            "  -l MAXLEN  largest file size (default 256K)\n"
            "  -o MAXOP   largest length of one op (default 64K)\n"
            "  -x KINDS   disable op kinds (repeatable, comma list): read write mapread mapwrite\n"
            "             msync truncate punch falloc falloc_keep fsync reopen seek invalidate\n"
            "             otrunc (reopen with O_TRUNC);\n"
            "             'map' = mapread,mapwrite,msync; 'sync' = fsync,msync\n"
            "  -X OP      fault injection: corrupt one model byte from op OP on (the run must fail)\n"
            "  -L LOGN    ops kept in the log printed on a failure (default 64)\n"
            "  -P N       print progress every N ops\n"
            "  -q         quiet: print only failures; -v: print every op\n"
            "FILE is created (or truncated to 0). Numbers take K, M, G suffixes.\n"
            "Exit 0: every check passed; 1: a check failed; 2: bad usage.\n");
}

static uint64_t parse_num(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *s == '-') {
        fprintf(stderr, "emmfsx: -%s: bad number '%s'\n", opt, s);
        exit(2);
    }
    unsigned sh = 0;
    switch (*end) {
    case 'k': case 'K': sh = 10; end++; break;
    case 'm': case 'M': sh = 20; end++; break;
    case 'g': case 'G': sh = 30; end++; break;
    default: break;
    }
    if (*end || (sh && v > (~0ull >> sh))) {
        fprintf(stderr, "emmfsx: -%s: bad number '%s'\n", opt, s);
        exit(2);
    }
    return (uint64_t)v << sh;
}

static void disable_list(const char *list)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", list);
    for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "map") == 0) {
            enabled[K_MAPREAD] = enabled[K_MAPWRITE] = enabled[K_MSYNC] = 0;
            continue;
        }
        if (strcmp(t, "sync") == 0) {
            enabled[K_FSYNC] = enabled[K_MSYNC] = 0;
            continue;
        }
        int k;
        for (k = 0; k < K_NKINDS; k++)
            if (strcmp(t, kind_name[k]) == 0)
                break;
        if (k == K_NKINDS) {
            fprintf(stderr, "emmfsx: -x: unknown op kind '%s'\n", t);
            exit(2);
        }
        enabled[k] = 0;
    }
}

static void append_opt(char flag, const char *arg)
{
    size_t n = strlen(opt_cmdline);
    snprintf(opt_cmdline + n, sizeof(opt_cmdline) - n, " -%c%s%s", flag, arg ? " " : "",
             arg ? arg : "");
}

int main(int argc, char **argv)
{
    int c, have_seed = 0;
    for (int k = 0; k < K_NKINDS; k++)
        enabled[k] = 1;
    while ((c = getopt(argc, argv, "qvS:N:l:o:x:X:L:P:h")) != -1) {
        switch (c) {
        case 'q': opt_quiet = 1; break;
        case 'v': opt_verbose = 1; break;
        case 'S': opt_seed = parse_num("S", optarg); have_seed = 1; break;
        case 'N': opt_nops = parse_num("N", optarg); break;
        case 'l': opt_maxlen = parse_num("l", optarg); append_opt('l', optarg); break;
        case 'o': opt_maxop = parse_num("o", optarg); append_opt('o', optarg); break;
        case 'x': disable_list(optarg); append_opt('x', optarg); break;
        case 'X': opt_fault = parse_num("X", optarg); append_opt('X', optarg); break;
        case 'L': opt_logn = (unsigned)parse_num("L", optarg); break;
        case 'P': opt_progress = parse_num("P", optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    path = argv[optind];
    if (opt_maxlen == 0 || opt_maxlen > (1ull << 31) || opt_maxop == 0 || opt_logn == 0 ||
        opt_logn > 1000000) {
        fprintf(stderr, "emmfsx: need 0 < -l <= 2G, -o > 0, 0 < -L <= 1000000\n");
        return 2;
    }
    if (!have_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt_seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
    }
    if (opt_verbose)
        opt_quiet = 0;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a report interleaves sanely with other output */
    pagesize = sysconf(_SC_PAGESIZE);
    opt_maxop = min64(opt_maxop, opt_maxlen);
    rng = opt_seed;

    model = calloc(1, opt_maxlen);
    buf = malloc(opt_maxop + 2 * (uint64_t)pagesize);
    zeros = calloc(1, max64((uint64_t)pagesize, opt_maxop));
    oplog = calloc(opt_logn, sizeof(*oplog));
    if (!model || !buf || !zeros || !oplog) {
        fprintf(stderr, "emmfsx: out of memory\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bus_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);

    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "emmfsx: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    say("emmfsx: %s: seed %" PRIu64 ", %" PRIu64 " ops, max size 0x%" PRIx64
        ", max op 0x%" PRIx64 "%s%s\n",
        path, opt_seed, opt_nops, opt_maxlen, opt_maxop, *opt_cmdline ? ", options" : "",
        opt_cmdline);

    for (opno = 1; opno <= opt_nops; opno++) {
        int k = pick_kind();
        if (k < 0) {
            fprintf(stderr, "emmfsx: every op kind is disabled\n");
            return 2;
        }
        cur = &oplog[opno % opt_logn];
        *cur = (struct logent){.n = opno, .kind = k, .size0 = size, .size1 = size};
        run_op(k);
        cur->size1 = size;
        if (cur->flags & F_SKIP)
            skipped[k]++;
        else
            counts[k]++;
        if (opt_verbose) {
            char line[256];
            fmt_entry(cur, line, sizeof(line));
            printf("%s\n", line);
        }
        if (opt_fault && opno >= opt_fault)
            inject_fault();
        if (opt_progress && opno % opt_progress == 0)
            say("emmfsx: %s: op %" PRIu64 ", size 0x%" PRIx64 "\n", path, opno, size);
    }
    opno = opt_nops;
    struct logent final = {.n = opno, .kind = K_READ, .size0 = size, .size1 = size};
    cur = &final;
    check_size("the last op");
    verify_file("FINAL READ");
    if (close(fd) < 0)
        sysfail("close");
    fd = -1;

    if (!opt_quiet) {
        printf("emmfsx: %s: seed %" PRIu64 ": %" PRIu64 " ops passed, 0x%" PRIx64
               " bytes checked, final size 0x%" PRIx64 "\n",
               path, opt_seed, opt_nops, bytes_checked, size);
        printf("emmfsx: counts:");
        for (int k = 0; k < K_NKINDS; k++)
            printf(" %s=%" PRIu64, kind_name[k], counts[k]);
        printf("\nemmfsx: skipped (empty file):");
        for (int k = 0; k < K_NKINDS; k++)
            if (skipped[k])
                printf(" %s=%" PRIu64, kind_name[k], skipped[k]);
        printf("\nemmfsx: disabled:");
        int any = 0;
        for (int k = 0; k < K_NKINDS; k++)
            if (!enabled[k])
                printf(" %s", kind_name[k]), any = 1;
        printf("%s\n", any ? "" : " none");
    }
    free(model);
    free(buf);
    free(zeros);
    free(oplog);
    return 0;
}
