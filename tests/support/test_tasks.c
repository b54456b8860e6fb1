/*
 * test_tasks.c - a task module for the fault tests only (built as
 * libtesttasks.so; tests find it through CEL_TEST_TESTTASKS).
 *
 *   test.record(s)   appends "<task id> <pid>\n" to $CEL_TEST_RECORD_FILE,
 *                    returns len(s): a test counts the lines of that file
 *                    to know how many times each task really ran
 *   test.echo_len(s) returns len(s), for payload sizes up to megabytes
 *   test.echo(s)     returns s itself: the payload travels both ways
 *   test.crash()     records like test.record when the variable is set
 *                    (so a test counts deliveries), then abort()s
 *   test.walltime()  returns the wall clock when it started, in µs since
 *                    the epoch: a test compares it with a countdown's due
 *                    time
 *
 * The record file lives outside whatever the test breaks (a full disk, a
 * stopped store), and each line is one write() with O_APPEND, so lines
 * from concurrent children never interleave.
 *
 * Only the public API in <celeriac/task.h> is used; cel_task_def is built
 * in one place (add_task) so a change to its layout touches one function.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <celeriac/error.h>
#include <celeriac/task.h>

/* Appends this run to the record file; CEL_OK, or a failure set on t. */
static int record_run(cel_task *t)
{
    const char *path = getenv("CEL_TEST_RECORD_FILE");
    if (!path || !*path)
        return cel_task_fail(t, "RuntimeError", NULL, "CEL_TEST_RECORD_FILE is not set");
    char line[256];
    int n = snprintf(line, sizeof line, "%s %d\n", cel_task_id(t), (int)getpid());
    if (n < 0 || (size_t)n >= sizeof line)
        return cel_task_fail(t, "RuntimeError", NULL, "task id too long to record");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cel_task_failf(t, "OSError", "cannot open %s", path);
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    if (w != n)
        return cel_task_failf(t, "OSError", "short write to %s", path);
    return CEL_OK;
}

/* len(first positional string argument). */
static int return_arg_len(cel_task *t)
{
    const char *s;
    size_t len;
    if (cel_task_arg_string(t, 0, &s, &len) != CEL_OK)
        return cel_task_fail_args(t);
    return cel_task_return_int(t, (int64_t)len);
}

static int record(cel_task *t, void *ud)
{
    (void)ud;
    int rc = record_run(t);
    if (rc != CEL_OK)
        return rc;
    return return_arg_len(t);
}

static int echo_len(cel_task *t, void *ud)
{
    (void)ud;
    return return_arg_len(t);
}

static int echo(cel_task *t, void *ud)
{
    (void)ud;
    const char *s;
    if (cel_task_arg_string(t, 0, &s, NULL) != CEL_OK)
        return cel_task_fail_args(t);
    return cel_task_return_string(t, s);
}

static int crash(cel_task *t, void *ud)
{
    (void)ud;
    if (getenv("CEL_TEST_RECORD_FILE"))
        record_run(t);
    abort();
}

static int walltime(cel_task *t, void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return cel_task_return_int(t, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* The one place that knows cel_task_def's layout. */
static int add_task(cel_registry *reg, const char *name, cel_task_fn fn)
{
    cel_task_def def = CEL_TASK_DEF_INIT(.name = name, .fn = fn);
    return cel_registry_add(reg, &def);
}

CEL_MODULE_INIT(reg)
{
    int rc = add_task(reg, "test.record", record);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.echo_len", echo_len);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.echo", echo);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.crash", crash);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.walltime", walltime);
    return rc;
}
