/*
 * emmd.h - the kernel service's shared types: the daemon, its filesystems and
 * their nodes (one node per memory object in the flat namespace of a mount).
 *
 * Locking: fs->lock guards a filesystem's node tables, names, lookup and open
 * counts and node->rec. node->vm is set once under fs->lock and then only read.
 * Never call into the vm layer (which may complete synchronously and call back)
 * while holding fs->lock.
 */
#ifndef EMMD_H
#define EMMD_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "backend_host.h"
#include "catalog.h"
#include "config.h"
#include "default_pager.h"
#include "pager_std.h"
#include "vm_object.h"

#define EMMD_BUCKETS 1024

struct emmd_fs;

struct emmd_node {
    struct emmd_node *next_id, *next_name;
    struct emmd_fs *fs;
    struct emm_catalog_rec rec; /* rec.size is stale while vm exists: vm owns the size */
    struct vm_object *vm;
    uint64_t nlookup;
    uint64_t nopen;
    int unlinked;
    int rec_dirty; /* size or times changed since the catalog last saw them */
};

struct fz_notifier;
struct fz_dir;

struct emmd_fs {
    struct emmd *d;
    const struct emm_fs_config *cfg;
    struct emm_backend *backend; /* backend = none: the null backend, for queries */
    struct pgr_std *pager;       /* NULL for temporary objects (backend = none) */
    unsigned dp_tag;             /* names the filesystem at the default pager */
    struct vm_pager_stats pstats;
    struct emm_catalog *catalog;
    pthread_mutex_t lock;
    struct emmd_node *by_id[EMMD_BUCKETS];
    struct emmd_node *by_name[EMMD_BUCKETS];
    uint64_t nobjects;
    struct fuse_session *se;
    struct fz_notifier *notifier;
    pthread_t *threads;
    unsigned nthreads;
    atomic_int spinner;              /* one loop thread busy-polls at a time */
    atomic_uint_fast64_t last_request_ns;
    int mounted;
    struct fz_dir *dirs; /* open directory snapshots (fz_ops.c) */
    uint64_t fuse_requests;
};

struct emmd {
    struct emm_config *cfg;
    struct vm_kernel *kernel;
    struct swp_dpager *dpager; /* the default pager, NULL without swap */
    struct emmd_fs *fs;
    size_t nfs;
    int64_t start_time;
    atomic_int stopping;
};

/* fs.c: filesystems and their namespace */
int emmd_fs_open(struct emmd *d, struct emmd_fs *fs, const struct emm_fs_config *cfg, char *err,
                 size_t errlen);                  /* backend stack, validated, not started */
int emmd_fs_start(struct emmd_fs *fs);           /* backend, catalog, pager, nodes */
void emmd_fs_replay_swap(struct emmd_fs *fs);    /* map objects swap holds pages of */
void emmd_fs_flush_all(struct emmd_fs *fs);      /* return every dirty page, persist sizes */
void emmd_fs_close(struct emmd_fs *fs);
struct emmd_node *emmd_node_by_ino(struct emmd_fs *fs, fuse_ino_t ino); /* fs->lock held */
struct emmd_node *emmd_node_by_name(struct emmd_fs *fs, const char *name); /* fs->lock held */
int emmd_node_create(struct emmd_fs *fs, const char *name, uint32_t mode, uint32_t uid,
                     uint32_t gid, struct emmd_node **out); /* fs->lock held */
void emmd_node_unlink(struct emmd_fs *fs, struct emmd_node *n); /* fs->lock held */
void emmd_node_rename(struct emmd_fs *fs, struct emmd_node *n, const char *newname);
void emmd_node_forget(struct emmd_fs *fs, struct emmd_node *n, uint64_t count);
int emmd_node_vm(struct emmd_fs *fs, struct emmd_node *n, struct vm_object **out); /* ref'd */
void emmd_node_save(struct emmd_fs *fs, struct emmd_node *n); /* persist rec if dirty */
void emmd_node_stat(struct emmd_fs *fs, struct emmd_node *n, struct stat *st);
int emmd_pager_has_page(void *owner, uint64_t index);
int emmd_pager_seek(void *owner, uint64_t from, int want_data, uint64_t *found); /* fz_ops.c */
static inline fuse_ino_t emmd_ino(const struct emmd_node *n) { return n->rec.id + 1; }

/* fz_ops.c / fz_loop.c / fz_notify.c: the FUSE front end */
extern const struct fuse_lowlevel_ops fz_ops;
int fz_mount(struct emmd_fs *fs);   /* session, mount, loop threads, bdi tuning */
void fz_unmount(struct emmd_fs *fs);
void fz_dirs_free(struct emmd_fs *fs); /* after the session is gone */
int fz_notifier_start(struct emmd_fs *fs);
void fz_notifier_stop(struct emmd_fs *fs);
void fz_invalidate(void *owner, uint64_t off, uint64_t len, void (*done)(void *), void *arg);

/* commands.c: control-socket commands */
int emmd_command(void *ctx, int argc, char **argv, FILE *out);

/* Waiting for an asynchronous vm completion from a thread that may block. */
struct emmd_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
};
void emmd_wait_init(struct emmd_wait *w);
void emmd_wait_done(void *arg, int err); /* a vm_done_fn */
int emmd_wait(struct emmd_wait *w);

#endif
