/* canvas.c - see canvas.h.
 *
 * Planning is two passes over a private deep copy of the signature:
 *  1. freeze: normalise (chunks become a group of starmaps, nested chains
 *     are spliced, nested groups unrolled, a group followed by another
 *     link in a chain becomes a chord with that link as body, partial
 *     args are pushed down) and give every task that will be embedded a
 *     task_id, as Celery's freeze() does, so the ids a client reads are
 *     the ids the messages will carry;
 *  2. emit: walk it and build the messages that go out now. What must
 *     happen after a task (its callbacks, errbacks, the rest of its
 *     chain, the chord it belongs to) is the "tail" handed down the walk
 *     and ends up in that task's embed or in the options of the
 *     signatures embedded there.
 */
#include "proto/canvas.h"

#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/json_util.h"
#include "core/uuid.h"
#include "proto/message.h"

/* Deeper canvases than this are refused rather than recursed into. */
#define CANVAS_MAX_DEPTH 64

enum kind { K_TASK, K_CHAIN, K_GROUP, K_CHORD, K_CHUNKS };

struct planner {
    struct cel_canvas_plan *out;
    const struct cel_canvas_ctx *ctx;
    char *err;
    size_t errlen;
    size_t cap_msgs, cap_chords;
};

/* What must follow the last task(s) of the signature being emitted. */
struct tail {
    const char *group_id; /* NULL: none */
    int group_index;      /* -1: none */
    json_t *chord;        /* body signature; NULL: none */
    json_t *chain;        /* reversed continuation; NULL: none (a [] is kept) */
    json_t *links;        /* callbacks to add; NULL: none */
    json_t *errbacks;     /* errbacks to add; NULL: none */
};

static const struct tail NO_TAIL = {.group_index = -1};

static int fail(struct planner *P, int code, const char *what)
{
    return cel__errf(P->err, P->errlen, code, "%s", what);
}

static const char *str_of(const json_t *o, const char *key)
{
    return cel__json_cstr(json_object_get(o, key));
}

static enum kind kind_of(const json_t *sig)
{
    const char *type = str_of(sig, "subtask_type");
    const char *task = str_of(sig, "task");
    if ((type && strcmp(type, "chain") == 0) || (task && strcmp(task, "celery.chain") == 0))
        return K_CHAIN;
    if ((type && strcmp(type, "group") == 0) || (task && strcmp(task, "celery.group") == 0))
        return K_GROUP;
    if ((type && strcmp(type, "chord") == 0) || (task && strcmp(task, "celery.chord") == 0))
        return K_CHORD;
    if ((type && strcmp(type, "chunks") == 0) || (task && strcmp(task, "celery.chunks") == 0))
        return K_CHUNKS;
    return K_TASK;
}

static json_t *options_of(const json_t *sig)
{
    return json_object_get(sig, "options");
}

/* Gives `sig` (an object of the private copy) the members every
 * signature has: args [], kwargs {}, options {}. */
static int complete(struct planner *P, json_t *sig)
{
    if (!json_is_object(sig))
        return fail(P, CEL_EINVAL, "a signature must be a JSON object");
    static const char *const keys[] = {"args", "kwargs", "options"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(sig, keys[i]);
        bool want_array = i == 0;
        if (!v || json_is_null(v)) {
            if (json_object_set_new(sig, keys[i], want_array ? json_array() : json_object()))
                return fail(P, CEL_ENOMEM, "out of memory");
        } else if (want_array ? !json_is_array(v) : !json_is_object(v)) {
            return cel__errf(P->err, P->errlen, CEL_EINVAL, "signature %s must be %s", keys[i],
                             want_array ? "an array" : "an object");
        }
    }
    return CEL_OK;
}

/* kwargs[key] as an array (a composite's members), or NULL. */
static json_t *members_of(const json_t *sig, const char *key)
{
    json_t *v = json_object_get(json_object_get(sig, "kwargs"), key);
    return json_is_array(v) ? v : NULL;
}

static bool immutable(const json_t *sig)
{
    return json_is_true(json_object_get(sig, "immutable"));
}

/* Partial args of a composite go in front of its first task's (a chain)
 * or every member's (a group, a chord's header), as Celery's clone(args)
 * does; immutable signatures keep theirs. */
static int push_args(struct planner *P, json_t *child, const json_t *args)
{
    if (!json_array_size(args) || immutable(child))
        return CEL_OK;
    json_t *mine = json_object_get(child, "args");
    json_t *joined = json_copy((json_t *)args);
    if (!joined || (json_is_array(mine) && json_array_extend(joined, mine)) ||
        json_object_set_new(child, "args", joined))
        return fail(P, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

/* `v` (a signature or a list of them) appended to the array at
 * options[key], created when absent. */
static int extend_opt(struct planner *P, json_t *sig, const char *key, const json_t *v)
{
    if (!v || json_is_null(v) || (json_is_array(v) && !json_array_size(v)))
        return CEL_OK;
    json_t *opts = options_of(sig);
    json_t *cur = json_object_get(opts, key);
    json_t *list = json_array();
    bool ok = list != NULL;
    if (ok && json_is_array(cur))
        ok = json_array_extend(list, cur) == 0;
    else if (ok && json_is_object(cur))
        ok = json_array_append(list, cur) == 0;
    if (ok && json_is_array(v))
        ok = json_array_extend(list, (json_t *)v) == 0;
    else if (ok)
        ok = json_array_append(list, (json_t *)v) == 0;
    if (!ok || json_object_set_new(opts, key, list))
        return fail(P, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

/* ---- pass 1: normalise and freeze ---- */

static int freeze(struct planner *P, json_t *sig, const char *id, int depth);

/* options.task_id, given one if it has none (`id`, else a fresh UUID). */
static int freeze_id(struct planner *P, json_t *sig, const char *id)
{
    json_t *opts = options_of(sig);
    json_t *have = json_object_get(opts, "task_id");
    if (have && !json_is_null(have)) {
        const char *s = cel__json_cstr(have);
        if (!s || !*s || strlen(s) > CEL_UUID_STRLEN)
            return fail(P, CEL_EINVAL, "options.task_id must be a string of 1..36 characters");
        return CEL_OK;
    }
    char fresh[CEL_UUID_STRLEN + 1];
    if (!id)
        cel__uuid4(fresh);
    else if (strlen(id) > CEL_UUID_STRLEN || !*id)
        return fail(P, CEL_EINVAL, "task id must be 1..36 characters");
    if (json_object_set_new(opts, "task_id", json_string(id ? id : fresh)))
        return fail(P, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

/* chunks(task, it, n) is a group of starmaps over n-sized slices of it,
 * each immutable (Celery's xstarmap). Rewrites `sig` in place. */
static int chunks_to_group(struct planner *P, json_t *sig)
{
    json_t *kw = json_object_get(sig, "kwargs");
    json_t *task = json_object_get(kw, "task"), *it = json_object_get(kw, "it");
    json_t *n = json_object_get(kw, "n");
    if (!json_is_object(task) || !json_is_array(it) || !json_is_integer(n) ||
        json_integer_value(n) < 1)
        return fail(P, CEL_EINVAL, "chunks needs kwargs task (a signature), it (a list), n >= 1");
    size_t step = (size_t)json_integer_value(n), len = json_array_size(it);
    json_t *tasks = json_array();
    bool ok = tasks != NULL;
    for (size_t at = 0; ok && at < len; at += step) {
        json_t *part = json_array();
        for (size_t i = at; part && i < at + step && i < len; i++)
            if (json_array_append(part, json_array_get(it, i)))
                json_decref(part), part = NULL;
        json_t *one = part ? json_pack("{s:s, s:[], s:{s:O, s:o}, s:{}, s:s, s:b}", "task",
                                       "celery.starmap", "args", "kwargs", "task", task, "it", part,
                                       "options", "subtask_type", "xstarmap", "immutable", 1)
                           : NULL;
        ok = one && json_array_append_new(tasks, one) == 0;
    }
    json_t *kwargs = ok ? json_pack("{s:o}", "tasks", tasks) : (json_decref(tasks), NULL);
    if (!kwargs || json_object_set_new(sig, "kwargs", kwargs) ||
        json_object_set_new(sig, "task", json_string("celery.group")) ||
        json_object_set_new(sig, "subtask_type", json_string("group")))
        return fail(P, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

/* Splices nested chains into `tasks` and turns each group that has a
 * successor into chord(group, successor), from the end as Celery's
 * prepare_steps does (so group | group | x nests). */
static int shape_chain(struct planner *P, json_t *tasks, int depth)
{
    for (size_t i = 0; i < json_array_size(tasks);) {
        json_t *t = json_array_get(tasks, i);
        int rc = complete(P, t);
        if (rc)
            return rc;
        if (kind_of(t) != K_CHAIN) {
            i++;
            continue;
        }
        json_t *inner = members_of(t, "tasks");
        if (!inner)
            return fail(P, CEL_EINVAL, "a chain needs kwargs.tasks (a list)");
        json_incref(t);
        if (json_array_remove(tasks, i)) {
            json_decref(t);
            return fail(P, CEL_ENOMEM, "out of memory");
        }
        /* The inner chain's partial args go to its first task. */
        if (json_array_size(inner) && (rc = complete(P, json_array_get(inner, 0))) == CEL_OK)
            rc = push_args(P, json_array_get(inner, 0), json_object_get(t, "args"));
        for (size_t k = 0; rc == CEL_OK && k < json_array_size(inner); k++)
            if (json_array_insert(tasks, i + k, json_array_get(inner, k)))
                rc = fail(P, CEL_ENOMEM, "out of memory");
        json_decref(t);
        if (rc)
            return rc;
        if (depth > CANVAS_MAX_DEPTH || json_array_size(tasks) > (1u << 20))
            return fail(P, CEL_EINVAL, "chain nested too deeply");
        depth++;
    }
    for (size_t i = json_array_size(tasks); i-- > 1;) {
        json_t *g = json_array_get(tasks, i - 1);
        enum kind k = kind_of(g);
        if (k != K_GROUP && k != K_CHUNKS)
            continue;
        json_t *body = json_array_get(tasks, i);
        json_t *c = json_pack("{s:s, s:[], s:{s:O, s:O}, s:{}, s:s, s:b}", "task", "celery.chord",
                              "args", "kwargs", "header", g, "body", body, "options",
                              "subtask_type", "chord", "immutable", 0);
        if (!c || json_array_remove(tasks, i) || json_array_set_new(tasks, i - 1, c))
            return fail(P, CEL_ENOMEM, "out of memory");
    }
    return CEL_OK;
}

/* Unrolls nested groups into `tasks` (their members run in parallel in
 * the same group, as Celery's _prepared does). */
static int unroll_group(struct planner *P, json_t *tasks)
{
    for (size_t i = 0; i < json_array_size(tasks);) {
        json_t *t = json_array_get(tasks, i);
        int rc = complete(P, t);
        if (rc)
            return rc;
        if (kind_of(t) == K_CHUNKS && (rc = chunks_to_group(P, t)))
            return rc;
        json_t *inner = kind_of(t) == K_GROUP ? members_of(t, "tasks") : NULL;
        if (kind_of(t) == K_GROUP && !inner)
            return fail(P, CEL_EINVAL, "a group needs kwargs.tasks (a list)");
        if (!inner) {
            i++;
            continue;
        }
        json_incref(t);
        rc = json_array_remove(tasks, i) ? fail(P, CEL_ENOMEM, "out of memory") : CEL_OK;
        for (size_t k = 0; rc == CEL_OK && k < json_array_size(inner); k++) {
            json_t *m = json_array_get(inner, k);
            if ((rc = complete(P, m)) == CEL_OK)
                rc = push_args(P, m, json_object_get(t, "args"));
            if (rc == CEL_OK && json_array_insert(tasks, i + k, m))
                rc = fail(P, CEL_ENOMEM, "out of memory");
        }
        json_decref(t);
        if (rc)
            return rc;
        if (json_array_size(tasks) > (1u << 20))
            return fail(P, CEL_EINVAL, "group too large");
    }
    return CEL_OK;
}

static int freeze_chain(struct planner *P, json_t *sig, const char *id, int depth)
{
    json_t *tasks = members_of(sig, "tasks");
    if (!tasks || !json_array_size(tasks))
        return fail(P, CEL_EINVAL, "a chain needs a non-empty kwargs.tasks");
    int rc = complete(P, json_array_get(tasks, 0));
    if (rc || (rc = push_args(P, json_array_get(tasks, 0), json_object_get(sig, "args"))) ||
        (rc = json_array_clear(json_object_get(sig, "args")) ? CEL_ENOMEM : CEL_OK) ||
        (rc = shape_chain(P, tasks, depth)))
        return rc;
    const char *last_id = id ? id : str_of(options_of(sig), "task_id");
    size_t n = json_array_size(tasks);
    for (size_t i = 0; i < n; i++)
        if ((rc = freeze(P, json_array_get(tasks, i), i + 1 == n ? last_id : NULL, depth + 1)))
            return rc;
    return CEL_OK;
}

static int freeze_group(struct planner *P, json_t *sig, const char *id, int depth)
{
    json_t *tasks = members_of(sig, "tasks");
    if (!tasks)
        return fail(P, CEL_EINVAL, "a group needs kwargs.tasks (a list)");
    int rc;
    for (size_t i = 0; i < json_array_size(tasks); i++)
        if ((rc = complete(P, json_array_get(tasks, i))) ||
            (rc = push_args(P, json_array_get(tasks, i), json_object_get(sig, "args"))))
            return rc;
    if ((rc = json_array_clear(json_object_get(sig, "args")) ? CEL_ENOMEM : CEL_OK) ||
        (rc = unroll_group(P, tasks)) || (rc = freeze_id(P, sig, id)))
        return rc;
    for (size_t i = 0; i < json_array_size(tasks); i++)
        if ((rc = freeze(P, json_array_get(tasks, i), NULL, depth + 1)))
            return rc;
    return CEL_OK;
}

static int freeze_chord(struct planner *P, json_t *sig, const char *id, int depth)
{
    json_t *kw = json_object_get(sig, "kwargs");
    json_t *header = json_object_get(kw, "header"), *body = json_object_get(kw, "body");
    if (!json_is_object(body))
        return fail(P, CEL_EINVAL, "a chord needs kwargs.body (a signature)");
    if (json_is_array(header)) { /* a bare list of header tasks */
        header = json_pack("{s:s, s:[], s:{s:O}, s:{}, s:s, s:b}", "task", "celery.group", "args",
                           "kwargs", "tasks", header, "options", "subtask_type", "group",
                           "immutable", 0);
        if (!header || json_object_set_new(kw, "header", header))
            return fail(P, CEL_ENOMEM, "out of memory");
    }
    int rc = complete(P, header);
    if (rc)
        return rc;
    if (kind_of(header) == K_CHUNKS && (rc = chunks_to_group(P, header)))
        return rc;
    if (kind_of(header) != K_GROUP)
        return fail(P, CEL_EINVAL, "a chord's header must be a group or a list");
    if ((rc = push_args(P, header, json_object_get(sig, "args"))) ||
        (rc = json_array_clear(json_object_get(sig, "args")) ? CEL_ENOMEM : CEL_OK) ||
        (rc = complete(P, body)))
        return rc;
    if ((rc = freeze(P, body, id ? id : str_of(options_of(sig), "task_id"), depth + 1)) ||
        (rc = freeze(P, header, NULL, depth + 1)))
        return rc;
    /* A header member that is a chain ending in a group: Celery freezes
     * that group with the chord's group id as its own id, so a Python
     * worker that sends it joins it to this chord (and the saved header
     * names it so). */
    json_t *gid = json_object_get(options_of(header), "task_id");
    json_t *tasks = members_of(header, "tasks");
    for (size_t i = 0; i < json_array_size(tasks); i++) {
        json_t *m = json_array_get(tasks, i);
        if (kind_of(m) != K_CHAIN)
            continue;
        json_t *links = members_of(m, "tasks");
        json_t *last = json_array_get(links, json_array_size(links) - 1);
        if (kind_of(last) == K_GROUP && json_object_set(options_of(last), "task_id", gid))
            return fail(P, CEL_ENOMEM, "out of memory");
    }
    return CEL_OK;
}

static int freeze(struct planner *P, json_t *sig, const char *id, int depth)
{
    if (depth > CANVAS_MAX_DEPTH)
        return fail(P, CEL_EINVAL, "canvas nested too deeply");
    int rc = complete(P, sig);
    if (rc)
        return rc;
    switch (kind_of(sig)) {
    case K_CHUNKS:
        if ((rc = chunks_to_group(P, sig)))
            return rc;
        return freeze_group(P, sig, id, depth);
    case K_CHAIN:
        return freeze_chain(P, sig, id, depth);
    case K_GROUP:
        return freeze_group(P, sig, id, depth);
    case K_CHORD:
        return freeze_chord(P, sig, id, depth);
    case K_TASK:
        if (!str_of(sig, "task") || !*str_of(sig, "task"))
            return fail(P, CEL_EINVAL, "a signature needs a task name");
        return freeze_id(P, sig, id);
    }
    return CEL_OK;
}

/* The id whose result is `sig`'s (after freeze): a task's own, a chain's
 * last link's, a chord's body's, a group's id. */
static const char *result_id(const json_t *sig, int depth)
{
    if (depth > CANVAS_MAX_DEPTH)
        return NULL;
    switch (kind_of(sig)) {
    case K_CHAIN: {
        json_t *tasks = members_of(sig, "tasks");
        return result_id(json_array_get(tasks, json_array_size(tasks) - 1), depth + 1);
    }
    case K_CHORD:
        return result_id(json_object_get(json_object_get(sig, "kwargs"), "body"), depth + 1);
    default:
        return str_of(options_of(sig), "task_id");
    }
}

/* How many joins complete a chord whose header is `sig` (Celery's
 * chord._descend). */
static int descend(const json_t *sig, int depth)
{
    if (depth > CANVAS_MAX_DEPTH)
        return 0;
    switch (kind_of(sig)) {
    case K_GROUP: {
        json_t *tasks = members_of(sig, "tasks");
        int n = 0;
        for (size_t i = 0; i < json_array_size(tasks); i++)
            n += descend(json_array_get(tasks, i), depth + 1);
        return n;
    }
    case K_CHAIN: {
        json_t *tasks = members_of(sig, "tasks");
        for (size_t i = json_array_size(tasks); i-- > 0;) {
            int n = descend(json_array_get(tasks, i), depth + 1);
            if (n > 0)
                return n;
        }
        return 0;
    }
    case K_CHORD:
        return descend(json_object_get(json_object_get(sig, "kwargs"), "body"), depth + 1);
    default:
        return 1;
    }
}

/* ---- pass 2: emit ---- */

/* The tail a signature's own options ask for, merged with the one handed
 * down (which wins for the group and chord it belongs to; the outer
 * chain continues after its own). Arrays in `eff` are new references. */
static int effective(struct planner *P, const json_t *sig, const struct tail *t, struct tail *eff)
{
    json_t *opts = options_of(sig);
    *eff = *t;
    eff->chain = eff->links = eff->errbacks = NULL;
    if (!eff->group_id)
        eff->group_id = str_of(opts, "group_id");
    json_t *gi = json_object_get(opts, "group_index");
    if (eff->group_index < 0 && json_is_integer(gi) && json_integer_value(gi) >= 0 &&
        json_integer_value(gi) < (1 << 30))
        eff->group_index = (int)json_integer_value(gi);
    if (!eff->chord && json_is_object(json_object_get(opts, "chord")))
        eff->chord = json_object_get(opts, "chord");

    json_t *own_chain = json_object_get(opts, "chain");
    if (t->chain || json_is_array(own_chain)) {
        eff->chain = json_array();
        if (!eff->chain || (t->chain && json_array_extend(eff->chain, t->chain)) ||
            (json_is_array(own_chain) && json_array_extend(eff->chain, own_chain)))
            return fail(P, CEL_ENOMEM, "out of memory");
    }
    static const char *const keys[] = {"link", "link_error"};
    json_t *const extra[] = {t->links, t->errbacks};
    json_t **dst[] = {&eff->links, &eff->errbacks};
    for (size_t i = 0; i < 2; i++) {
        json_t *own = json_object_get(opts, keys[i]);
        json_t *list = json_array();
        bool ok = list != NULL;
        if (ok && json_is_array(own))
            ok = json_array_extend(list, own) == 0;
        else if (ok && json_is_object(own))
            ok = json_array_append(list, own) == 0;
        if (ok && extra[i])
            ok = json_array_extend(list, extra[i]) == 0;
        *dst[i] = list;
        if (!ok)
            return fail(P, CEL_ENOMEM, "out of memory");
    }
    return CEL_OK;
}

static void tail_release(struct tail *eff)
{
    json_decref(eff->chain);
    json_decref(eff->links);
    json_decref(eff->errbacks);
}

static int emit(struct planner *P, json_t *sig, const json_t *prepend, const struct tail *t,
                int depth);

static double number_of(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* When the message is due, from countdown (seconds) or eta (ISO 8601). */
static int due_of(struct planner *P, const json_t *opts, int64_t *eta_us, int64_t *expires_us)
{
    json_t *cd = json_object_get(opts, "countdown"), *eta = json_object_get(opts, "eta");
    json_t *exp = json_object_get(opts, "expires");
    int64_t now = cel__wall_us();
    *eta_us = *expires_us = 0;
    if (json_is_number(cd) && number_of(cd) > 0 && number_of(cd) < 1e10)
        *eta_us = now + (int64_t)(number_of(cd) * 1e6);
    else if (cel__json_cstr(eta) && cel__iso8601_parse(cel__json_cstr(eta), eta_us) != 0)
        return fail(P, CEL_EINVAL, "options.eta is not an ISO 8601 time");
    if (json_is_number(exp) && number_of(exp) > -1e10 && number_of(exp) < 1e10)
        *expires_us = now + (int64_t)(number_of(exp) * 1e6);
    else if (cel__json_cstr(exp) && cel__iso8601_parse(cel__json_cstr(exp), expires_us) != 0)
        return fail(P, CEL_EINVAL, "options.expires is not an ISO 8601 time");
    return CEL_OK;
}

static int push_msg(struct planner *P, char *body, size_t len, const char *id, const char *queue,
                    int priority, int64_t due_us)
{
    struct cel_canvas_plan *out = P->out;
    if (out->nmsgs == P->cap_msgs) {
        size_t cap = P->cap_msgs ? P->cap_msgs * 2 : 8;
        void *p = realloc(out->msgs, cap * sizeof *out->msgs);
        if (!p) {
            free(body);
            return fail(P, CEL_ENOMEM, "out of memory");
        }
        out->msgs = p;
        P->cap_msgs = cap;
    }
    struct cel_canvas_msg *m = &out->msgs[out->nmsgs];
    memset(m, 0, sizeof *m);
    m->body = body;
    m->len = len;
    snprintf(m->id, sizeof m->id, "%s", id);
    m->priority = priority;
    m->due_us = due_us;
    if (!(m->queue = strdup(queue))) {
        free(body);
        return fail(P, CEL_ENOMEM, "out of memory");
    }
    out->nmsgs++;
    return CEL_OK;
}

static int emit_task(struct planner *P, json_t *sig, const json_t *prepend, const struct tail *eff)
{
    json_t *opts = options_of(sig);
    json_t *args = json_array();
    if (!args || (prepend && !immutable(sig) && json_array_append(args, (json_t *)prepend)) ||
        json_array_extend(args, json_object_get(sig, "args"))) {
        json_decref(args);
        return fail(P, CEL_ENOMEM, "out of memory");
    }
    json_t *none = json_null();
    json_t *embed = json_pack(
        "{s:O, s:O, s:O, s:O}", "callbacks", json_array_size(eff->links) ? eff->links : none,
        "errbacks", json_array_size(eff->errbacks) ? eff->errbacks : none, "chain",
        eff->chain ? eff->chain : none, "chord", eff->chord ? eff->chord : none);
    struct cel_task_spec spec = {
        .task = str_of(sig, "task"),
        .id = str_of(opts, "task_id"),
        .args = args,
        .kwargs = json_object_get(sig, "kwargs"),
        .embed = embed,
        .queue = str_of(opts, "queue") ? str_of(opts, "queue") : str_of(opts, "routing_key"),
        .exchange = str_of(opts, "exchange"),
        .time_limit = number_of(json_object_get(opts, "time_limit")),
        .soft_time_limit = number_of(json_object_get(opts, "soft_time_limit")),
        .root_id = P->ctx->root_id ? P->ctx->root_id : str_of(opts, "root_id"),
        .parent_id = P->ctx->parent_id ? P->ctx->parent_id : str_of(opts, "parent_id"),
        .group_id = eff->group_id,
        .shadow = str_of(opts, "shadow"),
        .ignore_result = json_is_true(json_object_get(opts, "ignore_result")),
        .reply_to = str_of(opts, "reply_to"),
        .group_index = eff->group_index,
        .has_group_index = eff->group_index >= 0,
    };
    if (!spec.queue)
        spec.queue = P->ctx->default_queue ? P->ctx->default_queue : "celery";
    json_t *prio = json_object_get(opts, "priority");
    spec.priority = json_is_integer(prio) ? (int)json_integer_value(prio) : P->ctx->priority;
    if (json_is_integer(prio) && (json_integer_value(prio) < 0 || json_integer_value(prio) > 9))
        spec.priority = -1; /* refused by the builder, with its reason */
    int rc = embed ? due_of(P, opts, &spec.eta_us, &spec.expires_us)
                   : fail(P, CEL_ENOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    char id[CEL_UUID_STRLEN + 1];
    if (rc == CEL_OK)
        rc = cel__message_build(&spec, &text, &len, id, P->err, P->errlen);
    json_decref(args);
    json_decref(embed);
    if (rc)
        return rc;
    return push_msg(P, text, len, id, spec.queue, spec.priority, spec.eta_us);
}

static int emit_chain(struct planner *P, json_t *sig, const json_t *prepend, const struct tail *eff,
                      int depth)
{
    json_t *tasks = members_of(sig, "tasks");
    size_t n = json_array_size(tasks);
    json_t *first = json_array_get(tasks, 0), *last = json_array_get(tasks, n - 1);
    /* How the chain is sent (queue, priority, when) is how its first task is. */
    static const char *const how[] = {"queue",     "routing_key", "priority",
                                      "countdown", "eta",         "expires"};
    for (size_t i = 0; i < sizeof how / sizeof how[0]; i++) {
        json_t *v = json_object_get(options_of(sig), how[i]);
        if (v && !json_object_get(options_of(first), how[i]) &&
            json_object_set(options_of(first), how[i], v))
            return fail(P, CEL_ENOMEM, "out of memory");
    }
    if (n == 1)
        return emit(P, first, prepend, eff, depth + 1);
    /* The links that travel embedded carry what they need: errbacks on
     * each, and the chain's own callbacks, group and chord on the last. */
    int rc = extend_opt(P, last, "link", eff->links);
    json_t *lo = options_of(last);
    if (rc == CEL_OK &&
        ((eff->group_id && json_object_set_new(lo, "group_id", json_string(eff->group_id))) ||
         (eff->group_index >= 0 &&
          json_object_set_new(lo, "group_index", json_integer(eff->group_index))) ||
         (eff->chord && json_object_set(lo, "chord", eff->chord))))
        rc = fail(P, CEL_ENOMEM, "out of memory");
    json_t *rest = json_array();
    if (rc == CEL_OK && (!rest || (eff->chain && json_array_extend(rest, eff->chain))))
        rc = fail(P, CEL_ENOMEM, "out of memory");
    for (size_t i = n; rc == CEL_OK && i-- > 1;) {
        json_t *t = json_array_get(tasks, i);
        if ((rc = extend_opt(P, t, "link_error", eff->errbacks)) == CEL_OK &&
            json_array_append(rest, t))
            rc = fail(P, CEL_ENOMEM, "out of memory");
    }
    struct tail ft = {.group_index = -1, .chain = rest, .errbacks = eff->errbacks};
    if (rc == CEL_OK)
        rc = emit(P, first, prepend, &ft, depth + 1);
    json_decref(rest);
    return rc;
}

static int emit_chord(struct planner *P, json_t *sig, const json_t *prepend, const struct tail *eff,
                      int depth);

/* A group followed by more work is a chord whose body is the next link. */
static int group_to_chord(struct planner *P, json_t *sig, const json_t *prepend,
                          const struct tail *eff, int depth)
{
    size_t n = json_array_size(eff->chain);
    json_t *body = json_deep_copy(json_array_get(eff->chain, n - 1));
    json_t *chord = body ? json_pack("{s:s, s:[], s:{s:O, s:o}, s:{}, s:s, s:b}", "task",
                                     "celery.chord", "args", "kwargs", "header", sig, "body", body,
                                     "options", "subtask_type", "chord", "immutable", 0)
                         : NULL;
    json_t *rest = json_array();
    int rc = chord && rest ? CEL_OK : fail(P, CEL_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CEL_OK && i + 1 < n; i++)
        if (json_array_append(rest, json_array_get(eff->chain, i)))
            rc = fail(P, CEL_ENOMEM, "out of memory");
    if (rc == CEL_OK && (rc = complete(P, body)) == CEL_OK)
        rc = freeze(P, body, NULL, depth + 1);
    struct tail ct = *eff;
    ct.chain = rest;
    if (rc == CEL_OK)
        rc = emit_chord(P, chord, prepend, &ct, depth + 1);
    json_decref(rest);
    json_decref(chord);
    return rc;
}

static int emit_group(struct planner *P, json_t *sig, const json_t *prepend, const struct tail *eff,
                      int depth)
{
    if (json_array_size(eff->links))
        return fail(P, CEL_EINVAL, "cannot link a group: use a chord");
    if (json_array_size(eff->chain))
        return group_to_chord(P, sig, prepend, eff, depth);
    json_t *tasks = members_of(sig, "tasks");
    /* Inside a chord (the last link of a header member), its members
     * join that chord, at the place of the chain they end: Celery 5.2.6
     * applies the group with its own options, so each member is sent
     * with the chain's group_index, not its index in this group. */
    bool in_chord = eff->chord && eff->group_id;
    const char *gid = in_chord ? eff->group_id : result_id(sig, 0);
    for (size_t i = 0; i < json_array_size(tasks); i++) {
        struct tail mt = {.group_id = gid,
                          .group_index = in_chord ? eff->group_index : -1,
                          .chord = eff->chord,
                          .errbacks = eff->errbacks};
        int rc = emit(P, json_array_get(tasks, i), prepend, &mt, depth + 1);
        if (rc)
            return rc;
    }
    return CEL_OK;
}

/* Whether the result of `sig` is a group result (a group, or a chain
 * ending in one). */
static bool yields_group(const json_t *sig, int depth)
{
    if (depth > CANVAS_MAX_DEPTH)
        return false;
    switch (kind_of(sig)) {
    case K_CHAIN: {
        json_t *tasks = members_of(sig, "tasks");
        return yields_group(json_array_get(tasks, json_array_size(tasks) - 1), depth + 1);
    }
    case K_GROUP:
    case K_CHUNKS:
        return true;
    default:
        return false;
    }
}

/* The result tuple of a frozen `sig` (reference/celery-protocol.md 6.5);
 * NULL when out of memory. */
static json_t *result_tuple(const json_t *sig, int depth)
{
    if (depth > CANVAS_MAX_DEPTH)
        return NULL;
    const char *id = result_id(sig, 0);
    if (kind_of(sig) == K_CHAIN) {
        json_t *tasks = members_of(sig, "tasks");
        return result_tuple(json_array_get(tasks, json_array_size(tasks) - 1), depth + 1);
    }
    if (!yields_group(sig, depth) || !id)
        return json_pack("[[s?, n], n]", id);
    json_t *members = json_array(), *tasks = members_of(sig, "tasks");
    for (size_t i = 0; members && i < json_array_size(tasks); i++)
        if (json_array_append_new(members, result_tuple(json_array_get(tasks, i), depth + 1)))
            json_decref(members), members = NULL;
    return members ? json_pack("[[s, n], o]", id, members) : NULL;
}

/* Celery's apply_chord saves the header's GroupResult when a member's
 * result is itself a group (a "complex" header), so the join can give
 * the body its results in that shape. The document to save, or NULL
 * (*rc set on failure) when the header is simple. */
static char *complex_header(struct planner *P, const json_t *header, int *rc)
{
    *rc = CEL_OK;
    json_t *tasks = members_of(header, "tasks");
    bool nested = false;
    for (size_t i = 0; !nested && i < json_array_size(tasks); i++)
        nested = yields_group(json_array_get(tasks, i), 0);
    if (!nested)
        return NULL;
    json_t *tuple = result_tuple(header, 0);
    json_t *doc = tuple ? json_pack("{s:o}", "result", tuple) : NULL;
    char *text = doc ? cel__json_dump(doc) : NULL;
    json_decref(doc);
    if (!text)
        *rc = fail(P, CEL_ENOMEM, "out of memory");
    return text;
}

static int record_chord(struct planner *P, const char *gid, int size, char *saved_header)
{
    struct cel_canvas_plan *out = P->out;
    if (out->nchords == P->cap_chords) {
        size_t cap = P->cap_chords ? P->cap_chords * 2 : 4;
        void *p = realloc(out->chords, cap * sizeof *out->chords);
        if (!p) {
            free(saved_header);
            return fail(P, CEL_ENOMEM, "out of memory");
        }
        out->chords = p;
        P->cap_chords = cap;
    }
    snprintf(out->chords[out->nchords].id, sizeof out->chords[0].id, "%s", gid);
    out->chords[out->nchords].saved_header = saved_header;
    out->chords[out->nchords++].size = size;
    return CEL_OK;
}

static int emit_chord(struct planner *P, json_t *sig, const json_t *prepend, const struct tail *eff,
                      int depth)
{
    json_t *kw = json_object_get(sig, "kwargs");
    json_t *header = json_object_get(kw, "header"), *body = json_object_get(kw, "body");
    /* What follows the chord follows its body: the body carries it in its
     * options to whoever completes the chord. */
    json_t *bo = options_of(body);
    int rc = extend_opt(P, body, "link", eff->links);
    if (rc == CEL_OK)
        rc = extend_opt(P, body, "link_error", eff->errbacks);
    if (rc == CEL_OK && eff->chain) {
        json_t *chain = json_copy(eff->chain);
        json_t *own = json_object_get(bo, "chain");
        if (!chain || (json_is_array(own) && json_array_extend(chain, own)) ||
            json_object_set_new(bo, "chain", chain))
            rc = fail(P, CEL_ENOMEM, "out of memory");
    }
    if (rc == CEL_OK &&
        ((eff->group_id && json_object_set_new(bo, "group_id", json_string(eff->group_id))) ||
         (eff->group_index >= 0 &&
          json_object_set_new(bo, "group_index", json_integer(eff->group_index))) ||
         (eff->chord && json_object_set(bo, "chord", eff->chord))))
        rc = fail(P, CEL_ENOMEM, "out of memory");
    if (rc)
        return rc;
    json_t *tasks = members_of(header, "tasks");
    if (!json_array_size(tasks)) { /* nothing to wait for: the body runs on [] */
        json_t *none = json_array();
        rc = none ? emit(P, body, none, &NO_TAIL, depth + 1) : fail(P, CEL_ENOMEM, "out of memory");
        json_decref(none);
        return rc;
    }
    const char *gid = result_id(header, 0);
    char *saved = complex_header(P, header, &rc);
    if (rc || (rc = record_chord(P, gid, descend(header, 0), saved)))
        return rc;
    for (size_t i = 0; i < json_array_size(tasks); i++) {
        struct tail mt = {.group_id = gid, .group_index = (int)i, .chord = body};
        if ((rc = emit(P, json_array_get(tasks, i), prepend, &mt, depth + 1)))
            return rc;
    }
    return CEL_OK;
}

static int emit(struct planner *P, json_t *sig, const json_t *prepend, const struct tail *t,
                int depth)
{
    if (depth > 4 * CANVAS_MAX_DEPTH)
        return fail(P, CEL_EINVAL, "canvas nested too deeply");
    struct tail eff;
    int rc = effective(P, sig, t, &eff);
    if (rc == CEL_OK) {
        switch (kind_of(sig)) {
        case K_CHAIN:
            rc = emit_chain(P, sig, prepend, &eff, depth);
            break;
        case K_GROUP:
        case K_CHUNKS: /* frozen into a group already */
            rc = emit_group(P, sig, prepend, &eff, depth);
            break;
        case K_CHORD:
            rc = emit_chord(P, sig, prepend, &eff, depth);
            break;
        case K_TASK:
            rc = emit_task(P, sig, prepend, &eff);
            break;
        }
    }
    tail_release(&eff);
    return rc;
}

/* ---- entry points ---- */

static void plan_init(struct cel_canvas_plan *out)
{
    memset(out, 0, sizeof *out);
}

/* Freezes and emits `sig` (borrowed) into P->out with tail `t`. */
static int plan_one(struct planner *P, const json_t *sig, const json_t *prepend,
                    const struct tail *t, json_t **frozen)
{
    json_t *copy = json_deep_copy(sig);
    if (!copy)
        return json_is_object(sig) ? fail(P, CEL_ENOMEM, "out of memory")
                                   : fail(P, CEL_EINVAL, "a signature must be a JSON object");
    int rc = freeze(P, copy, P->ctx->task_id, 0);
    if (rc == CEL_OK)
        rc = emit(P, copy, prepend, t, 0);
    if (rc == CEL_OK && frozen)
        *frozen = copy;
    else
        json_decref(copy);
    return rc;
}

/* The workflow's value: whose result, and for a group its members'. */
static int set_result(struct planner *P, const json_t *frozen)
{
    struct cel_canvas_plan *out = P->out;
    snprintf(out->result_id, sizeof out->result_id, "%s", result_id(frozen, 0));
    /* A chain's value is its last step's, and that step may be a group
     * (chain(a, group(b, c)) gives the list of b's and c's results). */
    const json_t *last = frozen;
    for (int depth = 0; kind_of(last) == K_CHAIN && depth <= CANVAS_MAX_DEPTH; depth++) {
        json_t *steps = members_of(last, "tasks");
        last = json_array_get(steps, json_array_size(steps) - 1);
    }
    if (kind_of(last) != K_GROUP && kind_of(last) != K_CHUNKS)
        return CEL_OK;
    json_t *tasks = members_of(last, "tasks");
    out->is_group = true;
    out->nmembers = json_array_size(tasks);
    out->member_ids = calloc(out->nmembers ? out->nmembers : 1, sizeof *out->member_ids);
    if (!out->member_ids)
        return fail(P, CEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < out->nmembers; i++) {
        const char *id = result_id(json_array_get(tasks, i), 0);
        snprintf(out->member_ids[i], sizeof out->member_ids[i], "%s", id ? id : "");
    }
    return CEL_OK;
}

int cel__canvas_plan(const json_t *sig, const json_t *prepend, const struct cel_canvas_ctx *ctx,
                     struct cel_canvas_plan *out, char *err, size_t errlen)
{
    static const struct cel_canvas_ctx none = {.group_index = -1};
    if (!out)
        return cel__errf(err, errlen, CEL_EINVAL, "no plan");
    plan_init(out);
    struct planner P = {.out = out, .ctx = ctx ? ctx : &none, .err = err, .errlen = errlen};
    struct tail t = {
        .group_id = P.ctx->group_id,
        .group_index = P.ctx->group_id ? P.ctx->group_index : -1,
        .chord = (json_t *)P.ctx->chord,
        .chain = (json_t *)P.ctx->chain,
    };
    json_t *frozen = NULL;
    int rc = plan_one(&P, sig, prepend, &t, &frozen);
    if (rc == CEL_OK)
        rc = set_result(&P, frozen);
    json_decref(frozen);
    if (rc)
        cel__canvas_plan_release(out);
    return rc;
}

void cel__canvas_plan_release(struct cel_canvas_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nmsgs; i++) {
        free(p->msgs[i].body);
        free(p->msgs[i].queue);
    }
    free(p->msgs);
    for (size_t i = 0; i < p->nchords; i++)
        free(p->chords[i].saved_header);
    free(p->chords);
    free(p->member_ids);
    plan_init(p);
}

static json_t *group_of(json_t *tasks)
{
    return json_pack("{s:s, s:[], s:{s:O}, s:{}, s:s, s:b}", "task", "celery.group", "args",
                     "kwargs", "tasks", tasks, "options", "subtask_type", "group", "immutable", 0);
}

/* Celery's trace: one callback goes as it is; several go as one group
 * (groups among them each on their own), all with the result. */
static int plan_callbacks(struct planner *P, const json_t *cbs, const json_t *result)
{
    size_t n = json_array_size(cbs);
    if (n == 1)
        return plan_one(P, json_array_get(cbs, 0), result, &NO_TAIL, NULL);
    json_t *plain = json_array();
    int rc = plain ? CEL_OK : fail(P, CEL_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        json_t *cb = json_array_get(cbs, i);
        if (json_is_object(cb) && kind_of(cb) == K_GROUP)
            rc = plan_one(P, cb, result, &NO_TAIL, NULL);
        else if (json_array_append(plain, cb))
            rc = fail(P, CEL_ENOMEM, "out of memory");
    }
    if (rc == CEL_OK && json_array_size(plain)) {
        json_t *g = group_of(plain);
        rc = g ? plan_one(P, g, result, &NO_TAIL, NULL) : fail(P, CEL_ENOMEM, "out of memory");
        json_decref(g);
    }
    json_decref(plain);
    return rc;
}

int cel__canvas_followups(const struct cel_message *m, const json_t *result,
                          struct cel_canvas_plan *out, char *err, size_t errlen)
{
    if (!out || !m || !m->id)
        return cel__errf(err, errlen, CEL_EINVAL, "no message or plan");
    plan_init(out);
    struct cel_canvas_ctx ctx = {
        .parent_id = m->id,
        .root_id = m->root_id ? m->root_id : m->id,
        .group_index = -1,
    };
    struct planner P = {.out = out, .ctx = &ctx, .err = err, .errlen = errlen};
    const json_t *embed = m->embed;
    int rc = CEL_OK;
    if (result) {
        /* Callbacks and the next link go out at the task's priority. */
        ctx.priority = m->priority;
        json_t *cbs = json_object_get(embed, "callbacks");
        if (json_array_size(cbs))
            rc = plan_callbacks(&P, cbs, result);
        json_t *chain = json_object_get(embed, "chain");
        size_t n = json_array_size(chain);
        if (rc == CEL_OK && n) {
            json_t *rest = json_array();
            for (size_t i = 0; rest && i + 1 < n; i++)
                if (json_array_append(rest, json_array_get(chain, i)))
                    json_decref(rest), rest = NULL;
            struct tail t = {.group_index = -1, .chain = rest};
            rc = rest ? plan_one(&P, json_array_get(chain, n - 1), result, &t, NULL)
                      : fail(&P, CEL_ENOMEM, "out of memory");
            json_decref(rest);
        }
    } else {
        /* Errbacks go as one group called with the failed task's id. */
        json_t *ebs = json_object_get(embed, "errbacks");
        if (json_array_size(ebs)) {
            json_t *g = group_of(ebs), *id = json_string(m->id);
            rc = g && id ? plan_one(&P, g, id, &NO_TAIL, NULL)
                         : fail(&P, CEL_ENOMEM, "out of memory");
            json_decref(g);
            json_decref(id);
        }
    }
    if (rc)
        cel__canvas_plan_release(out);
    return rc;
}

json_t *cel__canvas_join_entry(const char *task_id, const char *state, const json_t *value)
{
    return json_pack("[i, s, s, O]", 1, task_id, state, value ? (json_t *)value : json_null());
}
