/*
 * catalog.h - the persistent object catalog of one filesystem: which objects
 * exist, their ids, names, sizes and attributes. Kept in an LMDB environment at
 * STATE_DIR/fs/NAME/catalog/ when the backend persists pages, and in memory
 * otherwise (like tmpfs, nothing survives a restart).
 *
 * Locking: every call is safe from any thread (LMDB serializes writers; the
 * volatile variant takes its own mutex). Records are copied in and out.
 */
#ifndef EMM_CATALOG_H
#define EMM_CATALOG_H

#include <stdint.h>

#define EMM_NAME_MAX 255

struct emm_catalog_rec {
    uint64_t id;      /* object id: the backend's key; never reused */
    uint64_t size;    /* bytes */
    uint32_t mode;    /* permission bits (regular files only) */
    uint32_t uid, gid;
    int64_t atime_ns, mtime_ns, ctime_ns;
    char name[EMM_NAME_MAX + 1];
};

struct emm_catalog;

/* dir NULL: volatile. Otherwise the directory is created if needed. */
int emm_catalog_open(const char *dir, struct emm_catalog **out);
void emm_catalog_close(struct emm_catalog *c);
/* A fresh id, persisted before it is returned (ids are never reused). */
int emm_catalog_new_id(struct emm_catalog *c, uint64_t *id);
int emm_catalog_put(struct emm_catalog *c, const struct emm_catalog_rec *rec); /* insert or replace */
int emm_catalog_del(struct emm_catalog *c, uint64_t id);                       /* -ENOENT if absent */
/* Calls fn for every record in id order; stops early if fn returns non-zero (returned). */
int emm_catalog_scan(struct emm_catalog *c, int (*fn)(void *arg, const struct emm_catalog_rec *rec),
                     void *arg);
/* Makes every put/del so far durable (a no-op for a volatile catalog). */
int emm_catalog_sync(struct emm_catalog *c);

#endif
