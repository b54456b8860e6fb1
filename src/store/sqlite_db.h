/*
 * sqlite_db.h - SQLite plumbing shared by the sqlite broker and backend.
 *
 * It lives in the store layer, below both of them (core < proto < store <
 * broker, backend), so neither reaches sideways into the other.
 *
 * One database file, one connection per process: cel__sqldb_acquire()
 * returns a refcounted handle keyed by the file's canonical path, so a
 * broker and a result store opened on the same file in one process share
 * the connection. A worker's begin()/commit() on the broker therefore
 * also covers the results it stores in between: acks and results land in
 * one transaction (one WAL commit per batch instead of dozens). The one
 * exception is cel__sqldb_open_private(), a connection of its own.
 *
 * Transactions are lazy. cel__sqldb_begin() only raises a depth counter;
 * the first write after it opens BEGIN IMMEDIATE, and cel__sqldb_commit()
 * at depth 0 commits whatever was written. A batch that wrote nothing
 * commits nothing, so an idle worker never touches the file (every write
 * wakes every waiter on the machine through inotify).
 *
 * Fork safety: SQLite forbids using a connection in a child process. The
 * handle records the pid that opened it; cel__sqldb_lock(), run at the
 * start of every operation, notices a foreign pid and moves the handle to
 * a fresh connection of this process. Before the first connection a child
 * opens, the inherited ones are closed in the child (see
 * adopt_after_fork() for why that is required and safe). Never fork()
 * between begin() and commit().
 *
 * Threads: the handle has a mutex; every operation holds it from
 * cel__sqldb_lock() to cel__sqldb_unlock(). A transaction opened by one
 * thread is shared by the other users of the connection until it commits.
 */
#ifndef CEL_STORE_SQLITE_DB_H
#define CEL_STORE_SQLITE_DB_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/errbuf.h"

#define CEL_SQLDB_SCHEMA_VERSION  7
#define CEL_SQLDB_BUSY_TIMEOUT_MS 5000
/* Opening (WAL switch and schema) waits out other openers this long in
 * total before it reports the file as locked. */
#define CEL_SQLDB_OPEN_TIMEOUT_MS 10000

/* The fanout table keeps at most this many rows, none older than this:
 * a subscriber that falls further behind misses messages, as a slow
 * consumer of Celery's fanout exchanges does. */
#define CEL_SQLDB_FANOUT_MAX_ROWS  10000
#define CEL_SQLDB_FANOUT_MAX_AGE_S 60

/* A mailbox (remote-control replies) nobody looked at for this long
 * belongs to a client that died: its binding and replies are pruned. */
#define CEL_SQLDB_MAILBOX_MAX_AGE_S 60

struct cel_sqldb_stmt {
    char *sql;
    sqlite3_stmt *stmt;
};

struct cel_sqldb {
    sqlite3 *conn;
    char *path; /* canonical: realpath of the directory + file name */
    pid_t pid;  /* process that opened conn */
    int refs;
    int depth;       /* nesting of cel__sqldb_begin() */
    bool in_txn;     /* BEGIN IMMEDIATE was issued and not yet committed */
    bool is_private; /* from cel__sqldb_open_private(): never shared */
    pthread_mutex_t mu;
    int64_t busy_since_us;    /* busy handler state */
    int64_t open_deadline_us; /* while opening: when to give up; 0 otherwise */
    unsigned busy_seed;
    int bell_fd; /* the doorbell file, see cel__sqlwake_open(); -1 when none */
    struct cel_sqldb_stmt *stmts;
    size_t nstmts, capstmts;
    struct cel_sqldb *next;
};

/*
 * Opens (or shares) the database at `path`, switching it to WAL and
 * creating the schema. Any number of processes may open a new or existing
 * file at once: each waits out the others' locks for up to
 * CEL_SQLDB_OPEN_TIMEOUT_MS, then fails with CEL_EBUSY.
 */
int cel__sqldb_acquire(const char *path, struct cel_sqldb **out, struct cel_errbuf *err);
/*
 * A connection of its own on `path`, never shared with acquire(): for a
 * user on another thread that must not queue behind the shared handle's
 * users, such as a fan-out subscription. Fork handling and locking are
 * the same as for a shared handle. Release with cel__sqldb_release().
 */
int cel__sqldb_open_private(const char *path, struct cel_sqldb **out, struct cel_errbuf *err);
/* Drops one reference; the last one closes the connection. */
void cel__sqldb_release(struct cel_sqldb *db);

/*
 * Takes the handle's lock for one operation, first replacing *dbp with a
 * connection of this process when it was inherited through fork(). On
 * failure the lock is not held.
 */
int cel__sqldb_lock(struct cel_sqldb **dbp, struct cel_errbuf *err);
void cel__sqldb_unlock(struct cel_sqldb *db);

/* A cached prepared statement, reset and with bindings cleared; NULL on
 * error (message in err). Do not finalize it. Call with the lock held. */
sqlite3_stmt *cel__sqldb_prepare(struct cel_sqldb *db, const char *sql, struct cel_errbuf *err);

/* Formats "what: sqlite message" into err and returns `code`. */
int cel__sqldb_fail(struct cel_sqldb *db, struct cel_errbuf *err, int code, const char *what);

/* Caller-level batching (broker/backend begin()/commit()), lock not held. */
int cel__sqldb_begin(struct cel_sqldb **dbp, struct cel_errbuf *err);
int cel__sqldb_commit(struct cel_sqldb **dbp, struct cel_errbuf *err);

/*
 * Around one write operation, lock held: opens BEGIN IMMEDIATE unless a
 * write transaction is already open (*owned false then: the caller's
 * commit() finishes it). `single`: the operation is one statement, which
 * outside a caller's begin() needs no explicit transaction (autocommit).
 * write_end() commits an owned transaction when rc is CEL_OK and rolls it
 * back otherwise; it returns the final code.
 */
int cel__sqldb_write_begin(struct cel_sqldb *db, bool single, bool *owned, struct cel_errbuf *err);
int cel__sqldb_write_end(struct cel_sqldb *db, bool owned, int rc, struct cel_errbuf *err);

/*
 * Wakeups without polling: every commit that wrote something rings a
 * doorbell, one byte written to `<db>-notify`, and waiters hold an
 * inotify watch on the directory filtered to that name.
 *
 * The watch is on the doorbell file, not the directory, so writes to the
 * database and its WAL queue no events at all.
 *
 * Why not watch the -wal file itself: SQLite appends the commit frame
 * with write() (an inotify event) but publishes it by updating the
 * wal-index in shared memory afterwards (no event). A waiter woken by the
 * write can look before the commit is visible and then sleep through it.
 * The doorbell is rung after COMMIT returns, when every reader sees it.
 *
 * The fd is non-blocking and close-on-exec, and reopened after fork().
 */
struct cel_sqlwake {
    int fd; /* -1 when unavailable */
    pid_t pid;
    char *dir;
    char *base; /* database file name */
};

int cel__sqlwake_open(struct cel_sqlwake *w, const char *path, struct cel_errbuf *err);
/* The descriptor for this process (reopened after a fork), or -1. */
int cel__sqlwake_fd(struct cel_sqlwake *w);
/* Reads all pending events; true when there was at least one. */
bool cel__sqlwake_drain(struct cel_sqlwake *w);
void cel__sqlwake_close(struct cel_sqlwake *w);

#endif
