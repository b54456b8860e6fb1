/*
 * signals.c - shutdown, restart and dump requests into the loop.
 *
 * TERM or INT: warm shutdown (stop taking, give back what has not
 * started, finish what runs, settle everything). A second INT, or QUIT:
 * cold shutdown (kill the children, give everything back); with
 * worker_soft_shutdown_timeout (Celery 5.5's soft shutdown) the running
 * tasks first get that long to finish, and a further QUIT or INT kills
 * them at once. HUP: a warm shutdown that ends with a restart request
 * (cel_worker_restart_requested(); the CLI execs itself, as Celery
 * does). USR1: the running tasks and native backtraces go to the log
 * (dump.c); the worker keeps running.
 *
 * libuv turns the signals into loop callbacks, so no handler touches
 * worker state; cel_worker_stop() reaches the loop through a uv_async
 * handle, which is safe from any thread and from a signal handler.
 */
#include <signal.h>
#include <string.h>

#include "core/log.h"
#include "worker/worker_internal.h"

#define COMP     "worker"
#define NSIGNALS 5

static const int handled[NSIGNALS] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
/* The dispositions in place before run(), restored after it. */
static struct sigaction saved[NSIGNALS], saved_pipe;

static void raise_level(cel_worker *w, int want)
{
    int cur = atomic_load(&w->stop_level);
    while (cur < want && !atomic_compare_exchange_weak(&w->stop_level, &cur, want))
        ;
}

/* A cold request: the first one starts the cold (or soft) shutdown, a
 * later one kills what still runs. */
static void cold_request(cel_worker *w)
{
    raise_level(w, atomic_load(&w->stop_level) >= CEL_COLD ? CEL_KILL : CEL_COLD);
}

static void on_signal(uv_signal_t *h, int signum)
{
    cel_worker *w = h->data;
    int level = atomic_load(&w->stop_level);
    switch (signum) {
    case SIGUSR1:
        cel__worker_dump(w);
        return;
    case SIGHUP:
        if (level == CEL_RUNNING) {
            CEL_WARN(COMP, "worker: SIGHUP: warm shutdown for a restart");
            atomic_store(&w->restart, true);
        }
        raise_level(w, CEL_WARM);
        cel__worker_on_stop_level(w);
        return;
    }
    atomic_store(&w->restart, false); /* a stop asked for after a restart wins */
    switch (signum) {
    case SIGQUIT:
        cold_request(w);
        break;
    case SIGINT:
        if (level >= CEL_WARM)
            cold_request(w);
        else
            raise_level(w, CEL_WARM);
        break;
    default:
        raise_level(w, CEL_WARM);
        break;
    }
    cel__worker_on_stop_level(w);
}

static void on_stop_async(uv_async_t *h)
{
    cel__worker_on_stop_level(h->data);
}

int cel__signals_start(cel_worker *w)
{
    atomic_store(&w->restart, false);
    w->soft_started = false;
    /* Before the signals: a cold stop may start a soft shutdown as soon
     * as the pool exists. */
    uv_timer_init(&w->loop, &w->soft_timer);
    w->soft_timer.data = w;
    uv_async_init(&w->loop, &w->stop_async, on_stop_async);
    w->stop_async.data = w;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &saved_pipe);
    for (int i = 0; i < NSIGNALS; i++) {
        sigaction(handled[i], NULL, &saved[i]);
        uv_signal_init(&w->loop, &w->sig[i]);
        w->sig[i].data = w;
        uv_signal_start(&w->sig[i], on_signal, handled[i]);
    }
    w->signals_on = true;
    return 0;
}

void cel__signals_stop(cel_worker *w)
{
    if (!w->signals_on)
        return;
    w->signals_on = false;
    for (int i = 0; i < NSIGNALS; i++) {
        uv_signal_stop(&w->sig[i]);
        uv_close((uv_handle_t *)&w->sig[i], NULL);
        sigaction(handled[i], &saved[i], NULL);
    }
    sigaction(SIGPIPE, &saved_pipe, NULL);
    uv_close((uv_handle_t *)&w->stop_async, NULL);
    uv_close((uv_handle_t *)&w->soft_timer, NULL);
}

void cel_worker_stop(cel_worker *w, int cold)
{
    if (!w)
        return;
    if (cold)
        cold_request(w);
    else
        raise_level(w, CEL_WARM);
    if (atomic_load(&w->async_ready))
        uv_async_send(&w->stop_async);
}

int cel_worker_restart_requested(const cel_worker *w)
{
    return w && atomic_load(&w->restart);
}
