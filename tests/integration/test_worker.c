/*
 * test_worker.c - a real `celeriac worker` process driven through the C
 * client API on the default broker (./celeriac.db in the test directory).
 *
 * The worker runs the example module (examples/tasks.c). The queue and
 * dead-letter tables are read with sqlite3 directly, so the tests check
 * what is really stored, not what the client API says about it.
 */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <celeriac.h>

#include "testing.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"

/* Workers still running; killed (whole process group) at exit, so a
 * failed assertion never leaves one behind to hang ctest. */
static pid_t live[8];

static void kill_live_workers(void)
{
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
        if (live[i] > 0) {
            kill(-live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
    }
}

static void track(pid_t pid, bool add)
{
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
        if (add && live[i] == 0) {
            live[i] = pid;
            return;
        }
        if (!add && live[i] == pid) {
            live[i] = 0;
            return;
        }
    }
}

/* Starts `celeriac worker -A libtasks.so -l info` plus extra flags and
 * waits until it says it is ready. */
static pid_t start_worker(const char *pool, const char *concurrency)
{
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"worker",
                    (char *)"-A",
                    (char *)cel_test_env("CEL_TEST_TASKS"),
                    (char *)"-l",
                    (char *)"info",
                    (char *)"-P",
                    (char *)pool,
                    (char *)"-c",
                    (char *)concurrency,
                    NULL};
    int before = cel_test_count_in_file(LOG_PATH, "ready");
    pid_t pid = cel_test_spawn(argv, LOG_PATH);
    track(pid, true);
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (cel_test_count_in_file(LOG_PATH, "ready") <= before) {
        if (cel_test_now_ms() > deadline || waitpid(pid, NULL, WNOHANG) == pid) {
            char *log = cel_test_read_file(LOG_PATH, NULL);
            fprintf(stderr, "worker log:\n%s\n", log ? log : "(none)");
            free(log);
            ASSERT(!"worker did not become ready");
        }
        cel_test_sleep_ms(20);
    }
    return pid;
}

static bool alive(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == 0;
}

/* Sends a signal and waits for the exit; returns the exit status. */
static int stop_worker(pid_t pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    int rc = cel_test_wait(pid, timeout_ms);
    if (rc == -1) {
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    track(pid, false);
    return rc;
}

static cel_client *connect_client(void)
{
    cel_client *c = cel_client_new(NULL);
    ASSERT(c);
    if (cel_client_connect(c) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "connect: %s", cel_client_errmsg(c));
    return c;
}

static cel_result *send_task(cel_client *c, const char *name, const char *args)
{
    cel_result *r = NULL;
    int rc = cel_client_send(c, name, args, NULL, NULL, &r);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "send %s: %s", name, cel_client_errmsg(c));
    ASSERT(r);
    return r;
}

static void wait_ready(cel_client *c, cel_result *r)
{
    int rc = cel_result_wait(r, WAIT_MS);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "wait %s: %s (%s)", cel_result_id(r),
                      cel_client_errmsg(c), cel_err_name(rc));
}

/* One integer from a query against ./celeriac.db, read with sqlite3
 * itself rather than through celeriac. */
static long long db_count(const char *sql)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open_v2("celeriac.db", &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        cel_test_fail(__FILE__, __LINE__, "%s: %s", sql, sqlite3_errmsg(db));
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void db_exec(const char *sql)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open_v2("celeriac.db", &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        cel_test_fail(__FILE__, __LINE__, "%s: %s", sql, err ? err : "?");
    sqlite3_close(db);
}

static bool wait_count(const char *sql, long long want, int timeout_ms)
{
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    do {
        if (db_count(sql) == want)
            return true;
        cel_test_sleep_ms(50);
    } while (cel_test_now_ms() < deadline);
    return false;
}

/* A task still works end to end: the worker is alive and serving. */
static void assert_serving(cel_client *c, pid_t pid, int x, int y)
{
    ASSERT(alive(pid));
    char args[64], want[32];
    snprintf(args, sizeof args, "[%d, %d]", x, y);
    snprintf(want, sizeof want, "%d", x + y);
    cel_result *r = send_task(c, "tasks.add", args);
    wait_ready(c, r);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    ASSERT_STREQ(cel_result_value_json(r), want);
    cel_result_free(r);
}

static void test_200_adds(void)
{
    pid_t pid = start_worker("prefork", "2");
    cel_client *c = connect_client();
    enum { N = 200 };
    cel_result *rs[N];
    /* Half one by one, half as one batch (one transaction on sqlite). */
    for (int i = 0; i < N / 2; i++) {
        char args[64];
        snprintf(args, sizeof args, "[%d, %d]", i, 2 * i);
        rs[i] = send_task(c, "tasks.add", args);
    }
    ASSERT_OK(cel_client_begin(c));
    for (int i = N / 2; i < N; i++) {
        char args[64];
        snprintf(args, sizeof args, "[%d, %d]", i, 2 * i);
        rs[i] = send_task(c, "tasks.add", args);
    }
    ASSERT_OK(cel_client_flush(c));
    int64_t t0 = cel_test_now_ms();
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "%d", 3 * i);
        wait_ready(c, rs[i]);
        ASSERT_EQ(cel_result_state(rs[i]), CEL_STATE_SUCCESS);
        ASSERT_STREQ(cel_result_value_json(rs[i]), want);
        ASSERT(cel_result_exc_type(rs[i]) == NULL);
        ASSERT_CONTAINS(cel_result_meta_json(rs[i]), "\"status\": \"SUCCESS\"");
        cel_result_free(rs[i]);
    }
    fprintf(stderr, "   200 adds done %lld ms after the last send\n",
            (long long)(cel_test_now_ms() - t0));
    ASSERT_EQ(db_count("SELECT count(*) FROM messages"), 0);
    cel_client_free(c);
    ASSERT_EQ(stop_worker(pid, SIGTERM, WAIT_MS), 0);
}

static void test_crash_is_worker_lost(void)
{
    pid_t pid = start_worker("prefork", "2");
    cel_client *c = connect_client();
    cel_result *r = send_task(c, "tasks.crash", NULL);
    wait_ready(c, r);
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "WorkerLostError");
    ASSERT(cel_result_exc_message(r) && *cel_result_exc_message(r));
    cel_result_free(r);
    /* The parent survived and replaced the child. */
    assert_serving(c, pid, 20, 22);
    assert_serving(c, pid, 1, 2);
    cel_client_free(c);
    ASSERT_EQ(stop_worker(pid, SIGTERM, WAIT_MS), 0);
}

static void test_unknown_task_dead_letters(void)
{
    pid_t pid = start_worker("prefork", "2");
    cel_client *c = connect_client();
    cel_result *r = send_task(c, "tasks.does_not_exist", "[1]");
    ASSERT(cel_test_wait_log(LOG_PATH, "tasks.does_not_exist", WAIT_MS));
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM dead_letters WHERE task_id = '%s'",
             cel_result_id(r));
    ASSERT(wait_count(sql, 1, WAIT_MS));
    ASSERT_EQ(db_count("SELECT count(*) FROM messages"), 0);
    char *log = cel_test_read_file(LOG_PATH, NULL);
    ASSERT(log);
    for (char *p = log; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    ASSERT(strstr(log, "not registered") || strstr(log, "unregistered") || strstr(log, "unknown"));
    free(log);
    cel_result_free(r);
    assert_serving(c, pid, 2, 3);
    cel_client_free(c);
    ASSERT_EQ(stop_worker(pid, SIGTERM, WAIT_MS), 0);
}

static void test_malformed_messages_dead_letters(void)
{
    pid_t pid = start_worker("prefork", "2");
    cel_client *c = connect_client();
    /* Written behind celeriac's back, as a buggy or hostile producer would. */
    db_exec("INSERT INTO messages (queue, priority, task_id, body, visible_at, reserved,"
            " delivery_count, created_at) VALUES ('celery', 0, NULL, '{\"not\": \"celery\"}', 0,"
            " 0, 0, 0);"
            "INSERT INTO messages (queue, priority, task_id, body, visible_at, reserved,"
            " delivery_count, created_at) VALUES ('celery', 0, NULL, 'garbage', 0, 0, 0, 0);");
    /* Good headers, body that is not base64: only the child that would run
     * it reads the body, and it must still end in the dead-letter store and
     * fail the task for its client. */
    db_exec("INSERT INTO messages (queue, priority, task_id, body, visible_at, reserved,"
            " delivery_count, created_at) VALUES ('celery', 0, 'badbody-1', '{\"body\": \"!!\","
            " \"content-type\": \"application/json\", \"content-encoding\": \"utf-8\","
            " \"headers\": {\"task\": \"tasks.add\", \"id\": \"badbody-1\"},"
            " \"properties\": {\"body_encoding\": \"base64\", \"delivery_tag\": \"t\","
            " \"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"celery\"}}}',"
            " 0, 0, 0, 0);");
    ASSERT(wait_count("SELECT count(*) FROM dead_letters", 3, WAIT_MS));
    ASSERT_EQ(db_count("SELECT count(*) FROM dead_letters WHERE body = 'garbage'"), 1);
    ASSERT_EQ(db_count("SELECT count(*) FROM dead_letters WHERE task_id = 'badbody-1'"), 1);
    cel_result *bad;
    ASSERT_OK(cel_client_result(c, "badbody-1", &bad));
    ASSERT_OK(cel_result_wait(bad, WAIT_MS));
    ASSERT_EQ(cel_result_state(bad), CEL_STATE_FAILURE);
    ASSERT_STREQ(cel_result_exc_type(bad), "DecodeError");
    cel_result_free(bad);
    ASSERT(wait_count("SELECT count(*) FROM messages", 0, WAIT_MS));
    assert_serving(c, pid, 40, 2);
    cel_client_free(c);
    ASSERT_EQ(stop_worker(pid, SIGTERM, WAIT_MS), 0);
}

/* Number of `rs` whose state is `st` right now. */
static int count_state(cel_result **rs, int n, cel_state st)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        ASSERT_OK(cel_result_refresh(rs[i]));
        if (cel_result_state(rs[i]) == st)
            k++;
    }
    return k;
}

static bool wait_started(cel_result **rs, int n, int want)
{
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    do {
        if (count_state(rs, n, CEL_STATE_STARTED) >= want)
            return true;
        cel_test_sleep_ms(20);
    } while (cel_test_now_ms() < deadline);
    return false;
}

static long long queued(const char *task_id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM messages WHERE task_id = '%s' AND reserved = 0",
             task_id);
    return db_count(sql);
}

static void test_warm_shutdown_loses_nothing(void)
{
    pid_t pid = start_worker("prefork", "2");
    cel_client *c = connect_client();
    enum { N = 6 };
    cel_result *rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = send_task(c, "tasks.sleep", "[1]");
    ASSERT(wait_started(rs, N, 2));

    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(stop_worker(pid, SIGTERM, 15000), 0);
    int64_t took = cel_test_now_ms() - t0;
    fprintf(stderr, "   warm shutdown took %lld ms\n", (long long)took);
    ASSERT(took < 10000);

    int done = 0, waiting = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_OK(cel_result_refresh(rs[i]));
        if (cel_result_state(rs[i]) == CEL_STATE_SUCCESS) {
            ASSERT_STREQ(cel_result_value_json(rs[i]), "1");
            done++;
        } else {
            /* Not run: it must be back in the queue, ready for the next
             * worker, not stuck as reserved. */
            ASSERT_EQ(queued(cel_result_id(rs[i])), 1);
            waiting++;
        }
    }
    fprintf(stderr, "   %d finished, %d given back\n", done, waiting);
    ASSERT(done >= 2); /* the two running when TERM came */
    ASSERT_EQ(done + waiting, N);
    ASSERT_EQ(db_count("SELECT count(*) FROM messages WHERE reserved != 0"), 0);

    /* The next worker runs what was given back. */
    pid = start_worker("prefork", "2");
    for (int i = 0; i < N; i++) {
        wait_ready(c, rs[i]);
        ASSERT_STREQ(cel_result_state_name(rs[i]), "SUCCESS");
        cel_result_free(rs[i]);
    }
    cel_client_free(c);
    ASSERT_EQ(stop_worker(pid, SIGTERM, WAIT_MS), 0);
}

static void test_cold_shutdown_redelivers(void)
{
    pid_t pid = start_worker("prefork", "2");
    cel_client *c = connect_client();
    enum { N = 4 };
    cel_result *rs[N];
    for (int i = 0; i < N; i++)
        rs[i] = send_task(c, "tasks.sleep", "[3]");
    ASSERT(wait_started(rs, N, 2));

    int64_t t0 = cel_test_now_ms();
    int rc = stop_worker(pid, SIGQUIT, 15000);
    int64_t took = cel_test_now_ms() - t0;
    fprintf(stderr, "   cold shutdown: exit %d after %lld ms\n", rc, (long long)took);
    ASSERT(rc != -1);
    ASSERT(took < 3000); /* it did not wait for the 3 s tasks */
    ASSERT_EQ(count_state(rs, N, CEL_STATE_SUCCESS), 0);
    ASSERT_EQ(db_count("SELECT count(*) FROM messages"), N);

    /* Nothing was lost: the next worker completes every task. */
    pid = start_worker("prefork", "2");
    for (int i = 0; i < N; i++) {
        wait_ready(c, rs[i]);
        ASSERT_STREQ(cel_result_state_name(rs[i]), "SUCCESS");
        ASSERT_STREQ(cel_result_value_json(rs[i]), "3");
        cel_result_free(rs[i]);
    }
    ASSERT_EQ(db_count("SELECT count(*) FROM messages"), 0);
    cel_client_free(c);
    ASSERT_EQ(stop_worker(pid, SIGTERM, WAIT_MS), 0);
}

static void test_solo_pool(void)
{
    pid_t pid = start_worker("solo", "1");
    cel_client *c = connect_client();
    for (int i = 0; i < 20; i++)
        assert_serving(c, pid, i, 100);

    cel_result *r = send_task(c, "tasks.fail", "[\"solo boom\"]");
    wait_ready(c, r);
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "ValueError");
    ASSERT_STREQ(cel_result_exc_message(r), "solo boom");
    cel_result_free(r);

    r = send_task(c, "tasks.echo", "[\"h\\u00e9\", 1.5, null]");
    wait_ready(c, r);
    ASSERT_STREQ(cel_result_value_json(r), "[\"h\\u00e9\", 1.5, null]");
    cel_result_free(r);
    assert_serving(c, pid, 7, 8);
    cel_client_free(c);
    ASSERT_EQ(stop_worker(pid, SIGTERM, WAIT_MS), 0);
}

int main(void)
{
    atexit(kill_live_workers);
    TEST_RUN(test_200_adds);
    TEST_RUN(test_crash_is_worker_lost);
    TEST_RUN(test_unknown_task_dead_letters);
    TEST_RUN(test_malformed_messages_dead_letters);
    TEST_RUN(test_warm_shutdown_loses_nothing);
    TEST_RUN(test_cold_shutdown_redelivers);
    TEST_RUN(test_solo_pool);
    return 0;
}
