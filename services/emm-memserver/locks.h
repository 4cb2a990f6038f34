/*
 * locks.h - emm-memserver's record locks: fcntl (POSIX, byte ranges) and
 * flock locks on shared objects, arbitrated for every host (MO_LOCK_*,
 * emm/ipc/msg.h). The owner of a lock is (host, the host's lock owner);
 * waiters are served in arrival order; a host that goes loses its locks.
 *
 * Locking: one mutex of locks.c guards the whole table; replies are posted
 * with it held (stream sends never block). Callers hold no lock of theirs.
 */
#ifndef MSRV_LOCKS_H
#define MSRV_LOCKS_H

#include <stdint.h>

struct emm_msg;
struct msrv_host;

/* A MO_LOCK_* message from host h about object id: checked (a hostile host:
 * bad ranges, kinds, tokens, unknown owners), then applied. Takes msg's
 * reply right when it keeps a waiter; the caller releases msg. */
void msrv_locks_msg(struct msrv_host *h, uint64_t id, struct emm_msg *msg);
/* Host h is gone: its locks and waiters go; waiters it blocked are served. */
void msrv_locks_host_gone(struct msrv_host *h);
/* Counts for the stop line: locks granted, refused, cancelled, waiting now. */
void msrv_locks_stats(uint64_t *granted, uint64_t *refused, uint64_t *cancelled, uint64_t *held);
/* At exit: frees the table. */
void msrv_locks_free(void);

#endif
