/*
 * lmdb_shared.h - the contract between the lmdb backend, which owns an LMDB
 * environment, and other users in the process that borrow it (emmd's object
 * catalog, through emm_backend_lmdb_env). Locking: below.
 */
#ifndef EMM_LMDB_SHARED_H
#define EMM_LMDB_SHARED_H

#include <pthread.h>
#include <stddef.h>

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
};

#endif
