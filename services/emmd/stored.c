/*
 * stored.c - what an object's pager stores, for st_blocks, statfs and `emmctl
 * ls`, learnt through the kernel and the protocol, never from the backend
 * (a pager in another process has it; emmd holds only a null backend then).
 *
 *  - A mapped object (it has a vm_object): the kernel's count
 *    (vm_object_stored: a data_query unless nothing went to the pager since
 *    it last said) plus the pages the kernel holds that the pager has no copy
 *    of (vm_object_info's new_pages: dirty pages never returned, pages in swap).
 *  - An object not mapped: a count query on its memory object port through
 *    the kernel (vm_kernel_query_stored, no init). Its answer is kept in the
 *    node: pages reach a pager only through the kernel, which maps the object
 *    first, so the count of an object not mapped stays true until it is.
 *    A memory server (pager = tcp) is shared with other hosts: its objects
 *    are asked about every time, their last count standing only when it
 *    cannot answer.
 *  - A temporary object's pager is the default pager: new_pages says it all.
 * Every answer is bounded by pager.deadline (10 s without one) and a suspect
 * pager is never asked: the last count known then stands (0 if none).
 * A pager in another process gives an object's port with a round trip: the
 * asker thread looks ports up, one at a time, so no caller waits for a
 * stopped pager (fz_ops.c answers a stat with what is known meanwhile). The
 * discards of its unlinked objects not mapped go the same way, in order
 * with the questions: two lookups of one port at once from two threads could
 * number their messages alike on the stream.
 *
 * Locking: fs->lock guards node->stored_pages and node->stored_known; the
 * asker's lock its queue (never held while a port is looked up). No
 * lock is held while the kernel is asked (an inline pager answers inside
 * the call) or a completion runs; completions find their node again by id.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "clock.h"
#include "emmd.h"
#include "log.h"

struct node_ask {
    STAILQ_ENTRY(node_ask) link; /* on the asker's queue */
    struct node_ask *also;       /* asks of the same object queued after it */
    int discard;                 /* not a count: the object was unlinked (fs.c) */
    struct emmd_fs *fs;
    uint64_t id;
    struct vm_object *vm; /* mapped: a reference; else NULL */
    emmd_stored_fn done;
    void *arg;
};

/* The thread that looks up ports at a pager in another process (a round
 * trip that waits up to pager.deadline for a stopped pager) so that no FUSE
 * thread does; then it sends the query and takes the next. */
#define ASKER_QUEUE_MAX 1024
struct emmd_asker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    STAILQ_HEAD(, node_ask) q;
    size_t n;
    int stop;
    pthread_t thread;
};

/* Keeps count as the node's last known (unknown: returns the last known, or 0). */
static uint64_t
note_count(struct emmd_fs *fs, uint64_t id, uint64_t count)
{
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, id + 1);
    if (n != NULL && count != VM_COUNT_UNKNOWN) {
        n->stored_pages = count;
        n->stored_known = 1;
    } else if (n != NULL && n->stored_known) {
        count = n->stored_pages;
    } else if (count == VM_COUNT_UNKNOWN) {
        count = 0;
    }
    pthread_mutex_unlock(&fs->lock);
    return count;
}

static void
mapped_done(void *arg, uint64_t count)
{
    struct node_ask *a = arg;
    struct vm_object_info info;
    vm_object_info(a->vm, &info);
    count = note_count(a->fs, a->id, count);
    a->done(a->arg, count, info.new_pages);
    vm_object_unref(a->vm);
    free(a);
}

static void
unmapped_done(void *arg, uint64_t count)
{
    struct node_ask *a = arg;
    count = note_count(a->fs, a->id, count);
    while (a != NULL) {
        struct node_ask *next = a->also;
        a->done(a->arg, count, 0);
        free(a);
        a = next;
    }
}

/* A send right to the memory object port of object id, to ask about it
 * without mapping it: -ENOENT when there is no pager to ask (temporary
 * objects, whose pager is the default pager, store nothing elsewhere), or a
 * pager in another process that is down (asking would wait for it). */
int
emmd_object_port(struct emmd_fs *fs, uint64_t id, struct emm_port **out)
{
    if (fs->pconn != NULL) {
        struct emmd_pager_info pi;
        emmd_pager_conn_info(fs, &pi);
        if (!pi.up)
            return -ENOENT;
        return emmd_pager_object_port(fs, id, out); /* a lookup: bounded by pager.deadline */
    }
    if (fs->pager != NULL)
        return pgr_std_object_port(fs->pager, id, out);
    return -ENOENT;
}

static void asker_queue(struct emmd_asker *k, struct node_ask *a);

/* The discard of an unlinked object not mapped: MO_DISCARD of all its pages
 * through the protocol, else kept for when the pager is back. */
static void
discard_now(struct node_ask *a)
{
    struct emmd_fs *fs = a->fs;
    struct emm_port *port;
    int rc = emmd_object_port(fs, a->id, &port);
    if (rc == 0) {
        rc = vm_kernel_discard_unmapped(fs->d->kernel, port, &fs->pstats);
        emm_port_unref(port);
    }
    if (rc < 0)
        emmd_pager_discard(fs, a->id);
    free(a);
}

void
emmd_node_discard_unmapped(struct emmd_fs *fs, uint64_t id)
{
    struct node_ask *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        emmd_pager_discard(fs, id);
        return;
    }
    a->fs = fs;
    a->id = id;
    a->discard = 1;
    if (fs->asker != NULL)
        asker_queue(fs->asker, a);
    else
        discard_now(a);
}

/* A count query on the memory object port of an object not mapped. */
static void
ask_unmapped(struct node_ask *a)
{
    struct emmd_fs *fs = a->fs;
    if (a->discard) {
        discard_now(a);
        return;
    }
    struct emm_port *port = NULL;
    if (emmd_object_port(fs, a->id, &port) < 0) {
        unmapped_done(a, VM_COUNT_UNKNOWN);
        return;
    }
    vm_kernel_query_stored(fs->d->kernel, port, &fs->pstats, atomic_load(&fs->deadline_ms),
                           unmapped_done, a);
    emm_port_unref(port);
}

void
emmd_node_stored(struct emmd_fs *fs, uint64_t id, emmd_stored_fn done, void *arg)
{
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, id + 1);
    if (n == NULL || !emmd_node_is_file(n)) {
        pthread_mutex_unlock(&fs->lock);
        done(arg, 0, 0);
        return;
    }
    struct vm_object *vm = n->vm;
    if (vm != NULL)
        vm_object_ref(vm);
    int temporary = fs->cfg->temporary;
    /* A memory server's objects change through other hosts: ask every time
     * (the last count stands only when it cannot answer). */
    int known = n->stored_known && fs->cfg->pager_mode != EMM_PAGER_TCP;
    uint64_t cached = n->stored_pages;
    if (vm == NULL && n->rec.size == 0) /* (pages past the size are discarded) */
        known = 1, cached = 0;
    pthread_mutex_unlock(&fs->lock);
    if (vm == NULL && (known || temporary)) {
        done(arg, known ? cached : 0, 0);
        return;
    }
    struct node_ask *a = malloc(sizeof(*a));
    if (a == NULL) {
        if (vm != NULL)
            vm_object_unref(vm);
        done(arg, known ? cached : 0, 0);
        return;
    }
    *a = (struct node_ask){.fs = fs, .id = id, .vm = vm, .done = done, .arg = arg};
    if (vm != NULL) {
        vm_object_stored(vm, mapped_done, a);
        return;
    }
    if (fs->asker != NULL) {
        asker_queue(fs->asker, a);
        return;
    }
    ask_unmapped(a);
}

/* ---- the asker thread (a pager in another process) ---- */

static void
asker_queue(struct emmd_asker *k, struct node_ask *a)
{
    pthread_mutex_lock(&k->lock);
    int refuse = k->stop || k->n >= ASKER_QUEUE_MAX;
    struct node_ask *x;
    STAILQ_FOREACH(x, &k->q, link)
        if (!refuse && !a->discard && !x->discard && x->id == a->id) { /* asked already */
            a->also = x->also;
            x->also = a;
            pthread_mutex_unlock(&k->lock);
            return;
        }
    if (!refuse) {
        STAILQ_INSERT_TAIL(&k->q, a, link);
        k->n++;
        pthread_cond_signal(&k->cond);
    }
    pthread_mutex_unlock(&k->lock);
    if (refuse && a->discard)
        discard_now(a);
    else if (refuse)
        unmapped_done(a, VM_COUNT_UNKNOWN); /* the last count known */
}

static void *
asker_main(void *arg)
{
    struct emmd_fs *fs = arg;
    struct emmd_asker *k = fs->asker;
    pthread_mutex_lock(&k->lock);
    for (;;) {
        while (STAILQ_EMPTY(&k->q) && !k->stop)
            pthread_cond_wait(&k->cond, &k->lock);
        if (k->stop)
            break;
        struct node_ask *a = STAILQ_FIRST(&k->q);
        STAILQ_REMOVE_HEAD(&k->q, link);
        k->n--;
        pthread_mutex_unlock(&k->lock);
        ask_unmapped(a);
        pthread_mutex_lock(&k->lock);
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

int
emmd_stored_start(struct emmd_fs *fs)
{
    struct emmd_asker *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    STAILQ_INIT(&k->q);
    fs->asker = k;
    int rc = -pthread_create(&k->thread, NULL, asker_main, fs);
    if (rc < 0) {
        fs->asker = NULL;
        pthread_cond_destroy(&k->cond);
        pthread_mutex_destroy(&k->lock);
        free(k);
    }
    return rc;
}

void
emmd_stored_stop(struct emmd_fs *fs)
{
    struct emmd_asker *k = fs->asker;
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->lock);
    k->stop = 1;
    pthread_cond_signal(&k->cond);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    fs->asker = NULL;
    struct node_ask *a;
    while ((a = STAILQ_FIRST(&k->q)) != NULL) {
        STAILQ_REMOVE_HEAD(&k->q, link);
        if (a->discard)
            discard_now(a);
        else
            unmapped_done(a, VM_COUNT_UNKNOWN);
    }
    pthread_cond_destroy(&k->cond);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

int
emmd_node_stored_known(struct emmd_fs *fs, uint64_t id, uint64_t *pages)
{
    pthread_mutex_lock(&fs->lock);
    struct emmd_node *n = emmd_node_by_ino(fs, id + 1);
    if (n == NULL || !emmd_node_is_file(n)) {
        pthread_mutex_unlock(&fs->lock);
        *pages = 0;
        return 0;
    }
    int known = fs->cfg->temporary || (n->stored_known && fs->cfg->pager_mode != EMM_PAGER_TCP);
    uint64_t count = n->stored_known ? n->stored_pages : 0;
    if (n->vm == NULL && n->rec.size == 0) /* (pages past the size are discarded) */
        known = 1, count = 0;
    struct vm_object *vm = known ? n->vm : NULL;
    if (vm != NULL)
        vm_object_ref(vm);
    pthread_mutex_unlock(&fs->lock);
    if (!known)
        return -EAGAIN;
    if (vm != NULL) {
        struct vm_object_info info;
        vm_object_info(vm, &info);
        count += info.new_pages;
        vm_object_unref(vm);
    }
    *pages = count;
    return 0;
}

/* ---- every object of a filesystem ---- */

struct fs_sum {
    struct emmd_fs *fs;
    atomic_uint_fast64_t pending, pages;
    void (*done)(void *arg, uint64_t pages);
    void *arg;
};

static void
sum_put(struct fs_sum *s)
{
    if (atomic_fetch_sub(&s->pending, 1) != 1)
        return;
    s->done(s->arg, atomic_load(&s->pages));
    free(s);
}

static void
sum_one(void *arg, uint64_t stored, uint64_t fresh)
{
    struct fs_sum *s = arg;
    atomic_fetch_add(&s->pages, stored + fresh);
    sum_put(s);
}

void
emmd_fs_stored(struct emmd_fs *fs, void (*done)(void *arg, uint64_t pages), void *arg)
{
    struct fs_sum *s = calloc(1, sizeof(*s));
    uint64_t *ids = NULL;
    size_t nids = 0;
    pthread_mutex_lock(&fs->lock);
    if (s != NULL)
        ids = malloc((fs->nobjects + 1) * sizeof(*ids));
    uint64_t known = 0;
    for (size_t b = 0; ids != NULL && b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
            if (!emmd_node_is_file(n))
                continue;
            if (n->vm == NULL && fs->cfg->pager_mode != EMM_PAGER_TCP &&
                (n->stored_known || fs->cfg->temporary))
                known += n->stored_known ? n->stored_pages : 0; /* no question needed */
            else if (nids <= fs->nobjects)
                ids[nids++] = n->rec.id;
        }
    pthread_mutex_unlock(&fs->lock);
    if (ids == NULL) {
        free(s);
        done(arg, known);
        return;
    }
    *s = (struct fs_sum){.fs = fs, .done = done, .arg = arg};
    atomic_init(&s->pending, nids + 1);
    atomic_init(&s->pages, known);
    for (size_t i = 0; i < nids; i++)
        emmd_node_stored(fs, ids[i], sum_one, s);
    free(ids);
    sum_put(s);
}

/* ---- waiting for it (the control socket's workers may block) ---- */

static void
wait_done(void *arg, uint64_t pages)
{
    emmd_twait_done(arg, 0, pages);
}

int
emmd_fs_stored_wait(struct emmd_fs *fs, int timeout_ms, uint64_t *pages)
{
    struct emmd_twait *w = emmd_twait_new();
    if (w == NULL)
        return -ENOMEM;
    emmd_fs_stored(fs, wait_done, w);
    uint64_t v = 0;
    int rc = emmd_twait(w, timeout_ms, NULL, &v);
    if (pages != NULL)
        *pages = v;
    return rc;
}
