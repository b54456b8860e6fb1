/*
 * celeriac/worker.h - running a worker inside your own program.
 *
 *     cel_registry *reg = cel_registry_new();
 *     cel_registry_add(reg, &my_task_def);
 *     cel_worker *w = cel_worker_new(cfg, reg);
 *     int rc = cel_worker_run(w);      // returns after warm/cold shutdown
 *
 * The worker installs handlers for SIGTERM (warm shutdown), SIGINT (warm,
 * a second one cold), SIGQUIT (cold) and SIGCHLD while it runs, and
 * restores the previous ones when it returns. With the prefork pool it
 * forks children; the calling process must not hold locks other threads
 * need across fork().
 *
 * Ownership: cel_worker_new() copies the configuration; the registry is
 * borrowed and must outlive the worker.
 */
#ifndef CELERIAC_WORKER_H
#define CELERIAC_WORKER_H

#include "celeriac/common.h"
#include "celeriac/config.h"
#include "celeriac/task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_worker cel_worker;

CEL_API cel_worker *cel_worker_new(const cel_config *cfg, const cel_registry *reg);
CEL_API void cel_worker_free(cel_worker *w);
/* Connects, prints nothing (logs the banner at INFO), consumes until
 * shutdown. CEL_OK after a clean shutdown. */
CEL_API int cel_worker_run(cel_worker *w);
/* Asks a running worker to shut down: warm (finish running tasks) or
 * cold. Async-signal-safe. */
CEL_API void cel_worker_stop(cel_worker *w, int cold);
CEL_API const char *cel_worker_errmsg(const cel_worker *w);
/* The start banner (node name, broker, results, concurrency, queues,
 * registered tasks) as text; caller frees with cel_free(). */
CEL_API char *cel_worker_banner(const cel_worker *w);

#ifdef __cplusplus
}
#endif
#endif
