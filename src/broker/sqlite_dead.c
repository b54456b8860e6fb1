/*
 * sqlite_dead.c - dead letters in the SQLite file (broker.h): the
 * dead_letters table, one row per message kept aside, its rowid the
 * entry's id. A requeue moves the row back into messages in one write
 * transaction, its delivery count reset (an operator who requeues has
 * dealt with the cause), its priority read from the envelope.
 */
#include "broker/sqlite_dead.h"

#include <stdlib.h>
#include <string.h>

#include "broker/dead_letter.h"
#include "celeriac/error.h"
#include "core/array.h"
#include "core/clock.h"

static const char sql_list[] =
    "SELECT id, queue, task_id, reason, body, delivery_count, created_at FROM dead_letters"
    " WHERE ?1 IS NULL OR queue = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3";
static const char sql_get[] =
    "SELECT id, queue, task_id, reason, body, delivery_count, created_at FROM dead_letters"
    " WHERE id = ?1";
static const char sql_requeue[] =
    "INSERT INTO messages (queue, priority, task_id, body, visible_at, created_at)"
    " SELECT queue, ?2, task_id, body, ?3, ?3 FROM dead_letters WHERE id = ?1";
static const char sql_delete_one[] = "DELETE FROM dead_letters WHERE id = ?1";
static const char sql_delete_queue[] = "DELETE FROM dead_letters WHERE queue = ?1";
static const char sql_delete_all[] = "DELETE FROM dead_letters";

static char *column_dup(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? strdup(s) : NULL;
}

static int read_row(sqlite3_stmt *st, struct cel_dead_letter *d)
{
    memset(d, 0, sizeof *d);
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)sqlite3_column_int64(st, 0));
    d->id = strdup(id);
    d->queue = column_dup(st, 1);
    d->task_id = column_dup(st, 2);
    d->reason = column_dup(st, 3);
    const char *body = (const char *)sqlite3_column_text(st, 4);
    d->len = body ? (size_t)sqlite3_column_bytes(st, 4) : 0;
    d->body = malloc(d->len + 1);
    if (d->body) {
        memcpy(d->body, body ? body : "", d->len);
        d->body[d->len] = '\0';
    }
    d->delivery_count = (unsigned)sqlite3_column_int(st, 5);
    d->created_us = sqlite3_column_int64(st, 6);
    if (!d->queue)
        d->queue = strdup("");
    if (!d->reason)
        d->reason = strdup("");
    if (!d->id || !d->queue || !d->reason || !d->body) {
        cel__dead_letter_release(d);
        return CEL_ENOMEM;
    }
    return CEL_OK;
}

/* An id as the rowid it names; false when it is not one. */
static bool parse_id(const char *id, int64_t *out)
{
    char *end = NULL;
    long long v = id ? strtoll(id, &end, 10) : 0;
    if (!id || !*id || *end || v <= 0)
        return false;
    *out = v;
    return true;
}

int cel__sqlite_dead_list(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *queue,
                          size_t offset, size_t max, struct cel_dead_letter **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = cel__sqldb_lock(dbp, err);
    if (rc)
        return rc;
    struct cel_sqldb *db = *dbp;
    sqlite3_stmt *st = cel__sqldb_prepare(db, sql_list, err);
    if (!st) {
        cel__sqldb_unlock(db);
        return CEL_EBROKER;
    }
    if (queue)
        sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)offset);
    struct cel_dead_letter *v = NULL;
    size_t cap = 0;
    int src;
    while (rc == CEL_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct cel_dead_letter *grown = cel__array_grow(v, &cap, *n, sizeof *grown, 16);
        if (!grown || read_row(st, &(grown ? grown : v)[*n]) != CEL_OK) {
            v = grown ? grown : v;
            rc = cel__err(err, CEL_ENOMEM, "out of memory");
            break;
        }
        v = grown;
        (*n)++;
    }
    if (rc == CEL_OK && src != SQLITE_DONE)
        rc = cel__sqldb_fail(db, err, CEL_EBROKER, "cannot list dead letters");
    sqlite3_reset(st);
    cel__sqldb_unlock(db);
    if (rc != CEL_OK) {
        cel__dead_letters_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return CEL_OK;
}

int cel__sqlite_dead_get(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *id,
                         struct cel_dead_letter *out)
{
    memset(out, 0, sizeof *out);
    int64_t rowid;
    if (!parse_id(id, &rowid))
        return cel__err(err, CEL_ENOTFOUND, "no dead letter %s", id ? id : "(null)");
    int rc = cel__sqldb_lock(dbp, err);
    if (rc)
        return rc;
    struct cel_sqldb *db = *dbp;
    sqlite3_stmt *st = cel__sqldb_prepare(db, sql_get, err);
    if (!st) {
        cel__sqldb_unlock(db);
        return CEL_EBROKER;
    }
    sqlite3_bind_int64(st, 1, rowid);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = read_row(st, out) == CEL_OK ? CEL_OK : cel__err(err, CEL_ENOMEM, "out of memory");
    else if (src == SQLITE_DONE)
        rc = cel__err(err, CEL_ENOTFOUND, "no dead letter %s", id);
    else
        rc = cel__sqldb_fail(db, err, CEL_EBROKER, "cannot read the dead letter");
    sqlite3_reset(st);
    cel__sqldb_unlock(db);
    return rc;
}

static int exec_changes(struct cel_sqldb *db, struct cel_errbuf *err, const char *sql,
                        int64_t rowid, const char *text, int64_t a2, int64_t a3, size_t *changes,
                        const char *what)
{
    sqlite3_stmt *st = cel__sqldb_prepare(db, sql, err);
    if (!st)
        return CEL_EBROKER;
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    else if (rowid)
        sqlite3_bind_int64(st, 1, rowid);
    if (sqlite3_bind_parameter_count(st) >= 3) {
        sqlite3_bind_int64(st, 2, a2);
        sqlite3_bind_int64(st, 3, a3);
    }
    int src = sqlite3_step(st);
    int rc = src == SQLITE_DONE
                 ? CEL_OK
                 : cel__sqldb_fail(db, err, src == SQLITE_BUSY ? CEL_EBUSY : CEL_EBROKER, what);
    if (rc == CEL_OK && changes)
        *changes = (size_t)sqlite3_changes(db->conn);
    sqlite3_reset(st);
    return rc;
}

int cel__sqlite_dead_requeue(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *id)
{
    struct cel_dead_letter d;
    int rc = cel__sqlite_dead_get(dbp, err, id, &d);
    if (rc != CEL_OK)
        return rc;
    int priority = 0;
    cel__dead_envelope_fields(d.body, d.len, NULL, &priority);
    bool has_queue = d.queue[0] != '\0';
    cel__dead_letter_release(&d);
    if (!has_queue)
        return cel__err(err, CEL_EINVAL, "dead letter %s has no queue to go back to", id);
    int64_t rowid = 0;
    parse_id(id, &rowid);
    rc = cel__sqldb_lock(dbp, err);
    if (rc)
        return rc;
    struct cel_sqldb *db = *dbp;
    bool owned;
    rc = cel__sqldb_write_begin(db, false, &owned, err);
    if (rc == CEL_OK) {
        size_t moved = 0;
        int64_t now = cel__wall_us();
        int wrc = exec_changes(db, err, sql_requeue, rowid, NULL,
                               priority < 0   ? 0
                               : priority > 9 ? 9
                                              : priority,
                               now, &moved, "cannot requeue the dead letter");
        if (wrc == CEL_OK && moved == 0)
            wrc = cel__err(err, CEL_ENOTFOUND, "no dead letter %s", id);
        if (wrc == CEL_OK)
            wrc = exec_changes(db, err, sql_delete_one, rowid, NULL, 0, 0, NULL,
                               "cannot remove the dead letter");
        rc = cel__sqldb_write_end(db, owned, wrc, err);
    }
    cel__sqldb_unlock(db);
    return rc;
}

int cel__sqlite_dead_purge(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *queue,
                           const char *id, size_t *removed)
{
    if (removed)
        *removed = 0;
    int64_t rowid = 0;
    if (id && !parse_id(id, &rowid))
        return cel__err(err, CEL_ENOTFOUND, "no dead letter %s", id);
    int rc = cel__sqldb_lock(dbp, err);
    if (rc)
        return rc;
    struct cel_sqldb *db = *dbp;
    size_t n = 0;
    if (id)
        rc = exec_changes(db, err, sql_delete_one, rowid, NULL, 0, 0, &n,
                          "cannot remove the dead letter");
    else if (queue)
        rc = exec_changes(db, err, sql_delete_queue, 0, queue, 0, 0, &n,
                          "cannot purge dead letters");
    else
        rc = exec_changes(db, err, sql_delete_all, 0, NULL, 0, 0, &n, "cannot purge dead letters");
    cel__sqldb_unlock(db);
    if (rc == CEL_OK && id && n == 0)
        rc = cel__err(err, CEL_ENOTFOUND, "no dead letter %s", id);
    if (rc == CEL_OK && removed)
        *removed = n;
    return rc;
}
