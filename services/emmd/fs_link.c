/*
 * fs_link.c - symbolic links and hard links in an emmd filesystem (fs_link.h).
 *
 * A symlink is a node with its target in its catalog record; it has no pages
 * and no vm object. A hard link is an entry node (EMM_CAT_HLINK) naming an
 * object by id; the object keeps the record of one of its names and lists its
 * other names' entries. Removing a name removes an entry: when the name is the
 * object's own, an entry's name becomes the object's (its record moves there
 * and the entry's record goes, in one catalog transaction), so the object
 * lives until its last name is gone and the kernel forgot it (fs.c).
 *
 * A filesystem on a memory server (pager = tcp) refuses both with EPERM: its
 * namespace is about to be the server's, shared by every host, and links there
 * would need the server to keep them.
 *
 * Locking: every function is called with fs->lock held and keeps it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs_link.h"
#include "log.h"

static int
refused_here(const struct emmd_fs *fs)
{
    return fs->cfg->pager_mode == EMM_PAGER_TCP;
}

/* dir can take a new entry called name. */
static int
check_new_name(struct emmd_fs *fs, struct emmd_node *dir, const char *name)
{
    if (dir == NULL || (dir->parent == NULL && dir != fs->root))
        return -ENOENT; /* a directory removed while the kernel still held it */
    if (!emmd_node_is_dir(dir))
        return -ENOTDIR;
    if (strlen(name) > EMM_NAME_MAX)
        return -ENAMETOOLONG;
    if (emmd_node_lookup(fs, dir, name) != NULL)
        return -EEXIST;
    return emmd_tree_reserve(dir);
}

static void
node_free(struct emmd_node *n)
{
    free(n->rec.target);
    free(n->kids);
    free(n);
}

int
emmd_link_symlink(struct emmd_fs *fs, struct emmd_node *dir, const char *name,
                  const char *target, uint32_t uid, uint32_t gid, struct emmd_node **out)
{
    if (refused_here(fs))
        return -EPERM;
    size_t tlen = strlen(target);
    if (tlen == 0)
        return -ENOENT; /* as Linux: an empty target */
    if (tlen > EMM_LINK_MAX)
        return -ENAMETOOLONG;
    int rc = check_new_name(fs, dir, name);
    if (rc < 0)
        return rc;
    struct emmd_node *n = calloc(1, sizeof(*n));
    if (n == NULL || (n->rec.target = strdup(target)) == NULL) {
        free(n);
        return -ENOMEM;
    }
    rc = emm_catalog_new_id(fs->catalog, &n->rec.id);
    if (rc < 0) {
        node_free(n);
        return rc;
    }
    n->fs = fs;
    snprintf(n->rec.name, sizeof(n->rec.name), "%s", name);
    n->rec.type = EMM_CAT_SYMLINK;
    n->rec.mode = 0777;
    n->rec.uid = uid;
    n->rec.gid = (dir->rec.mode & S_ISGID) ? dir->rec.gid : gid;
    n->rec.parent = dir->rec.id;
    int64_t now = emm_real_ns();
    n->rec.atime_ns = n->rec.mtime_ns = n->rec.ctime_ns = now;
    struct emm_catalog_rec puts[2] = {n->rec, emmd_tree_rec(dir)};
    puts[1].mtime_ns = puts[1].ctime_ns = now;
    rc = emm_catalog_update(fs->catalog, puts, 2, NULL, 0);
    if (rc < 0) {
        emm_err("fs %s: catalog: symlink '%s': %s", fs->cfg->name, name, strerror(-rc));
        node_free(n);
        return rc;
    }
    dir->rec.mtime_ns = dir->rec.ctime_ns = now;
    emmd_tree_enter(fs, n);
    emmd_tree_attach(fs, dir, n);
    *out = n;
    return 0;
}

int
emmd_link_hard(struct emmd_fs *fs, struct emmd_node *obj, struct emmd_node *dir,
               const char *name, struct emmd_node **out)
{
    if (refused_here(fs))
        return -EPERM;
    if (obj == NULL || obj->unlinked)
        return -ENOENT; /* (linkat of an unlinked file, as Linux without O_TMPFILE) */
    if (emmd_node_is_dir(obj) || obj->rec.type == EMM_CAT_HLINK)
        return -EPERM; /* directories cannot be hard-linked */
    int rc = check_new_name(fs, dir, name);
    if (rc < 0)
        return rc;
    struct emmd_node *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    rc = emm_catalog_new_id(fs->catalog, &e->rec.id);
    if (rc < 0) {
        free(e);
        return rc;
    }
    int64_t now = emm_real_ns();
    e->fs = fs;
    snprintf(e->rec.name, sizeof(e->rec.name), "%s", name);
    e->rec.type = EMM_CAT_HLINK;
    e->rec.link = obj->rec.id;
    e->rec.mode = obj->rec.mode;
    e->rec.uid = obj->rec.uid;
    e->rec.gid = obj->rec.gid;
    e->rec.parent = dir->rec.id;
    e->rec.atime_ns = e->rec.mtime_ns = e->rec.ctime_ns = now;
    struct emm_catalog_rec puts[3] = {e->rec, emmd_tree_rec(obj), emmd_tree_rec(dir)};
    puts[1].ctime_ns = now; /* its link count changed */
    puts[2].mtime_ns = puts[2].ctime_ns = now;
    rc = emm_catalog_update(fs->catalog, puts, 3, NULL, 0);
    if (rc < 0) {
        emm_err("fs %s: catalog: link '%s': %s", fs->cfg->name, name, strerror(-rc));
        free(e);
        return rc;
    }
    obj->rec.ctime_ns = now;
    dir->rec.mtime_ns = dir->rec.ctime_ns = now;
    emmd_tree_enter(fs, e);
    emmd_tree_attach(fs, dir, e);
    e->obj = obj;
    e->next_link = obj->links;
    obj->links = e;
    *out = obj;
    return 0;
}

struct emmd_node *
emmd_link_resolve(struct emmd_node *n)
{
    return n != NULL && n->rec.type == EMM_CAT_HLINK && n->obj != NULL ? n->obj : n;
}

int
emmd_link_owns(const struct emmd_node *n)
{
    return n->rec.type == EMM_CAT_HLINK || n->links != NULL;
}

/* Takes entry e off its object's list. */
static void
unlist(struct emmd_node *e)
{
    if (e->obj == NULL)
        return;
    struct emmd_node **pp = &e->obj->links;
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->next_link;
    if (*pp == e)
        *pp = e->next_link;
    e->next_link = NULL;
    e->obj = NULL;
}

/* Ends entry e (its record is gone): out of the tree, its object's list, freed. */
static void
entry_end(struct emmd_fs *fs, struct emmd_node *e)
{
    emmd_tree_detach(fs, e);
    unlist(e);
    emmd_tree_leave(fs, e);
    node_free(e);
}

void
emmd_link_replace_prep(const struct emmd_node *target, int64_t now, uint64_t *del,
                       struct emm_catalog_rec *put)
{
    if (target->rec.type == EMM_CAT_HLINK) {
        /* one name less: the object's ctime */
        *del = target->rec.id;
        *put = emmd_tree_rec(target->obj);
    } else {
        /* the object's own name goes: it takes its first entry's name */
        const struct emmd_node *e = target->links;
        *del = e->rec.id;
        *put = emmd_tree_rec(target);
        put->parent = e->rec.parent;
        memcpy(put->name, e->rec.name, sizeof(put->name));
    }
    put->ctime_ns = now;
}

void
emmd_link_replaced(struct emmd_fs *fs, struct emmd_node *target, int64_t now)
{
    if (target->rec.type == EMM_CAT_HLINK) {
        target->obj->rec.ctime_ns = now;
        entry_end(fs, target);
        return;
    }
    struct emmd_node *e = target->links, *edir = e->parent;
    char name[EMM_NAME_MAX + 1];
    memcpy(name, e->rec.name, sizeof(name));
    emmd_tree_detach(fs, target);
    entry_end(fs, e); /* frees a slot in edir for the object */
    memcpy(target->rec.name, name, sizeof(name));
    target->rec.ctime_ns = now;
    emmd_tree_attach(fs, edir, target);
}

int
emmd_link_remove(struct emmd_fs *fs, struct emmd_node *dir, struct emmd_node *n)
{
    int64_t now = emm_real_ns();
    struct emm_catalog_rec puts[2];
    uint64_t del;
    emmd_link_replace_prep(n, now, &del, &puts[0]);
    puts[1] = emmd_tree_rec(dir);
    puts[1].mtime_ns = puts[1].ctime_ns = now;
    /* (the object may be in dir too: the dir record is the later put, and
     * the object's never names dir's times) */
    int rc = emm_catalog_update(fs->catalog, puts, 2, &del, 1);
    if (rc < 0) {
        emm_err("fs %s: catalog: removing '%s': %s", fs->cfg->name, n->rec.name, strerror(-rc));
        return rc;
    }
    dir->rec.mtime_ns = dir->rec.ctime_ns = now;
    emmd_link_replaced(fs, n, now);
    return 0;
}

uint32_t
emmd_link_nlink(const struct emmd_node *n)
{
    if (n->unlinked)
        return 0;
    uint32_t k = 1;
    for (const struct emmd_node *e = n->links; e != NULL; e = e->next_link)
        k++;
    return k;
}

mode_t
emmd_link_ftype(const struct emmd_node *n)
{
    return emmd_node_is_dir(n) ? S_IFDIR : n->rec.type == EMM_CAT_SYMLINK ? S_IFLNK : S_IFREG;
}

int
emmd_link_stat(const struct emmd_node *n, struct stat *st)
{
    st->st_nlink = emmd_link_nlink(n);
    if (n->rec.type != EMM_CAT_SYMLINK)
        return 0;
    st->st_mode = S_IFLNK | 0777;
    st->st_size = n->rec.target != NULL ? (off_t)strlen(n->rec.target) : 0;
    st->st_blocks = 0;
    return 1;
}

int
emmd_link_loaded(struct emmd_node *n)
{
    if (n->rec.target == NULL)
        return 0;
    n->rec.target = strdup(n->rec.target); /* the scan's copy is freed after the callback */
    return n->rec.target != NULL ? 0 : -ENOMEM;
}

int
emmd_link_build(struct emmd_fs *fs)
{
    struct emmd_node **bad = NULL;
    size_t nbad = 0, cap = 0;
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *e = fs->by_id[b]; e != NULL; e = e->next_id) {
            if (e->rec.type != EMM_CAT_HLINK)
                continue;
            struct emmd_node *o = emmd_node_by_ino(fs, e->rec.link + 1);
            if (o != NULL && (emmd_node_is_file(o) || o->rec.type == EMM_CAT_SYMLINK)) {
                e->obj = o;
                e->next_link = o->links;
                o->links = e;
                continue;
            }
            if (nbad == cap) { /* to delete after the walk */
                cap = cap ? cap * 2 : 16;
                struct emmd_node **nb = realloc(bad, cap * sizeof(*nb));
                if (nb == NULL) {
                    free(bad);
                    return -ENOMEM;
                }
                bad = nb;
            }
            bad[nbad++] = e;
        }
    for (size_t i = 0; i < nbad; i++) {
        struct emmd_node *e = bad[i];
        emm_warn("fs %s: catalog: id %llu '%s' is a hard link to object %llu, which is not "
                 "there (or not a file): deleted",
                 fs->cfg->name, (unsigned long long)e->rec.id, e->rec.name,
                 (unsigned long long)e->rec.link);
        int rc = emm_catalog_del(fs->catalog, e->rec.id);
        if (rc < 0 && rc != -ENOENT) {
            free(bad);
            return rc;
        }
        entry_end(fs, e);
    }
    free(bad);
    return 0;
}
