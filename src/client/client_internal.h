/*
 * client_internal.h - the structs behind cel_client and cel_result
 * (celeriac/client.h), shared by client.c and result.c.
 */
#ifndef CEL_CLIENT_CLIENT_INTERNAL_H
#define CEL_CLIENT_CLIENT_INTERNAL_H

#include <stdbool.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "celeriac/client.h"
#include "core/errbuf.h"
#include "proto/envelope_writer.h"
#include "proto/event.h"

struct cel_client {
    cel_config *cfg;
    struct cel_broker *broker;   /* NULL until connected */
    struct cel_backend *backend; /* NULL until connected, or when results are disabled */
    int backend_rc;              /* why backend is NULL after connect (CEL_ENORESULT, ...) */
    bool connected;
    bool batching;       /* between cel_client_begin() and cel_client_flush() */
    bool broker_batched; /* the transport's begin() was called for this batch */
    struct cel_errbuf err;
    const char *default_queue; /* task_default_queue, looked up at connect */
    struct cel_buf send_buf;   /* envelope of the last send, reused by the next */
    /* task_send_sent_event (sent_event.c), resolved at connect */
    bool sent_events;
    char origin[256];         /* the events' hostname: gen<pid>@<host> */
    struct cel_lamport clock; /* the client's Lamport clock (events, control requests) */
};

struct cel_result {
    cel_client *client; /* borrowed: results are freed before their client */
    char *id;           /* owned; any text a producer chose (usually a UUID) */

    /* As of the last refresh or wait; all owned. */
    cel_state state;
    char *status;      /* the status text as stored ("PROGRESS" for custom states) */
    char *meta_json;   /* NULL while nothing is stored */
    char *value_json;  /* "null" while nothing is stored */
    char *exc_type;    /* FAILURE/RETRY/REVOKED only */
    char *exc_message; /* FAILURE/RETRY/REVOKED only */
    char *traceback;

    /* Set by a wait that timed out with the task PENDING, when the store
     * can see queues (cel_result_unclaimed_queue()); owned. */
    char *unclaimed_queue;
    bool queue_consumed;

    /* --- canvas (group_result.c): a group's members, in order; all owned.
     * NULL for a task's result. */
    char **members;
    size_t nmembers;
};

/* "a, b, c" between `open` and `close`; NULL when out of memory. */
char *cel__join_texts(char *const *parts, size_t n, const char *open, const char *close);

/* CEL_OK when `c` is connected to a result store, else the reason. */
int cel__client_need_backend(cel_client *c);

/* A new PENDING handle for `task_id` on `c`; NULL when out of memory. */
struct cel_result *cel__result_new(cel_client *c, const char *task_id);

/* --- task-sent events (sent_event.c) ------------------------------------ */

/* Reads task_send_sent_event; at connect, once the broker is open. */
void cel__client_sent_event_configure(cel_client *c);
/* Publishes task-sent for the envelope just sent to `queue`; only when
 * c->sent_events is set. */
void cel__client_sent_event(cel_client *c, const char *env, size_t len, const char *queue);

/* --- canvas (group_result.c) ------------------------------------------ */

/* A PENDING group handle: id `group_id`, members ids[0..n) (copied). */
struct cel_result *cel__result_new_group(cel_client *c, const char *group_id,
                                         const char *const *ids, size_t n);
/* cel_result_wait / refresh / forget for a group handle. */
int cel__group_wait(struct cel_result *r, int64_t timeout_ms);
int cel__group_refresh(struct cel_result *r);
int cel__group_forget(struct cel_result *r);
/* Moves the outcome fields (state, status, value, exception, unclaimed
 * queue) of `src` into `dst`, leaving `src` PENDING; dst's meta is dropped
 * (a group has none). */
void cel__result_move_outcome(struct cel_result *dst, struct cel_result *src);
/* Replaces the outcome of `r` with SUCCESS and `value_json` (stolen). */
void cel__result_set_success(struct cel_result *r, char *value_json);
/* Resets `r` to PENDING with a "null" value; CEL_ENOMEM when it cannot. */
int cel__result_reset(struct cel_result *r);

#endif
