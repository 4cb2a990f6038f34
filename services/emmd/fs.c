/*
 * fs.c - one emmd filesystem: its backend stack, standard pager and catalog,
 * and its flat namespace of nodes (one per memory object).
 *
 * Locking: fs->lock guards the node tables, names, counts and node->rec; it is
 * dropped before calling into the vm layer or the catalog's disk writes where a
 * completion could come back to this file.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "emmd.h"
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
name_hash(const char *s)
{
    return name_hash_full(s) % EMMD_BUCKETS;
}

static void
link_node(struct emmd_fs *fs, struct emmd_node *n)
{
    uint64_t hi = n->rec.id % EMMD_BUCKETS, hn = name_hash(n->rec.name);
    n->next_id = fs->by_id[hi];
    fs->by_id[hi] = n;
    n->next_name = fs->by_name[hn];
    fs->by_name[hn] = n;
    fs->nobjects++;
}

static void
unlink_name(struct emmd_fs *fs, struct emmd_node *n)
{
    struct emmd_node **pp = &fs->by_name[name_hash(n->rec.name)];
    while (*pp != NULL && *pp != n)
        pp = &(*pp)->next_name;
    if (*pp == n)
        *pp = n->next_name;
    n->next_name = NULL;
}

static void
unlink_id(struct emmd_fs *fs, struct emmd_node *n)
{
    struct emmd_node **pp = &fs->by_id[n->rec.id % EMMD_BUCKETS];
    while (*pp != NULL && *pp != n)
        pp = &(*pp)->next_id;
    if (*pp == n)
        *pp = n->next_id;
}

struct emmd_node *
emmd_node_by_ino(struct emmd_fs *fs, fuse_ino_t ino)
{
    if (ino < 2)
        return NULL;
    uint64_t id = ino - 1;
    for (struct emmd_node *n = fs->by_id[id % EMMD_BUCKETS]; n; n = n->next_id)
        if (n->rec.id == id)
            return n;
    return NULL;
}

struct emmd_node *
emmd_node_by_name(struct emmd_fs *fs, const char *name)
{
    for (struct emmd_node *n = fs->by_name[name_hash(name)]; n; n = n->next_name)
        if (!n->unlinked && strcmp(n->rec.name, name) == 0)
            return n;
    return NULL;
}

int
emmd_node_create(struct emmd_fs *fs, const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
                 struct emmd_node **out)
{
    if (strlen(name) > EMM_NAME_MAX)
        return -ENAMETOOLONG;
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
    n->rec.mode = mode & 07777;
    n->rec.uid = uid;
    n->rec.gid = gid;
    n->rec.atime_ns = n->rec.mtime_ns = n->rec.ctime_ns = emm_real_ns();
    rc = emm_catalog_put(fs->catalog, &n->rec);
    if (rc < 0) {
        free(n);
        return rc;
    }
    link_node(fs, n);
    *out = n;
    return 0;
}

/* Ends a node whose name is gone and which the kernel forgot: its pages go. */
static void
node_destroy(struct emmd_fs *fs, struct emmd_node *n)
{
    unlink_id(fs, n);
    fs->nobjects--;
    struct vm_object *vm = n->vm;
    uint64_t id = n->rec.id;
    free(n);
    pthread_mutex_unlock(&fs->lock);
    if (vm != NULL) {
        struct emmd_wait w;
        emmd_wait_init(&w);
        vm_object_terminate(vm, 0, emmd_wait_done, &w);
        emmd_wait(&w);
        vm_object_unref(vm);
    } else {
        emm_backend_discard(fs->backend, id, 0, UINT64_MAX);
    }
    pthread_mutex_lock(&fs->lock);
}

void
emmd_node_unlink(struct emmd_fs *fs, struct emmd_node *n)
{
    unlink_name(fs, n);
    n->unlinked = 1;
    int rc = emm_catalog_del(fs->catalog, n->rec.id);
    if (rc < 0 && rc != -ENOENT)
        emm_err("fs %s: catalog: removing '%s': %s", fs->cfg->name, n->rec.name, strerror(-rc));
    if (n->nlookup == 0)
        node_destroy(fs, n);
}

void
emmd_node_rename(struct emmd_fs *fs, struct emmd_node *n, const char *newname)
{
    unlink_name(fs, n);
    snprintf(n->rec.name, sizeof(n->rec.name), "%s", newname);
    uint64_t hn = name_hash(n->rec.name);
    n->next_name = fs->by_name[hn];
    fs->by_name[hn] = n;
    n->rec.ctime_ns = emm_real_ns();
    if (n->vm != NULL)
        n->rec.size = vm_object_size(n->vm);
    int rc = emm_catalog_put(fs->catalog, &n->rec);
    if (rc < 0)
        emm_err("fs %s: catalog: renaming to '%s': %s", fs->cfg->name, newname, strerror(-rc));
}

void
emmd_node_forget(struct emmd_fs *fs, struct emmd_node *n, uint64_t count)
{
    n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
    if (n->nlookup == 0 && n->unlinked)
        node_destroy(fs, n);
}

int
emmd_node_vm(struct emmd_fs *fs, struct emmd_node *n, struct vm_object **out)
{
    pthread_mutex_lock(&fs->lock);
    if (n->vm == NULL) {
        struct vm_object_args a = {
            .id = n->rec.id,
            .size = n->rec.size,
            .owner = n,
            .temporary = fs->cfg->temporary,
            .dp_key = vm_dp_key(fs->dp_tag, n->rec.id, fs->cfg->temporary),
            .deadline_ms = fs->cfg->pager_deadline_ms,
            .pstats = &fs->pstats,
        };
        int rc = fs->pager != NULL ? pgr_std_object_port(fs->pager, n->rec.id, &a.pager) : 0;
        if (rc == 0)
            rc = vm_object_create(fs->d->kernel, &a, &n->vm);
        if (rc < 0) {
            pthread_mutex_unlock(&fs->lock);
            return rc;
        }
    }
    vm_object_ref(n->vm);
    *out = n->vm;
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

void
emmd_node_save(struct emmd_fs *fs, struct emmd_node *n)
{
    pthread_mutex_lock(&fs->lock);
    if (n->vm != NULL)
        n->rec.size = vm_object_size(n->vm);
    struct emm_catalog_rec rec = n->rec;
    int dirty = n->rec_dirty && !n->unlinked;
    n->rec_dirty = 0;
    pthread_mutex_unlock(&fs->lock);
    if (dirty) {
        int rc = emm_catalog_put(fs->catalog, &rec);
        if (rc < 0)
            emm_err("fs %s: catalog: saving '%s': %s", fs->cfg->name, rec.name, strerror(-rc));
    }
}

void
emmd_node_stat(struct emmd_fs *fs, struct emmd_node *n, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = emmd_ino(n);
    st->st_mode = S_IFREG | n->rec.mode;
    st->st_nlink = n->unlinked ? 0 : 1;
    st->st_uid = n->rec.uid;
    st->st_gid = n->rec.gid;
    st->st_blksize = EMM_PAGE_SIZE;
    uint64_t stored = 0, fresh = 0;
    emm_backend_stored_pages(fs->backend, n->rec.id, &stored);
    if (n->vm != NULL) {
        struct vm_object_info info;
        vm_object_info(n->vm, &info);
        st->st_size = (off_t)info.size;
        fresh = info.new_pages;
    } else {
        st->st_size = (off_t)n->rec.size;
    }
    st->st_blocks = (blkcnt_t)((stored + fresh) * (EMM_PAGE_SIZE / 512));
    st->st_atim.tv_sec = n->rec.atime_ns / 1000000000;
    st->st_atim.tv_nsec = n->rec.atime_ns % 1000000000;
    st->st_mtim.tv_sec = n->rec.mtime_ns / 1000000000;
    st->st_mtim.tv_nsec = n->rec.mtime_ns % 1000000000;
    st->st_ctim.tv_sec = n->rec.ctime_ns / 1000000000;
    st->st_ctim.tv_nsec = n->rec.ctime_ns % 1000000000;
}

int
emmd_fs_open(struct emmd *d, struct emmd_fs *fs, const struct emm_fs_config *cfg, char *err,
             size_t errlen)
{
    memset(fs, 0, sizeof(*fs));
    fs->d = d;
    fs->cfg = cfg;
    fs->dp_tag = (unsigned)(name_hash_full(cfg->name) & VM_DP_FS_MASK);
    pthread_mutex_init(&fs->lock, NULL);
    if (cfg->temporary) {
        /* No pager of its own: the default pager is the objects' pager. The
         * null backend only answers the namespace's storage queries. */
        struct emm_fs_config null_cfg = *cfg;
        null_cfg.backend = "null";
        null_cfg.nbackend_keys = 0;
        return emm_backend_open(d->cfg, &null_cfg, &fs->backend, err, errlen);
    }
    return emm_backend_open(d->cfg, cfg, &fs->backend, err, errlen);
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
    link_node(fs, n);
    /* After a crash the store may hold pages returned after the last size the
     * catalog saw: past the end they must read as zeros if the object grows. */
    uint64_t end = (rec->size + EMM_PAGE_SIZE - 1) / EMM_PAGE_SIZE;
    int rc = emm_backend_discard(fs->backend, rec->id, end, UINT64_MAX);
    if (rc < 0)
        emm_warn("fs %s: '%s': discarding pages past its size: %s", fs->cfg->name, rec->name,
                 strerror(-rc));
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
    int persistent = (fs->backend->flags & EMM_BACKEND_PERSISTENT) != 0;
    snprintf(dir, sizeof(dir), "%s/fs/%s/catalog", fs->d->cfg->state_dir, name);
    struct MDB_env *env = emm_backend_lmdb_env(fs->backend);
    if (env != NULL) {
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
    if (rc < 0) {
        emm_err("fs %s: catalog %s: loading: %s", name, dir, strerror(-rc));
        return rc;
    }
    if (fs->cfg->temporary) {
        emm_info("fs %s: temporary objects (backend none): the default pager is their pager",
                 name);
        return 0;
    }
    rc = pgr_std_create(fs->backend, fs->cfg->pager_threads, fs->d->cfg->busy_poll_us,
                        &fs->pager);
    if (rc < 0)
        return rc;
    emm_info("fs %s: backend %s (%s pager), %llu objects%s", name, fs->cfg->backend,
             pgr_std_is_inline(fs->pager) ? "inline" : "threaded",
             (unsigned long long)fs->nobjects, persistent ? " from the catalog" : "");
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
            n->rec_dirty = 1;
            emmd_node_save(fs, n);
        }
    }
}

void
emmd_fs_close(struct emmd_fs *fs)
{
    /* Persistent objects keep their pages; a volatile backend's vanish with it. */
    int keep = fs->backend != NULL && (fs->backend->flags & EMM_BACKEND_PERSISTENT) &&
               !fs->cfg->temporary;
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
            free(n);
            n = next;
        }
        fs->by_id[b] = NULL;
    }
    if (fs->pager != NULL)
        pgr_std_destroy(fs->pager);
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

void
emmd_wait_init(struct emmd_wait *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = 0;
    w->err = 0;
}

void
emmd_wait_done(void *arg, int err)
{
    struct emmd_wait *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    w->err = err;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int
emmd_wait(struct emmd_wait *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    int err = w->err;
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    return err;
}

/* The vm layer's pager_has_page upcall (st_blocks): owner is the node. Called
 * under the object lock; backend locks are leaves. */
int
emmd_pager_has_page(void *owner, uint64_t index)
{
    struct emmd_node *n = owner;
    return n->fs->pager != NULL && pgr_std_has_page(n->fs->pager, n->rec.id, index);
}
