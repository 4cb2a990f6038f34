/*
 * fz_ops.c - the low-level FUSE operations of an emmd filesystem: a flat root
 * directory whose regular files are memory objects. The only file that calls
 * fuse_reply_* (with fz_loop.c's notifier for invalidations). READ, WRITE,
 * FSYNC, truncation and hole punching are answered asynchronously from whichever
 * thread completes them in the vm layer; nothing here waits for a pager.
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
#include "emmd.h"
#include "log.h"

#define ENTRY_TIMEOUT 60.0
#define ATTR_TIMEOUT 1.0

static struct emmd_fs *
fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static void
root_stat(struct emmd_fs *fs, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = FUSE_ROOT_ID;
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_mtime = fs->d->start_time;
    st->st_ctime = fs->d->start_time;
}

static void
reply_entry(fuse_req_t req, struct emmd_fs *fs, struct emmd_node *n)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = emmd_ino(n);
    e.generation = 1;
    e.attr_timeout = ATTR_TIMEOUT;
    e.entry_timeout = ENTRY_TIMEOUT;
    emmd_node_stat(fs, n, &e.attr);
    fuse_reply_entry(req, &e);
}

/* Looks a node up and takes a kernel lookup reference; fs->lock held. */
static struct emmd_node *
node_lookup_ref(struct emmd_fs *fs, const char *name)
{
    struct emmd_node *n = emmd_node_by_name(fs, name);
    if (n != NULL)
        n->nlookup++;
    return n;
}

static void
fz_init(void *userdata, struct fuse_conn_info *conn)
{
    struct emmd_fs *fs = userdata;
    conn->max_read = 1u << 20; /* must match the max_read mount option */
    conn->max_write = 1u << 20;
    conn->max_readahead = (unsigned)fs->cfg->readahead;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE; /* every write(2) reaches the pool */
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
}

static void
fz_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct emmd_fs *fs = fs_of(req);
    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = node_lookup_ref(fs, name);
    pthread_mutex_unlock(&fs->lock);
    if (n == NULL) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = 1.0; /* negative entry */
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

static void
fz_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct emmd_fs *fs = fs_of(req);
    struct stat st;
    if (ino == FUSE_ROOT_ID) {
        root_stat(fs, &st);
        fuse_reply_attr(req, &st, ATTR_TIMEOUT);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    if (n != NULL)
        emmd_node_stat(fs, n, &st);
    pthread_mutex_unlock(&fs->lock);
    if (n == NULL)
        fuse_reply_err(req, ENOENT);
    else
        fuse_reply_attr(req, &st, ATTR_TIMEOUT);
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
    struct stat st;
    pthread_mutex_lock(&fs->lock);
    emmd_node_stat(fs, n, &st);
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_attr(req, &st, ATTR_TIMEOUT);
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
    if (ino == FUSE_ROOT_ID) {
        fuse_reply_err(req, EPERM);
        return;
    }
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
fz_create_node(fuse_req_t req, const char *name, mode_t mode, struct fuse_file_info *fi)
{
    struct emmd_fs *fs = fs_of(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_name(fs, name);
    int rc = 0;
    if (n != NULL) {
        rc = -EEXIST;
    } else {
        rc = emmd_node_create(fs, name, mode, ctx->uid, ctx->gid, &n);
        if (rc == 0)
            n->nlookup++;
    }
    if (rc == 0 && fi != NULL)
        n->nopen++;
    pthread_mutex_unlock(&fs->lock);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = emmd_ino(n);
    e.generation = 1;
    e.attr_timeout = ATTR_TIMEOUT;
    e.entry_timeout = ENTRY_TIMEOUT;
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
    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    fz_create_node(req, name, mode, fi);
}

static void
fz_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)rdev;
    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM); /* memory objects only */
        return;
    }
    fz_create_node(req, name, mode, NULL);
}

static void
fz_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)parent;
    (void)name;
    (void)mode;
    fuse_reply_err(req, EPERM); /* a flat namespace of memory objects */
}

static void
fz_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct emmd_fs *fs = fs_of(req);
    if (parent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_name(fs, name);
    if (n != NULL)
        emmd_node_unlink(fs, n);
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_err(req, n ? 0 : ENOENT);
}

static void
fz_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
          const char *newname, unsigned int flags)
{
    struct emmd_fs *fs = fs_of(req);
    if (parent != FUSE_ROOT_ID || newparent != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (flags & RENAME_EXCHANGE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (strlen(newname) > EMM_NAME_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    int err = 0;
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_name(fs, name);
    struct emmd_node *target = emmd_node_by_name(fs, newname);
    if (n == NULL)
        err = ENOENT;
    else if (target == n)
        err = 0;
    else if (target != NULL && (flags & RENAME_NOREPLACE))
        err = EEXIST;
    else {
        if (target != NULL)
            emmd_node_unlink(fs, target);
        emmd_node_rename(fs, n, newname);
    }
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_err(req, err);
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
    (void)fi;
    struct emmd_fs *fs = fs_of(req);
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

static void
read_done(void *arg, int err, const struct iovec *iov, int iovcnt)
{
    fuse_req_t req = arg;
    if (err != 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_iov(req, iov, iovcnt);
}

static void
fz_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    struct vm_object *vm = data_vm(req, ino, NULL);
    if (vm == NULL)
        return;
    vm_object_read(vm, (uint64_t)off, size, read_done, req);
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
    struct write_ctx *wc = malloc(sizeof(*wc));
    if (wc == NULL) {
        vm_object_unref(vm);
        fuse_reply_err(req, ENOMEM);
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
        sc->n->rec_dirty = 1;
        emmd_node_save(sc->fs, sc->n);
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
    (void)ino;
    (void)fi;
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
    if (!(mode & FALLOC_FL_KEEP_SIZE) && vm_object_size(vm) < (uint64_t)(off + len)) {
        vm_object_set_size(vm, (uint64_t)(off + len));
        n->rec_dirty = 1;
        emmd_node_save(fs_of(req), n);
    }
    vm_object_unref(vm);
    fuse_reply_err(req, 0);
}

/* The vm layer's pager_seek upcall: owner is the node. Called without the
 * object lock. A temporary object's pager is the default pager, which the
 * kernel asks itself. */
int
emmd_pager_seek(void *owner, uint64_t from, int want_data, uint64_t *found)
{
    struct emmd_node *n = owner;
    int rc = emm_backend_seek(n->fs->backend, n->rec.id, from, want_data, found);
    if (rc == -ENXIO && want_data) {
        *found = UINT64_MAX;
        return 0;
    }
    return rc;
}

/* SEEK_DATA / SEEK_HOLE: the kernel answers from resident pages, swap and the
 * pager (vm_object_seek); the end of the object counts as a hole. */
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
    if (off < 0 || (uint64_t)off >= size) {
        vm_object_unref(vm);
        fuse_reply_err(req, ENXIO);
        return;
    }
    uint64_t page = (uint64_t)off / EMM_PAGE_SIZE;
    uint64_t last = (size + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE;
    uint64_t found = vm_object_seek(vm, page, last, whence == SEEK_DATA);
    vm_object_unref(vm);
    if (whence == SEEK_DATA && found >= last) {
        fuse_reply_err(req, ENXIO);
        return;
    }
    uint64_t pos = found >= last ? size : found * EMM_PAGE_SIZE;
    fuse_reply_lseek(req, (off_t)(pos > (uint64_t)off ? pos : (uint64_t)off));
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
    uint64_t used = 0;
    pthread_mutex_lock(&fs->lock);
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
            uint64_t c = 0;
            emm_backend_stored_pages(fs->backend, n->rec.id, &c);
            used += c;
        }
    sv.f_files = fs->nobjects + 1;
    pthread_mutex_unlock(&fs->lock);
    sv.f_blocks = used + avail_pages;
    sv.f_bfree = avail_pages;
    sv.f_bavail = avail_pages;
    sv.f_ffree = UINT32_MAX;
    sv.f_favail = UINT32_MAX;
    fuse_reply_statfs(req, &sv);
}

/* readdir: a snapshot of the names taken at opendir, served by offset. Open
 * snapshots are listed on the filesystem (fs->lock): a RELEASEDIR still in
 * flight at unmount never arrives, and fz_dirs_free frees what is left. */
struct fz_dir {
    struct fz_dir *next, *prev;
    size_t n;
    struct {
        fuse_ino_t ino;
        char name[EMM_NAME_MAX + 1];
    } e[];
};

static void
fz_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct emmd_fs *fs = fs_of(req);
    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    size_t cap = fs->nobjects;
    struct fz_dir *s = malloc(sizeof(*s) + (cap + 1) * sizeof(s->e[0]));
    if (s == NULL) {
        pthread_mutex_unlock(&fs->lock);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    s->n = 0;
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n && s->n < cap; n = n->next_id)
            if (!n->unlinked) {
                s->e[s->n].ino = emmd_ino(n);
                memcpy(s->e[s->n].name, n->rec.name, sizeof(n->rec.name));
                s->n++;
            }
    s->prev = NULL;
    s->next = fs->dirs;
    if (fs->dirs != NULL)
        fs->dirs->prev = s;
    fs->dirs = s;
    pthread_mutex_unlock(&fs->lock);
    fi->fh = (uint64_t)(uintptr_t)s;
    fuse_reply_open(req, fi);
}

static void
fz_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    struct fz_dir *s = (struct fz_dir *)(uintptr_t)fi->fh;
    char *buf = malloc(size);
    if (buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    for (off_t i = off; (size_t)i < s->n + 2; i++) {
        struct stat st;
        memset(&st, 0, sizeof(st));
        const char *name;
        if (i == 0 || i == 1) {
            st.st_ino = FUSE_ROOT_ID;
            st.st_mode = S_IFDIR;
            name = i == 0 ? "." : "..";
        } else {
            st.st_ino = s->e[i - 2].ino;
            st.st_mode = S_IFREG;
            name = s->e[i - 2].name;
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void
dir_unlink(struct emmd_fs *fs, struct fz_dir *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        fs->dirs = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
}

static void
fz_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct emmd_fs *fs = fs_of(req);
    struct fz_dir *s = (struct fz_dir *)(uintptr_t)fi->fh;
    pthread_mutex_lock(&fs->lock);
    dir_unlink(fs, s);
    pthread_mutex_unlock(&fs->lock);
    free(s);
    fuse_reply_err(req, 0);
}

void
fz_dirs_free(struct emmd_fs *fs)
{
    pthread_mutex_lock(&fs->lock);
    while (fs->dirs != NULL) {
        struct fz_dir *s = fs->dirs;
        dir_unlink(fs, s);
        free(s);
    }
    pthread_mutex_unlock(&fs->lock);
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
    .rename = fz_rename,
    .open = fz_open,
    .read = fz_read,
    .write = fz_write,
    .flush = fz_flush,
    .release = fz_release,
    .fsync = fz_fsync,
    .opendir = fz_opendir,
    .readdir = fz_readdir,
    .releasedir = fz_releasedir,
    .statfs = fz_statfs,
    .create = fz_create,
    .fallocate = fz_fallocate,
    .lseek = fz_lseek,
};
