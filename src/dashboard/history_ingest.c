/*
 * history_ingest.c - Celery events into the history store.
 *
 * State precedence. Events reach a monitor out of order: a client's
 * task-sent after the worker's task-received, a batch of task events
 * after a later single one. Each task state has a rank, and the row's
 * state moves only forward:
 *
 *   PENDING (sent) 0 < RECEIVED 1 < STARTED 2 < RETRY 4 < REJECTED 5
 *   < SUCCESS = FAILURE = REVOKED 8 (final: the first one stays)
 *
 * offset by 16 per retry (a retried task is received again with retries
 * one higher, and that attempt's RECEIVED beats the last one's RETRY).
 * Events that carry no retries count at the row's. Whatever the state,
 * an event's fields are kept: a late task-received still fills in args,
 * kwargs and the received time of a task that already succeeded.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard/history.h"
#include "dashboard/history_db.h"

/* A stored text field longer than this is cut: Celery cuts reprs to
 * 1 KiB, and a traceback is rarely longer than this. */
#define FIELD_MAX      (64 * 1024)
#define RANK_FINAL     8
#define RANK_PER_RETRY 16

struct task_kind {
    const char *type;  /* after "task-" */
    const char *state; /* Celery's state name */
    int rank;
    int column; /* index of the state's time column (history.c's upsert) */
};

static const struct task_kind task_kinds[] = {
    {"sent", "PENDING", 0, 0},      {"received", "RECEIVED", 1, 1}, {"started", "STARTED", 2, 2},
    {"succeeded", "SUCCESS", 8, 3}, {"failed", "FAILURE", 8, 4},    {"retried", "RETRY", 4, 5},
    {"revoked", "REVOKED", 8, 6},   {"rejected", "REJECTED", 5, 7},
};

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : NULL;
}

/* A field as text: strings as they are, other JSON values serialized
 * (a sender that put a list where Celery puts a repr). NULL: absent. */
static void bind_field(sqlite3_stmt *st, int i, const json_t *v)
{
    if (!v || json_is_null(v)) {
        sqlite3_bind_null(st, i);
    } else if (json_is_string(v)) {
        size_t n = json_string_length(v);
        sqlite3_bind_text(st, i, json_string_value(v), (int)(n > FIELD_MAX ? FIELD_MAX : n),
                          SQLITE_TRANSIENT);
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s && strlen(s) > FIELD_MAX)
            s[FIELD_MAX] = '\0';
        if (s)
            sqlite3_bind_text(st, i, s, -1, free);
        else
            sqlite3_bind_null(st, i);
    }
}

static void bind_number(sqlite3_stmt *st, int i, const json_t *v)
{
    if (json_is_number(v) && isfinite(json_number_value(v)))
        sqlite3_bind_double(st, i, json_number_value(v));
    else
        sqlite3_bind_null(st, i);
}

static void bind_int(sqlite3_stmt *st, int i, const json_t *v)
{
    if (json_is_integer(v))
        sqlite3_bind_int64(st, i, json_integer_value(v));
    else if (json_is_real(v) && isfinite(json_real_value(v)) && fabs(json_real_value(v)) < 9e15)
        sqlite3_bind_int64(st, i, (sqlite3_int64)json_real_value(v));
    else
        sqlite3_bind_null(st, i);
}

/* What the row says before this event. */
struct task_row {
    bool exists;
    int64_t rank, retries;
    char *name;
    bool no_success, no_failure; /* the succeeded / failed times unset */
};

static int read_row(struct cel_dash_history *h, const char *uuid, struct task_row *r)
{
    sqlite3_stmt *st = h->st[CEL_DASH_ST_TASK_GET];
    memset(r, 0, sizeof *r);
    r->no_success = r->no_failure = true;
    sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->exists = true;
        r->rank = sqlite3_column_int64(st, 0);
        r->retries = sqlite3_column_int64(st, 1);
        const unsigned char *n = sqlite3_column_text(st, 2);
        r->name = n ? strdup((const char *)n) : NULL;
        r->no_success = sqlite3_column_int(st, 3);
        r->no_failure = sqlite3_column_int(st, 4);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cel__dash_db_fail(h, CEL_EIO, "cannot read a task");
    return CEL_OK;
}

/* Per-minute counts and the runtime histogram (history_trend.c). */
static int add_aggregates(struct cel_dash_history *h, const struct task_kind *k, double ts,
                          const char *name, const struct task_row *row, const json_t *runtime)
{
    bool success = k->column == 3 && row->no_success;
    bool failure = k->column == 4 && row->no_failure;
    bool retry = k->column == 5;
    if (!success && !failure && !retry)
        return CEL_OK;
    int64_t minute = (int64_t)floor(ts / 60);
    sqlite3_stmt *st = h->st[CEL_DASH_ST_MINUTE_ADD];
    sqlite3_bind_int64(st, 1, minute);
    sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, success);
    sqlite3_bind_int(st, 4, failure);
    sqlite3_bind_int(st, 5, retry);
    int rc = cel__dash_db_run(h, st, "cannot count a task");
    if (rc == CEL_OK && success && json_is_number(runtime) &&
        isfinite(json_number_value(runtime))) {
        st = h->st[CEL_DASH_ST_RUNTIME_ADD];
        sqlite3_bind_int64(st, 1, minute);
        sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, cel__dash_runtime_bucket(json_number_value(runtime)));
        rc = cel__dash_db_run(h, st, "cannot record a runtime");
    }
    return rc;
}

static int count_for_worker(struct cel_dash_history *h, const char *worker, bool success,
                            bool failure)
{
    if (!worker || (!success && !failure))
        return CEL_OK;
    sqlite3_stmt *st = h->st[CEL_DASH_ST_WORKER_COUNT];
    sqlite3_bind_text(st, 1, worker, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, success);
    sqlite3_bind_int(st, 3, failure);
    return cel__dash_db_run(h, st, "cannot count a worker's task");
}

/* Whether an event of rank `key` moves a row at `row` to its state. */
static bool wins(const struct task_row *row, int64_t key)
{
    if (!row->exists)
        return true;
    if (key / RANK_PER_RETRY != row->rank / RANK_PER_RETRY)
        return key > row->rank;
    if (row->rank % RANK_PER_RETRY == RANK_FINAL)
        return false; /* the first final state stays */
    return key >= row->rank;
}

static int task_event(struct cel_dash_history *h, const json_t *e, const struct task_kind *k,
                      double ts)
{
    const char *uuid = str(e, "uuid");
    if (!uuid)
        return CEL_EINVAL;
    struct task_row row;
    int rc = read_row(h, uuid, &row);
    if (rc)
        return rc;
    const json_t *retries = json_object_get(e, "retries");
    int64_t attempt = json_is_integer(retries) ? json_integer_value(retries) : row.retries;
    if (attempt < 0 || attempt > 1000000)
        attempt = row.retries;
    int64_t key = attempt * RANK_PER_RETRY + k->rank;
    bool sent = k->column == 0;
    const char *host = str(e, "hostname");
    const json_t *queue = json_object_get(e, "queue");
    if (!json_is_string(queue))
        queue = json_object_get(e, "routing_key");

    sqlite3_stmt *st = h->st[CEL_DASH_ST_TASK_UPSERT];
    sqlite3_bind_text(st, 1, uuid, -1, SQLITE_STATIC);
    bind_field(st, 2, json_object_get(e, "name"));
    sqlite3_bind_text(st, 3, k->state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, key);
    cel__dash_bind_text(st, 5, sent ? NULL : host);
    bind_field(st, 6, queue);
    bind_field(st, 7, json_object_get(e, "exchange"));
    cel__dash_bind_text(st, 8, sent ? host : NULL);
    bind_field(st, 9, json_object_get(e, "args"));
    bind_field(st, 10, json_object_get(e, "kwargs"));
    bind_field(st, 11, json_object_get(e, "result"));
    bind_field(st, 12, json_object_get(e, "exception"));
    bind_field(st, 13, json_object_get(e, "traceback"));
    bind_number(st, 14, json_object_get(e, "runtime"));
    if (json_is_integer(retries))
        sqlite3_bind_int64(st, 15, attempt);
    bind_field(st, 16, json_object_get(e, "root_id"));
    bind_field(st, 17, json_object_get(e, "parent_id"));
    bind_field(st, 18, json_object_get(e, "eta"));
    bind_field(st, 19, json_object_get(e, "expires"));
    sqlite3_bind_double(st, 20, ts);
    bind_int(st, 21, json_object_get(e, "clock"));
    sqlite3_bind_int(st, 22, wins(&row, key));
    sqlite3_bind_int(st, 23, k->column);
    rc = cel__dash_db_run(h, st, "cannot store a task");

    const char *name = str(e, "name");
    if (!name)
        name = row.name;
    if (rc == CEL_OK)
        rc = add_aggregates(h, k, ts, name, &row, json_object_get(e, "runtime"));
    if (rc == CEL_OK)
        rc = count_for_worker(h, sent ? NULL : host, k->column == 3 && row.no_success,
                              k->column == 4 && row.no_failure);
    free(row.name);
    return rc;
}

static int worker_event(struct cel_dash_history *h, const json_t *e, const char *what, double ts)
{
    const char *host = str(e, "hostname");
    if (!host)
        return CEL_EINVAL;
    bool offline = strcmp(what, "offline") == 0;
    sqlite3_stmt *st = h->st[CEL_DASH_ST_WORKER_UPSERT];
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, !offline);
    sqlite3_bind_double(st, 3, ts);
    if (!offline)
        sqlite3_bind_double(st, 4, ts);
    else
        sqlite3_bind_double(st, 5, ts);
    bind_number(st, 6, json_object_get(e, "freq"));
    bind_int(st, 7, json_object_get(e, "active"));
    bind_int(st, 8, json_object_get(e, "processed"));
    const json_t *load = json_object_get(e, "loadavg");
    bind_field(st, 9, json_is_array(load) ? load : NULL);
    bind_int(st, 10, json_object_get(e, "pid"));
    bind_field(st, 11, json_object_get(e, "sw_ident"));
    bind_field(st, 12, json_object_get(e, "sw_ver"));
    bind_field(st, 13, json_object_get(e, "sw_sys"));
    bind_int(st, 14, json_object_get(e, "clock"));
    return cel__dash_db_run(h, st, "cannot store a worker");
}

/* One event object: CEL_OK (applied or ignored, counted) or a store
 * error; CEL_EINVAL for a malformed one. */
static int one_event(struct cel_dash_history *h, const json_t *e)
{
    const char *type = str(e, "type");
    const json_t *t = json_object_get(e, "timestamp");
    if (!type || !json_is_number(t) || !isfinite(json_number_value(t)) ||
        json_number_value(t) < 0 || json_number_value(t) > 1e11)
        return CEL_EINVAL;
    double ts = json_number_value(t);
    int rc = CEL_OK;
    bool known = false;
    if (strncmp(type, "task-", 5) == 0) {
        for (size_t i = 0; i < sizeof task_kinds / sizeof task_kinds[0]; i++)
            if (strcmp(type + 5, task_kinds[i].type) == 0) {
                known = true;
                rc = task_event(h, e, &task_kinds[i], ts);
            }
    } else if (strcmp(type, "worker-online") == 0 || strcmp(type, "worker-heartbeat") == 0 ||
               strcmp(type, "worker-offline") == 0) {
        known = true;
        rc = worker_event(h, e, type + 7, ts);
    }
    if (rc == CEL_OK) {
        if (known)
            h->stats.ingested++;
        else
            h->stats.ignored++;
    }
    return rc;
}

int cel__dash_history_ingest(struct cel_dash_history *h, const char *event_json, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(event_json, len, 0, &jerr);
    if (!root || (!json_is_object(root) && !json_is_array(root))) {
        h->stats.malformed++;
        json_decref(root);
        return CEL_OK;
    }
    int rc = cel__dash_db_begin(h);
    size_t n = json_is_array(root) ? json_array_size(root) : 1;
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        const json_t *e = json_is_array(root) ? json_array_get(root, i) : root;
        int erc = json_is_object(e) ? one_event(h, e) : CEL_EINVAL;
        if (erc == CEL_EINVAL)
            h->stats.malformed++;
        else
            rc = erc;
        h->pending++;
    }
    json_decref(root);
    if (rc == CEL_OK && h->pending >= CEL_DASH_HISTORY_BATCH_MAX)
        rc = cel__dash_history_flush(h);
    return rc;
}
