/*
 * result.c - reading task outcomes: cel_result.
 *
 * The backend stores Celery's meta documents; this file turns one into
 * the fields cel_result exposes. An id with no stored meta is PENDING,
 * exactly as Celery reports unknown ids. The state names themselves are
 * the protocol's (proto/state.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "core/clock.h"
#include "core/json_util.h"

static void clear_outcome(struct cel_result *r)
{
    free(r->status);
    free(r->meta_json);
    free(r->value_json);
    free(r->exc_type);
    free(r->exc_message);
    free(r->traceback);
    r->status = r->meta_json = r->value_json = NULL;
    r->exc_type = r->exc_message = r->traceback = NULL;
    r->state = CEL_STATE_PENDING;
}

struct cel_result *cel__result_new(cel_client *c, const char *task_id)
{
    struct cel_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->client = c;
    r->id = strdup(task_id);
    r->value_json = strdup("null");
    if (!r->id || !r->value_json) {
        cel_result_free(r);
        return NULL;
    }
    return r;
}

static void clear_unclaimed(struct cel_result *r)
{
    free(r->unclaimed_queue);
    r->unclaimed_queue = NULL;
    r->queue_consumed = false;
}

void cel_result_free(cel_result *r)
{
    if (!r)
        return;
    clear_outcome(r);
    clear_unclaimed(r);
    /* --- canvas: group members */
    for (size_t i = 0; i < r->nmembers; i++)
        free(r->members[i]);
    free(r->members);
    /* --- end canvas */
    free(r->id);
    free(r);
}

/* --- canvas: what group_result.c needs of a result's outcome -------- */

void cel__result_move_outcome(struct cel_result *dst, struct cel_result *src)
{
    clear_outcome(dst);
    clear_unclaimed(dst);
    dst->state = src->state;
    dst->status = src->status;
    dst->value_json = src->value_json;
    dst->exc_type = src->exc_type;
    dst->exc_message = src->exc_message;
    dst->traceback = src->traceback;
    dst->unclaimed_queue = src->unclaimed_queue;
    dst->queue_consumed = src->queue_consumed;
    free(src->meta_json);
    src->meta_json = src->status = src->value_json = NULL;
    src->exc_type = src->exc_message = src->traceback = src->unclaimed_queue = NULL;
    src->state = CEL_STATE_PENDING;
}

void cel__result_set_success(struct cel_result *r, char *value_json)
{
    clear_outcome(r);
    clear_unclaimed(r);
    r->state = CEL_STATE_SUCCESS;
    r->value_json = value_json;
}

int cel__result_reset(struct cel_result *r)
{
    clear_outcome(r);
    r->value_json = strdup("null");
    return r->value_json ? CEL_OK : cel__err(&r->client->err, CEL_ENOMEM, "out of memory");
}
/* --- end canvas */

const char *cel_result_id(const cel_result *r)
{
    return r ? r->id : NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* One item of exc_message as Python's str() shows it: strings bare,
 * everything else as JSON. */
static char *item_text(const json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    return cel__json_dump(v);
}

char *cel__join_texts(char *const *parts, size_t n, const char *open, const char *close)
{
    size_t total = strlen(open) + strlen(close) + 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(parts[i]) + 2;
    char *out = malloc(total);
    if (!out)
        return NULL;
    size_t at = strlen(open);
    memcpy(out, open, at);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            memcpy(out + at, ", ", 2);
            at += 2;
        }
        size_t len = strlen(parts[i]);
        memcpy(out + at, parts[i], len);
        at += len;
    }
    strcpy(out + at, close);
    return out;
}

/*
 * Python's str(exc) for exc.args == exc_message: no args give "", one
 * gives str(arg); with several we join the items with ", " (Python shows
 * a tuple repr, which is noisier and no more useful on a terminal).
 */
static char *exc_message_text(const json_t *msg)
{
    if (!msg || json_is_null(msg))
        return strdup("");
    if (!json_is_array(msg))
        return item_text(msg);
    size_t i;
    json_t *v;
    char **parts = calloc(json_array_size(msg) + 1, sizeof *parts);
    if (!parts)
        return NULL;
    bool complete = true;
    json_array_foreach(msg, i, v) if (complete && !(parts[i] = item_text(v))) complete = false;
    char *out = complete ? cel__join_texts(parts, json_array_size(msg), "", "") : NULL;
    for (i = 0; parts[i]; i++)
        free(parts[i]);
    free(parts);
    return out;
}

/* Takes ownership of `meta_json` and fills the outcome fields from it. */
static int adopt_meta(struct cel_result *r, char *meta_json)
{
    clear_outcome(r);
    cel_client *c = r->client;
    if (!meta_json) {
        r->value_json = strdup("null");
        return r->value_json ? CEL_OK : cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }
    r->meta_json = meta_json;

    char why[160];
    json_t *meta =
        cel__json_parse(meta_json, strlen(meta_json), CEL_JSON_MAX_DEPTH, why, sizeof why);
    if (!meta || !json_is_object(meta)) {
        json_decref(meta);
        r->value_json = strdup("null");
        return cel__err(&c->err, CEL_EPROTO, "malformed result for task '%s': %s", r->id,
                        meta ? "not a JSON object" : why);
    }
    const char *status = json_string_value(json_object_get(meta, "status"));
    r->status = strdup(status ? status : "PENDING");
    r->state = cel_state_parse(r->status);

    json_t *result = json_object_get(meta, "result");
    r->value_json = result ? cel__json_dump(result) : strdup("null");

    const char *tb = json_string_value(json_object_get(meta, "traceback"));
    r->traceback = dup_or_null(tb);

    if ((r->state == CEL_STATE_FAILURE || r->state == CEL_STATE_RETRY ||
         r->state == CEL_STATE_REVOKED) &&
        json_is_object(result)) {
        const char *type = json_string_value(json_object_get(result, "exc_type"));
        r->exc_type = strdup(type ? type : "Exception");
        r->exc_message = exc_message_text(json_object_get(result, "exc_message"));
        if (!r->exc_type || !r->exc_message) {
            json_decref(meta);
            return cel__err(&c->err, CEL_ENOMEM, "out of memory");
        }
    }
    json_decref(meta);
    if (!r->status || !r->value_json || (tb && !r->traceback))
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

int cel__client_need_backend(cel_client *c)
{
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    if (!c->backend)
        return cel__err(&c->err, c->backend_rc ? c->backend_rc : CEL_ENORESULT,
                        "no result backend is configured");
    return CEL_OK;
}

int cel_result_refresh(cel_result *r)
{
    if (!r)
        return CEL_EINVAL;
    cel__err_clear(&r->client->err);
    clear_unclaimed(r);
    int rc = cel__client_need_backend(r->client);
    if (rc != CEL_OK)
        return rc;
    if (r->members) /* --- canvas */
        return cel__group_refresh(r);
    struct cel_backend *bk = r->client->backend;
    char *meta = NULL;
    rc = bk->ops->get(bk, r->id, &meta);
    if (rc == CEL_ENOTFOUND)
        return adopt_meta(r, NULL);
    if (rc != CEL_OK) {
        free(meta);
        return cel__err(&r->client->err, rc, "cannot read the result of task '%s': %s", r->id,
                        cel__backend_errmsg(bk));
    }
    return adopt_meta(r, meta);
}

/*
 * After a timed-out wait on a PENDING task: asks a store that holds the
 * queue too where the message is. Only a message that is due, in its
 * queue and never delivered counts as unclaimed: one that a worker took
 * and gave back is a different story, and one whose countdown runs is
 * not late. A store that cannot tell leaves the result as it is.
 */
static void observe_queue(struct cel_result *r)
{
    struct cel_backend *bk = r->client->backend;
    if (!bk->ops->find_message || r->state != CEL_STATE_PENDING)
        return;
    struct cel_task_message m;
    if (bk->ops->find_message(bk, r->id, &m) != CEL_OK)
        return; /* only an explanation: the timeout stands on its own */
    if (m.queue && !m.reserved && m.delivery_count == 0 && m.due_us <= cel__wall_us()) {
        r->unclaimed_queue = m.queue;
        r->queue_consumed = m.queue_consumed;
    } else {
        free(m.queue);
    }
}

int cel_result_wait(cel_result *r, int64_t timeout_ms)
{
    if (!r)
        return CEL_EINVAL;
    cel__err_clear(&r->client->err);
    clear_unclaimed(r);
    int rc = cel__client_need_backend(r->client);
    if (rc != CEL_OK)
        return rc;
    if (r->members) /* --- canvas */
        return cel__group_wait(r, timeout_ms);
    struct cel_backend *bk = r->client->backend;
    char *meta = NULL;
    rc = cel__backend_wait(bk, r->id, timeout_ms, &meta);
    if (rc != CEL_OK && rc != CEL_ETIMEDOUT) {
        free(meta);
        return cel__err(&r->client->err, rc, "cannot wait for task '%s': %s", r->id,
                        cel__backend_errmsg(bk));
    }
    /* Even on a timeout the last state seen (STARTED, PROGRESS, ...) is
     * worth keeping. */
    int arc = adopt_meta(r, meta);
    if (rc != CEL_ETIMEDOUT)
        return arc;
    observe_queue(r);
    if (r->unclaimed_queue)
        return cel__err(&r->client->err, CEL_ETIMEDOUT,
                        "timed out after %lld ms waiting for task '%s' (state %s): it was never "
                        "taken from queue '%s'%s",
                        (long long)timeout_ms, r->id, cel_result_state_name(r), r->unclaimed_queue,
                        r->queue_consumed ? " (workers on that queue are busy with other tasks)"
                                          : "; no worker is consuming that queue");
    return cel__err(&r->client->err, CEL_ETIMEDOUT,
                    "timed out after %lld ms waiting for task '%s' (state %s)",
                    (long long)timeout_ms, r->id, cel_result_state_name(r));
}

const char *cel_result_unclaimed_queue(const cel_result *r, bool *consumed)
{
    if (consumed)
        *consumed = r && r->queue_consumed;
    return r ? r->unclaimed_queue : NULL;
}

cel_state cel_result_state(const cel_result *r)
{
    return r ? r->state : CEL_STATE_PENDING;
}

const char *cel_result_state_name(const cel_result *r)
{
    if (!r)
        return "PENDING";
    return r->status ? r->status : cel_state_name(r->state);
}

const char *cel_result_value_json(const cel_result *r)
{
    return r && r->value_json ? r->value_json : "null";
}

const char *cel_result_exc_type(const cel_result *r)
{
    return r ? r->exc_type : NULL;
}

const char *cel_result_exc_message(const cel_result *r)
{
    return r ? r->exc_message : NULL;
}

const char *cel_result_traceback(const cel_result *r)
{
    return r ? r->traceback : NULL;
}

const char *cel_result_meta_json(const cel_result *r)
{
    return r ? r->meta_json : NULL;
}

int cel_result_retries(const cel_result *r)
{
    if (!r || !r->meta_json)
        return -1;
    json_t *meta = cel__json_parse(r->meta_json, strlen(r->meta_json), CEL_JSON_MAX_DEPTH, NULL, 0);
    json_t *v = json_object_get(meta, "retries");
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(meta);
    return n < 0 ? -1 : n > INT32_MAX ? INT32_MAX : (int)n;
}

int cel_result_forget(cel_result *r)
{
    if (!r)
        return CEL_EINVAL;
    cel__err_clear(&r->client->err);
    int rc = cel__client_need_backend(r->client);
    if (rc != CEL_OK)
        return rc;
    if (r->members) /* --- canvas */
        return cel__group_forget(r);
    struct cel_backend *bk = r->client->backend;
    rc = bk->ops->forget(bk, r->id);
    if (rc != CEL_OK && rc != CEL_ENOTFOUND)
        return cel__err(&r->client->err, rc, "cannot forget the result of task '%s': %s", r->id,
                        cel__backend_errmsg(bk));
    clear_outcome(r);
    r->value_json = strdup("null");
    return r->value_json ? CEL_OK : cel__err(&r->client->err, CEL_ENOMEM, "out of memory");
}
