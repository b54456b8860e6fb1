/*
 * test_client_control.c - the client side of remote control and events
 * (celeriac/control.h) on memory://, with fake workers on threads that
 * answer the pidbox as a worker does (proto/control.h, broker mailboxes):
 *  - replies from every node are collected, each with its node name;
 *  - a destination limits who answers and ends the wait early;
 *  - a cast reaches the workers without ticket or reply mailbox;
 *  - nobody listening: no replies after the timeout, CEL_OK;
 *  - bad arguments and options are refused before anything is sent;
 *  - the event receiver hands out single events and task.multi batches
 *    one by one with local_received, and times out when none come;
 *  - queue lengths per band, and pause/resume stored, then broadcast and
 *    waited for: the worker has it when the call returns.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include <celeriac.h>
#include <celeriac/control.h>
#include <jansson.h>

#include "broker/broker.h"
#include "proto/control.h"
#include "proto/event.h"
#include "store_open.h"
#include "task_batch.h"
#include "testing.h"

struct fake_worker {
    char url[64];
    char node[64];
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests; /* addressed to this node */
    atomic_int casts;    /* of those, without a ticket */
    char last_method[64];
    char last_args[256];
    struct cel_broker *b;
    struct cel_fanout_sub *sub;
};

static void answer(struct fake_worker *w, const char *env, size_t len)
{
    struct cel_control_request req;
    if (cel__control_parse_request(env, len, w->node, &req) != CEL_OK)
        return;
    snprintf(w->last_method, sizeof w->last_method, "%s", req.method);
    char *args = json_dumps(req.arguments, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(w->last_args, sizeof w->last_args, "%s", args ? args : "");
    free(args);
    if (!req.ticket) {
        atomic_fetch_add(&w->casts, 1);
    } else {
        json_t *value = strcmp(req.method, "ping") == 0
                            ? json_pack("{s:s}", "ok", "pong")
                            : json_pack("{s:s}", "error", "unknown command");
        char *out;
        size_t outlen;
        if (cel__control_reply_envelope(w->node, value, req.ticket, req.reply_to, 1, &out,
                                        &outlen) == CEL_OK) {
            w->b->ops->mailbox_send(w->b, req.reply_to, out, outlen);
            free(out);
        }
        json_decref(value);
    }
    /* Counted after the reply, so a test that saw the count sees it all. */
    atomic_fetch_add(&w->requests, 1);
    cel__control_request_release(&req);
}

static void *worker_main(void *arg)
{
    struct fake_worker *w = arg;
    while (!atomic_load(&w->stop)) {
        struct pollfd p = {.fd = w->b->ops->fanout_fd(w->sub), .events = POLLIN};
        poll(&p, 1, 20);
        struct cel_fanout_msg m[8];
        size_t n = 0;
        if (w->b->ops->fanout_poll(w->sub, m, 8, &n) != CEL_OK)
            break;
        for (size_t i = 0; i < n; i++) {
            answer(w, m[i].body, m[i].len);
            cel__fanout_msg_release(&m[i]);
        }
    }
    return NULL;
}

static void worker_start(struct fake_worker *w, const char *url, const char *node)
{
    memset(w, 0, sizeof *w);
    snprintf(w->url, sizeof w->url, "%s", url);
    snprintf(w->node, sizeof w->node, "%s", node);
    w->b = cel_test_open_broker(url);
    ASSERT_OK(w->b->ops->fanout_subscribe(w->b, CEL_CONTROL_EXCHANGE, "#", &w->sub));
    ASSERT_OK(pthread_create(&w->thread, NULL, worker_main, w));
}

static void worker_stop(struct fake_worker *w)
{
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    w->b->ops->fanout_close(w->sub);
    cel__broker_close(w->b);
}

static bool has_reply(const cel_control_replies *r, const char *node, const char *json)
{
    for (size_t i = 0; i < cel_control_replies_count(r); i++)
        if (strcmp(cel_control_reply_node(r, i), node) == 0 &&
            strcmp(cel_control_reply_json(r, i), json) == 0)
            return true;
    return false;
}

static void test_replies_from_every_node(void)
{
    const char *url = "memory://ctl-all";
    cel_client *c = cel_test_client(url, NULL);
    struct fake_worker w1, w2;
    worker_start(&w1, url, "w1@test");
    worker_start(&w2, url, "w2@test");

    cel_control_replies *r = NULL;
    cel_control_options o = CEL_CONTROL_OPTIONS_INIT(.timeout = 0.5);
    int64_t t0 = cel_test_now_ms();
    ASSERT_OK(cel_control_call(c, "ping", NULL, &o, &r));
    int64_t took = cel_test_now_ms() - t0;
    ASSERT_EQ(cel_control_replies_count(r), 2);
    ASSERT(has_reply(r, "w1@test", "{\"ok\":\"pong\"}"));
    ASSERT(has_reply(r, "w2@test", "{\"ok\":\"pong\"}"));
    ASSERT(took >= 450); /* without a destination it waits the whole timeout */
    ASSERT(cel_control_reply_node(r, 2) == NULL);
    cel_control_replies_free(r);

    /* Arguments travel as given. */
    ASSERT_OK(cel_control_call(c, "rate_limit", "{\"task_name\":\"t.a\",\"rate_limit\":\"1/s\"}",
                               &o, &r));
    ASSERT_EQ(cel_control_replies_count(r), 2);
    ASSERT_CONTAINS(cel_control_reply_json(r, 0), "\"error\"");
    ASSERT_STREQ(w1.last_method, "rate_limit");
    ASSERT_STREQ(w1.last_args, "{\"rate_limit\":\"1/s\",\"task_name\":\"t.a\"}");
    cel_control_replies_free(r);

    worker_stop(&w1);
    worker_stop(&w2);
    cel_client_free(c);
}

static void test_destination_ends_the_wait(void)
{
    const char *url = "memory://ctl-dest";
    cel_client *c = cel_test_client(url, NULL);
    struct fake_worker w1, w2;
    worker_start(&w1, url, "w1@test");
    worker_start(&w2, url, "w2@test");

    const char *dest[] = {"w2@test"};
    cel_control_options o =
        CEL_CONTROL_OPTIONS_INIT(.timeout = 10, .destination = dest, .ndestination = 1);
    cel_control_replies *r = NULL;
    int64_t t0 = cel_test_now_ms();
    ASSERT_OK(cel_control_call(c, "ping", "{}", &o, &r));
    ASSERT(cel_test_now_ms() - t0 < 5000); /* the one named node answered: done */
    ASSERT_EQ(cel_control_replies_count(r), 1);
    ASSERT_STREQ(cel_control_reply_node(r, 0), "w2@test");
    cel_control_replies_free(r);
    ASSERT_EQ(atomic_load(&w1.requests), 0);

    worker_stop(&w1);
    worker_stop(&w2);
    cel_client_free(c);
}

static void test_cast(void)
{
    const char *url = "memory://ctl-cast";
    cel_client *c = cel_test_client(url, NULL);
    struct fake_worker w;
    worker_start(&w, url, "w1@test");
    cel_control_options o = CEL_CONTROL_OPTIONS_INIT(.cast = 1);
    ASSERT_OK(cel_control_call(c, "heartbeat", NULL, &o, NULL));
    int64_t deadline = cel_test_now_ms() + 10000;
    while (atomic_load(&w.casts) == 0 && cel_test_now_ms() < deadline)
        cel_test_sleep_ms(5);
    ASSERT_EQ(atomic_load(&w.casts), 1);
    ASSERT_STREQ(w.last_method, "heartbeat");
    worker_stop(&w);
    cel_client_free(c);
}

static void test_nobody_listening(void)
{
    cel_client *c = cel_test_client("memory://ctl-none", NULL);
    cel_control_replies *r = NULL;
    cel_control_options o = CEL_CONTROL_OPTIONS_INIT(.timeout = 0.2);
    int64_t t0 = cel_test_now_ms();
    ASSERT_OK(cel_control_call(c, "ping", NULL, &o, &r));
    ASSERT(cel_test_now_ms() - t0 >= 190);
    ASSERT_EQ(cel_control_replies_count(r), 0);
    cel_control_replies_free(r);
    cel_client_free(c);
}

static void test_refusals(void)
{
    cel_client *c = cel_test_client("memory://ctl-bad", NULL);
    cel_control_replies *r = NULL;
    ASSERT_EQ(cel_control_call(c, "ping", "[1]", NULL, &r), CEL_EINVAL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "JSON object");
    ASSERT_EQ(cel_control_call(c, "ping", "{nope", NULL, &r), CEL_EINVAL);
    ASSERT_EQ(cel_control_call(c, "", NULL, NULL, &r), CEL_EINVAL);
    cel_control_options o = CEL_CONTROL_OPTIONS_INIT(.timeout = -1);
    ASSERT_EQ(cel_control_call(c, "ping", NULL, &o, &r), CEL_EINVAL);
    const char *dest[] = {""};
    cel_control_options o2 = CEL_CONTROL_OPTIONS_INIT(.destination = dest, .ndestination = 1);
    ASSERT_EQ(cel_control_call(c, "ping", NULL, &o2, &r), CEL_EINVAL);
    ASSERT_EQ(cel_control_call(c, "ping", NULL, NULL, NULL), CEL_EINVAL); /* replies nowhere */
    ASSERT(r == NULL);
    cel_client_free(c);

    cel_client *off = cel_client_new(NULL);
    ASSERT_EQ(cel_control_call(off, "ping", NULL, NULL, &r), CEL_ESTATE);
    cel_client_free(off);
}

static void publish_event(struct cel_broker *b, json_t *ev_or_batch)
{
    char *env;
    size_t len;
    const char *rk;
    ASSERT_OK(cel__event_envelope(ev_or_batch, "w1@test", &env, &len, &rk));
    ASSERT_OK(b->ops->fanout_publish(b, CEL_EVENT_EXCHANGE, rk, env, len));
    free(env);
    json_decref(ev_or_batch);
}

static void test_event_receiver(void)
{
    const char *url = "memory://ctl-events";
    cel_client *c = cel_test_client(url, NULL);
    struct cel_broker *b = cel_test_open_broker(url);
    cel_event_receiver *r = NULL;
    ASSERT_OK(cel_event_receiver_open(c, NULL, &r));
    const char *ev = NULL;
    ASSERT_EQ(cel_event_next(r, 0, &ev), CEL_ETIMEDOUT);
    ASSERT(ev == NULL);

    int64_t now = (int64_t)cel_test_now_ms() * 1000;
    publish_event(b, cel__event_new("worker-online", "w1@test", 42, 1, now));
    json_t *batch = json_array();
    for (int i = 0; i < 3; i++) {
        json_t *t =
            cel__event_new(i == 2 ? "task-succeeded" : "task-received", "w1@test", 42, 2 + i, now);
        json_object_set_new(t, "uuid", json_sprintf("id-%d", i));
        json_array_append_new(batch, t);
    }
    publish_event(b, batch);

    const char *want[] = {"worker-online", "task-received", "task-received", "task-succeeded"};
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(cel_event_next(r, 5000, &ev));
        json_t *v = json_loads(ev, 0, NULL);
        ASSERT(v);
        ASSERT_STREQ(json_string_value(json_object_get(v, "type")), want[i]);
        ASSERT_STREQ(json_string_value(json_object_get(v, "hostname")), "w1@test");
        ASSERT(json_is_real(json_object_get(v, "local_received")));
        json_decref(v);
    }
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(cel_event_next(r, 150, &ev), CEL_ETIMEDOUT);
    ASSERT(cel_test_now_ms() - t0 >= 140);

    /* A pattern selects routing keys. */
    cel_event_receiver *workers = NULL;
    ASSERT_OK(cel_event_receiver_open(c, "worker.#", &workers));
    json_t *t = cel__event_new("task-started", "w1@test", 42, 9, now);
    json_object_set_new(t, "uuid", json_string("id-9"));
    publish_event(b, t);
    publish_event(b, cel__event_new("worker-heartbeat", "w1@test", 42, 10, now));
    ASSERT_OK(cel_event_next(workers, 5000, &ev));
    ASSERT_CONTAINS(ev, "\"worker-heartbeat\"");
    ASSERT_EQ(cel_event_next(workers, 0, &ev), CEL_ETIMEDOUT);

    cel_event_receiver_free(workers);
    cel_event_receiver_free(r);
    cel__broker_close(b);
    cel_client_free(c);
}

static void test_queue_bands_and_pause(void)
{
    const char *url = "memory://ctl-queues";
    cel_client *c = cel_test_client(url, NULL);
    for (int p = 0; p < 3; p++) {
        cel_send_options o =
            CEL_SEND_OPTIONS_INIT(.queue = "q1", .has_priority = 1, .priority = p == 2 ? 9 : 0);
        ASSERT_OK(cel_client_send(c, "t.x", NULL, NULL, &o, NULL));
    }
    size_t len = 0, n = 0;
    ASSERT_OK(cel_client_queue_length(c, "q1", &len));
    ASSERT_EQ(len, 3);
    cel_queue_band bands[4];
    ASSERT_OK(cel_client_queue_bands(c, "q1", bands, 4, &n));
    ASSERT_EQ(n, 2);
    ASSERT_EQ(bands[0].priority, 0);
    ASSERT_EQ(bands[0].length, 2);
    ASSERT_EQ(bands[1].priority, 9);
    ASSERT_EQ(bands[1].length, 1);
    ASSERT_OK(cel_client_queue_bands(c, "empty", bands, 4, &n));
    ASSERT_EQ(n, 0);
    ASSERT_EQ(cel_client_queue_length(c, "", &len), CEL_EINVAL);

    struct fake_worker w;
    worker_start(&w, url, "w1@test");
    ASSERT_OK(cel_client_queue_pause(c, "q1", 1));
    char **names = NULL;
    ASSERT_OK(cel_client_paused_queues(c, &names, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(names[0], "q1");
    cel_client_names_free(names, n);
    /* The pause waited for the worker's reply: it has seen it already. */
    ASSERT_EQ(atomic_load(&w.requests), 1);
    ASSERT_EQ(atomic_load(&w.casts), 0);
    ASSERT_STREQ(w.last_method, "celeriac_queue_pause");
    ASSERT_STREQ(w.last_args, "{\"paused\":true,\"queue\":\"q1\"}");
    ASSERT_OK(cel_client_queue_pause(c, "q1", 0));
    ASSERT_OK(cel_client_paused_queues(c, &names, &n));
    ASSERT_EQ(n, 0);
    cel_client_names_free(names, n);
    worker_stop(&w);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_replies_from_every_node);
    TEST_RUN(test_destination_ends_the_wait);
    TEST_RUN(test_cast);
    TEST_RUN(test_nobody_listening);
    TEST_RUN(test_refusals);
    TEST_RUN(test_event_receiver);
    TEST_RUN(test_queue_bands_and_pause);
    return 0;
}
