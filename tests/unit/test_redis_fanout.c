/*
 * test_redis_fanout.c - fan-out on Redis (src/broker/redis_fanout.c)
 * against a real redis-server: every subscriber gets every message,
 * patterns filter, Celery 5.2's own tools (its event receiver and its
 * broadcast) interoperate on kombu's channel names, and a subscription
 * comes back after the server restarts.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <celeriac.h>

#include "broker/broker.h"
#include "core/base64.h"
#include "core/clock.h"
#include "redis_server.h"
#include "store_open.h"
#include "kombu_envelope.h"
#include "testing.h"

#define PYTHON "/usr/bin/python3" /* Debian's: the one with python3-celery */

static struct cel_test_redis srv;

static struct cel_broker *open_url(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(b->ops->fanout_publish && b->ops->fanout_subscribe && b->ops->fanout_poll &&
           b->ops->fanout_fd && b->ops->fanout_close);
    return b;
}

static struct cel_fanout_sub *subscribe(struct cel_broker *b, const char *exchange,
                                        const char *pattern)
{
    struct cel_fanout_sub *s = NULL;
    int rc = b->ops->fanout_subscribe(b, exchange, pattern, &s);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "subscribe %s %s: %s", exchange, pattern,
                      cel__broker_errmsg(b));
    return s;
}

static void publish(struct cel_broker *b, const char *exchange, const char *rk, const char *text)
{
    ASSERT_OK(b->ops->fanout_publish(b, exchange, rk, text, strlen(text)));
}

/* Collects messages from s until `want` arrived or timeout_ms passed,
 * sleeping on fanout_fd() as a loop thread would. Returns the count. */
static size_t collect(const struct cel_broker *b, struct cel_fanout_sub *s,
                      struct cel_fanout_msg *out, size_t want, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    while (got < want) {
        size_t n = 0;
        ASSERT_OK(b->ops->fanout_poll(s, out + got, want - got, &n));
        got += n;
        int64_t left = deadline - cel_test_now_ms();
        if (got >= want || left <= 0)
            break;
        if (n == 0) {
            struct pollfd p = {.fd = b->ops->fanout_fd(s), .events = POLLIN};
            poll(&p, 1, (int)left);
        }
    }
    return got;
}

static void release_all(struct cel_fanout_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cel__fanout_msg_release(&m[i]);
}

/* The number of pattern subscriptions the server holds. */
static long long numpat(void)
{
    redisContext *c = cel_test_redis_connect(&srv);
    if (!c)
        return -1;
    long long n = cel_test_redis_int(c, "PUBSUB NUMPAT");
    redisFree(c);
    return n;
}

static void test_every_subscriber_gets_every_message(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = open_url(srv.url);
    struct cel_fanout_sub *s1 = subscribe(b, "celeryev", "#");
    struct cel_fanout_sub *s2 = subscribe(b, "celeryev", "*");
    ASSERT(b->ops->fanout_fd(s1) >= 0 && b->ops->fanout_fd(s1) != b->ops->fanout_fd(s2));

    /* Nothing yet: poll returns at once and the fd is not readable. */
    struct cel_fanout_msg m[200];
    size_t n = 9;
    int64_t t0 = cel_test_now_ms();
    ASSERT_OK(b->ops->fanout_poll(s1, m, 10, &n));
    ASSERT_EQ(n, 0);
    ASSERT(cel_test_now_ms() - t0 < 50);
    struct pollfd p = {.fd = b->ops->fanout_fd(s1), .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, 0), 0);

    char text[64];
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof text, "{\"n\": %d}", i);
        publish(b, "celeryev", i % 3 ? "worker.heartbeat" : "task.sent", text);
    }
    publish(b, "celeryev", "", "{\"n\": \"no routing key\"}");
    struct cel_fanout_sub *subs[] = {s1, s2};
    for (int k = 0; k < 2; k++) {
        ASSERT_EQ(collect(b, subs[k], m, 101, 5000), 101);
        for (int i = 0; i < 100; i++) {
            snprintf(text, sizeof text, "{\"n\": %d}", i);
            ASSERT_STREQ(m[i].body, text); /* in publish order */
            ASSERT_EQ(m[i].len, strlen(text));
            ASSERT_STREQ(m[i].exchange, "celeryev");
            ASSERT_STREQ(m[i].routing_key, i % 3 ? "worker.heartbeat" : "task.sent");
        }
        ASSERT_STREQ(m[100].routing_key, "");
        release_all(m, 101);
        ASSERT_EQ(collect(b, subs[k], m, 1, 100), 0); /* nothing twice */
    }
    ASSERT_EQ(poll(&p, 1, 0), 0);
    b->ops->fanout_close(s1);
    b->ops->fanout_close(s2);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

static void test_patterns_and_exchanges(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = open_url(srv.url);
    struct cel_fanout_sub *workers = subscribe(b, "celeryev", "worker.#");
    struct cel_fanout_sub *sent = subscribe(b, "celeryev", "task.sent");
    struct cel_fanout_sub *none = subscribe(b, "celeryev", "");
    struct cel_fanout_sub *pidbox = subscribe(b, "celery.pidbox", "#");
    struct cel_fanout_sub *odd = subscribe(b, "ex[1]?", "a*");
    const char *rks[] = {"worker.heartbeat", "worker.online", "worker",
                         "task.sent",        "task.sent.x",   "",
                         "xworker.online"};
    for (size_t i = 0; i < 7; i++)
        publish(b, "celeryev", rks[i], rks[i]);
    publish(b, "celery.pidbox", "", "ping");
    publish(b, "celery", "", "not for celery.pidbox");
    publish(b, "ex[1]?", "abc", "odd");
    publish(b, "ex11x", "abc", "a glob, not the exchange");
    publish(b, "ex[1]?", "b", "not a*");

    struct cel_fanout_msg m[16];
    ASSERT_EQ(collect(b, workers, m, 16, 1000), 2);
    ASSERT_STREQ(m[0].routing_key, "worker.heartbeat");
    ASSERT_STREQ(m[1].routing_key, "worker.online");
    release_all(m, 2);
    ASSERT_EQ(collect(b, sent, m, 16, 300), 1);
    ASSERT_STREQ(m[0].body, "task.sent");
    release_all(m, 1);
    ASSERT_EQ(collect(b, none, m, 16, 300), 1);
    ASSERT_STREQ(m[0].routing_key, "");
    release_all(m, 1);
    ASSERT_EQ(collect(b, pidbox, m, 16, 300), 1);
    ASSERT_STREQ(m[0].exchange, "celery.pidbox");
    ASSERT_STREQ(m[0].body, "ping");
    release_all(m, 1);
    ASSERT_EQ(collect(b, odd, m, 16, 300), 1);
    ASSERT_STREQ(m[0].body, "odd");
    release_all(m, 1);

    /* The channels are kombu's: what a Python subscriber would bind. */
    redisContext *c = cel_test_redis_connect(&srv);
    redisReply *r = cel_test_redis_cmd(c, "PUBSUB NUMPAT");
    ASSERT_EQ(r->integer, 1 + 1 + 1 + 2 + 1); /* '#' also binds the bare exchange */
    freeReplyObject(r);
    redisFree(c);
    struct cel_fanout_sub *subs[] = {workers, sent, none, pidbox, odd};
    for (int i = 0; i < 5; i++)
        b->ops->fanout_close(subs[i]);
    ASSERT_EQ(numpat(), 0);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

/* A kombu envelope for an event, as a Python worker publishes it. */
static char *event_envelope(const char *type, const char *rk)
{
    char event[256];
    snprintf(event, sizeof event,
             "{\"hostname\": \"c@test\", \"utcoffset\": 0, \"pid\": 1, \"clock\": 7, "
             "\"freq\": 2.0, \"timestamp\": %.6f, \"type\": \"%s\"}",
             (double)cel__wall_us() / 1e6, type);
    return cel_test_kombu_envelope(event, "celeryev", rk, "c@test");
}

/* Python's Celery 5.2 event receiver (what `celery events` and flower
 * run) PSUBSCRIBEs kombu's /0.celeryev/ pattern and must decode our events. */
static const char receiver_py[] =
    "import sys\n"
    "from celery import Celery\n"
    "app = Celery(broker=sys.argv[1])\n"
    "want = int(sys.argv[2])\n"
    "got = []\n"
    "def on_event(ev):\n"
    "    got.append(ev)\n"
    "    print('EVENT', ev['type'], ev['hostname'], ev['clock'], flush=True)\n"
    "    recv.should_stop = len(got) >= want\n"
    "with app.connection_for_read() as conn:\n"
    "    recv = app.events.Receiver(conn, handlers={'*': on_event})\n"
    "    recv.capture(timeout=20, wakeup=False)\n"
    "print('DONE', len(got), flush=True)\n";

/* `celery inspect`-style broadcast: kombu PUBLISHes /0.celery.pidbox. */
static const char broadcast_py[] = "import sys\n"
                                   "from celery import Celery\n"
                                   "app = Celery(broker=sys.argv[1])\n"
                                   "app.control.broadcast('ping', arguments={}, reply=False)\n"
                                   "print('SENT', flush=True)\n";

static void test_celery_tools_interoperate(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = open_url(srv.url);
    char log[512];
    snprintf(log, sizeof log, "%s/receiver.log", cel_test_dir());
    char *argv[] = {(char *)PYTHON, (char *)"-c", (char *)receiver_py, srv.url, (char *)"2", NULL};
    pid_t pid = cel_test_spawn(argv, log);
    /* Subscribed once the server holds its pattern. */
    for (int i = 0; i < 1000 && numpat() < 1; i++)
        cel_test_sleep_ms(10);
    ASSERT_EQ(numpat(), 1);
    char *online = event_envelope("worker-online", "worker.online");
    char *beat = event_envelope("worker-heartbeat", "worker.heartbeat");
    publish(b, "celeryev", "worker.online", online);
    publish(b, "celeryev", "worker.heartbeat", beat);
    ASSERT_EQ(cel_test_wait(pid, 30000), 0);
    char *out = cel_test_read_file(log, NULL);
    ASSERT_CONTAINS(out, "EVENT worker-online c@test 7");
    ASSERT_CONTAINS(out, "EVENT worker-heartbeat c@test 7");
    ASSERT_CONTAINS(out, "DONE 2");
    free(out);
    free(online);
    free(beat);

    /* And the other way: our pidbox subscription gets Celery's broadcast. */
    struct cel_fanout_sub *s = subscribe(b, "celery.pidbox", "#");
    char *bargv[] = {(char *)PYTHON, (char *)"-c", (char *)broadcast_py, srv.url, NULL};
    char *py_out = NULL, *py_err = NULL;
    int st = cel_test_run(bargv, 30000, &py_out, &py_err);
    if (st != 0)
        cel_test_fail(__FILE__, __LINE__, "broadcast.py: %d %s", st, py_err);
    free(py_out);
    free(py_err);
    struct cel_fanout_msg m;
    ASSERT_EQ(collect(b, s, &m, 1, 5000), 1);
    ASSERT_STREQ(m.exchange, "celery.pidbox");
    ASSERT_STREQ(m.routing_key, "");
    json_t *env = json_loads(m.body, 0, NULL);
    ASSERT(env);
    const char *b64 = json_string_value(json_object_get(env, "body"));
    ASSERT(b64);
    size_t blen = 0;
    char *body = (char *)cel__base64_decode(b64, strlen(b64), &blen);
    ASSERT_CONTAINS(body, "\"method\": \"ping\"");
    free(body);
    json_decref(env);
    cel__fanout_msg_release(&m);
    b->ops->fanout_close(s);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

/* The server restarts: the subscription reconnects and subscribes again
 * by itself, and the publisher's connection comes back too. */
static void test_survives_server_restart(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = open_url(srv.url);
    struct cel_fanout_sub *s = subscribe(b, "celeryev", "worker.#");
    int fd = b->ops->fanout_fd(s);
    publish(b, "celeryev", "worker.online", "before");
    struct cel_fanout_msg m;
    ASSERT_EQ(collect(b, s, &m, 1, 3000), 1);
    ASSERT_STREQ(m.body, "before");
    cel__fanout_msg_release(&m);

    cel_test_redis_stop(&srv);
    cel_test_redis_start(&srv);
    for (int i = 0; i < 1000 && numpat() < 1; i++)
        cel_test_sleep_ms(10);
    ASSERT_EQ(numpat(), 1);
    publish(b, "celeryev", "worker.heartbeat", "after");
    ASSERT_EQ(collect(b, s, &m, 1, 5000), 1);
    ASSERT_STREQ(m.body, "after");
    ASSERT_STREQ(m.routing_key, "worker.heartbeat");
    cel__fanout_msg_release(&m);
    ASSERT_EQ(b->ops->fanout_fd(s), fd); /* the caller's fd never changes */
    ASSERT(cel_test_logged("broker.redis.fanout: connection to redis://127.0.0.1:"));
    ASSERT(cel_test_logged("broker.redis.fanout: reconnected to redis://127.0.0.1:"));

    /* A subscription lives apart from the handle: closing the handle
     * first leaves it working. */
    struct cel_broker *b2 = open_url(srv.url);
    cel__broker_close(b);
    publish(b2, "celeryev", "worker.offline", "handle gone");
    ASSERT_EQ(collect(b2, s, &m, 1, 3000), 1);
    ASSERT_STREQ(m.body, "handle gone");
    cel__fanout_msg_release(&m);
    b2->ops->fanout_close(s);

    /* Down at subscribe time: a prompt error that says where. */
    cel_test_redis_stop(&srv);
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(b2->ops->fanout_subscribe(b2, "celeryev", "#", &s), CEL_ECONNECT);
    ASSERT(!s);
    ASSERT(cel_test_now_ms() - t0 < 1000);
    ASSERT_CONTAINS(cel__broker_errmsg(b2), srv.url);
    cel__broker_close(b2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    cel_test_capture_logs(CEL_LOG_INFO);
    TEST_RUN(test_every_subscriber_gets_every_message);
    TEST_RUN(test_patterns_and_exchanges);
    TEST_RUN(test_celery_tools_interoperate);
    TEST_RUN(test_survives_server_restart);
    return 0;
}
