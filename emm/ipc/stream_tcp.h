/*
 * stream_tcp.h - TCP for the stream transport (port_stream.h) between hosts:
 * "HOST:PORT" addresses, listening and connecting sockets, the peer's
 * address for log lines, and the plain (unencrypted) io that only loopback
 * tests may use. TLS sessions over these sockets are stream_tls.h's.
 *
 * Stateless apart from the io objects, each owned by one connection: no
 * locking here (the io's shutdown may be called from any thread).
 */
#ifndef EMM_STREAM_TCP_H
#define EMM_STREAM_TCP_H

#include <stddef.h>

#include "port_stream.h"

/* Splits "HOST:PORT" ("[v6]:PORT" too) and resolves it numerically or by
 * name. 0, or -EINVAL with *why set. */
int emm_tcp_parse(const char *hostport, char *host, size_t hostlen, char *port, size_t portlen,
                  const char **why);
/* A listening socket (SO_REUSEADDR) on HOST:PORT: fd, or -errno. */
int emm_tcp_listen(const char *hostport);
/* A connected socket (TCP_NODELAY, keepalive), within timeout_ms: fd or -errno. */
int emm_tcp_connect(const char *hostport, int timeout_ms);
/* TCP_NODELAY (every frame is a request or an answer: never wait for
 * Nagle) and keepalive, on an accepted socket. */
void emm_tcp_tune(int fd);
/* "127.0.0.1:40312" (or "[::1]:40312") of the socket's peer. */
void emm_tcp_peer_name(int fd, char *buf, size_t len);
/* 1 when the socket's peer is a loopback address. */
int emm_tcp_peer_is_loopback(int fd);
/* An io that reads and writes fd as it is (fd owned, closed by io->close). */
int emm_tcp_plain_io(int fd, struct emm_stream_io **out);

#endif
