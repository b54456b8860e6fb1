/*
 * test_control.c - Celery's broadcast control messages (proto/control.h):
 * revokes and any request we send read back, Python's shapes (captured
 * envelopes) are understood, the selection rule is Celery's, replies
 * carry the ticket they answer and are told apart by it.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "celeriac/error.h"
#include "core/base64.h"
#include "core/clock.h"
#include "proto/control.h"
#include "testing.h"

/* A kombu envelope around `body` (base64), as Python's Mailbox sends it. */
static char *envelope(const char *body)
{
    size_t n = strlen(body);
    char *b64 = malloc(cel__base64_encoded_len(n) + 1);
    cel__base64_encode((const unsigned char *)body, n, b64);
    json_t *e = json_pack("{s:s, s:{s:i}, s:{s:s}}", "body", b64, "headers", "clock", 3,
                          "properties", "body_encoding", "base64");
    char *text = json_dumps(e, 0);
    json_decref(e);
    free(b64);
    return text;
}

static void test_round_trip(void)
{
    const char *ids[] = {"id-1", "id-2"};
    char *env;
    size_t len;
    ASSERT_OK(cel__control_revoke_envelope(ids, 2, true, SIGUSR1, 1234500000, &env, &len));
    ASSERT_CONTAINS(env, "\"exchange\": \"celery.pidbox\"");
    struct cel_control_revoke r;
    ASSERT_OK(cel__control_parse_revoke(env, len, "w@host", &r));
    ASSERT_EQ(r.n, 2);
    ASSERT_STREQ(r.ids[1], "id-2");
    ASSERT(r.terminate);
    ASSERT_EQ(r.signum, SIGUSR1);
    ASSERT_EQ(r.expires_us, 1234500000);
    cel__control_revoke_release(&r);
    free(env);
}

static void test_python_shapes(void)
{
    struct cel_control_revoke r;
    /* app.control.revoke(id): one id as a string, no expiry of ours. */
    char *env = envelope("{\"method\": \"revoke\", \"arguments\": {\"task_id\": \"x\", "
                         "\"terminate\": false, \"signal\": \"SIGTERM\"}, \"destination\": "
                         "null, \"pattern\": null, \"matcher\": null}");
    ASSERT_OK(cel__control_parse_revoke(env, strlen(env), "w@host", &r));
    ASSERT_EQ(r.n, 1);
    ASSERT_STREQ(r.ids[0], "x");
    ASSERT(!r.terminate);
    ASSERT_EQ(r.expires_us, 0);
    cel__control_revoke_release(&r);
    free(env);
    /* celery control terminate KILL id */
    env = envelope("{\"method\": \"terminate\", \"arguments\": {\"signal\": \"KILL\", "
                   "\"task_id\": [\"y\"]}}");
    ASSERT_OK(cel__control_parse_revoke(env, strlen(env), "w@host", &r));
    ASSERT(r.terminate);
    ASSERT_EQ(r.signum, SIGKILL);
    cel__control_revoke_release(&r);
    free(env);
}

static void test_selection(void)
{
    struct cel_control_revoke r;
    const char *cases[][2] = {
        {"{\"method\": \"revoke\", \"arguments\": {\"task_id\": [\"x\"]}, \"destination\": "
         "[\"other@host\"]}",
         "n"},
        {"{\"method\": \"revoke\", \"arguments\": {\"task_id\": [\"x\"]}, \"destination\": "
         "[\"other@host\", \"w@host\"]}",
         "y"},
        {"{\"method\": \"revoke\", \"arguments\": {\"task_id\": [\"x\"]}, \"pattern\": \"w@*\", "
         "\"matcher\": \"glob\"}",
         "y"},
        {"{\"method\": \"revoke\", \"arguments\": {\"task_id\": [\"x\"]}, \"pattern\": "
         "\"^z.*\", \"matcher\": \"pcre\"}",
         "n"},
        {"{\"method\": \"ping\", \"arguments\": {}}", "n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *env = envelope(cases[i][0]);
        int rc = cel__control_parse_revoke(env, strlen(env), "w@host", &r);
        ASSERT_EQ(rc, cases[i][1][0] == 'y' ? CEL_OK : CEL_ENOTFOUND);
        cel__control_revoke_release(&r);
        free(env);
    }
    ASSERT_EQ(cel__control_parse_revoke("not json", 8, "w@host", &r), CEL_EPROTO);
}

static void test_signals(void)
{
    ASSERT_EQ(cel__signal_parse("SIGTERM"), SIGTERM);
    ASSERT_EQ(cel__signal_parse("term"), SIGTERM);
    ASSERT_EQ(cel__signal_parse("9"), 9);
    ASSERT_EQ(cel__signal_parse("FOO"), 0);
    ASSERT_EQ(cel__signal_parse(""), 0);
}

/* `celery inspect ping` as captured (protocol.md 9.2). */
static const char captured_ping[] =
    "{\"body\": "
    "\"eyJtZXRob2QiOiAicGluZyIsICJhcmd1bWVudHMiOiB7fSwgImRlc3RpbmF0aW9uIjogbnVsbCwgInBhdHRlcm4iOi"
    "BudWxsLCAibWF0Y2hlciI6IG51bGwsICJ0aWNrZXQiOiAiNzBjNWQyNzYtNzliNi00OTkwLWE1NzctMDIwMzc0NzgzY2"
    "NmIiwgInJlcGx5X3RvIjogeyJleGNoYW5nZSI6ICJyZXBseS5jZWxlcnkucGlkYm94IiwgInJvdXRpbmdfa2V5IjogIj"
    "FiZTQ4MTdlLTkyZGUtM2ZjMy04YTAxLWFhY2NlOTUzNTAzYyJ9fQ==\", \"content-encoding\": "
    "\"utf-8\", \"content-type\": \"application/json\", \"headers\": {\"clock\": 1, "
    "\"expires\": 1795802971.748223}, \"properties\": {\"delivery_mode\": 2, "
    "\"delivery_info\": {\"exchange\": \"celery.pidbox\", \"routing_key\": \"\"}, "
    "\"priority\": 0, \"body_encoding\": \"base64\", \"delivery_tag\": "
    "\"9c8f7cfd-47e6-4473-8f45-74fce7b45a3c\"}}";

/* A captured reply to that ping from w1@vm (protocol.md 9.3). */
static const char captured_pong[] =
    "{\"body\": \"eyJ3MUB2bSI6IHsib2siOiAicG9uZyJ9fQ==\", \"content-encoding\": \"utf-8\", "
    "\"content-type\": \"application/json\", \"headers\": {\"ticket\": "
    "\"70c5d276-79b6-4990-a577-020374783ccf\", \"clock\": 3}, \"properties\": "
    "{\"delivery_mode\": 1, \"delivery_info\": {\"exchange\": \"reply.celery.pidbox\", "
    "\"routing_key\": \"1be4817e-92de-3fc3-8a01-aacce953503c\"}, \"priority\": 0, "
    "\"body_encoding\": \"base64\", \"delivery_tag\": "
    "\"eb3c8072-d09c-438f-91a0-81752e78d1d3\"}}";

static void test_request_captured(void)
{
    struct cel_control_request r;
    ASSERT_OK(cel__control_parse_request(captured_ping, strlen(captured_ping), "w1@vm", &r));
    ASSERT_STREQ(r.method, "ping");
    ASSERT(json_is_object(r.arguments) && json_object_size(r.arguments) == 0);
    ASSERT_STREQ(r.ticket, "70c5d276-79b6-4990-a577-020374783ccf");
    ASSERT_STREQ(r.reply_to, "1be4817e-92de-3fc3-8a01-aacce953503c");
    ASSERT_EQ(r.clock, 1);
    ASSERT_EQ(r.expires_us, 1795802971748223);
    cel__control_request_release(&r);
    ASSERT(r.method == NULL);
}

static void test_request_round_trip(void)
{
    const char *dest[] = {"a@h", "b@h"};
    json_t *args = json_pack("{s:s, s:s}", "task_name", "app.add", "rate_limit", "10/m");
    char *env;
    size_t len;
    ASSERT_OK(cel__control_request_envelope("rate_limit", args, dest, 2, "tick-1", "oid-1", 2.5, 42,
                                            &env, &len));
    ASSERT_EQ(len, strlen(env));
    struct cel_control_request r;
    ASSERT_EQ(cel__control_parse_request(env, len, "c@h", &r), CEL_ENOTFOUND);
    ASSERT_OK(cel__control_parse_request(env, len, "b@h", &r));
    ASSERT_STREQ(r.method, "rate_limit");
    ASSERT(json_equal(r.arguments, args));
    ASSERT_STREQ(r.ticket, "tick-1");
    ASSERT_STREQ(r.reply_to, "oid-1");
    ASSERT_EQ(r.clock, 42);
    /* now + 2.5 s, give or take the test's own time */
    int64_t left = r.expires_us - cel__wall_us();
    ASSERT(left > 1500000 && left <= 2500000);
    cel__control_request_release(&r);
    free(env);
    json_decref(args);

    /* A cast to everyone: no ticket, no reply_to, no expiry; the body
     * says so in Celery's words (destination null, arguments {}). */
    ASSERT_OK(
        cel__control_request_envelope("heartbeat", NULL, NULL, 0, NULL, NULL, 0, 7, &env, &len));
    json_t *e = json_loads(env, 0, NULL);
    ASSERT(json_is_integer(json_object_get(json_object_get(e, "headers"), "expires")));
    json_decref(e);
    ASSERT_OK(cel__control_parse_request(env, len, "anyone@h", &r));
    ASSERT_STREQ(r.method, "heartbeat");
    ASSERT(r.ticket == NULL && r.reply_to == NULL);
    ASSERT_EQ(r.expires_us, 0);
    ASSERT_EQ(json_object_size(r.arguments), 0);
    cel__control_request_release(&r);
    free(env);

    /* A ticket needs a mailbox and the other way round; arguments are an
     * object. */
    ASSERT_EQ(cel__control_request_envelope("ping", NULL, NULL, 0, "t", NULL, 1, 1, &env, &len),
              CEL_EINVAL);
    json_t *list = json_array();
    ASSERT_EQ(cel__control_request_envelope("ping", list, NULL, 0, NULL, NULL, 1, 1, &env, &len),
              CEL_EINVAL);
    json_decref(list);
}

static void test_request_malformed(void)
{
    struct cel_control_request r;
    const char *bad[] = {
        "{\"arguments\": {}}",                        /* no method */
        "{\"method\": 3}",                            /* not a name */
        "{\"method\": \"ping\", \"arguments\": [1]}", /* arguments not an object */
        "[1, 2]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *env = envelope(bad[i]);
        ASSERT_EQ(cel__control_parse_request(env, strlen(env), "w@h", &r), CEL_EPROTO);
        ASSERT(r.method == NULL && r.arguments == NULL);
        free(env);
    }
    ASSERT_EQ(cel__control_parse_request("{", 1, "w@h", &r), CEL_EPROTO);
    /* A ticket without a mailbox to answer in is a cast; arguments null
     * is {}. */
    char *env = envelope("{\"method\": \"ping\", \"arguments\": null, \"ticket\": \"t\"}");
    ASSERT_OK(cel__control_parse_request(env, strlen(env), "w@h", &r));
    ASSERT(r.ticket == NULL);
    ASSERT(json_is_object(r.arguments));
    cel__control_request_release(&r);
    free(env);
    /* An absurd pattern selects no one rather than costing the regex
     * compiler. */
    char big[2100];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    json_t *b = json_pack("{s:s, s:s, s:s}", "method", "ping", "pattern", big, "matcher", "pcre");
    char *text = json_dumps(b, 0);
    env = envelope(text);
    ASSERT_EQ(cel__control_parse_request(env, strlen(env), big, &r), CEL_ENOTFOUND);
    free(env);
    free(text);
    json_decref(b);
}

static void test_reply(void)
{
    char *node;
    json_t *v;
    ASSERT_OK(cel__control_parse_reply(captured_pong, strlen(captured_pong),
                                       "70c5d276-79b6-4990-a577-020374783ccf", &node, &v));
    ASSERT_STREQ(node, "w1@vm");
    ASSERT_STREQ(json_string_value(json_object_get(v, "ok")), "pong");
    free(node);
    json_decref(v);
    ASSERT_EQ(cel__control_parse_reply(captured_pong, strlen(captured_pong), "other", &node, &v),
              CEL_ENOTFOUND);
    ASSERT(node == NULL && v == NULL);

    json_t *value = json_pack("[s, s]", "a", "b");
    char *env;
    size_t len;
    ASSERT_OK(cel__control_reply_envelope("w@h", value, "tick", "oid", 9, &env, &len));
    json_t *e = json_loads(env, 0, NULL);
    ASSERT_STREQ(
        json_string_value(json_object_get(
            json_object_get(json_object_get(e, "properties"), "delivery_info"), "routing_key")),
        "oid");
    ASSERT_STREQ(
        json_string_value(json_object_get(
            json_object_get(json_object_get(e, "properties"), "delivery_info"), "exchange")),
        "reply.celery.pidbox");
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(e, "headers"), "clock")), 9);
    json_decref(e);
    ASSERT_OK(cel__control_parse_reply(env, len, "tick", &node, &v));
    ASSERT_STREQ(node, "w@h");
    ASSERT(json_equal(v, value));
    free(node);
    json_decref(v);
    /* NULL ticket: any reply (a collector of several calls). */
    ASSERT_OK(cel__control_parse_reply(env, len, NULL, &node, &v));
    free(node);
    json_decref(v);
    free(env);
    json_decref(value);
    /* A null result (heartbeat's) is a reply too. */
    ASSERT_OK(cel__control_reply_envelope("w@h", NULL, "tick", "oid", 1, &env, &len));
    ASSERT_OK(cel__control_parse_reply(env, len, "tick", &node, &v));
    ASSERT(json_is_null(v));
    free(node);
    json_decref(v);
    free(env);
    /* A request is not a reply. */
    ASSERT_EQ(cel__control_parse_reply(captured_ping, strlen(captured_ping), NULL, &node, &v),
              CEL_EPROTO);
}

int main(void)
{
    TEST_RUN(test_round_trip);
    TEST_RUN(test_python_shapes);
    TEST_RUN(test_selection);
    TEST_RUN(test_signals);
    TEST_RUN(test_request_captured);
    TEST_RUN(test_request_round_trip);
    TEST_RUN(test_request_malformed);
    TEST_RUN(test_reply);
    return 0;
}
