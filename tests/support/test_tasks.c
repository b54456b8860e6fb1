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
 *   test.sleep(s)    records like test.record, then sleeps s seconds and
 *                    returns s: a long task a test can see start
 *   test.limited()   rate_limit $CEL_TEST_RATE_LIMIT (default "20/s"):
 *                    appends "<monotonic finish time in µs> <pid>" to
 *                    $CEL_TEST_STAMP_FILE; a malformed rate makes the
 *                    worker refuse to start (the rate-limit tests)
 *   test.crash_requeue()  the same, defined with reject_on_worker_lost
 *   test.segv()      reads through a NULL pointer: SIGSEGV (its function
 *                    is exported, so a crash report can name it)
 *   test.spin([s])   records when the variable is set, then busy-loops in
 *                    C for s seconds (forever without one); returns s
 *   test.spin_limited, test.spin_early, test.spin_late: test.spin defined
 *                    with time_limit = 1, acks_late off, acks_late on
 *   test.soft_steps(s)  sleeps in 10 ms steps for up to s seconds,
 *                    checking its soft time limit (none of its own)
 *                    between steps; past it, fails naming its pid (which
 *                    the worker reports as SoftTimeLimitExceeded), else
 *                    returns s: the run-time time_limit tests
 *   test.alloc(mib)  allocates and touches mib MiB it never frees (a
 *                    leak the child keeps); returns the child's pid
 *   test.walltime()  returns the wall clock when it started, in µs since
 *                    the epoch: a test compares it with a countdown's due
 *                    time
 *   test.stamp(label[, s])  (workflows) appends "<label> <start µs> <end
 *                    µs>" (wall clock) to $CEL_TEST_TREE_FILE, sleeping s
 *                    seconds (default 0.05) in between; returns label: a
 *                    task tree's test checks each node started after its
 *                    parent ended
 *
 * The record file lives outside whatever the test breaks (a full disk, a
 * stopped store), and each line is one write() with O_APPEND, so lines
 * from concurrent children never interleave.
 *
 * Only the public API in <celeriac/task.h> is used; cel_task_def is built
 * in one place (add_task) so a change to its layout touches one function.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <celeriac/error.h>
#include <celeriac/task.h>

/* Appends one line (one write(), so concurrent children never
 * interleave) to the file named by $var; CEL_OK, or a failure set on t. */
static int append_line(cel_task *t, const char *var, const char *line, int n, size_t size)
{
    const char *path = getenv(var);
    if (!path || !*path)
        return cel_task_failf(t, "RuntimeError", "%s is not set", var);
    if (n < 0 || (size_t)n >= size)
        return cel_task_fail(t, "RuntimeError", NULL, "line too long to record");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cel_task_failf(t, "OSError", "cannot open %s", path);
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    if (w != n)
        return cel_task_failf(t, "OSError", "short write to %s", path);
    return CEL_OK;
}

/* Appends this run to the record file; CEL_OK, or a failure set on t. */
static int record_run(cel_task *t)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%s %d\n", cel_task_id(t), (int)getpid());
    return append_line(t, "CEL_TEST_RECORD_FILE", line, n, sizeof line);
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

/* Exported, unlike the other tasks: a crash report names functions
 * through dladdr, which sees a module's dynamic symbols only. UBSan's
 * null check would end the process itself, before the fault. */
int cel_test_segv_task(cel_task *t, void *ud);
__attribute__((noinline, no_sanitize("null"))) int cel_test_segv_task(cel_task *t, void *ud)
{
    (void)t;
    (void)ud;
    int *volatile p = NULL;
    return *p;
}

static int sleep_task(cel_task *t, void *ud)
{
    (void)ud;
    double s;
    if (cel_task_arg_double(t, 0, &s) != CEL_OK || s < 0)
        return cel_task_fail_args(t);
    int rc = record_run(t);
    if (rc != CEL_OK)
        return rc;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return cel_task_return_double(t, s);
}

/* ---- rate limits ---- */
static int limited(cel_task *t, void *ud)
{
    (void)ud;
    const char *path = getenv("CEL_TEST_STAMP_FILE");
    if (!path || !*path)
        return cel_task_fail(t, "RuntimeError", NULL, "CEL_TEST_STAMP_FILE is not set");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char line[64];
    int n = snprintf(line, sizeof line, "%lld %d\n",
                     (long long)ts.tv_sec * 1000000 + (long long)ts.tv_nsec / 1000, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cel_task_failf(t, "OSError", "cannot open %s", path);
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    return w == n ? cel_task_return_int(t, 1) : cel_task_failf(t, "OSError", "short write");
}

static int add_limited(cel_registry *reg)
{
    const char *rate = getenv("CEL_TEST_RATE_LIMIT"); /* the environment outlives the worker */
    cel_task_def def = CEL_TASK_DEF_INIT(.name = "test.limited", .fn = limited,
                                         .rate_limit = rate ? rate : "20/s");
    return cel_registry_add(reg, &def);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Burns CPU without a system call in the loop: only a signal stops it. */
static int spin(cel_task *t, void *ud)
{
    (void)ud;
    if (getenv("CEL_TEST_RECORD_FILE"))
        record_run(t);
    double seconds = -1;
    if (cel_task_argc(t) > 0 && cel_task_arg_double(t, 0, &seconds) != CEL_OK)
        return cel_task_fail_args(t);
    double end = now_s() + seconds;
    volatile uint64_t n = 0;
    while (seconds < 0 || now_s() < end)
        for (int i = 0; i < 1000000; i++)
            n++;
    return cel_task_return_double(t, seconds);
}

static int soft_steps(cel_task *t, void *ud)
{
    (void)ud;
    double seconds;
    if (cel_task_arg_double(t, 0, &seconds) != CEL_OK)
        return cel_task_fail_args(t);
    double start = now_s();
    while (now_s() - start < seconds) {
        if (cel_task_soft_limit_reached(t))
            return cel_task_failf(t, "RuntimeError", "soft limit in pid %d after %.2fs",
                                  (int)getpid(), now_s() - start);
        struct timespec step = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
    return cel_task_return_double(t, seconds);
}

/* What test.alloc leaked, for the child's lifetime. */
static char *volatile kept_blocks[64];
static size_t kept_count;

static int alloc(cel_task *t, void *ud)
{
    (void)ud;
    int64_t mib;
    if (cel_task_arg_int(t, 0, &mib) != CEL_OK || mib < 0 || mib > 4096)
        return cel_task_fail_args(t);
    size_t n = (size_t)mib << 20;
    char *p = malloc(n);
    if (!p && n)
        return cel_task_fail(t, "MemoryError", NULL, "out of memory");
    memset(p, 0x5a, n); /* resident, not only reserved */
    /* Kept where the compiler cannot prove it unused (it would drop an
     * allocation nobody reads, and the memset with it). */
    kept_blocks[kept_count++ % 64] = p;
    return cel_task_return_int(t, (int64_t)getpid());
}

struct task_opts {
    double time_limit;
    int acks_late, reject_on_worker_lost;
};

static int walltime(cel_task *t, void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return cel_task_return_int(t, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* ---- workflows (issue 8, h-interop) ---- */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int stamp(cel_task *t, void *ud)
{
    (void)ud;
    const char *label;
    double s = 0.05;
    if (cel_task_arg_string(t, 0, &label, NULL) != CEL_OK ||
        (cel_task_argc(t) > 1 && cel_task_arg_double(t, 1, &s) != CEL_OK) || s < 0 || s > 60)
        return cel_task_fail_args(t);
    int64_t start = wall_us();
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %lld %lld\n", label, (long long)start,
                     (long long)wall_us());
    int rc = append_line(t, "CEL_TEST_TREE_FILE", line, n, sizeof line);
    if (rc != CEL_OK)
        return rc;
    return cel_task_return_string(t, label);
}

/* The one place that knows cel_task_def's layout. */
static int add_task_with(cel_registry *reg, const char *name, cel_task_fn fn, struct task_opts o)
{
    cel_task_def def = CEL_TASK_DEF_INIT(.name = name, .fn = fn, .time_limit = o.time_limit,
                                         .acks_late = o.acks_late,
                                         .reject_on_worker_lost = o.reject_on_worker_lost);
    return cel_registry_add(reg, &def);
}

static int add_task(cel_registry *reg, const char *name, cel_task_fn fn)
{
    return add_task_with(reg, name, fn, (struct task_opts){0});
}

/* Replaces itself with tasks.add(x, 100) (Celery's Task.replace): its
 * chain continues from the replacement's result. */
static int replace_add(cel_task *t, void *ud)
{
    (void)ud;
    int64_t x;
    if (cel_task_arg_int(t, 0, &x) != CEL_OK)
        return cel_task_fail_args(t);
    char sig[128];
    snprintf(sig, sizeof sig, "{\"task\": \"tasks.add\", \"args\": [%lld, 100]}", (long long)x);
    int rc = cel_task_replace_json(t, sig);
    return rc == CEL_OK ? cel_task_return_int(t, -1) /* ignored */ : rc;
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
        rc = add_task(reg, "test.sleep", sleep_task);
    if (rc == CEL_OK)
        rc = add_limited(reg);
    /* time limits, worker failures, per-task acks, recycling */
    if (rc == CEL_OK)
        rc = add_task_with(reg, "test.crash_requeue", crash,
                           (struct task_opts){.reject_on_worker_lost = CEL_TRI_ON});
    if (rc == CEL_OK)
        rc = add_task(reg, "test.spin", spin);
    if (rc == CEL_OK)
        rc = add_task_with(reg, "test.spin_limited", spin, (struct task_opts){.time_limit = 1});
    if (rc == CEL_OK)
        rc = add_task_with(reg, "test.spin_early", spin,
                           (struct task_opts){.acks_late = CEL_TRI_OFF});
    if (rc == CEL_OK)
        rc =
            add_task_with(reg, "test.spin_late", spin, (struct task_opts){.acks_late = CEL_TRI_ON});
    if (rc == CEL_OK)
        rc = add_task(reg, "test.alloc", alloc);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.soft_steps", soft_steps);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.walltime", walltime);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.segv", cel_test_segv_task);
    /* workflows (issue 8, h-interop) */
    if (rc == CEL_OK)
        rc = add_task(reg, "test.stamp", stamp);
    if (rc == CEL_OK)
        rc = add_task(reg, "test.replace_add", replace_add);
    return rc;
}
