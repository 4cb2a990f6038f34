/*
 * vm_object.c - the object core: references and their last release, what
 * the default pager holds of an object and the object's numbers
 * (vm_object_info). SEEK_DATA/SEEK_HOLE are vm_seek.c's.
 *
 * Locking: obj->lock guards everything in struct vm_object and the state, flags
 * and contents of its pages; vm_internal.h says who holds it for each call.
 * Work that must happen without it (sending messages, completions, upcalls)
 * is gathered in a struct vm_batch and run by vm_batch_flush after unlocking.
 * Lock order: object, then pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

/* The default pager holds pages of this (non-temporary) object. */
int
vm_obj_dp_holds(struct vm_object *obj)
{
    struct vm_kernel *k = obj->kernel;
    return obj->dp != NULL && !obj->temporary && k->dpo->pages(k->dp_ctx, obj->dp_handle) > 0;
}

/* ... or will once the data_returns on their way to it land (a double paging,
 * an overdue page's copy): a discard must follow them there, or a copy of a
 * punched page would outlive the punch and come back on a later fault. */
int
vm_obj_dp_may_hold(struct vm_object *obj)
{
    return vm_obj_dp_holds(obj) || (obj->dp != NULL && !obj->temporary && obj->dp_returns > 0);
}

void
vm_object_ref(struct vm_object *obj)
{
    atomic_fetch_add(&obj->refs, 1);
}

int
vm_object_tryref(struct vm_object *obj)
{
    unsigned r = atomic_load(&obj->refs);
    while (r != 0 && !atomic_compare_exchange_weak(&obj->refs, &r, r + 1))
        ;
    return r != 0;
}

void
vm_object_unref(struct vm_object *obj)
{
    if (atomic_fetch_sub(&obj->refs, 1) != 1)
        return;
    /* The ports first: a handler that a message to one of them started on
     * another thread (a late data_return_completed from a pager in another
     * process) has finished when emm_port_destroy returns, and none starts
     * after (port_local.c); the handlers take no reference of a dying object
     * (vm_object_tryref). */
    if (obj->pager != NULL && !obj->temporary)
        emm_port_cancel_dead_name(obj->pager, obj->notify);
    if (obj->notify != NULL)
        emm_port_destroy(obj->notify);
    if (obj->control != NULL)
        emm_port_destroy(obj->control);
    if (obj->name != NULL)
        emm_port_destroy(obj->name);
    if (obj->dp_reply != NULL)
        emm_port_destroy(obj->dp_reply);
    struct vm_kernel *k = obj->kernel;
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            if (p->state == VM_PAGE_LAUNDRY) {
                /* Never terminated, its answer still owed (its frame is lent
                 * no more: a loan holds a reference): out of the counts. */
                if (p->flags & VM_PG_OVERDUE)
                    atomic_fetch_sub(&obj->pstats->overdue_inflight, 1);
                else
                    atomic_fetch_sub(&k->laundry, 1);
            }
            p->flags = 0;
            vm_pool_free(&k->pool, p);
            p = next;
        }
    }
    if (obj->pager_lost_ns != 0 && obj->state != VM_OBJ_TERMINATED)
        atomic_fetch_sub(&obj->pstats->lost_now, 1);
    struct emm_msg *m;
    while ((m = STAILQ_FIRST(&obj->lost_msgs)) != NULL) { /* discards no pager came back for */
        STAILQ_REMOVE_HEAD(&obj->lost_msgs, link);
        emm_msg_release(m, -EPIPE);
    }
    if (obj->pager != NULL)
        emm_port_unref(obj->pager);
    if (obj->dp != NULL) {
        emm_port_unref(obj->dp);
        obj->kernel->dpo->detach(obj->kernel->dp_ctx, obj->dp_handle);
    }
    free(obj->buckets);
    vm_pmap_fini(&obj->pm);
    pthread_mutex_destroy(&obj->lock);
    free(obj);
}

void
vm_object_set_deadline(struct vm_object *obj, uint64_t ms)
{
    atomic_store_explicit(&obj->deadline_ns, ms * 1000000ull, memory_order_relaxed);
}

uint64_t
vm_object_id(struct vm_object *obj)
{
    return obj->id;
}


void
vm_object_info(struct vm_object *obj, struct vm_object_info *out)
{
    pthread_mutex_lock(&obj->lock);
    out->size = obj->size;
    out->resident = obj->nresident;
    out->dirty = obj->ndirty;
    out->laundry = obj->nlaundry;
    out->absent = obj->nabsent;
    out->new_pages = obj->nnew;
    out->state = obj->state;
    out->error = obj->error;
    out->in_swap = obj->dp != NULL ? obj->kernel->dpo->pages(obj->kernel->dp_ctx, obj->dp_handle) : 0;
    out->new_pages += out->in_swap;
    pthread_mutex_unlock(&obj->lock);
}
