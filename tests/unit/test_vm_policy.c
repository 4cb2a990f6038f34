/*
 * test_vm_policy.c - the page replacement policies (vm_policy.h): for each
 * policy, capacity under a driver loop, every insertion leaving exactly once as
 * a victim, removal anywhere; then each policy's own order: second chance and
 * the inactive target, fifo order, s3-fifo's small queue and ghost, exact lru.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm_policy.h"

struct tpage {
    struct vm_pnode node;
    int resident;
    int inserts, victims;
};

#define PAGE_OF(n) ((struct tpage *)((char *)(n) - offsetof(struct tpage, node)))

static uint64_t rng_state;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static struct tpage *
pages_new(int n)
{
    struct tpage *p = calloc((size_t)n, sizeof(*p));
    assert_non_null(p);
    for (int i = 0; i < n; i++)
        p[i].node.key = (uint64_t)i;
    return p;
}

static void *
policy_new(const struct vm_policy_ops *ops, uint64_t capacity)
{
    void *st = NULL;
    assert_int_equal(ops->create(capacity, &st), 0);
    assert_non_null(st);
    return st;
}

/* One request of the driver: a hit touches, a miss evicts when full, then inserts. */
static void
access_page(const struct vm_policy_ops *ops, void *st, struct tpage *p, uint64_t capacity,
            uint64_t *resident)
{
    if (p->resident) {
        ops->touch(st, &p->node);
        return;
    }
    if (*resident == capacity) {
        struct vm_pnode *v = ops->victim(st);
        assert_non_null(v);
        assert_int_equal(v->queue, VM_PQ_NONE);
        struct tpage *vp = PAGE_OF(v);
        assert_true(vp->resident);
        vp->resident = 0;
        vp->victims++;
        (*resident)--;
    }
    ops->insert(st, &p->node);
    assert_int_not_equal(p->node.queue, VM_PQ_NONE);
    p->resident = 1;
    p->inserts++;
    (*resident)++;
}

static void
test_lookup(void **state)
{
    (void)state;
    const char *names[] = {"second-chance", "fifo", "s3-fifo", "lru"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct vm_policy_ops *ops = vm_policy_lookup(names[i]);
        assert_non_null(ops);
        assert_string_equal(ops->name, names[i]);
    }
    assert_ptr_equal(vm_policy_lookup(VM_POLICY_DEFAULT), vm_policies[0]);
    assert_null(vm_policy_lookup("clock"));
    assert_null(vm_policy_lookup(""));
    assert_null(vm_policy_lookup(NULL));
    void *st = NULL;
    assert_int_equal(vm_policy_lookup("s3-fifo")->create(0, &st), -EINVAL);
}

/* Skewed random requests: capacity holds, each insertion leaves exactly once. */
static void
test_capacity_and_exactly_once(void **state)
{
    (void)state;
    enum { NPAGES = 2000, CAP = 150, NREQ = 60000 };
    for (int i = 0; vm_policies[i] != NULL; i++) {
        const struct vm_policy_ops *ops = vm_policies[i];
        struct tpage *pg = pages_new(NPAGES);
        void *st = policy_new(ops, CAP);
        uint64_t resident = 0;
        rng_state = 0x9e3779b97f4a7c15ull;
        for (int r = 0; r < NREQ; r++) {
            /* Half the requests on 100 hot pages, half over everything. */
            uint64_t x = rng();
            int id = (x & 1) ? (int)((x >> 1) % 100) : (int)((x >> 1) % NPAGES);
            if ((x >> 40) % 50 == 0)
                pg[id].node.flags = VM_PN_PREFETCH;
            access_page(ops, st, &pg[id], CAP, &resident);
            assert_true(resident <= CAP);
            assert_int_equal(ops->count(st, VM_PQ_NONE), resident);
        }
        /* Drain: every resident page comes out once, then nothing. */
        struct vm_pnode *v;
        while ((v = ops->victim(st)) != NULL) {
            struct tpage *vp = PAGE_OF(v);
            assert_true(vp->resident);
            vp->resident = 0;
            vp->victims++;
            resident--;
        }
        assert_int_equal(resident, 0);
        assert_int_equal(ops->count(st, VM_PQ_NONE), 0);
        for (int p = 0; p < NPAGES; p++) {
            assert_int_equal(pg[p].inserts, pg[p].victims);
            assert_int_equal(pg[p].node.queue, VM_PQ_NONE);
        }
        ops->destroy(st);
        free(pg);
    }
}

/* Remove at the head, the tail and the middle of every queue a policy has. */
static void
test_remove_anywhere(void **state)
{
    (void)state;
    enum { N = 300, CAP = 200 };
    for (int i = 0; vm_policies[i] != NULL; i++) {
        const struct vm_policy_ops *ops = vm_policies[i];
        struct tpage *pg = pages_new(N);
        void *st = policy_new(ops, CAP);
        uint64_t resident = 0;
        /* Spread pages over the queues: touches and evictions move them. */
        for (int p = 0; p < N; p++) {
            access_page(ops, st, &pg[p], CAP, &resident);
            if (p % 3 == 0) {
                ops->touch(st, &pg[p].node);
                ops->touch(st, &pg[p].node);
            }
        }
        for (int p = 0; p < N; p += 7)
            access_page(ops, st, &pg[p], CAP, &resident);
        int removed = 0;
        for (int p = 0; p < N; p++) {
            if (!pg[p].resident || (p % 5 != 0 && p != N - 1))
                continue;
            ops->remove(st, &pg[p].node);
            assert_int_equal(pg[p].node.queue, VM_PQ_NONE);
            pg[p].resident = 0;
            resident--;
            removed++;
        }
        assert_true(removed > 20);
        assert_int_equal(ops->count(st, VM_PQ_NONE), resident);
        /* A queue emptied by removal, then refilled, still works. */
        struct vm_pnode *v;
        uint64_t drained = 0;
        while ((v = ops->victim(st)) != NULL) {
            struct tpage *vp = PAGE_OF(v);
            assert_true(vp->resident);
            vp->resident = 0;
            drained++;
        }
        assert_int_equal(drained, resident);
        ops->insert(st, &pg[5].node);
        ops->remove(st, &pg[5].node);
        assert_null(ops->victim(st));
        ops->insert(st, &pg[6].node);
        assert_ptr_equal(ops->victim(st), &pg[6].node);
        ops->destroy(st);
        free(pg);
    }
}

static struct tpage *
victim_page(const struct vm_policy_ops *ops, void *st)
{
    struct vm_pnode *v = ops->victim(st);
    assert_non_null(v);
    return PAGE_OF(v);
}

static void
test_second_chance_survives(void **state)
{
    (void)state;
    const struct vm_policy_ops *ops = vm_policy_lookup("second-chance");
    struct tpage *pg = pages_new(4);
    void *st = policy_new(ops, 4);
    for (int p = 0; p < 4; p++)
        ops->insert(st, &pg[p].node);
    assert_int_equal(ops->count(st, VM_PQ_ACTIVE), 4);
    /* A reference before deactivation is cleared by it: 0 still goes first. */
    ops->touch(st, &pg[0].node);
    assert_ptr_equal(victim_page(ops, st), &pg[0]);
    /* The scan left 1 and 2 inactive (2/3 of 3), 3 active. */
    assert_int_equal(pg[1].node.queue, VM_PQ_INACTIVE);
    assert_int_equal(pg[2].node.queue, VM_PQ_INACTIVE);
    assert_int_equal(pg[3].node.queue, VM_PQ_ACTIVE);
    /* 1 is referenced between scans: it survives, unreferenced 2 goes. */
    ops->touch(st, &pg[1].node);
    assert_ptr_equal(victim_page(ops, st), &pg[2]);
    assert_int_equal(pg[1].node.queue, VM_PQ_ACTIVE);
    assert_int_equal(pg[1].node.ref, 0);
    /* Its chance is spent: unreferenced, it is reclaimed in FIFO turn. */
    assert_ptr_equal(victim_page(ops, st), &pg[3]);
    assert_ptr_equal(victim_page(ops, st), &pg[1]);
    assert_null(ops->victim(st));
    ops->destroy(st);
    free(pg);
}

static void
test_second_chance_inactive_target(void **state)
{
    (void)state;
    enum { NPAGES = 3000, CAP = 300 };
    const struct vm_policy_ops *ops = vm_policy_lookup("second-chance");
    struct tpage *pg = pages_new(NPAGES);
    void *st = policy_new(ops, CAP);
    uint64_t resident = 0;
    rng_state = 12345;
    int checks = 0;
    for (int r = 0; r < 50000; r++) {
        uint64_t x = rng();
        int id = (x & 3) ? (int)((x >> 2) % 200) : (int)((x >> 2) % NPAGES);
        int was_full = resident == CAP && !pg[id].resident;
        access_page(ops, st, &pg[id], CAP, &resident);
        if (was_full) { /* a reclaim ran; the insert after it went to active */
            uint64_t in = ops->count(st, VM_PQ_INACTIVE), act = ops->count(st, VM_PQ_ACTIVE);
            assert_true(in * 3 >= (in + act - 1) * 2 - 2);
            assert_true(in * 3 <= (in + act) * 2 + 3); /* and not much more */
            checks++;
        }
    }
    assert_true(checks > 1000);
    /* Prefetched pages start inactive, unreferenced. */
    struct tpage extra = {.node = {.key = 1, .flags = VM_PN_PREFETCH}};
    ops->insert(st, &extra.node);
    assert_int_equal(extra.node.queue, VM_PQ_INACTIVE);
    ops->remove(st, &extra.node);
    ops->destroy(st);
    free(pg);
}

static void
test_fifo_order(void **state)
{
    (void)state;
    const struct vm_policy_ops *ops = vm_policy_lookup("fifo");
    struct tpage *pg = pages_new(10);
    void *st = policy_new(ops, 10);
    for (int p = 0; p < 10; p++)
        ops->insert(st, &pg[p].node);
    for (int p = 0; p < 10; p += 2) /* references change nothing */
        ops->touch(st, &pg[p].node);
    for (int p = 0; p < 10; p++)
        assert_ptr_equal(victim_page(ops, st), &pg[p]);
    assert_null(ops->victim(st));
    ops->destroy(st);
    free(pg);
}

static void
test_lru_order(void **state)
{
    (void)state;
    const struct vm_policy_ops *ops = vm_policy_lookup("lru");
    struct tpage *pg = pages_new(6);
    void *st = policy_new(ops, 6);
    for (int p = 0; p < 6; p++)
        ops->insert(st, &pg[p].node);
    ops->touch(st, &pg[2].node);
    ops->touch(st, &pg[0].node);
    ops->touch(st, &pg[5].node); /* 5 is now more recent than 0 */
    ops->touch(st, &pg[2].node);
    const int order[] = {1, 3, 4, 0, 5, 2};
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(victim_page(ops, st), &pg[order[i]]);
    assert_null(ops->victim(st));
    ops->destroy(st);
    free(pg);
}

/* Hot pages reach main and stay; a stream of one-hit pages passes through small. */
static void
test_s3fifo_one_hit_wonders(void **state)
{
    (void)state;
    enum { CAP = 100, HOT = 50, NPAGES = 5000 };
    const struct vm_policy_ops *ops = vm_policy_lookup("s3-fifo");
    struct tpage *pg = pages_new(NPAGES);
    void *st = policy_new(ops, CAP);
    uint64_t resident = 0;
    for (int p = 0; p < HOT; p++) {
        access_page(ops, st, &pg[p], CAP, &resident);
        ops->touch(st, &pg[p].node);
        ops->touch(st, &pg[p].node);
    }
    for (int p = HOT; p < NPAGES; p++) {
        access_page(ops, st, &pg[p], CAP, &resident);
        if (p % 10 == 0) /* the hot set keeps being used */
            for (int h = 0; h < HOT; h++)
                access_page(ops, st, &pg[h], CAP, &resident);
    }
    for (int h = 0; h < HOT; h++) {
        assert_int_equal(pg[h].victims, 0);
        assert_int_equal(pg[h].node.queue, VM_PQ_MAIN);
    }
    assert_int_equal(ops->count(st, VM_PQ_MAIN), HOT);
    for (int p = HOT; p < NPAGES; p++)
        assert_true(pg[p].node.queue == VM_PQ_SMALL || pg[p].node.queue == VM_PQ_NONE);
    assert_int_equal(ops->count(st, VM_PQ_SMALL), CAP - HOT);
    ops->destroy(st);
    free(pg);
}

/* Evicted from small, then requested again while in the ghost: main. */
static void
test_s3fifo_ghost_hit(void **state)
{
    (void)state;
    enum { CAP = 100, NPAGES = 1000 };
    const struct vm_policy_ops *ops = vm_policy_lookup("s3-fifo");
    struct tpage *pg = pages_new(NPAGES);
    void *st = policy_new(ops, CAP);
    uint64_t resident = 0;
    for (int p = 0; p <= CAP; p++)
        access_page(ops, st, &pg[p], CAP, &resident);
    assert_int_equal(pg[0].victims, 1); /* the one-hit wonder went first */
    assert_int_equal(pg[0].node.queue, VM_PQ_NONE);
    access_page(ops, st, &pg[0], CAP, &resident); /* ghost hit */
    assert_int_equal(pg[0].node.queue, VM_PQ_MAIN);
    assert_int_equal(pg[1].victims, 1); /* the page that made room was not in G */
    /* A key the ghost never saw goes to small. */
    access_page(ops, st, &pg[500], CAP, &resident);
    assert_int_equal(pg[500].node.queue, VM_PQ_SMALL);
    /* The ghost holds |main| = 90 keys: page 1 has aged out after 200 more. */
    for (int p = CAP + 1; p < CAP + 201; p++)
        access_page(ops, st, &pg[p], CAP, &resident);
    assert_int_equal(pg[1].node.queue, VM_PQ_NONE);
    access_page(ops, st, &pg[1], CAP, &resident);
    assert_int_equal(pg[1].node.queue, VM_PQ_SMALL);
    /* The page re-admitted through the ghost stayed in main all along. */
    assert_int_equal(pg[0].node.queue, VM_PQ_MAIN);
    ops->destroy(st);
    free(pg);
}

/* Main is a FIFO with reinsertion: frequency buys up to three more rounds. */
static void
test_s3fifo_main_frequency(void **state)
{
    (void)state;
    const struct vm_policy_ops *ops = vm_policy_lookup("s3-fifo");
    struct tpage *pg = pages_new(20);
    void *st = policy_new(ops, 10); /* small 1, main 9 */
    for (int p = 0; p < 10; p++) {
        ops->insert(st, &pg[p].node);
        ops->touch(st, &pg[p].node);
        ops->touch(st, &pg[p].node);
    }
    /* All ten move to main; main overflows by one, the victim comes from main
     * after every page spends its frequency (2 -> cleared on the move). */
    struct tpage *v = victim_page(ops, st);
    assert_ptr_equal(v, &pg[0]);
    assert_int_equal(ops->count(st, VM_PQ_MAIN), 9);
    for (int i = 0; i < 5; i++) /* a frequency above 3 is capped */
        ops->touch(st, &pg[1].node);
    assert_int_equal(pg[1].node.ref, 3);
    ops->touch(st, &pg[2].node);
    assert_ptr_equal(victim_page(ops, st), &pg[3]); /* 1 and 2 reinserted */
    assert_int_equal(pg[1].node.ref, 2);
    assert_int_equal(pg[2].node.ref, 0);
    ops->destroy(st);
    free(pg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_capacity_and_exactly_once),
        cmocka_unit_test(test_remove_anywhere),
        cmocka_unit_test(test_second_chance_survives),
        cmocka_unit_test(test_second_chance_inactive_target),
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_lru_order),
        cmocka_unit_test(test_s3fifo_one_hit_wonders),
        cmocka_unit_test(test_s3fifo_ghost_hit),
        cmocka_unit_test(test_s3fifo_main_frequency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
