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
 * Names: every port has an integer name (emm_port_name_t), unique in the
 * process while the port lives; a message header carries rights as names. A
 * right in a header is a reference the message owns: emm_port_make_send puts
 * one there, emm_port_take moves it out to the receiver, emm_msg_release drops
 * what is left.
 *
 * Opacity: struct emm_port is defined in port.c only. Each port carries an
 * operations table (its transport): the local one queues and drains in this
 * process; a stream port will carry the same messages to another process.
 * Callers use the functions below and never see which.
 *
 * Locking: port->lock guards the queue and flags; set->lock guards the ready
 * list. A port lock is never held while a handler runs or while taking the set's.
 * The name table has its own lock, taken only to create and free ports (a lookup
 * takes none: a name in a message is backed by the message's reference).
 */
#ifndef EMM_PORT_H
#define EMM_PORT_H

#include <stdint.h>

#include "msg.h"

struct emm_port;
struct emm_portset;

typedef void (*emm_port_handler_fn)(struct emm_port *port, struct emm_msg *msg);

/* Opaque outside emm/ipc: a port is reached only through these functions, so
 * that it may be local (a queue drained in this process, port.c) or, later, a
 * stream to another process or host behind the same operations. */

/* Creates a port holding the receive right (one reference). set may be NULL. */
int emm_port_create(const char *label, emm_port_handler_fn handler, void *context,
                    struct emm_portset *set, struct emm_port **out);
/* Destroys the receive right: queued messages are released with -EPIPE, later
 * sends fail with -EPIPE. Drops the receive right's reference. */
void emm_port_destroy(struct emm_port *port);
/* The receiver's context given at creation. */
void *emm_port_context(const struct emm_port *port);
const char *emm_port_label(const struct emm_port *port);
/* For a port in a set: messages fn accepts may be run by their sender itself
 * when the port is idle (a handoff for cheap requests); others go to the set.
 * Set once, before the first message. */
void emm_port_set_may_inline(struct emm_port *port, int (*fn)(const struct emm_msg *msg));
/* From now on emm_port_destroy returns only once a handler that another
 * thread runs for the port has returned (none starts after), so the receiver
 * may free its context then. The handler must not wait for the destroyer;
 * a destroy from inside the port's own handler does not wait. Set once,
 * before the first message. */
void emm_port_set_destroy_waits(struct emm_port *port);
/* For tests and assertions: the rights (references) the port has now, and
 * whether a thread is delivering its messages or it waits on a set's list. */
unsigned emm_port_refs(const struct emm_port *port);
int emm_port_busy(const struct emm_port *port);
/* Rights are references: make a send (or send-once) right / drop one. */
struct emm_port *emm_port_ref(struct emm_port *port);
void emm_port_unref(struct emm_port *port);
/* The port's name, as message headers carry it. */
emm_port_name_t emm_port_name(const struct emm_port *port);
/* A right for a message header: a new reference to port, returned as its name
 * (EMM_PORT_NULL for a NULL port). */
emm_port_name_t emm_port_make_send(struct emm_port *port);
/* Takes the right a header carries in *name: the message's reference goes to
 * the caller and *name becomes EMM_PORT_NULL. NULL when *name is null. A name
 * that is no live port is a caller's bug (a header decoded from elsewhere is
 * translated by its transport first): it is logged and NULL is returned. */
struct emm_port *emm_port_take(emm_port_name_t *name);
/* The port a header's right names, borrowed: valid while the message holds it. */
struct emm_port *emm_port_peek(emm_port_name_t name);
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
/* Sequence numbers: raises the last seqno the port stamped to at least floor
 * (the next message gets a higher one) and returns it. With floor 0, reads
 * it. A pager's new port numbers on from its predecessor's, so an answer
 * that names an old seqno can never match a new message (vm_lost.c). */
uint64_t emm_port_seqno_raise(struct emm_port *port, uint64_t floor);
/* Sends msg to a send-once right and consumes it (*port is set to NULL). */
int emm_port_send_once(struct emm_port **port, struct emm_msg *msg);
/* The same, to the right a received header carries in *name (a reply port):
 * -EPIPE when there is none or it is dead (the caller still owns msg). */
int emm_port_send_reply(emm_port_name_t *name, struct emm_msg *msg);

/* Mach's dead-name notification. When port dies (its receive right is
 * destroyed; for a peer's port, its connection ends: the process died, exited
 * or was cut off), an EMM_NOTIFY_DEAD_NAME message (offset = cookie) is sent
 * to notify, once; at once if port is dead already. Several notify ports may
 * watch one port (objects that share a pager's port), one request each
 * (-EBUSY for a second from the same notify); a request holds a right to
 * notify until it fires or is cancelled. No lock of the caller may be held:
 * the notification may run notify's handler inline. */
int emm_port_request_dead_name(struct emm_port *port, struct emm_port *notify, uint64_t cookie);
void emm_port_cancel_dead_name(struct emm_port *port, struct emm_port *notify);

/* From inside a handler: the message is not finished when the handler returns,
 * so later messages wait (order is kept) until emm_port_resume. Receivers'
 * calls: the port is one this process created (a local port). */
void emm_port_hold(struct emm_port *port);
void emm_port_resume(struct emm_port *port);

/* Port sets: worker threads drain member ports. */
int emm_portset_create(const char *label, unsigned threads, unsigned spin_us,
                       struct emm_portset **out);
void emm_portset_destroy(struct emm_portset *set); /* stops and joins the workers */

#endif
