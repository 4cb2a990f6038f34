/*
 * main.c - emmd: loads the configuration, validates every filesystem's backend
 * stack, detaches (unless -f), brings up the kernel (resident pool, pageout
 * daemon), each filesystem (backend, catalog, pager, FUSE mount) and the control
 * socket, then waits for SIGTERM/SIGINT and shuts down in reverse: write dirty
 * page-cache pages back, return every dirty page to its pager, unmount.
 *
 * Threads: signals are blocked in every thread and taken by sigwait in main, so
 * no handler runs in a FUSE or pager thread. Threads start only after detaching.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl_server.h"
#include "emmd.h"
#include "log.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

static void
usage(FILE *f)
{
    fprintf(f, "usage: emmd -c CONFIG [-f] [-n] [-v]\n"
               "  -c CONFIG  configuration file\n"
               "  -f         stay in the foreground, log to stderr\n"
               "  -n         check the configuration and exit\n"
               "  -v         verbose (debug) logging\n");
}

/* Detaches; the parent exits when the child reports ready (0) or failed (1). */
static int
daemonize(int *ready_fd)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(pfd[1]);
        char status = 1;
        if (read(pfd[0], &status, 1) != 1)
            status = 1;
        _exit(status == 0 ? 0 : 1);
    }
    close(pfd[0]);
    if (setsid() < 0)
        return -errno;
    if (chdir("/") < 0)
        return -errno;
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, STDIN_FILENO);
        dup2(nul, STDOUT_FILENO);
        dup2(nul, STDERR_FILENO);
        if (nul > 2)
            close(nul);
    }
    *ready_fd = pfd[1];
    return 0;
}

static void
report_ready(int fd, char status)
{
    if (fd < 0)
        return;
    if (write(fd, &status, 1) != 1) {
        /* the parent is gone; nothing to tell */
    }
    close(fd);
}

/* Opens and locks the pid file: one emmd per configuration. The lock is held
 * for the daemon's life (the fd survives the fork in daemonize). */
static int
lock_pid_file(const char *path, int *out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
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

/* Brings everything down; safe on a partly started daemon. */
static void
shutdown_all(struct emmd *d, struct ctl_server *ctl)
{
    if (ctl != NULL)
        ctl_server_stop(ctl);
    for (size_t i = 0; i < d->nfs; i++) {
        struct emmd_fs *fs = &d->fs[i];
        if (fs->se != NULL && fs->mounted) {
            /* Dirty page-cache pages come back as WRITEs while the loop still runs. */
            int fd = open(fs->cfg->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd >= 0) {
                if (syncfs(fd) < 0)
                    emm_warn("fs %s: syncfs: %s", fs->cfg->name, strerror(errno));
                close(fd);
            }
        }
        /* A volatile backend dies with us: returning its pages would be wasted work. */
        if (fs->pager != NULL && (fs->backend->flags & EMM_BACKEND_PERSISTENT))
            emmd_fs_flush_all(fs);
    }
    for (size_t i = 0; i < d->nfs; i++)
        fz_unmount(&d->fs[i]);
    for (size_t i = 0; i < d->nfs; i++)
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
    for (size_t i = 0; i < d->nfs; i++)
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

int
main(int argc, char **argv)
{
    const char *conf = NULL;
    int foreground = 0, check_only = 0, verbose = 0, opt;
    while ((opt = getopt(argc, argv, "c:fnvh")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'f': foreground = 1; break;
        case 'n': check_only = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (conf == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }

    struct emmd d;
    memset(&d, 0, sizeof(d));
    char err[512];
    int rc = emm_config_load(conf, 1, &d.cfg, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "emmd: %s\n", err);
        return 1;
    }
    emm_log_init("emmd", 0, verbose ? EMM_LOG_DEBUG : d.cfg->log_level);
    d.nfs = d.cfg->nfs;
    d.fs = calloc(d.nfs ? d.nfs : 1, sizeof(*d.fs));
    for (size_t i = 0; i < d.nfs; i++) {
        rc = emmd_fs_open(&d, &d.fs[i], &d.cfg->fs[i], err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "emmd: %s\n", err);
            for (size_t j = 0; j < i; j++)
                emm_backend_close(d.fs[j].backend);
            return 1;
        }
    }
    if (check_only) {
        printf("%s: configuration OK (%zu filesystems)\n", conf, d.nfs);
        for (size_t i = 0; i < d.nfs; i++)
            emm_backend_close(d.fs[i].backend);
        emm_config_free(d.cfg);
        free(d.fs);
        return 0;
    }

    int pid_fd = -1;
    rc = lock_pid_file(d.cfg->pid_file, &pid_fd);
    if (rc < 0) {
        if (rc == -EBUSY)
            fprintf(stderr, "emmd: %s: another emmd is running with this configuration\n",
                    d.cfg->pid_file);
        else
            fprintf(stderr, "emmd: %s: %s\n", d.cfg->pid_file, strerror(-rc));
        for (size_t i = 0; i < d.nfs; i++)
            emm_backend_close(d.fs[i].backend);
        return 1;
    }

    int ready_fd = -1;
    if (!foreground) {
        rc = daemonize(&ready_fd);
        if (rc < 0) {
            fprintf(stderr, "emmd: cannot detach: %s\n", strerror(-rc));
            return 1;
        }
        emm_log_init("emmd", 1, verbose ? EMM_LOG_DEBUG : d.cfg->log_level);
    }
    /* emmd serves page-ins: reclaim must not wait on it, nor page its pool out. */
    if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
        emm_notice("PR_SET_IO_FLUSHER: %s", strerror(errno));

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    d.start_time = time(NULL);

    struct vm_upcalls up = {.invalidate = fz_invalidate,
                            .pager_has_page = emmd_pager_has_page,
                            .pager_seek = emmd_pager_seek};
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
    rc = write_pid_file(pid_fd);
    if (rc < 0)
        emm_warn("pid file %s: %s", d.cfg->pid_file, strerror(-rc));
    emm_notice("ready: %zu filesystems, resident limit %llu bytes, pid %d", d.nfs,
               (unsigned long long)d.cfg->resident_limit, (int)getpid());
    report_ready(ready_fd, 0);
    ready_fd = -1;

    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT)
            break;
        emm_info("signal %d ignored", sig);
    }
    emm_notice("signal %d: flushing and unmounting", sig);
    shutdown_all(&d, ctl);
    unlink(d.cfg->pid_file);
    emm_notice("stopped");
    emm_config_free(d.cfg);
    free(d.fs);
    return 0;

fail:
    report_ready(ready_fd, 1);
    shutdown_all(&d, ctl);
    emm_config_free(d.cfg);
    free(d.fs);
    return 1;
}
