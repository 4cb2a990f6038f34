/*
 * swap_io.c - a swap area's asynchronous I/O queue (see swap_io.h): io_uring
 * through liburing, or a few threads doing preadv/pwritev when io_uring is
 * not available.
 *
 * Locking: q->lock guards in_flight, the counters, the ring's submission queue
 * (liburing lets one submitter and one reaper work at once: the reaper is the
 * completion thread, alone on the completion queue) and the thread engine's
 * list. Submitters wait on q->room while depth requests are in flight. A
 * request's fields are its owner's until submit, then the queue's until its
 * done callback, which runs with no lock held.
 */
#include "swap_io.h"

#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct swp_io {
    int fd;
    char *path;
    unsigned depth;
    int uring; /* 1: io_uring, 0: threads */
    struct io_uring ring;
    pthread_t threads[SWP_IO_THREADS];
    unsigned nthreads;
    pthread_mutex_t lock;
    pthread_cond_t room;  /* in_flight dropped below depth, or to 0 */
    pthread_cond_t work;  /* thread engine: a request queued, or stop */
    STAILQ_HEAD(, swp_io_req) reqs; /* thread engine: queued requests */
    int stop;
    uint64_t in_flight;
    struct swp_io_stats st;
    swp_io_hook_fn hook;
    void *hook_arg;
};

static uint64_t
iov_len(const struct iovec *iov, int n)
{
    uint64_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

/* Drops the first `moved` bytes from r's iovecs (a short transfer). */
static void
iov_advance(struct swp_io_req *r, uint64_t moved)
{
    r->off += moved;
    r->left -= moved;
    while (moved > 0 && r->niov > 0) {
        if (moved >= r->iov[0].iov_len) {
            moved -= r->iov[0].iov_len;
            r->iov++;
            r->niov--;
        } else {
            r->iov[0].iov_base = (char *)r->iov[0].iov_base + moved;
            r->iov[0].iov_len -= moved;
            moved = 0;
        }
    }
}

/* io_uring: queues r on the ring and submits it. q->lock held. */
static void
ring_push_locked(struct swp_io *q, struct swp_io_req *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
    /* Never NULL: at most depth requests exist and each is submitted at once. */
    if (r->op == SWP_IO_WRITE)
        io_uring_prep_writev(sqe, q->fd, r->iov, (unsigned)r->niov, r->off);
    else
        io_uring_prep_readv(sqe, q->fd, r->iov, (unsigned)r->niov, r->off);
    io_uring_sqe_set_data(sqe, r);
    int rc;
    while ((rc = io_uring_submit(&q->ring)) == -EINTR || rc == -EAGAIN)
        ;
    if (rc < 0) /* the entry stays queued and goes with the next submit */
        emm_warn("%s: io_uring_submit: %s", q->path, strerror(-rc));
}

/* Thread engine: appends r to the list. q->lock held. */
static void
list_push_locked(struct swp_io *q, struct swp_io_req *r)
{
    STAILQ_INSERT_TAIL(&q->reqs, r, link);
    pthread_cond_signal(&q->work);
}

static void
requeue(struct swp_io *q, struct swp_io_req *r)
{
    pthread_mutex_lock(&q->lock);
    if (q->uring)
        ring_push_locked(q, r);
    else
        list_push_locked(q, r);
    pthread_mutex_unlock(&q->lock);
}

/* One transfer of r ended with res (bytes or -errno): continue it or end it. */
static void
transfer_done(struct swp_io *q, struct swp_io_req *r, long res)
{
    /* The lock also orders this thread after the submitter's writes to r:
     * io_uring carries r through the kernel, where no sanitizer sees it. */
    pthread_mutex_lock(&q->lock);
    swp_io_hook_fn hook = q->hook;
    void *hook_arg = q->hook_arg;
    pthread_mutex_unlock(&q->lock);
    if (hook)
        res = hook(hook_arg, r, res);
    if (res == -EINTR || res == -EAGAIN) {
        requeue(q, r);
        return;
    }
    int rc = 0;
    if (res < 0) {
        rc = (int)res;
    } else if (res == 0 && r->left > 0) {
        rc = -EIO; /* past the end of the file */
        emm_err("%s: %s at byte %llu: end of file with %llu bytes to go", q->path,
                r->op == SWP_IO_WRITE ? "write" : "read", (unsigned long long)r->off,
                (unsigned long long)r->left);
    } else if ((uint64_t)res < r->left) {
        iov_advance(r, (uint64_t)res);
        pthread_mutex_lock(&q->lock);
        q->st.shorts++;
        q->st.bytes += (uint64_t)res;
        pthread_mutex_unlock(&q->lock);
        requeue(q, r);
        return;
    }
    pthread_mutex_lock(&q->lock);
    q->st.completed++;
    if (rc < 0)
        q->st.errors++;
    else
        q->st.bytes += (uint64_t)res;
    pthread_mutex_unlock(&q->lock);
    r->done(r, rc); /* r is its owner's again: not touched after this */
    /* Counted out after done, so swp_io_drain returns after every callback. */
    pthread_mutex_lock(&q->lock);
    q->in_flight--;
    pthread_cond_broadcast(&q->room);
    pthread_mutex_unlock(&q->lock);
}

static void *
ring_main(void *arg)
{
    struct swp_io *q = arg;

    for (;;) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&q->ring, &cqe);
        if (rc == -EINTR || rc == -EAGAIN)
            continue;
        if (rc < 0) {
            emm_err("%s: io_uring_wait_cqe: %s", q->path, strerror(-rc));
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        struct swp_io_req *r = io_uring_cqe_get_data(cqe);
        long res = cqe->res;
        io_uring_cqe_seen(&q->ring, cqe);
        if (r == NULL)
            return NULL; /* the stop marker: nothing else is in flight */
        transfer_done(q, r, res);
    }
}

static void *
thread_main(void *arg)
{
    struct swp_io *q = arg;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (STAILQ_EMPTY(&q->reqs) && !q->stop)
            pthread_cond_wait(&q->work, &q->lock);
        if (STAILQ_EMPTY(&q->reqs))
            break;
        struct swp_io_req *r = STAILQ_FIRST(&q->reqs);
        STAILQ_REMOVE_HEAD(&q->reqs, link);
        pthread_mutex_unlock(&q->lock);
        ssize_t n = r->op == SWP_IO_WRITE ? pwritev(q->fd, r->iov, r->niov, (off_t)r->off)
                                          : preadv(q->fd, r->iov, r->niov, (off_t)r->off);
        transfer_done(q, r, n < 0 ? -errno : (long)n);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int
swp_io_create(int fd, const char *path, unsigned depth, unsigned flags, struct swp_io **out)
{
    struct swp_io *q = calloc(1, sizeof(*q));
    int rc;

    *out = NULL;
    if (q == NULL || (q->path = strdup(path)) == NULL) {
        free(q);
        return -ENOMEM;
    }
    q->fd = fd;
    STAILQ_INIT(&q->reqs);
    q->depth = depth == 0 ? SWP_IO_DEPTH_DEFAULT : depth > SWP_IO_DEPTH_MAX ? SWP_IO_DEPTH_MAX : depth;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->room, NULL);
    pthread_cond_init(&q->work, NULL);
    const char *why = "asked for";
    if (!(flags & SWP_IO_FORCE_THREADS)) {
        rc = io_uring_queue_init(q->depth, &q->ring, 0);
        if (rc == 0) {
            q->uring = 1;
            rc = pthread_create(&q->threads[0], NULL, ring_main, q);
            if (rc == 0) {
                q->nthreads = 1;
                emm_info("%s: swap I/O through io_uring, %u in flight", path, q->depth);
                *out = q;
                return 0;
            }
            io_uring_queue_exit(&q->ring);
            q->uring = 0;
            why = "no completion thread";
        } else {
            why = strerror(-rc);
        }
    }
    for (unsigned i = 0; i < SWP_IO_THREADS; i++) {
        rc = pthread_create(&q->threads[i], NULL, thread_main, q);
        if (rc != 0) {
            if (q->nthreads > 0)
                break;
            pthread_mutex_destroy(&q->lock);
            pthread_cond_destroy(&q->room);
            pthread_cond_destroy(&q->work);
            free(q->path);
            free(q);
            emm_err("%s: swap I/O threads: %s", path, strerror(rc));
            return -rc;
        }
        q->nthreads++;
    }
    if (q->depth > 4 * q->nthreads)
        q->depth = 4 * q->nthreads; /* queued beyond that would only wait */
    emm_notice("%s: swap I/O through %u threads (io_uring: %s), %u in flight", path, q->nthreads,
               why, q->depth);
    *out = q;
    return 0;
}

void
swp_io_drain(struct swp_io *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->in_flight > 0)
        pthread_cond_wait(&q->room, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

void
swp_io_destroy(struct swp_io *q)
{
    if (q == NULL)
        return;
    swp_io_drain(q);
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    if (q->uring) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL);
        while (io_uring_submit(&q->ring) == -EINTR)
            ;
    } else {
        pthread_cond_broadcast(&q->work);
    }
    pthread_mutex_unlock(&q->lock);
    for (unsigned i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    if (q->uring)
        io_uring_queue_exit(&q->ring);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->room);
    pthread_cond_destroy(&q->work);
    free(q->path);
    free(q);
}

int
swp_io_submit(struct swp_io *q, struct swp_io_req *r)
{
    if (r->niov <= 0 || r->niov > IOV_MAX || r->done == NULL)
        return -EINVAL;
    r->left = iov_len(r->iov, r->niov);
    if (r->left == 0)
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    while (q->in_flight >= q->depth)
        pthread_cond_wait(&q->room, &q->lock);
    q->in_flight++;
    q->st.submitted++;
    if (q->in_flight > q->st.max_in_flight)
        q->st.max_in_flight = q->in_flight;
    if (q->uring)
        ring_push_locked(q, r);
    else
        list_push_locked(q, r);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

const char *
swp_io_engine(const struct swp_io *q)
{
    return q->uring ? "io_uring" : "threads";
}

unsigned
swp_io_depth(const struct swp_io *q)
{
    return q->depth;
}

void
swp_io_stats(struct swp_io *q, struct swp_io_stats *out)
{
    pthread_mutex_lock(&q->lock);
    *out = q->st;
    out->in_flight = q->in_flight;
    pthread_mutex_unlock(&q->lock);
}

void
swp_io_set_hook(struct swp_io *q, swp_io_hook_fn hook, void *arg)
{
    pthread_mutex_lock(&q->lock);
    q->hook = hook;
    q->hook_arg = arg;
    pthread_mutex_unlock(&q->lock);
}
