/*
 * cluster_lock.c - cluster-wide fcntl and flock locks for a filesystem whose
 * pager is an emm-memserver (pager = tcp:): FUSE's GETLK, SETLK, SETLKW and
 * FLOCK become MO_LOCK_* messages on the object's memory object port, and
 * the server arbitrates between hosts (services/emm-memserver/locks.c).
 *
 * Consistency (docs/memserver.md "Record locks"):
 * - acquire: once the server grants a lock, the host's cached copies of the
 *   object are dropped before the caller gets it (vm_object_flush: the
 *   Linux page cache through the notifier, then every page of the pool,
 *   dirty ones returned first), so what it reads next comes from the server.
 * - release: before the release leaves, the locked range's dirty pages in
 *   the page cache are written back (fz_invalidate: the kernel writes them
 *   to emmd) and the pool's dirty pages returned to the server
 *   (vm_object_sync: data_return, synchronize), so the next host to get the
 *   lock sees every store made under it, mmap'd or not.
 *
 * Nothing here blocks a FUSE loop thread: an acquire's answer comes back on
 * a reply port of its own (run on the pager stream's reader thread), which
 * starts the flush; the FUSE reply is sent when it is done. An F_SETLKW
 * whose caller gets a signal is interrupted (FUSE INTERRUPT): a
 * MO_LOCK_CANCEL makes the server answer EINTR; a grant that crosses it is
 * given back. POSIX locks go at FLUSH (every close) for their lock owner,
 * flock locks at RELEASE (the kernel keeps no local record of either).
 *
 * Locking: tab_lock guards the table of (fs, inode, owner) that were
 * granted a lock here (so a close of a file nobody locked sends nothing);
 * a request's context is reference counted (its server answer, its FUSE
 * reply) and its reply claimed once (an atomic flag).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "cluster_lock.h"
#include "emmd.h"
#include "log.h"
#include "msg.h"
#include "port.h"

#define LK_END ((uint64_t)INT64_MAX)  /* the last byte a lock covers */
#define LK_WHOLE (LK_END + 1)         /* the length of [0, LK_END] */
#define TAB_BUCKETS 256u

enum { K_ACQ, K_TEST, K_REL };

struct lkc {
    atomic_int refs;
    atomic_int replied; /* the FUSE reply was claimed */
    atomic_int interrupted;
    int kind, wait, interruptible;
    fuse_req_t req;     /* NULL: nobody waits (flush, release) */
    struct emmd_fs *fs;
    struct emmd_node *n;
    struct vm_object *vm;
    struct emm_port *pager; /* send right: the object's port at the server */
    struct emm_port *rport; /* receive right: the answer's */
    fuse_ino_t ino;
    uint64_t owner, off, len;
    int write, flock;
    int32_t pid;
    uint32_t token;
};

struct held {
    struct held *next;
    struct emmd_fs *fs;
    fuse_ino_t ino;
    uint64_t owner;
    int flock;
};

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct held *tab[TAB_BUCKETS];
static atomic_uint next_token;

static struct emmd_fs *
fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static unsigned
bucket(fuse_ino_t ino, uint64_t owner)
{
    return (unsigned)((ino * 0x9e3779b97f4a7c15ull ^ owner) % TAB_BUCKETS);
}

static void
held_add(struct emmd_fs *fs, fuse_ino_t ino, uint64_t owner, int flock)
{
    unsigned b = bucket(ino, owner);
    pthread_mutex_lock(&tab_lock);
    struct held *h;
    for (h = tab[b]; h != NULL; h = h->next)
        if (h->fs == fs && h->ino == ino && h->owner == owner && h->flock == flock)
            break;
    if (h == NULL && (h = malloc(sizeof(*h))) != NULL) {
        *h = (struct held){tab[b], fs, ino, owner, flock};
        tab[b] = h;
    }
    pthread_mutex_unlock(&tab_lock);
}

/* Whether owner was granted a lock of that kind on ino here; take: forget it. */
static int
held_find(struct emmd_fs *fs, fuse_ino_t ino, uint64_t owner, int flock, int take)
{
    unsigned b = bucket(ino, owner);
    pthread_mutex_lock(&tab_lock);
    struct held **pp;
    for (pp = &tab[b]; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->fs == fs && (*pp)->ino == ino && (*pp)->owner == owner &&
            (*pp)->flock == flock)
            break;
    struct held *h = *pp;
    if (h != NULL && take) {
        *pp = h->next;
        free(h);
    }
    pthread_mutex_unlock(&tab_lock);
    return h != NULL;
}

static void
lk_unref(struct lkc *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (c->rport != NULL)
        emm_port_destroy(c->rport);
    if (c->pager != NULL)
        emm_port_unref(c->pager);
    if (c->vm != NULL)
        vm_object_unref(c->vm);
    free(c);
}

/* Claims the FUSE reply (once); outside the interrupt callback. */
static int
claim(struct lkc *c)
{
    int expected = 0;
    if (c->req == NULL || !atomic_compare_exchange_strong(&c->replied, &expected, 1))
        return 0;
    if (c->interruptible)
        fuse_req_interrupt_func(c->req, NULL, NULL); /* waits for a running callback */
    return 1;
}

static void
reply_err(struct lkc *c, int err)
{
    if (claim(c)) {
        fuse_reply_err(c->req, err);
        lk_unref(c); /* the FUSE reply's reference */
    }
}

static int
lk_send(struct lkc *c, uint32_t id)
{
    struct emm_msg *m = emm_msg_new(id, c->off, c->len);
    if (m == NULL)
        return -ENOMEM;
    if (id != MO_LOCK_RELEASE && id != MO_LOCK_CANCEL)
        m->access = c->write ? VM_PROT_WRITE : VM_PROT_READ;
    m->flags = (c->flock ? MO_LK_F_FLOCK : 0) | (id == MO_LOCK_ACQUIRE && c->wait ? MO_LK_F_WAIT : 0) |
               (c->token << 8);
    m->arg = c->pid;
    m->arg2 = c->owner;
    if (id == MO_LOCK_ACQUIRE || id == MO_LOCK_TEST)
        m->reply = emm_port_make_send(c->rport);
    int rc = emm_port_send(c->pager, m);
    if (rc < 0)
        emm_msg_release(m, rc);
    return rc;
}

static void
acq_flushed(void *arg, int err)
{
    struct lkc *c = arg;
    if (err != 0)
        emm_warn("fs %s: inode %llu: dropping cached pages after a lock was granted: %s",
                 c->fs->cfg->name, (unsigned long long)c->ino, strerror(err));
    reply_err(c, 0);
    lk_unref(c); /* the server answer's reference */
}

/* The server's answer, on the pager stream's reader thread: never block. */
static void
on_reply(struct emm_port *port, struct emm_msg *m)
{
    struct lkc *c = emm_port_context(port);
    int err = m->arg >= 0 && m->arg < 4096 ? m->arg : EIO;
    if (m->id != MO_LOCK_REPLY) {
        emm_err("fs %s: inode %llu: a lock answer that is a %s: refused", c->fs->cfg->name,
                (unsigned long long)c->ino, emm_msg_name(m->id));
        emm_msg_release(m, 0);
        return; /* a hostile server: the request waits for a real answer or a signal */
    }
    if (c->kind == K_TEST) {
        struct flock fl;
        memset(&fl, 0, sizeof(fl));
        fl.l_type = F_UNLCK;
        if (err == 0 && (m->access == VM_PROT_READ || m->access == VM_PROT_WRITE) &&
            m->length > 0 && m->offset <= LK_END && m->length - 1 <= LK_END - m->offset) {
            fl.l_type = m->access == VM_PROT_WRITE ? F_WRLCK : F_RDLCK;
            fl.l_whence = SEEK_SET;
            fl.l_start = (off_t)m->offset;
            fl.l_len = m->offset + m->length - 1 == LK_END ? 0 : (off_t)m->length;
            fl.l_pid = (pid_t)m->arg2;
        }
        emm_msg_release(m, 0);
        if (err != 0)
            reply_err(c, err);
        else if (claim(c)) {
            fuse_reply_lock(c->req, &fl);
            lk_unref(c);
        }
        lk_unref(c);
        return;
    }
    emm_msg_release(m, 0);
    if (err != 0) {
        reply_err(c, err);
        lk_unref(c);
        return;
    }
    held_add(c->fs, c->ino, c->owner, c->flock);
    if (atomic_load(&c->replied)) {
        /* Interrupted and answered EINTR already: give the lock back. */
        if (lk_send(c, MO_LOCK_RELEASE) < 0)
            emm_debug("fs %s: a lock granted after its interrupt was not given back",
                      c->fs->cfg->name);
        lk_unref(c);
        return;
    }
    /* Acquire: the host's copies go before the caller reads under the lock. */
    vm_object_flush(c->vm, acq_flushed, c);
}

/* FUSE INTERRUPT (the caller got a signal), with the request's lock held:
 * never call claim() here. */
static void
on_interrupt(fuse_req_t req, void *arg)
{
    struct lkc *c = arg;
    atomic_store(&c->interrupted, 1);
    if (c->kind == K_ACQ && c->wait && lk_send(c, MO_LOCK_CANCEL) == 0)
        return; /* the server answers the acquire: EINTR, or a grant that crossed */
    int expected = 0;
    if (atomic_compare_exchange_strong(&c->replied, &expected, 1)) {
        fuse_reply_err(req, EINTR);
        lk_unref(c);
    }
}

/* A context for a request on ino: node, vm object and the server's port. */
static int
lk_new(struct emmd_fs *fs, fuse_req_t req, fuse_ino_t ino, uint64_t owner, struct lkc **out)
{
    if (fs->cfg->pager_mode != EMM_PAGER_TCP || fs->pconn == NULL)
        return -ENOSYS; /* not negotiated: the kernel keeps the locks */
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, ino);
    pthread_mutex_unlock(&fs->lock);
    if (n == NULL)
        return -ENOENT;
    struct lkc *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    atomic_init(&c->refs, 1);
    c->fs = fs;
    c->req = req;
    c->n = n;
    c->ino = ino;
    c->owner = owner;
    int rc = emmd_node_vm(fs, n, &c->vm);
    if (rc == 0)
        rc = emmd_pager_object_port(fs, n->rec.id, &c->pager);
    if (rc < 0) {
        lk_unref(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Sends an acquire or a test; the answer finishes it (on_reply). The
 * interrupt callback is registered first, so no answer can reply (and free
 * the request) before it is; a signal already pending cancels after. */
static void
lk_ask(struct lkc *c, int kind)
{
    c->kind = kind;
    if (kind == K_ACQ && c->wait) {
        unsigned t;
        do
            t = atomic_fetch_add(&next_token, 1) & MO_LK_TOKEN_MAX;
        while (t == 0);
        c->token = t;
    }
    int rc = emm_port_create("cluster lock answer", on_reply, c, NULL, &c->rport);
    if (rc < 0) {
        fuse_reply_err(c->req, -rc);
        lk_unref(c);
        return;
    }
    atomic_store(&c->refs, 3); /* the server's answer, the FUSE reply, this call */
    c->interruptible = 1;
    fuse_req_interrupt_func(c->req, on_interrupt, c);
    if (atomic_load(&c->replied)) {
        /* Interrupted already, and answered: nothing was sent. */
        lk_unref(c);
        lk_unref(c);
        return;
    }
    rc = lk_send(c, kind == K_ACQ ? MO_LOCK_ACQUIRE : MO_LOCK_TEST);
    if (rc < 0) {
        emm_err("fs %s: inode %llu: the lock request did not reach the server: %s",
                c->fs->cfg->name, (unsigned long long)c->ino, strerror(-rc));
        reply_err(c, EIO);
        lk_unref(c); /* no answer will come */
    } else if (atomic_load(&c->interrupted) && c->wait) {
        lk_send(c, MO_LOCK_CANCEL); /* the cancel sent by the callback went first */
    }
    lk_unref(c);
}

static void
rel_synced(void *arg, int err)
{
    struct lkc *c = arg;
    if (err != 0)
        emm_warn("fs %s: inode %llu: write-back before a lock release: %s", c->fs->cfg->name,
                 (unsigned long long)c->ino, strerror(err));
    int rc = lk_send(c, MO_LOCK_RELEASE);
    if (rc < 0)
        emm_debug("fs %s: inode %llu: release not sent (%s): the server dropped the host's "
                  "locks with its connection", c->fs->cfg->name, (unsigned long long)c->ino,
                  strerror(-rc));
    if (c->req != NULL)
        fuse_reply_err(c->req, 0);
    lk_unref(c);
}

static void
rel_written(void *arg)
{
    struct lkc *c = arg;
    vm_object_sync(c->vm, rel_synced, c);
}

/* Release: the range's dirty pages reach the server first, then the release. */
static void
lk_release(struct lkc *c, int page_cache)
{
    c->kind = K_REL;
    if (page_cache)
        fz_invalidate(c->n, c->off, c->len, rel_written, c);
    else
        rel_written(c); /* a close: the kernel wrote its dirty pages before FLUSH */
}

/* The range of a struct flock (SEEK_SET, as FUSE gives it): 0 or -EINVAL. */
static int
range_of(const struct flock *l, uint64_t *off, uint64_t *len)
{
    if (l->l_start < 0 || l->l_len < 0)
        return -EINVAL;
    *off = (uint64_t)l->l_start;
    if (*off > LK_END)
        return -EINVAL;
    uint64_t max = LK_WHOLE - *off;
    *len = l->l_len == 0 || (uint64_t)l->l_len > max ? max : (uint64_t)l->l_len;
    return 0;
}

void
fz_lk_init(struct emmd_fs *fs, struct fuse_conn_info *conn)
{
    if (fs->cfg->pager_mode != EMM_PAGER_TCP) {
        conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
        return;
    }
    conn->want |= conn->capable & (FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

void
fz_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
    struct lkc *c;
    uint64_t off, len;
    int rc = range_of(lock, &off, &len);
    if (rc == 0)
        rc = lk_new(fs_of(req), req, ino, fi->lock_owner, &c);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    c->off = off;
    c->len = len;
    c->write = lock->l_type == F_WRLCK;
    c->pid = lock->l_pid;
    lk_ask(c, K_TEST);
}

void
fz_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
         int sleep)
{
    struct emmd_fs *fs = fs_of(req);
    struct lkc *c;
    uint64_t off, len;
    int rc = range_of(lock, &off, &len);
    if (rc == 0 && lock->l_type != F_RDLCK && lock->l_type != F_WRLCK && lock->l_type != F_UNLCK)
        rc = -EINVAL;
    if (rc == 0 && lock->l_type == F_UNLCK && !held_find(fs, ino, fi->lock_owner, 0, 0)) {
        fuse_reply_err(req, 0); /* this owner was never granted a lock here */
        return;
    }
    if (rc == 0)
        rc = lk_new(fs, req, ino, fi->lock_owner, &c);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    c->off = off;
    c->len = len;
    c->pid = lock->l_pid;
    if (lock->l_type == F_UNLCK) {
        lk_release(c, 1);
        return;
    }
    c->write = lock->l_type == F_WRLCK;
    c->wait = sleep != 0;
    lk_ask(c, K_ACQ);
}

void
fz_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
    struct emmd_fs *fs = fs_of(req);
    int kind = op & (LOCK_SH | LOCK_EX | LOCK_UN);
    if (kind != LOCK_SH && kind != LOCK_EX && kind != LOCK_UN) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (kind == LOCK_UN && !held_find(fs, ino, fi->lock_owner, 1, 1)) {
        fuse_reply_err(req, 0);
        return;
    }
    struct lkc *c;
    int rc = lk_new(fs, req, ino, fi->lock_owner, &c);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    c->flock = 1;
    c->off = 0;
    c->len = LK_WHOLE;
    if (kind == LOCK_UN) {
        lk_release(c, 1);
        return;
    }
    c->write = kind == LOCK_EX;
    c->wait = !(op & LOCK_NB);
    lk_ask(c, K_ACQ);
}

static void
lk_drop_all(struct emmd_fs *fs, fuse_ino_t ino, uint64_t owner, int flock)
{
    if (!held_find(fs, ino, owner, flock, 1))
        return;
    struct lkc *c;
    int rc = lk_new(fs, NULL, ino, owner, &c);
    if (rc < 0) {
        emm_debug("fs %s: inode %llu: locks of owner %#llx not released: %s", fs->cfg->name,
                  (unsigned long long)ino, (unsigned long long)owner, strerror(-rc));
        return;
    }
    c->flock = flock;
    c->off = 0;
    c->len = LK_WHOLE;
    lk_release(c, 0);
}

void
fz_lk_flush(struct emmd_fs *fs, fuse_ino_t ino, uint64_t owner)
{
    lk_drop_all(fs, ino, owner, 0);
}

void
fz_lk_release(struct emmd_fs *fs, fuse_ino_t ino, uint64_t owner)
{
    lk_drop_all(fs, ino, owner, 1);
}
