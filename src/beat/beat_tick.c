/*
 * beat_tick.c - sending the runs that are due.
 *
 * For each enabled entry the runs after its last run and not after now
 * are listed (the newest ones only: a clock that jumped a year ahead
 * must not make beat walk a year of seconds), beat_catch_up.c decides
 * which of them go, and each goes with sched_fire(): the message is
 * published and the entry's last run moved in one atomic step, fenced
 * by the lease and by the last run this process read. A run therefore
 * goes out once, whichever beat sends it and whenever one dies.
 *
 * The task id of a run is derived from the entry's name and the run's
 * scheduled time (cel__sched_tick_id), so the same run always carries
 * the same id.
 */
#include <stdlib.h>
#include <string.h>

#include "beat/beat_catch_up.h"
#include "beat/beat_internal.h"
#include "client/client_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/uuid.h"
#include "proto/envelope_writer.h"
#include "proto/message.h"

#define US 1000000

static cel_catch_up policy_of(const cel_beat *b, const struct beat_entry *e)
{
    cel_catch_up p = e->def.e.catch_up;
    return p == CEL_CATCH_UP_DEFAULT ? b->default_policy : p;
}

static int64_t next_run(const struct beat_entry *e, int64_t after_s)
{
    return cel__sched_next(&e->def.spec, e->def.tz, e->def.created_s, after_s);
}

static int64_t next_of(void *ctx, int64_t after_s)
{
    return next_run(ctx, after_s);
}

/* Sends (or, without `send`, records as skipped) the run at tick_s. */
static int fire(cel_beat *b, struct beat_entry *e, int64_t tick_s, bool send)
{
    struct cel_sched_fire f = {
        .name = e->name,
        .lease = CEL_BEAT_LEASE,
        .holder = b->holder,
        .expect_last_run_us = e->last_run_us,
        .tick_us = tick_s * US,
        .send = send,
    };
    char id[CEL_UUID_STRLEN + 1] = "";
    if (send) {
        const cel_schedule_entry *se = &e->def.e;
        cel__sched_tick_id(e->name, tick_s, id);
        struct cel_task_spec spec = {0};
        spec.task = se->task;
        spec.id = id;
        spec.args_json = se->args_json;
        spec.kwargs_json = se->kwargs_json;
        spec.queue = se->queue && *se->queue ? se->queue : b->client->default_queue;
        spec.priority = se->has_priority ? se->priority : 0;
        spec.periodic_task_name = e->name;
        if (se->expires > 0)
            spec.expires_us = tick_s * US + (int64_t)(se->expires * US);
        char why[256] = "";
        int rc = cel__envelope_write(&spec, &b->msg, NULL, why, sizeof why);
        if (rc != CEL_OK) {
            /* The entry was checked when it was stored, so this is rare;
             * the run is recorded as skipped rather than tried forever. */
            CEL_ERROR(CEL_BEAT_COMP, "beat: cannot build the message of '%s': %s; run skipped",
                      e->name, why[0] ? why : cel_strerror(rc));
            return fire(b, e, tick_s, false);
        }
        f.queue = spec.queue;
        f.priority = spec.priority;
        f.task_id = id;
        f.body = cel__buf_bytes(&b->msg);
        f.len = cel__buf_size(&b->msg);
    }
    int rc = b->broker->ops->sched_fire(b->broker, &f);
    if (rc != CEL_OK)
        return rc;
    e->last_run_us = f.tick_us;
    char when[48];
    cel__iso8601(f.tick_us, true, when, sizeof when);
    if (send)
        CEL_INFO(CEL_BEAT_COMP, "beat: sent '%s' (%s) as task %s, the run of %s", e->name,
                 e->def.e.task, id, when);
    return CEL_OK;
}

/* The run @reboot entries get: now, or just after the last one when a
 * clock that went back would put it before. */
static int64_t reboot_tick(const struct beat_entry *e, int64_t now_s)
{
    int64_t last_s = e->last_run_us / US;
    return now_s > last_s ? now_s : last_s + 1;
}

static int entry_tick(cel_beat *b, struct beat_entry *e, int64_t now_us, int64_t *next_s)
{
    int64_t now_s = now_us / US;
    if (e->last_run_us > now_us + US && !e->warned_future) {
        char when[48];
        cel__iso8601(e->last_run_us, true, when, sizeof when);
        CEL_WARN(CEL_BEAT_COMP,
                 "beat: the last run of '%s' (%s) lies ahead of this clock; runs up to it are "
                 "not sent again",
                 e->name, when);
        e->warned_future = true;
    }
    if (e->def.spec.kind == CEL_SCHED_REBOOT) {
        /* Once per process: a pass cut short (a change found by a send)
         * is repeated, and must not send it again. */
        bool due = b->reboot_pending && e->last_run_us < b->first_led_us;
        return due ? fire(b, e, reboot_tick(e, now_s), true) : CEL_OK;
    }

    int64_t after_s = e->last_run_us > 0 ? e->last_run_us / US : e->def.created_s;
    size_t cap = b->catch_up_max + (size_t)b->grace_s + 2;
    int64_t *ticks = malloc(cap * sizeof *ticks);
    if (!ticks)
        return CEL_ENOMEM;
    struct cel_beat_due due = {.ticks = ticks,
                               .last_run_s = after_s,
                               .now_s = now_s,
                               .grace_s = b->grace_s,
                               .policy = policy_of(b, e),
                               .max = b->catch_up_max};
    due.n = cel__beat_due_collect(next_of, e, after_s, now_s, cap, ticks, &due.older);
    struct cel_beat_plan plan;
    cel__beat_catch_up(&due, &plan);

    int rc = CEL_OK;
    if (plan.skipped > 0)
        CEL_WARN(CEL_BEAT_COMP, "beat: '%s': %zu missed run%s skipped (catch-up %s)", e->name,
                 plan.skipped, plan.skipped == 1 ? "" : "s",
                 due.policy == CEL_CATCH_UP_ALL    ? "all"
                 : due.policy == CEL_CATCH_UP_SKIP ? "skip"
                                                   : "once");
    if (plan.skip_to > 0)
        rc = fire(b, e, plan.skip_to, false);
    for (size_t i = plan.first; rc == CEL_OK && i < plan.last && !b->stopping; i++)
        rc = fire(b, e, ticks[i], true);
    free(ticks);
    if (rc == CEL_OK) {
        int64_t next = next_run(e, now_s > after_s ? now_s : after_s);
        if (next > 0 && (*next_s == 0 || next < *next_s))
            *next_s = next;
    }
    return rc;
}

int cel__beat_tick(cel_beat *b, int64_t *wake_ms)
{
    int64_t now_us = cel__wall_us();
    int64_t next_s = 0;
    for (size_t i = 0; i < b->nentries && !b->stopping; i++) {
        struct beat_entry *e = &b->entries[i];
        if (!e->ok || !e->enabled)
            continue;
        int rc = entry_tick(b, e, now_us, &next_s);
        if (rc == CEL_ESTATE) {
            /* Changed under us, or another beat leads now: read the
             * entries and ask for the lease again before anything else. */
            CEL_INFO(CEL_BEAT_COMP, "beat: '%s' not sent: %s; reading the entries again", e->name,
                     cel__broker_errmsg(b->broker));
            b->loaded = false;
            b->lease_next_ms = 0;
            return CEL_OK;
        }
        if (rc != CEL_OK)
            return rc;
    }
    b->reboot_pending = false;
    if (next_s > 0) {
        int64_t wake = cel__mono_ms() + (next_s * 1000 - cel__wall_us() / 1000);
        if (wake < *wake_ms)
            *wake_ms = wake;
    }
    return CEL_OK;
}
