/*
 * registry.c - task definitions by name, and loading task modules.
 *
 * Definitions are kept sorted by name so lookups are a binary search and
 * the banner lists them in a stable order. Each is kept in this library's
 * layout, whatever layout its module was built with (sized_struct.h).
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "celeriac/task.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "core/sized_struct.h"

/* The first layout with struct_size (celeriac 0.2). Frozen: definitions
 * from later headers are larger, never smaller. */
#define TASK_DEF_MIN_SIZE (offsetof(cel_task_def, queue) + sizeof(const char *))

_Static_assert(offsetof(cel_task_def, struct_size) == 0, "struct_size comes first");
_Static_assert(CEL_NO_PADDING(cel_task_def, sizeof(unsigned) + sizeof(int) + sizeof(const char *) +
                                                sizeof(cel_task_fn) + sizeof(void *) +
                                                sizeof(const char *) + 5 * sizeof(double) +
                                                2 * sizeof(void *) + 6 * sizeof(int)),
               "cel_task_def must have no padding (sized_struct.h)");

/*
 * The celeriac 0.1 layout, only to name what is refused. Its first member
 * (`int abi`, always 1) lies where struct_size is now, and no layout is 1
 * byte long, so the two cannot be confused; reading an unsigned there is
 * exact on any byte order, where a size_t would take in padding.
 */
struct task_def_v1 {
    int abi;
    const char *name;
};
#define TASK_DEF_V1_ABI 1

struct cel_registry {
    cel_task_def *defs;
    size_t n, cap;
    void **modules; /* dlopen handles, closed on free */
    size_t nmodules;
    struct cel_errbuf err;
    bool refused_v1; /* a celeriac 0.1 definition was offered */
};

/* The strings a registered definition owns (cel_registry_add copies
 * them: a module's definitions may live on its stack). */
static void release_strings(cel_task_def *d)
{
    free((char *)d->name);
    free((char *)d->queue);
    free((char *)d->rate_limit);
    if (d->autoretry_for) {
        for (size_t i = 0; d->autoretry_for[i]; i++)
            free((char *)d->autoretry_for[i]);
        free((void *)d->autoretry_for);
    }
    d->name = d->queue = d->rate_limit = NULL;
    d->autoretry_for = NULL;
}

/* Deep copies of d's strings into d itself; on failure nothing is owned. */
static int copy_strings(cel_task_def *d)
{
    const char *name = d->name, *queue = d->queue, *rate = d->rate_limit;
    const char *const *autoretry = d->autoretry_for;
    d->name = strdup(name);
    d->queue = queue ? strdup(queue) : NULL;
    d->rate_limit = rate ? strdup(rate) : NULL;
    d->autoretry_for = NULL;
    bool ok = d->name && (!queue || d->queue) && (!rate || d->rate_limit);
    if (ok && autoretry) {
        size_t n = 0;
        while (autoretry[n])
            n++;
        char **types = calloc(n + 1, sizeof *types);
        d->autoretry_for = (const char *const *)types;
        for (size_t i = 0; ok && i < n; i++)
            ok = types && (types[i] = strdup(autoretry[i])) != NULL;
        ok = ok && types;
    }
    if (!ok)
        release_strings(d);
    return ok ? CEL_OK : CEL_ENOMEM;
}

static bool tri_ok(int v)
{
    return v == CEL_TRI_DEFAULT || v == CEL_TRI_ON || v == CEL_TRI_OFF;
}

/* The options of a definition that no default can stand in for. */
static int check_options(cel_registry *reg, const cel_task_def *d)
{
    const char *why = NULL;
    if (d->reserved != 0)
        why = "the reserved field must be 0 (built against a newer header?)";
    /* `!(x >= 0)` also refuses NaN */
    else if (!(d->default_retry_delay >= 0) || !(d->retry_backoff >= 0) ||
             !(d->retry_backoff_max >= 0) || !(d->time_limit >= 0) || !(d->soft_time_limit >= 0))
        why = "negative (or NaN) retry delay, backoff or time limit";
    else if (d->max_retries < CEL_RETRIES_NONE)
        why = "max_retries takes a count, CEL_RETRIES_DEFAULT, CEL_RETRIES_UNLIMITED or "
              "CEL_RETRIES_NONE";
    else if (!tri_ok(d->acks_late) || !tri_ok(d->reject_on_worker_lost) ||
             !tri_ok(d->track_started) || !tri_ok(d->retry_jitter))
        why = "acks_late, reject_on_worker_lost, track_started and retry_jitter take "
              "CEL_TRI_DEFAULT, CEL_TRI_ON or CEL_TRI_OFF";
    for (size_t i = 0; !why && d->autoretry_for && d->autoretry_for[i]; i++)
        if (!*d->autoretry_for[i])
            why = "autoretry_for holds an empty exception type name";
    return why ? cel__err(&reg->err, CEL_EINVAL, "task '%.100s': %s", d->name, why) : CEL_OK;
}

cel_registry *cel_registry_new(void)
{
    return calloc(1, sizeof(cel_registry));
}

void cel_registry_free(cel_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        release_strings(&reg->defs[i]);
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

/* Reads *def into *out (this library's layout; strings still borrowed). */
static int read_def(cel_registry *reg, const cel_task_def *def, cel_task_def *out)
{
    if (!def)
        return cel__err(&reg->err, CEL_EINVAL, "no task definition");
    if (def->struct_size == TASK_DEF_V1_ABI) {
        const struct task_def_v1 *old = (const void *)def;
        reg->refused_v1 = true;
        return cel__err(&reg->err, CEL_EINVAL,
                        "task '%.100s' is defined with the celeriac 0.1 layout "
                        "(CEL_TASK_DEF_ABI 1): rebuild its module against celeriac >= 0.2, "
                        "defining tasks with CEL_TASK_DEF_INIT",
                        old->name ? old->name : "?");
    }
    char why[CEL_ERRBUF_SIZE - 128];
    *out = (cel_task_def){0}; /* the defaults of fields an older layout lacks */
    int rc = cel__sized_struct_read(out, sizeof *out, def, TASK_DEF_MIN_SIZE, "task definition",
                                    "CEL_TASK_DEF_INIT(...)", why, sizeof why);
    if (rc != CEL_OK) {
        /* the name is in every layout: say which task it is when we can */
        bool named = def->struct_size >= TASK_DEF_MIN_SIZE &&
                     def->struct_size <= CEL_SIZED_STRUCT_MAX && def->name;
        return cel__err(&reg->err, rc, "%s%.100s%s%s", named ? "task '" : "",
                        named ? def->name : "", named ? "': " : "", why);
    }
    if (!out->name || !*out->name)
        return cel__err(&reg->err, CEL_EINVAL, "task definition has no name");
    if (!out->fn)
        return cel__err(&reg->err, CEL_EINVAL, "task '%.100s' has no function", out->name);
    return check_options(reg, out);
}

int cel_registry_add(cel_registry *reg, const cel_task_def *def)
{
    if (!reg)
        return CEL_EINVAL;
    cel__err_clear(&reg->err);
    cel_task_def copy;
    int rc = read_def(reg, def, &copy);
    if (rc != CEL_OK)
        return rc;
    size_t at = 0;
    if (find_index(reg, copy.name, &at) >= 0)
        return cel__err(&reg->err, CEL_EINVAL, "task '%.100s' is registered twice", copy.name);
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        cel_task_def *p = realloc(reg->defs, cap * sizeof *p);
        if (!p)
            return cel__err(&reg->err, CEL_ENOMEM, "out of memory");
        reg->defs = p;
        reg->cap = cap;
    }
    if (copy_strings(&copy) != CEL_OK)
        return cel__err(&reg->err, CEL_ENOMEM, "out of memory");
    memmove(reg->defs + at + 1, reg->defs + at, (reg->n - at) * sizeof *reg->defs);
    reg->defs[at] = copy;
    reg->n++;
    return CEL_OK;
}

int cel_registry_add_many(cel_registry *reg, const cel_task_def *defs, size_t n)
{
    if (!reg)
        return CEL_EINVAL;
    if (n == 0)
        return CEL_OK;
    /* The array's stride is the caller's sizeof, known once the first
     * definition has passed the size checks. */
    int rc = cel_registry_add(reg, defs);
    if (rc != CEL_OK)
        return rc;
    size_t stride = defs->struct_size;
    for (size_t i = 1; i < n; i++) {
        const cel_task_def *d = (const void *)((const char *)defs + i * stride);
        if (d->struct_size != stride)
            return cel__err(&reg->err, CEL_EINVAL,
                            "task definition %zu of %zu has struct_size %u, the first %zu: the "
                            "array is not one made with CEL_TASK_DEF_INIT",
                            i + 1, n, d->struct_size, stride);
        if ((rc = cel_registry_add(reg, d)) != CEL_OK)
            return rc;
    }
    return CEL_OK;
}

const char *cel_registry_errmsg(const cel_registry *reg)
{
    return reg ? reg->err.msg : "";
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
    reg->refused_v1 = false;
    cel__err_clear(&reg->err);
    int rc = init(reg);
    if (rc != CEL_OK || reg->refused_v1) {
        if (reg->refused_v1)
            snprintf(buf, sizeof buf,
                     "task module '%s' was built against celeriac 0.1 (task definition ABI 1), "
                     "whose task definitions this library cannot read: rebuild it against "
                     "celeriac >= 0.2, defining its tasks with CEL_TASK_DEF_INIT",
                     path);
        else
            snprintf(buf, sizeof buf, "task module '%s' failed to register its tasks: %s", path,
                     reg->err.msg[0] ? reg->err.msg : cel_strerror(rc));
        /* Not closed: tasks it registered before the failure point into it. */
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
