/*
 * beat_entries.c - the leader's copy of the store's entries. The store
 * bumps a version number on every change; reading it is one cheap call,
 * so the leader reads it every CEL_BEAT_POLL_MS and reads all entries
 * again only when it moved (or when a send found an entry other than
 * expected). An entry whose document does not parse is reported once
 * (again only when its document changes) and left out; it never stops
 * beat.
 */
#include <stdlib.h>
#include <string.h>

#include "beat/beat_internal.h"
#include "core/log.h"

static void entry_clear(struct beat_entry *e)
{
    if (e->ok)
        cel__schedule_def_clear(&e->def);
    free(e->name);
    free(e->doc);
    *e = (struct beat_entry){0};
}

static void entries_free(struct beat_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        entry_clear(&v[i]);
    free(v);
}

void cel__beat_entries_free(cel_beat *b)
{
    entries_free(b->entries, b->nentries);
    b->entries = NULL;
    b->nentries = 0;
    b->loaded = false;
}

/* The entry of that name in the previous table, if any. */
static const struct beat_entry *previous(const cel_beat *b, const char *name)
{
    for (size_t i = 0; i < b->nentries; i++)
        if (strcmp(b->entries[i].name, name) == 0)
            return &b->entries[i];
    return NULL;
}

static int entry_load(cel_beat *b, const struct cel_sched_row *row, struct beat_entry *e)
{
    e->name = strdup(row->name);
    e->doc = strdup(row->doc ? row->doc : "");
    if (!e->name || !e->doc)
        return CEL_ENOMEM;
    e->enabled = row->enabled;
    e->last_run_us = row->last_run_us;
    const struct beat_entry *old = previous(b, row->name);
    if (old)
        e->warned_future = old->warned_future && old->last_run_us == e->last_run_us;

    char why[256] = "";
    int rc =
        cel__schedule_def_parse(e->doc, strlen(e->doc), b->default_tz, &e->def, why, sizeof why);
    if (rc == CEL_ENOMEM)
        return rc;
    e->ok = rc == CEL_OK;
    if (!e->ok && !(old && !old->ok && strcmp(old->doc, e->doc) == 0))
        CEL_ERROR(CEL_BEAT_COMP, "beat: entry '%s' is left out: %s", e->name,
                  why[0] ? why : cel_strerror(rc));
    return CEL_OK;
}

static int load_all(cel_beat *b)
{
    struct cel_sched_row *rows = NULL;
    size_t n = 0;
    int rc = b->broker->ops->sched_list(b->broker, &rows, &n);
    if (rc != CEL_OK)
        return rc;
    struct beat_entry *v = n ? calloc(n, sizeof *v) : NULL;
    if (n && !v) {
        cel__sched_rows_free(rows, n);
        return CEL_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == CEL_OK; i++)
        rc = entry_load(b, &rows[i], &v[i]);
    cel__sched_rows_free(rows, n);
    if (rc != CEL_OK) {
        entries_free(v, n);
        return rc;
    }
    entries_free(b->entries, b->nentries);
    b->entries = v;
    b->nentries = n;
    b->loaded = true;
    CEL_DEBUG(CEL_BEAT_COMP, "beat: %zu entries loaded (version %lld)", n, (long long)b->version);
    return CEL_OK;
}

int cel__beat_entries_sync(cel_beat *b, int64_t now_ms, bool force)
{
    if (!force && b->loaded && now_ms < b->version_next_ms)
        return CEL_OK;
    int64_t version = 0;
    int rc = b->broker->ops->sched_version(b->broker, &version);
    if (rc != CEL_OK)
        return rc;
    b->version_next_ms = now_ms + CEL_BEAT_POLL_MS;
    if (!force && b->loaded && version == b->version)
        return CEL_OK;
    /* The version is read first: a change made while the entries are
     * read moves it again, and the next poll reads them once more. */
    b->version = version;
    rc = load_all(b);
    if (rc != CEL_OK)
        b->loaded = false;
    return rc;
}
