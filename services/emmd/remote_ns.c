/*
 * remote_ns.c - a filesystem whose pager is an emm-memserver (pager =
 * tcp:HOST:PORT) takes its namespace from the server: names, sizes, create,
 * unlink, rename, mkdir, rmdir, the attributes (docs/memserver.md). Each of
 * those is a MO_NS_* request (msg.h, ns_wire.h) on the server's namespace
 * port (the object port of id MO_NS_PORT_ID on the pager connection), and
 * the answer brings this host's tree (fs.c) up to date: the tree is a cache
 * of the server's namespace, node ids are the server's ids, inode numbers
 * follow them.
 *
 * Other hosts' changes: the FUSE entries and attributes of such a
 * filesystem are never cached (timeouts 0, fz_ops.c), so every path walk is
 * a LOOKUP and every stat a GETATTR that asks the server, and every readdir
 * from its start lists the server's directory. Nothing is pushed to hosts
 * for the namespace (a push lost across a reconnect would leave a stale
 * entry for good); a shrink's pages are taken from every host by the server
 * itself (lock_request, ns.c), so no host reads or returns them again.
 *
 * Requests wait up to pager.deadline, for the connection to come up and for
 * the answer; a connection that goes meanwhile fails them at once (-EIO).
 * Answers come to one reply port of this filesystem, matched to their
 * request by a cookie (the header's access field, echoed by the server).
 *
 * Locking: r->lock guards the port, the pending calls and the counters; it
 * is never held across a send or a wait for the connection. Tree changes
 * take fs->lock; no request is ever made with fs->lock held (a completion on
 * the connection's reader thread may need it).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "clock.h"
#include "emmd.h"
#include "log.h"
#include "ns_wire.h"
#include "port.h"

/* The wire's record (ns_wire.h) from a catalog record, and back. */
static struct emm_ns_rec
to_ns(const struct emm_catalog_rec *r)
{
    struct emm_ns_rec w = {.id = r->id, .size = r->size, .parent = r->parent,
                           .atime_ns = r->atime_ns, .mtime_ns = r->mtime_ns,
                           .ctime_ns = r->ctime_ns, .mode = r->mode, .uid = r->uid,
                           .gid = r->gid, .type = r->type};
    memcpy(w.name, r->name, sizeof(w.name));
    return w;
}

static int
put_rec(void *buf, size_t cap, size_t *pos, const struct emm_catalog_rec *r)
{
    struct emm_ns_rec w = to_ns(r);
    return ns_rec_put(buf, cap, pos, &w);
}

static int
get_rec(const void *buf, size_t cap, size_t *pos, struct emm_catalog_rec *r)
{
    struct emm_ns_rec w;
    int rc = ns_rec_get(buf, cap, pos, &w);
    if (rc == 1) {
        *r = (struct emm_catalog_rec){.id = w.id, .size = w.size, .parent = w.parent,
                                      .atime_ns = w.atime_ns, .mtime_ns = w.mtime_ns,
                                      .ctime_ns = w.ctime_ns, .mode = w.mode, .uid = w.uid,
                                      .gid = w.gid, .type = w.type};
        memcpy(r->name, w.name, sizeof(r->name));
    }
    return rc;
}

struct call {
    LIST_ENTRY(call) link;
    uint32_t cookie;
    int done;
    int err;        /* the server's errno (positive), once done */
    void *data;     /* a copy of the answer's data (free) */
    size_t len;
    uint64_t arg2;
};

struct emmd_rns {
    struct emmd_fs *fs;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC: an answer came */
    struct emm_port *reply; /* receive right: answers */
    struct emm_port *ns;    /* send right to the server's namespace port, or NULL */
    LIST_HEAD(, call) calls;
    uint32_t cookie;
    uint64_t requests, failures, rtt_last_ns, rtt_max_ns, rtt_sum_ns, answered;
};

/* ---- requests ------------------------------------------------------------ */

static void
on_answer(struct emm_port *port, struct emm_msg *m)
{
    struct emmd_rns *r = emm_port_context(port);
    if (m->id != MO_NS_REPLY) {
        emm_warn("fs %s: namespace: unexpected %s on the answer port", r->fs->cfg->name,
                 emm_msg_name(m->id));
        emm_msg_release(m, 0);
        return;
    }
    pthread_mutex_lock(&r->lock);
    struct call *c;
    LIST_FOREACH(c, &r->calls, link)
        if (c->cookie == m->access && !c->done)
            break;
    if (c != NULL) {
        c->err = m->arg >= 0 && m->arg < 4096 ? m->arg : EPROTO;
        c->arg2 = m->arg2;
        if (m->data != NULL && m->length > 0 && m->length <= EMM_MAX_REQUEST_BYTES &&
            (c->data = malloc(m->length)) != NULL) {
            memcpy(c->data, m->data, m->length);
            c->len = m->length;
        } else if (m->data != NULL && m->length > 0) {
            c->err = ENOMEM;
        }
        c->done = 1;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    emm_msg_release(m, 0); /* an answer nobody waits for (timed out): dropped */
}

static void
data_release(struct emm_msg *m, int status)
{
    (void)status;
    free(m->data);
    free(m);
}

/* The namespace port on the current connection (a reference), waiting up to
 * the deadline for one; NULL when none. */
static struct emm_port *
ns_port(struct emmd_rns *r)
{
    pthread_mutex_lock(&r->lock);
    struct emm_port *p = r->ns != NULL ? emm_port_ref(r->ns) : NULL;
    pthread_mutex_unlock(&r->lock);
    if (p != NULL)
        return p;
    if (emmd_pager_object_port(r->fs, MO_NS_PORT_ID, &p) < 0)
        return NULL;
    pthread_mutex_lock(&r->lock);
    if (r->ns == NULL)
        r->ns = emm_port_ref(p);
    pthread_mutex_unlock(&r->lock);
    return p;
}

static void
ns_port_drop(struct emmd_rns *r, struct emm_port *dead)
{
    pthread_mutex_lock(&r->lock);
    struct emm_port *p = r->ns == dead ? r->ns : NULL;
    if (p != NULL)
        r->ns = NULL;
    pthread_mutex_unlock(&r->lock);
    if (p != NULL)
        emm_port_unref(p);
}

/* One request: id with offset, arg, arg2 and a copy of data (len bytes, whole
 * pages, or NULL). 0 and c filled (c->err: the server's answer), or -EIO when
 * the server could not be asked within the deadline. */
static int
rpc(struct emmd_rns *r, uint32_t id, uint64_t offset, int32_t arg, uint64_t arg2,
    const void *data, size_t len, struct call *c)
{
    struct emmd_fs *fs = r->fs;
    uint64_t ms = atomic_load(&fs->deadline_ms);
    if (ms == 0)
        ms = 5000;
    memset(c, 0, sizeof(*c));
    for (int attempt = 0; attempt < 2; attempt++) {
        struct emm_port *p = ns_port(r);
        if (p == NULL)
            break;
        struct emm_msg *m = emm_msg_new(id, offset, len);
        if (m == NULL || (len > 0 && (m->data = malloc(len)) == NULL)) {
            free(m);
            emm_port_unref(p);
            return -ENOMEM;
        }
        if (len > 0) {
            memcpy(m->data, data, len);
            m->release = data_release;
        }
        m->arg = arg;
        m->arg2 = arg2;
        m->reply = emm_port_make_send(r->reply);
        struct emmd_pager_info before;
        emmd_pager_conn_info(fs, &before);
        pthread_mutex_lock(&r->lock);
        c->cookie = m->access = ++r->cookie;
        c->done = 0;
        LIST_INSERT_HEAD(&r->calls, c, link);
        r->requests++;
        pthread_mutex_unlock(&r->lock);
        uint64_t t0 = emm_mono_ns();
        int rc = emm_port_send(p, m);
        if (rc < 0) {
            emm_msg_release(m, rc);
            pthread_mutex_lock(&r->lock);
            LIST_REMOVE(c, link);
            pthread_mutex_unlock(&r->lock);
            ns_port_drop(r, p); /* the connection it was on is gone: the next one's */
            emm_port_unref(p);
            continue;
        }
        emm_port_unref(p);
        /* The answer, the deadline, or the connection going (checked every
         * 100 ms: a dead connection answers nothing). */
        struct timespec until = emm_deadline_after_ms(CLOCK_MONOTONIC, ms);
        int lost = 0;
        pthread_mutex_lock(&r->lock);
        while (!c->done) {
            struct timespec slice = emm_deadline_after_ms(CLOCK_MONOTONIC, 100);
            if (slice.tv_sec > until.tv_sec ||
                (slice.tv_sec == until.tv_sec && slice.tv_nsec > until.tv_nsec))
                slice = until;
            if (pthread_cond_timedwait(&r->cond, &r->lock, &slice) == 0 || c->done)
                continue;
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > until.tv_sec ||
                (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
                break;
            pthread_mutex_unlock(&r->lock);
            struct emmd_pager_info now_info;
            emmd_pager_conn_info(fs, &now_info);
            lost = !now_info.up || now_info.restarts != before.restarts;
            pthread_mutex_lock(&r->lock);
            if (lost && !c->done)
                break;
            lost = 0;
        }
        LIST_REMOVE(c, link);
        int done = c->done;
        if (done) {
            uint64_t dt = emm_mono_ns() - t0;
            r->answered++;
            r->rtt_last_ns = dt;
            r->rtt_sum_ns += dt;
            if (dt > r->rtt_max_ns)
                r->rtt_max_ns = dt;
        } else {
            r->failures++;
        }
        pthread_mutex_unlock(&r->lock);
        if (done)
            return 0;
        emm_err("fs %s: namespace: %s: %s", fs->cfg->name, emm_msg_name(id),
                lost ? "the memory server's connection went" : "no answer within the deadline");
        return -EIO;
    }
    pthread_mutex_lock(&r->lock);
    r->failures++;
    pthread_mutex_unlock(&r->lock);
    emm_err("fs %s: namespace: %s: no memory server within %llu ms", fs->cfg->name,
            emm_msg_name(id), (unsigned long long)ms);
    return -EIO;
}

/* A request that carries names (lookup, remove, rename): at most two. */
static int
rpc_names(struct emmd_rns *r, uint32_t id, uint64_t offset, int32_t arg, uint64_t arg2,
          const char *a, const char *b, struct call *c)
{
    unsigned char buf[NS_PAGE];
    size_t pos = 0;
    memset(buf, 0, sizeof(buf));
    if (ns_name_put(buf, sizeof(buf), &pos, a) < 0 ||
        (b != NULL && ns_name_put(buf, sizeof(buf), &pos, b) < 0))
        return -ENAMETOOLONG;
    return rpc(r, id, offset, arg, arg2, buf, sizeof(buf), c);
}

static int
rpc_rec(struct emmd_rns *r, uint32_t id, uint64_t offset, int32_t arg,
        const struct emm_catalog_rec *rec, struct call *c)
{
    unsigned char buf[NS_PAGE];
    size_t pos = 0;
    memset(buf, 0, sizeof(buf));
    if (put_rec(buf, sizeof(buf), &pos, rec) < 0)
        return -ENAMETOOLONG;
    return rpc(r, id, offset, arg, 0, buf, sizeof(buf), c);
}

/* The record an answer carries: 0, or -EPROTO (logged once per answer). */
static int
answer_rec(struct emmd_rns *r, const struct call *c, struct emm_catalog_rec *rec)
{
    size_t pos = 0;
    if (c->data == NULL || get_rec(c->data, c->len, &pos, rec) != 1) {
        emm_err("fs %s: namespace: the memory server's answer has no valid record",
                r->fs->cfg->name);
        return -EPROTO;
    }
    return 0;
}

/* ---- the tree as the server says it is (fs->lock held) ------------------- */

static void
refresh(struct emmd_fs *fs, struct emmd_node *n, const struct emm_catalog_rec *rec)
{
    (void)fs;
    n->rec.mode = rec->mode;
    n->rec.uid = rec->uid;
    n->rec.gid = rec->gid;
    n->rec.atime_ns = rec->atime_ns;
    n->rec.mtime_ns = rec->mtime_ns;
    n->rec.ctime_ns = rec->ctime_ns;
    if (emmd_node_is_dir(n))
        return;
    n->rec.size = rec->size;
    n->rns_size = rec->size;
    /* Another host changed the size: the kernel's object follows. Pages past
     * a shrink were taken from this host by the server already. */
    if (n->vm != NULL && vm_object_size(n->vm) != rec->size)
        vm_object_set_size(n->vm, rec->size);
}

/* dir/name is rec (NULL: absent) at the server. The node, or NULL. */
static struct emmd_node *
sync_entry(struct emmd_fs *fs, struct emmd_node *dir, const char *name,
           const struct emm_catalog_rec *rec)
{
    struct emmd_node *cur = emmd_node_lookup(fs, dir, name);
    if (rec == NULL || (cur != NULL && cur->rec.id != rec->id) ||
        (cur != NULL && cur->rec.type != rec->type)) {
        if (cur != NULL)
            emmd_node_gone(fs, cur); /* may drop fs->lock */
        if (rec == NULL)
            return NULL;
        cur = emmd_node_lookup(fs, dir, name);
    }
    if (cur == NULL) {
        struct emmd_node *n = emmd_node_by_ino(fs, rec->id + 1);
        for (struct emmd_node *a = dir; n != NULL && a != NULL; a = a->parent)
            if (a == n)
                return NULL; /* this host's view of dir is stale (moved into n
                                elsewhere): no loop; the walk from the root
                                mends it, lookup by lookup */
        if (n != NULL && n->rec.type == rec->type) {
            if (emmd_node_place(fs, n, dir, name) < 0)
                return NULL; /* renamed elsewhere: moved here */
            cur = n;
        } else if (n == NULL && emmd_node_adopt(fs, dir, rec, &cur) < 0) {
            return NULL;
        }
    }
    if (cur != NULL)
        refresh(fs, cur, rec);
    return cur;
}

/* ---- the operations ------------------------------------------------------ */

int
emmd_rns_create(struct emmd_fs *fs, struct emmd_node *dir, const char *name, uint32_t type,
                uint32_t mode, uint32_t uid, uint32_t gid, struct emmd_node **out)
{
    struct emm_catalog_rec want = {.type = type, .mode = mode & 07777, .uid = uid, .gid = gid};
    snprintf(want.name, sizeof(want.name), "%s", name);
    if (dir->rec.mode & S_ISGID) { /* BSD group semantics, as fs.c */
        want.gid = dir->rec.gid;
        if (type == EMM_CAT_DIR)
            want.mode |= S_ISGID;
    }
    uint64_t parent = dir->rec.id;
    struct call c;
    pthread_mutex_unlock(&fs->lock);
    int rc = rpc_rec(fs->rns, MO_NS_CREATE, parent, 0, &want, &c);
    struct emm_catalog_rec rec;
    if (rc == 0 && c.err == 0)
        rc = answer_rec(fs->rns, &c, &rec);
    pthread_mutex_lock(&fs->lock);
    if (rc == 0 && c.err != 0)
        rc = -c.err;
    free(c.data);
    if (rc < 0)
        return rc;
    struct emmd_node *n = sync_entry(fs, dir, name, &rec);
    if (n == NULL)
        return -ENOMEM;
    *out = n;
    return 0;
}

int
emmd_rns_remove(struct emmd_fs *fs, struct emmd_node *dir, const char *name, int want_dir)
{
    uint64_t parent = dir->rec.id;
    struct call c;
    pthread_mutex_unlock(&fs->lock);
    int rc = rpc_names(fs->rns, MO_NS_REMOVE, parent, want_dir != 0, 0, name, NULL, &c);
    pthread_mutex_lock(&fs->lock);
    free(c.data);
    if (rc < 0)
        return rc;
    if (c.err == 0 || c.err == ENOENT)
        sync_entry(fs, dir, name, NULL); /* gone there: gone here */
    return -c.err;
}

int
emmd_rns_rename(struct emmd_fs *fs, struct emmd_node *dir, const char *name,
                struct emmd_node *newdir, const char *newname, unsigned flags)
{
    uint64_t from = dir->rec.id, to = newdir->rec.id;
    /* The wire's flags are msg.h's (1: no replace, 2: exchange), as Linux's. */
    int32_t wf = ((flags & RENAME_NOREPLACE) ? 1 : 0) | ((flags & RENAME_EXCHANGE) ? 2 : 0);
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
        return -EINVAL;
    struct call c;
    pthread_mutex_unlock(&fs->lock);
    int rc = rpc_names(fs->rns, MO_NS_RENAME, from, wf, to, name, newname, &c);
    pthread_mutex_lock(&fs->lock);
    free(c.data);
    if (rc < 0)
        return rc;
    if (c.err != 0)
        return -c.err;
    struct emmd_node *n = emmd_node_lookup(fs, dir, name);
    struct emmd_node *t = emmd_node_lookup(fs, newdir, newname);
    if (flags & RENAME_EXCHANGE) {
        if (n != NULL)
            emmd_node_place(fs, n, newdir, newname);
        if (t != NULL && t != n)
            emmd_node_place(fs, t, dir, name);
        return 0;
    }
    if (t != NULL && t != n) {
        emmd_node_gone(fs, t); /* may drop fs->lock */
        n = emmd_node_lookup(fs, dir, name);
    }
    if (n != NULL)
        emmd_node_place(fs, n, newdir, newname);
    return 0;
}

int
emmd_rns_lookup(struct emmd_fs *fs, fuse_ino_t parent, const char *name)
{
    struct call c;
    int rc = rpc_names(fs->rns, MO_NS_LOOKUP, parent - 1, 0, 0, name, NULL, &c);
    if (rc == -ENAMETOOLONG)
        return rc;
    struct emm_catalog_rec rec;
    if (rc == 0 && c.err == 0)
        rc = answer_rec(fs->rns, &c, &rec);
    free(c.data);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = emmd_node_by_ino(fs, parent);
    if (d != NULL && emmd_node_is_dir(d))
        sync_entry(fs, d, name, c.err == 0 ? &rec : NULL);
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

int
emmd_rns_getattr(struct emmd_fs *fs, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return 0; /* the root's attributes are this host's (root-uid, ...) */
    struct call c;
    int rc = rpc(fs->rns, MO_NS_GETATTR, ino - 1, 0, 0, NULL, 0, &c);
    struct emm_catalog_rec rec;
    if (rc == 0 && c.err == 0)
        rc = answer_rec(fs->rns, &c, &rec);
    free(c.data);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    if (n != NULL && c.err == ENOENT)
        emmd_node_gone(fs, n); /* unlinked by another host; open here, it stays */
    else if (n != NULL && c.err == 0)
        refresh(fs, n, &rec);
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

struct rec_list {
    struct emm_catalog_rec *v;
    size_t n, cap;
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int
emmd_rns_readdir(struct emmd_fs *fs, fuse_ino_t ino)
{
    struct rec_list l = {0};
    uint64_t from = 0;
    int rc = 0, err = 0;
    for (int rounds = 0; rounds < 4096; rounds++) {
        struct call c;
        rc = rpc(fs->rns, MO_NS_READDIR, ino - 1, 0, from, NULL, 0, &c);
        if (rc < 0)
            break;
        err = c.err;
        size_t pos = 0;
        struct emm_catalog_rec rec;
        int got;
        while (err == 0 && (got = get_rec(c.data, c.len, &pos, &rec)) != 0) {
            if (got < 0) {
                emm_err("fs %s: namespace: a bad record in a readdir answer", fs->cfg->name);
                err = EPROTO;
                break;
            }
            if (l.n == l.cap) {
                size_t nc = l.cap ? l.cap * 2 : 64;
                struct emm_catalog_rec *nv = realloc(l.v, nc * sizeof(*nv));
                if (nv == NULL) {
                    err = ENOMEM;
                    break;
                }
                l.v = nv;
                l.cap = nc;
            }
            l.v[l.n++] = rec;
        }
        free(c.data);
        if (err != 0 || c.arg2 == 0 || c.arg2 <= from)
            break;
        from = c.arg2;
    }
    if (rc < 0 || (err != 0 && err != ENOENT)) {
        free(l.v);
        return rc < 0 ? rc : -err;
    }
    uint64_t *ids = malloc((l.n + 1) * sizeof(*ids));
    if (ids == NULL) {
        free(l.v);
        return -ENOMEM;
    }
    for (size_t i = 0; i < l.n; i++)
        ids[i] = l.v[i].id;
    qsort(ids, l.n, sizeof(*ids), cmp_u64);
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = emmd_node_by_ino(fs, ino);
    if (d != NULL && emmd_node_is_dir(d) && err == 0) {
        /* Entries the server no longer has here go; one at a time (gone may
         * drop fs->lock), looked up again each round. */
        for (int again = 1; again;) {
            again = 0;
            for (size_t i = 0; i < d->nkids; i++) {
                uint64_t id = d->kids[i]->rec.id;
                if (bsearch(&id, ids, l.n, sizeof(*ids), cmp_u64) == NULL) {
                    emmd_node_gone(fs, d->kids[i]);
                    again = 1;
                    break;
                }
            }
        }
        for (size_t i = 0; i < l.n; i++)
            sync_entry(fs, d, l.v[i].name, &l.v[i]);
    }
    pthread_mutex_unlock(&fs->lock);
    free(ids);
    free(l.v);
    return 0;
}

int
emmd_rns_setattr(struct emmd_fs *fs, struct emmd_node *n, int to_set, uint64_t size)
{
    int32_t mask = 0;
    if (to_set & FUSE_SET_ATTR_SIZE)
        mask |= MO_NS_SET_SIZE;
    if (to_set & FUSE_SET_ATTR_MODE)
        mask |= MO_NS_SET_MODE;
    if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
        mask |= MO_NS_SET_OWNER;
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                  FUSE_SET_ATTR_MTIME_NOW))
        mask |= MO_NS_SET_TIMES;
    if (mask == 0)
        return 0;
    pthread_mutex_lock(&fs->lock);
    struct emm_catalog_rec want = n->rec;
    uint64_t id = n->rec.id;
    pthread_mutex_unlock(&fs->lock);
    want.size = size;
    struct call c;
    int rc = rpc_rec(fs->rns, MO_NS_SETATTR, id, mask, &want, &c);
    struct emm_catalog_rec rec;
    if (rc == 0 && c.err == 0 && answer_rec(fs->rns, &c, &rec) == 0) {
        pthread_mutex_lock(&fs->lock);
        n->rns_size = rec.size;
        pthread_mutex_unlock(&fs->lock);
    }
    free(c.data);
    return rc < 0 ? rc : -c.err;
}

int
emmd_rns_grow(struct emmd_fs *fs, struct emmd_node *n, uint64_t end)
{
    pthread_mutex_lock(&fs->lock);
    int known = end <= n->rns_size;
    struct emm_catalog_rec want = n->rec;
    uint64_t id = n->rec.id;
    pthread_mutex_unlock(&fs->lock);
    if (known)
        return 0;
    want.size = end;
    struct call c;
    int rc = rpc_rec(fs->rns, MO_NS_SETATTR, id, MO_NS_SET_GROW, &want, &c);
    struct emm_catalog_rec rec;
    if (rc == 0 && c.err == 0 && answer_rec(fs->rns, &c, &rec) == 0) {
        pthread_mutex_lock(&fs->lock);
        if (rec.size > n->rns_size)
            n->rns_size = rec.size;
        pthread_mutex_unlock(&fs->lock);
    }
    free(c.data);
    return rc < 0 ? rc : -c.err;
}

/* ---- emmctl memserver FS --------------------------------------------------- */

int
emmd_rns_stats(struct emmd_fs *fs, FILE *out)
{
    struct emmd_rns *r = fs->rns;
    struct call c;
    int rc = rpc(r, MO_NS_STATS, 0, 0, 0, NULL, 0, &c);
    if (rc < 0 || c.err != 0) {
        fprintf(out, "fs %s: the memory server did not answer: %s\n", fs->cfg->name,
                strerror(rc < 0 ? -rc : c.err));
        free(c.data);
        return rc < 0 ? rc : -c.err;
    }
    /* The server's text; its "object.ID:" lines get this host's path. */
    const char *t = c.data;
    size_t len = strnlen(t, c.len);
    while (len > 0) {
        const char *nl = memchr(t, '\n', len);
        size_t ll = nl != NULL ? (size_t)(nl - t) : len;
        unsigned long long id;
        int off = 0;
        if (sscanf(t, "object.%llu:%n", &id, &off) == 1 && off > 0) {
            char path[4096] = "";
            pthread_mutex_lock(&fs->lock);
            struct emmd_node *n = emmd_node_by_ino(fs, (fuse_ino_t)id + 1);
            if (n == NULL || emmd_node_path(fs, n, path, sizeof(path)) < 0)
                snprintf(path, sizeof(path), "(id %llu)", id);
            pthread_mutex_unlock(&fs->lock);
            fprintf(out, "held.%s:%.*s\n", path, (int)(ll - (size_t)off), t + off);
        } else {
            fprintf(out, "%.*s\n", (int)ll, t);
        }
        if (nl == NULL)
            break;
        len -= ll + 1;
        t = nl + 1;
    }
    free(c.data);
    pthread_mutex_lock(&r->lock);
    uint64_t req = r->requests, fail = r->failures, ans = r->answered;
    uint64_t last = r->rtt_last_ns, max = r->rtt_max_ns, sum = r->rtt_sum_ns;
    pthread_mutex_unlock(&r->lock);
    fprintf(out, "\n# This host (emmd, fs %s)\nserver:%s\nns_requests:%" PRIu64
                 "\nns_failures:%" PRIu64 "\nrtt_last_us:%" PRIu64 "\nrtt_avg_us:%" PRIu64
                 "\nrtt_max_us:%" PRIu64 "\n",
            fs->cfg->name, fs->cfg->pager_addr, req, fail, last / 1000,
            ans ? sum / ans / 1000 : 0, max / 1000);
    /* What this host's kernel holds of each object it maps. */
    pthread_mutex_lock(&fs->lock);
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n != NULL; n = n->next_id) {
            if (n->vm == NULL)
                continue;
            struct vm_object_info info;
            vm_object_info(n->vm, &info);
            char path[4096];
            if (emmd_node_path(fs, n, path, sizeof(path)) < 0 || n->unlinked)
                snprintf(path, sizeof(path), "(id %llu)", (unsigned long long)n->rec.id);
            fprintf(out, "resident.%s:pages=%" PRIu64 " dirty=%" PRIu64 "\n", path,
                    info.resident, info.dirty);
        }
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

/* ---- life ---------------------------------------------------------------- */

int
emmd_rns_start(struct emmd_fs *fs)
{
    struct emmd_rns *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->fs = fs;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    LIST_INIT(&r->calls);
    int rc = emm_port_create("namespace answers", on_answer, r, NULL, &r->reply);
    if (rc < 0) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return rc;
    }
    fs->rns = r;
    emm_info("fs %s: the namespace is the memory server's at %s", fs->cfg->name,
             fs->cfg->pager_addr);
    return 0;
}

void
emmd_rns_stop(struct emmd_fs *fs)
{
    struct emmd_rns *r = fs->rns;
    if (r == NULL)
        return;
    if (r->ns != NULL)
        emm_port_unref(r->ns);
    emm_port_destroy(r->reply);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
    fs->rns = NULL;
}
