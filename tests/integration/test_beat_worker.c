/*
 * test_beat_worker.c - `celeriac worker -B`: beat runs in a child of the
 * worker, loads the config file's [schedule.NAME] section into the store
 * and sends it; the worker runs it. Stopping the worker stops its beat.
 * On SQLite and on Redis.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "beat_proc.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define RECORD  "record.txt"
#define CONFIG  "beat.conf"
#define STOP_MS 10000

static void worker_with_beat(bool redis)
{
    struct cel_test_store s;
    cel_test_store_setup(&s, redis);
    char record[4096];
    snprintf(record, sizeof record, "%s/" RECORD, cel_test_dir());
    setenv("CEL_TEST_RECORD_FILE", record, 1);
    FILE *f = fopen(CONFIG, "w");
    ASSERT(f);
    fprintf(f,
            "broker_url %s\n"
            "worker_concurrency 2\n"
            "\n"
            "[schedule.tick]\n"
            "task test.record\n"
            "args [\"tick\"]\n"
            "every 1s\n",
            s.url);
    fclose(f);

    const char *wargs[] = {"--config", CONFIG, "-B", NULL};
    pid_t worker = cel_test_worker_start("worker.log", wargs);
    ASSERT(cel_test_wait_log("worker.log", "beat: started", 10000));
    cel_test_sleep_ms(3000);
    int runs = cel_test_count_in_file(RECORD, "\n");
    if (runs < 2) {
        cel_test_print_tail("worker log", "worker.log", 40);
        cel_test_fail(__FILE__, __LINE__, "%d runs in 3 s, expected at least 2", runs);
    }
    ASSERT(cel_test_count_in_file("worker.log", "beat: sent 'tick'") >= 2);
    ASSERT_EQ(cel_test_worker_stop(worker, SIGTERM, STOP_MS), 0);
    /* The beat child stopped with it, releasing its lease. */
    ASSERT(cel_test_wait_log("worker.log", "beat: stopped", 1000));

    /* The entry is in the store, marked as born in the config file. */
    cel_client *c = cel_test_client(s.url, NULL);
    cel_schedule_entries *l = NULL;
    ASSERT_OK(cel_schedule_get(c, "tick", &l));
    ASSERT_STREQ(cel_schedule_entries_origin(l, 0), "config");
    ASSERT(cel_schedule_entries_total_runs(l, 0) >= 2);
    cel_schedule_entries_free(l);
    cel_client_free(c);
    cel_test_store_teardown(&s);
}

static void test_worker_beat_sqlite(void)
{
    worker_with_beat(false);
}

static void test_worker_beat_redis(void)
{
    worker_with_beat(true);
}

/* A worker killed with SIGKILL takes its beat along: the kernel tells
 * the child (PR_SET_PDEATHSIG), which stops cleanly and releases the
 * lease, so a beat started next leads at once. */
static void test_beat_dies_with_a_killed_worker(void)
{
    struct cel_test_store s;
    cel_test_store_setup(&s, false);
    const char *wargs[] = {"-b", s.url, "-B", NULL};
    pid_t worker = cel_test_worker_start("worker.log", wargs);
    ASSERT(cel_test_wait_log("worker.log", "leadership gained", 10000));
    kill(worker, SIGKILL); /* the worker only, not its process group */
    ASSERT_EQ(cel_test_wait(worker, STOP_MS), 128 + SIGKILL);
    ASSERT(cel_test_wait_log("worker.log", "beat: stopped", 5000));
    ASSERT_EQ(cel_test_count_in_file("worker.log", "leadership released"), 1);
    cel_test_store_teardown(&s);
}

int main(void)
{
    TEST_RUN(test_worker_beat_sqlite);
    TEST_RUN(test_worker_beat_redis);
    TEST_RUN(test_beat_dies_with_a_killed_worker);
    return 0;
}
