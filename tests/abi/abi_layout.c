/*
 * abi_layout.c - pins the plug-in ABI of <emm/backend.h>: every constant, the
 * offset of every field of struct emm_backend_host and struct emm_backend_ops,
 * their sizes and the type of every callback. Built with the tree as strict C11
 * (-std=c11 -pedantic, tests/abi/CMakeLists.txt), so a reordered, inserted,
 * removed or retyped field fails the build; t_header.sh compiles it again as
 * C11 and as C++ into a plug-in. It includes the public header and nothing
 * else of emm (the checks themselves are abi_assert.h's).
 *
 * Fields are only ever appended: appending one changes a struct's size, so
 * the size checks below fail on purpose. Add the new field's offset and type,
 * update the size, and document the field (since which API) in
 * docs/emm-backend.md in the same change.
 *
 * Locking: none (compile-time checks and one static struct).
 */
#include <emm/backend.h>

#include "abi_assert.h" /* ABI_ASSERT, ABI_AT, ABI_BEFORE, ABI_FIELD */

/* ---- constants ---- */
ABI_ASSERT(EMM_BACKEND_API_VERSION == 1, "API version changed: see versioning rules");
ABI_ASSERT(EMM_PAGE_SIZE == 4096, "page size");
ABI_ASSERT(EMM_THREAD_SERIAL == 0 && EMM_THREAD_PER_OBJECT == 1 && EMM_THREAD_PARALLEL == 2,
           "thread models");
ABI_ASSERT(EMM_BACKEND_PERSISTENT == 1u && EMM_BACKEND_NONBLOCKING == 2u &&
               EMM_BACKEND_FILTER == 4u,
           "flags");
ABI_ASSERT(EMM_LOG_DEBUG == 0 && EMM_LOG_INFO == 1 && EMM_LOG_NOTICE == 2 && EMM_LOG_WARN == 3 &&
               EMM_LOG_ERR == 4,
           "log levels");
ABI_ASSERT(sizeof(EMM_BACKEND_INIT_SYMBOL) == sizeof("emm_backend_init"), "init symbol");

/* ---- field order: holds on every ABI ---- */

ABI_ASSERT(offsetof(struct emm_backend_host, struct_size) == 0, "host: struct_size first");
ABI_BEFORE(emm_backend_host, struct_size, api_version);
ABI_BEFORE(emm_backend_host, api_version, log);
ABI_BEFORE(emm_backend_host, log, parse_size);
ABI_BEFORE(emm_backend_host, parse_size, fs_name);
ABI_BEFORE(emm_backend_host, fs_name, state_dir);
ABI_BEFORE(emm_backend_host, state_dir, host_private);
ABI_BEFORE(emm_backend_host, host_private, next);
ABI_BEFORE(emm_backend_host, next, next_read_pages);
ABI_BEFORE(emm_backend_host, next_read_pages, next_write_pages);
ABI_BEFORE(emm_backend_host, next_write_pages, next_discard);
ABI_BEFORE(emm_backend_host, next_discard, next_sync);
ABI_BEFORE(emm_backend_host, next_sync, next_seek);
ABI_BEFORE(emm_backend_host, next_seek, next_stored_pages);

ABI_ASSERT(offsetof(struct emm_backend_ops, struct_size) == 0, "ops: struct_size first");
ABI_BEFORE(emm_backend_ops, struct_size, api_version);
ABI_BEFORE(emm_backend_ops, api_version, thread_model);
ABI_BEFORE(emm_backend_ops, thread_model, name);
ABI_BEFORE(emm_backend_ops, name, flags);
ABI_BEFORE(emm_backend_ops, flags, create);
ABI_BEFORE(emm_backend_ops, create, config);
ABI_BEFORE(emm_backend_ops, config, config_complete);
ABI_BEFORE(emm_backend_ops, config_complete, start);
ABI_BEFORE(emm_backend_ops, start, stop);
ABI_BEFORE(emm_backend_ops, stop, destroy);
ABI_BEFORE(emm_backend_ops, destroy, read_pages);
ABI_BEFORE(emm_backend_ops, read_pages, write_pages);
ABI_BEFORE(emm_backend_ops, write_pages, discard);
ABI_BEFORE(emm_backend_ops, discard, sync);
ABI_BEFORE(emm_backend_ops, sync, seek);
ABI_BEFORE(emm_backend_ops, seek, stored_pages);
ABI_BEFORE(emm_backend_ops, stored_pages, info);
ABI_BEFORE(emm_backend_ops, info, meta_update);
ABI_BEFORE(emm_backend_ops, meta_update, meta_scan);

/* ---- exact offsets and sizes on LP64 (x86_64, aarch64, ...) ---- */
#if defined(__LP64__) || defined(_LP64)

ABI_AT(emm_backend_host, api_version, 8);
ABI_AT(emm_backend_host, log, 16);
ABI_AT(emm_backend_host, parse_size, 24);
ABI_AT(emm_backend_host, fs_name, 32);
ABI_AT(emm_backend_host, state_dir, 40);
ABI_AT(emm_backend_host, host_private, 48);
ABI_AT(emm_backend_host, next, 56);
ABI_AT(emm_backend_host, next_read_pages, 64);
ABI_AT(emm_backend_host, next_write_pages, 72);
ABI_AT(emm_backend_host, next_discard, 80);
ABI_AT(emm_backend_host, next_sync, 88);
ABI_AT(emm_backend_host, next_seek, 96);
ABI_AT(emm_backend_host, next_stored_pages, 104);
ABI_ASSERT(sizeof(struct emm_backend_host) == 112,
           "struct emm_backend_host grew: pin the appended field here (see top)");

ABI_AT(emm_backend_ops, api_version, 8);
ABI_AT(emm_backend_ops, thread_model, 12);
ABI_AT(emm_backend_ops, name, 16);
ABI_AT(emm_backend_ops, flags, 24);
ABI_AT(emm_backend_ops, create, 32);
ABI_AT(emm_backend_ops, config, 40);
ABI_AT(emm_backend_ops, config_complete, 48);
ABI_AT(emm_backend_ops, start, 56);
ABI_AT(emm_backend_ops, stop, 64);
ABI_AT(emm_backend_ops, destroy, 72);
ABI_AT(emm_backend_ops, read_pages, 80);
ABI_AT(emm_backend_ops, write_pages, 88);
ABI_AT(emm_backend_ops, discard, 96);
ABI_AT(emm_backend_ops, sync, 104);
ABI_AT(emm_backend_ops, seek, 112);
ABI_AT(emm_backend_ops, stored_pages, 120);
ABI_AT(emm_backend_ops, info, 128);
ABI_AT(emm_backend_ops, meta_update, 136);
ABI_AT(emm_backend_ops, meta_scan, 144);
ABI_ASSERT(sizeof(struct emm_backend_ops) == 152,
           "struct emm_backend_ops grew: pin the appended field here (see top)");
#endif

/* ---- field types ---- */

ABI_FIELD(emm_backend_host, struct_size, size_t);
ABI_FIELD(emm_backend_host, api_version, uint32_t);
#ifndef __cplusplus /* g++ drops the format attribute from template arguments, with a warning */
ABI_FIELD(emm_backend_host, log, void (*)(const struct emm_backend_host *, int, const char *, ...));
#endif
ABI_FIELD(emm_backend_host, parse_size, int (*)(const char *, uint64_t *));
ABI_FIELD(emm_backend_host, fs_name, const char *);
ABI_FIELD(emm_backend_host, state_dir, const char *);
ABI_FIELD(emm_backend_host, host_private, void *);
ABI_FIELD(emm_backend_host, next, struct emm_backend_next *);
ABI_FIELD(emm_backend_host, next_read_pages,
          int (*)(struct emm_backend_next *, uint64_t, uint64_t, uint32_t, void *, uint8_t *));
ABI_FIELD(emm_backend_host, next_write_pages,
          int (*)(struct emm_backend_next *, uint64_t, uint64_t, uint32_t, const void *));
ABI_FIELD(emm_backend_host, next_discard,
          int (*)(struct emm_backend_next *, uint64_t, uint64_t, uint64_t));
ABI_FIELD(emm_backend_host, next_sync, int (*)(struct emm_backend_next *, uint64_t));
ABI_FIELD(emm_backend_host, next_seek,
          int (*)(struct emm_backend_next *, uint64_t, uint64_t, int, uint64_t *));
ABI_FIELD(emm_backend_host, next_stored_pages,
          int (*)(struct emm_backend_next *, uint64_t, uint64_t *));

ABI_FIELD(emm_backend_ops, struct_size, size_t);
ABI_FIELD(emm_backend_ops, api_version, uint32_t);
ABI_FIELD(emm_backend_ops, thread_model, uint32_t);
ABI_FIELD(emm_backend_ops, name, const char *);
ABI_FIELD(emm_backend_ops, flags, uint32_t);
ABI_FIELD(emm_backend_ops, create, int (*)(const struct emm_backend_host *, void **));
ABI_FIELD(emm_backend_ops, config, int (*)(void *, const char *, const char *, char *, size_t));
ABI_FIELD(emm_backend_ops, config_complete, int (*)(void *, char *, size_t));
ABI_FIELD(emm_backend_ops, start, int (*)(void *));
ABI_FIELD(emm_backend_ops, stop, void (*)(void *));
ABI_FIELD(emm_backend_ops, destroy, void (*)(void *));
ABI_FIELD(emm_backend_ops, read_pages,
          int (*)(void *, uint64_t, uint64_t, uint32_t, void *, uint8_t *));
ABI_FIELD(emm_backend_ops, write_pages, int (*)(void *, uint64_t, uint64_t, uint32_t, const void *));
ABI_FIELD(emm_backend_ops, discard, int (*)(void *, uint64_t, uint64_t, uint64_t));
ABI_FIELD(emm_backend_ops, sync, int (*)(void *, uint64_t));
ABI_FIELD(emm_backend_ops, seek, int (*)(void *, uint64_t, uint64_t, int, uint64_t *));
ABI_FIELD(emm_backend_ops, stored_pages, int (*)(void *, uint64_t, uint64_t *));
ABI_FIELD(emm_backend_ops, info, int (*)(void *, char *, size_t));
ABI_FIELD(emm_backend_ops, meta_update,
          int (*)(void *, const struct emm_meta_kv *, size_t, const char *const *, size_t));
ABI_FIELD(emm_backend_ops, meta_scan, int (*)(void *, const char *, emm_meta_scan_fn, void *));
ABI_ASSERT(offsetof(struct emm_meta_kv, key) == 0 && offsetof(struct emm_meta_kv, value) ==
               sizeof(void *) && offsetof(struct emm_meta_kv, len) == 2 * sizeof(void *),
           "struct emm_meta_kv layout");
ABI_ASSERT(EMM_META_KEY_MAX == 255 && EMM_META_VALUE_MAX == 65536, "meta limits");

/* A plug-in as small as the ABI allows: REGISTER must compile in C and C++. */
static struct emm_backend_ops abi_ops;
EMM_BACKEND_REGISTER(abi_ops, EMM_THREAD_PARALLEL)
