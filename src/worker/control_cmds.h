/*
 * control_cmds.h - the worker's answers to remote control commands
 * (Celery's pidbox methods, reference/celery-protocol.md section 9.5).
 *
 * Loop thread only: every handler reads or changes the worker's state
 * directly and returns at once; nothing here waits on the broker. A
 * handler returns the value under the node's name in the reply (a new
 * reference; NULL is JSON null). Lists are cut at CEL_CONTROL_LIST_MAX
 * entries so that one request costs a bounded amount of work.
 *
 * control_cmds.c holds the table and the commands that change things;
 * control_inspect.c the ones that describe the worker and its tasks.
 */
#ifndef CEL_WORKER_CONTROL_CMDS_H
#define CEL_WORKER_CONTROL_CMDS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "proto/control.h"

#define CEL_CONTROL_LIST_MAX 10000

typedef struct cel_worker cel_worker;
struct cel_inflight;

/* What inspection reports that the worker does not keep otherwise
 * (loop thread; control_inspect.c). */
struct cel_task_total {
    char *name; /* NULL: empty slot */
    unsigned long long n;
};
struct cel_parked_task {
    json_t *request; /* request dict */
    char *task_id;
    int64_t eta_us; /* wall */
    int priority;
};
struct cel_control_state {
    struct cel_task_total *totals; /* open addressing, power-of-two capacity */
    size_t cap, count;
    struct cel_parked_task *parked; /* oldest first, at most CEL_CONTROL_LIST_MAX */
    size_t nparked, capparked;
};
/* w->cstate, made on first use; NULL when out of memory. */
struct cel_control_state *cel__control_state(cel_worker *w);

/* Answers rq. *reply is set false for a command that must not be
 * answered (shutdown, hello from ourselves). */
json_t *cel__control_dispatch(cel_worker *w, const struct cel_control_request *rq, bool *reply);

/* {"ok": text} / {"error": text}. */
json_t *cel__control_ok(const char *text);
json_t *cel__control_error(const char *text);

/* ---- control_inspect.c ---- */
json_t *cel__inspect_active(cel_worker *w, const json_t *args);
json_t *cel__inspect_reserved(cel_worker *w, const json_t *args);
json_t *cel__inspect_scheduled(cel_worker *w, const json_t *args);
json_t *cel__inspect_query_task(cel_worker *w, const json_t *args);
json_t *cel__inspect_stats(cel_worker *w, const json_t *args);
json_t *cel__inspect_registered(cel_worker *w, const json_t *args);
json_t *cel__inspect_active_queues(cel_worker *w, const json_t *args);
json_t *cel__inspect_conf(cel_worker *w, const json_t *args);
json_t *cel__inspect_report(cel_worker *w, const json_t *args);
json_t *cel__inspect_memsample(cel_worker *w, const json_t *args);
/* A kombu Queue dict for a queue named `name` (active_queues). */
json_t *cel__inspect_queue_dict(const char *name);

#endif
