/*
 * ctl_wire.c - encode/decode of control-socket requests and replies (format in
 * ctl_wire.h). Pure: works only on the caller's buffers, no allocation, no I/O,
 * no global state, hence no locking. ctl_wire_decode faces untrusted bytes and
 * is a fuzz target: every index is checked against len before use. Also the
 * quoting of names for output (C-style for people, JSON for scripts).
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

/* A byte that may stand for itself in a bare word. */
static int
is_bare(unsigned char c)
{
    return is_print(c) && c != ' ' && c != '"' && c != '\\';
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Unescapes the quoted word whose opening '"' is at line[*pos] (the line ends
 * at nl), writing the bytes at line[*out...] (never past the input), and leaves
 * *pos just after the closing quote.
 */
static int
decode_quoted(char *line, size_t nl, size_t *pos, size_t *out, char *err, size_t errlen)
{
    size_t start = *pos, i = start + 1, o = *out;

    for (;;) {
        unsigned char c;
        int hi, lo;

        if (i >= nl)
            return wire_fail(-EINVAL, err, errlen, "unterminated quote opened at offset %zu",
                             start);
        c = (unsigned char)line[i];
        if (c == '"')
            break;
        if (c != '\\') {
            line[o++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= nl)
            return wire_fail(-EINVAL, err, errlen, "unterminated quote opened at offset %zu",
                             start);
        switch (line[i + 1]) {
        case '\\': line[o++] = '\\'; i += 2; continue;
        case '"': line[o++] = '"'; i += 2; continue;
        case 'n': line[o++] = '\n'; i += 2; continue;
        case 't': line[o++] = '\t'; i += 2; continue;
        case 'r': line[o++] = '\r'; i += 2; continue;
        case 'x':
            hi = i + 2 < nl ? hexval((unsigned char)line[i + 2]) : -1;
            lo = i + 3 < nl ? hexval((unsigned char)line[i + 3]) : -1;
            if (hi < 0 || lo < 0)
                return wire_fail(-EINVAL, err, errlen,
                                 "bad escape at offset %zu: \\x needs two hex digits", i);
            if (hi == 0 && lo == 0)
                return wire_fail(-EINVAL, err, errlen,
                                 "bad escape at offset %zu: \\x00 (a word cannot hold NUL)", i);
            line[o++] = (char)(hi << 4 | lo);
            i += 4;
            continue;
        default:
            return wire_fail(-EINVAL, err, errlen, "bad escape \\%c at offset %zu", line[i + 1],
                             i);
        }
    }
    i++; /* the closing quote */
    if (i < nl && line[i] != ' ')
        return wire_fail(-EINVAL, err, errlen,
                         "byte 0x%02x after the closing quote at offset %zu (want a space)",
                         (unsigned char)line[i], i);
    *pos = i;
    *out = o;
    return 0;
}

int
ctl_wire_decode(char *line, size_t len, char *argv[CTL_WIRE_MAX_ARGS + 1], int *argc,
                char *err, size_t errlen)
{
    size_t scan = len < CTL_WIRE_MAX_LINE ? len : CTL_WIRE_MAX_LINE;
    size_t nl = 0, i, out;
    int found = 0, n = 0, rc;

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

    /* Words: each starts at i and is written back at out (<= i: unescaping only
     * shrinks), then NUL-terminated where its separator was. */
    i = out = 0;
    for (;;) {
        size_t word = out;

        if (i == nl || line[i] == ' ') {
            if (i == nl)
                return wire_fail(-EINVAL, err, errlen, "trailing space at offset %zu", i - 1);
            return wire_fail(-EINVAL, err, errlen,
                             "empty word at offset %zu (words are separated by single spaces)",
                             i);
        }
        if (n == CTL_WIRE_MAX_ARGS)
            return wire_fail(-E2BIG, err, errlen, "too many words (limit %d)", CTL_WIRE_MAX_ARGS);
        if (line[i] == '"') {
            rc = decode_quoted(line, nl, &i, &out, err, errlen);
            if (rc < 0)
                return rc;
        } else {
            for (; i < nl && line[i] != ' '; i++) {
                if (!is_bare((unsigned char)line[i]))
                    return wire_fail(-EINVAL, err, errlen,
                                     "'%c' at offset %zu inside a bare word (quote the word)",
                                     line[i], i);
                line[out++] = line[i];
            }
        }
        /* line[i] is the separator (or the '\n'); out <= i */
        line[out++] = '\0';
        argv[n++] = line + word;
        if (i == nl)
            break;
        i++;
    }
    argv[n] = NULL;
    *argc = n;
    return 0;
}

size_t
ctl_wire_utf8_len(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n, i;
    unsigned long cp;

    if (c < 0xc2 || c > 0xf4)
        return 0; /* ASCII, a continuation byte, an overlong lead or past U+10FFFF */
    n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (len < n)
        return 0;
    cp = c & (0xff >> (n + 1));
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Appends to buf like snprintf; pos counts every byte, written or not. */
static void
put(char *buf, size_t buflen, size_t *pos, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++, (*pos)++)
        if (*pos + 1 < buflen)
            buf[*pos] = p[i];
}

static void
finish(char *buf, size_t buflen, size_t pos)
{
    if (buflen)
        buf[pos < buflen ? pos : buflen - 1] = '\0';
}

/* A printable UTF-8 character at s (U+00A0 up): its length, else 0. */
static size_t
utf8_print_len(const unsigned char *s, size_t len)
{
    size_t n = ctl_wire_utf8_len(s, len);

    if (n == 2 && s[0] == 0xc2 && s[1] < 0xa0)
        return 0; /* C1 controls U+0080..U+009F */
    return n;
}

size_t
ctl_wire_quote(const char *str, char *buf, size_t buflen, unsigned flags)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str), pos = 0, i, u;
    int plain = len > 0 || (flags & CTL_QUOTE_BARE);

    for (i = 0; plain && i < len; i++) {
        if (is_bare(s[i]))
            continue;
        if ((flags & CTL_QUOTE_BARE) && (s[i] == ' ' || s[i] == '"'))
            continue;
        if ((flags & CTL_QUOTE_UTF8) && (u = utf8_print_len(s + i, len - i)) > 0) {
            i += u - 1;
            continue;
        }
        plain = 0;
    }
    if (plain) {
        put(buf, buflen, &pos, str, len);
        finish(buf, buflen, pos);
        return pos;
    }
    if (!(flags & CTL_QUOTE_BARE))
        put(buf, buflen, &pos, "\"", 1);
    for (i = 0; i < len; i++) {
        char esc[5];
        unsigned char c = s[i];

        if (c == '\\' || (c == '"' && !(flags & CTL_QUOTE_BARE))) {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(buf, buflen, &pos, esc, 2);
        } else if (is_print(c)) {
            put(buf, buflen, &pos, str + i, 1);
        } else if (c == '\n' || c == '\t' || c == '\r') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            put(buf, buflen, &pos, esc, 2);
        } else if ((flags & CTL_QUOTE_UTF8) && (u = utf8_print_len(s + i, len - i)) > 0) {
            put(buf, buflen, &pos, str + i, u);
            i += u - 1;
        } else {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            put(buf, buflen, &pos, esc, 4);
        }
    }
    if (!(flags & CTL_QUOTE_BARE))
        put(buf, buflen, &pos, "\"", 1);
    finish(buf, buflen, pos);
    return pos;
}

size_t
ctl_wire_json_str(const char *str, char *buf, size_t buflen)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str), pos = 0, i, u;
    char esc[8];

    put(buf, buflen, &pos, "\"", 1);
    for (i = 0; i < len; i++) {
        unsigned char c = s[i];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(buf, buflen, &pos, esc, 2);
        } else if (c >= 0x20 && c < 0x7f) {
            put(buf, buflen, &pos, str + i, 1);
        } else if (c == '\n' || c == '\t' || c == '\r' || c == '\b' || c == '\f') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : c == '\b' ? 'b' : 'f';
            put(buf, buflen, &pos, esc, 2);
        } else if (c < 0x80) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(buf, buflen, &pos, esc, 6);
        } else if ((u = ctl_wire_utf8_len(s + i, len - i)) > 0) {
            put(buf, buflen, &pos, str + i, u);
            i += u - 1;
        } else {
            snprintf(esc, sizeof esc, "\\udc%02x", c);
            put(buf, buflen, &pos, esc, 6);
        }
    }
    put(buf, buflen, &pos, "\"", 1);
    finish(buf, buflen, pos);
    return pos;
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
    if (argv[0][0] == '\0')
        return wire_fail(-EINVAL, err, errlen, "empty verb");
    for (i = 0; i < argc; i++) {
        /* the word, then a space or the final '\n' */
        size_t wl = ctl_wire_quote(argv[i], NULL, 0, 0);

        if (wl + 1 > limit - pos)
            return wire_fail(-EMSGSIZE, err, errlen, "request too long (limit %zu bytes)",
                             limit);
        ctl_wire_quote(argv[i], buf + pos, wl + 1, 0);
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
