/*
 * stream_frame.h - the frames of the stream transport (port_stream.c): what
 * goes over a socket between emmd and a pager process. Every frame is a
 * 16-byte little-endian prefix, then a body whose size the prefix's kind
 * fixes, then (a message only) the payload its header announces. Sizes are
 * known and checked before anything is read or allocated. Stateless: no
 * locking. docs/protocol.md has the tables.
 *
 * prefix:  off size field
 *            0    4 magic   EMM_FRAME_MAGIC ("EMMs")
 *            4    2 kind    EMM_FRAME_*
 *            6    2 flags   EMM_FRAME_F_* (which names are the receiver's own;
 *                           MSG: the data is in the shared region)
 *            8    4 dest    MSG: the receiver's port name; RELEASE: the
 *                           receiver's name released; LOOKUP*: a cookie;
 *                           FREE: the first page of the run handed back
 *           12    4 arg     RELEASE: rights released; LOOKUP_REPLY: errno;
 *                           MSG with EMM_FRAME_F_SHM: the data's first page in
 *                           the region (the slot); FREE: the run's pages
 * bodies:  HELLO (16): version, features, page_size, max_request (u32 each)
 *          MSG (72 + payload): the message header (msg_wire.h), then data
 *                       (with EMM_FRAME_F_SHM: payload 0, the header's length
 *                       bytes are in the region from page `arg`)
 *          RELEASE (0)
 *          LOOKUP (8): object id (u64)
 *          LOOKUP_REPLY (24): object id (u64), port name (u32), 0 (u32), the
 *                       port's last seqno (u64): a new proxy goes on from it
 *          REGION (16): pages in all, pages of the kernel's half (the rest is
 *                       the pager's), 0, 0 (u32 each); the memfd rides with
 *                       it (SCM_RIGHTS). Only with EMM_STREAM_F_SHM, once,
 *                       from the kernel right after its hello.
 *          FREE (0): the receiver's pages [dest, dest+arg) are handed back
 */
#ifndef EMM_STREAM_FRAME_H
#define EMM_STREAM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "msg_wire.h"

#define EMM_FRAME_MAGIC       UINT32_C(0x734d4d45) /* "EMMs" */
#define EMM_FRAME_PREFIX_SIZE 16u
#define EMM_FRAME_MAX_FIXED   (EMM_FRAME_PREFIX_SIZE + EMM_WIRE_HDR_SIZE)
#define EMM_FRAME_LOOKUP_REPLY_SIZE (EMM_FRAME_PREFIX_SIZE + 24u)

/* The versions this build speaks, and the features it offers in its hello. */
#define EMM_STREAM_VERSION 1u
/* Page data in a shared memory region (a sealed memfd the kernel side makes
 * per connection) instead of the socket: MSG frames carry (slot, length). */
#define EMM_STREAM_F_SHM (1u << 0)
#define EMM_STREAM_FEATURES EMM_STREAM_F_SHM

enum emm_frame_kind {
    EMM_FRAME_HELLO = 1,
    EMM_FRAME_MSG = 2,
    EMM_FRAME_RELEASE = 3,
    EMM_FRAME_LOOKUP = 4,
    EMM_FRAME_LOOKUP_REPLY = 5,
    EMM_FRAME_REGION = 6, /* EMM_STREAM_F_SHM only */
    EMM_FRAME_FREE = 7,   /* EMM_STREAM_F_SHM only */
};

/* In a MSG frame's flags: the header's control / name / reply is a name the
 * receiver gave (a right going back to its owner), not the sender's own. */
#define EMM_FRAME_F_CONTROL_YOURS (1u << 0)
#define EMM_FRAME_F_NAME_YOURS    (1u << 1)
#define EMM_FRAME_F_REPLY_YOURS   (1u << 2)
/* In a MSG frame's flags: the data is in the shared region, from page `arg`
 * (the header's length bytes); nothing follows in the stream. */
#define EMM_FRAME_F_SHM           (1u << 3)
#define EMM_FRAME_F_ALL           15u

struct emm_frame {
    uint16_t kind, flags;
    uint32_t dest, arg;
    size_t body; /* body bytes after the prefix (the payload not counted) */
    /* MSG */
    struct emm_msg_hdr hdr;
    uint32_t payload;
    /* HELLO */
    uint32_t version, features, page_size, max_request;
    /* REGION */
    uint32_t region_pages, region_kpages;
    /* LOOKUP, LOOKUP_REPLY */
    uint64_t object;
    uint32_t name;
    uint64_t seqno; /* LOOKUP_REPLY */
};

/* Reads the prefix (len >= EMM_FRAME_PREFIX_SIZE): kind, flags, dest, arg and
 * the body size. 0, or -EBADMSG with *why naming the field. */
int emm_frame_decode_prefix(const unsigned char *buf, size_t len, struct emm_frame *f,
                            const char **why);
/* Reads the body (len >= f->body) of a frame whose prefix was decoded. A MSG's
 * payload is checked (0 or length, page-aligned, at most EMM_MAX_REQUEST_BYTES)
 * before anyone reads it; with EMM_FRAME_F_SHM the payload is 0 and the length
 * one request at most, page-aligned, not 0 (whether the slot is the sender's
 * is the connection's to check). 0, or -EBADMSG / -EPROTONOSUPPORT with *why. */
int emm_frame_decode_body(const unsigned char *buf, size_t len, struct emm_frame *f,
                          const char **why);

/* Writes a prefix; returns EMM_FRAME_PREFIX_SIZE. */
size_t emm_frame_encode_prefix(unsigned char *buf, uint16_t kind, uint16_t flags,
                               uint32_t dest, uint32_t arg);
/* Whole small frames into buf (EMM_FRAME_MAX_FIXED bytes); each returns its size. */
size_t emm_frame_encode_hello(unsigned char *buf, uint32_t version, uint32_t features);
size_t emm_frame_encode_lookup(unsigned char *buf, uint32_t cookie, uint64_t object);
size_t emm_frame_encode_lookup_reply(unsigned char *buf, uint32_t cookie, uint64_t object,
                                     uint32_t name, int32_t err, uint64_t seqno);
/* A MSG frame's prefix and header (the payload follows, from the message):
 * its size, or -EINVAL when the header cannot be encoded. */
int emm_frame_encode_msg(unsigned char *buf, uint16_t flags, uint32_t dest,
                         const struct emm_msg_hdr *h, uint32_t payload);
/* Turns an encoded MSG frame (its payload announced in the header) into one
 * whose data is in the shared region from page `slot`: sets EMM_FRAME_F_SHM,
 * the prefix's arg, and a payload of 0. */
void emm_frame_set_slot(unsigned char *buf, uint32_t slot);
size_t emm_frame_encode_region(unsigned char *buf, uint32_t pages, uint32_t kpages);
const char *emm_frame_kind_name(uint16_t kind);

#endif
