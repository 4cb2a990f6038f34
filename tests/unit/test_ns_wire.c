/*
 * test_ns_wire.c - the data of the memory server's namespace messages
 * (emm/ipc/ns_wire.c): records and names round-trip through
 * whole pages; a list ends at the zeroed tail; a peer's bad lengths, bad
 * names ('/', NUL, "", ".", ".."), bad types and overlong names are refused,
 * never read past the buffer; a full buffer refuses a record whole.
 * Single-threaded; no locking.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "byteorder.h"
#include "ns_wire.h"

static struct emm_ns_rec
sample(uint64_t id, const char *name)
{
    struct emm_ns_rec r = {.id = id, .size = 5000 + id, .parent = 7, .atime_ns = -1,
                                .mtime_ns = 123456789, .ctime_ns = 42, .mode = 0640,
                                .uid = 1000, .gid = 100, .type = NS_FILE};
    strcpy(r.name, name);
    return r;
}

static void
records_round_trip(void **state)
{
    (void)state;
    size_t cap, pos = 0;
    unsigned char *b = ns_buf(100, &cap);
    assert_non_null(b);
    assert_int_equal(cap, NS_PAGE);
    struct emm_ns_rec a = sample(1, "a"), d = sample(2, "a dir with spaces");
    d.type = NS_DIR;
    assert_int_equal(ns_rec_put(b, cap, &pos, &a), 0);
    assert_int_equal(ns_rec_put(b, cap, &pos, &d), 0);
    assert_int_equal(pos, ns_rec_size(&a) + ns_rec_size(&d));
    struct emm_ns_rec r;
    size_t rp = 0;
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), 1);
    assert_memory_equal(&r, &a, sizeof(r));
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), 1);
    assert_string_equal(r.name, "a dir with spaces");
    assert_int_equal(r.type, NS_DIR);
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), 0); /* the zeroed tail ends it */
    free(b);
}

static void
bad_records_are_refused(void **state)
{
    (void)state;
    size_t cap, pos = 0;
    unsigned char *b = ns_buf(0, &cap);
    struct emm_ns_rec a = sample(3, "ok"), r;
    assert_int_equal(ns_rec_put(b, cap, &pos, &a), 0);
    size_t rp = 0;
    emm_put_le32(b + 64, 4000); /* a name past the buffer */
    assert_int_equal(ns_rec_get(b, NS_REC_FIXED + 8, &rp, &r), -EBADMSG);
    emm_put_le32(b + 64, 300); /* longer than a name may be */
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), -EBADMSG);
    emm_put_le32(b + 64, 2);
    memcpy(b + NS_REC_FIXED, "a/", 2);
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), -EBADMSG);
    memcpy(b + NS_REC_FIXED, "..", 2);
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), -EBADMSG);
    memcpy(b + NS_REC_FIXED, "a\0", 2);
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), -EBADMSG);
    memcpy(b + NS_REC_FIXED, "ok", 2);
    emm_put_le32(b + 60, 7); /* neither file nor directory */
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), -EBADMSG);
    emm_put_le32(b + 60, NS_FILE);
    emm_put_le32(b + 64, 0); /* a nameless entry that is not the root */
    assert_int_equal(ns_rec_get(b, cap, &rp, &r), -EBADMSG);
    assert_int_equal(rp, 0); /* nothing consumed by a refusal */
    assert_int_equal(ns_rec_get(b, 10, &rp, &r), 0); /* too short to hold one: the end */
    free(b);
}

static void
names_round_trip_and_refuse(void **state)
{
    (void)state;
    unsigned char b[64];
    size_t pos = 0, rp = 0;
    char n[NS_NAME_MAX + 1];
    memset(b, 0, sizeof(b));
    assert_int_equal(ns_name_put(b, sizeof(b), &pos, "old"), 0);
    assert_int_equal(ns_name_put(b, sizeof(b), &pos, "new name"), 0);
    assert_int_equal(ns_name_get(b, sizeof(b), &rp, n), 0);
    assert_string_equal(n, "old");
    assert_int_equal(ns_name_get(b, sizeof(b), &rp, n), 0);
    assert_string_equal(n, "new name");
    assert_int_equal(ns_name_get(b, sizeof(b), &rp, n), -EBADMSG); /* "" */
    char big[NS_NAME_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pos = 0;
    assert_int_equal(ns_name_put(b, sizeof(b), &pos, big), -ENAMETOOLONG);
    big[40] = '\0';
    assert_int_equal(ns_name_put(b, 40, &pos, big), -ENOSPC);
    emm_put_le32(b, 1000); /* a length past the buffer */
    rp = 0;
    assert_int_equal(ns_name_get(b, sizeof(b), &rp, n), -EBADMSG);
}

static void
full_buffer_refuses_whole(void **state)
{
    (void)state;
    size_t cap, pos = 0;
    unsigned char *b = ns_buf(1, &cap);
    struct emm_ns_rec a = sample(9, "0123456789012345678901234567890123456789");
    int n = 0;
    while (ns_rec_put(b, cap, &pos, &a) == 0)
        n++;
    assert_int_equal(n, (int)(cap / ns_rec_size(&a)));
    assert_true(pos <= cap);
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_round_trip),
        cmocka_unit_test(bad_records_are_refused),
        cmocka_unit_test(names_round_trip_and_refuse),
        cmocka_unit_test(full_buffer_refuses_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
