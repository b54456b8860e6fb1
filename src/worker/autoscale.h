/*
 * autoscale.h - the pool's size at run time: the pool_grow, pool_shrink
 * and autoscale control commands, and --autoscale MAX,MIN
 * (worker_autoscale).
 *
 * Loop thread only. The control commands reply with what these return:
 * true and *msg for {"ok": msg}, false and *msg for {"error": msg}, the
 * texts Celery's own worker replies with where it has one. msg is always
 * written (NUL-terminated, cut to len).
 *
 * With autoscale on, the prefetch window is MAX x worker_prefetch_multiplier
 * (as Celery's), so that there is work to grow for; otherwise it follows
 * the pool's current size.
 */
#ifndef CEL_WORKER_AUTOSCALE_H
#define CEL_WORKER_AUTOSCALE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cel_worker cel_worker;

/* pool_grow: n (>= 1) more processes, started at once. "pool will grow";
 * refused while autoscale is on (Celery's text: "pool_grow is not
 * supported with autoscale. Adjust autoscale range instead."), by the
 * solo pool, and during shutdown. */
bool cel__pool_grow(cel_worker *w, int n, char *msg, size_t len);
/* pool_shrink: n (>= 1) fewer processes; idle ones go first, busy ones
 * after their current task. "pool will shrink"; refused as pool_grow,
 * and when it would leave no process. */
bool cel__pool_shrink(cel_worker *w, int n, char *msg, size_t len);
/* autoscale: new bounds; max or min < 0 leaves that one as it is. The
 * pool shrinks to a lower max and grows to a higher min at once.
 * "autoscale now max=M min=N"; without --autoscale the error is Celery's
 * "ValueError('Autoscale not enabled')". min above max is refused. */
bool cel__autoscale_set(cel_worker *w, int max, int min, char *msg, size_t len);

/* For stats' "autoscaler" entry (Celery's max, min, current, qty).
 * False when autoscale is off. */
struct cel_autoscale_info {
    int max, min;
    int current; /* processes wanted now (the pool's size) */
    int qty;     /* tasks running or waiting for a process */
};
bool cel__autoscale_info(const cel_worker *w, struct cel_autoscale_info *out);

/* ---- the worker's side (worker.c) ---- */
/* Reads worker_autoscale and worker_autoscale_keepalive (configure()).
 * CEL_OK or CEL_ECONFIG with w->err set. */
int cel__autoscale_configure(cel_worker *w);
/* Its timer on w->loop, once the pool has started; stop closes it. */
void cel__autoscale_start(cel_worker *w);
void cel__autoscale_stop(cel_worker *w);
/* cel_worker_free(). */
void cel__autoscale_free(cel_worker *w);
/* End of every loop turn: grows at once while tasks wait. */
void cel__autoscale_on_turn(cel_worker *w);

#endif
