/*
 * control_cmds.c - the table of remote control commands, and the ones
 * that change the worker (control_cmds.h). Texts of replies are Celery
 * 5.2's, so scripts written against Python workers read ours the same.
 *
 * Loop thread only.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/json_util.h"
#include "core/rate.h"
#include "core/log.h"
#include "worker/autoscale.h"
#include "worker/control_cmds.h"
#include "worker/events.h"
#include "worker/worker_internal.h"

#define COMP "worker"

json_t *cel__control_ok(const char *text)
{
    return json_pack("{s:s}", "ok", text);
}

json_t *cel__control_error(const char *text)
{
    return json_pack("{s:s}", "error", text);
}

/* A string argument, NULL when absent or not a string. */
static const char *arg_str(const json_t *args, const char *key)
{
    return cel__json_cstr(json_object_get(args, key));
}

/* A number argument (Celery's CLI sends numbers as text too); dflt when
 * absent or unreadable. */
static double arg_num(const json_t *args, const char *key, double dflt)
{
    const json_t *v = json_object_get(args, key);
    if (json_is_number(v))
        return json_number_value(v);
    const char *s = cel__json_cstr(v);
    char *end;
    double d = s ? strtod(s, &end) : 0;
    return s && end != s ? d : dflt;
}

/* ---- simple answers -------------------------------------------------------- */

static json_t *cmd_ping(cel_worker *w, const json_t *args)
{
    (void)w, (void)args;
    return cel__control_ok("pong");
}

static json_t *cmd_clock(cel_worker *w, const json_t *args)
{
    (void)args;
    return json_pack("{s:I}", "clock", (json_int_t)cel__worker_clock_value(w));
}

static json_t *cmd_hello(cel_worker *w, const json_t *args)
{
    (void)args;
    return json_pack("{s:o, s:I}", "revoked", cel__revoke_dump(w, true, CEL_CONTROL_LIST_MAX),
                     "clock", (json_int_t)cel__worker_clock_forward(w));
}

static json_t *cmd_revoked(cel_worker *w, const json_t *args)
{
    (void)args;
    return cel__revoke_dump(w, false, CEL_CONTROL_LIST_MAX);
}

/* ---- revoke: the revoke itself is revoke.c's; this is the reply ---------- */

static bool running_here(cel_worker *w, const char *id)
{
    for (struct cel_inflight *f = w->held.head; f; f = f->next) {
        if (!f->pid || !f->started_us)
            continue;
        cel__inflight_learn_ids(f);
        if (f->task_id && strcmp(f->task_id, id) == 0)
            return true;
    }
    return false;
}

static json_t *revoke_reply(cel_worker *w, const json_t *args, bool terminate)
{
    const json_t *ids = json_object_get(args, "task_id");
    json_t *list = json_is_string(ids) ? json_pack("[O]", ids) : json_incref((json_t *)ids);
    terminate = terminate || json_is_true(json_object_get(args, "terminate"));
    char text[4096];
    size_t used = 0, shown = 0;
    for (size_t i = 0; i < json_array_size(list) && used < sizeof text - 64; i++) {
        const char *id = cel__json_cstr(json_array_get(list, i));
        if (!id || (terminate && !running_here(w, id)))
            continue;
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", shown++ ? ", " : "", id);
    }
    json_decref(list);
    if (used >= sizeof text)
        used = sizeof text - 1;
    text[used] = '\0';
    char msg[4200];
    if (terminate)
        snprintf(msg, sizeof msg, "terminate: %s", shown ? text : "tasks unknown");
    else
        snprintf(msg, sizeof msg, "tasks %s flagged as revoked", text);
    return cel__control_ok(msg);
}

static json_t *cmd_revoke(cel_worker *w, const json_t *args)
{
    return revoke_reply(w, args, false);
}

static json_t *cmd_terminate(cel_worker *w, const json_t *args)
{
    return revoke_reply(w, args, true);
}

/* ---- limits ------------------------------------------------------------------ */

static json_t *cmd_rate_limit(cel_worker *w, const json_t *args)
{
    const char *name = arg_str(args, "task_name");
    const json_t *rv = json_object_get(args, "rate_limit");
    char num[64];
    const char *rate = cel__json_cstr(rv);
    if (json_is_number(rv)) { /* rate_limit=10: per second */
        snprintf(num, sizeof num, "%g", json_number_value(rv));
        rate = num;
    }
    char why[160], msg[240];
    int rc = name ? cel__rate_limit_set(w, name, rate, why, sizeof why) : CEL_ENOTFOUND;
    if (rc == CEL_ENOTFOUND) {
        CEL_ERROR(COMP, "Rate limit attempt for unknown task %s", name ? name : "?");
        return cel__control_error("unknown task");
    }
    if (rc != CEL_OK) {
        snprintf(msg, sizeof msg, "Invalid rate limit string: ValueError('%s')", why);
        return cel__control_error(msg);
    }
    double per_sec = 0;
    if (rate && *rate && cel__rate_parse(rate, &per_sec, why, sizeof why) == CEL_OK &&
        per_sec > 0) {
        CEL_INFO(COMP, "New rate limit for tasks of type %s: %s.", name, rate);
        return cel__control_ok("new rate limit set successfully");
    }
    CEL_INFO(COMP, "Rate limits disabled for tasks of type %s", name);
    return cel__control_ok("rate limit disabled successfully");
}

/* Celery sets the task's time_limit and soft_time_limit, both of them,
 * for runs that start afterwards. Runs resolve their policy where they
 * run, in children forked long before, hence the shared table. */
static json_t *cmd_time_limit(cel_worker *w, const json_t *args)
{
    const char *name = arg_str(args, "task_name");
    const cel_task_def *def = name ? cel_registry_find(w->reg, name) : NULL;
    if (!def) {
        CEL_ERROR(COMP, "Change time limit attempt for unknown task %s", name ? name : "?");
        return cel__control_error("unknown task");
    }
    double hard = arg_num(args, "hard", 0), soft = arg_num(args, "soft", 0);
    const char *why = "no time limit table";
    if (!w->time_limits ||
        cel__time_limit_table_set(w->time_limits, def->name, soft, hard, &why) != 0) {
        CEL_ERROR(COMP, "Cannot change time limits for tasks of type %s: %s", name, why);
        return cel__control_error(why);
    }
    CEL_INFO(COMP, "New time limits for tasks of type %s: soft=%g hard=%g", name, soft, hard);
    return cel__control_ok("time limits set successfully");
}

/* ---- the pool ------------------------------------------------------------------ */

static json_t *pool_reply(bool ok, const char *msg)
{
    return ok ? cel__control_ok(msg) : cel__control_error(msg);
}

static json_t *cmd_pool_grow(cel_worker *w, const json_t *args)
{
    char msg[200];
    bool ok = cel__pool_grow(w, (int)arg_num(args, "n", 1), msg, sizeof msg);
    return pool_reply(ok, msg);
}

static json_t *cmd_pool_shrink(cel_worker *w, const json_t *args)
{
    char msg[200];
    bool ok = cel__pool_shrink(w, (int)arg_num(args, "n", 1), msg, sizeof msg);
    return pool_reply(ok, msg);
}

static json_t *cmd_autoscale(cel_worker *w, const json_t *args)
{
    char msg[200];
    bool ok = cel__autoscale_set(w, (int)arg_num(args, "max", -1), (int)arg_num(args, "min", -1),
                                 msg, sizeof msg);
    return pool_reply(ok, msg);
}

/* ---- queues ---------------------------------------------------------------------- */

static json_t *cmd_add_consumer(cel_worker *w, const json_t *args)
{
    const char *queue = arg_str(args, "queue");
    char msg[300];
    if (!queue || !*queue || strlen(queue) > 200)
        return cel__control_error("a queue name is needed");
    bool known = false;
    for (size_t i = 0; i < w->nqueues && !known; i++)
        known = strcmp(w->queues[i], queue) == 0;
    if (!known) {
        if (w->nqueues == CEL_WORKER_MAX_QUEUES)
            return cel__control_error("too many queues");
        char *copy = strdup(queue);
        if (!copy)
            return cel__control_error("out of memory");
        w->queues[w->nqueues++] = copy;
        CEL_INFO(COMP, "Started consuming from %s", queue);
        cel__control_apply_queues(w);
    }
    snprintf(msg, sizeof msg, "add consumer %s", queue); /* Celery: also when it already did */
    return cel__control_ok(msg);
}

static json_t *cmd_cancel_consumer(cel_worker *w, const json_t *args)
{
    const char *queue = arg_str(args, "queue");
    char msg[300];
    if (!queue)
        return cel__control_error("a queue name is needed");
    for (size_t i = 0; i < w->nqueues; i++) {
        if (strcmp(w->queues[i], queue) != 0)
            continue;
        free(w->queues[i]);
        memmove(w->queues + i, w->queues + i + 1, (w->nqueues - i - 1) * sizeof *w->queues);
        w->nqueues--;
        CEL_INFO(COMP, "Stopped consuming from %s", queue);
        cel__control_apply_queues(w);
        break;
    }
    /* Celery answers so whether or not it consumed the queue. */
    snprintf(msg, sizeof msg, "no longer consuming from %.200s", queue);
    return cel__control_ok(msg);
}

/* celeriac's own command: a queue was paused or resumed on the broker
 * side. The pidbox thread re-read the paused set and handed it over
 * (cel__control_set_paused) before it passed this request on, and the
 * loop applies a new set before it answers requests: so the reply says
 * the worker fetches no more from the queue, and gave back what it held
 * from it, and the client may go on as if the queue were paused
 * everywhere (cel_client_queue_pause waits for these replies). */
static json_t *cmd_queue_pause(cel_worker *w, const json_t *args)
{
    const char *queue = arg_str(args, "queue");
    char msg[256];
    snprintf(msg, sizeof msg, "queue %.200s %s", queue ? queue : "?",
             queue && cel__control_queue_paused(w, queue) ? "paused" : "not paused");
    return cel__control_ok(msg);
}

/* ---- events and lifecycle ------------------------------------------------------- */

static json_t *cmd_enable_events(cel_worker *w, const json_t *args)
{
    (void)args;
    bool was = cel__events_set_enabled(w, true);
    if (!was)
        CEL_INFO(COMP, "Events of group {task} enabled by remote.");
    return cel__control_ok(was ? "task events already enabled" : "task events enabled");
}

static json_t *cmd_disable_events(cel_worker *w, const json_t *args)
{
    (void)args;
    bool was = cel__events_set_enabled(w, false);
    if (was)
        CEL_INFO(COMP, "Events of group {task} disabled by remote.");
    return cel__control_ok(was ? "task events disabled" : "task events already disabled");
}

static json_t *cmd_heartbeat(cel_worker *w, const json_t *args)
{
    (void)args;
    cel__events_heartbeat_now(w);
    return NULL;
}

static json_t *cmd_shutdown(cel_worker *w, const json_t *args)
{
    (void)args;
    CEL_WARN(COMP, "Got shutdown from remote");
    cel_worker_stop(w, 0);
    return NULL;
}

/* ---- the table ------------------------------------------------------------------- */

#define NO_REPLY 0x1u

static const struct {
    const char *name;
    json_t *(*fn)(cel_worker *w, const json_t *args);
    unsigned flags;
} commands[] = {
    /* inspection (control_inspect.c) */
    {"ping", cmd_ping, 0},
    {"active", cel__inspect_active, 0},
    {"dump_active", cel__inspect_active, 0},
    {"reserved", cel__inspect_reserved, 0},
    {"dump_reserved", cel__inspect_reserved, 0},
    {"scheduled", cel__inspect_scheduled, 0},
    {"dump_schedule", cel__inspect_scheduled, 0},
    {"revoked", cmd_revoked, 0},
    {"dump_revoked", cmd_revoked, 0},
    {"registered", cel__inspect_registered, 0},
    {"dump_tasks", cel__inspect_registered, 0},
    {"stats", cel__inspect_stats, 0},
    {"active_queues", cel__inspect_active_queues, 0},
    {"query_task", cel__inspect_query_task, 0},
    {"conf", cel__inspect_conf, 0},
    {"dump_conf", cel__inspect_conf, 0},
    {"report", cel__inspect_report, 0},
    {"clock", cmd_clock, 0},
    {"hello", cmd_hello, 0},
    {"memsample", cel__inspect_memsample, 0},
    /* control */
    {"revoke", cmd_revoke, 0},
    {"terminate", cmd_terminate, 0},
    {"rate_limit", cmd_rate_limit, 0},
    {"time_limit", cmd_time_limit, 0},
    {"pool_grow", cmd_pool_grow, 0},
    {"pool_shrink", cmd_pool_shrink, 0},
    {"autoscale", cmd_autoscale, 0},
    {"add_consumer", cmd_add_consumer, 0},
    {"cancel_consumer", cmd_cancel_consumer, 0},
    {"enable_events", cmd_enable_events, 0},
    {"disable_events", cmd_disable_events, 0},
    {"heartbeat", cmd_heartbeat, 0},
    {"shutdown", cmd_shutdown, NO_REPLY},
    {"celeriac_queue_pause", cmd_queue_pause, 0},
};

json_t *cel__control_dispatch(cel_worker *w, const struct cel_control_request *rq, bool *reply)
{
    *reply = true;
    if (strcmp(rq->method, "hello") == 0 &&
        strcmp(arg_str(rq->arguments, "from_node") ? arg_str(rq->arguments, "from_node") : "",
               w->hostname) == 0) {
        *reply = false; /* our own mingle: never answered */
        return NULL;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, rq->method) != 0)
            continue;
        *reply = !(commands[i].flags & NO_REPLY);
        return commands[i].fn(w, rq->arguments);
    }
    CEL_WARN(COMP, "unknown control command %.100s", rq->method);
    json_t *name = json_string(rq->method);
    char *repr = name ? cel__json_dump(name) : NULL; /* quoted and escaped */
    json_decref(name);
    char msg[300];
    /* Python's repr quotes with ' */
    if (repr) {
        size_t n = strlen(repr);
        repr[0] = repr[n - 1] = '\'';
    }
    snprintf(msg, sizeof msg, "KeyError(%.250s)", repr ? repr : "'?'");
    free(repr);
    return cel__control_error(msg);
}
