/*
 * stream_frame.c - encodes and decodes the stream transport's frames (layout
 * in stream_frame.h). Stateless: no locking.
 */
#include "stream_frame.h"

#include <errno.h>
#include <string.h>

#include "byteorder.h"

static int
refuse(const char **why, const char *field)
{
    if (why != NULL)
        *why = field;
    return -EBADMSG;
}

static size_t
body_size(uint16_t kind)
{
    switch (kind) {
    case EMM_FRAME_HELLO: return 16;
    case EMM_FRAME_MSG: return EMM_WIRE_HDR_SIZE;
    case EMM_FRAME_RELEASE: return 0;
    case EMM_FRAME_LOOKUP: return 8;
    case EMM_FRAME_LOOKUP_REPLY: return 24;
    case EMM_FRAME_REGION: return 16;
    case EMM_FRAME_FREE: return 0;
    default: return SIZE_MAX;
    }
}

const char *
emm_frame_kind_name(uint16_t kind)
{
    switch (kind) {
    case EMM_FRAME_HELLO: return "hello";
    case EMM_FRAME_MSG: return "msg";
    case EMM_FRAME_RELEASE: return "release";
    case EMM_FRAME_LOOKUP: return "lookup";
    case EMM_FRAME_LOOKUP_REPLY: return "lookup_reply";
    case EMM_FRAME_REGION: return "region";
    case EMM_FRAME_FREE: return "free";
    default: return "unknown";
    }
}

int
emm_frame_decode_prefix(const unsigned char *buf, size_t len, struct emm_frame *f,
                        const char **why)
{
    memset(f, 0, sizeof(*f));
    if (len < EMM_FRAME_PREFIX_SIZE)
        return refuse(why, "frame size");
    if (emm_get_le32(buf) != EMM_FRAME_MAGIC)
        return refuse(why, "frame magic");
    f->kind = (uint16_t)(buf[4] | buf[5] << 8);
    f->flags = (uint16_t)(buf[6] | buf[7] << 8);
    f->dest = emm_get_le32(buf + 8);
    f->arg = emm_get_le32(buf + 12);
    f->body = body_size(f->kind);
    if (f->body == SIZE_MAX)
        return refuse(why, "frame kind");
    if ((f->flags & ~EMM_FRAME_F_ALL) != 0 || (f->kind != EMM_FRAME_MSG && f->flags != 0))
        return refuse(why, "frame flags");
    if (why != NULL)
        *why = NULL;
    return 0;
}

int
emm_frame_decode_body(const unsigned char *buf, size_t len, struct emm_frame *f,
                      const char **why)
{
    if (len < f->body)
        return refuse(why, "frame size");
    switch (f->kind) {
    case EMM_FRAME_HELLO:
        f->version = emm_get_le32(buf);
        f->features = emm_get_le32(buf + 4);
        f->page_size = emm_get_le32(buf + 8);
        f->max_request = emm_get_le32(buf + 12);
        break;
    case EMM_FRAME_MSG: {
        int rc = emm_wire_decode(buf, len, &f->hdr, &f->payload, why);
        if (rc < 0)
            return rc;
        if (f->payload % 4096u != 0)
            return refuse(why, "payload");
        if (f->flags & EMM_FRAME_F_SHM) {
            /* The data is in the region: nothing follows; the length is the
             * data's, one request at most. */
            if (f->payload != 0)
                return refuse(why, "payload (data in the region)");
            if (f->hdr.length == 0 || f->hdr.length % 4096u != 0 ||
                f->hdr.length > EMM_MAX_REQUEST_BYTES)
                return refuse(why, "slot length");
        } else if (f->arg != 0) {
            return refuse(why, "frame arg");
        }
        break;
    }
    case EMM_FRAME_REGION:
        f->region_pages = emm_get_le32(buf);
        f->region_kpages = emm_get_le32(buf + 4);
        if (emm_get_le32(buf + 8) != 0 || emm_get_le32(buf + 12) != 0)
            return refuse(why, "region reserved");
        if (f->region_kpages > f->region_pages)
            return refuse(why, "region halves");
        break;
    case EMM_FRAME_LOOKUP:
        f->object = emm_get_le64(buf);
        break;
    case EMM_FRAME_LOOKUP_REPLY:
        f->object = emm_get_le64(buf);
        f->name = emm_get_le32(buf + 8);
        if (emm_get_le32(buf + 12) != 0)
            return refuse(why, "lookup_reply reserved");
        f->seqno = emm_get_le64(buf + 16);
        break;
    default:
        break;
    }
    if (why != NULL)
        *why = NULL;
    return 0;
}

size_t
emm_frame_encode_prefix(unsigned char *buf, uint16_t kind, uint16_t flags, uint32_t dest,
                        uint32_t arg)
{
    emm_put_le32(buf, EMM_FRAME_MAGIC);
    buf[4] = (unsigned char)(kind & 0xff);
    buf[5] = (unsigned char)(kind >> 8);
    buf[6] = (unsigned char)(flags & 0xff);
    buf[7] = (unsigned char)(flags >> 8);
    emm_put_le32(buf + 8, dest);
    emm_put_le32(buf + 12, arg);
    return EMM_FRAME_PREFIX_SIZE;
}

size_t
emm_frame_encode_hello(unsigned char *buf, uint32_t version, uint32_t features)
{
    size_t n = emm_frame_encode_prefix(buf, EMM_FRAME_HELLO, 0, 0, 0);
    emm_put_le32(buf + n, version);
    emm_put_le32(buf + n + 4, features);
    emm_put_le32(buf + n + 8, 4096u);
    emm_put_le32(buf + n + 12, EMM_MAX_REQUEST_BYTES);
    return n + 16;
}

void
emm_frame_set_slot(unsigned char *buf, uint32_t slot)
{
    buf[6] |= EMM_FRAME_F_SHM;
    emm_put_le32(buf + 12, slot);
    emm_put_le32(buf + EMM_FRAME_PREFIX_SIZE + 68, 0); /* the header's payload */
}

size_t
emm_frame_encode_region(unsigned char *buf, uint32_t pages, uint32_t kpages)
{
    size_t n = emm_frame_encode_prefix(buf, EMM_FRAME_REGION, 0, 0, 0);
    emm_put_le32(buf + n, pages);
    emm_put_le32(buf + n + 4, kpages);
    emm_put_le32(buf + n + 8, 0);
    emm_put_le32(buf + n + 12, 0);
    return n + 16;
}

size_t
emm_frame_encode_lookup(unsigned char *buf, uint32_t cookie, uint64_t object)
{
    size_t n = emm_frame_encode_prefix(buf, EMM_FRAME_LOOKUP, 0, cookie, 0);
    emm_put_le64(buf + n, object);
    return n + 8;
}

size_t
emm_frame_encode_lookup_reply(unsigned char *buf, uint32_t cookie, uint64_t object,
                              uint32_t name, int32_t err, uint64_t seqno)
{
    size_t n = emm_frame_encode_prefix(buf, EMM_FRAME_LOOKUP_REPLY, 0, cookie, (uint32_t)err);
    emm_put_le64(buf + n, object);
    emm_put_le32(buf + n + 8, name);
    emm_put_le32(buf + n + 12, 0);
    emm_put_le64(buf + n + 16, seqno);
    return n + 24;
}

int
emm_frame_encode_msg(unsigned char *buf, uint16_t flags, uint32_t dest,
                     const struct emm_msg_hdr *h, uint32_t payload)
{
    size_t n = emm_frame_encode_prefix(buf, EMM_FRAME_MSG, flags, dest, 0);
    int rc = emm_wire_encode(h, payload, buf + n);
    if (rc < 0)
        return rc;
    return (int)(n + EMM_WIRE_HDR_SIZE);
}
