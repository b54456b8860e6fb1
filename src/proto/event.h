/*
 * event.h - Celery's monitoring events (reference/celery-protocol.md
 * section 8): building them, batching them, reading them back.
 *
 * An event is a JSON object with the common fields {type, hostname,
 * utcoffset, pid, clock, timestamp} plus its type's fields (section 8.4).
 * It travels in a kombu envelope on the `celeryev` fan-out exchange with
 * the routing key of its type ('-' becomes '.': task-succeeded ->
 * task.succeeded). A worker may batch task events: routing key
 * `task.multi`, body a JSON array of event objects. Readers accept both.
 *
 * No I/O here: the worker's events thread and the client's receiver
 * publish and subscribe with the broker's fan-out ops.
 */
#ifndef CEL_PROTO_EVENT_H
#define CEL_PROTO_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"

#define CEL_EVENT_EXCHANGE "celeryev"
/* Celery's buffer limit for task.multi. */
#define CEL_EVENT_BATCH_MAX 24

/* A Lamport clock (section 8.6). Not thread-safe: one owner. */
struct cel_lamport {
    int64_t value;
};
/* Sending: increments and returns the new value. */
int64_t cel__lamport_forward(struct cel_lamport *c);
/* Receiving a message stamped `seen`: value = max(value, seen) + 1. */
void cel__lamport_adjust(struct cel_lamport *c, int64_t seen);

/*
 * A new event object of `type` with the common fields set (timestamp from
 * wall_us, utcoffset from the process's zone), to which the caller adds
 * its type's fields. NULL when out of memory.
 */
json_t *cel__event_new(const char *type, const char *hostname, int pid, int64_t clock,
                       int64_t wall_us);

/*
 * The same event written as text into b (appended), for a sender that
 * makes many: no JSON tree, and times printed as fixed-point seconds
 * (1795803277.500022) rather than through a float. begin() writes the
 * common fields and leaves the object open; the add_*() calls append a
 * field each (a NULL string is null); end() closes it. Failures stay in
 * b (core/buf.h) for the caller to check once.
 */
void cel__event_begin(struct cel_buf *b, const char *type, const char *hostname, int pid,
                      int64_t clock, int64_t wall_us);
void cel__event_add_str(struct cel_buf *b, const char *key, const char *value);
void cel__event_add_int(struct cel_buf *b, const char *key, int64_t value);
void cel__event_add_bool(struct cel_buf *b, const char *key, bool value);
/* µs as seconds with six decimals (runtime). */
void cel__event_add_seconds(struct cel_buf *b, const char *key, int64_t us);
/* A JSON value copied as it is (a header's raw text). */
void cel__event_add_raw(struct cel_buf *b, const char *key, const char *json, size_t len);
void cel__event_end(struct cel_buf *b);

/*
 * What task-sent and task-received say about a task, read from its
 * envelope's headers (the values it needs, not the whole tree). id and
 * task point into the struct; release it with cel__event_task_release().
 * CEL_OK, or CEL_EPROTO when the envelope has no id or task name.
 */
enum { CEL_EVENT_TASK_HEADERS = 10 };
struct cel_event_task {
    const char *id, *task;
    json_t *v[CEL_EVENT_TASK_HEADERS]; /* owned; NULL when absent */
};
int cel__event_task_read(const char *env, size_t len, struct cel_event_task *t);
/* Appends uuid, name (the shadow name when set), args and kwargs (the
 * argsrepr/kwargsrepr the sender wrote), root_id, parent_id, retries,
 * eta and expires to an event begun with cel__event_begin(). */
void cel__event_add_task(struct cel_buf *b, const struct cel_event_task *t);
void cel__event_task_release(struct cel_event_task *t);

/* "task-succeeded" -> "task.succeeded" into buf (NUL-terminated). */
void cel__event_routing_key(const char *type, char *buf, size_t len);

/*
 * The kombu envelope for one event (an object; routing key from its type)
 * or a batch (an array; routing key "task.multi"), headers {hostname}.
 * *out is the caller's to free; *rk (static) the routing key to publish
 * with. CEL_ENOMEM, CEL_EINVAL (neither an object nor an array).
 */
int cel__event_envelope(const json_t *event_or_batch, const char *hostname, char **out, size_t *len,
                        const char **rk);
/* The same around JSON text already written (an object or an array of
 * them, e.g. with cel__event_begin()), published with routing key rk. */
int cel__event_envelope_text(const char *json, size_t json_len, const char *rk,
                             const char *hostname, char **out, size_t *len);

/*
 * Reads an events envelope as received: CEL_OK with *events an array of
 * event objects (one element for a single event; caller decrefs);
 * CEL_EPROTO when unreadable.
 */
int cel__event_parse(const char *env, size_t len, json_t **events);

#endif
