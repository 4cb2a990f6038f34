/*
 * fuzz_stream_frame.c - feeds arbitrary bytes to the stream transport's frame
 * decoder (stream_frame.h): once through the pure decoder, frame after
 * frame, and twice as the byte stream a real connection (port_stream.c, the
 * pager side, serving one port as object 7) reads from its peer after a good
 * hello: once inline, once after a hello offering EMM_STREAM_F_SHM and a good
 * region frame (a sealed memfd of 1024 pages, the kernel's half 512), so
 * MSG frames naming slots and FREE frames reach the region's checks. A decoded
 * MSG whose payload is over EMM_MAX_REQUEST_BYTES, unaligned or not its
 * length, a slot message with a payload or a bad length, a message delivered
 * with such data or with data outside the region's kernel half, a held run
 * left after the connection ends, or a served port whose export outlives the
 * connection, aborts.
 *
 * Built with libFuzzer when the compiler has -fsanitize=fuzzer; otherwise main()
 * replays the files (or directories) named on the command line, and
 * `fuzz_stream_frame --make-corpus DIR` writes the seed corpus.
 *
 * Locking: the harness is single-threaded; the connection's threads end
 * before each input returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "byteorder.h"
#include "log.h"
#include "port.h"
#include "port_stream.h"
#include "stream_frame.h"

#define PS 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct emm_port *served;
static pthread_mutex_t dlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dcond = PTHREAD_COND_INITIALIZER;
static int dead;

static void *
drain_main(void *arg)
{
    char buf[4096];
    while (read(*(int *)arg, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

static void
handler(struct emm_port *port, struct emm_msg *msg)
{
    (void)port;
    if (msg->data != NULL && (msg->length > EMM_MAX_REQUEST_BYTES || msg->length % PS != 0))
        abort();
    emm_msg_release(msg, 0);
}

static int
lookup(void *ctx, uint64_t id, struct emm_port **out)
{
    (void)ctx;
    if (id != 7)
        return -ENOENT;
    *out = emm_port_ref(served);
    return 0;
}

static void
on_dead(void *ctx, struct emm_stream *s, int err)
{
    (void)ctx, (void)s, (void)err;
    pthread_mutex_lock(&dlock);
    dead = 1;
    pthread_cond_signal(&dcond);
    pthread_mutex_unlock(&dlock);
}

/* Sends the hello offering the shared region and a good region frame. */
static void
send_shm_hello(int fd)
{
    unsigned char buf[EMM_FRAME_MAX_FIXED];
    size_t n = emm_frame_encode_hello(buf, EMM_STREAM_VERSION, EMM_STREAM_F_SHM);
    if (write(fd, buf, n) != (ssize_t)n)
        abort();
    int mfd = memfd_create("fuzz-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0 || ftruncate(mfd, 1024 * PS) < 0 ||
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
        abort();
    n = emm_frame_encode_region(buf, 1024, 512);
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct iovec iov = {buf, n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
                        .msg_controllen = sizeof(cm.space)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &mfd, sizeof(int));
    if (sendmsg(fd, &mh, 0) != (ssize_t)n)
        abort();
    close(mfd);
}

static void
pure_decode(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        struct emm_frame f;
        if (emm_frame_decode_prefix(data + off, size - off, &f, NULL) < 0)
            return;
        off += EMM_FRAME_PREFIX_SIZE;
        if (emm_frame_decode_body(data + off, size - off, &f, NULL) < 0)
            return;
        off += f.body;
        if (f.kind == EMM_FRAME_MSG) {
            if (f.payload > EMM_MAX_REQUEST_BYTES || f.payload % PS != 0 ||
                (f.payload != 0 && f.payload != f.hdr.length))
                abort();
            if ((f.flags & EMM_FRAME_F_SHM) &&
                (f.payload != 0 || f.hdr.length == 0 || f.hdr.length % PS != 0 ||
                 f.hdr.length > EMM_MAX_REQUEST_BYTES))
                abort();
            if (f.payload > size - off)
                return;
            off += f.payload;
        }
    }
}

static void
stream_feed(const uint8_t *data, size_t size, int shm)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (shm) {
        send_shm_hello(sv[1]);
    } else {
        unsigned char hello[EMM_FRAME_MAX_FIXED];
        size_t n = emm_frame_encode_hello(hello, EMM_STREAM_VERSION, 0);
        if (write(sv[1], hello, n) != (ssize_t)n)
            abort();
    }
    dead = 0;
    struct emm_stream *s;
    struct emm_stream_args a = {.label = "fuzz", .peer_role = EMM_STREAM_PEER_KERNEL,
                                .peer_uid = (uid_t)-1, .lookup = lookup, .on_dead = on_dead};
    if (emm_stream_open(sv[0], &a, &s) < 0)
        abort();
    struct emm_stream_info si;
    emm_stream_info(s, &si);
    if (si.shm_pages != (shm ? 1024u : 0u))
        abort();
    /* The peer's reads: hello, then FREE frames; drained so it never blocks. */
    int rfd = dup(sv[1]);
    pthread_t drainer;
    if (rfd < 0 || pthread_create(&drainer, NULL, drain_main, &rfd) != 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t w = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* cut off */
        off += (size_t)w;
    }
    shutdown(sv[1], SHUT_WR);
    pthread_mutex_lock(&dlock);
    while (!dead)
        pthread_cond_wait(&dcond, &dlock);
    pthread_mutex_unlock(&dlock);
    emm_stream_info(s, &si);
    if (si.shm_in_held != 0)
        abort(); /* a run stayed held after every message was released */
    emm_stream_close(s);
    close(sv[1]);
    pthread_join(drainer, NULL);
    close(rfd);
    if (emm_port_refs(served) != 1)
        abort(); /* an export outlived its connection */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (served == NULL) {
        emm_log_init("fuzz_stream_frame", 0, getenv("FUZZ_LOG") ? EMM_LOG_DEBUG : EMM_LOG_ERR + 1);
        if (emm_port_create("served", handler, NULL, NULL, &served) < 0)
            abort();
    }
    pure_decode(data, size);
    stream_feed(data, size, 0);
    stream_feed(data, size, 1);
    return 0;
}

#ifndef EMM_LIBFUZZER

#include "fuzz_replay.h"

static int
write_seed(const char *dir, const char *name, const void *img, size_t len)
{
    return fuzz_write_seed(dir, name, NULL, 0, img, len);
}

/* The first port a process creates has name generation 1, slot 0. */
#define SERVED_NAME 0x01000001u

static size_t
put_msg(unsigned char *p, uint32_t id, uint64_t seqno, uint32_t pages, int data)
{
    struct emm_msg_hdr h = {.id = id, .seqno = seqno, .offset = PS, .length = pages * PS,
                            .access = VM_PROT_READ};
    int n = emm_frame_encode_msg(p, 0, SERVED_NAME, &h, data ? pages * PS : 0);
    if (n < 0)
        abort();
    if (data)
        memset(p + n, 0x5a, pages * PS);
    return (size_t)n + (data ? pages * PS : 0);
}

static size_t
put_slot_msg(unsigned char *p, uint32_t id, uint64_t seqno, uint32_t slot, uint32_t pages)
{
    size_t n = put_msg(p, id, seqno, pages, 0);
    emm_put_le32(p + EMM_FRAME_PREFIX_SIZE + 68, pages * PS);
    emm_frame_set_slot(p, slot);
    return n;
}

/* Seeds: a lookup then good messages (with and without data), a release, and
 * broken frames of each kind. */
static int
make_corpus(const char *dir)
{
    static unsigned char b[4 * PS + 1024];
    size_t n = 0;
    int r = 0;

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_msg(b + n, MO_DATA_REQUEST, 1, 1, 0);
    n += put_msg(b + n, MO_DATA_RETURN, 2, 2, 1);
    n += put_msg(b + n, MO_SYNCHRONIZE, 3, 1, 0);
    n += emm_frame_encode_prefix(b + n, EMM_FRAME_RELEASE, 0, SERVED_NAME, 1);
    r |= write_seed(dir, "lookup-request-return-release", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += emm_frame_encode_lookup(b + n, 2, 8);
    r |= write_seed(dir, "lookups", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_msg(b + n, MO_DATA_RETURN, 1, 1, 1);
    r |= write_seed(dir, "return-truncated", b, n - 100);

    n = put_msg(b, MO_DATA_REQUEST, 1, 1, 0);
    b[0] ^= 1;
    r |= write_seed(dir, "bad-magic", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_msg(b + n, MO_DATA_RETURN, 1, 1, 0);
    b[n - 4 + 2] = 0x20; /* payload 2 MiB */
    r |= write_seed(dir, "oversize", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_msg(b + n, MO_READY, 1, 1, 0); /* not the kernel's to send */
    r |= write_seed(dir, "wrong-role", b, n);

    /* Record locks (0x70..0x7f): the kernel's four, then a lock_reply, which
     * is the pager's to send. */
    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_msg(b + n, MO_LOCK_ACQUIRE, 1, 1, 0);
    n += put_msg(b + n, MO_LOCK_TEST, 2, 1, 0);
    n += put_msg(b + n, MO_LOCK_CANCEL, 3, 1, 0);
    n += put_msg(b + n, MO_LOCK_RELEASE, 4, 1, 0);
    r |= write_seed(dir, "locks", b, n);
    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_msg(b + n, MO_LOCK_REPLY, 1, 1, 0);
    r |= write_seed(dir, "lock-reply-wrong-role", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_msg(b + n, MO_DATA_REQUEST, 4, 1, 0);
    n += put_msg(b + n, MO_DATA_REQUEST, 2, 1, 0);
    r |= write_seed(dir, "seqno-backwards", b, n);

    /* Slots (with the region): a data_return in the kernel's half, a FREE of
     * a run never lent, a slot in the pager's own half, one off the end, a
     * slot with a payload too, a second region. */
    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_slot_msg(b + n, MO_DATA_RETURN, 1, 3, 2);
    n += put_slot_msg(b + n, MO_DATA_RETURN, 2, 3, 2); /* the run came back: reused */
    n += put_msg(b + n, MO_SYNCHRONIZE, 3, 1, 0);
    r |= write_seed(dir, "shm-return-slots", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += emm_frame_encode_prefix(b + n, EMM_FRAME_FREE, 0, 600, 1);
    r |= write_seed(dir, "shm-free-not-lent", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_slot_msg(b + n, MO_DATA_RETURN, 1, 600, 1);
    r |= write_seed(dir, "shm-slot-pager-half", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_slot_msg(b + n, MO_DATA_RETURN, 1, 500, 256);
    r |= write_seed(dir, "shm-slot-off-the-end", b, n);

    n = emm_frame_encode_lookup(b, 1, 7);
    n += put_slot_msg(b + n, MO_DATA_RETURN, 1, 0, 1);
    emm_put_le32(b + n - 4, PS); /* a payload besides the slot */
    r |= write_seed(dir, "shm-slot-and-payload", b, n);

    n = emm_frame_encode_region(b, 1024, 512);
    r |= write_seed(dir, "shm-second-region", b, n);

    n = emm_frame_encode_hello(b, 1, 0);
    r |= write_seed(dir, "second-hello", b, n);
    r |= write_seed(dir, "empty", "", 0);
    return r;
}

int
main(int argc, char **argv)
{
    return fuzz_replay_main("fuzz_stream_frame", argc, argv, make_corpus);
}

#endif
