/*
 * ctl_client.c - ctl_request: one connection, one request line, read the reply
 * to EOF, split it with ctl_wire_parse_reply. Owns nothing beyond the call; no
 * shared state, no locking.
 */
#include "ctl_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_wire.h"

static int
set_err(char **error_text, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
set_err(char **error_text, int rc, const char *fmt, ...)
{
    va_list ap;

    if (error_text) {
        va_start(ap, fmt);
        if (vasprintf(error_text, fmt, ap) < 0)
            *error_text = NULL;
        va_end(ap);
    }
    return rc;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline: 0, -ETIMEDOUT or -errno. */
static int
wait_fd(int fd, short events, long long deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        long long left = deadline - now_ms();
        int n;

        if (left <= 0)
            return -ETIMEDOUT;
        n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int
connect_to(const char *path, long long deadline, int *fdp, char **error_text)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    long long left = deadline - now_ms();
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    int fd, rc;

    if (strlen(path) >= sizeof sa.sun_path)
        return set_err(error_text, -ENAMETOOLONG, "connect: socket path longer than %zu bytes",
                       sizeof sa.sun_path - 1);
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return set_err(error_text, -errno, "socket: %s", strerror(errno));
    /* A blocking AF_UNIX connect waits for backlog room at most SO_SNDTIMEO. */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        rc = -errno;
        close(fd);
        if (rc == -EAGAIN || rc == -EINPROGRESS)
            rc = -ETIMEDOUT;
        return set_err(error_text, rc, "connect: %s", strerror(-rc));
    }
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        rc = -errno;
        close(fd);
        return set_err(error_text, rc, "fcntl: %s", strerror(-rc));
    }
    *fdp = fd;
    return 0;
}

static int
send_all(int fd, const char *buf, size_t len, long long deadline, char **error_text)
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
            return set_err(error_text, -errno, "send: %s", strerror(errno));
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return set_err(error_text, rc, "send: %s", strerror(-rc));
    }
    return 0;
}

/* Reads to EOF into a malloc'd buffer with one spare byte for a NUL. */
static int
recv_all(int fd, long long deadline, char **out, size_t *outlen, char **error_text)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap), *nbuf;
    int rc;

    if (!buf)
        return set_err(error_text, -ENOMEM, "receive: out of memory");
    for (;;) {
        ssize_t n;

        if (cap - len < 2) {
            if (cap > CTL_WIRE_MAX_REPLY) {
                free(buf);
                return set_err(error_text, -EMSGSIZE, "receive: reply over %u bytes",
                               CTL_WIRE_MAX_REPLY);
            }
            nbuf = realloc(buf, cap * 2);
            if (!nbuf) {
                free(buf);
                return set_err(error_text, -ENOMEM, "receive: out of memory");
            }
            buf = nbuf;
            cap *= 2;
        }
        n = recv(fd, buf + len, cap - len - 1, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        /* AF_UNIX reports ECONNRESET after the data if the server closed
         * without reading all of the request (it refused it early). */
        if (errno == ECONNRESET && len > 0)
            break;
        if (errno != EAGAIN) {
            rc = -errno;
            free(buf);
            return set_err(error_text, rc, "receive: %s", strerror(-rc));
        }
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0) {
            free(buf);
            return set_err(error_text, rc, "receive: %s", strerror(-rc));
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

int
ctl_request(const char *socket_path, int argc, char **argv, char **reply_body,
            char **error_text)
{
    long long deadline = now_ms() + CTL_CLIENT_TIMEOUT_MS;
    char line[CTL_WIRE_MAX_LINE], why[CTL_WIRE_MAX_REASON];
    const char *body, *reason;
    size_t linelen, bodylen, reasonlen, len = 0;
    char *reply = NULL;
    int fd = -1, rc;

    if (reply_body)
        *reply_body = NULL;
    if (error_text)
        *error_text = NULL;
    rc = ctl_wire_encode(argc, argv, line, sizeof line, &linelen, why, sizeof why);
    if (rc < 0)
        return set_err(error_text, rc, "request: %s", why);
    rc = connect_to(socket_path, deadline, &fd, error_text);
    if (rc < 0)
        return rc;
    rc = send_all(fd, line, linelen, deadline, error_text);
    if (rc == 0) {
        shutdown(fd, SHUT_WR);
        rc = recv_all(fd, deadline, &reply, &len, error_text);
    } else if ((rc == -EPIPE || rc == -ECONNRESET) &&
               recv_all(fd, deadline, &reply, &len, NULL) == 0) {
        /* The server answered (refused us) before reading the request: its
         * reply is still queued, and says more than the broken pipe. */
        if (len > 0) {
            rc = 0;
            if (error_text) {
                free(*error_text);
                *error_text = NULL;
            }
        } else {
            free(reply);
        }
    }
    close(fd);
    if (rc < 0)
        return rc;

    rc = ctl_wire_parse_reply(reply, len, &body, &bodylen, &reason, &reasonlen);
    if (rc == 0) {
        if (reply_body) {
            memmove(reply, body, bodylen);
            reply[bodylen] = '\0';
            *reply_body = reply;
            reply = NULL;
        }
    } else if (rc == -EREMOTEIO) {
        if (error_text) {
            *error_text = strndup(reason, reasonlen);
            if (!*error_text)
                rc = -ENOMEM;
        }
    } else {
        set_err(error_text, rc, "malformed reply (%zu bytes)", len);
    }
    free(reply);
    return rc;
}
