/*
 * vm_msgcheck.c - the kernel never trusts a pager: every pager -> kernel
 * message is checked where it is received (memory_object.c's handlers) before
 * anything acts on it. A message that fails is refused: logged once per
 * object with the pager's name and the field, counted (bad_messages), and
 * released without effect, so the object stays as it was.
 *
 * Two steps: vm_msg_check_form looks at the message alone (known id sent in
 * this direction, page-aligned offset and length, lengths within one request,
 * data present, flags, access bits and errnos that make sense for the id);
 * vm_msg_check_range looks at the object under its lock (the pages named are
 * inside the object or were asked for).
 *
 * Locking: form needs none; range and refuse run with obj->lock held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "log.h"
#include "vm_internal.h"

#define ERRNO_MAX 4095 /* a positive errno is below this */

static int
aligned(uint64_t v)
{
    return (v & (VM_PS - 1)) == 0;
}

static int
fail(const char **field, const char *f)
{
    *field = f;
    return -EBADMSG;
}

/* offset and length of a run of pages: aligned, not empty, one request at most. */
static int
check_run(const struct emm_msg *msg, uint64_t max_bytes, const char **field)
{
    if (!aligned(msg->offset))
        return fail(field, "offset");
    if (msg->length == 0 || !aligned(msg->length) || msg->length > max_bytes ||
        msg->length > UINT64_MAX - msg->offset)
        return fail(field, "length");
    return 0;
}

static int
errno_ok(int32_t e, int zero_ok)
{
    return (e > 0 || (zero_ok && e == 0)) && e <= ERRNO_MAX;
}

int
vm_msg_check_form(const struct emm_msg *msg, int from_dp, const char **field)
{
    if (from_dp && msg->id != MO_DATA_RETURN_COMPLETED)
        return fail(field, "id");
    switch (msg->id) {
    case MO_READY:
    case MO_CHANGE_ATTRIBUTES:
        if (msg->flags & ~(MO_F_MAY_CACHE | MO_F_CLUSTER_OK | MO_F_STRICT_WRITE))
            return fail(field, "flags");
        if (msg->arg < MO_COPY_NONE || msg->arg > MO_COPY_TEMPORARY)
            return fail(field, "arg (copy strategy)");
        return msg->access != 0 ? fail(field, "access") : 0;
    case MO_DATA_SUPPLY:
        if (check_run(msg, EMM_MAX_REQUEST_BYTES, field) < 0)
            return -EBADMSG;
        if (msg->data == NULL)
            return fail(field, "data");
        if (msg->flags & ~MO_F_PRECIOUS)
            return fail(field, "flags");
        return msg->access & ~VM_PROT_ALL ? fail(field, "access (lock value)") : 0;
    case MO_DATA_UNAVAILABLE:
    case MO_DATA_ERROR:
        if (check_run(msg, EMM_MAX_REQUEST_BYTES, field) < 0)
            return -EBADMSG;
        if (msg->flags & ~(msg->id == MO_DATA_UNAVAILABLE ? MO_F_NOT_HELD : 0u))
            return fail(field, "flags");
        if (msg->id == MO_DATA_ERROR && !errno_ok(msg->arg, 0))
            return fail(field, "arg (errno)");
        return msg->access != 0 ? fail(field, "access") : 0;
    case MO_LOCK_REQUEST:
        if (!aligned(msg->offset))
            return fail(field, "offset");
        if (msg->length != UINT64_MAX &&
            (!aligned(msg->length) || msg->length > UINT64_MAX - msg->offset))
            return fail(field, "length");
        if (msg->arg != MO_RETURN_NONE && msg->arg != MO_RETURN_DIRTY &&
            msg->arg != MO_RETURN_ALL)
            return fail(field, "arg (should_return)");
        if (msg->flags & ~MO_F_FLUSH)
            return fail(field, "flags");
        if ((msg->access & ~VM_PROT_ALL) && msg->access != VM_PROT_NO_CHANGE)
            return fail(field, "access (lock value)");
        return 0;
    case MO_DESTROY:
        return errno_ok(msg->arg, 1) ? 0 : fail(field, "arg (errno)");
    case MO_SYNCHRONIZE_COMPLETED:
        return errno_ok(msg->arg, 1) ? 0 : fail(field, "arg (errno)");
    case MO_QUERY_REPLY: /* arg: the query's tag, any value */
        if (msg->flags == MO_F_QUERY_INFO) { /* one page of text */
            if (msg->offset != 0)
                return fail(field, "offset");
            if (msg->length != VM_PS)
                return fail(field, "length");
            if (msg->data == NULL)
                return fail(field, "data");
            return msg->access != 0 ? fail(field, "access") : 0;
        }
        if (msg->flags == MO_F_QUERY_COUNT) { /* how many pages: length = count * page */
            if (msg->offset != 0)
                return fail(field, "offset");
            if (!aligned(msg->length) && msg->length != UINT64_MAX) /* MAX: cannot tell */
                return fail(field, "length");
            return msg->access != 0 ? fail(field, "access") : 0;
        }
        if (msg->offset == UINT64_MAX) { /* nothing stored from the query's offset */
            if (msg->length != 0)
                return fail(field, "length");
        } else {
            if (!aligned(msg->offset))
                return fail(field, "offset");
            if (msg->length != UINT64_MAX && /* UINT64_MAX: to the end */
                (msg->length == 0 || !aligned(msg->length) ||
                 msg->length > UINT64_MAX - msg->offset))
                return fail(field, "length");
        }
        if (msg->flags != 0)
            return fail(field, "flags");
        return msg->access != 0 ? fail(field, "access") : 0;
    case MO_DATA_RETURN_COMPLETED:
        if (check_run(msg, EMM_MAX_REQUEST_BYTES, field) < 0)
            return -EBADMSG;
        return errno_ok(msg->arg, 1) ? 0 : fail(field, "arg (errno)");
    default:
        /* unknown, or a kernel -> pager message sent the wrong way */
        return fail(field, "id");
    }
}

int
vm_msg_check_range(struct vm_object *obj, const struct emm_msg *msg, const char **field)
{
    if (msg->id != MO_DATA_SUPPLY && msg->id != MO_DATA_UNAVAILABLE && msg->id != MO_DATA_ERROR)
        return 0;
    uint64_t first = msg->offset / VM_PS, n = msg->length / VM_PS;
    uint64_t size_pages = obj->size / VM_PS + (obj->size % VM_PS != 0);
    for (uint64_t i = 0; i < n; i++) {
        if (first + i < size_pages)
            continue;
        struct vm_page *p = vm_obj_page_lookup(obj, first + i);
        if (p == NULL || p->state != VM_PAGE_ABSENT)
            return fail(field, first == first + i ? "offset (beyond the object, not asked for)"
                                                  : "length (beyond the object, not asked for)");
    }
    return 0;
}

void
vm_msg_refuse(struct vm_object *obj, const struct emm_msg *msg, int from_dp, const char *field)
{
    atomic_fetch_add(&obj->kernel->stats.bad_messages, 1);
    if (obj->bad_msg_logged)
        return;
    obj->bad_msg_logged = 1;
    char who[160];
    if (from_dp)
        snprintf(who, sizeof(who), "the default pager");
    else if (obj->pager_name != NULL)
        snprintf(who, sizeof(who), "the pager of fs %s", obj->pager_name);
    else
        snprintf(who, sizeof(who), "its pager");
    emm_err("object %llu: %s sent a bad %s (id %u): %s is wrong (offset %#" PRIx64
            ", length %#" PRIx64 ", arg %d, access %#x, flags %#x): refused; later bad "
            "messages for this object are only counted (bad_messages)",
            (unsigned long long)obj->id, who, emm_msg_name(msg->id), msg->id, field,
            msg->offset, msg->length, msg->arg, msg->access, msg->flags);
}
