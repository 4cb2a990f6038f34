/*
 * msg_wire.c - encodes and decodes the 72-byte message header (layout in
 * msg_wire.h and docs/protocol.md). Stateless: no locking.
 */
#include "msg_wire.h"

#include <errno.h>
#include <string.h>

#include "byteorder.h"

/* Offsets of the fields, as documented in msg_wire.h. */
enum {
    W_MAGIC = 0,
    W_VERSION = 4,
    W_SIZE = 6,
    W_ID = 8,
    W_FLAGS = 12,
    W_SEQNO = 16,
    W_OFFSET = 24,
    W_LENGTH = 32,
    W_ARG2 = 40,
    W_ACCESS = 48,
    W_ARG = 52,
    W_CONTROL = 56,
    W_NAME = 60,
    W_REPLY = 64,
    W_PAYLOAD = 68,
    W_END = 72,
};
_Static_assert(W_END == EMM_WIRE_HDR_SIZE, "the header table and its size agree");

static void
put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

static uint16_t
get_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static int
payload_ok(uint64_t length, uint32_t payload)
{
    return payload == 0 || (payload == length && payload <= EMM_MAX_REQUEST_BYTES);
}

int
emm_wire_encode(const struct emm_msg_hdr *h, uint32_t payload,
                unsigned char buf[EMM_WIRE_HDR_SIZE])
{
    if (!payload_ok(h->length, payload))
        return -EINVAL;
    emm_put_le32(buf + W_MAGIC, EMM_WIRE_MAGIC);
    put_le16(buf + W_VERSION, EMM_WIRE_VERSION);
    put_le16(buf + W_SIZE, EMM_WIRE_HDR_SIZE);
    emm_put_le32(buf + W_ID, h->id);
    emm_put_le32(buf + W_FLAGS, h->flags);
    emm_put_le64(buf + W_SEQNO, h->seqno);
    emm_put_le64(buf + W_OFFSET, h->offset);
    emm_put_le64(buf + W_LENGTH, h->length);
    emm_put_le64(buf + W_ARG2, h->arg2);
    emm_put_le32(buf + W_ACCESS, h->access);
    emm_put_le32(buf + W_ARG, (uint32_t)h->arg);
    emm_put_le32(buf + W_CONTROL, h->control);
    emm_put_le32(buf + W_NAME, h->name);
    emm_put_le32(buf + W_REPLY, h->reply);
    emm_put_le32(buf + W_PAYLOAD, payload);
    return 0;
}

static int
refuse(const char **why, const char *field, int err)
{
    if (why != NULL)
        *why = field;
    return err;
}

int
emm_wire_decode(const unsigned char *buf, size_t len, struct emm_msg_hdr *h,
                uint32_t *payload, const char **why)
{
    if (len < EMM_WIRE_HDR_SIZE)
        return refuse(why, "size", -EAGAIN);
    if (emm_get_le32(buf + W_MAGIC) != EMM_WIRE_MAGIC)
        return refuse(why, "magic", -EBADMSG);
    if (get_le16(buf + W_VERSION) != EMM_WIRE_VERSION)
        return refuse(why, "version", -EPROTONOSUPPORT);
    if (get_le16(buf + W_SIZE) != EMM_WIRE_HDR_SIZE)
        return refuse(why, "size", -EBADMSG);
    struct emm_msg_hdr d;
    memset(&d, 0, sizeof(d));
    d.id = emm_get_le32(buf + W_ID);
    d.flags = emm_get_le32(buf + W_FLAGS);
    d.seqno = emm_get_le64(buf + W_SEQNO);
    d.offset = emm_get_le64(buf + W_OFFSET);
    d.length = emm_get_le64(buf + W_LENGTH);
    d.arg2 = emm_get_le64(buf + W_ARG2);
    d.access = emm_get_le32(buf + W_ACCESS);
    d.arg = (int32_t)emm_get_le32(buf + W_ARG);
    d.control = emm_get_le32(buf + W_CONTROL);
    d.name = emm_get_le32(buf + W_NAME);
    d.reply = emm_get_le32(buf + W_REPLY);
    uint32_t pl = emm_get_le32(buf + W_PAYLOAD);
    if (!emm_msg_id_known(d.id))
        return refuse(why, "id", -EBADMSG);
    if (!payload_ok(d.length, pl))
        return refuse(why, "payload", -EBADMSG);
    *h = d;
    *payload = pl;
    if (why != NULL)
        *why = NULL;
    return 0;
}
