/*
 * vm_object.c - the object core: references and their last release, what
 * the default pager holds of an object, SEEK_DATA/SEEK_HOLE and the object's
 * numbers (vm_object_info).
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

void
vm_object_ref(struct vm_object *obj)
{
    atomic_fetch_add(&obj->refs, 1);
}

void
vm_object_unref(struct vm_object *obj)
{
    if (atomic_fetch_sub(&obj->refs, 1) != 1)
        return;
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            p->flags = 0;
            vm_pool_free(&obj->kernel->pool, p);
            p = next;
        }
    }
    if (obj->control != NULL)
        emm_port_destroy(obj->control);
    if (obj->name != NULL)
        emm_port_destroy(obj->name);
    if (obj->pager != NULL)
        emm_port_unref(obj->pager);
    if (obj->dp != NULL) {
        emm_port_unref(obj->dp);
        obj->kernel->dpo->detach(obj->kernel->dp_ctx, obj->dp_handle);
    }
    free(obj->buckets);
    pthread_mutex_destroy(&obj->lock);
    free(obj);
}

uint64_t
vm_object_id(struct vm_object *obj)
{
    return obj->id;
}


/* Resident data: valid and either dirty or also held by the pager. A clean page
 * the pager has no copy of (a hole read as zeros) is a hole. */
static int
page_is_data(const struct vm_page *p)
{
    return p->state != VM_PAGE_ABSENT &&
           ((p->flags & VM_PG_DIRTY) || !(p->flags & VM_PG_NEW));
}

uint64_t
vm_object_seek_resident(struct vm_object *obj, uint64_t from, int want_data)
{
    uint64_t best = UINT64_MAX;
    pthread_mutex_lock(&obj->lock);
    if (want_data) {
        for (uint64_t i = 0; i < obj->nbuckets; i++)
            for (struct vm_page *p = obj->buckets[i]; p; p = p->hnext)
                if (p->index >= from && p->index < best && page_is_data(p))
                    best = p->index;
    } else {
        uint64_t idx = from;
        struct vm_page *p;
        while ((p = vm_obj_page_lookup(obj, idx)) != NULL && page_is_data(p))
            idx++;
        best = idx;
    }
    pthread_mutex_unlock(&obj->lock);
    return best;
}

/* Does the default pager hold page idx? Lock held (its locks are leaves). */
static int
dp_has(struct vm_object *obj, uint64_t idx)
{
    struct vm_kernel *k = obj->kernel;
    return obj->dp != NULL && k->dpo->pages(k->dp_ctx, obj->dp_handle) > 0 &&
           k->dpo->holds(k->dp_ctx, obj->dp_handle, idx);
}

/* What the object's pager says, asked without the lock. Unknown answers err on
 * the side of data: a copy then reads zeros, it never loses anything. */
static uint64_t
pager_seek(struct vm_object *obj, uint64_t from, int want_data)
{
    struct vm_kernel *k = obj->kernel;
    uint64_t found;
    if (obj->temporary)
        return want_data ? UINT64_MAX : from; /* its pager is the default pager */
    if (k->up.pager_seek == NULL || k->up.pager_seek(obj->owner, from, want_data, &found) < 0)
        return want_data ? from : UINT64_MAX;
    return found < from ? from : found;
}

uint64_t
vm_object_seek(struct vm_object *obj, uint64_t from, uint64_t limit, int want_data)
{
    struct vm_kernel *k = obj->kernel;
    if (want_data) {
        uint64_t best = vm_object_seek_resident(obj, from, 1);
        pthread_mutex_lock(&obj->lock);
        if (obj->dp != NULL && k->dpo->pages(k->dp_ctx, obj->dp_handle) > 0) {
            uint64_t d = k->dpo->next_page(k->dp_ctx, obj->dp_handle, from);
            if (d < best)
                best = d;
        }
        pthread_mutex_unlock(&obj->lock);
        uint64_t s = pager_seek(obj, from, 1);
        return s < best ? s : best;
    }
    uint64_t idx = from;
    while (idx < limit) {
        idx = vm_object_seek_resident(obj, idx, 0); /* first page not resident data */
        if (idx >= limit)
            break;
        pthread_mutex_lock(&obj->lock);
        struct vm_page *p = vm_obj_page_lookup(obj, idx);
        int resident_hole = p != NULL && p->state != VM_PAGE_ABSENT; /* clean, never stored */
        int in_swap = !resident_hole && dp_has(obj, idx);
        pthread_mutex_unlock(&obj->lock);
        if (resident_hole)
            return idx;
        if (in_swap) {
            idx++;
            continue;
        }
        uint64_t s = pager_seek(obj, idx, 0); /* the pager's data ends at s */
        if (s <= idx)
            return idx;
        idx = s;
    }
    return limit;
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
