/*
 * registry.c - task definitions by name, and loading task modules.
 *
 * Definitions are kept sorted by name so lookups are a binary search and
 * the banner lists them in a stable order.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "celeriac/task.h"
#include "core/log.h"

struct cel_registry {
    cel_task_def *defs;
    size_t n, cap;
    void **modules; /* dlopen handles, closed on free */
    size_t nmodules;
};

cel_registry *cel_registry_new(void)
{
    return calloc(1, sizeof(cel_registry));
}

void cel_registry_free(cel_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++) {
        free((char *)reg->defs[i].name);
        free((char *)reg->defs[i].queue);
    }
    free(reg->defs);
    /* Modules stay mapped: task code may still be referenced by a copy of
     * the registry in a forked child, and unloading buys nothing here. */
    free(reg->modules);
    free(reg);
}

static long find_index(const cel_registry *reg, const char *name, size_t *insert_at)
{
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(reg->defs[mid].name, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (insert_at)
        *insert_at = lo;
    return -1;
}

int cel_registry_add(cel_registry *reg, const cel_task_def *def)
{
    if (!reg || !def || def->abi != CEL_TASK_DEF_ABI || !def->name || !*def->name || !def->fn)
        return CEL_EINVAL;
    size_t at = 0;
    if (find_index(reg, def->name, &at) >= 0)
        return CEL_EINVAL;
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        cel_task_def *p = realloc(reg->defs, cap * sizeof *p);
        if (!p)
            return CEL_ENOMEM;
        reg->defs = p;
        reg->cap = cap;
    }
    cel_task_def copy = *def;
    copy.name = strdup(def->name);
    copy.queue = def->queue ? strdup(def->queue) : NULL;
    if (!copy.name || (def->queue && !copy.queue)) {
        free((char *)copy.name);
        free((char *)copy.queue);
        return CEL_ENOMEM;
    }
    memmove(reg->defs + at + 1, reg->defs + at, (reg->n - at) * sizeof *reg->defs);
    reg->defs[at] = copy;
    reg->n++;
    return CEL_OK;
}

int cel_registry_add_many(cel_registry *reg, const cel_task_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = cel_registry_add(reg, &defs[i]);
        if (rc != CEL_OK)
            return rc;
    }
    return CEL_OK;
}

int cel_registry_load_module(cel_registry *reg, const char *path, char **errmsg)
{
    char buf[1024];
    if (errmsg)
        *errmsg = NULL;
    /* dlopen() searches the library path for names without a slash; a
     * user who types `-A libtasks.so` means the file in this directory. */
    char resolved[4096];
    if (path && !strchr(path, '/'))
        snprintf(resolved, sizeof resolved, "./%s", path);
    else
        snprintf(resolved, sizeof resolved, "%s", path ? path : "");
    void *h = dlopen(resolved, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(buf, sizeof buf, "cannot load task module '%s': %s", path, e ? e : "?");
        goto fail;
    }
    cel_module_init_fn init;
    *(void **)&init = dlsym(h, "celeriac_module_init");
    if (!init) {
        snprintf(buf, sizeof buf,
                 "task module '%s' has no celeriac_module_init() (use CEL_MODULE_INIT)", path);
        dlclose(h);
        goto fail;
    }
    size_t before = reg->n;
    int rc = init(reg);
    if (rc != CEL_OK) {
        snprintf(buf, sizeof buf, "task module '%s' failed to register its tasks: %s", path,
                 cel_strerror(rc));
        dlclose(h);
        goto fail;
    }
    void **mods = realloc(reg->modules, (reg->nmodules + 1) * sizeof *mods);
    if (mods) {
        reg->modules = mods;
        reg->modules[reg->nmodules++] = h;
    }
    CEL_DEBUG("registry", "loaded %zu tasks from %s", reg->n - before, path);
    return CEL_OK;
fail:
    if (errmsg)
        *errmsg = strdup(buf);
    return CEL_EMODULE;
}

const cel_task_def *cel_registry_find(const cel_registry *reg, const char *name)
{
    if (!reg || !name)
        return NULL;
    long i = find_index(reg, name, NULL);
    return i >= 0 ? &reg->defs[i] : NULL;
}

size_t cel_registry_count(const cel_registry *reg)
{
    return reg ? reg->n : 0;
}

const cel_task_def *cel_registry_at(const cel_registry *reg, size_t i)
{
    return reg && i < reg->n ? &reg->defs[i] : NULL;
}
