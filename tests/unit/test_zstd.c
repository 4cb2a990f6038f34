/*
 * test_zstd.c - the zstd filter (backend_zstd.c) and its cluster image
 * (zstd_cluster.h): round trips of compressible, random and zero data at several
 * cluster sizes and levels, read-modify-write, exact present/seek/stored_pages,
 * discard inside a cluster, writers racing on one cluster, corruption seen from
 * below, the trained dictionary and its persistence, info, and config errors.
 *
 * Each test builds its own stack in its own mkdtemp directory; no shared state.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend_host.h"
#include "backend_fixture.h"
#include "crc32c.h"
#include "zstd_cluster.h"


static void
fix_key(struct fix *f, const char *key, const char *value)
{
    struct emm_backend_key *kv = &f->kv[f->args.nkeys++];
    kv->key = key;
    kv->value = value;
    kv->line = 10 + (int)f->args.nkeys;
}

static int
fix_open(struct fix *f, const char *spec)
{
    snprintf(f->spec, sizeof(f->spec), "%s", spec);
    f->args.spec = f->spec;
    f->err[0] = '\0';
    int r = emm_backend_open(&f->args, &f->b, f->err, sizeof(f->err));
    if (r == 0)
        r = emm_backend_start(f->b);
    if (r != 0)
        fprintf(stderr, "open %s: %s (%d)\n", spec, f->err, r);
    return r;
}

static void
fix_reopen(struct fix *f)
{
    emm_backend_close(f->b);
    f->b = NULL;
    char spec[64];
    snprintf(spec, sizeof(spec), "%s", f->spec);
    assert_int_equal(fix_open(f, spec), 0);
}

/* Opens "zstd:memory" with cluster size `cluster` (NULL: default). */
static struct fix *
open_mem(const char *cluster)
{
    struct fix *f = fix_new("zstd");
    if (cluster)
        fix_key(f, "zstd.cluster", cluster);
    assert_int_equal(fix_open(f, "zstd:memory"), 0);
    return f;
}

/* ---- content ----------------------------------------------------------------- */

enum kind { K_TEXT, K_RANDOM, K_ZERO };

static uint64_t
mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Page content by (kind, object, page, version): text compresses, random not. */
static void
fill_page(unsigned char *p, enum kind k, uint64_t obj, uint64_t page, uint64_t ver)
{
    static const char *const words[] = {"memory ", "object ", "pager ", "page ", "fault ",
                                        "kernel ", "mach ",   "port ",  "zstd ", "cluster\n"};
    uint64_t s = mix(obj * 1000003 + page * 7919 + ver);
    size_t i = 0;

    switch (k) {
    case K_ZERO:
        memset(p, 0, PS);
        return;
    case K_RANDOM:
        for (; i < PS; i += 8) {
            s = mix(s + i);
            memcpy(p + i, &s, 8);
        }
        return;
    case K_TEXT:
        i = (size_t)snprintf((char *)p, PS, "obj %" PRIu64 " page %" PRIu64 " v%" PRIu64 " ", obj,
                             page, ver);
        while (i < PS) {
            s = mix(s);
            const char *w = words[s % 10];
            size_t n = strlen(w);
            if (n > PS - i)
                n = PS - i;
            memcpy(p + i, w, n);
            i += n;
        }
        return;
    }
}

static void
wr(struct emm_backend *b, enum kind k, uint64_t obj, uint64_t page, uint32_t n, uint64_t ver)
{
    unsigned char *buf = malloc((size_t)n * PS);
    for (uint32_t i = 0; i < n; i++)
        fill_page(buf + (size_t)i * PS, k, obj, page + i, ver);
    assert_int_equal(emm_backend_write(b, obj, page, n, buf), 0);
    free(buf);
}

/*
 * Reads pages [page, page + strlen(map)) and checks each: '1' present with
 * content (k, ver), '0' absent and zero, 'z' absent-or-present but zero.
 */
static void
rd_expect(struct emm_backend *b, enum kind k, uint64_t obj, uint64_t page, const char *map,
          uint64_t ver)
{
    uint32_t n = (uint32_t)strlen(map);
    unsigned char *buf = malloc((size_t)n * PS), want[PS];
    uint8_t *present = malloc(n);
    memset(buf, 0xAA, (size_t)n * PS);
    assert_int_equal(emm_backend_read(b, obj, page, n, buf, present), 0);
    for (uint32_t i = 0; i < n; i++) {
        if (map[i] == '1') {
            fill_page(want, k, obj, page + i, ver);
            if (present[i] != 1 || memcmp(buf + (size_t)i * PS, want, PS) != 0)
                fail_msg("object %" PRIu64 " page %" PRIu64 ": present %d, content %s", obj,
                         page + i, present[i],
                         memcmp(buf + (size_t)i * PS, want, PS) ? "wrong" : "right");
        } else {
            memset(want, 0, PS);
            if ((map[i] == '0' && present[i] != 0) || memcmp(buf + (size_t)i * PS, want, PS))
                fail_msg("object %" PRIu64 " page %" PRIu64 ": want a hole, present %d", obj,
                         page + i, present[i]);
        }
    }
    free(buf);
    free(present);
}

static uint64_t
stored(struct emm_backend *b, uint64_t obj)
{
    uint64_t n = 99;
    assert_int_equal(emm_backend_stored_pages(b, obj, &n), 0);
    return n;
}

/* Value of "zstd.KEY:" in the stack's info. */
static double
info_num(struct emm_backend *b, const char *key)
{
    char buf[4096], want[64];
    assert_int_equal(emm_backend_info(b, buf, sizeof(buf)), 0);
    snprintf(want, sizeof(want), "zstd.%s:", key);
    char *s = strstr(buf, want);
    if (!s)
        fail_msg("no %s in info:\n%s", want, buf);
    return strtod(s + strlen(want), NULL);
}

/* Flags byte of the stored header of cluster c (stride ppc + 1), or -1 for a hole. */
static int
lower_flags(struct fix *f, uint64_t obj, uint64_t c, uint32_t ppc)
{
    unsigned char page[PS];
    uint8_t present;
    assert_int_equal(emm_backend_read(f->b->next, obj, c * (ppc + 1), 1, page, &present), 0);
    return present ? page[5] : -1;
}

/* ---- tests --------------------------------------------------------------------- */

static void
t_crc32c(void **state)
{
    (void)state;
    assert_int_equal(emm_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(emm_crc32c(emm_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    assert_int_equal(emm_crc32c(0, "", 0), 0);
}

/* Every bit flip and every truncation of an image is -EIO, never a crash. */
static void
t_codec(void **state)
{
    (void)state;
    const size_t cs = 16384;
    unsigned char *data = malloc(cs), *out = malloc(cs), *img = malloc(cs + PS);
    uint8_t present[4] = {1, 0, 1, 1}, got[4];
    size_t len;

    for (int i = 0; i < 4; i++)
        fill_page(data + i * PS, K_TEXT, 1, (uint64_t)i, 0);
    assert_int_equal(emm_zstd_encode_cluster(data, cs, present, 3, img, cs + PS, &len), 0);
    assert_true(len < cs / 2);
    assert_int_equal(emm_zstd_decode_cluster(img, len, out, cs, got), 0);
    assert_memory_equal(out, data, cs);
    assert_memory_equal(got, present, 4);
    /* The wrong cluster size is refused. */
    assert_int_equal(emm_zstd_decode_cluster(img, len, out, 8192, got), -EIO);
    for (size_t bit = 0; bit < len * 8; bit += 7) {
        img[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(emm_zstd_decode_cluster(img, len, out, cs, got), -EIO);
        img[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    for (size_t l = 0; l < len; l += 13)
        assert_int_equal(emm_zstd_decode_cluster(img, l, out, cs, got), -EIO);
    /* Random data is stored raw: header page + the cluster. */
    for (int i = 0; i < 4; i++)
        fill_page(data + i * PS, K_RANDOM, 1, (uint64_t)i, 0);
    assert_int_equal(emm_zstd_encode_cluster(data, cs, present, 1, img, cs + PS, &len), 0);
    assert_int_equal(len, cs + EMM_ZSTD_HDR_SIZE);
    assert_int_equal(img[5] & 1, 1);
    assert_int_equal(emm_zstd_decode_cluster(img, len, out, cs, got), 0);
    assert_memory_equal(out, data, cs);
    free(data);
    free(out);
    free(img);
}

/* Compressible, random and zero clusters round-trip at each cluster size. */
static void
roundtrip(const char *cluster, uint32_t ppc)
{
    struct fix *f = open_mem(cluster);
    uint32_t n = 3 * ppc + 2; /* crosses cluster boundaries */
    char *ones = malloc(n + 1), *zeros = malloc(n + 1);

    memset(ones, '1', n), ones[n] = '\0';
    memset(zeros, '0', n), zeros[n] = '\0';
    wr(f->b, K_TEXT, 1, 5, n, 1);
    wr(f->b, K_RANDOM, 2, 5, n, 1);
    wr(f->b, K_ZERO, 3, 0, 4 * ppc, 1);
    rd_expect(f->b, K_TEXT, 1, 5, ones, 1);
    rd_expect(f->b, K_RANDOM, 2, 5, ones, 1);
    rd_expect(f->b, K_ZERO, 3, 0, zeros, 1); /* zero clusters are holes */
    rd_expect(f->b, K_TEXT, 1, 0, "00000", 1);
    assert_int_equal(stored(f->b, 1), n);
    assert_int_equal(stored(f->b, 2), n);
    assert_int_equal(stored(f->b, 3), 0);
    /* Random data is stored raw, text compressed (in a cluster written whole). */
    assert_int_equal(lower_flags(f, 2, 5 / ppc + 1, ppc) & 1, 1);
    assert_int_equal(lower_flags(f, 1, 5 / ppc + 1, ppc) & 1, 0);
    assert_int_equal(lower_flags(f, 3, 0, ppc), -1);
    /* Overwrite text with random and back. */
    wr(f->b, K_RANDOM, 1, 5, n, 2);
    rd_expect(f->b, K_RANDOM, 1, 5, ones, 2);
    wr(f->b, K_TEXT, 1, 5, n, 3);
    rd_expect(f->b, K_TEXT, 1, 5, ones, 3);
    assert_int_equal(stored(f->b, 1), n);
    free(ones);
    free(zeros);
    fix_free(f);
}

static void
t_roundtrip_4k(void **state)
{
    (void)state;
    roundtrip("4K", 1);
}

static void
t_roundtrip_16k(void **state)
{
    (void)state;
    roundtrip("16K", 4);
}

static void
t_roundtrip_64k(void **state)
{
    (void)state;
    roundtrip(NULL, 16);
}

static void
t_roundtrip_256k(void **state)
{
    (void)state;
    roundtrip("256K", 64);
}

static void
t_levels(void **state)
{
    (void)state;
    static const char *const levels[] = {"-5", "-1", "1", "3", "19"};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        struct fix *f = fix_new("zstd");
        fix_key(f, "zstd.level", levels[i]);
        assert_int_equal(fix_open(f, "zstd:memory"), 0);
        wr(f->b, K_TEXT, 1, 0, 40, 1);
        rd_expect(f->b, K_TEXT, 1, 0, "1111111111111111111111111111111111111111", 1);
        assert_true(info_num(f->b, "ratio") > 1.5);
        fix_free(f);
    }
}

/* Partial-cluster writes read, patch and rewrite: neighbours survive. */
static void
t_rmw(void **state)
{
    (void)state;
    struct fix *f = open_mem("16K"); /* 4 pages per cluster */

    wr(f->b, K_TEXT, 1, 0, 8, 1);
    wr(f->b, K_TEXT, 1, 1, 1, 2);  /* one page inside cluster 0 */
    wr(f->b, K_TEXT, 1, 3, 3, 3);  /* end of cluster 0, start of cluster 1 */
    rd_expect(f->b, K_TEXT, 1, 0, "1", 1);
    rd_expect(f->b, K_TEXT, 1, 1, "1", 2);
    rd_expect(f->b, K_TEXT, 1, 2, "1", 1);
    rd_expect(f->b, K_TEXT, 1, 3, "111", 3);
    rd_expect(f->b, K_TEXT, 1, 6, "110", 1);
    /* Sparse pages inside one cluster: present is exact. */
    wr(f->b, K_TEXT, 2, 9, 1, 1);
    wr(f->b, K_RANDOM, 2, 11, 1, 1);
    rd_expect(f->b, K_TEXT, 2, 7, "0010", 1);
    rd_expect(f->b, K_RANDOM, 2, 11, "10000", 1);
    /* A page of zeros next to data is present. */
    wr(f->b, K_ZERO, 2, 10, 1, 1);
    rd_expect(f->b, K_ZERO, 2, 10, "1", 1);
    assert_int_equal(stored(f->b, 2), 3);
    assert_int_equal(stored(f->b, 1), 8);
    fix_free(f);
}

static void
t_present_seek_stored(void **state)
{
    (void)state;
    struct fix *f = open_mem("16K");
    uint64_t at = 0;

    wr(f->b, K_TEXT, 6, 10, 2, 1); /* cluster 2, pages 2-3 */
    wr(f->b, K_TEXT, 6, 20, 1, 1); /* cluster 5, page 0 */
    wr(f->b, K_TEXT, 6, 1 << 20, 1, 1);
    assert_int_equal(stored(f->b, 6), 4);
    assert_int_equal(emm_backend_seek(f->b, 6, 0, 1, &at), 0);
    assert_int_equal(at, 10);
    assert_int_equal(emm_backend_seek(f->b, 6, 11, 1, &at), 0);
    assert_int_equal(at, 11);
    assert_int_equal(emm_backend_seek(f->b, 6, 10, 0, &at), 0);
    assert_int_equal(at, 12);
    assert_int_equal(emm_backend_seek(f->b, 6, 8, 0, &at), 0);
    assert_int_equal(at, 8);
    assert_int_equal(emm_backend_seek(f->b, 6, 12, 1, &at), 0);
    assert_int_equal(at, 20);
    assert_int_equal(emm_backend_seek(f->b, 6, 20, 0, &at), 0);
    assert_int_equal(at, 21);
    assert_int_equal(emm_backend_seek(f->b, 6, 21, 1, &at), 0);
    assert_int_equal(at, 1 << 20);
    assert_int_equal(emm_backend_seek(f->b, 6, (1 << 20) + 1, 1, &at), -ENXIO);
    assert_int_equal(emm_backend_seek(f->b, 7, 0, 1, &at), -ENXIO);
    /* Counts stay exact through overwrites and after a restart of counting. */
    wr(f->b, K_TEXT, 6, 10, 2, 2);
    assert_int_equal(stored(f->b, 6), 4);
    wr(f->b, K_TEXT, 6, 8, 4, 2);
    assert_int_equal(stored(f->b, 6), 6);
    assert_true(info_num(f->b, "logical_bytes") == 6.0 * PS);
    fix_free(f);
}

static void
t_discard(void **state)
{
    (void)state;
    struct fix *f = open_mem("16K");
    uint64_t at;

    wr(f->b, K_TEXT, 5, 0, 12, 1);
    assert_int_equal(emm_backend_discard(f->b, 5, 1, 2), 0); /* inside cluster 0 */
    rd_expect(f->b, K_TEXT, 5, 0, "100111111111", 1);
    assert_int_equal(stored(f->b, 5), 10);
    assert_int_equal(emm_backend_discard(f->b, 5, 3, 6), 0); /* across 3 clusters */
    rd_expect(f->b, K_TEXT, 5, 0, "100000000111", 1);
    assert_int_equal(stored(f->b, 5), 4);
    assert_int_equal(emm_backend_seek(f->b, 5, 1, 1, &at), 0);
    assert_int_equal(at, 9);
    /* Discarding the last present page of a cluster frees its slot below. */
    assert_int_equal(emm_backend_discard(f->b, 5, 0, 1), 0);
    assert_int_equal(lower_flags(f, 5, 0, 4), -1);
    assert_int_equal(emm_backend_discard(f->b, 5, 10, UINT64_MAX), 0);
    rd_expect(f->b, K_TEXT, 5, 8, "01000", 1);
    assert_int_equal(stored(f->b, 5), 1);
    assert_int_equal(emm_backend_discard(f->b, 5, 0, UINT64_MAX), 0);
    assert_int_equal(stored(f->b, 5), 0);
    assert_true(info_num(f->b, "stored_bytes") == 0);
    fix_free(f);
}

struct racer {
    struct emm_backend *b;
    int id, rounds, failed;
};

/* Thread id writes pages id, id+4, ... of object 9: all in the same clusters. */
static void *
race(void *arg)
{
    struct racer *w = arg;
    unsigned char buf[PS];
    uint8_t present;

    for (int r = 0; r < w->rounds && !w->failed; r++)
        for (uint64_t p = (uint64_t)w->id; p < 32; p += 4) {
            fill_page(buf, r % 2 ? K_RANDOM : K_TEXT, 9, p, (uint64_t)r);
            if (emm_backend_write(w->b, 9, p, 1, buf) != 0)
                w->failed = 1;
            if (emm_backend_read(w->b, 9, p, 1, buf, &present) != 0 || !present)
                w->failed = 2;
        }
    return NULL;
}

static void
t_threads_one_cluster(void **state)
{
    (void)state;
    struct fix *f = open_mem(NULL); /* 16 pages per cluster: 2 clusters */
    pthread_t t[4];
    struct racer w[4];
    const int rounds = 25;

    for (int i = 0; i < 4; i++) {
        w[i] = (struct racer){.b = f->b, .id = i, .rounds = rounds};
        assert_int_equal(pthread_create(&t[i], NULL, race, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failed, 0);
    }
    /* Every page holds its writer's last version. */
    for (uint64_t p = 0; p < 32; p++)
        rd_expect(f->b, (rounds - 1) % 2 ? K_RANDOM : K_TEXT, 9, p, "1", (uint64_t)rounds - 1);
    assert_int_equal(stored(f->b, 9), 32);
    fix_free(f);
}

/* Garbage written below is -EIO on read, whatever part of the image it hits. */
static void
t_corrupt(void **state)
{
    (void)state;
    struct fix *f = open_mem("16K"); /* stride 5 below */
    unsigned char page[PS], buf[4 * PS];
    uint8_t present[4];

    wr(f->b, K_TEXT, 1, 0, 12, 1);
    wr(f->b, K_RANDOM, 1, 12, 4, 1); /* cluster 3: raw, 5 pages below */
    /* Bad magic in cluster 0. */
    assert_int_equal(emm_backend_read(f->b->next, 1, 0, 1, page, present), 0);
    page[0] ^= 0xff;
    assert_int_equal(emm_backend_write(f->b->next, 1, 0, 1, page), 0);
    assert_int_equal(emm_backend_read(f->b, 1, 0, 4, buf, present), -EIO);
    assert_int_equal(emm_backend_read(f->b, 1, 2, 1, buf, present), -EIO);
    /* A flipped payload byte (checksum) in cluster 1. */
    assert_int_equal(emm_backend_read(f->b->next, 1, 5, 1, page, present), 0);
    page[100] ^= 1;
    assert_int_equal(emm_backend_write(f->b->next, 1, 5, 1, page), 0);
    assert_int_equal(emm_backend_read(f->b, 1, 4, 4, buf, present), -EIO);
    /* A payload length past the slot in cluster 2. */
    assert_int_equal(emm_backend_read(f->b->next, 1, 10, 1, page, present), 0);
    page[16] = 0xff, page[17] = 0xff, page[18] = 0xff;
    assert_int_equal(emm_backend_write(f->b->next, 1, 10, 1, page), 0);
    assert_int_equal(emm_backend_read(f->b, 1, 8, 1, buf, present), -EIO);
    /* Random garbage over a raw cluster's data page. */
    fill_page(page, K_RANDOM, 77, 77, 77);
    assert_int_equal(emm_backend_write(f->b->next, 1, 17, 1, page), 0);
    assert_int_equal(emm_backend_read(f->b, 1, 12, 4, buf, present), -EIO);
    /* Pure garbage where nothing was stored. */
    assert_int_equal(emm_backend_write(f->b->next, 1, 20, 1, page), 0);
    assert_int_equal(emm_backend_read(f->b, 1, 16, 1, buf, present), -EIO);
    assert_true(info_num(f->b, "corrupt_clusters") >= 5);
    /* A partial write cannot keep the neighbours of a corrupt cluster. */
    assert_int_equal(emm_backend_write(f->b, 1, 1, 1, buf), -EIO);
    /* A whole-cluster write or a discard repairs it. */
    wr(f->b, K_TEXT, 1, 0, 4, 2);
    rd_expect(f->b, K_TEXT, 1, 0, "1111", 2);
    assert_int_equal(emm_backend_discard(f->b, 1, 4, 4), 0);
    rd_expect(f->b, K_TEXT, 1, 4, "0000", 2);
    fix_free(f);
}

static void
t_info_ratio_zero(void **state)
{
    (void)state;
    struct fix *f = open_mem(NULL);
    char buf[4096];

    wr(f->b, K_ZERO, 1, 0, 16, 1);
    assert_true(info_num(f->b, "stored_bytes") == 0);
    assert_true(info_num(f->b, "logical_bytes") == 0);
    assert_true(info_num(f->b, "zero_clusters") == 1);
    assert_int_equal(stored(f->b, 1), 0);
    wr(f->b, K_TEXT, 2, 0, 64, 1);
    assert_true(info_num(f->b, "logical_bytes") == 64.0 * PS);
    assert_true(info_num(f->b, "ratio") > 2.0);
    assert_true(info_num(f->b, "stored_bytes") < 32.0 * PS);
    wr(f->b, K_RANDOM, 3, 0, 16, 1);
    assert_true(info_num(f->b, "raw_clusters") == 1);
    assert_int_equal(emm_backend_info(f->b, buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "backend_thread_model:parallel\n"));
    assert_non_null(strstr(buf, "nonblocking"));
    assert_non_null(strstr(buf, "layer:zstd\n"));
    assert_non_null(strstr(buf, "layer:memory\n"));
    assert_non_null(strstr(buf, "zstd.cluster:65536\n"));
    fix_free(f);
}

static void
t_file_flags_restart(void **state)
{
    (void)state;
    struct fix *f = fix_new("zstd");
    fix_key(f, "zstd.cluster", "32K");
    assert_int_equal(fix_open(f, "zstd:file"), 0);
    assert_true(f->b->flags & EMM_BACKEND_PERSISTENT);
    assert_false(f->b->flags & EMM_BACKEND_NONBLOCKING);
    wr(f->b, K_TEXT, 4, 3, 20, 1);
    wr(f->b, K_RANDOM, 4, 100, 3, 1);
    assert_int_equal(emm_backend_sync(f->b, UINT64_MAX), 0);
    fix_reopen(f);
    rd_expect(f->b, K_TEXT, 4, 2, "0111111111111111111110", 1);
    rd_expect(f->b, K_RANDOM, 4, 99, "01110", 1);
    assert_int_equal(stored(f->b, 4), 23);
    /* Another cluster size over the same data is refused at start. */
    emm_backend_close(f->b);
    f->b = NULL;
    f->kv[0].value = "64K";
    assert_int_equal(emm_backend_open(&f->args, &f->b, f->err, sizeof(f->err)), 0);
    assert_int_equal(emm_backend_start(f->b), -EINVAL);
    fix_free(f);
}

/* 8 MiB of text trains a dictionary; it persists over zstd:file. */
static void
t_dict_auto(void **state)
{
    (void)state;
    struct fix *f = fix_new("zstd");
    const uint32_t total = 2048 + 256; /* pages: 8 MiB of samples, then more */

    fix_key(f, "zstd.dict", "auto");
    assert_int_equal(fix_open(f, "zstd:file"), 0);
    assert_true(info_num(f->b, "dict_id") == 0);
    for (uint32_t p = 0; p < total; p += 64)
        wr(f->b, K_TEXT, 1, p, 64, 1);
    double id = info_num(f->b, "dict_id");
    assert_true(id > 0);
    assert_int_equal(lower_flags(f, 1, 0, 16), 0);                      /* before: no dict */
    assert_int_equal(lower_flags(f, 1, total / 16 - 1, 16) & 2, 2);     /* after: dict */
    char *ones = malloc(total + 1);
    memset(ones, '1', total), ones[total] = '\0';
    rd_expect(f->b, K_TEXT, 1, 0, ones, 1);
    fix_reopen(f);
    assert_true(info_num(f->b, "dict_id") == id); /* loaded, not trained again */
    rd_expect(f->b, K_TEXT, 1, 0, ones, 1);
    wr(f->b, K_TEXT, 2, 0, 64, 1);
    assert_int_equal(lower_flags(f, 2, 0, 16) & 2, 2);
    rd_expect(f->b, K_TEXT, 2, 0, "1111111111111111111111111111111111111111", 1);
    /* dict = off still decodes clusters made with the stored dictionary. */
    emm_backend_close(f->b);
    f->b = NULL;
    f->kv[0].value = "off";
    assert_int_equal(fix_open(f, "zstd:file"), 0);
    rd_expect(f->b, K_TEXT, 1, 0, ones, 1);
    wr(f->b, K_TEXT, 3, 0, 16, 1);
    assert_int_equal(lower_flags(f, 3, 0, 16) & 2, 0);
    free(ones);
    fix_free(f);
}

static void
expect_config_error(const char *key, const char *value, const char *want)
{
    struct fix *f = fix_new("zstd");
    fix_key(f, key, value);
    f->args.spec = "zstd:memory";
    assert_true(emm_backend_open(&f->args, &f->b, f->err, sizeof(f->err)) < 0);
    if (!strstr(f->err, want))
        fail_msg("%s = %s: got \"%s\", want \"%s\"", key, value, f->err, want);
    fix_free(f);
}

static void
t_config_errors(void **state)
{
    (void)state;
    expect_config_error("zstd.cluster", "12K", "test.conf:11: zstd.cluster: '12K' is not a power of two");
    expect_config_error("zstd.cluster", "512K", "from 4K to 256K");
    expect_config_error("zstd.cluster", "2K", "from 4K to 256K");
    expect_config_error("zstd.level", "0", "'0' is not a level");
    expect_config_error("zstd.level", "20", "'20' is not a level");
    expect_config_error("zstd.level", "-6", "'-6' is not a level");
    expect_config_error("zstd.dict", "yes", "'yes' is not 'auto' or 'off'");
    expect_config_error("zstd.colour", "red", "unknown key");
    struct fix *f = fix_new("zstd");
    f->args.spec = "zstd";
    assert_true(emm_backend_open(&f->args, &f->b, f->err, sizeof(f->err)) < 0);
    assert_non_null(strstr(f->err, "filter 'zstd' needs a backend below it"));
    fix_free(f);
    /* The reserved object is refused. */
    f = open_mem(NULL);
    char page[PS] = {0};
    assert_int_equal(emm_backend_write(f->b, UINT64_MAX - 1, 0, 1, page), -EINVAL);
    fix_free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_crc32c),
        cmocka_unit_test(t_codec),
        cmocka_unit_test(t_roundtrip_4k),
        cmocka_unit_test(t_roundtrip_16k),
        cmocka_unit_test(t_roundtrip_64k),
        cmocka_unit_test(t_roundtrip_256k),
        cmocka_unit_test(t_levels),
        cmocka_unit_test(t_rmw),
        cmocka_unit_test(t_present_seek_stored),
        cmocka_unit_test(t_discard),
        cmocka_unit_test(t_threads_one_cluster),
        cmocka_unit_test(t_corrupt),
        cmocka_unit_test(t_info_ratio_zero),
        cmocka_unit_test(t_file_flags_restart),
        cmocka_unit_test(t_dict_auto),
        cmocka_unit_test(t_config_errors),
    };
    return cmocka_run_group_tests_name("zstd", tests, NULL, NULL);
}
