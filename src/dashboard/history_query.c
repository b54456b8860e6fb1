/*
 * history_query.c - tasks and workers out of the history store, as
 * Flower's API shapes them (history.h).
 *
 * The WHERE clause is assembled from fixed fragments, one per filter
 * that is set; every value the user gave is a bound parameter.
 */
#include <stdio.h>
#include <string.h>

#include "dashboard/history.h"
#include "dashboard/history_db.h"

#define TASK_COLUMNS                                                                               \
    "uuid, name, state, sent, received, started, succeeded, failed, retried, revoked,"             \
    " rejected, timestamp, args, kwargs, result, exception, traceback, runtime, retries,"          \
    " worker, queue, exchange, eta, expires, root_id, parent_id, client, clock"

/* The column a sort key orders by (fixed names, never user text). */
static const char *const sort_columns[] = {
    [CEL_DASH_SORT_TIMESTAMP] = "timestamp", [CEL_DASH_SORT_RECEIVED] = "received",
    [CEL_DASH_SORT_STARTED] = "started",     [CEL_DASH_SORT_SUCCEEDED] = "succeeded",
    [CEL_DASH_SORT_FAILED] = "failed",       [CEL_DASH_SORT_NAME] = "name",
    [CEL_DASH_SORT_STATE] = "state",         [CEL_DASH_SORT_WORKER] = "worker",
    [CEL_DASH_SORT_RUNTIME] = "runtime",     [CEL_DASH_SORT_RETRIES] = "retries",
};

/* A column's value as JSON: NULL null, numbers as numbers, text as strings. */
static json_t *column_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT:
        return json_stringn((const char *)sqlite3_column_text(st, i),
                            (size_t)sqlite3_column_bytes(st, i));
    default:
        return json_null();
    }
}

/* A row of TASK_COLUMNS as Flower's task object. */
static json_t *task_object(sqlite3_stmt *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *col = sqlite3_column_name(st, i);
        json_object_set_new(o, col, column_json(st, i));
        if (strcmp(col, "queue") == 0) /* Flower shows the routing key */
            json_object_set_new(o, "routing_key", column_json(st, i));
    }
    return o;
}

/* Appends a fragment; the fragments are fixed, so the buffer's size is
 * a bound known at compile time, checked all the same. */
static void append(char *sql, size_t cap, const char *frag)
{
    size_t n = strlen(sql);
    snprintf(sql + n, cap - n, "%s", frag);
}

/* Appends " WHERE ..." with ?-parameters in the order bind_filters()
 * binds them. */
static void build_where(char *sql, size_t cap, const struct cel_dash_task_query *q)
{
    append(sql, cap, " WHERE 1");
    if (q->states) {
        append(sql, cap, " AND state IN (");
        bool first = true;
        for (unsigned bit = 1; bit <= CEL_DASH_REJECTED; bit <<= 1)
            if (q->states & bit) {
                append(sql, cap, first ? "?" : ", ?");
                first = false;
            }
        append(sql, cap, ")");
    }
    if (q->name[0])
        append(sql, cap, " AND name = ?");
    if (q->worker[0])
        append(sql, cap, " AND worker = ?");
    if (q->queue[0])
        append(sql, cap, " AND queue = ?");
    if (q->after > 0)
        append(sql, cap, " AND first_seen >= ?");
    if (q->before > 0)
        append(sql, cap, " AND first_seen < ?");
    /* A word is one parameter used four times: ?100, ?101, ... (the
     * numbers are ours; a plain ? after them takes the next one). */
    for (size_t i = 0; i < q->nwords && i < CEL_DASH_QUERY_WORDS_MAX; i++) {
        char frag[256];
        snprintf(frag, sizeof frag,
                 " AND (instr(coalesce(args, ''), ?%d) OR instr(coalesce(kwargs, ''), ?%d)"
                 " OR instr(coalesce(result, ''), ?%d) OR instr(coalesce(exception, ''), ?%d))",
                 100 + (int)i, 100 + (int)i, 100 + (int)i, 100 + (int)i);
        append(sql, cap, frag);
    }
}

/* Binds in build_where()'s order; the words are ?100, ?101, ... Returns
 * the next free index after them. */
static int bind_filters(sqlite3_stmt *st, const struct cel_dash_task_query *q)
{
    int i = 1;
    for (unsigned bit = 1; bit <= CEL_DASH_REJECTED; bit <<= 1)
        if (q->states & bit)
            sqlite3_bind_text(st, i++, cel__dash_task_state_name(bit), -1, SQLITE_STATIC);
    if (q->name[0])
        sqlite3_bind_text(st, i++, q->name, -1, SQLITE_STATIC);
    if (q->worker[0])
        sqlite3_bind_text(st, i++, q->worker, -1, SQLITE_STATIC);
    if (q->queue[0])
        sqlite3_bind_text(st, i++, q->queue, -1, SQLITE_STATIC);
    if (q->after > 0)
        sqlite3_bind_double(st, i++, q->after);
    if (q->before > 0)
        sqlite3_bind_double(st, i++, q->before);
    for (size_t w = 0; w < q->nwords && w < CEL_DASH_QUERY_WORDS_MAX; w++)
        sqlite3_bind_text(st, 100 + (int)w, q->words[w], -1, SQLITE_STATIC);
    return q->nwords ? 100 + (int)q->nwords : i;
}

static sqlite3_stmt *prepare_tasks(struct cel_dash_history *h, const struct cel_dash_task_query *q,
                                   const char *head, bool order)
{
    char sql[4096];
    snprintf(sql, sizeof sql, "%s", head);
    build_where(sql, sizeof sql, q);
    if (order) {
        size_t sort = (size_t)q->sort < sizeof sort_columns / sizeof sort_columns[0] ? q->sort : 0;
        const char *dir = q->ascending ? " ASC" : " DESC";
        append(sql, sizeof sql, " ORDER BY ");
        append(sql, sizeof sql, sort_columns[sort]);
        append(sql, sizeof sql, dir);
        append(sql, sizeof sql, ", rowid");
        append(sql, sizeof sql, dir);
        append(sql, sizeof sql, " LIMIT ? OFFSET ?");
    }
    sqlite3_stmt *st = cel__dash_db_prepare(h, sql);
    if (!st)
        return NULL;
    int i = bind_filters(st, q);
    if (order) {
        size_t limit = q->limit ? q->limit : CEL_DASH_QUERY_LIMIT_DEFAULT;
        if (limit > CEL_DASH_QUERY_LIMIT_MAX)
            limit = CEL_DASH_QUERY_LIMIT_MAX;
        sqlite3_bind_int64(st, i, (sqlite3_int64)limit);
        sqlite3_bind_int64(st, i + 1, q->offset > INT64_MAX ? INT64_MAX : (int64_t)q->offset);
    }
    return st;
}

int cel__dash_history_tasks_json(struct cel_dash_history *h, const struct cel_dash_task_query *q,
                                 char **json)
{
    *json = NULL;
    struct cel_dash_task_query all;
    if (!q) {
        cel__dash_task_query_init(&all);
        q = &all;
    }
    sqlite3_stmt *st = prepare_tasks(h, q, "SELECT " TASK_COLUMNS " FROM tasks", true);
    if (!st)
        return CEL_EIO;
    json_t *root = json_object();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(root, (const char *)sqlite3_column_text(st, 0), task_object(st));
    int out = rc == SQLITE_DONE ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, "cannot list tasks");
    sqlite3_finalize(st);
    if (out) {
        json_decref(root);
        return out;
    }
    return cel__dash_dump(h, root, json);
}

int cel__dash_history_tasks_count(struct cel_dash_history *h, const struct cel_dash_task_query *q,
                                  size_t *count)
{
    *count = 0;
    struct cel_dash_task_query all;
    if (!q) {
        cel__dash_task_query_init(&all);
        q = &all;
    }
    sqlite3_stmt *st = prepare_tasks(h, q, "SELECT count(*) FROM tasks", false);
    if (!st)
        return CEL_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *count = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, "cannot count tasks");
}

int cel__dash_history_task_json(struct cel_dash_history *h, const char *id, char **json)
{
    *json = NULL;
    sqlite3_stmt *st = cel__dash_db_prepare(h, "SELECT " TASK_COLUMNS " FROM tasks WHERE uuid = ?");
    if (!st)
        return CEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    json_t *o = rc == SQLITE_ROW ? task_object(st) : NULL;
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return cel__err(&h->err, CEL_ENOTFOUND, "no task '%s' in the history", id);
    if (rc != SQLITE_ROW)
        return cel__dash_db_fail(h, CEL_EIO, "cannot read a task");
    return cel__dash_dump(h, o, json);
}

int cel__dash_history_workers_json(struct cel_dash_history *h, double now_s, char **json)
{
    *json = NULL;
    /* Online as Celery's State judges it: announced, not gone, and a
     * heartbeat within twice the interval it promised. */
    sqlite3_stmt *st = cel__dash_db_prepare(
        h, "SELECT hostname, CASE WHEN online AND (?1 <= 0 OR"
           " coalesce(last_heartbeat, 0) + 2 * coalesce(freq, 2.0) >= ?1) THEN 1 ELSE 0 END,"
           " first_seen, last_heartbeat, offline_at, freq, active, processed, succeeded,"
           " failed, loadavg, pid, sw_ident, sw_ver, sw_sys, clock FROM workers"
           " ORDER BY hostname");
    if (!st)
        return CEL_EIO;
    sqlite3_bind_double(st, 1, now_s);
    json_t *root = json_object();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *w = json_object();
        bool online = sqlite3_column_int(st, 1);
        json_object_set_new(w, "hostname", column_json(st, 0));
        json_object_set_new(w, "status", json_string(online ? "online" : "offline"));
        json_object_set_new(w, "online", json_boolean(online));
        for (int i = 2; i < sqlite3_column_count(st); i++) {
            const char *col = sqlite3_column_name(st, i);
            json_t *v = column_json(st, i);
            if (strcmp(col, "loadavg") == 0 && json_is_string(v)) {
                json_t *parsed = json_loads(json_string_value(v), 0, NULL);
                json_decref(v);
                v = parsed ? parsed : json_null();
            }
            json_object_set_new(w, col, v);
        }
        json_object_set_new(root, (const char *)sqlite3_column_text(st, 0), w);
    }
    int out = rc == SQLITE_DONE ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, "cannot list workers");
    sqlite3_finalize(st);
    if (out) {
        json_decref(root);
        return out;
    }
    return cel__dash_dump(h, root, json);
}
