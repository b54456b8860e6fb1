/*
 * test_worker_sigkill.c - SIGKILL the worker at any moment of a drain and
 * start it again: no task is lost, and a task runs again only when the
 * kill came between running it and acking it (at least once, never zero
 * times).
 *
 * The kill lands at a random point in each round (the seed is printed so
 * a failure can be replayed with CEL_TEST_SEED); the worker's whole
 * process group dies with it, as a machine crash or the OOM killer would
 * leave it. A short lease brings the killed worker's reserved messages
 * back quickly.
 */
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "record_file.h"
#include "sql_query.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH    "worker.log"
#define RECORD_PATH "record.txt"
#define N_TASKS     20000
#define ROUNDS      6

static void test_sigkill_loses_nothing(void)
{
    char record[4200];
    snprintf(record, sizeof record, "%s/" RECORD_PATH, cel_test_dir());
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
    const char *seed_env = getenv("CEL_TEST_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "   seed %u (CEL_TEST_SEED to replay)\n", seed);
    srand(seed);

    cel_client *c = cel_test_client(NULL, NULL);
    char **ids = cel_test_send_many(c, "test.record", "[\"x\"]", N_TASKS);
    const char *const extra[] = {"-c", "2", "--set", "broker_visibility_timeout=1", NULL};
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid = cel_test_worker_start(LOG_PATH, extra);
        /* Somewhere in the first 400 ms of work: during fetches, runs,
         * commits, or the hand-over between them. */
        cel_test_sleep_ms(rand() % 300);
        ASSERT_EQ(cel_test_worker_stop(pid, SIGKILL, 5000), 128 + SIGKILL);
        struct cel_test_tally t = cel_test_tally(c, ids, N_TASKS, "1");
        cel_test_tally_print("   after kill", &t);
    }
    /* A last worker, left alone, finishes what the killed ones left. */
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    struct cel_test_tally t = cel_test_wait_all(c, ids, N_TASKS, "1", 60000, 20000);
    cel_test_tally_print("   in the end", &t);
    struct cel_test_runs runs = cel_test_count_runs(record, ids, N_TASKS);
    cel_test_runs_print("   runs", &runs);
    if (t.success != N_TASKS) {
        cel_test_worker_postmortem(pid, LOG_PATH);
        cel_test_fail(__FILE__, __LINE__, "%zu of %d tasks have no SUCCESS after %d kills",
                      N_TASKS - t.success, N_TASKS, ROUNDS);
    }
    ASSERT_EQ(runs.never, 0u);
    ASSERT_EQ(runs.foreign, 0u);
    /* A kill re-runs at most what that worker held: its prefetch window
     * (128 messages for -c 2 and short tasks) and the results gathering
     * for a commit (at most 256). */
    if (runs.repeated > (size_t)ROUNDS * (128 + 256))
        cel_test_fail(__FILE__, __LINE__, "%zu tasks ran more than once after %d kills",
                      runs.repeated, ROUNDS);
    /* Nothing left reserved or queued, nothing dead-lettered. */
    ASSERT_EQ(cel_test_sql_int("celeriac.db", "SELECT count(*) FROM messages"), 0);
    ASSERT_EQ(cel_test_sql_int("celeriac.db", "SELECT count(*) FROM dead_letters"), 0);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, 15000), 0);
    cel_test_ids_free(ids, N_TASKS);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_sigkill_loses_nothing);
    return 0;
}
