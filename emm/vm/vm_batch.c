/*
 * vm_batch.c - batches: the messages and completions an operation decides
 * under the object lock, posted to the ports in lock order and run after
 * unlocking (the rule that no lock is held while a message is sent or a
 * completion runs), and the unwiring of an operation's pages.
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

/* To the object's pager / to its default-pager port. */
void
vm_batch_msg(struct vm_batch *b, struct emm_msg *m)
{
    STAILQ_INSERT_TAIL(&b->msgs, m, link);
}

void
vm_batch_dp_msg(struct vm_batch *b, struct emm_msg *m)
{
    STAILQ_INSERT_TAIL(&b->dp_msgs, m, link);
}

struct emm_msg *
vm_kmsg(struct vm_object *obj, uint32_t id, uint64_t off, uint64_t len)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    if (m != NULL)
        m->control = emm_port_make_send(obj->control);
    return m;
}

void
vm_batch_done(struct vm_batch *b, struct vm_io *io)
{
    if (io->waiter != NULL) { /* the data is placed, or the write failed */
        io->waiter->released = 1;
        pthread_cond_signal(&io->waiter->cond);
        io->waiter = NULL;
        io->src = NULL;
    }
    STAILQ_INSERT_TAIL(&b->done, io, link);
}

/* Chains runs of data_returns for contiguous pages (at most 256, 1 MiB), so a
 * pager that takes clusters stores them in one backend write: the pages after
 * a run's head leave the list and hang off it by `chain`. */
static void
cluster_returns(struct emm_msg_list *list)
{
    struct emm_msg_list out = STAILQ_HEAD_INITIALIZER(out);
    struct emm_msg *head, *n;
    while ((head = STAILQ_FIRST(list)) != NULL) {
        STAILQ_REMOVE_HEAD(list, link);
        struct emm_msg *last = head;
        unsigned count = 1;
        while (head->id == MO_DATA_RETURN && (n = STAILQ_FIRST(list)) != NULL &&
               n->id == MO_DATA_RETURN && count < EMM_MAX_REQUEST_PAGES && n->offset == last->offset + VM_PS &&
               n->flags == head->flags) {
            STAILQ_REMOVE_HEAD(list, link); /* not sent on its own */
            last->chain = n;
            last = n;
            count++;
        }
        STAILQ_INSERT_TAIL(&out, head, link);
    }
    STAILQ_CONCAT(list, &out);
}

/* Counts a message posted to the object's pager (its filesystem's counters).
 * Lock held. */
void
vm_pager_count_sent(struct vm_object *obj, uint32_t id, uint64_t offset, uint64_t len)
{
    struct vm_pager_stats *ps = obj->pstats;
    atomic_uint_fast64_t *c = NULL;
    switch (id) {
    case MO_INIT: c = &ps->msg_inits; break;
    case MO_DATA_REQUEST: c = &ps->msg_requests; break;
    case MO_DATA_UNLOCK: c = &ps->msg_unlocks; break;
    case MO_DATA_RETURN: c = &ps->msg_returns; break;
    case MO_SYNCHRONIZE: c = &ps->msg_syncs; break;
    case MO_DISCARD: c = &ps->msg_discards; break;
    case MO_TERMINATE: c = &ps->msg_terminates; break;
    case MO_DATA_QUERY: c = &ps->msg_queries; break;
    default: break;
    }
    if (c != NULL)
        atomic_fetch_add(c, 1);
    if (id == MO_DATA_RETURN || id == MO_DISCARD) {
        obj->pager_gen++; /* what it stores may change: its count is stale */
        /* The existence map: a return's pages may be stored (taken or not: a
         * superset never misses one), a discard's are not. */
        uint64_t first = offset / VM_PS;
        uint64_t end = len == UINT64_MAX || len / VM_PS > UINT64_MAX - first ? UINT64_MAX
                                                                             : first + len / VM_PS;
        if (id == MO_DATA_RETURN)
            vm_pmap_add(&obj->pm, first, end);
        else
            vm_pmap_remove(&obj->pm, first, end);
    }
    if (id == MO_DATA_REQUEST) { /* the object lock is held: stamp its first page */
        struct vm_page *p = vm_obj_page_lookup(obj, offset / VM_PS);
        if (p != NULL && p->state == VM_PAGE_ABSENT)
            p->request_ns = emm_mono_ns();
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
    struct emm_msg_list todo = STAILQ_HEAD_INITIALIZER(todo);
    STAILQ_CONCAT(&todo, &b->msgs);
    if (atomic_load(&obj->return_clusters))
        cluster_returns(&todo);
    struct emm_msg *m;
    while ((m = STAILQ_FIRST(&todo)) != NULL) {
        /* A posted message may be gone at once: a stream port's writer sends
         * and releases it without waiting for the kick. Only a cluster's head,
         * a data_return that lives in its page, is read after the post. */
        STAILQ_REMOVE_HEAD(&todo, link);
        struct emm_msg *chain = m->chain;
        uint32_t id = m->id;
        uint64_t offset = m->offset, len = m->length;
        for (struct emm_msg *c = chain; c != NULL; c = c->chain)
            len += c->length;
        if (obj->pager_lost_ns != 0 && id == MO_DISCARD) {
            /* Its pager died: the next one gets it after init (vm_lost.c), or
             * pages punched now would come back from the store. The existence
             * map loses the pages now: their content is zeros from here on. */
            uint64_t first = offset / VM_PS;
            vm_pmap_remove(&obj->pm, first,
                           len == UINT64_MAX ? UINT64_MAX : first + len / VM_PS);
            STAILQ_INSERT_TAIL(&obj->lost_msgs, m, link);
        } else if (emm_port_post(obj->pager, m) < 0) {
            STAILQ_INSERT_TAIL(&b->failed, m, link);
        } else {
            vm_pager_count_sent(obj, id, offset, len);
            b->kick_pager = 1;
            if (b->kick_port == NULL)
                b->kick_port = emm_port_ref(obj->pager);
            /* The pages of a cluster are answered by one data_return_completed
             * that names the head's seqno: each page keeps it to match. */
            for (struct emm_msg *c = chain; c != NULL; c = c->chain)
                c->seqno = m->seqno;
        }
    }
    STAILQ_CONCAT(&todo, &b->dp_msgs);
    while ((m = STAILQ_FIRST(&todo)) != NULL) {
        STAILQ_REMOVE_HEAD(&todo, link);
        if (obj->dp == NULL || emm_port_post(obj->dp, m) < 0)
            STAILQ_INSERT_TAIL(&b->dp_failed, m, link);
        else
            b->kick_dp = 1;
    }
}

void
vm_batch_flush(struct vm_object *obj, struct vm_batch *b)
{
    if (!STAILQ_EMPTY(&b->msgs) || !STAILQ_EMPTY(&b->dp_msgs))
        vm_batch_post(obj, b); /* a caller that built the batch without the lock */
    if (b->kick_port != NULL) {
        emm_port_kick(b->kick_port);
        emm_port_unref(b->kick_port);
        b->kick_port = NULL;
    } else if (b->kick_pager) {
        emm_port_kick(obj->pager); /* posted under the lock by the caller itself */
    }
    if (b->kick_dp)
        emm_port_kick(obj->dp);
    b->kick_pager = b->kick_dp = 0;
    for (int dp = 0; dp < 2; dp++) {
        struct emm_msg_list *l = dp ? &b->dp_failed : &b->failed;
        struct emm_msg *m;
        while ((m = STAILQ_FIRST(l)) != NULL) {
            STAILQ_REMOVE_HEAD(l, link);
            emm_warn("object %llu: %s gone, %s not delivered", (unsigned long long)obj->id,
                     dp ? "default pager" : "pager", emm_msg_name(m->id));
            emm_msg_release(m, -EPIPE);
        }
    }
    struct vm_io *io;
    while ((io = STAILQ_FIRST(&b->done)) != NULL) {
        STAILQ_REMOVE_HEAD(&b->done, link);
        if (io->op == VM_IO_READ) {
            if (io->err == 0) {
                struct iovec iov[EMM_MAX_SPAN_PAGES];
                uint64_t pos = io->off, end = io->off + io->len;
                int n = 0;
                assert(io->nwired <= EMM_MAX_SPAN_PAGES);
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
                vm_io_unwire(obj, io);
            } else {
                io->rdone(io->arg, io->err, NULL, 0);
            }
        } else {
            vm_io_unstage(obj, io); /* a failed write's staged frames */
            io->done(io->arg, io->err);
        }
        free(io);
    }
    struct vm_sync *s;
    while ((s = STAILQ_FIRST(&b->syncs_done)) != NULL) {
        STAILQ_REMOVE_HEAD(&b->syncs_done, link);
        s->done(s->arg, b->sync_err);
        free(s);
    }
    struct vm_seek *sk;
    while ((sk = STAILQ_FIRST(&b->seeks_done)) != NULL) {
        STAILQ_REMOVE_HEAD(&b->seeks_done, link);
        sk->done(sk->arg, sk->result);
        free(sk);
    }
}

void
vm_io_unstage(struct vm_object *obj, struct vm_io *io)
{
    struct vm_kernel *k = obj->kernel;
    for (unsigned i = 0; i < io->nwired; i++)
        if (io->wired[i] != NULL)
            vm_pool_free(&k->pool, io->wired[i]);
    if (io->nwired > 0)
        atomic_fetch_sub(&k->stats.staged_pages_now, io->nwired);
    io->nwired = 0;
}

void
vm_io_unwire(struct vm_object *obj, struct vm_io *io)
{
    pthread_mutex_lock(&obj->lock);
    for (unsigned i = 0; i < io->nwired; i++) {
        struct vm_page *p = io->wired[i];
        assert(p->wire > 0); /* the reply that just went out sent from a wired frame */
        if (--p->wire == 0 && (p->flags & VM_PG_EVICT) && p->state == VM_PAGE_PRESENT &&
            !(p->flags & VM_PG_DIRTY))
            vm_obj_remove_page(obj, p);
    }
    pthread_mutex_unlock(&obj->lock);
    io->nwired = 0;
}
