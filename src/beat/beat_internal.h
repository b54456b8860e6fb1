/*
 * beat_internal.h - the struct behind cel_beat (celeriac/beat.h) and the
 * parts of its run loop, one file each:
 *
 *   beat.c          lifecycle, connecting, the loop, stopping
 *   beat_lease.c    the leader lease: acquire, renew, release
 *   beat_entries.c  the table of entries read from the store
 *   beat_tick.c     sending the runs that are due
 *   beat_catch_up.c which of the due runs are sent (pure)
 */
#ifndef CEL_BEAT_BEAT_INTERNAL_H
#define CEL_BEAT_BEAT_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "celeriac/beat.h"
#include "celeriac/client.h"
#include "client/schedule_doc.h"
#include "core/buf.h"
#include "core/errbuf.h"

#define CEL_BEAT_COMP  "beat"
#define CEL_BEAT_LEASE "beat"
/* How often the store's schedule version is read while leading. */
#define CEL_BEAT_POLL_MS 250

/* One entry as the store had it at the last load. */
struct beat_entry {
    char *name;
    char *doc; /* as stored, to tell a changed entry from one already reported */
    struct cel_schedule_def def;
    bool ok; /* the document parsed: def is valid */
    bool enabled;
    int64_t last_run_us;
    bool warned_future; /* the last run lies ahead of the clock: said once */
};

struct cel_beat {
    cel_config *cfg;
    struct cel_errbuf err;
    int stop_pipe[2]; /* cel_beat_stop() writes a byte: the loop's poll() wakes */
    volatile sig_atomic_t stopping;
    atomic_int leader;

    /* Settings, read from cfg when run() starts. */
    int64_t ttl_ms;
    int64_t grace_s;
    cel_catch_up default_policy;
    size_t catch_up_max;
    char default_tz[128];

    cel_client *client;
    struct cel_broker *broker; /* the client's */
    bool reconnect;            /* the connection failed: open a new one first */
    char holder[320];          /* "<host>:<pid>:<random>" */

    /* Lease (beat_lease.c), monotonic ms. */
    int64_t lease_next_ms;  /* next acquire or renew */
    int64_t lease_until_ms; /* held until then unless renewed */
    bool ever_led;
    bool said_standby;    /* "standing by" logged since the last change */
    bool reboot_pending;  /* the first pass after first leading: @reboot entries go */
    int64_t first_led_us; /* wall time, whole seconds, when this process first led */

    /* Entries (beat_entries.c). */
    struct beat_entry *entries;
    size_t nentries;
    bool loaded;
    int64_t version;
    int64_t version_next_ms;

    /* Store errors: nothing is tried before retry_ms (monotonic). */
    int64_t retry_ms;
    int backoff_ms;

    struct cel_buf msg; /* the envelope being sent, reused */
};

/* ---- beat_lease.c ---- */
void cel__beat_holder_init(cel_beat *b);
/* Acquires or renews the lease when it is time: CEL_OK, or a store
 * error (leadership is kept until the lease would have expired). */
int cel__beat_lease_step(cel_beat *b, int64_t now_ms);
void cel__beat_lease_release(cel_beat *b);
/* Leadership lost (the store said so, or the lease ran out). */
void cel__beat_lost(cel_beat *b, const char *why);

/* ---- beat_entries.c ---- */
/* Reads every entry when the version changed or `force`: CEL_OK or a
 * store error. */
int cel__beat_entries_sync(cel_beat *b, int64_t now_ms, bool force);
void cel__beat_entries_free(cel_beat *b);

/* ---- beat_tick.c ---- */
/* Sends what is due: CEL_OK, or a store error. *wake_ms receives the
 * monotonic time the next run falls due (unchanged when none is
 * sooner). */
int cel__beat_tick(cel_beat *b, int64_t *wake_ms);

/* ---- beat.c ---- */
/* Logs a store error and schedules the retry with backoff; marks the
 * connection for reopening when it was lost. */
void cel__beat_store_failed(cel_beat *b, int rc, const char *what);

#endif
