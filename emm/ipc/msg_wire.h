/*
 * msg_wire.h - the message header on the wire: a fixed 72-byte little-endian
 * record, one to one with struct emm_msg_hdr, that the stream transport sends
 * before a message's data (docs/protocol.md has the table). Stateless: no
 * locking.
 *
 *  off size field
 *    0    4 magic    EMM_WIRE_MAGIC ("EMMh")
 *    4    2 version  EMM_WIRE_VERSION
 *    6    2 size     EMM_WIRE_HDR_SIZE (header bytes)
 *    8    4 id       enum emm_msg_id
 *   12    4 flags    MO_F_*
 *   16    8 seqno
 *   24    8 offset
 *   32    8 length
 *   40    8 arg2
 *   48    4 access   VM_PROT_*
 *   52    4 arg      (int32, two's complement)
 *   56    4 control  port name
 *   60    4 name     port name
 *   64    4 reply    port name
 *   68    4 payload  data bytes that follow the header: 0, or `length`
 *
 * Port names on the wire are the sender's; the transport translates them.
 */
#ifndef EMM_MSG_WIRE_H
#define EMM_MSG_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define EMM_WIRE_MAGIC    UINT32_C(0x684d4d45) /* "EMMh" in little-endian byte order */
#define EMM_WIRE_VERSION  1u
#define EMM_WIRE_HDR_SIZE 72u

/* Writes h (and the payload size that follows it) into buf. 0, or -EINVAL
 * when payload is neither 0 nor h->length, or exceeds EMM_MAX_REQUEST_BYTES. */
int emm_wire_encode(const struct emm_msg_hdr *h, uint32_t payload,
                    unsigned char buf[EMM_WIRE_HDR_SIZE]);

/* Reads a header from len bytes at buf. 0 and *h, *payload filled; or, with
 * *why naming the field that is wrong (for the caller's log line):
 *   -EAGAIN          len < EMM_WIRE_HDR_SIZE (read more first)
 *   -EBADMSG         wrong magic, size, unknown id, or a payload that is not 0
 *                    or `length`, or larger than EMM_MAX_REQUEST_BYTES
 *   -EPROTONOSUPPORT another version
 * Nothing is allocated: payload is checked before anyone reads it. */
int emm_wire_decode(const unsigned char *buf, size_t len, struct emm_msg_hdr *h,
                    uint32_t *payload, const char **why);

#endif
