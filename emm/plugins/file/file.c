/*
 * plugins/file.c - the "file" backend, built as the plug-in file.so: one sparse
 * file per object, named by the object id in 16 hex digits, under file.dir
 * (default STATE_DIR/fs/NAME/pages, from host->state_dir). Page i lives at
 * offset i * EMM_PAGE_SIZE; holes are pages never written (or discarded), found
 * with SEEK_DATA/SEEK_HOLE. Files are created on first write. Pages survive a
 * restart (PERSISTENT). stored_pages comes from st_blocks, so it may count a
 * file system's metadata blocks (exact on ext4 and tmpfs for files with few
 * extents).
 *
 * It proves the plug-in ABI: it includes <emm/backend.h> and libc only, logs
 * through host->log, and exports nothing but emm_backend_init (hidden
 * visibility and plugin.syms).
 *
 * Locking: `lock` guards the fd cache (a bounded table with an LRU clock and a
 * reference count per entry; an entry in use is never closed). All I/O runs
 * outside it with pread/pwrite, so calls on any objects may overlap: thread
 * model PARALLEL.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* fallocate, syncfs, SEEK_DATA, asprintf */
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <emm/backend.h>

#define FD_CACHE 256
#define FD_BUCKETS 512
#define MAX_PAGE ((uint64_t)INT64_MAX / EMM_PAGE_SIZE) /* first page past off_t */

struct fent {
    uint64_t obj;
    int fd;        /* -1: slot free */
    unsigned refs;
    uint64_t tick; /* last use, for LRU */
    int dirty;     /* written since its last fdatasync */
    int hnext;     /* next index in its hash chain, -1 at the end */
    int temp;      /* opened outside the cache (cache full of busy fds) */
};

struct fb {
    const struct emm_backend_host *host;
    char *dir;
    int dirfd;
    pthread_mutex_t lock;
    uint64_t clock;
    int evicted_dirty; /* a dirty fd was closed: sync(all) must syncfs */
    _Atomic int dir_dirty; /* a file was created since the directory was synced */
    int buckets[FD_BUCKETS];
    struct fent ents[FD_CACHE];
};

static unsigned
bucket_of(uint64_t obj)
{
    return (unsigned)((obj * 0x9E3779B97F4A7C15ull) >> 55) & (FD_BUCKETS - 1);
}

static int
fb_create(const struct emm_backend_host *host, void **instance)
{
    struct fb *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->host = host;
    f->dirfd = -1;
    pthread_mutex_init(&f->lock, NULL);
    for (int i = 0; i < FD_BUCKETS; i++)
        f->buckets[i] = -1;
    for (int i = 0; i < FD_CACHE; i++)
        f->ents[i].fd = -1;
    *instance = f;
    return 0;
}

static int
fb_config(void *instance, const char *key, const char *value, char *err, size_t errlen)
{
    struct fb *f = instance;

    if (strcmp(key, "dir") == 0) {
        if (value[0] != '/') {
            snprintf(err, errlen, "'%s' is not an absolute path", value);
            return -EINVAL;
        }
        free(f->dir);
        f->dir = strdup(value);
        return f->dir ? 0 : -ENOMEM;
    }
    snprintf(err, errlen, "unknown key (file takes: dir)");
    return -EINVAL;
}

static int
fb_config_complete(void *instance, char *err, size_t errlen)
{
    struct fb *f = instance;

    if (!f->dir && asprintf(&f->dir, "%s/pages", f->host->state_dir) < 0) {
        f->dir = NULL;
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int
fb_start(void *instance)
{
    struct fb *f = instance;
    char *copy = strdup(f->dir);

    if (!copy)
        return -ENOMEM;
    for (char *s = copy + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
            int e = errno;
            f->host->log(f->host, EMM_LOG_ERR, "cannot create %s: %s", copy, strerror(e));
            free(copy);
            return -e;
        }
        *s = c;
        if (!c)
            break;
    }
    free(copy);
    f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0) {
        int e = errno;
        f->host->log(f->host, EMM_LOG_ERR, "cannot open %s: %s", f->dir, strerror(e));
        return -e;
    }
    return 0;
}

static void
fb_stop(void *instance)
{
    struct fb *f = instance;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < FD_CACHE; i++) {
        if (f->ents[i].fd >= 0)
            close(f->ents[i].fd);
        f->ents[i].fd = -1;
    }
    for (int i = 0; i < FD_BUCKETS; i++)
        f->buckets[i] = -1;
    pthread_mutex_unlock(&f->lock);
    if (f->dirfd >= 0)
        close(f->dirfd);
    f->dirfd = -1;
}

static void
fb_destroy(void *instance)
{
    struct fb *f = instance;
    if (f->dirfd >= 0)
        fb_stop(f);
    pthread_mutex_destroy(&f->lock);
    free(f->dir);
    free(f);
}

/* ---- fd cache ------------------------------------------------------------ */

static struct fent *
cache_find(struct fb *f, uint64_t obj)
{
    for (int i = f->buckets[bucket_of(obj)]; i >= 0; i = f->ents[i].hnext)
        if (f->ents[i].obj == obj)
            return &f->ents[i];
    return NULL;
}

static void
cache_unlink(struct fb *f, struct fent *e)
{
    int idx = (int)(e - f->ents);
    for (int *p = &f->buckets[bucket_of(e->obj)]; *p >= 0; p = &f->ents[*p].hnext) {
        if (*p == idx) {
            *p = e->hnext;
            return;
        }
    }
}

/* A free slot, evicting the least recently used idle entry; NULL if all busy. */
static struct fent *
cache_slot(struct fb *f)
{
    struct fent *victim = NULL;
    for (int i = 0; i < FD_CACHE; i++) {
        struct fent *e = &f->ents[i];
        if (e->fd < 0)
            return e;
        if (e->refs == 0 && (!victim || e->tick < victim->tick))
            victim = e;
    }
    if (victim) {
        cache_unlink(f, victim);
        if (victim->dirty)
            f->evicted_dirty = 1;
        close(victim->fd);
        victim->fd = -1;
    }
    return victim;
}

/* Opens object's file (creating it if create). -ENOENT if absent. */
static int
open_obj(struct fb *f, uint64_t obj, int create)
{
    char name[24];
    int fd;

    if (f->dirfd < 0)
        return -EBADF;
    snprintf(name, sizeof(name), "%016" PRIx64, obj);
    fd = openat(f->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        fd = openat(f->dirfd, name, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0600);
        if (fd >= 0)
            atomic_store(&f->dir_dirty, 1);
        else if (errno == EEXIST)
            fd = openat(f->dirfd, name, O_RDWR | O_CLOEXEC);
    }
    if (fd < 0) {
        int e = errno;
        if (e != ENOENT)
            f->host->log(f->host, EMM_LOG_ERR, "cannot open %s/%s: %s", f->dir, name,
                         strerror(e));
        return -e;
    }
    return fd;
}

/* Takes a reference on obj's cached fd, opening it on a miss. */
static int
fd_get(struct fb *f, uint64_t obj, int create, struct fent **out)
{
    struct fent *e;
    int fd;

    pthread_mutex_lock(&f->lock);
    e = cache_find(f, obj);
    if (e) {
        e->refs++;
        e->tick = ++f->clock;
        pthread_mutex_unlock(&f->lock);
        *out = e;
        return 0;
    }
    pthread_mutex_unlock(&f->lock);

    fd = open_obj(f, obj, create);
    if (fd < 0)
        return fd;

    pthread_mutex_lock(&f->lock);
    e = cache_find(f, obj); /* raced with another opener? use theirs */
    if (e) {
        close(fd);
    } else if ((e = cache_slot(f)) != NULL) {
        unsigned b = bucket_of(obj);
        e->obj = obj;
        e->fd = fd;
        e->dirty = 0;
        e->temp = 0;
        e->hnext = f->buckets[b];
        f->buckets[b] = (int)(e - f->ents);
    } else {
        e = calloc(1, sizeof(*e));
        if (!e) {
            pthread_mutex_unlock(&f->lock);
            close(fd);
            return -ENOMEM;
        }
        e->obj = obj;
        e->fd = fd;
        e->temp = 1;
    }
    e->refs++;
    e->tick = ++f->clock;
    pthread_mutex_unlock(&f->lock);
    *out = e;
    return 0;
}

static void
fd_put(struct fb *f, struct fent *e, int dirtied)
{
    pthread_mutex_lock(&f->lock);
    if (dirtied)
        e->dirty = 1;
    e->refs--;
    if (e->temp) {
        if (e->dirty)
            f->evicted_dirty = 1;
        close(e->fd);
        free(e);
    }
    pthread_mutex_unlock(&f->lock);
}

/* ---- data path ------------------------------------------------------------ */

static int
fb_read(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
        uint8_t *present)
{
    struct fb *f = instance;
    struct fent *e;
    size_t len = (size_t)npages * EMM_PAGE_SIZE, done = 0;
    int r;

    memset(present, 0, npages);
    if (first >= MAX_PAGE || MAX_PAGE - first < npages ||
        (r = fd_get(f, object, 0, &e)) == -ENOENT) {
        memset(buf, 0, len);
        return 0;
    }
    if (r < 0)
        return r;
    off_t base = (off_t)(first * EMM_PAGE_SIZE), end = base + (off_t)len;
    while (done < len) {
        ssize_t n = pread(e->fd, (char *)buf + done, len - done, base + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            goto out;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    memset((char *)buf + done, 0, len - done);
    /* Mark the data extents within [base, end) present. */
    for (off_t pos = base; pos < end;) {
        off_t d = lseek(e->fd, pos, SEEK_DATA);
        if (d < 0 || d >= end)
            break; /* ENXIO: nothing more */
        off_t h = lseek(e->fd, d, SEEK_HOLE);
        if (h < 0 || h > end)
            h = end;
        for (uint64_t p = (uint64_t)(d - base) / EMM_PAGE_SIZE;
             p < ((uint64_t)(h - base) + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE; p++)
            present[p] = 1;
        pos = h;
    }
    r = 0;
out:
    fd_put(f, e, 0);
    return r;
}

static int
fb_write(void *instance, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    struct fb *f = instance;
    struct fent *e;
    size_t len = (size_t)npages * EMM_PAGE_SIZE, done = 0;
    int r;

    if (first >= MAX_PAGE || MAX_PAGE - first < npages)
        return -EFBIG;
    r = fd_get(f, object, 1, &e);
    if (r < 0)
        return r;
    off_t base = (off_t)(first * EMM_PAGE_SIZE);
    while (done < len) {
        ssize_t n = pwrite(e->fd, (const char *)buf + done, len - done, base + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        done += (size_t)n;
    }
    fd_put(f, e, 1);
    return r;
}

static int
fb_discard(void *instance, uint64_t object, uint64_t first, uint64_t npages)
{
    struct fb *f = instance;
    struct fent *e;
    struct stat st;
    int r;

    if (first >= MAX_PAGE)
        return 0;
    r = fd_get(f, object, 0, &e);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (fstat(e->fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    off_t off = (off_t)(first * EMM_PAGE_SIZE);
    int to_end = npages == UINT64_MAX || npages >= MAX_PAGE - first ||
                 off + (off_t)(npages * EMM_PAGE_SIZE) >= st.st_size;
    if (off >= st.st_size) {
        r = 0;
    } else if (to_end) {
        r = ftruncate(e->fd, off) < 0 ? -errno : 0;
    } else {
        r = fallocate(e->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                      (off_t)(npages * EMM_PAGE_SIZE)) < 0
                ? -errno
                : 0;
    }
out:
    fd_put(f, e, r == 0);
    return r;
}

static int
sync_dir(struct fb *f)
{
    if (atomic_exchange(&f->dir_dirty, 0) && fsync(f->dirfd) < 0) {
        atomic_store(&f->dir_dirty, 1);
        return -errno;
    }
    return 0;
}

static int
sync_all(struct fb *f)
{
    struct fent *busy[FD_CACHE];
    int n = 0, r = 0, syncfs_needed;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < FD_CACHE; i++) {
        struct fent *e = &f->ents[i];
        if (e->fd >= 0 && e->dirty) {
            e->dirty = 0;
            e->refs++;
            busy[n++] = e;
        }
    }
    syncfs_needed = f->evicted_dirty;
    f->evicted_dirty = 0;
    pthread_mutex_unlock(&f->lock);

    for (int i = 0; i < n; i++) {
        int fr = fdatasync(busy[i]->fd) < 0 ? -errno : 0;
        if (fr < 0 && r == 0)
            r = fr;
        fd_put(f, busy[i], fr < 0);
    }
    if (syncfs_needed && syncfs(f->dirfd) < 0 && r == 0)
        r = -errno;
    int dr = sync_dir(f);
    if (r == 0)
        r = dr;
    if (r < 0)
        f->host->log(f->host, EMM_LOG_ERR, "sync of %s failed: %s", f->dir, strerror(-r));
    return r;
}

static int
fb_sync(void *instance, uint64_t object)
{
    struct fb *f = instance;
    struct fent *e;
    int r;

    if (f->dirfd < 0)
        return -EBADF;
    if (object == UINT64_MAX)
        return sync_all(f);
    r = fd_get(f, object, 0, &e);
    if (r == -ENOENT)
        return sync_dir(f);
    if (r < 0)
        return r;
    pthread_mutex_lock(&f->lock);
    e->dirty = 0;
    pthread_mutex_unlock(&f->lock);
    r = fdatasync(e->fd) < 0 ? -errno : 0;
    fd_put(f, e, r < 0);
    if (r == 0)
        r = sync_dir(f);
    if (r < 0)
        f->host->log(f->host, EMM_LOG_ERR, "sync of object %" PRIx64 " failed: %s", object,
                     strerror(-r));
    return r;
}

static int
fb_seek(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found)
{
    struct fb *f = instance;
    struct fent *e;
    int r;

    if (from >= MAX_PAGE) {
        if (want_data)
            return -ENXIO;
        *found = from;
        return 0;
    }
    r = fd_get(f, object, 0, &e);
    if (r == -ENOENT) {
        if (want_data)
            return -ENXIO;
        *found = from;
        return 0;
    }
    if (r < 0)
        return r;
    off_t pos = lseek(e->fd, (off_t)(from * EMM_PAGE_SIZE), want_data ? SEEK_DATA : SEEK_HOLE);
    if (pos < 0) {
        r = -errno;
        if (r == -ENXIO && !want_data) { /* at or past the end: all hole */
            *found = from;
            r = 0;
        }
    } else if (want_data) {
        *found = (uint64_t)pos / EMM_PAGE_SIZE;
    } else {
        uint64_t p = ((uint64_t)pos + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE;
        *found = p > from ? p : from;
    }
    fd_put(f, e, 0);
    return r;
}

static int
fb_stored_pages(void *instance, uint64_t object, uint64_t *count)
{
    struct fb *f = instance;
    struct fent *e;
    struct stat st;
    int r;

    *count = 0;
    r = fd_get(f, object, 0, &e);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (fstat(e->fd, &st) < 0)
        r = -errno;
    else
        *count = ((uint64_t)st.st_blocks * 512 + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE;
    fd_put(f, e, 0);
    return r;
}

static int
fb_info(void *instance, char *buf, size_t len)
{
    struct fb *f = instance;
    int open_fds = 0;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < FD_CACHE; i++)
        open_fds += f->ents[i].fd >= 0;
    pthread_mutex_unlock(&f->lock);
    int w = snprintf(buf, len, "dir:%s\nopen_files:%d\nopen_files_max:%d\n", f->dir, open_fds,
                     FD_CACHE);
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

static struct emm_backend_ops fb_ops = {
    .name = "file",
    .flags = EMM_BACKEND_PERSISTENT,
    .create = fb_create,
    .config = fb_config,
    .config_complete = fb_config_complete,
    .start = fb_start,
    .stop = fb_stop,
    .destroy = fb_destroy,
    .read_pages = fb_read,
    .write_pages = fb_write,
    .discard = fb_discard,
    .sync = fb_sync,
    .seek = fb_seek,
    .stored_pages = fb_stored_pages,
    .info = fb_info,
};

EMM_BACKEND_REGISTER(fb_ops, EMM_THREAD_PARALLEL)
