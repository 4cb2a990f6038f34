/*
 * slot_alloc.c - the slot bitmap: one bit per slot in uint64 words (1 = used),
 * a free count, and a word hint where the next search starts (next fit). The
 * bits past the last slot are set once, so searches need no bounds checks.
 * Allocation is O(1) amortized: the hint only moves forward over full words and
 * wraps around once; a full area answers -ENOSPC from the free count at once.
 *
 * Locking: one mutex per allocator guards the bitmap, the hint and the count.
 */
#include "slot_alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct swp_alloc {
    pthread_mutex_t lock;
    uint64_t *words;
    uint64_t nwords;
    uint64_t nslots;
    uint64_t nfree;
    uint64_t hint; /* word index */
};

int
swp_alloc_create(uint64_t nslots, struct swp_alloc **out)
{
    struct swp_alloc *al;

    if (nslots == 0)
        return -EINVAL;
    al = calloc(1, sizeof(*al));
    if (!al)
        return -ENOMEM;
    al->nwords = (nslots + 63) / 64;
    al->words = calloc(al->nwords, sizeof(uint64_t));
    if (!al->words) {
        free(al);
        return -ENOMEM;
    }
    if (nslots % 64)
        al->words[al->nwords - 1] = ~0ull << (nslots % 64);
    al->nslots = nslots;
    al->nfree = nslots;
    pthread_mutex_init(&al->lock, NULL);
    *out = al;
    return 0;
}

void
swp_alloc_destroy(struct swp_alloc *al)
{
    if (!al)
        return;
    pthread_mutex_destroy(&al->lock);
    free(al->words);
    free(al);
}

int
swp_alloc_get_run(struct swp_alloc *al, unsigned want, uint64_t *first)
{
    pthread_mutex_lock(&al->lock);
    if (al->nfree == 0) {
        pthread_mutex_unlock(&al->lock);
        return -ENOSPC;
    }
    uint64_t w = al->hint;
    while (al->words[w] == ~0ull)
        w = w + 1 == al->nwords ? 0 : w + 1; /* ends: nfree > 0 */
    uint64_t slot = w * 64 + (uint64_t)__builtin_ctzll(~al->words[w]);
    /* Then the free slots right after it: one vectored write for a cluster. */
    unsigned n = 0;
    while (n < (want ? want : 1) && slot + n < al->nslots) {
        uint64_t s = slot + n, bit = 1ull << (s % 64);
        if (al->words[s / 64] & bit)
            break;
        al->words[s / 64] |= bit;
        n++;
    }
    al->nfree -= n;
    al->hint = (slot + n - 1) / 64;
    pthread_mutex_unlock(&al->lock);
    *first = slot;
    return (int)n;
}

int
swp_alloc_get(struct swp_alloc *al, uint64_t *slot)
{
    int n = swp_alloc_get_run(al, 1, slot);
    return n < 0 ? n : 0;
}

int
swp_alloc_put(struct swp_alloc *al, uint64_t slot)
{
    int rc = 0;

    if (slot >= al->nslots)
        return -EINVAL;
    pthread_mutex_lock(&al->lock);
    uint64_t bit = 1ull << (slot % 64);
    if (!(al->words[slot / 64] & bit)) {
        rc = -EINVAL;
    } else {
        al->words[slot / 64] &= ~bit;
        al->nfree++;
    }
    pthread_mutex_unlock(&al->lock);
    return rc;
}

int
swp_alloc_mark(struct swp_alloc *al, uint64_t slot)
{
    int rc = 0;

    if (slot >= al->nslots)
        return -EINVAL;
    pthread_mutex_lock(&al->lock);
    uint64_t bit = 1ull << (slot % 64);
    if (al->words[slot / 64] & bit) {
        rc = -EEXIST;
    } else {
        al->words[slot / 64] |= bit;
        al->nfree--;
    }
    pthread_mutex_unlock(&al->lock);
    return rc;
}

int
swp_alloc_test(struct swp_alloc *al, uint64_t slot)
{
    int used;

    if (slot >= al->nslots)
        return 0;
    pthread_mutex_lock(&al->lock);
    used = !!(al->words[slot / 64] & (1ull << (slot % 64)));
    pthread_mutex_unlock(&al->lock);
    return used;
}

uint64_t
swp_alloc_free(struct swp_alloc *al)
{
    pthread_mutex_lock(&al->lock);
    uint64_t n = al->nfree;
    pthread_mutex_unlock(&al->lock);
    return n;
}

uint64_t
swp_alloc_used(struct swp_alloc *al)
{
    return al->nslots - swp_alloc_free(al);
}

uint64_t
swp_alloc_total(const struct swp_alloc *al)
{
    return al->nslots;
}
