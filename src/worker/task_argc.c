/*
 * task_argc.c - cel_task_check_argc (task.h): a task's positional
 * argument count checked and reported in Python's words, so that
 * `tasks.add 2 3 4` is the TypeError a Python worker gives, not 5.
 *
 * Minimal version for the retry work; the task API work (task_request.c)
 * has its own, which wins when the two meet.
 */
#include "celeriac/error.h"
#include "celeriac/task.h"

#include <string.h>

/* Python names the function, not the dotted task: "add()". */
static const char *short_name(const cel_task *t)
{
    const char *name = cel_task_name(t);
    const char *dot = name ? strrchr(name, '.') : NULL;
    return dot ? dot + 1 : name ? name : "task";
}

int cel_task_check_argc(cel_task *t, size_t min, long max)
{
    if (!t)
        return CEL_EINVAL;
    size_t n = cel_task_argc(t);
    const char *fn = short_name(t);
    if (n < min) {
        size_t missing = min - n;
        cel_task_failf(t, "TypeError", "%s() missing %zu required positional argument%s", fn,
                       missing, missing == 1 ? "" : "s");
        return CEL_EINVAL;
    }
    if (max < 0 || n <= (size_t)max)
        return CEL_OK;
    const char *were = n == 1 ? "was" : "were";
    if ((size_t)max == min)
        cel_task_failf(t, "TypeError", "%s() takes %ld positional argument%s but %zu %s given", fn,
                       max, max == 1 ? "" : "s", n, were);
    else
        cel_task_failf(t, "TypeError",
                       "%s() takes from %zu to %ld positional arguments but %zu %s given", fn, min,
                       max, n, were);
    return CEL_EINVAL;
}
