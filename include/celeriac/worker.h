/*
 * celeriac/worker.h - running a worker inside your own program.
 *
 *     cel_registry *reg = cel_registry_new();
 *     cel_registry_add(reg, &my_task_def);
 *     cel_worker *w = cel_worker_new(cfg, reg);
 *     int rc = cel_worker_run(w);      // returns after warm/cold shutdown
 *
 * The worker installs handlers for SIGTERM (warm shutdown), SIGINT (warm,
 * a second one cold), SIGQUIT (cold; with worker_soft_shutdown_timeout
 * the running tasks get that long to finish first), SIGHUP (a warm
 * shutdown, then cel_worker_restart_requested() is true: the program
 * decides whether to start again; `celeriac worker` execs itself),
 * SIGUSR1 (logs the running tasks and native backtraces, keeps running)
 * and SIGCHLD while it runs, and restores the previous ones when it
 * returns. With the prefork pool it
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
/* Whether the last run ended because of SIGHUP: a restart was asked for
 * (the run still was a complete warm shutdown). */
CEL_API int cel_worker_restart_requested(const cel_worker *w);
/* The node name the worker answers to (worker_hostname expanded, see
 * cel_nodename_expand()); NULL when the configuration was rejected
 * (cel_worker_run() then returns that error at once, touching nothing). */
CEL_API const char *cel_worker_nodename(const cel_worker *w);

/*
 * Node names, as Celery's `-n` (celery.utils.nodenames):
 *
 * cel_nodename_expand(): "" is "celeriac@<host>"; a name without '@' is
 * the host part ("-n w1" is "celeriac@w1"); then %h expands to the host
 * name (with its domain), %n to the host name without its domain, %d to
 * the domain, %i to "0" and %I to "" (the main process's index). `host`
 * NULL or "" means this machine's gethostname().
 *
 * cel_node_format(), for file names (--pidfile, --logfile): %n is the
 * node name's name part, %h its host part, %d that host's domain, %p the
 * whole node name, %i "0" and %I "".
 *
 * Both: '%' before a letter, a digit or '_' that is not one of those is
 * CEL_EINVAL; other '%' stay as they are. CEL_ETOOBIG when out (len
 * bytes, NUL included) is too small.
 */
CEL_API int cel_nodename_expand(const char *pattern, const char *host, char *out, size_t len);
CEL_API int cel_node_format(const char *pattern, const char *nodename, char *out, size_t len);

/* The start banner (node name, broker, results, concurrency, queues,
 * registered tasks) as text; caller frees with cel_free(). */
CEL_API char *cel_worker_banner(const cel_worker *w);

#ifdef __cplusplus
}
#endif
#endif
