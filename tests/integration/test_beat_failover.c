/*
 * test_beat_failover.c - two beats on one store, the leader SIGKILLed
 * halfway: the standby takes the lease once it runs out (2 s), sends the
 * runs the dead leader left (the grace of 5 s covers them), and every
 * run from the first to the last is sent exactly once. No worker: the
 * messages are read back from the queue, where a run sent twice would
 * show as its task id twice. On SQLite and on Redis.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "beat_proc.h"
#include "testing.h"
#include "worker_proc.h"

#define NAME    "failover"
#define HALF_MS 5000
#define STOP_MS 10000

static const char *const beat_args[] = {"--set", "beat_lease_ttl=2s", "--set", "beat_grace=5s",
                                        NULL};

static void failover(bool redis)
{
    struct cel_test_store s;
    cel_test_store_setup(&s, redis);
    int64_t from = cel_test_wall_s();
    cel_test_schedule_every(s.url, NAME, "1s", CEL_CATCH_UP_ALL);

    pid_t one = cel_test_beat_start(s.url, "beat1.log", beat_args);
    ASSERT(cel_test_wait_log("beat1.log", "leadership gained", 10000));
    pid_t two = cel_test_beat_start(s.url, "beat2.log", beat_args);
    cel_test_sleep_ms(HALF_MS);
    /* The first one leads: the second has never led. */
    ASSERT_EQ(cel_test_count_in_file("beat2.log", "leadership gained"), 0);
    ASSERT_EQ(cel_test_count_in_file("beat2.log", "standing by"), 1);
    ASSERT(cel_test_count_in_file("beat1.log", "beat: sent '" NAME "'") >= 3);

    cel_test_kill(one); /* SIGKILL: no release, the lease runs out */
    if (!cel_test_wait_log("beat2.log", "leadership gained", 5000)) {
        cel_test_print_tail("standby log", "beat2.log", 30);
        cel_test_fail(__FILE__, __LINE__, "the standby did not take over");
    }
    cel_test_sleep_ms(HALF_MS);
    ASSERT_EQ(cel_test_worker_stop(two, SIGTERM, STOP_MS), 0);
    int64_t to = cel_test_wall_s();

    int64_t first, last;
    size_t runs = cel_test_queue_runs(s.url, "celery", NAME, from, to, &first, &last);
    /* About ten seconds of runs, the dead leader's gap included. */
    if (runs < 8) {
        cel_test_print_tail("beat1 log", "beat1.log", 20);
        cel_test_print_tail("beat2 log", "beat2.log", 20);
        cel_test_fail(__FILE__, __LINE__, "only %zu runs (%lld..%lld)", runs, (long long)first,
                      (long long)last);
    }
    ASSERT(last >= to - 2);
    ASSERT(cel_test_count_in_file("beat2.log", "beat: sent '" NAME "'") >= 3);
    cel_test_store_teardown(&s);
}

static void test_failover_sqlite(void)
{
    failover(false);
}

static void test_failover_redis(void)
{
    failover(true);
}

int main(void)
{
    TEST_RUN(test_failover_sqlite);
    TEST_RUN(test_failover_redis);
    return 0;
}
