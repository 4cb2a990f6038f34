/*
 * vm_page_table.c - an object's page table: a hash of its resident pages by
 * page index that grows with the object, and the page state changes that keep
 * the object's counters (resident, dirty, laundry, absent) true, an orphan's
 * end included.
 *
 * Locking: obj->lock guards everything in struct vm_object and the state, flags
 * and contents of its pages; vm_internal.h says who holds it for each call.
 * Work that must happen without it (sending messages, completions, upcalls)
 * is gathered in a struct vm_batch and run by vm_batch_flush after unlocking.
 * Lock order: object, then pool.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

static uint64_t
hash_index(uint64_t idx, uint64_t nbuckets)
{
    return (idx * 0x9E3779B97F4A7C15ull >> 17) & (nbuckets - 1);
}

struct vm_page *
vm_obj_page_lookup(struct vm_object *obj, uint64_t idx)
{
    for (struct vm_page *p = obj->buckets[hash_index(idx, obj->nbuckets)]; p; p = p->hnext)
        if (p->index == idx)
            return p;
    return NULL;
}

static void
table_grow(struct vm_object *obj)
{
    uint64_t n = obj->nbuckets * 4;
    struct vm_page **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* longer chains, still correct */
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            uint64_t h = hash_index(p->index, n);
            p->hnext = nb[h];
            nb[h] = p;
            p = next;
        }
    }
    free(obj->buckets);
    obj->buckets = nb;
    obj->nbuckets = n;
}

void
vm_obj_page_insert(struct vm_object *obj, struct vm_page *p, uint64_t idx, int state)
{
    p->object = obj;
    p->index = idx;
    p->state = (uint8_t)state;
    uint64_t h = hash_index(idx, obj->nbuckets);
    p->hnext = obj->buckets[h];
    obj->buckets[h] = p;
    obj->nresident++;
    if (state == VM_PAGE_ABSENT)
        obj->nabsent++;
    if (obj->nresident > obj->nbuckets * 2)
        table_grow(obj);
}

/* Changes DIRTY/NEW flags keeping the counters true: ndirty counts dirty pages,
 * nnew dirty pages the pager has no copy of (st_blocks). */
void
vm_obj_page_flags(struct vm_object *obj, struct vm_page *p, uint16_t set, uint16_t clear)
{
    int was_dirty = (p->flags & VM_PG_DIRTY) != 0;
    int was_new = was_dirty && (p->flags & VM_PG_NEW);
    p->flags = (uint16_t)((p->flags | set) & ~clear);
    int dirty = (p->flags & VM_PG_DIRTY) != 0;
    int is_new = dirty && (p->flags & VM_PG_NEW);
    obj->ndirty += (uint64_t)(int64_t)(dirty - was_dirty);
    obj->nnew += (uint64_t)(int64_t)(is_new - was_new);
}

struct vm_page *
vm_obj_page(struct vm_object *obj, uint64_t idx)
{
    return vm_obj_page_lookup(obj, idx);
}

/* Unlinks p from the table and returns its frame to the pool. */
/* Unlinks p from the table (orphans are already out of it). */
void
vm_obj_page_unlink(struct vm_object *obj, struct vm_page *p)
{
    struct vm_page **pp = &obj->buckets[hash_index(p->index, obj->nbuckets)];
    assert(p->object == obj);
    while (*pp != p) {
        assert(*pp != NULL); /* a resident page is on its hash chain */
        pp = &(*pp)->hnext;
    }
    *pp = p->hnext;
    p->hnext = NULL;
    obj->nresident--;
    if (p->state == VM_PAGE_ABSENT)
        obj->nabsent--;
    vm_obj_page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
}

void
vm_obj_remove_page(struct vm_object *obj, struct vm_page *p)
{
    if (!(p->flags & VM_PG_ORPHAN))
        vm_obj_page_unlink(obj, p);
    if (p->flags & VM_PG_REPLAY)
        obj->replay_inflight--;
    p->flags = 0;
    vm_pool_free(&obj->kernel->pool, p);
}

void
vm_obj_orphan_drop(struct vm_object *obj, struct vm_page *p)
{
    p->flags &= (uint16_t)~(VM_PG_WAIT_MSG | VM_PG_WAIT_DMSG);
    if (!(p->flags & VM_PG_OVERDUE))
        atomic_fetch_sub(&obj->kernel->laundry, 1);
    else
        atomic_fetch_sub(&obj->pstats->overdue_inflight, 1);
    p->flags &= ~(VM_PG_OVERDUE | VM_PG_DOUBLED);
    p->state = VM_PAGE_PRESENT;
    if (p->wire == 0) {
        vm_obj_remove_page(obj, p);
    } else {
        vm_pool_dequeue(&obj->kernel->pool, p); /* off the laundry list: no deadline */
        p->flags |= VM_PG_EVICT;
    }
}

/* Drops a page now. A page still being paged in is marked: the stale data the
 * pager sends for it is replaced by zeros. A page whose frame is still lent
 * out (a READ reply sends from it, or a data_return holds it) leaves the page
 * table at once as an orphan, freed when the last loan ends (a page in
 * laundry whose frame is lent no more goes at once: vm_laundry.c): its index must
 * read as a hole from now on, never as the old data (a truncate followed by
 * an extension, while a read-ahead reply was still being sent). Lock held. */
void
vm_obj_page_discard(struct vm_object *obj, struct vm_page *p)
{
    if (p->state == VM_PAGE_ABSENT) {
        p->flags |= VM_PG_DISCARDED;
        return;
    }
    if (p->flags & VM_PG_ORPHAN)
        return;
    if (p->state == VM_PAGE_LAUNDRY || p->wire > 0) {
        int laundry = p->state == VM_PAGE_LAUNDRY;
        vm_obj_page_unlink(obj, p); /* clears DIRTY and NEW */
        if (laundry)
            obj->nlaundry--;
        p->flags = (uint16_t)((p->flags & ~(VM_PG_REDIRTY | VM_PG_INSWAP | VM_PG_PRECIOUS)) |
                              VM_PG_EVICT | VM_PG_ORPHAN);
        /* In laundry with its frame lent no more: the data_return was written
         * to the pager (a pager in another process copies it at once) and only
         * the answer is owed. Nothing waits for that answer now; when it comes
         * it finds no page. Kept, the orphan stayed in laundry for ever: the
         * laundry count never fell back under laundry_max (the pageout daemon
         * stopped, writers waited for frames in D state), and the pool's
         * laundry list kept a page of an object about to be freed. */
        if (laundry && p->loans == 0)
            vm_obj_orphan_drop(obj, p);
        return;
    }
    vm_obj_remove_page(obj, p);
}

/* Drops every page (the object died or is terminated). Lock held. */
void
vm_obj_discard_all(struct vm_object *obj)
{
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            vm_obj_page_discard(obj, p);
            p = next;
        }
    }
}
