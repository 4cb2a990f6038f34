/*
 * reload.c - live reload of the configuration file (SIGHUP, `emmctl reload`,
 * `systemctl reload emmd`). The file is loaded and checked like `emmd -n`; then
 *  - a file that does not load changes nothing ("FILE:LINE: what");
 *  - a key that cannot change while running (everything but busy-poll,
 *    log-level and pageout.policy in [emmd], deadline in [default-pager] and
 *    pager.deadline in an [fs] section that stays) refuses the whole reload,
 *    naming it:
 *    "FILE:LINE: [SECTION] KEY: cannot change while running (was A, now B)";
 *  - a new [fs NAME] is opened and checked (backend stack, mountpoint, the
 *    default pager's key tag) before anything changes, then started and
 *    mounted;
 *  - a filesystem whose section is gone is unmounted if idle: no object open,
 *    and the kernel agrees (a plain, not lazy, unmount); dirty pages go back to
 *    its pager first. A busy one is kept, serving, and named in the reply; the
 *    rest of the reload still applies;
 *  - a new swap line of [default-pager] adds an (empty) area to the running
 *    default pager (swp_dp_add_area); an area in force cannot be removed or
 *    changed, and without a default pager the first one needs a restart;
 *  - busy-poll and log-level take effect at once; a new pageout.policy takes
 *    over every queued page from the old one under the pool lock
 *    (vm_pool_set_policy); a new deadline applies to every object of the
 *    filesystem, open ones included (emmd_fs_set_deadline).
 * Every change is compared on the configurations' dumps (config.c), so a key
 * counts as changed exactly when its effective value does.
 *
 * Locking: reload_lock makes reloads one at a time. fs_lock is taken for
 * writing only to count a new slot or mark one removed (and to swap d->cfg);
 * everything slow (mounting, flushing, unmounting) runs without it, on slots
 * readers do not see yet, or still see whole. A replaced configuration is kept
 * (d->retired) until exit: filesystems and readers may still point into it.
 * d->cfg itself is read under fs_lock (commands, metrics) or by the main
 * thread; the FUSE threads read only their fs->cfg, which never changes.
 */
#include "ctl_wire.h"
#include "emmd.h"
#include "fsutil.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

/* What a reload did and what it refused: lines for the reply and the log. */
struct report {
    FILE *body;   /* every line (the ok reply) */
    char reason[CTL_WIRE_MAX_REASON - 64]; /* the first refusal (the error reply) */
    int refused;
    int applied; /* something changed */
};

static void say(struct report *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(struct report *r, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emm_log(level, "reload: %s", line);
    if (r->body != NULL)
        fprintf(r->body, "%s\n", line);
}

static void refuse(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
refuse(struct report *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emm_err("reload: %s", line);
    if (r->body != NULL)
        fprintf(r->body, "%s\n", line);
    if (!r->refused++) {
        size_t len = strlen(line);
        if (len >= sizeof(r->reason))
            len = sizeof(r->reason) - 1;
        memcpy(r->reason, line, len);
        r->reason[len] = '\0';
    }
}

/* ---- comparing dumps ---- */

struct entry {
    char section[80], key[80], value[400];
};

struct entries {
    struct entry *v;
    size_t n, cap;
};

/* Parses dump text ("[section]", "key = value", "# key = value (why)") into
 * entries; repeated keys (swap) are joined with " | ". */
static int
parse_dump(char *text, struct entries *es)
{
    char section[80] = "";
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '[') {
            snprintf(section, sizeof(section), "%.*s", (int)strcspn(l + 1, "]"), l + 1);
            continue;
        }
        int comment = l[0] == '#';
        if (comment)
            l += l[1] == ' ' ? 2 : 1;
        char *eq = strstr(l, " = ");
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *key = l, *value = eq + 3;
        struct entry *e = NULL;
        for (size_t i = 0; i < es->n; i++)
            if (strcmp(es->v[i].section, section) == 0 && strcmp(es->v[i].key, key) == 0)
                e = &es->v[i];
        if (e != NULL) {
            size_t len = strlen(e->value);
            snprintf(e->value + len, sizeof(e->value) - len, " | %s", value);
            continue;
        }
        if (es->n == es->cap) {
            size_t cap = es->cap ? es->cap * 2 : 32;
            struct entry *v = realloc(es->v, cap * sizeof(*v));
            if (v == NULL)
                return -ENOMEM;
            es->v = v;
            es->cap = cap;
        }
        e = &es->v[es->n++];
        snprintf(e->section, sizeof(e->section), "%s", section);
        snprintf(e->key, sizeof(e->key), "%s", key);
        snprintf(e->value, sizeof(e->value), "%s%s", comment ? "(unset) " : "", value);
    }
    return 0;
}

static const struct entry *
find(const struct entries *es, const char *section, const char *key)
{
    for (size_t i = 0; i < es->n; i++)
        if (strcmp(es->v[i].section, section) == 0 && strcmp(es->v[i].key, key) == 0)
            return &es->v[i];
    return NULL;
}

/* Keys a reload may change. */
static int
tunable(const char *section, const char *key)
{
    if (strcmp(section, "emmd") == 0)
        return strcmp(key, "busy-poll") == 0 || strcmp(key, "log-level") == 0 ||
               strcmp(key, "pageout.policy") == 0;
    if (strcmp(section, "default-pager") == 0)
        return strcmp(key, "deadline") == 0; /* the [fs] sections' default */
    if (strncmp(section, "fs ", 3) == 0)
        return strcmp(key, "pager.deadline") == 0;
    return 0;
}

/* Compares one key set of the old and the new configuration: a change of a
 * key that is not tunable is refused with the new file's line. */
static void
compare(struct report *r, const struct emm_config *nc, const struct entries *o,
        const struct entries *n, int *tunables_changed)
{
    for (int pass = 0; pass < 2; pass++) {
        const struct entries *a = pass ? n : o, *b = pass ? o : n;
        for (size_t i = 0; i < a->n; i++) {
            const struct entry *x = &a->v[i], *y = find(b, x->section, x->key);
            if (pass == 1 && y != NULL)
                continue; /* seen in the first pass */
            const char *was = pass ? "(absent)" : x->value, *now = pass ? x->value : y ? y->value : "(absent)";
            if (strcmp(was, now) == 0)
                continue;
            if (strcmp(x->section, "default-pager") == 0 && strcmp(x->key, "swap") == 0)
                continue; /* check_swaps */
            if (tunable(x->section, x->key)) {
                (*tunables_changed)++;
                continue;
            }
            int line = emm_config_key_line(nc, x->section, x->key);
            if (line > 0)
                refuse(r, "%s:%d: [%s] %s: cannot change while running (was %s, now %s)",
                       nc->path, line, x->section, x->key, was, now);
            else
                refuse(r, "%s: [%s] %s: cannot change while running (was %s, now %s)", nc->path,
                       x->section, x->key, was, now);
        }
    }
}

static int
dump_entries(void (*fn)(const void *, FILE *), const void *what, struct entries *es)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return -ENOMEM;
    fn(what, f);
    int rc = fclose(f) == 0 ? parse_dump(buf, es) : -ENOMEM;
    free(buf);
    return rc;
}

static void
dump_global(const void *cfg, FILE *f)
{
    emm_config_dump_global(cfg, f);
}

static void
dump_fs(const void *fs, FILE *f)
{
    emm_config_dump_fs(fs, f);
}

static struct emmd_fs *
live_fs(struct emmd *d, const char *name)
{
    for (size_t i = 0; i < d->nfs; i++)
        if (!d->fs[i].removed && strcmp(d->fs[i].cfg->name, name) == 0)
            return &d->fs[i];
    return NULL;
}

static const struct emm_fs_config *
new_fs(const struct emm_config *nc, const char *name)
{
    for (size_t i = 0; i < nc->nfs; i++)
        if (strcmp(nc->fs[i].name, name) == 0)
            return &nc->fs[i];
    return NULL;
}

/* ---- swap areas ---- */

/* Every area in force must stay as it is (an area cannot be taken out of the
 * default pager while it may hold pages); new lines are areas to add, which
 * needs a running default pager: the kernel takes its default pager before
 * the first object exists (Mach's vm_set_default_memory_manager), so the
 * first swap area needs a restart. Fills add[] with the new lines. */
static void
check_swaps(struct emmd *d, const struct emm_config *nc, struct report *r,
            const struct emm_swap_config **add, size_t *nadd)
{
    const struct emm_config *oc = d->cfg;
    int line = emm_config_key_line(nc, "default-pager", "swap");
    *nadd = 0;
    for (size_t i = 0; i < oc->nswaps; i++) {
        const struct emm_swap_config *o = &oc->swaps[i], *n = NULL;
        for (size_t j = 0; j < nc->nswaps; j++)
            if (strcmp(nc->swaps[j].path, o->path) == 0)
                n = &nc->swaps[j];
        if (n == NULL)
            refuse(r, "%s:%d: [default-pager] swap: %s cannot be removed while running (its "
                   "pages have nowhere else to go); restart emmd to remove it", nc->path, line,
                   o->path);
        else if (n->size != o->size || n->priority != o->priority)
            refuse(r, "%s:%d: [default-pager] swap: %s cannot change while running (size or "
                   "priority); only new areas can be added", nc->path, n->line, o->path);
    }
    for (size_t j = 0; j < nc->nswaps; j++) {
        const struct emm_swap_config *n = &nc->swaps[j];
        int known = 0;
        for (size_t i = 0; i < oc->nswaps; i++)
            known |= strcmp(oc->swaps[i].path, n->path) == 0;
        if (known)
            continue;
        if (d->dpager == NULL) {
            refuse(r, "%s:%d: [default-pager] swap: %s: emmd started without swap, and the "
                   "first swap area needs a restart (the default pager is set before the "
                   "first object)", nc->path, n->line, n->path);
            continue;
        }
        add[(*nadd)++] = n;
    }
}

/* ---- unmounting one filesystem ---- */

static int
open_objects(struct emmd_fs *fs)
{
    int n = 0;
    pthread_mutex_lock(&fs->lock);
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *x = fs->by_id[b]; x; x = x->next_id)
            n += x->nopen > 0;
    pthread_mutex_unlock(&fs->lock);
    return n;
}

/* A plain unmount (never lazy): fails with EBUSY while anything uses the
 * mount. As root umount2 itself; otherwise fusermount3 -u (without -z). */
static int
unmount_plain(const char *mp)
{
    if (geteuid() == 0)
        return umount2(mp, UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, STDOUT_FILENO);
            dup2(nul, STDERR_FILENO);
        }
        execlp("fusermount3", "fusermount3", "-u", "-q", "--", mp, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EBUSY;
}

/* 0: unmounted and closed; -EBUSY: still in use, kept as it was. */
static int
remove_fs(struct emmd *d, struct emmd_fs *fs, struct report *r)
{
    const char *name = fs->cfg->name, *mp = fs->cfg->mountpoint;
    int fd = open(mp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (syncfs(fd) < 0)
            emm_warn("fs %s: syncfs: %s", name, strerror(errno));
        close(fd);
    }
    /* The kernel decides what is busy: an open file, a mapping, a working
     * directory. (emmd's own count of open objects lags behind close(2): the
     * RELEASE comes later.) */
    int rc = unmount_plain(mp);
    if (rc < 0) {
        int nopen = open_objects(fs);
        if (rc == -EBUSY && nopen > 0)
            refuse(r, "[fs %s] is busy (%d object%s open): kept mounted at %s; close %s and "
                   "reload again", name, nopen, nopen == 1 ? "" : "s", mp,
                   nopen == 1 ? "it" : "them");
        else
            refuse(r, "[fs %s] is busy (%s): kept mounted at %s", name,
                   rc == -EBUSY ? "in use: a working directory, an open file or a mapping"
                                : strerror(-rc),
                   mp);
        return -EBUSY;
    }
    /* Gone from the kernel. fz_unmount ends the loops, and libfuse's unmount
     * then finds the channel severed (POLLERR) and only frees its state. */
    fz_unmount(fs);
    if (fs->pager != NULL && (fs->backend->flags & EMM_BACKEND_PERSISTENT))
        emmd_fs_flush_all(fs);
    pthread_rwlock_wrlock(&d->fs_lock);
    fs->removed = 1;
    pthread_rwlock_unlock(&d->fs_lock);
    say(r, EMM_LOG_NOTICE, "[fs %s] removed: unmounted %s", name, mp);
    emmd_fs_close(fs);
    r->applied = 1;
    return 0;
}

/* ---- adding ---- */

/* Opens (not starts) a new filesystem in slot fs and checks what a start
 * would: its mountpoint and its tag at the default pager. */
static int
prepare_fs(struct emmd *d, struct emmd_fs *fs, const struct emm_fs_config *c, struct report *r)
{
    char err[PATH_MAX + 300];
    memset(fs, 0, sizeof(*fs));
    int rc = emmd_fs_open(d, fs, c, err, sizeof(err));
    if (rc < 0) {
        refuse(r, "%s", err);
        return rc;
    }
    for (size_t i = 0; i < d->nfs; i++)
        if (!d->fs[i].removed && d->fs[i].dp_tag == fs->dp_tag) {
            refuse(r, "%s:%d: filesystem names '%s' and '%s' collide in the default pager's "
                   "keys; rename one", d->cfg->path, c->line, c->name, d->fs[i].cfg->name);
            return -EINVAL;
        }
    for (struct emmd_fs *o = d->fs + d->nfs; o < fs; o++) /* the others added now */
        if (o->dp_tag == fs->dp_tag) {
            refuse(r, "%s:%d: filesystem names '%s' and '%s' collide in the default pager's "
                   "keys; rename one", d->cfg->path, c->line, c->name, o->cfg->name);
            return -EINVAL;
        }
    if (!c->mountpoint_explicit && mkdir(c->mountpoint, 0755) < 0 && errno != EEXIST) {
        refuse(r, "%s:%d: cannot create mountpoint %s for [fs %s]: %s", d->cfg->path, c->line,
               c->mountpoint, c->name, strerror(errno));
        return -errno;
    }
    rc = emm_mount_check(c->mountpoint, c->mount_over, err, sizeof(err));
    if (rc < 0) {
        refuse(r, "%s:%d: [fs %s] mountpoint %s", d->cfg->path, c->line, c->name, err);
        return rc;
    }
    return 0;
}

int
emmd_reload(struct emmd *d, FILE *out)
{
    struct report r = {.body = NULL};
    char *body = NULL;
    size_t bodylen = 0;
    struct emm_config *nc = NULL;
    struct entries o = {0}, n = {0};
    struct emmd_fs *added[EMMD_MAX_FS];
    size_t nadded = 0;
    const struct emm_swap_config *swap_add[SWP_DP_MAX_AREAS * 2];
    size_t nswap_add = 0;
    int tunables = 0, rc;
    char err[1024];

    pthread_mutex_lock(&d->reload_lock);
    emmd_notify_reloading();
    r.body = open_memstream(&body, &bodylen);
    rc = emm_config_load(d->cfg->path, EMM_CONFIG_CHECK_PATHS, &nc, err, sizeof(err));
    if (rc < 0) {
        refuse(&r, "%s; nothing changed", err);
        goto out;
    }
    /* what cannot change: [emmd], [default-pager], and each [fs] that stays */
    if (dump_entries(dump_global, d->cfg, &o) < 0 || dump_entries(dump_global, nc, &n) < 0) {
        refuse(&r, "out of memory; nothing changed");
        goto out;
    }
    compare(&r, nc, &o, &n, &tunables);
    for (size_t i = 0; i < nc->nfs; i++) {
        struct emmd_fs *fs = live_fs(d, nc->fs[i].name);
        if (fs == NULL)
            continue;
        struct entries fo = {0}, fn = {0};
        if (dump_entries(dump_fs, fs->cfg, &fo) == 0 && dump_entries(dump_fs, &nc->fs[i], &fn) == 0)
            compare(&r, nc, &fo, &fn, &tunables);
        free(fo.v);
        free(fn.v);
    }
    if (nc->nswaps <= SWP_DP_MAX_AREAS * 2)
        check_swaps(d, nc, &r, swap_add, &nswap_add);
    else
        refuse(&r, "%s: %zu swap areas, at most %u", nc->path, nc->nswaps, SWP_DP_MAX_AREAS);
    if (r.refused) {
        if (r.refused > 1)
            snprintf(r.reason + strlen(r.reason), sizeof(r.reason) - strlen(r.reason),
                     " (and %d more; see the log); nothing changed", r.refused - 1);
        else
            snprintf(r.reason + strlen(r.reason), sizeof(r.reason) - strlen(r.reason),
                     "; nothing changed");
        goto out;
    }
    /* new filesystems: open and check every one before anything changes */
    for (size_t i = 0; i < nc->nfs; i++) {
        if (live_fs(d, nc->fs[i].name) != NULL)
            continue;
        if (d->nfs + nadded >= EMMD_MAX_FS) {
            refuse(&r, "%s:%d: [fs %s]: emmd has served %d filesystems since it started, its "
                   "most; restart it to add more", nc->path, nc->fs[i].line, nc->fs[i].name,
                   EMMD_MAX_FS);
            break;
        }
        struct emmd_fs *fs = &d->fs[d->nfs + nadded];
        added[nadded++] = fs;
        if (prepare_fs(d, fs, &nc->fs[i], &r) < 0)
            break;
    }
    if (r.refused) {
        for (size_t i = 0; i < nadded; i++)
            emmd_fs_close(added[i]);
        snprintf(r.reason + strlen(r.reason), sizeof(r.reason) - strlen(r.reason),
                 "; nothing changed");
        goto out;
    }
    /* room to keep the configuration being replaced (new filesystems will
     * point into nc, the old ones into the old configuration) */
    struct emm_config **ret = realloc(d->retired, (d->nretired + 1) * sizeof(*ret));
    if (ret == NULL) {
        for (size_t i = 0; i < nadded; i++)
            emmd_fs_close(added[i]);
        refuse(&r, "out of memory; nothing changed");
        goto out;
    }
    d->retired = ret;
    /* swap areas first: each is opened and checked as it is added, and the
     * first that fails ends the reload (the ones before it are in use) */
    for (size_t i = 0; i < nswap_add; i++) {
        const struct emm_swap_config *sw = swap_add[i];
        struct swp_dp_area_config ac = {
            .path = sw->path, .size = sw->size, .priority = sw->priority, .line = sw->line};
        rc = swp_dp_add_area(d->dpager, &ac, nc->path, err, sizeof(err));
        if (rc == -EEXIST)
            continue; /* added by an earlier reload that failed later */
        if (rc < 0) {
            refuse(&r, "%s", err);
            for (size_t k = 0; k < nadded; k++)
                emmd_fs_close(added[k]);
            r.applied = 0; /* the reason says what was */
            snprintf(r.reason + strlen(r.reason), sizeof(r.reason) - strlen(r.reason), "; %s",
                     i > 0 ? "the swap areas before it were added, nothing else changed"
                           : "nothing changed");
            goto out;
        }
        say(&r, EMM_LOG_NOTICE, "[default-pager] swap %s added (priority %d)", sw->path,
            sw->priority);
        r.applied = 1;
    }
    /* from here on, changes happen: removals first (a name may come back) */
    for (size_t i = 0; i < d->nfs; i++)
        if (!d->fs[i].removed && new_fs(nc, d->fs[i].cfg->name) == NULL)
            remove_fs(d, &d->fs[i], &r);
    for (size_t i = 0; i < nadded; i++) {
        struct emmd_fs *fs = added[i];
        rc = emmd_fs_start(fs);
        if (rc == 0) {
            emmd_fs_replay_swap(fs);
            rc = fz_mount(fs);
        }
        if (rc < 0) {
            const char *name = fs->cfg->name;
            refuse(&r, "[fs %s] could not be started: %s (see the log)", name, strerror(-rc));
            fz_unmount(fs);
            emmd_fs_close(fs);
            memset(fs, 0, sizeof(*fs));
            fs->removed = 1;
        } else {
            say(&r, EMM_LOG_NOTICE, "[fs %s] added: mounted at %s", fs->cfg->name,
                fs->cfg->mountpoint);
            r.applied = 1;
        }
        pthread_rwlock_wrlock(&d->fs_lock);
        d->nfs++; /* the slot is counted, mounted or marked removed */
        pthread_rwlock_unlock(&d->fs_lock);
    }
    /* The new configuration is in force. Filesystems that stay keep pointing
     * into the configuration they started with (kept in d->retired): their
     * sections are equal, and the FUSE threads read fs->cfg without a lock. */
    pthread_rwlock_wrlock(&d->fs_lock);
    d->retired[d->nretired++] = d->cfg;
    struct emm_config *old = d->cfg;
    d->cfg = nc;
    pthread_rwlock_unlock(&d->fs_lock);
    nc = NULL;
    r.applied = 1;
    if (old->busy_poll_us != d->cfg->busy_poll_us) {
        atomic_store(&d->busy_poll_us, d->cfg->busy_poll_us);
        say(&r, EMM_LOG_NOTICE, "busy-poll: %u -> %u us", old->busy_poll_us,
            d->cfg->busy_poll_us);
    }
    if (old->log_level != d->cfg->log_level) {
        emm_log_set_level(d->cfg->log_level);
        say(&r, EMM_LOG_NOTICE, "log-level changed");
    }
    if (strcmp(old->pageout_policy, d->cfg->pageout_policy) != 0) {
        /* every page the old policy holds moves to the new one (vm_pool.h) */
        struct vm_pool *pool = vm_kernel_pool(d->kernel);
        const char *was = vm_pool_policy_name(pool);
        rc = vm_pool_set_policy(pool, vm_policy_lookup(d->cfg->pageout_policy));
        if (rc < 0)
            refuse(&r, "%s:%d: [emmd] pageout.policy: could not switch to %s (%s); %s stays in "
                   "force", d->cfg->path, emm_config_key_line(d->cfg, "emmd", "pageout.policy"),
                   d->cfg->pageout_policy, strerror(-rc), was);
        else
            say(&r, EMM_LOG_NOTICE, "pageout.policy: %s -> %s", was, d->cfg->pageout_policy);
    }
    /* deadlines of the filesystems that stay (new ones started with theirs) */
    for (size_t i = 0; i < d->nfs; i++) {
        struct emmd_fs *fs = &d->fs[i];
        const struct emm_fs_config *c = fs->removed ? NULL : new_fs(d->cfg, fs->cfg->name);
        if (c == NULL || atomic_load(&fs->deadline_ms) == c->pager_deadline_ms)
            continue;
        uint64_t was = atomic_load(&fs->deadline_ms);
        emmd_fs_set_deadline(fs, c->pager_deadline_ms);
        say(&r, EMM_LOG_NOTICE, "[fs %s] pager.deadline: %llu -> %llu ms", c->name,
            (unsigned long long)was, (unsigned long long)c->pager_deadline_ms);
    }
    say(&r, EMM_LOG_NOTICE, "%s reloaded: %zu filesystems", d->cfg->path, emmd_live_fs(d));
out:
    if (r.refused && r.reason[0] == '\0')
        snprintf(r.reason, sizeof(r.reason), "reload refused");
    else if (r.refused && r.applied)
        snprintf(r.reason + strlen(r.reason), sizeof(r.reason) - strlen(r.reason),
                 "; everything else was applied (see the log)");
    free(o.v);
    free(n.v);
    emm_config_free(nc);
    if (r.body != NULL)
        fclose(r.body);
    if (out != NULL) {
        if (r.refused)
            fprintf(out, "%s\n", r.reason);
        else if (body != NULL)
            fputs(body, out);
    }
    free(body);
    emmd_notify_ready(d);
    pthread_mutex_unlock(&d->reload_lock);
    return r.refused ? -EINVAL : 0;
}

void
emmd_free_retired(struct emmd *d)
{
    for (size_t i = 0; i < d->nretired; i++)
        emm_config_free(d->retired[i]);
    free(d->retired);
    d->retired = NULL;
    d->nretired = 0;
}
