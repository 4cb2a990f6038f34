/*
 * test_libpager.c - libemm-pager (through <emm/pager.h> and the shared
 * library only) against a kernel side made of emm-ipc's own stream transport,
 * over a socketpair: the library's defaults (ready, data_unavailable, a grant
 * on data_unlock), EMM_PAGER_LATER and the data_return_completed that answers
 * it with the data_return's seqno, synchronize's result, sends after
 * terminate, an ops table from an older header (shorter struct_size: later
 * callbacks are ignored), a refused api_version, and the public wire header
 * struct against the codec's bytes.
 *
 * The library carries its own copy of emm-ipc (hidden symbols): the two sides
 * share nothing but the socket. Kernel-side messages are recorded by the
 * control port's handler under rec.lock and signalled on rec.cond.
 */
#include <emm/pager.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "msg_wire.h"
#include "port.h"
#include "port_stream.h"

#define PS 4096u
#define MAXREC 32

struct rec {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    struct emm_msg_hdr h[MAXREC];
    unsigned char first[MAXREC], last[MAXREC]; /* a message's data: first, last byte */
};

static struct rec rec;

static void
ctl_handler(struct emm_port *port, struct emm_msg *msg)
{
    (void)port;
    pthread_mutex_lock(&rec.lock);
    if (rec.n < MAXREC) {
        if (msg->data != NULL) {
            rec.first[rec.n] = ((unsigned char *)msg->data)[0];
            rec.last[rec.n] = ((unsigned char *)msg->data)[msg->length - 1];
        }
        rec.h[rec.n++] = msg->hdr;
    }
    pthread_cond_broadcast(&rec.cond);
    pthread_mutex_unlock(&rec.lock);
    emm_msg_release(msg, 0);
}

/* The i-th message the kernel side received (waits for it; 30 s end a hang,
 * they are no timing assertion). */
static struct emm_msg_hdr
got(int i)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&rec.lock);
    while (rec.n <= i && pthread_cond_timedwait(&rec.cond, &rec.lock, &ts) == 0)
        ;
    int have = rec.n > i;
    struct emm_msg_hdr h = rec.h[have ? i : 0];
    pthread_mutex_unlock(&rec.lock);
    if (!have)
        fail_msg("the kernel side never got message %d", i);
    return h;
}

/* ---- the pager's callbacks ---- */

static struct emm_pager_object *last_obj;
static uint64_t return_seqno;
static unsigned char return_first;
static int unlock_called;

static int closes;

static int
cb_data_return(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    pthread_mutex_lock(&rec.lock);
    last_obj = obj;
    return_seqno = m->seqno;
    return_first = ((const unsigned char *)m->data)[0];
    pthread_cond_broadcast(&rec.cond);
    pthread_mutex_unlock(&rec.lock);
    return EMM_PAGER_LATER;
}

static void
cb_close(void *ctx, struct emm_pager_object *obj)
{
    (void)ctx;
    (void)obj;
    pthread_mutex_lock(&rec.lock);
    closes++;
    pthread_cond_broadcast(&rec.cond);
    pthread_mutex_unlock(&rec.lock);
}

static int
cb_synchronize(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    (void)obj;
    (void)m;
    return -EIO;
}

static int
cb_unlock_never(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    (void)obj;
    (void)m;
    unlock_called = 1;
    return -EPERM;
}

/* ---- the two sides ---- */

struct side {
    struct emm_pager *pager;
    int fd, rc;
};

static void *
attach_main(void *arg)
{
    struct side *sd = arg;
    sd->rc = emm_pager_attach(sd->pager, sd->fd, (uint32_t)-1);
    return NULL;
}

struct kernel {
    struct emm_stream *s;
    struct emm_port *ctl, *obj;
};

static void
connect_sides(struct emm_pager *p, struct kernel *k)
{
    memset(&rec, 0, sizeof(rec));
    closes = 0;
    pthread_mutex_init(&rec.lock, NULL);
    pthread_cond_init(&rec.cond, NULL);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct side sd = {.pager = p, .fd = sv[0]};
    pthread_t t;
    pthread_create(&t, NULL, attach_main, &sd);
    struct emm_stream_args a = {.label = "pager", .peer_role = EMM_STREAM_PEER_PAGER,
                                .peer_uid = (uid_t)-1};
    assert_int_equal(emm_stream_open(sv[1], &a, &k->s), 0);
    pthread_join(t, NULL);
    assert_int_equal(sd.rc, 0);
    assert_int_equal(emm_stream_lookup(k->s, 5, 5000, &k->obj), 0);
    assert_int_equal(emm_port_create("ctl", ctl_handler, NULL, NULL, &k->ctl), 0);
}

static void
disconnect_sides(struct emm_pager *p, struct kernel *k)
{
    emm_port_unref(k->obj);
    emm_stream_close(k->s);
    assert_int_equal(emm_pager_wait(p), 0); /* a clean end for the pager */
    emm_pager_free(p);
    emm_port_destroy(k->ctl);
}

static void
page_release(struct emm_msg *m, int status)
{
    (void)status;
    free(m->data);
    free(m);
}

static int
ksend(struct kernel *k, uint32_t id, uint64_t off, uint64_t len, uint32_t access, int data)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    m->access = access;
    if (id == MO_INIT) {
        m->control = emm_port_make_send(k->ctl);
        m->arg = (int32_t)PS;
    }
    if (data) {
        m->data = malloc(len);
        memset(m->data, 0xab, len);
        m->flags = MO_F_DIRTY;
        m->release = page_release;
    }
    return emm_port_send(k->obj, m);
}

static void
test_defaults_later_and_terminate(void **state)
{
    (void)state;
    struct emm_pager_ops ops = {.struct_size = sizeof(ops),
                                .api_version = EMM_PAGER_API_VERSION,
                                .object_close = cb_close,
                                .data_return = cb_data_return,
                                .synchronize = cb_synchronize};
    struct emm_pager *p;
    assert_int_equal(emm_pager_create(&ops, NULL, 2, &p), 0);
    struct kernel k;
    connect_sides(p, &k);

    assert_int_equal(ksend(&k, MO_INIT, 0, 0, 0, 0), 0);                 /* seqno 1 */
    struct emm_msg_hdr h = got(0);
    assert_int_equal(h.id, MO_READY);
    assert_int_equal(h.arg, MO_COPY_DELAY);

    assert_int_equal(ksend(&k, MO_DATA_REQUEST, 2 * PS, PS, VM_PROT_READ, 0), 0); /* 2 */
    h = got(1);
    assert_int_equal(h.id, MO_DATA_UNAVAILABLE); /* the default: zeros */
    assert_int_equal(h.offset, 2 * PS);
    assert_int_equal(h.length, PS);

    assert_int_equal(ksend(&k, MO_DATA_UNLOCK, 2 * PS, PS, VM_PROT_WRITE, 0), 0); /* 3 */
    h = got(2);
    assert_int_equal(h.id, MO_LOCK_REQUEST); /* the default: a grant */
    assert_int_equal(h.access, VM_PROT_NONE);
    assert_int_equal(h.offset, 2 * PS);

    assert_int_equal(ksend(&k, MO_DATA_RETURN, 3 * PS, 2 * PS, 0, 1), 0); /* 4 */
    assert_int_equal(ksend(&k, MO_SYNCHRONIZE, 0, 8 * PS, 0, 0), 0);     /* 5 */
    h = got(3);
    /* EMM_PAGER_LATER: no answer to the return; synchronize's result came first. */
    assert_int_equal(h.id, MO_SYNCHRONIZE_COMPLETED);
    assert_int_equal(h.arg, EIO);
    assert_int_equal(return_seqno, 4);
    assert_int_equal(return_first, 0xab);
    assert_int_equal(emm_pager_data_return_completed(last_obj, 3 * PS, 2 * PS, return_seqno, 0),
                     0);
    h = got(4);
    assert_int_equal(h.id, MO_DATA_RETURN_COMPLETED);
    assert_int_equal(h.arg, 0);
    assert_int_equal(h.arg2, 4); /* the kernel matches it by the seqno it stamped */
    assert_int_equal(h.length, 2 * PS);
    assert_int_equal(emm_pager_object_id(last_obj), 5);

    /* Bad arguments are refused before anything is sent. */
    assert_int_equal(emm_pager_data_unavailable(last_obj, 1, PS), -EINVAL);
    assert_int_equal(emm_pager_data_error(last_obj, 0, PS, -EIO), -EINVAL);
    assert_int_equal(emm_pager_data_supply(last_obj, 0, 2 * EMM_PAGER_MAX_REQUEST, &rec, 0, 0, 0),
                     -EINVAL);

    assert_int_equal(ksend(&k, MO_TERMINATE, 0, 0, 0, 0), 0);
    pthread_mutex_lock(&rec.lock);
    while (closes == 0)
        pthread_cond_wait(&rec.cond, &rec.lock);
    pthread_mutex_unlock(&rec.lock);
    assert_int_equal(closes, 1); /* the object ended with terminate */

    /* The kernel drops its right and asks for the object again, as emmd does
     * when the file is opened again: a new port, and the seqnos the pager
     * quotes in data_return_completed are those of the kernel's new proxy. */
    emm_port_unref(k.obj);
    assert_int_equal(emm_stream_lookup(k.s, 5, 5000, &k.obj), 0);
    assert_int_equal(ksend(&k, MO_INIT, 0, 0, 0, 0), 0); /* seqno 1 */
    assert_int_equal(got(5).id, MO_READY);
    pthread_mutex_lock(&rec.lock);
    return_seqno = 0;
    pthread_mutex_unlock(&rec.lock);
    assert_int_equal(ksend(&k, MO_DATA_RETURN, 0, PS, 0, 1), 0); /* seqno 2 */
    pthread_mutex_lock(&rec.lock);
    while (return_seqno == 0)
        pthread_cond_wait(&rec.cond, &rec.lock);
    pthread_mutex_unlock(&rec.lock);
    assert_int_equal(return_seqno, 2);
    assert_int_equal(emm_pager_data_return_completed(last_obj, 0, PS, return_seqno, EIO), 0);
    h = got(6);
    assert_int_equal(h.id, MO_DATA_RETURN_COMPLETED);
    assert_int_equal(h.arg2, 2);
    assert_int_equal(h.arg, EIO);

    /* A supply crosses in the connection's shared region: copied once, into
     * a run of the pager's half, which the kernel hands back. */
    static unsigned char page2[2 * PS];
    memset(page2, 0x5c, sizeof(page2));
    page2[sizeof(page2) - 1] = 0x5d;
    struct emm_stream_info si;
    emm_stream_info(k.s, &si);
    uint64_t shm_in = si.shm_msgs_in;
    assert_int_equal(emm_pager_data_supply(last_obj, 8 * PS, 2 * PS, page2, 0, 0, 0), 0);
    h = got(7);
    assert_int_equal(h.id, MO_DATA_SUPPLY);
    assert_int_equal(rec.first[7], 0x5c);
    assert_int_equal(rec.last[7], 0x5d);
    emm_stream_info(k.s, &si);
    assert_int_equal(si.features, 1u); /* EMM_STREAM_F_SHM */
    assert_int_equal(si.shm_msgs_in, shm_in + 1);
    disconnect_sides(p, &k);
}

static void
test_old_ops_table(void **state)
{
    (void)state;
    /* A pager built against a header whose ops ended before data_unlock:
     * whatever lies past its struct_size is not a callback. */
    struct emm_pager_ops ops = {.struct_size = offsetof(struct emm_pager_ops, data_unlock),
                                .api_version = EMM_PAGER_API_VERSION,
                                .data_unlock = cb_unlock_never};
    struct emm_pager *p;
    assert_int_equal(emm_pager_create(&ops, NULL, 1, &p), 0);
    struct kernel k;
    connect_sides(p, &k);
    assert_int_equal(ksend(&k, MO_INIT, 0, 0, 0, 0), 0);
    assert_int_equal(got(0).id, MO_READY);
    assert_int_equal(ksend(&k, MO_DATA_UNLOCK, 0, PS, VM_PROT_WRITE, 0), 0);
    struct emm_msg_hdr h = got(1);
    assert_int_equal(h.id, MO_LOCK_REQUEST); /* the default grant, not the callback */
    assert_int_equal(unlock_called, 0);
    disconnect_sides(p, &k);

    struct emm_pager_ops bad = {.struct_size = sizeof(bad), .api_version = 2};
    assert_int_equal(emm_pager_create(&bad, NULL, 1, &p), -EPROTONOSUPPORT);
    bad.api_version = EMM_PAGER_API_VERSION;
    bad.struct_size = 8;
    assert_int_equal(emm_pager_create(&bad, NULL, 1, &p), -EINVAL);
}

/* data_query (emm): the pager's callback says how many pages it stores, or
 * its first run from an offset. */
static int
cb_query(struct emm_pager_object *obj, const struct emm_pager_msg *m, uint64_t *offset,
         uint64_t *length)
{
    (void)obj;
    if (m->flags & EMM_PAGER_F_QUERY_COUNT) {
        *length = 7 * PS;
        return 0;
    }
    if (m->offset > 9 * PS)
        *offset = UINT64_MAX;
    else
        *offset = m->offset < 9 * PS ? 9 * PS : m->offset, *length = 2 * PS;
    return 0;
}

/* A query with a reply right, before any init (the kernel asks about an
 * object it has not mapped): answered to the reply port, across the stream.
 * A reply port per query, as the kernel makes them (vm_query.c). */
static struct emm_msg_hdr
kquery(struct kernel *k, int i, uint64_t off, uint32_t flags, int32_t tag)
{
    struct emm_port *reply;
    assert_int_equal(emm_port_create("query-reply", ctl_handler, NULL, NULL, &reply), 0);
    struct emm_msg *m = emm_msg_new(MO_DATA_QUERY, off, UINT64_MAX - off);
    m->flags = flags;
    m->arg = tag;
    m->reply = emm_port_make_send(reply);
    assert_int_equal(emm_port_send(k->obj, m), 0);
    struct emm_msg_hdr h = got(i);
    emm_port_destroy(reply);
    assert_int_equal(h.id, MO_QUERY_REPLY);
    assert_int_equal(h.arg, tag);
    return h;
}

static void
test_data_query(void **state)
{
    (void)state;
    struct emm_pager_ops ops = {.struct_size = sizeof(ops),
                                .api_version = EMM_PAGER_API_VERSION,
                                .data_query = cb_query};
    struct emm_pager *p;
    assert_int_equal(emm_pager_create(&ops, NULL, 1, &p), 0);
    struct kernel k;
    connect_sides(p, &k);
    struct emm_msg_hdr h = kquery(&k, 0, 0, MO_F_QUERY_COUNT, 3);
    assert_int_equal(h.flags, MO_F_QUERY_COUNT);
    assert_int_equal(h.offset, 0);
    assert_int_equal(h.length, 7 * PS); /* unfixed: UINT64_MAX, the query's span */
    h = kquery(&k, 1, 2 * PS, 0, 4);
    assert_int_equal(h.flags, 0);
    assert_int_equal(h.offset, 9 * PS);
    assert_int_equal(h.length, 2 * PS);
    h = kquery(&k, 2, 12 * PS, 0, 5);
    assert_true(h.offset == UINT64_MAX);
    assert_int_equal(h.length, 0);
    disconnect_sides(p, &k);

    /* Without the callback: it cannot tell. A count says so (UINT64_MAX);
     * a run claims the whole span. */
    ops.data_query = NULL;
    assert_int_equal(emm_pager_create(&ops, NULL, 1, &p), 0);
    connect_sides(p, &k);
    h = kquery(&k, 0, 0, MO_F_QUERY_COUNT, 6);
    assert_int_equal(h.flags, MO_F_QUERY_COUNT);
    assert_true(h.length == UINT64_MAX);
    h = kquery(&k, 1, 2 * PS, 0, 7);
    assert_int_equal(h.offset, 2 * PS);
    assert_true(h.length == UINT64_MAX - 2 * PS);
    disconnect_sides(p, &k);
}

static void
test_wire_header_struct(void **state)
{
    (void)state;
    struct emm_msg_hdr h = {.id = MO_DATA_SUPPLY, .flags = MO_F_PRECIOUS, .seqno = 0x1122334455667788ull,
                            .offset = 3 * PS, .length = 2 * PS, .arg2 = 77, .access = VM_PROT_WRITE,
                            .arg = -5, .control = 0xc0, .name = 0xa1, .reply = 0xe2};
    unsigned char buf[EMM_WIRE_HDR_SIZE];
    assert_int_equal(emm_wire_encode(&h, (uint32_t)(2 * PS), buf), 0);
    struct emm_pager_wire_hdr w;
    assert_int_equal(sizeof(w), sizeof(buf));
    memcpy(&w, buf, sizeof(w)); /* the header is little-endian, as this host */
    assert_int_equal(w.magic, EMM_PAGER_WIRE_MAGIC);
    assert_int_equal(w.version, EMM_PAGER_WIRE_VERSION);
    assert_int_equal(w.size, EMM_PAGER_WIRE_HDR_SIZE);
    assert_int_equal(w.id, EMM_PAGER_DATA_SUPPLY);
    assert_int_equal(w.flags, EMM_PAGER_F_PRECIOUS);
    assert_true(w.seqno == h.seqno);
    assert_true(w.offset == h.offset && w.length == h.length && w.arg2 == 77);
    assert_int_equal(w.access, EMM_PAGER_PROT_WRITE);
    assert_int_equal(w.arg, -5);
    assert_int_equal(w.control, 0xc0);
    assert_int_equal(w.name, 0xa1);
    assert_int_equal(w.reply, 0xe2);
    assert_int_equal(w.payload, 2 * PS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_header_struct),
        cmocka_unit_test(test_defaults_later_and_terminate),
        cmocka_unit_test(test_old_ops_table),
        cmocka_unit_test(test_data_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
