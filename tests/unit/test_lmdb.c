/*
 * test_lmdb.c - the lmdb backend: sparse pages, discard, seek and page counts;
 * persistence across stop/start; map growth from a tiny map-size; ENOSPC at
 * max-map-size without losing earlier pages; a writer beside three readers
 * while the map grows; the catalog inside the environment; a second instance
 * on one path refused; and a writer killed with SIGKILL (everything synced, and
 * everything committed, is there after reopening). The conformance suite runs
 * on "lmdb" from test_backend.c.
 *
 * Each test builds its own stack in its own mkdtemp directory; no shared state.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend_host.h"
#include "catalog.h"
#include "backend_fixture.h"



static struct fix *
lmdb_fix_new(void)
{
    struct fix *f = fix_new("lmdb");
    f->args.spec = "lmdb";
    return f;
}

static void
fix_key(struct fix *f, const char *key, const char *value)
{
    struct emm_backend_key *kv = &f->kv[f->args.nkeys];
    kv->key = key;
    kv->value = value;
    kv->line = 10 + (int)f->args.nkeys++;
}

/* Opens and starts f's stack; returns the result and keeps the error text. */
static int
fix_open(struct fix *f)
{
    f->err[0] = '\0';
    int r = emm_backend_open(&f->args, &f->b, f->err, sizeof(f->err));
    if (r == 0) {
        r = emm_backend_start(f->b);
        if (r < 0) {
            emm_backend_close(f->b);
            f->b = NULL;
        }
    }
    return r;
}

static void
fix_close(struct fix *f)
{
    emm_backend_close(f->b);
    f->b = NULL;
}

static int
wr_r(struct emm_backend *b, uint64_t obj, uint64_t page, uint32_t n, uint64_t version)
{
    void *buf = malloc((size_t)n * PS);
    fill(buf, obj, page, n, version);
    int r = emm_backend_write(b, obj, page, n, buf);
    free(buf);
    return r;
}

static void
wr(struct emm_backend *b, uint64_t obj, uint64_t page, uint32_t n, uint64_t version)
{
    assert_int_equal(wr_r(b, obj, page, n, version), 0);
}

/* Reads strlen(map) pages and checks each against map ('1' stored, '0' hole). */
static void
rd_expect(struct emm_backend *b, uint64_t obj, uint64_t page, const char *map, uint64_t version)
{
    uint32_t n = (uint32_t)strlen(map);
    char *buf = malloc((size_t)n * PS);
    uint8_t *present = malloc(n);
    memset(buf, 0xAA, (size_t)n * PS);
    assert_int_equal(emm_backend_read(b, obj, page, n, buf, present), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (map[i] == '1') {
            assert_int_equal(present[i], 1);
            assert_true(check(buf + (size_t)i * PS, obj, page + i, 1, version));
        } else {
            assert_int_equal(present[i], 0);
            assert_true(is_zero(buf + (size_t)i * PS, PS));
        }
    }
    free(buf);
    free(present);
}

/* Checks n stored pages from page, all of one version. */
static void
rd_all(struct emm_backend *b, uint64_t obj, uint64_t page, uint32_t n, uint64_t version)
{
    char *buf = malloc((size_t)n * PS);
    uint8_t *present = malloc(n);
    assert_int_equal(emm_backend_read(b, obj, page, n, buf, present), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (!present[i] || !check(buf + (size_t)i * PS, obj, page + i, 1, version))
            fail_msg("object %" PRIu64 " page %" PRIu64 ": present %d, content %s", obj,
                     page + i, present[i], present[i] ? "wrong" : "-");
    }
    free(buf);
    free(present);
}

static uint64_t
stored(struct emm_backend *b, uint64_t obj)
{
    uint64_t n = 99;
    assert_int_equal(emm_backend_stored_pages(b, obj, &n), 0);
    return n;
}

/* The value of "lmdb.KEY:" in the info text, or UINT64_MAX. */
static uint64_t
info_value(struct emm_backend *b, const char *key)
{
    char buf[4096], want[64];
    assert_int_equal(emm_backend_info(b, buf, sizeof(buf)), 0);
    snprintf(want, sizeof(want), "lmdb.%s:", key);
    const char *s = strstr(buf, want);
    return s ? strtoull(s + strlen(want), NULL, 10) : UINT64_MAX;
}

/* ---- basics ------------------------------------------------------------------- */

static void
t_basic(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();
    uint64_t at = 0;
    char buf[4096];

    assert_int_equal(fix_open(f), 0);
    assert_true(f->b->flags & EMM_BACKEND_PERSISTENT);
    assert_false(f->b->flags & EMM_BACKEND_NONBLOCKING);
    assert_int_equal(f->b->thread_model, EMM_THREAD_PARALLEL);
    rd_expect(f->b, 1, 0, "0000", 0);
    assert_int_equal(stored(f->b, 1), 0);

    wr(f->b, 1, 3, 4, 1);                 /* pages 3..6 */
    wr(f->b, 1, 5, 1, 1);                 /* overwrite: same content */
    wr(f->b, 2, 4, 1, 2);                 /* neighbour object */
    wr(f->b, 2, 9, 1, 2);
    assert_int_equal(emm_backend_seek(f->b, 2, 4, 0, &at), 0);
    assert_int_equal(at, 5);
    rd_expect(f->b, 1, 0, "000111100", 1);
    rd_expect(f->b, 2, 3, "010", 2);
    assert_int_equal(stored(f->b, 1), 4);
    assert_int_equal(stored(f->b, 2), 2);
    wr(f->b, 1, 4, 1, 7);                 /* overwrite with a new version */
    rd_expect(f->b, 1, 4, "1", 7);
    assert_int_equal(stored(f->b, 1), 4);

    /* Seek across the two objects' boundary never leaks into object 2. */
    assert_int_equal(emm_backend_seek(f->b, 1, 0, 1, &at), 0);
    assert_int_equal(at, 3);
    assert_int_equal(emm_backend_seek(f->b, 1, 3, 0, &at), 0);
    assert_int_equal(at, 7);
    assert_int_equal(emm_backend_seek(f->b, 1, 7, 1, &at), -ENXIO);
    assert_int_equal(emm_backend_seek(f->b, 0, 0, 1, &at), -ENXIO);
    assert_int_equal(emm_backend_seek(f->b, 2, 0, 1, &at), 0);
    assert_int_equal(at, 4);
    /* The last writable page index (the host refuses first + n overflowing). */
    wr(f->b, 3, UINT64_MAX - 1, 1, 1);
    assert_int_equal(emm_backend_seek(f->b, 3, 5, 1, &at), 0);
    assert_true(at == UINT64_MAX - 1);
    assert_int_equal(emm_backend_seek(f->b, 3, UINT64_MAX - 1, 0, &at), 0);
    assert_true(at == UINT64_MAX);
    rd_expect(f->b, 3, UINT64_MAX - 1, "1", 1);
    assert_int_equal(emm_backend_discard(f->b, 3, 10, UINT64_MAX), 0);
    assert_int_equal(stored(f->b, 3), 0);

    /* Discard a middle range, then the rest. */
    assert_int_equal(emm_backend_discard(f->b, 1, 4, 2), 0);
    rd_expect(f->b, 1, 2, "01001", 1);
    assert_int_equal(stored(f->b, 1), 2);
    assert_int_equal(emm_backend_seek(f->b, 1, 4, 1, &at), 0);
    assert_int_equal(at, 6);
    assert_int_equal(emm_backend_discard(f->b, 1, 0, UINT64_MAX), 0);
    assert_int_equal(stored(f->b, 1), 0);
    assert_int_equal(stored(f->b, 2), 2); /* untouched */
    assert_int_equal(emm_backend_sync(f->b, 2), 0);

    assert_int_equal(emm_backend_info(f->b, buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "layer:lmdb\n"));
    assert_non_null(strstr(buf, "lmdb.stored_pages:2\n"));
    assert_true(info_value(f->b, "map_size") == (uint64_t)1 << 30);
    assert_true(info_value(f->b, "map_used") > 0);
    assert_true(info_value(f->b, "max_map_size") == (uint64_t)64 << 30);
    char want[128];
    snprintf(want, sizeof(want), "lmdb.path:%s/fs/t/lmdb\n", f->dir);
    assert_non_null(strstr(buf, want));
    fix_free(f);
}

/* A long discard spans several transactions; a hole seek walks several. */
static void
t_large_ranges(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();
    uint64_t at = 0;
    const uint32_t n = 2500; /* > two write, discard and scan chunks of 1024 */

    assert_int_equal(fix_open(f), 0);
    wr(f->b, 9, 0, n, 1);
    wr(f->b, 10, 0, 1, 1);
    assert_int_equal(stored(f->b, 9), n);
    rd_all(f->b, 9, 0, n, 1);
    assert_int_equal(emm_backend_seek(f->b, 9, 0, 0, &at), 0);
    assert_int_equal(at, n);
    assert_int_equal(emm_backend_seek(f->b, 9, 7, 0, &at), 0);
    assert_int_equal(at, n);
    assert_int_equal(emm_backend_discard(f->b, 9, 1, n - 2), 0);
    assert_int_equal(stored(f->b, 9), 2);
    rd_expect(f->b, 9, 0, "1000", 1);
    rd_expect(f->b, 9, n - 2, "01", 1);
    wr(f->b, 9, 0, n, 2);
    assert_int_equal(emm_backend_discard(f->b, 9, 0, UINT64_MAX), 0);
    assert_int_equal(stored(f->b, 9), 0);
    assert_int_equal(stored(f->b, 10), 1);
    fix_free(f);
}

static void
t_restart(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();

    assert_int_equal(fix_open(f), 0);
    wr(f->b, 12, 3, 2, 9);
    wr(f->b, 12, (uint64_t)1 << 28, 1, 9);
    wr(f->b, 13, 0, 1, 9);
    assert_int_equal(emm_backend_discard(f->b, 13, 0, 1), 0);
    fix_close(f);
    assert_int_equal(fix_open(f), 0);
    rd_expect(f->b, 12, 2, "0110", 9);
    rd_expect(f->b, 12, (uint64_t)1 << 28, "1", 9);
    assert_int_equal(stored(f->b, 12), 3);
    assert_int_equal(stored(f->b, 13), 0);
    fix_close(f);
    /* And once more, with a custom path. */
    char path[128];
    snprintf(path, sizeof(path), "%s/elsewhere/env", f->dir);
    fix_key(f, "lmdb.path", path);
    assert_int_equal(fix_open(f), 0);
    assert_int_equal(stored(f->b, 12), 0);
    wr(f->b, 12, 0, 1, 3);
    fix_close(f);
    assert_int_equal(fix_open(f), 0);
    rd_expect(f->b, 12, 0, "1", 3);
    fix_free(f);
}

/* ---- map growth and its limit --------------------------------------------------- */

static void
t_growth(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();

    fix_key(f, "lmdb.map-size", "64K");
    assert_int_equal(fix_open(f), 0);
    assert_true(info_value(f->b, "map_size") == 64 << 10);
    /* 8 MiB in 64-page transactions, then single pages. */
    for (uint64_t p = 0; p < 2048; p += 64)
        wr(f->b, 1, p, 64, 1);
    for (uint64_t p = 0; p < 64; p++)
        wr(f->b, 2, p * 3, 1, 1);
    assert_true(info_value(f->b, "map_size") >= 8 << 20);
    assert_true(info_value(f->b, "map_grows") >= 7);
    rd_all(f->b, 1, 0, 2048, 1);
    assert_int_equal(stored(f->b, 1), 2048);
    assert_int_equal(stored(f->b, 2), 64);
    fix_close(f);
    /* The grown map is kept. */
    assert_int_equal(fix_open(f), 0);
    assert_true(info_value(f->b, "map_size") >= 8 << 20);
    rd_all(f->b, 1, 0, 2048, 1);
    fix_free(f);
}

static void
t_max_map_size(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();
    uint64_t pages = 0;
    int r = 0;

    fix_key(f, "lmdb.map-size", "1M");
    fix_key(f, "lmdb.max-map-size", "4M");
    assert_int_equal(fix_open(f), 0);
    for (int i = 0; i < 1000 && (r = wr_r(f->b, 1, pages, 16, 1)) == 0; i++)
        pages += 16;
    assert_int_equal(r, -ENOSPC);
    assert_true(pages >= 128); /* at least half the map holds pages */
    assert_true(info_value(f->b, "map_size") == 4 << 20);
    assert_true(info_value(f->b, "enospc") >= 1);
    /* The failed call wrote nothing; earlier pages are whole. */
    assert_int_equal(stored(f->b, 1), pages);
    rd_all(f->b, 1, 0, (uint32_t)pages, 1);
    rd_expect(f->b, 1, pages, "0000000000000000", 1);
    /* Again: still ENOSPC, for that call only. */
    assert_int_equal(wr_r(f->b, 1, pages, 16, 1), -ENOSPC);
    /* Freeing pages makes room again. */
    assert_int_equal(emm_backend_discard(f->b, 1, 0, pages / 2), 0);
    wr(f->b, 2, 0, 8, 2);
    assert_int_equal(emm_backend_sync(f->b, UINT64_MAX), 0);
    fix_close(f);
    assert_int_equal(fix_open(f), 0);
    assert_int_equal(stored(f->b, 1), pages - pages / 2);
    rd_all(f->b, 1, pages / 2, (uint32_t)(pages - pages / 2), 1);
    rd_all(f->b, 2, 0, 8, 2);
    fix_free(f);
}

/* ---- threads --------------------------------------------------------------------- */

#define T_PAGES 1536

struct tw {
    struct emm_backend *b;
    int id;
    int failed;
    _Atomic int *done;
    uint64_t reads;
};

static void *
t_writer(void *arg)
{
    struct tw *w = arg;
    char *buf = malloc(8 * PS);
    for (uint64_t p = 0; p < T_PAGES && !w->failed; p += 8) {
        fill(buf, 5, p, 8, 1);
        if (emm_backend_write(w->b, 5, p, 8, buf) != 0)
            w->failed = 1;
        if (p % 64 == 0 && emm_backend_discard(w->b, 6, p, 8) != 0)
            w->failed = 2;
    }
    free(buf);
    *w->done = 1;
    return NULL;
}

static void *
t_reader(void *arg)
{
    struct tw *w = arg;
    char *buf = malloc(16 * PS);
    uint8_t present[16];
    unsigned seed = (unsigned)w->id;

    while (!*w->done && !w->failed) {
        uint64_t first = (uint64_t)(rand_r(&seed) % T_PAGES), at, n;
        if (emm_backend_read(w->b, 5, first, 16, buf, present) != 0) {
            w->failed = 1;
            break;
        }
        for (unsigned i = 0; i < 16; i++) {
            if (present[i] ? !check(buf + (size_t)i * PS, 5, first + i, 1, 1)
                           : !is_zero(buf + (size_t)i * PS, PS))
                w->failed = 2;
        }
        /* Object 6 (written before the threads) stays whole where not discarded. */
        if (emm_backend_read(w->b, 6, first, 1, buf, present) != 0 ||
            (present[0] && !check(buf, 6, first, 1, 6)))
            w->failed = 3;
        if (emm_backend_stored_pages(w->b, 5, &n) != 0 || n > T_PAGES)
            w->failed = 4;
        int r = emm_backend_seek(w->b, 5, first, 1, &at);
        if (r != 0 && r != -ENXIO)
            w->failed = 5;
        w->reads++;
    }
    free(buf);
    return NULL;
}

static void
t_threads(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();
    pthread_t t[4];
    struct tw w[4];
    _Atomic int done = 0;

    fix_key(f, "lmdb.map-size", "1M"); /* growth happens while readers run */
    assert_int_equal(fix_open(f), 0);
    for (uint64_t p = 0; p < T_PAGES; p += 64)
        wr(f->b, 6, p, 64, 6);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct tw){.b = f->b, .id = i, .done = &done};
        assert_int_equal(pthread_create(&t[i], NULL, i == 0 ? t_writer : t_reader, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        if (w[i].failed)
            fail_msg("thread %d failed at step %d", i, w[i].failed);
    }
    assert_true(info_value(f->b, "map_grows") >= 1);
    rd_all(f->b, 5, 0, T_PAGES, 1);
    assert_int_equal(stored(f->b, 5), T_PAGES);
    assert_int_equal(stored(f->b, 6), T_PAGES - (T_PAGES / 64) * 8);
    fix_free(f);
}

/* ---- the catalog in the environment --------------------------------------------------- */

static struct emm_catalog_rec
mkrec(uint64_t id, const char *name, uint64_t size)
{
    struct emm_catalog_rec r;
    memset(&r, 0, sizeof(r));
    r.id = id;
    r.size = size;
    r.mode = 0644;
    r.mtime_ns = (int64_t)id * 1000;
    snprintf(r.name, sizeof(r.name), "%s", name);
    return r;
}

struct seen {
    uint64_t ids[512];
    uint64_t sizes[512];
    int n;
};

static int
collect(void *arg, const struct emm_catalog_rec *rec)
{
    struct seen *s = arg;
    if (s->n < 512) {
        s->ids[s->n] = rec->id;
        s->sizes[s->n] = rec->size;
        s->n++;
    }
    return 0;
}

static void
t_catalog(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();
    struct emm_catalog *c;
    struct MDB_env *env;
    struct seen s;
    uint64_t id1, id2;
    char name[64], path[128];

    /* Only a started lmdb at the bottom has an environment. */
    f->args.spec = "memory";
    assert_int_equal(fix_open(f), 0);
    assert_null(emm_backend_lmdb_env(f->b));
    fix_close(f);
    f->args.spec = "lmdb";
    fix_key(f, "lmdb.map-size", "64K"); /* catalog and pages both grow the map */
    assert_int_equal(emm_backend_open(&f->args, &f->b, f->err, sizeof(f->err)), 0);
    assert_null(emm_backend_lmdb_env(f->b));
    assert_int_equal(emm_backend_start(f->b), 0);
    env = emm_backend_lmdb_env(f->b);
    assert_non_null(env);
    assert_int_equal(emm_catalog_open_env(NULL, &c), -EINVAL);
    assert_null(c);

    fix_close(f);
    assert_int_equal(fix_open(f), 0);
    env = emm_backend_lmdb_env(f->b);
    assert_non_null(env);
    assert_int_equal(emm_catalog_open_env(env, &c), 0);
    assert_int_equal(emm_catalog_new_id(c, &id1), 0);
    assert_int_equal(emm_catalog_new_id(c, &id2), 0);
    assert_true(id2 > id1);
    for (uint64_t i = 0; i < 300; i++) {
        struct emm_catalog_rec r;
        snprintf(name, sizeof(name), "object-%03" PRIu64 "-with-a-longish-name", i);
        r = mkrec(100 + i, name, i * PS);
        assert_int_equal(emm_catalog_put(c, &r), 0);
        wr(f->b, 100 + i, 0, 4, 2);
    }
    assert_int_equal(emm_catalog_del(c, 105), 0);
    assert_int_equal(emm_catalog_del(c, 105), -ENOENT);
    assert_int_equal(emm_backend_discard(f->b, 105, 0, UINT64_MAX), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(emm_catalog_scan(c, collect, &s), 0);
    assert_int_equal(s.n, 299);
    assert_true(info_value(f->b, "map_grows") >= 1);
    assert_true(info_value(f->b, "stored_pages") == 299 * 4);
    /* Close the catalog before the backend, as emmd does. */
    assert_int_equal(emm_catalog_sync(c), 0);
    emm_catalog_close(c);
    fix_close(f);

    /* No catalog directory of its own was made. */
    struct stat st;
    snprintf(path, sizeof(path), "%s/fs/t/catalog", f->dir);
    assert_int_equal(stat(path, &st), -1);

    assert_int_equal(fix_open(f), 0);
    assert_int_equal(emm_catalog_open_env(emm_backend_lmdb_env(f->b), &c), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(emm_catalog_scan(c, collect, &s), 0);
    assert_int_equal(s.n, 299);
    for (int i = 0; i < s.n; i++) {
        uint64_t want = 100 + (uint64_t)i + (i >= 5);
        assert_true(s.ids[i] == want);
        assert_true(s.sizes[i] == (want - 100) * PS);
        rd_expect(f->b, want, 0, "11110", 2);
    }
    assert_int_equal(stored(f->b, 105), 0);
    /* Ids handed out before (and put by hand) are never handed out again. */
    assert_int_equal(emm_catalog_new_id(c, &id1), 0);
    assert_true(id1 >= 400);
    emm_catalog_close(c);
    fix_free(f);
}

/* ---- one environment per path ------------------------------------------------------- */

static void
t_second_instance(void **state)
{
    (void)state;
    struct fix *a = lmdb_fix_new(), *b = lmdb_fix_new();
    char path[128];

    snprintf(path, sizeof(path), "%s/shared", a->dir);
    fix_key(a, "lmdb.path", path);
    fix_key(b, "lmdb.path", path);
    assert_int_equal(fix_open(a), 0);
    wr(a->b, 1, 0, 1, 1);
    assert_int_equal(fix_open(b), -EBUSY);
    assert_null(b->b);
    rd_expect(a->b, 1, 0, "1", 1); /* the first instance is unharmed */
    fix_close(a);
    assert_int_equal(fix_open(b), 0);
    rd_expect(b->b, 1, 0, "1", 1);
    fix_close(b);
    fix_free(b);
    fix_free(a);
}

/* ---- a writer killed with SIGKILL ------------------------------------------------------ */

#define CRASH_SYNCED 64
#define CRASH_COMMITTED 64
#define CRASH_STREAM 1000

/* The child: writes, syncs, writes more, reports each step, then writes single
 * pages until it is killed. Never returns. */
static void
crash_child(struct fix *f, int wfd)
{
    char c;
    if (fix_open(f) != 0)
        _exit(2);
    if (wr_r(f->b, 1, 0, CRASH_SYNCED, 1) != 0 || emm_backend_sync(f->b, 1) != 0)
        _exit(3);
    c = 'S';
    if (write(wfd, &c, 1) != 1)
        _exit(4);
    if (wr_r(f->b, 1, CRASH_SYNCED, CRASH_COMMITTED, 2) != 0)
        _exit(5);
    c = 'C';
    if (write(wfd, &c, 1) != 1)
        _exit(6);
    for (uint64_t p = CRASH_STREAM;; p++)
        if (wr_r(f->b, 2, p, 1, 3) != 0)
            _exit(7);
}

static void
t_crash(void **state)
{
    (void)state;
    struct fix *f = lmdb_fix_new();
    int fds[2], status;
    char got[2];
    pid_t pid;

    fix_key(f, "lmdb.map-size", "1M");
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(f, fds[1]);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &got[0], 1), 1);
    assert_int_equal(read(fds[0], &got[1], 1), 1);
    close(fds[0]);
    assert_int_equal(got[0], 'S');
    assert_int_equal(got[1], 'C');
    usleep(20000); /* let the stream run, then kill it mid-write */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    assert_int_equal(fix_open(f), 0);
    rd_all(f->b, 1, 0, CRASH_SYNCED, 1);
    rd_all(f->b, 1, CRASH_SYNCED, CRASH_COMMITTED, 2);
    assert_int_equal(stored(f->b, 1), CRASH_SYNCED + CRASH_COMMITTED);
    /* The stream: a prefix of whole pages, and a count that agrees with it. */
    uint64_t n = stored(f->b, 2), at = 0;
    if (n > 0) {
        assert_int_equal(emm_backend_seek(f->b, 2, 0, 1, &at), 0);
        assert_int_equal(at, CRASH_STREAM);
        assert_int_equal(emm_backend_seek(f->b, 2, CRASH_STREAM, 0, &at), 0);
        assert_true(at == CRASH_STREAM + n);
        rd_all(f->b, 2, CRASH_STREAM, (uint32_t)n, 3);
    }
    /* And the environment still takes writes. */
    wr(f->b, 1, 500, 4, 4);
    rd_expect(f->b, 1, 499, "011110", 4);
    fix_free(f);
}

/* ---- configuration ------------------------------------------------------------------- */

static void
expect_open_error(const char *key, const char *value, const char *want)
{
    struct fix *f = lmdb_fix_new();
    if (key)
        fix_key(f, key, value);
    assert_true(fix_open(f) < 0);
    if (!strstr(f->err, want))
        fail_msg("%s = %s: got \"%s\", want \"%s\"", key, value, f->err, want);
    fix_free(f);
}

static void
t_config(void **state)
{
    (void)state;
    expect_open_error("lmdb.path", "rel/dir", "test.conf:10: lmdb.path: 'rel/dir' is not an absolute path");
    expect_open_error("lmdb.map-size", "lots", "test.conf:10: lmdb.map-size: 'lots' is not a size");
    expect_open_error("lmdb.max-map-size", "1K", "test.conf:10: lmdb.max-map-size: 1K is out of range");
    expect_open_error("lmdb.colour", "red", "test.conf:10: lmdb.colour: unknown key (lmdb takes: path, map-size, max-map-size)");

    struct fix *f = lmdb_fix_new();
    fix_key(f, "lmdb.map-size", "8M");
    fix_key(f, "lmdb.max-map-size", "4M");
    assert_true(fix_open(f) < 0);
    assert_non_null(strstr(f->err, "test.conf:3: lmdb: map-size (8388608 bytes) is larger than max-map-size"));
    fix_free(f);

    /* A map-size above the default maximum raises the maximum with it. */
    f = lmdb_fix_new();
    fix_key(f, "lmdb.map-size", "65G");
    assert_int_equal(fix_open(f), 0);
    assert_true(info_value(f->b, "max_map_size") == (uint64_t)65 << 30);
    fix_free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_basic),         cmocka_unit_test(t_large_ranges),
        cmocka_unit_test(t_restart),       cmocka_unit_test(t_growth),
        cmocka_unit_test(t_max_map_size),  cmocka_unit_test(t_threads),
        cmocka_unit_test(t_catalog),       cmocka_unit_test(t_second_instance),
        cmocka_unit_test(t_crash),         cmocka_unit_test(t_config),
    };
    return cmocka_run_group_tests_name("lmdb", tests, NULL, NULL);
}
