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
 *  - UNREGISTERED: no such task here; dead-letter it, store the
 *    NotRegistered failure in `meta`.
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

/* Never fails on bad input; *out must be released. */
void cel__execute(const cel_registry *reg, const char *hostname, const char *envelope, size_t len,
                  struct cel_execution *out);
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
