/*
 * msg.h - the Mach memory-object protocol as emm messages. One struct serves
 * every message; each id documents which fields it uses. Names follow Mach 3.0 /
 * GNU Mach (reference/mach-protocol.md); emm extensions are marked.
 *
 * Ownership: the sender allocates a message and hands it to emm_port_send; the
 * receiver owns it from then on and ends it with emm_msg_release(msg, status),
 * which calls the sender's release hook (that is Mach's vm_deallocate of the
 * out-of-line data, and tells a data_return's sender whether the pager took it).
 */
#ifndef EMM_MSG_H
#define EMM_MSG_H

#include <stdint.h>

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
    MO_DATA_RETURN,      /* offset, length, data, flags DIRTY|KERNEL_COPY; release(status) */
    MO_LOCK_COMPLETED,   /* offset, length (sent to the lock_request's reply port) */
    MO_SUPPLY_COMPLETED, /* offset, length, arg=result, error_offset in aux */
    MO_CHANGE_COMPLETED, /* flags MAY_CACHE, arg=copy_strategy */
    MO_SYNCHRONIZE,      /* offset, length, arg=sync flags */
    MO_TERMINATE,        /* control, name: the pager gets the rights and drops them */
    MO_DISCARD,          /* emm extension: offset, length: pages are gone (truncate, punch) */
    MO_DATA_QUERY,       /* emm extension: offset=from, length=span, arg=tag: which pages do
                          * you store? Answered by MO_QUERY_REPLY (SEEK_DATA/SEEK_HOLE) */

    /* pager -> kernel, sent to the control port */
    MO_READY = 32,        /* flags MAY_CACHE, arg=copy_strategy */
    MO_DATA_SUPPLY,       /* offset, length, data, access=lock_value, flags PRECIOUS, reply */
    MO_DATA_UNAVAILABLE,  /* offset, length: zero-fill */
    MO_DATA_ERROR,        /* offset, length, arg=errno */
    MO_LOCK_REQUEST,      /* offset, length, arg=should_return, flags FLUSH, access=lock_value, reply */
    MO_CHANGE_ATTRIBUTES, /* flags MAY_CACHE, arg=copy_strategy, reply */
    MO_DESTROY,           /* arg=reason (errno) */
    MO_SYNCHRONIZE_COMPLETED, /* offset, length, arg=0 or -errno (emm: carries the result) */
    MO_QUERY_REPLY,       /* emm extension: arg=the query's tag; offset, length: the first run
                           * of pages it stores at or after the query's offset (offset
                           * UINT64_MAX, length 0: none before offset+span) */
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
 * length that count times the page size (st_blocks). */
#define MO_F_QUERY_COUNT (1u << 7)

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

struct emm_msg {
    struct emm_msg *next; /* port queue link */
    uint32_t id;          /* enum emm_msg_id */
    uint32_t flags;
    uint64_t seqno;       /* stamped by the port on send */
    uint64_t offset, length;
    uint64_t aux;
    uint32_t access;
    int32_t arg;
    void *data;              /* whole pages, `length` bytes */
    struct emm_port *control; /* send right carried by the message (kernel -> pager) */
    struct emm_port *name;    /* MO_INIT, MO_TERMINATE */
    struct emm_port *reply;   /* send-once right, or NULL */
    /* MO_DATA_RETURN to a pager that said MO_F_CLUSTER_OK: the pages that follow
     * this one (offset + PS, ...), each a message of its own; releasing the head
     * releases them all with the same status. */
    struct emm_msg *chain;
    /* Called once by the receiver when done; frees data and message. */
    void (*release)(struct emm_msg *msg, int status);
    void *release_ctx;
};

/* A heap message whose release frees it (and nothing else). */
struct emm_msg *emm_msg_new(uint32_t id, uint64_t offset, uint64_t length);
void emm_msg_release(struct emm_msg *msg, int status);
const char *emm_msg_name(uint32_t id);

#endif
