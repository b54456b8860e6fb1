/* retry.c - see retry.h; and cel_task_retry (task.h). */
#include "worker/retry.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"
#include "core/uuid.h"
#include "proto/resend.h"
#include "worker/task_context.h"

static const json_t *header(const struct cel_message *m, const char *name)
{
    return json_object_get(json_object_get(m->root, "headers"), name);
}

int cel__retry_limit(const cel_task_def *def, const struct cel_message *m)
{
    const json_t *h = header(m, "celeriac_max_retries");
    if (h && json_is_null(h))
        return -1; /* Celery's max_retries=None */
    if (json_is_integer(h)) {
        json_int_t v = json_integer_value(h);
        return v < 0 ? -1 : v > INT32_MAX ? INT32_MAX : (int)v;
    }
    int v = def ? def->max_retries : CEL_RETRIES_DEFAULT;
    switch (v) {
    case CEL_RETRIES_DEFAULT:
        return CEL_RETRY_DEFAULT_MAX;
    case CEL_RETRIES_UNLIMITED:
        return -1;
    case CEL_RETRIES_NONE:
        return 0;
    }
    return v;
}

double cel__retry_delay(const cel_task_def *def, const struct cel_message *m, double rand01)
{
    const json_t *h = header(m, "celeriac_retry_backoff");
    double base = json_is_number(h) ? json_number_value(h) : def ? def->retry_backoff : 0;
    if (!(base > 0))
        return def && def->default_retry_delay > 0 ? def->default_retry_delay
                                                   : CEL_RETRY_DEFAULT_DELAY_S;
    double cap =
        def && def->retry_backoff_max > 0 ? def->retry_backoff_max : CEL_RETRY_DEFAULT_BACKOFF_MAX;
    /* ldexp overflows to inf for a huge retry count: the cap takes it */
    double d = fmin(cap, ldexp(base, m->retries < 0 ? 0 : m->retries));
    if (def && def->retry_jitter == CEL_TRI_OFF)
        return d;
    return d * (rand01 < 0 ? 0 : rand01 >= 1 ? 1 : rand01);
}

char *cel__retry_envelope(const struct cel_message *m, int64_t eta_us, const char *delivery_tag,
                          size_t *len)
{
    char eta[48];
    cel__iso8601(eta_us, true, eta, sizeof eta);
    json_t *set = json_pack("{s:I, s:s}", "retries", (json_int_t)m->retries + 1, "eta", eta);
    return set ? cel__message_resend(m, delivery_tag, set, len) : NULL;
}

/* Python shows args as a tuple repr; the argsrepr header has it when a
 * Python or celeriac client sent the task. */
static char *repr_of(const struct cel_message *m, const char *name, const json_t *fallback)
{
    const char *r = json_string_value(header(m, name));
    return r ? strdup(r) : cel__json_dump(fallback);
}

char *cel__retry_exceeded_message(const struct cel_message *m, int limit, const char *exc_type,
                                  const char *message)
{
    char *args = repr_of(m, "argsrepr", m->args), *kwargs = repr_of(m, "kwargsrepr", m->kwargs);
    char *out = NULL;
    if (args && kwargs &&
        asprintf(&out, "Can't retry %s[%s] args:%s kwargs:%s (%d retries; last error: %s: %s)",
                 m->task, m->id, args, kwargs, limit, exc_type, message ? message : "") < 0)
        out = NULL;
    free(args);
    free(kwargs);
    return out;
}

/* Jitter needs no quality, only to differ between children: xorshift64*
 * seeded per process on first use (children are forked, so a seed taken
 * before the fork would repeat in all of them). */
static double random01(void)
{
    static uint64_t state;
    static pid_t seeded_in;
    if (!state || seeded_in != getpid()) {
        seeded_in = getpid();
        state = (uint64_t)cel__wall_us() ^ ((uint64_t)seeded_in << 32) ^ (uint64_t)cel__mono_us();
        state |= 1;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0; /* 2^53 */
}

static int fail_retry(cel_task *t, const char *why, const char *exc_type, const char *message)
{
    const struct cel_message *m = t->msg;
    return cel_task_failf(t, "RuntimeError", "cannot retry %s[%s]: %s (the error was %s: %s)",
                          m->task, m->id, why, exc_type, message);
}

int cel_task_retry(cel_task *t, double countdown, const char *exc_type, const char *exc_module,
                   const char *message)
{
    if (!t)
        return CEL_EINVAL;
    if (t->retrying) /* the first retry's message is already on its way */
        return CEL_OK;
    const struct cel_message *m = t->msg;
    char reason[64];
    if (!exc_type || !*exc_type) {
        snprintf(reason, sizeof reason, "Retry in %gs", countdown >= 0 ? countdown : 0);
        exc_type = "Retry";
        exc_module = "celery.exceptions";
        message = message ? message : reason;
    }
    exc_module = exc_module && *exc_module ? exc_module : "builtins";
    message = message ? message : "";

    int limit = cel__retry_limit(t->def, m);
    if (limit >= 0 && m->retries >= limit) {
        char *text = cel__retry_exceeded_message(m, limit, exc_type, message);
        int rc = cel_task_fail(t, "MaxRetriesExceededError", "celery.exceptions",
                               text ? text : "Can't retry: max retries exceeded");
        free(text);
        return rc == CEL_ENOMEM ? rc : CEL_OK;
    }
    if (!(countdown >= 0)) /* negative or NaN: the task's policy */
        countdown = cel__retry_delay(t->def, m, random01());
    if (!t->io || !t->io->publish)
        return fail_retry(t, "this worker cannot publish from a running task", exc_type, message);

    int64_t eta_us = cel__wall_us() + (int64_t)(countdown * 1e6);
    char tag[CEL_UUID_STRLEN + 1];
    cel__uuid4(tag);
    size_t len = 0;
    char *env = cel__retry_envelope(m, eta_us, tag, &len);
    if (!env)
        return fail_retry(t, "cannot build the retry message", exc_type, message);
    const struct cel_frame_publish pub = {
        .queue = m->routing_key && *m->routing_key ? m->routing_key : "celery",
        .priority = m->priority,
        .due_us = eta_us,
        .task_id = m->id,
        .body = env,
        .len = len};
    int prc = t->io->publish(t->io->ud, &pub);
    free(env);
    if (prc != 0)
        return fail_retry(t, "the worker did not take the retry message", exc_type, message);

    t->retrying = true;
    t->retry_countdown = countdown;
    t->retry_exc_type = strdup(exc_type);
    t->retry_exc_module = strdup(exc_module);
    t->retry_exc_message = strdup(message);
    /* Still retrying on OOM: execute.c falls back to defaults for NULLs. */
    return CEL_OK;
}
