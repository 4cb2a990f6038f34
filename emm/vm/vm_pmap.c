/*
 * vm_pmap.c - what a pager may store of an object: Mach's existence map
 * (vm_external), kept by the kernel so that the holes of a suspect pager can
 * be filled without asking it (a data_request or data_query would wait
 * behind the data_return it sits on). A set of disjoint page runs, sorted,
 * that is a superset of the pages the pager stores, for every index below
 * `known`:
 *  - learnt with data_query when the object is ready (vm_seek.c walks the
 *    pager's runs in message order), so pages it stored before are in;
 *  - every data_return sent to it adds its pages (whether taken or not:
 *    a superset never misses one), every discard takes its pages out.
 * A page below `known` in no run is one the pager does not store; any other
 * is "maybe", and the pager is asked. Bounded: past VM_PMAP_MAX_RUNS runs,
 * `known` drops to where the map stops being exact.
 *
 * It assumes this kernel is the only one that writes through the pager (as
 * every other count the kernel keeps does).
 *
 * Locking: the object's lock (the map lives in struct vm_object).
 */
#include <stdlib.h>
#include <string.h>

#include "vm_internal.h"

#define VM_PMAP_MAX_RUNS 256 /* 4 KiB per object at most: the map is not counted in the pool */

void
vm_pmap_fini(struct vm_pmap *pm)
{
    free(pm->runs);
    memset(pm, 0, sizeof(*pm));
}

/* Index of the first run whose end is > idx. */
static size_t
first_ending_after(const struct vm_pmap *pm, uint64_t idx)
{
    size_t lo = 0, hi = pm->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pm->runs[mid].end <= idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void
vm_pmap_add(struct vm_pmap *pm, uint64_t first, uint64_t end)
{
    if (end <= first)
        return;
    /* Runs that touch or overlap [first, end) merge into one. */
    size_t i = first_ending_after(pm, first > 0 ? first - 1 : 0);
    size_t j = i;
    while (j < pm->n && pm->runs[j].start <= end) {
        if (pm->runs[j].start < first)
            first = pm->runs[j].start;
        if (pm->runs[j].end > end)
            end = pm->runs[j].end;
        j++;
    }
    if (j > i) { /* replace runs [i, j) by one */
        pm->runs[i].start = first;
        pm->runs[i].end = end;
        memmove(&pm->runs[i + 1], &pm->runs[j], (pm->n - j) * sizeof(pm->runs[0]));
        pm->n -= j - i - 1;
        return;
    }
    if (pm->n == pm->cap) {
        size_t cap = pm->cap ? pm->cap * 2 : 16;
        struct vm_run *r = cap <= VM_PMAP_MAX_RUNS ? realloc(pm->runs, cap * sizeof(*r)) : NULL;
        if (r == NULL) {
            /* No room: the map is exact only below this run from now on. */
            if (first < pm->known)
                pm->known = first;
            return;
        }
        pm->runs = r;
        pm->cap = cap;
    }
    memmove(&pm->runs[i + 1], &pm->runs[i], (pm->n - i) * sizeof(pm->runs[0]));
    pm->runs[i].start = first;
    pm->runs[i].end = end;
    pm->n++;
}

void
vm_pmap_remove(struct vm_pmap *pm, uint64_t first, uint64_t end)
{
    if (end <= first)
        return;
    size_t i = first_ending_after(pm, first);
    while (i < pm->n && pm->runs[i].start < end) {
        struct vm_run *r = &pm->runs[i];
        if (r->start < first && r->end > end) { /* split in two */
            uint64_t tail = r->end;
            r->end = first;
            vm_pmap_add(pm, end, tail);
            return;
        }
        if (r->start < first) {
            r->end = first;
            i++;
        } else if (r->end > end) {
            r->start = end;
            return;
        } else {
            memmove(r, r + 1, (pm->n - i - 1) * sizeof(*r));
            pm->n--;
        }
    }
}

int
vm_pmap_lacks(const struct vm_pmap *pm, uint64_t idx)
{
    if (idx >= pm->known)
        return 0; /* not known: maybe */
    size_t i = first_ending_after(pm, idx);
    return i >= pm->n || pm->runs[i].start > idx;
}
