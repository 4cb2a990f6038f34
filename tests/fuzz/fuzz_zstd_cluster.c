/*
 * fuzz_zstd_cluster.c - feeds arbitrary bytes to the zstd filter's cluster
 * decoder (emm_zstd_decode_cluster, zstd_cluster.h) as a stored cluster image.
 *
 * Input: byte 0 picks the cluster size (4K << (b & 7) % 7) and, with bit 3 set,
 * asks the harness to fix the image's CRC32C first, so mutations get past the
 * checksum into the header checks and the zstd decoder. The rest is the image.
 * A result other than 0 or -EIO, or a decoded image whose present map is empty,
 * aborts.
 *
 * Built with libFuzzer when the compiler has -fsanitize=fuzzer; otherwise main()
 * below replays the files (or directories of files) named on the command line,
 * and `fuzz_zstd_cluster --make-corpus DIR` writes the seed corpus.
 *
 * Locking: single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "zstd_cluster.h"

#define PS 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[EMM_ZSTD_MAX_CLUSTER], present[EMM_ZSTD_MAX_CLUSTER / PS];
    uint8_t *img;
    size_t len, cluster;

    if (size < 1)
        return 0;
    cluster = (size_t)PS << ((data[0] & 7) % 7);
    len = size - 1;
    /* A private copy, exactly len bytes long: ASan sees any read past it. */
    img = malloc(len ? len : 1);
    if (!img)
        return 0;
    memcpy(img, data + 1, len);
    if ((data[0] & 8) && len >= EMM_ZSTD_HDR_SIZE) {
        uint32_t clen = rd32(img + 16);
        if (clen > len - EMM_ZSTD_HDR_SIZE)
            clen = (uint32_t)(len - EMM_ZSTD_HDR_SIZE);
        memset(img + 20, 0, 4);
        uint32_t crc = emm_crc32c(emm_crc32c(0, img, EMM_ZSTD_HDR_SIZE),
                                  img + EMM_ZSTD_HDR_SIZE, clen);
        img[20] = (uint8_t)crc, img[21] = (uint8_t)(crc >> 8);
        img[22] = (uint8_t)(crc >> 16), img[23] = (uint8_t)(crc >> 24);
    }
    int r = emm_zstd_decode_cluster(img, len, out, cluster, present);
    if (r != 0 && r != -EIO)
        abort();
    if (r == 0) {
        int any = 0;
        for (size_t i = 0; i < cluster / PS; i++)
            any |= present[i];
        if (!any)
            abort();
    }
    free(img);
    return 0;
}

#ifndef EMM_LIBFUZZER

#include "fuzz_replay.h"

static int
write_seed(const char *dir, const char *name, uint8_t sel, const void *img, size_t len)
{
    return fuzz_write_seed(dir, name, &sel, 1, img, len);
}

/* Seeds: valid images of each kind and size, and a few broken ones. */
static int
make_corpus(const char *dir)
{
    static uint8_t data[EMM_ZSTD_MAX_CLUSTER], img[EMM_ZSTD_MAX_CLUSTER + PS];
    uint8_t present[EMM_ZSTD_MAX_CLUSTER / PS];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    size_t len;
    int r = 0;
    char name[64];

    for (unsigned shift = 0; shift < 7; shift += 2) { /* 4K, 16K, 64K, 256K */
        size_t cluster = (size_t)PS << shift;
        for (int kind = 0; kind < 3; kind++) {
            if ((kind == 0 && shift > 4) || (kind == 1 && shift > 2))
                continue; /* keep the committed corpus small */
            for (size_t i = 0; i < cluster; i++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                data[i] = kind == 0 ? (uint8_t)("emm pager page fault "[(s >> 33) % 21])
                        : kind == 1 ? (uint8_t)(s >> 56)
                                    : (uint8_t)(i % PS < 64 ? i : 0);
            }
            for (size_t i = 0; i < cluster / PS; i++)
                present[i] = kind != 2 || i % 3 == 0;
            if (emm_zstd_encode_cluster(data, cluster, present, kind == 2 ? -3 : 3, img,
                                        sizeof(img), &len) < 0)
                return -1;
            static const char *const kinds[] = {"text", "random", "sparse"};
            snprintf(name, sizeof(name), "%s-%zuk", kinds[kind], cluster / 1024);
            r |= write_seed(dir, name, (uint8_t)shift, img, len);
            if (kind == 0) {
                snprintf(name, sizeof(name), "%s-%zuk-truncated", kinds[kind], cluster / 1024);
                r |= write_seed(dir, name, (uint8_t)shift, img, len / 2);
                img[EMM_ZSTD_HDR_SIZE + 7] ^= 0x40; /* corrupt payload, CRC fixed by harness */
                snprintf(name, sizeof(name), "%s-%zuk-fixcrc", kinds[kind], cluster / 1024);
                r |= write_seed(dir, name, (uint8_t)(shift | 8), img, len);
            }
        }
    }
    r |= write_seed(dir, "empty", 0, "", 0);
    r |= write_seed(dir, "bad-magic", 8, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 40);
    return r;
}

int
main(int argc, char **argv)
{
    return fuzz_replay_main("fuzz_zstd_cluster", argc, argv, make_corpus);
}

#endif
