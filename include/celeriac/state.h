/*
 * celeriac/state.h - task states, with Celery's names.
 *
 * A result's state as the backends store it and cel_result_state()
 * reports it. Included by celeriac/client.h; a program that only needs
 * the names may include this header alone.
 *
 * Thread safety: every function here is pure and may be called from any
 * thread.
 */
#ifndef CELERIAC_STATE_H
#define CELERIAC_STATE_H

#include <stdbool.h>

#include "celeriac/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Task states, with Celery's names (cel_state_name). */
typedef enum {
    CEL_STATE_PENDING = 0, /* unknown id, or waiting in a queue */
    CEL_STATE_RECEIVED,    /* taken by a worker */
    CEL_STATE_STARTED,     /* running */
    CEL_STATE_RETRY,
    CEL_STATE_SUCCESS,
    CEL_STATE_FAILURE,
    CEL_STATE_REVOKED,
    CEL_STATE_CUSTOM, /* a state set by the task itself (e.g. PROGRESS) */
} cel_state;

/* A static string: "SUCCESS", ..., "CUSTOM"; "UNKNOWN" outside the enum. */
CEL_API const char *cel_state_name(cel_state s);
/* CEL_STATE_CUSTOM for names that are not one of the standard states. */
CEL_API cel_state cel_state_parse(const char *name);
/* SUCCESS, FAILURE and REVOKED end a wait. */
CEL_API bool cel_state_is_ready(cel_state s);

#ifdef __cplusplus
}
#endif

#endif
