/*
 * port_stream.c - the stream transport (see port_stream.h): a connection's
 * hello, its reader and writer threads, the export and proxy tables that
 * translate port names, and the proxy port's operations.
 *
 * Locking: s->lock guards the out queue, both tables, the pending lookups and
 * the counters; s->refs (atomic) keeps the connection while its owner or a
 * proxy holds it. Ports are unreferenced, handlers run and the socket is used
 * only without s->lock (a proxy's fini takes it).
 */
#include "port_stream.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* A frame waiting for the writer: fixed bytes, then the message's data. */
struct out_item {
    STAILQ_ENTRY(out_item) link;
    unsigned char fixed[EMM_FRAME_MAX_FIXED];
    size_t len;
    struct emm_msg *msg; /* MSG frames: released (0) once written */
};
STAILQ_HEAD(out_queue, out_item);

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
    int dead;
    struct emm_stream_args a;
    char label[64];
    char peer[96];
    pid_t pid;
    uid_t uid;
    uint32_t version, features;
    struct out_queue out;
    uint64_t queued, sent, received;
    int writing; /* the writer holds a frame it took off the queue */
    unsigned nexports, nproxies;
    struct export *exports[HASH_BUCKETS];
    struct proxy *proxies[HASH_BUCKETS];
    LIST_HEAD(, lookup) lookups;
    uint32_t next_cookie;
    pthread_t reader, writer;
};

static const struct emm_port_ops stream_ops;

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
    queue_item(s, it);
    pthread_mutex_unlock(&s->lock);
    return 0;
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

static const struct emm_port_ops stream_ops = {
    .kind = "stream",
    .post = proxy_post,
    .kick = proxy_kick,
    .send = proxy_post,
    .destroy = proxy_destroy,
    .fini = proxy_fini,
};

/* ---- the socket ---------------------------------------------------------- */

static int
write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = sendmsg(fd, &(struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)n},
                            MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
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
read_all(int fd, void *buf, size_t len, int *eof)
{
    size_t got = 0;
    *eof = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
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
    shutdown(s->fd, SHUT_RDWR);
}

static void *
writer_main(void *arg)
{
    struct emm_stream *s = arg;
    struct iovec iov[MAX_IOV];
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (STAILQ_EMPTY(&s->out) && !s->dead)
            pthread_cond_wait(&s->wcond, &s->lock);
        struct out_item *it = STAILQ_FIRST(&s->out);
        if (s->dead || it == NULL) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        STAILQ_REMOVE_HEAD(&s->out, link);
        s->queued--;
        s->writing = 1;
        if (it->msg != NULL)
            s->sent++;
        pthread_mutex_unlock(&s->lock);
        int n = 0;
        iov[n++] = (struct iovec){it->fixed, it->len};
        if (it->msg != NULL && it->msg->data != NULL)
            for (struct emm_msg *m = it->msg; m != NULL && n < MAX_IOV; m = m->chain)
                iov[n++] = (struct iovec){m->data, m->length};
        int rc = write_all(s->fd, iov, n);
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
    struct out_queue left = STAILQ_HEAD_INITIALIZER(left);
    STAILQ_CONCAT(&left, &s->out);
    s->queued = 0;
    pthread_mutex_unlock(&s->lock);
    struct out_item *it;
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

static int
recv_msg(struct emm_stream *s, struct emm_frame *f)
{
    if (!role_allows(s, f->hdr.id))
        return refuse(s, f, "id (not the peer's to send)", -EBADMSG);
    /* The payload's size was checked by the decoder: at most one request. */
    void *data = NULL;
    if (f->payload > 0) {
        if (posix_memalign(&data, 4096, f->payload) != 0)
            return -ENOMEM;
        int eof;
        int rc = read_all(s->fd, data, f->payload, &eof);
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
        free(data);
        return refuse(s, f, bad, -EBADMSG);
    }
    struct emm_msg *m = emm_msg_new(h.id, h.offset, h.length);
    if (m == NULL) {
        drop_ports(ports, 4);
        free(data);
        return -ENOMEM;
    }
    m->hdr = h;
    for (int i = 0; i < 3; i++)
        *fields[i] = EMM_PORT_NULL;
    m->control = ports[1] ? emm_port_name(ports[1]) : EMM_PORT_NULL;
    m->name = ports[2] ? emm_port_name(ports[2]) : EMM_PORT_NULL;
    m->reply = ports[3] ? emm_port_name(ports[3]) : EMM_PORT_NULL;
    m->data = data;
    m->release = msg_data_release;
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
    pthread_mutex_lock(&s->lock);
    struct lookup *l;
    LIST_FOREACH(l, &s->lookups, link)
        if (l->cookie == f->dest && !l->done)
            break;
    if (l == NULL) {
        bad = "dest (no lookup asked)";
    } else if ((int32_t)f->arg != 0) {
        l->rc = (int32_t)f->arg > 0 ? -(int32_t)f->arg : -EPROTO;
        l->done = 1;
    } else if (f->name == EMM_PORT_NULL) {
        bad = "name";
    } else {
        struct proxy *px = proxy_get(s, f->name);
        if (px != NULL && px->received == 1 && px->seqno == 0)
            px->seqno = f->seqno; /* new: number on from the port's own count */
        l->rc = px != NULL ? 0 : -ENOMEM;
        l->port = px != NULL ? &px->port : NULL;
        l->done = 1;
    }
    pthread_cond_broadcast(&s->lcond);
    pthread_mutex_unlock(&s->lock);
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
        int rc = read_all(s->fd, buf, EMM_FRAME_PREFIX_SIZE, &eof);
        if (rc < 0) {
            err = eof ? 0 : rc;
            if (!eof)
                emm_warn("stream %s: read: %s", s->peer, strerror(-rc));
            break;
        }
        rc = emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, &why);
        if (rc == 0 && f.body > 0) {
            rc = read_all(s->fd, buf + EMM_FRAME_PREFIX_SIZE, f.body, &eof);
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
        default: rc = refuse(s, &f, "frame kind (a second hello)", -EBADMSG); break;
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

static int
hello(struct emm_stream *s)
{
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, EMM_STREAM_FEATURES);
    struct iovec iov = {buf, n};
    int rc = write_all(s->fd, &iov, 1);
    if (rc < 0)
        return rc;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int ms = s->a.hello_timeout_ms > 0 ? s->a.hello_timeout_ms : 5000;
    rc = poll(&pfd, 1, ms);
    if (rc == 0) {
        emm_err("stream %s: no hello within %d ms", s->peer, ms);
        return -ETIMEDOUT;
    }
    if (rc < 0)
        return -errno;
    int eof;
    struct emm_frame f;
    const char *why = NULL;
    rc = read_all(s->fd, buf, EMM_FRAME_PREFIX_SIZE, &eof);
    if (rc == 0)
        rc = emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, &why);
    if (rc == 0 && f.kind != EMM_FRAME_HELLO) {
        why = "frame kind (not a hello)";
        rc = -EPROTO;
    }
    if (rc == 0)
        rc = read_all(s->fd, buf + EMM_FRAME_PREFIX_SIZE, f.body, &eof);
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
    s->features = f.features & EMM_STREAM_FEATURES;
    return 0;
}

int
emm_stream_open(int fd, const struct emm_stream_args *a, struct emm_stream **out)
{
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        int rc = -errno;
        emm_err("stream %s: SO_PEERCRED: %s", a->label, strerror(errno));
        close(fd);
        return rc;
    }
    if (cred.uid != geteuid() && cred.uid != 0 && cred.uid != a->peer_uid) {
        emm_err("stream %s: refused peer pid %d: uid %u is not allowed", a->label,
                (int)cred.pid, (unsigned)cred.uid);
        close(fd);
        return -EPERM;
    }
    struct emm_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
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
    snprintf(s->label, sizeof(s->label), "%s", a->label ? a->label : "peer");
    s->a.label = s->label;
    s->pid = a->peer_pid > 0 ? a->peer_pid : cred.pid;
    s->uid = cred.uid;
    snprintf(s->peer, sizeof(s->peer), "%s (pid %d)", s->label, (int)s->pid);
    STAILQ_INIT(&s->out);
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
        close(fd);
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
        int idle = s->dead || (STAILQ_EMPTY(&s->out) && !s->writing);
        pthread_mutex_unlock(&s->lock);
        if (idle)
            return 0;
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        usleep(10000);
    }
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
