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

/* tasks.add(x, y) */
static int add(cel_task *t, void *ud)
{
    (void)ud;
    struct num x, y, r = {0};
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
    (void)t;
    (void)ud;
    raise(SIGSEGV);
    return CEL_OK;
}

/* tasks.spin(seconds): keeps a CPU busy, for time-limit and load tests. */
static int spin(cel_task *t, void *ud)
{
    (void)ud;
    struct num s;
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
    };
    return cel_registry_add_many(reg, defs, sizeof defs / sizeof defs[0]);
}
