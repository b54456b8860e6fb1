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
} cel_task_def;

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

#ifdef __cplusplus
}
#endif
#endif
