/*
 * ctl_server.h - emmd's control socket: a Unix stream socket (mode 0600) that
 * accepts one request per connection from a peer whose uid is root or emmd's own
 * (SO_PEERCRED), runs it, and writes the reply. Wire format in client/ctl_wire.h.
 *
 * Threads: one thread runs a libuv loop that serves all connections at once,
 * each with its own deadline (CTL_WIRE_TIMEOUT_MS to send the request). Command
 * handlers run on libuv's worker pool (UV_THREADPOOL_SIZE threads, 4 by default),
 * so several may run at the same time: a handler must be thread-safe, and may
 * block (flush waits on the kernel) without holding up other clients.
 */
#ifndef EMM_CTL_SERVER_H
#define EMM_CTL_SERVER_H

#include <stdio.h>

/* Runs one command (argv[0] is the verb). Writes the reply body to out; returns
 * 0, or a negative errno with a one-line reason written to out. */
typedef int (*ctl_command_fn)(void *ctx, int argc, char **argv, FILE *out);

/* Connections held at once; the next one is answered "error: too many clients". */
#define CTL_SERVER_MAX_CLIENTS 128

struct ctl_server;

/* Binds path (replacing a stale socket, refusing one a live daemon answers on). */
int ctl_server_start(const char *path, ctl_command_fn fn, void *ctx, struct ctl_server **out);
/* Stops the loop (uv_async_send), waits for running commands, closes every
 * connection, and closes and unlinks the socket. */
void ctl_server_stop(struct ctl_server *s);

#endif
