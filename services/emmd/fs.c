/*
 * fs.c - one emmd filesystem: its backend stack, standard pager and catalog,
 * and its namespace: a tree of directories whose regular files are memory
 * objects (one node each). The root is the catalog record with id 0; every
 * other node names its parent directory by id. A directory keeps its entries
 * sorted by id, which readdir uses as its offsets (stable while entries come
 * and go). Directories never get vm objects or backend pages.
 * Symlinks and hard links (other names of a file) are fs_link.c's, through
 * the emmd_tree_* primitives below.
 *
 * Every namespace change goes to the catalog in one transaction with the
 * parents whose times it changes, then to the tree, under fs->lock.
 *
 * Locking: fs->lock guards the node tables, the tree, names, counts and
 * node->rec; it is dropped before calling into the vm layer where a completion
 * could come back to this file (node_destroy).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "emmd.h"
#include "fs_link.h"
#include "log.h"

/* FNV-1a: stable across runs (the default pager's keys are on disk). */
static uint64_t
name_hash_full(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static uint64_t
entry_hash(uint64_t parent, const char *name)
{
    return (name_hash_full(name) ^ (parent * 0x9e3779b97f4a7c15ull)) % EMMD_BUCKETS;
}

static void
link_id(struct emmd_fs *fs, struct emmd_node *n)
{
    uint64_t hi = n->rec.id % EMMD_BUCKETS;
    n->next_id = fs->by_id[hi];
    fs->by_id[hi] = n;
    if (emmd_node_is_dir(n))
        fs->ndirs++;
    else if (emmd_node_is_file(n))
        fs->nobjects++;
}

static void
unlink_id(struct emmd_fs *fs, struct emmd_node *n)
{
    struct emmd_node **pp = &fs->by_id[n->rec.id % EMMD_BUCKETS];
    while (*pp != NULL && *pp != n)
        pp = &(*pp)->next_id;
    if (*pp == n)
        *pp = n->next_id;
    if (emmd_node_is_dir(n))
        fs->ndirs--;
    else if (emmd_node_is_file(n))
        fs->nobjects--;
}

/* Index in dir->kids of the first entry with id >= id. */
static size_t
kid_lower(const struct emmd_node *dir, uint64_t id)
{
    size_t lo = 0, hi = dir->nkids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dir->kids[mid]->rec.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int
kids_reserve(struct emmd_node *dir)
{
    if (dir->nkids < dir->capkids)
        return 0;
    size_t cap = dir->capkids ? dir->capkids * 2 : 8;
    struct emmd_node **k = realloc(dir->kids, cap * sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    dir->kids = k;
    dir->capkids = cap;
    return 0;
}

/* Enters n in dir under n->rec.name (room in dir->kids reserved). */
static void
attach(struct emmd_fs *fs, struct emmd_node *dir, struct emmd_node *n)
{
    size_t i = kid_lower(dir, n->rec.id);
    memmove(&dir->kids[i + 1], &dir->kids[i], (dir->nkids - i) * sizeof(*dir->kids));
    dir->kids[i] = n;
    dir->nkids++;
    if (emmd_node_is_dir(n))
        dir->nsubdirs++;
    n->parent = dir;
    n->rec.parent = dir->rec.id;
    uint64_t hn = entry_hash(dir->rec.id, n->rec.name);
    n->next_name = fs->by_name[hn];
    fs->by_name[hn] = n;
}

/* Takes n out of its directory and the name table. */
static void
detach(struct emmd_fs *fs, struct emmd_node *n)
{
    struct emmd_node *dir = n->parent;
    if (dir == NULL)
        return;
    struct emmd_node **pp = &fs->by_name[entry_hash(dir->rec.id, n->rec.name)];
    while (*pp != NULL && *pp != n)
        pp = &(*pp)->next_name;
    if (*pp == n)
        *pp = n->next_name;
    n->next_name = NULL;
    size_t i = kid_lower(dir, n->rec.id);
    if (i < dir->nkids && dir->kids[i] == n) {
        memmove(&dir->kids[i], &dir->kids[i + 1], (dir->nkids - i - 1) * sizeof(*dir->kids));
        dir->nkids--;
        if (emmd_node_is_dir(n))
            dir->nsubdirs--;
    }
    n->parent = NULL;
}

/* fs_link.c's view of the tree (fs_link.h). */
int emmd_tree_reserve(struct emmd_node *dir) { return kids_reserve(dir); }
void emmd_tree_enter(struct emmd_fs *fs, struct emmd_node *n) { link_id(fs, n); }
void emmd_tree_leave(struct emmd_fs *fs, struct emmd_node *n) { unlink_id(fs, n); }
void emmd_tree_attach(struct emmd_fs *fs, struct emmd_node *dir, struct emmd_node *n) { attach(fs, dir, n); }
void emmd_tree_detach(struct emmd_fs *fs, struct emmd_node *n) { detach(fs, n); }

struct emmd_node *
emmd_node_by_ino(struct emmd_fs *fs, fuse_ino_t ino)
{
    if (ino < 1)
        return NULL;
    uint64_t id = ino - 1;
    for (struct emmd_node *n = fs->by_id[id % EMMD_BUCKETS]; n; n = n->next_id)
        if (n->rec.id == id)
            return n;
    return NULL;
}

struct emmd_node *
emmd_node_lookup(struct emmd_fs *fs, struct emmd_node *dir, const char *name)
{
    if (dir == NULL || !emmd_node_is_dir(dir))
        return NULL;
    for (struct emmd_node *n = fs->by_name[entry_hash(dir->rec.id, name)]; n; n = n->next_name)
        if (n->parent == dir && strcmp(n->rec.name, name) == 0)
            return n;
    return NULL;
}

struct emmd_node *
emmd_node_resolve(struct emmd_fs *fs, const char *path)
{
    struct emmd_node *n = fs->root;
    char part[EMM_NAME_MAX + 1];

    while (n != NULL && *path != '\0') {
        size_t len = strcspn(path, "/");
        if (len > EMM_NAME_MAX)
            return NULL;
        memcpy(part, path, len);
        part[len] = '\0';
        path += len;
        path += *path == '/';
        if (len == 0 || strcmp(part, ".") == 0)
            continue;
        n = emmd_link_resolve(emmd_node_lookup(fs, n, part));
    }
    return n;
}

int
emmd_node_path(struct emmd_fs *fs, const struct emmd_node *n, char *buf, size_t len)
{
    (void)fs;
    size_t pos = len; /* built backwards from the end of buf */
    if (len == 0)
        return -ENAMETOOLONG;
    buf[--pos] = '\0';
    for (const struct emmd_node *m = n; m != NULL && m->parent != NULL; m = m->parent) {
        size_t nl = strlen(m->rec.name) + (m != n);
        if (nl > pos)
            return -ENAMETOOLONG;
        pos -= nl;
        memcpy(buf + pos, m->rec.name, strlen(m->rec.name));
        if (m != n)
            buf[pos + nl - 1] = '/';
    }
    memmove(buf, buf + pos, len - pos);
    return 0;
}

struct emmd_node *
emmd_dir_next(const struct emmd_node *dir, uint64_t from)
{
    size_t i = kid_lower(dir, from);
    return i < dir->nkids ? dir->kids[i] : NULL;
}

/* The pages of object id from page `from` on leave its pager's store, the
 * kernel not having mapped it: MO_DISCARD through the protocol (with pager =
 * process, emmd's own backend is a null one that stores nothing). 0 (sent,
 * or nothing to send for temporary objects), or -errno when the pager is
 * down or gone: the caller keeps it for later. No lock held. */
static int
discard_unmapped(struct emmd_fs *fs, uint64_t id, uint64_t from)
{
    if (fs->cfg->temporary)
        return 0; /* the default pager is its pager: terminate discarded its swap */
    struct emm_port *port;
    int rc = emmd_object_port(fs, id, &port);
    if (rc == 0) {
        rc = vm_kernel_discard_unmapped_from(fs->d->kernel, port, &fs->pstats, from * EMM_PAGE_SIZE);
        emm_port_unref(port);
    }
    if (rc < 0 && fs->pconn == NULL)
        emm_warn("fs %s: object %llu: its pager is gone: its pages from page %llu on stay there",
                 fs->cfg->name, (unsigned long long)id, (unsigned long long)from);
    return rc;
}

/* Ends a node whose name is gone and which the kernel forgot: a file's pages
 * go. Drops and retakes fs->lock for a file with a vm object. */
static void
node_destroy(struct emmd_fs *fs, struct emmd_node *n)
{
    unlink_id(fs, n);
    struct vm_object *vm = n->vm;
    uint64_t id = n->rec.id;
    int dir = !emmd_node_is_file(n);
    free(n->kids);
    free(n->rec.target);
    free(n);
    if (dir)
        return; /* no pages, no vm object (a directory, a symlink) */
    pthread_mutex_unlock(&fs->lock);
    /* A memory server's objects live and die by its namespace (remote_ns.c):
     * the server discarded them itself; a node gone here may live on there
     * under another name (renamed by another host). */
    int remote = fs->rns != NULL;
    if (vm != NULL) {
        int lost = !remote && fs->pconn != NULL && vm_object_pager_lost(vm);
        struct emmd_wait w;
        emmd_wait_init(&w);
        vm_object_terminate(vm, remote, emmd_wait_done, &w);
        emmd_wait(&w);
        vm_object_unref(vm);
        if (lost) /* the discard went nowhere: sent when the pager is back */
            emmd_pager_discard(fs, id);
    } else if (remote) {
        /* nothing: the server's */
    } else if (fs->pconn != NULL) {
        /* Never mapped, its pager in another process: from the asker thread
         * (stored.c), kept for when the pager is back if it is gone. */
        emmd_node_discard_unmapped(fs, id);
    } else {
        discard_unmapped(fs, id, 0);
    }
    pthread_mutex_lock(&fs->lock);
}

/* A record as it should be saved now (a file's size comes from its vm object). */
static struct emm_catalog_rec
rec_now(const struct emmd_node *n)
{
    struct emm_catalog_rec r = n->rec;
    if (n->vm != NULL)
        r.size = vm_object_size(n->vm);
    return r;
}

struct emm_catalog_rec emmd_tree_rec(const struct emmd_node *n) { return rec_now(n); }

static void
touch_dir(struct emmd_node *dir, int64_t now)
{
    dir->rec.mtime_ns = dir->rec.ctime_ns = now;
}

int
emmd_node_create(struct emmd_fs *fs, struct emmd_node *dir, const char *name, uint32_t type,
                 uint32_t mode, uint32_t uid, uint32_t gid, struct emmd_node **out)
{
    if (dir == NULL || (dir->parent == NULL && dir != fs->root))
        return -ENOENT; /* a directory removed while the kernel still held it */
    if (!emmd_node_is_dir(dir))
        return -ENOTDIR;
    if (strlen(name) > EMM_NAME_MAX)
        return -ENAMETOOLONG;
    if (fs->rns != NULL)
        return emmd_rns_create(fs, dir, name, type, mode, uid, gid, out);
    if (emmd_node_lookup(fs, dir, name) != NULL)
        return -EEXIST;
    if (kids_reserve(dir) < 0)
        return -ENOMEM;
    struct emmd_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    int rc = emm_catalog_new_id(fs->catalog, &n->rec.id);
    if (rc < 0) {
        free(n);
        return rc;
    }
    n->fs = fs;
    snprintf(n->rec.name, sizeof(n->rec.name), "%s", name);
    n->rec.type = type;
    n->rec.mode = mode & 07777;
    n->rec.uid = uid;
    n->rec.gid = gid;
    if (dir->rec.mode & S_ISGID) { /* BSD group semantics, as ext4 with a setgid dir */
        n->rec.gid = dir->rec.gid;
        if (type == EMM_CAT_DIR)
            n->rec.mode |= S_ISGID;
    }
    n->rec.parent = dir->rec.id;
    int64_t now = emm_real_ns();
    n->rec.atime_ns = n->rec.mtime_ns = n->rec.ctime_ns = now;
    struct emm_catalog_rec puts[2] = {n->rec, rec_now(dir)};
    puts[1].mtime_ns = puts[1].ctime_ns = now;
    rc = emm_catalog_update(fs->catalog, puts, 2, NULL, 0);
    if (rc < 0) {
        free(n);
        return rc;
    }
    touch_dir(dir, now);
    link_id(fs, n);
    attach(fs, dir, n);
    *out = n;
    return 0;
}

/* Marks n unlinked (its record is already gone) and ends it if the kernel
 * forgot it. May drop fs->lock. */
static void
node_unlinked(struct emmd_fs *fs, struct emmd_node *n)
{
    detach(fs, n);
    n->unlinked = 1;
    n->rec.ctime_ns = emm_real_ns();
    if (n->nlookup == 0)
        node_destroy(fs, n);
}

int
emmd_node_remove(struct emmd_fs *fs, struct emmd_node *dir, const char *name, int want_dir)
{
    if (dir == NULL)
        return -ENOENT;
    if (!emmd_node_is_dir(dir))
        return -ENOTDIR;
    if (fs->rns != NULL)
        return emmd_rns_remove(fs, dir, name, want_dir);
    struct emmd_node *n = emmd_node_lookup(fs, dir, name);
    if (n == NULL)
        return -ENOENT;
    if (want_dir && !emmd_node_is_dir(n))
        return -ENOTDIR;
    if (!want_dir && emmd_node_is_dir(n))
        return -EISDIR;
    if (emmd_node_is_dir(n) && n->nkids > 0)
        return -ENOTEMPTY;
    if (emmd_link_owns(n))
        return emmd_link_remove(fs, dir, n); /* one of several names */
    int64_t now = emm_real_ns();
    struct emm_catalog_rec pr = rec_now(dir);
    pr.mtime_ns = pr.ctime_ns = now;
    uint64_t id = n->rec.id;
    int rc = emm_catalog_update(fs->catalog, &pr, 1, &id, 1);
    if (rc < 0) {
        emm_err("fs %s: catalog: removing '%s': %s", fs->cfg->name, name, strerror(-rc));
        return rc;
    }
    touch_dir(dir, now);
    node_unlinked(fs, n);
    return 0;
}

/* a is b or one of b's descendants. */
static int
is_within(const struct emmd_node *a, const struct emmd_node *b)
{
    for (; a != NULL; a = a->parent)
        if (a == b)
            return 1;
    return 0;
}

/* The puts of a rename: the moved nodes and the directories whose times change. */
struct rename_set {
    struct emm_catalog_rec puts[4];
    size_t n;
};

static void
rs_add(struct rename_set *rs, const struct emm_catalog_rec *r)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->puts[i].id == r->id) {
            rs->puts[i] = *r;
            return;
        }
    rs->puts[rs->n++] = *r;
}

int
emmd_node_rename(struct emmd_fs *fs, struct emmd_node *dir, const char *name,
                 struct emmd_node *newdir, const char *newname, unsigned flags)
{
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
        return -EINVAL; /* RENAME_WHITEOUT: no overlay support */
    if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
        return -EINVAL;
    if (dir == NULL || newdir == NULL)
        return -ENOENT;
    if (!emmd_node_is_dir(dir) || !emmd_node_is_dir(newdir))
        return -ENOTDIR;
    if (newdir->parent == NULL && newdir != fs->root)
        return -ENOENT; /* the target directory was removed */
    if (strlen(newname) > EMM_NAME_MAX)
        return -ENAMETOOLONG;
    if (fs->rns != NULL)
        return emmd_rns_rename(fs, dir, name, newdir, newname, flags);
    struct emmd_node *n = emmd_node_lookup(fs, dir, name);
    if (n == NULL)
        return -ENOENT;
    struct emmd_node *target = emmd_node_lookup(fs, newdir, newname);
    if (flags & RENAME_EXCHANGE) {
        if (target == NULL)
            return -ENOENT;
    } else if (target != NULL && (flags & RENAME_NOREPLACE)) {
        return -EEXIST;
    }
    if (target == n || (target != NULL && emmd_link_resolve(target) == emmd_link_resolve(n)))
        return 0; /* the same entry, or two names of one file: nothing to do (POSIX) */
    /* No directory may move into itself or below itself. */
    if (emmd_node_is_dir(n) && is_within(newdir, n))
        return -EINVAL;
    if ((flags & RENAME_EXCHANGE) && emmd_node_is_dir(target) && is_within(dir, target))
        return -EINVAL;
    if (target != NULL && !(flags & RENAME_EXCHANGE)) {
        if (emmd_node_is_dir(n) && !emmd_node_is_dir(target))
            return -ENOTDIR;
        if (!emmd_node_is_dir(n) && emmd_node_is_dir(target))
            return -EISDIR;
        if (emmd_node_is_dir(target) && target->nkids > 0)
            return -ENOTEMPTY;
    }
    if (kids_reserve(newdir) < 0 || kids_reserve(dir) < 0)
        return -ENOMEM;

    int64_t now = emm_real_ns();
    struct rename_set rs = {.n = 0};
    struct emm_catalog_rec r = rec_now(n);
    r.parent = newdir->rec.id;
    snprintf(r.name, sizeof(r.name), "%s", newname);
    r.ctime_ns = now;
    rs_add(&rs, &r);
    struct emm_catalog_rec rt;
    if (target != NULL && (flags & RENAME_EXCHANGE)) {
        rt = rec_now(target);
        rt.parent = dir->rec.id;
        snprintf(rt.name, sizeof(rt.name), "%s", name);
        rt.ctime_ns = now;
        rs_add(&rs, &rt);
    }
    struct emm_catalog_rec d1 = rec_now(dir), d2 = rec_now(newdir);
    d1.mtime_ns = d1.ctime_ns = now;
    d2.mtime_ns = d2.ctime_ns = now;
    rs_add(&rs, &d1);
    rs_add(&rs, &d2);
    uint64_t del = target != NULL ? target->rec.id : 0;
    int replace = target != NULL && !(flags & RENAME_EXCHANGE);
    int link_gone = replace && emmd_link_owns(target); /* a name of a file with others */
    if (link_gone) {
        struct emm_catalog_rec lr;
        emmd_link_replace_prep(target, now, &del, &lr);
        rs_add(&rs, &lr);
    }
    int rc = emm_catalog_update(fs->catalog, rs.puts, rs.n, &del, replace ? 1 : 0);
    if (rc < 0) {
        emm_err("fs %s: catalog: renaming '%s' to '%s': %s", fs->cfg->name, name, newname,
                strerror(-rc));
        return rc;
    }
    touch_dir(dir, now);
    touch_dir(newdir, now);
    if (target != NULL)
        detach(fs, target);
    detach(fs, n);
    snprintf(n->rec.name, sizeof(n->rec.name), "%s", newname);
    n->rec.ctime_ns = now;
    attach(fs, newdir, n);
    if (target != NULL && (flags & RENAME_EXCHANGE)) {
        snprintf(target->rec.name, sizeof(target->rec.name), "%s", name);
        target->rec.ctime_ns = now;
        attach(fs, dir, target);
    } else if (link_gone) {
        emmd_link_replaced(fs, target, now); /* the file stays, under its other names */
    } else if (target != NULL) {
        target->unlinked = 1;
        target->rec.ctime_ns = now;
        if (target->nlookup == 0)
            node_destroy(fs, target); /* last: it may drop fs->lock */
    }
    return 0;
}

int
emmd_node_adopt(struct emmd_fs *fs, struct emmd_node *dir, const struct emm_catalog_rec *rec,
                struct emmd_node **out)
{
    if (kids_reserve(dir) < 0)
        return -ENOMEM;
    struct emmd_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    n->fs = fs;
    n->rec = *rec;
    link_id(fs, n);
    attach(fs, dir, n);
    *out = n;
    return 0;
}

int
emmd_node_place(struct emmd_fs *fs, struct emmd_node *n, struct emmd_node *dir, const char *name)
{
    if (n == fs->root || kids_reserve(dir) < 0)
        return n == fs->root ? -EINVAL : -ENOMEM;
    detach(fs, n);
    snprintf(n->rec.name, sizeof(n->rec.name), "%s", name);
    n->unlinked = 0;
    attach(fs, dir, n);
    return 0;
}

void
emmd_node_gone(struct emmd_fs *fs, struct emmd_node *n)
{
    if (n == fs->root)
        return;
    /* A directory goes with what this host knew of it (it may have moved
     * there, not gone: its entries are found again by the next lookups);
     * none may point at it once it is ended. */
    while (emmd_node_is_dir(n) && n->nkids > 0)
        emmd_node_gone(fs, n->kids[n->nkids - 1]); /* may drop fs->lock */
    if (!n->unlinked)
        node_unlinked(fs, n);
}

void
emmd_node_forget(struct emmd_fs *fs, struct emmd_node *n, uint64_t count)
{
    n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
    if (n->nlookup == 0 && n->unlinked)
        node_destroy(fs, n);
}

static void
tail_done(void *arg, int err)
{
    struct emmd_fs *fs = arg;
    if (err != 0)
        emm_warn("fs %s: discarding the pages past an object's size: %s", fs->cfg->name,
                 strerror(err));
}

int
emmd_node_vm(struct emmd_fs *fs, struct emmd_node *n, struct vm_object **out)
{
    struct emm_port *port = NULL;
    int made = 0;
    pthread_mutex_lock(&fs->lock);
    if (!emmd_node_is_file(n)) {
        pthread_mutex_unlock(&fs->lock);
        return emmd_node_is_dir(n) ? -EISDIR : -EINVAL; /* not memory objects */
    }
    if (n->vm == NULL && fs->pconn != NULL) {
        /* A pager in another process gives the port: that may wait up to
         * twice the deadline when it is down or stopped. Not under fs->lock,
         * so lookups, readdirs and opens of other files go on meanwhile; the
         * node is looked at again after (another open may have won). */
        uint64_t id = n->rec.id;
        pthread_mutex_unlock(&fs->lock);
        int rc = emmd_pager_object_port(fs, id, &port);
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&fs->lock);
    }
    if (n->vm == NULL) {
        struct vm_object_args a = {
            .id = n->rec.id,
            .size = n->rec.size,
            .owner = n,
            .temporary = fs->cfg->temporary,
            .dp_key = vm_dp_key(fs->dp_tag, n->rec.id, fs->cfg->temporary),
            .deadline_ms = atomic_load(&fs->deadline_ms),
            .pstats = &fs->pstats,
            .pager_name = fs->cfg->name,
            /* created here, or its pager said it stores none of it (stored.c) */
            .pager_empty = n->stored_known && n->stored_pages == 0,
            /* a memory server: other hosts store pages through it too */
            .pager_shared = fs->cfg->pager_mode == EMM_PAGER_TCP,
        };
        int rc = port != NULL        ? (a.pager = port, 0)
                 : fs->pager != NULL ? pgr_std_object_port(fs->pager, n->rec.id, &a.pager)
                                     : 0;
        made = port != NULL;
        port = NULL; /* vm_object_create takes it, even when it fails */
        if (rc == 0)
            rc = vm_object_create(fs->d->kernel, &a, &n->vm);
        if (rc < 0) {
            pthread_mutex_unlock(&fs->lock);
            return rc;
        }
        if (n->tail_pending) {
            /* A stale tail not discarded at start: first in the object's
             * message order, before anyone can write past the size (under
             * fs->lock: nothing of a discard calls back into emmd). */
            n->tail_pending = 0;
            vm_object_punch(n->vm, n->tail_from * EMM_PAGE_SIZE, UINT64_MAX, tail_done, fs);
        }
    }
    vm_object_ref(n->vm);
    *out = n->vm;
    pthread_mutex_unlock(&fs->lock);
    if (port != NULL)
        emm_port_unref(port); /* another open made the object meanwhile */
    if (made)
        emmd_pager_object_check(fs, *out); /* its connection may have died meanwhile */
    return 0;
}

void
emmd_fs_set_deadline(struct emmd_fs *fs, uint64_t ms)
{
    /* Under fs->lock, like emmd_node_vm: an object is created either before
     * the walk (and is set here) or after the store (and takes ms). */
    pthread_mutex_lock(&fs->lock);
    atomic_store(&fs->deadline_ms, ms);
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *x = fs->by_id[b]; x; x = x->next_id)
            if (x->vm != NULL)
                vm_object_set_deadline(x->vm, ms);
    pthread_mutex_unlock(&fs->lock);
}

void
emmd_node_changed(struct emmd_fs *fs, struct emmd_node *n)
{
    pthread_mutex_lock(&fs->lock);
    n->rec_dirty = 1;
    pthread_mutex_unlock(&fs->lock);
    emmd_node_save(fs, n);
}

void
emmd_node_save(struct emmd_fs *fs, struct emmd_node *n)
{
    /* The put is made under fs->lock, as the namespace's changes are: made
     * after it, a copy taken before a rename, link or unlink would write the
     * old name back (or bring back a record just deleted). */
    pthread_mutex_lock(&fs->lock);
    if (n->vm != NULL)
        n->rec.size = vm_object_size(n->vm);
    if (n->rec_dirty && !n->unlinked) {
        n->rec_dirty = 0;
        int rc = emm_catalog_put(fs->catalog, &n->rec);
        if (rc < 0)
            emm_err("fs %s: catalog: saving '%s': %s", fs->cfg->name, n->rec.name, strerror(-rc));
    }
    pthread_mutex_unlock(&fs->lock);
}

void
emmd_node_stat(struct emmd_fs *fs, struct emmd_node *n, struct stat *st)
{
    emmd_node_stat_stored(fs, n, st, NULL);
}

void
emmd_node_stat_stored(struct emmd_fs *fs, struct emmd_node *n, struct stat *st,
                      const uint64_t *pager_pages)
{
    (void)fs;
    memset(st, 0, sizeof(*st));
    st->st_ino = emmd_ino(n);
    st->st_uid = n->rec.uid;
    st->st_gid = n->rec.gid;
    st->st_blksize = EMM_PAGE_SIZE;
    st->st_atim.tv_sec = n->rec.atime_ns / 1000000000;
    st->st_atim.tv_nsec = n->rec.atime_ns % 1000000000;
    st->st_mtim.tv_sec = n->rec.mtime_ns / 1000000000;
    st->st_mtim.tv_nsec = n->rec.mtime_ns % 1000000000;
    st->st_ctim.tv_sec = n->rec.ctime_ns / 1000000000;
    st->st_ctim.tv_nsec = n->rec.ctime_ns % 1000000000;
    if (emmd_node_is_dir(n)) {
        st->st_mode = S_IFDIR | n->rec.mode;
        st->st_nlink = n->unlinked ? 0 : 2 + n->nsubdirs;
        st->st_size = EMM_PAGE_SIZE; /* as ext4: one block's worth; nothing stored */
        return;
    }
    if (emmd_link_stat(n, st)) /* st_nlink; a symlink's mode and size */
        return;
    st->st_mode = S_IFREG | n->rec.mode;
    uint64_t stored = 0, fresh = 0;
    if (pager_pages != NULL)
        stored = *pager_pages; /* the pager's own count, asked by the kernel */
    else if (n->stored_known)
        stored = n->stored_pages; /* its last count (stored.c) */
    if (n->vm != NULL) {
        struct vm_object_info info;
        vm_object_info(n->vm, &info);
        st->st_size = (off_t)info.size;
        fresh = info.new_pages;
    } else {
        st->st_size = (off_t)n->rec.size;
    }
    st->st_blocks = (blkcnt_t)((stored + fresh) * (EMM_PAGE_SIZE / 512));
}

int
emmd_fs_open(struct emmd *d, struct emmd_fs *fs, const struct emm_fs_config *cfg, char *err,
             size_t errlen)
{
    memset(fs, 0, sizeof(*fs));
    fs->d = d;
    fs->cfg = cfg;
    atomic_init(&fs->deadline_ms, cfg->pager_deadline_ms);
    fs->dp_tag = (unsigned)(name_hash_full(cfg->name) & VM_DP_FS_MASK);
    pthread_mutex_init(&fs->lock, NULL);
    struct emm_backend_args a = {
        .spec = cfg->backend, .fs_name = cfg->name, .file = d->cfg->path,
        .line = cfg->backend_line, .state_dir = d->cfg->state_dir,
        .plugin_dir = d->cfg->plugin_dir,
    };
    if (cfg->temporary || cfg->pager_mode != EMM_PAGER_INLINE) {
        /* No pager of its own (the default pager is the objects' pager), or
         * one in another process, which opens the real stack. The null
         * backend only answers the namespace's storage queries. */
        a.spec = "null";
        return emm_backend_open(&a, &fs->backend, err, errlen);
    }
    struct emm_backend_key *keys = calloc(cfg->nbackend_keys + 1, sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->nbackend_keys; i++)
        keys[i] = (struct emm_backend_key){ cfg->backend_keys[i].key,
                                            cfg->backend_keys[i].value,
                                            cfg->backend_keys[i].line };
    a.keys = keys;
    a.nkeys = cfg->nbackend_keys;
    int r = emm_backend_open(&a, &fs->backend, err, errlen);
    free(keys);
    return r;
}

static int
load_node(void *arg, const struct emm_catalog_rec *rec)
{
    struct emmd_fs *fs = arg;
    struct emmd_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    n->fs = fs;
    n->rec = *rec;
    if (emmd_link_loaded(n) < 0) {
        free(n);
        return -ENOMEM;
    }
    link_id(fs, n);
    if (rec->id == EMM_CATALOG_ROOT) {
        n->rec.type = EMM_CAT_DIR; /* (a root record that says otherwise is mended) */
        fs->root = n;
        return 0;
    }
    if (!emmd_node_is_file(n))
        return 0;
    /* After a crash the store may hold pages returned after the last size the
     * catalog saw: past the end they must read as zeros if the object grows.
     * Discarded through the protocol once the pager is up (discard_tails). */
    n->tail_pending = 1;
    n->tail_from = (rec->size + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE;
    return 0;
}

/* At start, once the pager is up and before the mount: every file's pages
 * past its catalog size go (load_node). An object whose pager cannot be
 * asked now keeps its discard for its first mapping (emmd_node_vm), where it
 * goes in the object's own message order. A memory server (pager = tcp) is
 * shared: the size another host saw may be larger, so nothing is discarded. */
static void
discard_tails(struct emmd_fs *fs)
{
    int skip = fs->cfg->temporary || fs->cfg->pager_mode == EMM_PAGER_TCP;
    size_t n = 0, sent = 0, cap = 0;
    struct {
        uint64_t id, from;
    } *v = NULL;
    pthread_mutex_lock(&fs->lock);
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *x = fs->by_id[b]; x; x = x->next_id) {
            if (!x->tail_pending)
                continue;
            if (skip) {
                x->tail_pending = 0;
                continue;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                void *nv = realloc(v, ncap * sizeof(*v));
                if (nv == NULL)
                    break; /* the rest go at their first mapping */
                v = nv;
                cap = ncap;
            }
            v[n].id = x->rec.id;
            v[n++].from = x->tail_from;
        }
    pthread_mutex_unlock(&fs->lock);
    for (size_t i = 0; i < n; i++) {
        if (discard_unmapped(fs, v[i].id, v[i].from) < 0)
            continue;
        sent++;
        pthread_mutex_lock(&fs->lock);
        struct emmd_node *x = emmd_node_by_ino(fs, v[i].id + 1);
        if (x != NULL)
            x->tail_pending = 0;
        pthread_mutex_unlock(&fs->lock);
    }
    free(v);
    if (sent < n)
        emm_warn("fs %s: pages past the size of %zu of %zu objects not discarded yet (the "
                 "pager could not be asked): discarded when each is first opened",
                 fs->cfg->name, n - sent, n);
    else if (n > 0)
        emm_debug("fs %s: pages past the size of %zu objects discarded at their pager", fs->cfg->name, n);
}

/* Moves n (not yet in any directory) to the root under a name free there,
 * and saves that: for records whose parent is missing or whose name is taken. */
static int
rescue(struct emmd_fs *fs, struct emmd_node *n, const char *why)
{
    char name[EMM_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%s", n->rec.name);
    for (unsigned k = 0; emmd_node_lookup(fs, fs->root, name) != NULL || name[0] == '\0'; k++)
        snprintf(name, sizeof(name), "%.200s~%llu.%u", n->rec.name,
                 (unsigned long long)n->rec.id, k);
    emm_warn("fs %s: catalog: id %llu '%s' %s: kept as '/%s'", fs->cfg->name,
             (unsigned long long)n->rec.id, n->rec.name, why, name);
    snprintf(n->rec.name, sizeof(n->rec.name), "%s", name);
    if (kids_reserve(fs->root) < 0)
        return -ENOMEM;
    attach(fs, fs->root, n);
    struct emm_catalog_rec r = n->rec;
    return emm_catalog_put(fs->catalog, &r);
}

/* Links the loaded nodes into a tree under the root (made if the catalog has
 * none: a new or a flat one). Records that name no directory, collide, or sit
 * in a loop cut off from the root are kept in the root, under a free name. */
static int
build_tree(struct emmd_fs *fs)
{
    int rc;
    if (fs->root == NULL) {
        struct emmd_node *r = calloc(1, sizeof(*r));
        if (r == NULL)
            return -ENOMEM;
        r->fs = fs;
        r->rec.id = EMM_CATALOG_ROOT;
        r->rec.parent = EMM_CATALOG_ROOT;
        r->rec.type = EMM_CAT_DIR;
        r->rec.mode = 0755;
        r->rec.uid = (uint32_t)geteuid();
        r->rec.gid = (uint32_t)getegid();
        r->rec.atime_ns = r->rec.mtime_ns = r->rec.ctime_ns = emm_real_ns();
        rc = emm_catalog_put(fs->catalog, &r->rec);
        if (rc < 0) {
            free(r);
            return rc;
        }
        link_id(fs, r);
        fs->root = r;
    }
    /* Pass 1: every node with an existing directory as parent and a free name. */
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
            if (n == fs->root)
                continue;
            struct emmd_node *p = emmd_node_by_ino(fs, n->rec.parent + 1);
            if (p == NULL || !emmd_node_is_dir(p) || p == n || n->rec.name[0] == '\0' ||
                strchr(n->rec.name, '/') != NULL || emmd_node_lookup(fs, p, n->rec.name))
                continue; /* pass 3 */
            if (kids_reserve(p) < 0)
                return -ENOMEM;
            attach(fs, p, n);
        }
    /* Pass 2: directories in a loop of parents never reach the root: cut them out. */
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
            if (n->parent == NULL || !emmd_node_is_dir(n))
                continue;
            uint64_t steps = 0, limit = fs->ndirs + 1;
            struct emmd_node *a = n;
            while (a != NULL && a != fs->root && steps++ <= limit)
                a = a->parent;
            if (a != fs->root) {
                detach(fs, n);
                rc = rescue(fs, n, "is in a loop of directories");
                if (rc < 0)
                    return rc;
            }
        }
    /* Pass 3: the rest. */
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
            if (n == fs->root || n->parent != NULL)
                continue;
            rc = rescue(fs, n, "has no directory to be in (or its name is taken there)");
            if (rc < 0)
                return rc;
        }
    return 0;
}

/* root-uid, root-gid, root-mode: the root directory is set to them at every
 * start (and the catalog updated when that changes it). */
static int
apply_root_owner(struct emmd_fs *fs)
{
    const struct emm_fs_config *c = fs->cfg;
    struct emmd_node *r = fs->root;
    struct emm_catalog_rec rec = r->rec;

    if (c->root_uid >= 0)
        rec.uid = (uint32_t)c->root_uid;
    if (c->root_gid >= 0)
        rec.gid = (uint32_t)c->root_gid;
    if (c->root_mode >= 0)
        rec.mode = (rec.mode & ~07777u) | (uint32_t)c->root_mode;
    if (rec.uid == r->rec.uid && rec.gid == r->rec.gid && rec.mode == r->rec.mode)
        return 0;
    rec.ctime_ns = emm_real_ns();
    int rc = emm_catalog_put(fs->catalog, &rec);
    if (rc < 0)
        return rc;
    r->rec = rec;
    emm_info("fs %s: root directory is uid %u gid %u mode %04o", c->name, (unsigned)rec.uid,
             (unsigned)rec.gid, (unsigned)(rec.mode & 07777));
    return 0;
}

int
emmd_fs_start(struct emmd_fs *fs)
{
    const char *name = fs->cfg->name;
    int rc = emm_backend_start(fs->backend);
    if (rc < 0) {
        emm_err("fs %s: backend %s failed to start: %s", name, fs->cfg->backend, strerror(-rc));
        return rc;
    }
    char dir[PATH_MAX];
    int external = fs->cfg->pager_mode != EMM_PAGER_INLINE;
    /* pager = tcp: the namespace is the memory server's; the catalog here
     * is only this host's cache of it (remote_ns.c), in memory. */
    int remote = fs->cfg->pager_mode == EMM_PAGER_TCP;
    int persistent = (external && !remote) || (fs->backend->flags & EMM_BACKEND_PERSISTENT) != 0;
    snprintf(dir, sizeof(dir), "%s/fs/%s/catalog", fs->d->cfg->state_dir, name);
    struct MDB_env *env = emm_backend_lmdb_env(fs->backend);
    if (!external && emm_backend_has_meta(fs->backend)) {
        snprintf(dir, sizeof(dir), "the %s backend's namespace store", fs->cfg->backend);
        rc = emm_catalog_open_backend(fs->backend, dir, &fs->catalog); /* e.g. rados: in the pool */
    } else if (env != NULL) {
        rc = emm_catalog_open_env(env, &fs->catalog); /* in the lmdb backend's environment */
        snprintf(dir, sizeof(dir), "the lmdb environment");
    } else {
        rc = emm_catalog_open(persistent ? dir : NULL, &fs->catalog);
    }
    if (rc < 0) {
        emm_err("fs %s: catalog in %s: %s", name, dir, strerror(-rc));
        return rc;
    }
    rc = emm_catalog_scan(fs->catalog, load_node, fs);
    if (rc == 0)
        rc = build_tree(fs);
    if (rc == 0)
        rc = emmd_link_build(fs);
    if (rc == 0)
        rc = apply_root_owner(fs);
    if (rc < 0) {
        emm_err("fs %s: catalog %s: loading: %s", name, dir, strerror(-rc));
        return rc;
    }
    if (fs->cfg->temporary) {
        discard_tails(fs);
        emm_info("fs %s: temporary objects (backend none): the default pager is their pager",
                 name);
        return 0;
    }
    if (external) {
        if (remote && (rc = emmd_rns_start(fs)) < 0)
            return rc;
        rc = emmd_pager_conn_start(fs);
        if (rc == 0)
            rc = emmd_stored_start(fs);
        if (rc < 0)
            return rc;
        discard_tails(fs);
        emm_info("fs %s: backend %s (pager in %s), %llu objects from the catalog", name,
                 fs->cfg->backend,
                 fs->cfg->pager_mode == EMM_PAGER_PROCESS ? "emm-pager"
                 : fs->cfg->pager_mode == EMM_PAGER_TCP   ? fs->cfg->pager_addr
                                                          : fs->cfg->pager_socket,
                 (unsigned long long)fs->nobjects);
        return 0;
    }
    rc = pgr_std_create(fs->backend, fs->cfg->pager_threads, fs->d->cfg->busy_poll_us,
                        &fs->pager);
    if (rc < 0)
        return rc;
    discard_tails(fs);
    emm_info("fs %s: backend %s (%s pager), %llu objects%s", name, fs->cfg->backend,
             pgr_std_is_inline(fs->pager) ? "inline" : "threaded",
             (unsigned long long)fs->nobjects, persistent ? " from the catalog" : "");
    if (fs->ndirs > 1)
        emm_info("fs %s: %llu directories", name, (unsigned long long)(fs->ndirs - 1));
    return 0;
}

struct replay_scan {
    struct emmd_fs *fs;
    uint64_t objects, pages, orphans;
};

static int
replay_one(void *arg, uint64_t key, uint64_t pages)
{
    struct replay_scan *rs = arg;
    struct emmd_fs *fs = rs->fs;
    if ((key & VM_DP_TEMPORARY) || ((key >> VM_DP_FS_SHIFT) & VM_DP_FS_MASK) != fs->dp_tag)
        return 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, (key & VM_DP_ID_MASK) + 1);
    pthread_mutex_unlock(&fs->lock);
    if (n == NULL) {
        rs->orphans += pages;
        return 0;
    }
    struct vm_object *vm;
    if (emmd_node_vm(fs, n, &vm) == 0) /* attaching starts the replay */
        vm_object_unref(vm);
    rs->objects++;
    rs->pages += pages;
    return 0;
}

/* After a restart: objects whose pages were double-paged before the crash are
 * mapped now, so their pages go back to the pager without waiting for a use. */
void
emmd_fs_replay_swap(struct emmd_fs *fs)
{
    if (fs->d->dpager == NULL || fs->cfg->temporary)
        return;
    struct replay_scan rs = {.fs = fs};
    swp_dp_foreach_object(fs->d->dpager, replay_one, &rs);
    if (rs.objects > 0)
        emm_notice("fs %s: %llu pages of %llu objects are in swap: replaying them to the pager",
                   fs->cfg->name, (unsigned long long)rs.pages, (unsigned long long)rs.objects);
    if (rs.orphans > 0)
        emm_warn("fs %s: swap holds %llu pages of objects no longer in the catalog",
                 fs->cfg->name, (unsigned long long)rs.orphans);
}

/* Returns every dirty page of every object and persists sizes (shutdown). */
void
emmd_fs_flush_all(struct emmd_fs *fs)
{
    for (size_t b = 0; b < EMMD_BUCKETS; b++) {
        pthread_mutex_lock(&fs->lock);
        struct emmd_node *list[256];
        size_t cnt = 0;
        for (struct emmd_node *n = fs->by_id[b]; n && cnt < 256; n = n->next_id)
            list[cnt++] = n;
        pthread_mutex_unlock(&fs->lock);
        for (size_t i = 0; i < cnt; i++) {
            struct emmd_node *n = list[i];
            if (n->vm == NULL)
                continue;
            struct emmd_wait w;
            emmd_wait_init(&w);
            vm_object_sync(n->vm, emmd_wait_done, &w);
            int rc = emmd_wait(&w);
            struct vm_object_info info;
            vm_object_info(n->vm, &info);
            if (rc != 0 && info.in_swap > 0)
                emm_notice("fs %s: object '%s': %llu pages stay in swap, replayed to the pager "
                           "at the next start", fs->cfg->name, n->rec.name,
                           (unsigned long long)info.in_swap);
            else if (rc != 0)
                emm_err("fs %s: object '%s': flush failed: %s", fs->cfg->name, n->rec.name,
                        strerror(rc));
            emmd_node_changed(fs, n);
        }
    }
}

void
emmd_fs_close(struct emmd_fs *fs)
{
    /* Persistent objects keep their pages; a volatile backend's vanish with it.
     * A pager in another process keeps them (emmd's own backend is the null
     * one then: it says nothing of the store's persistence; a discard here
     * erased every object of an lmdb store behind pager = process). */
    int keep = !fs->cfg->temporary &&
               (fs->pconn != NULL ||
                (fs->backend != NULL && (fs->backend->flags & EMM_BACKEND_PERSISTENT)));
    emmd_stored_stop(fs); /* its lookups need the pager's connection */
    for (size_t b = 0; b < EMMD_BUCKETS; b++) {
        struct emmd_node *n = fs->by_id[b];
        while (n != NULL) {
            struct emmd_node *next = n->next_id;
            if (n->vm != NULL) {
                struct emmd_wait w;
                emmd_wait_init(&w);
                vm_object_terminate(n->vm, keep, emmd_wait_done, &w);
                emmd_wait(&w);
                vm_object_unref(n->vm);
            }
            free(n->kids);
            free(n->rec.target);
            free(n);
            n = next;
        }
        fs->by_id[b] = NULL;
    }
    if (fs->pager != NULL)
        pgr_std_destroy(fs->pager);
    emmd_pager_conn_stop(fs);
    emmd_rns_stop(fs);
    if (fs->catalog != NULL) {
        emm_catalog_sync(fs->catalog);
        emm_catalog_close(fs->catalog);
    }
    if (fs->backend != NULL) {
        emm_backend_sync(fs->backend, UINT64_MAX);
        emm_backend_close(fs->backend);
    }
    pthread_mutex_destroy(&fs->lock);
}
