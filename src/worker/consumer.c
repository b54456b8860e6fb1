/*
 * consumer.c - the worker's side of consuming: the prefetch window, the
 * messages the store thread fetched, what becomes of each message once
 * the pool reports on it, and the states written on the way.
 *
 * Every message ends with exactly one final operation handed to the
 * store thread (settle.h); the record is freed when the thread reports
 * it done, so nothing here waits for I/O.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"
#include "core/uuid.h"
#include "proto/message.h"
#include "proto/resend.h"
#include "worker/crash.h"
#include "worker/suggest.h"
#include "worker/worker_internal.h"

#define COMP "worker"

/* An unregistered task comes back after this, so that while it waits
 * another worker, not this one again, is likely to take it. */
#define CEL_UNREGISTERED_BACKOFF_US (1000 * 1000)
/* Deliveries before an unregistered task is dead-lettered when
 * task_delivery_limit is 0 (off): it still must not circle forever. */
#define CEL_UNREGISTERED_DELIVERIES 5

size_t cel__consumer_window(const cel_worker *w)
{
    bool short_tasks = w->pool_ops != &cel__pool_solo && w->runtime_ewma_us < CEL_PIPELINE_BELOW_US;
    return w->prefetch_limit * (short_tasks ? CEL_SHORT_TASK_PREFETCH_BOOST : 1);
}

void cel__consumer_update_room(cel_worker *w)
{
    if (!w->settler)
        return;
    size_t window = cel__consumer_window(w);
    size_t room = 0;
    /* Messages waiting for a rate-limit token do not fill the window
     * (up to a bound: rate_limit.c), so other tasks are still fetched. */
    size_t uncounted = cel__rate_limits_uncounted(w);
    size_t counted = w->held.count > uncounted ? w->held.count - uncounted : 0;
    if (!atomic_load(&w->stop_level) && counted < window)
        room = window - counted;
    cel__settler_set_room(w->settler, w->received, room);
}

/* Hands f's final operation to the store thread; f leaves the held list
 * (its slot in the prefetch window is free again). */
static void finish(cel_worker *w, struct cel_inflight *f, struct cel_settle_item *it)
{
    cel__events_task_finished(w, f, it);
    it->f = f;
    cel__held_remove(&w->held, f);
    if (!w->settler) { /* a start that failed before the store thread ran */
        free(it->task_id);
        free(it->meta);
        free(it->reason);
        cel__inflight_free(f);
    } else if (cel__settler_push(w->settler, it) != CEL_OK) {
        /* Out of memory: the message stays reserved on the broker and
         * comes back when its lease runs out. */
        cel__inflight_free(f);
    }
}

/* The stored form of an exception the worker raises itself; traceback
 * may be NULL. */
static char *exc_meta(const struct cel_inflight *f, const char *status, json_t *exc,
                      const char *traceback)
{
    json_t *meta = cel__result_meta_new(f->task_id, status, exc, traceback, f->group_id,
                                        f->parent_id, cel__wall_us());
    char *text = meta ? cel__json_dump(meta) : NULL;
    json_decref(meta);
    return text;
}

/* A meta the worker builds itself (worker lost, delivery limit, ...). */
static char *exception_meta(const struct cel_inflight *f, const char *status, const char *type,
                            const char *module, const char *message, const char *traceback)
{
    return exc_meta(f, status, cel__exception_new(type, module, message), traceback);
}

/* Ends f (ack, or forget when acked early) with `state` and an exception
 * the worker reports itself (traceback: NULL or the text to store). The
 * ids must be known. */
static void settle_with_exception(cel_worker *w, struct cel_inflight *f, cel_state state,
                                  const char *type, const char *module, const char *message,
                                  const char *traceback)
{
    struct cel_settle_item it = {.op = f->acked ? CEL_SETTLE_RELEASE : CEL_SETTLE_ACK,
                                 .state = state};
    if (f->task_id) {
        it.task_id = strdup(f->task_id);
        it.meta = exception_meta(f, cel_state_name(state), type, module, message, traceback);
        it.meta_len = it.meta ? strlen(it.meta) : 0;
    }
    finish(w, f, &it);
}

static void dead_letter(cel_worker *w, struct cel_inflight *f, const char *reason,
                        const char *exc_type, const char *exc_module, const char *message,
                        const char *traceback);

static void accept_message(cel_worker *w, struct cel_inflight *f)
{
    f->seq = ++w->next_seq;
    cel__held_add(&w->held, f);
    if (atomic_load(&w->stop_level)) {
        cel__consumer_requeue(w, f);
        return;
    }
    if (cel__log_min_level <= CEL_LOG_INFO) {
        cel__inflight_learn_ids(f);
        CEL_INFO(COMP, "Task %s[%s] received", f->task_name ? f->task_name : "?",
                 f->task_id ? f->task_id : "?");
    }
    cel__events_task_received(w, f);
    if (cel__filters_run(w, f) == CEL_FILTER_PASS)
        cel__held_push_ready(&w->held, f);
}

void cel__consumer_on_report(void *ud, struct cel_settle_report *r)
{
    cel_worker *w = ud;
    for (size_t i = 0; i < r->nfinished; i++)
        cel__inflight_free(r->finished[i]);
    for (size_t i = 0; i < r->nfetched; i++) {
        w->received++;
        accept_message(w, r->fetched[i]);
    }
    cel__rate_limits_on_answers(w, r->rates, r->nrates);
    cel__settle_report_free(r);
}

/* Sends an unregistered task again (see below): a copy due in a moment,
 * published with the ack of this delivery; without a readable message
 * (or memory), the broker's own requeue, which keeps the delivery count. */
static void give_back(struct cel_inflight *f, const struct cel_message *m, json_int_t seen,
                      struct cel_settle_item *it)
{
    int64_t due = cel__wall_us() + CEL_UNREGISTERED_BACKOFF_US;
    char tag[CEL_UUID_STRLEN + 1];
    cel__uuid4(tag);
    size_t len = 0;
    char *copy =
        m && m->id ? cel__message_resend(m, tag, json_pack("{s:I}", "celeriac_passes", seen), &len)
                   : NULL;
    const struct cel_frame_publish pub = {.queue = f->d.queue,
                                          .priority = m ? m->priority : 0,
                                          .due_us = due,
                                          .task_id = m ? m->id : NULL,
                                          .body = copy,
                                          .len = len};
    if (copy && f->d.queue && cel__consumer_add_followup(f, &pub) == 0) {
        it->op = CEL_SETTLE_ACK;
    } else {
        it->op = CEL_SETTLE_REQUEUE;
        it->due_us = due;
    }
    free(copy);
}

/*
 * A task this worker does not have. On a queue shared with workers that
 * do (Python workers, celeriac workers with other modules) that is
 * normal traffic, not the caller's failure: the message is acked and sent
 * again, due in a moment so another worker can take it. The copy counts
 * the deliveries so far in its `celeriac_passes` header (Python ignores
 * it) and starts with a fresh delivery count, so the worker that has the
 * task does not mistake the passes for a message that kept killing
 * workers (task_delivery_limit). When it has been delivered
 * task_delivery_limit times and no worker took it, nobody has it: it is
 * dead-lettered and its client gets NotRegistered (the meta that
 * execute.c built). Said once per name, not per message.
 */
static void unregistered(cel_worker *w, struct cel_inflight *f, struct cel_execution *ex,
                         struct cel_settle_item *it)
{
    cel__inflight_learn_ids(f);
    const char *name = f->task_name ? f->task_name : "?";
    unsigned limit = w->delivery_limit ? w->delivery_limit : CEL_UNREGISTERED_DELIVERIES;
    struct cel_message m;
    const struct cel_message_limits headers_only = {.headers_only = true};
    char err[128];
    bool parsed = cel__message_parse(f->d.body, f->d.len, &headers_only, &m, err, sizeof err) == 0;
    json_t *passes_h =
        parsed ? json_object_get(json_object_get(m.root, "headers"), "celeriac_passes") : NULL;
    json_int_t passes = json_is_integer(passes_h) && json_integer_value(passes_h) > 0
                            ? json_integer_value(passes_h)
                            : 0;
    json_int_t seen = passes + f->d.delivery_count;
    bool last = seen >= (json_int_t)limit;
    if (cel__unregistered_first_seen(name)) {
        const char *near = cel__suggest_task(w->reg, name);
        char hint[300] = "";
        if (near)
            snprintf(hint, sizeof hint, " (did you mean '%.250s'?)", near);
        CEL_WARN(COMP,
                 "Received unregistered task of type '%s'%s: giving it back to its queue for a "
                 "worker that has it; it is dead-lettered with NotRegistered after %u deliveries. "
                 "Separate queues for tasks this worker lacks avoid the round trips. id=%s",
                 name, hint, limit, f->task_id ? f->task_id : "?");
    }
    if (f->acked) {
        /* Acked before it ran (task_acks_late off): there is no message
         * left to give back, so its client is told. */
        CEL_ERROR(COMP,
                  "Task %s[%s] is not registered here and was acked early: storing "
                  "NotRegistered",
                  name, f->task_id ? f->task_id : "?");
        it->op = CEL_SETTLE_RELEASE;
    } else if (last) {
        CEL_ERROR(COMP,
                  "Task %s[%s] delivered %d times and no worker has it: NotRegistered, "
                  "kept in the dead-letter store",
                  name, f->task_id ? f->task_id : "?", (int)seen);
        it->op = CEL_SETTLE_DEAD_LETTER;
        it->reason = strdup(ex->reason[0] ? ex->reason : "unregistered task");
    } else {
        free(it->task_id);
        free(it->meta);
        it->task_id = it->meta = NULL;
        it->meta_len = 0;
        give_back(f, parsed ? &m : NULL, seen, it);
    }
    if (parsed)
        cel__message_release(&m);
}

void cel__consumer_on_outcome(cel_worker *w, struct cel_inflight *f, struct cel_execution *ex)
{
    struct cel_settle_item it = {
        .task_id = ex->task_id, .state = ex->state, .meta = ex->meta, .meta_len = ex->meta_len};
    ex->task_id = ex->meta = NULL;
    switch (ex->outcome) {
    case CEL_OUTCOME_RESULT:
        it.op = f->acked ? CEL_SETTLE_RELEASE : CEL_SETTLE_ACK;
        cel__control_note_done(w, f);
        break;
    case CEL_OUTCOME_UNREGISTERED:
        unregistered(w, f, ex, &it);
        break;
    case CEL_OUTCOME_MALFORMED:
        /* Kept for an operator (a deploy may have missed the task, a
         * producer may be broken); the stored failure tells the client. */
        if (f->acked) {
            CEL_WARN(COMP, "not keeping the message in the dead-letter store: it was acked "
                           "before it ran (task_acks_late is off)");
            it.op = CEL_SETTLE_RELEASE;
        } else {
            it.op = CEL_SETTLE_DEAD_LETTER;
            it.reason = strdup(ex->reason[0] ? ex->reason : "malformed message");
        }
        break;
    case CEL_OUTCOME_DEFER:
        /* A future task from a client that cannot publish with a due time
         * (Python Celery puts eta in a header): park it on the broker
         * side, not in worker memory, and settle the original. */
        it.op = CEL_SETTLE_REPARK;
        it.due_us = ex->eta_us;
        it.priority = ex->priority;
        cel__control_note_parked(w, f, ex->eta_us, ex->priority);
        cel__inflight_learn_ids(f);
        break;
    }
    finish(w, f, &it);
}

void cel__consumer_on_lost(cel_worker *w, struct cel_inflight *f, const char *why)
{
    if (cel__revoke_terminated(w, f)) {
        cel__consumer_revoked(w, f, "terminated");
        return;
    }
    cel__inflight_learn_ids(f);
    CEL_ERROR(COMP, "Task handler raised error: WorkerLostError('%s') task=%s[%s]", why,
              f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?");
    if (cel__worker_killing(w)) {
        /* Cold shutdown killed it: give the message back instead. */
        cel__consumer_requeue(w, f);
        return;
    }
    /* A child that died of a fatal signal sent its native
     * backtrace first (crash.h): it becomes the stored traceback. */
    char *tb = f->crash_text ? cel__crash_traceback(f->task_name ? f->task_name : "?", f->pid,
                                                    f->crash_signal, f->crash_text, f->crash_len,
                                                    "WorkerLostError", why)
                             : NULL;
    /* ---- reject_on_worker_lost, bounded by task_poison_limit ----
     * A task that asks for it goes back to its queue (unless it was acked
     * before it ran: then there is nothing to give back). The delivery
     * counter bounds it: the delivery that killed the child is counted,
     * so at the limit the message is dead-lettered, not run again. */
    if (f->reject_on_worker_lost && !f->acked) {
        if (w->poison_limit && f->d.delivery_count >= (int)w->poison_limit) {
            char reason[300];
            snprintf(reason, sizeof reason,
                     "%s (delivery %d, task_poison_limit is %u: the task killed its worker "
                     "process every time)",
                     why, f->d.delivery_count, w->poison_limit);
            CEL_ERROR(COMP, "Task %s[%s] %s; kept in the dead-letter store",
                      f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?", reason);
            dead_letter(w, f, reason, "WorkerLostError", "billiard.exceptions", why, tb);
        } else {
            CEL_WARN(COMP, "Task %s[%s] requeued (reject_on_worker_lost), delivery %d of %u",
                     f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?",
                     f->d.delivery_count, w->poison_limit);
            cel__events_task_rejected(w, f, true);
            cel__consumer_requeue(w, f);
        }
        free(tb);
        return;
    }
    settle_with_exception(w, f, CEL_STATE_FAILURE, "WorkerLostError", "billiard.exceptions", why,
                          tb);
    free(tb);
}

void cel__consumer_revoked(cel_worker *w, struct cel_inflight *f, const char *reason)
{
    cel__inflight_learn_ids(f);
    settle_with_exception(w, f, CEL_STATE_REVOKED, "TaskRevokedError", "celery.exceptions", reason,
                          NULL);
}

void cel__consumer_dead_letter(cel_worker *w, struct cel_inflight *f, const char *reason,
                               const char *exc_type, const char *exc_module, const char *message)
{
    dead_letter(w, f, reason, exc_type, exc_module, message, NULL);
}

static void dead_letter(cel_worker *w, struct cel_inflight *f, const char *reason,
                        const char *exc_type, const char *exc_module, const char *message,
                        const char *traceback)
{
    cel__inflight_learn_ids(f);
    struct cel_settle_item it = {
        .op = CEL_SETTLE_DEAD_LETTER, .state = CEL_STATE_FAILURE, .reason = strdup(reason)};
    if (f->task_id) {
        it.task_id = strdup(f->task_id);
        it.meta = exception_meta(f, "FAILURE", exc_type, exc_module, message, traceback);
        it.meta_len = it.meta ? strlen(it.meta) : 0;
    }
    finish(w, f, &it);
}

void cel__consumer_requeue(cel_worker *w, struct cel_inflight *f)
{
    struct cel_settle_item it = {.op = CEL_SETTLE_REQUEUE};
    finish(w, f, &it);
}

void cel__consumer_repark(cel_worker *w, struct cel_inflight *f, int64_t due_us)
{
    cel__inflight_learn_ids(f); /* the task id goes with the new message */
    struct cel_settle_item it = {.op = CEL_SETTLE_REPARK, .due_us = due_us};
    finish(w, f, &it);
}

/*
 * Whether f is acked late, as its task starts. Only the task definition
 * can make it differ from the worker's setting (a message carries no
 * acks_late), and the parent loaded the same definitions as its children.
 * When the worker acks early and some task says acks_late, the parent
 * looks the task up here, before the early ack it would otherwise send
 * (reading the message's headers: only in that configuration). The other
 * direction needs no look-up: the child's BEGIN frame says so, and the
 * ack goes out then (cel__consumer_on_begin).
 */
static bool starts_acks_late(cel_worker *w, struct cel_inflight *f)
{
    if (w->acks_late || !w->acks_late_overridden)
        return w->acks_late;
    cel__inflight_learn_ids(f);
    const cel_task_def *def = f->task_name ? cel_registry_find(w->reg, f->task_name) : NULL;
    return def && def->acks_late == CEL_TRI_ON;
}

void cel__consumer_ack_early(cel_worker *w, struct cel_inflight *f)
{
    if (!f->policy_known) {
        /* The pools call this first as the task starts to run. */
        cel__events_task_started(w, f);
        f->policy_known = true;
        f->acks_late = starts_acks_late(w, f);
        /* Until a BEGIN frame says otherwise, which the task sends when its
         * limits (run-time ones included) differ from the worker's. */
        f->time_limit = w->exec_env.time_limit;
    }
    if (f->acks_late || f->acked)
        return;
    f->acked = true;
    struct cel_settle_item it = {.op = CEL_SETTLE_EARLY_ACK, .f = f};
    cel__settler_push(w->settler, &it);
}

void cel__consumer_requeue_paused(cel_worker *w)
{
    size_t n = w->held.ready_count;
    for (size_t i = 0; i < n; i++) {
        struct cel_inflight *f = cel__held_pop_ready(&w->held);
        if (f->d.queue && cel__control_queue_paused(w, f->d.queue))
            cel__consumer_requeue(w, f);
        else
            cel__held_push_ready(&w->held, f); /* the others keep their order */
    }
}

void cel__consumer_requeue_waiting(cel_worker *w)
{
    struct cel_inflight *f;
    while ((f = cel__held_pop_ready(&w->held)))
        cel__consumer_requeue(w, f);
    cel__rate_limits_requeue_all(w);
}

void cel__consumer_store_state(cel_worker *w, struct cel_inflight *f, cel_state state, char *meta,
                               size_t len)
{
    cel__inflight_learn_ids(f);
    if (!f->task_id) {
        free(meta);
        return;
    }
    struct cel_settle_item it = {.op = CEL_SETTLE_NONE,
                                 .task_id = strdup(f->task_id),
                                 .state = state,
                                 .meta = meta,
                                 .meta_len = len};
    cel__settler_push(w->settler, &it);
}

void cel__consumer_write_started(cel_worker *w)
{
    if (!w->track_started)
        return;
    int64_t now = cel__mono_us();
    for (struct cel_inflight *f = w->held.head; f; f = f->next) {
        if (!f->started_us || f->started_written ||
            now - f->started_us < CEL_STARTED_AFTER_MS * 1000)
            continue;
        f->started_written = true;
        cel__inflight_learn_ids(f);
        if (!f->task_id)
            continue;
        /* Nothing replaces a STARTED of a task whose result is ignored: it
         * would stay PENDING-looking-alive until it expires. */
        const cel_task_def *def = f->task_name ? cel_registry_find(w->reg, f->task_name) : NULL;
        if (f->ignore_result || (def && def->ignore_result))
            continue;
        json_t *info = json_pack("{s:i, s:s}", "pid", (json_int_t)f->pid, "hostname", w->hostname);
        json_t *meta = cel__result_meta_new(f->task_id, "STARTED", info, NULL, NULL, NULL, 0);
        char *text = meta ? cel__json_dump(meta) : NULL;
        json_decref(meta);
        if (text)
            cel__consumer_store_state(w, f, CEL_STATE_STARTED, text, strlen(text));
    }
}

/* ---- the running task's policy, hard limits, what it sends ---- */

void cel__consumer_on_begin(cel_worker *w, struct cel_inflight *f, const struct cel_task_policy *p)
{
    if (!f->policy_known)
        cel__consumer_ack_early(w, f); /* resolves the worker's defaults first */
    f->begun = true;
    f->time_limit = p->time_limit; /* run-time limits included (execute.c) */
    f->reject_on_worker_lost = p->reject_on_worker_lost;
    if (p->acks_late && f->acked) {
        /* Cannot happen while parent and children share the registry; an
         * ack cannot be taken back, so say so. */
        cel__inflight_learn_ids(f);
        CEL_ERROR(COMP, "Task %s[%s] is acks_late but was acked as it started",
                  f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?");
    }
    f->acks_late = p->acks_late;
    cel__consumer_ack_early(w, f); /* an early-ack task under a late-ack worker: now */
}

void cel__consumer_on_time_limit(cel_worker *w, struct cel_inflight *f, double limit)
{
    cel__inflight_learn_ids(f);
    CEL_ERROR(COMP, "Hard time limit (%gs) exceeded for %s[%s]", limit,
              f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?");
    /* Celery stores TimeLimitExceeded(limit): exc_message is [limit], a
     * number, and acks (acks_on_failure_or_timeout). */
    struct cel_settle_item it = {.op = f->acked ? CEL_SETTLE_RELEASE : CEL_SETTLE_ACK,
                                 .state = CEL_STATE_FAILURE};
    if (f->task_id) {
        json_t *exc = cel__exception_new("TimeLimitExceeded", "billiard.exceptions", NULL);
        if (exc)
            json_object_set_new(exc, "exc_message", json_pack("[f]", limit));
        it.task_id = strdup(f->task_id);
        it.meta = exc_meta(f, "FAILURE", exc, NULL);
        it.meta_len = it.meta ? strlen(it.meta) : 0;
    }
    finish(w, f, &it);
}

void cel__consumer_on_state(cel_worker *w, struct cel_inflight *f, const char *state,
                            const char *meta, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return; /* a progress update is not worth failing the task for */
    memcpy(copy, meta, len);
    copy[len] = '\0';
    cel__consumer_store_state(w, f, cel_state_parse(state), copy, len);
}

/* Copies `len` bytes as a NUL-terminated string; NULL when out of memory. */
static char *copy_bytes(const char *p, size_t len)
{
    char *c = malloc(len + 1);
    if (c) {
        if (len)
            memcpy(c, p, len);
        c[len] = '\0';
    }
    return c;
}

/* Appends u to f's follow-ups (oldest first), or frees it when one of
 * its copies failed (`ok` false). */
static int append_followup(struct cel_inflight *f, struct cel_followup *u, bool ok)
{
    if (!ok) {
        cel__followup_free(u);
        return -1;
    }
    struct cel_followup **tail = &f->followups;
    while (*tail)
        tail = &(*tail)->next;
    *tail = u;
    return 0;
}

int cel__consumer_add_followup(struct cel_inflight *f, const struct cel_frame_publish *pub)
{
    struct cel_followup *u = calloc(1, sizeof *u);
    if (!u)
        return -1;
    u->kind = CEL_FOLLOWUP_PUBLISH;
    u->queue = strdup(pub->queue);
    u->priority = pub->priority;
    u->due_us = pub->due_us;
    u->task_id = strdup(pub->task_id);
    u->len = pub->len;
    u->body = copy_bytes(pub->body, pub->len);
    return append_followup(f, u, u->queue && u->task_id && u->body);
}

int cel__consumer_add_chord_size(struct cel_inflight *f, const char *group_id, int size)
{
    struct cel_followup *u = calloc(1, sizeof *u);
    if (!u)
        return -1;
    u->kind = CEL_FOLLOWUP_CHORD_SIZE;
    u->group_id = strdup(group_id);
    u->size = size;
    return append_followup(f, u, u->group_id != NULL);
}

int cel__consumer_add_chord_join(struct cel_inflight *f, const struct cel_chord_join *j)
{
    struct cel_followup *u = calloc(1, sizeof *u);
    if (!u)
        return -1;
    u->kind = CEL_FOLLOWUP_CHORD_JOIN;
    u->group_id = strdup(j->group_id);
    u->group_index = j->group_index < 0 ? -1 : j->group_index;
    u->task_id = strdup(j->task_id);
    u->root_id = j->root_id ? strdup(j->root_id) : NULL;
    u->body = copy_bytes(j->body, j->body_len);
    u->len = j->body_len;
    u->entry = copy_bytes(j->entry, j->entry_len);
    u->entry_len = j->entry_len;
    return append_followup(
        f, u, u->group_id && u->task_id && (u->root_id || !j->root_id) && u->body && u->entry);
}
