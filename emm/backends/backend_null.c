/*
 * backend_null.c - the "null" backend, emm's performance floor: every page of
 * every object exists and is generated on read (see emm_backend_null_word);
 * writes are accepted and dropped, discard and sync do nothing.
 *
 * Semantics: seek(data) returns `from` (everything is data); seek(hole) gives
 * -ENXIO (there are no holes); stored_pages is 0 (nothing is stored).
 *
 * Locking: stateless, so none. Thread model PARALLEL.
 */
#include <errno.h>
#include <string.h>

#include "backend_host.h"

#define NULL_MIX 0x9E3779B97F4A7C15ull

uint64_t
emm_backend_null_word(uint64_t object, uint64_t page, unsigned word)
{
    return (object * NULL_MIX) ^ (page * (EMM_PAGE_SIZE / 8) + word);
}

static int null_instance; /* a non-NULL handle; there is no state */

static int
null_create(const struct emm_backend_host *host, void **instance)
{
    (void)host;
    *instance = &null_instance;
    return 0;
}

static int
null_read(void *instance, uint64_t object, uint64_t first, uint32_t npages, void *buf,
          uint8_t *present)
{
    uint64_t *w = buf;
    uint64_t key = object * NULL_MIX;
    uint64_t idx = first * (EMM_PAGE_SIZE / 8);
    size_t n = (size_t)npages * (EMM_PAGE_SIZE / 8);

    (void)instance;
    for (size_t i = 0; i < n; i++)
        w[i] = key ^ (idx + i);
    memset(present, 1, npages);
    return 0;
}

static int
null_write(void *instance, uint64_t object, uint64_t first, uint32_t npages, const void *buf)
{
    (void)instance, (void)object, (void)first, (void)npages, (void)buf;
    return 0;
}

static int
null_discard(void *instance, uint64_t object, uint64_t first, uint64_t npages)
{
    (void)instance, (void)object, (void)first, (void)npages;
    return 0;
}

static int
null_sync(void *instance, uint64_t object)
{
    (void)instance, (void)object;
    return 0;
}

static int
null_seek(void *instance, uint64_t object, uint64_t from, int want_data, uint64_t *found)
{
    (void)instance, (void)object;
    if (!want_data)
        return -ENXIO;
    *found = from;
    return 0;
}

static int
null_stored_pages(void *instance, uint64_t object, uint64_t *count)
{
    (void)instance, (void)object;
    *count = 0;
    return 0;
}

const struct emm_backend_ops emm_backend_null_ops = {
    .struct_size = sizeof(struct emm_backend_ops),
    .api_version = EMM_BACKEND_API_VERSION,
    .thread_model = EMM_THREAD_PARALLEL,
    .name = "null",
    .flags = EMM_BACKEND_NONBLOCKING,
    .create = null_create,
    .read_pages = null_read,
    .write_pages = null_write,
    .discard = null_discard,
    .sync = null_sync,
    .seek = null_seek,
    .stored_pages = null_stored_pages,
};
