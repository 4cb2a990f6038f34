/*
 * test_memsrv_locks.c - emm-memserver's record-lock table
 * (services/emm-memserver/locks.c) through its message interface, with
 * local reply ports recording the answers: exclusive and shared ranges, a
 * conflict refused (EAGAIN) or waited for, F_GETLK's answer, an unlock that
 * splits a lock, FIFO waiters, flock and POSIX locks apart, a cancel, a host
 * gone, and hostile messages (bad ranges, kinds, flags, no reply port,
 * unknown owners). Single-threaded: replies are delivered inline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "locks.h"
#include "memserver.h"
#include "msg.h"
#include "port.h"

#define OBJ 7u
#define END ((uint64_t)INT64_MAX)

struct answer {
    int got, err;
    uint32_t access;
    uint64_t off, len, pid;
};

static struct msrv srv;
static struct msrv_host hosts[3];

static void
on_answer(struct emm_port *port, struct emm_msg *m)
{
    struct answer *a = emm_port_context(port);
    a->got++;
    a->err = m->arg;
    a->access = m->access;
    a->off = m->offset;
    a->len = m->length;
    a->pid = m->arg2;
    emm_msg_release(m, 0);
}

/* One request from host h; the answer (if any) lands in *a. */
static void
req(unsigned h, uint32_t id, uint64_t off, uint64_t len, uint32_t access, uint32_t flags,
    uint64_t owner, struct answer *a)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    assert_non_null(m);
    m->access = access;
    m->flags = flags;
    m->arg = 100 + (int32_t)h;
    m->arg2 = owner;
    struct emm_port *p = NULL;
    if (a != NULL) {
        memset(a, 0, sizeof(*a));
        assert_int_equal(emm_port_create("answer", on_answer, a, NULL, &p), 0);
        m->reply = emm_port_make_send(p);
    }
    msrv_locks_msg(&hosts[h], OBJ, m);
    emm_msg_release(m, 0);
    if (p != NULL)
        emm_port_unref(p); /* a waiter keeps its own right: the port lives on */
}

static void
acq(unsigned h, uint64_t off, uint64_t len, int write, int wait, uint64_t owner,
    struct answer *a)
{
    req(h, MO_LOCK_ACQUIRE, off, len, write ? VM_PROT_WRITE : VM_PROT_READ,
        (wait ? MO_LK_F_WAIT : 0) | ((uint32_t)(10 + h) << 8), owner, a);
}

static void
rel(unsigned h, uint64_t off, uint64_t len, uint64_t owner)
{
    req(h, MO_LOCK_RELEASE, off, len, 0, 0, owner, NULL);
}

static int
setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    for (unsigned i = 0; i < 3; i++) {
        hosts[i] = (struct msrv_host){.srv = &srv, .index = i};
        snprintf(hosts[i].peer, sizeof(hosts[i].peer), "host %u", i);
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 3; i++)
        msrv_locks_host_gone(&hosts[i]);
    msrv_locks_free();
    return 0;
}

static void
test_conflict_test_and_wait(void **state)
{
    (void)state;
    struct answer a, b, t, w;
    acq(0, 0, 100, 1, 0, 1, &a);
    assert_int_equal(a.got, 1);
    assert_int_equal(a.err, 0);
    acq(1, 50, 11, 1, 0, 1, &b); /* the same owner number on another host: another owner */
    assert_int_equal(b.err, EAGAIN);
    req(1, MO_LOCK_TEST, 50, 1, VM_PROT_READ, 0, 1, &t);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.access, VM_PROT_WRITE);
    assert_int_equal(t.off, 0);
    assert_int_equal(t.len, 100);
    assert_int_equal(t.pid, 100);
    acq(1, 50, 11, 1, 1, 1, &w);
    assert_int_equal(w.got, 0); /* waits */
    rel(0, 0, 50, 1);           /* [50, 99] still held: it waits on */
    assert_int_equal(w.got, 0);
    rel(0, 50, 50, 1);
    assert_int_equal(w.got, 1);
    assert_int_equal(w.err, 0);
    req(0, MO_LOCK_TEST, 0, END + 1, VM_PROT_READ, 0, 1, &t);
    assert_int_equal(t.access, VM_PROT_WRITE);
    assert_int_equal(t.off, 50);
    assert_int_equal(t.len, 11);
}

static void
test_split_and_shared(void **state)
{
    (void)state;
    struct answer a, b;
    acq(0, 0, 100, 1, 0, 1, &a);
    rel(0, 40, 20, 1); /* a hole in the middle: [0, 39] and [60, 99] stay */
    acq(1, 45, 6, 1, 0, 2, &b);
    assert_int_equal(b.err, 0);
    acq(1, 30, 6, 1, 0, 2, &b);
    assert_int_equal(b.err, EAGAIN);
    acq(1, 90, 6, 0, 0, 2, &b);
    assert_int_equal(b.err, EAGAIN);
    /* The owner's own new lock replaces its old one: a downgrade to shared. */
    acq(0, 60, 40, 0, 0, 1, &a);
    assert_int_equal(a.err, 0);
    acq(1, 90, 6, 0, 0, 2, &b);
    assert_int_equal(b.err, 0); /* readers share */
    acq(2, 90, 1, 1, 0, 3, &b);
    assert_int_equal(b.err, EAGAIN);
}

static void
test_fifo_and_kinds(void **state)
{
    (void)state;
    struct answer a, b, c, f;
    acq(0, 0, 10, 1, 0, 1, &a);
    acq(1, 0, 10, 1, 1, 1, &b);
    acq(2, 5, 1, 0, 1, 1, &c);
    assert_int_equal(b.got + c.got, 0);
    /* flock is its own kind: no conflict with the POSIX locks. */
    req(2, MO_LOCK_ACQUIRE, 0, END + 1, VM_PROT_WRITE, MO_LK_F_FLOCK, 9, &f);
    assert_int_equal(f.err, 0);
    rel(0, 0, 10, 1);
    assert_int_equal(b.got, 1); /* first come */
    assert_int_equal(c.got, 0);
    rel(1, 0, END + 1, 1);
    assert_int_equal(c.got, 1);
    assert_int_equal(c.err, 0);
    req(1, MO_LOCK_ACQUIRE, 0, END + 1, VM_PROT_READ, MO_LK_F_FLOCK, 9, &f);
    assert_int_equal(f.err, EAGAIN);
    /* A reader that would share with the holder still queues behind an
     * earlier writer (no overtaking, no starved writer). */
    struct answer r1, w1, r2;
    acq(0, 20, 10, 0, 0, 4, &r1);
    acq(1, 20, 10, 1, 1, 4, &w1);
    acq(2, 20, 10, 0, 1, 4, &r2);
    assert_int_equal(r1.err, 0);
    assert_int_equal(w1.got + r2.got, 0);
    rel(0, 20, 10, 4);
    assert_int_equal(w1.got, 1);
    assert_int_equal(r2.got, 0);
    rel(1, 20, 10, 4);
    assert_int_equal(r2.got, 1);
}

static void
test_cancel_and_host_gone(void **state)
{
    (void)state;
    struct answer a, b, c;
    acq(0, 0, 10, 1, 0, 1, &a);
    acq(1, 0, 10, 1, 1, 1, &b); /* token 11 */
    acq(2, 0, 10, 1, 1, 1, &c); /* token 12 */
    req(1, MO_LOCK_CANCEL, 0, 0, 0, 99u << 8, 1, NULL); /* a wrong token: nothing */
    assert_int_equal(b.got, 0);
    req(1, MO_LOCK_CANCEL, 0, 0, 0, 11u << 8, 1, NULL);
    assert_int_equal(b.got, 1);
    assert_int_equal(b.err, EINTR);
    msrv_locks_host_gone(&hosts[0]); /* its lock goes: the next waiter gets it */
    assert_int_equal(c.got, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(b.got, 1);
}

static void
test_hostile(void **state)
{
    (void)state;
    struct answer a;
    uint64_t bad0 = atomic_load(&srv.st.bad_messages);
    acq(0, 0, 0, 1, 0, 1, &a); /* empty */
    assert_int_equal(a.err, EINVAL);
    acq(0, END, 2, 1, 0, 1, &a); /* past 2^63 */
    assert_int_equal(a.err, EINVAL);
    acq(0, UINT64_MAX, 1, 1, 0, 1, &a);
    assert_int_equal(a.err, EINVAL);
    req(0, MO_LOCK_ACQUIRE, 0, 1, VM_PROT_ALL, 0, 1, &a); /* no such kind */
    assert_int_equal(a.err, EINVAL);
    req(0, MO_LOCK_ACQUIRE, 0, 1, VM_PROT_READ, 0x80, 1, &a); /* unknown flag */
    assert_int_equal(a.err, EINVAL);
    req(0, MO_LOCK_ACQUIRE, 4, 1, VM_PROT_READ, MO_LK_F_FLOCK, 1, &a); /* flock not whole */
    assert_int_equal(a.err, EINVAL);
    req(0, MO_LOCK_TEST, 0, 1, VM_PROT_READ, MO_LK_F_WAIT, 1, &a);
    assert_int_equal(a.err, EINVAL);
    req(0, MO_LOCK_ACQUIRE, 0, 1, VM_PROT_READ, 0, 1, NULL); /* nobody to answer */
    assert_int_equal(atomic_load(&srv.st.bad_messages) - bad0, 8);
    /* Nothing was granted by all that; an unknown owner's release is no error. */
    rel(0, 0, 100, 42);
    acq(1, 0, END + 1, 1, 0, 5, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(atomic_load(&srv.st.bad_messages) - bad0, 8);
    uint64_t g, r, c, h;
    msrv_locks_stats(&g, &r, &c, &h);
    assert_int_equal(h, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conflict_test_and_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_and_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_and_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_host_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
