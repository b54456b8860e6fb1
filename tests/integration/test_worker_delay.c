/*
 * test_worker_delay.c - delayed, expiring and unregistered tasks with
 * real workers, on SQLite and on Redis (issue 7).
 *
 *  - a countdown and an --eta start within 100 ms of their due time, and
 *    never before it;
 *  - an expired task (expires as seconds and as an ISO time, from the C
 *    client and the CLI) is never run: REVOKED, the reason logged;
 *  - delayed tasks are counted by the queue length and removed (and
 *    counted) by `celeriac purge`, on Redis from celeriac.delayed where
 *    the worker parked them;
 *  - a task one worker lacks is given back and run by a worker that has
 *    it, with no failure stored; a task nobody has is dead-lettered with
 *    NotRegistered after task_delivery_limit deliveries, and the log says
 *    once "did you mean".
 */
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "record_file.h"
#include "redis_server.h"
#include "sql_query.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS     20000
#define DB_PATH     "celeriac.db"
#define RECORD_PATH "record.txt"
/* How late a delayed task may start (the bound). */
#define LATE_US (100 * 1000)

/* The transport under test: its URL, and a Redis server when it is one. */
struct env {
    const char *name;
    struct cel_test_redis srv;
    char url[160];
};

static struct env E;

static void env_up(const char *name)
{
    memset(&E, 0, sizeof E);
    E.name = name;
    if (strcmp(name, "redis") == 0) {
        cel_test_redis_setup(&E.srv);
        snprintf(E.url, sizeof E.url, "%s", E.srv.url);
    } else {
        snprintf(E.url, sizeof E.url, "sqlite:///%s/" DB_PATH, cel_test_dir());
    }
    char record[4200];
    snprintf(record, sizeof record, "%s/" RECORD_PATH, cel_test_dir());
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
}

static void env_down(void)
{
    if (E.srv.pid > 0)
        cel_test_redis_stop(&E.srv);
}

static int64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* A worker on E's broker with the test tasks, plus the example module
 * when `with_examples`, and `extra` arguments (NULL-terminated). */
static pid_t worker(const char *log, bool with_examples, const char *const *extra)
{
    const char *args[24];
    size_t n = 0;
    args[n++] = "-b";
    args[n++] = E.url;
    args[n++] = "-c";
    args[n++] = "1";
    args[n++] = "-Q";
    args[n++] = "celery,other";
    if (with_examples) {
        args[n++] = "-A";
        args[n++] = cel_test_env("CEL_TEST_TASKS");
    }
    for (; extra && *extra && n < 22; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    return cel_test_worker_start(log, args);
}

static cel_result *send(cel_client *c, const char *task, const cel_send_options *o)
{
    cel_result *r = NULL;
    if (cel_client_send(c, task, NULL, NULL, o, &r) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "send %s: %s", task, cel_client_errmsg(c));
    return r;
}

static void wait_ready(cel_result *r, pid_t pid, const char *log)
{
    if (cel_result_wait(r, WAIT_MS) != CEL_OK || !cel_state_is_ready(cel_result_state(r))) {
        cel_test_worker_postmortem(pid, log);
        cel_test_fail(__FILE__, __LINE__, "task %s not ready in time (%s)", cel_result_id(r),
                      cel_result_state_name(r));
    }
}

/* Asserts the walltime task of `r` started in [due, due + LATE_US]. */
static void assert_on_time(cel_result *r, int64_t due_us, const char *what)
{
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    long long started = atoll(cel_result_value_json(r));
    long long late = started - due_us;
    fprintf(stderr, "   %s (%s): started %.1f ms after its due time\n", what, E.name,
            late / 1000.0);
    ASSERT(late >= -1000); /* the worker's 1 ms slack */
    ASSERT(late <= LATE_US);
}

static void test_countdown_and_eta_on_time(void)
{
    pid_t pid = worker("w.log", false, NULL);
    cel_client *c = cel_test_client(E.url, NULL);

    int64_t t0 = wall_us();
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.countdown = 1.5);
    cel_result *r = send(c, "test.walltime", &o);
    /* The eta header is set inside the send: its due time is at least
     * t0 + 1.5 s and at most the send's return + 1.5 s. */
    int64_t t1 = wall_us();
    wait_ready(r, pid, "w.log");
    assert_on_time(r, t0 + 1500000, "countdown 1.5 s");
    ASSERT(atoll(cel_result_value_json(r)) >= t1 + 1500000 - (t1 - t0) - 1000);
    cel_result_free(r);

    /* --eta from the CLI, an ISO time with microseconds. */
    int64_t eta = wall_us() + 1500000;
    time_t secs = (time_t)(eta / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char iso[64], stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(iso, sizeof iso, "%s.%06lldZ", stamp, (long long)(eta % 1000000));
    char *out = NULL, *err = NULL;
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"call",
                    (char *)"test.walltime",
                    (char *)"-b",
                    E.url,
                    (char *)"--eta",
                    iso,
                    NULL};
    ASSERT_EQ(cel_test_run(argv, WAIT_MS, &out, &err), 0);
    out[strcspn(out, "\n")] = '\0';
    ASSERT_OK(cel_client_result(c, out, &r));
    wait_ready(r, pid, "w.log");
    assert_on_time(r, eta, "--eta ISO");
    cel_result_free(r);
    free(out);
    free(err);

    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
}

/* Runs `celeriac call test.record ARGS... --wait`; returns its exit code
 * and its stderr in *err. */
static int cli_call(char **err, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *out = NULL;
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"call",
                    (char *)"test.record",
                    (char *)"x",
                    (char *)"-b",
                    E.url,
                    (char *)"--wait",
                    (char *)a1,
                    (char *)a2,
                    (char *)a3,
                    (char *)a4,
                    NULL};
    int rc = cel_test_run(argv, WAIT_MS, &out, err);
    free(out);
    return rc;
}

static void test_expired_is_never_run(void)
{
    pid_t pid = worker("w.log", false, NULL);
    cel_client *c = cel_test_client(E.url, NULL);

    /* Already expired when the worker fetches it. */
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.expires_at = (double)wall_us() / 1e6 - 5);
    cel_result *r = NULL;
    ASSERT_OK(cel_client_send(c, "test.record", "[\"x\"]", NULL, &o, &r));
    wait_ready(r, pid, "w.log");
    ASSERT_STREQ(cel_result_state_name(r), "REVOKED");
    ASSERT_STREQ(cel_result_exc_type(r), "TaskRevokedError");
    cel_result_free(r);

    /* Expires (seconds, from the CLI) before its countdown runs out. */
    char *err = NULL;
    ASSERT_EQ(cli_call(&err, "--expires", "0.5", "--countdown", "1.5"), 1);
    ASSERT_CONTAINS(err, "TaskRevokedError");
    free(err);

    /* An ISO expiry in the past, from the CLI. */
    ASSERT_EQ(cli_call(&err, "--expires", "2001-01-01T00:00:00+02:00", "--priority", "1"), 1);
    ASSERT_CONTAINS(err, "TaskRevokedError");
    free(err);

    /* A future one round-trips and does not stop the run. (Not with
     * --time-limit yet: a limit that differs from the worker's makes the
     * child send a BEGIN frame, which the prefork parent of this base
     * does not read yet.) */
    ASSERT_EQ(cli_call(&err, "--expires", "60", "--max-retries", "2"), 0);
    free(err);

    char *none[] = {NULL};
    struct cel_test_runs runs = cel_test_count_runs(RECORD_PATH, none, 0);
    ASSERT_EQ(runs.lines, 1); /* only the last one ran */
    ASSERT(cel_test_count_in_file("w.log", "(expired)") >= 3);
    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
}

static size_t queue_length(struct cel_broker *b, const char *queue)
{
    size_t n = 0;
    ASSERT_OK(b->ops->length(b, queue, &n));
    return n;
}

/* On Redis the delayed tasks sit in celeriac.delayed once the worker has
 * parked them; poll for that rather than sleep. */
static void wait_parked(long long want)
{
    if (!E.srv.pid)
        return;
    redisContext *rc = cel_test_redis_connect(&E.srv);
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (cel_test_redis_int(rc, "ZCARD celeriac.delayed") < want && cel_test_now_ms() < deadline)
        cel_test_sleep_ms(20);
    ASSERT_EQ(cel_test_redis_int(rc, "ZCARD celeriac.delayed"), want);
    ASSERT_EQ(cel_test_redis_int(rc, "LLEN celery"), 0);
    redisFree(rc);
}

static void test_purge_and_length_count_delayed(void)
{
    pid_t pid = worker("w.log", false, NULL);
    cel_client *c = cel_test_client(E.url, NULL);
    for (int i = 0; i < 5; i++)
        cel_result_free(
            send(c, "test.record", &(cel_send_options)CEL_SEND_OPTIONS_INIT(.countdown = 3600)));
    for (int i = 0; i < 2; i++)
        cel_result_free(
            send(c, "test.record",
                 &(cel_send_options)CEL_SEND_OPTIONS_INIT(.queue = "other", .countdown = 3600)));
    wait_parked(7);

    struct cel_broker *b = NULL;
    struct cel_errbuf eb = {{0}};
    ASSERT_OK(cel__broker_open(E.url, NULL, &b, &eb));
    ASSERT_EQ(queue_length(b, "celery"), 5);
    ASSERT_EQ(queue_length(b, "other"), 2);

    char *out = NULL, *err = NULL;
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"purge",
                    (char *)"-f",
                    (char *)"-b",
                    E.url,
                    (char *)"-Q",
                    (char *)"celery",
                    NULL};
    ASSERT_EQ(cel_test_run(argv, WAIT_MS, &out, &err), 0);
    ASSERT_STREQ(out, "purged 5 messages from celery\n");
    ASSERT_EQ(queue_length(b, "celery"), 0);
    ASSERT_EQ(queue_length(b, "other"), 2); /* another queue's are left alone */
    size_t removed = 0;
    ASSERT_OK(cel_client_purge(c, "other", &removed));
    ASSERT_EQ(removed, 2);
    ASSERT_EQ(queue_length(b, "other"), 0);
    free(out);
    free(err);
    cel__broker_close(b);
    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
}

/* Dead letters of the transport under test. */
static long long dead_letters(void)
{
    if (!E.srv.pid)
        return cel_test_sql_int(DB_PATH, "SELECT count(*) FROM dead_letters");
    redisContext *rc = cel_test_redis_connect(&E.srv);
    long long n = cel_test_redis_int(rc, "LLEN celeriac.dead_letters");
    redisFree(rc);
    return n;
}

static void test_unregistered_runs_on_the_worker_that_has_it(void)
{
    /* Worker A lacks tasks.add and gets it first; B, which has it, starts
     * only after A has given it back. */
    const char *const a_extra[] = {"--set", "task_delivery_limit=20", NULL};
    pid_t a = worker("a.log", false, a_extra);
    cel_client *c = cel_test_client(E.url, NULL);
    cel_result *rs[3];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(cel_client_send(c, "tasks.add", "[2, 3]", NULL, NULL, &rs[i]));
    ASSERT(cel_test_wait_log("a.log", "unregistered task of type 'tasks.add'", WAIT_MS));
    pid_t b = worker("b.log", true, NULL);
    for (int i = 0; i < 3; i++) {
        wait_ready(rs[i], b, "b.log");
        ASSERT_STREQ(cel_result_state_name(rs[i]), "SUCCESS");
        ASSERT_STREQ(cel_result_value_json(rs[i]), "5");
        cel_result_free(rs[i]);
    }
    /* Once per name, whatever the number of messages and passes. */
    ASSERT_EQ(cel_test_count_in_file("a.log", "unregistered task of type 'tasks.add'"), 1);
    ASSERT_EQ(dead_letters(), 0);
    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(b, SIGTERM, WAIT_MS), 0);
    ASSERT_EQ(cel_test_worker_stop(a, SIGTERM, WAIT_MS), 0);
}

static void test_unregistered_dead_lettered_after_limit(void)
{
    const char *const extra[] = {"--set", "task_delivery_limit=3", NULL};
    pid_t pid = worker("w.log", false, extra);
    cel_client *c = cel_test_client(E.url, NULL);
    int64_t t0 = cel_test_now_ms();
    cel_result *r = send(c, "test.recrd", NULL);
    wait_ready(r, pid, "w.log");
    int64_t took = cel_test_now_ms() - t0;
    fprintf(stderr, "   unregistered (%s): NotRegistered after %lld ms\n", E.name, (long long)took);
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "NotRegistered");
    ASSERT(took >= 1800); /* three deliveries, 1 s apart */
    /* The failure is stored before the message is moved aside (results
     * first), so the dead letter may land a moment after the client saw
     * it. */
    for (int64_t end = cel_test_now_ms() + WAIT_MS; dead_letters() < 1 && cel_test_now_ms() < end;)
        cel_test_sleep_ms(20);
    ASSERT_EQ(dead_letters(), 1);
    ASSERT(cel_test_wait_log("w.log", "did you mean 'test.record'?", WAIT_MS));
    ASSERT_EQ(cel_test_count_in_file("w.log", "did you mean"), 1);
    cel_result_free(r);
    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
}

#define ON_BOTH(fn)                                                                                \
    do {                                                                                           \
        static const char *const transports[] = {"sqlite", "redis"};                               \
        for (int i_ = 0; i_ < 2; i_++) {                                                           \
            char name_[96];                                                                        \
            snprintf(name_, sizeof name_, "%s_%s", #fn, transports[i_]);                           \
            if (!cel_test_selected(name_))                                                         \
                continue;                                                                          \
            fprintf(stderr, "-- %s\n", name_);                                                     \
            cel_test_begin(name_);                                                                 \
            env_up(transports[i_]);                                                                \
            fn();                                                                                  \
            env_down();                                                                            \
            cel_test_end();                                                                        \
            fprintf(stderr, "ok %s\n", name_);                                                     \
        }                                                                                          \
    } while (0)

int main(void)
{
    ON_BOTH(test_countdown_and_eta_on_time);
    ON_BOTH(test_expired_is_never_run);
    ON_BOTH(test_purge_and_length_count_delayed);
    ON_BOTH(test_unregistered_runs_on_the_worker_that_has_it);
    ON_BOTH(test_unregistered_dead_lettered_after_limit);
    return 0;
}
