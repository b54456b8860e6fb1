/*
 * sqlite_internal.h - the SQLite transport's handle, shared by its files:
 *
 *   sqlite.c          the ops table: messages, fan-out, revokes, rate
 *                     limits
 *   sqlite_mailbox.c  remote-control reply mailboxes
 *   sqlite_schedule.c periodic entries and leases (beat)
 *
 * The connection, transaction and wakeup plumbing is store/sqlite_db.h.
 */
#ifndef CEL_BROKER_SQLITE_INTERNAL_H
#define CEL_BROKER_SQLITE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "store/sqlite_db.h"

struct sqlite_broker {
    struct cel_broker base;
    struct cel_sqldb *db;
    struct cel_sqlwake wake;
    int64_t fanout_pruned_us; /* last age pruning by this handle (monotonic) */
    bool rate_table;          /* rate_buckets exists (rate limits) */
};

/*
 * One write operation on the handle: takes the lock, opens a write
 * transaction unless the caller's begin() has one open (or, `single`, the
 * body is one statement, which commits on its own outside a batch), runs
 * `body`, commits or rolls back what it opened, and unlocks.
 */
int cel__sqlite_write(struct sqlite_broker *b, bool single,
                      int (*body)(struct sqlite_broker *b, void *arg), void *arg);
/* Steps a statement that returns no rows, then resets it (it holds no
 * read snapshot afterwards); a failure is recorded in the handle. */
int cel__sqlite_step_done(struct sqlite_broker *b, sqlite3_stmt *st, const char *what);

/* Inserts one message exactly as publish() does; call inside
 * cel__sqlite_write(). */
int cel__sqlite_insert_message(struct sqlite_broker *b, const char *queue, int priority,
                               int64_t due_us, const char *task_id, const char *body, size_t len);

/* The periodic-entry and lease ops (broker.h), in sqlite_schedule.c. */
int cel__sqlite_sched_put(struct cel_broker *b, const char *name, const char *doc, size_t len,
                          bool enabled, bool replace);
int cel__sqlite_sched_get(struct cel_broker *b, const char *name, struct cel_sched_row *out);
int cel__sqlite_sched_list(struct cel_broker *b, struct cel_sched_row **out, size_t *n);
int cel__sqlite_sched_remove(struct cel_broker *b, const char *name);
int cel__sqlite_sched_enable(struct cel_broker *b, const char *name, bool enabled);
int cel__sqlite_sched_version(struct cel_broker *b, int64_t *version);
int cel__sqlite_lease_acquire(struct cel_broker *b, const char *lease, const char *holder,
                              int64_t ttl_ms, bool *held);
int cel__sqlite_lease_release(struct cel_broker *b, const char *lease, const char *holder);
int cel__sqlite_sched_fire(struct cel_broker *b, const struct cel_sched_fire *f);

/* The mailbox ops (broker.h), in sqlite_mailbox.c. */
int cel__sqlite_mailbox_open(struct cel_broker *b, const char *name, struct cel_mailbox **out);
int cel__sqlite_mailbox_take(struct cel_mailbox *m, int64_t timeout_ms, char **env, size_t *len);
void cel__sqlite_mailbox_close(struct cel_mailbox *m);
int cel__sqlite_mailbox_send(struct cel_broker *b, const char *name, const char *env, size_t len);

#endif
