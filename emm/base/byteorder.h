/*
 * byteorder.h - little-endian fields in on-disk records (the catalog, the swap
 * area). Unaligned-safe; stateless, so no locking.
 */
#ifndef EMM_BYTEORDER_H
#define EMM_BYTEORDER_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void
emm_put_le32(unsigned char *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static inline void
emm_put_le64(unsigned char *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint32_t
emm_get_le32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static inline uint64_t
emm_get_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

#endif
