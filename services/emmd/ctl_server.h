/*
 * ctl_server.h - emmd's control socket: a Unix stream socket (mode 0600) that
 * accepts one request per connection from a peer whose uid is root or emmd's own
 * (SO_PEERCRED), runs it, and writes the reply. Wire format in client/ctl_wire.h.
 *
 * Threads: one listener thread owns the socket; command handlers run on it, one
 * at a time, so handlers need only the locks of what they read.
 */
#ifndef EMM_CTL_SERVER_H
#define EMM_CTL_SERVER_H

#include <stdio.h>

/* Runs one command (argv[0] is the verb). Writes the reply body to out; returns
 * 0, or a negative errno with a one-line reason written to out. */
typedef int (*ctl_command_fn)(void *ctx, int argc, char **argv, FILE *out);

struct ctl_server;

/* Binds path (replacing a stale socket, refusing one a live daemon answers on). */
int ctl_server_start(const char *path, ctl_command_fn fn, void *ctx, struct ctl_server **out);
void ctl_server_stop(struct ctl_server *s); /* closes and unlinks the socket */

#endif
