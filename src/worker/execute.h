/*
 * execute.h - running one task message and producing its result meta.
 *
 * Shared by the prefork child and the solo pool: parse the envelope, find
 * the task, call it, and turn the outcome into Celery's result meta
 * document, logging the outcome the way Celery's worker does.
 */
#ifndef CEL_WORKER_EXECUTE_H
#define CEL_WORKER_EXECUTE_H

#include <stddef.h>

#include "celeriac/client.h"
#include "celeriac/task.h"

struct cel_execution {
    cel_state state; /* SUCCESS or FAILURE */
    char *meta;      /* result meta JSON (free()); NULL when the result is ignored */
    size_t meta_len;
    /* The message could not be parsed (its body, typically: the worker
     * parent only reads headers): nothing ran, meta is NULL, and the
     * message belongs in the dead-letter store for this reason. */
    bool malformed;
    char reason[256];
};

/* Never fails on bad input: an unknown task yields a FAILURE meta, and a
 * message that does not parse is reported as malformed. */
void cel__execute(const cel_registry *reg, const char *hostname, const char *envelope, size_t len,
                  struct cel_execution *out);

#endif
