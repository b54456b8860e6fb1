/*
 * sqlite_schedule.c - periodic entries and leases on SQLite (broker.h,
 * beat): the tables schedule, schedule_version and leases, see
 * store/sqlite_db.c.
 *
 *   put/remove/enable  one write transaction each, which also bumps the
 *                      one-row schedule_version, so a beat polling the
 *                      version sees the edit with one indexed read
 *   lease_acquire      looks first without writing: a standby asking for
 *                      a lease held by someone else every few seconds
 *                      must not ring every worker's doorbell; a free,
 *                      expired or own lease is then taken by one
 *                      conditional upsert, atomic on its own
 *   sched_fire         one BEGIN IMMEDIATE: the lease, the entry and its
 *                      last run are checked, the message inserted exactly
 *                      as publish() inserts it, the run recorded, then
 *                      COMMIT (which rings the doorbell as a publish
 *                      does). A failed check writes nothing and rolls
 *                      back.
 *
 * Lease expiry is the machine's wall clock, shared by every process on
 * the file.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/sqlite_internal.h"
#include "core/array.h"
#include "core/clock.h"

static const char sql_put[] =
    "INSERT INTO schedule (name, doc, enabled, updated_us) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT(name) DO UPDATE SET doc = excluded.doc, enabled = excluded.enabled,"
    " updated_us = excluded.updated_us WHERE ?5";
static const char sql_remove[] = "DELETE FROM schedule WHERE name = ?1";
static const char sql_enable[] =
    "UPDATE schedule SET enabled = ?2, updated_us = ?3 WHERE name = ?1";
static const char sql_bump[] = "INSERT INTO schedule_version (id, version) VALUES (1, 1)"
                               " ON CONFLICT(id) DO UPDATE SET version = version + 1";
static const char sql_version[] = "SELECT version FROM schedule_version WHERE id = 1";
static const char sql_rows[] = "SELECT name, doc, enabled, last_run_us, total_runs, updated_us"
                               " FROM schedule ORDER BY name";
static const char sql_row[] = "SELECT name, doc, enabled, last_run_us, total_runs, updated_us"
                              " FROM schedule WHERE name = ?1";
static const char sql_lease_get[] = "SELECT holder, expires_us FROM leases WHERE name = ?1";
/* Takes the lease when free, expired (?4: now) or already ours. */
static const char sql_lease_take[] =
    "INSERT INTO leases (name, holder, expires_us) VALUES (?1, ?2, ?3)"
    " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_us = excluded.expires_us"
    " WHERE leases.holder = excluded.holder OR leases.expires_us <= ?4";
static const char sql_lease_drop[] = "DELETE FROM leases WHERE name = ?1 AND holder = ?2";
static const char sql_fire_state[] = "SELECT enabled, last_run_us FROM schedule WHERE name = ?1";
static const char sql_fire_record[] = "UPDATE schedule SET last_run_us = ?2,"
                                      " total_runs = total_runs + ?3 WHERE name = ?1";

static struct sqlite_broker *sb(struct cel_broker *base)
{
    return (struct sqlite_broker *)base;
}

static sqlite3_stmt *prepare(struct sqlite_broker *b, const char *sql)
{
    return cel__sqldb_prepare(b->db, sql, &b->base.err);
}

/* Lock held: steps `st` (no rows) and reports how many rows it changed. */
static int step_changes(struct sqlite_broker *b, sqlite3_stmt *st, const char *what, int *changed)
{
    int rc = cel__sqlite_step_done(b, st, what);
    *changed = rc == CEL_OK ? sqlite3_changes(b->db->conn) : 0;
    return rc;
}

static int bump_version(struct sqlite_broker *b)
{
    sqlite3_stmt *st = prepare(b, sql_bump);
    return st ? cel__sqlite_step_done(b, st, "cannot bump the schedule version") : CEL_EBROKER;
}

/* ---- editing entries ---------------------------------------------------- */

struct put_args {
    const char *name, *doc;
    size_t len;
    bool enabled, replace;
};

static int put_row(struct sqlite_broker *b, void *arg)
{
    const struct put_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_put);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->doc, (int)a->len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, a->enabled);
    sqlite3_bind_int64(st, 4, cel__wall_us());
    sqlite3_bind_int(st, 5, a->replace);
    int changed;
    int rc = step_changes(b, st, "cannot store the entry", &changed);
    if (rc == CEL_OK && !changed)
        return cel__err(&b->base.err, CEL_ESTATE, "entry '%s' exists", a->name);
    return rc == CEL_OK ? bump_version(b) : rc;
}

int cel__sqlite_sched_put(struct cel_broker *base, const char *name, const char *doc, size_t len,
                          bool enabled, bool replace)
{
    struct put_args a = {name, doc, len, enabled, replace};
    return cel__sqlite_write(sb(base), false, put_row, &a);
}

/* remove (enabled < 0) or enable/disable one entry. */
struct edit_args {
    const char *name;
    int enabled;
};

static int edit_row(struct sqlite_broker *b, void *arg)
{
    const struct edit_args *a = arg;
    sqlite3_stmt *st = prepare(b, a->enabled < 0 ? sql_remove : sql_enable);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
    if (a->enabled >= 0) {
        sqlite3_bind_int(st, 2, a->enabled);
        sqlite3_bind_int64(st, 3, cel__wall_us());
    }
    int changed;
    int rc = step_changes(b, st, "cannot change the entry", &changed);
    if (rc == CEL_OK && !changed)
        return cel__err(&b->base.err, CEL_ENOTFOUND, "no entry '%s'", a->name);
    return rc == CEL_OK ? bump_version(b) : rc;
}

int cel__sqlite_sched_remove(struct cel_broker *base, const char *name)
{
    struct edit_args a = {name, -1};
    return cel__sqlite_write(sb(base), false, edit_row, &a);
}

int cel__sqlite_sched_enable(struct cel_broker *base, const char *name, bool enabled)
{
    struct edit_args a = {name, enabled};
    return cel__sqlite_write(sb(base), false, edit_row, &a);
}

/* ---- reading entries ---------------------------------------------------- */

static int copy_row(struct sqlite_broker *b, sqlite3_stmt *st, struct cel_sched_row *r)
{
    memset(r, 0, sizeof *r);
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *doc = (const char *)sqlite3_column_text(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    r->name = strdup(name ? name : "");
    r->doc = malloc((size_t)len + 1);
    if (!r->name || !r->doc) {
        cel__sched_row_release(r);
        return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
    }
    memcpy(r->doc, doc ? doc : "", (size_t)len);
    r->doc[len] = '\0';
    r->len = (size_t)len;
    r->enabled = sqlite3_column_int(st, 2) != 0;
    r->last_run_us = sqlite3_column_int64(st, 3);
    r->total_runs = sqlite3_column_int64(st, 4);
    r->updated_us = sqlite3_column_int64(st, 5);
    return CEL_OK;
}

/* Reads the rows of `sql` (bound to `name` when not NULL) into a new
 * array; lock taken here. */
static int read_rows(struct sqlite_broker *b, const char *sql, const char *name,
                     struct cel_sched_row **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = cel__sqldb_lock(&b->db, &b->base.err);
    if (rc)
        return rc;
    sqlite3_stmt *st = prepare(b, sql);
    if (!st) {
        cel__sqldb_unlock(b->db);
        return CEL_EBROKER;
    }
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    struct cel_sched_row *v = NULL;
    size_t cap = 0;
    int src = SQLITE_DONE;
    while (rc == CEL_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct cel_sched_row *grown = cel__array_grow(v, &cap, *n, sizeof *grown, 16);
        if (!grown) {
            rc = cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
            break;
        }
        v = grown;
        rc = copy_row(b, st, &v[*n]);
        if (rc == CEL_OK)
            (*n)++;
    }
    if (rc == CEL_OK && src != SQLITE_DONE)
        rc = cel__sqldb_fail(b->db, &b->base.err, CEL_EBROKER, "cannot read the schedule");
    sqlite3_reset(st);
    cel__sqldb_unlock(b->db);
    if (rc != CEL_OK) {
        cel__sched_rows_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return CEL_OK;
}

int cel__sqlite_sched_list(struct cel_broker *base, struct cel_sched_row **out, size_t *n)
{
    return read_rows(sb(base), sql_rows, NULL, out, n);
}

int cel__sqlite_sched_get(struct cel_broker *base, const char *name, struct cel_sched_row *out)
{
    memset(out, 0, sizeof *out);
    struct cel_sched_row *v;
    size_t n;
    int rc = read_rows(sb(base), sql_row, name, &v, &n);
    if (rc)
        return rc;
    if (n == 0)
        return cel__err(&base->err, CEL_ENOTFOUND, "no entry '%s'", name);
    *out = v[0];
    free(v);
    return CEL_OK;
}

int cel__sqlite_sched_version(struct cel_broker *base, int64_t *version)
{
    struct sqlite_broker *b = sb(base);
    *version = 0;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    sqlite3_stmt *st = prepare(b, sql_version);
    if (!st) {
        rc = CEL_EBROKER;
    } else {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *version = sqlite3_column_int64(st, 0);
        else if (src != SQLITE_DONE)
            rc =
                cel__sqldb_fail(b->db, &base->err, CEL_EBROKER, "cannot read the schedule version");
        sqlite3_reset(st);
    }
    cel__sqldb_unlock(b->db);
    return rc;
}

/* ---- leases ------------------------------------------------------------- */

/* Lock held: the lease's holder (*holder, caller frees; NULL when the
 * lease is free) and expiry. */
static int lease_read(struct sqlite_broker *b, const char *lease, char **holder,
                      int64_t *expires_us)
{
    *holder = NULL;
    *expires_us = 0;
    sqlite3_stmt *st = prepare(b, sql_lease_get);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, lease, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc = CEL_OK;
    if (src == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        *expires_us = sqlite3_column_int64(st, 1);
        if (!(*holder = strdup(h ? h : "")))
            rc = cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
    } else if (src != SQLITE_DONE) {
        rc = cel__sqldb_fail(b->db, &b->base.err, src == SQLITE_BUSY ? CEL_EBUSY : CEL_EBROKER,
                             "cannot read the lease");
    }
    sqlite3_reset(st);
    return rc;
}

struct lease_args {
    const char *lease, *holder;
    int64_t ttl_ms;
    bool *held;
};

static int lease_take(struct sqlite_broker *b, void *arg)
{
    const struct lease_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_lease_take);
    if (!st)
        return CEL_EBROKER;
    int64_t now = cel__wall_us();
    sqlite3_bind_text(st, 1, a->lease, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->holder, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now + a->ttl_ms * 1000);
    sqlite3_bind_int64(st, 4, now);
    int changed;
    int rc = step_changes(b, st, "cannot take the lease", &changed);
    *a->held = rc == CEL_OK && changed > 0;
    return rc;
}

int cel__sqlite_lease_acquire(struct cel_broker *base, const char *lease, const char *holder,
                              int64_t ttl_ms, bool *held)
{
    struct sqlite_broker *b = sb(base);
    *held = false;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    char *cur;
    int64_t expires_us;
    rc = lease_read(b, lease, &cur, &expires_us);
    cel__sqldb_unlock(b->db);
    if (rc)
        return rc;
    /* Someone else's live lease: refuse without a write. The upsert below
     * decides anyway; this only spares the doorbell. */
    bool taken = cur && strcmp(cur, holder) != 0 && expires_us > cel__wall_us();
    free(cur);
    if (taken)
        return CEL_OK;
    struct lease_args a = {lease, holder, ttl_ms, held};
    return cel__sqlite_write(b, true, lease_take, &a);
}

struct release_args {
    const char *lease, *holder;
};

static int lease_drop(struct sqlite_broker *b, void *arg)
{
    const struct release_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_lease_drop);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, a->lease, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->holder, -1, SQLITE_STATIC);
    return cel__sqlite_step_done(b, st, "cannot release the lease");
}

int cel__sqlite_lease_release(struct cel_broker *base, const char *lease, const char *holder)
{
    struct release_args a = {lease, holder};
    return cel__sqlite_write(sb(base), true, lease_drop, &a);
}

/* ---- firing ------------------------------------------------------------- */

/* Write transaction held: CEL_OK when f->holder holds f->lease now. */
static int fire_check_lease(struct sqlite_broker *b, const struct cel_sched_fire *f)
{
    char *cur;
    int64_t expires_us;
    int rc = lease_read(b, f->lease, &cur, &expires_us);
    if (rc)
        return rc;
    if (!cur)
        rc = cel__err(&b->base.err, CEL_ESTATE, "lease '%s' is not held", f->lease);
    else if (strcmp(cur, f->holder) != 0)
        rc = cel__err(&b->base.err, CEL_ESTATE, "lease '%s' is held by %s", f->lease, cur);
    else if (expires_us <= cel__wall_us())
        rc = cel__err(&b->base.err, CEL_ESTATE, "lease '%s' of %s has expired", f->lease, cur);
    free(cur);
    return rc;
}

/* Write transaction held: CEL_OK when the entry may run f->tick_us. */
static int fire_check_entry(struct sqlite_broker *b, const struct cel_sched_fire *f)
{
    sqlite3_stmt *st = prepare(b, sql_fire_state);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    bool enabled = src == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
    int64_t last = src == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_reset(st);
    if (src == SQLITE_DONE)
        return cel__err(&b->base.err, CEL_ESTATE, "no entry '%s'", f->name);
    if (src != SQLITE_ROW)
        return cel__sqldb_fail(b->db, &b->base.err, src == SQLITE_BUSY ? CEL_EBUSY : CEL_EBROKER,
                               "cannot read the entry");
    if (!enabled)
        return cel__err(&b->base.err, CEL_ESTATE, "entry '%s' is disabled", f->name);
    if (last != f->expect_last_run_us)
        return cel__err(&b->base.err, CEL_ESTATE,
                        "entry '%s' ran already (last run %lld µs, expected %lld)", f->name,
                        (long long)last, (long long)f->expect_last_run_us);
    return CEL_OK;
}

static int fire_row(struct sqlite_broker *b, void *arg)
{
    const struct cel_sched_fire *f = arg;
    int rc = fire_check_lease(b, f);
    if (rc == CEL_OK)
        rc = fire_check_entry(b, f);
    if (rc == CEL_OK && f->send)
        rc = cel__sqlite_insert_message(b, f->queue, f->priority, f->due_us, f->task_id, f->body,
                                        f->len);
    if (rc != CEL_OK)
        return rc;
    sqlite3_stmt *st = prepare(b, sql_fire_record);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, f->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, f->tick_us);
    sqlite3_bind_int(st, 3, f->send ? 1 : 0);
    return cel__sqlite_step_done(b, st, "cannot record the run");
}

int cel__sqlite_sched_fire(struct cel_broker *base, const struct cel_sched_fire *f)
{
    /* Not `single`: the checks and the writes must share one transaction. */
    return cel__sqlite_write(sb(base), false, fire_row, (void *)f);
}
