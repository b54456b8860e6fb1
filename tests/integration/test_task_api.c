/*
 * test_task_api.c - the task API of issue 7 used from a task module in a
 * real worker (tests/data/modules/task_module_api.c, prefork child, the
 * default SQLite broker in the test directory): a typed-value result
 * read back by the client, check_argc's TypeError as the caller sees it,
 * the request fields as the module saw them, and cel_task_log's line in
 * the worker's log.
 */
#include <signal.h>

#include <celeriac.h>

#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"

static cel_result *run(cel_client *c, const char *name, const char *args, const char *kwargs,
                       const cel_send_options *opt)
{
    cel_result *r = NULL;
    if (cel_client_send(c, name, args, kwargs, opt, &r) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "send %s: %s", name, cel_client_errmsg(c));
    if (cel_result_wait(r, WAIT_MS) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "wait %s: %s", name, cel_client_errmsg(c));
    return r;
}

static void test_api_from_a_module(void)
{
    const char *extra[] = {"-A", cel_test_env("CEL_TEST_MODULE_API"), "-c", "1", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    cel_client *c = cel_client_new(NULL);
    ASSERT(c);
    ASSERT_OK(cel_client_connect(c));

    /* typed values in and out */
    cel_result *r =
        run(c, "api.total", NULL,
            "{\"items\": [{\"price\": 2.5, \"qty\": 2}, {\"price\": 1, \"qty\": 3}]}", NULL);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    ASSERT_STREQ(cel_result_value_json(r), "{\"sum\": 8.0, \"n\": 2}");
    cel_result_free(r);

    /* tasks.add 2 3 4 is a TypeError, as in Python */
    r = run(c, "api.add", "[2, 3, 4]", NULL, NULL);
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "TypeError");
    ASSERT_STREQ(cel_result_exc_message(r),
                 "api.add() takes 2 positional arguments but 3 were given");
    cel_result_free(r);
    r = run(c, "api.add", "[2, 3]", NULL, NULL);
    ASSERT_STREQ(cel_result_value_json(r), "5");
    cel_result_free(r);

    /* the request as the module saw it, and its log line */
    cel_send_options opt = CEL_SEND_OPTIONS_INIT(.priority = 3, .has_priority = 1);
    r = run(c, "api.request", "[1, 2]", NULL, &opt);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    cel_value *v = NULL;
    ASSERT_OK(cel_value_parse(cel_result_value_json(r), &v));
    const char *s = NULL;
    ASSERT_OK(cel_value_get_string(cel_value_get(v, "name"), &s, NULL));
    ASSERT_STREQ(s, "api.request");
    ASSERT_OK(cel_value_get_string(cel_value_get(v, "routing_key"), &s, NULL));
    ASSERT_STREQ(s, "celery");
    ASSERT_OK(cel_value_get_string(cel_value_get(v, "header_id"), &s, NULL));
    ASSERT_STREQ(s, cel_result_id(r));
    ASSERT_OK(cel_value_get_string(cel_value_get(v, "hostname"), &s, NULL));
    ASSERT_CONTAINS(s, "@");
    ASSERT_EQ(cel_value_type_of(cel_value_get(v, "eta")), CEL_VALUE_NULL);
    ASSERT(cel_value_get(v, "eta") != NULL);
    int64_t n = -1;
    ASSERT_OK(cel_value_get_int(cel_value_get(v, "priority"), &n));
    ASSERT_EQ(n, 3);
    ASSERT_OK(cel_value_get_int(cel_value_get(v, "max_retries"), &n));
    ASSERT_EQ(n, 5);
    bool retry = true;
    ASSERT_OK(cel_value_get_bool(cel_value_get(v, "is_retry"), &retry));
    ASSERT(!retry);
    cel_value_free(v);

    char line[160];
    snprintf(line, sizeof line, "api.request[%s]: request seen, 2 args", cel_result_id(r));
    if (!cel_test_wait_log(LOG_PATH, line, WAIT_MS))
        cel_test_worker_postmortem(pid, LOG_PATH);
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, line), 1);
    /* written by the child that ran it, at the level asked for */
    snprintf(line, sizeof line, "WARNING/ForkPoolWorker-1] api.request[%s]: request seen",
             cel_result_id(r));
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, line), 1);
    cel_result_free(r);

    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
}

int main(void)
{
    TEST_RUN(test_api_from_a_module);
    return 0;
}
