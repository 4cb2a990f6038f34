/*
 * ns_wire.c - packing namespace records and names into message data
 * (ns_wire.h). Stateless: no locking.
 */
#include "ns_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"

static size_t
pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

size_t
ns_rec_size(const struct emm_ns_rec *rec)
{
    return NS_REC_FIXED + pad8(strnlen(rec->name, NS_NAME_MAX));
}

int
ns_rec_put(void *buf, size_t cap, size_t *pos, const struct emm_ns_rec *rec)
{
    size_t nl = strnlen(rec->name, NS_NAME_MAX), need = NS_REC_FIXED + pad8(nl);
    if (*pos > cap || cap - *pos < need)
        return -ENOSPC;
    unsigned char *p = (unsigned char *)buf + *pos;
    memset(p, 0, need);
    emm_put_le64(p + 0, rec->id);
    emm_put_le64(p + 8, rec->size);
    emm_put_le64(p + 16, rec->parent);
    emm_put_le64(p + 24, (uint64_t)rec->atime_ns);
    emm_put_le64(p + 32, (uint64_t)rec->mtime_ns);
    emm_put_le64(p + 40, (uint64_t)rec->ctime_ns);
    emm_put_le32(p + 48, rec->mode);
    emm_put_le32(p + 52, rec->uid);
    emm_put_le32(p + 56, rec->gid);
    emm_put_le32(p + 60, rec->type);
    emm_put_le32(p + 64, (uint32_t)nl);
    memcpy(p + NS_REC_FIXED, rec->name, nl);
    *pos += need;
    return 0;
}

static int
name_ok(const char *s, size_t n, int allow_empty)
{
    if (n == 0)
        return allow_empty;
    if (memchr(s, '/', n) != NULL || memchr(s, '\0', n) != NULL)
        return 0;
    return !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

int
ns_rec_get(const void *buf, size_t cap, size_t *pos, struct emm_ns_rec *rec)
{
    if (*pos > cap || cap - *pos < NS_REC_FIXED)
        return 0; /* the end */
    const unsigned char *p = (const unsigned char *)buf + *pos;
    uint32_t nl = emm_get_le32(p + 64);
    uint64_t id = emm_get_le64(p + 0);
    if (nl == 0 && id == 0)
        return 0;
    if (nl > NS_NAME_MAX || cap - *pos - NS_REC_FIXED < pad8(nl))
        return -EBADMSG;
    memset(rec, 0, sizeof(*rec));
    rec->id = id;
    rec->size = emm_get_le64(p + 8);
    rec->parent = emm_get_le64(p + 16);
    rec->atime_ns = (int64_t)emm_get_le64(p + 24);
    rec->mtime_ns = (int64_t)emm_get_le64(p + 32);
    rec->ctime_ns = (int64_t)emm_get_le64(p + 40);
    rec->mode = emm_get_le32(p + 48) & 07777u;
    rec->uid = emm_get_le32(p + 52);
    rec->gid = emm_get_le32(p + 56);
    rec->type = emm_get_le32(p + 60);
    if (rec->type != NS_FILE && rec->type != NS_DIR)
        return -EBADMSG;
    /* The root's record has no name; every other one has a valid one. */
    if (!name_ok((const char *)p + NS_REC_FIXED, nl, id == NS_ROOT))
        return -EBADMSG;
    memcpy(rec->name, p + NS_REC_FIXED, nl);
    rec->name[nl] = '\0';
    *pos += NS_REC_FIXED + pad8(nl);
    return 1;
}

int
ns_name_put(void *buf, size_t cap, size_t *pos, const char *name)
{
    size_t nl = strnlen(name, NS_NAME_MAX + 1);
    if (nl > NS_NAME_MAX)
        return -ENAMETOOLONG;
    size_t need = 4 + ((nl + 3u) & ~(size_t)3u);
    if (*pos > cap || cap - *pos < need)
        return -ENOSPC;
    unsigned char *p = (unsigned char *)buf + *pos;
    memset(p, 0, need);
    emm_put_le32(p, (uint32_t)nl);
    memcpy(p + 4, name, nl);
    *pos += need;
    return 0;
}

int
ns_name_get(const void *buf, size_t cap, size_t *pos, char name[NS_NAME_MAX + 1])
{
    if (*pos > cap || cap - *pos < 4)
        return -EBADMSG;
    const unsigned char *p = (const unsigned char *)buf + *pos;
    uint32_t nl = emm_get_le32(p);
    size_t need = 4 + (((size_t)nl + 3u) & ~(size_t)3u);
    if (nl > NS_NAME_MAX || cap - *pos < need || !name_ok((const char *)p + 4, nl, 0))
        return -EBADMSG;
    memcpy(name, p + 4, nl);
    name[nl] = '\0';
    *pos += need;
    return 0;
}

void *
ns_buf(size_t bytes, size_t *cap)
{
    size_t n = bytes == 0 ? NS_PAGE : (bytes + NS_PAGE - 1) / NS_PAGE * NS_PAGE;
    void *b = NULL;
    if (posix_memalign(&b, NS_PAGE, n) != 0)
        return NULL;
    memset(b, 0, n);
    *cap = n;
    return b;
}
