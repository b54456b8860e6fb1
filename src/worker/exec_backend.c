/* exec_backend.c - see exec_backend.h. */
#include "worker/exec_backend.h"

#include <unistd.h>

static struct cel_backend *handle;
static pid_t handle_pid;

struct cel_backend *cel__exec_backend(const struct cel_exec_env *env, struct cel_errbuf *err)
{
    if (handle && handle_pid != getpid())
        handle = NULL; /* opened before a fork: the parent's to close */
    if (handle)
        return handle;
    if (!env || !env->cfg) {
        cel__err(err, CEL_ENORESULT, "this worker has no result backend configured");
        return NULL;
    }
    if (cel__backend_open(NULL, env->cfg, &handle, err) != CEL_OK) {
        handle = NULL;
        return NULL;
    }
    handle_pid = getpid();
    return handle;
}

void cel__exec_backend_close(void)
{
    if (handle && handle_pid == getpid())
        cel__backend_close(handle);
    handle = NULL;
}
