/*
 * rate_limit.c - per-task-name rate limits (a task definition's
 * rate_limit, Celery's syntax: core/rate.h).
 *
 * A message of a limited task that finds no token waits here, on a list
 * per task name, off the ready queue: it holds no pool slot and other
 * task names keep flowing past it. A libuv timer per name releases the
 * oldest waiting message when its token is due, in arrival order.
 *
 * Scopes (worker_rate_limit_scope):
 *  - local: a token bucket per name in this worker (Celery's behaviour:
 *    kombu's TokenBucket, capacity 1; n workers run n times the rate);
 *  - global: the bucket is the broker's (rate_acquire), shared by every
 *    worker. The loop never calls the broker: the oldest waiting message
 *    of a name asks the store thread (cel__settler_rate_request), which
 *    answers "granted" or "wait this long" in its report; one request per
 *    name is out at a time, so a long list costs no more broker traffic
 *    than a short one.
 *
 * The prefetch window: waiting messages are reserved, so they would
 * count against the window and, with many messages of one limited task
 * at the head of a queue, fill it and starve every other task behind
 * them (Celery's behaviour). Here they are left out of the count
 * (cel__rate_limits_uncounted()), so the worker keeps fetching past
 * them, and each name keeps at most about WAIT_SECONDS of its rate
 * waiting in memory (wait_bound()). A message past that bound is parked
 * on the broker (published again with a due time, like a countdown, and
 * the original acked) due shortly before its token would come, so a
 * worker's memory stays bounded, one worker does not hoard a queue of
 * limited tasks its peers could run, and tasks queued behind them are
 * reached at once. A parked message loses its priority.
 *
 * Cost: when no registered task is limited, w->rate is NULL and the
 * filter returns at once. Otherwise a message whose envelope does not
 * contain a limited task's name anywhere (memmem) cannot be of that task
 * and passes without being parsed; only the others have their headers
 * read (cel__inflight_learn_ids). The shortcut needs the name to appear
 * verbatim in the JSON, so a name JSON may escape (non-ASCII, quotes,
 * '/', control characters) turns it off. Loop thread only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/rate.h"
#include "worker/worker_internal.h"

#define COMP "worker"
/* Waiting messages per name: about this many seconds of its rate, at
 * least WAIT_MIN, at most WAIT_MAX (see above). A parked message is due
 * WAIT_LEAD_SECONDS before its token, to be back in time. */
#define WAIT_SECONDS      2.0
#define WAIT_MIN          8
#define WAIT_MAX          10000
#define WAIT_LEAD_SECONDS 1.0
/* A request the broker failed is asked again after this long. */
#define RETRY_AFTER_FAIL_MS 1000

struct rate_entry {
    cel_worker *w;
    const char *name; /* the registry's definition's */
    size_t name_len;
    double per_sec;             /* 0: limit lifted at run time (the rate_limit command) */
    char *text;                 /* the rate as set at run time; NULL: the definition's */
    struct cel_token_bucket tb; /* local scope */
    /* Waiting messages, oldest first, linked through ready_next: a
     * message waits for a token or for the pool, never for both. */
    struct cel_inflight *head, *tail;
    size_t nwait;
    size_t bound;         /* most messages waiting here; the rest are parked */
    int64_t parked_until; /* wall µs: tokens spoken for by parked messages */
    uv_timer_t timer;
    bool asking; /* global: a request is with the store thread */
};

struct cel_rate_limits {
    struct rate_entry *v;
    size_t n;
    bool global;
    bool timers;      /* timers initialised on the current loop */
    bool always_read; /* a name may be escaped in JSON: no memmem shortcut */
};

/* True when JSON writers put `name` into a string as it is. */
static bool verbatim_in_json(const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '/')
            return false;
    return true;
}

/* Messages of a name that may wait here (see the top comment). */
static size_t wait_bound(double per_sec)
{
    double bound = ceil(per_sec * WAIT_SECONDS);
    return bound < WAIT_MIN ? WAIT_MIN : bound > WAIT_MAX ? WAIT_MAX : (size_t)bound;
}

int cel__rate_limits_configure(cel_worker *w)
{
    const char *scope = cel_config_get(w->cfg, "worker_rate_limit_scope");
    bool global = scope && strcmp(scope, "global") == 0;
    size_t count = cel_registry_count(w->reg), n = 0;
    struct rate_entry *v = NULL;
    for (size_t i = 0; i < count; i++) {
        const cel_task_def *def = cel_registry_at(w->reg, i);
        if (!def->rate_limit)
            continue;
        double per_sec;
        char why[160];
        if (cel__rate_parse(def->rate_limit, &per_sec, why, sizeof why) != CEL_OK) {
            free(v);
            return cel__err(&w->err, CEL_ECONFIG, "task '%.100s': bad rate_limit: %s", def->name,
                            why);
        }
        if (per_sec == 0)
            continue; /* "0": no limit, as in Celery */
        if (!v && !(v = calloc(count, sizeof *v)))
            return cel__err(&w->err, CEL_ENOMEM, "out of memory");
        v[n++] = (struct rate_entry){
            .w = w, .name = def->name, .name_len = strlen(def->name), .per_sec = per_sec};
        v[n - 1].bound = wait_bound(per_sec);
    }
    if (!n)
        return CEL_OK;
    w->rate = calloc(1, sizeof *w->rate);
    if (!w->rate) {
        free(v);
        return cel__err(&w->err, CEL_ENOMEM, "out of memory");
    }
    *w->rate = (struct cel_rate_limits){.v = v, .n = n, .global = global};
    for (size_t i = 0; i < n; i++)
        w->rate->always_read |= !verbatim_in_json(v[i].name);
    return CEL_OK;
}

void cel__rate_limits_start(cel_worker *w)
{
    struct cel_rate_limits *r = w->rate;
    if (!r || r->timers)
        return;
    int64_t now = cel__mono_us();
    for (size_t i = 0; i < r->n; i++) {
        struct rate_entry *e = &r->v[i];
        cel__bucket_init(&e->tb, e->per_sec, now);
        e->asking = false;
        e->head = e->tail = NULL; /* a failed earlier run freed what was held */
        e->nwait = 0;
        uv_timer_init(&w->loop, &e->timer);
        e->timer.data = e;
    }
    r->timers = true;
}

void cel__rate_limits_stop(cel_worker *w)
{
    struct cel_rate_limits *r = w->rate;
    if (!r || !r->timers)
        return;
    for (size_t i = 0; i < r->n; i++)
        uv_close((uv_handle_t *)&r->v[i].timer, NULL);
    r->timers = false;
}

void cel__rate_limits_free(cel_worker *w)
{
    if (!w->rate)
        return;
    for (size_t i = 0; i < w->rate->n; i++)
        free(w->rate->v[i].text);
    free(w->rate->v);
    free(w->rate);
    w->rate = NULL;
}

static struct rate_entry *find(const struct cel_rate_limits *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

static void release_head(struct rate_entry *e)
{
    struct cel_inflight *f = e->head;
    if (!f)
        return;
    e->head = f->ready_next;
    if (!e->head)
        e->tail = NULL;
    f->ready_next = NULL;
    e->nwait--;
    cel__held_push_ready(&e->w->held, f);
}

static void on_timer(uv_timer_t *t);

static void arm(struct rate_entry *e, int64_t wait_us)
{
    uv_timer_start(&e->timer, on_timer, (uint64_t)((wait_us + 999) / 1000), 0);
}

/* Moves on what waits for `e`: releases what the local bucket allows and
 * arms the timer for the next token, or asks the broker for one. */
static void pump(struct rate_entry *e)
{
    if (!e->head || uv_is_active((uv_handle_t *)&e->timer))
        return;
    cel_worker *w = e->w;
    if (w->rate->global) {
        if (e->asking || !w->settler)
            return;
        if (cel__settler_rate_request(w->settler, e->name, e->per_sec, e) == CEL_OK)
            e->asking = true;
        else
            arm(e, RETRY_AFTER_FAIL_MS * 1000);
        return;
    }
    int64_t wait;
    while (e->head && (wait = cel__bucket_take(&e->tb, cel__mono_us())) == 0)
        release_head(e);
    if (e->head)
        arm(e, wait);
}

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* Parks f on the broker due when, at this worker's rate, the messages
 * waiting and parked before it have had their tokens (less a lead). */
static void park(struct rate_entry *e, struct cel_inflight *f)
{
    int64_t step = (int64_t)(1e6 / e->per_sec);
    int64_t due = cel__wall_us() + (int64_t)e->nwait * step - (int64_t)(WAIT_LEAD_SECONDS * 1e6);
    if (due < e->parked_until)
        due = e->parked_until;
    e->parked_until = due + step;
    CEL_DEBUG(COMP, "Task %s[%s] parked on the broker for %.1f s (rate limit)", e->name,
              f->task_id ? f->task_id : "?", (double)(due - cel__wall_us()) / 1e6);
    cel__consumer_repark(e->w, f, due);
}

/* False when f certainly is of no limited task (see the top comment). */
static bool maybe_limited(const struct cel_rate_limits *r, const struct cel_inflight *f)
{
    if (r->always_read || f->ids_known)
        return true;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].per_sec > 0 && memmem(f->d.body, f->d.len, r->v[i].name, r->v[i].name_len))
            return true;
    return false;
}

bool cel__rate_limit_admit(cel_worker *w, struct cel_inflight *f)
{
    if (!maybe_limited(w->rate, f))
        return true;
    cel__inflight_learn_ids(f);
    struct rate_entry *e = f->task_name ? find(w->rate, f->task_name) : NULL;
    if (!e || e->per_sec <= 0)
        return true;
    /* Local scope, nobody waiting, a token there: run it now. */
    if (!w->rate->global && !e->head && cel__bucket_take(&e->tb, cel__mono_us()) == 0)
        return true;
    if (e->nwait >= e->bound) {
        park(e, f);
        return false;
    }
    CEL_DEBUG(COMP, "Task %s[%s] waits for its rate limit", e->name, f->task_id ? f->task_id : "?");
    f->ready_next = NULL;
    if (e->tail)
        e->tail->ready_next = f;
    else
        e->head = f;
    e->tail = f;
    e->nwait++;
    pump(e);
    return false;
}

void cel__rate_limits_on_answers(cel_worker *w, const struct cel_rate_answer *a, size_t n)
{
    if (!w->rate || !w->rate->timers)
        return; /* the run is over (a last report while the store thread is freed) */
    for (size_t i = 0; i < n; i++) {
        struct rate_entry *e = a[i].key;
        e->asking = false;
        if (a[i].rc != CEL_OK) {
            arm(e, RETRY_AFTER_FAIL_MS * 1000); /* logged by the store thread */
            continue;
        }
        if (a[i].wait_us > 0) {
            arm(e, a[i].wait_us);
            continue;
        }
        /* A token taken with nobody waiting any more (given back at a
         * stop) is lost: the limit errs on the slow side. */
        release_head(e);
        pump(e);
    }
}

size_t cel__rate_limits_uncounted(const cel_worker *w)
{
    size_t n = 0;
    for (size_t i = 0; w->rate && i < w->rate->n; i++)
        n += w->rate->v[i].nwait; /* each at most its bound */
    return n;
}

void cel__rate_limits_requeue_all(cel_worker *w)
{
    for (size_t i = 0; w->rate && i < w->rate->n; i++) {
        struct rate_entry *e = &w->rate->v[i];
        if (w->rate->timers)
            uv_timer_stop(&e->timer);
        while (e->head) {
            struct cel_inflight *f = e->head;
            e->head = f->ready_next;
            f->ready_next = NULL;
            cel__consumer_requeue(w, f);
        }
        e->tail = NULL;
        e->nwait = 0;
    }
}

/* ---- changes at run time (the rate_limit control command) ---- */

/* The entry for def, made when missing. The array has room for every
 * registered task from the start, so entries never move: the store
 * thread's rate answers point at them. */
static struct rate_entry *entry_for(cel_worker *w, const cel_task_def *def)
{
    size_t count = cel_registry_count(w->reg);
    if (!w->rate) {
        struct cel_rate_limits *r = calloc(1, sizeof *r);
        struct rate_entry *v = count ? calloc(count, sizeof *v) : NULL;
        if (!r || !v) {
            free(r);
            free(v);
            return NULL;
        }
        const char *scope = cel_config_get(w->cfg, "worker_rate_limit_scope");
        *r = (struct cel_rate_limits){
            .v = v, .global = scope && strcmp(scope, "global") == 0, .timers = true};
        w->rate = r;
    } else if (!w->rate->v) {
        if (!(w->rate->v = calloc(count, sizeof *w->rate->v)))
            return NULL;
    }
    struct cel_rate_limits *r = w->rate;
    struct rate_entry *e = find(r, def->name);
    if (e || r->n >= count)
        return e;
    e = &r->v[r->n++];
    *e = (struct rate_entry){.w = w, .name = def->name, .name_len = strlen(def->name)};
    r->always_read |= !verbatim_in_json(def->name);
    if (r->timers) {
        uv_timer_init(&w->loop, &e->timer);
        e->timer.data = e;
    }
    return e;
}

int cel__rate_limit_set(cel_worker *w, const char *name, const char *text, char *why, size_t len)
{
    const cel_task_def *def = cel_registry_find(w->reg, name);
    if (!def) {
        snprintf(why, len, "unknown task");
        return CEL_ENOTFOUND;
    }
    double per_sec = 0;
    if (text && *text && cel__rate_parse(text, &per_sec, why, len) != CEL_OK)
        return CEL_EINVAL;
    char *copy = strdup(text ? text : "");
    struct rate_entry *e = copy ? entry_for(w, def) : NULL;
    if (!e) {
        free(copy);
        snprintf(why, len, "out of memory");
        return CEL_ENOMEM;
    }
    free(e->text);
    e->text = copy;
    e->per_sec = per_sec;
    if (w->rate->timers)
        uv_timer_stop(&e->timer);
    if (per_sec <= 0) {
        /* Lifted: what waited runs now, in order. */
        while (e->head)
            release_head(e);
        return CEL_OK;
    }
    e->bound = wait_bound(per_sec);
    e->parked_until = 0;
    cel__bucket_init(&e->tb, per_sec, cel__mono_us());
    if (w->rate->timers)
        pump(e);
    return CEL_OK;
}

const char *cel__rate_limit_text(const cel_worker *w, const cel_task_def *def)
{
    const struct rate_entry *e = w->rate ? find(w->rate, def->name) : NULL;
    if (e && e->text) /* set at run time; "0" lifts it, and shows none */
        return e->per_sec > 0 ? e->text : NULL;
    return def->rate_limit;
}
