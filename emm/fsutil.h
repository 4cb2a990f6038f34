/*
 * fsutil.h - small filesystem helpers shared by libemm's modules. Stateless,
 * so no locking.
 */
#ifndef EMM_FSUTIL_H
#define EMM_FSUTIL_H

#include <sys/types.h>

/* mkdir -p: creates missing components with mode; 0 or -errno. */
int emm_mkdir_p(const char *path, mode_t mode);

#endif
