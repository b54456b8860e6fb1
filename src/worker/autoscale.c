/*
 * autoscale.c - the pool's size at run time (autoscale.h).
 *
 * Demand is what the pool could use now: its processes that have a task
 * plus the tasks waiting in the ready queue for one (tasks waiting for a
 * rate-limit token are not runnable, so they are not counted). It is
 * measured at the end of every loop turn, so a burst is seen as it
 * arrives:
 *
 *  - up: as soon as demand exceeds the size, the pool grows to it (at
 *    most MAX); the pool's dispatch forks the new children once the
 *    store thread is parked (pool_prefork.c), a turn or two later.
 *  - down: a timer every keepalive compares the size with the highest
 *    demand seen since the previous tick; processes no task needed for a
 *    whole keepalive are retired (never below MIN), and not within a
 *    keepalive of the last growth (Celery's AUTOSCALE_KEEPALIVE rule),
 *    so a load that pauses briefly does not fork and retire children in
 *    a cycle.
 *
 * Celery counts every reserved request as demand; here the pipelined
 * tasks a child already holds count once per child: they wait for that
 * child, and another process would not run them sooner.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "core/log.h"
#include "worker/autoscale.h"
#include "worker/worker_internal.h"

#define COMP "worker"
/* The most processes a pool may have (worker_concurrency's bound). */
#define POOL_MAX 1024

struct cel_autoscale {
    int max;
    int min; /* as given (0 allowed, as in Celery) */
    int64_t keepalive_ms;
    uv_timer_t tick;
    bool ticking;
    int peak;           /* highest demand since the previous tick */
    int64_t last_up_ms; /* monotonic; 0: never grown */
};

/* One process always stays: a pool of none would run nothing until the
 * next turn's growth, and -P prefork promises a process to run tasks. */
static int floor_of(const struct cel_autoscale *a)
{
    return a->min > 1 ? a->min : 1;
}

static bool reply(char *msg, size_t len, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool reply(char *msg, size_t len, bool ok, const char *fmt, ...)
{
    if (msg && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
    }
    return ok;
}

/* The prefetch window follows the processes that may run tasks: the
 * pool's size, or MAX under autoscale (as Celery's), so that there is
 * work waiting to grow for. */
static void follow_window(cel_worker *w)
{
    size_t basis = w->autoscale ? (size_t)w->autoscale->max
                   : w->pool    ? (size_t)w->pool->ops->size(w->pool)
                                : (size_t)w->concurrency;
    w->prefetch_limit = basis * w->prefetch_multiplier;
}

static int demand(const cel_worker *w)
{
    const struct cel_pool *p = w->pool;
    int busy = p->ops->occupied ? p->ops->occupied(p) : p->ops->busy(p);
    size_t waiting = w->held.ready_count;
    return waiting > POOL_MAX ? POOL_MAX + busy : busy + (int)waiting;
}

static int resize(cel_worker *w, int to, const char *why)
{
    int from = w->pool->ops->size(w->pool);
    if (to == from)
        return CEL_OK;
    int rc = w->pool->ops->resize(w->pool, to);
    if (rc != CEL_OK) {
        CEL_WARN(COMP, "%s: cannot resize the pool from %d to %d: %s", why, from, to, w->err.msg);
        return rc;
    }
    CEL_INFO(COMP, "%s: scaling %s %d process%s (%d -> %d)", why, to > from ? "up" : "down",
             to > from ? to - from : from - to, abs(to - from) == 1 ? "" : "es", from, to);
    follow_window(w);
    return CEL_OK;
}

/* What pool_grow and pool_shrink refuse alike: false with the refusal
 * in msg. */
static bool resize_allowed(cel_worker *w, const char *cmd, int n, char *msg, size_t len)
{
    if (w->autoscale)
        return reply(msg, len, false,
                     "%s is not supported with autoscale. Adjust autoscale range instead.", cmd);
    if (!w->pool || !w->pool->ops->resize)
        return reply(msg, len, false, "%s is not supported by the %s pool", cmd,
                     w->pool_ops ? w->pool_ops->name : "current");
    if (atomic_load(&w->stop_level) != CEL_RUNNING)
        return reply(msg, len, false, "%s refused: the worker is shutting down", cmd);
    if (n < 0)
        return reply(msg, len, false, "%s: n must not be negative (got %d)", cmd, n);
    return true;
}

bool cel__pool_grow(cel_worker *w, int n, char *msg, size_t len)
{
    if (!resize_allowed(w, "pool_grow", n, msg, len))
        return false;
    int size = w->pool->ops->size(w->pool);
    if (n > POOL_MAX - size)
        return reply(msg, len, false, "pool_grow: at most %d processes (now %d)", POOL_MAX, size);
    if (resize(w, size + n, "pool_grow") != CEL_OK)
        return reply(msg, len, false, "pool_grow: %s", w->err.msg);
    return reply(msg, len, true, "pool will grow");
}

bool cel__pool_shrink(cel_worker *w, int n, char *msg, size_t len)
{
    if (!resize_allowed(w, "pool_shrink", n, msg, len))
        return false;
    int size = w->pool->ops->size(w->pool);
    if (n >= size)
        return reply(msg, len, false,
                     "pool_shrink: cannot shrink by %d: the pool has %d process%s and keeps one", n,
                     size, size == 1 ? "" : "es");
    if (resize(w, size - n, "pool_shrink") != CEL_OK)
        return reply(msg, len, false, "pool_shrink: %s", w->err.msg);
    return reply(msg, len, true, "pool will shrink");
}

bool cel__autoscale_set(cel_worker *w, int max, int min, char *msg, size_t len)
{
    struct cel_autoscale *a = w->autoscale;
    if (!a || !w->pool)
        return reply(msg, len, false, "ValueError('Autoscale not enabled')");
    int new_max = max < 0 ? a->max : max;
    int new_min = min < 0 ? a->min : min;
    if (new_max < 1 || new_max > POOL_MAX)
        return reply(msg, len, false, "autoscale: max must be between 1 and %d (got %d)", POOL_MAX,
                     new_max);
    if (new_min > new_max)
        return reply(msg, len, false, "autoscale: min (%d) must not exceed max (%d)", new_min,
                     new_max);
    if (atomic_load(&w->stop_level) != CEL_RUNNING)
        return reply(msg, len, false, "autoscale refused: the worker is shutting down");
    a->max = new_max;
    a->min = new_min;
    int size = w->pool->ops->size(w->pool);
    int to = size > a->max ? a->max : size < floor_of(a) ? floor_of(a) : size;
    if (resize(w, to, "autoscale") != CEL_OK)
        return reply(msg, len, false, "autoscale: %s", w->err.msg);
    if (to > size)
        a->last_up_ms = cel__mono_ms();
    follow_window(w);
    CEL_INFO(COMP, "autoscale now max=%d min=%d", a->max, a->min);
    return reply(msg, len, true, "autoscale now max=%d min=%d", a->max, a->min);
}

bool cel__autoscale_info(const cel_worker *w, struct cel_autoscale_info *out)
{
    const struct cel_autoscale *a = w->autoscale;
    if (!a)
        return false;
    out->max = a->max;
    out->min = a->min;
    out->current = w->pool ? w->pool->ops->size(w->pool) : w->concurrency;
    out->qty = w->pool ? demand(w) : 0;
    return true;
}

/* ---- the worker's side -------------------------------------------------- */

/* "MAX" or "MAX,MIN" (Celery's --autoscale: MIN defaults to 0, and the
 * larger number is MAX whichever comes first). */
static int parse_bounds(const char *v, int *max, int *min)
{
    char *end;
    long hi = strtol(v, &end, 10);
    long lo = 0;
    if (end == v)
        return -1;
    while (*end == ' ')
        end++;
    if (*end == ',') {
        const char *p = end + 1;
        lo = strtol(p, &end, 10);
        if (end == p)
            return -1;
        while (*end == ' ')
            end++;
    }
    if (lo > hi) {
        long t = lo;
        lo = hi;
        hi = t;
    }
    if (*end != '\0' || hi < 1 || hi > POOL_MAX || lo < 0)
        return -1;
    *max = (int)hi;
    *min = (int)lo;
    return 0;
}

int cel__autoscale_configure(cel_worker *w)
{
    int64_t mult = cel_config_get_int(w->cfg, "worker_prefetch_multiplier");
    w->prefetch_multiplier = (size_t)(mult > 0 ? mult : 1);
    free(w->autoscale);
    w->autoscale = NULL;
    const char *v = cel_config_get(w->cfg, "worker_autoscale");
    if (v && *v) {
        int max, min;
        if (parse_bounds(v, &max, &min) != 0)
            return cel__err(&w->err, CEL_ECONFIG,
                            "worker_autoscale: expected MAX,MIN (or MAX) with 1 <= MAX <= %d "
                            "and MIN >= 0 (got \"%s\")",
                            POOL_MAX, v);
        if (w->pool_ops != &cel__pool_prefork)
            return cel__err(&w->err, CEL_ECONFIG,
                            "worker_autoscale needs the prefork pool (not -P %s)",
                            w->pool_ops->name);
        double keepalive = cel_config_get_double(w->cfg, "worker_autoscale_keepalive");
        if (keepalive <= 0)
            return cel__err(&w->err, CEL_ECONFIG,
                            "worker_autoscale_keepalive must be above 0: the pool cannot "
                            "shrink as fast as it is measured");
        w->autoscale = calloc(1, sizeof *w->autoscale);
        if (!w->autoscale)
            return cel__err(&w->err, CEL_ENOMEM, "out of memory");
        w->autoscale->max = max;
        w->autoscale->min = min;
        w->autoscale->keepalive_ms = (int64_t)(keepalive * 1000.0);
        if (w->autoscale->keepalive_ms < 1)
            w->autoscale->keepalive_ms = 1;
        /* The pool starts at MIN (Celery's too); worker_concurrency is
         * not used. */
        w->concurrency = floor_of(w->autoscale);
    }
    follow_window(w);
    return CEL_OK;
}

void cel__autoscale_free(cel_worker *w)
{
    free(w->autoscale);
    w->autoscale = NULL;
}

static void on_tick(uv_timer_t *t)
{
    cel_worker *w = t->data;
    struct cel_autoscale *a = w->autoscale;
    if (!w->pool || atomic_load(&w->stop_level) != CEL_RUNNING)
        return;
    int size = w->pool->ops->size(w->pool);
    int needed = a->peak > floor_of(a) ? a->peak : floor_of(a);
    bool settled = !a->last_up_ms || cel__mono_ms() - a->last_up_ms >= a->keepalive_ms;
    if (size > needed && settled)
        resize(w, needed, "autoscale");
    a->peak = demand(w);
}

void cel__autoscale_start(cel_worker *w)
{
    struct cel_autoscale *a = w->autoscale;
    if (!a)
        return;
    a->peak = 0;
    a->last_up_ms = 0;
    uv_timer_init(&w->loop, &a->tick);
    a->tick.data = w;
    uv_timer_start(&a->tick, on_tick, (uint64_t)a->keepalive_ms, (uint64_t)a->keepalive_ms);
    a->ticking = true;
}

void cel__autoscale_stop(cel_worker *w)
{
    struct cel_autoscale *a = w->autoscale;
    if (!a || !a->ticking)
        return;
    uv_timer_stop(&a->tick);
    uv_close((uv_handle_t *)&a->tick, NULL);
    a->ticking = false;
}

void cel__autoscale_on_turn(cel_worker *w)
{
    struct cel_autoscale *a = w->autoscale;
    if (!a || !w->pool || atomic_load(&w->stop_level) != CEL_RUNNING)
        return;
    int want = demand(w);
    if (want > a->peak)
        a->peak = want;
    int size = w->pool->ops->size(w->pool);
    if (want <= size || size >= a->max)
        return;
    if (resize(w, want < a->max ? want : a->max, "autoscale") == CEL_OK)
        a->last_up_ms = cel__mono_ms();
}
