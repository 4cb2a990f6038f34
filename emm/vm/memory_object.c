/*
 * memory_object.c - the kernel's end of the memory-object protocol: creating
 * an object (its control and name ports, memory_object_init), and the handlers
 * of every pager -> kernel message arriving on its control port (data_supply,
 * data_unavailable, data_error, lock_request, synchronize_completed, ...).
 *
 * Locking: obj->lock guards everything in struct vm_object and the state, flags
 * and contents of its pages; vm_internal.h says who holds it for each call.
 * Work that must happen without it (sending messages, completions, upcalls)
 * is gathered in a struct vm_batch and run by vm_batch_flush after unlocking.
 * Lock order: object, then pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

static void control_handler(struct emm_port *port, struct emm_msg *msg);
static void dp_reply_handler(struct emm_port *port, struct emm_msg *msg);

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
    STAILQ_INIT(&obj->ios);
    STAILQ_INIT(&obj->syncs);
    STAILQ_INIT(&obj->replay_syncs);
    STAILQ_INIT(&obj->lost_syncs);
    STAILQ_INIT(&obj->lost_msgs);
    TAILQ_INIT(&obj->seeks);
    pthread_mutex_init(&obj->lock, NULL);
    atomic_init(&obj->refs, 1);
    obj->kernel = k;
    obj->id = a->id;
    obj->size = a->size;
    obj->owner = a->owner;
    obj->state = VM_OBJ_INIT;
    obj->temporary = a->temporary;
    atomic_init(&obj->deadline_ns, a->deadline_ms * 1000000ull);
    obj->pstats = a->pstats != NULL ? a->pstats : &k->orphan_stats;
    obj->pager = a->pager;
    obj->pager_name = a->pager_name;
    if (a->pager_shared) { /* others write through it: nothing is ever known */
        obj->pm.state = VM_PM_KNOWN;
        obj->pm.known = 0;
    } else if (a->pager_empty) { /* the front end knows its pager stores none of it */
        obj->pm.state = VM_PM_KNOWN;
        obj->pm.known = UINT64_MAX;
    }
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
    if (rc == 0 && obj->dp != NULL && !a->temporary)
        rc = emm_port_create("dp-reply", dp_reply_handler, obj, NULL, &obj->dp_reply);
    if (rc == 0 && !a->temporary) /* its pager's death is told here (vm_lost.c) */
        rc = emm_port_create("notify", vm_obj_notify_handler, obj, NULL, &obj->notify);
    /* vm_object_unref frees obj once these ports' handlers are out. */
    if (rc == 0) {
        emm_port_set_destroy_waits(obj->control);
        if (obj->dp_reply != NULL)
            emm_port_set_destroy_waits(obj->dp_reply);
        if (obj->notify != NULL)
            emm_port_set_destroy_waits(obj->notify);
    }
    struct emm_msg *m = rc == 0 ? emm_msg_new(MO_INIT, 0, 0) : NULL;
    if (m == NULL) {
        if (obj->control)
            emm_port_destroy(obj->control);
        if (obj->name)
            emm_port_destroy(obj->name);
        if (obj->notify)
            emm_port_destroy(obj->notify);
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
    vm_pager_count_sent(obj, m->id, m->offset, 0);
    if (emm_port_send(obj->pager, m) < 0) {
        emm_msg_release(m, -EPIPE);
        obj->state = VM_OBJ_DEAD;
        obj->error = EIO;
    }
    /* Pages double-paged before (maybe before a restart) go back to the pager. */
    if (vm_obj_dp_holds(obj))
        vm_kernel_note_swapped(k, obj);
    if (obj->state != VM_OBJ_DEAD)
        vm_obj_watch_pager(obj); /* Mach's dead-name request on the pager's port */
    *out = obj;
    return 0;
}


static void
fail_overlapping(struct vm_object *obj, uint64_t off, uint64_t len, int err, struct vm_batch *b)
{
    struct vm_io_list keep = STAILQ_HEAD_INITIALIZER(keep);
    struct vm_io *io;
    while ((io = STAILQ_FIRST(&obj->ios)) != NULL) {
        STAILQ_REMOVE_HEAD(&obj->ios, link);
        if (io->off < off + len && off < io->off + io->len) {
            io->err = err;
            vm_batch_done(b, io);
        } else {
            STAILQ_INSERT_TAIL(&keep, io, link);
        }
    }
    STAILQ_CONCAT(&obj->ios, &keep);
}

/* Copies supplied data into the frames of pages waiting for it, without the
 * object lock (a 1 MiB copy would stall pageout and other faults). Safe: only
 * this port's handler makes an ABSENT page present or frees it, and handlers of
 * one port never overlap; a page discarded meanwhile is zeroed under the lock. */
static void
supply_prefill(struct vm_object *obj, struct emm_msg *msg, uint8_t *filled)
{
    uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
    void *frames[EMM_MAX_REQUEST_PAGES];
    pthread_mutex_lock(&obj->lock);
    for (uint64_t i = 0; i < n; i++) {
        struct vm_page *p = vm_obj_page_lookup(obj, first + i);
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
        struct vm_page *p = vm_obj_page_lookup(obj, first + i);
        if (p == NULL) {
            /* Unsolicited (prefetch): take it only if a frame is free now. */
            if (zero || vm_pool_alloc(&k->pool, &p, 1) != 1)
                continue;
            vm_obj_page_insert(obj, p, first + i, VM_PAGE_ABSENT);
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
        vm_obj_page_flags(obj, p, hole ? VM_PG_NEW : 0, hole ? 0 : VM_PG_NEW);
        if (p->flags & VM_PG_FROMSWAP) {
            p->flags &= ~VM_PG_FROMSWAP;
            atomic_fetch_add(&k->stats.swap_faults, 1);
            atomic_fetch_add(&obj->pstats->swap_faults, 1);
            if (!hole && !obj->temporary) {
                /* Its pager lacks this data: dirty, and swap's copy is to forget
                 * once the pager has it. */
                vm_obj_page_flags(obj, p, VM_PG_DIRTY, 0);
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
    vm_obj_run_waiters(obj, b);
}

/* The default pager no longer holds these pages (replayed or discarded since
 * the request): ask the object's own pager, which is authoritative for them,
 * unless it is suspect and lacks them: a request would wait behind its stalled
 * returns for holes, which the kernel fills itself (as fault_in does). */
static void
handle_not_held(struct vm_object *obj, struct emm_msg *msg, struct vm_batch *b)
{
    uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
    uint64_t run_start = 0, run_len = 0, filled = 0;
    for (uint64_t i = 0; i <= n; i++) {
        struct vm_page *p = i < n ? vm_obj_page_lookup(obj, first + i) : NULL;
        int ask = p != NULL && p->state == VM_PAGE_ABSENT && (p->flags & VM_PG_FROMSWAP);
        if (ask) {
            if (p->flags & VM_PG_REPLAY)
                obj->replay_inflight--;
            p->flags &= ~(VM_PG_FROMSWAP | VM_PG_REPLAY);
        }
        int lacks = ask ? vm_obj_pager_lacks(obj, first + i) : 0;
        if (lacks > 0) {
            vm_obj_fill_hole(obj, p);
            filled++;
            ask = 0; /* ends the run */
        } else if (ask) {
            if (run_len == 0)
                run_start = first + i;
            run_len++;
        }
        if ((!ask || i == n) && run_len > 0) {
            struct emm_msg *m = vm_kmsg(obj, MO_DATA_REQUEST, run_start * VM_PS, run_len * VM_PS);
            if (m != NULL) {
                m->access = VM_PROT_READ;
                vm_batch_msg(b, m);
            } else {
                for (uint64_t j = 0; j < run_len; j++)
                    vm_obj_remove_page(obj, vm_obj_page_lookup(obj, run_start + j));
                fail_overlapping(obj, run_start * VM_PS, run_len * VM_PS, ENOMEM, b);
            }
            run_len = 0;
        }
    }
    if (filled > 0)
        vm_obj_run_waiters(obj, b);
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
    struct vm_batch b = VM_BATCH_INIT(b);
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
                vm_obj_page_discard(obj, p);
            }
            p = next;
        }
    }
    if (msg->reply != EMM_PORT_NULL) {
        struct emm_msg *r = emm_msg_new(MO_LOCK_COMPLETED, msg->offset, msg->length);
        if (r != NULL) {
            r->control = emm_port_make_send(obj->control);
            /* After the data_returns it caused (same batch, sent in order). */
            vm_batch_msg(&b, r);
            r->reply = msg->reply; /* carried: sent to the reply port below */
            msg->reply = EMM_PORT_NULL;
        }
    }
    vm_obj_run_waiters(obj, &b);
    /* Queue the returns for the pager, then lock_completed on its reply port,
     * in order and under the lock (see vm_batch_post). */
    struct emm_msg_list todo = STAILQ_HEAD_INITIALIZER(todo);
    STAILQ_CONCAT(&todo, &b.msgs);
    struct emm_port *reply_to = NULL;
    struct emm_msg *m;
    while ((m = STAILQ_FIRST(&todo)) != NULL) {
        STAILQ_REMOVE_HEAD(&todo, link);
        uint32_t id = m->id; /* a posted message may be gone at once */
        uint64_t offset = m->offset, len = m->length;
        for (struct emm_msg *c = m->chain; c != NULL; c = c->chain)
            len += c->length;
        if (id == MO_LOCK_COMPLETED) {
            reply_to = emm_port_take(&m->reply);
            if (emm_port_post(reply_to, m) < 0)
                STAILQ_INSERT_TAIL(&b.failed, m, link);
        } else if (emm_port_post(obj->pager, m) < 0) {
            STAILQ_INSERT_TAIL(&b.failed, m, link);
        } else {
            vm_pager_count_sent(obj, id, offset, len);
            b.kick_pager = 1;
        }
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

/* Refuses a malformed msg: logged and counted; released without effect. The
 * object's own pager is reported to the front end, which may cut it off. */
static void
refuse(struct vm_object *obj, struct emm_msg *msg, int from_dp, const char *field)
{
    struct vm_kernel *k = obj->kernel;
    char what[96];
    snprintf(what, sizeof(what), "a malformed %s (bad %s)", emm_msg_name(msg->id), field);
    pthread_mutex_lock(&obj->lock);
    vm_msg_refuse(obj, msg, from_dp, field);
    pthread_mutex_unlock(&obj->lock);
    emm_msg_release(msg, -EBADMSG);
    if (!from_dp && !obj->temporary && k->up.pager_misbehaved != NULL)
        k->up.pager_misbehaved(obj->owner, what);
}

/* A message to one of obj's ports, taken while the object lives: the
 * handler holds a reference until it returns (a completion it runs may drop
 * the object's last other one). A dying object's messages are dropped: its
 * vm_object_unref destroys the port and waits for this handler. */
static int
handler_ref(struct vm_object *obj, struct emm_msg *msg)
{
    if (vm_object_tryref(obj))
        return 1;
    emm_msg_release(msg, -EPIPE);
    return 0;
}

static void
control_handler_obj(struct emm_port *port, struct vm_object *obj, struct emm_msg *msg);

static void
control_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct vm_object *obj = emm_port_context(port);
    if (!handler_ref(obj, msg))
        return;
    control_handler_obj(port, obj, msg);
    vm_object_unref(obj);
}

static void
control_handler_obj(struct emm_port *port, struct vm_object *obj, struct emm_msg *msg)
{
    struct vm_kernel *k = obj->kernel;
    struct vm_batch b = VM_BATCH_INIT(b);
    const char *field;

    /* Nothing a pager sends is trusted before it is checked. */
    if (vm_msg_check_form(msg, 0, &field) < 0) {
        refuse(obj, msg, 0, field);
        return;
    }
    if (msg->id == MO_LOCK_REQUEST) {
        handle_lock_request(port, obj, msg);
        return;
    }
    uint8_t filled[EMM_MAX_REQUEST_PAGES];
    int prefilled = msg->id == MO_DATA_SUPPLY; /* checked: at most one request */
    if (prefilled)
        supply_prefill(obj, msg, filled);
    pthread_mutex_lock(&obj->lock);
    if (vm_msg_check_range(obj, msg, &field) < 0) {
        vm_msg_refuse(obj, msg, 0, field);
        pthread_mutex_unlock(&obj->lock);
        emm_msg_release(msg, -EBADMSG);
        return;
    }
    /* An answer to a request sent to swap (double paging), not to the pager:
     * not counted as the pager's (temporary objects have only swap). */
    struct vm_page *head = vm_obj_page_lookup(obj, msg->offset / VM_PS);
    int answers_swap = !obj->temporary && head != NULL && (head->flags & VM_PG_FROMSWAP);
    /* Pager latency: the first answer for a request's first page (not the
     * default pager's: a NOT_HELD answer comes from swap). */
    int answer = msg->id == MO_DATA_SUPPLY || msg->id == MO_DATA_UNAVAILABLE ||
                 msg->id == MO_DATA_ERROR;
    if (answer && head != NULL && head->request_ns != 0 && head->state == VM_PAGE_ABSENT &&
        !answers_swap && !(msg->id == MO_DATA_UNAVAILABLE && (msg->flags & MO_F_NOT_HELD))) {
        uint64_t ns = emm_mono_ns() - head->request_ns;
        int i = ns < 2 ? 0 : 63 - __builtin_clzll(ns);
        if (i >= VM_LAT_BUCKETS)
            i = VM_LAT_BUCKETS - 1;
        atomic_fetch_add_explicit(&obj->pstats->request_lat.bucket[i], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&obj->pstats->request_lat.sum_ns, ns, memory_order_relaxed);
    }
    if (answer && head != NULL)
        head->request_ns = 0;
    if (!answers_swap) /* it lives: its silence is measured from here (vm_lost.c) */
        atomic_store(&obj->pstats->last_heard_ns, emm_mono_ns());
    switch (msg->id) {
    case MO_READY:
    case MO_CHANGE_ATTRIBUTES:
        obj->may_cache = (msg->flags & MO_F_MAY_CACHE) != 0;
        atomic_store(&obj->return_clusters, (msg->flags & MO_F_CLUSTER_OK) != 0);
        obj->strict_write = (msg->flags & MO_F_STRICT_WRITE) != 0;
        obj->copy_strategy = msg->arg;
        if (obj->state == VM_OBJ_INIT) {
            obj->state = VM_OBJ_READY;
            vm_obj_pager_back(obj, &b); /* a new pager after a death: resume */
            vm_obj_pm_learn(obj, &b); /* what it stores, while it answers */
        }
        if (msg->id == MO_CHANGE_ATTRIBUTES && msg->reply != EMM_PORT_NULL) {
            struct emm_msg *r = emm_msg_new(MO_CHANGE_COMPLETED, 0, 0);
            if (r != NULL) {
                r->flags = msg->flags & MO_F_MAY_CACHE;
                r->arg = msg->arg;
                if (emm_port_send_reply(&msg->reply, r) < 0)
                    emm_msg_release(r, -EPIPE);
            }
        }
        vm_obj_run_waiters(obj, &b);
        break;
    case MO_DATA_SUPPLY:
        if (!answers_swap)
            atomic_fetch_add(&obj->pstats->msg_supplies, 1);
        atomic_fetch_add(&k->stats.data_supplies, 1);
        atomic_fetch_add(&k->stats.pages_supplied, msg->length / VM_PS);
        handle_supply(obj, msg, 0, prefilled ? filled : NULL, &b);
        break;
    case MO_DATA_UNAVAILABLE:
        if (msg->flags & MO_F_NOT_HELD) {
            handle_not_held(obj, msg, &b);
            break;
        }
        if (!answers_swap)
            atomic_fetch_add(&obj->pstats->msg_unavailable, 1);
        atomic_fetch_add(&k->stats.data_unavailable, 1);
        handle_supply(obj, msg, 1, NULL, &b);
        break;
    case MO_DATA_ERROR: {
        if (!answers_swap)
            atomic_fetch_add(&obj->pstats->msg_errors, 1);
        atomic_fetch_add(&k->stats.data_errors, 1);
        int err = msg->arg; /* a positive errno (checked) */
        uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
        for (uint64_t i = 0; i < n; i++) {
            struct vm_page *p = vm_obj_page_lookup(obj, first + i);
            if (p != NULL && p->state == VM_PAGE_ABSENT)
                vm_obj_remove_page(obj, p);
            else if (p != NULL)
                p->flags &= ~VM_PG_ABANDONED;
        }
        /* Only operations waiting now get the error (Mach). */
        fail_overlapping(obj, msg->offset, msg->length, err, &b);
        vm_obj_run_waiters(obj, &b);
        break;
    }
    case MO_DESTROY:
        emm_warn("object %llu: pager destroyed it (reason %d)", (unsigned long long)obj->id,
                 msg->arg);
        obj->state = VM_OBJ_DEAD;
        obj->error = msg->arg > 0 ? msg->arg : EIO; /* reason 0: no reason given */
        vm_obj_discard_all(obj);
        vm_obj_run_waiters(obj, &b);
        vm_obj_seeks_expire(obj, 0, 1, &b);
        break;
    case MO_QUERY_REPLY:
        vm_obj_query_reply(obj, msg, &b);
        break;
    case MO_DATA_RETURN_COMPLETED:
        vm_obj_return_completed(obj, msg, 0, &b);
        break;
    case MO_SYNCHRONIZE_COMPLETED: {
        struct vm_sync *s = STAILQ_FIRST(&obj->syncs);
        if (obj->syncs_abandoned > 0) {
            /* The late answer to an fsync that already failed (vm_lost.c). */
            obj->syncs_abandoned--;
            atomic_fetch_add(&obj->pstats->stale_answers, 1);
            break;
        }
        if (s == NULL) {
            emm_warn("object %llu: unexpected synchronize_completed", (unsigned long long)obj->id);
            break;
        }
        STAILQ_REMOVE_HEAD(&obj->syncs, link);
        STAILQ_INSERT_TAIL(&b.syncs_done, s, link);
        b.sync_err = msg->arg; /* a positive errno (checked) */
        if (b.sync_err == 0 && obj->return_failures != s->failures_at_start)
            b.sync_err = EIO; /* a page it returned stayed dirty: the pager refused it */
        if (b.sync_err == 0 && vm_obj_dp_holds(obj) && obj->state == VM_OBJ_READY) {
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

/* The default pager's answers to the data_returns the kernel sends it for
 * double paging (a failed or overdue return of the object's own pager). Only
 * data_return_completed belongs here. */
static void
dp_reply_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct vm_object *obj = emm_port_context(port);
    struct vm_batch b = VM_BATCH_INIT(b);

    if (!handler_ref(obj, msg))
        return;
    const char *field;
    if (vm_msg_check_form(msg, 1, &field) < 0) { /* only data_return_completed comes here */
        refuse(obj, msg, 1, field);
        vm_object_unref(obj);
        return;
    }
    pthread_mutex_lock(&obj->lock);
    vm_obj_return_completed(obj, msg, 1, &b);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    emm_msg_release(msg, 0);
    vm_batch_flush(obj, &b);
    vm_object_unref(obj);
}
