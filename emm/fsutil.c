/*
 * fsutil.c - small filesystem helpers (see fsutil.h). Stateless.
 */
#include "fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int
emm_mkdir_p(const char *path, mode_t mode)
{
    char *copy = strdup(path);
    int rc = 0;
    if (copy == NULL)
        return -ENOMEM;
    for (char *s = copy + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(copy);
    return rc;
}
