/*
 * task_context.c - what a task function sees (celeriac/task.h): request
 * fields, typed argument accessors and the outcome setters.
 *
 * Accessors take a const cel_task because, to the task author, reading an
 * argument does not change the task. Two things are cached behind that
 * const anyway: the lazily dumped args/kwargs text and the reason the last
 * accessor failed. Every cel_task is allocated non-const by the worker, so
 * writing through a cast is well defined; mutable_task() marks the spots.
 */
#include "worker/task_context.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/json_util.h"

static struct cel_task *mutable_task(const cel_task *t)
{
    return (struct cel_task *)t;
}

void cel__task_init(struct cel_task *t, const struct cel_message *msg, const char *hostname)
{
    memset(t, 0, sizeof *t);
    t->msg = msg;
    t->hostname = hostname;
}

static void clear_failure(struct cel_task *t)
{
    free(t->exc_type);
    free(t->exc_module);
    free(t->exc_message);
    t->exc_type = t->exc_module = t->exc_message = NULL;
    t->failed = false;
}

void cel__task_release(struct cel_task *t)
{
    if (!t)
        return;
    free(t->args_json);
    free(t->kwargs_json);
    free(t->headers_json);
    free(t->properties_json);
    json_decref(t->result);
    json_decref(t->children);
    clear_failure(t);
    free(t->retry_exc_type);
    free(t->retry_exc_module);
    free(t->retry_exc_message);
    memset(t, 0, sizeof *t);
}

void cel__task_invoke(struct cel_task *t, const cel_task_def *def)
{
    if (!def || !def->fn) {
        cel_task_fail(t, "NotImplementedError", NULL, "task has no function");
        return;
    }
    int rc = def->fn(t, def->userdata);
    if (rc >= 0 || t->failed)
        return;
    /* A task that returns an accessor's error code without calling a fail
     * function gets the same TypeError cel_task_fail_args() would give. */
    if ((rc == CEL_ETYPE || rc == CEL_EMISSING || rc == CEL_ERANGE) && t->arg_error[0]) {
        cel_task_fail_args(t);
        return;
    }
    cel_task_failf(t, "RuntimeError", "task returned %s: %s", cel_err_name(rc), cel_strerror(rc));
}

/* --- request ------------------------------------------------------------- */

const char *cel_task_id(const cel_task *t)
{
    return t->msg->id;
}

const char *cel_task_name(const cel_task *t)
{
    return t->msg->task;
}

int cel_task_retries(const cel_task *t)
{
    return t->msg->retries;
}

const char *cel_task_root_id(const cel_task *t)
{
    return t->msg->root_id;
}

const char *cel_task_parent_id(const cel_task *t)
{
    return t->msg->parent_id;
}

const char *cel_task_group_id(const cel_task *t)
{
    return t->msg->group_id;
}

const char *cel_task_queue(const cel_task *t)
{
    return t->msg->routing_key ? t->msg->routing_key : "";
}

const char *cel_task_hostname(const cel_task *t)
{
    return t->hostname ? t->hostname : "";
}

const char *cel_task_args_json(const cel_task *t)
{
    if (!t->args_json)
        mutable_task(t)->args_json = cel__json_dump(t->msg->args);
    return t->args_json ? t->args_json : "[]";
}

const char *cel_task_kwargs_json(const cel_task *t)
{
    if (!t->kwargs_json)
        mutable_task(t)->kwargs_json = cel__json_dump(t->msg->kwargs);
    return t->kwargs_json ? t->kwargs_json : "{}";
}

/* --- arguments ----------------------------------------------------------- */

/* Names as a Python user would recognise them in the TypeError text. */
static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Which argument an accessor was asked for: a position or a name. */
struct argref {
    size_t index;
    const char *name; /* NULL: positional */
};

static void describe(const struct argref *a, char *buf, size_t len)
{
    if (a->name)
        snprintf(buf, len, "keyword argument '%.64s'", a->name);
    else
        snprintf(buf, len, "argument %zu", a->index);
}

static int arg_fail(const cel_task *t, const struct argref *a, int code, const char *expected,
                    const json_t *got)
{
    char what[96];
    describe(a, what, sizeof what);
    char *msg = mutable_task(t)->arg_error;
    size_t len = sizeof t->arg_error;
    if (code == CEL_EMISSING)
        snprintf(msg, len, "missing %s", what);
    else if (code == CEL_ETYPE)
        snprintf(msg, len, "%s: expected %s, got %s", what, expected, type_name(got));
    else
        snprintf(msg, len, "%s: value out of range for %s", what, expected);
    return code;
}

static const json_t *lookup(const cel_task *t, const struct argref *a)
{
    if (a->name)
        return json_object_get(t->msg->kwargs, a->name);
    return json_array_get(t->msg->args, a->index);
}

static int get_int(const cel_task *t, const struct argref *a, int64_t *out)
{
    const json_t *v = lookup(t, a);
    if (!v)
        return arg_fail(t, a, CEL_EMISSING, "integer", v);
    if (!json_is_integer(v)) /* 5.0 is not 5: Celery keeps them apart */
        return arg_fail(t, a, CEL_ETYPE, "integer", v);
    if (out)
        *out = (int64_t)json_integer_value(v);
    return CEL_OK;
}

static int get_double(const cel_task *t, const struct argref *a, double *out)
{
    const json_t *v = lookup(t, a);
    if (!v)
        return arg_fail(t, a, CEL_EMISSING, "number", v);
    if (!json_is_number(v)) /* integers are accepted, as Python's float(5) */
        return arg_fail(t, a, CEL_ETYPE, "number", v);
    if (out)
        *out = json_number_value(v);
    return CEL_OK;
}

static int get_bool(const cel_task *t, const struct argref *a, bool *out)
{
    const json_t *v = lookup(t, a);
    if (!v)
        return arg_fail(t, a, CEL_EMISSING, "boolean", v);
    if (!json_is_boolean(v))
        return arg_fail(t, a, CEL_ETYPE, "boolean", v);
    if (out)
        *out = json_is_true(v);
    return CEL_OK;
}

static int get_string(const cel_task *t, const struct argref *a, const char **out, size_t *len)
{
    const json_t *v = lookup(t, a);
    if (!v)
        return arg_fail(t, a, CEL_EMISSING, "string", v);
    if (!json_is_string(v))
        return arg_fail(t, a, CEL_ETYPE, "string", v);
    if (out)
        *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return CEL_OK;
}

static int get_json(const cel_task *t, const struct argref *a, char **out)
{
    const json_t *v = lookup(t, a);
    if (!v)
        return arg_fail(t, a, CEL_EMISSING, "value", v);
    if (!out)
        return CEL_EINVAL;
    *out = cel__json_dump(v);
    return *out ? CEL_OK : CEL_ENOMEM;
}

size_t cel_task_argc(const cel_task *t)
{
    return json_array_size(t->msg->args);
}

#define POS(i)   (&(struct argref){(i), NULL})
#define KW(name) (&(struct argref){0, (name)})

int cel_task_arg_int(const cel_task *t, size_t i, int64_t *out)
{
    return get_int(t, POS(i), out);
}

int cel_task_arg_double(const cel_task *t, size_t i, double *out)
{
    return get_double(t, POS(i), out);
}

int cel_task_arg_bool(const cel_task *t, size_t i, bool *out)
{
    return get_bool(t, POS(i), out);
}

int cel_task_arg_string(const cel_task *t, size_t i, const char **out, size_t *len)
{
    return get_string(t, POS(i), out, len);
}

int cel_task_arg_json(const cel_task *t, size_t i, char **out)
{
    return get_json(t, POS(i), out);
}

bool cel_task_has_kwarg(const cel_task *t, const char *name)
{
    return name && json_object_get(t->msg->kwargs, name) != NULL;
}

int cel_task_kwarg_int(const cel_task *t, const char *name, int64_t *out)
{
    return name ? get_int(t, KW(name), out) : CEL_EINVAL;
}

int cel_task_kwarg_double(const cel_task *t, const char *name, double *out)
{
    return name ? get_double(t, KW(name), out) : CEL_EINVAL;
}

int cel_task_kwarg_bool(const cel_task *t, const char *name, bool *out)
{
    return name ? get_bool(t, KW(name), out) : CEL_EINVAL;
}

int cel_task_kwarg_string(const cel_task *t, const char *name, const char **out, size_t *len)
{
    return name ? get_string(t, KW(name), out, len) : CEL_EINVAL;
}

int cel_task_kwarg_json(const cel_task *t, const char *name, char **out)
{
    return name ? get_json(t, KW(name), out) : CEL_EINVAL;
}

/* --- outcome ------------------------------------------------------------- */

/* The last outcome call wins, so returning clears an earlier failure. */
static int set_result(cel_task *t, json_t *v)
{
    if (!v)
        return CEL_ENOMEM;
    json_decref(t->result);
    t->result = v;
    clear_failure(t);
    return CEL_OK;
}

int cel_task_return_null(cel_task *t)
{
    return set_result(t, json_null());
}

int cel_task_return_int(cel_task *t, int64_t v)
{
    return set_result(t, json_integer((json_int_t)v));
}

int cel_task_return_double(cel_task *t, double v)
{
    /* jansson refuses NaN and infinities, which JSON cannot carry */
    json_t *r = json_real(v);
    return r ? set_result(t, r) : CEL_EINVAL;
}

int cel_task_return_bool(cel_task *t, bool v)
{
    return set_result(t, json_boolean(v));
}

int cel_task_return_string(cel_task *t, const char *s)
{
    if (!s)
        return CEL_EINVAL;
    json_t *r = json_string(s);
    return r ? set_result(t, r) : CEL_EINVAL; /* NULL here: not UTF-8 */
}

int cel_task_return_json(cel_task *t, const char *json)
{
    if (!json)
        return CEL_EJSON;
    json_t *r = cel__json_parse(json, strlen(json), CEL_JSON_MAX_DEPTH, NULL, 0);
    return r ? set_result(t, r) : CEL_EJSON;
}

static int set_failure(cel_task *t, const char *exc_type, const char *exc_module, char *message)
{
    clear_failure(t);
    json_decref(t->result);
    t->result = NULL;
    t->failed = true;
    t->exc_type = strdup(exc_type && exc_type[0] ? exc_type : "Exception");
    t->exc_module = strdup(exc_module && exc_module[0] ? exc_module : "builtins");
    t->exc_message = message;
    /* Still failed on OOM; the worker falls back to defaults for NULLs. */
    return t->exc_type && t->exc_module && t->exc_message ? CEL_OK : CEL_ENOMEM;
}

int cel_task_fail(cel_task *t, const char *exc_type, const char *exc_module, const char *message)
{
    return set_failure(t, exc_type, exc_module, strdup(message ? message : ""));
}

int cel_task_failf(cel_task *t, const char *exc_type, const char *fmt, ...)
{
    char *msg = NULL;
    if (!fmt)
        return set_failure(t, exc_type, NULL, strdup(""));
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    return set_failure(t, exc_type, NULL, msg);
}

int cel_task_fail_args(cel_task *t)
{
    return cel_task_fail(t, "TypeError", "builtins",
                         t->arg_error[0] ? t->arg_error : "invalid task arguments");
}
