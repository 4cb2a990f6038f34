/*
 * msg.c - messages: allocation and the names of ids. Stateless: no locking.
 * Releasing a message (it drops the rights its header still carries) and a
 * pager's answer to a data_return (it sends) are port.c's: this file calls
 * nothing above it, port.c calls it.
 */
#include <stdlib.h>
#include <string.h>

#include "port.h"

static void
msg_free_release(struct emm_msg *msg, int status)
{
    (void)status;
    free(msg);
}

struct emm_msg *
emm_msg_new(uint32_t id, uint64_t offset, uint64_t length)
{
    struct emm_msg *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->id = id;
    m->offset = offset;
    m->length = length;
    m->release = msg_free_release;
    return m;
}

const char *
emm_msg_name(uint32_t id)
{
    switch (id) {
    case MO_INIT: return "init";
    case MO_DATA_REQUEST: return "data_request";
    case MO_DATA_UNLOCK: return "data_unlock";
    case MO_DATA_RETURN: return "data_return";
    case MO_LOCK_COMPLETED: return "lock_completed";
    case MO_SUPPLY_COMPLETED: return "supply_completed";
    case MO_CHANGE_COMPLETED: return "change_completed";
    case MO_SYNCHRONIZE: return "synchronize";
    case MO_TERMINATE: return "terminate";
    case MO_DISCARD: return "discard";
    case MO_DATA_QUERY: return "data_query";
    case MO_READY: return "ready";
    case MO_DATA_SUPPLY: return "data_supply";
    case MO_DATA_UNAVAILABLE: return "data_unavailable";
    case MO_DATA_ERROR: return "data_error";
    case MO_LOCK_REQUEST: return "lock_request";
    case MO_CHANGE_ATTRIBUTES: return "change_attributes";
    case MO_DESTROY: return "destroy";
    case MO_SYNCHRONIZE_COMPLETED: return "synchronize_completed";
    case MO_QUERY_REPLY: return "query_reply";
    case MO_DATA_RETURN_COMPLETED: return "data_return_completed";
    case MO_NS_LOOKUP: return "ns_lookup";
    case MO_NS_READDIR: return "ns_readdir";
    case MO_NS_CREATE: return "ns_create";
    case MO_NS_REMOVE: return "ns_remove";
    case MO_NS_RENAME: return "ns_rename";
    case MO_NS_SETATTR: return "ns_setattr";
    case MO_NS_GETATTR: return "ns_getattr";
    case MO_NS_STATS: return "ns_stats";
    case MO_NS_REPLY: return "ns_reply";
    case MO_LOCK_ACQUIRE: return "lock_acquire";
    case MO_LOCK_RELEASE: return "lock_release";
    case MO_LOCK_TEST: return "lock_test";
    case MO_LOCK_CANCEL: return "lock_cancel";
    case MO_LOCK_REPLY: return "lock_reply";
    default: return "unknown";
    }
}

int
emm_msg_id_known(uint32_t id)
{
    return strcmp(emm_msg_name(id), "unknown") != 0;
}
