/*
 * history.h - the dashboard's own record of tasks and workers, fed by
 * Celery's monitoring events, kept in a SQLite file of its own.
 *
 * Flower keeps its state in memory: it forgets everything on restart and
 * grows with every task. This store writes each event to disk as it
 * arrives, holds nothing per task in memory, and drops what is older than
 * its retention (days and/or a row count), so the dashboard stays flat
 * at millions of tasks and shows the same history after a restart.
 *
 * Tables (schema version CEL_DASH_HISTORY_SCHEMA_VERSION):
 *   tasks    one row per task id: its state and the time of each state
 *            (see history_ingest.c for the state precedence), args,
 *            kwargs, result, exception, traceback, runtime, worker.
 *   workers  one row per node name: online or offline, last heartbeat,
 *            the heartbeat's stats, succeeded/failed counts.
 *   task_minutes, runtime_buckets   per-minute aggregates for trends
 *            (history_trend.c), kept across task pruning.
 *   samples  queue lengths and workers online, as the caller samples
 *            them (cel__dash_history_sample()).
 *
 * Writes batch in transactions: ingest opens one when none is open, and
 * cel__dash_history_flush() commits it (ingest also commits by itself
 * every CEL_DASH_HISTORY_BATCH_MAX events). Queries on the same handle
 * see what was ingested and not yet flushed.
 *
 * One handle, one thread at a time (the caller serializes). JSON strings
 * returned are the caller's to free().
 */
#ifndef CEL_DASHBOARD_HISTORY_H
#define CEL_DASHBOARD_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "dashboard/task_query.h"

#define CEL_DASH_HISTORY_SCHEMA_VERSION 1
#define CEL_DASH_HISTORY_BATCH_MAX      5000
#define CEL_DASH_HISTORY_DEFAULT_DAYS   30
#define CEL_DASH_HISTORY_DEFAULT_ROWS   1000000

struct cel_dash_history;

struct cel_dash_history_opts {
    /* Tasks, workers and aggregates older than this are pruned; 0: kept
     * whatever their age. */
    unsigned retention_days;
    /* At most this many task rows, the oldest pruned first; 0: no cap. */
    size_t max_tasks;
};

struct cel_dash_history_stats {
    uint64_t ingested;  /* events applied */
    uint64_t malformed; /* not a JSON object, or missing what its type needs */
    uint64_t ignored;   /* well-formed, of a type the store does not keep */
};

/*
 * Opens (creating) the store at `path` (":memory:" for a private one).
 * `o` NULL: CEL_DASH_HISTORY_DEFAULT_DAYS and _ROWS. CEL_OK, or a
 * CEL_E* code with a message in why.
 */
int cel__dash_history_open(const char *path, const struct cel_dash_history_opts *o,
                           struct cel_dash_history **out, char *why, size_t whylen);
/* Commits what is pending and closes; NULL is fine. */
void cel__dash_history_close(struct cel_dash_history *h);
/* The last error's message ("" when none). */
const char *cel__dash_history_errmsg(const struct cel_dash_history *h);

/*
 * One Celery event (a JSON object as workers send it) or a JSON array of
 * them (a task.multi batch). A malformed event is counted and skipped:
 * CEL_OK all the same. Errors are the store's own (CEL_EIO, CEL_EBUSY,
 * CEL_ENOMEM).
 */
int cel__dash_history_ingest(struct cel_dash_history *h, const char *event_json, size_t len);
/* Commits the open transaction, if any. */
int cel__dash_history_flush(struct cel_dash_history *h);
void cel__dash_history_stats(const struct cel_dash_history *h, struct cel_dash_history_stats *s);

/* A sample of queue lengths and workers online at ts_s (Unix seconds):
 * the points of the "queues" and "workers" trends. */
int cel__dash_history_sample(struct cel_dash_history *h, int64_t ts_s, const char *const *queues,
                             const int64_t *lengths, size_t nqueues, int64_t workers_online);

/*
 * Flower's /api/tasks: {"<uuid>": {task}, ...} in the query's order.
 * A task object has Flower's fields: uuid, name, state, sent, received,
 * started, succeeded, failed, retried, revoked, rejected, timestamp (the
 * last event's), args, kwargs, result, exception, traceback, runtime,
 * retries, worker, queue (as routing_key too), exchange, eta, expires,
 * root_id, parent_id, client, clock. Times are Unix seconds, absent
 * ones null.
 */
int cel__dash_history_tasks_json(struct cel_dash_history *h, const struct cel_dash_task_query *q,
                                 char **json);
/* How many tasks match q, ignoring its limit and offset (for paging). */
int cel__dash_history_tasks_count(struct cel_dash_history *h, const struct cel_dash_task_query *q,
                                  size_t *count);
/* Flower's /api/task/info/<id>: one task object as above; CEL_ENOTFOUND. */
int cel__dash_history_task_json(struct cel_dash_history *h, const char *id, char **json);
/*
 * {"<hostname>": {hostname, status ("online"|"offline"), online (bool),
 * first_seen, last_heartbeat, offline_at, freq, active, processed,
 * succeeded, failed, loadavg ([3 numbers] or null), pid, sw_ident,
 * sw_ver, sw_sys, clock}, ...} by hostname. A worker is online from
 * worker-online or a heartbeat until worker-offline or, as Celery's
 * State judges, no heartbeat for twice its freq before `now`.
 */
int cel__dash_history_workers_json(struct cel_dash_history *h, double now_s, char **json);

/*
 * Points from from_s (inclusive) to to_s (exclusive), one per step_s
 * (a multiple of 60, at most 10,000 points), for task_name or every task
 * (NULL). Kinds and their points ({"t": start of the step, ...}):
 *   "throughput": succeeded, failed, retried (counts);
 *   "runtime":    count, p50, p90, p99 (seconds, null when count is 0);
 *   "workers":    workers_online (the step's last sample, null: none);
 *   "queues":     queues {"name": length} (the step's last sample).
 * The whole: {"kind", "from", "to", "step", "task", "points": [...]}.
 * CEL_EINVAL for an unknown kind or a bad range.
 */
int cel__dash_history_trend_json(struct cel_dash_history *h, const char *kind, int64_t from_s,
                                 int64_t to_s, int64_t step_s, const char *task_name, char **json);

/*
 * Applies the retention: removes tasks last seen before now_s minus the
 * retention days, then the oldest beyond max_tasks, and aggregates,
 * samples and offline workers older than the retention. *removed (may
 * be NULL) counts the task rows removed. Flush runs it by itself at most
 * once a minute.
 */
int cel__dash_history_prune(struct cel_dash_history *h, int64_t now_s, size_t *removed);

#endif
