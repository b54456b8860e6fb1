/*
 * pool_solo.c - tasks run in the worker process itself, one at a time.
 *
 * One task runs per loop turn, so signals, the store thread's reports
 * and timers are handled between tasks (Celery's solo pool blocks its
 * loop for the same reason: there is nobody else to run the task). A
 * task that crashes takes the worker with it; the message comes back
 * with its delivery count raised, and the delivery limit (filters.c)
 * ends the cycle.
 *
 * What a running task sends the parent (its policy, states, follow-up
 * publishes) goes through the same consumer.c calls as a prefork child's
 * frames. No hard time limit is enforced here, as in Celery's solo pool:
 * the only process to kill is the worker itself. The soft limit works
 * (the task polls it).
 */
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "celeriac/error.h"
#include "core/clock.h"
#include "worker/worker_internal.h"

struct solo {
    struct cel_pool base;
    uv_idle_t more; /* keeps the loop from sleeping while tasks wait */
    bool stopping;
};

static void on_more(uv_idle_t *h)
{
    (void)h; /* the turn callback does the work */
}

/* The running task's way to the parent: itself, in this process. */
struct solo_io {
    cel_worker *w;
    struct cel_inflight *f;
};

static int io_begin(void *ud, const struct cel_task_policy *p)
{
    struct solo_io *s = ud;
    if (p->time_limit > 0)
        CEL_DEBUG("worker", "hard time limit %gs not enforced under the solo pool", p->time_limit);
    cel__consumer_on_begin(s->w, s->f, p);
    /* An early ack it asked for reaches the broker before the body runs:
     * a crash in the task must not bring it back. */
    cel__settler_flush(s->w->settler);
    return 0;
}

static int io_state(void *ud, const char *state, const char *meta, size_t len)
{
    struct solo_io *s = ud;
    cel__consumer_on_state(s->w, s->f, state, meta, len);
    cel__settler_flush(s->w->settler);
    return 0;
}

static int io_publish(void *ud, const struct cel_frame_publish *p)
{
    struct solo_io *s = ud;
    return cel__consumer_add_followup(s->f, p);
}

static int io_chord_size(void *ud, const char *group_id, int size)
{
    struct solo_io *s = ud;
    return cel__consumer_add_chord_size(s->f, group_id, size);
}

static int io_chord_join(void *ud, const struct cel_chord_join *j)
{
    struct solo_io *s = ud;
    return cel__consumer_add_chord_join(s->f, j);
}

static void solo_dispatch(struct cel_pool *base)
{
    struct solo *p = (struct solo *)base;
    cel_worker *w = base->w;
    struct cel_inflight *f = p->stopping ? NULL : cel__held_pop_ready(&w->held);
    if (f) {
        f->slot = 0;
        f->pid = (int)getpid();
        f->started_us = cel__mono_us();
        cel__consumer_ack_early(w, f);
        /* Hand over what is queued first (the early ack among it), so a
         * crash in this task loses nothing already settled. */
        cel__settler_flush(w->settler);
        struct cel_execution ex;
        struct solo_io sio = {.w = w, .f = f};
        const struct cel_exec_io io = {.ud = &sio,
                                       .begin = io_begin,
                                       .state = io_state,
                                       .publish = io_publish,
                                       .chord_size = io_chord_size,
                                       .chord_join = io_chord_join};
        cel__execute(&w->exec_env, &io, f->d.body, f->d.len, &ex);
        int64_t ran = cel__mono_us() - f->started_us;
        w->runtime_ewma_us += (ran - w->runtime_ewma_us) / 8;
        f->slot = -1;
        cel__consumer_on_outcome(w, f, &ex);
        cel__execution_release(&ex);
    }
    if (w->held.ready_head && !p->stopping)
        uv_idle_start(&p->more, on_more);
    else
        uv_idle_stop(&p->more);
}

static bool solo_busy(const struct cel_pool *base)
{
    (void)base;
    return false; /* a task never outlives its dispatch call */
}

static bool solo_hungry(const struct cel_pool *base)
{
    (void)base;
    return true; /* one task at a time: every result matters now */
}

static void solo_stop(struct cel_pool *base, bool cold)
{
    (void)cold;
    struct solo *p = (struct solo *)base;
    p->stopping = true;
    uv_idle_stop(&p->more);
}

static bool solo_stopped(const struct cel_pool *base)
{
    (void)base;
    return true;
}

static int solo_start(cel_worker *w, struct cel_pool **out)
{
    struct solo *p = calloc(1, sizeof *p);
    if (!p)
        return cel__err(&w->err, CEL_ENOMEM, "out of memory");
    p->base.ops = &cel__pool_solo;
    p->base.w = w;
    uv_idle_init(&w->loop, &p->more);
    p->more.data = p;
    *out = &p->base;
    return CEL_OK;
}

static void solo_closed(uv_handle_t *h)
{
    free(h->data);
}

static void solo_free(struct cel_pool *base)
{
    struct solo *p = (struct solo *)base;
    uv_close((uv_handle_t *)&p->more, solo_closed);
}

/* The task runs in the worker itself: nothing to kill without killing
 * the worker (Celery's solo pool cannot terminate either). */
static bool solo_terminate(struct cel_pool *p, struct cel_inflight *f, int signum)
{
    (void)p;
    (void)f;
    (void)signum;
    return false;
}

static int solo_size(const struct cel_pool *p)
{
    (void)p;
    return 1;
}

/* The one process that runs tasks is the worker itself. */
static size_t solo_pids(const struct cel_pool *p, int *out, size_t max)
{
    (void)p;
    if (max > 0)
        out[0] = (int)getpid();
    return 1;
}

const struct cel_pool_ops cel__pool_solo = {
    .name = "solo",
    .start = solo_start,
    .dispatch = solo_dispatch,
    .busy = solo_busy,
    .hungry = solo_hungry,
    .stop = solo_stop,
    .stopped = solo_stopped,
    .free = solo_free,
    .terminate = solo_terminate,
    .resize = NULL, /* one process, the worker's own */
    .size = solo_size,
    .pids = solo_pids,
};
