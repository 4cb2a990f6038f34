/*
 * ctl_server.c - emmd's control socket (interface in ctl_server.h, wire format
 * in client/ctl_wire.h). Owns the listening socket, its file, and a libuv loop on
 * one thread that serves every connection at once: it accepts, checks the peer
 * (SO_PEERCRED), reads one bounded request under a per-connection deadline,
 * hands the command to libuv's worker pool (uv_queue_work) so that a slow one
 * (flush waits on the kernel) never holds up the others, and writes the reply.
 * At most CTL_SERVER_MAX_CLIENTS connections are held; the next is refused with
 * a one-line error.
 *
 * Locking: none. Connections, their buffers and the server's fields are touched
 * only on the loop thread, except a connection's argv/body/rc, which its worker
 * owns between uv_queue_work and the after-work callback (libuv orders these).
 * ctl_server_stop wakes the loop with uv_async_send and joins the thread before
 * tearing anything down.
 */
#include "ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "ctl_wire.h"
#include "log.h"

#define CTL_BACKLOG          128
#define CTL_REPLY_TIMEOUT_MS 30000 /* time a client has to take its whole reply */

enum conn_state {
    CONN_READ,   /* reading the request, under CTL_WIRE_TIMEOUT_MS */
    CONN_WORK,   /* the command runs on a worker */
    CONN_WRITE,  /* the reply is being written, under CTL_REPLY_TIMEOUT_MS */
    CONN_CLOSING /* handles closing; freed when both are closed */
};

struct ctl_conn {
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_work_t work;
    uv_write_t wreq;
    struct ctl_server *s;
    struct ctl_conn *prev, *next; /* the server's live connections */
    enum conn_state state;
    int denied;  /* peer uid not allowed: take its request, answer "permission denied" */
    int handles; /* of pipe and timer, not yet closed */
    pid_t pid;
    uid_t uid;
    char *buf; /* the request: len bytes of cap (at most CTL_WIRE_MAX_LINE + 1) */
    size_t len, cap;
    char *argv[CTL_WIRE_MAX_ARGS + 1];
    int argc;
    char *body; /* the command's output (worker) */
    size_t bodylen;
    int rc;
    char head[sizeof "error: \n" + CTL_WIRE_MAX_REASON];
};

/* A connection refused because the server is full: it lives for one write. */
struct ctl_refusal {
    uv_pipe_t pipe;
    int spare; /* the server's preallocated one, used when malloc fails */
};

struct ctl_server {
    char *path;
    int fd;    /* listening socket until the loop owns it */
    int bound; /* the socket file at path is ours: unlink it on stop */
    dev_t dev; /* identity of the socket file we linked at path, so that */
    ino_t ino; /* stop never unlinks a successor's socket */
    uv_loop_t loop;
    int loop_ready;
    uv_pipe_t listener;
    uv_async_t stop_async;
    struct ctl_refusal spare;
    int spare_busy;
    pthread_t thread;
    ctl_command_fn fn;
    void *ctx;
    uid_t euid;
    int stopping;
    int refusing; /* refusals logged since the server was last below the cap */
    unsigned nclients;
    struct ctl_conn *conns;
};

static void conn_close(struct ctl_conn *c);

static void
conn_freed(uv_handle_t *h)
{
    struct ctl_conn *c = h->data;
    struct ctl_server *s = c->s;

    if (--c->handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->buf);
    free(c->body);
    free(c);
}

static void
conn_close(struct ctl_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    /* Counted out now, before its socket closes: a client that sees the EOF and
     * connects again must find the place free. Its memory goes within this
     * loop iteration. */
    c->s->nclients--;
    uv_close((uv_handle_t *)&c->pipe, conn_freed);
    uv_close((uv_handle_t *)&c->timer, conn_freed);
}

static void
on_written(uv_write_t *req, int status)
{
    struct ctl_conn *c = req->data;

    if (status < 0 && status != UV_ECANCELED)
        emm_warn("ctl: pid %d uid %u: reply not sent: %s", (int)c->pid, (unsigned)c->uid,
                 uv_strerror(status));
    conn_close(c);
}

static void
on_reply_timeout(uv_timer_t *t)
{
    struct ctl_conn *c = t->data;

    emm_warn("ctl: pid %d uid %u: reply not taken within %d ms; closing", (int)c->pid,
             (unsigned)c->uid, CTL_REPLY_TIMEOUT_MS);
    conn_close(c);
}

/* Writes head then body (not copied: they live in c until it is freed). */
static void
send_reply(struct ctl_conn *c, const char *head, size_t headlen, const char *body,
           size_t bodylen)
{
    uv_buf_t bufs[2] = {uv_buf_init((char *)head, (unsigned)headlen),
                        uv_buf_init((char *)body, (unsigned)bodylen)};
    int rc;

    c->state = CONN_WRITE;
    c->wreq.data = c;
    uv_timer_start(&c->timer, on_reply_timeout, CTL_REPLY_TIMEOUT_MS, 0);
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->pipe, bufs, bodylen ? 2 : 1, on_written);
    if (rc < 0) {
        emm_warn("ctl: pid %d uid %u: reply not sent: %s", (int)c->pid, (unsigned)c->uid,
                 uv_strerror(rc));
        conn_close(c);
    }
}

/* Formats "error: REASON\n" into line (CTL_WIRE_MAX_REASON + 9 bytes): REASON's
 * first line only, non-printables as '?'. Returns its length. */
static size_t
format_error(char *line, const char *reason)
{
    size_t n = strlen("error: "), i;

    memcpy(line, "error: ", n);
    for (i = 0; reason[i] && reason[i] != '\n' && i < CTL_WIRE_MAX_REASON - 1; i++) {
        unsigned char c = (unsigned char)reason[i];
        line[n++] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
    }
    line[n++] = '\n';
    return n;
}

static void
send_error(struct ctl_conn *c, const char *reason)
{
    size_t n = format_error(c->head, reason);

    send_reply(c, c->head, n, NULL, 0);
}

/* ---- the command, on a worker thread ---- */

static void
work_run(uv_work_t *w)
{
    struct ctl_conn *c = w->data;
    FILE *out = open_memstream(&c->body, &c->bodylen);

    if (!out) {
        emm_err("ctl: %s: open_memstream: %s", c->argv[0], strerror(errno));
        c->rc = -ENOMEM;
        return;
    }
    c->rc = c->s->fn(c->s->ctx, c->argc, c->argv, out);
    if (fclose(out) != 0 && c->rc >= 0) {
        emm_err("ctl: %s: reply buffer: %s", c->argv[0], strerror(errno));
        c->rc = -ENOMEM;
        c->bodylen = 0;
    }
}

static void
work_done(uv_work_t *w, int status)
{
    struct ctl_conn *c = w->data;

    if (status == UV_ECANCELED || c->s->stopping) {
        conn_close(c);
        return;
    }
    if (c->rc < 0) {
        const char *reason = c->body && c->bodylen && c->body[0] != '\n' && c->body[0] != '\0'
                                 ? c->body
                                 : strerror(-c->rc);
        emm_debug("ctl: pid %d uid %u: %s failed: %s", (int)c->pid, (unsigned)c->uid,
                  c->argv[0], strerror(-c->rc));
        send_error(c, reason);
    } else {
        send_reply(c, "ok\n", 3, c->body, c->bodylen);
    }
}

/* ---- reading the request ---- */

static void
request_done(struct ctl_conn *c)
{
    char why[CTL_WIRE_MAX_REASON];
    int rc;

    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_timer_stop(&c->timer);
    if (c->denied) {
        send_error(c, "permission denied");
        return;
    }
    if (c->len == 0) { /* e.g. another daemon probing whether we are alive */
        emm_debug("ctl: pid %d uid %u: closed without a request", (int)c->pid, (unsigned)c->uid);
        conn_close(c);
        return;
    }
    rc = ctl_wire_decode(c->buf, c->len, c->argv, &c->argc, why, sizeof why);
    if (rc < 0) {
        emm_warn("ctl: pid %d uid %u: bad request: %s", (int)c->pid, (unsigned)c->uid, why);
        send_error(c, why);
        return;
    }
    emm_debug("ctl: pid %d uid %u: %s (%d args)", (int)c->pid, (unsigned)c->uid, c->argv[0],
              c->argc - 1);
    c->state = CONN_WORK;
    c->work.data = c;
    rc = uv_queue_work(&c->s->loop, &c->work, work_run, work_done);
    if (rc < 0) {
        emm_err("ctl: pid %d uid %u: uv_queue_work: %s", (int)c->pid, (unsigned)c->uid,
                uv_strerror(rc));
        send_error(c, uv_strerror(rc));
    }
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ctl_conn *c = h->data;
    size_t max = CTL_WIRE_MAX_LINE + 1; /* one more, to see an over-long line as such */

    (void)hint;
    if (c->len == c->cap && c->cap < max) {
        size_t ncap = c->cap ? c->cap * 2 : 512;
        char *nbuf;

        if (ncap > max)
            ncap = max;
        nbuf = realloc(c->buf, ncap);
        if (nbuf) {
            c->buf = nbuf;
            c->cap = ncap;
        }
    }
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct ctl_conn *c = st->data;

    (void)buf;
    if (c->state != CONN_READ)
        return;
    if (n > 0) {
        int nl = memchr(c->buf + c->len, '\n', (size_t)n) != NULL;

        c->len += (size_t)n;
        if (nl || c->len == CTL_WIRE_MAX_LINE + 1)
            request_done(c);
        return;
    }
    if (n == UV_EOF) {
        request_done(c);
    } else if (n < 0) {
        emm_warn("ctl: pid %d uid %u: receive: %s", (int)c->pid, (unsigned)c->uid,
                 n == UV_ENOBUFS ? "out of memory" : uv_strerror((int)n));
        conn_close(c);
    }
}

static void
on_request_timeout(uv_timer_t *t)
{
    struct ctl_conn *c = t->data;
    char why[CTL_WIRE_MAX_REASON];

    uv_read_stop((uv_stream_t *)&c->pipe);
    if (c->denied) {
        send_error(c, "permission denied");
        return;
    }
    emm_warn("ctl: pid %d uid %u: request not complete within %d ms", (int)c->pid,
             (unsigned)c->uid, CTL_WIRE_TIMEOUT_MS);
    snprintf(why, sizeof why, "request not complete within %d ms", CTL_WIRE_TIMEOUT_MS);
    send_error(c, why);
}

/* ---- accepting ---- */

static void
refusal_freed(uv_handle_t *h)
{
    struct ctl_refusal *r = h->data;
    struct ctl_server *s = h->loop->data;

    if (r->spare)
        s->spare_busy = 0;
    else
        free(r);
}

/* Takes the pending connection and closes it after one line (no reply if even
 * that fails). Returns -1 if it could not be taken (no memory, spare in use). */
static int
refuse(struct ctl_server *s, const char *line)
{
    struct ctl_refusal *r = calloc(1, sizeof *r);
    uv_buf_t b = uv_buf_init((char *)line, (unsigned)strlen(line));

    if (!r) {
        if (s->spare_busy)
            return -1;
        s->spare_busy = 1;
        r = &s->spare;
        r->spare = 1;
    }
    uv_pipe_init(&s->loop, &r->pipe, 0);
    r->pipe.data = r;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&r->pipe) == 0)
        (void)uv_try_write((uv_stream_t *)&r->pipe, &b, 1); /* a fresh socket has room */
    uv_close((uv_handle_t *)&r->pipe, refusal_freed);
    return 0;
}

static void
on_connection(uv_stream_t *l, int status)
{
    struct ctl_server *s = l->data;
    struct ctl_conn *c;
    struct ucred cr;
    socklen_t crlen = sizeof cr;
    uv_os_fd_t fd;
    char line[128];
    int rc;

    if (status < 0) {
        emm_err("ctl: %s: accept: %s", s->path, uv_strerror(status));
        return;
    }
    if (s->nclients >= CTL_SERVER_MAX_CLIENTS) {
        if (!s->refusing++)
            emm_warn("ctl: %s: %u connections open; refusing more", s->path, s->nclients);
        snprintf(line, sizeof line, "error: too many clients (limit %d); try again\n",
                 CTL_SERVER_MAX_CLIENTS);
        if (refuse(s, line) < 0)
            emm_err("ctl: %s: out of memory refusing a connection", s->path);
        return;
    }
    s->refusing = 0;
    c = calloc(1, sizeof *c);
    if (!c) {
        emm_err("ctl: %s: out of memory for a connection", s->path);
        refuse(s, "error: out of memory\n");
        return;
    }
    c->s = s;
    uv_pipe_init(&s->loop, &c->pipe, 0);
    uv_timer_init(&s->loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    c->handles = 2;
    c->state = CONN_READ;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nclients++;
    if (uv_accept(l, (uv_stream_t *)&c->pipe) < 0 || uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0) {
        emm_err("ctl: %s: accept failed", s->path);
        conn_close(c);
        return;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
        emm_err("ctl: SO_PEERCRED: %s", strerror(errno));
        conn_close(c);
        return;
    }
    c->pid = cr.pid;
    c->uid = cr.uid;
    if (cr.uid != 0 && cr.uid != s->euid) {
        emm_warn("ctl: pid %d uid %u refused: permission denied (only root or uid %u)",
                 (int)cr.pid, (unsigned)cr.uid, (unsigned)s->euid);
        /* Take the request (never decoded) before answering, so the peer's
         * send does not fail with EPIPE before it can read why. */
        c->denied = 1;
    }
    uv_timer_start(&c->timer, on_request_timeout, CTL_WIRE_TIMEOUT_MS, 0);
    rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc < 0) {
        emm_err("ctl: pid %d uid %u: read: %s", (int)c->pid, (unsigned)c->uid, uv_strerror(rc));
        conn_close(c);
    }
}

/* ---- stopping ---- */

static void
on_stop(uv_async_t *a)
{
    struct ctl_server *s = a->data;
    struct ctl_conn *c;

    s->stopping = 1;
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->stop_async, NULL);
    for (c = s->conns; c; c = c->next) {
        if (c->state != CONN_WORK)
            conn_close(c);
        else
            uv_cancel((uv_req_t *)&c->work); /* a running command finishes first */
    }
}

static void *
loop_thread(void *arg)
{
    struct ctl_server *s = arg;

    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/*
 * Looks at what is at path now: nothing (0), a stale socket nobody listens on
 * (unlinked, 0), a live one (-EADDRINUSE) or something else (-EEXIST).
 */
static int
clear_stale(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        rc = -errno;
        emm_err("ctl: %s: %s", path, strerror(-rc));
        return rc;
    }
    if (!S_ISSOCK(st.st_mode)) {
        emm_err("ctl: %s exists and is not a socket; not replacing it", path);
        return -EEXIST;
    }
    strcpy(sa.sun_path, path); /* length checked by the caller */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        emm_err("ctl: socket: %s", strerror(-rc));
        return rc;
    }
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
    close(fd);
    if (rc == 0 || rc == -EAGAIN) { /* EAGAIN: backlog full, so alive */
        emm_err("ctl: %s: another daemon is listening on it", path);
        return -EADDRINUSE;
    }
    if (rc != -ECONNREFUSED) {
        emm_err("ctl: %s: connect: %s", path, strerror(-rc));
        return rc;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        rc = -errno;
        emm_err("ctl: %s: removing stale socket: %s", path, strerror(-rc));
        return rc;
    }
    emm_notice("ctl: %s: removed stale socket", path);
    return 0;
}

/*
 * Creates the listening socket at path with mode 0600 without a moment of wider
 * access. fchmod before bind does nothing for AF_UNIX on Linux, and umask is
 * process-wide: tightening it around bind would also hit files and directories
 * other emmd threads create meanwhile (a mkdir would lose its x bits). So bind
 * inside a fresh mkdtemp directory (mode 0700, ours) next to path, chmod the
 * socket there, then link(2) it into place: link is atomic and never replaces an
 * existing name, so a daemon that raced us in keeps its socket (-EADDRINUSE).
 */
static int
create_socket(struct ctl_server *s)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *slash = strrchr(s->path, '/');
    size_t dirlen = slash ? (size_t)(slash - s->path) + 1 : 0;
    char tmpdir[PATH_MAX];
    const char *step;
    struct stat st;
    int fd = -1, rc;

    if (dirlen + sizeof ".ctl-XXXXXX/s" > sizeof sa.sun_path) {
        emm_err("ctl: %s: directory name too long for a socket path (limit %zu bytes)", s->path,
                sizeof sa.sun_path - sizeof ".ctl-XXXXXX/s");
        return -ENAMETOOLONG;
    }
    snprintf(tmpdir, sizeof tmpdir, "%.*s.ctl-XXXXXX", (int)dirlen, s->path);
    if (!mkdtemp(tmpdir)) {
        rc = -errno;
        emm_err("ctl: %s: mkdtemp: %s", tmpdir, strerror(-rc));
        return rc;
    }
    memcpy(sa.sun_path, tmpdir, strlen(tmpdir)); /* fits: checked above */
    memcpy(sa.sun_path + strlen(tmpdir), "/s", 3);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        emm_err("ctl: socket: %s", strerror(-rc));
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        step = "bind";
    else if (chmod(sa.sun_path, 0600) < 0)
        step = "chmod";
    else if (listen(fd, CTL_BACKLOG) < 0)
        step = "listen";
    else
        step = NULL;
    if (step) {
        rc = -errno;
        emm_err("ctl: %s: %s: %s", sa.sun_path, step, strerror(-rc));
        goto out;
    }
    if (link(sa.sun_path, s->path) < 0) {
        rc = errno == EEXIST ? -EADDRINUSE : -errno;
        emm_err("ctl: %s: link: %s", s->path, strerror(errno));
        goto out;
    }
    if (lstat(s->path, &st) < 0) {
        rc = -errno;
        emm_err("ctl: %s: %s", s->path, strerror(-rc));
        unlink(s->path);
        goto out;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->fd = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    unlink(sa.sun_path); /* may not exist yet; harmless */
    rmdir(tmpdir);
    return rc;
}

static void
unlink_ours(struct ctl_server *s)
{
    struct stat st;

    if (s->bound && lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
}

static void
server_free(struct ctl_server *s)
{
    if (s->loop_ready) {
        int rc;

        /* handles closed by on_stop (or never started): let their callbacks run */
        if (!uv_is_closing((uv_handle_t *)&s->listener))
            uv_close((uv_handle_t *)&s->listener, NULL);
        if (!uv_is_closing((uv_handle_t *)&s->stop_async))
            uv_close((uv_handle_t *)&s->stop_async, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        rc = uv_loop_close(&s->loop);
        if (rc < 0)
            emm_err("ctl: closing the loop: %s", uv_strerror(rc));
    }
    if (s->fd >= 0)
        close(s->fd);
    unlink_ours(s);
    free(s->path);
    free(s);
}

int
ctl_server_start(const char *path, ctl_command_fn fn, void *ctx, struct ctl_server **out)
{
    struct sockaddr_un sa;
    struct ctl_server *s;
    sigset_t all, old;
    int rc;

    *out = NULL;
    if (!path || !*path) {
        emm_err("ctl: no control socket path");
        return -EINVAL;
    }
    if (strlen(path) >= sizeof sa.sun_path) {
        emm_err("ctl: control socket path %s is over %zu bytes", path, sizeof sa.sun_path - 1);
        return -ENAMETOOLONG;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    s->fn = fn;
    s->ctx = ctx;
    s->euid = geteuid();
    s->path = strdup(path);
    if (!s->path) {
        server_free(s);
        return -ENOMEM;
    }
    rc = clear_stale(path);
    if (rc == 0)
        rc = create_socket(s);
    if (rc < 0) {
        server_free(s);
        return rc;
    }
    s->bound = 1;
    rc = uv_loop_init(&s->loop);
    if (rc < 0) {
        emm_err("ctl: uv_loop_init: %s", uv_strerror(rc));
        server_free(s);
        return -ENOMEM;
    }
    s->loop.data = s;
    uv_pipe_init(&s->loop, &s->listener, 0);
    uv_async_init(&s->loop, &s->stop_async, on_stop);
    s->listener.data = s->stop_async.data = s;
    s->loop_ready = 1;
    rc = uv_pipe_open(&s->listener, s->fd);
    if (rc == 0)
        s->fd = -1; /* the pipe handle owns it now */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, CTL_BACKLOG, on_connection);
    if (rc < 0) {
        emm_err("ctl: %s: listen: %s", path, uv_strerror(rc));
        server_free(s);
        return rc == UV_ENOMEM ? -ENOMEM : -EIO;
    }
    /* Signals are for the daemon's main thread, never the loop or its workers
     * (libuv starts its worker threads from the loop thread: they inherit this). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&s->thread, NULL, loop_thread, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        emm_err("ctl: pthread_create: %s", strerror(-rc));
        server_free(s);
        return rc;
    }
    emm_info("ctl: listening on %s", path);
    *out = s;
    return 0;
}

void
ctl_server_stop(struct ctl_server *s)
{
    if (!s)
        return;
    uv_async_send(&s->stop_async); /* async-signal-safe; on_stop closes everything */
    pthread_join(s->thread, NULL);
    server_free(s);
}
