/*
 * backend_host.h - the host side of the backend ABI: resolves a backend spec
 * ("memory", "error:memory", "/path/plugin.so", "plugin:NAME", or a bare
 * plug-in NAME such as "file"), stacks filters, hands each layer its namespaced
 * config keys, enforces the thread model, and wraps every call. A struct
 * emm_backend is one live layer of one filesystem.
 *
 * Locking: the strictest thread model of the stack decides. SERIAL takes
 * b->serial around every data call; PER_OBJECT and PARALLEL take nothing here
 * (PER_OBJECT is already guaranteed by the standard pager, which serializes each
 * object). Lifecycle calls are made from one thread only.
 */
#ifndef EMM_BACKEND_HOST_H
#define EMM_BACKEND_HOST_H

#include <emm/backend.h>
#include <pthread.h>
#include <stdint.h>


struct emm_backend {
    const struct emm_backend_ops *ops; /* host's zero-filled copy of the layer's ops */
    void *instance;
    struct emm_backend_host host;
    struct emm_backend *next;   /* layer below a filter, or NULL */
    const char *fs_name;
    uint32_t thread_model;      /* effective (strictest of the stack) */
    uint32_t flags;             /* effective: PERSISTENT if the bottom persists,
                                   NONBLOCKING only if every layer is */
    pthread_mutex_t serial;
    void *dl_handle;            /* dlopen handle of a plug-in, or NULL */
    char *spec;                 /* this layer's part of the spec */
};

/* One "NAME.key = value" line of a filesystem's config, for the layer NAME. */
struct emm_backend_key {
    const char *key;   /* full key, e.g. "memory.limit" */
    const char *value;
    int line;          /* in emm_backend_args.file */
};

/* What building one filesystem's stack needs (emmd fills it from its config). */
struct emm_backend_args {
    const char *spec;       /* "zstd:lmdb", "file", "plugin:NAME", a path to a .so */
    const char *fs_name;
    const char *file;       /* where spec and keys were written, for messages */
    int line;               /* the spec's line */
    const char *state_dir;  /* each layer gets STATE_DIR/fs/FS_NAME; NULL: /var/lib/emm */
    const char *plugin_dir; /* searched first for plug-ins, or NULL */
    const struct emm_backend_key *keys;
    size_t nkeys;
};

/*
 * Builds the stack: creates each layer, passes it its "NAME.key" lines (an
 * unknown backend, a key no layer owns or a value a layer refuses fails with
 * "FILE:LINE: ..." in err), then calls config_complete. Does not start it.
 */
int emm_backend_open(const struct emm_backend_args *a, struct emm_backend **out, char *err,
                     size_t errlen);
int emm_backend_start(struct emm_backend *b);   /* bottom-up; after daemonizing */
void emm_backend_close(struct emm_backend *b);  /* stop (if started) and destroy, top-down */

/* Data calls, with the thread model applied. Same contracts as the ops. */
int emm_backend_read(struct emm_backend *b, uint64_t obj, uint64_t first, uint32_t n, void *buf,
                     uint8_t *present);
int emm_backend_write(struct emm_backend *b, uint64_t obj, uint64_t first, uint32_t n,
                      const void *buf);
int emm_backend_discard(struct emm_backend *b, uint64_t obj, uint64_t first, uint64_t n);
int emm_backend_sync(struct emm_backend *b, uint64_t obj);
int emm_backend_seek(struct emm_backend *b, uint64_t obj, uint64_t from, int want_data,
                     uint64_t *found);
int emm_backend_stored_pages(struct emm_backend *b, uint64_t obj, uint64_t *count);
int emm_backend_info(struct emm_backend *b, char *buf, size_t len); /* all layers */

/*
 * The stack's namespace store: the bottom layer's meta_update/meta_scan
 * (<emm/backend.h>), or -EOPNOTSUPP when it has none. emmd's catalog keeps its
 * records there when emm_backend_has_meta is true (catalog.c).
 */
int emm_backend_has_meta(struct emm_backend *b);
int emm_backend_meta_update(struct emm_backend *b, const struct emm_meta_kv *puts, size_t nput,
                            const char *const *dels, size_t ndel);
int emm_backend_meta_scan(struct emm_backend *b, const char *after, emm_meta_scan_fn fn,
                          void *arg);

/* Built-in backends, looked up by name (NULL if unknown). */
const struct emm_backend_ops *emm_backend_builtin(const char *name);

/* The built-in ops tables (backend_memory.c, backend_null.c, backend_error.c);
 * reach them through emm_backend_builtin. "file" is a plug-in (plugins/file.c). */
extern const struct emm_backend_ops emm_backend_memory_ops;
extern const struct emm_backend_ops emm_backend_null_ops;
extern const struct emm_backend_ops emm_backend_error_ops;
extern const struct emm_backend_ops emm_backend_lmdb_ops; /* backend_lmdb.c */
extern const struct emm_backend_ops emm_backend_zstd_ops; /* backend_zstd.c */
/* The LMDB environment of a stack whose bottom layer is a started "lmdb" (for
 * emm_catalog_open_env), else NULL. Valid until the stack is stopped. */
struct MDB_env *emm_backend_lmdb_env(struct emm_backend *b);

/* The null backend's content: 64-bit word `word` (0..511) of page `page` of
 * `object` is (object * 0x9E3779B97F4A7C15) ^ (page * 512 + word). */
uint64_t emm_backend_null_word(uint64_t object, uint64_t page, unsigned word);

/*
 * Plug-in search for "plugin:NAME" and for a bare NAME that is not built in:
 * the directories, in order, are plugin_dir (emmd's plugin-dir) if set; else $EMM_PLUGIN_DIR
 * if set and not empty; else EXE_DIR/../lib/emm (EXE_DIR from /proc/self/exe,
 * so build/bin/emmd finds build/lib/emm) and then EMM_PLUGIN_INSTALL_DIR. Puts
 * the first existing DIR/NAME.so into path and returns 0; otherwise returns
 * -ENOENT and writes the directories searched, ", "-separated, into dirs.
 */
int emm_backend_find_plugin(const char *plugin_dir, const char *name, char *path,
                            size_t pathlen, char *dirs, size_t dirslen);

/* The install directory of plug-ins (CMake: ${CMAKE_INSTALL_FULL_LIBDIR}/emm). */
#ifndef EMM_PLUGIN_INSTALL_DIR
#define EMM_PLUGIN_INSTALL_DIR "/usr/local/lib/emm"
#endif

#endif
