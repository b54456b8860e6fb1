/* chord.c - what every store's chord join shares (backend.h). */
#include <jansson.h>
#include <string.h>

#include "backend/backend.h"
#include "core/json_parse.h"

int cel__chord_failed_entry(const char *entries_json, size_t len)
{
    json_t *arr = cel__json_parse(entries_json, len, 0, NULL, 0);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return -2;
    }
    int found = -1;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *state = json_string_value(json_array_get(e, 2));
        if (!json_is_array(e) || !state) {
            found = -2;
            break;
        }
        /* Celery's PROPAGATE_STATES. */
        if (strcmp(state, "FAILURE") == 0 || strcmp(state, "REVOKED") == 0) {
            found = (int)i;
            break;
        }
    }
    json_decref(arr);
    return found;
}
