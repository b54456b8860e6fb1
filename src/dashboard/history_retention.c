/*
 * history_retention.c - keeping the history store within its retention
 * (history.h): by age for everything, by row count for tasks.
 */
#include <stdbool.h>
#include <stdint.h>

#include "dashboard/history.h"
#include "dashboard/history_db.h"

/* Runs one fixed statement with an integer parameter; adds the rows it
 * changed to *changed when not NULL. */
static int delete_with(struct cel_dash_history *h, const char *sql, int64_t arg, size_t *changed)
{
    sqlite3_stmt *st = cel__dash_db_prepare(h, sql);
    if (!st)
        return CEL_EIO;
    sqlite3_bind_int64(st, 1, arg);
    int rc = cel__dash_db_run(h, st, "cannot prune the history");
    sqlite3_finalize(st);
    if (rc == CEL_OK && changed)
        *changed += (size_t)sqlite3_changes(h->db);
    return rc;
}

int cel__dash_history_prune(struct cel_dash_history *h, int64_t now_s, size_t *removed)
{
    size_t tasks = 0;
    bool owned = !h->in_txn;
    h->last_prune_s = now_s;
    int rc = cel__dash_db_begin(h);
    if (rc == CEL_OK && h->opts.retention_days) {
        int64_t cutoff = now_s - (int64_t)h->opts.retention_days * 86400;
        rc = delete_with(h, "DELETE FROM tasks WHERE timestamp < ?", cutoff, &tasks);
        if (rc == CEL_OK)
            rc = delete_with(h, "DELETE FROM workers WHERE timestamp < ? AND NOT online", cutoff,
                             NULL);
        if (rc == CEL_OK)
            rc = delete_with(h, "DELETE FROM task_minutes WHERE minute < ?", cutoff / 60, NULL);
        if (rc == CEL_OK)
            rc = delete_with(h, "DELETE FROM runtime_buckets WHERE minute < ?", cutoff / 60, NULL);
        if (rc == CEL_OK)
            rc = delete_with(h, "DELETE FROM samples WHERE ts < ?", cutoff, NULL);
    }
    /* The newest max_tasks by last event stay; the index on timestamp
     * makes skipping them a walk of the index, not a sort. */
    if (rc == CEL_OK && h->opts.max_tasks)
        rc = delete_with(h,
                         "DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks"
                         " ORDER BY timestamp DESC LIMIT -1 OFFSET ?)",
                         h->opts.max_tasks > INT64_MAX ? INT64_MAX : (int64_t)h->opts.max_tasks,
                         &tasks);
    if (owned && rc == CEL_OK)
        rc = cel__dash_db_commit(h);
    else if (owned)
        cel__dash_db_rollback(h);
    if (removed)
        *removed = tasks;
    return rc;
}
