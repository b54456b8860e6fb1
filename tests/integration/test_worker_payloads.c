/*
 * test_worker_payloads.c - large task arguments through a real worker:
 * nothing may block the parent, whatever the payload size.
 *
 * The worker pipelines TASK frames to its children while they send
 * RESULT frames back. When both sides block in write() on a full socket
 * (a blocking socketpair, pipelined bytes not bounded), the worker stops
 * for good and does not even answer TERM (issue 6, "Deadlock with large
 * payloads"). The tasks are test.echo, which returns its argument (the
 * payload travels both ways and the whole value is compared), and
 * test.echo_len, which returns its length (the payload goes one way):
 * each result proves its payload arrived whole.
 */
#include <signal.h>
#include <unistd.h>

#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH "worker.log"
/* A healthy worker finishes each run below in a few seconds, even under
 * ASan; a hung one makes no progress at all, so stop waiting after this. */
#define STALL_MS 20000
#define RUN_MS   60000
#define STOP_MS  15000
#define KB       1024u
#define MB       (1024u * 1024u)

/* What `task` returns for `args` (cel_test_string_args of len bytes):
 * the length, or the string itself. Caller frees. */
static char *expected_value(const char *task, const char *args, size_t len)
{
    char *want;
    if (strcmp(task, "test.echo") == 0) {
        want = strdup(args + 1); /* drop '[' and ']' */
        ASSERT(want);
        want[strlen(want) - 1] = '\0';
    } else {
        want = malloc(32);
        ASSERT(want);
        snprintf(want, 32, "%zu", len);
    }
    return want;
}

/*
 * 400 `test.echo` calls with a 60 KB argument on the SQLite default, so
 * 60 KB travels to the child and 60 KB back: today the worker completes a
 * few dozen, then hangs for good and ignores TERM.
 *
 * The worker pipelines frames to its children only while tasks take under
 * a millisecond on average, and whether 60 KB echoes do depends on the
 * machine and its load. WARMUP tiny tasks queued first make the worker
 * pipeline when the large ones arrive, on any machine: a mixed workload,
 * which a worker must survive as well.
 */
static void test_large_payloads_do_not_deadlock(void)
{
    enum { WARMUP = 200, N = 400 };
    const size_t len = 60 * KB;
    cel_client *c = cel_test_client(NULL, NULL);
    char **warm = cel_test_send_many(c, "test.echo_len", "[\"warm up\"]", WARMUP);
    char *args = cel_test_string_args(len);
    char **ids = cel_test_send_many(c, "test.echo", args, N);
    char *want = expected_value("test.echo", args, len);
    free(args);

    const char *const extra[] = {"-c", "2", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    int64_t t0 = cel_test_now_ms();
    struct cel_test_tally t = cel_test_wait_all(c, ids, N, want, RUN_MS, STALL_MS);
    int64_t took = cel_test_now_ms() - t0;
    cel_test_tally_print("400 x 60 KB", &t);
    if (t.success != N) {
        cel_test_worker_postmortem(pid, LOG_PATH);
        cel_test_fail(__FILE__, __LINE__,
                      "the worker finished %zu of %d echoes of 60 KB (no progress for %d s, "
                      "or over %d s in all: deadlock?)",
                      t.success, N, STALL_MS / 1000, RUN_MS / 1000);
    }
    fprintf(stderr, "   400 x 60 KB done in %lld ms\n", (long long)took);
    struct cel_test_tally w = cel_test_tally(c, warm, WARMUP, "7");
    ASSERT_EQ(w.success, WARMUP);
    int rc = cel_test_worker_stop(pid, SIGTERM, STOP_MS);
    if (rc != 0)
        cel_test_print_tail("worker log", LOG_PATH, 25);
    ASSERT_EQ(rc, 0);
    free(want);
    cel_test_ids_free(warm, WARMUP);
    cel_test_ids_free(ids, N);
    cel_client_free(c);
}

/* One group of the matrix: `count` calls of `task` with an argument of
 * `len` bytes. test.echo_len carries the payload to the child only,
 * test.echo both ways. */
struct payload {
    const char *task;
    size_t len;
    size_t count;
    const char *label;
};

/* Queued in this order. The tiny tasks first make the worker pipeline
 * (see test_large_payloads_do_not_deadlock) when the large ones come. */
static const struct payload groups[] = {
    {"test.echo_len", 8, 200, "warm-up"},      {"test.echo", 1 * KB, 50, "echo 1K"},
    {"test.echo_len", 1 * KB, 50, "len 1K"},   {"test.echo", 64 * KB, 25, "echo 64K"},
    {"test.echo_len", 64 * KB, 25, "len 64K"}, {"test.echo", 1 * MB, 4, "echo 1M"},
    {"test.echo_len", 1 * MB, 4, "len 1M"},    {"test.echo", 10 * MB, 1, "echo 10M"},
    {"test.echo_len", 10 * MB, 1, "len 10M"},
};
#define NGROUPS (sizeof groups / sizeof groups[0])

/* What one run (a broker, a concurrency) ended with. */
struct run_report {
    char name[64];
    bool ok;
    long long ms;
    struct cel_test_tally tally[NGROUPS];
};

/*
 * Every group queued at once, in table order, then one worker with
 * `-c concurrency` drains them. Fills `rep`; returns whether every result
 * came back right.
 */
static bool run_matrix_cell(const char *broker_url, const char *concurrency, struct run_report *rep)
{
    cel_client *c = cel_test_client(broker_url, NULL);
    char **ids[NGROUPS];
    char *args[NGROUPS];
    for (size_t g = 0; g < NGROUPS; g++) {
        args[g] = cel_test_string_args(groups[g].len);
        ids[g] = cel_test_send_many(c, groups[g].task, args[g], groups[g].count);
    }

    const char *const extra[] = {"-b", broker_url, "-c", concurrency, NULL};
    char log[96];
    snprintf(log, sizeof log, "worker-%s-c%s.log",
             strncmp(broker_url, "redis", 5) ? "sqlite" : "redis", concurrency);
    pid_t pid = cel_test_worker_start(log, extra);
    int64_t t0 = cel_test_now_ms();
    rep->ok = true;
    for (size_t g = 0; g < NGROUPS && rep->ok; g++) {
        char *want = expected_value(groups[g].task, args[g], groups[g].len);
        int left = (int)(RUN_MS - (cel_test_now_ms() - t0));
        rep->tally[g] =
            cel_test_wait_all(c, ids[g], groups[g].count, want, left > 0 ? left : 0, STALL_MS);
        free(want);
        if (rep->tally[g].success != groups[g].count) {
            char title[96];
            snprintf(title, sizeof title, "%s, %s", rep->name, groups[g].label);
            cel_test_tally_print(title, &rep->tally[g]);
            rep->ok = false; /* hung: the groups before it already said enough */
        }
    }
    rep->ms = cel_test_now_ms() - t0;
    if (rep->ok) {
        int rc = cel_test_worker_stop(pid, SIGTERM, STOP_MS);
        if (rc != 0) {
            fprintf(stderr, "   %s: TERM after the run: exit status %d\n", rep->name, rc);
            cel_test_print_tail("worker log", log, 25);
            rep->ok = false;
        }
    } else {
        cel_test_worker_postmortem(pid, log);
    }
    for (size_t g = 0; g < NGROUPS; g++) {
        free(args[g]);
        cel_test_ids_free(ids[g], groups[g].count);
    }
    cel_client_free(c);
    return rep->ok;
}

/* 1 KB to 10 MB through SQLite and Redis with -c 1 and -c 4. Every run is
 * tried even when one fails, and a table of all of them is printed. */
static void test_payload_matrix(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    static const char *const conc[] = {"1", "4"};
    struct run_report reps[4];
    int nrep = 0;
    bool all_ok = true;
    for (int b = 0; b < 2; b++) {
        for (int k = 0; k < 2; k++) {
            struct run_report *rep = &reps[nrep++];
            memset(rep, 0, sizeof *rep);
            char url[160];
            if (b == 0) {
                snprintf(url, sizeof url, "sqlite:///payloads-c%s.db", conc[k]);
            } else {
                snprintf(url, sizeof url, "%s", srv.url);
                redisContext *rc = cel_test_redis_connect(&srv);
                ASSERT(rc);
                freeReplyObject(cel_test_redis_cmd(rc, "FLUSHALL"));
                redisFree(rc);
            }
            snprintf(rep->name, sizeof rep->name, "%s -c %s", b == 0 ? "sqlite" : "redis", conc[k]);
            if (!run_matrix_cell(url, conc[k], rep))
                all_ok = false;
        }
    }
    fprintf(stderr, "   %-12s %-4s %6s", "run", "", "ms");
    for (size_t g = 0; g < NGROUPS; g++)
        fprintf(stderr, " %8s", groups[g].label);
    fprintf(stderr, "\n");
    for (int i = 0; i < nrep; i++) {
        fprintf(stderr, "   %-12s %-4s %6lld", reps[i].name, reps[i].ok ? "ok" : "FAIL",
                reps[i].ms);
        for (size_t g = 0; g < NGROUPS; g++) {
            char cell[32];
            snprintf(cell, sizeof cell, "%zu/%zu", reps[i].tally[g].success, groups[g].count);
            fprintf(stderr, " %8s", cell);
        }
        fprintf(stderr, "\n");
    }
    cel_test_redis_stop(&srv);
    if (!all_ok)
        cel_test_fail(__FILE__, __LINE__, "some payload runs did not complete (table above)");
}

int main(void)
{
    TEST_RUN(test_large_payloads_do_not_deadlock);
    TEST_RUN(test_payload_matrix);
    return 0;
}
