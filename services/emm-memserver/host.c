/*
 * host.c - emm-memserver's hosts: each accepted TCP connection is
 * authenticated (TLS 1.3 handshake, stream_tls.h) on a thread of its own
 * before a byte of the protocol is read; a peer that fails is refused with a
 * log line naming its address. An authenticated peer gets a host slot (its
 * number in the coherence engine) and a stream (port_stream.h) whose lookups
 * give it the objects' ports (object.c). A host that dies or disconnects
 * loses its access to every page (object.c), and the loop closes its stream.
 *
 * Locking: srv->lock guards the slots and each host's s/dead; streams are
 * opened and closed without it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "locks.h"
#include "log.h"
#include "memserver.h"
#include "port_stream.h"
#include "stream_tcp.h"
#include "stream_tls.h"

#define MAX_HANDSHAKES 32u
#define HANDSHAKE_MS 10000

struct pending {
    struct msrv *srv;
    int fd;
};

static int
lookup(void *ctx, uint64_t id, struct emm_port **out)
{
    return msrv_object_port(ctx, id, out);
}

static void
on_dead(void *ctx, struct emm_stream *s, int err)
{
    struct msrv_host *h = ctx;
    struct msrv *srv = h->srv;
    (void)s;
    if (!atomic_load(&srv->stopping)) {
        atomic_fetch_add(&srv->st.hosts_lost, 1);
        emm_warn("%s is gone (%s): it loses its access to every page; the others go on",
                 h->peer, err == 0 ? "closed the connection" : strerror(-err));
    }
    msrv_objects_host_gone(srv, h);
    msrv_locks_host_gone(h); /* its record locks go: waiters elsewhere are served */
    pthread_mutex_lock(&srv->lock);
    h->dead = 1;
    int ready = h->s != NULL;
    pthread_mutex_unlock(&srv->lock);
    if (ready && srv->host_dead != NULL)
        srv->host_dead(srv);
}

static void
refuse(struct msrv *srv, const char *addr, const char *why)
{
    atomic_fetch_add(&srv->st.hosts_refused, 1);
    emm_err("refused host %s: %s", addr, why);
}

static void *
handshake(void *arg)
{
    struct pending *p = arg;
    struct msrv *srv = p->srv;
    int fd = p->fd;
    free(p);
    char addr[80], why[256] = "";
    emm_tcp_peer_name(fd, addr, sizeof(addr));
    emm_tcp_tune(fd);
    struct emm_stream_io *io = NULL;
    const char *who = "plain text";
    int rc;
    if (srv->tls != NULL) {
        rc = emm_tls_session(srv->tls, fd, HANDSHAKE_MS, &io, &who, why, sizeof(why));
        if (rc < 0) {
            char msg[320];
            snprintf(msg, sizeof(msg), "TLS handshake failed%s: %s",
                     rc == -EACCES ? " (not authenticated)" : "", why);
            refuse(srv, addr, msg);
            goto out;
        }
    } else if (!emm_tcp_peer_is_loopback(fd)) {
        close(fd);
        refuse(srv, addr, "tls = off accepts loopback peers only");
        goto out;
    } else if (emm_tcp_plain_io(fd, &io) < 0) {
        goto out;
    }
    struct msrv_host *h = calloc(1, sizeof(*h));
    pthread_mutex_lock(&srv->lock);
    unsigned slot = 0;
    while (slot < srv->max_hosts && srv->hosts[slot] != NULL)
        slot++;
    int full = slot == srv->max_hosts, stopping = atomic_load(&srv->stopping);
    if (h != NULL && !full && !stopping) {
        h->srv = srv;
        h->index = slot;
        snprintf(h->peer, sizeof(h->peer), "host %s (%s)", addr, who);
        srv->hosts[slot] = h;
    }
    pthread_mutex_unlock(&srv->lock);
    if (h == NULL || full || stopping) {
        io->close(io->ctx);
        if (full)
            refuse(srv, addr, "max-hosts reached");
        free(h);
        goto out;
    }
    struct emm_stream_args a = {.label = h->peer, .peer_role = EMM_STREAM_PEER_KERNEL,
                                .peer_uid = (uid_t)-1, .lookup = lookup, .on_dead = on_dead,
                                .ctx = h, .hello_timeout_ms = HANDSHAKE_MS, .io = io};
    struct emm_stream *s;
    rc = emm_stream_open(fd, &a, &s);
    if (rc < 0) {
        /* The stream logged the bad hello, naming the peer. */
        snprintf(why, sizeof(why), "no valid hello (%s)", strerror(-rc));
        refuse(srv, addr, why);
        pthread_mutex_lock(&srv->lock);
        srv->hosts[slot] = NULL;
        pthread_mutex_unlock(&srv->lock);
        free(h);
        goto out;
    }
    atomic_fetch_add(&srv->st.hosts_accepted, 1);
    pthread_mutex_lock(&srv->lock);
    h->s = s;
    int dead = h->dead;
    pthread_mutex_unlock(&srv->lock);
    emm_notice("%s connected (host %u)", h->peer, slot);
    if (dead && srv->host_dead != NULL)
        srv->host_dead(srv);
out:
    atomic_fetch_sub(&srv->handshakes, 1);
    return NULL;
}

void
msrv_host_accept(struct msrv *srv, int fd)
{
    char addr[80];
    if (atomic_load(&srv->handshakes) >= MAX_HANDSHAKES) {
        emm_tcp_peer_name(fd, addr, sizeof(addr));
        close(fd);
        refuse(srv, addr, "too many handshakes in progress");
        return;
    }
    struct pending *p = malloc(sizeof(*p));
    pthread_attr_t at;
    pthread_t t;
    if (p == NULL) {
        close(fd);
        return;
    }
    p->srv = srv;
    p->fd = fd;
    atomic_fetch_add(&srv->handshakes, 1);
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, handshake, p) != 0) {
        atomic_fetch_sub(&srv->handshakes, 1);
        close(fd);
        free(p);
    }
    pthread_attr_destroy(&at);
}

void
msrv_hosts_reap(struct msrv *srv)
{
    for (;;) {
        struct msrv_host *h = NULL;
        pthread_mutex_lock(&srv->lock);
        for (unsigned i = 0; i < MSRV_MAX_HOSTS && h == NULL; i++)
            if (srv->hosts[i] != NULL && srv->hosts[i]->dead && srv->hosts[i]->s != NULL) {
                h = srv->hosts[i];
                srv->hosts[i] = NULL;
            }
        pthread_mutex_unlock(&srv->lock);
        if (h == NULL)
            return;
        emm_stream_close(h->s);
        free(h);
    }
}

void
msrv_hosts_close_all(struct msrv *srv)
{
    atomic_store(&srv->stopping, 1);
    for (int i = 0; i < 1100 && atomic_load(&srv->handshakes) > 0; i++)
        usleep(10000);
    for (;;) {
        struct msrv_host *h = NULL;
        pthread_mutex_lock(&srv->lock);
        for (unsigned i = 0; i < MSRV_MAX_HOSTS && h == NULL; i++)
            if (srv->hosts[i] != NULL && srv->hosts[i]->s != NULL) {
                h = srv->hosts[i];
                srv->hosts[i] = NULL;
            }
        pthread_mutex_unlock(&srv->lock);
        if (h == NULL)
            return;
        emm_stream_close(h->s); /* on_dead runs in it: the host's access goes */
        free(h);
    }
}
