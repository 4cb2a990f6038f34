/*
 * vm_object.h - the kernel side of memory objects (Mach's vm_object), one per
 * object a filesystem has in use, over the shared resident pool.
 *
 * The front end (FUSE) calls vm_object_read/write/sync/punch/terminate; each
 * completes through a callback, possibly later and from another thread (a pager
 * thread delivering data_supply, the pageout daemon, or the kernel worker). The
 * object talks to its pager only by messages: it holds a send right to the
 * memory object port and the receive rights of its control and name ports.
 *
 * Locking: obj->lock guards the object's page table, page states and contents,
 * waiters and counters. It is never held while sending a message, calling a
 * completion or an upcall. Lock order: object, then pool.
 */
#ifndef EMM_VM_OBJECT_H
#define EMM_VM_OBJECT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/uio.h>

#include "port.h"
#include "vm_dpager.h"
#include "vm_pool.h"

struct vm_kernel;
struct vm_object;
struct vm_io;

/* Calls from the kernel to the front end, never with a lock held. */
struct vm_upcalls {
    /* Write back and drop the Linux page cache for [off, off+len) of the object
     * (len 0: to the end), then call done(arg). From a notifier thread. */
    void (*invalidate)(void *owner, uint64_t off, uint64_t len, void (*done)(void *arg),
                       void *arg);
    /* The object's pager sent a malformed message (vm_msgcheck.c's form
     * check: never a race, always a bug or a lie; the kernel refused it).
     * The front end may cut such a pager off (a pager in another process);
     * what names the message and the field. No lock held. Optional. */
    void (*pager_misbehaved)(void *owner, const char *what);
};

/* Kernel-wide counters (emmctl info faults/memory). */
struct vm_stats {
    atomic_uint_fast64_t data_requests, pages_requested, data_supplies, pages_supplied,
        data_unavailable, data_errors, data_returns, pages_returned, return_errors,
        lock_requests, data_unlocks, synchronizes, sync_errors, evictions, reclaimed_clean,
        frame_waits, read_ops, write_ops, read_waits, double_paged, overdue, replayed,
        swap_faults, objects_killed, cow_overdue,
        holes_filled, /* pages a suspect pager lacks, zero-filled without asking it */
        bad_messages,   /* pager messages refused by the kernel's checks (vm_msgcheck.c) */
        queries,        /* data_query sent to pagers (SEEK_DATA/SEEK_HOLE) */
        queries_expired; /* given up: the pager was suspect or did not answer in time */
    /* Writes that had to wait: their data went to staged pool frames
     * (writes_staged), or their caller blocked until frames came back
     * (writes_blocked); the gauges say how many of each there are now. */
    atomic_uint_fast64_t writes_staged, writes_blocked, staged_pages_now, blocked_writers_now;
    atomic_uint_fast64_t readaround_pages; /* swapped neighbours a fault brought in too */
};

/* Per-filesystem counters the kernel keeps for the filesystem's pager, and its
 * health: a stall or failure of the pager concerns all its objects. */
/* Pager latency: log2 buckets of nanoseconds, bucket i counting [2^i, 2^(i+1))
 * (0: below 2 ns; the last: everything above), the layout of emmd's fault
 * histograms (services/emmd/latency.h). Relaxed atomic adds, no lock. */
#define VM_LAT_BUCKETS 40

struct vm_lat_hist {
    atomic_uint_fast64_t bucket[VM_LAT_BUCKETS];
    atomic_uint_fast64_t sum_ns;
};

struct vm_pager_stats {
    atomic_uint_fast64_t overdue_inflight; /* overdue data_returns it still holds */
    atomic_uint_fast64_t sick_until_ns;    /* failed lately: pageouts go to swap */
    atomic_uint_fast64_t last_failure_ns;  /* it last refused a data_return */
    atomic_uint_fast64_t last_heard_ns;    /* it last sent the kernel anything (vm_lost.c) */
    /* A pager whose port died (vm_lost.c): objects that learned it and wait
     * for a new pager (a gauge: the pager is suspect while it is not 0), how
     * many learned it in all, were re-initialised on a new pager, and
     * operations that ended in EIO because it was gone or silent too long. */
    atomic_uint_fast64_t lost_now, lost, reinits, lost_eio;
    /* Late answers dropped: a data_return_completed from a pager connection
     * replaced since (an old generation), or the synchronize_completed of an
     * fsync that already failed with EIO (vm_lost.c). */
    atomic_uint_fast64_t stale_answers;
    atomic_uint_fast64_t pageouts,   /* pages laundered to the pager */
        double_paged,                /* pages it failed to take, sent to swap */
        overdue,                     /* data_returns not acknowledged in time */
        replayed,                    /* pages from swap it has taken since */
        swap_faults,                 /* page-ins served from swap */
        killed;                      /* objects killed by a swap write failure */
    /* The protocol traffic with the pager as the kernel sees it (emmctl info
     * pagers): messages it sent to the pager's ports, and the answers it got
     * back from the pager (not those from swap). */
    atomic_uint_fast64_t msg_inits, msg_requests, msg_unlocks, msg_returns, msg_syncs,
        msg_discards, msg_terminates, msg_queries, /* sent */
        msg_supplies, msg_unavailable, msg_errors, /* received */
        msg_return_errors;                         /* data_returns it refused */
    /* data_request -> its first answer (supply, unavailable or error) from
     * the pager, per request: stamped on the request's first page when it is
     * posted, observed when an answer for that page arrives. */
    struct vm_lat_hist request_lat;
};

struct vm_object_info {
    /* new_pages: pages whose data the pager does not store (st_blocks adds
     * them to the backend's count): dirty pages it has no copy of, and the
     * pages the default pager holds for it (double paged, or all of a
     * temporary object's pages that went to swap). */
    uint64_t size, resident, dirty, laundry, absent, new_pages;
    uint64_t in_swap; /* pages the default pager holds for it */
    int state, error;
};

enum vm_object_state { VM_OBJ_INIT = 0, VM_OBJ_READY, VM_OBJ_DEAD, VM_OBJ_TERMINATED };

typedef void (*vm_read_done_fn)(void *arg, int err, const struct iovec *iov, int iovcnt);
typedef void (*vm_done_fn)(void *arg, int err);
typedef void (*vm_seek_done_fn)(void *arg, uint64_t found);

/* policy NULL: second-chance (vm_policy.h). */
int vm_kernel_create(uint64_t resident_bytes, const struct vm_policy_ops *policy,
                     const struct vm_upcalls *up, struct vm_kernel **out);
/* Mach's vm_set_default_memory_manager: before the first object is created. */
void vm_kernel_set_default_pager(struct vm_kernel *k, const struct vm_dpager_ops *ops, void *ctx);
int vm_kernel_has_default_pager(struct vm_kernel *k);
void vm_kernel_destroy(struct vm_kernel *k); /* after every object is terminated */
struct vm_stats *vm_kernel_stats(struct vm_kernel *k);
struct vm_pool *vm_kernel_pool(struct vm_kernel *k);
uint64_t vm_kernel_laundry(struct vm_kernel *k);

struct vm_object_args {
    uint64_t id, size;
    struct emm_port *pager; /* send right, consumed; NULL for a temporary object */
    void *owner;            /* the front end's, passed to upcalls */
    int temporary;          /* backend = none: the default pager is its pager */
    uint64_t dp_key;        /* its name at the default pager (vm_dp_key) */
    uint64_t deadline_ms;   /* pager.deadline: 0 = never overdue */
    struct vm_pager_stats *pstats; /* the filesystem's counters, or NULL */
    const char *pager_name; /* its filesystem's name, for log lines (outlives it), or NULL */
    /* Its pager stores none of its pages (a new object, or the pager said so):
     * the existence map is known at once, nothing to learn (vm_pmap.c). */
    int pager_empty;
    /* Its pager is shared with other kernels (a memory server): they may
     * store pages behind this kernel's back, so no existence map is kept (a
     * suspect pager's holes are never filled from it). pager_empty is ignored. */
    int pager_shared;
};

/* Creates the object and sends memory_object_init to its pager (the default
 * pager's port for a temporary object). Faults wait until the pager answers
 * ready. With a default pager, attaches to it: pages it holds for dp_key (from
 * an earlier double paging, maybe before a restart) are served from swap and
 * replayed to the pager. One reference. */
int vm_object_create(struct vm_kernel *k, const struct vm_object_args *a, struct vm_object **out);
void vm_object_ref(struct vm_object *obj);
/* A reference unless the last one is gone already (the object is being
 * freed): 1, or 0. For a handler of one of its ports, which runs until
 * vm_object_unref has destroyed them. */
int vm_object_tryref(struct vm_object *obj);
void vm_object_unref(struct vm_object *obj);

/* Reads [off, off+len) clipped to the size. done gets iovecs over wired pool
 * frames, valid only during the call. */
void vm_object_read(struct vm_object *obj, uint64_t off, uint64_t len, vm_read_done_fn done,
                    void *arg);
/* Writes len bytes at off. The data goes straight from buf into pool frames,
 * never to the heap: if the write must wait (a page being paged in, on loan,
 * locked), its bytes go to staged frames taken from the pool and the call
 * returns; if the pool has no frames for that either, the caller blocks until
 * it has (back-pressure: at most one waiting write per calling thread). done
 * may run before the call returns, or later from another thread. Does not
 * change the size: the front end does (vm_object_set_size). */
void vm_object_write(struct vm_object *obj, uint64_t off, const void *buf, uint64_t len,
                     vm_done_fn done, void *arg);
/* The same for a buffer that outlives the write (zeros): never blocks, and
 * never copies it. */
void vm_object_write_stable(struct vm_object *obj, uint64_t off, const void *buf, uint64_t len,
                     vm_done_fn done, void *arg);
/* Returns every dirty page to the pager, then synchronize; done after
 * synchronize_completed, with its result. */
void vm_object_sync(struct vm_object *obj, vm_done_fn done, void *arg);
/* `emmctl flush`: writes back and drops the Linux page cache of the object
 * (the invalidate upcall), returns every dirty page to the pager and drops
 * every page from the pool, then synchronizes; done with the synchronize's
 * result. The kernel's own msync(MS_INVALIDATE), in place of a lock_request
 * the front end would have to make the pager send. */
void vm_object_flush(struct vm_object *obj, vm_done_fn done, void *arg);
/* Discards [off, off+len): whole pages dropped and discarded at the pager,
 * partial edge pages zeroed. len UINT64_MAX: to the end. */
void vm_object_punch(struct vm_object *obj, uint64_t off, uint64_t len, vm_done_fn done,
                     void *arg);
/* Sets the size; shrinking discards the pages past it and zeroes the tail of the
 * new last page, so a later extension reads zeros. */
void vm_object_truncate(struct vm_object *obj, uint64_t size, vm_done_fn done, void *arg);
void vm_object_set_size(struct vm_object *obj, uint64_t size);
uint64_t vm_object_size(struct vm_object *obj);
/* Ends the mapping: with keep, dirty pages go back to the pager first; without,
 * they are dropped and the pager is told to discard everything (unlink). Then
 * terminate. done when the pager holds everything. */
void vm_object_terminate(struct vm_object *obj, int keep, vm_done_fn done, void *arg);
/* Next page index >= from that is resident data (want_data), or that is not
 * (a hole: absent, or a clean page the pager has no copy of); UINT64_MAX if none.
 * Pager-initiated flushes (lock_request) arrive on the control port. */
uint64_t vm_object_seek_resident(struct vm_object *obj, uint64_t from, int want_data);
/* SEEK_DATA / SEEK_HOLE in pages, from everything the kernel knows: resident
 * pages (their newest copy), the default pager's holdings (pages in swap; for
 * a temporary object its only store) and the object's pager, asked with a
 * data_query message (emm extension) sent in the object's message order.
 * want_data: the first page >= from holding data, or UINT64_MAX. Otherwise the
 * first hole >= from, at most limit (the end of the object counts as a hole).
 * done(arg, found) runs once: before this returns when the kernel knows
 * enough, else from the thread that delivers the pager's reply. A pager that
 * is suspect, or does not answer within the object's deadline (10 s without
 * one), is taken to hold data wherever the kernel knows nothing better. */
void vm_object_seek(struct vm_object *obj, uint64_t from, uint64_t limit, int want_data,
                    vm_seek_done_fn done, void *arg);
/* How many pages the object's pager stores (st_blocks adds new_pages): asked
 * with data_query (MO_F_QUERY_COUNT) unless nothing went to the pager since
 * it last said; its last count while it is suspect or silent; 0 for a
 * temporary object. done(arg, count) as for vm_object_seek. */
void vm_object_stored(struct vm_object *obj, vm_seek_done_fn done, void *arg);
/* An answer of vm_kernel_query_stored when the pager's count is not known. */
#define VM_COUNT_UNKNOWN UINT64_MAX
/* How many pages the pager stores of an object the kernel has not mapped (no
 * vm_object): data_query (MO_F_QUERY_COUNT) to its memory object port `pager`
 * (a send right, borrowed), carrying a reply right to a port made for the
 * query; no init. done(arg, count) runs once, from the thread that delivers the reply
 * (maybe before this returns), or with VM_COUNT_UNKNOWN when the pager is
 * suspect (ps: its filesystem's counters, or NULL), cannot tell, could not be
 * asked, or did not answer within deadline_ms (10 s if 0): never call it with
 * a lock done needs. */
void vm_kernel_query_stored(struct vm_kernel *k, struct emm_port *pager, struct vm_pager_stats *ps,
                            uint64_t deadline_ms, vm_seek_done_fn done, void *arg);
/* A pager's own statistics ("key:value" lines, its backend's), asked like
 * vm_kernel_query_stored with data_query (MO_F_QUERY_INFO) on a memory
 * object port: done(arg, text) once, text NULL when there is no answer;
 * text lives only during the call. */
typedef void (*vm_info_done_fn)(void *arg, const char *text);
void vm_kernel_query_info(struct vm_kernel *k, struct emm_port *pager, struct vm_pager_stats *ps,
                          uint64_t deadline_ms, vm_info_done_fn done, void *arg);
/* An object the kernel has not mapped is deleted: MO_DISCARD of all its
 * pages to its memory object port (borrowed), no init, nothing awaited.
 * 0, or -EPIPE when the pager is gone. */
int vm_kernel_discard_unmapped(struct vm_kernel *k, struct emm_port *pager,
                               struct vm_pager_stats *ps);
/* The same from offset (page-aligned) to the end: the pages past the size
 * its catalog saw, left by a crash (emmd at start). */
int vm_kernel_discard_unmapped_from(struct vm_kernel *k, struct emm_port *pager,
                                    struct vm_pager_stats *ps, uint64_t offset);
void vm_object_info(struct vm_object *obj, struct vm_object_info *out);
uint64_t vm_object_id(struct vm_object *obj);
/* The pager's port died (Mach's dead-name notification, vm_lost.c) and no
 * new one was given yet: 1, else 0. */
int vm_object_pager_lost(struct vm_object *obj);
/* A new pager for an object whose pager died (pager is a send right to its
 * new memory object port, consumed): memory_object_init again on the same
 * control and name ports; faults wait for ready; discards made meanwhile are
 * sent; fsyncs that waited run on the new pager once it is ready; pages held
 * in swap are replayed to it. 1 if done, 0 if the object did not need it
 * (its pager lives, or it is dead or terminated). No lock held. */
int vm_object_reinit(struct vm_object *obj, struct emm_port *pager);

/* A reload changed pager.deadline: data_returns older than ms are overdue from
 * now on (those already overdue stay so); 0: never overdue. Any thread. */
void vm_object_set_deadline(struct vm_object *obj, uint64_t ms);

#endif
