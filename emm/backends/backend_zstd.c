/*
 * backend_zstd.c - the "zstd" filter: compresses clusters of pages (zstd.cluster,
 * 4K..256K, default 64K) at zstd.level into the layer below, with an optional
 * trained dictionary (zstd.dict = auto). Also owns the cluster image format of
 * zstd_cluster.h, checked with CRC32C (crc32c.h).
 *
 * Layout below: logical page p lives in cluster c = p / ppc (ppc = pages per
 * cluster); cluster c occupies lower pages [c * (ppc + 1), + used), where used is
 * ceil((32-byte header + payload) / 4096) <= ppc + 1 (a raw cluster needs the
 * extra page); the rest of the slot is a hole. An all-zero cluster is a hole and
 * reads as absent. Object UINT64_MAX - 1 below is reserved: page 0 holds the
 * metadata (cluster size, dictionary length and id), pages 1.. the dictionary.
 *
 * Locking: a cluster's read, read-modify-write and discard run under one of 256
 * striped mutexes keyed by (object, cluster). Writes and discards also hold their
 * object's rwlock shared; counting an object's stored pages the first time
 * (a scan of its cluster headers) holds it exclusive, so per-object counts stay
 * exact with deltas afterwards. Lock order: object rwlock, then stripe. The
 * object table has its own mutex; the dictionary is published once with a
 * release store (dict_ready). zstd contexts and buffers are per thread.
 * Thread model PARALLEL.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zdict.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "backend_host.h"
#include "crc32c.h"
#include "zstd_cluster.h"

#define PS ((size_t)EMM_PAGE_SIZE)
#define MAX_PPC (EMM_ZSTD_MAX_CLUSTER / EMM_PAGE_SIZE)
#define HDR EMM_ZSTD_HDR_SIZE
#define STRIPES 256
#define OBJ_BUCKETS 1024
#define META_OBJECT (UINT64_MAX - 1)
#define DICT_SAMPLES (8u << 20) /* train from the first 8 MiB of non-zero pages */
#define DICT_MAX (64u * 1024u)

#define CLUSTER_MAGIC 0x435a4d45u /* "EMZC" */
#define META_MAGIC 0x4d5a4d45u    /* "EMZM" */
#define FORMAT_VERSION 1
#define F_RAW 1u
#define F_DICT 2u

enum { DICT_OFF, DICT_COLLECTING, DICT_TRAINING, DICT_READY, DICT_FAILED };

/* Per-object page accounting (see the locking rule). */
struct zobj {
    uint64_t id;
    struct zobj *next;
    pthread_rwlock_t lock;
    _Atomic int known;      /* counts are exact; set only under lock held exclusive */
    _Atomic int64_t pages;  /* logical pages present */
    _Atomic int64_t used;   /* lower pages used */
};

struct zst {
    const struct emm_backend_host *host;
    size_t cluster;
    uint32_t ppc, stride; /* stride = ppc + 1 lower pages per cluster slot */
    uint64_t max_cluster; /* highest cluster whose slot fits in 64 bits */
    int level;
    int dict_auto;
    pthread_mutex_t stripe[STRIPES];
    pthread_mutex_t objs_lock;
    struct zobj *objs[OBJ_BUCKETS];

    pthread_mutex_t dict_lock; /* samples, dict_state */
    _Atomic int dict_state;
    unsigned char *samples;
    size_t nsamples;           /* bytes */
    _Atomic int dict_ready;    /* 1: cdict (if auto), ddict, dict_id are set */
    ZSTD_CDict *cdict;
    ZSTD_DDict *ddict;
    uint32_t dict_id;

    _Atomic uint64_t zero_clusters, raw_clusters, compressed_clusters, corrupt_clusters;
};

/* ---- per-thread zstd contexts and buffers ------------------------------- */

struct ztls {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    unsigned char *slot; /* one stored cluster image: (MAX_PPC + 1) pages */
    unsigned char *clus; /* one decoded cluster */
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void
tls_free(void *p)
{
    struct ztls *t = p;
    if (!t)
        return;
    ZSTD_freeCCtx(t->cctx);
    ZSTD_freeDCtx(t->dctx);
    free(t->slot);
    free(t->clus);
    free(t);
}

static void
tls_init(void)
{
    pthread_key_create(&tls_key, tls_free);
}

static struct ztls *
tls_get(void)
{
    pthread_once(&tls_once, tls_init);
    struct ztls *t = pthread_getspecific(tls_key);
    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cctx = ZSTD_createCCtx();
    t->dctx = ZSTD_createDCtx();
    t->slot = malloc((MAX_PPC + 1) * PS);
    t->clus = malloc(EMM_ZSTD_MAX_CLUSTER);
    if (!t->cctx || !t->dctx || !t->slot || !t->clus || pthread_setspecific(tls_key, t) != 0) {
        tls_free(t);
        return NULL;
    }
    return t;
}

/* ---- cluster image ------------------------------------------------------ */

struct chdr {
    uint8_t flags;
    uint32_t ppc, dict_id, ulen, clen, crc;
    uint64_t bitmap;
};

static uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

static uint64_t
get64(const unsigned char *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void
put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t
ppc_mask(uint32_t ppc)
{
    return ppc >= 64 ? UINT64_MAX : ((uint64_t)1 << ppc) - 1;
}

static size_t
pages_for(size_t bytes)
{
    return (bytes + PS - 1) / PS;
}

/* Parses and checks a header (not the CRC) of an image of at most len bytes. */
static int
parse_hdr(const unsigned char *p, size_t len, size_t cluster_size, struct chdr *h)
{
    uint32_t ppc = (uint32_t)(cluster_size / PS);

    if (len < HDR || get32(p) != CLUSTER_MAGIC || p[4] != FORMAT_VERSION)
        return -EIO;
    h->flags = p[5];
    h->ppc = (uint32_t)p[6] | (uint32_t)p[7] << 8;
    h->dict_id = get32(p + 8);
    h->ulen = get32(p + 12);
    h->clen = get32(p + 16);
    h->crc = get32(p + 20);
    h->bitmap = get64(p + 24);
    if ((h->flags & ~(F_RAW | F_DICT)) || h->ppc != ppc || h->ulen > cluster_size ||
        h->clen > len - HDR || !h->bitmap || (h->bitmap & ~ppc_mask(ppc)))
        return -EIO;
    if ((h->flags & F_RAW) && (h->clen != h->ulen || (h->flags & F_DICT)))
        return -EIO;
    if (!!(h->flags & F_DICT) != (h->dict_id != 0))
        return -EIO;
    return 0;
}

static uint32_t
image_crc(const unsigned char *img, uint32_t clen)
{
    unsigned char hdr[HDR];
    memcpy(hdr, img, HDR);
    put32(hdr + 20, 0);
    return emm_crc32c(emm_crc32c(0, hdr, HDR), img + HDR, clen);
}

static int
decode(const void *img_, size_t len, void *out, size_t cluster_size, uint8_t *present,
       const ZSTD_DDict *ddict, uint32_t dict_id, ZSTD_DCtx *dctx)
{
    const unsigned char *img = img_;
    struct chdr h;

    if (cluster_size < PS || cluster_size > EMM_ZSTD_MAX_CLUSTER || cluster_size % PS)
        return -EINVAL;
    if (parse_hdr(img, len, cluster_size, &h) < 0 || image_crc(img, h.clen) != h.crc)
        return -EIO;
    if (h.flags & F_RAW) {
        memcpy(out, img + HDR, h.ulen);
    } else {
        size_t r;
        if (h.flags & F_DICT) {
            if (!ddict || h.dict_id != dict_id)
                return -EIO;
            r = ZSTD_decompress_usingDDict(dctx, out, cluster_size, img + HDR, h.clen, ddict);
        } else {
            r = ZSTD_decompressDCtx(dctx, out, cluster_size, img + HDR, h.clen);
        }
        if (ZSTD_isError(r) || r != h.ulen)
            return -EIO;
    }
    memset((unsigned char *)out + h.ulen, 0, cluster_size - h.ulen);
    for (uint32_t i = 0; i < h.ppc; i++)
        present[i] = (h.bitmap >> i) & 1;
    return 0;
}

/* Encodes into img (cap >= cluster_size + PS); *len = header + payload. */
static int
encode(const void *data, size_t cluster_size, uint64_t bitmap, int level, const ZSTD_CDict *cdict,
       uint32_t dict_id, ZSTD_CCtx *cctx, unsigned char *img, size_t cap, size_t *len)
{
    uint32_t ppc = (uint32_t)(cluster_size / PS);
    /* Compressed only if it saves a lower page over raw (ppc + 1 pages). */
    size_t dcap = cluster_size - HDR, clen;
    uint8_t flags = 0;

    if (cap < cluster_size + PS)
        return -EINVAL;
    size_t r = cdict ? ZSTD_compress_usingCDict(cctx, img + HDR, dcap, data, cluster_size, cdict)
                     : ZSTD_compressCCtx(cctx, img + HDR, dcap, data, cluster_size, level);
    if (!ZSTD_isError(r)) {
        clen = r;
        flags = cdict ? F_DICT : 0;
    } else if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall) {
        memcpy(img + HDR, data, cluster_size);
        clen = cluster_size;
        flags = F_RAW;
    } else {
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
    }
    put32(img, CLUSTER_MAGIC);
    img[4] = FORMAT_VERSION;
    img[5] = flags;
    img[6] = (unsigned char)ppc, img[7] = (unsigned char)(ppc >> 8);
    put32(img + 8, flags & F_DICT ? dict_id : 0);
    put32(img + 12, (uint32_t)cluster_size);
    put32(img + 16, (uint32_t)clen);
    put64(img + 24, bitmap);
    put32(img + 20, image_crc(img, (uint32_t)clen));
    *len = HDR + clen;
    memset(img + *len, 0, pages_for(*len) * PS - *len); /* padding: deterministic */
    return 0;
}

int
emm_zstd_decode_cluster(const void *img, size_t len, void *out, size_t cluster_size,
                        uint8_t *present)
{
    struct ztls *t = tls_get();
    return t ? decode(img, len, out, cluster_size, present, NULL, 0, t->dctx) : -ENOMEM;
}

int
emm_zstd_encode_cluster(const void *data, size_t cluster_size, const uint8_t *present, int level,
                        void *img, size_t cap, size_t *len)
{
    struct ztls *t = tls_get();
    uint64_t bitmap = 0;

    if (!t)
        return -ENOMEM;
    if (cluster_size < PS || cluster_size > EMM_ZSTD_MAX_CLUSTER || cluster_size % PS)
        return -EINVAL;
    for (size_t i = 0; i < cluster_size / PS; i++)
        bitmap |= (uint64_t)(present[i] != 0) << i;
    if (!bitmap)
        return -EINVAL;
    return encode(data, cluster_size, bitmap, level, NULL, 0, t->cctx, img, cap, len);
}

/* ---- helpers -------------------------------------------------------------- */

static int
all_zero(const unsigned char *p, size_t len)
{
    return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

static pthread_mutex_t *
stripe_of(struct zst *z, uint64_t obj, uint64_t c)
{
    uint64_t h = obj * 0x9E3779B97F4A7C15ull ^ c * 0xC2B2AE3D27D4EB4Full;
    return &z->stripe[(h ^ h >> 29 ^ h >> 47) % STRIPES];
}

static uint64_t
slot_of(const struct zst *z, uint64_t c)
{
    return c * z->stride;
}

static void
note_corrupt(struct zst *z, uint64_t obj, uint64_t c, const char *why)
{
    uint64_t n = atomic_fetch_add(&z->corrupt_clusters, 1);
    if (n < 16)
        z->host->log(z->host, EMM_LOG_ERR,
                     "object %" PRIu64 " cluster %" PRIu64 " (pages %" PRIu64 "..): %s%s", obj, c,
                     c * z->ppc, why, n == 15 ? " (further reports suppressed)" : "");
}

/* What a cluster's header says, for accounting: state 0 hole, 1 valid, -1 bad. */
struct cstate {
    int state;
    struct chdr h;
    uint32_t used; /* lower pages in use (stride when the header is bad) */
};

static void
cstate_counts(const struct zst *z, const struct cstate *s, int64_t *pages, int64_t *used)
{
    *pages = s->state == 0 ? 0 : s->state > 0 ? __builtin_popcountll(s->h.bitmap) : z->ppc;
    *used = s->state == 0 ? 0 : s->used;
}

/* Reads the header page of cluster c into t->slot. */
static int
read_header(struct zst *z, struct ztls *t, uint64_t obj, uint64_t c, struct cstate *s)
{
    uint8_t pres;
    int r = z->host->next_read_pages(z->host->next, obj, slot_of(z, c), 1, t->slot, &pres);
    if (r < 0)
        return r;
    memset(s, 0, sizeof(*s));
    if (!pres)
        return 0;
    if (parse_hdr(t->slot, z->stride * PS, z->cluster, &s->h) < 0) {
        s->state = -1;
        s->used = z->stride;
    } else {
        s->state = 1;
        s->used = (uint32_t)pages_for(HDR + s->h.clen);
    }
    return 0;
}

/* Reads and decodes cluster c into out/present (after read_header gave s). */
static int
read_rest(struct zst *z, struct ztls *t, uint64_t obj, uint64_t c, const struct cstate *s,
          void *out, uint8_t *present)
{
    uint8_t pres[MAX_PPC + 1];
    int r;

    if (s->state == 0) {
        memset(out, 0, z->cluster);
        memset(present, 0, z->ppc);
        return 0;
    }
    if (s->state < 0) {
        note_corrupt(z, obj, c, "bad cluster header");
        return -EIO;
    }
    if (s->used > 1) {
        r = z->host->next_read_pages(z->host->next, obj, slot_of(z, c) + 1, s->used - 1,
                                     t->slot + PS, pres);
        if (r < 0)
            return r;
    }
    int ready = atomic_load_explicit(&z->dict_ready, memory_order_acquire);
    r = decode(t->slot, s->used * PS, out, z->cluster, present, ready ? z->ddict : NULL,
               ready ? z->dict_id : 0, t->dctx);
    if (r == -EIO)
        note_corrupt(z, obj, c,
                     (s->h.flags & F_DICT) && (!ready || s->h.dict_id != z->dict_id)
                         ? "compressed with an unknown dictionary"
                         : "checksum or decompression error");
    return r;
}

/* ---- per-object accounting ------------------------------------------------ */

static struct zobj *
obj_find(struct zst *z, uint64_t obj)
{
    struct zobj **head = &z->objs[(obj * 0x9E3779B97F4A7C15ull >> 40) % OBJ_BUCKETS], *e;

    pthread_mutex_lock(&z->objs_lock);
    for (e = *head; e && e->id != obj; e = e->next)
        ;
    if (!e && (e = calloc(1, sizeof(*e))) != NULL) {
        e->id = obj;
        pthread_rwlock_init(&e->lock, NULL);
        e->next = *head;
        *head = e;
    }
    pthread_mutex_unlock(&z->objs_lock);
    return e;
}

/* Counts an object's pages from its cluster headers; object lock held exclusive. */
static int
obj_scan(struct zst *z, struct zobj *e)
{
    struct ztls *t = tls_get();
    int64_t pages = 0, used = 0;
    uint64_t c = 0, q;

    if (!t)
        return -ENOMEM;
    while (c <= z->max_cluster) {
        int r = z->host->next_seek(z->host->next, e->id, slot_of(z, c), 1, &q);
        if (r == -ENXIO)
            break;
        if (r < 0)
            return r;
        c = q / z->stride;
        if (c > z->max_cluster)
            break;
        struct cstate s;
        r = read_header(z, t, e->id, c, &s);
        if (r < 0)
            return r;
        int64_t p, u;
        cstate_counts(z, &s, &p, &u);
        pages += p, used += u;
        c++;
    }
    atomic_store(&e->pages, pages);
    atomic_store(&e->used, used);
    return 0;
}

/* Finds obj's entry, counts it if not yet known, and returns it locked shared.
 * *scan_err gets the scan's result (counts stay unknown after a failure). */
static struct zobj *
obj_enter(struct zst *z, uint64_t obj, int *scan_err)
{
    struct zobj *e = obj_find(z, obj);

    *scan_err = 0;
    if (!e)
        return NULL;
    pthread_rwlock_rdlock(&e->lock);
    if (e->known)
        return e;
    pthread_rwlock_unlock(&e->lock);
    pthread_rwlock_wrlock(&e->lock);
    if (!e->known) {
        *scan_err = obj_scan(z, e);
        e->known = *scan_err == 0;
    }
    pthread_rwlock_unlock(&e->lock);
    pthread_rwlock_rdlock(&e->lock);
    return e;
}

static void
obj_account(struct zobj *e, int64_t dpages, int64_t dused)
{
    if (e && e->known) {
        atomic_fetch_add(&e->pages, dpages);
        atomic_fetch_add(&e->used, dused);
    }
}

/* ---- dictionary ------------------------------------------------------------ */

/* Metadata page (object META_OBJECT, page 0): magic, version, cluster size,
 * dictionary length and id, CRC32C of these 20 bytes and the dictionary. */
static void
meta_fill(unsigned char *page, uint32_t cluster, const void *dict, uint32_t len, uint32_t id)
{
    memset(page, 0, PS);
    put32(page, META_MAGIC);
    page[4] = FORMAT_VERSION;
    put32(page + 8, cluster);
    put32(page + 12, len);
    put32(page + 16, id);
    put32(page + 20, emm_crc32c(emm_crc32c(0, page, 20), dict, len));
}

static int
dict_publish(struct zst *z, const void *dict, size_t len, uint32_t id)
{
    z->ddict = ZSTD_createDDict(dict, len);
    if (z->dict_auto)
        z->cdict = ZSTD_createCDict(dict, len, z->level);
    if (!z->ddict || (z->dict_auto && !z->cdict)) {
        ZSTD_freeDDict(z->ddict);
        ZSTD_freeCDict(z->cdict);
        z->ddict = NULL, z->cdict = NULL;
        return -ENOMEM;
    }
    z->dict_id = id;
    atomic_store_explicit(&z->dict_ready, 1, memory_order_release);
    return 0;
}

/* Trains from the collected samples, stores the dictionary below, publishes it. */
static void
dict_train(struct zst *z)
{
    size_t n = z->nsamples / PS;
    size_t *sizes = malloc(n * sizeof(*sizes));
    unsigned char *buf = calloc(1, PS + DICT_MAX + PS);
    int ok = 0;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (sizes && buf) {
        for (size_t i = 0; i < n; i++)
            sizes[i] = PS;
        size_t len = ZDICT_trainFromBuffer(buf + PS, DICT_MAX, z->samples, sizes, (unsigned)n);
        uint32_t id = ZDICT_isError(len) ? 0 : ZDICT_getDictID(buf + PS, len);
        if (!id) {
            z->host->log(z->host, EMM_LOG_NOTICE, "dictionary training failed: %s",
                         ZDICT_isError(len) ? ZDICT_getErrorName(len) : "no dictionary id");
        } else {
            uint32_t np = (uint32_t)pages_for(len);
            /* Dictionary pages first, then the metadata page that points at them. */
            int r = z->host->next_write_pages(z->host->next, META_OBJECT, 1, np, buf + PS);
            if (r == 0)
                r = z->host->next_sync(z->host->next, META_OBJECT);
            meta_fill(buf, (uint32_t)z->cluster, buf + PS, (uint32_t)len, id);
            if (r == 0)
                r = z->host->next_write_pages(z->host->next, META_OBJECT, 0, 1, buf);
            if (r == 0)
                r = z->host->next_sync(z->host->next, META_OBJECT);
            if (r == 0)
                r = dict_publish(z, buf + PS, len, id);
            if (r < 0)
                z->host->log(z->host, EMM_LOG_ERR, "cannot store the dictionary: %s",
                             strerror(-r));
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (r == 0)
                z->host->log(z->host, EMM_LOG_INFO,
                             "trained a %zu-byte dictionary (id %" PRIu32
                             ") from %zu pages in %ld ms",
                             len, id, n,
                             (long)((t1.tv_sec - t0.tv_sec) * 1000 +
                                    (t1.tv_nsec - t0.tv_nsec) / 1000000));
            ok = r == 0;
        }
    }
    free(sizes);
    free(buf);
    pthread_mutex_lock(&z->dict_lock);
    free(z->samples);
    z->samples = NULL;
    z->dict_state = ok ? DICT_READY : DICT_FAILED;
    pthread_mutex_unlock(&z->dict_lock);
}

/* Collects the non-zero pages just written; trains once it has enough. */
static void
dict_sample(struct zst *z, const unsigned char *data, uint64_t npages)
{
    int train = 0;

    pthread_mutex_lock(&z->dict_lock);
    if (z->dict_state == DICT_COLLECTING) {
        if (!z->samples && !(z->samples = malloc(DICT_SAMPLES)))
            z->dict_state = DICT_FAILED;
        for (uint64_t i = 0; z->samples && i < npages && z->nsamples < DICT_SAMPLES; i++)
            if (!all_zero(data + i * PS, PS)) {
                memcpy(z->samples + z->nsamples, data + i * PS, PS);
                z->nsamples += PS;
            }
        if (z->nsamples == DICT_SAMPLES) {
            z->dict_state = DICT_TRAINING;
            train = 1;
        }
    }
    pthread_mutex_unlock(&z->dict_lock);
    if (train)
        dict_train(z);
}

/* At start: checks the stored metadata and loads a stored dictionary. */
static int
meta_load(struct zst *z)
{
    unsigned char *page = malloc(PS), *dict = NULL;
    uint8_t pres[DICT_MAX / EMM_PAGE_SIZE + 1];
    int r;

    if (!page)
        return -ENOMEM;
    r = z->host->next_read_pages(z->host->next, META_OBJECT, 0, 1, page, pres);
    if (r < 0)
        goto out;
    if (!pres[0]) { /* first start: record the cluster size */
        meta_fill(page, (uint32_t)z->cluster, NULL, 0, 0);
        r = z->host->next_write_pages(z->host->next, META_OBJECT, 0, 1, page);
        goto out;
    }
    uint32_t cluster = get32(page + 8), len = get32(page + 12), id = get32(page + 16);
    if (get32(page) != META_MAGIC || page[4] != FORMAT_VERSION || len > DICT_MAX) {
        z->host->log(z->host, EMM_LOG_ERR, "stored metadata is corrupt: no dictionary");
        z->dict_state = DICT_FAILED;
        goto out;
    }
    if (cluster != z->cluster) {
        z->host->log(z->host, EMM_LOG_ERR,
                     "zstd.cluster is %zu but the data below was stored with %" PRIu32
                     ": set zstd.cluster = %" PRIu32,
                     z->cluster, cluster, cluster);
        r = -EINVAL;
        goto out;
    }
    if (len) {
        dict = malloc(pages_for(len) * PS);
        r = dict ? z->host->next_read_pages(z->host->next, META_OBJECT, 1,
                                            (uint32_t)pages_for(len), dict, pres)
                 : -ENOMEM;
        if (r < 0)
            goto out;
        if (emm_crc32c(emm_crc32c(0, page, 20), dict, len) != get32(page + 20)) {
            z->host->log(z->host, EMM_LOG_ERR, "stored dictionary is corrupt: not used");
            z->dict_state = DICT_FAILED;
            goto out;
        }
        r = dict_publish(z, dict, len, id);
        if (r == 0 && z->dict_auto)
            z->dict_state = DICT_READY;
    }
out:
    free(dict);
    free(page);
    return r;
}

/* ---- lifecycle and config ------------------------------------------------- */

static int
z_create(const struct emm_backend_host *host, void **instance)
{
    if (host->struct_size < offsetof(struct emm_backend_host, next_stored_pages) + sizeof(void *) ||
        !host->next)
        return -EINVAL;
    struct zst *z = calloc(1, sizeof(*z));
    if (!z)
        return -ENOMEM;
    z->host = host;
    z->cluster = 64 * 1024;
    z->level = 1;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&z->stripe[i], NULL);
    pthread_mutex_init(&z->objs_lock, NULL);
    pthread_mutex_init(&z->dict_lock, NULL);
    *instance = z;
    return 0;
}

static int
z_config(void *instance, const char *key, const char *value, char *err, size_t errlen)
{
    struct zst *z = instance;

    if (strcmp(key, "cluster") == 0) {
        uint64_t v;
        if (z->host->parse_size(value, &v) < 0 || v < PS || v > EMM_ZSTD_MAX_CLUSTER ||
            (v & (v - 1))) {
            snprintf(err, errlen, "'%s' is not a power of two from 4K to 256K", value);
            return -EINVAL;
        }
        z->cluster = (size_t)v;
        return 0;
    }
    if (strcmp(key, "level") == 0) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < -5 || v > 19 || v == 0) {
            snprintf(err, errlen, "'%s' is not a level (1..19, or -5..-1 for fast)", value);
            return -EINVAL;
        }
        z->level = (int)v;
        return 0;
    }
    if (strcmp(key, "dict") == 0) {
        if (strcmp(value, "auto") == 0 || strcmp(value, "off") == 0) {
            z->dict_auto = value[0] == 'a';
            return 0;
        }
        snprintf(err, errlen, "'%s' is not 'auto' or 'off'", value);
        return -EINVAL;
    }
    snprintf(err, errlen, "unknown key (zstd takes: cluster, level, dict)");
    return -EINVAL;
}

static int
z_config_complete(void *instance, char *err, size_t errlen)
{
    struct zst *z = instance;
    (void)err, (void)errlen;
    z->ppc = (uint32_t)(z->cluster / PS);
    z->stride = z->ppc + 1;
    z->max_cluster = UINT64_MAX / z->stride - 1;
    z->dict_state = z->dict_auto ? DICT_COLLECTING : DICT_OFF;
    return 0;
}

static int
z_start(void *instance)
{
    return meta_load(instance);
}

static void
z_destroy(void *instance)
{
    struct zst *z = instance;
    for (int b = 0; b < OBJ_BUCKETS; b++)
        for (struct zobj *e = z->objs[b], *n; e; e = n) {
            n = e->next;
            pthread_rwlock_destroy(&e->lock);
            free(e);
        }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&z->stripe[i]);
    pthread_mutex_destroy(&z->objs_lock);
    pthread_mutex_destroy(&z->dict_lock);
    ZSTD_freeCDict(z->cdict);
    ZSTD_freeDDict(z->ddict);
    free(z->samples);
    free(z);
}

/* ---- data path -------------------------------------------------------------- */

static int
check_range(struct zst *z, uint64_t obj, uint64_t last_page)
{
    if (obj == META_OBJECT)
        return -EINVAL; /* reserved below */
    return last_page / z->ppc > z->max_cluster ? -EFBIG : 0;
}

static int
z_read(void *instance, uint64_t obj, uint64_t first, uint32_t n, void *buf, uint8_t *present)
{
    struct zst *z = instance;
    struct ztls *t = tls_get();
    unsigned char *out = buf;
    uint8_t cpres[MAX_PPC];
    int r = check_range(z, obj, first + n - 1);

    if (r < 0)
        return r;
    if (!t)
        return -ENOMEM;
    for (uint64_t p = first; p < first + n;) {
        uint64_t c = p / z->ppc, cs = c * z->ppc, end = cs + z->ppc;
        uint64_t hi = end < first + n ? end : first + n;
        int whole = p == cs && hi == end;
        unsigned char *dst = whole ? out + (p - first) * PS : t->clus;
        uint8_t *pdst = whole ? present + (p - first) : cpres;
        struct cstate s;
        pthread_mutex_t *m = stripe_of(z, obj, c);

        pthread_mutex_lock(m);
        r = read_header(z, t, obj, c, &s);
        if (r == 0)
            r = read_rest(z, t, obj, c, &s, dst, pdst);
        pthread_mutex_unlock(m);
        if (r < 0)
            return r;
        if (!whole) {
            memcpy(out + (p - first) * PS, t->clus + (p - cs) * PS, (hi - p) * PS);
            memcpy(present + (p - first), cpres + (p - cs), hi - p);
        }
        p = hi;
    }
    return 0;
}

/*
 * Stores data (one cluster, bitmap of present pages) as cluster c, replacing
 * what `old` describes; the stripe is held. An all-zero cluster becomes a hole.
 */
static int
store_cluster(struct zst *z, struct ztls *t, struct zobj *e, uint64_t obj, uint64_t c,
              const unsigned char *data, uint64_t bitmap, const struct cstate *old)
{
    int64_t op, ou, np = 0, nu = 0;
    int r = 0;

    cstate_counts(z, old, &op, &ou);
    if (!bitmap || all_zero(data, z->cluster)) {
        if (old->state != 0)
            r = z->host->next_discard(z->host->next, obj, slot_of(z, c), z->stride);
        if (bitmap)
            atomic_fetch_add(&z->zero_clusters, 1);
    } else {
        int ready = atomic_load_explicit(&z->dict_ready, memory_order_acquire);
        size_t len;
        r = encode(data, z->cluster, bitmap, z->level, ready ? z->cdict : NULL,
                   ready ? z->dict_id : 0, t->cctx, t->slot, (MAX_PPC + 1) * PS, &len);
        if (r < 0)
            return r;
        nu = (int64_t)pages_for(len);
        np = __builtin_popcountll(bitmap);
        r = z->host->next_write_pages(z->host->next, obj, slot_of(z, c), (uint32_t)nu, t->slot);
        if (r < 0)
            return r; /* the old image may be torn: counted as it was */
        atomic_fetch_add(t->slot[5] & F_RAW ? &z->raw_clusters : &z->compressed_clusters, 1);
        obj_account(e, np - op, nu - ou);
        /* A failure here leaves unused pages below: harmless, the header rules. */
        if (ou > nu)
            r = z->host->next_discard(z->host->next, obj, slot_of(z, c) + (uint64_t)nu,
                                      (uint64_t)(ou - nu));
        return r;
    }
    if (r == 0)
        obj_account(e, np - op, nu - ou);
    return r;
}

static int
z_write(void *instance, uint64_t obj, uint64_t first, uint32_t n, const void *buf)
{
    struct zst *z = instance;
    struct ztls *t = tls_get();
    const unsigned char *in = buf;
    int scan_err, r = check_range(z, obj, first + n - 1);

    if (r < 0)
        return r;
    if (!t)
        return -ENOMEM;
    struct zobj *e = obj_enter(z, obj, &scan_err);
    for (uint64_t p = first; p < first + n && r == 0;) {
        uint64_t c = p / z->ppc, cs = c * z->ppc, end = cs + z->ppc;
        uint64_t hi = end < first + n ? end : first + n;
        const unsigned char *data = NULL;
        uint64_t bitmap = 0;
        struct cstate old;
        pthread_mutex_t *m = stripe_of(z, obj, c);

        pthread_mutex_lock(m);
        r = read_header(z, t, obj, c, &old);
        if (r == 0 && p == cs && hi == end) {
            data = in + (p - first) * PS;
            bitmap = ppc_mask(z->ppc);
        } else if (r == 0) { /* read-modify-write */
            uint8_t cpres[MAX_PPC];
            r = read_rest(z, t, obj, c, &old, t->clus, cpres);
            for (uint32_t i = 0; r == 0 && i < z->ppc; i++)
                bitmap |= (uint64_t)cpres[i] << i;
            memcpy(t->clus + (p - cs) * PS, in + (p - first) * PS, (hi - p) * PS);
            bitmap |= ppc_mask((uint32_t)(hi - p)) << (p - cs);
            data = t->clus;
        }
        if (r == 0)
            r = store_cluster(z, t, e, obj, c, data, bitmap, &old);
        pthread_mutex_unlock(m);
        if (r == 0 && atomic_load(&z->dict_state) == DICT_COLLECTING)
            dict_sample(z, in + (p - first) * PS, hi - p); /* re-checked under its lock */
        p = hi;
    }
    if (e)
        pthread_rwlock_unlock(&e->lock);
    return r;
}

/* Forgets whole clusters [from, to] (to inclusive), one stored cluster at a time. */
static int
discard_clusters(struct zst *z, struct ztls *t, struct zobj *e, uint64_t obj, uint64_t from,
                 uint64_t to)
{
    uint64_t c = from, q;

    while (c <= to) {
        int r = z->host->next_seek(z->host->next, obj, slot_of(z, c), 1, &q);
        if (r == -ENXIO)
            return 0;
        if (r == -EOPNOTSUPP) /* no seek below: discard blindly (counts go stale) */
            return z->host->next_discard(z->host->next, obj, slot_of(z, from),
                                         to >= z->max_cluster ? UINT64_MAX
                                                              : (to - from + 1) * z->stride);
        if (r < 0)
            return r;
        c = q / z->stride;
        if (c > to)
            return 0;
        struct cstate old;
        pthread_mutex_t *m = stripe_of(z, obj, c);
        pthread_mutex_lock(m);
        r = read_header(z, t, obj, c, &old);
        if (r == 0)
            r = store_cluster(z, t, e, obj, c, NULL, 0, &old);
        if (r == 0 && old.state == 0) /* stray pages without a header */
            r = z->host->next_discard(z->host->next, obj, slot_of(z, c), z->stride);
        pthread_mutex_unlock(m);
        if (r < 0)
            return r;
        c++;
    }
    return 0;
}

static int
z_discard(void *instance, uint64_t obj, uint64_t first, uint64_t n)
{
    struct zst *z = instance;
    struct ztls *t = tls_get();
    uint64_t last = n == UINT64_MAX || first + n < first ? UINT64_MAX : first + n - 1;
    int scan_err, r = 0;

    if (obj == META_OBJECT)
        return -EINVAL;
    if (!t)
        return -ENOMEM;
    if (first / z->ppc > z->max_cluster)
        return 0;
    if (last / z->ppc > z->max_cluster)
        last = UINT64_MAX;
    struct zobj *e = obj_enter(z, obj, &scan_err);
    for (uint64_t p = first; r == 0;) {
        uint64_t c = p / z->ppc, cs = c * z->ppc, ce = cs + z->ppc - 1;
        if (p == cs && (last == UINT64_MAX || last >= ce)) {
            uint64_t to = last == UINT64_MAX ? z->max_cluster : (last - ce) / z->ppc + c;
            r = discard_clusters(z, t, e, obj, c, to);
            if (to >= z->max_cluster || (p = (to + 1) * z->ppc) > last)
                break;
            continue;
        }
        /* Part of one cluster: read-modify-write with those pages cleared. */
        uint64_t hi = last < ce ? last : ce;
        struct cstate old;
        uint8_t cpres[MAX_PPC];
        pthread_mutex_t *m = stripe_of(z, obj, c);
        pthread_mutex_lock(m);
        r = read_header(z, t, obj, c, &old);
        if (r == 0 && old.state != 0) {
            r = read_rest(z, t, obj, c, &old, t->clus, cpres);
            uint64_t bitmap = 0;
            for (uint32_t i = 0; r == 0 && i < z->ppc; i++)
                bitmap |= (uint64_t)cpres[i] << i;
            bitmap &= ~(ppc_mask((uint32_t)(hi - p + 1)) << (p - cs));
            memset(t->clus + (p - cs) * PS, 0, (hi - p + 1) * PS);
            if (r == 0)
                r = store_cluster(z, t, e, obj, c, t->clus, bitmap, &old);
        }
        pthread_mutex_unlock(m);
        if (hi == last || hi == UINT64_MAX)
            break;
        p = hi + 1;
    }
    if (e)
        pthread_rwlock_unlock(&e->lock);
    return r;
}

static int
z_sync(void *instance, uint64_t obj)
{
    struct zst *z = instance;
    return z->host->next_sync(z->host->next, obj);
}

static int
z_seek(void *instance, uint64_t obj, uint64_t from, int want_data, uint64_t *found)
{
    struct zst *z = instance;
    struct ztls *t = tls_get();
    uint64_t c = from / z->ppc, q;

    if (obj == META_OBJECT)
        return -EINVAL;
    if (!t)
        return -ENOMEM;
    for (;;) {
        if (c > z->max_cluster) {
            *found = from;
            return want_data ? -ENXIO : 0;
        }
        if (want_data) {
            int r = z->host->next_seek(z->host->next, obj, slot_of(z, c), 1, &q);
            if (r < 0)
                return r;
            if (q / z->stride > c) {
                c = q / z->stride;
                if (c > z->max_cluster)
                    return -ENXIO;
                from = c * z->ppc;
            }
        }
        struct cstate s;
        pthread_mutex_t *m = stripe_of(z, obj, c);
        pthread_mutex_lock(m);
        int r = read_header(z, t, obj, c, &s);
        pthread_mutex_unlock(m);
        if (r < 0)
            return r;
        /* A bad header counts as all present: reading it will say EIO. */
        uint64_t bits = s.state == 0 ? 0 : s.state > 0 ? s.h.bitmap : ppc_mask(z->ppc);
        if (!want_data)
            bits = ~bits & ppc_mask(z->ppc);
        bits >>= from - c * z->ppc;
        if (bits) {
            *found = from + (uint64_t)__builtin_ctzll(bits);
            return 0;
        }
        c++;
        from = c * z->ppc;
    }
}

static int
z_stored_pages(void *instance, uint64_t obj, uint64_t *count)
{
    struct zst *z = instance;
    int scan_err;

    if (obj == META_OBJECT)
        return -EINVAL;
    struct zobj *e = obj_enter(z, obj, &scan_err);
    if (!e)
        return -ENOMEM;
    int64_t pages = atomic_load(&e->pages);
    int known = e->known;
    pthread_rwlock_unlock(&e->lock);
    if (!known)
        return scan_err < 0 ? scan_err : -EIO;
    *count = pages < 0 ? 0 : (uint64_t)pages;
    return 0;
}

static int
z_info(void *instance, char *buf, size_t len)
{
    static const char *const states[] = {"off", "collecting", "training", "ready", "failed"};
    struct zst *z = instance;
    int64_t pages = 0, used = 0;
    uint64_t objects = 0;

    pthread_mutex_lock(&z->objs_lock);
    for (int b = 0; b < OBJ_BUCKETS; b++)
        for (struct zobj *e = z->objs[b]; e; e = e->next)
            if (e->known) {
                pages += atomic_load(&e->pages);
                used += atomic_load(&e->used);
                objects++;
            }
    pthread_mutex_unlock(&z->objs_lock);
    pthread_mutex_lock(&z->dict_lock);
    int state = z->dict_state;
    pthread_mutex_unlock(&z->dict_lock);
    uint64_t logical = (uint64_t)(pages > 0 ? pages : 0) * PS;
    uint64_t stored = (uint64_t)(used > 0 ? used : 0) * PS;
    int w = snprintf(buf, len,
                     "cluster:%zu\nlevel:%d\ndict:%s\ndict_id:%" PRIu32 "\nobjects_counted:%" PRIu64
                     "\nlogical_bytes:%" PRIu64 "\nstored_bytes:%" PRIu64 "\nratio:%.2f\n"
                     "zero_clusters:%" PRIu64 "\nraw_clusters:%" PRIu64
                     "\ncompressed_clusters:%" PRIu64 "\ncorrupt_clusters:%" PRIu64 "\n",
                     z->cluster, z->level, states[state],
                     atomic_load_explicit(&z->dict_ready, memory_order_acquire) ? z->dict_id : 0,
                     objects, logical, stored, stored ? (double)logical / (double)stored : 0.0,
                     atomic_load(&z->zero_clusters), atomic_load(&z->raw_clusters),
                     atomic_load(&z->compressed_clusters), atomic_load(&z->corrupt_clusters));
    return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}

const struct emm_backend_ops emm_backend_zstd_ops = {
    .struct_size = sizeof(struct emm_backend_ops),
    .api_version = EMM_BACKEND_API_VERSION,
    .thread_model = EMM_THREAD_PARALLEL,
    .name = "zstd",
    /* NONBLOCKING for itself; the host clears it unless the layers below are too. */
    .flags = EMM_BACKEND_NONBLOCKING | EMM_BACKEND_FILTER,
    .create = z_create,
    .config = z_config,
    .config_complete = z_config_complete,
    .start = z_start,
    .destroy = z_destroy,
    .read_pages = z_read,
    .write_pages = z_write,
    .discard = z_discard,
    .sync = z_sync,
    .seek = z_seek,
    .stored_pages = z_stored_pages,
    .info = z_info,
};
