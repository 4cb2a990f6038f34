/*
 * slot_map.c - per-object block maps: a linear-probing hash table of leaves,
 * each leaf holding SWP_MAP_LEAF entries of slot + 1 (0 = no slot) for the
 * indexes key * LEAF .. key * LEAF + LEAF - 1. A leaf is freed when its last
 * entry goes; the table doubles at 3/4 load and removes by backward shift, so
 * it never holds tombstones. Ordered walks sort the leaf keys first.
 *
 * Locking: none (the owner serializes calls on a map).
 */
#include "slot_map.h"

#include <errno.h>
#include <stdlib.h>

struct swp_leaf {
    uint64_t key;
    uint32_t count;
    uint64_t ent[SWP_MAP_LEAF]; /* slot + 1, 0 = none */
};

struct swp_map {
    struct swp_leaf **tab;
    size_t cap; /* power of two */
    size_t nleaves;
    uint64_t count;
};

#define MAP_MIN_CAP 4u

static size_t
bucket(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

int
swp_map_create(struct swp_map **out)
{
    struct swp_map *m = calloc(1, sizeof(*m));

    if (!m)
        return -ENOMEM;
    m->tab = calloc(MAP_MIN_CAP, sizeof(*m->tab));
    if (!m->tab) {
        free(m);
        return -ENOMEM;
    }
    m->cap = MAP_MIN_CAP;
    *out = m;
    return 0;
}

void
swp_map_destroy(struct swp_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->tab[i]);
    free(m->tab);
    free(m);
}

/* The bucket holding key, or the empty bucket where it would go. */
static size_t
find(const struct swp_map *m, uint64_t key)
{
    size_t b = bucket(key, m->cap);
    while (m->tab[b] && m->tab[b]->key != key)
        b = (b + 1) & (m->cap - 1);
    return b;
}

static int
grow(struct swp_map *m)
{
    size_t ncap = m->cap * 2;
    struct swp_leaf **nt = calloc(ncap, sizeof(*nt));

    if (!nt)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        struct swp_leaf *l = m->tab[i];
        if (!l)
            continue;
        size_t b = bucket(l->key, ncap);
        while (nt[b])
            b = (b + 1) & (ncap - 1);
        nt[b] = l;
    }
    free(m->tab);
    m->tab = nt;
    m->cap = ncap;
    return 0;
}

/* Removes the leaf in bucket b, shifting later entries of its cluster back. */
static void
drop_bucket(struct swp_map *m, size_t b)
{
    size_t mask = m->cap - 1, j = b;

    free(m->tab[b]);
    m->tab[b] = NULL;
    m->nleaves--;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->tab[j])
            return;
        size_t home = bucket(m->tab[j]->key, m->cap);
        /* move j back to the hole at b unless its home lies in (b, j] */
        if (((j - home) & mask) >= ((j - b) & mask)) {
            m->tab[b] = m->tab[j];
            m->tab[j] = NULL;
            b = j;
        }
    }
}

int
swp_map_lookup(const struct swp_map *m, uint64_t index, uint64_t *slot)
{
    const struct swp_leaf *l = m->tab[find(m, index / SWP_MAP_LEAF)];
    uint64_t e;

    if (!l || (e = l->ent[index % SWP_MAP_LEAF]) == 0)
        return -ENOENT;
    *slot = e - 1;
    return 0;
}

int
swp_map_insert(struct swp_map *m, uint64_t index, uint64_t slot, uint64_t *old)
{
    uint64_t key = index / SWP_MAP_LEAF;
    size_t b;
    struct swp_leaf *l;

    if (slot == SWP_NO_SLOT)
        return -EINVAL;
    b = find(m, key);
    l = m->tab[b];
    if (!l) {
        if ((m->nleaves + 1) * 4 > m->cap * 3) {
            if (grow(m) < 0)
                return -ENOMEM;
            b = find(m, key);
        }
        l = calloc(1, sizeof(*l));
        if (!l)
            return -ENOMEM;
        l->key = key;
        m->tab[b] = l;
        m->nleaves++;
    }
    uint64_t *e = &l->ent[index % SWP_MAP_LEAF];
    if (old)
        *old = *e ? *e - 1 : SWP_NO_SLOT;
    if (!*e) {
        l->count++;
        m->count++;
    }
    *e = slot + 1;
    return 0;
}

int
swp_map_remove(struct swp_map *m, uint64_t index, uint64_t *old)
{
    size_t b = find(m, index / SWP_MAP_LEAF);
    struct swp_leaf *l = m->tab[b];
    uint64_t *e;

    if (!l || !*(e = &l->ent[index % SWP_MAP_LEAF]))
        return -ENOENT;
    if (old)
        *old = *e - 1;
    *e = 0;
    m->count--;
    if (--l->count == 0)
        drop_bucket(m, b);
    return 0;
}

static int
leaf_cmp(const void *x, const void *y)
{
    uint64_t a = (*(struct swp_leaf *const *)x)->key, b = (*(struct swp_leaf *const *)y)->key;
    return a < b ? -1 : a > b;
}

int
swp_map_iterate(const struct swp_map *m, swp_map_fn fn, void *arg)
{
    struct swp_leaf **v;
    size_t n = 0;
    int rc = 0;

    if (m->nleaves == 0)
        return 0;
    v = malloc(m->nleaves * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->tab[i])
            v[n++] = m->tab[i];
    qsort(v, n, sizeof(*v), leaf_cmp);
    for (size_t i = 0; i < n && rc == 0; i++)
        for (unsigned k = 0; k < SWP_MAP_LEAF && rc == 0; k++)
            if (v[i]->ent[k])
                rc = fn(arg, v[i]->key * SWP_MAP_LEAF + k, v[i]->ent[k] - 1);
    free(v);
    return rc;
}

uint64_t
swp_map_count(const struct swp_map *m)
{
    return m->count;
}

size_t
swp_map_leaves(const struct swp_map *m)
{
    return m->nleaves;
}

size_t
swp_map_bytes(const struct swp_map *m)
{
    return sizeof(*m) + m->cap * sizeof(*m->tab) + m->nleaves * sizeof(struct swp_leaf);
}
