/*
 * ns.c - emm-memserver's namespace: the names, sizes, attributes and
 * directories of the objects it serves, which every host sees alike (issue
 * 12 §1). Hosts ask for them with the MO_NS_* messages (msg.h,
 * docs/protocol.md) on a namespace port the stream's lookup gives for
 * MO_NS_PORT_ID (one per host, as object ports are); every request is
 * answered by one MO_NS_REPLY. Object ids are the server's: a host's inode
 * is the server's id, so hosts never need to agree on anything themselves.
 *
 * Storage: an emmd catalog (services/emmd/catalog.c) in the server's own
 * backend stack: the lmdb environment (lmdb, zstd:lmdb), the stack's
 * namespace store (a plug-in with meta_update/meta_scan, as rados), else
 * STATE-DIR/catalog for another persistent stack, in memory for `memory`.
 * Every change is durable before its answer is sent. The records are also
 * kept in an array here (lookups scan it: fine for the thousands of shared
 * objects a memserver serves, not for millions).
 *
 * Size changes are coherent: a shrink (truncate, unlink, a rename over a
 * file) takes the pages past the end from every host (msrv_object_cut), so
 * no host reads or returns them again; growth needs nothing from the others.
 *
 * Locking: ns->lock guards the array and orders catalog updates; it is taken
 * before srv->lock and objects' locks (msrv_object_cut), never after.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_host.h"
#include "catalog.h"
#include "clock.h"
#include "log.h"
#include "memserver.h"
#include "msg.h"
#include "ns_wire.h"
#include "port.h"

#define PS 4096u
#define RENAME_NOREPLACE_ (1u << 0)
#define RENAME_EXCHANGE_  (1u << 1)

struct msrv_ns {
    struct msrv *srv;
    struct emm_catalog *cat;
    pthread_mutex_t lock;
    struct emm_catalog_rec *recs;
    size_t n, cap;
    char where[PATH_MAX + 32];
};

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

static size_t
rec_size(const struct emm_catalog_rec *r)
{
    struct emm_ns_rec w = to_ns(r);
    return ns_rec_size(&w);
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

/* ---- the array ----------------------------------------------------------- */

static struct emm_catalog_rec *
by_id(struct msrv_ns *ns, uint64_t id)
{
    for (size_t i = 0; i < ns->n; i++)
        if (ns->recs[i].id == id)
            return &ns->recs[i];
    return NULL;
}

static struct emm_catalog_rec *
by_name(struct msrv_ns *ns, uint64_t parent, const char *name)
{
    for (size_t i = 0; i < ns->n; i++)
        if (ns->recs[i].parent == parent && ns->recs[i].id != EMM_CATALOG_ROOT &&
            strcmp(ns->recs[i].name, name) == 0)
            return &ns->recs[i];
    return NULL;
}

static int
has_kids(struct msrv_ns *ns, uint64_t id)
{
    for (size_t i = 0; i < ns->n; i++)
        if (ns->recs[i].parent == id && ns->recs[i].id != id)
            return 1;
    return 0;
}

static int
arr_put(struct msrv_ns *ns, const struct emm_catalog_rec *r)
{
    struct emm_catalog_rec *x = by_id(ns, r->id);
    if (x != NULL) {
        *x = *r;
        return 0;
    }
    if (ns->n == ns->cap) {
        size_t nc = ns->cap ? ns->cap * 2 : 64;
        struct emm_catalog_rec *nr = realloc(ns->recs, nc * sizeof(*nr));
        if (nr == NULL)
            return -ENOMEM;
        ns->recs = nr;
        ns->cap = nc;
    }
    ns->recs[ns->n++] = *r;
    return 0;
}

static void
arr_del(struct msrv_ns *ns, uint64_t id)
{
    struct emm_catalog_rec *x = by_id(ns, id);
    if (x != NULL)
        *x = ns->recs[--ns->n];
}

/* Applies puts and dels to the catalog (durable) and then to the array. */
static int
commit(struct msrv_ns *ns, const struct emm_catalog_rec *puts, size_t nput, const uint64_t *dels,
       size_t ndel)
{
    int rc = emm_catalog_update(ns->cat, puts, nput, dels, ndel);
    if (rc < 0) {
        emm_err("namespace (%s): update failed: %s", ns->where, strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < ndel; i++)
        arr_del(ns, dels[i]);
    for (size_t i = 0; i < nput; i++)
        if (arr_put(ns, &puts[i]) < 0)
            return -ENOMEM;
    return 0;
}

static int
load(void *arg, const struct emm_catalog_rec *rec)
{
    return arr_put(arg, rec);
}

int
msrv_ns_open(struct msrv *srv, const char *state_dir, char *err, size_t errlen)
{
    struct msrv_ns *ns = calloc(1, sizeof(*ns));
    if (ns == NULL)
        return -ENOMEM;
    ns->srv = srv;
    pthread_mutex_init(&ns->lock, NULL);
    struct emm_backend *be = srv->backend;
    struct MDB_env *env = emm_backend_lmdb_env(be);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/catalog", state_dir);
    int rc;
    if (emm_backend_has_meta(be)) {
        snprintf(ns->where, sizeof(ns->where), "the backend's namespace store");
        rc = emm_catalog_open_backend(be, "memserver", &ns->cat);
    } else if (env != NULL) {
        snprintf(ns->where, sizeof(ns->where), "the lmdb environment");
        rc = emm_catalog_open_env(env, &ns->cat);
    } else if (be->flags & EMM_BACKEND_PERSISTENT) {
        snprintf(ns->where, sizeof(ns->where), "%s", dir);
        rc = emm_catalog_open(dir, &ns->cat);
    } else {
        snprintf(ns->where, sizeof(ns->where), "memory (backend not persistent)");
        rc = emm_catalog_open(NULL, &ns->cat);
    }
    if (rc == 0)
        rc = emm_catalog_scan(ns->cat, load, ns);
    if (rc == 0 && by_id(ns, EMM_CATALOG_ROOT) == NULL) {
        struct emm_catalog_rec root = {.id = EMM_CATALOG_ROOT, .parent = EMM_CATALOG_ROOT,
                                       .type = EMM_CAT_DIR, .mode = 0755,
                                       .uid = (uint32_t)geteuid(), .gid = (uint32_t)getegid()};
        root.atime_ns = root.mtime_ns = root.ctime_ns = emm_real_ns();
        rc = commit(ns, &root, 1, NULL, 0);
    }
    if (rc < 0) {
        snprintf(err, errlen, "namespace in %s: %s", ns->where, strerror(-rc));
        if (ns->cat != NULL)
            emm_catalog_close(ns->cat);
        free(ns->recs);
        free(ns);
        return rc;
    }
    emm_notice("emm-memserver: namespace in %s: %zu entries", ns->where, ns->n - 1);
    srv->ns = ns;
    return 0;
}

void
msrv_ns_close(struct msrv *srv)
{
    struct msrv_ns *ns = srv->ns;
    if (ns == NULL)
        return;
    emm_catalog_sync(ns->cat);
    emm_catalog_close(ns->cat);
    pthread_mutex_destroy(&ns->lock);
    free(ns->recs);
    free(ns);
    srv->ns = NULL;
}

/* ---- requests ------------------------------------------------------------ */

struct answer {
    int err;          /* positive errno, 0 ok */
    void *data;       /* ns_buf, or NULL */
    size_t len, pos;  /* its size (whole pages), bytes used */
    uint64_t arg2;
};

static void
answer_rec(struct answer *a, const struct emm_catalog_rec *r)
{
    a->data = ns_buf(NS_REC_FIXED + EMM_NAME_MAX + 8, &a->len);
    if (a->data == NULL || put_rec(a->data, a->len, &a->pos, r) < 0)
        a->err = ENOMEM;
}

static struct emm_catalog_rec *
dir_rec(struct msrv_ns *ns, uint64_t id, int *err)
{
    struct emm_catalog_rec *d = by_id(ns, id);
    if (d == NULL)
        *err = ENOENT;
    else if (d->type != EMM_CAT_DIR)
        *err = ENOTDIR;
    return *err ? NULL : d;
}

/* A file's pages after size are gone, on every host and in the store. */
static void
cut_after(struct msrv_ns *ns, const struct emm_catalog_rec *r, uint64_t size)
{
    if (r->type != EMM_CAT_FILE)
        return;
    uint64_t first = (size + PS - 1) / PS;
    uint32_t tail = size % PS ? (uint32_t)(PS - size % PS) : 0;
    msrv_object_cut(ns->srv, r->id, first, tail);
}

static void
do_lookup(struct msrv_ns *ns, const struct emm_msg *m, struct answer *a)
{
    char name[EMM_NAME_MAX + 1];
    size_t pos = 0;
    if (m->data == NULL || ns_name_get(m->data, m->length, &pos, name) < 0) {
        a->err = EINVAL;
        return;
    }
    if (dir_rec(ns, m->offset, &a->err) == NULL)
        return;
    struct emm_catalog_rec *r = by_name(ns, m->offset, name);
    if (r == NULL)
        a->err = ENOENT;
    else
        answer_rec(a, r);
}

static void
do_getattr(struct msrv_ns *ns, const struct emm_msg *m, struct answer *a)
{
    struct emm_catalog_rec *r = by_id(ns, m->offset);
    if (r == NULL)
        a->err = ENOENT;
    else
        answer_rec(a, r);
}

static int
cmp_id(const void *x, const void *y)
{
    uint64_t a = ((const struct emm_catalog_rec *)x)->id, b = ((const struct emm_catalog_rec *)y)->id;
    return a < b ? -1 : a > b;
}

static void
do_readdir(struct msrv_ns *ns, const struct emm_msg *m, struct answer *a)
{
    if (dir_rec(ns, m->offset, &a->err) == NULL)
        return;
    size_t k = 0;
    struct emm_catalog_rec *v = malloc((ns->n + 1) * sizeof(*v));
    if (v == NULL) {
        a->err = ENOMEM;
        return;
    }
    for (size_t i = 0; i < ns->n; i++)
        if (ns->recs[i].parent == m->offset && ns->recs[i].id != EMM_CATALOG_ROOT &&
            ns->recs[i].id >= m->arg2)
            v[k++] = ns->recs[i];
    qsort(v, k, sizeof(*v), cmp_id);
    size_t bytes = 0;
    for (size_t i = 0; i < k; i++)
        bytes += rec_size(&v[i]);
    if (bytes > EMM_MAX_REQUEST_BYTES)
        bytes = EMM_MAX_REQUEST_BYTES;
    a->data = ns_buf(bytes, &a->len);
    if (a->data == NULL) {
        a->err = ENOMEM;
        free(v);
        return;
    }
    for (size_t i = 0; i < k; i++)
        if (put_rec(a->data, a->len, &a->pos, &v[i]) < 0) {
            a->arg2 = v[i].id; /* the rest: ask again from there */
            break;
        }
    free(v);
}

static void
do_create(struct msrv_ns *ns, const struct emm_msg *m, struct answer *a)
{
    struct emm_catalog_rec want;
    size_t pos = 0;
    if (m->data == NULL || get_rec(m->data, m->length, &pos, &want) != 1 ||
        want.name[0] == '\0') {
        a->err = EINVAL;
        return;
    }
    struct emm_catalog_rec *d = dir_rec(ns, m->offset, &a->err);
    if (d == NULL)
        return;
    if (by_name(ns, m->offset, want.name) != NULL) {
        a->err = EEXIST;
        return;
    }
    struct emm_catalog_rec puts[2] = {{0}, *d};
    struct emm_catalog_rec *r = &puts[0];
    int rc = emm_catalog_new_id(ns->cat, &r->id);
    if (rc < 0) {
        a->err = -rc;
        return;
    }
    snprintf(r->name, sizeof(r->name), "%s", want.name);
    r->type = want.type;
    r->mode = want.mode & 07777;
    r->uid = want.uid;
    r->gid = want.gid;
    r->parent = m->offset;
    r->size = 0;
    r->atime_ns = r->mtime_ns = r->ctime_ns = emm_real_ns();
    puts[1].mtime_ns = puts[1].ctime_ns = r->ctime_ns;
    rc = commit(ns, puts, 2, NULL, 0);
    if (rc < 0)
        a->err = -rc;
    else
        answer_rec(a, r);
}

static void
do_remove(struct msrv_ns *ns, const struct emm_msg *m, struct answer *a)
{
    char name[EMM_NAME_MAX + 1];
    size_t pos = 0;
    if (m->data == NULL || ns_name_get(m->data, m->length, &pos, name) < 0) {
        a->err = EINVAL;
        return;
    }
    struct emm_catalog_rec *d = dir_rec(ns, m->offset, &a->err);
    if (d == NULL)
        return;
    struct emm_catalog_rec *x = by_name(ns, m->offset, name);
    if (x == NULL) {
        a->err = ENOENT;
        return;
    }
    int want_dir = m->arg != 0, is_dir = x->type == EMM_CAT_DIR;
    if (want_dir != is_dir) {
        a->err = want_dir ? ENOTDIR : EISDIR;
        return;
    }
    if (is_dir && has_kids(ns, x->id)) {
        a->err = ENOTEMPTY;
        return;
    }
    struct emm_catalog_rec gone = *x, pr = *d;
    pr.mtime_ns = pr.ctime_ns = emm_real_ns();
    int rc = commit(ns, &pr, 1, &gone.id, 1);
    if (rc < 0) {
        a->err = -rc;
        return;
    }
    cut_after(ns, &gone, 0); /* its pages go, from every host too */
}

/* a is b or inside it. */
static int
is_within(struct msrv_ns *ns, uint64_t a, uint64_t b)
{
    for (size_t steps = 0; steps <= ns->n; steps++) {
        if (a == b)
            return 1;
        if (a == EMM_CATALOG_ROOT)
            return 0;
        struct emm_catalog_rec *r = by_id(ns, a);
        if (r == NULL)
            return 0;
        a = r->parent;
    }
    return 0;
}

static void
rs_add(struct emm_catalog_rec *puts, size_t *n, const struct emm_catalog_rec *r)
{
    for (size_t i = 0; i < *n; i++)
        if (puts[i].id == r->id) {
            puts[i] = *r;
            return;
        }
    puts[(*n)++] = *r;
}

static void
do_rename(struct msrv_ns *ns, const struct emm_msg *m, struct answer *a)
{
    char name[EMM_NAME_MAX + 1], newname[EMM_NAME_MAX + 1];
    size_t pos = 0;
    unsigned flags = (unsigned)m->arg;
    if (m->data == NULL || ns_name_get(m->data, m->length, &pos, name) < 0 ||
        ns_name_get(m->data, m->length, &pos, newname) < 0 ||
        (flags & ~(RENAME_NOREPLACE_ | RENAME_EXCHANGE_)) ||
        flags == (RENAME_NOREPLACE_ | RENAME_EXCHANGE_)) {
        a->err = EINVAL;
        return;
    }
    struct emm_catalog_rec *d = dir_rec(ns, m->offset, &a->err);
    struct emm_catalog_rec *nd = d != NULL ? dir_rec(ns, m->arg2, &a->err) : NULL;
    if (nd == NULL)
        return;
    struct emm_catalog_rec *x = by_name(ns, m->offset, name);
    struct emm_catalog_rec *t = by_name(ns, m->arg2, newname);
    if (x == NULL || ((flags & RENAME_EXCHANGE_) && t == NULL)) {
        a->err = ENOENT;
        return;
    }
    if (t != NULL && (flags & RENAME_NOREPLACE_)) {
        a->err = EEXIST;
        return;
    }
    if (t == x)
        return;
    if ((x->type == EMM_CAT_DIR && is_within(ns, m->arg2, x->id)) ||
        ((flags & RENAME_EXCHANGE_) && t->type == EMM_CAT_DIR && is_within(ns, m->offset, t->id))) {
        a->err = EINVAL;
        return;
    }
    if (t != NULL && !(flags & RENAME_EXCHANGE_)) {
        if (x->type == EMM_CAT_DIR && t->type != EMM_CAT_DIR)
            a->err = ENOTDIR;
        else if (x->type != EMM_CAT_DIR && t->type == EMM_CAT_DIR)
            a->err = EISDIR;
        else if (t->type == EMM_CAT_DIR && has_kids(ns, t->id))
            a->err = ENOTEMPTY;
        if (a->err)
            return;
    }
    int64_t now = emm_real_ns();
    struct emm_catalog_rec puts[4];
    size_t n = 0;
    struct emm_catalog_rec r = *x;
    r.parent = m->arg2;
    snprintf(r.name, sizeof(r.name), "%s", newname);
    r.ctime_ns = now;
    rs_add(puts, &n, &r);
    if (t != NULL && (flags & RENAME_EXCHANGE_)) {
        struct emm_catalog_rec rt = *t;
        rt.parent = m->offset;
        snprintf(rt.name, sizeof(rt.name), "%s", name);
        rt.ctime_ns = now;
        rs_add(puts, &n, &rt);
    }
    struct emm_catalog_rec d1 = *d, d2 = *nd;
    d1.mtime_ns = d1.ctime_ns = d2.mtime_ns = d2.ctime_ns = now;
    rs_add(puts, &n, &d1);
    rs_add(puts, &n, &d2);
    int replace = t != NULL && !(flags & RENAME_EXCHANGE_);
    struct emm_catalog_rec gone = replace ? *t : r;
    int rc = commit(ns, puts, n, &gone.id, replace ? 1 : 0);
    if (rc < 0) {
        a->err = -rc;
        return;
    }
    if (replace)
        cut_after(ns, &gone, 0);
}

static void
do_setattr(struct msrv_ns *ns, const struct emm_msg *m, struct answer *a)
{
    struct emm_catalog_rec want;
    size_t pos = 0;
    unsigned mask = (unsigned)m->arg;
    if (m->data == NULL || get_rec(m->data, m->length, &pos, &want) != 1) {
        a->err = EINVAL;
        return;
    }
    struct emm_catalog_rec *x = by_id(ns, m->offset);
    if (x == NULL) {
        a->err = ENOENT;
        return;
    }
    if ((mask & (MO_NS_SET_SIZE | MO_NS_SET_GROW)) && x->type == EMM_CAT_DIR) {
        a->err = EISDIR;
        return;
    }
    if ((mask & (MO_NS_SET_SIZE | MO_NS_SET_GROW)) && want.size > (UINT64_C(1) << 52)) {
        a->err = EFBIG;
        return;
    }
    struct emm_catalog_rec r = *x;
    uint64_t old = r.size;
    int64_t now = emm_real_ns();
    if (mask & MO_NS_SET_SIZE)
        r.size = want.size;
    if ((mask & MO_NS_SET_GROW) && want.size > r.size)
        r.size = want.size;
    if (r.size != old)
        r.mtime_ns = now;
    if (mask & MO_NS_SET_MODE)
        r.mode = want.mode & 07777;
    if (mask & MO_NS_SET_OWNER) {
        r.uid = want.uid;
        r.gid = want.gid;
    }
    if (mask & MO_NS_SET_TIMES) {
        r.atime_ns = want.atime_ns;
        r.mtime_ns = want.mtime_ns;
    }
    if (mask & ~(unsigned)MO_NS_SET_GROW)
        r.ctime_ns = now;
    if (memcmp(&r, x, sizeof(r)) != 0) {
        int rc = commit(ns, &r, 1, NULL, 0);
        if (rc < 0) {
            a->err = -rc;
            return;
        }
    }
    if (r.size < old)
        cut_after(ns, &r, r.size);
    answer_rec(a, &r);
}

static void
do_stats(struct msrv_ns *ns, struct msrv_host *h, struct answer *a)
{
    struct msrv *srv = ns->srv;
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    if (f == NULL) {
        a->err = ENOMEM;
        return;
    }
    unsigned connected = 0;
    pthread_mutex_lock(&srv->lock);
    for (unsigned i = 0; i < MSRV_MAX_HOSTS; i++)
        connected += srv->hosts[i] != NULL && !srv->hosts[i]->dead;
    pthread_mutex_unlock(&srv->lock);
    uint64_t files = 0, dirs = 0, bytes = 0;
    for (size_t i = 0; i < ns->n; i++) {
        if (ns->recs[i].type == EMM_CAT_DIR)
            dirs++;
        else
            files++, bytes += ns->recs[i].size;
    }
#define ST(x) (unsigned long long)atomic_load(&srv->st.x)
    fprintf(f, "# Memserver\nversion:%s\nhosts_connected:%u\nhosts_accepted:%llu\n"
               "hosts_refused:%llu\nhosts_lost:%llu\n",
            EMM_VERSION, connected, ST(hosts_accepted), ST(hosts_refused), ST(hosts_lost));
    fprintf(f, "namespace:%s\nobjects:%llu\ndirectories:%llu\nobject_bytes:%llu\n", ns->where,
            (unsigned long long)files, (unsigned long long)dirs - 1, (unsigned long long)bytes);
    fprintf(f, "pages_supplied:%llu\npages_stored:%llu\ninvalidations:%llu\ngrants:%llu\n"
               "pages_dropped:%llu\nstale_returns:%llu\nbad_messages:%llu\n",
            ST(pages_supplied), ST(pages_stored), ST(revokes), ST(grants), ST(drops),
            ST(stale_returns), ST(bad_messages));
    static const char *const names[8] = {"lookup", "readdir", "create", "remove",
                                         "rename", "setattr", "getattr", "stats"};
    for (unsigned i = 0; i < 8; i++)
        fprintf(f, "ns_%s:%llu\n", names[i], ST(ns_ops[i]));
    fprintf(f, "ns_errors:%llu\n", ST(ns_errors));
#undef ST
    msrv_objects_report(srv, h->index, f);
    fclose(f);
    a->data = ns_buf(tlen + 1, &a->len);
    if (a->data == NULL || a->len > EMM_MAX_REQUEST_BYTES) {
        a->err = a->data == NULL ? ENOMEM : EFBIG;
    } else {
        memcpy(a->data, text, tlen);
        a->pos = tlen;
    }
    free(text);
}

static void
data_release(struct emm_msg *m, int status)
{
    (void)status;
    free(m->data);
    free(m);
}

static void
ns_handler(struct emm_port *port, struct emm_msg *m)
{
    struct msrv_host *h = emm_port_context(port);
    struct msrv_ns *ns = h->srv->ns;
    struct answer a = {0};
    if (!MO_NS_IS_REQUEST(m->id) || m->reply == EMM_PORT_NULL ||
        (m->data != NULL && m->length > EMM_MAX_REQUEST_BYTES)) {
        atomic_fetch_add(&h->srv->st.bad_messages, 1);
        emm_err("%s: namespace: refused %s: bad %s", h->peer, emm_msg_name(m->id),
                m->reply == EMM_PORT_NULL ? "reply (none)" : "id");
        emm_msg_release(m, 0);
        return;
    }
    atomic_fetch_add(&h->srv->st.ns_ops[m->id - MO_NS_LOOKUP], 1);
    if (m->id == MO_NS_STATS) {
        pthread_mutex_lock(&ns->lock);
        do_stats(ns, h, &a);
        pthread_mutex_unlock(&ns->lock);
    } else {
        pthread_mutex_lock(&ns->lock);
        switch (m->id) {
        case MO_NS_LOOKUP: do_lookup(ns, m, &a); break;
        case MO_NS_READDIR: do_readdir(ns, m, &a); break;
        case MO_NS_CREATE: do_create(ns, m, &a); break;
        case MO_NS_REMOVE: do_remove(ns, m, &a); break;
        case MO_NS_RENAME: do_rename(ns, m, &a); break;
        case MO_NS_SETATTR: do_setattr(ns, m, &a); break;
        case MO_NS_GETATTR: do_getattr(ns, m, &a); break;
        default: a.err = ENOSYS; break;
        }
        pthread_mutex_unlock(&ns->lock);
    }
    if (a.err != 0 && a.err != ENOENT)
        atomic_fetch_add(&h->srv->st.ns_errors, 1);
    emm_debug("%s: namespace: %s %llu: %s", h->peer, emm_msg_name(m->id),
              (unsigned long long)m->offset, a.err ? strerror(a.err) : "ok");
    struct emm_msg *r = emm_msg_new(MO_NS_REPLY, 0, 0);
    if (r == NULL) {
        free(a.data);
        emm_msg_release(m, 0);
        return;
    }
    r->arg = a.err;
    r->arg2 = a.arg2;
    r->access = m->access; /* the host's cookie, echoed */
    if (a.err == 0 && a.data != NULL) {
        r->data = a.data;
        r->length = a.len;
        r->release = data_release;
    } else {
        free(a.data);
    }
    /* The host answers every request to one reply port: its right is kept
     * (one proxy for the host's life), so its sequence numbers go on from
     * one answer to the next, as the stream requires. */
    struct emm_port *rp = emm_port_take(&m->reply), *old = NULL;
    pthread_mutex_lock(&h->srv->lock);
    if (h->ns_reply != rp) {
        old = h->ns_reply;
        h->ns_reply = emm_port_ref(rp);
    }
    pthread_mutex_unlock(&h->srv->lock);
    if (old != NULL)
        emm_port_unref(old);
    if (emm_port_send(rp, r) < 0)
        emm_msg_release(r, -EPIPE);
    emm_port_unref(rp);
    emm_msg_release(m, 0);
}

int
msrv_ns_port(struct msrv_host *h, struct emm_port **out)
{
    struct msrv *srv = h->srv;
    int rc = 0;
    pthread_mutex_lock(&srv->lock);
    if (h->dead) {
        rc = -EPIPE;
    } else if (h->ns_port == NULL) {
        rc = emm_port_create("memserver namespace", ns_handler, h, NULL, &h->ns_port);
    }
    if (rc == 0)
        *out = emm_port_ref(h->ns_port);
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

void
msrv_ns_host_gone(struct msrv_host *h)
{
    pthread_mutex_lock(&h->srv->lock);
    struct emm_port *p = h->ns_port, *rp = h->ns_reply;
    h->ns_port = NULL;
    h->ns_reply = NULL;
    pthread_mutex_unlock(&h->srv->lock);
    if (p != NULL)
        emm_port_destroy(p);
    if (rp != NULL)
        emm_port_unref(rp);
}
