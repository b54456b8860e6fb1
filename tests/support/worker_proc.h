/*
 * worker_proc.h - a real `celeriac worker` process for the fault tests.
 *
 * The worker runs the test-only task module (tests/support/test_tasks.c,
 * $CEL_TEST_TESTTASKS) at log level info, with stdout and stderr appended
 * to a log file in the test directory. A worker that outlives a failed
 * assertion is killed at exit (cel_test_spawn tracks it).
 */
#ifndef CEL_TEST_WORKER_PROC_H
#define CEL_TEST_WORKER_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* `celeriac worker -A $CEL_TEST_TESTTASKS -l info` plus `extra` (a
 * NULL-terminated list of arguments), not waiting for anything. */
pid_t cel_test_worker_spawn(const char *log_path, const char *const extra[]);
/* The same, then waits until it logs "ready."; fails the test with the
 * end of the log when it exits or does not get there in time. */
pid_t cel_test_worker_start(const char *log_path, const char *const extra[]);
/* Sends `sig` and waits up to timeout_ms. Returns the exit status (128+N
 * for a signal), or -1 when it was still running: it was then told
 * SIGKILL (its whole process group) and reaped. */
int cel_test_worker_stop(pid_t pid, int sig, int timeout_ms);
/* For a worker that failed an expectation: prints the end of its log,
 * then asks it to stop with SIGTERM and says whether it obeyed within
 * 5 s; one that did not is killed. Leaves nothing running. */
void cel_test_worker_postmortem(pid_t pid, const char *log_path);
/* True while pid has not exited (it is not reaped). */
bool cel_test_alive(pid_t pid);
/* How many children pid's main thread has now (from /proc: a worker's
 * pool, counted without asking the worker); -1 when pid is gone. */
int cel_test_child_count(pid_t pid);

#endif
