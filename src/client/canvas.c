/*
 * canvas.c - building signatures and workflows (celeriac/canvas.h).
 *
 * A cel_sig is nothing but Celery's signature dict as a jansson object:
 * what Python's canvas serialises, in Python's key order (task, args,
 * kwargs, options, subtask_type, immutable). Keeping the dict itself,
 * rather than a C struct that is turned into one, makes to/from JSON
 * trivial and lets cel__canvas_plan() read a signature as it reads one
 * that arrived in a message.
 *
 * Builders take their inputs on every path (canvas.h): each one starts
 * by adopting all of them, so a failure frees them in one place.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/canvas_internal.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/json_util.h"

/* The detail behind a NULL or a negative return; one per thread because
 * a cel_sig has no handle to keep it in when construction fails. Never
 * cleared on success: a builder handed the NULL of a failed constructor
 * keeps that constructor's reason, whatever order C evaluated the
 * arguments in. */
static _Thread_local char last_err[CEL_ERRBUF_SIZE];

int cel__sig_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_err, sizeof last_err, fmt, ap);
    va_end(ap);
    return code;
}

const char *cel_sig_errmsg(void)
{
    return last_err;
}

cel_sig *cel__sig_adopt(json_t *j)
{
    if (!j) {
        cel__sig_err(CEL_ENOMEM, "out of memory");
        return NULL;
    }
    cel_sig *s = malloc(sizeof *s);
    if (!s) {
        json_decref(j);
        cel__sig_err(CEL_ENOMEM, "out of memory");
        return NULL;
    }
    s->j = j;
    return s;
}

/* Celery's dict for a signature: every key present, in Python's order.
 * Steals args, kwargs and options. */
json_t *cel__sig_dict(const char *task, json_t *args, json_t *kwargs, json_t *options,
                      const char *subtask_type, bool immutable)
{
    json_t *j = json_object();
    /* Each set steals its value even on failure, so every part is set
     * (or dropped) whatever happened before it. */
    int bad = !j || !args || !kwargs || !options;
    bad |= json_object_set_new(j, "task", json_string(task));
    bad |= json_object_set_new(j, "args", args);
    bad |= json_object_set_new(j, "kwargs", kwargs);
    bad |= json_object_set_new(j, "options", options);
    bad |= json_object_set_new(j, "subtask_type",
                               subtask_type ? json_string(subtask_type) : json_null());
    bad |= json_object_set_new(j, "immutable", json_boolean(immutable));
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Parses text that must be a JSON value of `type` ("array"/"object");
 * NULL text gives the empty one. */
static json_t *parse_part(const char *text, bool array, const char *what)
{
    if (!text)
        return array ? json_array() : json_object();
    char why[160];
    json_t *v = cel__json_parse(text, strlen(text), CEL_JSON_MAX_DEPTH, why, sizeof why);
    if (!v) {
        cel__sig_err(CEL_EJSON, "%s is not JSON: %s", what, why);
        return NULL;
    }
    if (array ? !json_is_array(v) : !json_is_object(v)) {
        json_decref(v);
        cel__sig_err(CEL_EINVAL, "%s must be a JSON %s", what, array ? "array" : "object");
        return NULL;
    }
    return v;
}

cel_sig *cel_sig_new(const char *task, const char *args_json, const char *kwargs_json)
{
    if (!task || !*task) {
        cel__sig_err(CEL_EINVAL, "task name is empty");
        return NULL;
    }
    json_t *args = parse_part(args_json, true, "args");
    if (!args)
        return NULL;
    json_t *kwargs = parse_part(kwargs_json, false, "kwargs");
    if (!kwargs) {
        json_decref(args);
        return NULL;
    }
    return cel__sig_adopt(cel__sig_dict(task, args, kwargs, json_object(), NULL, false));
}

cel_sig *cel_sig_dup(const cel_sig *s)
{
    if (!s) {
        cel__sig_err(CEL_EINVAL, "no signature");
        return NULL;
    }
    return cel__sig_adopt(json_deep_copy(s->j));
}

void cel_sig_free(cel_sig *s)
{
    if (!s)
        return;
    json_decref(s->j);
    free(s);
}

/* Takes the signature's dict and frees the wrapper. */
static json_t *take(cel_sig *s)
{
    json_t *j = s->j;
    free(s);
    return j;
}

const char *cel_sig_task(const cel_sig *s)
{
    return s ? cel__json_cstr(json_object_get(s->j, "task")) : NULL;
}

const char *cel_sig_task_id(const cel_sig *s)
{
    return s ? cel__json_cstr(json_object_get(json_object_get(s->j, "options"), "task_id")) : NULL;
}

/* --- options ------------------------------------------------------ */

/* Sets options[key] to `v` or, with `remove`, deletes it; steals `v` either way. */
static int set_opt(cel_sig *s, const char *key, json_t *v, bool remove)
{
    if (!s) {
        json_decref(v);
        return cel__sig_err(CEL_EINVAL, "no signature");
    }
    json_t *o = json_object_get(s->j, "options");
    if (remove) {
        json_decref(v);
        json_object_del(o, key);
        return CEL_OK;
    }
    if (!v || json_object_set_new(o, key, v) != 0)
        return cel__sig_err(CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

int cel_sig_set_queue(cel_sig *s, const char *queue)
{
    return set_opt(s, "queue", queue ? json_string(queue) : NULL, !queue || !*queue);
}

static bool good_seconds(double v)
{
    return v >= 0 && v < 1e12; /* also refuses NaN */
}

int cel_sig_set_countdown(cel_sig *s, double seconds)
{
    if (!good_seconds(seconds))
        return cel__sig_err(CEL_EINVAL, "countdown must be a number of seconds >= 0");
    if (s && seconds > 0 && json_object_get(json_object_get(s->j, "options"), "eta"))
        return cel__sig_err(CEL_EINVAL, "give countdown or eta, not both");
    return set_opt(s, "countdown", json_real(seconds), seconds == 0);
}

int cel_sig_set_eta(cel_sig *s, double unix_seconds)
{
    if (!good_seconds(unix_seconds))
        return cel__sig_err(CEL_EINVAL, "eta must be Unix seconds >= 0");
    if (s && unix_seconds > 0 && json_object_get(json_object_get(s->j, "options"), "countdown"))
        return cel__sig_err(CEL_EINVAL, "give countdown or eta, not both");
    /* Celery's JSON encoder writes datetimes as ISO 8601 text. */
    char iso[64];
    cel__iso8601((int64_t)llround(unix_seconds * 1e6), true, iso, sizeof iso);
    return set_opt(s, "eta", unix_seconds > 0 ? json_string(iso) : NULL, unix_seconds == 0);
}

int cel_sig_set_priority(cel_sig *s, int priority)
{
    if (priority < -1 || priority > 9)
        return cel__sig_err(CEL_EINVAL, "priority %d is out of range 0..9", priority);
    return set_opt(s, "priority", priority >= 0 ? json_integer(priority) : NULL, priority < 0);
}

int cel_sig_set_task_id(cel_sig *s, const char *task_id)
{
    return set_opt(s, "task_id", task_id ? json_string(task_id) : NULL, !task_id || !*task_id);
}

int cel_sig_set_immutable(cel_sig *s, bool immutable)
{
    if (!s)
        return cel__sig_err(CEL_EINVAL, "no signature");
    if (json_object_set_new(s->j, "immutable", json_boolean(immutable)) != 0)
        return cel__sig_err(CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

int cel_sig_set_option(cel_sig *s, const char *key, const char *value_json)
{
    if (!key || !*key)
        return cel__sig_err(CEL_EINVAL, "option name is empty");
    if (!value_json)
        return set_opt(s, key, NULL, true);
    char why[160];
    json_t *v =
        cel__json_parse(value_json, strlen(value_json), CEL_JSON_MAX_DEPTH, why, sizeof why);
    if (!v)
        return cel__sig_err(CEL_EJSON, "option '%s' is not JSON: %s", key, why);
    return set_opt(s, key, v, false);
}

/* Appends `cb` to options[key], a list as Python keeps link/link_error
 * once there may be several. Takes `cb`. */
static int add_link(cel_sig *s, const char *key, cel_sig *cb)
{
    if (!s || !cb) {
        cel_sig_free(cb);
        return cel__sig_err(CEL_EINVAL, "no signature");
    }
    json_t *o = json_object_get(s->j, "options");
    json_t *list = json_object_get(o, key);
    json_t *cbj = take(cb);
    if (json_is_object(list)) { /* one link as a plain dict: make it a list */
        json_t *l = json_array();
        if (!l || json_array_append(l, list) || json_object_set_new(o, key, l)) {
            json_decref(cbj);
            return cel__sig_err(CEL_ENOMEM, "out of memory");
        }
        list = l;
    } else if (!json_is_array(list)) {
        list = json_array();
        if (!list || json_object_set_new(o, key, list)) {
            json_decref(cbj);
            return cel__sig_err(CEL_ENOMEM, "out of memory");
        }
    }
    if (json_array_append_new(list, cbj) != 0)
        return cel__sig_err(CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

int cel_sig_link(cel_sig *s, cel_sig *callback)
{
    return add_link(s, "link", callback);
}

int cel_sig_link_error(cel_sig *s, cel_sig *errback)
{
    return add_link(s, "link_error", errback);
}

/* --- workflows ---------------------------------------------------- */

/* Adopts sigs[0..n) into a JSON list; NULL (all freed) when one is NULL. */
static json_t *take_all(cel_sig **sigs, size_t n, const char *what)
{
    json_t *list = json_array();
    bool bad = !list || !sigs || n == 0;
    for (size_t i = 0; sigs && i < n; i++) {
        if (!sigs[i]) {
            bad = true;
            continue;
        }
        json_t *j = take(sigs[i]);
        if (bad || json_array_append_new(list, j) != 0) {
            bad = true;
            json_decref(j);
        }
    }
    if (!bad)
        return list;
    json_decref(list);
    if (!sigs || n == 0)
        cel__sig_err(CEL_EINVAL, "a %s needs at least one signature", what);
    else if (!last_err[0])
        cel__sig_err(CEL_EINVAL, "a %s was given a NULL signature", what);
    return NULL;
}

/* {"task": name, "args": [], "kwargs": {"tasks": list}, ...}; steals list. */
static cel_sig *tasks_sig(const char *name, const char *type, json_t *list)
{
    if (!list)
        return NULL;
    json_t *kw = json_object();
    /* json_object_set_new() steals its value even when it fails (also on
     * a NULL object), which keeps these paths leak-free. */
    if (json_object_set_new(kw, "tasks", list)) {
        json_decref(kw);
        cel__sig_err(CEL_ENOMEM, "out of memory");
        return NULL;
    }
    return cel__sig_adopt(cel__sig_dict(name, json_array(), kw, json_object(), type, false));
}

cel_sig *cel_chain(cel_sig **sigs, size_t n)
{
    /* Errors from constructors that produced the NULLs stay readable. */
    return tasks_sig("celery.chain", "chain", take_all(sigs, n, "chain"));
}

cel_sig *cel_group(cel_sig **sigs, size_t n)
{
    return tasks_sig("celery.group", "group", take_all(sigs, n, "group"));
}

static bool is_type(const json_t *sig, const char *type)
{
    const char *t = json_string_value(json_object_get(sig, "subtask_type"));
    return t && strcmp(t, type) == 0;
}

cel_sig *cel_chord(cel_sig *header, cel_sig *body)
{
    if (!header || !body) {
        cel_sig_free(header);
        cel_sig_free(body);
        if (!last_err[0])
            cel__sig_err(CEL_EINVAL, "a chord needs a header and a body");
        return NULL;
    }
    if (!is_type(header->j, "group")) /* Python's chord() makes a group of it */
        header = tasks_sig("celery.group", "group", take_all(&header, 1, "group"));
    json_t *bj = take(body);
    json_t *kw = json_object();
    json_t *hj = header ? take(header) : NULL;
    int bad = json_object_set_new(kw, "kwargs", json_object());
    bad |= json_object_set_new(kw, "header", hj);
    bad |= json_object_set_new(kw, "body", bj);
    if (bad) {
        json_decref(kw);
        cel__sig_err(CEL_ENOMEM, "out of memory");
        return NULL;
    }
    return cel__sig_adopt(
        cel__sig_dict("celery.chord", json_array(), kw, json_object(), "chord", false));
}

/* A "celery.map"/"celery.starmap" signature over `items` (stolen), as
 * Python's xmap/xstarmap: immutable, kwargs {"task": sig, "it": items}. */
static cel_sig *map_sig(const char *name, const char *task, json_t *items)
{
    json_t *inner = cel__sig_dict(task, json_array(), json_object(), json_object(), NULL, false);
    json_t *kw = json_object();
    int bad = json_object_set_new(kw, "task", inner);
    bad |= json_object_set_new(kw, "it", items);
    if (bad) {
        json_decref(kw);
        cel__sig_err(CEL_ENOMEM, "out of memory");
        return NULL;
    }
    return cel__sig_adopt(cel__sig_dict(name, json_array(), kw, json_object(), NULL, true));
}

static cel_sig *map_from_text(const char *name, const char *task, const char *items_json,
                              bool starmap)
{
    if (!task || !*task) {
        cel__sig_err(CEL_EINVAL, "task name is empty");
        return NULL;
    }
    json_t *items = parse_part(items_json ? items_json : "[]", true, "items");
    if (!items)
        return NULL;
    if (starmap) {
        size_t i;
        json_t *v;
        json_array_foreach(items, i, v) if (!json_is_array(v))
        {
            json_decref(items);
            cel__sig_err(CEL_EINVAL, "item %zu is not an argument array", i);
            return NULL;
        }
    }
    return map_sig(name, task, items);
}

cel_sig *cel_map(const char *task, const char *items_json)
{
    return map_from_text("celery.map", task, items_json, false);
}

cel_sig *cel_starmap(const char *task, const char *items_json)
{
    return map_from_text("celery.starmap", task, items_json, true);
}

cel_sig *cel_chunks(const char *task, const char *items_json, size_t chunk_size)
{
    if (chunk_size == 0) {
        cel__sig_err(CEL_EINVAL, "chunk size must be at least 1");
        return NULL;
    }
    /* Validated whole first, then cut: what Python's chunks.group() sends
     * is a group of starmaps over consecutive slices. */
    cel_sig *all = map_from_text("celery.starmap", task, items_json, true);
    if (!all)
        return NULL;
    json_t *items = json_object_get(json_object_get(all->j, "kwargs"), "it");
    size_t n = json_array_size(items), nchunks = (n + chunk_size - 1) / chunk_size;
    if (nchunks == 0) {
        cel_sig_free(all);
        cel__sig_err(CEL_EINVAL, "chunks of an empty item list");
        return NULL;
    }
    cel_sig **parts = calloc(nchunks, sizeof *parts);
    if (!parts) {
        cel_sig_free(all);
        cel__sig_err(CEL_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t c = 0; c < nchunks; c++) {
        json_t *slice = json_array();
        for (size_t i = c * chunk_size; slice && i < n && i < (c + 1) * chunk_size; i++)
            if (json_array_append(slice, json_array_get(items, i)) != 0) {
                json_decref(slice);
                slice = NULL;
            }
        parts[c] = slice ? map_sig("celery.starmap", task, slice) : NULL;
    }
    cel_sig_free(all);
    cel_sig *g = cel_group(parts, nchunks);
    free(parts);
    return g;
}
