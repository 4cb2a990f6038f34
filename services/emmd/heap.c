/*
 * heap.c - keeps emmd's heap honest, so resident-limit holds for the whole
 * process (issue 10): bounded malloc arenas, large blocks in their own
 * mappings (given back at free), and a periodic malloc_trim that returns free
 * heap pages to the system after a burst (a deleted object of the memory
 * backend, a storm of requests). Also reads the process's resident set for
 * `emmctl info memory`, with what bounds the LMDB maps (lmdb_maps.c).
 *
 * Locking: none of its own (glibc's allocator locks; /proc is read per call).
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "emmd.h"
#include "lmdb_shared.h"

/* Free heap bytes above which a trim is worth its walk of the arenas. */
#define TRIM_SLACK ((size_t)1 << 20)

void
emmd_heap_init(void)
{
    /* Two arenas: emmd's threads allocate little (messages, requests), so
     * contention is low, and each arena's free memory counts in the RSS. */
    mallopt(M_ARENA_MAX, 2);
    /* A fixed threshold: blocks of 128 KiB and more get their own mapping and
     * go back to the system when freed (the dynamic threshold would grow to
     * keep them in the heap after the first free). Measured: at 4 MiB, the
     * 1 MiB supply buffers stayed in the heap between trims and the resident
     * set passed its bound under load (t_rss_bound). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
}

size_t
emmd_heap_trim(void)
{
    struct mallinfo2 mi = mallinfo2();
    if (mi.fordblks < TRIM_SLACK)
        return 0;
    malloc_trim(0);
    struct mallinfo2 after = mallinfo2();
    return mi.arena > after.arena ? mi.arena - after.arena : 0;
}

void
emmd_heap_stats(struct emmd_heap_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct mallinfo2 mi = mallinfo2();
    out->heap_bytes = mi.arena + mi.hblkhd;
    out->heap_free_bytes = mi.fordblks;
    out->heap_mmap_bytes = mi.hblkhd;
    struct emm_lmdb_maps_stats ls;
    emm_lmdb_maps_stats(&ls);
    out->lmdb_maps = ls.maps;
    out->lmdb_map_bytes = ls.mapped_bytes;
    out->lmdb_map_limit_bytes = ls.limit_bytes;
    out->lmdb_map_checks = ls.checks;
    out->lmdb_map_trims = ls.trims;
    FILE *f = fopen("/proc/self/status", "re");
    if (f == NULL)
        return;
    char line[256];
    unsigned long long v;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %llu", &v) == 1)
            out->rss_bytes = v * 1024;
        else if (sscanf(line, "VmHWM: %llu", &v) == 1)
            out->rss_peak_bytes = v * 1024;
        else if (sscanf(line, "RssAnon: %llu", &v) == 1)
            out->rss_anon_bytes = v * 1024;
        else if (sscanf(line, "RssFile: %llu", &v) == 1)
            out->rss_file_bytes = v * 1024;
    }
    fclose(f);
}
