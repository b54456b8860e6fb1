/*
 * test_cli_control.c - `celeriac status|inspect|control|queues|events`
 * against a real celeriac worker, on SQLite and on Redis:
 *  - status counts the worker; inspect ping answers pong, as text and
 *    as JSON; a destination nobody has gives exit 3 and Celery's message;
 *  - inspect active shows a running task, registered the task names;
 *  - control rate_limit gets the worker's OK;
 *  - queues shows the consumed queue with its consumer and length;
 *  - events --dump prints the worker's heartbeats, one JSON per line;
 *    the live view prints plain snapshots off a terminal and ends
 *    cleanly on Ctrl-C;
 *  - control pause: 100 tasks published to a paused queue do not run
 *    while it is paused (queues says so), and after resume each runs
 *    exactly once;
 *  - usage errors exit 2.
 */
#include <signal.h>
#include <stdarg.h>

#include <celeriac.h>
#include <jansson.h>

#include "record_file.h"
#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"
#define NPAUSED  100

static const char *broker_url; /* NULL: ./celeriac.db */
static char node[64];
static char record[4200];

/* Runs `celeriac ARGS... [-b URL]` (args NULL-terminated); returns the
 * exit code, stdout and stderr (caller frees). */
static int cli(char **out, char **err, ...)
{
    const char *tail[] = {"-b", broker_url, NULL};
    va_list ap;
    va_start(ap, err);
    int rc = cel_test_cli_va(out, err, broker_url ? tail : NULL, ap);
    va_end(ap);
    return rc;
}

static void expect_ok(int rc, const char *out, const char *err)
{
    if (rc != 0)
        cel_test_fail(__FILE__, __LINE__, "exit %d\nstdout: %s\nstderr: %s", rc, out, err);
}

static void check_status_and_ping(void)
{
    char *out, *err, want[128];
    int rc = cli(&out, &err, "status", "-t", "2", NULL);
    expect_ok(rc, out, err);
    snprintf(want, sizeof want, "->  %s: OK", node);
    ASSERT_CONTAINS(out, want);
    ASSERT_CONTAINS(out, "1 node online.");
    free(out);
    free(err);

    rc = cli(&out, &err, "inspect", "ping", "-d", node, "-t", "5", NULL);
    expect_ok(rc, out, err);
    ASSERT_CONTAINS(out, want);
    ASSERT_CONTAINS(out, "    pong");
    free(out);
    free(err);

    rc = cli(&out, &err, "inspect", "ping", "--json", "-t", "2", NULL);
    expect_ok(rc, out, err);
    json_t *v = json_loads(out, 0, NULL);
    ASSERT(v);
    ASSERT_EQ(json_object_size(v), 1);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(v, node), "ok")), "pong");
    json_decref(v);
    free(out);
    free(err);

    int64_t t0 = cel_test_now_ms();
    rc = cli(&out, &err, "inspect", "ping", "-d", "nobody@nowhere", "-t", "0.3", NULL);
    ASSERT_EQ(rc, 3);
    ASSERT(cel_test_now_ms() - t0 < 10000);
    ASSERT_CONTAINS(err, "No nodes replied within time constraint");
    ASSERT_EQ(strlen(out), 0);
    free(out);
    free(err);
}

static void check_active_and_registered(cel_client *c)
{
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.task_id = "sleeper-task");
    ASSERT_OK(cel_client_send(c, "test.sleep", "[5]", NULL, &o, NULL));
    /* Until the worker has started it: poll, the reply is the clock. */
    char *out = NULL, *err = NULL;
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    bool seen = false;
    while (!seen && cel_test_now_ms() < deadline) {
        free(out);
        free(err);
        int rc = cli(&out, &err, "inspect", "active", "-d", node, "-t", "5", NULL);
        expect_ok(rc, out, err);
        seen = strstr(out, "test.sleep[sleeper-task]") != NULL;
    }
    if (!seen)
        cel_test_fail(__FILE__, __LINE__, "inspect active never showed the task: %s", out);
    ASSERT_CONTAINS(out, "running");
    free(out);
    free(err);

    int rc = cli(&out, &err, "inspect", "registered", "-d", node, NULL);
    expect_ok(rc, out, err);
    ASSERT_CONTAINS(out, "* test.sleep");
    ASSERT_CONTAINS(out, "* test.record");
    free(out);
    free(err);
}

static void check_control(void)
{
    char *out, *err;
    int rc = cli(&out, &err, "control", "rate_limit", "test.record", "1000/s", "-d", node, NULL);
    expect_ok(rc, out, err);
    ASSERT_CONTAINS(out, "OK");
    ASSERT_CONTAINS(out, "rate limit");
    free(out);
    free(err);
}

static void check_queues(void)
{
    char *out, *err;
    int rc = cli(&out, &err, "queues", "--json", "-t", "2", NULL);
    expect_ok(rc, out, err);
    json_t *v = json_loads(out, 0, NULL);
    ASSERT(json_is_array(v));
    size_t i;
    json_t *q;
    bool found = false;
    json_array_foreach(v, i, q)
    {
        if (strcmp(json_string_value(json_object_get(q, "name")), "celery") != 0)
            continue;
        found = true;
        ASSERT_STREQ(json_string_value(json_array_get(json_object_get(q, "consumers"), 0)), node);
        ASSERT(json_is_false(json_object_get(q, "paused")));
        ASSERT(json_is_integer(json_object_get(q, "messages")));
    }
    ASSERT(found);
    json_decref(v);
    free(out);
    free(err);

    rc = cli(&out, &err, "queues", NULL);
    expect_ok(rc, out, err);
    ASSERT_CONTAINS(out, "QUEUE");
    ASSERT_CONTAINS(out, node);
    free(out);
    free(err);
}

static void check_events_dump(void)
{
    char *out, *err;
    /* Heartbeats come every 2 s: 5 s hold at least two. */
    int rc = cli(&out, &err, "events", "--dump", "--duration", "5", NULL);
    expect_ok(rc, out, err);
    ASSERT(cel_test_count(out, "\"worker-heartbeat\"") >= 1);
    ASSERT_CONTAINS(out, node);
    /* One JSON object per line. */
    char *line = strtok(out, "\n");
    while (line) {
        json_t *ev = json_loads(line, 0, NULL);
        ASSERT(json_is_object(ev));
        ASSERT(json_is_real(json_object_get(ev, "local_received")));
        json_decref(ev);
        line = strtok(NULL, "\n");
    }
    free(out);
    free(err);

    /* The live view, not on a terminal: plain snapshots naming the worker. */
    rc = cli(&out, &err, "events", "--duration", "3", "--interval", "1", NULL);
    expect_ok(rc, out, err);
    ASSERT_CONTAINS(out, "WORKER");
    ASSERT_CONTAINS(out, node);
    ASSERT(!strchr(out, '\033'));
    free(out);
    free(err);

    /* Ctrl-C ends the view cleanly, with a last snapshot. */
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"events",
                    (char *)"--interval",
                    (char *)"0.2",
                    broker_url ? (char *)"-b" : NULL,
                    (char *)broker_url,
                    NULL};
    pid_t pid = cel_test_spawn(argv, "events.log");
    ASSERT(cel_test_wait_log("events.log", node, WAIT_MS));
    ASSERT_OK(kill(pid, SIGINT));
    ASSERT_EQ(cel_test_wait(pid, 5000), 0);
}

/* The paused queue's entry of `queues --json -Q pq`. */
static void expect_queue(const char *name, bool paused, long long messages)
{
    char *out, *err;
    int rc = cli(&out, &err, "queues", "--json", "-Q", name, NULL);
    expect_ok(rc, out, err);
    json_t *v = json_loads(out, 0, NULL);
    json_t *q = json_array_get(v, 0);
    ASSERT_STREQ(json_string_value(json_object_get(q, "name")), name);
    ASSERT_EQ(json_is_true(json_object_get(q, "paused")), paused);
    if (messages >= 0)
        ASSERT_EQ(json_integer_value(json_object_get(q, "messages")), messages);
    json_decref(v);
    free(out);
    free(err);
}

static void check_pause(cel_client *c)
{
    char *out, *err;
    int rc = cli(&out, &err, "control", "pause", "pq", NULL);
    expect_ok(rc, out, err);
    ASSERT_CONTAINS(out, "queue pq paused");
    free(out);
    free(err);

    char *ids[NPAUSED];
    for (int i = 0; i < NPAUSED; i++) {
        char id[64];
        snprintf(id, sizeof id, "paused-%d", i);
        ids[i] = strdup(id);
        cel_send_options o = CEL_SEND_OPTIONS_INIT(.queue = "pq", .task_id = id);
        ASSERT_OK(cel_client_send(c, "test.record", "[\"p\"]", NULL, &o, NULL));
    }
    /* Nothing to wait for: the point is that nothing happens. 3 s is
     * more than a worker needs to run 100 tasks it may take. */
    cel_test_sleep_ms(3000);
    struct cel_test_runs runs = cel_test_count_runs(record, ids, NPAUSED);
    ASSERT_EQ(runs.never, NPAUSED);
    expect_queue("pq", true, NPAUSED);

    rc = cli(&out, &err, "control", "resume", "pq", NULL);
    expect_ok(rc, out, err);
    free(out);
    free(err);
    struct cel_test_tally t = cel_test_wait_all(c, ids, NPAUSED, NULL, WAIT_MS, 10000);
    cel_test_tally_print("after resume", &t);
    ASSERT_EQ(t.success, NPAUSED);
    runs = cel_test_count_runs(record, ids, NPAUSED);
    cel_test_runs_print("after resume", &runs);
    ASSERT_EQ(runs.once, NPAUSED);
    expect_queue("pq", false, 0);
    for (int i = 0; i < NPAUSED; i++)
        free(ids[i]);
}

static void check_usage_errors(void)
{
    char *out, *err;
    ASSERT_EQ(cli(&out, &err, "inspect", "nosuch", NULL), 2);
    ASSERT_CONTAINS(err, "unknown inspect command");
    free(out);
    free(err);
    ASSERT_EQ(cli(&out, &err, "control", "pause", "q", "-d", "w1@x", NULL), 2);
    free(out);
    free(err);
    ASSERT_EQ(cli(&out, &err, "control", "rate_limit", "only-one", NULL), 2);
    ASSERT_CONTAINS(err, "TASK RATE");
    free(out);
    free(err);
    ASSERT_EQ(cli(&out, &err, "inspect", "ping", "-t", "-1", NULL), 2);
    free(out);
    free(err);
    ASSERT_EQ(cli(&out, &err, "control", "--help", NULL), 0);
    ASSERT_CONTAINS(out, "pool_grow [N]");
    free(out);
    free(err);
}

static void run_all(const char *url, const char *tag)
{
    broker_url = url;
    snprintf(node, sizeof node, "w1@%s", tag);
    snprintf(record, sizeof record, "%s/record-%s.txt", cel_test_dir(), tag);
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
    cel_client *c = cel_test_client(url, NULL);
    const char *extra[] = {"-c", "2", "-n", node, "-Q", "celery,pq", url ? "-b" : NULL, url, NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);

    check_usage_errors();
    check_status_and_ping();
    check_active_and_registered(c);
    check_control();
    check_queues();
    check_events_dump();
    check_pause(c);

    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    cel_client_free(c);
}

static void test_cli_control_sqlite(void)
{
    run_all(NULL, "sqlite");
}

static void test_cli_control_redis(void)
{
    struct cel_test_redis r;
    cel_test_redis_setup(&r);
    run_all(r.url, "redis");
    cel_test_redis_stop(&r);
}

int main(void)
{
    TEST_RUN(test_cli_control_sqlite);
    TEST_RUN(test_cli_control_redis);
    return 0;
}
