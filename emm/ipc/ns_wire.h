/*
 * ns_wire.h - the data of the memory server's namespace messages (MO_NS_*,
 * msg.h; docs/protocol.md): records and names packed into whole pages, so
 * they travel as any message's data. Used by emm-memserver (ns.c) and
 * emmd's remote namespace (remote_ns.c), each converting from its own
 * records. Stateless: no locking.
 *
 * A record on the wire (little-endian, 8-byte aligned):
 *   id u64, size u64, parent u64, atime i64, mtime i64, ctime i64,
 *   mode u32, uid u32, gid u32, type u32, name length u32, pad u32 (72 bytes),
 *   then the name (no NUL), padded to 8.
 * A name list (remove, lookup, rename) is: length u32, bytes, padded to 4.
 * The buffer's tail after the last entry is zeros; an entry with name length
 * 0 and id 0 ends a list early. Every decode checks lengths against the
 * buffer: the peer is never trusted.
 */
#ifndef MSRV_NS_WIRE_H
#define MSRV_NS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define NS_REC_FIXED 72u
#define NS_PAGE 4096u
#define NS_NAME_MAX 255
#define NS_ROOT 0     /* the root directory's id */
#define NS_FILE 0     /* type: a memory object */
#define NS_DIR 1      /* type: a directory */

/* One namespace entry (emmd's catalog record, field for field). */
struct emm_ns_rec {
    uint64_t id, size, parent;
    int64_t atime_ns, mtime_ns, ctime_ns;
    uint32_t mode, uid, gid, type;
    char name[NS_NAME_MAX + 1];
};

/* Bytes rec takes on the wire. */
size_t ns_rec_size(const struct emm_ns_rec *rec);
/* Appends rec at *pos of buf (cap bytes): 0, or -ENOSPC (nothing written). */
int ns_rec_put(void *buf, size_t cap, size_t *pos, const struct emm_ns_rec *rec);
/* Reads the record at *pos: 1 and *rec, 0 at the end of the list, or
 * -EBADMSG (a length past the buffer, a name with '/' or NUL, too long). */
int ns_rec_get(const void *buf, size_t cap, size_t *pos, struct emm_ns_rec *rec);
/* Names: the same rules ("" is refused, as "." and ".."). */
int ns_name_put(void *buf, size_t cap, size_t *pos, const char *name);
int ns_name_get(const void *buf, size_t cap, size_t *pos, char name[NS_NAME_MAX + 1]);
/* A zeroed page-aligned buffer of whole pages holding at least bytes: its
 * size in *cap. NULL when out of memory. free() it. */
void *ns_buf(size_t bytes, size_t *cap);

#endif
