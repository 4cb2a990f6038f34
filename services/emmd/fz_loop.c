/*
 * fz_loop.c - mounting an emmd filesystem (never over a live mount unless
 * mount-over = yes) and serving its /dev/fuse channel:
 * a pool of loop threads reading requests with an adaptive busy-poll, the bdi
 * tuning done after mounting, and unmounting.
 *
 * Busy-poll: the channel is non-blocking. When a read finds nothing, one thread
 * at a time (fs->spinner) keeps reading for up to busy-poll µs, but only while
 * requests have been arriving recently (within 1 ms), so an idle daemon sleeps
 * in poll(2) and burns nothing. The cost: while busy, up to one core spins for
 * busy-poll µs after each request; the gain: no cross-CPU wake-up per fault.
 *
 * Locking: none of its own; fs->spinner and fs->last_request_ns are atomics.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "clock.h"
#include "emmd.h"
#include "fsutil.h"
#include "log.h"

static int
receive(struct emmd_fs *fs, struct fuse_buf *fbuf)
{
    int res = fuse_session_receive_buf(fs->se, fbuf);
    if (res > 0)
        atomic_store(&fs->last_request_ns, emm_mono_ns());
    return res;
}

static void *
loop_main(void *arg)
{
    struct emmd_fs *fs = arg;
    struct fuse_buf fbuf;
    memset(&fbuf, 0, sizeof(fbuf));
    int fd = fuse_session_fd(fs->se);

    while (!fuse_session_exited(fs->se)) {
        /* busy-poll may change on a reload */
        uint64_t spin_ns = (uint64_t)atomic_load(&fs->d->busy_poll_us) * 1000u;
        int res = receive(fs, &fbuf);
        if (res == -EAGAIN || res == -EINTR) {
            uint64_t now = emm_mono_ns();
            int expected = 0;
            if (spin_ns > 0 && now - atomic_load(&fs->last_request_ns) < 1000000u &&
                atomic_compare_exchange_strong(&fs->spinner, &expected, 1)) {
                uint64_t until = now + spin_ns;
                do {
                    res = receive(fs, &fbuf);
                } while ((res == -EAGAIN || res == -EINTR) && emm_mono_ns() < until &&
                         !fuse_session_exited(fs->se));
                atomic_store(&fs->spinner, 0);
            }
            if (res == -EAGAIN || res == -EINTR) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                poll(&pfd, 1, 500);
                continue;
            }
        }
        if (res == 0) /* ENODEV: unmounted */
            break;
        if (res < 0) {
            emm_err("fs %s: reading /dev/fuse: %s", fs->cfg->name, strerror(-res));
            break;
        }
        fuse_session_process_buf(fs->se, &fbuf);
    }
    free(fbuf.mem);
    return NULL;
}

static void
write_sysfs(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        emm_debug("%s: %s", path, strerror(errno));
        return;
    }
    if (write(fd, value, strlen(value)) < 0)
        emm_debug("%s: %s", path, strerror(errno));
    close(fd);
}

/* As root: larger readahead than FUSE_INIT allows, and lift FUSE's 1% dirty cap. */
static void
tune_bdi(struct emmd_fs *fs)
{
    if (geteuid() != 0)
        return;
    struct stat st;
    if (stat(fs->cfg->mountpoint, &st) < 0)
        return;
    char path[128], value[32];
    unsigned maj = major(st.st_dev), min = minor(st.st_dev);
    snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
    snprintf(value, sizeof(value), "%llu", (unsigned long long)(fs->cfg->readahead / 1024));
    write_sysfs(path, value);
    snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/strict_limit", maj, min);
    write_sysfs(path, "0");
    snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/max_ratio", maj, min);
    write_sysfs(path, "50");
}

int
fz_mount(struct emmd_fs *fs)
{
    char fsname[128];
    snprintf(fsname, sizeof(fsname), "-ofsname=emm:%s,subtype=emm,max_read=%u%s",
             fs->cfg->name, EMM_MAX_REQUEST_BYTES,
             geteuid() == 0 ? ",allow_other,default_permissions" : "");
    char *argv[] = {"emmd", fsname, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(2, argv);
    fs->se = fuse_session_new(&args, &fz_ops, sizeof(fz_ops), fs);
    fuse_opt_free_args(&args);
    if (fs->se == NULL) {
        emm_err("fs %s: cannot create the FUSE session", fs->cfg->name);
        return -EIO;
    }
    /* main checked this before detaching; checked again here, just before the
     * mount, in case something was mounted there since. */
    char why[PATH_MAX + 300];
    int mc = emm_mount_check(fs->cfg->mountpoint, fs->cfg->mount_over, why, sizeof(why));
    if (mc < 0) {
        emm_err("fs %s: mountpoint %s", fs->cfg->name, why);
        fuse_session_destroy(fs->se);
        fs->se = NULL;
        return mc;
    }
    if (fuse_session_mount(fs->se, fs->cfg->mountpoint) != 0) {
        emm_err("fs %s: cannot mount on %s", fs->cfg->name, fs->cfg->mountpoint);
        fuse_session_destroy(fs->se);
        fs->se = NULL;
        return -EIO;
    }
    fs->mounted = 1;
    int fd = fuse_session_fd(fs->se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = fz_notifier_start(fs);
    if (rc < 0)
        return rc;
    fs->nthreads = fs->d->cfg->fuse_threads;
    fs->threads = calloc(fs->nthreads, sizeof(pthread_t));
    if (fs->threads == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < fs->nthreads; i++) {
        rc = pthread_create(&fs->threads[i], NULL, loop_main, fs);
        if (rc != 0) {
            fs->nthreads = i;
            return -rc;
        }
    }
    tune_bdi(fs);
    emm_info("fs %s: mounted on %s", fs->cfg->name, fs->cfg->mountpoint);
    return 0;
}

void
fz_unmount(struct emmd_fs *fs)
{
    if (fs->se == NULL)
        return;
    /* Stop the loops first (they poll with a timeout), then unmount: unmounting
     * closes the channel they read. */
    fuse_session_exit(fs->se);
    for (unsigned i = 0; i < fs->nthreads; i++)
        pthread_join(fs->threads[i], NULL);
    free(fs->threads);
    fs->threads = NULL;
    fs->nthreads = 0;
    if (fs->mounted) {
        fuse_session_unmount(fs->se);
        fs->mounted = 0;
    }
    fz_notifier_stop(fs);
    fuse_session_destroy(fs->se);
    fs->se = NULL;
}
