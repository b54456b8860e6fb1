/*
 * sqlite.c - the embedded default transport: a table in a SQLite file.
 *
 * Many processes on one machine share the file (WAL mode); see
 * sqlite_db.h for the connection, transaction and wakeup plumbing.
 *
 * Priorities are 0..9 and 9 is served first, as in AMQP (note: Celery's
 * Redis transport uses the opposite order). Within one priority messages
 * are served in publish order. A fetch claims messages atomically inside
 * BEGIN IMMEDIATE by setting their lease deadline into visible_at; a
 * message whose lease ran out without ack is claimable again, with its
 * delivery_count raised, which is how a killed worker's messages return.
 *
 * An idle fetch must not write: every write wakes every waiter through
 * inotify, and idle workers would wake each other forever. So fetch first
 * checks with a plain SELECT and only opens a write transaction when a
 * message is claimable.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "core/clock.h"
#include "core/log.h"
#include "store/sqlite_db.h"

/* Lease used when the caller passes none: Celery's visibility_timeout. */
#define DEFAULT_LEASE_MS (120 * 1000) /* broker_visibility_timeout 0 */

struct sqlite_broker {
    struct cel_broker base;
    struct cel_sqldb *db;
    struct cel_sqlwake wake;
};

static const char sql_insert[] =
    "INSERT INTO messages (queue, priority, task_id, body, visible_at, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char sql_ready_exists[] =
    "SELECT 1 FROM messages INDEXED BY messages_due WHERE queue = ?1 AND visible_at <= ?2 LIMIT 1";
/* Walks messages_order (priority DESC, id), so it stops after `max` ready
 * rows instead of sorting the whole queue. */
static const char sql_candidates[] =
    "SELECT id, priority FROM messages INDEXED BY messages_order"
    " WHERE queue = ?1 AND visible_at <= ?2 ORDER BY priority DESC, id LIMIT ?3";
static const char sql_claim[] =
    "UPDATE messages SET reserved = 1, visible_at = ?2, delivery_count = delivery_count + 1"
    " WHERE id = ?1 RETURNING queue, body, delivery_count";
static const char sql_next_due[] = "SELECT visible_at FROM messages INDEXED BY messages_due"
                                   " WHERE queue = ?1 AND visible_at > ?2"
                                   " ORDER BY visible_at LIMIT 1";
static const char sql_ack[] = "DELETE FROM messages WHERE id = ?1";
static const char sql_requeue[] = "UPDATE messages SET reserved = 0, visible_at = ?2 WHERE id = ?1";
static const char sql_dead[] =
    "INSERT INTO dead_letters (queue, task_id, body, reason, delivery_count, created_at)"
    " SELECT queue, task_id, body, ?2, delivery_count, ?3 FROM messages WHERE id = ?1";
static const char sql_extend[] =
    "UPDATE messages SET visible_at = ?2 WHERE id = ?1 AND reserved = 1";
static const char sql_purge[] = "DELETE FROM messages WHERE queue = ?1 AND reserved = 0";
static const char sql_length[] = "SELECT COUNT(*) FROM messages WHERE queue = ?1";

static int sb_open(const struct cel_url *url, const cel_config *cfg, struct cel_broker **out,
                   struct cel_errbuf *err)
{
    (void)cfg;
    *out = NULL;
    char *path = cel__url_sqlite_path(url);
    if (!path)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    struct sqlite_broker *b = calloc(1, sizeof *b);
    if (!b) {
        free(path);
        return cel__err(err, CEL_ENOMEM, "out of memory");
    }
    b->base.ops = &cel__broker_sqlite;
    b->wake.fd = -1;
    int rc = cel__sqldb_acquire(path, &b->db, err);
    if (rc == CEL_OK && cel__sqlwake_open(&b->wake, path, err) != CEL_OK) {
        /* Not fatal: without the fd the worker polls. */
        CEL_WARN("broker.sqlite", "no wakeups for %s: %s", path, err->msg);
        cel__err_clear(err);
    }
    free(path);
    if (rc) {
        free(b);
        return rc;
    }
    *out = &b->base;
    return CEL_OK;
}

static void sb_close(struct cel_broker *base)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    if (!b)
        return;
    cel__sqlwake_close(&b->wake);
    cel__sqldb_release(b->db);
    free(b);
}

/* Steps a statement that returns no rows, then resets it so it holds no
 * read snapshot. */
static int step_done(struct sqlite_broker *b, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int code = CEL_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        code =
            cel__sqldb_fail(b->db, &b->base.err, rc == SQLITE_BUSY ? CEL_EBUSY : CEL_EBROKER, what);
    sqlite3_reset(st);
    return code;
}

static int sb_publish(struct cel_broker *base, const char *queue, int priority, int64_t due_us,
                      const char *task_id, const char *body, size_t len)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = b->db;
    int64_t now = cel__wall_us();
    bool owned;
    rc = cel__sqldb_write_begin(db, true, &owned, &base->err);
    if (rc == CEL_OK) {
        sqlite3_stmt *st = cel__sqldb_prepare(db, sql_insert, &base->err);
        if (!st) {
            rc = CEL_EBROKER;
        } else {
            priority = priority < 0 ? 0 : priority > 9 ? 9 : priority;
            sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 2, priority);
            if (task_id)
                sqlite3_bind_text(st, 3, task_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, body, (int)len, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, due_us > now ? due_us : now);
            sqlite3_bind_int64(st, 6, now);
            rc = step_done(b, st, "cannot publish");
        }
        rc = cel__sqldb_write_end(db, owned, rc, &base->err);
    }
    cel__sqldb_unlock(db);
    return rc;
}

static int sb_begin(struct cel_broker *base)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    return cel__sqldb_begin(&b->db, &base->err);
}

static int sb_commit(struct cel_broker *base)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    return cel__sqldb_commit(&b->db, &base->err);
}

struct candidate {
    int64_t id;
    int priority;
};

static int cmp_candidate(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->priority != y->priority)
        return y->priority - x->priority;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Lock held. True when a message is claimable on any of the queues. */
static int any_ready(struct sqlite_broker *b, const char *const *queues, size_t nqueues,
                     int64_t now, bool *ready)
{
    *ready = false;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_ready_exists, &b->base.err);
    if (!st)
        return CEL_EBROKER;
    for (size_t i = 0; i < nqueues && !*ready; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, queues[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *ready = true;
        else if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            return cel__sqldb_fail(b->db, &b->base.err, CEL_EBROKER, "cannot check the queue");
        }
    }
    sqlite3_reset(st);
    return CEL_OK;
}

static int next_due(struct sqlite_broker *b, const char *const *queues, size_t nqueues, int64_t now,
                    int64_t *out)
{
    *out = 0;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_next_due, &b->base.err);
    if (!st)
        return CEL_EBROKER;
    for (size_t i = 0; i < nqueues; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, queues[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            int64_t t = sqlite3_column_int64(st, 0);
            if (*out == 0 || t < *out)
                *out = t;
        } else if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            return cel__sqldb_fail(b->db, &b->base.err, CEL_EBROKER, "cannot read due times");
        }
    }
    sqlite3_reset(st);
    return CEL_OK;
}

/* Lock and write transaction held: picks up to max ids over all queues,
 * best first. */
static int pick(struct sqlite_broker *b, const char *const *queues, size_t nqueues, size_t max,
                int64_t now, struct candidate **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    struct candidate *c = malloc(nqueues * max * sizeof *c);
    if (!c)
        return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_candidates, &b->base.err);
    if (!st) {
        free(c);
        return CEL_EBROKER;
    }
    size_t n = 0;
    for (size_t i = 0; i < nqueues; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, queues[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            c[n].id = sqlite3_column_int64(st, 0);
            c[n].priority = sqlite3_column_int(st, 1);
            n++;
        }
        if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            free(c);
            return cel__sqldb_fail(b->db, &b->base.err, CEL_EBROKER, "cannot read the queue");
        }
    }
    sqlite3_reset(st);
    if (nqueues > 1)
        qsort(c, n, sizeof *c, cmp_candidate);
    *out = c;
    *nout = n < max ? n : max;
    return CEL_OK;
}

static int claim(struct sqlite_broker *b, const struct candidate *c, size_t nc, int64_t until,
                 struct cel_delivery *out, size_t *n)
{
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_claim, &b->base.err);
    if (!st)
        return CEL_EBROKER;
    for (size_t i = 0; i < nc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, c[i].id);
        sqlite3_bind_int64(st, 2, until);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            return cel__sqldb_fail(b->db, &b->base.err, CEL_EBROKER, "cannot claim a message");
        }
        struct cel_delivery *d = &out[*n];
        memset(d, 0, sizeof *d);
        const char *q = (const char *)sqlite3_column_text(st, 0);
        const char *body = (const char *)sqlite3_column_text(st, 1);
        int blen = sqlite3_column_bytes(st, 1);
        d->queue = strdup(q ? q : "");
        d->body = malloc((size_t)blen + 1);
        if (!d->queue || !d->body) {
            cel__delivery_release(d);
            sqlite3_reset(st);
            return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
        }
        memcpy(d->body, body ? body : "", (size_t)blen);
        d->body[blen] = '\0';
        d->len = (size_t)blen;
        d->tag = c[i].id;
        d->delivery_count = sqlite3_column_int(st, 2);
        (*n)++;
        /* RETURNING rows are produced while stepping; finish the update. */
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            ;
    }
    sqlite3_reset(st);
    return CEL_OK;
}

static int sb_fetch(struct cel_broker *base, const char *const *queues, size_t nqueues, size_t max,
                    int64_t lease_ms, struct cel_delivery *out, size_t *n, int64_t *next_due_us)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    *n = 0;
    if (next_due_us)
        *next_due_us = 0;
    if (nqueues == 0 || max == 0)
        return CEL_OK;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = b->db;
    int64_t now = cel__wall_us();
    bool ready;
    rc = any_ready(b, queues, nqueues, now, &ready);
    if (rc == CEL_OK && ready) {
        bool owned;
        rc = cel__sqldb_write_begin(db, false, &owned, &base->err);
        if (rc == CEL_OK) {
            struct candidate *c = NULL;
            size_t nc = 0;
            rc = pick(b, queues, nqueues, max, now, &c, &nc);
            if (rc == CEL_OK) {
                int64_t until = now + (lease_ms > 0 ? lease_ms : DEFAULT_LEASE_MS) * 1000;
                rc = claim(b, c, nc, until, out, n);
            }
            free(c);
            rc = cel__sqldb_write_end(db, owned, rc, &base->err);
            if (rc != CEL_OK) {
                /* Rolled back (or failed inside the caller's transaction):
                 * hand nothing out. */
                for (size_t i = 0; i < *n; i++)
                    cel__delivery_release(&out[i]);
                *n = 0;
            }
        }
    }
    if (rc == CEL_OK && next_due_us)
        rc = next_due(b, queues, nqueues, now, next_due_us);
    cel__sqldb_unlock(db);
    return rc;
}

/* Runs one single-statement write on message `id`. */
static int write_one(struct sqlite_broker *b, const char *sql, int64_t id, int64_t arg,
                     const char *what)
{
    int rc = cel__sqldb_lock(&b->db, &b->base.err);
    if (rc)
        return rc;
    struct cel_sqldb *db = b->db;
    bool owned;
    rc = cel__sqldb_write_begin(db, true, &owned, &b->base.err);
    if (rc == CEL_OK) {
        sqlite3_stmt *st = cel__sqldb_prepare(db, sql, &b->base.err);
        if (!st) {
            rc = CEL_EBROKER;
        } else {
            sqlite3_bind_int64(st, 1, id);
            if (arg)
                sqlite3_bind_int64(st, 2, arg);
            rc = step_done(b, st, what);
        }
        rc = cel__sqldb_write_end(db, owned, rc, &b->base.err);
    }
    cel__sqldb_unlock(db);
    return rc;
}

static int sb_ack(struct cel_broker *base, const struct cel_delivery *d)
{
    return write_one((struct sqlite_broker *)base, sql_ack, d->tag, 0, "cannot ack");
}

static int sb_reject(struct cel_broker *base, const struct cel_delivery *d, bool requeue,
                     const char *reason)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    if (requeue)
        return write_one(b, sql_requeue, d->tag, cel__wall_us(), "cannot requeue");
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = b->db;
    bool owned;
    rc = cel__sqldb_write_begin(db, false, &owned, &base->err);
    if (rc == CEL_OK) {
        sqlite3_stmt *st = cel__sqldb_prepare(db, sql_dead, &base->err);
        if (!st) {
            rc = CEL_EBROKER;
        } else {
            sqlite3_bind_int64(st, 1, d->tag);
            sqlite3_bind_text(st, 2, reason ? reason : "rejected", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, cel__wall_us());
            rc = step_done(b, st, "cannot dead-letter");
        }
        if (rc == CEL_OK) {
            st = cel__sqldb_prepare(db, sql_ack, &base->err);
            if (!st) {
                rc = CEL_EBROKER;
            } else {
                sqlite3_bind_int64(st, 1, d->tag);
                rc = step_done(b, st, "cannot dead-letter");
            }
        }
        rc = cel__sqldb_write_end(db, owned, rc, &base->err);
    }
    cel__sqldb_unlock(db);
    return rc;
}

static int sb_extend(struct cel_broker *base, const struct cel_delivery *const *ds, size_t n,
                     int64_t lease_ms)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    if (n == 0)
        return CEL_OK;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = b->db;
    int64_t until = cel__wall_us() + (lease_ms > 0 ? lease_ms : DEFAULT_LEASE_MS) * 1000;
    bool owned;
    rc = cel__sqldb_write_begin(db, n == 1, &owned, &base->err);
    if (rc == CEL_OK) {
        sqlite3_stmt *st = cel__sqldb_prepare(db, sql_extend, &base->err);
        if (!st)
            rc = CEL_EBROKER;
        for (size_t i = 0; st && rc == CEL_OK && i < n; i++) {
            sqlite3_bind_int64(st, 1, ds[i]->tag);
            sqlite3_bind_int64(st, 2, until);
            rc = step_done(b, st, "cannot extend a lease");
        }
        rc = cel__sqldb_write_end(db, owned, rc, &base->err);
    }
    cel__sqldb_unlock(db);
    return rc;
}

static int sb_purge(struct cel_broker *base, const char *queue, size_t *removed)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    if (removed)
        *removed = 0;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    struct cel_sqldb *db = b->db;
    bool owned;
    rc = cel__sqldb_write_begin(db, true, &owned, &base->err);
    if (rc == CEL_OK) {
        sqlite3_stmt *st = cel__sqldb_prepare(db, sql_purge, &base->err);
        if (!st) {
            rc = CEL_EBROKER;
        } else {
            sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
            rc = step_done(b, st, "cannot purge");
            if (rc == CEL_OK && removed)
                *removed = (size_t)sqlite3_changes(db->conn);
        }
        rc = cel__sqldb_write_end(db, owned, rc, &base->err);
    }
    cel__sqldb_unlock(db);
    return rc;
}

static int sb_length(struct cel_broker *base, const char *queue, size_t *len)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    *len = 0;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_length, &base->err);
    if (!st) {
        rc = CEL_EBROKER;
    } else {
        sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            *len = (size_t)sqlite3_column_int64(st, 0);
        else
            rc = cel__sqldb_fail(b->db, &base->err, CEL_EBROKER, "cannot count the queue");
        sqlite3_reset(st);
    }
    cel__sqldb_unlock(b->db);
    return rc;
}

static int sb_wakeup_fd(struct cel_broker *base)
{
    return cel__sqlwake_fd(&((struct sqlite_broker *)base)->wake);
}

static void sb_drain_wakeup(struct cel_broker *base)
{
    cel__sqlwake_drain(&((struct sqlite_broker *)base)->wake);
}

const struct cel_broker_ops cel__broker_sqlite = {
    .abi = CEL_BROKER_ABI,
    .default_lease_ms = DEFAULT_LEASE_MS,
    .scheme = "sqlite",
    .caps = CEL_BROKER_CAP_DELAYED | CEL_BROKER_CAP_PRIORITY | CEL_BROKER_CAP_VISIBILITY |
            CEL_BROKER_CAP_TRANSACTIONS | CEL_BROKER_CAP_DEADLETTER | CEL_BROKER_CAP_SHARED_FILE,
    .open = sb_open,
    .close = sb_close,
    .publish = sb_publish,
    .begin = sb_begin,
    .commit = sb_commit,
    .fetch = sb_fetch,
    .ack = sb_ack,
    .reject = sb_reject,
    .extend = sb_extend,
    .purge = sb_purge,
    .length = sb_length,
    .wakeup_fd = sb_wakeup_fd,
    .drain_wakeup = sb_drain_wakeup,
};
