/*
 * crc32c.h - CRC32C (Castagnoli) of a buffer. Safe from any thread.
 */
#ifndef EMM_CRC32C_H
#define EMM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf, continuing from crc (start with 0). */
uint32_t emm_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
