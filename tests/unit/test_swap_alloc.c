/*
 * test_swap_alloc.c - the slot bitmap (swapfs/slot_alloc.c): allocation until
 * full then -ENOSPC, free and reuse, the hint wrapping around, exact counts,
 * bad frees and marks, and 4 threads allocating and freeing at once without
 * ever getting the same slot twice.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slot_alloc.h"

static void
test_until_full(void **state)
{
    (void)state;
    const uint64_t n = 130; /* not a multiple of 64: the tail bits stay out */
    struct swp_alloc *al;
    uint8_t seen[130] = {0};
    uint64_t s;

    assert_int_equal(swp_alloc_create(0, &al), -EINVAL);
    assert_int_equal(swp_alloc_create(n, &al), 0);
    assert_int_equal(swp_alloc_total(al), n);
    assert_int_equal(swp_alloc_free(al), n);
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(swp_alloc_get(al, &s), 0);
        assert_true(s < n);
        assert_false(seen[s]);
        seen[s] = 1;
        assert_int_equal(swp_alloc_used(al), i + 1);
        assert_int_equal(swp_alloc_free(al), n - i - 1);
    }
    assert_int_equal(swp_alloc_get(al, &s), -ENOSPC);
    assert_int_equal(swp_alloc_get(al, &s), -ENOSPC);
    assert_int_equal(swp_alloc_used(al), n);

    /* free one, get it back; then full again */
    assert_int_equal(swp_alloc_put(al, 77), 0);
    assert_false(swp_alloc_test(al, 77));
    assert_int_equal(swp_alloc_free(al), 1);
    assert_int_equal(swp_alloc_get(al, &s), 0);
    assert_int_equal(s, 77);
    assert_int_equal(swp_alloc_get(al, &s), -ENOSPC);

    /* bad frees change nothing */
    assert_int_equal(swp_alloc_put(al, n), -EINVAL);
    assert_int_equal(swp_alloc_put(al, 5), 0);
    assert_int_equal(swp_alloc_put(al, 5), -EINVAL); /* double free */
    assert_int_equal(swp_alloc_free(al), 1);
    assert_int_equal(swp_alloc_mark(al, 6), -EEXIST);
    assert_int_equal(swp_alloc_mark(al, 5), 0);
    assert_int_equal(swp_alloc_mark(al, n), -EINVAL);
    assert_int_equal(swp_alloc_free(al), 0);

    /* free everything: count back to zero */
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(swp_alloc_put(al, i), 0);
    assert_int_equal(swp_alloc_used(al), 0);
    assert_int_equal(swp_alloc_free(al), n);
    swp_alloc_destroy(al);
}

static void
test_hint_wraps(void **state)
{
    (void)state;
    const uint64_t n = 64 * 8;
    struct swp_alloc *al;
    uint64_t s;

    assert_int_equal(swp_alloc_create(n, &al), 0);
    for (uint64_t i = 0; i < n - 64; i++)
        assert_int_equal(swp_alloc_get(al, &s), 0);
    /* next fit: the hint is past word 0; freeing slot 3 does not pull it back */
    assert_int_equal(swp_alloc_put(al, 3), 0);
    assert_int_equal(swp_alloc_get(al, &s), 0);
    assert_int_equal(s, n - 64);
    /* fill the last word; the search wraps around to the hole at 3 */
    for (uint64_t i = 1; i < 64; i++) {
        assert_int_equal(swp_alloc_get(al, &s), 0);
        assert_int_equal(s, n - 64 + i);
    }
    assert_int_equal(swp_alloc_get(al, &s), 0);
    assert_int_equal(s, 3);
    assert_int_equal(swp_alloc_get(al, &s), -ENOSPC);
    /* holes in several words come back in order from the hint */
    assert_int_equal(swp_alloc_put(al, 500), 0);
    assert_int_equal(swp_alloc_put(al, 10), 0);
    assert_int_equal(swp_alloc_put(al, 200), 0);
    assert_int_equal(swp_alloc_get(al, &s), 0);
    assert_int_equal(s, 10);
    assert_int_equal(swp_alloc_get(al, &s), 0);
    assert_int_equal(s, 200);
    assert_int_equal(swp_alloc_get(al, &s), 0);
    assert_int_equal(s, 500);
    assert_int_equal(swp_alloc_used(al), n);
    swp_alloc_destroy(al);
}

#define NTHREADS 4
#define NSLOTS 1000
#define HOLD 200
#define ROUNDS 2000

static struct swp_alloc *shared;
static atomic_int owner[NSLOTS];
static atomic_int errors;

/* Runs of consecutive slots: as long as asked, cut short by a used slot or
 * the end, and never failing while a slot is free. */
static void
test_runs(void **state)
{
    (void)state;
    struct swp_alloc *al;
    uint64_t first, s;
    assert_int_equal(swp_alloc_create(100, &al), 0);
    assert_int_equal(swp_alloc_get_run(al, 10, &first), 10);
    assert_int_equal(first, 0);
    assert_int_equal(swp_alloc_mark(al, 15), 0); /* a used slot ahead */
    assert_int_equal(swp_alloc_get_run(al, 10, &first), 5);
    assert_int_equal(first, 10);
    assert_int_equal(swp_alloc_get_run(al, 200, &first), 84); /* 16..99: cut by the end */
    assert_int_equal(first, 16);
    assert_int_equal(swp_alloc_free(al), 0);
    assert_int_equal(swp_alloc_get_run(al, 1, &first), -ENOSPC);
    assert_int_equal(swp_alloc_put(al, 42), 0);
    assert_int_equal(swp_alloc_get_run(al, 8, &first), 1); /* a lone free slot */
    assert_int_equal(first, 42);
    for (s = 0; s < 100; s++)
        assert_int_equal(swp_alloc_test(al, s), 1);
    swp_alloc_destroy(al);
}

static void *
worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t held[HOLD];
    unsigned seed = (unsigned)me * 7919u + 1;

    for (int r = 0; r < ROUNDS; r++) {
        int n = 1 + (int)(rand_r(&seed) % HOLD);
        for (int i = 0; i < n; i++) {
            if (swp_alloc_get(shared, &held[i]) != 0) {
                atomic_fetch_add(&errors, 1); /* cannot be full: at most 800 held */
                n = i;
                break;
            }
            int expected = 0;
            if (!atomic_compare_exchange_strong(&owner[held[i]], &expected, me + 1))
                atomic_fetch_add(&errors, 1); /* handed out twice */
        }
        for (int i = 0; i < n; i++) {
            atomic_store(&owner[held[i]], 0);
            if (swp_alloc_put(shared, held[i]) != 0)
                atomic_fetch_add(&errors, 1);
        }
    }
    return NULL;
}

static void
test_concurrent(void **state)
{
    (void)state;
    pthread_t t[NTHREADS];

    assert_int_equal(swp_alloc_create(NSLOTS, &shared), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(swp_alloc_used(shared), 0);
    assert_int_equal(swp_alloc_free(shared), NSLOTS);
    swp_alloc_destroy(shared);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_until_full),
        cmocka_unit_test(test_hint_wraps),
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
