/*
 * test_mailbox_celery.c - reply mailboxes on Redis against Python Celery
 * 5.2.6 itself, both ways (reference/celery-protocol.md, sections 9.2 to
 * 9.4):
 *
 *   - our mailbox hears a Python worker: we open a mailbox, broadcast a
 *     pidbox `ping` naming it as reply_to (fanout_publish), and take the
 *     worker's pong from it;
 *   - Python's client hears our mailbox_send: `celery inspect ping`
 *     broadcasts, we read the request from our pidbox subscription and
 *     answer with mailbox_send, and the CLI prints our pong.
 *
 * Envelopes are built and read here by hand, from the captured wire
 * format, so the test depends on nothing but the broker layer.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <poll.h>

#include <celeriac.h>

#include "broker/broker.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/uuid.h"
#include "redis_server.h"
#include "store_open.h"
#include "testing.h"

#define PYTHON "/usr/bin/python3" /* Debian's: the one with python3-celery */

static struct cel_test_redis srv;

/* A kombu envelope around `body` (JSON, base64-encoded as kombu does). */
static char *envelope(const json_t *body, json_t *headers, const char *exchange,
                      const char *routing_key, int delivery_mode)
{
    char *text = json_dumps(body, JSON_COMPACT);
    ASSERT(text);
    char *b64 = malloc(cel__base64_encoded_len(strlen(text)) + 1);
    ASSERT(b64);
    cel__base64_encode((const unsigned char *)text, strlen(text), b64);
    char tag[CEL_UUID_STRLEN + 1];
    cel__uuid4(tag);
    json_t *env = json_pack("{s:s, s:s, s:s, s:o, s:{s:i, s:{s:s, s:s}, s:i, s:s, s:s}}", "body",
                            b64, "content-encoding", "utf-8", "content-type", "application/json",
                            "headers", headers, "properties", "delivery_mode", delivery_mode,
                            "delivery_info", "exchange", exchange, "routing_key", routing_key,
                            "priority", 0, "body_encoding", "base64", "delivery_tag", tag);
    ASSERT(env);
    char *out = json_dumps(env, 0);
    ASSERT(out);
    json_decref(env);
    free(b64);
    free(text);
    return out;
}

/* The decoded body of an envelope, and its headers (borrowed from *env,
 * which the caller decrefs). */
static json_t *open_envelope(const char *text, json_t **env, json_t **headers)
{
    *env = json_loads(text, 0, NULL);
    ASSERT(*env);
    *headers = json_object_get(*env, "headers");
    const char *b64 = json_string_value(json_object_get(*env, "body"));
    ASSERT(b64);
    size_t n = 0;
    char *raw = (char *)cel__base64_decode(b64, strlen(b64), &n);
    ASSERT(raw);
    json_t *body = json_loadb(raw, n, 0, NULL);
    free(raw);
    ASSERT(body);
    return body;
}

static bool python_worker_bound(redisContext *c, const char *node)
{
    char member[256];
    int n = snprintf(member, sizeof member, "\x06\x16\x06\x16%s.celery.pidbox", node);
    return cel_test_redis_int(c, "SISMEMBER _kombu.binding.celery.pidbox %b", member, (size_t)n) ==
           1;
}

/* A Python worker (solo pool, nothing but the pidbox to talk about). */
static const char worker_py[] =
    "import sys\n"
    "from celery import Celery\n"
    "app = Celery(broker=sys.argv[1])\n"
    "app.worker_main(['worker', '--pool=solo', '-n', sys.argv[2], '--without-mingle',\n"
    "                 '--without-gossip', '--without-heartbeat', '-l', 'info'])\n";

static void test_our_mailbox_hears_a_python_worker(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = cel_test_open_broker(srv.url);
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    char log[512];
    snprintf(log, sizeof log, "%s/worker.log", cel_test_dir());
    char *argv[] = {(char *)PYTHON, (char *)"-c",      (char *)worker_py,
                    srv.url,        (char *)"py@test", NULL};
    pid_t pid = cel_test_spawn(argv, log);
    /* Its pidbox queue is declared once it consumes broadcasts. */
    int64_t until = cel_test_now_ms() + 30000;
    while (!python_worker_bound(c, "py@test") && cel_test_now_ms() < until)
        cel_test_sleep_ms(20);
    if (!python_worker_bound(c, "py@test")) {
        cel_test_print_tail("python worker", log, 30);
        cel_test_fail(__FILE__, __LINE__, "the Python worker never bound its pidbox queue");
    }

    char oid[CEL_UUID_STRLEN + 1];
    cel__uuid4(oid);
    struct cel_mailbox *m = NULL;
    ASSERT_OK(b->ops->mailbox_open(b, oid, &m));

    /* The binding may come a moment before the worker's subscription:
     * ask again (with a new ticket) until it answers, for a bounded time. */
    char *reply = NULL;
    size_t len = 0;
    char ticket[CEL_UUID_STRLEN + 1];
    for (int attempt = 0; attempt < 10 && !reply; attempt++) {
        cel__uuid4(ticket);
        json_t *body =
            json_pack("{s:s, s:{}, s:[s], s:n, s:n, s:s, s:{s:s, s:s}}", "method", "ping",
                      "arguments", "destination", "py@test", "pattern", "matcher", "ticket", ticket,
                      "reply_to", "exchange", "reply.celery.pidbox", "routing_key", oid);
        json_t *headers =
            json_pack("{s:i, s:f}", "clock", 1, "expires", (double)cel__wall_us() / 1e6 + 10);
        char *req = envelope(body, headers, "celery.pidbox", "", 2);
        ASSERT_OK(b->ops->fanout_publish(b, "celery.pidbox", "", req, strlen(req)));
        free(req);
        json_decref(body);
        int rc = b->ops->mailbox_take(m, 3000, &reply, &len);
        ASSERT(rc == CEL_OK || rc == CEL_ETIMEDOUT);
    }
    if (!reply) {
        cel_test_print_tail("python worker", log, 30);
        cel_test_fail(__FILE__, __LINE__, "no reply from the Python worker");
    }
    json_t *env = NULL, *headers = NULL;
    json_t *body = open_envelope(reply, &env, &headers);
    /* A late answer to an earlier attempt carries that attempt's ticket;
     * every answer is a pong from py@test either way. */
    ASSERT(json_string_value(json_object_get(headers, "ticket")));
    char *text = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);
    ASSERT_STREQ(text, "{\"py@test\":{\"ok\":\"pong\"}}");
    json_t *info = json_object_get(json_object_get(env, "properties"), "delivery_info");
    ASSERT_STREQ(json_string_value(json_object_get(info, "exchange")), "reply.celery.pidbox");
    ASSERT_STREQ(json_string_value(json_object_get(info, "routing_key")), oid);
    free(text);
    json_decref(body);
    json_decref(env);
    free(reply);

    b->ops->mailbox_close(m);
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS _kombu.binding.reply.celery.pidbox"), 0);
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS %s.reply.celery.pidbox", oid), 0);
    cel_test_kill(pid);
    redisFree(c);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

/* Waits up to timeout_ms for one message on s. */
static bool next_request(struct cel_broker *b, struct cel_fanout_sub *s, struct cel_fanout_msg *m,
                         int timeout_ms)
{
    int64_t until = cel_test_now_ms() + timeout_ms;
    for (;;) {
        size_t n = 0;
        ASSERT_OK(b->ops->fanout_poll(s, m, 1, &n));
        int64_t left = until - cel_test_now_ms();
        if (n == 1)
            return true;
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = b->ops->fanout_fd(s), .events = POLLIN};
        poll(&p, 1, (int)left);
    }
}

static void test_celery_inspect_hears_our_mailbox_send(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = cel_test_open_broker(srv.url);
    struct cel_fanout_sub *s = NULL;
    ASSERT_OK(b->ops->fanout_subscribe(b, "celery.pidbox", "#", &s));
    char log[512];
    snprintf(log, sizeof log, "%s/inspect.log", cel_test_dir());
    char *argv[] = {(char *)PYTHON,
                    (char *)"-m",
                    (char *)"celery",
                    (char *)"-b",
                    srv.url,
                    (char *)"inspect",
                    (char *)"ping",
                    (char *)"--destination",
                    (char *)"c@test",
                    (char *)"--timeout",
                    (char *)"10",
                    (char *)"--json",
                    NULL};
    pid_t pid = cel_test_spawn(argv, log);

    struct cel_fanout_msg msg;
    if (!next_request(b, s, &msg, 30000)) {
        cel_test_print_tail("celery inspect ping", log, 30);
        cel_test_fail(__FILE__, __LINE__, "no broadcast from celery inspect ping");
    }
    json_t *env = NULL, *headers = NULL;
    json_t *req = open_envelope(msg.body, &env, &headers);
    ASSERT_STREQ(json_string_value(json_object_get(req, "method")), "ping");
    const char *ticket = json_string_value(json_object_get(req, "ticket"));
    const char *oid =
        json_string_value(json_object_get(json_object_get(req, "reply_to"), "routing_key"));
    ASSERT(ticket && oid);

    json_t *body = json_pack("{s:{s:s}}", "c@test", "ok", "pong");
    json_t *rh = json_pack("{s:s, s:i}", "ticket", ticket, "clock", 3);
    char *reply = envelope(body, rh, "reply.celery.pidbox", oid, 1);
    ASSERT_OK(b->ops->mailbox_send(b, oid, reply, strlen(reply)));
    int64_t sent = cel_test_now_ms();
    /* The CLI returns as soon as the one destination answered, well
     * before its 10 s timeout. */
    ASSERT_EQ(cel_test_wait(pid, 20000), 0);
    int64_t took = cel_test_now_ms() - sent;
    fprintf(stderr, "celery inspect ping exited %lld ms after our reply\n", (long long)took);
    ASSERT(took < 8000);
    char *out = cel_test_read_file(log, NULL);
    json_t *printed = NULL;
    const char *brace = out ? strchr(out, '{') : NULL;
    if (brace)
        printed = json_loads(brace, JSON_DISABLE_EOF_CHECK, NULL);
    if (!printed)
        cel_test_fail(__FILE__, __LINE__, "celery inspect printed no JSON: %s", out);
    char *text = json_dumps(printed, JSON_SORT_KEYS | JSON_COMPACT);
    ASSERT_STREQ(text, "{\"c@test\":{\"ok\":\"pong\"}}");

    /* The client unbound and deleted its reply list on the way out. */
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS _kombu.binding.reply.celery.pidbox"), 0);
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS %s.reply.celery.pidbox", oid), 0);
    /* A reply after the client left is dropped and leaves no list. */
    ASSERT_OK(b->ops->mailbox_send(b, oid, reply, strlen(reply)));
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS %s.reply.celery.pidbox", oid), 0);
    redisFree(c);

    free(text);
    json_decref(printed);
    free(out);
    free(reply);
    json_decref(body);
    json_decref(req);
    json_decref(env);
    cel__fanout_msg_release(&msg);
    b->ops->fanout_close(s);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

int main(void)
{
    TEST_RUN(test_our_mailbox_hears_a_python_worker);
    TEST_RUN(test_celery_inspect_hears_our_mailbox_send);
    return 0;
}
