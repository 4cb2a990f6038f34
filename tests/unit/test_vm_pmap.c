/*
 * test_vm_pmap.c - the kernel's existence map of a pager (emm/vm/vm_pmap.c):
 * runs merge and split, a page below `known` in no run is one the pager
 * lacks, pages past `known` are never called holes, and a map with no room
 * for more runs stops being exact there rather than dropping a page (a
 * superset never misses one: a page it lacks by mistake would read zeros).
 *
 * Locking: none (a map belongs to its object's lock; one thread here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vm_internal.h"

static void
test_runs_merge_and_split(void **state)
{
    (void)state;
    struct vm_pmap pm = {.known = UINT64_MAX};
    assert_int_equal(vm_pmap_lacks(&pm, 0), 1);
    vm_pmap_add(&pm, 10, 13);
    vm_pmap_add(&pm, 20, 21);
    vm_pmap_add(&pm, 13, 15); /* touches 10..13: one run 10..15 */
    assert_int_equal(pm.n, 2);
    assert_int_equal(vm_pmap_lacks(&pm, 9), 1);
    assert_int_equal(vm_pmap_lacks(&pm, 10), 0);
    assert_int_equal(vm_pmap_lacks(&pm, 14), 0);
    assert_int_equal(vm_pmap_lacks(&pm, 15), 1);
    assert_int_equal(vm_pmap_lacks(&pm, 20), 0);
    vm_pmap_add(&pm, 5, 30); /* covers both */
    assert_int_equal(pm.n, 1);
    vm_pmap_remove(&pm, 8, 12); /* a hole in the middle: split */
    assert_int_equal(pm.n, 2);
    assert_int_equal(vm_pmap_lacks(&pm, 7), 0);
    assert_int_equal(vm_pmap_lacks(&pm, 8), 1);
    assert_int_equal(vm_pmap_lacks(&pm, 11), 1);
    assert_int_equal(vm_pmap_lacks(&pm, 12), 0);
    vm_pmap_remove(&pm, 29, UINT64_MAX); /* a truncate: to the end */
    assert_int_equal(vm_pmap_lacks(&pm, 28), 0);
    assert_int_equal(vm_pmap_lacks(&pm, 29), 1);
    vm_pmap_remove(&pm, 0, UINT64_MAX);
    assert_int_equal(pm.n, 0);
    vm_pmap_add(&pm, 40, UINT64_MAX); /* "to the end" from a query */
    assert_int_equal(vm_pmap_lacks(&pm, 1ull << 40), 0);
    vm_pmap_fini(&pm);
}

static void
test_unknown_is_never_a_hole(void **state)
{
    (void)state;
    struct vm_pmap pm = {.known = 100};
    vm_pmap_add(&pm, 10, 11);
    assert_int_equal(vm_pmap_lacks(&pm, 50), 1);
    assert_int_equal(vm_pmap_lacks(&pm, 100), 0); /* not learnt that far */
    assert_int_equal(vm_pmap_lacks(&pm, 1000), 0);
    vm_pmap_fini(&pm);
}

/* Past its bound of runs the map is exact only below the run it could not
 * keep: that page is never taken for a hole. */
static void
test_full_map_stays_a_superset(void **state)
{
    (void)state;
    struct vm_pmap pm = {.known = UINT64_MAX};
    uint64_t i;
    for (i = 0; pm.known == UINT64_MAX && i < 100000; i++)
        vm_pmap_add(&pm, 2 * i, 2 * i + 1);
    assert_true(pm.known != UINT64_MAX); /* it ran out of room */
    uint64_t last = 2 * (i - 1);
    assert_int_equal(vm_pmap_lacks(&pm, last), 0); /* the run it could not keep */
    assert_int_equal(vm_pmap_lacks(&pm, last + 1), 0);
    assert_int_equal(vm_pmap_lacks(&pm, 1), 1); /* below: still exact */
    assert_int_equal(vm_pmap_lacks(&pm, 0), 0);
    vm_pmap_fini(&pm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_merge_and_split),
        cmocka_unit_test(test_unknown_is_never_a_hole),
        cmocka_unit_test(test_full_map_stays_a_superset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
