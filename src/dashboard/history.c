/* history.c - opening the history store, its schema and transactions. */
#include "dashboard/history.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dashboard/history_db.h"

/*
 * Schema, version 1 (PRAGMA user_version). Times are Unix seconds as
 * REAL, as events carry them.
 *
 * tasks: `rank` orders states (history_ingest.c); `first_seen` is the
 * earliest event's time, what after:/before: filter on; `timestamp` the
 * latest's, what retention and the default sort use. The indexes serve
 * the task list's filters, each with the time it pages by.
 *
 * task_minutes / runtime_buckets: minute = Unix minute; name '' when the
 * task's name was not known when it finished. WITHOUT ROWID: the key is
 * the row.
 */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS tasks ("
    " uuid TEXT NOT NULL UNIQUE,"
    " name TEXT, state TEXT NOT NULL, rank INTEGER NOT NULL,"
    " worker TEXT, queue TEXT, exchange TEXT, client TEXT,"
    " args TEXT, kwargs TEXT, result TEXT, exception TEXT, traceback TEXT,"
    " runtime REAL, retries INTEGER NOT NULL DEFAULT 0,"
    " root_id TEXT, parent_id TEXT, eta TEXT, expires TEXT,"
    " sent REAL, received REAL, started REAL, succeeded REAL, failed REAL,"
    " retried REAL, revoked REAL, rejected REAL,"
    " first_seen REAL NOT NULL, timestamp REAL NOT NULL, clock INTEGER);"
    "CREATE INDEX IF NOT EXISTS tasks_timestamp ON tasks (timestamp);"
    "CREATE INDEX IF NOT EXISTS tasks_first_seen ON tasks (first_seen);"
    "CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, timestamp);"
    "CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, timestamp);"
    "CREATE INDEX IF NOT EXISTS tasks_worker ON tasks (worker, timestamp);"
    "CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (queue, timestamp);"
    "CREATE TABLE IF NOT EXISTS workers ("
    " hostname TEXT PRIMARY KEY, online INTEGER NOT NULL,"
    " first_seen REAL NOT NULL, last_heartbeat REAL, offline_at REAL,"
    " timestamp REAL NOT NULL, freq REAL, active INTEGER, processed INTEGER,"
    " succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
    " loadavg TEXT, pid INTEGER, sw_ident TEXT, sw_ver TEXT, sw_sys TEXT,"
    " clock INTEGER) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS task_minutes ("
    " minute INTEGER NOT NULL, name TEXT NOT NULL,"
    " succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
    " retried INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (minute, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS runtime_buckets ("
    " minute INTEGER NOT NULL, name TEXT NOT NULL, bucket INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " PRIMARY KEY (minute, name, bucket)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS samples ("
    " ts INTEGER PRIMARY KEY, workers_online INTEGER, queues TEXT NOT NULL);";

/* The hot statements (enum cel_dash_stmt order). */
static const char *const stmt_sql[CEL_DASH_ST_COUNT] = {
    [CEL_DASH_ST_TASK_GET] =
        "SELECT rank, retries, name, succeeded IS NULL, failed IS NULL FROM tasks"
        " WHERE uuid = ?1",
    [CEL_DASH_ST_TASK_UPSERT] =
        "INSERT INTO tasks (uuid, name, state, rank, worker, queue, exchange, client, args,"
        " kwargs, result, exception, traceback, runtime, retries, root_id, parent_id, eta,"
        " expires, first_seen, timestamp, clock, sent, received, started, succeeded, failed,"
        " retried, revoked, rejected)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, coalesce(?15, 0),"
        " ?16, ?17, ?18, ?19, ?20, ?20, ?21,"
        " CASE ?23 WHEN 0 THEN ?20 END, CASE ?23 WHEN 1 THEN ?20 END,"
        " CASE ?23 WHEN 2 THEN ?20 END, CASE ?23 WHEN 3 THEN ?20 END,"
        " CASE ?23 WHEN 4 THEN ?20 END, CASE ?23 WHEN 5 THEN ?20 END,"
        " CASE ?23 WHEN 6 THEN ?20 END, CASE ?23 WHEN 7 THEN ?20 END)"
        " ON CONFLICT (uuid) DO UPDATE SET"
        " name = coalesce(excluded.name, name),"
        " state = CASE WHEN ?22 THEN excluded.state ELSE state END,"
        " rank = CASE WHEN ?22 THEN excluded.rank ELSE rank END,"
        " worker = coalesce(excluded.worker, worker),"
        " queue = coalesce(excluded.queue, queue),"
        " exchange = coalesce(excluded.exchange, exchange),"
        " client = coalesce(excluded.client, client),"
        " args = coalesce(excluded.args, args),"
        " kwargs = coalesce(excluded.kwargs, kwargs),"
        " result = coalesce(excluded.result, result),"
        " exception = coalesce(excluded.exception, exception),"
        " traceback = coalesce(excluded.traceback, traceback),"
        " runtime = coalesce(excluded.runtime, runtime),"
        " retries = max(retries, coalesce(?15, 0)),"
        " root_id = coalesce(excluded.root_id, root_id),"
        " parent_id = coalesce(excluded.parent_id, parent_id),"
        " eta = coalesce(excluded.eta, eta),"
        " expires = coalesce(excluded.expires, expires),"
        " first_seen = min(first_seen, excluded.first_seen),"
        " timestamp = max(timestamp, excluded.timestamp),"
        " sent = CASE WHEN excluded.sent > coalesce(sent, 0) THEN excluded.sent ELSE sent END,"
        " received = CASE WHEN excluded.received > coalesce(received, 0) THEN excluded.received "
        "ELSE received END,"
        " started = CASE WHEN excluded.started > coalesce(started, 0) THEN excluded.started ELSE "
        "started END,"
        " succeeded = CASE WHEN excluded.succeeded > coalesce(succeeded, 0) THEN "
        "excluded.succeeded ELSE succeeded END,"
        " failed = CASE WHEN excluded.failed > coalesce(failed, 0) THEN excluded.failed ELSE "
        "failed END,"
        " retried = CASE WHEN excluded.retried > coalesce(retried, 0) THEN excluded.retried ELSE "
        "retried END,"
        " revoked = CASE WHEN excluded.revoked > coalesce(revoked, 0) THEN excluded.revoked ELSE "
        "revoked END,"
        " rejected = CASE WHEN excluded.rejected > coalesce(rejected, 0) THEN excluded.rejected "
        "ELSE rejected END,"
        " clock = max(coalesce(clock, 0), coalesce(excluded.clock, 0))",
    [CEL_DASH_ST_WORKER_UPSERT] =
        "INSERT INTO workers (hostname, online, first_seen, last_heartbeat, offline_at,"
        " timestamp, freq, active, processed, loadavg, pid, sw_ident, sw_ver, sw_sys, clock)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?3, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        " ON CONFLICT (hostname) DO UPDATE SET"
        /* An event older than the newest one seen updates nothing but
         * the stats it alone carries: a late heartbeat must not bring an
         * offline worker back. */
        " online = CASE WHEN excluded.timestamp >= timestamp THEN excluded.online"
        "          ELSE online END,"
        " first_seen = min(first_seen, excluded.first_seen),"
        " last_heartbeat = max(coalesce(last_heartbeat, 0), coalesce(excluded.last_heartbeat,"
        "                  0)),"
        " offline_at = CASE WHEN excluded.timestamp >= timestamp THEN excluded.offline_at"
        "              ELSE offline_at END,"
        " timestamp = max(timestamp, excluded.timestamp),"
        " freq = coalesce(excluded.freq, freq),"
        " active = coalesce(excluded.active, active),"
        " processed = coalesce(excluded.processed, processed),"
        " loadavg = coalesce(excluded.loadavg, loadavg),"
        " pid = coalesce(excluded.pid, pid),"
        " sw_ident = coalesce(excluded.sw_ident, sw_ident),"
        " sw_ver = coalesce(excluded.sw_ver, sw_ver),"
        " sw_sys = coalesce(excluded.sw_sys, sw_sys),"
        " clock = max(coalesce(clock, 0), coalesce(excluded.clock, 0))",
    [CEL_DASH_ST_WORKER_COUNT] =
        "UPDATE workers SET succeeded = succeeded + ?2, failed = failed + ?3"
        " WHERE hostname = ?1",
    [CEL_DASH_ST_MINUTE_ADD] =
        "INSERT INTO task_minutes (minute, name, succeeded, failed, retried)"
        " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (minute, name) DO UPDATE SET"
        " succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed,"
        " retried = retried + excluded.retried",
    [CEL_DASH_ST_RUNTIME_ADD] =
        "INSERT INTO runtime_buckets (minute, name, bucket, count) VALUES (?1, ?2, ?3, 1)"
        " ON CONFLICT (minute, name, bucket) DO UPDATE SET count = count + 1",
};

int cel__dash_db_fail(struct cel_dash_history *h, int code, const char *what)
{
    int src = sqlite3_errcode(h->db);
    if (src == SQLITE_BUSY || src == SQLITE_LOCKED)
        code = CEL_EBUSY;
    else if (src == SQLITE_NOMEM)
        code = CEL_ENOMEM;
    return cel__err(&h->err, code, "%s: %s", what, sqlite3_errmsg(h->db));
}

static int exec_sql(struct cel_dash_history *h, const char *sql, const char *what)
{
    if (sqlite3_exec(h->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return cel__dash_db_fail(h, CEL_EIO, what);
    return CEL_OK;
}

int cel__dash_db_begin(struct cel_dash_history *h)
{
    if (h->in_txn)
        return CEL_OK;
    int rc = exec_sql(h, "BEGIN IMMEDIATE", "cannot begin a transaction");
    if (rc == CEL_OK)
        h->in_txn = true;
    return rc;
}

sqlite3_stmt *cel__dash_db_prepare(struct cel_dash_history *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) {
        cel__dash_db_fail(h, CEL_EIO, "cannot prepare a query");
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

int cel__dash_db_run(struct cel_dash_history *h, sqlite3_stmt *st, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    int out = rc == SQLITE_DONE ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return out;
}

void cel__dash_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

int cel__dash_dump(struct cel_dash_history *h, json_t *root, char **json)
{
    *json = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!*json)
        return cel__err(&h->err, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

int cel__dash_runtime_bucket(double seconds)
{
    double us = seconds * 1e6;
    if (!(us > 1))
        return 0;
    double b = floor(log2(us) * CEL_DASH_RUNTIME_BUCKETS_PER_X2);
    return b >= CEL_DASH_RUNTIME_BUCKETS ? CEL_DASH_RUNTIME_BUCKETS - 1 : (int)b;
}

double cel__dash_runtime_bucket_mid(int bucket)
{
    return exp2((bucket + 0.5) / CEL_DASH_RUNTIME_BUCKETS_PER_X2) / 1e6;
}

static int query_version(struct cel_dash_history *h, int64_t *v)
{
    sqlite3_stmt *st = cel__dash_db_prepare(h, "PRAGMA user_version");
    if (!st)
        return CEL_EIO;
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, "cannot read the version");
}

/* Creates or checks the schema in one write transaction, so two
 * dashboards opening a new file at once do not both create it. */
static int init_schema(struct cel_dash_history *h, const char *path)
{
    int64_t v = 0;
    /* The common case, an existing file, needs no write lock: a
     * dashboard that is writing a batch does not block a second opener. */
    if (query_version(h, &v) == CEL_OK && v == CEL_DASH_HISTORY_SCHEMA_VERSION)
        return CEL_OK;
    int rc = cel__dash_db_begin(h);
    if (rc == CEL_OK)
        rc = query_version(h, &v);
    if (rc == CEL_OK && v > CEL_DASH_HISTORY_SCHEMA_VERSION)
        rc = cel__err(&h->err, CEL_EIO,
                      "history '%s' has schema version %lld; this build knows up to %d", path,
                      (long long)v, CEL_DASH_HISTORY_SCHEMA_VERSION);
    if (rc == CEL_OK && v < CEL_DASH_HISTORY_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", CEL_DASH_HISTORY_SCHEMA_VERSION);
        rc = exec_sql(h, schema_sql, "cannot create the history tables");
        if (rc == CEL_OK)
            rc = exec_sql(h, sql, "cannot set the schema version");
    }
    if (rc)
        return rc;
    return cel__dash_db_commit(h);
}

static int setup(struct cel_dash_history *h, const char *path)
{
    if (sqlite3_open_v2(path, &h->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return h->db ? cel__dash_db_fail(h, CEL_EIO, "cannot open the history")
                     : cel__err(&h->err, CEL_ENOMEM, "out of memory");
    sqlite3_busy_timeout(h->db, CEL_DASH_BUSY_TIMEOUT_MS);
    /* WAL: the dashboard's readers never wait for its writer. NORMAL
     * sync: a power cut may lose the last commits of events, which are
     * lossy anyway, never the file. */
    int rc = exec_sql(h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                      "cannot switch the history to WAL");
    if (rc == CEL_OK)
        rc = init_schema(h, path);
    for (int i = 0; rc == CEL_OK && i < CEL_DASH_ST_COUNT; i++)
        if (!(h->st[i] = cel__dash_db_prepare(h, stmt_sql[i])))
            rc = CEL_EIO;
    return rc;
}

int cel__dash_history_open(const char *path, const struct cel_dash_history_opts *o,
                           struct cel_dash_history **out, char *why, size_t whylen)
{
    *out = NULL;
    struct cel_dash_history *h = calloc(1, sizeof *h);
    if (!h)
        return cel__errf(why, whylen, CEL_ENOMEM, "out of memory");
    if (o)
        h->opts = *o;
    else
        h->opts = (struct cel_dash_history_opts){CEL_DASH_HISTORY_DEFAULT_DAYS,
                                                 CEL_DASH_HISTORY_DEFAULT_ROWS};
    h->last_prune_s = (int64_t)time(NULL);
    int rc = setup(h, path);
    if (rc) {
        cel__errf(why, whylen, rc, "%s", h->err.msg);
        cel__dash_history_close(h);
        return rc;
    }
    *out = h;
    return CEL_OK;
}

void cel__dash_history_close(struct cel_dash_history *h)
{
    if (!h)
        return;
    if (h->db && h->in_txn)
        cel__dash_db_commit(h);
    for (int i = 0; i < CEL_DASH_ST_COUNT; i++)
        sqlite3_finalize(h->st[i]);
    sqlite3_close(h->db);
    free(h);
}

const char *cel__dash_history_errmsg(const struct cel_dash_history *h)
{
    return h->err.msg;
}

int cel__dash_db_commit(struct cel_dash_history *h)
{
    if (!h->in_txn)
        return CEL_OK;
    int rc = exec_sql(h, "COMMIT", "cannot commit the history");
    if (rc && !sqlite3_get_autocommit(h->db))
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    h->in_txn = false;
    h->pending = 0;
    return rc;
}

void cel__dash_db_rollback(struct cel_dash_history *h)
{
    if (!sqlite3_get_autocommit(h->db))
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    h->in_txn = false;
    h->pending = 0;
}

int cel__dash_history_flush(struct cel_dash_history *h)
{
    int rc = cel__dash_db_commit(h);
    int64_t now = (int64_t)time(NULL);
    if (rc == CEL_OK && now - h->last_prune_s >= 60)
        rc = cel__dash_history_prune(h, now, NULL);
    return rc;
}

void cel__dash_history_stats(const struct cel_dash_history *h, struct cel_dash_history_stats *s)
{
    *s = h->stats;
}
