/*
 * time_limit_table.h - the time limits set at run time by the `time_limit`
 * remote control command, seen by every process that runs tasks.
 *
 * Celery's command replaces the task's own time_limit/soft_time_limit for
 * runs that start afterwards. The soft limit is enforced where the task
 * runs (a prefork child, or the solo worker) and the child resolves the
 * hard one it reports in BEGIN, so the table must reach processes that
 * were forked before the command arrived: it lives in one anonymous
 * MAP_SHARED mapping made before the pool forks, which children inherit.
 *
 * Concurrency: one writer (the worker's loop thread), any number of
 * readers in any process. Names are written once, before the entry count
 * that publishes them; limits change under a per-entry sequence counter
 * (a seqlock), so a reader never sees the soft limit of one command with
 * the hard limit of another. A lookup in an empty table is one relaxed
 * atomic load.
 *
 * Ownership: the worker owns the table (new/free); exec_env borrows it.
 */
#ifndef CEL_WORKER_TIME_LIMIT_TABLE_H
#define CEL_WORKER_TIME_LIMIT_TABLE_H

#include <stdbool.h>

/* At most this many task names get run-time limits (a worker serves a
 * bounded registry; the command answers an error past it). */
#define CEL_TIME_LIMIT_TABLE_MAX 64
/* Longest task name kept, in bytes without its NUL. */
#define CEL_TIME_LIMIT_NAME_MAX 255

typedef struct cel_time_limit_table cel_time_limit_table;

/* A new, empty table in shared memory; NULL when it cannot be mapped. */
cel_time_limit_table *cel__time_limit_table_new(void);
void cel__time_limit_table_free(cel_time_limit_table *t);

/* Records soft/hard (seconds, 0: none) for `name`, replacing what it had.
 * Writer only. 0, or -1 with *why set ("too many tasks with time limits",
 * "task name too long"). */
int cel__time_limit_table_set(cel_time_limit_table *t, const char *name, double soft, double hard,
                              const char **why);

/* Whether `name` has run-time limits; if so sets *soft and *hard (0:
 * none, which means the task's own limit no longer applies). t may be
 * NULL. Any thread of any process sharing the mapping. */
bool cel__time_limit_table_get(const cel_time_limit_table *t, const char *name, double *soft,
                               double *hard);

#endif
