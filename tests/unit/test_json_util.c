/* test_json_util.c - the Python-compatible dumper (parsing: test_json_parse.c). */
#include <jansson.h>

#include "core/json_util.h"
#include "testing.h"

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
    TEST_RUN(test_dump_matches_python);
    return 0;
}
