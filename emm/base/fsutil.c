/*
 * fsutil.c - small filesystem helpers (see fsutil.h). Stateless.
 */
#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int
emm_dir_check_private(const char *path, int allow_sticky, char *why, size_t whylen)
{
    struct stat st;
    uid_t me = geteuid();

    if (stat(path, &st) < 0) {
        int e = errno;
        snprintf(why, whylen, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "%s is not a directory", path);
        return -ENOTDIR;
    }
    if (st.st_uid != me && st.st_uid != 0) {
        snprintf(why, whylen,
                 "%s is owned by uid %u, not by emmd's user (uid %u) or root: another user "
                 "could replace emmd's files there; chown %u '%s' or choose another directory",
                 path, (unsigned)st.st_uid, (unsigned)me, (unsigned)me, path);
        return -EPERM;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(allow_sticky && (st.st_mode & S_ISVTX))) {
        snprintf(why, whylen,
                 "%s is writable by %s (mode %04o): another user could replace emmd's files "
                 "there; chmod go-w '%s' or choose another directory",
                 path,
                 (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "group and others"
                 : (st.st_mode & S_IWGRP)                         ? "its group"
                                                                  : "others",
                 (unsigned)(st.st_mode & 07777), path);
        return -EPERM;
    }
    return 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape(char *s)
{
    char *d = s;
    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *d++ = *s++;
        }
    }
    *d = '\0';
}

/* Scans mountinfo for want: 1 found (fstype set to the top mount's type), 0 not, -errno. */
static int
scan_mountinfo(const char *want, char *fstype, size_t fstypelen)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int found = 0;

    if (!f)
        return -errno;
    while (getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER */
        char *save = NULL, *tok = strtok_r(line, " \n", &save);
        char *mp = NULL, *type = NULL;
        int field = 0, after_dash = 0;
        for (; tok; tok = strtok_r(NULL, " \n", &save), field++) {
            if (field == 4)
                mp = tok;
            else if (field > 5 && !after_dash && strcmp(tok, "-") == 0)
                after_dash = 1;
            else if (after_dash == 1) {
                type = tok;
                break;
            }
        }
        if (!mp)
            continue;
        unescape(mp);
        if (strcmp(mp, want) == 0) {
            found = 1; /* later lines are mounted on top: keep the last type */
            if (fstype && fstypelen)
                snprintf(fstype, fstypelen, "%s", type ? type : "?");
        }
    }
    free(line);
    fclose(f);
    return found;
}

int
emm_is_mountpoint(const char *path, char *fstype, size_t fstypelen)
{
    /* The path as given first: resolving it would stat the mount itself, which
     * a wedged FUSE daemon may never answer. Then through its symlinks. */
    int r = scan_mountinfo(path, fstype, fstypelen);
    char real[PATH_MAX];
    if (r == 0 && realpath(path, real) && strcmp(real, path) != 0)
        r = scan_mountinfo(real, fstype, fstypelen);
    return r;
}

int
emm_mount_check(const char *path, int allow_over, char *why, size_t whylen)
{
    char type[64] = "";
    struct stat st;
    int r = emm_is_mountpoint(path, type, sizeof(type));

    if (r < 0) {
        snprintf(why, whylen, "%s: cannot tell whether it is a mount point: "
                 "/proc/self/mountinfo: %s", path, strerror(-r));
        return r;
    }
    if (r == 0)
        return 0;
    if (stat(path, &st) < 0 && errno == ENOTCONN) {
        snprintf(why, whylen, "%s: a dead FUSE mount (%s) is left there (its daemon is gone); "
                 "mounting over it", path, type);
        return EMM_MOUNT_STALE;
    }
    if (allow_over) {
        snprintf(why, whylen, "%s is already a mount point (%s); mounting over it as "
                 "mount-over = yes allows, which hides what is mounted there", path, type);
        return EMM_MOUNT_OVER;
    }
    snprintf(why, whylen, "%s is already a mount point (%s%s): mounting there would hide its "
             "files; unmount it, choose another mountpoint, or set mount-over = yes in this "
             "[fs] section", path, type,
             strncmp(type, "fuse.emm", 8) == 0 ? ", maybe another emmd's filesystem" : "");
    return -EBUSY;
}
