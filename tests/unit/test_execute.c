/* test_execute.c - outcomes of running a message, and their frames. */
#include <jansson.h>

#include "celeriac.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "proto/message.h"
#include "testing.h"
#include "worker/execute.h"

static int add(cel_task *t, void *userdata)
{
    (void)userdata;
    int64_t x, y;
    if (cel_task_arg_int(t, 0, &x) || cel_task_arg_int(t, 1, &y))
        return cel_task_fail_args(t);
    return cel_task_return_int(t, x + y);
}

static cel_registry *registry(void)
{
    cel_registry *reg = cel_registry_new();
    static const cel_task_def def = CEL_TASK_DEF_INIT(.name = "t.add", .fn = add);
    ASSERT_OK(cel_registry_add(reg, &def));
    return reg;
}

static char *build(const char *task, const char *args, int64_t eta_us, int64_t expires_us)
{
    struct cel_task_spec spec = {.task = task, .id = "id-1", .args_json = args};
    spec.eta_us = eta_us;
    spec.expires_us = expires_us;
    spec.priority = 5;
    char *out = NULL, err[128];
    size_t len;
    ASSERT_OK(cel__message_build(&spec, &out, &len, NULL, err, sizeof err));
    return out;
}

static void run(const cel_registry *reg, const char *envelope, struct cel_execution *ex)
{
    const struct cel_exec_env env = {.reg = reg, .hostname = "w@test", .acks_late = true};
    cel__execute(&env, NULL, envelope, strlen(envelope), ex);
}

static void test_success_and_type_error(void)
{
    cel_registry *reg = registry();
    char *env = build("t.add", "[2, 3]", 0, 0);
    struct cel_execution ex;
    run(reg, env, &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_RESULT);
    ASSERT_EQ(ex.state, CEL_STATE_SUCCESS);
    ASSERT_STREQ(ex.task_id, "id-1");
    ASSERT_CONTAINS(ex.meta, "\"status\": \"SUCCESS\", \"result\": 5,");
    cel__execution_release(&ex);
    free(env);

    env = build("t.add", "[2, \"x\"]", 0, 0);
    run(reg, env, &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_RESULT);
    ASSERT_EQ(ex.state, CEL_STATE_FAILURE);
    ASSERT_CONTAINS(ex.meta, "\"exc_type\": \"TypeError\"");
    cel__execution_release(&ex);
    free(env);
    cel_registry_free(reg);
}

static void test_unregistered_expired_deferred(void)
{
    cel_registry *reg = registry();
    struct cel_execution ex;
    char *env = build("t.nope", "[]", 0, 0);
    run(reg, env, &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_UNREGISTERED);
    ASSERT_CONTAINS(ex.meta, "NotRegistered");
    ASSERT_CONTAINS(ex.reason, "t.nope");
    cel__execution_release(&ex);
    free(env);

    int64_t now = cel__wall_us();
    env = build("t.add", "[1, 2]", 0, now - 1000000);
    run(reg, env, &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_RESULT);
    ASSERT_EQ(ex.state, CEL_STATE_REVOKED);
    ASSERT_CONTAINS(ex.meta, "TaskRevokedError");
    cel__execution_release(&ex);
    free(env);

    env = build("t.add", "[1, 2]", now + 60000000, 0);
    run(reg, env, &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_DEFER);
    ASSERT(ex.eta_us > now + 59000000);
    ASSERT_EQ(ex.priority, 5);
    ASSERT(ex.meta == NULL);
    cel__execution_release(&ex);
    free(env);
    cel_registry_free(reg);
}

static void test_malformed(void)
{
    cel_registry *reg = registry();
    struct cel_execution ex;
    run(reg, "garbage", &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_MALFORMED);
    ASSERT(ex.task_id == NULL && ex.meta == NULL);
    ASSERT(ex.reason[0]);
    cel__execution_release(&ex);

    /* Headers fine, body not base64: the id is recovered for the client. */
    const char *bad = "{\"body\": \"!!\", \"content-type\": \"application/json\","
                      " \"content-encoding\": \"utf-8\", \"headers\": {\"task\": \"t.add\","
                      " \"id\": \"bad-1\"}, \"properties\": {\"body_encoding\": \"base64\"}}";
    run(reg, bad, &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_MALFORMED);
    ASSERT_STREQ(ex.task_id, "bad-1");
    ASSERT_CONTAINS(ex.meta, "DecodeError");
    cel__execution_release(&ex);
    cel_registry_free(reg);
}

/* A good envelope for t.add with `path` ("content-type", "headers.eta",
 * ...) set to `value` (stolen; NULL: removed). Caller frees. */
static char *edited(const char *path, json_t *value)
{
    struct cel_task_spec spec = {.task = "t.add", .id = "bad-id", .args_json = "[1, 2]"};
    char *text = NULL, err[128];
    size_t len;
    ASSERT_OK(cel__message_build(&spec, &text, &len, NULL, err, sizeof err));
    json_t *root = json_loads(text, 0, NULL);
    ASSERT(root != NULL);
    free(text);
    json_t *obj = root;
    const char *key = path, *dot = strchr(path, '.');
    char head[32];
    if (dot) {
        snprintf(head, sizeof head, "%.*s", (int)(dot - path), path);
        obj = json_object_get(root, head);
        key = dot + 1;
    }
    if (value)
        ASSERT_OK(json_object_set_new(obj, key, value));
    else
        ASSERT_OK(json_object_del(obj, key));
    text = cel__json_dump(root);
    json_decref(root);
    return text;
}

/* Protocol 1: no task header; the body is a dict naming the task. */
static char *protocol_v1(void)
{
    const char *body = "{\"task\": \"t.add\", \"id\": \"v1-id\", \"args\": [1, 2], "
                       "\"kwargs\": {}, \"retries\": 0, \"eta\": null}";
    char *b64 = malloc(cel__base64_encoded_len(strlen(body)) + 1);
    ASSERT(b64 != NULL);
    cel__base64_encode((const unsigned char *)body, strlen(body), b64);
    char *env = edited("headers", json_object());
    json_t *root = json_loads(env, 0, NULL);
    free(env);
    ASSERT_OK(json_object_set_new(root, "body", json_string(b64)));
    free(b64);
    env = cel__json_dump(root);
    json_decref(root);
    return env;
}

/*
 * Every kind of bad message that carries a readable id is dead-lettered
 * AND fails its task, with the exception Celery 5.2.6 on kombu 5.2 raises
 * for it, so the client stops waiting.
 */
static void test_bad_messages_fail_their_task(void)
{
    cel_registry *reg = registry();
    struct {
        const char *what;
        char *envelope;
        const char *id, *exc_type, *exc_module;
    } cases[] = {
        {"pickle", edited("content-type", json_string("application/x-python-serialize")), "bad-id",
         "ContentDisallowed", "kombu.exceptions"},
        {"yaml", edited("content-type", json_string("application/x-yaml")), "bad-id",
         "ContentDisallowed", "kombu.exceptions"},
        {"unknown content type", edited("content-type", json_string("text/plain")), "bad-id",
         "ContentDisallowed", "kombu.exceptions"},
        /* kombu passes untyped text through; Celery then fails to unpack
         * it as (args, kwargs, embed) */
        {"no content type", edited("content-type", NULL), "bad-id", "ValueError", "builtins"},
        {"bad eta", edited("headers.eta", json_string("not-a-date")), "bad-id", "InvalidTaskError",
         "celery.exceptions"},
        {"eta a number", edited("headers.eta", json_integer(5)), "bad-id", "InvalidTaskError",
         "celery.exceptions"},
        {"bad expires", edited("headers.expires", json_string("soon")), "bad-id",
         "InvalidTaskError", "celery.exceptions"},
        {"timelimit of one value", edited("headers.timelimit", json_pack("[i]", 1)), "bad-id",
         "ValueError", "builtins"},
        {"timelimit a number", edited("headers.timelimit", json_integer(30)), "bad-id", "TypeError",
         "builtins"},
        {"negative retries", edited("headers.retries", json_integer(-1)), "bad-id", "ValueError",
         "builtins"},
        {"retries a string", edited("headers.retries", json_string("1")), "bad-id", "TypeError",
         "builtins"},
        {"string delivery_info", edited("properties.delivery_info", json_string("celery")),
         "bad-id", "TypeError", "builtins"},
        {"empty task name", edited("headers.task", json_string("")), "bad-id", "NotRegistered",
         "celery.exceptions"},
        {"protocol v1", protocol_v1(), "v1-id", "InvalidTaskError", "celery.exceptions"},
        {"body not base64", edited("body", json_string("!!")), "bad-id", "DecodeError",
         "kombu.exceptions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cel_execution ex;
        run(reg, cases[i].envelope, &ex);
        if (ex.outcome != CEL_OUTCOME_MALFORMED || !ex.meta || !ex.task_id)
            cel_test_fail(__FILE__, __LINE__, "%s: outcome %d, meta %s, id %s", cases[i].what,
                          (int)ex.outcome, ex.meta ? ex.meta : "(none)",
                          ex.task_id ? ex.task_id : "(none)");
        ASSERT(ex.reason[0]);
        ASSERT_EQ(ex.state, CEL_STATE_FAILURE);
        ASSERT_STREQ(ex.task_id, cases[i].id);
        json_t *meta = json_loads(ex.meta, 0, NULL);
        ASSERT(meta != NULL);
        json_t *exc = json_object_get(meta, "result");
        ASSERT_STREQ(json_string_value(json_object_get(meta, "status")), "FAILURE");
        ASSERT_STREQ(json_string_value(json_object_get(meta, "task_id")), cases[i].id);
        if (strcmp(json_string_value(json_object_get(exc, "exc_type")), cases[i].exc_type) != 0 ||
            strcmp(json_string_value(json_object_get(exc, "exc_module")), cases[i].exc_module))
            cel_test_fail(__FILE__, __LINE__, "%s: %s", cases[i].what, ex.meta);
        /* the reason travels as the exception's message */
        ASSERT_STREQ(json_string_value(json_array_get(json_object_get(exc, "exc_message"), 0)),
                     ex.reason);
        json_decref(meta);
        cel__execution_release(&ex);
        free(cases[i].envelope);
    }

    /* The same faults without a readable id are dead-lettered with nothing
     * to store, and no id is made up. */
    char *no_id = edited("headers.id", json_integer(7));
    json_t *root = json_loads(no_id, 0, NULL);
    free(no_id);
    json_object_set_new(root, "content-type", json_string("application/x-yaml"));
    no_id = cel__json_dump(root);
    json_decref(root);
    struct cel_execution ex;
    run(reg, no_id, &ex);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_MALFORMED);
    ASSERT(ex.task_id == NULL && ex.meta == NULL);
    cel__execution_release(&ex);
    free(no_id);
    cel_registry_free(reg);
}

static void test_frame_round_trip(void)
{
    struct cel_execution ex = {.outcome = CEL_OUTCOME_DEFER, .state = CEL_STATE_PENDING};
    ex.task_id = strdup("abc");
    ex.meta = strdup("{\"x\": 1}");
    ex.meta_len = strlen(ex.meta);
    ex.eta_us = 1234567890123;
    ex.priority = 9;
    snprintf(ex.reason, sizeof ex.reason, "why");
    struct cel_buf b = {0};
    ASSERT_OK(cel__execution_to_frame(&ex, 42, &b));
    struct cel_frame f;
    ASSERT_EQ(cel__framebuf_next(&b, &f), 1);
    ASSERT_EQ(f.seq, 42);
    struct cel_execution back;
    ASSERT_OK(cel__execution_from_frame(&f, &back));
    ASSERT_EQ(back.outcome, CEL_OUTCOME_DEFER);
    ASSERT_EQ(back.state, CEL_STATE_PENDING);
    ASSERT_STREQ(back.task_id, "abc");
    ASSERT_STREQ(back.meta, "{\"x\": 1}");
    ASSERT_STREQ(back.reason, "why");
    ASSERT_EQ(back.eta_us, 1234567890123);
    ASSERT_EQ(back.priority, 9);
    cel__execution_release(&back);
    cel__execution_release(&ex);

    /* A payload without its fields is refused, not read past its end. */
    f.payload = "abc";
    f.len = 3;
    ASSERT_EQ(cel__execution_from_frame(&f, &back), -1);
    cel__framebuf_release(&b);
}

int main(void)
{
    TEST_RUN(test_success_and_type_error);
    TEST_RUN(test_unregistered_expired_deferred);
    TEST_RUN(test_malformed);
    TEST_RUN(test_bad_messages_fail_their_task);
    TEST_RUN(test_frame_round_trip);
    return 0;
}
