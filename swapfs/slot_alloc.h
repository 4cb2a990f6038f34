/*
 * slot_alloc.h - the free-slot bitmap of one swap area (Mach's per-partition
 * bitmap and free count, with a next-fit search hint as in OSF's default pager).
 *
 * Locking: every function takes the allocator's mutex, so any thread may call
 * any of them; none sleeps on I/O.
 */
#ifndef EMM_SLOT_ALLOC_H
#define EMM_SLOT_ALLOC_H

#include <stdint.h>

struct swp_alloc;

/* An allocator of nslots free slots (numbered 0 .. nslots-1). */
int swp_alloc_create(uint64_t nslots, struct swp_alloc **out);
void swp_alloc_destroy(struct swp_alloc *al);

/* Takes a free slot: 0 and *slot, or -ENOSPC when every slot is used. */
int swp_alloc_get(struct swp_alloc *al, uint64_t *slot);

/* Takes a run of up to want consecutive free slots: its length and *first, or
 * -ENOSPC. Never fails while a slot is free (the run may be 1). */
int swp_alloc_get_run(struct swp_alloc *al, unsigned want, uint64_t *first);

/* Returns a slot: -EINVAL if it is out of range or already free. */
int swp_alloc_put(struct swp_alloc *al, uint64_t slot);

/* Marks a given slot used (rebuilding from a descriptor scan): -EEXIST if it is. */
int swp_alloc_mark(struct swp_alloc *al, uint64_t slot);

/* 1 if slot is in use, 0 if free. */
int swp_alloc_test(struct swp_alloc *al, uint64_t slot);

uint64_t swp_alloc_used(struct swp_alloc *al);
uint64_t swp_alloc_free(struct swp_alloc *al);
uint64_t swp_alloc_total(const struct swp_alloc *al);

#endif
