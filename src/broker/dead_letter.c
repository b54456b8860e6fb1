/* dead_letter.c - what every transport's dead-letter ops (broker.h)
 * share: releasing entries, and reading the task id and priority of a
 * kept envelope. */
#include "broker/dead_letter.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_parse.h"

void cel__dead_letter_release(struct cel_dead_letter *d)
{
    if (!d)
        return;
    free(d->id);
    free(d->queue);
    free(d->task_id);
    free(d->reason);
    free(d->body);
    memset(d, 0, sizeof *d);
}

void cel__dead_letters_free(struct cel_dead_letter *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        cel__dead_letter_release(&v[i]);
    free(v);
}

void cel__dead_envelope_fields(const char *env, size_t len, char **task_id, int *priority)
{
    if (task_id)
        *task_id = NULL;
    if (priority)
        *priority = 0;
    json_t *root = env ? cel__json_parse(env, len, 0, NULL, 0) : NULL;
    const char *id = json_string_value(json_object_get(json_object_get(root, "headers"), "id"));
    json_t *p = json_object_get(json_object_get(root, "properties"), "priority");
    if (task_id && id)
        *task_id = strdup(id);
    if (priority && json_is_integer(p))
        *priority = (int)json_integer_value(p);
    json_decref(root);
}
