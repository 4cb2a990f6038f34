/*
 * fs_link.h - symbolic and hard links in an emmd filesystem's tree (fs_link.c),
 * and the few tree primitives of fs.c they use.
 *
 * A symlink is a node of type EMM_CAT_SYMLINK whose record holds its target
 * (rec.target, owned by the node). A hard link is an entry node of type
 * EMM_CAT_HLINK with its own id, parent and name, naming an object (a file or
 * a symlink) by id (rec.link): the object keeps its own record, with its first
 * name; its other names are the entries on its links list. The kernel only
 * ever sees the object's inode: LOOKUP and READDIR resolve an entry to it.
 *
 * Locking: every call here is made with fs->lock held (emmd.h).
 */
#ifndef EMMD_FS_LINK_H
#define EMMD_FS_LINK_H

#include <sys/stat.h>

#include "emmd.h"

/* fs.c: the tree, for fs_link.c (fs->lock held). */
int emmd_tree_reserve(struct emmd_node *dir);            /* room for one more entry */
void emmd_tree_enter(struct emmd_fs *fs, struct emmd_node *n); /* into the id table */
void emmd_tree_leave(struct emmd_fs *fs, struct emmd_node *n); /* out of it */
void emmd_tree_attach(struct emmd_fs *fs, struct emmd_node *dir, struct emmd_node *n);
void emmd_tree_detach(struct emmd_fs *fs, struct emmd_node *n);
struct emm_catalog_rec emmd_tree_rec(const struct emmd_node *n); /* as it should be saved */

/* symlink(2): dir/name -> target. -EPERM on a memory server's filesystem. */
int emmd_link_symlink(struct emmd_fs *fs, struct emmd_node *dir, const char *name,
                      const char *target, uint32_t uid, uint32_t gid, struct emmd_node **out);
/* link(2): obj gets the name dir/name; *out is obj. */
int emmd_link_hard(struct emmd_fs *fs, struct emmd_node *obj, struct emmd_node *dir,
                   const char *name, struct emmd_node **out);
/* The node the kernel knows for entry n (n itself unless a hard link's entry). */
struct emmd_node *emmd_link_resolve(struct emmd_node *n);
/* n is a hard link's entry, or an object with other names. */
int emmd_link_owns(const struct emmd_node *n);
/* unlink(2) of dir/n for a node emmd_link_owns: the name goes, the object stays. */
int emmd_link_remove(struct emmd_fs *fs, struct emmd_node *dir, struct emmd_node *n);
/* A rename replacing target (emmd_link_owns): the id to delete and a record
 * to put with the rename's, in its transaction; then, once it is committed
 * and target detached, emmd_link_replaced ends the name. */
void emmd_link_replace_prep(const struct emmd_node *target, int64_t now, uint64_t *del,
                            struct emm_catalog_rec *put);
void emmd_link_replaced(struct emmd_fs *fs, struct emmd_node *target, int64_t now);
/* st_nlink, and a symlink's mode and size: 1 if n is a symlink (st done). */
int emmd_link_stat(const struct emmd_node *n, struct stat *st);
uint32_t emmd_link_nlink(const struct emmd_node *n); /* names of a file (1 + links) */
mode_t emmd_link_ftype(const struct emmd_node *n);  /* S_IFDIR, S_IFREG or S_IFLNK */
/* After the catalog is loaded: entries joined to their objects; an entry
 * whose object is gone (or is a directory) is deleted, with a warning. */
int emmd_link_build(struct emmd_fs *fs);
/* A node's record from a scan: its own copy of the target (-ENOMEM). */
int emmd_link_loaded(struct emmd_node *n);

#endif
