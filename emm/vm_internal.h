/*
 * vm_internal.h - the structures shared by vm_object.c (objects, fault paths,
 * the control-port handlers) and vm_pageout.c (pageout daemon, kernel worker).
 * Not for the front end. Locking rules are those of vm_object.h and vm_pool.h.
 */
#ifndef EMM_VM_INTERNAL_H
#define EMM_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "vm_object.h"

#define VM_PS ((uint64_t)EMM_PAGE_SIZE)

/* A pending front-end operation (Mach: a faulting thread asleep on the object). */
struct vm_io {
    struct vm_io *next;
    int op; /* VM_IO_* */
    int unlock_sent;
    uint64_t off, len;
    void *buf; /* owned copy of a waiting write */
    vm_read_done_fn rdone;
    vm_done_fn done;
    void *arg;
    int err;
    unsigned nwired;
    struct vm_page *wired[258]; /* a 1 MiB read spans at most 257 pages */
};
enum { VM_IO_READ = 1, VM_IO_WRITE };

/* A synchronize waiting for synchronize_completed, FIFO per object. */
struct vm_sync {
    struct vm_sync *next;
    vm_done_fn done;
    void *arg;
    int terminate; /* finish a terminate when it completes */
};

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
    struct emm_port *pager;   /* send right: memory object port */
    struct emm_port *control; /* receive right */
    struct emm_port *name;    /* receive right */
    struct vm_page **buckets;
    uint64_t nbuckets;
    uint64_t nresident, ndirty, nlaundry, nabsent, nnew;
    struct vm_io *io_head, *io_tail; /* waiting operations, in arrival order */
    struct vm_sync *sync_head, *sync_tail;
    int starved;                     /* an io waits for free frames */
    unsigned need_frames;            /* how many it needs at once */
    struct vm_object *kick_next;     /* kernel worker queue */
    int kicked;
    uint64_t backoff_until_ns;       /* pager refused a data_return: pageout waits */
};

/* Messages and completions gathered under the object lock, run after it. */
struct vm_batch {
    struct emm_msg *msgs, *msgs_tail;
    struct vm_io *done, *done_tail;
    struct vm_sync *syncs_done;
    int sync_err;
};

struct vm_kernel {
    struct vm_pool pool;
    struct vm_upcalls up;
    struct vm_stats stats;
    atomic_int stopping;
    atomic_uint_fast64_t laundry;
    uint64_t laundry_max;
    pthread_t pageout_thread, worker_thread;
    pthread_mutex_t kick_lock;
    pthread_cond_t kick_cond;
    struct vm_object *kick_head;
    atomic_int kicks_pending; /* kick_head != NULL, readable without kick_lock */
    atomic_uint need_frames;  /* most frames a starved operation needs at once */
};

/* vm_object.c */
void vm_obj_launder(struct vm_object *obj, struct vm_page *p, int evict, struct vm_batch *b);
void vm_obj_remove_page(struct vm_object *obj, struct vm_page *p);
struct vm_page *vm_obj_page(struct vm_object *obj, uint64_t idx); /* lock held */
void vm_obj_retry(struct vm_object *obj); /* reruns waiting operations */
void vm_batch_flush(struct vm_object *obj, struct vm_batch *b);

/* vm_pageout.c */
int vm_pageout_start(struct vm_kernel *k);
void vm_pageout_stop(struct vm_kernel *k);
void vm_kernel_kick(struct vm_kernel *k, struct vm_object *obj); /* retry on the worker */

#endif
