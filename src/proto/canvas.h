/*
 * canvas.h - Celery's canvas on the wire: signatures, and the messages a
 * workflow becomes (docs/protocol.md, "Canvas").
 *
 * A signature is the JSON object Celery serialises:
 *
 *   {"task": "tasks.add", "args": [2], "kwargs": {}, "options": {...},
 *    "subtask_type": null | "chain" | "group" | "chord", "immutable": false}
 *
 * `options` may hold task_id, queue (or routing_key), priority,
 * countdown, eta, expires, link, link_error, chord, group_id,
 * group_index, reply_to. Workflows are signatures too: a chain is
 * {"task": "celery.chain", "kwargs": {"tasks": [sig...]}, "subtask_type":
 * "chain"}, a group {"task": "celery.group", "kwargs": {"tasks": [...]},
 * "subtask_type": "group"}, a chord {"task": "celery.chord", "kwargs":
 * {"header": <group sig>, "body": <sig>}, "subtask_type": "chord"}, as
 * Python's canvas writes them.
 *
 * Planning a workflow turns one signature (nested to any depth) into the
 * messages to publish now and the chord sizes to record first, exactly
 * as a Python client or worker would send them: a chain sends its first
 * task with the rest in embed.chain (reversed), a group sends its members
 * with the group header, a chord sends its header members with
 * embed.chord = body and records the group's size. Pure functions: no
 * I/O; ids are drawn from cel__uuid4 unless options.task_id gives one.
 *
 * Ownership: json_t arguments are borrowed; everything in a plan belongs
 * to the plan (cel__canvas_plan_release).
 */
#ifndef CEL_PROTO_CANVAS_H
#define CEL_PROTO_CANVAS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who sends: a client (all NULL), or a running task (its ids). */
struct cel_canvas_ctx {
    const char *parent_id;     /* NULL: none */
    const char *root_id;       /* NULL: each message is its own root */
    const char *default_queue; /* NULL: "celery" */
    /* The chain and chord the sent work must continue into (a replaced
     * task hands its own on; a chain step inside a chord keeps the
     * chord). Borrowed; NULL: none. */
    const json_t *chain; /* array, reversed like embed.chain */
    const json_t *chord; /* body signature */
    const char *group_id;
    int group_index; /* -1: none */
    /* The id the workflow's last task takes (its result is the
     * workflow's: a replaced task gives its own); NULL: its own. */
    const char *task_id;
    int priority; /* of every message whose signature sets none; 0: default */
};

/* One message to publish. */
struct cel_canvas_msg {
    char *body; /* envelope text, NUL-terminated */
    size_t len;
    char id[37];
    char *queue;
    int priority;
    int64_t due_us; /* 0: now */
};

/* A chord whose size must be recorded (Redis: celery-taskset-meta-<gid>.s)
 * before its header messages are published. */
struct cel_canvas_chord {
    char id[37]; /* the group id */
    int size;
    /* When the header nests groups ("complex", as Celery's apply_chord
     * calls it): the header's group result document {"result": <tuple>}
     * to save first (Redis: celery-taskset-meta-<gid>), from which the
     * join gives the body structured results. NULL: none. */
    char *saved_header;
};

struct cel_canvas_plan {
    struct cel_canvas_msg *msgs;
    size_t nmsgs;
    struct cel_canvas_chord *chords;
    size_t nchords;
    /* Whose result is the workflow's value: a task's id (a task, a chain's
     * last link, a chord's body) or, for a group, the group id with its
     * members' ids in order. */
    bool is_group;
    char result_id[37];
    char (*member_ids)[37]; /* is_group: nmembers ids */
    size_t nmembers;
};

/*
 * Plans `sig`. `prepend` (borrowed; NULL: none) is inserted as args[0] of
 * the first task(s) to run unless their signature is immutable: a parent's
 * result for a callback or the next chain link, a header's results list
 * for a chord body. Returns 0, or CEL_EINVAL / CEL_EJSON / CEL_ENOMEM with
 * a reason in err (the plan is then empty).
 */
int cel__canvas_plan(const json_t *sig, const json_t *prepend, const struct cel_canvas_ctx *ctx,
                     struct cel_canvas_plan *out, char *err, size_t errlen);
void cel__canvas_plan_release(struct cel_canvas_plan *p);

/*
 * What a finished task hands on, from its message's embed ({"callbacks",
 * "errbacks", "chain", "chord"}) and its own ids (`m` is the parsed
 * message of the task that ran):
 *  - success: each callback with `result` prepended, then the next chain
 *    link (the last element of embed.chain, with the remaining elements
 *    as its chain), parent_id = the task, root_id inherited;
 *  - failure (`result` NULL): each errback with the task id prepended
 *    (unless immutable), and the chain stops.
 * A chord member's join is not planned here (the worker's store thread
 * does it: it needs the result store). Returns as cel__canvas_plan; an
 * empty plan when there is nothing to hand on.
 */
struct cel_message;
int cel__canvas_followups(const struct cel_message *m, const json_t *result,
                          struct cel_canvas_plan *out, char *err, size_t errlen);

/* Celery's chord join entry for a header member (Redis .j list):
 * [1, task_id, state, value]. NULL when out of memory. */
json_t *cel__canvas_join_entry(const char *task_id, const char *state, const json_t *value);

#endif
