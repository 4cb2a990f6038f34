/*
 * config.c - reads memserver.conf (see msrv_config.h): one [memserver] section of
 * server keys, plus NAME.key lines handed to the backend stack. Relative
 * paths are taken from the file's directory. The first error wins and names
 * FILE:LINE.
 *
 * Locking: none (one thread, before the server starts).
 */
#include "msrv_config.h"

#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stream_tcp.h"

struct loader {
    struct msrv_config *c;
    char *err;
    size_t errlen;
    int failed;
    int in_section, seen_section;
    char dir[PATH_MAX];
    int lines[16];
    int line; /* of the line libinih parses now (read_line counts) */
    FILE *f;
};

static const char *const keys[] = {"listen",  "tls",       "tls-psk-file", "tls-ca",
                                   "tls-cert", "tls-key",  "backend",      "state-dir",
                                   "plugin-dir", "max-hosts", "log-level"};
enum { K_LISTEN, K_TLS, K_PSK, K_CA, K_CERT, K_KEY, K_BACKEND, K_STATE, K_PLUGIN, K_MAXH,
       K_LEVEL, K_N };

static int
fail(struct loader *ld, int line, const char *fmt, ...)
{
    if (ld->failed)
        return 0;
    ld->failed = 1;
    int n = line > 0 ? snprintf(ld->err, ld->errlen, "%s:%d: ", ld->c->path, line)
                     : snprintf(ld->err, ld->errlen, "%s: ", ld->c->path);
    if (n < 0 || (size_t)n >= ld->errlen)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return 0;
}

static int
set_str(const char *value, char **dst)
{
    free(*dst);
    *dst = strdup(value);
    return *dst != NULL;
}

static int
set_path(struct loader *ld, int line, const char *key, const char *value, char **dst)
{
    if (*value == '\0')
        return fail(ld, line, "empty value for %s", key);
    char buf[PATH_MAX];
    if (value[0] == '/')
        snprintf(buf, sizeof(buf), "%s", value);
    else if ((size_t)snprintf(buf, sizeof(buf), "%s/%s", ld->dir, value) >= sizeof(buf))
        return fail(ld, line, "path too long for %s", key);
    return set_str(buf, dst);
}

/* libinih's reader: counts lines and takes section headers itself (libinih
 * then sees only keys), so every message has its line. */
static char *
read_line(char *buf, int size, void *user)
{
    struct loader *ld = user;
    if (ld->failed || fgets(buf, size, ld->f) == NULL)
        return NULL;
    ld->line++;
    char *p = buf;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '[')
        return buf;
    char *end = strchr(p, ']');
    if (end == NULL) {
        fail(ld, ld->line, "section header without ']'");
        return NULL;
    }
    *end = '\0';
    if (strcmp(p + 1, "memserver") != 0) {
        fail(ld, ld->line, "unknown section [%s] (want [memserver])", p + 1);
        return NULL;
    }
    if (ld->seen_section) {
        fail(ld, ld->line, "duplicate section [memserver]");
        return NULL;
    }
    ld->seen_section = ld->in_section = 1;
    buf[0] = '\0';
    return buf;
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
    struct loader *ld = user;
    struct msrv_config *c = ld->c;
    int line = ld->line;
    (void)section;
    if (ld->failed)
        return 0;
    if (!ld->in_section)
        return fail(ld, line, "key '%s' outside [memserver]", name);
    if (strchr(name, '.') != NULL) { /* a backend's key: NAME.key */
        struct msrv_kv *kv = realloc(c->backend_keys, (c->nbackend_keys + 1) * sizeof(*kv));
        if (kv == NULL)
            return fail(ld, line, "out of memory");
        c->backend_keys = kv;
        kv = &c->backend_keys[c->nbackend_keys];
        kv->key = strdup(name);
        kv->value = strdup(value);
        kv->line = line;
        c->nbackend_keys++;
        return kv->key && kv->value ? 1 : fail(ld, line, "out of memory");
    }
    int k = -1;
    for (int i = 0; i < K_N; i++)
        if (strcmp(name, keys[i]) == 0)
            k = i;
    if (k < 0)
        return fail(ld, line, "unknown key '%s' in [memserver]", name);
    if (ld->lines[k])
        return fail(ld, line, "duplicate key '%s' (first on line %d)", name, ld->lines[k]);
    ld->lines[k] = line;
    switch (k) {
    case K_LISTEN: {
        char host[256], port[8];
        const char *why = NULL;
        if (emm_tcp_parse(value, host, sizeof(host), port, sizeof(port), &why) < 0)
            return fail(ld, line, "bad value '%s' for listen: %s", value, why);
        return set_str(value, &c->listen);
    }
    case K_TLS:
        if (!strcmp(value, "on") || !strcmp(value, "yes"))
            c->tls = 1;
        else if (!strcmp(value, "off") || !strcmp(value, "no"))
            c->tls = 0;
        else
            return fail(ld, line, "bad value '%s' for tls (want on or off)", value);
        return 1;
    case K_PSK: return set_path(ld, line, name, value, &c->tls_psk_file);
    case K_CA: return set_path(ld, line, name, value, &c->tls_ca);
    case K_CERT: return set_path(ld, line, name, value, &c->tls_cert);
    case K_KEY: return set_path(ld, line, name, value, &c->tls_key);
    case K_BACKEND:
        if (*value == '\0' || strcmp(value, "none") == 0)
            return fail(ld, line, "bad value '%s' for backend (want memory, lmdb, zstd:lmdb, "
                                  "a plug-in ...)", value);
        c->backend_line = line;
        return set_str(value, &c->backend);
    case K_STATE: return set_path(ld, line, name, value, &c->state_dir);
    case K_PLUGIN: return set_path(ld, line, name, value, &c->plugin_dir);
    case K_MAXH: {
        char *end;
        unsigned long v = strtoul(value, &end, 10);
        if (*value == '\0' || *end != '\0' || v < 1 || v > 64)
            return fail(ld, line, "bad value '%s' for max-hosts (want 1..64)", value);
        c->max_hosts = (unsigned)v;
        return 1;
    }
    case K_LEVEL: {
        static const char *const names[] = {"debug", "info", "notice", "warn", "error"};
        for (int i = 0; i < 5; i++)
            if (strcmp(value, names[i]) == 0) {
                c->log_level = EMM_LOG_DEBUG + i;
                return 1;
            }
        return fail(ld, line, "bad value '%s' for log-level (want debug, info, notice, warn "
                              "or error)", value);
    }
    }
    return 1;
}

int
msrv_config_load(const char *path, struct msrv_config **out, char *err, size_t errlen)
{
    struct msrv_config *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->path = strdup(path);
    c->tls = 1;
    c->max_hosts = 64;
    c->log_level = EMM_LOG_INFO;
    struct loader ld = {.c = c, .err = err, .errlen = errlen};
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    char *rp = realpath(dirname(tmp), NULL);
    snprintf(ld.dir, sizeof(ld.dir), "%s", rp ? rp : ".");
    free(rp);
    ld.f = fopen(path, "re");
    if (ld.f == NULL) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        msrv_config_free(c);
        return rc;
    }
    int rc = ini_parse_stream(read_line, &ld, on_key, &ld);
    fclose(ld.f);
    if (rc > 0 && !ld.failed)
        fail(&ld, rc, "syntax error");
    if (!ld.failed && !ld.seen_section)
        fail(&ld, 0, "no [memserver] section");
    if (!ld.failed && c->listen == NULL)
        fail(&ld, 0, "listen = HOST:PORT is missing in [memserver]");
    int x509 = c->tls_ca || c->tls_cert || c->tls_key;
    if (!ld.failed && c->tls && c->tls_psk_file && x509)
        fail(&ld, ld.lines[K_PSK], "give tls-psk-file or tls-ca/-cert/-key, not both");
    if (!ld.failed && c->tls && !c->tls_psk_file && !(c->tls_ca && c->tls_cert && c->tls_key))
        fail(&ld, ld.lines[K_LISTEN],
             "TLS needs credentials: tls-psk-file, or tls-ca, tls-cert and tls-key "
             "(or tls = off, for loopback tests only)");
    if (!ld.failed && !c->backend)
        c->backend = strdup("memory");
    if (!ld.failed && !c->state_dir)
        c->state_dir = strdup("/var/lib/emm-memserver");
    if (ld.failed) {
        msrv_config_free(c);
        return -EINVAL;
    }
    *out = c;
    return 0;
}

void
msrv_config_free(struct msrv_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nbackend_keys; i++) {
        free(c->backend_keys[i].key);
        free(c->backend_keys[i].value);
    }
    free(c->backend_keys);
    free(c->path);
    free(c->listen);
    free(c->tls_psk_file);
    free(c->tls_ca);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->backend);
    free(c->state_dir);
    free(c->plugin_dir);
    free(c);
}
