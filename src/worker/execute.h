/*
 * execute.h - deciding what a task message becomes, and running it.
 *
 * The process that runs tasks (a prefork child, or the solo worker)
 * parses the whole message, checks it and runs it. The worker parent
 * never parses messages on the hot path: it only moves bytes between the
 * broker and the children and acts on the outcome reported here. That
 * keeps the JSON work parallel across children.
 *
 * Outcomes:
 *  - RESULT: the task ran (or expired: a REVOKED result); `meta` is the
 *    result meta document to store (NULL when the result is ignored).
 *  - MALFORMED: the message cannot be read; it belongs in the dead-letter
 *    store for `reason`. Whenever a task id can be read (from the
 *    headers, or the body of a protocol 1 message), `meta` is the FAILURE
 *    a Python worker would report for it (ContentDisallowed, DecodeError,
 *    InvalidTaskError, NotRegistered, ValueError, TypeError: see
 *    cel_fault_kind in proto/message.h), so its client is not left
 *    waiting.
 *  - UNREGISTERED: no such task here; `meta` holds the NotRegistered
 *    failure, which the parent stores only when it gives up on the
 *    message (consumer.c: it goes back to its queue for another worker
 *    until its delivery limit).
 *  - DEFER: the message has an ETA in the future (Python clients put it
 *    in a header); the parent parks it on the broker until `eta_us`.
 */
#ifndef CEL_WORKER_EXECUTE_H
#define CEL_WORKER_EXECUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "celeriac/client.h"
#include "celeriac/task.h"
#include "worker/frame.h"
#include "worker/time_limit_table.h"

enum cel_outcome {
    CEL_OUTCOME_RESULT = 0,
    CEL_OUTCOME_MALFORMED,
    CEL_OUTCOME_UNREGISTERED,
    CEL_OUTCOME_DEFER,
};

struct cel_execution {
    enum cel_outcome outcome;
    cel_state state; /* of meta */
    char *task_id;   /* NULL when the message had none; free() */
    char *meta;      /* result meta JSON; NULL when nothing is to be stored; free() */
    size_t meta_len;
    int64_t eta_us; /* DEFER */
    int priority;   /* DEFER: the message's priority, for parking it */
    char reason[256];
};

/* What the worker sets for every task: its configuration, resolved once. */
struct cel_exec_env {
    const cel_registry *reg;
    const char *hostname;
    double time_limit;      /* --time-limit, seconds; 0: none */
    double soft_time_limit; /* --soft-time-limit, seconds; 0: none */
    /* Limits set at run time, which replace the task's own (borrowed;
     * NULL: none). */
    const cel_time_limit_table *time_limits;
    bool acks_late;     /* task_acks_late */
    bool track_started; /* task_track_started */
    /* For the built-ins that read results while they run
     * (celery.chord_unlock, exec_backend.h): the worker's configuration
     * (its result_backend) and result_expires. Borrowed; NULL: none. */
    const cel_config *cfg;
    int64_t result_ttl_s;
};

/*
 * The policy one run is under, resolved from the message headers (a
 * call's `timelimit`), the task's definition and the worker (env), in
 * that order of precedence.
 */
struct cel_task_policy {
    double time_limit;      /* hard, seconds; 0: none */
    double soft_time_limit; /* seconds; 0: none */
    bool acks_late;
    bool reject_on_worker_lost;
    bool track_started;
};

/* Whether the parent must be told about a policy before the task runs:
 * it differs from what the parent assumes for every task (env). */
bool cel__policy_differs(const struct cel_task_policy *p, const struct cel_exec_env *env);

/*
 * How a running task reaches the worker parent: frames from a prefork
 * child (child.c), direct calls under the solo pool. Each returns 0 or -1
 * (the parent cannot be told: the task fails with that reason).
 *  - begin: sent before the task body runs, only when
 *    cel__policy_differs() (BEGIN frame): the parent arms the hard limit
 *    and knows about acks_late and reject_on_worker_lost.
 *  - state: store a state now (STATE frame).
 *  - publish: a message to publish with this task's ack (PUBLISH frame).
 */
/* A chord header member that finished: the store thread joins it after
 * its result is stored and, when it completes the chord, publishes the
 * body with the header's results (or stores ChordError on the body). */
struct cel_chord_join {
    const char *group_id;
    int group_index; /* -1: none (Celery's null: ordered last) */
    const char *task_id;
    const char *root_id;
    const char *body; /* the chord body signature, JSON */
    size_t body_len;
    const char *entry; /* Celery's join entry [1, id, state, value], JSON */
    size_t entry_len;
};

struct cel_exec_io {
    void *ud;
    int (*begin)(void *ud, const struct cel_task_policy *p);
    int (*state)(void *ud, const char *state, const char *meta, size_t len);
    int (*publish)(void *ud, const struct cel_frame_publish *p);
    /* Workflows (canvas): with this task's ack, in the order called, and
     * before the publishes that follow: record a chord's size (Redis:
     * celery-taskset-meta-<gid>.s) ... */
    int (*chord_size)(void *ud, const char *group_id, int size);
    /* ... and join this chord header member. */
    int (*chord_join)(void *ud, const struct cel_chord_join *j);
};

/* Never fails on bad input; *out must be released. `io` may be NULL (unit
 * tests): begin/state/publish are then dropped. */
void cel__execute(const struct cel_exec_env *env, const struct cel_exec_io *io,
                  const char *envelope, size_t len, struct cel_execution *out);
void cel__execution_release(struct cel_execution *ex);

/*
 * The RESULT frame that carries an execution from a child to the parent:
 * status = outcome * 16 + state, payload = task_id NUL reason NUL eta NUL
 * priority NUL meta. Decoding copies what it keeps; a frame that does not have that
 * shape returns -1.
 */
int cel__execution_to_frame(const struct cel_execution *ex, uint64_t seq, struct cel_buf *out);
int cel__execution_from_frame(const struct cel_frame *f, struct cel_execution *ex);

#endif
