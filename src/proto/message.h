/*
 * message.h - Celery message protocol v2: the one message model.
 *
 * Every transport carries the same envelope (docs/protocol.md):
 *
 *   {"body": "<base64 of [args, kwargs, embed]>", "content-encoding": "utf-8",
 *    "content-type": "application/json", "headers": {...16 headers...},
 *    "properties": {"correlation_id", "reply_to", "delivery_mode",
 *                   "delivery_info": {"exchange", "routing_key"}, "priority",
 *                   "body_encoding": "base64", "delivery_tag"}}
 *
 * Parsing and building are pure functions: no I/O, no globals, hard limits
 * on size and nesting. Unknown headers and properties are preserved in
 * `root` and survive a re-encode.
 */
#ifndef CEL_PROTO_MESSAGE_H
#define CEL_PROTO_MESSAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CEL_MESSAGE_MAX_BYTES (64u * 1024u * 1024u) /* envelope text */
#define CEL_MESSAGE_MAX_DEPTH 64

struct cel_message_limits {
    size_t max_bytes; /* 0: CEL_MESSAGE_MAX_BYTES */
    int max_depth;    /* 0: CEL_MESSAGE_MAX_DEPTH */
    /* Parse the envelope but leave the body encoded (args, kwargs, embed
     * and body stay NULL). A consumer that only routes a message (the
     * worker parent) saves the base64 and JSON work; whoever runs the
     * task parses it fully and meets any body error there. */
    bool headers_only;
};

/*
 * A parsed message. Pointers to strings are borrowed from `root` (or from
 * `body`) and live until cel__message_release().
 */
struct cel_message {
    json_t *root; /* the whole envelope; owned */
    json_t *body; /* decoded [args, kwargs, embed]; owned */

    /* headers */
    const char *task;      /* required */
    const char *id;        /* required */
    const char *root_id;   /* NULL when absent or null */
    const char *parent_id; /* NULL when absent or null */
    const char *group_id;  /* NULL when absent or null */
    const char *shadow;    /* NULL when absent or null */
    const char *origin;    /* NULL when absent */
    int retries;
    int64_t eta_us;     /* wall clock, 0: none */
    int64_t expires_us; /* wall clock, 0: none */
    double time_limit;  /* hard, seconds; 0: none */
    double soft_time_limit;
    bool ignore_result;

    /* properties */
    const char *content_type;
    const char *correlation_id;
    const char *reply_to;
    const char *exchange;    /* delivery_info.exchange ("" when absent) */
    const char *routing_key; /* delivery_info.routing_key ("" when absent) */
    int priority;
    bool redelivered;

    /* body parts, borrowed from `body` */
    json_t *args;   /* array */
    json_t *kwargs; /* object */
    json_t *embed;  /* object (may be empty) */
};

/*
 * Parses an envelope. On success returns 0 and fills *out. On failure
 * returns a negative CEL_E* code (CEL_EJSON, CEL_EPROTO, CEL_ETOOBIG,
 * CEL_EDEPTH, CEL_ECONTENTTYPE), writes a one-line reason into err, and
 * leaves *out released (safe to release again). `lim` may be NULL.
 * The body may be base64 (properties.body_encoding == "base64") or plain
 * JSON text; content-type must be application/json.
 */
int cel__message_parse(const char *data, size_t len, const struct cel_message_limits *lim,
                       struct cel_message *out, char *err, size_t errlen);
void cel__message_release(struct cel_message *m);

/*
 * Why a message was refused, named as a Python worker (Celery 5.2.6 on
 * kombu 5.2) names it, so that a client waiting on the task gets the same
 * failure from either worker.
 */
enum cel_fault_kind {
    CEL_FAULT_DECODE = 0,     /* kombu DecodeError: unreadable envelope, headers or body */
    CEL_FAULT_CONTENT,        /* kombu ContentDisallowed: pickle, yaml, any non-JSON type */
    CEL_FAULT_INVALID_TASK,   /* celery InvalidTaskError: bad eta/expires, protocol 1 */
    CEL_FAULT_NOT_REGISTERED, /* celery NotRegistered: an empty (or non-string) task name */
    CEL_FAULT_VALUE,          /* ValueError: no content type, timelimit of the wrong
                                 length or negative, negative retries */
    CEL_FAULT_TYPE,           /* TypeError: timelimit or retries of the wrong type, a
                                 delivery_info that is not an object */
};

struct cel_message_fault {
    enum cel_fault_kind kind;
    const char *exc_type;   /* static: "DecodeError", ... */
    const char *exc_module; /* static: "kombu.exceptions", ... */
    char *task_id;          /* when one could be read (headers.id, or the body's id
                               in protocol 1); NULL otherwise */
    char *task;             /* the task name as given, when it is a string; else NULL */
};

/*
 * cel__message_parse() that also says, on failure, which exception a
 * Python worker would raise and the task id and name when they can be
 * read. `fault` may be NULL; after a failure the caller releases it with
 * cel__message_fault_release() (it is zeroed on success).
 */
int cel__message_parse_fault(const char *data, size_t len, const struct cel_message_limits *lim,
                             struct cel_message *out, struct cel_message_fault *fault, char *err,
                             size_t errlen);
void cel__message_fault_release(struct cel_message_fault *f);

/* What a producer says about a task; the builder fills everything else. */
struct cel_task_spec {
    const char *task;        /* required */
    const char *id;          /* NULL: fresh UUID4 */
    const char *args_json;   /* JSON array text; NULL: "[]" */
    const char *kwargs_json; /* JSON object text; NULL: "{}" */
    json_t *args;            /* alternative to args_json (borrowed); wins when set */
    json_t *kwargs;          /* alternative to kwargs_json (borrowed) */
    json_t *embed;           /* borrowed; NULL: callbacks/errbacks/chain/chord all null */
    const char *queue;       /* routing key; NULL: "celery" */
    const char *exchange;    /* NULL: "" */
    int priority;            /* 0..9 */
    int64_t eta_us;          /* 0: none */
    int64_t expires_us;      /* 0: none */
    double time_limit;       /* 0: null */
    double soft_time_limit;  /* 0: null */
    const char *root_id;     /* NULL: same as id */
    const char *parent_id;
    const char *group_id;
    const char *shadow;
    int retries;
    bool ignore_result;
    const char *origin;   /* NULL: "gen<pid>@<hostname>" */
    const char *reply_to; /* NULL: "" */
    const char *lang;     /* NULL: "c" */
    /* celeriac's own headers, which Python workers pass through untouched:
     * celeriac_max_retries (when has_max_retries) and
     * celeriac_retry_backoff (seconds, when > 0). */
    int max_retries;
    bool has_max_retries;
    double retry_backoff;
    /* The periodic entry that sent it (beat): the periodic_task_name
     * header, as django-celery-beat sets it; NULL: none. */
    const char *periodic_task_name;
    /* The group_index header (a chord header member's position); null
     * unless has_group_index. */
    int group_index;
    bool has_group_index;
};

/*
 * Builds an envelope (all 16 headers, all properties, base64 body) as
 * JSON text in Python's byte conventions. *out is caller-owned (free()).
 * The id used is written to id_out (37 bytes) when not NULL.
 * Returns 0 or CEL_EINVAL/CEL_EJSON/CEL_ENOMEM with a reason in err, or
 * CEL_ETOOBIG for an envelope over CEL_MESSAGE_MAX_BYTES.
 */
int cel__message_build(const struct cel_task_spec *spec, char **out, size_t *outlen,
                       char id_out[37], char *err, size_t errlen);

/* Re-encodes a parsed message (unknown fields preserved). Caller frees. */
char *cel__message_encode(const struct cel_message *m);

/* Exception object of a result: {"exc_type", "exc_message": [msg], "exc_module"}. */
json_t *cel__exception_new(const char *exc_type, const char *exc_module, const char *message);

/*
 * Result meta document, Celery's celery-task-meta-<id> format:
 * {"status", "result", "traceback", "children", "date_done", ["group_id"],
 *  ["parent_id"], "task_id"}. `result` is stolen (NULL: null). date_done
 * is set for ready states (naive UTC, like Celery 5.2). Returns NULL on OOM.
 */
json_t *cel__result_meta_new(const char *task_id, const char *status, json_t *result,
                             const char *traceback, const char *group_id, const char *parent_id,
                             int64_t date_done_us);

#endif
