/*
 * port.h - emm ports: Mach-style message queues with receive, send and
 * send-once rights.
 *
 * A port has one receive right (its creator, who gives a handler) and any number
 * of send and send-once rights, all counted in one reference count. Messages on a
 * port are handled one at a time and in send order (Mach's seqno), which gives
 * per-object ordering because every memory object has its own ports.
 *
 * Delivery: a port without a port set is *inline*: the sender itself runs the
 * handler when no one else is draining the port (a handoff, like Mach's
 * direct-receive), otherwise the message waits and the current drainer runs it.
 * A port in a port set is drained by the set's worker threads, which sleep on an
 * eventfd after a bounded busy-poll. Handlers must never block on another port.
 *
 * Locking: port->lock guards the queue and flags; set->lock guards the ready
 * list. A port lock is never held while a handler runs or while taking the set's.
 */
#ifndef EMM_PORT_H
#define EMM_PORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "msg.h"

struct emm_port;
struct emm_portset;

typedef void (*emm_port_handler_fn)(struct emm_port *port, struct emm_msg *msg);

struct emm_port {
    pthread_mutex_t lock;
    struct emm_msg *head, *tail;
    uint64_t seqno;             /* last seqno stamped */
    atomic_uint refs;           /* receive + send + send-once rights */
    int dead;                   /* receive right destroyed */
    int draining;               /* a thread is running the handler */
    int queued;                 /* on its set's ready list */
    int held;                   /* a handler finishes later: hold the queue */
    int in_handler;             /* the drainer is inside the handler now */
    struct emm_portset *set;
    struct emm_port *ready_next;
    emm_port_handler_fn handler;
    /* For a port in a set: messages this accepts may be run by the sender itself
     * when the port is idle (a handoff for cheap requests); others go to the set. */
    int (*may_inline)(const struct emm_msg *msg);
    void *context; /* the receiver's */
    const char *label;
};

/* Creates a port holding the receive right (one reference). set may be NULL. */
int emm_port_create(const char *label, emm_port_handler_fn handler, void *context,
                    struct emm_portset *set, struct emm_port **out);
/* Destroys the receive right: queued messages are released with -EPIPE, later
 * sends fail with -EPIPE. Drops the receive right's reference. */
void emm_port_destroy(struct emm_port *port);
/* Rights are references: make a send (or send-once) right / drop one. */
struct emm_port *emm_port_ref(struct emm_port *port);
void emm_port_unref(struct emm_port *port);
/* Queues msg. On success the receiver owns msg; on -EPIPE (dead port) the
 * caller still does. */
int emm_port_send(struct emm_port *port, struct emm_msg *msg);
/* The two halves of emm_port_send, for a sender whose messages must reach the
 * port in the order of its own lock (the kernel's object lock): post queues
 * msg (stamping its seqno) without running anything, so it may be called with
 * that lock held; kick, called after dropping the lock, starts delivery of
 * whatever is queued (it runs the handler inline, hands the port to its set,
 * or does nothing when someone already drains it). Post returns -EPIPE on a
 * dead port, and the caller still owns msg. */
int emm_port_post(struct emm_port *port, struct emm_msg *msg);
void emm_port_kick(struct emm_port *port);
/* Sends msg to a send-once right and consumes it (*port is set to NULL). */
int emm_port_send_once(struct emm_port **port, struct emm_msg *msg);

/* From inside a handler: the message is not finished when the handler returns,
 * so later messages wait (order is kept) until emm_port_resume. */
void emm_port_hold(struct emm_port *port);
void emm_port_resume(struct emm_port *port);

/* Port sets: worker threads drain member ports. */
int emm_portset_create(const char *label, unsigned threads, unsigned spin_us,
                       struct emm_portset **out);
void emm_portset_destroy(struct emm_portset *set); /* stops and joins the workers */

#endif
