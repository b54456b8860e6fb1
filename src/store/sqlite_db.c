/* sqlite_db.c - see sqlite_db.h. */
#include "store/sqlite_db.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

/*
 * Schema, version 7 (PRAGMA user_version). Every statement is CREATE ...
 * IF NOT EXISTS, so running the whole script on an older file is the
 * migration (1 -> 2 added the fanout table, 2 -> 3 the revoked table,
 * 3 -> 4 the chord tables, 4 -> 5 group_results, 5 -> 6 the mailbox and
 * paused-queue tables, 6 -> 7 the schedule tables).
 *
 * messages: one row per queued envelope. visible_at (wall µs) is the one
 * time column: the ETA of a delayed message, the lease deadline of a
 * reserved one, the publish time of a ready one. A row is claimable when
 * visible_at <= now, whether reserved or not: a reserved row whose lease
 * ran out belongs to a consumer that died or stalled.
 *
 * messages_order serves the claim (priority DESC, then FIFO by id);
 * messages_due serves the existence check and next-due lookups;
 * messages_reserved finds a reserved task by id (the RECEIVED state). It
 * is partial on purpose: task ids are random, and an index over every
 * queued message would dirty a random page per claim and per ack, while
 * one over the few reserved rows stays a handful of hot pages.
 *
 * fanout: events and broadcast control, a short window of recent
 * messages that subscribers read past the last id they saw. AUTOINCREMENT
 * because pruning may empty the table, and a reused id would hide new
 * messages from subscribers that remember a higher one.
 *
 * revoked: task ids no worker may run, until expires_at (wall µs); read
 * whole by workers at start and every few seconds (src/worker/revoke.c).
 *
 * mailboxes / mailbox_replies: remote-control replies (Celery's
 * reply.celery.pidbox, src/broker/sqlite_mailbox.c). A client's open
 * mailbox is a row in mailboxes, refreshed while it waits; a reply is
 * stored only while that row exists, and deleted when taken. Rows of
 * either table older than CEL_SQLDB_MAILBOX_MAX_AGE_S are pruned, so a
 * client that died leaves nothing for long.
 *
 * paused_queues: queues no celeriac worker consumes until resumed.
 *
 * schedule / schedule_version / leases: periodic entries (beat,
 * src/broker/sqlite_schedule.c). schedule holds each entry's document and
 * run state; schedule_version is one row counting edits, so a running
 * beat notices a change with one read; leases elects the beat that sends
 * (expires_us: wall µs).
 *
 * chord_sizes / chord_joins: Celery's chord join (celery-taskset-meta-
 * <gid>.s and .j on Redis, src/backend/sqlite.c): a chord's size and one
 * row per distinct header entry, each expiring on its own.
 *
 * group_results: saved group results (GroupResult.save(), celery-taskset-
 * meta-<gid> on Redis): Celery's {"result": <group tuple>} per group id.
 * A table of their own, not rows of results, because a group id is not a
 * task id: a task with the same id must not overwrite it.
 */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS messages ("
    " id INTEGER PRIMARY KEY,"
    " queue TEXT NOT NULL,"
    " priority INTEGER NOT NULL DEFAULT 0,"
    " task_id TEXT,"
    " body TEXT NOT NULL,"
    " visible_at INTEGER NOT NULL,"
    " reserved INTEGER NOT NULL DEFAULT 0,"
    " delivery_count INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS messages_order ON messages (queue, priority DESC, id);"
    "CREATE INDEX IF NOT EXISTS messages_due ON messages (queue, visible_at);"
    "CREATE INDEX IF NOT EXISTS messages_reserved ON messages (task_id) WHERE reserved = 1;"
    "CREATE TABLE IF NOT EXISTS results ("
    " task_id TEXT PRIMARY KEY,"
    " status TEXT NOT NULL,"
    " meta TEXT NOT NULL,"
    " expires_at INTEGER,"
    " updated_at INTEGER) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS results_expires ON results (expires_at)"
    " WHERE expires_at IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    " id INTEGER PRIMARY KEY,"
    " queue TEXT,"
    " task_id TEXT,"
    " body TEXT,"
    " reason TEXT,"
    " delivery_count INTEGER,"
    " created_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS fanout ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " exchange TEXT NOT NULL,"
    " routing_key TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS revoked ("
    " task_id TEXT PRIMARY KEY,"
    " expires_at INTEGER NOT NULL,"
    " terminate INTEGER NOT NULL DEFAULT 0,"
    " signal INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS revoked_expires ON revoked (expires_at);"
    "CREATE TABLE IF NOT EXISTS chord_sizes ("
    " group_id TEXT PRIMARY KEY,"
    " size INTEGER NOT NULL,"
    " expires_at INTEGER) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS chord_joins ("
    " group_id TEXT NOT NULL,"
    " idx INTEGER NOT NULL,"
    " entry TEXT NOT NULL,"
    " expires_at INTEGER,"
    " UNIQUE (group_id, idx, entry));"
    "CREATE TABLE IF NOT EXISTS group_results ("
    " group_id TEXT PRIMARY KEY,"
    " meta TEXT NOT NULL,"
    " expires_at INTEGER) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS mailboxes ("
    " name TEXT PRIMARY KEY,"
    " seen_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS mailbox_replies ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS mailbox_replies_name ON mailbox_replies (name, id);"
    "CREATE TABLE IF NOT EXISTS paused_queues ("
    " queue TEXT PRIMARY KEY,"
    " paused_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS schedule ("
    " name TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL,"
    " enabled INTEGER NOT NULL DEFAULT 1,"
    " last_run_us INTEGER NOT NULL DEFAULT 0,"
    " total_runs INTEGER NOT NULL DEFAULT 0,"
    " updated_us INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS schedule_version ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS leases ("
    " name TEXT PRIMARY KEY,"
    " holder TEXT NOT NULL,"
    " expires_us INTEGER NOT NULL) WITHOUT ROWID;";

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;

/* getpid() is a system call and every operation checks it (fork safety);
 * cache it and refresh the cache in fork children. */
static pid_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void refresh_pid(void)
{
    cached_pid = getpid();
}

static void init_pid(void)
{
    refresh_pid();
    pthread_atfork(NULL, NULL, refresh_pid);
}

static pid_t current_pid(void)
{
    pthread_once(&pid_once, init_pid);
    return cached_pid;
}
static struct cel_sqldb *registry;

int cel__sqldb_fail(struct cel_sqldb *db, struct cel_errbuf *err, int code, const char *what)
{
    return cel__err(err, code, "%s: %s", what, db && db->conn ? sqlite3_errmsg(db->conn) : "?");
}

/* realpath() of the directory joined with the file name: the file itself
 * may not exist yet, and two spellings of one file must share a handle. */
static char *canonical_path(const char *path, struct cel_errbuf *err)
{
    if (strcmp(path, ":memory:") == 0)
        return strdup(path);
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    const char *base = slash ? slash + 1 : path;
    if (!*base) {
        cel__err(err, CEL_EINVAL, "database path '%s' names a directory", path);
        return NULL;
    }
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        cel__err(err, CEL_EIO, "cannot open database '%s': %s: %s", path, dir, strerror(errno));
        return NULL;
    }
    size_t n = strlen(real) + strlen(base) + 2;
    char *out = malloc(n);
    if (!out) {
        cel__err(err, CEL_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(out, n, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", base);
    return out;
}

/* Jitter for sleeps, so processes that met on a lock do not meet again. */
static unsigned next_random(struct cel_sqldb *db)
{
    db->busy_seed = db->busy_seed * 1103515245u + 12345u;
    return db->busy_seed >> 16;
}

/* CEL_EBUSY for SQLite's "another connection holds the lock" codes,
 * `other` for everything else. */
static int busy_code(int sqlite_rc, int other)
{
    return sqlite_rc == SQLITE_BUSY || sqlite_rc == SQLITE_LOCKED ? CEL_EBUSY : other;
}

static int exec_sql(struct cel_sqldb *db, const char *sql, struct cel_errbuf *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->conn, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = busy_code(rc, CEL_EBROKER);
        cel__err(err, code, "%s: %s", db->path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return CEL_OK;
}

static int query_int(struct cel_sqldb *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int query_text(struct cel_sqldb *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL);
    buf[0] = '\0';
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(buf, len, "%s", t ? (const char *)t : "");
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* BEGIN IMMEDIATE, retried: busy_timeout already waits, but a writer that
 * holds the lock longer than that is worth a few more tries. */
static int begin_immediate(struct cel_sqldb *db, struct cel_errbuf *err)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < 4 && (rc == SQLITE_BUSY || rc == SQLITE_LOCKED); i++)
        rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return cel__sqldb_fail(db, err, busy_code(rc, CEL_EBROKER), "cannot begin a transaction");
    return CEL_OK;
}

/* Tells every waiter on the machine that a commit landed (see
 * sqlite_db.h). A failed ring only costs waiters their safety-net sleep. */
static void ring_bell(struct cel_sqldb *db)
{
    if (db->bell_fd >= 0 && pwrite(db->bell_fd, "!", 1, 0) < 0)
        CEL_DEBUG("sqlite", "cannot ring the doorbell of %s: %s", db->path, strerror(errno));
}

static void open_bell(struct cel_sqldb *db)
{
    db->bell_fd = -1;
    if (strcmp(db->path, ":memory:") == 0)
        return;
    size_t n = strlen(db->path) + sizeof "-notify";
    char *bell = malloc(n);
    if (!bell)
        return;
    snprintf(bell, n, "%s-notify", db->path);
    db->bell_fd = open(bell, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (db->bell_fd < 0)
        CEL_WARN("sqlite", "cannot open doorbell %s: %s (waiters fall back to polling)", bell,
                 strerror(errno));
    free(bell);
}

static int commit_now(struct cel_sqldb *db, struct cel_errbuf *err)
{
    int rc = SQLITE_BUSY;
    for (int i = 0; i < 4 && rc == SQLITE_BUSY; i++)
        rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    db->in_txn = false;
    if (rc != SQLITE_OK) {
        int code =
            cel__sqldb_fail(db, err, rc == SQLITE_BUSY ? CEL_EBUSY : CEL_EBROKER, "cannot commit");
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        return code;
    }
    ring_bell(db);
    return CEL_OK;
}

static void rollback_now(struct cel_sqldb *db)
{
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    db->in_txn = false;
}

/*
 * Creates the schema unless it is there. The common case, an existing
 * database, needs no write lock; otherwise the check and the CREATEs run
 * inside one BEGIN IMMEDIATE, so of many processes opening a fresh file
 * at once one creates the tables and the others find user_version set.
 * CEL_EBUSY when another process held the lock (the caller retries).
 */
static int init_schema(struct cel_sqldb *db, struct cel_errbuf *err)
{
    int64_t current = 0;
    if (query_int(db, "PRAGMA user_version", &current) == SQLITE_OK &&
        current == CEL_SQLDB_SCHEMA_VERSION)
        return CEL_OK;
    int rc = begin_immediate(db, err);
    if (rc)
        return rc;
    int64_t version = 0;
    int qrc = query_int(db, "PRAGMA user_version", &version);
    if (qrc != SQLITE_OK) {
        rc =
            cel__sqldb_fail(db, err, busy_code(qrc, CEL_EBROKER), "cannot read the schema version");
    } else if (version > CEL_SQLDB_SCHEMA_VERSION) {
        rc = cel__err(err, CEL_EBROKER,
                      "database '%s' has schema version %lld; this build knows up to %d", db->path,
                      (long long)version, CEL_SQLDB_SCHEMA_VERSION);
    } else if (version < CEL_SQLDB_SCHEMA_VERSION) {
        char sql[64];
        rc = exec_sql(db, schema_sql, err);
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", CEL_SQLDB_SCHEMA_VERSION);
        if (rc == CEL_OK)
            rc = exec_sql(db, sql, err);
    }
    if (rc) {
        rollback_now(db);
        return rc;
    }
    return commit_now(db, err);
}

/* WAL lets readers and one writer work at once across processes.
 * CEL_EBUSY when another process held the lock (the caller retries). */
static int switch_to_wal(struct cel_sqldb *db, struct cel_errbuf *err)
{
    if (strcmp(db->path, ":memory:") == 0)
        return CEL_OK;
    char mode[32];
    int rc = query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof mode);
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return cel__sqldb_fail(db, err, busy_code(rc, CEL_EIO),
                               "cannot switch the database to WAL");
    if (strcmp(mode, "wal") != 0)
        return cel__err(err, CEL_EIO, "database '%s' refuses WAL mode (journal_mode=%s)", db->path,
                        mode);
    return CEL_OK;
}

/*
 * Runs one setup step until it stops reporting CEL_EBUSY or the open's
 * deadline passes, sleeping 1, 2, 4 ... 64 ms with jitter between tries.
 *
 * The busy handler alone is not enough here: switching to WAL reads the
 * file under a shared lock and then upgrades it, and SQLite answers a
 * contended upgrade with SQLITE_BUSY at once, without calling the
 * handler, because waiting while holding the shared lock could deadlock
 * with the process that is writing. Only letting go and trying again
 * later works, which is what this does.
 */
static int retry_while_busy(struct cel_sqldb *db,
                            int (*step)(struct cel_sqldb *, struct cel_errbuf *), const char *what,
                            struct cel_errbuf *err)
{
    int64_t pause_us = 1000;
    for (int tries = 1;; tries++) {
        int rc = step(db, err);
        if (rc != CEL_EBUSY)
            return rc;
        int64_t left = db->open_deadline_us - cel__mono_us();
        if (left <= 0)
            return cel__err(err, CEL_EBUSY,
                            "database '%s': cannot %s: still locked by another process after "
                            "%d s and %d tries (%s)",
                            db->path, what, CEL_SQLDB_OPEN_TIMEOUT_MS / 1000, tries,
                            sqlite3_errmsg(db->conn));
        int64_t pause = pause_us / 2 + (int64_t)(next_random(db) % (unsigned)pause_us);
        usleep((useconds_t)(pause < left ? pause : left));
        pause_us = pause_us * 2 > 64000 ? 64000 : pause_us * 2;
    }
}

/*
 * Busy handler: SQLite's default one sleeps 1, 2, 5, 10 ... 100 ms between
 * tries, so a waiter almost never finds the lock free while another
 * process commits batch after batch (it re-takes the lock within
 * microseconds), and starves until busy_timeout fails it. Short sleeps
 * with jitter give every consumer its turn.
 */
static int busy_wait(void *arg, int count)
{
    struct cel_sqldb *db = arg;
    int64_t now = cel__mono_us();
    if (count == 0)
        db->busy_since_us = now;
    else if (now - db->busy_since_us > CEL_SQLDB_BUSY_TIMEOUT_MS * 1000LL)
        return 0;
    if (db->open_deadline_us && now >= db->open_deadline_us)
        return 0; /* opening has a budget of its own (retry_while_busy) */
    useconds_t base = count < 20 ? 50 : count < 200 ? 200 : 1000;
    usleep(base + next_random(db) % base);
    return 1;
}

static int open_conn(struct cel_sqldb *db, struct cel_errbuf *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(db->path, &db->conn, flags, NULL);
    if (rc != SQLITE_OK) {
        cel__err(err, CEL_EIO, "cannot open database '%s': %s", db->path,
                 db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
        return CEL_EIO;
    }
    /* The busy handler comes before any statement: even reading the
     * schema may meet another process's lock on a file being set up. */
    db->busy_seed = (unsigned)getpid() ^ (unsigned)cel__mono_us();
    sqlite3_busy_handler(db->conn, busy_wait, db);
    sqlite3_extended_result_codes(db->conn, 0);
    db->open_deadline_us = cel__mono_us() + CEL_SQLDB_OPEN_TIMEOUT_MS * 1000LL;
    rc = retry_while_busy(db, switch_to_wal, "switch to WAL mode", err);
    if (rc == CEL_OK)
        rc = exec_sql(db,
                      "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;"
                      " PRAGMA wal_autocheckpoint=4000;",
                      err);
    if (rc == CEL_OK)
        rc = retry_while_busy(db, init_schema, "create the schema", err);
    db->open_deadline_us = 0;
    return rc;
}

static void free_db(struct cel_sqldb *db)
{
    for (size_t i = 0; i < db->nstmts; i++) {
        if (db->conn)
            sqlite3_finalize(db->stmts[i].stmt);
        free(db->stmts[i].sql);
    }
    free(db->stmts);
    if (db->bell_fd >= 0)
        close(db->bell_fd);
    if (db->conn)
        sqlite3_close(db->conn);
    pthread_mutex_destroy(&db->mu);
    free(db->path);
    free(db);
}

/*
 * Called in a forked child (registry lock held): closes the connections
 * inherited from the parent and takes them out of the registry. SQLite
 * keeps per-process lock bookkeeping per file; while an inherited
 * connection sits in it, a fresh connection to the same file would
 * believe it already holds the parent's locks and skip taking real ones.
 * Closing is safe for the parent: POSIX locks belong to the process that
 * took them, so the child releases nothing of the parent's, and the
 * close-time checkpoint (which could delete a WAL file other processes
 * use) is switched off first. A connection caught inside a transaction
 * (fork between begin and commit, which callers must not do) is left
 * alone.
 * Inherited structs stay allocated for the handles that point at them.
 */
static void adopt_after_fork(pid_t pid)
{
    struct cel_sqldb **p = &registry;
    while (*p) {
        struct cel_sqldb *db = *p;
        if (db->pid == pid) {
            p = &db->next;
            continue;
        }
        *p = db->next;
        db->next = NULL;
        if (!db->in_txn && db->conn) {
            for (size_t i = 0; i < db->nstmts; i++) {
                sqlite3_finalize(db->stmts[i].stmt);
                db->stmts[i].stmt = NULL;
            }
            sqlite3_db_config(db->conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
            sqlite3_close_v2(db->conn);
        }
        db->conn = NULL;
    }
}

/* A handle on `path`: the shared one of this process, or (`is_private`) a
 * connection of its own, which is listed too so fork() handling sees it. */
static int open_handle(const char *path, bool is_private, struct cel_sqldb **out,
                       struct cel_errbuf *err)
{
    *out = NULL;
    struct cel_errbuf local;
    char *canon = canonical_path(path, &local);
    if (!canon) {
        cel__err_copy(err, local.msg);
        return strcmp(local.msg, "out of memory") == 0 ? CEL_ENOMEM : CEL_EIO;
    }
    pid_t pid = current_pid();
    pthread_mutex_lock(&registry_mu);
    adopt_after_fork(pid);
    for (struct cel_sqldb *db = registry; db && !is_private; db = db->next) {
        if (!db->is_private && strcmp(db->path, canon) == 0) {
            db->refs++;
            pthread_mutex_unlock(&registry_mu);
            free(canon);
            *out = db;
            return CEL_OK;
        }
    }
    struct cel_sqldb *db = calloc(1, sizeof *db);
    if (!db) {
        pthread_mutex_unlock(&registry_mu);
        free(canon);
        return cel__err(err, CEL_ENOMEM, "out of memory");
    }
    db->path = canon;
    db->pid = pid;
    db->refs = 1;
    db->is_private = is_private;
    pthread_mutex_init(&db->mu, NULL);
    open_bell(db);
    int rc = open_conn(db, err);
    if (rc) {
        pthread_mutex_unlock(&registry_mu);
        free_db(db);
        return rc;
    }
    db->next = registry;
    registry = db;
    pthread_mutex_unlock(&registry_mu);
    CEL_DEBUG("sqlite", "opened %s%s", db->path, is_private ? " (private connection)" : "");
    *out = db;
    return CEL_OK;
}

int cel__sqldb_acquire(const char *path, struct cel_sqldb **out, struct cel_errbuf *err)
{
    return open_handle(path, false, out, err);
}

int cel__sqldb_open_private(const char *path, struct cel_sqldb **out, struct cel_errbuf *err)
{
    return open_handle(path, true, out, err);
}

void cel__sqldb_release(struct cel_sqldb *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&registry_mu);
    if (db->pid != current_pid()) {
        /* A handle inherited through fork(): its connection is closed (or
         * deliberately abandoned) by adopt_after_fork(); free the struct
         * with the last inherited handle. */
        adopt_after_fork(current_pid());
        if (--db->refs <= 0) {
            db->conn = NULL;
            free_db(db);
        }
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    if (--db->refs > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (struct cel_sqldb **p = &registry; *p; p = &(*p)->next) {
        if (*p == db) {
            *p = db->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    if (db->in_txn) {
        CEL_WARN("sqlite", "closing %s with an open transaction; rolling it back", db->path);
        rollback_now(db);
    }
    free_db(db);
}

int cel__sqldb_lock(struct cel_sqldb **dbp, struct cel_errbuf *err)
{
    struct cel_sqldb *db = *dbp;
    if (db->pid != current_pid()) {
        /* Inherited through fork(): move this handle to a connection of
         * our own, dropping its reference to the parent's. */
        struct cel_sqldb *fresh = NULL;
        int rc = open_handle(db->path, db->is_private, &fresh, err);
        if (rc)
            return rc;
        CEL_DEBUG("sqlite", "reopened %s after fork", db->path);
        cel__sqldb_release(db);
        *dbp = db = fresh;
    }
    pthread_mutex_lock(&db->mu);
    return CEL_OK;
}

void cel__sqldb_unlock(struct cel_sqldb *db)
{
    pthread_mutex_unlock(&db->mu);
}

sqlite3_stmt *cel__sqldb_prepare(struct cel_sqldb *db, const char *sql, struct cel_errbuf *err)
{
    for (size_t i = 0; i < db->nstmts; i++) {
        if (db->stmts[i].sql == sql || strcmp(db->stmts[i].sql, sql) == 0) {
            sqlite3_stmt *st = db->stmts[i].stmt;
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return st;
        }
    }
    if (db->nstmts == db->capstmts) {
        size_t cap = db->capstmts ? db->capstmts * 2 : 16;
        struct cel_sqldb_stmt *n = realloc(db->stmts, cap * sizeof *n);
        if (!n) {
            cel__err(err, CEL_ENOMEM, "out of memory");
            return NULL;
        }
        db->stmts = n;
        db->capstmts = cap;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        cel__sqldb_fail(db, err, CEL_EBROKER, "cannot prepare a statement");
        return NULL;
    }
    char *copy = strdup(sql);
    if (!copy) {
        sqlite3_finalize(st);
        cel__err(err, CEL_ENOMEM, "out of memory");
        return NULL;
    }
    db->stmts[db->nstmts].sql = copy;
    db->stmts[db->nstmts].stmt = st;
    db->nstmts++;
    return st;
}

int cel__sqldb_begin(struct cel_sqldb **dbp, struct cel_errbuf *err)
{
    int rc = cel__sqldb_lock(dbp, err);
    if (rc)
        return rc;
    (*dbp)->depth++;
    cel__sqldb_unlock(*dbp);
    return CEL_OK;
}

int cel__sqldb_commit(struct cel_sqldb **dbp, struct cel_errbuf *err)
{
    int rc = cel__sqldb_lock(dbp, err);
    if (rc)
        return rc;
    struct cel_sqldb *db = *dbp;
    if (db->depth <= 0) {
        cel__sqldb_unlock(db);
        return cel__err(err, CEL_ESTATE, "commit without begin");
    }
    if (--db->depth == 0 && db->in_txn)
        rc = commit_now(db, err);
    cel__sqldb_unlock(db);
    return rc;
}

int cel__sqldb_write_begin(struct cel_sqldb *db, bool single, bool *owned, struct cel_errbuf *err)
{
    *owned = false;
    if (db->in_txn || (single && db->depth == 0))
        return CEL_OK;
    int rc = begin_immediate(db, err);
    if (rc)
        return rc;
    db->in_txn = true;
    /* Inside a caller's begin() the transaction stays open until its
     * commit(); otherwise this operation owns it. */
    *owned = db->depth == 0;
    return CEL_OK;
}

int cel__sqldb_write_end(struct cel_sqldb *db, bool owned, int rc, struct cel_errbuf *err)
{
    if (!owned) {
        /* A single statement in autocommit mode has committed by now. */
        if (rc == CEL_OK && db->depth == 0 && !db->in_txn)
            ring_bell(db);
        return rc;
    }
    if (rc != CEL_OK) {
        rollback_now(db);
        return rc;
    }
    return commit_now(db, err);
}

/* ---- inotify wakeups ---------------------------------------------------- */

static int wake_watch(struct cel_sqlwake *w, struct cel_errbuf *err)
{
    /* Watch the doorbell file itself, not the directory: a directory
     * watch queues an event for every WAL page any process writes. */
    size_t n = strlen(w->dir) + strlen(w->base) + sizeof "/-notify";
    char *bell = malloc(n);
    if (!bell)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    snprintf(bell, n, "%s/%s-notify", w->dir, w->base);
    int fd = open(bell, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        free(bell);
        return cel__err(err, CEL_EIO, "inotify_init1: %s", strerror(errno));
    }
    if (inotify_add_watch(w->fd, bell, IN_MODIFY) < 0) {
        int e = errno;
        close(w->fd);
        w->fd = -1;
        cel__err(err, CEL_EIO, "inotify_add_watch '%s': %s", bell, strerror(e));
        free(bell);
        return CEL_EIO;
    }
    free(bell);
    w->pid = current_pid();
    return CEL_OK;
}

int cel__sqlwake_open(struct cel_sqlwake *w, const char *path, struct cel_errbuf *err)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (strcmp(path, ":memory:") == 0)
        return CEL_OK;
    char *canon = canonical_path(path, err);
    if (!canon)
        return CEL_EIO;
    char *slash = strrchr(canon, '/');
    w->base = strdup(slash + 1);
    w->dir = slash == canon ? strdup("/") : strndup(canon, (size_t)(slash - canon));
    free(canon);
    if (!w->base || !w->dir) {
        cel__sqlwake_close(w);
        return cel__err(err, CEL_ENOMEM, "out of memory");
    }
    int rc = wake_watch(w, err);
    if (rc)
        cel__sqlwake_close(w);
    return rc;
}

int cel__sqlwake_fd(struct cel_sqlwake *w)
{
    if (w->fd >= 0 && w->pid != current_pid()) {
        /* The inherited descriptor shares its event queue with the
         * parent: reading it here would steal the parent's wakeups. */
        close(w->fd);
        w->fd = -1;
        if (wake_watch(w, NULL) != CEL_OK)
            w->fd = -1;
    }
    return w->fd;
}

bool cel__sqlwake_drain(struct cel_sqlwake *w)
{
    int fd = cel__sqlwake_fd(w);
    if (fd < 0)
        return true;
    bool any = false;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        any = true; /* the watch is on the doorbell alone */
    }
    return any;
}

void cel__sqlwake_close(struct cel_sqlwake *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    free(w->dir);
    free(w->base);
    w->dir = w->base = NULL;
}
