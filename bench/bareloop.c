/*
 * bareloop.c - the floor of bench/datapath.sh: a bare low-level FUSE
 * filesystem with one regular file, /data, whose READs are served from 1 MiB
 * of pages generated once at start (non-zero words) and whose WRITEs are
 * dropped (answered at once). No pool,
 * no pager, no messages: what a FUSE daemon costs at the least, with the same
 * mount options as emmd (max_read 1 MiB, max_write 1 MiB, no writeback cache)
 * and libfuse's multi-threaded loop.
 *
 * Usage: bareloop MOUNTPOINT SIZE   (runs in the foreground until unmounted)
 * Locking: none (the file and the page buffer never change).
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t file_size;
static uint64_t *pages; /* 1 MiB generated once: every READ is answered from it */
static const char NAME[] = "data";

static void
fill_attr(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0644;
        st->st_nlink = 1;
        st->st_size = (off_t)file_size;
        st->st_blocks = (blkcnt_t)(file_size / 512);
    }
}

static void
bl_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->max_write = 1u << 20;
    conn->max_read = 1u << 20;
    conn->max_readahead = 1u << 20; /* emmd's default readahead */
    conn->max_background = 64;      /* as emmd */
    conn->congestion_threshold = 48;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
}

static void
bl_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (parent != FUSE_ROOT_ID || strcmp(name, NAME) != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = 2;
    e.attr_timeout = e.entry_timeout = 3600;
    fill_attr(2, &e.attr);
    fuse_reply_entry(req, &e);
}

static void
bl_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct stat st;
    fill_attr(ino, &st);
    fuse_reply_attr(req, &st, 3600);
}

static void
bl_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
           struct fuse_file_info *fi)
{
    (void)attr, (void)to_set;
    bl_getattr(req, ino, fi); /* the size never changes: writes are dropped */
}

static void
bl_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != 2) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    fi->keep_cache = 0;
    fuse_reply_open(req, fi);
}

static void
bl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino, (void)fi;
    if ((uint64_t)off >= file_size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > file_size - (uint64_t)off)
        size = (size_t)(file_size - (uint64_t)off);
    if (size > 1u << 20)
        size = 1u << 20;
    fuse_reply_buf(req, (const char *)pages, size);
}

static void
bl_write(fuse_req_t req, fuse_ino_t ino, const char *b, size_t size, off_t off,
         struct fuse_file_info *fi)
{
    (void)ino, (void)b, (void)off, (void)fi;
    fuse_reply_write(req, size);
}

static void
bl_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino, (void)datasync, (void)fi;
    fuse_reply_err(req, 0);
}

static void
bl_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    char buf[512];
    size_t n = 0;
    struct stat st;
    const char *names[] = {".", "..", NAME};
    fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, 2};
    for (off_t i = off; i < 3; i++) {
        fill_attr(inos[i], &st);
        size_t e = fuse_add_direntry(req, buf + n, sizeof(buf) - n, names[i], &st, i + 1);
        if (n + e > size || n + e > sizeof(buf))
            break;
        n += e;
    }
    fuse_reply_buf(req, buf, n);
}

static const struct fuse_lowlevel_ops ops = {
    .init = bl_init,
    .lookup = bl_lookup,
    .getattr = bl_getattr,
    .setattr = bl_setattr,
    .open = bl_open,
    .read = bl_read,
    .write = bl_write,
    .fsync = bl_fsync,
    .flush = NULL,
    .readdir = bl_readdir,
};

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bareloop MOUNTPOINT SIZE_BYTES\n");
        return 2;
    }
    file_size = strtoull(argv[2], NULL, 0) & ~4095ull;
    pages = aligned_alloc(4096, 1u << 20);
    if (pages == NULL)
        return 1;
    for (size_t i = 0; i < (1u << 20) / 8; i++)
        pages[i] = (i * 8) | 1;
    char *fargv[] = {argv[0], "-ofsname=bareloop,subtype=bareloop,max_read=1048576", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(2, fargv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
    if (se == NULL || fuse_session_mount(se, argv[1]) != 0) {
        fprintf(stderr, "bareloop: cannot mount on %s\n", argv[1]);
        return 1;
    }
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    fuse_loop_cfg_set_idle_threads(cfg, 4);
    int rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    fuse_opt_free_args(&args);
    return rc == 0 ? 0 : 1;
}
