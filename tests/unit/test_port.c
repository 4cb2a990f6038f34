/*
 * test_port.c - emm ports: inline delivery order and seqno, no recursion from a
 * handler, dead ports (-EPIPE), send-once rights, port sets under concurrent
 * senders, hold/resume, and reference counts (run the Asan build for leaks).
 *
 * Each test owns its ports and sets; handlers record into a per-test struct.
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dead_name_fixture.h"

#include "port.h"

#define MAXREC 256

/* What a recording handler saw. */
struct rec {
    pthread_mutex_t lock;
    int n;
    int32_t args[MAXREC];
    uint64_t seqnos[MAXREC];
    atomic_int depth, max_depth, active;
    int hold_on;               /* arg that makes the handler hold the port */
    struct emm_port *resend;   /* handler of arg 0 sends arg 1 here */
    int overlap;               /* a handler ran while another was active */
    atomic_int released;       /* release hook calls */
    int statuses[MAXREC];
};

static void
rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->hold_on = -1;
}

static void
rec_fini(struct rec *r)
{
    pthread_mutex_destroy(&r->lock);
}

static void
msg_release_rec(struct emm_msg *msg, int status)
{
    struct rec *r = msg->release_ctx;
    if (r != NULL) {
        int i = atomic_fetch_add(&r->released, 1);
        if (i < MAXREC)
            r->statuses[i] = status;
    }
    free(msg);
}

static struct emm_msg *
mk(int32_t arg, struct rec *r)
{
    struct emm_msg *m = emm_msg_new(MO_DATA_REQUEST, 0, 0);
    assert_non_null(m);
    m->arg = arg;
    m->release = msg_release_rec;
    m->release_ctx = r;
    return m;
}

static void
rec_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct rec *r = emm_port_context(port);
    int d = atomic_fetch_add(&r->depth, 1) + 1;
    if (d > atomic_load(&r->max_depth))
        atomic_store(&r->max_depth, d);
    if (atomic_fetch_add(&r->active, 1) != 0)
        r->overlap = 1;
    pthread_mutex_lock(&r->lock);
    if (r->n < MAXREC) {
        r->args[r->n] = msg->arg;
        r->seqnos[r->n] = msg->seqno;
    }
    r->n++;
    pthread_mutex_unlock(&r->lock);
    int32_t arg = msg->arg;
    emm_msg_release(msg, 0);
    if (arg == r->hold_on)
        emm_port_hold(port);
    if (arg == 0 && r->resend != NULL)
        assert_int_equal(emm_port_send(r->resend, mk(1, r)), 0);
    atomic_fetch_sub(&r->active, 1);
    atomic_fetch_sub(&r->depth, 1);
}

static int
rec_count(struct rec *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- inline ports ------------------------------------------------------ */

/* The handoff filter: messages with arg < 100 may run in the sender. */
static int
small_arg(const struct emm_msg *msg)
{
    return msg->arg < 100;
}

static _Thread_local int in_sender;

static void
where_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct rec *r = emm_port_context(port);
    pthread_mutex_lock(&r->lock);
    if (r->n < MAXREC) {
        r->args[r->n] = msg->arg;
        r->statuses[r->n] = in_sender; /* 1: ran in the sending thread */
    }
    r->n++;
    pthread_mutex_unlock(&r->lock);
    emm_msg_release(msg, 0);
}

/* A set's port with may_inline: an accepted message on an idle port runs in the
 * sender; a refused one goes to the workers; order holds across both. */
static void
test_set_handoff(void **state)
{
    (void)state;
    struct emm_portset *set;
    struct emm_port *port;
    struct rec r;
    rec_init(&r);
    assert_int_equal(emm_portset_create("t", 1, 0, &set), 0);
    assert_int_equal(emm_port_create("p", where_handler, &r, set, &port), 0);
    emm_port_set_may_inline(port, small_arg);
    in_sender = 1;
    assert_int_equal(emm_port_send(port, mk(1, NULL)), 0);
    assert_int_equal(rec_count(&r), 1); /* done when send returned */
    assert_int_equal(r.statuses[0], 1);
    assert_int_equal(emm_port_send(port, mk(200, NULL)), 0); /* refused: a worker runs it */
    for (int i = 0; i < 2000 && rec_count(&r) < 2; i++)
        usleep(1000);
    assert_int_equal(rec_count(&r), 2);
    assert_int_equal(r.statuses[1], 0);
    /* Mixed bursts keep send order. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(emm_port_send(port, mk(i % 2 ? 150 + i : i, NULL)), 0);
    for (int i = 0; i < 2000 && rec_count(&r) < 52; i++)
        usleep(1000);
    assert_int_equal(rec_count(&r), 52);
    for (int i = 0; i < 50; i++)
        assert_int_equal(r.args[2 + i], i % 2 ? 150 + i : i);
    in_sender = 0;
    emm_port_destroy(port);
    emm_portset_destroy(set);
    rec_fini(&r);
}

static void
test_inline_order_seqno(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", rec_handler, &r, NULL, &p), 0);
    assert_int_equal(emm_port_refs(p), 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(emm_port_send(p, mk(i + 10, &r)), 0);
    assert_int_equal(r.n, 100);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(r.args[i], i + 10);
        assert_int_equal(r.seqnos[i], (uint64_t)i + 1);
    }
    assert_int_equal(atomic_load(&r.released), 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(r.statuses[i], 0);
    assert_int_equal(r.max_depth, 1);
    assert_int_equal(emm_port_refs(p), 1); /* the drainer's reference is gone */
    assert_false(emm_port_busy(p));
    emm_port_destroy(p);
    rec_fini(&r);
}

static void
test_inline_send_from_handler_is_queued(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", rec_handler, &r, NULL, &p), 0);
    r.resend = p;
    assert_int_equal(emm_port_send(p, mk(0, &r)), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.args[0], 0);
    assert_int_equal(r.args[1], 1);
    assert_int_equal(r.seqnos[0], 1);
    assert_int_equal(r.seqnos[1], 2);
    assert_int_equal(r.max_depth, 1); /* not run recursively */
    assert_int_equal(r.overlap, 0);
    assert_int_equal(emm_port_refs(p), 1);
    emm_port_destroy(p);
    rec_fini(&r);
}


/* dn_rec, dn_handler, dn_count: dead_name_fixture.h */

/* Mach's dead-name notification: the holder of a send right learns that the
 * port died (its receive right destroyed), once, with its cookie; a request
 * on a dead port fires at once; a cancelled one never fires. */
static void
test_dead_name_notification(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct dn_rec d = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct emm_port *p, *q, *notify;
    assert_int_equal(emm_port_create("p", rec_handler, &r, NULL, &p), 0);
    assert_int_equal(emm_port_create("q", rec_handler, &r, NULL, &q), 0);
    assert_int_equal(emm_port_create("notify", dn_handler, &d, NULL, &notify), 0);
    emm_port_ref(p); /* our send rights */
    emm_port_ref(q);
    assert_int_equal(emm_port_request_dead_name(p, notify, 41), 0);
    assert_int_equal(emm_port_request_dead_name(p, notify, 42), -EBUSY);
    assert_int_equal(emm_port_request_dead_name(q, notify, 43), 0);
    emm_port_cancel_dead_name(q, notify);
    assert_int_equal(dn_count(&d), 0);
    emm_port_destroy(p);
    emm_port_destroy(q);
    assert_int_equal(dn_count(&d), 1); /* p's only: q's was cancelled */
    assert_int_equal(d.ids[0], EMM_NOTIFY_DEAD_NAME);
    assert_int_equal(d.cookies[0], 41);
    emm_port_cancel_dead_name(p, notify); /* nothing left to cancel */
    assert_int_equal(emm_port_request_dead_name(p, notify, 44), 0); /* dead: at once */
    assert_int_equal(dn_count(&d), 2);
    assert_int_equal(d.cookies[1], 44);
    assert_int_equal(emm_port_refs(notify), 1); /* the requests hold no right now */
    emm_port_unref(p);
    emm_port_unref(q);
    emm_port_destroy(notify);
    rec_fini(&r);
}

/* Objects that share one pager port (a pager may name the same port for two
 * objects) each get their own notification: a second watcher is not refused. */
static void
test_dead_name_two_watchers(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct dn_rec d1 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct dn_rec d2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct emm_port *p, *n1, *n2;
    assert_int_equal(emm_port_create("p", rec_handler, &r, NULL, &p), 0);
    assert_int_equal(emm_port_create("n1", dn_handler, &d1, NULL, &n1), 0);
    assert_int_equal(emm_port_create("n2", dn_handler, &d2, NULL, &n2), 0);
    emm_port_ref(p);
    assert_int_equal(emm_port_request_dead_name(p, n1, 1), 0);
    assert_int_equal(emm_port_request_dead_name(p, n2, 2), 0);
    assert_int_equal(emm_port_request_dead_name(p, n2, 3), -EBUSY); /* one per watcher */
    emm_port_destroy(p);
    assert_int_equal(dn_count(&d1), 1);
    assert_int_equal(dn_count(&d2), 1);
    assert_int_equal(d1.cookies[0], 1);
    assert_int_equal(d2.cookies[0], 2);
    /* A watcher that cancels is not told; the other still is. */
    struct emm_port *q;
    assert_int_equal(emm_port_create("q", rec_handler, &r, NULL, &q), 0);
    emm_port_ref(q);
    assert_int_equal(emm_port_request_dead_name(q, n1, 4), 0);
    assert_int_equal(emm_port_request_dead_name(q, n2, 5), 0);
    emm_port_cancel_dead_name(q, n1);
    emm_port_destroy(q);
    assert_int_equal(dn_count(&d1), 1);
    assert_int_equal(dn_count(&d2), 2);
    assert_int_equal(d2.cookies[1], 5);
    assert_int_equal(emm_port_refs(n1), 1);
    assert_int_equal(emm_port_refs(n2), 1);
    emm_port_unref(p);
    emm_port_unref(q);
    emm_port_destroy(n1);
    emm_port_destroy(n2);
    rec_fini(&r);
}

static void
test_dead_port_epipe(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct emm_portset *set;
    /* A set without workers: messages stay queued. */
    assert_int_equal(emm_portset_create("t", 0, 0, &set), 0);
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", rec_handler, &r, set, &p), 0);
    emm_port_ref(p); /* a send right of ours */
    for (int i = 0; i < 3; i++)
        assert_int_equal(emm_port_send(p, mk(i, &r)), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(emm_port_refs(p), 3); /* receive, ours, the ready list's */
    emm_port_destroy(p);
    assert_int_equal(atomic_load(&r.released), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r.statuses[i], -EPIPE);
    assert_int_equal(emm_port_refs(p), 2);
    struct emm_msg *m = mk(9, &r);
    assert_int_equal(emm_port_send(p, m), -EPIPE);
    assert_int_equal(atomic_load(&r.released), 3); /* the caller still owns it */
    emm_msg_release(m, -EPIPE);
    assert_int_equal(atomic_load(&r.released), 4);
    emm_portset_destroy(set); /* drops the ready list's reference */
    assert_int_equal(emm_port_refs(p), 1);
    assert_int_equal(r.n, 0);
    emm_port_unref(p); /* frees it (Asan: no leak) */
    rec_fini(&r);
}

static void
test_dead_inline_port(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", rec_handler, &r, NULL, &p), 0);
    emm_port_ref(p);
    emm_port_destroy(p);
    assert_int_equal(emm_port_refs(p), 1);
    struct emm_msg *m = mk(1, &r);
    assert_int_equal(emm_port_send(p, m), -EPIPE);
    emm_msg_release(m, 0);
    /* A send-once right to a dead port is consumed too. */
    struct emm_port *once = emm_port_ref(p);
    assert_int_equal(emm_port_refs(p), 2);
    m = mk(2, &r);
    assert_int_equal(emm_port_send_once(&once, m), -EPIPE);
    assert_null(once);
    assert_int_equal(emm_port_refs(p), 1);
    emm_msg_release(m, 0);
    assert_int_equal(r.n, 0);
    emm_port_unref(p);
    rec_fini(&r);
}

static void
test_send_once_consumes(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", rec_handler, &r, NULL, &p), 0);
    struct emm_port *once = emm_port_ref(p);
    assert_int_equal(emm_port_refs(p), 2);
    assert_int_equal(emm_port_send_once(&once, mk(5, &r)), 0);
    assert_null(once);
    assert_int_equal(emm_port_refs(p), 1);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.args[0], 5);
    /* A message carrying rights drops them when released. */
    struct emm_msg *m = mk(6, &r);
    m->reply = emm_port_make_send(p);
    m->control = emm_port_make_send(p);
    assert_int_equal(emm_port_refs(p), 3);
    assert_int_equal(emm_port_send(p, m), 0);
    assert_int_equal(emm_port_refs(p), 1);
    emm_port_destroy(p);
    rec_fini(&r);
}

/* ---- hold / resume ------------------------------------------------------ */

static void
test_hold_resume_inline(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    r.hold_on = 0;
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", rec_handler, &r, NULL, &p), 0);
    assert_int_equal(emm_port_send(p, mk(0, &r)), 0);
    assert_int_equal(r.n, 1);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(emm_port_send(p, mk(i, &r)), 0);
    assert_int_equal(r.n, 1); /* held: the later ones wait */
    emm_port_resume(p);
    assert_int_equal(r.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r.args[i], i);
        assert_int_equal(r.seqnos[i], (uint64_t)i + 1);
    }
    assert_false(emm_port_busy(p));
    assert_int_equal(emm_port_refs(p), 1);
    /* The port works normally afterwards. */
    assert_int_equal(emm_port_send(p, mk(7, &r)), 0);
    assert_int_equal(r.n, 7);
    emm_port_destroy(p);
    rec_fini(&r);
}

static int
wait_count(struct rec *r, int n)
{
    for (int i = 0; i < 10000 && rec_count(r) < n; i++)
        usleep(1000);
    return rec_count(r);
}

static void
test_hold_resume_set(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    r.hold_on = 0;
    struct emm_portset *set;
    assert_int_equal(emm_portset_create("t", 2, 0, &set), 0);
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", rec_handler, &r, set, &p), 0);
    assert_int_equal(emm_port_send(p, mk(0, &r)), 0);
    assert_int_equal(wait_count(&r, 1), 1);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(emm_port_send(p, mk(i, &r)), 0);
    usleep(50000);
    assert_int_equal(rec_count(&r), 1);
    emm_port_resume(p);
    assert_int_equal(wait_count(&r, 6), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(r.args[i], i);
    assert_int_equal(r.overlap, 0);
    emm_portset_destroy(set);
    assert_int_equal(emm_port_refs(p), 1);
    emm_port_destroy(p);
    rec_fini(&r);
}

/*
 * The message a handler holds may finish on another thread *before* the
 * handler returns (emmd: lock_request's invalidate completes on the notifier
 * thread and lock_request_apply calls emm_port_resume). Later messages must still
 * not run while the holding handler is running, nor on two threads at once.
 */
struct early {
    struct emm_port *port;
    struct rec *r;
};

static void *
early_resume_main(void *arg)
{
    struct early *e = arg;
    assert_int_equal(emm_port_send(e->port, mk(1, e->r)), 0); /* queued: port busy */
    emm_port_resume(e->port);
    return NULL;
}

static void
early_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct rec *r = emm_port_context(port);
    if (atomic_fetch_add(&r->active, 1) != 0)
        r->overlap = 1;
    pthread_mutex_lock(&r->lock);
    r->args[r->n++] = msg->arg;
    pthread_mutex_unlock(&r->lock);
    int32_t arg = msg->arg;
    emm_msg_release(msg, 0);
    if (arg == 0) {
        emm_port_hold(port);
        struct early e = {port, r};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, early_resume_main, &e), 0);
        /* Completion came in quickly; the handler is still finishing up. */
        usleep(100000);
        pthread_join(t, NULL);
    }
    atomic_fetch_sub(&r->active, 1);
}

static void
test_resume_before_handler_returns(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct emm_port *p;
    assert_int_equal(emm_port_create("t", early_handler, &r, NULL, &p), 0);
    assert_int_equal(emm_port_send(p, mk(0, &r)), 0);
    assert_int_equal(wait_count(&r, 2), 2);
    assert_int_equal(r.args[0], 0);
    assert_int_equal(r.args[1], 1);
    int overlap = r.overlap;
    emm_port_destroy(p);
    rec_fini(&r);
    /* BUG (port.c emm_port_resume): resume drains on the resuming thread while
     * the holding handler is still running: message 1 ran concurrently. */
    assert_int_equal(overlap, 0);
}

/* ---- port sets under load ---------------------------------------------- */

#define NPORTS 4
#define NSENDERS 4
#define PER_SENDER 10000 /* per (sender, port) pair: 4 x 4 x 10000 messages */

struct lport {
    struct emm_port *port;
    int id;
    atomic_int active;
    int overlap;
    uint64_t last_seqno;
    int seq_bad;
    int32_t next[NSENDERS]; /* next expected per sender */
    int order_bad;
    atomic_long handled;
};

static atomic_long load_total;

static void
load_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg);
}

static void
load_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct lport *lp = emm_port_context(port);
    if (atomic_fetch_add(&lp->active, 1) != 0)
        lp->overlap = 1;
    if (msg->seqno != lp->last_seqno + 1)
        lp->seq_bad = 1;
    lp->last_seqno = msg->seqno;
    unsigned s = (unsigned)msg->offset;
    if (s >= NSENDERS || msg->arg != lp->next[s])
        lp->order_bad = 1;
    else
        lp->next[s]++;
    atomic_fetch_sub(&lp->active, 1);
    atomic_fetch_add(&lp->handled, 1);
    atomic_fetch_add(&load_total, 1);
    emm_msg_release(msg, 0);
}

struct sender {
    struct lport *ports;
    unsigned id;
};

static void *
sender_main(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < PER_SENDER; i++) {
        for (int j = 0; j < NPORTS; j++) {
            struct emm_msg *m = emm_msg_new(MO_DATA_RETURN, s->id, 0);
            m->arg = i;
            m->release = load_release;
            if (emm_port_send(s->ports[j].port, m) != 0)
                abort();
        }
    }
    return NULL;
}

static void
run_load(unsigned workers, unsigned spin_us)
{
    struct emm_portset *set;
    assert_int_equal(emm_portset_create("load", workers, spin_us, &set), 0);
    static struct lport ports[NPORTS];
    memset(ports, 0, sizeof(ports));
    atomic_store(&load_total, 0);
    for (int j = 0; j < NPORTS; j++) {
        ports[j].id = j;
        assert_int_equal(emm_port_create("load", load_handler, &ports[j], set, &ports[j].port), 0);
    }
    pthread_t t[NSENDERS];
    struct sender snd[NSENDERS];
    for (unsigned i = 0; i < NSENDERS; i++) {
        snd[i].ports = ports;
        snd[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, sender_main, &snd[i]), 0);
    }
    for (unsigned i = 0; i < NSENDERS; i++)
        pthread_join(t[i], NULL);
    long want = (long)NPORTS * NSENDERS * PER_SENDER;
    for (int i = 0; i < 30000 && atomic_load(&load_total) < want; i++)
        usleep(1000);
    usleep(20000); /* anything extra (a duplicate) would show up now */
    assert_int_equal(atomic_load(&load_total), want);
    for (int j = 0; j < NPORTS; j++) {
        assert_int_equal(atomic_load(&ports[j].handled), (long)NSENDERS * PER_SENDER);
        assert_int_equal(ports[j].overlap, 0);
        assert_int_equal(ports[j].seq_bad, 0);
        assert_int_equal(ports[j].order_bad, 0);
        assert_int_equal(ports[j].last_seqno, (uint64_t)NSENDERS * PER_SENDER);
        for (int s = 0; s < NSENDERS; s++)
            assert_int_equal(ports[j].next[s], PER_SENDER);
    }
    emm_portset_destroy(set);
    for (int j = 0; j < NPORTS; j++) {
        assert_int_equal(emm_port_refs(ports[j].port), 1);
        emm_port_destroy(ports[j].port);
    }
}

static void
test_portset_load_2_workers(void **state)
{
    (void)state;
    run_load(2, 0);
}

static void
test_portset_load_spin(void **state)
{
    (void)state;
    run_load(2, 50);
}

/* Inline ports with concurrent senders: handoff between threads keeps order. */
static void
test_inline_load(void **state)
{
    (void)state;
    static struct lport ports[NPORTS];
    memset(ports, 0, sizeof(ports));
    atomic_store(&load_total, 0);
    for (int j = 0; j < NPORTS; j++)
        assert_int_equal(emm_port_create("load", load_handler, &ports[j], NULL, &ports[j].port), 0);
    pthread_t t[NSENDERS];
    struct sender snd[NSENDERS];
    for (unsigned i = 0; i < NSENDERS; i++) {
        snd[i].ports = ports;
        snd[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, sender_main, &snd[i]), 0);
    }
    for (unsigned i = 0; i < NSENDERS; i++)
        pthread_join(t[i], NULL);
    /* Inline: every message has run when its sender's send returned, or is run
     * by the thread draining it, which returns before joining. */
    assert_int_equal(atomic_load(&load_total), (long)NPORTS * NSENDERS * PER_SENDER);
    for (int j = 0; j < NPORTS; j++) {
        assert_int_equal(ports[j].overlap, 0);
        assert_int_equal(ports[j].seq_bad, 0);
        assert_int_equal(ports[j].order_bad, 0);
        assert_int_equal(emm_port_refs(ports[j].port), 1);
        assert_false(emm_port_busy(ports[j].port));
        emm_port_destroy(ports[j].port);
    }
}

/* Rights in a header are names: make_send gives a reference under the port's
 * name, take moves it out, release drops what a message still carries, and a
 * name outlives nothing (a freed port's name misses, a new port gets another). */
static void
test_names(void **state)
{
    (void)state;
    struct emm_port *a, *b;
    assert_int_equal(emm_port_create("a", NULL, NULL, NULL, &a), 0);
    assert_int_equal(emm_port_create("b", NULL, NULL, NULL, &b), 0);
    emm_port_name_t na = emm_port_name(a), nb = emm_port_name(b);
    assert_true(na != EMM_PORT_NULL && nb != EMM_PORT_NULL && na != nb);

    struct emm_msg *m = emm_msg_new(MO_DATA_REQUEST, 0, 0);
    m->control = emm_port_make_send(a);
    m->reply = emm_port_make_send(b);
    assert_int_equal(m->control, na);
    assert_int_equal(emm_port_refs(a), 2);
    assert_ptr_equal(emm_port_peek(m->control), a); /* borrowed: no reference */
    assert_int_equal(emm_port_refs(a), 2);
    struct emm_port *t = emm_port_take(&m->control);
    assert_ptr_equal(t, a);
    assert_int_equal(m->control, EMM_PORT_NULL);
    assert_int_equal(emm_port_refs(a), 2); /* the message's reference is now ours */
    emm_port_unref(t);
    emm_msg_release(m, 0); /* drops the reply right it still carries */
    assert_int_equal(emm_port_refs(b), 1);
    assert_int_equal(emm_port_refs(a), 1);

    emm_port_destroy(a);
    emm_port_name_t stale = na;
    assert_null(emm_port_take(&stale)); /* logged: names no port */
    struct emm_port *c;
    assert_int_equal(emm_port_create("c", NULL, NULL, NULL, &c), 0);
    assert_true(emm_port_name(c) != na); /* the slot is reused, the name is not */
    stale = na;
    assert_null(emm_port_peek(stale));
    emm_port_destroy(c);
    emm_port_destroy(b);
}

/* ---- destroy waits for a running handler (emm_port_set_destroy_waits) ---- */

struct dw {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int in_handler, release, handler_done, destroyed, saw_done;
    struct emm_port *port;
    int self_destroy;
};

static void
dw_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct dw *w = emm_port_context(port);
    emm_msg_release(msg, 0);
    if (w->self_destroy) {
        emm_port_destroy(port); /* from inside its own handler: must not wait */
        pthread_mutex_lock(&w->lock);
        w->destroyed = 1;
        pthread_mutex_unlock(&w->lock);
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->in_handler = 1;
    pthread_cond_broadcast(&w->cond);
    while (!w->release)
        pthread_cond_wait(&w->cond, &w->lock);
    w->handler_done = 1;
    pthread_mutex_unlock(&w->lock);
}

static void *
dw_sender(void *arg)
{
    struct dw *w = arg;
    assert_int_equal(emm_port_send(w->port, emm_msg_new(1, 0, 0)), 0);
    return NULL;
}

static void *
dw_destroyer(void *arg)
{
    struct dw *w = arg;
    emm_port_destroy(w->port);
    pthread_mutex_lock(&w->lock);
    w->destroyed = 1;
    w->saw_done = w->handler_done; /* the handler had returned */
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* The destroy of a port that another thread runs a handler of returns only
 * after the handler: its receiver may free the handler's context then (a vm
 * object whose late data_return_completed the stream reader delivers). */
static void
test_destroy_waits_for_handler(void **state)
{
    (void)state;
    struct dw w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    assert_int_equal(emm_port_create("dw", dw_handler, &w, NULL, &w.port), 0);
    emm_port_set_destroy_waits(w.port);
    emm_port_ref(w.port); /* the sender's right */
    pthread_t snd, dst;
    assert_int_equal(pthread_create(&snd, NULL, dw_sender, &w), 0);
    pthread_mutex_lock(&w.lock);
    while (!w.in_handler)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    assert_int_equal(pthread_create(&dst, NULL, dw_destroyer, &w), 0);
    /* Give the destroyer time to get to the port (without the wait it would
     * return at once, the handler still running); then let the handler end. */
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&w.lock);
    assert_int_equal(w.destroyed, 0);
    w.release = 1;
    pthread_cond_broadcast(&w.cond);
    pthread_mutex_unlock(&w.lock);
    pthread_join(dst, NULL);
    pthread_join(snd, NULL);
    assert_int_equal(w.saw_done, 1);
    /* Dead now: a later send is refused. */
    struct emm_msg *m = emm_msg_new(1, 0, 0);
    assert_int_equal(emm_port_send(w.port, m), -EPIPE);
    emm_msg_release(m, -EPIPE);
    emm_port_unref(w.port);
}

/* A handler that destroys its own port does not wait for itself. */
static void
test_destroy_waits_not_for_itself(void **state)
{
    (void)state;
    struct dw w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
                   .self_destroy = 1};
    assert_int_equal(emm_port_create("dw-self", dw_handler, &w, NULL, &w.port), 0);
    emm_port_set_destroy_waits(w.port);
    emm_port_ref(w.port);
    assert_int_equal(emm_port_send(w.port, emm_msg_new(1, 0, 0)), 0);
    assert_int_equal(w.destroyed, 1);
    emm_port_unref(w.port);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_destroy_waits_for_handler),
        cmocka_unit_test(test_destroy_waits_not_for_itself),
        cmocka_unit_test(test_dead_name_notification),
        cmocka_unit_test(test_dead_name_two_watchers),
        cmocka_unit_test(test_set_handoff),
        cmocka_unit_test(test_inline_order_seqno),
        cmocka_unit_test(test_inline_send_from_handler_is_queued),
        cmocka_unit_test(test_dead_port_epipe),
        cmocka_unit_test(test_dead_inline_port),
        cmocka_unit_test(test_send_once_consumes),
        cmocka_unit_test(test_hold_resume_inline),
        cmocka_unit_test(test_hold_resume_set),
        cmocka_unit_test(test_resume_before_handler_returns),
        cmocka_unit_test(test_portset_load_2_workers),
        cmocka_unit_test(test_portset_load_spin),
        cmocka_unit_test(test_inline_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
