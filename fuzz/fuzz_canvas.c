/*
 * fuzz_canvas.c - a workflow signature comes from a client, or from the
 * embed of a message off the broker: plan whatever JSON parses, and hand
 * on what a task that ran with the plan's first message would send.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "proto/canvas.h"
#include "proto/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *sig = cel__json_parse((const char *)data, size, 32, err, sizeof err);
    if (!sig)
        return 0;
    struct cel_canvas_plan p;
    json_t *prepend = json_integer(1);
    if (cel__canvas_plan(sig, prepend, NULL, &p, err, sizeof err) == 0) {
        /* Every planned message is one a worker can read back. */
        for (size_t i = 0; i < p.nmsgs; i++) {
            struct cel_message m;
            if (cel__message_parse(p.msgs[i].body, p.msgs[i].len, NULL, &m, err, sizeof err))
                abort();
            struct cel_canvas_plan f;
            if (cel__canvas_followups(&m, i % 2 ? prepend : NULL, &f, err, sizeof err) == 0)
                cel__canvas_plan_release(&f);
            cel__message_release(&m);
        }
        cel__canvas_plan_release(&p);
    } else if (!err[0] || p.nmsgs) {
        abort();
    }
    json_decref(prepend);
    json_decref(sig);
    return 0;
}
