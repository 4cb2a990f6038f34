/*
 * ctl_wire.h - the control-socket wire format, shared by emmd's ctl_server and
 * the client library. Pure functions over caller-owned buffers: no I/O, no
 * allocation, no global state, so they are thread-safe and fuzzable.
 *
 * Protocol (one request per connection):
 *
 *   1. The client connects to emmd's Unix stream socket (mode 0600; the peer
 *      must be root or emmd's own uid, checked with SO_PEERCRED).
 *   2. It sends ONE request line: "verb arg arg...\n".
 *      - at most CTL_WIRE_MAX_LINE bytes, the final '\n' included;
 *      - printable ASCII only (0x20..0x7e) before the '\n';
 *      - words separated by single spaces, no leading or trailing space, no
 *        quoting or escaping (an argument cannot contain a space);
 *      - 1..CTL_WIRE_MAX_ARGS words, the verb included;
 *      - nothing after the '\n'.
 *   3. The server answers with a status line, then the body, then closes:
 *        "ok\n" BODY                    - BODY is the command's output, any bytes;
 *        "error: REASON\n"              - REASON is one printable line.
 *      The server gives up on a request that is not complete within
 *      CTL_WIRE_TIMEOUT_MS of the connection being accepted.
 *
 * Errors are negative errnos; where a reason text buffer is given it receives
 * one printable line naming what is wrong (and where).
 */
#ifndef EMM_CTL_WIRE_H
#define EMM_CTL_WIRE_H

#include <stddef.h>

#define CTL_WIRE_MAX_LINE   4096              /* request bytes, '\n' included */
#define CTL_WIRE_MAX_ARGS   16                /* words per request, verb included */
#define CTL_WIRE_MAX_REASON 512               /* bytes of an error reason, '\0' included */
#define CTL_WIRE_MAX_REPLY  (64u << 20)       /* client refuses longer replies */
#define CTL_WIRE_TIMEOUT_MS 2000              /* server: time allowed to send the request */

/*
 * Splits the request in line[0..len) in place: spaces and the final '\n' become
 * '\0', argv[0..*argc) point into line, argv[*argc] = NULL. len counts every byte
 * received, so data after the first '\n' is an error. Returns 0, or -EINVAL
 * (malformed), -EMSGSIZE (longer than CTL_WIRE_MAX_LINE) or -E2BIG (too many
 * words) with the reason in err. line is modified even on error.
 */
int ctl_wire_decode(char *line, size_t len, char *argv[CTL_WIRE_MAX_ARGS + 1], int *argc,
                    char *err, size_t errlen);

/*
 * Encodes argv[0..argc) as a request line (with '\n', without '\0') in buf and
 * sets *outlen to its length. Every word must be non-empty printable ASCII
 * without spaces. Returns 0, or -EINVAL, -E2BIG or -EMSGSIZE (line too long for
 * the protocol or for buflen) with the reason in err. CTL_WIRE_MAX_LINE bytes of
 * buf always suffice.
 */
int ctl_wire_encode(int argc, char *const argv[], char *buf, size_t buflen, size_t *outlen,
                    char *err, size_t errlen);

/*
 * Parses a complete reply reply[0..len) (read until EOF). On "ok\n" returns 0 and
 * sets *body and *bodylen to the rest. On "error: REASON\n" returns -EREMOTEIO and
 * sets *reason and *reasonlen to REASON (not NUL-terminated). Anything else is
 * -EPROTO. Pointers are into reply; unused outputs are set to NULL/0.
 */
int ctl_wire_parse_reply(const char *reply, size_t len, const char **body, size_t *bodylen,
                         const char **reason, size_t *reasonlen);

#endif
