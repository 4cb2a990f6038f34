/*
 * backend_memory.c - the "memory" backend: a sparse page store in RAM. Each
 * object holds a radix tree of 64-way nodes over its page index (so a 1 TiB
 * sparse object with a few pages costs a few nodes), and every node counts the
 * pages beneath it, so seek skips empty and full subtrees.
 *
 * Locking: the object table has one rwlock (read to look up, write to add an
 * object); each object has its own rwlock (read for read/seek/stored_pages,
 * write for write/discard). The global page count is atomic, which is all
 * memory.limit needs. Objects live until destroy. Thread model PARALLEL.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_host.h"

#define RBITS 6
#define RFAN (1u << RBITS)
#define RMAX_HEIGHT 11 /* 6 * 11 >= 64: covers every page index */
#define NBUCKETS 1024

struct rnode {
    uint64_t count;      /* pages stored beneath */
    void *slot[RFAN];    /* level 1: page buffers; above: struct rnode * */
};

struct mobj {
    uint64_t id;
    pthread_rwlock_t lock;
    struct rnode *root;
    unsigned height;     /* root is at this level; 0 = empty */
    struct mobj *hnext;
};

struct mem {
    const struct emm_backend_host *host;
    uint64_t limit;      /* pages; 0 = unlimited */
    _Atomic uint64_t stored;
    pthread_rwlock_t table_lock;
    struct mobj *buckets[NBUCKETS];
};

/* Number of pages a node at level `level` covers, or 0 when it exceeds 2^64. */
static uint64_t
span(unsigned level)
{
    return RBITS * level >= 64 ? 0 : (uint64_t)1 << (RBITS * level);
}

static unsigned
slot_of(uint64_t page, unsigned level)
{
    return (unsigned)((page >> (RBITS * (level - 1))) & (RFAN - 1));
}

/* Does a tree of this height hold page index `page`? */
static int
covers(unsigned height, uint64_t page)
{
    uint64_t s = span(height);
    return height > 0 && (s == 0 || page < s);
}

static void *
lookup(const struct mobj *o, uint64_t page)
{
    if (!covers(o->height, page))
        return NULL;
    struct rnode *n = o->root;
    for (unsigned level = o->height; n && level > 1; level--)
        n = n->slot[slot_of(page, level)];
    return n ? n->slot[slot_of(page, 1)] : NULL;
}

/* Stores buf as page `page` (absent before). 0 or -ENOMEM. */
static int
insert(struct mobj *o, uint64_t page, void *buf)
{
    while (!covers(o->height, page)) {
        struct rnode *r = calloc(1, sizeof(*r));
        if (!r)
            return -ENOMEM;
        if (o->root) {
            r->slot[0] = o->root;
            r->count = o->root->count;
        }
        o->root = r;
        o->height++;
    }
    struct rnode *path[RMAX_HEIGHT + 1];
    struct rnode *n = o->root;
    unsigned depth = 0;
    for (unsigned level = o->height; level > 1; level--) {
        path[depth++] = n;
        void **s = &n->slot[slot_of(page, level)];
        if (!*s) {
            *s = calloc(1, sizeof(struct rnode));
            if (!*s)
                return -ENOMEM; /* empty nodes left behind are harmless */
        }
        n = *s;
    }
    path[depth++] = n;
    n->slot[slot_of(page, 1)] = buf;
    for (unsigned i = 0; i < depth; i++)
        path[i]->count++;
    return 0;
}

static void
free_tree(struct rnode *n, unsigned level)
{
    if (!n)
        return;
    for (unsigned i = 0; i < RFAN; i++) {
        if (level == 1)
            free(n->slot[i]);
        else
            free_tree(n->slot[i], level - 1);
    }
    free(n);
}

/* Frees pages [first, last] under node n (level, covering from base); returns
 * the number freed. */
static uint64_t
remove_range(struct rnode *n, unsigned level, uint64_t base, uint64_t first, uint64_t last)
{
    uint64_t child_span = span(level - 1), freed = 0;
    unsigned i0 = first > base ? slot_of(first, level) : 0;

    for (unsigned i = i0; i < RFAN; i++) {
        uint64_t cb = base + i * child_span;
        if (cb > last || (i > 0 && cb < base))
            break;
        if (!n->slot[i])
            continue;
        if (level == 1) {
            free(n->slot[i]);
            n->slot[i] = NULL;
            freed++;
            continue;
        }
        struct rnode *c = n->slot[i];
        freed += remove_range(c, level - 1, cb, first, last);
        if (c->count == 0) {
            /* No page beneath, but maybe empty nodes outside [first, last]
             * (the slot-0 chain a root grown over an empty tree keeps). */
            free_tree(c, level - 1);
            n->slot[i] = NULL;
        }
    }
    n->count -= freed;
    return freed;
}

/* First stored page >= from under n, if any. */
static int
find_data(const struct rnode *n, unsigned level, uint64_t base, uint64_t from, uint64_t *found)
{
    uint64_t child_span = span(level - 1);
    unsigned i0 = from > base ? slot_of(from, level) : 0;

    for (unsigned i = i0; i < RFAN; i++) {
        uint64_t cb = base + i * child_span;
        if (!n->slot[i])
            continue;
        if (level == 1) {
            *found = cb;
            return 1;
        }
        if (find_data(n->slot[i], level - 1, cb, from > cb ? from : cb, found))
            return 1;
    }
    return 0;
}

/* First hole >= from under n, if any. */
static int
find_hole(const struct rnode *n, unsigned level, uint64_t base, uint64_t from, uint64_t *found)
{
    uint64_t child_span = span(level - 1);
    unsigned i0 = from > base ? slot_of(from, level) : 0;

    for (unsigned i = i0; i < RFAN; i++) {
        uint64_t cb = base + i * child_span;
        uint64_t start = from > cb ? from : cb;
        if (!n->slot[i]) {
            *found = start;
            return 1;
        }
        if (level == 1)
            continue;
        const struct rnode *c = n->slot[i];
        if (c->count == child_span)
            continue;
        if (find_hole(c, level - 1, cb, start, found))
            return 1;
    }
    return 0;
}

static struct mobj *
get_obj(struct mem *m, uint64_t id, int create)
{
    unsigned h = (unsigned)((id * 0x9E3779B97F4A7C15ull) >> 54) & (NBUCKETS - 1);
    struct mobj *o;

    pthread_rwlock_rdlock(&m->table_lock);
    for (o = m->buckets[h]; o && o->id != id; o = o->hnext)
        ;
    pthread_rwlock_unlock(&m->table_lock);
    if (o || !create)
        return o;
    pthread_rwlock_wrlock(&m->table_lock);
    for (o = m->buckets[h]; o && o->id != id; o = o->hnext)
        ;
    if (!o) {
        o = calloc(1, sizeof(*o));
        if (o) {
            o->id = id;
            pthread_rwlock_init(&o->lock, NULL);
            o->hnext = m->buckets[h];
            m->buckets[h] = o;
        }
    }
    pthread_rwlock_unlock(&m->table_lock);
    return o;
}

static int
mem_create(const struct emm_backend_host *host, void **instance)
{
    struct mem *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->host = host;
    pthread_rwlock_init(&m->table_lock, NULL);
    *instance = m;
    return 0;
}

static int
mem_config(void *instance, const char *key, const char *value, char *err, size_t errlen)
{
    struct mem *m = instance;
    uint64_t bytes;

    if (strcmp(key, "limit") == 0) {
        if (m->host->parse_size(value, &bytes) < 0) {
            snprintf(err, errlen, "'%s' is not a size (e.g. 512M, 2G)", value);
            return -EINVAL;
        }
        if (bytes != 0 && bytes < EMM_PAGE_SIZE) {
            snprintf(err, errlen, "limit %s is below one page (%u bytes)", value, EMM_PAGE_SIZE);
            return -EINVAL;
        }
        m->limit = bytes / EMM_PAGE_SIZE;
        return 0;
    }
    snprintf(err, errlen, "unknown key (memory takes: limit)");
    return -EINVAL;
}

static void
mem_destroy(void *instance)
{
    struct mem *m = instance;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        struct mobj *o = m->buckets[i], *next;
        for (; o; o = next) {
            next = o->hnext;
            free_tree(o->root, o->height);
            pthread_rwlock_destroy(&o->lock);
            free(o);
        }
    }
    pthread_rwlock_destroy(&m->table_lock);
    free(m);
}

static int
mem_read(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
         uint8_t *present)
{
    struct mobj *o = get_obj(instance, object, 0);
    char *out = buf;

    if (!o) {
        memset(buf, 0, (size_t)npages * EMM_PAGE_SIZE);
        memset(present, 0, npages);
        return 0;
    }
    pthread_rwlock_rdlock(&o->lock);
    for (uint32_t i = 0; i < npages; i++, out += EMM_PAGE_SIZE) {
        const void *p = lookup(o, first + i);
        if (p)
            memcpy(out, p, EMM_PAGE_SIZE);
        else
            memset(out, 0, EMM_PAGE_SIZE);
        present[i] = p != NULL;
    }
    pthread_rwlock_unlock(&o->lock);
    return 0;
}

/* Reserves n more pages against memory.limit. */
static int
reserve(struct mem *m, uint64_t n)
{
    uint64_t cur = atomic_load(&m->stored);
    do {
        if (m->limit && (cur + n > m->limit || cur + n < cur))
            return -ENOSPC;
    } while (!atomic_compare_exchange_weak(&m->stored, &cur, cur + n));
    return 0;
}

static int
mem_write(void *instance, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    struct mem *m = instance;
    struct mobj *o = get_obj(m, object, 1);
    const char *in = buf;
    uint64_t missing = 0;
    int r = 0;

    if (!o)
        return -ENOMEM;
    pthread_rwlock_wrlock(&o->lock);
    for (uint32_t i = 0; i < npages; i++)
        missing += lookup(o, first + i) == NULL;
    if (missing && (r = reserve(m, missing)) < 0)
        goto out;
    for (uint32_t i = 0; i < npages; i++, in += EMM_PAGE_SIZE) {
        void *p = lookup(o, first + i);
        if (!p) {
            p = malloc(EMM_PAGE_SIZE);
            if (!p || (r = insert(o, first + i, p)) < 0) {
                free(p);
                r = -ENOMEM;
                break;
            }
            missing--;
        }
        memcpy(p, in, EMM_PAGE_SIZE);
    }
    atomic_fetch_sub(&m->stored, missing); /* unused reservation after a failure */
out:
    pthread_rwlock_unlock(&o->lock);
    return r;
}

static int
mem_discard(void *instance, uint64_t object, uint64_t first, uint64_t npages)
{
    struct mem *m = instance;
    struct mobj *o = get_obj(m, object, 0);
    uint64_t last = npages == UINT64_MAX || first + npages < first ? UINT64_MAX
                                                                    : first + npages - 1;

    if (!o || npages == 0)
        return 0;
    pthread_rwlock_wrlock(&o->lock);
    if (o->root && covers(o->height, first)) {
        uint64_t freed = remove_range(o->root, o->height, 0, first, last);
        atomic_fetch_sub(&m->stored, freed);
        if (o->root->count == 0) {
            free_tree(o->root, o->height);
            o->root = NULL;
            o->height = 0;
        }
    }
    pthread_rwlock_unlock(&o->lock);
    return 0;
}

static int
mem_seek(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found)
{
    struct mobj *o = get_obj(instance, object, 0);
    int r = 0;

    if (!o) {
        if (!want_data) {
            *found = from;
            return 0;
        }
        return -ENXIO;
    }
    pthread_rwlock_rdlock(&o->lock);
    if (!o->root || !covers(o->height, from)) {
        if (want_data)
            r = -ENXIO;
        else
            *found = from;
    } else if (want_data) {
        if (!find_data(o->root, o->height, 0, from, found))
            r = -ENXIO;
    } else if (!find_hole(o->root, o->height, 0, from, found)) {
        uint64_t s = span(o->height);
        if (s)
            *found = s; /* first page past the tree */
        else
            r = -ENXIO; /* every page index is stored */
    }
    pthread_rwlock_unlock(&o->lock);
    return r;
}

static int
mem_stored_pages(void *instance, uint64_t object, uint64_t *count)
{
    struct mobj *o = get_obj(instance, object, 0);

    *count = 0;
    if (!o)
        return 0;
    pthread_rwlock_rdlock(&o->lock);
    *count = o->root ? o->root->count : 0;
    pthread_rwlock_unlock(&o->lock);
    return 0;
}

static int
mem_sync(void *instance, uint64_t object)
{
    (void)instance;
    (void)object;
    return 0;
}

static int
mem_info(void *instance, char *buf, size_t len)
{
    struct mem *m = instance;
    uint64_t n = atomic_load(&m->stored);
    int w = snprintf(buf, len, "stored_pages:%" PRIu64 "\nstored_bytes:%" PRIu64 "\nlimit_bytes:%" PRIu64 "\n",
                     n, n * EMM_PAGE_SIZE, m->limit * EMM_PAGE_SIZE);
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

const struct emm_backend_ops emm_backend_memory_ops = {
    .struct_size = sizeof(struct emm_backend_ops),
    .api_version = EMM_BACKEND_API_VERSION,
    .thread_model = EMM_THREAD_PARALLEL,
    .name = "memory",
    .flags = EMM_BACKEND_NONBLOCKING,
    .create = mem_create,
    .config = mem_config,
    .destroy = mem_destroy,
    .read_pages = mem_read,
    .write_pages = mem_write,
    .discard = mem_discard,
    .sync = mem_sync,
    .seek = mem_seek,
    .stored_pages = mem_stored_pages,
    .info = mem_info,
};
