/*
 * beat.c - cel_beat: lifecycle and the run loop (celeriac/beat.h).
 *
 * One thread, one loop: take or renew the lease when it is time; while
 * leading, read the entries when the store's version moved and send what
 * is due; then sleep in poll() on a self-pipe until the next run, the
 * next lease renewal or the next version poll, whichever comes first.
 * cel_beat_stop() writes to the pipe, which is all a signal handler may
 * do. A failing store is retried with backoff and never ends the loop;
 * only what cannot work at all (a bad URL, a broker without periodic
 * entries, a bad [schedule.NAME] section) makes run() return an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "beat/beat_internal.h"
#include "client/client_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/url.h"
#include "proto/message.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   5000
/* The loop wakes at least this often even with nothing to do. */
#define IDLE_MS 1000
/* Most missed runs an entry may send at once (beat_catch_up_max). */
#define CATCH_UP_MAX_CAP 100000

cel_beat *cel_beat_new(const cel_config *cfg)
{
    cel_beat *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = cfg ? cel_config_dup(cfg) : cel_config_new();
    if (!b->cfg || pipe2(b->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        cel_config_free(b->cfg);
        free(b);
        return NULL;
    }
    atomic_init(&b->leader, 0);
    cel__buf_init(&b->msg, CEL_MESSAGE_MAX_BYTES);
    return b;
}

void cel_beat_free(cel_beat *b)
{
    if (!b)
        return;
    cel__beat_entries_free(b);
    cel_client_free(b->client);
    cel__buf_release(&b->msg);
    cel_config_free(b->cfg);
    close(b->stop_pipe[0]);
    close(b->stop_pipe[1]);
    free(b);
}

void cel_beat_stop(cel_beat *b)
{
    if (!b)
        return;
    int saved = errno;
    b->stopping = 1;
    ssize_t w = write(b->stop_pipe[1], "x", 1);
    (void)w; /* a full pipe already holds a wake-up */
    errno = saved;
}

int cel_beat_is_leader(const cel_beat *b)
{
    return b ? atomic_load(&b->leader) : 0;
}

const char *cel_beat_errmsg(const cel_beat *b)
{
    return b ? b->err.msg : "";
}

/* ---- settings ---------------------------------------------------------- */

static double seconds_or(const cel_config *cfg, const char *key, double fallback)
{
    return cel_config_get(cfg, key) ? cel_config_get_double(cfg, key) : fallback;
}

static int read_settings(cel_beat *b)
{
    double ttl = seconds_or(b->cfg, "beat_lease_ttl", 10);
    b->ttl_ms = ttl >= 0.3 ? (int64_t)(ttl * 1000) : 300;
    double grace = seconds_or(b->cfg, "beat_grace", 15);
    b->grace_s = grace > 0 ? (int64_t)grace : 0;
    double max = seconds_or(b->cfg, "beat_catch_up_max", 100);
    b->catch_up_max = max < 1 ? 1 : max > CATCH_UP_MAX_CAP ? CATCH_UP_MAX_CAP : (size_t)max;

    const char *policy = cel_config_get(b->cfg, "beat_catch_up");
    if (!policy || !*policy || strcasecmp(policy, "once") == 0)
        b->default_policy = CEL_CATCH_UP_ONCE;
    else if (strcasecmp(policy, "skip") == 0)
        b->default_policy = CEL_CATCH_UP_SKIP;
    else if (strcasecmp(policy, "all") == 0)
        b->default_policy = CEL_CATCH_UP_ALL;
    else
        return cel__err(&b->err, CEL_ECONFIG, "beat_catch_up '%s': expected skip, once or all",
                        policy);

    const char *tz = cel_config_get(b->cfg, "timezone");
    snprintf(b->default_tz, sizeof b->default_tz, "%s", tz && *tz ? tz : "UTC");
    return CEL_OK;
}

/* ---- the store --------------------------------------------------------- */

/* Errors that mean the connection itself is gone. */
static bool connection_lost(int rc)
{
    return rc == CEL_ECONNECT || rc == CEL_EDISCONNECTED || rc == CEL_EIO;
}

/* Errors no retry can mend. */
static bool fatal(int rc)
{
    return rc == CEL_EURL || rc == CEL_ESCHEME || rc == CEL_ECONFIG || rc == CEL_EINVAL ||
           rc == CEL_ENOTSUP || rc == CEL_ENOMEM;
}

void cel__beat_store_failed(cel_beat *b, int rc, const char *what)
{
    b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (b->backoff_ms > BACKOFF_MAX_MS)
        b->backoff_ms = BACKOFF_MAX_MS;
    b->retry_ms = cel__mono_ms() + b->backoff_ms;
    if (connection_lost(rc))
        b->reconnect = true;
    b->loaded = false;
    const char *detail = b->broker ? cel__broker_errmsg(b->broker) : "";
    CEL_WARN(CEL_BEAT_COMP, "beat: %s: %s; retrying in %d ms", what,
             detail && *detail ? detail : cel_strerror(rc), b->backoff_ms);
}

/* Sleeps up to ms, or until cel_beat_stop(). */
static void nap(cel_beat *b, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct pollfd p = {.fd = b->stop_pipe[0], .events = POLLIN};
    if (poll(&p, 1, (int)ms) > 0) {
        char drain[64];
        while (read(b->stop_pipe[0], drain, sizeof drain) > 0)
            ;
    }
}

static bool has_schedule_ops(const struct cel_broker *br)
{
    const struct cel_broker_ops *o = br->ops;
    return o->sched_list && o->sched_version && o->sched_fire && o->lease_acquire &&
           o->lease_release;
}

/* A new connection: CEL_OK, or the error (retryable or not). */
static int open_client(cel_beat *b)
{
    cel_client_free(b->client);
    b->broker = NULL;
    b->client = cel_client_new(b->cfg);
    if (!b->client)
        return cel__err(&b->err, CEL_ENOMEM, "out of memory");
    int rc = cel_client_connect(b->client);
    if (rc != CEL_OK)
        return cel__err(&b->err, rc, "%s", cel_client_errmsg(b->client));
    if (!has_schedule_ops(b->client->broker)) {
        char url[256];
        cel__url_redact(cel_config_get(b->cfg, "broker_url"), url, sizeof url);
        return cel__err(&b->err, CEL_ENOTSUP,
                        "the broker '%s' keeps no periodic entries (use sqlite:// or redis://)",
                        url);
    }
    b->broker = b->client->broker;
    b->reconnect = false;
    b->loaded = false;
    return CEL_OK;
}

/* Connects and brings the [schedule.NAME] sections into the store,
 * retrying what a retry can mend: CEL_OK (also when stopped meanwhile)
 * or the error that keeps beat from starting. */
static int start(cel_beat *b)
{
    while (!b->stopping) {
        int rc = open_client(b);
        if (rc == CEL_OK) {
            rc = cel_schedule_sync_config(b->client, b->cfg);
            if (rc != CEL_OK)
                cel__err(&b->err, rc, "cannot load the [schedule] sections: %s",
                         cel_client_errmsg(b->client));
        }
        if (rc == CEL_OK) {
            b->backoff_ms = 0;
            return CEL_OK;
        }
        if (fatal(rc))
            return rc;
        b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BACKOFF_FIRST_MS * 5;
        if (b->backoff_ms > BACKOFF_MAX_MS)
            b->backoff_ms = BACKOFF_MAX_MS;
        CEL_WARN(CEL_BEAT_COMP, "beat: %s; retrying in %d ms", b->err.msg, b->backoff_ms);
        nap(b, b->backoff_ms);
    }
    return CEL_OK;
}

/* One pass: lease, entries, runs. Returns the monotonic ms to wake at. */
static int64_t step(cel_beat *b)
{
    int64_t now = cel__mono_ms();
    int64_t wake = now + IDLE_MS;
    if (now < b->retry_ms)
        return b->retry_ms;
    if (b->reconnect) {
        int rc = open_client(b);
        if (rc != CEL_OK) {
            cel__beat_store_failed(b, rc, "cannot reconnect");
            return b->retry_ms;
        }
        CEL_INFO(CEL_BEAT_COMP, "beat: reconnected");
    }
    int rc = cel__beat_lease_step(b, now);
    if (rc != CEL_OK) {
        cel__beat_store_failed(b, rc, "cannot renew the lease");
        return b->retry_ms;
    }
    if (atomic_load(&b->leader)) {
        rc = cel__beat_entries_sync(b, now, !b->loaded);
        if (rc == CEL_OK)
            rc = cel__beat_tick(b, &wake);
        if (rc != CEL_OK) {
            cel__beat_store_failed(b, rc, "cannot send the due runs");
            return b->retry_ms;
        }
        if (b->version_next_ms < wake)
            wake = b->version_next_ms;
        if (!b->loaded)
            wake = now; /* a send found a change: read the entries at once */
    }
    b->backoff_ms = 0;
    if (b->lease_next_ms < wake)
        wake = b->lease_next_ms;
    return wake;
}

int cel_beat_run(cel_beat *b)
{
    if (!b)
        return CEL_EINVAL;
    cel__err_clear(&b->err);
    int rc = read_settings(b);
    if (rc != CEL_OK)
        return rc;
    cel__beat_holder_init(b);
    rc = start(b);
    if (rc != CEL_OK)
        return rc;
    if (!b->stopping)
        CEL_INFO(CEL_BEAT_COMP,
                 "beat: started as %s (lease ttl %lld ms, grace %lld s, catch-up max %zu)",
                 b->holder, (long long)b->ttl_ms, (long long)b->grace_s, b->catch_up_max);
    while (!b->stopping) {
        int64_t wake = step(b);
        if (b->stopping)
            break;
        /* +1: poll() rounds down, and a run due at a second boundary
         * should find the boundary passed. */
        nap(b, wake - cel__mono_ms() + 1);
    }
    cel__beat_lease_release(b);
    CEL_INFO(CEL_BEAT_COMP, "beat: stopped");
    return CEL_OK;
}
