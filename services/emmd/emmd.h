/*
 * emmd.h - the kernel service's shared types: the daemon, its filesystems and
 * their nodes (a tree per mount: directories, and regular files that are
 * memory objects).
 *
 * Locking: fs->lock guards a filesystem's node tables, the tree (parent, kids),
 * names, lookup and open counts, node->rec and node->rec_dirty. node->vm is set once under
 * fs->lock and then only read.
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
#include "latency.h"
#include "pager_std.h"
#include "vm_object.h"

#define EMMD_BUCKETS 1024
#define EMMD_MAX_FS 64 /* filesystems in one emmd's life, those added by reloads included */

struct emmd_fs;

struct emmd_node {
    struct emmd_node *next_id, *next_name;
    struct emmd_fs *fs;
    struct emm_catalog_rec rec; /* rec.size is stale while vm exists: vm owns the size */
    struct emmd_node *parent;   /* the directory holding it; NULL for the root and once unlinked */
    /* A directory's entries, sorted by id (readdir's offsets are ids). */
    struct emmd_node **kids;
    size_t nkids, capkids;
    uint32_t nsubdirs;          /* kids that are directories (nlink = 2 + nsubdirs) */
    struct vm_object *vm;       /* files only; a directory never has pages */
    uint64_t nlookup;
    uint64_t nopen;
    int unlinked;
    int rec_dirty; /* size or times changed since the catalog last saw them (fs->lock) */
    /* The pages its pager stores, as it last said through the kernel
     * (stored.c; fs->lock): kept for an object not mapped, whose count only
     * the kernel could change, and refreshed at every answer for one mapped. */
    uint64_t stored_pages;
    int stored_known;
    /* fs_link.c (fs->lock): an object's other names (EMM_CAT_HLINK entries,
     * chained by next_link), and an entry's object. */
    struct emmd_node *links, *next_link, *obj;
    uint64_t rns_size; /* remote_ns.c: the size the memory server last gave (fs->lock) */
    /* Pages from tail_from on may be stale (a crash after the catalog saw the
     * size): discarded through the protocol at start, or at the first mapping
     * if the pager could not be asked then (fs.c; fs->lock). */
    int tail_pending;
    uint64_t tail_from;
};

struct fz_notifier;
struct emmd_pager_conn;
struct emmd_rns;
struct emmd_asker;

struct emmd_fs {
    struct emmd *d;
    const struct emm_fs_config *cfg;
    struct emm_backend *backend; /* backend = none: the null backend, for queries */
    struct pgr_std *pager;       /* NULL for temporary objects (backend = none), and for a
                                    pager outside emmd (pconn) */
    struct emmd_pager_conn *pconn; /* pager = process | unix:PATH (pager_conn.c) */
    struct emmd_rns *rns;          /* pager = tcp: the memory server's namespace (remote_ns.c) */
    struct emmd_asker *asker;      /* with pconn: looks up ports for queries (stored.c) */
    unsigned dp_tag;             /* names the filesystem at the default pager */
    struct vm_pager_stats pstats;
    /* pager.deadline in force: cfg's at open, then what a reload set
     * (emmd_fs_set_deadline); new objects take it under lock. */
    _Atomic uint64_t deadline_ms;
    struct emm_catalog *catalog;
    pthread_mutex_t lock;
    struct emmd_node *by_id[EMMD_BUCKETS];
    struct emmd_node *by_name[EMMD_BUCKETS]; /* linked nodes by (parent id, name) */
    struct emmd_node *root;                  /* id EMM_CATALOG_ROOT, FUSE_ROOT_ID */
    uint64_t nobjects;                       /* regular files (memory objects) */
    uint64_t ndirs;                          /* directories, the root included */
    struct fuse_session *se;
    struct fz_notifier *notifier;
    pthread_t *threads;
    unsigned nthreads;
    atomic_int spinner;              /* one loop thread busy-polls at a time */
    atomic_uint_fast64_t last_request_ns;
    int mounted;
    int removed;                     /* unmounted and closed by a reload: skip it */
    uint64_t fuse_requests;
    /* What the FUSE layer saw (fz_ops.c; atomics, any thread): READs from
     * arrival to reply (the fault latency), completed READs and WRITEs. */
    struct emmd_hist read_lat;
    atomic_uint_fast64_t reads, read_bytes, writes, write_bytes;
};

struct emmd {
    /* The configuration in force: a reload replaces it (an atomic pointer; the
     * one it replaces stays valid, in retired, until exit). */
    struct emm_config *_Atomic cfg;
    struct vm_kernel *kernel;
    struct swp_dpager *dpager; /* the default pager, NULL without swap */
    /* Filesystems: a fixed array of EMMD_MAX_FS slots, so a struct emmd_fs
     * never moves (FUSE sessions, vm objects and pagers point into it). A
     * reload fills the next slot and then counts it in nfs, or marks one
     * removed; slots are never reused. Readers on other threads (commands,
     * metrics) hold fs_lock for reading and skip removed slots; a reload
     * holds it for writing only to change nfs or a removed flag. */
    struct emmd_fs *fs;
    size_t nfs;
    pthread_rwlock_t fs_lock;
    pthread_mutex_t reload_lock;      /* one reload at a time (SIGHUP, emmctl reload) */
    struct emm_config **retired;      /* configurations replaced by reloads: fs->cfg and
                                         readers may still point into them; freed at exit */
    size_t nretired;
    atomic_uint busy_poll_us;         /* [emmd] busy-poll in force (a reload may change it) */
    struct emmd_http *http; /* the /metrics endpoint, NULL without metrics-listen */
    int64_t start_time;
    atomic_int stopping;
};

/* fs.c: filesystems and their namespace */
int emmd_fs_open(struct emmd *d, struct emmd_fs *fs, const struct emm_fs_config *cfg, char *err,
                 size_t errlen);                  /* backend stack, validated, not started */
int emmd_fs_start(struct emmd_fs *fs);           /* backend, catalog, pager, nodes */
void emmd_fs_set_deadline(struct emmd_fs *fs, uint64_t ms); /* a reload: every object */
void emmd_fs_replay_swap(struct emmd_fs *fs);    /* map objects swap holds pages of */
void emmd_fs_flush_all(struct emmd_fs *fs);      /* return every dirty page, persist sizes */
void emmd_fs_close(struct emmd_fs *fs);
/* The namespace. Every emmd_node_* below but vm and save is called with fs->lock
 * held; remove, rename and forget may drop and retake it to end a node whose
 * pages must go (its vm object terminates), so callers look nothing up again
 * from before the call. */
struct emmd_node *emmd_node_by_ino(struct emmd_fs *fs, fuse_ino_t ino);
struct emmd_node *emmd_node_lookup(struct emmd_fs *fs, struct emmd_node *dir, const char *name);
/* "a/b/c" from the root ('/' separated, empty and "." parts skipped): NULL if absent. */
struct emmd_node *emmd_node_resolve(struct emmd_fs *fs, const char *path);
/* The path of n from the root, without a leading '/' ("" for the root); -ENAMETOOLONG. */
int emmd_node_path(struct emmd_fs *fs, const struct emmd_node *n, char *buf, size_t len);
static inline int emmd_node_is_dir(const struct emmd_node *n) { return n->rec.type == EMM_CAT_DIR; }
/* A memory object (a regular file): not a directory, a symlink or a hard link's entry. */
static inline int emmd_node_is_file(const struct emmd_node *n) { return n->rec.type == EMM_CAT_FILE; }
/* A new file or directory in dir (type EMM_CAT_*); the parent's setgid bit is inherited. */
int emmd_node_create(struct emmd_fs *fs, struct emmd_node *dir, const char *name, uint32_t type,
                     uint32_t mode, uint32_t uid, uint32_t gid, struct emmd_node **out);
/* unlink (want_dir 0) or rmdir (want_dir 1) of dir/name. */
int emmd_node_remove(struct emmd_fs *fs, struct emmd_node *dir, const char *name, int want_dir);
/* rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE, POSIX errors. */
int emmd_node_rename(struct emmd_fs *fs, struct emmd_node *dir, const char *name,
                     struct emmd_node *newdir, const char *newname, unsigned flags);
/* The tree as the memory server says it is (remote_ns.c; fs->lock held):
 * adopt enters a new node for rec in dir; place moves n to dir/name (and
 * gives a node unlinked here its name back); gone takes n out of the tree as
 * unlinked (may drop fs->lock to end it). The store is the server's: nothing
 * is discarded by them. */
int emmd_node_adopt(struct emmd_fs *fs, struct emmd_node *dir, const struct emm_catalog_rec *rec,
                    struct emmd_node **out);
int emmd_node_place(struct emmd_fs *fs, struct emmd_node *n, struct emmd_node *dir,
                    const char *name);
void emmd_node_gone(struct emmd_fs *fs, struct emmd_node *n);
/* The first entry of dir with id >= from (readdir's cursor), or NULL. */
struct emmd_node *emmd_dir_next(const struct emmd_node *dir, uint64_t from);
void emmd_node_forget(struct emmd_fs *fs, struct emmd_node *n, uint64_t count);
int emmd_node_vm(struct emmd_fs *fs, struct emmd_node *n, struct vm_object **out); /* ref'd */
void emmd_node_save(struct emmd_fs *fs, struct emmd_node *n); /* persist rec if dirty */
/* Marks rec changed (size or times) and persists it; takes fs->lock. */
void emmd_node_changed(struct emmd_fs *fs, struct emmd_node *n);
void emmd_node_stat(struct emmd_fs *fs, struct emmd_node *n, struct stat *st);
/* With the pages the pager stores as the kernel said (stored.c); NULL: the
 * node's last known count (0 if none). st_blocks adds the kernel's new pages. */
void emmd_node_stat_stored(struct emmd_fs *fs, struct emmd_node *n, struct stat *st,
                           const uint64_t *pager_pages);

/* stored.c: what the pagers store (st_blocks, statfs, emmctl ls), through the
 * kernel and the protocol, never the backend. Call without fs->lock; done
 * runs once, maybe before the call returns, maybe from a pager's thread. */
/* stored: the pages object id's pager stores (its count, kept in the node);
 * fresh: pages the kernel holds that the pager has no copy of (new_pages). */
typedef void (*emmd_stored_fn)(void *arg, uint64_t stored, uint64_t fresh);
void emmd_node_stored(struct emmd_fs *fs, uint64_t id, emmd_stored_fn done, void *arg);
/* What is known of object id's stored pages without asking its pager (0, and
 * *pages = stored + fresh), or -EAGAIN when only the pager could tell. */
int emmd_node_stored_known(struct emmd_fs *fs, uint64_t id, uint64_t *pages);
/* The sum of stored + fresh over every object of fs (statfs). */
void emmd_fs_stored(struct emmd_fs *fs, void (*done)(void *arg, uint64_t pages), void *arg);
/* The same, waited for up to timeout_ms (emmctl ls: the counts are then in the
 * nodes); 0 or -ETIMEDOUT. */
int emmd_fs_stored_wait(struct emmd_fs *fs, int timeout_ms, uint64_t *pages);
/* The asker thread of a filesystem whose pager is in another process:
 * started once its connection is, stopped before it (answers what waits). */
int emmd_stored_start(struct emmd_fs *fs);
/* Object id (not mapped) was unlinked: its pages leave its pager's store
 * through the protocol, from the asker thread (kept for later if the pager
 * is down). No lock held. */
void emmd_node_discard_unmapped(struct emmd_fs *fs, uint64_t id);
void emmd_stored_stop(struct emmd_fs *fs);
/* A send right to object id's memory object port, to talk to its pager
 * without mapping it; -ENOENT when there is none to ask (temporary objects;
 * a pager process that is down). */
int emmd_object_port(struct emmd_fs *fs, uint64_t id, struct emm_port **out);
static inline fuse_ino_t emmd_ino(const struct emmd_node *n) { return n->rec.id + 1; }

/* remote_ns.c: pager = tcp: the namespace is the memory server's (names,
 * sizes, create, unlink, rename; docs/memserver.md). fs->rns is set for such
 * a filesystem only. create/remove/rename are called as emmd_node_*'s (with
 * fs->lock held, dropped around the round trip); the others without it. */
int emmd_rns_start(struct emmd_fs *fs);
void emmd_rns_stop(struct emmd_fs *fs);
int emmd_rns_create(struct emmd_fs *fs, struct emmd_node *dir, const char *name, uint32_t type,
                    uint32_t mode, uint32_t uid, uint32_t gid, struct emmd_node **out);
int emmd_rns_remove(struct emmd_fs *fs, struct emmd_node *dir, const char *name, int want_dir);
int emmd_rns_rename(struct emmd_fs *fs, struct emmd_node *dir, const char *name,
                    struct emmd_node *newdir, const char *newname, unsigned flags);
/* Bring parent/name, node ino, directory ino up to date with the server:
 * 0, or -errno when it could not be asked (-EIO after pager.deadline). */
int emmd_rns_lookup(struct emmd_fs *fs, fuse_ino_t parent, const char *name);
int emmd_rns_getattr(struct emmd_fs *fs, fuse_ino_t ino);
int emmd_rns_readdir(struct emmd_fs *fs, fuse_ino_t ino);
/* SETATTR (FUSE_SET_ATTR_* in to_set, n's rec already changed) and a write
 * or allocation that ends at end: told to the server first. */
int emmd_rns_setattr(struct emmd_fs *fs, struct emmd_node *n, int to_set, uint64_t size);
int emmd_rns_grow(struct emmd_fs *fs, struct emmd_node *n, uint64_t end);
/* emmctl memserver FS: the server's stats, and what this host holds. */
int emmd_rns_stats(struct emmd_fs *fs, FILE *out);

/* fz_ops.c / fz_loop.c / fz_notify.c: the FUSE front end */
extern const struct fuse_lowlevel_ops fz_ops;
int fz_mount(struct emmd_fs *fs);   /* session, mount, loop threads, bdi tuning */
void fz_unmount(struct emmd_fs *fs);
/* The largest request a loop thread's buffer holds (libfuse sizes it: max_write
 * plus a page for the header); each loop thread keeps one. */
#define FZ_BUFFER_BYTES (EMM_MAX_REQUEST_BYTES + 4096u)

/* heap.c: bounded arenas, trimming, and the resident set as the kernel sees it. */
struct emmd_heap_stats {
    unsigned long long rss_bytes, rss_peak_bytes, rss_anon_bytes, rss_file_bytes;
    unsigned long long heap_bytes, heap_free_bytes;
    unsigned long long heap_mmap_bytes; /* blocks in their own mappings (of heap_bytes) */
    /* LMDB maps (lmdb_shared.h): registered maps, their resident bytes, the
     * shared resident set above which they are trimmed, checks, trims */
    unsigned long long lmdb_maps, lmdb_map_bytes, lmdb_map_limit_bytes;
    unsigned long long lmdb_map_checks, lmdb_map_trims;
};
void emmd_heap_init(void);        /* before any thread starts */
size_t emmd_heap_trim(void);      /* bytes given back (0 if not worth trying) */
void emmd_heap_stats(struct emmd_heap_stats *out);
int fz_notifier_start(struct emmd_fs *fs);
void fz_notifier_stop(struct emmd_fs *fs);
void fz_invalidate(void *owner, uint64_t off, uint64_t len, void (*done)(void *), void *arg);

/* pager_conn.c: a pager outside emmd (pager = process | unix:PATH) */
struct emmd_pager_info {
    int pid, up;
    unsigned restarts;
    uint64_t uptime_ms, in_flight, sent, received;
    uint64_t reinits; /* objects re-initialised on a new connection */
    /* The connection's shared region (port_stream.h): pages, pages of emmd's
     * half lent to the pager now, pages of the pager's half emmd holds now,
     * messages whose data crossed in it, sends that waited for slots. */
    uint32_t shm_pages, shm_lent, shm_held;
    uint64_t shm_msgs, shm_waits;
};
int emmd_pager_conn_start(struct emmd_fs *fs);   /* the first connection, then a supervisor */
void emmd_pager_conn_stop(struct emmd_fs *fs);   /* after every object is terminated */
/* emmd is stopping: a pager that dies from here on is not restarted, and
 * lookups wait for none (the connection stays up for the flush). */
void emmd_pager_conn_stopping(struct emmd_fs *fs);
/* A send right to object id's memory object port at the pager: waits up to
 * pager.deadline for a pager that is down; -EIO then. */
int emmd_pager_object_port(struct emmd_fs *fs, uint64_t id, struct emm_port **out);
/* An object just made with a port fetched without fs->lock: if that
 * connection died meanwhile and a new one is up (its re-init round may have
 * missed the object), re-initialise it on the new one. No lock held. */
void emmd_pager_object_check(struct emmd_fs *fs, struct vm_object *vm);
/* File id was unlinked: its pages leave the pager's store, now through the
 * protocol, or when the pager is back if it is gone (kept in memory; logged
 * by id if emmd stops first). No lock held. */
void emmd_pager_discard(struct emmd_fs *fs, uint64_t id);
void emmd_pager_conn_info(struct emmd_fs *fs, struct emmd_pager_info *out);
/* The vm layer's pager_misbehaved upcall (owner: the node): a pager in
 * another process that sent a malformed message is cut off (and restarted). */
void emmd_pager_misbehaved(void *owner, const char *what);

/* pager_tcp.c: pager = tcp:HOST:PORT (TLS credentials, one connection attempt) */
struct emm_tls;
struct emm_stream_io;
int emmd_pager_tcp_init(const struct emm_fs_config *cfg, struct emm_tls **out);
void emmd_pager_tcp_fini(struct emm_tls *tls);
int emmd_pager_tcp_open(const struct emm_fs_config *cfg, struct emm_tls *tls,
                        struct emm_stream_io **io, char *label, size_t len);

/* commands.c: control-socket commands */
int emmd_command(void *ctx, int argc, char **argv, FILE *out);

/* wait.c: waiting for an asynchronous vm completion from a thread that may block. */
struct emmd_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, err;
};
void emmd_wait_init(struct emmd_wait *w);
void emmd_wait_done(void *arg, int err); /* a vm_done_fn */
int emmd_wait(struct emmd_wait *w);
/* The same up to a timeout: the completion may come after the waiter gave up
 * (emmd_twait_done then frees it). Each side calls its function once:
 * emmd_twait (0, *err and *value set; or -ETIMEDOUT) and emmd_twait_done. */
struct emmd_twait;
struct emmd_twait *emmd_twait_new(void); /* NULL: out of memory */
void emmd_twait_done(struct emmd_twait *w, int err, uint64_t value);
int emmd_twait(struct emmd_twait *w, int timeout_ms, int *err, uint64_t *value);
/* The same carrying a heap buffer (the completion's, given to the waiter; freed
 * if the waiter gave up): NULL on a timeout or when none came. */
void emmd_twait_done_payload(struct emmd_twait *w, int err, void *payload);
void *emmd_twait_payload(struct emmd_twait *w, int timeout_ms);

/* commands.c: what a filesystem's objects hold now (walks them under fs->lock) */
struct emmd_totals {
    uint64_t objects, mapped, resident, dirty, laundry, errors;
};
void emmd_fs_totals(struct emmd_fs *fs, struct emmd_totals *t);

/* metrics.c: every counter and gauge in the Prometheus text format (0.0.4) */
int emmd_metrics_write(struct emmd *d, FILE *out);

/* Filesystems served now (slots not removed). */
static inline size_t
emmd_live_fs(const struct emmd *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nfs; i++)
        n += !d->fs[i].removed;
    return n;
}

/* reload.c: re-read the configuration file (SIGHUP, emmctl reload). Writes what
 * it did, or why it refused, to out (and to the log); 0, or -EINVAL when
 * something was refused (a bad file or a change that needs a restart changes
 * nothing; a busy filesystem is kept while the rest is applied). */
int emmd_reload(struct emmd *d, FILE *out);
void emmd_free_retired(struct emmd *d);

/* metrics_http.c: GET /metrics on metrics-listen (libmicrohttpd) */
struct emmd_http;
int emmd_http_start(struct emmd *d, const char *listen, struct emmd_http **out);
void emmd_http_stop(struct emmd_http *h);

/* sd_notify.c: the service manager's view (no-ops outside systemd) */
void emmd_notify_ready(const struct emmd *d);
void emmd_notify_stopping(void);
void emmd_notify_reloading(void);

#endif
