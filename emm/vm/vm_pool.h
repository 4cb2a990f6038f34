/*
 * vm_pool.h - the resident page pool: a fixed, mlocked arena of page frames
 * (resident-limit / 4 KiB of them), their vm_page descriptors, the free list,
 * the replacement policy's queues (vm_policy.h: active and inactive FIFOs for
 * second-chance) and the laundry list, pages on loan to pagers in send order,
 * which the pageout daemon watches for overdue data_returns.
 *
 * Locking: pool->lock guards the free list, the policy, the laundry list, the
 * queue links (page->pn, page->queue, page->laundry_ns, and page->hnext while
 * the page is free) and the counters. A
 * page's state, flags and contents belong to its object and are guarded by the
 * object's lock. Order: object lock, then pool lock.
 */
#ifndef EMM_VM_POOL_H
#define EMM_VM_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "msg.h"
#include "vm_policy.h"

struct vm_object;

enum vm_page_state {
    VM_PAGE_FREE = 0,
    VM_PAGE_ABSENT,  /* data_request sent, frame reserved, waiting for the pager */
    VM_PAGE_PRESENT, /* valid data */
    VM_PAGE_LAUNDRY, /* valid data on loan to the pager in a data_return */
};

#define VM_PG_DIRTY      (1u << 0)  /* modified since the pager last had it */
#define VM_PG_FROMSWAP   (1u << 1)  /* absent: requested from the default pager */
#define VM_PG_NEW        (1u << 2)  /* the pager has no copy yet (st_blocks) */
#define VM_PG_PRECIOUS   (1u << 3)  /* must be returned even when clean */
#define VM_PG_EVICT      (1u << 4)  /* laundered for eviction: free when released */
#define VM_PG_REDIRTY    (1u << 5)  /* written while in laundry: stays dirty */
#define VM_PG_DISCARDED  (1u << 6)  /* discarded while absent: fill with zeros */
#define VM_PG_INSWAP     (1u << 7)  /* swap holds an older copy: forget it once the pager has this */
#define VM_PG_OVERDUE    (1u << 8)  /* its data_return passed the deadline: copy sent to swap */
#define VM_PG_DOUBLED    (1u << 9)  /* laundry went to the default pager (double paging) */
#define VM_PG_ORPHAN     (1u << 10) /* replaced in its object (written while overdue) */
#define VM_PG_REPLAY     (1u << 11) /* paged in from swap to go back to its pager */
#define VM_PG_ABANDONED  (1u << 12) /* filled as a hole while its data_request waits behind
                                        a suspect pager: pinned until the pager answers */
#define VM_PG_TO_DP      (1u << 13) /* in laundry: its data_return (msg) went to the default
                                        pager, not the object's pager */
#define VM_PG_WAIT_MSG   (1u << 14) /* msg's data_return awaits its data_return_completed */
#define VM_PG_WAIT_DMSG  (1u << 15) /* dmsg (the overdue copy) awaits its completion */

enum vm_queue { VM_Q_NONE = 0, VM_Q_FREE, VM_Q_POLICY, VM_Q_LAUNDRY };

struct vm_page {
    struct vm_object *object;
    uint64_t index;
    uint8_t state;     /* enum vm_page_state */
    uint8_t queue;     /* enum vm_queue (pool lock) */
    uint8_t loans;     /* data_returns in flight that point at the frame */
    uint16_t flags;    /* VM_PG_* */
    int16_t ret_status; /* the pager's answer to the data_return: 0 or -errno (laundry) */
    uint32_t lock_value; /* forbidden accesses (Mach page_lock) */
    uint32_t wire;     /* replies in flight that point at the frame */
    uint64_t laundry_ns; /* when the data_return was sent (pool lock) */
    uint64_t request_ns; /* absent: when its data_request went to the pager, 0 if it
                            heads no request (object lock; pager latency) */
    struct vm_page *hnext; /* object's hash chain (object lock); free list when free (pool lock) */
    struct vm_pnode pn;    /* policy queue or laundry list (pool lock) */
    void *frame;
    struct emm_msg msg;  /* preallocated data_return: pageout never allocates; its
                            seqno matches the pager's data_return_completed */
    struct emm_msg dmsg; /* preallocated copy for the default pager (overdue) */
};

/* What emmctl info memory shows of the pool. */
struct vm_pool_counts {
    uint64_t pages, free, active, inactive, queued, laundry_listed, second_chances;
};

struct vm_pool {
    pthread_mutex_t lock;
    struct vm_page *pages;
    uint8_t *arena;
    uint64_t npages;
    struct vm_page *free_head;
    uint64_t fresh; /* pages[fresh..npages) were never handed out: free, but neither
                       they nor their frames were touched (idle RSS stays small) */
    uint64_t nfree; /* the free list plus the never-used pages */
    const struct vm_policy_ops *policy;
    void *policy_state;
    uint64_t nqueued; /* pages in the policy */
    struct vm_pnode_list laundry; /* pages on loan, oldest first */
    uint64_t nlaundry_listed;
    int locked_in_ram;
    /* Pageout daemon wake-up. */
    pthread_cond_t wake;
    uint64_t free_target; /* the daemon works until nfree >= free_target */
    uint64_t free_min;    /* allocations below this kick the daemon */
};

/* policy NULL: second-chance. */
int vm_pool_init(struct vm_pool *pool, uint64_t bytes, const struct vm_policy_ops *policy);
void vm_pool_fini(struct vm_pool *pool);
/* Takes up to n free pages (no waiting); returns how many. Kicks the daemon when low. */
unsigned vm_pool_alloc(struct vm_pool *pool, struct vm_page **out, unsigned n);
/* All n or none (0): for a write, which needs all its frames at once. */
unsigned vm_pool_alloc_all(struct vm_pool *pool, struct vm_page **out, unsigned n);
void vm_pool_free(struct vm_pool *pool, struct vm_page *page);
/* Queue operations (pool lock taken inside). Enqueue hands a resident page to
 * the policy (a no-op if it has it); dequeue takes it off whatever list. */
void vm_pool_enqueue(struct vm_pool *pool, struct vm_page *page);
void vm_pool_dequeue(struct vm_pool *pool, struct vm_page *page);
/* A FUSE READ or WRITE hit these pages: their reference bits; a present page
 * not yet in the policy (just written) enters it. The caller holds the pages'
 * object lock (page->state is read). */
void vm_pool_touch(struct vm_pool *pool, struct vm_page *const *pages, unsigned n);
/* The page goes on loan to a pager: off the policy, onto the laundry list. */
void vm_pool_to_laundry(struct vm_pool *pool, struct vm_page *page, uint64_t now_ns);
uint64_t vm_pool_free_count(struct vm_pool *pool);
void vm_pool_counts(struct vm_pool *pool, struct vm_pool_counts *out);
/* The replacement policy in force (its name is static). */
const char *vm_pool_policy_name(struct vm_pool *pool);
/* Switches the replacement policy live (a reload): the new state is created
 * first (the only allocation), then, under the pool lock, every page the old
 * policy holds moves to the new one, coldest first; nothing is evicted or
 * lost, and pages on loan or free are not touched. 0 or -errno (nothing
 * changed). */
int vm_pool_set_policy(struct vm_pool *pool, const struct vm_policy_ops *policy);

/* Pool lock held (the daemon): the policy's next victim, off every list, or
 * NULL; a victim that cannot go now is handed back with vm_pool_requeue_locked. */
struct vm_page *vm_pool_victim_locked(struct vm_pool *pool);
void vm_pool_requeue_locked(struct vm_pool *pool, struct vm_page *page);
void vm_pool_unlist_locked(struct vm_pool *pool, struct vm_page *page);

static inline struct vm_page *
vm_page_of(struct vm_pnode *n)
{
    return n == NULL ? NULL
                     : (struct vm_page *)(void *)((char *)n - __builtin_offsetof(struct vm_page, pn));
}

#endif
