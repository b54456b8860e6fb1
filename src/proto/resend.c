/* resend.c - see resend.h. */
#include "proto/resend.h"

#include <stdbool.h>
#include <string.h>

#include "core/json_util.h"

char *cel__message_resend(const struct cel_message *m, const char *delivery_tag,
                          json_t *set_headers, size_t *len)
{
    if (!m->root || !json_is_object(json_object_get(m->root, "headers"))) {
        json_decref(set_headers);
        return NULL;
    }
    json_t *root = json_deep_copy(m->root);
    json_t *headers = json_object_get(root, "headers");
    json_t *props = json_object_get(root, "properties");
    bool ok = headers != NULL;
    if (ok && set_headers)
        ok = json_object_update(headers, set_headers) == 0;
    json_decref(set_headers);
    json_object_del(headers, "redelivered");
    if (json_is_object(props)) {
        ok = ok && json_object_set_new(props, "delivery_tag", json_string(delivery_tag)) == 0;
        json_object_del(json_object_get(props, "delivery_info"), "redelivered");
    }
    char *text = ok ? cel__json_dump(root) : NULL;
    json_decref(root);
    if (text && len)
        *len = strlen(text);
    return text;
}
