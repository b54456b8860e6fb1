/*
 * test_worker_crash.c - issue 7: a prefork child that dies of a fatal
 * signal under a task leaves the signal and its native backtrace as the
 * stored traceback of the task's WorkerLostError (src/worker/crash.c),
 * which a client and `celeriac result ID --traceback` show.
 *
 * Real worker processes on SQLite, running tests/support/test_tasks.c:
 * test.crash abort()s, test.segv reads through a NULL pointer from a
 * function the module exports, test.crash_requeue aborts until it is
 * dead-lettered.
 *
 * Sanitizer builds: the child's handlers replace ASan's for these
 * signals (ASan lets a program install its own SEGV handler by default),
 * so the same report arrives and every assertion holds there too
 * (build-asan runs this test unchanged).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <celeriac.h>

#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define LOG_PATH "worker.log"
#define BROKER   "sqlite:///celeriac.db"
#define WAIT_MS  30000

/* A worker, and the result of one crashing task it ran. */
struct crash {
    pid_t w;
    cel_client *c;
    cel_result *r;
    const char *tb; /* its stored traceback */
};

static cel_result *run_task(cel_client *c, const char *task, pid_t worker)
{
    cel_result *r = NULL;
    if (cel_client_send(c, task, NULL, NULL, NULL, &r) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "send %s: %s", task, cel_client_errmsg(c));
    if (cel_result_wait(r, WAIT_MS) != CEL_OK || !cel_state_is_ready(cel_result_state(r))) {
        cel_test_worker_postmortem(worker, LOG_PATH);
        cel_test_fail(__FILE__, __LINE__, "%s not ready in %d s (state %s)", task, WAIT_MS / 1000,
                      cel_result_state_name(r));
    }
    return r;
}

/* Starts a worker, runs `task` and checks what every crash report
 * holds: the signal by name, Python's traceback shape naming the task,
 * native frames, and the WorkerLostError line last. */
static struct crash crash_task(const char *task, int signo, const char *signame)
{
    /* The tasks crash on purpose: no core file for each. */
    struct rlimit no_core = {0, 0};
    ASSERT_OK(setrlimit(RLIMIT_CORE, &no_core));
    const char *const args[] = {"-b", BROKER, "-c", "2", NULL};
    struct crash k = {.w = cel_test_worker_start(LOG_PATH, args)};
    k.c = cel_test_client(BROKER, NULL);
    cel_result *r = k.r = run_task(k.c, task, k.w);
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "WorkerLostError");
    char sig[32];
    snprintf(sig, sizeof sig, "signal %d", signo);
    ASSERT_CONTAINS(cel_result_exc_message(r), sig);
    const char *tb = cel_result_traceback(r);
    if (!tb)
        cel_test_fail(__FILE__, __LINE__, "no traceback stored: %s", cel_result_meta_json(r));
    printf("--- stored traceback of %s ---\n%s---\n", task, tb);
    char head[64];
    snprintf(head, sizeof head, "Fatal signal %d (%s: ", signo, signame);
    ASSERT(strncmp(tb, head, strlen(head)) == 0);
    ASSERT_CONTAINS(tb, "\nTraceback (most recent call last):\n");
    char in_task[96];
    snprintf(in_task, sizeof in_task, "  File \"<celeriac>\", in %s\n", task);
    ASSERT_CONTAINS(tb, in_task);
    /* The last line is the exception, as Python prints it. */
    char last[300];
    snprintf(last, sizeof last, "\nWorkerLostError: %s\n", cel_result_exc_message(r));
    size_t tl = strlen(tb), ll = strlen(last);
    ASSERT(tl > ll && strcmp(tb + tl - ll, last) == 0);
    ASSERT(cel_test_count(tb, "\n  File \"") >= 2); /* the task's line, and native ones */
    k.tb = tb;
    return k;
}

static void crash_done(struct crash *k)
{
    cel_result_free(k->r);
    ASSERT_EQ(cel_test_worker_stop(k->w, SIGTERM, WAIT_MS), 0);
    cel_client_free(k->c);
}

/* test.crash abort()s: SIGABRT, with the test module's frame outside the
 * C library's abort (most recent call last). */
static void test_abort_report(void)
{
    struct crash k = crash_task("test.crash", SIGABRT, "SIGABRT");
    const char *tb = k.tb;
    const char *module = strstr(tb, "libtesttasks.so\", offset 0x");
    const char *in_abort = strstr(tb, ", in abort+0x");
    ASSERT(module && in_abort);
    ASSERT(module < in_abort);

    /* The CLI prints it after the state and the exception line. */
    char result[] = "result", traceback[] = "--traceback", b[] = "-b", broker[] = BROKER;
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    result,
                    (char *)cel_result_id(k.r),
                    traceback,
                    b,
                    broker,
                    NULL};
    char *out = NULL, *err = NULL;
    int rc = cel_test_run(argv, WAIT_MS, &out, &err);
    ASSERT(out);
    ASSERT(rc != 0); /* a failed task's exit code */
    ASSERT(strncmp(out, "FAILURE\nWorkerLostError: ", 25) == 0);
    ASSERT_CONTAINS(out, tb);
    free(out);
    free(err);

    /* The worker replaced the child and serves on. */
    char **ok = cel_test_send_many(k.c, "test.echo_len", "[\"fine\"]", 4);
    struct cel_test_tally t = cel_test_wait_all(k.c, ok, 4, "4", WAIT_MS, WAIT_MS);
    ASSERT_EQ(t.success, 4u);
    cel_test_ids_free(ok, 4);
    crash_done(&k);
}

/* test.segv faults in a function the module exports: SIGSEGV, and the
 * innermost native frame names that function. */
static void test_segv_report(void)
{
    struct crash k = crash_task("test.segv", SIGSEGV, "SIGSEGV");
    const char *fn = strstr(k.tb, "libtesttasks.so\", offset 0x");
    ASSERT(fn);
    ASSERT(strncmp(strstr(fn, ", in "), ", in cel_test_segv_task+0x", 26) == 0);
    /* It is the frame where it crashed: the last before the exception
     * (the handler's own frames are left out). */
    ASSERT(strstr(fn, "\nWorkerLostError: ") == strchr(fn, '\n'));
    crash_done(&k);
}

/* The other path that stores WorkerLostError: test.crash_requeue goes
 * back to its queue each time its child dies, until task_poison_limit
 * (3) dead-letters it. The report of the last death is stored. */
static void test_dead_letter_report(void)
{
    struct crash k = crash_task("test.crash_requeue", SIGABRT, "SIGABRT");
    ASSERT_CONTAINS(k.tb, "libtesttasks.so\", offset 0x");
    ASSERT(cel_test_wait_log(LOG_PATH, "task_poison_limit is 3", WAIT_MS));
    crash_done(&k);
}

int main(void)
{
    TEST_RUN(test_abort_report);
    TEST_RUN(test_segv_report);
    TEST_RUN(test_dead_letter_report);
    return 0;
}
