/*
 * test_lmdb_maps.c - lmdb_maps.c, the resident-set bound of LMDB maps: an
 * environment in a mkdtemp directory holds 48 MiB of 4 KiB values (96 MiB of
 * data.mdb, written through LMDB's pwrite, so the page cache holds it in large
 * folios). One read transaction walks every value, checking every byte, and
 * notes each page as the lmdb backend does: the trims that drop the map's pages
 * happen under that live transaction, and every byte must still match; the
 * process's RssFile must stay within the budget plus what a few faults map
 * between two checks. Without the notes (or the trim) it grows by the file's
 * size.
 *
 * Locking: single-threaded.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmdb_shared.h"

#define NVALUES (48u * 256u) /* 48 MiB of 4 KiB values */
#define VSIZE 4096u

static long
rss_file_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long v = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "RssFile:", 8) == 0)
            v = strtol(line + 8, NULL, 10);
    if (f != NULL)
        fclose(f);
    return v;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void
fill(unsigned char *v, uint32_t i)
{
    for (uint32_t j = 0; j < VSIZE; j += 4) {
        uint32_t x = i * 2654435761u + j;
        memcpy(v + j, &x, 4);
    }
}

static void
test_trim_under_live_transaction(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_lmdb_maps.XXXXXX";
    assert_non_null(mkdtemp(dir));
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)256 << 20), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_NOSYNC, 0600), 0);
    static unsigned char v[VSIZE], want[VSIZE];
    for (uint32_t i = 0; i < NVALUES;) {
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
        for (uint32_t n = 0; n < 1024 && i < NVALUES; n++, i++) {
            uint32_t kb = __builtin_bswap32(i);
            MDB_val k = {4, &kb}, d = {VSIZE, v};
            fill(v, i);
            assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
        }
        assert_int_equal(mdb_txn_commit(txn), 0);
    }

    struct emm_lmdb_shared sh;
    memset(&sh, 0, sizeof(sh));
    pthread_rwlock_init(&sh.resize, NULL);
    emm_lmdb_maps_add(&sh, env);
    assert_non_null(sh.map_addr);
    struct emm_lmdb_maps_stats st;
    emm_lmdb_maps_stats(&st);
    assert_int_equal(st.maps, 1);
    uint64_t trims0 = st.trims;

    long start = rss_file_kib(), peak = start;
    assert_true(start > 0);
    pthread_rwlock_rdlock(&sh.resize);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    MDB_val k, d;
    uint32_t seen = 0;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT), seen++) {
        uint32_t kb;
        memcpy(&kb, k.mv_data, 4);
        assert_int_equal(__builtin_bswap32(kb), seen);
        assert_int_equal(d.mv_size, VSIZE);
        fill(want, seen);
        assert_memory_equal(d.mv_data, want, VSIZE);
        emm_lmdb_maps_note(1); /* as the backend does, inside the transaction */
        long now = rss_file_kib();
        if (now > peak)
            peak = now;
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    assert_int_equal(seen, NVALUES);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&sh.resize);

    emm_lmdb_maps_stats(&st);
    print_message("RssFile %ld KiB at start, peak %ld KiB; %" PRIu64 " trims, %" PRIu64
                  " checks; limit %" PRIu64 " KiB\n",
                  start, peak, st.trims - trims0, st.checks, st.limit_bytes >> 10);
    assert_true(st.trims > trims0);
    /* The budget (2 MiB) plus what the faults between two checks (4 pages,
     * each up to a 2 MiB folio) can map; the file is 96 MiB. */
    assert_true(peak - start <= (long)((EMM_LMDB_MAP_BUDGET >> 10) + 4 * 2048 + 2048));

    emm_lmdb_maps_del(&sh);
    emm_lmdb_maps_stats(&st);
    assert_int_equal(st.maps, 0);
    pthread_rwlock_destroy(&sh.resize);
    mdb_env_close(env);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_under_live_transaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
