/*
 * sqlite.c - result store in the same SQLite file as the sqlite broker.
 *
 * Opened on the same file as the broker in one process, it shares the
 * broker's connection (sqlite_db.h), so the worker's broker begin()/commit()
 * puts results and acks in one transaction. Because the messages table is
 * right there, get() can tell "reserved by a worker" (RECEIVED) from
 * "still queued" (PENDING) without the worker storing anything.
 *
 * Saved group results live in group_results (backend.h group_save).
 *
 * Chords (backend.h): chord_sizes holds a chord's size, chord_joins one
 * row per distinct entry (UNIQUE, so a repeated join counts once), and a
 * join is one transaction: add, count, compare, and on completion read
 * the entries and delete the chord, so two workers cannot both complete
 * it. Rows expire for the collector only: a chord is counted whole, since
 * refreshing every row's expiry on each join (Celery's EXPIRE of the .j
 * key) would cost O(size) per join.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"
#include "store/sqlite_db.h"

/* Expired rows are invisible at once; the DELETE that reclaims their space
 * runs at most this often per handle. */
#define GC_INTERVAL_US (60 * 1000000LL)

struct sqlite_backend {
    struct cel_backend base;
    struct cel_sqldb *db;
    struct cel_sqlwake wake;
    int64_t last_gc_us;
};

/*
 * The guard is in the upsert itself, so there is no read-modify-write
 * race between processes: an existing row is replaced unless it is SUCCESS,
 * or it is ready (FAILURE, REVOKED) and the new state is not. An expired
 * row counts as absent and may always be replaced.
 */
static const char sql_store[] =
    "INSERT INTO results (task_id, status, meta, expires_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, meta = excluded.meta,"
    " expires_at = excluded.expires_at, updated_at = excluded.updated_at"
    " WHERE (results.expires_at IS NOT NULL AND results.expires_at <= ?5)"
    " OR (results.status <> 'SUCCESS' AND NOT (results.status IN ('FAILURE', 'REVOKED')"
    " AND excluded.status NOT IN ('SUCCESS', 'FAILURE', 'REVOKED')))";
static const char sql_get[] = "SELECT meta FROM results WHERE task_id = ?1"
                              " AND (expires_at IS NULL OR expires_at > ?2)";
static const char sql_reserved[] =
    "SELECT 1 FROM messages WHERE task_id = ?1 AND reserved = 1 LIMIT 1";
/* No index serves task_id on queued rows (one would dirty a random page
 * per publish and ack), so this scans; find_message() is rare. */
static const char sql_message[] =
    "SELECT queue, reserved, delivery_count, visible_at FROM messages WHERE task_id = ?1"
    " ORDER BY reserved DESC LIMIT 1";
/* A reserved row's visible_at is its lease deadline. */
static const char sql_queue_consumed[] =
    "SELECT 1 FROM messages INDEXED BY messages_due"
    " WHERE queue = ?1 AND visible_at > ?2 AND reserved = 1 LIMIT 1";
static const char sql_forget[] = "DELETE FROM results WHERE task_id = ?1";
static const char sql_gc[] =
    "DELETE FROM results WHERE expires_at IS NOT NULL AND expires_at <= ?1";
static const char sql_gc_sizes[] =
    "DELETE FROM chord_sizes WHERE expires_at IS NOT NULL AND expires_at <= ?1";
static const char sql_gc_joins[] =
    "DELETE FROM chord_joins WHERE expires_at IS NOT NULL AND expires_at <= ?1"
    " AND group_id NOT IN (SELECT group_id FROM chord_sizes)";
static const char sql_chord_size[] =
    "INSERT INTO chord_sizes (group_id, size, expires_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (group_id) DO UPDATE SET size = excluded.size, expires_at = excluded.expires_at";
static const char sql_chord_add[] =
    "INSERT INTO chord_joins (group_id, idx, entry, expires_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (group_id, idx, entry) DO UPDATE SET expires_at = excluded.expires_at";
static const char sql_chord_touch[] =
    "UPDATE chord_sizes SET expires_at = ?2 WHERE group_id = ?1 RETURNING size,"
    " (SELECT count(*) FROM chord_joins WHERE group_id = ?1)";
static const char sql_chord_entries[] =
    "SELECT entry FROM chord_joins WHERE group_id = ?1 ORDER BY idx, entry";
static const char sql_chord_del_joins[] = "DELETE FROM chord_joins WHERE group_id = ?1";
static const char sql_chord_del_size[] = "DELETE FROM chord_sizes WHERE group_id = ?1";
static const char sql_group_save[] =
    "INSERT INTO group_results (group_id, meta, expires_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (group_id) DO UPDATE SET meta = excluded.meta, expires_at = excluded.expires_at";
static const char sql_group_get[] = "SELECT meta FROM group_results WHERE group_id = ?1"
                                    " AND (expires_at IS NULL OR expires_at > ?2)";
static const char sql_group_forget[] = "DELETE FROM group_results WHERE group_id = ?1";
static const char sql_gc_groups[] =
    "DELETE FROM group_results WHERE expires_at IS NOT NULL AND expires_at <= ?1";

static int sk_open(const struct cel_url *url, const cel_config *cfg, struct cel_backend **out,
                   struct cel_errbuf *err)
{
    (void)cfg;
    *out = NULL;
    char *path = cel__url_sqlite_path(url);
    if (!path)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    struct sqlite_backend *bk = calloc(1, sizeof *bk);
    if (!bk) {
        free(path);
        return cel__err(err, CEL_ENOMEM, "out of memory");
    }
    bk->base.ops = &cel__backend_sqlite;
    bk->wake.fd = -1;
    int rc = cel__sqldb_acquire(path, &bk->db, err);
    if (rc == CEL_OK && cel__sqlwake_open(&bk->wake, path, err) != CEL_OK) {
        CEL_WARN("backend.sqlite", "no wakeups for %s: %s", path, err->msg);
        cel__err_clear(err);
    }
    free(path);
    if (rc) {
        free(bk);
        return rc;
    }
    *out = &bk->base;
    return CEL_OK;
}

static void sk_close(struct cel_backend *base)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    if (!bk)
        return;
    cel__sqlwake_close(&bk->wake);
    cel__sqldb_release(bk->db);
    free(bk);
}

/* Celery's state names; CUSTOM states are read from the meta itself. */
static int status_name(cel_state state, const char *meta, size_t len, char *buf, size_t blen)
{
    const char *name = cel__state_std_name(state);
    if (name) {
        snprintf(buf, blen, "%s", name);
        return CEL_OK;
    }
    json_t *root = cel__json_parse(meta, len, 0, NULL, 0);
    const char *s = cel__json_cstr(json_object_get(root, "status"));
    int rc = s && *s ? CEL_OK : CEL_EINVAL;
    snprintf(buf, blen, "%s", s ? s : "");
    json_decref(root);
    return rc;
}

static int gc_expired(struct sqlite_backend *bk, int64_t now)
{
    sqlite3_stmt *st = cel__sqldb_prepare(bk->db, sql_gc, &bk->base.err);
    if (!st)
        return CEL_EBACKEND;
    sqlite3_bind_int64(st, 1, now);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return cel__sqldb_fail(bk->db, &bk->base.err, CEL_EBACKEND,
                               "cannot delete expired results");
    int n = sqlite3_changes(bk->db->conn);
    if (n > 0)
        CEL_DEBUG("backend.sqlite", "deleted %d expired results", n);
    const char *const chords[] = {sql_gc_sizes, sql_gc_joins, sql_gc_groups};
    for (size_t i = 0; i < 3; i++) {
        st = cel__sqldb_prepare(bk->db, chords[i], &bk->base.err);
        if (!st)
            return CEL_EBACKEND;
        sqlite3_bind_int64(st, 1, now);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return cel__sqldb_fail(bk->db, &bk->base.err, CEL_EBACKEND,
                                   "cannot delete expired chords");
    }
    return CEL_OK;
}

static int sk_store(struct cel_backend *base, const char *task_id, cel_state state,
                    const char *meta_json, size_t len, int64_t ttl_s)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    char status[64];
    if (status_name(state, meta_json, len, status, sizeof status) != CEL_OK)
        return cel__err(&base->err, CEL_EINVAL, "result of task %s has no status", task_id);
    int rc = cel__sqldb_lock(&bk->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = bk->db;
    int64_t now = cel__wall_us();
    bool gc = now - bk->last_gc_us >= GC_INTERVAL_US;
    bool owned;
    rc = cel__sqldb_write_begin(db, !gc, &owned, &base->err);
    if (rc == CEL_OK && gc) {
        bk->last_gc_us = now;
        rc = gc_expired(bk, now);
    }
    if (rc == CEL_OK) {
        sqlite3_stmt *st = cel__sqldb_prepare(db, sql_store, &base->err);
        if (!st) {
            rc = CEL_EBACKEND;
        } else {
            sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, meta_json, (int)len, SQLITE_STATIC);
            if (ttl_s > 0)
                sqlite3_bind_int64(st, 4, now + ttl_s * 1000000);
            sqlite3_bind_int64(st, 5, now);
            int src = sqlite3_step(st);
            sqlite3_reset(st);
            if (src != SQLITE_DONE)
                rc = cel__sqldb_fail(db, &base->err, src == SQLITE_BUSY ? CEL_EBUSY : CEL_EBACKEND,
                                     "cannot store a result");
        }
    }
    if (rc == CEL_OK || owned)
        rc = cel__sqldb_write_end(db, owned, rc, &base->err);
    cel__sqldb_unlock(db);
    return rc;
}

static char *received_meta(const char *task_id)
{
    json_t *m = json_pack("{s:s, s:n, s:n, s:[], s:n, s:s}", "status", "RECEIVED", "result",
                          "traceback", "children", "date_done", "task_id", task_id);
    char *s = m ? json_dumps(m, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER) : NULL;
    json_decref(m);
    return s;
}

/* The text column of the one unexpired row `sql` finds for ?1 = key
 * (?2 = now); CEL_ENOTFOUND (no message) when none. The caller holds
 * the lock. */
static int read_unexpired(struct sqlite_backend *bk, const char *sql, const char *key, char **out)
{
    struct cel_backend *base = &bk->base;
    sqlite3_stmt *st = cel__sqldb_prepare(bk->db, sql, &base->err);
    if (!st)
        return CEL_EBACKEND;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, cel__wall_us());
    int rc, src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        *out = strdup(t ? t : "");
        rc = *out ? CEL_OK : cel__err(&base->err, CEL_ENOMEM, "out of memory");
    } else if (src != SQLITE_DONE) {
        rc = cel__sqldb_fail(bk->db, &base->err, CEL_EBACKEND, "cannot read a result");
    } else {
        rc = CEL_ENOTFOUND;
    }
    sqlite3_reset(st);
    return rc;
}

static int sk_get(struct cel_backend *base, const char *task_id, char **meta_json)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    *meta_json = NULL;
    int rc = cel__sqldb_lock(&bk->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = bk->db;
    sqlite3_stmt *st;
    int src;
    rc = read_unexpired(bk, sql_get, task_id, meta_json);
    if (rc == CEL_ENOTFOUND) {
        st = cel__sqldb_prepare(db, sql_reserved, &base->err);
        if (!st) {
            rc = CEL_EBACKEND;
        } else {
            sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
            src = sqlite3_step(st);
            sqlite3_reset(st);
            if (src == SQLITE_ROW) {
                *meta_json = received_meta(task_id);
                rc = *meta_json ? CEL_OK : cel__err(&base->err, CEL_ENOMEM, "out of memory");
            } else if (src != SQLITE_DONE) {
                rc = cel__sqldb_fail(db, &base->err, CEL_EBACKEND, "cannot read the queue");
            } else {
                cel__err(&base->err, CEL_ENOTFOUND, "no result for task %s", task_id);
            }
        }
    }
    cel__sqldb_unlock(db);
    return rc;
}

static int sk_find_message(struct cel_backend *base, const char *task_id,
                           struct cel_task_message *out)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    memset(out, 0, sizeof *out);
    int rc = cel__sqldb_lock(&bk->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = bk->db;
    sqlite3_stmt *st = cel__sqldb_prepare(db, sql_message, &base->err);
    if (!st) {
        cel__sqldb_unlock(db);
        return CEL_EBACKEND;
    }
    sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *q = (const char *)sqlite3_column_text(st, 0);
        out->queue = strdup(q ? q : "");
        out->reserved = sqlite3_column_int(st, 1) != 0;
        out->delivery_count = sqlite3_column_int(st, 2);
        out->due_us = sqlite3_column_int64(st, 3);
        if (!out->queue)
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
    } else if (src != SQLITE_DONE) {
        rc = cel__sqldb_fail(db, &base->err, CEL_EBACKEND, "cannot read the queue");
    }
    sqlite3_reset(st);
    if (rc == CEL_OK && out->queue) {
        st = cel__sqldb_prepare(db, sql_queue_consumed, &base->err);
        if (!st) {
            rc = CEL_EBACKEND;
        } else {
            sqlite3_bind_text(st, 1, out->queue, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, cel__wall_us());
            src = sqlite3_step(st);
            out->queue_consumed = src == SQLITE_ROW;
            if (src != SQLITE_ROW && src != SQLITE_DONE)
                rc = cel__sqldb_fail(db, &base->err, CEL_EBACKEND, "cannot read the queue");
            sqlite3_reset(st);
        }
    }
    cel__sqldb_unlock(db);
    if (rc != CEL_OK) {
        free(out->queue);
        out->queue = NULL;
    }
    return rc;
}

static void bind_expiry(sqlite3_stmt *st, int col, int64_t ttl_s)
{
    if (ttl_s > 0)
        sqlite3_bind_int64(st, col, cel__wall_us() + ttl_s * 1000000);
    else
        sqlite3_bind_null(st, col);
}

/* Runs a prepared statement that returns no rows. */
static int step_done(struct sqlite_backend *bk, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return cel__sqldb_fail(bk->db, &bk->base.err, src == SQLITE_BUSY ? CEL_EBUSY : CEL_EBACKEND,
                               what);
    return CEL_OK;
}

/* One write statement in its own transaction (or the caller's batch):
 * ?1 the key, then ?2 `text` (or `num` when text is NULL and bind_num)
 * and ?3 the expiry of ttl_s when the statement has them. */
struct keyed_write {
    const char *sql;
    const char *key;
    const char *text;
    size_t len;
    int num;
    bool bind_num;
    int64_t ttl_s;
    const char *what; /* for the error message */
};

static int keyed_write(struct sqlite_backend *bk, const struct keyed_write *w)
{
    struct cel_backend *base = &bk->base;
    int rc = cel__sqldb_lock(&bk->db, &base->err);
    if (rc)
        return rc;
    bool owned;
    rc = cel__sqldb_write_begin(bk->db, true, &owned, &base->err);
    if (rc == CEL_OK) {
        sqlite3_stmt *st = cel__sqldb_prepare(bk->db, w->sql, &base->err);
        if (!st) {
            rc = CEL_EBACKEND;
        } else {
            sqlite3_bind_text(st, 1, w->key, -1, SQLITE_STATIC);
            if (w->text)
                sqlite3_bind_text(st, 2, w->text, (int)w->len, SQLITE_STATIC);
            else if (w->bind_num)
                sqlite3_bind_int(st, 2, w->num);
            if (sqlite3_bind_parameter_count(st) >= 3)
                bind_expiry(st, 3, w->ttl_s);
            rc = step_done(bk, st, w->what);
        }
        rc = cel__sqldb_write_end(bk->db, owned, rc, &base->err);
    }
    cel__sqldb_unlock(bk->db);
    return rc;
}

static int sk_forget(struct cel_backend *base, const char *task_id)
{
    const struct keyed_write w = {
        .sql = sql_forget, .key = task_id, .what = "cannot forget a result"};
    return keyed_write((struct sqlite_backend *)base, &w);
}

/* ---- chords ---- */

/* Index order with Celery's null (-1) last, as Redis scores it +inf. */
static int64_t chord_score(int index)
{
    return index < 0 ? INT64_MAX : index;
}

static int sk_chord_size(struct cel_backend *base, const char *gid, int size, int64_t ttl_s)
{
    const struct keyed_write w = {.sql = sql_chord_size,
                                  .key = gid,
                                  .num = size,
                                  .bind_num = true,
                                  .ttl_s = ttl_s,
                                  .what = "cannot record a chord size"};
    return keyed_write((struct sqlite_backend *)base, &w);
}

/* The entries of a complete chord as one JSON array, index order. */
static int chord_entries(struct sqlite_backend *bk, const char *gid, char **out)
{
    sqlite3_stmt *st = cel__sqldb_prepare(bk->db, sql_chord_entries, &bk->base.err);
    if (!st)
        return CEL_EBACKEND;
    sqlite3_bind_text(st, 1, gid, -1, SQLITE_STATIC);
    struct cel_buf b = {0};
    int rc = cel__buf_append(&b, "[", 1);
    int src;
    bool first = true;
    while (rc == CEL_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (!first)
            rc = cel__buf_append(&b, ",", 1);
        first = false;
        if (rc == CEL_OK)
            rc = cel__buf_append(&b, (const char *)sqlite3_column_text(st, 0),
                                 (size_t)sqlite3_column_bytes(st, 0));
    }
    if (rc == CEL_OK && src != SQLITE_DONE)
        rc = cel__sqldb_fail(bk->db, &bk->base.err, CEL_EBACKEND, "cannot read a chord");
    sqlite3_reset(st);
    if (rc == CEL_OK)
        rc = cel__buf_append(&b, "]", 1);
    if (rc != CEL_OK) {
        cel__buf_release(&b);
        return rc == CEL_ENOMEM ? cel__err(&bk->base.err, rc, "out of memory") : rc;
    }
    *out = cel__buf_take(&b, NULL);
    return *out ? CEL_OK : cel__err(&bk->base.err, CEL_ENOMEM, "out of memory");
}

/* Adds the entry and, when the chord is complete, reads it (and deletes
 * it unless a member failed); the caller holds a write transaction. */
static int chord_join_locked(struct sqlite_backend *bk, const char *gid, int index,
                             const char *entry, size_t len, int64_t ttl_s, bool *complete,
                             char **entries_json)
{
    sqlite3_stmt *st = cel__sqldb_prepare(bk->db, sql_chord_add, &bk->base.err);
    if (!st)
        return CEL_EBACKEND;
    sqlite3_bind_text(st, 1, gid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, chord_score(index));
    sqlite3_bind_text(st, 3, entry, (int)len, SQLITE_STATIC);
    bind_expiry(st, 4, ttl_s);
    int rc = step_done(bk, st, "cannot join a chord");
    if (rc != CEL_OK)
        return rc;
    if (!(st = cel__sqldb_prepare(bk->db, sql_chord_touch, &bk->base.err)))
        return CEL_EBACKEND;
    sqlite3_bind_text(st, 1, gid, -1, SQLITE_STATIC);
    bind_expiry(st, 2, ttl_s);
    int src = sqlite3_step(st);
    bool full = src == SQLITE_ROW && sqlite3_column_int64(st, 0) == sqlite3_column_int64(st, 1);
    if (src == SQLITE_ROW)
        src = sqlite3_step(st); /* RETURNING: the update is done at SQLITE_DONE */
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return cel__sqldb_fail(bk->db, &bk->base.err, CEL_EBACKEND, "cannot count a chord");
    if (!full)
        return CEL_OK;
    if ((rc = chord_entries(bk, gid, entries_json)) != CEL_OK)
        return rc;
    *complete = true;
    if (cel__chord_failed_entry(*entries_json, strlen(*entries_json)) != -1)
        return CEL_OK; /* a failed chord stays until it expires, as in Celery */
    const char *const dels[] = {sql_chord_del_joins, sql_chord_del_size};
    for (size_t i = 0; rc == CEL_OK && i < 2; i++) {
        if (!(st = cel__sqldb_prepare(bk->db, dels[i], &bk->base.err)))
            return CEL_EBACKEND;
        sqlite3_bind_text(st, 1, gid, -1, SQLITE_STATIC);
        rc = step_done(bk, st, "cannot delete a complete chord");
    }
    return rc;
}

static int sk_chord_join(struct cel_backend *base, const char *gid, int index, const char *entry,
                         size_t len, int64_t ttl_s, bool *complete, char **entries_json)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    *complete = false;
    *entries_json = NULL;
    int rc = cel__sqldb_lock(&bk->db, &base->err);
    if (rc)
        return rc;
    bool owned;
    rc = cel__sqldb_write_begin(bk->db, false, &owned, &base->err);
    if (rc == CEL_OK) {
        rc = chord_join_locked(bk, gid, index, entry, len, ttl_s, complete, entries_json);
        rc = cel__sqldb_write_end(bk->db, owned, rc, &base->err);
    }
    cel__sqldb_unlock(bk->db);
    if (rc != CEL_OK) {
        *complete = false;
        free(*entries_json);
        *entries_json = NULL;
    }
    return rc;
}

/* ---- group results ---- */

static int sk_group_save(struct cel_backend *base, const char *gid, const char *meta_json,
                         size_t len, int64_t ttl_s)
{
    const struct keyed_write w = {.sql = sql_group_save,
                                  .key = gid,
                                  .text = meta_json,
                                  .len = len,
                                  .ttl_s = ttl_s,
                                  .what = "cannot save a group result"};
    return keyed_write((struct sqlite_backend *)base, &w);
}

static int sk_group_forget(struct cel_backend *base, const char *gid)
{
    const struct keyed_write w = {
        .sql = sql_group_forget, .key = gid, .what = "cannot forget a group result"};
    return keyed_write((struct sqlite_backend *)base, &w);
}

static int sk_group_get(struct cel_backend *base, const char *gid, char **meta_json)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    *meta_json = NULL;
    int rc = cel__sqldb_lock(&bk->db, &base->err);
    if (rc)
        return rc;
    rc = read_unexpired(bk, sql_group_get, gid, meta_json);
    if (rc == CEL_ENOTFOUND)
        cel__err(&base->err, CEL_ENOTFOUND, "no saved group %s", gid);
    cel__sqldb_unlock(bk->db);
    return rc;
}

static int sk_begin(struct cel_backend *base)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    return cel__sqldb_begin(&bk->db, &base->err);
}

static int sk_commit(struct cel_backend *base)
{
    struct sqlite_backend *bk = (struct sqlite_backend *)base;
    return cel__sqldb_commit(&bk->db, &base->err);
}

static int sk_wakeup_fd(struct cel_backend *base)
{
    return cel__sqlwake_fd(&((struct sqlite_backend *)base)->wake);
}

static void sk_drain_wakeup(struct cel_backend *base)
{
    cel__sqlwake_drain(&((struct sqlite_backend *)base)->wake);
}

const struct cel_backend_ops cel__backend_sqlite = {
    .abi = CEL_BACKEND_ABI,
    .scheme = "sqlite",
    .caps = CEL_BACKEND_CAP_TRANSACTIONS | CEL_BACKEND_CAP_CHEAP_STATES,
    .open = sk_open,
    .close = sk_close,
    .store = sk_store,
    .get = sk_get,
    .forget = sk_forget,
    .begin = sk_begin,
    .commit = sk_commit,
    .wakeup_fd = sk_wakeup_fd,
    .drain_wakeup = sk_drain_wakeup,
    .find_message = sk_find_message,
    .chord_size = sk_chord_size,
    .chord_join = sk_chord_join,
    .group_save = sk_group_save,
    .group_get = sk_group_get,
    .group_forget = sk_group_forget,
};
