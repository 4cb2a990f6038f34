/*
 * port.c - ports, send-once rights and port sets (see port.h for the model).
 *
 * Locking: port->lock guards a port's queue, seqno and flags; set->lock guards
 * the ready list. Never hold a port lock while running a handler or while taking
 * a set lock. A port on a ready list holds a reference, dropped by the worker.
 * names.lock guards the name table's free list and chunk allocation; slots are
 * read without it (atomics), since a name is looked up only by someone holding
 * a reference to its port.
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

/*
 * The name table: name = generation << NAME_INDEX_BITS | (slot + 1). Slots live
 * in chunks that are allocated once and never move, so a lookup needs no lock.
 * The generation (bumped each time a slot is reused) makes a stale name miss.
 */
#define NAME_INDEX_BITS 24
#define NAME_CHUNK_BITS 12
#define NAME_CHUNK (1u << NAME_CHUNK_BITS)
#define NAME_NCHUNKS (1u << (NAME_INDEX_BITS - NAME_CHUNK_BITS))
#define NAME_SLOTS ((1u << NAME_INDEX_BITS) - 1)

struct name_slot {
    _Atomic(struct emm_port *) port;
    uint32_t gen;       /* under names.lock */
    uint32_t next_free; /* slot + 1, 0 ends; under names.lock */
};

static struct {
    pthread_mutex_t lock;
    _Atomic(struct name_slot *) chunks[NAME_NCHUNKS];
    uint32_t used;      /* slots handed out at least once */
    uint32_t free_head; /* slot + 1 of a freed slot, 0 when none */
} names = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct name_slot *
name_slot(uint32_t slot)
{
    struct name_slot *c = atomic_load_explicit(&names.chunks[slot >> NAME_CHUNK_BITS],
                                               memory_order_acquire);
    return c != NULL ? &c[slot & (NAME_CHUNK - 1)] : NULL;
}

static int
name_alloc(struct emm_port *port)
{
    pthread_mutex_lock(&names.lock);
    uint32_t slot;
    if (names.free_head != 0) {
        slot = names.free_head - 1;
        names.free_head = name_slot(slot)->next_free;
    } else if (names.used < NAME_SLOTS) {
        slot = names.used;
        if ((slot & (NAME_CHUNK - 1)) == 0 && name_slot(slot) == NULL) {
            struct name_slot *c = calloc(NAME_CHUNK, sizeof(*c));
            if (c == NULL) {
                pthread_mutex_unlock(&names.lock);
                return -ENOMEM;
            }
            atomic_store_explicit(&names.chunks[slot >> NAME_CHUNK_BITS], c,
                                  memory_order_release);
        }
        names.used++;
    } else {
        pthread_mutex_unlock(&names.lock);
        emm_err("port %s: no free port name (%u ports live)", port->label, NAME_SLOTS);
        return -ENFILE;
    }
    struct name_slot *ns = name_slot(slot);
    ns->gen = (ns->gen + 1) & ((1u << (32 - NAME_INDEX_BITS)) - 1);
    ns->next_free = 0;
    port->pname = ns->gen << NAME_INDEX_BITS | (slot + 1);
    atomic_store_explicit(&ns->port, port, memory_order_release);
    pthread_mutex_unlock(&names.lock);
    return 0;
}

static void
name_free(struct emm_port *port)
{
    uint32_t slot = (port->pname & NAME_SLOTS) - 1;
    pthread_mutex_lock(&names.lock);
    struct name_slot *ns = name_slot(slot);
    atomic_store_explicit(&ns->port, NULL, memory_order_release);
    ns->next_free = names.free_head;
    names.free_head = slot + 1;
    pthread_mutex_unlock(&names.lock);
}

static struct emm_port *
name_lookup(emm_port_name_t name)
{
    uint32_t index = name & NAME_SLOTS;
    if (index == 0)
        return NULL;
    struct name_slot *ns = name_slot(index - 1);
    struct emm_port *p = ns ? atomic_load_explicit(&ns->port, memory_order_acquire) : NULL;
    return p != NULL && p->pname == name ? p : NULL;
}

emm_port_name_t
emm_port_name(const struct emm_port *port)
{
    return port->pname;
}

emm_port_name_t
emm_port_make_send(struct emm_port *port)
{
    if (port == NULL)
        return EMM_PORT_NULL;
    emm_port_ref(port);
    return port->pname;
}

struct emm_port *
emm_port_take(emm_port_name_t *name)
{
    emm_port_name_t n = *name;
    *name = EMM_PORT_NULL;
    if (n == EMM_PORT_NULL)
        return NULL;
    struct emm_port *p = name_lookup(n);
    if (p == NULL)
        emm_err("port name %#x names no port: a right was dropped twice or never made", n);
    return p;
}

struct emm_port *
emm_port_peek(emm_port_name_t name)
{
    if (name == EMM_PORT_NULL)
        return NULL;
    struct emm_port *p = name_lookup(name);
    if (p == NULL)
        emm_err("port name %#x names no port: a right was dropped twice or never made", name);
    return p;
}

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
    emm_port_name_t *rights[] = {&msg->control, &msg->name, &msg->reply};
    for (size_t i = 0; i < sizeof(rights) / sizeof(rights[0]); i++) {
        struct emm_port *p = emm_port_take(rights[i]);
        if (p != NULL)
            emm_port_unref(p);
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
    case MO_READY: return "ready";
    case MO_DATA_SUPPLY: return "data_supply";
    case MO_DATA_UNAVAILABLE: return "data_unavailable";
    case MO_DATA_ERROR: return "data_error";
    case MO_LOCK_REQUEST: return "lock_request";
    case MO_CHANGE_ATTRIBUTES: return "change_attributes";
    case MO_DESTROY: return "destroy";
    case MO_SYNCHRONIZE_COMPLETED: return "synchronize_completed";
    case MO_DATA_RETURN_COMPLETED: return "data_return_completed";
    default: return "unknown";
    }
}

int
emm_msg_id_known(uint32_t id)
{
    return strcmp(emm_msg_name(id), "unknown") != 0;
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
    int rc = name_alloc(p);
    if (rc < 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
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
    name_free(port);
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

int
emm_msg_return_completed(struct emm_msg *ret, struct emm_port *control, int status)
{
    uint64_t len = 0;
    for (const struct emm_msg *m = ret; m != NULL; m = m->chain)
        len += m->length;
    struct emm_msg *c = emm_msg_new(MO_DATA_RETURN_COMPLETED, ret->offset, len);
    if (c == NULL)
        return -ENOMEM;
    c->arg = -status; /* a positive errno on the wire */
    c->arg2 = ret->seqno;
    int rc;
    if (ret->reply != EMM_PORT_NULL)
        rc = emm_port_send_reply(&ret->reply, c);
    else
        rc = control != NULL ? emm_port_send(control, c) : -EPIPE;
    if (rc < 0)
        emm_msg_release(c, rc);
    return rc;
}

int
emm_port_send_reply(emm_port_name_t *name, struct emm_msg *msg)
{
    struct emm_port *p = emm_port_take(name);
    if (p == NULL)
        return -EPIPE;
    return emm_port_send_once(&p, msg);
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
