/*
 * vm_dpager.h - what the kernel needs from the default pager (Mach's
 * vm_set_default_memory_manager and memory_object_create). swapfs implements
 * it; emmd hands it to vm_kernel_set_default_pager. The kernel layer never
 * links swapfs: it speaks to the default pager by messages on a per-object
 * port, plus the few synchronous queries below.
 *
 * Objects are named by a key: bit 63 says temporary (backend = none: the default
 * pager is the object's only pager, its pages die with the service), bits
 * 48..62 name the filesystem, bits 0..47 the object id within it. Keys of
 * persistent objects survive a restart, so double-paged pages can be replayed.
 *
 * Messages the kernel sends to an object's default-pager port:
 * - temporary objects: the whole protocol, as to any pager (init -> ready,
 *   data_request -> data_supply / data_unavailable, data_return, discard,
 *   synchronize, terminate);
 * - other objects (double paging): no init. data_return (a page its own pager
 *   failed to take), data_request only for pages the default pager holds (a
 *   page it no longer holds is answered data_unavailable with MO_F_NOT_HELD:
 *   ask the object's own pager), discard (the copy is obsolete: the object's
 *   pager took the page, or the range was punched), terminate (the kernel lets
 *   go; the pages stay for the next attach). Replies go to msg->control.
 * A data_return is answered with MO_DATA_RETURN_COMPLETED, to the message's
 * reply port (the kernel's per-object port for the default pager's answers)
 * or else to msg->control: errno 0 once the page is on disk, or an errno
 * (ENOSPC: swap full), and the kernel then kills the object.
 *
 * Locking: the queries take only the default pager's own locks, which are
 * leaves: the kernel calls them with an object lock held.
 */
#ifndef EMM_VM_DPAGER_H
#define EMM_VM_DPAGER_H

#include <stdint.h>

#include "port.h"

#define VM_DP_TEMPORARY (1ull << 63)
#define VM_DP_FS_SHIFT 48
#define VM_DP_FS_MASK 0x7fffull
#define VM_DP_ID_MASK ((1ull << VM_DP_FS_SHIFT) - 1)

static inline uint64_t
vm_dp_key(unsigned fs_tag, uint64_t id, int temporary)
{
    return (temporary ? VM_DP_TEMPORARY : 0) | ((uint64_t)(fs_tag & VM_DP_FS_MASK) << VM_DP_FS_SHIFT) |
           (id & VM_DP_ID_MASK);
}

struct vm_dpager_ops {
    /* A send right to the default pager's port for key, and a handle for the
     * queries; the same key gets the same pages (recovered ones included).
     * Called when an object is created, never on the pageout path. */
    int (*attach)(void *ctx, uint64_t key, struct emm_port **port, void **handle);
    /* The kernel is done with the handle (after it sent terminate). */
    void (*detach)(void *ctx, void *handle);
    /* Pages the default pager holds for the object. Cheap: an atomic load. */
    uint64_t (*pages)(void *ctx, void *handle);
    /* Does it hold page index? One lookup (the fault path asks page by page). */
    int (*holds)(void *ctx, void *handle, uint64_t index);
    /* The first page index >= from that it holds, or UINT64_MAX (replay; may
     * walk the whole map). */
    uint64_t (*next_page)(void *ctx, void *handle, uint64_t from);
};

#endif
