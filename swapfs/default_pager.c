/*
 * default_pager.c - the default pager (see default_pager.h): opening and
 * merging the areas, the object table, each object's port handler, its queue
 * of I/O in flight, and the kernel's queries.
 *
 * I/O: a data_return starts its writes (a run of consecutive slots each, one
 * I/O per run: swp_area_write_async) and returns; a data_request whose pages
 * are held in a few runs of consecutive slots starts its reads the same way.
 * Each object keeps a FIFO of these records (o->qlock); whichever thread sees
 * the head's I/O complete finishes records in arrival order (o->finishing:
 * one at a time per object): map updates, old copies freed,
 * data_return_completed or the supply sent, the message released. Every
 * other message waits until the FIFO is empty (a data_request: until no
 * data_return is in it), so the handler sees the map as if I/O were
 * synchronous, and answers leave in the order messages came.
 *
 * Locking: dp->lock guards the object table (a tsearch tree by key), nobjects
 * and every object's `attached`. dp->add_lock makes live area adds one at a time;
 * readers never take it: areas[] never moves, nareas and the placement route
 * are published with release stores after what they name is ready. o->lock
 * guards o->map and o->pages and is a leaf. o->qlock (a leaf too) guards o's
 * FIFO and each record's pending/submitting. dp->rec_lock guards the free
 * records. o->map changes under o->lock, by o's handler (discard, terminate)
 * or by the finisher of o's records, never both at once (the handler drains
 * first); the handler reads the map without the lock then. No lock is held
 * across I/O or a send. The data_return path allocates nothing but the leaves
 * swp_map_insert may add: slots come from the bitmaps, generations from an
 * atomic, records from a preallocated pool (waited for when all are in use),
 * and the kernel's frames are written in place (page-aligned and mlocked, so
 * O_DIRECT needs no bounce buffer).
 *
 * Lifetime: an object lives while the kernel has it attached or it holds pages.
 * When both end, the object's own handler frees it (after a terminate or a
 * discard, or on the reap message detach queues behind everything the kernel
 * sent; each drains the FIFO first), so no message or I/O completion is ever
 * handled on a freed object. Destroy stops the handlers, then waits for every
 * area's I/O (their records finish), then frees the objects.
 */
#include "default_pager.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <fcntl.h>
#include <search.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "slot_alloc.h"
#include "slot_map.h"
#include "swap_area.h"
#include "swap_index.h"
#include "swap_io.h"

#define PS ((uint64_t)SWP_PAGE_SIZE)

/* A global slot number: the area's index in the top 8 bits, its slot below. */
#define GS_SHIFT 56
#define GS_MAKE(area, slot) (((uint64_t)(area) << GS_SHIFT) | (slot))
#define GS_AREA(gs) ((size_t)((gs) >> GS_SHIFT))
#define GS_SLOT(gs) ((gs) & ((1ull << GS_SHIFT) - 1))

/* Private message, queued by detach on the object's own port. */
#define DP_MSG_REAP 0x10000u

/* A discard of up to this many pages looks each one up; a bigger one walks the
 * map once. */
#define DROP_LOOKUP_MAX 256u

/* next_page looks up this many indexes before walking the whole map. */
#define SEEK_PROBES 256u

struct dp_area {
    struct swp_area *area;
    struct swp_alloc *alloc;
    int priority;
};

/* The areas of one priority: a run of dp->order; rr picks where to start. */
struct dp_group {
    size_t first, n;
    atomic_uint rr;
};

struct dp_ret;

struct dp_object {
    struct swp_dpager *dp;
    uint64_t key;
    struct emm_port *port; /* receive right, made by the first attach */
    unsigned attached;     /* dp->lock: attaches not yet detached */
    pthread_mutex_t lock;  /* leaf: map, pages */
    struct swp_map *map;   /* page index -> global slot */
    _Atomic uint64_t pages;
    /* the handler's own */
    struct emm_port *control; /* send right from init, until terminate */
    uint64_t touched;         /* areas written since the last synchronize */
    int write_error;          /* reported by the next synchronize */
    int full_logged;
    /* data_returns being written, in arrival order (qlock) */
    pthread_mutex_t qlock;    /* leaf: fifo, each record's pending and submitting */
    pthread_cond_t qcond;     /* a record was finished or its I/O completed */
    STAILQ_HEAD(, dp_ret) fifo;
    unsigned writes;          /* data_returns in the fifo */
    int finishing;            /* a thread is finishing records at the head */
};

/* One data_return (a chain) being written: up to DP_RUNS I/Os in flight at
 * once, each a run of consecutive slots. Preallocated (dp->recs): the
 * data_return path allocates no memory for its I/O. */
#define DP_RUNS 8u
#define DP_RECS 128u /* data_returns being written at once, all objects together */
/* Supply buffers of asynchronous reads, all objects together (a bound on
 * emmd's resident set: more waits for the synchronous path's one buffer per
 * worker). */
#define DP_READ_BYTES_MAX (UINT64_C(4) << 20)
struct dp_write {
    struct swp_area_write w;
    uint64_t gs; /* global slot of w.first */
    int rc;
};
enum { DP_RET_WRITE = 0, DP_RET_READ = 1 };
struct dp_ret {
    STAILQ_ENTRY(dp_ret) link; /* o's fifo, or dp's free list */
    struct dp_object *o;
    struct emm_msg *msg;
    int kind;            /* DP_RET_WRITE (a data_return) or DP_RET_READ (a data_request) */
    /* DP_RET_READ: pages [rd_index, rd_index + rd_n) into rd_buf, in up to
     * DP_RUNS reads of consecutive slots */
    uint64_t rd_index;
    unsigned rd_n, nrd;
    void *rd_buf;
    int rd_rc; /* the first failure */
    struct swp_area_read rd[DP_RUNS];
    int status;          /* the first failure */
    unsigned pending;    /* o->qlock: I/Os in flight */
    int submitting;      /* o->qlock: the handler is still starting I/Os */
    unsigned nw;         /* runs in w[] */
    struct dp_write w[DP_RUNS];
    struct iovec iov[SWP_WRITE_MAX];
    uint32_t crc[SWP_WRITE_MAX];
};

/* Where new slots come from: area indexes by priority, cut into groups. A live
 * add (swp_dp_add_area) publishes a new one; the ones it replaces stay until
 * destroy (a writer may still be walking one). */
struct dp_route {
    size_t order[SWP_DP_MAX_AREAS]; /* area indexes, highest priority first */
    struct dp_group groups[SWP_DP_MAX_AREAS];
    size_t ngroups;
    struct dp_route *older;
};

struct swp_dpager {
    struct dp_area *areas;  /* SWP_DP_MAX_AREAS of them: never moves */
    _Atomic size_t nareas;  /* areas[0..nareas) are open; a live add fills areas[nareas]
                               first, then counts it (release) */
    struct dp_route *_Atomic route;
    pthread_mutex_t add_lock; /* one live add at a time */
    atomic_uint_fast64_t gen; /* next generation, one counter for every area */
    struct emm_portset *set;
    pthread_mutex_t lock;
    void *objects; /* tsearch tree of struct dp_object */
    uint64_t nobjects;
    atomic_uint_fast64_t pages_out, pages_in, write_errors, full_errors, io_errors, discards;
    atomic_uint_fast64_t write_ios, read_ios;
    atomic_uint_fast64_t read_bytes; /* asynchronous reads' buffers not yet released */
    /* data_return records: a free list (rec_lock), waited for when empty */
    struct dp_ret *recs;
    STAILQ_HEAD(, dp_ret) rec_free;
    unsigned nrecs;
    pthread_mutex_t rec_lock;
    pthread_cond_t rec_cond;
};

/* ---- slots -------------------------------------------------------------------- */

/* Empties the slot on disk, then frees it. A slot whose descriptor could not be
 * cleared stays used: reused, it could come back under its old name. */
static void
slot_release(struct swp_dpager *dp, uint64_t gs)
{
    struct dp_area *a = &dp->areas[GS_AREA(gs)];

    if (swp_area_clear_slot(a->area, GS_SLOT(gs)) < 0) {
        atomic_fetch_add(&dp->io_errors, 1);
        return;
    }
    swp_alloc_put(a->alloc, GS_SLOT(gs));
}

/* ---- objects ------------------------------------------------------------------- */

static int
obj_cmp(const void *x, const void *y)
{
    uint64_t a = ((const struct dp_object *)x)->key, b = ((const struct dp_object *)y)->key;
    return a < b ? -1 : a > b;
}

static void
obj_free(void *p)
{
    struct dp_object *o = p;

    if (o->port)
        emm_port_destroy(o->port);
    if (o->control)
        emm_port_unref(o->control);
    swp_map_destroy(o->map);
    pthread_mutex_destroy(&o->lock);
    pthread_mutex_destroy(&o->qlock);
    pthread_cond_destroy(&o->qcond);
    free(o);
}

/* The object of key, made if absent. dp->lock held (or still single-threaded). */
static int
obj_get(struct swp_dpager *dp, uint64_t key, struct dp_object **out)
{
    struct dp_object probe = {.key = key}, *o;
    void **node = tfind(&probe, &dp->objects, obj_cmp);

    if (node) {
        *out = *node;
        return 0;
    }
    o = calloc(1, sizeof(*o));
    if (!o || swp_map_create(&o->map) < 0) {
        free(o);
        return -ENOMEM;
    }
    o->dp = dp;
    o->key = key;
    pthread_mutex_init(&o->lock, NULL);
    pthread_mutex_init(&o->qlock, NULL);
    STAILQ_INIT(&o->fifo);
    pthread_cond_init(&o->qcond, NULL);
    if (!tsearch(o, &dp->objects, obj_cmp)) {
        obj_free(o);
        return -ENOMEM;
    }
    dp->nobjects++;
    *out = o;
    return 0;
}

/* Takes o out of the table if nothing holds it any more. dp->lock held. */
static int
obj_unlink_unused(struct swp_dpager *dp, struct dp_object *o)
{
    if (o->attached || atomic_load(&o->pages))
        return 0;
    tdelete(o, &dp->objects, obj_cmp);
    dp->nobjects--;
    return 1;
}

/* From o's handler, after its message: frees o if unused. Only reap messages can
 * still be queued (nothing is attached); destroying the port releases them. */
static void
obj_reap(struct dp_object *o)
{
    struct swp_dpager *dp = o->dp;

    pthread_mutex_lock(&dp->lock);
    int unused = obj_unlink_unused(dp, o);
    pthread_mutex_unlock(&dp->lock);
    if (unused)
        obj_free(o);
}

/* ---- the write path -------------------------------------------------------------- */

/* A run of up to want consecutive slots in one area: its length. Highest
 * priority first, round robin among equals, the next area when full. */
static int
slot_get_run(struct swp_dpager *dp, unsigned want, uint64_t *gs)
{
    struct dp_route *rt = atomic_load_explicit(&dp->route, memory_order_acquire);
    for (size_t g = 0; g < rt->ngroups; g++) {
        struct dp_group *gr = &rt->groups[g];
        unsigned start = atomic_fetch_add(&gr->rr, 1);
        for (size_t k = 0; k < gr->n; k++) {
            size_t ai = rt->order[gr->first + (start + k) % gr->n];
            uint64_t s;
            int n = swp_alloc_get_run(dp->areas[ai].alloc, want, &s);
            if (n > 0) {
                *gs = GS_MAKE(ai, s);
                return n;
            }
        }
    }
    return -ENOSPC;
}

/* A failed data_return: counted, remembered for the next synchronize, and
 * said loudly when swap is full. */
static void
note_write_error(struct dp_object *o, uint64_t index, int rc)
{
    struct swp_dpager *dp = o->dp;

    atomic_fetch_add(&dp->write_errors, 1);
    o->write_error = rc;
    if (rc == -ENOSPC) {
        atomic_fetch_add(&dp->full_errors, 1);
        if (!o->full_logged)
            emm_err("swap full: object %#llx: pages from %llu lost; add a swap area or enlarge "
                    "one ('swap = PATH SIZE' in [default-pager])",
                    (unsigned long long)o->key, (unsigned long long)index);
        o->full_logged = 1;
    } else if (rc == -ENOMEM) {
        emm_err("default pager: object %#llx: pages from %llu not swapped: out of memory",
                (unsigned long long)o->key, (unsigned long long)index);
    }
}

/* The runs of r whose I/O is complete, in order: written ones enter the map
 * (the copies they replace are freed after: recovery keeps the highest
 * generation, so a crash in between loses nothing); failed ones give their
 * slots back. Runs after a failure are kept if written: the pages are in swap
 * all the same. Called by whoever finishes r, with no lock held. */
static void
ret_apply_runs(struct dp_ret *r)
{
    struct dp_object *o = r->o;
    struct swp_dpager *dp = o->dp;

    for (unsigned k = 0; k < r->nw; k++) {
        struct dp_write *dw = &r->w[k];
        unsigned n = dw->w.n;
        int rc = dw->rc;
        if (rc < 0) {
            atomic_fetch_add(&dp->io_errors, 1);
            for (unsigned i = 0; i < n; i++)
                slot_release(dp, dw->gs + i);
        }
        for (unsigned i = 0; rc == 0 && i < n; i++) {
            uint64_t old;
            pthread_mutex_lock(&o->lock);
            rc = swp_map_insert(o->map, dw->w.index + i, dw->gs + i, &old);
            atomic_store(&o->pages, swp_map_count(o->map));
            pthread_mutex_unlock(&o->lock);
            if (rc < 0) {
                for (unsigned j = i; j < n; j++)
                    slot_release(dp, dw->gs + j);
                break;
            }
            if (old != SWP_NO_SLOT)
                slot_release(dp, old);
        }
        if (dw->rc == 0) {
            o->touched |= 1ull << GS_AREA(dw->gs);
            if (rc == 0)
                atomic_fetch_add(&dp->pages_out, n);
        }
        if (rc < 0 && r->status == 0)
            r->status = rc;
    }
    r->nw = 0;
}

static void
rec_put(struct swp_dpager *dp, struct dp_ret *r)
{
    pthread_mutex_lock(&dp->rec_lock);
    STAILQ_INSERT_HEAD(&dp->rec_free, r, link);
    pthread_cond_signal(&dp->rec_cond);
    pthread_mutex_unlock(&dp->rec_lock);
}

static struct dp_ret *
rec_get(struct swp_dpager *dp)
{
    pthread_mutex_lock(&dp->rec_lock);
    while (STAILQ_EMPTY(&dp->rec_free))
        pthread_cond_wait(&dp->rec_cond, &dp->rec_lock);
    struct dp_ret *r = STAILQ_FIRST(&dp->rec_free);
    STAILQ_REMOVE_HEAD(&dp->rec_free, link);
    pthread_mutex_unlock(&dp->rec_lock);
    return r;
}

/* The end of a data_return: its runs applied, data_return_completed sent (the
 * kernel decides on it), the message released (which ends the frames' loan:
 * the status says only whether the data_return was taken at all). */
static void read_finish(struct dp_ret *r);

static void
ret_finish(struct dp_ret *r)
{
    struct dp_object *o = r->o;
    struct emm_msg *msg = r->msg;

    if (r->kind == DP_RET_READ) {
        read_finish(r);
        emm_msg_release(msg, 0);
        rec_put(o->dp, r);
        return;
    }
    ret_apply_runs(r);
    if (r->status < 0)
        note_write_error(o, msg->offset / PS, r->status);
    int status = r->status;
    int rc = emm_msg_return_completed(msg, msg->control ? emm_port_peek(msg->control)
                                                        : o->control, status);
    if (rc < 0) {
        emm_warn("default pager: object %#llx: data_return_completed not sent: %s",
                 (unsigned long long)o->key, strerror(-rc));
        if (status == 0)
            status = rc;
    }
    emm_msg_release(msg, status);
    rec_put(o->dp, r);
}

/* Finishes the records at the head of o's fifo whose I/O is complete, in
 * arrival order (a later copy of a page wins, as if written one by one). One
 * thread at a time per object; any thread may call it. */
static void
fifo_run(struct dp_object *o)
{
    pthread_mutex_lock(&o->qlock);
    if (o->finishing) {
        pthread_mutex_unlock(&o->qlock);
        return; /* it looks again before it stops */
    }
    o->finishing = 1;
    struct dp_ret *r;
    while ((r = STAILQ_FIRST(&o->fifo)) != NULL && !r->submitting && r->pending == 0) {
        STAILQ_REMOVE_HEAD(&o->fifo, link);
        pthread_mutex_unlock(&o->qlock);
        int w = r->kind == DP_RET_WRITE;
        ret_finish(r); /* r is free from here on */
        pthread_mutex_lock(&o->qlock);
        o->writes -= (unsigned)w;
        pthread_cond_broadcast(&o->qcond);
    }
    o->finishing = 0;
    pthread_cond_broadcast(&o->qcond);
    pthread_mutex_unlock(&o->qlock);
}

/* Waits until every data_return of o is finished: the map is then the
 * handler's to read, as if the writes had been synchronous. Every message
 * but a data_return waits so (a discard, a request, a synchronize, ...). */
static void
obj_drain(struct dp_object *o)
{
    pthread_mutex_lock(&o->qlock);
    while (!STAILQ_EMPTY(&o->fifo) || o->finishing)
        pthread_cond_wait(&o->qcond, &o->qlock);
    pthread_mutex_unlock(&o->qlock);
}

/* Waits until no data_return of o is in flight: the map is stable for the
 * handler's lookups while reads may still be (a data_request). */
static void
obj_drain_writes(struct dp_object *o)
{
    pthread_mutex_lock(&o->qlock);
    while (o->writes > 0)
        pthread_cond_wait(&o->qcond, &o->qlock);
    pthread_mutex_unlock(&o->qlock);
}

/* Appends r to o's fifo (the handler's thread). */
static void
fifo_append(struct dp_object *o, struct dp_ret *r)
{
    pthread_mutex_lock(&o->qlock);
    STAILQ_INSERT_TAIL(&o->fifo, r, link);
    o->writes += r->kind == DP_RET_WRITE;
    pthread_mutex_unlock(&o->qlock);
}

/* A run's I/O (data, then descriptors) ended: on the area's completion side. */
static void
run_done(struct swp_area_write *w, int rc)
{
    struct dp_write *dw = (struct dp_write *)((char *)w - offsetof(struct dp_write, w));
    struct dp_ret *r = w->arg;
    struct dp_object *o = r->o;

    dw->rc = rc;
    pthread_mutex_lock(&o->qlock);
    int last = --r->pending == 0 && !r->submitting;
    pthread_cond_broadcast(&o->qcond);
    pthread_mutex_unlock(&o->qlock);
    if (last)
        fifo_run(o);
}

/* The handler runs out of room in r (DP_RUNS runs or SWP_WRITE_MAX pages):
 * waits for r's I/O and for every earlier data_return of o, then applies
 * r's runs itself and starts afresh. Rare: a fragmented swap area, or a
 * chain longer than SWP_WRITE_MAX pages. */
static void
ret_settle(struct dp_ret *r)
{
    struct dp_object *o = r->o;

    pthread_mutex_lock(&o->qlock);
    while (r->pending > 0 || STAILQ_FIRST(&o->fifo) != r || o->finishing)
        pthread_cond_wait(&o->qcond, &o->qlock);
    pthread_mutex_unlock(&o->qlock);
    ret_apply_runs(r);
}

/* Pages [index, index+n) (pages at r->iov[pos...]) to new slots, as few runs
 * of consecutive slots as the areas allow, each one I/O in flight. */
static int
ret_write(struct dp_ret *r, uint64_t index, unsigned pos, unsigned n)
{
    struct dp_object *o = r->o;
    struct swp_dpager *dp = o->dp;

    for (unsigned done = 0; done < n;) {
        uint64_t gs;
        if (r->nw == DP_RUNS)
            ret_settle(r);
        int got = slot_get_run(dp, n - done, &gs);
        if (got < 0)
            return got;
        struct dp_write *dw = &r->w[r->nw];
        dw->gs = gs;
        dw->rc = 0;
        dw->w = (struct swp_area_write){
            .first = GS_SLOT(gs), .n = (unsigned)got, .obj = o->key, .index = index + done,
            .gen = atomic_fetch_add(&dp->gen, (uint64_t)got), .iov = r->iov + pos + done,
            .crc = r->crc + pos + done, .done = run_done, .arg = r};
        pthread_mutex_lock(&o->qlock);
        r->pending++;
        r->nw++;
        pthread_mutex_unlock(&o->qlock);
        int rc = swp_area_write_async(dp->areas[GS_AREA(gs)].area, &dw->w);
        if (rc < 0) { /* not started: nothing of it is on disk */
            pthread_mutex_lock(&o->qlock);
            r->pending--;
            r->nw--;
            pthread_mutex_unlock(&o->qlock);
            emm_err("default pager: object %#llx: pages %llu..%llu: cannot start the write: %s",
                    (unsigned long long)o->key, (unsigned long long)(index + done),
                    (unsigned long long)(index + done + (unsigned)got - 1), strerror(-rc));
            atomic_fetch_add(&dp->io_errors, 1);
            for (int i = 0; i < got; i++)
                swp_alloc_put(dp->areas[GS_AREA(gs)].alloc, GS_SLOT(gs) + (uint64_t)i);
            return rc;
        }
        atomic_fetch_add(&dp->write_ios, 1);
        done += (unsigned)got;
    }
    return 0;
}

/* A data_return, maybe a chain of contiguous pages: each run of contiguous
 * pages goes to runs of consecutive slots, written asynchronously; the
 * data_return is answered (data_return_completed, then its release) once
 * every run is on disk, after every earlier data_return of the object. Stops
 * starting runs at the first failure. */
static void
do_data_return(struct dp_object *o, struct emm_msg *msg)
{
    struct dp_ret *r = rec_get(o->dp);
    uint64_t first = 0;
    unsigned n = 0, pos = 0;
    int rc = 0;

    *r = (struct dp_ret){.o = o, .msg = msg, .kind = DP_RET_WRITE, .submitting = 1};
    fifo_append(o, r);
    for (struct emm_msg *m = msg; m && rc == 0; m = m->chain)
        for (uint64_t p = 0; p < m->length / PS && rc == 0; p++) {
            if (pos + n == SWP_WRITE_MAX || (n > 0 && m->offset / PS + p != first + n)) {
                rc = ret_write(r, first, pos, n);
                pos += n;
                n = 0;
                if (rc == 0 && pos == SWP_WRITE_MAX) {
                    ret_settle(r); /* r's iovecs are free again */
                    pos = 0;
                }
            }
            if (n == 0)
                first = m->offset / PS + p;
            r->iov[pos + n] = (struct iovec){.iov_base = (char *)m->data + p * PS,
                                             .iov_len = PS};
            n++;
        }
    if (rc == 0 && n > 0)
        rc = ret_write(r, first, pos, n);
    pthread_mutex_lock(&o->qlock);
    if (rc < 0 && r->status == 0)
        r->status = rc;
    r->submitting = 0;
    pthread_mutex_unlock(&o->qlock);
    fifo_run(o);
}

/* ---- replies ------------------------------------------------------------------------ */

/* To the message's control port, else the one from init. */
static void
send_kernel(struct dp_object *o, const struct emm_msg *msg, struct emm_msg *m)
{
    struct emm_port *c = msg->control ? emm_port_peek(msg->control) : o->control;

    if (!c || emm_port_send(c, m) < 0) {
        emm_warn("default pager: object %#llx: kernel gone, %s dropped",
                 (unsigned long long)o->key, emm_msg_name(m->id));
        emm_msg_release(m, -EPIPE);
    }
}

static void
reply(struct dp_object *o, const struct emm_msg *msg, uint32_t id, uint64_t offset,
      uint64_t length, uint32_t flags, int32_t arg)
{
    struct emm_msg *m = emm_msg_new(id, offset, length);

    if (!m) {
        emm_err("default pager: object %#llx: %s lost: out of memory", (unsigned long long)o->key,
                emm_msg_name(id));
        return;
    }
    m->flags = flags;
    m->arg = arg;
    send_kernel(o, msg, m);
}

static void
supply_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg->data);
    free(msg);
}

/* Pages [first, first+n), all held: supplies what reads back, data_error for a
 * page that does not. */
static void
supply_run(struct dp_object *o, const struct emm_msg *msg, uint64_t first, uint64_t n)
{
    struct swp_dpager *dp = o->dp;
    uint64_t k = 0;

    while (k < n) {
        struct emm_msg *m = emm_msg_new(MO_DATA_SUPPLY, (first + k) * PS, 0);
        char *buf = m ? aligned_alloc(PS, (n - k) * PS) : NULL;
        uint64_t got = 0, gs;
        int rc = 0;

        if (!buf) {
            free(m);
            reply(o, msg, MO_DATA_ERROR, (first + k) * PS, (n - k) * PS, 0, ENOMEM);
            return;
        }
        while (k + got < n && rc == 0) {
            swp_map_lookup(o->map, first + k + got, &gs); /* held: the caller looked */
            struct swp_area *area = dp->areas[GS_AREA(gs)].area;
            /* Pages in consecutive slots (a clustered pageout) come in one read. */
            uint64_t r = 1, next;
            while (k + got + r < n && r < SWP_WRITE_MAX &&
                   swp_map_lookup(o->map, first + k + got + r, &next) == 0 && next == gs + r)
                r++;
            atomic_fetch_add(&dp->read_ios, 1);
            if (r > 1 && swp_area_read_slots(area, GS_SLOT(gs), (unsigned)r, o->key,
                                             first + k + got, buf + got * PS) == 0) {
                got += r;
                continue;
            }
            rc = swp_area_read_slot(area, GS_SLOT(gs), o->key, first + k + got, buf + got * PS);
            if (rc == 0)
                got++;
        }
        if (got) {
            m->length = got * PS;
            m->data = buf;
            m->release = supply_release;
            m->access = VM_PROT_NONE;
            atomic_fetch_add(&dp->pages_in, got);
            send_kernel(o, msg, m);
        } else {
            free(buf);
            free(m);
        }
        k += got;
        if (rc < 0) {
            atomic_fetch_add(&dp->io_errors, 1);
            reply(o, msg, MO_DATA_ERROR, (first + k) * PS, PS, 0, rc == -ENODATA ? EIO : -rc);
            k++;
        }
    }
}

/* An asynchronous read ended: on the area's completion side. */
static void
read_done(struct swp_area_read *rd, int rc)
{
    struct dp_ret *r = rd->arg;
    struct dp_object *o = r->o;

    pthread_mutex_lock(&o->qlock);
    if (rc < 0 && r->rd_rc == 0)
        r->rd_rc = rc;
    int last = --r->pending == 0 && !r->submitting;
    pthread_cond_broadcast(&o->qcond);
    pthread_mutex_unlock(&o->qlock);
    if (last)
        fifo_run(o);
}

static void
read_supply_release(struct emm_msg *msg, int status)
{
    struct swp_dpager *dp = msg->release_ctx;
    atomic_fetch_sub(&dp->read_bytes, msg->length);
    supply_release(msg, status);
}

/* The supply of a read that ended (in o's order): the pages as read, or, when
 * a run did not read back whole (a CRC or descriptor mismatch, an I/O
 * error), the same pages read one by one so each error names its page. */
static void
read_finish(struct dp_ret *r)
{
    struct dp_object *o = r->o;
    struct swp_dpager *dp = o->dp;

    struct emm_msg *m = r->rd_rc < 0 ? NULL : emm_msg_new(MO_DATA_SUPPLY, r->rd_index * PS, 0);
    if (m == NULL) {
        free(r->rd_buf);
        atomic_fetch_sub(&dp->read_bytes, (uint64_t)r->rd_n * PS);
        if (r->rd_rc < 0)
            supply_run(o, r->msg, r->rd_index, r->rd_n);
        else
            reply(o, r->msg, MO_DATA_ERROR, r->rd_index * PS, r->rd_n * PS, 0, ENOMEM);
        return;
    }
    m->length = r->rd_n * PS;
    m->data = r->rd_buf;
    m->release = read_supply_release;
    m->release_ctx = dp;
    m->access = VM_PROT_NONE;
    atomic_fetch_add(&dp->pages_in, r->rd_n);
    send_kernel(o, r->msg, m);
}

/* A data_request whose pages are all held, in at most DP_RUNS runs of
 * consecutive slots (a clustered pageout wrote them so; read-around asks for
 * such pages): read asynchronously, a run per I/O, and supplied in o's
 * order, so the next request's reads are already on their way. 1 if taken,
 * 0 if the request is not such a one (the synchronous path answers it). */
static int
read_async(struct dp_object *o, struct emm_msg *msg)
{
    struct swp_dpager *dp = o->dp;
    uint64_t first = msg->offset / PS, n = msg->length / PS, gs[DP_RUNS], len[DP_RUNS], g;
    unsigned runs = 0;

    if (n == 0 || n > SWP_WRITE_MAX || msg->length % PS)
        return 0;
    for (uint64_t i = 0; i < n; i++) {
        if (swp_map_lookup(o->map, first + i, &g) < 0)
            return 0;
        if (runs > 0 && g == gs[runs - 1] + len[runs - 1]) {
            len[runs - 1]++;
            continue;
        }
        if (runs == DP_RUNS)
            return 0;
        gs[runs] = g;
        len[runs++] = 1;
    }
    if (atomic_fetch_add(&dp->read_bytes, n * PS) + n * PS > DP_READ_BYTES_MAX) {
        atomic_fetch_sub(&dp->read_bytes, n * PS);
        return 0;
    }
    void *buf = aligned_alloc(PS, n * PS);
    if (buf == NULL) {
        atomic_fetch_sub(&dp->read_bytes, n * PS);
        return 0;
    }
    struct dp_ret *r = rec_get(dp);
    *r = (struct dp_ret){.o = o, .msg = msg, .kind = DP_RET_READ, .submitting = 1,
                         .rd_index = first, .rd_n = (unsigned)n, .rd_buf = buf};
    fifo_append(o, r);
    uint64_t at = 0;
    for (unsigned k = 0; k < runs; k++) {
        struct swp_area_read *rd = &r->rd[k];
        *rd = (struct swp_area_read){.first = GS_SLOT(gs[k]), .n = (unsigned)len[k],
                                     .obj = o->key, .index = first + at,
                                     .buf = (char *)buf + at * PS, .done = read_done,
                                     .arg = r};
        pthread_mutex_lock(&o->qlock);
        r->pending++;
        pthread_mutex_unlock(&o->qlock);
        int rc = swp_area_read_async(dp->areas[GS_AREA(gs[k])].area, rd);
        if (rc < 0) { /* the synchronous path reads the pages again, in order */
            pthread_mutex_lock(&o->qlock);
            r->pending--;
            if (r->rd_rc == 0)
                r->rd_rc = rc;
            pthread_mutex_unlock(&o->qlock);
            break;
        }
        atomic_fetch_add(&dp->read_ios, 1);
        at += len[k];
    }
    pthread_mutex_lock(&o->qlock);
    r->submitting = 0;
    pthread_mutex_unlock(&o->qlock);
    fifo_run(o);
    return 1;
}

/* One reply per run: supply what is held; data_unavailable for the rest, which
 * for a persistent key says "not held": the kernel asks the object's pager. */
static void
do_data_request(struct dp_object *o, const struct emm_msg *msg)
{
    uint64_t first = msg->offset / PS, n = msg->length / PS, i = 0, gs;
    uint32_t missing = (o->key & VM_DP_TEMPORARY) ? 0 : MO_F_NOT_HELD;

    while (i < n) {
        int held = swp_map_lookup(o->map, first + i, &gs) == 0;
        uint64_t j = i + 1;
        while (j < n && (swp_map_lookup(o->map, first + j, &gs) == 0) == held)
            j++;
        if (held)
            supply_run(o, msg, first + i, j - i);
        else
            reply(o, msg, MO_DATA_UNAVAILABLE, (first + i) * PS, (j - i) * PS, missing, 0);
        i = j;
    }
}

/* ---- discard, terminate, synchronize ---------------------------------------------- */

struct collect {
    uint64_t first, end, n;
    uint64_t (*v)[2]; /* index, slot */
};

static int
collect_fn(void *arg, uint64_t index, uint64_t slot)
{
    struct collect *c = arg;

    if (index >= c->end)
        return 1;
    if (index >= c->first) {
        c->v[c->n][0] = index;
        c->v[c->n][1] = slot;
        c->n++;
    }
    return 0;
}

/* Drops the pages held in [first, end): out of the map first, then their
 * descriptors cleared and slots freed. Returns how many. */
static uint64_t
drop_range(struct dp_object *o, uint64_t first, uint64_t end)
{
    struct swp_dpager *dp = o->dp;
    uint64_t count = swp_map_count(o->map), gs;
    struct collect c = {.first = first, .end = end};

    if (count == 0 || first >= end)
        return 0;
    if (end - first <= DROP_LOOKUP_MAX) {
        for (uint64_t i = first; i < end; i++) {
            if (swp_map_lookup(o->map, i, &gs) < 0)
                continue;
            pthread_mutex_lock(&o->lock);
            swp_map_remove(o->map, i, NULL);
            atomic_store(&o->pages, swp_map_count(o->map));
            pthread_mutex_unlock(&o->lock);
            o->touched |= 1ull << GS_AREA(gs);
            slot_release(dp, gs);
            c.n++;
        }
        return c.n;
    }
    c.v = malloc(count * sizeof(*c.v));
    if (!c.v || swp_map_iterate(o->map, collect_fn, &c) < 0) {
        emm_err("default pager: object %#llx: dropping pages %llu..%llu: out of memory",
                (unsigned long long)o->key, (unsigned long long)first,
                (unsigned long long)end - 1);
        free(c.v);
        return 0;
    }
    pthread_mutex_lock(&o->lock);
    for (uint64_t i = 0; i < c.n; i++)
        swp_map_remove(o->map, c.v[i][0], NULL);
    atomic_store(&o->pages, swp_map_count(o->map));
    pthread_mutex_unlock(&o->lock);
    for (uint64_t i = 0; i < c.n; i++) {
        o->touched |= 1ull << GS_AREA(c.v[i][1]);
        slot_release(dp, c.v[i][1]);
    }
    free(c.v);
    return c.n;
}

/* fdatasync of every area this object wrote since the last synchronize; the
 * result also reports a data_return refused since then. */
static int
do_synchronize(struct dp_object *o)
{
    struct swp_dpager *dp = o->dp;
    int rc = o->write_error;

    for (size_t i = 0; i < dp->nareas; i++) {
        if (!(o->touched & (1ull << i)))
            continue;
        int r = swp_area_sync(dp->areas[i].area);
        if (r == 0)
            o->touched &= ~(1ull << i);
        else if (rc == 0)
            rc = r;
    }
    o->write_error = 0;
    return rc;
}

static uint64_t dp_next_page(void *ctx, void *handle, uint64_t from);

/* MO_DATA_QUERY (emm extension): the first run of pages held in [from,
 * from+span), answered with query_reply. The kernel asks its own queries
 * (vm_dpager.h) for objects it double-pages; this answers a kernel that
 * treats the default pager as any other pager (temporary objects). */
static void
do_data_query(struct dp_object *o, const struct emm_msg *msg)
{
    uint64_t from = msg->offset / PS, n = msg->length / PS, gs;
    uint64_t end = msg->length == UINT64_MAX || n > UINT64_MAX - from ? UINT64_MAX : from + n;
    uint64_t d, h;
    if (msg->flags & MO_F_QUERY_COUNT) {
        reply(o, msg, MO_QUERY_REPLY, 0, atomic_load(&o->pages) * PS, MO_F_QUERY_COUNT, msg->arg);
        return;
    }
    d = dp_next_page(NULL, o, from);
    if (d >= end) {
        reply(o, msg, MO_QUERY_REPLY, UINT64_MAX, 0, 0, msg->arg);
        return;
    }
    pthread_mutex_lock(&o->lock);
    for (h = d + 1; h < end && swp_map_lookup(o->map, h, &gs) == 0; h++)
        ;
    pthread_mutex_unlock(&o->lock);
    reply(o, msg, MO_QUERY_REPLY, d * PS, h - d > UINT64_MAX / PS ? UINT64_MAX : (h - d) * PS, 0,
          msg->arg);
}

/* ---- the port handler ---------------------------------------------------------------- */

static void
dp_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct dp_object *o = emm_port_context(port);
    struct swp_dpager *dp = o->dp;
    int status = 0, reap = 0;

    if (msg->id == MO_DATA_RETURN) {
        do_data_return(o, msg); /* answered and released when written */
        return;
    }
    if (msg->id == MO_DATA_REQUEST) {
        obj_drain_writes(o); /* the map holds every earlier data_return */
        if (read_async(o, msg))
            return; /* supplied and released when read, in order */
    }
    obj_drain(o); /* what follows sees every earlier message answered */
    switch (msg->id) {
    case MO_INIT:
        if (o->control)
            emm_port_unref(o->control);
        o->control = emm_port_take(&msg->control);
        reply(o, msg, MO_READY, 0, 0, MO_F_MAY_CACHE | MO_F_CLUSTER_OK, MO_COPY_DELAY);
        break;
    case MO_DATA_REQUEST:
        do_data_request(o, msg);
        break;
    case MO_DATA_QUERY:
        do_data_query(o, msg);
        break;
    case MO_DATA_UNLOCK: /* grant everything, as pager_std does */
        reply(o, msg, MO_LOCK_REQUEST, msg->offset, msg->length, 0, MO_RETURN_NONE);
        break;
    case MO_SYNCHRONIZE:
        reply(o, msg, MO_SYNCHRONIZE_COMPLETED, msg->offset, msg->length, 0, -do_synchronize(o));
        break;
    case MO_DISCARD: {
        uint64_t first = msg->offset / PS, n = msg->length / PS;
        uint64_t end = msg->length == UINT64_MAX || n > UINT64_MAX - first ? UINT64_MAX
                                                                          : first + n;
        atomic_fetch_add(&dp->discards, drop_range(o, first, end));
        reap = 1;
        break;
    }
    case MO_TERMINATE:
        /* temporary pages die with their object; a persistent key's wait for replay */
        if (o->key & VM_DP_TEMPORARY)
            drop_range(o, 0, UINT64_MAX);
        if (o->control) {
            emm_port_unref(o->control);
            o->control = NULL;
        }
        reap = 1;
        break;
    case DP_MSG_REAP:
        reap = 1;
        break;
    case MO_LOCK_COMPLETED:
    case MO_SUPPLY_COMPLETED:
    case MO_CHANGE_COMPLETED:
        break;
    default:
        emm_warn("default pager: object %#llx: unexpected %s (%u)", (unsigned long long)o->key,
                 emm_msg_name(msg->id), msg->id);
        break;
    }
    emm_msg_release(msg, status);
    if (reap)
        obj_reap(o);
}

/* ---- the kernel's interface ------------------------------------------------------------- */

static int
dp_attach(void *ctx, uint64_t key, struct emm_port **port, void **handle)
{
    struct swp_dpager *dp = ctx;
    struct dp_object *o;
    int rc;

    pthread_mutex_lock(&dp->lock);
    rc = obj_get(dp, key, &o);
    if (rc == 0 && !o->port) {
        rc = emm_port_create("default-pager", dp_handler, o, dp->set, &o->port);
        if (rc < 0 && obj_unlink_unused(dp, o))
            obj_free(o);
    }
    if (rc == 0) {
        o->attached++;
        *port = emm_port_ref(o->port);
        *handle = o;
    }
    pthread_mutex_unlock(&dp->lock);
    return rc;
}

static void
dp_detach(void *ctx, void *handle)
{
    struct swp_dpager *dp = ctx;
    struct dp_object *o = handle;
    struct emm_port *port = NULL;

    pthread_mutex_lock(&dp->lock);
    if (--o->attached == 0)
        port = emm_port_ref(o->port); /* o may be freed once the lock is dropped */
    pthread_mutex_unlock(&dp->lock);
    if (!port)
        return;
    /* Behind whatever the kernel sent: the handler frees o if it is unused. */
    struct emm_msg *m = emm_msg_new(DP_MSG_REAP, 0, 0);
    if (m && emm_port_send(port, m) < 0)
        emm_msg_release(m, -EPIPE);
    emm_port_unref(port);
}

static uint64_t
dp_pages(void *ctx, void *handle)
{
    (void)ctx;
    return atomic_load(&((struct dp_object *)handle)->pages);
}

struct seek {
    uint64_t from, found;
};

static int
seek_fn(void *arg, uint64_t index, uint64_t slot)
{
    struct seek *s = arg;

    (void)slot;
    if (index < s->from)
        return 0;
    s->found = index;
    return 1;
}

/* SEEK_PROBES lookups first (the kernel asks about runs of up to 256 pages, and
 * they allocate nothing), then one ordered walk of the map (slot_map has no seek). */
static uint64_t
dp_next_page(void *ctx, void *handle, uint64_t from)
{
    struct dp_object *o = handle;
    uint64_t last = from > UINT64_MAX - SEEK_PROBES ? UINT64_MAX : from + SEEK_PROBES - 1, gs;
    struct seek s = {.from = last + 1, .found = UINT64_MAX};

    (void)ctx;
    if (atomic_load(&o->pages) == 0)
        return UINT64_MAX;
    pthread_mutex_lock(&o->lock);
    for (uint64_t i = from; s.found == UINT64_MAX; i++) {
        if (swp_map_lookup(o->map, i, &gs) == 0)
            s.found = i;
        if (i == last)
            break;
    }
    /* Out of memory: claim a page; asking for it is harmless, missing one is not. */
    if (s.found == UINT64_MAX && last != UINT64_MAX && swp_map_iterate(o->map, seek_fn, &s) < 0)
        s.found = s.from;
    pthread_mutex_unlock(&o->lock);
    return s.found;
}

static int
dp_holds(void *ctx, void *handle, uint64_t index)
{
    struct dp_object *o = handle;
    uint64_t slot;
    (void)ctx;
    if (atomic_load(&o->pages) == 0)
        return 0;
    pthread_mutex_lock(&o->lock);
    int held = swp_map_lookup(o->map, index, &slot) == 0;
    pthread_mutex_unlock(&o->lock);
    return held;
}

void
swp_dp_vm_ops(struct swp_dpager *dp, struct vm_dpager_ops *ops, void **ctx)
{
    *ops = (struct vm_dpager_ops){.attach = dp_attach,
                                  .detach = dp_detach,
                                  .pages = dp_pages,
                                  .holds = dp_holds,
                                  .next_page = dp_next_page};
    *ctx = dp;
}

/* ---- opening and merging the areas ------------------------------------------------------- */

static int area_fail(char *err, size_t errlen, const char *cfg_path,
                     const struct swp_dp_area_config *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int
area_fail(char *err, size_t errlen, const char *cfg_path, const struct swp_dp_area_config *c,
          int rc, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "%s:%d: swap %s: ", cfg_path, c->line, c->path);

    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Formats a missing area that has a size; refuses anything but an emm swap area. */
static int
area_open(struct swp_dpager *dp, size_t i, const struct swp_dp_area_config *c,
          const char *cfg_path, char *err, size_t errlen)
{
    struct dp_area *a = &dp->areas[i];
    struct stat st;
    int rc, fd = open(c->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT && c->size > 0) {
        emm_notice("swap %s: creating a swap area of %llu bytes", c->path,
                   (unsigned long long)c->size);
        rc = swp_area_format(c->path, c->size, NULL, 0, NULL);
        if (rc < 0)
            return area_fail(err, errlen, cfg_path, c, rc, "cannot create it: %s", strerror(-rc));
    } else if (fd < 0) {
        rc = -errno;
        return area_fail(err, errlen, cfg_path, c, rc, "%s",
                         rc == -ENOENT ? "does not exist (give a size to create it)"
                                       : strerror(-rc));
    } else {
        const char *sig = NULL;
        rc = fstat(fd, &st) < 0 ? -errno : 0;
        if (rc == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
            rc = -ENOTBLK;
        if (rc == 0)
            sig = swp_area_probe(fd, NULL);
        close(fd);
        if (rc < 0)
            return area_fail(err, errlen, cfg_path, c, rc, "%s",
                             rc == -ENOTBLK ? "not a regular file or a block device"
                                            : strerror(-rc));
        if (!sig || strcmp(sig, "emm swap area") != 0)
            return area_fail(err, errlen, cfg_path, c, -EINVAL,
                             "not an emm swap area (found %s); format it with emmswap format",
                             sig ? sig : "no known signature");
    }
    rc = swp_area_open(c->path, 0, &a->area);
    if (rc < 0)
        return area_fail(err, errlen, cfg_path, c, rc, "cannot open it: %s", strerror(-rc));
    const struct swp_area_info *in = swp_area_info(a->area);
    if (c->size && c->size / PS != in->size_pages)
        emm_notice("%s:%d: swap %s: the area holds %llu bytes, not the %llu configured; using it "
                   "as it is (emmswap format resizes it, losing its pages)", cfg_path, c->line,
                   c->path, (unsigned long long)(in->size_pages * PS),
                   (unsigned long long)c->size);
    a->priority = c->priority;
    rc = swp_alloc_create(in->nslots, &a->alloc);
    if (rc < 0)
        return area_fail(err, errlen, cfg_path, c, rc, "%s", strerror(-rc));
    return 0;
}

struct merge {
    struct swp_dpager *dp;
    size_t ai;
    struct dp_object *o;
    uint64_t temporary, stale;
};

static uint64_t
desc_gen(struct swp_dpager *dp, uint64_t gs)
{
    struct swp_desc d;
    return swp_area_read_desc(dp->areas[GS_AREA(gs)].area, GS_SLOT(gs), &d) < 0 ? 0 : d.gen;
}

/* A page into the global table; the same page in two areas (a rewrite cut by a
 * crash) keeps the higher generation. */
static int
merge_page(void *arg, uint64_t index, uint64_t slot)
{
    struct merge *mg = arg;
    uint64_t gs = GS_MAKE(mg->ai, slot), old, loser = gs;
    int rc = swp_map_insert(mg->o->map, index, gs, &old);

    if (rc < 0 || old == SWP_NO_SLOT)
        return rc;
    if (desc_gen(mg->dp, gs) > desc_gen(mg->dp, old))
        loser = old;
    else
        swp_map_insert(mg->o->map, index, old, NULL); /* its leaf exists: cannot fail */
    mg->stale++;
    slot_release(mg->dp, loser);
    return 0;
}

static int
drop_temporary(void *arg, uint64_t index, uint64_t slot)
{
    struct merge *mg = arg;

    (void)index;
    mg->temporary++;
    slot_release(mg->dp, GS_MAKE(mg->ai, slot));
    return 0;
}

static int
merge_object(void *arg, uint64_t key, struct swp_map *map)
{
    struct merge *mg = arg;
    int rc;

    if (key & VM_DP_TEMPORARY) /* died with the service that wrote it */
        return swp_map_iterate(map, drop_temporary, mg);
    if ((rc = obj_get(mg->dp, key, &mg->o)) < 0)
        return rc;
    rc = swp_map_iterate(map, merge_page, mg);
    atomic_store(&mg->o->pages, swp_map_count(mg->o->map));
    return rc;
}

static int
area_recover(struct swp_dpager *dp, size_t ai)
{
    struct dp_area *a = &dp->areas[ai];
    const struct swp_area_info *in = swp_area_info(a->area);
    struct merge mg = {.dp = dp, .ai = ai};
    struct swp_recover_stats st;
    struct swp_index *ix = NULL;
    int rc = swp_index_create(&ix);

    if (rc == 0)
        rc = swp_index_recover(a->area, a->alloc, ix, &st);
    if (rc == 0)
        rc = swp_index_iterate(ix, merge_object, &mg);
    swp_index_destroy(ix);
    if (rc == 0)
        emm_info("swap %s: %llu slots, %llu used, %llu pages recovered (%llu temporary dropped, "
                 "%llu stale, %llu torn), io %s, priority %d", in->path,
                 (unsigned long long)in->nslots, (unsigned long long)swp_alloc_used(a->alloc),
                 (unsigned long long)st.used, (unsigned long long)mg.temporary,
                 (unsigned long long)(st.stale + mg.stale), (unsigned long long)st.torn,
                 in->direct ? "direct" : "buffered", a->priority);
    return rc;
}

/* clean: close the areas in order; else leave them marked in use, so the next
 * open checks them again (a failed start may not have recovered them). */
static void
dp_free(struct swp_dpager *dp, int clean)
{
    if (dp->set)
        emm_portset_destroy(dp->set);
    /* The handlers are gone; writes they started end now (their answers go to
     * a kernel that may be gone: released with an error). */
    for (size_t i = 0; dp->areas && i < dp->nareas; i++)
        if (dp->areas[i].area)
            swp_area_drain(dp->areas[i].area);
    if (dp->nareas)
        emm_info("default pager: %llu pages out in %llu writes, %llu pages in in %llu reads",
                 (unsigned long long)atomic_load(&dp->pages_out),
                 (unsigned long long)atomic_load(&dp->write_ios),
                 (unsigned long long)atomic_load(&dp->pages_in),
                 (unsigned long long)atomic_load(&dp->read_ios));
    tdestroy(dp->objects, obj_free); /* queued messages are released with -EPIPE */
    for (size_t i = 0; dp->areas && i < dp->nareas; i++) {
        struct swp_io *q = dp->areas[i].area ? swp_area_io(dp->areas[i].area) : NULL;
        if (q) {
            struct swp_io_stats st;
            uint64_t groups, pages;
            swp_io_stats(q, &st);
            swp_area_commit_stats(dp->areas[i].area, &groups, &pages);
            emm_info("swap %s: %s: %llu I/Os (%llu MiB), %llu short, %llu failed, at most %llu "
                     "in flight; %llu descriptor pages written by %llu group commits",
                     swp_area_info(dp->areas[i].area)->path, swp_io_engine(q),
                     (unsigned long long)st.completed, (unsigned long long)(st.bytes >> 20),
                     (unsigned long long)st.shorts, (unsigned long long)st.errors,
                     (unsigned long long)st.max_in_flight, (unsigned long long)pages,
                     (unsigned long long)groups);
        }
        if (clean)
            swp_area_close(dp->areas[i].area);
        else
            swp_area_abandon(dp->areas[i].area);
        swp_alloc_destroy(dp->areas[i].alloc);
    }
    free(dp->areas);
    for (struct dp_route *rt = atomic_load(&dp->route), *next; rt; rt = next) {
        next = rt->older;
        free(rt);
    }
    free(dp->recs);
    pthread_mutex_destroy(&dp->rec_lock);
    pthread_cond_destroy(&dp->rec_cond);
    pthread_mutex_destroy(&dp->add_lock);
    pthread_mutex_destroy(&dp->lock);
    free(dp);
}

/* The route over areas[0..n): by priority, highest first (stable), cut into
 * groups of equals. Published by the caller. */
static struct dp_route *
make_route(struct swp_dpager *dp, size_t n)
{
    struct dp_route *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        for (; j > 0 && dp->areas[rt->order[j - 1]].priority < dp->areas[i].priority; j--)
            rt->order[j] = rt->order[j - 1];
        rt->order[j] = i;
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || dp->areas[rt->order[i]].priority != dp->areas[rt->order[i - 1]].priority)
            rt->groups[rt->ngroups++].first = i;
        rt->groups[rt->ngroups - 1].n++;
    }
    return rt;
}

int
swp_dp_create(const struct swp_dp_area_config *areas, size_t n, unsigned threads,
              unsigned spin_us, const char *cfg_path, struct swp_dpager **out, char *err,
              size_t errlen)
{
    struct swp_dpager *dp;
    uint64_t gen = 1;
    int rc;

    *out = NULL;
    if (n > SWP_DP_MAX_AREAS) {
        snprintf(err, errlen, "%s: %zu swap areas, at most %u", cfg_path, n, SWP_DP_MAX_AREAS);
        return -EINVAL;
    }
    dp = calloc(1, sizeof(*dp));
    if (!dp) {
        snprintf(err, errlen, "%s: default pager: out of memory", cfg_path);
        return -ENOMEM;
    }
    pthread_mutex_init(&dp->lock, NULL);
    pthread_mutex_init(&dp->add_lock, NULL);
    pthread_mutex_init(&dp->rec_lock, NULL);
    pthread_cond_init(&dp->rec_cond, NULL);
    dp->areas = calloc(SWP_DP_MAX_AREAS, sizeof(*dp->areas));
    dp->nrecs = DP_RECS;
    dp->recs = calloc(dp->nrecs, sizeof(*dp->recs));
    STAILQ_INIT(&dp->rec_free);
    for (unsigned i = 0; dp->recs && i < dp->nrecs; i++)
        STAILQ_INSERT_HEAD(&dp->rec_free, &dp->recs[i], link);
    if (!dp->areas || !dp->recs) {
        snprintf(err, errlen, "%s: default pager: out of memory", cfg_path);
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rc = area_open(dp, i, &areas[i], cfg_path, err, errlen);
        dp->nareas += dp->areas[i].area != NULL;
        if (rc == 0 && (rc = area_recover(dp, i)) < 0)
            area_fail(err, errlen, cfg_path, &areas[i], rc, "recovery failed: %s",
                      strerror(-rc));
        if (rc < 0)
            goto fail;
        uint64_t g = swp_area_next_gen(dp->areas[i].area);
        gen = g > gen ? g : gen;
    }
    atomic_init(&dp->gen, gen);
    struct dp_route *rt = make_route(dp, dp->nareas);
    if (rt == NULL) {
        snprintf(err, errlen, "%s: default pager: out of memory", cfg_path);
        rc = -ENOMEM;
        goto fail;
    }
    atomic_init(&dp->route, rt);
    rc = emm_portset_create("default-pager", threads ? threads : 1, spin_us, &dp->set);
    if (rc < 0) {
        snprintf(err, errlen, "%s: default pager threads: %s", cfg_path, strerror(-rc));
        goto fail;
    }
    *out = dp;
    return 0;
fail:
    dp_free(dp, 0);
    return rc;
}

int
swp_dp_add_area(struct swp_dpager *dp, const struct swp_dp_area_config *c, const char *cfg_path,
                char *err, size_t errlen)
{
    pthread_mutex_lock(&dp->add_lock);
    size_t i = atomic_load(&dp->nareas);
    int rc = 0;
    if (i >= SWP_DP_MAX_AREAS) {
        rc = area_fail(err, errlen, cfg_path, c, -ENOSPC, "%u swap areas already, the most",
                       SWP_DP_MAX_AREAS);
        goto out;
    }
    for (size_t k = 0; k < i; k++)
        if (strcmp(swp_area_info(dp->areas[k].area)->path, c->path) == 0) {
            rc = area_fail(err, errlen, cfg_path, c, -EEXIST, "already in use");
            goto out;
        }
    struct dp_area *a = &dp->areas[i];
    memset(a, 0, sizeof(*a));
    rc = area_open(dp, i, c, cfg_path, err, errlen);
    struct swp_recover_stats st = {0};
    struct swp_index *ix = NULL;
    if (rc == 0 && (rc = swp_index_create(&ix)) == 0)
        rc = swp_index_recover(a->area, a->alloc, ix, &st);
    swp_index_destroy(ix);
    if (rc < 0) {
        if (a->area != NULL)
            area_fail(err, errlen, cfg_path, c, rc, "recovery failed: %s", strerror(-rc));
    } else if (swp_alloc_used(a->alloc) > 0) {
        /* Its pages would have to be merged into objects that are live: only
         * a start does that (area_recover). */
        rc = area_fail(err, errlen, cfg_path, c, -EBUSY,
                       "holds %llu used slots: only an empty area can be added while "
                       "running (restart emmd, or emmswap format it)",
                       (unsigned long long)swp_alloc_used(a->alloc));
    }
    struct dp_route *rt = NULL;
    if (rc == 0 && (rt = make_route(dp, i + 1)) == NULL)
        rc = area_fail(err, errlen, cfg_path, c, -ENOMEM, "out of memory");
    if (rc < 0) {
        if (a->area != NULL)
            swp_area_close(a->area);
        swp_alloc_destroy(a->alloc);
        memset(a, 0, sizeof(*a));
        goto out;
    }
    uint64_t g = swp_area_next_gen(a->area), cur = atomic_load(&dp->gen);
    while (g > cur && !atomic_compare_exchange_weak(&dp->gen, &cur, g))
        ;
    /* Counted first (sync and stats see it), then routed to: a slot of area i
     * is handed out only after it is counted. */
    atomic_store_explicit(&dp->nareas, i + 1, memory_order_release);
    rt->older = atomic_load(&dp->route);
    atomic_store_explicit(&dp->route, rt, memory_order_release);
    const struct swp_area_info *in = swp_area_info(a->area);
    emm_notice("swap %s: added while running: %llu slots, io %s, priority %d", in->path,
               (unsigned long long)in->nslots, in->direct ? "direct" : "buffered", a->priority);
out:
    pthread_mutex_unlock(&dp->add_lock);
    return rc;
}

void
swp_dp_destroy(struct swp_dpager *dp)
{
    if (dp)
        dp_free(dp, 1);
}

/* ---- walks and stats ------------------------------------------------------------------------ */

struct walk {
    uint64_t (*v)[2]; /* key, pages */
    size_t n;
};

static void
walk_fn(const void *node, VISIT which, void *arg)
{
    const struct dp_object *o = *(struct dp_object *const *)node;
    struct walk *w = arg;
    uint64_t pages = atomic_load(&o->pages);

    if ((which == postorder || which == leaf) && !(o->key & VM_DP_TEMPORARY) && pages) {
        w->v[w->n][0] = o->key;
        w->v[w->n][1] = pages;
        w->n++;
    }
}

int
swp_dp_foreach_object(struct swp_dpager *dp, int (*fn)(void *arg, uint64_t key, uint64_t pages),
                      void *arg)
{
    struct walk w = {0};
    int rc = 0;

    /* Gathered first: fn runs without dp->lock, so it may attach. */
    pthread_mutex_lock(&dp->lock);
    w.v = dp->nobjects ? malloc(dp->nobjects * sizeof(*w.v)) : NULL;
    if (w.v)
        twalk_r(dp->objects, walk_fn, &w);
    else if (dp->nobjects)
        rc = -ENOMEM;
    pthread_mutex_unlock(&dp->lock);
    for (size_t i = 0; i < w.n && rc == 0; i++)
        rc = fn(arg, w.v[i][0], w.v[i][1]);
    free(w.v);
    return rc;
}

void
swp_dp_stats(struct swp_dpager *dp, struct swp_dp_stats *out)
{
    *out = (struct swp_dp_stats){
        .pages_out = atomic_load(&dp->pages_out),
        .pages_in = atomic_load(&dp->pages_in),
        .write_errors = atomic_load(&dp->write_errors),
        .full_errors = atomic_load(&dp->full_errors),
        .io_errors = atomic_load(&dp->io_errors),
        .discards = atomic_load(&dp->discards),
        .write_ios = atomic_load(&dp->write_ios),
        .read_ios = atomic_load(&dp->read_ios),
    };
    pthread_mutex_lock(&dp->lock);
    out->objects = dp->nobjects;
    pthread_mutex_unlock(&dp->lock);
    for (size_t i = 0; i < dp->nareas; i++) {
        out->slots_total += swp_alloc_total(dp->areas[i].alloc);
        out->slots_used += swp_alloc_used(dp->areas[i].alloc);
    }
}

struct swp_io *
swp_dp_area_io(struct swp_dpager *dp, size_t i)
{
    return i < atomic_load(&dp->nareas) ? swp_area_io(dp->areas[i].area) : NULL;
}

int
swp_dp_area_stat(struct swp_dpager *dp, size_t i, struct swp_dp_area_stat *out)
{
    if (i >= dp->nareas)
        return -ENOENT;
    const struct dp_area *a = &dp->areas[i];
    const struct swp_area_info *in = swp_area_info(a->area);
    *out = (struct swp_dp_area_stat){
        .path = in->path,
        .priority = a->priority,
        .slots_total = swp_alloc_total(a->alloc),
        .slots_used = swp_alloc_used(a->alloc),
        .direct = in->direct,
        .blkdev = in->blkdev,
    };
    return 0;
}
