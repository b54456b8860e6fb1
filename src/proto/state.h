/*
 * state.h - Celery's task states by name: the one table.
 *
 * States are part of the protocol: a result meta document carries its
 * state as Celery's name ("SUCCESS", or a task's own "PROGRESS"), and
 * the worker that writes it, the result stores that guard it and the
 * client that reads it must agree on the names and on which are ready.
 * The public enum and cel_state_name/parse/is_ready (celeriac/state.h)
 * are implemented here, below every layer that needs them, so that no
 * store has to reach up into client/ or keep a table of its own.
 */
#ifndef CEL_PROTO_STATE_H
#define CEL_PROTO_STATE_H

#include <stdbool.h>

#include "celeriac/state.h"

/* Celery's name of a standard state; NULL for CEL_STATE_CUSTOM and for
 * values outside the enum, whose name only the meta document knows. */
const char *cel__state_std_name(cel_state s);

/* Whether a status text is a ready state (SUCCESS, FAILURE, REVOKED).
 * A custom state never is; NULL is not either. */
bool cel__state_name_is_ready(const char *name);

#endif
