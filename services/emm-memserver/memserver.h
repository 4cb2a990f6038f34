/*
 * memserver.h - emm-memserver's shared types: the server (its backend, its
 * hosts, its objects), a host (one emmd connection over TCP + TLS), and the
 * object layer (object.c) that speaks the memory-object protocol to every
 * host and keeps their copies coherent (coherence.h).
 *
 * Locking: srv->lock guards the host slots and the object table; obj->lock
 * (object.c) guards one object's coherence state and its per-host ports. The
 * order is srv->lock, then obj->lock; no lock is held while a stream is
 * opened or closed.
 */
#ifndef MSRV_MEMSERVER_H
#define MSRV_MEMSERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "coherence.h"

struct emm_backend;
struct emm_stream;
struct emm_tls;
struct emm_port;
struct msrv_object;
struct msrv_ns;

struct msrv_host {
    struct msrv *srv;
    unsigned index;       /* its slot: the coherence engine's host number */
    struct emm_stream *s; /* set once the stream is open */
    int dead;             /* on_dead ran: the loop closes it */
    char peer[160];       /* "host 127.0.0.1:40312 (psk identity a)" */
    struct emm_port *ns_port; /* its namespace port (ns.c), made on first lookup */
    struct emm_port *ns_reply; /* the port its namespace answers go to (ns.c) */
};

struct msrv_stats {
    atomic_uint_least64_t hosts_accepted, hosts_refused, hosts_lost;
    atomic_uint_least64_t bad_messages, pages_supplied, pages_stored, stale_returns;
    atomic_uint_least64_t revokes, grants;
    atomic_uint_least64_t drops;     /* pages taken from hosts by truncate/punch/unlink */
    atomic_uint_least64_t ns_ops[8]; /* namespace requests by kind (MO_NS_* - 0x60) */
    atomic_uint_least64_t ns_errors; /* ... answered with an error */
};

struct msrv {
    struct emm_backend *backend;
    struct emm_tls *tls;   /* NULL: plain text (tls = off), loopback peers only */
    atomic_uint handshakes; /* connections not yet hosts */
    atomic_int stopping;
    pthread_mutex_t lock;
    struct msrv_host *hosts[MSRV_MAX_HOSTS];
    unsigned max_hosts;
    struct msrv_object *objects; /* list, by id */
    struct msrv_stats st;
    struct msrv_ns *ns; /* the namespace (ns.c) */
    void (*host_dead)(struct msrv *srv); /* wakes the loop to close dead hosts */
};

/* host.c */
/* Takes a connected socket: TLS handshake and hello on a thread of its own,
 * then a host slot and a stream. Never blocks the caller. */
void msrv_host_accept(struct msrv *srv, int fd);
/* Closes the streams of hosts that died (the loop's thread). */
void msrv_hosts_reap(struct msrv *srv);
/* At exit: cuts every host and waits for pending handshakes. */
void msrv_hosts_close_all(struct msrv *srv);

/* object.c */
/* The stream's lookup: a send right to host's port for object id (made on
 * first use). */
int msrv_object_port(struct msrv_host *h, uint64_t id, struct emm_port **out);
/* host is gone: every object forgets its access and its ports. */
void msrv_objects_host_gone(struct msrv *srv, struct msrv_host *h);
/* At exit: frees every object (no host left). */
void msrv_objects_free(struct msrv *srv);
/* Object id's pages from page first on are gone (truncate, unlink): every
 * host's copy is dropped (no return), the store's discarded. tail: bytes of
 * page first-1 past the new end to zero in the store (0: none), done unless
 * a host holds that page for writing (its copy is the current one). */
void msrv_object_cut(struct msrv *srv, uint64_t id, uint64_t first, uint32_t tail);
/* INFO lines: objects with coherence state and their pages, and what host
 * (its slot) holds, object by object. */
void msrv_objects_report(struct msrv *srv, unsigned host, FILE *out);

/* ns.c: the namespace every host sees */
int msrv_ns_open(struct msrv *srv, const char *state_dir, char *err, size_t errlen);
void msrv_ns_close(struct msrv *srv);
/* The stream's lookup for MO_NS_PORT_ID: h's namespace port. */
int msrv_ns_port(struct msrv_host *h, struct emm_port **out);
/* h is gone: its namespace port goes. */
void msrv_ns_host_gone(struct msrv_host *h);

#endif
