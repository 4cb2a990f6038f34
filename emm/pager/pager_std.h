/*
 * pager_std.h - the standard pager (emm's libpager): a full external memory
 * manager over any storage backend. One per filesystem. It holds the receive
 * right of one memory object port per object and answers the protocol:
 * init -> ready, data_request -> data_supply / data_unavailable / data_error,
 * data_unlock -> lock_request granting it, data_return -> backend write,
 * synchronize -> backend sync -> synchronize_completed, discard, terminate,
 * data_query -> backend seeks -> query_reply (emm extension).
 *
 * Delivery: with an inline backend (NONBLOCKING) its ports have no port set and
 * the sender's thread runs the pager (a handoff); otherwise a port set with
 * `threads` workers serves them. Each object's messages are handled in order.
 *
 * Locking: pg->lock guards the object table; a pgr_object's fields are touched
 * only by its port's handler (one at a time), except the flush waiter fields,
 * which take po->lock.
 */
#ifndef EMM_PAGER_STD_H
#define EMM_PAGER_STD_H

#include <stdatomic.h>
#include <stdint.h>

#include "backend_host.h"
#include "port.h"

struct pgr_std;

struct pgr_std_stats {
    atomic_uint_fast64_t inits, requests, supplies, unavailable, errors, unlocks, returns,
        return_errors, syncs, discards, terminates, queries;
    /* data_requests read straight into a stream's shared region (pager = process) */
    atomic_uint_fast64_t region_reads;
};

int pgr_std_create(struct emm_backend *backend, unsigned threads, unsigned spin_us,
                   struct pgr_std **out);
void pgr_std_destroy(struct pgr_std *pg); /* after every object is terminated */
/* A send right to object id's memory object port (the caller owns it). */
int pgr_std_object_port(struct pgr_std *pg, uint64_t id, struct emm_port **out);
/* Pager-initiated lock_request on the whole object; waits for lock_completed
 * up to timeout_ms. 0, -ETIMEDOUT, or -ENOENT if the object is not mapped. */
int pgr_std_lock_object(struct pgr_std *pg, uint64_t id, int should_return, int flush,
                        uint32_t lock_value, int timeout_ms);
struct pgr_std_stats *pgr_std_stats(struct pgr_std *pg);
int pgr_std_is_inline(struct pgr_std *pg);

#endif
