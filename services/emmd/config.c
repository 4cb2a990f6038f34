/*
 * config.c - loads emmd's configuration file into struct emm_config (config.h)
 * with libinih.
 *
 * libinih gives its handler neither the line number nor the section headers
 * (an empty section never reaches it, and it truncates long section names), so
 * the line reader does that part: it counts lines, parses "[section]" headers
 * itself, rejects lines that libinih would split or misread, and strips leading
 * blanks (which also turns off libinih's continuation lines) and inline
 * comments. The key handler then sees key lines only, in order, with ld->line
 * set. The first error is recorded as "FILE:LINE: message" and ends the parse:
 * once it is set, the reader reports end of file. Checks that need the whole file (defaults,
 * mountpoints, backend = none without swap, the effective pager deadlines,
 * paths on disk) run after the parse: [default-pager] may follow the [fs]
 * sections.
 *
 * Locking: none. A load works on its own state in one thread.
 */
#include "config.h"

#include "fsutil.h"
#include "stream_tcp.h"
#include "log.h"
#include "units.h"
#include "vm_policy.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#define FS_NAME_MAX 64
#define MIB (UINT64_C(1) << 20)
#define SWAP_PAGE 4096                    /* swap areas are made of 4 KiB pages */
#define DEADLINE_MAX_MS UINT64_C(3600000) /* deadlines: 10ms..3600s */

enum sect { SECT_NONE, SECT_EMMD, SECT_DPAGER, SECT_FS };

enum emmd_key {
    K_STATE_DIR,
    K_MOUNT_ROOT,
    K_CONTROL_SOCKET,
    K_PID_FILE,
    K_RESIDENT_LIMIT,
    K_FUSE_THREADS,
    K_BUSY_POLL,
    K_LOG_LEVEL,
    K_PLUGIN_DIR,
    K_PAGEOUT_POLICY,
    K_METRICS_LISTEN,
    K_EMMD_N
};
static const char *const emmd_keys[K_EMMD_N] = {
    "state-dir",     "mount-root",  "control-socket", "pid-file",
    "resident-limit", "fuse-threads", "busy-poll",      "log-level",
    "plugin-dir",    "pageout.policy", "metrics-listen",
};

/* [default-pager] keys given at most once; "swap" is repeatable. */
enum dp_key { D_DEADLINE, D_THREADS, D_N };
static const char *const dp_keys[D_N] = {"deadline", "threads"};

/* "pager.*" is emmd's namespace in [fs]: never a backend key. */
enum fs_key {
    F_BACKEND,
    F_MOUNTPOINT,
    F_READAHEAD,
    F_PAGER_THREADS,
    F_PAGER_DEADLINE,
    F_MOUNT_OVER,
    F_ROOT_UID,
    F_ROOT_GID,
    F_ROOT_MODE,
    F_PAGER,
    F_PAGER_USER,
    F_PAGER_TLS,
    F_PAGER_TLS_PSK,
    F_PAGER_TLS_CA,
    F_PAGER_TLS_CERT,
    F_PAGER_TLS_KEY,
    F_N
};
static const char *const fs_keys[F_N] = {"backend",        "mountpoint",   "readahead",
                                         "pager-threads", "pager.deadline", "mount-over",
                                         "root-uid",      "root-gid",      "root-mode",
                                         "pager",         "pager.user",    "pager.tls",
                                         "pager.tls-psk-file", "pager.tls-ca", "pager.tls-cert",
                                         "pager.tls-key"};

struct fs_lines {
    int key[F_N]; /* line of each known key, 0 if absent */
};

struct loader {
    struct emm_config *cfg;
    const char *file;
    FILE *f;
    char *raw;
    size_t rawcap;
    int line; /* line last handed to libinih */
    int failed;
    int rc;
    char *err;
    size_t errlen;
    char base[PATH_MAX]; /* the config file's directory: relative paths start here */
    int base_errno;
    enum sect sect;
    size_t cur;      /* current fs when sect == SECT_FS */
    size_t fscap;
    struct fs_lines *fsl; /* parallel to cfg->fs */
    int emmd_line;
    int emmd_key[K_EMMD_N];
    int dp_line;
    int dp_key[D_N];
};

static void fail(struct loader *ld, int line, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
fail(struct loader *ld, int line, int rc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (ld->failed)
        return;
    ld->failed = 1;
    ld->rc = rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->err && ld->errlen) {
        if (line > 0)
            snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->file, line, msg);
        else
            snprintf(ld->err, ld->errlen, "%s: %s", ld->file, msg);
    }
}

static char *
dup_or_fail(struct loader *ld, const char *s)
{
    char *d = strdup(s);
    if (!d)
        fail(ld, 0, -ENOMEM, "out of memory");
    return d;
}

/* ---- values ---- */

/* Decimal digits only, value in [min, max]. */
static int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    if (*s != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A deadline: digits with unit "ms" or "s" (bare digits: ms), 10ms..3600s. */
static int
parse_deadline(const char *s, uint64_t *out_ms)
{
    const char *p = s;
    uint64_t v = 0;

    for (; isdigit((unsigned char)*p) && v <= DEADLINE_MAX_MS; p++)
        v = v * 10 + (unsigned)(*p - '0');
    if (p == s)
        return -EINVAL;
    if (strcmp(p, "s") == 0) {
        if (v > DEADLINE_MAX_MS / 1000)
            return -EINVAL;
        v *= 1000;
    } else if (*p != '\0' && strcmp(p, "ms") != 0) {
        return -EINVAL;
    }
    if (v < 10 || v > DEADLINE_MAX_MS)
        return -EINVAL;
    *out_ms = v;
    return 0;
}

static int
set_deadline(struct loader *ld, int line, const char *key, const char *value, uint64_t *dst)
{
    if (parse_deadline(value, dst) < 0) {
        fail(ld, line, -EINVAL,
             "bad value '%s' for %s (want a duration 10ms..3600s: digits with ms or s)", value,
             key);
        return 0;
    }
    return 1;
}

/*
 * The directory relative paths in the file start from: the file's own
 * directory, so a config can be used from anywhere (emmctl -c
 * conf/quickstart.conf). It exists (the file was found in it): realpath gives
 * its canonical name; failing that, it is made absolute against the working
 * directory and abs_path tidies it with the rest.
 */
static void
config_base_dir(struct loader *ld, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    char cwd[PATH_MAX], dir[PATH_MAX], real[PATH_MAX];

    if (slash && slash != path && dirlen < sizeof(dir)) {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
        if (realpath(dir, real) && strlen(real) < sizeof(ld->base)) {
            memcpy(ld->base, real, strlen(real) + 1);
            return;
        }
    }
    if (slash == path) { /* "/x.conf" */
        snprintf(ld->base, sizeof(ld->base), "/");
        return;
    }
    if (path[0] == '/') {
        if (dirlen >= sizeof(ld->base)) {
            ld->base_errno = ENAMETOOLONG;
        } else {
            memcpy(ld->base, path, dirlen);
            ld->base[dirlen] = '\0';
        }
        return;
    }
    if (!getcwd(cwd, sizeof(cwd))) {
        ld->base_errno = errno;
        return;
    }
    size_t clen = strlen(cwd);
    if (clen + 1 + dirlen >= sizeof(ld->base)) {
        ld->base_errno = ENAMETOOLONG;
        return;
    }
    memcpy(ld->base, cwd, clen);
    if (slash) {
        ld->base[clen] = '/';
        memcpy(ld->base + clen + 1, path, dirlen);
        clen += 1 + dirlen;
    }
    ld->base[clen] = '\0';
}

/*
 * Makes p absolute against the configuration's directory and tidies it lexically:
 * repeated slashes, "." components and a trailing slash go; ".." stays (it
 * cannot be resolved without looking at symlinks).
 */
static char *
abs_path(struct loader *ld, int line, const char *key, const char *p)
{
    size_t n;
    char *joined, *out, *o;

    if (*p == '\0') {
        fail(ld, line, -EINVAL, "empty value for %s", key);
        return NULL;
    }
    if (*p != '/' && ld->base_errno) {
        fail(ld, line, -ld->base_errno,
             "cannot resolve relative %s '%s': the configuration's directory: %s", key, p,
             strerror(ld->base_errno));
        return NULL;
    }
    n = strlen(p) + (*p == '/' ? 0 : strlen(ld->base) + 1) + 1;
    joined = malloc(n);
    out = malloc(n + 1);
    if (!joined || !out) {
        free(joined);
        free(out);
        fail(ld, 0, -ENOMEM, "out of memory");
        return NULL;
    }
    if (*p == '/')
        snprintf(joined, n, "%s", p);
    else
        snprintf(joined, n, "%s/%s", ld->base, p);

    o = out;
    for (char *s = joined; *s;) {
        while (*s == '/')
            s++;
        char *e = s;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - s);
        if (len > 0 && !(len == 1 && s[0] == '.')) {
            *o++ = '/';
            memcpy(o, s, len);
            o += len;
        }
        s = e;
    }
    if (o == out)
        *o++ = '/';
    *o = '\0';
    free(joined);
    return out;
}

static int
set_path(struct loader *ld, int line, const char *key, const char *value, char **dst)
{
    char *p = abs_path(ld, line, key, value);
    if (!p)
        return 0;
    free(*dst);
    *dst = p;
    return 1;
}

/* ---- sections ---- */

static int
valid_fs_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-')
            return 0;
    return n > 0 && n <= FS_NAME_MAX;
}

static void
add_fs(struct loader *ld, int line, const char *name)
{
    struct emm_config *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->nfs; i++) {
        if (strcmp(cfg->fs[i].name, name) == 0) {
            fail(ld, line, -EINVAL, "duplicate filesystem [fs %s] (first on line %d)", name,
                 cfg->fs[i].line);
            return;
        }
    }
    if (cfg->nfs == ld->fscap) {
        size_t cap = ld->fscap ? ld->fscap * 2 : 4;
        struct emm_fs_config *fs = realloc(cfg->fs, cap * sizeof(*fs));
        if (fs)
            cfg->fs = fs;
        struct fs_lines *fl = realloc(ld->fsl, cap * sizeof(*fl));
        if (fl)
            ld->fsl = fl;
        if (!fs || !fl) {
            fail(ld, 0, -ENOMEM, "out of memory");
            return;
        }
        ld->fscap = cap;
    }
    struct emm_fs_config *fs = &cfg->fs[cfg->nfs];
    memset(fs, 0, sizeof(*fs));
    memset(&ld->fsl[cfg->nfs], 0, sizeof(ld->fsl[0]));
    fs->name = dup_or_fail(ld, name);
    if (!fs->name)
        return;
    fs->line = line;
    fs->readahead = MIB;
    fs->pager_threads = 2;
    fs->pager_tls = 1;
    fs->root_uid = fs->root_gid = -1;
    fs->root_mode = -1;
    ld->cur = cfg->nfs++;
    ld->sect = SECT_FS;
}

/* s points at '['; the line has no trailing newline. */
static void
section_header(struct loader *ld, char *s)
{
    int line = ld->line;
    char *end = strchr(s, ']');

    if (!end) {
        fail(ld, line, -EINVAL, "section header without ']'");
        return;
    }
    for (char *t = end + 1; *t; t++) {
        if (*t == ';' || *t == '#')
            break;
        if (!isspace((unsigned char)*t)) {
            fail(ld, line, -EINVAL, "unexpected text after ']'");
            return;
        }
    }
    *end = '\0';
    char *in = s + 1;
    while (isspace((unsigned char)*in))
        in++;
    for (char *e = end; e > in && isspace((unsigned char)e[-1]);)
        *--e = '\0';

    if (strcmp(in, "emmd") == 0) {
        if (ld->emmd_line) {
            fail(ld, line, -EINVAL, "duplicate section [emmd] (first on line %d)", ld->emmd_line);
            return;
        }
        ld->emmd_line = line;
        ld->sect = SECT_EMMD;
    } else if (strcmp(in, "default-pager") == 0) {
        if (ld->dp_line) {
            fail(ld, line, -EINVAL, "duplicate section [default-pager] (first on line %d)",
                 ld->dp_line);
            return;
        }
        ld->dp_line = line;
        ld->sect = SECT_DPAGER;
    } else if (strncmp(in, "fs", 2) == 0 && (in[2] == '\0' || isspace((unsigned char)in[2]))) {
        char *name = in + 2;
        while (isspace((unsigned char)*name))
            name++;
        if (*name == '\0')
            fail(ld, line, -EINVAL, "section [fs] needs a name: [fs NAME]");
        else if (!valid_fs_name(name))
            fail(ld, line, -EINVAL,
                 "bad filesystem name '%s' in section header (want [A-Za-z0-9_-]+, at most %d "
                 "characters)",
                 name, FS_NAME_MAX);
        else
            add_fs(ld, line, name);
    } else {
        fail(ld, line, -EINVAL,
             "unknown section [%s] (want [emmd], [default-pager] or [fs NAME])", in);
    }
}

/* ---- the line reader libinih pulls from ---- */

/*
 * Cuts an inline comment (';' or '#' after a blank) off a key line and returns
 * the new length. libinih knows only ';', and would keep "# ..." in the value.
 */
static size_t
cut_comment(char *s, size_t len)
{
    for (size_t i = 1; i < len; i++) {
        if ((s[i] == ';' || s[i] == '#') && isspace((unsigned char)s[i - 1])) {
            s[i] = '\0';
            return i;
        }
    }
    return len;
}

static char *
read_line(char *str, int num, void *stream)
{
    struct loader *ld = stream;
    ssize_t n;

    if (ld->failed)
        return NULL;
    errno = 0;
    n = getline(&ld->raw, &ld->rawcap, ld->f);
    if (n < 0) {
        if (ferror(ld->f))
            fail(ld, ld->line + 1, errno ? -errno : -EIO, "read error: %s",
                 strerror(errno ? errno : EIO));
        return NULL;
    }
    ld->line++;

    char *s = ld->raw;
    size_t len = (size_t)n;
    if (memchr(s, '\0', len)) {
        fail(ld, ld->line, -EINVAL, "NUL byte in line");
        return NULL;
    }
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
    if (ld->line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        len -= 3;
    }
    while (isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    if (*s == '[') {
        section_header(ld, s);
        if (ld->failed)
            return NULL;
        /* libinih still sees a header so its own state stays consistent. */
        snprintf(str, (size_t)num, "[]\n");
        return str;
    }
    if (*s == '\0' || *s == ';' || *s == '#') {
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    len = cut_comment(s, len);
    if (!strpbrk(s, "=:")) {
        fail(ld, ld->line, -EINVAL, "expected 'key = value', '[section]' or a comment");
        return NULL;
    }
    if (num < 3 || len > (size_t)num - 2) {
        fail(ld, ld->line, -EINVAL, "line too long (at most %d characters)", num - 2);
        return NULL;
    }
    memcpy(str, s, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

/* ---- keys ---- */

static int
find_key(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* "ADDRESS:PORT", ADDRESS a numeric IPv4 address or a bracketed IPv6 one. */
static int
parse_listen(const char *value)
{
    struct sockaddr_storage ss;
    socklen_t len;
    return emm_config_listen_addr(value, &ss, &len);
}

static int
emmd_key(struct loader *ld, int line, const char *name, const char *value)
{
    struct emm_config *cfg = ld->cfg;
    uint64_t v;
    int k = find_key(emmd_keys, K_EMMD_N, name);

    if (k < 0) {
        fail(ld, line, -EINVAL, "unknown key '%s' in [emmd]", name);
        return 0;
    }
    if (ld->emmd_key[k]) {
        fail(ld, line, -EINVAL, "duplicate key '%s' in [emmd] (first on line %d)", name,
             ld->emmd_key[k]);
        return 0;
    }
    ld->emmd_key[k] = line;

    switch ((enum emmd_key)k) {
    case K_STATE_DIR: return set_path(ld, line, name, value, &cfg->state_dir);
    case K_MOUNT_ROOT: return set_path(ld, line, name, value, &cfg->mount_root);
    case K_CONTROL_SOCKET: return set_path(ld, line, name, value, &cfg->control_socket);
    case K_PID_FILE: return set_path(ld, line, name, value, &cfg->pid_file);
    case K_PLUGIN_DIR: return set_path(ld, line, name, value, &cfg->plugin_dir);
    case K_RESIDENT_LIMIT: {
        long page = sysconf(_SC_PAGESIZE);
        if (page <= 0)
            page = 4096;
        if (emm_parse_size(value, &v) < 0 || v < MIB || v % (uint64_t)page) {
            fail(ld, line, -EINVAL,
                 "bad value '%s' for resident-limit (want a size >= 1M, a multiple of %ld)", value,
                 page);
            return 0;
        }
        cfg->resident_limit = v;
        return 1;
    }
    case K_FUSE_THREADS:
        if (parse_uint(value, 1, 64, &v) < 0) {
            fail(ld, line, -EINVAL, "bad value '%s' for fuse-threads (want an integer 1..64)",
                 value);
            return 0;
        }
        cfg->fuse_threads = (unsigned)v;
        return 1;
    case K_BUSY_POLL:
        if (parse_uint(value, 0, 10000, &v) < 0) {
            fail(ld, line, -EINVAL,
                 "bad value '%s' for busy-poll (want microseconds 0..10000)", value);
            return 0;
        }
        cfg->busy_poll_us = (unsigned)v;
        return 1;
    case K_LOG_LEVEL: {
        static const char *const levels[] = {"debug", "info", "notice", "warn", "error"};
        static const int lv[] = {EMM_LOG_DEBUG, EMM_LOG_INFO, EMM_LOG_NOTICE, EMM_LOG_WARN,
                                 EMM_LOG_ERR};
        int i = find_key(levels, 5, value);
        if (i < 0) {
            fail(ld, line, -EINVAL,
                 "bad value '%s' for log-level (want debug, info, notice, warn or error)", value);
            return 0;
        }
        cfg->log_level = lv[i];
        return 1;
    }
    case K_PAGEOUT_POLICY:
        if (!vm_policy_lookup(value)) {
            fail(ld, line, -EINVAL, "bad value '%s' for pageout.policy (want %s)", value,
                 VM_POLICY_NAMES);
            return 0;
        }
        cfg->pageout_policy = dup_or_fail(ld, value);
        return cfg->pageout_policy != NULL;
    case K_METRICS_LISTEN:
        if (parse_listen(value) < 0) {
            fail(ld, line, -EINVAL,
                 "bad value '%s' for metrics-listen (want ADDRESS:PORT with a numeric address "
                 "and a port 1..65535, e.g. 127.0.0.1:9477 or [::1]:9477)", value);
            return 0;
        }
        cfg->metrics_listen = dup_or_fail(ld, value);
        return cfg->metrics_listen != NULL;
    case K_EMMD_N: break;
    }
    return 0;
}

/* "-1" or an integer 0..32767. */
static int
parse_priority(const char *s, int *out)
{
    uint64_t v;

    if (strcmp(s, "-1") == 0) {
        *out = -1;
        return 0;
    }
    if (parse_uint(s, 0, 32767, &v) < 0)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

/* "swap = PATH [SIZE] [priority=N]": one swap area. */
static int
dp_swap(struct loader *ld, int line, const char *value)
{
    struct emm_config *cfg = ld->cfg;
    struct emm_swap_config sw = {.line = line};
    char buf[256], *save = NULL, *tok;
    int have_size = 0, have_prio = 0;

    snprintf(buf, sizeof(buf), "%s", value); /* read_line keeps lines shorter */
    char *path = strtok_r(buf, " \t", &save);
    if (!path) {
        fail(ld, line, -EINVAL, "empty value for swap");
        return 0;
    }
    while ((tok = strtok_r(NULL, " \t", &save))) {
        if (!have_prio && strncmp(tok, "priority=", 9) == 0) {
            have_prio = 1;
            if (parse_priority(tok + 9, &sw.priority) < 0) {
                fail(ld, line, -EINVAL,
                     "bad priority '%s' for swap (want priority=N, N an integer -1..32767)",
                     tok + 9);
                return 0;
            }
        } else if (!have_size && isdigit((unsigned char)*tok)) {
            have_size = 1;
            if (emm_parse_size(tok, &sw.size) < 0 || sw.size < MIB || sw.size % SWAP_PAGE) {
                fail(ld, line, -EINVAL,
                     "bad size '%s' for swap (want a size >= 1M, a multiple of %d)", tok,
                     SWAP_PAGE);
                return 0;
            }
        } else {
            fail(ld, line, -EINVAL, "unknown token '%s' in swap (want PATH [SIZE] [priority=N])",
                 tok);
            return 0;
        }
    }
    sw.path = abs_path(ld, line, "swap", path);
    if (!sw.path)
        return 0;
    for (size_t i = 0; i < cfg->nswaps; i++) {
        if (strcmp(cfg->swaps[i].path, sw.path) == 0) {
            fail(ld, line, -EINVAL, "duplicate swap %s (first on line %d)", sw.path,
                 cfg->swaps[i].line);
            free(sw.path);
            return 0;
        }
    }
    struct emm_swap_config *swaps = realloc(cfg->swaps, (cfg->nswaps + 1) * sizeof(*swaps));
    if (!swaps) {
        free(sw.path);
        fail(ld, 0, -ENOMEM, "out of memory");
        return 0;
    }
    cfg->swaps = swaps;
    swaps[cfg->nswaps++] = sw;
    return 1;
}

static int
dpager_key(struct loader *ld, int line, const char *name, const char *value)
{
    struct emm_config *cfg = ld->cfg;
    uint64_t v;

    if (strcmp(name, "swap") == 0)
        return dp_swap(ld, line, value);
    int k = find_key(dp_keys, D_N, name);
    if (k < 0) {
        fail(ld, line, -EINVAL, "unknown key '%s' in [default-pager]", name);
        return 0;
    }
    if (ld->dp_key[k]) {
        fail(ld, line, -EINVAL, "duplicate key '%s' in [default-pager] (first on line %d)", name,
             ld->dp_key[k]);
        return 0;
    }
    ld->dp_key[k] = line;

    switch ((enum dp_key)k) {
    case D_DEADLINE: return set_deadline(ld, line, name, value, &cfg->pager_deadline_ms);
    case D_THREADS:
        if (parse_uint(value, 1, 16, &v) < 0) {
            fail(ld, line, -EINVAL, "bad value '%s' for threads (want an integer 1..16)", value);
            return 0;
        }
        cfg->dpager_threads = (unsigned)v;
        return 1;
    case D_N: break;
    }
    return 0;
}

/* A user (is_uid) or group: digits (0..2^32-2), else a name looked up in the
 * system's databases. -1 if neither. */
static long long
parse_id(const char *s, int is_uid)
{
    uint64_t v;
    char buf[4096];

    if (isdigit((unsigned char)*s))
        return parse_uint(s, 0, 0xfffffffeu, &v) < 0 ? -1 : (long long)v;
    if (is_uid) {
        struct passwd pw, *r = NULL;
        if (getpwnam_r(s, &pw, buf, sizeof(buf), &r) != 0 || r == NULL)
            return -1;
        return (long long)r->pw_uid;
    }
    struct group gr, *r = NULL;
    if (getgrnam_r(s, &gr, buf, sizeof(buf), &r) != 0 || r == NULL)
        return -1;
    return (long long)r->gr_gid;
}

static void
fail_none_keys(struct loader *ld, int line, const char *key, const char *fs)
{
    fail(ld, line, -EINVAL, "key '%s' in [fs %s]: backend none takes no keys", key, fs);
}

static int
backend_key(struct loader *ld, int line, struct emm_fs_config *fs, const char *name,
            const char *value)
{
    if (fs->temporary) {
        fail_none_keys(ld, line, name, fs->name);
        return 0;
    }
    for (size_t i = 0; i < fs->nbackend_keys; i++) {
        if (strcmp(fs->backend_keys[i].key, name) == 0) {
            fail(ld, line, -EINVAL, "duplicate key '%s' in [fs %s] (first on line %d)", name,
                 fs->name, fs->backend_keys[i].line);
            return 0;
        }
    }
    struct emm_config_kv *kv =
        realloc(fs->backend_keys, (fs->nbackend_keys + 1) * sizeof(*kv));
    if (!kv) {
        fail(ld, 0, -ENOMEM, "out of memory");
        return 0;
    }
    fs->backend_keys = kv;
    kv = &kv[fs->nbackend_keys];
    kv->key = strdup(name);
    kv->value = strdup(value);
    kv->line = line;
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        fail(ld, 0, -ENOMEM, "out of memory");
        return 0;
    }
    fs->nbackend_keys++;
    return 1;
}

/* pager.tls* go with pager = tcp; TLS (the default) needs a PSK file or the
 * X.509 trio, never both. */
static int
tls_keys_check(struct loader *ld, struct emm_fs_config *fs, const struct fs_lines *fl)
{
    static const enum fs_key tls[] = {F_PAGER_TLS, F_PAGER_TLS_PSK, F_PAGER_TLS_CA,
                                      F_PAGER_TLS_CERT, F_PAGER_TLS_KEY};
    int x509 = fs->pager_tls_ca || fs->pager_tls_cert || fs->pager_tls_key;
    if (fs->pager_mode != EMM_PAGER_TCP) {
        for (size_t j = 0; j < sizeof(tls) / sizeof(tls[0]); j++)
            if (fl->key[tls[j]]) {
                fail(ld, fl->key[tls[j]], -EINVAL, "%s needs pager = tcp:HOST:PORT in [fs %s]",
                     fs_keys[tls[j]], fs->name);
                return 0;
            }
        return 1;
    }
    if (!fs->pager_tls)
        return 1;
    if (fs->pager_tls_psk_file && x509) {
        fail(ld, fl->key[F_PAGER_TLS_PSK], -EINVAL,
             "give pager.tls-psk-file or pager.tls-ca/-cert/-key in [fs %s], not both", fs->name);
        return 0;
    }
    if (!fs->pager_tls_psk_file && !(fs->pager_tls_ca && fs->pager_tls_cert && fs->pager_tls_key)) {
        fail(ld, fl->key[F_PAGER], -EINVAL,
             "pager = tcp needs credentials in [fs %s]: pager.tls-psk-file, or pager.tls-ca, "
             "pager.tls-cert and pager.tls-key (or pager.tls = off, loopback only)", fs->name);
        return 0;
    }
    return 1;
}

static int
fs_key(struct loader *ld, int line, const char *name, const char *value)
{
    struct emm_fs_config *fs = &ld->cfg->fs[ld->cur];
    struct fs_lines *fl = &ld->fsl[ld->cur];
    uint64_t v;

    if (strchr(name, '.') && strncmp(name, "pager.", 6) != 0)
        return backend_key(ld, line, fs, name, value);
    int k = find_key(fs_keys, F_N, name);
    if (k < 0) {
        fail(ld, line, -EINVAL, "unknown key '%s' in [fs %s]", name, fs->name);
        return 0;
    }
    if (fl->key[k]) {
        fail(ld, line, -EINVAL, "duplicate key '%s' in [fs %s] (first on line %d)", name,
             fs->name, fl->key[k]);
        return 0;
    }
    fl->key[k] = line;

    switch ((enum fs_key)k) {
    case F_BACKEND:
        if (*value == '\0') {
            fail(ld, line, -EINVAL, "empty value for backend");
            return 0;
        }
        fs->backend = dup_or_fail(ld, value);
        fs->backend_line = line;
        if (strcmp(value, "none") == 0) {
            fs->temporary = 1;
            if (fs->nbackend_keys) {
                fail_none_keys(ld, fs->backend_keys[0].line, fs->backend_keys[0].key, fs->name);
                return 0;
            }
        }
        return fs->backend != NULL;
    case F_MOUNTPOINT:
        fs->mountpoint_explicit = 1;
        return set_path(ld, line, name, value, &fs->mountpoint);
    case F_READAHEAD:
        if (emm_parse_size(value, &v) < 0 || v > 64 * MIB) {
            fail(ld, line, -EINVAL, "bad value '%s' for readahead (want a size 0..64M)", value);
            return 0;
        }
        fs->readahead = v;
        return 1;
    case F_PAGER_THREADS:
        if (parse_uint(value, 1, 64, &v) < 0) {
            fail(ld, line, -EINVAL, "bad value '%s' for pager-threads (want an integer 1..64)",
                 value);
            return 0;
        }
        fs->pager_threads = (unsigned)v;
        return 1;
    case F_PAGER_DEADLINE: return set_deadline(ld, line, name, value, &fs->pager_deadline_ms);
    case F_MOUNT_OVER:
        if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1")) {
            fs->mount_over = 1;
        } else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0")) {
            fs->mount_over = 0;
        } else {
            fail(ld, line, -EINVAL, "bad value '%s' for mount-over (want yes or no)", value);
            return 0;
        }
        return 1;
    case F_PAGER:
        if (strcmp(value, "inline") == 0) {
            fs->pager_mode = EMM_PAGER_INLINE;
        } else if (strcmp(value, "process") == 0) {
            fs->pager_mode = EMM_PAGER_PROCESS;
        } else if (strncmp(value, "unix:", 5) == 0 && value[5] == '/' &&
                   strlen(value + 5) < 108) {
            fs->pager_mode = EMM_PAGER_UNIX;
            fs->pager_socket = dup_or_fail(ld, value + 5);
            return fs->pager_socket != NULL;
        } else if (strncmp(value, "tcp:", 4) == 0) {
            char host[256], port[8];
            const char *why = NULL;
            if (emm_tcp_parse(value + 4, host, sizeof(host), port, sizeof(port), &why) < 0) {
                fail(ld, line, -EINVAL, "bad value '%s' for pager: %s", value, why);
                return 0;
            }
            fs->pager_mode = EMM_PAGER_TCP;
            fs->pager_addr = dup_or_fail(ld, value + 4);
            return fs->pager_addr != NULL;
        } else {
            fail(ld, line, -EINVAL,
                 "bad value '%s' for pager (want inline, process, unix:/ABSOLUTE/PATH or "
                 "tcp:HOST:PORT)", value);
            return 0;
        }
        return 1;
    case F_PAGER_TLS:
        if (!strcmp(value, "on") || !strcmp(value, "yes")) {
            fs->pager_tls = 1;
        } else if (!strcmp(value, "off") || !strcmp(value, "no")) {
            fs->pager_tls = 0;
        } else {
            fail(ld, line, -EINVAL, "bad value '%s' for pager.tls (want on or off)", value);
            return 0;
        }
        return 1;
    case F_PAGER_TLS_PSK: return set_path(ld, line, name, value, &fs->pager_tls_psk_file);
    case F_PAGER_TLS_CA: return set_path(ld, line, name, value, &fs->pager_tls_ca);
    case F_PAGER_TLS_CERT: return set_path(ld, line, name, value, &fs->pager_tls_cert);
    case F_PAGER_TLS_KEY: return set_path(ld, line, name, value, &fs->pager_tls_key);
    case F_PAGER_USER: {
        if (*value == '\0') {
            fail(ld, line, -EINVAL, "empty value for pager.user");
            return 0;
        }
        struct passwd *pw = getpwnam(value);
        if (pw == NULL) {
            fail(ld, line, -EINVAL, "unknown user '%s' for pager.user", value);
            return 0;
        }
        fs->pager_user = dup_or_fail(ld, value);
        fs->pager_uid = pw->pw_uid;
        return fs->pager_user != NULL;
    }
    case F_ROOT_UID:
    case F_ROOT_GID: {
        int is_uid = k == F_ROOT_UID;
        long long id = parse_id(value, is_uid);
        if (id < 0) {
            fail(ld, line, -EINVAL, "bad value '%s' for %s (want a %s name or number 0..%u)",
                 value, name, is_uid ? "user" : "group", 0xfffffffeu);
            return 0;
        }
        *(is_uid ? &fs->root_uid : &fs->root_gid) = id;
        return 1;
    }
    case F_ROOT_MODE: {
        char *end;
        errno = 0;
        long m = strtol(value, &end, 8);
        if (!isdigit((unsigned char)*value) || *end || errno || m < 0 || m > 07777) {
            fail(ld, line, -EINVAL, "bad value '%s' for root-mode (want an octal mode 0..7777, "
                 "e.g. 0755 or 1777)", value);
            return 0;
        }
        fs->root_mode = (int)m;
        return 1;
    }
    case F_N: break;
    }
    return 0;
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
    struct loader *ld = user;

    (void)section; /* ld->sect is authoritative: libinih only ever sees "[]" */
    if (ld->failed)
        return 0;
    switch (ld->sect) {
    case SECT_NONE:
        fail(ld, ld->line, -EINVAL, "key '%s' outside any section", name);
        return 0;
    case SECT_EMMD: return emmd_key(ld, ld->line, name, value);
    case SECT_DPAGER: return dpager_key(ld, ld->line, name, value);
    case SECT_FS: return fs_key(ld, ld->line, name, value);
    }
    return 0;
}

/* ---- whole-file checks ---- */

static char *
join(struct loader *ld, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) {
        fail(ld, 0, -ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
    return p;
}

static int
set_default(struct loader *ld, char **dst, const char *dir, const char *name)
{
    if (*dst)
        return 0;
    *dst = name ? join(ld, dir, name) : dup_or_fail(ld, dir);
    return *dst ? 0 : -1;
}

/* A stale FUSE mount answers ENOTCONN; it is still a mountpoint emmd can reuse. */
static int
check_dir(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOTCONN ? 0 : -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int
mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    int r;

    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, c ? 0755 : mode) < 0 && errno != EEXIST)
            return -errno;
        *p = c;
        if (!c)
            break;
    }
    r = check_dir(path);
    return r;
}

/* The directory part of path ("/" for "/x"); buf holds PATH_MAX bytes. */
static const char *
dir_of(const char *path, char *buf)
{
    snprintf(buf, PATH_MAX, "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash == buf)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    return buf;
}

/*
 * A directory emmd keeps its own files in (state-dir; the control socket's and
 * the pid file's directories, where a sticky one such as /tmp is accepted):
 * created if missing (mode) when creating, and then it must be private
 * (emm_dir_check_private). When only checking, a missing one is fine (emmd
 * will create it) and nothing is created.
 */
static int
own_dir(struct loader *ld, int line, const char *what, const char *path, mode_t mode,
        int allow_sticky, int create)
{
    char why[PATH_MAX + 256];
    struct stat st;
    int r;

    if (stat(path, &st) < 0 && errno == ENOENT) {
        if (!create)
            return 0;
        r = mkdir_p(path, mode);
        if (r < 0) {
            fail(ld, line, r, "cannot create %s %s: %s", what, path, strerror(-r));
            return r;
        }
    }
    r = emm_dir_check_private(path, allow_sticky, why, sizeof(why));
    if (r < 0)
        fail(ld, line, r, "%s: %s", what, why);
    return r;
}

static void
check_paths(struct loader *ld, int mode)
{
    struct emm_config *cfg = ld->cfg;
    int create = mode == EMM_CONFIG_CREATE_PATHS;
    char dir[PATH_MAX];
    int r, uses_root = 0;

    if (own_dir(ld, ld->emmd_key[K_STATE_DIR], "state-dir", cfg->state_dir, 0700, 0, create) < 0)
        return;
    if (own_dir(ld, ld->emmd_key[K_CONTROL_SOCKET], "the control socket's directory",
                dir_of(cfg->control_socket, dir), 0755, 1, create) < 0)
        return;
    if (own_dir(ld, ld->emmd_key[K_PID_FILE], "the pid file's directory",
                dir_of(cfg->pid_file, dir), 0755, 1, create) < 0)
        return;
    for (size_t i = 0; i < cfg->nfs; i++)
        uses_root |= !cfg->fs[i].mountpoint_explicit;
    if (uses_root) {
        r = check_dir(cfg->mount_root);
        if (r < 0) {
            fail(ld, ld->emmd_key[K_MOUNT_ROOT], r, "mount-root %s: %s", cfg->mount_root,
                 strerror(-r));
            return;
        }
    }
    for (size_t i = 0; i < cfg->nfs; i++) {
        struct emm_fs_config *fs = &cfg->fs[i];
        if (fs->mountpoint_explicit) {
            r = check_dir(fs->mountpoint);
            if (r < 0) {
                fail(ld, ld->fsl[i].key[F_MOUNTPOINT], r, "mountpoint %s: %s", fs->mountpoint,
                     strerror(-r));
                return;
            }
            continue;
        }
        if (!create) {
            /* -n: mount-root/NAME is created at start; only something else there is wrong */
            r = check_dir(fs->mountpoint);
            if (r == -ENOENT)
                r = 0;
        } else if (mkdir(fs->mountpoint, 0755) < 0 && errno != EEXIST) {
            r = -errno;
        } else {
            r = check_dir(fs->mountpoint);
        }
        if (r < 0) {
            fail(ld, fs->line, r, "cannot create mountpoint %s for [fs %s]: %s", fs->mountpoint,
                 fs->name, strerror(-r));
            return;
        }
    }
}

static void
finish(struct loader *ld, int check)
{
    struct emm_config *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->nfs; i++) {
        if (!cfg->fs[i].backend) {
            fail(ld, cfg->fs[i].line, -EINVAL, "[fs %s] has no backend", cfg->fs[i].name);
            return;
        }
    }
    if (cfg->nfs == 0) {
        fail(ld, 0, -EINVAL, "no [fs NAME] section");
        return;
    }
    for (size_t i = 0; i < cfg->nfs; i++) {
        struct emm_fs_config *fs = &cfg->fs[i];
        if (fs->temporary && cfg->nswaps == 0) {
            fail(ld, fs->backend_line, -EINVAL,
                 "backend = none needs swap: add 'swap = PATH SIZE' to [default-pager]");
            return;
        }
        if (!ld->fsl[i].key[F_PAGER_DEADLINE])
            fs->pager_deadline_ms = cfg->pager_deadline_ms;
        if (fs->temporary && fs->pager_mode != EMM_PAGER_INLINE) {
            fail(ld, ld->fsl[i].key[F_PAGER], -EINVAL,
                 "[fs %s] has backend = none: it has no pager to run elsewhere", fs->name);
            return;
        }
        if (fs->pager_user != NULL && fs->pager_mode != EMM_PAGER_PROCESS) {
            fail(ld, ld->fsl[i].key[F_PAGER_USER], -EINVAL,
                 "pager.user needs pager = process in [fs %s]", fs->name);
            return;
        }
        if (!tls_keys_check(ld, fs, &ld->fsl[i]))
            return;
    }
    if (!cfg->pageout_policy) {
        cfg->pageout_policy = dup_or_fail(ld, VM_POLICY_DEFAULT);
        if (!cfg->pageout_policy)
            return;
    }
    if (set_default(ld, &cfg->state_dir, "/var/lib/emm", NULL) < 0 ||
        set_default(ld, &cfg->mount_root, "/run/emm", NULL) < 0 ||
        set_default(ld, &cfg->control_socket, cfg->state_dir, "emmd.sock") < 0 ||
        set_default(ld, &cfg->pid_file, cfg->state_dir, "emmd.pid") < 0)
        return;
    for (size_t i = 0; i < cfg->nfs; i++)
        if (set_default(ld, &cfg->fs[i].mountpoint, cfg->mount_root, cfg->fs[i].name) < 0)
            return;
    for (size_t j = 1; j < cfg->nfs; j++) {
        for (size_t i = 0; i < j; i++) {
            if (strcmp(cfg->fs[i].mountpoint, cfg->fs[j].mountpoint) != 0)
                continue;
            int line = cfg->fs[j].mountpoint_explicit ? ld->fsl[j].key[F_MOUNTPOINT]
                                                      : cfg->fs[j].line;
            fail(ld, line, -EINVAL, "[fs %s] has the same mountpoint %s as [fs %s] (line %d)",
                 cfg->fs[j].name, cfg->fs[j].mountpoint, cfg->fs[i].name, cfg->fs[i].line);
            return;
        }
    }
    /* The default pager must never page to a filesystem emmd serves: a
     * pageout would wait on a FUSE request only emmd can answer. */
    for (size_t w = 0; w < cfg->nswaps; w++)
        for (size_t i = 0; i < cfg->nfs; i++) {
            size_t n = strlen(cfg->fs[i].mountpoint);
            if (strncmp(cfg->swaps[w].path, cfg->fs[i].mountpoint, n) == 0 &&
                (cfg->swaps[w].path[n] == '/' || cfg->swaps[w].path[n] == '\0')) {
                fail(ld, cfg->swaps[w].line, -EINVAL,
                     "swap %s is inside [fs %s]'s mountpoint %s: emmd cannot page to a "
                     "filesystem it serves",
                     cfg->swaps[w].path, cfg->fs[i].name, cfg->fs[i].mountpoint);
                return;
            }
        }
    /* The socket is bound in a temporary directory next to its path, then linked
     * into place (ctl_server.c), and clients connect by the whole path: both must
     * fit sockaddr_un.sun_path, NUL included. */
    {
        size_t n = strlen(cfg->control_socket), max = sizeof(((struct sockaddr_un *)0)->sun_path);
        const char *slash = strrchr(cfg->control_socket, '/');
        size_t dirlen = slash ? (size_t)(slash - cfg->control_socket) + 1 : 0;
        if (n >= max) {
            fail(ld, ld->emmd_key[K_CONTROL_SOCKET], -ENAMETOOLONG,
                 "control-socket %s is %zu bytes long; a Unix socket path holds at most %zu "
                 "(choose a shorter path)", cfg->control_socket, n, max - 1);
            return;
        }
        if (dirlen + sizeof(".ctl-XXXXXX/s") > max) {
            fail(ld, ld->emmd_key[K_CONTROL_SOCKET], -ENAMETOOLONG,
                 "control-socket %s: its directory name is %zu bytes long; emmd needs it to "
                 "be at most %zu (choose a shorter path)", cfg->control_socket, dirlen,
                 max - sizeof(".ctl-XXXXXX/s"));
            return;
        }
    }
    if (check)
        check_paths(ld, check);
}

int
emm_config_load(const char *path, int check_paths_flag, struct emm_config **out, char *err,
                size_t errlen)
{
    struct loader ld;
    struct emm_config *cfg;
    int r;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    memset(&ld, 0, sizeof(ld));
    ld.file = path;
    ld.err = err;
    ld.errlen = errlen;
    config_base_dir(&ld, path);

    cfg = calloc(1, sizeof(*cfg));
    if (!cfg || !(cfg->path = strdup(path))) {
        free(cfg);
        fail(&ld, 0, -ENOMEM, "out of memory");
        return ld.rc;
    }
    cfg->resident_limit = 256 * MIB;
    cfg->fuse_threads = 2;
    cfg->busy_poll_us = 50;
    cfg->log_level = EMM_LOG_INFO;
    cfg->pager_deadline_ms = 5000;
    cfg->dpager_threads = 2;
    ld.cfg = cfg;

    ld.f = fopen(path, "re");
    if (!ld.f) {
        int e = errno;
        fail(&ld, 0, -e, "cannot open: %s", strerror(e));
        emm_config_free(cfg);
        return ld.rc;
    }
    r = ini_parse_stream(read_line, &ld, on_key, &ld);
    fclose(ld.f);
    free(ld.raw);
    if (!ld.failed && r > 0) /* cannot happen: read_line rejects what libinih would */
        fail(&ld, r, -EINVAL, "syntax error");
    else if (!ld.failed && r < 0)
        fail(&ld, 0, -ENOMEM, "out of memory");
    if (!ld.failed)
        finish(&ld, check_paths_flag);
    if (!ld.failed) {
        _Static_assert(K_EMMD_N <= 16 && D_N <= 4 && F_N <= 16, "key_line arrays too small");
        cfg->emmd_line = ld.emmd_line;
        cfg->dp_line = ld.dp_line;
        memcpy(cfg->emmd_key_line, ld.emmd_key, sizeof(ld.emmd_key));
        memcpy(cfg->dp_key_line, ld.dp_key, sizeof(ld.dp_key));
        for (size_t i = 0; i < cfg->nfs; i++)
            memcpy(cfg->fs[i].key_line, ld.fsl[i].key, sizeof(ld.fsl[i].key));
    }
    free(ld.fsl);
    if (ld.failed) {
        emm_config_free(cfg);
        return ld.rc;
    }
    *out = cfg;
    return 0;
}

void
emm_config_free(struct emm_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nfs; i++) {
        struct emm_fs_config *fs = &cfg->fs[i];
        free(fs->name);
        free(fs->backend);
        free(fs->mountpoint);
        free(fs->pager_socket);
        free(fs->pager_user);
        free(fs->pager_addr);
        free(fs->pager_tls_psk_file);
        free(fs->pager_tls_ca);
        free(fs->pager_tls_cert);
        free(fs->pager_tls_key);
        for (size_t k = 0; k < fs->nbackend_keys; k++) {
            free(fs->backend_keys[k].key);
            free(fs->backend_keys[k].value);
        }
        free(fs->backend_keys);
    }
    free(cfg->fs);
    for (size_t i = 0; i < cfg->nswaps; i++)
        free(cfg->swaps[i].path);
    free(cfg->swaps);
    free(cfg->pageout_policy);
    free(cfg->path);
    free(cfg->state_dir);
    free(cfg->mount_root);
    free(cfg->control_socket);
    free(cfg->pid_file);
    free(cfg->plugin_dir);
    free(cfg->metrics_listen);
    free(cfg);
}

/* ---- dump (emmd --dump-config) ---- */

/* A size the way a person writes it: the largest exact K/M/G/T unit. */
static void
fmt_size(uint64_t v, char *buf, size_t len)
{
    static const char units[] = "KMGT";
    int u = -1;

    while (v != 0 && u < 3 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(buf, len, "%llu", (unsigned long long)v);
    else
        snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
}

static void
fmt_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%llums", (unsigned long long)ms);
}

void
emm_config_dump_global(const struct emm_config *cfg, FILE *f)
{
    static const char *const levels[] = {"debug", "info", "notice", "warn", "error"};
    char a[64];

    fprintf(f, "[emmd]\n");
    fprintf(f, "state-dir = %s\n", cfg->state_dir);
    fprintf(f, "mount-root = %s\n", cfg->mount_root);
    fprintf(f, "control-socket = %s\n", cfg->control_socket);
    fprintf(f, "pid-file = %s\n", cfg->pid_file);
    if (cfg->plugin_dir)
        fprintf(f, "plugin-dir = %s\n", cfg->plugin_dir);
    else
        fprintf(f, "# plugin-dir = (unset: $EMM_PLUGIN_DIR, ../lib/emm beside emmd, LIBDIR/emm)\n");
    fmt_size(cfg->resident_limit, a, sizeof(a));
    fprintf(f, "resident-limit = %s\n", a);
    fprintf(f, "fuse-threads = %u\n", cfg->fuse_threads);
    fprintf(f, "busy-poll = %u\n", cfg->busy_poll_us);
    fprintf(f, "log-level = %s\n",
            cfg->log_level >= EMM_LOG_DEBUG && cfg->log_level <= EMM_LOG_ERR
                ? levels[cfg->log_level] : "info");
    fprintf(f, "pageout.policy = %s\n", cfg->pageout_policy);
    if (cfg->metrics_listen)
        fprintf(f, "metrics-listen = %s\n", cfg->metrics_listen);
    else
        fprintf(f, "# metrics-listen = (unset: no HTTP endpoint; emmctl metrics works always)\n");

    fprintf(f, "\n[default-pager]\n");
    if (cfg->nswaps == 0)
        fprintf(f, "# swap = (none)\n");
    for (size_t i = 0; i < cfg->nswaps; i++) {
        const struct emm_swap_config *sw = &cfg->swaps[i];
        fprintf(f, "swap = %s", sw->path);
        if (sw->size) {
            fmt_size(sw->size, a, sizeof(a));
            fprintf(f, " %s", a);
        }
        fprintf(f, " priority=%d\n", sw->priority);
    }
    fmt_duration(cfg->pager_deadline_ms, a, sizeof(a));
    fprintf(f, "deadline = %s\n", a);
    fprintf(f, "threads = %u\n", cfg->dpager_threads);
}

void
emm_config_dump_fs(const struct emm_fs_config *fs, FILE *f)
{
    char a[64], b[64];
    {
        fprintf(f, "[fs %s]\n", fs->name);
        fprintf(f, "backend = %s\n", fs->backend);
        if (fs->mountpoint_explicit)
            fprintf(f, "mountpoint = %s\n", fs->mountpoint);
        else /* a comment: an explicit mountpoint must exist, mount-root/NAME is created */
            fprintf(f, "# mountpoint = %s (mount-root/NAME, the default)\n", fs->mountpoint);
        fmt_size(fs->readahead, a, sizeof(a));
        fprintf(f, "readahead = %s\n", a);
        fprintf(f, "pager-threads = %u\n", fs->pager_threads);
        fmt_duration(fs->pager_deadline_ms, b, sizeof(b));
        fprintf(f, "pager.deadline = %s\n", b);
        fprintf(f, "mount-over = %s\n", fs->mount_over ? "yes" : "no");
        if (fs->root_uid >= 0)
            fprintf(f, "root-uid = %lld\n", fs->root_uid);
        else
            fprintf(f, "# root-uid = (unset: a new root is emmd's user's; an existing one keeps its owner)\n");
        if (fs->root_gid >= 0)
            fprintf(f, "root-gid = %lld\n", fs->root_gid);
        else
            fprintf(f, "# root-gid = (unset: a new root is emmd's group's; an existing one keeps its group)\n");
        if (fs->root_mode >= 0)
            fprintf(f, "root-mode = %04o\n", (unsigned)fs->root_mode);
        else
            fprintf(f, "# root-mode = (unset: a new root is 0755; an existing one keeps its mode)\n");
        for (size_t k = 0; k < fs->nbackend_keys; k++)
            fprintf(f, "%s = %s\n", fs->backend_keys[k].key, fs->backend_keys[k].value);
    }
}

int
emm_config_dump(const struct emm_config *cfg, FILE *f)
{
    fprintf(f, "# effective configuration of %s, defaults included (emmd --dump-config)\n",
            cfg->path);
    emm_config_dump_global(cfg, f);
    for (size_t i = 0; i < cfg->nfs; i++) {
        fputc('\n', f);
        emm_config_dump_fs(&cfg->fs[i], f);
    }
    return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}

int
emm_config_listen_addr(const char *value, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon;
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - value - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, value + 1, (size_t)(close - value - 1));
        host[close - value - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(value, ':');
        if (colon == NULL || (size_t)(colon - value) >= sizeof(host))
            return -EINVAL;
        memcpy(host, value, (size_t)(colon - value));
        host[colon - value] = '\0';
    }
    uint64_t port;
    if (parse_uint(colon + 1, 1, 65535, &port) < 0)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (value[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (value[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

int
emm_config_key_line(const struct emm_config *cfg, const char *section, const char *key)
{
    if (strcmp(section, "emmd") == 0) {
        int k = find_key(emmd_keys, K_EMMD_N, key);
        return k >= 0 && cfg->emmd_key_line[k] ? cfg->emmd_key_line[k] : cfg->emmd_line;
    }
    if (strcmp(section, "default-pager") == 0) {
        if (strcmp(key, "swap") == 0 && cfg->nswaps > 0)
            return cfg->swaps[0].line;
        int k = find_key(dp_keys, D_N, key);
        return k >= 0 && cfg->dp_key_line[k] ? cfg->dp_key_line[k] : cfg->dp_line;
    }
    if (strncmp(section, "fs ", 3) == 0) {
        for (size_t i = 0; i < cfg->nfs; i++) {
            const struct emm_fs_config *fs = &cfg->fs[i];
            if (strcmp(fs->name, section + 3) != 0)
                continue;
            int k = find_key(fs_keys, F_N, key);
            if (k >= 0 && fs->key_line[k])
                return fs->key_line[k];
            for (size_t j = 0; j < fs->nbackend_keys; j++)
                if (strcmp(fs->backend_keys[j].key, key) == 0)
                    return fs->backend_keys[j].line;
            return fs->line;
        }
    }
    return 0;
}
