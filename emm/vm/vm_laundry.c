/*
 * vm_laundry.c - laundry and double paging: a dirty page lends its frame to
 * its pager in a data_return; the pager's answer, a data_return_completed
 * message, decides the page's fate once the frame is back too (clean, retry,
 * to the default pager when the pager refuses or is overdue, or the object is
 * killed when nothing can take it: the unlucky object). The release of the
 * message only ends the loan of the frame; its status counts as the answer
 * only when none came (the message was never delivered: the local transport's
 * way to say so).
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

static void page_return_released(struct emm_msg *msg, int status);

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
    vm_obj_discard_all(obj);
    vm_obj_run_waiters(obj, b);
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
    /* Which pager answers is the kernel's to know, not the message's; the
     * default pager answers on its own reply port. */
    if (to_dp) {
        p->flags |= VM_PG_TO_DP;
        m->reply = emm_port_make_send(obj->dp_reply);
    } else {
        p->flags &= (uint16_t)~VM_PG_TO_DP;
    }
    p->flags |= VM_PG_WAIT_MSG;
    p->loans++;
    atomic_fetch_add(&obj->kernel->loans, 1);
    vm_object_ref(obj);
    if (to_dp) {
        obj->dp_returns++;
        vm_batch_dp_msg(b, m);
    } else {
        vm_batch_msg(b, m);
    }
}

/* Tells the default pager its copy of page index is obsolete. 0, or -ENOMEM. */
static int
dp_forget(struct vm_object *obj, uint64_t index, struct vm_batch *b)
{
    struct emm_msg *m = vm_kmsg(obj, MO_DISCARD, index * VM_PS, VM_PS);
    if (m == NULL)
        return -ENOMEM;
    vm_batch_dp_msg(b, m);
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
    uint64_t d = atomic_load_explicit(&obj->deadline_ns, memory_order_relaxed);
    return d > 1000000000ull ? d : 1000000000ull;
}

/* What becomes of a page whose data_return (to_dp: to the default pager) was
 * was answered with status st. Decides only; page_settle acts. */
enum return_fate {
    RET_ORPHAN,      /* a newer copy replaced it: only the frame is left */
    RET_DROP,        /* the object is dead */
    RET_CLEAN,       /* a temporary object's page: swap has it */
    RET_PAGER_TOOK,  /* the pager has it: forget any copy in swap */
    RET_IN_SWAP,     /* swap holds the authoritative copy until a replay */
    RET_DOUBLE_PAGE, /* the pager failed and the frame is wanted: to swap now */
    RET_KILL,        /* swap refused a page only swap could take */
    RET_UNLUCKY,     /* refused for good, no swap, frame wanted: the unlucky object */
    RET_RETRY,       /* stays dirty; pageout backs off */
};

static enum return_fate
return_fate(const struct vm_object *obj, const struct vm_page *p, int to_dp, int st)
{
    int evicting = (p->flags & VM_PG_EVICT) != 0;

    if (p->flags & VM_PG_ORPHAN)
        return RET_ORPHAN;
    if (obj->state == VM_OBJ_DEAD)
        return RET_DROP;
    if (obj->temporary)
        return st == 0 ? RET_CLEAN : RET_KILL;
    if (!to_dp && st == 0)
        return RET_PAGER_TOOK;
    if ((to_dp && st == 0) || (p->flags & VM_PG_DOUBLED))
        return RET_IN_SWAP;
    if (to_dp)
        return RET_KILL; /* swap is full or failing */
    if (obj->dp != NULL && evicting)
        return RET_DOUBLE_PAGE;
    if (refused_for_good(st) && evicting)
        return RET_UNLUCKY;
    return RET_RETRY;
}

/* Records the answer (0 or -errno) to p->msg, or to p->dmsg (the overdue copy
 * to swap). Lock held. */
static void
page_answer(struct vm_object *obj, struct vm_page *p, int dmsg, int status)
{
    if (dmsg) {
        p->flags &= (uint16_t)~VM_PG_WAIT_DMSG;
        if (status == 0) {
            p->flags |= VM_PG_DOUBLED;
            note_double_paged(obj);
        } else {
            emm_warn("object %llu: copying overdue page %llu to swap failed: %s",
                     (unsigned long long)obj->id, (unsigned long long)p->index,
                     strerror(-status));
        }
    } else {
        p->flags &= (uint16_t)~VM_PG_WAIT_MSG;
        p->ret_status = (int16_t)status;
        if (status < 0 && !(p->flags & VM_PG_TO_DP))
            atomic_fetch_add(&obj->pstats->msg_return_errors, 1); /* its pager refused it */
        if (!(p->flags & VM_PG_TO_DP))
            obj->pager_gen++; /* what it stores may have changed: hole hints are stale */
    }
}

/* Every loan of the frame is back and every answer is in (an orphan's fate
 * does not depend on the answers: it is only a frame now). */
static int
page_settled(const struct vm_page *p)
{
    return p->loans == 0 &&
           ((p->flags & VM_PG_ORPHAN) || !(p->flags & (VM_PG_WAIT_MSG | VM_PG_WAIT_DMSG)));
}

/*
 * The page's data_returns are over: p->msg (to the pager, or to the default
 * pager for double paging) and p->dmsg (the copy of an overdue page sent to
 * swap) are answered and their frames back. The page's fate follows from who
 * holds its data: its pager (clean; an older swap copy is forgotten), only
 * swap (clean, the authoritative copy is in swap), or nobody (double-page it
 * now, or kill the object if swap failed too). Lock held; b is flushed by the
 * caller after unlocking.
 */
static void
page_settle(struct vm_object *obj, struct vm_page *p, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    uint64_t now = emm_mono_ns();
    int to_dp = (p->flags & VM_PG_TO_DP) != 0;
    int st = p->ret_status;
    int doubled = (p->flags & VM_PG_DOUBLED) != 0;
    enum return_fate fate = return_fate(obj, p, to_dp, st);

    if (fate == RET_ORPHAN) {
        vm_obj_orphan_drop(obj, p);
        return;
    }
    p->flags &= (uint16_t)~(VM_PG_WAIT_MSG | VM_PG_WAIT_DMSG);
    if (!(p->flags & VM_PG_OVERDUE))
        atomic_fetch_sub(&k->laundry, 1);
    else
        atomic_fetch_sub(&obj->pstats->overdue_inflight, 1);
    p->state = VM_PAGE_PRESENT;
    obj->nlaundry--;
    p->flags &= ~(VM_PG_OVERDUE | VM_PG_DOUBLED);
    switch (fate) {
    case RET_ORPHAN: /* handled above */
    case RET_DROP:
        vm_obj_page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW | VM_PG_REDIRTY);
        p->flags |= VM_PG_EVICT;
        break;
    case RET_CLEAN:
        if (!(p->flags & VM_PG_REDIRTY))
            vm_obj_page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
        break;
    case RET_PAGER_TOOK:
        if ((p->flags & VM_PG_INSWAP) || doubled) {
            if (dp_forget(obj, p->index, b) < 0) {
                p->flags |= VM_PG_INSWAP | VM_PG_REDIRTY; /* try again later */
            } else if (p->flags & VM_PG_INSWAP) {
                atomic_fetch_add(&k->stats.replayed, 1);
                atomic_fetch_add(&obj->pstats->replayed, 1);
            }
        }
        if (!(p->flags & VM_PG_REDIRTY)) {
            vm_obj_page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
            p->flags &= ~VM_PG_INSWAP;
        }
        atomic_store(&obj->pstats->sick_until_ns, 0); /* it answers: replay what swap holds */
        obj->backoff_until_ns = 0;
        if (obj->dp != NULL && k->dpo->pages(k->dp_ctx, obj->dp_handle) > 0)
            vm_kernel_note_swapped(k, obj);
        break;
    case RET_IN_SWAP:
        /* Double paged: swap holds the authoritative copy until a replay. */
        if (to_dp)
            note_double_paged(obj);
        if (!(p->flags & VM_PG_REDIRTY))
            vm_obj_page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
        p->flags |= VM_PG_INSWAP;
        break;
    case RET_DOUBLE_PAGE:
        /* The pager failed: double paging. The page stays on loan. */
        atomic_fetch_add(&k->stats.return_errors, 1);
        atomic_store(&obj->pstats->last_failure_ns, now);
        atomic_store(&obj->pstats->sick_until_ns, now + sick_period(obj));
        atomic_fetch_add(&k->laundry, 1);
        vm_pool_dequeue(&k->pool, p); /* off the laundry list: no deadline for swap */
        page_send_return(obj, p, 1, b);
        p->state = VM_PAGE_LAUNDRY;
        obj->nlaundry++;
        return;
    case RET_UNLUCKY:
        /* The pageout daemon needs the frame, the pager refuses the page for
         * good and there is no default pager to take it: kept dirty, it would
         * hold its frame forever and writers would wait for frames forever
         * (in D state, unkillable). Mach's answer: the unlucky object dies,
         * with ENOSPC for its writers; the service goes on. */
        atomic_fetch_add(&k->stats.return_errors, 1);
        obj->return_failures++;
        atomic_store(&obj->pstats->last_failure_ns, now);
        /* fall through */
    case RET_KILL:
        obj_kill(obj, p->index, -st, b); /* p is dropped with the rest */
        return;
    case RET_RETRY:
        atomic_fetch_add(&k->stats.return_errors, 1);
        obj->return_failures++; /* fails the fsyncs that were waiting for it */
        atomic_store(&obj->pstats->last_failure_ns, now);
        p->flags &= ~VM_PG_EVICT;
        obj->backoff_until_ns = now + 200000000ull;
        break;
    }
    p->flags &= ~VM_PG_REDIRTY;
    if ((p->flags & VM_PG_EVICT) && !(p->flags & VM_PG_DIRTY) && p->wire == 0) {
        vm_obj_remove_page(obj, p);
        atomic_fetch_add(&k->stats.evictions, 1);
    } else {
        p->flags &= ~VM_PG_EVICT;
        vm_pool_enqueue(&k->pool, p);
    }
}

/* Pages settled: waiters may go on, frames may be free. Lock held. */
static void
settled_wake(struct vm_object *obj, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    vm_obj_run_waiters(obj, b);
    pthread_mutex_lock(&k->pool.lock);
    pthread_cond_broadcast(&k->pool.wake);
    pthread_mutex_unlock(&k->pool.lock);
}

/* Release of p->msg or p->dmsg: the frame's loan ends. A status other than 0
 * on a message not answered yet is its answer (it was never delivered, or the
 * local pager gave up without one). */
static void
page_return_released(struct emm_msg *msg, int status)
{
    struct vm_page *p = msg->release_ctx;
    struct vm_object *obj = p->object;
    struct vm_kernel *k = obj->kernel;
    struct vm_batch b = VM_BATCH_INIT(b);

    pthread_mutex_lock(&obj->lock);
    int dmsg = msg == &p->dmsg;
    if (dmsg || (p->flags & VM_PG_TO_DP)) /* p->msg went to swap */
        obj->dp_returns--;
    if (status != 0 && (p->flags & (dmsg ? VM_PG_WAIT_DMSG : VM_PG_WAIT_MSG)))
        page_answer(obj, p, dmsg, status);
    assert(p->loans > 0);
    p->loans--;
    int settled = page_settled(p);
    if (settled) {
        page_settle(obj, p, &b);
        settled_wake(obj, &b);
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    vm_object_unref(obj);
    atomic_fetch_sub(&k->loans, 1); /* the last touch of the kernel: see vm_kernel_destroy */
}

unsigned
vm_obj_return_completed(struct vm_object *obj, const struct emm_msg *msg, int from_dp,
                        struct vm_batch *b)
{
    uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
    int status = -msg->arg; /* a positive errno in the message */
    unsigned matched = 0, settled = 0;
    if (!from_dp && obj->seq_floor != 0 && msg->arg2 <= obj->seq_floor) {
        /* From a pager connection replaced since (held up behind the control
         * port): its data_returns were settled when it died. Never matched. */
        atomic_fetch_add(&obj->pstats->stale_answers, 1);
        emm_debug("object %llu: data_return_completed of an old pager (seqno %llu <= %llu) "
                  "dropped", (unsigned long long)obj->id, (unsigned long long)msg->arg2,
                  (unsigned long long)obj->seq_floor);
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        struct vm_page *p = vm_obj_page_lookup(obj, first + i);
        if (p == NULL || p->state != VM_PAGE_LAUNDRY)
            continue; /* an orphan's answer (it is only a frame now), or stale */
        int to_dp = (p->flags & VM_PG_TO_DP) != 0;
        if ((p->flags & VM_PG_WAIT_MSG) && to_dp == from_dp && p->msg.seqno == msg->arg2)
            page_answer(obj, p, 0, status);
        else if (from_dp && (p->flags & VM_PG_WAIT_DMSG) && p->dmsg.seqno == msg->arg2)
            page_answer(obj, p, 1, status);
        else
            continue;
        matched++;
        if (page_settled(p)) {
            page_settle(obj, p, b);
            settled++;
        }
    }
    if (settled > 0)
        settled_wake(obj, b);
    return matched;
}

void
vm_obj_returns_lost(struct vm_object *obj, struct vm_batch *b)
{
    unsigned settled = 0;
    for (uint64_t i = 0; i < obj->nbuckets && obj->state != VM_OBJ_DEAD; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL && obj->state != VM_OBJ_DEAD) {
            struct vm_page *next = p->hnext;
            if (p->state == VM_PAGE_LAUNDRY && !(p->flags & VM_PG_TO_DP) &&
                (p->flags & VM_PG_WAIT_MSG)) {
                /* Never acknowledged: to swap when there is one (double
                 * paging), else it stays dirty for the next pager. */
                if (obj->dp != NULL)
                    p->flags |= VM_PG_EVICT;
                page_answer(obj, p, 0, -EPIPE);
                if (page_settled(p)) {
                    page_settle(obj, p, b);
                    settled++;
                }
            }
            p = next;
        }
    }
    if (settled > 0)
        settled_wake(obj, b);
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
    if (p->state != VM_PAGE_LAUNDRY || (p->flags & (VM_PG_OVERDUE | VM_PG_TO_DP)))
        return;
    /* An orphan (punched or truncated away while in laundry) has no data worth
     * a copy in swap, but the pager sits on its return all the same: it makes
     * the pager suspect like any other, so faults stop waiting for it. */
    int was_suspect = vm_pager_suspect(obj->pstats, now); /* before this one counts */
    p->flags |= VM_PG_OVERDUE;
    atomic_fetch_sub(&k->laundry, 1); /* no longer throttles the daemon */
    atomic_fetch_add(&k->stats.overdue, 1);
    atomic_fetch_add(&obj->pstats->overdue, 1);
    atomic_fetch_add(&obj->pstats->overdue_inflight, 1);
    if (!was_suspect)
        emm_warn("object %llu: pager has not taken page %llu back within its deadline "
                 "(%llu ms): its pageouts go to swap for now",
                 (unsigned long long)obj->id, (unsigned long long)p->index,
                 (unsigned long long)(obj->deadline_ns / 1000000));
    atomic_store(&obj->pstats->sick_until_ns, now + sick_period(obj));
    /* The pager's threads serve its other objects too: their data_requests
     * may wait behind this return. */
    vm_kernel_recheck_waiting(k);
    if (obj->dp != NULL && !obj->temporary && !(p->flags & VM_PG_ORPHAN)) {
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
        d->reply = emm_port_make_send(obj->dp_reply); /* the answer comes there */
        p->flags |= VM_PG_WAIT_DMSG;
        p->loans++;
        atomic_fetch_add(&obj->kernel->loans, 1);
        vm_object_ref(obj);
        obj->dp_returns++;
        vm_batch_dp_msg(b, d);
    }
    vm_obj_run_waiters(obj, b); /* writers waiting on it copy it now */
}
