/*
 * fuzz_message.c - the envelope decoder is the first code that untrusted
 * broker bytes reach. Parse, and when that succeeds, re-encode: the
 * encoder walks every value the parser accepted.
 */
#include <stdint.h>
#include <stdlib.h>

#include "proto/message.h"
#include "proto/repr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cel_message m;
    char err[256];
    /* A small size limit keeps the limit path reachable for the fuzzer. */
    struct cel_message_limits lim = {.max_bytes = 1u << 20, .max_depth = 0};

    if (cel__message_parse((const char *)data, size, &lim, &m, err, sizeof err) == 0) {
        char *again = cel__message_encode(&m);
        free(again);
        char *repr = cel__json_pyrepr(m.args, 64);
        free(repr);
    }
    cel__message_release(&m);
    return 0;
}
