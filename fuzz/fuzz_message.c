/*
 * fuzz_message.c - the envelope decoder is the first code that untrusted
 * broker bytes reach. Parse, and when that succeeds, re-encode: the
 * encoder walks every value the parser accepted. When it fails, check
 * what the worker stores for the refused task (its exception and id).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/message.h"
#include "proto/repr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cel_message m;
    char err[256];
    /* A small size limit keeps the limit path reachable for the fuzzer. */
    struct cel_message_limits lim = {.max_bytes = 1u << 20, .max_depth = 0};

    struct cel_message_fault fault;
    if (cel__message_parse_fault((const char *)data, size, &lim, &m, &fault, err, sizeof err) ==
        0) {
        char *again = cel__message_encode(&m);
        free(again);
        char *repr = cel__json_pyrepr(m.args, 64);
        free(repr);
    } else {
        /* A refusal always names its exception and a reason; an id it
         * recovered is one a store key can be built from. */
        if (!fault.exc_type || !fault.exc_module || !err[0] ||
            (fault.task_id && (!fault.task_id[0] || strlen(fault.task_id) >= size)))
            abort();
        cel__message_fault_release(&fault);
    }
    cel__message_release(&m);
    return 0;
}
