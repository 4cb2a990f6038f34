/*
 * test_pager_std.c - the standard pager over real backends ("memory", and
 * "error:memory" for the failure paths). The test plays the kernel: it owns a
 * control port whose handler records every pager -> kernel message (with a copy
 * of supplied data) and sends kernel -> pager messages to the object's memory
 * object port. Both backends are NONBLOCKING, so the pager runs inline and
 * every answer has arrived when a send returns.
 *
 * Each test builds its own backend in its own mkdtemp directory.
 */
#include <errno.h>
#include <stdatomic.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend_host.h"
#include "pager_std.h"

#define PS ((uint64_t)EMM_PAGE_SIZE)
#define OBJ 7

struct krec {
    uint32_t id;
    uint64_t off, len;
    uint32_t flags, access;
    int32_t arg;
    uint64_t arg2;
    uint8_t *data; /* copy of supplied data */
};

struct fix {
    char dir[64];
    char trigger[128];
    struct emm_backend_args args;
    struct emm_backend_key kv[8];
    struct emm_backend *b;
    char err[512];
    struct pgr_std *pg;
    struct emm_port *mo;      /* send right to the memory object port */
    struct emm_port *control; /* ours: receive right */
    struct emm_port *name;
    pthread_mutex_t lock;
    struct krec recs[256];
    int n;
    int answer_locks; /* answer lock_request with lock_completed */
    int terminated;
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void
control_handler(struct emm_port *port, struct emm_msg *msg)
{
    struct fix *f = emm_port_context(port);
    pthread_mutex_lock(&f->lock);
    if (f->n < 256) {
        struct krec *r = &f->recs[f->n++];
        r->id = msg->id;
        r->off = msg->offset;
        r->len = msg->length;
        r->flags = msg->flags;
        r->access = msg->access;
        r->arg = msg->arg;
        r->arg2 = msg->arg2;
        r->data = NULL;
        if ((msg->id == MO_DATA_SUPPLY || msg->id == MO_QUERY_REPLY) && msg->data != NULL) {
            r->data = malloc(msg->length);
            memcpy(r->data, msg->data, msg->length);
        }
    }
    int answer = f->answer_locks && msg->id == MO_LOCK_REQUEST && msg->reply != EMM_PORT_NULL;
    pthread_mutex_unlock(&f->lock);
    if (answer) {
        struct emm_msg *r = emm_msg_new(MO_LOCK_COMPLETED, msg->offset, msg->length);
        r->control = emm_port_make_send(port);
        if (emm_port_send_reply(&msg->reply, r) < 0)
            emm_msg_release(r, -EPIPE);
    }
    emm_msg_release(msg, 0);
}

static void
fix_key(struct fix *f, const char *key, const char *value)
{
    struct emm_backend_key *kv = &f->kv[f->args.nkeys++];
    kv->key = key;
    kv->value = value;
    kv->line = 10 + (int)f->args.nkeys;
}

static void kinit(struct fix *f);

static struct fix *
fix_new(const char *spec, int with_error_keys)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    strcpy(f->dir, "/tmp/emm-test-pager-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->trigger, sizeof(f->trigger), "%s/fail", f->dir);
    f->args.file = "test.conf";
    f->args.state_dir = f->dir;
    f->args.fs_name = "t";
    f->args.line = 3;
    f->args.keys = f->kv;
    if (with_error_keys) {
        fix_key(f, "error.rate", "1");
        fix_key(f, "error.ops", with_error_keys == 2 ? "sync" : "read,write");
        fix_key(f, "error.file", f->trigger); /* errors only while it exists */
    }
    f->args.spec = spec;
    int rc = emm_backend_open(&f->args, &f->b, f->err, sizeof(f->err));
    if (rc != 0)
        fail_msg("open %s: %s", spec, f->err);
    assert_int_equal(emm_backend_start(f->b), 0);
    assert_int_equal(pgr_std_create(f->b, 2, 0, &f->pg), 0);
    assert_true(pgr_std_is_inline(f->pg));
    assert_int_equal(pgr_std_object_port(f->pg, OBJ, &f->mo), 0);
    assert_int_equal(emm_port_create("control", control_handler, f, NULL, &f->control), 0);
    assert_int_equal(emm_port_create("name", NULL, f, NULL, &f->name), 0);
    kinit(f);
    return f;
}

/* Only the store's sync fails (while the trigger file exists). */
static int
setup_sync_error(void **state)
{
    *state = fix_new("error:memory", 2);
    return 0;
}

static int
setup_memory(void **state)
{
    *state = fix_new("memory", 0);
    return 0;
}

static int
setup_error(void **state)
{
    *state = fix_new("error:memory", 1);
    return 0;
}

static void
ksend_full(struct fix *f, struct emm_msg *m)
{
    if (m->control == EMM_PORT_NULL)
        m->control = emm_port_make_send(f->control);
    assert_int_equal(emm_port_send(f->mo, m), 0);
}

static void
ksend(struct fix *f, uint32_t id, uint64_t off, uint64_t len)
{
    struct emm_msg *m = emm_msg_new(id, off, len);
    assert_non_null(m);
    ksend_full(f, m);
}

static void
kterminate(struct fix *f)
{
    struct emm_msg *m = emm_msg_new(MO_TERMINATE, 0, 0);
    m->control = emm_port_make_send(f->control);
    m->name = emm_port_make_send(f->name);
    assert_int_equal(emm_port_send(f->mo, m), 0);
    f->terminated = 1;
}

static int
teardown(void **state)
{
    struct fix *f = *state;
    if (!f->terminated)
        kterminate(f);
    pgr_std_destroy(f->pg);
    emm_port_unref(f->mo);
    emm_port_destroy(f->control);
    emm_port_destroy(f->name);
    emm_backend_close(f->b);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < f->n && i < 256; i++)
        free(f->recs[i].data);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return 0;
}

static void
kinit(struct fix *f)
{
    struct emm_msg *m = emm_msg_new(MO_INIT, 0, 0);
    m->control = emm_port_make_send(f->control);
    m->name = emm_port_make_send(f->name);
    m->arg = (int32_t)PS;
    assert_int_equal(emm_port_send(f->mo, m), 0);
}

static void
page_fill(uint8_t *p, uint64_t idx, uint8_t gen)
{
    for (uint64_t i = 0; i < PS; i++)
        p[i] = (uint8_t)(idx * 37 + gen * 11 + i * 3);
}

/* Data return with a release hook that records the status. */
struct ret_state {
    int released;
    int status;
    uint64_t seqno; /* the head's (chained messages are not stamped) */
};

static void
ret_release(struct emm_msg *msg, int status)
{
    struct ret_state *rs = msg->release_ctx;
    rs->released++;
    rs->status = status;
    if (msg->seqno != 0)
        rs->seqno = msg->seqno;
    free(msg->data);
    free(msg);
}

static int
kreturn_flags(struct fix *f, uint64_t first, uint64_t n, uint8_t gen, uint32_t flags)
{
    struct ret_state rs = {0, 99, 0};
    struct emm_msg *m = emm_msg_new(MO_DATA_RETURN, first * PS, n * PS);
    m->data = malloc(n * PS);
    for (uint64_t i = 0; i < n; i++)
        page_fill((uint8_t *)m->data + i * PS, first + i, gen);
    m->flags = flags;
    m->release = ret_release;
    m->release_ctx = &rs;
    int before = f->n;
    ksend_full(f, m);
    assert_int_equal(rs.released, 1); /* inline: done when the send returns */
    /* The answer is a message to the control port: the run, the errno, and
     * the seqno of the data_return it answers. */
    assert_int_equal(f->n, before + 1);
    const struct krec *c = &f->recs[f->n - 1];
    assert_int_equal(c->id, MO_DATA_RETURN_COMPLETED);
    assert_int_equal(c->off, first * PS);
    assert_int_equal(c->len, n * PS);
    assert_int_equal(c->arg2, rs.seqno);
    assert_true(c->arg >= 0);
    return -c->arg;
}

/* A pageout's data_return (the frame goes back to the free list). */
static int
kreturn(struct fix *f, uint64_t first, uint64_t n, uint8_t gen)
{
    return kreturn_flags(f, first, n, gen, MO_F_DIRTY);
}

/* A clustered data_return: a head and n-1 chained single-page messages. */
static void
kreturn_cluster(struct fix *f, uint64_t first, uint64_t n, uint8_t gen, struct ret_state *rs)
{
    struct emm_msg *head = NULL, *prev = NULL;
    for (uint64_t i = 0; i < n; i++) {
        struct emm_msg *m = emm_msg_new(MO_DATA_RETURN, (first + i) * PS, PS);
        m->data = malloc(PS);
        page_fill(m->data, first + i, gen);
        m->flags = MO_F_DIRTY;
        m->release = ret_release;
        m->release_ctx = rs;
        if (prev != NULL)
            prev->chain = m;
        else
            head = m;
        prev = m;
    }
    ksend_full(f, head);
}

/* ---- tests -------------------------------------------------------------- */

static void
test_init_ready(void **state)
{
    struct fix *f = *state;
    assert_int_equal(f->n, 1);
    assert_int_equal(f->recs[0].id, MO_READY);
    assert_true(f->recs[0].flags & MO_F_MAY_CACHE);
    assert_int_equal(f->recs[0].arg, MO_COPY_DELAY);
    assert_int_equal(atomic_load(&pgr_std_stats(f->pg)->inits), 1);
}

static void
test_request_holes(void **state)
{
    struct fix *f = *state;
    ksend(f, MO_DATA_REQUEST, 4 * PS, 8 * PS);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->recs[1].id, MO_DATA_UNAVAILABLE);
    assert_int_equal(f->recs[1].off, 4 * PS);
    assert_int_equal(f->recs[1].len, 8 * PS);
}

static void
test_request_stored_and_mixed(void **state)
{
    struct fix *f = *state;
    uint8_t page[PS];
    uint64_t stored[] = {2, 3, 6};
    for (int i = 0; i < 3; i++) {
        page_fill(page, stored[i], 1);
        assert_int_equal(emm_backend_write(f->b, OBJ, stored[i], 1, page), 0);
    }
    /* Only stored pages: one supply with the bytes. */
    ksend(f, MO_DATA_REQUEST, 2 * PS, 2 * PS);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->recs[1].id, MO_DATA_SUPPLY);
    assert_int_equal(f->recs[1].off, 2 * PS);
    assert_int_equal(f->recs[1].len, 2 * PS);
    assert_int_equal(f->recs[1].access, VM_PROT_NONE);
    for (int i = 0; i < 2; i++) {
        page_fill(page, 2 + (uint64_t)i, 1);
        assert_memory_equal(f->recs[1].data + i * PS, page, PS);
    }
    /* A mix: one message per run, in order. */
    ksend(f, MO_DATA_REQUEST, 0, 8 * PS);
    assert_int_equal(f->n, 2 + 5);
    struct {
        uint32_t id;
        uint64_t first, n;
    } want[] = {
        {MO_DATA_UNAVAILABLE, 0, 2}, {MO_DATA_SUPPLY, 2, 2},      {MO_DATA_UNAVAILABLE, 4, 2},
        {MO_DATA_SUPPLY, 6, 1},      {MO_DATA_UNAVAILABLE, 7, 1},
    };
    for (int i = 0; i < 5; i++) {
        struct krec *r = &f->recs[2 + i];
        assert_int_equal(r->id, want[i].id);
        assert_int_equal(r->off, want[i].first * PS);
        assert_int_equal(r->len, want[i].n * PS);
        if (r->id == MO_DATA_SUPPLY) {
            for (uint64_t j = 0; j < want[i].n; j++) {
                page_fill(page, want[i].first + j, 1);
                assert_memory_equal(r->data + j * PS, page, PS);
            }
        }
    }
}

static void
test_data_return_stores(void **state)
{
    struct fix *f = *state;
    assert_int_equal(kreturn(f, 1, 3, 5), 0);
    uint8_t buf[4 * PS], present[4], page[PS];
    assert_int_equal(emm_backend_read(f->b, OBJ, 0, 4, buf, present), 0);
    assert_int_equal(present[0], 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(present[i], 1);
        page_fill(page, (uint64_t)i, 5);
        assert_memory_equal(buf + i * PS, page, PS);
    }
    assert_int_equal(f->n, 2); /* ready, then the data_return's completion */
    /* Returned then requested: the request sees the returned data (order). */
    assert_int_equal(kreturn(f, 2, 1, 6), 0);
    ksend(f, MO_DATA_REQUEST, 2 * PS, PS);
    assert_int_equal(f->recs[f->n - 1].id, MO_DATA_SUPPLY);
    page_fill(page, 2, 6);
    assert_memory_equal(f->recs[f->n - 1].data, page, PS);
    /* synchronize: completed with 0. */
    ksend(f, MO_SYNCHRONIZE, 0, 16 * PS);
    assert_int_equal(f->recs[f->n - 1].id, MO_SYNCHRONIZE_COMPLETED);
    assert_int_equal(f->recs[f->n - 1].arg, 0);
    assert_int_equal(f->recs[f->n - 1].off, 0);
    assert_int_equal(f->recs[f->n - 1].len, 16 * PS);
    /* What it stores is told through the protocol (data_query), as the
     * kernel asks: page 3 is, page 4 is not. */
    struct emm_msg *q = emm_msg_new(MO_DATA_QUERY, 3 * PS, 2 * PS);
    q->arg = 77;
    ksend_full(f, q);
    assert_int_equal(f->recs[f->n - 1].id, MO_QUERY_REPLY);
    assert_int_equal(f->recs[f->n - 1].off, 3 * PS);
    assert_int_equal(f->recs[f->n - 1].len, PS);
}

static void
test_clustered_return(void **state)
{
    struct fix *f = *state;
    assert_true(f->recs[0].flags & MO_F_CLUSTER_OK); /* the pager said it takes clusters */
    /* 300 pages: more than one 1 MiB backend write. */
    struct ret_state rs = {0, 99, 0};
    kreturn_cluster(f, 10, 300, 9, &rs);
    assert_int_equal(rs.released, 300); /* every page released, with the same status */
    assert_int_equal(rs.status, 0);
    /* One answer for the whole run, naming the head's seqno. */
    assert_int_equal(f->recs[f->n - 1].id, MO_DATA_RETURN_COMPLETED);
    assert_int_equal(f->recs[f->n - 1].off, 10 * PS);
    assert_int_equal(f->recs[f->n - 1].len, 300 * PS);
    assert_int_equal(f->recs[f->n - 1].arg, 0);
    assert_int_equal(f->recs[f->n - 1].arg2, rs.seqno);
    uint8_t *buf = malloc(300 * PS), present[256], page[PS];
    for (uint64_t base = 10; base < 310; base += 150) {
        assert_int_equal(emm_backend_read(f->b, OBJ, base, 150, buf, present), 0);
        for (uint64_t i = 0; i < 150; i++) {
            assert_int_equal(present[i], 1);
            page_fill(page, base + i, 9);
            assert_memory_equal(buf + i * PS, page, PS);
        }
    }
    free(buf);
    uint64_t stored = 0;
    assert_int_equal(emm_backend_stored_pages(f->b, OBJ, &stored), 0);
    assert_int_equal(stored, 300);
}

static void
test_discard(void **state)
{
    struct fix *f = *state;
    assert_int_equal(kreturn(f, 0, 8, 1), 0);
    ksend(f, MO_DISCARD, 2 * PS, 3 * PS);
    uint8_t buf[8 * PS], present[8];
    assert_int_equal(emm_backend_read(f->b, OBJ, 0, 8, buf, present), 0);
    uint8_t want[8] = {1, 1, 0, 0, 0, 1, 1, 1};
    assert_memory_equal(present, want, 8);
    ksend(f, MO_DISCARD, 6 * PS, UINT64_MAX);
    assert_int_equal(emm_backend_read(f->b, OBJ, 0, 8, buf, present), 0);
    uint8_t want2[8] = {1, 1, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(present, want2, 8);
    /* A request over the range now sees holes. */
    int before = f->n;
    ksend(f, MO_DATA_REQUEST, 2 * PS, 3 * PS);
    assert_int_equal(f->n, before + 1);
    assert_int_equal(f->recs[before].id, MO_DATA_UNAVAILABLE);
    assert_int_equal(atomic_load(&pgr_std_stats(f->pg)->discards), 2);
}

static void
test_data_unlock_granted(void **state)
{
    struct fix *f = *state;
    struct emm_msg *m = emm_msg_new(MO_DATA_UNLOCK, 3 * PS, PS);
    m->access = VM_PROT_WRITE;
    ksend_full(f, m);
    assert_int_equal(f->n, 2);
    struct krec *r = &f->recs[1];
    assert_int_equal(r->id, MO_LOCK_REQUEST);
    assert_int_equal(r->off, 3 * PS);
    assert_int_equal(r->len, PS);
    assert_int_equal(r->access, VM_PROT_NONE);
    assert_int_equal(r->arg, MO_RETURN_NONE);
    assert_false(r->flags & MO_F_FLUSH);
}

static void
test_lock_object(void **state)
{
    struct fix *f = *state;
    f->answer_locks = 1;
    assert_int_equal(pgr_std_lock_object(f->pg, OBJ, MO_RETURN_DIRTY, 1, VM_PROT_NO_CHANGE, 2000),
                     0);
    struct krec *r = &f->recs[f->n - 1];
    assert_int_equal(r->id, MO_LOCK_REQUEST);
    assert_int_equal(r->arg, MO_RETURN_DIRTY);
    assert_true(r->flags & MO_F_FLUSH);
    assert_int_equal(r->len, UINT64_MAX);
    /* Unanswered: times out. */
    f->answer_locks = 0;
    assert_int_equal(pgr_std_lock_object(f->pg, OBJ, MO_RETURN_NONE, 0, VM_PROT_WRITE, 50),
                     -ETIMEDOUT);
    assert_int_equal(pgr_std_lock_object(f->pg, OBJ + 1, MO_RETURN_NONE, 0, VM_PROT_NONE, 50),
                     -ENOENT);
    /* After terminate the object is no longer mapped. */
    kterminate(f);
    assert_int_equal(pgr_std_lock_object(f->pg, OBJ, MO_RETURN_NONE, 0, VM_PROT_NONE, 50), -ENOENT);
}

static void
test_terminate_drops_control(void **state)
{
    struct fix *f = *state;
    assert_int_equal(emm_port_refs(f->control), 2); /* ours + the pager's */
    kterminate(f);
    assert_int_equal(emm_port_refs(f->control), 1);
    assert_int_equal(emm_port_refs(f->name), 1);
    /* A new init (remap) gets ready again on the same memory object port. */
    kinit(f);
    assert_int_equal(f->recs[f->n - 1].id, MO_READY);
    f->terminated = 0;
}

static void
test_write_error_then_sync(void **state)
{
    struct fix *f = *state;
    FILE *t = fopen(f->trigger, "w");
    assert_non_null(t);
    fclose(t);
    /* A refused data_return is answered with its status; the kernel keeps the
     * page and fails the fsync itself. synchronize reports the store's sync. */
    int st = kreturn_flags(f, 4, 1, 9, MO_F_DIRTY | MO_F_KERNEL_COPY);
    assert_int_equal(st, -EIO);
    assert_int_equal(kreturn(f, 5, 1, 9), -EIO);
    ksend(f, MO_SYNCHRONIZE, 0, 8 * PS);
    assert_int_equal(f->recs[f->n - 1].id, MO_SYNCHRONIZE_COMPLETED);
    assert_int_equal(f->recs[f->n - 1].arg, 0);
    assert_int_equal(atomic_load(&pgr_std_stats(f->pg)->return_errors), 2);
    /* Read errors become data_error with the errno. */
    int before = f->n;
    ksend(f, MO_DATA_REQUEST, 0, 2 * PS);
    assert_int_equal(f->n, before + 1);
    assert_int_equal(f->recs[before].id, MO_DATA_ERROR);
    assert_int_equal(f->recs[before].arg, EIO);
    assert_int_equal(f->recs[before].off, 0);
    assert_int_equal(f->recs[before].len, 2 * PS);
    /* The backend recovers: the page returned again is stored. */
    assert_int_equal(unlink(f->trigger), 0);
    assert_int_equal(kreturn(f, 4, 1, 9), 0);
    ksend(f, MO_SYNCHRONIZE, 0, 8 * PS);
    assert_int_equal(f->recs[f->n - 1].arg, 0);
    ksend(f, MO_DATA_REQUEST, 4 * PS, PS);
    assert_int_equal(f->recs[f->n - 1].id, MO_DATA_SUPPLY);
    uint8_t page[PS];
    page_fill(page, 4, 9);
    assert_memory_equal(f->recs[f->n - 1].data, page, PS);
}

/* synchronize_completed carries the store's sync failure as a positive errno,
 * like data_error (one errno convention in the protocol). */
static void
test_sync_error_positive(void **state)
{
    struct fix *f = *state;
    FILE *t = fopen(f->trigger, "w");
    assert_non_null(t);
    fclose(t);
    ksend(f, MO_SYNCHRONIZE, 0, 8 * PS);
    assert_int_equal(f->recs[f->n - 1].id, MO_SYNCHRONIZE_COMPLETED);
    assert_int_equal(f->recs[f->n - 1].arg, EIO);
    assert_int_equal(unlink(f->trigger), 0);
    ksend(f, MO_SYNCHRONIZE, 0, 8 * PS);
    assert_int_equal(f->recs[f->n - 1].arg, 0);
}

/* Sends data_query(from, span, tag) and returns its reply (inline: arrived). */
static struct krec
kquery(struct fix *f, uint64_t from, uint64_t span, int32_t tag)
{
    struct emm_msg *m = emm_msg_new(MO_DATA_QUERY, from * PS, span == UINT64_MAX ? span : span * PS);
    m->arg = tag;
    int before = f->n;
    ksend_full(f, m);
    assert_int_equal(f->n, before + 1);
    assert_int_equal(f->recs[before].id, MO_QUERY_REPLY);
    assert_int_equal(f->recs[before].arg, tag);
    return f->recs[before];
}

/* data_query (emm extension): the first run of stored pages at or after the
 * query's offset, within its span; the answer follows earlier discards. */
static void
test_data_query(void **state)
{
    struct fix *f = *state;
    struct krec r = kquery(f, 0, UINT64_MAX, 1);
    assert_true(r.off == UINT64_MAX); /* nothing stored */
    assert_int_equal(kreturn(f, 3, 4, 1), 0); /* pages 3..6 */
    assert_int_equal(kreturn(f, 10, 1, 1), 0);
    r = kquery(f, 0, UINT64_MAX, 2);
    assert_int_equal(r.off, 3 * PS);
    assert_int_equal(r.len, 4 * PS);
    r = kquery(f, 5, UINT64_MAX, 3); /* inside a run: from there to its end */
    assert_int_equal(r.off, 5 * PS);
    assert_int_equal(r.len, 2 * PS);
    r = kquery(f, 7, UINT64_MAX, 4);
    assert_int_equal(r.off, 10 * PS);
    assert_int_equal(r.len, PS);
    r = kquery(f, 7, 3, 5); /* the run at 10 is past the span */
    assert_true(r.off == UINT64_MAX);
    r = kquery(f, 0, 5, 6); /* clipped at the span */
    assert_int_equal(r.off, 3 * PS);
    assert_int_equal(r.len, 2 * PS);
    ksend(f, MO_DISCARD, 3 * PS, 4 * PS);
    r = kquery(f, 0, UINT64_MAX, 7);
    assert_int_equal(r.off, 10 * PS);
    r = kquery(f, 11, UINT64_MAX, 8);
    assert_true(r.off == UINT64_MAX);
    /* How many it stores (st_blocks): page 10 only. */
    struct emm_msg *m = emm_msg_new(MO_DATA_QUERY, 0, UINT64_MAX);
    m->arg = 9;
    m->flags = MO_F_QUERY_COUNT;
    int before = f->n;
    ksend_full(f, m);
    assert_int_equal(f->recs[before].id, MO_QUERY_REPLY);
    assert_int_equal(f->recs[before].arg, 9);
    assert_int_equal(f->recs[before].len, PS);
    assert_int_equal(atomic_load(&pgr_std_stats(f->pg)->queries), 9);
}

/* The kernel asks about an object it has not mapped: data_query with a reply
 * right, on a port that never got init. The answer goes to the reply port. */
static void
test_query_unmapped_reply_port(void **state)
{
    struct fix *f = *state;
    uint8_t buf[3 * PS];
    memset(buf, 0x5a, sizeof(buf));
    assert_int_equal(emm_backend_write(f->b, OBJ + 1, 4, 3, buf), 0);
    struct emm_port *mo2, *qr;
    assert_int_equal(pgr_std_object_port(f->pg, OBJ + 1, &mo2), 0);
    assert_int_equal(emm_port_create("query-reply", control_handler, f, NULL, &qr), 0);
    struct emm_msg *m = emm_msg_new(MO_DATA_QUERY, 0, UINT64_MAX);
    m->arg = 41;
    m->flags = MO_F_QUERY_COUNT;
    m->reply = emm_port_make_send(qr);
    int before = f->n;
    assert_int_equal(emm_port_send(mo2, m), 0);
    assert_int_equal(f->n, before + 1); /* unfixed: "kernel gone, query_reply dropped" */
    assert_int_equal(f->recs[before].id, MO_QUERY_REPLY);
    assert_int_equal(f->recs[before].arg, 41);
    assert_int_equal(f->recs[before].flags, MO_F_QUERY_COUNT);
    assert_int_equal(f->recs[before].len, 3 * PS);
    /* A run query the same way. */
    m = emm_msg_new(MO_DATA_QUERY, 0, UINT64_MAX);
    m->arg = 42;
    m->reply = emm_port_make_send(qr);
    assert_int_equal(emm_port_send(mo2, m), 0);
    assert_int_equal(f->n, before + 2);
    assert_int_equal(f->recs[before + 1].arg, 42);
    assert_int_equal(f->recs[before + 1].off, 4 * PS);
    assert_int_equal(f->recs[before + 1].len, 3 * PS);
    emm_port_destroy(qr);
    emm_port_unref(mo2);
}

/* emmctl info asks the pager for its backend's lines through the protocol
 * (data_query with MO_F_QUERY_INFO), never the backend: one page of text,
 * NUL-terminated, to the query's reply port. */
static void
test_query_info(void **state)
{
    struct fix *f = *state;
    struct emm_port *mo0, *qr;
    assert_int_equal(pgr_std_object_port(f->pg, 0, &mo0), 0);
    assert_int_equal(emm_port_create("query-reply", control_handler, f, NULL, &qr), 0);
    struct emm_msg *m = emm_msg_new(MO_DATA_QUERY, 0, UINT64_MAX);
    m->arg = 43;
    m->flags = MO_F_QUERY_INFO;
    m->reply = emm_port_make_send(qr);
    int before = f->n;
    assert_int_equal(emm_port_send(mo0, m), 0);
    assert_int_equal(f->n, before + 1);
    struct krec *r = &f->recs[before];
    assert_int_equal(r->id, MO_QUERY_REPLY);
    assert_int_equal(r->arg, 43);
    assert_int_equal(r->flags, MO_F_QUERY_INFO);
    assert_int_equal(r->off, 0);
    assert_int_equal(r->len, PS);
    assert_non_null(r->data);
    char want[PS];
    assert_int_equal(emm_backend_info(f->b, want, sizeof(want)), 0);
    assert_true(want[0] != '\0'); /* (the memory backend has lines to say) */
    assert_string_equal((const char *)r->data, want);
    emm_port_destroy(qr);
    emm_port_unref(mo0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_ready, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_query_info, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_clustered_return, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_request_holes, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_request_stored_and_mixed, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_data_return_stores, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_discard, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_data_query, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_query_unmapped_reply_port, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_data_unlock_granted, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_lock_object, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_terminate_drops_control, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_init_ready, setup_error, teardown),
        cmocka_unit_test_setup_teardown(test_request_stored_and_mixed, setup_error, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_then_sync, setup_error, teardown),
        cmocka_unit_test_setup_teardown(test_sync_error_positive, setup_sync_error, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
