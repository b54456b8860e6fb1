/*
 * test_beat_restart.c - beat stopped and started again at once, with
 * SIGTERM (the lease is released) and with SIGKILL (the new beat waits
 * for the lease to run out): no run is sent twice and, with catch-up
 * all, none is missing. Messages are read back from the queue. On
 * SQLite and on Redis.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "beat_proc.h"
#include "testing.h"
#include "worker_proc.h"

#define NAME    "restart"
#define RUN_MS  3000
#define STOP_MS 10000

static const char *const beat_args[] = {"--set", "beat_lease_ttl=2s", "--set", "beat_grace=5s",
                                        NULL};

static void restart(bool redis, bool kill_it)
{
    struct cel_test_store s;
    cel_test_store_setup(&s, redis);
    int64_t from = cel_test_wall_s();
    cel_test_schedule_every(s.url, NAME, "1s", CEL_CATCH_UP_ALL);

    pid_t beat = cel_test_beat_start(s.url, "beat1.log", beat_args);
    cel_test_sleep_ms(RUN_MS);
    if (kill_it)
        cel_test_kill(beat);
    else
        ASSERT_EQ(cel_test_worker_stop(beat, SIGTERM, STOP_MS), 0);
    int64_t stopped = cel_test_wall_s();
    beat = cel_test_beat_start(s.url, "beat2.log", beat_args);
    ASSERT(cel_test_wait_log("beat2.log", "leadership gained", 5000));
    cel_test_sleep_ms(RUN_MS);
    ASSERT_EQ(cel_test_worker_stop(beat, SIGTERM, STOP_MS), 0);
    int64_t to = cel_test_wall_s();

    int64_t first, last;
    cel_test_queue_runs(s.url, "celery", NAME, from, to, &first, &last);
    if (first > from + 2 || last < to - 2 || last <= stopped) {
        cel_test_print_tail("beat1 log", "beat1.log", 20);
        cel_test_print_tail("beat2 log", "beat2.log", 20);
        cel_test_fail(__FILE__, __LINE__, "runs %lld..%lld; test from %lld, stop %lld, end %lld",
                      (long long)first, (long long)last, (long long)from, (long long)stopped,
                      (long long)to);
    }
    ASSERT(cel_test_count_in_file("beat2.log", "beat: sent '" NAME "'") >= 2);
    cel_test_store_teardown(&s);
}

static void test_restart_sigterm_sqlite(void)
{
    restart(false, false);
}

static void test_restart_sigkill_sqlite(void)
{
    restart(false, true);
}

static void test_restart_sigterm_redis(void)
{
    restart(true, false);
}

static void test_restart_sigkill_redis(void)
{
    restart(true, true);
}

int main(void)
{
    TEST_RUN(test_restart_sigterm_sqlite);
    TEST_RUN(test_restart_sigkill_sqlite);
    TEST_RUN(test_restart_sigterm_redis);
    TEST_RUN(test_restart_sigkill_redis);
    return 0;
}
