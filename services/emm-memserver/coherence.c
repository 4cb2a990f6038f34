/*
 * coherence.c - the per-page coherence state machine (see coherence.h):
 * NetMemServer's reader set / writer with a FIFO of waiting requests, and
 * XMM's downgrade of a writer when a reader appears.
 *
 * A page has state only while someone holds it, waits for it or owes an ack;
 * the table (chained hash, doubled when it fills) forgets it otherwise.
 *
 * Locking: none; the caller serialises calls on one object.
 */
#include "coherence.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

struct req {
    STAILQ_ENTRY(req) link;
    unsigned host;
    int write, has_data;
};
STAILQ_HEAD(req_queue, req);

struct page {
    struct page *next; /* hash chain */
    uint64_t index;
    uint64_t readers;
    int writer;
    int busy;             /* the head request waits for acks */
    uint64_t acks_flush;  /* hosts that owe an ack for a flush */
    uint64_t acks_down;   /* ... for a downgrade */
    unsigned nreq;
    struct req_queue q;
};

struct msrv_coh {
    struct msrv_coh_ops ops;
    void *ctx;
    struct page **buckets;
    uint64_t nbuckets, npages;
    uint64_t gone; /* hosts gone: a request of theirs still queued is dropped */
    struct msrv_coh_stats st;
};

#define BIT(h) (UINT64_C(1) << (h))

static uint64_t
hash(uint64_t x, uint64_t n)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return x & (n - 1);
}

int
msrv_coh_create(const struct msrv_coh_ops *ops, void *ctx, struct msrv_coh **out)
{
    struct msrv_coh *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return -ENOMEM;
    }
    c->ops = *ops;
    c->ctx = ctx;
    *out = c;
    return 0;
}

static void
page_free(struct page *p)
{
    struct req *r;
    while ((r = STAILQ_FIRST(&p->q)) != NULL) {
        STAILQ_REMOVE_HEAD(&p->q, link);
        free(r);
    }
    free(p);
}

void
msrv_coh_destroy(struct msrv_coh *c)
{
    if (c == NULL)
        return;
    for (uint64_t b = 0; b < c->nbuckets; b++)
        while (c->buckets[b] != NULL) {
            struct page *p = c->buckets[b];
            c->buckets[b] = p->next;
            page_free(p);
        }
    free(c->buckets);
    free(c);
}

static struct page *
find(const struct msrv_coh *c, uint64_t index)
{
    for (struct page *p = c->buckets[hash(index, c->nbuckets)]; p != NULL; p = p->next)
        if (p->index == index)
            return p;
    return NULL;
}

static void
grow(struct msrv_coh *c)
{
    uint64_t n = c->nbuckets * 2;
    struct page **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* longer chains, still correct */
    for (uint64_t b = 0; b < c->nbuckets; b++)
        while (c->buckets[b] != NULL) {
            struct page *p = c->buckets[b];
            c->buckets[b] = p->next;
            uint64_t h = hash(p->index, n);
            p->next = nb[h];
            nb[h] = p;
        }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
}

static struct page *
get(struct msrv_coh *c, uint64_t index)
{
    struct page *p = find(c, index);
    if (p != NULL)
        return p;
    if (c->npages >= c->nbuckets)
        grow(c);
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->index = index;
    p->writer = MSRV_NO_HOST;
    STAILQ_INIT(&p->q);
    uint64_t h = hash(index, c->nbuckets);
    p->next = c->buckets[h];
    c->buckets[h] = p;
    c->npages++;
    return p;
}

/* Forgets p when nothing is left of it. */
static void
maybe_forget(struct msrv_coh *c, struct page *p)
{
    if (p->readers || p->writer != MSRV_NO_HOST || p->nreq || p->acks_flush || p->acks_down ||
        p->busy)
        return;
    struct page **pp = &c->buckets[hash(p->index, c->nbuckets)];
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    c->npages--;
    free(p);
}

static void
pop(struct page *p)
{
    struct req *r = STAILQ_FIRST(&p->q);
    STAILQ_REMOVE_HEAD(&p->q, link);
    p->nreq--;
    free(r);
}

/* Serves the queue's head requests until one must wait for acks. */
static void
run(struct msrv_coh *c, struct page *p)
{
    struct req *r;
    while (!p->busy && (r = STAILQ_FIRST(&p->q)) != NULL) {
        unsigned h = r->host;
        uint64_t me = BIT(h);
        if (c->gone & me) {
            c->st.dropped++;
            pop(p);
            continue;
        }
        uint64_t wbit = p->writer != MSRV_NO_HOST ? BIT(p->writer) : 0;
        if (r->has_data && !((p->readers | wbit) & me)) {
            /* An unlock from a host that no longer holds the page (flushed
             * since it asked): nobody is revoked for it; its kernel asks
             * again with a data_request. */
            c->st.dropped++;
            pop(p);
            continue;
        }
        if (!r->write) {
            if (wbit && !(wbit & me)) {
                /* A reader appears: the writer keeps a read-only copy. */
                unsigned w = (unsigned)p->writer;
                p->acks_down |= wbit;
                p->busy = 1;
                c->st.downgrades++;
                c->ops.revoke(c->ctx, w, p->index, 0);
                return;
            }
            if (!r->has_data) {
                c->st.supplies++;
                c->ops.supply(c->ctx, h, p->index, (wbit & me) != 0);
            }
            if (!(wbit & me))
                p->readers |= me;
            pop(p);
            continue;
        }
        uint64_t others = (p->readers | wbit) & ~me;
        if (others) {
            p->acks_flush |= others;
            p->busy = 1;
            for (unsigned o = 0; o < MSRV_MAX_HOSTS; o++)
                if (others & BIT(o)) {
                    c->st.flushes++;
                    c->ops.revoke(c->ctx, o, p->index, 1);
                }
            return;
        }
        p->readers = 0;
        p->writer = (int)h;
        if (r->has_data) {
            if (!(wbit & me)) {
                c->st.grants++;
                c->ops.grant(c->ctx, h, p->index);
            }
        } else {
            c->st.supplies++;
            c->ops.supply(c->ctx, h, p->index, 1);
        }
        pop(p);
    }
}

int
msrv_coh_request(struct msrv_coh *c, unsigned host, uint64_t page, int write, int has_data)
{
    if (host >= MSRV_MAX_HOSTS)
        return -EINVAL;
    struct page *p = get(c, page);
    struct req *r = calloc(1, sizeof(*r));
    if (p == NULL || r == NULL) {
        free(r);
        if (p != NULL)
            maybe_forget(c, p);
        return -ENOMEM;
    }
    c->gone &= ~BIT(host); /* a new host in that slot */
    r->host = host;
    r->write = write != 0;
    r->has_data = has_data != 0;
    STAILQ_INSERT_TAIL(&p->q, r, link);
    p->nreq++;
    c->st.requests++;
    run(c, p);
    maybe_forget(c, p);
    return 0;
}

/* host's ack for p arrived (or will never come): apply what it did. */
static void
acked(struct msrv_coh *c, struct page *p, unsigned host)
{
    uint64_t me = BIT(host);
    if (p->acks_flush & me) {
        p->acks_flush &= ~me;
        p->readers &= ~me;
        if (p->writer == (int)host)
            p->writer = MSRV_NO_HOST;
    }
    if (p->acks_down & me) {
        p->acks_down &= ~me;
        if (p->writer == (int)host) {
            p->writer = MSRV_NO_HOST;
            p->readers |= me;
        }
    }
    if (!p->acks_flush && !p->acks_down && p->busy) {
        p->busy = 0;
        run(c, p);
    }
}

int
msrv_coh_ack(struct msrv_coh *c, unsigned host, uint64_t page)
{
    struct page *p = host < MSRV_MAX_HOSTS ? find(c, page) : NULL;
    if (p == NULL || !((p->acks_flush | p->acks_down) & BIT(host))) {
        c->st.stray_acks++;
        return -ENOENT;
    }
    c->st.acks++;
    acked(c, p, host);
    maybe_forget(c, p);
    return 0;
}

int
msrv_coh_may_store(const struct msrv_coh *c, unsigned host, uint64_t page)
{
    const struct page *p = find(c, page);
    return p != NULL && p->writer == (int)host;
}

void
msrv_coh_host_gone(struct msrv_coh *c, unsigned host)
{
    if (host >= MSRV_MAX_HOSTS)
        return;
    uint64_t me = BIT(host);
    c->gone |= me;
    for (uint64_t b = 0; b < c->nbuckets; b++) {
        struct page *p = c->buckets[b];
        while (p != NULL) {
            struct page *next = p->next;
            p->readers &= ~me;
            if (p->writer == (int)host)
                p->writer = MSRV_NO_HOST;
            /* Its waiting requests go; a head that waits for acks stays and
             * is dropped by run() once they are in. */
            struct req *r = STAILQ_FIRST(&p->q), *prev = NULL;
            while (r != NULL) {
                struct req *rn = STAILQ_NEXT(r, link);
                if (r->host == host && !(prev == NULL && p->busy)) {
                    STAILQ_REMOVE(&p->q, r, req, link);
                    p->nreq--;
                    free(r);
                } else {
                    prev = r;
                }
                r = rn;
            }
            if ((p->acks_flush | p->acks_down) & me)
                acked(c, p, host); /* never coming: what it would have done */
            maybe_forget(c, p);
            p = next;
        }
    }
}

void
msrv_coh_page(const struct msrv_coh *c, uint64_t page, struct msrv_coh_page_info *out)
{
    memset(out, 0, sizeof(*out));
    out->writer = MSRV_NO_HOST;
    const struct page *p = find(c, page);
    if (p == NULL)
        return;
    out->readers = p->readers;
    out->writer = p->writer;
    out->waiting = p->nreq;
    out->acks_pending = p->acks_flush | p->acks_down;
}

void
msrv_coh_stats(const struct msrv_coh *c, struct msrv_coh_stats *out)
{
    *out = c->st;
    out->pages = c->npages;
}

void
msrv_coh_drop(struct msrv_coh *c, uint64_t first, uint64_t end)
{
    for (uint64_t b = 0; b < c->nbuckets; b++) {
        struct page *p = c->buckets[b];
        while (p != NULL) {
            struct page *next = p->next;
            if (p->index >= first && p->index < end) {
                uint64_t holders = p->readers;
                if (p->writer != MSRV_NO_HOST)
                    holders |= BIT(p->writer);
                for (unsigned h = 0; h < MSRV_MAX_HOSTS; h++)
                    if ((holders & BIT(h)) && c->ops.drop != NULL)
                        c->ops.drop(c->ctx, h, p->index);
                p->readers = 0;
                p->writer = MSRV_NO_HOST;
                if (!p->busy)
                    run(c, p); /* waiters for it: served from the store now */
                maybe_forget(c, p);
            }
            p = next;
        }
    }
}

void
msrv_coh_counts(const struct msrv_coh *c, unsigned host, struct msrv_coh_counts *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t me = host < MSRV_MAX_HOSTS ? BIT(host) : 0;
    for (uint64_t b = 0; b < c->nbuckets; b++)
        for (const struct page *p = c->buckets[b]; p != NULL; p = p->next) {
            if (p->writer != MSRV_NO_HOST)
                out->written++;
            else if (p->readers)
                out->shared++;
            if (p->nreq)
                out->waiting++;
            if (p->writer != MSRV_NO_HOST && BIT(p->writer) == me)
                out->host_write++;
            else if (p->readers & me)
                out->host_read++;
        }
}
