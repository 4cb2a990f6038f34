/*
 * test_swap_io.c - the swap area's asynchronous I/O queue (swapfs/swap_io.c)
 * on a file in a mkdtemp directory, with each engine: io_uring (when the
 * machine allows it; else the test says which engine ran) and the thread
 * engine. A vectored write and read back, byte for byte; a short transfer
 * continued from where it stopped (made short by the test hook); a failed
 * transfer ending its request with the error; a read past the end of the
 * file; many requests through a small depth (never more in flight).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "swap_io.h"

#define PS 4096u

struct fix {
    char dir[64], path[128];
    int fd;
    struct swp_io *q;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    /* the hook */
    int shorten;  /* make the next transfer this many bytes short */
    long fail;    /* make the next transfer end with this -errno */
    int calls;
};

struct req {
    struct swp_io_req io;
    struct iovec iov[16];
    struct fix *f;
    int done, rc;
};

static void
req_done(struct swp_io_req *r, int rc)
{
    struct req *q = r->arg;
    pthread_mutex_lock(&q->f->lock);
    q->done = 1;
    q->rc = rc;
    q->f->done++;
    pthread_cond_broadcast(&q->f->cond);
    pthread_mutex_unlock(&q->f->lock);
}

static long
hook(void *arg, const struct swp_io_req *r, long res)
{
    struct fix *f = arg;
    (void)r;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    if (f->fail) {
        res = f->fail;
        f->fail = 0;
    } else if (f->shorten && res > f->shorten) {
        res -= f->shorten; /* the rest is written again: harmless */
        f->shorten = 0;
    }
    pthread_mutex_unlock(&f->lock);
    return res;
}

static int
setup_engine(void **state, unsigned flags)
{
    struct fix *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    emm_log_init("test_swap_io", 0, EMM_LOG_ERR + 1);
    strcpy(f->dir, "/tmp/emm-test-swapio-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/area", f->dir);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f->fd < 0 || ftruncate(f->fd, 1 << 20) < 0)
        return -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    if (swp_io_create(f->fd, f->path, 8, flags, &f->q) < 0)
        return -1;
    swp_io_set_hook(f->q, hook, f);
    *state = f;
    return 0;
}

static int
setup_uring(void **state)
{
    return setup_engine(state, 0);
}

static int
setup_threads(void **state)
{
    return setup_engine(state, SWP_IO_FORCE_THREADS);
}

static int
teardown(void **state)
{
    struct fix *f = *state;
    swp_io_destroy(f->q);
    close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f);
    return 0;
}

static void
wait_done(struct fix *f, int n)
{
    struct timespec ts;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&f->lock);
    while (f->done < n && rc == 0)
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    pthread_mutex_unlock(&f->lock);
    if (rc != 0)
        fail_msg("requests not done");
}

/* Pages [0, n) of bufs, one iovec each, at byte off. */
static void
prep(struct fix *f, struct req *r, enum swp_io_op op, uint64_t off, uint8_t *buf, unsigned n)
{
    memset(r, 0, sizeof(*r));
    r->f = f;
    for (unsigned i = 0; i < n; i++)
        r->iov[i] = (struct iovec){.iov_base = buf + (size_t)i * PS, .iov_len = PS};
    r->io = (struct swp_io_req){.op = op, .off = off, .iov = r->iov, .niov = (int)n,
                                .done = req_done, .arg = r};
}

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 31 + seed + i / PS);
}

static void
test_write_read(void **state)
{
    struct fix *f = *state;
    static uint8_t out[16 * PS], in[16 * PS];
    struct req w, r;

    print_message("engine: %s\n", swp_io_engine(f->q));
    fill(out, sizeof(out), 1);
    prep(f, &w, SWP_IO_WRITE, 8 * PS, out, 16);
    assert_int_equal(swp_io_submit(f->q, &w.io), 0);
    wait_done(f, 1);
    assert_int_equal(w.rc, 0);
    prep(f, &r, SWP_IO_READ, 8 * PS, in, 16);
    assert_int_equal(swp_io_submit(f->q, &r.io), 0);
    wait_done(f, 2);
    assert_int_equal(r.rc, 0);
    assert_memory_equal(in, out, sizeof(in));
    struct swp_io_stats st;
    swp_io_drain(f->q); /* a request counts until its done returns */
    swp_io_stats(f->q, &st);
    assert_int_equal(st.completed, 2);
    assert_int_equal(st.bytes, 2 * sizeof(in));
    assert_int_equal(st.shorts, 0);
    assert_int_equal(st.in_flight, 0);
}

/* A transfer that stops short is continued from the first byte it did not
 * move: the file ends up right and the request ends once, with 0. */
static void
test_short_transfer(void **state)
{
    struct fix *f = *state;
    static uint8_t out[16 * PS], in[16 * PS];
    struct req w, r;

    fill(out, sizeof(out), 2);
    f->shorten = 5 * PS + 100; /* mid-iovec */
    prep(f, &w, SWP_IO_WRITE, 0, out, 16);
    assert_int_equal(swp_io_submit(f->q, &w.io), 0);
    wait_done(f, 1);
    assert_int_equal(w.rc, 0);
    assert_int_equal(f->calls, 2);
    f->shorten = 3 * PS; /* a short read too */
    prep(f, &r, SWP_IO_READ, 0, in, 16);
    assert_int_equal(swp_io_submit(f->q, &r.io), 0);
    wait_done(f, 2);
    assert_int_equal(r.rc, 0);
    assert_int_equal(f->calls, 4);
    assert_memory_equal(in, out, sizeof(in));
    /* and the disk agrees, read without the queue */
    memset(in, 0, sizeof(in));
    assert_int_equal(pread(f->fd, in, sizeof(in), 0), (ssize_t)sizeof(in));
    assert_memory_equal(in, out, sizeof(in));
    struct swp_io_stats st;
    swp_io_stats(f->q, &st);
    assert_int_equal(st.shorts, 2);
    assert_int_equal(st.errors, 0);
}

/* A failed transfer ends that request with its error, and only that one. */
static void
test_failed_transfer(void **state)
{
    struct fix *f = *state;
    static uint8_t a[2 * PS], b[2 * PS];
    struct req ra, rb;

    fill(a, sizeof(a), 3);
    fill(b, sizeof(b), 4);
    f->fail = -EIO;
    prep(f, &ra, SWP_IO_WRITE, 0, a, 2);
    assert_int_equal(swp_io_submit(f->q, &ra.io), 0);
    wait_done(f, 1);
    prep(f, &rb, SWP_IO_WRITE, 2 * PS, b, 2);
    assert_int_equal(swp_io_submit(f->q, &rb.io), 0);
    wait_done(f, 2);
    assert_int_equal(ra.rc, -EIO);
    assert_int_equal(rb.rc, 0);
    struct swp_io_stats st;
    swp_io_stats(f->q, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.completed, 2);
}

/* Reading past the end of the file is an error, not a hang or a silent short. */
static void
test_read_past_end(void **state)
{
    struct fix *f = *state;
    static uint8_t in[2 * PS];
    struct req r;

    prep(f, &r, SWP_IO_READ, (1 << 20) - PS, in, 2);
    assert_int_equal(swp_io_submit(f->q, &r.io), 0);
    wait_done(f, 1);
    assert_int_equal(r.rc, -EIO);
}

/* Many requests through a depth of 8: all end, never more than 8 at once. */
static void
test_depth(void **state)
{
    struct fix *f = *state;
    enum { N = 100 };
    static uint8_t out[N][PS], in[N][PS];
    static struct req w[N], r[N];

    for (int i = 0; i < N; i++) {
        fill(out[i], PS, (unsigned)i);
        prep(f, &w[i], SWP_IO_WRITE, (uint64_t)i * PS, out[i], 1);
        assert_int_equal(swp_io_submit(f->q, &w[i].io), 0);
    }
    wait_done(f, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].rc, 0);
        prep(f, &r[i], SWP_IO_READ, (uint64_t)i * PS, in[i], 1);
        assert_int_equal(swp_io_submit(f->q, &r[i].io), 0);
    }
    wait_done(f, 2 * N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_memory_equal(in[i], out[i], PS);
    }
    struct swp_io_stats st;
    swp_io_stats(f->q, &st);
    assert_true(st.max_in_flight <= 8);
    assert_int_equal(st.completed, 2 * N);
    swp_io_drain(f->q);
    swp_io_stats(f->q, &st);
    assert_int_equal(st.in_flight, 0);
}

static void
test_bad_requests(void **state)
{
    struct fix *f = *state;
    struct req r;
    static uint8_t buf[PS];

    prep(f, &r, SWP_IO_WRITE, 0, buf, 1);
    r.io.niov = 0;
    assert_int_equal(swp_io_submit(f->q, &r.io), -EINVAL);
    r.iov[0].iov_len = 0;
    r.io.niov = 1;
    assert_int_equal(swp_io_submit(f->q, &r.io), -EINVAL);
}

#define BOTH(t)                                                                 \
    cmocka_unit_test_setup_teardown(t, setup_uring, teardown),                 \
        cmocka_unit_test_setup_teardown(t, setup_threads, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_write_read),   BOTH(test_short_transfer), BOTH(test_failed_transfer),
        BOTH(test_read_past_end), BOTH(test_depth),          BOTH(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
