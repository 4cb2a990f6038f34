/*
 * backend_error.c - the "error" filter (after nbdkit's error filter): fails
 * chosen operations with a chosen errno at a chosen rate, optionally only while
 * a trigger file exists, and passes everything else to the layer below. With
 * error.action = stall it fails nothing: a chosen call blocks while the trigger
 * file exists (checked every 10 ms), then goes on to the layer below.
 *
 * Keys: error.rate (0..1, default 1), error.errno (EIO, ENOSPC, ENOMEM, ESTALE;
 * default EIO), error.ops (comma list of read, write, sync, discard; default
 * "read,write"), error.file (inject only while this path exists),
 * error.action (fail or stall; default fail; stall needs error.file).
 *
 * A stall blocks the calling thread, yet the filter stays NONBLOCKING (the flag
 * is fixed before the keys are read): over a NONBLOCKING layer (error:memory)
 * the pager runs in its sender's thread, so that thread stalls; over a blocking
 * layer (error:file, error:lmdb) the pager's own workers do.
 *
 * Locking: configuration is read-only after config_complete; the random state
 * is per thread. Thread model PARALLEL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "backend_host.h"

enum { OP_READ = 1, OP_WRITE = 2, OP_SYNC = 4, OP_DISCARD = 8 };

struct errf {
    const struct emm_backend_host *host;
    double rate;
    int err;          /* positive errno */
    unsigned ops;     /* OP_* */
    const char *file; /* trigger file or NULL */
    int stall;        /* error.action = stall: block while file exists, never fail */
};

static const struct {
    const char *name;
    int value;
} errnos[] = {{"EIO", EIO}, {"ENOSPC", ENOSPC}, {"ENOMEM", ENOMEM}, {"ESTALE", ESTALE}};

static const struct {
    const char *name;
    unsigned bit;
} opnames[] = {{"read", OP_READ}, {"write", OP_WRITE}, {"sync", OP_SYNC}, {"discard", OP_DISCARD}};

static int
errf_create(const struct emm_backend_host *host, void **instance)
{
    struct errf *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->host = host;
    f->rate = 1.0;
    f->err = EIO;
    f->ops = OP_READ | OP_WRITE;
    *instance = f;
    return 0;
}

static int
parse_ops(const char *value, unsigned *out, char *err, size_t errlen)
{
    unsigned ops = 0;
    const char *s = value;

    while (*s) {
        size_t n = strcspn(s, ",");
        size_t i;
        while (n && *s == ' ')
            s++, n--;
        size_t len = n;
        while (len && s[len - 1] == ' ')
            len--;
        for (i = 0; i < sizeof(opnames) / sizeof(opnames[0]); i++)
            if (strlen(opnames[i].name) == len && strncmp(opnames[i].name, s, len) == 0)
                break;
        if (i == sizeof(opnames) / sizeof(opnames[0])) {
            snprintf(err, errlen, "unknown operation '%.*s' (read, write, sync, discard)",
                     (int)len, s);
            return -EINVAL;
        }
        ops |= opnames[i].bit;
        s += n;
        if (*s == ',')
            s++;
    }
    if (!ops) {
        snprintf(err, errlen, "no operation given (read, write, sync, discard)");
        return -EINVAL;
    }
    *out = ops;
    return 0;
}

static int
errf_config(void *instance, const char *key, const char *value, char *err, size_t errlen)
{
    struct errf *f = instance;

    if (strcmp(key, "rate") == 0) {
        char *end;
        errno = 0;
        double r = strtod(value, &end);
        if (errno || end == value || *end || !(r >= 0.0 && r <= 1.0)) {
            snprintf(err, errlen, "'%s' is not a probability between 0 and 1", value);
            return -EINVAL;
        }
        f->rate = r;
        return 0;
    }
    if (strcmp(key, "errno") == 0) {
        for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
            if (strcasecmp(errnos[i].name, value) == 0) {
                f->err = errnos[i].value;
                return 0;
            }
        }
        snprintf(err, errlen, "unsupported errno '%s' (EIO, ENOSPC, ENOMEM, ESTALE)", value);
        return -EINVAL;
    }
    if (strcmp(key, "ops") == 0)
        return parse_ops(value, &f->ops, err, errlen);
    if (strcmp(key, "action") == 0) {
        if (strcmp(value, "fail") != 0 && strcmp(value, "stall") != 0) {
            snprintf(err, errlen, "unknown action '%s' (fail, stall)", value);
            return -EINVAL;
        }
        f->stall = strcmp(value, "stall") == 0;
        return 0;
    }
    if (strcmp(key, "file") == 0) {
        if (value[0] != '/') { /* emmd changes directory when it detaches */
            snprintf(err, errlen, "'%s' is not an absolute path", value);
            return -EINVAL;
        }
        f->file = value; /* the host keeps config strings alive */
        return 0;
    }
    snprintf(err, errlen, "unknown key (error takes: rate, errno, ops, file, action)");
    return -EINVAL;
}

static int
errf_config_complete(void *instance, char *err, size_t errlen)
{
    struct errf *f = instance;

    if (f->stall && !f->file) {
        snprintf(err, errlen,
                 "error.action = stall needs error.file (calls stall while it exists)");
        return -EINVAL;
    }
    return 0;
}

static void
errf_destroy(void *instance)
{
    free(instance);
}

/* A uniform double in [0, 1) from a per-thread xorshift64*. */
static double
uniform(void)
{
    static _Thread_local uint64_t state;
    if (!state)
        state = ((uint64_t)(uintptr_t)&state ^ (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull) | 1;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 0x2545F4914F6CDD1Dull) >> 11) / (double)(1ull << 53);
}

/* 0 to pass the call on (after a stall, with error.action = stall), or the
 * negative errno to inject. */
static int
inject(struct errf *f, unsigned op)
{
    if (!(f->ops & op) || f->rate <= 0.0)
        return 0;
    if (f->rate < 1.0 && uniform() >= f->rate)
        return 0;
    if (f->file && access(f->file, F_OK) < 0)
        return 0;
    if (!f->stall)
        return -f->err;
    const struct timespec tick = {.tv_nsec = 10 * 1000 * 1000};
    while (access(f->file, F_OK) == 0)
        nanosleep(&tick, NULL);
    return 0;
}

static int
errf_read(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
          uint8_t *present)
{
    struct errf *f = instance;
    int r = inject(f, OP_READ);
    if (r)
        return r;
    return f->host->next_read_pages(f->host->next, object, first, npages, buf, present);
}

static int
errf_write(void *instance, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    struct errf *f = instance;
    int r = inject(f, OP_WRITE);
    if (r)
        return r;
    return f->host->next_write_pages(f->host->next, object, first, npages, buf);
}

static int
errf_discard(void *instance, uint64_t object, uint64_t first, uint64_t npages)
{
    struct errf *f = instance;
    int r = inject(f, OP_DISCARD);
    if (r)
        return r;
    return f->host->next_discard(f->host->next, object, first, npages);
}

static int
errf_sync(void *instance, uint64_t object)
{
    struct errf *f = instance;
    int r = inject(f, OP_SYNC);
    if (r)
        return r;
    return f->host->next_sync(f->host->next, object);
}

static int
errf_seek(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found)
{
    struct errf *f = instance;
    return f->host->next_seek(f->host->next, object, from, want_data, found);
}

static int
errf_stored_pages(void *instance, uint64_t object, uint64_t *count)
{
    struct errf *f = instance;
    return f->host->next_stored_pages(f->host->next, object, count);
}

static int
errf_info(void *instance, char *buf, size_t len)
{
    struct errf *f = instance;
    const char *name = "?";
    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
        if (errnos[i].value == f->err)
            name = errnos[i].name;
    int w = snprintf(buf, len, "rate:%g\nerrno:%s\nops:%s%s%s%s\nfile:%s\naction:%s\n", f->rate,
                     name, f->ops & OP_READ ? "read " : "", f->ops & OP_WRITE ? "write " : "",
                     f->ops & OP_SYNC ? "sync " : "", f->ops & OP_DISCARD ? "discard" : "",
                     f->file ? f->file : "", f->stall ? "stall" : "fail");
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

const struct emm_backend_ops emm_backend_error_ops = {
    .struct_size = sizeof(struct emm_backend_ops),
    .api_version = EMM_BACKEND_API_VERSION,
    .thread_model = EMM_THREAD_PARALLEL,
    .name = "error",
    .flags = EMM_BACKEND_NONBLOCKING | EMM_BACKEND_FILTER,
    .create = errf_create,
    .config = errf_config,
    .config_complete = errf_config_complete,
    .destroy = errf_destroy,
    .read_pages = errf_read,
    .write_pages = errf_write,
    .discard = errf_discard,
    .sync = errf_sync,
    .seek = errf_seek,
    .stored_pages = errf_stored_pages,
    .info = errf_info,
};
