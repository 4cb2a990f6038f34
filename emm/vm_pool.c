/*
 * vm_pool.c - the resident page pool (see vm_pool.h). The arena is one anonymous
 * mapping, mlocked when the process may; descriptors are a plain array.
 *
 * Locking: pool->lock guards the free list, the queue and the counters.
 */
#include "vm_pool.h"

#include <emm/backend.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

int
vm_pool_init(struct vm_pool *pool, uint64_t bytes)
{
    memset(pool, 0, sizeof(*pool));
    pool->npages = bytes / EMM_PAGE_SIZE;
    if (pool->npages < 64)
        return -EINVAL;
    pool->pages = calloc(pool->npages, sizeof(struct vm_page));
    if (pool->pages == NULL)
        return -ENOMEM;
    pool->arena = mmap(NULL, pool->npages * EMM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (pool->arena == MAP_FAILED) {
        free(pool->pages);
        return -ENOMEM;
    }
    /* Keep the pool out of reclaim when permitted: emmd serves page-ins itself. */
    pool->locked_in_ram = mlock2(pool->arena, pool->npages * EMM_PAGE_SIZE, MLOCK_ONFAULT) == 0;
    if (!pool->locked_in_ram)
        emm_notice("resident pool not locked in RAM: %s", strerror(errno));
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (uint64_t i = pool->npages; i-- > 0;) {
        struct vm_page *p = &pool->pages[i];
        p->frame = pool->arena + i * EMM_PAGE_SIZE;
        p->queue = VM_Q_FREE;
        p->qnext = pool->free_head;
        pool->free_head = p;
    }
    pool->nfree = pool->npages;
    /* Mach-like targets scaled to the pool: keep a little free, refill in bursts. */
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
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pool->pages = NULL;
}

unsigned
vm_pool_alloc(struct vm_pool *pool, struct vm_page **out, unsigned n)
{
    unsigned got = 0;
    pthread_mutex_lock(&pool->lock);
    while (got < n && pool->free_head != NULL) {
        struct vm_page *p = pool->free_head;
        pool->free_head = p->qnext;
        p->qnext = NULL;
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
        out[i]->object = NULL;
        out[i]->hnext = NULL;
    }
    return got;
}

static void
queue_unlink(struct vm_pool *pool, struct vm_page *page)
{
    if (page->qprev != NULL)
        page->qprev->qnext = page->qnext;
    else
        pool->q_head = page->qnext;
    if (page->qnext != NULL)
        page->qnext->qprev = page->qprev;
    else
        pool->q_tail = page->qprev;
    page->qprev = page->qnext = NULL;
    page->queue = VM_Q_NONE;
    pool->nqueued--;
}

void
vm_pool_free(struct vm_pool *pool, struct vm_page *page)
{
    pthread_mutex_lock(&pool->lock);
    if (page->queue == VM_Q_INACTIVE)
        queue_unlink(pool, page);
    page->object = NULL;
    page->state = VM_PAGE_FREE;
    page->queue = VM_Q_FREE;
    page->qnext = pool->free_head;
    pool->free_head = page;
    pool->nfree++;
    pthread_mutex_unlock(&pool->lock);
}

void
vm_pool_enqueue(struct vm_pool *pool, struct vm_page *page)
{
    pthread_mutex_lock(&pool->lock);
    if (page->queue != VM_Q_INACTIVE) {
        page->queue = VM_Q_INACTIVE;
        page->qnext = NULL;
        page->qprev = pool->q_tail;
        if (pool->q_tail != NULL)
            pool->q_tail->qnext = page;
        else
            pool->q_head = page;
        pool->q_tail = page;
        pool->nqueued++;
    }
    pthread_mutex_unlock(&pool->lock);
}

void
vm_pool_dequeue(struct vm_pool *pool, struct vm_page *page)
{
    pthread_mutex_lock(&pool->lock);
    if (page->queue == VM_Q_INACTIVE)
        queue_unlink(pool, page);
    pthread_mutex_unlock(&pool->lock);
}

uint64_t
vm_pool_free_count(struct vm_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    uint64_t n = pool->nfree;
    pthread_mutex_unlock(&pool->lock);
    return n;
}
