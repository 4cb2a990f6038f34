/*
 * vm_object.c - memory objects on the kernel side: the page table, the fault
 * (read) and write paths, laundry and double paging (a page its pager refuses,
 * or holds past its deadline, goes to the default pager; faults on it are
 * served from swap until the replay gives it back), synchronize, punch and
 * terminate, and the handlers of every pager -> kernel message arriving on an
 * object's control port.
 *
 * Locking: obj->lock guards everything in struct vm_object and the state, flags
 * and contents of its pages. Work that must happen without it (sending
 * messages, completions, upcalls) is gathered in a struct vm_batch and run by
 * vm_batch_flush after unlocking. Lock order: object, then pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

static void control_handler(struct emm_port *port, struct emm_msg *msg);
static void page_return_released(struct emm_msg *msg, int status);
static void run_waiters(struct vm_object *obj, struct vm_batch *b);

/* ---- page table ------------------------------------------------------- */

static uint64_t
hash_index(uint64_t idx, uint64_t nbuckets)
{
    return (idx * 0x9E3779B97F4A7C15ull >> 17) & (nbuckets - 1);
}

static struct vm_page *
page_lookup(struct vm_object *obj, uint64_t idx)
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

static void
page_insert(struct vm_object *obj, struct vm_page *p, uint64_t idx, int state)
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
static void
page_flags(struct vm_object *obj, struct vm_page *p, uint16_t set, uint16_t clear)
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
    return page_lookup(obj, idx);
}

/* Unlinks p from the table and returns its frame to the pool. */
/* Unlinks p from the table (orphans are already out of it). */
static void
page_unlink(struct vm_object *obj, struct vm_page *p)
{
    struct vm_page **pp = &obj->buckets[hash_index(p->index, obj->nbuckets)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    p->hnext = NULL;
    obj->nresident--;
    if (p->state == VM_PAGE_ABSENT)
        obj->nabsent--;
    page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
}

void
vm_obj_remove_page(struct vm_object *obj, struct vm_page *p)
{
    if (!(p->flags & VM_PG_ORPHAN))
        page_unlink(obj, p);
    if (p->flags & VM_PG_REPLAY)
        obj->replay_inflight--;
    p->flags = 0;
    vm_pool_free(&obj->kernel->pool, p);
}

/* Drops a page now. A page still being paged in is marked: the stale data the
 * pager sends for it is replaced by zeros. A page whose frame is still lent
 * out (a READ reply sends from it, or a data_return holds it) leaves the page
 * table at once as an orphan, freed when the last loan ends: its index must
 * read as a hole from now on, never as the old data (a truncate followed by
 * an extension, while a read-ahead reply was still being sent). Lock held. */
static void
page_discard(struct vm_object *obj, struct vm_page *p)
{
    if (p->state == VM_PAGE_ABSENT) {
        p->flags |= VM_PG_DISCARDED;
        return;
    }
    if (p->flags & VM_PG_ORPHAN)
        return;
    if (p->state == VM_PAGE_LAUNDRY || p->wire > 0) {
        int laundry = p->state == VM_PAGE_LAUNDRY;
        page_unlink(obj, p); /* clears DIRTY and NEW */
        if (laundry)
            obj->nlaundry--;
        p->flags = (uint16_t)((p->flags & ~(VM_PG_REDIRTY | VM_PG_INSWAP | VM_PG_PRECIOUS)) |
                              VM_PG_EVICT | VM_PG_ORPHAN);
        return;
    }
    vm_obj_remove_page(obj, p);
}

/* Drops every page (the object died or is terminated). Lock held. */
static void
discard_all(struct vm_object *obj)
{
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            page_discard(obj, p);
            p = next;
        }
    }
}

/* ---- batches ---------------------------------------------------------- */

static void
msg_append(struct emm_msg **head, struct emm_msg **tail, struct emm_msg *m)
{
    m->next = NULL;
    if (*tail != NULL)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
}

/* To the object's pager / to its default-pager port. */
static void
batch_msg(struct vm_batch *b, struct emm_msg *m)
{
    msg_append(&b->msgs, &b->msgs_tail, m);
}

static void
batch_dp_msg(struct vm_batch *b, struct emm_msg *m)
{
    msg_append(&b->dp_msgs, &b->dp_msgs_tail, m);
}

static struct emm_msg *
kmsg(struct vm_object *obj, uint32_t id, uint64_t off, uint64_t len)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    if (m != NULL)
        m->control = emm_port_make_send(obj->control);
    return m;
}

static void
batch_done(struct vm_batch *b, struct vm_io *io)
{
    io->next = NULL;
    if (b->done_tail != NULL)
        b->done_tail->next = io;
    else
        b->done = io;
    b->done_tail = io;
}

static void unwire(struct vm_object *obj, struct vm_io *io);

/* Chains runs of data_returns for contiguous pages (at most 256, 1 MiB), so a
 * pager that takes clusters stores them in one backend write. */
static void
cluster_returns(struct emm_msg *m)
{
    while (m != NULL) {
        struct emm_msg *head = m, *last = m;
        unsigned n = 1;
        while (head->id == MO_DATA_RETURN && last->next != NULL &&
               last->next->id == MO_DATA_RETURN && n < 256 &&
               last->next->offset == last->offset + VM_PS &&
               last->next->flags == head->flags) {
            last->chain = last->next;
            last = last->next;
            n++;
        }
        head->next = last->next; /* the chained ones are not sent on their own */
        m = head->next;
    }
}

/* Queues the batch's messages on the pager's and the default pager's ports.
 * Called with the object lock held, so messages reach each port in the order
 * the object decided them, whichever thread sends first after unlocking: a
 * discard is never overtaken by a data_request or data_return that an earlier
 * holder of the lock queued (a stale page would come back). A message a dead
 * port refuses is released by vm_batch_flush, without the lock. */
void
vm_batch_post(struct vm_object *obj, struct vm_batch *b)
{
    struct emm_msg *m = b->msgs;
    b->msgs = b->msgs_tail = NULL;
    if (atomic_load(&obj->return_clusters))
        cluster_returns(m);
    while (m != NULL) {
        struct emm_msg *next = m->next;
        if (emm_port_post(obj->pager, m) < 0) {
            m->next = b->failed;
            b->failed = m;
        } else {
            b->kick_pager = 1;
        }
        m = next;
    }
    m = b->dp_msgs;
    b->dp_msgs = b->dp_msgs_tail = NULL;
    while (m != NULL) {
        struct emm_msg *next = m->next;
        if (obj->dp == NULL || emm_port_post(obj->dp, m) < 0) {
            m->next = b->dp_failed;
            b->dp_failed = m;
        } else {
            b->kick_dp = 1;
        }
        m = next;
    }
}

void
vm_batch_flush(struct vm_object *obj, struct vm_batch *b)
{
    if (b->msgs != NULL || b->dp_msgs != NULL)
        vm_batch_post(obj, b); /* a caller that built the batch without the lock */
    if (b->kick_pager)
        emm_port_kick(obj->pager);
    if (b->kick_dp)
        emm_port_kick(obj->dp);
    b->kick_pager = b->kick_dp = 0;
    for (int dp = 0; dp < 2; dp++) {
        struct emm_msg *m = dp ? b->dp_failed : b->failed;
        while (m != NULL) {
            struct emm_msg *next = m->next;
            emm_warn("object %llu: %s gone, %s not delivered", (unsigned long long)obj->id,
                     dp ? "default pager" : "pager", emm_msg_name(m->id));
            emm_msg_release(m, -EPIPE);
            m = next;
        }
    }
    b->failed = b->dp_failed = NULL;
    struct vm_io *io = b->done;
    b->done = b->done_tail = NULL;
    while (io != NULL) {
        struct vm_io *next = io->next;
        if (io->op == VM_IO_READ) {
            if (io->err == 0) {
                struct iovec iov[258];
                uint64_t pos = io->off, end = io->off + io->len;
                int n = 0;
                for (unsigned i = 0; i < io->nwired; i++) {
                    uint64_t in = pos % VM_PS;
                    uint64_t take = VM_PS - in;
                    if (take > end - pos)
                        take = end - pos;
                    iov[n].iov_base = (char *)io->wired[i]->frame + in;
                    iov[n].iov_len = take;
                    n++;
                    pos += take;
                }
                io->rdone(io->arg, 0, iov, n);
                unwire(obj, io);
            } else {
                io->rdone(io->arg, io->err, NULL, 0);
            }
        } else {
            io->done(io->arg, io->err);
        }
        free(io->buf);
        free(io);
        io = next;
    }
    struct vm_sync *s = b->syncs_done;
    b->syncs_done = NULL;
    while (s != NULL) {
        struct vm_sync *next = s->next;
        s->done(s->arg, b->sync_err);
        free(s);
        s = next;
    }
}

static void
unwire(struct vm_object *obj, struct vm_io *io)
{
    pthread_mutex_lock(&obj->lock);
    for (unsigned i = 0; i < io->nwired; i++) {
        struct vm_page *p = io->wired[i];
        if (--p->wire == 0 && (p->flags & VM_PG_EVICT) && p->state == VM_PAGE_PRESENT &&
            !(p->flags & VM_PG_DIRTY))
            vm_obj_remove_page(obj, p);
    }
    pthread_mutex_unlock(&obj->lock);
    io->nwired = 0;
}

/* ---- objects ---------------------------------------------------------- */

/* The default pager holds pages of this (non-temporary) object. */
static int
dp_holds(struct vm_object *obj)
{
    struct vm_kernel *k = obj->kernel;
    return obj->dp != NULL && !obj->temporary && k->dpo->pages(k->dp_ctx, obj->dp_handle) > 0;
}

int
vm_object_create(struct vm_kernel *k, const struct vm_object_args *a, struct vm_object **out)
{
    struct vm_object *obj = calloc(1, sizeof(*obj));
    if (obj == NULL) {
        if (a->pager != NULL)
            emm_port_unref(a->pager);
        return -ENOMEM;
    }
    obj->nbuckets = 64;
    obj->buckets = calloc(obj->nbuckets, sizeof(*obj->buckets));
    pthread_mutex_init(&obj->lock, NULL);
    atomic_init(&obj->refs, 1);
    obj->kernel = k;
    obj->id = a->id;
    obj->size = a->size;
    obj->owner = a->owner;
    obj->state = VM_OBJ_INIT;
    obj->temporary = a->temporary;
    obj->deadline_ns = a->deadline_ms * 1000000ull;
    obj->pstats = a->pstats != NULL ? a->pstats : &k->orphan_stats;
    obj->pager = a->pager;
    int rc = obj->buckets == NULL ? -ENOMEM : 0;
    if (rc == 0 && k->dpo != NULL) {
        /* Mach creates the default pager's object at the first pageout; here at
         * creation, so the pageout path never allocates. */
        rc = k->dpo->attach(k->dp_ctx, a->dp_key, &obj->dp, &obj->dp_handle);
        if (rc < 0 && !a->temporary) {
            emm_warn("object %llu: no default pager (%s): no double paging for it",
                     (unsigned long long)a->id, strerror(-rc));
            rc = 0;
        }
    } else if (rc == 0 && a->temporary) {
        rc = -ENODEV; /* a temporary object needs the default pager */
    }
    if (rc == 0 && a->temporary)
        obj->pager = emm_port_ref(obj->dp);
    if (rc == 0)
        rc = emm_port_create("control", control_handler, obj, NULL, &obj->control);
    if (rc == 0)
        rc = emm_port_create("name", NULL, obj, NULL, &obj->name);
    struct emm_msg *m = rc == 0 ? emm_msg_new(MO_INIT, 0, 0) : NULL;
    if (m == NULL) {
        if (obj->control)
            emm_port_destroy(obj->control);
        if (obj->pager)
            emm_port_unref(obj->pager);
        if (obj->dp) {
            emm_port_unref(obj->dp);
            k->dpo->detach(k->dp_ctx, obj->dp_handle);
        }
        free(obj->buckets);
        pthread_mutex_destroy(&obj->lock);
        free(obj);
        return rc ? rc : -ENOMEM;
    }
    /* Mach: init returns at once; faults wait for ready. */
    m->control = emm_port_make_send(obj->control);
    m->name = emm_port_make_send(obj->name);
    m->arg = (int32_t)EMM_PAGE_SIZE;
    if (emm_port_send(obj->pager, m) < 0) {
        emm_msg_release(m, -EPIPE);
        obj->state = VM_OBJ_DEAD;
        obj->error = EIO;
    }
    /* Pages double-paged before (maybe before a restart) go back to the pager. */
    if (dp_holds(obj))
        vm_kernel_note_swapped(k, obj);
    *out = obj;
    return 0;
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

/* ---- the fault and write paths ---------------------------------------- */

static void
starve(struct vm_object *obj, unsigned need)
{
    obj->starved = 1;
    if (need > atomic_load(&obj->need_frames))
        atomic_store(&obj->need_frames, need);
    atomic_fetch_add(&obj->kernel->stats.frame_waits, 1);
}

/* Page idx of a non-resident range is a hole of the pager's that the kernel
 * fills itself: the pager is suspect (it sits on an overdue data_return, so a
 * data_request would wait behind it: a stalled pager must not stall faults on
 * pages it has nothing for) and reports it does not store the page. Pages in
 * flight to it are resident or in swap, so this is its current answer. */
static int
pager_lacks(struct vm_object *obj, uint64_t idx)
{
    struct vm_kernel *k = obj->kernel;
    if (obj->temporary || obj->pager == NULL || k->up.pager_has_page == NULL ||
        !vm_pager_suspect(obj->pstats, emm_mono_ns()))
        return 0;
    return !k->up.pager_has_page(obj->owner, idx);
}

/* p waits for a data_request its pager has not started, queued behind a
 * data_return the pager sits on, and the pager lacks the page: fill it as the
 * hole it is. The page stays resident (the daemon skips it) until the pager's
 * late answer arrives, so that answer never lands on a later request. */
static void
abandon_request(struct vm_object *obj, struct vm_page *p)
{
    memset(p->frame, 0, VM_PS);
    p->state = VM_PAGE_PRESENT;
    obj->nabsent--;
    p->lock_value = 0;
    p->flags |= VM_PG_ABANDONED;
    p->flags &= ~VM_PG_DISCARDED;
    page_flags(obj, p, VM_PG_NEW, 0);
    vm_pool_enqueue(&obj->kernel->pool, p);
    atomic_fetch_add(&obj->kernel->stats.holes_filled, 1);
}

/* Requests the pages of [first, first+n) that are not resident. Returns 1 if all
 * are resident and readable, 0 if some are on their way. */
static int
fault_in(struct vm_object *obj, uint64_t first, uint64_t n, uint32_t access, struct vm_io *io,
         struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    int ready = 1;
    uint64_t idx = first, end = first + n;
    while (idx < end) {
        struct vm_page *p = page_lookup(obj, idx);
        if (p != NULL) {
            if (p->state == VM_PAGE_ABSENT && !(p->flags & (VM_PG_FROMSWAP | VM_PG_REPLAY)) &&
                pager_lacks(obj, idx))
                abandon_request(obj, p);
            if (p->state == VM_PAGE_ABSENT)
                ready = 0;
            else if (p->lock_value & access & VM_PROT_READ) {
                ready = 0;
                if (!io->unlock_sent) {
                    struct emm_msg *m = kmsg(obj, MO_DATA_UNLOCK, idx * VM_PS, VM_PS);
                    if (m != NULL) {
                        m->access = access;
                        batch_msg(b, m);
                        atomic_fetch_add(&k->stats.data_unlocks, 1);
                    }
                    io->unlock_sent = 1;
                }
            }
            idx++;
            continue;
        }
        uint64_t run = idx;
        while (run < end && run - idx < 256 && page_lookup(obj, run) == NULL)
            run++;
        /* Pages whose newest copy is in swap come from the default pager. */
        int from_swap = 0;
        if (dp_holds(obj)) {
            from_swap = k->dpo->holds(k->dp_ctx, obj->dp_handle, idx);
            uint64_t r = idx + 1;
            while (r < run && k->dpo->holds(k->dp_ctx, obj->dp_handle, r) == from_swap)
                r++;
            run = r;
        }
        /* A suspect pager still works through an earlier data_return: a
         * data_request would queue behind it. Pages it never stored are holes
         * the kernel fills itself (what its data_unavailable would say). */
        int hole = 0;
        if (!from_swap && pager_lacks(obj, idx)) {
            hole = 1;
            uint64_t r = idx + 1;
            while (r < run && pager_lacks(obj, r))
                r++;
            run = r;
        }
        struct vm_page *frames[256];
        unsigned want = (unsigned)(run - idx);
        unsigned got = vm_pool_alloc(&k->pool, frames, want);
        if (got < want)
            starve(obj, 1); /* a read progresses with any frame */
        if (got == 0)
            return 0;
        if (hole) {
            for (unsigned i = 0; i < got; i++) {
                memset(frames[i]->frame, 0, VM_PS);
                page_insert(obj, frames[i], idx + i, VM_PAGE_PRESENT);
                page_flags(obj, frames[i], VM_PG_NEW, 0);
                vm_pool_enqueue(&k->pool, frames[i]);
            }
            atomic_fetch_add(&k->stats.holes_filled, got);
            idx += got;
            if (got < want)
                ready = 0;
            continue;
        }
        ready = 0;
        struct emm_msg *m = kmsg(obj, MO_DATA_REQUEST, idx * VM_PS, got * VM_PS);
        if (m == NULL) {
            for (unsigned i = 0; i < got; i++)
                vm_pool_free(&k->pool, frames[i]);
            return 0;
        }
        m->access = access;
        for (unsigned i = 0; i < got; i++) {
            page_insert(obj, frames[i], idx + i, VM_PAGE_ABSENT);
            if (from_swap)
                frames[i]->flags |= VM_PG_FROMSWAP;
        }
        if (from_swap)
            batch_dp_msg(b, m);
        else
            batch_msg(b, m);
        atomic_fetch_add(&k->stats.data_requests, 1);
        atomic_fetch_add(&k->stats.pages_requested, got);
        idx += got;
    }
    return ready;
}

/* 1: done (pages wired in io), 0: waiting, <0: error. */
static int
read_try(struct vm_object *obj, struct vm_io *io, struct vm_batch *b)
{
    if (obj->state == VM_OBJ_INIT)
        return 0;
    if (obj->state != VM_OBJ_READY)
        return -(obj->error && obj->error != ENOSPC ? obj->error : EIO);
    uint64_t end = io->off + io->len;
    if (end > obj->size)
        end = obj->size;
    if (io->off >= end) {
        io->len = 0;
        io->nwired = 0;
        return 1;
    }
    io->len = end - io->off;
    uint64_t first = io->off / VM_PS, last = (end - 1) / VM_PS;
    if (!fault_in(obj, first, last - first + 1, VM_PROT_READ, io, b))
        return 0;
    io->nwired = 0;
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = page_lookup(obj, idx);
        p->wire++;
        io->wired[io->nwired++] = p;
    }
    vm_pool_touch(&obj->kernel->pool, io->wired, io->nwired);
    return 1;
}

/* A write to a page whose frame someone else reads, and will not give back
 * soon: its data_return is overdue (the stalled pager keeps the frame, freed
 * when it answers), or a READ reply is being sent from it (freed at the last
 * unwire). The object gets a copy, so the writer never waits past the deadline
 * and the reader sees the page as it was. Lock held. */
static struct vm_page *
page_copy(struct vm_object *obj, struct vm_page *old, struct vm_page *q)
{
    int laundry = old->state == VM_PAGE_LAUNDRY;
    uint16_t keep = old->flags & (VM_PG_NEW | VM_PG_INSWAP | VM_PG_PRECIOUS | VM_PG_ABANDONED);
    if (old->flags & VM_PG_DIRTY)
        keep |= VM_PG_DIRTY;
    page_unlink(obj, old);
    if (laundry)
        obj->nlaundry--;
    else
        old->flags |= VM_PG_EVICT;
    old->flags |= VM_PG_ORPHAN;
    page_insert(obj, q, old->index, VM_PAGE_PRESENT);
    memcpy(q->frame, old->frame, VM_PS);
    q->lock_value = old->lock_value;
    /* The swap copy (if the default pager got one) is older than this page. */
    page_flags(obj, q, VM_PG_DIRTY | keep | (laundry && obj->dp != NULL ? VM_PG_INSWAP : 0), 0);
    if (laundry)
        atomic_fetch_add(&obj->kernel->stats.cow_overdue, 1);
    return q;
}

static int
write_try(struct vm_object *obj, struct vm_io *io, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    if (obj->state == VM_OBJ_INIT)
        return 0;
    if (obj->state != VM_OBJ_READY)
        return -(obj->error ? obj->error : EIO);
    if (io->len == 0)
        return 1;
    uint64_t end = io->off + io->len;
    uint64_t first = io->off / VM_PS, last = (end - 1) / VM_PS;
    unsigned need = 0;
    int ready = 1;
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = page_lookup(obj, idx);
        int full = io->off <= idx * VM_PS && end >= (idx + 1) * VM_PS;
        if (p == NULL) {
            if (full) {
                need++;
            } else if (!fault_in(obj, idx, 1, VM_PROT_READ | VM_PROT_WRITE, io, b)) {
                ready = 0;
            }
            continue;
        }
        if ((p->state == VM_PAGE_LAUNDRY && (p->flags & VM_PG_OVERDUE)) ||
            (p->state == VM_PAGE_PRESENT && p->wire > 0 && !(p->lock_value & VM_PROT_WRITE))) {
            need++; /* its pager stalls, or a reply reads it: write to a copy */
        } else if (p->state == VM_PAGE_ABSENT || p->state == VM_PAGE_LAUNDRY) {
            ready = 0;
        } else if (p->lock_value & VM_PROT_WRITE) {
            ready = 0;
            if (!io->unlock_sent) {
                struct emm_msg *m = kmsg(obj, MO_DATA_UNLOCK, idx * VM_PS, VM_PS);
                if (m != NULL) {
                    m->access = VM_PROT_WRITE;
                    batch_msg(b, m);
                    atomic_fetch_add(&k->stats.data_unlocks, 1);
                }
                io->unlock_sent = 1;
            }
        }
    }
    if (!ready)
        return 0;
    struct vm_page *frames[258];
    if (need > 0 && vm_pool_alloc_all(&k->pool, frames, need) == 0) {
        starve(obj, need); /* a write takes all its frames at once */
        return 0;
    }
    unsigned used = 0;
    struct vm_page *touched[258];
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = page_lookup(obj, idx);
        if (p != NULL && (p->state == VM_PAGE_LAUNDRY || p->wire > 0)) {
            p = page_copy(obj, p, frames[used++]);
        } else if (p == NULL) {
            p = frames[used++];
            page_insert(obj, p, idx, VM_PAGE_PRESENT);
            int has = k->up.pager_has_page ? k->up.pager_has_page(obj->owner, idx) : 0;
            page_flags(obj, p, has ? 0 : VM_PG_NEW, 0);
        }
        uint64_t pstart = idx * VM_PS;
        uint64_t from = io->off > pstart ? io->off : pstart;
        uint64_t to = end < pstart + VM_PS ? end : pstart + VM_PS;
        memcpy((char *)p->frame + (from - pstart), (const char *)io->buf + (from - io->off),
               to - from);
        page_flags(obj, p, VM_PG_DIRTY, 0);
        touched[idx - first] = p;
    }
    vm_pool_touch(&k->pool, touched, (unsigned)(last - first + 1));
    return 1;
}

static int
io_try(struct vm_object *obj, struct vm_io *io, struct vm_batch *b)
{
    return io->op == VM_IO_READ ? read_try(obj, io, b) : write_try(obj, io, b);
}

static void
io_queue(struct vm_object *obj, struct vm_io *io)
{
    io->next = NULL;
    if (obj->io_tail != NULL)
        obj->io_tail->next = io;
    else
        obj->io_head = io;
    obj->io_tail = io;
}

/* Reruns waiting operations in order; called with the lock held. */
static void
run_waiters(struct vm_object *obj, struct vm_batch *b)
{
    struct vm_io *io = obj->io_head, *keep_head = NULL, *keep_tail = NULL;
    obj->io_head = obj->io_tail = NULL;
    obj->starved = 0;
    atomic_store(&obj->need_frames, 0);
    while (io != NULL) {
        struct vm_io *next = io->next;
        int rc = io_try(obj, io, b);
        if (rc == 0) {
            io->next = NULL;
            if (keep_tail != NULL)
                keep_tail->next = io;
            else
                keep_head = io;
            keep_tail = io;
        } else {
            io->err = rc < 0 ? -rc : 0;
            batch_done(b, io);
        }
        io = next;
    }
    /* New arrivals during the loop cannot happen: we hold the lock. */
    obj->io_head = keep_head;
    obj->io_tail = keep_tail;
    if (obj->starved)
        vm_kernel_kick(obj->kernel, obj);
}

void
vm_obj_retry(struct vm_object *obj)
{
    struct vm_batch b = {0};
    pthread_mutex_lock(&obj->lock);
    run_waiters(obj, &b);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
}

static void
io_start(struct vm_object *obj, struct vm_io *io)
{
    struct vm_batch b = {0};
    pthread_mutex_lock(&obj->lock);
    int rc;
    if (obj->io_head != NULL && io->op == VM_IO_WRITE)
        rc = 0; /* keep writes behind earlier waiters: per-page order */
    else
        rc = io_try(obj, io, &b);
    if (rc == 0) {
        io_queue(obj, io);
        if (obj->starved)
            vm_kernel_kick(obj->kernel, obj);
    } else {
        io->err = rc < 0 ? -rc : 0;
        batch_done(&b, io);
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
}

void
vm_object_read(struct vm_object *obj, uint64_t off, uint64_t len, vm_read_done_fn done, void *arg)
{
    struct vm_io *io = calloc(1, sizeof(*io));
    if (io == NULL) {
        done(arg, ENOMEM, NULL, 0);
        return;
    }
    if (len > 256 * VM_PS)
        len = 256 * VM_PS;
    io->op = VM_IO_READ;
    io->off = off;
    io->len = len;
    io->rdone = done;
    io->arg = arg;
    atomic_fetch_add(&obj->kernel->stats.read_ops, 1);
    vm_object_ref(obj);
    io_start(obj, io);
    vm_object_unref(obj);
}

void
vm_object_write(struct vm_object *obj, uint64_t off, const void *buf, uint64_t len,
                vm_done_fn done, void *arg)
{
    if (len > 256 * VM_PS) {
        done(arg, EINVAL);
        return;
    }
    struct vm_io *io = calloc(1, sizeof(*io));
    if (io == NULL) {
        done(arg, ENOMEM);
        return;
    }
    /* The caller's buffer lives only during this call: keep a copy in case we wait. */
    io->buf = malloc(len ? len : 1);
    if (io->buf == NULL) {
        free(io);
        done(arg, ENOMEM);
        return;
    }
    memcpy(io->buf, buf, len);
    io->op = VM_IO_WRITE;
    io->off = off;
    io->len = len;
    io->done = done;
    io->arg = arg;
    atomic_fetch_add(&obj->kernel->stats.write_ops, 1);
    vm_object_ref(obj);
    io_start(obj, io);
    vm_object_unref(obj);
}

/* ---- laundry, synchronize, punch, terminate ---------------------------- */

/* A data_return refusal that retrying will not cure: the store is out of
 * space (or the object past the size it may have). */
static int
refused_for_good(int st)
{
    return st == -ENOSPC || st == -EDQUOT || st == -EFBIG;
}

/* Kills the object after a page could be kept nowhere (swap full, or a swap
 * write error): Mach's "unlucky object". Later faults get EIO (SIGBUS); its
 * resident pages are dropped; the service and other objects go on. Lock held. */
static void
obj_kill(struct vm_object *obj, uint64_t index, int err, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    if (obj->state == VM_OBJ_DEAD)
        return;
    int full = obj->dp == NULL && !obj->temporary;
    emm_err("object %llu KILLED: page %llu could not be paged out (%s): the object's unsaved "
            "data is lost and its reads fail with EIO; %s",
            (unsigned long long)obj->id, (unsigned long long)index, strerror(err),
            full ? "its pager has no room for it and there is no swap: free space in its "
                   "store, or configure swap"
                 : "add swap or free some");
    obj->state = VM_OBJ_DEAD;
    /* Writers (and fsync) see why: the store is full. Reads say EIO. */
    obj->error = full && refused_for_good(-err) ? ENOSPC : EIO;
    atomic_fetch_add(&k->stats.objects_killed, 1);
    atomic_fetch_add(&obj->pstats->killed, 1);
    discard_all(obj);
    run_waiters(obj, b);
}

/* Sends p's data_return (the message embedded in the page) to the object's
 * pager, or to the default pager when to_dp. Lock held. */
static void
page_send_return(struct vm_object *obj, struct vm_page *p, int to_dp, struct vm_batch *b)
{
    struct emm_msg *m = &p->msg;
    uint32_t flags = m->flags;
    memset(m, 0, sizeof(*m));
    m->id = MO_DATA_RETURN;
    m->offset = p->index * VM_PS;
    m->length = VM_PS;
    m->data = p->frame;
    m->flags = flags;
    m->release = page_return_released;
    m->release_ctx = p;
    m->control = emm_port_make_send(obj->control);
    if (to_dp) /* which pager answers: the kernel's to know, not the message's */
        p->flags |= VM_PG_TO_DP;
    else
        p->flags &= (uint16_t)~VM_PG_TO_DP;
    p->loans++;
    vm_object_ref(obj);
    if (to_dp)
        batch_dp_msg(b, m);
    else
        batch_msg(b, m);
}

/* Tells the default pager its copy of page index is obsolete. 0, or -ENOMEM. */
static int
dp_forget(struct vm_object *obj, uint64_t index, struct vm_batch *b)
{
    struct emm_msg *m = kmsg(obj, MO_DISCARD, index * VM_PS, VM_PS);
    if (m == NULL)
        return -ENOMEM;
    batch_dp_msg(b, m);
    return 0;
}

/* The pager took the page back to swap after a failure or a stall. */
static void
note_double_paged(struct vm_object *obj)
{
    atomic_fetch_add(&obj->kernel->stats.double_paged, 1);
    atomic_fetch_add(&obj->pstats->double_paged, 1);
    if (!obj->temporary)
        vm_kernel_note_swapped(obj->kernel, obj);
}

static uint64_t
sick_period(struct vm_object *obj)
{
    return obj->deadline_ns > 1000000000ull ? obj->deadline_ns : 1000000000ull;
}

/*
 * Release of a data_return: p->msg (to the pager, or to the default pager for
 * double paging) or p->dmsg (the copy of an overdue page sent to swap). When
 * the last one is back, the page's fate follows from who holds its data:
 * its pager (clean; an older swap copy is forgotten), only swap (clean, the
 * authoritative copy is in swap), or nobody (double-page it now, or kill the
 * object if swap failed too).
 */
static void
page_return_released(struct emm_msg *msg, int status)
{
    struct vm_page *p = msg->release_ctx;
    struct vm_object *obj = p->object;
    struct vm_kernel *k = obj->kernel;
    struct vm_batch b = {0};
    uint64_t now = emm_mono_ns();

    pthread_mutex_lock(&obj->lock);
    if (msg == &p->dmsg) {
        if (status == 0) {
            p->flags |= VM_PG_DOUBLED;
            note_double_paged(obj);
        } else {
            emm_warn("object %llu: copying overdue page %llu to swap failed: %s",
                     (unsigned long long)obj->id, (unsigned long long)p->index,
                     strerror(-status));
        }
    } else {
        p->ret_status = (int16_t)status;
    }
    if (--p->loans > 0) { /* the other message still holds the frame */
        pthread_mutex_unlock(&obj->lock);
        vm_object_unref(obj);
        return;
    }
    int to_dp = (p->flags & VM_PG_TO_DP) != 0;
    int st = p->ret_status;
    int pager_has = !to_dp && st == 0 && !obj->temporary;
    int swap_has = (to_dp && st == 0) || (p->flags & VM_PG_DOUBLED);
    int overdue = (p->flags & VM_PG_OVERDUE) != 0;

    if (!overdue)
        atomic_fetch_sub(&k->laundry, 1);
    else
        atomic_fetch_sub(&obj->pstats->overdue_inflight, 1);
    if (p->flags & VM_PG_ORPHAN) {
        /* Replaced by a newer copy in the object: only the frame is left. */
        p->flags &= ~(VM_PG_OVERDUE | VM_PG_DOUBLED);
        p->state = VM_PAGE_PRESENT;
        if (p->wire == 0)
            vm_obj_remove_page(obj, p);
        else
            p->flags |= VM_PG_EVICT; /* unwire frees it */
        goto out;
    }
    p->state = VM_PAGE_PRESENT;
    obj->nlaundry--;
    p->flags &= ~(VM_PG_OVERDUE | VM_PG_DOUBLED);
    if (obj->state == VM_OBJ_DEAD) {
        page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW | VM_PG_REDIRTY);
        p->flags |= VM_PG_EVICT;
    } else if (obj->temporary) {
        if (st == 0) {
            if (!(p->flags & VM_PG_REDIRTY))
                page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
        } else {
            obj_kill(obj, p->index, -st, &b); /* p is dropped with the rest */
            goto out;
        }
    } else if (pager_has) {
        if ((p->flags & VM_PG_INSWAP) || swap_has) {
            if (dp_forget(obj, p->index, &b) < 0) {
                p->flags |= VM_PG_INSWAP | VM_PG_REDIRTY; /* try again later */
            } else if (p->flags & VM_PG_INSWAP) {
                atomic_fetch_add(&k->stats.replayed, 1);
                atomic_fetch_add(&obj->pstats->replayed, 1);
            }
        }
        if (!(p->flags & VM_PG_REDIRTY)) {
            page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
            p->flags &= ~VM_PG_INSWAP;
        }
        atomic_store(&obj->pstats->sick_until_ns, 0); /* it answers: replay what swap holds */
        obj->backoff_until_ns = 0;
        if (obj->dp != NULL && k->dpo->pages(k->dp_ctx, obj->dp_handle) > 0)
            vm_kernel_note_swapped(k, obj);
    } else if (swap_has) {
        /* Double paged: swap holds the authoritative copy until a replay. */
        if (to_dp)
            note_double_paged(obj);
        if (!(p->flags & VM_PG_REDIRTY))
            page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
        p->flags |= VM_PG_INSWAP;
    } else if (to_dp) {
        obj_kill(obj, p->index, -st, &b); /* swap is full or failing */
        goto out;
    } else if (obj->dp != NULL && (p->flags & VM_PG_EVICT)) {
        /* The pager failed: double paging. The page stays on loan. */
        atomic_fetch_add(&k->stats.return_errors, 1);
        atomic_store(&obj->pstats->last_failure_ns, now);
        atomic_store(&obj->pstats->sick_until_ns, now + sick_period(obj));
        atomic_fetch_add(&k->laundry, 1);
        vm_pool_dequeue(&k->pool, p); /* off the laundry list: no deadline for swap */
        page_send_return(obj, p, 1, &b);
        p->state = VM_PAGE_LAUNDRY;
        obj->nlaundry++;
        vm_batch_post(obj, &b);
        pthread_mutex_unlock(&obj->lock);
        vm_batch_flush(obj, &b);
        vm_object_unref(obj);
        return;
    } else if (refused_for_good(st) && (p->flags & VM_PG_EVICT)) {
        /* The pageout daemon needs the frame, the pager refuses the page for
         * good and there is no default pager to take it: kept dirty, it would
         * hold its frame forever and writers would wait for frames forever
         * (in D state, unkillable). Mach's answer: the unlucky object dies,
         * with ENOSPC for its writers; the service goes on. */
        atomic_fetch_add(&k->stats.return_errors, 1);
        obj->return_failures++;
        atomic_store(&obj->pstats->last_failure_ns, now);
        obj_kill(obj, p->index, -st, &b); /* p is dropped with the rest */
        goto out;
    } else {
        atomic_fetch_add(&k->stats.return_errors, 1);
        obj->return_failures++; /* fails the fsyncs that were waiting for it */
        atomic_store(&obj->pstats->last_failure_ns, now);
        p->flags &= ~VM_PG_EVICT;
        obj->backoff_until_ns = now + 200000000ull;
    }
    p->flags &= ~VM_PG_REDIRTY;
    if ((p->flags & VM_PG_EVICT) && !(p->flags & VM_PG_DIRTY) && p->wire == 0) {
        vm_obj_remove_page(obj, p);
        atomic_fetch_add(&k->stats.evictions, 1);
    } else {
        p->flags &= ~VM_PG_EVICT;
        vm_pool_enqueue(&k->pool, p);
    }
out:
    run_waiters(obj, &b);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    pthread_mutex_lock(&k->pool.lock);
    pthread_cond_broadcast(&k->pool.wake);
    pthread_mutex_unlock(&k->pool.lock);
    vm_object_unref(obj);
}

void
vm_obj_launder(struct vm_object *obj, struct vm_page *p, int evict, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    uint64_t now = emm_mono_ns();
    /* A pager that failed or stalled lately gets no pageouts: straight to swap. */
    int to_dp = evict && !obj->temporary && obj->dp != NULL && vm_pager_suspect(obj->pstats, now);
    if (to_dp)
        vm_pool_dequeue(&k->pool, p);
    else
        vm_pool_to_laundry(&k->pool, p, now); /* watched for the deadline */
    p->state = VM_PAGE_LAUNDRY;
    p->flags &= (uint16_t)~(VM_PG_OVERDUE | VM_PG_DOUBLED);
    if (evict)
        p->flags |= VM_PG_EVICT;
    p->msg.flags = ((p->flags & VM_PG_DIRTY) ? MO_F_DIRTY : 0) | (evict ? 0 : MO_F_KERNEL_COPY);
    p->ret_status = 0;
    p->loans = 0;
    obj->nlaundry++;
    atomic_fetch_add(&k->laundry, 1);
    atomic_fetch_add(&k->stats.data_returns, 1);
    atomic_fetch_add(&k->stats.pages_returned, 1);
    if (evict)
        atomic_fetch_add(&obj->pstats->pageouts, 1);
    page_send_return(obj, p, to_dp, b);
}

void
vm_obj_overdue(struct vm_object *obj, struct vm_page *p, uint64_t now, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    vm_pool_dequeue(&k->pool, p);
    if (p->state != VM_PAGE_LAUNDRY || (p->flags & (VM_PG_OVERDUE | VM_PG_ORPHAN | VM_PG_TO_DP)))
        return;
    p->flags |= VM_PG_OVERDUE;
    atomic_fetch_sub(&k->laundry, 1); /* no longer throttles the daemon */
    atomic_fetch_add(&k->stats.overdue, 1);
    atomic_fetch_add(&obj->pstats->overdue, 1);
    atomic_fetch_add(&obj->pstats->overdue_inflight, 1);
    if (!vm_pager_suspect(obj->pstats, now))
        emm_warn("object %llu: pager has not taken page %llu back within its deadline "
                 "(%llu ms): its pageouts go to swap for now",
                 (unsigned long long)obj->id, (unsigned long long)p->index,
                 (unsigned long long)(obj->deadline_ns / 1000000));
    atomic_store(&obj->pstats->sick_until_ns, now + sick_period(obj));
    if (obj->dp != NULL && !obj->temporary) {
        struct emm_msg *d = &p->dmsg;
        memset(d, 0, sizeof(*d));
        d->id = MO_DATA_RETURN;
        d->offset = p->index * VM_PS;
        d->length = VM_PS;
        d->data = p->frame; /* read-only loan to both pagers */
        d->flags = MO_F_DIRTY;
        d->release = page_return_released;
        d->release_ctx = p;
        d->control = emm_port_make_send(obj->control);
        p->loans++;
        vm_object_ref(obj);
        batch_dp_msg(b, d);
    }
    run_waiters(obj, b); /* writers waiting on it copy it now */
}

static void
sync_queue(struct vm_object *obj, struct vm_sync *s)
{
    s->next = NULL;
    if (obj->sync_tail != NULL)
        obj->sync_tail->next = s;
    else
        obj->sync_head = s;
    obj->sync_tail = s;
}

static int
page_index_cmp(const void *a, const void *b)
{
    uint64_t x = (*(struct vm_page *const *)a)->index, y = (*(struct vm_page *const *)b)->index;
    return x < y ? -1 : x > y;
}

/* Sends every dirty page back and a synchronize; lock held. */
static int
sync_locked(struct vm_object *obj, struct vm_sync *s, struct vm_batch *b)
{
    if (obj->state == VM_OBJ_DEAD || obj->state == VM_OBJ_TERMINATED)
        return -(obj->error ? obj->error : EIO);
    /* In index order, so contiguous pages go back as clusters. */
    struct vm_page **dirty = obj->ndirty ? malloc(obj->ndirty * sizeof(*dirty)) : NULL;
    uint64_t n = 0;
    for (uint64_t i = 0; i < obj->nbuckets; i++)
        for (struct vm_page *p = obj->buckets[i]; p; p = p->hnext)
            if (p->state == VM_PAGE_PRESENT && (p->flags & VM_PG_DIRTY)) {
                if (dirty != NULL && n < obj->ndirty)
                    dirty[n++] = p;
                else
                    vm_obj_launder(obj, p, 0, b);
            }
    if (n > 1)
        qsort(dirty, n, sizeof(*dirty), page_index_cmp);
    for (uint64_t i = 0; i < n; i++)
        vm_obj_launder(obj, dirty[i], 0, b);
    free(dirty);
    struct emm_msg *m = kmsg(obj, MO_SYNCHRONIZE, 0, obj->size);
    if (m == NULL)
        return -ENOMEM;
    batch_msg(b, m);
    s->failures_at_start = obj->return_failures;
    sync_queue(obj, s);
    atomic_fetch_add(&obj->kernel->stats.synchronizes, 1);
    return 0;
}

void
vm_object_sync(struct vm_object *obj, vm_done_fn done, void *arg)
{
    struct vm_sync *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        done(arg, ENOMEM);
        return;
    }
    s->done = done;
    s->arg = arg;
    struct vm_batch b = {0};
    int rc;
    pthread_mutex_lock(&obj->lock);
    if (dp_holds(obj) && obj->state == VM_OBJ_READY) {
        /* Swap holds pages its pager lacks: they must reach it first. The
         * fsync waits for the replay (through a stall too, like any write to a
         * slow store) and fails if the pager refuses a page meanwhile. */
        s->queued_ns = emm_mono_ns();
        s->next = obj->replay_syncs;
        obj->replay_syncs = s;
        rc = 0;
    } else {
        rc = sync_locked(obj, s, &b);
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    if (rc < 0) {
        free(s);
        done(arg, -rc);
    } else if (obj->dp != NULL) {
        vm_kernel_note_swapped(obj->kernel, obj); /* the worker replays, then syncs */
    }
}

void
vm_object_set_size(struct vm_object *obj, uint64_t size)
{
    pthread_mutex_lock(&obj->lock);
    obj->size = size;
    pthread_mutex_unlock(&obj->lock);
}

uint64_t
vm_object_size(struct vm_object *obj)
{
    pthread_mutex_lock(&obj->lock);
    uint64_t s = obj->size;
    pthread_mutex_unlock(&obj->lock);
    return s;
}

struct punch_ctx {
    atomic_int pending;
    int err;
    vm_done_fn done;
    void *arg;
};

static void
punch_part_done(void *arg, int err)
{
    struct punch_ctx *pc = arg;
    if (err)
        pc->err = err;
    if (atomic_fetch_sub(&pc->pending, 1) == 1) {
        pc->done(pc->arg, pc->err);
        free(pc);
    }
}

/* clip: partial edge pages at or past it are not zeroed (punch clips to the
 * size; truncate zeroes the tail of its new last page, past the new size). */
static void
punch_impl(struct vm_object *obj, uint64_t off, uint64_t len, uint64_t clip, vm_done_fn done,
           void *arg)
{
    static const char zeros[EMM_PAGE_SIZE];
    uint64_t end = len == UINT64_MAX || off + len < off ? UINT64_MAX : off + len;
    uint64_t pfirst = (off + VM_PS - 1) / VM_PS;             /* first whole page */
    uint64_t pend = end == UINT64_MAX ? UINT64_MAX : end / VM_PS; /* after the last whole */
    struct punch_ctx *pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        done(arg, ENOMEM);
        return;
    }
    pc->done = done;
    pc->arg = arg;
    atomic_init(&pc->pending, 1);
    struct vm_batch b = {0};
    pthread_mutex_lock(&obj->lock);
    if (pend > pfirst) {
        for (uint64_t i = 0; i < obj->nbuckets; i++) {
            struct vm_page *p = obj->buckets[i];
            while (p != NULL) {
                struct vm_page *next = p->hnext;
                if (p->index >= pfirst && p->index < pend)
                    page_discard(obj, p);
                p = next;
            }
        }
        uint64_t dlen = pend == UINT64_MAX ? UINT64_MAX : (pend - pfirst) * VM_PS;
        struct emm_msg *m = kmsg(obj, MO_DISCARD, pfirst * VM_PS, dlen);
        if (m != NULL)
            batch_msg(&b, m);
        if (dp_holds(obj) && (m = kmsg(obj, MO_DISCARD, pfirst * VM_PS, dlen)) != NULL)
            batch_dp_msg(&b, m);
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    /* Partial edge pages: zero their part through the write path. */
    uint64_t size = clip;
    uint64_t head_end = pfirst * VM_PS < end ? pfirst * VM_PS : end;
    if (off < head_end && off < size) {
        atomic_fetch_add(&pc->pending, 1);
        vm_object_write(obj, off, zeros, head_end - off, punch_part_done, pc);
    }
    if (end != UINT64_MAX && pend >= pfirst && end % VM_PS && end / VM_PS * VM_PS >= off &&
        end / VM_PS * VM_PS < size) {
        atomic_fetch_add(&pc->pending, 1);
        uint64_t tail = end / VM_PS * VM_PS;
        vm_object_write(obj, tail, zeros, end - tail, punch_part_done, pc);
    }
    punch_part_done(pc, 0);
}

void
vm_object_punch(struct vm_object *obj, uint64_t off, uint64_t len, vm_done_fn done, void *arg)
{
    punch_impl(obj, off, len, vm_object_size(obj), done, arg);
}

void
vm_object_truncate(struct vm_object *obj, uint64_t size, vm_done_fn done, void *arg)
{
    pthread_mutex_lock(&obj->lock);
    uint64_t old = obj->size;
    obj->size = size;
    pthread_mutex_unlock(&obj->lock);
    if (size >= old) {
        done(arg, 0);
        return;
    }
    punch_impl(obj, size, UINT64_MAX, UINT64_MAX, done, arg);
}

static void
terminate_finish(struct vm_object *obj, int discard)
{
    struct vm_batch b = {0};
    pthread_mutex_lock(&obj->lock);
    obj->state = VM_OBJ_TERMINATED;
    obj->error = EIO;
    discard_all(obj);
    if (discard) {
        struct emm_msg *m = kmsg(obj, MO_DISCARD, 0, UINT64_MAX);
        if (m != NULL)
            batch_msg(&b, m);
    }
    struct emm_msg *t = emm_msg_new(MO_TERMINATE, 0, 0);
    if (t != NULL) {
        t->control = emm_port_make_send(obj->control);
        t->name = emm_port_make_send(obj->name);
        batch_msg(&b, t);
    }
    if (obj->dp != NULL && !obj->temporary) {
        /* Unlinked: swap's copies go too. Otherwise they stay for a replay by
         * the next mapping of this object (after a restart, say). */
        struct emm_msg *m = discard ? kmsg(obj, MO_DISCARD, 0, UINT64_MAX) : NULL;
        if (m != NULL)
            batch_dp_msg(&b, m);
        m = emm_msg_new(MO_TERMINATE, 0, 0);
        if (m != NULL)
            batch_dp_msg(&b, m);
    }
    run_waiters(obj, &b); /* fail anything still waiting */
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
}

struct term_ctx {
    struct vm_object *obj;
    vm_done_fn done;
    void *arg;
};

static void
terminate_after_sync(void *arg, int err)
{
    struct term_ctx *tc = arg;
    terminate_finish(tc->obj, 0);
    tc->done(tc->arg, err);
    vm_object_unref(tc->obj);
    free(tc);
}

void
vm_object_terminate(struct vm_object *obj, int keep, vm_done_fn done, void *arg)
{
    if (!keep) {
        terminate_finish(obj, 1);
        done(arg, 0);
        return;
    }
    struct term_ctx *tc = calloc(1, sizeof(*tc));
    if (tc == NULL) {
        done(arg, ENOMEM);
        return;
    }
    tc->obj = obj;
    tc->done = done;
    tc->arg = arg;
    vm_object_ref(obj);
    pthread_mutex_lock(&obj->lock);
    int live = obj->state == VM_OBJ_READY || obj->state == VM_OBJ_INIT;
    pthread_mutex_unlock(&obj->lock);
    if (live)
        vm_object_sync(obj, terminate_after_sync, tc);
    else
        terminate_after_sync(tc, obj->error);
}

static void
syncs_fail(struct vm_sync *list, int err)
{
    while (list != NULL) {
        struct vm_sync *s = list;
        list = s->next;
        s->done(s->arg, err);
        free(s);
    }
}

int
vm_obj_replay(struct vm_object *obj, unsigned max_pages)
{
    struct vm_kernel *k = obj->kernel;
    struct vm_batch b = {0};
    int more = 0;
    struct vm_sync *failed = NULL;
    pthread_mutex_lock(&obj->lock);
    if (obj->state != VM_OBJ_READY || obj->dp == NULL || obj->temporary) {
        failed = obj->replay_syncs;
        obj->replay_syncs = NULL;
        pthread_mutex_unlock(&obj->lock);
        syncs_fail(failed, obj->error ? obj->error : EIO);
        return 0;
    }
    more = dp_holds(obj) || obj->replay_inflight > 0;
    int suspect = vm_pager_suspect(obj->pstats, emm_mono_ns());
    uint64_t failed_at = atomic_load(&obj->pstats->last_failure_ns);
    /* Replay done: the fsyncs that waited for it go on. The pager refused a
     * page since one began waiting: that one fails. */
    struct vm_sync **pp = &obj->replay_syncs;
    while (*pp != NULL) {
        struct vm_sync *s = *pp;
        int refused = failed_at > s->queued_ns;
        if (!refused && more) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        if (refused || sync_locked(obj, s, &b) < 0) {
            s->next = failed;
            failed = s;
        }
    }
    if (!more || obj->replay_inflight > 0 || suspect) {
        vm_batch_post(obj, &b);
        pthread_mutex_unlock(&obj->lock);
        vm_batch_flush(obj, &b);
        syncs_fail(failed, EIO);
        return more;
    }
    uint64_t idx = 0;
    unsigned sent = 0;
    while (sent < max_pages &&
           (idx = k->dpo->next_page(k->dp_ctx, obj->dp_handle, idx)) != UINT64_MAX) {
        struct vm_page *p = page_lookup(obj, idx);
        if (p == NULL) {
            /* Page it in from swap; the supply sends it on to the pager. */
            uint64_t run = idx + 1;
            while (run - idx < max_pages - sent && page_lookup(obj, run) == NULL &&
                   k->dpo->holds(k->dp_ctx, obj->dp_handle, run))
                run++;
            struct vm_page *frames[256];
            unsigned want = (unsigned)(run - idx > 256 ? 256 : run - idx);
            unsigned got = vm_pool_alloc(&k->pool, frames, want);
            struct emm_msg *m = got ? kmsg(obj, MO_DATA_REQUEST, idx * VM_PS, got * VM_PS) : NULL;
            if (m == NULL) {
                for (unsigned i = 0; i < got; i++)
                    vm_pool_free(&k->pool, frames[i]);
                break;
            }
            m->access = VM_PROT_READ;
            for (unsigned i = 0; i < got; i++) {
                page_insert(obj, frames[i], idx + i, VM_PAGE_ABSENT);
                frames[i]->flags |= VM_PG_FROMSWAP | VM_PG_REPLAY;
            }
            obj->replay_inflight += got;
            batch_dp_msg(&b, m);
            sent += got;
            idx += got;
        } else {
            /* Resident: its data is newer than swap's or equal; return it. */
            if (p->state == VM_PAGE_PRESENT && p->wire == 0) {
                page_flags(obj, p, VM_PG_DIRTY, 0);
                p->flags |= VM_PG_INSWAP;
                vm_obj_launder(obj, p, 1, &b);
                sent++;
            }
            idx++;
        }
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    return 1;
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
        while ((p = page_lookup(obj, idx)) != NULL && page_is_data(p))
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
        struct vm_page *p = page_lookup(obj, idx);
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

/* ---- pager -> kernel messages (the control port) ----------------------- */

static void
fail_overlapping(struct vm_object *obj, uint64_t off, uint64_t len, int err, struct vm_batch *b)
{
    struct vm_io **pp = &obj->io_head, *last = NULL;
    while (*pp != NULL) {
        struct vm_io *io = *pp;
        if (io->off < off + len && off < io->off + io->len) {
            *pp = io->next;
            io->err = err;
            batch_done(b, io);
            continue;
        }
        last = io;
        pp = &io->next;
    }
    obj->io_tail = last;
}

/* Copies supplied data into the frames of pages waiting for it, without the
 * object lock (a 1 MiB copy would stall pageout and other faults). Safe: only
 * this port's handler makes an ABSENT page present or frees it, and handlers of
 * one port never overlap; a page discarded meanwhile is zeroed under the lock. */
static void
supply_prefill(struct vm_object *obj, struct emm_msg *msg, uint8_t *filled)
{
    uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
    void *frames[256];
    pthread_mutex_lock(&obj->lock);
    for (uint64_t i = 0; i < n; i++) {
        struct vm_page *p = page_lookup(obj, first + i);
        frames[i] = p != NULL && p->state == VM_PAGE_ABSENT ? p->frame : NULL;
    }
    pthread_mutex_unlock(&obj->lock);
    for (uint64_t i = 0; i < n; i++) {
        filled[i] = frames[i] != NULL;
        if (frames[i] != NULL)
            memcpy(frames[i], (const char *)msg->data + i * VM_PS, VM_PS);
    }
}

static void
handle_supply(struct vm_object *obj, struct emm_msg *msg, int zero, const uint8_t *filled,
              struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
    uint64_t present = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct vm_page *p = page_lookup(obj, first + i);
        if (p == NULL) {
            /* Unsolicited (prefetch): take it only if a frame is free now. */
            if (zero || vm_pool_alloc(&k->pool, &p, 1) != 1)
                continue;
            page_insert(obj, p, first + i, VM_PAGE_ABSENT);
        } else if (p->state != VM_PAGE_ABSENT) {
            present++; /* KERN_MEMORY_PRESENT: keep ours */
            p->flags &= ~VM_PG_ABANDONED; /* the late answer: ours is newer */
            continue;
        }
        /* Discarded while on its way (punch, truncate): the pager's data is stale. */
        int hole = zero || (p->flags & VM_PG_DISCARDED);
        if (hole)
            memset(p->frame, 0, VM_PS);
        else if (filled == NULL || !filled[i])
            memcpy(p->frame, (const char *)msg->data + i * VM_PS, VM_PS);
        p->state = VM_PAGE_PRESENT;
        obj->nabsent--;
        p->lock_value = hole ? 0 : msg->access & VM_PROT_ALL;
        int replay = (p->flags & VM_PG_REPLAY) != 0;
        if (p->flags & VM_PG_REPLAY)
            obj->replay_inflight--;
        p->flags &= ~(VM_PG_DISCARDED | VM_PG_REPLAY);
        if (!hole && (msg->flags & MO_F_PRECIOUS))
            p->flags |= VM_PG_PRECIOUS;
        page_flags(obj, p, hole ? VM_PG_NEW : 0, hole ? 0 : VM_PG_NEW);
        if (p->flags & VM_PG_FROMSWAP) {
            p->flags &= ~VM_PG_FROMSWAP;
            atomic_fetch_add(&k->stats.swap_faults, 1);
            atomic_fetch_add(&obj->pstats->swap_faults, 1);
            if (!hole && !obj->temporary) {
                /* Its pager lacks this data: dirty, and swap's copy is to forget
                 * once the pager has it. */
                page_flags(obj, p, VM_PG_DIRTY, 0);
                p->flags |= VM_PG_INSWAP;
            }
        } else if (obj->temporary && obj->dp != NULL && !hole) {
            atomic_fetch_add(&k->stats.swap_faults, 1);
            atomic_fetch_add(&obj->pstats->swap_faults, 1);
        }
        if (replay && (p->flags & VM_PG_DIRTY) && obj->state == VM_OBJ_READY)
            vm_obj_launder(obj, p, 1, b); /* straight back to its pager */
        else
            vm_pool_enqueue(&k->pool, p);
    }
    if (!zero && msg->reply != EMM_PORT_NULL) {
        struct emm_msg *r = emm_msg_new(MO_SUPPLY_COMPLETED, msg->offset, msg->length);
        if (r != NULL) {
            r->arg = present ? EEXIST : 0; /* KERN_MEMORY_PRESENT */
            r->control = emm_port_make_send(obj->control);
            if (emm_port_send_reply(&msg->reply, r) < 0)
                emm_msg_release(r, -EPIPE);
        }
    }
    run_waiters(obj, b);
}

/* The default pager no longer holds these pages (replayed or discarded since
 * the request): ask the object's own pager, which is authoritative for them. */
static void
handle_not_held(struct vm_object *obj, struct emm_msg *msg, struct vm_batch *b)
{
    uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
    uint64_t run_start = 0, run_len = 0;
    for (uint64_t i = 0; i <= n; i++) {
        struct vm_page *p = i < n ? page_lookup(obj, first + i) : NULL;
        int ask = p != NULL && p->state == VM_PAGE_ABSENT && (p->flags & VM_PG_FROMSWAP);
        if (ask) {
            if (p->flags & VM_PG_REPLAY)
                obj->replay_inflight--;
            p->flags &= ~(VM_PG_FROMSWAP | VM_PG_REPLAY);
            if (run_len == 0)
                run_start = first + i;
            run_len++;
        }
        if ((!ask || i == n) && run_len > 0) {
            struct emm_msg *m = kmsg(obj, MO_DATA_REQUEST, run_start * VM_PS, run_len * VM_PS);
            if (m != NULL) {
                m->access = VM_PROT_READ;
                batch_msg(b, m);
            } else {
                for (uint64_t j = 0; j < run_len; j++)
                    vm_obj_remove_page(obj, page_lookup(obj, run_start + j));
                fail_overlapping(obj, run_start * VM_PS, run_len * VM_PS, ENOMEM, b);
            }
            run_len = 0;
        }
    }
}

struct lock_ctx {
    struct vm_object *obj;
    struct emm_msg *msg;
};

static void
lock_request_apply(void *arg)
{
    struct lock_ctx *lc = arg;
    struct vm_object *obj = lc->obj;
    struct emm_msg *msg = lc->msg;
    struct vm_batch b = {0};
    uint64_t first = msg->offset / VM_PS;
    uint64_t last = msg->length == UINT64_MAX ? UINT64_MAX
                                              : (msg->offset + msg->length + VM_PS - 1) / VM_PS;
    int flush = (msg->flags & MO_F_FLUSH) != 0;

    pthread_mutex_lock(&obj->lock);
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            if (p->index < first || p->index >= last || p->state == VM_PAGE_ABSENT) {
                p = next;
                continue;
            }
            if (msg->access != VM_PROT_NO_CHANGE)
                p->lock_value = msg->access & VM_PROT_ALL;
            int ret = (msg->arg == MO_RETURN_DIRTY && (p->flags & VM_PG_DIRTY)) ||
                      (msg->arg == MO_RETURN_ALL &&
                       (p->flags & (VM_PG_DIRTY | VM_PG_PRECIOUS)));
            if (p->state == VM_PAGE_LAUNDRY) {
                if (flush)
                    p->flags |= VM_PG_EVICT;
            } else if (ret) {
                vm_obj_launder(obj, p, flush, &b);
            } else if (flush) {
                page_discard(obj, p);
            }
            p = next;
        }
    }
    if (msg->reply != EMM_PORT_NULL) {
        struct emm_msg *r = emm_msg_new(MO_LOCK_COMPLETED, msg->offset, msg->length);
        if (r != NULL) {
            r->control = emm_port_make_send(obj->control);
            /* After the data_returns it caused (same batch, sent in order). */
            batch_msg(&b, r);
            r->reply = msg->reply; /* carried: sent to the reply port below */
            msg->reply = EMM_PORT_NULL;
        }
    }
    run_waiters(obj, &b);
    /* Queue the returns for the pager, then lock_completed on its reply port,
     * in order and under the lock (see vm_batch_post). */
    struct emm_msg *m = b.msgs;
    struct emm_port *reply_to = NULL;
    b.msgs = b.msgs_tail = NULL;
    while (m != NULL) {
        struct emm_msg *next = m->next;
        if (m->id == MO_LOCK_COMPLETED) {
            reply_to = emm_port_take(&m->reply);
            if (emm_port_post(reply_to, m) < 0) {
                m->next = b.failed;
                b.failed = m;
            }
        } else if (emm_port_post(obj->pager, m) < 0) {
            m->next = b.failed;
            b.failed = m;
        } else {
            b.kick_pager = 1;
        }
        m = next;
    }
    vm_batch_post(obj, &b); /* messages for the default pager */
    pthread_mutex_unlock(&obj->lock);
    if (reply_to != NULL) {
        vm_batch_flush(obj, &b); /* the returns first */
        emm_port_kick(reply_to);
        emm_port_unref(reply_to);
    }
    vm_batch_flush(obj, &b);
    emm_msg_release(msg, 0);
    emm_port_resume(obj->control);
    vm_object_unref(obj);
    free(lc);
}

static void
handle_lock_request(struct emm_port *port, struct vm_object *obj, struct emm_msg *msg)
{
    struct vm_kernel *k = obj->kernel;
    atomic_fetch_add(&k->stats.lock_requests, 1);
    struct lock_ctx *lc = calloc(1, sizeof(*lc));
    if (lc == NULL) {
        emm_err("object %llu: lock_request dropped: out of memory", (unsigned long long)obj->id);
        emm_msg_release(msg, -ENOMEM);
        return;
    }
    lc->obj = obj;
    lc->msg = msg;
    vm_object_ref(obj);
    /* Later messages on this port wait until the request is applied (order). */
    emm_port_hold(port);
    int touches_cache = msg->arg != MO_RETURN_NONE || (msg->flags & MO_F_FLUSH);
    if (touches_cache && k->up.invalidate != NULL) {
        /* Dirty pages in the Linux page cache come back as WRITEs first. */
        uint64_t len = msg->length == UINT64_MAX ? 0 : msg->length;
        k->up.invalidate(obj->owner, msg->offset, len, lock_request_apply, lc);
    } else {
        lock_request_apply(lc);
    }
}

static void
control_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct vm_object *obj = port->context;
    struct vm_kernel *k = obj->kernel;
    struct vm_batch b = {0};

    if (msg->id == MO_LOCK_REQUEST) {
        handle_lock_request(port, obj, msg);
        return;
    }
    uint8_t filled[256];
    int prefilled = msg->id == MO_DATA_SUPPLY && msg->length / VM_PS <= 256;
    if (prefilled)
        supply_prefill(obj, msg, filled);
    pthread_mutex_lock(&obj->lock);
    switch (msg->id) {
    case MO_READY:
    case MO_CHANGE_ATTRIBUTES:
        obj->may_cache = (msg->flags & MO_F_MAY_CACHE) != 0;
        atomic_store(&obj->return_clusters, (msg->flags & MO_F_CLUSTER_OK) != 0);
        obj->copy_strategy = msg->arg;
        if (obj->state == VM_OBJ_INIT)
            obj->state = VM_OBJ_READY;
        if (msg->id == MO_CHANGE_ATTRIBUTES && msg->reply != EMM_PORT_NULL) {
            struct emm_msg *r = emm_msg_new(MO_CHANGE_COMPLETED, 0, 0);
            if (r != NULL) {
                r->flags = msg->flags & MO_F_MAY_CACHE;
                r->arg = msg->arg;
                if (emm_port_send_reply(&msg->reply, r) < 0)
                    emm_msg_release(r, -EPIPE);
            }
        }
        run_waiters(obj, &b);
        break;
    case MO_DATA_SUPPLY:
        atomic_fetch_add(&k->stats.data_supplies, 1);
        atomic_fetch_add(&k->stats.pages_supplied, msg->length / VM_PS);
        handle_supply(obj, msg, 0, prefilled ? filled : NULL, &b);
        break;
    case MO_DATA_UNAVAILABLE:
        if (msg->flags & MO_F_NOT_HELD) {
            handle_not_held(obj, msg, &b);
            break;
        }
        atomic_fetch_add(&k->stats.data_unavailable, 1);
        handle_supply(obj, msg, 1, NULL, &b);
        break;
    case MO_DATA_ERROR: {
        atomic_fetch_add(&k->stats.data_errors, 1);
        int err = msg->arg > 0 ? msg->arg : EIO;
        uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
        for (uint64_t i = 0; i < n; i++) {
            struct vm_page *p = page_lookup(obj, first + i);
            if (p != NULL && p->state == VM_PAGE_ABSENT)
                vm_obj_remove_page(obj, p);
            else if (p != NULL)
                p->flags &= ~VM_PG_ABANDONED;
        }
        /* Only operations waiting now get the error (Mach). */
        fail_overlapping(obj, msg->offset, msg->length, err, &b);
        run_waiters(obj, &b);
        break;
    }
    case MO_DESTROY:
        emm_warn("object %llu: pager destroyed it (reason %d)", (unsigned long long)obj->id,
                 msg->arg);
        obj->state = VM_OBJ_DEAD;
        obj->error = msg->arg > 0 ? msg->arg : EIO;
        discard_all(obj);
        run_waiters(obj, &b);
        break;
    case MO_SYNCHRONIZE_COMPLETED: {
        struct vm_sync *s = obj->sync_head;
        if (s == NULL) {
            emm_warn("object %llu: unexpected synchronize_completed", (unsigned long long)obj->id);
            break;
        }
        obj->sync_head = s->next;
        if (obj->sync_head == NULL)
            obj->sync_tail = NULL;
        s->next = NULL;
        b.syncs_done = s;
        b.sync_err = msg->arg; /* a positive errno (validated) */
        if (b.sync_err == 0 && obj->return_failures != s->failures_at_start)
            b.sync_err = EIO; /* a page it returned stayed dirty: the pager refused it */
        if (b.sync_err == 0 && dp_holds(obj) && obj->state == VM_OBJ_READY) {
            /* Not all of it is with the pager yet: those pages are in swap
             * until the replay gives them back. */
            b.sync_err = EIO;
            vm_kernel_note_swapped(k, obj);
        }
        if (b.sync_err)
            atomic_fetch_add(&k->stats.sync_errors, 1);
        break;
    }
    default:
        emm_warn("object %llu: control port got %s (%u): ignored", (unsigned long long)obj->id,
                 emm_msg_name(msg->id), msg->id);
        break;
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    emm_msg_release(msg, 0);
    vm_batch_flush(obj, &b);
}
