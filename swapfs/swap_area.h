/*
 * swap_area.h - one swap area of the default pager: its on-disk format and page
 * I/O. An area is a regular file (preallocated, never sparse) or a block device:
 *
 *   page 0                      header (magic "EMMSWAP1", geometry, uuid, label,
 *                               clean flag, generations, CRC32C)
 *   pages 1 .. 1+desc_pages     slot descriptors, 128 per page, 32 bytes each:
 *                               (object, page index, generation, data CRC32C,
 *                               descriptor CRC32C); generation 0 = empty
 *   pages data_start ..         the data slots, one page each
 *
 * A slot write puts the data first, then its descriptor (the commit record), so
 * a scan of the descriptors after a crash finds every page that was written;
 * when one (object, index) appears twice, the higher generation wins. The
 * layout is documented field by field in docs/swapfs.md.
 *
 * Asynchronous I/O: a read-write open starts the area's swap_io queue
 * (io_uring, or threads when io_uring is unavailable); swp_area_write_async
 * keeps the same order on disk (the data's write completes before its
 * descriptors are written, on the queue's completion side), so recovery is
 * the same whichever path wrote a slot.
 *
 * Locking: an area may be used from any thread. Data I/O takes no lock (slots
 * are owned by whoever allocated them); descriptor updates read-modify-write
 * one descriptor page under one of SWP_STRIPES mutexes (chosen by page number),
 * each with its own preallocated page buffer, and hold it across the page's
 * write, so two updates of one descriptor page never race to the disk; the
 * write path never allocates. Open, close and format are not concurrent with
 * anything else; close waits for the queue.
 */
#ifndef EMM_SWAP_AREA_H
#define EMM_SWAP_AREA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "swap_io.h"

#define SWP_MAGIC "EMMSWAP1"
#define SWP_VERSION 1u
#define SWP_PAGE_SIZE 4096u
#define SWP_LABEL_MAX 64u /* bytes on disk, NUL included */
#define SWP_DESC_SIZE 32u
#define SWP_DESC_PER_PAGE (SWP_PAGE_SIZE / SWP_DESC_SIZE)
#define SWP_MIN_PAGES 3u /* header, one descriptor page, one slot */
#define SWP_USABLE_MIN (UINT64_C(1) << 20) /* the smallest area emmswap (and emmd's
                                               "swap = PATH SIZE") makes: 1 MiB */

/* swp_area_format flags */
#define SWP_FORMAT_FORCE (1u << 0)  /* overwrite a known signature, or data without one */
#define SWP_FORMAT_USABLE (1u << 1) /* refuse an area smaller than SWP_USABLE_MIN */

/* swp_area_open flags */
#define SWP_OPEN_RDONLY (1u << 0)   /* inspect only: no lock, no header update */
#define SWP_OPEN_BUFFERED (1u << 1) /* do not try O_DIRECT */
#define SWP_OPEN_IO_THREADS (1u << 2) /* the thread engine, not io_uring (swap_io.h) */

/* swp_area_scan flags */
#define SWP_SCAN_VERIFY (1u << 0) /* also read each used slot and check its data CRC */

struct swp_area;

/* What the header says, decoded (swp_area_info). */
struct swp_area_info {
    const char *path;
    uint8_t uuid[16];
    char label[SWP_LABEL_MAX];
    uint64_t size_pages;  /* the whole area, header included */
    uint64_t desc_pages;  /* descriptor pages, starting at page 1 */
    uint64_t data_start;  /* page number of slot 0 */
    uint64_t nslots;      /* data slots */
    uint64_t open_count;  /* read-write opens since format */
    uint64_t last_gen;    /* highest generation at the last clean close */
    uint64_t format_time; /* unix seconds */
    int was_clean;        /* the previous user closed it cleanly */
    int direct;           /* O_DIRECT in use */
    int blkdev;           /* a block device rather than a regular file */
    int rdonly;
};

/* A decoded slot descriptor. gen == 0: the slot holds nothing. */
struct swp_desc {
    uint64_t obj;
    uint64_t index;
    uint64_t gen;
    uint32_t data_crc;
};

/* What a scan saw. */
struct swp_scan_stats {
    uint64_t used;    /* valid descriptors passed to the callback */
    uint64_t torn;    /* non-empty descriptors whose own CRC is wrong */
    uint64_t bad_data; /* SWP_SCAN_VERIFY: data CRC mismatches */
    uint64_t max_gen;
};

/*
 * Names the known signature at the start of an open file or device, or returns
 * NULL: "ext2/3/4 filesystem", "XFS filesystem", "btrfs filesystem", "Linux swap
 * area", "emm swap area". *where gets a short "magic ... at offset N" text.
 */
const char *swp_area_probe(int fd, const char **where);

/*
 * Formats path as a swap area of size bytes (0: the whole existing file or
 * device). A regular file that does not exist is created (size required) and
 * preallocated with fallocate. Everything is checked before anything is
 * written, so a refusal leaves path as it was:
 *  - a size (given, or a regular file's own) that is not a whole number of
 *    pages, or smaller than SWP_MIN_PAGES pages (SWP_USABLE_MIN with
 *    SWP_FORMAT_USABLE): -EINVAL, never rounded. A device's size is rounded
 *    down to whole pages (nothing is cut off a device).
 *  - a known signature (swp_area_probe), or an existing file or device that
 *    holds data but no known signature (anything but zeros in a regular file's
 *    data, or in a device's first 16 MiB): -EEXIST unless SWP_FORMAT_FORCE.
 * Every refusal is logged with the path and the reason. label may be NULL.
 * On success *uuid_out (if not NULL) gets the new uuid.
 */
int swp_area_format(const char *path, uint64_t size, const char *label, unsigned flags,
                    uint8_t uuid_out[16]);

/*
 * Opens and validates an area. A corrupt or foreign header is refused with a
 * logged reason (-EINVAL, -EUCLEAN for a CRC mismatch, -ERANGE when the file or
 * device is smaller than the header says). Read-write: takes an exclusive flock
 * (-EBUSY if another process holds it), preallocates holes of a sparse file, and
 * marks the header dirty until swp_area_close. The caller then rebuilds its
 * allocator and maps from swp_area_scan (swp_index_recover does it all).
 */
int swp_area_open(const char *path, unsigned flags, struct swp_area **out);

/* Syncs, marks the header clean with the highest generation used, closes. */
int swp_area_close(struct swp_area *a);

/* Closes without marking clean (error paths, and tests that simulate a crash). */
void swp_area_abandon(struct swp_area *a);

const struct swp_area_info *swp_area_info(const struct swp_area *a);

/* A fresh generation, higher than any on disk (once the scan has run). */
uint64_t swp_area_next_gen(struct swp_area *a);

/* Raises the generation counter above gen (recovery). */
void swp_area_note_gen(struct swp_area *a, uint64_t gen);

/*
 * Writes one page into slot and then its descriptor (obj, index, gen, CRC).
 * page should be SWP_PAGE_SIZE-aligned; an unaligned one is bounced through a
 * preallocated buffer under a lock. gen must be non-zero.
 */
int swp_area_write_slot(struct swp_area *a, uint64_t slot, uint64_t obj, uint64_t index,
                        uint64_t gen, const void *page);

/*
 * Writes n pages (at most SWP_WRITE_MAX) into the consecutive slots first ..
 * first+n-1 in one vectored write, then their descriptors (obj, index+i,
 * gen+i), each descriptor page once: a clustered pageout costs two writes.
 */
#define SWP_WRITE_MAX 256u
int swp_area_write_slots(struct swp_area *a, uint64_t first, unsigned n, uint64_t obj,
                         uint64_t index, uint64_t gen, const void *const *pages);

/*
 * Reads slot into page and checks that its descriptor names (obj, index) and
 * that the data matches the descriptor's CRC: -ENODATA for an empty slot, -EIO
 * (logged) for a mismatch.
 */
int swp_area_read_slot(struct swp_area *a, uint64_t slot, uint64_t obj, uint64_t index,
                       void *page);

/* Reads n consecutive slots (at most SWP_WRITE_MAX) holding pages index ..
 * index+n-1 of obj into the page-aligned buffer pages, in one read. Any
 * mismatch gives an error without saying which page: read them one by one. */
int swp_area_read_slots(struct swp_area *a, uint64_t first, unsigned n, uint64_t obj,
                        uint64_t index, void *pages);

/*
 * Asynchronous slot writes (the area's swap_io queue): w->n page-aligned pages
 * (w->iov, one page each; the caller's until done) into the consecutive slots
 * w->first .. first+n-1; once the data is written, their descriptors (obj,
 * index+i, gen+i, crc[i]) are written by the area's committer thread, which
 * takes every write completed meanwhile at once and writes each descriptor
 * page they share once (a group commit), and then w->done(w, rc) runs there
 * (a failed data write: on the queue's completion side, at once). The CRCs are computed at submit into w->crc
 * (n entries, the caller's). 0 when started (done will run), else -errno and
 * nothing started. Waits while the queue is full.
 */
struct swp_area_write {
    uint64_t first;
    unsigned n;
    uint64_t obj, index, gen;
    struct iovec *iov;
    uint32_t *crc;
    void (*done)(struct swp_area_write *w, int rc);
    void *arg;
    /* the area's */
    struct swp_area *area;
    struct swp_io_req io;
    STAILQ_ENTRY(swp_area_write) link; /* waiting for the group commit */
    int rc;
};
int swp_area_write_async(struct swp_area *a, struct swp_area_write *w);

/*
 * Asynchronous read of the n consecutive slots first .. first+n-1 holding
 * pages index .. index+n-1 of obj into buf (page-aligned, n pages); checked
 * as swp_area_read_slots does (any mismatch: -EIO for the whole run) before
 * rd->done(rd, rc) runs on the completion side.
 */
struct swp_area_read {
    uint64_t first;
    unsigned n;
    uint64_t obj, index;
    void *buf;
    void (*done)(struct swp_area_read *rd, int rc);
    void *arg;
    /* the area's */
    struct swp_area *area;
    struct iovec iov;
    struct swp_io_req io;
};
int swp_area_read_async(struct swp_area *a, struct swp_area_read *rd);

/* The area's queue (NULL for a read-only open): stats, drain, tests' hooks. */
struct swp_io *swp_area_io(struct swp_area *a);

/* Waits until every asynchronous write and read has ended (done has run). */
void swp_area_drain(struct swp_area *a);

/* Group commits so far and the descriptor pages they wrote. */
void swp_area_commit_stats(struct swp_area *a, uint64_t *groups, uint64_t *pages);

/* Reads one descriptor. */
int swp_area_read_desc(struct swp_area *a, uint64_t slot, struct swp_desc *d);

/* Empties a slot's descriptor (call before the slot is freed for reuse). */
int swp_area_clear_slot(struct swp_area *a, uint64_t slot);

/* fdatasync: every slot written before the call survives a power loss. */
int swp_area_sync(struct swp_area *a);

/*
 * Reads every descriptor in slot order and calls fn for each valid one; fn
 * returns 0 to go on or a negative errno to stop (returned). With
 * SWP_SCAN_VERIFY a slot whose data does not match its CRC is skipped and
 * counted. Not concurrent with writers.
 */
typedef int (*swp_scan_fn)(void *arg, uint64_t slot, const struct swp_desc *d);
int swp_area_scan(struct swp_area *a, unsigned flags, swp_scan_fn fn, void *arg,
                  struct swp_scan_stats *stats);

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into buf (37 bytes). */
void swp_uuid_str(const uint8_t uuid[16], char buf[37]);

#endif
