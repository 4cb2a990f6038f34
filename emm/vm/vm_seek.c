/*
 * vm_seek.c - SEEK_DATA / SEEK_HOLE from what the kernel knows (resident
 * pages, the default pager's holdings) plus the object's pager, asked with
 * data_query and answered by query_reply (emm extension, msg.h): never an
 * upcall, never the backend. A seek is an operation that waits on the object
 * like a fault: it is decided under the lock, its query goes out in the
 * object's message order (after every discard and data_return sent before
 * it, so the pager's answer includes them), and it finishes when the reply
 * arrives, on the thread that delivers it.
 *
 * A pager that cannot answer never hangs a seek: while it is suspect (it
 * failed lately or sits on overdue data_returns) no query is sent, and a
 * query not answered within the object's deadline (10 s without one) is given
 * up by the kernel worker. Either way the kernel answers as if the pager held
 * data everywhere it does not know better: a copy then reads zeros, it never
 * misses data.
 *
 * Locking: obj->lock guards the object's seeks and their state; completions
 * run from a batch after unlocking. kernel->kick_lock guards the list of
 * objects with seeks waiting for a reply.
 */
#include <errno.h>
#include <stdlib.h>

#include "clock.h"
#include "log.h"
#include "vm_internal.h"

#define SEEK_WAIT_DEFAULT_NS 10000000000ull /* no pager.deadline: give up after 10 s */

/* Resident data: valid and either dirty or also held by the pager. A clean page
 * the pager has no copy of (a hole read as zeros) is a hole. */
static int
page_is_data(const struct vm_page *p)
{
    return p->state != VM_PAGE_ABSENT && ((p->flags & VM_PG_DIRTY) || !(p->flags & VM_PG_NEW));
}

/* Lock held. */
static uint64_t
resident_data_from(struct vm_object *obj, uint64_t from)
{
    uint64_t best = UINT64_MAX;
    for (uint64_t i = 0; i < obj->nbuckets; i++)
        for (struct vm_page *p = obj->buckets[i]; p; p = p->hnext)
            if (p->index >= from && p->index < best && page_is_data(p))
                best = p->index;
    return best;
}

/* Lock held. */
static uint64_t
resident_hole_from(struct vm_object *obj, uint64_t idx)
{
    struct vm_page *p;
    while ((p = vm_obj_page_lookup(obj, idx)) != NULL && page_is_data(p))
        idx++;
    return idx;
}

uint64_t
vm_object_seek_resident(struct vm_object *obj, uint64_t from, int want_data)
{
    pthread_mutex_lock(&obj->lock);
    uint64_t r = want_data ? resident_data_from(obj, from) : resident_hole_from(obj, from);
    pthread_mutex_unlock(&obj->lock);
    return r;
}

/* The default pager's holdings (its queries take only its own leaf locks). */
static int
dp_has(struct vm_object *obj, uint64_t idx)
{
    struct vm_kernel *k = obj->kernel;
    return obj->dp != NULL && k->dpo->pages(k->dp_ctx, obj->dp_handle) > 0 &&
           k->dpo->holds(k->dp_ctx, obj->dp_handle, idx);
}

static uint64_t
dp_next(struct vm_object *obj, uint64_t from)
{
    struct vm_kernel *k = obj->kernel;
    if (obj->dp == NULL || k->dpo->pages(k->dp_ctx, obj->dp_handle) == 0)
        return UINT64_MAX;
    return k->dpo->next_page(k->dp_ctx, obj->dp_handle, from);
}

static void
seek_finish(struct vm_object *obj, struct vm_seek *s, uint64_t found, struct vm_batch *b)
{
    (void)obj;
    s->result = found;
    STAILQ_INSERT_TAIL(&b->seeks_done, s, link);
}

/* The pager's answer is unknown (suspect, gone, or too slow): data wherever
 * the kernel knows nothing better. */
static void
seek_unknown(struct vm_object *obj, struct vm_seek *s, struct vm_batch *b)
{
    if (s->want_data == VM_SEEK_MAP) { /* learning stops where it got: known below */
        obj->pm.state = VM_PM_UNKNOWN;
        free(s);
        return;
    }
    if (s->want_data == VM_SEEK_COUNT) /* the last count it gave */
        seek_finish(obj, s, obj->pager_count_known ? obj->pager_count : 0, b);
    else
        seek_finish(obj, s, s->want_data ? s->idx : s->limit, b);
}

/* The kernel worker watches objects whose seeks wait for a reply. */
static void
note_seeking(struct vm_object *obj)
{
    struct vm_kernel *k = obj->kernel;
    pthread_mutex_lock(&k->kick_lock);
    if (!obj->on_seeking_list) {
        obj->on_seeking_list = 1;
        vm_object_ref(obj);
        obj->seeking_next = k->seeking_head;
        k->seeking_head = obj;
    }
    pthread_mutex_unlock(&k->kick_lock);
}

/* Asks the pager for its first run of pages in [s->idx, s->idx + span). */
static int
seek_ask(struct vm_object *obj, struct vm_seek *s, uint64_t span, struct vm_batch *b)
{
    uint64_t len = span > UINT64_MAX / VM_PS ? UINT64_MAX : span * VM_PS;
    struct emm_msg *m = vm_kmsg(obj, MO_DATA_QUERY, s->idx * VM_PS, len);
    if (m == NULL)
        return -ENOMEM;
    s->tag = obj->next_seek_tag++ & INT32_MAX;
    m->arg = s->tag;
    if (s->want_data == VM_SEEK_COUNT) {
        m->offset = 0;
        m->length = UINT64_MAX;
        m->flags = MO_F_QUERY_COUNT;
        s->gen = obj->pager_gen;
    }
    s->sent_ns = emm_mono_ns();
    TAILQ_INSERT_TAIL(&obj->seeks, s, qlink);
    vm_batch_msg(b, m);
    atomic_fetch_add(&obj->kernel->stats.queries, 1);
    note_seeking(obj);
    return 0;
}

/* Can the object's pager be asked now? */
static int
pager_askable(struct vm_object *obj)
{
    if (obj->temporary || obj->pager == NULL)
        return 0; /* its pager is the default pager, whose holdings the kernel sees */
    if (obj->state != VM_OBJ_READY && obj->state != VM_OBJ_INIT)
        return 0;
    return 1;
}

/* Runs a seek as far as the kernel's knowledge goes; sends a query when the
 * pager's must be added. Lock held. */
static void
seek_step(struct vm_object *obj, struct vm_seek *s, struct vm_batch *b)
{
    int own_pager = !obj->temporary && obj->pager != NULL;
    int suspect = own_pager && vm_pager_suspect(obj->pstats, emm_mono_ns());
    if (s->want_data == VM_SEEK_COUNT) {
        if (!own_pager)
            seek_finish(obj, s, 0, b); /* the default pager's pages are in_swap */
        else if (obj->pager_count_known && obj->pager_count_gen == obj->pager_gen)
            seek_finish(obj, s, obj->pager_count, b); /* nothing went to it since */
        else if (!pager_askable(obj) || suspect || seek_ask(obj, s, UINT64_MAX, b) < 0)
            seek_unknown(obj, s, b);
        return;
    }
    if (s->want_data) {
        uint64_t best = resident_data_from(obj, s->idx);
        uint64_t d = dp_next(obj, s->idx);
        if (d < best)
            best = d;
        s->best = best;
        if (best == s->idx || !own_pager) {
            seek_finish(obj, s, best, b);
        } else if (!pager_askable(obj) || suspect ||
                   seek_ask(obj, s, best == UINT64_MAX ? UINT64_MAX : best - s->idx, b) < 0) {
            seek_unknown(obj, s, b);
        }
        return;
    }
    while (s->idx < s->limit) {
        s->idx = resident_hole_from(obj, s->idx); /* first page not resident data */
        if (s->idx >= s->limit)
            break;
        struct vm_page *p = vm_obj_page_lookup(obj, s->idx);
        if (p != NULL && p->state != VM_PAGE_ABSENT) {
            seek_finish(obj, s, s->idx, b); /* clean, never stored: a hole */
            return;
        }
        if (dp_has(obj, s->idx)) {
            s->idx++;
            continue;
        }
        if (!own_pager) {
            seek_finish(obj, s, s->idx, b);
            return;
        }
        if (!pager_askable(obj) || suspect || seek_ask(obj, s, s->limit - s->idx, b) < 0)
            seek_unknown(obj, s, b);
        return; /* the reply goes on */
    }
    seek_finish(obj, s, s->limit, b);
}

void
vm_object_seek(struct vm_object *obj, uint64_t from, uint64_t limit, int want_data,
               vm_seek_done_fn done, void *arg)
{
    struct vm_seek *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        done(arg, want_data ? from : limit); /* as if the pager held data */
        return;
    }
    s->idx = from;
    s->limit = limit;
    s->want_data = want_data;
    s->done = done;
    s->arg = arg;
    struct vm_batch b = VM_BATCH_INIT(b);
    pthread_mutex_lock(&obj->lock);
    seek_step(obj, s, &b);
    vm_batch_post(obj, &b);
    pthread_mutex_unlock(&obj->lock);
    vm_batch_flush(obj, &b);
}

/* ---- the existence map (vm_pmap.c): which pages the pager may store ---- */

#define PM_LEARN_MAX_STEPS 256 /* queries per walk (VM_PMAP_MAX_RUNS): past them it knows less */

/* Asks for the pager's first run from s->idx on: one step of the walk. */
static void
pm_step(struct vm_object *obj, struct vm_seek *s, struct vm_batch *b)
{
    if (s->best++ >= PM_LEARN_MAX_STEPS || !pager_askable(obj) ||
        seek_ask(obj, s, UINT64_MAX, b) < 0) {
        obj->pm.state = s->best > PM_LEARN_MAX_STEPS ? VM_PM_KNOWN : VM_PM_UNKNOWN;
        free(s);
    }
}

void
vm_obj_pm_learn(struct vm_object *obj, struct vm_batch *b)
{
    if (obj->pm.state != VM_PM_UNKNOWN || !pager_askable(obj) || obj->state != VM_OBJ_READY ||
        vm_pager_suspect(obj->pstats, emm_mono_ns()))
        return;
    struct vm_seek *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->want_data = VM_SEEK_MAP;
    s->idx = 0;
    s->limit = UINT64_MAX;
    obj->pm.state = VM_PM_LEARNING;
    obj->pm.known = 0; /* walked again from the start: known up to where it got */
    pm_step(obj, s, b);
}

/* The answer to a step: a run [d, d+n) it stores at or after s->idx, or none. */
static void
pm_reply(struct vm_object *obj, struct vm_seek *s, uint64_t d, uint64_t n, int to_end,
         struct vm_batch *b)
{
    struct vm_pmap *pm = &obj->pm;
    if (d == UINT64_MAX || to_end) {
        if (d != UINT64_MAX)
            vm_pmap_add(pm, d, UINT64_MAX);
        pm->known = UINT64_MAX;
        pm->state = VM_PM_KNOWN;
        free(s);
        return;
    }
    vm_pmap_add(pm, d, d + n);
    pm->known = d + n;
    s->idx = d + n;
    pm_step(obj, s, b);
}

/* query_reply from the object's pager: the first run of pages it stores at or
 * after the query's offset. Lock held. */
void
vm_obj_query_reply(struct vm_object *obj, const struct emm_msg *msg, struct vm_batch *b)
{
    struct vm_seek *s;
    TAILQ_FOREACH(s, &obj->seeks, qlink)
        if (s->tag == msg->arg)
            break;
    if (s == NULL)
        return; /* given up already, or not ours */
    TAILQ_REMOVE(&obj->seeks, s, qlink);
    if (s->want_data == VM_SEEK_COUNT) {
        if (!(msg->flags & MO_F_QUERY_COUNT) || msg->length == UINT64_MAX) {
            seek_unknown(obj, s, b); /* it cannot tell (a run for the span, or MAX) */
            return;
        }
        /* Its count after every data_return sent before the query. Kept while
         * no other data_return went to it or was taken since. */
        uint64_t count = msg->length / VM_PS;
        obj->pager_count = count;
        obj->pager_count_known = 1;
        obj->pager_count_gen = s->gen; /* valid while pager_gen stays there */
        seek_finish(obj, s, count, b);
        return;
    }
    uint64_t d = msg->offset == UINT64_MAX ? UINT64_MAX : msg->offset / VM_PS;
    uint64_t n = msg->length / VM_PS;
    if (d != UINT64_MAX && d < s->idx) { /* a run that starts earlier: from idx on */
        n = d + n > s->idx ? d + n - s->idx : 0;
        d = n ? s->idx : UINT64_MAX;
    }
    if (s->want_data == VM_SEEK_MAP) {
        if (msg->flags & MO_F_QUERY_COUNT) { /* not an answer to this question */
            seek_unknown(obj, s, b);
            return;
        }
        pm_reply(obj, s, d, n, msg->length == UINT64_MAX || n > UINT64_MAX - d, b);
        return;
    }
    if (s->want_data) {
        seek_finish(obj, s, d < s->best ? d : s->best, b);
        return;
    }
    if (d != s->idx || n == 0) {
        seek_finish(obj, s, s->idx, b); /* the pager has nothing at idx: a hole */
        return;
    }
    /* The pager's data runs on to d + n: go on from there. */
    s->idx = msg->length == UINT64_MAX || n >= s->limit - s->idx ? s->limit : s->idx + n;
    seek_step(obj, s, b);
}

/* Gives up the seeks waiting for a reply: all of them (stop: the object dies
 * or is terminated) or those whose pager is suspect or too slow. Lock held.
 * 1 if some still wait. */
int
vm_obj_seeks_expire(struct vm_object *obj, uint64_t now, int all, struct vm_batch *b)
{
    uint64_t wait = atomic_load_explicit(&obj->deadline_ns, memory_order_relaxed);
    if (wait == 0)
        wait = SEEK_WAIT_DEFAULT_NS;
    int suspect = vm_pager_suspect(obj->pstats, now);
    struct vm_seek *s = TAILQ_FIRST(&obj->seeks), *next;
    for (; s != NULL; s = next) {
        next = TAILQ_NEXT(s, qlink);
        /* (sent after the worker read the clock: not 2^64 ns old) */
        if (!all && !suspect && (now < s->sent_ns || now - s->sent_ns < wait))
            continue;
        TAILQ_REMOVE(&obj->seeks, s, qlink);
        atomic_fetch_add(&obj->kernel->stats.queries_expired, 1);
        seek_unknown(obj, s, b);
    }
    return !TAILQ_EMPTY(&obj->seeks);
}

void
vm_object_stored(struct vm_object *obj, vm_seek_done_fn done, void *arg)
{
    vm_object_seek(obj, 0, UINT64_MAX, VM_SEEK_COUNT, done, arg);
}
