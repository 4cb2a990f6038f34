/*
 * fuzz_msg_wire.c - feeds arbitrary bytes to the message header decoder
 * (emm_wire_decode, emm/ipc/msg_wire.h), as a stream transport would from a
 * peer. A header it accepts must name a known id and a payload of 0 or
 * `length` bytes within one request, and must encode back to exactly the
 * bytes it came from; a refusal must name the field. Anything else aborts.
 *
 * Built with libFuzzer when the compiler has -fsanitize=fuzzer; otherwise main()
 * below replays the files named on the command line (the seed corpus holds
 * the golden header of every id, tests/unit/golden/msg_header.txt).
 *
 * Locking: single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, exactly size bytes long: ASan sees any read past it. */
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    struct emm_msg_hdr h;
    uint32_t payload = 0;
    const char *why = NULL;
    int r = emm_wire_decode(buf, size, &h, &payload, &why);
    if (r == 0) {
        unsigned char again[EMM_WIRE_HDR_SIZE];
        if (why != NULL || !emm_msg_id_known(h.id) ||
            (payload != 0 && (payload != h.length || payload > EMM_MAX_REQUEST_BYTES)) ||
            emm_wire_encode(&h, payload, again) != 0 ||
            memcmp(again, buf, EMM_WIRE_HDR_SIZE) != 0)
            abort();
    } else if ((r != -EAGAIN && r != -EBADMSG && r != -EPROTONOSUPPORT) || why == NULL) {
        abort();
    }
    free(buf);
    return 0;
}

#ifndef EMM_LIBFUZZER

#include "fuzz_replay.h"

int
main(int argc, char **argv)
{
    return fuzz_replay_main("fuzz_msg_wire", argc, argv, NULL);
}

#endif
