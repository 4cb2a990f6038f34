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
 *      - words separated by single spaces, no leading or trailing space;
 *      - a word is bare or quoted:
 *          bare:   one or more printable bytes other than space, '"' and '\\';
 *          quoted: '"', then printable bytes other than '"' and '\\', or the
 *                  escapes \\ \" \n \t \r \xHH (two hex digits, not 00),
 *                  then '"' followed by a space or the '\n'. A quoted word may
 *                  be empty and may hold any byte but NUL;
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

#define CTL_WIRE_MAX_LINE   32768             /* request bytes, '\n' included: a
                                                 * PATH_MAX name fully \xHH-escaped */
#define CTL_WIRE_MAX_ARGS   16                /* words per request, verb included */
#define CTL_WIRE_MAX_REASON 512               /* bytes of an error reason, '\0' included */
#define CTL_WIRE_MAX_REPLY  (64u << 20)       /* client refuses longer replies */
#define CTL_WIRE_TIMEOUT_MS 2000              /* server: time allowed to send the request */

/*
 * Splits the request in line[0..len) in place: quoted words are unescaped,
 * every word is NUL-terminated, argv[0..*argc) point into line, argv[*argc] =
 * NULL. len counts every byte received, so data after the first '\n' is an
 * error. Returns 0, or -EINVAL (malformed: the reason names the offset),
 * -EMSGSIZE (longer than CTL_WIRE_MAX_LINE) or -E2BIG (too many words) with
 * the reason in err. line is modified even on error.
 */
int ctl_wire_decode(char *line, size_t len, char *argv[CTL_WIRE_MAX_ARGS + 1], int *argc,
                    char *err, size_t errlen);

/*
 * Encodes argv[0..argc) as a request line (with '\n', without '\0') in buf and
 * sets *outlen to its length. A word that is not a bare word is quoted (any
 * bytes may be sent). Returns 0, or -EINVAL, -E2BIG or -EMSGSIZE (line too long
 * for the protocol or for buflen) with the reason in err. CTL_WIRE_MAX_LINE
 * bytes of buf always suffice.
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

/*
 * Quoting of names for people and for the wire. ctl_wire_quote writes s as:
 *   - s itself if it is a plain word (non-empty; printable ASCII other than
 *     space, '"' and '\\'; with CTL_QUOTE_UTF8 also valid UTF-8 characters
 *     from U+00A0 up);
 *   - else '"' + s with C escapes + '"': \\ \" \n \t \r, and \xHH for every other
 *     byte that is not plain (so the result is one line, and one column).
 * CTL_QUOTE_BARE never adds the quotes and leaves space and '"' as they are
 * (for "key:value" values, which run to the end of the line); '\\' and
 * non-printables are still escaped. Without CTL_QUOTE_UTF8 the result is
 * printable ASCII, a word that ctl_wire_decode reads back as s.
 * Like snprintf: writes at most buflen bytes, NUL included (buf may be NULL
 * when buflen is 0), and returns the length of the whole result.
 */
#define CTL_QUOTE_UTF8 1u
#define CTL_QUOTE_BARE 2u
size_t ctl_wire_quote(const char *s, char *buf, size_t buflen, unsigned flags);

/*
 * Writes s as a JSON string literal, quotes included: '"' '\\' and control
 * characters escaped (\n \t \r \b \f, else \u00XX), valid UTF-8 copied, and
 * each byte of s that is not valid UTF-8 written as \uDCXX (0xXX + 0xDC00, the
 * lone surrogate Python's "surrogateescape" uses), so that the exact bytes can
 * be recovered. Like snprintf (see ctl_wire_quote).
 */
size_t ctl_wire_json_str(const char *s, char *buf, size_t buflen);

/* Length of the valid UTF-8 character at s[0..len) (2..4), or 0 if there is none
 * (ASCII, a bad sequence, an overlong form, a surrogate, or past U+10FFFF). */
size_t ctl_wire_utf8_len(const unsigned char *s, size_t len);

#endif
