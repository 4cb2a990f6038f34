/*
 * backend_lmdb.c - the "lmdb" backend: every page of a filesystem in one LMDB
 * environment (lmdb.path, default STATE_DIR/fs/NAME/lmdb). The named database
 * "pages" maps (object id, page index), 16 big-endian bytes so that an object's
 * pages are adjacent and in order, to the 4096-byte page; holes are absent
 * keys. "counts" maps the object id (8 big-endian bytes) to its number of
 * stored pages (8 big-endian bytes), kept in the same write transaction, so
 * stored_pages is one lookup. "meta" holds "format" (1) and "tick" (see
 * wtxn_run). The object catalog shares the environment (emm_backend_lmdb_env,
 * emm_catalog_open_env).
 *
 * Durability: the environment is opened MDB_NOSYNC, so a commit is in the OS
 * page cache when it returns (it survives a crash of emmd, not of the OS);
 * sync is mdb_env_sync(force), after which every commit is on disk.
 * Growth: on MDB_MAP_FULL the map doubles, up to lmdb.max-map-size; past it
 * that one call fails with ENOSPC. A grown map size is kept across restarts. The environment is opened in start (after
 * daemonizing) and closed in stop; a path is open at most once per process
 * (a registry by device and inode) and once across processes (flock on
 * PATH/emm.lock).
 *
 * Locking: LMDB lets readers run beside its single writer. `writer` serializes
 * this backend's write transactions; sh.resize (a rwlock, the environment's
 * userctx, shared with the catalog) is held shared around every transaction
 * and exclusively to change the map size, which LMDB allows only with no
 * transaction active in the process. Read transactions are short: a small
 * pool of reset ones (under pool_lock) is renewed per call and never held
 * across calls. Thread model PARALLEL; not NONBLOCKING (calls may sleep on I/O).
 *
 * Resident set: every page LMDB touches in its read-only map counts in emmd's
 * resident set (file pages, reclaimable, but resident-limit is a promise about
 * the process). The map is registered with lmdb_maps.c, and every call notes
 * its transactions there; that bounds the map's resident pages (lmdb_shared.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_host.h"
#include "lmdb_shared.h"
#include "fsutil.h"

#define KEY_LEN 16
#define MAX_DBS 8            /* pages, counts, meta, catalog, catalog.meta, spare */
#define FORMAT 1
#define MAX_READERS 256
#define RTXN_POOL 32         /* reset read transactions kept for reuse */
#define WRITE_CHUNK 256      /* pages per write transaction (a longer call is split): LMDB
                                holds each dirty overflow page in a heap copy until commit */
#define DELETE_CHUNK 1024    /* keys deleted per discard transaction */
#define SCAN_CHUNK 1024      /* keys a hole seek walks per read transaction */
#define MAP_MIN ((uint64_t)64 << 10)
#define MAP_DEFAULT ((uint64_t)1 << 30)
#define MAP_MAX_DEFAULT ((uint64_t)64 << 30)

struct lm {
    const struct emm_backend_host *host;
    char *path;
    uint64_t map_size, max_map_size;
    int map_size_set, max_set;

    /* Set by start, cleared by stop. */
    MDB_env *env;
    MDB_dbi pages, counts, meta;
    uint64_t tick;
    int lockfd;
    struct reg *reg; /* this path's entry in the registry */

    struct emm_lmdb_shared sh; /* the environment's userctx */
    pthread_mutex_t writer;
    pthread_mutex_t pool_lock;
    MDB_txn *pool[RTXN_POOL];
    int npool;

    int leaked;               /* stop found a catalog still open: never freed */
    _Atomic int broken;       /* a failed remap left no usable map: every call fails */
    _Atomic int full_logged;  /* "map at max-map-size" said once */
    _Atomic uint64_t grows, enospc;
};

/* Environments open in this process, by directory (LMDB: one per path). */
struct reg {
    dev_t dev;
    ino_t ino;
    char fs_name[64];
    struct reg *next;
};
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reg *reg_head;

/* ---- encoding --------------------------------------------------------------- */

static void
put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint64_t
get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void
page_key(unsigned char k[KEY_LEN], uint64_t obj, uint64_t page)
{
    put_be64(k, obj);
    put_be64(k + 8, page);
}

/* Decodes a "pages" key; EIO-style MDB_CORRUPTED if it is not one. */
static int
key_split(const MDB_val *k, uint64_t *obj, uint64_t *page)
{
    if (k->mv_size != KEY_LEN)
        return MDB_CORRUPTED;
    *obj = get_be64(k->mv_data);
    *page = get_be64((const unsigned char *)k->mv_data + 8);
    return 0;
}

/* An LMDB return code as 0 or -errno. */
static int
lm_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return -ENOENT;
    case MDB_MAP_FULL: return -ENOSPC;
    case MDB_TXN_FULL: return -ENOSPC;
    case MDB_READERS_FULL: return -EAGAIN;
    default: return rc > 0 ? -rc : -EIO;
    }
}

/* ---- lifecycle --------------------------------------------------------------- */

static int
lm_create(const struct emm_backend_host *host, void **instance)
{
    struct lm *l = calloc(1, sizeof(*l));
    pthread_rwlockattr_t ra;

    if (!l)
        return -ENOMEM;
    l->host = host;
    l->lockfd = -1;
    l->map_size = MAP_DEFAULT;
    l->max_map_size = MAP_MAX_DEFAULT;
    /* Prefer the grower, so a steady stream of readers cannot starve it. */
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&l->sh.resize, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&l->writer, NULL);
    pthread_mutex_init(&l->pool_lock, NULL);
    *instance = l;
    return 0;
}

static int
lm_config(void *instance, const char *key, const char *value, char *err, size_t errlen)
{
    struct lm *l = instance;
    uint64_t v;

    if (strcmp(key, "path") == 0) {
        if (value[0] != '/') {
            snprintf(err, errlen, "'%s' is not an absolute path", value);
            return -EINVAL;
        }
        free(l->path);
        l->path = strdup(value);
        return l->path ? 0 : -ENOMEM;
    }
    if (strcmp(key, "map-size") == 0 || strcmp(key, "max-map-size") == 0) {
        if (l->host->parse_size(value, &v) < 0) {
            snprintf(err, errlen, "'%s' is not a size (e.g. 512M, 2G)", value);
            return -EINVAL;
        }
        if (v < MAP_MIN || v > (uint64_t)SIZE_MAX / 2) {
            snprintf(err, errlen, "%s is out of range (64K .. 4P)", value);
            return -EINVAL;
        }
        v = (v + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE * EMM_PAGE_SIZE;
        if (strcmp(key, "map-size") == 0) {
            l->map_size = v;
            l->map_size_set = 1;
        } else {
            l->max_map_size = v;
            l->max_set = 1;
        }
        return 0;
    }
    snprintf(err, errlen, "unknown key (lmdb takes: path, map-size, max-map-size)");
    return -EINVAL;
}

static int
lm_config_complete(void *instance, char *err, size_t errlen)
{
    struct lm *l = instance;

    if (!l->path && asprintf(&l->path, "%s/lmdb", l->host->state_dir) < 0) {
        l->path = NULL;
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (l->map_size > l->max_map_size) {
        if (l->max_set) {
            snprintf(err, errlen,
                     "map-size (%" PRIu64 " bytes) is larger than max-map-size (%" PRIu64 ")",
                     l->map_size, l->max_map_size);
            return -EINVAL;
        }
        l->max_map_size = l->map_size;
    }
    return 0;
}

/* Enters l in the registry of open paths; -EBUSY if its directory is there. */
static int
reg_add(struct lm *l)
{
    struct stat st;
    struct reg *e;
    int r = 0;

    if (stat(l->path, &st) < 0)
        return -errno;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    snprintf(e->fs_name, sizeof(e->fs_name), "%s", l->host->fs_name ? l->host->fs_name : "?");
    pthread_mutex_lock(&reg_lock);
    for (struct reg *o = reg_head; o; o = o->next) {
        if (o->dev == e->dev && o->ino == e->ino) {
            l->host->log(l->host, EMM_LOG_ERR,
                         "LMDB environment %s is already open in this process (filesystem %s); "
                         "LMDB allows one environment per path per process",
                         l->path, o->fs_name);
            r = -EBUSY;
            break;
        }
    }
    if (r == 0) {
        e->next = reg_head;
        reg_head = e;
        l->reg = e;
    }
    pthread_mutex_unlock(&reg_lock);
    if (r < 0)
        free(e);
    return r;
}

static void
reg_del(struct lm *l)
{
    if (!l->reg)
        return;
    pthread_mutex_lock(&reg_lock);
    for (struct reg **p = &reg_head; *p; p = &(*p)->next) {
        if (*p == l->reg) {
            *p = l->reg->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    free(l->reg);
    l->reg = NULL;
}

/* Takes PATH/emm.lock, so that another process cannot serve the same pages. */
static int
lock_path(struct lm *l)
{
    char *name;
    int fd;

    if (asprintf(&name, "%s/emm.lock", l->path) < 0)
        return -ENOMEM;
    fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        l->host->log(l->host, EMM_LOG_ERR, "cannot open %s: %s", name, strerror(e));
        free(name);
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e == EWOULDBLOCK)
            l->host->log(l->host, EMM_LOG_ERR,
                         "LMDB environment %s is in use by another process (%s is locked)",
                         l->path, name);
        else
            l->host->log(l->host, EMM_LOG_ERR, "cannot lock %s: %s", name, strerror(e));
        close(fd);
        free(name);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    free(name);
    l->lockfd = fd;
    return 0;
}

/* sh.grow: doubles the map up to max-map-size. Called with sh.resize held
 * exclusively, so no transaction of this process is active. */
static int
lm_grow(struct emm_lmdb_shared *sh, size_t seen)
{
    struct lm *l = (struct lm *)((char *)sh - offsetof(struct lm, sh));
    MDB_envinfo info;
    size_t want;
    int rc;

    if (sh->mapsize != seen)
        return 0; /* another thread already grew it */
    if (atomic_load(&l->broken))
        return -EIO;
    if (sh->mapsize >= l->max_map_size) {
        if (!atomic_exchange(&l->full_logged, 1))
            l->host->log(l->host, EMM_LOG_ERR,
                         "%s: the map is full at max-map-size (%" PRIu64
                         " bytes): writes fail with ENOSPC (raise lmdb.max-map-size)",
                         l->path, l->max_map_size);
        return -ENOSPC;
    }
    want = sh->mapsize * 2 < l->max_map_size ? sh->mapsize * 2 : (size_t)l->max_map_size;
    rc = mdb_env_set_mapsize(l->env, want);
    if (rc) {
        l->host->log(l->host, EMM_LOG_ERR, "%s: cannot grow the map to %zu bytes: %s", l->path,
                     want, mdb_strerror(rc));
        /* LMDB unmapped the old map first: map the old size again. */
        int again = mdb_env_set_mapsize(l->env, sh->mapsize);
        emm_lmdb_maps_moved(sh);
        if (again != 0) {
            atomic_store(&l->broken, 1);
            l->host->log(l->host, EMM_LOG_ERR, "%s: cannot map the environment again: "
                         "every call fails until a restart", l->path);
            return -EIO;
        }
        return lm_errno(rc) == -ENOMEM ? -ENOSPC : lm_errno(rc);
    }
    sh->mapsize = mdb_env_info(l->env, &info) == 0 ? info.me_mapsize : want;
    emm_lmdb_maps_moved(sh);
    atomic_fetch_add(&l->grows, 1);
    l->host->log(l->host, EMM_LOG_INFO, "%s: map grown to %zu KiB", l->path, sh->mapsize >> 10);
    return 0;
}

static int
open_dbs(struct lm *l)
{
    MDB_val k = {sizeof("format") - 1, (void *)"format"}, v;
    unsigned char fb[8];
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);

    if (rc)
        return rc;
    rc = mdb_dbi_open(txn, "pages", MDB_CREATE, &l->pages);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "counts", MDB_CREATE, &l->counts);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &l->meta);
    if (rc == 0)
        rc = mdb_get(txn, l->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        put_be64(fb, FORMAT);
        v.mv_size = 8;
        v.mv_data = fb;
        rc = mdb_put(txn, l->meta, &k, &v, 0);
    } else if (rc == 0 && (v.mv_size != 8 || get_be64(v.mv_data) != FORMAT)) {
        l->host->log(l->host, EMM_LOG_ERR, "%s: unknown page format (this emm writes %d)",
                     l->path, FORMAT);
        rc = MDB_VERSION_MISMATCH;
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

static void lm_stop(void *instance);

static int
lm_start(void *instance)
{
    struct lm *l = instance;
    MDB_envinfo info;
    int r, rc, dead = 0;

    r = emm_mkdir_p(l->path, 0700);
    if (r < 0) {
        l->host->log(l->host, EMM_LOG_ERR, "cannot create %s: %s", l->path, strerror(-r));
        return r;
    }
    r = reg_add(l);
    if (r < 0)
        return r;
    r = lock_path(l);
    if (r < 0) {
        reg_del(l);
        return r;
    }
    rc = mdb_env_create(&l->env);
    if (rc) {
        l->env = NULL;
        goto fail;
    }
    rc = mdb_env_set_maxdbs(l->env, MAX_DBS);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(l->env, MAX_READERS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(l->env, (size_t)l->map_size);
    if (rc == 0)
        rc = mdb_env_open(l->env, l->path, MDB_NOTLS | MDB_NOSYNC, 0600);
    if (rc)
        goto fail;
    mdb_reader_check(l->env, &dead); /* slots left by a killed process */
    if (dead)
        l->host->log(l->host, EMM_LOG_NOTICE, "%s: cleared %d stale reader slots", l->path, dead);
    /* Keep a map grown in an earlier run: size 0 means the one the file
     * records (LMDB keeps the largest used), never below map-size. */
    if (mdb_env_set_mapsize(l->env, 0) != 0 || mdb_env_info(l->env, &info) != 0) {
        rc = mdb_env_set_mapsize(l->env, (size_t)l->map_size);
        if (rc)
            goto fail;
        info.me_mapsize = (size_t)l->map_size;
    } else if (info.me_mapsize < l->map_size) {
        rc = mdb_env_set_mapsize(l->env, (size_t)l->map_size);
        if (rc)
            goto fail;
        info.me_mapsize = (size_t)l->map_size;
    }
    l->sh.mapsize = info.me_mapsize;
    emm_lmdb_maps_add(&l->sh, l->env);
    l->sh.grow = lm_grow;
    l->sh.users = 0;
    mdb_env_set_userctx(l->env, &l->sh);
    atomic_store(&l->broken, 0);
    atomic_store(&l->full_logged, 0);
    rc = open_dbs(l);
    if (rc)
        goto fail;
    return 0;
fail:
    l->host->log(l->host, EMM_LOG_ERR, "cannot open LMDB environment %s: %s", l->path,
                 mdb_strerror(rc));
    lm_stop(l);
    return lm_errno(rc);
}

static void
lm_stop(void *instance)
{
    struct lm *l = instance;

    if (l->leaked)
        return;
    if (l->env) {
        pthread_mutex_lock(&l->pool_lock);
        for (int i = 0; i < l->npool; i++)
            mdb_txn_abort(l->pool[i]);
        l->npool = 0;
        pthread_mutex_unlock(&l->pool_lock);
        if (l->sh.users > 0) {
            /* A catalog still uses it: closing would pull the map from under it.
             * Leak the whole instance (environment, shared context, lock and
             * registry entry: the path stays taken); destroy then frees nothing. */
            l->host->log(l->host, EMM_LOG_ERR,
                         "%s: %d catalog(s) still open at stop: leaving the environment open",
                         l->path, l->sh.users);
            l->leaked = 1;
            return;
        }
        emm_lmdb_maps_del(&l->sh);
        mdb_env_close(l->env);
        l->env = NULL;
    }
    if (l->lockfd >= 0) {
        close(l->lockfd);
        l->lockfd = -1;
    }
    reg_del(l);
}

static void
lm_destroy(void *instance)
{
    struct lm *l = instance;

    lm_stop(l);
    if (l->leaked)
        return;
    pthread_rwlock_destroy(&l->sh.resize);
    pthread_mutex_destroy(&l->writer);
    pthread_mutex_destroy(&l->pool_lock);
    free(l->path);
    free(l);
}

/* ---- transactions -------------------------------------------------------------- */

/* A read transaction, with sh.resize held shared until rtxn_put. */
static int
rtxn_get(struct lm *l, MDB_txn **out)
{
    MDB_txn *txn = NULL;
    int rc = 0;

    if (!l->env)
        return -EBADF;
    pthread_rwlock_rdlock(&l->sh.resize);
    if (atomic_load(&l->broken)) {
        pthread_rwlock_unlock(&l->sh.resize);
        return -EIO;
    }
    pthread_mutex_lock(&l->pool_lock);
    if (l->npool > 0)
        txn = l->pool[--l->npool];
    pthread_mutex_unlock(&l->pool_lock);
    if (txn && mdb_txn_renew(txn) != 0) {
        mdb_txn_abort(txn);
        txn = NULL;
    }
    if (!txn)
        rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        pthread_rwlock_unlock(&l->sh.resize);
        l->host->log(l->host, EMM_LOG_ERR, "%s: cannot begin a read transaction: %s", l->path,
                     mdb_strerror(rc));
        return lm_errno(rc);
    }
    *out = txn;
    return 0;
}

static void
rtxn_put(struct lm *l, MDB_txn *txn)
{
    mdb_txn_reset(txn);
    pthread_mutex_lock(&l->pool_lock);
    if (l->npool < RTXN_POOL) {
        l->pool[l->npool++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&l->pool_lock);
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&l->sh.resize);
}

/* Work done inside one write transaction: 0 or an LMDB code (positive errno,
 * MDB_*), never partial on failure since the transaction is then aborted. */
typedef int (*wtxn_fn)(struct lm *l, MDB_txn *txn, void *arg);

/* A tiny transaction that only advances the transaction id (see wtxn_run). */
static int
do_tick(struct lm *l, MDB_txn *txn, void *arg)
{
    MDB_val k = {sizeof("tick") - 1, (void *)"tick"}, v;
    unsigned char b[8];

    (void)arg;
    put_be64(b, ++l->tick);
    v.mv_size = 8;
    v.mv_data = b;
    return mdb_put(txn, l->meta, &k, &v, 0);
}

/*
 * Runs fn in a write transaction; on MDB_MAP_FULL grows the map and retries.
 * At max-map-size, it commits one tiny transaction and retries once: LMDB
 * reuses the pages a transaction frees only from the second transaction after
 * it, so without this a write right after a discard would still find no room.
 */
static int
wtxn_run(struct lm *l, wtxn_fn fn, void *arg, const char *what)
{
    int r, ticked = 0;

    if (!l->env)
        return -EBADF;
    pthread_mutex_lock(&l->writer);
    for (;;) {
        MDB_txn *txn;
        int rc;

        pthread_rwlock_rdlock(&l->sh.resize);
        if (atomic_load(&l->broken)) {
            pthread_rwlock_unlock(&l->sh.resize);
            r = -EIO;
            break;
        }
        size_t seen = l->sh.mapsize;
        rc = mdb_txn_begin(l->env, NULL, 0, &txn);
        if (rc == 0) {
            rc = fn(l, txn, arg);
            if (rc == 0)
                rc = mdb_txn_commit(txn); /* frees txn, even on failure */
            else
                mdb_txn_abort(txn);
        }
        pthread_rwlock_unlock(&l->sh.resize);
        if (rc == MDB_MAP_FULL) {
            pthread_rwlock_wrlock(&l->sh.resize);
            r = l->sh.grow(&l->sh, seen);
            pthread_rwlock_unlock(&l->sh.resize);
            if (r == 0)
                continue;
            if (r == -ENOSPC && !ticked && fn != do_tick) {
                ticked = 1;
                pthread_rwlock_rdlock(&l->sh.resize);
                rc = mdb_txn_begin(l->env, NULL, 0, &txn);
                if (rc == 0) {
                    rc = do_tick(l, txn, NULL);
                    if (rc == 0)
                        rc = mdb_txn_commit(txn);
                    else
                        mdb_txn_abort(txn);
                }
                pthread_rwlock_unlock(&l->sh.resize);
                if (rc == 0)
                    continue;
            }
            if (r == -ENOSPC)
                atomic_fetch_add(&l->enospc, 1);
            break;
        }
        r = lm_errno(rc);
        if (r < 0)
            l->host->log(l->host, EMM_LOG_ERR, "%s: %s: %s", l->path, what, mdb_strerror(rc));
        break;
    }
    pthread_mutex_unlock(&l->writer);
    return r;
}

/* Adds delta to object's page count (deleting the record at zero). */
static int
count_add(struct lm *l, MDB_txn *txn, uint64_t obj, int64_t delta)
{
    unsigned char kb[8], vb[8];
    MDB_val k = {8, kb}, v;
    uint64_t n = 0;
    int rc;

    if (delta == 0)
        return 0;
    put_be64(kb, obj);
    rc = mdb_get(txn, l->counts, &k, &v);
    if (rc == 0) {
        if (v.mv_size != 8)
            return MDB_CORRUPTED;
        n = get_be64(v.mv_data);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    if (delta < 0 && (uint64_t)-delta > n) {
        l->host->log(l->host, EMM_LOG_WARN, "object %" PRIx64 ": page count %" PRIu64
                     " below the %" PRId64 " pages discarded; set to 0", obj, n, -delta);
        n = 0;
    } else {
        n += (uint64_t)delta;
    }
    if (n == 0)
        return rc == 0 ? mdb_del(txn, l->counts, &k, NULL) : 0;
    put_be64(vb, n);
    v.mv_size = 8;
    v.mv_data = vb;
    return mdb_put(txn, l->counts, &k, &v, 0);
}

/* ---- data path ------------------------------------------------------------------- */

static int
lm_read(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
        uint8_t *present)
{
    struct lm *l = instance;
    unsigned char kb[KEY_LEN];
    MDB_val k = {KEY_LEN, kb}, v;
    MDB_cursor *cur;
    MDB_txn *txn;
    uint32_t got = 0;
    int r, rc;

    memset(present, 0, npages);
    r = rtxn_get(l, &txn);
    if (r < 0)
        return r;
    rc = mdb_cursor_open(txn, l->pages, &cur);
    if (rc == 0) {
        page_key(kb, object, first);
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint64_t o, p;
            if ((rc = key_split(&k, &o, &p)) != 0)
                break;
            if (o != object || p - first >= npages)
                break;
            if (v.mv_size != EMM_PAGE_SIZE) {
                rc = MDB_CORRUPTED;
                break;
            }
            memcpy((char *)buf + (p - first) * EMM_PAGE_SIZE, v.mv_data, EMM_PAGE_SIZE);
            present[p - first] = 1;
            if (++got % EMM_LMDB_NOTE_EVERY == 0)
                emm_lmdb_maps_note(EMM_LMDB_NOTE_EVERY);
        }
        mdb_cursor_close(cur);
    }
    rtxn_put(l, txn);
    emm_lmdb_maps_note(got % EMM_LMDB_NOTE_EVERY);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        l->host->log(l->host, EMM_LOG_ERR, "%s: read of object %" PRIx64 " page %" PRIu64 ": %s",
                     l->path, object, first, mdb_strerror(rc));
        return lm_errno(rc);
    }
    for (uint32_t i = 0; i < npages; i++)
        if (!present[i])
            memset((char *)buf + (size_t)i * EMM_PAGE_SIZE, 0, EMM_PAGE_SIZE);
    return 0;
}

struct write_args {
    uint64_t object, first;
    uint32_t npages;
    const void *buf;
};

static int
do_write(struct lm *l, MDB_txn *txn, void *arg)
{
    const struct write_args *a = arg;
    unsigned char kb[KEY_LEN];
    MDB_cursor *cur;
    int64_t added = 0;
    int rc;

    rc = mdb_cursor_open(txn, l->pages, &cur);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < a->npages && rc == 0; i++) {
        MDB_val k = {KEY_LEN, kb}, v;
        page_key(kb, a->object, a->first + i);
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
        if (rc != 0 && rc != MDB_NOTFOUND)
            break;
        int exists = rc == 0;
        k.mv_size = KEY_LEN;
        k.mv_data = kb;
        v.mv_size = EMM_PAGE_SIZE;
        v.mv_data = (char *)(uintptr_t)a->buf + (size_t)i * EMM_PAGE_SIZE;
        rc = mdb_cursor_put(cur, &k, &v, exists ? MDB_CURRENT : 0);
        added += !exists;
        if ((i + 1) % EMM_LMDB_NOTE_EVERY == 0) /* replacing a page reads its old one's header */
            emm_lmdb_maps_note(EMM_LMDB_NOTE_EVERY);
    }
    mdb_cursor_close(cur);
    if (rc == 0)
        rc = count_add(l, txn, a->object, added);
    return rc;
}

static int
lm_write(void *instance, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    struct lm *l = instance;
    int r = 0;

    /* One transaction per call; only a very long call is split (LMDB bounds the
     * pages one transaction may dirty). */
    for (uint32_t done = 0; done < npages && r == 0;) {
        struct write_args a = {
            .object = object,
            .first = first + done,
            .npages = npages - done < WRITE_CHUNK ? npages - done : WRITE_CHUNK,
            .buf = (const char *)buf + (size_t)done * EMM_PAGE_SIZE,
        };
        r = wtxn_run(l, do_write, &a, "write");
        done += a.npages;
        emm_lmdb_maps_note(a.npages % EMM_LMDB_NOTE_EVERY);
    }
    return r;
}

struct discard_args {
    uint64_t object, from, npages; /* npages from `from`; UINT64_MAX: to the end */
    uint64_t deleted;
    int more;                      /* stopped at DELETE_CHUNK; resume at `from` */
};

static int
do_discard(struct lm *l, MDB_txn *txn, void *arg)
{
    struct discard_args *a = arg;
    unsigned char kb[KEY_LEN];
    uint64_t end_excl = a->npages == UINT64_MAX || a->npages > UINT64_MAX - a->from
                            ? 0 /* unbounded */
                            : a->from + a->npages;
    uint64_t pos = a->from;
    MDB_cursor *cur;
    int rc;

    a->deleted = 0;
    a->more = 0;
    rc = mdb_cursor_open(txn, l->pages, &cur);
    if (rc)
        return rc;
    for (;;) {
        MDB_val k = {KEY_LEN, kb}, v;
        uint64_t o, p;
        page_key(kb, a->object, pos);
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0)
            rc = key_split(&k, &o, &p);
        if (rc)
            break;
        if (o != a->object || (end_excl && p >= end_excl))
            break;
        if (a->deleted == DELETE_CHUNK) {
            a->more = 1;
            break;
        }
        rc = mdb_cursor_del(cur, 0);
        if (rc)
            break;
        if (++a->deleted % EMM_LMDB_NOTE_EVERY == 0) /* deleting reads each page's header */
            emm_lmdb_maps_note(EMM_LMDB_NOTE_EVERY);
        if (p == UINT64_MAX)
            break;
        pos = p + 1; /* re-seek: the deleted key's memory is gone */
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0)
        rc = count_add(l, txn, a->object, -(int64_t)a->deleted);
    if (rc == 0 && a->more) {
        /* Resume where this transaction stopped. */
        if (end_excl)
            a->npages = end_excl - pos;
        a->from = pos;
    }
    return rc;
}

static int
lm_discard(void *instance, uint64_t object, uint64_t first, uint64_t npages)
{
    struct lm *l = instance;
    struct discard_args a = {.object = object, .from = first, .npages = npages};
    int r;

    do {
        r = wtxn_run(l, do_discard, &a, "discard");
        emm_lmdb_maps_note(a.deleted % EMM_LMDB_NOTE_EVERY);
    } while (r == 0 && a.more);
    return r;
}

static int
lm_sync(void *instance, uint64_t object)
{
    struct lm *l = instance;
    int rc;

    (void)object; /* one environment: syncing it syncs every object */
    if (!l->env)
        return -EBADF;
    pthread_rwlock_rdlock(&l->sh.resize);
    rc = atomic_load(&l->broken) ? EIO : mdb_env_sync(l->env, 1);
    pthread_rwlock_unlock(&l->sh.resize);
    if (rc) {
        l->host->log(l->host, EMM_LOG_ERR, "%s: sync: %s", l->path, mdb_strerror(rc));
        return lm_errno(rc);
    }
    return 0;
}

static int
lm_seek(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found)
{
    struct lm *l = instance;
    unsigned char kb[KEY_LEN];
    uint64_t at = from;
    int r, rc;

    for (;;) {
        MDB_val k = {KEY_LEN, kb}, v;
        MDB_cursor *cur;
        MDB_txn *txn;
        unsigned steps = 0;
        int again = 0;

        r = rtxn_get(l, &txn);
        if (r < 0)
            return r;
        rc = mdb_cursor_open(txn, l->pages, &cur);
        if (rc == 0) {
            page_key(kb, object, at);
            for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
                 rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                uint64_t o, p;
                if ((rc = key_split(&k, &o, &p)) != 0)
                    break;
                if (o != object) {
                    rc = MDB_NOTFOUND;
                    break;
                }
                if (want_data) {
                    at = p; /* the first stored page */
                    break;
                }
                if (p != at)
                    break; /* `at` is the first gap */
                if (at == UINT64_MAX) { /* every page to the last index is stored */
                    rc = MDB_NOTFOUND;
                    want_data = 1;
                    break;
                }
                at++;
                if (++steps == SCAN_CHUNK) { /* no long read transactions */
                    again = 1;
                    break;
                }
            }
            mdb_cursor_close(cur);
        }
        rtxn_put(l, txn);
        emm_lmdb_maps_note(steps / 64); /* the leaves walked */
        if (again)
            continue;
        if (rc == MDB_NOTFOUND) {
            if (want_data)
                return -ENXIO;
            rc = 0; /* a hole from `at` on */
        }
        if (rc) {
            l->host->log(l->host, EMM_LOG_ERR, "%s: seek in object %" PRIx64 ": %s", l->path,
                         object, mdb_strerror(rc));
            return lm_errno(rc);
        }
        *found = at;
        return 0;
    }
}

static int
lm_stored_pages(void *instance, uint64_t object, uint64_t *count)
{
    struct lm *l = instance;
    unsigned char kb[8];
    MDB_val k = {8, kb}, v;
    MDB_txn *txn;
    int r, rc;

    *count = 0;
    r = rtxn_get(l, &txn);
    if (r < 0)
        return r;
    put_be64(kb, object);
    rc = mdb_get(txn, l->counts, &k, &v);
    if (rc == 0 && v.mv_size != 8)
        rc = MDB_CORRUPTED;
    if (rc == 0)
        *count = get_be64(v.mv_data);
    rtxn_put(l, txn);
    emm_lmdb_maps_note(0);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        l->host->log(l->host, EMM_LOG_ERR, "%s: page count of object %" PRIx64 ": %s", l->path,
                     object, mdb_strerror(rc));
    return lm_errno(rc);
}

static int
lm_info(void *instance, char *buf, size_t len)
{
    struct lm *l = instance;
    MDB_stat pst = {0}, cst = {0}, est = {0};
    MDB_envinfo info = {0};
    MDB_txn *txn;
    int w;

    if (l->env && rtxn_get(l, &txn) == 0) {
        mdb_stat(txn, l->pages, &pst);
        mdb_stat(txn, l->counts, &cst);
        mdb_env_info(l->env, &info);
        mdb_env_stat(l->env, &est);
        rtxn_put(l, txn);
    }
    w = snprintf(buf, len,
                 "path:%s\nstored_pages:%zu\nobjects:%zu\nmap_size:%zu\nmap_used:%zu\n"
                 "max_map_size:%" PRIu64 "\nmap_grows:%" PRIu64 "\nenospc:%" PRIu64 "\n",
                 l->path, pst.ms_entries, cst.ms_entries, info.me_mapsize,
                 l->env ? (info.me_last_pgno + 1) * (size_t)est.ms_psize : 0, l->max_map_size,
                 atomic_load(&l->grows), atomic_load(&l->enospc));
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

struct MDB_env *
emm_backend_lmdb_env(struct emm_backend *b)
{
    while (b && b->next)
        b = b->next;
    if (!b || !b->ops || b->ops->read_pages != lm_read || !b->instance)
        return NULL;
    return ((struct lm *)b->instance)->env;
}

const struct emm_backend_ops emm_backend_lmdb_ops = {
    .struct_size = sizeof(struct emm_backend_ops),
    .api_version = EMM_BACKEND_API_VERSION,
    .thread_model = EMM_THREAD_PARALLEL,
    .name = "lmdb",
    .flags = EMM_BACKEND_PERSISTENT | EMM_BACKEND_FAST_READS, /* reads: mapped lookups */
    .create = lm_create,
    .config = lm_config,
    .config_complete = lm_config_complete,
    .start = lm_start,
    .stop = lm_stop,
    .destroy = lm_destroy,
    .read_pages = lm_read,
    .write_pages = lm_write,
    .discard = lm_discard,
    .sync = lm_sync,
    .seek = lm_seek,
    .stored_pages = lm_stored_pages,
    .info = lm_info,
};
