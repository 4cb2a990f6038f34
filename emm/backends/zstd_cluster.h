/*
 * zstd_cluster.h - the stored image of one zstd-filter cluster (backend_zstd.c),
 * exposed for the unit tests and the fuzz target.
 *
 * Image: a 32-byte little-endian header, then clen payload bytes, zero-padded to
 * whole pages. Header: magic "EMZC", version 1, flags (RAW, DICT), pages per
 * cluster (u16), dict id (u32, 0 = none), uncompressed length, payload length,
 * CRC32C of the header (crc field zero) and the payload, and a u64 bitmap of the
 * logical pages that are present.
 *
 * Locking: none; the functions use per-thread zstd contexts and are safe from
 * any thread.
 */
#ifndef EMM_ZSTD_CLUSTER_H
#define EMM_ZSTD_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define EMM_ZSTD_HDR_SIZE 32u
#define EMM_ZSTD_MAX_CLUSTER (256u * 1024u)

/*
 * Decodes a stored cluster image of len bytes (no dictionary) into out
 * (cluster_size bytes) and present[] (cluster_size / 4096 entries). Any
 * malformed image gives -EIO, never a read outside img or a write outside out.
 */
int emm_zstd_decode_cluster(const void *img, size_t len, void *out, size_t cluster_size,
                            uint8_t *present);

/*
 * Encodes a cluster (cluster_size bytes, present[] as above, at least one set)
 * at level into img, which holds cap >= cluster_size + 4096 bytes; *len gets the
 * image length before padding. Incompressible clusters are stored raw.
 */
int emm_zstd_encode_cluster(const void *data, size_t cluster_size, const uint8_t *present,
                            int level, void *img, size_t cap, size_t *len);

#endif
