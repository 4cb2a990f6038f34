/*
 * fsutil.h - small filesystem helpers shared by libemm's modules and emmd:
 * mkdir -p, "is this directory safe to keep our files in", "is this path a
 * mount point". Stateless, so no locking.
 */
#ifndef EMM_FSUTIL_H
#define EMM_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: creates missing components with mode; 0 or -errno. */
int emm_mkdir_p(const char *path, mode_t mode);

/*
 * Is the directory path safe for files only emmd may replace (state, control
 * socket, pid file)? It must be a directory owned by the effective uid (or by
 * root) and not writable by group or others; with allow_sticky, a sticky
 * world-writable directory such as /tmp passes too (there only a file's owner
 * may remove or rename it). Only the directory itself is checked, not its
 * parents. 0 if safe; else -errno (-EPERM for ownership or mode) and why gets
 * "PATH is ...; chmod/chown ..." naming the fix.
 */
int emm_dir_check_private(const char *path, int allow_sticky, char *why, size_t whylen);

/*
 * Is path (absolute) a mount point in this process's mount namespace
 * (/proc/self/mountinfo, so a stat of a wedged FUSE mount cannot hang)? 1 yes,
 * 0 no, -errno if mountinfo cannot be read. *fstype (if not NULL, size
 * fstypelen) gets the top mount's type, e.g. "fuse.emm".
 */
int emm_is_mountpoint(const char *path, char *fstype, size_t fstypelen);

/*
 * May a filesystem be mounted on path? 0: not a mount point. EMM_MOUNT_STALE:
 * a dead FUSE mount is there (stat answers ENOTCONN: its daemon is gone), which
 * may be mounted over. EMM_MOUNT_OVER: a live mount, and allow_over says yes.
 * -EBUSY: a live mount and not allowed. Other -errno: cannot tell. why gets a
 * sentence naming path for every answer but 0.
 */
#define EMM_MOUNT_STALE 1
#define EMM_MOUNT_OVER 2
int emm_mount_check(const char *path, int allow_over, char *why, size_t whylen);

#endif
