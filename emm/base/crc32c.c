/*
 * crc32c.c - CRC32C (Castagnoli), with SSE4.2 when the CPU has it. Used by the
 * zstd filter's cluster images and the swap area's headers.
 *
 * Locking: the table is built once (pthread_once); then read-only.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    crc = (uint32_t)c;
    for (; len; p++, len--)
        crc = __builtin_ia32_crc32qi(crc, *p);
    return crc;
}
#endif

uint32_t
emm_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_sse42(crc, p, len);
#endif
    for (; len; p++, len--)
        crc = crc_table[(crc ^ *p) & 0xff] ^ (crc >> 8);
    return ~crc;
}
