/*
 * abi_pager_layout.c - pins the external-pager API of <emm/pager.h>: its
 * constants (message ids, flags, access bits, the wire header's magic, version
 * and size), the offset of every field of struct emm_pager_wire_hdr (the wire
 * table of docs/protocol.md), struct emm_pager_msg and struct emm_pager_ops,
 * their sizes, and the type of every callback and function. Built with the
 * tree as strict C11 (tests/abi/CMakeLists.txt); t_pager_header.sh compiles it
 * again alone as C11 and as C++. It includes the public header and nothing
 * else of emm (the checks themselves are abi_assert.h's). (libpager.c, built against the internal msg.h and msg_wire.h,
 * asserts that the same constants are the protocol's own.)
 *
 * Fields are only ever appended: appending one changes a struct's size, so
 * the size checks below fail on purpose. Pin the new field, update the size,
 * and document it (since which API) in docs/emm-pager.md in the same change.
 * The wire header never changes without a new EMM_PAGER_WIRE_VERSION.
 *
 * Locking: none (compile-time checks and one exported function).
 */
#include <emm/pager.h>

#include "abi_assert.h" /* ABI_ASSERT, ABI_AT, ABI_BEFORE, ABI_FIELD */

/* ---- constants ---- */
ABI_ASSERT(EMM_PAGER_API_VERSION == 1, "API version changed: see versioning rules");
ABI_ASSERT(EMM_PAGER_PAGE_SIZE == 4096u && EMM_PAGER_MAX_REQUEST == 1048576u, "sizes");
ABI_ASSERT(EMM_PAGER_INIT == 1 && EMM_PAGER_DATA_REQUEST == 2 && EMM_PAGER_DATA_UNLOCK == 3 &&
               EMM_PAGER_DATA_RETURN == 4 && EMM_PAGER_LOCK_COMPLETED == 5 &&
               EMM_PAGER_SUPPLY_COMPLETED == 6 && EMM_PAGER_CHANGE_COMPLETED == 7 &&
               EMM_PAGER_SYNCHRONIZE == 8 && EMM_PAGER_TERMINATE == 9 && EMM_PAGER_DISCARD == 10,
           "kernel -> pager ids");
ABI_ASSERT(EMM_PAGER_READY == 32 && EMM_PAGER_DATA_SUPPLY == 33 &&
               EMM_PAGER_DATA_UNAVAILABLE == 34 && EMM_PAGER_DATA_ERROR == 35 &&
               EMM_PAGER_LOCK_REQUEST == 36 && EMM_PAGER_CHANGE_ATTRIBUTES == 37 &&
               EMM_PAGER_DESTROY == 38 && EMM_PAGER_SYNCHRONIZE_COMPLETED == 39 &&
               EMM_PAGER_DATA_RETURN_COMPLETED == 41 && EMM_PAGER_DATA_QUERY == 11 && EMM_PAGER_QUERY_REPLY == 40,
           "pager -> kernel ids");
ABI_ASSERT(EMM_PAGER_PROT_NONE == 0u && EMM_PAGER_PROT_READ == 1u && EMM_PAGER_PROT_WRITE == 2u &&
               EMM_PAGER_PROT_ALL == 3u && EMM_PAGER_PROT_NO_CHANGE == 8u,
           "access bits");
ABI_ASSERT(EMM_PAGER_F_DIRTY == 1u && EMM_PAGER_F_KERNEL_COPY == 2u && EMM_PAGER_F_PRECIOUS == 4u &&
               EMM_PAGER_F_FLUSH == 8u && EMM_PAGER_F_MAY_CACHE == 16u &&
               EMM_PAGER_F_CLUSTER_OK == 32u && EMM_PAGER_F_QUERY_COUNT == 128u,
           "flags");
ABI_ASSERT(EMM_PAGER_RETURN_NONE == 0 && EMM_PAGER_RETURN_DIRTY == 1 && EMM_PAGER_RETURN_ALL == 2,
           "should_return");
ABI_ASSERT(EMM_PAGER_COPY_NONE == 0 && EMM_PAGER_COPY_CALL == 1 && EMM_PAGER_COPY_DELAY == 2 &&
               EMM_PAGER_COPY_TEMPORARY == 3,
           "copy strategies");
ABI_ASSERT(EMM_PAGER_LATER == 1, "EMM_PAGER_LATER");
ABI_ASSERT(EMM_PAGER_WIRE_MAGIC == 0x684d4d45u && EMM_PAGER_WIRE_VERSION == 1u &&
               EMM_PAGER_WIRE_HDR_SIZE == 72u,
           "wire header constants");

/* ---- the wire header: exact on every ABI (fixed-width fields only) ---- */
ABI_AT(emm_pager_wire_hdr, magic, 0);
ABI_AT(emm_pager_wire_hdr, version, 4);
ABI_AT(emm_pager_wire_hdr, size, 6);
ABI_AT(emm_pager_wire_hdr, id, 8);
ABI_AT(emm_pager_wire_hdr, flags, 12);
ABI_AT(emm_pager_wire_hdr, seqno, 16);
ABI_AT(emm_pager_wire_hdr, offset, 24);
ABI_AT(emm_pager_wire_hdr, length, 32);
ABI_AT(emm_pager_wire_hdr, arg2, 40);
ABI_AT(emm_pager_wire_hdr, access, 48);
ABI_AT(emm_pager_wire_hdr, arg, 52);
ABI_AT(emm_pager_wire_hdr, control, 56);
ABI_AT(emm_pager_wire_hdr, name, 60);
ABI_AT(emm_pager_wire_hdr, reply, 64);
ABI_AT(emm_pager_wire_hdr, payload, 68);
ABI_ASSERT(sizeof(struct emm_pager_wire_hdr) == 72, "the wire header is 72 bytes");

/* ---- field order: holds on every ABI ---- */
ABI_AT(emm_pager_msg, struct_size, 0);
ABI_BEFORE(emm_pager_msg, struct_size, id);
ABI_BEFORE(emm_pager_msg, id, flags);
ABI_BEFORE(emm_pager_msg, flags, seqno);
ABI_BEFORE(emm_pager_msg, seqno, offset);
ABI_BEFORE(emm_pager_msg, offset, length);
ABI_BEFORE(emm_pager_msg, length, arg2);
ABI_BEFORE(emm_pager_msg, arg2, access);
ABI_BEFORE(emm_pager_msg, access, arg);
ABI_BEFORE(emm_pager_msg, arg, data);

ABI_AT(emm_pager_ops, struct_size, 0);
ABI_BEFORE(emm_pager_ops, struct_size, api_version);
ABI_BEFORE(emm_pager_ops, api_version, flags);
ABI_BEFORE(emm_pager_ops, flags, object_open);
ABI_BEFORE(emm_pager_ops, object_open, object_close);
ABI_BEFORE(emm_pager_ops, object_close, init);
ABI_BEFORE(emm_pager_ops, init, data_request);
ABI_BEFORE(emm_pager_ops, data_request, data_unlock);
ABI_BEFORE(emm_pager_ops, data_unlock, data_return);
ABI_BEFORE(emm_pager_ops, data_return, lock_completed);
ABI_BEFORE(emm_pager_ops, lock_completed, supply_completed);
ABI_BEFORE(emm_pager_ops, supply_completed, change_completed);
ABI_BEFORE(emm_pager_ops, change_completed, synchronize);
ABI_BEFORE(emm_pager_ops, synchronize, discard);
ABI_BEFORE(emm_pager_ops, discard, terminate);
ABI_BEFORE(emm_pager_ops, terminate, data_query);

/* ---- exact offsets and sizes on LP64 (x86_64, aarch64, ...) ---- */
#if defined(__LP64__) || defined(_LP64)
ABI_AT(emm_pager_msg, id, 8);
ABI_AT(emm_pager_msg, flags, 12);
ABI_AT(emm_pager_msg, seqno, 16);
ABI_AT(emm_pager_msg, offset, 24);
ABI_AT(emm_pager_msg, length, 32);
ABI_AT(emm_pager_msg, arg2, 40);
ABI_AT(emm_pager_msg, access, 48);
ABI_AT(emm_pager_msg, arg, 52);
ABI_AT(emm_pager_msg, data, 56);
ABI_ASSERT(sizeof(struct emm_pager_msg) == 64,
           "struct emm_pager_msg grew: pin the appended field here (see top)");

ABI_AT(emm_pager_ops, api_version, 8);
ABI_AT(emm_pager_ops, flags, 12);
ABI_AT(emm_pager_ops, object_open, 16);
ABI_AT(emm_pager_ops, object_close, 24);
ABI_AT(emm_pager_ops, init, 32);
ABI_AT(emm_pager_ops, data_request, 40);
ABI_AT(emm_pager_ops, data_unlock, 48);
ABI_AT(emm_pager_ops, data_return, 56);
ABI_AT(emm_pager_ops, lock_completed, 64);
ABI_AT(emm_pager_ops, supply_completed, 72);
ABI_AT(emm_pager_ops, change_completed, 80);
ABI_AT(emm_pager_ops, synchronize, 88);
ABI_AT(emm_pager_ops, discard, 96);
ABI_AT(emm_pager_ops, terminate, 104);
ABI_AT(emm_pager_ops, data_query, 112);
ABI_ASSERT(sizeof(struct emm_pager_ops) == 120,
           "struct emm_pager_ops grew: pin the appended field here (see top)");
#endif

/* ---- field and function types ---- */
#define ABI_FN(fn, T) ABI_ASSERT(ABI_TYPE_IS(&fn, T), #fn " changed type")

typedef int (*msg_fn)(struct emm_pager_object *, const struct emm_pager_msg *);
ABI_ASSERT(ABI_TYPE_IS((emm_pager_msg_fn)0, msg_fn), "emm_pager_msg_fn");

ABI_FIELD(emm_pager_msg, struct_size, size_t);
ABI_FIELD(emm_pager_msg, id, uint32_t);
ABI_FIELD(emm_pager_msg, flags, uint32_t);
ABI_FIELD(emm_pager_msg, seqno, uint64_t);
ABI_FIELD(emm_pager_msg, offset, uint64_t);
ABI_FIELD(emm_pager_msg, length, uint64_t);
ABI_FIELD(emm_pager_msg, arg2, uint64_t);
ABI_FIELD(emm_pager_msg, access, uint32_t);
ABI_FIELD(emm_pager_msg, arg, int32_t);
ABI_FIELD(emm_pager_msg, data, const void *);

ABI_FIELD(emm_pager_ops, struct_size, size_t);
ABI_FIELD(emm_pager_ops, api_version, uint32_t);
ABI_FIELD(emm_pager_ops, flags, uint32_t);
ABI_FIELD(emm_pager_ops, object_open, int (*)(void *, uint64_t, void **));
ABI_FIELD(emm_pager_ops, object_close, void (*)(void *, struct emm_pager_object *));
ABI_FIELD(emm_pager_ops, init, msg_fn);
ABI_FIELD(emm_pager_ops, data_request, msg_fn);
ABI_FIELD(emm_pager_ops, data_unlock, msg_fn);
ABI_FIELD(emm_pager_ops, data_return, msg_fn);
ABI_FIELD(emm_pager_ops, lock_completed, msg_fn);
ABI_FIELD(emm_pager_ops, supply_completed, msg_fn);
ABI_FIELD(emm_pager_ops, change_completed, msg_fn);
ABI_FIELD(emm_pager_ops, synchronize, msg_fn);
ABI_FIELD(emm_pager_ops, discard, msg_fn);
ABI_FIELD(emm_pager_ops, terminate, msg_fn);
ABI_FIELD(emm_pager_ops, data_query,
          int (*)(struct emm_pager_object *, const struct emm_pager_msg *, uint64_t *, uint64_t *));

ABI_FIELD(emm_pager_wire_hdr, magic, uint32_t);
ABI_FIELD(emm_pager_wire_hdr, version, uint16_t);
ABI_FIELD(emm_pager_wire_hdr, size, uint16_t);
ABI_FIELD(emm_pager_wire_hdr, seqno, uint64_t);
ABI_FIELD(emm_pager_wire_hdr, arg, int32_t);
ABI_FIELD(emm_pager_wire_hdr, payload, uint32_t);

typedef struct emm_pager_object obj_t;
ABI_FN(emm_pager_create, int (*)(const struct emm_pager_ops *, void *, unsigned, struct emm_pager **));
ABI_FN(emm_pager_listen, int (*)(const char *));
ABI_FN(emm_pager_accept, int (*)(struct emm_pager *, int, uint32_t));
ABI_FN(emm_pager_connect, int (*)(struct emm_pager *, const char *));
ABI_FN(emm_pager_attach, int (*)(struct emm_pager *, int, uint32_t));
ABI_FN(emm_pager_wait, int (*)(struct emm_pager *));
ABI_FN(emm_pager_shutdown, void (*)(struct emm_pager *));
ABI_FN(emm_pager_free, void (*)(struct emm_pager *));
ABI_FN(emm_pager_ctx, void *(*)(const struct emm_pager *));
ABI_FN(emm_pager_version, const char *(*)(void));
ABI_FN(emm_pager_object_id, uint64_t (*)(const obj_t *));
ABI_FN(emm_pager_object_ctx, void *(*)(const obj_t *));
ABI_FN(emm_pager_object_pager, struct emm_pager *(*)(const obj_t *));
ABI_FN(emm_pager_ready, int (*)(obj_t *, uint32_t, int32_t));
ABI_FN(emm_pager_data_supply,
       int (*)(obj_t *, uint64_t, uint64_t, const void *, uint32_t, uint32_t, int));
ABI_FN(emm_pager_data_unavailable, int (*)(obj_t *, uint64_t, uint64_t));
ABI_FN(emm_pager_data_error, int (*)(obj_t *, uint64_t, uint64_t, int));
ABI_FN(emm_pager_lock_request, int (*)(obj_t *, uint64_t, uint64_t, int, uint32_t, uint32_t, int));
ABI_FN(emm_pager_change_attributes, int (*)(obj_t *, uint32_t, int32_t, int));
ABI_FN(emm_pager_destroy, int (*)(obj_t *, int));
ABI_FN(emm_pager_synchronize_completed, int (*)(obj_t *, uint64_t, uint64_t, int));
ABI_FN(emm_pager_data_return_completed, int (*)(obj_t *, uint64_t, uint64_t, uint64_t, int));

/* A pager's ops table as small as the API allows must compile in C and C++. */
#ifdef __cplusplus
extern "C" {
#endif
const struct emm_pager_ops *abi_pager_ops(void);
#ifdef __cplusplus
}
#endif
const struct emm_pager_ops *
abi_pager_ops(void)
{
    static struct emm_pager_ops ops;
    ops.struct_size = sizeof(ops);
    ops.api_version = EMM_PAGER_API_VERSION;
    return &ops;
}
