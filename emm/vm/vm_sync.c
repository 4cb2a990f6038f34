/*
 * vm_sync.c - synchronize (fsync), size changes, punch and truncate,
 * terminate, and the replay of pages held in swap back to their pager.
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
sync_queue(struct vm_object *obj, struct vm_sync *s)
{
    STAILQ_INSERT_TAIL(&obj->syncs, s, link);
}

static int
page_index_cmp(const void *a, const void *b)
{
    uint64_t x = (*(struct vm_page *const *)a)->index, y = (*(struct vm_page *const *)b)->index;
    return x < y ? -1 : x > y;
}

/* Sends every dirty page back and a synchronize; lock held. */
int
vm_obj_sync_locked(struct vm_object *obj, struct vm_sync *s, struct vm_batch *b)
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
    struct emm_msg *m = vm_kmsg(obj, MO_SYNCHRONIZE, 0, obj->size);
    if (m == NULL)
        return -ENOMEM;
    vm_batch_msg(b, m);
    s->failures_at_start = obj->return_failures;
    s->sent_ns = emm_mono_ns();
    sync_queue(obj, s);
    if (!obj->temporary)
        vm_kernel_note_waiting(obj->kernel, obj); /* a silent pager's deadline (vm_lost.c) */
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
    struct vm_batch b = VM_BATCH_INIT(b);
    int rc, waits_pager = 0;
    pthread_mutex_lock(&obj->lock);
    if (obj->down_since_ns != 0 &&
        (obj->state == VM_OBJ_READY || obj->state == VM_OBJ_INIT)) {
        /* Its pager died (vm_lost.c): the fsync waits for the next one, up to
         * the deadline; past it, EIO. Never a success for data not stored. */
        rc = obj->down_expired ? -EIO : 0;
        waits_pager = 1;
        if (rc == 0)
            STAILQ_INSERT_TAIL(&obj->lost_syncs, s, link);
        else
            atomic_fetch_add(&obj->pstats->lost_eio, 1);
    } else if (vm_obj_dp_holds(obj) && obj->state == VM_OBJ_READY) {
        /* Swap holds pages its pager lacks: they must reach it first. The
         * fsync waits for the replay (through a stall too, like any write to a
         * slow store) and fails if the pager refuses a page meanwhile. */
        s->queued_ns = emm_mono_ns();
        STAILQ_INSERT_TAIL(&obj->replay_syncs, s, link);
        rc = 0;
    } else {
        rc = vm_obj_sync_locked(obj, s, &b);
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    if (rc < 0) {
        free(s);
        done(arg, -rc);
    } else if (obj->dp != NULL && !waits_pager) {
        vm_kernel_note_swapped(obj->kernel, obj); /* the worker replays, then syncs */
    }
}

/* vm_object_flush: after the Linux page cache was written back and dropped
 * (the invalidate upcall, no lock held), dirty pages go back to their pager
 * to leave memory, clean ones leave now, then a synchronize ends it. */
struct flush_ctx {
    struct vm_object *obj;
    vm_done_fn done;
    void *arg;
};

static void
flush_apply(void *arg)
{
    struct flush_ctx *fc = arg;
    struct vm_object *obj = fc->obj;
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    if (obj->state == VM_OBJ_READY) {
        for (uint64_t i = 0; i < obj->nbuckets; i++) {
            struct vm_page *p = obj->buckets[i];
            while (p != NULL) {
                struct vm_page *next = p->hnext;
                if (p->state == VM_PAGE_LAUNDRY)
                    p->flags |= VM_PG_EVICT; /* leaves when its pager has it */
                else if (p->state == VM_PAGE_PRESENT && (p->flags & VM_PG_DIRTY))
                    vm_obj_launder(obj, p, 1, &b);
                else if (p->state == VM_PAGE_PRESENT)
                    vm_obj_page_discard(obj, p);
                p = next;
            }
        }
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    vm_object_sync(obj, fc->done, fc->arg); /* after the returns, in order */
    vm_object_unref(obj);
    free(fc);
}

void
vm_object_flush(struct vm_object *obj, vm_done_fn done, void *arg)
{
    struct flush_ctx *fc = calloc(1, sizeof(*fc));
    if (fc == NULL) {
        done(arg, ENOMEM);
        return;
    }
    fc->obj = obj;
    fc->done = done;
    fc->arg = arg;
    vm_object_ref(obj);
    struct vm_kernel *k = obj->kernel;
    if (k->up.invalidate != NULL)
        k->up.invalidate(obj->owner, 0, 0, flush_apply, fc);
    else
        flush_apply(fc);
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
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    if (pend > pfirst) {
        for (uint64_t i = 0; i < obj->nbuckets; i++) {
            struct vm_page *p = obj->buckets[i];
            while (p != NULL) {
                struct vm_page *next = p->hnext;
                if (p->index >= pfirst && p->index < pend)
                    vm_obj_page_discard(obj, p);
                p = next;
            }
        }
        uint64_t dlen = pend == UINT64_MAX ? UINT64_MAX : (pend - pfirst) * VM_PS;
        struct emm_msg *m = vm_kmsg(obj, MO_DISCARD, pfirst * VM_PS, dlen);
        if (m != NULL)
            vm_batch_msg(&b, m);
        if (vm_obj_dp_may_hold(obj) &&
            (m = vm_kmsg(obj, MO_DISCARD, pfirst * VM_PS, dlen)) != NULL)
            vm_batch_dp_msg(&b, m);
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    /* Partial edge pages: zero their part through the write path. */
    uint64_t size = clip;
    uint64_t head_end = pfirst * VM_PS < end ? pfirst * VM_PS : end;
    if (off < head_end && off < size) {
        atomic_fetch_add(&pc->pending, 1);
        vm_object_write_stable(obj, off, zeros, head_end - off, punch_part_done, pc);
    }
    if (end != UINT64_MAX && pend >= pfirst && end % VM_PS && end / VM_PS * VM_PS >= off &&
        end / VM_PS * VM_PS < size) {
        atomic_fetch_add(&pc->pending, 1);
        uint64_t tail = end / VM_PS * VM_PS;
        vm_object_write_stable(obj, tail, zeros, end - tail, punch_part_done, pc);
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
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    if (obj->pager_lost_ns != 0 && obj->state != VM_OBJ_TERMINATED)
        atomic_fetch_sub(&obj->pstats->lost_now, 1); /* it waits for no pager now */
    obj->state = VM_OBJ_TERMINATED;
    obj->error = EIO;
    vm_obj_discard_all(obj);
    if (discard) {
        struct emm_msg *m = vm_kmsg(obj, MO_DISCARD, 0, UINT64_MAX);
        if (m != NULL)
            vm_batch_msg(&b, m);
    }
    struct emm_msg *t = emm_msg_new(MO_TERMINATE, 0, 0);
    if (t != NULL) {
        t->control = emm_port_make_send(obj->control);
        t->name = emm_port_make_send(obj->name);
        vm_batch_msg(&b, t);
    }
    if (obj->dp != NULL && !obj->temporary) {
        /* Unlinked: swap's copies go too. Otherwise they stay for a replay by
         * the next mapping of this object (after a restart, say). */
        struct emm_msg *m = discard ? vm_kmsg(obj, MO_DISCARD, 0, UINT64_MAX) : NULL;
        if (m != NULL)
            vm_batch_dp_msg(&b, m);
        m = emm_msg_new(MO_TERMINATE, 0, 0);
        if (m != NULL)
            vm_batch_dp_msg(&b, m);
    }
    vm_obj_run_waiters(obj, &b); /* fail anything still waiting */
    vm_obj_seeks_expire(obj, 0, 1, &b);
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
    int err = obj->error; /* read under the lock */
    pthread_mutex_unlock(&obj->lock);
    if (live)
        vm_object_sync(obj, terminate_after_sync, tc);
    else
        terminate_after_sync(tc, err);
}

static void
syncs_fail(struct vm_sync_list *list, int err)
{
    struct vm_sync *s;
    while ((s = STAILQ_FIRST(list)) != NULL) {
        STAILQ_REMOVE_HEAD(list, link);
        s->done(s->arg, err);
        free(s);
    }
}

int
vm_obj_replay(struct vm_object *obj, unsigned max_pages)
{
    struct vm_kernel *k = obj->kernel;
    struct vm_batch b = VM_BATCH_INIT(b);
    int more = 0;
    struct vm_sync_list failed = STAILQ_HEAD_INITIALIZER(failed);
    pthread_mutex_lock(&obj->lock);
    if (obj->state == VM_OBJ_INIT && obj->down_since_ns != 0 && !obj->down_expired) {
        pthread_mutex_unlock(&obj->lock); /* its new pager is not ready yet */
        return 1;
    }
    if (obj->state != VM_OBJ_READY || obj->dp == NULL || obj->temporary) {
        STAILQ_CONCAT(&failed, &obj->replay_syncs);
        int err = obj->error ? obj->error : EIO; /* read under the lock */
        pthread_mutex_unlock(&obj->lock);
        syncs_fail(&failed, err);
        return 0;
    }
    more = vm_obj_dp_holds(obj) || obj->replay_inflight > 0;
    int suspect = vm_pager_suspect(obj->pstats, emm_mono_ns());
    uint64_t failed_at = atomic_load(&obj->pstats->last_failure_ns);
    /* Replay done: the fsyncs that waited for it go on. The pager refused a
     * page since one began waiting: that one fails. */
    struct vm_sync_list waiting = STAILQ_HEAD_INITIALIZER(waiting);
    struct vm_sync *s;
    STAILQ_CONCAT(&waiting, &obj->replay_syncs);
    while ((s = STAILQ_FIRST(&waiting)) != NULL) {
        STAILQ_REMOVE_HEAD(&waiting, link);
        int refused = failed_at > s->queued_ns;
        if (!refused && more)
            STAILQ_INSERT_TAIL(&obj->replay_syncs, s, link);
        else if (refused || vm_obj_sync_locked(obj, s, &b) < 0)
            STAILQ_INSERT_TAIL(&failed, s, link);
    }
    if (!more || obj->replay_inflight > 0 || suspect) {
        vm_batch_post(obj, &b);
        pthread_mutex_unlock(&obj->lock);
        vm_batch_flush(obj, &b);
        syncs_fail(&failed, EIO);
        return more;
    }
    uint64_t idx = 0;
    unsigned sent = 0;
    while (sent < max_pages &&
           (idx = k->dpo->next_page(k->dp_ctx, obj->dp_handle, idx)) != UINT64_MAX) {
        struct vm_page *p = vm_obj_page_lookup(obj, idx);
        if (p == NULL) {
            /* Page it in from swap; the supply sends it on to the pager. */
            uint64_t run = idx + 1;
            while (run - idx < max_pages - sent && vm_obj_page_lookup(obj, run) == NULL &&
                   k->dpo->holds(k->dp_ctx, obj->dp_handle, run))
                run++;
            struct vm_page *frames[EMM_MAX_REQUEST_PAGES];
            unsigned want = (unsigned)(run - idx > EMM_MAX_REQUEST_PAGES ? EMM_MAX_REQUEST_PAGES
                                                                         : run - idx);
            unsigned got = vm_pool_alloc(&k->pool, frames, want);
            struct emm_msg *m = got ? vm_kmsg(obj, MO_DATA_REQUEST, idx * VM_PS, got * VM_PS) : NULL;
            if (m == NULL) {
                for (unsigned i = 0; i < got; i++)
                    vm_pool_free(&k->pool, frames[i]);
                break;
            }
            m->access = VM_PROT_READ;
            for (unsigned i = 0; i < got; i++) {
                vm_obj_page_insert(obj, frames[i], idx + i, VM_PAGE_ABSENT);
                frames[i]->flags |= VM_PG_FROMSWAP | VM_PG_REPLAY;
            }
            obj->replay_inflight += got;
            vm_batch_dp_msg(&b, m);
            sent += got;
            idx += got;
        } else {
            /* Resident: its data is newer than swap's or equal; return it. */
            if (p->state == VM_PAGE_PRESENT && p->wire == 0) {
                vm_obj_page_flags(obj, p, VM_PG_DIRTY, 0);
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
    syncs_fail(&failed, EIO); /* refused while the replay goes on: fail them now */
    return 1;
}
