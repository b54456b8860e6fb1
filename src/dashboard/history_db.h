/*
 * history_db.h - what the history store's files share: the handle, its
 * prepared statements and the write transaction (see history.h).
 */
#ifndef CEL_DASHBOARD_HISTORY_DB_H
#define CEL_DASHBOARD_HISTORY_DB_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "dashboard/history.h"

#define CEL_DASH_BUSY_TIMEOUT_MS 5000
/* Log-scale runtime buckets: four per doubling, from 1 µs up to about
 * 12 days; a percentile read from them is within 10% of the truth. */
#define CEL_DASH_RUNTIME_BUCKETS        160
#define CEL_DASH_RUNTIME_BUCKETS_PER_X2 4

/* Statements prepared once at open, one per hot write or lookup. */
enum cel_dash_stmt {
    CEL_DASH_ST_TASK_GET,
    CEL_DASH_ST_TASK_UPSERT,
    CEL_DASH_ST_WORKER_UPSERT,
    CEL_DASH_ST_WORKER_COUNT,
    CEL_DASH_ST_MINUTE_ADD,
    CEL_DASH_ST_RUNTIME_ADD,
    CEL_DASH_ST_COUNT
};

struct cel_dash_history {
    sqlite3 *db;
    struct cel_dash_history_opts opts;
    sqlite3_stmt *st[CEL_DASH_ST_COUNT];
    bool in_txn;
    unsigned pending; /* events in the open transaction */
    int64_t last_prune_s;
    struct cel_dash_history_stats stats;
    struct cel_errbuf err;
};

/* Formats "what: sqlite's message" and returns code. */
int cel__dash_db_fail(struct cel_dash_history *h, int code, const char *what);
/* Opens the write transaction unless one is open. */
int cel__dash_db_begin(struct cel_dash_history *h);
/* Commits the open transaction (no pruning), or rolls it back. */
int cel__dash_db_commit(struct cel_dash_history *h);
void cel__dash_db_rollback(struct cel_dash_history *h);
/* A statement built from fixed text (never from user input), to be
 * finalized by the caller; NULL on error (message in h->err). */
sqlite3_stmt *cel__dash_db_prepare(struct cel_dash_history *h, const char *sql);
/* sqlite3_step until DONE; CEL_OK or the error. */
int cel__dash_db_run(struct cel_dash_history *h, sqlite3_stmt *st, const char *what);

/* Binds text or NULL when s is NULL. */
void cel__dash_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Serializes the tree into *json (caller frees); consumes the reference. */
int cel__dash_dump(struct cel_dash_history *h, json_t *root, char **json);

/* The runtime bucket of `seconds`, and the middle of a bucket. */
int cel__dash_runtime_bucket(double seconds);
double cel__dash_runtime_bucket_mid(int bucket);

#endif
