/*
 * history_trend.c - the trends graphs' points (history.h): throughput
 * and runtime percentiles from the per-minute aggregates ingest keeps,
 * queue lengths and workers online from the samples.
 *
 * The aggregates survive the tasks they came from being pruned, so a
 * 30-day graph does not need 30 days of task rows.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard/history.h"
#include "dashboard/history_db.h"

#define MAX_POINTS 10000

struct range {
    int64_t from, to, step;
    size_t n; /* points */
};

static int check_range(struct cel_dash_history *h, int64_t from, int64_t to, int64_t step,
                       struct range *r)
{
    if (step < 60 || step % 60 != 0)
        return cel__err(&h->err, CEL_EINVAL, "step must be a multiple of 60 seconds, not %lld",
                        (long long)step);
    if (from < 0 || to <= from)
        return cel__err(&h->err, CEL_EINVAL, "empty time range");
    if ((to - from) / step >= MAX_POINTS)
        return cel__err(&h->err, CEL_EINVAL, "more than %d points", MAX_POINTS);
    *r = (struct range){from, to, step, (size_t)((to - from + step - 1) / step)};
    return CEL_OK;
}

/* The minutes of the range: [from, to) in Unix minutes, rounded so a
 * step covers the minutes that start inside it. */
static void bind_minutes(sqlite3_stmt *st, const struct range *r, const char *task)
{
    sqlite3_bind_int64(st, 1, r->from);
    sqlite3_bind_int64(st, 2, r->step);
    sqlite3_bind_int64(st, 3, (r->from + 59) / 60);
    sqlite3_bind_int64(st, 4, (r->to + 59) / 60);
    cel__dash_bind_text(st, 5, task);
}

static json_t *points_array(const struct range *r, const char *const *keys, size_t nkeys)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->n; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "t", json_integer(r->from + (int64_t)i * r->step));
        for (size_t k = 0; k < nkeys; k++)
            json_object_set_new(p, keys[k], json_integer(0));
        json_array_append_new(a, p);
    }
    return a;
}

static int throughput(struct cel_dash_history *h, const struct range *r, const char *task,
                      json_t *points)
{
    sqlite3_stmt *st = cel__dash_db_prepare(
        h, "SELECT (minute * 60 - ?1) / ?2, sum(succeeded), sum(failed), sum(retried)"
           " FROM task_minutes WHERE minute >= ?3 AND minute < ?4"
           " AND (?5 IS NULL OR name = ?5) GROUP BY 1");
    if (!st)
        return CEL_EIO;
    bind_minutes(st, r, task);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *p = json_array_get(points, (size_t)sqlite3_column_int64(st, 0));
        json_object_set_new(p, "succeeded", json_integer(sqlite3_column_int64(st, 1)));
        json_object_set_new(p, "failed", json_integer(sqlite3_column_int64(st, 2)));
        json_object_set_new(p, "retried", json_integer(sqlite3_column_int64(st, 3)));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, "cannot read throughput");
}

/* The value below which a fraction q of the counted runtimes fall. */
static double percentile(const int64_t *counts, int64_t total, double q)
{
    int64_t want = (int64_t)ceil(q * (double)total), seen = 0;
    if (want < 1)
        want = 1;
    for (int b = 0; b < CEL_DASH_RUNTIME_BUCKETS; b++) {
        seen += counts[b];
        if (seen >= want)
            return cel__dash_runtime_bucket_mid(b);
    }
    return cel__dash_runtime_bucket_mid(CEL_DASH_RUNTIME_BUCKETS - 1);
}

static void set_percentiles(json_t *p, const int64_t *counts)
{
    int64_t total = 0;
    for (int b = 0; b < CEL_DASH_RUNTIME_BUCKETS; b++)
        total += counts[b];
    json_object_set_new(p, "count", json_integer(total));
    static const struct {
        const char *key;
        double q;
    } ps[] = {{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        json_object_set_new(p, ps[i].key,
                            total ? json_real(percentile(counts, total, ps[i].q)) : json_null());
}

static int runtime(struct cel_dash_history *h, const struct range *r, const char *task,
                   json_t *points)
{
    sqlite3_stmt *st = cel__dash_db_prepare(
        h, "SELECT (minute * 60 - ?1) / ?2, bucket, sum(count) FROM runtime_buckets"
           " WHERE minute >= ?3 AND minute < ?4 AND (?5 IS NULL OR name = ?5)"
           " GROUP BY 1, 2 ORDER BY 1, 2");
    if (!st)
        return CEL_EIO;
    bind_minutes(st, r, task);
    int64_t counts[CEL_DASH_RUNTIME_BUCKETS] = {0};
    int64_t cur = -1;
    int rc;
    for (size_t i = 0; i < r->n; i++)
        set_percentiles(json_array_get(points, i), counts);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t idx = sqlite3_column_int64(st, 0);
        int b = sqlite3_column_int(st, 1);
        if (idx != cur) {
            if (cur >= 0)
                set_percentiles(json_array_get(points, (size_t)cur), counts);
            memset(counts, 0, sizeof counts);
            cur = idx;
        }
        if (b >= 0 && b < CEL_DASH_RUNTIME_BUCKETS)
            counts[b] += sqlite3_column_int64(st, 2);
    }
    if (cur >= 0)
        set_percentiles(json_array_get(points, (size_t)cur), counts);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, "cannot read runtimes");
}

/* The last sample of each step: workers online, or the queues object. */
static int sampled(struct cel_dash_history *h, const struct range *r, bool queues, json_t *points)
{
    sqlite3_stmt *st =
        cel__dash_db_prepare(h, "SELECT (ts - ?1) / ?2, workers_online, queues FROM samples"
                                " WHERE ts >= ?1 AND ts < ?3 ORDER BY ts");
    if (!st)
        return CEL_EIO;
    sqlite3_bind_int64(st, 1, r->from);
    sqlite3_bind_int64(st, 2, r->step);
    sqlite3_bind_int64(st, 3, r->to);
    const char *key = queues ? "queues" : "workers_online";
    for (size_t i = 0; i < r->n; i++)
        json_object_set_new(json_array_get(points, i), key, queues ? json_object() : json_null());
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *p = json_array_get(points, (size_t)sqlite3_column_int64(st, 0));
        if (!queues) {
            json_object_set_new(p, key, json_integer(sqlite3_column_int64(st, 1)));
            continue;
        }
        json_t *q = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
        json_object_set_new(p, key, json_is_object(q) ? q : json_object());
        if (!json_is_object(q))
            json_decref(q);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CEL_OK : cel__dash_db_fail(h, CEL_EIO, "cannot read samples");
}

int cel__dash_history_trend_json(struct cel_dash_history *h, const char *kind, int64_t from_s,
                                 int64_t to_s, int64_t step_s, const char *task_name, char **json)
{
    *json = NULL;
    struct range r;
    int rc = check_range(h, from_s, to_s, step_s, &r);
    if (rc)
        return rc;
    static const char *const counts[] = {"succeeded", "failed", "retried"};
    json_t *points;
    if (strcmp(kind, "throughput") == 0) {
        points = points_array(&r, counts, 3);
        rc = points ? throughput(h, &r, task_name, points) : CEL_ENOMEM;
    } else if (strcmp(kind, "runtime") == 0) {
        points = points_array(&r, NULL, 0);
        rc = points ? runtime(h, &r, task_name, points) : CEL_ENOMEM;
    } else if (strcmp(kind, "workers") == 0 || strcmp(kind, "queues") == 0) {
        points = points_array(&r, NULL, 0);
        rc = points ? sampled(h, &r, kind[0] == 'q', points) : CEL_ENOMEM;
    } else {
        return cel__err(&h->err, CEL_EINVAL, "unknown trend '%s'", kind);
    }
    if (rc) {
        json_decref(points);
        return rc;
    }
    json_t *root = json_object();
    json_object_set_new(root, "kind", json_string(kind));
    json_object_set_new(root, "from", json_integer(from_s));
    json_object_set_new(root, "to", json_integer(to_s));
    json_object_set_new(root, "step", json_integer(step_s));
    json_object_set_new(root, "task", task_name ? json_string(task_name) : json_null());
    json_object_set_new(root, "points", points);
    return cel__dash_dump(h, root, json);
}

int cel__dash_history_sample(struct cel_dash_history *h, int64_t ts_s, const char *const *queues,
                             const int64_t *lengths, size_t nqueues, int64_t workers_online)
{
    json_t *q = json_object();
    for (size_t i = 0; q && i < nqueues; i++)
        json_object_set_new(q, queues[i], json_integer(lengths[i]));
    char *text = q ? json_dumps(q, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(q);
    if (!text)
        return cel__err(&h->err, CEL_ENOMEM, "out of memory");
    int rc = cel__dash_db_begin(h);
    sqlite3_stmt *st = rc ? NULL
                          : cel__dash_db_prepare(h, "INSERT OR REPLACE INTO samples (ts,"
                                                    " workers_online, queues) VALUES (?, ?, ?)");
    if (st) {
        sqlite3_bind_int64(st, 1, ts_s);
        sqlite3_bind_int64(st, 2, workers_online);
        sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
        rc = cel__dash_db_run(h, st, "cannot store a sample");
        sqlite3_finalize(st);
    } else if (!rc) {
        rc = CEL_EIO;
    }
    free(text);
    return rc;
}
