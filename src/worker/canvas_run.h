/*
 * canvas_run.h - workflows in the process that runs tasks: what a
 * finished task hands on (its callbacks, the next link of its chain, its
 * errbacks, its chord join), the built-in celery.* tasks a Python client
 * may send, and sending or replacing from inside a task
 * (cel_task_send_json, cel_task_replace_json in celeriac/task.h).
 *
 * Everything goes out through the run's io hooks, so it is published
 * with the task's ack (execute.h).
 */
#ifndef CEL_WORKER_CANVAS_RUN_H
#define CEL_WORKER_CANVAS_RUN_H

#include <stdbool.h>

#include "celeriac/task.h"

struct cel_task;

/* The built-in task of that name (celery.map, celery.starmap,
 * celery.chunks, celery.group, celery.chain, celery.chord,
 * celery.accumulate, celery.backend_cleanup, celery.chord_unlock), or NULL. They are looked up
 * only when the registry has no task of that name, so they never show in
 * the banner or `registered`. */
const cel_task_def *cel__canvas_builtin(const char *name);

/*
 * After a run that ended (not retried, not replaced): on success publish
 * the follow-ups of its message with its result, on failure its errbacks;
 * a chord header member then joins its chord. The ids of what went out
 * are added to t->children. Problems are logged: the task's own outcome
 * stands.
 */
void cel__canvas_after_run(struct cel_task *t, bool succeeded);

struct cel_canvas_plan;
/* Publishes a plan (chord sizes, then messages) with this task's ack and
 * records its messages among t->children. CEL_EIO when the worker did
 * not take them. */
int cel__canvas_publish_plan(struct cel_task *t, const struct cel_canvas_plan *p);

/* celery.chord_unlock (chord_unlock.c). */
int cel__builtin_chord_unlock(cel_task *t, void *ud);

#endif
