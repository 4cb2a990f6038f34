/*
 * cluster_lock.h - fcntl and flock locks on filesystems whose pager is an
 * emm-memserver (pager = tcp:): FUSE's getlk/setlk/flock forwarded to the
 * server (MO_LOCK_*), with acquire/release consistency for the locked data.
 * Other filesystems keep the kernel's local locks (fz_lk_init turns the
 * capabilities off). See cluster_lock.c.
 *
 * Locking: cluster_lock.c's table lock only; callers hold nothing.
 */
#ifndef EMMD_CLUSTER_LOCK_H
#define EMMD_CLUSTER_LOCK_H

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdint.h>

struct emmd_fs;

/* FUSE init: keep FUSE_CAP_POSIX_LOCKS / FUSE_CAP_FLOCK_LOCKS only for pager = tcp:. */
void fz_lk_init(struct emmd_fs *fs, struct fuse_conn_info *conn);
void fz_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock);
void fz_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
              int sleep);
void fz_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
/* FLUSH (a close): owner's POSIX locks on ino go, after a write-back. No reply. */
void fz_lk_flush(struct emmd_fs *fs, fuse_ino_t ino, uint64_t owner);
/* RELEASE with flock_release: owner's flock lock goes. No reply. */
void fz_lk_release(struct emmd_fs *fs, fuse_ino_t ino, uint64_t owner);

#endif
