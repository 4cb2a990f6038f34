/*
 * vm_internal.h - the structures and functions the kernel's files share
 * (vm_page_table, vm_pmap, vm_batch, vm_object, vm_kernel, vm_fault, vm_seek,
 * vm_laundry, vm_sync, memory_object, vm_query, vm_pageout; each may call only
 * the files listed before it). Not for the front end. Locking rules are those of vm_object.h and vm_pool.h.
 */
#ifndef EMM_VM_INTERNAL_H
#define EMM_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

#include "vm_dpager.h"
#include "vm_object.h"

#define VM_PS ((uint64_t)EMM_PAGE_SIZE)
#define VM_READAROUND 16u /* pages a small fault on a temporary object reads around */

/* A caller blocked in vm_object_write until its buffer is no longer needed
 * (on its stack; signalled under the object lock). */
struct vm_write_waiter {
    int released;
    pthread_cond_t cond;
};

/* A pending front-end operation (Mach: a faulting thread asleep on the object). */
struct vm_io {
    STAILQ_ENTRY(vm_io) link; /* the object's waiting operations, or a batch's done list */
    int op; /* VM_IO_* */
    /* data_unlock was sent for every locked page below this index (+1): one per
     * page, so an operation spanning several locked pages asks for each. */
    uint64_t unlock_next;
    uint64_t since_ns; /* when it first had to wait (vm_lost.c: a silent pager's deadline) */
    uint64_t off, len;
    /* A write's data, never copied to the heap: the caller's buffer, borrowed
     * while the caller waits in vm_object_write (its waiter, on its stack, is
     * released when the write no longer needs it), or a buffer that outlives the
     * write (stable); NULL once the data sits in staged frames. */
    const void *src;
    struct vm_write_waiter *waiter;
    int stable;
    vm_read_done_fn rdone;
    vm_done_fn done;
    void *arg;
    int err;
    /* A read: the pages it wired. A write: its staged frames, pool frames
     * outside any object holding the write's bytes at their in-page offsets,
     * one per page of [off, off+len), taken when it had to wait. */
    unsigned nwired;
    struct vm_page *wired[EMM_MAX_SPAN_PAGES]; /* a 1 MiB read spans at most 257 pages */
};
enum { VM_IO_READ = 1, VM_IO_WRITE };
STAILQ_HEAD(vm_io_list, vm_io);

/* A synchronize waiting for synchronize_completed, FIFO per object. */
struct vm_sync {
    STAILQ_ENTRY(vm_sync) link; /* one of the object's sync lists, or a batch's */
    vm_done_fn done;
    void *arg;
    int terminate; /* finish a terminate when it completes */
    uint64_t failures_at_start; /* obj->return_failures when it started */
    uint64_t queued_ns;         /* when it began waiting for a replay */
    uint64_t sent_ns;           /* when its synchronize was sent (obj->syncs) */
};
STAILQ_HEAD(vm_sync_list, vm_sync);

/* A SEEK_DATA/SEEK_HOLE waiting for its pager's query_reply (vm_seek.c). */
struct vm_seek {
    TAILQ_ENTRY(vm_seek) qlink;  /* obj->seeks: waiting for a query_reply */
    STAILQ_ENTRY(vm_seek) link;  /* a batch's seeks_done */
    uint64_t idx, limit;         /* where the walk is; the end of the object */
    uint64_t best;               /* SEEK_DATA: the first data page the kernel knows */
    uint64_t result, sent_ns;
    int want_data;               /* 1 SEEK_DATA, 0 SEEK_HOLE, VM_SEEK_COUNT */
    int32_t tag;                 /* the query's, echoed by the reply */
    uint64_t gen;                /* COUNT: pager_gen when asked */
    vm_seek_done_fn done;
    void *arg;
};
TAILQ_HEAD(vm_seek_list, vm_seek);
#define VM_SEEK_COUNT 2
#define VM_SEEK_MAP 3 /* a step of learning the pager's existence map (vm_pmap.c) */
STAILQ_HEAD(vm_seek_done_list, vm_seek);

/* What a pager may store of an object (vm_pmap.c): disjoint sorted runs of
 * pages [start, end), a superset of its pages below `known`. */
struct vm_run {
    uint64_t start, end;
};
struct vm_pmap {
    struct vm_run *runs;
    size_t n, cap;
    uint64_t known; /* pages below it are known: in a run or not stored */
    int state;      /* VM_PM_* */
};
enum { VM_PM_UNKNOWN = 0, VM_PM_LEARNING, VM_PM_KNOWN };

struct vm_object {
    pthread_mutex_t lock;
    atomic_uint refs;
    struct vm_kernel *kernel;
    uint64_t id;
    void *owner;
    int state; /* enum vm_object_state */
    int error; /* errno once dead */
    uint64_t size;
    int may_cache, copy_strategy;
    atomic_int return_clusters;      /* the pager takes clustered data_returns */
    int strict_write; /* MO_F_STRICT_WRITE: a write to an absent page asks the pager */
    struct emm_port *pager;   /* send right: memory object port */
    struct emm_port *control; /* receive right */
    struct emm_port *name;    /* receive right */
    struct vm_page **buckets;
    uint64_t nbuckets;
    uint64_t nresident, ndirty, nlaundry, nabsent, nnew;
    struct vm_io_list ios;           /* waiting operations, in arrival order */
    struct vm_sync_list syncs;       /* waiting for synchronize_completed, in send order */
    uint64_t syncs_abandoned;        /* synchronize_completed answers still owed for fsyncs
                                        failed past the deadline (vm_lost.c): dropped */
    int starved;                     /* an io waits for free frames */
    atomic_uint need_frames;         /* how many it needs at once (the worker reads it unlocked) */
    struct vm_object *kick_next;     /* kernel worker queue */
    int kicked;
    uint64_t backoff_until_ns;       /* pager refused a data_return: pageout waits */
    /* The default pager (vm_dpager.h): its port for this object, or NULL. */
    int temporary;                   /* no pager of its own: dp is the pager */
    struct emm_port *dp;             /* send right */
    struct emm_port *dp_reply;       /* receive right: the default pager's answers to the
                                        data_returns it gets for double paging */
    void *dp_handle;
    _Atomic uint64_t deadline_ns;    /* a data_return older than this is overdue; 0: none.
                                        Atomic: a reload changes it (vm_object_set_deadline) */
    uint64_t replay_inflight;        /* pages paged in from swap to be replayed */
    uint64_t dp_returns;             /* data_returns on their way to the default pager */
    struct vm_sync_list replay_syncs; /* fsyncs waiting for the replay to finish */
    uint64_t return_failures;        /* data_returns no pager took (the page stayed dirty) */
    const char *pager_name;          /* its filesystem's name, for log lines, or NULL */
    int bad_msg_logged;              /* a bad message from its pagers was logged */
    int on_swapped_list;             /* kernel->swapped_head (kick_lock) */
    struct vm_object *swapped_next;
    int on_waiting_list;             /* kernel->waiting_head (kick_lock) */
    struct vm_object *waiting_next;
    struct vm_pager_stats *pstats;   /* the filesystem's counters (never NULL) */
    /* Bumped by every data_return or discard sent to the pager: its count
     * (below) is stale. */
    uint64_t pager_gen;
    /* What its pager may store (vm_pmap.c, Mach's existence map): learnt with
     * data_query when ready, kept by the data_returns and discards sent; the
     * holes of a suspect pager are filled from it (vm_fault.c). */
    struct vm_pmap pm;
    uint64_t pager_count;            /* pages its pager stores, as it last said */
    uint64_t pager_count_gen;        /* valid while pager_gen is this */
    int pager_count_known;
    /* Its pager's port died (vm_lost.c): */
    struct emm_port *notify;         /* receive right: dead-name notifications */
    uint64_t pager_epoch;            /* the cookie of the current pager's request */
    uint64_t seq_floor;              /* seqnos up to this were stamped by pager ports
                                        replaced since: answers naming them are stale */
    uint64_t pager_lost_ns;          /* when the pager's port died; 0 once a new one is given */
    uint64_t down_since_ns;          /* no live pager since (0: one answered ready since) */
    int down_expired;                /* ... for longer than the deadline: operations fail */
    int on_lost_list;                /* kernel->lost_head (kick_lock) */
    struct vm_object *lost_next;
    struct vm_sync_list lost_syncs;  /* fsyncs waiting for a new pager */
    struct emm_msg_list lost_msgs;   /* discards made meanwhile, for the new pager */
    struct vm_seek_list seeks;       /* waiting for their pager's query_reply */
    uint32_t next_seek_tag;
    int on_seeking_list;             /* kernel->seeking_head (kick_lock) */
    struct vm_object *seeking_next;
};

/* Messages and completions gathered under the object lock, run after it. */
struct vm_batch {
    struct emm_msg_list msgs;               /* to the object's pager */
    struct emm_msg_list dp_msgs;            /* to its default-pager port */
    struct emm_msg_list failed, dp_failed;  /* refused by a dead port: released unlocked */
    int kick_pager, kick_dp;                /* posted: start delivery after unlocking */
    struct emm_port *kick_port;             /* the pager port posted to (a right): the
                                               object's may change meanwhile (vm_lost.c) */
    struct vm_io_list done;
    struct vm_sync_list syncs_done;
    int sync_err;
    struct vm_seek_done_list seeks_done;
};
/* struct vm_batch b = VM_BATCH_INIT(b); (the lists point into b itself) */
#define VM_BATCH_INIT(b)                                                         \
    { .msgs = STAILQ_HEAD_INITIALIZER((b).msgs),                                 \
      .dp_msgs = STAILQ_HEAD_INITIALIZER((b).dp_msgs),                           \
      .failed = STAILQ_HEAD_INITIALIZER((b).failed),                             \
      .dp_failed = STAILQ_HEAD_INITIALIZER((b).dp_failed),                       \
      .done = STAILQ_HEAD_INITIALIZER((b).done),                                 \
      .syncs_done = STAILQ_HEAD_INITIALIZER((b).syncs_done),                     \
      .seeks_done = STAILQ_HEAD_INITIALIZER((b).seeks_done) }

struct vm_kernel {
    struct vm_pool pool;
    struct vm_upcalls up;
    struct vm_stats stats;
    atomic_int stopping;
    atomic_uint_fast64_t laundry;
    atomic_uint_fast64_t loans; /* messages that point at pool frames (data_returns, copies) */
    uint64_t laundry_max;
    pthread_t pageout_thread, worker_thread;
    pthread_mutex_t kick_lock;
    pthread_cond_t kick_cond;
    struct vm_object *kick_head;
    atomic_int kicks_pending; /* kick_head != NULL, readable without kick_lock */
    atomic_uint need_frames;  /* most frames a starved operation needs at once */
    /* The default pager, if one is configured (vm_kernel_set_default_pager). */
    const struct vm_dpager_ops *dpo;
    void *dp_ctx;
    struct vm_object *swapped_head; /* objects with pages in swap to replay (kick_lock) */
    /* Objects with operations waiting (kick_lock): a pager's threads serve all
     * its objects, so when it goes overdue all of them are looked at again. */
    struct vm_object *waiting_head;
    int recheck_waiting; /* kick_lock: the worker reruns them */
    struct vm_object *seeking_head; /* objects whose seeks wait for a reply (kick_lock) */
    /* Count queries for objects not mapped (vm_query.c) waiting for their
     * reply (queries_lock). */
    pthread_mutex_t queries_lock;
    TAILQ_HEAD(, vm_query) queries;
    uint32_t next_query_tag;
    atomic_int query_bad_logged;
    struct vm_object *lost_head;    /* objects whose pager died, till its deadline (kick_lock) */
    struct vm_pager_stats orphan_stats; /* for objects created without counters */
};

/* The pager failed lately or still sits on overdue data_returns: pageouts of
 * its objects go to swap, replay waits. */
static inline int
vm_pager_suspect(struct vm_pager_stats *ps, uint64_t now)
{
    return atomic_load(&ps->overdue_inflight) > 0 || now < atomic_load(&ps->sick_until_ns) ||
           atomic_load(&ps->lost_now) > 0;
}

/* vm_page_table.c (obj->lock held) */
struct vm_page *vm_obj_page_lookup(struct vm_object *obj, uint64_t idx);
struct vm_page *vm_obj_page(struct vm_object *obj, uint64_t idx);
void vm_obj_page_insert(struct vm_object *obj, struct vm_page *p, uint64_t idx, int state);
void vm_obj_page_flags(struct vm_object *obj, struct vm_page *p, uint16_t set, uint16_t clear);
void vm_obj_page_unlink(struct vm_object *obj, struct vm_page *p);
void vm_obj_remove_page(struct vm_object *obj, struct vm_page *p);
void vm_obj_page_discard(struct vm_object *obj, struct vm_page *p);
/* The laundry of orphan p ends (replaced by a newer copy, punched, or its
 * object terminated; no loan of its frame left): it leaves the laundry count
 * (or the overdue one) and the pool's laundry list, and its frame is free
 * unless an operation still has it wired (vm_io_unwire frees it then). Its
 * answer, if one comes, finds no page. Lock held. */
void vm_obj_orphan_drop(struct vm_object *obj, struct vm_page *p);
void vm_obj_discard_all(struct vm_object *obj);

/* vm_pmap.c (obj->lock held) */
void vm_pmap_add(struct vm_pmap *pm, uint64_t first, uint64_t end);    /* may store */
void vm_pmap_remove(struct vm_pmap *pm, uint64_t first, uint64_t end); /* stores none */
int vm_pmap_lacks(const struct vm_pmap *pm, uint64_t idx); /* 1: it stores no such page */
void vm_pmap_fini(struct vm_pmap *pm);

/* vm_batch.c */
struct emm_msg *vm_kmsg(struct vm_object *obj, uint32_t id, uint64_t off, uint64_t len);
void vm_batch_msg(struct vm_batch *b, struct emm_msg *m);    /* to the pager */
void vm_batch_dp_msg(struct vm_batch *b, struct emm_msg *m); /* to the default pager */
/* Complete io after unlocking; obj->lock held (releases a blocked writer). */
void vm_batch_done(struct vm_batch *b, struct vm_io *io);
void vm_batch_post(struct vm_object *obj, struct vm_batch *b); /* lock held */
/* pstats and the existence map; id, offset and len (a cluster's whole run)
 * are read before the post: a posted message may be gone */
void vm_pager_count_sent(struct vm_object *obj, uint32_t id, uint64_t offset, uint64_t len);
void vm_batch_flush(struct vm_object *obj, struct vm_batch *b); /* after unlocking */
void vm_io_unwire(struct vm_object *obj, struct vm_io *io);  /* takes obj->lock */
/* Gives a write's staged frames back to the pool (pool lock only). */
void vm_io_unstage(struct vm_object *obj, struct vm_io *io);

/* vm_msgcheck.c: a pager's message, checked before it is trusted. 0, or
 * -EBADMSG with *field naming what is wrong. form: the message alone (no lock;
 * from_dp: it came on the default pager's reply port); range: its pages are
 * inside the object or were asked for (lock held). refuse: log (once per
 * object, naming the pager and the field) and count it (lock held). */
int vm_msg_check_form(const struct emm_msg *msg, int from_dp, const char **field);
int vm_msg_check_range(struct vm_object *obj, const struct emm_msg *msg, const char **field);
void vm_msg_refuse(struct vm_object *obj, const struct emm_msg *msg, int from_dp,
                   const char *field);

/* vm_object.c */
int vm_obj_dp_holds(struct vm_object *obj); /* the default pager holds pages of it */
int vm_obj_dp_may_hold(struct vm_object *obj); /* ... or will, once its returns land */

/* vm_kernel.c */
void vm_kernel_kick(struct vm_kernel *k, struct vm_object *obj); /* retry on the worker */
void vm_kernel_note_swapped(struct vm_kernel *k, struct vm_object *obj);
/* obj queued an operation (its lock held): rerun when a pager goes overdue. */
void vm_kernel_note_waiting(struct vm_kernel *k, struct vm_object *obj);
/* A pager went overdue: the worker reruns the waiting operations of every
 * listed object, whatever its pager (any one object's lock may be held). */
void vm_kernel_recheck_waiting(struct vm_kernel *k);
/* obj's pager died: the worker ends its waits at the deadline (lock held). */
void vm_kernel_note_lost(struct vm_kernel *k, struct vm_object *obj);

/* vm_fault.c (lock held unless said) */
/* Page idx is a hole of a suspect pager, one the kernel fills itself (a
 * data_request would wait behind its stalled returns): 1 yes (its existence
 * map says it stores no such page), 0 no or not known (ask the pager). */
int vm_obj_pager_lacks(struct vm_object *obj, uint64_t idx);
void vm_obj_fill_hole(struct vm_object *obj, struct vm_page *p); /* absent p reads zeros */
void vm_obj_run_waiters(struct vm_object *obj, struct vm_batch *b);
void vm_obj_retry(struct vm_object *obj); /* reruns waiting operations; takes the lock */

/* vm_seek.c (lock held) */
/* Starts learning what the pager stores (the existence map) if it is not
 * known and the pager can be asked now. */
void vm_obj_pm_learn(struct vm_object *obj, struct vm_batch *b);
void vm_obj_query_reply(struct vm_object *obj, const struct emm_msg *msg, struct vm_batch *b);
/* Gives up seeks waiting for a reply (all, or those past their wait or whose
 * pager is suspect): answered as if the pager held data. 1 if some still wait. */
int vm_obj_seeks_expire(struct vm_object *obj, uint64_t now, int all, struct vm_batch *b);

/* vm_query.c: count queries for objects the kernel has not mapped */
void vm_queries_init(struct vm_kernel *k);
void vm_queries_fini(struct vm_kernel *k); /* answers what still waits */
/* Gives up the queries past their wait (all: every one). No lock held. */
void vm_queries_expire(struct vm_kernel *k, uint64_t now, int all);
int vm_queries_waiting(struct vm_kernel *k);

/* vm_laundry.c (lock held) */
void vm_obj_launder(struct vm_object *obj, struct vm_page *p, int evict, struct vm_batch *b);
/* The daemon found p's data_return overdue: copy it to swap. */
void vm_obj_overdue(struct vm_object *obj, struct vm_page *p, uint64_t now, struct vm_batch *b);
/* A data_return_completed: from_dp when it came on obj->dp_reply (the default
 * pager's answer to a double-paging return), else on the control port. Settles
 * the pages it answers; returns how many it matched. Lock held. */
unsigned vm_obj_return_completed(struct vm_object *obj, const struct emm_msg *msg, int from_dp,
                                 struct vm_batch *b);

/* vm_laundry.c: the pager's port died: its data_returns will never be
 * answered; each counts as refused (double paged when swap exists). Lock held. */
void vm_obj_returns_lost(struct vm_object *obj, struct vm_batch *b);

/* vm_sync.c */
/* Pages some held pages in from swap to go back to the pager; 1 if work remains. */
int vm_obj_replay(struct vm_object *obj, unsigned max_pages);
/* Sends every dirty page back and a synchronize for s (lock held): 0, or
 * -errno (s is not queued then). */
int vm_obj_sync_locked(struct vm_object *obj, struct vm_sync *s, struct vm_batch *b);

/* vm_lost.c: a pager that died or went silent (lock held unless said) */
/* The dead-name notification handler of obj->notify (no lock). */
void vm_obj_notify_handler(struct emm_port *port, struct emm_msg *msg);
/* Asks for the notification of the death of obj->pager (no lock held). */
void vm_obj_watch_pager(struct vm_object *obj);
/* The pager answered ready: the object has a live pager again. */
void vm_obj_pager_back(struct vm_object *obj, struct vm_batch *b);
/* The kernel worker: 1 while obj still waits for its pager's deadline (no lock). */
int vm_obj_lost_expire(struct vm_object *obj, uint64_t now);
/* The kernel worker: operations waiting for data_requests of a pager silent
 * for longer than the deadline fail with EIO (no lock). */
void vm_obj_requests_expire(struct vm_object *obj, uint64_t now);
/* The deadline for a dead or silent pager: pager.deadline, 5 s if none. */
uint64_t vm_obj_lost_deadline(struct vm_object *obj);

#endif
