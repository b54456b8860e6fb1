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
 *
 * Fan-out (events, broadcast control) is the fanout table: a publish
 * appends a row and trims the table to the newest
 * CEL_SQLDB_FANOUT_MAX_ROWS rows of the last CEL_SQLDB_FANOUT_MAX_AGE_S
 * seconds; a subscription reads the rows past the last id it saw on a
 * connection of its own, and wakes on the doorbell like fetch() does.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/sqlite_dead.h"
#include "broker/sqlite_internal.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/rate.h"
#include "store/sqlite_db.h"

/* Lease used when the caller passes none: Celery's visibility_timeout. */
#define DEFAULT_LEASE_MS (120 * 1000) /* broker_visibility_timeout 0 */

/* Age pruning scans from the oldest row; once a second is plenty. */
#define FANOUT_AGE_PRUNE_US 1000000

/*
 * A fan-out subscription. It shares nothing with the broker handle that
 * made it (its own connection, lock and inotify watch), so one thread may
 * poll it while another uses the handle. struct cel_fanout_sub is left
 * incomplete: the ops table hands this struct around under that name.
 */
struct sqlite_fanout_sub {
    struct cel_sqldb *db;
    struct cel_sqlwake wake;
    char *exchange;
    char *pattern;
    int64_t last_id; /* highest fanout id seen */
    struct cel_errbuf err;
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
static const char sql_length_bands[] = "SELECT priority, COUNT(*) FROM messages"
                                       " WHERE queue = ?1 AND reserved = 0"
                                       " GROUP BY priority ORDER BY priority";
static const char sql_fanout_insert[] =
    "INSERT INTO fanout (exchange, routing_key, body, created_at) VALUES (?1, ?2, ?3, ?4)";
/* Ids grow with time, so the walk from the oldest row stops at the first
 * one young enough. */
static const char sql_fanout_first_young[] =
    "SELECT id FROM fanout WHERE created_at >= ?1 ORDER BY id LIMIT 1";
static const char sql_fanout_trim[] = "DELETE FROM fanout WHERE id < ?1";
static const char sql_fanout_max[] = "SELECT COALESCE(MAX(id), 0) FROM fanout";
static const char sql_fanout_since[] =
    "SELECT id, exchange, routing_key, body FROM fanout WHERE id > ?1 ORDER BY id";

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

/*
 * One write operation: takes the lock, opens a write transaction unless
 * the caller's begin() has one open (or, `single`, the body is one
 * statement, which commits on its own outside a batch), runs `body`,
 * commits or rolls back what it opened, and unlocks.
 */
static int write_op(struct sqlite_broker *b, bool single,
                    int (*body)(struct sqlite_broker *b, void *arg), void *arg)
{
    int rc = cel__sqldb_lock(&b->db, &b->base.err);
    if (rc)
        return rc;
    bool owned;
    rc = cel__sqldb_write_begin(b->db, single, &owned, &b->base.err);
    if (rc == CEL_OK)
        rc = cel__sqldb_write_end(b->db, owned, body(b, arg), &b->base.err);
    cel__sqldb_unlock(b->db);
    return rc;
}

int cel__sqlite_write(struct sqlite_broker *b, bool single,
                      int (*body)(struct sqlite_broker *b, void *arg), void *arg)
{
    return write_op(b, single, body, arg);
}

int cel__sqlite_step_done(struct sqlite_broker *b, sqlite3_stmt *st, const char *what)
{
    return step_done(b, st, what);
}

/* The cached statement for `sql`, or NULL with the error recorded. */
static sqlite3_stmt *prepare(struct sqlite_broker *b, const char *sql)
{
    return cel__sqldb_prepare(b->db, sql, &b->base.err);
}

struct publish_args {
    const char *queue, *task_id, *body;
    int priority;
    int64_t due_us;
    size_t len;
};

int cel__sqlite_insert_message(struct sqlite_broker *b, const char *queue, int priority,
                               int64_t due_us, const char *task_id, const char *body, size_t len)
{
    sqlite3_stmt *st = prepare(b, sql_insert);
    if (!st)
        return CEL_EBROKER;
    int64_t now = cel__wall_us();
    sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, priority < 0 ? 0 : priority > 9 ? 9 : priority);
    if (task_id)
        sqlite3_bind_text(st, 3, task_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, body, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, due_us > now ? due_us : now);
    sqlite3_bind_int64(st, 6, now);
    return step_done(b, st, "cannot publish");
}

static int publish_row(struct sqlite_broker *b, void *arg)
{
    const struct publish_args *a = arg;
    return cel__sqlite_insert_message(b, a->queue, a->priority, a->due_us, a->task_id, a->body,
                                      a->len);
}

static int sb_publish(struct cel_broker *base, const char *queue, int priority, int64_t due_us,
                      const char *task_id, const char *body, size_t len)
{
    struct publish_args a = {queue, task_id, body, priority, due_us, len};
    return write_op((struct sqlite_broker *)base, true, publish_row, &a);
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

struct row_args {
    const char *sql;
    int64_t id;
    int64_t arg; /* ?2 when not 0 */
    const char *what;
};

static int write_row(struct sqlite_broker *b, void *arg)
{
    const struct row_args *a = arg;
    sqlite3_stmt *st = prepare(b, a->sql);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_int64(st, 1, a->id);
    if (a->arg)
        sqlite3_bind_int64(st, 2, a->arg);
    return step_done(b, st, a->what);
}

/* Runs one single-statement write on message `id`. */
static int write_one(struct sqlite_broker *b, const char *sql, int64_t id, int64_t arg,
                     const char *what)
{
    struct row_args a = {sql, id, arg, what};
    return write_op(b, true, write_row, &a);
}

static int sb_ack(struct cel_broker *base, const struct cel_delivery *d)
{
    return write_one((struct sqlite_broker *)base, sql_ack, d->tag, 0, "cannot ack");
}

struct dead_args {
    int64_t id;
    const char *reason;
};

/* Copies the message to dead_letters and deletes it, in one transaction. */
static int dead_letter(struct sqlite_broker *b, void *arg)
{
    const struct dead_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_dead);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_int64(st, 1, a->id);
    sqlite3_bind_text(st, 2, a->reason ? a->reason : "rejected", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cel__wall_us());
    int rc = step_done(b, st, "cannot dead-letter");
    if (rc != CEL_OK)
        return rc;
    struct row_args del = {sql_ack, a->id, 0, "cannot dead-letter"};
    return write_row(b, &del);
}

static int sb_reject(struct cel_broker *base, const struct cel_delivery *d, bool requeue,
                     const char *reason)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    if (requeue)
        return write_one(b, sql_requeue, d->tag, cel__wall_us(), "cannot requeue");
    struct dead_args a = {d->tag, reason};
    return write_op(b, false, dead_letter, &a);
}

/* The row keeps its delivery_count; the next claim adds one. */
static int sb_requeue_at(struct cel_broker *base, const struct cel_delivery *d, int64_t due_us)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    int64_t now = cel__wall_us();
    return write_one(b, sql_requeue, d->tag, due_us > now ? due_us : now, "cannot requeue");
}

struct extend_args {
    const struct cel_delivery *const *ds;
    size_t n;
    int64_t until;
};

static int extend_rows(struct sqlite_broker *b, void *arg)
{
    const struct extend_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_extend);
    if (!st)
        return CEL_EBROKER;
    int rc = CEL_OK;
    for (size_t i = 0; rc == CEL_OK && i < a->n; i++) {
        sqlite3_bind_int64(st, 1, a->ds[i]->tag);
        sqlite3_bind_int64(st, 2, a->until);
        rc = step_done(b, st, "cannot extend a lease");
    }
    return rc;
}

static int sb_extend(struct cel_broker *base, const struct cel_delivery *const *ds, size_t n,
                     int64_t lease_ms)
{
    if (n == 0)
        return CEL_OK;
    int64_t until = cel__wall_us() + (lease_ms > 0 ? lease_ms : DEFAULT_LEASE_MS) * 1000;
    struct extend_args a = {ds, n, until};
    return write_op((struct sqlite_broker *)base, n == 1, extend_rows, &a);
}

struct purge_args {
    const char *queue;
    size_t removed;
};

static int purge_rows(struct sqlite_broker *b, void *arg)
{
    struct purge_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_purge);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, a->queue, -1, SQLITE_STATIC);
    int rc = step_done(b, st, "cannot purge");
    if (rc == CEL_OK)
        a->removed = (size_t)sqlite3_changes(b->db->conn);
    return rc;
}

static int sb_purge(struct cel_broker *base, const char *queue, size_t *removed)
{
    struct purge_args a = {queue, 0};
    int rc = write_op((struct sqlite_broker *)base, true, purge_rows, &a);
    if (removed)
        *removed = rc == CEL_OK ? a.removed : 0;
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

/* ---- paused queues: the paused_queues table ------------------------------ */

static const char sql_pause[] =
    "INSERT OR IGNORE INTO paused_queues (queue, paused_at) VALUES (?1, ?2)";
static const char sql_resume[] = "DELETE FROM paused_queues WHERE queue = ?1";
static const char sql_paused[] = "SELECT queue FROM paused_queues ORDER BY queue";

struct pause_args {
    const char *queue;
    bool paused;
};

static int pause_row(struct sqlite_broker *b, void *arg)
{
    const struct pause_args *a = arg;
    sqlite3_stmt *st = prepare(b, a->paused ? sql_pause : sql_resume);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, a->queue, -1, SQLITE_STATIC);
    if (a->paused)
        sqlite3_bind_int64(st, 2, cel__wall_us());
    return step_done(b, st, a->paused ? "cannot pause the queue" : "cannot resume the queue");
}

static int sb_queue_pause(struct cel_broker *base, const char *queue, bool paused)
{
    struct pause_args a = {queue, paused};
    return write_op((struct sqlite_broker *)base, true, pause_row, &a);
}

static int sb_queue_paused_list(struct cel_broker *base, char ***names, size_t *n)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    *names = NULL;
    *n = 0;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_paused, &base->err);
    char **v = NULL;
    size_t cap = 0;
    int src = SQLITE_DONE;
    if (!st)
        rc = CEL_EBROKER;
    while (rc == CEL_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        char **grown = cel__array_grow(v, &cap, *n, sizeof *grown, 8);
        const char *q = (const char *)sqlite3_column_text(st, 0);
        if (grown)
            v = grown;
        if (!grown || !(v[*n] = strdup(q ? q : "")))
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
        else
            (*n)++;
    }
    if (rc == CEL_OK && src != SQLITE_DONE)
        rc = cel__sqldb_fail(b->db, &base->err, CEL_EBROKER, "cannot read the paused queues");
    if (st)
        sqlite3_reset(st);
    cel__sqldb_unlock(b->db);
    if (rc != CEL_OK) {
        cel__strv_free(v, *n);
        *n = 0;
        return rc;
    }
    *names = v;
    return CEL_OK;
}

static int sb_length_bands(struct cel_broker *base, const char *queue, int *prios, size_t *lens,
                           size_t max, size_t *n)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    *n = 0;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_length_bands, &base->err);
    if (!st) {
        rc = CEL_EBROKER;
    } else {
        sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            if (*n < max) {
                prios[*n] = sqlite3_column_int(st, 0);
                lens[*n] = (size_t)sqlite3_column_int64(st, 1);
            }
            (*n)++;
        }
        if (step != SQLITE_DONE)
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

/* ---- fan-out ------------------------------------------------------------ */

/* Lock and write transaction held: the oldest id to keep after inserting
 * `new_id`, by row count always and by age once a second. */
static int fanout_keep_from(struct sqlite_broker *b, int64_t new_id, int64_t *keep_from)
{
    *keep_from = new_id - CEL_SQLDB_FANOUT_MAX_ROWS + 1;
    int64_t mono = cel__mono_us();
    if (b->fanout_pruned_us && mono - b->fanout_pruned_us < FANOUT_AGE_PRUNE_US)
        return CEL_OK;
    b->fanout_pruned_us = mono;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_fanout_first_young, &b->base.err);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_int64(st, 1, cel__wall_us() - CEL_SQLDB_FANOUT_MAX_AGE_S * 1000000LL);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t young = sqlite3_column_int64(st, 0);
        if (young > *keep_from)
            *keep_from = young;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cel__sqldb_fail(b->db, &b->base.err, CEL_EBROKER, "cannot prune fan-out messages");
    return CEL_OK;
}

struct fanout_args {
    const char *exchange, *routing_key, *envelope;
    size_t len;
};

static int fanout_row(struct sqlite_broker *b, void *arg)
{
    const struct fanout_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_fanout_insert);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, a->exchange, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->routing_key ? a->routing_key : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->envelope, (int)a->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, cel__wall_us());
    int rc = step_done(b, st, "cannot publish a fan-out message");
    int64_t keep_from = 0;
    if (rc == CEL_OK)
        rc = fanout_keep_from(b, sqlite3_last_insert_rowid(b->db->conn), &keep_from);
    if (rc != CEL_OK || keep_from <= 1)
        return rc;
    struct row_args trim = {sql_fanout_trim, keep_from, 0, "cannot prune fan-out messages"};
    return write_row(b, &trim);
}

static int sb_fanout_publish(struct cel_broker *base, const char *exchange, const char *routing_key,
                             const char *envelope, size_t len)
{
    struct fanout_args a = {exchange, routing_key, envelope, len};
    return write_op((struct sqlite_broker *)base, false, fanout_row, &a);
}

/* "#" and "*" match every key, "a.b.#" matches "a.b" and "a.b.<anything>",
 * any other pattern only the same key. */
static bool key_matches(const char *pattern, const char *key)
{
    if (strcmp(pattern, "#") == 0 || strcmp(pattern, "*") == 0)
        return true;
    size_t n = strlen(pattern);
    if (n >= 2 && strcmp(pattern + n - 2, ".#") == 0)
        return strncmp(key, pattern, n - 2) == 0 && (key[n - 2] == '\0' || key[n - 2] == '.');
    return strcmp(pattern, key) == 0;
}

static void fanout_free(struct sqlite_fanout_sub *s)
{
    cel__sqlwake_close(&s->wake);
    cel__sqldb_release(s->db);
    free(s->exchange);
    free(s->pattern);
    free(s);
}

static int sb_fanout_subscribe(struct cel_broker *base, const char *exchange, const char *pattern,
                               struct cel_fanout_sub **out)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    *out = NULL;
    if (strcmp(b->db->path, ":memory:") == 0) /* a second connection sees another database */
        return cel__err(&base->err, CEL_EINVAL,
                        "fan-out needs a database file, not ':memory:' (use memory:// instead)");
    struct sqlite_fanout_sub *s = calloc(1, sizeof *s);
    if (!s)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    s->wake.fd = -1;
    s->exchange = strdup(exchange);
    s->pattern = strdup(pattern && *pattern ? pattern : "#");
    if (!s->exchange || !s->pattern) {
        fanout_free(s);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    int rc = cel__sqldb_open_private(b->db->path, &s->db, &base->err);
    if (rc) {
        fanout_free(s);
        return rc;
    }
    /* Watch before reading the newest id: a commit after that read rings
     * a watch that already exists. */
    if (cel__sqlwake_open(&s->wake, b->db->path, &base->err) != CEL_OK) {
        CEL_WARN("broker.sqlite", "no wakeups for fan-out on %s: %s", b->db->path, base->err.msg);
        cel__err_clear(&base->err);
    }
    rc = cel__sqldb_lock(&s->db, &base->err);
    if (rc) {
        fanout_free(s);
        return rc;
    }
    sqlite3_stmt *st = cel__sqldb_prepare(s->db, sql_fanout_max, &base->err);
    if (!st) {
        rc = CEL_EBROKER;
    } else if (sqlite3_step(st) == SQLITE_ROW) {
        s->last_id = sqlite3_column_int64(st, 0);
    } else {
        rc = cel__sqldb_fail(s->db, &base->err, CEL_EBROKER, "cannot subscribe");
    }
    if (st)
        sqlite3_reset(st);
    cel__sqldb_unlock(s->db);
    if (rc) {
        fanout_free(s);
        return rc;
    }
    *out = (struct cel_fanout_sub *)s;
    return CEL_OK;
}

/* Copies one row into `m`; false when out of memory. */
static bool fanout_copy(sqlite3_stmt *st, struct cel_fanout_msg *m)
{
    const char *ex = (const char *)sqlite3_column_text(st, 1);
    const char *key = (const char *)sqlite3_column_text(st, 2);
    const char *body = (const char *)sqlite3_column_text(st, 3);
    int blen = sqlite3_column_bytes(st, 3);
    memset(m, 0, sizeof *m);
    m->exchange = strdup(ex ? ex : "");
    m->routing_key = strdup(key ? key : "");
    m->body = malloc((size_t)blen + 1);
    if (!m->exchange || !m->routing_key || !m->body) {
        cel__fanout_msg_release(m);
        return false;
    }
    memcpy(m->body, body ? body : "", (size_t)blen);
    m->body[blen] = '\0';
    m->len = (size_t)blen;
    return true;
}

/*
 * Up to `max` messages that arrived since the last call. The doorbell is
 * drained before reading, so a commit after the read leaves the fd
 * readable; when the call fills `max`, more may be waiting without the fd
 * saying so: call again until it returns fewer.
 */
static int sb_fanout_poll(struct cel_fanout_sub *sub, struct cel_fanout_msg *out, size_t max,
                          size_t *n)
{
    struct sqlite_fanout_sub *s = (struct sqlite_fanout_sub *)sub;
    *n = 0;
    if (max == 0)
        return CEL_OK;
    cel__sqlwake_drain(&s->wake);
    int rc = cel__sqldb_lock(&s->db, &s->err);
    if (rc)
        return rc;
    sqlite3_stmt *st = cel__sqldb_prepare(s->db, sql_fanout_since, &s->err);
    if (!st) {
        cel__sqldb_unlock(s->db);
        return CEL_EBROKER;
    }
    sqlite3_bind_int64(st, 1, s->last_id);
    int src = SQLITE_DONE;
    while (*n < max && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ex = (const char *)sqlite3_column_text(st, 1);
        const char *key = (const char *)sqlite3_column_text(st, 2);
        if (ex && key && strcmp(ex, s->exchange) == 0 && key_matches(s->pattern, key)) {
            if (!fanout_copy(st, &out[*n])) {
                rc = cel__err(&s->err, CEL_ENOMEM, "out of memory");
                break;
            }
            (*n)++;
        }
        s->last_id = sqlite3_column_int64(st, 0);
    }
    if (rc == CEL_OK && *n < max && src != SQLITE_DONE)
        rc = cel__sqldb_fail(s->db, &s->err, CEL_EBROKER, "cannot read fan-out messages");
    sqlite3_reset(st); /* holds no read snapshot between polls */
    cel__sqldb_unlock(s->db);
    /* After a failure mid-way, hand out what was copied (last_id has moved
     * past it); the failure comes back on the next call. */
    return *n ? CEL_OK : rc;
}

static int sb_fanout_fd(struct cel_fanout_sub *sub)
{
    return cel__sqlwake_fd(&((struct sqlite_fanout_sub *)sub)->wake);
}

static void sb_fanout_close(struct cel_fanout_sub *sub)
{
    if (sub)
        fanout_free((struct sqlite_fanout_sub *)sub);
}

/* ---- revokes ------------------------------------------------------------ */

static const char sql_revoke_put[] =
    "INSERT INTO revoked (task_id, expires_at, terminate, signal) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT(task_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at),"
    " terminate = excluded.terminate, signal = excluded.signal";
static const char sql_revoke_expire[] = "DELETE FROM revoked WHERE expires_at <= ?1";
/* Keeps the ?1 entries that expire last. */
static const char sql_revoke_bound[] =
    "DELETE FROM revoked WHERE task_id IN (SELECT task_id FROM revoked ORDER BY expires_at"
    " LIMIT MAX(0, (SELECT COUNT(*) FROM revoked) - ?1))";
static const char sql_revoke_live[] =
    "SELECT task_id, expires_at, terminate, signal FROM revoked WHERE expires_at > ?1";

struct revoke_args {
    const char *const *ids;
    size_t n;
    int64_t expires_us;
    bool terminate;
    int signum;
    size_t keep_max;
};

static int revoke_rows(struct sqlite_broker *b, void *arg)
{
    const struct revoke_args *a = arg;
    sqlite3_stmt *st = prepare(b, sql_revoke_put);
    if (!st)
        return CEL_EBROKER;
    int rc = CEL_OK;
    for (size_t i = 0; rc == CEL_OK && i < a->n; i++) {
        sqlite3_bind_text(st, 1, a->ids[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, a->expires_us);
        sqlite3_bind_int(st, 3, a->terminate);
        sqlite3_bind_int(st, 4, a->terminate ? a->signum : 0);
        rc = step_done(b, st, "cannot store a revoke");
    }
    struct row_args expire = {sql_revoke_expire, cel__wall_us(), 0, "cannot drop expired revokes"};
    if (rc == CEL_OK)
        rc = write_row(b, &expire);
    struct row_args bound = {sql_revoke_bound, (int64_t)a->keep_max, 0, "cannot bound the revokes"};
    if (rc == CEL_OK && a->keep_max)
        rc = write_row(b, &bound);
    return rc;
}

static int sb_revoke_add(struct cel_broker *base, const char *const *ids, size_t n,
                         int64_t expires_us, bool terminate, int signum, size_t keep_max)
{
    struct revoke_args a = {ids, n, expires_us, terminate, signum, keep_max};
    return write_op((struct sqlite_broker *)base, false, revoke_rows, &a);
}

static int sb_revoke_list(struct cel_broker *base, struct cel_revoke_entry **out, size_t *n)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    *out = NULL;
    *n = 0;
    int rc = cel__sqldb_lock(&b->db, &base->err);
    if (rc)
        return rc;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_revoke_live, &base->err);
    if (!st) {
        cel__sqldb_unlock(b->db);
        return CEL_EBROKER;
    }
    sqlite3_bind_int64(st, 1, cel__wall_us());
    struct cel_revoke_entry *v = NULL;
    size_t cap = 0;
    int src = SQLITE_DONE;
    while (rc == CEL_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct cel_revoke_entry *grown = cel__array_grow(v, &cap, *n, sizeof *grown, 64);
        if (!grown) {
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
            break;
        }
        v = grown;
        const char *id = (const char *)sqlite3_column_text(st, 0);
        struct cel_revoke_entry *e = &v[*n];
        e->task_id = strdup(id ? id : "");
        e->expires_us = sqlite3_column_int64(st, 1);
        e->terminate = sqlite3_column_int(st, 2) != 0;
        e->signum = sqlite3_column_int(st, 3);
        if (!e->task_id)
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
        else
            (*n)++;
    }
    if (rc == CEL_OK && src != SQLITE_DONE)
        rc = cel__sqldb_fail(b->db, &base->err, CEL_EBROKER, "cannot read the revokes");
    sqlite3_reset(st);
    cel__sqldb_unlock(b->db);
    if (rc != CEL_OK) {
        cel__revoke_entries_free(v, *n);
        *n = 0;
        return rc;
    }
    *out = v;
    return CEL_OK;
}

/* ---- rate limits ----------------------------------------------
 *
 * One row per task name, holding the bucket as of its last grant. The
 * table is created on first use rather than in the schema script: only
 * deployments with a global rate limit ever have it. A refusal writes
 * nothing (the bucket refills as a function of the stored time), so
 * waiting workers do not ring every other worker's doorbell; a grant is
 * one row written in the same BEGIN IMMEDIATE as the read, so two
 * processes can never both take the last token.
 */
static const char sql_rate_table[] =
    "CREATE TABLE IF NOT EXISTS rate_buckets (name TEXT PRIMARY KEY, tokens REAL NOT NULL,"
    " stamp_us INTEGER NOT NULL) WITHOUT ROWID";
static const char sql_rate_get[] = "SELECT tokens, stamp_us FROM rate_buckets WHERE name = ?1";
static const char sql_rate_put[] =
    "INSERT OR REPLACE INTO rate_buckets (name, tokens, stamp_us) VALUES (?1, ?2, ?3)";

struct rate_args {
    const char *name;
    double per_sec;
    int64_t *wait_us;
};

static int rate_take(struct sqlite_broker *b, void *arg)
{
    const struct rate_args *a = arg;
    if (!b->rate_table) {
        sqlite3_stmt *ddl = prepare(b, sql_rate_table);
        int rc = ddl ? step_done(b, ddl, "cannot create the rate-limit table") : CEL_EBROKER;
        if (rc != CEL_OK)
            return rc;
        b->rate_table = true;
    }
    sqlite3_stmt *get = prepare(b, sql_rate_get);
    if (!get)
        return CEL_EBROKER;
    int64_t now = cel__wall_us();
    struct cel_token_bucket tb;
    cel__bucket_init(&tb, a->per_sec, now);
    sqlite3_bind_text(get, 1, a->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        tb.tokens = sqlite3_column_double(get, 0);
        tb.stamp_us = sqlite3_column_int64(get, 1);
    }
    sqlite3_reset(get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cel__sqldb_fail(b->db, &b->base.err, CEL_EBROKER, "cannot read a rate bucket");
    *a->wait_us = cel__bucket_take(&tb, now);
    if (*a->wait_us)
        return CEL_OK;
    sqlite3_stmt *put = prepare(b, sql_rate_put);
    if (!put)
        return CEL_EBROKER;
    sqlite3_bind_text(put, 1, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_double(put, 2, tb.tokens);
    sqlite3_bind_int64(put, 3, tb.stamp_us);
    return step_done(b, put, "cannot write a rate bucket");
}

static int sb_rate_acquire(struct cel_broker *base, const char *name, double per_sec,
                           int64_t *wait_us)
{
    *wait_us = 0;
    struct rate_args a = {name, per_sec, wait_us};
    return write_op((struct sqlite_broker *)base, false, rate_take, &a);
}

static int sb_dead_list(struct cel_broker *base, const char *queue, size_t offset, size_t max,
                        struct cel_dead_letter **out, size_t *n)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    return cel__sqlite_dead_list(&b->db, &base->err, queue, offset, max, out, n);
}

static int sb_dead_get(struct cel_broker *base, const char *id, struct cel_dead_letter *out)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    return cel__sqlite_dead_get(&b->db, &base->err, id, out);
}

static int sb_dead_requeue(struct cel_broker *base, const char *id)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    return cel__sqlite_dead_requeue(&b->db, &base->err, id);
}

static int sb_dead_purge(struct cel_broker *base, const char *queue, const char *id,
                         size_t *removed)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    return cel__sqlite_dead_purge(&b->db, &base->err, queue, id, removed);
}

const struct cel_broker_ops cel__broker_sqlite = {
    .abi = CEL_BROKER_ABI,
    .default_lease_ms = DEFAULT_LEASE_MS,
    .scheme = "sqlite",
    .caps = CEL_BROKER_CAP_DELAYED | CEL_BROKER_CAP_PRIORITY | CEL_BROKER_CAP_VISIBILITY |
            CEL_BROKER_CAP_TRANSACTIONS | CEL_BROKER_CAP_DEADLETTER | CEL_BROKER_CAP_SHARED_FILE |
            CEL_BROKER_CAP_PRIVATE_DELAY,
    .open = sb_open,
    .close = sb_close,
    .publish = sb_publish,
    .begin = sb_begin,
    .commit = sb_commit,
    .fetch = sb_fetch,
    .ack = sb_ack,
    .reject = sb_reject,
    .requeue_at = sb_requeue_at,
    .extend = sb_extend,
    .purge = sb_purge,
    .length = sb_length,
    .length_bands = sb_length_bands,
    .wakeup_fd = sb_wakeup_fd,
    .drain_wakeup = sb_drain_wakeup,
    .fanout_publish = sb_fanout_publish,
    .fanout_subscribe = sb_fanout_subscribe,
    .fanout_poll = sb_fanout_poll,
    .fanout_fd = sb_fanout_fd,
    .fanout_close = sb_fanout_close,
    .revoke_add = sb_revoke_add,
    .revoke_list = sb_revoke_list,
    .rate_acquire = sb_rate_acquire,
    .dead_list = sb_dead_list,
    .dead_get = sb_dead_get,
    .dead_requeue = sb_dead_requeue,
    .dead_purge = sb_dead_purge,
    .mailbox_open = cel__sqlite_mailbox_open,
    .mailbox_take = cel__sqlite_mailbox_take,
    .mailbox_close = cel__sqlite_mailbox_close,
    .mailbox_send = cel__sqlite_mailbox_send,
    .queue_pause = sb_queue_pause,
    .queue_paused_list = sb_queue_paused_list,
    .sched_put = cel__sqlite_sched_put,
    .sched_get = cel__sqlite_sched_get,
    .sched_list = cel__sqlite_sched_list,
    .sched_remove = cel__sqlite_sched_remove,
    .sched_enable = cel__sqlite_sched_enable,
    .sched_version = cel__sqlite_sched_version,
    .lease_acquire = cel__sqlite_lease_acquire,
    .lease_release = cel__sqlite_lease_release,
    .sched_fire = cel__sqlite_sched_fire,
};
