/*
 * catalog.c - the object catalog of one filesystem (catalog.h).
 *
 * Persistent variant: an LMDB environment in the catalog directory with two
 * named databases: "records" (key: the id as 8 big-endian bytes, so LMDB's
 * byte order is id order; value: an encoded record, below) and "meta" ("next-id":
 * the next id to hand out, "format": the layout version). Every write
 * transaction commits with LMDB's default durability, so put/del/new_id are on
 * disk when they return. The map starts at 64 MiB and doubles on MDB_MAP_FULL.
 *
 * Record encoding (little-endian): u32 version (2), u32 payload length, then
 * id u64, size u64, mode u32, uid u32, gid u32, name length u32, atime i64,
 * mtime i64, ctime i64, parent u64, type u32 (68 bytes) and the name bytes
 * without a NUL. A symlink or a hard link (EMM_CAT_SYMLINK, EMM_CAT_HLINK) is
 * a version-3 record: the same 68 bytes, then link u64 (the object a hard
 * link names) and target length u32 (80 bytes), the name, then the target
 * bytes without a NUL. Files and directories are still written as version 2.
 *
 * Formats ("format" in meta): 1 was a flat namespace, its records version 1
 * (the same without parent and type: 56 bytes before the name). Opening a
 * format-1 catalog upgrades it in one write transaction: every record is
 * rewritten as version 2, a file in the root directory, and "format" becomes
 * 2. Format 3 is format 2 that may hold version-3 records: a catalog becomes
 * format 3 in the transaction that writes its first link, so one that never
 * held a link still opens with an emmd from before links. A format newer
 * than this code knows is refused (-EPROTO), never changed.
 * The root directory is the record with id 0 (EMM_CATALOG_ROOT), written by
 * its user (emmd's fs.c) when absent.
 *
 * Shared-environment variant (emm_catalog_open_env): the same layout in the
 * named databases "catalog" and "catalog.meta" of an environment another part
 * of emm owns (the lmdb backend, which opens it MDB_NOSYNC), so every commit is
 * followed by mdb_env_sync(force). The owner's struct emm_lmdb_shared (the
 * environment's userctx) supplies the resize lock and the map growth policy.
 *
 * Volatile variant (dir NULL): a sorted array of records under a mutex.
 *
 * Backend variant (emm_catalog_open_backend): the stack's namespace store
 * (<emm/backend.h> meta_update/meta_scan; the rados plug-in keeps it in the
 * omap of one object per filesystem, so the namespace lives in the cluster
 * with the pages). Keys: "catalog.format" (le32 2; 3 once it holds a link),
 * "catalog.next-id" (le64)
 * and "catalog.r.ID" (ID in 16 hex digits, so byte order is id order) holding
 * the encoded record. The whole catalog is read at open into the volatile
 * variant's array, which then serves scan; every put/del/update/new_id goes to
 * the store first, as one meta_update (durable when it returns), and only then
 * to the array, under the mutex (so updates reach the store in order).
 *
 * Locking: LMDB serializes writers; c->sh->resize (a rwlock: the catalog's own,
 * or the shared environment's) is held shared around every transaction and
 * exclusively to change the map size, which LMDB allows only with no
 * transaction active in the process. scan copies records out in batches and
 * calls its callback with no lock or transaction held, so the callback may put
 * or del.
 */
#include "backend_host.h"
#include "byteorder.h"
#include "catalog.h"

#include "fsutil.h"
#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define CAT_FORMAT 3       /* the newest format this code knows */
#define CAT_FORMAT_DIRS 2  /* directories; a new catalog starts here */
#define CAT_FORMAT_FLAT 1
#define REC_VERSION_LINK 3
#define REC_VERSION 2
#define REC_VERSION_FLAT 1
#define REC_HDR 8
#define REC_FIXED_LINK 80
#define REC_FIXED 68
#define REC_FIXED_FLAT 56
#define REC_MAX (REC_HDR + REC_FIXED_LINK + EMM_NAME_MAX + EMM_LINK_MAX)
#define MAP_INITIAL ((size_t)64 << 20)
#define MAP_RETRIES 2
#define SCAN_BATCH 64

struct emm_catalog {
    char *dir;   /* a persistent catalog's own directory, else NULL */
    char *label; /* names the catalog in log lines (persistent only) */
    /* persistent */
    MDB_env *env;
    int shared_env; /* env belongs to its opener: never close it; sync each commit */
    const char *recs_name, *meta_name;
    MDB_dbi recs, meta;
    struct emm_lmdb_shared own; /* resize lock and growth of a catalog's own env */
    struct emm_lmdb_shared *sh; /* &own, or the shared environment's userctx */
    /* backend: the stack whose namespace store holds the records (array = cache) */
    struct emm_backend *be;
    /* volatile */
    pthread_mutex_t mu;
    struct emm_catalog_rec *v;
    size_t nv, capv;
    uint64_t next_id;
    _Atomic uint32_t format; /* as on disk (persistent, backend); raised to 3 by the first link */
};

static int
is_link(const struct emm_catalog_rec *r)
{
    return r->type == EMM_CAT_SYMLINK || r->type == EMM_CAT_HLINK;
}

static int
any_link(const struct emm_catalog_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_link(&r[i]))
            return 1;
    return 0;
}

/* ---- encoding ---- */

static void
key_of(uint64_t id, unsigned char k[8])
{
    for (int i = 0; i < 8; i++)
        k[i] = (unsigned char)(id >> (56 - 8 * i));
}

static size_t
encode(const struct emm_catalog_rec *r, unsigned char *buf)
{
    size_t nlen = strnlen(r->name, EMM_NAME_MAX);
    size_t tlen = r->type == EMM_CAT_SYMLINK && r->target ? strnlen(r->target, EMM_LINK_MAX) : 0;
    size_t fixed = is_link(r) ? REC_FIXED_LINK : REC_FIXED;
    unsigned char *p = buf + REC_HDR;

    emm_put_le32(buf, is_link(r) ? REC_VERSION_LINK : REC_VERSION);
    emm_put_le32(buf + 4, (uint32_t)(fixed + nlen + tlen));
    emm_put_le64(p, r->id);
    emm_put_le64(p + 8, r->size);
    emm_put_le32(p + 16, r->mode);
    emm_put_le32(p + 20, r->uid);
    emm_put_le32(p + 24, r->gid);
    emm_put_le32(p + 28, (uint32_t)nlen);
    emm_put_le64(p + 32, (uint64_t)r->atime_ns);
    emm_put_le64(p + 40, (uint64_t)r->mtime_ns);
    emm_put_le64(p + 48, (uint64_t)r->ctime_ns);
    emm_put_le64(p + 56, r->parent);
    emm_put_le32(p + 64, r->type);
    if (is_link(r)) {
        emm_put_le64(p + 68, r->type == EMM_CAT_HLINK ? r->link : 0);
        emm_put_le32(p + 76, (uint32_t)tlen);
    }
    memcpy(p + fixed, r->name, nlen);
    if (tlen > 0)
        memcpy(p + fixed + nlen, r->target, tlen);
    return REC_HDR + fixed + nlen + tlen;
}

/* Decodes one record; a symlink's target is malloc'd (free it: rec_done). */

static int
decode(const unsigned char *buf, size_t len, struct emm_catalog_rec *r)
{
    const unsigned char *p = buf + REC_HDR;

    if (len < REC_HDR + REC_FIXED_FLAT || emm_get_le32(buf + 4) != len - REC_HDR)
        return -EIO;
    uint32_t version = emm_get_le32(buf);
    size_t fixed = version == REC_VERSION_FLAT ? REC_FIXED_FLAT
                   : version == REC_VERSION_LINK ? REC_FIXED_LINK : REC_FIXED;
    if ((version != REC_VERSION && version != REC_VERSION_FLAT && version != REC_VERSION_LINK) ||
        len < REC_HDR + fixed)
        return -EIO;
    uint32_t nlen = emm_get_le32(p + 28);
    uint32_t tlen = version == REC_VERSION_LINK ? emm_get_le32(p + 76) : 0;
    if (nlen > EMM_NAME_MAX || tlen > EMM_LINK_MAX ||
        fixed + (size_t)nlen + tlen > len - REC_HDR)
        return -EIO;
    memset(r, 0, sizeof(*r));
    r->id = emm_get_le64(p);
    r->size = emm_get_le64(p + 8);
    r->mode = emm_get_le32(p + 16);
    r->uid = emm_get_le32(p + 20);
    r->gid = emm_get_le32(p + 24);
    r->atime_ns = (int64_t)emm_get_le64(p + 32);
    r->mtime_ns = (int64_t)emm_get_le64(p + 40);
    r->ctime_ns = (int64_t)emm_get_le64(p + 48);
    if (version == REC_VERSION_FLAT) {
        r->parent = EMM_CATALOG_ROOT; /* a flat catalog: everything is in the root */
        r->type = EMM_CAT_FILE;
    } else {
        r->parent = emm_get_le64(p + 56);
        r->type = emm_get_le32(p + 64);
        if (version == REC_VERSION && r->type != EMM_CAT_FILE && r->type != EMM_CAT_DIR)
            return -EIO;
        if (version == REC_VERSION_LINK &&
            (!is_link(r) || (r->type == EMM_CAT_SYMLINK) != (tlen > 0)))
            return -EIO; /* a link record of another type; a symlink without a target */
    }
    if (version == REC_VERSION_LINK && r->type == EMM_CAT_HLINK)
        r->link = emm_get_le64(p + 68);
    memcpy(r->name, p + fixed, nlen);
    r->name[nlen] = '\0';
    if (tlen > 0) {
        r->target = malloc(tlen + 1);
        if (r->target == NULL)
            return -ENOMEM;
        memcpy(r->target, p + fixed + nlen, tlen);
        r->target[tlen] = '\0';
    }
    return 0;
}

static void
rec_done(struct emm_catalog_rec *r)
{
    free(r->target);
    r->target = NULL;
}

static int
mdb_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return -ENOENT;
    case MDB_MAP_FULL: return -ENOSPC;
    case MDB_READERS_FULL: return -EAGAIN;
    case MDB_TXN_FULL: return -ENOSPC;
    case MDB_VERSION_MISMATCH: return -EPROTO;
    case MDB_CORRUPTED: return -EIO;
    default: return rc > 0 ? -rc : -EIO;
    }
}

/* ---- persistent: transactions ---- */

/* own.grow: doubles the map of the catalog's own environment. Called with
 * own.resize held exclusively. */
static int
grow_map(struct emm_lmdb_shared *sh, size_t seen)
{
    struct emm_catalog *c = (struct emm_catalog *)((char *)sh - offsetof(struct emm_catalog, own));

    if (sh->mapsize != seen)
        return 0; /* another thread already grew it */
    size_t want = sh->mapsize * 2;
    int rc = mdb_env_set_mapsize(c->env, want);
    emm_lmdb_maps_moved(sh); /* the resident-set bound follows the map */
    if (rc) {
        emm_err("catalog %s: cannot grow map to %zu bytes: %s", c->label, want, mdb_strerror(rc));
        return mdb_errno(rc);
    }
    sh->mapsize = want;
    emm_info("catalog %s: map grown to %zu KiB", c->label, want >> 10);
    return 0;
}

typedef int (*write_fn)(struct emm_catalog *c, MDB_txn *txn, void *arg);

/* Runs fn in a write transaction, growing the map and retrying on MDB_MAP_FULL. */
static int
write_txn(struct emm_catalog *c, write_fn fn, void *arg, const char *what)
{
    for (int attempt = 0;; attempt++) {
        MDB_txn *txn;
        int rc;

        pthread_rwlock_rdlock(&c->sh->resize);
        size_t seen = c->sh->mapsize;
        rc = mdb_txn_begin(c->env, NULL, 0, &txn);
        if (rc == MDB_SUCCESS) {
            rc = fn(c, txn, arg);
            if (rc == MDB_SUCCESS)
                rc = mdb_txn_commit(txn);
            else
                mdb_txn_abort(txn);
        }
        /* The shared environment commits without fsync: make this one durable. */
        if (rc == MDB_SUCCESS && c->shared_env)
            rc = mdb_env_sync(c->env, 1);
        pthread_rwlock_unlock(&c->sh->resize);
        emm_lmdb_maps_note(EMM_LMDB_CHECK_PAGES); /* bounds the map's resident pages (lmdb_shared.h) */
        if (rc == MDB_MAP_FULL && attempt < MAP_RETRIES) {
            pthread_rwlock_wrlock(&c->sh->resize);
            int r = c->sh->grow(c->sh, seen);
            pthread_rwlock_unlock(&c->sh->resize);
            if (r < 0) {
                emm_err("catalog %s: %s: map full: %s", c->label, what, strerror(-r));
                return r;
            }
            continue;
        }
        if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
            emm_err("catalog %s: %s: %s", c->label, what, mdb_strerror(rc));
        return mdb_errno(rc);
    }
}

static int
read_next_id(struct emm_catalog *c, MDB_txn *txn, uint64_t *next)
{
    MDB_val k = {sizeof("next-id") - 1, (void *)"next-id"}, v;
    int rc = mdb_get(txn, c->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *next = 1;
        return 0;
    }
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *next = emm_get_le64(v.mv_data);
    return 0;
}

static int
write_next_id(struct emm_catalog *c, MDB_txn *txn, uint64_t next)
{
    unsigned char b[8];
    MDB_val k = {sizeof("next-id") - 1, (void *)"next-id"}, v = {8, b};
    emm_put_le64(b, next);
    return mdb_put(txn, c->meta, &k, &v, 0);
}

static int
do_new_id(struct emm_catalog *c, MDB_txn *txn, void *arg)
{
    uint64_t *id = arg;
    int rc = read_next_id(c, txn, id);
    if (rc)
        return rc;
    return write_next_id(c, txn, *id + 1);
}

static int write_format(struct emm_catalog *c, MDB_txn *txn, uint32_t format);

static int
put_one(struct emm_catalog *c, MDB_txn *txn, const struct emm_catalog_rec *rec)
{
    unsigned char key[8], buf[REC_MAX];
    uint64_t next;
    int rc;

    /* The first link makes the catalog format 3, in the same transaction. */
    if (is_link(rec) && c->format < CAT_FORMAT) {
        rc = write_format(c, txn, CAT_FORMAT);
        if (rc)
            return rc;
    }
    key_of(rec->id, key);
    MDB_val k = {8, key}, v = {encode(rec, buf), buf};
    rc = mdb_put(txn, c->recs, &k, &v, 0);
    if (rc)
        return rc;
    /* An id handed in from elsewhere must never be handed out again. */
    rc = read_next_id(c, txn, &next);
    if (rc == 0 && rec->id >= next)
        rc = write_next_id(c, txn, rec->id + 1);
    return rc;
}

static int
do_put(struct emm_catalog *c, MDB_txn *txn, void *arg)
{
    return put_one(c, txn, arg);
}

struct update {
    const struct emm_catalog_rec *puts;
    size_t nput;
    const uint64_t *dels;
    size_t ndel;
};

static int
do_update(struct emm_catalog *c, MDB_txn *txn, void *arg)
{
    const struct update *u = arg;
    int rc = 0;

    for (size_t i = 0; i < u->ndel && rc == 0; i++) {
        unsigned char key[8];
        key_of(u->dels[i], key);
        MDB_val k = {8, key};
        rc = mdb_del(txn, c->recs, &k, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    for (size_t i = 0; i < u->nput && rc == 0; i++)
        rc = put_one(c, txn, &u->puts[i]);
    return rc;
}

static int
do_del(struct emm_catalog *c, MDB_txn *txn, void *arg)
{
    unsigned char key[8];
    key_of(*(const uint64_t *)arg, key);
    MDB_val k = {8, key};
    return mdb_del(txn, c->recs, &k, NULL);
}

static int
write_format(struct emm_catalog *c, MDB_txn *txn, uint32_t format)
{
    MDB_val k = {sizeof("format") - 1, (void *)"format"}, v;
    unsigned char b[4];

    emm_put_le32(b, format);
    v.mv_size = 4;
    v.mv_data = b;
    return mdb_put(txn, c->meta, &k, &v, 0);
}

/* Format 1 -> 2: every record rewritten as version 2, in the root directory. */
static int
upgrade_flat(struct emm_catalog *c, MDB_txn *txn, uint64_t *count)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, c->recs, &cur);

    if (rc)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        struct emm_catalog_rec r;
        unsigned char buf[REC_MAX];
        if (k.mv_size != 8 || decode(v.mv_data, v.mv_size, &r) < 0) {
            rc = MDB_CORRUPTED;
            break;
        }
        /* The key is copied out first: k points into the page the put rewrites. */
        unsigned char key[8];
        memcpy(key, k.mv_data, 8);
        MDB_val kc = {8, key}, nv = {encode(&r, buf), buf};
        rec_done(&r);
        rc = mdb_cursor_put(cur, &kc, &nv, MDB_CURRENT);
        if (rc)
            break;
        (*count)++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    return write_format(c, txn, CAT_FORMAT_DIRS);
}

struct init_result {
    uint32_t found;     /* the format on disk (0: a new catalog) */
    uint64_t upgraded;  /* records rewritten by an upgrade */
};

static int
do_init(struct emm_catalog *c, MDB_txn *txn, void *arg)
{
    struct init_result *res = arg;
    MDB_val k = {sizeof("format") - 1, (void *)"format"}, v;
    int rc;

    res->found = 0;
    res->upgraded = 0;
    rc = mdb_dbi_open(txn, c->recs_name, MDB_CREATE, &c->recs);
    if (rc == 0)
        rc = mdb_dbi_open(txn, c->meta_name, MDB_CREATE, &c->meta);
    if (rc)
        return rc;
    rc = mdb_get(txn, c->meta, &k, &v);
    c->format = CAT_FORMAT_DIRS;
    if (rc == MDB_NOTFOUND)
        return write_format(c, txn, CAT_FORMAT_DIRS);
    if (rc)
        return rc;
    if (v.mv_size != 4)
        return MDB_CORRUPTED;
    res->found = emm_get_le32(v.mv_data);
    if (res->found == CAT_FORMAT_FLAT)
        return upgrade_flat(c, txn, &res->upgraded);
    if (res->found != CAT_FORMAT_DIRS && res->found != CAT_FORMAT)
        return MDB_VERSION_MISMATCH;
    c->format = res->found;
    return 0;
}

/* Opens the databases, creating or upgrading the layout; logs an upgrade or a
 * format it does not know. */
static int
init_layout(struct emm_catalog *c)
{
    struct init_result res = {0, 0};
    int r = write_txn(c, do_init, &res, "open");

    if (r == -EPROTO)
        emm_err("catalog %s: format %u is newer than this emmd knows (%u): not opened",
                c->label, res.found, CAT_FORMAT);
    else if (r == 0 && res.found == CAT_FORMAT_FLAT)
        emm_notice("catalog %s: upgraded from format %u (flat namespace) to %u: "
                   "%llu records now in the root directory",
                   c->label, CAT_FORMAT_FLAT, CAT_FORMAT_DIRS, (unsigned long long)res.upgraded);
    return r;
}

/*
 * Copies up to SCAN_BATCH records with id >= from into out. Returns the count,
 * or a negative errno.
 */
static int
scan_batch(struct emm_catalog *c, uint64_t from, struct emm_catalog_rec *out)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    unsigned char key[8];
    MDB_val k = {8, key}, v;
    int n = 0, rc;

    key_of(from, key);
    pthread_rwlock_rdlock(&c->sh->resize);
    rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_cursor_open(txn, c->recs, &cur);
        if (rc == 0) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            while (rc == 0 && n < SCAN_BATCH) {
                if (k.mv_size != 8 || decode(v.mv_data, v.mv_size, &out[n]) < 0) {
                    rc = MDB_CORRUPTED;
                    break;
                }
                n++;
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            }
            mdb_cursor_close(cur);
        }
        mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(&c->sh->resize);
    emm_lmdb_maps_note((size_t)n / 16);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        emm_err("catalog %s: scan: %s", c->label, mdb_strerror(rc));
        while (n-- > 0)
            rec_done(&out[n]);
        return mdb_errno(rc);
    }
    return n;
}

static int
open_persistent(struct emm_catalog *c)
{
    int rc, r, dead;

    r = emm_mkdir_p(c->dir, 0700);
    if (r < 0) {
        emm_err("catalog %s: cannot create directory: %s", c->dir, strerror(-r));
        return r;
    }
    c->own.mapsize = MAP_INITIAL;
    rc = mdb_env_create(&c->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(c->env, 2);
    if (rc == 0)
        rc = mdb_env_set_mapsize(c->env, c->own.mapsize);
    if (rc == 0)
        rc = mdb_env_open(c->env, c->dir, MDB_NOTLS, 0600);
    if (rc) {
        emm_err("catalog %s: cannot open LMDB environment: %s", c->dir, mdb_strerror(rc));
        return mdb_errno(rc);
    }
    /* The map may already be larger than MAP_INITIAL. */
    MDB_envinfo info;
    if (mdb_env_info(c->env, &info) == 0 && info.me_mapsize > c->own.mapsize)
        c->own.mapsize = info.me_mapsize;
    mdb_reader_check(c->env, &dead); /* slots left by a crashed process */
    emm_lmdb_maps_add(&c->own, c->env);
    return init_layout(c);
}

/* ---- volatile ---- */

/* Index of the first record with id >= id. Called with c->mu held. */
static size_t
v_lower(const struct emm_catalog *c, uint64_t id)
{
    size_t lo = 0, hi = c->nv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for `more` records; c->mu held. */
static int
v_reserve(struct emm_catalog *c, size_t more)
{
    if (c->nv + more <= c->capv)
        return 0;
    size_t cap = c->capv ? c->capv : 64;
    while (cap < c->nv + more)
        cap *= 2;
    struct emm_catalog_rec *nv = realloc(c->v, cap * sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    c->v = nv;
    c->capv = cap;
    return 0;
}

/* Copies of the targets of n records (NULL where none), so a put cannot fail
 * half way; -ENOMEM. v_put_locked takes them over. */
static int
v_dup_targets(const struct emm_catalog_rec *r, size_t n, char **out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = r[i].target ? strndup(r[i].target, EMM_LINK_MAX) : NULL;
        if (r[i].target && !out[i]) {
            while (i-- > 0)
                free(out[i]);
            return -ENOMEM;
        }
    }
    return 0;
}

/* c->mu held, room reserved; the array owns target (a copy) from now on. */
static void
v_put_locked(struct emm_catalog *c, const struct emm_catalog_rec *rec, char *target)
{
    size_t i = v_lower(c, rec->id);
    if (i < c->nv && c->v[i].id == rec->id) {
        free(c->v[i].target);
        c->v[i] = *rec;
    } else {
        memmove(&c->v[i + 1], &c->v[i], (c->nv - i) * sizeof(*c->v));
        c->v[i] = *rec;
        c->nv++;
    }
    c->v[i].target = target;
    c->v[i].name[EMM_NAME_MAX] = '\0';
    if (rec->id >= c->next_id)
        c->next_id = rec->id + 1;
}

/* c->mu held; -ENOENT if absent. */
static int
v_del_locked(struct emm_catalog *c, uint64_t id)
{
    size_t i = v_lower(c, id);
    if (i < c->nv && c->v[i].id == id) {
        free(c->v[i].target);
        memmove(&c->v[i], &c->v[i + 1], (c->nv - i - 1) * sizeof(*c->v));
        c->nv--;
        return 0;
    }
    return -ENOENT;
}

static int
v_update(struct emm_catalog *c, const struct emm_catalog_rec *puts, size_t nput,
         const uint64_t *dels, size_t ndel)
{
    char **tg = calloc(nput ? nput : 1, sizeof(*tg));
    if (tg == NULL || v_dup_targets(puts, nput, tg) < 0) {
        free(tg);
        return -ENOMEM;
    }
    pthread_mutex_lock(&c->mu);
    int r = v_reserve(c, nput);
    if (r == 0) {
        for (size_t i = 0; i < ndel; i++)
            v_del_locked(c, dels[i]);
        for (size_t i = 0; i < nput; i++)
            v_put_locked(c, &puts[i], tg[i]);
    } else {
        for (size_t i = 0; i < nput; i++)
            free(tg[i]);
    }
    pthread_mutex_unlock(&c->mu);
    free(tg);
    return r;
}

static int
v_del(struct emm_catalog *c, uint64_t id)
{
    pthread_mutex_lock(&c->mu);
    int r = v_del_locked(c, id);
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Copies out up to SCAN_BATCH records, each with its own copy of a target
 * (the callback may del the array's). */
static int
v_batch(struct emm_catalog *c, uint64_t from, struct emm_catalog_rec *out)
{
    int n = 0;

    pthread_mutex_lock(&c->mu);
    for (size_t i = v_lower(c, from); i < c->nv && n < SCAN_BATCH; i++) {
        out[n] = c->v[i];
        out[n].target = NULL;
        if (c->v[i].target && !(out[n].target = strdup(c->v[i].target))) {
            while (n-- > 0)
                rec_done(&out[n]);
            n = -ENOMEM;
            break;
        }
        n++;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- backend (the stack's namespace store) ---- */

#define BK_FORMAT "catalog.format"
#define BK_NEXT "catalog.next-id"
#define BK_REC "catalog.r."

static void
bk_key(uint64_t id, char out[32])
{
    snprintf(out, 32, BK_REC "%016llx", (unsigned long long)id);
}

struct bk_load {
    struct emm_catalog *c;
    uint32_t format;
    int bad;
};

static int
bk_load_one(void *arg, const char *key, const void *value, size_t len)
{
    struct bk_load *l = arg;
    struct emm_catalog *c = l->c;

    if (strcmp(key, BK_FORMAT) == 0) {
        if (len != 4)
            return -EIO;
        l->format = emm_get_le32(value);
        return 0;
    }
    if (strcmp(key, BK_NEXT) == 0) {
        if (len != 8)
            return -EIO;
        uint64_t next = emm_get_le64(value);
        if (next > c->next_id)
            c->next_id = next;
        return 0;
    }
    if (strncmp(key, BK_REC, strlen(BK_REC)) != 0)
        return 0; /* not the catalog's */
    struct emm_catalog_rec r;
    if (len > REC_MAX || decode(value, len, &r) < 0) {
        emm_err("catalog %s: record %s does not decode: skipped", c->label, key);
        l->bad++;
        return 0;
    }
    if (v_reserve(c, 1) < 0) {
        rec_done(&r);
        return -ENOMEM;
    }
    v_put_locked(c, &r, r.target); /* the array takes the decoded target */
    return 0;
}

static int
bk_open(struct emm_catalog *c)
{
    struct bk_load l = {c, 0, 0};
    int r = emm_backend_meta_scan(c->be, "catalog.", bk_load_one, &l);

    if (r < 0) {
        emm_err("catalog %s: loading: %s", c->label, strerror(-r));
        return r;
    }
    if (l.format != 0 && l.format != CAT_FORMAT_DIRS && l.format != CAT_FORMAT) {
        emm_err("catalog %s: format %u is not one this emmd knows (%u, %u): not opened",
                c->label, l.format, CAT_FORMAT_DIRS, CAT_FORMAT);
        return -EPROTO;
    }
    c->format = l.format ? l.format : CAT_FORMAT_DIRS;
    if (l.format == 0) {
        unsigned char b[4];
        emm_put_le32(b, CAT_FORMAT_DIRS);
        struct emm_meta_kv kv = {BK_FORMAT, b, 4};
        r = emm_backend_meta_update(c->be, &kv, 1, NULL, 0);
        if (r < 0) {
            emm_err("catalog %s: writing its format: %s", c->label, strerror(-r));
            return r;
        }
    }
    emm_info("catalog %s: %zu records%s", c->label, c->nv, l.bad ? " (some unreadable: see above)" : "");
    return 0;
}

/* Writes puts/dels (and next-id when it moves) to the store, then the array. */
static int
bk_update(struct emm_catalog *c, const struct emm_catalog_rec *puts, size_t nput,
          const uint64_t *dels, size_t ndel)
{
    struct emm_meta_kv *kv = calloc(nput + 2, sizeof(*kv));
    unsigned char (*bufs)[REC_MAX] = calloc(nput ? nput : 1, sizeof(*bufs));
    char (*keys)[32] = calloc(nput + ndel + 1, sizeof(*keys));
    const char **dk = calloc(ndel + 1, sizeof(*dk));
    char **tg = calloc(nput ? nput : 1, sizeof(*tg));
    unsigned char nb[8], fb[4];
    int r = -ENOMEM, bump = 0;

    if (!kv || !bufs || !keys || !dk || !tg || v_dup_targets(puts, nput, tg) < 0) {
        free(tg);
        tg = NULL;
        goto out;
    }
    pthread_mutex_lock(&c->mu);
    uint64_t next = c->next_id;
    size_t n = 0;
    for (size_t i = 0; i < nput; i++) {
        bk_key(puts[i].id, keys[i]);
        kv[n++] = (struct emm_meta_kv){keys[i], bufs[i], encode(&puts[i], bufs[i])};
        if (puts[i].id >= next)
            next = puts[i].id + 1;
    }
    if (next != c->next_id) {
        emm_put_le64(nb, next);
        kv[n++] = (struct emm_meta_kv){BK_NEXT, nb, 8};
    }
    if (c->format < CAT_FORMAT && any_link(puts, nput)) { /* the first link: format 3 */
        emm_put_le32(fb, CAT_FORMAT);
        kv[n++] = (struct emm_meta_kv){BK_FORMAT, fb, 4};
        bump = 1;
    }
    for (size_t i = 0; i < ndel; i++) {
        bk_key(dels[i], keys[nput + i]);
        dk[i] = keys[nput + i];
    }
    r = v_reserve(c, nput);
    if (r == 0)
        r = emm_backend_meta_update(c->be, kv, n, dk, ndel);
    if (r == 0) {
        for (size_t i = 0; i < ndel; i++)
            v_del_locked(c, dels[i]);
        for (size_t i = 0; i < nput; i++)
            v_put_locked(c, &puts[i], tg[i]);
        if (bump)
            c->format = CAT_FORMAT;
    } else {
        for (size_t i = 0; i < nput; i++)
            free(tg[i]);
        emm_err("catalog %s: update: %s", c->label, strerror(-r));
    }
    pthread_mutex_unlock(&c->mu);
out:
    free(kv), free(bufs), free(keys), free(dk), free(tg);
    return r;
}

static int
bk_new_id(struct emm_catalog *c, uint64_t *id)
{
    unsigned char nb[8];
    pthread_mutex_lock(&c->mu);
    emm_put_le64(nb, c->next_id + 1);
    struct emm_meta_kv kv = {BK_NEXT, nb, 8};
    int r = emm_backend_meta_update(c->be, &kv, 1, NULL, 0);
    if (r == 0)
        *id = c->next_id++;
    else
        emm_err("catalog %s: new id: %s", c->label, strerror(-r));
    pthread_mutex_unlock(&c->mu);
    return r;
}

int
emm_catalog_open_backend(struct emm_backend *be, const char *label, struct emm_catalog **out)
{
    struct emm_catalog *c;
    int r;

    *out = NULL;
    if (!emm_backend_has_meta(be))
        return -EOPNOTSUPP;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->next_id = 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_rwlock_init(&c->own.resize, NULL);
    c->sh = &c->own;
    c->be = be;
    c->label = strdup(label ? label : "in the backend");
    if (!c->label) {
        emm_catalog_close(c);
        return -ENOMEM;
    }
    r = bk_open(c);
    if (r < 0) {
        emm_catalog_close(c);
        return r;
    }
    *out = c;
    return 0;
}

/* ---- API ---- */

int
emm_catalog_open(const char *dir, struct emm_catalog **out)
{
    struct emm_catalog *c = calloc(1, sizeof(*c));
    int r;

    *out = NULL;
    if (!c)
        return -ENOMEM;
    c->next_id = 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_rwlock_init(&c->own.resize, NULL);
    c->own.grow = grow_map;
    c->sh = &c->own;
    c->recs_name = "records";
    c->meta_name = "meta";
    if (dir) {
        c->dir = strdup(dir);
        c->label = strdup(dir);
        if (!c->dir || !c->label) {
            emm_catalog_close(c);
            return -ENOMEM;
        }
        r = open_persistent(c);
        if (r < 0) {
            emm_catalog_close(c);
            return r;
        }
    }
    *out = c;
    return 0;
}

int
emm_catalog_open_env(struct MDB_env *env, struct emm_catalog **out)
{
    struct emm_lmdb_shared *sh = env ? mdb_env_get_userctx(env) : NULL;
    const char *path = NULL;
    struct emm_catalog *c;
    int r;

    *out = NULL;
    if (!sh) {
        emm_err("catalog: the LMDB environment has no shared context (not opened by emm)");
        return -EINVAL;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->next_id = 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_rwlock_init(&c->own.resize, NULL);
    c->env = env;
    c->shared_env = 1;
    c->sh = sh;
    c->recs_name = "catalog";
    c->meta_name = "catalog.meta";
    if (mdb_env_get_path(env, &path) != 0 || !path)
        path = "?";
    if (asprintf(&c->label, "in %s", path) < 0) {
        c->label = NULL;
        c->env = NULL; /* not ours: close must leave it alone */
        emm_catalog_close(c);
        return -ENOMEM;
    }
    r = init_layout(c);
    if (r < 0) {
        c->env = NULL;
        emm_catalog_close(c);
        return r;
    }
    pthread_rwlock_wrlock(&sh->resize);
    sh->users++;
    pthread_rwlock_unlock(&sh->resize);
    *out = c;
    return 0;
}

void
emm_catalog_close(struct emm_catalog *c)
{
    if (!c)
        return;
    if (c->env && c->shared_env) {
        pthread_rwlock_wrlock(&c->sh->resize);
        c->sh->users--;
        pthread_rwlock_unlock(&c->sh->resize);
    } else if (c->env) {
        emm_lmdb_maps_del(&c->own);
        mdb_env_close(c->env);
    }
    pthread_rwlock_destroy(&c->own.resize);
    pthread_mutex_destroy(&c->mu);
    for (size_t i = 0; i < c->nv; i++)
        free(c->v[i].target);
    free(c->v);
    free(c->dir);
    free(c->label);
    free(c);
}

int
emm_catalog_new_id(struct emm_catalog *c, uint64_t *id)
{
    if (c->be)
        return bk_new_id(c, id);
    if (!c->env) {
        pthread_mutex_lock(&c->mu);
        *id = c->next_id++;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    return write_txn(c, do_new_id, id, "new id");
}

int
emm_catalog_put(struct emm_catalog *c, const struct emm_catalog_rec *rec)
{
    if (c->be)
        return bk_update(c, rec, 1, NULL, 0);
    if (!c->env)
        return v_update(c, rec, 1, NULL, 0);
    int r = write_txn(c, do_put, (void *)rec, "put");
    if (r == 0 && is_link(rec))
        c->format = CAT_FORMAT; /* (a racing writer wrote it too: the same value) */
    return r;
}

int
emm_catalog_update(struct emm_catalog *c, const struct emm_catalog_rec *puts, size_t nput,
                   const uint64_t *dels, size_t ndel)
{
    if (c->be)
        return bk_update(c, puts, nput, dels, ndel);
    if (!c->env)
        return v_update(c, puts, nput, dels, ndel);
    struct update u = {puts, nput, dels, ndel};
    int r = write_txn(c, do_update, &u, "update");
    if (r == 0 && any_link(puts, nput))
        c->format = CAT_FORMAT;
    return r;
}

int
emm_catalog_del(struct emm_catalog *c, uint64_t id)
{
    if (c->be) {
        pthread_mutex_lock(&c->mu);
        size_t i = v_lower(c, id);
        int there = i < c->nv && c->v[i].id == id;
        pthread_mutex_unlock(&c->mu);
        return there ? bk_update(c, NULL, 0, &id, 1) : -ENOENT;
    }
    if (!c->env)
        return v_del(c, id);
    return write_txn(c, do_del, &id, "del");
}

int
emm_catalog_scan(struct emm_catalog *c, int (*fn)(void *arg, const struct emm_catalog_rec *rec),
                 void *arg)
{
    struct emm_catalog_rec *batch = malloc(SCAN_BATCH * sizeof(*batch));
    uint64_t from = 0;
    int n, r = 0;

    if (!batch)
        return -ENOMEM;
    for (;;) {
        n = c->env ? scan_batch(c, from, batch) : v_batch(c, from, batch);
        if (n < 0) {
            r = n;
            break;
        }
        for (int i = 0; i < n && r == 0; i++)
            r = fn(arg, &batch[i]);
        for (int i = 0; i < n; i++)
            rec_done(&batch[i]); /* the targets the batch copied out */
        if (r != 0 || n < SCAN_BATCH || batch[n - 1].id == UINT64_MAX)
            break;
        from = batch[n - 1].id + 1;
    }
    free(batch);
    return r;
}

int
emm_catalog_sync(struct emm_catalog *c)
{
    if (!c->env)
        return 0;
    pthread_rwlock_rdlock(&c->sh->resize);
    int rc = mdb_env_sync(c->env, 1);
    pthread_rwlock_unlock(&c->sh->resize);
    if (rc) {
        emm_err("catalog %s: sync: %s", c->label, mdb_strerror(rc));
        return mdb_errno(rc);
    }
    return 0;
}
