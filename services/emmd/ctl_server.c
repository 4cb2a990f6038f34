/*
 * ctl_server.c - emmd's control socket (interface in ctl_server.h, wire format
 * in client/ctl_wire.h). Owns the listening socket, its file, a wake-up pipe and
 * the listener thread, which accepts, checks the peer, reads one request, runs
 * the command callback and writes the reply, one connection at a time.
 *
 * Locking: none. The struct is written by ctl_server_start before the thread
 * exists and read-only afterwards; ctl_server_stop wakes the thread through the
 * pipe and joins it before tearing anything down.
 */
#include "ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_wire.h"
#include "log.h"

#define CTL_BACKLOG 16

struct ctl_server {
    char *path;
    int fd;      /* listening socket, non-blocking */
    int wake[2]; /* pipe: ctl_server_stop writes a byte to end the listener */
    dev_t dev;   /* identity of the socket file we linked at path, so that */
    ino_t ino;   /* stop never unlinks a successor's socket */
    pthread_t thread;
    ctl_command_fn fn;
    void *ctx;
    uid_t euid;
};

/* The peer of the connection being served, for log lines. */
struct ctl_peer {
    int fd;
    pid_t pid;
    uid_t uid;
};

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline or a stop request: 0, -ETIMEDOUT,
 * -ECANCELED (stopping) or -errno. */
static int
wait_fd(struct ctl_server *s, int fd, short events, long long deadline)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = s->wake[0], .events = POLLIN}};

    for (;;) {
        long long left = deadline - now_ms();
        int n;

        if (left <= 0)
            return -ETIMEDOUT;
        n = poll(p, 2, (int)left);
        if (n == 0)
            return -ETIMEDOUT;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[1].revents)
            return -ECANCELED;
        return 0;
    }
}

/* Sends all of buf; gives up when the peer accepts nothing for the timeout. */
static int
send_all(struct ctl_server *s, int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        int rc;

        if (n >= 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = wait_fd(s, fd, POLLOUT, now_ms() + CTL_WIRE_TIMEOUT_MS);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void
send_reply(struct ctl_server *s, const struct ctl_peer *p, const char *head, size_t headlen,
           const char *body, size_t bodylen)
{
    int rc = send_all(s, p->fd, head, headlen);

    if (rc == 0 && bodylen)
        rc = send_all(s, p->fd, body, bodylen);
    if (rc < 0)
        emm_warn("ctl: pid %d uid %u: reply not sent: %s", (int)p->pid, (unsigned)p->uid,
                 strerror(-rc));
}

/* Sends "error: REASON\n"; REASON's first line only, non-printables as '?'. */
static void
send_error(struct ctl_server *s, const struct ctl_peer *p, const char *reason)
{
    char line[sizeof "error: \n" + CTL_WIRE_MAX_REASON];
    size_t n = strlen("error: "), i;

    memcpy(line, "error: ", n);
    for (i = 0; reason[i] && reason[i] != '\n' && i < CTL_WIRE_MAX_REASON - 1; i++) {
        unsigned char c = (unsigned char)reason[i];
        line[n++] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
    }
    line[n++] = '\n';
    send_reply(s, p, line, n, NULL, 0);
}

/*
 * Reads one request into buf (CTL_WIRE_MAX_LINE + 1 bytes, so that an over-long
 * line is seen as such): stops at the first '\n', a full buffer or EOF. The
 * whole request must arrive within CTL_WIRE_TIMEOUT_MS.
 */
static int
read_request(struct ctl_server *s, const struct ctl_peer *p, char *buf, size_t *lenp)
{
    long long deadline = now_ms() + CTL_WIRE_TIMEOUT_MS;
    size_t len = 0, cap = CTL_WIRE_MAX_LINE + 1;

    while (len < cap) {
        ssize_t n = recv(p->fd, buf + len, cap - len, 0);
        int rc;

        if (n > 0) {
            int nl = memchr(buf + len, '\n', (size_t)n) != NULL;
            len += (size_t)n;
            if (nl)
                break;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = wait_fd(s, p->fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
    *lenp = len;
    return 0;
}

static void
run_command(struct ctl_server *s, const struct ctl_peer *p, int argc, char **argv)
{
    char *body = NULL;
    size_t bodylen = 0;
    FILE *out = open_memstream(&body, &bodylen);
    int rc;

    if (!out) {
        emm_err("ctl: %s: open_memstream: %s", argv[0], strerror(errno));
        send_error(s, p, "out of memory");
        return;
    }
    rc = s->fn(s->ctx, argc, argv, out);
    if (fclose(out) != 0 && rc >= 0) {
        emm_err("ctl: %s: reply buffer: %s", argv[0], strerror(errno));
        rc = -ENOMEM;
        bodylen = 0;
    }
    if (rc < 0) {
        const char *reason =
            bodylen && body[0] != '\n' && body[0] != '\0' ? body : strerror(-rc);
        emm_debug("ctl: pid %d uid %u: %s failed: %s", (int)p->pid, (unsigned)p->uid, argv[0],
                  strerror(-rc));
        send_error(s, p, reason);
    } else {
        send_reply(s, p, "ok\n", 3, body, bodylen);
    }
    free(body);
}

static void
serve(struct ctl_server *s, int fd)
{
    char buf[CTL_WIRE_MAX_LINE + 1], why[CTL_WIRE_MAX_REASON];
    char *argv[CTL_WIRE_MAX_ARGS + 1];
    struct ctl_peer p = {.fd = fd};
    struct ucred cr;
    socklen_t crlen = sizeof cr;
    size_t len = 0;
    int argc, rc;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
        emm_err("ctl: SO_PEERCRED: %s", strerror(errno));
        return;
    }
    p.pid = cr.pid;
    p.uid = cr.uid;
    if (cr.uid != 0 && cr.uid != s->euid) {
        emm_warn("ctl: pid %d uid %u refused: permission denied (only root or uid %u)",
                 (int)cr.pid, (unsigned)cr.uid, (unsigned)s->euid);
        /* Take the request (never decoded) before answering, so the peer's
         * send does not fail with EPIPE before it can read why. */
        if (read_request(s, &p, buf, &len) != -ECANCELED)
            send_error(s, &p, "permission denied");
        return;
    }
    rc = read_request(s, &p, buf, &len);
    if (rc == -ECANCELED)
        return;
    if (rc == -ETIMEDOUT) {
        emm_warn("ctl: pid %d uid %u: request not complete within %d ms", (int)p.pid,
                 (unsigned)p.uid, CTL_WIRE_TIMEOUT_MS);
        snprintf(why, sizeof why, "request not complete within %d ms", CTL_WIRE_TIMEOUT_MS);
        send_error(s, &p, why);
        return;
    }
    if (rc < 0) {
        emm_warn("ctl: pid %d uid %u: receive: %s", (int)p.pid, (unsigned)p.uid, strerror(-rc));
        return;
    }
    if (len == 0) { /* e.g. another daemon probing whether we are alive */
        emm_debug("ctl: pid %d uid %u: closed without a request", (int)p.pid, (unsigned)p.uid);
        return;
    }
    rc = ctl_wire_decode(buf, len, argv, &argc, why, sizeof why);
    if (rc < 0) {
        emm_warn("ctl: pid %d uid %u: bad request: %s", (int)p.pid, (unsigned)p.uid, why);
        send_error(s, &p, why);
        return;
    }
    emm_debug("ctl: pid %d uid %u: %s (%d args)", (int)p.pid, (unsigned)p.uid, argv[0],
              argc - 1);
    run_command(s, &p, argc, argv);
}

static void *
listener(void *arg)
{
    struct ctl_server *s = arg;
    struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = s->wake[0], .events = POLLIN}};

    for (;;) {
        int c;

        if (poll(p, 2, -1) < 0) {
            if (errno != EINTR)
                emm_err("ctl: poll: %s", strerror(errno));
            continue;
        }
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                continue;
            emm_err("ctl: %s: accept: %s", s->path, strerror(errno));
            /* out of descriptors or memory: back off instead of spinning */
            if (poll(&p[1], 1, 100) > 0)
                break;
            continue;
        }
        serve(s, c);
        close(c);
    }
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

    if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
}

static void
server_free(struct ctl_server *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        unlink_ours(s);
    }
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
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
    s->fd = s->wake[0] = s->wake[1] = -1;
    s->fn = fn;
    s->ctx = ctx;
    s->euid = geteuid();
    s->path = strdup(path);
    if (!s->path) {
        server_free(s);
        return -ENOMEM;
    }
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        emm_err("ctl: pipe: %s", strerror(-rc));
        server_free(s);
        return rc;
    }
    rc = clear_stale(path);
    if (rc == 0)
        rc = create_socket(s);
    if (rc < 0) {
        server_free(s);
        return rc;
    }
    /* Signals are for the daemon's main thread, never the listener. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&s->thread, NULL, listener, s);
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
    while (write(s->wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(s->thread, NULL);
    server_free(s);
}
