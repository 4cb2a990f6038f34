/*
 * vm_fault.c - the fault (read) and write paths: operations wire resident
 * pages, ask the pager for missing runs with data_request, wait on the object
 * (never in a thread) when frames or data are missing, and are rerun by the
 * handlers and the kernel worker. While a pager is suspect, the pages it does
 * not store are filled by the kernel, as its existence map says (vm_pmap.c):
 * nobody is asked.
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

static void
starve(struct vm_object *obj, unsigned need)
{
    obj->starved = 1;
    if (need > atomic_load(&obj->need_frames))
        atomic_store(&obj->need_frames, need);
    atomic_fetch_add(&obj->kernel->stats.frame_waits, 1);
}

/* Page idx is a hole of the pager's that the kernel fills itself: the pager
 * is suspect (it sits on an overdue data_return, so a data_request would
 * wait behind it: a stalled pager must not stall faults on pages it has
 * nothing for) and its existence map (vm_pmap.c, learnt through data_query
 * and kept by the kernel's own data_returns and discards) says it stores no
 * such page. Pages the map does not know are asked for. Lock held. */
int
vm_obj_pager_lacks(struct vm_object *obj, uint64_t idx)
{
    if (obj->temporary || obj->pager == NULL || !vm_pager_suspect(obj->pstats, emm_mono_ns()))
        return 0;
    return vm_pmap_lacks(&obj->pm, idx);
}

void
vm_obj_fill_hole(struct vm_object *obj, struct vm_page *p)
{
    memset(p->frame, 0, VM_PS);
    p->state = VM_PAGE_PRESENT;
    obj->nabsent--;
    p->lock_value = 0;
    p->flags &= ~VM_PG_DISCARDED;
    vm_obj_page_flags(obj, p, VM_PG_NEW, 0);
    vm_pool_enqueue(&obj->kernel->pool, p);
    atomic_fetch_add(&obj->kernel->stats.holes_filled, 1);
}

/* p waits for a data_request its pager has not started, queued behind a
 * data_return the pager sits on, and the pager lacks the page: fill it as the
 * hole it is. The page stays resident (the daemon skips it) until the pager's
 * late answer arrives, so that answer never lands on a later request. */
static void
abandon_request(struct vm_object *obj, struct vm_page *p)
{
    vm_obj_fill_hole(obj, p);
    p->flags |= VM_PG_ABANDONED;
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
        struct vm_page *p = vm_obj_page_lookup(obj, idx);
        if (p != NULL) {
            if (p->state == VM_PAGE_ABSENT && !(p->flags & (VM_PG_FROMSWAP | VM_PG_REPLAY)) &&
                vm_obj_pager_lacks(obj, idx) == 1)
                abandon_request(obj, p);
            if (p->state == VM_PAGE_ABSENT)
                ready = 0;
            else if (p->lock_value & access & VM_PROT_READ) {
                ready = 0;
                if (idx >= io->unlock_next) {
                    struct emm_msg *m = vm_kmsg(obj, MO_DATA_UNLOCK, idx * VM_PS, VM_PS);
                    if (m != NULL) {
                        m->access = access;
                        vm_batch_msg(b, m);
                        atomic_fetch_add(&k->stats.data_unlocks, 1);
                    }
                    io->unlock_next = idx + 1;
                }
            }
            idx++;
            continue;
        }
        uint64_t run = idx;
        while (run < end && run - idx < EMM_MAX_REQUEST_PAGES && vm_obj_page_lookup(obj, run) == NULL)
            run++;
        /* Pages whose newest copy is in swap come from the default pager. */
        int from_swap = 0;
        if (vm_obj_dp_holds(obj)) {
            from_swap = k->dpo->holds(k->dp_ctx, obj->dp_handle, idx);
            uint64_t r = idx + 1;
            while (r < run && k->dpo->holds(k->dp_ctx, obj->dp_handle, r) == from_swap)
                r++;
            run = r;
        }
        if (!from_swap && obj->pager_lost_ns != 0) {
            /* Its pager died: the fault waits for the next one (vm_lost.c),
             * up to the deadline. */
            ready = 0;
            idx = run;
            continue;
        }
        /* A suspect pager still works through an earlier data_return: a
         * data_request would queue behind it. Pages it never stored are holes
         * the kernel fills itself (what its data_unavailable would say). */
        int hole = from_swap ? 0 : vm_obj_pager_lacks(obj, idx);
        if (!from_swap && !obj->temporary && vm_pager_suspect(obj->pstats, emm_mono_ns())) {
            /* Decided from the existence map: the run goes on while it says the same. */
            uint64_t r = idx + 1;
            while (r < run && vm_obj_pager_lacks(obj, r) == hole)
                r++;
            run = r;
        } else if (!from_swap && obj->pm.state == VM_PM_UNKNOWN) {
            vm_obj_pm_learn(obj, b); /* not learnt yet (or given up): the pager answers now */
        }
        /* Read-around (Mach's cluster page-in): a small fault on pages swap
         * holds (a temporary object's, or a stalled pager's double-paged
         * ones) also asks for the swapped pages that follow it in its
         * window, which the default pager reads in the same I/O when their
         * slots are consecutive (a clustered pageout wrote them so). Only
         * while frames are free: the extra pages never starve anything. */
        unsigned want = (unsigned)(run - idx), extra = 0;
        if (run == end && want < VM_READAROUND && (obj->temporary || from_swap) &&
            k->dpo != NULL && obj->dp != NULL &&
            vm_pool_free_count(&k->pool) >= k->pool.free_target + VM_READAROUND) {
            uint64_t lim = (obj->size + VM_PS - 1) / VM_PS, wend = idx + VM_READAROUND;
            while (run < wend && run < lim && vm_obj_page_lookup(obj, run) == NULL &&
                   k->dpo->holds(k->dp_ctx, obj->dp_handle, run))
                run++;
            extra = (unsigned)(run - idx) - want;
        }
        struct vm_page *frames[EMM_MAX_REQUEST_PAGES];
        unsigned got = vm_pool_alloc(&k->pool, frames, want + extra);
        if (got < want)
            starve(obj, 1); /* a read progresses with any frame */
        if (got > want)
            atomic_fetch_add(&k->stats.readaround_pages, got - want);
        want += extra;
        if (got == 0)
            return 0;
        if (hole) {
            for (unsigned i = 0; i < got; i++) {
                memset(frames[i]->frame, 0, VM_PS);
                vm_obj_page_insert(obj, frames[i], idx + i, VM_PAGE_PRESENT);
                vm_obj_page_flags(obj, frames[i], VM_PG_NEW, 0);
                vm_pool_enqueue(&k->pool, frames[i]);
            }
            atomic_fetch_add(&k->stats.holes_filled, got);
            idx += got;
            if (got < want)
                ready = 0;
            continue;
        }
        ready = 0;
        struct emm_msg *m = vm_kmsg(obj, MO_DATA_REQUEST, idx * VM_PS, got * VM_PS);
        if (m == NULL) {
            for (unsigned i = 0; i < got; i++)
                vm_pool_free(&k->pool, frames[i]);
            return 0;
        }
        m->access = access;
        for (unsigned i = 0; i < got; i++) {
            vm_obj_page_insert(obj, frames[i], idx + i, VM_PAGE_ABSENT);
            if (from_swap)
                frames[i]->flags |= VM_PG_FROMSWAP;
        }
        if (from_swap)
            vm_batch_dp_msg(b, m);
        else
            vm_batch_msg(b, m);
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
        return obj->down_expired ? -EIO : 0; /* a new pager not ready past the deadline */
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
        return obj->down_expired ? -EIO : 0; /* its pager is gone past the deadline */
    io->nwired = 0;
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = vm_obj_page_lookup(obj, idx);
        p->wire++;
        io->wired[io->nwired++] = p;
    }
    vm_pool_touch(&obj->kernel->pool, io->wired, io->nwired);
    return 1;
}

/* A write to a page whose frame someone else reads, and will not give back
 * soon: its data_return is overdue (the stalled pager keeps the frame, freed
 * when it answers), or a READ reply is being sent from it (freed at the last
 * vm_io_unwire). The object gets a copy in q, so the writer never waits past
 * the deadline and the reader sees the page as it was. Bytes [a, b) of the
 * page are not copied: the write brings them. Lock held. */
static struct vm_page *
page_copy(struct vm_object *obj, struct vm_page *old, struct vm_page *q, uint64_t a, uint64_t b)
{
    int laundry = old->state == VM_PAGE_LAUNDRY;
    uint16_t keep = old->flags & (VM_PG_NEW | VM_PG_INSWAP | VM_PG_PRECIOUS | VM_PG_ABANDONED);
    if (old->flags & VM_PG_DIRTY)
        keep |= VM_PG_DIRTY;
    vm_obj_page_unlink(obj, old);
    if (laundry)
        obj->nlaundry--;
    else
        old->flags |= VM_PG_EVICT;
    old->flags |= VM_PG_ORPHAN;
    vm_obj_page_insert(obj, q, old->index, VM_PAGE_PRESENT);
    memcpy(q->frame, old->frame, a);
    memcpy((char *)q->frame + b, (char *)old->frame + b, VM_PS - b);
    q->lock_value = old->lock_value;
    /* The swap copy (if the default pager got one) is older than this page. */
    vm_obj_page_flags(obj, q, VM_PG_DIRTY | keep | (laundry && obj->dp != NULL ? VM_PG_INSWAP : 0), 0);
    if (laundry)
        atomic_fetch_add(&obj->kernel->stats.cow_overdue, 1);
    return q;
}

/* The write must wait, and its caller's buffer is only lent: its bytes go to
 * frames of its own, taken from the pool (never the heap), so the caller can
 * go. Staged frames stay under a quarter of the pool, so waiting writes cannot
 * starve faults. 1: staged; 0: no frames now (the caller stays blocked, the
 * kernel worker reruns the write when frames come back). Lock held. */
static int
write_stage(struct vm_object *obj, struct vm_io *io)
{
    struct vm_kernel *k = obj->kernel;
    uint64_t end = io->off + io->len;
    uint64_t first = io->off / VM_PS, n = (end - 1) / VM_PS - first + 1;
    if (atomic_load(&k->stats.staged_pages_now) + n > k->pool.npages / 4 ||
        vm_pool_alloc_all(&k->pool, io->wired, (unsigned)n) == 0) {
        starve(obj, (unsigned)n);
        return 0;
    }
    atomic_fetch_add(&k->stats.staged_pages_now, n);
    atomic_fetch_add(&k->stats.writes_staged, 1);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pstart = (first + i) * VM_PS;
        uint64_t from = io->off > pstart ? io->off : pstart;
        uint64_t to = end < pstart + VM_PS ? end : pstart + VM_PS;
        memcpy((char *)io->wired[i]->frame + (from - pstart),
               (const char *)io->src + (from - io->off), to - from);
    }
    io->nwired = (unsigned)n;
    io->src = NULL;
    io->waiter->released = 1;
    pthread_cond_signal(&io->waiter->cond);
    io->waiter = NULL;
    return 1;
}

static int
write_try(struct vm_object *obj, struct vm_io *io, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    if (obj->state == VM_OBJ_INIT)
        return obj->down_expired ? -EIO : 0;
    if (obj->state != VM_OBJ_READY)
        return -(obj->error ? obj->error : EIO);
    if (obj->down_expired)
        return -EIO; /* no pager past the deadline: nothing could store it */
    if (obj->pager_lost_ns != 0 && obj->dp == NULL)
        return 0; /* its pager died and there is no swap: dirty pages could not leave
                     the pool (other filesystems need it); wait for the next pager */
    if (io->len == 0)
        return 1;
    uint64_t end = io->off + io->len;
    uint64_t first = io->off / VM_PS, last = (end - 1) / VM_PS;
    int staged = io->nwired > 0; /* staged frames stand in for new ones */
    unsigned need = 0;
    int ready = 1;
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = vm_obj_page_lookup(obj, idx);
        int full = io->off <= idx * VM_PS && end >= (idx + 1) * VM_PS;
        if (p == NULL) {
            if (full && !obj->strict_write) {
                need += !staged;
            } else if (!fault_in(obj, idx, 1, VM_PROT_READ | VM_PROT_WRITE, io, b)) {
                ready = 0;
            }
            continue;
        }
        if ((p->state == VM_PAGE_LAUNDRY && (p->flags & VM_PG_OVERDUE)) ||
            (p->state == VM_PAGE_PRESENT && p->wire > 0 && !(p->lock_value & VM_PROT_WRITE))) {
            need += !staged; /* its pager stalls, or a reply reads it: write to a copy */
        } else if (p->state == VM_PAGE_ABSENT) {
            /* On its way; a hole of a suspect pager is filled now (fault_in). */
            if (!fault_in(obj, idx, 1, VM_PROT_READ | VM_PROT_WRITE, io, b))
                ready = 0;
        } else if (p->state == VM_PAGE_LAUNDRY) {
            ready = 0;
        } else if (p->lock_value & VM_PROT_WRITE) {
            ready = 0;
            if (idx >= io->unlock_next) {
                struct emm_msg *m = vm_kmsg(obj, MO_DATA_UNLOCK, idx * VM_PS, VM_PS);
                if (m != NULL) {
                    m->access = VM_PROT_WRITE;
                    vm_batch_msg(b, m);
                    atomic_fetch_add(&k->stats.data_unlocks, 1);
                }
                io->unlock_next = idx + 1;
            }
        }
    }
    if (!ready)
        return obj->down_expired ? -EIO : 0;
    struct vm_page *frames[EMM_MAX_SPAN_PAGES];
    if (need > 0 && vm_pool_alloc_all(&k->pool, frames, need) == 0) {
        starve(obj, need); /* a write takes all its frames at once */
        return 0;
    }
    unsigned used = 0;
    struct vm_page *touched[EMM_MAX_SPAN_PAGES];
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = vm_obj_page_lookup(obj, idx);
        struct vm_page *s = staged ? io->wired[idx - first] : NULL;
        uint64_t pstart = idx * VM_PS;
        uint64_t from = io->off > pstart ? io->off : pstart;
        uint64_t to = end < pstart + VM_PS ? end : pstart + VM_PS;
        if (p != NULL && (p->state == VM_PAGE_LAUNDRY || p->wire > 0)) {
            p = page_copy(obj, p, s != NULL ? s : frames[used++], from - pstart, to - pstart);
        } else if (p == NULL) {
            p = s != NULL ? s : frames[used++];
            vm_obj_page_insert(obj, p, idx, VM_PAGE_PRESENT);
            /* Whether the pager has an older copy is not known here (no
             * upcall under the lock): counted as new until laundered, so
             * st_blocks may count an overwritten page twice meanwhile. */
            vm_obj_page_flags(obj, p, VM_PG_NEW, 0);
        }
        if (s == NULL)
            memcpy((char *)p->frame + (from - pstart), (const char *)io->src + (from - io->off),
                   to - from);
        else if (p != s)
            memcpy((char *)p->frame + (from - pstart), (char *)s->frame + (from - pstart),
                   to - from);
        if (s != NULL && p == s)
            io->wired[idx - first] = NULL; /* the staged frame is the page now */
        vm_obj_page_flags(obj, p, VM_PG_DIRTY, 0);
        touched[idx - first] = p;
    }
    vm_pool_touch(&k->pool, touched, (unsigned)(last - first + 1));
    vm_io_unstage(obj, io); /* the staged frames that were copied from */
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
    STAILQ_INSERT_TAIL(&obj->ios, io, link);
}

/* Reruns waiting operations in order; called with the lock held. */
void
vm_obj_run_waiters(struct vm_object *obj, struct vm_batch *b)
{
    struct vm_io_list todo = STAILQ_HEAD_INITIALIZER(todo);
    STAILQ_CONCAT(&todo, &obj->ios); /* obj->ios is empty now */
    obj->starved = 0;
    atomic_store(&obj->need_frames, 0);
    struct vm_io *io;
    while ((io = STAILQ_FIRST(&todo)) != NULL) {
        STAILQ_REMOVE_HEAD(&todo, link);
        int rc = io_try(obj, io, b);
        if (rc == 0) {
            if (io->waiter != NULL)
                write_stage(obj, io); /* frames came back: let its caller go */
            /* Still waiting; no new arrivals meanwhile: we hold the lock. */
            STAILQ_INSERT_TAIL(&obj->ios, io, link);
        } else {
            io->err = rc < 0 ? -rc : 0;
            vm_batch_done(b, io);
        }
    }
    if (obj->starved)
        vm_kernel_kick(obj->kernel, obj);
}

void
vm_obj_retry(struct vm_object *obj)
{
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    vm_obj_run_waiters(obj, &b);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
}

static void
io_start(struct vm_object *obj, struct vm_io *io)
{
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    int rc;
    if (!STAILQ_EMPTY(&obj->ios) && io->op == VM_IO_WRITE)
        rc = 0; /* keep writes behind earlier waiters: per-page order */
    else
        rc = io_try(obj, io, &b);
    if (rc == 0) {
        if (io->waiter != NULL)
            write_stage(obj, io);
        io->since_ns = emm_mono_ns();
        io_queue(obj, io);
        vm_kernel_note_waiting(obj->kernel, obj);
        if (obj->starved)
            vm_kernel_kick(obj->kernel, obj);
    } else {
        io->err = rc < 0 ? -rc : 0;
        vm_batch_done(&b, io);
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
    if (len > EMM_MAX_REQUEST_BYTES)
        len = EMM_MAX_REQUEST_BYTES;
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

static void
write_start(struct vm_object *obj, uint64_t off, const void *buf, uint64_t len, vm_done_fn done,
            void *arg, int stable)
{
    if (len > EMM_MAX_REQUEST_BYTES) {
        done(arg, EINVAL);
        return;
    }
    struct vm_io *io = calloc(1, sizeof(*io));
    if (io == NULL) {
        done(arg, ENOMEM);
        return;
    }
    struct vm_write_waiter w = {0};
    io->op = VM_IO_WRITE;
    io->off = off;
    io->len = len;
    io->src = buf;
    io->stable = stable;
    io->done = done;
    io->arg = arg;
    if (!stable) {
        pthread_cond_init(&w.cond, NULL);
        io->waiter = &w;
    }
    struct vm_kernel *k = obj->kernel;
    atomic_fetch_add(&k->stats.write_ops, 1);
    vm_object_ref(obj);
    io_start(obj, io);
    if (!stable) {
        /* Back-pressure: no frames even to stage the data. The buffer stays
         * lent until the write is done or staged, so this thread waits; the
         * kernel worker reruns the write as frames come back. */
        pthread_mutex_lock(&obj->lock);
        if (!w.released) {
            atomic_fetch_add(&k->stats.writes_blocked, 1);
            atomic_fetch_add(&k->stats.blocked_writers_now, 1);
            while (!w.released)
                pthread_cond_wait(&w.cond, &obj->lock);
            atomic_fetch_sub(&k->stats.blocked_writers_now, 1);
        }
        pthread_mutex_unlock(&obj->lock);
        pthread_cond_destroy(&w.cond);
    }
    vm_object_unref(obj);
}

void
vm_object_write(struct vm_object *obj, uint64_t off, const void *buf, uint64_t len,
                vm_done_fn done, void *arg)
{
    write_start(obj, off, buf, len, done, arg, 0);
}

void
vm_object_write_stable(struct vm_object *obj, uint64_t off, const void *buf, uint64_t len,
                       vm_done_fn done, void *arg)
{
    write_start(obj, off, buf, len, done, arg, 1);
}
