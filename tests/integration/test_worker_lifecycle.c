/*
 * test_worker_lifecycle.c - the worker process's lifecycle, with real
 * `celeriac worker` processes on SQLite (and Redis for the restart):
 *  - SIGUSR1 while a task runs: the worker keeps running, the log names
 *    the task and holds native frames of the parent and of the child,
 *    and the task still succeeds, once;
 *  - SIGHUP while a task runs: the task completes once, the worker comes
 *    back in the same process (same pid, same pid file) and runs a new
 *    task (on SQLite and on Redis); on a terminal it only shuts down, as
 *    Celery's does;
 *  - --pidfile: a second worker on a live pid file refuses to start, a
 *    stale file is replaced, the file is removed at exit;
 *  - --detach: the command returns 0 once the daemon wrote its pid file,
 *    the daemon runs tasks and logs to --logfile, a SIGHUP restart opens
 *    a rotated log file anew and stays detached; a daemon that cannot
 *    start makes the command fail with the reason;
 *  - --soft-shutdown-timeout: on SIGQUIT a short task finishes and is
 *    stored; a long one is killed at the timeout and its message goes
 *    back to the queue.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <celeriac.h>

#include "record_file.h"
#include "redis_server.h"
#include "sql_query.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"
#define PIDFILE  "worker.pid"

static char record[4200];

static void use_record_file(const char *tag)
{
    snprintf(record, sizeof record, "%s/record-%s.txt", cel_test_dir(), tag);
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
}

#define send_as cel_test_send_as

static cel_state wait_state(cel_client *c, const char *id)
{
    return cel_test_wait_state(c, id, WAIT_MS, NULL, 0);
}

static size_t runs_of(const char *id)
{
    char *ids[] = {(char *)id};
    return cel_test_count_runs(record, ids, 1).max_runs;
}

/* Waits until the task `id` has started (test.sleep records first). */
static void wait_running(const char *id)
{
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (runs_of(id) == 0) {
        if (cel_test_now_ms() > deadline)
            cel_test_fail(__FILE__, __LINE__, "task %s never started", id);
        cel_test_sleep_ms(10);
    }
}

/* `celeriac worker -A testtasks` plus args, run to its exit. */
static int run_worker_cmd(const char *const args[], char **err)
{
    const char *argv[32] = {cel_test_env("CEL_TEST_CLI"), "worker", "-A",
                            cel_test_env("CEL_TEST_TESTTASKS")};
    int n = 4;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *out = NULL;
    int rc = cel_test_run((char *const *)argv, WAIT_MS, &out, err);
    free(out);
    return rc;
}

static long pidfile_pid(const char *path)
{
    char *text = cel_test_read_file(path, NULL);
    long pid = text ? strtol(text, NULL, 10) : 0;
    free(text);
    return pid;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void wait_log(const char *needle)
{
    if (!cel_test_wait_log(LOG_PATH, needle, WAIT_MS)) {
        cel_test_print_tail("worker log", LOG_PATH, 40);
        cel_test_fail(__FILE__, __LINE__, "the log never said \"%s\"", needle);
    }
}

static void test_usr1_dumps_and_keeps_running(void)
{
    use_record_file("usr1");
    cel_client *c = cel_test_client(NULL, NULL);
    const char *const extra[] = {"-c", "2", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    send_as(c, "test.sleep", "[1.5]", "usr1-task");
    wait_running("usr1-task");
    ASSERT_OK(kill(pid, SIGUSR1));
    wait_log("native backtrace of ForkPoolWorker-");
    wait_log("native backtrace of MainProcess");
    ASSERT(cel_test_count_in_file(LOG_PATH, "running: test.sleep[usr1-task] in pid") == 1);
    /* Frames of the task module (the child sleeps in its task) and of
     * the worker itself. */
    ASSERT(cel_test_count_in_file(LOG_PATH, "libtesttasks") > 0 ||
           cel_test_count_in_file(LOG_PATH, "test_tasks") > 0);
    ASSERT(cel_test_count_in_file(LOG_PATH, ", in cel_worker_run+") >= 2);
    ASSERT(cel_test_alive(pid));
    ASSERT_EQ(wait_state(c, "usr1-task"), CEL_STATE_SUCCESS);
    ASSERT_EQ(runs_of("usr1-task"), 1);
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, "WorkerLostError"), 0);
    /* Still serving. */
    send_as(c, "test.record", "[\"x\"]", "after-usr1");
    ASSERT_EQ(wait_state(c, "after-usr1"), CEL_STATE_SUCCESS);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    cel_client_free(c);
}

/* url NULL: SQLite; else Redis, whose worker has threads of its own
 * (consumer, revokes) for the exec to leave behind. */
static void hup_restart(const char *url, const char *tag)
{
    use_record_file(tag);
    cel_client *c = cel_test_client(url, NULL);
    const char *const sqlite_extra[] = {"-c", "2", "--pidfile", PIDFILE, NULL};
    const char *const redis_extra[] = {"-c", "2", "--pidfile", PIDFILE, "-b", url, NULL};
    const char *const *extra = url ? redis_extra : sqlite_extra;
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    ASSERT_EQ(pidfile_pid(PIDFILE), (long)pid);
    int readies = cel_test_count_in_file(LOG_PATH, "ready.");
    send_as(c, "test.sleep", "[1.5]", "hup-task");
    wait_running("hup-task");
    ASSERT_OK(kill(pid, SIGHUP));
    ASSERT_EQ(wait_state(c, "hup-task"), CEL_STATE_SUCCESS);
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (cel_test_count_in_file(LOG_PATH, "ready.") <= readies) {
        if (!cel_test_alive(pid) || cel_test_now_ms() > deadline) {
            cel_test_worker_postmortem(pid, LOG_PATH);
            cel_test_fail(__FILE__, __LINE__, "the worker did not come back after SIGHUP");
        }
        cel_test_sleep_ms(20);
    }
    ASSERT(cel_test_count_in_file(LOG_PATH, "Restarting (SIGHUP)") == 1);
    ASSERT(cel_test_alive(pid));                /* the same process */
    ASSERT_EQ(pidfile_pid(PIDFILE), (long)pid); /* and its pid file */
    send_as(c, "test.record", "[\"x\"]", "after-hup");
    ASSERT_EQ(wait_state(c, "after-hup"), CEL_STATE_SUCCESS);
    ASSERT_EQ(runs_of("hup-task"), 1);
    ASSERT_EQ(runs_of("after-hup"), 1);
    if (!url)
        ASSERT_EQ(cel_test_sql_int("celeriac.db", "SELECT count(*) FROM messages"), 0);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    ASSERT(!exists(PIDFILE)); /* removed at exit */
    cel_client_free(c);
}

static void test_hup_restarts_in_place(void)
{
    hup_restart(NULL, "hup");
}

static void test_hup_restarts_in_place_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    hup_restart(srv.url, "hup-redis");
    cel_test_redis_stop(&srv);
}

/* On a terminal a SIGHUP is the terminal closing: as Celery, the worker
 * shuts down warm and does not come back. script(1) gives it a pty. */
static void test_hup_on_a_terminal_stops(void)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec '%s' worker -A '%s' -l info -c 1 --pidfile tty.pid",
             cel_test_env("CEL_TEST_CLI"), cel_test_env("CEL_TEST_TESTTASKS"));
    char *const argv[] = {(char *)"/usr/bin/script", (char *)"-qfc", cmd, (char *)"tty.log", NULL};
    pid_t script = cel_test_spawn(argv, "script.log");
    if (!cel_test_wait_log("tty.log", "ready.", WAIT_MS)) {
        cel_test_print_tail("terminal", "tty.log", 30);
        cel_test_fail(__FILE__, __LINE__, "the worker on a terminal never got ready");
    }
    long pid = pidfile_pid("tty.pid");
    ASSERT(pid > 0);
    ASSERT_OK(kill((pid_t)pid, SIGHUP));
    ASSERT_EQ(cel_test_wait(script, WAIT_MS), 0); /* the worker, and with it script, ended */
    ASSERT(cel_test_count_in_file("tty.log", "SIGHUP on a terminal: not restarting") == 1);
    ASSERT_EQ(cel_test_count_in_file("tty.log", "ready."), 1);
    ASSERT(!exists("tty.pid"));
}

static void test_pidfile_guards_one_worker(void)
{
    const char *const extra[] = {"-c", "1", "--pidfile", PIDFILE, NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    ASSERT_EQ(pidfile_pid(PIDFILE), (long)pid);

    /* A second worker on the same pid file refuses to start. */
    const char *const second[] = {"--pidfile", PIDFILE, "--logfile", "second.log", NULL};
    char *err = NULL;
    ASSERT_EQ(run_worker_cmd(second, &err), 2);
    ASSERT_CONTAINS(err, "which is running");
    free(err);
    ASSERT_EQ(pidfile_pid(PIDFILE), (long)pid); /* left alone */
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    ASSERT(!exists(PIDFILE));

    /* A stale file (its process is gone) is replaced. */
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    FILE *f = fopen(PIDFILE, "w");
    ASSERT(f);
    fprintf(f, "%ld\n", (long)gone);
    fclose(f);
    pid = cel_test_worker_start(LOG_PATH, extra);
    ASSERT_EQ(pidfile_pid(PIDFILE), (long)pid);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    ASSERT(!exists(PIDFILE));
}

/* The detached worker is not our child: wait for it by its pid. */
static bool wait_gone(long pid, int timeout_ms)
{
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    while (kill((pid_t)pid, 0) == 0) {
        if (cel_test_now_ms() > deadline)
            return false;
        cel_test_sleep_ms(20);
    }
    return true;
}

/* A detached worker is nobody's child: a failed assertion must not leave
 * it running. */
static long detached_pid;

static void kill_detached(void)
{
    if (detached_pid > 0)
        kill((pid_t)detached_pid, SIGKILL);
}

static void test_detach(void)
{
    use_record_file("detach");
    cel_client *c = cel_test_client(NULL, NULL);
    const char *const args[] = {"-l",     "info",        "-c",       "1",
                                "-n",     "detached@%h", "--detach", "--pidfile",
                                "%n.pid", "--logfile",   "%n.log",   NULL};
    char *err = NULL;
    ASSERT_EQ(run_worker_cmd(args, &err), 0);
    free(err);
    /* The command returned after the pid file was written. */
    long pid = pidfile_pid("detached.pid");
    ASSERT(pid > 0);
    detached_pid = pid;
    atexit(kill_detached);
    ASSERT(kill((pid_t)pid, 0) == 0);
    ASSERT(pid != (long)getpid());
    ASSERT(getsid((pid_t)pid) != getsid(0)); /* a session of its own: no terminal */
    send_as(c, "test.record", "[\"x\"]", "detached-task");
    ASSERT_EQ(wait_state(c, "detached-task"), CEL_STATE_SUCCESS);
    ASSERT(cel_test_count_in_file("detached.log", "ready.") == 1);
    ASSERT(cel_test_count_in_file("detached.log", "detached-task") > 0);

    /* Log rotation: move the file away, SIGHUP; the restarted worker
     * (still detached: same pid, same pid file) opens a new one. */
    ASSERT_OK(rename("detached.log", "detached.log.1"));
    ASSERT_OK(kill((pid_t)pid, SIGHUP));
    if (!cel_test_wait_log("detached.log", "ready.", WAIT_MS)) {
        cel_test_print_tail("rotated log", "detached.log.1", 20);
        cel_test_fail(__FILE__, __LINE__, "no new log file after SIGHUP");
    }
    ASSERT(cel_test_count_in_file("detached.log.1", "Restarting (SIGHUP)") == 1);
    ASSERT_EQ(pidfile_pid("detached.pid"), pid);
    ASSERT(kill((pid_t)pid, 0) == 0);
    cel_test_send_as(c, "test.record", "[\"x\"]", "after-rotation");
    ASSERT_EQ(wait_state(c, "after-rotation"), CEL_STATE_SUCCESS);
    ASSERT(cel_test_count_in_file("detached.log", "after-rotation") > 0);

    /* A second one on the same pid file: the command fails, and says why. */
    err = NULL;
    ASSERT_EQ(run_worker_cmd(args, &err), 1);
    ASSERT_CONTAINS(err, "which is running");
    free(err);

    ASSERT_OK(kill((pid_t)pid, SIGTERM));
    if (!wait_gone(pid, WAIT_MS)) {
        kill((pid_t)pid, SIGKILL);
        cel_test_fail(__FILE__, __LINE__, "the detached worker ignored SIGTERM");
    }
    detached_pid = 0;
    ASSERT(!exists("detached.pid"));
    cel_client_free(c);
}

static void test_soft_shutdown(void)
{
    use_record_file("soft");
    cel_client *c = cel_test_client(NULL, NULL);

    /* A task shorter than the timeout finishes and is stored. */
    const char *const patient[] = {"-c", "1", "--soft-shutdown-timeout", "20", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, patient);
    send_as(c, "test.sleep", "[1]", "soft-short");
    wait_running("soft-short");
    ASSERT_OK(kill(pid, SIGQUIT));
    ASSERT_EQ(cel_test_worker_stop(pid, 0, WAIT_MS), 0);
    ASSERT_EQ(wait_state(c, "soft-short"), CEL_STATE_SUCCESS);
    ASSERT_EQ(runs_of("soft-short"), 1);

    /* A task longer than the timeout is killed at it and requeued. */
    const char *const brief[] = {"-c", "1", "--soft-shutdown-timeout", "1", NULL};
    pid = cel_test_worker_start(LOG_PATH, brief);
    send_as(c, "test.sleep", "[60]", "soft-long");
    wait_running("soft-long");
    int64_t t0 = cel_test_now_ms();
    ASSERT_OK(kill(pid, SIGQUIT));
    ASSERT_EQ(cel_test_worker_stop(pid, 0, WAIT_MS), 0);
    int64_t took = cel_test_now_ms() - t0;
    ASSERT(took >= 900);  /* the task had its second */
    ASSERT(took < 15000); /* not the 60 s it would take */
    wait_log("soft shutdown timeout (1.0 s) reached");
    ASSERT_EQ(runs_of("soft-long"), 1);
    /* Back in the queue, not failed. */
    ASSERT_EQ(cel_test_sql_int("celeriac.db", "SELECT count(*) FROM messages"), 1);
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, "soft-long] succeeded"), 0);
    cel_result *r;
    ASSERT_OK(cel_client_result(c, "soft-long", &r));
    ASSERT(cel_result_state(r) != CEL_STATE_FAILURE);
    cel_result_free(r);

    /* A second QUIT cuts the wait short. */
    pid = cel_test_worker_start(LOG_PATH, patient);
    wait_log("soft-long] received");
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (runs_of("soft-long") < 2 && cel_test_now_ms() < deadline)
        cel_test_sleep_ms(10);
    ASSERT_EQ(runs_of("soft-long"), 2);
    int softs = cel_test_count_in_file(LOG_PATH, "soft shutdown first");
    t0 = cel_test_now_ms();
    ASSERT_OK(kill(pid, SIGQUIT));
    /* Once the first one is seen: two pending QUITs would be one. */
    deadline = cel_test_now_ms() + WAIT_MS;
    while (cel_test_count_in_file(LOG_PATH, "soft shutdown first") == softs &&
           cel_test_now_ms() < deadline)
        cel_test_sleep_ms(10);
    ASSERT_OK(kill(pid, SIGQUIT));
    ASSERT_EQ(cel_test_worker_stop(pid, 0, WAIT_MS), 0);
    ASSERT(cel_test_now_ms() - t0 < 15000); /* not the 20 s timeout */
    ASSERT_EQ(cel_test_sql_int("celeriac.db", "SELECT count(*) FROM messages"), 1);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_usr1_dumps_and_keeps_running);
    TEST_RUN(test_hup_restarts_in_place);
    TEST_RUN(test_hup_restarts_in_place_redis);
    TEST_RUN(test_hup_on_a_terminal_stops);
    TEST_RUN(test_pidfile_guards_one_worker);
    TEST_RUN(test_detach);
    TEST_RUN(test_soft_shutdown);
    return 0;
}
