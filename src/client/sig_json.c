/*
 * sig_json.c - cel_sig to and from Celery's signature dict as JSON text.
 *
 * Reading normalises: what a person types for `celeriac call --workflow`
 * ({"task": "tasks.add", "args": [4, 4]}) gets every key Python's
 * Signature writes, recursively through chains, groups, chords and
 * link/link_error, so the planner and a Python worker see the same
 * complete dicts Python would send. Keys we do not know are kept.
 */
#include <stdlib.h>
#include <string.h>

#include "client/canvas_internal.h"
#include "core/errbuf.h"
#include "core/json_util.h"

/* Deeper than any workflow a person writes; bounds the recursion. */
#define SIG_MAX_DEPTH 64

char *cel_sig_to_json(const cel_sig *s)
{
    if (!s) {
        cel__sig_err(CEL_EINVAL, "no signature");
        return NULL;
    }
    char *t = cel__json_dump(s->j);
    if (!t)
        cel__sig_err(CEL_ENOMEM, "out of memory");
    return t;
}

struct norm {
    char *err;
    size_t errlen;
    int rc;
};

static json_t *fail(struct norm *n, int code, const char *path, const char *what)
{
    if (n->rc == CEL_OK) {
        n->rc = code;
        cel__errf(n->err, n->errlen, code, "%s: %s", path, what);
    }
    return NULL;
}

static json_t *normalize(struct norm *n, const json_t *in, const char *path, int depth);

/* A copy of `v` (missing/null: the empty default) when it has the type. */
static json_t *part(struct norm *n, const json_t *v, bool array, const char *path, const char *key)
{
    if (!v || json_is_null(v))
        return array ? json_array() : json_object();
    if (array ? json_is_array(v) : json_is_object(v))
        return json_deep_copy(v);
    char where[256];
    snprintf(where, sizeof where, "%s.%s", path, key);
    return fail(n, CEL_EINVAL, where, array ? "must be a JSON array" : "must be a JSON object");
}

/* Normalises each signature of the array `list` in place. */
static int normalize_list(struct norm *n, json_t *list, const char *path, int depth)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        char where[256];
        snprintf(where, sizeof where, "%s[%zu]", path, i);
        json_t *nv = normalize(n, v, where, depth + 1);
        if (!nv || json_array_set_new(list, i, nv) != 0)
            return n->rc != CEL_OK ? n->rc : (fail(n, CEL_ENOMEM, path, "out of memory"), n->rc);
    }
    return CEL_OK;
}

/* Normalises obj[key] in place: a signature, or with `list_ok` a list of them. */
static int normalize_member(struct norm *n, json_t *obj, const char *key, bool list_ok,
                            const char *path, int depth)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return CEL_OK;
    char where[256];
    snprintf(where, sizeof where, "%s.%s", path, key);
    if (list_ok && json_is_array(v))
        return normalize_list(n, v, where, depth);
    json_t *nv = normalize(n, v, where, depth + 1);
    if (!nv || json_object_set_new(obj, key, nv) != 0)
        return n->rc != CEL_OK ? n->rc : (fail(n, CEL_ENOMEM, where, "out of memory"), n->rc);
    return CEL_OK;
}

static const char *implied_type(const char *task)
{
    if (strcmp(task, "celery.chain") == 0)
        return "chain";
    if (strcmp(task, "celery.group") == 0)
        return "group";
    if (strcmp(task, "celery.chord") == 0)
        return "chord";
    return NULL;
}

/* The nested signatures of a workflow, as each subtask_type keeps them. */
static int normalize_nested(struct norm *n, json_t *sig, const char *type, const char *path,
                            int depth)
{
    json_t *kw = json_object_get(sig, "kwargs");
    json_t *opts = json_object_get(sig, "options");
    char where[256];
    snprintf(where, sizeof where, "%s.kwargs", path);
    if (type && (strcmp(type, "chain") == 0 || strcmp(type, "group") == 0)) {
        json_t *tasks = json_object_get(kw, "tasks");
        if (!json_is_array(tasks) || json_array_size(tasks) == 0)
            return fail(n, CEL_EINVAL, where, "a chain or group needs a non-empty 'tasks' list"),
                   n->rc;
        snprintf(where, sizeof where, "%s.kwargs.tasks", path);
        if (normalize_list(n, tasks, where, depth) != CEL_OK)
            return n->rc;
    } else if (type && strcmp(type, "chord") == 0) {
        if (!json_is_object(json_object_get(kw, "header")) ||
            !json_is_object(json_object_get(kw, "body")))
            return fail(n, CEL_EINVAL, where, "a chord needs a 'header' and a 'body'"), n->rc;
        if (normalize_member(n, kw, "header", false, where, depth) != CEL_OK ||
            normalize_member(n, kw, "body", false, where, depth) != CEL_OK)
            return n->rc;
    }
    snprintf(where, sizeof where, "%s.options", path);
    if (normalize_member(n, opts, "link", true, where, depth) != CEL_OK ||
        normalize_member(n, opts, "link_error", true, where, depth) != CEL_OK)
        return n->rc;
    return CEL_OK;
}

static json_t *normalize(struct norm *n, const json_t *in, const char *path, int depth)
{
    if (depth > SIG_MAX_DEPTH)
        return fail(n, CEL_EINVAL, path, "workflow is nested too deeply");
    if (!json_is_object(in))
        return fail(n, CEL_EINVAL, path, "a signature must be a JSON object");
    const char *task = cel__json_cstr(json_object_get(in, "task"));
    if (!task || !*task)
        return fail(n, CEL_EINVAL, path, "'task' must be a non-empty string");

    const json_t *st = json_object_get(in, "subtask_type");
    const char *type;
    if (!st)
        type = implied_type(task);
    else if (json_is_null(st))
        type = NULL;
    else if (!(type = cel__json_cstr(st)))
        return fail(n, CEL_EINVAL, path, "'subtask_type' must be a string or null");
    const json_t *imm = json_object_get(in, "immutable");
    if (imm && !json_is_boolean(imm) && !json_is_null(imm))
        return fail(n, CEL_EINVAL, path, "'immutable' must be true or false");

    json_t *args = part(n, json_object_get(in, "args"), true, path, "args");
    json_t *kwargs = part(n, json_object_get(in, "kwargs"), false, path, "kwargs");
    json_t *opts = part(n, json_object_get(in, "options"), false, path, "options");
    json_t *out = cel__sig_dict(task, args, kwargs, opts, type, json_is_true(imm));
    if (!out)
        return fail(n, CEL_ENOMEM, path, "out of memory");
    /* Keys Python adds that we have no use for (chord_size, ...) ride along. */
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v)
    {
        if (!json_object_get(out, key) && json_object_set(out, key, v) != 0) {
            json_decref(out);
            return fail(n, CEL_ENOMEM, path, "out of memory");
        }
    }
    if (normalize_nested(n, out, type, path, depth) != CEL_OK) {
        json_decref(out);
        return NULL;
    }
    return out;
}

int cel_sig_from_json(const char *json, cel_sig **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out)
        return cel__errf(errbuf, errlen, CEL_EINVAL, "no place for the signature");
    *out = NULL;
    if (!json)
        return cel__errf(errbuf, errlen, CEL_EINVAL, "no JSON text");
    char why[160];
    json_t *in = cel__json_parse(json, strlen(json), CEL_JSON_MAX_DEPTH, why, sizeof why);
    if (!in)
        return cel__errf(errbuf, errlen, CEL_EJSON, "not JSON: %s", why);
    struct norm n = {errbuf, errlen, CEL_OK};
    json_t *sig = normalize(&n, in, "signature", 0);
    json_decref(in);
    if (!sig)
        return n.rc;
    *out = cel__sig_adopt(sig);
    return *out ? CEL_OK : cel__errf(errbuf, errlen, CEL_ENOMEM, "out of memory");
}
