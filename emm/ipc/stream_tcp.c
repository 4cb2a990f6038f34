/*
 * stream_tcp.c - TCP sockets for the stream transport between hosts, and the
 * plain io (see stream_tcp.h). The plain io holds only its fd: read and
 * writev are the socket's, shutdown is shutdown(2), close frees it.
 *
 * Locking: none; one io belongs to one connection.
 */
#include "stream_tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
emm_tcp_parse(const char *hostport, char *host, size_t hostlen, char *port, size_t portlen,
              const char **why)
{
    const char *colon = strrchr(hostport, ':');
    const char *h = hostport;
    size_t hl;
    if (colon == NULL || colon == hostport || colon[1] == '\0') {
        *why = "want HOST:PORT";
        return -EINVAL;
    }
    hl = (size_t)(colon - hostport);
    if (h[0] == '[') { /* [v6]:port */
        if (hl < 3 || h[hl - 1] != ']') {
            *why = "want [IPV6]:PORT";
            return -EINVAL;
        }
        h++;
        hl -= 2;
    }
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || p == 0 || p > 65535) {
        *why = "port must be 1..65535";
        return -EINVAL;
    }
    if (hl >= hostlen || strlen(colon + 1) >= portlen) {
        *why = "address too long";
        return -EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, portlen, "%lu", p);
    return 0;
}

static int
resolve(const char *hostport, int passive, struct addrinfo **out)
{
    char host[256], port[8];
    const char *why;
    if (emm_tcp_parse(hostport, host, sizeof(host), port, sizeof(port), &why) < 0)
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = passive ? AI_PASSIVE : 0};
    int rc = getaddrinfo(host, port, &hints, out);
    if (rc != 0)
        return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
    return 0;
}

int
emm_tcp_listen(const char *hostport)
{
    struct addrinfo *ai;
    int rc = resolve(hostport, 1, &ai);
    if (rc < 0)
        return rc;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        freeaddrinfo(ai);
        return rc;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        rc = -errno;
        close(fd);
        fd = rc;
    }
    freeaddrinfo(ai);
    return fd;
}

void
emm_tcp_tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

int
emm_tcp_connect(const char *hostport, int timeout_ms)
{
    struct addrinfo *ai;
    int rc = resolve(hostport, 0, &ai);
    if (rc < 0)
        return rc;
    rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t elen = sizeof(err);
        int n = poll(&pfd, 1, timeout_ms);
        if (n <= 0)
            err = n == 0 ? ETIMEDOUT : errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            err = errno;
        if (err != 0) {
            rc = -err;
            close(fd);
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        emm_tcp_tune(fd);
        freeaddrinfo(ai);
        return fd;
    }
    freeaddrinfo(ai);
    return rc;
}

void
emm_tcp_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            port = ntohs(in6->sin6_port);
            snprintf(buf, len, "[%s]:%u", host, port);
            return;
        }
    }
    snprintf(buf, len, "%s:%u", host, port);
}

int
emm_tcp_peer_is_loopback(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

/* ---- the plain io -------------------------------------------------------- */

struct plain {
    struct emm_stream_io io;
    int fd;
};

static ssize_t
plain_read(void *ctx, void *buf, size_t len)
{
    struct plain *p = ctx;
    ssize_t r = read(p->fd, buf, len);
    return r < 0 ? -errno : r;
}

static ssize_t
plain_writev(void *ctx, const struct iovec *iov, int n)
{
    struct plain *p = ctx;
    ssize_t w = sendmsg(p->fd, &(struct msghdr){.msg_iov = (struct iovec *)iov,
                                                .msg_iovlen = (size_t)n},
                        MSG_NOSIGNAL);
    return w < 0 ? -errno : w;
}

static int
plain_wait(void *ctx, int timeout_ms)
{
    struct plain *p = ctx;
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    return n < 0 ? -errno : n;
}

static void
plain_shutdown(void *ctx)
{
    struct plain *p = ctx;
    shutdown(p->fd, SHUT_RDWR);
}

static void
plain_close(void *ctx)
{
    struct plain *p = ctx;
    close(p->fd);
    free(p);
}

int
emm_tcp_plain_io(int fd, struct emm_stream_io **out)
{
    struct plain *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        close(fd);
        return -ENOMEM;
    }
    emm_tcp_tune(fd);
    p->fd = fd;
    p->io = (struct emm_stream_io){plain_read, plain_writev, plain_wait, plain_shutdown,
                                   plain_close, p};
    *out = &p->io;
    return 0;
}
