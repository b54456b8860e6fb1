/*
 * test_worker_autoscale.c - `celeriac worker --autoscale 4,1` under load
 * and then idle, on SQLite and on Redis: the pool starts with one child,
 * grows to four (never more) while tasks wait, comes back to one once
 * idle for worker_autoscale_keepalive, and every task ran exactly once.
 *
 * Children are counted from /proc (the worker's own children), not from
 * anything the worker reports.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "record_file.h"
#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH    "worker.log"
#define RECORD_PATH "runs.txt"

/* Polls the worker's children until there are `want`; returns the most
 * seen meanwhile. Fails after timeout_ms. */
static int wait_children(pid_t pid, int want, int timeout_ms, const char *why)
{
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    int most = 0, n;
    while ((n = cel_test_child_count(pid)) != want) {
        most = n > most ? n : most;
        if (cel_test_now_ms() > deadline) {
            cel_test_print_tail("worker log", LOG_PATH, 30);
            cel_test_fail(__FILE__, __LINE__, "%s: %d children, not %d, after %d ms", why, n, want,
                          timeout_ms);
        }
        cel_test_sleep_ms(5);
    }
    return most > n ? most : n;
}

static void run_autoscale(const char *broker_url)
{
    enum { N = 40 };
    setenv("CEL_TEST_RECORD_FILE", RECORD_PATH, 1);
    const char *const extra[] = {
        "-b", broker_url, "--autoscale", "4,1", "--set", "worker_autoscale_keepalive=0.5", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    wait_children(pid, 1, 10000, "at start");

    cel_client *c = cel_test_client(broker_url, NULL);
    int64_t sent_at = cel_test_now_ms();
    char **ids = cel_test_send_many(c, "test.sleep", "[0.25]", N);
    int most = wait_children(pid, 4, 10000, "under load");
    fprintf(stderr, "   4 children %lld ms after the tasks were sent\n",
            (long long)(cel_test_now_ms() - sent_at));
    /* While the load lasts the pool stays within MAX. */
    while (cel_test_count_in_file(RECORD_PATH, "\n") < N - 4) {
        int n = cel_test_child_count(pid);
        most = n > most ? n : most;
        cel_test_sleep_ms(5);
    }
    fprintf(stderr, "   at most %d children under load\n", most);
    ASSERT_EQ(most, 4);

    struct cel_test_tally t = cel_test_wait_all(c, ids, N, "0.25", 60000, 10000);
    cel_test_tally_print("sleeps", &t);
    ASSERT_EQ(t.success, N);
    int64_t idle_at = cel_test_now_ms();
    wait_children(pid, 1, 10000, "once idle");
    fprintf(stderr, "   back to 1 child %lld ms after the last result\n",
            (long long)(cel_test_now_ms() - idle_at));

    struct cel_test_runs r = cel_test_count_runs(RECORD_PATH, ids, N);
    cel_test_runs_print("runs", &r);
    ASSERT_EQ(r.once, N);
    ASSERT_EQ(r.never, 0);
    ASSERT_EQ(r.repeated, 0);
    /* Each change is logged. */
    ASSERT(cel_test_count_in_file(LOG_PATH, "autoscale: scaling up") >= 1);
    ASSERT(cel_test_count_in_file(LOG_PATH, "autoscale: scaling down") >= 1);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, 20000), 0);
    cel_test_ids_free(ids, N);
    cel_client_free(c);
}

static void test_autoscale_sqlite(void)
{
    run_autoscale("sqlite:///celeriac.db");
}

static void test_autoscale_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    run_autoscale(srv.url);
    cel_test_redis_stop(&srv);
}

int main(void)
{
    TEST_RUN(test_autoscale_sqlite);
    TEST_RUN(test_autoscale_redis);
    return 0;
}
