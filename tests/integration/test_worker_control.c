/*
 * test_worker_control.c - a real worker answers remote control, through
 * the public cel_control_call(), on SQLite and on Redis:
 *  - ping by destination (and nobody else's), an unknown command's
 *    KeyError, clock, hello (and none to itself), memsample, report;
 *  - active lists the running task with its start time and process,
 *    reserved the one waiting behind it, query_task tells them apart;
 *  - registered shows rate limits, also one set at run time; a rate
 *    limit set at run time slows a task down and lifting it speeds it
 *    up again; bad rates and unknown tasks get Celery's errors;
 *  - time_limit at run time kills a task past its new hard limit, and
 *    its soft limit reaches the prefork child (forked before the command)
 *    and the solo worker: the task fails with SoftTimeLimitExceeded; a
 *    call's own soft limit still wins, and lifting the limits restores
 *    the task's own;
 *  - stats counts what ran; revoke replies and revoked lists it;
 *  - pool_grow and pool_shrink change the pool's size (stats says so),
 *    autoscale without --autoscale gets Celery's error; task events are
 *    switched on and off, heartbeat answers null;
 *  - cancel_consumer stops a queue (a task sent there waits) and
 *    add_consumer resumes it (the task runs);
 *  - shutdown is not answered, and the worker exits cleanly.
 */
#include <signal.h>

#include <celeriac.h>
#include <celeriac/control.h>
#include <jansson.h>

#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"

static char node[64];

/* The node's reply to `method`, or NULL when it did not answer within
 * timeout_s. dest NULL: broadcast (still only our worker listens). */
static json_t *call(cel_client *c, const char *method, const char *args, const char *dest,
                    double timeout_s)
{
    const char *d[] = {dest};
    cel_control_options o =
        CEL_CONTROL_OPTIONS_INIT(.timeout = timeout_s, .destination = dest ? d : NULL,
                                 .ndestination = dest ? 1 : 0);
    cel_control_replies *r = NULL;
    int rc = cel_control_call(c, method, args, &o, &r);
    if (rc != CEL_OK && rc != CEL_ETIMEDOUT)
        cel_test_fail(__FILE__, __LINE__, "%s: %s", method, cel_client_errmsg(c));
    json_t *v = NULL;
    for (size_t i = 0; r && i < cel_control_replies_count(r); i++)
        if (strcmp(cel_control_reply_node(r, i), node) == 0)
            v = json_loads(cel_control_reply_json(r, i), JSON_DECODE_ANY, NULL);
    cel_control_replies_free(r);
    return v;
}

static json_t *call_node(cel_client *c, const char *method, const char *args)
{
    json_t *v = call(c, method, args, node, 5);
    if (!v)
        cel_test_fail(__FILE__, __LINE__, "%s: no reply from %s", method, node);
    return v;
}

static void expect_ok_text(cel_client *c, const char *method, const char *args, const char *text)
{
    json_t *v = call_node(c, method, args);
    const char *got = json_string_value(json_object_get(v, "ok"));
    if (!got || strcmp(got, text) != 0)
        cel_test_fail(__FILE__, __LINE__, "%s: wanted ok \"%s\", got %s", method, text,
                      json_dumps(v, JSON_ENCODE_ANY));
    json_decref(v);
}

static void send(cel_client *c, const char *task, const char *args, const char *id,
                 const char *queue)
{
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.task_id = id, .queue = queue);
    ASSERT_OK(cel_client_send(c, task, args, NULL, &o, NULL));
}

static cel_state wait_state(cel_client *c, const char *id, int timeout_ms)
{
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(c, id, &r));
    int rc = cel_result_wait(r, timeout_ms);
    cel_state s = rc == CEL_OK ? cel_result_state(r) : CEL_STATE_PENDING;
    cel_result_free(r);
    return s;
}

/* The entry of a request-dict list whose id is `id`, borrowed. */
static json_t *find_id(json_t *list, const char *id)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *d = json_array_get(list, i);
        if (strcmp(json_string_value(json_object_get(d, "id")) ?: "", id) == 0)
            return d;
    }
    return NULL;
}

static void check_basics(cel_client *c)
{
    expect_ok_text(c, "ping", NULL, "pong");
    json_t *v = call(c, "ping", NULL, "nobody@nowhere", 0.5);
    ASSERT(v == NULL);

    v = call_node(c, "nosuchcmd", NULL);
    ASSERT_STREQ(json_string_value(json_object_get(v, "error")), "KeyError('nosuchcmd')");
    json_decref(v);

    v = call_node(c, "clock", NULL);
    ASSERT(json_integer_value(json_object_get(v, "clock")) > 0);
    json_decref(v);

    /* Mingle: a peer is answered, the worker's own hello is not. */
    v = call_node(c, "hello", "{\"from_node\": \"peer@x\", \"revoked\": {}}");
    ASSERT(json_is_object(json_object_get(v, "revoked")));
    ASSERT(json_is_integer(json_object_get(v, "clock")));
    json_decref(v);
    char self[128];
    snprintf(self, sizeof self, "{\"from_node\": \"%s\", \"revoked\": {}}", node);
    ASSERT(call(c, "hello", self, node, 1) == NULL);

    v = call_node(c, "memsample", NULL);
    ASSERT(json_integer_value(json_object_get(json_object_get(v, "parent"), "rss_kib")) > 0);
    json_decref(v);

    v = call_node(c, "report", NULL);
    ASSERT_CONTAINS(json_string_value(json_object_get(v, "ok")), "celeriac");
    json_decref(v);

    v = call_node(c, "conf", NULL);
    ASSERT_STREQ(json_string_value(json_object_get(v, "worker_hostname")), node);
    ASSERT(json_integer_value(json_object_get(v, "worker_concurrency")) == 1);
    json_decref(v);
}

static void check_active_reserved(cel_client *c)
{
    send(c, "test.sleep", "[3]", "ctl-running", NULL);
    send(c, "test.sleep", "[0.1]", "ctl-waiting", NULL);
    json_t *running = NULL;
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    json_t *active = NULL;
    while (!running && cel_test_now_ms() < deadline) {
        json_decref(active);
        active = call_node(c, "active", NULL);
        running = find_id(active, "ctl-running");
        if (!running)
            cel_test_sleep_ms(50);
    }
    ASSERT(running);
    ASSERT_STREQ(json_string_value(json_object_get(running, "name")), "test.sleep");
    ASSERT_EQ(json_integer_value(json_array_get(json_object_get(running, "args"), 0)), 3);
    ASSERT(json_integer_value(json_object_get(running, "worker_pid")) > 0);
    double started = json_number_value(json_object_get(running, "time_start"));
    double now = (double)cel_test_now_ms() / 1000.0;
    (void)now;
    ASSERT(started > 1.7e9); /* an epoch time, not a monotonic one */
    ASSERT_STREQ(json_string_value(
                     json_object_get(json_object_get(running, "delivery_info"), "routing_key")),
                 "celery");
    ASSERT_STREQ(json_string_value(json_object_get(running, "hostname")), node);
    json_decref(active);

    /* -c 1: the second waits, reserved, not started. */
    json_t *reserved = call_node(c, "reserved", NULL);
    json_t *waiting = find_id(reserved, "ctl-waiting");
    ASSERT(waiting);
    ASSERT(json_is_null(json_object_get(waiting, "time_start")));
    ASSERT(json_is_null(json_object_get(waiting, "worker_pid")));
    json_decref(reserved);

    json_t *q = call_node(c, "query_task", "{\"ids\": [\"ctl-running\", \"ctl-waiting\", \"no\"]}");
    ASSERT_STREQ(json_string_value(json_array_get(json_object_get(q, "ctl-running"), 0)), "active");
    ASSERT_STREQ(json_string_value(json_array_get(json_object_get(q, "ctl-waiting"), 0)),
                 "reserved");
    ASSERT(!json_object_get(q, "no"));
    json_decref(q);

    json_t *sched = call_node(c, "scheduled", NULL);
    ASSERT(json_is_array(sched));
    json_decref(sched);
    ASSERT_EQ(wait_state(c, "ctl-waiting", WAIT_MS), CEL_STATE_SUCCESS);
}

/* Milliseconds n echoes take, sent at once. */
static int64_t time_echoes(cel_client *c, int n, const char *tag)
{
    char *ids[16];
    int64_t t0 = cel_test_now_ms();
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "echo-%s-%d", tag, i);
        ids[i] = strdup(id);
        send(c, "test.echo", "[\"x\"]", id, NULL);
    }
    struct cel_test_tally t = cel_test_wait_all(c, ids, (size_t)n, NULL, WAIT_MS, WAIT_MS);
    ASSERT_EQ(t.success, (size_t)n);
    for (int i = 0; i < n; i++)
        free(ids[i]);
    return cel_test_now_ms() - t0;
}

static bool registered_has(cel_client *c, const char *entry)
{
    json_t *v = call_node(c, "registered", NULL);
    bool found = false;
    for (size_t i = 0; i < json_array_size(v); i++)
        found = found || strcmp(json_string_value(json_array_get(v, i)), entry) == 0;
    json_decref(v);
    return found;
}

static void check_limits(cel_client *c)
{
    ASSERT(registered_has(c, "test.limited [rate_limit=20/s]"));
    ASSERT(registered_has(c, "test.echo"));

    expect_ok_text(c, "rate_limit", "{\"task_name\": \"test.echo\", \"rate_limit\": \"2/s\"}",
                   "new rate limit set successfully");
    ASSERT(registered_has(c, "test.echo [rate_limit=2/s]"));
    /* 5 at 2/s: the first at once, the others 0.5 s apart. */
    int64_t slow = time_echoes(c, 5, "slow");
    printf("5 echoes at 2/s: %lld ms\n", (long long)slow);
    ASSERT(slow >= 1800);
    expect_ok_text(c, "rate_limit", "{\"task_name\": \"test.echo\", \"rate_limit\": \"0\"}",
                   "rate limit disabled successfully");
    ASSERT(registered_has(c, "test.echo"));
    int64_t fast = time_echoes(c, 5, "fast");
    printf("5 echoes unlimited: %lld ms\n", (long long)fast);
    ASSERT(fast < slow);
    ASSERT(fast < 1500);

    json_t *v = call_node(c, "rate_limit", "{\"task_name\": \"test.echo\", \"rate_limit\": \"x\"}");
    ASSERT_CONTAINS(json_string_value(json_object_get(v, "error")), "Invalid rate limit string");
    json_decref(v);
    v = call_node(c, "rate_limit", "{\"task_name\": \"no.such\", \"rate_limit\": \"1/s\"}");
    ASSERT_STREQ(json_string_value(json_object_get(v, "error")), "unknown task");
    json_decref(v);

    /* A hard limit of 1 s set now stops a 10 s task. */
    expect_ok_text(c, "time_limit", "{\"task_name\": \"test.sleep\", \"hard\": 1.0, \"soft\": 0}",
                   "time limits set successfully");
    int64_t t0 = cel_test_now_ms();
    send(c, "test.sleep", "[10]", "ctl-limited", NULL);
    ASSERT_EQ(wait_state(c, "ctl-limited", WAIT_MS), CEL_STATE_FAILURE);
    ASSERT(cel_test_now_ms() - t0 < 8000);
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(c, "ctl-limited", &r));
    ASSERT_OK(cel_result_wait(r, WAIT_MS));
    ASSERT_STREQ(cel_result_exc_type(r), "TimeLimitExceeded");
    cel_result_free(r);
    expect_ok_text(c, "time_limit", "{\"task_name\": \"test.sleep\", \"hard\": 0, \"soft\": 0}",
                   "time limits set successfully");
}

/* The task fails in the process that ran it, which it names. */
static void expect_soft_failure(cel_client *c, const char *id, pid_t worker, bool solo)
{
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(c, id, &r));
    ASSERT_OK(cel_result_wait(r, WAIT_MS));
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "SoftTimeLimitExceeded");
    int ran_in = 0;
    double after = 0;
    ASSERT_EQ(sscanf(cel_result_exc_message(r), "soft limit in pid %d after %lfs", &ran_in, &after),
              2);
    ASSERT(after >= 0.5 && after < 5);
    if (solo)
        ASSERT_EQ(ran_in, worker);
    else
        ASSERT(ran_in > 0 && ran_in != worker); /* a prefork child */
    cel_result_free(r);
}

/* Sends test.soft_steps(args) as <node>-<label> (id, idlen), with a
 * call's own soft limit when own_soft > 0. */
static void send_soft_steps(cel_client *c, const char *label, const char *args, double own_soft,
                            char *id, size_t idlen)
{
    snprintf(id, idlen, "%s-%s", node, label);
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.task_id = id, .soft_time_limit = own_soft);
    ASSERT_OK(cel_client_send(c, "test.soft_steps", args, NULL, &o, NULL));
}

static void set_soft_limit(cel_client *c, const char *soft)
{
    char args[128];
    snprintf(args, sizeof args, "{\"task_name\": \"test.soft_steps\", \"hard\": 0, \"soft\": %s}",
             soft);
    expect_ok_text(c, "time_limit", args, "time limits set successfully");
}

static void check_runtime_soft_limit(cel_client *c, pid_t worker, bool solo)
{
    char id[96];
    /* First a run without limits, so a prefork child exists (and has
     * resolved a policy) before the command. */
    send_soft_steps(c, "soft-before", "[0.1]", 0, id, sizeof id);
    ASSERT_EQ(wait_state(c, id, WAIT_MS), CEL_STATE_SUCCESS);

    set_soft_limit(c, "0.5");
    send_soft_steps(c, "soft-limited", "[10]", 0, id, sizeof id);
    expect_soft_failure(c, id, worker, solo);

    /* As in Celery, a call's own timelimit beats the task's (run-time)
     * one: 5 s leaves a 1 s run alone. */
    send_soft_steps(c, "soft-own", "[1]", 5, id, sizeof id);
    ASSERT_EQ(wait_state(c, id, WAIT_MS), CEL_STATE_SUCCESS);

    /* Lifted: the task's own limit (none) applies again. */
    set_soft_limit(c, "0");
    send_soft_steps(c, "soft-lifted", "[1]", 0, id, sizeof id);
    ASSERT_EQ(wait_state(c, id, WAIT_MS), CEL_STATE_SUCCESS);
}

static void check_stats_and_revoked(cel_client *c)
{
    json_t *v = call_node(c, "stats", NULL);
    ASSERT(json_integer_value(json_object_get(json_object_get(v, "total"), "test.echo")) >= 10);
    ASSERT(json_integer_value(json_object_get(v, "pid")) > 0);
    ASSERT(json_is_string(json_object_get(v, "clock")));
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(v, "pool"), "max-concurrency")),
              1);
    ASSERT(json_is_object(json_object_get(v, "rusage")));
    ASSERT(json_is_object(json_object_get(v, "broker")));
    json_decref(v);

    expect_ok_text(c, "revoke", "{\"task_id\": [\"ctl-rv-1\", \"ctl-rv-2\"]}",
                   "tasks ctl-rv-1, ctl-rv-2 flagged as revoked");
    bool listed = false;
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (!listed && cel_test_now_ms() < deadline) {
        v = call_node(c, "revoked", NULL);
        for (size_t i = 0; i < json_array_size(v); i++)
            listed = listed || strcmp(json_string_value(json_array_get(v, i)), "ctl-rv-2") == 0;
        json_decref(v);
    }
    ASSERT(listed);
    expect_ok_text(c, "terminate", "{\"task_id\": [\"ctl-rv-1\"], \"signal\": \"SIGTERM\"}",
                   "terminate: tasks unknown");
}

static int pool_size(cel_client *c)
{
    json_t *v = call_node(c, "stats", NULL);
    int n = (int)json_integer_value(json_object_get(json_object_get(v, "pool"), "max-concurrency"));
    json_decref(v);
    return n;
}

static void check_pool_and_events(cel_client *c)
{
    expect_ok_text(c, "pool_grow", "{\"n\": 1}", "pool will grow");
    ASSERT_EQ(pool_size(c), 2);
    expect_ok_text(c, "pool_shrink", "{\"n\": 1}", "pool will shrink");
    ASSERT_EQ(pool_size(c), 1);
    json_t *v = call_node(c, "autoscale", "{\"max\": 4, \"min\": 1}");
    ASSERT_STREQ(json_string_value(json_object_get(v, "error")),
                 "ValueError('Autoscale not enabled')");
    json_decref(v);

    expect_ok_text(c, "enable_events", NULL, "task events enabled");
    expect_ok_text(c, "enable_events", NULL, "task events already enabled");
    expect_ok_text(c, "disable_events", NULL, "task events disabled");
    expect_ok_text(c, "disable_events", NULL, "task events already disabled");
    v = call_node(c, "heartbeat", NULL);
    ASSERT(json_is_null(v));
    json_decref(v);
}

static bool consumes(cel_client *c, const char *queue)
{
    json_t *v = call_node(c, "active_queues", NULL);
    bool found = false;
    for (size_t i = 0; i < json_array_size(v); i++)
        found = found || strcmp(json_string_value(json_object_get(json_array_get(v, i), "name")),
                                queue) == 0;
    json_decref(v);
    return found;
}

static void check_consumers(cel_client *c)
{
    ASSERT(consumes(c, "extra"));
    expect_ok_text(c, "cancel_consumer", "{\"queue\": \"extra\"}",
                   "no longer consuming from extra");
    ASSERT(!consumes(c, "extra"));
    send(c, "test.echo", "[\"x\"]", "ctl-extra", "extra");
    /* Nothing to wait for: the point is that it does not run. */
    ASSERT_EQ(wait_state(c, "ctl-extra", 2000), CEL_STATE_PENDING);
    expect_ok_text(c, "add_consumer", "{\"queue\": \"extra\"}", "add consumer extra");
    ASSERT(consumes(c, "extra"));
    ASSERT_EQ(wait_state(c, "ctl-extra", WAIT_MS), CEL_STATE_SUCCESS);
}

static void stop_worker(cel_client *c, pid_t pid)
{
    /* shutdown: no reply, a warm stop. */
    ASSERT(call(c, "shutdown", NULL, node, 1) == NULL);
    int status = cel_test_worker_stop(pid, 0, WAIT_MS);
    if (status != 0)
        cel_test_worker_postmortem(pid, LOG_PATH);
    ASSERT_EQ(status, 0);
    ASSERT(cel_test_count_in_file(LOG_PATH, "Got shutdown from remote") == 1);
    /* a sanitizer build reports into the worker's log */
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, "Sanitizer"), 0);
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, "runtime error:"), 0);
}

static void run_all(const char *url, const char *tag)
{
    snprintf(node, sizeof node, "ctl@%s", tag);
    cel_client *c = cel_test_client(url, NULL);
    const char *extra[] = {"-c", "1", "-n", node, "-Q", "celery,extra", url ? "-b" : NULL,
                           url,  NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);

    check_basics(c);
    check_active_reserved(c);
    check_limits(c);
    check_runtime_soft_limit(c, pid, false);
    check_stats_and_revoked(c);
    check_pool_and_events(c);
    check_consumers(c);
    stop_worker(c, pid);
    cel_client_free(c);
}

/* Under -P solo the task runs in the worker's own process. */
static void test_worker_control_solo(void)
{
    snprintf(node, sizeof node, "ctl@solo");
    cel_client *c = cel_test_client(NULL, NULL);
    const char *extra[] = {"-P", "solo", "-n", node, NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    check_runtime_soft_limit(c, pid, true);
    stop_worker(c, pid);
    cel_client_free(c);
}

static void test_worker_control_sqlite(void)
{
    run_all(NULL, "sqlite");
}

static void test_worker_control_redis(void)
{
    struct cel_test_redis r;
    cel_test_redis_setup(&r);
    run_all(r.url, "redis");
    cel_test_redis_stop(&r);
}

int main(void)
{
    TEST_RUN(test_worker_control_sqlite);
    TEST_RUN(test_worker_control_redis);
    TEST_RUN(test_worker_control_solo);
    return 0;
}
