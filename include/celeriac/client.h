/*
 * celeriac/client.h - sending tasks and reading their results.
 *
 *     cel_config *cfg = cel_config_new();          // defaults: ./celeriac.db
 *     cel_client *c = cel_client_new(cfg);
 *     if (cel_client_connect(c) != CEL_OK)
 *         fprintf(stderr, "%s\n", cel_client_errmsg(c));
 *     cel_result *r;
 *     cel_client_send(c, "tasks.add", "[2, 3]", NULL, NULL, &r);
 *     if (cel_result_wait(r, 10000) == CEL_OK)
 *         printf("%s\n", cel_result_value_json(r));   // "5"
 *     cel_result_free(r);
 *     cel_client_free(c);
 *     cel_config_free(cfg);
 *
 * Arguments travel as JSON text: args is an array, kwargs an object.
 * Messages are Celery protocol v2, so a Python Celery worker on the same
 * broker runs them too.
 *
 * Ownership: cel_client_new() copies the configuration. A cel_result
 * belongs to the caller (cel_result_free) and must be freed before its
 * client. Strings a cel_result returns are borrowed from it.
 *
 * Thread safety: one thread at a time per client, and a result is used
 * on the thread that uses its client.
 */
#ifndef CELERIAC_CLIENT_H
#define CELERIAC_CLIENT_H

#include <stdbool.h>

#include "celeriac/common.h"
#include "celeriac/config.h"
#include "celeriac/state.h" /* cel_state: what cel_result_state() returns */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_client cel_client;
typedef struct cel_result cel_result;

/*
 * Options for one send. Make them with CEL_SEND_OPTIONS_INIT, which
 * records the size of the struct the caller was compiled with, then set
 * what you need:
 *
 *     cel_send_options o = CEL_SEND_OPTIONS_INIT(.queue = "images", .countdown = 10);
 *
 * Later versions add fields at the end; the rules are cel_task_def's
 * (task.h): an older caller gets defaults for the fields it lacks, a newer
 * caller may leave the fields this library does not know at zero, and
 * options without a struct_size (e.g. zero-initialised) are refused.
 */
typedef struct cel_send_options {
    unsigned struct_size; /* sizeof(cel_send_options) the caller saw; CEL_SEND_OPTIONS_INIT */
    int priority;         /* 0..9; used when has_priority */
    const char *queue;    /* NULL: task_default_queue */
    const char *task_id;  /* NULL: a fresh UUID4 */
    double countdown;     /* seconds from now; 0: run now */
    int has_priority;     /* non-zero: priority is set */
    int ignore_result;    /* non-zero: the worker stores no result */
    /* celeriac 0.3: Celery's per-call options. Times are doubles in
     * seconds; wall-clock times are Unix seconds (UTC), e.g.
     * time(NULL) + 3600.0. Zero means "not set" for each. */
    double eta;             /* run no earlier than this wall time; not with countdown */
    double expires;         /* seconds from now after which the task is not run */
    double expires_at;      /* the same as a wall time; not with expires */
    double time_limit;      /* hard limit of the run (header timelimit[0]) */
    double soft_time_limit; /* soft limit (header timelimit[1]) */
    double retry_backoff;   /* base of exponential retry delays, seconds (header
                               celeriac_retry_backoff) */
    int max_retries;        /* retries allowed; used when has_max_retries (header
                               celeriac_max_retries; 0: never retry) */
    int has_max_retries;    /* non-zero: max_retries is set */
} cel_send_options;

/* Designated initialisers for the fields to set; the rest are zero. */
#define CEL_SEND_OPTIONS_INIT(...)                                                                 \
    {                                                                                              \
        .struct_size = sizeof(cel_send_options), __VA_ARGS__                                       \
    }

/* NULL only when out of memory. Copies `cfg` (NULL: defaults). */
CEL_API cel_client *cel_client_new(const cel_config *cfg);
CEL_API void cel_client_free(cel_client *c);
/* Opens the broker and the result backend named by the configuration. */
CEL_API int cel_client_connect(cel_client *c);
/* Detail of the last failed call on this client; "" when none. */
CEL_API const char *cel_client_errmsg(const cel_client *c);

/*
 * Publishes one task.
 * A countdown or eta travels as Celery's `eta` header, so any Celery
 * worker on the queue honours it. On Redis the message goes straight to
 * its queue (a celeriac worker that gets it early parks it broker-side);
 * on SQLite, which only celeriac workers read, it is also stored with its
 * due time so no worker sees it early. `args_json` is a JSON array ("[2, 3]"; NULL: "[]"),
 * `kwargs_json` a JSON object (NULL: "{}"). `opts` may be NULL (all
 * defaults); CEL_EINVAL when it was not made with CEL_SEND_OPTIONS_INIT
 * or sets fields this library does not know. When
 * `out` is not NULL it receives a caller-owned result handle.
 */
CEL_API int cel_client_send(cel_client *c, const char *task_name, const char *args_json,
                            const char *kwargs_json, const cel_send_options *opts,
                            cel_result **out);

/*
 * Batching: between begin and flush, sends are buffered and reach the
 * broker together (one transaction or pipeline) at flush. Tasks are not
 * visible to workers before the flush.
 */
CEL_API int cel_client_begin(cel_client *c);
CEL_API int cel_client_flush(cel_client *c);

/* A handle for an existing task id (e.g. printed by `celeriac call`). */
CEL_API int cel_client_result(cel_client *c, const char *task_id, cel_result **out);

/* Removes every message from `queue` (NULL: default queue); *removed may be NULL. */
CEL_API int cel_client_purge(cel_client *c, const char *queue, size_t *removed);

/*
 * Revoking: tasks that must not run, or must stop. Make the options with
 * CEL_REVOKE_OPTIONS_INIT (the sizing rules of cel_send_options):
 *
 *     cel_revoke_options o = CEL_REVOKE_OPTIONS_INIT(.terminate = 1);
 *     cel_client_revoke(c, ids, 2, &o);
 *
 * A revoked task that has not started never runs: workers settle it as
 * REVOKED (TaskRevokedError). The revoke is stored on the broker side
 * until it expires, so a worker started later still skips the task, and
 * broadcast like Celery's app.control.revoke(), so running workers,
 * Python ones included, learn it at once. With terminate, a worker
 * running the task kills the process running it with `signal_name`
 * (NULL: "SIGTERM"; also "KILL", "SIGUSR1", "9") and stores REVOKED.
 */
typedef struct cel_revoke_options {
    unsigned struct_size;    /* sizeof(cel_revoke_options); CEL_REVOKE_OPTIONS_INIT */
    int terminate;           /* non-zero: also stop it if it is running */
    const char *signal_name; /* with terminate; NULL: "SIGTERM" */
    double expires;          /* seconds the revoke lasts; 0: worker_revoke_expires (3 h) */
} cel_revoke_options;

#define CEL_REVOKE_OPTIONS_INIT(...)                                                               \
    {                                                                                              \
        .struct_size = sizeof(cel_revoke_options), __VA_ARGS__                                     \
    }

/* Revokes ids[0..n). `opts` may be NULL (no terminate, default expiry).
 * CEL_EINVAL for no ids, an unknown signal or a negative expiry. */
CEL_API int cel_client_revoke(cel_client *c, const char *const *ids, size_t n,
                              const cel_revoke_options *opts);

CEL_API void cel_result_free(cel_result *r);
CEL_API const char *cel_result_id(const cel_result *r);
/* Fetches the current state from the backend (no waiting). */
CEL_API int cel_result_refresh(cel_result *r);
/* Waits until the task reaches a ready state. CEL_ETIMEDOUT after
 * timeout_ms (negative: wait forever); then cel_client_errmsg() says
 * when the task was never taken from its queue (see
 * cel_result_unclaimed_queue()). CEL_OK also for a FAILURE: look at
 * cel_result_state(). */
CEL_API int cel_result_wait(cel_result *r, int64_t timeout_ms);
/*
 * After a cel_result_wait() that timed out with the task PENDING: the
 * queue where its message still sits, never taken by any worker, or NULL
 * when it is not there (a worker has it, it finished, its countdown has
 * not run out) or the store cannot see its queues. Only the SQLite store
 * can (it holds the queue itself); with Redis results this is NULL.
 * When `consumed` is not NULL it receives whether workers hold other
 * messages of that queue right now (a backlog) rather than none at all
 * (no worker consumes that queue). Borrowed from `r` until its next call.
 */
CEL_API const char *cel_result_unclaimed_queue(const cel_result *r, bool *consumed);
/* State as of the last refresh or wait. */
CEL_API cel_state cel_result_state(const cel_result *r);
CEL_API const char *cel_result_state_name(const cel_result *r);
/* The `result` field as JSON text ("5", "null", exception object). */
CEL_API const char *cel_result_value_json(const cel_result *r);
/* For FAILURE/RETRY/REVOKED: exception type and message; NULL otherwise. */
CEL_API const char *cel_result_exc_type(const cel_result *r);
CEL_API const char *cel_result_exc_message(const cel_result *r);
CEL_API const char *cel_result_traceback(const cel_result *r);
/* The whole stored meta document (Celery's celery-task-meta format). */
CEL_API const char *cel_result_meta_json(const cel_result *r);
/* --- retries ---------------------------------------------------
 * The `retries` header of the run that stored the current state: 0 for
 * the first run, n for the n-th retry. celeriac workers store it once a
 * task has retried (RETRY states, and the outcome of a retried run), as
 * Celery's result_extended does; -1 when the meta does not say. */
CEL_API int cel_result_retries(const cel_result *r);

/* Deletes the stored result. */
CEL_API int cel_result_forget(cel_result *r);

#ifdef __cplusplus
}
#endif
#endif
