/*
 * fz_ops.c - the low-level FUSE operations of an emmd filesystem: a tree of
 * directories (fs.c) whose regular files are memory objects. Permissions are
 * the kernel's (default_permissions, emmd as root); symlinks and hard links
 * are fs_link.c's; special files are refused with EPERM. The only file that calls
 * fuse_reply_* (with fz_notify.c's notifier thread for invalidations). READ, WRITE,
 * FSYNC, truncation and hole punching are answered asynchronously from whichever
 * thread completes them in the vm layer; so are LOOKUP, GETATTR, SETATTR and
 * STATFS, whose st_blocks and used blocks come from the kernel and the pager's
 * answer to a data_query (stored.c), never from a backend. Nothing here waits
 * for a pager's answer; a pager in another process is not even waited for
 * to reply to a stat (reply_stat).
 *
 * Locking: namespace operations take fs->lock (emmd.h); data operations take a
 * reference on the node's vm object and call the vm layer without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "clock.h"
#include "cluster_lock.h"
#include "emmd.h"
#include "fs_link.h"
#include "log.h"

#define ENTRY_TIMEOUT 60.0
#define ATTR_TIMEOUT 1.0

/* A memory server's namespace changes on other hosts: nothing of it is
 * cached by the kernel, every walk and stat asks it (remote_ns.c). */
static double
entry_timeout(const struct emmd_fs *fs)
{
    return fs->rns != NULL ? 0.0 : ENTRY_TIMEOUT;
}

static double
attr_timeout(const struct emmd_fs *fs)
{
    return fs->rns != NULL ? 0.0 : ATTR_TIMEOUT;
}

static struct emmd_fs *
fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* An entry (LOOKUP) or attribute (GETATTR, SETATTR) reply for a file, once
 * the kernel says what its pager stores (stored.c: st_blocks). The other
 * attributes are taken under fs->lock when the request comes; the size again
 * when the answer does. The completion may run on a pager's thread, or in
 * this one before the call returns: no lock is held across the call.
 *
 * A pager in another process or host is never waited for: the kernel holds
 * the parent directory during a LOOKUP, a stat would hang on a stopped pager
 * for up to pager.deadline. When its answer did not come inside the call,
 * the reply goes at once with what is known (the last count, else the size's
 * pages), not cached, so the next stat asks again; the answer, when it
 * comes, is kept in the node (stored.c). Whichever of the two claims the
 * reply first sends it; the last reference frees it. */
struct stat_reply {
    fuse_req_t req;
    struct emmd_fs *fs;
    uint64_t id;
    int entry;
    atomic_int claimed, refs;
    struct fuse_entry_param e;
};

static void
stat_reply_put(struct stat_reply *sr)
{
    if (atomic_fetch_sub(&sr->refs, 1) == 1)
        free(sr);
}

static void
stat_reply_send(struct stat_reply *sr)
{
    if (sr->entry)
        fuse_reply_entry(sr->req, &sr->e);
    else
        fuse_reply_attr(sr->req, &sr->e.attr, sr->e.attr_timeout);
    stat_reply_put(sr);
}

static void
stat_reply_stored(void *arg, uint64_t stored, uint64_t fresh)
{
    struct stat_reply *sr = arg;
    struct emmd_fs *fs = sr->fs;
    if (atomic_exchange(&sr->claimed, 1)) {
        stat_reply_put(sr); /* replied already with what was known */
        return;
    }
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, sr->id + 1);
    if (n != NULL && n->vm != NULL)
        sr->e.attr.st_size = (off_t)vm_object_size(n->vm);
    pthread_mutex_unlock(&fs->lock);
    sr->e.attr.st_blocks = (blkcnt_t)((stored + fresh) * (EMM_PAGE_SIZE / 512));
    stat_reply_send(sr);
}

/* Replies to req with node ino's attributes (entry: as a LOOKUP's entry).
 * fs->lock not held; the request pins the node. */
static void
reply_stat(fuse_req_t req, struct emmd_fs *fs, fuse_ino_t ino, int entry)
{
    struct stat_reply *sr = calloc(1, sizeof(*sr));
    if (sr == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    sr->req = req;
    sr->fs = fs;
    sr->id = ino - 1;
    sr->entry = entry;
    sr->e.ino = ino;
    sr->e.generation = 1;
    sr->e.attr_timeout = attr_timeout(fs);
    sr->e.entry_timeout = entry_timeout(fs);
    atomic_init(&sr->refs, 1);
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    int file = n != NULL && emmd_node_is_file(n), mapped = file && n->vm != NULL;
    if (n != NULL)
        emmd_node_stat(fs, n, &sr->e.attr);
    pthread_mutex_unlock(&fs->lock);
    if (n == NULL) {
        free(sr);
        fuse_reply_err(req, ENOENT);
    } else if (!file) {
        stat_reply_send(sr);
    } else if (fs->cfg->pager_mode != EMM_PAGER_INLINE) {
        atomic_store(&sr->refs, 2);
        emmd_node_stored(fs, sr->id, stat_reply_stored, sr);
        if (!atomic_exchange(&sr->claimed, 1)) { /* no answer yet: what is known */
            /* (a mapped object's last count may be stale: the size's pages) */
            uint64_t pages;
            if (mapped || emmd_node_stored_known(fs, sr->id, &pages) < 0)
                pages = ((uint64_t)sr->e.attr.st_size + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE;
            sr->e.attr_timeout = 0;
            sr->e.attr.st_blocks = (blkcnt_t)(pages * (EMM_PAGE_SIZE / 512));
            stat_reply_send(sr);
        } else {
            stat_reply_put(sr);
        }
    } else {
        emmd_node_stored(fs, sr->id, stat_reply_stored, sr);
    }
}

static void
reply_entry(fuse_req_t req, struct emmd_fs *fs, struct emmd_node *n)
{
    reply_stat(req, fs, emmd_ino(n), 1);
}

/* The directory a request names by inode: NULL and *err set if it is none. fs->lock held. */
static struct emmd_node *
dir_of(struct emmd_fs *fs, fuse_ino_t ino, int *err)
{
    struct emmd_node *d = emmd_node_by_ino(fs, ino);
    if (d == NULL)
        *err = ENOENT;
    else if (!emmd_node_is_dir(d))
        *err = ENOTDIR;
    else
        return d;
    return NULL;
}

static void
fz_init(void *userdata, struct fuse_conn_info *conn)
{
    struct emmd_fs *fs = userdata;
    conn->max_read = EMM_MAX_REQUEST_BYTES; /* must match the max_read mount option */
    conn->max_write = EMM_MAX_REQUEST_BYTES;
    conn->max_readahead = (unsigned)fs->cfg->readahead;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE; /* every write(2) reaches the pool */
    /* open(O_TRUNC) arrives as a SETATTR(size 0) first, through the truncate path. */
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
    fz_lk_init(fs, conn); /* fcntl/flock locks: the memserver's, or the kernel's */
}

static void
fz_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct emmd_fs *fs = fs_of(req);
    int err = 0;
    if (fs->rns != NULL && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
        (err = -emmd_rns_lookup(fs, parent, name)) != 0) {
        fuse_reply_err(req, err);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, parent, &err), *n = NULL;
    if (d != NULL) {
        if (strcmp(name, ".") == 0)
            n = d;
        else if (strcmp(name, "..") == 0)
            n = d->parent != NULL ? d->parent : d;
        else
            n = emmd_link_resolve(emmd_node_lookup(fs, d, name)); /* a hard link: its file */
    }
    if (n != NULL && n != fs->root)
        n->nlookup++; /* the root is never forgotten */
    pthread_mutex_unlock(&fs->lock);
    if (d == NULL) {
        fuse_reply_err(req, err);
        return;
    }
    if (n == NULL) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = fs->rns != NULL ? 0.0 : 1.0; /* negative entry */
        fuse_reply_entry(req, &e);
        return;
    }
    reply_entry(req, fs, n);
}

static void
fz_forget_one(struct emmd_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    if (n != NULL)
        emmd_node_forget(fs, n, nlookup);
    pthread_mutex_unlock(&fs->lock);
}

static void
fz_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    fz_forget_one(fs_of(req), ino, nlookup);
    fuse_reply_none(req);
}

static void
fz_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        fz_forget_one(fs_of(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* GETATTR: st_blocks from what the pager stores, as the kernel says it
 * (stored.c): a question to the pager only when the kernel does not know. */
static void
fz_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct emmd_fs *fs = fs_of(req);
    int rc = fs->rns != NULL ? emmd_rns_getattr(fs, ino) : 0;
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_stat(req, fs, ino, 0);
}

struct attr_ctx {
    fuse_req_t req;
    struct emmd_fs *fs;
    struct emmd_node *n;
    struct vm_object *vm;
};

static void
reply_attr_of(fuse_req_t req, struct emmd_fs *fs, struct emmd_node *n)
{
    reply_stat(req, fs, emmd_ino(n), 0);
}

static void
truncate_done(void *arg, int err)
{
    struct attr_ctx *ac = arg;
    if (err != 0) {
        fuse_reply_err(ac->req, err);
    } else {
        emmd_node_save(ac->fs, ac->n);
        reply_attr_of(ac->req, ac->fs, ac->n);
    }
    vm_object_unref(ac->vm);
    free(ac);
}

static void
fz_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
           struct fuse_file_info *fi)
{
    (void)fi;
    struct emmd_fs *fs = fs_of(req);
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    if (n == NULL) {
        pthread_mutex_unlock(&fs->lock);
        fuse_reply_err(req, ENOENT);
        return;
    }
    int64_t now = emm_real_ns();
    if (to_set & FUSE_SET_ATTR_MODE)
        n->rec.mode = attr->st_mode & 07777;
    if (to_set & FUSE_SET_ATTR_UID)
        n->rec.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID)
        n->rec.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_ATIME)
        n->rec.atime_ns = (int64_t)attr->st_atim.tv_sec * 1000000000 + attr->st_atim.tv_nsec;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW)
        n->rec.atime_ns = now;
    if (to_set & FUSE_SET_ATTR_MTIME)
        n->rec.mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        n->rec.mtime_ns = now;
    n->rec.ctime_ns = now;
    n->rec_dirty = 1;
    pthread_mutex_unlock(&fs->lock);
    int rrc = fs->rns != NULL ? emmd_rns_setattr(fs, n, to_set, (uint64_t)attr->st_size) : 0;
    if (rrc < 0) {
        fuse_reply_err(req, -rrc);
        return;
    }

    if (!(to_set & FUSE_SET_ATTR_SIZE)) {
        emmd_node_save(fs, n);
        reply_attr_of(req, fs, n);
        return;
    }
    struct vm_object *vm;
    int rc = emmd_node_vm(fs, n, &vm);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    uint64_t old = vm_object_size(vm), size = (uint64_t)attr->st_size;
    pthread_mutex_lock(&fs->lock);
    n->rec.mtime_ns = now;
    pthread_mutex_unlock(&fs->lock);
    if (size >= old) {
        vm_object_set_size(vm, size);
        emmd_node_save(fs, n);
        vm_object_unref(vm);
        reply_attr_of(req, fs, n);
        return;
    }
    /* Shrink: pages past the end are discarded, the tail of the last one zeroed. */
    struct attr_ctx *ac = malloc(sizeof(*ac));
    if (ac == NULL) {
        vm_object_unref(vm);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *ac = (struct attr_ctx){req, fs, n, vm};
    vm_object_truncate(vm, size, truncate_done, ac);
}

static void
fz_create_node(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t type, mode_t mode,
               struct fuse_file_info *fi)
{
    struct emmd_fs *fs = fs_of(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, parent, &err), *n = NULL;
    int rc = d != NULL ? emmd_node_create(fs, d, name, type, mode, ctx->uid, ctx->gid, &n) : -err;
    if (rc == 0) {
        n->nlookup++;
        if (fi != NULL)
            n->nopen++;
        n->stored_known = 1; /* a new id: its pager stores nothing of it */
        n->stored_pages = 0;
    }
    pthread_mutex_unlock(&fs->lock);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = emmd_ino(n);
    e.generation = 1;
    e.attr_timeout = attr_timeout(fs);
    e.entry_timeout = entry_timeout(fs);
    pthread_mutex_lock(&fs->lock);
    emmd_node_stat(fs, n, &e.attr);
    pthread_mutex_unlock(&fs->lock);
    if (fi != NULL) {
        fi->keep_cache = 1;
        fuse_reply_create(req, &e, fi);
    } else {
        fuse_reply_entry(req, &e);
    }
}

static void
fz_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
          struct fuse_file_info *fi)
{
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    fz_create_node(req, parent, name, EMM_CAT_FILE, mode, fi);
}

static void
fz_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)rdev;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM); /* memory objects and directories only */
        return;
    }
    fz_create_node(req, parent, name, EMM_CAT_FILE, mode, NULL);
}

static void
fz_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fz_create_node(req, parent, name, EMM_CAT_DIR, mode, NULL);
}

static void
fz_remove(fuse_req_t req, fuse_ino_t parent, const char *name, int want_dir)
{
    struct emmd_fs *fs = fs_of(req);
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, parent, &err);
    if (d != NULL)
        err = -emmd_node_remove(fs, d, name, want_dir);
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_err(req, err);
}

static void
fz_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fz_remove(req, parent, name, 0);
}

static void
fz_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fz_remove(req, parent, name, 1);
}

static void
fz_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
          const char *newname, unsigned int flags)
{
    struct emmd_fs *fs = fs_of(req);
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, parent, &err);
    struct emmd_node *nd = d != NULL ? dir_of(fs, newparent, &err) : NULL;
    if (nd != NULL)
        err = -emmd_node_rename(fs, d, name, nd, newname, flags);
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_err(req, err);
}

/* LINK and SYMLINK: fs_link.c; the reply is the new name's entry. */
static void
fz_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct emmd_fs *fs = fs_of(req);
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, newparent, &err), *n = NULL;
    int rc = d != NULL ? emmd_link_hard(fs, emmd_node_by_ino(fs, ino), d, newname, &n) : -err;
    if (rc == 0)
        n->nlookup++;
    pthread_mutex_unlock(&fs->lock);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_entry(req, fs, n);
}

static void
fz_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    struct emmd_fs *fs = fs_of(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, parent, &err), *n = NULL;
    int rc = d != NULL ? emmd_link_symlink(fs, d, name, link, ctx->uid, ctx->gid, &n) : -err;
    if (rc == 0)
        n->nlookup++;
    pthread_mutex_unlock(&fs->lock);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_entry(req, fs, n);
}

static void
fz_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct emmd_fs *fs = fs_of(req);
    char target[EMM_LINK_MAX + 1];
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    if (n == NULL)
        err = ENOENT;
    else if (n->rec.type != EMM_CAT_SYMLINK || n->rec.target == NULL)
        err = EINVAL;
    else
        snprintf(target, sizeof(target), "%s", n->rec.target);
    pthread_mutex_unlock(&fs->lock);
    if (err != 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_readlink(req, target);
}

static void
fz_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct emmd_fs *fs = fs_of(req);
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    if (n != NULL)
        n->nopen++;
    pthread_mutex_unlock(&fs->lock);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fi->keep_cache = 1; /* the page cache stays valid: emmd invalidates it itself */
    fuse_reply_open(req, fi);
}

static void
fz_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct emmd_fs *fs = fs_of(req);
    if (fi->flock_release)
        fz_lk_release(fs, ino, fi->lock_owner); /* cluster_lock.c */
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    if (n != NULL && n->nopen > 0)
        n->nopen--;
    pthread_mutex_unlock(&fs->lock);
    if (n != NULL)
        emmd_node_save(fs, n);
    fuse_reply_err(req, 0);
}

static struct vm_object *
data_vm(fuse_req_t req, fuse_ino_t ino, struct emmd_node **np)
{
    struct emmd_fs *fs = fs_of(req);
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    pthread_mutex_unlock(&fs->lock);
    if (n == NULL) {
        fuse_reply_err(req, ENOENT);
        return NULL;
    }
    struct vm_object *vm;
    int rc = emmd_node_vm(fs, n, &vm);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return NULL;
    }
    if (np != NULL)
        *np = n;
    return vm;
}

/* A READ in flight: its arrival time, for the fault latency histogram. */
struct read_ctx {
    fuse_req_t req;
    struct emmd_fs *fs;
    uint64_t t0;
};

static void
read_done(void *arg, int err, const struct iovec *iov, int iovcnt)
{
    struct read_ctx *rc = arg;
    fuse_req_t req = rc->req;
    struct emmd_fs *fs = rc->fs;
    uint64_t bytes = 0;
    if (err == 0)
        for (int i = 0; i < iovcnt; i++)
            bytes += iov[i].iov_len;
    emmd_hist_record(&fs->read_lat, emmd_now_ns() - rc->t0); /* arrival to reply */
    free(rc);
    if (err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    atomic_fetch_add_explicit(&fs->reads, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&fs->read_bytes, bytes, memory_order_relaxed);
    fuse_reply_iov(req, iov, iovcnt);
}

static void
fz_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    uint64_t t0 = emmd_now_ns();
    struct read_ctx *rc = malloc(sizeof(*rc));
    if (rc == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *rc = (struct read_ctx){req, fs_of(req), t0};
    struct vm_object *vm = data_vm(req, ino, NULL);
    if (vm == NULL) {
        free(rc);
        return;
    }
    vm_object_read(vm, (uint64_t)off, size, read_done, rc);
    vm_object_unref(vm);
}

struct write_ctx {
    fuse_req_t req;
    struct emmd_fs *fs;
    struct emmd_node *n;
    struct vm_object *vm;
    uint64_t end;
    size_t size;
};

static void
write_done(void *arg, int err)
{
    struct write_ctx *wc = arg;
    if (err != 0) {
        fuse_reply_err(wc->req, err);
    } else {
        pthread_mutex_lock(&wc->fs->lock);
        if (vm_object_size(wc->vm) < wc->end)
            vm_object_set_size(wc->vm, wc->end);
        wc->n->rec.mtime_ns = emm_real_ns();
        wc->n->rec_dirty = 1;
        pthread_mutex_unlock(&wc->fs->lock);
        atomic_fetch_add_explicit(&wc->fs->writes, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&wc->fs->write_bytes, wc->size, memory_order_relaxed);
        fuse_reply_write(wc->req, wc->size);
    }
    vm_object_unref(wc->vm);
    free(wc);
}

static void
fz_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
         struct fuse_file_info *fi)
{
    (void)fi;
    struct emmd_node *n;
    struct vm_object *vm = data_vm(req, ino, &n);
    if (vm == NULL)
        return;
    int rc = fs_of(req)->rns != NULL ? emmd_rns_grow(fs_of(req), n, (uint64_t)off + size) : 0;
    struct write_ctx *wc = rc == 0 ? malloc(sizeof(*wc)) : NULL;
    if (wc == NULL) {
        vm_object_unref(vm);
        fuse_reply_err(req, rc < 0 ? -rc : ENOMEM);
        return;
    }
    *wc = (struct write_ctx){req, fs_of(req), n, vm, (uint64_t)off + size, size};
    vm_object_write(vm, (uint64_t)off, buf, size, write_done, wc);
}

struct sync_ctx {
    fuse_req_t req;
    struct emmd_fs *fs;
    struct emmd_node *n;
    struct vm_object *vm;
};

static void
fsync_done(void *arg, int err)
{
    struct sync_ctx *sc = arg;
    if (err == 0) {
        emmd_node_changed(sc->fs, sc->n);
    }
    fuse_reply_err(sc->req, err);
    vm_object_unref(sc->vm);
    free(sc);
}

static void
fz_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    (void)fi;
    struct emmd_node *n;
    struct vm_object *vm = data_vm(req, ino, &n);
    if (vm == NULL)
        return;
    struct sync_ctx *sc = malloc(sizeof(*sc));
    if (sc == NULL) {
        vm_object_unref(vm);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *sc = (struct sync_ctx){req, fs_of(req), n, vm};
    /* The kernel wrote its dirty pages back before FSYNC; now the pager must have them. */
    vm_object_sync(vm, fsync_done, sc);
}

static void
fz_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fz_lk_flush(fs_of(req), ino, fi->lock_owner); /* a close drops its POSIX locks */
    fuse_reply_err(req, 0);
}

static void
punch_done(void *arg, int err)
{
    struct attr_ctx *ac = arg;
    fuse_reply_err(ac->req, err);
    vm_object_unref(ac->vm);
    free(ac);
}

static void
fz_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
             struct fuse_file_info *fi)
{
    (void)fi;
    struct emmd_node *n;
    if (off < 0 || len <= 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (mode != 0 && mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) &&
        mode != FALLOC_FL_KEEP_SIZE) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    struct vm_object *vm = data_vm(req, ino, &n);
    if (vm == NULL)
        return;
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        struct attr_ctx *ac = malloc(sizeof(*ac));
        if (ac == NULL) {
            vm_object_unref(vm);
            fuse_reply_err(req, ENOMEM);
            return;
        }
        *ac = (struct attr_ctx){req, fs_of(req), n, vm};
        uint64_t size = vm_object_size(vm), end = (uint64_t)off + (uint64_t)len;
        if ((uint64_t)off >= size) {
            punch_done(ac, 0);
            return;
        }
        vm_object_punch(vm, (uint64_t)off, (end > size ? size : end) - (uint64_t)off, punch_done,
                        ac);
        return;
    }
    /* Allocation: pages are sparse by nature; only the size may grow. */
    if (!(mode & FALLOC_FL_KEEP_SIZE) && fs_of(req)->rns != NULL) {
        int rc = emmd_rns_grow(fs_of(req), n, (uint64_t)(off + len));
        if (rc < 0) {
            vm_object_unref(vm);
            fuse_reply_err(req, -rc);
            return;
        }
    }
    if (!(mode & FALLOC_FL_KEEP_SIZE) && vm_object_size(vm) < (uint64_t)(off + len)) {
        vm_object_set_size(vm, (uint64_t)(off + len));
        emmd_node_changed(fs_of(req), n);
    }
    vm_object_unref(vm);
    fuse_reply_err(req, 0);
}

/* SEEK_DATA / SEEK_HOLE: the kernel answers from resident pages, swap and the
 * pager (vm_object_seek, which asks the pager with a data_query message): the
 * request is answered when that reply arrives, from whichever thread delivers
 * it. The end of the object counts as a hole. */
struct lseek_ctx {
    fuse_req_t req;
    uint64_t off, size, last;
    int whence;
};

static void
lseek_done(void *arg, uint64_t found)
{
    struct lseek_ctx *lc = arg;
    if (lc->whence == SEEK_DATA && found >= lc->last) {
        fuse_reply_err(lc->req, ENXIO);
    } else {
        uint64_t pos = found >= lc->last ? lc->size : found * EMM_PAGE_SIZE;
        fuse_reply_lseek(lc->req, (off_t)(pos > lc->off ? pos : lc->off));
    }
    free(lc);
}

static void
fz_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
    (void)fi;
    struct emmd_node *n;
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    struct vm_object *vm = data_vm(req, ino, &n);
    if (vm == NULL)
        return;
    uint64_t size = vm_object_size(vm);
    struct lseek_ctx *lc = off >= 0 && (uint64_t)off < size ? malloc(sizeof(*lc)) : NULL;
    if (lc == NULL) {
        vm_object_unref(vm);
        fuse_reply_err(req, off >= 0 && (uint64_t)off < size ? ENOMEM : ENXIO);
        return;
    }
    lc->req = req;
    lc->off = (uint64_t)off;
    lc->size = size;
    lc->last = (size + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE;
    lc->whence = whence;
    vm_object_seek(vm, (uint64_t)off / EMM_PAGE_SIZE, lc->last, whence == SEEK_DATA, lseek_done,
                   lc);
    vm_object_unref(vm);
}

struct statfs_ctx {
    fuse_req_t req;
    struct statvfs sv;
};

static void
statfs_used(void *arg, uint64_t used)
{
    struct statfs_ctx *sc = arg;
    sc->sv.f_blocks += used;
    fuse_reply_statfs(sc->req, &sc->sv);
    free(sc);
}

static void
fz_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct emmd_fs *fs = fs_of(req);
    struct statvfs sv;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = EMM_PAGE_SIZE;
    sv.f_frsize = EMM_PAGE_SIZE;
    sv.f_namemax = EMM_NAME_MAX;
    uint64_t avail_pages;
    if (fs->backend->flags & EMM_BACKEND_PERSISTENT) {
        struct statvfs host;
        if (statvfs(fs->d->cfg->state_dir, &host) == 0)
            avail_pages = (uint64_t)host.f_bavail * host.f_frsize / EMM_PAGE_SIZE;
        else
            avail_pages = 0;
    } else {
        struct sysinfo si;
        sysinfo(&si);
        avail_pages = ((uint64_t)si.freeram + si.freeswap) * si.mem_unit / EMM_PAGE_SIZE;
    }
    pthread_mutex_lock(&fs->lock);
    sv.f_files = fs->nobjects + 1;
    pthread_mutex_unlock(&fs->lock);
    sv.f_blocks = avail_pages; /* plus the pages used, once known */
    sv.f_bfree = avail_pages;
    sv.f_bavail = avail_pages;
    sv.f_ffree = UINT32_MAX;
    sv.f_favail = UINT32_MAX;
    struct statfs_ctx *sc = malloc(sizeof(*sc));
    if (sc == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    sc->req = req;
    sc->sv = sv;
    /* The pages used: what the pagers store plus what only the kernel holds,
     * summed over every object by the kernel and the protocol (stored.c). */
    emmd_fs_stored(fs, statfs_used, sc);
}

/* readdir serves the live directory, entries in id order: the offset after an
 * entry with id X is X + 3 (0 and 1 are "." and ".."), so a later call resumes
 * at the first entry with id > X whatever was added or removed meanwhile: no
 * entry present throughout is skipped or returned twice. */
static void
fz_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct emmd_fs *fs = fs_of(req);
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, ino, &err);
    pthread_mutex_unlock(&fs->lock);
    if (d == NULL) {
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = 0;
    fuse_reply_open(req, fi);
}

static void
fz_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    struct emmd_fs *fs = fs_of(req);
    int err = fs->rns != NULL && off == 0 ? -emmd_rns_readdir(fs, ino) : 0;
    if (err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    char *buf = malloc(size);
    if (buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *d = dir_of(fs, ino, &err);
    if (d == NULL || off < 0)
        goto out;
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_mode = S_IFDIR;
    for (off_t i = off; i < 2; i++) {
        st.st_ino = i == 0 ? emmd_ino(d) : d->parent != NULL ? emmd_ino(d->parent) : emmd_ino(d);
        size_t need = fuse_add_direntry(req, buf + used, size - used, i == 0 ? "." : "..", &st,
                                        i + 1);
        if (need > size - used)
            goto out;
        used += need;
    }
    for (struct emmd_node *n = emmd_dir_next(d, off < 2 ? 0 : (uint64_t)off - 2); n != NULL;
         n = emmd_dir_next(d, n->rec.id + 1)) {
        st.st_ino = emmd_ino(emmd_link_resolve(n)); /* a hard link: its file's */
        st.st_mode = emmd_link_ftype(emmd_link_resolve(n));
        size_t need = fuse_add_direntry(req, buf + used, size - used, n->rec.name, &st,
                                        (off_t)(n->rec.id + 3));
        if (need > size - used)
            break;
        used += need;
    }
out:
    pthread_mutex_unlock(&fs->lock);
    if (err != 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_buf(req, buf, used);
    free(buf);
}

static void
fz_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

const struct fuse_lowlevel_ops fz_ops = {
    .init = fz_init,
    .lookup = fz_lookup,
    .forget = fz_forget,
    .forget_multi = fz_forget_multi,
    .getattr = fz_getattr,
    .setattr = fz_setattr,
    .mknod = fz_mknod,
    .mkdir = fz_mkdir,
    .unlink = fz_unlink,
    .rmdir = fz_rmdir,
    .symlink = fz_symlink,
    .readlink = fz_readlink,
    .rename = fz_rename,
    .link = fz_link,
    .open = fz_open,
    .read = fz_read,
    .write = fz_write,
    .flush = fz_flush,
    .release = fz_release,
    .getlk = fz_getlk, /* cluster_lock.c: pager = tcp: only (fz_lk_init) */
    .setlk = fz_setlk,
    .flock = fz_flock,
    .fsync = fz_fsync,
    .opendir = fz_opendir,
    .readdir = fz_readdir,
    .releasedir = fz_releasedir,
    .statfs = fz_statfs,
    .create = fz_create,
    .fallocate = fz_fallocate,
    .lseek = fz_lseek,
};
