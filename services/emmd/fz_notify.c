/*
 * fz_notify.c - the notifier thread of a filesystem. Page-cache invalidations
 * (fuse_lowlevel_notify_inval_inode) may block while the kernel writes dirty
 * pages back through this very daemon, so they are never sent from a request
 * handler: the vm layer queues them here and gets a callback when done.
 *
 * Locking: nt->lock guards the queue; the notification runs without it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "emmd.h"
#include "log.h"

struct fz_note {
    STAILQ_ENTRY(fz_note) link;
    fuse_ino_t ino;
    uint64_t off, len;
    void (*done)(void *);
    void *arg;
};

struct fz_notifier {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    STAILQ_HEAD(, fz_note) queue;
    int stopping;
    pthread_t thread;
    struct emmd_fs *fs;
};

static void *
notifier_main(void *arg)
{
    struct fz_notifier *nt = arg;
    pthread_mutex_lock(&nt->lock);
    for (;;) {
        while (STAILQ_EMPTY(&nt->queue) && !nt->stopping)
            pthread_cond_wait(&nt->cond, &nt->lock);
        struct fz_note *n = STAILQ_FIRST(&nt->queue);
        if (n == NULL)
            break;
        STAILQ_REMOVE_HEAD(&nt->queue, link);
        pthread_mutex_unlock(&nt->lock);
        if (!nt->stopping) {
            int rc = fuse_lowlevel_notify_inval_inode(nt->fs->se, n->ino, (off_t)n->off,
                                                      (off_t)n->len);
            /* -ENOENT: the kernel holds nothing of it; -ENODEV/-EBADF: unmounting. */
            if (rc < 0 && rc != -ENOENT && rc != -ENODEV && rc != -EBADF)
                emm_warn("fs %s: invalidating inode %llu: %s", nt->fs->cfg->name,
                         (unsigned long long)n->ino, strerror(-rc));
        }
        n->done(n->arg);
        free(n);
        pthread_mutex_lock(&nt->lock);
    }
    pthread_mutex_unlock(&nt->lock);
    return NULL;
}

int
fz_notifier_start(struct emmd_fs *fs)
{
    struct fz_notifier *nt = calloc(1, sizeof(*nt));
    if (nt == NULL)
        return -ENOMEM;
    STAILQ_INIT(&nt->queue);
    pthread_mutex_init(&nt->lock, NULL);
    pthread_cond_init(&nt->cond, NULL);
    nt->fs = fs;
    int rc = pthread_create(&nt->thread, NULL, notifier_main, nt);
    if (rc != 0) {
        free(nt);
        return -rc;
    }
    fs->notifier = nt;
    return 0;
}

void
fz_notifier_stop(struct emmd_fs *fs)
{
    struct fz_notifier *nt = fs->notifier;
    if (nt == NULL)
        return;
    pthread_mutex_lock(&nt->lock);
    nt->stopping = 1;
    pthread_cond_signal(&nt->cond);
    pthread_mutex_unlock(&nt->lock);
    pthread_join(nt->thread, NULL);
    pthread_cond_destroy(&nt->cond);
    pthread_mutex_destroy(&nt->lock);
    free(nt);
    fs->notifier = NULL;
}

/* The vm layer's invalidate upcall; owner is the node. */
void
fz_invalidate(void *owner, uint64_t off, uint64_t len, void (*done)(void *), void *arg)
{
    struct emmd_node *node = owner;
    struct fz_notifier *nt = node->fs->notifier;
    struct fz_note *n = calloc(1, sizeof(*n));
    if (nt == NULL || n == NULL) {
        free(n);
        done(arg);
        return;
    }
    n->ino = emmd_ino(node);
    n->off = off;
    n->len = len;
    n->done = done;
    n->arg = arg;
    pthread_mutex_lock(&nt->lock);
    STAILQ_INSERT_TAIL(&nt->queue, n, link);
    pthread_cond_signal(&nt->cond);
    pthread_mutex_unlock(&nt->lock);
}
