/*
 * test_task_context.c - what a task function sees: request fields, typed
 * argument accessors on a parsed message, and the outcome setters.
 */
#include "celeriac/error.h"
#include "celeriac/task.h"
#include "proto/message.h"
#include "worker/task_context.h"

#include <math.h>

#include "testing.h"

/* args: 7, 5.0, true, "hi\0there", [1, 2], null, 9223372036854775807, 2.5
 * kwargs: n=3, x=1.5, flag=false, name="bob", obj={"a": [1]}, f=5.0 */
static const char *ARGS = "[7, 5.0, true, \"hi\\u0000there\", [1, 2], null, "
                          "9223372036854775807, 2.5]";
static const char *KWARGS = "{\"n\": 3, \"x\": 1.5, \"flag\": false, \"name\": \"bob\", "
                            "\"obj\": {\"a\": [1]}, \"f\": 5.0}";

struct fixture {
    struct cel_message msg;
    struct cel_task task;
};

static void setup(struct fixture *f)
{
    struct cel_task_spec s = {0};
    s.task = "tasks.check";
    s.id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    s.args_json = ARGS;
    s.kwargs_json = KWARGS;
    s.queue = "hipri";
    s.parent_id = "parent-1";
    s.group_id = "group-1";
    s.root_id = "root-1";
    s.retries = 2;
    char *text = NULL;
    char err[256];
    ASSERT_OK(cel__message_build(&s, &text, NULL, NULL, err, sizeof err));
    ASSERT_OK(cel__message_parse(text, strlen(text), NULL, &f->msg, err, sizeof err));
    free(text);
    cel__task_init(&f->task, &f->msg, "w1@host");
}

static void teardown(struct fixture *f)
{
    cel__task_release(&f->task);
    cel__message_release(&f->msg);
}

static void test_request_fields(void)
{
    struct fixture f;
    setup(&f);
    cel_task *t = &f.task;
    ASSERT_STREQ(cel_task_id(t), "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    ASSERT_STREQ(cel_task_name(t), "tasks.check");
    ASSERT_EQ(cel_task_retries(t), 2);
    ASSERT_STREQ(cel_task_root_id(t), "root-1");
    ASSERT_STREQ(cel_task_parent_id(t), "parent-1");
    ASSERT_STREQ(cel_task_group_id(t), "group-1");
    ASSERT_STREQ(cel_task_queue(t), "hipri");
    ASSERT_STREQ(cel_task_hostname(t), "w1@host");
    ASSERT_STREQ(cel_task_args_json(t), ARGS);
    ASSERT_STREQ(cel_task_kwargs_json(t), KWARGS);
    /* cached: the same pointer comes back */
    ASSERT(cel_task_args_json(t) == cel_task_args_json(t));
    ASSERT_EQ(cel_task_argc(t), 8);
    teardown(&f);
}

static void test_integer_accessors(void)
{
    struct fixture f;
    setup(&f);
    cel_task *t = &f.task;
    int64_t v = 0;
    ASSERT_OK(cel_task_arg_int(t, 0, &v));
    ASSERT_EQ(v, 7);
    ASSERT_OK(cel_task_arg_int(t, 6, &v));
    ASSERT(v == INT64_MAX);
    ASSERT_OK(cel_task_kwarg_int(t, "n", &v));
    ASSERT_EQ(v, 3);

    /* 5.0 is not an integer: Celery keeps them apart */
    v = 99;
    ASSERT_EQ(cel_task_arg_int(t, 1, &v), CEL_ETYPE);
    ASSERT_EQ(v, 99);
    ASSERT_STREQ(t->arg_error, "argument 1: expected integer, got float");
    ASSERT_EQ(cel_task_arg_int(t, 2, &v), CEL_ETYPE); /* true is not 1 either */
    ASSERT_STREQ(t->arg_error, "argument 2: expected integer, got boolean");
    ASSERT_EQ(cel_task_arg_int(t, 3, &v), CEL_ETYPE);
    ASSERT_STREQ(t->arg_error, "argument 3: expected integer, got string");
    ASSERT_EQ(cel_task_arg_int(t, 5, &v), CEL_ETYPE);
    ASSERT_STREQ(t->arg_error, "argument 5: expected integer, got null");
    ASSERT_EQ(cel_task_kwarg_int(t, "f", &v), CEL_ETYPE);
    ASSERT_STREQ(t->arg_error, "keyword argument 'f': expected integer, got float");
    ASSERT_EQ(cel_task_arg_int(t, 8, &v), CEL_EMISSING);
    ASSERT_STREQ(t->arg_error, "missing argument 8");
    ASSERT_EQ(cel_task_kwarg_int(t, "nope", &v), CEL_EMISSING);
    ASSERT_STREQ(t->arg_error, "missing keyword argument 'nope'");
    ASSERT_EQ(cel_task_kwarg_int(t, NULL, &v), CEL_EINVAL);
    teardown(&f);
}

static void test_double_bool_string_accessors(void)
{
    struct fixture f;
    setup(&f);
    cel_task *t = &f.task;
    double d = 0;
    ASSERT_OK(cel_task_arg_double(t, 1, &d));
    ASSERT(d == 5.0);
    ASSERT_OK(cel_task_arg_double(t, 0, &d)); /* integers are accepted */
    ASSERT(d == 7.0);
    ASSERT_OK(cel_task_kwarg_double(t, "x", &d));
    ASSERT(d == 1.5);
    ASSERT_EQ(cel_task_arg_double(t, 3, &d), CEL_ETYPE);
    ASSERT_STREQ(t->arg_error, "argument 3: expected number, got string");

    bool b = false;
    ASSERT_OK(cel_task_arg_bool(t, 2, &b));
    ASSERT(b);
    ASSERT_OK(cel_task_kwarg_bool(t, "flag", &b));
    ASSERT(!b);
    ASSERT_EQ(cel_task_arg_bool(t, 0, &b), CEL_ETYPE);
    ASSERT_STREQ(t->arg_error, "argument 0: expected boolean, got integer");

    const char *s = NULL;
    size_t len = 0;
    ASSERT_OK(cel_task_arg_string(t, 3, &s, &len));
    ASSERT_EQ(len, 8); /* the embedded NUL counts */
    ASSERT(memcmp(s, "hi\0there", 8) == 0);
    ASSERT_OK(cel_task_kwarg_string(t, "name", &s, NULL));
    ASSERT_STREQ(s, "bob");
    ASSERT_EQ(cel_task_arg_string(t, 4, &s, &len), CEL_ETYPE);
    ASSERT_STREQ(t->arg_error, "argument 4: expected string, got array");
    ASSERT_EQ(cel_task_kwarg_string(t, "obj", &s, &len), CEL_ETYPE);
    ASSERT_STREQ(t->arg_error, "keyword argument 'obj': expected string, got object");

    char *json = NULL;
    ASSERT_OK(cel_task_arg_json(t, 4, &json));
    ASSERT_STREQ(json, "[1, 2]");
    cel_free(json);
    ASSERT_OK(cel_task_kwarg_json(t, "obj", &json));
    ASSERT_STREQ(json, "{\"a\": [1]}");
    cel_free(json);
    ASSERT_OK(cel_task_arg_json(t, 5, &json));
    ASSERT_STREQ(json, "null");
    cel_free(json);
    ASSERT_EQ(cel_task_arg_json(t, 100, &json), CEL_EMISSING);

    ASSERT(cel_task_has_kwarg(t, "flag"));
    ASSERT(!cel_task_has_kwarg(t, "other"));
    ASSERT(!cel_task_has_kwarg(t, NULL));
    teardown(&f);
}

static void test_return_values(void)
{
    struct fixture f;
    setup(&f);
    cel_task *t = &f.task;
    ASSERT(t->result == NULL && !t->failed); /* nothing set: null */
    ASSERT_OK(cel_task_return_int(t, 5));
    ASSERT(json_is_integer(t->result) && json_integer_value(t->result) == 5);
    ASSERT_OK(cel_task_return_double(t, 5.0));
    ASSERT(json_is_real(t->result) && json_real_value(t->result) == 5.0);
    ASSERT_EQ(cel_task_return_double(t, NAN), CEL_EINVAL);
    ASSERT(json_is_real(t->result)); /* unchanged */
    ASSERT_OK(cel_task_return_bool(t, true));
    ASSERT(json_is_true(t->result));
    ASSERT_OK(cel_task_return_string(t, "done"));
    ASSERT_STREQ(json_string_value(t->result), "done");
    ASSERT_EQ(cel_task_return_string(t, NULL), CEL_EINVAL);
    ASSERT_OK(cel_task_return_json(t, "{\"a\": [1, 2.5]}"));
    ASSERT(json_is_object(t->result));
    ASSERT_EQ(cel_task_return_json(t, "{\"a\": "), CEL_EJSON);
    ASSERT(json_is_object(t->result)); /* nothing set on error */
    ASSERT_OK(cel_task_return_null(t));
    ASSERT(json_is_null(t->result));
    teardown(&f);
}

static void test_fail_paths(void)
{
    struct fixture f;
    setup(&f);
    cel_task *t = &f.task;

    ASSERT_OK(cel_task_return_int(t, 1));
    ASSERT_OK(cel_task_fail(t, "ValueError", NULL, "boom"));
    ASSERT(t->failed);
    ASSERT(t->result == NULL); /* the last call wins */
    ASSERT_STREQ(t->exc_type, "ValueError");
    ASSERT_STREQ(t->exc_module, "builtins");
    ASSERT_STREQ(t->exc_message, "boom");

    ASSERT_OK(cel_task_fail(t, "CError", "cworker.errors", "x"));
    ASSERT_STREQ(t->exc_module, "cworker.errors");

    ASSERT_OK(cel_task_failf(t, "KeyError", "missing %s #%d", "key", 7));
    ASSERT_STREQ(t->exc_type, "KeyError");
    ASSERT_STREQ(t->exc_module, "builtins");
    ASSERT_STREQ(t->exc_message, "missing key #7");

    /* returning after a failure clears it */
    ASSERT_OK(cel_task_return_int(t, 2));
    ASSERT(!t->failed && t->exc_type == NULL);

    /* fail_args names the last bad argument */
    int64_t v;
    ASSERT_EQ(cel_task_arg_int(t, 3, &v), CEL_ETYPE);
    ASSERT_OK(cel_task_fail_args(t));
    ASSERT(t->failed);
    ASSERT_STREQ(t->exc_type, "TypeError");
    ASSERT_STREQ(t->exc_module, "builtins");
    ASSERT_STREQ(t->exc_message, "argument 3: expected integer, got string");
    teardown(&f);

    /* with no accessor failure there is still a message */
    setup(&f);
    ASSERT_OK(cel_task_fail_args(&f.task));
    ASSERT_STREQ(f.task.exc_message, "invalid task arguments");
    teardown(&f);
}

/* Task bodies for cel__task_invoke. */
static int task_add(cel_task *t, void *userdata)
{
    (void)userdata;
    int64_t x, y;
    if (cel_task_arg_int(t, 0, &x) || cel_task_kwarg_int(t, "n", &y))
        return cel_task_fail_args(t);
    return cel_task_return_int(t, x + y);
}

static int task_bad_arg(cel_task *t, void *userdata)
{
    (void)userdata;
    const char *s;
    return cel_task_arg_string(t, 0, &s, NULL); /* returns CEL_ETYPE, no fail call */
}

static int task_io(cel_task *t, void *userdata)
{
    (void)t;
    (void)userdata;
    return CEL_EIO;
}

static int task_userdata(cel_task *t, void *userdata)
{
    return cel_task_return_string(t, userdata);
}

static void test_invoke_normalises_outcome(void)
{
    struct fixture f;
    cel_task_def def = CEL_TASK_DEF_INIT(.name = "tasks.check", .fn = task_add);

    setup(&f);
    cel__task_invoke(&f.task, &def);
    ASSERT(!f.task.failed);
    ASSERT_EQ(json_integer_value(f.task.result), 10);
    teardown(&f);

    setup(&f);
    def.fn = task_bad_arg;
    cel__task_invoke(&f.task, &def);
    ASSERT(f.task.failed);
    ASSERT_STREQ(f.task.exc_type, "TypeError");
    ASSERT_STREQ(f.task.exc_message, "argument 0: expected string, got integer");
    teardown(&f);

    setup(&f);
    def.fn = task_io;
    cel__task_invoke(&f.task, &def);
    ASSERT(f.task.failed);
    ASSERT_STREQ(f.task.exc_type, "RuntimeError");
    ASSERT_CONTAINS(f.task.exc_message, "CEL_EIO");
    teardown(&f);

    setup(&f);
    def.fn = task_userdata;
    def.userdata = (void *)"from userdata";
    cel__task_invoke(&f.task, &def);
    ASSERT_STREQ(json_string_value(f.task.result), "from userdata");
    teardown(&f);

    setup(&f);
    def.fn = NULL;
    cel__task_invoke(&f.task, &def);
    ASSERT(f.task.failed);
    ASSERT_STREQ(f.task.exc_type, "NotImplementedError");
    teardown(&f);
}

int main(void)
{
    TEST_RUN(test_request_fields);
    TEST_RUN(test_integer_accessors);
    TEST_RUN(test_double_bool_string_accessors);
    TEST_RUN(test_return_values);
    TEST_RUN(test_fail_paths);
    TEST_RUN(test_invoke_normalises_outcome);
    return 0;
}
