/*
 * fuzz_control.c - a broadcast control request comes off the celery.pidbox
 * fan-out, which anyone on the broker can publish to: read whatever bytes
 * arrive as a request and as a reply.
 *
 * Properties checked for every input: a request read as addressed to us
 * has a method and an object of arguments, a ticket only with a mailbox to
 * answer in, and is written back by our own envelope writer into a request
 * that reads the same; a reply that reads has a node and a value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "proto/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct cel_control_request *r)
{
    const char *dest[] = {"w@fuzz"};
    char *env;
    size_t len;
    int rc = cel__control_request_envelope(r->method, r->arguments, dest, 1, r->ticket, r->reply_to,
                                           0, r->clock, &env, &len);
    if (rc == CEL_EINVAL)
        return; /* a method name or argument that is not UTF-8 cannot be sent */
    if (rc != CEL_OK)
        abort();
    struct cel_control_request back;
    if (cel__control_parse_request(env, len, "w@fuzz", &back) != CEL_OK)
        abort();
    if (strcmp(back.method, r->method) != 0 || !json_equal(back.arguments, r->arguments) ||
        (!back.ticket != !r->ticket) || (r->ticket && strcmp(back.ticket, r->ticket) != 0) ||
        back.clock != r->clock)
        abort();
    cel__control_request_release(&back);
    free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *env = (const char *)data;
    struct cel_control_request r;
    int rc = cel__control_parse_request(env, size, "w@fuzz", &r);
    if (rc == CEL_OK) {
        if (!r.method || !*r.method || !json_is_object(r.arguments) || (!r.ticket != !r.reply_to))
            abort();
        check_round_trip(&r);
        cel__control_request_release(&r);
    } else if (rc != CEL_ENOTFOUND && rc != CEL_EPROTO && rc != CEL_ENOMEM) {
        abort();
    }
    char *node;
    json_t *value;
    if (cel__control_parse_reply(env, size, NULL, &node, &value) == CEL_OK) {
        if (!node || !value)
            abort();
        free(node);
        json_decref(value);
    }
    struct cel_control_revoke rv;
    if (cel__control_parse_revoke(env, size, "w@fuzz", &rv) == CEL_OK) {
        if (rv.n == 0 && rv.ids == NULL)
            abort();
        cel__control_revoke_release(&rv);
    }
    return 0;
}
