/*
 * vm_policy.c - the page replacement policies behind vm_policy.h: second-chance
 * (Mach), fifo, s3-fifo (Yang et al., SOSP'23) and exact lru. Each owns its
 * queues of caller-embedded vm_pnodes and, for s3-fifo, a fixed ghost table
 * allocated at create; nothing else allocates.
 *
 * Locking: none here; the caller serializes every call on one instance (the
 * pool lock in the daemon).
 */
#include "vm_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- intrusive FIFO: head is the oldest node, tail the newest ---- */

struct pq {
    struct vm_pnode_list q;
    uint64_t n;
};

static void
pq_init(struct pq *q)
{
    TAILQ_INIT(&q->q);
    q->n = 0;
}

static void
pq_push_tail(struct pq *q, struct vm_pnode *n, uint8_t tag)
{
    TAILQ_INSERT_TAIL(&q->q, n, link);
    q->n++;
    n->queue = tag;
}

static void
pq_unlink(struct pq *q, struct vm_pnode *n)
{
    TAILQ_REMOVE(&q->q, n, link);
    n->queue = VM_PQ_NONE;
    q->n--;
}

static struct vm_pnode *
pq_pop_head(struct pq *q)
{
    struct vm_pnode *n = TAILQ_FIRST(&q->q);
    if (n != NULL)
        pq_unlink(q, n);
    return n;
}

/* ---- second-chance: Mach's active and inactive FIFOs ----
 *
 * Pages enter the tail of active (prefetched ones the tail of inactive, so an
 * unused read-ahead is the first to go). Before and after each reclaim the
 * inactive queue is refilled from the head of active, clearing reference bits,
 * up to inactive_target = 2/3 x (active + inactive): CMU Mach 3.0's target
 * (vm_pageout.c; GNU Mach's "active <= 1/3" is the same split), which Draves
 * measured as a far better LRU approximation than a small inactive queue.
 * The reclaim takes the head of inactive: referenced since it was deactivated
 * -> back to the tail of active (its second chance), else it is the victim.
 * The fraction is a field so the simulator can compare others.
 */
struct sc_state {
    struct pq active, inactive;
    unsigned inactive_num, inactive_den; /* inactive_target fraction, 2/3 */
    uint64_t second_chances;
};

static int
sc_create(uint64_t capacity, void **st)
{
    (void)capacity; /* the target follows the resident count, like Mach's */
    struct sc_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    pq_init(&s->active);
    pq_init(&s->inactive);
    s->inactive_num = 2;
    s->inactive_den = 3;
    *st = s;
    return 0;
}

void
vm_policy_sc_set_inactive(void *st, unsigned num, unsigned den)
{
    struct sc_state *s = st;
    s->inactive_num = num;
    s->inactive_den = den;
}

static void
sc_destroy(void *st)
{
    free(st);
}

static void
sc_insert(void *st, struct vm_pnode *n)
{
    struct sc_state *s = st;
    n->ref = 0;
    if (n->flags & VM_PN_PREFETCH)
        pq_push_tail(&s->inactive, n, VM_PQ_INACTIVE);
    else
        pq_push_tail(&s->active, n, VM_PQ_ACTIVE);
}

static void
sc_touch(void *st, struct vm_pnode *n)
{
    (void)st;
    n->ref = 1; /* Mach does not move a page on reference, it only marks it */
}

/* Deactivate from the head of active until inactive reaches its target. */
static void
sc_balance(struct sc_state *s)
{
    uint64_t total = s->active.n + s->inactive.n;
    uint64_t target = total * s->inactive_num / s->inactive_den;
    while (s->inactive.n < target && s->active.n > 0) {
        struct vm_pnode *n = pq_pop_head(&s->active);
        n->ref = 0;
        pq_push_tail(&s->inactive, n, VM_PQ_INACTIVE);
    }
}

static struct vm_pnode *
sc_victim(void *st)
{
    struct sc_state *s = st;
    /* Terminates: a reactivation consumes a reference bit, and pages refilled
     * from active arrive with theirs cleared, so within two rounds of the
     * queues some page is unreferenced. Amortized O(1) against touches. */
    for (;;) {
        sc_balance(s);
        if (s->inactive.n == 0 && s->active.n > 0) { /* target rounds to 0 */
            struct vm_pnode *a = pq_pop_head(&s->active);
            a->ref = 0;
            pq_push_tail(&s->inactive, a, VM_PQ_INACTIVE);
        }
        struct vm_pnode *n = pq_pop_head(&s->inactive);
        if (n == NULL)
            return NULL;
        if (n->ref) { /* referenced since deactivation: second chance */
            n->ref = 0;
            s->second_chances++;
            pq_push_tail(&s->active, n, VM_PQ_ACTIVE);
            continue;
        }
        sc_balance(s);
        return n;
    }
}

static void
sc_remove(void *st, struct vm_pnode *n)
{
    struct sc_state *s = st;
    pq_unlink(n->queue == VM_PQ_ACTIVE ? &s->active : &s->inactive, n);
}

static uint64_t
sc_count(void *st, enum vm_pqueue q)
{
    struct sc_state *s = st;
    switch (q) {
    case VM_PQ_NONE: return s->active.n + s->inactive.n;
    case VM_PQ_ACTIVE: return s->active.n;
    case VM_PQ_INACTIVE: return s->inactive.n;
    default: return 0;
    }
}

static uint64_t
sc_second_chances(void *st)
{
    return ((struct sc_state *)st)->second_chances;
}

static const struct vm_policy_ops sc_ops = {
    .name = "second-chance",
    .create = sc_create,
    .destroy = sc_destroy,
    .insert = sc_insert,
    .touch = sc_touch,
    .victim = sc_victim,
    .remove = sc_remove,
    .count = sc_count,
    .second_chances = sc_second_chances,
};

/* ---- fifo: insertion order, references ignored ---- */

static int
one_queue_create(uint64_t capacity, void **st)
{
    (void)capacity;
    struct pq *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    pq_init(q);
    *st = q;
    return 0;
}

static void
one_queue_destroy(void *st)
{
    free(st);
}

static void
fifo_insert(void *st, struct vm_pnode *n)
{
    n->ref = 0;
    pq_push_tail(st, n, VM_PQ_FIFO);
}

static void
fifo_touch(void *st, struct vm_pnode *n)
{
    (void)st;
    n->ref = 1; /* recorded, never used: that is what makes it FIFO */
}

static struct vm_pnode *
one_queue_victim(void *st)
{
    return pq_pop_head(st);
}

static void
one_queue_remove(void *st, struct vm_pnode *n)
{
    pq_unlink(st, n);
}

static uint64_t
fifo_count(void *st, enum vm_pqueue q)
{
    return q == VM_PQ_NONE || q == VM_PQ_FIFO ? ((struct pq *)st)->n : 0;
}

static const struct vm_policy_ops fifo_ops = {
    .name = "fifo",
    .create = one_queue_create,
    .destroy = one_queue_destroy,
    .insert = fifo_insert,
    .touch = fifo_touch,
    .victim = one_queue_victim,
    .remove = one_queue_remove,
    .count = fifo_count,
};

/* ---- lru: exact, a node moves to the tail on every reference ---- */

static void
lru_insert(void *st, struct vm_pnode *n)
{
    n->ref = 0;
    pq_push_tail(st, n, VM_PQ_LRU);
}

static void
lru_touch(void *st, struct vm_pnode *n)
{
    pq_unlink(st, n);
    pq_push_tail(st, n, VM_PQ_LRU);
}

static uint64_t
lru_count(void *st, enum vm_pqueue q)
{
    return q == VM_PQ_NONE || q == VM_PQ_LRU ? ((struct pq *)st)->n : 0;
}

static const struct vm_policy_ops lru_ops = {
    .name = "lru",
    .create = one_queue_create,
    .destroy = one_queue_destroy,
    .insert = lru_insert,
    .touch = lru_touch,
    .victim = one_queue_victim,
    .remove = one_queue_remove,
    .count = lru_count,
};

/* ---- s3-fifo (Yang, Zhang, Qiu, Yue, Rashmi, SOSP'23, Algorithm 1) ----
 *
 * S, a small FIFO of 10% of the capacity, filters one-hit wonders; M, the main
 * FIFO (90%), is a FIFO with reinsertion on a 2-bit frequency; G, the ghost
 * FIFO, remembers the keys of the last |M| pages evicted from S. A page enters
 * M if its key is in G, else S. Touch: freq = min(freq + 1, 3).
 * victim: if |S| >= 10% of the capacity evict from S, else from M.
 *   evict S: tail of S with freq > 1 (the paper's threshold: touched at least
 *     twice while in S) moves to M with freq 0; if that overfills M, the victim
 *     comes from M. Otherwise its key goes to G and it is the victim.
 *   evict M: tail of M with freq > 0 is reinserted with freq - 1, else it is
 *     the victim.
 * The paper's evictS may evict one page from M and one from S in one call; one
 * victim per call here, the S eviction simply happens on the next call.
 *
 * G is part of an index, as the paper suggests: a bucketed hash table of
 * (32-bit fingerprint, insertion stamp); an entry is in G while fewer than |G|
 * ghost insertions followed it. A full bucket drops its oldest entry early and
 * fingerprints may collide: both only change which pages enter M.
 */
#define S3_SMALL_PCT 10
#define S3_MAX_FREQ 3
#define S3_MOVE_FREQ 1 /* moves S -> M when freq > this */
#define S3_BUCKET 4

struct s3_slot {
    uint32_t fp; /* 0: empty */
    uint32_t stamp;
};

struct s3_state {
    struct pq small, main;
    uint64_t small_target, main_target;
    struct s3_slot *ghost;
    uint64_t ghost_mask;   /* buckets - 1 */
    uint32_t ghost_size;   /* entries G holds (|M|) */
    uint32_t ghost_clock;  /* ghost insertions so far (mod 2^32) */
    uint64_t second_chances;
};

static uint64_t
mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static int
s3_create(uint64_t capacity, void **st)
{
    if (capacity == 0 || capacity > UINT32_MAX)
        return -EINVAL;
    struct s3_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    pq_init(&s->small);
    pq_init(&s->main);
    s->small_target = capacity * S3_SMALL_PCT / 100;
    if (s->small_target == 0)
        s->small_target = 1;
    s->main_target = capacity - s->small_target;
    s->ghost_size = (uint32_t)(s->main_target > 0 ? s->main_target : 1);
    /* Buckets for ~2 slots per ghost entry: a power of two >= ghost_size / 2. */
    uint64_t nb = 1;
    while (nb * S3_BUCKET < 2ull * s->ghost_size)
        nb <<= 1;
    s->ghost = calloc(nb * S3_BUCKET, sizeof(*s->ghost));
    if (s->ghost == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->ghost_mask = nb - 1;
    *st = s;
    return 0;
}

static void
s3_destroy(void *st)
{
    struct s3_state *s = st;
    if (s != NULL)
        free(s->ghost);
    free(s);
}

static int
s3_ghost_live(const struct s3_state *s, const struct s3_slot *e)
{
    return e->fp != 0 && (uint32_t)(s->ghost_clock - e->stamp) <= s->ghost_size;
}

static struct s3_slot *
s3_bucket(struct s3_state *s, uint64_t key, uint32_t *fp)
{
    uint64_t h = mix64(key);
    *fp = (uint32_t)(h >> 32);
    if (*fp == 0)
        *fp = 1;
    return &s->ghost[(h & s->ghost_mask) * S3_BUCKET];
}

/* Removes key from G; returns 1 if it was there. */
static int
s3_ghost_take(struct s3_state *s, uint64_t key)
{
    uint32_t fp;
    struct s3_slot *b = s3_bucket(s, key, &fp);
    for (int i = 0; i < S3_BUCKET; i++)
        if (b[i].fp == fp && s3_ghost_live(s, &b[i])) {
            b[i].fp = 0;
            return 1;
        }
    return 0;
}

static void
s3_ghost_put(struct s3_state *s, uint64_t key)
{
    if (s->ghost_clock == UINT32_MAX) { /* stamps would wrap and old ones look new */
        memset(s->ghost, 0, (s->ghost_mask + 1) * S3_BUCKET * sizeof(*s->ghost));
        s->ghost_clock = 0;
    }
    uint32_t fp;
    struct s3_slot *b = s3_bucket(s, key, &fp);
    struct s3_slot *slot = &b[0];
    for (int i = 0; i < S3_BUCKET; i++) {
        if (!s3_ghost_live(s, &b[i])) {
            slot = &b[i];
            break;
        }
        if ((uint32_t)(s->ghost_clock - b[i].stamp) > (uint32_t)(s->ghost_clock - slot->stamp))
            slot = &b[i]; /* full bucket: the oldest goes early */
    }
    slot->fp = fp;
    slot->stamp = s->ghost_clock++;
}

static void
s3_insert(void *st, struct vm_pnode *n)
{
    struct s3_state *s = st;
    n->ref = 0;
    if (s3_ghost_take(s, n->key))
        pq_push_tail(&s->main, n, VM_PQ_MAIN);
    else
        pq_push_tail(&s->small, n, VM_PQ_SMALL);
}

static void
s3_touch(void *st, struct vm_pnode *n)
{
    (void)st;
    if (n->ref < S3_MAX_FREQ)
        n->ref++;
}

static struct vm_pnode *
s3_evict_main(struct s3_state *s)
{
    struct vm_pnode *n;
    /* Each reinsertion spends one unit of frequency a touch paid for. */
    while ((n = pq_pop_head(&s->main)) != NULL) {
        if (n->ref == 0)
            return n;
        n->ref--;
        s->second_chances++;
        pq_push_tail(&s->main, n, VM_PQ_MAIN);
    }
    return NULL;
}

static struct vm_pnode *
s3_victim(void *st)
{
    struct s3_state *s = st;
    if (s->small.n >= s->small_target || s->main.n == 0) {
        struct vm_pnode *n;
        while ((n = pq_pop_head(&s->small)) != NULL) {
            if (n->ref > S3_MOVE_FREQ) {
                n->ref = 0;
                s->second_chances++;
                pq_push_tail(&s->main, n, VM_PQ_MAIN);
                if (s->main.n > s->main_target)
                    return s3_evict_main(s);
                continue;
            }
            s3_ghost_put(s, n->key);
            return n;
        }
    }
    return s3_evict_main(s);
}

static void
s3_remove(void *st, struct vm_pnode *n)
{
    struct s3_state *s = st;
    pq_unlink(n->queue == VM_PQ_SMALL ? &s->small : &s->main, n);
}

static uint64_t
s3_count(void *st, enum vm_pqueue q)
{
    struct s3_state *s = st;
    switch (q) {
    case VM_PQ_NONE: return s->small.n + s->main.n;
    case VM_PQ_SMALL: return s->small.n;
    case VM_PQ_MAIN: return s->main.n;
    default: return 0;
    }
}

static uint64_t
s3_second_chances(void *st)
{
    return ((struct s3_state *)st)->second_chances;
}

static const struct vm_policy_ops s3_ops = {
    .name = "s3-fifo",
    .create = s3_create,
    .destroy = s3_destroy,
    .insert = s3_insert,
    .touch = s3_touch,
    .victim = s3_victim,
    .remove = s3_remove,
    .count = s3_count,
    .second_chances = s3_second_chances,
};

/* ---- registry ---- */

const struct vm_policy_ops *const vm_policies[] = {&sc_ops, &fifo_ops, &s3_ops, &lru_ops, NULL};

const struct vm_policy_ops *
vm_policy_lookup(const char *name)
{
    if (name == NULL)
        return NULL;
    for (int i = 0; vm_policies[i] != NULL; i++)
        if (strcmp(vm_policies[i]->name, name) == 0)
            return vm_policies[i];
    return NULL;
}
