/*
 * test_port_stream.c - the stream transport over a real socketpair: every
 * message id crosses with its header, rights and data intact; rights go back
 * to their owner as the owner's port; released proxies free the peer's
 * exports; a dead peer makes proxies fail with -EPIPE; and each kind of bad
 * frame (magic, oversized payload, unknown id, truncated, unknown kind, a
 * port never given, a seqno out of order, an id the peer may not send) is
 * refused with a log line naming the peer and the field, and cuts it off.
 * The shared region (EMM_STREAM_F_SHM): data crosses in it both ways and its
 * runs come back; a peer without the feature gets data inline; a full half
 * holds the next message back (by reference) until the peer hands pages back;
 * a region that is not sealed, or a run the peer does not own (our half, one
 * we still hold, a FREE of pages never lent) cuts the peer off.
 *
 * Each test owns its sockets, streams and ports; handlers record into a
 * struct rec under its lock and signal its condition.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dead_name_fixture.h"

#include "byteorder.h"
#include "port.h"
#include "port_stream.h"
#include "stream_frame.h"

#define MAXREC 64
#define PS 4096u

struct rec {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    struct emm_msg_hdr h[MAXREC];
    unsigned char first[MAXREC], last[MAXREC]; /* the data's first and last byte */
    int had_data[MAXREC];
    struct emm_port *taken[MAXREC]; /* rights taken from control */
    int dead, dead_err;
};

static void
rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void
rec_fini(struct rec *r)
{
    for (int i = 0; i < MAXREC; i++)
        if (r->taken[i] != NULL)
            emm_port_unref(r->taken[i]);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
}

static void
rec_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct rec *r = emm_port_context(port);
    pthread_mutex_lock(&r->lock);
    if (r->n < MAXREC) {
        r->h[r->n] = msg->hdr;
        r->had_data[r->n] = msg->data != NULL;
        if (msg->data != NULL) {
            r->first[r->n] = ((unsigned char *)msg->data)[0];
            r->last[r->n] = ((unsigned char *)msg->data)[msg->length - 1];
        }
        r->taken[r->n] = emm_port_take(&msg->control);
    }
    r->n++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    emm_msg_release(msg, 0);
}

/* Waits (without a time limit of its own: ctest's timeout is the bound) for n. */
static void
rec_wait(struct rec *r, int n)
{
    pthread_mutex_lock(&r->lock);
    while (r->n < n && !r->dead)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

static void
on_dead(void *ctx, struct emm_stream *s, int err)
{
    (void)s;
    struct rec *r = ctx;
    pthread_mutex_lock(&r->lock);
    r->dead = 1;
    r->dead_err = err;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void
wait_dead(struct rec *r)
{
    pthread_mutex_lock(&r->lock);
    while (!r->dead)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

/* The pager side serves object 7 with its port. */
static struct emm_port *served;
static atomic_int lookup_delay_ms; /* a slow pager answers lookups late */

static atomic_int lookup_calls;  /* lookups the pager side answered or is answering */
static atomic_int gate_second;   /* hold the second lookup until gate_open */
static atomic_int gate_open;

static int
lookup7(void *ctx, uint64_t id, struct emm_port **out)
{
    (void)ctx;
    if (atomic_fetch_add(&lookup_calls, 1) + 1 == 2 && atomic_load(&gate_second))
        while (!atomic_load(&gate_open))
            usleep(1000);
    if (atomic_load(&lookup_delay_ms) > 0)
        usleep((useconds_t)atomic_load(&lookup_delay_ms) * 1000);
    if (id != 7)
        return -ENOENT;
    *out = emm_port_ref(served);
    return 0;
}

struct opener {
    int fd;
    struct emm_stream_args a;
    struct emm_stream *s;
    int rc;
};

static void *
open_thread(void *arg)
{
    struct opener *o = arg;
    o->rc = emm_stream_open(o->fd, &o->a, &o->s);
    return NULL;
}

/* A kernel side (k) and a pager side (p) on a socketpair. */
struct pair {
    struct emm_stream *k, *p;
    struct rec kdead, pdead;
};

static void pair_open_with(struct pair *pr, int pager_no_shm, uint32_t half);

static void
pair_open(struct pair *pr)
{
    pair_open_with(pr, 0, 0);
}

static void
pair_open_with(struct pair *pr, int pager_no_shm, uint32_t half)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    rec_init(&pr->kdead);
    rec_init(&pr->pdead);
    struct opener po = {.fd = sv[1],
                        .a = {.label = "test pager side", .peer_role = EMM_STREAM_PEER_KERNEL,
                              .peer_uid = (uid_t)-1, .lookup = lookup7, .on_dead = on_dead,
                              .ctx = &pr->pdead, .no_shm = pager_no_shm}};
    pthread_t t;
    pthread_create(&t, NULL, open_thread, &po);
    struct emm_stream_args ka = {.label = "test pager", .peer_role = EMM_STREAM_PEER_PAGER,
                                 .peer_uid = (uid_t)-1, .on_dead = on_dead, .ctx = &pr->kdead,
                                 .shm_half_pages = half};
    assert_int_equal(emm_stream_open(sv[0], &ka, &pr->k), 0);
    pthread_join(t, NULL);
    assert_int_equal(po.rc, 0);
    pr->p = po.s;
}

static void
pair_close(struct pair *pr)
{
    emm_stream_close(pr->k);
    emm_stream_close(pr->p);
    rec_fini(&pr->kdead);
    rec_fini(&pr->pdead);
}

static struct emm_msg *
msg_with(uint32_t id, uint64_t off, uint32_t pages)
{
    struct emm_msg *m = emm_msg_new(id, off, (uint64_t)pages * PS);
    assert_non_null(m);
    m->flags = MO_F_DIRTY | MO_F_PRECIOUS;
    m->access = VM_PROT_WRITE;
    m->arg = 42;
    m->arg2 = 0x1122334455667788ull;
    return m;
}

static void
data_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg->data);
    free(msg);
}

static void
give_data(struct emm_msg *m, unsigned char fill)
{
    m->data = malloc(m->length);
    assert_non_null(m->data);
    memset(m->data, fill, m->length);
    ((unsigned char *)m->data)[m->length - 1] = (unsigned char)(fill + 1);
    m->release = data_release;
}

static void
check_hdr(const struct rec *r, int i, uint32_t id, uint64_t off, uint64_t len)
{
    assert_int_equal(r->h[i].id, id);
    assert_int_equal(r->h[i].offset, off);
    assert_int_equal(r->h[i].length, len);
    assert_int_equal(r->h[i].flags, MO_F_DIRTY | MO_F_PRECIOUS);
    assert_int_equal(r->h[i].access, VM_PROT_WRITE);
    assert_int_equal(r->h[i].arg, 42);
    assert_int_equal(r->h[i].arg2, 0x1122334455667788ull);
}

/* What a clustered data_return's pages were stamped with when released. */
static _Atomic uint64_t chain_seqno[2];

static void
chain_release(struct emm_msg *msg, int status)
{
    (void)status;
    atomic_store((_Atomic uint64_t *)msg->release_ctx, msg->seqno);
    free(msg->data);
    free(msg);
}

/* Every id crosses both ways with its fields and data, in order; a right goes
 * out as a proxy and comes back as the owner's own port. */
static void
test_every_id_round_trips(void **state)
{
    (void)state;
    struct rec pager, kernel;
    rec_init(&pager);
    rec_init(&kernel);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    struct emm_port *control;
    assert_int_equal(emm_port_create("control", rec_handler, &kernel, NULL, &control), 0);
    struct pair pr;
    pair_open(&pr);

    struct emm_port *mo;
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), 0);
    struct emm_port *none;
    assert_int_equal(emm_stream_lookup(pr.k, 8, 5000, &none), -ENOENT);

    /* kernel -> pager: init carries the control right; data_return carries data
     * (a chain of 3 pages arrives as one message of 3 pages). */
    static const uint32_t kids[] = {MO_INIT, MO_DATA_REQUEST, MO_DATA_UNLOCK, MO_DATA_RETURN,
                                    MO_LOCK_COMPLETED, MO_SUPPLY_COMPLETED,
                                    MO_CHANGE_COMPLETED, MO_SYNCHRONIZE, MO_TERMINATE,
                                    MO_DISCARD};
    int nk = (int)(sizeof(kids) / sizeof(kids[0]));
    for (int i = 0; i < nk; i++) {
        struct emm_msg *m = msg_with(kids[i], (uint64_t)i * PS, 1);
        if (kids[i] == MO_INIT)
            m->control = emm_port_make_send(control);
        if (kids[i] == MO_DATA_RETURN) {
            give_data(m, 0x10);
            struct emm_msg *c1 = msg_with(kids[i], m->offset + PS, 1);
            struct emm_msg *c2 = msg_with(kids[i], m->offset + 2 * PS, 1);
            give_data(c1, 0x20);
            give_data(c2, 0x30);
            c1->release = c2->release = chain_release;
            c1->release_ctx = &chain_seqno[0];
            c2->release_ctx = &chain_seqno[1];
            m->chain = c1;
            c1->chain = c2;
        }
        assert_int_equal(emm_port_send(mo, m), 0);
    }
    rec_wait(&pager, nk);
    assert_int_equal(pager.n, nk);
    for (int i = 0; i < nk; i++) {
        check_hdr(&pager, i, kids[i], (uint64_t)i * PS,
                  kids[i] == MO_DATA_RETURN ? 3 * PS : PS);
        assert_int_equal(pager.h[i].seqno, (uint64_t)i + 1);
        assert_int_equal(pager.had_data[i], kids[i] == MO_DATA_RETURN);
    }
    int ret = 3; /* data_return's index */
    /* The chain's pages carry the head's seqno; the writer (or the poster)
     * releases them once the frame is out, which may be after the pager has it. */
    for (int i = 0; i < 10000 && (atomic_load(&chain_seqno[0]) == 0 || atomic_load(&chain_seqno[1]) == 0); i++)
        usleep(1000);
    assert_int_equal(atomic_load(&chain_seqno[0]), 4);
    assert_int_equal(atomic_load(&chain_seqno[1]), 4);
    assert_int_equal(pager.first[ret], 0x10);
    assert_int_equal(pager.last[ret], 0x31);
    /* The control right arrived as a proxy. */
    struct emm_port *ctl_proxy = pager.taken[0];
    assert_non_null(ctl_proxy);
    assert_ptr_not_equal(ctl_proxy, control);

    /* pager -> kernel on the proxy; data_supply carries 2 pages; ready hands
     * the kernel's own control port back in its reply field. */
    static const uint32_t pids[] = {MO_READY, MO_DATA_SUPPLY, MO_DATA_UNAVAILABLE,
                                    MO_DATA_ERROR, MO_LOCK_REQUEST, MO_CHANGE_ATTRIBUTES,
                                    MO_DESTROY, MO_SYNCHRONIZE_COMPLETED,
                                    MO_DATA_RETURN_COMPLETED};
    int np = (int)(sizeof(pids) / sizeof(pids[0]));
    for (int i = 0; i < np; i++) {
        struct emm_msg *m = msg_with(pids[i], (uint64_t)i * PS, pids[i] == MO_DATA_SUPPLY ? 2 : 1);
        if (pids[i] == MO_DATA_SUPPLY)
            give_data(m, 0x40);
        if (pids[i] == MO_READY)
            m->control = emm_port_make_send(ctl_proxy);
        assert_int_equal(emm_port_send(ctl_proxy, m), 0);
    }
    rec_wait(&kernel, np);
    for (int i = 0; i < np; i++) {
        check_hdr(&kernel, i, pids[i], (uint64_t)i * PS, pids[i] == MO_DATA_SUPPLY ? 2 * PS : PS);
        assert_int_equal(kernel.h[i].seqno, (uint64_t)i + 1);
    }
    assert_int_equal(kernel.first[1], 0x40);
    assert_int_equal(kernel.last[1], 0x41);
    assert_ptr_equal(kernel.taken[0], control); /* back home as itself */

    struct emm_stream_info info;
    emm_stream_info(pr.k, &info);
    assert_int_equal(info.version, EMM_STREAM_VERSION);
    assert_int_equal(info.pid, getpid());
    assert_int_equal(info.sent, (uint64_t)nk);
    assert_int_equal(info.received, (uint64_t)np);
    /* Both sides offer the shared region: the data went through it, one
     * message each way, and every run came back. */
    assert_int_equal(info.features, EMM_STREAM_F_SHM);
    assert_int_equal(info.shm_pages, 1024);
    assert_int_equal(info.shm_msgs_out, 1); /* the data_return */
    assert_int_equal(info.shm_msgs_in, 1);  /* the data_supply */
    assert_int_equal(info.shm_in_held, 0);
    for (;;) {
        emm_stream_info(pr.k, &info);
        if (info.shm_out_used == 0)
            break;
        usleep(1000);
    }

    /* Dropping the proxies releases the peer's exports: each side's local
     * port is left with its own rights only (control: receive + taken[0]). */
    emm_port_unref(mo);
    rec_fini(&pager); /* drops ctl_proxy */
    rec_init(&pager);
    for (;;) {
        struct emm_stream_info ki, pi;
        emm_stream_info(pr.k, &ki);
        emm_stream_info(pr.p, &pi);
        if (ki.exports == 0 && pi.exports == 0 && ki.proxies == 0 && pi.proxies == 0)
            break;
        usleep(1000);
    }
    assert_int_equal(emm_port_refs(served), 1);
    assert_int_equal(emm_port_refs(control), 2);

    pair_close(&pr);
    emm_port_destroy(served);
    emm_port_destroy(control);
    rec_fini(&kernel);
    rec_fini(&pager);
}


/* dn_rec, dn_handler, dn_count: dead_name_fixture.h */

/* The peer goes away: on_dead runs, proxies refuse with -EPIPE, and the
 * caller still owns the message. A dead-name request on the proxy fires
 * (the connection's end is the death of every peer's port it carried). */
static void
test_dead_peer_epipe(void **state)
{
    (void)state;
    struct rec pager;
    rec_init(&pager);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    struct pair pr;
    pair_open(&pr);
    struct emm_port *mo;
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), 0);
    struct dn_rec d = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct emm_port *notify;
    assert_int_equal(emm_port_create("notify", dn_handler, &d, NULL, &notify), 0);
    assert_int_equal(emm_port_request_dead_name(mo, notify, 7), 0);
    assert_int_equal(dn_count(&d), 0);
    emm_stream_close(pr.p);
    wait_dead(&pr.kdead);
    assert_int_equal(pr.kdead.dead_err, 0);
    assert_int_equal(dn_count(&d), 1); /* told before on_dead */
    assert_int_equal(d.ids[0], EMM_NOTIFY_DEAD_NAME);
    assert_int_equal(d.cookies[0], 7);
    emm_port_destroy(notify);
    struct emm_msg *m = msg_with(MO_DATA_REQUEST, 0, 1);
    assert_int_equal(emm_port_send(mo, m), -EPIPE);
    emm_msg_release(m, -EPIPE);
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), -EPIPE);
    emm_port_unref(mo);
    emm_stream_close(pr.k);
    rec_fini(&pr.kdead);
    rec_fini(&pr.pdead);
    emm_port_destroy(served);
    assert_int_equal(pager.n, 0);
    rec_fini(&pager);
}

static void
seqno_release(struct emm_msg *msg, int status)
{
    (void)status;
    atomic_store((_Atomic uint64_t *)msg->release_ctx, msg->seqno);
    free(msg);
}

/* A proxy dropped and looked up again numbers on from the port's own count,
 * so the seqno the kernel stamps is the one the pager's port gives (what a
 * data_return_completed names). */
static void
test_relookup_keeps_numbering(void **state)
{
    (void)state;
    struct rec pager;
    rec_init(&pager);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    struct pair pr;
    pair_open(&pr);
    uint64_t stamped[4] = {0};
    for (int round = 0; round < 2; round++) {
        struct emm_port *mo;
        assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), 0);
        for (int i = 0; i < 2; i++) {
            struct emm_msg *m = emm_msg_new(MO_DATA_REQUEST, 0, PS);
            m->release = seqno_release;
            m->release_ctx = &stamped[round * 2 + i];
            assert_int_equal(emm_port_send(mo, m), 0);
        }
        rec_wait(&pager, round * 2 + 2);
        emm_port_unref(mo);
        for (;;) { /* the proxy's release reaches the pager side */
            struct emm_stream_info pi;
            emm_stream_info(pr.p, &pi);
            if (pi.exports == 0)
                break;
            usleep(1000);
        }
    }
    assert_int_equal(emm_stream_drain(pr.k, 5000), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pager.h[i].seqno, (uint64_t)i + 1); /* the port's count */
        assert_int_equal(stamped[i], (uint64_t)i + 1);       /* what the sender saw */
    }
    pair_close(&pr);
    emm_port_destroy(served);
    rec_fini(&pager);
}

/* A lookup on its own thread. */
struct lookup_arg {
    struct emm_stream *s;
    struct emm_port *port;
    int rc;
};

static void *
lookup_thread(void *arg)
{
    struct lookup_arg *l = arg;
    l->rc = emm_stream_lookup(l->s, 7, 5000, &l->port);
    return NULL;
}

/* Two lookups of one port in flight: the first's proxy sends a message and is
 * freed before the second is answered, and that answer's count (taken before
 * the message reached the port) is older than what was sent. The second
 * proxy numbers on past the first's last seqno. Unfixed: it sent seqno 1
 * again, the pager side cut the kernel off ("bad seqno (out of order)"). */
static void
test_two_lookups_in_flight(void **state)
{
    (void)state;
    struct rec pager;
    rec_init(&pager);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    struct pair pr;
    pair_open(&pr);
    atomic_store(&lookup_calls, 0);
    atomic_store(&gate_open, 0);
    atomic_store(&gate_second, 1);
    struct emm_port *first;
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &first), 0);
    struct lookup_arg second = {.s = pr.k};
    pthread_t t;
    pthread_create(&t, NULL, lookup_thread, &second);
    while (atomic_load(&lookup_calls) < 2) /* the pager side holds the second */
        usleep(1000);
    assert_int_equal(emm_port_send(first, emm_msg_new(MO_DATA_REQUEST, 0, PS)), 0);
    emm_port_unref(first);
    for (;;) { /* the first proxy is gone */
        struct emm_stream_info ki;
        emm_stream_info(pr.k, &ki);
        if (ki.proxies == 0)
            break;
        usleep(1000);
    }
    atomic_store(&gate_open, 1);
    pthread_join(t, NULL);
    atomic_store(&gate_second, 0);
    assert_int_equal(second.rc, 0);
    assert_int_equal(emm_port_send(second.port, emm_msg_new(MO_DATA_REQUEST, PS, PS)), 0);
    emm_port_unref(second.port);
    for (int i = 0; i < 10000; i++) { /* both arrive, or the pager side cuts us off */
        pthread_mutex_lock(&pager.lock);
        int n = pager.n;
        pthread_mutex_unlock(&pager.lock);
        pthread_mutex_lock(&pr.pdead.lock);
        int cut = pr.pdead.dead;
        pthread_mutex_unlock(&pr.pdead.lock);
        if (n >= 2 || cut)
            break;
        usleep(1000);
    }
    struct emm_stream_info pi;
    emm_stream_info(pr.p, &pi);
    assert_int_equal(pi.dead, 0);
    assert_int_equal(pager.n, 2);
    assert_int_equal(pager.h[0].seqno, 1);
    assert_int_equal(pager.h[1].seqno, 2);
    assert_int_equal(pager.h[1].offset, PS);
    pair_close(&pr);
    emm_port_destroy(served);
    rec_fini(&pager);
}

/* A lookup that gave up waiting gets its answer later (a slow or stopped
 * pager, not a hostile one): the late answer's right is dropped, the peer is
 * not cut off, and the next lookup works. Unfixed: "bad dest (no lookup
 * asked)", the connection cut off, the next lookup -EPIPE. */
static void
test_late_lookup_reply(void **state)
{
    (void)state;
    struct rec pager;
    rec_init(&pager);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    struct pair pr;
    pair_open(&pr);
    struct emm_port *mo = NULL;
    atomic_store(&lookup_delay_ms, 300);
    assert_int_equal(emm_stream_lookup(pr.k, 7, 20, &mo), -ETIMEDOUT);
    atomic_store(&lookup_delay_ms, 0);
    /* Frames keep their order: the late answer comes before this one's. */
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), 0);
    struct emm_stream_info ki;
    emm_stream_info(pr.k, &ki);
    assert_int_equal(ki.dead, 0);
    emm_port_unref(mo);
    int i;
    for (i = 0; i < 10000; i++) { /* every right goes back, the late one's too */
        struct emm_stream_info pi;
        emm_stream_info(pr.p, &pi);
        if (pi.exports == 0)
            break;
        usleep(1000);
    }
    assert_true(i < 10000);
    pair_close(&pr);
    emm_port_destroy(served);
    rec_fini(&pager);
}

/* ---- bad frames: a raw peer writes bytes at a kernel-side stream --------- */

struct raw {
    int fd;                 /* the raw peer's end */
    struct emm_stream *s;   /* the stream under test (its peer: a pager) */
    struct rec dead;
    int saved_err, logfd;
    char logpath[64];
};

static void
raw_open(struct raw *r)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    r->fd = sv[1];
    rec_init(&r->dead);
    /* The raw peer's hello goes first, so open does not wait. */
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, 0);
    assert_int_equal(write(r->fd, buf, n), (ssize_t)n);
    /* The stream's log lines go to a file this test reads. */
    strcpy(r->logpath, "/tmp/emm-test-stream-XXXXXX");
    r->logfd = mkstemp(r->logpath);
    assert_true(r->logfd >= 0);
    r->saved_err = dup(STDERR_FILENO);
    dup2(r->logfd, STDERR_FILENO);
    struct emm_stream_args a = {.label = "evil pager", .peer_role = EMM_STREAM_PEER_PAGER,
                                .peer_uid = (uid_t)-1, .on_dead = on_dead, .ctx = &r->dead};
    assert_int_equal(emm_stream_open(sv[0], &a, &r->s), 0);
    assert_int_equal(read(r->fd, buf, n), (ssize_t)n); /* its hello */
}

/* Sends the bytes, waits for the cut-off and returns the log. */
static char *
raw_expect_cut(struct raw *r, const void *bytes, size_t len, int close_after)
{
    assert_int_equal(write(r->fd, bytes, len), (ssize_t)len);
    if (close_after)
        shutdown(r->fd, SHUT_WR);
    wait_dead(&r->dead);
    emm_stream_close(r->s);
    dup2(r->saved_err, STDERR_FILENO);
    close(r->saved_err);
    static char log[4096];
    ssize_t n = pread(r->logfd, log, sizeof(log) - 1, 0);
    log[n > 0 ? n : 0] = 0;
    close(r->logfd);
    unlink(r->logpath);
    close(r->fd);
    rec_fini(&r->dead);
    fprintf(stderr, "%s", log); /* for the ctest output */
    return log;
}

static size_t
good_msg(unsigned char *buf, uint32_t dest, uint32_t id, uint64_t seqno)
{
    struct emm_msg_hdr h = {.id = id, .seqno = seqno, .offset = 0, .length = PS};
    int n = emm_frame_encode_msg(buf, 0, dest, &h, 0);
    assert_true(n > 0);
    return (size_t)n;
}

static void
expect_refused(unsigned char *buf, size_t len, const char *field, int close_after)
{
    struct raw r;
    raw_open(&r);
    char *log = raw_expect_cut(&r, buf, len, close_after);
    assert_non_null(strstr(log, "evil pager (pid "));
    assert_non_null(strstr(log, field));
}

static void
test_bad_magic(void **state)
{
    (void)state;
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = good_msg(buf, 1, MO_READY, 1);
    buf[0] ^= 0xff;
    expect_refused(buf, n, "bad frame magic", 0);
    n = good_msg(buf, 1, MO_READY, 1);
    buf[EMM_FRAME_PREFIX_SIZE] ^= 0xff; /* the message header's own magic */
    expect_refused(buf, n, "bad magic", 0);
}

static void
test_oversize_payload(void **state)
{
    (void)state;
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = good_msg(buf, 1, MO_DATA_SUPPLY, 1);
    /* length and payload of 2 GiB: refused before anything is read or allocated */
    emm_put_le64(buf + EMM_FRAME_PREFIX_SIZE + 32, 1ull << 31);
    emm_put_le32(buf + EMM_FRAME_PREFIX_SIZE + 68, 1u << 31);
    expect_refused(buf, n, "bad payload", 0);
    n = good_msg(buf, 1, MO_DATA_SUPPLY, 1);
    emm_put_le64(buf + EMM_FRAME_PREFIX_SIZE + 32, EMM_MAX_REQUEST_BYTES + PS);
    emm_put_le32(buf + EMM_FRAME_PREFIX_SIZE + 68, EMM_MAX_REQUEST_BYTES + PS);
    expect_refused(buf, n, "bad payload", 0);
    n = good_msg(buf, 1, MO_DATA_SUPPLY, 1); /* not page-aligned */
    emm_put_le64(buf + EMM_FRAME_PREFIX_SIZE + 32, 100);
    emm_put_le32(buf + EMM_FRAME_PREFIX_SIZE + 68, 100);
    expect_refused(buf, n, "bad payload", 0);
}

static void
test_unknown_id_and_kind(void **state)
{
    (void)state;
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = good_msg(buf, 1, MO_READY, 1);
    emm_put_le32(buf + EMM_FRAME_PREFIX_SIZE + 8, 999);
    expect_refused(buf, n, "bad id", 0);
    n = good_msg(buf, 1, MO_DATA_REQUEST, 1); /* a kernel's id, from a pager */
    expect_refused(buf, n, "bad id (not the peer's to send)", 0);
    n = good_msg(buf, 1, MO_READY, 1);
    buf[4] = 77;
    expect_refused(buf, n, "bad frame kind", 0);
    n = emm_frame_encode_hello(buf, 1, 0); /* a second hello */
    expect_refused(buf, n, "bad frame kind", 0);
}

static void
test_truncated(void **state)
{
    (void)state;
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = good_msg(buf, 1, MO_READY, 1);
    expect_refused(buf, n - 10, "msg frame truncated", 1);
    n = good_msg(buf, 1, MO_DATA_SUPPLY, 1);
    emm_put_le32(buf + EMM_FRAME_PREFIX_SIZE + 68, PS); /* announces a page, sends none */
    expect_refused(buf, n, "data_supply truncated in its payload", 1);
}

static void
test_names_and_order(void **state)
{
    (void)state;
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = good_msg(buf, 12345, MO_READY, 1); /* a port never given */
    expect_refused(buf, n, "bad dest (a port never given)", 0);
    n = emm_frame_encode_prefix(buf, EMM_FRAME_RELEASE, 0, 12345, 1);
    expect_refused(buf, n, "bad dest (a port never given)", 0);
    n = emm_frame_encode_lookup_reply(buf, 99, 1, 5, 0, 0); /* no lookup asked */
    expect_refused(buf, n, "bad dest (no lookup asked)", 0);
}

/* A seqno out of order on a port the stream did give: a raw peer answering a
 * lookup (so the stream exports nothing) cannot reach a port, so the stream
 * under test is the pager side, and the raw peer a kernel that got the
 * served port's name from a lookup reply. */
static void
test_seqno_out_of_order(void **state)
{
    (void)state;
    struct rec pager;
    rec_init(&pager);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, 0);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    struct rec dead;
    rec_init(&dead);
    struct emm_stream *s;
    struct emm_stream_args a = {.label = "evil kernel", .peer_role = EMM_STREAM_PEER_KERNEL,
                                .peer_uid = (uid_t)-1, .lookup = lookup7, .on_dead = on_dead,
                                .ctx = &dead};
    assert_int_equal(emm_stream_open(sv[0], &a, &s), 0);
    assert_int_equal(read(sv[1], buf, n), (ssize_t)n);
    n = emm_frame_encode_lookup(buf, 1, 7);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    assert_int_equal(read(sv[1], buf, EMM_FRAME_LOOKUP_REPLY_SIZE), EMM_FRAME_LOOKUP_REPLY_SIZE);
    struct emm_frame f;
    assert_int_equal(emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, NULL), 0);
    assert_int_equal(emm_frame_decode_body(buf + 16, f.body, &f, NULL), 0);
    assert_int_equal(f.kind, EMM_FRAME_LOOKUP_REPLY);
    assert_int_equal(f.name, emm_port_name(served));
    n = good_msg(buf, f.name, MO_DATA_REQUEST, 1);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    rec_wait(&pager, 1);
    n = good_msg(buf, f.name, MO_DATA_REQUEST, 1); /* again: not after 1 */
    char path[] = "/tmp/emm-test-stream-XXXXXX";
    int logfd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    dup2(logfd, STDERR_FILENO);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    wait_dead(&dead);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char log[2048];
    ssize_t got = pread(logfd, log, sizeof(log) - 1, 0);
    log[got > 0 ? got : 0] = 0;
    close(logfd);
    unlink(path);
    fprintf(stderr, "%s", log);
    assert_non_null(strstr(log, "evil kernel (pid"));
    assert_non_null(strstr(log, "bad seqno"));
    assert_int_equal(pager.n, 1);
    emm_stream_close(s);
    close(sv[1]);
    assert_int_equal(emm_port_refs(served), 1); /* the export went with the peer */
    emm_port_destroy(served);
    rec_fini(&dead);
    rec_fini(&pager);
}

/* ---- the shared region ---------------------------------------------------- */

/* A handler that keeps the messages it gets (their runs stay held). */
struct hold {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    struct emm_msg *m[8];
    unsigned char first[8], last[8];
};

static void
hold_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct hold *h = emm_port_context(port);
    pthread_mutex_lock(&h->lock);
    assert_true(h->n < 8);
    h->m[h->n] = msg;
    if (msg->data != NULL) {
        h->first[h->n] = ((unsigned char *)msg->data)[0];
        h->last[h->n] = ((unsigned char *)msg->data)[msg->length - 1];
    }
    h->n++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void
hold_wait(struct hold *h, int n)
{
    pthread_mutex_lock(&h->lock);
    while (h->n < n)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

/* Polls (10 s at most) until a stream's counter reaches a value. */
#define WAIT_INFO(s, field, want)                                                      \
    do {                                                                               \
        struct emm_stream_info wi_;                                                    \
        for (int t_ = 0;; t_++) {                                                      \
            emm_stream_info((s), &wi_);                                                \
            if (wi_.field == (want) || t_ == 10000)                                    \
                break;                                                                 \
            usleep(1000);                                                              \
        }                                                                              \
        assert_int_equal(wi_.field, (want));                                           \
    } while (0)

static atomic_int released_b;

static void
flag_release(struct emm_msg *msg, int status)
{
    (void)status;
    atomic_store(&released_b, 1);
    free(msg->data);
    free(msg);
}

/* An older peer (no EMM_STREAM_F_SHM in its hello): data goes inline. */
static void
test_shm_old_peer_inline(void **state)
{
    (void)state;
    struct rec pager;
    rec_init(&pager);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    struct pair pr;
    pair_open_with(&pr, 1, 0);
    struct emm_port *mo;
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), 0);
    struct emm_msg *m = msg_with(MO_DATA_RETURN, 0, 2);
    give_data(m, 0x61);
    assert_int_equal(emm_port_send(mo, m), 0);
    rec_wait(&pager, 1);
    assert_int_equal(pager.first[0], 0x61);
    assert_int_equal(pager.last[0], 0x62);
    struct emm_stream_info ki, pi;
    emm_stream_info(pr.k, &ki);
    emm_stream_info(pr.p, &pi);
    assert_int_equal(ki.features, 0);
    assert_int_equal(pi.features, 0);
    assert_int_equal(ki.shm_pages, 0);
    assert_int_equal(ki.shm_msgs_out, 0);
    assert_int_equal(pi.shm_msgs_in, 0);
    emm_port_unref(mo);
    pair_close(&pr);
    emm_port_destroy(served);
    rec_fini(&pager);
}

/* A full half holds the next message in the queue, by reference (its release
 * has not run: nothing was copied), until the peer hands a run back. */
static void
test_shm_back_pressure(void **state)
{
    (void)state;
    struct hold h = {.n = 0};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    assert_int_equal(emm_port_create("served", hold_handler, &h, NULL, &served), 0);
    struct pair pr;
    pair_open_with(&pr, 0, EMM_MAX_REQUEST_PAGES); /* halves of one request */
    struct emm_port *mo;
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), 0);
    struct emm_msg *a = msg_with(MO_DATA_RETURN, 0, EMM_MAX_REQUEST_PAGES);
    struct emm_msg *b = msg_with(MO_DATA_RETURN, EMM_MAX_REQUEST_BYTES, EMM_MAX_REQUEST_PAGES);
    give_data(a, 0x11);
    give_data(b, 0x22);
    b->release = flag_release;
    atomic_store(&released_b, 0);
    assert_int_equal(emm_port_send(mo, a), 0);
    assert_int_equal(emm_port_send(mo, b), 0);
    hold_wait(&h, 1);
    WAIT_INFO(pr.k, shm_waits, 1);
    struct emm_stream_info ki;
    emm_stream_info(pr.k, &ki);
    assert_int_equal(ki.shm_out_used, EMM_MAX_REQUEST_PAGES);
    assert_int_equal(ki.in_flight, 1);
    assert_int_equal(atomic_load(&released_b), 0);
    pthread_mutex_lock(&h.lock);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.first[0], 0x11);
    struct emm_msg *first = h.m[0];
    pthread_mutex_unlock(&h.lock);
    emm_msg_release(first, 0); /* hands the run back */
    hold_wait(&h, 2);
    assert_int_equal(h.first[1], 0x22);
    assert_int_equal(h.last[1], 0x23);
    for (int t = 0; t < 10000 && !atomic_load(&released_b); t++)
        usleep(1000); /* the writer releases it once the frame is written */
    assert_int_equal(atomic_load(&released_b), 1);
    emm_msg_release(h.m[1], 0);
    WAIT_INFO(pr.k, shm_out_used, 0);
    emm_stream_info(pr.k, &ki);
    assert_int_equal(ki.shm_msgs_out, 2);
    emm_port_unref(mo);
    pair_close(&pr);
    emm_port_destroy(served);
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.lock);
}

/* A raw pager that offers the region: reads the kernel's hello and region
 * frame, and maps the memfd that came with it. */
static void
raw_open_shm(struct raw *r, unsigned char **base)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    r->fd = sv[1];
    rec_init(&r->dead);
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, EMM_STREAM_F_SHM);
    assert_int_equal(write(r->fd, buf, n), (ssize_t)n);
    strcpy(r->logpath, "/tmp/emm-test-stream-XXXXXX");
    r->logfd = mkstemp(r->logpath);
    assert_true(r->logfd >= 0);
    r->saved_err = dup(STDERR_FILENO);
    dup2(r->logfd, STDERR_FILENO);
    struct emm_stream_args a = {.label = "evil pager", .peer_role = EMM_STREAM_PEER_PAGER,
                                .peer_uid = (uid_t)-1, .on_dead = on_dead, .ctx = &r->dead};
    assert_int_equal(emm_stream_open(sv[0], &a, &r->s), 0);
    assert_int_equal(read(r->fd, buf, n), (ssize_t)n); /* its hello */
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = {buf, EMM_FRAME_PREFIX_SIZE + 16};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
                        .msg_controllen = sizeof(cm.space)};
    assert_int_equal(recvmsg(r->fd, &mh, MSG_WAITALL), EMM_FRAME_PREFIX_SIZE + 16);
    struct emm_frame f;
    assert_int_equal(emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, NULL), 0);
    assert_int_equal(f.kind, EMM_FRAME_REGION);
    assert_int_equal(emm_frame_decode_body(buf + 16, f.body, &f, NULL), 0);
    assert_int_equal(f.region_pages, 1024);
    assert_int_equal(f.region_kpages, 512);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    assert_non_null(c);
    int mfd;
    memcpy(&mfd, CMSG_DATA(c), sizeof(int));
    /* Sealed: the pager cannot shrink it under the kernel's mapping. */
    assert_int_equal(ftruncate(mfd, 4096), -1);
    *base = mmap(NULL, 1024u * PS, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_true(*base != MAP_FAILED);
    close(mfd);
}

static void
expect_refused_shm(unsigned char *buf, size_t len, const char *field)
{
    struct raw r;
    unsigned char *base;
    raw_open_shm(&r, &base);
    char *log = raw_expect_cut(&r, buf, len, 0);
    munmap(base, 1024u * PS);
    assert_non_null(strstr(log, "evil pager (pid "));
    assert_non_null(strstr(log, field));
}

static size_t
slot_msg(unsigned char *buf, uint32_t id, uint32_t slot, uint32_t pages)
{
    struct emm_msg_hdr h = {.id = id, .seqno = 1, .offset = 0, .length = pages * PS};
    int n = emm_frame_encode_msg(buf, 0, 1, &h, pages * PS);
    assert_true(n > 0);
    emm_frame_set_slot(buf, slot);
    return (size_t)n;
}

/* A pager naming runs it does not own is cut off, the run named in the log. */
static void
test_shm_slot_not_owned(void **state)
{
    (void)state;
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = slot_msg(buf, MO_DATA_SUPPLY, 0, 1); /* the kernel's half */
    expect_refused_shm(buf, n, "bad slot 0+1 (not the peer's to name)");
    n = slot_msg(buf, MO_DATA_SUPPLY, 1000, 256); /* runs off the region's end */
    expect_refused_shm(buf, n, "bad slot 1000+256 (not the peer's to name)");
    n = slot_msg(buf, MO_DATA_SUPPLY, UINT32_MAX, 1);
    expect_refused_shm(buf, n, "not the peer's to name");
    n = emm_frame_encode_prefix(buf, EMM_FRAME_FREE, 0, 3, 2); /* never lent */
    expect_refused_shm(buf, n, "bad slot 3+2 (not one lent to the peer)");
    n = slot_msg(buf, MO_DATA_SUPPLY, 600, 1);
    emm_put_le32(buf + EMM_FRAME_PREFIX_SIZE + 68, PS); /* a payload too */
    expect_refused_shm(buf, n, "bad payload (data in the region)");
    /* Without a region (the peer did not offer it), a slot is refused. */
    n = slot_msg(buf, MO_DATA_SUPPLY, 600, 1);
    expect_refused(buf, n, "bad slot 600+1 (no shared region)", 0);
    n = emm_frame_encode_region(buf, 1024, 512); /* a region from a pager */
    expect_refused_shm(buf, n, "bad frame kind");
}

/* Sends a hello offering the region and a region frame with fd (-1: none). */
static void
raw_kernel_hello(int fd, uint32_t pages, uint32_t kpages, int mfd)
{
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, EMM_STREAM_F_SHM);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    n = emm_frame_encode_region(buf, pages, kpages);
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = {buf, n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (mfd >= 0) {
        mh.msg_control = cm.space;
        mh.msg_controllen = sizeof(cm.space);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &mfd, sizeof(int));
    }
    assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)n);
}

static int
memfd_of(uint32_t pages, int seal)
{
    int mfd = memfd_create("test-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, (off_t)pages * PS), 0);
    if (seal)
        assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    return mfd;
}

/* The pager side checks the region it is given: sealed, of the size said. */
static void
test_shm_region_checked(void **state)
{
    (void)state;
    static const struct {
        uint32_t pages, kpages;
        int seal, withfd;
        const char *why;
    } cases[] = {
        {1024, 512, 0, 1, "not sealed against shrinking"},
        {2048, 512, 1, 1, "the fd's size"},
        {1024, 512, 1, 0, "not one fd"},
        {1024, 100, 1, 1, "region size"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        int mfd = memfd_of(1024, cases[i].seal);
        raw_kernel_hello(sv[1], cases[i].pages, cases[i].kpages, cases[i].withfd ? mfd : -1);
        close(mfd);
        char path[] = "/tmp/emm-test-stream-XXXXXX";
        int logfd = mkstemp(path);
        int saved = dup(STDERR_FILENO);
        dup2(logfd, STDERR_FILENO);
        struct emm_stream *s = NULL;
        struct emm_stream_args a = {.label = "evil kernel", .peer_role = EMM_STREAM_PEER_KERNEL,
                                    .peer_uid = (uid_t)-1, .lookup = lookup7};
        assert_int_equal(emm_stream_open(sv[0], &a, &s), -EPROTO);
        dup2(saved, STDERR_FILENO);
        close(saved);
        char log[2048];
        ssize_t got = pread(logfd, log, sizeof(log) - 1, 0);
        log[got > 0 ? got : 0] = 0;
        close(logfd);
        unlink(path);
        fprintf(stderr, "%s", log);
        assert_non_null(strstr(log, "evil kernel (pid"));
        assert_non_null(strstr(log, cases[i].why));
        close(sv[1]);
    }
}

/* A kernel naming a run the pager still holds (a second data_return in the
 * pages of one the pager has not released) is cut off; the first one's data
 * was read in place from the region. */
static void
test_shm_held_run_refused(void **state)
{
    (void)state;
    struct hold h = {.n = 0};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    assert_int_equal(emm_port_create("served", hold_handler, &h, NULL, &served), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int mfd = memfd_of(1024, 1);
    unsigned char *base = mmap(NULL, 1024u * PS, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_true(base != MAP_FAILED);
    raw_kernel_hello(sv[1], 1024, 512, mfd);
    close(mfd);
    struct rec dead;
    rec_init(&dead);
    struct emm_stream *s;
    struct emm_stream_args a = {.label = "evil kernel", .peer_role = EMM_STREAM_PEER_KERNEL,
                                .peer_uid = (uid_t)-1, .lookup = lookup7, .on_dead = on_dead,
                                .ctx = &dead};
    assert_int_equal(emm_stream_open(sv[0], &a, &s), 0);
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = EMM_FRAME_PREFIX_SIZE + 16;
    assert_int_equal(read(sv[1], buf, n), (ssize_t)n); /* its hello */
    struct emm_stream_info si;
    emm_stream_info(s, &si);
    assert_int_equal(si.features, EMM_STREAM_F_SHM);
    n = emm_frame_encode_lookup(buf, 1, 7);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    assert_int_equal(read(sv[1], buf, EMM_FRAME_LOOKUP_REPLY_SIZE), EMM_FRAME_LOOKUP_REPLY_SIZE);
    struct emm_frame f;
    assert_int_equal(emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, NULL), 0);
    assert_int_equal(emm_frame_decode_body(buf + 16, f.body, &f, NULL), 0);
    memset(base + 5 * PS, 0x77, 2 * PS);
    struct emm_msg_hdr hd = {.id = MO_DATA_RETURN, .seqno = 1, .offset = 0, .length = 2 * PS};
    n = (size_t)emm_frame_encode_msg(buf, 0, f.name, &hd, 2 * PS);
    emm_frame_set_slot(buf, 5);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    hold_wait(&h, 1);
    assert_int_equal(h.first[0], 0x77);
    emm_stream_info(s, &si);
    assert_int_equal(si.shm_in_held, 2);
    hd.seqno = 2;
    hd.length = PS;
    n = (size_t)emm_frame_encode_msg(buf, 0, f.name, &hd, PS);
    emm_frame_set_slot(buf, 6); /* inside the run still held */
    char path[] = "/tmp/emm-test-stream-XXXXXX";
    int logfd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    dup2(logfd, STDERR_FILENO);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    wait_dead(&dead);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char log[2048];
    ssize_t got = pread(logfd, log, sizeof(log) - 1, 0);
    log[got > 0 ? got : 0] = 0;
    close(logfd);
    unlink(path);
    fprintf(stderr, "%s", log);
    assert_non_null(strstr(log, "evil kernel (pid"));
    assert_non_null(strstr(log, "bad slot 6+1 (not the peer's to name)"));
    assert_int_equal(h.n, 1);
    emm_msg_release(h.m[0], 0); /* after the cut: the mapping is still there */
    emm_stream_close(s);
    close(sv[1]);
    munmap(base, 1024u * PS);
    emm_port_destroy(served);
    rec_fini(&dead);
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.lock);
}

/* Posters write frames themselves while nothing is queued (non-blocking);
 * once the socket is full, a frame begun by a poster is finished by the
 * writer before anything else: a peer that reads late gets every frame whole
 * and in order, with its data. */

static void
read_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

static void
test_direct_writes_stay_whole(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* A small send buffer: a 64 KiB frame goes out in pieces, and a
     * non-blocking write stops in the middle of one. */
    int sndbuf = 16384;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, 0); /* data inline */
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    struct rec dead;
    rec_init(&dead);
    struct lookup_arg l = {0};
    struct emm_stream_args a = {.label = "slow pager", .peer_role = EMM_STREAM_PEER_PAGER,
                                .peer_uid = (uid_t)-1, .on_dead = on_dead, .ctx = &dead};
    assert_int_equal(emm_stream_open(sv[0], &a, &l.s), 0);
    read_exact(sv[1], buf, n);
    pthread_t t;
    pthread_create(&t, NULL, lookup_thread, &l);
    read_exact(sv[1], buf, EMM_FRAME_PREFIX_SIZE + 8);
    struct emm_frame f;
    assert_int_equal(emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, NULL), 0);
    assert_int_equal(f.kind, EMM_FRAME_LOOKUP);
    n = emm_frame_encode_lookup_reply(buf, f.dest, 7, 0x55, 0, 0);
    assert_int_equal(write(sv[1], buf, n), (ssize_t)n);
    pthread_join(t, NULL);
    assert_int_equal(l.rc, 0);
    enum { N = 400, DP = 16 };
    for (int i = 0; i < N; i++) {
        int with_data = i % 2;
        struct emm_msg *m = emm_msg_new(with_data ? MO_DATA_RETURN : MO_DATA_REQUEST,
                                        (uint64_t)i * PS, DP * PS);
        if (with_data)
            give_data(m, (unsigned char)i);
        assert_int_equal(emm_port_send(l.port, m), 0);
    }
    static unsigned char data[DP * PS];
    for (int i = 0; i < N; i++) {
        read_exact(sv[1], buf, EMM_FRAME_PREFIX_SIZE + EMM_WIRE_HDR_SIZE);
        assert_int_equal(emm_frame_decode_prefix(buf, EMM_FRAME_PREFIX_SIZE, &f, NULL), 0);
        assert_int_equal(f.kind, EMM_FRAME_MSG);
        assert_int_equal(f.dest, 0x55);
        assert_int_equal(emm_frame_decode_body(buf + 16, f.body, &f, NULL), 0);
        assert_int_equal(f.hdr.seqno, (uint64_t)i + 1);
        assert_int_equal(f.hdr.offset, (uint64_t)i * PS);
        assert_int_equal(f.payload, i % 2 ? DP * PS : 0);
        if (f.payload > 0) {
            read_exact(sv[1], data, f.payload);
            assert_int_equal(data[0], (unsigned char)i);
            assert_int_equal(data[DP * PS - 2], (unsigned char)i);
            assert_int_equal(data[DP * PS - 1], (unsigned char)(i + 1));
        }
    }
    struct emm_stream_info si;
    emm_stream_info(l.s, &si);
    assert_int_equal(si.sent, N);
    emm_port_unref(l.port);
    emm_stream_close(l.s);
    close(sv[1]);
    rec_fini(&dead);
}

/* A pager that reads straight into the region (emm_stream_data_alloc) while
 * its half is full: a message with data of its own does not wait for a run
 * that a filled message queued behind it holds (a deadlock); it goes inline. */
static void
test_shm_reserved_no_deadlock(void **state)
{
    (void)state;
    struct rec pager;
    rec_init(&pager);
    struct hold h = {.n = 0};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    assert_int_equal(emm_port_create("served", rec_handler, &pager, NULL, &served), 0);
    struct emm_port *control;
    assert_int_equal(emm_port_create("control", hold_handler, &h, NULL, &control), 0);
    struct pair pr;
    pair_open_with(&pr, 0, EMM_MAX_REQUEST_PAGES);
    struct emm_port *mo;
    assert_int_equal(emm_stream_lookup(pr.k, 7, 5000, &mo), 0);
    struct emm_msg *init = msg_with(MO_INIT, 0, 1);
    init->control = emm_port_make_send(control);
    assert_int_equal(emm_port_send(mo, init), 0);
    rec_wait(&pager, 1);
    struct emm_port *ctl = pager.taken[0]; /* the pager's proxy of control */
    assert_non_null(ctl);
    void *region;
    assert_int_equal(emm_stream_data_alloc(ctl, EMM_MAX_REQUEST_PAGES, &region), 0);
    void *more;
    assert_int_equal(emm_stream_data_alloc(ctl, 1, &more), -EAGAIN); /* the half is full */
    assert_int_equal(emm_stream_data_alloc(control, 1, &more), -ENOTSUP); /* a local port */
    /* A: data of its own, no run free; B: filled in the region, behind A. */
    struct emm_msg *a = msg_with(MO_DATA_SUPPLY, 0, 1);
    give_data(a, 0x31);
    assert_int_equal(emm_port_send(ctl, a), 0);
    memset(region, 0x42, EMM_MAX_REQUEST_BYTES);
    struct emm_msg *b = msg_with(MO_DATA_SUPPLY, PS, EMM_MAX_REQUEST_PAGES);
    b->data = region;
    assert_int_equal(emm_port_send(ctl, b), 0);
    hold_wait(&h, 2);
    assert_int_equal(h.first[0], 0x31);
    assert_int_equal(h.last[0], 0x32);
    assert_int_equal(h.first[1], 0x42);
    assert_int_equal(h.last[1], 0x42);
    struct emm_stream_info pi, ki;
    emm_stream_info(pr.p, &pi);
    emm_stream_info(pr.k, &ki);
    assert_int_equal(pi.shm_msgs_out, 1); /* B in the region, A inline */
    assert_int_equal(ki.shm_in_held, EMM_MAX_REQUEST_PAGES);
    assert_int_equal(pi.shm_out_used, EMM_MAX_REQUEST_PAGES);
    emm_msg_release(h.m[0], 0);
    emm_msg_release(h.m[1], 0);
    WAIT_INFO(pr.p, shm_out_used, 0);
    emm_port_unref(mo);
    pair_close(&pr);
    emm_port_destroy(served);
    emm_port_destroy(control);
    rec_fini(&pager);
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.lock);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_id_round_trips),
        cmocka_unit_test(test_dead_peer_epipe),
        cmocka_unit_test(test_relookup_keeps_numbering),
        cmocka_unit_test(test_late_lookup_reply),
        cmocka_unit_test(test_two_lookups_in_flight),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_oversize_payload),
        cmocka_unit_test(test_unknown_id_and_kind),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_names_and_order),
        cmocka_unit_test(test_seqno_out_of_order),
        cmocka_unit_test(test_shm_old_peer_inline),
        cmocka_unit_test(test_shm_back_pressure),
        cmocka_unit_test(test_shm_slot_not_owned),
        cmocka_unit_test(test_shm_region_checked),
        cmocka_unit_test(test_shm_held_run_refused),
        cmocka_unit_test(test_direct_writes_stay_whole),
        cmocka_unit_test(test_shm_reserved_no_deadlock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
