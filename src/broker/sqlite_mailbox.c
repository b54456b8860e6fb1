/*
 * sqlite_mailbox.c - reply mailboxes on SQLite (broker.h): the tables
 * mailboxes (one row per open mailbox, the counterpart of kombu's reply
 * binding) and mailbox_replies (one row per reply not yet taken), see
 * store/sqlite_db.c.
 *
 *   open   binds the name (a row in mailboxes) on a connection of the
 *          mailbox's own, and prunes what dead clients left behind
 *   send   one INSERT ... WHERE EXISTS on the handle: stored only while
 *          the name is bound, so a reply to a client that is gone is
 *          dropped and leaves no row
 *   take   reads the oldest reply of the name and deletes it
 *   close  deletes the binding and the replies nobody took
 *
 * A client killed before close leaves its binding and maybe replies:
 * rows older than CEL_SQLDB_MAILBOX_MAX_AGE_S are deleted by the next
 * open or close of any mailbox, and a waiting take refreshes its own
 * binding every REFRESH_MS so a long wait is never mistaken for a dead
 * client.
 *
 * Waking: take() sleeps on the database's doorbell (sqlite_db.h), which
 * every commit on the machine rings, the replier's INSERT included, so a
 * reply is read within a scheduling delay of its commit. The doorbell is
 * drained before each read, so a commit after the read leaves the fd
 * readable and is never slept through. Every ring costs a waiting client
 * one indexed SELECT (microseconds), cheap even next to a busy worker's
 * commits, and only while a control call waits. Still, the wait is cut
 * into slices of SAFETY_MS, and of POLL_MS when no doorbell could be
 * opened (inotify unavailable): a short bounded poll costs a few hundred
 * tiny reads a second for the second or so a control call lasts, which
 * is why polling is acceptable as the fallback but not the design.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "broker/sqlite_internal.h"
#include "core/clock.h"
#include "core/fork_guard.h"
#include "core/log.h"

#define COMP_MAILBOX "broker.sqlite.mailbox"
#define SAFETY_MS    100   /* wait slice with a doorbell */
#define POLL_MS      10    /* wait slice without one */
#define REFRESH_MS   20000 /* a waiting take re-stamps its binding this often */

struct cel_mailbox {
    struct cel_sqldb *db; /* private connection */
    struct cel_sqlwake wake;
    char *name;
    int64_t refreshed_ms; /* monotonic, last stamp of the binding */
    struct cel_errbuf err;
};

static const char sql_bind[] = "INSERT OR REPLACE INTO mailboxes (name, seen_at) VALUES (?1, ?2)";
static const char sql_unbind[] = "DELETE FROM mailboxes WHERE name = ?1";
static const char sql_drop_replies[] = "DELETE FROM mailbox_replies WHERE name = ?1";
static const char sql_prune_bindings[] = "DELETE FROM mailboxes WHERE seen_at < ?1";
static const char sql_prune_replies[] = "DELETE FROM mailbox_replies WHERE created_at < ?1";
static const char sql_send[] =
    "INSERT INTO mailbox_replies (name, body, created_at)"
    " SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM mailboxes WHERE name = ?1)";
static const char sql_oldest[] =
    "SELECT id, body FROM mailbox_replies WHERE name = ?1 ORDER BY id LIMIT 1";
static const char sql_delete[] = "DELETE FROM mailbox_replies WHERE id = ?1";

/* Steps a statement that returns no rows on the mailbox's connection
 * (lock held) and resets it. */
static int step_done(struct cel_mailbox *m, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return CEL_OK;
    return cel__sqldb_fail(m->db, &m->err, rc == SQLITE_BUSY ? CEL_EBUSY : CEL_EBROKER, what);
}

/* Lock held: one statement taking the name (?1) and, when `t` is not 0, a
 * time (?2). */
static int run_named(struct cel_mailbox *m, const char *sql, int64_t t, const char *what)
{
    sqlite3_stmt *st = cel__sqldb_prepare(m->db, sql, &m->err);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    if (t)
        sqlite3_bind_int64(st, 2, t);
    return step_done(m, st, what);
}

/* Lock held: drops the rows dead clients left (older than the cutoff). */
static int prune(struct cel_mailbox *m)
{
    int64_t cutoff = cel__wall_us() - CEL_SQLDB_MAILBOX_MAX_AGE_S * 1000000LL;
    static const char *const sqls[] = {sql_prune_bindings, sql_prune_replies};
    int rc = CEL_OK;
    for (int i = 0; rc == CEL_OK && i < 2; i++) {
        sqlite3_stmt *st = cel__sqldb_prepare(m->db, sqls[i], &m->err);
        if (!st)
            return CEL_EBROKER;
        sqlite3_bind_int64(st, 1, cutoff);
        rc = step_done(m, st, "cannot prune mailboxes");
    }
    return rc;
}

enum mailbox_write { WRITE_BIND, WRITE_REFRESH, WRITE_UNBIND };

/* One write transaction on the mailbox's connection. */
static int write_mailbox(struct cel_mailbox *m, enum mailbox_write what)
{
    int rc = cel__sqldb_lock(&m->db, &m->err);
    if (rc)
        return rc;
    bool owned;
    rc = cel__sqldb_write_begin(m->db, what == WRITE_REFRESH, &owned, &m->err);
    if (rc == CEL_OK) {
        int body = CEL_OK;
        if (what == WRITE_UNBIND) {
            body = run_named(m, sql_unbind, 0, "cannot close the mailbox");
            if (body == CEL_OK)
                body = run_named(m, sql_drop_replies, 0, "cannot close the mailbox");
        } else {
            body = run_named(m, sql_bind, cel__wall_us(), "cannot bind the mailbox");
        }
        if (body == CEL_OK && what != WRITE_REFRESH)
            body = prune(m);
        rc = cel__sqldb_write_end(m->db, owned, body, &m->err);
    }
    cel__sqldb_unlock(m->db);
    if (rc == CEL_OK && what != WRITE_UNBIND)
        m->refreshed_ms = cel__mono_ms();
    return rc;
}

static void mailbox_free(struct cel_mailbox *m)
{
    cel__sqlwake_close(&m->wake);
    if (m->db)
        cel__sqldb_release(m->db);
    free(m->name);
    free(m);
}

int cel__sqlite_mailbox_open(struct cel_broker *base, const char *name, struct cel_mailbox **out)
{
    struct sqlite_broker *b = (struct sqlite_broker *)base;
    *out = NULL;
    if (strcmp(b->db->path, ":memory:") == 0) /* a second connection sees another database */
        return cel__err(&base->err, CEL_EINVAL,
                        "mailboxes need a database file, not ':memory:' (use memory:// instead)");
    struct cel_mailbox *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name))) {
        free(m);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    m->wake.fd = -1;
    int rc = cel__sqldb_open_private(b->db->path, &m->db, &base->err);
    if (rc) {
        mailbox_free(m);
        return rc;
    }
    /* Watch before binding: a reply committed once open() returned rings
     * a watch that already exists. */
    if (cel__sqlwake_open(&m->wake, b->db->path, &m->err) != CEL_OK) {
        CEL_WARN(COMP_MAILBOX, "no wakeups for mailboxes on %s (polling every %d ms): %s",
                 b->db->path, POLL_MS, m->err.msg);
        cel__err_clear(&m->err);
    }
    rc = write_mailbox(m, WRITE_BIND);
    if (rc != CEL_OK) {
        cel__err(&base->err, rc, "cannot open mailbox '%s': %s", name, m->err.msg);
        mailbox_free(m);
        return rc;
    }
    *out = m;
    return CEL_OK;
}

/* Takes the oldest reply when there is one: CEL_OK, or CEL_ETIMEDOUT when
 * there is none. The read writes nothing, so an idle look rings no
 * doorbell. */
static int take_one(struct cel_mailbox *m, char **env, size_t *len)
{
    int rc = cel__sqldb_lock(&m->db, &m->err);
    if (rc)
        return rc;
    sqlite3_stmt *st = cel__sqldb_prepare(m->db, sql_oldest, &m->err);
    int64_t id = 0;
    if (!st) {
        rc = CEL_EBROKER;
    } else {
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            id = sqlite3_column_int64(st, 0);
            const char *body = (const char *)sqlite3_column_text(st, 1);
            int blen = sqlite3_column_bytes(st, 1);
            *env = malloc((size_t)blen + 1);
            if (!*env) {
                rc = cel__err(&m->err, CEL_ENOMEM, "out of memory");
            } else {
                memcpy(*env, body ? body : "", (size_t)blen);
                (*env)[blen] = '\0';
                *len = (size_t)blen;
            }
        } else if (src == SQLITE_DONE) {
            rc = CEL_ETIMEDOUT;
        } else {
            rc = cel__sqldb_fail(m->db, &m->err, CEL_EBROKER, "cannot read the mailbox");
        }
        sqlite3_reset(st);
    }
    sqlite3_stmt *del = rc == CEL_OK ? cel__sqldb_prepare(m->db, sql_delete, &m->err) : NULL;
    if (rc == CEL_OK && !del)
        rc = CEL_EBROKER;
    if (del) {
        /* One statement in autocommit: the doorbell rings on its own. */
        bool owned;
        rc = cel__sqldb_write_begin(m->db, true, &owned, &m->err);
        if (rc == CEL_OK) {
            sqlite3_bind_int64(del, 1, id);
            rc = cel__sqldb_write_end(m->db, owned, step_done(m, del, "cannot take a reply"),
                                      &m->err);
        }
    }
    cel__sqldb_unlock(m->db);
    if (rc != CEL_OK && rc != CEL_ETIMEDOUT) {
        free(*env); /* left for the next take */
        *env = NULL;
        *len = 0;
    }
    return rc;
}

int cel__sqlite_mailbox_take(struct cel_mailbox *m, int64_t timeout_ms, char **env, size_t *len)
{
    *env = NULL;
    *len = 0;
    int64_t deadline = cel__mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        cel__sqlwake_drain(&m->wake); /* before the read: see the top */
        int rc = take_one(m, env, len);
        int64_t now = cel__mono_ms();
        if (rc != CEL_ETIMEDOUT || now >= deadline)
            return rc;
        if (now - m->refreshed_ms >= REFRESH_MS && write_mailbox(m, WRITE_REFRESH) != CEL_OK)
            CEL_WARN(COMP_MAILBOX, "cannot refresh mailbox '%s': %s", m->name, m->err.msg);
        int fd = cel__sqlwake_fd(&m->wake);
        int64_t slice = fd >= 0 ? SAFETY_MS : POLL_MS;
        int64_t left = deadline - now;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cel__fork_guard_wait_begin();
        poll(&p, fd >= 0 ? 1 : 0, (int)(left < slice ? left : slice));
        cel__fork_guard_wait_end();
    }
}

void cel__sqlite_mailbox_close(struct cel_mailbox *m)
{
    if (!m)
        return;
    if (write_mailbox(m, WRITE_UNBIND) != CEL_OK)
        CEL_WARN(COMP_MAILBOX, "cannot remove mailbox '%s' (pruned within %d s): %s", m->name,
                 CEL_SQLDB_MAILBOX_MAX_AGE_S, m->err.msg);
    mailbox_free(m);
}

struct send_args {
    const char *name, *env;
    size_t len;
};

static int send_row(struct sqlite_broker *b, void *arg)
{
    const struct send_args *a = arg;
    sqlite3_stmt *st = cel__sqldb_prepare(b->db, sql_send, &b->base.err);
    if (!st)
        return CEL_EBROKER;
    sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->env, (int)a->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cel__wall_us());
    return cel__sqlite_step_done(b, st, "cannot send a reply");
}

int cel__sqlite_mailbox_send(struct cel_broker *base, const char *name, const char *env, size_t len)
{
    struct send_args a = {name, env, len};
    return cel__sqlite_write((struct sqlite_broker *)base, true, send_row, &a);
}
