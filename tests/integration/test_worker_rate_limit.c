/*
 * test_worker_rate_limit.c - task rate limits with real worker processes
 * on SQLite and on Redis: a limit of 20/s holds within 10 % over 5 s,
 * other tasks are not held up behind a limited one, a global limit holds
 * across two workers (where a local one gives each worker its own), and a
 * malformed rate stops the worker at start, naming the task.
 *
 * test.limited (tests/support/test_tasks.c) appends its monotonic finish
 * time to a stamp file; rates are counted from those stamps over a window
 * in the middle of the run, so start-up and the tail do not count.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <celeriac.h>

#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define STAMPS   "stamps.txt"
#define WAIT_MS  60000
#define MAX_RUNS 1024

static struct cel_test_redis srv;

/* Processes that ran test.limited (children of every worker). */
static size_t distinct_pids(void)
{
    long pids[64];
    size_t n = 0;
    char *text = cel_test_read_file(STAMPS, NULL);
    for (char *p = text; p && *p;) {
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        long pid = strtol(sp + 1, NULL, 10);
        size_t i = 0;
        while (i < n && pids[i] != pid)
            i++;
        if (i == n && n < 64)
            pids[n++] = pid;
        char *nl = strchr(sp, '\n');
        p = nl ? nl + 1 : sp + strlen(sp);
    }
    free(text);
    return n;
}

/* Finish times (µs) so far, sorted; returns how many. */
static size_t read_stamps(int64_t *v)
{
    size_t n = 0;
    char *text = cel_test_read_file(STAMPS, NULL);
    for (char *p = text; p && *p && n < MAX_RUNS;) {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p)
            break;
        v[n++] = x;
        char *nl = strchr(end, '\n');
        p = nl ? nl + 1 : end + strlen(end);
    }
    free(text);
    for (size_t i = 1; i < n; i++) /* insertion sort: a few hundred, nearly sorted */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n;
}

/* Waits until `want` runs are stamped; fails the test on a timeout. */
static size_t wait_stamps(int64_t *v, size_t want, int timeout_ms)
{
    int64_t until = cel_test_now_ms() + timeout_ms;
    size_t n;
    while ((n = read_stamps(v)) < want && cel_test_now_ms() < until)
        cel_test_sleep_ms(100);
    if (n < want)
        cel_test_fail(__FILE__, __LINE__, "only %zu of %zu limited tasks ran", n, want);
    return n;
}

/* Completions per second in [first + from_s, first + from_s + len_s). */
static double rate_in(const int64_t *v, size_t n, double from_s, double len_s)
{
    int64_t lo = v[0] + (int64_t)(from_s * 1e6), hi = lo + (int64_t)(len_s * 1e6);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += v[i] >= lo && v[i] < hi;
    return (double)k / len_s;
}

/* Redis outlives each test: start each from an empty one. */
static void fresh_broker(const char *url)
{
    if (strncmp(url, "redis", 5) != 0)
        return;
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    freeReplyObject(cel_test_redis_cmd(c, "FLUSHALL"));
    redisFree(c);
}

static pid_t start_worker_on(const char *url, const char *scope, const char *queue, const char *log)
{
    const char *extra[] = {"-b", url, "-c", "2", "--rate-limit-scope", scope, "-Q", queue, NULL};
    return cel_test_worker_start(log, extra);
}

static pid_t start_worker(const char *url, const char *scope, const char *log)
{
    return start_worker_on(url, scope, "celery", log);
}

static void stop_worker(pid_t pid, const char *log)
{
    if (cel_test_worker_stop(pid, SIGTERM, 20000) != 0) {
        cel_test_print_tail("worker log", log, 40);
        cel_test_fail(__FILE__, __LINE__, "worker did not stop cleanly");
    }
}

static void send_limited_to(const char *url, const char *queue, size_t n)
{
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "broker_url", url, NULL));
    ASSERT_OK(cel_config_set(cfg, "task_default_queue", queue, NULL));
    cel_client *c = cel_client_new(cfg);
    ASSERT_OK(cel_client_connect(c));
    char **ids = cel_test_send_many(c, "test.limited", NULL, n);
    cel_test_ids_free(ids, n);
    cel_client_free(c);
    cel_config_free(cfg);
}

static void send_limited(const char *url, size_t n)
{
    send_limited_to(url, "celery", n);
}

static void setup_env(const char *rate)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/" STAMPS, cel_test_dir());
    setenv("CEL_TEST_STAMP_FILE", path, 1);
    setenv("CEL_TEST_RATE_LIMIT", rate, 1);
}

/* 150 tasks at 20/s take 7.5 s: the middle 5 s hold 100 +- 10 %. */
static void check_rate_holds(const char *url)
{
    setup_env("20/s");
    fresh_broker(url);
    pid_t w = start_worker(url, "local", "worker.log");
    send_limited(url, 150);
    int64_t v[MAX_RUNS];
    size_t n = wait_stamps(v, 150, WAIT_MS);
    double r = rate_in(v, n, 1.25, 5.0);
    fprintf(stderr, "   %s: %.1f tasks/s over the middle 5 s (limit 20/s)\n", url, r);
    ASSERT(r >= 18.0 && r <= 22.0);
    stop_worker(w, "worker.log");
}

static void test_rate_holds_sqlite(void)
{
    check_rate_holds("sqlite:///celeriac.db");
}

static void test_rate_holds_redis(void)
{
    check_rate_holds(srv.url);
}

/* 100 tasks at 2/s would take 50 s; an unlimited task queued behind them
 * runs at once, and the limited ones keep their rate meanwhile. */
static void check_others_flow(const char *url)
{
    setup_env("2/s");
    fresh_broker(url);
    pid_t w = start_worker(url, "local", "worker.log");
    send_limited(url, 100);
    cel_client *c = cel_test_client(url, NULL);
    int64_t t0 = cel_test_now_ms();
    cel_result *r;
    ASSERT_OK(cel_client_send(c, "test.echo_len", "[\"abc\"]", NULL, NULL, &r));
    ASSERT_OK(cel_result_wait(r, 10000));
    int64_t took = cel_test_now_ms() - t0;
    ASSERT_EQ(cel_result_state(r), CEL_STATE_SUCCESS);
    fprintf(stderr, "   %s: unlimited task behind 100 limited ones done in %lld ms\n", url,
            (long long)took);
    ASSERT(took < 3000);
    cel_result_free(r);
    cel_client_free(c);
    /* A few seconds more: still 2/s (the ones parked on the broker come
     * back in time, none run early). */
    cel_test_sleep_ms(4000);
    int64_t v[MAX_RUNS];
    size_t n = read_stamps(v);
    double secs = (double)(v[n - 1] - v[0]) / 1e6;
    fprintf(stderr, "   %zu limited done in %.1f s\n", n, secs);
    ASSERT(n >= 2 && (double)(n - 1) / secs <= 2.2);
    ASSERT(n >= 8);
    stop_worker(w, "worker.log");
}

static void test_others_flow_sqlite(void)
{
    check_others_flow("sqlite:///celeriac.db");
}

static void test_others_flow_redis(void)
{
    check_others_flow(srv.url);
}

/* Two workers, 20/s each: global holds 20/s in all, local gives 40/s.
 * Each worker has a queue of its own, so both surely run their half:
 * the bucket is the task name's, whatever the queue. */
static void check_two_workers(const char *url, const char *scope, size_t ntasks, double want)
{
    setup_env("20/s");
    fresh_broker(url);
    pid_t a = start_worker_on(url, scope, "rate_a", "worker-a.log");
    pid_t b = start_worker_on(url, scope, "rate_b", "worker-b.log");
    send_limited_to(url, "rate_a", ntasks / 2);
    send_limited_to(url, "rate_b", ntasks / 2);
    int64_t v[MAX_RUNS];
    size_t n = wait_stamps(v, ntasks, WAIT_MS);
    double total = (double)ntasks / want;
    double r = rate_in(v, n, total / 2 - 2.5 > 0.5 ? total / 2 - 2.5 : 0.5,
                       total - 1 > 5.0 ? 5.0 : total - 1.5);
    fprintf(stderr, "   %s, %s scope, two workers: %.1f tasks/s (want %.0f)\n", url, scope, r,
            want);
    ASSERT(r >= want * 0.9 && r <= want * 1.1);
    /* Both took part (each queue has one worker, so each ran its half;
     * the children that ran them say so too). */
    ASSERT(distinct_pids() >= 2);
    stop_worker(a, "worker-a.log");
    stop_worker(b, "worker-b.log");
}

static void test_global_two_workers_sqlite(void)
{
    check_two_workers("sqlite:///celeriac.db", "global", 200, 20);
}

static void test_global_two_workers_redis(void)
{
    check_two_workers(srv.url, "global", 200, 20);
}

static void test_local_two_workers_redis(void)
{
    check_two_workers(srv.url, "local", 280, 40);
}

/* A rate Celery would not take stops the worker at start, naming it. */
static void test_bad_rate_refused(void)
{
    setup_env("10/d");
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"worker",
                    (char *)"-A",
                    (char *)cel_test_env("CEL_TEST_TESTTASKS"),
                    (char *)"-b",
                    (char *)"sqlite:///celeriac.db",
                    NULL};
    char *out = NULL, *err = NULL;
    int rc = cel_test_run(argv, 20000, &out, &err);
    ASSERT(rc != 0 && rc != -1);
    ASSERT_CONTAINS(err, "test.limited");
    ASSERT_CONTAINS(err, "10/d");
    free(out);
    free(err);
}

int main(void)
{
    cel_test_redis_setup(&srv);
    TEST_RUN(test_bad_rate_refused);
    TEST_RUN(test_rate_holds_sqlite);
    TEST_RUN(test_rate_holds_redis);
    TEST_RUN(test_others_flow_sqlite);
    TEST_RUN(test_others_flow_redis);
    TEST_RUN(test_global_two_workers_sqlite);
    TEST_RUN(test_global_two_workers_redis);
    TEST_RUN(test_local_two_workers_redis);
    cel_test_redis_stop(&srv);
    return 0;
}
