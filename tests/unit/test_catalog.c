/*
 * test_catalog.c - emm_catalog, volatile and persistent (LMDB in a mkdtemp
 * directory): ids, put/get through scan, replace, del, persistence across
 * close and reopen, ids never reused, concurrent writers, parents and types,
 * atomic updates, and the upgrade of a format-1 (flat) catalog written by hand
 * with LMDB, in its own environment and in a shared one (as the lmdb backend's);
 * symlink and hard-link records (version 3): kept whole across a reopen, a
 * catalog that never held one stays format 2 and the first makes it format 3,
 * and malformed version-3 records written by hand do not load.
 * The persistent tests run in a directory the group teardown removes.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "catalog.h"

static char tmp[256];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
group_setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/emm-test-catalog-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Each test gets a fresh persistent directory; volatile tests pass NULL. */
static const char *
fresh_dir(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/nested/catalog", tmp, name);
    return buf;
}

static struct emm_catalog_rec
mkrec(uint64_t id, const char *name, uint64_t size)
{
    struct emm_catalog_rec r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    r.size = size;
    r.mode = 0640;
    r.uid = 1000;
    r.gid = 100;
    r.atime_ns = -5;
    r.mtime_ns = INT64_C(1700000000123456789);
    r.ctime_ns = INT64_MAX;
    r.parent = id > 2 ? id - 2 : EMM_CATALOG_ROOT;
    r.type = id % 3 == 0 ? EMM_CAT_DIR : EMM_CAT_FILE;
    snprintf(r.name, sizeof(r.name), "%s", name);
    return r;
}

struct collect {
    struct emm_catalog_rec recs[64];
    int n;
    int stop_after; /* 0: never */
};

static int
collect_fn(void *arg, const struct emm_catalog_rec *rec)
{
    struct collect *c = arg;
    if (c->n < 64)
        c->recs[c->n] = *rec;
    c->n++;
    if (c->stop_after && c->n == c->stop_after)
        return 42;
    return 0;
}

static void
scan_all(struct emm_catalog *cat, struct collect *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(emm_catalog_scan(cat, collect_fn, c), 0);
}

static void
assert_rec_equal(const struct emm_catalog_rec *a, const struct emm_catalog_rec *b)
{
    assert_true(a->id == b->id);
    assert_true(a->size == b->size);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    assert_true(a->atime_ns == b->atime_ns);
    assert_true(a->mtime_ns == b->mtime_ns);
    assert_true(a->ctime_ns == b->ctime_ns);
    assert_true(a->parent == b->parent);
    assert_int_equal(a->type, b->type);
    assert_string_equal(a->name, b->name);
}

/* The behaviour both variants share. */
static void
basic(const char *dir)
{
    struct emm_catalog *cat;
    struct collect col;
    uint64_t a, b, c;

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    scan_all(cat, &col);
    assert_int_equal(col.n, 0);

    assert_int_equal(emm_catalog_new_id(cat, &a), 0);
    assert_int_equal(emm_catalog_new_id(cat, &b), 0);
    assert_int_equal(emm_catalog_new_id(cat, &c), 0);
    assert_true(a > 0 && b > a && c > b);

    /* put out of order; scan returns id order */
    struct emm_catalog_rec rc = mkrec(c, "third", 3), ra = mkrec(a, "first", 1),
                           rb = mkrec(b, "second", 2);
    assert_int_equal(emm_catalog_put(cat, &rc), 0);
    assert_int_equal(emm_catalog_put(cat, &ra), 0);
    assert_int_equal(emm_catalog_put(cat, &rb), 0);
    scan_all(cat, &col);
    assert_int_equal(col.n, 3);
    assert_rec_equal(&col.recs[0], &ra);
    assert_rec_equal(&col.recs[1], &rb);
    assert_rec_equal(&col.recs[2], &rc);

    /* replace */
    rb = mkrec(b, "renamed", 4096);
    rb.mode = 0600;
    assert_int_equal(emm_catalog_put(cat, &rb), 0);
    scan_all(cat, &col);
    assert_int_equal(col.n, 3);
    assert_rec_equal(&col.recs[1], &rb);

    /* a name of the full length survives */
    struct emm_catalog_rec rl = mkrec(a, "", 0);
    memset(rl.name, 'n', EMM_NAME_MAX);
    rl.name[EMM_NAME_MAX] = '\0';
    assert_int_equal(emm_catalog_put(cat, &rl), 0);
    scan_all(cat, &col);
    assert_rec_equal(&col.recs[0], &rl);
    assert_int_equal(strlen(col.recs[0].name), EMM_NAME_MAX);

    /* early stop returns the callback's value */
    memset(&col, 0, sizeof(col));
    col.stop_after = 2;
    assert_int_equal(emm_catalog_scan(cat, collect_fn, &col), 42);
    assert_int_equal(col.n, 2);

    /* del */
    assert_int_equal(emm_catalog_del(cat, b), 0);
    assert_int_equal(emm_catalog_del(cat, b), -ENOENT);
    assert_int_equal(emm_catalog_del(cat, 999999), -ENOENT);
    scan_all(cat, &col);
    assert_int_equal(col.n, 2);
    assert_true(col.recs[0].id == a);
    assert_true(col.recs[1].id == c);

    /* ids are not reused, even after a delete */
    uint64_t d;
    assert_int_equal(emm_catalog_new_id(cat, &d), 0);
    assert_true(d > c);

    /* a put with an id never handed out moves new_id past it */
    struct emm_catalog_rec rx = mkrec(d + 100, "external", 0);
    assert_int_equal(emm_catalog_put(cat, &rx), 0);
    uint64_t e;
    assert_int_equal(emm_catalog_new_id(cat, &e), 0);
    assert_true(e > d + 100);

    assert_int_equal(emm_catalog_sync(cat), 0);
    emm_catalog_close(cat);
}

static void
test_volatile_basic(void **state)
{
    (void)state;
    basic(NULL);
}

static void
test_persistent_basic(void **state)
{
    char dir[512];
    (void)state;
    basic(fresh_dir("basic", dir, sizeof(dir)));
}

/* More records than one scan batch, in both variants. */
static void
many(const char *dir)
{
    struct emm_catalog *cat;
    enum { N = 300 };

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    for (int i = 0; i < N; i++) {
        uint64_t id;
        char name[32];
        assert_int_equal(emm_catalog_new_id(cat, &id), 0);
        snprintf(name, sizeof(name), "f%d", i);
        struct emm_catalog_rec r = mkrec(id, name, (uint64_t)i);
        assert_int_equal(emm_catalog_put(cat, &r), 0);
    }
    struct collect col;
    memset(&col, 0, sizeof(col));
    assert_int_equal(emm_catalog_scan(cat, collect_fn, &col), 0);
    assert_int_equal(col.n, N);
    emm_catalog_close(cat);
}

static void
test_volatile_many(void **state)
{
    (void)state;
    many(NULL);
}

static void
test_persistent_many(void **state)
{
    char dir[512];
    (void)state;
    many(fresh_dir("many", dir, sizeof(dir)));
}

/* A callback that deletes what it sees: scan holds no lock during callbacks. */
static int
del_fn(void *arg, const struct emm_catalog_rec *rec)
{
    return emm_catalog_del(arg, rec->id);
}

static void
delete_in_scan(const char *dir)
{
    struct emm_catalog *cat;
    struct collect col;

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    for (int i = 0; i < 100; i++) {
        uint64_t id;
        assert_int_equal(emm_catalog_new_id(cat, &id), 0);
        struct emm_catalog_rec r = mkrec(id, "x", 0);
        assert_int_equal(emm_catalog_put(cat, &r), 0);
    }
    assert_int_equal(emm_catalog_scan(cat, del_fn, cat), 0);
    scan_all(cat, &col);
    assert_int_equal(col.n, 0);
    emm_catalog_close(cat);
}

static void
test_delete_in_scan(void **state)
{
    char dir[512];
    (void)state;
    delete_in_scan(NULL);
    delete_in_scan(fresh_dir("delscan", dir, sizeof(dir)));
}

static void
test_persistent_reopen(void **state)
{
    char dir[512];
    struct emm_catalog *cat;
    struct collect col;
    uint64_t a, b, c, d;

    (void)state;
    fresh_dir("reopen", dir, sizeof(dir));
    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    assert_int_equal(emm_catalog_new_id(cat, &a), 0);
    assert_int_equal(emm_catalog_new_id(cat, &b), 0);
    assert_int_equal(emm_catalog_new_id(cat, &c), 0);
    struct emm_catalog_rec ra = mkrec(a, "kept", 10), rb = mkrec(b, "deleted", 20);
    assert_int_equal(emm_catalog_put(cat, &ra), 0);
    assert_int_equal(emm_catalog_put(cat, &rb), 0);
    assert_int_equal(emm_catalog_del(cat, b), 0);
    /* c was allocated but never put */
    emm_catalog_close(cat);

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    scan_all(cat, &col);
    assert_int_equal(col.n, 1);
    assert_rec_equal(&col.recs[0], &ra);
    assert_int_equal(emm_catalog_new_id(cat, &d), 0);
    assert_true(d > c); /* neither deleted b nor unused c comes back */
    emm_catalog_close(cat);

    /* and once more, after only an id was taken */
    uint64_t e;
    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    assert_int_equal(emm_catalog_new_id(cat, &e), 0);
    assert_true(e > d);
    emm_catalog_close(cat);
}

static void
test_volatile_forgets(void **state)
{
    struct emm_catalog *cat;
    struct collect col;
    uint64_t id;

    (void)state;
    assert_int_equal(emm_catalog_open(NULL, &cat), 0);
    assert_int_equal(emm_catalog_new_id(cat, &id), 0);
    struct emm_catalog_rec r = mkrec(id, "gone", 0);
    assert_int_equal(emm_catalog_put(cat, &r), 0);
    emm_catalog_close(cat);
    assert_int_equal(emm_catalog_open(NULL, &cat), 0);
    scan_all(cat, &col);
    assert_int_equal(col.n, 0);
    emm_catalog_close(cat);
}

static void
test_open_errors(void **state)
{
    char path[512];
    struct emm_catalog *cat = (struct emm_catalog *)1;

    (void)state;
    snprintf(path, sizeof(path), "%s/plainfile", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/plainfile/catalog", tmp);
    assert_int_equal(emm_catalog_open(path, &cat), -ENOTDIR);
    assert_null(cat);
    emm_catalog_close(NULL);
}

/* Threads allocate ids and put records at once: ids stay unique. */
struct worker {
    struct emm_catalog *cat;
    uint64_t ids[50];
    int rc;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 50 && w->rc == 0; i++) {
        w->rc = emm_catalog_new_id(w->cat, &w->ids[i]);
        if (w->rc == 0) {
            struct emm_catalog_rec r = mkrec(w->ids[i], "t", 0);
            w->rc = emm_catalog_put(w->cat, &r);
        }
    }
    return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
threads(const char *dir)
{
    enum { T = 4 };
    struct emm_catalog *cat;
    struct worker w[T];
    pthread_t th[T];
    uint64_t all[T * 50];

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    for (int i = 0; i < T; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].cat = cat;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].rc, 0);
        memcpy(&all[i * 50], w[i].ids, sizeof(w[i].ids));
    }
    qsort(all, T * 50, sizeof(all[0]), cmp_u64);
    for (int i = 1; i < T * 50; i++)
        assert_true(all[i] > all[i - 1]);
    struct collect col;
    memset(&col, 0, sizeof(col));
    assert_int_equal(emm_catalog_scan(cat, collect_fn, &col), 0);
    assert_int_equal(col.n, T * 50);
    emm_catalog_close(cat);
}

static void
test_threads(void **state)
{
    char dir[512];
    (void)state;
    threads(NULL);
    threads(fresh_dir("threads", dir, sizeof(dir)));
}

/* update: puts and dels in one go; absent dels are skipped. */
static void
update(const char *dir)
{
    struct emm_catalog *cat;
    struct collect col;

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    struct emm_catalog_rec root = mkrec(EMM_CATALOG_ROOT, "", 0);
    root.type = EMM_CAT_DIR;
    struct emm_catalog_rec a = mkrec(1, "a", 0), b = mkrec(2, "b", 0), c = mkrec(3, "c", 0);
    struct emm_catalog_rec three[3] = {root, a, b};
    assert_int_equal(emm_catalog_update(cat, three, 3, NULL, 0), 0);
    /* move b under c (a new dir), delete a and an id that was never there */
    b.parent = 3;
    struct emm_catalog_rec two[2] = {b, c};
    uint64_t dels[2] = {1, 777};
    assert_int_equal(emm_catalog_update(cat, two, 2, dels, 2), 0);
    scan_all(cat, &col);
    assert_int_equal(col.n, 3);
    assert_rec_equal(&col.recs[0], &root);
    assert_rec_equal(&col.recs[1], &b);
    assert_rec_equal(&col.recs[2], &c);
    uint64_t id;
    assert_int_equal(emm_catalog_new_id(cat, &id), 0);
    assert_true(id > 3 && id != EMM_CATALOG_ROOT);
    emm_catalog_close(cat);
}

static void
test_update(void **state)
{
    char dir[512];
    (void)state;
    update(NULL);
    update(fresh_dir("update", dir, sizeof(dir)));
}

/* ---- format 1 (flat), written by hand as emm wrote it before directories ---- */

static void
le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void
le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* A version-1 record: u32 version 1, u32 payload length, then id, size, mode,
 * uid, gid, name length, atime, mtime, ctime (56 bytes) and the name. */
static size_t
old_record(const struct emm_catalog_rec *r, unsigned char *buf)
{
    size_t nlen = strlen(r->name);
    unsigned char *p = buf + 8;
    le32(buf, 1);
    le32(buf + 4, (uint32_t)(56 + nlen));
    le64(p, r->id);
    le64(p + 8, r->size);
    le32(p + 16, r->mode);
    le32(p + 20, r->uid);
    le32(p + 24, r->gid);
    le32(p + 28, (uint32_t)nlen);
    le64(p + 32, (uint64_t)r->atime_ns);
    le64(p + 40, (uint64_t)r->mtime_ns);
    le64(p + 48, (uint64_t)r->ctime_ns);
    memcpy(p + 56, r->name, nlen);
    return 8 + 56 + nlen;
}

static void
put_raw(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen)
{
    MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
    assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
}

enum { NOLD = 40 }; /* enough to fill more than one LMDB page */
static struct emm_catalog_rec old_recs[NOLD];

/* Writes a format-1 catalog of NOLD objects into env (named databases
 * recs/meta), with "format" = `format`. */
static void
write_flat(MDB_env *env, const char *recs, const char *meta, uint32_t format)
{
    MDB_txn *txn;
    MDB_dbi r, m;
    unsigned char b[8], buf[512], key[8];
    char name[64];

    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, recs, MDB_CREATE, &r), 0);
    assert_int_equal(mdb_dbi_open(txn, meta, MDB_CREATE, &m), 0);
    for (int i = 0; i < NOLD; i++) {
        struct emm_catalog_rec *o = &old_recs[i];
        snprintf(name, sizeof(name), "object %d with a name of some length", i);
        *o = mkrec((uint64_t)(i + 1) * 5, name, (uint64_t)i * 100000 + 7);
        o->parent = EMM_CATALOG_ROOT; /* what a flat record must open as */
        o->type = EMM_CAT_FILE;
        for (int k = 0; k < 8; k++)
            key[k] = (unsigned char)(o->id >> (56 - 8 * k));
        put_raw(txn, r, key, 8, buf, old_record(o, buf));
    }
    le64(b, NOLD * 5 + 1);
    put_raw(txn, m, "next-id", 7, b, 8);
    le32(b, format);
    put_raw(txn, m, "format", 6, b, 4);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static uint32_t
read_format(MDB_env *env, const char *meta)
{
    MDB_txn *txn;
    MDB_dbi m;
    MDB_val k = {6, (void *)"format"}, v;
    uint32_t f = 0;

    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, meta, 0, &m), 0);
    assert_int_equal(mdb_get(txn, m, &k, &v), 0);
    assert_int_equal(v.mv_size, 4);
    const unsigned char *p = v.mv_data;
    f = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    mdb_txn_abort(txn);
    return f;
}

static MDB_env *
raw_env(const char *dir)
{
    MDB_env *env;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 16 << 20), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    return env;
}

/* The opened catalog holds the flat records, each a file in the root. */
static void
check_upgraded(struct emm_catalog *cat, int extra)
{
    struct collect col;
    scan_all(cat, &col);
    assert_int_equal(col.n, NOLD + extra);
    for (int i = 0; i < NOLD; i++)
        assert_rec_equal(&col.recs[i], &old_recs[i]);
    uint64_t id;
    assert_int_equal(emm_catalog_new_id(cat, &id), 0);
    assert_true(id > NOLD * 5);
}

static void
test_flat_upgrade(void **state)
{
    char dir[512];
    struct emm_catalog *cat;
    (void)state;

    fresh_dir("flat", dir, sizeof(dir));
    MDB_env *env = raw_env(dir);
    write_flat(env, "records", "meta", 1);
    mdb_env_close(env);

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    check_upgraded(cat, 0);
    /* a directory and a file in it, in the new layout */
    struct emm_catalog_rec d = mkrec(1000, "dir", 0), f = mkrec(1001, "inner", 9);
    d.type = EMM_CAT_DIR;
    d.parent = EMM_CATALOG_ROOT;
    f.type = EMM_CAT_FILE;
    f.parent = 1000;
    struct emm_catalog_rec two[2] = {d, f};
    assert_int_equal(emm_catalog_update(cat, two, 2, NULL, 0), 0);
    emm_catalog_close(cat);

    env = raw_env(dir);
    assert_int_equal(read_format(env, "meta"), 2);
    mdb_env_close(env);

    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    check_upgraded(cat, 2);
    struct collect col;
    scan_all(cat, &col);
    assert_rec_equal(&col.recs[NOLD], &d);
    assert_rec_equal(&col.recs[NOLD + 1], &f);
    emm_catalog_close(cat);
}

/* A format newer than the code is refused and left as it is. */
static void
test_future_format(void **state)
{
    char dir[512];
    struct emm_catalog *cat = (struct emm_catalog *)1;
    (void)state;

    fresh_dir("future", dir, sizeof(dir));
    MDB_env *env = raw_env(dir);
    write_flat(env, "records", "meta", 4);
    mdb_env_close(env);
    assert_int_equal(emm_catalog_open(dir, &cat), -EPROTO);
    assert_null(cat);
    env = raw_env(dir);
    assert_int_equal(read_format(env, "meta"), 4);
    mdb_env_close(env);
}

/* The shared environment (the lmdb backend's) holds the catalog in
 * "catalog"/"catalog.meta" beside other databases: upgraded in place, the
 * other databases untouched. */
static int
no_grow(struct emm_lmdb_shared *sh, size_t seen)
{
    (void)sh;
    (void)seen;
    return -ENOSPC;
}

static void
test_flat_upgrade_shared_env(void **state)
{
    char dir[512];
    struct emm_catalog *cat;
    struct emm_lmdb_shared sh = {.mapsize = 16 << 20, .grow = no_grow};
    (void)state;

    pthread_rwlock_init(&sh.resize, NULL);
    fresh_dir("flat-env", dir, sizeof(dir));
    MDB_env *env = raw_env(dir);
    write_flat(env, "catalog", "catalog.meta", 1);
    /* the backend's own data beside it */
    MDB_txn *txn;
    MDB_dbi pages;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "pages", MDB_CREATE, &pages), 0);
    put_raw(txn, pages, "k", 1, "page", 4);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_set_userctx(env, &sh);

    assert_int_equal(emm_catalog_open_env(env, &cat), 0);
    check_upgraded(cat, 0);
    emm_catalog_close(cat);
    assert_int_equal(read_format(env, "catalog.meta"), 2);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "pages", 0, &pages), 0);
    MDB_val k = {1, (void *)"k"}, v;
    assert_int_equal(mdb_get(txn, pages, &k, &v), 0);
    assert_int_equal(v.mv_size, 4);
    assert_memory_equal(v.mv_data, "page", 4);
    mdb_txn_abort(txn);
    /* and it opens again, as format 2 */
    assert_int_equal(emm_catalog_open_env(env, &cat), 0);
    check_upgraded(cat, 0);
    emm_catalog_close(cat);
    mdb_env_close(env);
    pthread_rwlock_destroy(&sh.resize);
}

/* ---- links: symlink and hard-link records (format 3) ---- */

struct lcollect {
    struct emm_catalog_rec recs[16];
    int n;
    uint64_t del_in_scan; /* deleted from inside the callback when met (0: none) */
    struct emm_catalog *cat;
};

static int
lcollect_fn(void *arg, const struct emm_catalog_rec *rec)
{
    struct lcollect *c = arg;
    assert_true(c->n < 16);
    c->recs[c->n] = *rec;
    c->recs[c->n].target = rec->target ? strdup(rec->target) : NULL; /* the scan's is freed after */
    c->n++;
    if (c->del_in_scan && rec->id == c->del_in_scan)
        assert_int_equal(emm_catalog_del(c->cat, rec->id), 0);
    return 0;
}

static void
lscan(struct emm_catalog *cat, struct lcollect *c, uint64_t del_in_scan)
{
    memset(c, 0, sizeof(*c));
    c->cat = cat;
    c->del_in_scan = del_in_scan;
    assert_int_equal(emm_catalog_scan(cat, lcollect_fn, c), 0);
}

static void
lfree(struct lcollect *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->recs[i].target);
}

static void
assert_link_equal(const struct emm_catalog_rec *a, const struct emm_catalog_rec *b)
{
    assert_rec_equal(a, b);
    assert_true(a->link == b->link);
    if (b->target == NULL)
        assert_null(a->target);
    else
        assert_string_equal(a->target, b->target);
}

static uint32_t
format_of(const char *dir)
{
    MDB_env *env = raw_env(dir);
    uint32_t f = read_format(env, "meta");
    mdb_env_close(env);
    return f;
}

static void
links(const char *dir)
{
    struct emm_catalog *cat;
    struct lcollect col;
    char *longt = malloc(EMM_LINK_MAX + 1);
    assert_non_null(longt);
    memset(longt, 'x', EMM_LINK_MAX);
    longt[EMM_LINK_MAX] = '\0';

    struct emm_catalog_rec f = mkrec(1, "file", 77), d = mkrec(2, "dir", 0);
    f.type = EMM_CAT_FILE;
    d.type = EMM_CAT_DIR;
    f.parent = d.parent = EMM_CATALOG_ROOT;
    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    struct emm_catalog_rec plain[2] = {f, d};
    assert_int_equal(emm_catalog_update(cat, plain, 2, NULL, 0), 0);
    emm_catalog_close(cat);
    if (dir)
        assert_int_equal(format_of(dir), 2); /* no link yet: an older emmd still opens it */

    struct emm_catalog_rec sym = mkrec(3, "sym", 0), hl = mkrec(4, "second name", 0);
    sym.type = EMM_CAT_SYMLINK;
    sym.parent = 2;
    sym.target = longt;
    hl.type = EMM_CAT_HLINK;
    hl.parent = 2;
    hl.link = 1;
    assert_int_equal(emm_catalog_open(dir, &cat), 0);
    if (!dir) {
        assert_int_equal(emm_catalog_update(cat, plain, 2, NULL, 0), 0);
    }
    struct emm_catalog_rec two[2] = {sym, hl};
    assert_int_equal(emm_catalog_update(cat, two, 2, NULL, 0), 0);
    longt[0] = 'y'; /* the catalog copied the target */
    lscan(cat, &col, 0);
    assert_int_equal(col.n, 4);
    longt[0] = 'x';
    assert_link_equal(&col.recs[2], &sym);
    assert_link_equal(&col.recs[3], &hl);
    assert_null(col.recs[0].target);
    assert_int_equal(strlen(col.recs[2].target), EMM_LINK_MAX);
    lfree(&col);
    /* a new target replaces the old */
    sym.target = "../elsewhere";
    assert_int_equal(emm_catalog_put(cat, &sym), 0);
    if (dir) {
        emm_catalog_close(cat);
        assert_int_equal(format_of(dir), 3);
        assert_int_equal(emm_catalog_open(dir, &cat), 0);
    }
    lscan(cat, &col, 3); /* and a symlink deleted while the scan holds it */
    assert_int_equal(col.n, 4);
    assert_link_equal(&col.recs[0], &f);
    assert_link_equal(&col.recs[2], &sym);
    assert_link_equal(&col.recs[3], &hl);
    lfree(&col);
    lscan(cat, &col, 0);
    assert_int_equal(col.n, 3);
    assert_link_equal(&col.recs[2], &hl);
    lfree(&col);
    emm_catalog_close(cat);
    if (dir) {
        assert_int_equal(emm_catalog_open(dir, &cat), 0); /* format 3 opens */
        lscan(cat, &col, 0);
        assert_int_equal(col.n, 3);
        lfree(&col);
        emm_catalog_close(cat);
    }
    free(longt);
}

static void
test_links(void **state)
{
    char dir[512];
    (void)state;
    links(NULL);
    links(fresh_dir("links", dir, sizeof(dir)));
}

/* A version-3 record written by hand: 80 fixed bytes, name, target. */
static size_t
v3_record(unsigned char *buf, uint32_t type, const char *name, uint32_t tlen, const char *target,
          size_t real_tlen)
{
    size_t nlen = strlen(name);
    unsigned char *p = buf + 8;
    memset(buf, 0, 8 + 80);
    le32(buf, 3);
    le32(buf + 4, (uint32_t)(80 + nlen + real_tlen));
    le64(p, 9); /* id */
    le32(p + 28, (uint32_t)nlen);
    le32(p + 64, type);
    le64(p + 68, 1);
    le32(p + 76, tlen);
    memcpy(p + 80, name, nlen);
    memcpy(p + 80 + nlen, target, real_tlen);
    return 8 + 80 + nlen + real_tlen;
}

static int
count_fn(void *arg, const struct emm_catalog_rec *rec)
{
    (void)rec;
    (*(int *)arg)++;
    return 0;
}

/* Malformed version-3 records do not load: the scan fails (emmd then refuses
 * the filesystem) rather than inventing a file. */
static void
test_bad_link_records(void **state)
{
    static const struct {
        const char *what;
        uint32_t type, tlen;
        size_t real;
    } bad[] = {
        {"a file in a version-3 record", EMM_CAT_FILE, 0, 0},
        {"a symlink without a target", EMM_CAT_SYMLINK, 0, 0},
        {"a target past EMM_LINK_MAX", EMM_CAT_SYMLINK, EMM_LINK_MAX + 1, EMM_LINK_MAX + 1},
        {"a target longer than the record", EMM_CAT_SYMLINK, 40, 4},
        {"an unknown type", 7, 0, 0},
    };
    static char big[EMM_LINK_MAX + 2];
    unsigned char buf[8 + 80 + 64 + EMM_LINK_MAX + 2];
    (void)state;

    memset(big, 'z', sizeof(big) - 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char dir[512], name[32];
        snprintf(name, sizeof(name), "badlink%zu", i);
        fresh_dir(name, dir, sizeof(dir));
        MDB_env *env = raw_env(dir);
        MDB_txn *txn;
        MDB_dbi r, m;
        unsigned char key[8] = {0, 0, 0, 0, 0, 0, 0, 9}, b[4];
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_dbi_open(txn, "records", MDB_CREATE, &r), 0);
        assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &m), 0);
        put_raw(txn, r, key, 8, buf,
                v3_record(buf, bad[i].type, "x", bad[i].tlen, big, bad[i].real));
        le32(b, 3);
        put_raw(txn, m, "format", 6, b, 4);
        assert_int_equal(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
        struct emm_catalog *cat;
        int n = 0;
        assert_int_equal(emm_catalog_open(dir, &cat), 0);
        int rc = emm_catalog_scan(cat, count_fn, &n);
        if (rc >= 0)
            fail_msg("%s: loaded (%d records)", bad[i].what, n);
        emm_catalog_close(cat);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_volatile_basic),   cmocka_unit_test(test_persistent_basic),
        cmocka_unit_test(test_volatile_many),    cmocka_unit_test(test_persistent_many),
        cmocka_unit_test(test_delete_in_scan),   cmocka_unit_test(test_persistent_reopen),
        cmocka_unit_test(test_volatile_forgets), cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_threads),          cmocka_unit_test(test_update),
        cmocka_unit_test(test_flat_upgrade),     cmocka_unit_test(test_future_format),
        cmocka_unit_test(test_flat_upgrade_shared_env),
        cmocka_unit_test(test_links),            cmocka_unit_test(test_bad_link_records),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
