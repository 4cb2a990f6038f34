/*
 * test_memsrv_coherence.c - emm-memserver's per-page coherence engine
 * (services/emm-memserver/coherence.c) against its own interface, with the
 * ops recorded as a trace: readers share a page; a writer flushes every
 * other holder and waits for all their acks; a reader downgrades a writer
 * (it keeps a read-only copy) instead of flushing it; an unlock from a
 * reader is a grant, not a supply; waiters are served in arrival order;
 * only the writer's returns may be stored; a gone host's access, requests
 * and owed acks vanish; a drop (truncate, punch) takes pages from every
 * holder, their later returns are stale, and waiters are served after it.
 * Single-threaded; no locking.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "coherence.h"

static char trace[4096];

static void
rec(const char *fmt, ...)
{
    size_t n = strlen(trace);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(trace + n, sizeof(trace) - n, fmt, ap);
    va_end(ap);
}

/* S<host><r|w>@page: supply; G<host>@page: grant; F/D<host>@page: flush /
 * downgrade revoke. */
static void
op_supply(void *ctx, unsigned host, uint64_t page, int write)
{
    (void)ctx;
    rec("S%u%c@%llu ", host, write ? 'w' : 'r', (unsigned long long)page);
}

static void
op_grant(void *ctx, unsigned host, uint64_t page)
{
    (void)ctx;
    rec("G%u@%llu ", host, (unsigned long long)page);
}

static void
op_revoke(void *ctx, unsigned host, uint64_t page, int flush)
{
    (void)ctx;
    rec("%c%u@%llu ", flush ? 'F' : 'D', host, (unsigned long long)page);
}

/* X<host>@page: a drop (truncate, punch). */
static void
op_drop(void *ctx, unsigned host, uint64_t page)
{
    (void)ctx;
    rec("X%u@%llu ", host, (unsigned long long)page);
}

static const struct msrv_coh_ops ops = {op_supply, op_grant, op_revoke, op_drop};

static struct msrv_coh *
mk(void)
{
    struct msrv_coh *c;
    assert_int_equal(msrv_coh_create(&ops, NULL, &c), 0);
    trace[0] = '\0';
    return c;
}

/* The trace since the last call, then cleared. */
static const char *
take(void)
{
    static char out[4096];
    snprintf(out, sizeof(out), "%s", trace);
    trace[0] = '\0';
    return out;
}

static void
readers_share(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    assert_int_equal(msrv_coh_request(c, 0, 5, 0, 0), 0);
    assert_int_equal(msrv_coh_request(c, 1, 5, 0, 0), 0);
    assert_string_equal(take(), "S0r@5 S1r@5 ");
    struct msrv_coh_page_info pi;
    msrv_coh_page(c, 5, &pi);
    assert_int_equal(pi.readers, 3);
    assert_int_equal(pi.writer, MSRV_NO_HOST);
    assert_false(msrv_coh_may_store(c, 0, 5));
    msrv_coh_destroy(c);
}

static void
writer_flushes_all_and_waits_for_every_ack(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 1, 0, 0);
    msrv_coh_request(c, 1, 1, 0, 0);
    take();
    msrv_coh_request(c, 2, 1, 1, 0);
    assert_string_equal(take(), "F0@1 F1@1 ");
    struct msrv_coh_page_info pi;
    msrv_coh_page(c, 1, &pi);
    assert_int_equal(pi.acks_pending, 3);
    assert_int_equal(msrv_coh_ack(c, 0, 1), 0);
    assert_string_equal(take(), ""); /* host 1 still holds a copy */
    assert_int_equal(msrv_coh_ack(c, 1, 1), 0);
    assert_string_equal(take(), "S2w@1 ");
    msrv_coh_page(c, 1, &pi);
    assert_int_equal(pi.readers, 0);
    assert_int_equal(pi.writer, 2);
    assert_true(msrv_coh_may_store(c, 2, 1));
    assert_false(msrv_coh_may_store(c, 0, 1));
    msrv_coh_destroy(c);
}

static void
reader_downgrades_writer(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 7, 1, 0);
    assert_string_equal(take(), "S0w@7 ");
    msrv_coh_request(c, 1, 7, 0, 0);
    assert_string_equal(take(), "D0@7 "); /* not a flush: host 0 keeps a read copy */
    /* Until its ack, host 0's returned data is the current copy. */
    assert_true(msrv_coh_may_store(c, 0, 7));
    msrv_coh_ack(c, 0, 7);
    assert_string_equal(take(), "S1r@7 ");
    struct msrv_coh_page_info pi;
    msrv_coh_page(c, 7, &pi);
    assert_int_equal(pi.readers, 3); /* both read */
    assert_int_equal(pi.writer, MSRV_NO_HOST);
    assert_false(msrv_coh_may_store(c, 0, 7));
    msrv_coh_destroy(c);
}

static void
unlock_of_a_reader_is_a_grant(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 2, 0, 0);
    msrv_coh_request(c, 1, 2, 0, 0);
    take();
    msrv_coh_request(c, 0, 2, 1, 1); /* data_unlock for write */
    assert_string_equal(take(), "F1@2 ");
    msrv_coh_ack(c, 1, 2);
    assert_string_equal(take(), "G0@2 ");
    /* The writer asks again (evicted its page after returning it): data, no revoke. */
    msrv_coh_request(c, 0, 2, 0, 0);
    assert_string_equal(take(), "S0w@2 ");
    msrv_coh_destroy(c);
}

static void
unlock_after_a_flush_is_dropped(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 3, 0, 0);
    msrv_coh_request(c, 1, 3, 0, 0);
    take();
    msrv_coh_request(c, 1, 3, 1, 0); /* host 1 writes: host 0 is flushed */
    msrv_coh_request(c, 0, 3, 1, 1); /* host 0's unlock, sent before its flush landed */
    assert_string_equal(take(), "F0@3 ");
    msrv_coh_ack(c, 0, 3);
    /* host 1 gets it; host 0 holds nothing, so no grant: its kernel asks again. */
    assert_string_equal(take(), "S1w@3 ");
    struct msrv_coh_stats st;
    msrv_coh_stats(c, &st);
    assert_int_equal(st.dropped, 1);
    msrv_coh_destroy(c);
}

static void
waiters_are_served_in_order(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 9, 1, 0);
    take();
    msrv_coh_request(c, 1, 9, 1, 0); /* waits: host 0 is flushed */
    msrv_coh_request(c, 2, 9, 0, 0); /* waits behind host 1 */
    msrv_coh_request(c, 3, 9, 1, 0); /* and host 3 behind host 2 */
    assert_string_equal(take(), "F0@9 ");
    struct msrv_coh_page_info pi;
    msrv_coh_page(c, 9, &pi);
    assert_int_equal(pi.waiting, 3);
    msrv_coh_ack(c, 0, 9);
    /* host 1 writes; then host 2's read downgrades host 1 */
    assert_string_equal(take(), "S1w@9 D1@9 ");
    msrv_coh_ack(c, 1, 9);
    /* host 2 reads; then host 3's write flushes both readers */
    assert_string_equal(take(), "S2r@9 F1@9 F2@9 ");
    msrv_coh_ack(c, 2, 9);
    msrv_coh_ack(c, 1, 9);
    assert_string_equal(take(), "S3w@9 ");
    msrv_coh_page(c, 9, &pi);
    assert_int_equal(pi.waiting, 0);
    assert_int_equal(pi.writer, 3);
    msrv_coh_destroy(c);
}

static void
pages_are_independent(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 1, 1, 0);
    msrv_coh_request(c, 1, 2, 1, 0);
    msrv_coh_request(c, 1, 1, 0, 0);
    assert_string_equal(take(), "S0w@1 S1w@2 D0@1 ");
    msrv_coh_request(c, 0, 2, 0, 0); /* page 2 is not held up by page 1 */
    assert_string_equal(take(), "D1@2 ");
    msrv_coh_destroy(c);
}

static void
stray_ack_is_refused(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    assert_int_equal(msrv_coh_ack(c, 0, 4), -ENOENT);
    msrv_coh_request(c, 0, 4, 0, 0);
    assert_int_equal(msrv_coh_ack(c, 1, 4), -ENOENT);
    assert_int_equal(msrv_coh_request(c, MSRV_MAX_HOSTS, 4, 0, 0), -EINVAL);
    struct msrv_coh_stats st;
    msrv_coh_stats(c, &st);
    assert_int_equal(st.stray_acks, 2);
    msrv_coh_destroy(c);
}

static void
gone_host_loses_access_and_owes_nothing(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 6, 1, 0);  /* host 0 writes */
    msrv_coh_request(c, 1, 6, 0, 0);  /* host 1 reads: host 0 must downgrade */
    msrv_coh_request(c, 0, 8, 0, 0);  /* host 0 also reads page 8 */
    take();
    msrv_coh_host_gone(c, 0);         /* dies before its ack */
    assert_string_equal(take(), "S1r@6 ");
    struct msrv_coh_page_info pi;
    msrv_coh_page(c, 6, &pi);
    assert_int_equal(pi.readers, 2);
    assert_int_equal(pi.writer, MSRV_NO_HOST);
    assert_false(msrv_coh_may_store(c, 0, 6));
    msrv_coh_page(c, 8, &pi);          /* forgotten: nobody holds it */
    assert_int_equal(pi.readers, 0);
    struct msrv_coh_stats st;
    msrv_coh_stats(c, &st);
    assert_int_equal(st.pages, 1);
    msrv_coh_destroy(c);
}

static void
gone_host_request_waiting_for_acks_is_not_served(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 1, 3, 0, 0);
    msrv_coh_request(c, 0, 3, 1, 0); /* host 0 wants write: host 1 flushed */
    msrv_coh_request(c, 0, 4, 0, 0);
    take();
    msrv_coh_host_gone(c, 0);
    assert_string_equal(take(), "");
    msrv_coh_ack(c, 1, 3);
    assert_string_equal(take(), ""); /* no supply to a dead host, no writer set */
    struct msrv_coh_page_info pi;
    msrv_coh_page(c, 3, &pi);
    assert_int_equal(pi.writer, MSRV_NO_HOST);
    /* a new host in the same slot starts afresh */
    msrv_coh_request(c, 0, 3, 0, 0);
    assert_string_equal(take(), "S0r@3 ");
    msrv_coh_destroy(c);
}

static void
many_pages_grow_the_table(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    for (uint64_t p = 0; p < 10000; p++)
        assert_int_equal(msrv_coh_request(c, (unsigned)(p % 3), p * 7919, 0, 0), 0);
    struct msrv_coh_stats st;
    msrv_coh_stats(c, &st);
    assert_int_equal(st.pages, 10000);
    assert_int_equal(st.supplies, 10000);
    for (uint64_t p = 0; p < 10000; p++) {
        struct msrv_coh_page_info pi;
        msrv_coh_page(c, p * 7919, &pi);
        assert_int_equal(pi.readers, UINT64_C(1) << (p % 3));
    }
    msrv_coh_destroy(c);
}

/* Truncate/punch: every holder of a page in the range is told to drop it,
 * loses it (a later return is stale), pages outside keep their state, and
 * counts follow. */
static void
drop_takes_pages_from_every_holder(void **state)
{
    (void)state;
    struct msrv_coh *c = mk();
    msrv_coh_request(c, 0, 3, 0, 0);
    msrv_coh_request(c, 1, 3, 0, 0);
    msrv_coh_request(c, 2, 4, 1, 0);
    msrv_coh_request(c, 2, 9, 1, 0);
    take();
    struct msrv_coh_counts n;
    msrv_coh_counts(c, 2, &n);
    assert_int_equal(n.shared, 1);
    assert_int_equal(n.written, 2);
    assert_int_equal(n.host_write, 2);
    msrv_coh_drop(c, 3, 5);
    const char *t = take(); /* in table order */
    assert_int_equal(strlen(t), strlen("X0@3 X1@3 X2@4 "));
    assert_non_null(strstr(t, "X0@3 X1@3 "));
    assert_non_null(strstr(t, "X2@4 "));
    assert_false(msrv_coh_may_store(c, 2, 4)); /* its return of page 4 is stale now */
    assert_true(msrv_coh_may_store(c, 2, 9));  /* outside the range: kept */
    msrv_coh_counts(c, 0, &n);
    assert_int_equal(n.shared, 0);
    assert_int_equal(n.written, 1);
    assert_int_equal(n.host_read, 0);
    /* The next writer of page 4 is served from the store: nobody to flush. */
    msrv_coh_request(c, 1, 4, 1, 0);
    assert_string_equal(take(), "S1w@4 ");
    msrv_coh_destroy(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readers_share),
        cmocka_unit_test(writer_flushes_all_and_waits_for_every_ack),
        cmocka_unit_test(reader_downgrades_writer),
        cmocka_unit_test(unlock_of_a_reader_is_a_grant),
        cmocka_unit_test(unlock_after_a_flush_is_dropped),
        cmocka_unit_test(waiters_are_served_in_order),
        cmocka_unit_test(pages_are_independent),
        cmocka_unit_test(stray_ack_is_refused),
        cmocka_unit_test(gone_host_loses_access_and_owes_nothing),
        cmocka_unit_test(gone_host_request_waiting_for_acks_is_not_served),
        cmocka_unit_test(many_pages_grow_the_table),
        cmocka_unit_test(drop_takes_pages_from_every_holder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
