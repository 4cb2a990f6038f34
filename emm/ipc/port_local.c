/*
 * port_local.c - the local transport of ports: a queue per port drained in
 * this process, inline by the sender (a handoff) or by a port set's worker
 * threads; hold/resume; port sets. See port.h for the model.
 *
 * Locking: port->lock guards a port's queue, seqno and flags; set->lock guards
 * the ready list. Never hold a port lock while running a handler or while taking
 * a set lock. A port on a ready list holds a reference, dropped by the worker.
 * The destroy of a destroy_waits port waits (on port->idle, under port->lock)
 * for a handler another thread is running.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "cpu_relax.h"
#include "log.h"
#include "port_impl.h"

struct emm_portset {
    pthread_mutex_t lock;
    struct emm_port *ready_head, *ready_tail;
    atomic_uint nready;
    atomic_int stopping;
    int efd; /* EFD_SEMAPHORE: one count per ready port */
    unsigned spin_us;
    unsigned nthreads;
    pthread_t *threads;
    const char *label;
};

/* Runs the handler on every queued message, in order, then clears draining.
 * A held port keeps draining set: emm_port_resume (or the drainer, if resume
 * came while it was still in the handler) carries on. */
static void portset_push(struct emm_portset *set, struct emm_port *port);

/* handoff: the sender of a may_inline message drains a set's port itself; the
 * first message it may not run goes to the set's workers with the port. */
static void
port_drain_mode(struct emm_port *port, int handoff)
{
    pthread_mutex_lock(&port->lock);
    for (;;) {
        if (port->held) {
            pthread_mutex_unlock(&port->lock);
            return;
        }
        struct emm_msg *m = STAILQ_FIRST(&port->queue);
        if (m == NULL || port->dead) {
            port->draining = 0;
            pthread_mutex_unlock(&port->lock);
            return;
        }
        if (handoff && !port->may_inline(m)) {
            port->draining = 0;
            port->queued = 1;
            emm_port_ref(port);
            pthread_mutex_unlock(&port->lock);
            portset_push(port->set, port);
            return;
        }
        STAILQ_REMOVE_HEAD(&port->queue, link);
        port->in_handler = 1;
        port->handler_thread = pthread_self();
        pthread_mutex_unlock(&port->lock);
        port->handler(port, m);
        pthread_mutex_lock(&port->lock);
        port->in_handler = 0;
        if (port->destroy_waiting)
            pthread_cond_broadcast(&port->idle);
    }
}

static void
port_drain(struct emm_port *port)
{
    port_drain_mode(port, 0);
}

void
emm_port_hold(struct emm_port *port)
{
    assert(port->ops == &emm_port_local_ops); /* the receiver is in this process */
    pthread_mutex_lock(&port->lock);
    port->held = 1;
    pthread_mutex_unlock(&port->lock);
}

void
emm_port_resume(struct emm_port *port)
{
    assert(port->ops == &emm_port_local_ops);
    pthread_mutex_lock(&port->lock);
    port->held = 0;
    if (port->in_handler) {
        /* The holding handler has not returned yet: its drainer goes on. */
        pthread_mutex_unlock(&port->lock);
        return;
    }
    emm_port_ref(port);
    if (port->set != NULL && !port->dead) {
        port->draining = 0;
        port->queued = 1;
        pthread_mutex_unlock(&port->lock);
        portset_push(port->set, port); /* the reference goes with it */
        return;
    }
    pthread_mutex_unlock(&port->lock);
    port_drain(port);
    emm_port_unref(port);
}

static void
portset_push(struct emm_portset *set, struct emm_port *port)
{
    pthread_mutex_lock(&set->lock);
    port->ready_next = NULL;
    if (set->ready_tail != NULL)
        set->ready_tail->ready_next = port;
    else
        set->ready_head = port;
    set->ready_tail = port;
    atomic_fetch_add(&set->nready, 1);
    pthread_mutex_unlock(&set->lock);
    uint64_t one = 1;
    if (write(set->efd, &one, sizeof(one)) < 0)
        emm_err("portset %s: eventfd write: %s", set->label, strerror(errno));
}

/* Port lock held: queues msg. */
static int
port_enqueue(struct emm_port *port, struct emm_msg *msg)
{
    if (port->dead)
        return -EPIPE;
    msg->seqno = ++port->seqno;
    STAILQ_INSERT_TAIL(&port->queue, msg, link);
    return 0;
}

/* Port lock held, released here: delivers the queue unless someone already
 * does (a drainer, or the set's ready list). */
static void
port_deliver(struct emm_port *port)
{
    struct emm_msg *msg = STAILQ_FIRST(&port->queue);
    if (msg == NULL || port->dead || port->draining || port->queued) {
        pthread_mutex_unlock(&port->lock);
        return;
    }
    int handoff = port->set != NULL && port->may_inline != NULL && port->may_inline(msg);
    if (port->set == NULL || handoff) {
        port->draining = 1;
        emm_port_ref(port);
        pthread_mutex_unlock(&port->lock);
        port_drain_mode(port, handoff);
        emm_port_unref(port);
        return;
    }
    port->queued = 1;
    emm_port_ref(port);
    pthread_mutex_unlock(&port->lock);
    portset_push(port->set, port);
}


/* ---- the local transport's operations ------------------------------------ */

static int
local_send(struct emm_port *port, struct emm_msg *msg)
{
    pthread_mutex_lock(&port->lock);
    int rc = port_enqueue(port, msg);
    if (rc < 0) {
        pthread_mutex_unlock(&port->lock);
        return rc;
    }
    port_deliver(port);
    return 0;
}

static int
local_post(struct emm_port *port, struct emm_msg *msg)
{
    pthread_mutex_lock(&port->lock);
    int rc = port_enqueue(port, msg);
    pthread_mutex_unlock(&port->lock);
    return rc;
}

static void
local_kick(struct emm_port *port)
{
    pthread_mutex_lock(&port->lock);
    port_deliver(port);
}

static void
local_destroy(struct emm_port *port)
{
    struct emm_msg_list gone = STAILQ_HEAD_INITIALIZER(gone);
    pthread_mutex_lock(&port->lock);
    port->dead = 1; /* no handler starts from here on */
    STAILQ_CONCAT(&gone, &port->queue);
    while (port->destroy_waits && port->in_handler &&
           !pthread_equal(port->handler_thread, pthread_self())) {
        port->destroy_waiting = 1;
        pthread_cond_wait(&port->idle, &port->lock);
    }
    pthread_mutex_unlock(&port->lock);
    struct emm_msg *m;
    while ((m = STAILQ_FIRST(&gone)) != NULL) {
        STAILQ_REMOVE_HEAD(&gone, link);
        emm_msg_release(m, -EPIPE);
    }
    emm_port_dead_name(port);
}

static void
local_fini(struct emm_port *port)
{
    pthread_cond_destroy(&port->idle);
    pthread_mutex_destroy(&port->lock);
}

static uint64_t
local_seqno_raise(struct emm_port *port, uint64_t floor)
{
    pthread_mutex_lock(&port->lock);
    if (port->seqno < floor)
        port->seqno = floor;
    uint64_t last = port->seqno;
    pthread_mutex_unlock(&port->lock);
    return last;
}

const struct emm_port_ops emm_port_local_ops = {
    .kind = "local",
    .post = local_post,
    .kick = local_kick,
    .send = local_send,
    .destroy = local_destroy,
    .fini = local_fini,
    .seqno_raise = local_seqno_raise,
};

/* A local port: its receiver runs handler in this process. */
int
emm_port_create(const char *label, emm_port_handler_fn handler, void *context,
                struct emm_portset *set, struct emm_port **out)
{
    struct emm_port *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->ops = &emm_port_local_ops;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->idle, NULL);
    atomic_init(&p->refs, 1);
    p->handler = handler;
    STAILQ_INIT(&p->queue);
    p->context = context;
    p->set = set;
    p->label = label;
    int rc = emm_port_name_alloc(p);
    if (rc < 0) {
        pthread_cond_destroy(&p->idle);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void
emm_port_set_may_inline(struct emm_port *port, int (*fn)(const struct emm_msg *msg))
{
    pthread_mutex_lock(&port->lock);
    port->may_inline = fn;
    pthread_mutex_unlock(&port->lock);
}

void
emm_port_set_destroy_waits(struct emm_port *port)
{
    assert(port->ops == &emm_port_local_ops); /* the receiver is in this process */
    pthread_mutex_lock(&port->lock);
    port->destroy_waits = 1;
    pthread_mutex_unlock(&port->lock);
}

int
emm_port_busy(const struct emm_port *port)
{
    struct emm_port *p = (struct emm_port *)port;
    pthread_mutex_lock(&p->lock);
    int busy = p->draining || p->queued;
    pthread_mutex_unlock(&p->lock);
    return busy;
}

static struct emm_port *
portset_pop(struct emm_portset *set)
{
    pthread_mutex_lock(&set->lock);
    struct emm_port *p = set->ready_head;
    if (p != NULL) {
        set->ready_head = p->ready_next;
        if (set->ready_head == NULL)
            set->ready_tail = NULL;
        atomic_fetch_sub(&set->nready, 1);
    }
    pthread_mutex_unlock(&set->lock);
    return p;
}

static void *
portset_worker(void *arg)
{
    struct emm_portset *set = arg;
    while (!atomic_load(&set->stopping)) {
        uint64_t count;
        if (set->spin_us > 0 && atomic_load(&set->nready) == 0) {
            uint64_t until = emm_mono_ns() + set->spin_us * 1000ull;
            while (atomic_load(&set->nready) == 0 && !atomic_load(&set->stopping) &&
                   emm_mono_ns() < until) {
                emm_cpu_relax();
            }
        }
        /* Consume one wake-up count; with the spin above it is usually there. */
        if (read(set->efd, &count, sizeof(count)) < 0 && errno != EINTR)
            break;
        struct emm_port *p = portset_pop(set);
        if (p == NULL)
            continue;
        pthread_mutex_lock(&p->lock);
        p->queued = 0;
        p->draining = 1;
        pthread_mutex_unlock(&p->lock);
        port_drain(p);
        emm_port_unref(p);
    }
    return NULL;
}

int
emm_portset_create(const char *label, unsigned threads, unsigned spin_us,
                   struct emm_portset **out)
{
    struct emm_portset *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return -ENOMEM;
    pthread_mutex_init(&set->lock, NULL);
    set->label = label;
    set->spin_us = spin_us;
    set->efd = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC);
    if (set->efd < 0) {
        int rc = -errno;
        free(set);
        return rc;
    }
    set->threads = calloc(threads ? threads : 1, sizeof(pthread_t));
    if (set->threads == NULL) {
        close(set->efd);
        pthread_mutex_destroy(&set->lock);
        free(set);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < threads; i++) {
        int rc = pthread_create(&set->threads[i], NULL, portset_worker, set);
        if (rc != 0) {
            set->nthreads = i;
            emm_portset_destroy(set);
            return -rc;
        }
    }
    set->nthreads = threads;
    *out = set;
    return 0;
}

void
emm_portset_destroy(struct emm_portset *set)
{
    atomic_store(&set->stopping, 1);
    uint64_t wake = set->nthreads + 1;
    if (write(set->efd, &wake, sizeof(wake)) < 0)
        emm_err("portset %s: eventfd write: %s", set->label, strerror(errno));
    for (unsigned i = 0; i < set->nthreads; i++)
        pthread_join(set->threads[i], NULL);
    /* Ports still on the ready list: their messages are left to the ports' owners. */
    struct emm_port *p;
    while ((p = portset_pop(set)) != NULL) {
        pthread_mutex_lock(&p->lock);
        p->queued = 0;
        pthread_mutex_unlock(&p->lock);
        emm_port_unref(p);
    }
    close(set->efd);
    free(set->threads);
    pthread_mutex_destroy(&set->lock);
    free(set);
}
