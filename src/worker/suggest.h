/*
 * suggest.h - "did you mean": the registered task name nearest to one a
 * worker does not have, and remembering which unknown names it has
 * already reported.
 *
 * A task that reaches a worker that lacks it is usually a typo in the
 * caller ("tasks.ad"), a module not deployed, or a Python task on a
 * queue shared with Python workers. The last is normal traffic, so the
 * worker says so once per name rather than once per message.
 */
#ifndef CEL_WORKER_SUGGEST_H
#define CEL_WORKER_SUGGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "celeriac/task.h"

/* Levenshtein distance between a and b (bytes), or limit + 1 when it is
 * larger than limit (the walk stops early). */
size_t cel__edit_distance(const char *a, const char *b, size_t limit);

/*
 * The name in `reg` nearest to `name`: a registered name that ends with
 * "." + name ("add" for "tasks.add"), else the one at the smallest edit
 * distance when that is at most a third of the name's length (at least
 * 1, at most 3). NULL when none is near. Borrowed from the registry.
 */
const char *cel__suggest_task(const cel_registry *reg, const char *name);

/*
 * True the first time a name is seen by this process (thread-safe),
 * false afterwards. After CEL_SUGGEST_SEEN_MAX names, new names are
 * reported as seen: a producer sending random names must not grow the
 * worker's memory.
 */
#define CEL_SUGGEST_SEEN_MAX 1024
bool cel__unregistered_first_seen(const char *name);

#endif
