/*
 * test_worker_delivery_limit.c - a task that kills its worker comes back
 * at most task_delivery_limit times, whatever the pool.
 *
 * Issue 6: under `-P solo` the task runs in the worker process itself, so
 * a crashing task takes the worker with it; its message is delivered
 * again after each restart (delivery count 3 after 3 restarts) and is
 * never dead-lettered. With `task_delivery_limit = 3`, a message
 * delivered more than 3 times is dead-lettered instead of run, and a
 * FAILURE with exc_type WorkerLostError is stored for its caller.
 *
 * The test plays the supervisor (systemd, a container runtime): it starts
 * the worker again each time it dies, up to MAX_STARTS times, and counts
 * the runs with test.crash's record file.
 */
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "record_file.h"
#include "sql_query.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH    "worker.log"
#define RECORD_PATH "record.txt"
#define DB_PATH     "celeriac.db"
#define LIMIT       3
#define MAX_STARTS  (LIMIT + 3)
/* One start: long enough for the 1 s lease of the last crash to run out,
 * the message to be delivered and the worker to crash or settle it. */
#define START_MS 15000

static void test_solo_crash_is_dead_lettered_after_limit(void)
{
    char record[4200];
    snprintf(record, sizeof record, "%s/" RECORD_PATH, cel_test_dir());
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
    /* abort() in the worker: no core file for each crash. */
    struct rlimit no_core = {0, 0};
    ASSERT_OK(setrlimit(RLIMIT_CORE, &no_core));

    cel_client *c = cel_test_client(NULL, NULL);
    char **ids = cel_test_send_many(c, "test.crash", NULL, 1);
    char sql[256];

    /* A short lease, so a crashed worker's message is delivered again a
     * second later rather than after the transport's default. */
    const char *const extra[] = {
        "-P", "solo", "--set", "task_delivery_limit=3", "--set", "broker_visibility_timeout=1",
        NULL};
    int starts = 0, crashes = 0;
    pid_t pid = 0;
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(c, ids[0], &r));
    while (starts < MAX_STARTS) {
        pid = cel_test_worker_spawn(LOG_PATH, extra);
        starts++;
        int64_t deadline = cel_test_now_ms() + START_MS;
        int rc = -1;
        bool settled = false;
        while (cel_test_now_ms() < deadline) {
            if (!cel_test_alive(pid)) {
                rc = cel_test_wait(pid, 0);
                break;
            }
            ASSERT_OK(cel_result_refresh(r));
            if (cel_state_is_ready(cel_result_state(r))) {
                settled = true;
                break;
            }
            cel_test_sleep_ms(50);
        }
        if (settled)
            break;
        if (rc == -1) {
            cel_test_worker_postmortem(pid, LOG_PATH);
            cel_test_fail(__FILE__, __LINE__,
                          "start %d: the worker neither crashed nor settled the task in %d s",
                          starts, START_MS / 1000);
        }
        if (rc != 128 + SIGABRT) {
            /* Not the task's abort(): most likely the worker refused the
             * configuration (no task_delivery_limit key yet). */
            cel_test_print_tail("worker log", LOG_PATH, 10);
            cel_test_fail(__FILE__, __LINE__,
                          "start %d: the worker exited with status %d, not by the task's "
                          "abort() (is task_delivery_limit a configuration key?)",
                          starts, rc);
        }
        crashes++;
        pid = 0; /* reaped */
        fprintf(stderr, "   start %d: the worker died with the task (SIGABRT)\n", starts);
    }

    struct cel_test_runs runs = cel_test_count_runs(RECORD_PATH, ids, 1);
    ASSERT_OK(cel_result_refresh(r));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM dead_letters WHERE task_id = '%s'", ids[0]);
    long long dead = cel_test_sql_int(DB_PATH, sql);
    long long queued = cel_test_sql_int(DB_PATH, "SELECT count(*) FROM messages");
    fprintf(stderr,
            "   %d starts, %d crashes, %zu runs; state %s (%s); %lld dead-lettered, "
            "%lld messages left\n",
            starts, crashes, runs.lines, cel_result_state_name(r),
            cel_result_exc_type(r) ? cel_result_exc_type(r) : "-", dead, queued);
    if (!cel_state_is_ready(cel_result_state(r))) {
        cel_test_worker_postmortem(pid, LOG_PATH);
        cel_test_fail(__FILE__, __LINE__,
                      "after %d starts the crashing task is still not settled: it was run %zu "
                      "times (limit %d)",
                      starts, runs.lines, LIMIT);
    }
    ASSERT(runs.lines >= 1);
    ASSERT(runs.lines <= LIMIT);
    ASSERT(crashes <= LIMIT);
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "WorkerLostError");
    ASSERT_EQ(dead, 1);
    ASSERT_EQ(queued, 0);
    /* The worker that settled it is alive and serving. */
    ASSERT(cel_test_alive(pid));
    char **ok = cel_test_send_many(c, "test.echo_len", "[\"fine\"]", 1);
    struct cel_test_tally t = cel_test_wait_all(c, ok, 1, "4", 15000, 15000);
    ASSERT_EQ(t.success, 1);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, 15000), 0);
    cel_test_ids_free(ok, 1);
    cel_result_free(r);
    cel_test_ids_free(ids, 1);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_solo_crash_is_dead_lettered_after_limit);
    return 0;
}
