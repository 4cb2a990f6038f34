/*
 * ramdisk.c - an example emm backend plug-in: a sparse page store in RAM,
 * written the way a third party writes one. It includes <emm/backend.h> and
 * libc only, is built out of tree with `pkg-config --cflags emm-backend`, and
 * is used as `backend = ramdisk` once ramdisk.so is in the plug-in directory.
 *
 * Pages live in one chained hash table keyed by (object, page index), doubled
 * when it holds more pages than buckets. A page never written is a hole. The
 * one key, ramdisk.max (a size; default 0, unlimited), bounds the pages kept:
 * a write that needs more fails with ENOSPC and stores nothing. Everything is
 * lost when emmd exits. seek and stored_pages walk the whole table: fine for
 * an example, slow for millions of pages.
 *
 * Locking: none. The plug-in registers EMM_THREAD_SERIAL, so the host makes one
 * call at a time on the whole backend: the simplest correct choice for a
 * plug-in whose state is one shared table.
 */
#include <emm/backend.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct page {
    struct page *next;
    uint64_t object, index;
    unsigned char data[EMM_PAGE_SIZE];
};

struct ramdisk {
    const struct emm_backend_host *host;
    struct page **bucket;
    size_t nbuckets; /* a power of two */
    uint64_t npages;
    uint64_t max_pages; /* 0: unlimited */
};

static size_t
hash(uint64_t object, uint64_t index, size_t nbuckets)
{
    uint64_t h = object * 0x9E3779B97F4A7C15u ^ index * 0xC2B2AE3D27D4EB4Fu;
    return (size_t)((h ^ h >> 29) & (nbuckets - 1));
}

/* The link that points at page (object, index), or at the NULL ending its chain. */
static struct page **
find(struct ramdisk *rd, uint64_t object, uint64_t index)
{
    struct page **pp = &rd->bucket[hash(object, index, rd->nbuckets)];
    while (*pp && ((*pp)->object != object || (*pp)->index != index))
        pp = &(*pp)->next;
    return pp;
}

static int
grow(struct ramdisk *rd)
{
    size_t n = rd->nbuckets * 2;
    struct page **b = calloc(n, sizeof(*b));

    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < rd->nbuckets; i++) {
        for (struct page *p = rd->bucket[i], *next; p; p = next) {
            size_t h = hash(p->object, p->index, n);
            next = p->next;
            p->next = b[h];
            b[h] = p;
        }
    }
    free(rd->bucket);
    rd->bucket = b;
    rd->nbuckets = n;
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

static int
rd_create(const struct emm_backend_host *host, void **instance)
{
    struct ramdisk *rd = calloc(1, sizeof(*rd));

    if (!rd)
        return -ENOMEM;
    rd->host = host;
    rd->nbuckets = 1024;
    rd->bucket = calloc(rd->nbuckets, sizeof(*rd->bucket));
    if (!rd->bucket) {
        free(rd);
        return -ENOMEM;
    }
    *instance = rd;
    return 0;
}

/* One call per "ramdisk.KEY = VALUE" line; the host adds FILE:LINE to err. */
static int
rd_config(void *instance, const char *key, const char *value, char *err, size_t errlen)
{
    struct ramdisk *rd = instance;
    uint64_t bytes;

    if (strcmp(key, "max") != 0) {
        snprintf(err, errlen, "unknown key (ramdisk takes: max)");
        return -EINVAL;
    }
    if (rd->host->parse_size(value, &bytes) < 0) {
        snprintf(err, errlen, "'%s' is not a size (e.g. 64M, 2G)", value);
        return -EINVAL;
    }
    rd->max_pages = bytes / EMM_PAGE_SIZE;
    return 0;
}

static int
rd_start(void *instance)
{
    struct ramdisk *rd = instance;

    if (rd->max_pages)
        rd->host->log(rd->host, EMM_LOG_INFO, "keeping at most %" PRIu64 " pages",
                      rd->max_pages);
    else
        rd->host->log(rd->host, EMM_LOG_INFO, "no page limit");
    return 0;
}

static void
rd_destroy(void *instance)
{
    struct ramdisk *rd = instance;

    for (size_t i = 0; i < rd->nbuckets; i++) {
        for (struct page *p = rd->bucket[i], *next; p; p = next) {
            next = p->next;
            free(p);
        }
    }
    free(rd->bucket);
    free(rd);
}

/* ---- data path ---------------------------------------------------------- */

static int
rd_read(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
        uint8_t *present)
{
    struct ramdisk *rd = instance;
    unsigned char *out = buf;

    for (uint32_t i = 0; i < npages; i++, out += EMM_PAGE_SIZE) {
        struct page *p = *find(rd, object, first + i);
        present[i] = p != NULL;
        if (p)
            memcpy(out, p->data, EMM_PAGE_SIZE);
        else
            memset(out, 0, EMM_PAGE_SIZE);
    }
    return 0;
}

/* All or nothing: the new pages are allocated before anything is stored. */
static int
rd_write(void *instance, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    struct ramdisk *rd = instance;
    const unsigned char *in = buf;
    struct page *spare = NULL;
    uint64_t need = 0;

    for (uint32_t i = 0; i < npages; i++)
        need += *find(rd, object, first + i) == NULL;
    if (rd->max_pages && rd->npages + need > rd->max_pages)
        return -ENOSPC;
    for (uint64_t i = 0; i < need; i++) {
        struct page *p = malloc(sizeof(*p));
        if (!p) {
            while (spare) {
                p = spare->next;
                free(spare);
                spare = p;
            }
            return -ENOMEM;
        }
        p->next = spare;
        spare = p;
    }
    while (rd->npages + need > rd->nbuckets && grow(rd) == 0)
        ; /* a failed grow only makes chains longer */
    for (uint32_t i = 0; i < npages; i++, in += EMM_PAGE_SIZE) {
        struct page **pp = find(rd, object, first + i), *p = *pp;
        if (!p) {
            p = spare;
            spare = p->next;
            p->object = object;
            p->index = first + i;
            p->next = NULL;
            *pp = p;
            rd->npages++;
        }
        memcpy(p->data, in, EMM_PAGE_SIZE);
    }
    return 0;
}

static int
rd_discard(void *instance, uint64_t object, uint64_t first, uint64_t npages)
{
    struct ramdisk *rd = instance;

    if (npages <= rd->npages) { /* a short range: look each page up */
        for (uint64_t i = 0; i < npages; i++) {
            struct page **pp = find(rd, object, first + i), *p = *pp;
            if (p) {
                *pp = p->next;
                free(p);
                rd->npages--;
            }
        }
        return 0;
    }
    /* A long range (npages UINT64_MAX means to the end): walk the table once. */
    for (size_t b = 0; b < rd->nbuckets; b++) {
        for (struct page **pp = &rd->bucket[b], *p; (p = *pp) != NULL;) {
            if (p->object == object && p->index >= first &&
                (npages == UINT64_MAX || p->index - first < npages)) {
                *pp = p->next;
                free(p);
                rd->npages--;
            } else {
                pp = &p->next;
            }
        }
    }
    return 0;
}

static int
rd_seek(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found)
{
    struct ramdisk *rd = instance;

    if (!want_data) { /* the first index >= from with no page */
        uint64_t i = from;
        while (*find(rd, object, i) && i != UINT64_MAX)
            i++;
        *found = i;
        return 0;
    }
    uint64_t best = UINT64_MAX;
    int any = 0;
    for (size_t b = 0; b < rd->nbuckets; b++) {
        for (const struct page *p = rd->bucket[b]; p; p = p->next) {
            if (p->object == object && p->index >= from && p->index <= best) {
                best = p->index;
                any = 1;
            }
        }
    }
    if (!any)
        return -ENXIO;
    *found = best;
    return 0;
}

static int
rd_stored_pages(void *instance, uint64_t object, uint64_t *count)
{
    struct ramdisk *rd = instance;
    uint64_t n = 0;

    for (size_t b = 0; b < rd->nbuckets; b++)
        for (const struct page *p = rd->bucket[b]; p; p = p->next)
            n += p->object == object;
    *count = n;
    return 0;
}

/* "key:value" lines; emmctl info shows them as ramdisk.KEY. */
static int
rd_info(void *instance, char *buf, size_t len)
{
    struct ramdisk *rd = instance;
    int w = snprintf(buf, len, "stored_pages:%" PRIu64 "\nmax_pages:%" PRIu64 "\nbuckets:%zu\n",
                     rd->npages, rd->max_pages, rd->nbuckets);
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

/* Unset callbacks: config_complete, stop (nothing to do), sync (RAM has nothing
 * to make durable: the host answers success). */
static struct emm_backend_ops ramdisk_ops = {
    .name = "ramdisk",
    .flags = EMM_BACKEND_NONBLOCKING,
    .create = rd_create,
    .config = rd_config,
    .start = rd_start,
    .destroy = rd_destroy,
    .read_pages = rd_read,
    .write_pages = rd_write,
    .discard = rd_discard,
    .seek = rd_seek,
    .stored_pages = rd_stored_pages,
    .info = rd_info,
};

EMM_BACKEND_REGISTER(ramdisk_ops, EMM_THREAD_SERIAL)
