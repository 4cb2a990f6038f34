/*
 * ctl_client.h - libemm-client: send one request to emmd's control socket and
 * collect the reply (wire format in ctl_wire.h). No shared state: calls from
 * several threads are independent.
 */
#ifndef EMM_CTL_CLIENT_H
#define EMM_CTL_CLIENT_H

#define CTL_CLIENT_TIMEOUT_MS 30000 /* whole exchange, connect to EOF */

/*
 * Sends argv[0..argc) (argv[0] is the verb) to the daemon at socket_path and
 * waits for the reply.
 *
 *   0           "ok": *reply_body is the body, NUL-terminated (it may also hold
 *               NUL bytes; it is the whole body either way).
 *   -EREMOTEIO  "error: REASON": *error_text is REASON.
 *   other < 0   local failure (bad request words, connect, I/O, timeout, bad
 *               reply): *error_text says which step failed, e.g.
 *               "connect: Connection refused".
 *
 * reply_body and error_text may be NULL; whatever is returned through them is
 * malloc'd (or NULL) and belongs to the caller.
 */
int ctl_request(const char *socket_path, int argc, char **argv, char **reply_body,
                char **error_text);

#endif
