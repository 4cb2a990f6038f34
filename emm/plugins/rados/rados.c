/*
 * plugins/rados/rados.c - the "rados" backend, built as the plug-in rados.so:
 * a filesystem's pages in a Ceph RADOS pool, through librados's asynchronous
 * calls. It sees only <emm/backend.h> and librados.
 *
 * Layout (RBD's way of naming data objects; FS is the [fs NAME], all hex is
 * 16 lower-case digits), in pool rados.pool and namespace rados.namespace:
 *   emm_data.FS.OBJ.STRIPE  pages [STRIPE*ppo, (STRIPE+1)*ppo) of object OBJ at
 *                           offset (page % ppo) * 4096, ppo = object-size/4096;
 *                           created on first write, removed when it holds no page
 *   emm_hdr.FS.OBJ          the object's extents: omap key STRIPE -> a bitmap of
 *                           the pages stored in that stripe (ppo/8 bytes, bit i
 *                           of byte i/8). Holes are clear bits and absent keys:
 *                           they cost nothing. SEEK_DATA/SEEK_HOLE and the
 *                           stored count come from these bitmaps, never from
 *                           reading data. Removed when the object holds nothing.
 *   emm_dir.FS              the filesystem: omap "rados.object-size" (refused if it
 *                           differs at start), the namespace records that emmd's
 *                           catalog keeps through meta_update/meta_scan, and the
 *                           exclusive lock "emm" (cookie HOST:PID:NONCE,
 *                           LOCK_SECONDS, renewed every third of that).
 *
 * Durability: with write-behind (the default), write_pages copies the pages
 * into a run and returns; sync(object) returns once every run of the object
 * was acknowledged (an ack is a commit on every replica), or fails (see
 * "write-behind" below). With rados.write-behind = 0, write_pages returns
 * once RADOS acknowledged every data write and bitmap update it made, and
 * sync has nothing left to wait for beyond rados_aio_flush; a write that
 * fails then leaves the object's cached extents stale: they are dropped and
 * read again from the pool on the next call. Crash order: data and bitmap
 * are written in parallel; a write not acknowledged may land as neither,
 * either or both (the page reads as its old content, zeros, or the new one),
 * never as another page's data.
 *
 * Many I/Os in flight: a write-behind run is one RADOS write of up to a
 * whole stripe, and many runs are in flight at once; a read of several runs
 * in one stripe is one read op. Namespace updates (meta_update) wait at most
 * rados.meta-timeout, then fail with ETIMEDOUT (the op stays in flight; its
 * late outcome is logged).
 *
 * Locking: `lock` guards the object table (lookup and insert only; entries live
 * until destroy). Each object's `mu` is held across a whole call on it,
 * including the wait for its I/O, so its extents never change under a call.
 * The renewal thread takes `lock_mu` only. `wb_mu` guards the write-behind
 * state (the only lock completion callbacks take; taken inside an object's
 * `mu`, never the other way round). Thread model PARALLEL.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>

#include <emm/backend.h>

#define BUCKETS 4096
#define LOCK_NAME "emm"
#define LOCK_SECONDS 30
#define OMAP_BATCH 512
#define OBJSIZE_MIN ((uint64_t)64 << 10)
#define OBJSIZE_MAX ((uint64_t)64 << 20)
#define OBJSIZE_DEFAULT ((uint64_t)4 << 20)
#define WB_DEFAULT ((uint64_t)64 << 20)
#define WB_MAX ((uint64_t)4 << 30)
#define WB_WINDOW_MS 50             /* an open run is sent 50 ms after its last page */
#define WB_RETRY_NS 1000000000ull  /* failed runs are sent again every second */

struct rb;
struct robj;

struct meta_late {
    struct meta_late *next;
    rados_completion_t c;
};

/* A write-behind run (see "write-behind" below). */
enum { RUN_OPEN, RUN_FLIGHT, RUN_FAILED, RUN_DONE };

struct wrun {
    struct wrun *next;
    struct rb *b;
    struct robj *o;
    uint64_t stripe, lo, hi; /* pages [lo, hi) of the emm object, inside stripe */
    char *buf;               /* page lo at buf; cap pages allocated */
    uint8_t *has;            /* the pages the run holds (bit p - stripe*ppo): [lo, hi)
                              * may have gaps; kept when done (a tombstone) */
    uint32_t cap, count;
    int state, err, pending, newbits;
    uint64_t touched;        /* CLOCK_MONOTONIC ns: last page added, or failure */
    rados_completion_t cd, ch;
};

struct stripe {
    uint64_t idx;
    uint32_t count;  /* set bits */
    uint8_t *bits;   /* ppo/8 bytes */
};

struct robj {
    uint64_t id;
    struct robj *hnext;
    pthread_mutex_t mu;
    int loaded;
    struct stripe *s; /* sorted by idx */
    size_t ns, cap;
    uint64_t pages;
    /* write-behind (under rb.wb_mu): the object's runs, oldest first; the
     * open one, if any, is the tail and only a caller holding mu changes it */
    struct wrun *runs, *runs_tail, *open;
    struct robj *wbq_next; /* on rb.wbq: has an open or failed run */
    int in_wbq;
};

struct rb {
    const struct emm_backend_host *host;
    char *conf, *pool, *user, *keyring, *nspace;
    uint64_t object_size;
    uint32_t ppo, bmlen;
    unsigned connect_timeout, op_timeout, meta_timeout;
    rados_t cluster;
    rados_ioctx_t io;
    int connected, locked;
    char label[320];  /* "cluster FSID (mon host ...)" for messages */
    char dirobj[300];
    char cookie[160];
    pthread_mutex_t lock;
    struct robj *buckets[BUCKETS];
    /* lock renewal */
    pthread_mutex_t lock_mu;
    pthread_cond_t lock_cv;
    pthread_t renewer;
    int renewing, stopping;
    /* write-behind: see "write-behind" below */
    uint64_t wb_limit;                   /* pages; 0: write_pages waits for RADOS */
    uint64_t wb_window;                  /* ns an open run waits for more pages */
    pthread_mutex_t wb_mu;
    pthread_cond_t wb_cv;                /* a run finished, budget freed */
    pthread_cond_t fl_cv;                /* wakes the flusher */
    uint64_t wb_pages;                   /* pages held in runs' buffers */
    struct robj *wbq;                    /* objects the flusher looks at */
    struct wrun *reap;                   /* finished runs to free (not in a callback) */
    struct meta_late *meta_late;         /* completions of given-up namespace updates */
    pthread_t flusher;
    int flushing, fl_stop;
    /* counters */
    _Atomic uint64_t reads, writes, read_ops, write_ops, omap_ops, errors;
    _Atomic uint64_t wb_runs, wb_run_pages, wb_retries, wb_failed;
};

/* ---- completions --------------------------------------------------------- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int err;
};

struct aio {
    struct waiter *w;
    rados_completion_t c;
    int ignore_enoent;
};

static void
waiter_init(struct waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->pending = 0;
    w->err = 0;
}

static void
aio_done(rados_completion_t c, void *arg)
{
    struct aio *a = arg;
    int r = rados_aio_get_return_value(c);
    pthread_mutex_lock(&a->w->mu);
    if (r < 0 && !(r == -ENOENT && a->ignore_enoent) && a->w->err == 0)
        a->w->err = r;
    if (--a->w->pending == 0)
        pthread_cond_broadcast(&a->w->cv);
    pthread_mutex_unlock(&a->w->mu);
}

static int
aio_new(struct waiter *w, struct aio *a, int ignore_enoent)
{
    a->w = w;
    a->ignore_enoent = ignore_enoent;
    int r = rados_aio_create_completion2(a, aio_done, &a->c);
    if (r < 0)
        return r;
    pthread_mutex_lock(&w->mu);
    w->pending++;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* The submit failed: the callback will never run. */
static void
aio_abandon(struct aio *a, int r)
{
    pthread_mutex_lock(&a->w->mu);
    if (a->w->err == 0)
        a->w->err = r;
    a->w->pending--;
    pthread_mutex_unlock(&a->w->mu);
    rados_aio_release(a->c);
    a->c = NULL;
}

static int
waiter_wait(struct waiter *w, struct aio *as, size_t n)
{
    pthread_mutex_lock(&w->mu);
    while (w->pending > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    int r = w->err;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++)
        if (as[i].c)
            rados_aio_release(as[i].c);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return r;
}

/* ---- names ---------------------------------------------------------------- */

static void
data_name(const struct rb *b, uint64_t obj, uint64_t stripe, char *out, size_t len)
{
    snprintf(out, len, "emm_data.%s.%016" PRIx64 ".%016" PRIx64, b->host->fs_name, obj, stripe);
}

static void
hdr_name(const struct rb *b, uint64_t obj, char *out, size_t len)
{
    snprintf(out, len, "emm_hdr.%s.%016" PRIx64, b->host->fs_name, obj);
}

/* ---- lifecycle ------------------------------------------------------------ */

static int
rb_create(const struct emm_backend_host *host, void **instance)
{
    struct rb *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->host = host;
    b->object_size = OBJSIZE_DEFAULT;
    b->connect_timeout = 10;
    b->op_timeout = 30;
    b->meta_timeout = 10;
    b->wb_limit = WB_DEFAULT / EMM_PAGE_SIZE;
    b->wb_window = WB_WINDOW_MS * 1000000ull;
    pthread_mutex_init(&b->wb_mu, NULL);
    pthread_cond_init(&b->wb_cv, NULL);
    pthread_cond_init(&b->fl_cv, NULL);
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->lock_mu, NULL);
    pthread_cond_init(&b->lock_cv, NULL);
    *instance = b;
    return 0;
}

static int
set_str(char **dst, const char *value)
{
    free(*dst);
    *dst = strdup(value);
    return *dst ? 0 : -ENOMEM;
}

static int
parse_seconds(const char *value, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || end == value || *end || v > 3600 || value[0] == '-')
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int
rb_config(void *instance, const char *key, const char *value, char *err, size_t errlen)
{
    struct rb *b = instance;

    if (strcmp(key, "conf") == 0) {
        if (value[0] != '/') {
            snprintf(err, errlen, "'%s' is not an absolute path", value);
            return -EINVAL;
        }
        return set_str(&b->conf, value);
    }
    if (strcmp(key, "pool") == 0) {
        if (!value[0]) {
            snprintf(err, errlen, "empty pool name");
            return -EINVAL;
        }
        return set_str(&b->pool, value);
    }
    if (strcmp(key, "user") == 0) {
        if (!value[0] || strchr(value, ' ')) {
            snprintf(err, errlen, "'%s' is not a Ceph user name (e.g. admin or client.emm)",
                     value);
            return -EINVAL;
        }
        return set_str(&b->user, value);
    }
    if (strcmp(key, "keyring") == 0) {
        if (value[0] != '/') {
            snprintf(err, errlen, "'%s' is not an absolute path", value);
            return -EINVAL;
        }
        return set_str(&b->keyring, value);
    }
    if (strcmp(key, "namespace") == 0)
        return set_str(&b->nspace, value);
    if (strcmp(key, "object-size") == 0) {
        uint64_t v;
        if (b->host->parse_size(value, &v) < 0 || v < OBJSIZE_MIN || v > OBJSIZE_MAX ||
            (v & (v - 1)) != 0) {
            snprintf(err, errlen, "'%s' is not a power of two from 64K to 64M", value);
            return -EINVAL;
        }
        b->object_size = v;
        return 0;
    }
    if (strcmp(key, "write-behind") == 0) {
        uint64_t v;
        if (b->host->parse_size(value, &v) < 0 || v > WB_MAX) {
            snprintf(err, errlen, "'%s' is not a size from 0 to 4G", value);
            return -EINVAL;
        }
        b->wb_limit = v / EMM_PAGE_SIZE;
        return 0;
    }
    if (strcmp(key, "write-window") == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || strcmp(end, "ms") != 0 || v < 1 || v > 3600000) {
            snprintf(err, errlen, "'%s' is not a number of milliseconds (1ms..3600000ms)",
                     value);
            return -EINVAL;
        }
        b->wb_window = v * 1000000ull;
        return 0;
    }
    if (strcmp(key, "connect-timeout") == 0 || strcmp(key, "op-timeout") == 0 ||
        strcmp(key, "meta-timeout") == 0) {
        unsigned *dst = key[0] == 'c' ? &b->connect_timeout
                        : key[0] == 'o' ? &b->op_timeout : &b->meta_timeout;
        if (parse_seconds(value, dst) < 0 || (key[0] != 'o' && *dst == 0)) {
            snprintf(err, errlen, "'%s' is not a number of seconds (%s..3600)", value,
                     key[0] != 'o' ? "1" : "0");
            return -EINVAL;
        }
        return 0;
    }
    snprintf(err, errlen, "unknown key (rados takes: conf, pool, user, keyring, namespace, "
                          "object-size, write-behind, write-window, connect-timeout, op-timeout, meta-timeout)");
    return -EINVAL;
}

static int
rb_config_complete(void *instance, char *err, size_t errlen)
{
    struct rb *b = instance;

    if (!b->pool) {
        snprintf(err, errlen, "rados.pool is required");
        return -EINVAL;
    }
    if (b->conf && access(b->conf, R_OK) < 0) {
        snprintf(err, errlen, "rados.conf: cannot read %s: %s", b->conf, strerror(errno));
        return -EINVAL;
    }
    if (b->keyring && access(b->keyring, R_OK) < 0) {
        snprintf(err, errlen, "rados.keyring: cannot read %s: %s", b->keyring, strerror(errno));
        return -EINVAL;
    }
    b->ppo = (uint32_t)(b->object_size / EMM_PAGE_SIZE);
    b->bmlen = b->ppo / 8;
    snprintf(b->dirobj, sizeof(b->dirobj), "emm_dir.%s", b->host->fs_name);
    return 0;
}

static void
set_opt(struct rb *b, const char *opt, unsigned v)
{
    char s[16];
    snprintf(s, sizeof(s), "%u", v);
    if (rados_conf_set(b->cluster, opt, s) < 0)
        b->host->log(b->host, EMM_LOG_WARN, "cannot set %s", opt);
}

/* Checks (or records) the object size the pool's objects were written with. */
static int
check_object_size(struct rb *b)
{
    rados_read_op_t op = rados_create_read_op();
    rados_omap_iter_t it = NULL;
    const char *keys[] = {"rados.object-size"};
    size_t klen[] = {17};
    int prval = 0, r;

    rados_read_op_omap_get_vals_by_keys2(op, keys, 1, klen, &it, &prval);
    r = rados_read_op_operate(op, b->io, b->dirobj, 0);
    rados_release_read_op(op);
    if ((r == -ENOENT || r < 0) && it) { /* librados made one even so */
        rados_omap_get_end(it);
        it = NULL;
    }
    if (r == -ENOENT)
        r = 0;
    if (r < 0)
        return r;
    char want[24];
    snprintf(want, sizeof(want), "%" PRIu64, b->object_size);
    if (it) {
        char *k, *v;
        size_t kl, vl;
        int found = 0;
        if (rados_omap_get_next2(it, &k, &v, &kl, &vl) == 0 && k) {
            found = 1;
            if (vl != strlen(want) || memcmp(v, want, vl) != 0) {
                b->host->log(b->host, EMM_LOG_ERR,
                             "pool %s holds this filesystem with object-size %.*s bytes, "
                             "not %s: set rados.object-size to match",
                             b->pool, (int)vl, v, want);
                rados_omap_get_end(it);
                return -EINVAL;
            }
        }
        rados_omap_get_end(it);
        if (found)
            return 0;
    }
    rados_write_op_t w = rados_create_write_op();
    const char *vals[] = {want};
    size_t vlen[] = {strlen(want)};
    rados_write_op_omap_set2(w, keys, vals, klen, vlen, 1);
    r = rados_write_op_operate(w, b->io, b->dirobj, NULL, 0);
    rados_release_write_op(w);
    return r;
}

static int
is_same_host_dead(const char *cookie)
{
    char host[128];
    long pid;
    if (gethostname(host, sizeof(host)) < 0)
        return 0;
    host[sizeof(host) - 1] = '\0';
    size_t hl = strlen(host);
    if (strncmp(cookie, host, hl) != 0 || cookie[hl] != ':')
        return 0;
    pid = strtol(cookie + hl + 1, NULL, 10);
    return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static int
take_lock(struct rb *b)
{
    struct timeval tv = {LOCK_SECONDS, 0};
    for (int attempt = 0;; attempt++) {
        int r = rados_lock_exclusive(b->io, b->dirobj, LOCK_NAME, b->cookie, "emmd", &tv, 0);
        if (r == 0 || r == -EEXIST)
            return 0;
        if (r != -EBUSY || attempt > 0) {
            b->host->log(b->host, EMM_LOG_ERR, "cannot lock %s in pool %s of %s: %s", b->dirobj,
                         b->pool, b->label, strerror(-r));
            return r;
        }
        char tag[64], clients[256], cookies[256], addrs[256];
        size_t tl = sizeof(tag), cl = sizeof(clients), kl = sizeof(cookies), al = sizeof(addrs);
        int excl = 0;
        ssize_t n = rados_list_lockers(b->io, b->dirobj, LOCK_NAME, &excl, tag, &tl, clients, &cl,
                                       cookies, &kl, addrs, &al);
        if (n == 0)
            continue; /* released meanwhile */
        if (n > 0 && is_same_host_dead(cookies)) {
            b->host->log(b->host, EMM_LOG_NOTICE,
                         "breaking the lock of a dead emmd on this host (%s, %s)", clients,
                         cookies);
            r = rados_break_lock(b->io, b->dirobj, LOCK_NAME, clients, cookies);
            if (r < 0 && r != -ENOENT)
                b->host->log(b->host, EMM_LOG_WARN, "break_lock: %s", strerror(-r));
            continue;
        }
        b->host->log(b->host, EMM_LOG_ERR,
                     "filesystem %s in pool %s of %s is in use by another emmd (lock held by "
                     "%s at %s, cookie %s): not mounted. Stop that emmd first; if it died on "
                     "another host, its lock expires within %d s",
                     b->host->fs_name, b->pool, b->label, n > 0 ? clients : "?",
                     n > 0 ? addrs : "?", n > 0 ? cookies : "?", LOCK_SECONDS);
        return -EBUSY;
    }
}

static void *
renew_main(void *arg)
{
    struct rb *b = arg;
    pthread_mutex_lock(&b->lock_mu);
    while (!b->stopping) {
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        at.tv_sec += LOCK_SECONDS / 3;
        pthread_cond_timedwait(&b->lock_cv, &b->lock_mu, &at);
        if (b->stopping)
            break;
        pthread_mutex_unlock(&b->lock_mu);
        struct timeval tv = {LOCK_SECONDS, 0};
        int r = rados_lock_exclusive(b->io, b->dirobj, LOCK_NAME, b->cookie, "emmd", &tv,
                                     LIBRADOS_LOCK_FLAG_MAY_RENEW);
        if (r < 0)
            b->host->log(b->host, EMM_LOG_ERR,
                         "renewing the exclusive lock on %s: %s (another emmd may take the "
                         "filesystem when it expires)",
                         b->dirobj, strerror(-r));
        pthread_mutex_lock(&b->lock_mu);
    }
    pthread_mutex_unlock(&b->lock_mu);
    return NULL;
}

static void rb_stop(void *instance);
static void *flusher_main(void *arg);

static int
rb_start(void *instance)
{
    struct rb *b = instance;
    char mon[200] = "", fsid[64] = "", user[128];
    int r;

    if (b->user && strncmp(b->user, "client.", 7) != 0)
        snprintf(user, sizeof(user), "client.%s", b->user);
    else
        snprintf(user, sizeof(user), "%s", b->user ? b->user : "client.admin");
    r = rados_create2(&b->cluster, "ceph", user, 0);
    if (r < 0) {
        b->host->log(b->host, EMM_LOG_ERR, "rados_create2 as %s: %s", user, strerror(-r));
        return r;
    }
    r = rados_conf_read_file(b->cluster, b->conf); /* NULL: $CEPH_CONF, then the defaults */
    if (r < 0) {
        b->host->log(b->host, EMM_LOG_ERR, "cannot read the Ceph configuration %s: %s",
                     b->conf ? b->conf : "($CEPH_CONF or /etc/ceph/ceph.conf)", strerror(-r));
        goto fail;
    }
    if (b->keyring && (r = rados_conf_set(b->cluster, "keyring", b->keyring)) < 0) {
        b->host->log(b->host, EMM_LOG_ERR, "keyring %s: %s", b->keyring, strerror(-r));
        goto fail;
    }
    set_opt(b, "client_mount_timeout", b->connect_timeout);
    set_opt(b, "rados_mon_op_timeout", b->connect_timeout);
    set_opt(b, "rados_osd_op_timeout", b->op_timeout);
    rados_conf_get(b->cluster, "mon_host", mon, sizeof(mon));
    rados_conf_get(b->cluster, "fsid", fsid, sizeof(fsid));
    snprintf(b->label, sizeof(b->label), "cluster %s (mon host %s)",
             fsid[0] && strcmp(fsid, "00000000-0000-0000-0000-000000000000") ? fsid : "?",
             mon[0] ? mon : "?");
    r = rados_connect(b->cluster);
    if (r < 0) {
        char within[32] = "";
        if (r == -ETIMEDOUT)
            snprintf(within, sizeof(within), " within %u s", b->connect_timeout);
        b->host->log(b->host, EMM_LOG_ERR, "cannot connect to %s as %s%s: %s%s", b->label, user,
                     within, strerror(-r),
                     r == -EACCES || r == -EPERM || r == -EINVAL
                         ? " (check rados.user and rados.keyring)"
                         : "");
        goto fail;
    }
    b->connected = 1;
    r = rados_ioctx_create(b->cluster, b->pool, &b->io);
    if (r < 0) {
        b->host->log(b->host, EMM_LOG_ERR, "pool %s of %s: %s", b->pool, b->label,
                     r == -ENOENT ? "no such pool" : strerror(-r));
        goto fail;
    }
    if (b->nspace)
        rados_ioctx_set_namespace(b->io, b->nspace);
    r = check_object_size(b);
    if (r < 0) {
        if (r != -EINVAL)
            b->host->log(b->host, EMM_LOG_ERR, "pool %s of %s: %s: %s", b->pool, b->label,
                         b->dirobj, strerror(-r));
        goto fail;
    }
    char host[128];
    if (gethostname(host, sizeof(host)) < 0)
        snprintf(host, sizeof(host), "?");
    host[sizeof(host) - 1] = '\0';
    snprintf(b->cookie, sizeof(b->cookie), "%s:%ld:%lx", host, (long)getpid(),
             (unsigned long)time(NULL) ^ (unsigned long)(uintptr_t)b);
    r = take_lock(b);
    if (r < 0)
        goto fail;
    b->locked = 1;
    b->stopping = 0;
    if (pthread_create(&b->renewer, NULL, renew_main, b) == 0)
        b->renewing = 1;
    b->fl_stop = 0;
    if (b->wb_limit) {
        r = pthread_create(&b->flusher, NULL, flusher_main, b);
        if (r != 0) {
            b->host->log(b->host, EMM_LOG_ERR, "cannot start the write-behind thread: %s",
                         strerror(r));
            r = -r;
            goto fail;
        }
        b->flushing = 1;
    }
    b->host->log(b->host, EMM_LOG_INFO, "pool %s%s%s of %s, objects of %" PRIu64 " KiB, as %s",
                 b->pool, b->nspace ? " namespace " : "", b->nspace ? b->nspace : "", b->label,
                 b->object_size >> 10, user);
    return 0;
fail:
    rb_stop(b);
    return r < 0 ? r : -EIO;
}

static void run_free(struct wrun *r);
static void reap(struct rb *b);
static int sync_all(struct rb *b);

/* After the cluster handle is shut down: no callback runs any more. */
static void
free_objects(struct rb *b)
{
    reap(b);
    b->wb_pages = 0;
    b->wbq = NULL;
    for (int i = 0; i < BUCKETS; i++) {
        struct robj *o = b->buckets[i];
        while (o) {
            struct robj *next = o->hnext;
            while (o->runs) {
                struct wrun *r = o->runs;
                o->runs = r->next;
                run_free(r);
            }
            for (size_t k = 0; k < o->ns; k++)
                free(o->s[k].bits);
            free(o->s);
            pthread_mutex_destroy(&o->mu);
            free(o);
            o = next;
        }
        b->buckets[i] = NULL;
    }
}

static void
rb_stop(void *instance)
{
    struct rb *b = instance;

    if (b->renewing) {
        pthread_mutex_lock(&b->lock_mu);
        b->stopping = 1;
        pthread_cond_broadcast(&b->lock_cv);
        pthread_mutex_unlock(&b->lock_mu);
        pthread_join(b->renewer, NULL);
        b->renewing = 0;
    }
    if (b->flushing) {
        pthread_mutex_lock(&b->wb_mu);
        b->fl_stop = 1;
        pthread_cond_broadcast(&b->fl_cv);
        pthread_mutex_unlock(&b->wb_mu);
        pthread_join(b->flusher, NULL);
        b->flushing = 0;
    }
    if (b->io) {
        if (b->wb_limit && sync_all(b) < 0)
            b->host->log(b->host, EMM_LOG_ERR,
                         "stopping with writes the pool of %s did not take: pages written "
                         "since the last successful sync are lost", b->label);
        rados_aio_flush(b->io);
        if (b->locked)
            rados_unlock(b->io, b->dirobj, LOCK_NAME, b->cookie);
        b->locked = 0;
        rados_ioctx_destroy(b->io);
        b->io = NULL;
    }
    if (b->cluster)
        rados_shutdown(b->cluster);
    b->cluster = NULL;
    while (b->meta_late) {
        struct meta_late *l = b->meta_late;
        b->meta_late = l->next;
        rados_aio_release(l->c);
        free(l);
    }
    b->connected = 0;
    free_objects(b);
}

static void
rb_destroy(void *instance)
{
    struct rb *b = instance;
    if (b->cluster)
        rb_stop(b);
    pthread_mutex_destroy(&b->lock);
    pthread_mutex_destroy(&b->lock_mu);
    pthread_cond_destroy(&b->lock_cv);
    pthread_mutex_destroy(&b->wb_mu);
    pthread_cond_destroy(&b->wb_cv);
    pthread_cond_destroy(&b->fl_cv);
    free(b->conf);
    free(b->pool);
    free(b->user);
    free(b->keyring);
    free(b->nspace);
    free(b);
}

/* ---- objects and their extents -------------------------------------------- */

static struct robj *
obj_get(struct rb *b, uint64_t id)
{
    unsigned h = (unsigned)((id * 0x9E3779B97F4A7C15ull) >> 52) & (BUCKETS - 1);
    pthread_mutex_lock(&b->lock);
    struct robj *o = b->buckets[h];
    while (o && o->id != id)
        o = o->hnext;
    if (!o && (o = calloc(1, sizeof(*o))) != NULL) {
        o->id = id;
        pthread_mutex_init(&o->mu, NULL);
        o->hnext = b->buckets[h];
        b->buckets[h] = o;
    }
    pthread_mutex_unlock(&b->lock);
    return o;
}

static void
obj_forget(struct robj *o)
{
    for (size_t k = 0; k < o->ns; k++)
        free(o->s[k].bits);
    o->ns = 0;
    o->pages = 0;
    o->loaded = 0;
}

/* Index of the first stripe with idx >= idx. */
static size_t
s_lower(const struct robj *o, uint64_t idx)
{
    size_t lo = 0, hi = o->ns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->s[mid].idx < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct stripe *
s_find(struct robj *o, uint64_t idx)
{
    size_t i = s_lower(o, idx);
    return i < o->ns && o->s[i].idx == idx ? &o->s[i] : NULL;
}

static struct stripe *
s_insert(struct rb *b, struct robj *o, uint64_t idx)
{
    size_t i = s_lower(o, idx);
    if (i < o->ns && o->s[i].idx == idx)
        return &o->s[i];
    if (o->ns == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        struct stripe *ns = realloc(o->s, cap * sizeof(*ns));
        if (!ns)
            return NULL;
        o->s = ns;
        o->cap = cap;
    }
    uint8_t *bits = calloc(1, b->bmlen);
    if (!bits)
        return NULL;
    memmove(&o->s[i + 1], &o->s[i], (o->ns - i) * sizeof(*o->s));
    o->s[i] = (struct stripe){.idx = idx, .count = 0, .bits = bits};
    o->ns++;
    return &o->s[i];
}

static void
s_remove(struct robj *o, struct stripe *s)
{
    size_t i = (size_t)(s - o->s);
    free(s->bits);
    memmove(&o->s[i], &o->s[i + 1], (o->ns - i - 1) * sizeof(*o->s));
    o->ns--;
}

static int
bit(const uint8_t *bits, uint32_t i)
{
    return (bits[i >> 3] >> (i & 7)) & 1;
}

/* Reads the object's extents from its header's omap. o->mu held. */
static int
obj_load(struct rb *b, struct robj *o)
{
    char hdr[300], after[20] = "";
    unsigned char more = 1;
    int r = 0;

    if (o->loaded)
        return 0;
    hdr_name(b, o->id, hdr, sizeof(hdr));
    while (more && r == 0) {
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it = NULL;
        int prval = 0;
        more = 0;
        rados_read_op_omap_get_vals2(op, after, "", OMAP_BATCH, &it, &more, &prval);
        r = rados_read_op_operate(op, b->io, hdr, 0);
        rados_release_read_op(op);
        atomic_fetch_add(&b->omap_ops, 1);
        if (r == -ENOENT) {
            r = 0;
            if (it) /* librados made one even so */
                rados_omap_get_end(it);
            break;
        }
        if (r == 0 && prval < 0)
            r = prval;
        if (r < 0) {
            if (it)
                rados_omap_get_end(it);
            break;
        }
        char *k, *v;
        size_t kl, vl;
        while (rados_omap_get_next2(it, &k, &v, &kl, &vl) == 0 && k) {
            char key[20];
            char *end;
            if (kl != 16 || vl != b->bmlen) {
                b->host->log(b->host, EMM_LOG_ERR,
                             "%s: extent entry of %zu bytes (expected %u: was the filesystem "
                             "written with another rados.object-size?)",
                             hdr, vl, b->bmlen);
                r = -EIO;
                break;
            }
            memcpy(key, k, 16);
            key[16] = '\0';
            uint64_t idx = strtoull(key, &end, 16);
            struct stripe *s = *end ? NULL : s_insert(b, o, idx);
            if (!s) {
                r = *end ? -EIO : -ENOMEM;
                break;
            }
            memcpy(s->bits, v, b->bmlen);
            s->count = 0;
            for (uint32_t i = 0; i < b->bmlen; i++)
                s->count += (uint32_t)__builtin_popcount(s->bits[i]);
            o->pages += s->count;
            memcpy(after, key, 17);
        }
        rados_omap_get_end(it);
    }
    if (r < 0) {
        b->host->log(b->host, EMM_LOG_ERR, "reading the extents of %s: %s", hdr, strerror(-r));
        obj_forget(o);
        return r;
    }
    o->loaded = 1;
    return 0;
}

static int
obj_lock(struct rb *b, uint64_t id, struct robj **out)
{
    struct robj *o = obj_get(b, id);
    if (!o)
        return -ENOMEM;
    pthread_mutex_lock(&o->mu);
    int r = obj_load(b, o);
    if (r < 0) {
        pthread_mutex_unlock(&o->mu);
        return r;
    }
    *out = o;
    return 0;
}

/* ---- data path ------------------------------------------------------------- */

static void wb_overlay(struct rb *b, struct robj *o, uint64_t first, uint32_t npages, char *buf,
                       uint8_t *present);

struct rrun {
    char *dst;
    size_t len, got;
    int rv;
};

static int
rb_read(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
        uint8_t *present)
{
    struct rb *b = instance;
    struct robj *o;
    int r;

    memset(present, 0, npages);
    if (first + npages < first)
        return -EINVAL;
    r = obj_lock(b, object, &o);
    if (r < 0)
        return r;
    uint64_t s0 = first / b->ppo, s1 = (first + npages - 1) / b->ppo;
    size_t nstripes = (size_t)(s1 - s0 + 1);
    struct rrun *runs = calloc(npages, sizeof(*runs));
    struct aio *as = calloc(nstripes, sizeof(*as));
    rados_read_op_t *ops = calloc(nstripes, sizeof(*ops));
    struct waiter w;
    size_t nruns = 0, nas = 0;

    if (!runs || !as || !ops) {
        free(runs), free(as), free(ops);
        pthread_mutex_unlock(&o->mu);
        return -ENOMEM;
    }
    waiter_init(&w);
    for (uint64_t si = s0; si <= s1; si++) {
        uint64_t lo = si == s0 ? first : si * b->ppo;
        uint64_t hi = si == s1 ? first + npages : (si + 1) * b->ppo;
        char *base = (char *)buf + (lo - first) * EMM_PAGE_SIZE;
        struct stripe *s = s_find(o, si);
        memset(base, 0, (size_t)(hi - lo) * EMM_PAGE_SIZE);
        if (!s)
            continue;
        rados_read_op_t op = NULL;
        for (uint64_t p = lo; p < hi;) {
            uint32_t in = (uint32_t)(p - si * b->ppo);
            if (!bit(s->bits, in)) {
                p++;
                continue;
            }
            uint64_t e = p;
            while (e < hi && bit(s->bits, (uint32_t)(e - si * b->ppo)))
                present[e++ - first] = 1;
            if (!op)
                op = rados_create_read_op();
            struct rrun *run = &runs[nruns++];
            run->dst = (char *)buf + (p - first) * EMM_PAGE_SIZE;
            run->len = (size_t)(e - p) * EMM_PAGE_SIZE;
            rados_read_op_read(op, (uint64_t)in * EMM_PAGE_SIZE, run->len, run->dst, &run->got,
                               &run->rv);
            p = e;
        }
        if (!op)
            continue;
        char oid[300];
        data_name(b, object, si, oid, sizeof(oid));
        struct aio *a = &as[nas];
        ops[nas++] = op;
        int ar = aio_new(&w, a, 1);
        if (ar == 0) {
            ar = rados_aio_read_op_operate(op, b->io, a->c, oid, 0);
            if (ar < 0)
                aio_abandon(a, ar);
        } else {
            pthread_mutex_lock(&w.mu);
            if (!w.err)
                w.err = ar;
            pthread_mutex_unlock(&w.mu);
            a->c = NULL;
        }
        atomic_fetch_add(&b->read_ops, 1);
    }
    r = waiter_wait(&w, as, nas);
    for (size_t i = 0; i < nas; i++)
        rados_release_read_op(ops[i]);
    for (size_t i = 0; r == 0 && i < nruns; i++) {
        if (runs[i].rv < 0 && runs[i].rv != -ENOENT)
            r = runs[i].rv;
        else if (runs[i].rv < 0 || runs[i].got < runs[i].len) /* past the object's end: zeros */
            memset(runs[i].dst + (runs[i].rv < 0 ? 0 : runs[i].got), 0,
                   runs[i].len - (runs[i].rv < 0 ? 0 : runs[i].got));
    }
    if (r == -ENOENT)
        r = 0; /* a stripe listed in the extents whose data object never landed: zeros */
    if (r == 0)
        wb_overlay(b, o, first, npages, buf, present);
    pthread_mutex_unlock(&o->mu);
    free(runs), free(as), free(ops);
    if (r < 0) {
        atomic_fetch_add(&b->errors, 1);
        b->host->log(b->host, EMM_LOG_ERR, "read of object %" PRIx64 " pages %" PRIu64 "+%u: %s",
                     object, first, npages, strerror(-r));
        memset(present, 0, npages);
    } else {
        atomic_fetch_add(&b->reads, 1);
    }
    return r;
}

/* Submits one omap update of the header: puts (stripe bitmaps) and removes. */
static int
submit_hdr(struct rb *b, uint64_t object, struct waiter *w, struct aio *a, const char **kp, const char **vals, size_t *klen, size_t *vlen, size_t nput,
           const char **rmk, size_t *rml, size_t nrm, int remove_hdr)
{
    char hdr[300];
    hdr_name(b, object, hdr, sizeof(hdr));
    rados_write_op_t op = rados_create_write_op();
    if (remove_hdr) {
        rados_write_op_remove(op);
    } else {
        if (nput)
            rados_write_op_omap_set2(op, kp, vals, klen, vlen, nput);
        if (nrm)
            rados_write_op_omap_rm_keys2(op, rmk, rml, nrm);
    }
    int r = aio_new(w, a, remove_hdr);
    if (r == 0) {
        r = rados_aio_write_op_operate(op, b->io, a->c, hdr, NULL, 0);
        if (r < 0)
            aio_abandon(a, r);
    } else {
        a->c = NULL;
    }
    rados_release_write_op(op); /* librados keeps what the aio needs */
    atomic_fetch_add(&b->omap_ops, 1);
    return r;
}

/* write-behind off: returns once RADOS acknowledged every write it made */
static int
write_sync(struct rb *b, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    struct robj *o;
    int r;

    if (first + npages < first)
        return -EFBIG;
    r = obj_lock(b, object, &o);
    if (r < 0)
        return r;
    uint64_t s0 = first / b->ppo, s1 = (first + npages - 1) / b->ppo;
    size_t nstripes = (size_t)(s1 - s0 + 1);
    struct aio *as = calloc(nstripes + 1, sizeof(*as));
    char(*keys)[17] = calloc(nstripes, sizeof(*keys));
    const char **kp = calloc(nstripes, sizeof(*kp)), **vals = calloc(nstripes, sizeof(*vals));
    size_t *klen = calloc(nstripes, sizeof(*klen)), *vlen = calloc(nstripes, sizeof(*vlen));
    struct waiter w;
    size_t nas = 0, nput = 0;

    if (!as || !keys || !kp || !vals || !klen || !vlen) {
        r = -ENOMEM;
        goto out_free;
    }
    waiter_init(&w);
    for (uint64_t si = s0; si <= s1; si++) {
        uint64_t lo = si == s0 ? first : si * b->ppo;
        uint64_t hi = si == s1 ? first + npages : (si + 1) * b->ppo;
        struct stripe *s = s_insert(b, o, si);
        if (!s) {
            pthread_mutex_lock(&w.mu);
            w.err = -ENOMEM;
            pthread_mutex_unlock(&w.mu);
            break;
        }
        int changed = 0;
        for (uint64_t p = lo; p < hi; p++) {
            uint32_t in = (uint32_t)(p - si * b->ppo);
            if (!bit(s->bits, in)) {
                s->bits[in >> 3] |= (uint8_t)(1u << (in & 7));
                s->count++;
                o->pages++;
                changed = 1;
            }
        }
        if (changed) {
            snprintf(keys[nput], 17, "%016" PRIx64, si);
            kp[nput] = keys[nput];
            klen[nput] = 16;
            vals[nput] = (const char *)s->bits;
            vlen[nput] = b->bmlen;
            nput++;
        }
        char oid[300];
        data_name(b, object, si, oid, sizeof(oid));
        struct aio *a = &as[nas++];
        int ar = aio_new(&w, a, 0);
        if (ar == 0) {
            ar = rados_aio_write(b->io, oid, a->c,
                                 (const char *)buf + (lo - first) * EMM_PAGE_SIZE,
                                 (size_t)(hi - lo) * EMM_PAGE_SIZE,
                                 (lo - si * b->ppo) * EMM_PAGE_SIZE);
            if (ar < 0)
                aio_abandon(a, ar);
        } else {
            a->c = NULL;
            pthread_mutex_lock(&w.mu);
            w.err = ar;
            pthread_mutex_unlock(&w.mu);
        }
        atomic_fetch_add(&b->write_ops, 1);
    }
    if (nput) /* the bitmaps are copied by omap_set2 at submit */
        submit_hdr(b, object, &w, &as[nas++], kp, vals, klen, vlen, nput, NULL, NULL, 0,
                   0);
    r = waiter_wait(&w, as, nas);
    if (r < 0) {
        obj_forget(o); /* what landed is unknown: read the extents again next time */
        atomic_fetch_add(&b->errors, 1);
        b->host->log(b->host, EMM_LOG_ERR,
                     "write of object %" PRIx64 " pages %" PRIu64 "+%u to pool %s: %s", object,
                     first, npages, b->pool, strerror(-r));
    } else {
        atomic_fetch_add(&b->writes, 1);
    }
out_free:
    pthread_mutex_unlock(&o->mu);
    free(as), free(keys), free(kp), free(vals), free(klen), free(vlen);
    return r;
}

/* ---- write-behind ------------------------------------------------------------
 *
 * With rados.write-behind > 0 (default 64M), write_pages copies the pages into
 * a run (the pages written into one stripe, in any order, in one buffer
 * spanning [lo, hi) with a bitmap of the pages it holds) and returns; the run
 * is sent as ONE RADOS write op (one extent per stretch of its pages), plus
 * one omap update of the extents when it stored a page for the first time,
 * when a write into another stripe of the object comes, when it holds the
 * whole stripe, rados.write-window (50 ms) after its last page (the flusher
 * thread), or at sync, discard and stop. So the pageout's clustered
 * data_returns (tens to hundreds of KiB each, from several pager threads,
 * not in order) become writes of up to object-size, and many are in flight.
 *
 * Budget: at most wb_limit pages are held in runs (open, in flight or failed);
 * a write_pages beyond it sends its object's open run and waits for runs to
 * finish, at most rados.op-timeout (then -ETIMEDOUT: the pager keeps the pages
 * dirty and double pages them, as for a failed write).
 *
 * A run's buffer is kept until RADOS acknowledged the run: reads overlay the
 * pages of every run not yet acknowledged (newest wins), so a read never sees
 * older data than was written. A run that fails (op-timeout, the cluster away)
 * keeps its pages and is sent again (by the flusher every WB_RETRY_NS, and by
 * sync and discard), without the pages a newer run of the object rewrote: a
 * finished run stays listed, bufferless (a "tombstone"), until every older run
 * of its object finished, so the list always holds every write newer than its
 * oldest unfinished run. sync(object) sends the open run and failed ones and
 * waits until the object has no run in flight; it fails with the error of a
 * run that still failed. So fsync is durable exactly when it succeeds: every
 * page written before it was acknowledged (committed on every replica).
 *
 * Locking: wb_mu guards the run lists, wb_pages, wbq and the reap list, and
 * is the only lock the completion callbacks take. A run's pages and range
 * change only while it is open, by a caller holding its object's mu. The
 * flusher takes an object's mu with trylock only (a writer waiting for budget
 * holds it). Callbacks never free completions: finished runs go to the reap
 * list, freed by the next caller.
 */
static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
run_free(struct wrun *r)
{
    if (r->cd)
        rados_aio_release(r->cd);
    if (r->ch)
        rados_aio_release(r->ch);
    free(r->buf);
    free(r->has);
    free(r);
}

static int
run_has(const struct wrun *r, uint64_t p)
{
    uint64_t i = p - r->stripe * r->b->ppo;
    return p >= r->lo && p < r->hi && ((r->has[i >> 3] >> (i & 7)) & 1);
}

/* Frees the runs that finished. Never from a callback. */
static void
reap(struct rb *b)
{
    pthread_mutex_lock(&b->wb_mu);
    struct wrun *r = b->reap;
    b->reap = NULL;
    pthread_mutex_unlock(&b->wb_mu);
    while (r) {
        struct wrun *next = r->next;
        run_free(r);
        r = next;
    }
}

/* Puts o on the flusher's queue. wb_mu held. */
static void
wbq_add(struct rb *b, struct robj *o)
{
    if (o->in_wbq)
        return;
    o->in_wbq = 1;
    o->wbq_next = b->wbq;
    b->wbq = o;
    pthread_cond_signal(&b->fl_cv);
}

/* Unlinks finished runs from the head of o's list. wb_mu held. */
static void
pop_done(struct rb *b, struct robj *o)
{
    while (o->runs && o->runs->state == RUN_DONE) {
        struct wrun *r = o->runs;
        o->runs = r->next;
        if (!o->runs)
            o->runs_tail = NULL;
        r->next = b->reap;
        b->reap = r;
    }
}

static void
run_cb(rados_completion_t c, void *arg)
{
    struct wrun *r = arg;
    struct rb *b = r->b;
    int rv = rados_aio_get_return_value(c);
    uint64_t id = r->o->id, lo = r->lo, n = r->hi - r->lo; /* r may be freed once unlocked */

    pthread_mutex_lock(&b->wb_mu);
    if (rv < 0 && r->err == 0)
        r->err = rv;
    if (--r->pending == 0) {
        if (r->err) {
            r->state = RUN_FAILED;
            r->touched = now_ns();
            atomic_fetch_add(&b->errors, 1);
            atomic_fetch_add(&b->wb_failed, 1);
            wbq_add(b, r->o);
        } else {
            r->state = RUN_DONE;
            free(r->buf);
            r->buf = NULL;
            b->wb_pages -= r->cap;
            r->cap = 0;
            pop_done(b, r->o);
        }
        pthread_cond_broadcast(&b->wb_cv);
    }
    pthread_mutex_unlock(&b->wb_mu);
    if (rv < 0)
        b->host->log(b->host, EMM_LOG_ERR,
                     "write of object %" PRIx64 " pages %" PRIu64 "+%" PRIu64
                     " to pool %s: %s (kept, sent again later)",
                     id, lo, n, b->pool, strerror(-rv));
}

/* Is page p written by a run newer than r? wb_mu held. */
static int
newer_has(const struct wrun *r, uint64_t p)
{
    for (const struct wrun *n = r->next; n; n = n->next)
        if (run_has(n, p))
            return 1;
    return 0;
}

/* Sends r (open, or failed: again, without the pages newer runs wrote).
 * o->mu held, wb_mu not. */
static void
run_send(struct rb *b, struct robj *o, struct wrun *r)
{
    char oid[300], hdr[300];
    uint64_t base = r->stripe * b->ppo;
    int retry = r->state == RUN_FAILED, ndata = 0, r1;

    if (r->cd)
        rados_aio_release(r->cd);
    if (r->ch)
        rados_aio_release(r->ch);
    r->cd = r->ch = NULL;
    rados_write_op_t op = rados_create_write_op();
    pthread_mutex_lock(&b->wb_mu);
    if (o->open == r)
        o->open = NULL;
    for (uint64_t p = r->lo; p < r->hi;) { /* one extent per stretch of its pages */
        if (!run_has(r, p) || (retry && newer_has(r, p))) {
            p++;
            continue;
        }
        uint64_t e = p + 1;
        while (e < r->hi && run_has(r, e) && !(retry && newer_has(r, e)))
            e++;
        rados_write_op_write(op, r->buf + (p - r->lo) * EMM_PAGE_SIZE,
                             (size_t)(e - p) * EMM_PAGE_SIZE, (p - base) * EMM_PAGE_SIZE);
        ndata++;
        p = e;
    }
    r->err = 0;
    r->state = RUN_FLIGHT;
    if (ndata == 0) { /* newer runs rewrote all of it */
        r->state = RUN_DONE;
        free(r->buf);
        r->buf = NULL;
        b->wb_pages -= r->cap;
        r->cap = 0;
        pop_done(b, o);
        pthread_cond_broadcast(&b->wb_cv);
        pthread_mutex_unlock(&b->wb_mu);
        rados_release_write_op(op);
        return;
    }
    /* the extents and the data: both in flight at once. A stripe a discard
     * emptied meanwhile has nothing to record. */
    struct stripe *s = r->newbits || retry ? s_find(o, r->stripe) : NULL;
    int with_hdr = s != NULL;
    r->pending = 1 + with_hdr;
    pthread_mutex_unlock(&b->wb_mu);
    if (retry)
        atomic_fetch_add(&b->wb_retries, 1);
    atomic_fetch_add(&b->wb_runs, 1);
    atomic_fetch_add(&b->wb_run_pages, r->count);
    rados_write_op_t hop = NULL;
    if (with_hdr) {
        char key[17];
        snprintf(key, sizeof(key), "%016" PRIx64, r->stripe);
        const char *kp[] = {key};
        const char *vals[] = {(const char *)s->bits};
        size_t klen[] = {16}, vlen[] = {b->bmlen};
        hop = rados_create_write_op();
        rados_write_op_omap_set2(hop, kp, vals, klen, vlen, 1); /* copied here */
    }
    data_name(b, o->id, r->stripe, oid, sizeof(oid));
    hdr_name(b, o->id, hdr, sizeof(hdr));
    int fails = 0, err = 0;
    if (with_hdr) {
        r1 = rados_aio_create_completion2(r, run_cb, &r->ch);
        if (r1 == 0) {
            r1 = rados_aio_write_op_operate(hop, b->io, r->ch, hdr, NULL, 0);
            atomic_fetch_add(&b->omap_ops, 1);
        }
        if (r1 < 0)
            fails++, err = r1;
        rados_release_write_op(hop);
    }
    r1 = rados_aio_create_completion2(r, run_cb, &r->cd);
    if (r1 == 0)
        r1 = rados_aio_write_op_operate(op, b->io, r->cd, oid, NULL, 0);
    atomic_fetch_add(&b->write_ops, 1);
    rados_release_write_op(op); /* librados copied what the aio needs */
    if (r1 < 0)
        fails++, err = r1;
    if (fails) { /* what was not submitted never calls back */
        pthread_mutex_lock(&b->wb_mu);
        if (err && r->err == 0)
            r->err = err;
        r->pending -= fails;
        if (r->pending == 0) {
            if (r->err) {
                r->state = RUN_FAILED;
                r->touched = now_ns();
                wbq_add(b, o);
            } else {
                r->state = RUN_DONE;
                free(r->buf);
                r->buf = NULL;
                b->wb_pages -= r->cap;
                r->cap = 0;
                pop_done(b, o);
            }
            pthread_cond_broadcast(&b->wb_cv);
        }
        pthread_mutex_unlock(&b->wb_mu);
    }
}

/* Sends o's open run and (retry) its failed runs, once each. o->mu held. */
static void
obj_send(struct rb *b, struct robj *o, int retry)
{
    struct wrun *one[16], **todo = one;
    size_t n = 0, cap = 16;
    pthread_mutex_lock(&b->wb_mu);
    for (struct wrun *r = o->runs; r; r = r->next) {
        if (r->state != RUN_OPEN && !(retry && r->state == RUN_FAILED))
            continue;
        if (n == cap) {
            struct wrun **nt = malloc(cap * 2 * sizeof(*nt));
            if (!nt)
                break; /* the rest goes later (flusher) */
            memcpy(nt, todo, n * sizeof(*nt));
            if (todo != one)
                free(todo);
            todo = nt, cap *= 2;
        }
        todo[n++] = r;
    }
    pthread_mutex_unlock(&b->wb_mu);
    for (size_t i = 0; i < n; i++)
        run_send(b, o, todo[i]); /* runs stay listed while o->mu is held */
    if (todo != one)
        free(todo);
}

/* Waits until o has no run in flight; the error of a failed run, or 0.
 * o->mu held. */
static int
obj_wait(struct rb *b, struct robj *o)
{
    int r = 0;
    pthread_mutex_lock(&b->wb_mu);
    for (;;) {
        int flying = 0;
        r = 0;
        for (struct wrun *w = o->runs; w; w = w->next) {
            if (w->state == RUN_FLIGHT)
                flying = 1;
            else if (w->state == RUN_FAILED && r == 0)
                r = w->err ? w->err : -EIO;
        }
        if (!flying)
            break;
        pthread_cond_wait(&b->wb_cv, &b->wb_mu);
    }
    pthread_mutex_unlock(&b->wb_mu);
    reap(b);
    return r;
}

/* Everything written to o acknowledged, or the error. o->mu held. */
static int
obj_drain(struct rb *b, struct robj *o)
{
    obj_send(b, o, 1);
    return obj_wait(b, o);
}

/* Waits for budget for n more pages; sends o's open run first. o->mu held. */
static int
wb_reserve(struct rb *b, struct robj *o, uint64_t n)
{
    pthread_mutex_lock(&b->wb_mu);
    int over = b->wb_pages > 0 && b->wb_pages + n > b->wb_limit;
    pthread_mutex_unlock(&b->wb_mu);
    if (!over)
        return 0;
    obj_send(b, o, 0);
    uint64_t deadline = b->op_timeout ? now_ns() + (uint64_t)b->op_timeout * 1000000000ull : 0;
    pthread_mutex_lock(&b->wb_mu);
    pthread_cond_signal(&b->fl_cv); /* other objects' open runs: send them now */
    int r = 0;
    while (b->wb_pages > 0 && b->wb_pages + n > b->wb_limit) {
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        at.tv_nsec += 100000000;
        if (at.tv_nsec >= 1000000000)
            at.tv_sec++, at.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&b->wb_cv, &b->wb_mu, &at);
        if (deadline && now_ns() > deadline) {
            r = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&b->wb_mu);
    reap(b);
    return r;
}

/* Adds pages [lo, hi) of stripe si (from src) to o's open run, or opens one.
 * o->mu held. */
static int
wb_add(struct rb *b, struct robj *o, uint64_t si, uint64_t lo, uint64_t hi, const char *src,
       int newbits)
{
    struct wrun *r = o->open;
    if (r && r->stripe != si) {
        run_send(b, o, r);
        r = NULL;
    }
    if (r) { /* the same stripe: pages returned out of order join it too */
        uint64_t nlo = lo < r->lo ? lo : r->lo, nhi = hi > r->hi ? hi : r->hi;
        uint32_t need = (uint32_t)(nhi - nlo);
        if (need > r->cap) {
            uint32_t cap = r->cap;
            while (cap < need)
                cap *= 2;
            if (cap > b->ppo)
                cap = b->ppo;
            char *nb = realloc(r->buf, (size_t)cap * EMM_PAGE_SIZE);
            if (!nb)
                return -ENOMEM;
            r->buf = nb;
            pthread_mutex_lock(&b->wb_mu);
            b->wb_pages += cap - r->cap;
            r->cap = cap;
            pthread_mutex_unlock(&b->wb_mu);
        }
        if (nlo < r->lo)
            memmove(r->buf + (r->lo - nlo) * EMM_PAGE_SIZE, r->buf,
                    (size_t)(r->hi - r->lo) * EMM_PAGE_SIZE);
        pthread_mutex_lock(&b->wb_mu); /* readers overlay r->lo/hi under wb_mu */
        r->lo = nlo;
        r->hi = nhi;
        pthread_mutex_unlock(&b->wb_mu);
    } else {
        r = calloc(1, sizeof(*r));
        uint32_t cap = (uint32_t)(hi - lo);
        if (r) {
            r->buf = malloc((size_t)cap * EMM_PAGE_SIZE);
            r->has = calloc(1, b->bmlen);
        }
        if (!r || !r->buf || !r->has) {
            if (r)
                free(r->buf), free(r->has);
            free(r);
            return -ENOMEM;
        }
        r->b = b;
        r->o = o;
        r->stripe = si;
        r->lo = lo;
        r->hi = hi;
        r->cap = cap;
        r->state = RUN_OPEN;
        pthread_mutex_lock(&b->wb_mu);
        b->wb_pages += cap;
        if (o->runs_tail)
            o->runs_tail->next = r;
        else
            o->runs = r;
        o->runs_tail = r;
        o->open = r;
        wbq_add(b, o);
        pthread_mutex_unlock(&b->wb_mu);
    }
    memcpy(r->buf + (lo - r->lo) * EMM_PAGE_SIZE, src, (size_t)(hi - lo) * EMM_PAGE_SIZE);
    uint64_t base = si * b->ppo;
    pthread_mutex_lock(&b->wb_mu); /* newer_has and readers look at has under wb_mu */
    for (uint64_t p = lo; p < hi; p++) {
        uint64_t i = p - base;
        if (!((r->has[i >> 3] >> (i & 7)) & 1)) {
            r->has[i >> 3] |= (uint8_t)(1u << (i & 7));
            r->count++;
        }
    }
    pthread_mutex_unlock(&b->wb_mu);
    r->newbits |= newbits;
    r->touched = now_ns();
    if (r->count == b->ppo) /* a whole stripe: nothing can join it */
        run_send(b, o, r);
    return 0;
}

/* Overlays the pages of o's unacknowledged runs on a read of [first,
 * first+npages) (newest run wins; a finished run means the pool's data).
 * o->mu held. */
static void
wb_overlay(struct rb *b, struct robj *o, uint64_t first, uint32_t npages, char *buf,
           uint8_t *present)
{
    pthread_mutex_lock(&b->wb_mu);
    if (!o->runs) {
        pthread_mutex_unlock(&b->wb_mu);
        return;
    }
    size_t n = 0;
    for (struct wrun *r = o->runs; r; r = r->next)
        n++;
    struct wrun **v = malloc(n * sizeof(*v));
    uint8_t *done = calloc(npages, 1);
    if (v && done) {
        n = 0;
        for (struct wrun *r = o->runs; r; r = r->next)
            v[n++] = r;
        for (size_t i = n; i-- > 0;) {
            struct wrun *r = v[i];
            uint64_t lo = r->lo > first ? r->lo : first;
            uint64_t hi = r->hi < first + npages ? r->hi : first + npages;
            for (uint64_t p = lo; p < hi; p++) {
                if (done[p - first] || !run_has(r, p))
                    continue;
                done[p - first] = 1;
                if (r->buf) {
                    memcpy(buf + (p - first) * EMM_PAGE_SIZE,
                           r->buf + (p - r->lo) * EMM_PAGE_SIZE, EMM_PAGE_SIZE);
                    present[p - first] = 1;
                }
            }
        }
    }
    pthread_mutex_unlock(&b->wb_mu);
    free(v);
    free(done);
}

static void *
flusher_main(void *arg)
{
    struct rb *b = arg;
    pthread_mutex_lock(&b->wb_mu);
    while (!b->fl_stop) {
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        uint64_t step = b->wb_window < 100000000ull ? b->wb_window : 100000000ull;
        at.tv_nsec += (long)step;
        if (at.tv_nsec >= 1000000000)
            at.tv_sec++, at.tv_nsec -= 1000000000;
        if (b->wbq)
            pthread_cond_timedwait(&b->fl_cv, &b->wb_mu, &at);
        else /* idle: wbq_add wakes it */
            pthread_cond_wait(&b->fl_cv, &b->wb_mu);
        /* objects stay marked in_wbq while the flusher holds them, so
         * wbq_add leaves their link alone; each is put back while it still
         * has an open or failed run */
        struct robj *q = b->wbq;
        b->wbq = NULL;
        pthread_mutex_unlock(&b->wb_mu);
        uint64_t now = now_ns();
        struct robj *keep = NULL;
        while (q) {
            struct robj *o = q;
            q = q->wbq_next;
            if (pthread_mutex_trylock(&o->mu) == 0) {
                struct wrun *todo[64];
                size_t n = 0;
                pthread_mutex_lock(&b->wb_mu);
                for (struct wrun *r = o->runs; r && n < 64; r = r->next)
                    if ((r->state == RUN_OPEN && now - r->touched >= b->wb_window) ||
                        (r->state == RUN_FAILED && now - r->touched >= WB_RETRY_NS))
                        todo[n++] = r;
                pthread_mutex_unlock(&b->wb_mu);
                for (size_t i = 0; i < n; i++)
                    run_send(b, o, todo[i]);
                pthread_mutex_unlock(&o->mu);
            }
            pthread_mutex_lock(&b->wb_mu);
            int again = 0;
            for (struct wrun *r = o->runs; r && !again; r = r->next)
                again = r->state == RUN_OPEN || r->state == RUN_FAILED;
            if (again) {
                o->wbq_next = keep;
                keep = o;
            } else {
                o->in_wbq = 0;
            }
            pthread_mutex_unlock(&b->wb_mu);
        }
        reap(b);
        pthread_mutex_lock(&b->wb_mu);
        while (keep) {
            struct robj *o = keep;
            keep = keep->wbq_next;
            o->wbq_next = b->wbq;
            b->wbq = o;
        }
    }
    pthread_mutex_unlock(&b->wb_mu);
    return NULL;
}

static int
rb_write(void *instance, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    struct rb *b = instance;
    struct robj *o;
    int r;

    if (!b->wb_limit)
        return write_sync(b, object, first, npages, buf);
    if (first + npages < first)
        return -EFBIG;
    reap(b);
    r = obj_lock(b, object, &o);
    if (r < 0)
        return r;
    r = wb_reserve(b, o, npages);
    uint64_t s0 = first / b->ppo, s1 = (first + npages - 1) / b->ppo;
    for (uint64_t si = s0; r == 0 && si <= s1; si++) {
        uint64_t lo = si == s0 ? first : si * b->ppo;
        uint64_t hi = si == s1 ? first + npages : (si + 1) * b->ppo;
        struct stripe *s = s_insert(b, o, si);
        if (!s) {
            r = -ENOMEM;
            break;
        }
        int changed = 0;
        for (uint64_t p = lo; p < hi; p++) {
            uint32_t in = (uint32_t)(p - si * b->ppo);
            if (!bit(s->bits, in)) {
                s->bits[in >> 3] |= (uint8_t)(1u << (in & 7));
                s->count++;
                o->pages++;
                changed = 1;
            }
        }
        r = wb_add(b, o, si, lo, hi, (const char *)buf + (lo - first) * EMM_PAGE_SIZE, changed);
    }
    if (r < 0) {
        atomic_fetch_add(&b->errors, 1);
        b->host->log(b->host, EMM_LOG_ERR,
                     "write of object %" PRIx64 " pages %" PRIu64 "+%u to pool %s: %s", object,
                     first, npages, b->pool, strerror(-r));
    } else {
        atomic_fetch_add(&b->writes, 1);
    }
    pthread_mutex_unlock(&o->mu);
    return r;
}

static int
rb_discard(void *instance, uint64_t object, uint64_t first, uint64_t npages)
{
    struct rb *b = instance;
    struct robj *o;
    int r = obj_lock(b, object, &o);
    if (r < 0)
        return r;
    if (b->wb_limit && (r = obj_drain(b, o)) < 0) { /* older writes first */
        pthread_mutex_unlock(&o->mu);
        b->host->log(b->host, EMM_LOG_ERR,
                     "discard of object %" PRIx64 ": earlier writes not acknowledged: %s",
                     object, strerror(-r));
        return r;
    }
    uint64_t end = npages == UINT64_MAX || first + npages < first ? UINT64_MAX : first + npages;
    size_t i = s_lower(o, first / b->ppo), n = 0;
    for (size_t k = i; k < o->ns && o->s[k].idx * b->ppo < end; k++)
        n++;
    if (n == 0) {
        pthread_mutex_unlock(&o->mu);
        return 0;
    }
    struct aio *as = calloc(n + 1, sizeof(*as));
    char(*keys)[17] = calloc(n, sizeof(*keys));
    const char **kp = calloc(n, sizeof(*kp)), **vals = calloc(n, sizeof(*vals));
    const char **rmk = calloc(n, sizeof(*rmk));
    size_t *klen = calloc(n, sizeof(*klen)), *vlen = calloc(n, sizeof(*vlen));
    size_t *rml = calloc(n, sizeof(*rml));
    uint8_t **keep = calloc(n, sizeof(*keep)); /* bitmaps copied for the omap set */
    struct waiter w;
    size_t nas = 0, nput = 0, nrm = 0;

    if (!as || !keys || !kp || !vals || !rmk || !klen || !vlen || !rml || !keep) {
        r = -ENOMEM;
        goto out;
    }
    waiter_init(&w);
    for (size_t k = 0; k < n; k++) {
        struct stripe *s = &o->s[i];
        uint64_t si = s->idx, base = si * b->ppo;
        uint64_t lo = first > base ? first : base;
        uint64_t hi = end - base < b->ppo ? end : base + b->ppo;
        int changed = 0;
        for (uint64_t p = lo; p < hi; p++) {
            uint32_t in = (uint32_t)(p - base);
            if (bit(s->bits, in)) {
                s->bits[in >> 3] &= (uint8_t)~(1u << (in & 7));
                s->count--;
                o->pages--;
                changed = 1;
            }
        }
        char oid[300];
        data_name(b, object, si, oid, sizeof(oid));
        snprintf(keys[k], 17, "%016" PRIx64, si);
        rados_write_op_t op = NULL;
        if (s->count == 0) {
            rmk[nrm] = keys[k];
            rml[nrm++] = 16;
            op = rados_create_write_op();
            rados_write_op_remove(op);
            s_remove(o, s); /* i now names the next stripe */
        } else {
            if (changed) {
                keep[nput] = malloc(b->bmlen);
                if (keep[nput])
                    memcpy(keep[nput], s->bits, b->bmlen);
                kp[nput] = keys[k];
                klen[nput] = 16;
                vals[nput] = (const char *)keep[nput];
                vlen[nput] = b->bmlen;
                if (!keep[nput]) {
                    pthread_mutex_lock(&w.mu);
                    w.err = -ENOMEM;
                    pthread_mutex_unlock(&w.mu);
                } else {
                    nput++;
                }
                op = rados_create_write_op();
                rados_write_op_zero(op, (lo - base) * EMM_PAGE_SIZE, (hi - lo) * EMM_PAGE_SIZE);
            }
            i++;
        }
        if (!op)
            continue;
        struct aio *a = &as[nas++];
        int ar = aio_new(&w, a, 1);
        if (ar == 0) {
            ar = rados_aio_write_op_operate(op, b->io, a->c, oid, NULL, 0);
            if (ar < 0)
                aio_abandon(a, ar);
        } else {
            a->c = NULL;
        }
        rados_release_write_op(op);
        atomic_fetch_add(&b->write_ops, 1);
    }
    if (nput || nrm)
        submit_hdr(b, object, &w, &as[nas++], kp, vals, klen, vlen, nput, rmk, rml, nrm,
                   o->ns == 0);
    r = waiter_wait(&w, as, nas);
    if (r < 0) {
        obj_forget(o);
        atomic_fetch_add(&b->errors, 1);
        b->host->log(b->host, EMM_LOG_ERR, "discard of object %" PRIx64 " from page %" PRIu64 ": %s",
                     object, first, strerror(-r));
    }
out:
    pthread_mutex_unlock(&o->mu);
    for (size_t k = 0; keep && k < nput; k++)
        free(keep[k]);
    free(as), free(keys), free(kp), free(vals), free(rmk), free(klen), free(vlen), free(rml);
    free(keep);
    return r;
}

/* Every object's runs acknowledged, or the first error. */
static int
sync_all(struct rb *b)
{
    size_t n = 0, cap = 64;
    struct robj **v = malloc(cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < BUCKETS; i++)
        for (struct robj *o = b->buckets[i]; o; o = o->hnext) {
            if (n == cap) {
                struct robj **nv = realloc(v, cap * 2 * sizeof(*v));
                if (!nv)
                    break;
                v = nv, cap *= 2;
            }
            if (n < cap)
                v[n++] = o;
        }
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < n; i++) { /* send everything, then wait */
        pthread_mutex_lock(&v[i]->mu);
        obj_send(b, v[i], 1);
        pthread_mutex_unlock(&v[i]->mu);
    }
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&v[i]->mu);
        int e = obj_wait(b, v[i]);
        pthread_mutex_unlock(&v[i]->mu);
        if (e < 0 && r == 0)
            r = e;
    }
    free(v);
    return r;
}

static int
rb_sync(void *instance, uint64_t object)
{
    struct rb *b = instance;
    if (!b->io)
        return -EBADF;
    if (!b->wb_limit) /* every write was acknowledged before write_pages returned */
        return rados_aio_flush(b->io);
    if (object == UINT64_MAX)
        return sync_all(b);
    struct robj *o;
    int r = obj_lock(b, object, &o);
    if (r < 0)
        return r;
    r = obj_drain(b, o);
    pthread_mutex_unlock(&o->mu);
    if (r < 0)
        b->host->log(b->host, EMM_LOG_ERR, "sync of object %" PRIx64 " to pool %s: %s", object,
                     b->pool, strerror(-r));
    return r;
}

static int
rb_seek(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found)
{
    struct rb *b = instance;
    struct robj *o;
    int r = obj_lock(b, object, &o);
    if (r < 0)
        return r;
    r = want_data ? -ENXIO : 0;
    if (want_data) {
        for (size_t i = s_lower(o, from / b->ppo); i < o->ns; i++) {
            struct stripe *s = &o->s[i];
            uint64_t base = s->idx * b->ppo;
            for (uint32_t in = from > base ? (uint32_t)(from - base) : 0; in < b->ppo; in++) {
                if (bit(s->bits, in)) {
                    *found = base + in;
                    r = 0;
                    goto out;
                }
            }
        }
    } else {
        uint64_t p = from;
        for (;;) {
            struct stripe *s = s_find(o, p / b->ppo);
            if (!s)
                break;
            uint64_t base = s->idx * b->ppo;
            uint32_t in = (uint32_t)(p - base);
            while (in < b->ppo && bit(s->bits, in))
                in++;
            p = base + in;
            if (in < b->ppo || p == 0)
                break;
        }
        *found = p;
    }
out:
    pthread_mutex_unlock(&o->mu);
    return r;
}

static int
rb_stored_pages(void *instance, uint64_t object, uint64_t *count)
{
    struct rb *b = instance;
    struct robj *o;
    int r = obj_lock(b, object, &o);
    if (r < 0)
        return r;
    *count = o->pages;
    pthread_mutex_unlock(&o->mu);
    return 0;
}

static int
rb_info(void *instance, char *buf, size_t len)
{
    struct rb *b = instance;
    pthread_mutex_lock(&b->wb_mu);
    uint64_t wbp = b->wb_pages;
    pthread_mutex_unlock(&b->wb_mu);
    int w = snprintf(buf, len,
                     "cluster:%s\npool:%s\nnamespace:%s\nobject_size:%" PRIu64 "\n"
                     "reads:%" PRIu64 "\nwrites:%" PRIu64 "\nread_ops:%" PRIu64
                     "\nwrite_ops:%" PRIu64 "\nomap_ops:%" PRIu64 "\nerrors:%" PRIu64 "\n"
                     "write_behind:%" PRIu64 "\nwb_pages:%" PRIu64 "\nwb_runs:%" PRIu64
                     "\nwb_run_pages:%" PRIu64 "\nwb_retries:%" PRIu64 "\nwb_failed:%" PRIu64 "\n",
                     b->label, b->pool ? b->pool : "", b->nspace ? b->nspace : "",
                     b->object_size, atomic_load(&b->reads), atomic_load(&b->writes),
                     atomic_load(&b->read_ops), atomic_load(&b->write_ops),
                     atomic_load(&b->omap_ops), atomic_load(&b->errors),
                     b->wb_limit * EMM_PAGE_SIZE, wbp, atomic_load(&b->wb_runs),
                     atomic_load(&b->wb_run_pages), atomic_load(&b->wb_retries),
                     atomic_load(&b->wb_failed));
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

/* ---- the namespace store: the omap of emm_dir.FS -------------------------- */

/* Keys the plug-in keeps for itself in the same omap; the catalog's keys never
 * begin with "rados.". */
#define META_OWN "rados."

/* One namespace update, waited for at most meta_timeout seconds. An update
 * given up on stays in flight: its callback says what became of it. */
struct meta_wait {
    struct rb *b;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, r, abandoned;
    rados_completion_t c;
};

static void
meta_cb(rados_completion_t c, void *arg)
{
    struct meta_wait *m = arg;
    int rv = rados_aio_get_return_value(c);
    pthread_mutex_lock(&m->mu);
    m->done = 1;
    m->r = rv;
    int late = m->abandoned;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (!late)
        return;
    struct rb *b = m->b;
    if (rv == 0)
        b->host->log(b->host, EMM_LOG_WARN,
                     "a namespace update of %s that failed with ETIMEDOUT reached the pool "
                     "after all: the change shows after the next start", b->dirobj);
    else
        b->host->log(b->host, EMM_LOG_NOTICE,
                     "a namespace update of %s that failed with ETIMEDOUT did not reach the "
                     "pool: %s", b->dirobj, strerror(-rv));
    /* the completion is released at stop (not from its own callback) */
    pthread_mutex_lock(&b->wb_mu);
    struct meta_late *l = malloc(sizeof(*l));
    if (l) {
        l->c = m->c;
        l->next = b->meta_late;
        b->meta_late = l;
    }
    pthread_mutex_unlock(&b->wb_mu);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int
meta_operate(struct rb *b, rados_write_op_t op)
{
    struct meta_wait *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->b = b;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    int r = rados_aio_create_completion2(m, meta_cb, &m->c);
    if (r == 0)
        r = rados_aio_write_op_operate(op, b->io, m->c, b->dirobj, NULL, 0);
    if (r < 0) {
        if (m->c)
            rados_aio_release(m->c);
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return r;
    }
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_sec += b->meta_timeout;
    pthread_mutex_lock(&m->mu);
    while (!m->done)
        if (pthread_cond_timedwait(&m->cv, &m->mu, &at) == ETIMEDOUT)
            break;
    if (!m->done) {
        m->abandoned = 1; /* the callback frees m */
        pthread_mutex_unlock(&m->mu);
        return -ETIMEDOUT;
    }
    r = m->r;
    pthread_mutex_unlock(&m->mu);
    rados_aio_release(m->c);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
    return r;
}

static int
rb_meta_update(void *instance, const struct emm_meta_kv *puts, size_t nput,
               const char *const *dels, size_t ndel)
{
    struct rb *b = instance;
    const char **keys = calloc(nput + 1, sizeof(*keys)), **vals = calloc(nput + 1, sizeof(*vals));
    size_t *kl = calloc(nput + 1, sizeof(*kl)), *vl = calloc(nput + 1, sizeof(*vl));
    size_t *dl = calloc(ndel + 1, sizeof(*dl));
    int r = -ENOMEM;

    if (!b->io) {
        r = -EBADF;
        goto out;
    }
    if (!keys || !vals || !kl || !vl || !dl)
        goto out;
    for (size_t i = 0; i < nput; i++) {
        keys[i] = puts[i].key;
        kl[i] = strlen(puts[i].key);
        vals[i] = puts[i].value;
        vl[i] = puts[i].len;
    }
    for (size_t i = 0; i < ndel; i++)
        dl[i] = strlen(dels[i]);
    rados_write_op_t op = rados_create_write_op();
    if (nput)
        rados_write_op_omap_set2(op, keys, vals, kl, vl, nput);
    if (ndel)
        rados_write_op_omap_rm_keys2(op, (const char *const *)dels, dl, ndel);
    r = meta_operate(b, op); /* one op: all or nothing */
    rados_release_write_op(op);
    atomic_fetch_add(&b->omap_ops, 1);
    if (r == -ETIMEDOUT)
        b->host->log(b->host, EMM_LOG_ERR,
                     "namespace update in %s (pool %s of %s) not acknowledged within %u s "
                     "(rados.meta-timeout): failed with ETIMEDOUT. It may still reach the "
                     "pool when the cluster answers (logged then): the change shows after the "
                     "next start",
                     b->dirobj, b->pool, b->label, b->meta_timeout);
    else if (r < 0)
        b->host->log(b->host, EMM_LOG_ERR, "namespace update in %s (pool %s of %s): %s",
                     b->dirobj, b->pool, b->label, strerror(-r));
out:
    free(keys), free(vals), free(kl), free(vl), free(dl);
    return r;
}

struct meta_ent {
    char *key;
    void *val;
    size_t len;
};

static int
rb_meta_scan(void *instance, const char *after, emm_meta_scan_fn fn, void *arg)
{
    struct rb *b = instance;
    char *from = strdup(after ? after : "");
    unsigned char more = 1;
    int r = 0;

    if (!from)
        return -ENOMEM;
    if (!b->io) {
        free(from);
        return -EBADF;
    }
    while (more && r == 0) {
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it = NULL;
        int prval = 0;
        struct meta_ent *ents = calloc(OMAP_BATCH, sizeof(*ents));
        size_t n = 0;
        more = 0;
        if (!ents) {
            rados_release_read_op(op);
            r = -ENOMEM;
            break;
        }
        rados_read_op_omap_get_vals2(op, from, "", OMAP_BATCH, &it, &more, &prval);
        r = rados_read_op_operate(op, b->io, b->dirobj, 0);
        rados_release_read_op(op);
        atomic_fetch_add(&b->omap_ops, 1);
        if (r == -ENOENT) {
            r = 0;
            more = 0;
        } else if (r == 0 && prval < 0) {
            r = prval;
        }
        if (r == 0 && it) {
            /* Copied out first: fn runs with no librados state held. */
            char *k, *v;
            size_t klen, vlen;
            while (n < OMAP_BATCH && rados_omap_get_next2(it, &k, &v, &klen, &vlen) == 0 && k) {
                ents[n].key = strndup(k, klen);
                ents[n].val = malloc(vlen ? vlen : 1);
                if (!ents[n].key || !ents[n].val) {
                    free(ents[n].key), free(ents[n].val);
                    r = -ENOMEM;
                    break;
                }
                memcpy(ents[n].val, v, vlen);
                ents[n].len = vlen;
                n++;
            }
        }
        if (it)
            rados_omap_get_end(it);
        for (size_t i = 0; i < n; i++) {
            if (r == 0 && strncmp(ents[i].key, META_OWN, strlen(META_OWN)) != 0)
                r = fn(arg, ents[i].key, ents[i].val, ents[i].len);
            if (i == n - 1) {
                free(from);
                from = ents[i].key;
                ents[i].key = NULL;
            }
            free(ents[i].key), free(ents[i].val);
        }
        free(ents);
        if (n == 0)
            more = 0;
    }
    if (r < 0)
        b->host->log(b->host, EMM_LOG_ERR, "namespace scan of %s (pool %s of %s): %s",
                     b->dirobj, b->pool, b->label, strerror(-r));
    free(from);
    return r;
}

static struct emm_backend_ops rb_ops = {
    .name = "rados",
    .flags = EMM_BACKEND_PERSISTENT,
    .create = rb_create,
    .config = rb_config,
    .config_complete = rb_config_complete,
    .start = rb_start,
    .stop = rb_stop,
    .destroy = rb_destroy,
    .read_pages = rb_read,
    .write_pages = rb_write,
    .discard = rb_discard,
    .sync = rb_sync,
    .seek = rb_seek,
    .stored_pages = rb_stored_pages,
    .info = rb_info,
    .meta_update = rb_meta_update,
    .meta_scan = rb_meta_scan,
};

EMM_BACKEND_REGISTER(rb_ops, EMM_THREAD_PARALLEL)
