/*
 * vm_kernel.c - the kernel's shared state that objects use: the kernel
 * worker's queue of objects to rerun (vm_kernel_kick) and the list of objects
 * with pages in swap to replay, the default pager's registration, and the
 * counters. The threads that consume these live in vm_pageout.c.
 *
 * The list of objects with operations waiting lets the worker rerun them all
 * when any pager goes overdue: a threaded pager's workers serve all its
 * objects, so a data_request of one object can wait behind a data_return of
 * another that the pager sits on (vm_fault.c fills such holes itself).
 *
 * Locking: kick_lock guards the worker's queue and the lists; an
 * object's lock may be held when kicking (order: object, then kick_lock, then
 * pool). The rest is set once before objects exist, or atomic.
 */
#include "clock.h"
#include "vm_internal.h"

void
vm_kernel_kick(struct vm_kernel *k, struct vm_object *obj)
{
    /* Tell the daemon how many frames must come free at once (obj->lock held). */
    unsigned need = atomic_load(&obj->need_frames), cur = atomic_load(&k->need_frames);
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

void
vm_kernel_note_swapped(struct vm_kernel *k, struct vm_object *obj)
{
    pthread_mutex_lock(&k->kick_lock);
    if (!obj->on_swapped_list) {
        obj->on_swapped_list = 1;
        vm_object_ref(obj);
        obj->swapped_next = k->swapped_head;
        k->swapped_head = obj;
    }
    pthread_mutex_unlock(&k->kick_lock);
}

void
vm_kernel_note_waiting(struct vm_kernel *k, struct vm_object *obj)
{
    pthread_mutex_lock(&k->kick_lock);
    if (!obj->on_waiting_list) {
        obj->on_waiting_list = 1;
        vm_object_ref(obj);
        obj->waiting_next = k->waiting_head;
        k->waiting_head = obj;
    }
    pthread_mutex_unlock(&k->kick_lock);
    /* Its pager may have gone overdue after it asked, and after the worker's
     * last look at the list. */
    if (vm_pager_suspect(obj->pstats, emm_mono_ns()))
        vm_kernel_recheck_waiting(k);
}

void
vm_kernel_note_lost(struct vm_kernel *k, struct vm_object *obj)
{
    pthread_mutex_lock(&k->kick_lock);
    if (!obj->on_lost_list) {
        obj->on_lost_list = 1;
        vm_object_ref(obj);
        obj->lost_next = k->lost_head;
        k->lost_head = obj;
    }
    pthread_mutex_unlock(&k->kick_lock);
}

void
vm_kernel_recheck_waiting(struct vm_kernel *k)
{
    pthread_mutex_lock(&k->kick_lock);
    k->recheck_waiting = 1;
    pthread_cond_signal(&k->kick_cond);
    pthread_mutex_unlock(&k->kick_lock);
}

void
vm_kernel_set_default_pager(struct vm_kernel *k, const struct vm_dpager_ops *ops, void *ctx)
{
    k->dpo = ops;
    k->dp_ctx = ctx;
}

int
vm_kernel_has_default_pager(struct vm_kernel *k)
{
    return k->dpo != NULL;
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
