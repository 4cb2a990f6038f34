/*
 * lmdbread.c - the cost of one page read on emm's lmdb backend against raw
 * LMDB. Not a test: it prints numbers (bench/README.md, "lmdbread").
 *
 * Builds an lmdb backend stack the way emmd does (emm_backend_open + start,
 * lmdb.path = DIR/lmdb), writes NPAGES pages of object 7 through
 * emm_backend_write, then times random single-page reads of those pages, in
 * one fixed random order, four ways, on the same environment (hot: the map is
 * in the page cache after a warm-up pass, as it is for a busy emmd):
 *
 *   emm_read       emm_backend_read(b, 7, page, 1, ...): the backend's read
 *                  path as the standard pager calls it (host wrapper, pooled
 *                  read transaction renewed per call, cursor SET_RANGE, memcpy)
 *   emm_read16     emm_backend_read of 16 contiguous pages at a random start,
 *                  per page (what a clustered fault would cost)
 *   raw_txn        mdb_txn_renew + mdb_get + memcpy + mdb_txn_reset per page:
 *                  the same short-transaction policy, without emm
 *   raw_get        mdb_get + memcpy in one long read transaction: LMDB's floor
 *
 * and prints "NAME ns_per_page=..." lines (median of REPS passes), then
 * "ratio emm_read/raw_txn=..." .
 *
 * Usage: lmdbread DIR [NPAGES [NREADS [REPS]]]   (defaults 65536 200000 5)
 * DIR must not exist or be empty; it is left behind (remove it).
 *
 * Build (bench/backends.sh does it):
 *   cc -O2 -I SRC/emm -I SRC/emm/include bench/lmdbread.c BUILD/lib/libemm.a \
 *      -llmdb -lzstd -linih -lpthread -ldl -o lmdbread
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend_host.h"
#include "log.h"

#define PS EMM_PAGE_SIZE
#define OBJ 7u

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "lmdbread: %s: %s\n", what, rc < 0 ? strerror(-rc) : mdb_strerror(rc));
    exit(1);
}

/* Word 0 of page p says p; the rest is filler that depends on p. */
static void fill_page(unsigned char *pg, uint64_t p)
{
    uint64_t s = p * 0x9E3779B97F4A7C15ull + 1;
    for (unsigned i = 0; i < PS / 8; i++) {
        uint64_t w = i == 0 ? p : xorshift(&s);
        memcpy(pg + i * 8, &w, 8);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

static void page_key(unsigned char *k, uint64_t obj, uint64_t page)
{
    for (int i = 0; i < 8; i++) {
        k[i] = (unsigned char)(obj >> (56 - 8 * i));
        k[8 + i] = (unsigned char)(page >> (56 - 8 * i));
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: lmdbread DIR [NPAGES [NREADS [REPS]]]\n");
        return 2;
    }
    const char *dir = argv[1];
    uint64_t npages = argc > 2 ? strtoull(argv[2], NULL, 0) : 65536;
    size_t nreads = argc > 3 ? strtoull(argv[3], NULL, 0) : 200000;
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    if (npages < 16 || nreads == 0 || reps < 1 || reps > 100) {
        fprintf(stderr, "lmdbread: bad arguments\n");
        return 2;
    }
    emm_log_init("lmdbread", 0, EMM_LOG_WARN);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        die(dir, -errno);

    /* the stack, as emmd builds it from "[fs bench] backend = lmdb" */
    char path[4096], mapsize[32];
    snprintf(path, sizeof(path), "%s/lmdb", dir);
    snprintf(mapsize, sizeof(mapsize), "%" PRIu64 "M", (npages * 2 * PS * 3 / 2 >> 20) + 64);
    struct emm_backend_key kv[2] = {
        {.key = "lmdb.path", .value = path, .line = 3},
        {.key = "lmdb.map-size", .value = mapsize, .line = 4},
    };
    struct emm_backend_args args = {.spec = "lmdb", .fs_name = "bench", .file = "lmdbread",
                                    .line = 2, .state_dir = dir, .keys = kv, .nkeys = 2};
    struct emm_backend *b;
    char err[512] = "";
    int rc = emm_backend_open(&args, &b, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "lmdbread: %s\n", err);
        return 1;
    }
    if ((rc = emm_backend_start(b)) < 0)
        die("emm_backend_start", rc);

    /* write the pages, 1024 per call */
    unsigned char *wbuf = malloc(1024 * PS), *buf = malloc(16 * PS);
    uint8_t present[16];
    if (!wbuf || !buf)
        die("malloc", -ENOMEM);
    double t0 = now();
    for (uint64_t p = 0; p < npages; p += 1024) {
        uint32_t n = npages - p < 1024 ? (uint32_t)(npages - p) : 1024;
        for (uint32_t i = 0; i < n; i++)
            fill_page(wbuf + (size_t)i * PS, p + i);
        if ((rc = emm_backend_write(b, OBJ, p, n, wbuf)) < 0)
            die("emm_backend_write", rc);
    }
    double twrite = now() - t0;

    /* the same environment, raw */
    MDB_env *env = emm_backend_lmdb_env(b);
    if (!env)
        die("emm_backend_lmdb_env", -EINVAL);
    MDB_txn *txn;
    MDB_dbi dbi;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0)
        die("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, "pages", 0, &dbi)) != 0)
        die("mdb_dbi_open pages", rc);
    if ((rc = mdb_txn_commit(txn)) != 0)
        die("mdb_txn_commit", rc);

    /* one random order, shared by every method */
    uint64_t seed = 0x5eed1234abcdull;
    uint64_t *idx = malloc(nreads * sizeof(*idx)), *idx16 = malloc(nreads * sizeof(*idx16));
    double *t_emm = calloc((size_t)reps, sizeof(double)), *t_emm16 = calloc((size_t)reps, sizeof(double));
    double *t_txn = calloc((size_t)reps, sizeof(double)), *t_get = calloc((size_t)reps, sizeof(double));
    if (!idx || !idx16 || !t_emm || !t_emm16 || !t_txn || !t_get)
        die("malloc", -ENOMEM);
    for (size_t i = 0; i < nreads; i++) {
        idx[i] = xorshift(&seed) % npages;
        idx16[i] = xorshift(&seed) % (npages - 15);
    }

    /* warm-up: touch every page of the map once, and check the data */
    for (uint64_t p = 0; p < npages; p += 16) {
        if ((rc = emm_backend_read(b, OBJ, p, 16, buf, present)) < 0)
            die("emm_backend_read (warm-up)", rc);
        for (unsigned i = 0; i < 16 && p + i < npages; i++) {
            uint64_t w;
            memcpy(&w, buf + (size_t)i * PS, 8);
            if (!present[i] || w != p + i) {
                fprintf(stderr, "lmdbread: page %" PRIu64 " reads back wrong\n", p + i);
                return 1;
            }
        }
    }

    uint64_t sum = 0, want = 0;
    for (size_t i = 0; i < nreads; i++)
        want += idx[i];
    MDB_txn *rt;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &rt)) != 0)
        die("mdb_txn_begin (raw)", rc);
    mdb_txn_reset(rt);

    for (int r = 0; r < reps; r++) {
        uint64_t w;
        /* emm_read */
        sum = 0;
        t0 = now();
        for (size_t i = 0; i < nreads; i++) {
            if ((rc = emm_backend_read(b, OBJ, idx[i], 1, buf, present)) < 0)
                die("emm_backend_read", rc);
            memcpy(&w, buf, 8);
            sum += w;
        }
        t_emm[r] = (now() - t0) / (double)nreads * 1e9;
        if (sum != want)
            die("emm_read: wrong data", -EIO);

        /* emm_read16 */
        t0 = now();
        for (size_t i = 0; i < nreads / 16 + 1; i++) {
            if ((rc = emm_backend_read(b, OBJ, idx16[i], 16, buf, present)) < 0)
                die("emm_backend_read 16", rc);
            memcpy(&w, buf + 15 * PS, 8);
            if (w != idx16[i] + 15)
                die("emm_read16: wrong data", -EIO);
        }
        t_emm16[r] = (now() - t0) / (double)((nreads / 16 + 1) * 16) * 1e9;

        /* raw_txn: renew, get, copy, reset per page */
        sum = 0;
        t0 = now();
        for (size_t i = 0; i < nreads; i++) {
            unsigned char kb[16];
            MDB_val k = {16, kb}, v;
            page_key(kb, OBJ, idx[i]);
            if ((rc = mdb_txn_renew(rt)) != 0)
                die("mdb_txn_renew", rc);
            if ((rc = mdb_get(rt, dbi, &k, &v)) != 0)
                die("mdb_get", rc);
            memcpy(buf, v.mv_data, PS);
            mdb_txn_reset(rt);
            memcpy(&w, buf, 8);
            sum += w;
        }
        t_txn[r] = (now() - t0) / (double)nreads * 1e9;
        if (sum != want)
            die("raw_txn: wrong data", -EIO);

        /* raw_get: one long transaction */
        sum = 0;
        if ((rc = mdb_txn_renew(rt)) != 0)
            die("mdb_txn_renew", rc);
        t0 = now();
        for (size_t i = 0; i < nreads; i++) {
            unsigned char kb[16];
            MDB_val k = {16, kb}, v;
            page_key(kb, OBJ, idx[i]);
            if ((rc = mdb_get(rt, dbi, &k, &v)) != 0)
                die("mdb_get", rc);
            memcpy(buf, v.mv_data, PS);
            memcpy(&w, buf, 8);
            sum += w;
        }
        t_get[r] = (now() - t0) / (double)nreads * 1e9;
        mdb_txn_reset(rt);
        if (sum != want)
            die("raw_get: wrong data", -EIO);
    }
    mdb_txn_abort(rt);

    double e = median(t_emm, reps), e16 = median(t_emm16, reps);
    double x = median(t_txn, reps), g = median(t_get, reps);
    printf("pages=%" PRIu64 " (%.0f MiB) reads=%zu reps=%d write=%.0f ns/page\n", npages,
           (double)npages * PS / 1048576.0, nreads, reps, twrite / (double)npages * 1e9);
    printf("emm_read    ns_per_page=%.0f\n", e);
    printf("emm_read16  ns_per_page=%.0f\n", e16);
    printf("raw_txn     ns_per_page=%.0f\n", x);
    printf("raw_get     ns_per_page=%.0f\n", g);
    printf("ratio emm_read/raw_txn=%.2f emm_read/raw_get=%.2f\n", e / x, e / g);
    emm_backend_close(b);
    free(wbuf), free(buf), free(idx), free(idx16), free(t_emm), free(t_emm16), free(t_txn), free(t_get);
    return 0;
}
