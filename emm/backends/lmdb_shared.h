/*
 * lmdb_shared.h - the contract between the lmdb backend, which owns an LMDB
 * environment, and other users in the process that borrow it (emmd's object
 * catalog, through emm_backend_lmdb_env). Locking: below.
 */
#ifndef EMM_LMDB_SHARED_H
#define EMM_LMDB_SHARED_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct MDB_env;

/*
 * The userctx (mdb_env_set_userctx) of an LMDB environment that several users
 * in this process share: the lmdb backend creates it, emmd's object catalog borrows it.
 * LMDB may change the map size only while no transaction is active in the
 * process, so every user holds `resize` shared around each transaction and
 * calls grow() with it held exclusively after MDB_MAP_FULL.
 */
struct emm_lmdb_shared {
    pthread_rwlock_t resize;
    size_t mapsize; /* current map size; changes only under resize held exclusively */
    /* Grows the map after MDB_MAP_FULL was seen at map size `seen`: 0 (also when
     * another thread grew it already), -ENOSPC at the size limit, -errno. */
    int (*grow)(struct emm_lmdb_shared *sh, size_t seen);
    int users; /* catalogs open on the environment (under resize held exclusively) */

    /* The resident-set bound of the map (lmdb_maps.c): set by emm_lmdb_maps_add,
     * changed under resize held exclusively (emm_lmdb_maps_moved). */
    struct MDB_env *maps_env;
    void *map_addr;
    size_t map_len;
    struct emm_lmdb_shared *maps_next; /* the registry's list (its lock) */
};

/*
 * lmdb_maps.c: LMDB reads through a read-only shared map of data.mdb, and every
 * page a transaction touches stays mapped, counted in the process's resident
 * set (RssFile) until unmapped; a kernel that faults in whole large folios maps
 * up to 2 MiB per touch. Every user of an environment registers its map and
 * notes its transactions (long ones every EMM_LMDB_NOTE_EVERY pages); every
 * EMM_LMDB_CHECK_PAGES noted, the process's shared resident set is read and,
 * when it is over what it was after the last trim (code, libraries, shared
 * regions) plus EMM_LMDB_MAP_BUDGET per registered map, every registered map's
 * pages are dropped from the process (madvise MADV_DONTNEED: the pages stay in
 * the page cache, a reader faults them back).
 *
 * Locking: the registry has its own mutex. add before the environment's first
 * transaction, del before mdb_env_close, moved with sh->resize held
 * exclusively (after mdb_env_set_mapsize); note with at most a shared hold of
 * resize (inside a transaction is fine: the trim takes each map's resize
 * shared by trylock, and dropping a read-only shared map's page table entries
 * under a live transaction only makes it fault the same pages back).
 */
#define EMM_LMDB_MAP_BUDGET ((size_t)2 << 20) /* per registered map */
#define EMM_LMDB_CHECK_PAGES 4                /* pages noted between checks */
#define EMM_LMDB_NOTE_EVERY 4                 /* a long transaction notes every so many pages */

void emm_lmdb_maps_add(struct emm_lmdb_shared *sh, struct MDB_env *env);
void emm_lmdb_maps_moved(struct emm_lmdb_shared *sh);
void emm_lmdb_maps_del(struct emm_lmdb_shared *sh);
/* After (or inside) a transaction that touched `pages` pages (0: a small one). */
void emm_lmdb_maps_note(size_t pages);
/* Drops every registered map's pages now (the check's action). */
void emm_lmdb_maps_trim(void);

struct emm_lmdb_maps_stats {
    uint64_t maps;         /* registered maps */
    uint64_t mapped_bytes; /* their resident pages (from /proc/self/smaps) */
    uint64_t limit_bytes;  /* shared resident set above which a check trims */
    uint64_t checks, trims;
};
/* Walks /proc/self/smaps: for `emmctl info`, not the data path. */
void emm_lmdb_maps_stats(struct emm_lmdb_maps_stats *out);

#endif
