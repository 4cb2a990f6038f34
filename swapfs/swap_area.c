/*
 * swap_area.c - the swap area format (header, slot descriptors, data slots),
 * format/open/close, and page I/O: synchronous, or asynchronous through the
 * area's swap_io queue with a committer thread that writes the descriptors of
 * completed writes in groups. See swap_area.h for the layout and
 * docs/swapfs.md for the fields.
 *
 * Locking: data I/O is lock-free (the caller owns the slot). A descriptor update
 * is a read-modify-write of its 4 KiB descriptor page under the stripe mutex for
 * that page, held across the page's write; each stripe caches the last page it
 * touched (write-through), so consecutive slots cost one write, not a read and
 * a write. The committer holds several stripes at once (the only thread that
 * does, so nobody waits on it while holding one). commit_lock guards the
 * committer's list and counters. The generation counter is atomic. Format,
 * open, close and scan run alone; close drains the queue and the committer.
 */
#include "byteorder.h"
#include "swap_area.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "crc32c.h"
#include "swap_io.h"

#define SWP_STRIPES 32u
#define SWP_NO_PAGE UINT64_MAX
#define SCAN_CHUNK_PAGES 64u /* descriptor pages read at once by a scan */

/* Header field offsets (docs/swapfs.md has the table). */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_PAGE_SIZE = 12,
    H_UUID = 16,
    H_SIZE_PAGES = 32,
    H_DESC_START = 40,
    H_DESC_PAGES = 48,
    H_DATA_START = 56,
    H_NSLOTS = 64,
    H_STATE = 72,
    H_FLAGS = 76,
    H_OPEN_COUNT = 80,
    H_LAST_GEN = 88,
    H_FORMAT_TIME = 96,
    H_LABEL = 104,
    H_CRC = 168,
};
#define SWP_STATE_CLEAN 1u
#define SWP_STATE_DIRTY 0u

struct swp_stripe {
    pthread_mutex_t lock;
    uint64_t page; /* descriptor page cached in buf, or SWP_NO_PAGE */
    unsigned char *buf;
};

struct swp_area {
    int fd;
    struct swp_area_info info;
    char *path;
    _Atomic uint64_t next_gen;
    struct swp_stripe stripes[SWP_STRIPES];
    pthread_mutex_t bounce_lock;
    unsigned char *bounce;
    unsigned char *hdr; /* the header page as last written */
    struct swp_io *io;  /* read-write opens: the asynchronous queue */
    /* group commit: written slots whose descriptors are due (commit_lock) */
    pthread_t committer;
    int has_committer, commit_stop, committing;
    pthread_mutex_t commit_lock;
    pthread_cond_t commit_cond;
    STAILQ_HEAD(, swp_area_write) commit; /* writes waiting for the group commit */
    uint64_t commits, commit_pages; /* groups, descriptor pages written by them */
};

static uint32_t
hdr_crc(const unsigned char *page)
{
    static const unsigned char zero[4];
    uint32_t c = emm_crc32c(0, page, H_CRC);
    c = emm_crc32c(c, zero, 4);
    return emm_crc32c(c, page + H_CRC + 4, SWP_PAGE_SIZE - H_CRC - 4);
}

static void
desc_encode(unsigned char *p, const struct swp_desc *d)
{
    if (d->gen == 0) {
        memset(p, 0, SWP_DESC_SIZE);
        return;
    }
    emm_put_le64(p, d->obj);
    emm_put_le64(p + 8, d->index);
    emm_put_le64(p + 16, d->gen);
    emm_put_le32(p + 24, d->data_crc);
    emm_put_le32(p + 28, emm_crc32c(0, p, 28));
}

/* 1 valid, 0 empty, -1 torn (non-zero bytes with a wrong CRC). */
static int
desc_decode(const unsigned char *p, struct swp_desc *d)
{
    memset(d, 0, sizeof(*d));
    if (emm_get_le32(p + 28) != emm_crc32c(0, p, 28) || emm_get_le64(p + 16) == 0) {
        for (unsigned i = 0; i < SWP_DESC_SIZE; i++)
            if (p[i])
                return -1;
        return 0;
    }
    d->obj = emm_get_le64(p);
    d->index = emm_get_le64(p + 8);
    d->gen = emm_get_le64(p + 16);
    d->data_crc = emm_get_le32(p + 24);
    return 1;
}

/* ---- plain I/O ------------------------------------------------------------ */

static int
pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* short area */
        done += (size_t)n;
    }
    return 0;
}

static int
pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

static int
dev_size(int fd, const struct stat *st, uint64_t *size, int *blkdev)
{
    *blkdev = 0;
    if (S_ISBLK(st->st_mode)) {
        *blkdev = 1;
        if (ioctl(fd, BLKGETSIZE64, size) < 0)
            return -errno;
        return 0;
    }
    if (S_ISREG(st->st_mode)) {
        *size = (uint64_t)st->st_size;
        return 0;
    }
    return -ENOTBLK;
}

static void *
page_alloc(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, SWP_PAGE_SIZE, len) != 0)
        return NULL;
    memset(p, 0, len);
    return p;
}

/* ---- probing ---------------------------------------------------------------- */

const char *
swp_area_probe(int fd, const char **where)
{
    static const struct {
        uint64_t off;
        const char *magic;
        size_t len;
        const char *name, *where;
    } sigs[] = {
        {1080, "\x53\xef", 2, "ext2/3/4 filesystem", "magic 0xEF53 at offset 1080"},
        {0, "XFSB", 4, "XFS filesystem", "magic \"XFSB\" at offset 0"},
        {65600, "_BHRfS_M", 8, "btrfs filesystem", "magic \"_BHRfS_M\" at offset 65600"},
        {4086, "SWAPSPACE2", 10, "Linux swap area", "signature \"SWAPSPACE2\" at offset 4086"},
        {4086, "SWAP-SPACE", 10, "Linux swap area", "signature \"SWAP-SPACE\" at offset 4086"},
        {0, SWP_MAGIC, 8, "emm swap area", "magic \"" SWP_MAGIC "\" at offset 0"},
    };
    char buf[16];

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        ssize_t n = pread(fd, buf, sigs[i].len, (off_t)sigs[i].off);
        if (n == (ssize_t)sigs[i].len && memcmp(buf, sigs[i].magic, sigs[i].len) == 0) {
            if (where)
                *where = sigs[i].where;
            return sigs[i].name;
        }
    }
    return NULL;
}

/* ---- format ------------------------------------------------------------------ */

void
swp_uuid_str(const uint8_t u[16], char buf[37])
{
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
             u[13], u[14], u[15]);
}

static int
make_uuid(uint8_t u[16])
{
    size_t done = 0;
    while (done < 16) {
        ssize_t n = getrandom(u + done, 16 - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    return 0;
}

/* Slots and descriptor pages for an area of size_pages. */
static void
geometry(uint64_t size_pages, uint64_t *desc_pages, uint64_t *nslots)
{
    uint64_t n = (size_pages - 1) / (SWP_DESC_PER_PAGE + 1) * SWP_DESC_PER_PAGE;
    uint64_t rest = (size_pages - 1) % (SWP_DESC_PER_PAGE + 1);
    if (rest > 1)
        n += rest - 1; /* one more descriptor page for the leftover slots */
    *nslots = n;
    *desc_pages = (n + SWP_DESC_PER_PAGE - 1) / SWP_DESC_PER_PAGE;
}

/* Zeroes pages [first, first+count) of fd. */
static int
zero_pages(int fd, uint64_t first, uint64_t count)
{
    const uint64_t chunk = 256; /* 1 MiB */
    unsigned char *z = page_alloc(chunk * SWP_PAGE_SIZE);
    int rc = 0;

    if (!z)
        return -ENOMEM;
    while (count && rc == 0) {
        uint64_t n = count < chunk ? count : chunk;
        rc = pwrite_full(fd, z, n * SWP_PAGE_SIZE, first * SWP_PAGE_SIZE);
        first += n;
        count -= n;
    }
    free(z);
    return rc;
}

static int
format_fd(int fd, const char *path, uint64_t size, const char *label, uint8_t uuid_out[16])
{
    uint64_t size_pages = size / SWP_PAGE_SIZE, desc_pages, nslots;
    unsigned char *h;
    int rc;

    if (size_pages < SWP_MIN_PAGES) {
        emm_err("%s: %llu bytes is too small for a swap area (at least %u pages)", path,
                (unsigned long long)size, SWP_MIN_PAGES);
        return -EINVAL;
    }
    geometry(size_pages, &desc_pages, &nslots);
    h = page_alloc(SWP_PAGE_SIZE);
    if (!h)
        return -ENOMEM;
    memcpy(h + H_MAGIC, SWP_MAGIC, 8);
    emm_put_le32(h + H_VERSION, SWP_VERSION);
    emm_put_le32(h + H_PAGE_SIZE, SWP_PAGE_SIZE);
    rc = make_uuid(h + H_UUID);
    if (rc < 0) {
        free(h);
        return rc;
    }
    emm_put_le64(h + H_SIZE_PAGES, size_pages);
    emm_put_le64(h + H_DESC_START, 1);
    emm_put_le64(h + H_DESC_PAGES, desc_pages);
    emm_put_le64(h + H_DATA_START, 1 + desc_pages);
    emm_put_le64(h + H_NSLOTS, nslots);
    emm_put_le32(h + H_STATE, SWP_STATE_CLEAN);
    emm_put_le64(h + H_FORMAT_TIME, (uint64_t)time(NULL));
    if (label)
        memcpy(h + H_LABEL, label, strlen(label)); /* checked < SWP_LABEL_MAX */
    emm_put_le32(h + H_CRC, hdr_crc(h));

    /* Old signatures and descriptors first, the header last: a format cut short
     * leaves no valid header. Page 16 holds btrfs's superblock. */
    uint64_t wipe = 1 + desc_pages > 17 ? 1 + desc_pages : 17;
    if (wipe > size_pages)
        wipe = size_pages;
    rc = zero_pages(fd, 0, wipe);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    if (rc == 0)
        rc = pwrite_full(fd, h, SWP_PAGE_SIZE, 0);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (rc < 0)
        emm_err("%s: writing the swap area: %s", path, strerror(-rc));
    else if (uuid_out)
        memcpy(uuid_out, h + H_UUID, 16);
    free(h);
    return rc;
}

/* Allocates [0, size) of a regular file; zero-fills where fallocate is missing. */
static int
preallocate(int fd, const char *path, uint64_t from, uint64_t size)
{
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno != EOPNOTSUPP) {
        int rc = -errno;
        emm_err("%s: fallocate of %llu bytes: %s", path, (unsigned long long)size,
                strerror(errno));
        return rc;
    }
    emm_notice("%s: the filesystem has no fallocate; writing zeros instead", path);
    if (from > size)
        from = size;
    return zero_pages(fd, from / SWP_PAGE_SIZE, (size - from + SWP_PAGE_SIZE - 1) / SWP_PAGE_SIZE);
}

/*
 * Writes zeros over the whole file, through O_DIRECT when the filesystem
 * allows it (no page cache to fill). fallocate leaves *unwritten* extents
 * (ext4, XFS): every first write to one then converts it in the journal at
 * completion, which made swap writes ~1.5x slower than over written blocks.
 * A format is rare; writing the area once makes every later swap write a
 * plain overwrite.
 */
static int
write_zeros(const char *path, uint64_t size)
{
    int fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0)
        fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        emm_err("%s: %s", path, strerror(errno));
        return rc;
    }
    int rc = zero_pages(fd, 0, size / SWP_PAGE_SIZE);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    if (rc < 0)
        emm_err("%s: writing zeros over the area: %s", path, strerror(-rc));
    close(fd);
    return rc;
}

/* Bytes of data a blank check reads at most before it calls a file non-blank. */
#define BLANK_SCAN_MAX (UINT64_C(64) << 20)
#define BLANK_DEV_SCAN (UINT64_C(16) << 20) /* of a device: its first 16 MiB */

/* 1 if [off, off+len) of fd reads as zeros, 0 if not, -errno. */
static int
range_zero(int fd, uint64_t off, uint64_t len, unsigned char *buf, size_t bufsz)
{
    while (len > 0) {
        size_t want = len < bufsz ? (size_t)len : bufsz;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 1; /* shorter than it said: what is there was zero */
        for (ssize_t i = 0; i < n; i++)
            if (buf[i])
                return 0;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 1;
}

/*
 * Does an existing file or device hold nothing anyone could want? A regular
 * file: every data extent (SEEK_DATA skips holes) reads as zeros, looking at
 * most BLANK_SCAN_MAX bytes of data (more: not blank). A device: its first
 * BLANK_DEV_SCAN bytes are zeros. 1 blank, 0 not, -errno.
 */
static int
is_blank(int fd, int blkdev, uint64_t have)
{
    size_t bufsz = 1u << 16;
    unsigned char *buf = malloc(bufsz);
    uint64_t scanned = 0;
    int rc = 1;

    if (!buf)
        return -ENOMEM;
    if (blkdev) {
        rc = range_zero(fd, 0, have < BLANK_DEV_SCAN ? have : BLANK_DEV_SCAN, buf, bufsz);
        free(buf);
        return rc;
    }
    for (uint64_t off = 0; off < have && rc == 1;) {
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            break; /* only holes from here on */
        if (d < 0) { /* no SEEK_DATA here: read it all */
            d = (off_t)off;
        }
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0 || (uint64_t)h > have)
            h = (off_t)have;
        uint64_t len = (uint64_t)(h - d);
        if (scanned + len > BLANK_SCAN_MAX) {
            rc = 0;
            break;
        }
        rc = range_zero(fd, (uint64_t)d, len, buf, bufsz);
        scanned += len;
        off = (uint64_t)h;
    }
    free(buf);
    return rc;
}

/* The size rules of swp_area_format; logs the refusal. */
static int
check_size(const char *path, uint64_t size, unsigned flags, const char *what)
{
    uint64_t min = (flags & SWP_FORMAT_USABLE) ? SWP_USABLE_MIN : SWP_MIN_PAGES * SWP_PAGE_SIZE;
    if (size % SWP_PAGE_SIZE) {
        emm_err("%s: %s of %llu bytes is not a whole number of %u-byte pages (%llu or %llu "
                "would be); not formatted", path, what, (unsigned long long)size, SWP_PAGE_SIZE,
                (unsigned long long)(size - size % SWP_PAGE_SIZE),
                (unsigned long long)(size - size % SWP_PAGE_SIZE + SWP_PAGE_SIZE));
        return -EINVAL;
    }
    if (size < min) {
        emm_err("%s: %s of %llu bytes is too small for a swap area: the minimum is %llu bytes "
                "(%llu pages); not formatted", path, what, (unsigned long long)size,
                (unsigned long long)min, (unsigned long long)(min / SWP_PAGE_SIZE));
        return -EINVAL;
    }
    return 0;
}

int
swp_area_format(const char *path, uint64_t size, const char *label, unsigned flags,
                uint8_t uuid_out[16])
{
    struct stat st;
    uint64_t have = 0;
    int fd, blkdev, rc, created = 0;

    if (label && strlen(label) >= SWP_LABEL_MAX) {
        emm_err("%s: label '%s' is longer than %u bytes", path, label, SWP_LABEL_MAX - 1);
        return -ENAMETOOLONG;
    }
    if (size && (rc = check_size(path, size, flags, "a size")) < 0)
        return rc;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (size == 0) {
            emm_err("%s: does not exist; give a size to create it", path);
            return -ENOENT;
        }
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        created = 1;
    }
    if (fd < 0) {
        rc = -errno;
        emm_err("%s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        emm_err("%s: stat: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = dev_size(fd, &st, &have, &blkdev)) < 0) {
        emm_err("%s: %s", path, rc == -ENOTBLK ? "not a regular file or a block device"
                                               : strerror(-rc));
        goto out;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        emm_err("%s: in use by another process", path);
        goto out;
    }
    if (size == 0) {
        /* The whole file or device. A device's tail beyond whole pages is
         * simply unused; a file is never cut to fit. */
        size = blkdev ? have - have % SWP_PAGE_SIZE : have;
        if ((rc = check_size(path, size, flags, blkdev ? "the device" : "the file")) < 0)
            goto out;
    }
    if (blkdev && size > have) {
        emm_err("%s: the device holds %llu bytes, fewer than the %llu asked for", path,
                (unsigned long long)have, (unsigned long long)size);
        rc = -ENOSPC;
        goto out;
    }
    if (!created) {
        const char *where = "";
        const char *sig = swp_area_probe(fd, &where);
        if (sig && !(flags & SWP_FORMAT_FORCE)) {
            emm_err("%s: refusing to format: found a signature: %s (%s); use --force to "
                    "overwrite it", path, sig, where);
            rc = -EEXIST;
            goto out;
        }
        if (sig) {
            emm_notice("%s: overwriting a %s signature (--force)", path, sig);
        } else if (have > 0) {
            rc = is_blank(fd, blkdev, have);
            if (rc < 0) {
                emm_err("%s: reading it: %s", path, strerror(-rc));
                goto out;
            }
            if (rc == 0 && !(flags & SWP_FORMAT_FORCE)) {
                emm_err("%s: refusing to format: it holds %llu bytes of data with no known "
                        "signature; use --force to overwrite it", path,
                        (unsigned long long)have);
                rc = -EEXIST;
                goto out;
            }
            if (rc == 0)
                emm_notice("%s: overwriting %llu bytes of data (--force)", path,
                           (unsigned long long)have);
        }
    }
    if (!blkdev) {
        if (size < have && ftruncate(fd, (off_t)size) < 0) {
            rc = -errno;
            emm_err("%s: truncate: %s", path, strerror(errno));
            goto out;
        }
        if ((rc = preallocate(fd, path, have, size)) < 0)
            goto out;
        if ((rc = write_zeros(path, size)) < 0)
            goto out;
    }
    rc = format_fd(fd, path, size, label, uuid_out);
out:
    close(fd);
    if (rc < 0 && created)
        unlink(path);
    return rc;
}

/* ---- open / close ---------------------------------------------------------------- */

static int
write_header(struct swp_area *a, uint32_t state)
{
    unsigned char *h = a->hdr;
    int rc;

    emm_put_le32(h + H_STATE, state);
    emm_put_le64(h + H_OPEN_COUNT, a->info.open_count);
    emm_put_le64(h + H_LAST_GEN, a->info.last_gen);
    emm_put_le32(h + H_CRC, hdr_crc(h));
    if (fdatasync(a->fd) < 0)
        return -errno;
    rc = pwrite_full(a->fd, h, SWP_PAGE_SIZE, 0);
    if (rc == 0 && fdatasync(a->fd) < 0)
        rc = -errno;
    return rc;
}

static int
check_header(const char *path, const unsigned char *h, uint64_t have, struct swp_area_info *in)
{
    if (memcmp(h + H_MAGIC, SWP_MAGIC, 8) != 0) {
        emm_err("%s: not an emm swap area (no \"%s\" magic at offset 0); run emmswap format",
                path, SWP_MAGIC);
        return -EINVAL;
    }
    if (emm_get_le32(h + H_VERSION) != SWP_VERSION) {
        emm_err("%s: swap area format version %u, this emm reads version %u", path,
                emm_get_le32(h + H_VERSION), SWP_VERSION);
        return -EINVAL;
    }
    if (emm_get_le32(h + H_CRC) != hdr_crc(h)) {
        emm_err("%s: swap area header is corrupt (CRC32C 0x%08x, computed 0x%08x)", path,
                emm_get_le32(h + H_CRC), hdr_crc(h));
        return -EUCLEAN;
    }
    if (emm_get_le32(h + H_PAGE_SIZE) != SWP_PAGE_SIZE) {
        emm_err("%s: swap area page size %u, this emm uses %u", path, emm_get_le32(h + H_PAGE_SIZE),
                SWP_PAGE_SIZE);
        return -EINVAL;
    }
    in->size_pages = emm_get_le64(h + H_SIZE_PAGES);
    in->desc_pages = emm_get_le64(h + H_DESC_PAGES);
    in->data_start = emm_get_le64(h + H_DATA_START);
    in->nslots = emm_get_le64(h + H_NSLOTS);
    /* Every page must have a byte offset (an off_t): a larger count would wrap
     * when turned into bytes and pass for a small area. */
    static const struct {
        const char *name;
        unsigned off;
    } counts[] = {{"size_pages", H_SIZE_PAGES}, {"desc_pages", H_DESC_PAGES},
                  {"data_start", H_DATA_START}, {"nslots", H_NSLOTS}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        uint64_t v = emm_get_le64(h + counts[i].off);
        if (v > (uint64_t)INT64_MAX / SWP_PAGE_SIZE) {
            emm_err("%s: swap area header is corrupt: field %s = %llu is impossible (%llu "
                    "pages of %u bytes overflow a 64-bit offset)", path, counts[i].name,
                    (unsigned long long)v, (unsigned long long)v, SWP_PAGE_SIZE);
            return -EUCLEAN;
        }
    }
    if (emm_get_le64(h + H_DESC_START) != 1 || in->data_start != 1 + in->desc_pages ||
        in->nslots == 0 || in->desc_pages > UINT64_MAX / SWP_DESC_PER_PAGE ||
        in->desc_pages * SWP_DESC_PER_PAGE < in->nslots ||
        in->nslots > in->size_pages || in->data_start > in->size_pages - in->nslots ||
        h[H_LABEL + SWP_LABEL_MAX - 1] != 0) {
        emm_err("%s: swap area header has an impossible geometry (%llu pages, %llu descriptor "
                "pages, %llu slots)", path, (unsigned long long)in->size_pages,
                (unsigned long long)in->desc_pages, (unsigned long long)in->nslots);
        return -EUCLEAN;
    }
    if (in->size_pages > have / SWP_PAGE_SIZE) {
        emm_err("%s: the header says %llu bytes but the %s holds %llu; was it truncated?", path,
                (unsigned long long)(in->size_pages * SWP_PAGE_SIZE),
                in->blkdev ? "device" : "file", (unsigned long long)have);
        return -ERANGE;
    }
    memcpy(in->uuid, h + H_UUID, 16);
    memcpy(in->label, h + H_LABEL, SWP_LABEL_MAX);
    in->open_count = emm_get_le64(h + H_OPEN_COUNT);
    in->last_gen = emm_get_le64(h + H_LAST_GEN);
    in->format_time = emm_get_le64(h + H_FORMAT_TIME);
    in->was_clean = emm_get_le32(h + H_STATE) == SWP_STATE_CLEAN;
    return 0;
}

static void
area_free(struct swp_area *a)
{
    swp_io_destroy(a->io); /* every request ends before the fd closes */
    if (a->has_committer) {
        pthread_mutex_lock(&a->commit_lock);
        a->commit_stop = 1;
        pthread_cond_broadcast(&a->commit_cond);
        pthread_mutex_unlock(&a->commit_lock);
        pthread_join(a->committer, NULL);
    }
    pthread_mutex_destroy(&a->commit_lock);
    pthread_cond_destroy(&a->commit_cond);
    for (unsigned i = 0; i < SWP_STRIPES; i++) {
        pthread_mutex_destroy(&a->stripes[i].lock);
        free(a->stripes[i].buf);
    }
    pthread_mutex_destroy(&a->bounce_lock);
    if (a->fd >= 0)
        close(a->fd);
    free(a->bounce);
    free(a->hdr);
    free(a->path);
    free(a);
}

static int
area_alloc(const char *path, struct swp_area **out)
{
    struct swp_area *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->fd = -1;
    pthread_mutex_init(&a->bounce_lock, NULL);
    pthread_mutex_init(&a->commit_lock, NULL);
    STAILQ_INIT(&a->commit);
    pthread_cond_init(&a->commit_cond, NULL);
    for (unsigned i = 0; i < SWP_STRIPES; i++) {
        pthread_mutex_init(&a->stripes[i].lock, NULL);
        a->stripes[i].page = SWP_NO_PAGE;
        a->stripes[i].buf = page_alloc(SWP_PAGE_SIZE);
        if (!a->stripes[i].buf)
            goto nomem;
    }
    a->bounce = page_alloc(SWP_PAGE_SIZE);
    a->hdr = page_alloc(SWP_PAGE_SIZE);
    a->path = strdup(path);
    if (!a->bounce || !a->hdr || !a->path)
        goto nomem;
    a->info.path = a->path;
    *out = a;
    return 0;
nomem:
    area_free(a);
    return -ENOMEM;
}

static void *commit_main(void *arg);

/* flock(LOCK_EX | LOCK_NB), tried for up to LOCK_WAIT_MS while another holds
 * it: a process that died with io_uring requests in flight lets go of the
 * file only when the kernel has torn its ring down, a moment after its exit
 * (a restart right after kill -9 would otherwise find the area busy). 0, or
 * -1 with errno. */
#define LOCK_WAIT_MS 3000
static int
lock_area(int fd, const char *path)
{
    for (int waited = 0;; waited += 20) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK || waited >= LOCK_WAIT_MS)
            return -1;
        if (waited == 0)
            emm_notice("%s: the swap area is locked; waiting up to %d ms (a process that "
                       "just died may still be ending its I/O)", path, LOCK_WAIT_MS);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The area's asynchronous queue: io_uring unless SWP_OPEN_IO_THREADS or the
 * environment says EMM_SWAP_IO=threads; EMM_SWAP_IO_DEPTH=N sets its depth. */
static int
io_open(struct swp_area *a, unsigned flags)
{
    const char *e = getenv("EMM_SWAP_IO"), *d = getenv("EMM_SWAP_IO_DEPTH");
    unsigned qflags = 0, depth = 0;
    if ((flags & SWP_OPEN_IO_THREADS) || (e && strcmp(e, "threads") == 0))
        qflags |= SWP_IO_FORCE_THREADS;
    else if (e && *e && strcmp(e, "uring") != 0)
        emm_warn("EMM_SWAP_IO=%s: not 'uring' or 'threads'; ignored", e);
    if (d && *d) {
        char *end;
        unsigned long v = strtoul(d, &end, 10);
        if (*end || v == 0 || v > SWP_IO_DEPTH_MAX)
            emm_warn("EMM_SWAP_IO_DEPTH=%s: not a number from 1 to %u; ignored", d,
                     SWP_IO_DEPTH_MAX);
        else
            depth = (unsigned)v;
    }
    int rc = swp_io_create(a->fd, a->path, depth, qflags, &a->io);
    if (rc == 0) {
        rc = -pthread_create(&a->committer, NULL, commit_main, a);
        a->has_committer = rc == 0;
    }
    if (rc < 0)
        emm_err("%s: starting swap I/O: %s", a->path, strerror(-rc));
    return rc;
}

int
swp_area_open(const char *path, unsigned flags, struct swp_area **out)
{
    int rdonly = !!(flags & SWP_OPEN_RDONLY);
    int mode = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    struct swp_area *a;
    struct stat st;
    uint64_t have;
    int rc;

    *out = NULL;
    rc = area_alloc(path, &a);
    if (rc < 0)
        return rc;
    a->info.rdonly = rdonly;
    if (!(flags & SWP_OPEN_BUFFERED)) {
        a->fd = open(path, mode | O_DIRECT);
        a->info.direct = a->fd >= 0;
        if (a->fd < 0 && errno == EINVAL)
            emm_notice("%s: the filesystem refuses O_DIRECT; swap I/O is buffered", path);
    }
    if (a->fd < 0)
        a->fd = open(path, mode);
    if (a->fd < 0) {
        rc = -errno;
        emm_err("%s: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(a->fd, &st) < 0) {
        rc = -errno;
        emm_err("%s: stat: %s", path, strerror(errno));
        goto fail;
    }
    if ((rc = dev_size(a->fd, &st, &have, &a->info.blkdev)) < 0) {
        emm_err("%s: %s", path, rc == -ENOTBLK ? "not a regular file or a block device"
                                               : strerror(-rc));
        goto fail;
    }
    if (!rdonly && lock_area(a->fd, path) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        emm_err("%s: swap area in use by another process", path);
        goto fail;
    }
    /* Read what there is: a short file is "not an area" or "truncated", not EIO. */
    ssize_t got = 0;
    while (got < (ssize_t)SWP_PAGE_SIZE) {
        ssize_t n = pread(a->fd, a->hdr + got, SWP_PAGE_SIZE - (size_t)got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            emm_err("%s: reading the swap area header: %s", path, strerror(-rc));
            goto fail;
        }
        if (n == 0)
            break;
        got += n;
    }
    if (got < 8 || memcmp(a->hdr + H_MAGIC, SWP_MAGIC, 8) != 0) {
        emm_err("%s: not an emmswap area: no signature (no \"%s\" magic at offset 0); "
                "emmswap format makes one", path, SWP_MAGIC);
        rc = -EINVAL;
        goto fail;
    }
    if (got < (ssize_t)SWP_PAGE_SIZE) {
        emm_err("%s: the swap area header is cut short: the %s holds %lld bytes, the header "
                "alone takes %u; was it truncated?", path, a->info.blkdev ? "device" : "file",
                (long long)got, SWP_PAGE_SIZE);
        rc = -ERANGE;
        goto fail;
    }
    rc = check_header(path, a->hdr, have, &a->info);
    if (rc < 0)
        goto fail;
    atomic_store(&a->next_gen, a->info.last_gen + 1);
    if (rdonly) {
        *out = a;
        return 0;
    }
    /* Swap writes must never need the host filesystem to allocate (ENOSPC or
     * memory during pageout): fill the holes of a sparse file now. */
    uint64_t bytes = a->info.size_pages * SWP_PAGE_SIZE;
    if (!a->info.blkdev && (uint64_t)st.st_blocks * 512 < bytes) {
        emm_notice("%s: the swap file is sparse; preallocating it", path);
        if (fallocate(a->fd, 0, 0, (off_t)bytes) < 0) {
            rc = -errno;
            emm_err("%s: the swap file is sparse and fallocate failed (%s); reformat it with "
                    "emmswap format", path, strerror(errno));
            goto fail;
        }
    }
    a->info.open_count++;
    rc = write_header(a, SWP_STATE_DIRTY);
    if (rc < 0) {
        emm_err("%s: marking the swap area in use: %s", path, strerror(-rc));
        goto fail;
    }
    rc = io_open(a, flags);
    if (rc < 0)
        goto fail;
    *out = a;
    return 0;
fail:
    area_free(a);
    return rc;
}

int
swp_area_close(struct swp_area *a)
{
    int rc = 0;

    if (!a)
        return 0;
    swp_area_drain(a); /* the header says clean only after every write */
    if (!a->info.rdonly) {
        a->info.last_gen = atomic_load(&a->next_gen) - 1;
        rc = write_header(a, SWP_STATE_CLEAN);
        if (rc < 0)
            emm_err("%s: marking the swap area clean: %s", a->path, strerror(-rc));
    }
    area_free(a);
    return rc;
}

void
swp_area_abandon(struct swp_area *a)
{
    if (a)
        area_free(a);
}

const struct swp_area_info *
swp_area_info(const struct swp_area *a)
{
    return &a->info;
}

uint64_t
swp_area_next_gen(struct swp_area *a)
{
    return atomic_fetch_add(&a->next_gen, 1);
}

void
swp_area_note_gen(struct swp_area *a, uint64_t gen)
{
    uint64_t cur = atomic_load(&a->next_gen);
    while (cur <= gen && !atomic_compare_exchange_weak(&a->next_gen, &cur, gen + 1)) {
    }
}

/* ---- slots -------------------------------------------------------------------------- */

static uint64_t
slot_off(const struct swp_area *a, uint64_t slot)
{
    return (a->info.data_start + slot) * SWP_PAGE_SIZE;
}

/* Locks the stripe of slot's descriptor page and loads it; returns the stripe. */
static int
desc_lock(struct swp_area *a, uint64_t slot, struct swp_stripe **out)
{
    uint64_t page = 1 + slot / SWP_DESC_PER_PAGE;
    struct swp_stripe *s = &a->stripes[page % SWP_STRIPES];
    int rc;

    pthread_mutex_lock(&s->lock);
    if (s->page != page) {
        rc = pread_full(a->fd, s->buf, SWP_PAGE_SIZE, page * SWP_PAGE_SIZE);
        if (rc < 0) {
            s->page = SWP_NO_PAGE;
            pthread_mutex_unlock(&s->lock);
            emm_err("%s: reading descriptor page %llu: %s", a->path, (unsigned long long)page,
                    strerror(-rc));
            return rc;
        }
        s->page = page;
    }
    *out = s;
    return 0;
}

static int
desc_store(struct swp_area *a, uint64_t slot, const struct swp_desc *d)
{
    struct swp_stripe *s;
    int rc = desc_lock(a, slot, &s);

    if (rc < 0)
        return rc;
    desc_encode(s->buf + (slot % SWP_DESC_PER_PAGE) * SWP_DESC_SIZE, d);
    rc = pwrite_full(a->fd, s->buf, SWP_PAGE_SIZE, s->page * SWP_PAGE_SIZE);
    if (rc < 0) {
        s->page = SWP_NO_PAGE; /* the disk may not hold what buf says */
        emm_err("%s: writing the descriptor of slot %llu: %s", a->path,
                (unsigned long long)slot, strerror(-rc));
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int
swp_area_read_desc(struct swp_area *a, uint64_t slot, struct swp_desc *d)
{
    struct swp_stripe *s;
    int rc;

    if (slot >= a->info.nslots)
        return -EINVAL;
    rc = desc_lock(a, slot, &s);
    if (rc < 0)
        return rc;
    rc = desc_decode(s->buf + (slot % SWP_DESC_PER_PAGE) * SWP_DESC_SIZE, d);
    pthread_mutex_unlock(&s->lock);
    return rc < 0 ? -EIO : 0;
}

int
swp_area_write_slot(struct swp_area *a, uint64_t slot, uint64_t obj, uint64_t index,
                    uint64_t gen, const void *page)
{
    struct swp_desc d = {.obj = obj, .index = index, .gen = gen};
    int rc;

    if (slot >= a->info.nslots || gen == 0 || a->info.rdonly)
        return a->info.rdonly ? -EROFS : -EINVAL;
    d.data_crc = emm_crc32c(0, page, SWP_PAGE_SIZE);
    if ((uintptr_t)page % SWP_PAGE_SIZE) {
        pthread_mutex_lock(&a->bounce_lock);
        memcpy(a->bounce, page, SWP_PAGE_SIZE);
        rc = pwrite_full(a->fd, a->bounce, SWP_PAGE_SIZE, slot_off(a, slot));
        pthread_mutex_unlock(&a->bounce_lock);
    } else {
        rc = pwrite_full(a->fd, page, SWP_PAGE_SIZE, slot_off(a, slot));
    }
    if (rc < 0) {
        emm_err("%s: writing slot %llu: %s", a->path, (unsigned long long)slot, strerror(-rc));
        return rc;
    }
    swp_area_note_gen(a, gen);
    return desc_store(a, slot, &d);
}

/* The descriptors of slots first .. first+n-1 (obj, index+i, gen+i, crc[i]),
 * each descriptor page written once, after the data they describe. */
static int
desc_commit(struct swp_area *a, uint64_t first, unsigned n, uint64_t obj, uint64_t index,
            uint64_t gen, const uint32_t *crc)
{
    int rc;
    for (unsigned i = 0; i < n;) {
        struct swp_stripe *st;
        if ((rc = desc_lock(a, first + i, &st)) < 0)
            return rc;
        uint64_t page = 1 + (first + i) / SWP_DESC_PER_PAGE;
        do {
            struct swp_desc d = {.obj = obj, .index = index + i, .gen = gen + i,
                                 .data_crc = crc[i]};
            desc_encode(st->buf + ((first + i) % SWP_DESC_PER_PAGE) * SWP_DESC_SIZE, &d);
            i++;
        } while (i < n && 1 + (first + i) / SWP_DESC_PER_PAGE == page);
        rc = pwrite_full(a->fd, st->buf, SWP_PAGE_SIZE, page * SWP_PAGE_SIZE);
        if (rc < 0) {
            st->page = SWP_NO_PAGE;
            emm_err("%s: writing descriptor page %llu: %s", a->path, (unsigned long long)page,
                    strerror(-rc));
        }
        pthread_mutex_unlock(&st->lock);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
swp_area_write_slots(struct swp_area *a, uint64_t first, unsigned n, uint64_t obj,
                     uint64_t index, uint64_t gen, const void *const *pages)
{
    struct iovec iov[SWP_WRITE_MAX];
    int aligned = 1;
    int rc;

    if (n == 0 || n > SWP_WRITE_MAX || first + n > a->info.nslots || gen == 0 || a->info.rdonly)
        return a->info.rdonly ? -EROFS : -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = (void *)(uintptr_t)pages[i];
        iov[i].iov_len = SWP_PAGE_SIZE;
        aligned &= (uintptr_t)pages[i] % SWP_PAGE_SIZE == 0;
    }
    if (!aligned || n == 1) {
        for (unsigned i = 0; i < n; i++)
            if ((rc = swp_area_write_slot(a, first + i, obj, index + i, gen + i, pages[i])) < 0)
                return rc;
        return 0;
    }
    /* The data first, in one vectored write (a short one is finished page by
     * page from the first page it did not complete) ... */
    ssize_t w = pwritev(a->fd, iov, (int)n, (off_t)slot_off(a, first));
    rc = w < 0 ? -errno : 0;
    for (unsigned k = w < 0 ? n : (unsigned)(w / SWP_PAGE_SIZE); rc == 0 && k < n; k++)
        rc = pwrite_full(a->fd, pages[k], SWP_PAGE_SIZE, slot_off(a, first + k));
    if (rc < 0) {
        emm_err("%s: writing slots %llu..%llu: %s", a->path, (unsigned long long)first,
                (unsigned long long)(first + n - 1), strerror(-rc));
        return rc;
    }
    swp_area_note_gen(a, gen + n - 1);
    /* ... then the descriptors, each descriptor page written once. */
    uint32_t crc[SWP_WRITE_MAX];
    for (unsigned i = 0; i < n; i++)
        crc[i] = emm_crc32c(0, pages[i], SWP_PAGE_SIZE);
    return desc_commit(a, first, n, obj, index, gen, crc);
}

int
swp_area_clear_slot(struct swp_area *a, uint64_t slot)
{
    static const struct swp_desc empty;

    if (slot >= a->info.nslots || a->info.rdonly)
        return a->info.rdonly ? -EROFS : -EINVAL;
    return desc_store(a, slot, &empty);
}

int
swp_area_read_slot(struct swp_area *a, uint64_t slot, uint64_t obj, uint64_t index, void *page)
{
    struct swp_desc d;
    int rc;

    rc = swp_area_read_desc(a, slot, &d);
    if (rc < 0)
        return rc;
    if (d.gen == 0)
        return -ENODATA;
    if (d.obj != obj || d.index != index) {
        emm_err("%s: slot %llu holds object %llu page %llu, not object %llu page %llu",
                a->path, (unsigned long long)slot, (unsigned long long)d.obj,
                (unsigned long long)d.index, (unsigned long long)obj, (unsigned long long)index);
        return -EIO;
    }
    if ((uintptr_t)page % SWP_PAGE_SIZE) {
        pthread_mutex_lock(&a->bounce_lock);
        rc = pread_full(a->fd, a->bounce, SWP_PAGE_SIZE, slot_off(a, slot));
        if (rc == 0)
            memcpy(page, a->bounce, SWP_PAGE_SIZE);
        pthread_mutex_unlock(&a->bounce_lock);
    } else {
        rc = pread_full(a->fd, page, SWP_PAGE_SIZE, slot_off(a, slot));
    }
    if (rc < 0) {
        emm_err("%s: reading slot %llu: %s", a->path, (unsigned long long)slot, strerror(-rc));
        return rc;
    }
    if (emm_crc32c(0, page, SWP_PAGE_SIZE) != d.data_crc) {
        emm_err("%s: slot %llu (object %llu page %llu) fails its CRC32C", a->path,
                (unsigned long long)slot, (unsigned long long)obj, (unsigned long long)index);
        return -EIO;
    }
    return 0;
}

int
swp_area_read_slots(struct swp_area *a, uint64_t first, unsigned n, uint64_t obj,
                    uint64_t index, void *pages)
{
    struct swp_desc d[SWP_WRITE_MAX];
    int rc;

    if (n == 0 || n > SWP_WRITE_MAX || (uintptr_t)pages % SWP_PAGE_SIZE)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        if ((rc = swp_area_read_desc(a, first + i, &d[i])) < 0)
            return rc;
        if (d[i].gen == 0 || d[i].obj != obj || d[i].index != index + i)
            return -EIO; /* the caller reads page by page to say which */
    }
    rc = pread_full(a->fd, pages, (size_t)n * SWP_PAGE_SIZE, slot_off(a, first));
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < n; i++)
        if (emm_crc32c(0, (char *)pages + (size_t)i * SWP_PAGE_SIZE, SWP_PAGE_SIZE) !=
            d[i].data_crc)
            return -EIO;
    return 0;
}

/* ---- asynchronous slot I/O ------------------------------------------------------------ */

/* On the queue's completion side: the data is written, so its descriptors
 * may be: they go to the committer (the commit record follows the data, as
 * in swp_area_write_slots). A failed write ends at once. */
static void
write_done(struct swp_io_req *r, int rc)
{
    struct swp_area_write *w = r->arg;
    struct swp_area *a = w->area;

    if (rc < 0) {
        emm_err("%s: writing slots %llu..%llu: %s", a->path, (unsigned long long)w->first,
                (unsigned long long)(w->first + w->n - 1), strerror(-rc));
        w->done(w, rc);
        return;
    }
    pthread_mutex_lock(&a->commit_lock);
    STAILQ_INSERT_TAIL(&a->commit, w, link);
    pthread_cond_broadcast(&a->commit_cond);
    pthread_mutex_unlock(&a->commit_lock);
}

/* Group commit: every write whose data is on disk and whose descriptors are
 * due, taken at once; each descriptor page they touch is written once (the
 * slots of a sequential pageout share one page per 128), then each write's
 * done runs. Stripes are locked as they are first used and held until their
 * page is written (this thread is the only one to hold more than one, so no
 * other thread waits on it while holding a stripe). A page that cannot be
 * written fails the writes that touched it. */
#define COMMIT_MAX 256u
static void
commit_group(struct swp_area *a, struct swp_area_write **v, unsigned nv)
{
    struct swp_stripe *held[SWP_STRIPES] = {0};
    int dirty[SWP_STRIPES] = {0};
    int err[SWP_STRIPES] = {0};
    uint64_t pages = 0;

    for (unsigned k = 0; k < nv; k++)
        v[k]->rc = 0;
    for (unsigned k = 0; k < nv; k++) {
        struct swp_area_write *w = v[k];
        for (unsigned i = 0; i < w->n && w->rc == 0; i++) {
            uint64_t slot = w->first + i, page = 1 + slot / SWP_DESC_PER_PAGE;
            unsigned si = (unsigned)(page % SWP_STRIPES);
            struct swp_stripe *st = &a->stripes[si];
            if (held[si] == NULL) {
                pthread_mutex_lock(&st->lock);
                held[si] = st;
                err[si] = 0;
            } else if (st->page != page && dirty[si]) {
                /* another page of this stripe first: written before reuse */
                err[si] = pwrite_full(a->fd, st->buf, SWP_PAGE_SIZE, st->page * SWP_PAGE_SIZE);
                pages++;
                dirty[si] = 0;
                if (err[si] < 0)
                    st->page = SWP_NO_PAGE;
            }
            if (err[si] < 0) {
                w->rc = err[si];
                break;
            }
            if (st->page != page) {
                int rc = pread_full(a->fd, st->buf, SWP_PAGE_SIZE, page * SWP_PAGE_SIZE);
                if (rc < 0) {
                    st->page = SWP_NO_PAGE;
                    emm_err("%s: reading descriptor page %llu: %s", a->path,
                            (unsigned long long)page, strerror(-rc));
                    w->rc = rc;
                    break;
                }
                st->page = page;
            }
            struct swp_desc d = {.obj = w->obj, .index = w->index + i, .gen = w->gen + i,
                                 .data_crc = w->crc[i]};
            desc_encode(st->buf + (slot % SWP_DESC_PER_PAGE) * SWP_DESC_SIZE, &d);
            dirty[si] = 1;
        }
    }
    for (unsigned si = 0; si < SWP_STRIPES; si++) {
        struct swp_stripe *st = held[si];
        if (st == NULL)
            continue;
        if (dirty[si]) {
            err[si] = pwrite_full(a->fd, st->buf, SWP_PAGE_SIZE, st->page * SWP_PAGE_SIZE);
            pages++;
            if (err[si] < 0) {
                emm_err("%s: writing descriptor page %llu: %s", a->path,
                        (unsigned long long)st->page, strerror(-err[si]));
                /* every write that touched this stripe fails: the disk may not
                 * hold what buf says */
                for (unsigned k = 0; k < nv; k++)
                    for (unsigned i = 0; i < v[k]->n; i++)
                        if ((1 + (v[k]->first + i) / SWP_DESC_PER_PAGE) % SWP_STRIPES == si &&
                            v[k]->rc == 0)
                            v[k]->rc = err[si];
                st->page = SWP_NO_PAGE;
            }
        }
        pthread_mutex_unlock(&st->lock);
    }
    pthread_mutex_lock(&a->commit_lock);
    a->commits++;
    a->commit_pages += pages;
    pthread_mutex_unlock(&a->commit_lock);
    for (unsigned k = 0; k < nv; k++)
        v[k]->done(v[k], v[k]->rc);
}

static void *
commit_main(void *arg)
{
    struct swp_area *a = arg;
    struct swp_area_write *v[COMMIT_MAX];

    pthread_mutex_lock(&a->commit_lock);
    for (;;) {
        while (STAILQ_EMPTY(&a->commit) && !a->commit_stop)
            pthread_cond_wait(&a->commit_cond, &a->commit_lock);
        if (STAILQ_EMPTY(&a->commit))
            break;
        unsigned nv = 0;
        while (!STAILQ_EMPTY(&a->commit) && nv < COMMIT_MAX) {
            v[nv++] = STAILQ_FIRST(&a->commit);
            STAILQ_REMOVE_HEAD(&a->commit, link);
        }
        a->committing = 1;
        pthread_mutex_unlock(&a->commit_lock);
        commit_group(a, v, nv);
        pthread_mutex_lock(&a->commit_lock);
        a->committing = 0;
        pthread_cond_broadcast(&a->commit_cond);
    }
    pthread_mutex_unlock(&a->commit_lock);
    return NULL;
}

int
swp_area_write_async(struct swp_area *a, struct swp_area_write *w)
{
    if (w->n == 0 || w->n > SWP_WRITE_MAX || w->first + w->n > a->info.nslots || w->gen == 0 ||
        a->info.rdonly || a->io == NULL)
        return a->info.rdonly || a->io == NULL ? -EROFS : -EINVAL;
    for (unsigned i = 0; i < w->n; i++) {
        if ((uintptr_t)w->iov[i].iov_base % SWP_PAGE_SIZE || w->iov[i].iov_len != SWP_PAGE_SIZE)
            return -EINVAL;
        w->crc[i] = emm_crc32c(0, w->iov[i].iov_base, SWP_PAGE_SIZE);
    }
    swp_area_note_gen(a, w->gen + w->n - 1);
    w->area = a;
    w->io = (struct swp_io_req){.op = SWP_IO_WRITE, .off = slot_off(a, w->first), .iov = w->iov,
                                .niov = (int)w->n, .done = write_done, .arg = w};
    return swp_io_submit(a->io, &w->io);
}

/* On the queue's completion side: each page must be the one its descriptor
 * names, with the data its CRC says. */
static void
read_done(struct swp_io_req *r, int rc)
{
    struct swp_area_read *rd = r->arg;
    struct swp_area *a = rd->area;

    for (unsigned i = 0; i < rd->n && rc == 0; i++) {
        struct swp_desc d;
        rc = swp_area_read_desc(a, rd->first + i, &d);
        if (rc == 0 && (d.gen == 0 || d.obj != rd->obj || d.index != rd->index + i ||
                        emm_crc32c(0, (char *)rd->buf + (size_t)i * SWP_PAGE_SIZE,
                                   SWP_PAGE_SIZE) != d.data_crc))
            rc = -EIO; /* the caller reads page by page to say which */
    }
    rd->done(rd, rc);
}

int
swp_area_read_async(struct swp_area *a, struct swp_area_read *rd)
{
    if (rd->n == 0 || rd->n > SWP_WRITE_MAX || rd->first + rd->n > a->info.nslots ||
        (uintptr_t)rd->buf % SWP_PAGE_SIZE)
        return -EINVAL;
    if (a->io == NULL)
        return -EROFS;
    rd->area = a;
    rd->iov = (struct iovec){.iov_base = rd->buf, .iov_len = (size_t)rd->n * SWP_PAGE_SIZE};
    rd->io = (struct swp_io_req){.op = SWP_IO_READ, .off = slot_off(a, rd->first), .iov = &rd->iov,
                                 .niov = 1, .done = read_done, .arg = rd};
    return swp_io_submit(a->io, &rd->io);
}

struct swp_io *
swp_area_io(struct swp_area *a)
{
    return a->io;
}

void
swp_area_drain(struct swp_area *a)
{
    if (a->io == NULL)
        return;
    swp_io_drain(a->io);
    pthread_mutex_lock(&a->commit_lock);
    while (!STAILQ_EMPTY(&a->commit) || a->committing)
        pthread_cond_wait(&a->commit_cond, &a->commit_lock);
    pthread_mutex_unlock(&a->commit_lock);
}

void
swp_area_commit_stats(struct swp_area *a, uint64_t *groups, uint64_t *pages)
{
    pthread_mutex_lock(&a->commit_lock);
    *groups = a->commits;
    *pages = a->commit_pages;
    pthread_mutex_unlock(&a->commit_lock);
}

int
swp_area_sync(struct swp_area *a)
{
    if (fdatasync(a->fd) < 0) {
        int rc = -errno;
        emm_err("%s: fdatasync: %s", a->path, strerror(errno));
        return rc;
    }
    return 0;
}

int
swp_area_scan(struct swp_area *a, unsigned flags, swp_scan_fn fn, void *arg,
              struct swp_scan_stats *stats)
{
    struct swp_scan_stats st = {0};
    unsigned char *buf = page_alloc(SCAN_CHUNK_PAGES * SWP_PAGE_SIZE);
    unsigned char *data = page_alloc(SWP_PAGE_SIZE);
    int rc = 0;

    if (!buf || !data) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint64_t p = 0; p < a->info.desc_pages && rc == 0; p += SCAN_CHUNK_PAGES) {
        uint64_t n = a->info.desc_pages - p < SCAN_CHUNK_PAGES ? a->info.desc_pages - p
                                                               : SCAN_CHUNK_PAGES;
        rc = pread_full(a->fd, buf, n * SWP_PAGE_SIZE, (1 + p) * SWP_PAGE_SIZE);
        if (rc < 0) {
            emm_err("%s: reading descriptor pages: %s", a->path, strerror(-rc));
            break;
        }
        for (uint64_t i = 0; i < n * SWP_DESC_PER_PAGE && rc == 0; i++) {
            uint64_t slot = p * SWP_DESC_PER_PAGE + i;
            struct swp_desc d;
            int v;

            if (slot >= a->info.nslots)
                break;
            v = desc_decode(buf + i * SWP_DESC_SIZE, &d);
            if (v < 0)
                st.torn++;
            if (v <= 0)
                continue;
            if (flags & SWP_SCAN_VERIFY) {
                rc = pread_full(a->fd, data, SWP_PAGE_SIZE, slot_off(a, slot));
                if (rc < 0) {
                    emm_err("%s: reading slot %llu: %s", a->path, (unsigned long long)slot,
                            strerror(-rc));
                    break;
                }
                if (emm_crc32c(0, data, SWP_PAGE_SIZE) != d.data_crc) {
                    st.bad_data++;
                    continue;
                }
            }
            st.used++;
            if (d.gen > st.max_gen)
                st.max_gen = d.gen;
            rc = fn(arg, slot, &d);
        }
    }
    if (st.max_gen)
        swp_area_note_gen(a, st.max_gen);
out:
    free(buf);
    free(data);
    if (stats)
        *stats = st;
    return rc;
}
