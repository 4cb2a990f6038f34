/*
 * vm_pool.h - the resident page pool: a fixed, mlocked arena of page frames
 * (resident-limit / 4 KiB of them), their vm_page descriptors, the free list and
 * the FIFO page queue the pageout daemon scans.
 *
 * Locking: pool->lock guards the free list, the queue links (page->qprev/qnext,
 * page->queue) and the counters. A page's state, flags and contents belong to its
 * object and are guarded by the object's lock. Order: object lock, then pool lock.
 */
#ifndef EMM_VM_POOL_H
#define EMM_VM_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "msg.h"

struct vm_object;

enum vm_page_state {
    VM_PAGE_FREE = 0,
    VM_PAGE_ABSENT,  /* data_request sent, frame reserved, waiting for the pager */
    VM_PAGE_PRESENT, /* valid data */
    VM_PAGE_LAUNDRY, /* valid data on loan to the pager in a data_return */
};

#define VM_PG_DIRTY      (1u << 0) /* modified since the pager last had it */
#define VM_PG_REFERENCED (1u << 1) /* touched since the daemon last looked */
#define VM_PG_NEW        (1u << 2) /* the pager has no copy yet (st_blocks) */
#define VM_PG_PRECIOUS   (1u << 3) /* must be returned even when clean */
#define VM_PG_EVICT      (1u << 4) /* laundered for eviction: free when released */
#define VM_PG_REDIRTY    (1u << 5) /* written while in laundry: stays dirty */
#define VM_PG_DISCARDED  (1u << 6) /* discarded while absent: fill with zeros */

enum vm_queue { VM_Q_NONE = 0, VM_Q_FREE, VM_Q_INACTIVE };

struct vm_page {
    struct vm_object *object;
    uint64_t index;
    uint8_t state;     /* enum vm_page_state */
    uint8_t queue;     /* enum vm_queue (pool lock) */
    uint16_t flags;    /* VM_PG_* */
    uint32_t lock_value; /* forbidden accesses (Mach page_lock) */
    uint32_t wire;     /* replies in flight that point at the frame */
    struct vm_page *hnext;          /* object's hash chain */
    struct vm_page *qprev, *qnext;  /* pool queue */
    void *frame;
    struct emm_msg msg; /* preallocated data_return: pageout never allocates */
};

struct vm_pool {
    pthread_mutex_t lock;
    struct vm_page *pages;
    uint8_t *arena;
    uint64_t npages;
    struct vm_page *free_head;
    uint64_t nfree;
    struct vm_page *q_head, *q_tail; /* FIFO of resident pages, oldest first */
    uint64_t nqueued;
    int locked_in_ram;
    /* Pageout daemon wake-up. */
    pthread_cond_t wake;
    uint64_t free_target; /* the daemon works until nfree >= free_target */
    uint64_t free_min;    /* allocations below this kick the daemon */
};

int vm_pool_init(struct vm_pool *pool, uint64_t bytes);
void vm_pool_fini(struct vm_pool *pool);
/* Takes up to n free pages (no waiting); returns how many. Kicks the daemon when low. */
unsigned vm_pool_alloc(struct vm_pool *pool, struct vm_page **out, unsigned n);
void vm_pool_free(struct vm_pool *pool, struct vm_page *page);
/* Queue operations (pool lock taken inside). */
void vm_pool_enqueue(struct vm_pool *pool, struct vm_page *page); /* at the tail */
void vm_pool_dequeue(struct vm_pool *pool, struct vm_page *page);
uint64_t vm_pool_free_count(struct vm_pool *pool);

#endif
