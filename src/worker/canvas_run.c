/* canvas_run.c - see canvas_run.h. */
#include "worker/canvas_run.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/canvas.h"
#include "proto/message.h"
#include "worker/exec_backend.h"
#include "worker/execute.h"
#include "worker/task_context.h"

/* ---- publishing a plan ---- */

/* Celery's result tuple of a message: [[id, null], null]. */
static int add_child(struct cel_task *t, json_t *tuple)
{
    if (!tuple)
        return CEL_ENOMEM;
    if (!t->children && !(t->children = json_array())) {
        json_decref(tuple);
        return CEL_ENOMEM;
    }
    return json_array_append_new(t->children, tuple) ? CEL_ENOMEM : CEL_OK;
}

/* A complex chord header (canvas.h saved_header), saved by this process
 * itself: it is written before the chord's size and header messages,
 * which wait for this task's ack, so no member can complete the chord
 * before it exists. A save that outlives a run that then fails is
 * harmless: nothing joins a chord whose header was never sent. */
static int save_header(struct cel_task *t, const struct cel_canvas_chord *ch)
{
    struct cel_errbuf err = {0};
    struct cel_backend *bk = cel__exec_backend(t->env, &err);
    if (bk && !bk->ops->group_save)
        return CEL_OK; /* this store joins it flat */
    int rc = bk ? bk->ops->group_save(bk, ch->id, ch->saved_header, strlen(ch->saved_header),
                                      t->env->result_ttl_s)
                : CEL_ENORESULT;
    if (rc != CEL_OK)
        CEL_ERROR("worker", "Task %s[%s]: cannot save the header of chord %s: %s", t->msg->task,
                  t->msg->id, ch->id, bk ? cel__backend_errmsg(bk) : err.msg);
    return rc;
}

/* Chord sizes first, then the messages, all with this task's ack. */
static int publish_plan(struct cel_task *t, const struct cel_canvas_plan *p)
{
    const struct cel_exec_io *io = t->io;
    if (p->nmsgs && (!io || !io->publish))
        return CEL_EIO;
    for (size_t i = 0; i < p->nchords; i++) {
        if (p->chords[i].saved_header && save_header(t, &p->chords[i]) != CEL_OK)
            return CEL_EIO;
        if (!io->chord_size) {
            CEL_WARN("worker",
                     "Task %s[%s]: this worker cannot record chord sizes; chord %s "
                     "(%d) skipped",
                     t->msg->task, t->msg->id, p->chords[i].id, p->chords[i].size);
            continue;
        }
        if (io->chord_size(io->ud, p->chords[i].id, p->chords[i].size) != 0)
            return CEL_EIO;
    }
    for (size_t i = 0; i < p->nmsgs; i++) {
        const struct cel_canvas_msg *m = &p->msgs[i];
        const struct cel_frame_publish pub = {.queue = m->queue,
                                              .priority = m->priority,
                                              .due_us = m->due_us,
                                              .task_id = m->id,
                                              .body = m->body,
                                              .len = m->len};
        if (io->publish(io->ud, &pub) != 0)
            return CEL_EIO;
    }
    return CEL_OK;
}

/* This task's ids as the sender of new work. */
static struct cel_canvas_ctx sender_ctx(const struct cel_task *t)
{
    const struct cel_message *m = t->msg;
    return (struct cel_canvas_ctx){
        .parent_id = m->id, .root_id = m->root_id ? m->root_id : m->id, .group_index = -1};
}

/* The workflow's value as Celery's result tuple: a group's
 * [[gid, null], [member tuples]], else [[id, null], null]. */
static json_t *plan_tuple(const struct cel_canvas_plan *p)
{
    if (!p->is_group)
        return json_pack("[[s, n], n]", p->result_id);
    json_t *members = json_array();
    for (size_t i = 0; members && i < p->nmembers; i++)
        if (json_array_append_new(members, json_pack("[[s, n], n]", p->member_ids[i])))
            json_decref(members), members = NULL;
    return members ? json_pack("[[s, n], o]", p->result_id, members) : NULL;
}

/* Plans `sig` (borrowed) under `ctx`, publishes it and records it among
 * this task's children. `tuple_out` (may be NULL) gets its result tuple. */
static int send_sig(struct cel_task *t, const json_t *sig, const struct cel_canvas_ctx *ctx,
                    char id_out[37], json_t **tuple_out)
{
    struct cel_canvas_plan p;
    char err[256];
    int rc = cel__canvas_plan(sig, NULL, ctx, &p, err, sizeof err);
    if (rc) {
        CEL_ERROR("worker", "Task %s[%s] cannot send a workflow: %s", t->msg->task, t->msg->id,
                  err);
        return rc;
    }
    rc = publish_plan(t, &p);
    json_t *tuple = rc == CEL_OK ? plan_tuple(&p) : NULL;
    if (rc == CEL_OK && tuple_out)
        *tuple_out = json_incref(tuple);
    if (rc == CEL_OK)
        rc = add_child(t, tuple);
    if (rc == CEL_OK && id_out)
        memcpy(id_out, p.result_id, sizeof p.result_id);
    cel__canvas_plan_release(&p);
    return rc;
}

static json_t *parse_sig(const char *sig_json)
{
    if (!sig_json)
        return NULL;
    json_t *sig = cel__json_parse(sig_json, strlen(sig_json), CEL_MESSAGE_MAX_DEPTH, NULL, 0);
    if (sig && !json_is_object(sig)) {
        json_decref(sig);
        return NULL;
    }
    return sig;
}

int cel_task_send_json(cel_task *t, const char *sig_json, char id_out[37])
{
    if (!t || !t->msg)
        return CEL_EINVAL;
    json_t *sig = parse_sig(sig_json);
    if (!sig)
        return CEL_EINVAL;
    struct cel_canvas_ctx ctx = sender_ctx(t);
    int rc = send_sig(t, sig, &ctx, id_out, NULL);
    json_decref(sig);
    return rc;
}

static bool is_group(const json_t *sig)
{
    const char *type = cel__json_cstr(json_object_get(sig, "subtask_type"));
    const char *task = cel__json_cstr(json_object_get(sig, "task"));
    return (type && strcmp(type, "group") == 0) || (task && strcmp(task, "celery.group") == 0);
}

/* options[key] += v (a list of signatures), keeping what is there. */
static int extend_option(json_t *sig, const char *key, const json_t *v)
{
    if (!json_array_size(v))
        return CEL_OK;
    json_t *opts = json_object_get(sig, "options");
    if (!json_is_object(opts)) {
        if (json_object_set_new(sig, "options", json_object()))
            return CEL_ENOMEM;
        opts = json_object_get(sig, "options");
    }
    json_t *cur = json_object_get(opts, key), *list = json_array();
    if (!list || (json_is_array(cur) && json_array_extend(list, cur)) ||
        (json_is_object(cur) && json_array_append(list, cur)) ||
        json_array_extend(list, (json_t *)v) || json_object_set_new(opts, key, list))
        return CEL_ENOMEM;
    return CEL_OK;
}

int cel_task_replace_json(cel_task *t, const char *sig_json)
{
    if (!t || !t->msg)
        return CEL_EINVAL;
    const struct cel_message *m = t->msg;
    json_t *sig = parse_sig(sig_json);
    if (!sig)
        return CEL_EINVAL;
    if (json_object_get(json_object_get(sig, "options"), "chord")) {
        json_decref(sig); /* Celery: "A signature to replace with can not be a chord" */
        return CEL_EINVAL;
    }
    /* A group becomes a chord whose body gives the group's results
     * (Celery links onto the body of it). */
    if (is_group(sig)) {
        json_t *c =
            json_pack("{s:s, s:[], s:{s:o, s:{s:s, s:[], s:{s:i}, s:{}, s:n, s:b}}, s:{}, "
                      "s:s, s:b}",
                      "task", "celery.chord", "args", "kwargs", "header", sig, "body", "task",
                      "celery.accumulate", "args", "kwargs", "index", 0, "options", "subtask_type",
                      "immutable", 0, "options", "subtask_type", "chord", "immutable", 0);
        if (!c)
            return CEL_ENOMEM;
        sig = c;
    }
    json_t *embed = m->embed;
    int rc = extend_option(sig, "link", json_object_get(embed, "callbacks"));
    if (rc == CEL_OK)
        rc = extend_option(sig, "link_error", json_object_get(embed, "errbacks"));
    json_t *chain = json_object_get(embed, "chain"), *chord = json_object_get(embed, "chord");
    json_t *gi = json_object_get(json_object_get(m->root, "headers"), "group_index");
    struct cel_canvas_ctx ctx = sender_ctx(t);
    ctx.chain = json_array_size(chain) ? chain : NULL;
    ctx.chord = json_is_object(chord) ? chord : NULL;
    ctx.group_id = m->group_id;
    ctx.group_index = json_is_integer(gi) ? (int)json_integer_value(gi) : -1;
    ctx.task_id = m->id;
    ctx.priority = m->priority;
    if (rc == CEL_OK)
        rc = send_sig(t, sig, &ctx, NULL, NULL);
    json_decref(sig);
    if (rc == CEL_OK) {
        t->replaced = true;
        CEL_INFO("worker", "Task %s[%s] replaced by a new workflow", m->task, m->id);
    }
    return rc;
}

/* ---- after a run ---- */

static void join_chord(struct cel_task *t, bool succeeded)
{
    const struct cel_message *m = t->msg;
    json_t *body = json_object_get(m->embed, "chord");
    if (!json_is_object(body) || !m->group_id)
        return;
    if (!t->io || !t->io->chord_join) {
        CEL_WARN("worker", "Task %s[%s]: this worker cannot join chords; chord %s not joined",
                 m->task, m->id, m->group_id);
        return;
    }
    json_t *value = succeeded ? json_incref(t->result)
                              : cel__exception_new(t->exc_type ? t->exc_type : "Exception",
                                                   t->exc_module ? t->exc_module : "builtins",
                                                   t->exc_message ? t->exc_message : "");
    json_t *entry = cel__canvas_join_entry(m->id, succeeded ? "SUCCESS" : "FAILURE", value);
    json_decref(value);
    char *entry_text = entry ? cel__json_dump(entry) : NULL;
    char *body_text = cel__json_dump(body);
    json_decref(entry);
    json_t *gi = json_object_get(json_object_get(m->root, "headers"), "group_index");
    const struct cel_chord_join j = {
        .group_id = m->group_id,
        .group_index = json_is_integer(gi) ? (int)json_integer_value(gi) : -1,
        .task_id = m->id,
        .root_id = m->root_id ? m->root_id : m->id,
        .body = body_text,
        .body_len = body_text ? strlen(body_text) : 0,
        .entry = entry_text,
        .entry_len = entry_text ? strlen(entry_text) : 0,
    };
    if (!entry_text || !body_text || t->io->chord_join(t->io->ud, &j) != 0)
        CEL_ERROR("worker", "Task %s[%s]: chord %s could not be joined", m->task, m->id,
                  m->group_id);
    free(entry_text);
    free(body_text);
}

void cel__canvas_after_run(struct cel_task *t, bool succeeded)
{
    const struct cel_message *m = t->msg;
    struct cel_canvas_plan p;
    char err[256];
    json_t *none = json_null();
    int rc = cel__canvas_followups(m, succeeded ? (t->result ? t->result : none) : NULL, &p, err,
                                   sizeof err);
    if (rc) {
        CEL_ERROR("worker", "Task %s[%s]: its follow-ups cannot be sent: %s", m->task, m->id, err);
    } else if (p.nmsgs || p.nchords) {
        if (publish_plan(t, &p) != CEL_OK)
            CEL_ERROR("worker", "Task %s[%s]: the worker did not take its follow-ups", m->task,
                      m->id);
        for (size_t i = 0; i < p.nmsgs; i++)
            add_child(t, json_pack("[[s, n], n]", p.msgs[i].id));
    }
    cel__canvas_plan_release(&p);
    join_chord(t, succeeded);
}

int cel__canvas_publish_plan(struct cel_task *t, const struct cel_canvas_plan *p)
{
    int rc = publish_plan(t, p);
    for (size_t i = 0; rc == CEL_OK && i < p->nmsgs; i++)
        rc = add_child(t, json_pack("[[s, n], n]", p->msgs[i].id));
    return rc;
}

/* ---- built-in tasks ---- */

static bool immutable_sig(const json_t *sig)
{
    return json_is_true(json_object_get(sig, "immutable"));
}

/* Runs the registered task named by `sig` in-process on `args`: Celery's
 * map and starmap call it directly, not through the broker. */
static int call_inline(struct cel_task *t, const cel_task_def *def, const json_t *sig, json_t *args,
                       json_t *results)
{
    if (!immutable_sig(sig) && json_array_extend(args, json_object_get(sig, "args")))
        return CEL_ENOMEM;
    json_t *kwargs = json_object_get(sig, "kwargs");
    json_t *empty = json_object();
    struct cel_message sub = *t->msg;
    sub.task = def->name;
    sub.args = args;
    sub.kwargs = json_is_object(kwargs) ? kwargs : empty;
    sub.embed = empty;
    struct cel_task st;
    cel__task_init(&st, &sub, t->hostname);
    st.def = def;
    st.reg = t->reg;
    st.policy = t->policy;
    st.started_mono_us = t->started_mono_us;
    cel__task_invoke(&st, def);
    int rc = CEL_OK;
    if (st.failed) {
        cel_task_fail(t, st.exc_type ? st.exc_type : "Exception", st.exc_module,
                      st.exc_message ? st.exc_message : "");
        rc = CEL_EIO;
    } else if (json_array_append(results, st.result ? st.result : json_null())) {
        rc = CEL_ENOMEM;
    }
    cel__task_release(&st);
    json_decref(empty);
    return rc;
}

static int run_each(cel_task *t, bool star)
{
    json_t *kw = t->msg->kwargs;
    json_t *sig = json_object_get(kw, "task"), *it = json_object_get(kw, "it");
    const char *name = cel__json_cstr(json_object_get(sig, "task"));
    if (!json_is_object(sig) || !json_is_array(it) || !name)
        return cel_task_fail(t, "TypeError", "builtins",
                             "expects kwargs task (a signature) and it (a list)");
    const cel_task_def *def = t->reg ? cel_registry_find(t->reg, name) : NULL;
    if (!def)
        return cel_task_fail(t, "NotRegistered", "celery.exceptions", name);
    json_t *results = json_array();
    int rc = results ? CEL_OK : CEL_ENOMEM;
    for (size_t i = 0; rc == CEL_OK && i < json_array_size(it); i++) {
        json_t *item = json_array_get(it, i);
        json_t *args = star ? json_copy(item) : json_pack("[O]", item);
        if (star && !json_is_array(item)) {
            json_decref(args);
            json_decref(results);
            return cel_task_fail(t, "TypeError", "builtins", "starmap items must be lists");
        }
        rc = args ? call_inline(t, def, sig, args, results) : CEL_ENOMEM;
        json_decref(args);
    }
    if (rc == CEL_OK) {
        json_decref(t->result);
        t->result = results;
        return CEL_OK;
    }
    json_decref(results);
    return t->failed ? CEL_OK : rc;
}

static int builtin_map(cel_task *t, void *ud)
{
    (void)ud;
    return run_each(t, false);
}

static int builtin_starmap(cel_task *t, void *ud)
{
    (void)ud;
    return run_each(t, true);
}

/* celery.group / chain / chord / chunks: the message's kwargs describe
 * the workflow (Celery's builtins take tasks, header/body, task/it/n,
 * partial_args, group_id); it is expanded here with this task as parent
 * and its value is the workflow's result tuple. */
static int builtin_expand(cel_task *t, void *ud)
{
    const char *type = ud;
    const struct cel_message *m = t->msg;
    json_t *partial = json_object_get(m->kwargs, "partial_args");
    json_t *gid = json_object_get(m->kwargs, "group_id");
    json_t *sig = json_pack("{s:s, s:O, s:O, s:{}, s:s, s:b}", "task", m->task, "args",
                            json_is_array(partial) ? partial : m->args, "kwargs", m->kwargs,
                            "options", "subtask_type", type, "immutable", 0);
    if (!sig)
        return CEL_ENOMEM;
    if (cel__json_cstr(gid))
        json_object_set(json_object_get(sig, "options"), "task_id", gid);
    struct cel_canvas_ctx ctx = sender_ctx(t);
    json_t *tuple = NULL;
    int rc = send_sig(t, sig, &ctx, NULL, &tuple);
    json_decref(sig);
    if (rc == CEL_EINVAL)
        return cel_task_fail(t, "ValueError", "builtins", "the workflow cannot be planned");
    if (rc)
        return rc;
    json_decref(t->result);
    t->result = tuple;
    return CEL_OK;
}

/* Celery's accumulate: its args, or the one at kwargs.index. */
static int builtin_accumulate(cel_task *t, void *ud)
{
    (void)ud;
    json_t *index = json_object_get(t->msg->kwargs, "index");
    json_t *args = t->msg->args;
    json_t *v = args;
    if (json_is_integer(index)) {
        json_int_t i = json_integer_value(index), n = (json_int_t)json_array_size(args);
        if (i < 0)
            i += n;
        if (i < 0 || i >= n)
            return cel_task_fail(t, "IndexError", "builtins", "tuple index out of range");
        v = json_array_get(args, (size_t)i);
    }
    json_decref(t->result);
    t->result = json_incref(v);
    return CEL_OK;
}

/* Results here expire by their TTL: nothing to clean. */
static int builtin_noop(cel_task *t, void *ud)
{
    (void)t;
    (void)ud;
    return CEL_OK;
}

static const cel_task_def BUILTINS[] = {
    CEL_TASK_DEF_INIT(.name = "celery.map", .fn = builtin_map),
    CEL_TASK_DEF_INIT(.name = "celery.starmap", .fn = builtin_starmap),
    CEL_TASK_DEF_INIT(.name = "celery.chunks", .fn = builtin_expand, .userdata = (void *)"chunks"),
    CEL_TASK_DEF_INIT(.name = "celery.group", .fn = builtin_expand, .userdata = (void *)"group"),
    CEL_TASK_DEF_INIT(.name = "celery.chain", .fn = builtin_expand, .userdata = (void *)"chain"),
    CEL_TASK_DEF_INIT(.name = "celery.chord", .fn = builtin_expand, .userdata = (void *)"chord"),
    CEL_TASK_DEF_INIT(.name = "celery.accumulate", .fn = builtin_accumulate),
    CEL_TASK_DEF_INIT(.name = "celery.backend_cleanup", .fn = builtin_noop),
    /* Celery's: polled until the header is ready, for as long as it takes
     * unless the message says otherwise; its own result is not kept. */
    CEL_TASK_DEF_INIT(.name = "celery.chord_unlock", .fn = cel__builtin_chord_unlock,
                      .max_retries = CEL_RETRIES_UNLIMITED, .ignore_result = true,
                      .default_retry_delay = 1.0),
};

const cel_task_def *cel__canvas_builtin(const char *name)
{
    for (size_t i = 0; name && i < sizeof BUILTINS / sizeof BUILTINS[0]; i++)
        if (strcmp(BUILTINS[i].name, name) == 0)
            return &BUILTINS[i];
    return NULL;
}
