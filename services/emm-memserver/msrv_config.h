/*
 * msrv_config.h - emm-memserver's configuration file (memserver.conf, INI, read
 * with libinih): one [memserver] section. Every error names FILE:LINE.
 *
 * Locking: none; loaded once before threads start.
 */
#ifndef MSRV_CONFIG_H
#define MSRV_CONFIG_H

#include <stddef.h>

struct msrv_kv {
    char *key, *value;
    int line;
};

struct msrv_config {
    char *path;
    char *listen;        /* "HOST:PORT" (required) */
    int tls;             /* "tls", default on */
    char *tls_psk_file;  /* "tls-psk-file" */
    char *tls_ca, *tls_cert, *tls_key;
    char *backend;       /* "backend", default memory */
    int backend_line;
    char *state_dir;     /* "state-dir", default /var/lib/emm-memserver */
    char *plugin_dir;    /* "plugin-dir" */
    unsigned max_hosts;  /* "max-hosts", 1..64, default 64 */
    int log_level;       /* "log-level", default info */
    struct msrv_kv *backend_keys; /* NAME.key lines, for the backend stack */
    size_t nbackend_keys;
};

/* 0, or -errno with "FILE:LINE: what" in err. */
int msrv_config_load(const char *path, struct msrv_config **out, char *err, size_t errlen);
void msrv_config_free(struct msrv_config *c);

#endif
