/*
 * test_control.c - Celery's revoke broadcast (proto/control.h): what we
 * send reads back, Python's shapes are understood, the selection rule is
 * Celery's, other methods are not revokes.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "celeriac/error.h"
#include "core/base64.h"
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

int main(void)
{
    TEST_RUN(test_round_trip);
    TEST_RUN(test_python_shapes);
    TEST_RUN(test_selection);
    TEST_RUN(test_signals);
    return 0;
}
