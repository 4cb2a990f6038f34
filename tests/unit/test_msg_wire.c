/*
 * test_msg_wire.c - the message header codec (emm/ipc/msg_wire.c) against
 * golden bytes checked into the tree (golden/msg_header.txt): every message id
 * encodes to exactly its line and decodes back to the same header; every known
 * id has a line; bad magic, version, size, id and payload are refused with the
 * field named. Single-threaded; no locking.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"
#include "msg_wire.h"

#define GOLDEN EMM_TEST_DATA "/golden/msg_header.txt"
#define MAXLINES 128

struct golden {
    char name[64];
    uint32_t id;
    unsigned char bytes[EMM_WIRE_HDR_SIZE];
};

static struct golden lines[MAXLINES];
static int nlines;

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int
load_golden(void **state)
{
    (void)state;
    FILE *f = fopen(GOLDEN, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open\n", GOLDEN);
        return -1;
    }
    char buf[512], hex[256];
    int lineno = 0;
    nlines = 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        lineno++;
        if (buf[0] == '#' || buf[0] == '\n')
            continue;
        struct golden *g = &lines[nlines];
        if (nlines == MAXLINES ||
            sscanf(buf, "%63s %u %255s", g->name, &g->id, hex) != 3 ||
            strlen(hex) != 2 * EMM_WIRE_HDR_SIZE) {
            fprintf(stderr, "%s:%d: not `name id hex(72 bytes)`\n", GOLDEN, lineno);
            fclose(f);
            return -1;
        }
        for (unsigned i = 0; i < EMM_WIRE_HDR_SIZE; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "%s:%d: bad hex\n", GOLDEN, lineno);
                fclose(f);
                return -1;
            }
            g->bytes[i] = (unsigned char)(hi << 4 | lo);
        }
        nlines++;
    }
    fclose(f);
    return 0;
}

/* The header the golden file's comment describes, for id. */
static struct emm_msg_hdr
sample(uint32_t id, uint32_t *payload)
{
    struct emm_msg_hdr h;
    memset(&h, 0, sizeof(h));
    h.id = id;
    h.flags = 0x21 + id;
    h.seqno = UINT64_C(0x0102030405060700) + id;
    h.offset = UINT64_C(0xa000000000000000) + (uint64_t)id * 4096;
    h.length = 8192;
    h.arg2 = UINT64_C(0xfedcba9876543210);
    h.access = VM_PROT_READ | VM_PROT_WRITE;
    h.arg = -5 - (int32_t)id;
    h.control = 0x01000001u + id;
    h.name = 0x02000002u;
    h.reply = 0x03000003u;
    *payload = (id == MO_DATA_RETURN || id == MO_DATA_SUPPLY) ? 8192 : 0;
    return h;
}

static void
assert_hdr_equal(const struct emm_msg_hdr *a, const struct emm_msg_hdr *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->seqno, b->seqno);
    assert_int_equal(a->offset, b->offset);
    assert_int_equal(a->length, b->length);
    assert_int_equal(a->arg2, b->arg2);
    assert_int_equal(a->access, b->access);
    assert_int_equal(a->arg, b->arg);
    assert_int_equal(a->control, b->control);
    assert_int_equal(a->name, b->name);
    assert_int_equal(a->reply, b->reply);
}

/* Each golden line: the encoder writes exactly its bytes, the decoder reads
 * them back to the header they came from. */
static void
test_golden_encode_decode(void **state)
{
    (void)state;
    assert_true(nlines > 0);
    for (int i = 0; i < nlines; i++) {
        const struct golden *g = &lines[i];
        assert_true(emm_msg_id_known(g->id));
        assert_string_equal(g->name, emm_msg_name(g->id));
        uint32_t payload;
        struct emm_msg_hdr h = sample(g->id, &payload);
        unsigned char buf[EMM_WIRE_HDR_SIZE];
        assert_int_equal(emm_wire_encode(&h, payload, buf), 0);
        if (memcmp(buf, g->bytes, sizeof(buf)) != 0) {
            for (unsigned j = 0; j < sizeof(buf); j++)
                if (buf[j] != g->bytes[j])
                    fail_msg("%s: byte %u is %02x, golden says %02x", g->name, j, buf[j],
                             g->bytes[j]);
        }
        struct emm_msg_hdr d;
        uint32_t dpayload = 1;
        const char *why = "unset";
        assert_int_equal(emm_wire_decode(g->bytes, sizeof(g->bytes), &d, &dpayload, &why), 0);
        assert_null(why);
        assert_hdr_equal(&d, &h);
        assert_int_equal(dpayload, payload);
    }
}

/* Every id the protocol knows has a golden line (a new message must get one). */
static void
test_every_id_has_golden(void **state)
{
    (void)state;
    int known = 0;
    for (uint32_t id = 0; id < 256; id++) {
        if (!emm_msg_id_known(id))
            continue;
        known++;
        int found = 0;
        for (int i = 0; i < nlines; i++)
            found += lines[i].id == id;
        if (found != 1)
            fail_msg("message id %u (%s) has %d lines in %s, wants 1", id, emm_msg_name(id),
                     found, GOLDEN);
    }
    assert_int_equal(known, nlines);
}

/* The header struct and the wire agree on which fields exist: a field added to
 * one and not the other changes the size. */
static void
test_header_fields(void **state)
{
    (void)state;
    /* 4 x u32 ... : id flags | seqno offset length arg2 | access arg control name reply */
    assert_int_equal(sizeof(struct emm_msg_hdr), 2 * 4 + 4 * 8 + 5 * 4 + 4 /* padding */);
    assert_int_equal(EMM_WIRE_HDR_SIZE, 8 /* magic version size */ + 2 * 4 + 4 * 8 + 5 * 4 + 4);
    struct emm_msg m;
    memset(&m, 0, sizeof(m));
    m.offset = 42;
    assert_int_equal(m.hdr.offset, 42); /* one storage, two spellings */
}

static void
decode_refused(const unsigned char *buf, size_t len, int err, const char *field)
{
    struct emm_msg_hdr h;
    uint32_t payload = 0;
    const char *why = NULL;
    assert_int_equal(emm_wire_decode(buf, len, &h, &payload, &why), err);
    assert_non_null(why);
    assert_string_equal(why, field);
}

static void
test_decode_refuses(void **state)
{
    (void)state;
    unsigned char good[EMM_WIRE_HDR_SIZE], b[EMM_WIRE_HDR_SIZE];
    uint32_t payload;
    struct emm_msg_hdr h = sample(MO_DATA_SUPPLY, &payload);
    assert_int_equal(emm_wire_encode(&h, payload, good), 0);

    decode_refused(good, EMM_WIRE_HDR_SIZE - 1, -EAGAIN, "size");
    memcpy(b, good, sizeof(b));
    b[0] ^= 1;
    decode_refused(b, sizeof(b), -EBADMSG, "magic");
    memcpy(b, good, sizeof(b));
    b[4] = 2; /* version 2 */
    decode_refused(b, sizeof(b), -EPROTONOSUPPORT, "version");
    memcpy(b, good, sizeof(b));
    b[6] = 80; /* a header of 80 bytes */
    decode_refused(b, sizeof(b), -EBADMSG, "size");
    memcpy(b, good, sizeof(b));
    b[8] = 200; /* id 200 */
    decode_refused(b, sizeof(b), -EBADMSG, "id");
    memcpy(b, good, sizeof(b));
    b[8] = 0; /* id 0 */
    decode_refused(b, sizeof(b), -EBADMSG, "id");
    memcpy(b, good, sizeof(b));
    b[68] = 1; /* payload 8193, length 8192 */
    decode_refused(b, sizeof(b), -EBADMSG, "payload");

    /* A payload over the limit, even when it matches length. */
    h.length = (uint64_t)EMM_MAX_REQUEST_BYTES + 4096;
    assert_int_equal(emm_wire_encode(&h, (uint32_t)h.length, b), -EINVAL);
    assert_int_equal(emm_wire_encode(&h, 0, b), 0);
    b[68] = 0x00, b[69] = 0x10, b[70] = 0x10, b[71] = 0x00; /* 0x101000 */
    decode_refused(b, sizeof(b), -EBADMSG, "payload");
    /* A length the payload does not match: the encoder refuses too. */
    h.length = 8192;
    assert_int_equal(emm_wire_encode(&h, 4096, b), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_encode_decode),
        cmocka_unit_test(test_every_id_has_golden),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_decode_refuses),
    };
    return cmocka_run_group_tests(tests, load_golden, NULL);
}
