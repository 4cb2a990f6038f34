/*
 * port_stream.c - the stream transport (see port_stream.h): a connection's
 * hello, its reader and writer threads, the export and proxy tables that
 * translate port names, the proxy port's operations, and the shared region
 * (EMM_STREAM_F_SHM) whose pages carry message data instead of the socket.
 *
 * Locking: s->lock guards the out queues, both tables, the pending lookups,
 * the region's page states and the counters; s->refs (atomic) keeps the
 * connection (and the region's mapping) while its owner, a proxy or a message
 * whose data is in the region holds it. Ports are unreferenced, handlers run,
 * the socket is used and page data is copied only without s->lock (a proxy's
 * fini takes it).
 */

#include "port_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "port_impl.h"
#include "stream_frame.h"

#define HASH_BUCKETS 1024u
#define MAX_IOV 260
#define PS 4096u
#define NO_SLOT UINT32_MAX
/* Pages of each half of the shared region: two whole requests in flight each
 * way (the region is 4 MiB per connection; only pages in flight are touched). */
#define SHM_HALF_DEFAULT (2u * EMM_MAX_REQUEST_PAGES)
#define SHM_HALF_MAX (1u << 16)
/* A poster writes a frame itself when nothing is queued and its data is at
 * most this many pages (the copy runs under the poster's locks). */
#define DIRECT_MAX_PAGES 16u

/* A frame waiting for the writer: fixed bytes, then the message's data. */
struct out_item {
    STAILQ_ENTRY(out_item) link;
    unsigned char fixed[EMM_FRAME_MAX_FIXED];
    size_t len;
    struct emm_msg *msg; /* MSG frames: released (0) once written */
    uint32_t npages;     /* pages of data the message carries (0: none) */
    int waited;          /* counted once in shm_waits */
    /* Begun by its poster (see proxy_post): the bytes already written, the
     * run its data was copied into (NO_SLOT: none), and whether it is counted
     * in s->sent. */
    size_t skip;
    uint32_t slot;
    int counted;
    int filled; /* its data is in the region already (slot set) */
};
STAILQ_HEAD(out_queue, out_item);

/* The shared region: page states, per connection. Pages [mine_lo, mine_hi)
 * are the half this side writes data into (FREE, or SENT until the peer hands
 * them back with a FREE frame); [theirs_lo, theirs_hi) is the peer's half
 * (FREE from our view, or HELD while a message we received points into it).
 * A run of our half may also be RESERVED: handed to a local sender that
 * fills it itself (emm_stream_data_alloc) before it posts the message. */
enum { RG_FREE = 0, RG_SENT = 1, RG_HELD = 2, RG_RESERVED = 3 };
struct region {
    unsigned char *base; /* NULL: no region, data goes inline */
    size_t size;
    uint32_t pages, kpages;
    uint32_t mine_lo, mine_hi, theirs_lo, theirs_hi;
    uint8_t *state;
    uint32_t out_used, in_held;
    /* Pages of our half not on the wire yet: RESERVED for a local sender, or
     * filled by one and queued. A data message waits for a free run only
     * while this is 0: else the run it waits for may be held by a message
     * queued behind it (a deadlock), so it goes inline in the stream. */
    uint32_t unsent;
    uint64_t msgs_out, msgs_in, waits;
};

/* A received message whose data is in the region: its release hands the
 * pages back to the peer. */
struct shm_msg {
    struct emm_msg m; /* first: the release hook frees the whole */
    struct emm_stream *s;
    uint32_t first, n;
};

/* A local port the peer may name. */
struct export {
    struct export *next;
    struct emm_port *port; /* a reference */
    uint64_t sends;        /* times its name was sent, minus those released */
    uint64_t last_seqno;   /* of the last message the peer sent to it: the next is higher */
};

/* A peer's port, as a port of this process. */
struct proxy {
    struct emm_port port; /* first: emm_port_unref frees the whole */
    struct emm_stream *s;
    emm_port_name_t remote;
    uint64_t seqno;    /* under s->lock */
    uint64_t received; /* times the peer sent its name (rights to release) */
    struct proxy *next;
};

/* The last seqno sent to a peer's port by a proxy now freed: a new proxy for
 * it numbers on past it. The answer to a lookup asked before that proxy's
 * last messages were queued carries an older count, and the peer's export
 * may still hold the newer one (two lookups of one port in flight). Kept for
 * the stream's life (one per port of the peer ever named). */
struct sent_floor {
    struct sent_floor *next;
    emm_port_name_t remote;
    uint64_t seqno;
};

struct lookup {
    LIST_ENTRY(lookup) link;
    uint32_t cookie;
    int done, rc;
    struct emm_port *port;
};

struct emm_stream {
    pthread_mutex_t lock;
    pthread_cond_t wcond; /* the writer waits for frames */
    pthread_cond_t lcond; /* lookups wait for answers (CLOCK_MONOTONIC) */
    atomic_uint refs;
    int fd;
    struct emm_stream_io io; /* io.read == NULL: the socket fd itself */
    int dead;
    struct emm_stream_args a;
    char label[64];
    char peer[96];
    pid_t pid;
    uid_t uid;
    uint32_t version, features;
    struct out_queue out;
    struct out_queue prio; /* FREE frames: never wait behind data for slots */
    struct out_queue done; /* written by their posters: the writer releases them */
    struct region rg;
    uint64_t queued, sent, received;
    int writing; /* the writer, or a poster, is writing a frame */
    unsigned nexports, nproxies;
    struct export *exports[HASH_BUCKETS];
    struct proxy *proxies[HASH_BUCKETS];
    struct sent_floor *floors[HASH_BUCKETS];
    LIST_HEAD(, lookup) lookups;
    uint32_t next_cookie;
    pthread_t reader, writer;
};

static const struct emm_port_ops stream_ops;
static uint32_t rg_alloc(struct emm_stream *s, uint32_t n);
static int rg_run_is(const struct region *rg, uint32_t lo, uint32_t hi, uint32_t first,
                     uint32_t n, uint8_t want);
static uint32_t rg_reserved_slot(struct emm_stream *s, const struct emm_msg *msg,
                                 uint32_t npages);
static void rg_fill(struct emm_stream *s, const struct emm_msg *msg, uint32_t slot);
static void direct_write(struct emm_stream *s, struct out_item *it);

static unsigned
bucket(uint32_t name)
{
    return (name * 2654435761u) >> 22; /* HASH_BUCKETS = 1 << 10 */
}

static void
stream_unref(struct emm_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->rg.base != NULL)
        munmap(s->rg.base, s->rg.size);
    free(s->rg.state);
    for (unsigned b = 0; b < HASH_BUCKETS; b++)
        while (s->floors[b] != NULL) {
            struct sent_floor *f = s->floors[b];
            s->floors[b] = f->next;
            free(f);
        }
    pthread_cond_destroy(&s->wcond);
    pthread_cond_destroy(&s->lcond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *
emm_stream_peer(const struct emm_stream *s)
{
    return s->peer;
}

/* ---- tables (s->lock held) ----------------------------------------------- */

static struct export *
export_find(struct emm_stream *s, uint32_t name)
{
    for (struct export *e = s->exports[bucket(name)]; e != NULL; e = e->next)
        if (emm_port_name(e->port) == name)
            return e;
    return NULL;
}

/* The peer gets a right to local port p: keep it while the peer may use it. */
static int
export_add(struct emm_stream *s, struct emm_port *p)
{
    uint32_t name = emm_port_name(p);
    struct export *e = export_find(s, name);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        e->port = emm_port_ref(p);
        e->next = s->exports[bucket(name)];
        s->exports[bucket(name)] = e;
        s->nexports++;
    }
    e->sends++;
    return 0;
}

static void
export_unlink(struct emm_stream *s, struct export *victim)
{
    struct export **pp = &s->exports[bucket(emm_port_name(victim->port))];
    while (*pp != victim)
        pp = &(*pp)->next;
    *pp = victim->next;
    s->nexports--;
}

static struct proxy *
proxy_find(struct emm_stream *s, emm_port_name_t remote)
{
    for (struct proxy *p = s->proxies[bucket(remote)]; p != NULL; p = p->next)
        if (p->remote == remote)
            return p;
    return NULL;
}

static void
proxy_unlink(struct emm_stream *s, struct proxy *victim)
{
    struct proxy **pp = &s->proxies[bucket(victim->remote)];
    while (*pp != NULL && *pp != victim)
        pp = &(*pp)->next;
    if (*pp == victim) {
        *pp = victim->next;
        s->nproxies--;
    }
}

/* The highest seqno a freed proxy sent to `remote` (0: none). s->lock held. */
static uint64_t
floor_get(struct emm_stream *s, emm_port_name_t remote)
{
    for (struct sent_floor *f = s->floors[bucket(remote)]; f != NULL; f = f->next)
        if (f->remote == remote)
            return f->seqno;
    return 0;
}

/* Records a proxy's last seqno as it goes (no memory: the old rule). s->lock held. */
static void
floor_keep(struct emm_stream *s, const struct proxy *px)
{
    if (px->seqno == 0)
        return;
    struct sent_floor *f = s->floors[bucket(px->remote)];
    while (f != NULL && f->remote != px->remote)
        f = f->next;
    if (f == NULL) {
        if ((f = calloc(1, sizeof(*f))) == NULL)
            return;
        f->remote = px->remote;
        f->next = s->floors[bucket(px->remote)];
        s->floors[bucket(px->remote)] = f;
    }
    if (f->seqno < px->seqno)
        f->seqno = px->seqno;
}

/* A right to the peer's port `remote` arrived: a reference to its proxy
 * (created on first sight). NULL on no memory. */
static struct proxy *
proxy_get(struct emm_stream *s, emm_port_name_t remote)
{
    struct proxy *p = proxy_find(s, remote);
    if (p != NULL) {
        /* A proxy whose last right is going (its fini waits for our lock) is
         * replaced: its own count goes back to the peer in its RELEASE. */
        unsigned r = atomic_load(&p->port.refs);
        while (r != 0 && !atomic_compare_exchange_weak(&p->port.refs, &r, r + 1))
            ;
        if (r != 0) {
            p->received++;
            return p;
        }
        proxy_unlink(s, p);
    }
    /* (a replaced proxy's messages may reach the peer after the lookup that
     * made this one: number on past them) */
    uint64_t seqno = floor_get(s, remote);
    if (p != NULL && p->seqno > seqno)
        seqno = p->seqno;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->port.ops = &stream_ops;
    pthread_mutex_init(&p->port.lock, NULL);
    atomic_init(&p->port.refs, 1);
    p->port.label = s->peer;
    if (emm_port_name_alloc(&p->port) < 0) {
        pthread_mutex_destroy(&p->port.lock);
        free(p);
        return NULL;
    }
    p->s = s;
    atomic_fetch_add(&s->refs, 1);
    p->remote = remote;
    p->received = 1;
    p->seqno = seqno;
    p->next = s->proxies[bucket(remote)];
    s->proxies[bucket(remote)] = p;
    s->nproxies++;
    return p;
}

/* ---- sending ------------------------------------------------------------- */

static void
queue_item(struct emm_stream *s, struct out_item *it)
{
    STAILQ_INSERT_TAIL(&s->out, it, link);
    s->queued++;
    pthread_cond_signal(&s->wcond);
}

/* Queues a small frame (not a message); drops it on a dead connection. */
static void
send_fixed(struct emm_stream *s, const unsigned char *buf, size_t len)
{
    struct out_item *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        emm_err("stream %s: no memory for a %zu-byte frame", s->peer, len);
        return;
    }
    memcpy(it->fixed, buf, len);
    it->len = len;
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        pthread_mutex_unlock(&s->lock);
        free(it);
        return;
    }
    queue_item(s, it);
    pthread_mutex_unlock(&s->lock);
}

/* How a right in a header goes on the wire (s->lock held): 0 and *wire, *yours;
 * -EXDEV for a proxy of another connection, -EINVAL for a dead name. */
static int
wire_name(struct emm_stream *s, emm_port_name_t n, emm_port_name_t *wire, int *yours,
          struct emm_port **local)
{
    *wire = EMM_PORT_NULL;
    *yours = 0;
    *local = NULL;
    if (n == EMM_PORT_NULL)
        return 0;
    struct emm_port *p = emm_port_peek(n);
    if (p == NULL)
        return -EINVAL;
    if (p->ops == &stream_ops) {
        struct proxy *px = (struct proxy *)p;
        if (px->s != s)
            return -EXDEV;
        *wire = px->remote;
        *yours = 1;
        return 0;
    }
    *wire = n;
    *local = p;
    return 0;
}

static int
proxy_post(struct emm_port *port, struct emm_msg *msg)
{
    struct proxy *px = (struct proxy *)port;
    struct emm_stream *s = px->s;
    struct out_item *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return -ENOMEM;
    struct emm_msg_hdr h = msg->hdr;
    uint64_t total = msg->length;
    for (struct emm_msg *c = msg->chain; c != NULL; c = c->chain)
        total += c->length;
    h.length = total;
    uint32_t payload = msg->data != NULL ? (uint32_t)total : 0;
    if (msg->data != NULL && total > EMM_MAX_REQUEST_BYTES) {
        emm_err("stream %s: %s of %llu bytes exceeds the request limit", s->peer,
                emm_msg_name(msg->id), (unsigned long long)total);
        free(it);
        return -EPIPE;
    }

    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        pthread_mutex_unlock(&s->lock);
        free(it);
        return -EPIPE;
    }
    emm_port_name_t *fields[3] = {&h.control, &h.name, &h.reply};
    const uint16_t yours_bit[3] = {EMM_FRAME_F_CONTROL_YOURS, EMM_FRAME_F_NAME_YOURS,
                                   EMM_FRAME_F_REPLY_YOURS};
    struct emm_port *locals[3];
    uint16_t flags = 0;
    for (int i = 0; i < 3; i++) {
        int yours;
        int rc = wire_name(s, *fields[i], fields[i], &yours, &locals[i]);
        if (rc < 0) {
            pthread_mutex_unlock(&s->lock);
            emm_err("stream %s: %s carries a right that cannot cross (%s)", s->peer,
                    emm_msg_name(msg->id), rc == -EXDEV ? "another connection's" : "dead");
            free(it);
            return -EPIPE;
        }
        if (yours)
            flags |= yours_bit[i];
    }
    h.seqno = px->seqno + 1;
    int n = emm_frame_encode_msg(it->fixed, flags, px->remote, &h, payload);
    if (n < 0) {
        pthread_mutex_unlock(&s->lock);
        emm_err("stream %s: %s cannot be encoded", s->peer, emm_msg_name(msg->id));
        free(it);
        return -EPIPE;
    }
    for (int i = 0; i < 3; i++) {
        if (locals[i] != NULL && export_add(s, locals[i]) < 0) {
            /* Earlier names stay exported: harmless, released at the end. */
            pthread_mutex_unlock(&s->lock);
            free(it);
            return -EPIPE;
        }
    }
    msg->seqno = ++px->seqno;
    /* A clustered data_return is one message on the wire, answered once with
     * the head's seqno: every page carries it. Stamped here, before the writer
     * may release (and unlink) the chain. */
    for (struct emm_msg *c = msg->chain; c != NULL; c = c->chain)
        c->seqno = msg->seqno;
    it->len = (size_t)n;
    it->msg = msg;
    it->npages = (uint32_t)(payload / PS);
    it->slot = NO_SLOT;
    if (it->npages > 0 && (it->slot = rg_reserved_slot(s, msg, it->npages)) != NO_SLOT) {
        /* Its sender filled it in the region: the frame names the run. */
        memset(s->rg.state + it->slot, RG_SENT, it->npages);
        s->rg.msgs_out++;
        it->filled = 1;
        emm_frame_set_slot(it->fixed, it->slot);
    }
    /* Nothing queued and the socket free: write it here (a data_request, a
     * small supply) instead of waking the writer, without blocking. */
    /* (Not over an io: a TLS session has one writer, the writer thread.) */
    int direct = s->io.writev == NULL && !s->writing && STAILQ_EMPTY(&s->out) &&
                 STAILQ_EMPTY(&s->prio) &&
                 (it->npages <= DIRECT_MAX_PAGES || it->filled);
    if (direct && it->npages > 0 && s->rg.base != NULL && !it->filled) {
        it->slot = rg_alloc(s, it->npages);
        direct = it->slot != NO_SLOT;
    }
    if (!direct) {
        queue_item(s, it);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    s->writing = 1;
    s->sent++;
    it->counted = 1;
    pthread_mutex_unlock(&s->lock);
    direct_write(s, it);
    return 0;
}

/* Builds the iovec of an item's frame (data inline unless it has a slot). */
static int
item_iov(const struct out_item *it, struct iovec *iov)
{
    int n = 0;
    iov[n++] = (struct iovec){(void *)it->fixed, it->len};
    if (it->slot == NO_SLOT && it->msg != NULL && it->msg->data != NULL)
        for (struct emm_msg *m = it->msg; m != NULL && n < MAX_IOV; m = m->chain)
            iov[n++] = (struct iovec){m->data, m->length};
    return n;
}

/* Drops the first skip bytes of an iovec; returns the entries left. */
static int
iov_skip(struct iovec **iov, int n, size_t skip)
{
    while (n > 0 && skip >= (*iov)->iov_len) {
        skip -= (*iov)->iov_len;
        (*iov)++;
        n--;
    }
    if (n > 0 && skip > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + skip;
        (*iov)->iov_len -= skip;
    }
    return n;
}

/* A poster's own write (s->writing is set for it): one non-blocking sendmsg.
 * Written whole, the message goes to the writer to be released (the poster
 * may hold locks its release hook takes); else what is left goes first in
 * the queue, for the writer. */
static void
direct_write(struct emm_stream *s, struct out_item *it)
{
    struct iovec iovs[MAX_IOV], *iov = iovs;
    if (it->slot != NO_SLOT && !it->filled) {
        rg_fill(s, it->msg, it->slot);
        emm_frame_set_slot(it->fixed, it->slot);
    }
    int n = item_iov(it, iov);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    ssize_t w;
    do
        w = sendmsg(s->fd, &(struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)n},
                    MSG_DONTWAIT | MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    pthread_mutex_lock(&s->lock);
    s->writing = 0;
    if (it->filled && w > 0)
        s->rg.unsent -= it->npages; /* begun: the writer finishes it first */
    if (w >= 0 && (size_t)w == total) {
        STAILQ_INSERT_TAIL(&s->done, it, link);
    } else {
        it->skip = w > 0 ? (size_t)w : 0; /* an error shows again to the writer */
        STAILQ_INSERT_HEAD(&s->out, it, link);
        s->queued++;
    }
    pthread_cond_signal(&s->wcond);
    pthread_mutex_unlock(&s->lock);
}

static void
proxy_kick(struct emm_port *port)
{
    (void)port; /* the writer thread is already woken by post */
}

static void
proxy_destroy(struct emm_port *port)
{
    emm_err("stream %s: a proxy has no receive right to destroy", port->label);
}

static void
proxy_fini(struct emm_port *port)
{
    struct proxy *px = (struct proxy *)port;
    struct emm_stream *s = px->s;
    unsigned char buf[EMM_FRAME_PREFIX_SIZE];
    pthread_mutex_lock(&s->lock);
    proxy_unlink(s, px);
    floor_keep(s, px);
    int tell = !s->dead && px->received > 0;
    pthread_mutex_unlock(&s->lock);
    if (tell) {
        emm_frame_encode_prefix(buf, EMM_FRAME_RELEASE, 0, px->remote,
                                (uint32_t)px->received);
        send_fixed(s, buf, sizeof(buf));
    }
    pthread_mutex_destroy(&port->lock);
    stream_unref(s);
}

static uint64_t
proxy_seqno_raise(struct emm_port *port, uint64_t floor)
{
    struct proxy *px = (struct proxy *)port;
    pthread_mutex_lock(&px->s->lock);
    if (px->seqno < floor)
        px->seqno = floor; /* the peer takes any higher seqno */
    uint64_t last = px->seqno;
    pthread_mutex_unlock(&px->s->lock);
    return last;
}

static const struct emm_port_ops stream_ops = {
    .kind = "stream",
    .post = proxy_post,
    .kick = proxy_kick,
    .send = proxy_post,
    .destroy = proxy_destroy,
    .fini = proxy_fini,
    .seqno_raise = proxy_seqno_raise,
};

/* ---- the socket ---------------------------------------------------------- */

static ssize_t
io_writev(struct emm_stream *s, struct iovec *iov, int n)
{
    if (s->io.writev != NULL)
        return s->io.writev(s->io.ctx, iov, n);
    ssize_t w = sendmsg(s->fd, &(struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)n},
                        MSG_NOSIGNAL);
    return w < 0 ? -errno : w;
}

static ssize_t
io_read(struct emm_stream *s, void *buf, size_t len)
{
    if (s->io.read != NULL)
        return s->io.read(s->io.ctx, buf, len);
    ssize_t r = read(s->fd, buf, len);
    return r < 0 ? -errno : r;
}

static int
write_all(struct emm_stream *s, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = io_writev(s, iov, n);
        if (w < 0) {
            if (w == -EINTR)
                continue;
            return (int)w;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Reads exactly len bytes: 0, -ECONNRESET at a clean end of stream before
 * the first byte (*eof set), or -errno. */
static int
read_all(struct emm_stream *s, void *buf, size_t len, int *eof)
{
    size_t got = 0;
    *eof = 0;
    while (got < len) {
        ssize_t r = io_read(s, (char *)buf + got, len - got);
        if (r < 0) {
            if (r == -EINTR)
                continue;
            return (int)r;
        }
        if (r == 0) {
            *eof = got == 0;
            return -ECONNRESET;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Marks the connection dead and wakes everyone; the socket is shut down so
 * both threads leave. */
static void
cut(struct emm_stream *s)
{
    pthread_mutex_lock(&s->lock);
    s->dead = 1;
    pthread_cond_broadcast(&s->wcond);
    pthread_cond_broadcast(&s->lcond);
    pthread_mutex_unlock(&s->lock);
    if (s->io.shutdown != NULL)
        s->io.shutdown(s->io.ctx);
    else
        shutdown(s->fd, SHUT_RDWR);
}

/* ---- the shared region (s->lock held unless said) ------------------------ */

/* The first run of n free pages in our half, marked SENT; NO_SLOT if none. */
static uint32_t
rg_take(struct emm_stream *s, uint32_t n, uint8_t state)
{
    struct region *rg = &s->rg;
    uint32_t run = 0;
    for (uint32_t i = rg->mine_lo; i < rg->mine_hi; i++) {
        run = rg->state[i] == RG_FREE ? run + 1 : 0;
        if (run == n) {
            uint32_t first = i + 1 - n;
            memset(rg->state + first, state, n);
            rg->out_used += n;
            if (state == RG_SENT)
                rg->msgs_out++;
            return first;
        }
    }
    return NO_SLOT;
}

static uint32_t
rg_alloc(struct emm_stream *s, uint32_t n)
{
    return rg_take(s, n, RG_SENT);
}

/* The first page of data that a local sender filled in a RESERVED run of our
 * half (emm_stream_data_alloc), or NO_SLOT. */
static uint32_t
rg_reserved_slot(struct emm_stream *s, const struct emm_msg *msg, uint32_t npages)
{
    const unsigned char *d = msg->data;
    struct region *rg = &s->rg;
    if (rg->base == NULL || msg->chain != NULL || d < rg->base || d >= rg->base + rg->size ||
        (size_t)(d - rg->base) % PS != 0)
        return NO_SLOT;
    uint32_t first = (uint32_t)((size_t)(d - rg->base) / PS);
    return rg_run_is(rg, rg->mine_lo, rg->mine_hi, first, npages, RG_RESERVED) ? first
                                                                               : NO_SLOT;
}

/* Is [first, first+n) inside [lo, hi) with every page in state want? */
static int
rg_run_is(const struct region *rg, uint32_t lo, uint32_t hi, uint32_t first, uint32_t n,
          uint8_t want)
{
    if (n == 0 || first < lo || first >= hi || n > hi - first)
        return 0;
    for (uint32_t i = first; i < first + n; i++)
        if (rg->state[i] != want)
            return 0;
    return 1;
}

/* Queues a FREE frame ahead of data frames (drops it on a dead connection). */
static void
send_free(struct emm_stream *s, uint32_t first, uint32_t n)
{
    struct out_item *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        /* The peer's pages stay lent: its writer waits for others. */
        emm_err("stream %s: no memory to hand back slot %u+%u", s->peer, first, n);
        return;
    }
    it->len = emm_frame_encode_prefix(it->fixed, EMM_FRAME_FREE, 0, first, n);
    it->slot = NO_SLOT;
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        pthread_mutex_unlock(&s->lock);
        free(it);
        return;
    }
    if (s->io.writev == NULL && !s->writing && STAILQ_EMPTY(&s->out) &&
        STAILQ_EMPTY(&s->prio)) {
        /* The socket is free: write it here, without waking the writer. */
        s->writing = 1;
        pthread_mutex_unlock(&s->lock);
        ssize_t w;
        do
            w = send(s->fd, it->fixed, it->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        pthread_mutex_lock(&s->lock);
        s->writing = 0;
        if (w == (ssize_t)it->len) {
            free(it);
            it = NULL;
        } else {
            it->skip = w > 0 ? (size_t)w : 0;
        }
    }
    if (it != NULL)
        STAILQ_INSERT_HEAD(&s->prio, it, link);
    pthread_cond_signal(&s->wcond);
    pthread_mutex_unlock(&s->lock);
}

/* The release of a received message whose data is in the region. */
static void
shm_msg_release(struct emm_msg *msg, int status)
{
    (void)status;
    struct shm_msg *sm = (struct shm_msg *)msg;
    struct emm_stream *s = sm->s;
    pthread_mutex_lock(&s->lock);
    memset(s->rg.state + sm->first, RG_FREE, sm->n);
    s->rg.in_held -= sm->n;
    pthread_mutex_unlock(&s->lock);
    send_free(s, sm->first, sm->n);
    free(sm);
    stream_unref(s);
}

/* The kernel side makes the region: a memfd sealed against shrinking and
 * growing (so the peer cannot make our mapping fault), mapped shared. */
static int
region_create(struct emm_stream *s, uint32_t half, int *fdout)
{
    struct region *rg = &s->rg;
    uint32_t pages = 2 * half;
    int fd = memfd_create("emm-stream", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    size_t size = (size_t)pages * PS;
    int rc = 0;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        rc = -errno;
    void *base = rc == 0 ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                         : MAP_FAILED;
    if (rc == 0 && base == MAP_FAILED)
        rc = -errno;
    rg->state = rc == 0 ? calloc(pages, 1) : NULL;
    if (rc == 0 && rg->state == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        if (base != MAP_FAILED)
            munmap(base, size);
        close(fd);
        return rc;
    }
    rg->base = base;
    rg->size = size;
    rg->pages = pages;
    rg->kpages = half;
    rg->mine_lo = 0, rg->mine_hi = half;
    rg->theirs_lo = half, rg->theirs_hi = pages;
    *fdout = fd;
    return 0;
}

/* Writes a data message's pages into the region at slot. */
static void
rg_fill(struct emm_stream *s, const struct emm_msg *msg, uint32_t slot)
{
    unsigned char *to = s->rg.base + (size_t)slot * PS;
    for (const struct emm_msg *m = msg; m != NULL; m = m->chain) {
        memcpy(to, m->data, m->length);
        to += m->length;
    }
}

static void *
writer_main(void *arg)
{
    struct emm_stream *s = arg;
    struct iovec iov[MAX_IOV];
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->dead && STAILQ_EMPTY(&s->done) &&
               (s->writing || (STAILQ_EMPTY(&s->out) && STAILQ_EMPTY(&s->prio))))
            pthread_cond_wait(&s->wcond, &s->lock);
        if (!STAILQ_EMPTY(&s->done)) {
            /* Frames their posters wrote: their messages were taken. */
            struct out_queue done = STAILQ_HEAD_INITIALIZER(done);
            STAILQ_CONCAT(&done, &s->done);
            pthread_mutex_unlock(&s->lock);
            struct out_item *d;
            while ((d = STAILQ_FIRST(&done)) != NULL) {
                STAILQ_REMOVE_HEAD(&done, link);
                emm_msg_release(d->msg, 0);
                free(d);
            }
            continue;
        }
        if (s->dead) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        struct out_item *it = STAILQ_FIRST(&s->prio);
        if (!STAILQ_EMPTY(&s->out) && STAILQ_FIRST(&s->out)->skip > 0)
            it = NULL; /* a frame a poster began goes on first */
        uint32_t slot = NO_SLOT;
        if (it != NULL) {
            STAILQ_REMOVE_HEAD(&s->prio, link);
        } else {
            it = STAILQ_FIRST(&s->out);
            if (it->npages > 0 && s->rg.base != NULL && it->slot == NO_SLOT) {
                slot = rg_alloc(s, it->npages);
                if (slot == NO_SLOT && s->rg.unsent == 0) {
                    /* Back-pressure: the region is full of pages the peer has
                     * not handed back. The message waits here, by reference
                     * (no copy); FREE frames still go out meanwhile. */
                    if (!it->waited) {
                        it->waited = 1;
                        s->rg.waits++;
                    }
                    pthread_cond_wait(&s->wcond, &s->lock);
                    pthread_mutex_unlock(&s->lock);
                    continue;
                }
            }
            STAILQ_REMOVE_HEAD(&s->out, link);
            s->queued--;
            if (it->filled && it->skip == 0)
                s->rg.unsent -= it->npages; /* on the wire from now on */
        }
        s->writing = 1;
        if (it->msg != NULL && !it->counted)
            s->sent++;
        pthread_mutex_unlock(&s->lock);
        if (slot != NO_SLOT) {
            it->slot = slot;
            rg_fill(s, it->msg, slot);
            emm_frame_set_slot(it->fixed, slot);
        }
        struct iovec *v = iov;
        int n = iov_skip(&v, item_iov(it, iov), it->skip);
        int rc = n > 0 ? write_all(s, v, n) : 0;
        if (it->msg != NULL)
            emm_msg_release(it->msg, rc < 0 ? -EPIPE : 0);
        free(it);
        pthread_mutex_lock(&s->lock);
        s->writing = 0;
        pthread_mutex_unlock(&s->lock);
        if (rc < 0) {
            emm_warn("stream %s: write: %s", s->peer, strerror(-rc));
            cut(s);
            break;
        }
    }
    /* Frames never written: their messages were not taken. */
    pthread_mutex_lock(&s->lock);
    while (s->writing) /* a poster's write ends at once (non-blocking) */
        pthread_cond_wait(&s->wcond, &s->lock);
    struct out_queue left = STAILQ_HEAD_INITIALIZER(left);
    struct out_queue done = STAILQ_HEAD_INITIALIZER(done);
    STAILQ_CONCAT(&done, &s->done);
    STAILQ_CONCAT(&left, &s->prio);
    STAILQ_CONCAT(&left, &s->out);
    s->queued = 0;
    pthread_mutex_unlock(&s->lock);
    struct out_item *it;
    while ((it = STAILQ_FIRST(&done)) != NULL) {
        STAILQ_REMOVE_HEAD(&done, link);
        emm_msg_release(it->msg, 0);
        free(it);
    }
    while ((it = STAILQ_FIRST(&left)) != NULL) {
        STAILQ_REMOVE_HEAD(&left, link);
        if (it->msg != NULL)
            emm_msg_release(it->msg, -EPIPE);
        free(it);
    }
    return NULL;
}

/* ---- receiving ----------------------------------------------------------- */

static void
msg_data_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg->data);
    free(msg);
}

static int
refuse(struct emm_stream *s, const struct emm_frame *f, const char *field, int err)
{
    int named = f->kind == EMM_FRAME_MSG && emm_msg_id_known(f->hdr.id);
    emm_err("stream %s: refused a %s frame%s%s%s: bad %s; cutting the peer off", s->peer,
            emm_frame_kind_name(f->kind), named ? " (" : "",
            named ? emm_msg_name(f->hdr.id) : "", named ? ")" : "", field);
    return err;
}

static int
role_allows(const struct emm_stream *s, uint32_t id)
{
    /* The memory server's namespace (0x60-0x6f): requests from a kernel
     * (host), answers from a pager (server). */
    if (MO_NS_IS_REQUEST(id) || MO_NS_IS_ANSWER(id))
        return s->a.peer_role == 0 ||
               (s->a.peer_role == EMM_STREAM_PEER_KERNEL) == MO_NS_IS_REQUEST(id);
    /* Record locks (0x70..0x7f): the first half is the kernel's to send. */
    if (emm_msg_is_lock(id) && s->a.peer_role != 0)
        return (s->a.peer_role == EMM_STREAM_PEER_KERNEL) == emm_msg_lock_from_kernel(id);
    if (s->a.peer_role == EMM_STREAM_PEER_PAGER)
        return id >= MO_READY;
    if (s->a.peer_role == EMM_STREAM_PEER_KERNEL)
        return id < MO_READY;
    return 1;
}

/* Releases rights taken for a message that is refused before it exists. */
static void
drop_ports(struct emm_port **ports, int n)
{
    for (int i = 0; i < n; i++)
        if (ports[i] != NULL)
            emm_port_unref(ports[i]);
}

/* The data of a message refused before it exists: heap data is freed, a
 * region run goes back to the peer's half (the connection is being cut). */
static void
slot_drop(struct emm_stream *s, void *data, uint32_t slot, uint32_t n)
{
    if (slot == NO_SLOT) {
        free(data);
        return;
    }
    pthread_mutex_lock(&s->lock);
    memset(s->rg.state + slot, RG_FREE, n);
    s->rg.in_held -= n;
    pthread_mutex_unlock(&s->lock);
}

static int
recv_msg(struct emm_stream *s, struct emm_frame *f)
{
    if (!role_allows(s, f->hdr.id))
        return refuse(s, f, "id (not the peer's to send)", -EBADMSG);
    /* The payload's size was checked by the decoder: at most one request. */
    void *data = NULL;
    uint32_t slot = NO_SLOT, npages = 0;
    if (f->flags & EMM_FRAME_F_SHM) {
        /* The data is in the peer's half of the region: every page of the run
         * must be one the peer may write, not one we hold. */
        char why[96];
        npages = (uint32_t)(f->hdr.length / PS);
        pthread_mutex_lock(&s->lock);
        int ok = s->rg.base != NULL && rg_run_is(&s->rg, s->rg.theirs_lo, s->rg.theirs_hi,
                                                 f->arg, npages, RG_FREE);
        if (ok) {
            memset(s->rg.state + f->arg, RG_HELD, npages);
            s->rg.in_held += npages;
            s->rg.msgs_in++;
        }
        pthread_mutex_unlock(&s->lock);
        if (!ok) {
            snprintf(why, sizeof(why), "slot %u+%u (%s)", f->arg, npages,
                     s->rg.base == NULL ? "no shared region" : "not the peer's to name");
            return refuse(s, f, why, -EBADMSG);
        }
        slot = f->arg;
        data = s->rg.base + (size_t)slot * PS;
    } else if (f->payload > 0) {
        if (posix_memalign(&data, 4096, f->payload) != 0)
            return -ENOMEM;
        int eof;
        int rc = read_all(s, data, f->payload, &eof);
        if (rc < 0) {
            free(data);
            emm_warn("stream %s: %s truncated in its payload", s->peer,
                     emm_msg_name(f->hdr.id));
            return rc;
        }
    }
    struct emm_msg_hdr h = f->hdr;
    struct emm_port *ports[4] = {NULL, NULL, NULL, NULL}; /* dest, control, name, reply */
    emm_port_name_t *fields[3] = {&h.control, &h.name, &h.reply};
    const uint16_t yours_bit[3] = {EMM_FRAME_F_CONTROL_YOURS, EMM_FRAME_F_NAME_YOURS,
                                   EMM_FRAME_F_REPLY_YOURS};
    static const char *const field_name[3] = {"control", "name", "reply"};
    const char *bad = NULL;

    pthread_mutex_lock(&s->lock);
    struct export *d = export_find(s, f->dest);
    if (d == NULL) {
        bad = "dest (a port never given)";
    } else if (h.seqno <= d->last_seqno) {
        bad = "seqno (out of order)";
    } else {
        d->last_seqno = h.seqno;
        ports[0] = emm_port_ref(d->port);
        for (int i = 0; i < 3 && bad == NULL; i++) {
            emm_port_name_t n = *fields[i];
            if (n == EMM_PORT_NULL) {
                if (f->flags & yours_bit[i])
                    bad = field_name[i];
                continue;
            }
            if (f->flags & yours_bit[i]) {
                struct export *e = export_find(s, n);
                if (e == NULL)
                    bad = field_name[i];
                else
                    ports[i + 1] = emm_port_ref(e->port);
            } else {
                struct proxy *px = proxy_get(s, n);
                if (px == NULL)
                    bad = "memory";
                else
                    ports[i + 1] = &px->port;
            }
        }
    }
    if (bad == NULL)
        s->received++;
    pthread_mutex_unlock(&s->lock);
    if (bad != NULL) {
        drop_ports(ports, 4);
        slot_drop(s, data, slot, npages);
        return refuse(s, f, bad, -EBADMSG);
    }
    struct emm_msg *m;
    if (slot != NO_SLOT) {
        struct shm_msg *sm = calloc(1, sizeof(*sm));
        if (sm != NULL) {
            sm->s = s;
            sm->first = slot;
            sm->n = npages;
            atomic_fetch_add(&s->refs, 1); /* the mapping outlives the message */
        }
        m = sm != NULL ? &sm->m : NULL;
    } else {
        m = emm_msg_new(h.id, h.offset, h.length);
    }
    if (m == NULL) {
        drop_ports(ports, 4);
        slot_drop(s, data, slot, npages);
        return -ENOMEM;
    }
    m->hdr = h;
    for (int i = 0; i < 3; i++)
        *fields[i] = EMM_PORT_NULL;
    m->control = ports[1] ? emm_port_name(ports[1]) : EMM_PORT_NULL;
    m->name = ports[2] ? emm_port_name(ports[2]) : EMM_PORT_NULL;
    m->reply = ports[3] ? emm_port_name(ports[3]) : EMM_PORT_NULL;
    m->data = data;
    m->release = slot != NO_SLOT ? shm_msg_release : msg_data_release;
    /* The local port stamps its own seqno: one the sender raised (a pager's
     * new port numbering on past its predecessor's, vm_lost.c) is raised
     * here too, so both ends name a message by the same seqno. This reader
     * is the only poster to an exported port's queue from this connection. */
    if (h.seqno > 0)
        emm_port_seqno_raise(ports[0], h.seqno - 1);
    int rc = emm_port_send(ports[0], m);
    if (rc < 0)
        emm_msg_release(m, rc);
    emm_port_unref(ports[0]);
    return 0;
}

static int
recv_release(struct emm_stream *s, struct emm_frame *f)
{
    struct emm_port *drop = NULL;
    pthread_mutex_lock(&s->lock);
    struct export *e = export_find(s, f->dest);
    if (e == NULL || f->arg == 0 || f->arg > e->sends) {
        pthread_mutex_unlock(&s->lock);
        return refuse(s, f, e == NULL ? "dest (a port never given)" : "count", -EBADMSG);
    }
    e->sends -= f->arg;
    if (e->sends == 0) {
        export_unlink(s, e);
        drop = e->port;
        free(e);
    }
    pthread_mutex_unlock(&s->lock);
    if (drop != NULL)
        emm_port_unref(drop);
    return 0;
}

/* The peer hands back pages of our half: each must be one we sent it. */
static int
recv_free(struct emm_stream *s, struct emm_frame *f)
{
    pthread_mutex_lock(&s->lock);
    int ok = s->rg.base != NULL &&
             rg_run_is(&s->rg, s->rg.mine_lo, s->rg.mine_hi, f->dest, f->arg, RG_SENT);
    if (ok) {
        memset(s->rg.state + f->dest, RG_FREE, f->arg);
        s->rg.out_used -= f->arg;
        pthread_cond_signal(&s->wcond);
    }
    pthread_mutex_unlock(&s->lock);
    if (!ok) {
        char why[96];
        snprintf(why, sizeof(why), "slot %u+%u (%s)", f->dest, f->arg,
                 s->rg.base == NULL ? "no shared region" : "not one lent to the peer");
        return refuse(s, f, why, -EBADMSG);
    }
    return 0;
}

static int
recv_lookup(struct emm_stream *s, struct emm_frame *f)
{
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    struct emm_port *p = NULL;
    int rc = s->a.lookup != NULL ? s->a.lookup(s->a.ctx, f->object, &p) : -EOPNOTSUPP;
    uint32_t name = 0;
    uint64_t seqno = 0;
    if (rc == 0) {
        if (p->ops != &stream_ops) {
            /* Every message sent to it so far is queued (this thread queues
             * them in order): a new proxy numbers on from here. */
            pthread_mutex_lock(&p->lock);
            seqno = p->seqno;
            pthread_mutex_unlock(&p->lock);
        }
        pthread_mutex_lock(&s->lock);
        if (p->ops == &stream_ops)
            rc = -EXDEV;
        else
            rc = export_add(s, p);
        pthread_mutex_unlock(&s->lock);
        if (rc == 0)
            name = emm_port_name(p);
        emm_port_unref(p); /* the export holds its own */
    }
    send_fixed(s, buf, emm_frame_encode_lookup_reply(buf, f->dest, f->object, name, -rc,
                                                   seqno));
    return 0;
}

static int
recv_lookup_reply(struct emm_stream *s, struct emm_frame *f)
{
    const char *bad = NULL;
    struct emm_port *late = NULL;
    pthread_mutex_lock(&s->lock);
    struct lookup *l;
    LIST_FOREACH(l, &s->lookups, link)
        if (l->cookie == f->dest && !l->done)
            break;
    if (l == NULL && (f->dest == 0 || (int32_t)(f->dest - s->next_cookie) > 0)) {
        bad = "dest (no lookup asked)";
    } else if (l == NULL) {
        /* The answer to a lookup that gave up waiting (a slow pager, not a
         * hostile one): the right it carries is dropped. */
        struct proxy *px = (int32_t)f->arg == 0 && f->name != EMM_PORT_NULL
                               ? proxy_get(s, f->name) : NULL;
        if (px != NULL && px->received == 1 && px->seqno == 0)
            px->seqno = f->seqno;
        late = px != NULL ? &px->port : NULL;
    } else if ((int32_t)f->arg != 0) {
        l->rc = (int32_t)f->arg > 0 ? -(int32_t)f->arg : -EPROTO;
        l->done = 1;
    } else if (f->name == EMM_PORT_NULL) {
        bad = "name";
    } else {
        struct proxy *px = proxy_get(s, f->name);
        if (px != NULL && px->received == 1 && px->seqno < f->seqno)
            px->seqno = f->seqno; /* new: number on from the port's own count */
        l->rc = px != NULL ? 0 : -ENOMEM;
        l->port = px != NULL ? &px->port : NULL;
        l->done = 1;
    }
    pthread_cond_broadcast(&s->lcond);
    pthread_mutex_unlock(&s->lock);
    if (late != NULL)
        emm_port_unref(late);
    return bad != NULL ? refuse(s, f, bad, -EBADMSG) : 0;
}

/* The connection is dead: every peer's port it carried is a dead name now.
 * Their dead-name requests fire (Mach's notification), before on_dead. */
static void
proxies_dead(struct emm_stream *s)
{
    pthread_mutex_lock(&s->lock);
    struct emm_port **v = s->nproxies ? calloc(s->nproxies, sizeof(*v)) : NULL;
    unsigned n = 0;
    for (unsigned b = 0; b < HASH_BUCKETS && v != NULL; b++)
        for (struct proxy *px = s->proxies[b]; px != NULL && n < s->nproxies; px = px->next) {
            unsigned r = atomic_load(&px->port.refs); /* one whose last right goes: skip */
            while (r != 0 && !atomic_compare_exchange_weak(&px->port.refs, &r, r + 1))
                ;
            if (r != 0)
                v[n++] = &px->port;
        }
    unsigned total = s->nproxies;
    pthread_mutex_unlock(&s->lock);
    if (v == NULL && total > 0)
        emm_err("stream %s: no memory to tell %u ports' holders that they died", s->peer, total);
    for (unsigned i = 0; i < n; i++) {
        emm_port_dead_name(v[i]);
        emm_port_unref(v[i]);
    }
    free(v);
}

static void *
reader_main(void *arg)
{
    struct emm_stream *s = arg;
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    int err = 0;
    for (;;) {
        struct emm_frame f;
        const char *why = NULL;
        int eof;
        int rc = read_all(s, buf, EMM_FRAME_PREFIX_SIZE, &eof);
        if (rc < 0) {
            err = eof ? 0 : rc;
            if (!eof)
                emm_warn("stream %s: read: %s", s->peer, strerror(-rc));
            break;
        }
        rc = emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, &why);
        if (rc == 0 && f.body > 0) {
            rc = read_all(s, buf + EMM_FRAME_PREFIX_SIZE, f.body, &eof);
            if (rc < 0) {
                emm_warn("stream %s: %s frame truncated", s->peer, emm_frame_kind_name(f.kind));
                err = rc;
                break;
            }
            rc = emm_frame_decode_body(buf + EMM_FRAME_PREFIX_SIZE, f.body, &f, &why);
        }
        if (rc < 0) {
            err = refuse(s, &f, why ? why : "frame", rc);
            break;
        }
        switch (f.kind) {
        case EMM_FRAME_MSG: rc = recv_msg(s, &f); break;
        case EMM_FRAME_RELEASE: rc = recv_release(s, &f); break;
        case EMM_FRAME_LOOKUP: rc = recv_lookup(s, &f); break;
        case EMM_FRAME_LOOKUP_REPLY: rc = recv_lookup_reply(s, &f); break;
        case EMM_FRAME_FREE: rc = recv_free(s, &f); break;
        default: rc = refuse(s, &f, "frame kind (a second hello or region)", -EBADMSG); break;
        }
        if (rc < 0) {
            err = rc;
            break;
        }
    }
    cut(s);
    /* The peer can no longer use our ports: drop what it held. */
    struct export *all = NULL;
    pthread_mutex_lock(&s->lock);
    for (unsigned b = 0; b < HASH_BUCKETS; b++) {
        while (s->exports[b] != NULL) {
            struct export *e = s->exports[b];
            s->exports[b] = e->next;
            e->next = all;
            all = e;
        }
    }
    s->nexports = 0;
    pthread_mutex_unlock(&s->lock);
    while (all != NULL) {
        struct export *next = all->next;
        emm_port_unref(all->port);
        free(all);
        all = next;
    }
    if (err == 0)
        emm_notice("stream %s: the peer closed the connection", s->peer);
    proxies_dead(s);
    if (s->a.on_dead != NULL)
        s->a.on_dead(s->a.ctx, s, err);
    return NULL;
}

/* ---- opening and closing ------------------------------------------------- */

/* The kernel side, after the hellos: makes the region and sends it with its
 * fd. A region that cannot be made is announced as 0 pages: data goes inline. */
static int
region_send(struct emm_stream *s)
{
    uint32_t half = s->a.shm_half_pages ? s->a.shm_half_pages : SHM_HALF_DEFAULT;
    if (half < EMM_MAX_REQUEST_PAGES)
        half = EMM_MAX_REQUEST_PAGES;
    if (half > SHM_HALF_MAX)
        half = SHM_HALF_MAX;
    int fd = -1;
    int rc = region_create(s, half, &fd);
    if (rc < 0)
        emm_warn("stream %s: no shared region (%s): page data goes through the socket",
                 s->peer, strerror(-rc));
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_region(buf, s->rg.pages, s->rg.kpages);
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = {buf, n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        mh.msg_control = cm.space;
        mh.msg_controllen = sizeof(cm.space);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t w;
    do
        w = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    rc = w < 0 ? -errno : 0;
    if (fd >= 0)
        close(fd);
    if (rc == 0 && (size_t)w < n) { /* the fd went with the first byte */
        iov.iov_base = buf + w;
        iov.iov_len = n - (size_t)w;
        rc = write_all(s, &iov, 1);
    }
    return rc;
}

/* The pager side: reads the kernel's region frame (the first after its hello)
 * and maps the memfd that rides with it, once it is checked: one fd, the size
 * announced, sealed against shrinking. *why names what was wrong. */
static int
region_receive(struct emm_stream *s, int ms, const char **why)
{
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(4 * sizeof(int))];
    } cm;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int rc = poll(&pfd, 1, ms);
    if (rc <= 0) {
        *why = "region (none came)";
        return rc == 0 ? -ETIMEDOUT : -errno;
    }
    struct iovec iov = {buf, EMM_FRAME_PREFIX_SIZE};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
                        .msg_controllen = sizeof(cm.space)};
    ssize_t r;
    do
        r = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        *why = "region (end of stream)";
        return r < 0 ? -errno : -ECONNRESET;
    }
    int fds[4], nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && nfds < 4; i++)
            memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    int eof;
    struct emm_frame f;
    rc = 0;
    if ((size_t)r < EMM_FRAME_PREFIX_SIZE)
        rc = read_all(s, buf + r, EMM_FRAME_PREFIX_SIZE - (size_t)r, &eof);
    if (rc == 0)
        rc = emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, why);
    if (rc == 0 && f.kind != EMM_FRAME_REGION) {
        *why = "frame kind (not a region)";
        rc = -EPROTO;
    }
    if (rc == 0)
        rc = read_all(s, buf + EMM_FRAME_PREFIX_SIZE, f.body, &eof);
    if (rc == 0)
        rc = emm_frame_decode_body(buf + EMM_FRAME_PREFIX_SIZE, f.body, &f, why);
    struct stat st;
    int seals = 0;
    if (rc == 0 && f.region_pages == 0) {
        if (nfds != 0) {
            *why = "region (an fd with no pages)";
            rc = -EPROTO;
        }
    } else if (rc == 0) {
        uint32_t khalf = f.region_kpages, phalf = f.region_pages - f.region_kpages;
        if (khalf < EMM_MAX_REQUEST_PAGES || phalf < EMM_MAX_REQUEST_PAGES ||
            khalf > SHM_HALF_MAX || phalf > SHM_HALF_MAX) {
            *why = "region size";
            rc = -EPROTO;
        } else if (nfds != 1) {
            *why = "region (not one fd)";
            rc = -EPROTO;
        } else if (fstat(fds[0], &st) < 0 || !S_ISREG(st.st_mode) ||
                   (uint64_t)st.st_size != (uint64_t)f.region_pages * PS) {
            *why = "region (the fd's size)";
            rc = -EPROTO;
        } else if ((seals = fcntl(fds[0], F_GET_SEALS)) < 0 ||
                   (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
            *why = "region (not sealed against shrinking)";
            rc = -EPROTO;
        }
    }
    if (rc == 0 && f.region_pages != 0) {
        struct region *rg = &s->rg;
        size_t size = (size_t)f.region_pages * PS;
        void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
        rg->state = base != MAP_FAILED ? calloc(f.region_pages, 1) : NULL;
        if (rg->state == NULL) {
            rc = base == MAP_FAILED ? -errno : -ENOMEM;
            if (base != MAP_FAILED)
                munmap(base, size);
            *why = "region (cannot map it)";
        } else {
            rg->base = base;
            rg->size = size;
            rg->pages = f.region_pages;
            rg->kpages = f.region_kpages;
            rg->mine_lo = f.region_kpages, rg->mine_hi = f.region_pages;
            rg->theirs_lo = 0, rg->theirs_hi = f.region_kpages;
        }
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return rc;
}

static int
hello(struct emm_stream *s)
{
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    /* The shared region is offered between a kernel and a pager only;
     * EMM_STREAM_SHM=0 in the environment turns it off (benchmarks, tracing). */
    const char *env = getenv("EMM_STREAM_SHM");
    /* Nor over an io (TCP, TLS): no SCM_RIGHTS between hosts. */
    int no_shm = s->a.no_shm || s->a.peer_role == 0 || s->io.read != NULL ||
                 (env != NULL && strcmp(env, "0") == 0);
    uint32_t offer = no_shm ? 0 : EMM_STREAM_FEATURES;
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, offer);
    struct iovec iov = {buf, n};
    int rc = write_all(s, &iov, 1);
    if (rc < 0)
        return rc;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int ms = s->a.hello_timeout_ms > 0 ? s->a.hello_timeout_ms : 5000;
    if (s->io.wait_readable != NULL)
        rc = s->io.wait_readable(s->io.ctx, ms);
    else if ((rc = poll(&pfd, 1, ms)) < 0)
        rc = -errno;
    if (rc == 0) {
        emm_err("stream %s: no hello within %d ms", s->peer, ms);
        return -ETIMEDOUT;
    }
    if (rc < 0)
        return rc;
    int eof;
    struct emm_frame f;
    const char *why = NULL;
    rc = read_all(s, buf, EMM_FRAME_PREFIX_SIZE, &eof);
    if (rc == 0)
        rc = emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, &why);
    if (rc == 0 && f.kind != EMM_FRAME_HELLO) {
        why = "frame kind (not a hello)";
        rc = -EPROTO;
    }
    if (rc == 0)
        rc = read_all(s, buf + EMM_FRAME_PREFIX_SIZE, f.body, &eof);
    if (rc == 0)
        rc = emm_frame_decode_body(buf + EMM_FRAME_PREFIX_SIZE, f.body, &f, &why);
    if (rc == 0 && f.version < 1) {
        why = "hello version";
        rc = -EPROTO;
    }
    if (rc == 0 && f.page_size != 4096u) {
        why = "hello page_size";
        rc = -EPROTO;
    }
    if (rc == 0 && f.max_request != EMM_MAX_REQUEST_BYTES) {
        why = "hello max_request";
        rc = -EPROTO;
    }
    if (rc < 0) {
        emm_err("stream %s: refused the hello: bad %s", s->peer,
                why ? why : strerror(-rc));
        return -EPROTO;
    }
    s->version = f.version < EMM_STREAM_VERSION ? f.version : EMM_STREAM_VERSION;
    s->features = f.features & offer;
    if (s->features & EMM_STREAM_F_SHM) {
        if (s->a.peer_role == EMM_STREAM_PEER_PAGER) {
            rc = region_send(s);
        } else {
            rc = region_receive(s, ms, &why);
            if (rc < 0) {
                emm_err("stream %s: refused the hello: bad %s", s->peer,
                        why ? why : strerror(-rc));
                return -EPROTO;
            }
        }
        if (s->rg.base == NULL)
            s->features &= ~EMM_STREAM_F_SHM;
    }
    return rc;
}

/* Closes what emm_stream_open was given. */
static void
close_given(int fd, const struct emm_stream_args *a)
{
    if (a->io != NULL)
        a->io->close(a->io->ctx);
    else
        close(fd);
}

int
emm_stream_open(int fd, const struct emm_stream_args *a, struct emm_stream **out)
{
    struct ucred cred = {.pid = 0, .uid = (uid_t)-1};
    socklen_t clen = sizeof(cred);
    if (a->io == NULL && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        int rc = -errno;
        emm_err("stream %s: SO_PEERCRED: %s", a->label, strerror(errno));
        close(fd);
        return rc;
    }
    if (a->io == NULL && cred.uid != geteuid() && cred.uid != 0 && cred.uid != a->peer_uid) {
        emm_err("stream %s: refused peer pid %d: uid %u is not allowed", a->label,
                (int)cred.pid, (unsigned)cred.uid);
        close(fd);
        return -EPERM;
    }
    struct emm_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close_given(fd, a);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wcond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->lcond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->refs, 1);
    s->fd = fd;
    s->a = *a;
    if (a->io != NULL)
        s->io = *a->io;
    s->a.io = NULL;
    snprintf(s->label, sizeof(s->label), "%s", a->label ? a->label : "peer");
    s->a.label = s->label;
    s->pid = a->peer_pid > 0 ? a->peer_pid : cred.pid;
    s->uid = cred.uid;
    if (s->io.read != NULL)
        snprintf(s->peer, sizeof(s->peer), "%s", s->label); /* the label names the address */
    else
        snprintf(s->peer, sizeof(s->peer), "%s (pid %d)", s->label, (int)s->pid);
    STAILQ_INIT(&s->out);
    STAILQ_INIT(&s->prio);
    STAILQ_INIT(&s->done);
    LIST_INIT(&s->lookups);
    int rc = hello(s);
    if (rc == 0) {
        rc = -pthread_create(&s->writer, NULL, writer_main, s);
        if (rc == 0) {
            rc = -pthread_create(&s->reader, NULL, reader_main, s);
            if (rc < 0) {
                cut(s);
                pthread_join(s->writer, NULL);
            }
        }
    }
    if (rc < 0) {
        close_given(fd, a);
        stream_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
emm_stream_close(struct emm_stream *s)
{
    cut(s);
    pthread_join(s->reader, NULL);
    pthread_join(s->writer, NULL);
    if (s->io.close != NULL)
        s->io.close(s->io.ctx);
    else
        close(s->fd);
    s->fd = -1;
    stream_unref(s);
}

int
emm_stream_lookup(struct emm_stream *s, uint64_t id, int timeout_ms, struct emm_port **out)
{
    struct lookup l = {.rc = -ETIMEDOUT};
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    struct timespec until = emm_deadline_after_ms(CLOCK_MONOTONIC, (uint64_t)timeout_ms);
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        pthread_mutex_unlock(&s->lock);
        return -EPIPE;
    }
    l.cookie = ++s->next_cookie;
    LIST_INSERT_HEAD(&s->lookups, &l, link);
    pthread_mutex_unlock(&s->lock);
    send_fixed(s, buf, emm_frame_encode_lookup(buf, l.cookie, id));
    pthread_mutex_lock(&s->lock);
    while (!l.done && !s->dead)
        if (pthread_cond_timedwait(&s->lcond, &s->lock, &until) == ETIMEDOUT)
            break;
    LIST_REMOVE(&l, link);
    int rc = l.done ? l.rc : s->dead ? -EPIPE : -ETIMEDOUT;
    pthread_mutex_unlock(&s->lock);
    if (rc == 0)
        *out = l.port;
    else if (l.port != NULL)
        emm_port_unref(l.port);
    return rc;
}

void
emm_stream_info(struct emm_stream *s, struct emm_stream_info *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->lock);
    out->pid = s->pid;
    out->uid = s->uid;
    out->version = s->version;
    out->features = s->features;
    out->sent = s->sent;
    out->received = s->received;
    out->in_flight = s->queued;
    struct lookup *l;
    LIST_FOREACH(l, &s->lookups, link)
        out->in_flight++;
    out->exports = s->nexports;
    out->proxies = s->nproxies;
    out->dead = s->dead;
    out->shm_pages = s->rg.pages;
    out->shm_out_used = s->rg.out_used;
    out->shm_in_held = s->rg.in_held;
    out->shm_msgs_out = s->rg.msgs_out;
    out->shm_msgs_in = s->rg.msgs_in;
    out->shm_waits = s->rg.waits;
    pthread_mutex_unlock(&s->lock);
}

void
emm_stream_hold(struct emm_stream *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void
emm_stream_release(struct emm_stream *s)
{
    stream_unref(s);
}

int
emm_stream_drain(struct emm_stream *s, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        pthread_mutex_lock(&s->lock);
        int idle = s->dead || (STAILQ_EMPTY(&s->out) && STAILQ_EMPTY(&s->prio) && !s->writing);
        pthread_mutex_unlock(&s->lock);
        if (idle)
            return 0;
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        usleep(10000);
    }
}

int
emm_stream_data_alloc(struct emm_port *port, uint32_t npages, void **data)
{
    if (port == NULL || port->ops != &stream_ops)
        return -ENOTSUP;
    struct emm_stream *s = ((struct proxy *)port)->s;
    if (npages == 0 || npages > EMM_MAX_REQUEST_PAGES)
        return -EINVAL;
    int rc = -ENOTSUP;
    pthread_mutex_lock(&s->lock);
    if (s->rg.base != NULL && !s->dead) {
        uint32_t first = rg_take(s, npages, RG_RESERVED);
        rc = first == NO_SLOT ? -EAGAIN : 0;
        if (rc == 0) {
            *data = s->rg.base + (size_t)first * PS;
            s->rg.unsent += npages;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void
emm_stream_data_unreserve(struct emm_port *port, void *data, uint32_t npages)
{
    if (port == NULL || port->ops != &stream_ops || npages == 0)
        return;
    struct emm_stream *s = ((struct proxy *)port)->s;
    struct emm_msg probe = {.data = data};
    pthread_mutex_lock(&s->lock);
    uint32_t first = rg_reserved_slot(s, &probe, npages);
    if (first != NO_SLOT) {
        memset(s->rg.state + first, RG_FREE, npages);
        s->rg.out_used -= npages;
        s->rg.unsent -= npages;
        pthread_cond_signal(&s->wcond);
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- sockets ------------------------------------------------------------- */

static int
sun_of(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path))
        return -ENAMETOOLONG;
    strcpy(sun->sun_path, path);
    return 0;
}

int
emm_stream_listen(const char *path)
{
    struct sockaddr_un sun;
    int rc = sun_of(path, &sun);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    mode_t old = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc == 0)
        rc = chmod(path, 0600);
    if (rc == 0)
        rc = listen(fd, 8);
    if (rc < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int
emm_stream_connect(const char *path)
{
    struct sockaddr_un sun;
    int rc = sun_of(path, &sun);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int
emm_stream_accept(int lfd)
{
    int fd;
    do
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

void
emm_stream_cut(struct emm_stream *s, const char *why)
{
    emm_err("stream %s: %s; cutting the peer off", s->peer, why);
    cut(s);
}
