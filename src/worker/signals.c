/*
 * signals.c - shutdown requests into the loop.
 *
 * TERM or INT: warm shutdown (stop taking, give back what has not
 * started, finish what runs, settle everything). A second INT, or QUIT:
 * cold shutdown (kill the children, give everything back). libuv turns
 * the signals into loop callbacks, so no handler touches worker state;
 * cel_worker_stop() reaches the loop through a uv_async handle, which is
 * safe from any thread and from a signal handler.
 */
#include <signal.h>
#include <string.h>

#include "core/log.h"
#include "worker/worker_internal.h"

#define COMP "worker"

static const int stop_signals[3] = {SIGTERM, SIGINT, SIGQUIT};
/* The dispositions in place before run(), restored after it. */
static struct sigaction saved[3], saved_pipe;

static void raise_level(cel_worker *w, int want)
{
    int cur = atomic_load(&w->stop_level);
    while (cur < want && !atomic_compare_exchange_weak(&w->stop_level, &cur, want))
        ;
}

static void on_signal(uv_signal_t *h, int signum)
{
    cel_worker *w = h->data;
    if (signum == SIGQUIT || (signum == SIGINT && atomic_load(&w->stop_level) >= CEL_WARM))
        raise_level(w, CEL_COLD);
    else
        raise_level(w, CEL_WARM);
    cel__worker_on_stop_level(w);
}

static void on_stop_async(uv_async_t *h)
{
    cel__worker_on_stop_level(h->data);
}

int cel__signals_start(cel_worker *w)
{
    uv_async_init(&w->loop, &w->stop_async, on_stop_async);
    w->stop_async.data = w;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &saved_pipe);
    for (int i = 0; i < 3; i++) {
        sigaction(stop_signals[i], NULL, &saved[i]);
        uv_signal_init(&w->loop, &w->sig[i]);
        w->sig[i].data = w;
        uv_signal_start(&w->sig[i], on_signal, stop_signals[i]);
    }
    w->signals_on = true;
    return 0;
}

void cel__signals_stop(cel_worker *w)
{
    if (!w->signals_on)
        return;
    w->signals_on = false;
    for (int i = 0; i < 3; i++) {
        uv_signal_stop(&w->sig[i]);
        uv_close((uv_handle_t *)&w->sig[i], NULL);
        sigaction(stop_signals[i], &saved[i], NULL);
    }
    sigaction(SIGPIPE, &saved_pipe, NULL);
    uv_close((uv_handle_t *)&w->stop_async, NULL);
}

void cel_worker_stop(cel_worker *w, int cold)
{
    if (!w)
        return;
    raise_level(w, cold ? CEL_COLD : CEL_WARM);
    if (atomic_load(&w->async_ready))
        uv_async_send(&w->stop_async);
}
