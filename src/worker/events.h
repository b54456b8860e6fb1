/*
 * events.h - the worker's monitoring events (proto/event.h): worker-online,
 * worker-heartbeat every 2 s and worker-offline always (Celery sends them
 * even without -E: they make the worker visible to monitors), task-*
 * events when worker_send_task_events is on (-E, or enable_events at run
 * time).
 *
 * Publishing is the events thread's, with a broker handle of its own: the
 * loop only hands it small records (task id, kind, times, the bytes it
 * already has) and never waits; the thread builds the JSON, batches task
 * events as task.multi and publishes on the celeryev fan-out. When the
 * thread falls behind, records beyond a bound are dropped and counted
 * (events are lossy by contract), never the loop slowed.
 */
#ifndef CEL_WORKER_EVENTS_H
#define CEL_WORKER_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cel_worker cel_worker;
struct cel_inflight;
struct cel_settle_item;

/* Starts the thread and sends worker-online; heartbeats follow. On error
 * the caller still calls stop. A transport without fan-out: CEL_OK, and
 * no events. */
int cel__events_start(cel_worker *w);
/* Sends worker-offline, flushes, joins the thread. */
void cel__events_stop(cel_worker *w);

/* Task events on or off at run time (enable_events / disable_events).
 * Returns the previous setting. Any thread. */
bool cel__events_set_enabled(cel_worker *w, bool on);
bool cel__events_enabled(const cel_worker *w);
/*
 * The loop thread's task hooks (consumer.c). Each copies what it needs
 * and returns; with task events off they cost an atomic load (and
 * started/finished an atomic add for the heartbeat's counters).
 * received: the message was accepted (task-received);
 * started: its task began to run (task-started);
 * finished: its final operation `it` is about to be handed to the store
 * thread (task-succeeded/failed/retried/revoked from it->state and
 * it->meta; a dead letter also task-rejected); called for every message;
 * rejected: it goes back to its queue, or away for good (task-rejected).
 */
void cel__events_task_received(cel_worker *w, struct cel_inflight *f);
void cel__events_task_started(cel_worker *w, struct cel_inflight *f);
void cel__events_task_finished(cel_worker *w, struct cel_inflight *f,
                               const struct cel_settle_item *it);
void cel__events_task_rejected(cel_worker *w, struct cel_inflight *f, bool requeue);

/* An immediate worker-heartbeat (the `heartbeat` control command). */
void cel__events_heartbeat_now(cel_worker *w);

/* The worker's Lamport clock (proto/event.h), shared by events and
 * remote control replies. Any thread. */
int64_t cel__worker_clock_forward(cel_worker *w);
void cel__worker_clock_adjust(cel_worker *w, int64_t seen);
int64_t cel__worker_clock_value(const cel_worker *w);

#endif
