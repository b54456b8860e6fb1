/*
 * test_worker_result_blip.c - the result store goes away for a few
 * seconds in the middle of a drain: no result may be lost.
 *
 * Issue 6: with broker and result store on two Redis servers and the
 * result Redis stopped for 5 s during a drain of 3,000 tasks, a task ran,
 * its message was acked, and its result was never stored (PENDING
 * forever). The ack must wait until the result is stored: at least once,
 * as the SQLite path already does.
 *
 * Two ways for a store to go away, two tests:
 *  - killed and started again on the same port with its data (an
 *    append-only file, fsync on every write): connections are refused,
 *    then come back to a server that has everything it acknowledged;
 *  - stopped (SIGSTOP) and continued: connections hang, nothing is
 *    refused, and what was sent before the stop is applied after it.
 * Either way every one of the 3,000 results must end SUCCESS and every
 * task must have run (test.record counts the runs). The old worker lost
 * results to the kill in every run (the store failed after its 5 s
 * reconnect budget and the messages were acked anyway); the stop lost
 * none, because the writes sent before it are applied after it, and is
 * kept so that a store that hangs stays covered. A third test takes the
 * broker away instead.
 */
#include <signal.h>
#include <unistd.h>

#include "record_file.h"
#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH    "worker.log"
#define RECORD_PATH "record.txt"
#define N           3000
/* Results stored before the store goes away: well into the drain. */
#define BLIP_AFTER 300
/* Longer than the 5 s the old worker spent reconnecting within one
 * operation, so the failure cannot hide inside one retry. */
#define BLIP_MS 6000

enum blip { BLIP_KILL, BLIP_STOP };
enum victim { RESULT_STORE, BROKER };

static long long dbsize(const struct cel_test_redis *r)
{
    redisContext *c = cel_test_redis_connect(r);
    if (!c)
        return -1;
    long long n = cel_test_redis_int(c, "DBSIZE");
    redisFree(c);
    return n;
}

static void run_blip(enum blip how, enum victim which)
{
    char record[4200];
    snprintf(record, sizeof record, "%s/" RECORD_PATH, cel_test_dir());
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
    struct cel_test_redis broker = {.persist = which == BROKER},
                          results = {.persist = which == RESULT_STORE};
    struct cel_test_redis *down = which == BROKER ? &broker : &results;
    cel_test_redis_setup(&broker);
    cel_test_redis_setup(&results);

    cel_client *c = cel_test_client(broker.url, results.url);
    char **ids = cel_test_send_many(c, "test.record", "[\"x\"]", N);
    cel_client_free(c);

    /* When the broker dies, a pop whose reply it never sent leaves its
     * messages in `unacked` with no consumer knowing them (kombu loses
     * them outright); the visibility sweep brings them back. A short
     * timeout keeps that inside the test; the worker extends the leases
     * of what it holds, so nothing it runs is restored early. */
    const char *const extra[] = {"-b",
                                 broker.url,
                                 "--result-backend",
                                 results.url,
                                 "-c",
                                 "2",
                                 "--set",
                                 which == BROKER ? "broker_visibility_timeout=3"
                                                 : "broker_visibility_timeout=0",
                                 NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    int64_t deadline = cel_test_now_ms() + 30000;
    long long before;
    while ((before = dbsize(&results)) < BLIP_AFTER) {
        if (cel_test_now_ms() > deadline) {
            cel_test_worker_postmortem(pid, LOG_PATH);
            cel_test_fail(__FILE__, __LINE__, "only %lld results stored in 30 s", before);
        }
        cel_test_sleep_ms(1);
    }
    if (how == BLIP_KILL)
        cel_test_redis_stop(down);
    else
        ASSERT_OK(kill(down->pid, SIGSTOP));
    int64_t t0 = cel_test_now_ms();
    /* The drain must still be under way, or nothing was tested. */
    ASSERT(before < N - 100);
    int runs_at_blip = cel_test_count_in_file(RECORD_PATH, "\n");
    /* The outage lasts BLIP_MS: a span of the scenario, not a wait. */
    cel_test_sleep_ms(BLIP_MS);
    int runs_in_blip = cel_test_count_in_file(RECORD_PATH, "\n") - runs_at_blip;
    if (how == BLIP_KILL)
        cel_test_redis_start(down);
    else
        ASSERT_OK(kill(down->pid, SIGCONT));
    fprintf(stderr, "   %s %s for %lld ms after %lld results; %d runs meanwhile\n",
            which == BROKER ? "broker" : "result store", how == BLIP_KILL ? "killed" : "stopped",
            (long long)(cel_test_now_ms() - t0), before, runs_in_blip);

    c = cel_test_client(broker.url, results.url);
    /* Stall limit past one sweep (every 10 s) plus the timeout. */
    struct cel_test_tally t = cel_test_wait_all(c, ids, N, "1", 60000, 20000);
    struct cel_test_runs r = cel_test_count_runs(RECORD_PATH, ids, N);
    cel_test_tally_print("results", &t);
    cel_test_runs_print("runs", &r);
    redisContext *bc = cel_test_redis_connect(&broker);
    ASSERT(bc);
    long long queued = cel_test_redis_int(bc, "LLEN celery");
    long long unacked = cel_test_redis_int(bc, "HLEN unacked");
    redisFree(bc);
    fprintf(stderr, "   broker: %lld queued, %lld unacked; worker log: %d ERROR lines\n", queued,
            unacked, cel_test_count_in_file(LOG_PATH, ": ERROR/"));
    if (t.success != N) {
        cel_test_worker_postmortem(pid, LOG_PATH);
        cel_test_fail(__FILE__, __LINE__,
                      "%zu of %d results never stored (%zu PENDING: ran and acked, result lost; "
                      "e.g. %s)",
                      N - t.success, N, t.pending, t.first_bad ? t.first_bad : "?");
    }
    ASSERT_EQ(r.never, 0);
    ASSERT_EQ(r.foreign, 0);
    ASSERT_EQ(queued, 0);
    ASSERT_EQ(unacked, 0);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, 15000), 0);
    cel_client_free(c);
    cel_test_ids_free(ids, N);
    cel_test_redis_stop(&results);
    cel_test_redis_stop(&broker);
}

static void test_result_store_killed_and_restarted(void)
{
    run_blip(BLIP_KILL, RESULT_STORE);
}

static void test_result_store_stopped_and_continued(void)
{
    run_blip(BLIP_STOP, RESULT_STORE);
}

/* The broker goes away instead (killed, back with its data): the worker
 * reconnects and goes on consuming; what it held is settled or restored,
 * nothing is lost and nothing stays unacked. */
static void test_broker_killed_and_restarted(void)
{
    run_blip(BLIP_KILL, BROKER);
}

int main(void)
{
    TEST_RUN(test_result_store_stopped_and_continued);
    TEST_RUN(test_result_store_killed_and_restarted);
    TEST_RUN(test_broker_killed_and_restarted);
    return 0;
}
