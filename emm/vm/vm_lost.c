/*
 * vm_lost.c - isolation, as in Mach: a pager that dies or goes silent costs
 * only its own objects, and they come back on its next incarnation.
 *
 * - Death. Each object asks for a dead-name notification of its pager's
 *   memory object port (emm_port_request_dead_name; a peer's port dies with
 *   its connection: the process died, exited or was cut off). When it comes,
 *   the data_returns the pager never acknowledged count as refused (double
 *   paged to swap; without swap they stay dirty), dirty resident pages go to
 *   swap too, requests sent to it are forgotten, fsyncs waiting for its
 *   synchronize_completed wait for the next pager, and faults that need it
 *   wait (vm_fault.c) -- all up to the object's deadline, after which they
 *   fail with EIO (SIGBUS in a mapper) until a pager is back.
 * - Rebirth. The front end gives a new memory object port (vm_object_reinit):
 *   memory_object_init again on the same control and name ports, the discards
 *   made meanwhile follow, faults wait for ready, then the fsyncs that waited
 *   run and swap is replayed to the new pager (vm_sync.c's replay). Each new
 *   port numbers its messages on past the old ones' seqnos (obj->seq_floor),
 *   so a late answer of an old generation is recognised and dropped.
 * - Silence. A pager that is alive but answers nothing (SIGSTOP, a hang):
 *   operations waiting for its data_requests, and fsyncs waiting for its
 *   synchronize_completed, fail with EIO once it has been silent (no message
 *   from it, for any object), and they have waited, for twice the deadline
 *   (at least the deadline + 0.5 s: its overdue data_returns are noticed
 *   first, and the holes of a suspect pager filled, vm_fault.c); its late
 *   answers are still taken, but a late synchronize_completed of a failed
 *   fsync is dropped (obj->syncs_abandoned), never credited to a later one.
 *
 * Locking: obj->lock guards the object's lost state (vm_internal.h); the
 * kernel's lost list is under kick_lock; no lock is held while a message is
 * sent or a dead-name request is made (it may fire at once, inline).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

uint64_t
vm_obj_lost_deadline(struct vm_object *obj)
{
    uint64_t d = atomic_load_explicit(&obj->deadline_ns, memory_order_relaxed);
    return d != 0 ? d : 5000000000ull;
}

int
vm_object_pager_lost(struct vm_object *obj)
{
    pthread_mutex_lock(&obj->lock);
    int lost = obj->pager_lost_ns != 0;
    pthread_mutex_unlock(&obj->lock);
    return lost;
}

void
vm_obj_watch_pager(struct vm_object *obj)
{
    pthread_mutex_lock(&obj->lock);
    struct emm_port *pager = obj->temporary || obj->notify == NULL ? NULL : obj->pager;
    uint64_t epoch = obj->pager_epoch;
    if (pager != NULL)
        emm_port_ref(pager);
    pthread_mutex_unlock(&obj->lock);
    if (pager == NULL)
        return;
    int rc = emm_port_request_dead_name(pager, obj->notify, epoch);
    if (rc < 0)
        emm_warn("object %llu: no dead-name notification for its pager: %s",
                 (unsigned long long)obj->id, strerror(-rc));
    emm_port_unref(pager);
}

/* Forgets the data_requests sent to a pager that will never answer them:
 * their pages go (a fault that wants them asks again). Lock held. */
static void
forget_requests(struct vm_object *obj)
{
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            if (p->state == VM_PAGE_ABSENT && !(p->flags & VM_PG_FROMSWAP))
                vm_obj_remove_page(obj, p);
            else if (p->state != VM_PAGE_ABSENT)
                p->flags &= ~VM_PG_ABANDONED; /* no late answer will come */
            p = next;
        }
    }
}

/* The pager's port died. Lock held. */
static void
pager_died(struct vm_object *obj, struct vm_batch *b)
{
    struct vm_kernel *k = obj->kernel;
    uint64_t now = emm_mono_ns();
    obj->pager_lost_ns = now;
    if (obj->down_since_ns == 0) {
        obj->down_since_ns = now;
        obj->down_expired = 0;
    }
    atomic_fetch_add(&obj->pstats->lost_now, 1); /* suspect: pageouts go to swap */
    atomic_fetch_add(&obj->pstats->lost, 1);
    emm_info("object %llu: its pager%s%s is gone: operations that need it wait up to %llu ms "
             "for the next one", (unsigned long long)obj->id, obj->pager_name ? " of fs " : "",
             obj->pager_name ? obj->pager_name : "",
             (unsigned long long)(vm_obj_lost_deadline(obj) / 1000000));
    /* Returns it never acknowledged: refused (to swap, or kept dirty). */
    vm_obj_returns_lost(obj, b);
    if (obj->state == VM_OBJ_DEAD)
        return;
    if (obj->dp != NULL) {
        /* Dirty resident pages go to swap as for a stalled pager. */
        for (uint64_t i = 0; i < obj->nbuckets; i++)
            for (struct vm_page *p = obj->buckets[i]; p != NULL; p = p->hnext)
                if (p->state == VM_PAGE_PRESENT && (p->flags & VM_PG_DIRTY) && p->wire == 0 &&
                    !(p->flags & VM_PG_ABANDONED))
                    vm_obj_launder(obj, p, 1, b);
    } else {
        obj->backoff_until_ns = UINT64_MAX; /* no pageouts to a dead pager */
    }
    forget_requests(obj);
    /* synchronize sent to it: the fsyncs wait for the next pager. */
    STAILQ_CONCAT(&obj->lost_syncs, &obj->syncs);
    obj->syncs_abandoned = 0; /* it will answer none of them */
    vm_obj_seeks_expire(obj, now, 1, b); /* its query_replies will not come */
    obj->pager_gen++;
    vm_kernel_note_lost(k, obj);
    vm_obj_run_waiters(obj, b);
}

void
vm_obj_notify_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct vm_object *obj = emm_port_context(port);
    struct vm_batch b = VM_BATCH_INIT(b);
    if (msg->id != EMM_NOTIFY_DEAD_NAME || !vm_object_tryref(obj)) {
        emm_msg_release(msg, msg->id != EMM_NOTIFY_DEAD_NAME ? -EBADMSG : -EPIPE);
        return;
    }
    pthread_mutex_lock(&obj->lock);
    /* A notification for a pager the object has replaced since is stale. */
    if (msg->offset == obj->pager_epoch && obj->pager_lost_ns == 0 &&
        (obj->state == VM_OBJ_READY || obj->state == VM_OBJ_INIT))
        pager_died(obj, &b);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    emm_msg_release(msg, 0);
    vm_batch_flush(obj, &b);
    vm_object_unref(obj);
}

int
vm_object_reinit(struct vm_object *obj, struct emm_port *pager)
{
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    if (obj->pager_lost_ns == 0 ||
        (obj->state != VM_OBJ_READY && obj->state != VM_OBJ_INIT)) {
        pthread_mutex_unlock(&obj->lock);
        emm_port_unref(pager);
        return 0;
    }
    struct emm_msg *m = emm_msg_new(MO_INIT, 0, 0);
    if (m == NULL) {
        pthread_mutex_unlock(&obj->lock);
        emm_port_unref(pager);
        return -ENOMEM;
    }
    struct emm_port *old = obj->pager;
    /* A new generation: the new port numbers on past every seqno the old ones
     * stamped, so a late data_return_completed of the old pager (it may sit
     * behind a held control port) names a seqno no new data_return has, and
     * is dropped as stale (vm_laundry.c). */
    uint64_t last = emm_port_seqno_raise(old, 0);
    if (last > obj->seq_floor)
        obj->seq_floor = last;
    emm_port_seqno_raise(pager, obj->seq_floor);
    obj->pager = pager;
    obj->pager_epoch++;
    obj->pager_lost_ns = 0;
    atomic_fetch_sub(&obj->pstats->lost_now, 1);
    atomic_fetch_add(&obj->pstats->reinits, 1);
    obj->state = VM_OBJ_INIT; /* faults wait for ready (or fail past the deadline) */
    obj->backoff_until_ns = 0;
    obj->pager_gen++;
    forget_requests(obj); /* any sent to the dead port meanwhile */
    struct vm_io *io;
    STAILQ_FOREACH(io, &obj->ios, link)
        io->unlock_next = 0; /* data_unlocks to the dead port: ask the new one */
    m->control = emm_port_make_send(obj->control);
    m->name = emm_port_make_send(obj->name);
    m->arg = (int32_t)EMM_PAGE_SIZE;
    vm_batch_msg(&b, m);
    struct emm_msg *d;
    while ((d = STAILQ_FIRST(&obj->lost_msgs)) != NULL) { /* discards made meanwhile, in order */
        STAILQ_REMOVE_HEAD(&obj->lost_msgs, link);
        vm_batch_msg(&b, d);
    }
    if (vm_obj_dp_holds(obj))
        vm_kernel_note_swapped(obj->kernel, obj);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    vm_obj_watch_pager(obj);
    emm_port_cancel_dead_name(old, obj->notify);
    emm_port_unref(old);
    return 1;
}

void
vm_obj_pager_back(struct vm_object *obj, struct vm_batch *b)
{
    if (obj->down_since_ns == 0)
        return;
    obj->down_since_ns = 0;
    obj->down_expired = 0;
    /* The fsyncs that waited: on the new pager now, after the replay of
     * what swap holds (vm_sync.c). */
    struct vm_sync_list todo = STAILQ_HEAD_INITIALIZER(todo);
    STAILQ_CONCAT(&todo, &obj->lost_syncs);
    struct vm_sync *s;
    int replay = vm_obj_dp_holds(obj);
    while ((s = STAILQ_FIRST(&todo)) != NULL) {
        STAILQ_REMOVE_HEAD(&todo, link);
        if (replay) {
            s->queued_ns = emm_mono_ns();
            STAILQ_INSERT_TAIL(&obj->replay_syncs, s, link);
        } else if (vm_obj_sync_locked(obj, s, b) < 0) {
            b->sync_err = EIO;
            STAILQ_INSERT_TAIL(&b->syncs_done, s, link);
        }
    }
    if (obj->dp != NULL && (replay || !STAILQ_EMPTY(&obj->replay_syncs)))
        vm_kernel_note_swapped(obj->kernel, obj);
}

/* Fails what waits for a pager gone longer than the deadline. Lock held. */
static void
down_expire(struct vm_object *obj, struct vm_batch *b)
{
    obj->down_expired = 1;
    uint64_t n = 0;
    struct vm_io *io;
    while ((io = STAILQ_FIRST(&obj->ios)) != NULL) {
        STAILQ_REMOVE_HEAD(&obj->ios, link);
        io->err = EIO;
        vm_batch_done(b, io);
        n++;
    }
    struct vm_sync_list *lists[] = {&obj->lost_syncs, &obj->replay_syncs, &obj->syncs};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct vm_sync *s;
        while ((s = STAILQ_FIRST(lists[i])) != NULL) {
            STAILQ_REMOVE_HEAD(lists[i], link);
            STAILQ_INSERT_TAIL(&b->syncs_done, s, link);
            n++;
        }
    }
    b->sync_err = EIO;
    atomic_fetch_add(&obj->pstats->lost_eio, n);
    emm_warn("object %llu: no pager%s%s for %llu ms: %llu waiting operations fail with EIO, "
             "and so do later ones until a pager is back", (unsigned long long)obj->id,
             obj->pager_name ? " of fs " : "", obj->pager_name ? obj->pager_name : "",
             (unsigned long long)(vm_obj_lost_deadline(obj) / 1000000), (unsigned long long)n);
}

int
vm_obj_lost_expire(struct vm_object *obj, uint64_t now)
{
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    int waits = obj->down_since_ns != 0 && !obj->down_expired &&
                (obj->state == VM_OBJ_READY || obj->state == VM_OBJ_INIT);
    if (waits && obj->down_since_ns + vm_obj_lost_deadline(obj) <= now) { /* now may predate the stamp: no wrap */
        down_expire(obj, &b);
        waits = 0;
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    return waits;
}

/* io waits for a data_request of the object's own pager (a page absent, not
 * from swap) for a page the pager may store: the holes of a suspect pager
 * are the kernel's to fill (vm_fault.c, from its existence map); a page the
 * map does not know waits for the pager. Lock held. */
static int
waits_for_pager(struct vm_object *obj, const struct vm_io *io)
{
    if (io->len == 0)
        return 0;
    uint64_t first = io->off / VM_PS, last = (io->off + io->len - 1) / VM_PS;
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = vm_obj_page_lookup(obj, idx);
        if (p != NULL && p->state == VM_PAGE_ABSENT && !(p->flags & VM_PG_FROMSWAP) &&
            !(p->flags & VM_PG_REPLAY) && vm_obj_pager_lacks(obj, idx) == 0)
            return 1;
    }
    return 0;
}

void
vm_obj_requests_expire(struct vm_object *obj, uint64_t now)
{
    /* The deadline, and as long again (at least 0.5 s): a data_return sent
     * before the request goes overdue first, and the holes of a pager that is
     * suspect then are filled rather than failed (vm_fault.c). */
    uint64_t d = vm_obj_lost_deadline(obj);
    d += d > 500000000ull ? d : 500000000ull;
    uint64_t heard = atomic_load(&obj->pstats->last_heard_ns);
    /* now was read before the lock: a stamp may be later than it (hence
     * additions, not differences that would wrap). */
    if (obj->temporary || heard + d > now)
        return; /* it answers (this object or another): it is slow, not gone */
    struct vm_batch b = VM_BATCH_INIT(b);
    struct vm_io_list keep = STAILQ_HEAD_INITIALIZER(keep);
    uint64_t n = 0;
    pthread_mutex_lock(&obj->lock);
    struct vm_io *io;
    while ((io = STAILQ_FIRST(&obj->ios)) != NULL) {
        STAILQ_REMOVE_HEAD(&obj->ios, link);
        if (io->since_ns != 0 && io->since_ns + d <= now && obj->state == VM_OBJ_READY &&
            waits_for_pager(obj, io)) {
            io->err = EIO;
            vm_batch_done(&b, io);
            n++;
        } else {
            STAILQ_INSERT_TAIL(&keep, io, link);
        }
    }
    STAILQ_CONCAT(&obj->ios, &keep);
    /* fsyncs whose synchronize it has not answered: EIO too (the fault rule).
     * Sent in order, so the failed ones are a prefix of obj->syncs; their
     * late answers are owed and dropped (syncs_abandoned), never taken for a
     * later fsync's. Nothing is reported stored: the pages stay dirty in the
     * pool, or wherever their overdue data_returns put them. */
    uint64_t nsync = 0;
    struct vm_sync *s;
    while (obj->state == VM_OBJ_READY && (s = STAILQ_FIRST(&obj->syncs)) != NULL &&
           s->sent_ns + d <= now) {
        STAILQ_REMOVE_HEAD(&obj->syncs, link);
        STAILQ_INSERT_TAIL(&b.syncs_done, s, link);
        obj->syncs_abandoned++;
        nsync++;
    }
    if (nsync > 0) {
        b.sync_err = EIO;
        atomic_fetch_add(&obj->pstats->lost_eio, nsync);
        atomic_fetch_add(&obj->kernel->stats.sync_errors, nsync);
        emm_warn("object %llu: its pager%s%s has answered nothing for %llu ms: %llu fsyncs "
                 "waiting for it fail with EIO", (unsigned long long)obj->id,
                 obj->pager_name ? " of fs " : "", obj->pager_name ? obj->pager_name : "",
                 (unsigned long long)((now - heard) / 1000000), (unsigned long long)nsync);
    }
    if (n > 0) {
        atomic_fetch_add(&obj->pstats->lost_eio, n);
        emm_warn("object %llu: its pager%s%s has answered nothing for %llu ms: %llu faults "
                 "waiting for it fail with EIO", (unsigned long long)obj->id,
                 obj->pager_name ? " of fs " : "", obj->pager_name ? obj->pager_name : "",
                 (unsigned long long)((now - heard) / 1000000), (unsigned long long)n);
    }
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
}
