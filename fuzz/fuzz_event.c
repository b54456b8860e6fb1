/*
 * fuzz_event.c - an events envelope is what any process on the broker
 * can publish to every monitor (celeriac events, the dashboard). Parse;
 * whatever is accepted is a list of events that must go out again in an
 * envelope that reads back the same.
 */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "proto/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *events;
    if (cel__event_parse((const char *)data, size, &events) != 0)
        return 0;
    if (!json_is_array(events))
        abort();
    for (size_t i = 0; i < json_array_size(events); i++)
        if (!json_is_string(json_object_get(json_array_get(events, i), "type")))
            abort();
    char *env;
    size_t len;
    const char *rk;
    if (cel__event_envelope(events, "fuzz@host", &env, &len, &rk) == 0) {
        json_t *again;
        if (cel__event_parse(env, len, &again) != 0 || !json_equal(again, events))
            abort();
        json_decref(again);
        free(env);
    }
    json_decref(events);
    return 0;
}
