/*
 * config.h - emmd's configuration file: parsed with libinih into struct
 * emm_config: [emmd] (the daemon), [default-pager] (swap areas and pager
 * deadlines) and one [fs NAME] per filesystem. Syntax checks happen here
 * (unknown section or key, bad number, size or duration, duplicate names,
 * mountpoints, swap areas); the backend named by each [fs] section is
 * resolved and its namespaced keys are validated later by the backend host,
 * which reports them with the file:line kept here.
 *
 * Ownership: emm_config_load allocates everything; emm_config_free releases it.
 * Not thread-safe; the daemon loads once before starting threads.
 */
#ifndef EMM_CONFIG_H
#define EMM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* Where a filesystem's pager runs ("pager = ..."). */
enum emm_pager_mode {
    EMM_PAGER_INLINE = 0, /* threads in emmd (the default) */
    EMM_PAGER_PROCESS,    /* emm-pager, started and restarted by emmd */
    EMM_PAGER_UNIX,       /* a pager someone else started, at a Unix socket */
    EMM_PAGER_TCP,        /* a pager on another host (emm-memserver), over TCP + TLS */
};

/* One "name.key = value" line meant for a backend in an [fs] section. */
struct emm_config_kv {
    char *key;   /* full key, e.g. "memory.limit" */
    char *value;
    int line;
};

struct emm_fs_config {
    char *name;       /* from "[fs NAME]": [A-Za-z0-9_-]+ */
    int line;         /* line of the section header */
    char *backend;    /* "memory", "null", "error:memory", "/x/y.so", "none" ... (required) */
    int backend_line;
    int temporary;    /* "backend = none": no pager, pages live in the pool and swap only,
                         gone at exit; never has backend_keys; implies nswaps > 0 */
    char *mountpoint; /* absolute; mount-root/NAME unless "mountpoint" was given */
    int mountpoint_explicit;
    uint64_t readahead;  /* bytes; "readahead", default 1M */
    unsigned pager_threads; /* "pager-threads", default 2 */
    uint64_t pager_deadline_ms; /* "pager.deadline" if given, else [default-pager] deadline */
    enum emm_pager_mode pager_mode; /* "pager", default inline */
    char *pager_socket; /* pager = unix:PATH: the path */
    char *pager_user;   /* "pager.user" (process only): emm-pager drops to this user */
    char *pager_addr;   /* pager = tcp:HOST:PORT: "HOST:PORT" */
    int pager_tls;      /* "pager.tls", default on; off: plain text, loopback peers only */
    char *pager_tls_psk_file; /* "pager.tls-psk-file": IDENTITY:HEXKEY lines */
    char *pager_tls_ca, *pager_tls_cert, *pager_tls_key; /* "pager.tls-ca/-cert/-key" */
    unsigned pager_uid; /* its uid */
    int mount_over;   /* "mount-over = yes": mount even on a live mount point (hiding
                         what is mounted there); default no: refused */
    /* The root directory's owner and mode, applied at every start: "root-uid"
     * and "root-gid" (a number or a name), "root-mode" (octal, at most 07777).
     * -1: not given (a new root gets emmd's uid and gid and 0755; an existing
     * one keeps what it has). */
    long long root_uid, root_gid;
    int root_mode;
    struct emm_config_kv *backend_keys;
    size_t nbackend_keys;
    int key_line[16]; /* line of each emmd key of the section (config.c's order), 0 if absent */
};

/* One "swap = PATH [SIZE] [priority=N]" line of [default-pager]. */
struct emm_swap_config {
    char *path;    /* absolute, normalized like the other paths; unique */
    uint64_t size; /* bytes, >= 1M and a multiple of 4096; 0 if not given. With a size,
                      a missing file is created and formatted by emmd */
    int priority;  /* -1..32767, default 0; the highest is used first (like swapon) */
    int line;
};

struct emm_config {
    char *path;           /* the file, as given */
    char *state_dir;      /* "state-dir", absolute; default /var/lib/emm */
    char *mount_root;     /* "mount-root", absolute; default /run/emm */
    char *control_socket; /* "control-socket", absolute; default STATE_DIR/emmd.sock */
    char *pid_file;       /* "pid-file", absolute; default STATE_DIR/emmd.pid */
    char *plugin_dir;     /* "plugin-dir", absolute; NULL if unset (backend_host.h) */
    uint64_t resident_limit; /* "resident-limit", bytes, >= 1M; default 256M */
    unsigned fuse_threads;   /* "fuse-threads", 1..64; default 2 */
    unsigned busy_poll_us;   /* "busy-poll", microseconds spun on the FUSE fd before sleeping; 0 off; default 50 */
    int log_level;           /* "log-level" debug|info|notice|warn|error; default info */
    char *metrics_listen;    /* "metrics-listen", ADDRESS:PORT to serve GET /metrics on; NULL
                                (the default): no HTTP endpoint */
    char *pageout_policy;    /* "pageout.policy", a vm_policy_lookup() name; always set,
                                default VM_POLICY_DEFAULT (second-chance) */
    /* [default-pager] */
    struct emm_swap_config *swaps; /* "swap" lines, in file order */
    size_t nswaps;
    uint64_t pager_deadline_ms; /* "deadline", 10..3600000; default 5000 */
    unsigned dpager_threads;    /* "threads", 1..16: the default pager's I/O threads; default 2 */
    struct emm_fs_config *fs;
    size_t nfs;
    int emmd_line, dp_line;        /* section headers, 0 if absent */
    int emmd_key_line[16], dp_key_line[4]; /* line of each key (config.c's order), 0 if absent */
};

/* check_paths values for emm_config_load */
#define EMM_CONFIG_NO_PATHS 0     /* syntax only (emmctl) */
#define EMM_CONFIG_CREATE_PATHS 1 /* emmd start: check, creating what is missing */
#define EMM_CONFIG_CHECK_PATHS 2  /* emmd -n: the same checks, creating nothing */

/*
 * Parses path. Relative paths in the file are taken from the file's own
 * directory (made absolute against the working directory).
 * The control socket's path must fit a sockaddr_un. With check_paths (above),
 * paths on disk must be usable: an explicit mountpoint must be an existing
 * directory; mount-root must exist (mount-root/NAME is created if absent);
 * state-dir (created 0700 if absent) must be private, and so must the control
 * socket's and the pid file's directories (created 0755 if absent; sticky ones
 * such as /tmp pass): owned by the effective uid or root, not writable by group
 * or others (emm_dir_check_private). EMM_CONFIG_CHECK_PATHS creates nothing and
 * accepts what is missing but would be created.
 * On error returns a negative errno, *out is NULL, and err holds "FILE:LINE: what".
 */
int emm_config_load(const char *path, int check_paths, struct emm_config **out, char *err,
                    size_t errlen);
void emm_config_free(struct emm_config *cfg);

/* Prints cfg in the file's syntax with every key, defaults included (paths
 * absolute, sizes with the largest exact unit, a key that is unset as a
 * comment): loading the output gives the same configuration. 0 or -EIO. */
int emm_config_dump(const struct emm_config *cfg, FILE *f);
/* The two parts of the dump: [emmd] and [default-pager]; one [fs NAME]. */
void emm_config_dump_global(const struct emm_config *cfg, FILE *f);
void emm_config_dump_fs(const struct emm_fs_config *fs, FILE *f);

/* The line of KEY in SECTION ("emmd", "default-pager", "fs NAME"; for a
 * backend key, its line; for "swap", the first swap line), else the section's
 * header line, else 0. */
int emm_config_key_line(const struct emm_config *cfg, const char *section, const char *key);

/* Parses a metrics-listen value ("127.0.0.1:9477", "[::1]:9477") into a
 * socket address. 0 or -EINVAL. */
int emm_config_listen_addr(const char *value, struct sockaddr_storage *ss, socklen_t *len);


#endif
