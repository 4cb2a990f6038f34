/*
 * port_stream.h - the stream transport: ports whose other end is in another
 * process, over a local socket (SOCK_STREAM, 0600, peer checked with
 * SO_PEERCRED). A connection (struct emm_stream) carries messages both ways
 * as frames (stream_frame.h: the wire header of msg_wire.h, then the data).
 *
 * Rights cross a connection by name: a local port named in a message sent on
 * the connection is *exported* (the connection keeps a reference while the
 * peer may use it); a name the peer sends becomes a *proxy*, a port of this
 * process whose operations send on the connection. When the last right to a
 * proxy goes, the peer is told (a RELEASE frame) and drops its export. A
 * right going back to its owner travels as the owner's name.
 *
 * Order: one connection is one ordered stream, and a proxy stamps each
 * message with its own sequence number, which the receiver checks (it must
 * follow the last one for that port), so a data_supply never overtakes a
 * flush sent before it. Sends never block on the socket: a writer thread
 * drains a queue, so a proxy may be posted to under the kernel's object lock.
 *
 * A bad frame (magic, kind, size, unknown id, a name never given, a payload
 * over EMM_MAX_REQUEST_BYTES, a seqno out of order, a message the peer's role
 * may not send) is logged once, naming the peer and the field, and the peer
 * is cut off: every proxy of the connection then fails with -EPIPE.
 *
 * Page data: between a kernel and a pager that both offer EMM_STREAM_F_SHM in
 * their hellos, the kernel side makes a shared region per connection (a memfd
 * sealed against shrinking and growing, sent once with SCM_RIGHTS) in two
 * halves: the kernel writes data_return pages into its half, the pager its
 * supplies into the other, and a MSG frame names the run (slot, length)
 * instead of carrying the bytes. The writer copies a message's pages into a
 * free run of its half (one memcpy instead of two socket copies); the
 * receiver's message points into the region (no copy) and its release hands
 * the run back (a FREE frame). The region holds only pages in flight on this
 * connection, so a pager sees nothing of other pagers' objects. A full half
 * is back-pressure: the message waits in the queue by reference, never
 * copied. A run the peer names that is not its own (a page of our half, or
 * one we still hold; a FREE of pages we did not lend) cuts the peer off. A
 * peer without the feature gets the data inline in the stream, as before.
 *
 * Locking: s->lock guards the queue, the export and proxy tables and the
 * pending lookups. It is never held while a port is unreferenced, a handler
 * runs, or the socket is written or read.
 */
#ifndef EMM_PORT_STREAM_H
#define EMM_PORT_STREAM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "port.h"

struct emm_stream;

/* The byte stream under a connection, when it is not a bare Unix socket: a
 * TLS session over TCP (stream_tls.h) or a plain TCP socket (stream_tcp.h).
 * The transport calls these instead of the socket calls; whoever made the
 * io has already authenticated the peer, so SO_PEERCRED is not asked.
 * read: bytes read (0 at the end of the stream) or -errno; writev: bytes
 * written or -errno (may be short); wait_readable: 1 when a read would not
 * block, 0 after timeout_ms, or -errno; shutdown: wakes both threads (called
 * from any thread, more than once); close: frees the io and its fd (once). */
struct emm_stream_io {
    ssize_t (*read)(void *ctx, void *buf, size_t len);
    ssize_t (*writev)(void *ctx, const struct iovec *iov, int n);
    int (*wait_readable)(void *ctx, int timeout_ms);
    void (*shutdown)(void *ctx);
    void (*close)(void *ctx);
    void *ctx;
};

/* Who is at the other end: which message ids it may send. */
enum emm_stream_role {
    EMM_STREAM_PEER_PAGER = 1,  /* sends pager -> kernel ids (ready, data_supply, ...) */
    EMM_STREAM_PEER_KERNEL = 2, /* sends kernel -> pager ids (init, data_request, ...) */
};

struct emm_stream_args {
    const char *label;  /* for log lines: "pager fs0" (copied) */
    enum emm_stream_role peer_role;
    uid_t peer_uid;     /* a peer uid allowed besides ours and root; (uid_t)-1: none */
    /* The served side: gives a send right (the caller's reference goes to the
     * connection) to the port of object id, asked for by emm_stream_lookup. */
    int (*lookup)(void *ctx, uint64_t id, struct emm_port **out);
    /* Called once, from the connection's reader thread, when the peer is gone
     * or cut off (err: 0 for a clean end of stream, else -errno). */
    void (*on_dead)(void *ctx, struct emm_stream *s, int err);
    void *ctx;
    int hello_timeout_ms; /* 0: 5000 */
    /* The peer's pid when the caller knows it better than SO_PEERCRED (which,
     * on a socketpair, names the process that made the pair); 0: from it. */
    pid_t peer_pid;
    /* NULL: fd is a Unix socket checked with SO_PEERCRED. Else the stream
     * reads and writes through io (copied) and fd serves only as a number in
     * log lines; emm_stream_open and emm_stream_close call io->close. */
    const struct emm_stream_io *io;
    /* Do not offer EMM_STREAM_F_SHM (data inline, as an older peer would). */
    int no_shm;
    /* Pages of each half of the shared region (the kernel side decides);
     * 0: 512. At least one request (256), at most 65536. */
    uint32_t shm_half_pages;
};

struct emm_stream_info {
    pid_t pid;
    uid_t uid;
    uint32_t version, features;
    uint64_t sent, received; /* message frames */
    uint64_t in_flight;      /* frames queued, not yet written, plus pending lookups */
    unsigned exports, proxies;
    int dead;
    /* The shared region (0 pages: none, data inline). */
    uint32_t shm_pages;      /* both halves */
    uint32_t shm_out_used;   /* pages of our half lent to the peer now */
    uint32_t shm_in_held;    /* pages of the peer's half our messages hold now */
    uint64_t shm_msgs_out, shm_msgs_in; /* messages whose data crossed in it */
    uint64_t shm_waits;      /* messages that waited for a free run (back-pressure) */
};

/* Takes fd (a connected SOCK_STREAM Unix socket; closed on failure too), checks
 * the peer's credentials, exchanges hellos and starts the reader and writer
 * threads. 0, -EPERM (peer uid), -EPROTO (hello), or -errno. */
int emm_stream_open(int fd, const struct emm_stream_args *a, struct emm_stream **out);
/* Cuts the connection, joins its threads and drops its exports; proxies still
 * referenced fail with -EPIPE from now on and free the rest when released. */
void emm_stream_close(struct emm_stream *s);
/* A send right to the peer's port for object id (a proxy). 0, -ETIMEDOUT,
 * -EPIPE (dead), or the peer's errno. */
int emm_stream_lookup(struct emm_stream *s, uint64_t id, int timeout_ms,
                      struct emm_port **out);
void emm_stream_info(struct emm_stream *s, struct emm_stream_info *out);
/* Keeps s's memory (not the connection) while a caller uses it unlocked. */
void emm_stream_hold(struct emm_stream *s);
void emm_stream_release(struct emm_stream *s);
/* Waits up to timeout_ms for every queued frame to be written (or the peer to
 * go): 0, or -ETIMEDOUT. */
int emm_stream_drain(struct emm_stream *s, int timeout_ms);
/* Cuts the connection off (its peer misbehaved: why names it in a log line):
 * as for a bad frame, the reader ends, on_dead runs, proxies are dead names. */
void emm_stream_cut(struct emm_stream *s, const char *why);
/* "pager fs0 (pid 123)": the name log lines use. */
const char *emm_stream_peer(const struct emm_stream *s);

/* A buffer of npages in the shared region of the connection that port (a
 * proxy) belongs to, for the data of a message its caller will post to that
 * port: the writer then sends it without copying it. 0 and *data; -EAGAIN
 * when no run is free now; -ENOTSUP when port is not a proxy or its
 * connection has no region. Pages not posted go back with
 * emm_stream_data_unreserve (the connection's end frees the rest). */
int emm_stream_data_alloc(struct emm_port *port, uint32_t npages, void **data);
void emm_stream_data_unreserve(struct emm_port *port, void *data, uint32_t npages);

/* Socket helpers. A listening socket at path, mode 0600 (a stale socket file
 * is replaced); a connection to one; the next connection on one. fd or -errno. */
int emm_stream_listen(const char *path);
int emm_stream_connect(const char *path);
int emm_stream_accept(int lfd);

#endif
