/*
 * test_beat_reconnect.c - the store going away under a running beat:
 * beat retries with backoff, never exits, and carries on from the store
 * once it is back.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "beat_proc.h"
#include "testing.h"
#include "worker_proc.h"

#define NAME    "reconnect"
#define RUN_MS  3000
#define STOP_MS 10000

static const char *const beat_args[] = {"--set", "beat_lease_ttl=2s", "--set", "beat_grace=5s",
                                        NULL};

/* Redis killed under a running beat and started again 2 s later (its
 * append-only file keeps every acknowledged write): beat retries, then
 * carries on from the store without a run lost or doubled. */
static void test_redis_restart_under_beat(void)
{
    struct cel_test_store s = {.redis = true};
    s.srv.persist = true;
    cel_test_redis_setup(&s.srv);
    snprintf(s.url, sizeof s.url, "%s", s.srv.url);
    int64_t from = cel_test_wall_s();
    cel_test_schedule_every(s.url, NAME, "1s", CEL_CATCH_UP_ALL);
    pid_t beat = cel_test_beat_start(s.url, "beat.log", beat_args);
    cel_test_sleep_ms(RUN_MS);
    cel_test_redis_stop(&s.srv);
    ASSERT(cel_test_wait_log("beat.log", "retrying", 5000));
    cel_test_sleep_ms(2000);
    cel_test_redis_start(&s.srv);
    cel_test_sleep_ms(RUN_MS);
    ASSERT_EQ(cel_test_worker_stop(beat, SIGTERM, STOP_MS), 0);
    int64_t to = cel_test_wall_s();

    int64_t first, last;
    size_t runs = cel_test_queue_runs(s.url, "celery", NAME, from, to, &first, &last);
    if (last < to - 2 || runs < 6) {
        cel_test_print_tail("beat log", "beat.log", 30);
        cel_test_fail(__FILE__, __LINE__, "runs %lld..%lld (%zu), test %lld..%lld",
                      (long long)first, (long long)last, runs, (long long)from, (long long)to);
    }
    cel_test_store_teardown(&s);
}

int main(void)
{
    TEST_RUN(test_redis_restart_under_beat);
    return 0;
}
