/*
 * swap_index.h - the objects of one swap area: object id -> its slot map
 * (slot_map.h), and recovery, which rebuilds the index and the slot allocator
 * from the area's descriptors when the area is opened.
 *
 * Locking: none. The owner serializes calls on one index (the default pager
 * does it under its object-table lock); the maps it hands out follow
 * slot_map.h's rule.
 */
#ifndef EMM_SWAP_INDEX_H
#define EMM_SWAP_INDEX_H

#include <stdint.h>

#include "slot_alloc.h"
#include "slot_map.h"
#include "swap_area.h"

struct swp_index;

int swp_index_create(struct swp_index **out);
/* Destroys the index and every map in it (the slots are not freed). */
void swp_index_destroy(struct swp_index *ix);

/* The map of obj: 0 and *map; -ENOENT if absent and !create; -ENOMEM. */
int swp_index_get(struct swp_index *ix, uint64_t obj, int create, struct swp_map **map);

/* Removes obj's map from the index and destroys it (-ENOENT if absent). */
int swp_index_drop(struct swp_index *ix, uint64_t obj);

uint64_t swp_index_objects(const struct swp_index *ix);

/* Calls fn for every object (any order); a non-zero return stops the walk. */
typedef int (*swp_index_fn)(void *arg, uint64_t obj, struct swp_map *map);
int swp_index_iterate(struct swp_index *ix, swp_index_fn fn, void *arg);

struct swp_recover_stats {
    uint64_t used;     /* slots that hold the newest copy of a page */
    uint64_t stale;    /* older copies of a page found elsewhere (freed) */
    uint64_t torn;     /* descriptors with a bad CRC (freed) */
    uint64_t bad_data; /* slots whose data fails its CRC (freed; unclean areas) */
    uint64_t objects;
    uint64_t max_gen;
};

/*
 * Scans area and fills an empty index and a fresh allocator (nslots of the
 * area): for each (object, index) the descriptor with the highest generation
 * wins and its slot is marked used; older copies are left free and, on a
 * read-write area, their descriptors cleared so they never come back. After
 * an unclean shutdown the data of every used slot is checked against its CRC.
 * Raises the area's generation counter above everything found.
 */
int swp_index_recover(struct swp_area *area, struct swp_alloc *alloc, struct swp_index *ix,
                      struct swp_recover_stats *stats);

#endif
