/*
 * vm_policy.h - pluggable page replacement policies over opaque page handles:
 * second-chance (Mach's active/inactive FIFOs, the default), fifo, s3-fifo and
 * exact lru (the reference for the trace simulator). The same code serves the
 * pageout daemon and bench/policysim.c.
 *
 * A caller embeds a struct vm_pnode in its page descriptor and hands the policy
 * pointers to it; the policy links nodes into its own queues and never looks
 * past the node. Every operation is O(1) (amortized for victim) and only
 * create allocates: insert, touch, victim and remove never allocate, so the
 * pageout path can use them (DESIGN §3).
 *
 * Locking: none inside. One policy instance is used under one caller's lock
 * (the pool lock in the daemon); every call, touch included, must hold it.
 */
#ifndef EMM_VM_POLICY_H
#define EMM_VM_POLICY_H

#include <stdint.h>
#include <sys/queue.h>

/* Queue tags (struct vm_pnode.queue). */
enum vm_pqueue {
    VM_PQ_NONE = 0,  /* not in the policy */
    VM_PQ_ACTIVE,    /* second-chance: thought to be the working set */
    VM_PQ_INACTIVE,  /* second-chance: reclaim candidates, reference bit cleared */
    VM_PQ_FIFO,      /* fifo: the one queue */
    VM_PQ_SMALL,     /* s3-fifo: small probationary FIFO (10%) */
    VM_PQ_MAIN,      /* s3-fifo: main FIFO (90%), 2-bit frequency */
    VM_PQ_LRU,       /* lru: recency list */
    VM_PQ_COUNT
};

/* struct vm_pnode.flags, set by the caller before insert. */
#define VM_PN_PREFETCH (1u << 0) /* read ahead, not faulted: second-chance puts it on inactive */

/*
 * The intrusive node. The caller zeroes it once, sets key (and flags) before
 * insert, and leaves the rest to the policy.
 */
struct vm_pnode {
    TAILQ_ENTRY(vm_pnode) link; /* policy queue (or the pool's laundry list), oldest first */
    uint64_t key;   /* what the page holds, e.g. hash(object, index): s3-fifo's ghost
                       remembers evicted keys, so it must outlive the frame */
    uint8_t queue;  /* enum vm_pqueue: where the policy keeps it */
    uint8_t ref;    /* reference bit (second-chance) or 0..3 frequency (s3-fifo) */
    uint8_t flags;  /* VM_PN_* */
};

TAILQ_HEAD(vm_pnode_list, vm_pnode);

struct vm_policy_ops {
    const char *name;
    /* capacity: pages the cache holds (sizes s3-fifo's queues and ghost). */
    int (*create)(uint64_t capacity, void **st);
    void (*destroy)(void *st);
    void (*insert)(void *st, struct vm_pnode *n);
    void (*touch)(void *st, struct vm_pnode *n); /* a reference (FUSE READ/WRITE hit) */
    /* The next page to reclaim, removed from the policy (NULL when empty); may
     * give second chances internally. */
    struct vm_pnode *(*victim)(void *st);
    void (*remove)(void *st, struct vm_pnode *n); /* n must be in the policy */
    /* Pages on queue q, or on all queues for VM_PQ_NONE (emmctl info, tests). */
    uint64_t (*count)(void *st, enum vm_pqueue q);
    /* Pages spared by victim because they were referenced (a second chance for
     * second-chance, a reinsertion or promotion for s3-fifo); NULL: never. */
    uint64_t (*second_chances)(void *st);
};

#define VM_POLICY_DEFAULT "second-chance"
/* For help text and error messages. */
#define VM_POLICY_NAMES "second-chance | fifo | s3-fifo | lru"

/* NULL-terminated, the default first. */
extern const struct vm_policy_ops *const vm_policies[];

/* The policy called name, or NULL if there is none. */
const struct vm_policy_ops *vm_policy_lookup(const char *name);
/* Sets the inactive target fraction of a "second-chance" state (default 2/3);
 * bench/policysim compares other fractions with it. */
void vm_policy_sc_set_inactive(void *st, unsigned num, unsigned den);

#endif
