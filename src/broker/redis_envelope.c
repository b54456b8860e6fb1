/*
 * redis_envelope.c - what the Redis transport writes back about a
 * message it delivered: kombu's restore (reject with requeue, the
 * visibility sweep, close).
 *
 * Restores RPUSH the envelope with "redelivered": true in headers and
 * delivery_info, to the front of its queue, into the band of its
 * priority (kombu >= 5.4; 5.2 used band 0), and count the restore in
 * celeriac.deliveries.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "broker/redis_internal.h"
#include "core/json_util.h"

/* The envelope with "redelivered": true in headers and in
 * properties.delivery_info (kombu's restore). *priority gets
 * properties.priority. NULL when it is not a JSON object: the text is
 * then restored as it is. */
static char *mark_redelivered(const char *env, size_t len, int *priority)
{
    *priority = 0;
    json_t *root = json_loadb(env, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    json_t *headers = json_object_get(root, "headers");
    if (json_is_object(headers))
        json_object_set_new(headers, "redelivered", json_true());
    json_t *props = json_object_get(root, "properties");
    if (json_is_object(props)) {
        json_t *pr = json_object_get(props, "priority");
        if (json_is_integer(pr))
            *priority = (int)json_integer_value(pr);
        json_t *di = json_object_get(props, "delivery_info");
        if (json_is_object(di))
            json_object_set_new(di, "redelivered", json_true());
    }
    char *out = cel__json_dump(root);
    json_decref(root);
    return out;
}

int cel__redis_add_restore(struct cel_redis_cmds *q, const char *sha, const char *tag,
                           const char *queue, const char *env, size_t len, const char *max_score)
{
    int priority = 0;
    char *marked = mark_redelivered(env, len, &priority);
    char key[CEL_REDIS_KEY_MAX];
    if (!cel__redis_band_key(queue, cel__redis_band_of(priority), key, sizeof key)) {
        free(marked);
        return CEL_EINVAL;
    }
    const char *argv[] = {"EVALSHA",
                          sha,
                          "4",
                          CEL_REDIS_KEY_UNACKED,
                          CEL_REDIS_KEY_UNACKED_INDEX,
                          key,
                          CEL_REDIS_KEY_DELIVERIES,
                          tag,
                          marked ? marked : env,
                          max_score};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = strlen(argv[i]);
    if (!marked)
        lens[8] = len;
    int rc = cel__redis_cmds_add(q, 10, argv, lens);
    free(marked);
    return rc;
}
