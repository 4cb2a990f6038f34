/*
 * vm_pool.c - the resident page pool (see vm_pool.h). The arena is one anonymous
 * mapping, mlocked on fault when the process may (MLOCK_ONFAULT: a frame is
 * locked once it is first used, never touched before); descriptors are a plain
 * calloc'd array, also untouched until a page is first handed out (pool->fresh),
 * so an idle daemon with a large resident-limit costs almost nothing. The
 * laundry list and the policy's queues share each page's pnode (page->queue
 * says which one a page is on); the free list links through page->hnext, which
 * a free page does not need (it is on no object's hash chain).
 *
 * Locking: pool->lock guards the free list, the policy, the laundry list and
 * the counters.
 */
#include "vm_pool.h"

#include <emm/backend.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

int
vm_pool_init(struct vm_pool *pool, uint64_t bytes, const struct vm_policy_ops *policy)
{
    memset(pool, 0, sizeof(*pool));
    TAILQ_INIT(&pool->laundry);
    pool->npages = bytes / EMM_PAGE_SIZE;
    if (pool->npages < 64)
        return -EINVAL;
    pool->policy = policy != NULL ? policy : vm_policy_lookup(VM_POLICY_DEFAULT);
    int rc = pool->policy->create(pool->npages, &pool->policy_state);
    if (rc < 0)
        return rc;
    pool->pages = calloc(pool->npages, sizeof(struct vm_page));
    if (pool->pages == NULL) {
        pool->policy->destroy(pool->policy_state);
        return -ENOMEM;
    }
    pool->arena = mmap(NULL, pool->npages * EMM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (pool->arena == MAP_FAILED) {
        free(pool->pages);
        pool->policy->destroy(pool->policy_state);
        return -ENOMEM;
    }
    /* Keep the pool out of reclaim when permitted: emmd serves page-ins itself. */
    pool->locked_in_ram = mlock2(pool->arena, pool->npages * EMM_PAGE_SIZE, MLOCK_ONFAULT) == 0;
    if (!pool->locked_in_ram)
        emm_notice("resident pool not locked in RAM: %s", strerror(errno));
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    /* No free list yet: pool_take hands out pages[fresh++] once the list is empty. */
    pool->fresh = 0;
    pool->nfree = pool->npages;
    /* Mach's targets (free_min = reserved + avail/100, free_target = reserved +
     * avail/80) scaled up: a user-space pool refills in bigger bursts. */
    pool->free_min = pool->npages / 64 + 16;
    pool->free_target = pool->npages / 16 + 32;
    return 0;
}

void
vm_pool_fini(struct vm_pool *pool)
{
    if (pool->pages == NULL)
        return;
    munmap(pool->arena, pool->npages * EMM_PAGE_SIZE);
    free(pool->pages);
    pool->policy->destroy(pool->policy_state);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pool->pages = NULL;
}

static unsigned
pool_take(struct vm_pool *pool, struct vm_page **out, unsigned n, int all)
{
    unsigned got = 0;
    pthread_mutex_lock(&pool->lock);
    while (got < n && (pool->free_head != NULL || pool->fresh < pool->npages) &&
           (!all || pool->nfree >= n)) {
        struct vm_page *p = pool->free_head;
        if (p != NULL) {
            pool->free_head = p->hnext;
        } else { /* first use of this descriptor and frame */
            p = &pool->pages[pool->fresh];
            p->frame = pool->arena + pool->fresh * EMM_PAGE_SIZE;
            pool->fresh++;
        }
        p->queue = VM_Q_NONE;
        out[got++] = p;
    }
    pool->nfree -= got;
    if (pool->nfree < pool->free_min || got < n)
        pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < got; i++) {
        out[i]->state = VM_PAGE_FREE;
        out[i]->flags = 0;
        out[i]->lock_value = 0;
        out[i]->wire = 0;
        out[i]->loans = 0;
        out[i]->object = NULL;
        out[i]->hnext = NULL;
    }
    return got;
}

unsigned
vm_pool_alloc(struct vm_pool *pool, struct vm_page **out, unsigned n)
{
    return pool_take(pool, out, n, 0);
}

unsigned
vm_pool_alloc_all(struct vm_pool *pool, struct vm_page **out, unsigned n)
{
    return pool_take(pool, out, n, 1);
}

static void
laundry_unlink(struct vm_pool *pool, struct vm_pnode *n)
{
    TAILQ_REMOVE(&pool->laundry, n, link);
    pool->nlaundry_listed--;
}

void
vm_pool_unlist_locked(struct vm_pool *pool, struct vm_page *page)
{
    if (page->queue == VM_Q_POLICY) {
        pool->policy->remove(pool->policy_state, &page->pn);
        pool->nqueued--;
    } else if (page->queue == VM_Q_LAUNDRY) {
        laundry_unlink(pool, &page->pn);
    }
    page->queue = VM_Q_NONE;
}

void
vm_pool_free(struct vm_pool *pool, struct vm_page *page)
{
    pthread_mutex_lock(&pool->lock);
    vm_pool_unlist_locked(pool, page);
    page->object = NULL;
    page->state = VM_PAGE_FREE;
    page->queue = VM_Q_FREE;
    page->hnext = pool->free_head;
    pool->free_head = page;
    pool->nfree++;
    pthread_mutex_unlock(&pool->lock);
}

static void
policy_insert(struct vm_pool *pool, struct vm_page *page)
{
    /* The key outlives the frame (s3-fifo's ghost): what the page holds. */
    page->pn.key = ((uint64_t)(uintptr_t)page->object * 0x9E3779B97F4A7C15ull) ^ page->index;
    page->pn.flags = 0;
    pool->policy->insert(pool->policy_state, &page->pn);
    page->queue = VM_Q_POLICY;
    pool->nqueued++;
}

void
vm_pool_enqueue(struct vm_pool *pool, struct vm_page *page)
{
    pthread_mutex_lock(&pool->lock);
    if (page->queue != VM_Q_POLICY) {
        vm_pool_unlist_locked(pool, page);
        policy_insert(pool, page);
    }
    pthread_mutex_unlock(&pool->lock);
}

void
vm_pool_dequeue(struct vm_pool *pool, struct vm_page *page)
{
    pthread_mutex_lock(&pool->lock);
    vm_pool_unlist_locked(pool, page);
    pthread_mutex_unlock(&pool->lock);
}

static void policy_insert(struct vm_pool *pool, struct vm_page *page);

void
vm_pool_touch(struct vm_pool *pool, struct vm_page *const *pages, unsigned n)
{
    pthread_mutex_lock(&pool->lock);
    for (unsigned i = 0; i < n; i++) {
        struct vm_page *p = pages[i];
        if (p->queue == VM_Q_POLICY)
            pool->policy->touch(pool->policy_state, &p->pn);
        else if (p->queue == VM_Q_NONE && p->state == VM_PAGE_PRESENT)
            policy_insert(pool, p); /* a page just written */
    }
    pthread_mutex_unlock(&pool->lock);
}

void
vm_pool_to_laundry(struct vm_pool *pool, struct vm_page *page, uint64_t now_ns)
{
    pthread_mutex_lock(&pool->lock);
    vm_pool_unlist_locked(pool, page);
    struct vm_pnode *n = &page->pn;
    TAILQ_INSERT_TAIL(&pool->laundry, n, link);
    pool->nlaundry_listed++;
    page->laundry_ns = now_ns;
    page->queue = VM_Q_LAUNDRY;
    pthread_mutex_unlock(&pool->lock);
}

struct vm_page *
vm_pool_victim_locked(struct vm_pool *pool)
{
    struct vm_page *p = vm_page_of(pool->policy->victim(pool->policy_state));
    if (p != NULL) {
        p->queue = VM_Q_NONE;
        pool->nqueued--;
    }
    return p;
}

void
vm_pool_requeue_locked(struct vm_pool *pool, struct vm_page *page)
{
    if (page->queue == VM_Q_NONE)
        policy_insert(pool, page);
}

uint64_t
vm_pool_free_count(struct vm_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    uint64_t n = pool->nfree;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void
vm_pool_counts(struct vm_pool *pool, struct vm_pool_counts *out)
{
    pthread_mutex_lock(&pool->lock);
    void *st = pool->policy_state;
    const struct vm_policy_ops *po = pool->policy;
    out->pages = pool->npages;
    out->free = pool->nfree;
    out->queued = pool->nqueued;
    /* Second-chance reports active/inactive; the others are one or two FIFOs
     * that play the same roles (fifo: all inactive; s3-fifo: main is active). */
    out->active = po->count(st, VM_PQ_ACTIVE) + po->count(st, VM_PQ_MAIN) +
                  po->count(st, VM_PQ_LRU);
    out->inactive = pool->nqueued - out->active;
    out->laundry_listed = pool->nlaundry_listed;
    out->second_chances = po->second_chances ? po->second_chances(st) : 0;
    pthread_mutex_unlock(&pool->lock);
}

const char *
vm_pool_policy_name(struct vm_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    const char *name = pool->policy->name;
    pthread_mutex_unlock(&pool->lock);
    return name;
}

int
vm_pool_set_policy(struct vm_pool *pool, const struct vm_policy_ops *policy)
{
    void *st = NULL;
    /* Only create allocates: done before the lock, so the pageout path and
     * the faults wait only for the moves below, which never allocate. */
    int rc = policy->create(pool->npages, &st);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&pool->lock);
    const struct vm_policy_ops *old = pool->policy;
    void *old_st = pool->policy_state;
    if (old == policy) {
        pthread_mutex_unlock(&pool->lock);
        policy->destroy(st);
        return 0;
    }
    /* The old policy's victims come coldest first; the new one gets them in
     * that order, so what the old one thought hottest is the newest. Pages on
     * the laundry list, free or off every list are not in a policy and keep
     * their place (page->queue is unchanged: still VM_Q_POLICY for these). */
    uint64_t moved = 0;
    struct vm_pnode *n;
    while ((n = old->victim(old_st)) != NULL) {
        n->flags = 0;
        n->ref = 0;
        n->queue = VM_PQ_NONE;
        policy->insert(st, n);
        moved++;
    }
    pool->policy = policy;
    pool->policy_state = st;
    uint64_t queued = pool->nqueued;
    pthread_mutex_unlock(&pool->lock);
    if (moved != queued)
        emm_warn("pageout policy %s -> %s: moved %llu pages, %llu were queued", old->name,
                 policy->name, (unsigned long long)moved, (unsigned long long)queued);
    old->destroy(old_st);
    return 0;
}
