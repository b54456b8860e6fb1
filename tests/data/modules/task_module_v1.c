/*
 * task_module_v1.c - a task module as celeriac 0.1 built it, for the
 * registry's refusal test (tests/unit/test_registry.c).
 *
 * Written without celeriac's headers: it is what an old binary looks like
 * to today's loader, a definition whose first member is `int abi = 1`.
 */
#include <stddef.h>

struct cel_task_def_v1 {
    int abi; /* CEL_TASK_DEF_ABI in celeriac 0.1 */
    const char *name;
    int (*fn)(void *task, void *userdata);
    void *userdata;
    const char *queue;
    int ignore_result;
};

int cel_registry_add_many(void *reg, const struct cel_task_def_v1 *defs, size_t n);
int celeriac_module_init(void *reg);

static int add(void *task, void *userdata)
{
    (void)task;
    (void)userdata;
    return 0;
}

int celeriac_module_init(void *reg)
{
    static const struct cel_task_def_v1 defs[] = {{1, "old.add", add, NULL, NULL, 0}};
    /* Ignores the result, as careless modules do: loading must fail anyway. */
    (void)cel_registry_add_many(reg, defs, 1);
    return 0;
}
