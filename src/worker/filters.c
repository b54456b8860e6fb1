/*
 * filters.c - what a message passes between the broker and the pool.
 *
 * Each filter looks at one held message and either lets it through or
 * settles it itself (through consumer.c). They run on the loop thread
 * for every message, so they must be cheap: a filter that needs the
 * message's ids reads only its headers (cel__inflight_learn_ids).
 *
 * Today: the delivery limit, paused queues, revoked ids and rate limits
 * (revoked before the rate limit: a message that will not run should not
 * take a token). The next one belongs here too: expired.
 */
#include <stdio.h>

#include "core/log.h"
#include "worker/worker_internal.h"

#define COMP "worker"

/*
 * A message delivered more times than task_delivery_limit has taken its
 * worker down each time (a crash under -P solo, an OOM kill, a segfault
 * in the parent): running it again would only repeat that. It goes to
 * the dead-letter store and its client gets WorkerLostError, as it would
 * had a prefork child died under it.
 */
static enum cel_filter_verdict delivery_limit(cel_worker *w, struct cel_inflight *f)
{
    if (!w->delivery_limit || f->d.delivery_count <= (int)w->delivery_limit)
        return CEL_FILTER_PASS;
    cel__inflight_learn_ids(f);
    char why[256];
    snprintf(why, sizeof why,
             "message delivered %d times (task_delivery_limit is %u): the worker was lost "
             "every time it ran it",
             f->d.delivery_count, w->delivery_limit);
    CEL_ERROR(COMP, "Task %s[%s] %s; kept in the dead-letter store",
              f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?", why);
    cel__consumer_dead_letter(w, f, why, "WorkerLostError", "billiard.exceptions", why);
    return CEL_FILTER_DEAD_LETTER;
}

/*
 * A message from a queue paused on the broker side goes back to it. The
 * worker stops fetching from a paused queue, but what its transport
 * fetched before the pause reached the loop (a Redis prefetch, one
 * round trip) arrives afterwards: without this it would run while the
 * queue is paused. One compare per paused queue; none while none is.
 */
static enum cel_filter_verdict paused(cel_worker *w, struct cel_inflight *f)
{
    if (!f->d.queue || !cel__control_queue_paused(w, f->d.queue))
        return CEL_FILTER_PASS;
    cel__consumer_requeue(w, f);
    return CEL_FILTER_HELD;
}

/*
 * A revoked task is not run: REVOKED with TaskRevokedError('revoked') is
 * stored and the message acked, as Celery does. While no revoke is known
 * this costs one call and no parsing (revoke.c).
 */
static enum cel_filter_verdict revoked(cel_worker *w, struct cel_inflight *f)
{
    if (!cel__revoke_active(w))
        return CEL_FILTER_PASS;
    cel__inflight_learn_ids(f);
    if (!f->task_id || !cel__revoke_has(w, f->task_id))
        return CEL_FILTER_PASS;
    CEL_INFO(COMP, "Discarding revoked task: %s[%s]", f->task_name ? f->task_name : "?",
             f->task_id);
    cel__consumer_revoked(w, f, "revoked");
    return CEL_FILTER_SETTLED;
}

/*
 * A task with a rate_limit waits for a token without holding a pool slot
 * (rate_limit.c). When no registered task has a rate limit (w->rate is
 * NULL) this is one pointer test: the message is not even parsed.
 */
static enum cel_filter_verdict rate_limit(cel_worker *w, struct cel_inflight *f)
{
    if (!w->rate)
        return CEL_FILTER_PASS;
    return cel__rate_limit_admit(w, f) ? CEL_FILTER_PASS : CEL_FILTER_HELD;
}

typedef enum cel_filter_verdict (*filter_fn)(cel_worker *w, struct cel_inflight *f);

static const filter_fn filters[] = {delivery_limit, paused, revoked, rate_limit};

enum cel_filter_verdict cel__filters_run(cel_worker *w, struct cel_inflight *f)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        enum cel_filter_verdict v = filters[i](w, f);
        if (v != CEL_FILTER_PASS)
            return v;
    }
    return CEL_FILTER_PASS;
}
