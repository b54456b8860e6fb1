/*
 * test_client_wait_cli.c - `celeriac call --wait` and `result --wait`
 * say when no worker takes the task, against ./celeriac.db (the default
 * store) with no worker, or with one that consumes another queue.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#define NOTICE                                                                                     \
    "is still queued on 'celery' after 3 s: no worker has taken it; is a worker consuming that "   \
    "queue?"
#define NEVER_TAKEN "it was never taken from queue 'celery'; no worker is consuming that queue"

/* Runs the CLI with `args` (NULL-terminated); returns its exit code. */
static int cli(const char *const *args, char **out, char **err)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)cel_test_env("CEL_TEST_CLI");
    for (; *args && n < 31; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    *out = *err = NULL;
    int rc = cel_test_run(argv, 60000, out, err);
    if (!*out)
        *out = strdup("");
    if (!*err)
        *err = strdup("");
    return rc;
}

static void test_no_worker_notice_then_timeout(void)
{
    const char *args[] = {"call", "tasks.add", "2", "3", "--wait", "--timeout", "4", NULL};
    char *out, *err;
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(cli(args, &out, &err), 3);
    int64_t took = cel_test_now_ms() - t0;
    fprintf(stderr, "   stderr after %lld ms:\n%s", (long long)took, err);
    ASSERT(took >= 3900 && took < 10000);
    ASSERT_STREQ(out, "");
    ASSERT_CONTAINS(err, "celeriac: task ");
    ASSERT_CONTAINS(err, NOTICE);
    ASSERT_EQ(strstr(strstr(err, NOTICE) + 1, NOTICE) == NULL, 1); /* said once */
    ASSERT_CONTAINS(err, "celeriac call: error: timed out after 4 s waiting for task ");
    ASSERT_CONTAINS(err, NEVER_TAKEN);
    free(out);
    free(err);
}

/* Shorter than the notice delay: no notice, but the timeout says why. */
static void test_short_timeout_and_result_wait(void)
{
    const char *send[] = {"call", "tasks.add", "2", "3", NULL};
    char *out, *err;
    ASSERT_EQ(cli(send, &out, &err), 0);
    char id[64];
    ASSERT_EQ(sscanf(out, "%63s", id), 1);
    free(out);
    free(err);

    const char *wait[] = {"result", id, "--wait", "--timeout", "0.5", NULL};
    ASSERT_EQ(cli(wait, &out, &err), 3);
    ASSERT(strstr(err, "still queued") == NULL);
    ASSERT_CONTAINS(err, "celeriac result: error: timed out after 0.5 s waiting for task ");
    ASSERT_CONTAINS(err, id);
    ASSERT_CONTAINS(err, NEVER_TAKEN);
    free(out);
    free(err);
}

/* A countdown that has not run out is not a missing worker. */
static void test_countdown_is_quiet(void)
{
    const char *args[] = {"call", "tasks.add", "2",         "3",   "--countdown",
                          "60",   "--wait",    "--timeout", "3.5", NULL};
    char *out, *err;
    ASSERT_EQ(cli(args, &out, &err), 3);
    ASSERT(strstr(err, "still queued") == NULL);
    ASSERT(strstr(err, "never taken") == NULL);
    ASSERT_CONTAINS(err, "(state PENDING)");
    free(out);
    free(err);
}

static pid_t worker;

/* Runs at exit, so a failed assertion leaves no worker behind. */
static void kill_worker(void)
{
    if (worker > 0) {
        kill(-worker, SIGKILL);
        kill(worker, SIGKILL);
        waitpid(worker, NULL, 0);
        worker = 0;
    }
}

/* The real-life case: a worker runs, but on another queue. */
static void test_worker_on_another_queue(void)
{
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"worker",
                    (char *)"-A",
                    (char *)cel_test_env("CEL_TEST_TASKS"),
                    (char *)"-Q",
                    (char *)"other",
                    (char *)"-c",
                    (char *)"1",
                    (char *)"-l",
                    (char *)"info",
                    NULL};
    worker = cel_test_spawn(argv, "worker.log");
    atexit(kill_worker);
    ASSERT(cel_test_wait_log("worker.log", "ready", 30000));

    const char *lost[] = {"call", "tasks.add", "2", "3", "--wait", "--timeout", "4", NULL};
    char *out, *err;
    ASSERT_EQ(cli(lost, &out, &err), 3);
    ASSERT_CONTAINS(err, NOTICE);
    ASSERT_CONTAINS(err, NEVER_TAKEN);
    free(out);
    free(err);

    /* Sent where the worker listens, the task runs and nothing is said. */
    const char *found[] = {"call", "-q", "other", "tasks.add", "2", "3", "--wait", NULL};
    ASSERT_EQ(cli(found, &out, &err), 0);
    ASSERT_STREQ(out, "5\n");
    ASSERT(strstr(err, "still queued") == NULL);
    free(out);
    free(err);

    kill(worker, SIGTERM);
    ASSERT_EQ(cel_test_wait(worker, 30000), 0);
    worker = 0;
}

int main(void)
{
    TEST_RUN(test_no_worker_notice_then_timeout);
    TEST_RUN(test_short_timeout_and_result_wait);
    TEST_RUN(test_countdown_is_quiet);
    TEST_RUN(test_worker_on_another_queue);
    return 0;
}
