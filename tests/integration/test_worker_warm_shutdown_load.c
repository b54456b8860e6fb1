/*
 * test_worker_warm_shutdown_load.c - SIGTERM while a worker is busy with
 * large tasks: it must stop within its timeout, exit 0, and lose nothing.
 *
 * test_worker.c covers a warm shutdown with a few sleeping tasks; here the
 * pipes to the children are full of 100 KB frames both ways when TERM
 * comes, which is where a parent that blocks in write() never sees the
 * signal (issue 6). The SQLite file is read with sqlite3 afterwards: every
 * task has either its result stored or its message back in the queue,
 * never both, never neither, and nothing is left reserved.
 */
#include <signal.h>
#include <unistd.h>

#include "sql_query.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH "worker.log"
#define DB_PATH  "celeriac.db"
/* How long a warm shutdown may take: the tasks themselves take
 * microseconds, so this is all the parent's own work. */
#define SHUTDOWN_MS 15000

static long long count(const char *sql)
{
    return cel_test_sql_int(DB_PATH, sql);
}

static void test_warm_shutdown_with_large_tasks_in_flight(void)
{
    enum { WARMUP = 200, N = 1000, TOTAL = WARMUP + N, DONE_BEFORE_TERM = 50 };
    cel_client *c = cel_test_client(NULL, NULL);
    /* Tiny tasks first make the worker pipeline (see test_worker_payloads.c). */
    char **warm = cel_test_send_many(c, "test.echo_len", "[\"warm up\"]", WARMUP);
    char *args = cel_test_string_args(100 * 1024);
    char **ids = cel_test_send_many(c, "test.echo", args, N);
    /* test.echo returns its argument: the JSON string inside the list. */
    char *want = strdup(args + 1);
    ASSERT(want);
    want[strlen(want) - 1] = '\0';
    free(args);
    ASSERT_EQ(count("SELECT count(*) FROM messages"), TOTAL);

    const char *const extra[] = {"-c", "2", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    /* TERM once some large tasks are done (the pipes are busy then), or
     * once nothing has moved for 3 s (a hung worker must be told too). */
    int64_t last_move = cel_test_now_ms();
    long long done = 0;
    for (;;) {
        long long now_done = count("SELECT count(*) FROM results WHERE status = 'SUCCESS'");
        if (now_done != done)
            last_move = cel_test_now_ms();
        done = now_done;
        if (done >= WARMUP + DONE_BEFORE_TERM || cel_test_now_ms() - last_move > 3000)
            break;
        cel_test_sleep_ms(5);
    }
    long long reserved_at_term = count("SELECT count(*) FROM messages WHERE reserved != 0");
    fprintf(stderr, "   TERM with %lld results stored and %lld messages reserved\n", done,
            reserved_at_term);

    int64_t t0 = cel_test_now_ms();
    int rc = cel_test_worker_stop(pid, SIGTERM, SHUTDOWN_MS);
    int64_t took = cel_test_now_ms() - t0;

    long long success = count("SELECT count(*) FROM results WHERE status = 'SUCCESS'");
    long long other = count("SELECT count(*) FROM results WHERE status <> 'SUCCESS'"
                            " AND status NOT IN ('STARTED', 'RECEIVED')");
    long long queued = count("SELECT count(*) FROM messages WHERE reserved = 0");
    long long reserved = count("SELECT count(*) FROM messages WHERE reserved != 0");
    long long both = count("SELECT count(*) FROM messages m JOIN results r"
                           " ON m.task_id = r.task_id WHERE r.status = 'SUCCESS'");
    fprintf(stderr,
            "   exit status %d after %lld ms; %lld succeeded, %lld other final states, "
            "%lld back in the queue, %lld still reserved, %lld both done and queued; "
            "%d tasks in all\n",
            rc, (long long)took, success, other, queued, reserved, both, TOTAL);
    if (rc != 0)
        cel_test_print_tail("worker log", LOG_PATH, 20);
    if (rc == -1)
        cel_test_fail(__FILE__, __LINE__,
                      "the worker did not finish a warm shutdown within %d s of SIGTERM (killed)",
                      SHUTDOWN_MS / 1000);
    ASSERT_EQ(rc, 0);
    ASSERT(reserved_at_term > 0); /* the shutdown really had work in flight */
    ASSERT_EQ(other, 0);
    ASSERT_EQ(reserved, 0);
    ASSERT_EQ(both, 0);
    ASSERT_EQ(success + queued, TOTAL);
    /* What was stored is what the tasks returned, not a truncated frame;
     * the rest is PENDING (queued), not lost. */
    struct cel_test_tally w = cel_test_tally(c, warm, WARMUP, "7");
    struct cel_test_tally l = cel_test_tally(c, ids, N, want);
    cel_test_tally_print("warm-up", &w);
    cel_test_tally_print("100 KB echoes", &l);
    ASSERT_EQ(w.success + w.pending, WARMUP);
    ASSERT_EQ(l.success + l.pending, N);
    ASSERT_EQ((long long)(w.success + l.success), success);
    free(want);
    cel_test_ids_free(warm, WARMUP);
    cel_test_ids_free(ids, N);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_warm_shutdown_with_large_tasks_in_flight);
    return 0;
}
