/*
 * coherence.h - one memory object's page coherence, as NetMemServer and XMM
 * kept it: per page, any number of reader hosts or one writer host.
 *
 * A pure state machine: it sends nothing itself. Requests come in (a host
 * asks for read or write access, with or without needing the data); the
 * engine answers by calling its ops: supply (send the server's copy with a
 * lock), grant (lift a host's write lock on a page it holds), revoke (take
 * access back: flush, or downgrade a writer to a reader, which keeps its
 * copy read-only, as XMM does when a reader appears). A revoked host
 * answers with msrv_coh_ack (its lock_completed, after the dirty pages it
 * returned). Requests for one page are served one at a time in arrival order
 * (FIFO); a request waits while acks for its revokes are outstanding.
 *
 * Hosts are small integers < MSRV_MAX_HOSTS. The server's copy (the store)
 * is current whenever the page has no writer; msrv_coh_may_store says whose
 * returned data may be written to it (the writer's, including a writer being
 * revoked), so a stale copy is never stored.
 *
 * Locking: none; the caller serialises every call on one object (the
 * object's lock) and the ops run inside those calls (they must not call
 * back into the engine).
 */
#ifndef MSRV_COHERENCE_H
#define MSRV_COHERENCE_H

#include <stdint.h>

#define MSRV_MAX_HOSTS 64u
#define MSRV_NO_HOST   (-1)

struct msrv_coh_ops {
    /* Send page to host from the store: write access (lock NONE) or read
     * only (lock WRITE). */
    void (*supply)(void *ctx, unsigned host, uint64_t page, int write);
    /* host holds page read-only and asked to write: lift its lock. */
    void (*grant)(void *ctx, unsigned host, uint64_t page);
    /* Take page back from host: flush (return dirty, drop it) or downgrade
     * (return dirty, keep it read-only). The host answers with an ack. */
    void (*revoke)(void *ctx, unsigned host, uint64_t page, int flush);
    /* The page is gone (truncate, punch: msrv_coh_drop): host must drop its
     * copy without returning it. No ack: its later returns are stale. */
    void (*drop)(void *ctx, unsigned host, uint64_t page);
};

struct msrv_coh_page_info {
    uint64_t readers;      /* bit per host */
    int writer;            /* a host, or MSRV_NO_HOST */
    unsigned waiting;      /* requests queued (the one in progress included) */
    uint64_t acks_pending; /* hosts whose revoke is not answered yet */
};

struct msrv_coh_stats {
    uint64_t requests, supplies, grants, flushes, downgrades, acks, stray_acks, dropped;
    uint64_t pages; /* pages with state now */
};

struct msrv_coh;

int msrv_coh_create(const struct msrv_coh_ops *ops, void *ctx, struct msrv_coh **out);
void msrv_coh_destroy(struct msrv_coh *c);
/* host asks for page: write or read access; has_data: it holds the page
 * (data_unlock) and needs only the access, else it needs the data too
 * (data_request). 0, -EINVAL (host out of range), -ENOMEM. */
int msrv_coh_request(struct msrv_coh *c, unsigned host, uint64_t page, int write, int has_data);
/* host finished the revoke of page (its lock_completed). 0, or -ENOENT for an
 * ack nobody waits for (counted, ignored). */
int msrv_coh_ack(struct msrv_coh *c, unsigned host, uint64_t page);
/* 1 when host's dirty data for page is current (host is the page's writer). */
int msrv_coh_may_store(const struct msrv_coh *c, unsigned host, uint64_t page);
/* host is gone (died, or let go of the object): its access, its waiting
 * requests and the acks it owes vanish; the store's copy stands (the last one
 * the host returned, as in NetMemServer). */
void msrv_coh_host_gone(struct msrv_coh *c, unsigned host);
/* The page's state (all zero and writer MSRV_NO_HOST for a page never seen). */
void msrv_coh_page(const struct msrv_coh *c, uint64_t page, struct msrv_coh_page_info *out);
void msrv_coh_stats(const struct msrv_coh *c, struct msrv_coh_stats *out);
/* Pages [first, end) are gone from the store (truncate, hole punch): every
 * host holding one gets a drop op and loses its access, so data it returns
 * for them later is stale (msrv_coh_may_store says no). Requests waiting
 * for them stay queued and are served from the store (zeros). */
void msrv_coh_drop(struct msrv_coh *c, uint64_t first, uint64_t end);
/* Pages with readers only, pages with a writer, pages with requests waiting
 * (all hosts); and host's own: pages it reads, pages it writes. */
struct msrv_coh_counts {
    uint64_t shared, written, waiting;
    uint64_t host_read, host_write;
};
void msrv_coh_counts(const struct msrv_coh *c, unsigned host, struct msrv_coh_counts *out);

#endif
