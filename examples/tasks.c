/*
 * tasks.c - an example task module.
 *
 * Build it as a shared object (CMake target `tasks` makes
 * build/examples/libtasks.so) and run
 *
 *     celeriac worker -A build/examples/libtasks.so
 *     celeriac call tasks.add 2 3 --wait          # 5
 *
 * Numbers follow Python's rules, so a Python client sees what a Python
 * worker would return: int + int is an int, anything with a float is a
 * float (2 + 3.0 == 5.0).
 *
 * The module only uses the public API in <celeriac/task.h>.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <celeriac/error.h>
#include <celeriac/task.h>

/* A number that is either an int or a float, as in Python. */
struct num {
    bool is_float;
    int64_t i;
    double f;
};

static double num_float(struct num n)
{
    return n.is_float ? n.f : (double)n.i;
}

/* Positional argument `pos`, or else keyword argument `name`. */
static int get_num(cel_task *t, size_t pos, const char *name, struct num *out)
{
    int rc;
    memset(out, 0, sizeof *out);
    if (pos < cel_task_argc(t)) {
        rc = cel_task_arg_int(t, pos, &out->i);
        if (rc == CEL_ETYPE) {
            out->is_float = true;
            rc = cel_task_arg_double(t, pos, &out->f);
        }
        return rc;
    }
    if (name && cel_task_has_kwarg(t, name)) {
        rc = cel_task_kwarg_int(t, name, &out->i);
        if (rc == CEL_ETYPE) {
            out->is_float = true;
            rc = cel_task_kwarg_double(t, name, &out->f);
        }
        return rc;
    }
    return CEL_EMISSING;
}

static int return_num(cel_task *t, struct num n)
{
    return n.is_float ? cel_task_return_double(t, n.f) : cel_task_return_int(t, n.i);
}

/*
 * Python's argument count check for f(names[0], ..., names[nall - 1]) of
 * which the first `nrequired` have no default: any of them may come by
 * keyword instead, which leaves fewer positional slots. Returns CEL_OK,
 * or CEL_EINVAL after failing the task with Python's TypeError.
 */
static int check_args(cel_task *t, const char *const names[], size_t nrequired, size_t nall)
{
    size_t by_kw = 0, req_by_kw = 0;
    for (size_t i = 0; i < nall; i++)
        if (cel_task_has_kwarg(t, names[i])) {
            by_kw++;
            req_by_kw += i < nrequired;
        }
    return cel_task_check_argc(t, nrequired - req_by_kw, (long)(nall - by_kw));
}

static const char *const XY[] = {"x", "y"};
static const char *const SECONDS[] = {"seconds"};

/* tasks.add(x, y) */
static int add(cel_task *t, void *ud)
{
    (void)ud;
    struct num x, y, r = {0};
    if (check_args(t, XY, 2, 2) != CEL_OK)
        return CEL_OK;
    if (get_num(t, 0, "x", &x) || get_num(t, 1, "y", &y))
        return cel_task_fail_args(t);
    if (x.is_float || y.is_float) {
        r.is_float = true;
        r.f = num_float(x) + num_float(y);
    } else if (__builtin_add_overflow(x.i, y.i, &r.i)) {
        /* Python would return a big integer; JSON clients could not read
         * it back exactly anyway. */
        return cel_task_fail(t, "OverflowError", NULL, "integer result out of range");
    }
    return return_num(t, r);
}

/* tasks.mul(x, y) */
static int mul(cel_task *t, void *ud)
{
    (void)ud;
    struct num x, y, r = {0};
    if (check_args(t, XY, 2, 2) != CEL_OK)
        return CEL_OK;
    if (get_num(t, 0, "x", &x) || get_num(t, 1, "y", &y))
        return cel_task_fail_args(t);
    if (x.is_float || y.is_float) {
        r.is_float = true;
        r.f = num_float(x) * num_float(y);
    } else if (__builtin_mul_overflow(x.i, y.i, &r.i)) {
        return cel_task_fail(t, "OverflowError", NULL, "integer result out of range");
    }
    return return_num(t, r);
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* tasks.xsum(numbers): sum of a list, an int when every item is one. The
 * list arrives as JSON text; a flat list of numbers is easy to read
 * without a JSON library. */
static int xsum(cel_task *t, void *ud)
{
    (void)ud;
    char *json = NULL;
    if (cel_task_check_argc(t, 0, 1) != CEL_OK)
        return CEL_OK;
    if (cel_task_arg_json(t, 0, &json) != CEL_OK)
        return cel_task_fail(t, "TypeError", NULL, "xsum() missing 1 required argument: 'numbers'");
    struct num total = {0};
    const char *p = skip_ws(json);
    int rc = CEL_OK;
    if (*p != '[') {
        rc = cel_task_fail(t, "TypeError", NULL, "xsum() expects a list of numbers");
        goto out;
    }
    p = skip_ws(p + 1);
    while (*p != ']') {
        char *end;
        size_t span = strspn(p, "+-0123456789.eE");
        bool is_float = memchr(p, '.', span) || memchr(p, 'e', span) || memchr(p, 'E', span);
        errno = 0;
        struct num item = {is_float, 0, 0};
        if (is_float)
            item.f = strtod(p, &end);
        else
            item.i = strtoll(p, &end, 10);
        if (end == p || errno) {
            rc = cel_task_fail(t, "TypeError", NULL, "xsum() expects a list of numbers");
            goto out;
        }
        if (is_float || total.is_float) {
            total.f = num_float(total) + num_float(item);
            total.is_float = true;
        } else if (__builtin_add_overflow(total.i, item.i, &total.i)) {
            rc = cel_task_fail(t, "OverflowError", NULL, "integer result out of range");
            goto out;
        }
        p = skip_ws(end);
        if (*p == ',')
            p = skip_ws(p + 1);
        else if (*p != ']') {
            rc = cel_task_fail(t, "TypeError", NULL, "xsum() expects a list of numbers");
            goto out;
        }
    }
    rc = return_num(t, total);
out:
    cel_free(json);
    return rc;
}

/* tasks.echo(*args, **kwargs): the args back, or {"args", "kwargs"}. */
static int echo(cel_task *t, void *ud)
{
    (void)ud;
    const char *args = cel_task_args_json(t);
    const char *kwargs = cel_task_kwargs_json(t);
    if (strcmp(skip_ws(kwargs), "{}") == 0)
        return cel_task_return_json(t, args);
    size_t len = strlen(args) + strlen(kwargs) + 32;
    char *both = malloc(len);
    if (!both)
        return CEL_ENOMEM;
    snprintf(both, len, "{\"args\": %s, \"kwargs\": %s}", args, kwargs);
    int rc = cel_task_return_json(t, both);
    free(both);
    return rc;
}

/* tasks.noop() */
static int noop(cel_task *t, void *ud)
{
    (void)ud;
    if (cel_task_check_argc(t, 0, 0) != CEL_OK)
        return CEL_OK;
    return cel_task_return_null(t);
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* tasks.sleep(seconds): sleeps, returns the seconds. */
static int sleep_task(cel_task *t, void *ud)
{
    (void)ud;
    struct num s;
    if (check_args(t, SECONDS, 1, 1) != CEL_OK)
        return CEL_OK;
    if (get_num(t, 0, "seconds", &s) || num_float(s) < 0)
        return cel_task_fail(t, "ValueError", NULL, "sleep() expects a non-negative number");
    sleep_seconds(num_float(s));
    return return_num(t, s);
}

/* tasks.fail(message="boom"): raises ValueError. */
static int fail(cel_task *t, void *ud)
{
    (void)ud;
    const char *msg = "boom";
    static const char *const message[] = {"message"};
    if (check_args(t, message, 0, 1) != CEL_OK)
        return CEL_OK;
    if (cel_task_argc(t) > 0 && cel_task_arg_string(t, 0, &msg, NULL) != CEL_OK)
        return cel_task_fail_args(t);
    if (cel_task_has_kwarg(t, "message") &&
        cel_task_kwarg_string(t, "message", &msg, NULL) != CEL_OK)
        return cel_task_fail_args(t);
    return cel_task_fail(t, "ValueError", "builtins", msg);
}

/* tasks.crash(): a segfault, to show the worker survives a dying child. */
static int crash(cel_task *t, void *ud)
{
    (void)ud;
    if (cel_task_check_argc(t, 0, 0) != CEL_OK)
        return CEL_OK;
    raise(SIGSEGV);
    return CEL_OK;
}

/* tasks.spin(seconds): keeps a CPU busy in a loop that never polls
 * anything (only a hard time limit stops it early), for time-limit and
 * load tests. */
static int spin(cel_task *t, void *ud)
{
    (void)ud;
    struct num s;
    if (check_args(t, SECONDS, 1, 1) != CEL_OK)
        return CEL_OK;
    if (get_num(t, 0, "seconds", &s) || num_float(s) < 0)
        return cel_task_fail(t, "ValueError", NULL, "spin() expects a non-negative number");
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    volatile uint64_t work = 0;
    do {
        for (int i = 0; i < 100000; i++)
            work += (uint64_t)i;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 <
             num_float(s));
    (void)work;
    return return_num(t, s);
}

/* ---- retries, progress, soft limit --------------------------------------- */

/* Appends "<wall ms> <retries header>" to `path` and counts its lines:
 * the attempts so far live in a file, not in this process, because the
 * next attempt may run in another child or on another worker. */
static int record_attempt(cel_task *t, const char *path, long *attempts)
{
    FILE *f = fopen(path, "a+");
    if (!f)
        return cel_task_failf(t, "OSError", "cannot open %s: %s", path, strerror(errno));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(f, "%lld %d\n", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000,
            cel_task_retries(t));
    fflush(f);
    rewind(f);
    long n = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        n += c == '\n';
    fclose(f);
    *attempts = n;
    return CEL_OK;
}

static const char *const PATH_N[] = {"path", "n", "countdown"};

/* tasks.fail_times(path, n, countdown=0.2): fails n times, retrying each
 * time (countdown < 0: the backoff policy below), then returns
 * {"attempts", "retries"}. Up to 5 retries. */
static int fail_times(cel_task *t, void *ud)
{
    (void)ud;
    const char *path;
    int64_t n;
    double countdown = 0.2;
    if (check_args(t, PATH_N, 2, 3) != CEL_OK)
        return CEL_OK;
    if (cel_task_arg_string(t, 0, &path, NULL) || cel_task_arg_int(t, 1, &n) ||
        (cel_task_argc(t) > 2 && cel_task_arg_double(t, 2, &countdown)))
        return cel_task_fail_args(t);
    long attempts;
    if (record_attempt(t, path, &attempts) != CEL_OK)
        return CEL_OK;
    if (attempts <= n) {
        char why[64];
        snprintf(why, sizeof why, "failure %ld of %lld", attempts, (long long)n);
        return cel_task_retry(t, countdown, "RuntimeError", NULL, why);
    }
    char out[96];
    snprintf(out, sizeof out, "{\"attempts\": %ld, \"retries\": %d}", attempts,
             cel_task_retries(t));
    return cel_task_return_json(t, out);
}

/* tasks.flaky(path, n): raises IOError on its first n attempts; its
 * definition retries IOError by itself (autoretry_for) with a jittered
 * backoff. Returns the attempts. */
static int flaky(cel_task *t, void *ud)
{
    (void)ud;
    const char *path;
    int64_t n;
    if (check_args(t, PATH_N, 2, 2) != CEL_OK)
        return CEL_OK;
    if (cel_task_arg_string(t, 0, &path, NULL) || cel_task_arg_int(t, 1, &n))
        return cel_task_fail_args(t);
    long attempts;
    if (record_attempt(t, path, &attempts) != CEL_OK)
        return CEL_OK;
    if (attempts <= n)
        return cel_task_failf(t, "IOError", "flaky failure %ld of %lld", attempts, (long long)n);
    return cel_task_return_int(t, attempts);
}

/* tasks.progress(n, interval=0.3): reports PROGRESS {"current": i,
 * "total": n} for i = 1..n, one every interval seconds; returns n. */
static int progress(cel_task *t, void *ud)
{
    (void)ud;
    static const char *const names[] = {"n", "interval"};
    int64_t n;
    double interval = 0.3;
    if (check_args(t, names, 1, 2) != CEL_OK)
        return CEL_OK;
    if (cel_task_arg_int(t, 0, &n) ||
        (cel_task_argc(t) > 1 && cel_task_arg_double(t, 1, &interval)) || n < 0 || interval < 0)
        return cel_task_fail(t, "ValueError", NULL,
                             "progress() expects a count and a non-negative interval");
    for (int64_t i = 1; i <= n; i++) {
        char meta[96];
        snprintf(meta, sizeof meta, "{\"current\": %lld, \"total\": %lld}", (long long)i,
                 (long long)n);
        int rc = cel_task_update_state(t, "PROGRESS", meta);
        if (rc != CEL_OK)
            return rc;
        sleep_seconds(interval);
    }
    return cel_task_return_int(t, n);
}

/* tasks.soft_limited(seconds=10): works in small steps for up to
 * `seconds`, checking its soft time limit (1 s unless the call sets
 * one) between steps; once it has passed, it cleans up and fails, which
 * is recorded as SoftTimeLimitExceeded. Returns "finished" otherwise. */
static int soft_limited(cel_task *t, void *ud)
{
    (void)ud;
    double seconds = 10;
    if (check_args(t, SECONDS, 0, 1) != CEL_OK)
        return CEL_OK;
    if (cel_task_argc(t) > 0 && cel_task_arg_double(t, 0, &seconds))
        return cel_task_fail_args(t);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    double elapsed = 0;
    while (elapsed < seconds) {
        if (cel_task_soft_limit_reached(t)) {
            /* here a real task would remove temporary files, roll back... */
            return cel_task_failf(t, "RuntimeError", "stopped at the soft time limit after %.2fs",
                                  elapsed);
        }
        sleep_seconds(0.01);
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
    }
    return cel_task_return_string(t, "finished");
}

static const char *const FLAKY_ERRORS[] = {"IOError", NULL};

CEL_MODULE_INIT(reg)
{
    static const cel_task_def defs[] = {
        CEL_TASK_DEF_INIT(.name = "tasks.add", .fn = add),
        CEL_TASK_DEF_INIT(.name = "tasks.mul", .fn = mul),
        CEL_TASK_DEF_INIT(.name = "tasks.xsum", .fn = xsum),
        CEL_TASK_DEF_INIT(.name = "tasks.echo", .fn = echo),
        CEL_TASK_DEF_INIT(.name = "tasks.noop", .fn = noop),
        CEL_TASK_DEF_INIT(.name = "tasks.sleep", .fn = sleep_task),
        CEL_TASK_DEF_INIT(.name = "tasks.fail", .fn = fail),
        CEL_TASK_DEF_INIT(.name = "tasks.crash", .fn = crash),
        CEL_TASK_DEF_INIT(.name = "tasks.spin", .fn = spin),
        CEL_TASK_DEF_INIT(.name = "tasks.fail_times", .fn = fail_times, .max_retries = 5,
                          .retry_backoff = 0.25, .retry_backoff_max = 2,
                          .retry_jitter = CEL_TRI_OFF),
        CEL_TASK_DEF_INIT(.name = "tasks.flaky", .fn = flaky, .autoretry_for = FLAKY_ERRORS,
                          .retry_backoff = 0.2, .max_retries = 3),
        CEL_TASK_DEF_INIT(.name = "tasks.progress", .fn = progress),
        CEL_TASK_DEF_INIT(.name = "tasks.soft_limited", .fn = soft_limited, .soft_time_limit = 1),
    };
    return cel_registry_add_many(reg, defs, sizeof defs / sizeof defs[0]);
}
