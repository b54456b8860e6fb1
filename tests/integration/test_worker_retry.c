/*
 * test_worker_retry.c - retries, progress states and the soft limit with
 * a real `celeriac worker` (the example module) on the default SQLite
 * store and on a real redis-server: each case runs on both.
 *
 * The example tasks keep their attempts in a file ("<wall ms>
 * <retries header>" per line), so the test sees when each attempt ran
 * and with which retries header, whatever child ran it.
 */
#include <signal.h>
#include <unistd.h>

#include <celeriac.h>

#include "redis_server.h"
#include "testing.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"

struct env {
    bool redis;
    struct cel_test_redis srv;
    pid_t worker;
    cel_config *cfg;
    cel_client *c;
};

static void start(struct env *e, bool redis)
{
    memset(e, 0, sizeof *e);
    e->redis = redis;
    if (redis)
        cel_test_redis_setup(&e->srv);
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"worker",
                    (char *)"-A",
                    (char *)cel_test_env("CEL_TEST_TASKS"),
                    (char *)"-c",
                    (char *)"2",
                    (char *)"-l",
                    (char *)"info",
                    redis ? (char *)"-b" : NULL,
                    e->srv.url,
                    NULL};
    e->worker = cel_test_spawn(argv, LOG_PATH);
    if (!cel_test_wait_log(LOG_PATH, "ready.", WAIT_MS)) {
        cel_test_print_tail("worker log", LOG_PATH, 30);
        ASSERT(!"worker did not become ready");
    }
    e->cfg = cel_config_new();
    if (redis)
        ASSERT_OK(cel_config_set(e->cfg, "broker_url", e->srv.url, NULL));
    e->c = cel_client_new(e->cfg);
    ASSERT_OK(cel_client_connect(e->c));
}

static void stop(struct env *e)
{
    cel_client_free(e->c);
    cel_config_free(e->cfg);
    kill(e->worker, SIGTERM);
    ASSERT_EQ(cel_test_wait(e->worker, WAIT_MS), 0);
    /* a sanitizer build reports into the worker's log */
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, "Sanitizer"), 0);
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, "runtime error:"), 0);
    if (e->redis)
        cel_test_redis_stop(&e->srv);
}

static cel_result *send(struct env *e, const char *task, const char *args)
{
    cel_result *r = NULL;
    ASSERT_OK(cel_client_send(e->c, task, args, NULL, NULL, &r));
    return r;
}

static cel_result *call(struct env *e, const char *task, const char *args)
{
    cel_result *r = send(e, task, args);
    if (cel_result_wait(r, WAIT_MS) != CEL_OK) {
        cel_test_print_tail("worker log", LOG_PATH, 40);
        ASSERT(!"no result in time");
    }
    return r;
}

/* The attempts file: wall ms and retries header of each attempt. */
struct attempts {
    int n;
    long long ms[16];
    int retries[16];
};

static void read_attempts(const char *path, struct attempts *a)
{
    memset(a, 0, sizeof *a);
    char *text = cel_test_read_file(path, NULL);
    ASSERT(text);
    char *p = text;
    int used;
    while (a->n < 16 && sscanf(p, "%lld %d\n%n", &a->ms[a->n], &a->retries[a->n], &used) == 2) {
        a->n++;
        p += used;
    }
    free(text);
}

static char *counter_path(const char *name)
{
    char *path = NULL;
    ASSERT(asprintf(&path, "%s/%s", cel_test_dir(), name) > 0);
    return path;
}

/* fail_times(path, n, countdown) args as JSON */
static char *args3(const char *path, int n, double countdown)
{
    char *args = NULL;
    ASSERT(asprintf(&args, "[\"%s\", %d, %g]", path, n, countdown) > 0);
    return args;
}

static void fail_twice_then_succeed(struct env *e)
{
    char *path = counter_path("twice"), *args = args3(path, 2, 0.2);
    cel_result *r = call(e, "tasks.fail_times", args);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    ASSERT_STREQ(cel_result_value_json(r), "{\"attempts\": 3, \"retries\": 2}");
    ASSERT_EQ(cel_result_retries(r), 2);
    struct attempts a;
    read_attempts(path, &a);
    ASSERT_EQ(a.n, 3);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(a.retries[i], i); /* the retries header counted */

    /* `celeriac result` shows it */
    char *argv[] = {
        (char *)cel_test_env("CEL_TEST_CLI"), (char *)"result", (char *)cel_result_id(r),
        e->redis ? (char *)"-b" : NULL,       e->srv.url,       NULL};
    char *out = NULL, *err = NULL;
    ASSERT_EQ(cel_test_run(argv, WAIT_MS, &out, &err), 0);
    ASSERT_STREQ(out, "SUCCESS\n{\"attempts\": 3, \"retries\": 2}\nretries: 2\n");
    free(out);
    free(err);
    cel_result_free(r);
    free(args);
    free(path);
}

/* Slack for a due message to be fetched, the same on both: the SQLite
 * consumer wakes for its next due message; on Redis the worker's own
 * park of a retry wakes its consumer for the due time (redis_wake.c). */
static long long late_ms(const struct env *e)
{
    (void)e;
    return 300;
}

static void backoff_within_bounds(struct env *e)
{
    /* fail_times: backoff 0.25 s, no jitter: 0.25, 0.5, 1 s */
    char *path = counter_path("backoff"), *args = args3(path, 3, -1);
    cel_result *r = call(e, "tasks.fail_times", args);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    struct attempts a;
    read_attempts(path, &a);
    ASSERT_EQ(a.n, 4);
    for (int i = 1; i < a.n; i++) {
        long long gap = a.ms[i] - a.ms[i - 1], want = 250LL << (i - 1);
        fprintf(stderr, "  backoff retry %d: %lld ms (policy %lld ms)\n", i, gap, want);
        ASSERT(gap >= want - 2 && gap <= want + late_ms(e));
    }
    cel_result_free(r);
    free(args);
    free(path);

    /* flaky: autoretry_for IOError, backoff 0.2 s fully jittered */
    path = counter_path("flaky");
    ASSERT(asprintf(&args, "[\"%s\", 3]", path) > 0);
    r = call(e, "tasks.flaky", args);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    ASSERT_STREQ(cel_result_value_json(r), "4");
    read_attempts(path, &a);
    ASSERT_EQ(a.n, 4);
    for (int i = 1; i < a.n; i++) {
        long long gap = a.ms[i] - a.ms[i - 1], cap = 200LL << (i - 1);
        fprintf(stderr, "  jittered retry %d: %lld ms (in [0, %lld])\n", i, gap, cap);
        ASSERT(gap >= 0 && gap <= cap + late_ms(e));
        ASSERT_EQ(a.retries[i], i);
    }
    cel_result_free(r);
    free(args);
    free(path);
}

static void max_retries_exceeded(struct env *e)
{
    char *path = counter_path("max"), *args = args3(path, 10, 0.05);
    cel_result *r = call(e, "tasks.fail_times", args);
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "MaxRetriesExceededError");
    ASSERT_CONTAINS(cel_result_exc_message(r), "Can't retry tasks.fail_times[");
    ASSERT_CONTAINS(cel_result_exc_message(r), "RuntimeError: failure 6 of 10");
    ASSERT_CONTAINS(cel_result_value_json(r), "\"exc_module\": \"celery.exceptions\"");
    ASSERT_CONTAINS(cel_result_traceback(r), "MaxRetriesExceededError");
    ASSERT_EQ(cel_result_retries(r), 5);
    struct attempts a;
    read_attempts(path, &a);
    ASSERT_EQ(a.n, 6); /* the first run and its 5 retries, no more */
    cel_result_free(r);
    free(args);
    free(path);
}

static void retry_state_between_attempts(struct env *e)
{
    char *path = counter_path("between"), *args = args3(path, 1, 2.0);
    cel_result *r = send(e, "tasks.fail_times", args);
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    do {
        ASSERT_OK(cel_result_refresh(r));
        cel_test_sleep_ms(20);
    } while (cel_result_state(r) != CEL_STATE_RETRY && cel_test_now_ms() < deadline);
    ASSERT_STREQ(cel_result_state_name(r), "RETRY");
    ASSERT_STREQ(cel_result_exc_type(r), "RuntimeError");
    ASSERT_STREQ(cel_result_exc_message(r), "failure 1 of 1");
    ASSERT_CONTAINS(cel_result_traceback(r), "celery.exceptions.Retry: Retry in 2s");
    ASSERT_EQ(cel_result_retries(r), 0);
    ASSERT_OK(cel_result_wait(r, WAIT_MS));
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    cel_result_free(r);
    free(args);
    free(path);
}

static void progress_polled(struct env *e)
{
    cel_result *r = send(e, "tasks.progress", "[4, 0.3]");
    int seen[5] = {0}, last = 0, distinct = 0;
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    for (;;) {
        ASSERT_OK(cel_result_refresh(r));
        if (cel_result_state(r) == CEL_STATE_SUCCESS || cel_test_now_ms() > deadline)
            break;
        if (strcmp(cel_result_state_name(r), "PROGRESS") == 0) {
            ASSERT_EQ(cel_result_state(r), CEL_STATE_CUSTOM);
            int cur = 0, total = 0;
            ASSERT_EQ(
                sscanf(cel_result_value_json(r), "{\"current\": %d, \"total\": %d}", &cur, &total),
                2);
            ASSERT_EQ(total, 4);
            ASSERT(cur >= last && cur >= 1 && cur <= 4); /* never backwards */
            if (!seen[cur]++)
                distinct++;
            last = cur;
        }
        cel_test_sleep_ms(20);
    }
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    ASSERT_STREQ(cel_result_value_json(r), "4");
    fprintf(stderr, "  PROGRESS values seen: %d of 4\n", distinct);
    ASSERT(distinct >= 3);
    cel_result_free(r);
}

static void soft_limit_seen(struct env *e)
{
    int64_t t0 = cel_test_now_ms();
    cel_result *r = call(e, "tasks.soft_limited", "[10]");
    int64_t took = cel_test_now_ms() - t0;
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "SoftTimeLimitExceeded");
    ASSERT_CONTAINS(cel_result_value_json(r), "\"exc_module\": \"billiard.exceptions\"");
    ASSERT_CONTAINS(cel_result_exc_message(r), "stopped at the soft time limit after 1.0");
    ASSERT(took >= 1000 && took < 5000);
    cel_result_free(r);
}

static void run_all(bool redis)
{
    struct env e;
    start(&e, redis);
    fail_twice_then_succeed(&e);
    backoff_within_bounds(&e);
    max_retries_exceeded(&e);
    retry_state_between_attempts(&e);
    progress_polled(&e);
    soft_limit_seen(&e);
    stop(&e);
}

static void test_sqlite(void)
{
    run_all(false);
}

static void test_redis(void)
{
    run_all(true);
}

int main(void)
{
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    return 0;
}
