/*
 * test_default_pager.c - the default pager (swapfs/default_pager.c) over real
 * swap files in a mkdtemp directory, driven through real emm ports. The test
 * plays the kernel: it attaches keys through the vm_dpager_ops table, owns one
 * control port per object whose handler records every reply (with a copy of
 * supplied data), and sends data_return messages whose release hooks record
 * the status. The pager runs on its port set's threads, so each exchange ends
 * with a synchronize: its synchronize_completed comes after every earlier reply.
 *
 * Covered: init -> ready; clustered data_return and data_request round trips;
 * zero-fill for temporary keys and MO_F_NOT_HELD for persistent ones; a slot
 * failing its CRC -> data_error; discard; terminate; swap full (-ENOSPC while
 * other keys keep working); priority order and round robin; restart (persistent
 * pages replayed, temporary ones dropped, the newest copy kept, generations
 * above the recovered ones); the same page in two areas; pages() and
 * next_page(); objects freed once detached and empty; configuration errors.
 * Asynchronous I/O (swap_io.c, through its test hook): a chain of contiguous
 * pages is one write and reads back in one read; data_returns are answered in
 * the order they came even when their writes end the other way round; a
 * failed write fails its own data_return (its pages not held, its slots
 * free) and no other; a short write is finished. Both engines (io_uring and
 * threads) run the asynchronous tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "default_pager.h"
#include "log.h"
#include "swap_area.h"
#include "swap_io.h"

#define PS 4096u
#define SMALL (10 * PS) /* 8 slots: header, one descriptor page, slots at pages 2..9 */
#define MIB (1024 * 1024)
#define TEMP_KEY vm_dp_key(1, 5, 1)
#define PERS_KEY vm_dp_key(1, 6, 0)
#define PERS_KEY2 vm_dp_key(2, 6, 0)
#define MAXREC 64

struct krec {
    uint32_t id, flags, access;
    uint64_t off, len;
    int32_t arg;
    uint8_t *data;
};

struct fix;

struct kobj {
    struct fix *f;
    uint64_t key;
    struct emm_port *mo;  /* send right from attach */
    struct emm_port *ctl; /* ours */
    void *h;
    struct krec recs[MAXREC];
    int n;
    int syncs, sync_arg; /* synchronize_completed: how many, the last errno (>= 0) */
};

struct fix {
    char dir[64];
    char paths[4][128];
    struct swp_dp_area_config cfg[4];
    size_t ncfg;
    struct swp_dpager *dp;
    struct vm_dpager_ops ops;
    void *ctx;
    char err[512];
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

/* ---- fixture ------------------------------------------------------------------ */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int
setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/emm-test-dpager-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;
    swp_dp_destroy(f->dp);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f);
    return 0;
}

/* Area i: file "aI" in the directory, created with size when missing. */
static void
area(struct fix *f, size_t i, uint64_t size, int priority)
{
    char path[sizeof(f->paths[i])];
    snprintf(path, sizeof(path), "%s/a%zu", f->dir, i);
    memcpy(f->paths[i], path, sizeof(path));
    f->cfg[i] = (struct swp_dp_area_config){
        .path = f->paths[i], .size = size, .priority = priority, .line = 10 + (int)i};
    if (f->ncfg <= i)
        f->ncfg = i + 1;
}

static void
start(struct fix *f)
{
    int rc = swp_dp_create(f->cfg, f->ncfg, 2, 0, "test.conf", &f->dp, f->err, sizeof(f->err));
    if (rc != 0)
        fail_msg("swp_dp_create: %d: %s", rc, f->err);
    swp_dp_vm_ops(f->dp, &f->ops, &f->ctx);
}

static void
stop(struct fix *f)
{
    swp_dp_destroy(f->dp);
    f->dp = NULL;
}

static struct swp_dp_stats
stats(struct fix *f)
{
    struct swp_dp_stats st;
    swp_dp_stats(f->dp, &st);
    return st;
}

static uint64_t
area_used(struct fix *f, size_t i)
{
    struct swp_dp_area_stat as;
    assert_int_equal(swp_dp_area_stat(f->dp, i, &as), 0);
    return as.slots_used;
}

/* ---- the kernel's side ------------------------------------------------------------ */

static void
control_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct kobj *ko = emm_port_context(port);
    struct fix *f = ko->f;

    pthread_mutex_lock(&f->lock);
    if (ko->n < MAXREC) {
        struct krec *r = &ko->recs[ko->n++];
        *r = (struct krec){.id = msg->id, .flags = msg->flags, .access = msg->access,
                           .off = msg->offset, .len = msg->length, .arg = msg->arg};
        if (msg->id == MO_DATA_SUPPLY) {
            r->data = malloc(msg->length);
            memcpy(r->data, msg->data, msg->length);
        }
    }
    if (msg->id == MO_SYNCHRONIZE_COMPLETED) {
        ko->syncs++;
        ko->sync_arg = msg->arg;
    }
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    emm_msg_release(msg, 0);
}

static void
kreset(struct kobj *ko)
{
    pthread_mutex_lock(&ko->f->lock);
    for (int i = 0; i < ko->n; i++)
        free(ko->recs[i].data);
    ko->n = 0;
    pthread_mutex_unlock(&ko->f->lock);
}

static void
kattach(struct fix *f, struct kobj *ko, uint64_t key)
{
    memset(ko, 0, sizeof(*ko));
    ko->f = f;
    ko->key = key;
    assert_int_equal(f->ops.attach(f->ctx, key, &ko->mo, &ko->h), 0);
    assert_int_equal(emm_port_create("control", control_handler, ko, NULL, &ko->ctl), 0);
}

/* Drops the kernel's handle and rights (no terminate: that is the caller's). */
static void
kdetach(struct kobj *ko)
{
    ko->f->ops.detach(ko->f->ctx, ko->h);
    emm_port_unref(ko->mo);
    emm_port_destroy(ko->ctl);
    kreset(ko);
}

static void
ksend(struct kobj *ko, uint32_t id, uint64_t off, uint64_t len)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    assert_non_null(m);
    m->control = emm_port_make_send(ko->ctl);
    assert_int_equal(emm_port_send(ko->mo, m), 0);
}

/* Waits until *counter reaches n (5 s at most). */
static void
kwait_for(struct kobj *ko, const int *counter, int n)
{
    struct timespec ts;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&ko->f->lock);
    while (*counter < n && rc == 0)
        rc = pthread_cond_timedwait(&ko->f->cond, &ko->f->lock, &ts);
    pthread_mutex_unlock(&ko->f->lock);
    if (rc != 0)
        fail_msg("timed out waiting for a reply");
}

/* A synchronize after what was sent: returns its result once everything before
 * it has been answered (a port handles its messages in order). */
static int
kbarrier(struct kobj *ko)
{
    int n = ko->syncs + 1; /* no other synchronize is in flight */
    ksend(ko, MO_SYNCHRONIZE, 0, UINT64_MAX);
    kwait_for(ko, &ko->syncs, n);
    assert_int_equal(ko->recs[ko->n - 1].id, MO_SYNCHRONIZE_COMPLETED);
    return ko->sync_arg;
}

static void
pattern(void *page, uint64_t key, uint64_t index, unsigned tag)
{
    uint64_t *p = page;
    for (size_t i = 0; i < PS / 8; i++)
        p[i] = (key * 0x9e3779b97f4a7c15ull) ^ (index * 1000003u) ^ ((uint64_t)tag << 40) ^ i;
}

static int
is_pattern(const uint8_t *data, uint64_t key, uint64_t index, unsigned tag)
{
    uint64_t want[PS / 8];
    pattern(want, key, index, tag);
    return memcmp(data, want, PS) == 0;
}

struct ret {
    struct fix *f;
    int status, done;
};

static void
ret_release(struct emm_msg *msg, int status)
{
    struct ret *r = msg->release_ctx;
    pthread_mutex_lock(&r->f->lock);
    r->status = status;
    r->done = 1;
    pthread_cond_broadcast(&r->f->cond);
    pthread_mutex_unlock(&r->f->lock);
    free(msg);
}

/* data_return of pages [first, first+n) as one chain, filled with tag; waits
 * for the release and returns the answer: the data_return_completed's errno,
 * negated (the release status must agree). */
static int
kreturn(struct kobj *ko, uint64_t first, unsigned n, unsigned tag)
{
    struct fix *f = ko->f;
    struct ret r = {.f = f};
    uint8_t *buf = NULL;
    struct emm_msg *head = NULL, **link = &head;
    struct timespec ts;
    int rc = 0;

    assert_int_equal(posix_memalign((void **)&buf, PS, (size_t)n * PS), 0);
    for (unsigned i = 0; i < n; i++) {
        struct emm_msg *m = emm_msg_new(MO_DATA_RETURN, (first + i) * PS, PS);
        assert_non_null(m);
        pattern(buf + (size_t)i * PS, ko->key, first + i, tag);
        m->data = buf + (size_t)i * PS;
        m->flags = MO_F_DIRTY;
        *link = m;
        link = &m->chain;
    }
    head->release = ret_release;
    head->release_ctx = &r;
    head->control = emm_port_make_send(ko->ctl);
    pthread_mutex_lock(&f->lock);
    int before = ko->n;
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(emm_port_send(ko->mo, head), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&f->lock);
    while (!r.done && rc == 0)
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    pthread_mutex_unlock(&f->lock);
    if (rc != 0)
        fail_msg("data_return not released");
    free(buf);
    /* The answer came to the control port before the release. */
    pthread_mutex_lock(&f->lock);
    int found = -1;
    for (int i = ko->n - 1; i >= before && found < 0; i--)
        if (ko->recs[i].id == MO_DATA_RETURN_COMPLETED)
            found = i;
    pthread_mutex_unlock(&f->lock);
    if (found < 0)
        fail_msg("data_return not answered");
    const struct krec *c = &ko->recs[found];
    assert_int_equal(c->off, first * PS);
    assert_int_equal(c->len, (uint64_t)n * PS);
    assert_true(c->arg >= 0);
    assert_int_equal(-c->arg, r.status);
    return -c->arg;
}

/* data_request for [first, first+n); the replies are in ko->recs after it. */
static void
krequest(struct kobj *ko, uint64_t first, uint64_t n)
{
    kreset(ko);
    ksend(ko, MO_DATA_REQUEST, first * PS, n * PS);
    kbarrier(ko);
}

static void
expect(struct kobj *ko, int i, uint32_t id, uint64_t first, uint64_t n, uint32_t flags)
{
    assert_true(i < ko->n);
    assert_int_equal(ko->recs[i].id, id);
    assert_int_equal(ko->recs[i].off, first * PS);
    assert_int_equal(ko->recs[i].len, n * PS);
    assert_int_equal(ko->recs[i].flags, flags);
}

/* Supply record i carries pages [first, first+n) with tag. */
static void
expect_supply(struct kobj *ko, int i, uint64_t first, uint64_t n, unsigned tag)
{
    expect(ko, i, MO_DATA_SUPPLY, first, n, 0);
    for (uint64_t k = 0; k < n; k++)
        if (!is_pattern(ko->recs[i].data + k * PS, ko->key, first + k, tag))
            fail_msg("page %llu: wrong data", (unsigned long long)(first + k));
}

/* Page index, at position k of supply record i, carries tag. */
static void
expect_page(struct kobj *ko, int i, uint64_t k, uint64_t index, unsigned tag)
{
    assert_int_equal(ko->recs[i].id, MO_DATA_SUPPLY);
    assert_true((k + 1) * PS <= ko->recs[i].len);
    if (!is_pattern(ko->recs[i].data + k * PS, ko->key, index, tag))
        fail_msg("page %llu: wrong data", (unsigned long long)index);
}

static uint64_t
next_page(struct kobj *ko, uint64_t from)
{
    return ko->f->ops.next_page(ko->f->ctx, ko->h, from);
}

static uint64_t
pages(struct kobj *ko)
{
    return ko->f->ops.pages(ko->f->ctx, ko->h);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void
test_temporary(void **state)
{
    struct fix *f = *state;
    struct kobj ko;

    area(f, 0, MIB, 0);
    start(f);
    kattach(f, &ko, TEMP_KEY);
    assert_int_equal(pages(&ko), 0);
    assert_int_equal(next_page(&ko, 0), UINT64_MAX);

    ksend(&ko, MO_INIT, 0, 0);
    kwait_for(&ko, &ko.n, 1);
    expect(&ko, 0, MO_READY, 0, 0, MO_F_MAY_CACHE | MO_F_CLUSTER_OK);
    assert_int_equal(ko.recs[0].arg, MO_COPY_DELAY);

    assert_int_equal(kreturn(&ko, 0, 4, 1), 0); /* a chain of 4 */
    assert_int_equal(kreturn(&ko, 100, 1, 1), 0);
    assert_int_equal(kreturn(&ko, 1ull << 40, 1, 1), 0);
    assert_int_equal(pages(&ko), 6);
    assert_int_equal(stats(f).pages_out, 6);
    assert_int_equal(stats(f).slots_used, 6);

    krequest(&ko, 0, 6);
    assert_int_equal(ko.n, 3);
    expect_supply(&ko, 0, 0, 4, 1);
    expect(&ko, 1, MO_DATA_UNAVAILABLE, 4, 2, 0); /* zero-fill, not "not held" */
    assert_int_equal(stats(f).pages_in, 4);

    assert_int_equal(next_page(&ko, 0), 0);
    assert_int_equal(next_page(&ko, 3), 3);
    assert_int_equal(next_page(&ko, 4), 100);
    assert_int_equal(next_page(&ko, 101), 1ull << 40);
    assert_int_equal(next_page(&ko, (1ull << 40) + 1), UINT64_MAX);

    /* a page rewritten: the new copy is served, the old slot freed */
    assert_int_equal(kreturn(&ko, 2, 1, 2), 0);
    assert_int_equal(pages(&ko), 6);
    assert_int_equal(stats(f).slots_used, 6);
    krequest(&ko, 1, 3);
    expect(&ko, 0, MO_DATA_SUPPLY, 1, 3, 0); /* one run, one supply */
    expect_page(&ko, 0, 0, 1, 1);
    expect_page(&ko, 0, 1, 2, 2);
    expect_page(&ko, 0, 2, 3, 1);

    kreset(&ko);
    ksend(&ko, MO_DISCARD, 2 * PS, PS);
    ksend(&ko, MO_DATA_UNLOCK, 0, PS);
    assert_int_equal(kbarrier(&ko), 0);
    expect(&ko, 0, MO_LOCK_REQUEST, 0, 1, 0);
    assert_int_equal(ko.recs[0].access, VM_PROT_NONE);
    assert_int_equal(pages(&ko), 5);
    assert_int_equal(stats(f).discards, 1);
    krequest(&ko, 2, 1);
    expect(&ko, 0, MO_DATA_UNAVAILABLE, 2, 1, 0);

    ksend(&ko, MO_DISCARD, 50 * PS, UINT64_MAX); /* to the end */
    kbarrier(&ko);
    assert_int_equal(pages(&ko), 3);
    assert_int_equal(next_page(&ko, 4), UINT64_MAX);
    assert_int_equal(stats(f).slots_used, 3);

    ksend(&ko, MO_TERMINATE, 0, 0); /* temporary: every page goes */
    kbarrier(&ko);
    assert_int_equal(pages(&ko), 0);
    assert_int_equal(stats(f).slots_used, 0);
    kdetach(&ko);
}

static void
test_persistent(void **state)
{
    struct fix *f = *state;
    struct kobj ko, ko2;

    area(f, 0, MIB, 0);
    start(f);
    kattach(f, &ko, PERS_KEY);
    krequest(&ko, 0, 3);
    assert_int_equal(ko.n, 2);
    expect(&ko, 0, MO_DATA_UNAVAILABLE, 0, 3, MO_F_NOT_HELD);

    assert_int_equal(kreturn(&ko, 1, 1, 7), 0);
    krequest(&ko, 0, 4);
    assert_int_equal(ko.n, 4);
    expect(&ko, 0, MO_DATA_UNAVAILABLE, 0, 1, MO_F_NOT_HELD);
    expect_supply(&ko, 1, 1, 1, 7);
    expect(&ko, 2, MO_DATA_UNAVAILABLE, 2, 2, MO_F_NOT_HELD);

    /* a second attach: the same port and object */
    kattach(f, &ko2, PERS_KEY);
    assert_ptr_equal(ko2.mo, ko.mo);
    assert_ptr_equal(ko2.h, ko.h);
    kdetach(&ko2);

    /* terminate keeps a persistent key's pages for the next attach */
    ksend(&ko, MO_TERMINATE, 0, 0);
    kbarrier(&ko);
    kdetach(&ko);
    kattach(f, &ko, PERS_KEY);
    assert_int_equal(pages(&ko), 1);
    krequest(&ko, 1, 1);
    expect_supply(&ko, 0, 1, 1, 7);
    assert_int_equal(stats(f).objects, 1);
    kdetach(&ko);
}

/* data_query (emm extension) answered like any pager: the first run of held
 * pages at or after the offset, within the span; the tag comes back. */
static void
kquery(struct kobj *ko, uint64_t from, uint64_t span, int32_t tag, uint64_t want_first,
       uint64_t want_n)
{
    kreset(ko);
    struct emm_msg *m = emm_msg_new(MO_DATA_QUERY, from * PS, span == UINT64_MAX ? span : span * PS);
    m->arg = tag;
    m->control = emm_port_make_send(ko->ctl);
    assert_int_equal(emm_port_send(ko->mo, m), 0);
    kbarrier(ko);
    assert_int_equal(ko->n, 2);
    assert_int_equal(ko->recs[0].id, MO_QUERY_REPLY);
    assert_int_equal(ko->recs[0].arg, tag);
    if (want_first == UINT64_MAX) {
        assert_true(ko->recs[0].off == UINT64_MAX);
    } else {
        assert_int_equal(ko->recs[0].off, want_first * PS);
        assert_int_equal(ko->recs[0].len, want_n * PS);
    }
}

static void
test_data_query(void **state)
{
    struct fix *f = *state;
    struct kobj ko;

    area(f, 0, MIB, 0);
    start(f);
    kattach(f, &ko, TEMP_KEY);
    kquery(&ko, 0, UINT64_MAX, 1, UINT64_MAX, 0);
    assert_int_equal(kreturn(&ko, 2, 3, 1), 0); /* pages 2..4 */
    assert_int_equal(kreturn(&ko, 9, 1, 1), 0);
    kquery(&ko, 0, UINT64_MAX, 2, 2, 3);
    kquery(&ko, 3, UINT64_MAX, 3, 3, 2);
    kquery(&ko, 5, UINT64_MAX, 4, 9, 1);
    kquery(&ko, 5, 4, 5, UINT64_MAX, 0);
    kquery(&ko, 0, 4, 6, 2, 2);
    ksend(&ko, MO_DISCARD, 2 * PS, 3 * PS);
    kquery(&ko, 0, UINT64_MAX, 7, 9, 1);
    /* How many it holds. */
    kreset(&ko);
    struct emm_msg *m = emm_msg_new(MO_DATA_QUERY, 0, UINT64_MAX);
    m->arg = 8;
    m->flags = MO_F_QUERY_COUNT;
    m->control = emm_port_make_send(ko.ctl);
    assert_int_equal(emm_port_send(ko.mo, m), 0);
    kbarrier(&ko);
    assert_int_equal(ko.recs[0].id, MO_QUERY_REPLY);
    assert_int_equal(ko.recs[0].arg, 8);
    assert_int_equal(ko.recs[0].len, PS);
    ksend(&ko, MO_TERMINATE, 0, 0);
    kbarrier(&ko);
    kdetach(&ko);
}

/* A slot whose data no longer matches its CRC: data_error for that page only. */
static void
test_read_error(void **state)
{
    struct fix *f = *state;
    struct kobj ko;
    char junk[PS];

    area(f, 0, SMALL, 0);
    start(f);
    kattach(f, &ko, PERS_KEY);
    assert_int_equal(kreturn(&ko, 0, 3, 1), 0); /* slots 0, 1, 2: pages 2, 3, 4 of the file */
    memset(junk, 0x5a, sizeof(junk));
    int fd = open(f->paths[0], O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, PS, 3 * PS), PS);
    close(fd);

    krequest(&ko, 0, 3);
    assert_int_equal(ko.n, 4);
    expect_supply(&ko, 0, 0, 1, 1);
    expect(&ko, 1, MO_DATA_ERROR, 1, 1, 0);
    assert_int_equal(ko.recs[1].arg, EIO);
    expect_supply(&ko, 2, 2, 1, 1);
    assert_int_equal(stats(f).io_errors, 1);
    kdetach(&ko);
}

static void
test_swap_full(void **state)
{
    struct fix *f = *state;
    struct kobj a, b;

    area(f, 0, SMALL, 0);
    start(f);
    assert_int_equal(stats(f).slots_total, 8);
    kattach(f, &a, TEMP_KEY);
    kattach(f, &b, PERS_KEY);
    assert_int_equal(kreturn(&b, 0, 2, 1), 0);
    assert_int_equal(kreturn(&a, 0, 6, 1), 0);
    assert_int_equal(stats(f).slots_used, 8);

    assert_int_equal(kreturn(&a, 6, 1, 1), -ENOSPC);
    assert_int_equal(kreturn(&a, 7, 2, 1), -ENOSPC); /* a chain fails as a whole */
    assert_int_equal(stats(f).full_errors, 2);
    assert_int_equal(stats(f).write_errors, 2);
    assert_int_equal(pages(&a), 6);
    assert_int_equal(kbarrier(&a), ENOSPC); /* the next synchronize reports it */
    assert_int_equal(kbarrier(&a), 0);

    /* the other key still reads, and writes once a slot is free */
    krequest(&b, 0, 2);
    expect_supply(&b, 0, 0, 2, 1);
    assert_int_equal(kreturn(&b, 2, 1, 1), -ENOSPC);
    ksend(&a, MO_DISCARD, 0, PS);
    kbarrier(&a);
    assert_int_equal(kreturn(&b, 2, 1, 1), 0);
    assert_int_equal(pages(&b), 3);
    kdetach(&a);
    kdetach(&b);
}

static void
test_priority(void **state)
{
    struct fix *f = *state;
    struct kobj ko;

    area(f, 0, SMALL, 0);
    area(f, 1, SMALL, 5); /* listed second, used first */
    area(f, 2, SMALL, -1);
    start(f);
    kattach(f, &ko, PERS_KEY);
    assert_int_equal(kreturn(&ko, 0, 8, 1), 0);
    assert_int_equal(area_used(f, 1), 8);
    assert_int_equal(area_used(f, 0), 0);
    assert_int_equal(kreturn(&ko, 8, 1, 1), 0); /* full: the next priority */
    assert_int_equal(area_used(f, 0), 1);
    assert_int_equal(area_used(f, 2), 0);
    assert_int_equal(kreturn(&ko, 9, 7, 1), 0);
    assert_int_equal(kreturn(&ko, 16, 1, 1), 0);
    assert_int_equal(area_used(f, 2), 1);
    krequest(&ko, 0, 17);
    expect_supply(&ko, 0, 0, 17, 1); /* across three areas */

    struct swp_dp_area_stat as;
    assert_int_equal(swp_dp_area_stat(f->dp, 1, &as), 0);
    assert_string_equal(as.path, f->paths[1]);
    assert_int_equal(as.priority, 5);
    assert_int_equal(as.slots_total, 8);
    assert_false(as.blkdev);
    assert_int_equal(swp_dp_area_stat(f->dp, 3, &as), -ENOENT);
    kdetach(&ko);
}

static void
test_round_robin(void **state)
{
    struct fix *f = *state;
    struct kobj ko;

    area(f, 0, SMALL, 3);
    area(f, 1, SMALL, 3);
    start(f);
    kattach(f, &ko, TEMP_KEY);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(kreturn(&ko, i, 1, 1), 0);
        assert_int_equal(area_used(f, 0) + area_used(f, 1), i + 1);
        assert_true(area_used(f, 0) >= (i + 1) / 2 && area_used(f, 1) >= (i + 1) / 2);
    }
    assert_int_equal(area_used(f, 0), 2);
    assert_int_equal(area_used(f, 1), 2);
    kdetach(&ko);
}

struct seen {
    uint64_t keys[8], pages[8];
    int n;
};

static int
seen_fn(void *arg, uint64_t key, uint64_t npages)
{
    struct seen *s = arg;
    s->keys[s->n] = key;
    s->pages[s->n++] = npages;
    return 0;
}

static void
test_restart(void **state)
{
    struct fix *f = *state;
    struct kobj t, p, q;
    struct seen s = {0};

    area(f, 0, MIB, 0);
    area(f, 1, MIB, 0);
    start(f);
    kattach(f, &t, TEMP_KEY);
    kattach(f, &p, PERS_KEY);
    kattach(f, &q, PERS_KEY2);
    assert_int_equal(kreturn(&t, 0, 4, 1), 0);
    assert_int_equal(kreturn(&p, 0, 6, 1), 0);
    assert_int_equal(kreturn(&p, 2, 1, 2), 0); /* written twice */
    assert_int_equal(kreturn(&q, 9, 1, 1), 0);
    ksend(&q, MO_DISCARD, 0, UINT64_MAX); /* q ends with nothing */
    kbarrier(&q);
    kdetach(&t); /* no terminate: the service stops */
    kdetach(&p);
    kdetach(&q);
    stop(f);

    start(f);
    assert_int_equal(swp_dp_foreach_object(f->dp, seen_fn, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.keys[0], PERS_KEY);
    assert_int_equal(s.pages[0], 6);
    assert_int_equal(stats(f).slots_used, 6); /* the temporary pages are freed */
    kattach(f, &p, PERS_KEY);
    assert_int_equal(pages(&p), 6);
    krequest(&p, 0, 6);
    expect(&p, 0, MO_DATA_SUPPLY, 0, 6, 0);
    for (uint64_t i = 0; i < 6; i++)
        expect_page(&p, 0, i, i, i == 2 ? 2 : 1);
    kattach(f, &t, TEMP_KEY);
    assert_int_equal(pages(&t), 0);
    krequest(&t, 0, 4);
    expect(&t, 0, MO_DATA_UNAVAILABLE, 0, 4, 0);

    /* generations go on above the recovered ones: the newest copy wins again */
    assert_int_equal(kreturn(&p, 3, 1, 3), 0);
    kdetach(&t);
    kdetach(&p);
    stop(f);
    start(f);
    kattach(f, &p, PERS_KEY);
    krequest(&p, 3, 1);
    expect_supply(&p, 0, 3, 1, 3);
    kdetach(&p);
}

static void
write_forged(struct swp_area *a, uint64_t slot, uint64_t key, uint64_t index, uint64_t gen,
             unsigned tag)
{
    void *page = NULL;
    assert_int_equal(posix_memalign(&page, PS, PS), 0);
    pattern(page, key, index, tag);
    assert_int_equal(swp_area_write_slot(a, slot, key, index, gen, page), 0);
    free(page);
}

struct disk {
    int n;
    uint64_t max_gen;
};

static int
disk_fn(void *arg, uint64_t slot, const struct swp_desc *d)
{
    struct disk *dk = arg;
    (void)slot;
    dk->n++;
    if (d->gen > dk->max_gen)
        dk->max_gen = d->gen;
    return 0;
}

/* Descriptors on disk in area i, and their highest generation. */
static struct disk
on_disk(struct fix *f, size_t i)
{
    struct swp_area *a;
    struct disk dk = {0};
    assert_int_equal(swp_area_open(f->paths[i], SWP_OPEN_RDONLY, &a), 0);
    assert_int_equal(swp_area_scan(a, 0, disk_fn, &dk, NULL), 0);
    swp_area_abandon(a);
    return dk;
}

/* The same page in two areas (a rewrite cut by a crash): the higher generation
 * wins whichever area holds it, and the loser is cleared on disk. */
static void
test_two_copies(void **state)
{
    struct fix *f = *state;
    struct swp_area *a0, *a1;
    struct kobj ko;
    struct seen s = {0};

    area(f, 0, SMALL, 0);
    area(f, 1, SMALL, 1); /* new pages go to the area with the older generations */
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(swp_area_format(f->paths[i], SMALL, NULL, 0, NULL), 0);
    assert_int_equal(swp_area_open(f->paths[0], 0, &a0), 0);
    assert_int_equal(swp_area_open(f->paths[1], 0, &a1), 0);
    write_forged(a0, 0, PERS_KEY, 7, 5, 1);
    write_forged(a1, 0, PERS_KEY, 7, 9, 2); /* newer, in the second area */
    write_forged(a0, 1, PERS_KEY, 8, 12, 3); /* newer, in the first area */
    write_forged(a1, 1, PERS_KEY, 8, 3, 4);
    write_forged(a1, 2, TEMP_KEY, 0, 4, 1);
    swp_area_close(a0);
    swp_area_abandon(a1); /* a crash: the data is checked at the next open */

    start(f);
    assert_int_equal(swp_dp_foreach_object(f->dp, seen_fn, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.pages[0], 2);
    assert_int_equal(area_used(f, 0), 1);
    assert_int_equal(area_used(f, 1), 1);
    kattach(f, &ko, PERS_KEY);
    krequest(&ko, 7, 2);
    expect(&ko, 0, MO_DATA_SUPPLY, 7, 2, 0);
    expect_page(&ko, 0, 0, 7, 2);
    expect_page(&ko, 0, 1, 8, 3);
    assert_int_equal(kreturn(&ko, 8, 1, 5), 0); /* from area 0 (gen 12) to area 1 */
    kdetach(&ko);
    stop(f);

    /* losers, the temporary page and the rewritten copy are gone from disk; one
     * counter across areas: the new copy is above area 0's generation 12 */
    struct disk d0 = on_disk(f, 0), d1 = on_disk(f, 1);
    assert_int_equal(d0.n, 0);
    assert_int_equal(d1.n, 2);
    assert_true(d1.max_gen > 12);
}

static void
wait_objects(struct fix *f, uint64_t n)
{
    for (int i = 0; i < 5000 && stats(f).objects != n; i++)
        usleep(1000);
    assert_int_equal(stats(f).objects, n);
}

/* An object is freed once the kernel detached it and it holds no page. */
static void
test_objects_freed(void **state)
{
    struct fix *f = *state;
    struct kobj a, b;

    area(f, 0, MIB, 0);
    start(f);
    kattach(f, &a, TEMP_KEY);
    kattach(f, &b, TEMP_KEY);
    assert_int_equal(stats(f).objects, 1);
    kdetach(&a);
    kdetach(&b);
    wait_objects(f, 0);

    kattach(f, &a, TEMP_KEY);
    assert_int_equal(kreturn(&a, 0, 2, 1), 0);
    ksend(&a, MO_TERMINATE, 0, 0);
    kdetach(&a);
    wait_objects(f, 0);
    assert_int_equal(stats(f).slots_used, 0);
}

static void
expect_err(struct fix *f, int rc, const char *line_path, const char *reason)
{
    char want[512];
    assert_int_equal(swp_dp_create(f->cfg, f->ncfg, 1, 0, "test.conf", &f->dp, f->err,
                                   sizeof(f->err)),
                     rc);
    assert_null(f->dp);
    snprintf(want, sizeof(want), "test.conf:%s: %s", line_path, reason);
    assert_string_equal(f->err, want);
}

static void
test_config_errors(void **state)
{
    struct fix *f = *state;
    char where[256], dirpath[128];

    area(f, 0, 0, 0);
    snprintf(where, sizeof(where), "10: swap %s", f->paths[0]);
    expect_err(f, -ENOENT, where, "does not exist (give a size to create it)");

    int fd = open(f->paths[0], O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, MIB), 0);
    expect_err(f, -EINVAL, where,
               "not an emm swap area (found no known signature); format it with emmswap format");
    assert_int_equal(pwrite(fd, "\x53\xef", 2, 1080), 2);
    close(fd);
    expect_err(f, -EINVAL, where,
               "not an emm swap area (found ext2/3/4 filesystem); format it with emmswap format");

    snprintf(dirpath, sizeof(dirpath), "%s/d", f->dir);
    assert_int_equal(mkdir(dirpath, 0700), 0);
    f->cfg[0].path = dirpath;
    snprintf(where, sizeof(where), "10: swap %s", dirpath);
    expect_err(f, -ENOTBLK, where, "not a regular file or a block device");

    /* a missing area with a size is made; a later bad one names its own line,
     * and the good one is let go (it opens again) */
    area(f, 0, MIB, 0);
    unlink(f->paths[0]);
    area(f, 1, 0, 0);
    snprintf(where, sizeof(where), "11: swap %s", f->paths[1]);
    expect_err(f, -ENOENT, where, "does not exist (give a size to create it)");
    f->ncfg = 1;
    f->cfg[0].size = 2 * MIB; /* another size for an existing area: only a notice */
    start(f);
    assert_int_equal(stats(f).slots_total, 253); /* 1 MiB: 256 pages, 2 descriptor pages */
}


/* ---- asynchronous I/O ----------------------------------------------------------------- */

/* A data_return sent without waiting; kret_wait waits for its release. */
struct pending {
    struct ret r;
    uint8_t *buf;
    int before;
};

static void
kreturn_start(struct kobj *ko, struct pending *p, uint64_t first, unsigned n, unsigned tag)
{
    struct emm_msg *head = NULL, **link = &head;
    memset(p, 0, sizeof(*p));
    p->r.f = ko->f;
    assert_int_equal(posix_memalign((void **)&p->buf, PS, (size_t)n * PS), 0);
    for (unsigned i = 0; i < n; i++) {
        struct emm_msg *m = emm_msg_new(MO_DATA_RETURN, (first + i) * PS, PS);
        assert_non_null(m);
        pattern(p->buf + (size_t)i * PS, ko->key, first + i, tag);
        m->data = p->buf + (size_t)i * PS;
        m->flags = MO_F_DIRTY;
        *link = m;
        link = &m->chain;
    }
    head->release = ret_release;
    head->release_ctx = &p->r;
    head->control = emm_port_make_send(ko->ctl);
    assert_int_equal(emm_port_send(ko->mo, head), 0);
}

static int
kreturn_wait(struct kobj *ko, struct pending *p)
{
    struct timespec ts;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&ko->f->lock);
    while (!p->r.done && rc == 0)
        rc = pthread_cond_timedwait(&ko->f->cond, &ko->f->lock, &ts);
    pthread_mutex_unlock(&ko->f->lock);
    if (rc != 0)
        fail_msg("data_return not released");
    free(p->buf);
    return p->r.status;
}

/* The i-th data_return_completed in ko->recs: its offset, and its errno. */
static uint64_t
completed_off(struct kobj *ko, int nth, int *err)
{
    int seen = 0;
    for (int i = 0; i < ko->n; i++)
        if (ko->recs[i].id == MO_DATA_RETURN_COMPLETED && seen++ == nth) {
            *err = ko->recs[i].arg;
            return ko->recs[i].off;
        }
    fail_msg("no data_return_completed #%d", nth);
    return 0;
}

/* The hook of these tests: counts write transfers; the first one can wait
 * until a later one has ended (out-of-order completion), and a chosen one can
 * fail or come back short. */
struct hk {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int writes;
    int hold_first; /* the first write waits until the second has been seen */
    int fail_nth;   /* 1-based write to fail with EIO; 0: none */
    int short_nth;  /* 1-based write to come back a page short (O_DIRECT: aligned) */
    int order[8];   /* write numbers in the order their transfers ended */
    int norder;
};

static long
hk_fn(void *arg, const struct swp_io_req *r, long res)
{
    struct hk *h = arg;
    if (r->op != SWP_IO_WRITE)
        return res;
    pthread_mutex_lock(&h->lock);
    int me = ++h->writes;
    if (me == 1 && h->hold_first) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        while (h->norder == 0 &&
               pthread_cond_timedwait(&h->cond, &h->lock, &ts) == 0)
            ;
    }
    if (me == h->fail_nth)
        res = -EIO;
    else if (me == h->short_nth && res > (long)PS)
        res -= PS;
    if (h->norder < 8)
        h->order[h->norder++] = me;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    return res;
}

static int
setup_threads(void **state)
{
    setenv("EMM_SWAP_IO", "threads", 1);
    return setup(state);
}

static int
setup_uring(void **state)
{
    unsetenv("EMM_SWAP_IO");
    return setup(state);
}

/* N contiguous pages returned as one chain: one write, and one read back. */
static void
test_async_coalesce(void **state)
{
    struct fix *f = *state;
    struct kobj ko;

    area(f, 0, 4 * MIB, 0);
    start(f);
    print_message("engine: %s\n", swp_io_engine(swp_dp_area_io(f->dp, 0)));
    kattach(f, &ko, TEMP_KEY);
    assert_int_equal(kreturn(&ko, 10, 64, 1), 0);
    assert_int_equal(stats(f).write_ios, 1);
    assert_int_equal(stats(f).pages_out, 64);
    assert_int_equal(kreturn(&ko, 200, 256, 2), 0); /* the most one write takes */
    assert_int_equal(stats(f).write_ios, 2);
    assert_int_equal(kreturn(&ko, 1000, 300, 3), 0); /* more: two writes */
    assert_int_equal(stats(f).write_ios, 4);
    krequest(&ko, 10, 64);
    assert_int_equal(stats(f).read_ios, 1);
    assert_int_equal(ko.n, 2);
    expect_supply(&ko, 0, 10, 64, 1);
    krequest(&ko, 1000, 256);
    expect_supply(&ko, 0, 1000, 256, 3);
    assert_int_equal(stats(f).read_ios, 2);
    /* pages whose slots are two runs apart (another object wrote between):
     * one supply, read in two I/Os */
    struct kobj ko2;
    kattach(f, &ko2, PERS_KEY);
    assert_int_equal(kreturn(&ko, 5000, 4, 4), 0);
    assert_int_equal(kreturn(&ko2, 0, 4, 4), 0);
    assert_int_equal(kreturn(&ko, 5004, 4, 4), 0);
    krequest(&ko, 5000, 8);
    assert_int_equal(ko.n, 2);
    expect_supply(&ko, 0, 5000, 8, 4);
    assert_int_equal(stats(f).read_ios, 4);
    ksend(&ko2, MO_TERMINATE, 0, 0);
    kbarrier(&ko2);
    kdetach(&ko2);
    ksend(&ko, MO_TERMINATE, 0, 0);
    kbarrier(&ko);
    kdetach(&ko);
}

/* Two data_returns whose writes end the other way round are answered in the
 * order they came, and the later copy of a page they share wins. */
static void
test_async_order(void **state)
{
    struct fix *f = *state;
    struct kobj ko;
    struct pending a, b;
    struct hk h = {0};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);

    area(f, 0, 4 * MIB, 0);
    start(f);
    /* The thread engine can end the second write first (the first waits in
     * the hook on one worker); io_uring's hook runs on its one reaper. */
    h.hold_first = strcmp(swp_io_engine(swp_dp_area_io(f->dp, 0)), "threads") == 0;
    kattach(f, &ko, TEMP_KEY);
    swp_io_set_hook(swp_dp_area_io(f->dp, 0), hk_fn, &h);
    kreturn_start(&ko, &a, 0, 8, 1); /* pages 0..7, tag 1 */
    kreturn_start(&ko, &b, 4, 8, 2); /* pages 4..11, tag 2: newer for 4..7 */
    assert_int_equal(kreturn_wait(&ko, &a), 0);
    assert_int_equal(kreturn_wait(&ko, &b), 0);
    swp_io_set_hook(swp_dp_area_io(f->dp, 0), NULL, NULL);
    pthread_mutex_lock(&h.lock);
    int ended_first = h.order[0];
    pthread_mutex_unlock(&h.lock);
    kbarrier(&ko);
    int err;
    assert_int_equal(completed_off(&ko, 0, &err), 0 * PS);
    assert_int_equal(completed_off(&ko, 1, &err), 4 * PS);
    krequest(&ko, 0, 12);
    for (uint64_t i = 0; i < 12; i++)
        expect_page(&ko, 0, i, i, i < 4 ? 1 : 2);
    assert_int_equal(pages(&ko), 12);
    assert_int_equal(stats(f).slots_used, 12);
    if (h.hold_first)
        assert_int_equal(ended_first, 2); /* they did end the other way round */
    ksend(&ko, MO_TERMINATE, 0, 0);
    kbarrier(&ko);
    kdetach(&ko);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

/* A write that fails fails its own data_return only: its pages are not held,
 * its slots are free again, the others are stored. A short write is finished. */
static void
test_async_failure(void **state)
{
    struct fix *f = *state;
    struct kobj ko;
    struct hk h = {.fail_nth = 2, .short_nth = 3};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);

    area(f, 0, 4 * MIB, 0);
    start(f);
    kattach(f, &ko, TEMP_KEY);
    swp_io_set_hook(swp_dp_area_io(f->dp, 0), hk_fn, &h);
    assert_int_equal(kreturn(&ko, 0, 4, 1), 0);
    assert_int_equal(kreturn(&ko, 4, 4, 1), -EIO);
    assert_int_equal(kreturn(&ko, 8, 4, 1), 0); /* short, then finished */
    swp_io_set_hook(swp_dp_area_io(f->dp, 0), NULL, NULL);
    assert_int_equal(pages(&ko), 8);
    assert_int_equal(stats(f).slots_used, 8);
    assert_int_equal(stats(f).write_errors, 1);
    assert_int_equal(stats(f).io_errors, 1);
    assert_int_equal(kbarrier(&ko), EIO); /* the next synchronize reports it */
    kreset(&ko);
    krequest(&ko, 0, 12);
    assert_int_equal(ko.n, 4);
    expect_supply(&ko, 0, 0, 4, 1);
    expect(&ko, 1, MO_DATA_UNAVAILABLE, 4, 4, 0);
    expect_supply(&ko, 2, 8, 4, 1);
    struct swp_io_stats st;
    swp_io_stats(swp_dp_area_io(f->dp, 0), &st);
    assert_int_equal(st.shorts, 1);
    ksend(&ko, MO_TERMINATE, 0, 0);
    kbarrier(&ko);
    kdetach(&ko);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_objects_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_coalesce, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_async_coalesce, setup_threads, teardown),
        cmocka_unit_test_setup_teardown(test_async_order, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_async_order, setup_threads, teardown),
        cmocka_unit_test_setup_teardown(test_async_failure, setup_uring, teardown),
        cmocka_unit_test_setup_teardown(test_async_failure, setup_threads, teardown),
    };
    emm_log_init("test_default_pager", 0, EMM_LOG_ERR + 1); /* quiet: failures are expected */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
