/*
 * emm/pager.h - the public external-pager API (libemm-pager): a memory manager
 * in its own process, speaking the Mach memory-object protocol with emmd over
 * a Unix socket. Stands alone: it includes only <stddef.h> and <stdint.h>.
 *
 * A pager creates a struct emm_pager with a table of callbacks, then accepts
 * (or makes) one connection to emmd. emmd asks for objects by id; the library
 * makes a memory object port for each and calls the callbacks with the
 * kernel's messages (init, data_request, data_unlock, data_return,
 * lock_completed, synchronize, terminate, and the emm extensions). The pager
 * answers with the emm_pager_* send functions (ready, data_supply,
 * data_unavailable, data_error, lock_request, change_attributes, destroy,
 * synchronize_completed, data_return_completed). docs/emm-pager.md and
 * emm-pager(3) explain the protocol; docs/protocol.md has the wire format.
 *
 * THREADING RULES
 *  - Callbacks run on the library's worker threads (emm_pager_create's
 *    `threads`, 1 if 0), never on the caller's thread and never on the
 *    socket's reader thread.
 *  - Callbacks for one object run one at a time, in the order the kernel sent
 *    the messages (lock_completed included: it comes to the object's own
 *    port). Callbacks for different objects may run at the same time on
 *    different workers; with threads = 1 every callback is serialised.
 *  - A callback may block (disk I/O, a lock of the pager's own): only its
 *    object waits, and the other objects while all workers are busy.
 *  - Every emm_pager_* send function may be called from any thread, inside a
 *    callback or not, and never blocks on the socket (a writer thread drains
 *    a queue). Sends for one object from one thread reach the kernel in the
 *    order they were made.
 *  - A callback must not call emm_pager_wait, emm_pager_shutdown or
 *    emm_pager_free (they join the threads that run callbacks).
 *  - An object handle stays valid until its object_close callback, which
 *    runs once per object: on its worker right after the terminate callback,
 *    or from emm_pager_free for objects still open. Do not use it after.
 *
 * ERRORS: functions return 0 or a negative errno. An errno a message carries
 * (data_error, synchronize_completed, data_return_completed, destroy) is
 * given to the send functions as a positive errno value (EIO), as it travels
 * on the wire; a callback reports failure by returning -errno.
 *
 * ABI: struct emm_pager_ops and struct emm_pager_msg start with struct_size
 * and only ever grow at the end; the library reads min(struct_size, its own)
 * of the ops and zero-fills the rest; an unknown api_version is refused.
 * tests/abi/abi_pager_layout.c pins every offset.
 */
#ifndef EMM_PAGER_H
#define EMM_PAGER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMM_PAGER_API_VERSION 1
#define EMM_PAGER_PAGE_SIZE 4096u
/* No message moves more than this many bytes (256 pages). */
#define EMM_PAGER_MAX_REQUEST (256u * 4096u)

/* Message ids, as on the wire (docs/protocol.md). Kernel -> pager: */
enum emm_pager_msg_id {
    EMM_PAGER_INIT = 1,
    EMM_PAGER_DATA_REQUEST = 2,
    EMM_PAGER_DATA_UNLOCK = 3,
    EMM_PAGER_DATA_RETURN = 4,
    EMM_PAGER_LOCK_COMPLETED = 5,
    EMM_PAGER_SUPPLY_COMPLETED = 6,
    EMM_PAGER_CHANGE_COMPLETED = 7,
    EMM_PAGER_SYNCHRONIZE = 8,
    EMM_PAGER_TERMINATE = 9,
    EMM_PAGER_DISCARD = 10, /* emm: pages are gone (truncate, punch) */
    EMM_PAGER_DATA_QUERY = 11, /* emm: which pages do you store? (SEEK_DATA/SEEK_HOLE,
                                  st_blocks, statfs); libemm-pager answers it from the
                                  data_query callback (without one: cannot tell) */
    /* pager -> kernel */
    EMM_PAGER_READY = 32,
    EMM_PAGER_DATA_SUPPLY = 33,
    EMM_PAGER_DATA_UNAVAILABLE = 34,
    EMM_PAGER_DATA_ERROR = 35,
    EMM_PAGER_LOCK_REQUEST = 36,
    EMM_PAGER_CHANGE_ATTRIBUTES = 37,
    EMM_PAGER_DESTROY = 38,
    EMM_PAGER_SYNCHRONIZE_COMPLETED = 39,
    EMM_PAGER_QUERY_REPLY = 40,          /* emm: the answer to data_query */
    EMM_PAGER_DATA_RETURN_COMPLETED = 41 /* emm: a data_return's outcome */
};

/* Access bits (vm_prot_t). A lock value is the set of accesses forbidden. */
#define EMM_PAGER_PROT_NONE 0u
#define EMM_PAGER_PROT_READ 1u
#define EMM_PAGER_PROT_WRITE 2u
#define EMM_PAGER_PROT_ALL 3u
#define EMM_PAGER_PROT_NO_CHANGE 8u /* lock_request: leave the lock as it is */

/* Message flags. */
#define EMM_PAGER_F_DIRTY (1u << 0)       /* data_return: the kernel changed the pages */
#define EMM_PAGER_F_KERNEL_COPY (1u << 1) /* data_return: the kernel keeps a copy */
#define EMM_PAGER_F_PRECIOUS (1u << 2)    /* data_supply: return the pages even clean */
#define EMM_PAGER_F_FLUSH (1u << 3)       /* lock_request: drop the pages */
#define EMM_PAGER_F_MAY_CACHE (1u << 4)   /* ready, change_attributes */
#define EMM_PAGER_F_CLUSTER_OK (1u << 5)  /* ready: data_returns may span many pages */
#define EMM_PAGER_F_QUERY_COUNT (1u << 7) /* data_query: how many pages, not where */

/* lock_request's should_return. */
enum { EMM_PAGER_RETURN_NONE = 0, EMM_PAGER_RETURN_DIRTY = 1, EMM_PAGER_RETURN_ALL = 2 };

/* Copy strategies (ready, change_attributes). */
enum {
    EMM_PAGER_COPY_NONE = 0,
    EMM_PAGER_COPY_CALL = 1,
    EMM_PAGER_COPY_DELAY = 2,
    EMM_PAGER_COPY_TEMPORARY = 3
};

/* The message header on the wire (72 bytes, little-endian), for pagers that
 * trace or check the socket themselves; the library encodes and decodes it. */
#define EMM_PAGER_WIRE_MAGIC UINT32_C(0x684d4d45) /* "EMMh" */
#define EMM_PAGER_WIRE_VERSION 1u
#define EMM_PAGER_WIRE_HDR_SIZE 72u
struct emm_pager_wire_hdr {
    uint32_t magic;   /* EMM_PAGER_WIRE_MAGIC */
    uint16_t version; /* EMM_PAGER_WIRE_VERSION */
    uint16_t size;    /* EMM_PAGER_WIRE_HDR_SIZE */
    uint32_t id;      /* enum emm_pager_msg_id */
    uint32_t flags;   /* EMM_PAGER_F_* */
    uint64_t seqno;
    uint64_t offset;
    uint64_t length;
    uint64_t arg2;
    uint32_t access;
    int32_t arg;
    uint32_t control, name, reply; /* port names (the sender's) */
    uint32_t payload;              /* data bytes that follow: 0 or length */
};

/* A kernel message as a callback sees it (since API 1). */
struct emm_pager_msg {
    size_t struct_size;
    uint32_t id;     /* enum emm_pager_msg_id */
    uint32_t flags;  /* EMM_PAGER_F_* */
    uint64_t seqno;  /* per object port, in the kernel's send order */
    uint64_t offset; /* bytes, page-aligned */
    uint64_t length; /* bytes, page-aligned */
    uint64_t arg2;   /* supply_completed: error offset */
    uint32_t access; /* data_request/data_unlock: the desired access */
    int32_t arg;     /* init: page size; synchronize: flags; *_completed: errno */
    /* data_return: `length` bytes of page data, valid until the callback returns. */
    const void *data;
};

struct emm_pager;        /* a pager and its connection to emmd */
struct emm_pager_object; /* one memory object the kernel asked for */

/* A callback's return value: the pager answers later itself
 * (emm_pager_data_return_completed, emm_pager_synchronize_completed). */
#define EMM_PAGER_LATER 1

typedef int (*emm_pager_msg_fn)(struct emm_pager_object *obj, const struct emm_pager_msg *m);

/* The pager's callbacks (since API 1). Any may be NULL: the default is given. */
struct emm_pager_ops {
    size_t struct_size; /* sizeof(struct emm_pager_ops) */
    uint32_t api_version; /* EMM_PAGER_API_VERSION */
    uint32_t flags;       /* none yet: 0 */
    /* emmd asks for object `id` (on the reader thread, before any message for
     * it): 0 and *object_ctx set, or -errno to refuse it. Default: accept. */
    int (*object_open)(void *pager_ctx, uint64_t id, void **object_ctx);
    /* The object is gone (after terminate, or at emm_pager_free): its handle
     * is invalid once this returns. A later lookup of the id opens it anew. */
    void (*object_close)(void *pager_ctx, struct emm_pager_object *obj);
    /* Each returns 0 or -errno. Defaults and what a -errno does: */
    emm_pager_msg_fn init;         /* default: ready(0, COPY_DELAY); -errno: destroy */
    emm_pager_msg_fn data_request; /* default: data_unavailable; -errno: data_error */
    emm_pager_msg_fn data_unlock;  /* default: grant (lock_request to NONE); -errno: data_error */
    /* 0 or -errno: the library sends data_return_completed with it (0: the
     * pager has the pages); EMM_PAGER_LATER: the pager calls
     * emm_pager_data_return_completed itself. Default: -EOPNOTSUPP. */
    emm_pager_msg_fn data_return;
    emm_pager_msg_fn lock_completed;   /* after emm_pager_lock_request(..., reply = 1) */
    emm_pager_msg_fn supply_completed; /* after emm_pager_data_supply(..., reply = 1) */
    emm_pager_msg_fn change_completed; /* after emm_pager_change_attributes(..., reply = 1) */
    /* 0 or -errno: synchronize_completed is sent with it; EMM_PAGER_LATER: the
     * pager sends it. Default: 0. */
    emm_pager_msg_fn synchronize;
    emm_pager_msg_fn discard;   /* emm: pages gone from the object (truncate, punch) */
    /* The kernel let go of the object: after it returns, the library drops the
     * control right and ends the object (object_close). */
    emm_pager_msg_fn terminate;
    /* emm: data_query (appended in API 1; the library sends the answer, to the
     * control port or, for an object the kernel asks about without mapping
     * it, before any init, to the query's reply port). With
     * EMM_PAGER_F_QUERY_COUNT in m->flags: set *length to the pages the pager
     * stores of the object times the page size (st_blocks, statfs). Otherwise:
     * the first run of pages it stores at or after m->offset, within
     * m->length: *offset and *length (*offset UINT64_MAX: none; *length
     * UINT64_MAX: to the end). Return 0, or -errno when the pager cannot tell:
     * the kernel then assumes data in the whole span and an unknown count.
     * Default (NULL): cannot tell. */
    int (*data_query)(struct emm_pager_object *obj, const struct emm_pager_msg *m,
                      uint64_t *offset, uint64_t *length);
};

/* ---- the pager and its connection ---- */

/* A pager with ops (copied) and ctx; threads workers run the callbacks (0: 1).
 * 0, -EINVAL (ops), -EPROTONOSUPPORT (api_version), or -errno. */
int emm_pager_create(const struct emm_pager_ops *ops, void *ctx, unsigned threads,
                     struct emm_pager **out);
/* A listening socket at path (mode 0600; a stale socket is replaced): what
 * emmd's `pager = unix:PATH` connects to. fd, or -errno. */
int emm_pager_listen(const char *path);
/* One connection: accepted on lfd, made to a listening path, or an already
 * connected SOCK_STREAM Unix socket (taken, closed on failure). The peer must
 * run as our uid, root, or peer_uid ((uint32_t)-1: none); its hello is checked.
 * One connection per pager. 0, -EPERM, -EPROTO, -EBUSY, or -errno. */
int emm_pager_accept(struct emm_pager *p, int lfd, uint32_t peer_uid);
int emm_pager_connect(struct emm_pager *p, const char *path);
int emm_pager_attach(struct emm_pager *p, int fd, uint32_t peer_uid);
/* Waits until the connection ends: 0 for a clean end, -errno otherwise. */
int emm_pager_wait(struct emm_pager *p);
/* Cuts the connection (any thread but a callback); emm_pager_wait returns. */
void emm_pager_shutdown(struct emm_pager *p);
/* Shuts down, calls object_close for every object, frees p. */
void emm_pager_free(struct emm_pager *p);
void *emm_pager_ctx(const struct emm_pager *p);
/* "1.0 (API 1, wire 1)". */
const char *emm_pager_version(void);

/* ---- objects ---- */
uint64_t emm_pager_object_id(const struct emm_pager_object *obj);
void *emm_pager_object_ctx(const struct emm_pager_object *obj);
struct emm_pager *emm_pager_object_pager(const struct emm_pager_object *obj);

/* ---- pager -> kernel: each 0, -ENOTCONN (before init),
 * -EPIPE (the connection is gone), -EINVAL (unaligned, over the limit). ---- */
int emm_pager_ready(struct emm_pager_object *obj, uint32_t flags, int32_t copy_strategy);
/* data (length bytes, copied before the call returns); lock_value: the
 * accesses the kernel must ask for with data_unlock first. reply: ask for
 * supply_completed. */
int emm_pager_data_supply(struct emm_pager_object *obj, uint64_t offset, uint64_t length,
                          const void *data, uint32_t lock_value, uint32_t flags, int reply);
int emm_pager_data_unavailable(struct emm_pager_object *obj, uint64_t offset, uint64_t length);
int emm_pager_data_error(struct emm_pager_object *obj, uint64_t offset, uint64_t length,
                         int err);
/* Mach's memory_object_lock_request: set the lock value of the resident pages
 * in range (EMM_PAGER_PROT_NO_CHANGE: keep), return them (should_return),
 * drop them (EMM_PAGER_F_FLUSH). reply: lock_completed follows once done. */
int emm_pager_lock_request(struct emm_pager_object *obj, uint64_t offset, uint64_t length,
                           int should_return, uint32_t flags, uint32_t lock_value, int reply);
int emm_pager_change_attributes(struct emm_pager_object *obj, uint32_t flags,
                                int32_t copy_strategy, int reply);
int emm_pager_destroy(struct emm_pager_object *obj, int reason);
int emm_pager_synchronize_completed(struct emm_pager_object *obj, uint64_t offset,
                                    uint64_t length, int err);
/* The answer to data_return m (its offset, length and seqno): err 0 if the
 * pager has the pages, else an errno (the kernel keeps or double-pages them). */
int emm_pager_data_return_completed(struct emm_pager_object *obj, uint64_t offset,
                                    uint64_t length, uint64_t seqno, int err);

#ifdef __cplusplus
}
#endif

#endif
