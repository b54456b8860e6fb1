/*
 * test_json_scan.c - walking an object's members without a tree
 * (core/json_scan.h): spans are exact, strings with escaped quotes and
 * brackets inside are skipped whole, nesting is skipped, and text that
 * is not an object is refused without reading past its end.
 */
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/json_scan.h"
#include "testing.h"

static char *span(const struct cel_json_member *m)
{
    char *s = malloc(m->value_len + 1);
    memcpy(s, m->value, m->value_len);
    s[m->value_len] = '\0';
    return s;
}

static void expect_member(const char *text, const char *key, const char *value)
{
    struct cel_json_member m;
    ASSERT_OK(cel__json_member(text, strlen(text), key, &m));
    char *got = span(&m);
    ASSERT_STREQ(got, value);
    free(got);
}

static void test_spans(void)
{
    const char *t = " {\"a\": 1, \"s\": \"x\\\"}]{\\\\\", \"o\": {\"k\": [1, \"]\", {}]}, "
                    "\"n\" :null , \"neg\": -1.5e3, \"last\": [] } ";
    expect_member(t, "a", "1");
    expect_member(t, "s", "\"x\\\"}]{\\\\\"");
    expect_member(t, "o", "{\"k\": [1, \"]\", {}]}");
    expect_member(t, "n", "null");
    expect_member(t, "neg", "-1.5e3");
    expect_member(t, "last", "[]");
    struct cel_json_member m;
    ASSERT_EQ(cel__json_member(t, strlen(t), "k", &m), CEL_ENOTFOUND); /* top level only */
    ASSERT_EQ(cel__json_member("{}", 2, "a", &m), CEL_ENOTFOUND);
}

static bool count(const struct cel_json_member *m, void *ud)
{
    (void)m;
    return ++*(int *)ud < 2; /* stops after the second */
}

static void test_walk_stops(void)
{
    int n = 0;
    const char *t = "{\"a\": 1, \"b\": 2, \"c\": 3}";
    ASSERT_OK(cel__json_members(t, strlen(t), count, &n));
    ASSERT_EQ(n, 2);
}

static void test_refused(void)
{
    const char *bad[] = {"",
                         "[]",
                         "{\"a\" 1}",
                         "{\"a\": 1",
                         "{\"a\": }",
                         "{a: 1}",
                         "{\"a\": \"open",
                         "{\"a\": [1, 2}",
                         "{\"a\": {",
                         "{\"a\": 1 \"b\""};
    struct cel_json_member m;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* A copy without a NUL after it: the walk must stay inside. */
        size_t n = strlen(bad[i]);
        char *copy = malloc(n ? n : 1);
        memcpy(copy, bad[i], n);
        ASSERT_EQ(cel__json_member(copy, n, "zz", &m), CEL_EJSON);
        free(copy);
    }
}

int main(void)
{
    TEST_RUN(test_spans);
    TEST_RUN(test_walk_stops);
    TEST_RUN(test_refused);
    return 0;
}
