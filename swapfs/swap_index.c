/*
 * swap_index.c - object id -> slot map, a linear-probing hash table (backward
 * shift on removal), and recovery from a descriptor scan.
 *
 * Locking: none (the owner serializes calls on an index).
 */
#include "swap_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct ix_ent {
    uint64_t obj;
    struct swp_map *map; /* NULL: empty bucket */
};

struct swp_index {
    struct ix_ent *tab;
    size_t cap;
    uint64_t n;
};

static size_t
ix_bucket(uint64_t obj, size_t cap)
{
    return (size_t)((obj * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

int
swp_index_create(struct swp_index **out)
{
    struct swp_index *ix = calloc(1, sizeof(*ix));

    if (!ix)
        return -ENOMEM;
    ix->cap = 16;
    ix->tab = calloc(ix->cap, sizeof(*ix->tab));
    if (!ix->tab) {
        free(ix);
        return -ENOMEM;
    }
    *out = ix;
    return 0;
}

void
swp_index_destroy(struct swp_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->cap; i++)
        swp_map_destroy(ix->tab[i].map);
    free(ix->tab);
    free(ix);
}

static size_t
ix_find(const struct swp_index *ix, uint64_t obj)
{
    size_t b = ix_bucket(obj, ix->cap);
    while (ix->tab[b].map && ix->tab[b].obj != obj)
        b = (b + 1) & (ix->cap - 1);
    return b;
}

static int
ix_grow(struct swp_index *ix)
{
    size_t ncap = ix->cap * 2;
    struct ix_ent *nt = calloc(ncap, sizeof(*nt));

    if (!nt)
        return -ENOMEM;
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->tab[i].map)
            continue;
        size_t b = ix_bucket(ix->tab[i].obj, ncap);
        while (nt[b].map)
            b = (b + 1) & (ncap - 1);
        nt[b] = ix->tab[i];
    }
    free(ix->tab);
    ix->tab = nt;
    ix->cap = ncap;
    return 0;
}

int
swp_index_get(struct swp_index *ix, uint64_t obj, int create, struct swp_map **map)
{
    size_t b = ix_find(ix, obj);
    int rc;

    if (ix->tab[b].map) {
        *map = ix->tab[b].map;
        return 0;
    }
    if (!create)
        return -ENOENT;
    if ((ix->n + 1) * 4 > ix->cap * 3) {
        if ((rc = ix_grow(ix)) < 0)
            return rc;
        b = ix_find(ix, obj);
    }
    if ((rc = swp_map_create(&ix->tab[b].map)) < 0)
        return rc;
    ix->tab[b].obj = obj;
    ix->n++;
    *map = ix->tab[b].map;
    return 0;
}

int
swp_index_drop(struct swp_index *ix, uint64_t obj)
{
    size_t mask = ix->cap - 1, b = ix_find(ix, obj), j;

    if (!ix->tab[b].map)
        return -ENOENT;
    swp_map_destroy(ix->tab[b].map);
    ix->tab[b].map = NULL;
    ix->n--;
    for (j = (b + 1) & mask; ix->tab[j].map; j = (j + 1) & mask) {
        size_t home = ix_bucket(ix->tab[j].obj, ix->cap);
        if (((j - home) & mask) >= ((j - b) & mask)) {
            ix->tab[b] = ix->tab[j];
            ix->tab[j].map = NULL;
            b = j;
        }
    }
    return 0;
}

uint64_t
swp_index_objects(const struct swp_index *ix)
{
    return ix->n;
}

int
swp_index_iterate(struct swp_index *ix, swp_index_fn fn, void *arg)
{
    int rc = 0;
    for (size_t i = 0; i < ix->cap && rc == 0; i++)
        if (ix->tab[i].map)
            rc = fn(arg, ix->tab[i].obj, ix->tab[i].map);
    return rc;
}

/* ---- recovery ---------------------------------------------------------------- */

struct recover {
    struct swp_area *area;
    struct swp_alloc *alloc;
    struct swp_index *ix;
    struct swp_recover_stats st;
};

/* slot lost to a newer copy: leave it free, and on disk empty */
static int
discard(struct recover *r, uint64_t slot)
{
    r->st.stale++;
    if (swp_area_info(r->area)->rdonly)
        return 0;
    return swp_area_clear_slot(r->area, slot);
}

static int
recover_one(void *arg, uint64_t slot, const struct swp_desc *d)
{
    struct recover *r = arg;
    struct swp_map *map;
    struct swp_desc od;
    uint64_t old;
    int rc;

    if ((rc = swp_index_get(r->ix, d->obj, 1, &map)) < 0)
        return rc;
    if (swp_map_lookup(map, d->index, &old) == 0) {
        if ((rc = swp_area_read_desc(r->area, old, &od)) < 0)
            return rc;
        if (od.gen >= d->gen)
            return discard(r, slot);
        if ((rc = swp_map_insert(map, d->index, slot, NULL)) < 0)
            return rc;
        swp_alloc_put(r->alloc, old);
        swp_alloc_mark(r->alloc, slot);
        return discard(r, old);
    }
    if ((rc = swp_map_insert(map, d->index, slot, NULL)) < 0)
        return rc;
    swp_alloc_mark(r->alloc, slot);
    r->st.used++;
    return 0;
}

int
swp_index_recover(struct swp_area *area, struct swp_alloc *alloc, struct swp_index *ix,
                  struct swp_recover_stats *stats)
{
    const struct swp_area_info *in = swp_area_info(area);
    struct recover r = {.area = area, .alloc = alloc, .ix = ix};
    struct swp_scan_stats ss;
    int rc;

    rc = swp_area_scan(area, in->was_clean ? 0 : SWP_SCAN_VERIFY, recover_one, &r, &ss);
    r.st.torn = ss.torn;
    r.st.bad_data = ss.bad_data;
    r.st.max_gen = ss.max_gen;
    r.st.objects = swp_index_objects(ix);
    if (rc == 0 && !in->rdonly && (ss.torn || ss.bad_data)) {
        /* Clear what failed its CRC, so a later scan does not count it again. */
        for (uint64_t s = 0; s < in->nslots && rc == 0; s++) {
            struct swp_desc d;
            if (swp_alloc_test(alloc, s))
                continue;
            int v = swp_area_read_desc(area, s, &d);
            if (v == -EIO || (v == 0 && d.gen != 0))
                rc = swp_area_clear_slot(area, s);
        }
    }
    if (rc < 0)
        emm_err("%s: recovering the swap area: %s", in->path, strerror(-rc));
    else if (!in->was_clean || r.st.stale || r.st.torn || r.st.bad_data)
        emm_notice("%s: recovered %llu pages of %llu objects after an %s shutdown (%llu stale, "
                   "%llu torn, %llu failing their CRC)", in->path,
                   (unsigned long long)r.st.used, (unsigned long long)r.st.objects,
                   in->was_clean ? "orderly" : "unclean", (unsigned long long)r.st.stale,
                   (unsigned long long)r.st.torn, (unsigned long long)r.st.bad_data);
    if (stats)
        *stats = r.st;
    return rc;
}
