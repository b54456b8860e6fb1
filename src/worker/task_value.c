/*
 * task_value.c - a task's arguments as cel_values and a cel_value as its
 * result (celeriac/value.h). The values themselves are core/value.c's.
 *
 * The argument values are the parsed message's own jansson values,
 * handed out const: borrowed until the task function returns, when the
 * worker releases the message.
 */
#include "celeriac/error.h"
#include "core/json_parse.h"
#include "core/value.h"
#include "worker/task_context.h"

const cel_value *cel_task_args_value(const cel_task *t)
{
    return t ? cel__value_of(t->msg->args) : NULL;
}

const cel_value *cel_task_kwargs_value(const cel_task *t)
{
    return t ? cel__value_of(t->msg->kwargs) : NULL;
}

const cel_value *cel_task_arg_value(const cel_task *t, size_t i)
{
    return t ? cel__value_of(json_array_get(t->msg->args, i)) : NULL;
}

const cel_value *cel_task_kwarg_value(const cel_task *t, const char *name)
{
    return t && name ? cel__value_of(json_object_get(t->msg->kwargs, name)) : NULL;
}

int cel_task_return_value(cel_task *t, cel_value *v)
{
    json_t *j = cel__value_json_owned(v);
    if (!t || !v) {
        json_decref(j);
        return CEL_EINVAL;
    }
    /* Parent and clients parse results with the message depth limit; a
     * deeper value (or a cycle) would be stored and never read back. */
    if (cel__value_depth(j, CEL_JSON_MAX_DEPTH) > CEL_JSON_MAX_DEPTH) {
        json_decref(j);
        return CEL_EDEPTH;
    }
    /* cel_task_return_null() clears an earlier failure as every return
     * does (the last outcome call wins); then v takes null's place. */
    int rc = cel_task_return_null(t);
    if (rc != CEL_OK) {
        json_decref(j);
        return rc;
    }
    json_decref(t->result);
    t->result = j;
    return CEL_OK;
}
