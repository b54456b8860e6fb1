/*
 * celeriac/task.h - writing tasks in C.
 *
 * A task is a C function that reads its arguments from a cel_task context
 * and sets a result or an error:
 *
 *     static int add(cel_task *t, void *userdata)
 *     {
 *         int64_t x, y;
 *         if (cel_task_arg_int(t, 0, &x) || cel_task_arg_int(t, 1, &y))
 *             return cel_task_fail_args(t);
 *         return cel_task_return_int(t, x + y);
 *     }
 *
 *     CEL_MODULE_INIT(reg)
 *     {
 *         static const cel_task_def defs[] = {
 *             CEL_TASK_DEF_INIT(.name = "tasks.add", .fn = add),
 *             CEL_TASK_DEF_INIT(.name = "tasks.resize", .fn = resize, .queue = "images"),
 *         };
 *         return cel_registry_add_many(reg, defs, 2);
 *     }
 *
 * Build the file as a shared object and start a worker with
 * `celeriac worker -A ./libtasks.so`. A program can also fill a registry
 * itself and run cel_worker_run().
 *
 * Ownership: the cel_task passed to a task function is borrowed for the
 * duration of the call. Strings returned by accessors are borrowed from it.
 * Setters copy what they are given.
 *
 * A task function returns CEL_OK after cel_task_return_*() or any
 * cel_task_fail*() call. Returning a negative code without having called a
 * fail function records a failure with that code's message.
 */
#ifndef CELERIAC_TASK_H
#define CELERIAC_TASK_H

#include <stdbool.h>

#include "celeriac/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_task cel_task;
typedef struct cel_registry cel_registry;

typedef int (*cel_task_fn)(cel_task *task, void *userdata);

/*
 * A task definition. Make it with CEL_TASK_DEF_INIT, which records the
 * size of the struct the module was compiled with:
 *
 *     CEL_TASK_DEF_INIT(.name = "tasks.add", .fn = add, .ignore_result = 1)
 *
 * Later versions of celeriac add fields at the end (eta, expires, retries,
 * time and rate limits, ...). A module built against an older header keeps
 * working without a rebuild: the fields it does not have take their
 * defaults. A module built against a newer header runs on an older library
 * as long as it leaves the fields that library does not know at zero; one
 * that sets them is refused rather than run without what it asked for.
 * Modules built against celeriac 0.1 (whose definitions began with
 * `CEL_TASK_DEF_ABI`) are refused at load: rebuild them.
 *
 * For maintainers: fields are only appended, and the struct never has
 * padding (registry.c asserts it), so every byte past a known field
 * belongs to a later one.
 */
typedef struct cel_task_def {
    unsigned struct_size; /* sizeof(cel_task_def) the module saw; CEL_TASK_DEF_INIT */
    int ignore_result;    /* non-zero: the worker stores no result */
    const char *name;     /* "tasks.add"; copied */
    cel_task_fn fn;       /* the task body */
    void *userdata;       /* passed to fn untouched */
    const char *queue;    /* queue the task lives on: a worker started without -Q
                             consumes it too. NULL: task_default_queue */

    /* ---- celeriac 0.3: Celery's execution options (0 means "default") ---- */
    double default_retry_delay; /* seconds before a retry without a countdown; 0: 180 */
    double retry_backoff;       /* > 0: retry n waits retry_backoff * 2^n seconds (Celery's
                                   retry_backoff=True is 1), capped and jittered; 0: off */
    double retry_backoff_max;   /* cap of the backoff, seconds; 0: 600 */
    double time_limit;          /* hard limit, seconds: the child is killed; 0: the worker's */
    double soft_time_limit;     /* soft limit, seconds (cel_task_soft_limit_reached); 0: the
                                   worker's */
    const char *rate_limit;     /* "10/s", "100/m", "1000/h"; NULL: none; copied */
    const char *const *autoretry_for; /* NULL-terminated exception type names ("IOError")
                                         whose failures retry automatically; copied */
    int max_retries;                  /* CEL_RETRIES_DEFAULT (0): 3; CEL_RETRIES_UNLIMITED;
                                         CEL_RETRIES_NONE: never retried; otherwise the count */
    int acks_late;                    /* CEL_TRI_DEFAULT: the worker's task_acks_late; CEL_TRI_ON,
                                         CEL_TRI_OFF */
    int reject_on_worker_lost;        /* CEL_TRI_ON: a task whose child died goes back to its queue
                                         (until the poison limit) instead of failing */
    int track_started;                /* CEL_TRI_*: store STARTED for this task */
    int retry_jitter;                 /* CEL_TRI_DEFAULT or ON: full jitter on backoff; OFF: none */
    int reserved;                     /* must be 0 */
} cel_task_def;

#define CEL_RETRIES_DEFAULT   0
#define CEL_RETRIES_UNLIMITED (-1)
#define CEL_RETRIES_NONE      (-2)

#define CEL_TRI_DEFAULT 0
#define CEL_TRI_ON      1
#define CEL_TRI_OFF     (-1)

/* Designated initialisers for the fields to set; the rest are zero. */
#define CEL_TASK_DEF_INIT(...)                                                                     \
    {                                                                                              \
        .struct_size = sizeof(cel_task_def), __VA_ARGS__                                           \
    }

/* --- registry ------------------------------------------------------------ */

CEL_API cel_registry *cel_registry_new(void);
CEL_API void cel_registry_free(cel_registry *reg);
/* Copies the definition. CEL_EINVAL (detail in cel_registry_errmsg) for a
 * definition not made with CEL_TASK_DEF_INIT, one from celeriac 0.1, one
 * that sets fields this library does not know, an empty name, no function
 * or a duplicate name. */
CEL_API int cel_registry_add(cel_registry *reg, const cel_task_def *def);
/* `defs` is an array of n definitions made with CEL_TASK_DEF_INIT; it is
 * walked with the caller's struct_size, not this library's. Stops at the
 * first error; the ones before it stay registered. */
CEL_API int cel_registry_add_many(cel_registry *reg, const cel_task_def *defs, size_t n);
/* Detail of the last failed call on this registry; "" when none. */
CEL_API const char *cel_registry_errmsg(const cel_registry *reg);
/* Loads a shared object and calls its `celeriac_module_init(reg)`.
 * CEL_EMODULE on failure, with a message naming the module and the cause
 * (the dlerror() text, or why a definition was refused) in *errmsg
 * (caller frees with cel_free). A module that registers a definition from
 * celeriac 0.1 fails to load even if its init function ignores the error. */
CEL_API int cel_registry_load_module(cel_registry *reg, const char *path, char **errmsg);
/* Lookup by name; NULL when unknown. Borrowed. */
CEL_API const cel_task_def *cel_registry_find(const cel_registry *reg, const char *name);
CEL_API size_t cel_registry_count(const cel_registry *reg);
/* i-th definition in name order; NULL when out of range. */
CEL_API const cel_task_def *cel_registry_at(const cel_registry *reg, size_t i);

/* The entry point a task module exports. */
typedef int (*cel_module_init_fn)(cel_registry *reg);
#define CEL_MODULE_INIT(reg)                                                                       \
    CEL_API int celeriac_module_init(cel_registry *reg);                                           \
    int celeriac_module_init(cel_registry *reg)

/* --- request ------------------------------------------------------------- */

CEL_API const char *cel_task_id(const cel_task *t);
CEL_API const char *cel_task_name(const cel_task *t);
CEL_API int cel_task_retries(const cel_task *t);
CEL_API const char *cel_task_root_id(const cel_task *t);   /* may be NULL */
CEL_API const char *cel_task_parent_id(const cel_task *t); /* may be NULL */
CEL_API const char *cel_task_group_id(const cel_task *t);  /* may be NULL */
CEL_API const char *cel_task_queue(const cel_task *t);     /* delivery routing key */
CEL_API const char *cel_task_hostname(const cel_task *t);  /* worker node name */
/* ISO 8601 text of the eta and expires headers as sent; NULL when none. */
CEL_API const char *cel_task_eta(const cel_task *t);
CEL_API const char *cel_task_expires(const cel_task *t);
/* Delivery info: exchange ("" for the default), routing key, priority
 * (0 when none) and whether the broker delivered it before. */
CEL_API const char *cel_task_exchange(const cel_task *t);
CEL_API const char *cel_task_routing_key(const cel_task *t);
CEL_API int cel_task_priority(const cel_task *t);
CEL_API bool cel_task_redelivered(const cel_task *t);
CEL_API const char *cel_task_reply_to(const cel_task *t);       /* may be "" */
CEL_API const char *cel_task_correlation_id(const cel_task *t); /* may be NULL */
CEL_API const char *cel_task_origin(const cel_task *t);         /* sender node; may be NULL */
/* Raw JSON text of the message headers and properties objects. */
CEL_API const char *cel_task_headers_json(const cel_task *t);
CEL_API const char *cel_task_properties_json(const cel_task *t);
/* The limits this run is under (the call's, else the task's, else the
 * worker's), seconds; 0 when none. */
CEL_API double cel_task_time_limit(const cel_task *t);
CEL_API double cel_task_soft_time_limit(const cel_task *t);
/* The retry limit this run is under (CEL_RETRIES_UNLIMITED for none). */
CEL_API int cel_task_max_retries(const cel_task *t);
/* Whether this run is a retry of an earlier one (retries > 0). */
CEL_API bool cel_task_is_retry(const cel_task *t);

/* Writes one line to the worker's log, prefixed with the task's name and
 * id like Celery's task logger ("tasks.add[<id>]: ..."). */
CEL_API void cel_task_log(const cel_task *t, cel_log_level level, const char *fmt, ...)
    CEL_PRINTF(3, 4);

/* Raw JSON text of the positional args ("[2, 3]") and kwargs ("{}"). */
CEL_API const char *cel_task_args_json(const cel_task *t);
CEL_API const char *cel_task_kwargs_json(const cel_task *t);

/* --- arguments ------------------------------------------------------------
 * Positional accessors take a 0-based index, keyword accessors a name.
 * They return CEL_OK, CEL_EMISSING (no such argument), CEL_ETYPE (another
 * JSON type) or CEL_ERANGE (an integer that does not fit). An integer
 * argument is accepted by the double accessors; a double is not accepted
 * by the integer ones (Celery keeps 5 and 5.0 apart, so do we). */
CEL_API size_t cel_task_argc(const cel_task *t);
CEL_API int cel_task_arg_int(const cel_task *t, size_t i, int64_t *out);
CEL_API int cel_task_arg_double(const cel_task *t, size_t i, double *out);
CEL_API int cel_task_arg_bool(const cel_task *t, size_t i, bool *out);
/* *out is borrowed from the task; *len (may be NULL) excludes the NUL. */
CEL_API int cel_task_arg_string(const cel_task *t, size_t i, const char **out, size_t *len);
/* Any value as JSON text; *out is caller-owned (cel_free). */
CEL_API int cel_task_arg_json(const cel_task *t, size_t i, char **out);
CEL_API bool cel_task_has_kwarg(const cel_task *t, const char *name);
CEL_API int cel_task_kwarg_int(const cel_task *t, const char *name, int64_t *out);
CEL_API int cel_task_kwarg_double(const cel_task *t, const char *name, double *out);
CEL_API int cel_task_kwarg_bool(const cel_task *t, const char *name, bool *out);
CEL_API int cel_task_kwarg_string(const cel_task *t, const char *name, const char **out,
                                  size_t *len);
CEL_API int cel_task_kwarg_json(const cel_task *t, const char *name, char **out);

/* --- outcome --------------------------------------------------------------
 * The last call wins. With no call the result is JSON null. */
CEL_API int cel_task_return_null(cel_task *t);
CEL_API int cel_task_return_int(cel_task *t, int64_t v);
CEL_API int cel_task_return_double(cel_task *t, double v);
CEL_API int cel_task_return_bool(cel_task *t, bool v);
CEL_API int cel_task_return_string(cel_task *t, const char *s);
/* `json` must be one valid JSON value; CEL_EJSON otherwise (nothing set). */
CEL_API int cel_task_return_json(cel_task *t, const char *json);

/*
 * Marks the task failed. `exc_type` is the exception class name Python
 * clients will see ("ValueError"); `exc_module` its module ("builtins"
 * for the standard ones; NULL means "builtins"). Returns CEL_OK so a task
 * can `return cel_task_fail(...)`.
 */
CEL_API int cel_task_fail(cel_task *t, const char *exc_type, const char *exc_module,
                          const char *message);
CEL_API int cel_task_failf(cel_task *t, const char *exc_type, const char *fmt, ...)
    CEL_PRINTF(3, 4);
/* Fails with TypeError naming the first bad argument; for argument checks. */
CEL_API int cel_task_fail_args(cel_task *t);
/* Fails with TypeError unless the task got between min and max positional
 * arguments (max < 0: no upper bound), worded like Python's
 * "add() takes 2 positional arguments but 3 were given". Returns CEL_OK
 * when the count is right, CEL_EINVAL after failing the task:
 *
 *     if (cel_task_check_argc(t, 2, 2) != CEL_OK)
 *         return CEL_OK;
 */
CEL_API int cel_task_check_argc(cel_task *t, size_t min, long max);

/* --- retries --------------------------------------------------------------
 * Schedules this task again and ends this run in state RETRY (stored with
 * the error, so clients see why). The retry is a new message with the same
 * id, `retries` + 1 and every other header kept, published with this
 * run's ack and parked on the broker until due: nothing sleeps.
 *
 * countdown: seconds until the retry; negative: the task's policy
 * (retry_backoff when set, else default_retry_delay). exc_type/exc_module/
 * message: the error that caused it (NULL exc_type: "Retry"). When the
 * retry limit is reached the task fails instead, with Celery's
 * MaxRetriesExceededError (celery.exceptions). Either way it returns
 * CEL_OK, so a task can `return cel_task_retry(...)`.
 */
CEL_API int cel_task_retry(cel_task *t, double countdown, const char *exc_type,
                           const char *exc_module, const char *message);

/* --- states and limits ---------------------------------------------------
 * Stores a state for this task now ("PROGRESS", or any custom name) with
 * `meta_json`, one JSON value (NULL: null), as the result Python's
 * AsyncResult.info returns. CEL_EJSON for bad JSON, CEL_EINVAL for a
 * ready state name (SUCCESS, FAILURE, REVOKED: end the task instead).
 */
CEL_API int cel_task_update_state(cel_task *t, const char *state, const char *meta_json);
/* True once this run has passed its soft time limit. A task that then
 * returns a failure is recorded with Celery's SoftTimeLimitExceeded. */
CEL_API bool cel_task_soft_limit_reached(const cel_task *t);

/* --- workflows from inside a task (Celery's canvas) ------------------------ */

/*
 * Sends a signature or workflow given as Celery's signature JSON
 * ({"task", "args", "kwargs", "options", "subtask_type"}; chains, groups
 * and chords as Python serialises them) with this task as parent and its
 * root as root; it goes out with this task's ack. The id whose result is
 * the workflow's value (a chain's last task, a chord's body, a group's
 * id) is written to id_out when not NULL. CEL_EINVAL for a signature that
 * cannot be planned, CEL_EIO when the worker cannot publish.
 */
CEL_API int cel_task_send_json(cel_task *t, const char *sig_json, char id_out[37]);

/*
 * Celery's Task.replace: the workflow `sig_json` takes this task's place.
 * Its last task gets this task's id (so this task's result becomes the
 * replacement's), and this task's callbacks, errbacks, the rest of its
 * chain and its chord membership move to it; a group is first made a
 * chord whose body returns the group's results. This run then stores no
 * result and hands nothing on; whatever the task returns afterwards is
 * ignored. Returns as cel_task_send_json.
 */
CEL_API int cel_task_replace_json(cel_task *t, const char *sig_json);

#ifdef __cplusplus
}
#endif
#endif
