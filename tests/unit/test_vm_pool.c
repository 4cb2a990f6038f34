/*
 * test_vm_pool.c - the resident page pool: sizes, targets, allocation and free
 * accounting, short allocations, the policy's queues (second chance: a page
 * referenced between scans survives, an unreferenced one goes) and the
 * laundry list.
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

#include <pthread.h>

#include "vm_pool.h"

#define MIB (1024ull * 1024)

static void
test_init_sizes(void **state)
{
    (void)state;
    struct vm_pool pool;
    assert_int_equal(vm_pool_init(&pool, MIB, NULL), 0);
    assert_int_equal(pool.npages, 256);
    assert_int_equal(pool.nfree, 256);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    assert_int_equal(pool.nqueued, 0);
    assert_null(TAILQ_FIRST(&pool.laundry));
    assert_string_equal(pool.policy->name, "second-chance");
    /* Nothing is touched before use (pool.fresh); once handed out, every frame
     * is its own page-sized slot of the arena. */
    assert_int_equal(pool.fresh, 0);
    struct vm_page *all[256];
    assert_int_equal(vm_pool_alloc(&pool, all, 256), 256);
    assert_int_equal(pool.fresh, 256);
    for (uint64_t i = 0; i < pool.npages; i++) {
        assert_ptr_equal(pool.pages[i].frame, pool.arena + i * EMM_PAGE_SIZE);
        assert_ptr_equal(all[i], &pool.pages[i]);
    }
    for (uint64_t i = 0; i < pool.npages; i++)
        vm_pool_free(&pool, all[i]);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    for (uint64_t i = 0; i < pool.npages; i++)
        assert_int_equal(pool.pages[i].queue, VM_Q_FREE);
    /* Targets: 0 < free_min < free_target < npages. */
    assert_true(pool.free_min > 0);
    assert_true(pool.free_min < pool.free_target);
    assert_true(pool.free_target < pool.npages);
    vm_pool_fini(&pool);

    /* A partial page does not count; too small a pool is refused. */
    assert_int_equal(vm_pool_init(&pool, 64 * EMM_PAGE_SIZE + 100, NULL), 0);
    assert_int_equal(pool.npages, 64);
    assert_true(pool.free_min < pool.free_target);
    assert_true(pool.free_target <= pool.npages);
    vm_pool_fini(&pool);
    assert_int_equal(vm_pool_init(&pool, 63 * EMM_PAGE_SIZE, NULL), -EINVAL);

    assert_int_equal(vm_pool_init(&pool, 256 * MIB, NULL), 0);
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
    assert_int_equal(vm_pool_init(&pool, MIB, NULL), 0);
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
    /* All or nothing: 56 free, 100 wanted. */
    assert_int_equal(vm_pool_alloc_all(&pool, more, 100), 0);
    assert_int_equal(vm_pool_free_count(&pool), 56);
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

/* Pages handed to the pool's policy come back as victims in policy order. */
static void
fake_owner(struct vm_page **pg, unsigned n)
{
    static int owner;
    for (unsigned i = 0; i < n; i++) {
        pg[i]->object = (struct vm_object *)(void *)&owner;
        pg[i]->index = i;
        pg[i]->state = VM_PAGE_PRESENT;
    }
}

static struct vm_page *
victim(struct vm_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    struct vm_page *p = vm_pool_victim_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    return p;
}

static void
test_queue_second_chance(void **state)
{
    (void)state;
    struct vm_pool pool;
    assert_int_equal(vm_pool_init(&pool, MIB, NULL), 0);
    struct vm_page *pg[9];
    assert_int_equal(vm_pool_alloc(&pool, pg, 9), 9);
    fake_owner(pg, 9);
    for (int i = 0; i < 9; i++)
        vm_pool_enqueue(&pool, pg[i]);
    struct vm_pool_counts c;
    vm_pool_counts(&pool, &c);
    assert_int_equal(c.queued, 9);
    assert_int_equal(c.active + c.inactive, 9);
    /* Enqueueing a queued page is a no-op. */
    vm_pool_enqueue(&pool, pg[3]);
    vm_pool_counts(&pool, &c);
    assert_int_equal(c.queued, 9);
    /* The first victim refills inactive (2/3) from active, oldest first, and
     * takes its head: page 0, never referenced. */
    assert_ptr_equal(victim(&pool), pg[0]);
    assert_int_equal(pg[0]->queue, VM_Q_NONE);
    /* Page 1 is referenced between scans: it survives, page 2 goes. */
    vm_pool_touch(&pool, &pg[1], 1);
    assert_ptr_equal(victim(&pool), pg[2]);
    vm_pool_counts(&pool, &c);
    assert_int_equal(c.second_chances, 1);
    assert_int_equal(pg[1]->queue, VM_Q_POLICY);
    /* Dequeue and free take pages off the queues. */
    vm_pool_dequeue(&pool, pg[4]);
    assert_int_equal(pg[4]->queue, VM_Q_NONE);
    vm_pool_free(&pool, pg[5]);
    assert_int_equal(pg[5]->queue, VM_Q_FREE);
    vm_pool_counts(&pool, &c);
    assert_int_equal(c.queued, 5); /* 1, 3, 6, 7, 8 */
    /* Requeue hands a victim back. */
    struct vm_page *v = victim(&pool);
    assert_ptr_equal(v, pg[3]);
    pthread_mutex_lock(&pool.lock);
    vm_pool_requeue_locked(&pool, v);
    pthread_mutex_unlock(&pool.lock);
    assert_int_equal(v->queue, VM_Q_POLICY);
    vm_pool_counts(&pool, &c);
    assert_int_equal(c.queued, 5);
    /* Everything drains; page 1 (referenced once) goes after the others had
     * their turn, and nothing is returned twice. */
    int seen[9] = {0};
    for (int i = 0; i < 5; i++) {
        v = victim(&pool);
        assert_non_null(v);
        for (int j = 0; j < 9; j++)
            if (v == pg[j])
                seen[j]++;
    }
    assert_null(victim(&pool));
    for (int j = 0; j < 9; j++)
        assert_int_equal(seen[j], j == 1 || j == 3 || j >= 6 ? 1 : 0);
    for (int j = 0; j < 9; j++)
        if (j != 5)
            vm_pool_free(&pool, pg[j]);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    vm_pool_fini(&pool);
}

/* A live switch of the replacement policy (a reload): every queued page moves
 * to the new policy, none is lost or doubled, the laundry list is not touched,
 * and the pool keeps working (dequeue, touch, victims) under the new one. */
static void
test_set_policy(void **state)
{
    (void)state;
    struct vm_pool pool;
    assert_int_equal(vm_pool_init(&pool, MIB, NULL), 0);
    struct vm_page *pg[40];
    assert_int_equal(vm_pool_alloc(&pool, pg, 40), 40);
    fake_owner(pg, 40);
    for (int i = 0; i < 36; i++)
        vm_pool_enqueue(&pool, pg[i]);
    for (int i = 36; i < 40; i++)
        vm_pool_to_laundry(&pool, pg[i], 1000 + (uint64_t)i);
    vm_pool_touch(&pool, pg, 10);
    const char *names[] = {"s3-fifo", "lru", "fifo", "second-chance", "s3-fifo"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        assert_int_equal(vm_pool_set_policy(&pool, vm_policy_lookup(names[k])), 0);
        assert_string_equal(vm_pool_policy_name(&pool), names[k]);
        struct vm_pool_counts c;
        vm_pool_counts(&pool, &c);
        assert_int_equal(c.queued, 36);
        assert_int_equal(c.active + c.inactive, 36);
        assert_int_equal(pool.policy->count(pool.policy_state, VM_PQ_NONE), 36);
        assert_int_equal(c.laundry_listed, 4);
        for (int i = 0; i < 36; i++)
            assert_int_equal(pg[i]->queue, VM_Q_POLICY);
        vm_pool_touch(&pool, &pg[k], 1);
    }
    /* The same policy again changes nothing. */
    assert_int_equal(vm_pool_set_policy(&pool, vm_policy_lookup("s3-fifo")), 0);
    /* Dequeue works on the new policy's queues; the rest drains exactly once. */
    vm_pool_dequeue(&pool, pg[5]);
    int seen[40] = {0};
    struct vm_page *v;
    while ((v = victim(&pool)) != NULL)
        seen[v - pool.pages]++;
    for (int j = 0; j < 40; j++)
        assert_int_equal(seen[pg[j] - pool.pages], j < 36 && j != 5 ? 1 : 0);
    struct vm_pnode *n = TAILQ_FIRST(&pool.laundry);
    for (int i = 36; i < 40; i++, n = TAILQ_NEXT(n, link))
        assert_ptr_equal(n, &pg[i]->pn);
    for (int j = 0; j < 40; j++)
        vm_pool_free(&pool, pg[j]);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    vm_pool_fini(&pool);
}

static void
test_laundry_list(void **state)
{
    (void)state;
    struct vm_pool pool;
    assert_int_equal(vm_pool_init(&pool, MIB, vm_policy_lookup("fifo")), 0);
    struct vm_page *pg[4];
    assert_int_equal(vm_pool_alloc(&pool, pg, 4), 4);
    fake_owner(pg, 4);
    for (int i = 0; i < 4; i++)
        vm_pool_enqueue(&pool, pg[i]);
    /* On loan to a pager: off the policy, on the laundry list in send order. */
    vm_pool_to_laundry(&pool, pg[2], 100);
    vm_pool_to_laundry(&pool, pg[0], 200);
    struct vm_pool_counts c;
    vm_pool_counts(&pool, &c);
    assert_int_equal(c.queued, 2);
    assert_int_equal(c.laundry_listed, 2);
    assert_ptr_equal(vm_page_of(TAILQ_FIRST(&pool.laundry)), pg[2]);
    assert_ptr_equal(vm_page_of(TAILQ_LAST(&pool.laundry, vm_pnode_list)), pg[0]);
    assert_int_equal(pg[2]->laundry_ns, 100);
    /* Victims come only from the policy. */
    assert_ptr_equal(victim(&pool), pg[1]);
    /* Back from the laundry: enqueue moves it to the policy. */
    vm_pool_enqueue(&pool, pg[2]);
    vm_pool_counts(&pool, &c);
    assert_int_equal(c.laundry_listed, 1);
    assert_int_equal(c.queued, 2);
    assert_ptr_equal(vm_page_of(TAILQ_FIRST(&pool.laundry)), pg[0]);
    vm_pool_free(&pool, pg[0]); /* freeing unlists it */
    assert_null(TAILQ_FIRST(&pool.laundry));
    assert_ptr_equal(victim(&pool), pg[3]); /* fifo: 3 was queued before 2 came back */
    assert_ptr_equal(victim(&pool), pg[2]);
    assert_null(victim(&pool));
    for (int i = 1; i < 4; i++)
        vm_pool_free(&pool, pg[i]);
    assert_int_equal(vm_pool_free_count(&pool), 256);
    vm_pool_fini(&pool);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_sizes),
        cmocka_unit_test(test_alloc_free_counts),
        cmocka_unit_test(test_queue_second_chance),
        cmocka_unit_test(test_laundry_list),
        cmocka_unit_test(test_set_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
