/*
 * main.c - emmd: loads the configuration, validates every filesystem's backend
 * stack, detaches (unless -f), brings up the kernel (resident pool, pageout
 * daemon), each filesystem (backend, catalog, pager, FUSE mount) and the control
 * socket, then waits for SIGTERM/SIGINT and shuts down in reverse: write dirty
 * page-cache pages back, return every dirty page to its pager, unmount.
 *
 * Threads: signals are blocked in every thread and taken by sigwait in main, so
 * no handler runs in a FUSE or pager thread. Threads start only after detaching,
 * and after the capabilities emmd does not need are dropped (all threads then
 * inherit the reduced set; capabilities are per thread).
 *
 * Detached start: the launcher (the parent) waits on a pipe that is the child's
 * stderr until the child is ready; the child logs there (the launcher copies
 * warnings and errors to its own stderr and everything to syslog), so a failed
 * start says why. The launcher returns 0 on the ready byte (sent after
 * everything is up), or the child's failure status once the child has exited,
 * i.e. after it tore down what it had started (nothing stays mounted).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ctl_server.h"
#include "emmd.h"
#include "fsutil.h"
#include "log.h"
#include "swap_area.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: emmd -c CONFIG [-f] [-v]   run the daemon\n"
            "       emmd -c CONFIG -n          check the configuration and exit\n"
            "       emmd -c CONFIG --dump-config  print the effective configuration\n"
            "\n"
            "  -c, --config=CONFIG  configuration file (emm.conf(5))\n"
            "  -f, --foreground     stay in the foreground, log to stderr with timestamps\n"
            "                       (to the journal, with priorities, under systemd)\n"
            "  -n, --check          check the configuration, swap areas and mountpoints; exit\n"
            "      --dump-config    print the configuration with every default filled in,\n"
            "                       in the file's syntax, and exit\n"
            "  -v, --verbose        debug logging\n"
            "  -h, --help           this text\n"
            "  -V, --version        print the version\n"
            "\n"
            "Signals: SIGTERM, SIGINT stop (dirty pages are written back first).\n"
            "Exit status: 0 ok, 1 failure (configuration, start, runtime), 2 usage error.\n");
}

/* A usage error: what was wrong is already said; point at --help. */
static int
usage_error(void)
{
    fprintf(stderr, "usage: emmd -c CONFIG [-f] [-n] [-v] [--dump-config]\n"
                    "Try 'emmd --help' for more information.\n");
    return 2;
}

/* The byte that ends the child's report on the launcher pipe: ready. Log lines
 * never hold a NUL. */
#define READY_BYTE '\0'

/* Copies one log line from the child: everything to syslog, warnings and
 * errors also to the launcher's stderr. */
static void
launcher_line(const char *line, size_t len, int *shown)
{
    static const struct {
        const char *tag;
        int prio, show;
    } lv[] = {{": error: ", LOG_ERR, 1},    {": warn: ", LOG_WARNING, 1},
              {": notice: ", LOG_NOTICE, 0}, {": info: ", LOG_INFO, 0},
              {": debug: ", LOG_DEBUG, 0}};
    char buf[1300];
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    int prio = LOG_NOTICE, show = 1; /* a line not from emm_log: show it */
    const char *msg = buf;
    for (size_t i = 0; i < sizeof(lv) / sizeof(lv[0]); i++) {
        const char *t = strstr(buf, lv[i].tag);
        if (t != NULL) {
            prio = lv[i].prio;
            show = lv[i].show;
            msg = t + strlen(lv[i].tag);
            break;
        }
    }
    syslog(prio, "%s", msg);
    if (show) {
        char out[1400];
        int n = snprintf(out, sizeof(out), "%s\n", buf);
        if (n > (int)sizeof(out))
            n = (int)sizeof(out);
        if (write(STDERR_FILENO, out, (size_t)n) < 0) {
            /* nowhere to say it */
        }
        (*shown)++;
    }
}

/* The launcher: relays the child's log until it is ready (exit 0) or gone
 * (its exit status, at least 1). */
static int
launcher_wait(int fd, pid_t child)
{
    char ident[32], buf[4096], line[1300];
    size_t used = 0;
    int shown = 0;

    snprintf(ident, sizeof(ident), "emmd[%d]", (int)child);
    openlog(ident, LOG_NDELAY, LOG_DAEMON);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == READY_BYTE) {
                if (used > 0)
                    launcher_line(line, used, &shown);
                return 0;
            }
            if (buf[i] == '\n' || used == sizeof(line)) {
                launcher_line(line, used, &shown);
                used = 0;
                if (buf[i] == '\n')
                    continue;
            }
            line[used++] = buf[i];
        }
    }
    if (used > 0)
        launcher_line(line, used, &shown);
    /* EOF: the child closed its end by exiting, after its teardown. */
    int st = 0, rc = 1;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        rc = WEXITSTATUS(st);
    if (WIFSIGNALED(st)) {
        char msg[128];
        int m = snprintf(msg, sizeof(msg), "emmd: the daemon (pid %d) was killed by signal %d "
                         "before it was ready\n", (int)child, WTERMSIG(st));
        if (write(STDERR_FILENO, msg, (size_t)m) < 0) {
            /* nowhere to say it */
        }
    } else if (shown == 0) {
        char msg[128];
        int m = snprintf(msg, sizeof(msg), "emmd: the daemon (pid %d) failed to start; see the "
                         "system log\n", (int)child);
        if (write(STDERR_FILENO, msg, (size_t)m) < 0) {
            /* nowhere to say it */
        }
    }
    return rc;
}

/* Detaches. The child's stderr becomes the launcher pipe until report_ready. */
static int
daemonize(int *ready_fd)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(pfd[1]);
        _exit(launcher_wait(pfd[0], pid));
    }
    close(pfd[0]);
    if (setsid() < 0)
        return -errno;
    if (chdir("/") < 0)
        return -errno;
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0) {
        dup2(nul, STDIN_FILENO);
        dup2(nul, STDOUT_FILENO);
        if (nul > 2)
            close(nul);
    }
    dup2(pfd[1], STDERR_FILENO); /* log lines go to the launcher until ready */
    *ready_fd = pfd[1];
    return 0;
}

/* Everything is up: tell the launcher, then log to syslog only. */
static void
report_ready(int fd, int level)
{
    if (fd < 0)
        return;
    char b = READY_BYTE;
    if (write(fd, &b, 1) != 1) {
        /* the launcher is gone; nothing to tell */
    }
    emm_log_init("emmd", EMM_LOG_TO_SYSLOG, level);
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (nul >= 0) {
        dup2(nul, STDERR_FILENO);
        close(nul);
    }
    close(fd);
}

/* Opens and locks the pid file: one emmd per configuration. The lock is held
 * for the daemon's life (the fd survives the fork in daemonize). Its directory
 * was checked by the config loader (private, or sticky); the file itself must
 * be ours: never a symlink (O_NOFOLLOW), a regular file of emmd's user with one
 * link, so a planted link cannot make emmd write into another file. */
static int
lock_pid_file(const char *path, int *out, char *why, size_t whylen)
{
    struct stat st;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        /* ELOOP, or EACCES where the kernel protects sticky directories: say what is there */
        int e = errno;
        if (e == ELOOP || (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)))
            snprintf(why, whylen, "%s is a symbolic link; emmd never follows one there (remove "
                     "it, and find out who put it there)", path);
        else if (e == EACCES && lstat(path, &st) == 0 && st.st_uid != geteuid())
            snprintf(why, whylen, "%s is owned by uid %u, not by emmd's user (uid %u); remove "
                     "it, and find out who put it there", path, (unsigned)st.st_uid,
                     (unsigned)geteuid());
        else
            snprintf(why, whylen, "%s: %s", path, strerror(e));
        return -e;
    }
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(why, whylen, "%s is not a regular file; remove it", path);
    } else if (st.st_uid != geteuid()) {
        rc = -EPERM;
        snprintf(why, whylen, "%s is owned by uid %u, not by emmd's user (uid %u); remove it, "
                 "and find out who put it there", path, (unsigned)st.st_uid,
                 (unsigned)geteuid());
    } else if (st.st_nlink != 1) {
        rc = -EPERM;
        snprintf(why, whylen, "%s has %lu hard links; a pid file has one (remove it)", path,
                 (unsigned long)st.st_nlink);
    } else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (rc == -EBUSY)
            snprintf(why, whylen, "%s: another emmd is running with this configuration (it "
                     "holds the pid file's lock)", path);
        else
            snprintf(why, whylen, "%s: lock: %s", path, strerror(-rc));
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static int
write_pid_file(int fd)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        return -errno;
    return 0;
}

/*
 * Capabilities emmd keeps (as root); everything else leaves the effective,
 * permitted, inheritable, ambient and bounding sets before the first thread
 * starts, so every thread runs with this set:
 *  - CAP_SYS_ADMIN: mount(2) each filesystem, and umount2(2) at shutdown (as
 *    root libfuse unmounts directly; the bounding set would also strip it from
 *    a setuid fusermount3);
 *  - CAP_IPC_LOCK: mlock the resident pool and the default pager's buffers
 *    beyond RLIMIT_MEMLOCK (MLOCK_ONFAULT locks frames as they are first used).
 * Not kept, and why that is fine: writing /sys/class/bdi (root-owned 0644
 * files: uid 0 writes them as their owner), opening swap devices and files
 * (root's own, or root:disk 0660), state-dir (checked private), and
 * PR_SET_IO_FLUSHER (CAP_SYS_RESOURCE, set before the drop). Without
 * CAP_DAC_OVERRIDE, root cannot write into a backend directory owned by another
 * user that is not writable by others: give it to root.
 */
static const int kept_caps[] = {CAP_SYS_ADMIN, CAP_IPC_LOCK};

static int
cap_kept(int c)
{
    for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
        if (kept_caps[i] == c)
            return 1;
    return 0;
}

static void
drop_capabilities(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3];
    memset(c, 0, sizeof(c));
    if (syscall(SYS_capget, &h, c) < 0) {
        emm_warn("capget: %s; keeping the capabilities emmd was started with", strerror(errno));
        return;
    }
    if (c[0].effective == 0 && c[1].effective == 0 && c[0].permitted == 0 && c[1].permitted == 0)
        return; /* an unprivileged emmd: nothing to drop */
    int last = CAP_LAST_CAP;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f != NULL) {
        if (fscanf(f, "%d", &last) != 1)
            last = CAP_LAST_CAP;
        fclose(f);
    }
    /* The bounding set first: dropping from it needs CAP_SETPCAP, dropped below. */
    for (int cap = 0; cap <= last && cap < 64; cap++)
        if (!cap_kept(cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            emm_debug("PR_CAPBSET_DROP %d: %s", cap, strerror(errno));
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    uint32_t keep[2] = {0, 0};
    for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
        keep[kept_caps[i] / 32] |= 1u << (kept_caps[i] % 32);
    for (int i = 0; i < 2; i++) {
        c[i].effective &= keep[i];
        c[i].permitted &= keep[i];
        c[i].inheritable = 0;
    }
    if (syscall(SYS_capset, &h, c) < 0)
        emm_warn("capset: %s; keeping the capabilities emmd was started with", strerror(errno));
    else
        emm_info("capabilities dropped: keeping cap_sys_admin (mount, unmount) and "
                 "cap_ipc_lock (mlock)");
}

/* The RAM this machine has, in bytes (0 if unknown). */
static uint64_t
ram_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

static void
warn_resident_limit(const struct emm_config *cfg)
{
    uint64_t ram = ram_bytes();
    if (ram > 0 && cfg->resident_limit > ram / 2)
        emm_warn("%s: resident-limit = %llu bytes (%llu MiB) is more than half of this machine's "
                 "RAM (%llu MiB): the pool may push everything else out of memory; lower "
                 "resident-limit", cfg->path, (unsigned long long)cfg->resident_limit,
                 (unsigned long long)(cfg->resident_limit >> 20),
                 (unsigned long long)(ram >> 20));
}

/* -n: every swap line, read-only (open, read the header, check; never create
 * or format). Prints "FILE:LINE: swap PATH: why" for the first bad one. */
static int
check_swaps(const struct emm_config *cfg)
{
    for (size_t i = 0; i < cfg->nswaps; i++) {
        const struct emm_swap_config *sw = &cfg->swaps[i];
        struct stat st;
        char why[PATH_MAX + 200] = "";
        if (stat(sw->path, &st) < 0) {
            int e = errno;
            if (e == ENOENT && sw->size > 0) {
                char dir[PATH_MAX];
                snprintf(dir, sizeof(dir), "%s", sw->path);
                char *slash = strrchr(dir, '/');
                if (slash != NULL)
                    slash[slash == dir ? 1 : 0] = '\0';
                if (stat(dir, &st) < 0)
                    snprintf(why, sizeof(why), "cannot be created: %s: %s", dir,
                             strerror(errno));
                else if (!S_ISDIR(st.st_mode))
                    snprintf(why, sizeof(why), "cannot be created: %s is not a directory", dir);
                else
                    continue; /* emmd creates and formats it at start */
            } else {
                snprintf(why, sizeof(why), "%s", e == ENOENT ? "does not exist (give a size "
                         "to create it)" : strerror(e));
            }
        } else if (S_ISDIR(st.st_mode)) {
            snprintf(why, sizeof(why), "is a directory, not a regular file or a block device");
        } else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
            snprintf(why, sizeof(why), "not a regular file or a block device");
        } else {
            int fd = open(sw->path, O_RDONLY | O_CLOEXEC);
            const char *sig = NULL;
            if (fd < 0) {
                snprintf(why, sizeof(why), "%s", strerror(errno));
            } else {
                sig = swp_area_probe(fd, NULL);
                close(fd);
                if (sig == NULL || strcmp(sig, "emm swap area") != 0)
                    snprintf(why, sizeof(why), "not an emm swap area (found %s); format it "
                             "with emmswap format", sig ? sig : "no known signature");
            }
            if (why[0] == '\0') {
                struct swp_area *a;
                int rc = swp_area_open(sw->path, SWP_OPEN_RDONLY | SWP_OPEN_BUFFERED, &a);
                if (rc < 0)
                    snprintf(why, sizeof(why), "unusable: %s (the reason is above)",
                             strerror(-rc));
                else
                    swp_area_abandon(a);
            }
        }
        if (why[0] != '\0') {
            fprintf(stderr, "emmd: %s:%d: swap %s: %s\n", cfg->path, sw->line, sw->path, why);
            return -EINVAL;
        }
    }
    return 0;
}

/* Every mountpoint: refused if something live is mounted there (unless
 * mount-over = yes). Prints "FILE:LINE: [fs NAME] ..." for the first refusal.
 * For -n (warn_only) that is only a warning: a live mount is a state of the
 * machine, not of the file (the daemon being checked for a restart may well be
 * the one mounted there). */
static int
check_mountpoints(const struct emm_config *cfg, int warn_only)
{
    for (size_t i = 0; i < cfg->nfs; i++) {
        const struct emm_fs_config *fs = &cfg->fs[i];
        char why[PATH_MAX + 300];
        int rc = emm_mount_check(fs->mountpoint, fs->mount_over, why, sizeof(why));
        if (rc < 0 && warn_only) {
            emm_warn("%s:%d: [fs %s] mountpoint %s (a start now would be refused)", cfg->path,
                     fs->line, fs->name, why);
        } else if (rc < 0) {
            fprintf(stderr, "emmd: %s:%d: [fs %s] mountpoint %s\n", cfg->path, fs->line,
                    fs->name, why);
            return rc;
        }
        if (rc > 0)
            emm_notice("[fs %s] mountpoint %s", fs->name, why);
    }
    return 0;
}

/* Brings everything down; safe on a partly started daemon. */
/* The stop's syncfs of a mount: dirty page-cache pages come back as WRITEs,
 * answered by the mount's FUSE threads. It runs on a thread of its own, never
 * on the main thread: the open() of the mountpoint alone is a FUSE request
 * (a permission check's getattr), and a main thread stuck in one (its FUSE
 * threads all waiting for something) can neither finish the stop nor be
 * stopped. Two references: the waiter's and the thread's. */
struct stop_sync {
    atomic_int refs, done;
    char path[PATH_MAX];
    char name[64];
};

static void
stop_sync_put(struct stop_sync *ss)
{
    if (atomic_fetch_sub(&ss->refs, 1) == 1)
        free(ss);
}

static void *
stop_sync_main(void *arg)
{
    struct stop_sync *ss = arg;
    int fd = open(ss->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (syncfs(fd) < 0)
            emm_warn("fs %s: syncfs: %s", ss->name, strerror(errno));
        close(fd);
    } else {
        emm_warn("fs %s: open %s for syncfs: %s", ss->name, ss->path, strerror(errno));
    }
    atomic_store(&ss->done, 1);
    stop_sync_put(ss);
    return NULL;
}

/* Write-back at the stop: waits for the syncfs while WRITEs keep coming, and
 * gives up after STOP_SYNC_IDLE_MS without one (the unmount then fails the
 * request it waits for; what it had not written back is lost, and said). */
#define STOP_SYNC_IDLE_MS 10000
static void
stop_syncfs(struct emmd *d, struct emmd_fs *fs)
{
    struct stop_sync *ss = calloc(1, sizeof(*ss));
    if (ss == NULL) {
        emm_err("fs %s: no memory to write the page cache back", fs->cfg->name);
        return;
    }
    atomic_init(&ss->refs, 2);
    snprintf(ss->path, sizeof(ss->path), "%s", fs->cfg->mountpoint);
    snprintf(ss->name, sizeof(ss->name), "%s", fs->cfg->name);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, stop_sync_main, ss);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        emm_err("fs %s: no thread to write the page cache back: %s", fs->cfg->name,
                strerror(rc));
        free(ss);
        return;
    }
    struct vm_stats *st = d->kernel != NULL ? vm_kernel_stats(d->kernel) : NULL;
    uint64_t writes = st != NULL ? atomic_load(&st->write_ops) : 0;
    unsigned idle_ms = 0;
    while (!atomic_load(&ss->done) && idle_ms < STOP_SYNC_IDLE_MS) {
        struct timespec tick = {0, 10 * 1000000};
        nanosleep(&tick, NULL);
        uint64_t now = st != NULL ? atomic_load(&st->write_ops) : 0;
        idle_ms = now != writes ? 0 : idle_ms + 10;
        writes = now;
    }
    if (!atomic_load(&ss->done))
        emm_err("fs %s: the page cache's write-back got no WRITE for %u s (the mount's FUSE "
                "threads are stuck?): unmounting without it; what it had not written back "
                "is lost", fs->cfg->name, STOP_SYNC_IDLE_MS / 1000);
    stop_sync_put(ss);
}

static void
shutdown_all(struct emmd *d, struct ctl_server *ctl)
{
    for (size_t i = 0; i < d->nfs; i++) /* no pager restarts from here (pager_conn.c) */
        if (!d->fs[i].removed)
            emmd_pager_conn_stopping(&d->fs[i]);
    emmd_http_stop(d->http);
    d->http = NULL;
    if (ctl != NULL)
        ctl_server_stop(ctl);
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
        struct emmd_fs *fs = &d->fs[i];
        if (fs->se != NULL && fs->mounted) /* while the loops still run */
            stop_syncfs(d, fs);
        /* A volatile backend dies with us: returning its pages would be wasted work. */
        if (fs->pconn != NULL ||
            (fs->pager != NULL && (fs->backend->flags & EMM_BACKEND_PERSISTENT)))
            emmd_fs_flush_all(fs);
    }
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        fz_unmount(&d->fs[i]);
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        emmd_fs_close(&d->fs[i]);
    if (d->kernel != NULL)
        vm_kernel_destroy(d->kernel);
    if (d->dpager != NULL)
        swp_dp_destroy(d->dpager); /* after the last object let go of its ports */
}

/* The default pager over the [default-pager] swap areas (Mach's
 * vm_set_default_memory_manager). Filesystems are told apart in its keys by
 * a tag hashed from their names: two that collide are refused. */
static int
start_default_pager(struct emmd *d)
{
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        for (size_t j = 0; j < i; j++)
            if (d->fs[i].dp_tag == d->fs[j].dp_tag) {
                emm_err("%s:%d: filesystem names '%s' and '%s' collide in the default "
                        "pager's keys; rename one",
                        d->cfg->path, d->fs[i].cfg->line, d->fs[i].cfg->name, d->fs[j].cfg->name);
                return -EINVAL;
            }
    if (d->cfg->nswaps == 0)
        return 0;
    struct swp_dp_area_config *areas = calloc(d->cfg->nswaps, sizeof(*areas));
    if (areas == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < d->cfg->nswaps; i++) {
        areas[i].path = d->cfg->swaps[i].path;
        areas[i].size = d->cfg->swaps[i].size;
        areas[i].priority = d->cfg->swaps[i].priority;
        areas[i].line = d->cfg->swaps[i].line;
    }
    char err[512] = "";
    int rc = swp_dp_create(areas, d->cfg->nswaps, d->cfg->dpager_threads, d->cfg->busy_poll_us,
                           d->cfg->path, &d->dpager, err, sizeof(err));
    free(areas);
    if (rc < 0) {
        emm_err("default pager: %s", err[0] ? err : strerror(-rc));
        return rc;
    }
    static struct vm_dpager_ops ops;
    void *ctx;
    swp_dp_vm_ops(d->dpager, &ops, &ctx);
    vm_kernel_set_default_pager(d->kernel, &ops, ctx);
    struct swp_dp_stats st;
    swp_dp_stats(d->dpager, &st);
    emm_info("default pager: %zu swap areas, %llu of %llu slots used, %llu objects",
             d->cfg->nswaps, (unsigned long long)st.slots_used,
             (unsigned long long)st.slots_total, (unsigned long long)st.objects);
    return 0;
}

/* --dump-config: the file parsed (syntax and values, nothing on disk), then
 * printed with every default. */
static int
dump_config(const char *conf)
{
    struct emm_config *cfg;
    char err[512];
    int rc = emm_config_load(conf, EMM_CONFIG_NO_PATHS, &cfg, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "emmd: %s\n", err);
        return 1;
    }
    rc = emm_config_dump(cfg, stdout);
    emm_config_free(cfg);
    if (rc < 0) {
        fprintf(stderr, "emmd: stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    enum { OPT_DUMP = 256 };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
        {"check", no_argument, NULL, 'n'},        {"verbose", no_argument, NULL, 'v'},
        {"dump-config", no_argument, NULL, OPT_DUMP}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    const char *conf = NULL;
    int foreground = 0, check_only = 0, verbose = 0, dump = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:fnvhV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'f': foreground = 1; break;
        case 'n': check_only = 1; break;
        case 'v': verbose = 1; break;
        case OPT_DUMP: dump = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("emmd %s\n", EMM_VERSION); return 0;
        default: return usage_error(); /* getopt named the option */
        }
    }
    if (optind != argc) {
        fprintf(stderr, "emmd: unexpected argument '%s'\n", argv[optind]);
        return usage_error();
    }
    if (conf == NULL) {
        fprintf(stderr, "emmd: no configuration file: give -c CONFIG\n");
        return usage_error();
    }
    if (dump && check_only) {
        fprintf(stderr, "emmd: --dump-config and --check exclude each other\n");
        return usage_error();
    }
    if (dump)
        return dump_config(conf);

    emmd_heap_init();
    struct emmd d;
    memset(&d, 0, sizeof(d));
    char err[512];
    struct emm_config *cfg0 = NULL;
    int rc = emm_config_load(conf, check_only ? EMM_CONFIG_CHECK_PATHS : EMM_CONFIG_CREATE_PATHS,
                             &cfg0, err, sizeof(err));
    d.cfg = cfg0;
    if (rc < 0) {
        fprintf(stderr, "emmd: %s\n", err);
        return 1;
    }
    /* -n talks to a person: plain lines. A daemon's lines carry the time, or go
     * to the journal with their priority when stderr is the journal. */
    emm_log_init("emmd",
                 check_only ? EMM_LOG_TO_STDERR
                 : foreground && emm_log_stderr_is_journal() ? EMM_LOG_TO_JOURNAL
                                                             : EMM_LOG_TO_STDERR_TIME,
                 verbose ? EMM_LOG_DEBUG : d.cfg->log_level);
    d.nfs = d.cfg->nfs;
    if (d.nfs > EMMD_MAX_FS) {
        fprintf(stderr, "emmd: %s: %zu filesystems; emmd serves at most %d\n", conf, d.nfs,
                EMMD_MAX_FS);
        emm_config_free(d.cfg);
        return 1;
    }
    d.fs = calloc(EMMD_MAX_FS, sizeof(*d.fs)); /* slots never move: see emmd.h */
    pthread_rwlock_init(&d.fs_lock, NULL);
    pthread_mutex_init(&d.reload_lock, NULL);
    atomic_store(&d.busy_poll_us, d.cfg->busy_poll_us);
    for (size_t i = 0; i < d.nfs; i++) {
        rc = emmd_fs_open(&d, &d.fs[i], &d.cfg->fs[i], err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "emmd: %s\n", err);
            for (size_t j = 0; j < i; j++)
                emm_backend_close(d.fs[j].backend);
            return 1;
        }
    }
    warn_resident_limit(d.cfg);
    if (check_only) {
        rc = check_swaps(d.cfg);
        if (rc == 0)
            rc = check_mountpoints(d.cfg, 1);
        if (rc == 0)
            printf("%s: configuration OK (%zu filesystems)\n", conf, d.nfs);
        for (size_t i = 0; i < d.nfs; i++)
            emm_backend_close(d.fs[i].backend);
        emm_config_free(d.cfg);
        free(d.fs);
        return rc == 0 ? 0 : 1;
    }

    int pid_fd = -1;
    rc = lock_pid_file(d.cfg->pid_file, &pid_fd, err, sizeof(err));
    if (rc == 0)
        rc = check_mountpoints(d.cfg, 0);
    else
        fprintf(stderr, "emmd: pid-file: %s\n", err);
    if (rc < 0) {
        for (size_t i = 0; i < d.nfs; i++)
            emm_backend_close(d.fs[i].backend);
        if (pid_fd >= 0)
            close(pid_fd);
        emm_config_free(d.cfg);
        free(d.fs);
        return 1;
    }

    int ready_fd = -1;
    if (!foreground) {
        rc = daemonize(&ready_fd);
        if (rc < 0) {
            fprintf(stderr, "emmd: cannot detach: %s\n", strerror(-rc));
            return 1;
        }
        /* until ready, log lines go to the launcher (stderr is its pipe) */
    }
    int log_level = verbose ? EMM_LOG_DEBUG : d.cfg->log_level;
    /* emmd serves page-ins: reclaim must not wait on it, nor page its pool out. */
    if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
        emm_notice("PR_SET_IO_FLUSHER: %s", strerror(errno));
    drop_capabilities(); /* before the first thread: all of them inherit the reduced set */

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    d.start_time = time(NULL);

    struct vm_upcalls up = {.invalidate = fz_invalidate,
                            .pager_misbehaved = emmd_pager_misbehaved};
    struct ctl_server *ctl = NULL;
    rc = vm_kernel_create(d.cfg->resident_limit, vm_policy_lookup(d.cfg->pageout_policy), &up,
                          &d.kernel);
    if (rc < 0) {
        emm_err("resident pool of %llu bytes: %s", (unsigned long long)d.cfg->resident_limit,
                strerror(-rc));
        goto fail;
    }
    rc = start_default_pager(&d);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < d.nfs; i++) {
        rc = emmd_fs_start(&d.fs[i]);
        if (rc == 0) {
            emmd_fs_replay_swap(&d.fs[i]);
            rc = fz_mount(&d.fs[i]);
        }
        if (rc < 0)
            goto fail;
    }
    rc = ctl_server_start(d.cfg->control_socket, emmd_command, &d, &ctl);
    if (rc < 0) {
        emm_err("control socket %s: %s", d.cfg->control_socket, strerror(-rc));
        goto fail;
    }
    if (d.cfg->metrics_listen != NULL) {
        rc = emmd_http_start(&d, d.cfg->metrics_listen, &d.http);
        if (rc < 0) {
            emm_err("%s: metrics-listen %s: %s", d.cfg->path, d.cfg->metrics_listen,
                    strerror(-rc));
            goto fail;
        }
    }
    rc = write_pid_file(pid_fd);
    if (rc < 0)
        emm_warn("pid file %s: %s", d.cfg->pid_file, strerror(-rc));
    emm_notice("ready: %zu filesystems, resident limit %llu bytes, pid %d", d.nfs,
               (unsigned long long)d.cfg->resident_limit, (int)getpid());
    report_ready(ready_fd, log_level);
    ready_fd = -1;
    emmd_notify_ready(&d); /* after every mount and the control socket */

    int sig = 0;
    for (;;) {
        /* Once a second without a signal: give free heap back to the system. */
        struct timespec tick = {1, 0};
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig < 0) {
            emmd_heap_trim();
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP) {
            emm_notice("SIGHUP: reloading %s", d.cfg->path);
            emmd_reload(&d, NULL);
            continue;
        }
        emm_info("signal %d ignored", sig);
    }
    /* From here a pager that dies is not restarted (pager_conn.c). */
    for (size_t i = 0; i < d.nfs; i++)
        if (!d.fs[i].removed)
            emmd_pager_conn_stopping(&d.fs[i]);
    emm_notice("signal %d: flushing and unmounting", sig);
    emmd_notify_stopping();
    shutdown_all(&d, ctl);
    unlink(d.cfg->pid_file);
    emm_notice("stopped");
    emm_config_free(d.cfg);
    emmd_free_retired(&d);
    free(d.fs);
    return 0;

fail:
    /* A detached start: the launcher returns once this process has exited, so
     * after the teardown; the reason went to it on stderr. */
    shutdown_all(&d, ctl);
    emm_err("start failed; everything it had started is stopped");
    emm_config_free(d.cfg);
    free(d.fs);
    return 1;
}
