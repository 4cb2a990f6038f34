/*
 * port.c - ports, send-once rights and port sets (see port.h for the model).
 *
 * Locking: port->lock guards a port's queue, seqno and flags; set->lock guards
 * the ready list. Never hold a port lock while running a handler or while taking
 * a set lock. A port on a ready list holds a reference, dropped by the worker.
 */
#include "clock.h"
#include "cpu_relax.h"
#include "port.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

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

static void
msg_free_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg);
}

struct emm_msg *
emm_msg_new(uint32_t id, uint64_t offset, uint64_t length)
{
    struct emm_msg *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->id = id;
    m->offset = offset;
    m->length = length;
    m->release = msg_free_release;
    return m;
}

void
emm_msg_release(struct emm_msg *msg, int status)
{
    struct emm_msg *chain = msg->chain;
    msg->chain = NULL;
    while (chain != NULL) { /* a clustered data_return: release every page */
        struct emm_msg *next = chain->chain;
        chain->chain = NULL;
        emm_msg_release(chain, status);
        chain = next;
    }
    if (msg->control != NULL) {
        emm_port_unref(msg->control);
        msg->control = NULL;
    }
    if (msg->name != NULL) {
        emm_port_unref(msg->name);
        msg->name = NULL;
    }
    if (msg->reply != NULL) {
        emm_port_unref(msg->reply);
        msg->reply = NULL;
    }
    msg->release(msg, status);
}

const char *
emm_msg_name(uint32_t id)
{
    switch (id) {
    case MO_INIT: return "init";
    case MO_DATA_REQUEST: return "data_request";
    case MO_DATA_UNLOCK: return "data_unlock";
    case MO_DATA_RETURN: return "data_return";
    case MO_LOCK_COMPLETED: return "lock_completed";
    case MO_SUPPLY_COMPLETED: return "supply_completed";
    case MO_CHANGE_COMPLETED: return "change_completed";
    case MO_SYNCHRONIZE: return "synchronize";
    case MO_TERMINATE: return "terminate";
    case MO_DISCARD: return "discard";
    case MO_DATA_QUERY: return "data_query";
    case MO_READY: return "ready";
    case MO_DATA_SUPPLY: return "data_supply";
    case MO_DATA_UNAVAILABLE: return "data_unavailable";
    case MO_DATA_ERROR: return "data_error";
    case MO_LOCK_REQUEST: return "lock_request";
    case MO_CHANGE_ATTRIBUTES: return "change_attributes";
    case MO_DESTROY: return "destroy";
    case MO_SYNCHRONIZE_COMPLETED: return "synchronize_completed";
    case MO_QUERY_REPLY: return "query_reply";
    default: return "unknown";
    }
}

int
emm_port_create(const char *label, emm_port_handler_fn handler, void *context,
                struct emm_portset *set, struct emm_port **out)
{
    struct emm_port *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    atomic_init(&p->refs, 1);
    p->handler = handler;
    p->context = context;
    p->set = set;
    p->label = label;
    *out = p;
    return 0;
}

struct emm_port *
emm_port_ref(struct emm_port *port)
{
    atomic_fetch_add(&port->refs, 1);
    return port;
}

void
emm_port_unref(struct emm_port *port)
{
    if (atomic_fetch_sub(&port->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&port->lock);
    free(port);
}

void
emm_port_destroy(struct emm_port *port)
{
    pthread_mutex_lock(&port->lock);
    port->dead = 1;
    struct emm_msg *m = port->head;
    port->head = port->tail = NULL;
    pthread_mutex_unlock(&port->lock);
    while (m != NULL) {
        struct emm_msg *next = m->next;
        emm_msg_release(m, -EPIPE);
        m = next;
    }
    emm_port_unref(port);
}

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
        struct emm_msg *m = port->head;
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
        port->head = m->next;
        if (port->head == NULL)
            port->tail = NULL;
        port->in_handler = 1;
        pthread_mutex_unlock(&port->lock);
        m->next = NULL;
        port->handler(port, m);
        pthread_mutex_lock(&port->lock);
        port->in_handler = 0;
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
    pthread_mutex_lock(&port->lock);
    port->held = 1;
    pthread_mutex_unlock(&port->lock);
}

void
emm_port_resume(struct emm_port *port)
{
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
    msg->next = NULL;
    if (port->dead)
        return -EPIPE;
    msg->seqno = ++port->seqno;
    if (port->tail != NULL)
        port->tail->next = msg;
    else
        port->head = msg;
    port->tail = msg;
    return 0;
}

/* Port lock held, released here: delivers the queue unless someone already
 * does (a drainer, or the set's ready list). */
static void
port_deliver(struct emm_port *port)
{
    struct emm_msg *msg = port->head;
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

int
emm_port_send(struct emm_port *port, struct emm_msg *msg)
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

int
emm_port_post(struct emm_port *port, struct emm_msg *msg)
{
    pthread_mutex_lock(&port->lock);
    int rc = port_enqueue(port, msg);
    pthread_mutex_unlock(&port->lock);
    return rc;
}

void
emm_port_kick(struct emm_port *port)
{
    pthread_mutex_lock(&port->lock);
    port_deliver(port);
}

int
emm_port_send_once(struct emm_port **port, struct emm_msg *msg)
{
    struct emm_port *p = *port;
    *port = NULL;
    int rc = emm_port_send(p, msg);
    emm_port_unref(p);
    return rc;
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
