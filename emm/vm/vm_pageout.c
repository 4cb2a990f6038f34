/*
 * vm_pageout.c - the kernel's threads: the pageout daemon, which keeps free
 * frames above the pool's targets by taking the replacement policy's victims
 * (second-chance by default: referenced pages go round again, clean pages are
 * dropped, dirty ones are laundered to their pager with data_return), and the
 * kernel worker, which reruns operations of objects that waited for free
 * frames and replays pages held in swap.
 *
 * The pageout path never allocates: data_return uses the message embedded in
 * each vm_page. Laundry in flight is bounded (laundry_max); the daemon sleeps
 * on the pool's condition until pages come back.
 *
 * Data_returns not acknowledged within the object's pager.deadline are copied
 * to the default pager (double paging); the worker replays pages held in swap
 * to their pagers once those answer again.
 *
 * Locking: the daemon takes the pool lock, then only *tries* an object's lock
 * (the usual order is object then pool), handing the page back if it fails.
 * kick_lock guards the worker's queue, the list of objects with pages in swap
 * and the list of objects with operations waiting (rerun when a pager goes
 * overdue, and each second).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

static void
timed_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long ms)
{
    struct timespec ts = emm_deadline_after_ms(CLOCK_REALTIME, (uint64_t)ms);
    pthread_cond_timedwait(cond, lock, &ts);
}

/* Gives pages held in swap back to their pagers, a batch per object and round,
 * while frames are plentiful; drops objects with nothing left. kick_lock held. */
static void
replay_round(struct vm_kernel *k)
{
    struct vm_object *list = k->swapped_head, *keep = NULL;
    k->swapped_head = NULL;
    pthread_mutex_unlock(&k->kick_lock);
    while (list != NULL) {
        struct vm_object *obj = list;
        list = obj->swapped_next;
        int more = 1;
        if (vm_pool_free_count(&k->pool) > k->pool.free_min + 64)
            more = vm_obj_replay(obj, 256);
        else
            more = !atomic_load(&k->stopping);
        pthread_mutex_lock(&k->kick_lock);
        if (more && !atomic_load(&k->stopping)) {
            obj->swapped_next = keep;
            keep = obj;
            pthread_mutex_unlock(&k->kick_lock);
        } else {
            obj->on_swapped_list = 0;
            pthread_mutex_unlock(&k->kick_lock);
            vm_object_unref(obj);
        }
    }
    pthread_mutex_lock(&k->kick_lock);
    while (keep != NULL) {
        struct vm_object *obj = keep;
        keep = obj->swapped_next;
        obj->swapped_next = k->swapped_head;
        k->swapped_head = obj;
    }
}

/* Seeks waiting for a pager's query_reply: those past their wait, or whose
 * pager turned suspect, are answered from what the kernel knows. Called and
 * returns with kick_lock held. */
static void
seek_round(struct vm_kernel *k)
{
    struct vm_object *list = k->seeking_head, *keep = NULL;
    k->seeking_head = NULL;
    pthread_mutex_unlock(&k->kick_lock);
    uint64_t now = emm_mono_ns();
    while (list != NULL) {
        struct vm_object *obj = list;
        list = obj->seeking_next;
        struct vm_batch b = VM_BATCH_INIT(b);
        pthread_mutex_lock(&obj->lock);
        int more = vm_obj_seeks_expire(obj, now, 0, &b);
        /* Decided under the object lock: a seek sent from now on finds the
         * object off the list and puts it back. */
        pthread_mutex_lock(&k->kick_lock);
        if (more && !atomic_load(&k->stopping)) {
            obj->seeking_next = keep;
            keep = obj;
        } else {
            obj->on_seeking_list = 0;
        }
        pthread_mutex_unlock(&k->kick_lock);
        pthread_mutex_unlock(&obj->lock);
        vm_batch_flush(obj, &b);
        if (!more || atomic_load(&k->stopping))
            vm_object_unref(obj);
    }
    pthread_mutex_lock(&k->kick_lock);
    while (keep != NULL) {
        struct vm_object *obj = keep;
        keep = obj->seeking_next;
        obj->seeking_next = k->seeking_head;
        k->seeking_head = obj;
    }
}

/* Reruns the waiting operations of every listed object: a data_request its
 * pager has not answered, stuck behind another object's overdue return, is
 * then filled as a hole if that pager lacks the page (vm_fault.c). Drops the
 * objects with nothing waiting. kick_lock held; returns with it held. */
static void
waiting_round(struct vm_kernel *k)
{
    struct vm_object *list = k->waiting_head, *keep = NULL;
    k->waiting_head = NULL;
    k->recheck_waiting = 0;
    pthread_mutex_unlock(&k->kick_lock);
    uint64_t now = emm_mono_ns();
    while (list != NULL) {
        struct vm_object *obj = list;
        list = obj->waiting_next;
        vm_obj_retry(obj); /* first: holes of a suspect pager are filled */
        vm_obj_requests_expire(obj, now); /* what still waits for a silent pager: EIO */
        /* Both locks: an operation queued meanwhile finds it still listed. */
        pthread_mutex_lock(&obj->lock);
        pthread_mutex_lock(&k->kick_lock);
        int waits = (!STAILQ_EMPTY(&obj->ios) || !STAILQ_EMPTY(&obj->syncs)) &&
                    !atomic_load(&k->stopping);
        if (waits) {
            obj->waiting_next = keep;
            keep = obj;
        } else {
            obj->on_waiting_list = 0;
        }
        pthread_mutex_unlock(&k->kick_lock);
        pthread_mutex_unlock(&obj->lock);
        if (!waits)
            vm_object_unref(obj);
    }
    pthread_mutex_lock(&k->kick_lock);
    while (keep != NULL) {
        struct vm_object *obj = keep;
        keep = obj->waiting_next;
        obj->waiting_next = k->waiting_head;
        k->waiting_head = obj;
    }
}

/* Objects whose pager died: their waits end at the deadline. Called and
 * returns with kick_lock held. */
static void
lost_round(struct vm_kernel *k)
{
    struct vm_object *list = k->lost_head, *keep = NULL;
    k->lost_head = NULL;
    pthread_mutex_unlock(&k->kick_lock);
    uint64_t now = emm_mono_ns();
    while (list != NULL) {
        struct vm_object *obj = list;
        list = obj->lost_next;
        int more = vm_obj_lost_expire(obj, now) && !atomic_load(&k->stopping);
        pthread_mutex_lock(&k->kick_lock);
        if (more) {
            obj->lost_next = keep;
            keep = obj;
        } else {
            obj->on_lost_list = 0;
        }
        pthread_mutex_unlock(&k->kick_lock);
        if (!more)
            vm_object_unref(obj);
    }
    pthread_mutex_lock(&k->kick_lock);
    while (keep != NULL) {
        struct vm_object *obj = keep;
        keep = obj->lost_next;
        obj->lost_next = k->lost_head;
        k->lost_head = obj;
    }
}

/* Reruns starved objects once enough frames are free for them; otherwise waits
 * for the daemon's progress signal instead of spinning on their locks. */
static void *
worker_main(void *arg)
{
    struct vm_kernel *k = arg;
    uint64_t next_replay = 0, next_waiting = 0, next_seeks = 0, next_lost = 0, next_queries = 0;
    pthread_mutex_lock(&k->kick_lock);
    while (!atomic_load(&k->stopping)) {
        uint64_t now = emm_mono_ns();
        /* At once when a pager went overdue; each second anyway, so objects
         * whose operations ended leave the list. */
        if (k->recheck_waiting || (k->waiting_head != NULL && now >= next_waiting)) {
            waiting_round(k);
            next_waiting = now + 1000000000ull;
            continue;
        }
        if (k->swapped_head != NULL && now >= next_replay) {
            replay_round(k);
            next_replay = now + 10000000ull;
            continue;
        }
        if (k->lost_head != NULL && now >= next_lost) {
            lost_round(k);
            next_lost = now + 10000000ull;
            continue;
        }
        if (k->seeking_head != NULL && now >= next_seeks) {
            seek_round(k);
            next_seeks = now + 10000000ull;
            continue;
        }
        if (now >= next_queries) { /* count queries of objects not mapped (vm_query.c) */
            pthread_mutex_unlock(&k->kick_lock);
            vm_queries_expire(k, now, 0);
            pthread_mutex_lock(&k->kick_lock);
            next_queries = now + 10000000ull;
            continue;
        }
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
            uint64_t need = atomic_load(&obj->need_frames);
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
                if (atomic_load(&o->need_frames) > most)
                    most = atomic_load(&o->need_frames);
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

/* One reclaim step: the policy's victim (second-chance: the head of inactive,
 * after the second chances it gave). Pool lock held; returns with it held.
 * 1 if a frame was freed or laundering started, 0 if the page went back, -1 if
 * its object was busy (the burst should pause). */
static int
scan_one(struct vm_kernel *k, uint64_t now)
{
    struct vm_pool *pool = &k->pool;
    struct vm_page *p = vm_pool_victim_locked(pool);
    if (p == NULL)
        return 0;
    struct vm_object *obj = p->object;
    if (pthread_mutex_trylock(&obj->lock) != 0) {
        /* Busy (a supply or a write is in progress): hand it back and end the
         * burst rather than spin through pages of the same object. */
        vm_pool_requeue_locked(pool, p);
        return -1;
    }
    if (p->state != VM_PAGE_PRESENT || p->wire > 0 || obj->backoff_until_ns > now ||
        (p->flags & VM_PG_ABANDONED)) {
        vm_pool_requeue_locked(pool, p);
        pthread_mutex_unlock(&obj->lock);
        return 0;
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
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_unlock(&pool->lock);
    vm_obj_launder(obj, p, 1, &b);
    /* Clustered pageout: dirty, idle neighbours go back with it, cleaned in
     * place (they stay resident, so a hot one is not lost), in one backend
     * write for a pager that takes clusters. Not while the pager is sick. */
    for (uint64_t idx = p->index + 1; idx < p->index + 16 && !vm_pager_suspect(obj->pstats, now); idx++) {
        struct vm_page *q = vm_obj_page(obj, idx);
        if (q == NULL || q->state != VM_PAGE_PRESENT || q->wire > 0 ||
            !(q->flags & VM_PG_DIRTY))
            break;
        vm_obj_launder(obj, q, 0, &b);
    }
    vm_object_ref(obj);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    vm_object_unref(obj);
    pthread_mutex_lock(&pool->lock);
    return 1;
}

/* Data_returns older than their object's deadline: copy them to swap and stop
 * sending that pager pageouts for a while (double paging). Pool lock held;
 * returns with it held. */
static void
check_overdue(struct vm_kernel *k, uint64_t now)
{
    struct vm_pool *pool = &k->pool;
    struct vm_pnode *n = TAILQ_FIRST(&pool->laundry);
    unsigned looked = 0;
    while (n != NULL && looked++ < 256) {
        struct vm_page *p = vm_page_of(n);
        n = TAILQ_NEXT(n, link);
        struct vm_object *obj = p->object;
        uint64_t deadline = atomic_load_explicit(&obj->deadline_ns, memory_order_relaxed);
        if (deadline == 0 || p->laundry_ns + deadline > now) /* now may predate the stamp */
            continue; /* later ones were sent later, but deadlines differ */
        if (pthread_mutex_trylock(&obj->lock) != 0)
            continue;
        struct vm_batch b = VM_BATCH_INIT(b);
        vm_object_ref(obj);
        pthread_mutex_unlock(&pool->lock);
        vm_obj_overdue(obj, p, now, &b);
        vm_batch_post(obj, &b);
        pthread_mutex_unlock(&obj->lock);
        vm_batch_flush(obj, &b);
        vm_object_unref(obj);
        pthread_mutex_lock(&pool->lock);
        n = TAILQ_FIRST(&pool->laundry); /* the list changed meanwhile: start again */
    }
}

static void *
pageout_main(void *arg)
{
    struct vm_kernel *k = arg;
    struct vm_pool *pool = &k->pool;
    pthread_mutex_lock(&pool->lock);
    while (!atomic_load(&k->stopping)) {
        if (!TAILQ_EMPTY(&pool->laundry))
            check_overdue(k, emm_mono_ns());
        uint64_t in_flight = atomic_load(&k->laundry);
        uint64_t target = pool->free_target;
        if (atomic_load(&k->kicks_pending) && atomic_load(&k->need_frames) > target)
            target = atomic_load(&k->need_frames);
        if (pool->nfree >= target || in_flight >= k->laundry_max || pool->nqueued == 0) {
            /* 10 ms: also the deadline check's period */
            struct timespec ts = emm_deadline_after_ms(CLOCK_REALTIME, 10);
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

static int
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

static void
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
    while (k->swapped_head != NULL) {
        struct vm_object *obj = k->swapped_head;
        k->swapped_head = obj->swapped_next;
        obj->on_swapped_list = 0;
        vm_object_unref(obj);
    }
    while (k->kick_head != NULL) {
        struct vm_object *obj = k->kick_head;
        k->kick_head = obj->kick_next;
        obj->kicked = 0;
        vm_object_unref(obj);
    }
    while (k->waiting_head != NULL) {
        struct vm_object *obj = k->waiting_head;
        k->waiting_head = obj->waiting_next;
        obj->on_waiting_list = 0;
        vm_object_unref(obj);
    }
    while (k->lost_head != NULL) {
        struct vm_object *obj = k->lost_head;
        k->lost_head = obj->lost_next;
        obj->on_lost_list = 0;
        vm_object_unref(obj);
    }
    while (k->seeking_head != NULL) { /* answer what still waits: nobody will */
        struct vm_object *obj = k->seeking_head;
        k->seeking_head = obj->seeking_next;
        struct vm_batch b = VM_BATCH_INIT(b);
        pthread_mutex_lock(&obj->lock);
        obj->on_seeking_list = 0;
        vm_obj_seeks_expire(obj, emm_mono_ns(), 1, &b);
        vm_batch_post(obj, &b);
        pthread_mutex_unlock(&obj->lock);
        vm_batch_flush(obj, &b);
        vm_object_unref(obj);
    }
}

int
vm_kernel_create(uint64_t resident_bytes, const struct vm_policy_ops *policy,
                 const struct vm_upcalls *up, struct vm_kernel **out)
{
    struct vm_kernel *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    int rc = vm_pool_init(&k->pool, resident_bytes, policy);
    if (rc < 0) {
        free(k);
        return rc;
    }
    if (up != NULL)
        k->up = *up;
    k->laundry_max = k->pool.npages / 4 > 1024 ? 1024 : k->pool.npages / 4;
    pthread_mutex_init(&k->kick_lock, NULL);
    pthread_cond_init(&k->kick_cond, NULL);
    vm_queries_init(k);
    rc = vm_pageout_start(k);
    if (rc < 0) {
        vm_queries_fini(k);
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
    vm_queries_fini(k);
    /* A pager may still be reading frames lent in data_returns (the default
     * pager writing them to swap): the pool must outlive every loan. Wait for
     * them a while; a pager that never lets go makes us leak the pool rather
     * than pull it from under it (the process is about to exit). */
    for (int i = 0; atomic_load(&k->loans) > 0; i++) {
        if (i == 1000) {
            emm_warn("%llu page frames still lent to pagers at shutdown: the pool is left "
                     "mapped", (unsigned long long)atomic_load(&k->loans));
            return;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    vm_pool_fini(&k->pool);
    pthread_cond_destroy(&k->kick_cond);
    pthread_mutex_destroy(&k->kick_lock);
    free(k);
}

