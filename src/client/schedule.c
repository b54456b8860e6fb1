/*
 * schedule.c - celeriac/schedule.h over the broker's periodic-entry ops
 * (broker.h). Entries are stored as the JSON documents of schedule_doc.c;
 * the store adds the enabled flag, the last run and the run count.
 */
#include "celeriac/schedule.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/broker.h"
#include "client/client_internal.h"
#include "client/schedule_doc.h"
#include "client/schedule_internal.h"
#include "core/clock.h"
#include "core/json_util.h"

struct schedule_item {
    struct cel_sched_row row;
    struct cel_schedule_def def;
    bool valid;              /* def parsed; otherwise only the name is known */
    char why[256];           /* why not */
    cel_schedule_entry bare; /* the name alone, for an entry that did not parse */
    char *json;              /* built on first use */
};

struct cel_schedule_entries {
    struct schedule_item *v;
    size_t n;
};

static bool has_sched(const struct cel_broker_ops *o)
{
    return o->sched_put && o->sched_get && o->sched_list && o->sched_remove && o->sched_enable;
}

int cel__schedule_ready(cel_client *c)
{
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    if (!has_sched(c->broker->ops))
        return cel__err(&c->err, CEL_ENOTSUP, "the %s broker keeps no schedule",
                        c->broker->ops->scheme);
    return CEL_OK;
}

static int broker_fail(cel_client *c, int rc, const char *name)
{
    if (rc == CEL_ENOTFOUND && name)
        return cel__err(&c->err, rc, "no schedule entry named '%.200s'", name);
    return cel__err(&c->err, rc, "%s", cel__broker_errmsg(c->broker));
}

const char *cel__schedule_default_tz(const cel_client *c)
{
    const char *tz = cel_config_get(c->cfg, "timezone");
    return tz && *tz ? tz : "UTC";
}

static int64_t now_s(void)
{
    return cel__wall_us() / 1000000;
}

/* ---- writing ------------------------------------------------------------ */

/* The stored entry `name` parsed, in *def (CEL_ENOTFOUND: none). */
static int load_def(cel_client *c, const char *name, struct cel_sched_row *row,
                    struct cel_schedule_def *def)
{
    memset(row, 0, sizeof *row);
    memset(def, 0, sizeof *def);
    int rc = c->broker->ops->sched_get(c->broker, name, row);
    if (rc != CEL_OK)
        return broker_fail(c, rc, name);
    char why[256];
    rc = cel__schedule_def_parse(row->doc, row->len, cel__schedule_default_tz(c), def, why,
                                 sizeof why);
    if (rc != CEL_OK) {
        cel__sched_row_release(row);
        return cel__err(&c->err, rc, "schedule entry '%.200s' cannot be read: %s", name, why);
    }
    return CEL_OK;
}

/* When the entry's interval runs are anchored: kept from the entry it
 * replaces while the schedule stays the same, so rewriting an entry (beat
 * syncing the config file at every start) does not move its runs. */
static int64_t anchor_for(const struct cel_schedule_def *old, const cel_schedule_entry *e)
{
    const char *texts[] = {e->cron, e->every, e->at, e->when};
    const char *kinds[] = {"cron", "every", "at", "when"};
    for (size_t i = 0; old && old->kind && i < 4; i++)
        if (texts[i] && strcmp(kinds[i], old->kind) == 0 && strcmp(texts[i], old->when_text) == 0)
            return old->created_s;
    return now_s();
}

int cel__schedule_build_doc(cel_client *c, const cel_schedule_entry *e, const char *origin,
                            const struct cel_schedule_def *old, bool refuse_past,
                            struct cel_buf *doc)
{
    char why[CEL_ERRBUF_SIZE];
    int64_t created_s = anchor_for(old, e);
    const char *zone = cel__schedule_default_tz(c);
    int rc = cel__schedule_doc_write(e, origin, created_s, zone, doc, why, sizeof why);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "%s", why);
    if (!refuse_past)
        return CEL_OK;
    struct cel_schedule_def def;
    rc = cel__schedule_def_parse(cel__buf_bytes(doc), cel__buf_size(doc), zone, &def, why,
                                 sizeof why);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "%s", why);
    if (def.spec.kind == CEL_SCHED_AT &&
        cel__sched_next(&def.spec, def.tz, created_s, now_s()) == 0)
        rc = cel__err(&c->err, CEL_EINVAL, "at: %s (%s) is in the past", def.when_text,
                      cel__tz_name(def.tz));
    cel__schedule_def_clear(&def);
    return rc;
}

int cel__schedule_put(cel_client *c, const char *name, const struct cel_buf *doc, bool enabled,
                      bool replace)
{
    int rc = c->broker->ops->sched_put(c->broker, name, cel__buf_bytes(doc), cel__buf_size(doc),
                                       enabled, replace);
    if (rc == CEL_ESTATE)
        return cel__err(&c->err, rc,
                        "a schedule entry named '%.200s' exists (replace it, or remove it first)",
                        name);
    return rc == CEL_OK ? CEL_OK : broker_fail(c, rc, NULL);
}

int cel_schedule_add(cel_client *c, const cel_schedule_entry *e, int replace)
{
    int rc = cel__schedule_ready(c);
    if (rc != CEL_OK)
        return rc;
    if (!e || !e->name)
        return cel__err(&c->err, CEL_EINVAL, "name: an entry name is required");
    struct cel_sched_row row;
    struct cel_schedule_def old;
    bool have_old = false;
    if (replace) {
        rc = load_def(c, e->name, &row, &old);
        if (rc == CEL_OK)
            have_old = true;
        cel__err_clear(&c->err); /* a missing or unreadable entry is simply replaced */
    }
    struct cel_buf doc;
    cel__buf_init(&doc, CEL__SCHEDULE_DOC_MAX);
    rc = cel__schedule_build_doc(c, e, "api", have_old ? &old : NULL, true, &doc);
    if (rc == CEL_OK)
        rc = cel__schedule_put(c, e->name, &doc, !e->disabled, replace != 0);
    cel__buf_release(&doc);
    if (have_old) {
        cel__schedule_def_clear(&old);
        cel__sched_row_release(&row);
    }
    return rc;
}

int cel_schedule_remove(cel_client *c, const char *name)
{
    int rc = cel__schedule_ready(c);
    if (rc != CEL_OK)
        return rc;
    if (!name || !*name)
        return cel__err(&c->err, CEL_EINVAL, "no entry name");
    rc = c->broker->ops->sched_remove(c->broker, name);
    return rc == CEL_OK ? CEL_OK : broker_fail(c, rc, name);
}

int cel_schedule_enable(cel_client *c, const char *name, int enabled)
{
    int rc = cel__schedule_ready(c);
    if (rc != CEL_OK)
        return rc;
    if (!name || !*name)
        return cel__err(&c->err, CEL_EINVAL, "no entry name");
    rc = c->broker->ops->sched_enable(c->broker, name, enabled != 0);
    return rc == CEL_OK ? CEL_OK : broker_fail(c, rc, name);
}

int cel_schedule_run_now(cel_client *c, const char *name, cel_result **out)
{
    if (out)
        *out = NULL;
    int rc = cel__schedule_ready(c);
    if (rc != CEL_OK)
        return rc;
    if (!name || !*name)
        return cel__err(&c->err, CEL_EINVAL, "no entry name");
    struct cel_sched_row row;
    struct cel_schedule_def def;
    rc = load_def(c, name, &row, &def);
    if (rc != CEL_OK)
        return rc;
    const cel_schedule_entry *e = &def.e;
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.queue = e->queue, .has_priority = e->has_priority,
                                               .priority = e->priority, .expires = e->expires);
    rc = cel_client_send(c, e->task, e->args_json, e->kwargs_json, &o, out);
    cel__schedule_def_clear(&def);
    cel__sched_row_release(&row);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

static int wrap_rows(cel_client *c, struct cel_sched_row *rows, size_t n,
                     cel_schedule_entries **out)
{
    cel_schedule_entries *l = calloc(1, sizeof *l);
    struct schedule_item *v = n ? calloc(n, sizeof *v) : NULL;
    if (!l || (n && !v)) {
        free(l);
        free(v);
        cel__sched_rows_free(rows, n);
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct schedule_item *it = &v[i];
        it->row = rows[i];
        it->bare = CEL_SCHEDULE_ENTRY_INIT(.name = it->row.name, .task = "");
        /* One unreadable document must not hide the others: it is listed
         * by name, with the reason as its text. */
        it->valid = cel__schedule_def_parse(it->row.doc, it->row.len, cel__schedule_default_tz(c),
                                            &it->def, it->why, sizeof it->why) == CEL_OK;
        it->def.e.disabled = it->bare.disabled = !it->row.enabled;
    }
    free(rows); /* the rows' contents moved into the items */
    l->v = v;
    l->n = n;
    *out = l;
    return CEL_OK;
}

int cel_schedule_list(cel_client *c, cel_schedule_entries **out)
{
    if (out)
        *out = NULL;
    int rc = cel__schedule_ready(c);
    if (rc != CEL_OK)
        return rc;
    if (!out)
        return cel__err(&c->err, CEL_EINVAL, "no place for the list");
    struct cel_sched_row *rows = NULL;
    size_t n = 0;
    rc = c->broker->ops->sched_list(c->broker, &rows, &n);
    if (rc != CEL_OK)
        return broker_fail(c, rc, NULL);
    return wrap_rows(c, rows, n, out);
}

int cel_schedule_get(cel_client *c, const char *name, cel_schedule_entries **out)
{
    if (out)
        *out = NULL;
    int rc = cel__schedule_ready(c);
    if (rc != CEL_OK)
        return rc;
    if (!out || !name || !*name)
        return cel__err(&c->err, CEL_EINVAL, "no entry name");
    struct cel_sched_row *row = calloc(1, sizeof *row);
    if (!row)
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    rc = c->broker->ops->sched_get(c->broker, name, row);
    if (rc != CEL_OK) {
        free(row);
        return broker_fail(c, rc, name);
    }
    return wrap_rows(c, row, 1, out);
}

static const struct schedule_item *item_at(const cel_schedule_entries *l, size_t i)
{
    return l && i < l->n ? &l->v[i] : NULL;
}

size_t cel_schedule_entries_count(const cel_schedule_entries *l)
{
    return l ? l->n : 0;
}

const cel_schedule_entry *cel_schedule_entries_entry(const cel_schedule_entries *l, size_t i)
{
    const struct schedule_item *it = item_at(l, i);
    if (!it)
        return NULL;
    return it->valid ? &it->def.e : &it->bare;
}

int cel_schedule_entries_enabled(const cel_schedule_entries *l, size_t i)
{
    const struct schedule_item *it = item_at(l, i);
    return it ? it->row.enabled : 0;
}

const char *cel_schedule_entries_text(const cel_schedule_entries *l, size_t i)
{
    const struct schedule_item *it = item_at(l, i);
    if (!it)
        return NULL;
    return it->valid ? it->def.text : it->why;
}

int64_t cel_schedule_entries_last_run(const cel_schedule_entries *l, size_t i)
{
    const struct schedule_item *it = item_at(l, i);
    return it ? it->row.last_run_us : 0;
}

int64_t cel_schedule_entries_total_runs(const cel_schedule_entries *l, size_t i)
{
    const struct schedule_item *it = item_at(l, i);
    return it ? it->row.total_runs : 0;
}

const char *cel_schedule_entries_origin(const cel_schedule_entries *l, size_t i)
{
    const struct schedule_item *it = item_at(l, i);
    if (!it)
        return NULL;
    return it->valid ? it->def.origin : "api";
}

/* Run times of `def` after max(after_s, last_run_s, created): beat's next
 * run (beat-context: ticks after the last one, the first after creation). */
static size_t next_runs(const struct cel_schedule_def *def, int64_t last_run_s, int64_t after_s,
                        int64_t *out_us, size_t max)
{
    int64_t t = after_s;
    if (t < last_run_s)
        t = last_run_s;
    if (t < def->created_s)
        t = def->created_s;
    size_t k = 0;
    for (; k < max; k++) {
        t = cel__sched_next(&def->spec, def->tz, def->created_s, t);
        if (t <= 0)
            break;
        out_us[k] = t * 1000000;
    }
    return k;
}

/* Whole seconds not after µs (ticks are whole seconds). */
static int64_t floor_s(int64_t us)
{
    return us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
}

size_t cel_schedule_entries_next_runs(const cel_schedule_entries *l, size_t i, int64_t after_us,
                                      int64_t *out_us, size_t max)
{
    const struct schedule_item *it = item_at(l, i);
    if (!it || !it->valid || !out_us)
        return 0;
    return next_runs(&it->def, floor_s(it->row.last_run_us), floor_s(after_us), out_us, max);
}

static char *item_json(const struct schedule_item *it)
{
    json_t *o = it->valid ? cel__json_parse(it->row.doc, it->row.len, 0, NULL, 0) : json_object();
    if (!o)
        return NULL;
    int bad = 0;
    if (!it->valid) {
        bad |= json_object_set_new(o, "name", json_string(it->row.name));
        bad |= json_object_set_new(o, "error", json_string(it->why));
    } else {
        int64_t next_us = 0;
        bool has_next = next_runs(&it->def, floor_s(it->row.last_run_us), now_s(), &next_us, 1);
        bad |= json_object_set_new(o, "text", json_string(it->def.text));
        bad |= json_object_set_new(o, "next_run", has_next ? json_integer(next_us) : json_null());
    }
    bad |= json_object_set_new(o, "enabled", json_boolean(it->row.enabled));
    bad |= json_object_set_new(o, "last_run", json_integer(it->row.last_run_us));
    bad |= json_object_set_new(o, "total_runs", json_integer(it->row.total_runs));
    if (!json_object_get(o, "origin"))
        bad |= json_object_set_new(o, "origin", json_string("api"));
    char *text = bad ? NULL : cel__json_dump(o);
    json_decref(o);
    return text;
}

const char *cel_schedule_entries_json(const cel_schedule_entries *l, size_t i)
{
    struct schedule_item *it = l && i < l->n ? &l->v[i] : NULL;
    if (!it)
        return NULL;
    if (!it->json)
        it->json = item_json(it);
    return it->json;
}

void cel_schedule_entries_free(cel_schedule_entries *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        cel__schedule_def_clear(&l->v[i].def);
        cel__sched_row_release(&l->v[i].row);
        free(l->v[i].json);
    }
    free(l->v);
    free(l);
}

/* ---- without a connection ---------------------------------------------- */

int cel_schedule_describe(const cel_schedule_entry *e, const char *default_zone, int64_t after_us,
                          char *text, size_t textlen, int64_t *next_us, size_t max, size_t *n,
                          char *errbuf, size_t errlen)
{
    if (n)
        *n = 0;
    if (text && textlen)
        text[0] = '\0';
    struct cel_buf doc;
    cel__buf_init(&doc, CEL__SCHEDULE_DOC_MAX);
    int64_t after_s = floor_s(after_us);
    int rc = cel__schedule_doc_write(e, "api", after_s, default_zone, &doc, errbuf, errlen);
    struct cel_schedule_def def;
    if (rc == CEL_OK)
        rc = cel__schedule_def_parse(cel__buf_bytes(&doc), cel__buf_size(&doc), default_zone, &def,
                                     errbuf, errlen);
    cel__buf_release(&doc);
    if (rc != CEL_OK)
        return rc;
    if (text && textlen)
        snprintf(text, textlen, "%s", def.text);
    size_t k = next_us ? next_runs(&def, 0, after_s, next_us, max) : 0;
    if (n)
        *n = k;
    cel__schedule_def_clear(&def);
    if (errbuf && errlen)
        errbuf[0] = '\0';
    return CEL_OK;
}
