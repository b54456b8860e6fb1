/*
 * task_state.c - what a running task says about itself while it runs
 * (task.h): a state with metadata stored now (cel_task_update_state),
 * and whether its soft time limit has passed.
 *
 * The soft limit needs no signal: the task polls, and the clock is
 * compared with when its body was called. A task that does not poll is
 * stopped by the hard limit (the parent kills its child).
 */
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "core/json_parse.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/state.h"
#include "worker/task_context.h"

int cel_task_update_state(cel_task *t, const char *state, const char *meta_json)
{
    if (!t || !state || !*state || cel__state_name_is_ready(state))
        return CEL_EINVAL;
    json_t *value = meta_json
                        ? cel__json_parse(meta_json, strlen(meta_json), CEL_JSON_MAX_DEPTH, NULL, 0)
                        : json_null();
    if (!value)
        return CEL_EJSON;
    const struct cel_message *m = t->msg;
    /* the meta document a Python worker's update_state() stores */
    json_t *meta = cel__result_meta_new(m->id, state, value, NULL, m->group_id, m->parent_id, 0);
    char *text = meta ? cel__json_dump(meta) : NULL;
    json_decref(meta);
    if (!text)
        return CEL_ENOMEM;
    int rc = CEL_OK;
    if (!t->io || !t->io->state)
        CEL_DEBUG("worker", "%s[%s]: state %s dropped: this pool cannot store states yet", m->task,
                  m->id, state);
    else if (t->io->state(t->io->ud, state, text, strlen(text)) != 0)
        rc = CEL_EIO;
    free(text);
    return rc;
}

bool cel_task_soft_limit_reached(const cel_task *t)
{
    if (!t || !(t->policy.soft_time_limit > 0) || !t->started_mono_us)
        return false;
    int64_t limit_us = (int64_t)(t->policy.soft_time_limit * 1e6);
    return cel__mono_us() - t->started_mono_us >= limit_us;
}
