/*
 * slot_map.h - one object's block map: page index -> swap slot.
 *
 * Memory follows the pages stored, not the object's size: leaves of
 * SWP_MAP_LEAF consecutive entries sit in a hash table keyed by index / LEAF,
 * so one page at a 1 TiB offset costs one leaf and a tiny table (a few hundred
 * bytes), and a lookup is one hash probe. (Mach's dpager used a direct map for
 * small objects and a two-level one beyond; a hash of leaves also stays small
 * for indexes spread over 2^64.)
 *
 * Locking: none. The owner serializes every call on one map (the vm layer does
 * it under the object's lock); different maps are independent.
 */
#ifndef EMM_SLOT_MAP_H
#define EMM_SLOT_MAP_H

#include <stddef.h>
#include <stdint.h>

#define SWP_NO_SLOT UINT64_MAX
#define SWP_MAP_LEAF 32u

struct swp_map;

int swp_map_create(struct swp_map **out);
void swp_map_destroy(struct swp_map *m);

/* 0 and *slot, or -ENOENT. */
int swp_map_lookup(const struct swp_map *m, uint64_t index, uint64_t *slot);

/* Maps index to slot; *old (may be NULL) gets the slot it replaces or SWP_NO_SLOT.
 * -EINVAL for slot == SWP_NO_SLOT, -ENOMEM. */
int swp_map_insert(struct swp_map *m, uint64_t index, uint64_t slot, uint64_t *old);

/* Unmaps index; *old (may be NULL) gets its slot. -ENOENT if unmapped. */
int swp_map_remove(struct swp_map *m, uint64_t index, uint64_t *old);

/* Calls fn for every mapping in increasing index order; a non-zero return stops
 * the walk and is returned. fn must not change the map. -ENOMEM possible. */
typedef int (*swp_map_fn)(void *arg, uint64_t index, uint64_t slot);
int swp_map_iterate(const struct swp_map *m, swp_map_fn fn, void *arg);

uint64_t swp_map_count(const struct swp_map *m);

/* Leaves allocated, and heap bytes held by the map (struct, table, leaves). */
size_t swp_map_leaves(const struct swp_map *m);
size_t swp_map_bytes(const struct swp_map *m);

#endif
