/*
 * test_repr.c - Python's repr() of args and kwargs (proto/repr.c), as
 * Celery writes it into the argsrepr/kwargsrepr headers.
 */
#include <jansson.h>
#include <stdlib.h>

#include "proto/repr.h"
#include "testing.h"

static void test_pyrepr(void)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"[]", "()"},
        {"[2]", "(2,)"},
        {"[2, 3]", "(2, 3)"},
        {"[[\"a\", 1], {\"k\": null, \"b\": true, \"f\": 2.5}]",
         "(['a', 1], {'k': None, 'b': True, 'f': 2.5})"},
        {"{}", "{}"},
        {"{\"x\": 1, \"y\": [false]}", "{'x': 1, 'y': [False]}"},
        {"[\"it's\"]", "(\"it's\",)"},
        {"[\"a\\\"b'c\"]", "('a\"b\\'c',)"},
        {"[\"\\n\\t\\\\\\u0001\\u007f\\u0085\\u00a0\\u2028\\u00e9\"]",
         "('\\n\\t\\\\\\x01\\x7f\\x85\\xa0\\u2028\xc3\xa9',)"},
        {"\"top string\"", "'top string'"},
        {"null", "None"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        ASSERT(v != NULL);
        char *r = cel__json_pyrepr(v, 0);
        ASSERT_STREQ(r, cases[i].want);
        free(r);
        json_decref(v);
    }
    /* truncation keeps UTF-8 whole and marks the cut */
    json_t *v = json_pack("[s]", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    char *r = cel__json_pyrepr(v, 4); /* "('é" is 4 bytes */
    ASSERT_STREQ(r, "('\xc3\xa9...");
    free(r);
    r = cel__json_pyrepr(v, 5); /* would cut the second é in half */
    ASSERT_STREQ(r, "('\xc3\xa9...");
    free(r);
    json_decref(v);
}

int main(void)
{
    TEST_RUN(test_pyrepr);
    return 0;
}
