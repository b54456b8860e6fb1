/* execute.c - see execute.h. */
#include "worker/execute.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/message.h"
#include "worker/canvas_run.h"
#include "worker/task_context.h"

/* An ETA this close is not worth a round trip through the broker. */
#define ETA_SLACK_US 1000

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

/* What a meta document holds besides Celery's standard fields. */
struct meta_extra {
    json_t *children; /* stolen; NULL: [] */
    int retries;      /* < 0: no "retries" field */
};

/* Sets `key` just before "task_id", which Celery always writes last. */
static bool put_before_id(json_t *meta, const char *key, json_t *v)
{
    json_t *id = json_incref(json_object_get(meta, "task_id"));
    json_object_del(meta, "task_id");
    bool ok =
        json_object_set_new(meta, key, v) == 0 && id && json_object_set(meta, "task_id", id) == 0;
    json_decref(id);
    return ok;
}

static void set_meta_extra(struct cel_execution *out, const struct cel_message *m, cel_state state,
                           json_t *result, const char *traceback, const struct meta_extra *x)
{
    json_t *meta = cel__result_meta_new(m->id, cel_state_name(state), result, traceback,
                                        m->group_id, m->parent_id, cel__wall_us());
    bool ok = meta != NULL;
    if (x && x->children && ok) /* set_new steals it, also when it fails */
        ok = json_object_set_new(meta, "children", x->children) == 0;
    else if (x && x->children)
        json_decref(x->children);
    /* Celery's result_extended meta has "retries"; ours has it whenever
     * there were retries, so a client sees how many (AsyncResult.retries
     * in Python reads it). */
    if (ok && x && x->retries >= 0)
        ok = put_before_id(meta, "retries", json_integer((json_int_t)x->retries));
    if (!ok) {
        json_decref(meta);
        meta = NULL;
    }
    out->state = state;
    out->meta = meta ? cel__json_dump(meta) : NULL;
    out->meta_len = out->meta ? strlen(out->meta) : 0;
    json_decref(meta);
}

static void set_meta(struct cel_execution *out, const struct cel_message *m, cel_state state,
                     json_t *result, const char *traceback)
{
    set_meta_extra(out, m, state, result, traceback, NULL);
}

static void set_exception(struct cel_execution *out, const struct cel_message *m, cel_state state,
                          const char *type, const char *module, const char *message)
{
    set_meta(out, m, state, cel__exception_new(type, module, message), NULL);
}

/* The message cannot be run. Whenever its id can be read, its client gets
 * the failure a Python worker would report (ContentDisallowed,
 * DecodeError, ...: message.h) instead of waiting for its timeout. */
static void malformed(struct cel_execution *out, const struct cel_message_fault *f)
{
    out->outcome = CEL_OUTCOME_MALFORMED;
    if (!f->task_id) {
        CEL_ERROR("worker",
                  "Received and deleted a malformed message: %s (kept in the dead-letter store)",
                  out->reason);
        return;
    }
    out->task_id = strdup(f->task_id);
    const struct cel_message m = {.id = f->task_id};
    set_exception(out, &m, CEL_STATE_FAILURE, f->exc_type, f->exc_module, out->reason);
    CEL_ERROR("worker",
              "Received and deleted a malformed message %s[%s]: %s: %s (kept in the dead-letter "
              "store)",
              f->task ? f->task : "?", f->task_id, f->exc_type, out->reason);
}

static bool tri(int v, bool dflt)
{
    return v == CEL_TRI_ON ? true : v == CEL_TRI_OFF ? false : dflt;
}

/* As Celery's request: the call's own `timelimit`, else the task's limit
 * (which the time_limit control command replaces, both of them, even with
 * none), else the worker's. */
static void resolve_policy(const struct cel_exec_env *env, const cel_task_def *def,
                           const struct cel_message *m, struct cel_task_policy *p)
{
    double task_hard = def->time_limit, task_soft = def->soft_time_limit;
    cel__time_limit_table_get(env->time_limits, def->name, &task_soft, &task_hard);
    p->time_limit = m->time_limit > 0 ? m->time_limit : task_hard > 0 ? task_hard : env->time_limit;
    p->soft_time_limit = m->soft_time_limit > 0 ? m->soft_time_limit
                         : task_soft > 0        ? task_soft
                                                : env->soft_time_limit;
    p->acks_late = tri(def->acks_late, env->acks_late);
    p->reject_on_worker_lost = def->reject_on_worker_lost == CEL_TRI_ON;
    p->track_started = tri(def->track_started, env->track_started);
}

bool cel__policy_differs(const struct cel_task_policy *p, const struct cel_exec_env *env)
{
    return p->time_limit != env->time_limit || p->soft_time_limit != env->soft_time_limit ||
           p->acks_late != env->acks_late || p->reject_on_worker_lost ||
           p->track_started != env->track_started;
}

static bool autoretries(const cel_task_def *def, const char *exc_type)
{
    for (size_t i = 0; exc_type && def->autoretry_for && def->autoretry_for[i]; i++)
        if (strcmp(def->autoretry_for[i], exc_type) == 0)
            return true;
    return false;
}

/* A failure listed in autoretry_for is retried as if the task had called
 * cel_task_retry with it (which may fail it with MaxRetriesExceededError
 * instead). */
static void autoretry(struct cel_task *t)
{
    char *type = t->exc_type, *module = t->exc_module, *msg = t->exc_message;
    t->exc_type = t->exc_module = t->exc_message = NULL; /* ours while the retry runs */
    t->failed = false;
    cel_task_retry(t, -1, type, module, msg);
    if (!t->retrying && !t->failed) /* only on a NULL task: keep the original error */
        cel_task_fail(t, type, module, msg);
    free(type);
    free(module);
    free(msg);
}

/* Celery's SoftTimeLimitExceeded comes from billiard, which raises it in
 * the task: a task that failed once its soft limit passed failed of it. */
static void soft_limit_failure(struct cel_task *t)
{
    char *msg = t->exc_message;
    t->exc_message = NULL;
    char fallback[64];
    snprintf(fallback, sizeof fallback, "soft time limit (%gs) exceeded",
             t->policy.soft_time_limit);
    cel_task_fail(t, "SoftTimeLimitExceeded", "billiard.exceptions", msg && *msg ? msg : fallback);
    free(msg);
}

static void outcome_retry(const struct cel_task *t, const struct cel_message *m, bool ignore,
                          struct cel_execution *out)
{
    const char *type = t->retry_exc_type ? t->retry_exc_type : "Retry";
    const char *module = t->retry_exc_module ? t->retry_exc_module : "celery.exceptions";
    const char *msg = t->retry_exc_message ? t->retry_exc_message : "";
    out->state = CEL_STATE_RETRY;
    /* Celery's log line and traceback end: "Retry in 2s: KeyError('x')" */
    char why[512];
    snprintf(why, sizeof why, "Retry in %gs: %s('%.400s')", t->retry_countdown, type, msg);
    CEL_INFO("worker", "Task %s[%s] retry: %s", m->task, m->id, why);
    if (ignore)
        return;
    char *tb = make_traceback(m->task, "celery.exceptions.Retry", why);
    /* The retry is this task's child, as Celery records it. */
    struct meta_extra x = {.children = json_pack("[[[s, n], n]]", m->id), .retries = m->retries};
    set_meta_extra(out, m, CEL_STATE_RETRY, cel__exception_new(type, module, msg), tb, &x);
    free(tb);
}

static void run(const struct cel_exec_env *env, const struct cel_exec_io *io,
                const cel_task_def *def, const struct cel_message *m, struct cel_execution *out)
{
    struct cel_task t;
    cel__task_init(&t, m, env->hostname);
    t.io = io;
    t.env = env;
    t.def = def;
    t.reg = env->reg;
    resolve_policy(env, def, m, &t.policy);
    if (io && io->begin && cel__policy_differs(&t.policy, env))
        io->begin(io->ud, &t.policy);
    int64_t t0 = cel__mono_us();
    t.started_mono_us = t0;
    cel__task_invoke(&t, def);
    double runtime = (double)(cel__mono_us() - t0) / 1e6;
    bool ignore = m->ignore_result || def->ignore_result;
    if (!t.retrying && t.failed && autoretries(def, t.exc_type))
        autoretry(&t);
    if (!t.retrying && t.failed && cel_task_soft_limit_reached(&t))
        soft_limit_failure(&t);
    struct meta_extra x = {.retries = m->retries > 0 ? m->retries : -1};

    /* What the run hands on goes out before its result is stored, as
     * Celery publishes the next link before storing; a retried or
     * replaced run hands nothing on. */
    if (!t.retrying && !t.replaced) {
        cel__canvas_after_run(&t, !t.failed);
        x.children = t.children;
        t.children = NULL;
    }

    if (t.replaced) {
        /* Celery's Ignore: the replacement stores this id's result. */
        out->state = CEL_STATE_SUCCESS;
        CEL_INFO("worker", "Task %s[%s] replaced in %.6fs", m->task, m->id, runtime);
    } else if (t.retrying) {
        outcome_retry(&t, m, ignore, out);
    } else if (!t.failed) {
        out->state = CEL_STATE_SUCCESS;
        if (cel__log_min_level <= CEL_LOG_INFO) {
            char *text = t.result ? cel__json_dump(t.result) : NULL;
            CEL_INFO("worker", "Task %s[%s] succeeded in %.6fs: %.200s", m->task, m->id, runtime,
                     text ? text : "None");
            free(text);
        }
        if (!ignore)
            set_meta_extra(out, m, CEL_STATE_SUCCESS, t.result ? json_incref(t.result) : NULL, NULL,
                           &x);
    } else {
        out->state = CEL_STATE_FAILURE;
        const char *type = t.exc_type ? t.exc_type : "Exception";
        const char *msg = t.exc_message ? t.exc_message : "";
        CEL_ERROR("worker", "Task %s[%s] raised unexpected: %s('%s')", m->task, m->id, type, msg);
        if (!ignore) {
            char *tb = make_traceback(m->task, type, msg);
            set_meta_extra(out, m, CEL_STATE_FAILURE,
                           cel__exception_new(type, t.exc_module ? t.exc_module : "builtins", msg),
                           tb, &x);
            free(tb);
        }
    }
    if (ignore) /* no meta took the children */
        json_decref(x.children);
    cel__task_release(&t);
}

void cel__execute(const struct cel_exec_env *env, const struct cel_exec_io *io,
                  const char *envelope, size_t len, struct cel_execution *out)
{
    const cel_registry *reg = env->reg;
    memset(out, 0, sizeof *out);
    out->state = CEL_STATE_FAILURE;

    struct cel_message m;
    struct cel_message_fault fault;
    if (cel__message_parse_fault(envelope, len, NULL, &m, &fault, out->reason,
                                 sizeof out->reason) != 0) {
        malformed(out, &fault);
        cel__message_fault_release(&fault);
        return;
    }
    out->task_id = strdup(m.id);
    int64_t now = cel__wall_us();
    const cel_task_def *def = cel_registry_find(reg, m.task);
    if (!def)
        def = cel__canvas_builtin(m.task);
    if (!def) {
        out->outcome = CEL_OUTCOME_UNREGISTERED;
        snprintf(out->reason, sizeof out->reason, "unregistered task '%s'", m.task);
        /* The parent decides what becomes of it and says so once per
         * name (consumer.c); a line per message would flood the log of a
         * queue shared with Python workers. */
        CEL_DEBUG("worker", "Task %s[%s] is not registered here", m.task, m.id);
        set_exception(out, &m, CEL_STATE_FAILURE, "NotRegistered", "celery.exceptions", m.task);
    } else if (m.expires_us && m.expires_us < now) {
        CEL_INFO("worker", "Discarding revoked task: %s[%s] (expired)", m.task, m.id);
        set_exception(out, &m, CEL_STATE_REVOKED, "TaskRevokedError", "celery.exceptions",
                      "expired");
    } else if (m.eta_us && m.eta_us > now + ETA_SLACK_US) {
        out->outcome = CEL_OUTCOME_DEFER;
        out->eta_us = m.eta_us;
        out->priority = m.priority;
        CEL_INFO("worker", "Task %s[%s] received with eta: parked on the broker until it is due",
                 m.task, m.id);
    } else {
        run(env, io, def, &m, out);
    }
    cel__message_release(&m);
}

void cel__execution_release(struct cel_execution *ex)
{
    free(ex->task_id);
    free(ex->meta);
    ex->task_id = ex->meta = NULL;
}

int cel__execution_to_frame(const struct cel_execution *ex, uint64_t seq, struct cel_buf *out)
{
    char eta[48];
    int etalen = snprintf(eta, sizeof eta, "%" PRId64 "%c%d", ex->eta_us, '\0', ex->priority);
    const char *id = ex->task_id ? ex->task_id : "";
    size_t idlen = strlen(id), rlen = strlen(ex->reason);
    size_t len = idlen + 1 + rlen + 1 + (size_t)etalen + 1 + ex->meta_len;
    char *payload = malloc(len ? len : 1);
    if (!payload)
        return -1;
    char *p = payload;
    memcpy(p, id, idlen + 1);
    p += idlen + 1;
    memcpy(p, ex->reason, rlen + 1);
    p += rlen + 1;
    memcpy(p, eta, (size_t)etalen + 1);
    p += etalen + 1;
    if (ex->meta_len)
        memcpy(p, ex->meta, ex->meta_len);
    uint8_t status = (uint8_t)(ex->outcome * 16 + ex->state);
    int rc = cel__framebuf_append(out, CEL_FRAME_RESULT, status, seq, payload, len);
    free(payload);
    return rc;
}

/* Next NUL-terminated field of [*p, end); NULL when there is none. */
static const char *field(const char **p, const char *end)
{
    const char *start = *p;
    const char *nul = memchr(start, '\0', (size_t)(end - start));
    if (!nul)
        return NULL;
    *p = nul + 1;
    return start;
}

int cel__execution_from_frame(const struct cel_frame *f, struct cel_execution *ex)
{
    memset(ex, 0, sizeof *ex);
    if (f->type != CEL_FRAME_RESULT || f->status / 16 > CEL_OUTCOME_DEFER ||
        f->status % 16 > CEL_STATE_CUSTOM)
        return -1;
    ex->outcome = (enum cel_outcome)(f->status / 16);
    ex->state = (cel_state)(f->status % 16);
    const char *p = f->payload, *end = f->payload + f->len;
    const char *id = field(&p, end), *reason = field(&p, end), *eta = field(&p, end);
    const char *prio = field(&p, end);
    if (!id || !reason || !eta || !prio)
        return -1;
    snprintf(ex->reason, sizeof ex->reason, "%s", reason);
    ex->eta_us = strtoll(eta, NULL, 10);
    ex->priority = (int)strtol(prio, NULL, 10);
    if (*id && !(ex->task_id = strdup(id)))
        return -1;
    ex->meta_len = (size_t)(end - p);
    if (ex->meta_len) {
        ex->meta = malloc(ex->meta_len + 1);
        if (!ex->meta) {
            cel__execution_release(ex);
            return -1;
        }
        memcpy(ex->meta, p, ex->meta_len);
        ex->meta[ex->meta_len] = '\0';
    }
    return 0;
}
