/*
 * test_worker_limits.c - issue 7, the parent's side of running a task:
 * hard time limits (worker, task, call), a child that dies (WorkerLostError,
 * reject_on_worker_lost bounded by task_poison_limit), per-task acks_late
 * in both directions, and children recycled by memory and task count.
 *
 * Real worker processes (tests/support/test_tasks.c); the key cases run
 * on SQLite and on a throw-away redis-server.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <celeriac.h>

#include "proto/message.h"
#include "record_file.h"
#include "redis_server.h"
#include "sql_query.h"
#include "store_open.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH    "worker.log"
#define RECORD_PATH "record.txt"
#define DB_PATH     "celeriac.db"
#define WAIT_MS     30000

struct store {
    bool redis;
    struct cel_test_redis srv;
    char url[160];
    redisContext *rc;
};

static void store_up(struct store *s, bool redis)
{
    memset(s, 0, sizeof *s);
    s->redis = redis;
    if (redis) {
        cel_test_redis_setup(&s->srv);
        snprintf(s->url, sizeof s->url, "%s", s->srv.url);
        s->rc = cel_test_redis_connect(&s->srv);
        ASSERT(s->rc);
    } else {
        snprintf(s->url, sizeof s->url, "sqlite:///" DB_PATH);
    }
    char record[4200];
    snprintf(record, sizeof record, "%s/" RECORD_PATH, cel_test_dir());
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
    /* test.crash aborts: no core file for each crash. */
    struct rlimit no_core = {0, 0};
    ASSERT_OK(setrlimit(RLIMIT_CORE, &no_core));
}

static void store_down(struct store *s)
{
    if (s->redis) {
        redisFree(s->rc);
        cel_test_redis_stop(&s->srv);
    }
}

/* Messages the broker still holds, queued or reserved by a worker. */
static long long held_messages(struct store *s)
{
    if (!s->redis)
        return cel_test_sql_int(DB_PATH, "SELECT count(*) FROM messages");
    return cel_test_redis_int(s->rc, "HLEN unacked") + cel_test_redis_int(s->rc, "LLEN celery");
}

/* Waits until the broker holds `want` messages (an ack follows its
 * result, so a stored result does not mean the ack landed yet). */
static void wait_held(struct store *s, long long want, pid_t worker)
{
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (held_messages(s) != want) {
        if (cel_test_now_ms() > deadline) {
            cel_test_worker_postmortem(worker, LOG_PATH);
            cel_test_fail(__FILE__, __LINE__, "the broker holds %lld messages, not %lld",
                          held_messages(s), want);
        }
        cel_test_sleep_ms(10);
    }
}

static long long dead_letters(struct store *s, const char *task_id)
{
    if (s->redis)
        return cel_test_redis_int(s->rc, "LLEN celeriac.dead_letters");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM dead_letters WHERE task_id = '%s'", task_id);
    return cel_test_sql_int(DB_PATH, sql);
}

/* `celeriac worker -b <store> <args...>` (NULL-terminated), ready. */
static pid_t start_worker(struct store *s, const char *const args[])
{
    const char *extra[40] = {"-b", s->url};
    int n = 2;
    for (int i = 0; args && args[i]; i++)
        extra[n++] = args[i];
    extra[n] = NULL;
    return cel_test_worker_start(LOG_PATH, extra);
}

static cel_result *send_task(cel_client *c, const char *task, const char *args)
{
    cel_result *r = NULL;
    if (cel_client_send(c, task, args, NULL, NULL, &r) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "send %s: %s", task, cel_client_errmsg(c));
    return r;
}

static void wait_ready(cel_result *r, pid_t worker)
{
    int rc = cel_result_wait(r, WAIT_MS);
    if (rc != CEL_OK || !cel_state_is_ready(cel_result_state(r))) {
        cel_test_worker_postmortem(worker, LOG_PATH);
        cel_test_fail(__FILE__, __LINE__, "task %s not ready in %d s (state %s)", cel_result_id(r),
                      WAIT_MS / 1000, cel_result_state_name(r));
    }
}

/* Runs of `id` recorded so far, and the pid of the last one. */
static size_t runs_of(const char *id, int *pid)
{
    size_t len = 0, n = 0;
    char *text = cel_test_read_file(RECORD_PATH, &len);
    if (pid)
        *pid = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        size_t idlen = strlen(id);
        if (strncmp(line, id, idlen) == 0 && line[idlen] == ' ') {
            n++;
            if (pid)
                *pid = atoi(line + idlen + 1);
        }
        line = nl + 1;
    }
    free(text);
    return n;
}

/* Waits until `id` has been recorded `want` times; returns when it was. */
static int64_t wait_runs(const char *id, size_t want, pid_t worker)
{
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (runs_of(id, NULL) < want) {
        if (cel_test_now_ms() > deadline) {
            cel_test_worker_postmortem(worker, LOG_PATH);
            cel_test_fail(__FILE__, __LINE__, "task %s ran %zu times, not %zu, in %d s", id,
                          runs_of(id, NULL), want, WAIT_MS / 1000);
        }
        cel_test_sleep_ms(5);
    }
    return cel_test_now_ms();
}

/* Stops the worker (it must obey SIGTERM), frees the results (NULL
 * entries allowed) and the client, and stops the store. */
static void end_test(struct store *s, pid_t w, cel_client *c, cel_result *rs[], size_t n)
{
    ASSERT_EQ(cel_test_worker_stop(w, SIGTERM, WAIT_MS), 0);
    for (size_t i = 0; i < n; i++)
        cel_result_free(rs[i]);
    cel_client_free(c);
    store_down(s);
}

static void assert_time_limit_failure(cel_result *r, const char *limit_text)
{
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "TimeLimitExceeded");
    /* Celery's TimeLimitExceeded(limit): the limit, a number, is the one
     * argument. */
    char want[64];
    snprintf(want, sizeof want, "\"exc_message\": [%s]", limit_text);
    ASSERT_CONTAINS(cel_result_meta_json(r), want);
    ASSERT_CONTAINS(cel_result_meta_json(r), "\"exc_module\": \"billiard.exceptions\"");
}

/*
 * A C busy loop under a 1 s hard limit (the worker's --time-limit) is
 * stopped within the limit plus one second of its start; its task fails
 * with TimeLimitExceeded, the log says so as Celery does, and the next
 * task runs on a fresh child.
 */
static void hard_limit_stops_spin(bool redis)
{
    struct store s;
    store_up(&s, redis);
    const char *const args[] = {"-c", "1", "--time-limit", "1", NULL};
    pid_t w = start_worker(&s, args);
    cel_client *c = cel_test_client(s.url, NULL);

    cel_result *spin = send_task(c, "test.spin", NULL);
    int64_t started = wait_runs(cel_result_id(spin), 1, w);
    wait_ready(spin, w);
    int64_t stopped = cel_test_now_ms();
    fprintf(stderr, "   test.spin stopped %lld ms after it started (limit 1 s)\n",
            (long long)(stopped - started));
    ASSERT(stopped - started <= 2000);
    assert_time_limit_failure(spin, "1.0");
    char needle[128];
    snprintf(needle, sizeof needle, "Hard time limit (1s) exceeded for test.spin[%s]",
             cel_result_id(spin));
    ASSERT(cel_test_wait_log(LOG_PATH, needle, WAIT_MS));

    int spin_pid = 0, next_pid = 0;
    runs_of(cel_result_id(spin), &spin_pid);
    cel_result *next = send_task(c, "test.record", "[\"next\"]");
    wait_ready(next, w);
    ASSERT_STREQ(cel_result_state_name(next), "SUCCESS");
    ASSERT_EQ(runs_of(cel_result_id(next), &next_pid), 1u);
    ASSERT(spin_pid > 0 && next_pid > 0);
    ASSERT(spin_pid != next_pid);
    /* Killed, not left running. */
    ASSERT_EQ(kill(spin_pid, 0), -1);
    /* The spin is not run again. */
    ASSERT_EQ(runs_of(cel_result_id(spin), NULL), 1u);

    end_test(&s, w, c, (cel_result *[]){spin, next}, 2);
}

static void test_hard_limit_sqlite(void)
{
    hard_limit_stops_spin(false);
}

static void test_hard_limit_redis(void)
{
    hard_limit_stops_spin(true);
}

/* Publishes test.spin with a call's `timelimit` header [hard, null]. */
static char *send_spin_with_limit(struct store *s, double hard)
{
    struct cel_task_spec spec = {.task = "test.spin", .time_limit = hard};
    char *body = NULL, id[37], err[256];
    size_t len = 0;
    if (cel__message_build(&spec, &body, &len, id, err, sizeof err) != 0)
        cel_test_fail(__FILE__, __LINE__, "building the message: %s", err);
    struct cel_broker *b = cel_test_open_broker(s->url);
    ASSERT_OK(b->ops->publish(b, "celery", 0, 0, id, body, len));
    cel__broker_close(b);
    free(body);
    return strdup(id);
}

/*
 * The limit of one call (the `timelimit` header, as a Python client's
 * apply_async(time_limit=...) sends it) and of one task definition
 * (test.spin_limited: time_limit = 1) are enforced by a worker that has
 * no limit of its own; both reach the parent in the child's BEGIN frame.
 * Another task on a second child keeps running meanwhile.
 */
static void call_and_task_limits(bool redis)
{
    struct store s;
    store_up(&s, redis);
    const char *const args[] = {"-c", "3", NULL};
    pid_t w = start_worker(&s, args);
    cel_client *c = cel_test_client(s.url, NULL);

    cel_result *bystander = send_task(c, "test.spin", "[3.5]");
    char *call_id = send_spin_with_limit(&s, 1.5);
    cel_result *by_call = NULL;
    ASSERT_OK(cel_client_result(c, call_id, &by_call));
    cel_result *by_def = send_task(c, "test.spin_limited", NULL);

    int64_t t_call = wait_runs(call_id, 1, w);
    int64_t t_def = wait_runs(cel_result_id(by_def), 1, w);
    wait_ready(by_def, w);
    ASSERT(cel_test_now_ms() - t_def <= 2000);
    assert_time_limit_failure(by_def, "1.0");
    wait_ready(by_call, w);
    ASSERT(cel_test_now_ms() - t_call <= 2500);
    assert_time_limit_failure(by_call, "1.5");
    /* The task without a limit was not touched. */
    wait_ready(bystander, w);
    ASSERT_STREQ(cel_result_state_name(bystander), "SUCCESS");
    ASSERT_STREQ(cel_result_value_json(bystander), "3.5");

    free(call_id);
    end_test(&s, w, c, (cel_result *[]){by_call, by_def, bystander}, 3);
}

static void test_call_and_task_limits_sqlite(void)
{
    call_and_task_limits(false);
}

static void test_call_and_task_limits_redis(void)
{
    call_and_task_limits(true);
}

/*
 * A child that aborts fails its task with WorkerLostError naming the
 * signal. A task defined with reject_on_worker_lost goes back to its
 * queue instead, until its third delivery has killed a child
 * (task_poison_limit, default 3): then it is dead-lettered with
 * WorkerLostError, while the worker keeps serving other tasks.
 */
static void crash_and_poison(bool redis)
{
    struct store s;
    store_up(&s, redis);
    const char *const args[] = {"-c", "2", NULL};
    pid_t w = start_worker(&s, args);
    cel_client *c = cel_test_client(s.url, NULL);

    cel_result *crash = send_task(c, "test.crash", NULL);
    wait_ready(crash, w);
    ASSERT_STREQ(cel_result_state_name(crash), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(crash), "WorkerLostError");
    ASSERT_CONTAINS(cel_result_exc_message(crash), "signal 6");
    ASSERT_EQ(runs_of(cel_result_id(crash), NULL), 1u);

    cel_result *poison = send_task(c, "test.crash_requeue", NULL);
    char **ok = cel_test_send_many(c, "test.echo_len", "[\"fine\"]", 20);
    wait_ready(poison, w);
    ASSERT_STREQ(cel_result_state_name(poison), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(poison), "WorkerLostError");
    ASSERT_EQ(runs_of(cel_result_id(poison), NULL), 3u);
    /* The result is stored before the message moves. */
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (dead_letters(&s, cel_result_id(poison)) < 1 && cel_test_now_ms() < deadline)
        cel_test_sleep_ms(10);
    ASSERT_EQ(dead_letters(&s, cel_result_id(poison)), 1);
    ASSERT(cel_test_wait_log(LOG_PATH, "task_poison_limit is 3", WAIT_MS));
    struct cel_test_tally t = cel_test_wait_all(c, ok, 20, "4", WAIT_MS, WAIT_MS);
    ASSERT_EQ(t.success, 20u);
    ASSERT(cel_test_alive(w));
    wait_held(&s, 0, w);

    cel_test_ids_free(ok, 20);
    end_test(&s, w, c, (cel_result *[]){poison, crash}, 2);
}

static void test_crash_and_poison_sqlite(void)
{
    crash_and_poison(false);
}

static void test_crash_and_poison_redis(void)
{
    crash_and_poison(true);
}

/*
 * Per-task acks_late against the worker's default, both ways. Two tasks
 * spin at once, test.spin_early (acks_late off) and test.spin_late
 * (acks_late on). Once both run, the broker holds the late one only:
 * the early one was acked as it started (on its BEGIN frame under a
 * late-acking worker; by the parent's own look-up under an early-acking
 * one, which must not ack the late task). SIGKILL the worker: a new one
 * gets the late task again and never the early one.
 */
static void per_task_acks_late(bool redis, bool worker_acks_late)
{
    struct store s;
    store_up(&s, redis);
    const char *acks = worker_acks_late ? "task_acks_late=true" : "task_acks_late=false";
    const char *const args[] = {"-c", "2", "--set", acks, "--set", "broker_visibility_timeout=1",
                                NULL};
    pid_t w = start_worker(&s, args);
    cel_client *c = cel_test_client(s.url, NULL);

    cel_result *early = send_task(c, "test.spin_early", NULL);
    cel_result *late = send_task(c, "test.spin_late", NULL);
    wait_runs(cel_result_id(early), 1, w);
    wait_runs(cel_result_id(late), 1, w);
    wait_held(&s, 1, w);
    cel_test_kill(w); /* the worker and its children, at once */

    /* The new worker ends the redelivered spin with a hard limit. */
    const char *const again[] = {"-c",           "2",     "--set",
                                 acks,           "--set", "broker_visibility_timeout=1",
                                 "--time-limit", "1",     NULL};
    w = start_worker(&s, again);
    wait_runs(cel_result_id(late), 2, w);
    wait_ready(late, w);
    ASSERT_STREQ(cel_result_exc_type(late), "TimeLimitExceeded");
    wait_held(&s, 0, w);
    ASSERT_EQ(runs_of(cel_result_id(early), NULL), 1u);
    end_test(&s, w, c, (cel_result *[]){early, late}, 2);
}

static void test_acks_per_task_late_worker_sqlite(void)
{
    per_task_acks_late(false, true);
}

static void test_acks_per_task_early_worker_sqlite(void)
{
    per_task_acks_late(false, false);
}

static void test_acks_per_task_late_worker_redis(void)
{
    per_task_acks_late(true, true);
}

static void test_acks_per_task_early_worker_redis(void)
{
    per_task_acks_late(true, false);
}

/*
 * Under -P solo the task runs in the worker process: no hard limit is
 * enforced (as in Celery's solo pool), and the running task reaches the
 * parent through the solo io table: its BEGIN acks test.spin_early under
 * a late-acking worker before the body runs, so a worker killed under it
 * does not get it back.
 */
static void test_solo_pool(void)
{
    struct store s;
    store_up(&s, false);
    const char *const args[] = {
        "-P", "solo", "--time-limit", "1", "--set", "broker_visibility_timeout=1", NULL};
    pid_t w = start_worker(&s, args);
    cel_client *c = cel_test_client(s.url, NULL);
    cel_result *longer = send_task(c, "test.spin", "[1.5]");
    wait_ready(longer, w);
    ASSERT_STREQ(cel_result_state_name(longer), "SUCCESS");

    cel_result *early = send_task(c, "test.spin_early", NULL);
    wait_runs(cel_result_id(early), 1, w);
    wait_held(&s, 0, w);
    cel_test_kill(w);
    w = start_worker(&s, args);
    cel_result *next = send_task(c, "test.record", "[\"x\"]");
    wait_ready(next, w);
    ASSERT_STREQ(cel_result_state_name(next), "SUCCESS");
    ASSERT_EQ(runs_of(cel_result_id(early), NULL), 1u);
    end_test(&s, w, c, (cel_result *[]){longer, early, next}, 3);
}

/* Runs test.alloc(mib) and returns the pid of the child that ran it. */
static int alloc_pid(cel_client *c, pid_t w, int mib)
{
    char args[32];
    snprintf(args, sizeof args, "[%d]", mib);
    cel_result *r = send_task(c, "test.alloc", args);
    wait_ready(r, w);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    int pid = atoi(cel_result_value_json(r));
    cel_result_free(r);
    ASSERT(pid > 0);
    return pid;
}

/*
 * --max-memory-per-child (KiB): a child whose resident memory passed it
 * after a task is replaced; one under it is kept. --max-tasks-per-child
 * still replaces a child after its count.
 */
static void test_recycling(void)
{
    struct store s;
    store_up(&s, false);
    const char *const mem[] = {"-c", "1", "--max-memory-per-child", "40000", NULL};
    pid_t w = start_worker(&s, mem);
    cel_client *c = cel_test_client(s.url, NULL);
    int a = alloc_pid(c, w, 1);
    int b = alloc_pid(c, w, 1);
    ASSERT_EQ(a, b); /* under the limit: kept */
    int big = alloc_pid(c, w, 64);
    ASSERT_EQ(big, a);
    int after = alloc_pid(c, w, 0);
    ASSERT(after != big);
    ASSERT(cel_test_wait_log(LOG_PATH, "exceeded the memory limit", WAIT_MS));
    ASSERT_EQ(cel_test_worker_stop(w, SIGTERM, WAIT_MS), 0);

    const char *const tasks[] = {"-c", "1", "--max-tasks-per-child", "2", NULL};
    w = start_worker(&s, tasks);
    a = alloc_pid(c, w, 0);
    b = alloc_pid(c, w, 0);
    int third = alloc_pid(c, w, 0);
    ASSERT_EQ(a, b);
    ASSERT(third != b);
    end_test(&s, w, c, NULL, 0);
}

int main(void)
{
    TEST_RUN(test_hard_limit_sqlite);
    TEST_RUN(test_hard_limit_redis);
    TEST_RUN(test_call_and_task_limits_sqlite);
    TEST_RUN(test_call_and_task_limits_redis);
    TEST_RUN(test_crash_and_poison_sqlite);
    TEST_RUN(test_crash_and_poison_redis);
    TEST_RUN(test_acks_per_task_late_worker_sqlite);
    TEST_RUN(test_acks_per_task_early_worker_sqlite);
    TEST_RUN(test_acks_per_task_late_worker_redis);
    TEST_RUN(test_acks_per_task_early_worker_redis);
    TEST_RUN(test_solo_pool);
    TEST_RUN(test_recycling);
    return 0;
}
