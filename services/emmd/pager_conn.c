/*
 * pager_conn.c - a filesystem whose pager runs outside emmd (pager = process
 * or unix:PATH): the connection to it (a stream, emm/ipc/port_stream.h), the
 * emm-pager child emmd starts, and the supervisor thread that restarts it
 * (process) or reconnects (unix) with back-off and a loud log line. Objects
 * reach their pager through emmd_pager_object_port: a lookup on the current
 * connection, which waits up to pager.deadline while the pager is down.
 * When a connection dies, every object on it learns it from the kernel (a
 * dead-name notification of its memory object port, emm/vm/vm_lost.c); once
 * the next one is up, the supervisor gives each such object its new port
 * (vm_object_reinit: init again, then the replay from swap).
 *
 * Locking: pc->lock guards every field; it is never held while the stream is
 * opened, looked up in or closed, nor across fork/exec or waitpid.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "emmd.h"
#include "log.h"
#include "port_stream.h"

struct emmd_pager_conn {
    struct emmd_fs *fs;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC: the stream died, one came up, or stop */
    struct emm_stream *s; /* the live connection, or NULL */
    struct emm_stream *dead; /* one whose peer went, for the supervisor to close */
    pid_t pid;            /* the emm-pager child (process), 0 when none */
    int64_t up_since_ns;  /* when the current connection came up */
    unsigned restarts;
    uint64_t reinits;     /* objects re-initialised on a new connection */
    /* Files unlinked while the pager was gone: their pages are still in its
     * store. Sent (init, discard, terminate) when it is back; in memory only:
     * if emmd stops first they are logged, by id, at the stop. */
    uint64_t *discards;
    size_t ndiscards, discards_cap;
    int stopping;         /* emmd stops: no restart (emmd_pager_conn_stopping) */
    int quit;             /* the supervisor ends (emmd_pager_conn_stop) */
    int started;          /* the supervisor thread runs */
    pthread_t thread;
    char label[96];
    struct emm_tls *tls; /* pager = tcp: the credentials (NULL: plain, loopback only) */
};

static void
on_dead(void *ctx, struct emm_stream *s, int err)
{
    struct emmd_pager_conn *pc = ctx;
    pthread_mutex_lock(&pc->lock);
    if (pc->s == s) {
        pc->s = NULL;
        pc->dead = s;
    }
    if (!pc->stopping)
        emm_err("fs %s: PAGER LOST: %s %s (%s); its objects' faults wait up to %llu ms, "
                "then fail", pc->fs->cfg->name, emm_stream_peer(s),
                err == 0 ? "closed the connection" : "was cut off",
                err == 0 ? "end of stream" : strerror(-err),
                (unsigned long long)atomic_load(&pc->fs->deadline_ms));
    pthread_cond_broadcast(&pc->cond);
    pthread_mutex_unlock(&pc->lock);
}

/* The emm-pager binary: $EMM_PAGER_BIN, else next to emmd. */
static int
pager_bin(char *buf, size_t len)
{
    const char *env = getenv("EMM_PAGER_BIN");
    if (env != NULL && *env) {
        snprintf(buf, len, "%s", env);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return -errno;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    if ((size_t)snprintf(buf, len, "%.*s/emm-pager", (int)(len - 16), self) >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* Starts emm-pager on one end of a socketpair; the other end in *fd. */
static int
spawn(struct emmd_pager_conn *pc, int *fd)
{
    const struct emm_fs_config *cfg = pc->fs->cfg;
    const struct emm_config *dcfg = pc->fs->d->cfg;
    char bin[PATH_MAX];
    int rc = pager_bin(bin, sizeof(bin));
    if (rc < 0)
        return rc;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    /* Everything the child needs is built before fork: it only execs. */
    size_t max = 24 + 2 * cfg->nbackend_keys;
    char **argv = calloc(max, sizeof(*argv));
    char **keys = calloc(cfg->nbackend_keys + 1, sizeof(*keys));
    char fdarg[16], threads[16];
    static const char *const levels[] = {"debug", "info", "notice", "warn", "error"};
    snprintf(fdarg, sizeof(fdarg), "%d", sv[1]);
    snprintf(threads, sizeof(threads), "%u", cfg->pager_threads);
    size_t n = 0;
    if (argv == NULL || keys == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    argv[n++] = bin;
    argv[n++] = "--fs", argv[n++] = cfg->name;
    argv[n++] = "--backend", argv[n++] = cfg->backend;
    argv[n++] = "--file", argv[n++] = dcfg->path;
    argv[n++] = "--state-dir", argv[n++] = dcfg->state_dir;
    argv[n++] = "--threads", argv[n++] = threads;
    argv[n++] = "--fd", argv[n++] = fdarg;
    if (dcfg->log_level >= EMM_LOG_DEBUG && dcfg->log_level <= EMM_LOG_ERR)
        argv[n++] = "--log-level", argv[n++] = (char *)levels[dcfg->log_level - EMM_LOG_DEBUG];
    if (dcfg->plugin_dir != NULL)
        argv[n++] = "--plugin-dir", argv[n++] = dcfg->plugin_dir;
    if (cfg->pager_user != NULL)
        argv[n++] = "--user", argv[n++] = cfg->pager_user;
    for (size_t i = 0; i < cfg->nbackend_keys; i++) {
        const struct emm_config_kv *kv = &cfg->backend_keys[i];
        if (asprintf(&keys[i], "%d:%s=%s", kv->line, kv->key, kv->value) < 0) {
            keys[i] = NULL;
            rc = -ENOMEM;
            goto out;
        }
        argv[n++] = "--key", argv[n++] = keys[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto out;
    }
    if (pid == 0) {
        int fl = fcntl(sv[1], F_GETFD);
        fcntl(sv[1], F_SETFD, fl & ~FD_CLOEXEC);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(bin, argv);
        _exit(127);
    }
    pthread_mutex_lock(&pc->lock);
    pc->pid = pid;
    pthread_mutex_unlock(&pc->lock);
    *fd = sv[0];
    sv[0] = -1;
    rc = 0;
out:
    if (sv[0] >= 0)
        close(sv[0]);
    close(sv[1]);
    if (keys != NULL)
        for (size_t i = 0; i < cfg->nbackend_keys; i++)
            free(keys[i]);
    free(keys);
    free(argv);
    return rc;
}

/* Reaps the child (after its connection ended); SIGKILL after 10 s. */
static void
reap(struct emmd_pager_conn *pc, int loud)
{
    pthread_mutex_lock(&pc->lock);
    pid_t pid = pc->pid;
    pc->pid = 0;
    pthread_mutex_unlock(&pc->lock);
    if (pid <= 0)
        return;
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            goto reaped;
        if (r < 0)
            return;
        usleep(10000);
    }
    emm_err("fs %s: emm-pager pid %d did not exit: killing it", pc->fs->cfg->name, (int)pid);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
reaped:
    if (!loud)
        return;
    if (WIFSIGNALED(st))
        emm_err("fs %s: EMM-PAGER pid %d DIED of signal %d", pc->fs->cfg->name, (int)pid,
                WTERMSIG(st));
    else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        emm_err("fs %s: EMM-PAGER pid %d EXITED with status %d", pc->fs->cfg->name, (int)pid,
                WEXITSTATUS(st));
}

/* One connection attempt: spawn or connect, then the hello. */
static int
connect_once(struct emmd_pager_conn *pc)
{
    const struct emm_fs_config *cfg = pc->fs->cfg;
    int fd = -1;
    int rc;
    struct emm_stream_io *io = NULL;
    pthread_mutex_lock(&pc->lock);
    int stopping = pc->stopping; /* emmd stops: no new pager */
    pthread_mutex_unlock(&pc->lock);
    if (stopping)
        return -ESHUTDOWN;
    if (cfg->pager_mode == EMM_PAGER_PROCESS) {
        rc = spawn(pc, &fd);
    } else if (cfg->pager_mode == EMM_PAGER_TCP) {
        rc = emmd_pager_tcp_open(cfg, pc->tls, &io, pc->label, sizeof(pc->label));
    } else {
        fd = emm_stream_connect(cfg->pager_socket);
        rc = fd < 0 ? fd : 0;
        if (rc < 0)
            emm_warn("fs %s: pager at %s: %s", cfg->name, cfg->pager_socket, strerror(-rc));
    }
    if (rc < 0)
        return rc;
    struct emm_stream_args a = {.label = pc->label, .peer_role = EMM_STREAM_PEER_PAGER,
                                .peer_uid = cfg->pager_user ? (uid_t)cfg->pager_uid : (uid_t)-1,
                                .on_dead = on_dead, .ctx = pc, .hello_timeout_ms = 10000,
                                .io = io};
    pthread_mutex_lock(&pc->lock);
    a.peer_pid = pc->pid;
    pthread_mutex_unlock(&pc->lock);
    struct emm_stream *s;
    rc = emm_stream_open(fd, &a, &s);
    if (rc < 0) {
        reap(pc, 1);
        return rc;
    }
    pthread_mutex_lock(&pc->lock);
    pc->s = s;
    pc->up_since_ns = emm_mono_ns();
    pthread_cond_broadcast(&pc->cond);
    pthread_mutex_unlock(&pc->lock);
    emm_notice("fs %s: pager %s is up (%s)", cfg->name, emm_stream_peer(s),
               cfg->pager_mode == EMM_PAGER_PROCESS ? "emm-pager"
               : cfg->pager_mode == EMM_PAGER_TCP   ? cfg->pager_addr
                                                    : cfg->pager_socket);
    return 0;
}

/* A new connection is up: every object whose pager died gets its new
 * memory object port (init again, then the kernel replays what swap holds).
 * Objects created since already have one. No lock held. */
static void
reinit_objects(struct emmd_pager_conn *pc)
{
    struct emmd_fs *fs = pc->fs;
    pthread_mutex_lock(&fs->lock);
    size_t n = 0, cap = 0;
    struct vm_object **v = NULL;
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *x = fs->by_id[b]; x; x = x->next_id) {
            if (x->vm == NULL || !vm_object_pager_lost(x->vm))
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct vm_object **nv = realloc(v, ncap * sizeof(*nv));
                if (nv == NULL)
                    break;
                v = nv;
                cap = ncap;
            }
            vm_object_ref(x->vm);
            v[n++] = x->vm;
        }
    pthread_mutex_unlock(&fs->lock);
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        struct emm_port *port;
        uint64_t id = vm_object_id(v[i]);
        if (emmd_pager_object_port(fs, id, &port) == 0) {
            int rc = vm_object_reinit(v[i], port);
            if (rc > 0)
                done++;
            else if (rc < 0)
                emm_err("fs %s: object %llu: not re-initialised: %s", fs->cfg->name,
                        (unsigned long long)id, strerror(-rc));
        }
        vm_object_unref(v[i]);
    }
    free(v);
    pthread_mutex_lock(&pc->lock);
    pc->reinits += done;
    pthread_mutex_unlock(&pc->lock);
    if (n > 0)
        emm_notice("fs %s: %zu of %zu objects re-initialised on the new pager connection",
                   fs->cfg->name, done, n);
}

static void
discard_keep(struct emmd_pager_conn *pc, uint64_t id)
{
    pthread_mutex_lock(&pc->lock);
    if (pc->ndiscards == pc->discards_cap) {
        size_t ncap = pc->discards_cap ? pc->discards_cap * 2 : 16;
        uint64_t *nd = realloc(pc->discards, ncap * sizeof(*nd));
        if (nd == NULL) {
            pthread_mutex_unlock(&pc->lock);
            emm_err("fs %s: object %llu: out of memory: its pages stay in the pager's store",
                    pc->fs->cfg->name, (unsigned long long)id);
            return;
        }
        pc->discards = nd;
        pc->discards_cap = ncap;
    }
    pc->discards[pc->ndiscards++] = id;
    pthread_mutex_unlock(&pc->lock);
}

/* Discards an object's pages at the pager through the protocol: a memory
 * object made for it alone (init), terminated with discard. 0, or -errno
 * (the pager did not give a port). No lock held. */
static int
discard_one(struct emmd_pager_conn *pc, uint64_t id)
{
    struct emmd_fs *fs = pc->fs;
    struct vm_object_args a = {
        .id = id,
        .owner = NULL,
        .dp_key = vm_dp_key(fs->dp_tag, id, 0),
        .deadline_ms = atomic_load(&fs->deadline_ms),
        .pstats = &fs->pstats,
        .pager_name = fs->cfg->name,
    };
    int rc = emmd_pager_object_port(fs, id, &a.pager);
    struct vm_object *vm = NULL;
    if (rc == 0)
        rc = vm_object_create(fs->d->kernel, &a, &vm);
    if (rc < 0)
        return rc;
    struct emmd_wait w;
    emmd_wait_init(&w);
    vm_object_terminate(vm, 0, emmd_wait_done, &w);
    emmd_wait(&w);
    int lost = vm_object_pager_lost(vm); /* it died again: the discard went nowhere */
    vm_object_unref(vm);
    return lost ? -EPIPE : 0;
}

/* Sends the discards kept while the pager was gone. No lock held. */
static void
discards_flush(struct emmd_pager_conn *pc)
{
    pthread_mutex_lock(&pc->lock);
    uint64_t *v = pc->discards;
    size_t n = pc->ndiscards;
    pc->discards = NULL;
    pc->ndiscards = pc->discards_cap = 0;
    pthread_mutex_unlock(&pc->lock);
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (discard_one(pc, v[i]) == 0)
            done++;
        else
            discard_keep(pc, v[i]); /* the next connection */
    }
    free(v);
    if (n > 0)
        emm_notice("fs %s: %zu of %zu discards of files unlinked while the pager was gone sent",
                   pc->fs->cfg->name, done, n);
}

void
emmd_pager_discard(struct emmd_fs *fs, uint64_t id)
{
    struct emmd_pager_conn *pc = fs->pconn;
    if (pc == NULL)
        return;
    discard_keep(pc, id);
    pthread_mutex_lock(&pc->lock);
    int up = pc->s != NULL;
    pthread_mutex_unlock(&pc->lock);
    if (up)
        discards_flush(pc);
    else
        emm_notice("fs %s: object %llu unlinked while its pager is gone: its pages are "
                   "discarded when the pager is back", fs->cfg->name, (unsigned long long)id);
}

/* Waits for the connection to die, then restarts it with back-off. */
static void *
supervise(void *arg)
{
    struct emmd_pager_conn *pc = arg;
    unsigned backoff_ms = 1000;
    for (;;) {
        pthread_mutex_lock(&pc->lock);
        while (pc->dead == NULL && (pc->s != NULL || pc->stopping) && !pc->quit)
            pthread_cond_wait(&pc->cond, &pc->lock);
        struct emm_stream *dead = pc->dead;
        pc->dead = NULL;
        int stopping = pc->stopping, quit = pc->quit;
        pthread_mutex_unlock(&pc->lock);
        if (dead != NULL) {
            emm_stream_close(dead);
            reap(pc, 1);
            if (stopping) /* its objects follow the dead-pager path (swap, if any) */
                emm_err("fs %s: the pager died while emmd was stopping: not restarted",
                        pc->fs->cfg->name);
        }
        if (quit)
            break;
        if (stopping)
            continue; /* emmd stops: no restart; wait for the end */
        /* Back-off before the next attempt, cut short by a stop. */
        struct timespec until;
        until = emm_deadline_after_ms(CLOCK_MONOTONIC, backoff_ms);
        emm_err("fs %s: RESTARTING the pager in %u ms (restart %u)", pc->fs->cfg->name,
                backoff_ms, pc->restarts + 1);
        pthread_mutex_lock(&pc->lock);
        while (!pc->stopping && pthread_cond_timedwait(&pc->cond, &pc->lock, &until) == 0)
            ;
        stopping = pc->stopping;
        if (!stopping)
            pc->restarts++;
        pthread_mutex_unlock(&pc->lock);
        if (stopping)
            continue;
        if (connect_once(pc) == 0) {
            backoff_ms = 1000;
            reinit_objects(pc);
            discards_flush(pc);
        }
        else if (backoff_ms < 30000)
            backoff_ms *= 2;
    }
    return NULL;
}

int
emmd_pager_conn_start(struct emmd_fs *fs)
{
    struct emmd_pager_conn *pc = calloc(1, sizeof(*pc));
    if (pc == NULL)
        return -ENOMEM;
    pc->fs = fs;
    pthread_mutex_init(&pc->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pc->cond, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(pc->label, sizeof(pc->label), "pager of fs %s", fs->cfg->name);
    int rc = 0;
    if (fs->cfg->pager_mode == EMM_PAGER_TCP)
        rc = emmd_pager_tcp_init(fs->cfg, &pc->tls);
    if (rc == 0)
        rc = connect_once(pc);
    if (rc == 0) {
        rc = -pthread_create(&pc->thread, NULL, supervise, pc);
        pc->started = rc == 0;
    }
    fs->pconn = pc;
    if (rc < 0) {
        emm_err("fs %s: the pager did not come up: %s", fs->cfg->name, strerror(-rc));
        emmd_pager_conn_stop(fs);
    }
    return rc;
}

void
emmd_pager_conn_stopping(struct emmd_fs *fs)
{
    struct emmd_pager_conn *pc = fs->pconn;
    if (pc == NULL)
        return;
    pthread_mutex_lock(&pc->lock);
    pc->stopping = 1; /* the supervisor closes a dead connection, restarts none */
    pthread_cond_broadcast(&pc->cond);
    pthread_mutex_unlock(&pc->lock);
}

void
emmd_pager_conn_stop(struct emmd_fs *fs)
{
    struct emmd_pager_conn *pc = fs->pconn;
    if (pc == NULL)
        return;
    pthread_mutex_lock(&pc->lock);
    pc->stopping = 1;
    pc->quit = 1;
    pthread_cond_broadcast(&pc->cond);
    pthread_mutex_unlock(&pc->lock);
    if (pc->started)
        pthread_join(pc->thread, NULL);
    pthread_mutex_lock(&pc->lock);
    struct emm_stream *s = pc->s;
    pc->s = NULL;
    pthread_mutex_unlock(&pc->lock);
    if (s != NULL) {
        emm_stream_drain(s, 10000); /* terminates and returns still queued go first */
        emm_stream_close(s);
    }
    pthread_mutex_lock(&pc->lock);
    if (pc->dead != NULL) {
        emm_stream_close(pc->dead);
        pc->dead = NULL;
    }
    pthread_mutex_unlock(&pc->lock);
    reap(pc, 0);
    for (size_t i = 0; i < pc->ndiscards; i++)
        emm_err("fs %s: object %llu was unlinked while the pager was gone and the pager did "
                "not come back: its pages stay in the store (not discarded)", fs->cfg->name,
                (unsigned long long)pc->discards[i]);
    free(pc->discards);
    emmd_pager_tcp_fini(pc->tls);
    pthread_cond_destroy(&pc->cond);
    pthread_mutex_destroy(&pc->lock);
    free(pc);
    fs->pconn = NULL;
}

int
emmd_pager_object_port(struct emmd_fs *fs, uint64_t id, struct emm_port **out)
{
    struct emmd_pager_conn *pc = fs->pconn;
    uint64_t ms = atomic_load(&fs->deadline_ms);
    if (ms == 0)
        ms = 5000;
    struct timespec until;
    until = emm_deadline_after_ms(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&pc->lock);
    while (pc->s == NULL && !pc->stopping)
        if (pthread_cond_timedwait(&pc->cond, &pc->lock, &until) != 0)
            break;
    struct emm_stream *s = pc->s;
    /* The stream lives while pc->s names it: close happens in the supervisor
     * after on_dead cleared it, so hold the lock across the lookup's start. */
    if (s == NULL) {
        pthread_mutex_unlock(&pc->lock);
        emm_err("fs %s: object %llu: no pager within %llu ms", fs->cfg->name,
                (unsigned long long)id, (unsigned long long)ms);
        return -EIO;
    }
    emm_stream_hold(s);
    pthread_mutex_unlock(&pc->lock);
    int rc = emm_stream_lookup(s, id, (int)ms, out);
    emm_stream_release(s);
    if (rc < 0) {
        emm_err("fs %s: object %llu: the pager did not give its port: %s", fs->cfg->name,
                (unsigned long long)id, strerror(-rc));
        return -EIO;
    }
    return 0;
}

void
emmd_pager_object_check(struct emmd_fs *fs, struct vm_object *vm)
{
    struct emmd_pager_conn *pc = fs->pconn;
    if (pc == NULL || !vm_object_pager_lost(vm))
        return;
    pthread_mutex_lock(&pc->lock);
    int up = pc->s != NULL;
    pthread_mutex_unlock(&pc->lock);
    if (!up)
        return; /* the next connection's reinit_objects finds it */
    struct emm_port *port;
    if (emmd_pager_object_port(fs, vm_object_id(vm), &port) == 0 && vm_object_reinit(vm, port) > 0) {
        pthread_mutex_lock(&pc->lock);
        pc->reinits++;
        pthread_mutex_unlock(&pc->lock);
    }
}

void
emmd_pager_conn_info(struct emmd_fs *fs, struct emmd_pager_info *out)
{
    struct emmd_pager_conn *pc = fs->pconn;
    memset(out, 0, sizeof(*out));
    if (pc == NULL)
        return;
    pthread_mutex_lock(&pc->lock);
    out->pid = pc->pid;
    out->restarts = pc->restarts;
    out->reinits = pc->reinits;
    out->up = pc->s != NULL;
    out->uptime_ms = pc->s != NULL ? (uint64_t)(emm_mono_ns() - pc->up_since_ns) / 1000000u : 0;
    if (pc->s != NULL) {
        struct emm_stream_info si;
        emm_stream_info(pc->s, &si);
        if (out->pid == 0)
            out->pid = si.pid;
        out->in_flight = si.in_flight;
        out->sent = si.sent;
        out->received = si.received;
        out->shm_pages = si.shm_pages;
        out->shm_lent = si.shm_out_used;
        out->shm_held = si.shm_in_held;
        out->shm_msgs = si.shm_msgs_out + si.shm_msgs_in;
        out->shm_waits = si.shm_waits;
    }
    pthread_mutex_unlock(&pc->lock);
}

void
emmd_pager_misbehaved(void *owner, const char *what)
{
    struct emmd_node *n = owner;
    if (n == NULL)
        return; /* an object made only to send a discard (emmd_pager_discard) */
    struct emmd_pager_conn *pc = n->fs->pconn;
    if (pc == NULL)
        return; /* an inline pager: the kernel refused the message, that is all */
    pthread_mutex_lock(&pc->lock);
    struct emm_stream *s = pc->s;
    if (s != NULL)
        emm_stream_hold(s);
    pthread_mutex_unlock(&pc->lock);
    if (s == NULL)
        return;
    char why[192];
    snprintf(why, sizeof(why), "fs %s: object %llu: the pager sent %s", n->fs->cfg->name,
             (unsigned long long)n->rec.id, what);
    emm_stream_cut(s, why);
    emm_stream_release(s);
}
