/*
 * schedule_doc.c - a periodic entry's store document (schedule_doc.h).
 *
 * Writing and reading go through one check (check_entry), so a document
 * the API wrote is one beat can read, and a document changed behind the
 * API's back is refused with the same reasons.
 */
#include "client/schedule_doc.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/config_section.h"
#include "core/errbuf.h"
#include "core/json_util.h"

#define ENTRY_NAME_MAX 200

static const char *const kinds[] = {"cron", "every", "at", "when"};
static const char *const catch_up_names[] = {"default", "skip", "once", "all"};

/* The entry's schedule text under kinds[i], or NULL. */
static const char *schedule_text(const cel_schedule_entry *e, size_t i)
{
    const char *const texts[] = {e->cron, e->every, e->at, e->when};
    return texts[i];
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Parses `text` as JSON of type `want` ("array" or "object") into *out;
 * NULL text is the empty one. */
static int json_of_type(const char *field, const char *text, json_type want, json_t **out,
                        char *why, size_t whylen)
{
    *out = NULL;
    if (!text) {
        *out = want == JSON_ARRAY ? json_array() : json_object();
        return *out ? CEL_OK : cel__errf(why, whylen, CEL_ENOMEM, "out of memory");
    }
    char err[160];
    json_t *v = cel__json_parse(text, strlen(text), 0, err, sizeof err);
    if (!v)
        return cel__errf(why, whylen, CEL_EINVAL, "%s: not JSON: %s", field, err);
    if (json_typeof(v) != want) {
        json_decref(v);
        return cel__errf(why, whylen, CEL_EINVAL, "%s: expected a JSON %s", field,
                         want == JSON_ARRAY ? "array, such as [1, \"a\"]"
                                            : "object, such as {\"k\": 1}");
    }
    *out = v;
    return CEL_OK;
}

/* Everything the document holds beyond the entry's own fields. */
struct checked {
    size_t kind; /* index in kinds[] */
    struct cel_sched_spec spec;
    struct cel_tz *tz;
    json_t *args, *kwargs;
};

static void checked_clear(struct checked *c)
{
    cel__tz_free(c->tz);
    json_decref(c->args);
    json_decref(c->kwargs);
    memset(c, 0, sizeof *c);
}

static int check_entry(const cel_schedule_entry *e, const char *default_tz, struct checked *c,
                       char *why, size_t whylen)
{
    memset(c, 0, sizeof *c);
    if (!e || e->struct_size != sizeof(cel_schedule_entry))
        return cel__errf(why, whylen, CEL_EINVAL,
                         "the entry was not made with CEL_SCHEDULE_ENTRY_INIT");
    if (!e->name || !cel__config_name_ok(e->name, strlen(e->name)))
        return cel__errf(why, whylen, CEL_EINVAL,
                         "name: '%.64s' is not 1 to %d letters, digits, '_', '.', ':' or '-'",
                         e->name ? e->name : "", ENTRY_NAME_MAX);
    if (!e->task || !*e->task || has_control(e->task))
        return cel__errf(why, whylen, CEL_EINVAL, "task: a task name is required");
    if (e->queue && (!*e->queue || has_control(e->queue)))
        return cel__errf(why, whylen, CEL_EINVAL, "queue: '%.64s' is not a queue name", e->queue);
    if (e->has_priority && (e->priority < 0 || e->priority > 9))
        return cel__errf(why, whylen, CEL_EINVAL, "priority: %d is not between 0 and 9",
                         e->priority);
    if (!isfinite(e->expires) || e->expires < 0)
        return cel__errf(why, whylen, CEL_EINVAL, "expires: %g is not a number of seconds >= 0",
                         e->expires);
    if ((int)e->catch_up < CEL_CATCH_UP_DEFAULT || e->catch_up > CEL_CATCH_UP_ALL)
        return cel__errf(why, whylen, CEL_EINVAL, "catch_up: unknown policy %d", (int)e->catch_up);

    size_t given = 0;
    for (size_t i = 0; i < 4; i++)
        if (schedule_text(e, i)) {
            given++;
            c->kind = i;
        }
    if (given != 1)
        return cel__errf(why, whylen, CEL_EINVAL, "%s of cron, every, at or when is required",
                         given ? "only one" : "exactly one");
    const char *text = schedule_text(e, c->kind);
    struct cel_sched_error perr = {0};
    if (cel__sched_parse(kinds[c->kind], text, &c->spec, &perr) != CEL_OK)
        return cel__errf(why, whylen, CEL_EINVAL, "%s: %s", kinds[c->kind], perr.msg);

    const char *zone = e->tz ? e->tz : default_tz ? default_tz : "UTC";
    char tzwhy[160] = "";
    int rc = cel__tz_load(zone, &c->tz, tzwhy, sizeof tzwhy);
    if (rc != CEL_OK) {
        c->tz = NULL;
        return cel__errf(why, whylen, rc == CEL_ENOMEM ? CEL_ENOMEM : CEL_EINVAL, "tz: %s%s", tzwhy,
                         e->tz ? "" : " (the timezone option)");
    }
    if ((rc = json_of_type("args", e->args_json, JSON_ARRAY, &c->args, why, whylen)) != CEL_OK ||
        (rc = json_of_type("kwargs", e->kwargs_json, JSON_OBJECT, &c->kwargs, why, whylen)) !=
            CEL_OK) {
        checked_clear(c);
        return rc;
    }
    return CEL_OK;
}

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

int cel__schedule_doc_write(const cel_schedule_entry *e, const char *origin, int64_t created_s,
                            const char *default_tz, struct cel_buf *out, char *why, size_t whylen)
{
    struct checked c;
    int rc = check_entry(e, default_tz, &c, why, whylen);
    if (rc != CEL_OK)
        return rc;
    if (!origin || (strcmp(origin, "api") != 0 && strcmp(origin, "config") != 0)) {
        checked_clear(&c);
        return cel__errf(why, whylen, CEL_EINVAL, "origin: expected api or config");
    }
    json_t *doc = json_object();
    int bad = !doc;
    bad |= json_object_set_new(doc, "name", json_string(e->name));
    bad |= json_object_set_new(doc, "task", json_string(e->task));
    bad |= json_object_set(doc, "args", c.args);
    bad |= json_object_set(doc, "kwargs", c.kwargs);
    bad |= json_object_set_new(doc, kinds[c.kind], json_string(schedule_text(e, c.kind)));
    bad |= json_object_set_new(doc, "tz", string_or_null(e->tz));
    bad |= json_object_set_new(doc, "queue", string_or_null(e->queue));
    bad |= json_object_set_new(doc, "priority",
                               e->has_priority ? json_integer(e->priority) : json_null());
    bad |= json_object_set_new(doc, "expires",
                               e->expires == floor(e->expires) && e->expires < 1e15
                                   ? json_integer((json_int_t)e->expires)
                                   : json_real(e->expires));
    bad |= json_object_set_new(doc, "catch_up", json_string(catch_up_names[e->catch_up]));
    bad |= json_object_set_new(doc, "origin", json_string(origin));
    bad |= json_object_set_new(doc, "created", json_integer(created_s));
    char *text = bad ? NULL : cel__json_dump(doc);
    json_decref(doc);
    checked_clear(&c);
    if (!text)
        return cel__errf(why, whylen, CEL_ENOMEM, "out of memory");
    rc = cel__buf_appends(out, text);
    free(text);
    return rc == CEL_OK ? CEL_OK : cel__errf(why, whylen, rc, "out of memory");
}

/* ---- reading ----------------------------------------------------------- */

enum { S_NAME, S_TASK, S_ARGS, S_KWARGS, S_WHEN, S_TZ, S_QUEUE, S_ORIGIN, S_COUNT };

/* Strings of a def, gathered in one block; offsets until it is complete. */
struct strings {
    struct cel_buf buf;
    size_t off[S_COUNT];
    bool set[S_COUNT];
};

static int keep(struct strings *s, int slot, const char *text)
{
    if (!text)
        return CEL_OK;
    s->off[slot] = cel__buf_size(&s->buf);
    s->set[slot] = true;
    return cel__buf_append(&s->buf, text, strlen(text) + 1);
}

static const char *at_slot(const struct strings *s, const char *base, int slot)
{
    return s->set[slot] ? base + s->off[slot] : NULL;
}

/* A string member, or NULL; false when present but not a string or null. */
static bool opt_string(const json_t *doc, const char *key, const char **out)
{
    const json_t *v = json_object_get(doc, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    *out = cel__json_cstr(v);
    return *out != NULL;
}

void cel__schedule_def_clear(struct cel_schedule_def *d)
{
    if (!d)
        return;
    cel__tz_free(d->tz);
    free(d->text);
    free(d->origin);
    free(d->strings);
    memset(d, 0, sizeof *d);
}

/* Fills e (strings into s) from doc; *kind: the index in kinds[] of its
 * schedule. */
static int read_doc(const json_t *doc, struct strings *s, cel_schedule_entry *e, int *kind,
                    int64_t *created, char *why, size_t whylen)
{
    if (!json_is_object(doc))
        return cel__errf(why, whylen, CEL_EPROTO, "not a JSON object");
    const char *name, *task, *tz, *queue, *origin;
    if (!opt_string(doc, "name", &name) || !opt_string(doc, "task", &task) ||
        !opt_string(doc, "tz", &tz) || !opt_string(doc, "queue", &queue) ||
        !opt_string(doc, "origin", &origin))
        return cel__errf(why, whylen, CEL_EPROTO, "a text field holds something else");
    int rc = CEL_OK;
    const char *kind_text = NULL;
    for (int i = 0; i < 4; i++) {
        const char *t;
        if (!opt_string(doc, kinds[i], &t))
            return cel__errf(why, whylen, CEL_EPROTO, "%s: not text", kinds[i]);
        if (t) {
            if (kind_text)
                return cel__errf(why, whylen, CEL_EINVAL,
                                 "only one of cron, every, at or when is required");
            kind_text = t;
            *kind = i;
        }
    }
    const json_t *args = json_object_get(doc, "args"), *kwargs = json_object_get(doc, "kwargs");
    char *args_text = args ? cel__json_dump(args) : NULL;
    char *kwargs_text = kwargs ? cel__json_dump(kwargs) : NULL;
    if ((args && !args_text) || (kwargs && !kwargs_text))
        rc = CEL_ENOMEM;
    if (rc == CEL_OK &&
        ((rc = keep(s, S_NAME, name)) != CEL_OK || (rc = keep(s, S_TASK, task)) != CEL_OK ||
         (rc = keep(s, S_ARGS, args_text ? args_text : "[]")) != CEL_OK ||
         (rc = keep(s, S_KWARGS, kwargs_text ? kwargs_text : "{}")) != CEL_OK ||
         (rc = keep(s, S_WHEN, kind_text)) != CEL_OK || (rc = keep(s, S_TZ, tz)) != CEL_OK ||
         (rc = keep(s, S_QUEUE, queue)) != CEL_OK ||
         (rc = keep(s, S_ORIGIN, origin ? origin : "api")) != CEL_OK))
        rc = CEL_ENOMEM;
    free(args_text);
    free(kwargs_text);
    if (rc != CEL_OK)
        return cel__errf(why, whylen, CEL_ENOMEM, "out of memory");

    const json_t *prio = json_object_get(doc, "priority");
    if (prio && !json_is_null(prio)) {
        if (!json_is_integer(prio) || json_integer_value(prio) < INT32_MIN ||
            json_integer_value(prio) > INT32_MAX)
            return cel__errf(why, whylen, CEL_EINVAL, "priority: not an integer");
        e->has_priority = 1;
        e->priority = (int)json_integer_value(prio);
    }
    const json_t *exp = json_object_get(doc, "expires");
    if (exp && !json_is_null(exp)) {
        if (!json_is_number(exp))
            return cel__errf(why, whylen, CEL_EINVAL, "expires: not a number");
        e->expires = json_number_value(exp);
    }
    const char *cu = NULL;
    if (!opt_string(doc, "catch_up", &cu))
        return cel__errf(why, whylen, CEL_EINVAL, "catch_up: not text");
    e->catch_up = CEL_CATCH_UP_DEFAULT;
    if (cu) {
        size_t i = 0;
        while (i < 4 && strcmp(cu, catch_up_names[i]) != 0)
            i++;
        if (i == 4)
            return cel__errf(why, whylen, CEL_EINVAL,
                             "catch_up: '%.32s' is not default, skip, once or all", cu);
        e->catch_up = (cel_catch_up)i;
    }
    const json_t *cr = json_object_get(doc, "created");
    *created = json_is_integer(cr) ? (int64_t)json_integer_value(cr) : 0;
    if (!kind_text)
        return cel__errf(why, whylen, CEL_EINVAL,
                         "exactly one of cron, every, at or when is required");
    return CEL_OK;
}

int cel__schedule_def_parse(const char *doc, size_t len, const char *default_tz,
                            struct cel_schedule_def *out, char *why, size_t whylen)
{
    if (!out)
        return CEL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!doc)
        return cel__errf(why, whylen, CEL_EINVAL, "no document");
    char err[160];
    json_t *root = NULL;
    int rc = cel__json_parse_limited(doc, len, NULL, &root, err, sizeof err);
    if (rc != CEL_OK)
        return cel__errf(why, whylen, rc == CEL_ENOMEM ? CEL_ENOMEM : CEL_EPROTO, "%s", err);

    struct strings s = {0};
    cel__buf_init(&s.buf, 0);
    cel_schedule_entry e = CEL_SCHEDULE_ENTRY_INIT(.name = NULL);
    int kind = 0;
    rc = read_doc(root, &s, &e, &kind, &out->created_s, why, whylen);
    json_decref(root);
    if (rc != CEL_OK) {
        cel__buf_release(&s.buf);
        return rc;
    }
    size_t blen;
    out->strings = cel__buf_take(&s.buf, &blen);
    cel__buf_release(&s.buf);
    if (!out->strings)
        return cel__errf(why, whylen, CEL_ENOMEM, "out of memory");
    const char *base = out->strings;
    e.name = at_slot(&s, base, S_NAME);
    e.task = at_slot(&s, base, S_TASK);
    e.args_json = at_slot(&s, base, S_ARGS);
    e.kwargs_json = at_slot(&s, base, S_KWARGS);
    e.tz = at_slot(&s, base, S_TZ);
    e.queue = at_slot(&s, base, S_QUEUE);
    const char *when = at_slot(&s, base, S_WHEN);
    const char **slot[] = {&e.cron, &e.every, &e.at, &e.when};
    *slot[kind] = when;
    out->e = e;
    out->kind = kinds[kind];
    out->when_text = when;

    struct checked c;
    rc = check_entry(&out->e, default_tz, &c, why, whylen);
    if (rc != CEL_OK) {
        cel__schedule_def_clear(out);
        return rc;
    }
    json_decref(c.args);
    json_decref(c.kwargs);
    out->spec = c.spec;
    out->tz = c.tz;
    char text[256];
    size_t need = cel__sched_render(&out->spec, text, sizeof text);
    out->text = malloc(need + 1);
    out->origin = strdup(at_slot(&s, base, S_ORIGIN));
    if (!out->text || !out->origin) {
        cel__schedule_def_clear(out);
        return cel__errf(why, whylen, CEL_ENOMEM, "out of memory");
    }
    cel__sched_render(&out->spec, out->text, need + 1);
    return CEL_OK;
}
