/*
 * worker.c - the worker's lifecycle and its loop.
 *
 * The parent is one libuv loop: child sockets (pool_prefork.c), signals
 * (signals.c), the store thread's reports (settle.c), timers. Nothing on
 * the loop blocks on the broker or the result store: every such call
 * runs on the store thread. At the end of each loop turn (a uv_prepare
 * callback) the worker dispatches ready messages to the pool, hands what
 * finished to the store thread in one batch, and tells it how many more
 * messages fit in the prefetch window.
 *
 * Shutdown: warm (TERM/INT) stops taking, gives back what has not
 * started, lets the running tasks finish and settles everything; cold
 * (QUIT or a second INT) kills the children and gives everything back.
 * Either way the store thread gets a deadline to land what is left.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "celeriac/error.h"
#include "core/clock.h"
#include "core/log.h"
#include "worker/autoscale.h"
#include "worker/worker_internal.h"

#define COMP "worker"
/* How long the store thread may keep retrying writes at shutdown. */
#define SETTLE_DEADLINE_WARM_MS 30000
#define SETTLE_DEADLINE_COLD_MS 3000

/* ---- configuration ----------------------------------------------------- */

static int add_queue(cel_worker *w, const char *name, size_t n)
{
    for (size_t i = 0; i < w->nqueues; i++)
        if (strlen(w->queues[i]) == n && memcmp(w->queues[i], name, n) == 0)
            return CEL_OK;
    if (w->nqueues == CEL_WORKER_MAX_QUEUES)
        return cel__err(&w->err, CEL_ECONFIG, "too many queues (at most %d)",
                        CEL_WORKER_MAX_QUEUES);
    w->queues[w->nqueues] = strndup(name, n);
    if (!w->queues[w->nqueues])
        return CEL_ENOMEM;
    w->nqueues++;
    return CEL_OK;
}

/* worker_queues (-Q) when given; otherwise task_default_queue plus every
 * queue a registered task names in its definition, so a module that
 * declares `queue = "images"` for a task is served without extra flags. */
static int parse_queues(cel_worker *w)
{
    const char *list = cel_config_get(w->cfg, "worker_queues");
    bool explicit_list = list && *list;
    if (!explicit_list)
        list = cel_config_get(w->cfg, "task_default_queue");
    int rc;
    const char *p = list;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n > 0 && (rc = add_queue(w, p, n)) != CEL_OK)
            return rc;
        p = comma ? comma + 1 : NULL;
    }
    for (size_t i = 0; !explicit_list && i < cel_registry_count(w->reg); i++) {
        const char *q = cel_registry_at(w->reg, i)->queue;
        if (q && *q && (rc = add_queue(w, q, strlen(q))) != CEL_OK)
            return rc;
    }
    if (w->nqueues == 0)
        return cel__err(&w->err, CEL_ECONFIG, "no queue to consume from");
    return CEL_OK;
}

static int configure(cel_worker *w)
{
    const char *name = cel_config_get(w->cfg, "worker_hostname");
    int nrc = cel_nodename_expand(name, NULL, w->hostname, sizeof w->hostname);
    if (nrc != CEL_OK) {
        w->hostname[0] = '\0';
        return cel__err(&w->err, CEL_ECONFIG,
                        nrc == CEL_ETOOBIG ? "worker_hostname '%s' is too long"
                                           : "worker_hostname '%s': unknown abbreviation (known: "
                                             "%%h host name, %%n host without domain, %%d domain, "
                                             "%%i, %%I)",
                        name);
    }
    w->soft_shutdown_ms =
        (int64_t)(cel_config_get_double(w->cfg, "worker_soft_shutdown_timeout") * 1000.0);
    const char *pool = cel_config_get(w->cfg, "worker_pool");
    w->pool_ops = pool && strcmp(pool, "solo") == 0 ? &cel__pool_solo : &cel__pool_prefork;
    int64_t c = cel_config_get_int(w->cfg, "worker_concurrency");
    if (c <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        c = ncpu > 0 ? ncpu : 1;
    }
    w->concurrency = w->pool_ops == &cel__pool_solo ? 1 : (int)c;
    double vt = cel_config_get_double(w->cfg, "broker_visibility_timeout");
    w->lease_ms = vt > 0 ? (int64_t)(vt * 1000) : 0; /* 0: the transport's, at open */
    w->result_ttl_s = (int64_t)cel_config_get_double(w->cfg, "result_expires");
    int64_t mtpc = cel_config_get_int(w->cfg, "worker_max_tasks_per_child");
    w->max_tasks_per_child = mtpc > 0 ? (unsigned)mtpc : 0;
    int64_t limit = cel_config_get_int(w->cfg, "task_delivery_limit");
    w->delivery_limit = limit > 0 ? (unsigned)limit : 0;
    w->track_started = cel_config_get_int(w->cfg, "task_track_started") != 0;
    w->acks_late = cel_config_get_int(w->cfg, "task_acks_late") != 0;
    atomic_store(&w->task_events, cel_config_get_int(w->cfg, "worker_send_task_events") != 0);
    w->exec_env = (struct cel_exec_env){.reg = w->reg,
                                        .hostname = w->hostname,
                                        .acks_late = w->acks_late,
                                        .track_started = w->track_started,
                                        .cfg = w->cfg,
                                        .result_ttl_s = w->result_ttl_s};
    /* time limits, worker failures, recycling by memory */
    w->exec_env.time_limit = cel_config_get_double(w->cfg, "task_time_limit");
    w->exec_env.soft_time_limit = cel_config_get_double(w->cfg, "task_soft_time_limit");
    /* Here, not at run: the pool forks its children after this and they
     * must share the mapping. */
    w->time_limits = cel__time_limit_table_new();
    if (!w->time_limits)
        return cel__err(&w->err, CEL_ENOMEM, "cannot map the time limit table");
    w->exec_env.time_limits = w->time_limits;
    int64_t poison = cel_config_get_int(w->cfg, "task_poison_limit");
    w->poison_limit = poison > 0 ? (unsigned)poison : 0;
    int64_t mem = cel_config_get_int(w->cfg, "worker_max_memory_per_child");
    w->max_memory_kib = mem > 0 ? (long)mem : 0;
    w->acks_late_overridden = false;
    for (size_t i = 0; !w->acks_late && i < cel_registry_count(w->reg); i++)
        if (cel_registry_at(w->reg, i)->acks_late == CEL_TRI_ON)
            w->acks_late_overridden = true;
    int rc = cel__autoscale_configure(w);
    if (rc == CEL_OK)
        rc = cel__rate_limits_configure(w);
    return rc == CEL_OK ? parse_queues(w) : rc;
}

cel_worker *cel_worker_new(const cel_config *cfg, const cel_registry *reg)
{
    cel_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cfg = cfg ? cel_config_dup(cfg) : cel_config_new();
    w->reg = reg;
    if (!w->cfg) {
        free(w);
        return NULL;
    }
    /* Resolved once, so the banner and run() agree; an error is kept and
     * returned by run(). */
    w->config_rc = configure(w);
    return w;
}

void cel_worker_free(cel_worker *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nqueues; i++)
        free(w->queues[i]);
    cel__rate_limits_free(w);
    cel__control_state_free(w);
    cel__time_limit_table_free(w->time_limits);
    cel__autoscale_free(w);
    cel_config_free(w->cfg);
    free(w);
}

const char *cel_worker_errmsg(const cel_worker *w)
{
    return w ? w->err.msg : "";
}

const char *cel_worker_nodename(const cel_worker *w)
{
    return w && w->config_rc == CEL_OK ? w->hostname : NULL;
}

/* ---- the loop turn ----------------------------------------------------- */

static void on_started_timer(uv_timer_t *t)
{
    cel__consumer_write_started(t->data);
}

bool cel__worker_killing(const cel_worker *w)
{
    int level = atomic_load(&w->stop_level);
    return level >= CEL_KILL || (level >= CEL_COLD && w->soft_shutdown_ms <= 0);
}

static void begin_exit(cel_worker *w)
{
    w->exiting = true;
    uv_timer_stop(&w->soft_timer); /* nothing left to kill */
    cel__consumer_requeue_waiting(w);
    bool cold = cel__worker_killing(w);
    cel__settler_stop(w->settler,
                      cel__mono_ms() + (cold ? SETTLE_DEADLINE_COLD_MS : SETTLE_DEADLINE_WARM_MS));
}

static void on_soft_timeout(uv_timer_t *t)
{
    cel_worker *w = t->data;
    CEL_WARN(COMP,
             "worker: soft shutdown timeout (%.1f s) reached: killing the tasks still "
             "running",
             (double)w->soft_shutdown_ms / 1000.0);
    int cur = atomic_load(&w->stop_level);
    while (cur < CEL_KILL && !atomic_compare_exchange_weak(&w->stop_level, &cur, CEL_KILL))
        ;
    cel__worker_on_stop_level(w);
}

/* Celery 5.5's soft shutdown: a cold stop first waits (as a warm one
 * does) for the running tasks, up to worker_soft_shutdown_timeout. */
static void begin_soft_shutdown(cel_worker *w)
{
    w->soft_started = true;
    CEL_WARN(COMP,
             "worker: Cold shutdown (MainProcess): soft shutdown first, the running tasks have "
             "%.1f s to finish (SIGQUIT again to kill them now)",
             (double)w->soft_shutdown_ms / 1000.0);
    cel__consumer_requeue_waiting(w);
    w->pool->ops->stop(w->pool, false);
    uv_timer_start(&w->soft_timer, on_soft_timeout, (uint64_t)w->soft_shutdown_ms, 0);
}

void cel__worker_on_stop_level(cel_worker *w)
{
    int level = atomic_load(&w->stop_level);
    if (!level || w->announced >= level || !w->pool)
        return;
    w->announced = level;
    if (level == CEL_COLD && !cel__worker_killing(w)) {
        if (!w->soft_started)
            begin_soft_shutdown(w);
        return;
    }
    bool kill = cel__worker_killing(w);
    if (level >= CEL_KILL && w->soft_started)
        uv_timer_stop(&w->soft_timer);
    else
        CEL_WARN(COMP, "worker: %s shutdown (MainProcess)", kill ? "Cold" : "Warm");
    cel__consumer_requeue_waiting(w);
    w->pool->ops->stop(w->pool, kill);
    if (w->exiting && kill) /* cut a warm wait for the store short */
        cel__settler_stop(w->settler, cel__mono_ms() + SETTLE_DEADLINE_COLD_MS);
}

static void on_turn(uv_prepare_t *h)
{
    cel_worker *w = h->data;
    if (atomic_load(&w->stop_level) > w->announced)
        cel__worker_on_stop_level(w);
    bool stopping = atomic_load(&w->stop_level) != CEL_RUNNING;
    if (stopping)
        cel__consumer_requeue_waiting(w); /* arrived after the stop */
    cel__autoscale_on_turn(w);            /* before dispatch, which starts forking what it added */
    w->pool->ops->dispatch(w->pool);
    if (w->track_started) {
        bool busy = w->pool->ops->busy(w->pool);
        bool on = uv_is_active((uv_handle_t *)&w->started);
        if (busy && !on)
            uv_timer_start(&w->started, on_started_timer, CEL_STARTED_AFTER_MS,
                           CEL_STARTED_AFTER_MS);
        else if (!busy && on)
            uv_timer_stop(&w->started);
    }
    if (stopping && !w->exiting && !w->pool->ops->busy(w->pool) && w->pool->ops->stopped(w->pool))
        begin_exit(w);
    /* Results may wait up to 1 ms to share a commit only while tasks are
     * short and every child has more queued: then nobody waits on them. */
    bool urgent = stopping || w->runtime_ewma_us >= CEL_PIPELINE_BELOW_US ||
                  (!w->held.ready_head && w->pool->ops->hungry(w->pool));
    cel__control_on_turn(w);
    cel__settler_set_gather(w->settler, urgent ? 0 : CEL_GATHER_US);
    cel__settler_flush(w->settler);
    cel__consumer_update_room(w);
    if (w->exiting && cel__settler_done(w->settler))
        uv_stop(&w->loop);
}

/* ---- connecting -------------------------------------------------------- */

static void on_wait_timer(uv_timer_t *t)
{
    (void)t;
}

/* Sleeps up to ms on the loop, or until a stop is asked for. */
static void sleep_unless_stopped(cel_worker *w, int64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&w->loop, &t);
    uv_timer_start(&t, on_wait_timer, (uint64_t)ms, 0);
    while (uv_is_active((uv_handle_t *)&t) && !atomic_load(&w->stop_level))
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
}

static int open_stores(cel_worker *w, struct cel_broker **b, struct cel_backend **k)
{
    int rc = cel__broker_open(NULL, w->cfg, b, &w->err);
    if (rc != CEL_OK)
        return rc;
    if (w->lease_ms <= 0)
        w->lease_ms = (*b)->ops->default_lease_ms > 0 ? (*b)->ops->default_lease_ms : 120000;
    return cel__backend_open(NULL, w->cfg, k, &w->err);
}

/*
 * A broker that is down when the worker starts (a reboot that brought the
 * worker up before Redis) is waited for with backoff, as Celery does with
 * broker_connection_retry_on_startup, and so is a database file another
 * process keeps locked; other errors (a bad URL, a file that cannot be
 * created) end the start at once. TERM or INT stop the
 * waiting.
 */
static int open_stores_retrying(cel_worker *w, struct cel_broker **b, struct cel_backend **k)
{
    int64_t backoff_ms = 500;
    for (;;) {
        *b = NULL;
        *k = NULL;
        int rc = open_stores(w, b, k);
        if (rc == CEL_OK)
            return CEL_OK;
        cel__backend_close(*k);
        cel__broker_close(*b);
        *b = NULL;
        *k = NULL;
        /* A database file locked by another process past the open's own
         * retries is waited for like a broker that is down. */
        if (rc != CEL_ECONNECT && rc != CEL_EDISCONNECTED && rc != CEL_EBUSY)
            return rc;
        CEL_ERROR(COMP, "consumer: cannot connect: %s; trying again in %.1f s", w->err.msg,
                  (double)backoff_ms / 1000.0);
        sleep_unless_stopped(w, backoff_ms);
        if (atomic_load(&w->stop_level))
            return CEL_OK; /* asked to stop while waiting: a clean shutdown */
        backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
    }
}

/* ---- run ---------------------------------------------------------------- */

static void free_held(cel_worker *w)
{
    /* Messages the loop still holds at the very end (a failed start): they
     * stay reserved and return when their leases run out. */
    while (w->held.head) {
        struct cel_inflight *f = w->held.head;
        cel__held_remove(&w->held, f);
        cel__inflight_free(f);
    }
    memset(&w->held, 0, sizeof w->held);
}

int cel_worker_run(cel_worker *w)
{
    if (!w)
        return CEL_EINVAL;
    if (w->config_rc != CEL_OK)
        return w->config_rc;
    cel__err_clear(&w->err);
    if (uv_loop_init(&w->loop) != 0)
        return cel__err(&w->err, CEL_EIO, "cannot create the event loop");
    atomic_store(&w->stop_level, CEL_RUNNING);
    w->announced = 0;
    w->exiting = false;
    w->received = 0;
    w->runtime_ewma_us = 10 * CEL_PIPELINE_BELOW_US;
    w->run_started_us = cel__mono_us();
    cel__signals_start(w);
    atomic_store(&w->async_ready, true);

    struct cel_broker *b = NULL;
    struct cel_backend *k = NULL;
    int rc = open_stores_retrying(w, &b, &k);
    if (rc != CEL_OK || !b)
        goto out_loop;
    /* Children first, while this process has no thread of ours (see
     * spawn_missing() in pool_prefork.c). */
    rc = w->pool_ops->start(w, &w->pool);
    if (rc == CEL_OK)
        rc = cel__control_start(w);
    if (rc == CEL_OK)
        rc = cel__revoke_start(w, b); /* revokes and paused queues known before the first fetch */
    const char *fetch_from[CEL_WORKER_MAX_QUEUES];
    size_t nfetch = 0;
    for (size_t i = 0; i < w->nqueues; i++)
        if (!cel__control_queue_paused(w, w->queues[i]))
            fetch_from[nfetch++] = w->queues[i];
    struct cel_settler_config sc = {
        .loop = &w->loop,
        .queues = fetch_from,
        .nqueues = nfetch,
        .lease_ms = w->lease_ms,
        .result_ttl_s = w->result_ttl_s,
        .on_report = cel__consumer_on_report,
        .ud = w,
    };
    if (rc == CEL_OK)
        rc = cel__settler_start(&w->settler, b, k, &sc, &w->err);
    /* worker-online, then heartbeats. Events are advisory: a worker
     * whose events cannot start still runs its tasks. */
    if (rc == CEL_OK && w->settler && cel__events_start(w) != CEL_OK) {
        CEL_WARN(COMP, "no monitoring events: %s", w->err.msg);
        cel__events_stop(w);
        cel__err_clear(&w->err);
    }
    if (!w->settler) {
        cel__backend_close(k);
        cel__broker_close(b);
        goto out_pool;
    }

    uv_prepare_init(&w->loop, &w->turn);
    w->turn.data = w;
    uv_prepare_start(&w->turn, on_turn);
    uv_timer_init(&w->loop, &w->started);
    w->started.data = w;
    cel__rate_limits_start(w);
    cel__autoscale_start(w);
    CEL_INFO(COMP, "%s ready.", w->hostname);
    cel__consumer_update_room(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_prepare_stop(&w->turn);
    uv_close((uv_handle_t *)&w->turn, NULL);
    uv_close((uv_handle_t *)&w->started, NULL);
    cel__rate_limits_stop(w);
    cel__autoscale_stop(w);

out_pool:
    if (w->pool) {
        if (!w->exiting) {
            /* A failed start: stop what did start. */
            atomic_store(&w->stop_level, CEL_COLD);
            w->pool->ops->stop(w->pool, true);
        }
        w->pool->ops->free(w->pool);
        w->pool = NULL;
    }
    if (w->settler) {
        cel__consumer_requeue_waiting(w);
        cel__settler_flush(w->settler);
        cel__settler_free(w->settler);
        w->settler = NULL;
    }
out_loop:
    cel__events_stop(w); /* after the last task's record: worker-offline last */
    cel__revoke_stop(w);
    cel__control_stop(w);
    free_held(w);
    atomic_store(&w->async_ready, false);
    cel__signals_stop(w);
    while (uv_run(&w->loop, UV_RUN_NOWAIT))
        ;
    if (uv_loop_close(&w->loop) != 0)
        CEL_DEBUG(COMP, "event loop closed with handles still open");
    return rc;
}
