/*
 * evil_pager.c - a malicious external pager for t_pager_evil.sh: it listens on
 * a Unix socket (0600) as `pager = unix:PATH` expects, and for each mode named
 * on the command line serves one connection from emmd: the hello, a lookup
 * reply naming its port, then, on the first message (init), one bad frame:
 *   magic     a frame whose magic is wrong
 *   oversize  a data_supply announcing 2 GiB of payload
 *   unknown   a message with an unknown id (999)
 *   kernelid  a data_request (a kernel's id) sent by a pager
 *   dest      a message to a port emmd never gave
 *   truncated half a frame, then the end of the stream
 *   lie       a well-framed data_unavailable at offset 1: the wire takes it,
 *             the kernel's check refuses it (not page-aligned) and emmd cuts
 *             the pager off for it
 * then waits for emmd to cut it off (end of stream) and prints
 * "evil: MODE: cut off" to stdout. Frames are built by hand from the layout in
 * docs/protocol.md, so a change there breaks this on purpose.
 *
 * Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void
le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void
le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
prefix(unsigned char *b, uint16_t kind, uint32_t dest, uint32_t arg)
{
    le32(b, 0x734d4d45u);
    b[4] = (unsigned char)kind, b[5] = 0, b[6] = 0, b[7] = 0;
    le32(b + 8, dest);
    le32(b + 12, arg);
}

/* A MSG frame: prefix + 72-byte header. */
static size_t
msg(unsigned char *b, uint32_t dest, uint32_t id, uint64_t seqno, uint64_t off, uint64_t len,
    uint32_t payload)
{
    memset(b, 0, 88);
    prefix(b, 2, dest, 0);
    unsigned char *h = b + 16;
    le32(h, 0x684d4d45u);
    h[4] = 1, h[5] = 0, h[6] = 72, h[7] = 0;
    le32(h + 8, id);
    le64(h + 16, seqno);
    le64(h + 24, off);
    le64(h + 32, len);
    le32(h + 68, payload);
    return 88;
}

static int
read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static size_t
body_size(unsigned kind)
{
    switch (kind) {
    case 1: return 16;
    case 2: return 72;
    case 3: return 0;
    case 4: return 8;
    case 5: return 24;
    default: return 0;
    }
}

#define MYPORT 0x01000001u

static int
serve(int fd, const char *mode)
{
    unsigned char b[256];
    prefix(b, 1, 0, 0);
    le32(b + 16, 1), le32(b + 20, 0), le32(b + 24, 4096), le32(b + 28, 1u << 20);
    if (write(fd, b, 32) != 32)
        return -1;
    for (;;) {
        if (read_full(fd, b, 16) < 0)
            return -1;
        unsigned kind = b[4];
        uint32_t dest = get32(b + 8);
        size_t body = body_size(kind);
        if (body && read_full(fd, b + 16, body) < 0)
            return -1;
        if (kind == 2) {
            uint32_t payload = get32(b + 16 + 68);
            static unsigned char sink[1u << 20];
            if (payload > sizeof(sink) || (payload && read_full(fd, sink, payload) < 0))
                return -1;
        }
        if (kind == 4) { /* lookup: our port, seqno 0 */
            unsigned char r[40];
            memset(r, 0, sizeof(r));
            prefix(r, 5, dest, 0);
            memcpy(r + 16, b + 16, 8);
            le32(r + 24, MYPORT);
            if (write(fd, r, 40) != 40)
                return -1;
            continue;
        }
        if (kind != 2 || get32(b + 16 + 8) != 1 /* init */)
            continue;
        uint32_t control = get32(b + 16 + 56);
        size_t n;
        if (strcmp(mode, "magic") == 0) {
            n = msg(b, control, 32, 1, 0, 0, 0);
            b[0] ^= 0xff;
        } else if (strcmp(mode, "oversize") == 0) {
            n = msg(b, control, 33, 1, 0, 1ull << 31, 1u << 31);
        } else if (strcmp(mode, "unknown") == 0) {
            n = msg(b, control, 999, 1, 0, 4096, 0);
        } else if (strcmp(mode, "kernelid") == 0) {
            n = msg(b, control, 2, 1, 0, 4096, 0);
        } else if (strcmp(mode, "lie") == 0) {
            n = msg(b, control, 34, 1, 1, 4096, 0);
        } else if (strcmp(mode, "dest") == 0) {
            n = msg(b, control ^ 0x00ff0000u, 32, 1, 0, 0, 0);
        } else { /* truncated */
            n = msg(b, control, 32, 1, 0, 0, 0) / 2;
        }
        if (write(fd, b, n) != (ssize_t)n)
            return -1;
        if (strcmp(mode, "truncated") == 0)
            shutdown(fd, SHUT_WR);
        /* emmd cuts us off: read until the end of the stream. */
        while (read(fd, b, sizeof(b)) > 0)
            ;
        return 0;
    }
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: evil_pager SOCKET MODE...\n");
        return 2;
    }
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", argv[1]);
    unlink(argv[1]);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    umask(0177);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 4) < 0) {
        perror("evil_pager: listen");
        return 2;
    }
    printf("evil: listening\n");
    fflush(stdout);
    for (int i = 2; i < argc; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            perror("evil_pager: accept");
            return 2;
        }
        int rc = serve(fd, argv[i]);
        close(fd);
        printf("evil: %s: %s\n", argv[i], rc == 0 ? "cut off" : "connection lost early");
        fflush(stdout);
    }
    return 0;
}
