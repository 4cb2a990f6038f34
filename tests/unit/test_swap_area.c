/*
 * test_swap_area.c - the swap area format (swapfs/swap_area.c) and recovery
 * (swapfs/swap_index.c) on files in a mkdtemp directory: format/open round
 * trip, refused headers (corrupt byte, magic, version, page size, size),
 * foreign signatures with and without force, slot I/O and its checks, and
 * recovery after an unclean shutdown with the newest generation winning.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fiemap.h>
#include <linux/fs.h>

#include <cmocka.h>

#include "log.h"
#include "slot_alloc.h"
#include "slot_map.h"
#include "swap_area.h"
#include "swap_index.h"
#include "crc32c.h" /* to forge headers with a valid CRC */

static char tmp[256];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
group_setup(void **state)
{
    (void)state;
    emm_log_init("test_swap_area", 0, EMM_LOG_ERR + 1); /* quiet: refusals are expected */
    snprintf(tmp, sizeof(tmp), "/tmp/emm-test-swap-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *
tpath(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", tmp, name);
    return buf;
}

static void
pwrite_at(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

/* Overwrites bytes of the header; with fix_crc recomputes its CRC (field at 168). */
static void
patch_header(const char *path, uint64_t off, const void *bytes, size_t len, int fix_crc)
{
    unsigned char h[4096];
    int fd = open(path, O_RDWR);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, h, sizeof(h), 0), 4096);
    memcpy(h + off, bytes, len);
    if (fix_crc) {
        memset(h + 168, 0, 4);
        uint32_t c = emm_crc32c(0, h, 4096);
        for (int i = 0; i < 4; i++)
            h[168 + i] = (unsigned char)(c >> (8 * i));
    }
    assert_int_equal(pwrite(fd, h, sizeof(h), 0), 4096);
    close(fd);
}

static void *
apage(void)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 4096, 4096), 0);
    return p;
}

static void
fill(void *page, uint64_t obj, uint64_t index, uint64_t gen)
{
    unsigned char *p = page; /* may be unaligned */
    for (size_t i = 0; i < 4096 / 8; i++) {
        uint64_t v = obj * 1000003u ^ index * 7919u ^ gen * 31u ^ i;
        memcpy(p + 8 * i, &v, 8);
    }
}

static void
test_round_trip(void **state)
{
    (void)state;
    char p[300];
    uint8_t uuid[16];
    struct swp_area *a;

    tpath("rt", p, sizeof(p));
    assert_int_equal(swp_area_format(p, 1 << 20, "round-trip", 0, uuid), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 1 << 20);
    assert_true((uint64_t)st.st_blocks * 512 >= 1 << 20); /* preallocated */

    assert_int_equal(swp_area_open(p, 0, &a), 0);
    const struct swp_area_info *in = swp_area_info(a);
    assert_memory_equal(in->uuid, uuid, 16);
    assert_string_equal(in->label, "round-trip");
    assert_int_equal(in->size_pages, 256);
    assert_int_equal(in->desc_pages, 2);
    assert_int_equal(in->nslots, 253);
    assert_int_equal(in->data_start, 3);
    assert_true(in->was_clean);
    assert_int_equal(in->open_count, 1);
    assert_int_equal(swp_area_close(a), 0);

    /* a second read-write open is refused while the first holds the area */
    struct swp_area *b;
    assert_int_equal(swp_area_open(p, 0, &a), 0);
    assert_int_equal(swp_area_open(p, 0, &b), -EBUSY);
    assert_int_equal(swp_area_open(p, SWP_OPEN_RDONLY, &b), 0);
    assert_false(swp_area_info(b)->was_clean); /* in use: marked dirty */
    swp_area_abandon(b);
    assert_int_equal(swp_area_close(a), 0);

    assert_int_equal(swp_area_open(p, SWP_OPEN_RDONLY | SWP_OPEN_BUFFERED, &a), 0);
    assert_true(swp_area_info(a)->was_clean);
    assert_int_equal(swp_area_info(a)->open_count, 2);
    assert_false(swp_area_info(a)->direct);
    assert_int_equal(swp_area_close(a), 0);

    /* too small, label too long, missing size for a new file */
    assert_int_equal(swp_area_format(tpath("tiny", p, sizeof(p)), 8192, NULL, 0, NULL), -EINVAL);
    assert_int_equal(access(p, F_OK), -1); /* not left behind */
    char longlabel[80];
    memset(longlabel, 'x', sizeof(longlabel) - 1);
    longlabel[79] = 0;
    assert_int_equal(swp_area_format(tpath("ll", p, sizeof(p)), 1 << 20, longlabel, 0, NULL),
                     -ENAMETOOLONG);
    assert_int_equal(swp_area_format(tpath("nosize", p, sizeof(p)), 0, NULL, 0, NULL), -ENOENT);
    /* smallest area: header, one descriptor page, one slot */
    assert_int_equal(swp_area_format(tpath("min", p, sizeof(p)), 3 * 4096, NULL, 0, NULL), 0);
    assert_int_equal(swp_area_open(p, 0, &a), 0);
    assert_int_equal(swp_area_info(a)->nslots, 1);
    assert_int_equal(swp_area_close(a), 0);
}

static void
test_refused_headers(void **state)
{
    (void)state;
    char p[300];
    struct swp_area *a;
    unsigned char b;

    tpath("bad", p, sizeof(p));
    /* one flipped byte anywhere in the header page: the CRC catches it */
    assert_int_equal(swp_area_format(p, 1 << 20, "x", 0, NULL), 0);
    b = 0x5a;
    patch_header(p, 3000, &b, 1, 0);
    assert_int_equal(swp_area_open(p, 0, &a), -EUCLEAN);
    assert_int_equal(swp_area_open(p, SWP_OPEN_RDONLY, &a), -EUCLEAN);
    assert_null(a);
    /* ... and in a field */
    assert_int_equal(swp_area_format(p, 1 << 20, "x", SWP_FORMAT_FORCE, NULL), 0);
    b = 0x01;
    patch_header(p, 64, &b, 1, 0); /* nslots */
    assert_int_equal(swp_area_open(p, 0, &a), -EUCLEAN);

    /* wrong magic (also refused by the probe: format without force still works
     * because the magic is gone) */
    assert_int_equal(swp_area_format(p, 1 << 20, "x", SWP_FORMAT_FORCE, NULL), 0);
    patch_header(p, 0, "EMMSWAP2", 8, 1);
    assert_int_equal(swp_area_open(p, 0, &a), -EINVAL);

    /* a later version, with a valid CRC */
    assert_int_equal(swp_area_format(p, 1 << 20, "x", SWP_FORMAT_FORCE, NULL), 0);
    unsigned char v2[4] = {2, 0, 0, 0};
    patch_header(p, 8, v2, 4, 1);
    assert_int_equal(swp_area_open(p, 0, &a), -EINVAL);

    /* another page size, with a valid CRC */
    assert_int_equal(swp_area_format(p, 1 << 20, "x", SWP_FORMAT_FORCE, NULL), 0);
    unsigned char ps[4] = {0, 0x20, 0, 0}; /* 8192 */
    patch_header(p, 12, ps, 4, 1);
    assert_int_equal(swp_area_open(p, 0, &a), -EINVAL);

    /* impossible geometry, with a valid CRC: more slots than pages */
    assert_int_equal(swp_area_format(p, 1 << 20, "x", SWP_FORMAT_FORCE, NULL), 0);
    unsigned char ns[8] = {0, 0x10, 0, 0, 0, 0, 0, 0};
    patch_header(p, 64, ns, 8, 1);
    assert_int_equal(swp_area_open(p, 0, &a), -EUCLEAN);

    /* the file is smaller than the header says */
    assert_int_equal(swp_area_format(p, 1 << 20, "x", SWP_FORMAT_FORCE, NULL), 0);
    assert_int_equal(truncate(p, 512 << 10), 0);
    assert_int_equal(swp_area_open(p, 0, &a), -ERANGE);
    assert_int_equal(swp_area_open(p, SWP_OPEN_RDONLY, &a), -ERANGE);

    /* not an area at all, and not a file */
    int fd = open(tpath("zeros", p, sizeof(p)), O_CREAT | O_WRONLY, 0600);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    close(fd);
    assert_int_equal(swp_area_open(p, 0, &a), -EINVAL);
    assert_int_equal(swp_area_open(tmp, 0, &a) < 0, 1);
    assert_int_equal(swp_area_open(tpath("missing", p, sizeof(p)), 0, &a), -ENOENT);
}

static void
check_signature(const char *name, uint64_t off, const void *magic, size_t len)
{
    char p[300];
    struct swp_area *a;
    int fd = open(tpath(name, p, sizeof(p)), O_CREAT | O_WRONLY, 0600);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    close(fd);
    pwrite_at(p, off, magic, len);
    fd = open(p, O_RDONLY);
    const char *where = NULL;
    assert_non_null(swp_area_probe(fd, &where));
    assert_non_null(where);
    close(fd);
    assert_int_equal(swp_area_format(p, 0, NULL, 0, NULL), -EEXIST);
    assert_int_equal(swp_area_open(p, 0, &a), -EINVAL); /* untouched */
    assert_int_equal(swp_area_format(p, 0, "forced", SWP_FORMAT_FORCE, NULL), 0);
    /* the old signature is gone */
    fd = open(p, O_RDONLY);
    const char *sig = swp_area_probe(fd, NULL);
    assert_non_null(sig);
    assert_string_equal(sig, "emm swap area");
    close(fd);
    assert_int_equal(swp_area_open(p, 0, &a), 0);
    assert_string_equal(swp_area_info(a)->label, "forced");
    assert_int_equal(swp_area_close(a), 0);
}

static void
test_signatures(void **state)
{
    (void)state;
    check_signature("ext4", 1080, "\x53\xef", 2);
    check_signature("swap2", 4086, "SWAPSPACE2", 10);
    check_signature("swap1", 4086, "SWAP-SPACE", 10);
    check_signature("xfs", 0, "XFSB", 4);
    check_signature("btrfs", 65600, "_BHRfS_M", 8);

    /* an emm area is not reformatted by accident either */
    char p[300];
    assert_int_equal(swp_area_format(tpath("again", p, sizeof(p)), 1 << 20, NULL, 0, NULL), 0);
    assert_int_equal(swp_area_format(p, 0, NULL, 0, NULL), -EEXIST);
    assert_int_equal(swp_area_format(p, 0, NULL, SWP_FORMAT_FORCE, NULL), 0);
}

static void
test_slot_io(void **state)
{
    (void)state;
    char p[300];
    struct swp_area *a;
    unsigned char *w = apage(), *r = apage();
    unsigned char *raw = malloc(4096 + 1), *un = raw + 1; /* unaligned */

    tpath("io", p, sizeof(p));
    assert_int_equal(swp_area_format(p, 1 << 20, NULL, 0, NULL), 0);
    assert_int_equal(swp_area_open(p, 0, &a), 0);
    uint64_t n = swp_area_info(a)->nslots;

    for (uint64_t s = 0; s < n; s++) {
        fill(w, 7, s * 3, 1);
        assert_int_equal(swp_area_write_slot(a, s, 7, s * 3, swp_area_next_gen(a), w), 0);
    }
    for (uint64_t s = 0; s < n; s++) {
        fill(w, 7, s * 3, 1);
        assert_int_equal(swp_area_read_slot(a, s, 7, s * 3, r), 0);
        assert_memory_equal(r, w, 4096);
    }
    /* unaligned buffers go through the bounce page */
    fill(un, 9, 1, 1);
    assert_int_equal(swp_area_write_slot(a, 4, 9, 1, swp_area_next_gen(a), un), 0);
    memset(un, 0, 4096);
    assert_int_equal(swp_area_read_slot(a, 4, 9, 1, un), 0);
    fill(w, 9, 1, 1);
    assert_memory_equal(un, w, 4096);

    /* the descriptor names the page: another (object, index) is an error */
    assert_int_equal(swp_area_read_slot(a, 4, 9, 2, r), -EIO);
    assert_int_equal(swp_area_read_slot(a, 4, 8, 1, r), -EIO);
    struct swp_desc d;
    assert_int_equal(swp_area_read_desc(a, 4, &d), 0);
    assert_int_equal(d.obj, 9);
    assert_int_equal(d.index, 1);
    /* cleared slots read as empty */
    assert_int_equal(swp_area_clear_slot(a, 4), 0);
    assert_int_equal(swp_area_read_slot(a, 4, 9, 1, r), -ENODATA);
    /* bad arguments */
    assert_int_equal(swp_area_write_slot(a, n, 1, 1, 1, w), -EINVAL);
    assert_int_equal(swp_area_write_slot(a, 0, 1, 1, 0, w), -EINVAL);
    assert_int_equal(swp_area_read_slot(a, n, 1, 1, r), -EINVAL);
    assert_int_equal(swp_area_sync(a), 0);
    assert_int_equal(swp_area_close(a), 0);

    /* data damaged on disk behind our back fails its CRC */
    assert_int_equal(swp_area_open(p, 0, &a), 0);
    uint64_t off = (swp_area_info(a)->data_start + 10) * 4096 + 100;
    pwrite_at(p, off, "garbage", 7);
    assert_int_equal(swp_area_read_slot(a, 10, 7, 30, r), -EIO);
    assert_int_equal(swp_area_read_slot(a, 11, 7, 33, r), 0);
    assert_int_equal(swp_area_close(a), 0);

    /* read-only opens refuse writes */
    assert_int_equal(swp_area_open(p, SWP_OPEN_RDONLY, &a), 0);
    assert_int_equal(swp_area_write_slot(a, 0, 1, 1, 1, w), -EROFS);
    assert_int_equal(swp_area_read_slot(a, 11, 7, 33, r), 0);
    swp_area_abandon(a);
    free(w);
    free(r);
    free(raw);
}

/* A cluster in one vectored write: data and descriptors across a descriptor
 * page boundary, read back and found again by a scan after a crash. */
static int
count_fn(void *arg, uint64_t slot, const struct swp_desc *d)
{
    uint64_t *seen = arg;
    if (d->obj == 5 && d->index == 1000 + (slot - 100))
        (*seen)++;
    return 0;
}

static void
test_write_slots(void **state)
{
    (void)state;
    char p[300];
    struct swp_area *a;
    enum { N = 200 }; /* slots 100..299 span descriptor pages 1..3 (128 per page) */
    unsigned char *pages[N], *r = apage();
    const void *cpages[N];
    for (unsigned i = 0; i < N; i++) {
        pages[i] = apage();
        fill(pages[i], 5, 1000 + i, 2);
        cpages[i] = pages[i];
    }
    tpath("wslots", p, sizeof(p));
    assert_int_equal(swp_area_format(p, 4 << 20, NULL, 0, NULL), 0);
    assert_int_equal(swp_area_open(p, 0, &a), 0);
    uint64_t gen = swp_area_next_gen(a);
    assert_int_equal(swp_area_write_slots(a, 100, N, 5, 1000, gen, cpages), 0);
    for (unsigned i = 0; i < N; i += 37) {
        assert_int_equal(swp_area_read_slot(a, 100 + i, 5, 1000 + i, r), 0);
        assert_memory_equal(r, pages[i], 4096);
        struct swp_desc d;
        assert_int_equal(swp_area_read_desc(a, 100 + i, &d), 0);
        assert_int_equal(d.gen, gen + i);
    }
    unsigned char *many = aligned_alloc(4096, (size_t)N * 4096);
    assert_int_equal(swp_area_read_slots(a, 100, N, 5, 1000, many), 0);
    for (unsigned i = 0; i < N; i++)
        assert_memory_equal(many + (size_t)i * 4096, pages[i], 4096);
    assert_int_equal(swp_area_read_slots(a, 100, N, 5, 1001, many), -EIO); /* wrong index */
    assert_int_equal(swp_area_read_slots(a, 99, 2, 5, 999, many), -EIO);   /* an empty slot */
    free(many);
    assert_int_equal(swp_area_read_slot(a, 99, 5, 999, r), -ENODATA);
    assert_int_equal(swp_area_read_slot(a, 300, 5, 1200, r), -ENODATA);
    /* out of range, too many, read-only */
    uint64_t n = swp_area_info(a)->nslots;
    assert_int_equal(swp_area_write_slots(a, n - 10, 20, 5, 0, gen + N, cpages), -EINVAL);
    assert_int_equal(swp_area_write_slots(a, 0, SWP_WRITE_MAX + 1, 5, 0, gen + N, cpages),
                     -EINVAL);
    swp_area_abandon(a); /* a crash: the scan finds every page */
    assert_int_equal(swp_area_open(p, SWP_OPEN_RDONLY, &a), 0);
    uint64_t seen = 0;
    struct swp_scan_stats st;
    assert_int_equal(swp_area_scan(a, SWP_SCAN_VERIFY, count_fn, &seen, &st), 0);
    assert_int_equal(seen, N);
    assert_int_equal(st.bad_data, 0);
    swp_area_abandon(a);
    for (unsigned i = 0; i < N; i++)
        free(pages[i]);
    free(r);
}

struct expect {
    uint64_t obj, index, slot, gen;
};

static void
recover_into(const char *p, unsigned flags, struct swp_area **a, struct swp_alloc **al,
             struct swp_index **ix, struct swp_recover_stats *rs)
{
    assert_int_equal(swp_area_open(p, flags, a), 0);
    assert_int_equal(swp_alloc_create(swp_area_info(*a)->nslots, al), 0);
    assert_int_equal(swp_index_create(ix), 0);
    assert_int_equal(swp_index_recover(*a, *al, *ix, rs), 0);
}

static void
test_crash_recovery(void **state)
{
    (void)state;
    char p[300];
    struct swp_area *a;
    struct swp_alloc *al;
    struct swp_index *ix;
    struct swp_recover_stats rs;
    unsigned char *w = apage(), *r = apage();
    struct expect want[40];
    int nwant = 0;

    tpath("crash", p, sizeof(p));
    assert_int_equal(swp_area_format(p, 1 << 20, NULL, 0, NULL), 0);
    recover_into(p, 0, &a, &al, &ix, &rs);
    assert_int_equal(rs.used, 0);

    /* objects 1 and 2, pages 0..9 each, in slots from the allocator; slots 0
     * and 1 are kept back for the rewrites below */
    assert_int_equal(swp_alloc_mark(al, 0), 0);
    assert_int_equal(swp_alloc_mark(al, 1), 0);
    for (uint64_t obj = 1; obj <= 2; obj++) {
        for (uint64_t i = 0; i < 10; i++) {
            uint64_t s, g = swp_area_next_gen(a);
            struct swp_map *m;
            assert_int_equal(swp_alloc_get(al, &s), 0);
            fill(w, obj, i * 1000, g);
            assert_int_equal(swp_area_write_slot(a, s, obj, i * 1000, g, w), 0);
            assert_int_equal(swp_index_get(ix, obj, 1, &m), 0);
            assert_int_equal(swp_map_insert(m, i * 1000, s, NULL), 0);
            want[nwant++] = (struct expect){obj, i * 1000, s, g};
        }
    }
    /* Rewrite pages 0..4 of object 1 into new slots and "crash" before the old
     * descriptors are cleared: two copies each on disk. Pages 0 and 1 go into
     * slots 0 and 1, below their old ones, pages 2..4 above theirs, so the scan
     * meets the newer copy first for some and last for others. */
    for (int k = 0; k < 5; k++) {
        uint64_t s, g = swp_area_next_gen(a);
        if (k < 2) {
            s = (uint64_t)k;
        } else {
            assert_int_equal(swp_alloc_get(al, &s), 0);
        }
        fill(w, 1, (uint64_t)k * 1000, g);
        assert_int_equal(swp_area_write_slot(a, s, 1, (uint64_t)k * 1000, g, w), 0);
        want[k].slot = s;
        want[k].gen = g;
    }
    /* an older generation written later into a lower slot must still lose */
    uint64_t loser;
    assert_int_equal(swp_alloc_get(al, &loser), 0);
    fill(w, 2, 9000, 1);
    assert_int_equal(swp_area_write_slot(a, loser, 2, 9000, 1, w), 0);
    uint64_t maxgen = swp_area_next_gen(a) - 1;
    swp_index_destroy(ix);
    swp_alloc_destroy(al);
    swp_area_abandon(a); /* kill -9: the header still says "in use" */

    /* info-style read-only scan: sees the winners, changes nothing */
    recover_into(p, SWP_OPEN_RDONLY, &a, &al, &ix, &rs);
    assert_false(swp_area_info(a)->was_clean);
    assert_int_equal(rs.used, 20);
    assert_int_equal(rs.stale, 6);
    swp_index_destroy(ix);
    swp_alloc_destroy(al);
    swp_area_abandon(a);

    recover_into(p, 0, &a, &al, &ix, &rs);
    assert_false(swp_area_info(a)->was_clean);
    assert_int_equal(rs.used, 20);
    assert_int_equal(rs.stale, 6);
    assert_int_equal(rs.objects, 2);
    assert_int_equal(rs.max_gen, maxgen);
    assert_int_equal(swp_alloc_used(al), 20);
    assert_true(swp_area_next_gen(a) > maxgen);
    for (int k = 0; k < nwant; k++) {
        struct swp_map *m;
        uint64_t s;
        assert_int_equal(swp_index_get(ix, want[k].obj, 0, &m), 0);
        assert_int_equal(swp_map_lookup(m, want[k].index, &s), 0);
        assert_int_equal(s, want[k].slot);
        assert_true(swp_alloc_test(al, s));
        assert_int_equal(swp_area_read_slot(a, s, want[k].obj, want[k].index, r), 0);
        fill(w, want[k].obj, want[k].index, want[k].gen);
        assert_memory_equal(r, w, 4096);
    }
    /* the losers were cleared: a second scan finds no stale copies */
    assert_int_equal(swp_area_read_slot(a, loser, 2, 9000, r), -ENODATA);
    uint64_t g2 = swp_area_next_gen(a);
    swp_index_destroy(ix);
    swp_alloc_destroy(al);
    assert_int_equal(swp_area_close(a), 0);

    recover_into(p, 0, &a, &al, &ix, &rs);
    assert_true(swp_area_info(a)->was_clean);
    assert_int_equal(swp_area_info(a)->last_gen, g2);
    assert_int_equal(rs.used, 20);
    assert_int_equal(rs.stale, 0);
    assert_true(swp_area_next_gen(a) > g2);

    /* damaged data after another crash: the page is dropped, not served */
    uint64_t bad = want[7].slot;
    swp_index_destroy(ix);
    swp_alloc_destroy(al);
    uint64_t off = (swp_area_info(a)->data_start + bad) * 4096;
    swp_area_abandon(a);
    pwrite_at(p, off, "junk", 4);
    recover_into(p, 0, &a, &al, &ix, &rs);
    assert_int_equal(rs.bad_data, 1);
    assert_int_equal(rs.used, 19);
    assert_false(swp_alloc_test(al, bad));
    struct swp_desc d;
    assert_int_equal(swp_area_read_desc(a, bad, &d), 0);
    assert_int_equal(d.gen, 0);
    swp_index_destroy(ix);
    swp_alloc_destroy(al);
    assert_int_equal(swp_area_close(a), 0);
    free(w);
    free(r);
}

/* Four threads write interleaved slots, so they share every descriptor page:
 * no descriptor update may be lost. */
struct writer {
    struct swp_area *a;
    int me;
    int rc;
};

static void *
writer_fn(void *arg)
{
    struct writer *w = arg;
    unsigned char *page = apage();
    uint64_t n = swp_area_info(w->a)->nslots;

    for (int round = 0; round < 3; round++)
        for (uint64_t s = (uint64_t)w->me; s < n && w->rc == 0; s += 4) {
            fill(page, (uint64_t)w->me, s, (uint64_t)round);
            w->rc = swp_area_write_slot(w->a, s, (uint64_t)w->me, s, swp_area_next_gen(w->a), page);
        }
    free(page);
    return NULL;
}

static void
test_concurrent_writes(void **state)
{
    (void)state;
    char p[300];
    struct swp_area *a;
    struct swp_alloc *al;
    struct swp_index *ix;
    struct swp_recover_stats rs;
    struct writer w[4];
    pthread_t t[4];
    unsigned char *r = apage(), *e = apage();

    tpath("threads", p, sizeof(p));
    assert_int_equal(swp_area_format(p, 1 << 20, NULL, 0, NULL), 0);
    assert_int_equal(swp_area_open(p, 0, &a), 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct writer){.a = a, .me = i};
        assert_int_equal(pthread_create(&t[i], NULL, writer_fn, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].rc, 0);
    }
    uint64_t n = swp_area_info(a)->nslots;
    swp_area_abandon(a);
    recover_into(p, 0, &a, &al, &ix, &rs);
    assert_int_equal(rs.used, n);
    assert_int_equal(rs.bad_data, 0);
    for (uint64_t s = 0; s < n; s++) {
        assert_int_equal(swp_area_read_slot(a, s, s % 4, s, r), 0);
        fill(e, s % 4, s, 2);
        assert_memory_equal(r, e, 4096);
    }
    swp_index_destroy(ix);
    swp_alloc_destroy(al);
    assert_int_equal(swp_area_close(a), 0);
    free(r);
    free(e);
}

static void
test_sparse_file(void **state)
{
    (void)state;
    char p[300];
    struct swp_area *a;
    struct stat st;

    tpath("sparse", p, sizeof(p));
    assert_int_equal(swp_area_format(p, 4 << 20, NULL, 0, NULL), 0);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 2 << 20),
                     0);
    close(fd);
    assert_int_equal(stat(p, &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 < 4 << 20);
    assert_int_equal(swp_area_open(p, 0, &a), 0); /* holes filled */
    assert_int_equal(stat(p, &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 >= 4 << 20);
    assert_int_equal(swp_area_close(a), 0);
}

/* A formatted swap file holds written blocks only: no extent is left
 * "unwritten" by fallocate (the first swap write to one would convert it in
 * the filesystem's journal). Skipped where FIEMAP is not answered (tmpfs). */
static void
test_format_writes_blocks(void **state)
{
    char p[300];
    (void)state;
    tpath("written", p, sizeof(p));
    assert_int_equal(swp_area_format(p, 4u << 20, NULL, 0, NULL), 0);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    enum { NEXT = 64 };
    struct fiemap *fm = calloc(1, sizeof(*fm) + NEXT * sizeof(struct fiemap_extent));
    assert_non_null(fm);
    uint64_t start = 0, mapped = 0;
    int unwritten = 0, rc = 0;
    for (;;) {
        memset(fm, 0, sizeof(*fm));
        fm->fm_start = start;
        fm->fm_length = ~0ull - start;
        fm->fm_flags = FIEMAP_FLAG_SYNC;
        fm->fm_extent_count = NEXT;
        if ((rc = ioctl(fd, FS_IOC_FIEMAP, fm)) < 0 || fm->fm_mapped_extents == 0)
            break;
        int last = 0;
        for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
            const struct fiemap_extent *e = &fm->fm_extents[i];
            unwritten += (e->fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0;
            mapped += e->fe_length;
            start = e->fe_logical + e->fe_length;
            last |= (e->fe_flags & FIEMAP_EXTENT_LAST) != 0;
        }
        if (last)
            break;
    }
    free(fm);
    close(fd);
    unlink(p);
    if (rc < 0) {
        print_message("FIEMAP not answered here (%s): skipped\n", strerror(errno));
        return;
    }
    assert_int_equal(mapped, 4u << 20);
    assert_int_equal(unwritten, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_writes_blocks),
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_refused_headers),
        cmocka_unit_test(test_signatures),    cmocka_unit_test(test_slot_io),
        cmocka_unit_test(test_crash_recovery), cmocka_unit_test(test_concurrent_writes),
        cmocka_unit_test(test_sparse_file),   cmocka_unit_test(test_write_slots),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
