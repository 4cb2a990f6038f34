/*
 * vm_object.c - memory objects on the kernel side: the page table, the fault
 * (read) and write paths, synchronize, punch and terminate, and the handlers of
 * every pager -> kernel message arriving on an object's control port.
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
void
vm_obj_remove_page(struct vm_object *obj, struct vm_page *p)
{
    struct vm_page **pp = &obj->buckets[hash_index(p->index, obj->nbuckets)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    obj->nresident--;
    if (p->state == VM_PAGE_ABSENT)
        obj->nabsent--;
    page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
    p->flags = 0;
    vm_pool_free(&obj->kernel->pool, p);
}

/* Drops a page now, or when its last reply unwires it. A page still being paged
 * in is marked: the stale data the pager sends for it is replaced by zeros. */
static void
page_discard(struct vm_object *obj, struct vm_page *p)
{
    if (p->state == VM_PAGE_ABSENT) {
        p->flags |= VM_PG_DISCARDED;
        return;
    }
    if (p->state == VM_PAGE_LAUNDRY || p->wire > 0) {
        page_flags(obj, p, VM_PG_EVICT, VM_PG_DIRTY | VM_PG_REDIRTY);
        return;
    }
    vm_obj_remove_page(obj, p);
}

/* ---- batches ---------------------------------------------------------- */

static void
batch_msg(struct vm_batch *b, struct emm_msg *m)
{
    m->next = NULL;
    if (b->msgs_tail != NULL)
        b->msgs_tail->next = m;
    else
        b->msgs = m;
    b->msgs_tail = m;
}

static struct emm_msg *
kmsg(struct vm_object *obj, uint32_t id, uint64_t off, uint64_t len)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    if (m != NULL)
        m->control = emm_port_ref(obj->control);
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

void
vm_batch_flush(struct vm_object *obj, struct vm_batch *b)
{
    struct emm_msg *m = b->msgs;
    b->msgs = b->msgs_tail = NULL;
    if (atomic_load(&obj->return_clusters))
        cluster_returns(m);
    while (m != NULL) {
        struct emm_msg *next = m->next;
        uint32_t id = m->id;
        if (emm_port_send(obj->pager, m) < 0) {
            emm_warn("object %llu: pager gone, %s not delivered", (unsigned long long)obj->id,
                     emm_msg_name(id));
            emm_msg_release(m, -EPIPE);
        }
        m = next;
    }
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

int
vm_object_create(struct vm_kernel *k, uint64_t id, uint64_t size, struct emm_port *pager_port,
                 void *owner, struct vm_object **out)
{
    struct vm_object *obj = calloc(1, sizeof(*obj));
    if (obj == NULL)
        return -ENOMEM;
    obj->nbuckets = 64;
    obj->buckets = calloc(obj->nbuckets, sizeof(*obj->buckets));
    if (obj->buckets == NULL) {
        free(obj);
        return -ENOMEM;
    }
    pthread_mutex_init(&obj->lock, NULL);
    atomic_init(&obj->refs, 1);
    obj->kernel = k;
    obj->id = id;
    obj->size = size;
    obj->owner = owner;
    obj->state = VM_OBJ_INIT;
    obj->pager = pager_port;
    int rc = emm_port_create("control", control_handler, obj, NULL, &obj->control);
    if (rc == 0)
        rc = emm_port_create("name", NULL, obj, NULL, &obj->name);
    struct emm_msg *m = rc == 0 ? emm_msg_new(MO_INIT, 0, 0) : NULL;
    if (m == NULL) {
        if (obj->control)
            emm_port_destroy(obj->control);
        emm_port_unref(pager_port);
        free(obj->buckets);
        free(obj);
        return rc ? rc : -ENOMEM;
    }
    /* Mach: init returns at once; faults wait for ready. */
    m->control = emm_port_ref(obj->control);
    m->name = emm_port_ref(obj->name);
    m->arg = (int32_t)EMM_PAGE_SIZE;
    if (emm_port_send(obj->pager, m) < 0) {
        emm_msg_release(m, -EPIPE);
        obj->state = VM_OBJ_DEAD;
        obj->error = EIO;
    }
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
    if (need > obj->need_frames)
        obj->need_frames = need;
    atomic_fetch_add(&obj->kernel->stats.frame_waits, 1);
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
        ready = 0;
        struct vm_page *frames[256];
        unsigned want = (unsigned)(run - idx);
        unsigned got = vm_pool_alloc(&k->pool, frames, want);
        if (got < want)
            starve(obj, 1); /* a read progresses with any frame */
        if (got == 0)
            return 0;
        struct emm_msg *m = kmsg(obj, MO_DATA_REQUEST, idx * VM_PS, got * VM_PS);
        if (m == NULL) {
            for (unsigned i = 0; i < got; i++)
                vm_pool_free(&k->pool, frames[i]);
            return 0;
        }
        m->access = access;
        for (unsigned i = 0; i < got; i++)
            page_insert(obj, frames[i], idx + i, VM_PAGE_ABSENT);
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
        return -(obj->error ? obj->error : EIO);
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
        p->flags |= VM_PG_REFERENCED;
        io->wired[io->nwired++] = p;
    }
    return 1;
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
        if (p->state == VM_PAGE_ABSENT || p->state == VM_PAGE_LAUNDRY) {
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
    if (need > 0) {
        unsigned got = vm_pool_alloc(&k->pool, frames, need);
        if (got < need) {
            for (unsigned i = 0; i < got; i++)
                vm_pool_free(&k->pool, frames[i]);
            starve(obj, need); /* a write takes all its frames at once */
            return 0;
        }
    }
    unsigned used = 0;
    for (uint64_t idx = first; idx <= last; idx++) {
        struct vm_page *p = page_lookup(obj, idx);
        if (p == NULL) {
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
        page_flags(obj, p, VM_PG_DIRTY | VM_PG_REFERENCED, 0);
        vm_pool_enqueue(&k->pool, p);
    }
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
    obj->need_frames = 0;
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
    struct vm_io *io = calloc(1, sizeof(*io));
    if (io == NULL || len > 256 * VM_PS) {
        free(io);
        done(arg, io ? EINVAL : ENOMEM);
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

static void
page_return_released(struct emm_msg *msg, int status)
{
    struct vm_page *p = msg->release_ctx;
    struct vm_object *obj = p->object;
    struct vm_kernel *k = obj->kernel;
    struct vm_batch b = {0};

    pthread_mutex_lock(&obj->lock);
    p->state = VM_PAGE_PRESENT;
    obj->nlaundry--;
    if (status == 0) {
        if (!(p->flags & VM_PG_REDIRTY))
            page_flags(obj, p, 0, VM_PG_DIRTY | VM_PG_NEW);
    } else {
        atomic_fetch_add(&k->stats.return_errors, 1);
        p->flags &= ~VM_PG_EVICT;
        obj->backoff_until_ns = emm_mono_ns() + 200000000ull;
    }
    p->flags &= ~VM_PG_REDIRTY;
    if ((p->flags & VM_PG_EVICT) && !(p->flags & VM_PG_DIRTY) && p->wire == 0) {
        vm_obj_remove_page(obj, p);
        atomic_fetch_add(&k->stats.evictions, 1);
    } else {
        p->flags &= ~VM_PG_EVICT;
        vm_pool_enqueue(&k->pool, p);
    }
    run_waiters(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    atomic_fetch_sub(&k->laundry, 1);
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
    vm_pool_dequeue(&k->pool, p);
    p->state = VM_PAGE_LAUNDRY;
    if (evict)
        p->flags |= VM_PG_EVICT;
    struct emm_msg *m = &p->msg;
    memset(m, 0, sizeof(*m));
    m->id = MO_DATA_RETURN;
    m->offset = p->index * VM_PS;
    m->length = VM_PS;
    m->data = p->frame;
    m->flags = ((p->flags & VM_PG_DIRTY) ? MO_F_DIRTY : 0) | (evict ? 0 : MO_F_KERNEL_COPY);
    m->release = page_return_released;
    m->release_ctx = p;
    m->chain = NULL;
    m->control = emm_port_ref(obj->control);
    obj->nlaundry++;
    atomic_fetch_add(&k->laundry, 1);
    atomic_fetch_add(&k->stats.data_returns, 1);
    atomic_fetch_add(&k->stats.pages_returned, 1);
    vm_object_ref(obj);
    batch_msg(b, m);
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
    pthread_mutex_lock(&obj->lock);
    int rc = sync_locked(obj, s, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    if (rc < 0) {
        free(s);
        done(arg, -rc);
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
        struct emm_msg *m = kmsg(obj, MO_DISCARD, pfirst * VM_PS,
                                 pend == UINT64_MAX ? UINT64_MAX : (pend - pfirst) * VM_PS);
        if (m != NULL)
            batch_msg(&b, m);
    }
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
    /* Partial edge pages: zero their part through the write path. */
    uint64_t size = clip;
    uint64_t head_end = pfirst * VM_PS < end ? pfirst * VM_PS : end;
    if (off < head_end && off < size) {
        atomic_fetch_add(&pc->pending, 1);
        vm_object_write(obj, off, zeros, head_end - off, punch_part_done, pc);
    }
    if (end != UINT64_MAX && pend >= pfirst && end % VM_PS && end / VM_PS * VM_PS > off &&
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
    for (uint64_t i = 0; i < obj->nbuckets; i++) {
        struct vm_page *p = obj->buckets[i];
        while (p != NULL) {
            struct vm_page *next = p->hnext;
            page_discard(obj, p);
            p = next;
        }
    }
    if (discard) {
        struct emm_msg *m = kmsg(obj, MO_DISCARD, 0, UINT64_MAX);
        if (m != NULL)
            batch_msg(&b, m);
    }
    struct emm_msg *t = emm_msg_new(MO_TERMINATE, 0, 0);
    if (t != NULL) {
        t->control = emm_port_ref(obj->control);
        t->name = emm_port_ref(obj->name);
        batch_msg(&b, t);
    }
    run_waiters(obj, &b); /* fail anything still waiting */
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
        p->flags &= ~VM_PG_DISCARDED;
        if (!hole && (msg->flags & MO_F_PRECIOUS))
            p->flags |= VM_PG_PRECIOUS;
        page_flags(obj, p, hole ? VM_PG_NEW : 0, hole ? 0 : VM_PG_NEW);
        vm_pool_enqueue(&k->pool, p);
    }
    if (!zero && msg->reply != NULL) {
        struct emm_msg *r = emm_msg_new(MO_SUPPLY_COMPLETED, msg->offset, msg->length);
        if (r != NULL) {
            r->arg = present ? -EEXIST : 0;
            r->control = emm_port_ref(obj->control);
            if (emm_port_send_once(&msg->reply, r) < 0)
                emm_msg_release(r, -EPIPE);
        }
    }
    run_waiters(obj, b);
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
    if (msg->reply != NULL) {
        struct emm_msg *r = emm_msg_new(MO_LOCK_COMPLETED, msg->offset, msg->length);
        if (r != NULL) {
            r->control = emm_port_ref(obj->control);
            /* After the data_returns it caused (same batch, sent in order). */
            batch_msg(&b, r);
            r->reply = msg->reply; /* carried: sent to the reply port below */
            msg->reply = NULL;
        }
    }
    run_waiters(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    /* Send returns to the pager, then lock_completed to its reply port. */
    struct emm_msg *m = b.msgs;
    b.msgs = b.msgs_tail = NULL;
    while (m != NULL) {
        struct emm_msg *next = m->next;
        if (m->id == MO_LOCK_COMPLETED) {
            struct emm_port *to = m->reply;
            m->reply = NULL;
            if (emm_port_send_once(&to, m) < 0)
                emm_msg_release(m, -EPIPE);
        } else if (emm_port_send(obj->pager, m) < 0) {
            emm_msg_release(m, -EPIPE);
        }
        m = next;
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
        if (msg->id == MO_CHANGE_ATTRIBUTES && msg->reply != NULL) {
            struct emm_msg *r = emm_msg_new(MO_CHANGE_COMPLETED, 0, 0);
            if (r != NULL) {
                r->flags = msg->flags & MO_F_MAY_CACHE;
                r->arg = msg->arg;
                if (emm_port_send_once(&msg->reply, r) < 0)
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
        for (uint64_t i = 0; i < obj->nbuckets; i++) {
            struct vm_page *p = obj->buckets[i];
            while (p != NULL) {
                struct vm_page *next = p->hnext;
                page_discard(obj, p);
                p = next;
            }
        }
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
        b.sync_err = msg->arg < 0 ? -msg->arg : 0;
        if (b.sync_err)
            atomic_fetch_add(&k->stats.sync_errors, 1);
        break;
    }
    default:
        emm_warn("object %llu: control port got %s (%u): ignored", (unsigned long long)obj->id,
                 emm_msg_name(msg->id), msg->id);
        break;
    }
    pthread_mutex_unlock(&obj->lock);
    emm_msg_release(msg, 0);
    vm_batch_flush(obj, &b);
}
