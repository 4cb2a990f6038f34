/*
 * test_swap_map.c - per-object slot maps (swapfs/slot_map.c) and the object
 * index (swapfs/swap_index.c): a page at a 1 TiB offset costs a few hundred
 * bytes, replace returns the old slot, remove, ordered walks, memory in
 * proportion to the pages stored, and random operations against a plain array.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slot_map.h"
#include "swap_index.h"

static void
test_sparse_tib(void **state)
{
    (void)state;
    struct swp_map *m;
    uint64_t s, old;
    const uint64_t tib = (1ull << 40) / 4096; /* page index at 1 TiB */

    assert_int_equal(swp_map_create(&m), 0);
    size_t empty = swp_map_bytes(m);
    assert_int_equal(swp_map_lookup(m, tib, &s), -ENOENT);
    assert_int_equal(swp_map_insert(m, tib, 42, &old), 0);
    assert_int_equal(old, SWP_NO_SLOT);
    assert_int_equal(swp_map_lookup(m, tib, &s), 0);
    assert_int_equal(s, 42);
    assert_int_equal(swp_map_lookup(m, tib + 1, &s), -ENOENT);
    assert_int_equal(swp_map_lookup(m, tib - 1, &s), -ENOENT);
    assert_int_equal(swp_map_count(m), 1);
    assert_int_equal(swp_map_leaves(m), 1);
    assert_true(swp_map_bytes(m) < 512); /* a few hundred bytes, not megabytes */

    /* the far ends of the index space */
    assert_int_equal(swp_map_insert(m, 0, 1, NULL), 0);
    assert_int_equal(swp_map_insert(m, UINT64_MAX, 2, NULL), 0);
    assert_int_equal(swp_map_lookup(m, UINT64_MAX, &s), 0);
    assert_int_equal(s, 2);
    assert_int_equal(swp_map_count(m), 3);
    assert_int_equal(swp_map_leaves(m), 3);
    assert_true(swp_map_bytes(m) < 1024);
    assert_int_equal(swp_map_insert(m, 5, SWP_NO_SLOT, NULL), -EINVAL);

    /* remove everything: back to an empty map's footprint */
    assert_int_equal(swp_map_remove(m, tib, &old), 0);
    assert_int_equal(old, 42);
    assert_int_equal(swp_map_remove(m, tib, &old), -ENOENT);
    assert_int_equal(swp_map_remove(m, 0, NULL), 0);
    assert_int_equal(swp_map_remove(m, UINT64_MAX, NULL), 0);
    assert_int_equal(swp_map_count(m), 0);
    assert_int_equal(swp_map_leaves(m), 0);
    assert_true(swp_map_bytes(m) <= empty * 4); /* only the table may have grown */
    swp_map_destroy(m);
}

static void
test_replace_remove(void **state)
{
    (void)state;
    struct swp_map *m;
    uint64_t s, old;

    assert_int_equal(swp_map_create(&m), 0);
    assert_int_equal(swp_map_insert(m, 7, 0, &old), 0); /* slot 0 is a slot */
    assert_int_equal(old, SWP_NO_SLOT);
    assert_int_equal(swp_map_insert(m, 7, 9, &old), 0);
    assert_int_equal(old, 0);
    assert_int_equal(swp_map_insert(m, 7, 11, &old), 0);
    assert_int_equal(old, 9);
    assert_int_equal(swp_map_count(m), 1);
    assert_int_equal(swp_map_lookup(m, 7, &s), 0);
    assert_int_equal(s, 11);
    assert_int_equal(swp_map_insert(m, 8, 12, NULL), 0);
    assert_int_equal(swp_map_remove(m, 7, &old), 0);
    assert_int_equal(old, 11);
    assert_int_equal(swp_map_lookup(m, 7, &s), -ENOENT);
    assert_int_equal(swp_map_lookup(m, 8, &s), 0); /* its leaf neighbour stays */
    assert_int_equal(s, 12);
    assert_int_equal(swp_map_count(m), 1);
    swp_map_destroy(m);
}

struct walk {
    uint64_t last;
    uint64_t n;
    int ordered;
    uint64_t stop_after;
};

static int
walk_fn(void *arg, uint64_t index, uint64_t slot)
{
    struct walk *w = arg;
    if (w->n && index <= w->last)
        w->ordered = 0;
    if (slot != (index ^ 0x5555))
        w->ordered = 0;
    w->last = index;
    w->n++;
    return w->stop_after && w->n == w->stop_after ? 99 : 0;
}

static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void
test_iterate_and_memory(void **state)
{
    (void)state;
    struct swp_map *m;
    uint64_t x = 88172645463325292ull;
    const uint64_t span = (1ull << 40) / 4096; /* pages of a 1 TiB object */

    /* 10000 pages scattered over 1 TiB, inserted in random order */
    assert_int_equal(swp_map_create(&m), 0);
    for (int i = 0; i < 10000; i++) {
        uint64_t idx = rnd(&x) % span;
        assert_int_equal(swp_map_insert(m, idx, idx ^ 0x5555, NULL), 0);
    }
    uint64_t n = swp_map_count(m);
    assert_true(n > 9990 && n <= 10000);
    struct walk w = {.ordered = 1};
    assert_int_equal(swp_map_iterate(m, walk_fn, &w), 0);
    assert_true(w.ordered);
    assert_int_equal(w.n, n);
    /* about one leaf per page here: memory tracks pages, not the object size */
    assert_true(swp_map_leaves(m) <= n);
    assert_true(swp_map_bytes(m) < n * 400);
    w = (struct walk){.ordered = 1, .stop_after = 10};
    assert_int_equal(swp_map_iterate(m, walk_fn, &w), 99);
    assert_int_equal(w.n, 10);
    swp_map_destroy(m);

    /* dense: 100000 consecutive pages share leaves */
    assert_int_equal(swp_map_create(&m), 0);
    for (uint64_t i = 100000; i-- > 0;)
        assert_int_equal(swp_map_insert(m, i + 1000000, (i + 1000000) ^ 0x5555, NULL), 0);
    assert_int_equal(swp_map_leaves(m), (100000 + 1000000 % SWP_MAP_LEAF + SWP_MAP_LEAF - 1) /
                                            SWP_MAP_LEAF);
    assert_true(swp_map_bytes(m) < 100000 * 12); /* ~9 bytes a page */
    w = (struct walk){.ordered = 1};
    assert_int_equal(swp_map_iterate(m, walk_fn, &w), 0);
    assert_true(w.ordered);
    assert_int_equal(w.n, 100000);
    swp_map_destroy(m);
}

/* Random inserts and removes over a small range, checked against an array:
 * exercises leaf freeing and the hash table's backward-shift removal. */
static void
test_against_array(void **state)
{
    (void)state;
    enum { RANGE = 8192 };
    static uint64_t ref[RANGE]; /* slot + 1, 0 = none */
    struct swp_map *m;
    uint64_t x = 0x9e3779b97f4a7c15ull, s, old, count = 0;

    memset(ref, 0, sizeof(ref));
    assert_int_equal(swp_map_create(&m), 0);
    for (int i = 0; i < 200000; i++) {
        uint64_t idx = rnd(&x) % RANGE * 37; /* spread over many leaves */
        uint64_t r = idx / 37;
        if (rnd(&x) % 3) {
            uint64_t slot = rnd(&x) % 1000000;
            assert_int_equal(swp_map_insert(m, idx, slot, &old), 0);
            assert_int_equal(old, ref[r] ? ref[r] - 1 : SWP_NO_SLOT);
            count += !ref[r];
            ref[r] = slot + 1;
        } else {
            int rc = swp_map_remove(m, idx, &old);
            if (ref[r]) {
                assert_int_equal(rc, 0);
                assert_int_equal(old, ref[r] - 1);
                ref[r] = 0;
                count--;
            } else {
                assert_int_equal(rc, -ENOENT);
            }
        }
    }
    assert_int_equal(swp_map_count(m), count);
    for (uint64_t r = 0; r < RANGE; r++) {
        int rc = swp_map_lookup(m, r * 37, &s);
        if (ref[r]) {
            assert_int_equal(rc, 0);
            assert_int_equal(s, ref[r] - 1);
        } else {
            assert_int_equal(rc, -ENOENT);
        }
    }
    for (uint64_t r = 0; r < RANGE; r++)
        if (ref[r])
            assert_int_equal(swp_map_remove(m, r * 37, NULL), 0);
    assert_int_equal(swp_map_count(m), 0);
    assert_int_equal(swp_map_leaves(m), 0);
    swp_map_destroy(m);
}

static int
count_objs(void *arg, uint64_t obj, struct swp_map *map)
{
    (void)obj;
    *(uint64_t *)arg += swp_map_count(map);
    return 0;
}

static void
test_index(void **state)
{
    (void)state;
    struct swp_index *ix;
    struct swp_map *m, *m2;
    uint64_t total = 0;

    assert_int_equal(swp_index_create(&ix), 0);
    assert_int_equal(swp_index_get(ix, 5, 0, &m), -ENOENT);
    for (uint64_t o = 0; o < 1000; o++) {
        assert_int_equal(swp_index_get(ix, o * 0x10001, 1, &m), 0);
        assert_int_equal(swp_map_insert(m, o, o, NULL), 0);
    }
    assert_int_equal(swp_index_objects(ix), 1000);
    assert_int_equal(swp_index_get(ix, 3 * 0x10001, 0, &m), 0);
    assert_int_equal(swp_index_get(ix, 3 * 0x10001, 1, &m2), 0);
    assert_ptr_equal(m, m2);
    assert_int_equal(swp_map_count(m), 1);
    for (uint64_t o = 0; o < 1000; o += 2)
        assert_int_equal(swp_index_drop(ix, o * 0x10001), 0);
    assert_int_equal(swp_index_drop(ix, 0), -ENOENT);
    assert_int_equal(swp_index_objects(ix), 500);
    for (uint64_t o = 1; o < 1000; o += 2) {
        uint64_t s;
        assert_int_equal(swp_index_get(ix, o * 0x10001, 0, &m), 0);
        assert_int_equal(swp_map_lookup(m, o, &s), 0);
        assert_int_equal(s, o);
    }
    assert_int_equal(swp_index_iterate(ix, count_objs, &total), 0);
    assert_int_equal(total, 500);
    swp_index_destroy(ix);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_tib),
        cmocka_unit_test(test_replace_remove),
        cmocka_unit_test(test_iterate_and_memory),
        cmocka_unit_test(test_against_array),
        cmocka_unit_test(test_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
