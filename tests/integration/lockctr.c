/*
 * lockctr.c - a counter in a shared file, for the record-lock tests
 * (t_memsrv_locks.sh) and the memserver bench:
 *
 *   lockctr incr FILE OFF N fcntl|flock|none [mmap|mmapnosync]
 *       N times: lock, read the 64-bit counter at OFF, add one, write it,
 *       unlock. Without mmap through pread/pwrite; with mmap through a
 *       shared mapping, msync(MS_SYNC) before the unlock (mmapnosync: no
 *       msync, the unlock alone must carry the store to the others).
 *   lockctr read FILE OFF          print the counter
 *   lockctr hold FILE fcntl|flock  lock [0, 4096) (or the file) exclusively,
 *                                  print "locked", then sleep until killed
 *   lockctr try FILE fcntl|flock   a non-blocking exclusive lock: prints
 *                                  "got" (exit 0) or "busy" (exit 1)
 *   lockctr wait FILE fcntl|flock  a blocking one: prints "got"
 *   lockctr getlk FILE             F_GETLK for a write lock on [0, 4096):
 *                                  "unlocked" or "TYPE start S len L pid P"
 *   lockctr pingpong FILE N        N times: F_SETLKW write lock on [0, 8),
 *                                  increment, unlock (the bench's ping-pong)
 *   lockctr invalwrite FILE OTHER N  the bench's invalidating write: N times,
 *                                  read page 0 through OTHER (the same object
 *                                  on another host), then time a 4 KiB pwrite
 *                                  of it through FILE; then N pwrites that
 *                                  invalidate nothing. Prints
 *                                  "inval_us MEAN plain_us MEAN".
 *
 * Exit status: 0 ok, 1 busy (try), 2 usage or an error (named on stderr).
 * Locking: one process, one thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char *file;

static void
die(const char *what)
{
    fprintf(stderr, "lockctr: %s: %s: %s\n", file, what, strerror(errno));
    exit(2);
}

static int
lk(int fd, const char *kind, int type, off_t off, off_t len, int wait)
{
    if (!strcmp(kind, "none"))
        return 0;
    if (!strcmp(kind, "flock"))
        return flock(fd, (type == F_UNLCK ? LOCK_UN : type == F_RDLCK ? LOCK_SH : LOCK_EX) |
                             (wait ? 0 : LOCK_NB));
    struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET, .l_start = off, .l_len = len};
    int rc;
    while ((rc = fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl)) < 0 && errno == EINTR)
        ;
    return rc;
}

static int
incr(int fd, off_t off, long n, const char *kind, int use_mmap, int no_msync)
{
    long pg = sysconf(_SC_PAGESIZE);
    off_t base = off & ~(off_t)(pg - 1);
    char *map = NULL;
    if (use_mmap) {
        map = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, base);
        if (map == MAP_FAILED)
            die("mmap");
    }
    for (long i = 0; i < n; i++) {
        if (lk(fd, kind, F_WRLCK, off, 8, 1) < 0)
            die("lock");
        uint64_t v;
        if (map != NULL) {
            memcpy(&v, map + (off - base), 8);
            v++;
            memcpy(map + (off - base), &v, 8);
            if (!no_msync && msync(map, (size_t)pg, MS_SYNC) < 0)
                die("msync");
        } else {
            if (pread(fd, &v, 8, off) != 8)
                die("pread");
            v++;
            if (pwrite(fd, &v, 8, off) != 8)
                die("pwrite");
        }
        if (lk(fd, kind, F_UNLCK, off, 8, 0) < 0)
            die("unlock");
    }
    if (map != NULL)
        munmap(map, (size_t)pg);
    return 0;
}

static double
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
invalwrite(int fd, const char *other, long n)
{
    int ofd = open(other, O_RDONLY);
    if (ofd < 0)
        die("open the other host's file");
    static char buf[4096];
    double inval = 0, plain = 0;
    for (long i = 0; i < n; i++) {
        if (pread(ofd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
            die("pread (other host)");
        buf[0] = (char)i;
        double t0 = now_us();
        if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
            die("pwrite");
        inval += now_us() - t0;
    }
    for (long i = 0; i < n; i++) {
        buf[0] = (char)i;
        double t0 = now_us();
        if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
            die("pwrite");
        plain += now_us() - t0;
    }
    printf("inval_us %.1f plain_us %.1f\n", inval / (double)n, plain / (double)n);
    close(ofd);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lockctr incr|read|hold|try|wait|getlk|pingpong FILE ...\n");
        return 2;
    }
    const char *cmd = argv[1];
    file = argv[2];
    int fd = open(file, O_RDWR);
    if (fd < 0)
        die("open");
    if (!strcmp(cmd, "incr") && argc >= 6)
        return incr(fd, strtoll(argv[3], NULL, 0), strtol(argv[4], NULL, 0), argv[5],
                    argc > 6 && !strncmp(argv[6], "mmap", 4),
                    argc > 6 && !strcmp(argv[6], "mmapnosync"));
    if (!strcmp(cmd, "read") && argc >= 4) {
        uint64_t v;
        if (pread(fd, &v, 8, strtoll(argv[3], NULL, 0)) != 8)
            die("pread");
        printf("%" PRIu64 "\n", v);
        return 0;
    }
    if (!strcmp(cmd, "invalwrite") && argc >= 5)
        return invalwrite(fd, argv[3], strtol(argv[4], NULL, 0));
    if (!strcmp(cmd, "pingpong") && argc >= 4)
        return incr(fd, 0, strtol(argv[3], NULL, 0), "fcntl", 0, 0);
    if ((!strcmp(cmd, "hold") || !strcmp(cmd, "try") || !strcmp(cmd, "wait")) && argc >= 4) {
        int wait = strcmp(cmd, "try") != 0;
        if (lk(fd, argv[3], F_WRLCK, 0, 4096, wait) < 0) {
            if (!wait && (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK)) {
                printf("busy\n");
                return 1;
            }
            die("lock");
        }
        printf(strcmp(cmd, "hold") ? "got\n" : "locked\n");
        fflush(stdout);
        if (!strcmp(cmd, "hold"))
            for (;;)
                pause();
        return 0;
    }
    if (!strcmp(cmd, "getlk")) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4096};
        if (fcntl(fd, F_GETLK, &fl) < 0)
            die("F_GETLK");
        if (fl.l_type == F_UNLCK)
            printf("unlocked\n");
        else
            printf("%s start %lld len %lld pid %d\n", fl.l_type == F_WRLCK ? "F_WRLCK" : "F_RDLCK",
                   (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
        return 0;
    }
    fprintf(stderr, "lockctr: bad command or arguments\n");
    return 2;
}
