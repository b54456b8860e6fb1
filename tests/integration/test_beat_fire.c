/*
 * test_beat_fire.c - beat and a real worker: an every-second entry runs
 * about once a second, each run with a task id of its own, on SQLite and
 * on Redis.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "beat_proc.h"
#include "broker/broker.h"
#include "store_open.h"
#include "record_file.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define RECORD  "record.txt"
#define RUN_MS  5000
#define NAME    "every-second"
#define STOP_MS 10000

/* Every line of the record file: the task ids that ran (caller frees). */
static size_t recorded_ids(char ***out)
{
    char *text = cel_test_read_file(RECORD, NULL);
    size_t n = 0;
    char **v = calloc(64, sizeof *v);
    ASSERT(v);
    for (char *line = text; line && *line && n < 64;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        line[strcspn(line, " ")] = '\0';
        v[n++] = strdup(line);
        line = end ? end + 1 : line + strlen(line);
    }
    free(text);
    *out = v;
    return n;
}

static void fire_into_worker(bool redis)
{
    struct cel_test_store s;
    cel_test_store_setup(&s, redis);
    char record[4096];
    snprintf(record, sizeof record, "%s/" RECORD, cel_test_dir());
    setenv("CEL_TEST_RECORD_FILE", record, 1);

    const char *wargs[] = {"-b", s.url, "-c", "2", NULL};
    pid_t worker = cel_test_worker_start("worker.log", wargs);
    pid_t beat = cel_test_beat_start(s.url, "beat.log", NULL);
    int64_t from = cel_test_wall_s();
    cel_test_schedule_every(s.url, NAME, "1s", CEL_CATCH_UP_DEFAULT);
    cel_test_sleep_ms(RUN_MS);
    ASSERT_EQ(cel_test_worker_stop(beat, SIGTERM, STOP_MS), 0);
    int64_t to = cel_test_wall_s();
    cel_test_sleep_ms(1500); /* the last run reaches the worker */
    ASSERT_EQ(cel_test_worker_stop(worker, SIGTERM, STOP_MS), 0);

    char **ids;
    size_t n = recorded_ids(&ids);
    if (n < 4 || n > 6) {
        cel_test_print_tail("beat log", "beat.log", 30);
        cel_test_fail(__FILE__, __LINE__, "%zu runs in %d ms, expected 4 to 6", n, RUN_MS);
    }
    /* Distinct ids, each the id of one run of the entry, none between
     * the first and the last missing. */
    ASSERT_EQ(cel_test_check_runs(NAME, ids, n, from, to, NULL, NULL), n);
    ASSERT(cel_test_count_in_file("beat.log", "beat: sent '" NAME "'") >= 4);
    cel_test_ids_free(ids, n);
    cel_test_store_teardown(&s);
}

static void test_fire_sqlite(void)
{
    fire_into_worker(false);
}

static void test_fire_redis(void)
{
    fire_into_worker(true);
}

/* A broker that keeps no entries is refused, saying so. */
static void test_refuses_memory_broker(void)
{
    char *out = NULL, *err = NULL;
    int rc = cel_test_cli(&out, &err, "beat", "-b", "memory://", NULL);
    ASSERT(rc != 0);
    ASSERT_CONTAINS(err, "keeps no periodic entries");
    free(out);
    free(err);
}

/* A beat whose broker is down retries, and stops cleanly meanwhile. */
static void test_stops_while_the_broker_is_down(void)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", cel_test_free_port());
    pid_t beat = cel_test_beat_spawn(url, "beat.log", NULL);
    ASSERT(cel_test_wait_log("beat.log", "retrying", 10000));
    ASSERT(cel_test_alive(beat));
    ASSERT_EQ(cel_test_worker_stop(beat, SIGTERM, STOP_MS), 0);
}

/* An entry whose stored document does not parse (written past the API's
 * checks) is reported once, however often the entries are read again,
 * and the others run on. */
static void test_bad_entry_is_left_out(void)
{
    struct cel_test_store s;
    cel_test_store_setup(&s, false);
    struct cel_broker *b = cel_test_open_broker(s.url);
    const char bad[] =
        "{\"name\": \"broken\", \"task\": \"test.record\", \"cron\": \"61 * * * *\"}";
    ASSERT_OK(b->ops->sched_put(b, "broken", bad, strlen(bad), true, false));
    cel_test_schedule_every(s.url, NAME, "1s", CEL_CATCH_UP_DEFAULT);
    pid_t beat = cel_test_beat_start(s.url, "beat.log", NULL);
    ASSERT(cel_test_wait_log("beat.log", "beat: sent '" NAME "'", 5000));
    for (int i = 0; i < 3; i++) { /* each change makes beat read all entries again */
        ASSERT_OK(b->ops->sched_enable(b, NAME, true));
        cel_test_sleep_ms(400);
    }
    ASSERT(cel_test_alive(beat));
    ASSERT_EQ(cel_test_count_in_file("beat.log", "entry 'broken' is left out"), 1);
    ASSERT(cel_test_count_in_file("beat.log", "beat: sent '" NAME "'") >= 2);
    ASSERT_EQ(cel_test_worker_stop(beat, SIGTERM, STOP_MS), 0);
    cel__broker_close(b);
    cel_test_store_teardown(&s);
}

int main(void)
{
    TEST_RUN(test_bad_entry_is_left_out);
    TEST_RUN(test_refuses_memory_broker);
    TEST_RUN(test_stops_while_the_broker_is_down);
    TEST_RUN(test_fire_sqlite);
    TEST_RUN(test_fire_redis);
    return 0;
}
