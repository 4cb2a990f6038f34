/*
 * pager_std.c - the standard pager over a storage backend (see pager_std.h).
 *
 * Locking: pg->lock guards the object list. Handler-side state of a
 * pgr_object is touched only by its port's handler, which the port serializes.
 * po->lock and po->cond serve pgr_std_lock_object's wait for lock_completed.
 */
#include "pager_std.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "port_stream.h"

#define PS ((uint64_t)EMM_PAGE_SIZE)

struct pgr_object {
    struct pgr_object *next;
    struct pgr_std *pager;
    uint64_t id;
    struct emm_port *port;    /* receive right: the memory object port */
    struct emm_port *control; /* send right, from init */
    int error_logged;         /* a refused data_return was logged since the last synchronize */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t locks_completed;
};

struct pgr_std {
    struct emm_backend *backend;
    struct emm_portset *set; /* NULL: inline */
    pthread_mutex_t lock;
    struct pgr_object *objects;
    struct supply_buf *free_bufs; /* lock: cached supply buffers */
    unsigned nfree_bufs;
    struct pgr_std_stats stats;
};

/* A supply buffer shared by the supply messages cut from one backend read. The
 * data is page-aligned (backends may use O_DIRECT or wide stores); the header
 * sits after it. Buffers are of one size (a whole request) and kept on a small
 * free list: a fresh 1 MiB allocation would page-fault on every request. */
#define SUPPLY_MAX EMM_MAX_REQUEST_BYTES
#define SUPPLY_CACHED 2 /* idle 1 MiB buffers kept per pager: each counts in the RSS */

struct supply_buf {
    atomic_int refs;
    char *data;
    struct pgr_std *pager;
    struct supply_buf *next_free;
};

static struct supply_buf *
supply_buf_new(struct pgr_std *pg)
{
    pthread_mutex_lock(&pg->lock);
    struct supply_buf *sb = pg->free_bufs;
    if (sb != NULL) {
        pg->free_bufs = sb->next_free;
        pg->nfree_bufs--;
    }
    pthread_mutex_unlock(&pg->lock);
    if (sb == NULL) {
        char *mem = aligned_alloc(PS, SUPPLY_MAX + PS);
        if (mem == NULL)
            return NULL;
        sb = (struct supply_buf *)(mem + SUPPLY_MAX);
        sb->data = mem;
        sb->pager = pg;
    }
    atomic_init(&sb->refs, 1);
    return sb;
}

static void
supply_buf_put(struct supply_buf *sb)
{
    if (atomic_fetch_sub(&sb->refs, 1) != 1)
        return;
    struct pgr_std *pg = sb->pager;
    pthread_mutex_lock(&pg->lock);
    if (pg->nfree_bufs < SUPPLY_CACHED) {
        sb->next_free = pg->free_bufs;
        pg->free_bufs = sb;
        pg->nfree_bufs++;
        sb = NULL;
    }
    pthread_mutex_unlock(&pg->lock);
    if (sb != NULL)
        free(sb->data);
}

static void
supply_release(struct emm_msg *msg, int status)
{
    (void)status;
    supply_buf_put(msg->release_ctx);
    free(msg);
}

/* A supply whose data is in a stream's shared region: the connection owns
 * the pages (the kernel hands them back); the message is all there is. */
static void
region_supply_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg);
}

static void
send_control(struct pgr_object *po, struct emm_msg *m)
{
    if (po->control == NULL || emm_port_send(po->control, m) < 0) {
        emm_warn("pager: object %llu: kernel gone, %s dropped", (unsigned long long)po->id,
                 emm_msg_name(m->id));
        emm_msg_release(m, -EPIPE);
    }
}

static void
do_data_request(struct pgr_object *po, struct emm_msg *msg)
{
    struct pgr_std *pg = po->pager;
    uint64_t n = msg->length / PS, first = msg->offset / PS;
    atomic_fetch_add(&pg->stats.requests, 1);
    /* The kernel in another process (a stream with a shared region): the
     * backend reads straight into the region, and the supply crosses with no
     * further copy in this process. Else (or no run free now) a buffer. */
    char *region = NULL;
    if (n && n <= EMM_MAX_REQUEST_PAGES && po->control != NULL &&
        emm_stream_data_alloc(po->control, (uint32_t)n, (void **)&region) == 0)
        atomic_fetch_add(&pg->stats.region_reads, 1);
    struct supply_buf *sb = region == NULL && n && n <= EMM_MAX_REQUEST_PAGES ? supply_buf_new(pg) : NULL;
    char *buf = region != NULL ? region : sb != NULL ? sb->data : NULL;
    uint8_t present[EMM_MAX_REQUEST_PAGES];
    int rc = buf == NULL ? (n > EMM_MAX_REQUEST_PAGES ? -EINVAL : -ENOMEM) : 0;
    if (rc == 0)
        rc = emm_backend_read(pg->backend, po->id, first, (uint32_t)n, buf, present);
    if (rc < 0) {
        if (sb != NULL)
            supply_buf_put(sb);
        if (region != NULL)
            emm_stream_data_unreserve(po->control, region, (uint32_t)n);
        atomic_fetch_add(&pg->stats.errors, 1);
        struct emm_msg *m = emm_msg_new(MO_DATA_ERROR, msg->offset, msg->length);
        if (m != NULL) {
            m->arg = -rc;
            send_control(po, m);
        }
        return;
    }
    /* One message per run: supply for stored pages, unavailable for holes. */
    uint64_t i = 0;
    while (i < n) {
        uint64_t j = i;
        while (j < n && present[j] == present[i])
            j++;
        struct emm_msg *m;
        if (present[i]) {
            m = emm_msg_new(MO_DATA_SUPPLY, (first + i) * PS, (j - i) * PS);
            if (m != NULL && region != NULL) {
                m->data = region + i * PS;
                m->release = region_supply_release;
            } else if (m != NULL) {
                atomic_fetch_add(&sb->refs, 1);
                m->data = sb->data + i * PS;
                m->release = supply_release;
                m->release_ctx = sb;
            }
            if (m != NULL) {
                m->access = VM_PROT_NONE;
                atomic_fetch_add(&pg->stats.supplies, 1);
            } else if (region != NULL) {
                emm_stream_data_unreserve(po->control, region + i * PS, (uint32_t)(j - i));
            }
        } else {
            if (region != NULL) /* a hole: its pages of the run are not sent */
                emm_stream_data_unreserve(po->control, region + i * PS, (uint32_t)(j - i));
            m = emm_msg_new(MO_DATA_UNAVAILABLE, (first + i) * PS, (j - i) * PS);
            atomic_fetch_add(&pg->stats.unavailable, 1);
        }
        if (m != NULL)
            send_control(po, m);
        i = j;
    }
    if (sb != NULL)
        supply_buf_put(sb);
}

/* Stores a data_return, gathering a clustered one into backend writes of up to
 * a whole buffer each. */
static int
store_return(struct pgr_std *pg, struct pgr_object *po, struct emm_msg *msg)
{
    if (msg->chain == NULL)
        return emm_backend_write(pg->backend, po->id, msg->offset / PS,
                                 (uint32_t)(msg->length / PS), msg->data);
    struct supply_buf *sb = supply_buf_new(pg);
    if (sb == NULL)
        return -ENOMEM;
    int rc = 0;
    struct emm_msg *m = msg;
    while (m != NULL && rc == 0) {
        uint64_t first = m->offset / PS, len = 0;
        for (; m != NULL && len + m->length <= SUPPLY_MAX; m = m->chain) {
            memcpy(sb->data + len, m->data, m->length);
            len += m->length;
        }
        rc = emm_backend_write(pg->backend, po->id, first, (uint32_t)(len / PS), sb->data);
    }
    supply_buf_put(sb);
    return rc;
}

/* A query_reply goes to the query's reply port when it carries one (the
 * kernel asks about an object it has not mapped: there is no control port),
 * else to the control port. */
static void
send_query_reply(struct pgr_object *po, struct emm_msg *query, struct emm_msg *m)
{
    if (query->reply == EMM_PORT_NULL) {
        send_control(po, m);
    } else if (emm_port_send_reply(&query->reply, m) < 0) {
        emm_warn("pager: object %llu: the kernel's query port is gone, query_reply dropped",
                 (unsigned long long)po->id);
        emm_msg_release(m, -EPIPE);
    }
}

static void
info_release(struct emm_msg *m, int status)
{
    (void)status;
    free(m->data);
    free(m);
}

/* MO_DATA_QUERY with MO_F_QUERY_INFO: the backend's "key:value" lines in one
 * page (emmctl info asks through the kernel, never the backend itself). */
static void
do_info_query(struct pgr_object *po, struct emm_msg *msg)
{
    char *text = calloc(1, PS);
    struct emm_msg *m = text != NULL ? emm_msg_new(MO_QUERY_REPLY, 0, PS) : NULL;
    if (m == NULL) {
        free(text);
        return; /* the kernel's deadline answers for us */
    }
    if (emm_backend_info(po->pager->backend, text, PS) != 0)
        text[0] = '\0';
    text[PS - 1] = '\0';
    m->data = text;
    m->release = info_release;
    m->flags = MO_F_QUERY_INFO;
    m->arg = msg->arg;
    send_query_reply(po, msg, m);
}

/* MO_DATA_QUERY: the first run of pages the backend stores in [from,
 * from+span), from two backend seeks (with MO_F_QUERY_COUNT: how many pages
 * it stores; a backend that cannot count answers length UINT64_MAX, "cannot
 * tell"). A backend that cannot tell answers the
 * whole span: claiming data is harmless (a copy reads zeros), missing some is
 * not. The reply follows every discard and data_return sent before the query
 * (one port, in order). */
static void
do_data_query(struct pgr_object *po, struct emm_msg *msg)
{
    struct pgr_std *pg = po->pager;
    uint64_t from = msg->offset / PS, n = msg->length / PS;
    uint64_t end = msg->length == UINT64_MAX || n > UINT64_MAX - from ? UINT64_MAX : from + n;
    uint64_t d = from, h = end;
    atomic_fetch_add(&pg->stats.queries, 1);
    if (msg->flags & MO_F_QUERY_INFO) {
        do_info_query(po, msg);
        return;
    }
    if (msg->flags & MO_F_QUERY_COUNT) {
        uint64_t count = 0;
        int rc = emm_backend_stored_pages(pg->backend, po->id, &count);
        struct emm_msg *c = emm_msg_new(MO_QUERY_REPLY, 0,
                                        rc < 0 || count > UINT64_MAX / PS ? UINT64_MAX
                                                                          : count * PS);
        if (c != NULL) {
            c->flags = MO_F_QUERY_COUNT;
            c->arg = msg->arg;
            send_query_reply(po, msg, c);
        }
        return;
    }
    int rc = emm_backend_seek(pg->backend, po->id, from, 1, &d);
    if (rc == -ENXIO) {
        d = UINT64_MAX;
    } else if (rc < 0) {
        d = from; /* cannot tell */
    } else if (d < end && emm_backend_seek(pg->backend, po->id, d, 0, &h) < 0) {
        h = end;
    }
    if (d < from)
        d = from;
    if (h > end || h <= d)
        h = end;
    struct emm_msg *m = emm_msg_new(MO_QUERY_REPLY, 0, 0);
    if (m == NULL)
        return; /* the kernel's deadline answers for us */
    if (d < end) {
        m->offset = d * PS;
        m->length = h - d > UINT64_MAX / PS ? UINT64_MAX : (h - d) * PS; /* MAX: to the end */
    } else {
        m->offset = UINT64_MAX;
    }
    m->arg = msg->arg;
    send_query_reply(po, msg, m);
}

static void
pager_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct pgr_object *po = emm_port_context(port);
    struct pgr_std *pg = po->pager;
    int status = 0;

    switch (msg->id) {
    case MO_INIT: {
        atomic_fetch_add(&pg->stats.inits, 1);
        if (po->control != NULL)
            emm_port_unref(po->control);
        po->control = emm_port_take(&msg->control);
        struct emm_msg *m = emm_msg_new(MO_READY, 0, 0);
        if (m != NULL) {
            m->flags = MO_F_MAY_CACHE | MO_F_CLUSTER_OK;
            m->arg = MO_COPY_DELAY;
            send_control(po, m);
        }
        break;
    }
    case MO_DATA_REQUEST:
        do_data_request(po, msg);
        break;
    case MO_DATA_UNLOCK: {
        atomic_fetch_add(&pg->stats.unlocks, 1);
        struct emm_msg *m = emm_msg_new(MO_LOCK_REQUEST, msg->offset, msg->length);
        if (m != NULL) {
            m->arg = MO_RETURN_NONE;
            m->access = VM_PROT_NONE; /* grant everything */
            send_control(po, m);
        }
        break;
    }
    case MO_DATA_RETURN:
        atomic_fetch_add(&pg->stats.returns, 1);
        status = store_return(pg, po, msg);
        if (status < 0) {
            if (!po->error_logged)
                emm_err("pager: object %llu: storing page %llu failed: %s",
                        (unsigned long long)po->id, (unsigned long long)(msg->offset / PS),
                        strerror(-status));
            po->error_logged = 1;
            atomic_fetch_add(&pg->stats.return_errors, 1);
        }
        /* The kernel decides on the answer, a message; the release status
         * only says the return was not taken when no answer could go. */
        int sent = emm_msg_return_completed(msg, po->control, status);
        if (sent < 0 && status == 0)
            status = sent;
        break;
    case MO_SYNCHRONIZE: {
        /* The store's own sync. A refused data_return was answered with its
         * errno (data_return_completed): the kernel keeps the page (or double-pages it) and fails
         * the fsync that depended on it. */
        atomic_fetch_add(&pg->stats.syncs, 1);
        int rc = emm_backend_sync(pg->backend, po->id);
        struct emm_msg *m = emm_msg_new(MO_SYNCHRONIZE_COMPLETED, msg->offset, msg->length);
        if (m != NULL) {
            m->arg = -rc; /* a positive errno, as every errno in the protocol */
            send_control(po, m);
        }
        po->error_logged = 0;
        break;
    }
    case MO_DISCARD: {
        atomic_fetch_add(&pg->stats.discards, 1);
        uint64_t n = msg->length == UINT64_MAX ? UINT64_MAX : msg->length / PS;
        int rc = emm_backend_discard(pg->backend, po->id, msg->offset / PS, n);
        if (rc < 0)
            emm_err("pager: object %llu: discard failed: %s", (unsigned long long)po->id,
                    strerror(-rc));
        break;
    }
    case MO_DATA_QUERY:
        do_data_query(po, msg);
        break;
    case MO_LOCK_COMPLETED:
        pthread_mutex_lock(&po->lock);
        po->locks_completed++;
        pthread_cond_broadcast(&po->cond);
        pthread_mutex_unlock(&po->lock);
        break;
    case MO_TERMINATE:
        /* The kernel is done with this mapping; a later init may reuse the port,
         * which keeps the order of everything sent before it. */
        atomic_fetch_add(&pg->stats.terminates, 1);
        if (po->control != NULL) {
            emm_port_unref(po->control);
            po->control = NULL;
        }
        break;
    case MO_SUPPLY_COMPLETED:
    case MO_CHANGE_COMPLETED:
        break;
    default:
        emm_warn("pager: object %llu: unexpected %s", (unsigned long long)po->id,
                 emm_msg_name(msg->id));
        break;
    }
    emm_msg_release(msg, status);
}

/* With FAST_READS, a data_request runs in the faulting thread when the object's
 * port is idle; everything else (writes, syncs) goes to the workers. */
static int
request_may_inline(const struct emm_msg *msg)
{
    return msg->id == MO_DATA_REQUEST;
}

int
pgr_std_create(struct emm_backend *backend, unsigned threads, unsigned spin_us,
               struct pgr_std **out)
{
    struct pgr_std *pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        return -ENOMEM;
    pg->backend = backend;
    pthread_mutex_init(&pg->lock, NULL);
    if (!(backend->flags & EMM_BACKEND_NONBLOCKING)) {
        int rc = emm_portset_create("pager", threads ? threads : 1, spin_us, &pg->set);
        if (rc < 0) {
            free(pg);
            return rc;
        }
    }
    *out = pg;
    return 0;
}

void
pgr_std_destroy(struct pgr_std *pg)
{
    if (pg->set != NULL)
        emm_portset_destroy(pg->set);
    struct pgr_object *po = pg->objects;
    while (po != NULL) {
        struct pgr_object *next = po->next;
        emm_port_destroy(po->port);
        if (po->control != NULL)
            emm_port_unref(po->control);
        pthread_mutex_destroy(&po->lock);
        pthread_cond_destroy(&po->cond);
        free(po);
        po = next;
    }
    while (pg->free_bufs != NULL) {
        struct supply_buf *sb = pg->free_bufs;
        pg->free_bufs = sb->next_free;
        free(sb->data);
    }
    pthread_mutex_destroy(&pg->lock);
    free(pg);
}

static struct pgr_object *
find_locked(struct pgr_std *pg, uint64_t id)
{
    for (struct pgr_object *po = pg->objects; po; po = po->next)
        if (po->id == id)
            return po;
    return NULL;
}

int
pgr_std_object_port(struct pgr_std *pg, uint64_t id, struct emm_port **out)
{
    pthread_mutex_lock(&pg->lock);
    struct pgr_object *po = find_locked(pg, id);
    if (po == NULL) {
        po = calloc(1, sizeof(*po));
        int rc = po ? emm_port_create("memory-object", pager_handler, po, pg->set, &po->port)
                    : -ENOMEM;
        if (rc < 0) {
            free(po);
            pthread_mutex_unlock(&pg->lock);
            return rc;
        }
        po->pager = pg;
        po->id = id;
        if (pg->set != NULL && (pg->backend->flags & EMM_BACKEND_FAST_READS))
            emm_port_set_may_inline(po->port, request_may_inline);
        pthread_mutex_init(&po->lock, NULL);
        pthread_cond_init(&po->cond, NULL);
        po->next = pg->objects;
        pg->objects = po;
    }
    *out = emm_port_ref(po->port);
    pthread_mutex_unlock(&pg->lock);
    return 0;
}

int
pgr_std_lock_object(struct pgr_std *pg, uint64_t id, int should_return, int flush,
                    uint32_t lock_value, int timeout_ms)
{
    pthread_mutex_lock(&pg->lock);
    struct pgr_object *po = find_locked(pg, id);
    struct emm_port *control = po && po->control ? emm_port_ref(po->control) : NULL;
    pthread_mutex_unlock(&pg->lock);
    if (control == NULL)
        return -ENOENT;
    struct emm_msg *m = emm_msg_new(MO_LOCK_REQUEST, 0, UINT64_MAX);
    if (m == NULL) {
        emm_port_unref(control);
        return -ENOMEM;
    }
    m->arg = should_return;
    m->flags = flush ? MO_F_FLUSH : 0;
    m->access = lock_value;
    m->reply = emm_port_make_send(po->port); /* send-once right for lock_completed */
    pthread_mutex_lock(&po->lock);
    uint64_t target = po->locks_completed + 1;
    pthread_mutex_unlock(&po->lock);
    int rc = emm_port_send(control, m);
    emm_port_unref(control);
    if (rc < 0) {
        emm_msg_release(m, rc);
        return rc;
    }
    struct timespec ts = emm_deadline_after_ms(CLOCK_REALTIME, (uint64_t)timeout_ms);
    pthread_mutex_lock(&po->lock);
    rc = 0;
    while (po->locks_completed < target && rc == 0)
        rc = pthread_cond_timedwait(&po->cond, &po->lock, &ts);
    pthread_mutex_unlock(&po->lock);
    return rc == ETIMEDOUT ? -ETIMEDOUT : 0;
}

struct pgr_std_stats *
pgr_std_stats(struct pgr_std *pg)
{
    return &pg->stats;
}

int
pgr_std_is_inline(struct pgr_std *pg)
{
    return pg->set == NULL;
}
