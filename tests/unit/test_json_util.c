/* test_json_util.c - the depth pre-scan and the Python-compatible dumper. */
#include <jansson.h>

#include "core/json_util.h"
#include "testing.h"

static int depth(const char *s)
{
    return cel__json_depth(s, strlen(s), 64);
}

static void test_depth_counts_brackets_outside_strings(void)
{
    ASSERT_EQ(depth("1"), 0);
    ASSERT_EQ(depth("[]"), 1);
    ASSERT_EQ(depth("[[1], {\"a\": [2]}]"), 3);
    ASSERT_EQ(depth("\"[[[[\""), 0);
    ASSERT_EQ(depth("[\"]]]\", [\"{{{\"]]"), 2);
}

static void test_depth_handles_escapes(void)
{
    /* An escaped quote does not end the string; an escaped backslash
     * before a quote does not escape it. */
    ASSERT_EQ(depth("[\"a\\\"[[[\"]"), 1);
    ASSERT_EQ(depth("[\"a\\\\\", [[1]]]"), 3);
    ASSERT_EQ(depth("[\"\\\\\\\"[\", [1]]"), 2);
    /* An unterminated string swallows the rest. */
    ASSERT_EQ(depth("[\"[[[["), 1);
}

static void test_depth_stops_past_limit(void)
{
    char deep[2001];
    memset(deep, '[', 2000);
    deep[2000] = '\0';
    ASSERT_EQ(cel__json_depth(deep, 2000, 64), 65);
    char err[128];
    ASSERT(cel__json_parse(deep, 2000, 64, err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "deeper than 64");
}

static void test_dump_matches_python(void)
{
    json_t *v = json_pack("{s:[i,f,s,b,n]}", "k", (json_int_t)5, 5.0, "\xc3\xa9", 1);
    char *text = cel__json_dump(v);
    ASSERT_STREQ(text, "{\"k\": [5, 5.0, \"\\u00e9\", true, null]}");
    free(text);
    json_decref(v);
}

int main(void)
{
    TEST_RUN(test_depth_counts_brackets_outside_strings);
    TEST_RUN(test_depth_handles_escapes);
    TEST_RUN(test_depth_stops_past_limit);
    TEST_RUN(test_dump_matches_python);
    return 0;
}
