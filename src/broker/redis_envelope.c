/*
 * redis_envelope.c - what the Redis transport writes back about a
 * message it delivered: kombu's restore (reject with requeue, the
 * visibility sweep, close), the dead-letter record, and reading an
 * unacked record back byte for byte.
 *
 * Restores RPUSH the envelope with "redelivered": true in headers and
 * delivery_info, to the front of its queue, into the band of its
 * priority (kombu >= 5.4; 5.2 used band 0), and count the restore in
 * celeriac.deliveries.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/redis_internal.h"
#include "core/base64.h"
#include "core/json_util.h"

/* The envelope with "redelivered": true in headers and in
 * properties.delivery_info (kombu's restore). *priority gets
 * properties.priority. NULL when it is not a JSON object: the text is
 * then restored as it is. */
static char *mark_redelivered(const char *env, size_t len, int *priority)
{
    *priority = 0;
    /* The limits are the message parser's defaults: an envelope past them
     * was never a task the worker could run, and is restored unchanged. */
    json_t *root = cel__json_parse(env, len, 0, NULL, 0);
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

/* The restored envelope (*marked, caller frees; NULL: send env as it
 * is) and the list key of its priority band. CEL_EINVAL when the queue
 * name is too long. */
static int restored(const char *queue, const char *env, size_t len, char **marked, int *priority,
                    char key[CEL_REDIS_KEY_MAX])
{
    *marked = mark_redelivered(env, len, priority);
    if (!cel__redis_band_key(queue, cel__redis_band_of(*priority), key, CEL_REDIS_KEY_MAX)) {
        free(*marked);
        *marked = NULL;
        return CEL_EINVAL;
    }
    return CEL_OK;
}

int cel__redis_add_restore(struct cel_redis_cmds *q, const char *sha, const char *tag,
                           const char *queue, const char *env, size_t len, const char *max_score)
{
    int priority = 0;
    char *marked;
    char key[CEL_REDIS_KEY_MAX];
    if (restored(queue, env, len, &marked, &priority, key) != CEL_OK)
        return CEL_EINVAL;
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

char *cel__redis_delayed_member(const char *key, const char *queue, int priority, const char *body,
                                size_t len, bool *bad_utf8)
{
    json_t *m =
        json_pack("{s:s, s:s, s:i, s:s%}", "k", key, "q", queue, "p", priority, "m", body, len);
    *bad_utf8 = !m;
    char *member = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    return member;
}

int cel__redis_add_restore_at(struct cel_redis_cmds *q, const char *sha, const char *tag,
                              const char *queue, const char *env, size_t len, int64_t due_us)
{
    int priority = 0;
    char *marked;
    char key[CEL_REDIS_KEY_MAX];
    if (restored(queue, env, len, &marked, &priority, key) != CEL_OK)
        return CEL_EINVAL;
    bool bad;
    char *member = cel__redis_delayed_member(key, queue, priority, marked ? marked : env,
                                             marked ? strlen(marked) : len, &bad);
    free(marked);
    if (!member)
        return bad ? CEL_EINVAL : CEL_ENOMEM;
    char score[32];
    snprintf(score, sizeof score, "%lld", (long long)(due_us / 1000));
    const char *argv[] = {"EVALSHA",
                          sha,
                          "4",
                          CEL_REDIS_KEY_UNACKED,
                          CEL_REDIS_KEY_UNACKED_INDEX,
                          CEL_REDIS_KEY_DELAYED,
                          CEL_REDIS_KEY_DELIVERIES,
                          tag,
                          member,
                          score};
    int rc = cel__redis_cmds_addv(q, 10, argv);
    free(member);
    return rc;
}

/* {"queue", "reason", "delivery_tag" (when known), "dead_at", and
 * "message": the text, or "message_base64" when the bytes are not UTF-8
 * (JSON strings cannot carry them, and an operator needs them as they
 * were). Caller frees; NULL when out of memory. */
static char *dead_letter_record(const char *queue, const char *reason, const char *tag,
                                const char *body, size_t len)
{
    char score[32];
    cel__redis_now_score(score, sizeof score);
    json_t *rec = json_pack("{s:s, s:s, s:s}", "queue", queue, "reason", reason, "dead_at", score);
    if (rec && tag)
        json_object_set_new(rec, "delivery_tag", json_string(tag));
    json_t *text = rec ? json_stringn(body, len) : NULL; /* NULL also when not UTF-8 */
    if (text) {
        json_object_set_new(rec, "message", text);
    } else if (rec) {
        char *b64 = malloc(cel__base64_encoded_len(len) + 1);
        if (b64) {
            cel__base64_encode((const unsigned char *)body, len, b64);
            json_object_set_new(rec, "message_base64", json_string(b64));
            free(b64);
        } else {
            json_decref(rec);
            rec = NULL;
        }
    }
    char *out = rec ? cel__json_dump(rec) : NULL;
    json_decref(rec);
    return out;
}

int cel__redis_add_dead_letter(struct cel_redis_cmds *q, const char *queue, const char *reason,
                               const char *tag, const char *body, size_t len)
{
    char *text = dead_letter_record(queue, reason, tag, body, len);
    if (!text)
        return CEL_ENOMEM;
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *push[] = {"LPUSH", CEL_REDIS_KEY_DEAD, text};
    const char *zrem[] = {"ZREM", CEL_REDIS_KEY_UNACKED_INDEX, tag};
    const char *hdel[] = {"HDEL", CEL_REDIS_KEY_UNACKED, tag};
    const char *hdel_count[] = {"HDEL", CEL_REDIS_KEY_DELIVERIES, tag};
    int rc = cel__redis_cmds_addv(q, 1, multi);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(q, 3, push);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(q, 3, zrem);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(q, 3, hdel);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(q, 3, hdel_count);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(q, 1, exec);
    free(text);
    return rc;
}

static size_t skip_space_back(const char *t, size_t i)
{
    while (i > 0 && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
        i--;
    return i;
}

/* The JSON string whose closing quote is t[end], decoded into a new
 * string; *start gets the index of its opening quote. NULL when there is
 * none or it does not decode. Inside a JSON string every quote is
 * escaped, so the opening quote is the first one back that is not
 * preceded by an odd run of backslashes. */
static char *string_back(const char *t, size_t end, size_t *start)
{
    if (t[end] != '"')
        return NULL;
    for (size_t i = end; i-- > 0;) {
        if (t[i] != '"')
            continue;
        size_t bs = 0;
        while (bs < i && t[i - 1 - bs] == '\\')
            bs++;
        if (bs % 2)
            continue;
        json_t *v = cel__json_parse(t + i, end - i + 1, 0, NULL, 0);
        const char *s = cel__json_cstr(v);
        char *out = s ? strdup(s) : NULL;
        json_decref(v);
        *start = i;
        return out;
    }
    return NULL;
}

int cel__redis_split_record(const char *rec, size_t len, const char **env, size_t *envlen,
                            char **exchange, char **routing_key)
{
    *exchange = *routing_key = NULL;
    if (len < 2 || rec[0] != '[')
        return CEL_EPROTO;
    size_t i = skip_space_back(rec, len - 1);
    size_t at;
    if (rec[i] != ']' || i == 0)
        return CEL_EPROTO;
    *routing_key = string_back(rec, skip_space_back(rec, i - 1), &at);
    if (*routing_key && at > 0 && rec[i = skip_space_back(rec, at - 1)] == ',' && i > 0)
        *exchange = string_back(rec, skip_space_back(rec, i - 1), &at);
    if (*exchange && at > 0 && rec[i = skip_space_back(rec, at - 1)] == ',' && i > 1) {
        size_t first = 1, last = skip_space_back(rec, i - 1);
        while (first < last && (rec[first] == ' ' || rec[first] == '\n'))
            first++;
        *env = rec + first;
        *envlen = last + 1 - first;
        return CEL_OK;
    }
    free(*exchange);
    free(*routing_key);
    *exchange = *routing_key = NULL;
    return CEL_EPROTO;
}
