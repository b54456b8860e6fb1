/*
 * schedule_sync.c - cel_schedule_sync_config(): the [schedule.NAME]
 * sections of a config file made the store's config-born entries.
 *
 * Everything is checked before anything is written, so a bad section
 * leaves the store as it was. An entry whose document would not change is
 * not rewritten: beat syncs at every start, and a rewrite would bump the
 * store's version and re-enable an entry disabled at run time.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/broker.h"
#include "client/client_internal.h"
#include "client/schedule_internal.h"

struct section_entry {
    cel_schedule_entry e;
    bool enabled;
    const char *origin;              /* "file:12" */
    struct cel_schedule_def *stored; /* the config-born entry of that name, or NULL */
    const struct cel_sched_row *row;
};

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return (*out = true);
        if (strcasecmp(v, no[i]) == 0)
            return !(*out = false);
    }
    return false;
}

/* Reads section i of cfg into *s; values stay borrowed from cfg. */
static int read_section(cel_client *c, const cel_config *cfg, size_t i, struct section_entry *s)
{
    const char *name = cel_config_section_name(cfg, i);
    memset(s, 0, sizeof *s);
    s->origin = cel_config_section_origin(cfg, i);
    s->enabled = true;
#define GET(key) cel_config_section_get(cfg, i, key)
    s->e = CEL_SCHEDULE_ENTRY_INIT(.name = strchr(name, '.') + 1, .task = GET("task"),
                                   .args_json = GET("args"), .kwargs_json = GET("kwargs"),
                                   .cron = GET("cron"), .every = GET("every"), .at = GET("at"),
                                   .when = GET("when"), .tz = GET("tz"), .queue = GET("queue"));
    const char *prio = GET("priority"), *expires = GET("expires"), *catch_up = GET("catch_up"),
               *enabled = GET("enabled");
#undef GET
    char *end;
    if (prio) {
        long p = strtol(prio, &end, 10);
        if (end == prio || *end || p < 0 || p > 9)
            return cel__err(&c->err, CEL_ECONFIG, "%s: [%s]: priority: '%.32s' is not 0 to 9",
                            s->origin, name, prio);
        s->e.has_priority = 1;
        s->e.priority = (int)p;
    }
    if (expires) {
        double x = strtod(expires, &end);
        if (end == expires || *end || !isfinite(x) || x < 0)
            return cel__err(&c->err, CEL_ECONFIG,
                            "%s: [%s]: expires: '%.32s' is not a number of seconds >= 0", s->origin,
                            name, expires);
        s->e.expires = x;
    }
    if (catch_up) {
        static const char *const names[] = {"default", "skip", "once", "all"};
        size_t k = 0;
        while (k < 4 && strcasecmp(catch_up, names[k]) != 0)
            k++;
        if (k == 4)
            return cel__err(&c->err, CEL_ECONFIG,
                            "%s: [%s]: catch_up: '%.32s' is not skip, once or all", s->origin, name,
                            catch_up);
        s->e.catch_up = (cel_catch_up)k;
    }
    if (enabled && !parse_bool(enabled, &s->enabled))
        return cel__err(&c->err, CEL_ECONFIG, "%s: [%s]: enabled: '%.32s' is not true or false",
                        s->origin, name, enabled);
    return CEL_OK;
}

struct stored {
    struct cel_sched_row *rows;
    struct cel_schedule_def *defs;
    bool *parsed;
    bool *in_file;
    size_t n;
};

static void stored_free(struct stored *st)
{
    for (size_t i = 0; i < st->n; i++)
        cel__schedule_def_clear(&st->defs[i]);
    cel__sched_rows_free(st->rows, st->n);
    free(st->defs);
    free(st->parsed);
    free(st->in_file);
}

static bool config_born(const struct stored *st, size_t i)
{
    return st->parsed[i] && strcmp(st->defs[i].origin, "config") == 0;
}

static int load_stored(cel_client *c, struct stored *st)
{
    memset(st, 0, sizeof *st);
    int rc = c->broker->ops->sched_list(c->broker, &st->rows, &st->n);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "%s", cel__broker_errmsg(c->broker));
    st->defs = calloc(st->n + 1, sizeof *st->defs);
    st->parsed = calloc(st->n + 1, sizeof *st->parsed);
    st->in_file = calloc(st->n + 1, sizeof *st->in_file);
    if (!st->defs || !st->parsed || !st->in_file)
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < st->n; i++) {
        char why[256];
        st->parsed[i] =
            cel__schedule_def_parse(st->rows[i].doc, st->rows[i].len, cel__schedule_default_tz(c),
                                    &st->defs[i], why, sizeof why) == CEL_OK;
    }
    return CEL_OK;
}

/* Checks every section against the store; *docs[i] gets section i's
 * document, NULL when the stored one is the same. */
static int plan(cel_client *c, struct section_entry *secs, size_t n, struct stored *st,
                struct cel_buf *docs)
{
    for (size_t i = 0; i < n; i++) {
        struct section_entry *s = &secs[i];
        for (size_t k = 0; k < st->n; k++) {
            if (strcmp(st->rows[k].name, s->e.name) != 0)
                continue;
            if (st->parsed[k] && !config_born(st, k))
                return cel__err(&c->err, CEL_ESTATE,
                                "%s: [schedule.%s]: an entry of that name was added through the "
                                "API; remove it (celeriac schedule remove %s) or rename the "
                                "section",
                                s->origin, s->e.name, s->e.name);
            st->in_file[k] = true;
            s->row = &st->rows[k];
            s->stored = st->parsed[k] ? &st->defs[k] : NULL;
        }
        int rc = cel__schedule_build_doc(c, &s->e, "config", s->stored, false, &docs[i]);
        if (rc != CEL_OK) {
            char why[CEL_ERRBUF_SIZE];
            snprintf(why, sizeof why, "%s", c->err.msg);
            return cel__err(&c->err, rc == CEL_ENOMEM ? rc : CEL_ECONFIG, "%s: [schedule.%s]: %s",
                            s->origin, s->e.name, why);
        }
    }
    return CEL_OK;
}

int cel_schedule_sync_config(cel_client *c, const cel_config *cfg)
{
    int rc = cel__schedule_ready(c);
    if (rc != CEL_OK)
        return rc;
    size_t n = cel_config_section_count(cfg);
    struct section_entry *secs = calloc(n + 1, sizeof *secs);
    struct cel_buf *docs = calloc(n + 1, sizeof *docs);
    struct stored st = {0};
    if (!secs || !docs) {
        rc = cel__err(&c->err, CEL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        cel__buf_init(&docs[i], CEL__SCHEDULE_DOC_MAX);
    for (size_t i = 0; i < n && rc == CEL_OK; i++)
        rc = read_section(c, cfg, i, &secs[i]);
    if (rc == CEL_OK)
        rc = load_stored(c, &st);
    if (rc == CEL_OK)
        rc = plan(c, secs, n, &st, docs);
    for (size_t i = 0; i < n && rc == CEL_OK; i++) {
        const struct cel_sched_row *row = secs[i].row;
        if (row && row->len == cel__buf_size(&docs[i]) &&
            memcmp(row->doc, cel__buf_bytes(&docs[i]), row->len) == 0)
            continue; /* unchanged: its run-time enable/disable stands */
        rc = cel__schedule_put(c, secs[i].e.name, &docs[i], secs[i].enabled, row != NULL);
    }
    for (size_t k = 0; k < st.n && rc == CEL_OK; k++) {
        if (!config_born(&st, k) || st.in_file[k])
            continue;
        rc = c->broker->ops->sched_remove(c->broker, st.rows[k].name);
        if (rc == CEL_ENOTFOUND) /* removed meanwhile: that is the goal */
            rc = CEL_OK;
        else if (rc != CEL_OK)
            rc = cel__err(&c->err, rc, "%s", cel__broker_errmsg(c->broker));
    }
out:
    for (size_t i = 0; docs && i < n; i++)
        cel__buf_release(&docs[i]);
    free(docs);
    free(secs);
    stored_free(&st);
    return rc;
}
