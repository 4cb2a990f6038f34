/*
 * port_impl.h - inside a port: private to emm/ipc (port.c, port_local.c); no
 * other layer includes it (port.h is the interface). A port is its common part
 * (rights, name, receiver's context) and a transport behind an operations
 * table: the local one (port_local.c) queues and drains messages in this
 * process; a stream transport will carry them to another process or host.
 *
 * Locking: refs is atomic; the common fields are set at creation and read-only
 * after. The local fields are guarded by lock (see port_local.c).
 */
#ifndef EMM_PORT_IMPL_H
#define EMM_PORT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

#include "port.h"

/* A port's transport. */
struct emm_port_ops {
    const char *kind; /* "local" */
    /* Queues msg (the port stamps its seqno) without delivering it; may be
     * called under the sender's own lock. -EPIPE: dead, the caller keeps msg. */
    int (*post)(struct emm_port *port, struct emm_msg *msg);
    /* Delivers what is queued (runs the handler, hands over to a set, or sends). */
    void (*kick)(struct emm_port *port);
    /* post then kick, in one step. */
    int (*send)(struct emm_port *port, struct emm_msg *msg);
    /* The receive right is gone: later posts fail, queued messages are released. */
    void (*destroy)(struct emm_port *port);
    /* The last reference went: the transport's state goes (not the port). */
    void (*fini)(struct emm_port *port);
    /* emm_port_seqno_raise (port.h); NULL: the transport stamps no seqno. */
    uint64_t (*seqno_raise)(struct emm_port *port, uint64_t floor);
};

struct emm_port {
    const struct emm_port_ops *ops;
    atomic_uint refs;       /* receive + send + send-once rights */
    emm_port_name_t pname;  /* its name in message headers */
    const char *label;
    void *context;          /* the receiver's */
    emm_port_handler_fn handler;

    /* The local transport (port_local.c), under lock. */
    pthread_mutex_t lock;
    struct emm_msg_list queue;  /* in send order */
    uint64_t seqno;             /* last seqno stamped */
    int dead;                   /* receive right destroyed */
    int draining;               /* a thread is running the handler */
    int queued;                 /* on its set's ready list */
    int held;                   /* a handler finishes later: hold the queue */
    int in_handler;             /* the drainer is inside the handler now */
    pthread_t handler_thread;   /* which thread, while in_handler */
    int destroy_waits;          /* emm_port_set_destroy_waits */
    int destroy_waiting;        /* a destroyer waits for the handler: signal idle */
    pthread_cond_t idle;        /* the handler returned (destroy_waits ports) */
    struct emm_portset *set;
    struct emm_port *ready_next;
    /* For a port in a set: messages this accepts may be run by the sender itself
     * when the port is idle (a handoff for cheap requests); others go to the set. */
    int (*may_inline)(const struct emm_msg *msg);

    /* Dead-name notifications (port.c), under lock, whatever the transport:
     * one request per notify port (several objects may share a pager's port). */
    SLIST_HEAD(, emm_dead_name) dn_requests;
    int dn_dead;                /* the port died: requests fire at once */
};

struct emm_dead_name {
    SLIST_ENTRY(emm_dead_name) link;
    struct emm_port *notify;    /* a right to the port told */
    uint64_t cookie;
};

extern const struct emm_port_ops emm_port_local_ops;

/* port.c: the transport says port died: its dead-name request fires (no lock
 * of the port held). */
void emm_port_dead_name(struct emm_port *port);

/* port.c: gives a new port its name (0, or -ENFILE/-ENOMEM). */
int emm_port_name_alloc(struct emm_port *port);

#endif
