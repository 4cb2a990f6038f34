/*
 * ctl_wire.c - encode/decode of control-socket requests and replies (format in
 * ctl_wire.h). Pure: works only on the caller's buffers, no allocation, no I/O,
 * no global state, hence no locking. ctl_wire_decode faces untrusted bytes and
 * is a fuzz target: every index is checked against len before use.
 */
#include "ctl_wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int
wire_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
wire_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int
is_print(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e;
}

int
ctl_wire_decode(char *line, size_t len, char *argv[CTL_WIRE_MAX_ARGS + 1], int *argc,
                char *err, size_t errlen)
{
    size_t scan = len < CTL_WIRE_MAX_LINE ? len : CTL_WIRE_MAX_LINE;
    size_t nl = 0, i, start;
    int found = 0, n = 0;

    *argc = 0;
    argv[0] = NULL;
    if (len == 0)
        return wire_fail(-EINVAL, err, errlen, "empty request");
    for (i = 0; i < scan; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '\n') {
            nl = i;
            found = 1;
            break;
        }
        if (!is_print(c))
            return wire_fail(-EINVAL, err, errlen, "non-printable byte 0x%02x at offset %zu", c,
                             i);
    }
    if (!found) {
        if (len > CTL_WIRE_MAX_LINE)
            return wire_fail(-EMSGSIZE, err, errlen, "request too long (limit %d bytes)",
                             CTL_WIRE_MAX_LINE);
        return wire_fail(-EINVAL, err, errlen, "request not terminated by a newline");
    }
    if (nl + 1 != len)
        return wire_fail(-EINVAL, err, errlen, "%zu bytes after the request line",
                         len - nl - 1);
    if (nl == 0)
        return wire_fail(-EINVAL, err, errlen, "empty request");

    /* Words: [start, i) ending at a space or at nl; none may be empty. */
    start = 0;
    for (i = 0; i <= nl; i++) {
        if (i < nl && line[i] != ' ')
            continue;
        if (i == start) {
            if (i == nl)
                return wire_fail(-EINVAL, err, errlen, "trailing space at offset %zu", i - 1);
            return wire_fail(-EINVAL, err, errlen,
                             "empty word at offset %zu (words are separated by single spaces)",
                             i);
        }
        if (n == CTL_WIRE_MAX_ARGS)
            return wire_fail(-E2BIG, err, errlen, "too many words (limit %d)", CTL_WIRE_MAX_ARGS);
        line[i] = '\0';
        argv[n++] = line + start;
        start = i + 1;
    }
    argv[n] = NULL;
    *argc = n;
    return 0;
}

int
ctl_wire_encode(int argc, char *const argv[], char *buf, size_t buflen, size_t *outlen,
                char *err, size_t errlen)
{
    size_t pos = 0, limit = buflen < CTL_WIRE_MAX_LINE ? buflen : CTL_WIRE_MAX_LINE;
    int i;

    *outlen = 0;
    if (argc < 1)
        return wire_fail(-EINVAL, err, errlen, "empty request");
    if (argc > CTL_WIRE_MAX_ARGS)
        return wire_fail(-E2BIG, err, errlen, "too many words (%d, limit %d)", argc,
                         CTL_WIRE_MAX_ARGS);
    for (i = 0; i < argc; i++) {
        const char *w = argv[i];
        size_t j, wl = strlen(w);

        if (wl == 0)
            return wire_fail(-EINVAL, err, errlen, "word %d is empty", i + 1);
        for (j = 0; j < wl; j++) {
            unsigned char c = (unsigned char)w[j];
            if (c == ' ')
                return wire_fail(-EINVAL, err, errlen, "word %d contains a space", i + 1);
            if (!is_print(c))
                return wire_fail(-EINVAL, err, errlen,
                                 "word %d contains non-printable byte 0x%02x", i + 1, c);
        }
        /* the word, then a space or the final '\n' */
        if (wl + 1 > limit - pos)
            return wire_fail(-EMSGSIZE, err, errlen, "request too long (limit %zu bytes)",
                             limit);
        memcpy(buf + pos, w, wl);
        pos += wl;
        buf[pos++] = i + 1 < argc ? ' ' : '\n';
    }
    *outlen = pos;
    return 0;
}

int
ctl_wire_parse_reply(const char *reply, size_t len, const char **body, size_t *bodylen,
                     const char **reason, size_t *reasonlen)
{
    static const char ok[] = "ok\n", error[] = "error: ";
    const char *nl;

    *body = NULL;
    *bodylen = 0;
    *reason = NULL;
    *reasonlen = 0;
    if (len >= sizeof ok - 1 && memcmp(reply, ok, sizeof ok - 1) == 0) {
        *body = reply + sizeof ok - 1;
        *bodylen = len - (sizeof ok - 1);
        return 0;
    }
    if (len < sizeof error - 1 || memcmp(reply, error, sizeof error - 1) != 0)
        return -EPROTO;
    nl = memchr(reply + sizeof error - 1, '\n', len - (sizeof error - 1));
    if (!nl)
        return -EPROTO;
    *reason = reply + sizeof error - 1;
    *reasonlen = (size_t)(nl - *reason);
    return -EREMOTEIO;
}
