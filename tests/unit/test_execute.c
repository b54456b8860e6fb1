/* test_execute.c - outcomes of running a message, and their frames. */
#include <jansson.h>

#include "celeriac.h"
#include "core/clock.h"
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
    cel__execute(reg, "w@test", envelope, strlen(envelope), ex);
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

static void test_frame_round_trip(void)
{
    struct cel_execution ex = {.outcome = CEL_OUTCOME_DEFER, .state = CEL_STATE_PENDING};
    ex.task_id = strdup("abc");
    ex.meta = strdup("{\"x\": 1}");
    ex.meta_len = strlen(ex.meta);
    ex.eta_us = 1234567890123;
    ex.priority = 9;
    snprintf(ex.reason, sizeof ex.reason, "why");
    struct cel_framebuf b = {0};
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
    TEST_RUN(test_frame_round_trip);
    return 0;
}
