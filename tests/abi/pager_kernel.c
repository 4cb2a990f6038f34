/*
 * pager_kernel.c - emm's real kernel (emm/vm) as a client of an external
 * pager over its socket, for tests: until emmd mounts `pager = unix:PATH`
 * filesystems, this is the kernel side a libemm-pager pager talks to.
 *
 *   pager_kernel SOCKET ID SIZE get          the object's bytes to stdout
 *   pager_kernel SOCKET ID SIZE put OFFSET   stdin written at OFFSET, then sync
 *
 * Each run connects (the stream transport, peer role pager), looks up object
 * ID, creates a vm_object of SIZE bytes with that port as its pager (init,
 * ready), does the operation through vm_object_read/vm_object_write in 64 KiB
 * pieces (faults, data_request, data_unlock, lock_request as a real mapping
 * sees them), then vm_object_sync and vm_object_terminate(keep): every dirty
 * page goes back as data_return and the pager's answer is awaited. Its kernel
 * counters go to stderr as "kernel: data_unlocks N lock_requests N ...".
 *
 * Locking: one waiter (mutex + cond) per call; the kernel's own rules inside.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "port_stream.h"
#include "vm_object.h"

#define CHUNK (64u * 1024u)

struct wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
    char *out;
    size_t got;
};

static void
wait_init(struct wait *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

static int
wait_end(struct wait *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    return w->err;
}

static void
signal_done(struct wait *w, int err)
{
    pthread_mutex_lock(&w->lock);
    w->err = err;
    w->done = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void
done_cb(void *arg, int err)
{
    signal_done(arg, err);
}

static void
read_cb(void *arg, int err, const struct iovec *iov, int iovcnt)
{
    struct wait *w = arg;
    for (int i = 0; err == 0 && i < iovcnt; i++) {
        memcpy(w->out + w->got, iov[i].iov_base, iov[i].iov_len);
        w->got += iov[i].iov_len;
    }
    signal_done(w, err);
}

static int
write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[4], "get") != 0 && strcmp(argv[4], "put") != 0) ||
        (strcmp(argv[4], "put") == 0 && argc < 6)) {
        fprintf(stderr, "usage: %s SOCKET ID SIZE get | put OFFSET\n", argv[0]);
        return 2;
    }
    uint64_t id = strtoull(argv[2], NULL, 0), size = strtoull(argv[3], NULL, 0);
    int fd = emm_stream_connect(argv[1]);
    if (fd < 0) {
        fprintf(stderr, "pager_kernel: connect %s: %s\n", argv[1], strerror(-fd));
        return 1;
    }
    struct emm_stream_args sa = {.label = "pager", .peer_role = EMM_STREAM_PEER_PAGER,
                                 .peer_uid = (uid_t)-1};
    struct emm_stream *s;
    int rc = emm_stream_open(fd, &sa, &s);
    if (rc < 0) {
        fprintf(stderr, "pager_kernel: stream: %s\n", strerror(-rc));
        return 1;
    }
    struct emm_port *pager;
    rc = emm_stream_lookup(s, id, 5000, &pager);
    if (rc < 0) {
        fprintf(stderr, "pager_kernel: lookup of object %llu: %s\n", (unsigned long long)id,
                strerror(-rc));
        emm_stream_close(s);
        return 1;
    }
    struct vm_upcalls up = {0};
    struct vm_kernel *k;
    rc = vm_kernel_create(4u << 20, NULL, &up, &k);
    if (rc < 0) {
        fprintf(stderr, "pager_kernel: kernel: %s\n", strerror(-rc));
        return 1;
    }
    struct vm_object_args oa = {.id = id, .size = size, .pager = pager};
    struct vm_object *obj;
    rc = vm_object_create(k, &oa, &obj);
    if (rc < 0) {
        fprintf(stderr, "pager_kernel: object: %s\n", strerror(-rc));
        return 1;
    }

    int status = 0;
    struct wait w;
    if (strcmp(argv[4], "get") == 0) {
        char *buf = malloc(CHUNK);
        for (uint64_t off = 0; off < size && status == 0; off += CHUNK) {
            wait_init(&w);
            w.out = buf;
            vm_object_read(obj, off, size - off < CHUNK ? size - off : CHUNK, read_cb, &w);
            if ((rc = wait_end(&w)) != 0 || write_all(1, buf, w.got) < 0) {
                fprintf(stderr, "pager_kernel: read at %llu: %s\n", (unsigned long long)off,
                        strerror(rc ? rc : errno));
                status = 1;
            }
        }
        free(buf);
    } else {
        uint64_t off = strtoull(argv[5], NULL, 0);
        char *buf = malloc(CHUNK);
        ssize_t n;
        while (status == 0 && (n = read(0, buf, CHUNK)) > 0) {
            wait_init(&w);
            vm_object_write(obj, off, buf, (uint64_t)n, done_cb, &w);
            if ((rc = wait_end(&w)) != 0) {
                fprintf(stderr, "pager_kernel: write at %llu: %s\n", (unsigned long long)off,
                        strerror(rc));
                status = 1;
            }
            off += (uint64_t)n;
        }
        free(buf);
        wait_init(&w);
        vm_object_sync(obj, done_cb, &w);
        if ((rc = wait_end(&w)) != 0) {
            fprintf(stderr, "pager_kernel: sync: %s\n", strerror(rc));
            status = 1;
        }
    }
    wait_init(&w);
    vm_object_terminate(obj, 1, done_cb, &w);
    if ((rc = wait_end(&w)) != 0) {
        fprintf(stderr, "pager_kernel: terminate: %s\n", strerror(rc));
        status = 1;
    }
    struct vm_stats *st = vm_kernel_stats(k);
    fprintf(stderr,
            "kernel: data_requests %llu data_unlocks %llu lock_requests %llu data_returns %llu "
            "data_errors %llu\n",
            (unsigned long long)atomic_load(&st->data_requests),
            (unsigned long long)atomic_load(&st->data_unlocks),
            (unsigned long long)atomic_load(&st->lock_requests),
            (unsigned long long)atomic_load(&st->data_returns),
            (unsigned long long)atomic_load(&st->data_errors));
    vm_object_unref(obj);
    vm_kernel_destroy(k);
    emm_stream_close(s);
    return status;
}
