/*
 * task_request.c - the rest of Celery's Task.request for a C task
 * (celeriac/task.h, "request"): eta and expires as sent, delivery info,
 * the raw headers and properties, the limits and retry count this run is
 * under, and cel_task_check_argc().
 *
 * Everything is read from the parsed message on demand; the only state
 * kept is the lazily dumped headers/properties text (the cache fields at
 * the end of struct cel_task), written through the const like the
 * args_json cache in task_context.c: every cel_task is allocated
 * non-const by the worker.
 */
#include <limits.h>
#include <stdio.h>

#include "celeriac/error.h"
#include "core/json_util.h"
#include "worker/retry.h"
#include "worker/task_context.h"

/* Retry limit when neither the call nor the task sets one: Celery's. */

static const json_t *root_section(const cel_task *t, const char *name)
{
    return json_object_get(t->msg->root, name);
}

/* A header's raw string; NULL when absent, null or not a string. */
static const char *header_string(const cel_task *t, const char *key)
{
    return cel__json_cstr(json_object_get(root_section(t, "headers"), key));
}

const char *cel_task_eta(const cel_task *t)
{
    return header_string(t, "eta");
}

const char *cel_task_expires(const cel_task *t)
{
    return header_string(t, "expires");
}

const char *cel_task_exchange(const cel_task *t)
{
    return t->msg->exchange ? t->msg->exchange : "";
}

const char *cel_task_routing_key(const cel_task *t)
{
    return t->msg->routing_key ? t->msg->routing_key : "";
}

int cel_task_priority(const cel_task *t)
{
    return t->msg->priority;
}

bool cel_task_redelivered(const cel_task *t)
{
    return t->msg->redelivered;
}

const char *cel_task_reply_to(const cel_task *t)
{
    return t->msg->reply_to ? t->msg->reply_to : "";
}

const char *cel_task_correlation_id(const cel_task *t)
{
    return t->msg->correlation_id;
}

const char *cel_task_origin(const cel_task *t)
{
    return t->msg->origin;
}

/* Dumps a section of the envelope once; `cache` is a field of *t. */
static const char *dump_cached(const cel_task *t, char **cache, const char *section)
{
    if (!*cache) {
        const json_t *v = root_section(t, section);
        *cache = v ? cel__json_dump(v) : NULL;
    }
    return *cache ? *cache : "{}";
}

const char *cel_task_headers_json(const cel_task *t)
{
    return dump_cached(t, &((struct cel_task *)t)->headers_json, "headers");
}

const char *cel_task_properties_json(const cel_task *t)
{
    return dump_cached(t, &((struct cel_task *)t)->properties_json, "properties");
}

double cel_task_time_limit(const cel_task *t)
{
    return t->policy.time_limit;
}

double cel_task_soft_time_limit(const cel_task *t)
{
    return t->policy.soft_time_limit;
}

/*
 * The call's limit wins over the task's. The `celeriac_max_retries`
 * header (set by celeriac's client for --max-retries) is an integer
 * count; null or a negative integer means unlimited, as Celery's
 * max_retries=None. A header of another type is ignored: it was not
 * written by us.
 */
int cel_task_max_retries(const cel_task *t)
{
    int n = cel__retry_limit(t->def, t->msg);
    return n < 0 ? CEL_RETRIES_UNLIMITED : n;
}

bool cel_task_is_retry(const cel_task *t)
{
    return t->msg->retries > 0;
}

/* --- argument count --------------------------------------------------------
 * Python's wording (Python/ceval.c, too_many_positional and
 * missing_arguments), minus the argument names a C task does not have. */

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

int cel_task_check_argc(cel_task *t, size_t min, long max)
{
    if (!t)
        return CEL_EINVAL;
    const char *name = cel_task_name(t);
    if (max >= 0 && min > (size_t)max) {
        cel_task_failf(t, "RuntimeError", "%s(): cel_task_check_argc(min=%zu, max=%ld): min > max",
                       name, min, max);
        return CEL_EINVAL;
    }
    size_t n = cel_task_argc(t);
    if (n < min) {
        size_t missing = min - n;
        cel_task_failf(t, "TypeError", "%s() missing %zu required positional argument%s", name,
                       missing, plural(missing));
        return CEL_EINVAL;
    }
    if (max < 0 || n <= (size_t)max)
        return CEL_OK;
    char takes[64];
    if (min == (size_t)max)
        snprintf(takes, sizeof takes, "%ld positional argument%s", max, plural((size_t)max));
    else
        snprintf(takes, sizeof takes, "from %zu to %ld positional arguments", min, max);
    cel_task_failf(t, "TypeError", "%s() takes %s but %zu %s given", name, takes, n,
                   n == 1 ? "was" : "were");
    return CEL_EINVAL;
}
