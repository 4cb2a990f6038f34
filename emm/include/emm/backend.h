/*
 * emm/backend.h - the public storage-backend ABI.
 *
 * A backend stores pages by (object id, page index) and knows nothing of Mach:
 * emm's standard pager turns any backend into a full external memory manager.
 * A plug-in includes this header alone, fills a static struct emm_backend_ops and
 * ends with EMM_BACKEND_REGISTER(ops), which defines the only exported symbol,
 * emm_backend_init. Host services arrive in a sized table, so a plug-in links
 * against nothing of emm.
 *
 * ABI rules: fields are only appended; the host copies min(struct_size, its own)
 * and zero-fills the rest; an unknown api_version is refused. Every callback
 * returns 0 or a negative errno. Strings handed to a plug-in live as long as it.
 */
#ifndef EMM_BACKEND_H
#define EMM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMM_BACKEND_API_VERSION 1
#define EMM_PAGE_SIZE 4096u

/* How much concurrency the backend tolerates; the host applies the strictest. */
enum emm_thread_model {
    EMM_THREAD_SERIAL = 0,     /* one call at a time, whole backend */
    EMM_THREAD_PER_OBJECT = 1, /* calls on different objects may overlap */
    EMM_THREAD_PARALLEL = 2,   /* any calls may overlap */
};

/* Capability flags (emm_backend_ops.flags). */
#define EMM_BACKEND_PERSISTENT  (1u << 0) /* pages survive a restart: keep a catalog */
#define EMM_BACKEND_NONBLOCKING (1u << 1) /* calls never sleep on I/O: may run inline */
#define EMM_BACKEND_FILTER      (1u << 2) /* stacks over a layer: reach it via host->next_* */
#define EMM_BACKEND_FAST_READS  (1u << 3) /* read_pages never waits on I/O (e.g. a mapped
                                              store): the pager may run reads in the fault
                                              path even when writes block (since API 1) */

enum emm_log_level { EMM_LOG_DEBUG = 0, EMM_LOG_INFO, EMM_LOG_NOTICE, EMM_LOG_WARN, EMM_LOG_ERR };

/* The layer below a filter, opaque; only the host's next_* functions use it. */
struct emm_backend_next;

/* Services the host lends to a backend (since API 1). */
struct emm_backend_host {
    size_t struct_size;
    uint32_t api_version;
    /* printf-like log line, prefixed by the host with the filesystem name. */
    void (*log)(const struct emm_backend_host *host, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* Parses "4096", "64K", "1M", "2G", "1T" (powers of 1024); 0 or -EINVAL. */
    int (*parse_size)(const char *text, uint64_t *out);
    const char *fs_name;   /* the filesystem this instance serves */
    const char *state_dir; /* a private directory the backend may use */
    void *host_private;

    /*
     * Filters (ops.flags has EMM_BACKEND_FILTER): the layer below, as in nbdkit's
     * next_ops. `next` is set before create and stays valid until destroy; it is
     * NULL for a plain backend. Each next_* call has the contract of the op of
     * the same name on the layer below and may be made from any data callback
     * (no extra lock is taken: the host applies the stack's strictest thread
     * model once, at the top). Optional ops the layer below lacks give
     * -EOPNOTSUPP, except sync, which then succeeds. A filter built against an
     * older header never sees these fields; one that needs them checks
     * host->struct_size >= offsetof(struct emm_backend_host, next_stored_pages)
     * + sizeof(void *).
     */
    struct emm_backend_next *next;
    int (*next_read_pages)(struct emm_backend_next *next, uint64_t object, uint64_t first,
                           uint32_t npages, void *buf, uint8_t *present);
    int (*next_write_pages)(struct emm_backend_next *next, uint64_t object, uint64_t first,
                            uint32_t npages, const void *buf);
    int (*next_discard)(struct emm_backend_next *next, uint64_t object, uint64_t first,
                        uint64_t npages);
    int (*next_sync)(struct emm_backend_next *next, uint64_t object);
    int (*next_seek)(struct emm_backend_next *next, uint64_t object, uint64_t from,
                     int want_data, uint64_t *found);
    int (*next_stored_pages)(struct emm_backend_next *next, uint64_t object, uint64_t *count);
};

/*
 * The namespace store (optional ops meta_update and meta_scan, appended in API
 * 1): small named records kept in the store beside the pages, so that the
 * filesystem's names, sizes and attributes live where its pages live (the
 * rados plug-in keeps them in the omap of one object per filesystem). emmd's
 * catalog uses them when the bottom layer of a stack provides both; filters
 * pass them through untouched. Keys are NUL-terminated, at most
 * EMM_META_KEY_MAX bytes, compared as bytes; values at most EMM_META_VALUE_MAX.
 */
#define EMM_META_KEY_MAX 255
#define EMM_META_VALUE_MAX 65536
struct emm_meta_kv {
    const char *key;
    const void *value;
    size_t len;
};
/* A meta_scan callback: non-zero stops the scan, which returns that value. */
typedef int (*emm_meta_scan_fn)(void *arg, const char *key, const void *value, size_t len);

struct emm_backend_ops {
    /* Stamped by EMM_BACKEND_REGISTER; never set these by hand. */
    size_t struct_size;
    uint32_t api_version;
    uint32_t thread_model; /* enum emm_thread_model */

    const char *name; /* e.g. "memory"; its config keys are "NAME.key" */
    uint32_t flags;   /* EMM_BACKEND_* */

    /* Lifecycle (one instance per filesystem):
     *   create -> config* -> config_complete -> start -> ...data... -> stop -> destroy
     * `emmd -n` stops after config_complete. start runs after daemonizing. */
    int (*create)(const struct emm_backend_host *host, void **instance);
    /* One call per "NAME.key = value" line, key without "NAME.". On error return
     * -EINVAL and write a reason (no file:line: the host adds it) into err. */
    int (*config)(void *instance, const char *key, const char *value, char *err, size_t errlen);
    int (*config_complete)(void *instance, char *err, size_t errlen);
    int (*start)(void *instance);
    void (*stop)(void *instance);
    void (*destroy)(void *instance);

    /* Data path. Pages are EMM_PAGE_SIZE bytes; buf holds npages of them.
     * read_pages fills present[i] = 1 for stored pages and 0 for holes (holes
     * are zero-filled in buf). */
    int (*read_pages)(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
                      uint8_t *present);
    int (*write_pages)(void *instance, uint64_t object, uint64_t first, uint32_t npages,
                       const void *buf);
    /* Forget pages [first, first+npages); npages UINT64_MAX means to the end. */
    int (*discard)(void *instance, uint64_t object, uint64_t first, uint64_t npages);
    /* Make everything written to object durable (object UINT64_MAX: all objects). */
    int (*sync)(void *instance, uint64_t object);
    /* Next page index >= from that is stored (want_data=1) or a hole (0);
     * -ENXIO when there is none (for data). */
    int (*seek)(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found);
    /* Number of stored pages of object. */
    int (*stored_pages)(void *instance, uint64_t object, uint64_t *count);
    /* Fill "key:value\n" lines for `emmctl info` (optional). */
    int (*info)(void *instance, char *buf, size_t len);

    /* The namespace store (optional, both or neither; since API 1 with a
     * struct_size that covers them, else the host sees NULL). meta_update
     * applies nput puts (insert or replace) and ndel deletes (absent keys are
     * fine) all or nothing, and returns once they are durable. meta_scan calls
     * fn for every key greater than `after` ("" for all), in byte order, with
     * no lock held that a meta_update from fn would need. */
    int (*meta_update)(void *instance, const struct emm_meta_kv *puts, size_t nput,
                       const char *const *dels, size_t ndel);
    int (*meta_scan)(void *instance, const char *after, emm_meta_scan_fn fn, void *arg);
};

#define EMM_BACKEND_INIT_SYMBOL "emm_backend_init"
typedef const struct emm_backend_ops *(*emm_backend_init_fn)(void);

/* C linkage for the export even when a plug-in is written in C++. */
#ifdef __cplusplus
#define EMM_BACKEND_EXTERN_C extern "C"
#else
#define EMM_BACKEND_EXTERN_C
#endif

/* Defines the plug-in's single export. A thread model must be given. */
#define EMM_BACKEND_REGISTER(ops, model)                                       \
    EMM_BACKEND_EXTERN_C __attribute__((visibility("default")))               \
    const struct emm_backend_ops *emm_backend_init(void);                      \
    EMM_BACKEND_EXTERN_C const struct emm_backend_ops *emm_backend_init(void)  \
    {                                                                          \
        (ops).struct_size = sizeof(struct emm_backend_ops);                    \
        (ops).api_version = EMM_BACKEND_API_VERSION;                           \
        (ops).thread_model = (model);                                          \
        return &(ops);                                                         \
    }

#ifdef __cplusplus
}
#endif
#endif /* EMM_BACKEND_H */
