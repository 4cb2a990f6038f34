/*
 * locks.c - emm-memserver's record locks: one table of held locks and one
 * FIFO of waiting acquires for every object and host (locks.h). Two kinds,
 * as Linux keeps them: POSIX locks (fcntl: byte ranges, shared or
 * exclusive, split and merged per owner; an owner's new lock replaces its
 * own over the range) and flock locks (the whole object, converted in
 * place). A lock's owner is the host (its slot) plus the host's 64-bit lock
 * owner; the kinds never conflict with each other.
 *
 * A waiting acquire is granted once no held lock and no earlier waiter
 * conflicts with it (FIFO: a later request never overtakes an earlier one
 * it conflicts with). Its answer, MO_LOCK_REPLY, goes to the reply right it
 * came with; the host does the acquire's invalidation after that answer and
 * the release's write-back before it sends the release (emmd's
 * cluster_lock.c), so the server only orders. Deadlocks between hosts are
 * not detected (an interrupted F_SETLKW gets out: MO_LOCK_CANCEL).
 *
 * Locking: `mu` guards everything here, and is held while replies are sent
 * (a stream send never blocks; a reply port's handler is on another host).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "locks.h"
#include "log.h"
#include "memserver.h"
#include "msg.h"
#include "port.h"

#define LK_END_MAX ((uint64_t)INT64_MAX) /* the last byte a lock may cover */
#define LK_LOG_BAD 16                   /* bad messages logged, then only counted */
#define LK_PER_HOST 16384u              /* locks + waiters one host may have: ENOLCK past it */

struct lk {
    struct lk *next;
    uint64_t obj, owner;
    uint64_t start, end; /* inclusive, as the kernel's file_lock */
    unsigned host;
    int write, flock;
    int32_t pid;
};

struct lw {
    struct lw *next;
    struct lk want;
    uint32_t token;
    struct emm_port *reply;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct lk *held;
static struct lw *waiters;
static uint64_t n_granted, n_refused, n_cancelled, n_bad;
static unsigned per_host[MSRV_MAX_HOSTS]; /* held pieces + waiters, by host */

/* Every lock piece and waiter is counted against its host (a hostile host
 * cannot fill the server's memory with them). */
static void *
lk_alloc(unsigned host, size_t size)
{
    if (host >= MSRV_MAX_HOSTS || per_host[host] >= LK_PER_HOST)
        return NULL;
    void *p = calloc(1, size);
    if (p != NULL)
        per_host[host]++;
    return p;
}

static void
lk_free(unsigned host, void *p)
{
    if (p == NULL)
        return;
    if (host < MSRV_MAX_HOSTS && per_host[host] > 0)
        per_host[host]--;
    free(p);
}

static int
same_owner(const struct lk *a, const struct lk *b)
{
    return a->host == b->host && a->owner == b->owner;
}

static int
conflicts(const struct lk *a, const struct lk *b)
{
    return a->obj == b->obj && a->flock == b->flock && !same_owner(a, b) &&
           a->start <= b->end && b->start <= a->end && (a->write || b->write);
}

static const struct lk *
held_conflict(const struct lk *want)
{
    for (const struct lk *l = held; l != NULL; l = l->next)
        if (conflicts(l, want))
            return l;
    return NULL;
}

/* Removes [start, end] of want's owner and kind from the held locks,
 * splitting a lock that covers more on both sides. 0 or -ENOMEM. */
static int
punch(const struct lk *want)
{
    for (struct lk **pp = &held; *pp != NULL;) {
        struct lk *l = *pp;
        if (l->obj != want->obj || l->flock != want->flock || !same_owner(l, want) ||
            l->end < want->start || want->end < l->start) {
            pp = &l->next;
            continue;
        }
        if (l->start < want->start && l->end > want->end) {
            struct lk *tail = lk_alloc(l->host, sizeof(*tail));
            if (tail == NULL)
                return -ENOMEM;
            *tail = *l;
            tail->start = want->end + 1;
            l->end = want->start - 1;
            tail->next = l->next;
            l->next = tail;
            return 0; /* nothing else of this owner can overlap: locks are disjoint */
        }
        if (l->start < want->start) {
            l->end = want->start - 1;
        } else if (l->end > want->end) {
            l->start = want->end + 1;
        } else {
            *pp = l->next;
            lk_free(l->host, l);
            continue;
        }
        pp = &l->next;
    }
    return 0;
}

static int
grant(const struct lk *want)
{
    struct lk *l = lk_alloc(want->host, sizeof(*l));
    if (l == NULL || punch(want) < 0) {
        lk_free(want->host, l);
        return -ENOMEM;
    }
    *l = *want;
    l->next = held;
    held = l;
    n_granted++;
    return 0;
}

static void
reply_to(struct emm_port *port, int err, const struct lk *other)
{
    struct emm_msg *r = emm_msg_new(MO_LOCK_REPLY, 0, 0);
    if (r == NULL)
        return;
    r->arg = err;
    if (other != NULL) {
        r->access = other->write ? VM_PROT_WRITE : VM_PROT_READ;
        r->offset = other->start;
        r->length = other->end - other->start + 1;
        r->arg2 = (uint64_t)(uint32_t)other->pid;
    }
    if (emm_port_send(port, r) < 0)
        emm_msg_release(r, -EPIPE); /* its host is gone: nothing to tell */
}

static void
reply_msg(struct emm_msg *m, int err, const struct lk *other)
{
    struct emm_port *p = emm_port_take(&m->reply);
    if (p == NULL)
        return;
    reply_to(p, err, other);
    emm_port_unref(p);
}

/* Serves the waiters that nothing blocks any more, in order. */
static void
serve_waiters(void)
{
    for (struct lw **pp = &waiters; *pp != NULL;) {
        struct lw *w = *pp;
        int blocked = held_conflict(&w->want) != NULL;
        for (struct lw *e = waiters; e != w && !blocked; e = e->next)
            blocked = conflicts(&e->want, &w->want);
        if (blocked) {
            pp = &w->next;
            continue;
        }
        int rc = grant(&w->want);
        reply_to(w->reply, rc < 0 ? ENOLCK : 0, NULL);
        *pp = w->next;
        emm_port_unref(w->reply);
        lk_free(w->want.host, w);
    }
}

static void
bad(struct msrv_host *h, uint64_t id, const struct emm_msg *m, const char *field)
{
    atomic_fetch_add(&h->srv->st.bad_messages, 1);
    if (n_bad++ < LK_LOG_BAD)
        emm_err("%s: object %llu: refused %s: bad %s (offset %llu length %llu owner %#llx)",
                h->peer, (unsigned long long)id, emm_msg_name(m->id), field,
                (unsigned long long)m->offset, (unsigned long long)m->length,
                (unsigned long long)m->arg2);
}

/* The range and kind a message names, checked: 0, or the bad field. */
static const char *
decode(const struct emm_msg *m, unsigned host, uint64_t id, struct lk *out)
{
    if ((m->flags & 0xffu & ~(MO_LK_F_WAIT | MO_LK_F_FLOCK)) != 0)
        return "flags";
    if (m->length == 0 || m->offset > LK_END_MAX || m->length - 1 > LK_END_MAX - m->offset)
        return "range";
    int flock = (m->flags & MO_LK_F_FLOCK) != 0;
    if (flock && (m->offset != 0 || m->length - 1 != LK_END_MAX))
        return "range (a flock lock is the whole object)";
    *out = (struct lk){.obj = id, .owner = m->arg2, .start = m->offset,
                       .end = m->offset + (m->length - 1), .host = host,
                       .write = m->access == VM_PROT_WRITE, .flock = flock, .pid = m->arg};
    if (m->id == MO_LOCK_ACQUIRE || m->id == MO_LOCK_TEST) {
        if (m->access != VM_PROT_READ && m->access != VM_PROT_WRITE)
            return "access (the lock's kind)";
        if (m->reply == EMM_PORT_NULL)
            return "reply (none to answer)";
    }
    if (m->id == MO_LOCK_TEST && (m->flags & MO_LK_F_WAIT))
        return "flags (a test does not wait)";
    return NULL;
}

void
msrv_locks_msg(struct msrv_host *h, uint64_t id, struct emm_msg *m)
{
    struct lk want;
    pthread_mutex_lock(&mu);
    if (m->id == MO_LOCK_CANCEL) {
        struct lw **pp = &waiters;
        while (*pp != NULL && !((*pp)->want.host == h->index && (*pp)->want.obj == id &&
                                (*pp)->want.owner == m->arg2 &&
                                (*pp)->token == MO_LK_TOKEN(m->flags)))
            pp = &(*pp)->next;
        struct lw *w = *pp;
        if (w != NULL) {
            *pp = w->next;
            n_cancelled++;
            reply_to(w->reply, EINTR, NULL);
            emm_port_unref(w->reply);
            lk_free(w->want.host, w);
            serve_waiters(); /* it may have held back later ones */
        } else {
            /* Granted meanwhile (the host then releases it), or a stranger's. */
            emm_debug("%s: object %llu: cancel of no waiting lock (owner %#llx token %u)",
                      h->peer, (unsigned long long)id, (unsigned long long)m->arg2,
                      MO_LK_TOKEN(m->flags));
        }
        pthread_mutex_unlock(&mu);
        return;
    }
    const char *why = decode(m, h->index, id, &want);
    if (why != NULL) {
        bad(h, id, m, why);
        pthread_mutex_unlock(&mu);
        reply_msg(m, EINVAL, NULL); /* a request is answered, so no host hangs on it */
        return;
    }
    switch (m->id) {
    case MO_LOCK_TEST:
        reply_msg(m, 0, held_conflict(&want));
        break;
    case MO_LOCK_RELEASE: {
        int rc = punch(&want);
        serve_waiters();
        reply_msg(m, rc < 0 ? ENOLCK : 0, NULL);
        break;
    }
    case MO_LOCK_ACQUIRE: {
        int blocked = held_conflict(&want) != NULL;
        if (m->flags & MO_LK_F_WAIT)
            for (struct lw *e = waiters; e != NULL && !blocked; e = e->next)
                blocked = conflicts(&e->want, &want);
        if (!blocked) {
            int rc = grant(&want);
            reply_msg(m, rc < 0 ? ENOLCK : 0, NULL);
        } else if (!(m->flags & MO_LK_F_WAIT)) {
            n_refused++;
            reply_msg(m, EAGAIN, NULL);
        } else {
            struct lw *w = lk_alloc(h->index, sizeof(*w));
            if (w == NULL) {
                reply_msg(m, ENOLCK, NULL);
                break;
            }
            w->want = want;
            w->token = MO_LK_TOKEN(m->flags);
            w->reply = emm_port_take(&m->reply);
            struct lw **pp = &waiters;
            while (*pp != NULL)
                pp = &(*pp)->next;
            *pp = w;
        }
        break;
    }
    default: break;
    }
    pthread_mutex_unlock(&mu);
}

void
msrv_locks_host_gone(struct msrv_host *h)
{
    unsigned host = h->index;
    size_t dropped = 0;
    pthread_mutex_lock(&mu);
    for (struct lk **pp = &held; *pp != NULL;) {
        struct lk *l = *pp;
        if (l->host == host) {
            *pp = l->next;
            lk_free(host, l);
            dropped++;
        } else {
            pp = &l->next;
        }
    }
    for (struct lw **pp = &waiters; *pp != NULL;) {
        struct lw *w = *pp;
        if (w->want.host == host) {
            *pp = w->next;
            emm_port_unref(w->reply);
            lk_free(host, w);
        } else {
            pp = &w->next;
        }
    }
    serve_waiters();
    pthread_mutex_unlock(&mu);
    if (dropped > 0)
        emm_notice("%s: its %zu record lock%s released", h->peer, dropped,
                   dropped == 1 ? " is" : "s are");
}

void
msrv_locks_stats(uint64_t *granted, uint64_t *refused, uint64_t *cancelled, uint64_t *nheld)
{
    pthread_mutex_lock(&mu);
    *granted = n_granted;
    *refused = n_refused;
    *cancelled = n_cancelled;
    uint64_t n = 0;
    for (struct lk *l = held; l != NULL; l = l->next)
        n++;
    *nheld = n;
    pthread_mutex_unlock(&mu);
}

void
msrv_locks_free(void)
{
    pthread_mutex_lock(&mu);
    while (held != NULL) {
        struct lk *l = held;
        held = l->next;
        lk_free(l->host, l);
    }
    while (waiters != NULL) {
        struct lw *w = waiters;
        waiters = w->next;
        emm_port_unref(w->reply);
        lk_free(w->want.host, w);
    }
    pthread_mutex_unlock(&mu);
}
