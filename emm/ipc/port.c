/*
 * port.c - what every port has, whatever its transport: rights (references),
 * its name in message headers (the name table), the receiver's context, and
 * the calls that go to its transport (port_impl.h; the local one is
 * port_local.c), and releasing a message (the rights it still carries) or
 * answering a data_return with one. See port.h for the model.
 *
 * Locking: refs is atomic. names.lock guards the name table's free list and
 * chunk allocation; slots are read without it (atomics), since a name is
 * looked up only by someone holding a reference to its port.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "port_impl.h"

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

int
emm_port_name_alloc(struct emm_port *port)
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

void *
emm_port_context(const struct emm_port *port)
{
    return port->context;
}

const char *
emm_port_label(const struct emm_port *port)
{
    return port->label;
}

unsigned
emm_port_refs(const struct emm_port *port)
{
    return atomic_load(&((struct emm_port *)port)->refs);
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
    struct emm_dead_name *dn;
    while ((dn = SLIST_FIRST(&port->dn_requests)) != NULL) { /* requests that never fired */
        SLIST_REMOVE_HEAD(&port->dn_requests, link);
        emm_port_unref(dn->notify);
        free(dn);
    }
    port->ops->fini(port);
    free(port);
}

void
emm_port_destroy(struct emm_port *port)
{
    port->ops->destroy(port);
    emm_port_unref(port);
}

int
emm_port_send(struct emm_port *port, struct emm_msg *msg)
{
    return port->ops->send(port, msg);
}

int
emm_port_post(struct emm_port *port, struct emm_msg *msg)
{
    return port->ops->post(port, msg);
}

void
emm_port_kick(struct emm_port *port)
{
    port->ops->kick(port);
}

uint64_t
emm_port_seqno_raise(struct emm_port *port, uint64_t floor)
{
    return port->ops->seqno_raise != NULL ? port->ops->seqno_raise(port, floor) : 0;
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

static void
dead_name_send(struct emm_port *notify, uint64_t cookie)
{
    struct emm_msg *m = emm_msg_new(EMM_NOTIFY_DEAD_NAME, cookie, 0);
    if (m == NULL)
        emm_err("port %s: no memory for a dead-name notification", notify->label);
    else if (emm_port_send(notify, m) < 0)
        emm_msg_release(m, -EPIPE); /* nobody listens any more */
    emm_port_unref(notify);
}

int
emm_port_request_dead_name(struct emm_port *port, struct emm_port *notify, uint64_t cookie)
{
    struct emm_dead_name *dn = malloc(sizeof(*dn));
    if (dn == NULL)
        return -ENOMEM;
    dn->notify = emm_port_ref(notify);
    dn->cookie = cookie;
    pthread_mutex_lock(&port->lock);
    int dead = port->dn_dead;
    struct emm_dead_name *old;
    SLIST_FOREACH(old, &port->dn_requests, link) {
        if (old->notify == notify) {
            pthread_mutex_unlock(&port->lock);
            emm_port_unref(notify);
            free(dn);
            return -EBUSY;
        }
    }
    if (!dead)
        SLIST_INSERT_HEAD(&port->dn_requests, dn, link);
    pthread_mutex_unlock(&port->lock);
    if (dead) {
        dead_name_send(dn->notify, cookie);
        free(dn);
    }
    return 0;
}

void
emm_port_cancel_dead_name(struct emm_port *port, struct emm_port *notify)
{
    struct emm_dead_name *dn, *found = NULL;
    pthread_mutex_lock(&port->lock);
    SLIST_FOREACH(dn, &port->dn_requests, link) {
        if (dn->notify == notify) {
            found = dn;
            SLIST_REMOVE(&port->dn_requests, dn, emm_dead_name, link);
            break;
        }
    }
    pthread_mutex_unlock(&port->lock);
    if (found != NULL) {
        emm_port_unref(found->notify);
        free(found);
    }
}

void
emm_port_dead_name(struct emm_port *port)
{
    pthread_mutex_lock(&port->lock);
    port->dn_dead = 1;
    struct emm_dead_name *dn = SLIST_FIRST(&port->dn_requests);
    SLIST_INIT(&port->dn_requests);
    pthread_mutex_unlock(&port->lock);
    while (dn != NULL) {
        struct emm_dead_name *next = SLIST_NEXT(dn, link);
        dead_name_send(dn->notify, dn->cookie);
        free(dn);
        dn = next;
    }
}

int
emm_port_send_reply(emm_port_name_t *name, struct emm_msg *msg)
{
    struct emm_port *p = emm_port_take(name);
    if (p == NULL)
        return -EPIPE;
    return emm_port_send_once(&p, msg);
}

/* ---- messages ending and answering: their rights are ports (msg.c is below) ---- */

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
