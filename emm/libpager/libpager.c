/*
 * libpager.c - libemm-pager: the pager's side of the memory-object protocol
 * behind the public <emm/pager.h>, built on emm-ipc's stream transport. It
 * owns the pager's one connection, its objects (a memory object port each, in
 * a port set whose workers run the callbacks) and the translation between
 * emm messages and the public struct emm_pager_msg / emm_pager_* calls.
 *
 * Locking: p->lock guards the object list, the connection pointer and the
 * connection's end state (p->cond signals the end). obj->lock guards the
 * object's control right; a send takes a reference under it and sends
 * without it. No lock is held while a callback runs or a message is sent.
 * Callbacks for one object are serialised by its port (one message at a time).
 */
#include <emm/pager.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "msg_wire.h"
#include "port.h"
#include "port_stream.h"

#define API __attribute__((visibility("default")))

/* The public constants are the protocol's: a change on either side fails here. */
_Static_assert(EMM_PAGER_PAGE_SIZE == 4096u, "page size");
_Static_assert(EMM_PAGER_MAX_REQUEST == EMM_MAX_REQUEST_BYTES, "request limit");
_Static_assert(EMM_PAGER_WIRE_MAGIC == EMM_WIRE_MAGIC, "wire magic");
_Static_assert(EMM_PAGER_WIRE_VERSION == EMM_WIRE_VERSION, "wire version");
_Static_assert(EMM_PAGER_WIRE_HDR_SIZE == EMM_WIRE_HDR_SIZE, "wire header size");
_Static_assert(sizeof(struct emm_pager_wire_hdr) == EMM_WIRE_HDR_SIZE, "wire header struct");
_Static_assert((int)EMM_PAGER_INIT == (int)MO_INIT && (int)EMM_PAGER_DATA_REQUEST == (int)MO_DATA_REQUEST &&
                   (int)EMM_PAGER_DATA_UNLOCK == (int)MO_DATA_UNLOCK &&
                   (int)EMM_PAGER_DATA_RETURN == (int)MO_DATA_RETURN &&
                   (int)EMM_PAGER_LOCK_COMPLETED == (int)MO_LOCK_COMPLETED &&
                   (int)EMM_PAGER_SUPPLY_COMPLETED == (int)MO_SUPPLY_COMPLETED &&
                   (int)EMM_PAGER_CHANGE_COMPLETED == (int)MO_CHANGE_COMPLETED &&
                   (int)EMM_PAGER_SYNCHRONIZE == (int)MO_SYNCHRONIZE &&
                   (int)EMM_PAGER_TERMINATE == (int)MO_TERMINATE && (int)EMM_PAGER_DISCARD == (int)MO_DISCARD &&
                   (int)EMM_PAGER_DATA_QUERY == (int)MO_DATA_QUERY,
               "kernel -> pager ids");
_Static_assert((int)EMM_PAGER_READY == (int)MO_READY && (int)EMM_PAGER_DATA_SUPPLY == (int)MO_DATA_SUPPLY &&
                   (int)EMM_PAGER_DATA_UNAVAILABLE == (int)MO_DATA_UNAVAILABLE &&
                   (int)EMM_PAGER_DATA_ERROR == (int)MO_DATA_ERROR &&
                   (int)EMM_PAGER_LOCK_REQUEST == (int)MO_LOCK_REQUEST &&
                   (int)EMM_PAGER_CHANGE_ATTRIBUTES == (int)MO_CHANGE_ATTRIBUTES &&
                   (int)EMM_PAGER_DESTROY == (int)MO_DESTROY &&
                   (int)EMM_PAGER_SYNCHRONIZE_COMPLETED == (int)MO_SYNCHRONIZE_COMPLETED &&
                   (int)EMM_PAGER_QUERY_REPLY == (int)MO_QUERY_REPLY &&
                   (int)EMM_PAGER_DATA_RETURN_COMPLETED == (int)MO_DATA_RETURN_COMPLETED,
               "pager -> kernel ids");
_Static_assert(EMM_PAGER_PROT_READ == VM_PROT_READ && EMM_PAGER_PROT_WRITE == VM_PROT_WRITE &&
                   EMM_PAGER_PROT_ALL == VM_PROT_ALL &&
                   EMM_PAGER_PROT_NO_CHANGE == VM_PROT_NO_CHANGE,
               "access bits");
_Static_assert((int)EMM_PAGER_F_DIRTY == (int)MO_F_DIRTY && (int)EMM_PAGER_F_KERNEL_COPY == (int)MO_F_KERNEL_COPY &&
                   (int)EMM_PAGER_F_PRECIOUS == (int)MO_F_PRECIOUS && (int)EMM_PAGER_F_FLUSH == (int)MO_F_FLUSH &&
                   (int)EMM_PAGER_F_MAY_CACHE == (int)MO_F_MAY_CACHE &&
                   (int)EMM_PAGER_F_CLUSTER_OK == (int)MO_F_CLUSTER_OK &&
                   (int)EMM_PAGER_F_QUERY_COUNT == (int)MO_F_QUERY_COUNT,
               "flags");
_Static_assert((int)EMM_PAGER_RETURN_DIRTY == (int)MO_RETURN_DIRTY &&
                   (int)EMM_PAGER_RETURN_ALL == (int)MO_RETURN_ALL &&
                   (int)EMM_PAGER_COPY_DELAY == (int)MO_COPY_DELAY &&
                   (int)EMM_PAGER_COPY_TEMPORARY == (int)MO_COPY_TEMPORARY,
               "should_return, copy strategies");

struct emm_pager_object {
    struct emm_pager_object *next; /* p->objects */
    struct emm_pager *pager;
    uint64_t id;
    void *ctx;
    struct emm_port *port; /* the memory object port (receive right) */
    pthread_mutex_t lock;
    struct emm_port *control; /* send right, from init to terminate */
};

struct emm_pager {
    struct emm_pager_ops ops;
    void *ctx;
    struct emm_portset *set;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct emm_stream *stream;
    int attached, ended, end_err, closed;
    struct emm_pager_object *objects;
};

/* ---- sending ----------------------------------------------------------- */

static void
data_msg_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg->data);
    free(msg);
}

/* A supply whose data is in the shared region: the connection owns the run. */
static void
region_msg_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg);
}

static struct emm_port *
control_of(struct emm_pager_object *obj)
{
    pthread_mutex_lock(&obj->lock);
    struct emm_port *c = obj->control != NULL ? emm_port_ref(obj->control) : NULL;
    pthread_mutex_unlock(&obj->lock);
    return c;
}

static int
range_ok(uint64_t offset, uint64_t length, int data)
{
    if (offset % EMM_PAGER_PAGE_SIZE != 0 || length % EMM_PAGER_PAGE_SIZE != 0)
        return 0;
    return !data || (length > 0 && length <= EMM_PAGER_MAX_REQUEST);
}

/* Sends m (owned) to the object's control port. */
static int
send_control(struct emm_pager_object *obj, struct emm_msg *m)
{
    struct emm_port *c = control_of(obj);
    int rc = c != NULL ? emm_port_send(c, m) : -ENOTCONN;
    if (rc < 0) {
        if (rc != -ENOTCONN)
            emm_warn("pager object %llu: %s not sent: %s", (unsigned long long)obj->id,
                     emm_msg_name(m->id), strerror(-rc));
        emm_msg_release(m, rc);
    }
    if (c != NULL)
        emm_port_unref(c);
    return rc;
}

static struct emm_msg *
new_msg(uint32_t id, uint64_t offset, uint64_t length)
{
    return emm_msg_new(id, offset, length);
}

API int
emm_pager_ready(struct emm_pager_object *obj, uint32_t flags, int32_t copy_strategy)
{
    struct emm_msg *m = new_msg(MO_READY, 0, 0);
    if (m == NULL)
        return -ENOMEM;
    m->flags = flags & (MO_F_MAY_CACHE | MO_F_CLUSTER_OK);
    m->arg = copy_strategy;
    return send_control(obj, m);
}

API int
emm_pager_data_supply(struct emm_pager_object *obj, uint64_t offset, uint64_t length,
                      const void *data, uint32_t lock_value, uint32_t flags, int reply)
{
    if (!range_ok(offset, length, 1) || data == NULL)
        return -EINVAL;
    struct emm_msg *m = new_msg(MO_DATA_SUPPLY, offset, length);
    if (m == NULL)
        return -ENOMEM;
    /* A run of the connection's shared region when one is free: the data is
     * copied once, there, and crosses without another copy; else a buffer
     * of its own, copied into the region (or the socket) by the writer. */
    struct emm_port *c = control_of(obj);
    if (c != NULL &&
        emm_stream_data_alloc(c, (uint32_t)(length / EMM_PAGER_PAGE_SIZE), &m->data) == 0) {
        m->release = region_msg_release;
    } else if (posix_memalign(&m->data, EMM_PAGER_PAGE_SIZE, length) == 0) {
        m->release = data_msg_release;
    } else {
        if (c != NULL)
            emm_port_unref(c);
        free(m);
        return -ENOMEM;
    }
    if (c != NULL)
        emm_port_unref(c);
    memcpy(m->data, data, length);
    m->access = lock_value & VM_PROT_ALL;
    m->flags = flags & MO_F_PRECIOUS;
    if (reply)
        m->reply = emm_port_make_send(obj->port);
    return send_control(obj, m);
}

API int
emm_pager_data_unavailable(struct emm_pager_object *obj, uint64_t offset, uint64_t length)
{
    if (!range_ok(offset, length, 1))
        return -EINVAL;
    struct emm_msg *m = new_msg(MO_DATA_UNAVAILABLE, offset, length);
    return m != NULL ? send_control(obj, m) : -ENOMEM;
}

API int
emm_pager_data_error(struct emm_pager_object *obj, uint64_t offset, uint64_t length, int err)
{
    if (!range_ok(offset, length, 1) || err <= 0)
        return -EINVAL;
    struct emm_msg *m = new_msg(MO_DATA_ERROR, offset, length);
    if (m == NULL)
        return -ENOMEM;
    m->arg = err;
    return send_control(obj, m);
}

API int
emm_pager_lock_request(struct emm_pager_object *obj, uint64_t offset, uint64_t length,
                       int should_return, uint32_t flags, uint32_t lock_value, int reply)
{
    if (!range_ok(offset, length, 0) || should_return < MO_RETURN_NONE ||
        should_return > MO_RETURN_ALL)
        return -EINVAL;
    struct emm_msg *m = new_msg(MO_LOCK_REQUEST, offset, length);
    if (m == NULL)
        return -ENOMEM;
    m->arg = should_return;
    m->flags = flags & MO_F_FLUSH;
    m->access = lock_value == VM_PROT_NO_CHANGE ? VM_PROT_NO_CHANGE : lock_value & VM_PROT_ALL;
    if (reply)
        m->reply = emm_port_make_send(obj->port); /* lock_completed comes in order */
    return send_control(obj, m);
}

API int
emm_pager_change_attributes(struct emm_pager_object *obj, uint32_t flags, int32_t copy_strategy,
                            int reply)
{
    struct emm_msg *m = new_msg(MO_CHANGE_ATTRIBUTES, 0, 0);
    if (m == NULL)
        return -ENOMEM;
    m->flags = flags & (MO_F_MAY_CACHE | MO_F_CLUSTER_OK);
    m->arg = copy_strategy;
    if (reply)
        m->reply = emm_port_make_send(obj->port);
    return send_control(obj, m);
}

API int
emm_pager_destroy(struct emm_pager_object *obj, int reason)
{
    if (reason < 0)
        return -EINVAL;
    struct emm_msg *m = new_msg(MO_DESTROY, 0, 0);
    if (m == NULL)
        return -ENOMEM;
    m->arg = reason;
    return send_control(obj, m);
}

API int
emm_pager_synchronize_completed(struct emm_pager_object *obj, uint64_t offset, uint64_t length,
                                int err)
{
    if (err < 0)
        return -EINVAL;
    struct emm_msg *m = new_msg(MO_SYNCHRONIZE_COMPLETED, offset, length);
    if (m == NULL)
        return -ENOMEM;
    m->arg = err;
    return send_control(obj, m);
}

API int
emm_pager_data_return_completed(struct emm_pager_object *obj, uint64_t offset, uint64_t length,
                                uint64_t seqno, int err)
{
    if (!range_ok(offset, length, 1) || err < 0)
        return -EINVAL;
    struct emm_msg *m = new_msg(MO_DATA_RETURN_COMPLETED, offset, length);
    if (m == NULL)
        return -ENOMEM;
    m->arg = err;
    m->arg2 = seqno;
    return send_control(obj, m);
}

/* ---- receiving: the memory object port's handler (a worker thread) ------ */

static void
to_public(const struct emm_msg *msg, struct emm_pager_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->struct_size = sizeof(*m);
    m->id = msg->id;
    m->flags = msg->flags;
    m->seqno = msg->seqno;
    m->offset = msg->offset;
    m->length = msg->length;
    m->arg2 = msg->arg2;
    m->access = msg->access;
    m->arg = msg->arg;
    m->data = msg->data;
}

/* After terminate (on the object's worker): the object ends. Its port dies
 * and it leaves the table, so the kernel's next lookup of the id gets a new
 * port, whose seqnos start again with the kernel's new proxy (a
 * data_return_completed names the data_return by that seqno). Unless
 * emm_pager_free took the table first: it ends the object itself. */
static void
object_end(struct emm_pager_object *obj)
{
    struct emm_pager *p = obj->pager;
    pthread_mutex_lock(&p->lock);
    struct emm_pager_object **pp = &p->objects;
    while (*pp != NULL && *pp != obj)
        pp = &(*pp)->next;
    int owned = *pp == obj;
    if (owned)
        *pp = obj->next;
    pthread_mutex_unlock(&p->lock);
    if (!owned)
        return;
    pthread_mutex_lock(&obj->lock);
    struct emm_port *c = obj->control;
    obj->control = NULL;
    pthread_mutex_unlock(&obj->lock);
    if (c != NULL)
        emm_port_unref(c);
    emm_port_destroy(obj->port); /* later messages to it are refused (-EPIPE) */
    if (p->ops.object_close)
        p->ops.object_close(p->ctx, obj);
    pthread_mutex_destroy(&obj->lock);
    free(obj);
}

/* data_query, answered from the data_query callback: to the query's reply
 * port when it has one (the kernel asks about an object it has not mapped:
 * no init, no control port), else to the control port. A pager that cannot
 * tell claims the whole span (claiming data is harmless: a copy reads zeros;
 * missing some is not), and answers a count query with length UINT64_MAX. */
static void
answer_query(struct emm_pager_object *obj, struct emm_msg *msg, const struct emm_pager_msg *m)
{
    const struct emm_pager_ops *ops = &obj->pager->ops;
    int count = (msg->flags & MO_F_QUERY_COUNT) != 0;
    uint64_t off = count ? 0 : msg->offset, len = count ? UINT64_MAX : msg->length;
    int rc = ops->data_query ? ops->data_query(obj, m, &off, &len) : -EOPNOTSUPP;
    if (count && (rc < 0 || len % EMM_PAGER_PAGE_SIZE != 0)) {
        off = 0;
        len = UINT64_MAX; /* cannot tell */
    } else if (!count && (rc < 0 || (off != UINT64_MAX && off % EMM_PAGER_PAGE_SIZE != 0) ||
                          (off != UINT64_MAX && len != UINT64_MAX &&
                           (len == 0 || len % EMM_PAGER_PAGE_SIZE != 0)))) {
        off = msg->offset;
        len = msg->length; /* cannot tell (or an answer the kernel would refuse) */
    }
    if (!count && off == UINT64_MAX)
        len = 0;
    struct emm_msg *r = new_msg(MO_QUERY_REPLY, off, len);
    if (r == NULL)
        return; /* the kernel's deadline answers for us */
    r->arg = msg->arg;
    r->flags = count ? MO_F_QUERY_COUNT : 0;
    if (msg->reply == EMM_PORT_NULL) {
        send_control(obj, r);
    } else if (emm_port_send_reply(&msg->reply, r) < 0) {
        emm_msg_release(r, -EPIPE);
    }
}

static void
object_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct emm_pager_object *obj = emm_port_context(port);
    const struct emm_pager_ops *ops = &obj->pager->ops;
    struct emm_pager_msg m;
    to_public(msg, &m);
    int rc = 0;

    switch (msg->id) {
    case MO_INIT: {
        struct emm_port *c = emm_port_take(&msg->control);
        pthread_mutex_lock(&obj->lock);
        struct emm_port *old = obj->control;
        obj->control = c;
        pthread_mutex_unlock(&obj->lock);
        if (old != NULL)
            emm_port_unref(old);
        if (ops->init == NULL) {
            rc = emm_pager_ready(obj, 0, MO_COPY_DELAY);
        } else if ((rc = ops->init(obj, &m)) < 0) {
            emm_warn("pager object %llu: init refused: %s", (unsigned long long)obj->id,
                     strerror(-rc));
            emm_pager_destroy(obj, -rc);
        }
        break;
    }
    case MO_DATA_REQUEST:
        rc = ops->data_request ? ops->data_request(obj, &m)
                               : emm_pager_data_unavailable(obj, m.offset, m.length);
        if (rc < 0 && rc != -ENOTCONN && rc != -EPIPE)
            emm_pager_data_error(obj, m.offset, m.length, -rc);
        break;
    case MO_DATA_UNLOCK:
        rc = ops->data_unlock ? ops->data_unlock(obj, &m)
                              : emm_pager_lock_request(obj, m.offset, m.length, MO_RETURN_NONE,
                                                       0, VM_PROT_NONE, 0);
        if (rc < 0 && rc != -ENOTCONN && rc != -EPIPE)
            emm_pager_data_error(obj, m.offset, m.length, -rc);
        break;
    case MO_DATA_RETURN:
        rc = ops->data_return ? ops->data_return(obj, &m) : -EOPNOTSUPP;
        if (rc != EMM_PAGER_LATER) {
            struct emm_port *c = control_of(obj);
            if (emm_msg_return_completed(msg, c, rc > 0 ? -EINVAL : rc) < 0)
                emm_warn("pager object %llu: data_return_completed not sent",
                         (unsigned long long)obj->id);
            if (c != NULL)
                emm_port_unref(c);
        }
        break;
    case MO_SYNCHRONIZE:
        rc = ops->synchronize ? ops->synchronize(obj, &m) : 0;
        if (rc != EMM_PAGER_LATER)
            emm_pager_synchronize_completed(obj, m.offset, m.length, rc < 0 ? -rc : 0);
        break;
    case MO_LOCK_COMPLETED:
        if (ops->lock_completed)
            ops->lock_completed(obj, &m);
        break;
    case MO_SUPPLY_COMPLETED:
        if (ops->supply_completed)
            ops->supply_completed(obj, &m);
        break;
    case MO_CHANGE_COMPLETED:
        if (ops->change_completed)
            ops->change_completed(obj, &m);
        break;
    case MO_DISCARD:
        if (ops->discard)
            ops->discard(obj, &m);
        break;
    case MO_DATA_QUERY:
        answer_query(obj, msg, &m);
        break;
    case MO_TERMINATE:
        if (ops->terminate)
            ops->terminate(obj, &m);
        emm_msg_release(msg, 0); /* the message's control and name rights go with it */
        object_end(obj);
        return;
    default:
        emm_warn("pager object %llu: unexpected %s ignored", (unsigned long long)obj->id,
                 emm_msg_name(msg->id));
        break;
    }
    emm_msg_release(msg, 0);
}

/* ---- the connection ----------------------------------------------------- */

/* The stream's lookup: the port of object id (created on first ask). */
static int
lookup_object(void *ctx, uint64_t id, struct emm_port **out)
{
    struct emm_pager *p = ctx;
    pthread_mutex_lock(&p->lock);
    struct emm_pager_object *obj = p->objects;
    while (obj != NULL && obj->id != id)
        obj = obj->next;
    if (obj != NULL) {
        *out = emm_port_ref(obj->port);
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    pthread_mutex_unlock(&p->lock);

    void *octx = NULL;
    int rc = p->ops.object_open ? p->ops.object_open(p->ctx, id, &octx) : 0;
    if (rc < 0)
        return rc;
    obj = calloc(1, sizeof(*obj));
    if (obj == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        obj->pager = p;
        obj->id = id;
        obj->ctx = octx;
        pthread_mutex_init(&obj->lock, NULL);
        rc = emm_port_create("pager object", object_handler, obj, p->set, &obj->port);
    }
    if (rc < 0) {
        if (p->ops.object_close && obj != NULL)
            p->ops.object_close(p->ctx, obj);
        free(obj);
        return rc;
    }
    pthread_mutex_lock(&p->lock);
    obj->next = p->objects;
    p->objects = obj;
    *out = emm_port_ref(obj->port);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static void
on_dead(void *ctx, struct emm_stream *s, int err)
{
    struct emm_pager *p = ctx;
    (void)s;
    pthread_mutex_lock(&p->lock);
    p->ended = 1;
    p->end_err = err;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

API int
emm_pager_create(const struct emm_pager_ops *ops, void *ctx, unsigned threads,
                 struct emm_pager **out)
{
    if (ops == NULL || out == NULL || ops->struct_size < offsetof(struct emm_pager_ops, init))
        return -EINVAL;
    if (ops->api_version != EMM_PAGER_API_VERSION) {
        emm_err("libemm-pager: api_version %u is not %d", (unsigned)ops->api_version,
                EMM_PAGER_API_VERSION);
        return -EPROTONOSUPPORT;
    }
    struct emm_pager *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    size_t n = ops->struct_size < sizeof(p->ops) ? ops->struct_size : sizeof(p->ops);
    memcpy(&p->ops, ops, n);
    p->ctx = ctx;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    int rc = emm_portset_create("pager", threads > 0 ? threads : 1, 0, &p->set);
    if (rc < 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

API int
emm_pager_attach(struct emm_pager *p, int fd, uint32_t peer_uid)
{
    pthread_mutex_lock(&p->lock);
    if (p->attached) {
        pthread_mutex_unlock(&p->lock);
        close(fd);
        return -EBUSY;
    }
    p->attached = 1;
    pthread_mutex_unlock(&p->lock);
    struct emm_stream_args a = {
        .label = "kernel",
        .peer_role = EMM_STREAM_PEER_KERNEL,
        .peer_uid = (uid_t)peer_uid,
        .lookup = lookup_object,
        .on_dead = on_dead,
        .ctx = p,
    };
    struct emm_stream *s = NULL;
    int rc = emm_stream_open(fd, &a, &s);
    pthread_mutex_lock(&p->lock);
    if (rc < 0)
        p->attached = 0;
    else
        p->stream = s;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

API int
emm_pager_listen(const char *path)
{
    return emm_stream_listen(path);
}

API int
emm_pager_accept(struct emm_pager *p, int lfd, uint32_t peer_uid)
{
    int fd = emm_stream_accept(lfd);
    return fd < 0 ? fd : emm_pager_attach(p, fd, peer_uid);
}

API int
emm_pager_connect(struct emm_pager *p, const char *path)
{
    int fd = emm_stream_connect(path);
    return fd < 0 ? fd : emm_pager_attach(p, fd, (uint32_t)-1);
}

API int
emm_pager_wait(struct emm_pager *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->stream == NULL) {
        pthread_mutex_unlock(&p->lock);
        return -ENOTCONN;
    }
    while (!p->ended)
        pthread_cond_wait(&p->cond, &p->lock);
    int rc = p->end_err;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

API void
emm_pager_shutdown(struct emm_pager *p)
{
    pthread_mutex_lock(&p->lock);
    struct emm_stream *s = p->stream;
    p->stream = NULL;
    pthread_mutex_unlock(&p->lock);
    if (s != NULL)
        emm_stream_close(s); /* joins the reader: on_dead has run */
}

API void
emm_pager_free(struct emm_pager *p)
{
    if (p == NULL)
        return;
    emm_pager_shutdown(p);
    /* No new messages: the workers finish what is queued, then stop. */
    pthread_mutex_lock(&p->lock);
    struct emm_pager_object *obj = p->objects;
    p->objects = NULL;
    pthread_mutex_unlock(&p->lock);
    for (struct emm_pager_object *o = obj; o != NULL; o = o->next)
        emm_port_destroy(o->port);
    emm_portset_destroy(p->set);
    while (obj != NULL) {
        struct emm_pager_object *next = obj->next;
        if (obj->control != NULL)
            emm_port_unref(obj->control);
        if (p->ops.object_close)
            p->ops.object_close(p->ctx, obj);
        pthread_mutex_destroy(&obj->lock);
        free(obj);
        obj = next;
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

API void *
emm_pager_ctx(const struct emm_pager *p)
{
    return p->ctx;
}

API const char *
emm_pager_version(void)
{
    return "1.0 (API 1, wire 1)";
}

API uint64_t
emm_pager_object_id(const struct emm_pager_object *obj)
{
    return obj->id;
}

API void *
emm_pager_object_ctx(const struct emm_pager_object *obj)
{
    return obj->ctx;
}

API struct emm_pager *
emm_pager_object_pager(const struct emm_pager_object *obj)
{
    return obj->pager;
}
