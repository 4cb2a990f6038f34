/*
 * backend_host.c - the host side of the backend ABI: parses a backend spec
 * (top layer first, ':'-separated), loads built-ins and plug-ins (dlopen; a
 * plug-in named by NAME is searched for as NAME.so), gives each layer its host
 * table (log, parse_size, state dir, next_* for filters), routes "NAME.key"
 * lines, computes the effective thread model and flags, and wraps every data
 * call.
 *
 * Locking: lifecycle calls (open, start, close) come from one thread. Data
 * wrappers take the top layer's b->serial only when the effective thread model
 * is SERIAL; next_* calls between layers take nothing (the model was applied
 * once, at the top). Everything here is read-only after open.
 */
#include "backend_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "units.h"

/* Host-private state of one layer (host.host_private). */
struct layer_priv {
    struct emm_backend *b;
    char **strings; /* interned config keys and values: live as long as the layer */
    size_t nstrings;
    int created;
    int started;
};

#define OPS_REQUIRED_SIZE (offsetof(struct emm_backend_ops, write_pages) + sizeof(void *))

const struct emm_backend_ops *
emm_backend_builtin(const char *name)
{
    static const struct emm_backend_ops *const all[] = {
        &emm_backend_memory_ops, &emm_backend_null_ops, &emm_backend_error_ops,
        &emm_backend_lmdb_ops,
        &emm_backend_zstd_ops,
    };
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

/* ---- host services ---------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void
host_log(const struct emm_backend_host *host, int level, const char *fmt, ...)
{
    const struct layer_priv *p = host->host_private;
    char line[900];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emm_log(level, "fs %s: %s: %s", p->b->fs_name, p->b->ops->name, line);
}

static struct emm_backend *
next_layer(struct emm_backend_next *next)
{
    return (struct emm_backend *)next;
}

static int
layer_read(struct emm_backend *b, uint64_t obj, uint64_t first, uint32_t n, void *buf,
           uint8_t *present)
{
    return b->ops->read_pages(b->instance, obj, first, n, buf, present);
}

static int
layer_write(struct emm_backend *b, uint64_t obj, uint64_t first, uint32_t n, const void *buf)
{
    return b->ops->write_pages(b->instance, obj, first, n, buf);
}

static int
layer_discard(struct emm_backend *b, uint64_t obj, uint64_t first, uint64_t n)
{
    return b->ops->discard ? b->ops->discard(b->instance, obj, first, n) : -EOPNOTSUPP;
}

static int
layer_sync(struct emm_backend *b, uint64_t obj)
{
    return b->ops->sync ? b->ops->sync(b->instance, obj) : 0;
}

static int
layer_seek(struct emm_backend *b, uint64_t obj, uint64_t from, int want_data, uint64_t *found)
{
    return b->ops->seek ? b->ops->seek(b->instance, obj, from, want_data, found) : -EOPNOTSUPP;
}

static int
layer_stored(struct emm_backend *b, uint64_t obj, uint64_t *count)
{
    return b->ops->stored_pages ? b->ops->stored_pages(b->instance, obj, count) : -EOPNOTSUPP;
}

static int
next_read(struct emm_backend_next *n, uint64_t obj, uint64_t first, uint32_t np, void *buf,
          uint8_t *present)
{
    return layer_read(next_layer(n), obj, first, np, buf, present);
}

static int
next_write(struct emm_backend_next *n, uint64_t obj, uint64_t first, uint32_t np,
           const void *buf)
{
    return layer_write(next_layer(n), obj, first, np, buf);
}

static int
next_discard(struct emm_backend_next *n, uint64_t obj, uint64_t first, uint64_t np)
{
    return layer_discard(next_layer(n), obj, first, np);
}

static int
next_sync(struct emm_backend_next *n, uint64_t obj)
{
    return layer_sync(next_layer(n), obj);
}

static int
next_seek(struct emm_backend_next *n, uint64_t obj, uint64_t from, int want_data,
          uint64_t *found)
{
    return layer_seek(next_layer(n), obj, from, want_data, found);
}

static int
next_stored(struct emm_backend_next *n, uint64_t obj, uint64_t *count)
{
    return layer_stored(next_layer(n), obj, count);
}

/* ---- loading ------------------------------------------------------------ */

/* Validates a plug-in's ops and makes the host's zero-filled copy. */
static int
copy_ops(const struct emm_backend_ops *src, const char *what, struct emm_backend_ops **out,
         char *why, size_t whylen)
{
    struct emm_backend_ops *ops;

    if (!src) {
        snprintf(why, whylen, "%s: emm_backend_init returned NULL", what);
        return -EINVAL;
    }
    if (src->api_version != EMM_BACKEND_API_VERSION) {
        snprintf(why, whylen, "%s: api_version %" PRIu32 " is not supported (this emm speaks %d)",
                 what, src->api_version, EMM_BACKEND_API_VERSION);
        return -EPROTO;
    }
    if (src->struct_size < OPS_REQUIRED_SIZE) {
        snprintf(why, whylen, "%s: struct_size %zu is too small (at least %zu)", what,
                 src->struct_size, OPS_REQUIRED_SIZE);
        return -EPROTO;
    }
    if (src->thread_model > EMM_THREAD_PARALLEL) {
        snprintf(why, whylen, "%s: unknown thread model %" PRIu32, what, src->thread_model);
        return -EPROTO;
    }
    ops = calloc(1, sizeof(*ops));
    if (!ops)
        return -ENOMEM;
    memcpy(ops, src, src->struct_size < sizeof(*ops) ? src->struct_size : sizeof(*ops));
    if (!ops->name || !ops->name[0] || !ops->create || !ops->read_pages || !ops->write_pages) {
        snprintf(why, whylen, "%s: name, create, read_pages and write_pages are required", what);
        free(ops);
        return -EPROTO;
    }
    *out = ops;
    return 0;
}

static int
load_plugin(const char *path, struct emm_backend *b, struct emm_backend_ops **ops, char *why,
            size_t whylen)
{
    emm_backend_init_fn init;
    void *h;
    int r;

    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, whylen, "cannot load plug-in: %s", e ? e : path);
        return -ENOENT;
    }
    dlerror();
    *(void **)&init = dlsym(h, EMM_BACKEND_INIT_SYMBOL);
    if (!init) {
        snprintf(why, whylen, "%s: no symbol %s", path, EMM_BACKEND_INIT_SYMBOL);
        dlclose(h);
        return -ENOENT;
    }
    r = copy_ops(init(), path, ops, why, whylen);
    if (r < 0) {
        dlclose(h);
        return r;
    }
    b->dl_handle = h;
    return 0;
}

/*
 * The plug-in directories, in search order (see emm_backend_find_plugin): an
 * explicit setting replaces the defaults. exe_rel is the caller's buffer for
 * EXE_DIR/../lib/emm, computed lexically from /proc/self/exe (which the kernel
 * gives with symlinks resolved).
 */
static size_t
plugin_dirs(const char *plugin_dir, char exe_rel[PATH_MAX], const char *dirs[2])
{
    const char *env = getenv("EMM_PLUGIN_DIR");
    size_t n = 0;
    ssize_t len;

    if (plugin_dir && plugin_dir[0]) {
        dirs[0] = plugin_dir;
        return 1;
    }
    if (env && env[0]) {
        dirs[0] = env;
        return 1;
    }
    len = readlink("/proc/self/exe", exe_rel, PATH_MAX - 1);
    if (len > 0) {
        char *s;
        exe_rel[len] = '\0';
        s = strrchr(exe_rel, '/'); /* drop the executable's name */
        if (s) {
            *s = '\0';
            s = strrchr(exe_rel, '/'); /* and its directory */
        }
        if (s && (size_t)(s - exe_rel) + sizeof("/lib/emm") <= PATH_MAX) {
            memcpy(s, "/lib/emm", sizeof("/lib/emm"));
            dirs[n++] = exe_rel;
        }
    }
    if (n == 0 || strcmp(dirs[0], EMM_PLUGIN_INSTALL_DIR) != 0)
        dirs[n++] = EMM_PLUGIN_INSTALL_DIR;
    return n;
}

int
emm_backend_find_plugin(const char *plugin_dir, const char *name, char *path,
                        size_t pathlen, char *dirs, size_t dirslen)
{
    char exe_rel[PATH_MAX];
    const char *dir[2];
    size_t n = plugin_dirs(plugin_dir, exe_rel, dir), pos = 0;

    if (dirs && dirslen)
        dirs[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(path, pathlen, "%s/%s.so", dir[i], name);
        /* Present, or there but unreadable: dlopen will say why, naming it. */
        if (w >= 0 && (size_t)w < pathlen &&
            (access(path, F_OK) == 0 || (errno != ENOENT && errno != ENOTDIR)))
            return 0;
        if (dirs && pos + 1 < dirslen) {
            w = snprintf(dirs + pos, dirslen - pos, "%s%s", i ? ", " : "", dir[i]);
            if (w > 0)
                pos += (size_t)w < dirslen - pos ? (size_t)w : dirslen - pos - 1;
        }
    }
    return -ENOENT;
}

/* A plug-in NAME becomes a file name: no '/', no leading '.', not empty. */
static int
plugin_name_ok(const char *name)
{
    return name[0] != '\0' && name[0] != '.' && !strchr(name, '/');
}

/*
 * Resolves one spec element into b->ops (and b->dl_handle): a built-in name;
 * a path (contains '/'); "plugin:NAME" or a bare NAME that is not built in,
 * as NAME.so in the plug-in directories.
 */
static int
resolve(const char *plugin_dir, const char *elem, struct emm_backend *b, char *why,
        size_t whylen)
{
    struct emm_backend_ops *ops = NULL;
    const char *name = NULL;
    int r;

    if (strncmp(elem, "plugin:", 7) == 0) {
        name = elem + 7;
    } else if (strchr(elem, '/')) {
        r = load_plugin(elem, b, &ops, why, whylen);
    } else {
        const struct emm_backend_ops *bi = emm_backend_builtin(elem);
        if (bi)
            r = copy_ops(bi, elem, &ops, why, whylen);
        else
            name = elem;
    }
    if (name) {
        char path[PATH_MAX + 64], dirs[1024];
        if (!plugin_name_ok(name)) {
            snprintf(why, whylen, "bad plug-in name '%s'", name);
            return -EINVAL;
        }
        r = emm_backend_find_plugin(plugin_dir, name, path, sizeof(path), dirs, sizeof(dirs));
        if (r < 0) {
            snprintf(why, whylen, "unknown backend '%s' (%sno %s.so in %s)", elem,
                     name == elem ? "not built in; " : "", name, dirs);
            return r;
        }
        r = load_plugin(path, b, &ops, why, whylen);
    }
    if (r < 0)
        return r;
    b->ops = ops;
    return 0;
}

/* Splits spec into elements: "plugin:NAME" stays one element. */
static int
split_spec(const char *spec, char ***out, size_t *count)
{
    char *copy = strdup(spec), *tok;
    char **v = NULL;
    size_t n = 0;

    if (!copy)
        return -ENOMEM;
    /* Empty elements ("a::b", ":a") must be reported, so walk by hand. */
    for (char *s = copy;; s = tok + 1) {
        tok = strchr(s, ':');
        if (tok)
            *tok = '\0';
        char *elem;
        if (strcmp(s, "plugin") == 0 && tok) {
            char *name = tok + 1;
            tok = strchr(name, ':');
            if (tok)
                *tok = '\0';
            if (asprintf(&elem, "plugin:%s", name) < 0)
                elem = NULL;
        } else {
            elem = strdup(s);
        }
        char **nv = elem ? realloc(v, (n + 1) * sizeof(*v)) : NULL;
        if (!nv) {
            free(elem);
            goto nomem;
        }
        v = nv;
        v[n++] = elem;
        if (!tok)
            break;
    }
    free(copy);
    *out = v;
    *count = n;
    return 0;
nomem:
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    free(copy);
    return -ENOMEM;
}

static const char *
intern(struct layer_priv *p, const char *s)
{
    char **nv = realloc(p->strings, (p->nstrings + 1) * sizeof(*nv));
    if (!nv)
        return NULL;
    p->strings = nv;
    nv[p->nstrings] = strdup(s);
    if (!nv[p->nstrings])
        return NULL;
    return nv[p->nstrings++];
}

static void
layer_free(struct emm_backend *b)
{
    struct layer_priv *p = b->host.host_private;

    if (p) {
        if (p->started && b->ops->stop)
            b->ops->stop(b->instance);
        if (p->created && b->ops->destroy)
            b->ops->destroy(b->instance);
        for (size_t i = 0; i < p->nstrings; i++)
            free(p->strings[i]);
        free(p->strings);
        free(p);
    }
    if (b->dl_handle)
        dlclose(b->dl_handle);
    free((void *)(uintptr_t)b->ops);
    free((char *)(uintptr_t)b->host.state_dir);
    free((char *)(uintptr_t)b->fs_name);
    free(b->spec);
    pthread_mutex_destroy(&b->serial);
    free(b);
}

void
emm_backend_close(struct emm_backend *b)
{
    /* Stop every layer top-down before destroying any. */
    for (struct emm_backend *l = b; l; l = l->next) {
        struct layer_priv *p = l->host.host_private;
        if (p && p->started && l->ops->stop)
            l->ops->stop(l->instance);
        if (p)
            p->started = 0;
    }
    while (b) {
        struct emm_backend *below = b->next;
        layer_free(b);
        b = below;
    }
}

static int
fail(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return r;
}

static struct emm_backend *
layer_new(const struct emm_backend_args *a, const char *elem)
{
    struct emm_backend *b = calloc(1, sizeof(*b));
    struct layer_priv *p = calloc(1, sizeof(*p));

    if (!b || !p)
        goto nomem;
    pthread_mutex_init(&b->serial, NULL);
    b->host.host_private = p;
    p->b = b;
    b->spec = strdup(elem);
    b->fs_name = strdup(a->fs_name ? a->fs_name : "");
    if (asprintf((char **)&b->host.state_dir, "%s/fs/%s",
                 a->state_dir ? a->state_dir : "/var/lib/emm", b->fs_name ? b->fs_name : "") < 0)
        b->host.state_dir = NULL;
    if (!b->spec || !b->fs_name || !b->host.state_dir) {
        layer_free(b);
        return NULL;
    }
    b->host.struct_size = sizeof(b->host);
    b->host.api_version = EMM_BACKEND_API_VERSION;
    b->host.log = host_log;
    b->host.parse_size = emm_parse_size;
    b->host.fs_name = b->fs_name;
    b->host.next_read_pages = next_read;
    b->host.next_write_pages = next_write;
    b->host.next_discard = next_discard;
    b->host.next_sync = next_sync;
    b->host.next_seek = next_seek;
    b->host.next_stored_pages = next_stored;
    return b;
nomem:
    free(b);
    free(p);
    return NULL;
}

/* Hands every "NAME.key" line to each layer whose name is NAME. */
static int
route_keys(struct emm_backend *top, const struct emm_backend_args *a, char *err, size_t errlen)
{
    const char *file = a->file ? a->file : "?";

    for (size_t i = 0; i < a->nkeys; i++) {
        const struct emm_backend_key *kv = &a->keys[i];
        const char *dot = strchr(kv->key, '.');
        int owned = 0;

        for (struct emm_backend *b = top; dot && b; b = b->next) {
            size_t nl = (size_t)(dot - kv->key);
            if (strlen(b->ops->name) != nl || strncmp(b->ops->name, kv->key, nl) != 0)
                continue;
            owned = 1;
            struct layer_priv *p = b->host.host_private;
            char why[256] = "";
            if (!b->ops->config)
                return fail(err, errlen, -EINVAL, "%s:%d: %s: backend '%s' takes no keys", file,
                            kv->line, kv->key, b->ops->name);
            const char *key = intern(p, dot + 1), *value = intern(p, kv->value ? kv->value : "");
            if (!key || !value)
                return fail(err, errlen, -ENOMEM, "out of memory");
            int r = b->ops->config(b->instance, key, value, why, sizeof(why));
            if (r < 0)
                return fail(err, errlen, r, "%s:%d: %s: %s", file, kv->line, kv->key,
                            why[0] ? why : strerror(-r));
        }
        if (!owned)
            return fail(err, errlen, -EINVAL, "%s:%d: key '%s' belongs to no backend in '%s'",
                        file, kv->line, kv->key, a->spec);
    }
    return 0;
}

int
emm_backend_open(const struct emm_backend_args *a, struct emm_backend **out, char *err,
                 size_t errlen)
{
    const char *file = a->file ? a->file : "?";
    int line = a->line;
    struct emm_backend *top = NULL, **link = &top;
    char **elems = NULL;
    size_t nelems = 0;
    int r;

    *out = NULL;
    if (!a->spec || !a->spec[0])
        return fail(err, errlen, -EINVAL, "%s:%d: no backend given", file, line);
    r = split_spec(a->spec, &elems, &nelems);
    if (r < 0)
        return fail(err, errlen, r, "out of memory");

    /* Resolve every layer first, top first, so a bad spec creates nothing. */
    for (size_t i = 0; i < nelems; i++) {
        char why[1600] = ""; /* room for the plug-in directories searched */
        struct emm_backend *b = layer_new(a, elems[i]);
        if (!b) {
            r = fail(err, errlen, -ENOMEM, "out of memory");
            goto out;
        }
        *link = b;
        link = &b->next;
        r = resolve(a->plugin_dir, elems[i], b, why, sizeof(why));
        if (r < 0) {
            fail(err, errlen, r, "%s:%d: %s", file, line, why);
            goto out;
        }
        int filter = (b->ops->flags & EMM_BACKEND_FILTER) != 0;
        if (!filter && i + 1 < nelems) {
            r = fail(err, errlen, -EINVAL, "%s:%d: '%s' is not a filter: nothing may stack under it",
                     file, line, b->ops->name);
            goto out;
        }
        if (filter && i + 1 == nelems) {
            r = fail(err, errlen, -EINVAL, "%s:%d: filter '%s' needs a backend below it", file,
                     line, b->ops->name);
            goto out;
        }
    }

    /* Effective thread model and flags. */
    uint32_t model = EMM_THREAD_PARALLEL,
             flags = EMM_BACKEND_NONBLOCKING | EMM_BACKEND_FAST_READS;
    for (struct emm_backend *b = top; b; b = b->next) {
        if (b->ops->thread_model < model)
            model = b->ops->thread_model;
        if (!(b->ops->flags & EMM_BACKEND_NONBLOCKING))
            flags &= ~EMM_BACKEND_NONBLOCKING;
        /* Reads are fast if every layer's are (a nonblocking layer's are). */
        if (!(b->ops->flags & (EMM_BACKEND_NONBLOCKING | EMM_BACKEND_FAST_READS)))
            flags &= ~EMM_BACKEND_FAST_READS;
        if (!b->next)
            flags |= b->ops->flags & EMM_BACKEND_PERSISTENT;
    }

    /* Create bottom-up, so a filter's create may already call the layer below. */
    for (size_t k = nelems; k-- > 0;) {
        struct emm_backend *b = top;
        for (size_t j = 0; j < k; j++)
            b = b->next;
        struct layer_priv *p = b->host.host_private;
        b->thread_model = model;
        b->flags = flags;
        b->host.next = (struct emm_backend_next *)b->next;
        r = b->ops->create(&b->host, &b->instance);
        if (r < 0) {
            fail(err, errlen, r, "%s:%d: %s: cannot create: %s", file, line, b->ops->name,
                 strerror(-r));
            goto out;
        }
        p->created = 1;
    }

    r = route_keys(top, a, err, errlen);
    if (r < 0)
        goto out;

    for (struct emm_backend *b = top; b; b = b->next) {
        char why[256] = "";
        if (!b->ops->config_complete)
            continue;
        r = b->ops->config_complete(b->instance, why, sizeof(why));
        if (r < 0) {
            fail(err, errlen, r, "%s:%d: %s: %s", file, line, b->ops->name,
                 why[0] ? why : strerror(-r));
            goto out;
        }
    }
    *out = top;
    top = NULL;
    r = 0;
out:
    emm_backend_close(top);
    for (size_t i = 0; i < nelems; i++)
        free(elems[i]);
    free(elems);
    return r;
}
int
emm_backend_start(struct emm_backend *b)
{
    struct emm_backend *layers[64];
    size_t n = 0;
    int r;

    if (!b)
        return -EINVAL;
    r = emm_mkdir_p(b->host.state_dir, 0700);
    if (r < 0) {
        emm_err("fs %s: cannot create state directory %s: %s", b->fs_name, b->host.state_dir,
                strerror(-r));
        return r;
    }
    for (struct emm_backend *l = b; l; l = l->next) {
        if (n == sizeof(layers) / sizeof(layers[0]))
            return -E2BIG;
        layers[n++] = l;
    }
    /* Bottom-up; on failure stop what this call started, top-down. */
    for (size_t k = n; k-- > 0;) {
        struct emm_backend *l = layers[k];
        struct layer_priv *p = l->host.host_private;
        if (p->started)
            continue;
        r = l->ops->start ? l->ops->start(l->instance) : 0;
        if (r < 0) {
            emm_err("fs %s: %s: start failed: %s", l->fs_name, l->ops->name, strerror(-r));
            for (size_t j = k + 1; j < n; j++) {
                struct layer_priv *sp = layers[j]->host.host_private;
                if (sp->started && layers[j]->ops->stop)
                    layers[j]->ops->stop(layers[j]->instance);
                sp->started = 0;
            }
            return r;
        }
        p->started = 1;
    }
    return 0;
}

/* ---- data path ---------------------------------------------------------- */

#define SERIAL_LOCK(b)                                                                         \
    int serial_ = (b)->thread_model == EMM_THREAD_SERIAL;                                      \
    if (serial_)                                                                               \
    pthread_mutex_lock(&(b)->serial)
#define SERIAL_UNLOCK(b)                                                                       \
    if (serial_)                                                                               \
    pthread_mutex_unlock(&(b)->serial)

static int
range_ok(uint64_t first, uint64_t n)
{
    return first + n >= first;
}

int
emm_backend_read(struct emm_backend *b, uint64_t obj, uint64_t first, uint32_t n, void *buf,
                 uint8_t *present)
{
    if (n == 0)
        return 0;
    if (!range_ok(first, n))
        return -EINVAL;
    SERIAL_LOCK(b);
    int r = layer_read(b, obj, first, n, buf, present);
    SERIAL_UNLOCK(b);
    return r;
}

int
emm_backend_write(struct emm_backend *b, uint64_t obj, uint64_t first, uint32_t n,
                  const void *buf)
{
    if (n == 0)
        return 0;
    if (!range_ok(first, n))
        return -EINVAL;
    SERIAL_LOCK(b);
    int r = layer_write(b, obj, first, n, buf);
    SERIAL_UNLOCK(b);
    return r;
}

int
emm_backend_discard(struct emm_backend *b, uint64_t obj, uint64_t first, uint64_t n)
{
    if (n == 0)
        return 0;
    if (n != UINT64_MAX && !range_ok(first, n))
        return -EINVAL;
    SERIAL_LOCK(b);
    int r = layer_discard(b, obj, first, n);
    SERIAL_UNLOCK(b);
    return r;
}

int
emm_backend_sync(struct emm_backend *b, uint64_t obj)
{
    SERIAL_LOCK(b);
    int r = layer_sync(b, obj);
    SERIAL_UNLOCK(b);
    return r;
}

int
emm_backend_seek(struct emm_backend *b, uint64_t obj, uint64_t from, int want_data,
                 uint64_t *found)
{
    SERIAL_LOCK(b);
    int r = layer_seek(b, obj, from, want_data, found);
    SERIAL_UNLOCK(b);
    return r;
}

int
emm_backend_stored_pages(struct emm_backend *b, uint64_t obj, uint64_t *count)
{
    SERIAL_LOCK(b);
    int r = layer_stored(b, obj, count);
    SERIAL_UNLOCK(b);
    return r;
}

/* Appends printf output to buf at *pos; -ENOSPC once it no longer fits. */
__attribute__((format(printf, 4, 5))) static int
append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *pos) {
        buf[*pos] = '\0';
        return -ENOSPC;
    }
    *pos += (size_t)n;
    return 0;
}

int
emm_backend_info(struct emm_backend *b, char *buf, size_t len)
{
    static const char *const models[] = {"serial", "per_object", "parallel"};
    size_t pos = 0;
    char layer[2048];
    int r;

    if (!len)
        return -ENOSPC;
    buf[0] = '\0';
    r = append(buf, len, &pos, "backend_thread_model:%s\nbackend_flags:%s%s\n",
               models[b->thread_model <= EMM_THREAD_PARALLEL ? b->thread_model : 0],
               b->flags & EMM_BACKEND_PERSISTENT ? "persistent " : "",
               b->flags & EMM_BACKEND_NONBLOCKING ? "nonblocking" : "");
    for (struct emm_backend *l = b; l && r == 0; l = l->next) {
        r = append(buf, len, &pos, "layer:%s\n", l->ops->name);
        if (r < 0 || !l->ops->info)
            continue;
        layer[0] = '\0';
        SERIAL_LOCK(b);
        int ir = l->ops->info(l->instance, layer, sizeof(layer));
        SERIAL_UNLOCK(b);
        if (ir < 0)
            continue;
        /* Prefix each of the layer's lines with "NAME.". */
        for (char *s = layer, *nl; *s && r == 0; s = nl + 1) {
            nl = strchr(s, '\n');
            if (!nl)
                nl = s + strlen(s) - 1;
            r = append(buf, len, &pos, "%s.%.*s\n", l->ops->name, (int)(nl - s + (*nl != '\n')),
                       s);
        }
    }
    return r;
}

/* ---- the namespace store (meta_update / meta_scan) ------------------------ */

/* The bottom layer, if it has both meta ops (filters pass them through). */
static struct emm_backend *
meta_layer(struct emm_backend *b)
{
    while (b && b->next)
        b = b->next;
    return b && b->ops->meta_update && b->ops->meta_scan ? b : NULL;
}

int
emm_backend_has_meta(struct emm_backend *b)
{
    return meta_layer(b) != NULL;
}

int
emm_backend_meta_update(struct emm_backend *b, const struct emm_meta_kv *puts, size_t nput,
                        const char *const *dels, size_t ndel)
{
    struct emm_backend *l = meta_layer(b);
    if (!l)
        return -EOPNOTSUPP;
    for (size_t i = 0; i < nput; i++)
        if (strlen(puts[i].key) > EMM_META_KEY_MAX || puts[i].len > EMM_META_VALUE_MAX)
            return -EINVAL;
    SERIAL_LOCK(b);
    int r = l->ops->meta_update(l->instance, puts, nput, dels, ndel);
    SERIAL_UNLOCK(b);
    return r;
}

int
emm_backend_meta_scan(struct emm_backend *b, const char *after, emm_meta_scan_fn fn, void *arg)
{
    struct emm_backend *l = meta_layer(b);
    if (!l)
        return -EOPNOTSUPP;
    /* No serial lock: fn may call meta_update (the op's contract). */
    return l->ops->meta_scan(l->instance, after ? after : "", fn, arg);
}
