/*
 * default_pager.h - emm's default pager (Mach's default memory manager) over
 * the swap areas of swapfs: the kernel hands it the pages of temporary objects
 * (no pager of their own) and the pages another pager failed to take (double
 * paging). It speaks the memory-object protocol on one port per object key and
 * answers the kernel's synchronous queries (emm/vm_dpager.h).
 *
 * Areas: every configured area is opened (a missing file with a size is
 * formatted first), recovered, and merged into one object table; a slot number
 * names its area in its top 8 bits. Pages go to the highest-priority area with a
 * free slot, round robin among equal priorities. Generations are one counter
 * across areas, so the newest copy of a page wins wherever it sits. Temporary
 * keys (VM_DP_TEMPORARY) found at start are dropped: they die with the service.
 *
 * Locking: dp->lock guards the object table and each object's attach count; an
 * object's lock guards its slot map and is a leaf (the kernel's queries take it
 * under the kernel's object lock). Only an object's port handler changes its
 * map; it does I/O and sends messages without holding either lock.
 */
#ifndef EMM_DEFAULT_PAGER_H
#define EMM_DEFAULT_PAGER_H

#include <stddef.h>
#include <stdint.h>

#include "vm_dpager.h"

#define SWP_DP_MAX_AREAS 64u

struct swp_dpager;

/* One "swap = PATH [SIZE] [priority=N]" line; line names it in errors. */
struct swp_dp_area_config {
    const char *path;
    uint64_t size; /* bytes; 0: the area must exist */
    int priority;  /* higher is used first */
    int line;
};

struct swp_dp_stats {
    uint64_t pages_out;    /* pages written to swap */
    uint64_t pages_in;     /* pages supplied from swap */
    uint64_t write_errors; /* data_returns refused (a chain counts once), full_errors included */
    uint64_t full_errors;  /* ... of which: no area had a free slot */
    uint64_t io_errors;    /* slot reads, writes or descriptor clears that failed */
    uint64_t discards;     /* pages dropped by discard */
    uint64_t write_ios;    /* data writes started (a run of consecutive slots each) */
    uint64_t read_ios;     /* data reads (a run of consecutive slots each) */
    uint64_t objects;      /* objects known: holding pages or attached */
    uint64_t slots_total, slots_used;
};

struct swp_dp_area_stat {
    const char *path;
    int priority;
    uint64_t slots_total, slots_used;
    int direct; /* O_DIRECT in use */
    int blkdev;
};

/*
 * Opens, recovers and merges the n areas; a port set of `threads` workers
 * (busy-polling spin_us) will serve the object ports. On failure returns a
 * negative errno with "CFG_PATH:LINE: swap PATH: reason" in err.
 */
int swp_dp_create(const struct swp_dp_area_config *areas, size_t n, unsigned threads,
                  unsigned spin_us, const char *cfg_path, struct swp_dpager **out, char *err,
                  size_t errlen);

/* Adds an empty swap area while the pager runs (a reload): opened (created
 * and formatted when missing and c->size is given) and checked like a start's
 * areas, then counted and made the first choice of its priority's round
 * robin. An area that holds pages is refused (-EBUSY: only a start merges
 * them into the objects), as is a path in use or a 65th area. Removing one is
 * not possible while running. 0, or -errno with err holding
 * "FILE:LINE: swap PATH: what". */
int swp_dp_add_area(struct swp_dpager *dp, const struct swp_dp_area_config *c,
                    const char *cfg_path, char *err, size_t errlen);

/* After the kernel is gone: stops the workers, destroys the ports, closes the
 * areas cleanly (pages of persistent keys stay for the next start). */
void swp_dp_destroy(struct swp_dpager *dp);

/* The kernel's function table (vm_dpager.h) and its ctx. */
void swp_dp_vm_ops(struct swp_dpager *dp, struct vm_dpager_ops *ops, void **ctx);

/* Calls fn for every persistent key holding pages (to replay them after a
 * restart); fn may attach. A non-zero return stops the walk and is returned. */
int swp_dp_foreach_object(struct swp_dpager *dp,
                          int (*fn)(void *arg, uint64_t key, uint64_t pages), void *arg);

void swp_dp_stats(struct swp_dpager *dp, struct swp_dp_stats *out);

/* The asynchronous queue of area i (its stats; tests set hooks on it), or
 * NULL past the last. */
struct swp_io;
struct swp_io *swp_dp_area_io(struct swp_dpager *dp, size_t i);

/* Area i in configuration order; -ENOENT past the last. */
int swp_dp_area_stat(struct swp_dpager *dp, size_t i, struct swp_dp_area_stat *out);

#endif
