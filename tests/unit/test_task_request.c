/*
 * test_task_request.c - the request side of a task (celeriac/task.h):
 * eta/expires as sent, delivery info, raw headers and properties, the
 * limits and retry count a run is under, cel_task_check_argc()'s Python
 * wording and cel_task_log()'s line format.
 */
#include "celeriac/error.h"
#include "celeriac/task.h"
#include "proto/message.h"
#include "worker/task_context.h"

#include "task_fixture.h"
#include "testing.h"

#define TASK_ID "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

static struct cel_task_spec base_spec(const char *args_json)
{
    struct cel_task_spec s = {0};
    s.task = "tasks.check";
    s.id = TASK_ID;
    s.args_json = args_json;
    return s;
}

static void setup(struct cel_test_task *f, const char *args_json)
{
    struct cel_task_spec s = base_spec(args_json);
    cel_test_task_setup(f, &s, NULL);
}

/* --- request fields -------------------------------------------------------- */

static void test_delivery_fields(void)
{
    struct cel_task_spec s = base_spec("[]");
    s.queue = "hipri";
    s.exchange = "tasks-ex";
    s.priority = 7;
    s.reply_to = "reply-queue";
    s.origin = "gen42@client-host";
    struct cel_test_task f;
    cel_test_task_setup(&f, &s, NULL);
    cel_task *t = &f.task;
    ASSERT_STREQ(cel_task_exchange(t), "tasks-ex");
    ASSERT_STREQ(cel_task_routing_key(t), "hipri");
    ASSERT_EQ(cel_task_priority(t), 7);
    ASSERT(!cel_task_redelivered(t));
    ASSERT_STREQ(cel_task_reply_to(t), "reply-queue");
    /* the builder sets correlation_id to the task id, as Celery does */
    ASSERT_STREQ(cel_task_correlation_id(t), TASK_ID);
    ASSERT_STREQ(cel_task_origin(t), "gen42@client-host");
    cel_test_task_teardown(&f);
}

/* What a minimal peer sends: no reply_to, correlation_id or origin, a
 * redelivered flag, and no exchange. */
static void strip_optional(json_t *root)
{
    json_t *p = json_object_get(root, "properties");
    json_object_del(p, "reply_to");
    json_object_del(p, "correlation_id");
    json_object_del(json_object_get(root, "headers"), "origin");
    json_t *di = json_object_get(p, "delivery_info");
    json_object_del(di, "exchange");
    json_object_set_new(di, "redelivered", json_true());
}

static void test_delivery_defaults(void)
{
    struct cel_task_spec s = base_spec("[]");
    struct cel_test_task f;
    cel_test_task_setup(&f, &s, strip_optional);
    cel_task *t = &f.task;
    ASSERT_STREQ(cel_task_exchange(t), "");
    ASSERT_STREQ(cel_task_routing_key(t), "celery");
    ASSERT_EQ(cel_task_priority(t), 0);
    ASSERT(cel_task_redelivered(t));
    ASSERT_STREQ(cel_task_reply_to(t), "");
    ASSERT(cel_task_correlation_id(t) == NULL);
    ASSERT(cel_task_origin(t) == NULL);
    cel_test_task_teardown(&f);
}

/* Celery's own eta text: isoformat() with a UTC offset. */
static void python_eta(json_t *root)
{
    json_t *h = json_object_get(root, "headers");
    json_object_set_new(h, "eta", json_string("2031-05-06T07:08:09.123456+00:00"));
    json_object_set_new(h, "expires", json_string("2031-05-06T08:00:00+02:00"));
}

static void test_eta_expires_as_sent(void)
{
    struct cel_test_task f;
    setup(&f, "[]");
    ASSERT(cel_task_eta(&f.task) == NULL);
    ASSERT(cel_task_expires(&f.task) == NULL);
    cel_test_task_teardown(&f);

    /* the builder's text comes back as written */
    struct cel_task_spec s = base_spec("[]");
    s.eta_us = 1700000000123000;     /* 2023-11-14T22:13:20.123 UTC */
    s.expires_us = 1700003600000000; /* an hour later */
    cel_test_task_setup(&f, &s, NULL);
    const json_t *h = json_object_get(f.msg.root, "headers");
    ASSERT_STREQ(cel_task_eta(&f.task), json_string_value(json_object_get(h, "eta")));
    ASSERT_STREQ(cel_task_expires(&f.task), json_string_value(json_object_get(h, "expires")));
    ASSERT_CONTAINS(cel_task_eta(&f.task), "2023-11-14T22:13:20.123");
    ASSERT_CONTAINS(cel_task_expires(&f.task), "2023-11-14T23:13:20");
    cel_test_task_teardown(&f);

    /* a Python client's text is not reformatted */
    s = base_spec("[]");
    cel_test_task_setup(&f, &s, python_eta);
    ASSERT_STREQ(cel_task_eta(&f.task), "2031-05-06T07:08:09.123456+00:00");
    ASSERT_STREQ(cel_task_expires(&f.task), "2031-05-06T08:00:00+02:00");
    cel_test_task_teardown(&f);
}

static void custom_header(json_t *root)
{
    json_object_set_new(json_object_get(root, "headers"), "x_trace", json_string("t-1"));
}

static void test_raw_headers_and_properties(void)
{
    struct cel_task_spec s = base_spec("[1]");
    s.queue = "hipri";
    struct cel_test_task f;
    cel_test_task_setup(&f, &s, custom_header);
    cel_task *t = &f.task;

    const char *h = cel_task_headers_json(t);
    ASSERT(h == cel_task_headers_json(t)); /* cached */
    json_t *hv = json_loads(h, 0, NULL);
    ASSERT(hv);
    ASSERT(json_equal(hv, json_object_get(f.msg.root, "headers")));
    ASSERT_STREQ(json_string_value(json_object_get(hv, "x_trace")), "t-1"); /* unknown kept */
    ASSERT_STREQ(json_string_value(json_object_get(hv, "id")), TASK_ID);
    json_decref(hv);
    ASSERT_CONTAINS(h, "\"task\": \"tasks.check\""); /* Python's spacing */

    const char *p = cel_task_properties_json(t);
    ASSERT(p == cel_task_properties_json(t));
    json_t *pv = json_loads(p, 0, NULL);
    ASSERT(pv);
    ASSERT(json_equal(pv, json_object_get(f.msg.root, "properties")));
    ASSERT_STREQ(
        json_string_value(json_object_get(json_object_get(pv, "delivery_info"), "routing_key")),
        "hipri");
    json_decref(pv);
    cel_test_task_teardown(&f); /* the caches are freed here: ASan's leak check sees it */
}

static void test_limits_and_retry_state(void)
{
    struct cel_task_spec s = base_spec("[]");
    s.retries = 2;
    struct cel_test_task f;
    cel_test_task_setup(&f, &s, NULL);
    cel_task *t = &f.task;
    ASSERT(cel_task_time_limit(t) == 0.0);
    ASSERT(cel_task_soft_time_limit(t) == 0.0);
    /* the limits are the policy execute.c resolved, not the raw header */
    t->policy.time_limit = 30.5;
    t->policy.soft_time_limit = 20;
    ASSERT(cel_task_time_limit(t) == 30.5);
    ASSERT(cel_task_soft_time_limit(t) == 20.0);
    ASSERT(cel_task_is_retry(t));
    ASSERT_EQ(cel_task_retries(t), 2);
    cel_test_task_teardown(&f);

    setup(&f, "[]");
    ASSERT(!cel_task_is_retry(&f.task));
    cel_test_task_teardown(&f);
}

static void set_max_retries_header(struct cel_test_task *f, json_t *v)
{
    json_object_set_new(json_object_get(f->msg.root, "headers"), "celeriac_max_retries", v);
}

static void test_max_retries_resolution(void)
{
    struct cel_test_task f;
    setup(&f, "[]");
    cel_task *t = &f.task;
    ASSERT_EQ(cel_task_max_retries(t), 3); /* no def, no header: Celery's 3 */

    cel_task_def def = CEL_TASK_DEF_INIT(.name = "tasks.check");
    t->def = &def;
    ASSERT_EQ(cel_task_max_retries(t), 3); /* CEL_RETRIES_DEFAULT */
    def.max_retries = CEL_RETRIES_NONE;
    ASSERT_EQ(cel_task_max_retries(t), 0);
    def.max_retries = CEL_RETRIES_UNLIMITED;
    ASSERT_EQ(cel_task_max_retries(t), CEL_RETRIES_UNLIMITED);
    def.max_retries = 7;
    ASSERT_EQ(cel_task_max_retries(t), 7);

    /* the call's header wins over the def */
    set_max_retries_header(&f, json_integer(5));
    ASSERT_EQ(cel_task_max_retries(t), 5);
    set_max_retries_header(&f, json_integer(0));
    ASSERT_EQ(cel_task_max_retries(t), 0);
    set_max_retries_header(&f, json_null()); /* Celery's max_retries=None */
    ASSERT_EQ(cel_task_max_retries(t), CEL_RETRIES_UNLIMITED);
    set_max_retries_header(&f, json_integer(-1));
    ASSERT_EQ(cel_task_max_retries(t), CEL_RETRIES_UNLIMITED);
    set_max_retries_header(&f, json_integer(1LL << 40));
    ASSERT_EQ(cel_task_max_retries(t), 2147483647);
    /* not ours: ignored, the def decides */
    set_max_retries_header(&f, json_string("5"));
    ASSERT_EQ(cel_task_max_retries(t), 7);
    set_max_retries_header(&f, json_real(5.0));
    ASSERT_EQ(cel_task_max_retries(t), 7);
    t->def = NULL;
    cel_test_task_teardown(&f);
}

/* --- cel_task_check_argc --------------------------------------------------- */

/* Runs check_argc on a task with `args`: NULL when it passed, else the
 * TypeError text (a static copy). */
static const char *argc_error(const char *args, size_t min, long max)
{
    static char msg[256];
    struct cel_test_task f;
    setup(&f, args);
    int rc = cel_task_check_argc(&f.task, min, max);
    const char *out = NULL;
    if (rc == CEL_OK) {
        ASSERT(!f.task.failed);
    } else {
        ASSERT_EQ(rc, CEL_EINVAL);
        ASSERT(f.task.failed);
        ASSERT_STREQ(f.task.exc_module, "builtins");
        snprintf(msg, sizeof msg, "%s: %s", f.task.exc_type, f.task.exc_message);
        out = msg;
    }
    cel_test_task_teardown(&f);
    return out;
}

static void test_check_argc_wording(void)
{
    /* Python 3's own texts, with the task name as the function's */
    ASSERT_STREQ(argc_error("[2, 3, 4]", 2, 2),
                 "TypeError: tasks.check() takes 2 positional arguments but 3 were given");
    ASSERT_STREQ(argc_error("[2, 3]", 1, 1),
                 "TypeError: tasks.check() takes 1 positional argument but 2 were given");
    ASSERT_STREQ(argc_error("[2]", 0, 0),
                 "TypeError: tasks.check() takes 0 positional arguments but 1 was given");
    ASSERT_STREQ(argc_error("[2, 3, 4]", 1, 2),
                 "TypeError: tasks.check() takes from 1 to 2 positional arguments but 3 were "
                 "given");
    ASSERT_STREQ(argc_error("[2]", 2, 2),
                 "TypeError: tasks.check() missing 1 required positional argument");
    ASSERT_STREQ(argc_error("[]", 3, -1),
                 "TypeError: tasks.check() missing 3 required positional arguments");
    ASSERT_STREQ(argc_error("[1]", 2, 5),
                 "TypeError: tasks.check() missing 1 required positional argument");

    /* counts in range pass and leave the task alone */
    ASSERT(argc_error("[2, 3]", 2, 2) == NULL);
    ASSERT(argc_error("[2, 3]", 1, 3) == NULL);
    ASSERT(argc_error("[2, 3, 4, 5, 6]", 2, -1) == NULL);
    ASSERT(argc_error("[]", 0, 0) == NULL);
    ASSERT(argc_error("[]", 0, -1) == NULL);
}

static void test_check_argc_misuse(void)
{
    ASSERT_EQ(cel_task_check_argc(NULL, 0, 0), CEL_EINVAL);
    /* min > max is the author's bug: the task fails saying so instead of
     * running with a count nobody meant */
    struct cel_test_task f;
    setup(&f, "[1]");
    ASSERT_EQ(cel_task_check_argc(&f.task, 3, 2), CEL_EINVAL);
    ASSERT(f.task.failed);
    ASSERT_STREQ(f.task.exc_type, "RuntimeError");
    ASSERT_CONTAINS(f.task.exc_message, "min > max");
    cel_test_task_teardown(&f);
}

/* --- cel_task_log ---------------------------------------------------------- */

struct logged {
    int calls;
    cel_log_level level;
    char component[32];
    char msg[2048];
};

static void keep_line(cel_log_level level, const char *component, const char *msg, void *ud)
{
    struct logged *l = ud;
    l->calls++;
    l->level = level;
    snprintf(l->component, sizeof l->component, "%s", component);
    snprintf(l->msg, sizeof l->msg, "%s", msg);
}

static void test_log_line_format(void)
{
    struct cel_test_task f;
    setup(&f, "[]");
    struct logged l = {0};
    cel_set_log_handler(keep_line, &l, CEL_LOG_INFO);

    cel_task_log(&f.task, CEL_LOG_WARNING, "disk at %d%%", 91);
    ASSERT_EQ(l.calls, 1);
    ASSERT_EQ(l.level, CEL_LOG_WARNING);
    ASSERT_STREQ(l.component, "task");
    ASSERT_STREQ(l.msg, "tasks.check[" TASK_ID "]: disk at 91%");

    /* a trailing newline is not part of the line */
    cel_task_log(&f.task, CEL_LOG_INFO, "done\n");
    ASSERT_EQ(l.calls, 2);
    ASSERT_STREQ(l.msg, "tasks.check[" TASK_ID "]: done");

    /* below the handler's level: not delivered */
    cel_task_log(&f.task, CEL_LOG_DEBUG, "noise %s", "x");
    ASSERT_EQ(l.calls, 2);

    /* a long text is cut, never overflows, and keeps its prefix */
    char big[4000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cel_task_log(&f.task, CEL_LOG_ERROR, "%s", big);
    ASSERT_EQ(l.calls, 3);
    ASSERT(strncmp(l.msg, "tasks.check[" TASK_ID "]: zzz", 54) == 0);
    ASSERT(strlen(l.msg) < 2048);

    /* NULL task or format: nothing */
    cel_task_log(NULL, CEL_LOG_ERROR, "x");
    ASSERT_EQ(l.calls, 3);

    cel_set_log_handler(NULL, NULL, CEL_LOG_INFO);
    /* no handler: nothing is formatted or delivered */
    cel_task_log(&f.task, CEL_LOG_CRITICAL, "lost");
    ASSERT_EQ(l.calls, 3);
    cel_test_task_teardown(&f);
}

int main(void)
{
    TEST_RUN(test_delivery_fields);
    TEST_RUN(test_delivery_defaults);
    TEST_RUN(test_eta_expires_as_sent);
    TEST_RUN(test_raw_headers_and_properties);
    TEST_RUN(test_limits_and_retry_state);
    TEST_RUN(test_max_retries_resolution);
    TEST_RUN(test_check_argc_wording);
    TEST_RUN(test_check_argc_misuse);
    TEST_RUN(test_log_line_format);
    return 0;
}
