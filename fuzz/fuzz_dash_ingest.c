/*
 * fuzz_dash_ingest.c - the dashboard stores whatever any process on the
 * broker publishes as an event. Ingest arbitrary bytes into a private
 * in-memory store: nothing may crash, and what the store then answers
 * must be well-formed JSON of the documented shapes.
 */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "dashboard/history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_be_object(char *s)
{
    json_t *v = s ? json_loads(s, 0, NULL) : NULL;
    if (!json_is_object(v))
        abort();
    json_decref(v);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cel_dash_history_opts o = {0, 100};
    struct cel_dash_history *h;
    char why[256];
    if (cel__dash_history_open(":memory:", &o, &h, why, sizeof why) != 0)
        abort();
    if (cel__dash_history_ingest(h, (const char *)data, size) != 0 ||
        cel__dash_history_flush(h) != 0)
        abort();
    char *s;
    if (cel__dash_history_tasks_json(h, NULL, &s) != 0)
        abort();
    must_be_object(s);
    if (cel__dash_history_workers_json(h, 0, &s) != 0)
        abort();
    must_be_object(s);
    if (cel__dash_history_trend_json(h, "runtime", 0, 6000, 60, NULL, &s) != 0)
        abort();
    must_be_object(s);
    cel__dash_history_close(h);
    return 0;
}
