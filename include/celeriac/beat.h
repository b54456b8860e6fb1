/*
 * celeriac/beat.h - the scheduler that sends periodic entries
 * (celeriac/schedule.h) to the broker when they are due.
 *
 *     cel_beat *b = cel_beat_new(cfg);
 *     if (cel_beat_run(b) != CEL_OK)          // until cel_beat_stop()
 *         fprintf(stderr, "%s\n", cel_beat_errmsg(b));
 *     cel_beat_free(b);
 *
 * Any number of beat processes may run against one store: a lease in the
 * store elects one leader, and only the leader sends. A run is sent and
 * recorded in one atomic step, so a leader killed at any moment leaves
 * each run sent exactly once or not at all, and the next leader carries
 * on from what the store says. Entries are re-read within a second of any
 * change.
 *
 * Ownership: cel_beat_new() copies the configuration. Thread safety:
 * cel_beat_run() on one thread; cel_beat_stop() from any thread or a
 * signal handler.
 */
#ifndef CELERIAC_BEAT_H
#define CELERIAC_BEAT_H

#include "celeriac/common.h"
#include "celeriac/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_beat cel_beat;

/* NULL only when out of memory. */
CEL_API cel_beat *cel_beat_new(const cel_config *cfg);
CEL_API void cel_beat_free(cel_beat *b);

/* Connects, loads the [schedule.NAME] sections into the store, and sends
 * entries as they fall due until cel_beat_stop(): CEL_OK then. Connection
 * losses are retried; an error return means beat could not start (bad
 * configuration, a broker without schedule support). */
CEL_API int cel_beat_run(cel_beat *b);

/* Async-signal-safe. The current tick finishes; the lease is released so
 * a standby takes over at once. */
CEL_API void cel_beat_stop(cel_beat *b);

/* 1 while this process holds the leader lease. */
CEL_API int cel_beat_is_leader(const cel_beat *b);

CEL_API const char *cel_beat_errmsg(const cel_beat *b);

#ifdef __cplusplus
}
#endif

#endif
