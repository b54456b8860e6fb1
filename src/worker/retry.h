/*
 * retry.h - a task's retry (cel_task_retry, task.h): how long it waits,
 * how often it may happen, and the message that carries it.
 *
 * A retry is a new message with the same id, published with the ack of
 * the run that asked for it and parked on the broker until due; the
 * child never sleeps. The message is the one received with `retries` + 1
 * and an `eta`, every other header, property and the body kept as they
 * came, so any Celery worker (Python included) can continue it.
 *
 * Per call, a celeriac client may set two headers Celery does not know
 * (Python ignores unknown headers):
 *   celeriac_max_retries   int: the retry limit of this call (< 0: none)
 *   celeriac_retry_backoff number: the backoff base of this call, seconds
 */
#ifndef CEL_WORKER_RETRY_H
#define CEL_WORKER_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "celeriac/task.h"
#include "proto/message.h"

#define CEL_RETRY_DEFAULT_MAX         3
#define CEL_RETRY_DEFAULT_DELAY_S     180.0
#define CEL_RETRY_DEFAULT_BACKOFF_MAX 600.0

/* How many retries a run of `m` may lead to: the call's header, else
 * the definition's (NULL def: Celery's default, 3). -1: no limit. */
int cel__retry_limit(const cel_task_def *def, const struct cel_message *m);

/*
 * Seconds until the retry that a run with m->retries asks for without a
 * countdown: with a backoff base b (the call's header, else the
 * definition's), min(backoff_max, b * 2^retries), scaled by `rand01`
 * (uniform in [0, 1): full jitter) unless the definition turns jitter
 * off; without one, default_retry_delay. Pure: the caller draws rand01.
 */
double cel__retry_delay(const cel_task_def *def, const struct cel_message *m, double rand01);

/*
 * The envelope of the retry of `m`, due at eta_us (wall clock), as JSON
 * text (caller frees; *len set), or NULL when out of memory or `m` has
 * no envelope. `delivery_tag` is the new message's (a fresh UUID: kombu
 * keys its unacked records by it). Marks of the old delivery
 * ("redelivered") are dropped; nothing else changes but `retries`, `eta`
 * and the tag.
 */
char *cel__retry_envelope(const struct cel_message *m, int64_t eta_us, const char *delivery_tag,
                          size_t *len);

/* Celery's "Can't retry tasks.x[<id>] args:(...) kwargs:{...}", with the
 * last error appended (caller frees; NULL when out of memory). */
char *cel__retry_exceeded_message(const struct cel_message *m, int limit, const char *exc_type,
                                  const char *message);

#endif
