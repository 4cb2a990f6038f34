/*
 * catalog.h - the persistent catalog of one filesystem's namespace: which
 * objects and directories exist, their ids, parents, names, sizes and
 * attributes. Kept in an LMDB environment at
 * STATE_DIR/fs/NAME/catalog/ when the backend persists pages, and in memory
 * otherwise (like tmpfs, nothing survives a restart).
 *
 * For an lmdb filesystem the catalog lives instead in the backend's own
 * environment (emm_catalog_open_env), beside the pages.
 *
 * Locking: every call is safe from any thread (LMDB serializes writers; the
 * volatile variant takes its own mutex). Records are copied in and out.
 */
#ifndef EMM_CATALOG_H
#define EMM_CATALOG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lmdb_shared.h" /* the userctx of an environment the lmdb backend shares */

#define EMM_NAME_MAX 255
#define EMM_CATALOG_ROOT 0 /* the root directory's id (new_id never hands it out) */

enum emm_catalog_type {
    EMM_CAT_FILE = 0, /* a memory object (regular file) */
    EMM_CAT_DIR = 1,  /* a directory: no pages, never a backend key */
    EMM_CAT_SYMLINK = 2, /* a symbolic link: its target, no pages (catalog format 3) */
    EMM_CAT_HLINK = 3,   /* another name of object `link` (a hard link; format 3) */
};

#define EMM_LINK_MAX 4095 /* a symlink's target, bytes without the NUL (PATH_MAX - 1) */

struct emm_catalog_rec {
    uint64_t id;      /* object id: the backend's key; never reused */
    uint64_t size;    /* bytes (0 for a directory) */
    uint32_t mode;    /* permission bits (07777) */
    uint32_t uid, gid;
    int64_t atime_ns, mtime_ns, ctime_ns;
    uint64_t parent;  /* the directory holding it (EMM_CATALOG_ROOT; the root: itself) */
    uint32_t type;    /* enum emm_catalog_type */
    char name[EMM_NAME_MAX + 1]; /* "" for the root */
    uint64_t link;    /* EMM_CAT_HLINK: the id of the object it names; else 0 */
    /* EMM_CAT_SYMLINK: the target (1..EMM_LINK_MAX bytes), else NULL. Borrowed:
     * put/update copy it; a scan's records own theirs only during the callback. */
    char *target;
};

struct emm_catalog;
struct MDB_env; /* lmdb.h: typedef struct MDB_env MDB_env */

/* dir NULL: volatile. Otherwise the directory is created if needed. */
int emm_catalog_open(const char *dir, struct emm_catalog **out);
/*
 * The catalog inside an LMDB environment that another part of emm owns and has
 * opened (the lmdb backend: emm_backend_lmdb_env), with a struct
 * emm_lmdb_shared as its userctx (else -EINVAL). Uses the named databases
 * "catalog" and "catalog.meta"; put, del and new_id are synced to disk before
 * they return. Close the catalog before the environment: closing it never
 * closes the environment.
 */
int emm_catalog_open_env(struct MDB_env *env, struct emm_catalog **out);
/*
 * The catalog in the namespace store of a started backend stack (one whose
 * bottom layer has meta_update/meta_scan, e.g. rados: emm_backend_has_meta),
 * so the namespace lives with the pages. Read whole at open; every change is
 * durable in the store when it returns. label names it in log lines. Close
 * the catalog before the stack. -EOPNOTSUPP if the stack has no such store.
 */
struct emm_backend;
int emm_catalog_open_backend(struct emm_backend *be, const char *label, struct emm_catalog **out);
void emm_catalog_close(struct emm_catalog *c);
/* A fresh id, persisted before it is returned (ids are never reused). */
int emm_catalog_new_id(struct emm_catalog *c, uint64_t *id);
int emm_catalog_put(struct emm_catalog *c, const struct emm_catalog_rec *rec); /* insert or replace */
int emm_catalog_del(struct emm_catalog *c, uint64_t id);                       /* -ENOENT if absent */
/*
 * Puts nput records and deletes ndel ids (absent ones are skipped) in one
 * transaction: all of it is applied or none (a rename that replaces a target
 * and updates both parents' times).
 */
int emm_catalog_update(struct emm_catalog *c, const struct emm_catalog_rec *puts, size_t nput,
                       const uint64_t *dels, size_t ndel);
/* Calls fn for every record in id order; stops early if fn returns non-zero (returned). */
int emm_catalog_scan(struct emm_catalog *c, int (*fn)(void *arg, const struct emm_catalog_rec *rec),
                     void *arg);
/* Makes every put/del so far durable (a no-op for a volatile catalog). */
int emm_catalog_sync(struct emm_catalog *c);

#endif
