/*
 * test_dash_query.c - the dashboard's task search syntax and Flower's
 * /api/tasks parameters, into the query struct the history store runs.
 */
#include <string.h>

#include "celeriac/error.h"
#include "dashboard/task_query.h"
#include "testing.h"

static void parse_ok(const char *text, struct cel_dash_task_query *q)
{
    char why[256] = "";
    if (cel__dash_task_query_parse(text, q, why, sizeof why) != 0)
        cel_test_fail(__FILE__, __LINE__, "'%s' refused: %s", text, why);
}

static void test_defaults(void)
{
    struct cel_dash_task_query q;
    parse_ok("", &q);
    ASSERT_EQ(q.states, 0);
    ASSERT_EQ(q.limit, CEL_DASH_QUERY_LIMIT_DEFAULT);
    ASSERT_EQ(q.sort, CEL_DASH_SORT_TIMESTAMP);
    ASSERT(!q.ascending);
    ASSERT_EQ(q.nwords, 0);
}

static void test_full_syntax(void)
{
    struct cel_dash_task_query q;
    parse_ok("state:FAILURE name:tasks.add worker:w1@host queue:images "
             "after:2026-12-01T10:00 before:2026-12-02 \"some args text\" bare state:retry",
             &q);
    ASSERT_EQ(q.states, CEL_DASH_FAILURE | CEL_DASH_RETRY);
    ASSERT_STREQ(q.name, "tasks.add");
    ASSERT_STREQ(q.worker, "w1@host");
    ASSERT_STREQ(q.queue, "images");
    ASSERT_EQ((long long)q.after, 1796119200LL); /* 2026-12-01T10:00:00Z */
    ASSERT_EQ((long long)q.before, 1796169600LL);
    ASSERT_EQ(q.nwords, 2);
    ASSERT_STREQ(q.words[0], "some args text");
    ASSERT_STREQ(q.words[1], "bare");
}

static void test_sort_and_page(void)
{
    static const struct {
        const char *text;
        enum cel_dash_task_sort sort;
        bool asc;
    } rows[] = {
        {"sort:runtime", CEL_DASH_SORT_RUNTIME, true},
        {"sort:-runtime", CEL_DASH_SORT_RUNTIME, false},
        {"sort:name:desc", CEL_DASH_SORT_NAME, false},
        {"sort:received:asc", CEL_DASH_SORT_RECEIVED, true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cel_dash_task_query q;
        parse_ok(rows[i].text, &q);
        ASSERT_EQ(q.sort, rows[i].sort);
        ASSERT_EQ(q.ascending, rows[i].asc);
    }
    struct cel_dash_task_query q;
    parse_ok("limit:5 offset:10 state:success,failure name:\"a b\"", &q);
    ASSERT_EQ(q.limit, 5);
    ASSERT_EQ(q.offset, 10);
    ASSERT_EQ(q.states, CEL_DASH_SUCCESS | CEL_DASH_FAILURE);
    ASSERT_STREQ(q.name, "a b");
}

static void test_errors_name_key_and_position(void)
{
    static const struct {
        const char *text, *message;
    } rows[] = {
        {"state:FAILURE foo:bar", "unknown key 'foo' at 14"},
        {"state:DONE", "bad value 'DONE' for 'state' at 0"},
        {"name:x after:yesterday", "bad value 'yesterday' for 'after' at 7"},
        {"sort:color", "bad value 'color' for 'sort' at 0"},
        {"limit:0", "bad value '0' for 'limit' at 0"},
        {"limit:99999", "bad value '99999' for 'limit' at 0"},
        {"\"open", "unterminated quote at 0"},
        {":x", "missing key before ':' at 0"},
        {"name:", "bad value '' for 'name' at 0"},
        {"a b c d e f g h i", "more than 8 search words at 16"},
        {"after:2026-13-01", "bad value '2026-13-01' for 'after' at 0"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cel_dash_task_query q;
        char why[256] = "";
        int rc = cel__dash_task_query_parse(rows[i].text, &q, why, sizeof why);
        if (rc != CEL_EINVAL)
            cel_test_fail(__FILE__, __LINE__, "'%s' gave %d", rows[i].text, rc);
        ASSERT_STREQ(why, rows[i].message);
    }
}

static void test_times(void)
{
    double t;
    ASSERT(cel__dash_parse_time("2026-12-01T10:00:30Z", 20, &t));
    ASSERT_EQ((long long)t, 1796119230LL);
    ASSERT(cel__dash_parse_time("2026-12-01 10:00", 16, &t)); /* Flower's form */
    ASSERT_EQ((long long)t, 1796119200LL);
    ASSERT(cel__dash_parse_time("1796119200", 10, &t));
    ASSERT_EQ((long long)t, 1796119200LL);
    ASSERT(!cel__dash_parse_time("2026-12-01T25:00", 16, &t));
    ASSERT(!cel__dash_parse_time("2026-12-01T10:00x", 17, &t));
}

static void test_flower_params(void)
{
    const char *keys[] = {"state",   "taskname",       "workername", "limit",  "offset",
                          "sort_by", "received_start", "_",          "search", "received_end"};
    const char *vals[] = {"FAILURE",   "tasks.add",        "w1@host", "20",   "40",
                          "-received", "2026-12-01 10:00", "123",     "boom", ""};
    struct cel_dash_task_query q;
    char why[256] = "";
    ASSERT_OK(cel__dash_task_query_from_flower(keys, vals, 10, &q, why, sizeof why));
    ASSERT_EQ(q.states, CEL_DASH_FAILURE);
    ASSERT_STREQ(q.name, "tasks.add");
    ASSERT_STREQ(q.worker, "w1@host");
    ASSERT_EQ(q.limit, 20);
    ASSERT_EQ(q.offset, 40);
    ASSERT_EQ(q.sort, CEL_DASH_SORT_RECEIVED);
    ASSERT(!q.ascending);
    ASSERT_EQ((long long)q.after, 1796119200LL);
    ASSERT_EQ((long long)q.before, 0);
    ASSERT_EQ(q.nwords, 1);
    ASSERT_STREQ(q.words[0], "boom");

    const char *bk[] = {"limit"};
    const char *bv[] = {"lots"};
    ASSERT_EQ(cel__dash_task_query_from_flower(bk, bv, 1, &q, why, sizeof why), CEL_EINVAL);
    ASSERT_STREQ(why, "bad value 'lots' for 'limit'");
    const char *sk[] = {"taskname", "search"};
    const char *sv[] = {"a", "oops:1"};
    ASSERT_EQ(cel__dash_task_query_from_flower(sk, sv, 2, &q, why, sizeof why), CEL_EINVAL);
    ASSERT_STREQ(why, "unknown key 'oops' at 0");
    const char *tk[] = {"received_start"};
    const char *tv[] = {"tomorrow"};
    ASSERT_EQ(cel__dash_task_query_from_flower(tk, tv, 1, &q, why, sizeof why), CEL_EINVAL);
    ASSERT_STREQ(why, "bad value 'tomorrow' for 'received_start'");
}

int main(void)
{
    TEST_RUN(test_defaults);
    TEST_RUN(test_full_syntax);
    TEST_RUN(test_sort_and_page);
    TEST_RUN(test_errors_name_key_and_position);
    TEST_RUN(test_times);
    TEST_RUN(test_flower_params);
    return 0;
}
