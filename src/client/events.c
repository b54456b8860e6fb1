/*
 * events.c - cel_event_receiver_*: Celery's monitoring events as a
 * stream of JSON objects (celeriac/control.h).
 *
 * The receiver holds a fan-out subscription on the celeryev exchange
 * (broker.h) of its own, so it never disturbs the client's handle. A
 * received message may carry one event or a task.multi batch of up to 24;
 * each is stamped with "local_received" (epoch seconds, as Celery's
 * receiver adds it) and handed out one at a time.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "celeriac/control.h"
#include "client/client_internal.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "proto/event.h"

/* Messages read per poll: a task.multi each at most, so a few hundred
 * events. */
#define POLL_BATCH 16
/* How often a transport without a descriptor is looked at. */
#define NO_FD_POLL_MS 50

struct cel_event_receiver {
    cel_client *client; /* borrowed: freed before its client */
    struct cel_fanout_sub *sub;
    json_t *pending; /* array of events not handed out yet */
    size_t next;     /* the first pending one */
    char *current;   /* the text last handed out; owned */
};

int cel_event_receiver_open(cel_client *c, const char *pattern, cel_event_receiver **out)
{
    if (!out)
        return CEL_EINVAL;
    *out = NULL;
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    const struct cel_broker_ops *bo = c->broker->ops;
    if (!bo->fanout_subscribe || !bo->fanout_poll || !bo->fanout_close)
        return cel__err(&c->err, CEL_ENOTSUP, "the %s transport carries no events", bo->scheme);
    struct cel_event_receiver *r = calloc(1, sizeof *r);
    if (!r || !(r->pending = json_array())) {
        free(r);
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }
    r->client = c;
    int rc = bo->fanout_subscribe(c->broker, CEL_EVENT_EXCHANGE,
                                  pattern && *pattern ? pattern : "#", &r->sub);
    if (rc != CEL_OK) {
        json_decref(r->pending);
        free(r);
        return cel__err(&c->err, rc, "cannot subscribe to events: %s",
                        cel__broker_errmsg(c->broker));
    }
    *out = r;
    return CEL_OK;
}

void cel_event_receiver_free(cel_event_receiver *r)
{
    if (!r)
        return;
    if (r->sub)
        r->client->broker->ops->fanout_close(r->sub);
    json_decref(r->pending);
    free(r->current);
    free(r);
}

/* Reads what arrived into r->pending; CEL_OK also when nothing did. */
static int drain(struct cel_event_receiver *r)
{
    cel_client *c = r->client;
    struct cel_fanout_msg msgs[POLL_BATCH];
    size_t n = 0;
    int rc = c->broker->ops->fanout_poll(r->sub, msgs, POLL_BATCH, &n);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot read events: %s", cel__broker_errmsg(c->broker));
    double now = (double)cel__wall_us() / 1e6;
    for (size_t i = 0; i < n; i++) {
        json_t *events = NULL;
        if (cel__event_parse(msgs[i].body, msgs[i].len, &events) != CEL_OK) {
            CEL_DEBUG("client", "dropping an unreadable event message (routing key '%s')",
                      msgs[i].routing_key ? msgs[i].routing_key : "");
        } else {
            size_t k;
            json_t *ev;
            json_array_foreach(events, k, ev)
            {
                if (json_is_object(ev) &&
                    json_object_set_new(ev, "local_received", json_real(now)) == 0)
                    json_array_append(r->pending, ev);
            }
            json_decref(events);
        }
        cel__fanout_msg_release(&msgs[i]);
    }
    return CEL_OK;
}

/* Waits up to ms for the subscription to have something. */
static void wait_readable(struct cel_event_receiver *r, int64_t ms)
{
    const struct cel_broker_ops *bo = r->client->broker->ops;
    int fd = bo->fanout_fd ? bo->fanout_fd(r->sub) : -1;
    if (fd < 0) {
        struct timespec ts = {0, (long)(ms < NO_FD_POLL_MS ? ms : NO_FD_POLL_MS) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, (int)(ms > 60000 ? 60000 : ms));
    (void)rc; /* EINTR or a timeout: the caller looks again */
}

int cel_event_next(cel_event_receiver *r, int64_t timeout_ms, const char **event_json)
{
    if (!r || !event_json)
        return CEL_EINVAL;
    *event_json = NULL;
    cel_client *c = r->client;
    cel__err_clear(&c->err);
    int64_t deadline = cel__mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (r->next >= json_array_size(r->pending)) {
        if (r->next) {
            json_array_clear(r->pending);
            r->next = 0;
        }
        int rc = drain(r);
        if (rc != CEL_OK)
            return rc;
        if (json_array_size(r->pending))
            break;
        int64_t left = deadline - cel__mono_ms();
        if (left <= 0)
            return cel__err(&c->err, CEL_ETIMEDOUT, "no event within %lld ms",
                            (long long)timeout_ms);
        wait_readable(r, left);
    }
    free(r->current);
    /* 16 digits: microseconds of an epoch timestamp, and 4.92 stays 4.92
     * rather than 4.9199999999999999. */
    r->current =
        json_dumps(json_array_get(r->pending, r->next++), JSON_COMPACT | JSON_REAL_PRECISION(16));
    if (!r->current)
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    *event_json = r->current;
    return CEL_OK;
}
