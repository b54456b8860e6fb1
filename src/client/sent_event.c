/*
 * sent_event.c - Celery's task-sent event (task_send_sent_event): a
 * client that is asked to tells monitors about each task it sends, on
 * the celeryev fan-out, as Celery's apply_async does.
 *
 * Off by default, and then a send pays one branch. When on, each sent
 * envelope's headers are walked (not parsed whole) for the fields the
 * event carries, and the event is published singly with routing key
 * task.sent, through the client's own broker handle: inside a batch it
 * rides along with the batch (the Redis pipeline, the SQLite
 * transaction). A failed event does not fail the send: events are
 * advisory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "core/clock.h"
#include "core/json_scan.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/event.h"

void cel__client_sent_event_configure(cel_client *c)
{
    c->sent_events =
        cel_config_get_int(c->cfg, "task_send_sent_event") != 0 && c->broker->ops->fanout_publish;
    if (!c->sent_events)
        return;
    /* Celery's anonymous node name for a client: gen<pid>@<host>. */
    char host[200] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(c->origin, sizeof c->origin, "gen%d@%s", (int)getpid(), host);
}

/* properties.delivery_info.{exchange, routing_key} of the envelope. */
static void delivery_info(const char *env, size_t len, json_t **exchange, json_t **rk)
{
    struct cel_json_member props, info, v[2];
    static const char *const keys[] = {"exchange", "routing_key"};
    *exchange = *rk = NULL;
    if (cel__json_member(env, len, "properties", &props) == CEL_OK &&
        cel__json_member(props.value, props.value_len, "delivery_info", &info) == CEL_OK &&
        cel__json_pick(info.value, info.value_len, keys, 2, v) == CEL_OK) {
        *exchange = cel__json_member_parse(&v[0]);
        *rk = cel__json_member_parse(&v[1]);
    }
}

void cel__client_sent_event(cel_client *c, const char *env, size_t len, const char *queue)
{
    struct cel_event_task t;
    if (cel__event_task_read(env, len, &t) != CEL_OK)
        return;
    json_t *exchange, *rk;
    delivery_info(env, len, &exchange, &rk);
    struct cel_buf b = {0};
    cel__event_begin(&b, "task-sent", c->origin, (int)getpid(), cel__lamport_forward(&c->clock),
                     cel__wall_us());
    cel__event_add_task(&b, &t);
    cel__event_add_str(&b, "queue", queue);
    cel__event_add_str(&b, "exchange", cel__json_cstr(exchange) ? cel__json_cstr(exchange) : "");
    cel__event_add_str(&b, "routing_key", cel__json_cstr(rk) ? cel__json_cstr(rk) : queue);
    cel__event_end(&b);
    char *out = NULL;
    size_t outlen = 0;
    if (b.err == CEL_OK &&
        cel__event_envelope_text(cel__buf_bytes(&b), cel__buf_size(&b), "task.sent", c->origin,
                                 &out, &outlen) == CEL_OK &&
        c->broker->ops->fanout_publish(c->broker, CEL_EVENT_EXCHANGE, "task.sent", out, outlen) !=
            CEL_OK)
        CEL_DEBUG("client", "task-sent event for %s not published: %s", t.id,
                  cel__broker_errmsg(c->broker));
    free(out);
    cel__buf_release(&b);
    json_decref(exchange);
    json_decref(rk);
    cel__event_task_release(&t);
}
