/* chord.c - see chord.h. */
#include "worker/chord.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/json_parse.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/group_meta.h"
#include "proto/message.h"

/* Python's repr() of one exception argument, near enough: strings in
 * single quotes with \ and ' escaped, anything else as its JSON. */
static int repr_arg(struct cel_buf *b, const json_t *v)
{
    if (!json_is_string(v)) {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        int rc = text ? cel__buf_appends(b, text) : CEL_ENOMEM;
        free(text);
        return rc;
    }
    const char *s = json_string_value(v);
    int rc = cel__buf_append(b, "'", 1);
    for (; rc == CEL_OK && *s; s++) {
        if (*s == '\'' || *s == '\\')
            rc = cel__buf_append(b, "\\", 1);
        if (rc == CEL_OK)
            rc = cel__buf_append(b, s, 1);
    }
    return rc == CEL_OK ? cel__buf_append(b, "'", 1) : rc;
}

/* Celery's ChordError text for the failed entry [1, id, state, exc]:
 * "Dependency <id> raised <repr(exc)>". NULL when out of memory. */
static char *chord_error_text(const json_t *entry)
{
    const char *id = json_string_value(json_array_get(entry, 1));
    const json_t *exc = json_array_get(entry, 3);
    const char *type = json_string_value(json_object_get(exc, "exc_type"));
    const json_t *args = json_object_get(exc, "exc_message");
    struct cel_buf b = {0};
    cel__buf_printf(&b, "Dependency %s raised %s(", id ? id : "?", type ? type : "Exception");
    if (json_is_array(args)) {
        size_t i;
        const json_t *a;
        json_array_foreach(args, i, a)
        {
            if (i)
                cel__buf_appends(&b, ", ");
            repr_arg(&b, a);
        }
    } else if (args && !json_is_null(args)) {
        repr_arg(&b, args);
    }
    cel__buf_appends(&b, ")");
    return cel__buf_take(&b, NULL);
}

static int failure_meta(const json_t *entry, struct cel_chord_outcome *out, char *err,
                        size_t errlen)
{
    char *text = chord_error_text(entry);
    json_t *exc = text ? json_pack("{s:s, s:[s], s:s}", "exc_type", "ChordError", "exc_message",
                                   text, "exc_module", "celery.exceptions")
                       : NULL;
    free(text);
    json_t *meta =
        exc ? cel__result_meta_new(out->body_id, "FAILURE", exc, NULL, NULL, NULL, cel__wall_us())
            : NULL;
    out->meta = meta ? cel__json_dump(meta) : NULL;
    json_decref(meta);
    if (!out->meta) {
        snprintf(err, errlen, "out of memory");
        return CEL_ENOMEM;
    }
    out->meta_len = strlen(out->meta);
    return CEL_OK;
}

/*
 * The body's errbacks (options.link_error), planned as Celery's
 * chord_error_from_stack runs them: one group called with the body's id
 * as its only argument (immutable errbacks keep their own), parent and
 * root the body, since the fake request Celery builds for the body has
 * no root of its own.
 */
static int plan_errbacks(const json_t *sig, struct cel_chord_outcome *out, char *err, size_t errlen)
{
    json_t *ebs = json_object_get(json_object_get(sig, "options"), "link_error");
    if (json_is_object(ebs)) /* one signature instead of a list */
        ebs = json_pack("[O]", ebs);
    else if (json_is_array(ebs) && json_array_size(ebs))
        json_incref(ebs);
    else
        return CEL_OK;
    json_t *group =
        ebs ? json_pack("{s:s, s:[], s:{s:O}, s:{}, s:s, s:b}", "task", "celery.group", "args",
                        "kwargs", "tasks", ebs, "options", "subtask_type", "group", "immutable", 0)
            : NULL;
    json_t *id = json_string(out->body_id);
    int rc;
    if (group && id) {
        const struct cel_canvas_ctx ctx = {
            .parent_id = out->body_id, .root_id = out->body_id, .group_index = -1};
        rc = cel__canvas_plan(group, id, &ctx, &out->plan, err, errlen);
    } else {
        snprintf(err, errlen, "out of memory");
        rc = CEL_ENOMEM;
    }
    /* Errbacks that cannot be sent must not keep the failure from being
     * stored: the caller says why they were dropped. */
    if (rc != CEL_OK && rc != CEL_ENOMEM) {
        snprintf(out->errbacks_dropped, sizeof out->errbacks_dropped, "%s", err);
        rc = CEL_OK;
    }
    json_decref(ebs);
    json_decref(group);
    json_decref(id);
    return rc;
}

/* The value of result tuple `t` as GroupResult.join() gives it: a task's
 * value (looked up by id in `by_id`), a group's list of its members'.
 * NULL when a task of it has no entry or out of memory. */
static json_t *structured_value(const json_t *t, const json_t *by_id, int depth)
{
    const json_t *members = cel__result_tuple_members(t);
    if (!members) {
        const char *id = cel__result_tuple_id(t);
        json_t *v = id ? json_object_get(by_id, id) : NULL;
        return v ? json_incref(v) : NULL;
    }
    json_t *list = depth < CEL_MESSAGE_MAX_DEPTH ? json_array() : NULL;
    size_t i;
    const json_t *m;
    json_array_foreach(members, i, m)
    {
        json_t *v = list ? structured_value(m, by_id, depth + 1) : NULL;
        if (!v || json_array_append_new(list, v)) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

/* Celery's body arguments for a "complex" header (one with nested groups,
 * saved by apply_chord): the saved header tuple's structure filled from
 * the entries, so the body gets [[a, b], c], not [a, b, c]. NULL when
 * `header` is not a group tuple or does not match the entries. */
static json_t *structured_results(const char *header, const json_t *list)
{
    json_t *doc = cel__json_parse(header, strlen(header), CEL_MESSAGE_MAX_DEPTH, NULL, 0);
    json_t *tuple = json_object_get(doc, "result");
    json_t *by_id = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(by_id ? list : NULL, i, e)
    {
        const char *id = json_string_value(json_array_get(e, 1));
        if (id)
            json_object_set(by_id, id, json_array_get(e, 3));
    }
    json_t *v = cel__result_tuple_members(tuple) ? structured_value(tuple, by_id, 0) : NULL;
    json_decref(by_id);
    json_decref(doc);
    return v;
}

int cel__chord_outcome(const char *body, size_t body_len, const char *entries, const char *header,
                       const char *parent_id, const char *root_id, struct cel_chord_outcome *out,
                       char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *sig = cel__json_parse(body, body_len, 0, NULL, 0);
    json_t *list = cel__json_parse(entries, strlen(entries), 0, NULL, 0);
    json_t *results = json_array();
    int rc = CEL_OK;
    const char *body_id =
        json_string_value(json_object_get(json_object_get(sig, "options"), "task_id"));
    if (!json_is_object(sig) || !json_is_array(list)) {
        snprintf(err, errlen, "the chord body or its entries are not JSON");
        rc = CEL_EJSON;
    } else if (!results) {
        snprintf(err, errlen, "out of memory");
        rc = CEL_ENOMEM;
    }
    snprintf(out->body_id, sizeof out->body_id, "%s", body_id ? body_id : "");
    size_t i;
    json_t *e;
    json_array_foreach(rc == CEL_OK ? list : NULL, i, e)
    {
        const char *state = json_string_value(json_array_get(e, 2));
        if (!json_is_array(e) || json_array_size(e) != 4 || !state) {
            snprintf(err, errlen, "chord entry %zu is not [1, id, state, value]", i);
            rc = CEL_EINVAL;
            break;
        }
        /* Celery's PROPAGATE_STATES: the body fails with the first. */
        if (strcmp(state, "FAILURE") == 0 || strcmp(state, "REVOKED") == 0) {
            out->failed = true;
            if (!body_id) {
                snprintf(err, errlen, "the chord body has no options.task_id to fail");
                rc = CEL_EINVAL;
            } else {
                rc = failure_meta(e, out, err, errlen);
                if (rc == CEL_OK)
                    rc = plan_errbacks(sig, out, err, errlen);
            }
            break;
        }
        if (json_array_append(results, json_array_get(e, 3)) != 0) {
            snprintf(err, errlen, "out of memory");
            rc = CEL_ENOMEM;
            break;
        }
    }
    if (rc == CEL_OK && !out->failed && header) {
        json_t *structured = structured_results(header, list);
        if (structured) {
            json_decref(results);
            results = structured;
        } else {
            CEL_WARN("worker",
                     "the saved header of chord body %s does not match its joins: "
                     "the body gets the flat list",
                     out->body_id);
        }
    }
    if (rc == CEL_OK && !out->failed) {
        const struct cel_canvas_ctx ctx = {
            .parent_id = parent_id, .root_id = root_id, .group_index = -1};
        rc = cel__canvas_plan(sig, results, &ctx, &out->plan, err, errlen);
    }
    json_decref(sig);
    json_decref(list);
    json_decref(results);
    return rc;
}

void cel__chord_outcome_release(struct cel_chord_outcome *out)
{
    free(out->meta);
    out->meta = NULL;
    cel__canvas_plan_release(&out->plan);
}
