/*
 * test_vm_pool.c - the resident page pool: sizes, targets, allocation and free
 * accounting, short allocations, and the FIFO page queue.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <emm/backend.h>

#include "vm_pool.h"

#define MIB (1024ull * 1024)

static void
test_init_sizes(void **state)
{
    (void)state;
    struct vm_pool pool;
    assert_int_equal(vm_pool_init(&pool, MIB), 0);
    assert_int_equal(pool.npages, 256);
    assert_int_equal(pool.nfree, 256);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    assert_int_equal(pool.nqueued, 0);
    assert_null(pool.q_head);
    assert_null(pool.q_tail);
    /* Every frame is its own page-sized slot of the arena. */
    for (uint64_t i = 0; i < pool.npages; i++) {
        assert_ptr_equal(pool.pages[i].frame, pool.arena + i * EMM_PAGE_SIZE);
        assert_int_equal(pool.pages[i].queue, VM_Q_FREE);
    }
    /* Targets: 0 < free_min < free_target < npages. */
    assert_true(pool.free_min > 0);
    assert_true(pool.free_min < pool.free_target);
    assert_true(pool.free_target < pool.npages);
    vm_pool_fini(&pool);

    /* A partial page does not count; too small a pool is refused. */
    assert_int_equal(vm_pool_init(&pool, 64 * EMM_PAGE_SIZE + 100), 0);
    assert_int_equal(pool.npages, 64);
    assert_true(pool.free_min < pool.free_target);
    assert_true(pool.free_target <= pool.npages);
    vm_pool_fini(&pool);
    assert_int_equal(vm_pool_init(&pool, 63 * EMM_PAGE_SIZE), -EINVAL);

    assert_int_equal(vm_pool_init(&pool, 256 * MIB), 0);
    assert_int_equal(pool.npages, 65536);
    assert_true(pool.free_min < pool.free_target);
    assert_true(pool.free_target < pool.npages / 4);
    vm_pool_fini(&pool);
}

static void
test_alloc_free_counts(void **state)
{
    (void)state;
    struct vm_pool pool;
    assert_int_equal(vm_pool_init(&pool, MIB), 0);
    struct vm_page *pg[256];
    assert_int_equal(vm_pool_alloc(&pool, pg, 10), 10);
    assert_int_equal(vm_pool_free_count(&pool), 246);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(pg[i]->queue, VM_Q_NONE);
        assert_int_equal(pg[i]->state, VM_PAGE_FREE);
        assert_int_equal(pg[i]->flags, 0);
        assert_int_equal(pg[i]->wire, 0);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(pg[i], pg[j]);
        memset(pg[i]->frame, 0xA5, EMM_PAGE_SIZE); /* frames are writable */
    }
    for (int i = 0; i < 10; i++)
        vm_pool_free(&pool, pg[i]);
    assert_int_equal(vm_pool_free_count(&pool), 256);

    /* Alloc beyond what is free returns fewer. */
    assert_int_equal(vm_pool_alloc(&pool, pg, 200), 200);
    struct vm_page *more[100];
    assert_int_equal(vm_pool_alloc(&pool, more, 100), 56);
    assert_int_equal(vm_pool_free_count(&pool), 0);
    assert_int_equal(vm_pool_alloc(&pool, more + 56, 1), 0);
    for (int i = 0; i < 56; i++)
        vm_pool_free(&pool, more[i]);
    for (int i = 0; i < 200; i++)
        vm_pool_free(&pool, pg[i]);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    assert_int_equal(vm_pool_alloc(&pool, pg, 256), 256);
    assert_int_equal(vm_pool_free_count(&pool), 0);
    for (int i = 0; i < 256; i++)
        vm_pool_free(&pool, pg[i]);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    vm_pool_fini(&pool);
}

static void
check_queue(struct vm_pool *pool, struct vm_page **want, unsigned n)
{
    assert_int_equal(pool->nqueued, n);
    struct vm_page *p = pool->q_head;
    struct vm_page *prev = NULL;
    for (unsigned i = 0; i < n; i++) {
        assert_ptr_equal(p, want[i]);
        assert_ptr_equal(p->qprev, prev);
        assert_int_equal(p->queue, VM_Q_INACTIVE);
        prev = p;
        p = p->qnext;
    }
    assert_null(p);
    assert_ptr_equal(pool->q_tail, n ? want[n - 1] : NULL);
}

static void
test_queue_fifo(void **state)
{
    (void)state;
    struct vm_pool pool;
    assert_int_equal(vm_pool_init(&pool, MIB), 0);
    struct vm_page *pg[8];
    assert_int_equal(vm_pool_alloc(&pool, pg, 8), 8);
    for (int i = 0; i < 8; i++)
        vm_pool_enqueue(&pool, pg[i]);
    check_queue(&pool, pg, 8);
    /* Enqueueing a queued page is a no-op: it keeps its place. */
    vm_pool_enqueue(&pool, pg[3]);
    check_queue(&pool, pg, 8);
    /* Dequeue head, middle, tail. */
    vm_pool_dequeue(&pool, pg[0]);
    vm_pool_dequeue(&pool, pg[4]);
    vm_pool_dequeue(&pool, pg[7]);
    assert_int_equal(pg[4]->queue, VM_Q_NONE);
    struct vm_page *w1[] = {pg[1], pg[2], pg[3], pg[5], pg[6]};
    check_queue(&pool, w1, 5);
    /* Dequeueing an unqueued page is a no-op. */
    vm_pool_dequeue(&pool, pg[4]);
    check_queue(&pool, w1, 5);
    /* Re-enqueued pages go to the tail. */
    vm_pool_enqueue(&pool, pg[0]);
    vm_pool_enqueue(&pool, pg[4]);
    struct vm_page *w2[] = {pg[1], pg[2], pg[3], pg[5], pg[6], pg[0], pg[4]};
    check_queue(&pool, w2, 7);
    /* Freeing a queued page takes it off the queue. */
    vm_pool_free(&pool, pg[3]);
    assert_int_equal(pg[3]->queue, VM_Q_FREE);
    struct vm_page *w3[] = {pg[1], pg[2], pg[5], pg[6], pg[0], pg[4]};
    check_queue(&pool, w3, 6);
    assert_int_equal(vm_pool_free_count(&pool), 256 - 7);
    for (int i = 0; i < 6; i++)
        vm_pool_free(&pool, w3[i]);
    vm_pool_free(&pool, pg[7]);
    check_queue(&pool, NULL, 0);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    vm_pool_fini(&pool);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_sizes),
        cmocka_unit_test(test_alloc_free_counts),
        cmocka_unit_test(test_queue_fifo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
