/*
 * unlock-pager.c - an external memory manager built on <emm/pager.h> alone:
 * it serves every object read-only and grants write access page by page, when
 * the kernel asks for it with data_unlock. Something no storage backend can
 * do: a backend only stores pages, the lock is the pager's to give.
 *
 *   unlock-pager -s SOCKET -d DIR [-t THREADS]
 *
 * Object N is the file DIR/N (missing bytes read as zeros). Every page is
 * supplied with a lock value of PROT_WRITE: the first write to it makes the
 * kernel send data_unlock; the pager records the grant and lifts the lock
 * with lock_request(lock_value = NONE, reply), and counts the lock_completed
 * that follow. A dirty data_return of a page the pager supplied read-only and
 * never granted is refused (the kernel broke the lock). Pages the kernel made
 * without asking (whole-page writes of pages it never read) are taken and
 * counted as blind writes. Grants end with the object (terminate): the next
 * mapping starts read-only again.
 *
 * It accepts one emmd connection at a time on SOCKET (emmd: pager =
 * unix:SOCKET); SIGTERM or SIGINT ends it. Counters go to DIR/unlock-pager.stats
 * whenever an object terminates and when the pager exits.
 *
 * Threading (see emm-pager(3)): callbacks for one object never overlap, so an
 * object's grant map needs no lock; the counters are shared: atomics.
 */
#include <emm/pager.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PS EMM_PAGER_PAGE_SIZE

struct object {
    int fd;
    uint64_t id;
    uint8_t *state; /* per page: 0 never supplied, 1 supplied read-only, 2 granted */
    uint64_t npages;
};

enum { PAGE_UNSEEN = 0, PAGE_READONLY = 1, PAGE_GRANTED = 2 };

static const char *dir;
static atomic_uint_fast64_t n_grants, n_completed, n_returned, n_refused, n_blind, n_requests;

static void
write_stats(void)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/unlock-pager.stats", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f,
            "requests %" PRIuFAST64 "\ngrants %" PRIuFAST64 "\nlock_completed %" PRIuFAST64
            "\nreturned %" PRIuFAST64 "\nblind %" PRIuFAST64 "\nrefused %" PRIuFAST64 "\n",
            atomic_load(&n_requests), atomic_load(&n_grants), atomic_load(&n_completed),
            atomic_load(&n_returned), atomic_load(&n_blind), atomic_load(&n_refused));
    fclose(f);
    rename(tmp, path);
}

/* The state byte of page idx, growing the map; NULL on no memory. */
static uint8_t *
page_state(struct object *o, uint64_t idx)
{
    if (idx >= o->npages) {
        uint64_t n = o->npages ? o->npages : 64;
        while (n <= idx)
            n *= 2;
        uint8_t *s = realloc(o->state, n);
        if (s == NULL)
            return NULL;
        memset(s + o->npages, 0, n - o->npages);
        o->state = s;
        o->npages = n;
    }
    return &o->state[idx];
}

static int
object_open(void *ctx, uint64_t id, void **object_ctx)
{
    (void)ctx;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%" PRIu64, dir, id);
    struct object *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    o->id = id;
    o->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (o->fd < 0) {
        int rc = -errno;
        fprintf(stderr, "unlock-pager: %s: %s\n", path, strerror(errno));
        free(o);
        return rc;
    }
    *object_ctx = o;
    return 0;
}

static void
object_close(void *ctx, struct emm_pager_object *obj)
{
    (void)ctx;
    struct object *o = emm_pager_object_ctx(obj);
    if (o == NULL)
        return;
    close(o->fd);
    free(o->state);
    free(o);
}

static int
on_init(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    (void)m;
    /* Keep pages cached; one page per data_return keeps the grant map simple. */
    return emm_pager_ready(obj, EMM_PAGER_F_MAY_CACHE, EMM_PAGER_COPY_DELAY);
}

static int
on_data_request(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    struct object *o = emm_pager_object_ctx(obj);
    void *buf = calloc(1, m->length);
    if (buf == NULL)
        return -ENOMEM;
    ssize_t n = pread(o->fd, buf, m->length, (off_t)m->offset);
    if (n < 0) {
        int rc = -errno;
        free(buf);
        return rc; /* the library answers data_error */
    }
    /* Writable only if every page of the range was granted (and not revoked). */
    int all_granted = 1;
    for (uint64_t i = 0; i < m->length / PS; i++) {
        uint8_t *st = page_state(o, m->offset / PS + i);
        if (st == NULL) {
            free(buf);
            return -ENOMEM;
        }
        if (*st != PAGE_GRANTED) {
            all_granted = 0;
            *st = PAGE_READONLY;
        }
    }
    uint32_t lock = all_granted ? EMM_PAGER_PROT_NONE : EMM_PAGER_PROT_WRITE;
    atomic_fetch_add(&n_requests, 1);
    int rc = emm_pager_data_supply(obj, m->offset, m->length, buf, lock, 0, 0);
    free(buf);
    return rc;
}

static int
on_data_unlock(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    struct object *o = emm_pager_object_ctx(obj);
    if (!(m->access & EMM_PAGER_PROT_WRITE))
        return emm_pager_lock_request(obj, m->offset, m->length, EMM_PAGER_RETURN_NONE, 0,
                                      EMM_PAGER_PROT_NO_CHANGE, 0);
    for (uint64_t i = 0; i < m->length / PS; i++) {
        uint8_t *st = page_state(o, m->offset / PS + i);
        if (st == NULL)
            return -ENOMEM;
        if (*st != PAGE_GRANTED) {
            *st = PAGE_GRANTED;
            uint64_t g = atomic_fetch_add(&n_grants, 1) + 1;
            fprintf(stderr, "unlock-pager: object %" PRIu64 ": page %" PRIu64
                            " granted write (grant %" PRIu64 ")\n",
                    o->id, m->offset / PS + i, g);
        }
    }
    return emm_pager_lock_request(obj, m->offset, m->length, EMM_PAGER_RETURN_NONE, 0,
                                  EMM_PAGER_PROT_NONE, 1);
}

static int
on_lock_completed(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    (void)obj;
    (void)m;
    atomic_fetch_add(&n_completed, 1);
    return 0;
}

static int
on_data_return(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    struct object *o = emm_pager_object_ctx(obj);
    if (m->flags & EMM_PAGER_F_DIRTY) {
        for (uint64_t i = 0; i < m->length / PS; i++) {
            uint8_t *st = page_state(o, m->offset / PS + i);
            if (st == NULL)
                return -ENOMEM;
            if (*st == PAGE_READONLY) {
                atomic_fetch_add(&n_refused, 1);
                fprintf(stderr, "unlock-pager: object %" PRIu64 ": refused a dirty page %" PRIu64
                                " that was never granted write\n",
                        o->id, m->offset / PS + i);
                return -EACCES;
            }
            if (*st == PAGE_UNSEEN)
                atomic_fetch_add(&n_blind, 1);
        }
        ssize_t n = pwrite(o->fd, m->data, m->length, (off_t)m->offset);
        if (n < 0 || (uint64_t)n != m->length)
            return n < 0 ? -errno : -EIO;
    }
    atomic_fetch_add(&n_returned, m->length / PS);
    return 0; /* the library answers data_return_completed(0) */
}

static int
on_synchronize(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    (void)m;
    struct object *o = emm_pager_object_ctx(obj);
    return fsync(o->fd) < 0 ? -errno : 0;
}

static int
on_discard(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    struct object *o = emm_pager_object_ctx(obj);
    (void)o;
    (void)m;
    return 0; /* the file keeps its bytes: discarded pages are the kernel's concern */
}

static int
on_terminate(struct emm_pager_object *obj, const struct emm_pager_msg *m)
{
    (void)m;
    struct object *o = emm_pager_object_ctx(obj);
    fsync(o->fd);
    write_stats(); /* object_close follows: the grant map goes with the object */
    return 0;
}

static const struct emm_pager_ops ops = {
    .struct_size = sizeof(struct emm_pager_ops),
    .api_version = EMM_PAGER_API_VERSION,
    .object_open = object_open,
    .object_close = object_close,
    .init = on_init,
    .data_request = on_data_request,
    .data_unlock = on_data_unlock,
    .data_return = on_data_return,
    .lock_completed = on_lock_completed,
    .synchronize = on_synchronize,
    .discard = on_discard,
    .terminate = on_terminate,
};

/* ---- main: one connection at a time; a signal thread ends it ---- */

static pthread_mutex_t cur_lock = PTHREAD_MUTEX_INITIALIZER;
static struct emm_pager *cur;
static int stopping, lfd = -1;

static void *
signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    sigwait(set, &sig);
    pthread_mutex_lock(&cur_lock);
    stopping = 1;
    shutdown(lfd, SHUT_RDWR); /* wakes accept */
    if (cur != NULL)
        emm_pager_shutdown(cur);
    pthread_mutex_unlock(&cur_lock);
    return NULL;
}

int
main(int argc, char **argv)
{
    const char *sock = NULL;
    unsigned threads = 2;
    int c;
    while ((c = getopt(argc, argv, "s:d:t:")) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'd': dir = optarg; break;
        case 't': threads = (unsigned)atoi(optarg); break;
        default: goto usage;
        }
    }
    if (sock == NULL || dir == NULL) {
    usage:
        fprintf(stderr, "usage: %s -s SOCKET -d DIR [-t THREADS]\n", argv[0]);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread: the signal thread takes them */
    signal(SIGPIPE, SIG_IGN);

    lfd = emm_pager_listen(sock);
    if (lfd < 0) {
        fprintf(stderr, "unlock-pager: listen on %s: %s\n", sock, strerror(-lfd));
        return 1;
    }
    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_main, &set);
    fprintf(stderr, "unlock-pager: libemm-pager %s, serving %s on %s\n", emm_pager_version(),
            dir, sock);

    int status = 0;
    for (;;) {
        struct emm_pager *p = NULL;
        int rc = emm_pager_create(&ops, NULL, threads, &p);
        if (rc < 0) {
            fprintf(stderr, "unlock-pager: emm_pager_create: %s\n", strerror(-rc));
            status = 1;
            break;
        }
        rc = emm_pager_accept(p, lfd, (uint32_t)-1);
        pthread_mutex_lock(&cur_lock);
        int stop = stopping;
        if (rc == 0 && !stop)
            cur = p;
        pthread_mutex_unlock(&cur_lock);
        if (rc == 0 && !stop) {
            rc = emm_pager_wait(p);
            fprintf(stderr, "unlock-pager: connection ended (%s)\n",
                    rc == 0 ? "closed" : strerror(-rc));
            pthread_mutex_lock(&cur_lock);
            cur = NULL;
            stop = stopping;
            pthread_mutex_unlock(&cur_lock);
        } else if (rc < 0 && !stop) {
            fprintf(stderr, "unlock-pager: accept: %s\n", strerror(-rc));
        }
        emm_pager_free(p);
        write_stats();
        if (stop)
            break;
    }
    close(lfd);
    unlink(sock);
    pthread_cancel(sig_thread);
    pthread_join(sig_thread, NULL);
    fprintf(stderr, "unlock-pager: %" PRIuFAST64 " grants, %" PRIuFAST64 " pages returned\n",
            atomic_load(&n_grants), atomic_load(&n_returned));
    return status;
}
