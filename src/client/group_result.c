/*
 * group_result.c - results of groups, and the children of a result
 * (celeriac/canvas.h).
 *
 * A group has no meta of its own on the wire (Celery stores one only on
 * GroupResult.save()), so a group handle is its id plus its members' ids
 * and every answer comes from the members' metas. Waiting goes member by
 * member in order, as Celery's GroupResult.join() does: the members run
 * in parallel anyway, so by the time the first one is ready most of the
 * rest usually are, and each later wait returns at its first read.
 */
#include <stdlib.h>
#include <string.h>

#include "celeriac/canvas.h"
#include "client/client_internal.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "proto/group_meta.h"

struct cel_result *cel__result_new_group(cel_client *c, const char *group_id,
                                         const char *const *ids, size_t n)
{
    struct cel_result *r = cel__result_new(c, group_id);
    if (!r)
        return NULL;
    /* A group of none still needs a non-NULL array to be a group. */
    r->members = calloc(n ? n : 1, sizeof *r->members);
    if (!r->members) {
        cel_result_free(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        r->members[i] = strdup(ids[i]);
        if (!r->members[i]) {
            cel_result_free(r);
            return NULL;
        }
        r->nmembers = i + 1;
    }
    return r;
}

size_t cel_result_member_count(const cel_result *r)
{
    return r ? r->nmembers : 0;
}

const char *cel_result_member_id(const cel_result *r, size_t i)
{
    return r && i < r->nmembers ? r->members[i] : NULL;
}

static bool failed(cel_state st)
{
    return st == CEL_STATE_FAILURE || st == CEL_STATE_REVOKED;
}

/*
 * Reads (wait: waits for) each member in order. Stops at the first failed
 * member, whose outcome becomes the group's; SUCCESS with the list when
 * all succeeded; otherwise PENDING (refresh) or CEL_ETIMEDOUT (wait).
 */
static int visit_members(struct cel_result *r, bool wait, int64_t timeout_ms)
{
    cel_client *c = r->client;
    int64_t deadline = timeout_ms >= 0 ? cel__mono_us() + timeout_ms * 1000 : -1;
    char **values = calloc(r->nmembers ? r->nmembers : 1, sizeof *values);
    if (!values)
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    int rc = cel__result_reset(r);
    bool all_done = true;
    for (size_t i = 0; rc == CEL_OK && i < r->nmembers; i++) {
        struct cel_result *m = cel__result_new(c, r->members[i]);
        if (!m) {
            rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
            break;
        }
        if (wait) {
            int64_t left = -1;
            if (deadline >= 0) {
                left = (deadline - cel__mono_us()) / 1000;
                left = left < 0 ? 0 : left;
            }
            rc = cel_result_wait(m, left);
        } else {
            rc = cel_result_refresh(m);
        }
        if (rc == CEL_ETIMEDOUT) {
            /* The member's unclaimed queue explains the group's timeout. */
            cel__result_move_outcome(r, m);
            cel_result_free(m);
            cel__err(&c->err, CEL_ETIMEDOUT,
                     "timed out after %lld ms waiting for member %zu of %zu (task '%s', state %s) "
                     "of group '%s'",
                     (long long)timeout_ms, i + 1, r->nmembers, r->members[i],
                     cel_result_state_name(r), r->id);
            break;
        }
        if (rc == CEL_OK && failed(cel_result_state(m))) {
            cel__result_move_outcome(r, m);
            cel_result_free(m);
            break;
        }
        if (rc == CEL_OK && cel_result_state(m) != CEL_STATE_SUCCESS)
            all_done = false;
        values[i] = m->value_json;
        m->value_json = NULL;
        cel_result_free(m);
        if (!values[i] && rc == CEL_OK)
            rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
        if (!all_done && !wait)
            break; /* a refresh only needs to know that one is not ready */
    }
    if (rc == CEL_OK && all_done && cel_result_state(r) == CEL_STATE_PENDING) {
        bool complete = true;
        for (size_t i = 0; i < r->nmembers; i++)
            complete = complete && values[i];
        if (complete) {
            char *list = cel__join_texts(values, r->nmembers, "[", "]");
            if (list)
                cel__result_set_success(r, list);
            else
                rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < r->nmembers; i++)
        free(values[i]);
    free(values);
    return rc;
}

int cel__group_wait(struct cel_result *r, int64_t timeout_ms)
{
    return visit_members(r, true, timeout_ms);
}

int cel__group_refresh(struct cel_result *r)
{
    return visit_members(r, false, 0);
}

int cel__group_forget(struct cel_result *r)
{
    for (size_t i = 0; i < r->nmembers; i++) {
        struct cel_result *m = cel__result_new(r->client, r->members[i]);
        if (!m)
            return cel__err(&r->client->err, CEL_ENOMEM, "out of memory");
        int rc = cel_result_forget(m);
        cel_result_free(m);
        if (rc != CEL_OK)
            return rc;
    }
    return cel__result_reset(r);
}

/* --- saved groups (GroupResult.save / restore) ----------------------- */

/* The store when it keeps group results; else NULL with the reason set. */
static struct cel_backend *group_store(cel_client *c, int *rc)
{
    *rc = cel__client_need_backend(c);
    if (*rc != CEL_OK)
        return NULL;
    struct cel_backend *bk = c->backend;
    if (!bk->ops->group_save || !bk->ops->group_get || !bk->ops->group_forget) {
        *rc = cel__err(&c->err, CEL_ENOTSUP, "the result backend '%s' keeps no group results",
                       bk->ops->scheme);
        return NULL;
    }
    return bk;
}

int cel_result_save(const cel_result *r)
{
    if (!r)
        return CEL_EINVAL;
    cel_client *c = r->client;
    cel__err_clear(&c->err);
    if (!r->members)
        return cel__err(&c->err, CEL_EINVAL, "'%s' is not a group result", r->id);
    int rc;
    struct cel_backend *bk = group_store(c, &rc);
    if (!bk)
        return rc;
    json_t *meta = cel__group_meta_new(r->id, (const char *const *)r->members, r->nmembers);
    char *text = meta ? cel__json_dump(meta) : NULL;
    json_decref(meta);
    if (!text)
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    int64_t ttl_s = (int64_t)cel_config_get_double(c->cfg, "result_expires");
    rc = bk->ops->group_save(bk, r->id, text, strlen(text), ttl_s);
    free(text);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot save group '%s': %s", r->id, cel__backend_errmsg(bk));
    return CEL_OK;
}

/* A group handle from a saved document {"result": [[gid, _], [tuples]]}. */
static int group_from_meta(cel_client *c, const char *gid, const char *text,
                           struct cel_result **out)
{
    json_t *meta = cel__json_parse(text, strlen(text), CEL_JSON_MAX_DEPTH, NULL, 0);
    json_t *members = cel__result_tuple_members(json_object_get(meta, "result"));
    size_t n = json_array_size(members);
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    int rc = ids ? CEL_OK : cel__err(&c->err, CEL_ENOMEM, "out of memory");
    if (rc == CEL_OK && !members)
        rc = cel__err(&c->err, CEL_EPROTO, "saved group '%s' is not a group result tuple", gid);
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        const json_t *t = json_array_get(members, i);
        ids[i] = cel__result_tuple_id(t);
        if (!ids[i])
            rc = cel__err(&c->err, CEL_EPROTO,
                          "member %zu of saved group '%s' is not a result tuple", i, gid);
        else if (cel__result_tuple_members(t))
            rc = cel__err(&c->err, CEL_ENOTSUP,
                          "member %zu of saved group '%s' is a group: nested groups cannot be "
                          "restored",
                          i, gid);
    }
    if (rc == CEL_OK && !(*out = cel__result_new_group(c, gid, ids, n)))
        rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
    free(ids);
    json_decref(meta);
    return rc;
}

int cel_client_restore_group(cel_client *c, const char *group_id, cel_result **out)
{
    if (!out)
        return CEL_EINVAL;
    *out = NULL;
    if (!c || !group_id)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    int rc;
    struct cel_backend *bk = group_store(c, &rc);
    if (!bk)
        return rc;
    char *text = NULL;
    rc = bk->ops->group_get(bk, group_id, &text);
    if (rc == CEL_ENOTFOUND)
        return cel__err(&c->err, rc, "no group '%s' is saved", group_id);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot read group '%s': %s", group_id,
                        cel__backend_errmsg(bk));
    rc = group_from_meta(c, group_id, text, out);
    free(text);
    return rc;
}

int cel_client_forget_group(cel_client *c, const char *group_id)
{
    if (!c || !group_id)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    int rc;
    struct cel_backend *bk = group_store(c, &rc);
    if (!bk)
        return rc;
    rc = bk->ops->group_forget(bk, group_id);
    if (rc != CEL_OK && rc != CEL_ENOTFOUND)
        return cel__err(&c->err, rc, "cannot forget group '%s': %s", group_id,
                        cel__backend_errmsg(bk));
    return CEL_OK;
}

/* --- children ------------------------------------------------------ */

/* The meta's `children` list, parsed; NULL when there is none. */
static json_t *children_of(const cel_result *r)
{
    if (!r || !r->meta_json)
        return NULL;
    json_t *meta = cel__json_parse(r->meta_json, strlen(r->meta_json), CEL_JSON_MAX_DEPTH, NULL, 0);
    json_t *ch = json_object_get(meta, "children");
    if (!json_is_array(ch)) {
        json_decref(meta);
        return NULL;
    }
    json_incref(ch);
    json_decref(meta);
    return ch;
}

size_t cel_result_child_count(const cel_result *r)
{
    json_t *ch = children_of(r);
    size_t n = json_array_size(ch);
    json_decref(ch);
    return n;
}

int cel_result_child(const cel_result *r, size_t i, cel_result **out)
{
    if (!out)
        return CEL_EINVAL;
    *out = NULL;
    if (!r)
        return CEL_EINVAL;
    cel_client *c = r->client;
    cel__err_clear(&c->err);
    json_t *ch = children_of(r);
    json_t *t = json_array_get(ch, i);
    const char *id = cel__result_tuple_id(t);
    if (!id) {
        json_decref(ch);
        if (!t)
            return cel__err(&c->err, CEL_EINVAL, "task '%s' has no child %zu", r->id, i);
        return cel__err(&c->err, CEL_EPROTO, "child %zu of task '%s' is not a result tuple", i,
                        r->id);
    }
    json_t *members = json_array_get(t, 1);
    int rc = CEL_OK;
    if (json_is_array(members)) {
        size_t n = json_array_size(members);
        const char **ids = calloc(n ? n : 1, sizeof *ids);
        for (size_t k = 0; ids && k < n; k++) {
            ids[k] = cel__result_tuple_id(json_array_get(members, k));
            if (!ids[k])
                rc = cel__err(&c->err, CEL_EPROTO, "member %zu of group '%s' is not a result tuple",
                              k, id);
        }
        if (!ids)
            rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
        if (rc == CEL_OK && !(*out = cel__result_new_group(c, id, ids, n)))
            rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
        free(ids);
    } else if (!(*out = cel__result_new(c, id))) {
        rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }
    json_decref(ch);
    return rc;
}
