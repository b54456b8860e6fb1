/* banner.c - the start banner, shaped like Celery's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "core/url.h"
#include "worker/autoscale.h"
#include "worker/worker_internal.h"

char *cel_worker_banner(const cel_worker *w)
{
    if (!w)
        return NULL;
    char broker[512], results[512];
    const char *b = cel_config_get(w->cfg, "broker_url");
    const char *r = cel_config_get(w->cfg, "result_backend");
    cel__url_redact(b ? b : "", broker, sizeof broker);
    cel__url_redact(r && *r ? r : (b ? b : ""), results, sizeof results);
    struct utsname un;
    if (uname(&un) != 0)
        memset(&un, 0, sizeof un);

    size_t cap = 4096 + cel_registry_count(w->reg) * 160 + w->nqueues * 160;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = 0;
#define BANNER(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
    BANNER(" -------------- %s v%s\n", w->hostname[0] ? w->hostname : "celeriac",
           cel_version_string());
    BANNER("--- ***** ----- %s-%s %s\n", un.sysname, un.release, un.machine);
    BANNER("- ** ---------- [config]\n");
    BANNER("- ** ---------- .> transport:   %s\n", broker);
    BANNER("- ** ---------- .> results:     %s\n", results);
    struct cel_autoscale_info as;
    if (cel__autoscale_info(w, &as))
        BANNER("- *** --- * --- .> concurrency: {min=%d, max=%d} (%s)\n", as.min, as.max,
               w->pool_ops ? w->pool_ops->name : "?");
    else
        BANNER("- *** --- * --- .> concurrency: %d (%s)\n", w->concurrency,
               w->pool_ops ? w->pool_ops->name : "?");
    BANNER("-- ******* ---- .> prefetch:    %zu messages (x%d for sub-ms tasks), %s ack\n",
           w->prefetch_limit, CEL_SHORT_TASK_PREFETCH_BOOST, w->acks_late ? "late" : "early");
    BANNER("--- ***** ----- [queues]\n");
    for (size_t i = 0; i < w->nqueues; i++)
        BANNER(" -------------- .> %s\n", w->queues[i]);
    BANNER("\n[tasks]\n");
    for (size_t i = 0; i < cel_registry_count(w->reg); i++)
        BANNER("  . %s\n", cel_registry_at(w->reg, i)->name);
#undef BANNER
    if (n >= cap)
        out[cap - 1] = '\0';
    return out;
}
