/*
 * msg.h - the Mach memory-object protocol as emm messages. Names follow Mach 3.0 /
 * GNU Mach (reference/mach-protocol.md); emm extensions are marked. Each id below
 * documents which header fields it uses; docs/protocol.md has the whole protocol.
 *
 * A message is a fixed *header* of plain integers (struct emm_msg_hdr: what a
 * wire transport sends, see msg_wire.h) plus a local *envelope* (queue link,
 * data pointer, clustered-return chain, release hook) that never leaves the
 * process. Port rights in the header are integer names (emm_port_name_t, see
 * port.h), never pointers; a message owns one reference for each name it
 * carries, dropped by emm_msg_release unless a receiver took the right
 * (emm_port_take).
 *
 * Errors in the protocol: every errno a message carries (data_error's arg,
 * synchronize_completed's arg, destroy's reason, supply_completed's result,
 * data_return_completed's arg) is 0 or a *positive* errno value (EIO, ENOSPC),
 * as Mach's kern_return_t codes are positive; the kernel refuses a negative
 * one (emm/vm/vm_msgcheck.c).
 * Functions in emm still return 0 or a negative errno: the sign changes where
 * a message is built (m->arg = -rc) or read (return -msg->arg).
 *
 * Ownership: the sender allocates a message and hands it to emm_port_send; the
 * receiver owns it from then on and ends it with emm_msg_release(msg, status),
 * which calls the sender's release hook (that is Mach's vm_deallocate of the
 * out-of-line data). What a receiver decides travels as a message, never only
 * as a release status, so a receiver in another process can say it too: a
 * data_return's outcome is MO_DATA_RETURN_COMPLETED. A release status other
 * than 0 says only that the message was not taken (a dead port: -EPIPE).
 */
#ifndef EMM_MSG_H
#define EMM_MSG_H

#include <stdint.h>
#include <sys/queue.h>

struct emm_port;

/* The one request-size limit: no message moves more than 1 MiB (256 pages),
 * and FUSE is mounted with max_read/max_write of the same size. An unaligned
 * range of that size touches one page more; EMM_MAX_SPAN_PAGES has room. */
#define EMM_MAX_REQUEST_PAGES 256u
#define EMM_MAX_REQUEST_BYTES (EMM_MAX_REQUEST_PAGES * 4096u)
#define EMM_MAX_SPAN_PAGES (EMM_MAX_REQUEST_PAGES + 2u)

enum emm_msg_id {
    /* kernel -> pager, sent to the memory object port */
    MO_INIT = 1,         /* control, name, arg=page_size */
    MO_DATA_REQUEST,     /* offset, length, access=desired_access */
    MO_DATA_UNLOCK,      /* offset, length, access=desired_access */
    MO_DATA_RETURN,      /* offset, length, data, flags DIRTY|KERNEL_COPY, reply: answered
                            by MO_DATA_RETURN_COMPLETED */
    MO_LOCK_COMPLETED,   /* offset, length (sent to the lock_request's reply port) */
    MO_SUPPLY_COMPLETED, /* offset, length, arg=result (errno), arg2=error_offset */
    MO_CHANGE_COMPLETED, /* flags MAY_CACHE, arg=copy_strategy */
    MO_SYNCHRONIZE,      /* offset, length, arg=sync flags */
    MO_TERMINATE,        /* control, name: the pager gets the rights and drops them */
    MO_DISCARD,          /* emm extension: offset, length: pages are gone (truncate, punch) */
    MO_DATA_QUERY = 11,  /* emm extension: offset=from, length=span, arg=tag: which pages do
                          * you store? Answered by MO_QUERY_REPLY (SEEK_DATA/SEEK_HOLE), to
                          * reply when it carries one (an object the kernel has not mapped:
                          * no init came), else to the control port */

    /* pager -> kernel, sent to the control port */
    MO_READY = 32,        /* flags MAY_CACHE, arg=copy_strategy */
    MO_DATA_SUPPLY,       /* offset, length, data, access=lock_value, flags PRECIOUS, reply */
    MO_DATA_UNAVAILABLE,  /* offset, length: zero-fill */
    MO_DATA_ERROR,        /* offset, length, arg=errno */
    MO_LOCK_REQUEST,      /* offset, length, arg=should_return, flags FLUSH, access=lock_value, reply */
    MO_CHANGE_ATTRIBUTES, /* flags MAY_CACHE, arg=copy_strategy, reply */
    MO_DESTROY,           /* arg=reason (errno) */
    MO_SYNCHRONIZE_COMPLETED, /* offset, length, arg=errno (emm: carries the result) */
    MO_QUERY_REPLY = 40,  /* emm extension: arg=the query's tag; offset, length: the first run
                           * of pages it stores at or after the query's offset (offset
                           * UINT64_MAX, length 0: none before offset+span) */
    /* emm extension: the outcome of a data_return (a clustered one: of its
     * whole run), sent to the data_return's reply port when it has one, else
     * to the control port: offset, length, arg=errno (0: the pager has the
     * pages), arg2=the data_return's seqno. */
    MO_DATA_RETURN_COMPLETED = 41,

    /* emm extension (0x60-0x6f, docs/protocol.md "The memory server's
     * namespace"): a host's filesystem whose pager is an emm-memserver asks it
     * for names, sizes and directories; the server owns them. Requests go to
     * the namespace port (the object port of id MO_NS_PORT_ID) with a reply
     * port; data, when present, is whole pages (ns_wire.h encodes records and
     * names). Each is answered by one MO_NS_REPLY to its reply port. */
    MO_NS_LOOKUP = 0x60,  /* offset=parent id, data=name: the entry's record */
    MO_NS_READDIR = 0x61, /* offset=directory id, arg2=first id: records, in id order */
    MO_NS_CREATE = 0x62,  /* offset=parent id, data=a record (type, mode, uid, gid, name) */
    MO_NS_REMOVE = 0x63,  /* offset=parent id, arg=1 for a directory, data=name */
    MO_NS_RENAME = 0x64,  /* offset=parent id, arg2=new parent id, arg=flags,
                             data=name, new name */
    MO_NS_SETATTR = 0x65, /* offset=id, arg=MO_NS_SET_* mask, data=a record with them */
    MO_NS_GETATTR = 0x66, /* offset=id: its record */
    MO_NS_STATS = 0x67,   /* the server's INFO-style stats and what this host holds */
    /* server -> host */
    MO_NS_REPLY = 0x68,   /* arg=errno (0 ok), length, data: records or text */
    /* emm extension: cluster-wide record locks (fcntl, flock), arbitrated by a
     * pager that several hosts share (emm-memserver; docs/protocol.md "Record
     * locks"). 0x70..0x77 go kernel -> pager on the memory object port,
     * 0x78..0x7f pager -> kernel to the request's reply port. A range is
     * offset (first byte) and length (bytes, >= 1; offset + length <= 2^63).
     * The owner is arg2 (the host's lock owner; the pager adds the host). */
    MO_LOCK_ACQUIRE = 0x70, /* offset, length, access=READ (shared) or WRITE (exclusive),
                             * flags LK_WAIT|LK_FLOCK|token<<8, arg=pid, arg2=owner, reply:
                             * answered by MO_LOCK_REPLY when granted or refused */
    MO_LOCK_RELEASE = 0x71, /* offset, length, flags LK_FLOCK, arg2=owner; reply optional */
    MO_LOCK_TEST = 0x72,    /* as acquire (no LK_WAIT), reply: the first conflicting lock */
    MO_LOCK_CANCEL = 0x73,  /* flags token<<8, arg2=owner: a waiting acquire is answered
                             * EINTR (its FUSE request was interrupted) */
    MO_LOCK_REPLY = 0x78,   /* arg=errno (0 granted; EAGAIN, EINTR, EINVAL), and for a test:
                             * access=the conflicting lock's kind (NONE: no conflict), offset,
                             * length its range, arg2 its pid on its host */

    /* a port notification, local only (never on the wire: the codec does not
     * know it): Mach's dead-name notification. Sent to the notify port given
     * to emm_port_request_dead_name when the named port dies; offset = the
     * request's cookie. */
    EMM_NOTIFY_DEAD_NAME = 64,
};

/* flags */
#define MO_F_DIRTY       (1u << 0)
#define MO_F_KERNEL_COPY (1u << 1)
#define MO_F_PRECIOUS    (1u << 2)
#define MO_F_FLUSH       (1u << 3)
#define MO_F_MAY_CACHE   (1u << 4)
/* emm extension, in ready/change_attributes: the pager takes clustered
 * data_returns (a chain of contiguous pages, see emm_msg.chain). */
#define MO_F_CLUSTER_OK  (1u << 5)
/* emm extension, on data_unavailable from the default pager: it does not hold
 * these pages (they were never double-paged, or were replayed): ask the
 * object's own pager. See vm_dpager.h. */
#define MO_F_NOT_HELD    (1u << 6)
/* emm extension, on data_query: how many pages of the object the pager
 * stores (offset 0, length UINT64_MAX); query_reply's offset is 0 and its
 * length that count times the page size (st_blocks, statfs), or UINT64_MAX
 * when the pager cannot tell. */
#define MO_F_QUERY_COUNT (1u << 7)
/* emm extension, in ready/change_attributes: the pager grants write access
 * itself (a coherence pager such as emm-memserver): a write to a page that is
 * not resident asks for it with a data_request for write access even when it
 * covers the whole page, instead of making a new page without asking. */
#define MO_F_STRICT_WRITE (1u << 8)
/* emm extension, on data_query: the pager's own statistics ("key:value"
 * lines, e.g. its backend's); query_reply's offset is 0, its length one
 * page and its data that page, the text NUL-terminated (`emmctl info`). A
 * pager that does not know the flag answers something else: no lines. */
#define MO_F_QUERY_INFO  (1u << 9)

/* The namespace (MO_NS_*): the object id whose port is the server's
 * namespace port, and what a MO_NS_SETATTR sets. */
#define MO_NS_PORT_ID     UINT64_MAX
#define MO_NS_SET_SIZE    (1u << 0) /* exactly this size (truncate, extend) */
#define MO_NS_SET_GROW    (1u << 1) /* at least this size (a write past the end) */
#define MO_NS_SET_MODE    (1u << 2)
#define MO_NS_SET_OWNER   (1u << 3) /* uid and gid */
#define MO_NS_SET_TIMES   (1u << 4) /* atime and mtime */
/* 0x60-0x67 are a host's requests, 0x68-0x6f the server's answers. */
#define MO_NS_IS_REQUEST(id) ((id) >= MO_NS_LOOKUP && (id) <= MO_NS_STATS)
#define MO_NS_IS_ANSWER(id)  ((id) >= MO_NS_REPLY && (id) <= 0x6f)
/* record locks (MO_LOCK_*): flags, and the acquire's token (a host's own
 * number for a waiting request, echoed by a cancel) in flags' upper 24 bits */
#define MO_LK_F_WAIT  (1u << 0) /* F_SETLKW / flock without LOCK_NB: queue, FIFO */
#define MO_LK_F_FLOCK (1u << 1) /* a flock(2) lock: the whole file, its own kind */
#define MO_LK_TOKEN(flags) ((flags) >> 8)
#define MO_LK_TOKEN_MAX 0xffffffu
/* The first and last record-lock ids, and which side sends them. */
#define MO_LOCK_FIRST 0x70u
#define MO_LOCK_LAST  0x7fu
static inline int emm_msg_is_lock(uint32_t id) { return id >= MO_LOCK_FIRST && id <= MO_LOCK_LAST; }
static inline int emm_msg_lock_from_kernel(uint32_t id) { return id >= MO_LOCK_FIRST && id < 0x78u; }

/* should_return */
enum { MO_RETURN_NONE = 0, MO_RETURN_DIRTY = 1, MO_RETURN_ALL = 2 };

/* access bits (vm_prot_t); lock_value is the set of forbidden accesses */
#define VM_PROT_NONE  0u
#define VM_PROT_READ  1u
#define VM_PROT_WRITE 2u
#define VM_PROT_ALL   3u
#define VM_PROT_NO_CHANGE 8u

/* copy strategies */
enum { MO_COPY_NONE = 0, MO_COPY_CALL, MO_COPY_DELAY, MO_COPY_TEMPORARY };

/* A port right carried in a header: an integer name, 0 for none. */
typedef uint32_t emm_port_name_t;
#define EMM_PORT_NULL ((emm_port_name_t)0)

/*
 * The header: plain integers only. The same fields, in this order, are the
 * wire format (msg_wire.h gives their sizes and offsets, docs/protocol.md the
 * table). Fields are only ever appended (with a new wire version).
 */
#define EMM_MSG_HDR_FIELDS                                                             \
    uint32_t id;      /* enum emm_msg_id */                                            \
    uint32_t flags;   /* MO_F_* */                                                     \
    uint64_t seqno;   /* stamped by the port on send */                                \
    uint64_t offset;  /* bytes, page-aligned */                                        \
    uint64_t length;  /* bytes, page-aligned; the data's size when data is carried */  \
    uint64_t arg2;    /* error_offset; the seqno a data_return_completed answers */    \
    uint32_t access;  /* VM_PROT_* */                                                  \
    int32_t arg;      /* per id: page size, errno (>= 0), should_return, ... */        \
    emm_port_name_t control; /* send right to the control port (kernel -> pager) */    \
    emm_port_name_t name;    /* MO_INIT, MO_TERMINATE: the name port */                \
    emm_port_name_t reply;   /* send-once right for an answer, or EMM_PORT_NULL */

struct emm_msg_hdr {
    EMM_MSG_HDR_FIELDS
};

struct emm_msg {
    /* The header, as one struct (msg->hdr) or field by field (msg->offset). */
    union {
        struct emm_msg_hdr hdr;
        struct {
            EMM_MSG_HDR_FIELDS
        };
    };
    /* The local envelope: meaningful in this process only. */
    STAILQ_ENTRY(emm_msg) link; /* a port's queue, or a list of the sender's */
    void *data;           /* whole pages, `length` bytes, or NULL */
    /* MO_DATA_RETURN to a pager that said MO_F_CLUSTER_OK: the pages that follow
     * this one (offset + PS, ...), each a message of its own; releasing the head
     * releases them all with the same status. */
    struct emm_msg *chain;
    /* Called once by the receiver when done; frees data and message. */
    void (*release)(struct emm_msg *msg, int status);
    void *release_ctx; /* the sender's */
};

STAILQ_HEAD(emm_msg_list, emm_msg); /* messages linked by `link` */

/* A heap message whose release frees it (and nothing else). */
struct emm_msg *emm_msg_new(uint32_t id, uint64_t offset, uint64_t length);
/* Ends msg: drops the rights it still carries, then calls its release hook. */
void emm_msg_release(struct emm_msg *msg, int status);
/* "data_request", or "unknown"; emm_msg_id_known says which ids exist. */
const char *emm_msg_name(uint32_t id);
int emm_msg_id_known(uint32_t id);
/* A pager's answer to the data_return ret (and its chain): sends
 * MO_DATA_RETURN_COMPLETED with status (0 or -errno) to ret's reply port, or
 * else to control. 0, or -errno when it could not be sent (the caller then
 * releases ret with an error status, which the kernel takes as the answer). */
int emm_msg_return_completed(struct emm_msg *ret, struct emm_port *control, int status);

#endif
