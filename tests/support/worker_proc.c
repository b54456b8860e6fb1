/* worker_proc.c - see worker_proc.h. */
#include "worker_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testing.h"

#define READY_MS  30000
#define MAX_EXTRA 32

pid_t cel_test_worker_spawn(const char *log_path, const char *const extra[])
{
    char *argv[8 + MAX_EXTRA];
    int n = 0;
    argv[n++] = (char *)cel_test_env("CEL_TEST_CLI");
    argv[n++] = (char *)"worker";
    argv[n++] = (char *)"-A";
    argv[n++] = (char *)cel_test_env("CEL_TEST_TESTTASKS");
    argv[n++] = (char *)"-l";
    argv[n++] = (char *)"info";
    for (int i = 0; extra && extra[i]; i++) {
        if (i == MAX_EXTRA)
            cel_test_fail(__FILE__, __LINE__, "more than %d worker arguments", MAX_EXTRA);
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    return cel_test_spawn(argv, log_path);
}

pid_t cel_test_worker_start(const char *log_path, const char *const extra[])
{
    int before = cel_test_count_in_file(log_path, "ready.");
    pid_t pid = cel_test_worker_spawn(log_path, extra);
    int64_t deadline = cel_test_now_ms() + READY_MS;
    while (cel_test_count_in_file(log_path, "ready.") <= before) {
        bool gone = !cel_test_alive(pid);
        if (gone || cel_test_now_ms() > deadline) {
            int rc = gone ? cel_test_wait(pid, 0) : cel_test_kill(pid);
            cel_test_print_tail("worker log", log_path, 30);
            cel_test_fail(__FILE__, __LINE__, "worker %s before it was ready (exit status %d)",
                          gone ? "exited" : "hung", rc);
        }
        cel_test_sleep_ms(20);
    }
    return pid;
}

int cel_test_worker_stop(pid_t pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    int rc = cel_test_wait(pid, timeout_ms);
    if (rc == -1)
        cel_test_kill(pid);
    return rc;
}

void cel_test_worker_postmortem(pid_t pid, const char *log_path)
{
    cel_test_print_matching("worker errors", log_path, ": ERROR/", 10);
    cel_test_print_tail("worker log", log_path, 15);
    if (pid <= 0) {
        fprintf(stderr, "   the worker is not running\n");
        return;
    }
    if (!cel_test_alive(pid)) {
        fprintf(stderr, "   the worker had already exited (status %d)\n", cel_test_wait(pid, 0));
        return;
    }
    int rc = cel_test_worker_stop(pid, SIGTERM, 5000);
    if (rc == -1)
        fprintf(stderr, "   the worker ignored SIGTERM for 5 s: killed with SIGKILL\n");
    else
        fprintf(stderr, "   the worker obeyed SIGTERM (exit status %d)\n", rc);
}

bool cel_test_alive(pid_t pid)
{
    /* WNOWAIT: look without reaping, so cel_test_wait still gets the status. */
    siginfo_t si = {0};
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

int cel_test_child_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    char *text = cel_test_read_file(path, NULL);
    if (!text)
        return -1;
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(text, " \n", &save); p; p = strtok_r(NULL, " \n", &save))
        n++;
    free(text);
    return n;
}
