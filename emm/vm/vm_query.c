/*
 * vm_query.c - how many pages a pager stores of an object the kernel has not
 * mapped (no vm_object: st_blocks of a file nobody opened, statfs, `emmctl
 * ls`). The kernel sends data_query (MO_F_QUERY_COUNT, emm extension) to the
 * object's memory object port with a reply right to a port made for that
 * query, and the pager answers there with query_reply: no init, no control
 * port, nothing else changes at the pager. Never an upcall, never the backend.
 *
 * A port per query, not one for all: a pager in another process gets the
 * right as a proxy that ends with its answer, and the stream numbers each
 * proxy's messages afresh, so a second proxy of the same port could look
 * like an old message arriving late.
 *
 * A pager that cannot answer never hangs the caller: a suspect pager (it
 * failed lately or sits on overdue data_returns) is not asked, and the kernel
 * worker gives up a query not answered within the deadline (10 s without
 * one). Either way the answer is VM_COUNT_UNKNOWN and the caller decides
 * (emmd keeps the last count it had).
 *
 * The same door carries the discard of an object deleted before anyone
 * mapped it (vm_kernel_discard_unmapped): its pages go at its pager too; and
 * the question for the pager's own statistics (vm_kernel_query_info,
 * MO_F_QUERY_INFO: `emmctl info`), answered with one page of text.
 *
 * Locking: k->queries_lock guards the list of queries waiting for a reply;
 * whoever takes a query off it (its reply's handler, or the worker giving it
 * up) owns it: runs done, destroys its port, frees it. The lock is never held
 * while a message is sent or a completion runs (an inline pager answers
 * inside the send).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

#define QUERY_WAIT_DEFAULT_NS 10000000000ull /* no deadline: give up after 10 s */

struct vm_query {
    TAILQ_ENTRY(vm_query) link;
    struct emm_port *port; /* receive right: its reply comes here */
    int32_t tag;
    uint64_t sent_ns, wait_ns;
    vm_seek_done_fn done;
    vm_info_done_fn info_done; /* an info query (done is NULL then) */
    void *arg;
};

/* The first bad reply is logged, later ones counted (bad_messages). */
static void
refuse(struct vm_kernel *k, const struct emm_msg *msg, const char *field)
{
    atomic_fetch_add(&k->stats.bad_messages, 1);
    if (atomic_exchange(&k->query_bad_logged, 1))
        return;
    emm_err("kernel query port: a pager sent a bad %s (id %u): %s is wrong (offset %#llx, "
            "length %#llx, flags %#x): refused; later ones are only counted (bad_messages)",
            emm_msg_name(msg->id), msg->id, field, (unsigned long long)msg->offset,
            (unsigned long long)msg->length, msg->flags);
}

/* Takes the query whose reply port is port off the list: NULL if it is no
 * longer there (answered or given up). */
static struct vm_query *
take_query(struct vm_kernel *k, const struct emm_port *port)
{
    pthread_mutex_lock(&k->queries_lock);
    struct vm_query *q;
    TAILQ_FOREACH(q, &k->queries, link)
        if (q->port == port)
            break;
    if (q != NULL)
        TAILQ_REMOVE(&k->queries, q, link);
    pthread_mutex_unlock(&k->queries_lock);
    return q;
}

static void
query_end(struct vm_query *q, uint64_t count)
{
    if (q->info_done != NULL)
        q->info_done(q->arg, NULL); /* expired, or not an info answer */
    else
        q->done(q->arg, count);
    emm_port_destroy(q->port); /* a late answer finds it dead */
    free(q);
}

/* A query's reply port: its query_reply (the pager's count). */
static void
query_port_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct vm_kernel *k = emm_port_context(port);
    const char *field = NULL;
    if (vm_msg_check_form(msg, 0, &field) < 0 || msg->id != MO_QUERY_REPLY) {
        refuse(k, msg, field != NULL ? field : "id (only query_reply comes here)");
        emm_msg_release(msg, -EBADMSG);
        return; /* the query ends at its deadline */
    }
    if (msg->flags == MO_F_QUERY_INFO) { /* one page of text (checked above) */
        struct vm_query *q = take_query(k, port);
        if (q != NULL && q->info_done != NULL) {
            char text[VM_PS]; /* (the data may be a read-only shared page) */
            memcpy(text, msg->data, VM_PS);
            text[VM_PS - 1] = '\0';
            q->info_done(q->arg, text);
            emm_port_destroy(q->port);
            free(q);
        } else if (q != NULL) {
            query_end(q, VM_COUNT_UNKNOWN);
        }
        emm_msg_release(msg, 0);
        return;
    }
    /* A count: flags QUERY_COUNT and a length that is a count of pages. A
     * run reply (a pager that answered the span) or UINT64_MAX: it cannot tell. */
    uint64_t count = (msg->flags & MO_F_QUERY_COUNT) && msg->length != UINT64_MAX
                         ? msg->length / VM_PS
                         : VM_COUNT_UNKNOWN;
    emm_msg_release(msg, 0);
    struct vm_query *q = take_query(k, port);
    if (q != NULL)
        query_end(q, count);
}

/* A data_query with flags to a port not mapped; exactly one of done and
 * info_done is set. */
static void
query_send(struct vm_kernel *k, struct emm_port *pager, struct vm_pager_stats *ps,
           uint64_t deadline_ms, uint32_t flags, vm_seek_done_fn done, vm_info_done_fn info_done,
           void *arg)
{
    if (ps != NULL && vm_pager_suspect(ps, emm_mono_ns())) {
        atomic_fetch_add(&k->stats.queries_expired, 1);
        /* a data_query would wait behind its stalled returns */
        if (info_done != NULL)
            info_done(arg, NULL);
        else
            done(arg, VM_COUNT_UNKNOWN);
        return;
    }
    struct vm_query *q = calloc(1, sizeof(*q));
    struct emm_msg *m = q != NULL ? emm_msg_new(MO_DATA_QUERY, 0, UINT64_MAX) : NULL;
    if (m == NULL ||
        emm_port_create("query-reply", query_port_handler, k, NULL, &q->port) < 0) {
        free(m);
        free(q);
        if (info_done != NULL)
            info_done(arg, NULL);
        else
            done(arg, VM_COUNT_UNKNOWN);
        return;
    }
    q->sent_ns = emm_mono_ns();
    q->wait_ns = deadline_ms ? deadline_ms * 1000000ull : QUERY_WAIT_DEFAULT_NS;
    q->done = done;
    q->info_done = info_done;
    q->arg = arg;
    m->flags = flags;
    m->reply = emm_port_make_send(q->port);
    pthread_mutex_lock(&k->queries_lock);
    q->tag = (int32_t)(k->next_query_tag++ & INT32_MAX);
    m->arg = q->tag;
    TAILQ_INSERT_TAIL(&k->queries, q, link);
    pthread_mutex_unlock(&k->queries_lock);
    atomic_fetch_add(&k->stats.queries, 1);
    if (ps != NULL)
        atomic_fetch_add(&ps->msg_queries, 1);
    /* The reply may come before this returns (an inline pager): q is listed. */
    struct emm_port *qport = q->port; /* q may be gone once sent */
    if (emm_port_send(pager, m) == 0)
        return;
    emm_msg_release(m, -EPIPE);
    q = take_query(k, qport);
    if (q != NULL)
        query_end(q, VM_COUNT_UNKNOWN);
}

void
vm_kernel_query_stored(struct vm_kernel *k, struct emm_port *pager, struct vm_pager_stats *ps,
                       uint64_t deadline_ms, vm_seek_done_fn done, void *arg)
{
    query_send(k, pager, ps, deadline_ms, MO_F_QUERY_COUNT, done, NULL, arg);
}

void
vm_kernel_query_info(struct vm_kernel *k, struct emm_port *pager, struct vm_pager_stats *ps,
                     uint64_t deadline_ms, vm_info_done_fn done, void *arg)
{
    query_send(k, pager, ps, deadline_ms, MO_F_QUERY_INFO, NULL, done, arg);
}

int
vm_kernel_discard_unmapped(struct vm_kernel *k, struct emm_port *pager, struct vm_pager_stats *ps)
{
    return vm_kernel_discard_unmapped_from(k, pager, ps, 0);
}

int
vm_kernel_discard_unmapped_from(struct vm_kernel *k, struct emm_port *pager,
                                struct vm_pager_stats *ps, uint64_t offset)
{
    (void)k;
    assert(offset % VM_PS == 0);
    struct emm_msg *m = emm_msg_new(MO_DISCARD, offset, UINT64_MAX);
    if (m == NULL)
        return -ENOMEM;
    int rc = emm_port_send(pager, m);
    if (rc < 0)
        emm_msg_release(m, rc);
    else if (ps != NULL)
        atomic_fetch_add(&ps->msg_discards, 1);
    return rc;
}

void
vm_queries_expire(struct vm_kernel *k, uint64_t now, int all)
{
    TAILQ_HEAD(, vm_query) gone = TAILQ_HEAD_INITIALIZER(gone);
    pthread_mutex_lock(&k->queries_lock);
    struct vm_query *q = TAILQ_FIRST(&k->queries), *next;
    for (; q != NULL; q = next) {
        next = TAILQ_NEXT(q, link);
        /* (sent after the caller read the clock: not overdue, not 2^64 ns old) */
        if (!all && (now < q->sent_ns || now - q->sent_ns < q->wait_ns))
            continue;
        TAILQ_REMOVE(&k->queries, q, link);
        TAILQ_INSERT_TAIL(&gone, q, link);
    }
    pthread_mutex_unlock(&k->queries_lock);
    while ((q = TAILQ_FIRST(&gone)) != NULL) {
        TAILQ_REMOVE(&gone, q, link);
        atomic_fetch_add(&k->stats.queries_expired, 1);
        query_end(q, VM_COUNT_UNKNOWN);
    }
}

int
vm_queries_waiting(struct vm_kernel *k)
{
    pthread_mutex_lock(&k->queries_lock);
    int r = !TAILQ_EMPTY(&k->queries);
    pthread_mutex_unlock(&k->queries_lock);
    return r;
}

void
vm_queries_init(struct vm_kernel *k)
{
    pthread_mutex_init(&k->queries_lock, NULL);
    TAILQ_INIT(&k->queries);
}

/* After the worker stopped: what still waits is answered (nobody will). */
void
vm_queries_fini(struct vm_kernel *k)
{
    vm_queries_expire(k, emm_mono_ns(), 1);
    pthread_mutex_destroy(&k->queries_lock);
}
