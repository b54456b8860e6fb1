/* state.c - see state.h. */
#include "proto/state.h"

#include <string.h>

static const char *const state_names[] = {
    [CEL_STATE_PENDING] = "PENDING", [CEL_STATE_RECEIVED] = "RECEIVED",
    [CEL_STATE_STARTED] = "STARTED", [CEL_STATE_RETRY] = "RETRY",
    [CEL_STATE_SUCCESS] = "SUCCESS", [CEL_STATE_FAILURE] = "FAILURE",
    [CEL_STATE_REVOKED] = "REVOKED", [CEL_STATE_CUSTOM] = "CUSTOM",
};

const char *cel_state_name(cel_state s)
{
    if ((unsigned)s < sizeof state_names / sizeof state_names[0])
        return state_names[s];
    return "UNKNOWN";
}

const char *cel__state_std_name(cel_state s)
{
    return (unsigned)s < CEL_STATE_CUSTOM ? state_names[s] : NULL;
}

cel_state cel_state_parse(const char *name)
{
    if (name) {
        /* CUSTOM is not a real Celery state: a task that calls its state
         * "CUSTOM" is just another custom state. */
        for (int s = CEL_STATE_PENDING; s < CEL_STATE_CUSTOM; s++)
            if (strcmp(name, state_names[s]) == 0)
                return (cel_state)s;
    }
    return CEL_STATE_CUSTOM;
}

bool cel_state_is_ready(cel_state s)
{
    return s == CEL_STATE_SUCCESS || s == CEL_STATE_FAILURE || s == CEL_STATE_REVOKED;
}

bool cel__state_name_is_ready(const char *name)
{
    return cel_state_is_ready(cel_state_parse(name));
}
