/*
 * swap_io.h - asynchronous vectored I/O on one file descriptor: a swap area's
 * queue. Many requests are in flight at once (up to `depth`); each one ends
 * with its done callback, called on the queue's completion side, never on the
 * submitter's thread.
 *
 * Two engines, the same contract:
 *  - io_uring (liburing): one ring of `depth` entries, a completion thread
 *    that reaps it. Chosen when io_uring_setup works.
 *  - threads: `SWP_IO_THREADS` workers doing preadv/pwritev, when io_uring is
 *    unavailable at run time (ENOSYS, EPERM in a container, ...) or asked for
 *    (SWP_IO_FORCE_THREADS; emmd: the environment EMM_SWAP_IO=threads).
 * Which one runs is logged once at create and named by swp_io_engine.
 *
 * A short transfer is continued from where it stopped (the request's iovecs
 * are advanced in place); a read that reaches the end of the file is -EIO; a
 * failed transfer ends the request with its -errno. EINTR/EAGAIN are retried.
 *
 * Locking: submit may be called from any thread; it waits while `depth`
 * requests are in flight (back-pressure, never an allocation). q->lock guards
 * the ring's submission side, the thread engine's queue and the counters. The
 * done callback runs without the queue's lock; it must not submit to or drain
 * its own queue (its request still counts as in flight until it returns).
 */
#ifndef EMM_SWAP_IO_H
#define EMM_SWAP_IO_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#define SWP_IO_DEPTH_DEFAULT 64u
#define SWP_IO_DEPTH_MAX 1024u
#define SWP_IO_THREADS 4u /* workers of the thread engine */

/* swp_io_create flags */
#define SWP_IO_FORCE_THREADS (1u << 0)

enum swp_io_op { SWP_IO_READ = 0, SWP_IO_WRITE = 1 };

struct swp_io;

struct swp_io_req {
    /* set by the caller */
    enum swp_io_op op;
    uint64_t off;
    struct iovec *iov; /* the caller's until done; advanced in place on a short transfer */
    int niov;
    void (*done)(struct swp_io_req *r, int rc); /* 0 (every byte moved) or -errno */
    void *arg;
    /* the queue's */
    STAILQ_ENTRY(swp_io_req) link;
    uint64_t left;
};

struct swp_io_stats {
    uint64_t submitted;  /* requests */
    uint64_t completed;
    uint64_t bytes;      /* moved by completed requests */
    uint64_t shorts;     /* short transfers continued */
    uint64_t errors;     /* requests ended with an error */
    uint64_t in_flight;  /* now */
    uint64_t max_in_flight;
};

/* path names the file in logs. depth 0: SWP_IO_DEPTH_DEFAULT. */
int swp_io_create(int fd, const char *path, unsigned depth, unsigned flags, struct swp_io **out);

/* Waits for every request in flight (their callbacks run), then stops. */
void swp_io_destroy(struct swp_io *q);

/* Starts r; 0, or -EINVAL for an empty or oversized request (nothing started). */
int swp_io_submit(struct swp_io *q, struct swp_io_req *r);

/* Waits until nothing is in flight. */
void swp_io_drain(struct swp_io *q);

/* "io_uring" or "threads". */
const char *swp_io_engine(const struct swp_io *q);
unsigned swp_io_depth(const struct swp_io *q);

void swp_io_stats(struct swp_io *q, struct swp_io_stats *out);

/*
 * Tests only: hook sees each transfer's raw result (bytes moved or -errno)
 * before the queue acts on it and returns the result to use, so a test can
 * make a transfer short or failed. NULL removes it. Set while idle.
 */
typedef long (*swp_io_hook_fn)(void *arg, const struct swp_io_req *r, long res);
void swp_io_set_hook(struct swp_io *q, swp_io_hook_fn hook, void *arg);

#endif
