/*
 * test_dash_history.c - the dashboard's history store: Celery events in
 * (celeriac's task.multi batches and Python Celery's single events),
 * Flower-shaped JSON out, trends, retention, malformed input.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "celeriac/error.h"
#include "dashboard/history.h"
#include "testing.h"

static int64_t base; /* two hours ago, on a minute */

static struct cel_dash_history *open_store(unsigned days, size_t rows)
{
    struct cel_dash_history_opts o = {days, rows};
    struct cel_dash_history *h;
    char why[256] = "";
    if (cel__dash_history_open("history.db", &o, &h, why, sizeof why) != 0)
        cel_test_fail(__FILE__, __LINE__, "open: %s", why);
    return h;
}

static void ingest(struct cel_dash_history *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ingest(struct cel_dash_history *h, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ASSERT_OK(cel__dash_history_ingest(h, buf, strlen(buf)));
}

static json_t *parse(char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v)
        cel_test_fail(__FILE__, __LINE__, "bad JSON (%s): %s", e.text, text);
    free(text);
    return v;
}

static json_t *task(struct cel_dash_history *h, const char *id)
{
    char *s;
    ASSERT_OK(cel__dash_history_task_json(h, id, &s));
    return parse(s);
}

static const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static double nget(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static json_t *tasks(struct cel_dash_history *h, const char *query)
{
    struct cel_dash_task_query q;
    char why[256] = "";
    if (cel__dash_task_query_parse(query, &q, why, sizeof why) != 0)
        cel_test_fail(__FILE__, __LINE__, "query '%s': %s", query, why);
    char *s;
    ASSERT_OK(cel__dash_history_tasks_json(h, &q, &s));
    return parse(s);
}

/* The ids of a /api/tasks answer, in order, space-separated. */
static void ids_of(const json_t *list, char *out, size_t len)
{
    const char *k;
    json_t *v;
    out[0] = '\0';
    json_object_foreach((json_t *)list, k, v)
    {
        ASSERT_STREQ(sget(v, "uuid"), k);
        snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? " " : "", k);
    }
}

/* celeriac's shapes: worker events one by one, task events batched. */
static void feed_celeriac(struct cel_dash_history *h)
{
    ingest(h,
           "{\"type\":\"worker-online\",\"hostname\":\"w1@host\",\"pid\":42,\"utcoffset\":0,"
           "\"clock\":1,\"timestamp\":%lld.5,\"freq\":2.0,\"active\":0,\"processed\":0,"
           "\"loadavg\":[0.1,0.2,0.3],\"sw_ident\":\"celeriac\",\"sw_ver\":\"0.2.0\","
           "\"sw_sys\":\"Linux\"}",
           (long long)base);
    ingest(h,
           "[{\"type\":\"task-received\",\"hostname\":\"w1@host\",\"clock\":2,\"timestamp\":%lld,"
           "\"uuid\":\"ok-1\",\"name\":\"tasks.add\",\"args\":\"(2, 3)\",\"kwargs\":\"{}\","
           "\"root_id\":\"ok-1\",\"parent_id\":null,\"retries\":0,\"eta\":null,\"expires\":null},"
           "{\"type\":\"task-started\",\"hostname\":\"w1@host\",\"clock\":3,\"timestamp\":%lld,"
           "\"uuid\":\"ok-1\"},"
           "{\"type\":\"task-succeeded\",\"hostname\":\"w1@host\",\"clock\":4,\"timestamp\":%lld,"
           "\"uuid\":\"ok-1\",\"result\":\"5\",\"runtime\":0.25},"
           "{\"type\":\"task-received\",\"hostname\":\"w1@host\",\"clock\":5,\"timestamp\":%lld,"
           "\"uuid\":\"bad-1\",\"name\":\"tasks.div\",\"args\":\"(1, 0)\",\"kwargs\":\"{}\","
           "\"retries\":0},"
           "{\"type\":\"task-failed\",\"hostname\":\"w1@host\",\"clock\":6,\"timestamp\":%lld,"
           "\"uuid\":\"bad-1\",\"exception\":\"ZeroDivisionError('division by zero')\","
           "\"traceback\":\"Traceback (most recent call last): ZeroDivisionError\"}]",
           (long long)base + 1, (long long)base + 2, (long long)base + 3, (long long)base + 61,
           (long long)base + 62);
}

/* Python Celery's shapes (celery.events.Event, one per message). */
static void feed_celery(struct cel_dash_history *h)
{
    ingest(h,
           "{\"hostname\":\"celery@py\",\"utcoffset\":0,\"pid\":7,\"clock\":10,"
           "\"freq\":2.0,\"active\":1,\"processed\":3,\"loadavg\":[1.0,0.5,0.25],"
           "\"sw_ident\":\"py-celery\",\"sw_ver\":\"5.4.0\",\"sw_sys\":\"Linux\","
           "\"timestamp\":%lld.25,\"type\":\"worker-heartbeat\",\"local_received\":%lld.3}",
           (long long)base + 120, (long long)base + 120);
    ingest(h,
           "{\"hostname\":\"gen1@client\",\"utcoffset\":0,\"pid\":9,\"clock\":1,"
           "\"uuid\":\"py-1\",\"root_id\":\"py-1\",\"parent_id\":null,\"name\":\"tasks.mul\","
           "\"args\":\"(4, 4)\",\"kwargs\":\"{'x': 1}\",\"retries\":0,\"eta\":null,"
           "\"expires\":null,\"queue\":\"images\",\"exchange\":\"\",\"routing_key\":\"images\","
           "\"timestamp\":%lld.1,\"type\":\"task-sent\"}",
           (long long)base + 121);
    ingest(h,
           "{\"hostname\":\"celery@py\",\"utcoffset\":0,\"pid\":7,\"clock\":12,"
           "\"uuid\":\"py-1\",\"result\":\"16\",\"runtime\":1.5,\"timestamp\":%lld.9,"
           "\"type\":\"task-succeeded\"}",
           (long long)base + 123);
    /* The late task-received of the task that already succeeded. */
    ingest(h,
           "{\"hostname\":\"celery@py\",\"utcoffset\":0,\"pid\":7,\"clock\":11,"
           "\"uuid\":\"py-1\",\"name\":\"tasks.mul\",\"args\":\"(4, 4)\",\"kwargs\":\"{'x': 1}\","
           "\"retries\":0,\"timestamp\":%lld.2,\"type\":\"task-received\"}",
           (long long)base + 122);
}

static void test_ingest_both_shapes(void)
{
    struct cel_dash_history *h = open_store(0, 0);
    feed_celeriac(h);
    feed_celery(h);
    ASSERT_OK(cel__dash_history_flush(h));

    json_t *ok = task(h, "ok-1");
    ASSERT_STREQ(sget(ok, "state"), "SUCCESS");
    ASSERT_STREQ(sget(ok, "name"), "tasks.add");
    ASSERT_STREQ(sget(ok, "worker"), "w1@host");
    ASSERT_STREQ(sget(ok, "args"), "(2, 3)");
    ASSERT_STREQ(sget(ok, "result"), "5");
    ASSERT_EQ(nget(ok, "runtime") * 1000, 250);
    ASSERT_EQ(nget(ok, "received"), base + 1);
    ASSERT_EQ(nget(ok, "started"), base + 2);
    ASSERT_EQ(nget(ok, "succeeded"), base + 3);
    ASSERT_EQ(nget(ok, "timestamp"), base + 3);
    ASSERT(json_is_null(json_object_get(ok, "failed")));
    ASSERT_STREQ(sget(ok, "root_id"), "ok-1");
    ASSERT(json_is_null(json_object_get(ok, "parent_id")));
    json_decref(ok);

    json_t *bad = task(h, "bad-1");
    ASSERT_STREQ(sget(bad, "state"), "FAILURE");
    ASSERT_STREQ(sget(bad, "exception"), "ZeroDivisionError('division by zero')");
    ASSERT_CONTAINS(sget(bad, "traceback"), "ZeroDivisionError");
    json_decref(bad);

    /* State precedence: the late task-received fills in, never demotes. */
    json_t *py = task(h, "py-1");
    ASSERT_STREQ(sget(py, "state"), "SUCCESS");
    ASSERT_STREQ(sget(py, "worker"), "celery@py");
    ASSERT_STREQ(sget(py, "client"), "gen1@client");
    ASSERT_STREQ(sget(py, "queue"), "images");
    ASSERT_STREQ(sget(py, "routing_key"), "images");
    ASSERT_STREQ(sget(py, "kwargs"), "{'x': 1}");
    ASSERT(fabs(nget(py, "received") - (base + 122.2)) < 1e-6);
    ASSERT(fabs(nget(py, "sent") - (base + 121.1)) < 1e-6);
    ASSERT_EQ(json_integer_value(json_object_get(py, "clock")), 12);
    json_decref(py);

    char *s;
    ASSERT_EQ(cel__dash_history_task_json(h, "nope", &s), CEL_ENOTFOUND);
    ASSERT(s == NULL);

    ASSERT_OK(cel__dash_history_workers_json(h, (double)base + 121, &s));
    json_t *w = parse(s);
    json_t *w1 = json_object_get(w, "w1@host"), *py_w = json_object_get(w, "celery@py");
    ASSERT_STREQ(sget(w1, "sw_ident"), "celeriac");
    ASSERT_STREQ(sget(w1, "status"), "offline"); /* no heartbeat for 120 s */
    ASSERT_EQ(json_integer_value(json_object_get(w1, "succeeded")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(w1, "failed")), 1);
    ASSERT_EQ(json_array_size(json_object_get(w1, "loadavg")), 3);
    ASSERT_STREQ(sget(py_w, "status"), "online");
    ASSERT(json_is_true(json_object_get(py_w, "online")));
    ASSERT_EQ(json_integer_value(json_object_get(py_w, "processed")), 3);
    ASSERT_EQ(json_integer_value(json_object_get(py_w, "succeeded")), 1);
    json_decref(w);

    struct cel_dash_history_stats st;
    cel__dash_history_stats(h, &st);
    ASSERT_EQ(st.ingested, 10);
    ASSERT_EQ(st.malformed, 0);
    cel__dash_history_close(h);

    /* It is on disk: a new handle sees it. */
    h = open_store(0, 0);
    ASSERT_OK(cel__dash_history_task_json(h, "bad-1", &s));
    free(s);
    cel__dash_history_close(h);
}

static void test_state_precedence_and_retries(void)
{
    struct cel_dash_history *h = open_store(0, 0);
#define EV(type, t, extra)                                                                         \
    ingest(h, "{\"type\":\"task-%s\",\"hostname\":\"w@h\",\"uuid\":\"r-1\",\"timestamp\":%lld%s}", \
           type, (long long)base + (t), extra)
    EV("started", 2, "");
    EV("received", 1, ",\"retries\":0,\"name\":\"tasks.flaky\"");
    json_t *t = task(h, "r-1");
    ASSERT_STREQ(sget(t, "state"), "STARTED");
    json_decref(t);
    EV("retried", 3, ",\"exception\":\"Retry()\"");
    EV("received", 4, ",\"retries\":1");
    t = task(h, "r-1");
    ASSERT_STREQ(sget(t, "state"), "RECEIVED"); /* the next attempt */
    ASSERT_EQ(json_integer_value(json_object_get(t, "retries")), 1);
    json_decref(t);
    EV("failed", 6, ",\"exception\":\"E()\"");
    EV("started", 5, "");
    EV("succeeded", 7, ""); /* a second final state does not replace the first */
    t = task(h, "r-1");
    ASSERT_STREQ(sget(t, "state"), "FAILURE");
    ASSERT_EQ(nget(t, "started"), base + 5);
    ASSERT_EQ(nget(t, "received"), base + 4);
    json_decref(t);
#undef EV
    cel__dash_history_close(h);
}

static void test_query_filters_sort_pages(void)
{
    struct cel_dash_history *h = open_store(0, 0);
    feed_celeriac(h);
    feed_celery(h);
    char ids[512];
    json_t *l = tasks(h, "");
    ids_of(l, ids, sizeof ids);
    ASSERT_STREQ(ids, "py-1 bad-1 ok-1"); /* newest first */
    json_decref(l);

    static const struct {
        const char *query, *ids;
    } rows[] = {
        {"state:FAILURE", "bad-1"},
        {"state:failure state:success sort:name", "ok-1 bad-1 py-1"},
        {"name:tasks.add", "ok-1"},
        {"worker:celery@py", "py-1"},
        {"queue:images", "py-1"},
        {"\"(4, 4)\"", "py-1"},
        {"division", "bad-1"},
        {"\"{'x': 1}\" 16", "py-1"},
        {"5 nothing-like-this", ""},
        {"sort:runtime", "bad-1 ok-1 py-1"},
        {"sort:-runtime", "py-1 ok-1 bad-1"},
        {"sort:timestamp:asc limit:2", "ok-1 bad-1"},
        {"sort:timestamp:asc limit:2 offset:2", "py-1"},
        {"name:x' OR '1'='1", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        l = tasks(h, rows[i].query);
        ids_of(l, ids, sizeof ids);
        if (strcmp(ids, rows[i].ids) != 0)
            cel_test_fail(__FILE__, __LINE__, "'%s' gave '%s', not '%s'", rows[i].query, ids,
                          rows[i].ids);
        json_decref(l);
    }
    char q1[64], q2[64];
    snprintf(q1, sizeof q1, "after:%lld", (long long)base + 60);
    snprintf(q2, sizeof q2, "before:%lld", (long long)base + 60);
    l = tasks(h, q1);
    ids_of(l, ids, sizeof ids);
    ASSERT_STREQ(ids, "py-1 bad-1");
    json_decref(l);
    l = tasks(h, q2);
    ids_of(l, ids, sizeof ids);
    ASSERT_STREQ(ids, "ok-1");
    json_decref(l);

    struct cel_dash_task_query q;
    const char *k[] = {"state", "limit"}, *v[] = {"SUCCESS", "1"};
    char why[128];
    size_t n;
    ASSERT_OK(cel__dash_task_query_from_flower(k, v, 2, &q, why, sizeof why));
    ASSERT_OK(cel__dash_history_tasks_count(h, &q, &n));
    ASSERT_EQ(n, 2);
    char *s;
    ASSERT_OK(cel__dash_history_tasks_json(h, &q, &s));
    l = parse(s);
    ids_of(l, ids, sizeof ids);
    ASSERT_STREQ(ids, "py-1");
    json_decref(l);
    cel__dash_history_close(h);
}

static void test_trends(void)
{
    struct cel_dash_history *h = open_store(0, 0);
    feed_celeriac(h); /* ok-1 in minute 0, bad-1 in minute 1 */
    feed_celery(h);   /* py-1 in minute 2 */
    for (int i = 0; i < 10; i++)
        ingest(h,
               "{\"type\":\"task-succeeded\",\"hostname\":\"w1@host\",\"uuid\":\"many-%d\","
               "\"timestamp\":%lld,\"runtime\":%g}",
               i, (long long)base + 180 + i, i < 9 ? 0.010 : 2.0);
    char *s;
    ASSERT_OK(cel__dash_history_trend_json(h, "throughput", base, base + 240, 60, NULL, &s));
    json_t *t = parse(s);
    ASSERT_STREQ(sget(t, "kind"), "throughput");
    json_t *p = json_object_get(t, "points");
    ASSERT_EQ(json_array_size(p), 4);
    static const int ok[] = {1, 0, 1, 10}, bad[] = {0, 1, 0, 0};
    for (size_t i = 0; i < 4; i++) {
        json_t *pt = json_array_get(p, i);
        ASSERT_EQ(nget(pt, "t"), base + 60 * (int64_t)i);
        ASSERT_EQ(nget(pt, "succeeded"), ok[i]);
        ASSERT_EQ(nget(pt, "failed"), bad[i]);
    }
    json_decref(t);

    ASSERT_OK(
        cel__dash_history_trend_json(h, "throughput", base, base + 240, 120, "tasks.div", &s));
    t = parse(s);
    p = json_object_get(t, "points");
    ASSERT_EQ(json_array_size(p), 2);
    ASSERT_EQ(nget(json_array_get(p, 0), "failed"), 1);
    ASSERT_EQ(nget(json_array_get(p, 1), "succeeded"), 0);
    json_decref(t);

    ASSERT_OK(cel__dash_history_trend_json(h, "runtime", base, base + 240, 60, NULL, &s));
    t = parse(s);
    p = json_object_get(t, "points");
    json_t *m3 = json_array_get(p, 3);
    ASSERT_EQ(nget(m3, "count"), 10);
    ASSERT(fabs(nget(m3, "p50") - 0.010) < 0.0015);
    ASSERT(fabs(nget(m3, "p99") - 2.0) < 0.2);
    ASSERT(json_is_null(json_object_get(json_array_get(p, 1), "p50"))); /* only a failure */
    ASSERT(fabs(nget(json_array_get(p, 2), "p90") - 1.5) < 0.15);
    json_decref(t);

    const char *queues[] = {"celery", "images"};
    int64_t lens[] = {5, 7};
    ASSERT_OK(cel__dash_history_sample(h, base + 10, queues, lens, 2, 1));
    lens[0] = 6;
    ASSERT_OK(cel__dash_history_sample(h, base + 50, queues, lens, 2, 2));
    ASSERT_OK(cel__dash_history_trend_json(h, "queues", base, base + 120, 60, NULL, &s));
    t = parse(s);
    p = json_object_get(t, "points");
    ASSERT_EQ(nget(json_object_get(json_array_get(p, 0), "queues"), "celery"), 6);
    ASSERT_EQ(json_object_size(json_object_get(json_array_get(p, 1), "queues")), 0);
    json_decref(t);
    ASSERT_OK(cel__dash_history_trend_json(h, "workers", base, base + 120, 60, NULL, &s));
    t = parse(s);
    p = json_object_get(t, "points");
    ASSERT_EQ(nget(json_array_get(p, 0), "workers_online"), 2);
    ASSERT(json_is_null(json_object_get(json_array_get(p, 1), "workers_online")));
    json_decref(t);

    ASSERT_EQ(cel__dash_history_trend_json(h, "colour", base, base + 60, 60, NULL, &s), CEL_EINVAL);
    ASSERT_EQ(cel__dash_history_trend_json(h, "runtime", base, base + 60, 30, NULL, &s),
              CEL_EINVAL);
    ASSERT_EQ(cel__dash_history_trend_json(h, "runtime", base, base, 60, NULL, &s), CEL_EINVAL);
    cel__dash_history_close(h);
}

static void test_retention_by_days_and_rows(void)
{
    struct cel_dash_history *h = open_store(1, 3);
    int64_t now = base + 7200;
    for (int i = 0; i < 6; i++) /* two days old, then recent ones */
        ingest(h,
               "{\"type\":\"task-succeeded\",\"hostname\":\"w@h\",\"uuid\":\"t-%d\","
               "\"timestamp\":%lld,\"runtime\":0.1}",
               i, (long long)(i < 2 ? now - 2 * 86400 + i : now - 100 + i));
    ASSERT_OK(cel__dash_history_flush(h));
    size_t removed = 0, n = 0;
    ASSERT_OK(cel__dash_history_prune(h, now, &removed));
    ASSERT_EQ(removed, 3); /* two by age, then the oldest beyond three */
    ASSERT_OK(cel__dash_history_tasks_count(h, NULL, &n));
    ASSERT_EQ(n, 3);
    char *s;
    ASSERT_EQ(cel__dash_history_task_json(h, "t-2", &s), CEL_ENOTFOUND);
    ASSERT_OK(cel__dash_history_task_json(h, "t-5", &s));
    free(s);
    /* The old minutes' aggregates went too. */
    ASSERT_OK(cel__dash_history_trend_json(h, "throughput", now - 2 * 86400 - 60,
                                           now - 2 * 86400 + 60, 120, NULL, &s));
    json_t *t = parse(s);
    ASSERT_EQ(nget(json_array_get(json_object_get(t, "points"), 0), "succeeded"), 0);
    json_decref(t);
    cel__dash_history_close(h);
}

static void test_malformed_counted_and_ignored(void)
{
    struct cel_dash_history *h = open_store(0, 0);
    static const char *bad[] = {
        "",
        "not json",
        "42",
        "\"text\"",
        "{\"type\":\"task-succeeded\",\"timestamp\":1}",               /* no uuid */
        "{\"type\":\"task-succeeded\",\"uuid\":\"x\"}",                /* no time */
        "{\"type\":\"worker-online\",\"timestamp\":1}",                /* no hostname */
        "{\"type\":7,\"timestamp\":1}",                                /* type not a string */
        "{\"type\":\"task-started\",\"uuid\":\"x\",\"timestamp\":-5}", /* bad time */
        "{\"type\":\"task-started\",\"uuid\":\"x\",\"timestamp\":1e300}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_OK(cel__dash_history_ingest(h, bad[i], strlen(bad[i])));
    /* In a batch, the good ones stay. */
    ingest(h,
           "[1, {\"type\":\"task-started\",\"uuid\":\"good\",\"timestamp\":%lld}, null,"
           " {\"type\":\"worker-custom\",\"hostname\":\"w\",\"timestamp\":1},"
           " {\"type\":\"task-started\",\"uuid\":\"odd\",\"timestamp\":%lld,"
           "  \"args\":[1,2],\"runtime\":\"fast\",\"retries\":\"many\",\"clock\":1e300}]",
           (long long)base, (long long)base);
    struct cel_dash_history_stats st;
    cel__dash_history_stats(h, &st);
    ASSERT_EQ(st.malformed, sizeof bad / sizeof bad[0] + 2);
    ASSERT_EQ(st.ingested, 2);
    ASSERT_EQ(st.ignored, 1);
    json_t *t = task(h, "odd");
    ASSERT_STREQ(sget(t, "args"), "[1,2]");
    ASSERT(json_is_null(json_object_get(t, "runtime")));
    json_decref(t);
    cel__dash_history_close(h);
}

static void test_batches_commit(void)
{
    struct cel_dash_history *h = open_store(0, 0);
    for (int i = 0; i < CEL_DASH_HISTORY_BATCH_MAX + 10; i++)
        ingest(h,
               "{\"type\":\"task-received\",\"hostname\":\"w@h\",\"uuid\":\"b-%d\","
               "\"timestamp\":%lld,\"name\":\"tasks.n\"}",
               i, (long long)base + i % 100);
    /* A second connection sees the first batch committed without a flush. */
    struct cel_dash_history *other = open_store(0, 0);
    size_t n;
    ASSERT_OK(cel__dash_history_tasks_count(other, NULL, &n));
    ASSERT_EQ(n, CEL_DASH_HISTORY_BATCH_MAX);
    ASSERT_OK(cel__dash_history_flush(h));
    ASSERT_OK(cel__dash_history_tasks_count(other, NULL, &n));
    ASSERT_EQ(n, CEL_DASH_HISTORY_BATCH_MAX + 10);
    cel__dash_history_close(other);
    cel__dash_history_close(h);
}

/* Streaming events holds nothing per task in memory: what SQLite holds
 * (its page cache, bounded) is the same after 5,000 tasks and 30,000. */
static void test_memory_stays_flat(void)
{
    struct cel_dash_history *h = open_store(0, 0);
    int64_t at_5k = 0;
    for (int i = 0; i < 30000; i++) {
        ingest(h,
               "[{\"type\":\"task-received\",\"hostname\":\"w@h\",\"uuid\":\"m-%d\","
               "\"timestamp\":%lld,\"name\":\"tasks.n\",\"args\":\"(%d,)\"},"
               "{\"type\":\"task-succeeded\",\"hostname\":\"w@h\",\"uuid\":\"m-%d\","
               "\"timestamp\":%lld,\"runtime\":0.01,\"result\":\"%d\"}]",
               i, (long long)base + i / 10, i, i, (long long)base + i / 10, i);
        if (i == 5000)
            at_5k = sqlite3_memory_used();
    }
    ASSERT_OK(cel__dash_history_flush(h));
    int64_t at_30k = sqlite3_memory_used();
    if (at_30k > at_5k + 1024 * 1024)
        cel_test_fail(__FILE__, __LINE__, "SQLite holds %lld bytes after 30k tasks, %lld after 5k",
                      (long long)at_30k, (long long)at_5k);
    size_t n;
    ASSERT_OK(cel__dash_history_tasks_count(h, NULL, &n));
    ASSERT_EQ(n, 30000);
    cel__dash_history_close(h);
}

int main(void)
{
    base = ((int64_t)time(NULL) - 7200) / 60 * 60;
    TEST_RUN(test_ingest_both_shapes);
    TEST_RUN(test_state_precedence_and_retries);
    TEST_RUN(test_query_filters_sort_pages);
    TEST_RUN(test_trends);
    TEST_RUN(test_retention_by_days_and_rows);
    TEST_RUN(test_malformed_counted_and_ignored);
    TEST_RUN(test_batches_commit);
    TEST_RUN(test_memory_stays_flat);
    return 0;
}
