/*
 * vm_pageout.c - the kernel's threads: the pageout daemon, which keeps free
 * frames above the pool's targets by scanning the page FIFO with a second chance
 * (referenced pages go round again, clean pages are dropped, dirty ones are
 * laundered to their pager with data_return), and the kernel worker, which
 * reruns operations of objects that waited for free frames.
 *
 * The pageout path never allocates: data_return uses the message embedded in
 * each vm_page. Laundry in flight is bounded (laundry_max); the daemon sleeps
 * on the pool's condition until pages come back.
 *
 * Locking: the daemon takes the pool lock, then only *tries* an object's lock
 * (the usual order is object then pool), rotating the page if it fails.
 * kick_lock guards the worker's queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

void
vm_kernel_kick(struct vm_kernel *k, struct vm_object *obj)
{
    /* Tell the daemon how many frames must come free at once (obj->lock held). */
    unsigned need = obj->need_frames, cur = atomic_load(&k->need_frames);
    while (need > cur && !atomic_compare_exchange_weak(&k->need_frames, &cur, need))
        ;
    pthread_mutex_lock(&k->kick_lock);
    if (!obj->kicked) {
        obj->kicked = 1;
        vm_object_ref(obj);
        obj->kick_next = k->kick_head;
        k->kick_head = obj;
        atomic_store(&k->kicks_pending, 1);
    }
    pthread_mutex_unlock(&k->kick_lock);
    /* Frames come from the daemon: make sure it runs. */
    pthread_mutex_lock(&k->pool.lock);
    pthread_cond_signal(&k->pool.wake);
    pthread_mutex_unlock(&k->pool.lock);
}

static void
timed_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000;
    while (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cond, lock, &ts);
}

/* Reruns starved objects once enough frames are free for them; otherwise waits
 * for the daemon's progress signal instead of spinning on their locks. */
static void *
worker_main(void *arg)
{
    struct vm_kernel *k = arg;
    pthread_mutex_lock(&k->kick_lock);
    while (!atomic_load(&k->stopping)) {
        if (k->kick_head == NULL) {
            timed_wait_ms(&k->kick_cond, &k->kick_lock, 20);
            continue;
        }
        struct vm_object *list = k->kick_head, *later = NULL;
        k->kick_head = NULL;
        atomic_store(&k->kicks_pending, 0);
        atomic_store(&k->need_frames, 0);
        pthread_mutex_unlock(&k->kick_lock);
        uint64_t nfree = vm_pool_free_count(&k->pool);
        while (list != NULL) {
            struct vm_object *obj = list;
            list = obj->kick_next;
            uint64_t need = obj->need_frames;
            if (need > k->pool.npages / 2) /* never wait for the impossible */
                need = k->pool.npages / 2;
            if (nfree < need) { /* not yet: keep it for the next round */
                obj->kick_next = later;
                later = obj;
                continue;
            }
            pthread_mutex_lock(&k->kick_lock);
            obj->kicked = 0;
            pthread_mutex_unlock(&k->kick_lock);
            vm_obj_retry(obj);
            vm_object_unref(obj);
            nfree = vm_pool_free_count(&k->pool);
        }
        pthread_mutex_lock(&k->kick_lock);
        if (later != NULL) {
            unsigned most = 0;
            for (struct vm_object *o = later; o; o = o->kick_next)
                if (o->need_frames > most)
                    most = o->need_frames;
            struct vm_object *tail = later;
            while (tail->kick_next != NULL)
                tail = tail->kick_next;
            tail->kick_next = k->kick_head;
            k->kick_head = later;
            atomic_store(&k->kicks_pending, 1);
            unsigned cur = atomic_load(&k->need_frames);
            while (most > cur && !atomic_compare_exchange_weak(&k->need_frames, &cur, most))
                ;
            timed_wait_ms(&k->kick_cond, &k->kick_lock, 5);
        }
    }
    pthread_mutex_unlock(&k->kick_lock);
    return NULL;
}

/* One scan step on the page at the head of the FIFO. Pool lock held; returns
 * with it held. Returns 1 if a frame was freed or laundering started, 0 if the
 * page went round again, -1 if its object was busy (the burst should pause). */
static int
scan_one(struct vm_kernel *k, uint64_t now)
{
    struct vm_pool *pool = &k->pool;
    struct vm_page *p = pool->q_head;
    if (p == NULL)
        return 0;
    /* Take it off the queue; every path below puts it back or frees it. */
    pool->q_head = p->qnext;
    if (pool->q_head != NULL)
        pool->q_head->qprev = NULL;
    else
        pool->q_tail = NULL;
    p->qnext = p->qprev = NULL;
    p->queue = VM_Q_NONE;
    pool->nqueued--;

    struct vm_object *obj = p->object;
    if (pthread_mutex_trylock(&obj->lock) != 0) {
        /* Busy (a supply or a write is in progress): put it back at the head and
         * end the burst rather than spin through pages of the same object. */
        p->queue = VM_Q_INACTIVE;
        p->qnext = pool->q_head;
        p->qprev = NULL;
        if (pool->q_head != NULL)
            pool->q_head->qprev = p;
        else
            pool->q_tail = p;
        pool->q_head = p;
        pool->nqueued++;
        return -1;
    }
    if (p->state != VM_PAGE_PRESENT || p->wire > 0 || obj->backoff_until_ns > now) {
        pthread_mutex_unlock(&obj->lock);
        goto requeue;
    }
    if (p->flags & VM_PG_REFERENCED) { /* second chance */
        p->flags &= ~VM_PG_REFERENCED;
        pthread_mutex_unlock(&obj->lock);
        goto requeue;
    }
    if (!(p->flags & (VM_PG_DIRTY | VM_PG_PRECIOUS))) {
        pthread_mutex_unlock(&pool->lock);
        vm_obj_remove_page(obj, p);
        atomic_fetch_add(&k->stats.reclaimed_clean, 1);
        pthread_mutex_unlock(&obj->lock);
        pthread_mutex_lock(&pool->lock);
        return 1;
    }
    /* Dirty (or precious): launder it, freeing the frame when the pager has it. */
    struct vm_batch b = {0};
    pthread_mutex_unlock(&pool->lock);
    vm_obj_launder(obj, p, 1, &b);
    /* Clustered pageout: dirty, idle neighbours go back with it (one backend
     * write for a pager that takes clusters). */
    for (uint64_t idx = p->index + 1; idx < p->index + 16; idx++) {
        struct vm_page *q = vm_obj_page(obj, idx);
        if (q == NULL || q->state != VM_PAGE_PRESENT || q->wire > 0 ||
            !(q->flags & VM_PG_DIRTY) || (q->flags & VM_PG_REFERENCED))
            break;
        vm_obj_launder(obj, q, 1, &b);
    }
    vm_object_ref(obj);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    vm_object_unref(obj);
    pthread_mutex_lock(&pool->lock);
    return 1;

requeue:
    p->queue = VM_Q_INACTIVE;
    p->qprev = pool->q_tail;
    if (pool->q_tail != NULL)
        pool->q_tail->qnext = p;
    else
        pool->q_head = p;
    pool->q_tail = p;
    pool->nqueued++;
    return 0;
}

static void *
pageout_main(void *arg)
{
    struct vm_kernel *k = arg;
    struct vm_pool *pool = &k->pool;
    pthread_mutex_lock(&pool->lock);
    while (!atomic_load(&k->stopping)) {
        uint64_t in_flight = atomic_load(&k->laundry);
        uint64_t target = pool->free_target;
        if (atomic_load(&k->kicks_pending) && atomic_load(&k->need_frames) > target)
            target = atomic_load(&k->need_frames);
        if (pool->nfree >= target || in_flight >= k->laundry_max || pool->nqueued == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&pool->wake, &pool->lock, &ts);
            if (pool->nfree > 0 && atomic_load(&k->kicks_pending)) {
                pthread_mutex_unlock(&pool->lock);
                pthread_mutex_lock(&k->kick_lock);
                pthread_cond_signal(&k->kick_cond);
                pthread_mutex_unlock(&k->kick_lock);
                pthread_mutex_lock(&pool->lock);
            }
            continue;
        }
        /* A burst: at most one pass over the queue, bounded laundry. */
        uint64_t budget = pool->nqueued;
        uint64_t now = emm_mono_ns();
        int progress = 0;
        int busy = 0;
        while (budget-- > 0 && pool->nfree < target &&
               atomic_load(&k->laundry) < k->laundry_max && !atomic_load(&k->stopping)) {
            int r = scan_one(k, now);
            if (r < 0) {
                busy = 1;
                break;
            }
            progress |= r;
        }
        pthread_mutex_unlock(&pool->lock);
        pthread_mutex_lock(&k->kick_lock);
        pthread_cond_signal(&k->kick_cond);
        pthread_mutex_unlock(&k->kick_lock);
        if (busy) {
            struct timespec pause = {0, 20000}; /* the holder finishes soon */
            nanosleep(&pause, NULL);
        } else if (!progress) {
            struct timespec pause = {0, 1000000}; /* adaptive pause: nothing to take */
            nanosleep(&pause, NULL);
        }
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int
vm_pageout_start(struct vm_kernel *k)
{
    int rc = pthread_create(&k->pageout_thread, NULL, pageout_main, k);
    if (rc != 0)
        return -rc;
    rc = pthread_create(&k->worker_thread, NULL, worker_main, k);
    if (rc != 0) {
        atomic_store(&k->stopping, 1);
        pthread_join(k->pageout_thread, NULL);
        return -rc;
    }
    return 0;
}

void
vm_pageout_stop(struct vm_kernel *k)
{
    atomic_store(&k->stopping, 1);
    pthread_mutex_lock(&k->pool.lock);
    pthread_cond_broadcast(&k->pool.wake);
    pthread_mutex_unlock(&k->pool.lock);
    pthread_mutex_lock(&k->kick_lock);
    pthread_cond_broadcast(&k->kick_cond);
    pthread_mutex_unlock(&k->kick_lock);
    pthread_join(k->pageout_thread, NULL);
    pthread_join(k->worker_thread, NULL);
    while (k->kick_head != NULL) {
        struct vm_object *obj = k->kick_head;
        k->kick_head = obj->kick_next;
        obj->kicked = 0;
        vm_object_unref(obj);
    }
}

int
vm_kernel_create(uint64_t resident_bytes, const struct vm_upcalls *up, struct vm_kernel **out)
{
    struct vm_kernel *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    int rc = vm_pool_init(&k->pool, resident_bytes);
    if (rc < 0) {
        free(k);
        return rc;
    }
    if (up != NULL)
        k->up = *up;
    k->laundry_max = k->pool.npages / 4 > 1024 ? 1024 : k->pool.npages / 4;
    pthread_mutex_init(&k->kick_lock, NULL);
    pthread_cond_init(&k->kick_cond, NULL);
    rc = vm_pageout_start(k);
    if (rc < 0) {
        vm_pool_fini(&k->pool);
        free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void
vm_kernel_destroy(struct vm_kernel *k)
{
    vm_pageout_stop(k);
    vm_pool_fini(&k->pool);
    pthread_cond_destroy(&k->kick_cond);
    pthread_mutex_destroy(&k->kick_lock);
    free(k);
}

struct vm_stats *
vm_kernel_stats(struct vm_kernel *k)
{
    return &k->stats;
}

struct vm_pool *
vm_kernel_pool(struct vm_kernel *k)
{
    return &k->pool;
}

uint64_t
vm_kernel_laundry(struct vm_kernel *k)
{
    return atomic_load(&k->laundry);
}
