/*
 * dead_name_fixture.h - shared by the port unit tests (test_port,
 * test_port_stream): a notify port's handler that records the dead-name
 * notifications it receives (ids and cookies, in order). Header-only (static
 * inline). Locking: d->lock guards the record (handlers run on port threads).
 */
#ifndef EMM_TEST_DEAD_NAME_FIXTURE_H
#define EMM_TEST_DEAD_NAME_FIXTURE_H

#include <pthread.h>
#include <stdint.h>

#include "port.h"

/* Dead-name notifications received: the cookies, in order. */
struct dn_rec {
    pthread_mutex_t lock;
    int n;
    uint64_t cookies[8];
    uint32_t ids[8];
};

static inline void
dn_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct dn_rec *d = emm_port_context(port);
    pthread_mutex_lock(&d->lock);
    if (d->n < 8) {
        d->ids[d->n] = msg->id;
        d->cookies[d->n] = msg->offset;
    }
    d->n++;
    pthread_mutex_unlock(&d->lock);
    emm_msg_release(msg, 0);
}

static inline int
dn_count(struct dn_rec *d)
{
    pthread_mutex_lock(&d->lock);
    int n = d->n;
    pthread_mutex_unlock(&d->lock);
    return n;
}

#endif
