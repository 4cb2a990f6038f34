/*
 * test_vm_dpager.c - double paging, overdue returns, orphan copies and replay,
 * driven against a fake default pager written here: the five operations of
 * vm_dpager.h (attach, detach, pages, holds, next_page) over an in-memory swap
 * (a page map per key), and a port per key that speaks the protocol the kernel
 * uses with a default pager (init/ready for temporary objects, data_request,
 * data_return, discard, synchronize, terminate). The object's own pager is a
 * second fake: it stores pages, and can refuse data_returns (failing store) or
 * keep them unanswered (stalled store), as a broken or hung pager would.
 *
 * Both fakes use inline ports: a message is handled in the sending thread, so
 * most steps are deterministic; waits on the pageout daemon or the kernel
 * worker poll with a generous bound (no timing assertions).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <emm/backend.h>

#include "clock.h"
#include "vm_internal.h"

#define PS ((uint64_t)EMM_PAGE_SIZE)
#define MIB (1024ull * 1024)
#define NPAGES 64
#define WAIT_MS 10000

static void
msg_data_release(struct emm_msg *m, int status)
{
    (void)status;
    free(m->data);
    free(m);
}

static struct emm_msg *
msg_with_data(uint32_t id, uint64_t off, uint64_t len, const void *src)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    assert_non_null(m);
    if (src != NULL) {
        m->data = malloc(len);
        assert_non_null(m->data);
        memcpy(m->data, src, len);
        m->release = msg_data_release;
    }
    return m;
}

static void
send_or_drop(struct emm_port *to, struct emm_msg *m)
{
    if (to == NULL || emm_port_send(to, m) < 0)
        emm_msg_release(m, -EPIPE);
}

/* ---- a page store (the fakes' "disk") ------------------------------------ */

struct store {
    uint8_t data[NPAGES * EMM_PAGE_SIZE];
    uint8_t has[NPAGES];
};

static void
store_put(struct store *s, uint64_t idx, const void *page)
{
    if (idx < NPAGES) {
        memcpy(s->data + idx * PS, page, PS);
        s->has[idx] = 1;
    }
}

static void
store_discard(struct store *s, uint64_t off, uint64_t len)
{
    for (uint64_t i = off / PS; i < NPAGES; i++)
        if (len == UINT64_MAX || i < (off + len) / PS)
            s->has[i] = 0;
}

/* Answers a data_request from s: a supply per run of held pages, and for the
 * others data_unavailable with flags (MO_F_NOT_HELD from a default pager). */
static void
store_answer(struct store *s, pthread_mutex_t *lock, struct emm_port *control, uint64_t off,
             uint64_t len, uint32_t unavailable_flags)
{
    uint64_t first = off / PS, n = len / PS, i = 0;
    while (i < n) {
        pthread_mutex_lock(lock);
        int has = first + i < NPAGES && s->has[first + i];
        uint64_t j = i;
        while (j < n && (first + j < NPAGES && s->has[first + j]) == has)
            j++;
        struct emm_msg *m;
        if (has) {
            m = msg_with_data(MO_DATA_SUPPLY, (first + i) * PS, (j - i) * PS,
                              s->data + (first + i) * PS);
        } else {
            m = emm_msg_new(MO_DATA_UNAVAILABLE, (first + i) * PS, (j - i) * PS);
            m->flags = unavailable_flags;
        }
        pthread_mutex_unlock(lock);
        send_or_drop(control, m);
        i = j;
    }
}

/* ---- the fake default pager ---------------------------------------------- */

struct fdp_obj {
    struct fdp *dp;
    uint64_t key;
    struct emm_port *port;    /* receive right */
    struct emm_port *control; /* temporary objects: from init */
    struct store st;
    int attached, detached, terminated;
    unsigned returns, requests, discards, inits, queries;
    struct emm_port *reply_seen; /* a reference to the last data_return's reply port */
};

struct fdp {
    pthread_mutex_t lock;
    struct fdp_obj objs[4];
    int nobjs;
    int return_status; /* data_returns are answered with it (-ENOSPC: swap full) */
    int hold_returns;  /* a slow swap write: the port waits (emm_port_hold) */
    struct emm_msg *held;
    struct fdp_obj *held_obj;
};

static void
fdp_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct fdp_obj *o = emm_port_context(port);
    struct fdp *dp = o->dp;
    int temporary = (o->key & VM_DP_TEMPORARY) != 0;
    int status = 0;
    pthread_mutex_lock(&dp->lock);
    switch (msg->id) {
    case MO_INIT: {
        o->inits++;
        o->control = emm_port_take(&msg->control);
        pthread_mutex_unlock(&dp->lock);
        struct emm_msg *r = emm_msg_new(MO_READY, 0, 0);
        r->arg = MO_COPY_TEMPORARY;
        send_or_drop(o->control, r);
        emm_msg_release(msg, 0);
        return;
    }
    case MO_DATA_REQUEST: {
        o->requests++;
        struct emm_port *control = emm_port_take(&msg->control);
        pthread_mutex_unlock(&dp->lock);
        store_answer(&o->st, &dp->lock, control, msg->offset, msg->length,
                     temporary ? 0 : MO_F_NOT_HELD);
        emm_port_unref(control);
        emm_msg_release(msg, 0);
        return;
    }
    case MO_DATA_RETURN:
        o->returns++;
        if (msg->reply != EMM_PORT_NULL) {
            if (o->reply_seen != NULL)
                emm_port_unref(o->reply_seen);
            o->reply_seen = emm_port_ref(emm_port_peek(msg->reply));
        }
        if (dp->hold_returns && dp->held == NULL) {
            /* Written later: later messages on this port wait, in order. */
            dp->held = msg;
            dp->held_obj = o;
            emm_port_hold(port);
            pthread_mutex_unlock(&dp->lock);
            return;
        }
        status = dp->return_status;
        for (struct emm_msg *c = msg; c != NULL && status == 0; c = c->chain)
            for (uint64_t i = 0; i < c->length / PS; i++)
                store_put(&o->st, c->offset / PS + i, (char *)c->data + i * PS);
        break;
    case MO_DATA_QUERY:
        o->queries++; /* the kernel sees swap's holdings itself: never asked */
        break;
    case MO_DISCARD:
        o->discards++;
        store_discard(&o->st, msg->offset, msg->length);
        break;
    case MO_SYNCHRONIZE: {
        pthread_mutex_unlock(&dp->lock);
        struct emm_msg *r = emm_msg_new(MO_SYNCHRONIZE_COMPLETED, msg->offset, msg->length);
        send_or_drop(o->control, r);
        emm_msg_release(msg, 0);
        return;
    }
    case MO_TERMINATE:
        o->terminated = 1;
        if (o->control != NULL) {
            emm_port_unref(o->control);
            o->control = NULL;
        }
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&dp->lock);
    if (msg->id == MO_DATA_RETURN) /* the answer (to the reply port the kernel gave) */
        emm_msg_return_completed(msg, msg->control ? emm_port_peek(msg->control) : o->control,
                                 status);
    emm_msg_release(msg, status);
}

/* The slow swap write completes: stored, released, and the port goes on. */
static void
fdp_finish_held(struct fdp *dp)
{
    pthread_mutex_lock(&dp->lock);
    struct emm_msg *msg = dp->held;
    struct fdp_obj *o = dp->held_obj;
    dp->held = NULL;
    dp->hold_returns = 0;
    if (msg != NULL)
        for (struct emm_msg *c = msg; c != NULL; c = c->chain)
            for (uint64_t i = 0; i < c->length / PS; i++)
                store_put(&o->st, c->offset / PS + i, (char *)c->data + i * PS);
    pthread_mutex_unlock(&dp->lock);
    if (msg != NULL) {
        emm_msg_return_completed(msg, msg->control ? emm_port_peek(msg->control) : o->control, 0);
        emm_msg_release(msg, 0);
        emm_port_resume(o->port);
    }
}

static int
fdp_attach(void *ctx, uint64_t key, struct emm_port **port, void **handle)
{
    struct fdp *dp = ctx;
    struct fdp_obj *o = NULL;
    pthread_mutex_lock(&dp->lock);
    for (int i = 0; i < dp->nobjs; i++)
        if (dp->objs[i].key == key)
            o = &dp->objs[i];
    if (o == NULL && dp->nobjs < 4) {
        o = &dp->objs[dp->nobjs++];
        o->dp = dp;
        o->key = key;
    }
    pthread_mutex_unlock(&dp->lock);
    if (o == NULL)
        return -ENOMEM;
    if (o->port == NULL && emm_port_create("fake-dp", fdp_handler, o, NULL, &o->port) < 0)
        return -ENOMEM;
    o->attached++;
    *port = emm_port_ref(o->port);
    *handle = o;
    return 0;
}

static void
fdp_detach(void *ctx, void *handle)
{
    (void)ctx;
    struct fdp_obj *o = handle;
    o->detached++;
}

static uint64_t
fdp_pages(void *ctx, void *handle)
{
    struct fdp *dp = ctx;
    struct fdp_obj *o = handle;
    uint64_t n = 0;
    pthread_mutex_lock(&dp->lock);
    for (uint64_t i = 0; i < NPAGES; i++)
        n += o->st.has[i];
    pthread_mutex_unlock(&dp->lock);
    return n;
}

static int
fdp_holds(void *ctx, void *handle, uint64_t index)
{
    struct fdp *dp = ctx;
    struct fdp_obj *o = handle;
    pthread_mutex_lock(&dp->lock);
    int h = index < NPAGES && o->st.has[index];
    pthread_mutex_unlock(&dp->lock);
    return h;
}

static uint64_t
fdp_next_page(void *ctx, void *handle, uint64_t from)
{
    struct fdp *dp = ctx;
    struct fdp_obj *o = handle;
    uint64_t r = UINT64_MAX;
    pthread_mutex_lock(&dp->lock);
    for (uint64_t i = from; i < NPAGES; i++)
        if (o->st.has[i]) {
            r = i;
            break;
        }
    pthread_mutex_unlock(&dp->lock);
    return r;
}

static const struct vm_dpager_ops fdp_ops = {
    .attach = fdp_attach,
    .detach = fdp_detach,
    .pages = fdp_pages,
    .holds = fdp_holds,
    .next_page = fdp_next_page,
};

/* ---- the object's own pager ---------------------------------------------- */

/* OP_LOAN_BACK: a pager in another process: the frame is back at once (the
 * data was copied out when the message was written), the answer comes later
 * (fop_answer_loaned) or never. */
enum { OP_TAKE = 0, OP_REFUSE, OP_HOLD, OP_LOAN_BACK };

struct owed {
    uint64_t offset, length, seqno;
};

struct fop {
    pthread_mutex_t lock;
    struct emm_port *port;
    struct emm_port *control, *name;
    struct store st;
    int returns_mode;      /* OP_*: what it does with a data_return */
    int refuse_status;     /* OP_REFUSE: the status (-EIO) */
    struct emm_msg *held[64];
    int nheld;
    unsigned returns[NPAGES];  /* data_returns seen per page */
    unsigned requests[NPAGES]; /* data_requests seen per page */
    unsigned nrequests;
    unsigned queries;          /* data_query messages seen */
    int hold_queries;          /* a stalled pager: queries wait in held_q */
    int query_cannot_tell;     /* counts answered with a run for the span */
    int query_bad;             /* counts answered with a reply the kernel must refuse */
    struct emm_msg *held_q[16];
    int nheld_q;
    struct owed owed[64]; /* OP_LOAN_BACK: answers not sent yet */
    int nowed;
};

/* An answer to query q: to its reply port when it carries one (the kernel
 * asks about an object it has not mapped), else to the control port. */
static void
fop_reply(struct fop *fp, struct emm_msg *q, struct emm_msg *r)
{
    if (q->reply == EMM_PORT_NULL)
        send_or_drop(fp->control, r);
    else if (emm_port_send_reply(&q->reply, r) < 0)
        emm_msg_release(r, -EPIPE);
}

/* query_reply from the store: the first run of pages held in [from, from+span). */
static void
fop_answer_query(struct fop *fp, struct emm_msg *q)
{
    uint64_t from = q->offset / PS;
    uint64_t end = q->length == UINT64_MAX || from + q->length / PS > NPAGES ? NPAGES
                                                                           : from + q->length / PS;
    struct emm_msg *r = emm_msg_new(MO_QUERY_REPLY, UINT64_MAX, 0);
    r->arg = q->arg;
    if (q->flags & MO_F_QUERY_COUNT) {
        uint64_t n = 0;
        pthread_mutex_lock(&fp->lock);
        for (uint64_t i = 0; i < NPAGES; i++)
            n += fp->st.has[i];
        pthread_mutex_unlock(&fp->lock);
        r->offset = 0;
        r->length = n * PS;
        r->flags = MO_F_QUERY_COUNT;
        pthread_mutex_lock(&fp->lock);
        if (fp->query_cannot_tell) { /* a pager that answers the span */
            r->flags = 0;
            r->length = UINT64_MAX;
        } else if (fp->query_bad) {
            r->offset = PS; /* a count has offset 0 */
        }
        pthread_mutex_unlock(&fp->lock);
        fop_reply(fp, q, r);
        return;
    }
    pthread_mutex_lock(&fp->lock);
    for (uint64_t i = from; i < end; i++)
        if (fp->st.has[i]) {
            uint64_t j = i;
            while (j < end && fp->st.has[j])
                j++;
            r->offset = i * PS;
            r->length = (j - i) * PS;
            break;
        }
    pthread_mutex_unlock(&fp->lock);
    fop_reply(fp, q, r);
}

static void
fop_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct fop *fp = emm_port_context(port);
    int status = 0;
    pthread_mutex_lock(&fp->lock);
    switch (msg->id) {
    case MO_INIT: {
        fp->control = emm_port_take(&msg->control);
        fp->name = emm_port_take(&msg->name);
        pthread_mutex_unlock(&fp->lock);
        struct emm_msg *r = emm_msg_new(MO_READY, 0, 0);
        r->arg = MO_COPY_DELAY;
        send_or_drop(fp->control, r);
        emm_msg_release(msg, 0);
        return;
    }
    case MO_DATA_REQUEST:
        fp->nrequests++;
        for (uint64_t i = msg->offset / PS; i < (msg->offset + msg->length) / PS && i < NPAGES; i++)
            fp->requests[i]++;
        pthread_mutex_unlock(&fp->lock);
        store_answer(&fp->st, &fp->lock, fp->control, msg->offset, msg->length, 0);
        emm_msg_release(msg, 0);
        return;
    case MO_DATA_RETURN:
        for (struct emm_msg *c = msg; c != NULL; c = c->chain)
            for (uint64_t i = 0; i < c->length / PS; i++)
                if (c->offset / PS + i < NPAGES)
                    fp->returns[c->offset / PS + i]++;
        if (fp->returns_mode == OP_HOLD && fp->nheld < 64) {
            fp->held[fp->nheld++] = msg; /* stalled: answered much later */
            pthread_mutex_unlock(&fp->lock);
            return;
        }
        if (fp->returns_mode == OP_REFUSE) {
            status = fp->refuse_status;
            break;
        }
        if (fp->returns_mode == OP_LOAN_BACK && fp->nowed < 64) {
            uint64_t len = 0;
            for (struct emm_msg *c = msg; c != NULL; c = c->chain)
                len += c->length;
            fp->owed[fp->nowed++] = (struct owed){msg->offset, len, msg->seqno};
            pthread_mutex_unlock(&fp->lock);
            emm_msg_release(msg, 0); /* the loan ends, the answer is owed */
            return;
        }
        for (struct emm_msg *c = msg; c != NULL; c = c->chain)
            for (uint64_t i = 0; i < c->length / PS; i++)
                store_put(&fp->st, c->offset / PS + i, (char *)c->data + i * PS);
        break;
    case MO_DISCARD:
        store_discard(&fp->st, msg->offset, msg->length);
        break;
    case MO_DATA_QUERY:
        fp->queries++;
        if (fp->hold_queries && fp->nheld_q < 16) {
            fp->held_q[fp->nheld_q++] = msg;
            pthread_mutex_unlock(&fp->lock);
            return;
        }
        pthread_mutex_unlock(&fp->lock);
        fop_answer_query(fp, msg);
        emm_msg_release(msg, 0);
        return;
    case MO_SYNCHRONIZE: {
        pthread_mutex_unlock(&fp->lock);
        struct emm_msg *r = emm_msg_new(MO_SYNCHRONIZE_COMPLETED, msg->offset, msg->length);
        send_or_drop(fp->control, r);
        emm_msg_release(msg, 0);
        return;
    }
    default:
        break;
    }
    pthread_mutex_unlock(&fp->lock);
    if (msg->id == MO_DATA_RETURN) /* the answer, then the frame back */
        emm_msg_return_completed(msg, fp->control, status);
    emm_msg_release(msg, status);
}

/* The stalled store finishes: the held data_returns are stored and released. */
static int
fop_release_held(struct fop *fp, int status)
{
    pthread_mutex_lock(&fp->lock);
    int n = fp->nheld;
    struct emm_msg *list[64];
    memcpy(list, fp->held, (size_t)n * sizeof(list[0]));
    fp->nheld = 0;
    if (status == 0)
        for (int i = 0; i < n; i++)
            for (struct emm_msg *c = list[i]; c != NULL; c = c->chain)
                for (uint64_t j = 0; j < c->length / PS; j++)
                    store_put(&fp->st, c->offset / PS + j, (char *)c->data + j * PS);
    pthread_mutex_unlock(&fp->lock);
    for (int i = 0; i < n; i++) {
        emm_msg_return_completed(list[i], fp->control, status);
        emm_msg_release(list[i], status);
    }
    return n;
}

/* OP_LOAN_BACK: the owed answers go at last (a pager that was slow to store).
 * Returns how many; a dead control port refuses them. */
static int
fop_answer_loaned(struct fop *fp)
{
    pthread_mutex_lock(&fp->lock);
    int n = fp->nowed;
    struct owed list[64];
    memcpy(list, fp->owed, (size_t)n * sizeof(list[0]));
    fp->nowed = 0;
    pthread_mutex_unlock(&fp->lock);
    for (int i = 0; i < n; i++) {
        struct emm_msg *c = emm_msg_new(MO_DATA_RETURN_COMPLETED, list[i].offset, list[i].length);
        c->arg2 = list[i].seqno;
        send_or_drop(fp->control, c);
    }
    return n;
}

static int
fop_nheld(struct fop *fp)
{
    pthread_mutex_lock(&fp->lock);
    int n = fp->nheld;
    pthread_mutex_unlock(&fp->lock);
    return n;
}

/* ---- upcalls and completions --------------------------------------------- */

static void
up_invalidate(void *owner, uint64_t off, uint64_t len, void (*done)(void *arg), void *arg)
{
    (void)owner;
    (void)off;
    (void)len;
    done(arg);
}

static const struct vm_upcalls test_up = {.invalidate = up_invalidate};


struct comp {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
    uint8_t buf[4 * EMM_PAGE_SIZE];
    uint64_t got;
};

static void
comp_init(struct comp *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->err = -1;
}

static void
read_cb(void *arg, int err, const struct iovec *iov, int iovcnt)
{
    struct comp *c = arg;
    pthread_mutex_lock(&c->lock);
    c->err = err;
    for (int i = 0; i < iovcnt; i++) {
        uint64_t take = iov[i].iov_len;
        if (c->got + take > sizeof(c->buf))
            take = sizeof(c->buf) - c->got;
        memcpy(c->buf + c->got, iov[i].iov_base, take);
        c->got += take;
    }
    c->done = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void
done_cb(void *arg, int err)
{
    struct comp *c = arg;
    pthread_mutex_lock(&c->lock);
    c->err = err;
    c->done = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static int
comp_wait(struct comp *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&c->lock);
    while (!c->done && pthread_cond_timedwait(&c->cond, &c->lock, &ts) == 0)
        ;
    int d = c->done;
    pthread_mutex_unlock(&c->lock);
    return d;
}

/* A fake's counter, read under its lock (the fakes run on kernel threads). */
static unsigned
locked_u(pthread_mutex_t *m, const unsigned *v)
{
    pthread_mutex_lock(m);
    unsigned x = *v;
    pthread_mutex_unlock(m);
    return x;
}

/* Polls cond(f) until true or WAIT_MS pass (the daemon and worker are
 * asynchronous; the bound only ends a hang, it is not a timing assertion). */
#define WAIT_FOR(cond)                                                                      \
    do {                                                                                    \
        for (int w_ = 0; w_ < WAIT_MS && !(cond); w_++)                                     \
            usleep(1000);                                                                   \
        if (!(cond))                                                                        \
            fail_msg("timed out waiting for %s", #cond);                                    \
    } while (0)

/* ---- fixture -------------------------------------------------------------- */

struct fx {
    struct vm_kernel *k;
    struct fdp dp;
    struct fop fp;
    struct vm_pager_stats ps;
    struct vm_object *obj;
    int temporary;
};

static struct fx *
fx_new_up(int temporary, const struct vm_upcalls *up);

static struct fx *
fx_new(int temporary)
{
    return fx_new_up(temporary, &test_up);
}

static struct fx *
fx_new_up(int temporary, const struct vm_upcalls *up)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->dp.lock, NULL);
    pthread_mutex_init(&f->fp.lock, NULL);
    f->fp.refuse_status = -EIO;
    f->temporary = temporary;
    assert_int_equal(emm_port_create("fake-pager", fop_handler, &f->fp, NULL, &f->fp.port), 0);
    assert_int_equal(vm_kernel_create(MIB, NULL, up, &f->k), 0);
    vm_kernel_set_default_pager(f->k, &fdp_ops, &f->dp);
    return f;
}

/* Creates the object (after the test seeded the stores). */
static void
fx_create(struct fx *f, uint64_t deadline_ms)
{
    struct vm_object_args a = {.id = 7,
                               .size = NPAGES * PS,
                               .pager = f->temporary ? NULL : emm_port_ref(f->fp.port),
                               .owner = f,
                               .temporary = f->temporary,
                               .dp_key = vm_dp_key(3, 7, f->temporary),
                               .deadline_ms = deadline_ms,
                               .pstats = &f->ps};
    assert_int_equal(vm_object_create(f->k, &a, &f->obj), 0);
}

static struct fdp_obj *
fx_dpo(struct fx *f)
{
    assert_int_equal(f->dp.nobjs, 1);
    return &f->dp.objs[0];
}

static int
setup(void **state)
{
    struct fx *f = fx_new(0);
    fx_create(f, 0);
    *state = f;
    return 0;
}

static int
setup_deadline(void **state)
{
    struct fx *f = fx_new(0);
    fx_create(f, 50);
    *state = f;
    return 0;
}

static int
setup_temporary(void **state)
{
    struct fx *f = fx_new(1);
    fx_create(f, 0);
    *state = f;
    return 0;
}


/* Seeded: the object is created by the test itself. */
static int
setup_empty(void **state)
{
    *state = fx_new(0);
    return 0;
}

/* The stalled pager answers its queries at last. */
static void
fop_answer_held_queries(struct fop *fp)
{
    pthread_mutex_lock(&fp->lock);
    int n = fp->nheld_q;
    struct emm_msg *list[16];
    memcpy(list, fp->held_q, (size_t)n * sizeof(list[0]));
    fp->nheld_q = 0;
    pthread_mutex_unlock(&fp->lock);
    for (int i = 0; i < n; i++) {
        fop_answer_query(fp, list[i]);
        emm_msg_release(list[i], 0);
    }
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    fop_release_held(&f->fp, 0);
    fop_answer_held_queries(&f->fp);
    if (f->obj != NULL) {
        struct comp c;
        comp_init(&c);
        vm_object_terminate(f->obj, 0, done_cb, &c);
        assert_true(comp_wait(&c));
        for (int i = 0; i < 5000 && vm_kernel_laundry(f->k) > 0; i++)
            usleep(1000);
        fop_release_held(&f->fp, 0);
        vm_object_unref(f->obj);
    }
    /* Every frame is back: nothing leaked by orphans or loans. */
    struct vm_pool *pool = vm_kernel_pool(f->k);
    WAIT_FOR(vm_pool_free_count(pool) == pool->npages);
    vm_kernel_destroy(f->k);
    for (int i = 0; i < f->dp.nobjs; i++) {
        if (f->dp.objs[i].control != NULL)
            emm_port_unref(f->dp.objs[i].control);
        if (f->dp.objs[i].reply_seen != NULL)
            emm_port_unref(f->dp.objs[i].reply_seen);
        emm_port_destroy(f->dp.objs[i].port);
    }
    if (f->fp.control != NULL)
        emm_port_unref(f->fp.control);
    if (f->fp.name != NULL)
        emm_port_unref(f->fp.name);
    emm_port_destroy(f->fp.port);
    pthread_mutex_destroy(&f->dp.lock);
    pthread_mutex_destroy(&f->fp.lock);
    free(f);
    return 0;
}

static void
write_page(struct fx *f, uint64_t idx, uint8_t byte)
{
    uint8_t buf[PS];
    memset(buf, byte, PS);
    struct comp c;
    comp_init(&c);
    vm_object_write(f->obj, idx * PS, buf, PS, done_cb, &c);
    if (!comp_wait(&c))
        fail_msg("write of page %llu did not complete", (unsigned long long)idx);
    assert_int_equal(c.err, 0);
}

/* Reads page idx; returns its first byte after checking the whole page is it. */
static int
read_page(struct fx *f, uint64_t idx, int *err)
{
    struct comp c;
    comp_init(&c);
    vm_object_read(f->obj, idx * PS, PS, read_cb, &c);
    if (!comp_wait(&c))
        fail_msg("read of page %llu did not complete", (unsigned long long)idx);
    *err = c.err;
    if (c.err != 0)
        return -1;
    assert_int_equal(c.got, PS);
    for (uint64_t i = 1; i < PS; i++)
        if (c.buf[i] != c.buf[0])
            fail_msg("page %llu is torn at byte %llu", (unsigned long long)idx,
                     (unsigned long long)i);
    return c.buf[0];
}

static int
read_byte(struct fx *f, uint64_t idx)
{
    int err;
    int b = read_page(f, idx, &err);
    assert_int_equal(err, 0);
    return b;
}

/* The pager asks for pages [first, first+n) back and flushed (as `emmctl
 * flush` does): a data_return with eviction for each dirty one. */
static void
pager_flush(struct fx *f, uint64_t first, uint64_t n)
{
    struct emm_msg *m = emm_msg_new(MO_LOCK_REQUEST, first * PS, n * PS);
    m->arg = MO_RETURN_DIRTY;
    m->flags = MO_F_FLUSH;
    m->access = VM_PROT_NO_CHANGE;
    struct emm_port *control = f->temporary ? NULL : f->fp.control;
    assert_non_null(control);
    assert_int_equal(emm_port_send(control, m), 0);
}

static void
sync_obj(struct fx *f, int want_err)
{
    struct comp c;
    comp_init(&c);
    vm_object_sync(f->obj, done_cb, &c);
    if (!comp_wait(&c))
        fail_msg("fsync did not complete");
    assert_int_equal(c.err, want_err);
}

static int
is_resident(struct fx *f, uint64_t idx)
{
    return vm_object_seek_resident(f->obj, idx, 1) == idx;
}

static uint64_t
stat_of(atomic_uint_fast64_t *v)
{
    return atomic_load(v);
}

/* ---- double paging --------------------------------------------------------- */

/* The pager refuses a data_return of a page being evicted: the page goes to
 * the default pager (double paging), leaves memory once swap has it, and the
 * next fault on it is served from swap, not from the pager (which never got
 * the data). */
static void
test_refused_return_double_pages(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_REFUSE;
    write_page(f, 3, 0x33);
    pager_flush(f, 3, 1);
    assert_int_equal(f->fp.returns[3], 1);
    WAIT_FOR(fdp_holds(&f->dp, d, 3));
    /* It stays sick for this test: no replay to it meanwhile (1 s otherwise). */
    atomic_store(&f->ps.sick_until_ns, UINT64_MAX);
    assert_int_equal(d->returns, 1);
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(stat_of(&st->double_paged), 1);
    assert_int_equal(stat_of(&f->ps.double_paged), 1);
    assert_int_equal(stat_of(&st->return_errors), 1);
    WAIT_FOR(!is_resident(f, 3)); /* clean once swap has it: evicted */
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.in_swap, 1);
    assert_int_equal(info.dirty, 0);
    assert_int_equal(info.laundry, 0);
    assert_int_equal(read_byte(f, 3), 0x33);
    assert_int_equal(f->fp.requests[3], 0); /* from swap, not from the pager */
    assert_int_equal(d->requests, 1);
    assert_int_equal(stat_of(&st->swap_faults), 1);
    /* Paged in from swap, the page is dirty again: its pager still lacks it. */
    vm_object_info(f->obj, &info);
    assert_int_equal(info.dirty, 1);
}

/* Read-around reaches double-paged pages too: with the pager stalled (sick),
 * a fault on one page it left in swap brings the swapped pages after it in
 * the same data_request to the default pager. */
static void
test_readaround_double_paged(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_REFUSE;
    for (uint64_t i = 10; i < 14; i++)
        write_page(f, i, (uint8_t)(0x40 + i));
    pager_flush(f, 10, 4);
    for (uint64_t i = 10; i < 14; i++)
        WAIT_FOR(fdp_holds(&f->dp, d, i) && !is_resident(f, i));
    atomic_store(&f->ps.sick_until_ns, UINT64_MAX); /* no replay meanwhile */
    struct vm_stats *st = vm_kernel_stats(f->k);
    uint64_t ra = stat_of(&st->readaround_pages);
    int reqs = d->requests;
    assert_int_equal(read_byte(f, 10), 0x4a);
    assert_int_equal(d->requests, reqs + 1);
    assert_int_equal(stat_of(&st->readaround_pages), ra + 3);
    for (uint64_t i = 11; i < 14; i++)
        assert_true(is_resident(f, i));
    for (uint64_t i = 11; i < 14; i++)
        assert_int_equal(read_byte(f, i), 0x40 + (int)i);
    assert_int_equal(d->requests, reqs + 1); /* nothing more asked */
    assert_int_equal(f->fp.requests[11], 0);
}

/* The default pager answers a double-paging data_return on a reply port of
 * the kernel's own, which takes only data_return_completed: anything else
 * sent there is refused (counted, no effect), and an answer naming another
 * data_return is not taken. */
static void
test_dp_reply_port_takes_only_completions(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_REFUSE;
    write_page(f, 3, 0x33);
    pager_flush(f, 3, 1);
    WAIT_FOR(fdp_holds(&f->dp, d, 3));
    atomic_store(&f->ps.sick_until_ns, UINT64_MAX);
    assert_non_null(d->reply_seen); /* the return to swap carried a reply right */
    WAIT_FOR(!is_resident(f, 3));
    struct vm_stats *st = vm_kernel_stats(f->k);
    uint64_t bad = stat_of(&st->bad_messages);
    struct vm_object_info before, after;
    vm_object_info(f->obj, &before);

    uint8_t page[EMM_PAGE_SIZE];
    memset(page, 0x99, sizeof(page));
    send_or_drop(d->reply_seen, msg_with_data(MO_DATA_SUPPLY, 3 * PS, PS, page));
    assert_int_equal(stat_of(&st->bad_messages), bad + 1);
    struct emm_msg *m = emm_msg_new(MO_DATA_RETURN_COMPLETED, 3 * PS, PS);
    m->arg = 0;
    m->arg2 = 999999; /* no data_return of that seqno is out */
    send_or_drop(d->reply_seen, m);
    assert_int_equal(stat_of(&st->bad_messages), bad + 1);
    vm_object_info(f->obj, &after);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(read_byte(f, 3), 0x33); /* from swap, as before */
    emm_port_unref(d->reply_seen);
    d->reply_seen = NULL;
}

/* Swap fails too (full): the page can be kept nowhere, the object dies (EIO),
 * and nothing hangs. */
static void
test_swap_full_kills_object(void **state)
{
    struct fx *f = *state;
    f->fp.returns_mode = OP_REFUSE;
    f->dp.return_status = -ENOSPC;
    write_page(f, 5, 0x55);
    pager_flush(f, 5, 1);
    struct vm_stats *st = vm_kernel_stats(f->k);
    WAIT_FOR(stat_of(&st->objects_killed) == 1);
    assert_int_equal(stat_of(&f->ps.killed), 1);
    int err;
    read_page(f, 5, &err);
    assert_int_equal(err, EIO);
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.state, VM_OBJ_DEAD);
    assert_int_equal(info.resident, 0);
}

/* ---- overdue returns and orphan copies ------------------------------------ */

/* A data_return the pager sits on past the deadline is copied to swap; while
 * it is overdue the pager is suspect and later pageouts go straight to swap.
 * When the pager finally takes the page, swap's copy is discarded. */
static void
test_overdue_return_copied_to_swap(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_HOLD;
    write_page(f, 2, 0x22);
    pager_flush(f, 2, 1);
    assert_int_equal(fop_nheld(&f->fp), 1);
    WAIT_FOR(fdp_holds(&f->dp, d, 2)); /* the daemon saw it overdue */
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(stat_of(&st->overdue), 1);
    assert_int_equal(stat_of(&f->ps.overdue_inflight), 1);
    assert_true(vm_pager_suspect(&f->ps, emm_mono_ns()));
    /* The frame is on loan to both; a read still sees the page. */
    assert_int_equal(read_byte(f, 2), 0x22);
    /* Suspect: the next pageout does not go to the stalled pager at all. */
    write_page(f, 4, 0x44);
    pager_flush(f, 4, 1);
    WAIT_FOR(fdp_holds(&f->dp, d, 4));
    assert_int_equal(f->fp.returns[4], 0);
    /* The pager recovers and takes page 2: swap's copy of it is obsolete. */
    f->fp.returns_mode = OP_TAKE;
    assert_int_equal(fop_release_held(&f->fp, 0), 1);
    assert_int_equal(stat_of(&f->ps.overdue_inflight), 0);
    WAIT_FOR(!fdp_holds(&f->dp, d, 2));
    assert_true(f->fp.st.has[2]);
    assert_int_equal(f->fp.st.data[2 * PS], 0x22);
}

/* A write to a page whose data_return is overdue does not wait for the
 * stalled pager: the object takes a copy (the old frame is an orphan left to
 * the pager, freed when it answers). The newest data wins everywhere after. */
static void
test_write_to_overdue_page_makes_orphan(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_HOLD;
    write_page(f, 1, 0x11);
    pager_flush(f, 1, 1);
    WAIT_FOR(fdp_holds(&f->dp, d, 1));
    struct vm_pool *pool = vm_kernel_pool(f->k);
    uint64_t free_before = vm_pool_free_count(pool);
    write_page(f, 1, 0x12); /* unfixed: waits for the pager forever */
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(stat_of(&st->cow_overdue), 1);
    /* copy + orphan (the default pager's answer to the swap copy may still be
     * on its way: it is taken on the reply port's thread) */
    WAIT_FOR(vm_pool_free_count(pool) == free_before - 1);
    assert_int_equal(read_byte(f, 1), 0x12);
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.laundry, 0); /* the orphan is no longer the object's */
    assert_int_equal(info.resident, 1);
    assert_int_equal(info.dirty, 1);
    /* The stalled pager stores the old data at last; the orphan's frame is
     * freed, and the newer page is still the object's. */
    f->fp.returns_mode = OP_TAKE;
    assert_int_equal(fop_release_held(&f->fp, 0), 1);
    /* the answer is taken on the control port's thread */
    WAIT_FOR(vm_pool_free_count(pool) == free_before);
    assert_int_equal(read_byte(f, 1), 0x12);
    /* fsync brings the newest data to the pager, and swap forgets its copy. */
    sync_obj(f, 0);
    assert_int_equal(f->fp.st.data[1 * PS], 0x12);
    WAIT_FOR(!fdp_holds(&f->dp, d, 1));
    assert_int_equal(read_byte(f, 1), 0x12);
}

/* A pager in another process hands the frame of a data_return back when the
 * message is written and answers later. The file is unlinked meanwhile (its
 * object terminated): the page, an orphan with no loan left, leaves the
 * laundry at once. Unfixed, it stayed there for ever: the laundry count never
 * fell back (at laundry_max the pageout daemon stops and writers wait for
 * frames in D state), its frame was lost, and the pool's laundry list kept a
 * page of the freed object (the overdue check read it: a use after free). */
static void
test_unanswered_return_of_terminated_object(void **state)
{
    struct fx *f = *state;
    struct vm_pool *pool = vm_kernel_pool(f->k);
    f->fp.returns_mode = OP_LOAN_BACK;
    write_page(f, 3, 0x33);
    write_page(f, 4, 0x44);
    pager_flush(f, 3, 2);
    assert_true(f->fp.nowed > 0);
    assert_int_equal(vm_kernel_laundry(f->k), 2); /* lent no more, answers owed */
    struct comp c;
    comp_init(&c);
    vm_object_terminate(f->obj, 0, done_cb, &c);
    assert_true(comp_wait(&c));
    assert_int_equal(vm_kernel_laundry(f->k), 0);
    assert_int_equal(vm_pool_free_count(pool), pool->npages);
    /* The late answers find no page: nothing changes. */
    assert_true(fop_answer_loaned(&f->fp) > 0);
    assert_int_equal(vm_kernel_laundry(f->k), 0);
    vm_object_unref(f->obj);
    f->obj = NULL;
    assert_int_equal(vm_pool_free_count(pool), pool->npages);
}

/* The same, with the object's last reference gone before the answer: the
 * late answer meets a dead control port, never the freed object. */
static void
test_unanswered_return_object_freed(void **state)
{
    struct fx *f = *state;
    struct vm_pool *pool = vm_kernel_pool(f->k);
    f->fp.returns_mode = OP_LOAN_BACK;
    write_page(f, 5, 0x55);
    pager_flush(f, 5, 1);
    assert_int_equal(vm_kernel_laundry(f->k), 1);
    struct comp c;
    comp_init(&c);
    vm_object_terminate(f->obj, 0, done_cb, &c);
    assert_true(comp_wait(&c));
    vm_object_unref(f->obj);
    f->obj = NULL;
    assert_int_equal(vm_kernel_laundry(f->k), 0);
    assert_int_equal(vm_pool_free_count(pool), pool->npages);
    assert_int_equal(fop_answer_loaned(&f->fp), 1); /* refused by the dead port */
}

/* A data_return whose frame came back but whose answer never comes is overdue
 * like a held one: after the deadline it is copied to swap (double paging),
 * counted, and the pager is suspect; its laundry no longer throttles the
 * daemon. The late answer then settles it. */
static void
test_unanswered_return_goes_overdue(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_LOAN_BACK;
    write_page(f, 6, 0x66);
    pager_flush(f, 6, 1);
    assert_int_equal(f->fp.nowed, 1);
    WAIT_FOR(fdp_holds(&f->dp, d, 6)); /* the daemon saw it overdue */
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(stat_of(&st->overdue), 1);
    assert_int_equal(vm_kernel_laundry(f->k), 0);
    assert_true(vm_pager_suspect(&f->ps, emm_mono_ns()));
    assert_int_equal(read_byte(f, 6), 0x66);
    f->fp.returns_mode = OP_TAKE;
    assert_int_equal(fop_answer_loaned(&f->fp), 1);
    WAIT_FOR(stat_of(&f->ps.overdue_inflight) == 0);
}

/* ---- replay ------------------------------------------------------------------ */

/* Pages double-paged while the pager failed go back to it once it recovers:
 * the kernel worker pages them in from swap, launders them to the pager, and
 * tells the default pager to discard its copies. An fsync meanwhile waits for
 * the replay and then succeeds. */
static void
test_replay_after_recovery(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_REFUSE;
    for (uint64_t i = 0; i < 4; i++)
        write_page(f, 8 + i, (uint8_t)(0x80 + i));
    pager_flush(f, 8, 4);
    WAIT_FOR(fdp_pages(&f->dp, d) == 4);
    WAIT_FOR(!is_resident(f, 8) && !is_resident(f, 11));
    for (uint64_t i = 0; i < 4; i++)
        assert_false(f->fp.st.has[8 + i]);
    f->fp.returns_mode = OP_TAKE;
    sync_obj(f, 0); /* waits for the replay (the pager was sick for ~1 s) */
    assert_int_equal(fdp_pages(&f->dp, d), 0);
    for (uint64_t i = 0; i < 4; i++) {
        assert_true(f->fp.st.has[8 + i]);
        assert_int_equal(f->fp.st.data[(8 + i) * PS], 0x80 + i);
    }
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(stat_of(&st->replayed), 4);
    assert_int_equal(stat_of(&f->ps.replayed), 4);
    assert_true(d->discards >= 4);
    /* Reads now come from the pager. */
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.in_swap, 0);
    assert_int_equal(read_byte(f, 9), 0x81);
}

/* Pages swap held for the object before it was mapped (a crash, then a
 * restart) are replayed to the pager as soon as the object exists. */
static void
test_replay_at_attach(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d;
    /* Swap already holds pages 20 and 21 under the object's key. */
    struct emm_port *port;
    void *handle;
    assert_int_equal(fdp_attach(&f->dp, vm_dp_key(3, 7, 0), &port, &handle), 0);
    emm_port_unref(port);
    d = handle;
    uint8_t page[PS];
    memset(page, 0xa0, PS);
    store_put(&d->st, 20, page);
    memset(page, 0xa1, PS);
    store_put(&d->st, 21, page);
    /* The pager's own copy of 21 is older. */
    memset(page, 0x01, PS);
    store_put(&f->fp.st, 21, page);
    fx_create(f, 0);
    WAIT_FOR(fdp_pages(&f->dp, d) == 0);
    assert_int_equal(f->fp.st.data[20 * PS], 0xa0);
    assert_int_equal(f->fp.st.data[21 * PS], 0xa1);
    assert_int_equal(read_byte(f, 21), 0xa1);
}

/* ---- temporary objects ------------------------------------------------------ */

/* A temporary object's pager is the default pager: init/ready with it, its
 * pageouts go to swap and its faults come back from swap. */
static void
test_temporary_object_pages_through_swap(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    assert_int_equal(d->inits, 1);
    write_page(f, 6, 0x66);
    sync_obj(f, 0);
    assert_true(fdp_holds(&f->dp, d, 6));
    assert_int_equal(read_byte(f, 6), 0x66);
    /* A page never written reads as zeros (data_unavailable, no NOT_HELD). */
    assert_int_equal(read_byte(f, 7), 0);
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.in_swap, 1);
}


/* ---- SEEK_DATA / SEEK_HOLE and st_blocks ------------------------------------ */

struct seekc {
    struct comp c;
    uint64_t found;
};

static void
seek_cb(void *arg, uint64_t found)
{
    struct seekc *sc = arg;
    sc->found = found;
    done_cb(&sc->c, 0);
}

#define NONE UINT64_MAX

/* SEEK_DATA (want_data) or SEEK_HOLE from page `from`, in pages, over the
 * whole object; waits for the answer. */
static uint64_t
seek(struct fx *f, uint64_t from, int want_data)
{
    struct seekc sc;
    comp_init(&sc.c);
    vm_object_seek(f->obj, from, NPAGES, want_data, seek_cb, &sc);
    if (!comp_wait(&sc.c))
        fail_msg("SEEK_%s(%llu) did not complete", want_data ? "DATA" : "HOLE",
                 (unsigned long long)from);
    return sc.found;
}

/* st_blocks in pages, as the front end computes it: what the pager stores
 * (the fake's store) plus what the kernel holds that the pager lacks. */
static uint64_t
blocks(struct fx *f)
{
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    uint64_t stored = 0;
    for (uint64_t i = 0; i < NPAGES; i++)
        stored += f->fp.st.has[i];
    return stored + info.new_pages;
}

/* Pages only resident (written, never laundered): the kernel knows them; the
 * pager is asked only past them, and has nothing. */
static void
test_seek_resident_only(void **state)
{
    struct fx *f = *state;
    write_page(f, 2, 0x22);
    write_page(f, 3, 0x23);
    write_page(f, 7, 0x27);
    assert_int_equal(seek(f, 0, 1), 2);
    assert_int_equal(seek(f, 2, 1), 2);
    assert_int_equal(seek(f, 2, 0), 4);
    assert_int_equal(seek(f, 4, 1), 7);
    assert_int_equal(seek(f, 7, 0), 8);
    assert_true(seek(f, 8, 1) == NONE);
    assert_int_equal(seek(f, 0, 0), 0);
    assert_int_equal(blocks(f), 3);
    /* A page read as a hole is resident but not data. */
    assert_int_equal(read_byte(f, 4), 0);
    assert_int_equal(seek(f, 4, 0), 4);
    assert_int_equal(seek(f, 4, 1), 7);
    assert_int_equal(blocks(f), 3);
}

/* Pages only in swap (double paged, evicted): the default pager's holdings. */
static void
test_seek_swap_only(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_REFUSE;
    write_page(f, 4, 0x44);
    write_page(f, 5, 0x45);
    pager_flush(f, 4, 2);
    WAIT_FOR(fdp_pages(&f->dp, d) == 2);
    WAIT_FOR(!is_resident(f, 4) && !is_resident(f, 5));
    assert_int_equal(blocks(f), 2); /* the same while the failing pager refuses a replay */
    /* While it is suspect the pager is not asked: SEEK_DATA from 4 is known. */
    assert_int_equal(seek(f, 4, 1), 4);
    assert_int_equal(seek(f, 5, 1), 5);
    /* It answers again (a replay may now move the pages to it: the answers
     * are the same whether a page is in swap, on its way, or at the pager). */
    f->fp.returns_mode = OP_TAKE;
    f->ps.sick_until_ns = 0;
    assert_int_equal(seek(f, 0, 1), 4);
    assert_int_equal(seek(f, 4, 0), 6);
    assert_int_equal(seek(f, 5, 0), 6);
    assert_true(seek(f, 6, 1) == NONE);
    assert_int_equal(seek(f, 0, 0), 0);
    assert_int_equal(d->queries, 0);
}

/* Pages only at the pager (stored before the object was mapped): only its
 * answer to data_query knows them. */
static void
test_seek_pager_only(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x10, PS);
    for (uint64_t i = 10; i < 13; i++)
        store_put(&f->fp.st, i, page);
    store_put(&f->fp.st, 20, page);
    fx_create(f, 0);
    assert_int_equal(seek(f, 0, 1), 10);
    assert_int_equal(seek(f, 0, 0), 0);
    assert_int_equal(seek(f, 10, 0), 13);
    assert_int_equal(seek(f, 11, 0), 13);
    assert_int_equal(seek(f, 13, 1), 20);
    assert_int_equal(seek(f, 20, 0), 21);
    assert_true(seek(f, 21, 1) == NONE);
    assert_true(f->fp.queries >= 7);
    assert_int_equal(blocks(f), 4);
    /* Mixed with resident pages: one written in the pager's hole joins runs. */
    write_page(f, 13, 0x13);
    assert_int_equal(seek(f, 10, 0), 14);
    /* A punch reaches the pager before a later query: page 11 is a hole. */
    struct comp c;
    comp_init(&c);
    vm_object_punch(f->obj, 11 * PS, PS, done_cb, &c);
    assert_true(comp_wait(&c));
    assert_int_equal(seek(f, 10, 0), 11);
    assert_int_equal(seek(f, 11, 1), 12);
    assert_int_equal(blocks(f), 4); /* 10, 12, 20 stored, 13 dirty */
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(stat_of(&st->queries), f->fp.queries);
    assert_int_equal(stat_of(&st->queries_expired), 0);
}

/* A temporary object: its pager is the default pager, whose holdings the
 * kernel sees; nobody is asked. */
static void
test_seek_temporary(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    write_page(f, 6, 0x66);
    sync_obj(f, 0); /* in swap, and resident clean */
    write_page(f, 9, 0x69); /* dirty, only resident */
    assert_int_equal(read_byte(f, 12), 0); /* a hole, resident */
    assert_int_equal(seek(f, 0, 1), 6);
    assert_int_equal(seek(f, 6, 0), 7);
    assert_int_equal(seek(f, 7, 1), 9);
    assert_int_equal(seek(f, 9, 0), 10);
    assert_true(seek(f, 10, 1) == NONE);
    assert_int_equal(seek(f, 12, 0), 12);
    assert_int_equal(d->queries, 0);
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.in_swap, 1);
    assert_int_equal(info.new_pages, 2); /* 6 in swap, 9 dirty */
}

/* A pager that does not answer its queries never hangs a seek: the kernel
 * gives up at the object's deadline and answers as if the pager held data;
 * while the pager is suspect it is not asked at all. Its late answer is
 * ignored. */
static void
test_seek_stalled_pager_bounded(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x10, PS);
    store_put(&f->fp.st, 10, page);
    fx_create(f, 50);
    f->fp.hold_queries = 1;
    assert_int_equal(seek(f, 0, 1), 0); /* unfixed: waits for the pager forever */
    assert_int_equal(seek(f, 0, 0), NPAGES);
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(stat_of(&st->queries_expired), 2);
    fop_answer_held_queries(&f->fp); /* late: changes nothing */
    /* Suspect (sits on an overdue data_return): no query at all. */
    f->fp.returns_mode = OP_HOLD;
    write_page(f, 1, 0x11);
    pager_flush(f, 1, 1);
    WAIT_FOR(stat_of(&f->ps.overdue_inflight) == 1);
    unsigned q = f->fp.queries;
    assert_int_equal(seek(f, 2, 1), 2);
    assert_int_equal(seek(f, 1, 0), NPAGES);
    assert_int_equal(f->fp.queries, q);
    /* It recovers: its answers count again. */
    f->fp.hold_queries = 0;
    f->fp.returns_mode = OP_TAKE;
    assert_int_equal(fop_release_held(&f->fp, 0), 1);
    /* the answer is taken on the control port's thread: wait for it */
    WAIT_FOR(stat_of(&f->ps.overdue_inflight) == 0);
    f->ps.sick_until_ns = 0;
    assert_int_equal(seek(f, 2, 1), 10);
    assert_int_equal(seek(f, 1, 0), 2);
}

/* ---- flush and the pager's numbers, through the kernel ---------------------- */

/* `emmctl flush`: the kernel returns the dirty pages to the pager, drops every
 * page, and synchronizes; the pager's traffic is counted by the kernel. */
static void
test_flush_through_kernel(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x50, PS);
    store_put(&f->fp.st, 5, page);
    write_page(f, 1, 0x11);
    write_page(f, 2, 0x12);
    assert_int_equal(read_byte(f, 5), 0x50);
    assert_int_equal(read_byte(f, 6), 0);
    struct comp c;
    comp_init(&c);
    vm_object_flush(f->obj, done_cb, &c);
    assert_true(comp_wait(&c));
    assert_int_equal(c.err, 0);
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.resident, 0);
    assert_int_equal(f->fp.returns[1], 1);
    assert_int_equal(f->fp.returns[2], 1);
    assert_int_equal(f->fp.st.data[1 * PS], 0x11);
    assert_int_equal(f->fp.st.data[2 * PS], 0x12);
    assert_int_equal(stat_of(&f->ps.msg_inits), 1);
    assert_int_equal(stat_of(&f->ps.msg_requests), 2);
    assert_int_equal(stat_of(&f->ps.msg_supplies), 1);
    assert_int_equal(stat_of(&f->ps.msg_unavailable), 1);
    assert_int_equal(stat_of(&f->ps.msg_returns), 2);
    assert_int_equal(stat_of(&f->ps.msg_syncs), 1);
    assert_int_equal(stat_of(&f->ps.msg_return_errors), 0);
    /* Read back from the pager. */
    assert_int_equal(read_byte(f, 2), 0x12);
    assert_int_equal(stat_of(&f->ps.msg_requests), 3);
    /* A refusal is the pager's; a page faulted from swap is not its supply. */
    f->fp.returns_mode = OP_REFUSE;
    write_page(f, 3, 0x13);
    pager_flush(f, 3, 1);
    WAIT_FOR(stat_of(&f->ps.double_paged) == 1);
    atomic_store(&f->ps.sick_until_ns, UINT64_MAX); /* no replay meanwhile */
    assert_int_equal(stat_of(&f->ps.msg_return_errors), 1);
    WAIT_FOR(!is_resident(f, 3));
    assert_int_equal(read_byte(f, 3), 0x13);
    assert_int_equal(stat_of(&f->ps.msg_supplies), 2); /* page 2 only, not swap's page 3 */
}

/* ---- holes of a suspect pager ------------------------------------------------ */

/* While the pager sits on an overdue data_return, faults on pages it does not
 * store are zero-filled by the kernel (a data_request would wait behind the
 * stalled return); pages it does store are still asked for. What it stores is
 * the kernel's existence map, learnt with data_query when the object became
 * ready and kept by the kernel's own returns and discards: nobody is asked
 * while the pager is stalled (no upcall, no query). */
static void
test_holes_filled_from_map(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x10, PS);
    store_put(&f->fp.st, 10, page);
    store_put(&f->fp.st, 20, page);
    fx_create(f, 50);
    WAIT_FOR(locked_u(&f->fp.lock, &f->fp.queries) >= 1); /* learnt at ready */
    struct comp c;
    comp_init(&c);
    vm_object_punch(f->obj, 20 * PS, PS, done_cb, &c); /* a discard: 20 is gone */
    assert_true(comp_wait(&c));
    f->fp.returns_mode = OP_HOLD;
    write_page(f, 1, 0x11);
    pager_flush(f, 1, 1);
    WAIT_FOR(stat_of(&f->ps.overdue_inflight) == 1);
    atomic_store(&f->ps.sick_until_ns, UINT64_MAX);
    unsigned req = f->fp.nrequests, q = locked_u(&f->fp.lock, &f->fp.queries);
    comp_init(&c);
    vm_object_read(f->obj, 4 * PS, 4 * PS, read_cb, &c);
    assert_true(comp_wait(&c));
    assert_int_equal(c.err, 0);
    static const uint8_t zero[4 * EMM_PAGE_SIZE];
    assert_memory_equal(c.buf, zero, 4 * PS);
    assert_int_equal(stat_of(&vm_kernel_stats(f->k)->holes_filled), 4); /* unfixed (no map): 0 */
    assert_int_equal(f->fp.nrequests, req); /* not asked: holes */
    assert_int_equal(read_byte(f, 20), 0);  /* discarded: a hole too */
    assert_int_equal(stat_of(&vm_kernel_stats(f->k)->holes_filled), 5);
    assert_int_equal(read_byte(f, 10), 0x10); /* stored: asked */
    assert_int_equal(f->fp.requests[10], 1);
    /* Page 1 went back in the stalled return: it may be stored, so it is not
     * a hole (its newest copy is in swap or still resident). */
    assert_int_equal(read_byte(f, 1), 0x11);
    assert_int_equal(locked_u(&f->fp.lock, &f->fp.queries), q); /* nobody asked */
}

/* A new object (emmd created it, or its pager said it stores none of it):
 * its existence map is known at once, nothing is asked, and a stall of its
 * pager from the first fault on never holds up its holes. */
static void
test_new_object_map_known(void **state)
{
    struct fx *f = *state;
    struct vm_object_args a = {.id = 7,
                               .size = NPAGES * PS,
                               .pager = emm_port_ref(f->fp.port),
                               .owner = f,
                               .dp_key = vm_dp_key(3, 7, 0),
                               .deadline_ms = 50,
                               .pstats = &f->ps,
                               .pager_empty = 1};
    assert_int_equal(vm_object_create(f->k, &a, &f->obj), 0);
    f->fp.hold_queries = 1; /* would hang a walk: none is made */
    f->fp.returns_mode = OP_HOLD;
    write_page(f, 1, 0x11);
    pager_flush(f, 1, 1);
    WAIT_FOR(stat_of(&f->ps.overdue_inflight) == 1);
    atomic_store(&f->ps.sick_until_ns, UINT64_MAX);
    assert_int_equal(read_byte(f, 5), 0);
    assert_int_equal(stat_of(&vm_kernel_stats(f->k)->holes_filled), 1);
    assert_int_equal(locked_u(&f->fp.lock, &f->fp.queries), 0);
    assert_int_equal(read_byte(f, 1), 0x11);
}

/* A pager shared with other kernels (a memory server): no existence map, so
 * a suspect one's holes are asked for, never zero-filled (another host may
 * have written them). */
static void
test_shared_pager_no_map(void **state)
{
    struct fx *f = *state;
    struct vm_object_args a = {.id = 7,
                               .size = NPAGES * PS,
                               .pager = emm_port_ref(f->fp.port),
                               .owner = f,
                               .dp_key = vm_dp_key(3, 7, 0),
                               .deadline_ms = 50,
                               .pstats = &f->ps,
                               .pager_empty = 1,
                               .pager_shared = 1};
    assert_int_equal(vm_object_create(f->k, &a, &f->obj), 0);
    f->fp.returns_mode = OP_HOLD;
    write_page(f, 1, 0x11);
    pager_flush(f, 1, 1);
    WAIT_FOR(stat_of(&f->ps.overdue_inflight) == 1);
    atomic_store(&f->ps.sick_until_ns, UINT64_MAX);
    uint8_t page[PS];
    memset(page, 0x55, PS);
    store_put(&f->fp.st, 5, page); /* "another host" wrote it */
    assert_int_equal(read_byte(f, 5), 0x55); /* unfixed: 0, a filled hole */
    assert_int_equal(stat_of(&vm_kernel_stats(f->k)->holes_filled), 0);
    assert_int_equal(locked_u(&f->fp.lock, &f->fp.queries), 0);
}

/* st_blocks' share of the pager: its count, asked with data_query
 * (MO_F_QUERY_COUNT) and kept until a data_return or discard goes to it. */
static uint64_t
stored(struct fx *f)
{
    struct seekc sc;
    comp_init(&sc.c);
    vm_object_stored(f->obj, seek_cb, &sc);
    if (!comp_wait(&sc.c))
        fail_msg("vm_object_stored did not complete");
    return sc.found;
}

static void
test_stored_count(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x10, PS);
    for (uint64_t i = 10; i < 13; i++)
        store_put(&f->fp.st, i, page);
    fx_create(f, 50);
    assert_int_equal(stored(f), 3);
    unsigned q = f->fp.queries;
    assert_int_equal(stored(f), 3); /* nothing went to the pager: not asked again */
    assert_int_equal(f->fp.queries, q);
    write_page(f, 5, 0x55);
    sync_obj(f, 0);
    assert_int_equal(stored(f), 4);
    struct comp c;
    comp_init(&c);
    vm_object_punch(f->obj, 10 * PS, 2 * PS, done_cb, &c);
    assert_true(comp_wait(&c));
    assert_int_equal(stored(f), 2);
    /* A silent pager: its last count, after the deadline. */
    f->fp.hold_queries = 1;
    write_page(f, 20, 0x20);
    sync_obj(f, 0); /* (synchronize is answered; queries are not) */
    assert_int_equal(stored(f), 2);
    assert_true(stat_of(&vm_kernel_stats(f->k)->queries_expired) >= 1);
}

static void
test_stored_count_temporary(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    write_page(f, 3, 0x33);
    sync_obj(f, 0);
    assert_int_equal(stored(f), 0); /* swap's pages are the kernel's in_swap */
    assert_int_equal(d->queries, 0);
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.new_pages, 1);
}

/* ---- objects not mapped, and a filesystem's total ----------------------------- */

/* How many pages the pager stores of the object behind its port while the
 * kernel has not mapped it (no vm_object): vm_kernel_query_stored. */
static uint64_t
unmapped_count(struct fx *f, uint64_t deadline_ms)
{
    struct seekc sc;
    comp_init(&sc.c);
    vm_kernel_query_stored(f->k, f->fp.port, &f->ps, deadline_ms, seek_cb, &sc);
    if (!comp_wait(&sc.c))
        fail_msg("vm_kernel_query_stored did not complete");
    return sc.found;
}

/* st_blocks and statfs of an object nobody opened: a data_query on its port
 * carrying a reply right to the kernel's query port; no init, no control
 * port. A pager that cannot tell, stays silent, answers badly or is suspect
 * gives VM_COUNT_UNKNOWN, bounded by the deadline. */
static void
test_stored_unmapped(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x10, PS);
    for (uint64_t i = 10; i < 13; i++)
        store_put(&f->fp.st, i, page);
    struct vm_stats *st = vm_kernel_stats(f->k);
    assert_int_equal(unmapped_count(f, 0), 3);
    assert_int_equal(locked_u(&f->fp.lock, &f->fp.queries), 1);
    pthread_mutex_lock(&f->fp.lock);
    assert_null(f->fp.control); /* never initialized */
    pthread_mutex_unlock(&f->fp.lock);
    assert_int_equal(stat_of(&f->ps.msg_queries), 1);
    /* It cannot tell (a run for the whole span): unknown, not 2^52 pages. */
    f->fp.query_cannot_tell = 1;
    assert_true(unmapped_count(f, 0) == VM_COUNT_UNKNOWN);
    f->fp.query_cannot_tell = 0;
    /* A bad answer is refused and counted; the query then ends at its deadline. */
    f->fp.query_bad = 1;
    uint64_t bad = stat_of(&st->bad_messages);
    assert_true(unmapped_count(f, 30) == VM_COUNT_UNKNOWN);
    assert_int_equal(stat_of(&st->bad_messages), bad + 1);
    f->fp.query_bad = 0;
    /* Silent: given up at the deadline by the kernel worker; a late answer is ignored. */
    f->fp.hold_queries = 1;
    uint64_t expired = stat_of(&st->queries_expired);
    assert_true(unmapped_count(f, 30) == VM_COUNT_UNKNOWN);
    assert_true(stat_of(&st->queries_expired) > expired);
    fop_answer_held_queries(&f->fp);
    f->fp.hold_queries = 0;
    /* Suspect: not asked at all (the query would wait behind its stalled returns). */
    f->ps.sick_until_ns = emm_mono_ns() + 60000000000ull;
    unsigned q = locked_u(&f->fp.lock, &f->fp.queries);
    assert_true(unmapped_count(f, 0) == VM_COUNT_UNKNOWN);
    assert_int_equal(locked_u(&f->fp.lock, &f->fp.queries), q);
    f->ps.sick_until_ns = 0;
    assert_int_equal(unmapped_count(f, 0), 3);
    /* Once mapped, the same count through the object. */
    fx_create(f, 0);
    assert_int_equal(stored(f), 3);
}

/* The kernel worker reads the clock, then gives up the queries past their
 * wait: one sent in between is not 2^64 ns old (it was answered "unknown" at
 * once, now and then: test_discard_unmapped failed 1 run in 10). */
static void
test_query_sent_after_clock_read(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x10, PS);
    store_put(&f->fp.st, 3, page);
    uint64_t before = emm_mono_ns();
    f->fp.hold_queries = 1;
    struct seekc sc;
    comp_init(&sc.c);
    vm_kernel_query_stored(f->k, f->fp.port, &f->ps, 0, seek_cb, &sc);
    vm_queries_expire(f->k, before, 0);
    pthread_mutex_lock(&sc.c.lock);
    int done = sc.c.done;
    pthread_mutex_unlock(&sc.c.lock);
    assert_false(done);
    f->fp.hold_queries = 0;
    fop_answer_held_queries(&f->fp);
    assert_true(comp_wait(&sc.c));
    assert_int_equal(sc.found, 1);
}

/* A file deleted before anyone opened it: its pages go at its pager through
 * the protocol (a discard on its port, no init), not by a call into a backend. */
static void
test_discard_unmapped(void **state)
{
    struct fx *f = *state;
    uint8_t page[PS];
    memset(page, 0x10, PS);
    for (uint64_t i = 10; i < 13; i++)
        store_put(&f->fp.st, i, page);
    assert_int_equal(unmapped_count(f, 0), 3);
    assert_int_equal(vm_kernel_discard_unmapped(f->k, f->fp.port, &f->ps), 0);
    assert_int_equal(unmapped_count(f, 0), 0);
    assert_int_equal(stat_of(&f->ps.msg_discards), 1);
    pthread_mutex_lock(&f->fp.lock);
    assert_null(f->fp.control); /* never initialized */
    pthread_mutex_unlock(&f->fp.lock);
}

/* statfs's used pages as emmd sums them: per object, the pager's count plus
 * the pages the kernel holds that the pager lacks (new_pages), and the count
 * query for objects not mapped. Pages stored before the mapping, resident
 * only, in the pager only and in swap only are each counted once. */
static void
test_stored_totals(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d;
    uint8_t page[PS];
    memset(page, 0x30, PS);
    for (uint64_t i = 30; i < 34; i++)
        store_put(&f->fp.st, i, page); /* 4 pages stored before anyone maps it */
    assert_int_equal(unmapped_count(f, 0), 4);
    fx_create(f, 0);
    d = fx_dpo(f);
    write_page(f, 2, 0x02); /* resident only */
    write_page(f, 3, 0x03);
    write_page(f, 5, 0x05); /* in the pager only: synced, then flushed from memory */
    write_page(f, 6, 0x06);
    struct comp c;
    comp_init(&c);
    vm_object_flush(f->obj, done_cb, &c);
    assert_true(comp_wait(&c));
    assert_int_equal(c.err, 0);
    assert_false(is_resident(f, 5));
    assert_int_equal(stored(f), 8); /* 30..33, 2, 3, 5, 6 */
    write_page(f, 40, 0x40); /* resident only */
    f->fp.returns_mode = OP_REFUSE; /* in swap only */
    write_page(f, 8, 0x08);
    write_page(f, 9, 0x09);
    pager_flush(f, 8, 2);
    WAIT_FOR(fdp_pages(&f->dp, d) == 2);
    WAIT_FOR(!is_resident(f, 8) && !is_resident(f, 9));
    struct vm_object_info info;
    vm_object_info(f->obj, &info);
    assert_int_equal(info.in_swap, 2);
    /* 8 stored + 40 resident only + 8, 9 in swap (the failing pager is
     * suspect: its last count stands, not asked). */
    assert_int_equal(stored(f) + info.new_pages, 11);
}

/* ---- truncate while swap still writes an overdue copy -------------------------- */

/* A page whose data_return is overdue has its copy on the way to swap when the
 * object is truncated below it. Swap writes the copy after the truncate: the
 * truncate's discard must reach swap after it (in the port's order), or the
 * old data comes back once the object grows again (t_fsx_stall, seed 204:
 * data of a write from before an O_TRUNC read back after it). */
static void
test_truncate_during_overdue_copy(void **state)
{
    struct fx *f = *state;
    struct fdp_obj *d = fx_dpo(f);
    f->fp.returns_mode = OP_HOLD;
    f->dp.hold_returns = 1;
    write_page(f, 3, 0x33);
    pager_flush(f, 3, 1);
    WAIT_FOR(locked_u(&f->dp.lock, &d->returns) == 1); /* the copy reached swap, unwritten */
    assert_int_equal(fdp_pages(&f->dp, d), 0);
    struct comp c;
    comp_init(&c);
    vm_object_truncate(f->obj, 0, done_cb, &c);
    assert_true(comp_wait(&c));
    assert_int_equal(c.err, 0);
    fdp_finish_held(&f->dp); /* swap writes the copy, then sees what came after */
    fop_release_held(&f->fp, -EIO); /* the pager never took it */
    vm_object_set_size(f->obj, NPAGES * PS);
    assert_int_equal(read_byte(f, 3), 0); /* unfixed: 0x33 from swap */
    assert_int_equal(fdp_pages(&f->dp, d), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dp_reply_port_takes_only_completions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_return_double_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readaround_double_paged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_full_kills_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overdue_return_copied_to_swap, setup_deadline,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_to_overdue_page_makes_orphan, setup_deadline,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_return_of_terminated_object, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_return_object_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_return_goes_overdue, setup_deadline,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replay_after_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_at_attach, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_temporary_object_pages_through_swap,
                                        setup_temporary, teardown),
        cmocka_unit_test_setup_teardown(test_seek_resident_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seek_swap_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seek_pager_only, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_seek_temporary, setup_temporary, teardown),
        cmocka_unit_test_setup_teardown(test_seek_stalled_pager_bounded, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_flush_through_kernel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holes_filled_from_map, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_new_object_map_known, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_shared_pager_no_map, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_stored_count, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_stored_count_temporary, setup_temporary, teardown),
        cmocka_unit_test_setup_teardown(test_stored_unmapped, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_stored_totals, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_discard_unmapped, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_query_sent_after_clock_read, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_during_overdue_copy, setup_deadline,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
