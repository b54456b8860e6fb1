/*
 * task_module_public.c - a task module whose task calls a public function
 * that neither the celeriac CLI nor the library calls (cel_version()), for
 * test_cli: the CLI must export every public cel_* symbol, not only those
 * it uses itself, or this module fails to load (dlopen with RTLD_NOW
 * binds its calls to the executable).
 */
#include <celeriac.h>

static int version(cel_task *t, void *userdata)
{
    (void)userdata;
    return cel_task_return_int(t, (int64_t)cel_version());
}

CEL_MODULE_INIT(reg)
{
    static const cel_task_def defs[] = {
        CEL_TASK_DEF_INIT(.name = "public.version", .fn = version),
    };
    return cel_registry_add_many(reg, defs, 1);
}
