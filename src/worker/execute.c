/* execute.c - see execute.h. */
#include "worker/execute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/message.h"
#include "worker/task_context.h"

/* Python clients print the traceback of a failed task; ours has no Python
 * frames, so it names the task and ends with the `Type: message` line
 * that Python's traceback module would print last. */
static char *make_traceback(const char *task, const char *exc_type, const char *message)
{
#define TRACEBACK_FMT "Traceback (most recent call last):\n  File \"<celeriac>\", in %s\n%s: %s\n"
    int n = snprintf(NULL, 0, TRACEBACK_FMT, task, exc_type, message);
    char *tb = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (tb)
        snprintf(tb, (size_t)n + 1, TRACEBACK_FMT, task, exc_type, message);
#undef TRACEBACK_FMT
    return tb;
}

static void finish(struct cel_execution *out, const struct cel_message *m, const char *status,
                   json_t *result, const char *traceback)
{
    json_t *meta = cel__result_meta_new(m->id, status, result, traceback, m->group_id, m->parent_id,
                                        cel__wall_us());
    out->meta = meta ? cel__json_dump(meta) : NULL;
    out->meta_len = out->meta ? strlen(out->meta) : 0;
    json_decref(meta);
}

void cel__execute(const cel_registry *reg, const char *hostname, const char *envelope, size_t len,
                  struct cel_execution *out)
{
    memset(out, 0, sizeof *out);
    out->state = CEL_STATE_FAILURE;

    struct cel_message m;
    if (cel__message_parse(envelope, len, NULL, &m, out->reason, sizeof out->reason) != 0) {
        out->malformed = true;
        return;
    }
    const cel_task_def *def = cel_registry_find(reg, m.task);
    if (!def) {
        json_t *exc = cel__exception_new("NotRegistered", "celery.exceptions", m.task);
        finish(out, &m, "FAILURE", exc, NULL);
        cel__message_release(&m);
        return;
    }

    struct cel_task t;
    cel__task_init(&t, &m, hostname);
    int64_t t0 = cel__mono_us();
    cel__task_invoke(&t, def);
    double runtime = (double)(cel__mono_us() - t0) / 1e6;
    bool ignore = m.ignore_result || def->ignore_result;

    if (!t.failed) {
        out->state = CEL_STATE_SUCCESS;
        if (cel__log_min_level <= CEL_LOG_INFO) {
            char *text = t.result ? cel__json_dump(t.result) : NULL;
            CEL_INFO("worker", "Task %s[%s] succeeded in %.6fs: %.200s", m.task, m.id, runtime,
                     text ? text : "None");
            free(text);
        }
        if (!ignore) {
            json_t *result = t.result ? json_incref(t.result) : NULL;
            finish(out, &m, "SUCCESS", result, NULL);
        }
    } else {
        out->state = CEL_STATE_FAILURE;
        const char *type = t.exc_type ? t.exc_type : "Exception";
        const char *msg = t.exc_message ? t.exc_message : "";
        CEL_ERROR("worker", "Task %s[%s] raised unexpected: %s('%s')", m.task, m.id, type, msg);
        if (!ignore) {
            char *tb = make_traceback(m.task, type, msg);
            json_t *exc = cel__exception_new(type, t.exc_module ? t.exc_module : "builtins", msg);
            finish(out, &m, "FAILURE", exc, tb);
            free(tb);
        }
    }
    cel__task_release(&t);
    cel__message_release(&m);
}
