/*
 * object.c - emm-memserver's memory objects: the pager side of the protocol
 * towards every host, over the coherence engine (coherence.h) and the
 * server's backend.
 *
 * Each object has, per host that looked it up, a memory object port of its
 * own (a "kobj", as XMM's SVM layer splits one object per kernel), so the
 * host a message comes from is the port it arrives on. Messages arrive on
 * the host's stream reader thread (the ports deliver inline) and are checked
 * before anything acts on them: a host is never trusted. Requests go to the
 * engine page by page; what the engine decides (supply, grant, revoke) is
 * collected and sent after each call, contiguous pages of one kind and host
 * merged into one message. Data a host returns is stored only when the host
 * holds write access to the page (msrv_coh_may_store).
 *
 * Locking: srv->lock guards the object list; obj->lock guards the engine,
 * the kobj table and the action list, and is held while messages are
 * posted (stream sends never block) and while the backend is read or
 * written for this object, so a supply is read after every store before it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_host.h"
#include "locks.h"
#include "log.h"
#include "memserver.h"
#include "msg.h"
#include "port.h"

#define PS 4096u
#define MAX_OBJECT_BYTES (UINT64_C(1) << 52) /* offsets past this are refused */

enum act_kind { ACT_SUPPLY, ACT_GRANT, ACT_REVOKE };

struct act {
    uint8_t kind, flag; /* flag: supply write / revoke flush */
    unsigned host;
    uint64_t page;
};

struct kobj {
    struct msrv_object *o;
    struct msrv_host *h;
    struct emm_port *port;    /* receive right: this host's memory object port */
    struct emm_port *control; /* send right to the host's control port, after init */
    int logged_bad;
};

struct msrv_object {
    struct msrv_object *next;
    struct msrv *srv;
    uint64_t id;
    pthread_mutex_t lock;
    struct msrv_coh *coh;
    struct kobj *k[MSRV_MAX_HOSTS];
    struct act *acts;
    size_t nacts, cap;
    int oom;
};

/* ---- actions: the engine's decisions, sent after each call --------------- */

static void
push(struct msrv_object *o, enum act_kind kind, unsigned host, uint64_t page, int flag)
{
    if (o->nacts == o->cap) {
        size_t n = o->cap ? o->cap * 2 : 64;
        struct act *a = realloc(o->acts, n * sizeof(*a));
        if (a == NULL) {
            o->oom = 1;
            return;
        }
        o->acts = a;
        o->cap = n;
    }
    o->acts[o->nacts++] = (struct act){(uint8_t)kind, (uint8_t)flag, host, page};
}

static void
op_supply(void *ctx, unsigned host, uint64_t page, int write)
{
    push(ctx, ACT_SUPPLY, host, page, write);
}

static void
op_grant(void *ctx, unsigned host, uint64_t page)
{
    push(ctx, ACT_GRANT, host, page, 0);
}

static void
op_revoke(void *ctx, unsigned host, uint64_t page, int flush)
{
    push(ctx, ACT_REVOKE, host, page, flush);
}

static const struct msrv_coh_ops coh_ops = {op_supply, op_grant, op_revoke};

static void
data_release(struct emm_msg *m, int status)
{
    (void)status;
    free(m->data);
    free(m);
}

/* Sends m (owned) to host's control port: 0, or -EPIPE when it is gone. */
static int
to_host(struct msrv_object *o, unsigned host, struct emm_msg *m)
{
    struct kobj *k = o->k[host];
    int rc = k != NULL && k->control != NULL ? emm_port_send(k->control, m) : -EPIPE;
    if (rc < 0)
        emm_msg_release(m, rc);
    return rc;
}

static int
send_supply(struct msrv_object *o, unsigned host, uint64_t first, uint32_t n, int write)
{
    struct msrv *srv = o->srv;
    struct emm_msg *m = emm_msg_new(MO_DATA_SUPPLY, first * PS, (uint64_t)n * PS);
    if (m == NULL)
        return -ENOMEM;
    uint8_t present[EMM_MAX_REQUEST_PAGES];
    if (posix_memalign(&m->data, PS, (size_t)n * PS) != 0) {
        free(m);
        return -ENOMEM;
    }
    m->release = data_release;
    int rc = emm_backend_read(srv->backend, o->id, first, n, m->data, present);
    if (rc < 0) {
        emm_err("object %llu: backend read of pages %llu+%u failed: %s",
                (unsigned long long)o->id, (unsigned long long)first, n, strerror(-rc));
        /* The host gets an error for these pages (EIO in read(2), SIGBUS in a mapper). */
        free(m->data);
        m->data = NULL;
        m->id = MO_DATA_ERROR;
        m->arg = EIO;
        return to_host(o, host, m);
    }
    m->access = write ? VM_PROT_NONE : VM_PROT_WRITE;
    atomic_fetch_add(&srv->st.pages_supplied, n);
    return to_host(o, host, m);
}

static int
send_lock(struct msrv_object *o, unsigned host, uint64_t first, uint32_t n, int kind, int flush)
{
    struct emm_msg *m = emm_msg_new(MO_LOCK_REQUEST, first * PS, (uint64_t)n * PS);
    if (m == NULL)
        return -ENOMEM;
    if (kind == ACT_GRANT) {
        m->arg = MO_RETURN_NONE;
        m->access = VM_PROT_NONE;
        atomic_fetch_add(&o->srv->st.grants, n);
    } else {
        m->arg = MO_RETURN_DIRTY;
        m->flags = flush ? MO_F_FLUSH : 0;
        m->access = flush ? VM_PROT_ALL : VM_PROT_WRITE;
        struct kobj *k = o->k[host];
        if (k != NULL)
            m->reply = emm_port_make_send(k->port); /* lock_completed comes to us */
        atomic_fetch_add(&o->srv->st.revokes, n);
    }
    return to_host(o, host, m);
}

/* Sends what the engine decided, in its order, merging runs. A revoke that
 * cannot reach its host (gone) is acked at once, which may decide more. */
static void
flush_acts(struct msrv_object *o)
{
    while (o->nacts > 0) {
        size_t n = o->nacts;
        struct act *a = o->acts;
        o->acts = NULL;
        o->nacts = o->cap = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && j - i < EMM_MAX_REQUEST_PAGES && a[j].kind == a[i].kind &&
                   a[j].host == a[i].host && a[j].flag == a[i].flag &&
                   a[j].page == a[j - 1].page + 1)
                j++;
            uint32_t run = (uint32_t)(j - i);
            int rc = a[i].kind == ACT_SUPPLY
                         ? send_supply(o, a[i].host, a[i].page, run, a[i].flag)
                         : send_lock(o, a[i].host, a[i].page, run, a[i].kind, a[i].flag);
            if (rc < 0 && a[i].kind == ACT_REVOKE)
                for (size_t x = i; x < j; x++)
                    msrv_coh_ack(o->coh, a[x].host, a[x].page);
            i = j;
        }
        free(a);
    }
    if (o->oom) {
        o->oom = 0;
        emm_err("object %llu: out of memory: coherence actions were lost",
                (unsigned long long)o->id);
    }
}

/* ---- messages from a host ------------------------------------------------ */

static int
bad(struct kobj *k, const struct emm_msg *m, const char *field)
{
    atomic_fetch_add(&k->o->srv->st.bad_messages, 1);
    if (!k->logged_bad++)
        emm_err("%s: object %llu: refused %s: bad %s (offset %llu length %llu)", k->h->peer,
                (unsigned long long)k->o->id, emm_msg_name(m->id), field,
                (unsigned long long)m->offset, (unsigned long long)m->length);
    return -EBADMSG;
}

/* A range of whole pages, not empty, at most one request, inside the limit. */
static int
check_range(struct kobj *k, const struct emm_msg *m)
{
    if (m->offset % PS != 0)
        return bad(k, m, "offset (unaligned)");
    if (m->length == 0 || m->length % PS != 0 || m->length > EMM_MAX_REQUEST_BYTES)
        return bad(k, m, "length");
    if (m->offset >= MAX_OBJECT_BYTES || MAX_OBJECT_BYTES - m->offset < m->length)
        return bad(k, m, "offset (past the largest object)");
    return 0;
}

static void
on_request(struct kobj *k, struct emm_msg *m, int has_data)
{
    emm_debug("%s: object %llu: %s %llu+%llu access %u", k->h->peer,
              (unsigned long long)k->o->id, emm_msg_name(m->id), (unsigned long long)m->offset,
              (unsigned long long)m->length, m->access);
    if (check_range(k, m) < 0)
        return;
    if (m->access & ~VM_PROT_ALL) {
        bad(k, m, "access");
        return;
    }
    struct msrv_object *o = k->o;
    int write = (m->access & VM_PROT_WRITE) != 0;
    uint64_t first = m->offset / PS, n = m->length / PS;
    pthread_mutex_lock(&o->lock);
    for (uint64_t i = 0; i < n; i++)
        if (msrv_coh_request(o->coh, k->h->index, first + i, write, has_data) < 0)
            emm_err("object %llu: page %llu: request dropped: out of memory",
                    (unsigned long long)o->id, (unsigned long long)(first + i));
    flush_acts(o);
    pthread_mutex_unlock(&o->lock);
}

static void
on_return(struct kobj *k, struct emm_msg *m)
{
    struct msrv_object *o = k->o;
    int rc = check_range(k, m);
    emm_debug("%s: object %llu: data_return %llu+%llu flags %#x", k->h->peer,
              (unsigned long long)o->id, (unsigned long long)m->offset,
              (unsigned long long)m->length, m->flags);
    if (rc == 0 && m->data == NULL)
        rc = bad(k, m, "data (none)");
    if (rc == 0 && (m->flags & (MO_F_DIRTY | MO_F_PRECIOUS))) {
        uint64_t first = m->offset / PS, n = m->length / PS;
        pthread_mutex_lock(&o->lock);
        /* Store runs of the pages this host may write; drop the rest. */
        for (uint64_t i = 0; i < n && rc == 0;) {
            if (!msrv_coh_may_store(o->coh, k->h->index, first + i)) {
                emm_debug("%s: object %llu: page %llu: stale return dropped", k->h->peer,
                          (unsigned long long)o->id, (unsigned long long)(first + i));
                atomic_fetch_add(&o->srv->st.stale_returns, 1);
                i++;
                continue;
            }
            uint64_t j = i + 1;
            while (j < n && msrv_coh_may_store(o->coh, k->h->index, first + j))
                j++;
            rc = emm_backend_write(o->srv->backend, o->id, first + i, (uint32_t)(j - i),
                                   (const char *)m->data + i * PS);
            if (rc < 0)
                emm_err("object %llu: backend write of pages %llu+%llu failed: %s",
                        (unsigned long long)o->id, (unsigned long long)(first + i),
                        (unsigned long long)(j - i), strerror(-rc));
            else
                atomic_fetch_add(&o->srv->st.pages_stored, j - i);
            i = j;
        }
        pthread_mutex_unlock(&o->lock);
    }
    /* The answer: 0, the host's kernel may drop its copy; an errno: it keeps it. */
    pthread_mutex_lock(&o->lock);
    struct emm_port *c = k->control != NULL ? emm_port_ref(k->control) : NULL;
    pthread_mutex_unlock(&o->lock);
    if (emm_msg_return_completed(m, c, rc == -EBADMSG ? -EINVAL : rc) < 0 && c != NULL)
        emm_warn("%s: object %llu: data_return_completed not sent", k->h->peer,
                 (unsigned long long)o->id);
    if (c != NULL)
        emm_port_unref(c);
    emm_msg_release(m, 0);
}

static void
on_lock_completed(struct kobj *k, struct emm_msg *m)
{
    emm_debug("%s: object %llu: lock_completed %llu+%llu", k->h->peer,
              (unsigned long long)k->o->id, (unsigned long long)m->offset,
              (unsigned long long)m->length);
    if (m->offset % PS != 0 || m->length % PS != 0 || m->length == 0 ||
        m->length > (uint64_t)EMM_MAX_REQUEST_BYTES) {
        bad(k, m, "range");
        return;
    }
    struct msrv_object *o = k->o;
    pthread_mutex_lock(&o->lock);
    for (uint64_t p = m->offset / PS; p < (m->offset + m->length) / PS; p++)
        msrv_coh_ack(o->coh, k->h->index, p);
    flush_acts(o);
    pthread_mutex_unlock(&o->lock);
}

static void
reply_control(struct kobj *k, struct emm_msg *r)
{
    pthread_mutex_lock(&k->o->lock);
    struct emm_port *c = k->control != NULL ? emm_port_ref(k->control) : NULL;
    pthread_mutex_unlock(&k->o->lock);
    if (c == NULL || emm_port_send(c, r) < 0)
        emm_msg_release(r, -EPIPE);
    if (c != NULL)
        emm_port_unref(c);
}

static void
on_init(struct kobj *k, struct emm_msg *m)
{
    struct emm_port *c = emm_port_take(&m->control);
    if (c == NULL || m->arg != (int32_t)PS) {
        if (c != NULL)
            emm_port_unref(c);
        bad(k, m, c == NULL ? "control" : "arg (page size)");
        return;
    }
    pthread_mutex_lock(&k->o->lock);
    struct emm_port *old = k->control;
    k->control = c;
    pthread_mutex_unlock(&k->o->lock);
    if (old != NULL)
        emm_port_unref(old);
    struct emm_msg *r = emm_msg_new(MO_READY, 0, 0);
    if (r == NULL)
        return;
    /* Writes ask first; nothing is cached past terminate (the server would
     * not know the host still holds pages). */
    r->flags = MO_F_STRICT_WRITE;
    r->arg = MO_COPY_DELAY;
    reply_control(k, r);
}

static void
on_synchronize(struct kobj *k, struct emm_msg *m)
{
    int rc = emm_backend_sync(k->o->srv->backend, k->o->id);
    struct emm_msg *r = emm_msg_new(MO_SYNCHRONIZE_COMPLETED, m->offset, m->length);
    if (r == NULL)
        return;
    r->arg = rc < 0 ? -rc : 0;
    reply_control(k, r);
}

static void
on_query(struct kobj *k, struct emm_msg *m)
{
    struct emm_msg *r = emm_msg_new(MO_QUERY_REPLY, m->offset, m->length);
    if (r == NULL)
        return;
    r->arg = m->arg;
    if (m->flags & MO_F_QUERY_COUNT) {
        uint64_t count = 0;
        emm_backend_stored_pages(k->o->srv->backend, k->o->id, &count);
        r->flags = MO_F_QUERY_COUNT;
        r->offset = 0;
        r->length = count * PS;
    } else if (m->offset % PS != 0 || m->length % PS != 0) {
        emm_msg_release(r, 0);
        bad(k, m, "range");
        return;
    }
    /* Otherwise the whole span is claimed: another host may have written
     * any page of it (a claim of data is harmless, a missed one is not). */
    reply_control(k, r);
}

static void kobj_end(struct kobj *k);

static void
kobj_handler(struct emm_port *port, struct emm_msg *m)
{
    struct kobj *k = emm_port_context(port);
    switch (m->id) {
    case MO_INIT: on_init(k, m); break;
    case MO_DATA_REQUEST: on_request(k, m, 0); break;
    case MO_DATA_UNLOCK: on_request(k, m, 1); break;
    case MO_DATA_RETURN: on_return(k, m); return; /* released after its answer */
    case MO_LOCK_COMPLETED: on_lock_completed(k, m); break;
    case MO_SYNCHRONIZE: on_synchronize(k, m); break;
    case MO_DATA_QUERY: on_query(k, m); break;
    case MO_DISCARD:
        /* Truncation and holes are a namespace matter (sizes are per host
         * until the namespace is the server's): never applied to the shared
         * store on one host's word. */
        emm_debug("%s: object %llu: discard ignored", k->h->peer, (unsigned long long)k->o->id);
        break;
    case MO_TERMINATE:
        emm_msg_release(m, 0);
        kobj_end(k);
        return;
    case MO_SUPPLY_COMPLETED:
    case MO_CHANGE_COMPLETED: break;
    case MO_LOCK_ACQUIRE:
    case MO_LOCK_RELEASE:
    case MO_LOCK_TEST:
    case MO_LOCK_CANCEL: msrv_locks_msg(k->h, k->o->id, m); break; /* locks.c */
    default: bad(k, m, "id"); break;
    }
    emm_msg_release(m, 0);
}

/* The host let go of the object (terminate) or is gone: it loses its access
 * and its port. */
static void
kobj_end(struct kobj *k)
{
    struct msrv_object *o = k->o;
    pthread_mutex_lock(&o->lock);
    if (o->k[k->h->index] == k)
        o->k[k->h->index] = NULL;
    msrv_coh_host_gone(o->coh, k->h->index);
    flush_acts(o);
    struct emm_port *c = k->control;
    k->control = NULL;
    pthread_mutex_unlock(&o->lock);
    if (c != NULL)
        emm_port_unref(c);
    emm_port_destroy(k->port); /* later messages to it are refused (-EPIPE) */
    free(k);
}

/* ---- objects ------------------------------------------------------------- */

static struct msrv_object *
object_get(struct msrv *srv, uint64_t id)
{
    struct msrv_object *o;
    for (o = srv->objects; o != NULL; o = o->next)
        if (o->id == id)
            return o;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    if (msrv_coh_create(&coh_ops, o, &o->coh) < 0) {
        free(o);
        return NULL;
    }
    o->srv = srv;
    o->id = id;
    pthread_mutex_init(&o->lock, NULL);
    o->next = srv->objects;
    srv->objects = o;
    return o;
}

int
msrv_object_port(struct msrv_host *h, uint64_t id, struct emm_port **out)
{
    struct msrv *srv = h->srv;
    pthread_mutex_lock(&srv->lock);
    struct msrv_object *o = object_get(srv, id);
    pthread_mutex_unlock(&srv->lock);
    if (o == NULL)
        return -ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&o->lock);
    struct kobj *k = o->k[h->index];
    if (k == NULL) {
        k = calloc(1, sizeof(*k));
        if (k == NULL) {
            rc = -ENOMEM;
        } else {
            k->o = o;
            k->h = h;
            rc = emm_port_create("memserver object", kobj_handler, k, NULL, &k->port);
            if (rc < 0)
                free(k);
            else
                o->k[h->index] = k;
        }
    }
    if (rc == 0)
        *out = emm_port_ref(k->port);
    pthread_mutex_unlock(&o->lock);
    return rc;
}

void
msrv_objects_host_gone(struct msrv *srv, struct msrv_host *h)
{
    pthread_mutex_lock(&srv->lock);
    for (struct msrv_object *o = srv->objects; o != NULL; o = o->next) {
        pthread_mutex_lock(&o->lock);
        struct kobj *k = o->k[h->index];
        if (k != NULL && k->h != h)
            k = NULL;
        if (k == NULL) {
            msrv_coh_host_gone(o->coh, h->index);
            flush_acts(o);
        }
        pthread_mutex_unlock(&o->lock);
        if (k != NULL)
            kobj_end(k);
    }
    pthread_mutex_unlock(&srv->lock);
}

void
msrv_objects_free(struct msrv *srv)
{
    while (srv->objects != NULL) {
        struct msrv_object *o = srv->objects;
        srv->objects = o->next;
        for (unsigned i = 0; i < MSRV_MAX_HOSTS; i++)
            if (o->k[i] != NULL)
                kobj_end(o->k[i]);
        msrv_coh_destroy(o->coh);
        pthread_mutex_destroy(&o->lock);
        free(o->acts);
        free(o);
    }
}
