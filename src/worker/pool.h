/*
 * pool.h - where tasks run, behind one ops table.
 *
 *   prefork (pool_prefork.c, child.c): forked children, tasks and
 *            outcomes over non-blocking socketpairs; a crashing task
 *            costs a child, never the worker.
 *   solo    (pool_solo.c): tasks run in the worker process, one at a
 *            time, between loop turns.
 *
 * A pool takes messages from the worker's ready queue (w->held) when it
 * has room, and reports each one back exactly once through
 * cel__consumer_on_outcome() or cel__consumer_on_lost(), or gives it
 * back with cel__consumer_requeue().
 */
#ifndef CEL_WORKER_POOL_H
#define CEL_WORKER_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "celeriac/task.h"

typedef struct cel_worker cel_worker;
struct cel_inflight;

/* Common head of every pool; pools embed it first. */
struct cel_pool {
    const struct cel_pool_ops *ops;
    cel_worker *w;
};

struct cel_pool_ops {
    const char *name;
    int (*start)(cel_worker *w, struct cel_pool **out);
    /* Takes ready messages while there is room (end of every loop turn). */
    void (*dispatch)(struct cel_pool *p);
    /* Whether tasks are running or queued in the pool. */
    bool (*busy)(const struct cel_pool *p);
    /* Whether a worker process is about to run out of work (so results
     * and refills must not wait to share a round trip). */
    bool (*hungry)(const struct cel_pool *p);
    /* Stop level rose: warm stops taking; cold kills what runs. */
    void (*stop)(struct cel_pool *p, bool cold);
    /* Pool processes are all gone (after stop). */
    bool (*stopped)(const struct cel_pool *p);
    /* Frees the pool; its uv handles are closed (run the loop to finish). */
    void (*free)(struct cel_pool *p);
    /* Revoke with terminate: sends `signum` to the process running f.
     * False when the pool cannot (f is not running, or solo, which runs
     * tasks in the worker itself). The death is then reported as any
     * other (cel__consumer_on_lost) and the process replaced. */
    bool (*terminate)(struct cel_pool *p, struct cel_inflight *f, int signum);
    /* Optional (NULL: a fixed size, e.g. solo). Runtime size for
     * pool_grow / pool_shrink / autoscale: the number of processes wanted
     * from now on (>= 1). Grows at once; shrinks by retiring idle
     * processes first and busy ones after their current task, so nothing
     * is lost or run twice. */
    int (*resize)(struct cel_pool *p, int processes);
    /* The number of processes wanted now (concurrency after resizes). */
    int (*size)(const struct cel_pool *p);
    /* The pids of its live processes into out[0..max); returns how many
     * there are (may exceed max). Solo: the worker's own pid. */
    size_t (*pids)(const struct cel_pool *p, int *out, size_t max);
    /* Optional, with resize: how many of its processes have a task now,
     * running or queued (autoscale's measure of the work in the pool). */
    int (*occupied)(const struct cel_pool *p);
};

extern const struct cel_pool_ops cel__pool_prefork;
extern const struct cel_pool_ops cel__pool_solo;

/* The prefork child's side (child.c): runs TASK frames from fd until the
 * parent closes it. Never returns. Once *retire (memory shared with the
 * parent; NULL: none) is non-zero, it runs no further task and answers
 * each with a RETURNED frame. */
struct cel_exec_env;
void cel__child_main(const struct cel_exec_env *env, int fd, const atomic_int *retire)
    __attribute__((noreturn));

#endif
