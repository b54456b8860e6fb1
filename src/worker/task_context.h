/*
 * task_context.h - the cel_task a task function receives (celeriac/task.h).
 *
 * It is filled from a parsed message in the process that runs the task
 * (a prefork child or the solo worker), and after the call it holds the
 * outcome: a JSON result, or an exception (type, module, message).
 */
#ifndef CEL_WORKER_TASK_CONTEXT_H
#define CEL_WORKER_TASK_CONTEXT_H

#include <jansson.h>
#include <stdbool.h>

#include "celeriac/task.h"
#include "proto/message.h"
#include "worker/execute.h"

struct cel_exec_io;

struct cel_task {
    const struct cel_message *msg;  /* borrowed */
    const char *hostname;           /* borrowed */
    const cel_task_def *def;        /* borrowed; NULL in unit tests that set none */
    const struct cel_exec_io *io;   /* borrowed; NULL: states and publishes are dropped */
    const struct cel_exec_env *env; /* borrowed; NULL in unit tests that set none */
    struct cel_task_policy policy;  /* resolved by execute.c before the call */
    int64_t started_mono_us;        /* when the task body was called */
    char *args_json;                /* lazily dumped; owned */
    char *kwargs_json;              /* lazily dumped; owned */

    json_t *result; /* owned; NULL means null */
    bool failed;
    char *exc_type;    /* owned */
    char *exc_module;  /* owned */
    char *exc_message; /* owned */

    /* Set by cel_task_retry (retry.c): the retry message is on its way
     * to the parent, and this run ends in state RETRY with this error,
     * whatever the task does afterwards. */
    bool retrying;
    double retry_countdown;  /* seconds, as scheduled */
    char *retry_exc_type;    /* owned */
    char *retry_exc_module;  /* owned */
    char *retry_exc_message; /* owned */

    char arg_error[256]; /* why the last accessor failed, for cel_task_fail_args() */

    /* Workflows (canvas_run.c): the registry the built-in map/starmap
     * look tasks up in (borrowed); the result tuples of the messages this
     * run sent (Celery's children, owned; NULL: none); set by
     * cel_task_replace_json: this run stores nothing and hands nothing
     * on, the replacement does. */
    const cel_registry *reg;
    json_t *children;
    bool replaced;

    /* task_request.c caches */
    char *headers_json;    /* lazily dumped; owned */
    char *properties_json; /* lazily dumped; owned */
};

void cel__task_init(struct cel_task *t, const struct cel_message *msg, const char *hostname);
void cel__task_release(struct cel_task *t);

/* Calls def->fn and normalises the outcome: a negative return without a
 * fail call becomes a failure with that code's message. */
void cel__task_invoke(struct cel_task *t, const cel_task_def *def);

#endif
