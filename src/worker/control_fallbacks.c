/*
 * control_fallbacks.c - weak stand-ins for the events thread (events.h)
 * and the pool's run-time size (autoscale.h), so remote control builds
 * and answers before those parts exist: events are reported off, the
 * pool as fixed, and the Lamport clock is a plain counter. The real
 * definitions replace these at link time.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "worker/autoscale.h"
#include "worker/events.h"

#define WEAK __attribute__((weak))

static atomic_llong clock_value;

WEAK int64_t cel__worker_clock_forward(cel_worker *w)
{
    (void)w;
    return (int64_t)atomic_fetch_add(&clock_value, 1) + 1;
}

WEAK void cel__worker_clock_adjust(cel_worker *w, int64_t seen)
{
    (void)w;
    long long cur = atomic_load(&clock_value);
    while (seen > cur && !atomic_compare_exchange_weak(&clock_value, &cur, seen))
        ;
    atomic_fetch_add(&clock_value, 1);
}

WEAK int64_t cel__worker_clock_value(const cel_worker *w)
{
    (void)w;
    return (int64_t)atomic_load(&clock_value);
}

WEAK bool cel__events_set_enabled(cel_worker *w, bool on)
{
    (void)w, (void)on;
    return false;
}

WEAK bool cel__events_enabled(const cel_worker *w)
{
    (void)w;
    return false;
}

WEAK void cel__events_heartbeat_now(cel_worker *w)
{
    (void)w;
}

static bool no_resize(char *msg, size_t len)
{
    snprintf(msg, len, "this worker's pool cannot be resized at run time");
    return false;
}

WEAK bool cel__pool_grow(cel_worker *w, int n, char *msg, size_t len)
{
    (void)w, (void)n;
    return no_resize(msg, len);
}

WEAK bool cel__pool_shrink(cel_worker *w, int n, char *msg, size_t len)
{
    (void)w, (void)n;
    return no_resize(msg, len);
}

WEAK bool cel__autoscale_set(cel_worker *w, int max, int min, char *msg, size_t len)
{
    (void)w, (void)max, (void)min;
    snprintf(msg, len, "ValueError('Autoscale not enabled')");
    return false;
}
