/*
 * chord_unlock.c - the built-in celery.chord_unlock: Celery's chord join
 * for result stores that have no native one.
 *
 * A Python client whose backend cannot join chords sends it instead of
 * recording the chord's size: args [group_id, body signature], kwargs
 * {interval, max_retries, result: [header result tuples]}. It reads the
 * header's results (a member that is a group: each of its tasks'); until all are ready it retries
 * itself after `interval` seconds (max_retries null: for ever); then it fails the body with
 * ChordError when a member failed (in member order, as Celery's join(propagate=True) finds it) and
 * sends the body's errbacks, or sends the body with the list of results prepended. What the body
 * becomes is what the native join makes of the same entries (chord.c), so both joins give the same
 * ChordError text and the same body message.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "celeriac/error.h"
#include "core/json_parse.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/canvas.h"
#include "proto/group_meta.h"
#include "proto/message.h"
#include "worker/canvas_run.h"
#include "worker/chord.h"
#include "worker/exec_backend.h"
#include "worker/task_context.h"

/* The join entry [1, id, status, result] of a ready member; *entry NULL
 * when the member is not ready yet. */
static int member_entry(struct cel_backend *bk, const char *id, json_t **entry)
{
    *entry = NULL;
    char *text = NULL;
    int rc = bk->ops->get(bk, id, &text);
    if (rc == CEL_ENOTFOUND)
        return CEL_OK;
    if (rc != CEL_OK)
        return rc;
    json_t *meta = cel__json_parse(text, strlen(text), CEL_MESSAGE_MAX_DEPTH, NULL, 0);
    const char *status = cel__json_cstr(json_object_get(meta, "status"));
    bool ready = status && cel__meta_is_ready(text, strlen(text));
    if (ready) {
        json_t *result = json_object_get(meta, "result");
        *entry = json_pack("[i, s, s, O]", 1, id, status, result ? result : json_null());
    }
    free(text);
    rc = ready && !*entry ? CEL_ENOMEM : CEL_OK;
    json_decref(meta);
    return rc;
}

/* Appends the entries of the tasks of tuple `t` (a task's, or a nested
 * group's, member by member); *ready false at the first not ready. */
static int collect(struct cel_backend *bk, const json_t *t, json_t *entries, bool *ready,
                   bool *nested, int depth)
{
    const json_t *members = cel__result_tuple_members(t);
    const char *id = cel__result_tuple_id(t);
    if (!id || depth > CEL_MESSAGE_MAX_DEPTH)
        return CEL_EINVAL;
    if (members) {
        *nested = true;
        size_t i;
        const json_t *m;
        json_array_foreach(members, i, m)
        {
            int rc = collect(bk, m, entries, ready, nested, depth + 1);
            if (rc != CEL_OK || !*ready)
                return rc;
        }
        return CEL_OK;
    }
    json_t *e = NULL;
    int rc = member_entry(bk, id, &e);
    if (rc == CEL_OK && !e)
        *ready = false;
    if (rc == CEL_OK && e && json_array_append_new(entries, e))
        rc = CEL_ENOMEM;
    return rc;
}

/* The entries of every header task when all are ready; *entries NULL
 * when one is not. *nested: a member is a group (the body then gets the
 * results in the header's shape, as Celery's GroupResult.join() gives
 * them). CEL_EINVAL when `tuples` is not a list of result tuples. */
static int header_entries(struct cel_backend *bk, const json_t *tuples, json_t **entries,
                          bool *nested)
{
    *entries = json_array();
    if (!*entries)
        return CEL_ENOMEM;
    bool ready = true;
    size_t i;
    const json_t *t;
    json_array_foreach(tuples, i, t)
    {
        int rc = collect(bk, t, *entries, &ready, nested, 0);
        if (rc != CEL_OK || !ready) {
            json_decref(*entries);
            *entries = NULL;
            return rc;
        }
    }
    return CEL_OK;
}

/* All members are ready: the body goes out, or fails. */
static int unlock(cel_task *t, struct cel_backend *bk, const char *gid, const json_t *body,
                  const json_t *entries, bool nested)
{
    const struct cel_message *m = t->msg;
    char *body_text = cel__json_dump(body), *entries_text = cel__json_dump(entries);
    json_t *doc =
        nested ? json_pack("{s:[[s, n], O]}", "result", gid, json_object_get(m->kwargs, "result"))
               : NULL;
    char *header = doc ? cel__json_dump(doc) : NULL;
    json_decref(doc);
    struct cel_chord_outcome out;
    char why[256] = "out of memory";
    int rc = CEL_ENOMEM;
    if (body_text && entries_text && (header || !nested)) {
        rc = cel__chord_outcome(body_text, strlen(body_text), entries_text, header, m->id,
                                m->root_id, &out, why, sizeof why);
        if (rc != CEL_OK)
            cel__chord_outcome_release(&out);
    }
    free(body_text);
    free(entries_text);
    free(header);
    if (rc != CEL_OK)
        return cel_task_fail(t, "ValueError", "builtins", why);
    if (out.failed) {
        CEL_ERROR("worker", "Chord '%s' raised: %s", gid, out.meta);
        int64_t ttl_s = t->env ? t->env->result_ttl_s : 0;
        rc = bk->ops->store(bk, out.body_id, CEL_STATE_FAILURE, out.meta, out.meta_len, ttl_s);
        if (rc != CEL_OK)
            CEL_ERROR("worker", "Chord '%s': cannot fail its body %s: %s", gid, out.body_id,
                      cel__backend_errmsg(bk));
    }
    /* The body, or on a failure the body's errbacks (chord.c plans them as
     * Celery's chord_error_from_stack sends them). */
    if (rc == CEL_OK)
        rc = cel__canvas_publish_plan(t, &out.plan);
    cel__chord_outcome_release(&out);
    if (rc == CEL_ENOMEM)
        return rc;
    return rc == CEL_OK ? CEL_OK
                        : cel_task_fail(t, "ChordError", "celery.exceptions",
                                        "the chord body could not be sent");
}

/* Not ready: again after `interval`, within kwargs.max_retries. */
static int retry_later(cel_task *t)
{
    const struct cel_message *m = t->msg;
    json_t *interval = json_object_get(m->kwargs, "interval");
    json_t *max = json_object_get(m->kwargs, "max_retries");
    double countdown = json_is_number(interval) ? json_number_value(interval)
                       : t->def                 ? t->def->default_retry_delay
                                                : 1.0;
    if (json_is_integer(max) && m->retries >= json_integer_value(max)) {
        char why[160];
        snprintf(why, sizeof why, "Can't retry celery.chord_unlock[%s]: max_retries %lld reached",
                 m->id, (long long)json_integer_value(max));
        return cel_task_fail(t, "MaxRetriesExceededError", "celery.exceptions", why);
    }
    return cel_task_retry(t, countdown, NULL, NULL, NULL);
}

int cel__builtin_chord_unlock(cel_task *t, void *ud)
{
    (void)ud;
    const struct cel_message *m = t->msg;
    const char *gid = cel__json_cstr(json_array_get(m->args, 0));
    json_t *body = json_array_get(m->args, 1);
    json_t *tuples = json_object_get(m->kwargs, "result");
    if (!gid || !json_is_object(body) || !json_is_array(tuples))
        return cel_task_fail(t, "TypeError", "builtins",
                             "celery.chord_unlock expects args [group_id, body] and kwargs.result "
                             "(the header's result tuples)");
    struct cel_errbuf err = {0};
    struct cel_backend *bk = cel__exec_backend(t->env, &err);
    if (!bk) /* the store may come back: Celery retries a failed ready() too */
        return cel_task_retry(t, -1, "BackendError", "celery.exceptions", err.msg);
    json_t *entries = NULL;
    bool nested = false;
    int rc = header_entries(bk, tuples, &entries, &nested);
    if (rc == CEL_EINVAL)
        return cel_task_fail(t, "TypeError", "builtins", "kwargs.result must list result tuples");
    if (rc == CEL_ENOMEM)
        return rc;
    if (rc != CEL_OK)
        return cel_task_retry(t, -1, "BackendError", "celery.exceptions", cel__backend_errmsg(bk));
    if (!entries)
        return retry_later(t);
    rc = unlock(t, bk, gid, body, entries, nested);
    json_decref(entries);
    return rc;
}
